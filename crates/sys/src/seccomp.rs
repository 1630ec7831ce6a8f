//! seccomp user notification: the filter install that returns a listener
//! fd, and the listener's ioctls (SECCOMP_IOCTL_NOTIF_*).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::check;

/// seccomp(SECCOMP_SET_MODE_FILTER) with SECCOMP_FILTER_FLAG_NEW_LISTENER
/// added to `flags`: the listener fd the kernel returns. With TSYNC the
/// caller must also pass SECCOMP_FILTER_FLAG_TSYNC_ESRCH (the kernel
/// refuses TSYNC and NEW_LISTENER otherwise), so a failed sync is ESRCH.
pub fn seccomp_set_filter_listener(
    flags: libc::c_ulong,
    prog: &[libc::sock_filter],
) -> io::Result<OwnedFd> {
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` describes `prog`, which outlives the call; the kernel
    // copies the program and writes nothing back.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    })?;
    // SAFETY: with NEW_LISTENER a successful seccomp(2) returns a new fd
    // that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The next notification on a listener fd (blocks until one arrives).
pub fn seccomp_notif_recv(listener: BorrowedFd) -> io::Result<libc::seccomp_notif> {
    // SAFETY: seccomp_notif is plain integers; all-zero is valid, and the
    // kernel requires it zeroed.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one seccomp_notif into `n`, which is live
    // and exclusively borrowed.
    check(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut n as *mut libc::seccomp_notif,
        )
    } as libc::c_long)?;
    Ok(n)
}

/// Answer notification `id`: `error` 0 with `val` as the syscall's result,
/// or a negative errno; or `continue_syscall` to let the kernel run it.
pub fn seccomp_notif_send(
    listener: BorrowedFd,
    id: u64,
    val: i64,
    error: i32,
    continue_syscall: bool,
) -> io::Result<()> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags: if continue_syscall {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    // SAFETY: the ioctl reads one seccomp_notif_resp from `resp`, which is
    // live for the call.
    check(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp as *mut libc::seccomp_notif_resp,
        )
    } as libc::c_long)
    .map(|_| ())
}

/// Whether notification `id` is still pending (its syscall still waits):
/// checked after reading the target's memory, against pid reuse.
pub fn seccomp_notif_id_valid(listener: BorrowedFd, id: u64) -> bool {
    let mut id = id;
    // SAFETY: the ioctl reads one u64 from `id`, live for the call.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &mut id as *mut u64,
        )
    };
    rc == 0
}
