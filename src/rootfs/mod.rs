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
pub fn prepare(_cfg: &RootfsConfig) -> Result<()> {
    crate::bail!("rootfs setup is not implemented yet")
}

/// Bind the pty slave onto `<rootfs>/dev/console`.
pub fn mount_console(_cfg: &RootfsConfig, _slave: BorrowedFd) -> Result<()> {
    crate::bail!("console mount is not implemented yet")
}

/// pivot_root into the rootfs (or move + chroot with `no_pivot`).
pub fn pivot(_cfg: &RootfsConfig) -> Result<()> {
    crate::bail!("pivot_root is not implemented yet")
}

/// After pivot_root: `readonlyPaths`, `maskedPaths`, `root.readonly`.
pub fn finalize(_cfg: &RootfsConfig) -> Result<()> {
    crate::bail!("rootfs finalize is not implemented yet")
}
