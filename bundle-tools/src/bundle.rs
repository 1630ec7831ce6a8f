//! A bundle's own record, `berth-bundle.json`: where it came from (layout,
//! manifest, config, layers), how it was unpacked (rootless, id maps) and,
//! for overlay bundles, the layer store and mount layout. `commit`, `mount`,
//! `umount` and `rm` read it; every rewrite is atomic.

use crate::layer::idmap::IdRange;
use crate::layer::IdMap;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SOURCE_FILE: &str = "berth-bundle.json";
pub const TREE_FILE: &str = "berth-tree.jsonl";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Source {
    /// The layout the image was read from (None: an archive, read through a
    /// throwaway layout).
    pub layout: Option<PathBuf>,
    #[serde(rename = "ref")]
    pub reference: String,
    pub manifest: String,
    pub config: String,
    pub layers: Vec<String>,
    #[serde(default)]
    pub rootless: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_map: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_map: Vec<String>,
    /// Flat bundles: the tree manifest commit diffs against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<String>,
    #[serde(default)]
    pub entries: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<Overlay>,
}

/// An overlay bundle: `rootfs` is an overlay of store layers (bottom
/// first) under `upper`/`work` in the bundle.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Overlay {
    pub store: PathBuf,
    /// Store keys (diff_ids), bottom layer first.
    pub layers: Vec<String>,
}

impl Source {
    pub fn read(bundle: &Path) -> Result<Source> {
        let p = bundle.join(SOURCE_FILE);
        let raw = std::fs::read(&p).with_context(|| {
            format!(
                "{} is not a berth-bundle bundle: read {}",
                bundle.display(),
                p.display()
            )
        })?;
        serde_json::from_slice(&raw).with_context(|| format!("invalid {}", p.display()))
    }

    pub fn write(&self, bundle: &Path) -> Result<()> {
        crate::layout::write_json_atomic(&bundle.join(SOURCE_FILE), self)
    }

    pub fn id_maps(&self) -> Result<(IdMap, IdMap)> {
        let parse = |v: &[String]| -> Result<IdMap> {
            Ok(IdMap(
                v.iter().map(|s| IdRange::parse(s)).collect::<Result<_>>()?,
            ))
        };
        Ok((parse(&self.uid_map)?, parse(&self.gid_map)?))
    }
}

/// A bundle's own lock (`.berth-bundle.lock`), held by commit: one
/// commit of a bundle at a time.
pub fn lock(bundle: &Path) -> Result<crate::store::Held> {
    crate::store::lock_file(&bundle.join(".berth-bundle.lock"), libc::LOCK_EX)
}

/// What a killed commit left in the bundle (under the bundle lock): tree
/// manifests the record does not name, temporary record and tree files,
/// set-aside upper directories.
pub fn remove_stale_files(bundle: &Path, src: &Source) {
    let current = src.tree.as_deref().unwrap_or(TREE_FILE);
    if let Ok(rd) = std::fs::read_dir(bundle) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let stale_tree = n.starts_with("berth-tree.") && n != current;
            let stale_record = n.starts_with("berth-bundle.tmp-");
            if stale_tree || stale_record {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    crate::overlay::remove_old_uppers(bundle);
}

/// Ids of live containers (berth's or runc's state under `roots`) whose
/// bundle is `bundle`.
pub fn live_containers(bundle: &Path, roots: &[PathBuf]) -> Vec<String> {
    let Ok(me) = std::fs::canonicalize(bundle) else {
        return vec![];
    };
    let mut out = Vec::new();
    for root in roots {
        let Ok(rd) = std::fs::read_dir(root) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(raw) = std::fs::read(e.path().join("state.json")) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw) else {
                continue;
            };
            // berth: "bundle", "pid"; runc: labels ["bundle=..."], "init_process_pid".
            let b = v["bundle"].as_str().map(String::from).or_else(|| {
                v["config"]["labels"].as_array().and_then(|l| {
                    l.iter()
                        .filter_map(|x| x.as_str())
                        .find_map(|x| x.strip_prefix("bundle=").map(String::from))
                })
            });
            let pid = v["pid"].as_i64().or_else(|| v["init_process_pid"].as_i64());
            let (Some(b), Some(pid)) = (b, pid) else {
                continue;
            };
            if std::fs::canonicalize(&b).ok().as_deref() != Some(me.as_path()) {
                continue;
            }
            let alive = crate::sys::proc_stat(pid as i32).is_some_and(|(start, state)| {
                let want = v["start_time"]
                    .as_u64()
                    .or_else(|| v["init_process_start"].as_u64());
                state != b'Z' && want.is_none_or(|w| w == start)
            });
            if alive {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// Remove a bundle: refuse while a container of it is alive, unmount an
/// overlay rootfs and release its store layers, then delete the directory.
pub fn remove(bundle: &Path, roots: &[PathBuf]) -> Result<usize> {
    let src = Source::read(bundle)?;
    let live = live_containers(bundle, roots);
    if !live.is_empty() {
        anyhow::bail!(
            "{}: container {} of this bundle is alive; delete it first",
            bundle.display(),
            live.join(", ")
        );
    }
    let mut released = 0;
    if let Some(ov) = &src.overlay {
        crate::overlay::umount(bundle)?;
        let st = crate::store::LayerStore::open(&ov.store)?;
        let _held = st.hold()?;
        released = st.release(&crate::store::absolute(bundle)?, &ov.layers)?;
    }
    crate::tempdir::remove_tree(bundle);
    if bundle.exists() {
        anyhow::bail!("could not remove {} completely", bundle.display());
    }
    Ok(released)
}
