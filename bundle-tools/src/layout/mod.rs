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

    /// Point `tag` at `desc` in index.json, replacing an older entry.
    pub fn tag(&self, tag: &str, desc: Descriptor) -> Result<()> {
        let mut desc = desc;
        index::set_ref_name(&mut desc, tag);
        let mut idx = self.index_raw()?;
        let entry = serde_json::to_value(&desc).context("serialise descriptor")?;
        let list = idx
            .as_object_mut()
            .context("index.json is not an object")?
            .entry("manifests")
            .or_insert_with(|| serde_json::json!([]));
        if let Some(list) = list.as_array_mut() {
            list.retain(|d| d["annotations"][index::ANNOTATION_REF_NAME] != tag);
            list.push(entry);
        }
        write_json_atomic(&self.path.join("index.json"), &idx)
    }

    pub fn read_json<T: serde::de::DeserializeOwned>(&self, d: &Descriptor) -> Result<T> {
        let digest = index::blob_digest(d)?;
        self.store.read_json(&digest, d.size())
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
    std::fs::write(&tmp, data).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename {} into place", path.display()))
}

/// Read an index blob (used by platform selection for nested indexes).
pub fn read_index(layout: &Layout, d: &Descriptor) -> Result<ImageIndex> {
    layout.read_json(d)
}
