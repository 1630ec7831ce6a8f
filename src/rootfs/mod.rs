//! The container's root filesystem, set up inside its new mount namespace.
//!
//! `Plan::from_spec` runs in the parent (from `validate`); then, from
//! `process::init` in the child: `prepare` → (createContainer hooks) →
//! optional `mount_console` → `pivot` → (hostname, sysctls) → `finalize`.

mod cgroupfs;
mod copyup;
mod devices;
pub mod idmap;
pub mod mounts;
pub mod resolve;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{Mount, Spec};

use crate::cgroups::Manager;
use crate::error::{Context, Error, Result};
use resolve::Kind;

/// The root filesystem part of the container's plan, built by `validate`
/// from the config: every option parsed, every path checked.
pub struct Plan<'a> {
    /// Absolute, canonical host path of the root filesystem.
    pub rootfs: PathBuf,
    /// Bundle directory: relative bind-mount sources resolve against it.
    pub bundle: PathBuf,
    /// `mounts`, in order, with their options parsed.
    pub mounts: Vec<MountPlan<'a>>,
    /// The device nodes to create, or None when `/dev` is a bind mount
    /// (then the container gets the host's view and nothing is created).
    pub devices: Option<Vec<devices::Device>>,
    /// `linux.rootfsPropagation`, parsed.
    pub propagation: Option<MsFlags>,
    pub masked: &'a [String],
    pub readonly: &'a [String],
    /// `root.readonly`.
    pub readonly_root: bool,
    /// `--no-pivot`: move the rootfs onto / and chroot instead of pivot_root.
    pub no_pivot: bool,
    /// The container has a user namespace: devices are bind-mounted from the
    /// host instead of created with mknod.
    pub userns: bool,
    /// The container has its own cgroup namespace.
    pub cgroupns: bool,
    /// v1/hybrid: the `cgroup` mount is made of each hierarchy's own
    /// cgroupfs (as runc), showing the cgroup namespace's root: a cgroup
    /// namespace the init may mount them in (no user namespace, or a new
    /// cgroup namespace made inside it). Else binds of the container's
    /// cgroup directories.
    pub cgroupfs: bool,
    /// No mount namespace of its own (as runc: the container's mounts are
    /// made in the runtime's namespace, under a bind of the rootfs that
    /// `delete` detaches; chroot instead of pivot_root; no propagation is
    /// changed).
    pub host_mount_ns: bool,
    /// `process.cwd`, created inside the rootfs when missing (as runc).
    pub cwd: &'a Path,
    /// The flags to remount `/dev` with at the end when the config mounts
    /// it read-only: it is mounted writable first so /dev/pts and the
    /// device nodes can be made in it (runc does the same).
    pub dev_readonly: Option<MsFlags>,
}

/// One `mounts` entry with its options parsed.
pub struct MountPlan<'a> {
    pub mount: &'a Mount,
    pub opts: mounts::Options,
    /// A `cgroup`/`cgroup2` mount (see `cgroupfs`).
    pub cgroup: bool,
    /// An idmapped bind (`idmap`, `ridmap` or mount id mappings): the
    /// runtime makes it before clone3 (see `idmap`).
    pub idmapped: bool,
}

impl<'a> Plan<'a> {
    pub fn from_spec(
        spec: &'a Spec,
        bundle: &Path,
        ns: &crate::process::namespaces::Plan,
        no_pivot: bool,
    ) -> Result<Plan<'a>> {
        let root_path = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_else(|| "rootfs".into());
        let rootfs = std::fs::canonicalize(bundle.join(&root_path))
            .with_context(|| format!("root.path: rootfs {}", bundle.join(&root_path).display()))?;
        let userns = ns.has_userns();
        let host_mount_ns = !ns.has(libc::CLONE_NEWNS);
        let linux = spec.linux().as_ref();
        let masked = linux
            .and_then(|l| l.masked_paths().as_deref())
            .unwrap_or(&[]);
        let readonly = linux
            .and_then(|l| l.readonly_paths().as_deref())
            .unwrap_or(&[]);
        if host_mount_ns {
            // runc's rule and text: without a mount namespace of its own
            // nothing can be masked without changing the host's mounts.
            for (field, paths) in [
                ("linux.maskedPaths", masked),
                ("linux.readonlyPaths", readonly),
            ] {
                if !paths.is_empty() {
                    crate::bail!(
                        "{field}: unable to restrict sys entries without a private MNT namespace"
                    );
                }
            }
            if linux
                .and_then(|l| l.rootfs_propagation().as_deref())
                .is_some_and(|p| !p.is_empty())
            {
                crate::bail!(
                    "linux.rootfsPropagation: needs a mount namespace of the container's own"
                );
            }
        }
        let mut mounts_plan = Vec::new();
        let mut dev_is_bind = false;
        let mut dev_readonly = None;
        for (i, m) in spec.mounts().iter().flatten().enumerate() {
            let field = || format!("mounts[{i}] ({})", m.destination().display());
            let typ = m.typ().as_deref().unwrap_or("");
            let mut opts =
                mounts::parse(m.options().as_deref().unwrap_or(&[])).with_context(field)?;
            let bind = opts.is_bind() || typ == "bind";
            if resolve::relative(m.destination()) == Path::new("dev") {
                dev_is_bind = bind;
                dev_readonly = None;
                if !bind && opts.flags.contains(MsFlags::MS_RDONLY) {
                    opts.flags.remove(MsFlags::MS_RDONLY);
                    dev_readonly = Some(opts.flags | MsFlags::MS_RDONLY);
                }
            }
            let maps = (m.uid_mappings().is_some(), m.gid_mappings().is_some());
            let idmapped = opts.idmap.is_some() || maps != (false, false);
            if idmapped {
                if !bind {
                    return Err(
                        Error::msg("idmapped mounts are only supported for bind mounts")
                            .context(field()),
                    );
                }
                if maps.0 != maps.1 {
                    return Err(
                        Error::msg("uidMappings and gidMappings must be given together")
                            .context(field()),
                    );
                }
                if maps == (false, false) && !userns {
                    return Err(Error::msg(
                        "idmap without uidMappings/gidMappings needs a user namespace for the container",
                    )
                    .context(field()));
                }
            }
            if bind && m.source().is_none() {
                return Err(Error::msg("bind mount without source").context(field()));
            }
            mounts_plan.push(MountPlan {
                mount: m,
                opts,
                cgroup: typ == "cgroup" || typ == "cgroup2",
                idmapped,
            });
        }
        let devices = if dev_is_bind {
            None
        } else {
            Some(
                devices::wanted(linux.and_then(|l| l.devices().as_ref()))
                    .context("linux.devices")?,
            )
        };
        Ok(Plan {
            rootfs,
            bundle: bundle.to_path_buf(),
            mounts: mounts_plan,
            devices,
            propagation: propagation(spec)?,
            masked,
            readonly,
            readonly_root: spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
            no_pivot,
            userns,
            cgroupns: ns.has(libc::CLONE_NEWCGROUP),
            cgroupfs: ns.has(libc::CLONE_NEWCGROUP)
                && (!userns || ns.new & libc::CLONE_NEWCGROUP != 0),
            host_mount_ns,
            cwd: spec
                .process()
                .as_ref()
                .map(|p| p.cwd().as_path())
                .unwrap_or(Path::new("")),
            dev_readonly,
        })
    }
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
/// `linux.devices`, the /dev symlinks. Runs before pivot_root. `idmapped`:
/// the detached idmapped mounts by `mounts` index (see `idmap`).
pub fn prepare(plan: &Plan, cgroup: &Manager, idmapped: &[Option<OwnedFd>]) -> Result<()> {
    // Nothing we mount may propagate back to the host: slave (or the
    // requested propagation) recursively from / first.
    // An unbindable / would refuse the rootfs bind: it is applied after
    // pivot_root, in `finalize`.
    // In the runtime's own mount namespace nothing of the host's changes.
    if !plan.host_mount_ns {
        let prop = match plan.propagation {
            Some(p) if !p.contains(MsFlags::MS_UNBINDABLE) => p,
            _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        };
        mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
            .context("set propagation of / in the container's mount namespace")?;
        // pivot_root needs the rootfs to be a mount point whose parent is
        // not shared.
        make_parent_private(&plan.rootfs)?;
    }
    mount(
        Some(&plan.rootfs),
        &plan.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("bind mount rootfs {}", plan.rootfs.display()))?;
    let root = open_root(&plan.rootfs)?;

    for (i, m) in plan.mounts.iter().enumerate() {
        if m.cgroup {
            cgroupfs::mount_cgroup(
                root.as_fd(),
                m.mount.destination(),
                &m.opts,
                cgroup,
                plan.cgroupns,
                plan.cgroupfs,
            )?;
            continue;
        }
        let tree = idmapped.get(i).and_then(|f| f.as_ref()).map(|f| f.as_fd());
        mounts::mount_entry(root.as_fd(), m, &plan.bundle, plan.userns, tree)?;
    }
    if let Some(devs) = &plan.devices {
        for d in devs {
            devices::create(root.as_fd(), d, plan.userns)?;
        }
        devices::symlinks(root.as_fd())?;
    }
    // A missing cwd is made (as runc), inside the root: a symlink on the
    // way cannot lead out.
    if !plan.cwd.as_os_str().is_empty() {
        resolve::ensure(root.as_fd(), plan.cwd, Kind::Dir)
            .with_context(|| format!("process.cwd: create {} in the rootfs", plan.cwd.display()))?;
    }
    Ok(())
}

/// Detach every full procfs and sysfs mount outside `rootfs` (--no-pivot:
/// they would stay reachable under the moved root); cover with a tmpfs
/// what cannot be detached.
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let mut targets: Vec<&str> = Vec::new();
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (root, mp, fstype) = (f.get(3), f.get(4), f.get(sep + 1));
        if root == Some(&"/")
            && matches!(fstype, Some(&"proc") | Some(&"sysfs"))
            && mp.is_some_and(|m| !Path::new(m).starts_with(rootfs))
        {
            targets.extend(mp);
        }
    }
    // Deepest first, so a parent's detach does not hide a child we list.
    targets.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mp in targets {
        match umount2(mp, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::EPERM) => mount(
                Some("tmpfs"),
                mp,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .with_context(|| format!("cover {mp}"))?,
            Err(e) => return Err(Error::from(e).context(format!("detach {mp}"))),
        }
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
pub fn mount_console(plan: &Plan, slave: BorrowedFd) -> Result<()> {
    let root = open_root(&plan.rootfs)?;
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
pub fn pivot(plan: &Plan) -> Result<()> {
    if plan.host_mount_ns {
        // The mount namespace is the runtime's: no move, no pivot.
        nix::unistd::chdir(&plan.rootfs)
            .with_context(|| format!("chdir {}", plan.rootfs.display()))?;
        nix::unistd::chroot(".").context("chroot into the rootfs")?;
        return nix::unistd::chdir("/").context("chdir /");
    }
    if plan.no_pivot {
        // The old root stays under the moved rootfs: its full procfs and
        // sysfs mounts would let the container mount unmasked ones. Detach
        // them (or, where that is refused, cover them), as runc does.
        hide_host_proc_and_sys(&plan.rootfs)?;
        nix::unistd::chdir(&plan.rootfs)
            .with_context(|| format!("chdir {}", plan.rootfs.display()))?;
        mount(
            Some(&plan.rootfs),
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
    let new = std::fs::File::open(&plan.rootfs)
        .with_context(|| format!("open {}", plan.rootfs.display()))?;
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
pub fn finalize(plan: &Plan) -> Result<()> {
    for p in plan.readonly {
        readonly_path(p)?;
    }
    for p in plan.masked {
        mask_path(p)?;
    }
    if let Some(flags) = plan.dev_readonly {
        mounts::remount_bind("/dev", flags, plan.userns, "/dev read-only")?;
    }
    if plan.readonly_root {
        mounts::remount_bind("/", MsFlags::MS_RDONLY, plan.userns, "/ read-only")?;
    }
    if let Some(prop) = plan.propagation {
        mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
            .context("set rootfsPropagation on /")?;
    }
    Ok(())
}

fn readonly_path(p: &str) -> Result<()> {
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
    // The bind keeps the nosuid/nodev/noexec of the mount it copies (proc's
    // for /proc/sys) and adds none, as runc does: a remount that omits
    // them would clear them (and in a user namespace fail).
    mounts::remount_bind(
        p,
        MsFlags::MS_RDONLY | MsFlags::MS_REC,
        true,
        &format!("readonly path {p}"),
    )
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
