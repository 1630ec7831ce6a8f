//! The shared layer store of overlay bundles (default
//! `/var/lib/berth/layers`): each layer extracted once, in overlayfs'
//! own format (whiteouts as 0/0 character devices, opaque directories
//! marked `trusted.overlay.opaque=y`), keyed by its diff_id (the blob
//! digest for configs without diff_ids), and reference-counted by bundle.
//!
//! ```text
//! STORE/layers/sha256/HEX/   an extracted layer (appears complete, by rename)
//! STORE/refs/sha256/HEX/ID   a bundle using it (ID: hash of its path; content: the path)
//! STORE/tmp/                 extractions in progress
//! STORE/lock, STORE/locks/HEX.lock
//! ```
//!
//! Concurrency: reference changes happen under `lock`; a layer is extracted
//! under its own lock into `tmp/` and renamed into place, so two unpacks
//! sharing a layer extract it once and a reader never sees half a layer. An
//! unpack takes its references before extracting, so `rm` of another bundle
//! cannot delete a layer it is about to use.

use crate::blobs::{Compression, Digest, Hasher};
use crate::layer::pipeline::{self, Counters};
use crate::layer::{ExtractOptions, Extractor};
use crate::layout::{index, Layout};
use crate::sys;
use crate::tempdir::remove_tree;
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const DEFAULT_STORE: &str = "/var/lib/berth/layers";

pub struct LayerStore {
    pub root: PathBuf,
}

struct Held(#[allow(dead_code)] File);

fn key_path(key: &str) -> Result<PathBuf> {
    let d = Digest::parse(key).with_context(|| format!("layer store key {key:?}"))?;
    Ok(PathBuf::from(d.algorithm().name()).join(d.hex()))
}

/// A bundle's reference name: a digest of its absolute path.
fn bundle_id(bundle: &Path) -> Result<(String, PathBuf)> {
    let abs = absolute(bundle)?;
    let mut h = Hasher::new(crate::blobs::Algorithm::Sha256);
    h.update(abs.as_os_str().as_encoded_bytes());
    Ok((h.finish().hex()[..32].to_string(), abs))
}

/// The absolute path of `p` whose last component may not exist yet.
pub fn absolute(p: &Path) -> Result<PathBuf> {
    if let Ok(c) = std::fs::canonicalize(p) {
        return Ok(c);
    }
    let name = p
        .file_name()
        .with_context(|| format!("invalid path {}", p.display()))?;
    let parent = match p.parent() {
        Some(x) if !x.as_os_str().is_empty() => x,
        _ => Path::new("."),
    };
    Ok(std::fs::canonicalize(parent)
        .with_context(|| format!("resolve {}", parent.display()))?
        .join(name))
}

impl LayerStore {
    pub fn open(root: &Path) -> Result<Self> {
        for d in ["layers/sha256", "refs/sha256", "tmp", "locks", "empty"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        }
        Ok(LayerStore {
            root: absolute(root)?,
        })
    }

    fn lock(&self, name: &Path) -> Result<Held> {
        let p = self.root.join(name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .with_context(|| format!("open lock {}", p.display()))?;
        sys::flock(f.as_fd(), libc::LOCK_EX).with_context(|| format!("lock {}", p.display()))?;
        Ok(Held(f))
    }

    pub fn layer_path(&self, key: &str) -> Result<PathBuf> {
        Ok(self.root.join("layers").join(key_path(key)?))
    }

    /// An empty directory, the lower layer of an image without layers.
    pub fn empty_dir(&self) -> PathBuf {
        self.root.join("empty")
    }

    pub fn has_layer(&self, key: &str) -> Result<bool> {
        Ok(self.layer_path(key)?.is_dir())
    }

    /// Record that `bundle` uses `keys`.
    pub fn acquire(&self, bundle: &Path, keys: &[String]) -> Result<()> {
        let (id, abs) = bundle_id(bundle)?;
        let _l = self.lock(Path::new("lock"))?;
        for k in keys {
            let dir = self.root.join("refs").join(key_path(k)?);
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            std::fs::write(dir.join(&id), abs.as_os_str().as_encoded_bytes())
                .with_context(|| format!("write reference in {}", dir.display()))?;
        }
        Ok(())
    }

    /// Drop `bundle`'s references; layers nobody uses any more are removed.
    /// Returns how many layers were removed.
    pub fn release(&self, bundle: &Path, keys: &[String]) -> Result<usize> {
        let (id, _) = bundle_id(bundle)?;
        let mut doomed = Vec::new();
        {
            let _l = self.lock(Path::new("lock"))?;
            for k in keys {
                let dir = self.root.join("refs").join(key_path(k)?);
                match std::fs::remove_file(dir.join(&id)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e)
                            .with_context(|| format!("remove reference in {}", dir.display()))
                    }
                }
                let used = std::fs::read_dir(&dir)
                    .map(|mut r| r.next().is_some())
                    .unwrap_or(false);
                if !used {
                    let _ = std::fs::remove_dir(&dir);
                    let lp = self.layer_path(k)?;
                    if lp.exists() {
                        // Out of the way under the lock; removed after it.
                        let t = self.root.join("tmp").join(format!(
                            "gone-{}-{}",
                            std::process::id(),
                            doomed.len()
                        ));
                        std::fs::rename(&lp, &t)
                            .with_context(|| format!("release layer {}", lp.display()))?;
                        doomed.push(t);
                    }
                }
            }
        }
        let n = doomed.len();
        for d in doomed {
            remove_tree(&d);
        }
        Ok(n)
    }

    /// How many bundles use `key`.
    pub fn users(&self, key: &str) -> Result<usize> {
        let dir = self.root.join("refs").join(key_path(key)?);
        Ok(std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0))
    }

    /// Extract layer `desc` of `layout` unless the store has it; `key` is
    /// its diff_id when known (then verified while extracting).
    pub fn ensure_layer(
        &self,
        layout: &Layout,
        desc: &index::Descriptor,
        diff_id: &Digest,
    ) -> Result<bool> {
        self.ensure(
            layout,
            desc,
            &diff_id.to_string(),
            Some(diff_id.clone()),
            u64::MAX,
        )
    }

    /// Extract unless present; returns whether this call extracted it.
    pub fn ensure(
        &self,
        layout: &Layout,
        desc: &index::Descriptor,
        key: &str,
        diff_id: Option<Digest>,
        max_size: u64,
    ) -> Result<bool> {
        let dst = self.layer_path(key)?;
        if dst.is_dir() {
            return Ok(false);
        }
        let d = Digest::parse(key)?;
        let _l = self.lock(&Path::new("locks").join(format!("{}.lock", d.hex())))?;
        if dst.is_dir() {
            // Another unpack extracted it while we waited.
            return Ok(false);
        }
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}-{}", d.hex(), std::process::id()));
        remove_tree(&tmp);
        std::fs::create_dir(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        let res = (|| -> Result<()> {
            let blob = index::blob_digest(desc)?;
            let c = Compression::from_layer_media_type(desc.media_type().as_ref())
                .with_context(|| format!("layer {blob}"))?;
            let opts = ExtractOptions {
                overlay_whiteouts: true,
                ..Default::default()
            };
            let mut x = Extractor::new(&tmp, opts)?;
            let mut s = pipeline::spawn(
                &layout.store,
                blob.clone(),
                desc.size(),
                c,
                diff_id,
                Arc::new(Counters::default()),
                max_size,
            )?;
            let label = blob.to_string();
            x.apply_layer(&mut s, &label)?;
            s.finish().with_context(|| format!("layer {label}"))?;
            x.finish()?;
            if let Some(p) = dst.parent() {
                std::fs::create_dir_all(p)?;
            }
            std::fs::rename(&tmp, &dst)
                .with_context(|| format!("move layer into {}", dst.display()))
        })();
        if res.is_err() {
            remove_tree(&tmp);
        }
        res.map(|()| true)
    }
}

/// Refuse what the store cannot hold.
pub fn check_key(key: &str) -> Result<()> {
    if Digest::parse(key).is_err() {
        bail!("invalid layer key {key:?}");
    }
    Ok(())
}
