//! The runtime's own binary, out of reach from inside the container (the
//! CVE-2019-5736 class).
//!
//! Every process that enters a container (the init, an `exec`'d process
//! until its execve) is a clone3 fork of this binary. Two things keep the
//! container from getting at the binary through them:
//! - they are not dumpable, so `/proc/PID/exe`, `/proc/PID/fd` and
//!   `/proc/PID/mem` are closed to the container's processes;
//! - their executable is not the host's writable file: before anything
//!   forks, `create`, `run` and `exec` re-exec the runtime from a detached
//!   read-only bind mount of it (`open_tree` + `mount_setattr`: no mount
//!   appears in any namespace, no copy is made), or, where the mount API is
//!   refused (no `CAP_SYS_ADMIN`, as for a rootless caller), from a sealed
//!   memfd copy. A `#!/proc/self/exe` script run in the container then runs
//!   that copy, and `open(/proc/PID/exe, O_WRONLY)` fails with `EROFS` or
//!   `EPERM`.
//!
//! A binary that already sits on a read-only mount or in a sealed memfd is
//! not re-exec'd.
//!
//! The fd `open_tree` returned is close-on-exec: the execveat closes it,
//! which dissolves the detached mount (the running executable keeps it
//! alive, read-only, until it exits); the kernel waits for an RCU grace
//! period there, a cost of this protection that `make bench` shows.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use crate::error::{Context, Error, Result};
use crate::sys;

/// Set in the re-exec'd process's environment to detect a loop.
const GUARD: &str = "_BERTH_PROTECTED_EXE";

const F_SEAL_ALL: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Make this process safe to fork into a container: re-exec from a
/// protected copy of the binary unless already running from one, then mark
/// the process non-dumpable (inherited by every clone3 child until its
/// execve). Returns only when both hold.
pub fn protect() -> Result<()> {
    let exe = File::open("/proc/self/exe").context("open /proc/self/exe")?;
    if is_protected(&exe) {
        drop(exe);
        if std::env::var_os(GUARD).is_some() {
            std::env::remove_var(GUARD);
            restore_name();
        }
        sys::prctl(libc::PR_SET_DUMPABLE, 0).context("make the runtime non-dumpable")?;
        return Ok(());
    }
    if std::env::var_os(GUARD).is_some() {
        crate::bail!("re-exec from a read-only copy of the runtime binary did not take effect");
    }
    let copy = match read_only_bind() {
        Ok(fd) => fd,
        Err(bind_err) => sealed_memfd(&exe).map_err(|e| {
            e.context(format!(
                "protect the runtime binary (read-only bind: {bind_err}; sealed copy)"
            ))
        })?,
    };
    drop(exe);
    let args: Vec<CString> = std::env::args_os().map(cstring).collect::<Result<_>>()?;
    let mut env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstring(kv)
        })
        .collect::<Result<_>>()?;
    env.push(cstring(OsString::from(format!("{GUARD}=1")))?);
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let err = sys::execve_fd(copy.as_fd(), &argv, &envp);
    Err(Error::from(err).context("re-exec the runtime from its protected copy"))
}

fn cstring(s: OsString) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::msg("argument or environment with a NUL byte"))
}

/// On a read-only mount, or a memfd sealed against writes.
fn is_protected(exe: &File) -> bool {
    sys::mount_flags(exe.as_fd()).is_ok_and(|f| f & libc::ST_RDONLY != 0)
        || sys::seals(exe.as_fd()).is_ok_and(|s| s & libc::F_SEAL_WRITE != 0)
}

/// A detached, read-only bind mount of our own binary (an O_PATH fd,
/// close-on-exec).
fn read_only_bind() -> Result<OwnedFd> {
    let tree = sys::open_tree(c"/proc/self/exe", sys::OPEN_TREE_CLONE)
        .context("open_tree /proc/self/exe")?;
    let attr = sys::MountAttr {
        attr_set: sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
        ..Default::default()
    };
    sys::mount_setattr(tree.as_fd(), 0, &attr).context("make the bind read-only")?;
    Ok(tree)
}

/// A memfd copy of the binary, sealed so nothing can write it.
fn sealed_memfd(exe: &File) -> Result<OwnedFd> {
    const MFD_EXEC: libc::c_uint = 0x10;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC where the kernel knows it (6.3+, which may default memfds
    // to non-executable), plain otherwise.
    let memfd = sys::memfd_create(c"berth", flags | MFD_EXEC)
        .or_else(|_| sys::memfd_create(c"berth", flags))
        .context("memfd_create")?;
    let len = exe.metadata().context("stat /proc/self/exe")?.len();
    sys::sendfile_all(memfd.as_fd(), exe.as_fd(), len)
        .context("copy the runtime binary into a memfd")?;
    sys::add_seals(memfd.as_fd(), F_SEAL_ALL).context("seal the memfd copy")?;
    Ok(memfd)
}

/// execveat(fd, "") names the process after the fd number: give it back
/// the name it was invoked by (comm, at most 15 bytes).
fn restore_name() {
    let Some(arg0) = std::env::args_os().next() else {
        return;
    };
    let base = arg0
        .as_bytes()
        .rsplit(|&b| b == b'/')
        .next()
        .unwrap_or(b"berth");
    sys::set_name(base);
}
