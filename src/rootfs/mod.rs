//! The container's root filesystem, set up inside its new mount namespace.
//!
//! Call order (from `process::init`, in the child):
//! `prepare` → (createContainer hooks) → optional `mount_console` → `pivot`
//! → (hostname, sysctls) → `finalize`.

mod cgroupfs;
mod copyup;
mod devices;
pub mod idmap;
pub mod mounts;
pub mod resolve;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Spec;

use crate::cgroups::Manager;
use crate::error::{Context, Error, Result};
use resolve::Kind;

pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    /// Absolute, canonical host path of the root filesystem.
    pub rootfs: &'a Path,
    /// Bundle directory: relative bind-mount sources resolve against it.
    pub bundle: &'a Path,
    /// The container has a user namespace: devices are bind-mounted from the
    /// host instead of created with mknod.
    pub userns: bool,
    /// The container has its own cgroup namespace.
    pub cgroupns: bool,
    /// `--no-pivot`: move the rootfs onto / and chroot instead of pivot_root.
    pub no_pivot: bool,
    /// The container's cgroups, for the `cgroup` mount.
    pub cgroup: &'a Manager,
    /// Detached idmapped mounts by `mounts` index (see `idmap`).
    pub idmapped: &'a [Option<OwnedFd>],
}

fn propagation(spec: &Spec) -> Result<Option<MsFlags>> {
    let p = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref());
    Ok(Some(match p {
        None | Some("") => return Ok(None),
        Some("shared") => MsFlags::MS_SHARED,
        Some("rshared") => MsFlags::MS_SHARED | MsFlags::MS_REC,
        Some("slave") => MsFlags::MS_SLAVE,
        Some("rslave") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some("private") => MsFlags::MS_PRIVATE,
        Some("rprivate") => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        Some("unbindable") => MsFlags::MS_UNBINDABLE,
        Some("runbindable") => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        Some(other) => crate::bail!("linux.rootfsPropagation: unknown value {other:?}"),
    }))
}

fn open_root(rootfs: &Path) -> Result<OwnedFd> {
    let f =
        std::fs::File::open(rootfs).with_context(|| format!("open rootfs {}", rootfs.display()))?;
    Ok(f.into())
}

/// Propagation, the rootfs bind, every `mounts` entry, default devices and
/// `linux.devices`, the /dev symlinks. Runs before pivot_root.
pub fn prepare(cfg: &RootfsConfig) -> Result<()> {
    // Nothing we mount may propagate back to the host: slave (or the
    // requested propagation) recursively from / first.
    // An unbindable / would refuse the rootfs bind: it is applied after
    // pivot_root, in `finalize`.
    let prop = match propagation(cfg.spec)? {
        Some(p) if !p.contains(MsFlags::MS_UNBINDABLE) => p,
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
        .context("set propagation of / in the container's mount namespace")?;
    // pivot_root needs the rootfs to be a mount point whose parent is not shared.
    make_parent_private(cfg.rootfs)?;
    mount(
        Some(cfg.rootfs),
        cfg.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind mount rootfs {}", cfg.rootfs.display()))?;
    let root = open_root(cfg.rootfs)?;

    let mut dev_is_bind = false;
    for (i, m) in cfg.spec.mounts().iter().flatten().enumerate() {
        let typ = m.typ().as_deref().unwrap_or("");
        if resolve::relative(m.destination()) == Path::new("dev") {
            let o = mounts::parse(m.options().as_deref().unwrap_or(&[]))?;
            dev_is_bind = o.is_bind() || typ == "bind";
        }
        if typ == "cgroup" || typ == "cgroup2" {
            let opts = mounts::parse(m.options().as_deref().unwrap_or(&[]))?;
            cgroupfs::mount_cgroup(
                root.as_fd(),
                m.destination(),
                &opts,
                cfg.cgroup,
                cfg.cgroupns,
            )?;
            continue;
        }
        let idmapped = cfg
            .idmapped
            .get(i)
            .and_then(|f| f.as_ref())
            .map(|f| f.as_fd());
        mounts::mount_entry(root.as_fd(), m, cfg.bundle, cfg.userns, idmapped)?;
    }
    if !dev_is_bind {
        for d in devices::wanted(cfg.spec.linux().as_ref().and_then(|l| l.devices().as_ref()))? {
            devices::create(root.as_fd(), &d, cfg.userns)?;
        }
        devices::symlinks(root.as_fd())?;
    }
    Ok(())
}

/// The mount holding `path`'s parent must not be shared for pivot_root.
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let mut best: Option<(&str, bool)> = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 7 {
            continue;
        }
        let mp = f[4];
        if rootfs.starts_with(mp) && best.is_none_or(|(b, _)| mp.len() > b.len()) {
            let shared = f[6..]
                .iter()
                .take_while(|x| **x != "-")
                .any(|x| x.starts_with("shared:"));
            best = Some((mp, shared));
        }
    }
    if let Some((mp, true)) = best {
        mount(
            None::<&str>,
            mp,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .with_context(|| format!("make {mp} private"))?;
    }
    Ok(())
}

/// Bind the pty slave onto `<rootfs>/dev/console`.
pub fn mount_console(cfg: &RootfsConfig, slave: BorrowedFd) -> Result<()> {
    let root = open_root(cfg.rootfs)?;
    let target = resolve::ensure(root.as_fd(), Path::new("/dev/console"), Kind::File)
        .context("create /dev/console")?;
    let src = format!("/proc/self/fd/{}", slave.as_raw_fd());
    mount(
        Some(src.as_str()),
        resolve::proc_fd_path(&target).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .context("bind the console onto /dev/console")
}

/// pivot_root into the rootfs (or move + chroot with `no_pivot`).
pub fn pivot(cfg: &RootfsConfig) -> Result<()> {
    if cfg.no_pivot {
        nix::unistd::chdir(cfg.rootfs)
            .with_context(|| format!("chdir {}", cfg.rootfs.display()))?;
        mount(
            Some(cfg.rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .context("move the rootfs onto /")?;
        nix::unistd::chroot(".").context("chroot into the rootfs")?;
        return nix::unistd::chdir("/").context("chdir /");
    }
    let old = std::fs::File::open("/").context("open old root")?;
    let new = std::fs::File::open(cfg.rootfs)
        .with_context(|| format!("open {}", cfg.rootfs.display()))?;
    nix::unistd::fchdir(&new).context("chdir into the rootfs")?;
    // pivot_root(".", "."): the old root ends up stacked on the new one;
    // detach it from there without propagating the unmount to the host.
    nix::unistd::pivot_root(".", ".").context("pivot_root")?;
    nix::unistd::fchdir(&old).context("chdir into the old root")?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context("make the old root rslave")?;
    umount2(".", MntFlags::MNT_DETACH).context("unmount the old root")?;
    nix::unistd::chdir("/").context("chdir /")
}

/// After pivot_root: `readonlyPaths`, `maskedPaths`, `root.readonly`.
pub fn finalize(cfg: &RootfsConfig) -> Result<()> {
    let linux = cfg.spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly_path(p, cfg.userns)?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        mask_path(p)?;
    }
    if cfg
        .spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        mounts::remount_bind("/", MsFlags::MS_RDONLY, cfg.userns, "/ read-only")?;
    }
    if let Some(prop) = propagation(cfg.spec)? {
        mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
            .context("set rootfsPropagation on /")?;
    }
    Ok(())
}

fn readonly_path(p: &str, userns: bool) -> Result<()> {
    match mount(
        Some(p),
        p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::from(e).context(format!("bind readonly path {p}"))),
    }
    let mut flags = MsFlags::MS_RDONLY | MsFlags::MS_REC;
    if userns {
        flags |= MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    }
    mounts::remount_bind(p, flags, userns, &format!("readonly path {p}"))
}

fn mask_path(p: &str) -> Result<()> {
    let is_dir = match std::fs::metadata(p) {
        Ok(m) => m.is_dir(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::from(e).context(format!("masked path {p}"))),
    };
    let r = if is_dir {
        mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    r.with_context(|| format!("mask {p}"))
}
