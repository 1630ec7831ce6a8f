//! An OCI image layout on disk (`oci-layout`, `index.json`, `blobs/`):
//! opening, resolving a reference to one image manifest (through nested
//! and multi-platform indexes), and tagging.

pub mod index;
pub mod platform;
pub mod refs;

use crate::blobs::{Digest, Store};
use anyhow::{bail, Context, Result};
use index::{Descriptor, ImageConfig, Index, Manifest, ANNOTATION_REF_NAME};
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
    pub manifest: Manifest,
    pub config: ImageConfig,
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
            let idx = Index {
                schema_version: 2,
                media_type: Some(index::MT_OCI_INDEX.into()),
                manifests: vec![],
                annotations: None,
            };
            write_json_atomic(&path.join("index.json"), &idx)?;
        }
        Layout::open(path)
    }

    pub fn index(&self) -> Result<Index> {
        let p = self.path.join("index.json");
        let raw = std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&raw).with_context(|| format!("invalid {}", p.display()))
    }

    pub fn write_index(&self, idx: &Index) -> Result<()> {
        write_json_atomic(&self.path.join("index.json"), idx)
    }

    /// Point `tag` at `desc` in index.json, replacing an older entry.
    pub fn tag(&self, tag: &str, mut desc: Descriptor) -> Result<()> {
        let mut idx = self.index()?;
        idx.manifests.retain(|d| d.ref_name() != Some(tag));
        desc.annotations
            .get_or_insert_with(Default::default)
            .insert(ANNOTATION_REF_NAME.into(), tag.into());
        idx.manifests.push(desc);
        self.write_index(&idx)
    }

    pub fn read_json<T: serde::de::DeserializeOwned>(&self, d: &Descriptor) -> Result<T> {
        let digest = Digest::parse(&d.digest)?;
        self.store.read_json(&digest, d.size)
    }

    /// The index.json entries a selector names.
    fn top_candidates(&self, sel: &Selector) -> Result<Vec<Descriptor>> {
        let idx = self.index()?;
        let found: Vec<Descriptor> = match sel {
            Selector::Tag(t) => idx
                .manifests
                .iter()
                .filter(|d| d.ref_name() == Some(t.as_str()))
                .cloned()
                .collect(),
            Selector::Digest(dg) => {
                Digest::parse(dg)?;
                let hit: Vec<_> = idx
                    .manifests
                    .iter()
                    .filter(|d| &d.digest == dg)
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
                if idx.manifests.len() == 1 {
                    idx.manifests.clone()
                } else {
                    idx.manifests
                        .iter()
                        .filter(|d| d.ref_name() == Some("latest"))
                        .cloned()
                        .collect()
                }
            }
        };
        if found.is_empty() {
            let tags: Vec<_> = idx.manifests.iter().filter_map(|d| d.ref_name()).collect();
            bail!(
                "{}: no image {:?} (tags: {})",
                self.path.display(),
                sel,
                tags.join(", ")
            );
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
            Some(m) => m.to_string(),
            None if v.get("manifests").is_some() => index::MT_OCI_INDEX.into(),
            None => index::MT_OCI_MANIFEST.into(),
        };
        Ok(Descriptor {
            media_type,
            digest: dg.into(),
            size,
            platform: None,
            annotations: None,
            urls: None,
        })
    }

    /// Resolve a selector to one image for `want` (host platform by default).
    pub fn resolve(&self, sel: &Selector, want: &PlatformSpec) -> Result<Resolved> {
        let tops = self.top_candidates(sel)?;
        let desc = platform::select(self, &tops, want)?;
        self.resolve_manifest(desc)
    }

    pub fn resolve_manifest(&self, desc: Descriptor) -> Result<Resolved> {
        if !index::is_manifest(&desc.media_type) {
            bail!(
                "{}: descriptor {} has media type {:?}, not an image manifest",
                self.path.display(),
                desc.digest,
                desc.media_type
            );
        }
        let manifest: Manifest = self.read_json(&desc)?;
        let config_raw: serde_json::Value = self.read_json(&manifest.config)?;
        let config: ImageConfig = serde_json::from_value(config_raw.clone())
            .with_context(|| format!("config {}: not an image config", manifest.config.digest))?;
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
pub fn read_index(layout: &Layout, d: &Descriptor) -> Result<Index> {
    layout.read_json(d)
}
