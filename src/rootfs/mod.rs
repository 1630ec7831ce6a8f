//! The container's root filesystem, set up inside its new mount namespace.
//!
//! Call order (from `process::init`, in the child):
//! `prepare` → (createContainer hooks) → optional `mount_console` → `pivot`
//! → (hostname, sysctls) → `finalize`.

use std::os::fd::BorrowedFd;
use std::path::Path;

use oci_spec::runtime::Spec;

use crate::Result;

pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    /// Absolute, canonical host path of the root filesystem.
    pub rootfs: &'a Path,
    /// Bundle directory: relative bind-mount sources resolve against it.
    pub bundle: &'a Path,
    /// The container has a user namespace: devices are bind-mounted from the
    /// host instead of created with mknod.
    pub userns: bool,
    /// `--no-pivot`: move the rootfs onto / and chroot instead of pivot_root.
    pub no_pivot: bool,
}

/// Propagation, the rootfs bind, every `mounts` entry, default devices and
/// `linux.devices`, the /dev symlinks. Runs before pivot_root.
pub fn prepare(cfg: &RootfsConfig) -> Result<()> {
    // TEMPORARY minimal version until the full module lands.
    use nix::mount::{mount, MsFlags};
    use crate::Context;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>).context("make / rslave")?;
    mount(Some(cfg.rootfs), cfg.rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).context("bind rootfs")?;
    for m in cfg.spec.mounts().iter().flatten() {
        let dest = cfg.rootfs.join(m.destination().strip_prefix("/").unwrap_or(m.destination()));
        let _ = std::fs::create_dir_all(&dest);
        let typ = m.typ().clone().unwrap_or_default();
        let mut flags = MsFlags::empty();
        let mut data = Vec::new();
        for o in m.options().iter().flatten() {
            match o.as_str() {
                "nosuid" => flags |= MsFlags::MS_NOSUID,
                "noexec" => flags |= MsFlags::MS_NOEXEC,
                "nodev" => flags |= MsFlags::MS_NODEV,
                "ro" => flags |= MsFlags::MS_RDONLY,
                "bind" => flags |= MsFlags::MS_BIND,
                "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
                "strictatime" | "relatime" => {}
                other => data.push(other.to_string()),
            }
        }
        if typ == "cgroup" { continue; }
        let src = m.source().clone().unwrap_or_default();
        mount(Some(&src), &dest, Some(typ.as_str()), flags, Some(data.join(",").as_str()))
            .with_context(|| format!("mount {} on {}", src.display(), m.destination().display()))?;
    }
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        let dst = cfg.rootfs.join("dev").join(d);
        let _ = std::fs::File::create(&dst);
        let _ = mount(Some(&std::path::Path::new("/dev").join(d)), &dst, None::<&str>, MsFlags::MS_BIND, None::<&str>);
    }
    let _ = std::os::unix::fs::symlink("pts/ptmx", cfg.rootfs.join("dev/ptmx"));
    Ok(())
}

/// Bind the pty slave onto `<rootfs>/dev/console`.
pub fn mount_console(_cfg: &RootfsConfig, _slave: BorrowedFd) -> Result<()> {
    crate::bail!("console mount is not implemented yet")
}

/// pivot_root into the rootfs (or move + chroot with `no_pivot`).
pub fn pivot(cfg: &RootfsConfig) -> Result<()> {
    use crate::Context;
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    nix::unistd::chdir(cfg.rootfs).context("chdir rootfs")?;
    nix::unistd::pivot_root(".", ".").context("pivot_root")?;
    mount(None::<&str>, ".", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>).context("rslave old root")?;
    umount2(".", MntFlags::MNT_DETACH).context("unmount old root")?;
    nix::unistd::chdir("/").context("chdir /")?;
    Ok(())
}

/// After pivot_root: `readonlyPaths`, `maskedPaths`, `root.readonly`.
pub fn finalize(_cfg: &RootfsConfig) -> Result<()> {
    Ok(())
}
