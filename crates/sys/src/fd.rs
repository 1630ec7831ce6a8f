//! File descriptors: closing and marking ranges, memfds, the cwd.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::check;

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

/// dup2(fd, target): `target` now names what `fd` names.
pub fn dup2(fd: BorrowedFd, target: RawFd) -> io::Result<()> {
    // SAFETY: both are fd numbers; replacing `target` is what the caller asks.
    check(unsafe { libc::dup2(fd.as_raw_fd(), target) } as libc::c_long).map(|_| ())
}

/// Take ownership of `fd`, which the caller just received (SCM_RIGHTS) or
/// inherited and which nothing else in the process owns or closes.
///
/// # Safety
/// `fd` must be open and owned by nobody else.
pub unsafe fn adopt(fd: RawFd) -> OwnedFd {
    // SAFETY: guaranteed by the caller.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// An exclusive flock(2), retried on EINTR.
pub fn flock_exclusive(fd: BorrowedFd) -> io::Result<()> {
    loop {
        // SAFETY: flock on a live fd.
        match check(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) } as libc::c_long) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(|_| ()),
        }
    }
}

/// flock(LOCK_EX|LOCK_NB): true when taken, false when another holds it.
pub fn flock_exclusive_nonblocking(fd: BorrowedFd) -> io::Result<bool> {
    // SAFETY: flock on a live fd.
    let rc = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    match check(rc as libc::c_long) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A non-blocking, close-on-exec eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes an initial value and flags only.
    let fd =
        check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) } as libc::c_long)?;
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A non-blocking inotify instance watching `path` for IN_MODIFY.
pub fn inotify_modify(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: inotify_init1 takes flags only.
    let fd = check(
        unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) } as libc::c_long,
    )?;
    // SAFETY: the kernel returned a new fd that we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    // SAFETY: valid inotify fd and NUL-terminated path.
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY) };
    check(wd as libc::c_long)?;
    Ok(fd)
}

/// poll(2) one fd for POLLIN: true when readable, false on timeout or EINTR.
pub fn poll_readable(fd: BorrowedFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    match check(unsafe { libc::poll(&mut p, 1, timeout_ms) } as libc::c_long) {
        Ok(n) => Ok(n > 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// read(2) into `buf`.
pub fn read(fd: BorrowedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    check(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } as libc::c_long)
        .map(|n| n as usize)
}

/// The ST_* flags of the mount `fd` is on (fstatvfs).
pub fn mount_flags(fd: BorrowedFd) -> io::Result<u64> {
    // SAFETY: an all-zero statvfs is a valid out buffer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: fd is live and st a valid out pointer.
    check(unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) } as libc::c_long)?;
    Ok(st.f_flag)
}

/// The memfd seals on `fd` (EINVAL for anything but a memfd).
pub fn seals(fd: BorrowedFd) -> io::Result<libc::c_int> {
    // SAFETY: F_GET_SEALS only reads the fd's seals.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) } as libc::c_long)
        .map(|s| s as libc::c_int)
}

/// Add memfd seals to `fd`.
pub fn add_seals(fd: BorrowedFd, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: F_ADD_SEALS with integer seals.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } as libc::c_long)
        .map(|_| ())
}

/// sendfile(2) `len` bytes from `from`'s position to `to`'s, to the end.
pub fn sendfile_all(to: BorrowedFd, from: BorrowedFd, len: u64) -> io::Result<()> {
    let mut copied = 0u64;
    while copied < len {
        // SAFETY: both fds are live; null offsets use the files' positions.
        let n = check(unsafe {
            libc::sendfile(
                to.as_raw_fd(),
                from.as_raw_fd(),
                std::ptr::null_mut(),
                (len - copied) as usize,
            )
        } as libc::c_long)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        copied += n as u64;
    }
    Ok(())
}

/// open(2) of an absolute or cwd-relative path.
pub fn open(path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: path is NUL-terminated; flags are integers.
    let fd = check(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) } as libc::c_long)?;
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
