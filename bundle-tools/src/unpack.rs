//! `unpack`: image → bundle, all or nothing. The bundle is built in a
//! temporary directory beside BUNDLE and renamed into place only after every
//! layer verified and applied; on any failure (bad digest, hostile entry,
//! `--max-size`, ENOSPC) the temporary directory is removed.

use crate::blobs::{Compression, Digest};
use crate::bundle::{Overlay, Source};
use crate::convert::{self, ConvertOptions};
use crate::layer::pipeline::{self, Counters};
use crate::layer::{ExtractOptions, Extractor, IdMap};
use crate::layout::platform::PlatformSpec;
use crate::layout::refs::{ImageRef, Selector};
use crate::layout::{index, Layout};
use crate::store::LayerStore;
use crate::tempdir::{remove_tree, TempDir};
use crate::{archive, overlay, progress, sys, tree};
use anyhow::{bail, Context, Result};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default `--max-size`: 64 GiB of uncompressed content.
pub const DEFAULT_MAX_SIZE: u64 = 64 << 30;

pub use crate::bundle::{SOURCE_FILE, TREE_FILE};

pub struct UnpackOptions {
    pub image: String,
    pub platform: PlatformSpec,
    pub rootless: bool,
    pub uid_map: IdMap,
    pub gid_map: IdMap,
    pub max_size: u64,
    pub progress: bool,
    /// Overlay bundle on the layer store at this path.
    pub overlay: Option<PathBuf>,
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
    if opts.overlay.is_some() {
        if opts.rootless {
            bail!("--overlay is not available rootless: an overlay mounted in the user's namespace is not seen by the runtime, and fuse-overlayfs is not used; unpack flat (without --overlay)");
        }
        if !opts.uid_map.is_empty() || !opts.gid_map.is_empty() {
            bail!("--overlay does not take --uid-map/--gid-map (store layers keep the image's ids); unpack flat");
        }
    }
    // What a killed unpack of the same bundle left (a process that is gone).
    crate::store::remove_unpack_leftovers(bundle, true);
    // An overlay unpack holds the store against gc for its whole run.
    let store = match &opts.overlay {
        Some(p) => Some(LayerStore::open(p)?),
        None => None,
    };
    let _held = store.as_ref().map(LayerStore::hold).transpose()?;
    // Before anything is made beside the bundle: a killed unpack's
    // directory is then gc's to find, references taken or not.
    let _mark = store
        .as_ref()
        .map(|st| st.begin_unpack(bundle))
        .transpose()?;
    let tmp = TempDir::create(parent.join(format!(
        ".{}.berth-unpack-{}",
        name.to_string_lossy(),
        std::process::id()
    )))?;

    let iref = ImageRef::parse(&opts.image);
    let (layout_path, sel, imported) = match &iref {
        ImageRef::Layout { path, sel } => (path.clone(), sel.clone(), false),
        ImageRef::OciArchive(f, r) | ImageRef::DockerArchive(f, r) => {
            // Read archives through a throwaway layout inside the temporary
            // bundle directory: one copy of each blob, gone with it.
            let lp = tmp.path().join("image-layout");
            archive::import_one(f, r.as_deref(), &lp, "image")?;
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
    let mut source = Source {
        layout: if imported {
            None
        } else {
            Some(std::fs::canonicalize(&layout_path).unwrap_or(layout_path.clone()))
        },
        reference: opts.image.clone(),
        manifest: img.manifest_desc.digest().to_string(),
        config: img.manifest.config().digest().to_string(),
        layers: layers.iter().map(|l| l.0.to_string()).collect(),
        rootless: opts.rootless,
        uid_map: opts.uid_map.0.iter().map(|r| r.to_string()).collect(),
        gid_map: opts.gid_map.0.iter().map(|r| r.to_string()).collect(),
        tree: None,
        entries: 0,
        overlay: None,
    };

    let copts = ConvertOptions {
        rootless: opts.rootless,
        uid_map: &opts.uid_map,
        gid_map: &opts.gid_map,
    };
    let (config, entries, notes, mounted) = if let Some(st) = &store {
        // Overlay: the layers the store lacks are extracted into it (once,
        // shared); the bundle itself costs a mount.
        let keys: Vec<String> = (0..layers.len())
            .map(|i| diff_ids[i].as_ref().unwrap_or(&layers[i].0).to_string())
            .collect();
        let final_path = crate::store::absolute(bundle)?;
        st.acquire(&final_path, &keys)?;
        let guard = Release {
            st,
            bundle: final_path.clone(),
            keys: keys.clone(),
            armed: true,
        };
        for (i, l) in img.manifest.layers().iter().enumerate() {
            if sys::interrupted() {
                bail!("interrupted by a signal");
            }
            st.ensure(&layout, l, &keys[i], diff_ids[i].clone(), opts.max_size)?;
        }
        let ov = Overlay {
            store: st.root.clone(),
            layers: keys,
        };
        overlay::mount(tmp.path(), &ov)?;
        let mounted = Mounted(rootfs.clone());
        let rfd = std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(&rootfs)
            .with_context(|| format!("open {}", rootfs.display()))?;
        let config = convert::convert(&img.config, rfd.as_fd(), &copts)?;
        source.overlay = Some(ov);
        guard.disarm();
        (config, 0, Vec::new(), Some(mounted))
    } else {
        let umask = Umask::zero();
        let xopts = ExtractOptions {
            rootless: opts.rootless,
            uid_map: opts.uid_map.clone(),
            gid_map: opts.gid_map.clone(),
            overlay_whiteouts: false,
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
        let config = convert::convert(&img.config, x.root_fd(), &copts)?;
        let entries = tree::write_manifest(&rootfs, &tmp.path().join(TREE_FILE))?;
        source.tree = Some(TREE_FILE.into());
        source.entries = entries;
        (config, x.entries, x.notes.clone(), None)
    };

    let cfg_path = tmp.path().join("config.json");
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&config)?)
        .with_context(|| format!("write {}", cfg_path.display()))?;
    source.write(tmp.path())?;
    if imported {
        remove_tree(&layout_path);
    }

    // rename(2) replaces an empty directory atomically (a mount inside it
    // moves along).
    std::fs::rename(tmp.path(), bundle)
        .with_context(|| format!("move bundle into place at {}", bundle.display()))?;
    if let Some(m) = mounted {
        std::mem::forget(m);
    }
    tmp.keep();
    Ok(Report {
        manifest: img.manifest_desc.digest().to_string(),
        layers: layers.len(),
        entries,
        notes,
    })
}

/// Releases an unpack's store references unless it succeeded.
struct Release<'a> {
    st: &'a LayerStore,
    bundle: PathBuf,
    keys: Vec<String>,
    armed: bool,
}

impl Release<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.st.release(&self.bundle, &self.keys);
        }
    }
}

/// Unmounts a temporary bundle's rootfs unless forgotten.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Ok(c) = sys::cstr(self.0.as_os_str()) {
            let _ = sys::umount2(&c, libc::MNT_DETACH);
        }
    }
}
