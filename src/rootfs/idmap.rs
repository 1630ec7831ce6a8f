//! Idmapped bind mounts (`idmap`/`ridmap`, mount `uidMappings`/`gidMappings`).
//!
//! The kernel only lets a process privileged over the source filesystem's
//! user namespace set MOUNT_ATTR_IDMAP, and only on a detached mount. The
//! container init may already be in its own user namespace, so the runtime
//! makes each idmapped mount before clone3, on the host: open_tree(CLONE) of
//! the source, mount_setattr(IDMAP) with a user namespace carrying the
//! mapping. The init inherits the fd and move_mount()s it into place.
//!
//! Mapping semantics follow runc (callers such as containerd pass the
//! container's own mappings): a mapping `{containerID: C, hostID: H}` shows a
//! file owned by C on disk as owned by H; with the container's mappings, a
//! file owned by root on disk is root inside the container.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use oci_spec::runtime::{LinuxIdMapping, Mount};

use super::mounts;
use crate::error::{Context, Error, Result};
use crate::sys;

/// The user namespace an idmapped mount without its own mappings uses.
pub enum ContainerUserns<'a> {
    None,
    /// A new one, with the container's mappings.
    New(&'a [LinuxIdMapping], &'a [LinuxIdMapping]),
    /// One joined by path.
    Joined(BorrowedFd<'a>),
}

type Maps = (Vec<LinuxIdMapping>, Vec<LinuxIdMapping>);

/// One detached, idmapped mount per idmapped `mounts` entry (by index; None
/// for the others). Empty when no mount is idmapped. The entries were
/// checked by `rootfs::Plan::from_spec`.
pub fn prepare(
    mounts: &[super::MountPlan],
    bundle: &Path,
    userns: ContainerUserns,
) -> Result<Vec<Option<OwnedFd>>> {
    let mut out: Vec<Option<OwnedFd>> = Vec::new();
    // One helper user namespace per distinct (uid, gid) mapping.
    let mut made: Vec<(Maps, OwnedFd)> = Vec::new();
    for (i, mp) in mounts.iter().enumerate().filter(|(_, mp)| mp.idmapped) {
        let m = mp.mount;
        let what = describe(m);
        let maps = match ((m.uid_mappings(), m.gid_mappings()), &userns) {
            ((Some(u), Some(g)), _) => Some((u.as_slice(), g.as_slice())),
            (_, ContainerUserns::New(u, g)) => Some((*u, *g)),
            (_, ContainerUserns::Joined(_)) => None,
            (_, ContainerUserns::None) => {
                crate::bail!("mount {what}: idmap needs a user namespace for the container")
            }
        };
        let ns_fd = match (maps, &userns) {
            (Some((u, g)), _) => {
                let j = match made.iter().position(|(k, _)| k.0 == u && k.1 == g) {
                    Some(j) => j,
                    None => {
                        let fd = userns_with(u, g).with_context(|| format!("mount {what}"))?;
                        made.push(((u.to_vec(), g.to_vec()), fd));
                        made.len() - 1
                    }
                };
                made[j].1.as_fd()
            }
            (None, ContainerUserns::Joined(fd)) => *fd,
            (None, _) => unreachable!("no mapping only with a joined user namespace"),
        };
        let source = match m.source() {
            Some(s) if s.is_relative() => bundle.join(s),
            Some(s) => s.clone(),
            None => crate::bail!("mount {what}: bind mount without source"),
        };
        let fd = detached(&source, &mp.opts, ns_fd).with_context(|| format!("mount {what}"))?;
        out.resize_with(i + 1, || None);
        out[i] = Some(fd);
    }
    Ok(out)
}

fn describe(m: &Mount) -> String {
    format!(
        "{} on {}",
        m.source().as_deref().unwrap_or(Path::new("")).display(),
        m.destination().display()
    )
}

/// open_tree(OPEN_TREE_CLONE) of `source` (recursive for rbind), idmapped
/// (recursively for `ridmap`) with the mapping of `userns`.
fn detached(source: &Path, opts: &mounts::Options, userns: BorrowedFd) -> Result<OwnedFd> {
    let c = CString::new(source.as_os_str().as_bytes())
        .map_err(|_| Error::msg("source path with a NUL byte"))?;
    let mut flags = sys::OPEN_TREE_CLONE;
    if opts.flags.contains(nix::mount::MsFlags::MS_REC) {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let tree =
        sys::open_tree(&c, flags).with_context(|| format!("open_tree {}", source.display()))?;
    let attr = sys::MountAttr {
        attr_set: sys::MOUNT_ATTR_IDMAP,
        userns_fd: std::os::fd::AsRawFd::as_raw_fd(&userns) as u64,
        ..Default::default()
    };
    let rec = if opts.idmap == Some(true) {
        libc::AT_RECURSIVE as libc::c_uint
    } else {
        0
    };
    sys::mount_setattr(tree.as_fd(), rec, &attr).map_err(|e| {
        let einval = e.raw_os_error() == Some(libc::EINVAL);
        let err = Error::from(e).context(format!("set MOUNT_ATTR_IDMAP on {}", source.display()));
        if einval {
            err.hint("the filesystem may not support idmapped mounts on this kernel")
        } else {
            err
        }
    })?;
    Ok(tree)
}

/// A user namespace with these mappings: a child is born in a new one, we
/// write its maps, keep an fd on its namespace, and kill it.
fn userns_with(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let mut args = sys::CloneArgs {
        flags: libc::CLONE_NEWUSER as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..sys::clone_args()
    };
    // SAFETY: the runtime is single-threaded before the init's clone3; the
    // child only waits to be killed.
    let pid = unsafe { sys::clone3(&mut args) }
        .context("clone3 a user namespace for an idmapped mount")?;
    if pid == 0 {
        // SIGKILL ends this child.
        sys::pause_forever();
    }
    let res = (|| {
        crate::process::namespaces::write_maps(pid, uid, gid)?;
        let f = std::fs::File::open(format!("/proc/{pid}/ns/user"))
            .context("open the idmap user namespace")?;
        Ok(OwnedFd::from(f))
    })();
    // pid is our own child, not yet reaped.
    let _ = sys::kill(pid, libc::SIGKILL);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    res
}
