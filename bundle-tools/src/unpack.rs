//! `unpack`: image → bundle, all or nothing. The bundle is built in a
//! temporary directory beside BUNDLE and renamed into place only after every
//! layer verified and applied; on any failure (bad digest, hostile entry,
//! `--max-size`, ENOSPC) the temporary directory is removed.

use crate::blobs::{Compression, Digest};
use crate::convert::{self, ConvertOptions};
use crate::layer::pipeline::{self, Counters};
use crate::layer::{ExtractOptions, Extractor, IdMap};
use crate::layout::platform::PlatformSpec;
use crate::layout::refs::{ImageRef, Selector};
use crate::layout::{index, Layout};
use crate::tempdir::{remove_tree, TempDir};
use crate::{archive, progress, sys, tree};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default `--max-size`: 64 GiB of uncompressed content.
pub const DEFAULT_MAX_SIZE: u64 = 64 << 30;

pub const SOURCE_FILE: &str = "berth-bundle.json";
pub const TREE_FILE: &str = "berth-tree.jsonl";

pub struct UnpackOptions {
    pub image: String,
    pub platform: PlatformSpec,
    pub rootless: bool,
    pub uid_map: IdMap,
    pub gid_map: IdMap,
    pub max_size: u64,
    pub progress: bool,
}

#[derive(Debug)]
pub struct Report {
    pub manifest: String,
    pub layers: usize,
    pub entries: u64,
    pub notes: Vec<String>,
}

struct Umask(u32);
impl Umask {
    fn zero() -> Self {
        Umask(sys::umask(0))
    }
}
impl Drop for Umask {
    fn drop(&mut self) {
        sys::umask(self.0);
    }
}

pub fn unpack(opts: &UnpackOptions, bundle: &Path) -> Result<Report> {
    let name = bundle
        .file_name()
        .with_context(|| format!("invalid bundle path {}", bundle.display()))?;
    let parent = match bundle.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Ok(mut rd) = std::fs::read_dir(bundle) {
        if rd.next().is_some() {
            bail!(
                "bundle {} already exists and is not empty",
                bundle.display()
            );
        }
    } else if std::fs::symlink_metadata(bundle).is_ok() {
        bail!(
            "bundle {} already exists and is not a directory",
            bundle.display()
        );
    }
    let tmp = TempDir::create(parent.join(format!(
        ".{}.berth-unpack-{}",
        name.to_string_lossy(),
        std::process::id()
    )))?;

    let iref = ImageRef::parse(&opts.image);
    let (layout_path, sel, imported) = match &iref {
        ImageRef::Layout { path, sel } => (path.clone(), sel.clone(), false),
        ImageRef::OciArchive(f) | ImageRef::DockerArchive(f) => {
            // Read archives through a throwaway layout inside the temporary
            // bundle directory: one copy of each blob, gone with it.
            let lp = tmp.path().join("image-layout");
            archive::import(f, &lp, "image")?;
            (lp, Selector::Tag("image".into()), true)
        }
    };
    let layout = Layout::open(&layout_path)?;
    let img = layout.resolve(&sel, &opts.platform)?;
    let mut layers = Vec::new();
    for l in img.manifest.layers() {
        let c = Compression::from_layer_media_type(l.media_type().as_ref())
            .with_context(|| format!("layer {}", l.digest()))?;
        let d = index::blob_digest(l).context("layer descriptor")?;
        if !layout.store.contains(&d) {
            bail!("layer {} is missing from {}", d, layout.path.display());
        }
        layers.push((d, l.size(), c));
    }

    // diff_ids are checked only when the config lists one per layer.
    let diff_ids: Vec<Option<Digest>> = match img.config.rootfs().diff_ids() {
        ids if ids.len() == layers.len() => ids
            .iter()
            .map(|d| Digest::parse(d).map(Some))
            .collect::<Result<_>>()
            .context("config rootfs.diff_ids")?,
        _ => vec![None; layers.len()],
    };
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir(&rootfs).with_context(|| format!("create {}", rootfs.display()))?;
    let umask = Umask::zero();
    let xopts = ExtractOptions {
        rootless: opts.rootless,
        uid_map: opts.uid_map.clone(),
        gid_map: opts.gid_map.clone(),
    };
    let mut x = Extractor::new(&rootfs, xopts)?;
    let counters = Arc::new(Counters::default());
    let total: u64 = layers.iter().map(|l| l.1).sum();
    let bar = progress::Progress::new(opts.progress, total, layers.len(), counters.clone());

    let spawn = |i: usize| {
        let (d, size, c) = &layers[i];
        pipeline::spawn(
            &layout.store,
            d.clone(),
            *size,
            *c,
            diff_ids[i].clone(),
            counters.clone(),
            opts.max_size,
        )
    };
    let mut next = if layers.is_empty() {
        None
    } else {
        Some(spawn(0)?)
    };
    for i in 0..layers.len() {
        let Some(mut cur) = next.take() else { break };
        if i + 1 < layers.len() {
            next = Some(spawn(i + 1)?);
        }
        let label = layers[i].0.to_string();
        bar.layer(i);
        x.apply_layer(&mut cur, &label)?;
        cur.finish().with_context(|| format!("layer {label}"))?;
    }
    x.finish()?;
    drop(umask);
    bar.done();

    let copts = ConvertOptions {
        rootless: opts.rootless,
        uid_map: &opts.uid_map,
        gid_map: &opts.gid_map,
    };
    let config = convert::convert(&img.config, x.root_fd(), &copts)?;
    let cfg_path = tmp.path().join("config.json");
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&config)?)
        .with_context(|| format!("write {}", cfg_path.display()))?;

    let entries = tree::write_manifest(&rootfs, &tmp.path().join(TREE_FILE))?;
    let source = json!({
        "layout": if imported { json!(null) } else { json!(std::fs::canonicalize(&layout_path).unwrap_or(layout_path.clone())) },
        "ref": opts.image,
        "manifest": img.manifest_desc.digest(),
        "config": img.manifest.config().digest(),
        "layers": img.manifest.layers().iter().map(|l| l.digest().to_string()).collect::<Vec<_>>(),
        "rootless": opts.rootless,
        "tree": TREE_FILE,
        "entries": entries,
    });
    let src_path = tmp.path().join(SOURCE_FILE);
    std::fs::write(&src_path, serde_json::to_vec_pretty(&source)?)
        .with_context(|| format!("write {}", src_path.display()))?;
    if imported {
        remove_tree(&layout_path);
    }

    // rename(2) replaces an empty directory atomically.
    std::fs::rename(tmp.path(), bundle)
        .with_context(|| format!("move bundle into place at {}", bundle.display()))?;
    tmp.keep();
    Ok(Report {
        manifest: img.manifest_desc.digest().to_string(),
        layers: layers.len(),
        entries: x.entries,
        notes: x.notes.clone(),
    })
}
