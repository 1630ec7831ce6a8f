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
//! STORE/unpacks/ID-PID        an overlay unpack under way (content: the bundle's path)
//! STORE/lock, STORE/locks/HEX.lock, STORE/gc.lock
//! ```
//!
//! Concurrency: reference changes happen under `lock`; a layer is extracted
//! under its own lock into `tmp/` and renamed into place, so two unpacks
//! sharing a layer extract it once and a reader never sees half a layer. An
//! unpack takes its references before extracting, so `rm` of another bundle
//! cannot delete a layer it is about to use.
//!
//! Crashes: every user of the store (unpack, commit, rm) holds `gc.lock`
//! shared for its whole run; `gc` takes it exclusively, so it sees only
//! what killed runs left: extractions in `tmp/`, references taken by an
//! unpack that never finished (its bundle does not exist or does not list
//! the layer), the `.NAME.berth-unpack-PID` directories of unpacks that
//! never finished (marked in `unpacks/` before they make anything, so one
//! killed before it took references is found too), and layers nobody
//! references. A layer directory only ever appears complete.

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

/// A held flock on one of the store's lock files; released on drop (or
/// when the process dies).
pub struct Held(#[allow(dead_code)] File);

/// Open (creating) the lock file `p` and flock it with `op`.
pub fn lock_file(p: &Path, op: libc::c_int) -> Result<Held> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .with_context(|| format!("open lock {}", p.display()))?;
    sys::flock(f.as_fd(), op).with_context(|| format!("lock {}", p.display()))?;
    Ok(Held(f))
}

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
        for d in [
            "layers/sha256",
            "refs/sha256",
            "tmp",
            "locks",
            "empty",
            "unpacks",
        ] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        }
        Ok(LayerStore {
            root: absolute(root)?,
        })
    }

    fn lock(&self, name: &Path) -> Result<Held> {
        self.lock_op(name, libc::LOCK_EX)
    }

    fn lock_op(&self, name: &Path, op: libc::c_int) -> Result<Held> {
        lock_file(&self.root.join(name), op)
    }

    /// Held (shared) by every unpack, commit and rm for its whole run, so
    /// `gc` (exclusive) never takes their work in progress for leftovers.
    pub fn hold(&self) -> Result<Held> {
        self.lock_op(Path::new("gc.lock"), libc::LOCK_SH)
    }

    /// Mark an unpack of `bundle` as under way, before it makes anything
    /// beside the bundle; the mark goes when the returned value is dropped.
    /// One that a killed unpack left tells `gc` whose leftovers to remove.
    pub fn begin_unpack(&self, bundle: &Path) -> Result<UnpackMark> {
        let (id, abs) = bundle_id(bundle)?;
        let path = self
            .root
            .join("unpacks")
            .join(format!("{id}-{}", std::process::id()));
        std::fs::write(&path, abs.as_os_str().as_encoded_bytes())
            .with_context(|| format!("write {}", path.display()))?;
        Ok(UnpackMark(path))
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

/// What `gc` removed from a store.
/// An unpack under way (`LayerStore::begin_unpack`); unmarked on drop.
pub struct UnpackMark(PathBuf);

impl Drop for UnpackMark {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub layers: usize,
    pub references: usize,
    pub temporaries: usize,
    pub bundles: usize,
}

/// Whether the bundle at `path` (a reference's content) uses `key` of the
/// store at `root`.
fn bundle_uses(path: &Path, root: &Path, key: &str) -> bool {
    let Ok(src) = crate::bundle::Source::read(path) else {
        return false;
    };
    src.overlay.is_some_and(|ov| {
        absolute(&ov.store).is_ok_and(|s| s == root) && ov.layers.iter().any(|k| k == key)
    })
}

/// The `.NAME.berth-unpack-PID` directories an unpack of `bundle` left
/// (with their rootfs unmounted first); unpack itself removes those of
/// dead processes, gc (no unpack running) all of them.
pub fn remove_unpack_leftovers(bundle: &Path, only_dead: bool) -> usize {
    let (Some(name), Some(parent)) = (bundle.file_name(), bundle.parent()) else {
        return 0;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let prefix = format!(".{}.berth-unpack-", name.to_string_lossy());
    let Ok(rd) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = fname.strip_prefix(&prefix) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        // Our own pid is not an unpack in progress: a stale one of a
        // process that had the same pid.
        let alive = pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists();
        if only_dead && alive {
            continue;
        }
        let p = e.path();
        let rootfs = p.join("rootfs");
        if crate::overlay::is_mounted(&rootfs).unwrap_or(false) {
            if let Ok(c) = sys::cstr(rootfs.as_os_str()) {
                let _ = sys::umount2(&c, libc::MNT_DETACH);
            }
        }
        remove_tree(&p);
        n += 1;
    }
    n
}

impl LayerStore {
    /// Remove what killed runs left (see the module notes): temporary
    /// extractions, references of bundles that do not use the layer, the
    /// unfinished unpack directories of those bundles, and layers no bundle
    /// references. Waits for running unpacks, commits and rms.
    pub fn gc(&self) -> Result<GcReport> {
        let _ex = self.lock_op(Path::new("gc.lock"), libc::LOCK_EX)?;
        let _l = self.lock(Path::new("lock"))?;
        let mut rep = GcReport::default();
        let tmp = self.root.join("tmp");
        for e in std::fs::read_dir(&tmp).with_context(|| format!("read {}", tmp.display()))? {
            let e = e.with_context(|| format!("read {}", tmp.display()))?;
            remove_tree(&e.path());
            rep.temporaries += 1;
        }
        let marks = self.root.join("unpacks");
        for e in std::fs::read_dir(&marks).into_iter().flatten().flatten() {
            if let Ok(raw) = std::fs::read(e.path()) {
                let bundle = PathBuf::from(String::from_utf8_lossy(&raw).into_owned());
                rep.bundles += remove_unpack_leftovers(&bundle, false);
            }
            std::fs::remove_file(e.path())
                .with_context(|| format!("remove {}", e.path().display()))?;
        }
        for alg in ["sha256", "sha512"] {
            let refs = self.root.join("refs").join(alg);
            let Ok(rd) = std::fs::read_dir(&refs) else {
                continue;
            };
            for e in rd.flatten() {
                let key = format!("{alg}:{}", e.file_name().to_string_lossy());
                for r in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                    let Ok(raw) = std::fs::read(r.path()) else {
                        continue;
                    };
                    let bundle = PathBuf::from(String::from_utf8_lossy(&raw).into_owned());
                    if !bundle_uses(&bundle, &self.root, &key) {
                        rep.bundles += remove_unpack_leftovers(&bundle, false);
                        std::fs::remove_file(r.path())
                            .with_context(|| format!("remove {}", r.path().display()))?;
                        rep.references += 1;
                    }
                }
                let _ = std::fs::remove_dir(e.path());
            }
            let layers = self.root.join("layers").join(alg);
            let Ok(rd) = std::fs::read_dir(&layers) else {
                continue;
            };
            for e in rd.flatten() {
                let key = format!("{alg}:{}", e.file_name().to_string_lossy());
                if Digest::parse(&key).is_err() || self.users(&key)? == 0 {
                    let t = tmp.join(format!("gone-{}-gc", std::process::id()));
                    std::fs::rename(e.path(), &t)
                        .with_context(|| format!("remove layer {}", e.path().display()))?;
                    remove_tree(&t);
                    rep.layers += 1;
                }
            }
        }
        Ok(rep)
    }
}

/// Refuse what the store cannot hold.
pub fn check_key(key: &str) -> Result<()> {
    if Digest::parse(key).is_err() {
        bail!("invalid layer key {key:?}");
    }
    Ok(())
}
