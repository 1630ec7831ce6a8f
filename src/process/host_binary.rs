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
//! Closing the fd `open_tree` returned dissolves the detached mount (the
//! running executable keeps it alive, read-only, until it exits), and the
//! kernel waits for an RCU grace period there: ~1-3 ms of sleep on this
//! kind of machine, on every `run`. That fd is kept across the execveat
//! and the re-exec'd process closes it first thing, on its only thread (a
//! closing thread saved the wait but broke `exec`'s setns of the mount
//! namespace, which needs a single-threaded process).

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use crate::error::{Context, Error, Result};
use crate::sys;

/// Set in the re-exec'd process's environment to detect a loop; its value
/// is the number of the `open_tree` fd kept open across the execveat, or
/// `-` for a memfd copy.
const GUARD: &str = "_BERTH_PROTECTED_EXE";

const F_SEAL_ALL: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Make this process safe to fork into a container: re-exec from a
/// protected copy of the binary unless already running from one, then mark
/// the process non-dumpable (inherited by every clone3 child until its
/// execve). Returns only when both hold, with the fd ≥ 3 of the runtime's
/// own that was kept across the re-exec (closed by now; its number is not
/// one the caller passed).
pub fn protect() -> Result<Option<RawFd>> {
    let exe = File::open("/proc/self/exe").context("open /proc/self/exe")?;
    if is_protected(&exe) {
        let mut held = None;
        if let Some(v) = std::env::var_os(GUARD) {
            std::env::remove_var(GUARD);
            restore_name();
            held = v
                .to_str()
                .and_then(|s| s.parse::<RawFd>().ok())
                .filter(|&fd| fd >= 3 && names_the_same_file(fd, &exe));
        }
        drop(exe);
        if let Some(fd) = held {
            close_held(fd);
        }
        sys::prctl(libc::PR_SET_DUMPABLE, 0).context("make the runtime non-dumpable")?;
        return Ok(held);
    }
    if std::env::var_os(GUARD).is_some() {
        crate::bail!("re-exec from a read-only copy of the runtime binary did not take effect");
    }
    let (copy, guard) = match read_only_bind() {
        // Kept open across the execveat: see the module comment.
        Ok(fd) => match nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        ) {
            Ok(_) => {
                let n = fd.as_raw_fd().to_string();
                (fd, n)
            }
            Err(_) => (fd, "-".to_owned()),
        },
        Err(bind_err) => (
            sealed_memfd(&exe).map_err(|e| {
                e.context(format!(
                    "protect the runtime binary (read-only bind: {bind_err}; sealed copy)"
                ))
            })?,
            "-".to_owned(),
        ),
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
    env.push(cstring(OsString::from(format!("{GUARD}={guard}")))?);
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let err = sys::execve_fd(copy.as_fd(), &argv, &envp);
    Err(Error::from(err).context("re-exec the runtime from its protected copy"))
}

/// `fd` (from our own environment) is a handle on the file we run from.
fn names_the_same_file(fd: RawFd, exe: &File) -> bool {
    let (Ok(held), Ok(ours)) = (
        std::fs::metadata(format!("/proc/self/fd/{fd}")),
        exe.metadata(),
    ) else {
        return false;
    };
    held.dev() == ours.dev() && held.ino() == ours.ino()
}

/// Close `fd` at once, before anything else is opened or entered. (Its
/// close dissolves the detached mount and waits for an RCU grace period; a
/// thread doing it in the background left the process multi-threaded at
/// `exec`'s setns(CLONE_NEWNS), which the kernel refuses with EINVAL.)
fn close_held(fd: RawFd) {
    let _ = sys::close_range(fd as u32, fd as u32);
}

fn cstring(s: OsString) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::msg("argument or environment with a NUL byte"))
}

/// On a read-only mount, or a memfd sealed against writes.
fn is_protected(exe: &File) -> bool {
    sys::mount_flags(exe.as_fd()).is_ok_and(|f| f & libc::ST_RDONLY != 0)
        || sys::seals(exe.as_fd()).is_ok_and(|s| s & libc::F_SEAL_WRITE != 0)
}

/// A detached, read-only bind mount of our own binary (an O_PATH fd).
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
