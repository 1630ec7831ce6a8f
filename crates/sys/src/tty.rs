//! Terminal ioctls: pty masters and slaves, window sizes, the controlling
//! terminal.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::check;

fn ioctl_ret(r: libc::c_int) -> io::Result<libc::c_int> {
    check(r as libc::c_long).map(|r| r as libc::c_int)
}

/// unlockpt(3) on a pty master (TIOCSPTLCK 0).
pub fn unlock_pty(master: BorrowedFd) -> io::Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the valid pointer.
    ioctl_ret(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) }).map(|_| ())
}

/// The slave of `master`, opened relative to the master's devpts instance
/// (TIOCGPTPEER: no path lookup that could land in another instance).
pub fn open_pty_peer(master: BorrowedFd, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new fd.
    let fd = ioctl_ret(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) })?;
    // SAFETY: the ioctl returned a fresh fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn set_winsize(fd: BorrowedFd, ws: &libc::winsize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ reads a winsize from the valid pointer.
    ioctl_ret(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) }).map(|_| ())
}

pub fn get_winsize(fd: BorrowedFd) -> io::Result<libc::winsize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the valid pointer.
    ioctl_ret(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) })?;
    Ok(ws)
}

/// The number N of the slave `/dev/pts/N` of `master`.
pub fn pty_number(master: BorrowedFd) -> io::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int into the valid pointer.
    ioctl_ret(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) })?;
    Ok(n)
}

/// Make `fd` the caller's controlling terminal (TIOCSCTTY, not stealing).
pub fn set_controlling_tty(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument by value (0: don't steal).
    ioctl_ret(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(|_| ())
}
