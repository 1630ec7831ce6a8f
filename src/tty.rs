//! Terminals: the container's console pty and runc's console-socket protocol
//! (the pty master sent with SCM_RIGHTS, as containerd and conmon expect), and
//! the proxy `berth run` drives when it owns the terminal itself.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Box as ConsoleSize;

use crate::Result;

/// Open a new pty pair from the devpts instance mounted at `pts_dir`
/// (`<rootfs>/dev/pts` before pivot_root) and apply `size`. Returns
/// (master, slave).
pub fn open_pty(_pts_dir: &Path, _size: Option<&ConsoleSize>) -> Result<(OwnedFd, OwnedFd)> {
    crate::bail!("tty is not implemented yet")
}

/// Send `master` over the connected console socket.
pub fn send_master(_socket: BorrowedFd, _master: BorrowedFd) -> Result<()> {
    crate::bail!("tty is not implemented yet")
}

/// Receive a pty master sent by `send_master`.
pub fn recv_master(_socket: BorrowedFd) -> Result<OwnedFd> {
    crate::bail!("tty is not implemented yet")
}

/// Make `slave` the controlling terminal and stdin/stdout/stderr of the
/// calling process (setsid, TIOCSCTTY, dup2).
pub fn attach_slave(_slave: OwnedFd) -> Result<()> {
    crate::bail!("tty is not implemented yet")
}

/// `berth run`'s side of a terminal it drives itself (stub until tty lands).
pub struct Proxy {
    _master: OwnedFd,
}

impl Proxy {
    pub fn start(master: OwnedFd) -> Result<Proxy> {
        Ok(Proxy { _master: master })
    }
    pub fn resize(&self) {}
    pub fn finish(self) {}
}
