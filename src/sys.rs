//! Thin wrappers over the syscalls nix does not cover. Each returns
//! `io::Result` and holds the only `unsafe` for its call.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `struct clone_args` from linux/sched.h (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// Fork-like clone3: returns 0 in the child, the child's pid in the parent.
/// With `CLONE_PIDFD` the pidfd is stored through `args.pidfd`.
///
/// # Safety
/// The caller must be single-threaded (the child gets a copy of only the
/// calling thread) and `args` must not ask for a shared VM or a new stack.
pub unsafe fn clone3(args: &mut CloneArgs) -> io::Result<libc::pid_t> {
    // SAFETY: args points to a live, correctly sized clone_args; the caller
    // guarantees the fork-like use (no CLONE_VM, no stack).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    check(ret).map(|r| r as libc::pid_t)
}

pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_send_signal(pidfd: BorrowedFd, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall; a null siginfo means "as kill(2) would".
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(|_| ())
}

/// Close every fd from `first` up (close_range(2), one syscall).
pub fn close_from(first: u32) -> io::Result<()> {
    close_range(first, u32::MAX)
}

/// Close the fds `first..=last` (close_range(2)); async-signal-safe.
pub fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) }).map(|_| ())
}

/// Whether `fd` is open (fcntl F_GETFD).
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the fd's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Set FD_CLOEXEC on `fd`.
pub fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD with an integer flag on an fd number.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } as libc::c_long).map(|_| ())
}

/// The raw getcwd(2): the kernel's own answer, which begins with
/// `(unreachable)` instead of `/` when the cwd is outside our root. Writes
/// into `buf` and returns the length (no allocation).
pub fn getcwd_raw(buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes of writes.
    check(unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) })
        .map(|n| n as usize)
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH): run the file behind `fd`.
/// Only returns on failure.
pub fn execve_fd(
    fd: BorrowedFd,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> io::Error {
    // SAFETY: argv/envp are NULL-terminated arrays of pointers into CStrings
    // that the caller keeps alive across the call; the path is empty.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

/// memfd_create(2) with `flags` (MFD_*).
pub fn memfd_create(name: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: name is NUL-terminated; integer flags.
    let fd = check(unsafe { libc::syscall(libc::SYS_memfd_create, name.as_ptr(), flags) })?;
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Mark every fd from `first` up close-on-exec (close_range with CLOEXEC).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })
    .map(|_| ())
}

pub fn setns(fd: BorrowedFd, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall; fd is a live namespace fd.
    check(unsafe { libc::setns(fd.as_raw_fd(), nstype) } as libc::c_long).map(|_| ())
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe { libc::unshare(flags) } as libc::c_long).map(|_| ())
}

pub fn prctl(op: libc::c_int, a: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the prctl ops we use take integer arguments only.
    check(unsafe { libc::prctl(op, a, 0, 0, 0) } as libc::c_long).map(|_| ())
}

/// execve that only returns on failure.
pub fn execve(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> io::Error {
    // SAFETY: argv/envp are NULL-terminated arrays of pointers into CStrings
    // that the caller keeps alive across the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// Reset every signal to its default disposition and unblock all: the
/// runtime ignores SIGPIPE (Rust's default) and `run` blocks signals, and
/// neither may leak into the container's process.
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL is always sound; errors (invalid
        // signal numbers reserved by libc) are irrelevant here.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty, initialised set; sigprocmask has no other effects.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// `struct mount_attr` from linux/mount.h (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
#[derive(Default)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// mount_setattr(2) on the mount `fd` names (AT_EMPTY_PATH); `flags` may
/// add AT_RECURSIVE.
pub fn mount_setattr(fd: BorrowedFd, flags: libc::c_uint, attr: &MountAttr) -> io::Result<()> {
    // SAFETY: fd is live, the path is an empty C string and attr is a
    // correctly sized mount_attr.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags | libc::AT_EMPTY_PATH as libc::c_uint,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(|_| ())
}

pub const OPEN_TREE_CLONE: libc::c_uint = 1;

/// open_tree(2) of an absolute or cwd-relative path.
pub fn open_tree(path: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: path is NUL-terminated; integer flags.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags | libc::O_CLOEXEC as libc::c_uint,
        )
    })?;
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// move_mount(2) of the detached mount `from` onto the directory or file
/// `to` (an O_PATH fd).
pub fn move_mount(from: BorrowedFd, to: BorrowedFd) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: both fds are live; the paths are empty C strings.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(|_| ())
}

/// The start time (clock ticks since boot, field 22 of /proc/PID/stat) and
/// the state letter of `pid`; None when the process does not exist.
pub fn proc_stat(pid: libc::pid_t) -> Option<(u64, u8)> {
    let data = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let end = data.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&data[end + 2..]).ok()?;
    let mut fields = rest.split(' ');
    let state = fields.next()?.as_bytes().first().copied()?;
    // `state` was field 3; start time is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_of_self_is_running() {
        let (start, state) = proc_stat(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert!(state != b'Z' && state != b'X');
        assert!(proc_stat(i32::MAX).is_none());
    }
}
