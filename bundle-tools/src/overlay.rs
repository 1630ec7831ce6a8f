//! Mounting an overlay bundle: `rootfs` = overlayfs of the store's layers
//! (top first) with `upper`/`work` in the bundle.
//!
//! Limits: mount(2) takes all options in one page (4 KiB), which absolute
//! store paths fill at ~40 layers. Layers are therefore given one by one
//! with fsconfig's `lowerdir+` (Linux 6.8), each its own string; kernels
//! without it get mount(2) with paths relative to the store (`chdir`ed
//! into), ~65 bytes a layer. overlayfs stacks at most 500 lower layers.

use crate::bundle::Overlay;
use crate::store::LayerStore;
use crate::sys;
use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const UPPER: &str = "upper";
pub const WORK: &str = "work";
/// overlayfs' OVL_MAX_STACK.
pub const MAX_LAYERS: usize = 500;

fn c(p: &Path) -> Result<CString> {
    Ok(sys::cstr(p.as_os_str())?)
}

/// Whether `rootfs` is a mount point (a different device than its parent).
pub fn is_mounted(rootfs: &Path) -> Result<bool> {
    let md =
        std::fs::symlink_metadata(rootfs).with_context(|| format!("lstat {}", rootfs.display()))?;
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    let pmd = std::fs::metadata(parent).with_context(|| format!("stat {}", parent.display()))?;
    Ok(md.dev() != pmd.dev())
}

/// Lower directories, top layer first.
fn lowers(st: &LayerStore, ov: &Overlay) -> Result<Vec<PathBuf>> {
    if ov.layers.len() > MAX_LAYERS {
        bail!(
            "the image has {} layers; overlayfs stacks at most {MAX_LAYERS} (use a flat unpack)",
            ov.layers.len()
        );
    }
    let mut v = Vec::new();
    let mut above: Option<&String> = None;
    for k in ov.layers.iter().rev() {
        // A layer on itself changes nothing (records of older versions
        // stacked an identical commit twice, which overlayfs refuses).
        if above == Some(k) {
            continue;
        }
        above = Some(k);
        let p = st.layer_path(k)?;
        if !p.is_dir() {
            bail!(
                "layer {k} is missing from the store {} (was it removed by hand?)",
                st.root.display()
            );
        }
        v.push(p);
    }
    if v.is_empty() {
        v.push(st.empty_dir());
    }
    Ok(v)
}

/// Mount `bundle/rootfs`.
pub fn mount(bundle: &Path, ov: &Overlay) -> Result<()> {
    let st = LayerStore::open(&ov.store)?;
    let rootfs = bundle.join("rootfs");
    if is_mounted(&rootfs)? {
        bail!("{} is already mounted", rootfs.display());
    }
    for d in [UPPER, WORK] {
        let p = bundle.join(d);
        std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
    }
    let upper = std::fs::canonicalize(bundle.join(UPPER))?;
    let work = std::fs::canonicalize(bundle.join(WORK))?;
    let lowers = lowers(&st, ov)?;
    match mount_fsconfig(&rootfs, &lowers, &upper, &work) {
        Ok(()) => Ok(()),
        Err(e)
            if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOSYS) =>
        {
            mount_legacy(&st, &rootfs, &lowers, &upper, &work)
        }
        Err(e) => Err(e).with_context(|| format!("mount overlay on {}", rootfs.display())),
    }
}

fn mount_fsconfig(
    rootfs: &Path,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> std::io::Result<()> {
    let inval = |_| std::io::Error::from_raw_os_error(libc::EINVAL);
    let fs = sys::fsopen(c"overlay")?;
    let set = |k: &std::ffi::CStr, v: &Path| -> std::io::Result<()> {
        let v = CString::new(v.as_os_str().as_bytes()).map_err(inval)?;
        sys::fsconfig_str(fs.as_fd(), sys::FSCONFIG_SET_STRING, Some(k), Some(&v))
    };
    sys::fsconfig_str(
        fs.as_fd(),
        sys::FSCONFIG_SET_STRING,
        Some(c"source"),
        Some(c"berth-bundle"),
    )?;
    for l in lowers {
        set(c"lowerdir+", l)?;
    }
    set(c"upperdir", upper)?;
    set(c"workdir", work)?;
    sys::fsconfig_str(fs.as_fd(), sys::FSCONFIG_CMD_CREATE, None, None)?;
    let mnt = sys::fsmount(fs.as_fd(), 0)?;
    let target = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(rootfs)?;
    sys::move_mount(mnt.as_fd(), target.as_fd())
}

use std::os::unix::fs::OpenOptionsExt;

fn mount_legacy(
    st: &LayerStore,
    rootfs: &Path,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<()> {
    let base = st.root.clone();
    let rel: Vec<String> = lowers
        .iter()
        .map(|l| {
            l.strip_prefix(&base)
                .unwrap_or(l)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        rel.join(":"),
        upper.display(),
        work.display()
    );
    if data.len() >= 4096 {
        bail!("overlay options for {} layers exceed the kernel's page limit on this kernel (no fsconfig lowerdir+)", lowers.len());
    }
    let target = c(&std::fs::canonicalize(rootfs)?)?;
    let old = std::env::current_dir().context("current directory")?;
    std::env::set_current_dir(&base).with_context(|| format!("chdir {}", base.display()))?;
    let r = sys::mount_data(
        c"berth-bundle",
        &target,
        c"overlay",
        0,
        &CString::new(data)?,
    );
    std::env::set_current_dir(old).context("chdir back")?;
    r.with_context(|| format!("mount overlay on {}", rootfs.display()))
}

/// Unmount `bundle/rootfs` (nothing to do when it is not mounted).
pub fn umount(bundle: &Path) -> Result<()> {
    let rootfs = bundle.join("rootfs");
    if !is_mounted(&rootfs)? {
        return Ok(());
    }
    let p = c(&std::fs::canonicalize(&rootfs)?)?;
    sys::umount2(&p, 0).with_context(|| format!("unmount {}", rootfs.display()))
}

/// Empty `upper` and `work` (after their content became a layer): each is
/// renamed out of the way in one step, a new empty one made, the old one
/// removed; `.upper-old-*`/`.work-old-*` of a killed commit go too.
pub fn reset_upper(bundle: &Path) -> Result<()> {
    for d in [UPPER, WORK] {
        let p = bundle.join(d);
        let old = bundle.join(format!(".{d}-old-{}", std::process::id()));
        if p.exists() {
            crate::tempdir::remove_tree(&old);
            std::fs::rename(&p, &old).with_context(|| format!("move {} aside", p.display()))?;
        }
        std::fs::create_dir(&p).with_context(|| format!("create {}", p.display()))?;
    }
    remove_old_uppers(bundle);
    Ok(())
}

/// Remove the set-aside upper/work directories of earlier commits.
pub fn remove_old_uppers(bundle: &Path) {
    let Ok(rd) = std::fs::read_dir(bundle) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&format!(".{UPPER}-old-")) || n.starts_with(&format!(".{WORK}-old-")) {
            crate::tempdir::remove_tree(&e.path());
        }
    }
}
