//! `--pidfd-socket` (create, run, exec; runc 1.2+, passed by containerd
//! 2.x through go-runc): a pidfd of the container's init or the exec'd
//! process, sent over a unix socket with SCM_RIGHTS, the same way as the
//! console socket's pty master. The message's data names the file
//! ("pidfd"), which receivers ignore or use as the file's name.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Context, Result};

const NAME: &[u8] = b"pidfd";

/// Connect to the socket before anything is created, so a bad path fails
/// the command with nothing left behind.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("connect to pidfd socket {}", path.display()))?;
    Ok(OwnedFd::from(s))
}

/// Send `pidfd` over the connected `socket`.
pub fn send(socket: BorrowedFd, pidfd: BorrowedFd) -> Result<()> {
    let fds = [pidfd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(NAME)];
    let sent = sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .context("send pidfd over --pidfd-socket")?;
    if sent != NAME.len() {
        crate::bail!("send pidfd over --pidfd-socket: short write ({sent} bytes)");
    }
    Ok(())
}
