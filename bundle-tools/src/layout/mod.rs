//! An OCI image layout on disk (`oci-layout`, `index.json`, `blobs/`):
//! opening, resolving a reference to one image manifest (through nested
//! and multi-platform indexes), and tagging.

pub mod index;
pub mod platform;
pub mod refs;

use crate::blobs::{Digest, Store};
use anyhow::{bail, Context, Result};
use index::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use platform::PlatformSpec;
use refs::Selector;
use std::path::{Path, PathBuf};

pub struct Layout {
    pub path: PathBuf,
    pub store: Store,
}

/// A held flock on one of the layout's lock files; released on drop.
pub struct LayoutLock(#[allow(dead_code)] std::fs::File);

/// One image, resolved down to its manifest and config.
#[derive(Debug)]
pub struct Resolved {
    pub manifest_desc: Descriptor,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    pub config_raw: serde_json::Value,
}

impl Layout {
    pub fn open(path: &Path) -> Result<Self> {
        let marker = path.join("oci-layout");
        let raw = std::fs::read(&marker).with_context(|| {
            format!(
                "{} is not an OCI image layout: read {}",
                path.display(),
                marker.display()
            )
        })?;
        let v: serde_json::Value = serde_json::from_slice(&raw)
            .with_context(|| format!("invalid JSON in {}", marker.display()))?;
        match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some(ver) if ver.starts_with("1.") => {}
            other => bail!(
                "{}: unsupported imageLayoutVersion {other:?}",
                marker.display()
            ),
        }
        Ok(Layout {
            path: path.to_path_buf(),
            store: Store::new(path),
        })
    }

    /// Open a layout, creating an empty one if the directory has none.
    pub fn open_or_create(path: &Path) -> Result<Self> {
        if !path.join("oci-layout").exists() {
            std::fs::create_dir_all(path.join("blobs/sha256"))
                .with_context(|| format!("create layout {}", path.display()))?;
            std::fs::write(
                path.join("oci-layout"),
                br#"{"imageLayoutVersion":"1.0.0"}"#,
            )
            .with_context(|| format!("write {}/oci-layout", path.display()))?;
            write_json_atomic(&path.join("index.json"), &index::new_index(vec![]))?;
        }
        Layout::open(path)
    }

    pub fn index(&self) -> Result<ImageIndex> {
        let p = self.path.join("index.json");
        let raw = std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&raw).with_context(|| format!("invalid {}", p.display()))
    }

    /// index.json as written, every field kept (for read-modify-write).
    fn index_raw(&self) -> Result<serde_json::Value> {
        let p = self.path.join("index.json");
        let raw = std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
        let v: serde_json::Value =
            serde_json::from_slice(&raw).with_context(|| format!("invalid {}", p.display()))?;
        if !v.get("manifests").is_none_or(|m| m.is_array()) {
            bail!("invalid {}: manifests is not a list", p.display());
        }
        Ok(v)
    }

    fn lock_file(&self, name: &str, op: libc::c_int) -> Result<LayoutLock> {
        let p = self.path.join(name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&p)
            .with_context(|| format!("open lock {}", p.display()))?;
        crate::sys::flock(std::os::fd::AsFd::as_fd(&f), op)
            .with_context(|| format!("lock {}", p.display()))?;
        Ok(LayoutLock(f))
    }

    /// Writers of new blobs (commit, config, import) hold this shared for
    /// their whole run; `gc` holds it exclusively, so it never removes a
    /// blob that is written but not yet tagged.
    pub fn lock_blobs(&self, exclusive: bool) -> Result<LayoutLock> {
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        self.lock_file(".berth-blobs.lock", op)
    }

    /// Serialises read-modify-write of index.json between processes.
    fn lock_index(&self) -> Result<LayoutLock> {
        self.lock_file(".berth-index.lock", libc::LOCK_EX)
    }

    /// Edit the index.json entry list under the index lock, atomically.
    pub fn edit_index<T>(
        &self,
        f: impl FnOnce(&mut Vec<serde_json::Value>) -> Result<T>,
    ) -> Result<T> {
        let _l = self.lock_index()?;
        let mut idx = self.index_raw()?;
        let list = idx
            .as_object_mut()
            .context("index.json is not an object")?
            .entry("manifests")
            .or_insert_with(|| serde_json::json!([]));
        let list = list
            .as_array_mut()
            .context("index.json: manifests is not a list")?;
        let r = f(list)?;
        write_json_atomic(&self.path.join("index.json"), &idx)?;
        Ok(r)
    }

    /// Remove the `index.tmp-PID` files of writers killed before their
    /// rename (under the index lock, so none is being written).
    pub fn remove_index_temporaries(&self) -> Result<()> {
        let _l = self.lock_index()?;
        let rd = std::fs::read_dir(&self.path)
            .with_context(|| format!("read {}", self.path.display()))?;
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("index.tmp-") {
                std::fs::remove_file(e.path())
                    .with_context(|| format!("remove {}", e.path().display()))?;
            }
        }
        Ok(())
    }

    /// Remove `tag`; whether it was there.
    pub fn untag(&self, tag: &str) -> Result<bool> {
        self.edit_index(|list| {
            let before = list.len();
            list.retain(|d| d["annotations"][index::ANNOTATION_REF_NAME] != tag);
            Ok(list.len() != before)
        })
    }

    /// Make blob `d` present here, from `other` (hardlinked when possible).
    pub fn copy_blob_from(&self, other: &Layout, d: &Digest) -> Result<()> {
        if self.store.contains(d) {
            return Ok(());
        }
        let src = other.store.path(d);
        let (tmp, f) = self.store.create_temp()?;
        drop(f);
        let _ = std::fs::remove_file(&tmp);
        if std::fs::hard_link(&src, &tmp).is_err() {
            std::fs::copy(&src, &tmp)
                .with_context(|| format!("copy blob {d} from {}", other.path.display()))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("sync {}", tmp.display()))?;
        }
        self.store.adopt_temp(&tmp, d)
    }

    /// Point `tag` at `desc` in index.json, replacing an older entry.
    pub fn tag(&self, tag: &str, desc: Descriptor) -> Result<()> {
        let mut desc = desc;
        index::set_ref_name(&mut desc, tag);
        let entry = serde_json::to_value(&desc).context("serialise descriptor")?;
        self.edit_index(|list| {
            list.retain(|d| d["annotations"][index::ANNOTATION_REF_NAME] != tag);
            list.push(entry);
            Ok(())
        })
    }

    pub fn read_json<T: serde::de::DeserializeOwned>(&self, d: &Descriptor) -> Result<T> {
        let digest = index::blob_digest(d)?;
        self.store.read_json(&digest, d.size())
    }

    /// The one index.json entry (or blob) a selector names, as `tag` and
    /// `rm` see it: a multi-platform index stays an index.
    pub fn top_descriptor(&self, sel: &Selector) -> Result<Descriptor> {
        let mut c = self.top_candidates(sel)?;
        if c.len() > 1 {
            bail!("{}: {} entries match {sel}", self.path.display(), c.len());
        }
        Ok(c.remove(0))
    }

    /// The index.json entries a selector names.
    fn top_candidates(&self, sel: &Selector) -> Result<Vec<Descriptor>> {
        let idx = self.index()?;
        let manifests = idx.manifests();
        let found: Vec<Descriptor> = match sel {
            Selector::Tag(t) => manifests
                .iter()
                .filter(|d| index::ref_name(d) == Some(t.as_str()))
                .cloned()
                .collect(),
            Selector::Digest(dg) => {
                Digest::parse(dg)?;
                let hit: Vec<_> = manifests
                    .iter()
                    .filter(|d| d.digest().as_ref() == dg)
                    .cloned()
                    .collect();
                if hit.is_empty() {
                    // A digest may name a blob no index entry points at (a
                    // platform manifest inside an index): look it up directly.
                    vec![self.descriptor_for_blob(dg)?]
                } else {
                    hit
                }
            }
            Selector::Default => {
                if manifests.len() == 1 {
                    manifests.clone()
                } else {
                    manifests
                        .iter()
                        .filter(|d| index::ref_name(d) == Some("latest"))
                        .cloned()
                        .collect()
                }
            }
        };
        if found.is_empty() {
            let tags: Vec<_> = manifests.iter().filter_map(index::ref_name).collect();
            let tags = if tags.is_empty() {
                "none".to_string()
            } else {
                tags.join(", ")
            };
            bail!("{}: no image {sel} (tags: {tags})", self.path.display());
        }
        Ok(found)
    }

    fn descriptor_for_blob(&self, dg: &str) -> Result<Descriptor> {
        let digest = Digest::parse(dg)?;
        let p = self.store.path(&digest);
        let size = std::fs::metadata(&p)
            .with_context(|| format!("blob {dg} not in {}", self.path.display()))?
            .len();
        let v: serde_json::Value = self.store.read_json(&digest, size)?;
        let media_type = match v.get("mediaType").and_then(|m| m.as_str()) {
            Some(m) => MediaType::from(m),
            None if v.get("manifests").is_some() => MediaType::ImageIndex,
            None => MediaType::ImageManifest,
        };
        Ok(index::descriptor(media_type, &digest, size))
    }

    /// Resolve a selector to one image for `want` (host platform by default).
    pub fn resolve(&self, sel: &Selector, want: &PlatformSpec) -> Result<Resolved> {
        let tops = self.top_candidates(sel)?;
        let desc = platform::select(self, &tops, want)?;
        self.resolve_manifest(desc)
    }

    pub fn resolve_manifest(&self, desc: Descriptor) -> Result<Resolved> {
        if !index::is_manifest(desc.media_type()) {
            bail!(
                "{}: descriptor {} has media type {}, not an image manifest",
                self.path.display(),
                desc.digest(),
                desc.media_type()
            );
        }
        let manifest: ImageManifest = self.read_json(&desc)?;
        let config_raw: serde_json::Value = self.read_json(manifest.config())?;
        let config = index::parse_config(&config_raw)
            .with_context(|| format!("config {}", manifest.config().digest()))?;
        Ok(Resolved {
            manifest_desc: desc,
            manifest,
            config,
            config_raw,
        })
    }
}

/// Write JSON through a temporary file and rename, so readers never see a
/// half-written index.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, v: &T) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let data = serde_json::to_vec(v).context("serialise JSON")?;
    let res = (|| -> Result<()> {
        use std::io::Write;
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("write {}", tmp.display()))?;
        f.write_all(&data)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("rename {} into place", path.display()))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        crate::blobs::sync_dir(dir)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Read an index blob (used by platform selection for nested indexes).
pub fn read_index(layout: &Layout, d: &Descriptor) -> Result<ImageIndex> {
    layout.read_json(d)
}
