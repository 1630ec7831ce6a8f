//! Waiting for processes without busy polling: pidfds become readable when
//! their process exits (including when it becomes a zombie).

use std::os::fd::{AsFd, BorrowedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::{Context, Result};
use crate::sys;

/// Wait until the process behind `pidfd` has exited; false on timeout.
pub fn exited(pidfd: BorrowedFd, timeout_ms: i32) -> Result<bool> {
    let mut fds = [PollFd::new(pidfd, PollFlags::POLLIN)];
    loop {
        let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE);
        match poll(&mut fds, timeout) {
            Ok(n) => return Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(crate::Error::from(e).context("poll pidfd")),
        }
    }
}

/// SIGKILL a process we do not own (by pidfd) and wait for it to be gone.
pub fn kill_and_wait(pid: i32) -> Result<()> {
    match sys::pidfd_open(pid) {
        Ok(fd) => kill_pidfd_and_wait(fd.as_fd(), pid),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        Err(e) => Err(crate::Error::from(e).context(format!("pidfd_open {pid}"))),
    }
}

/// SIGKILL the process behind `pidfd` (`pid` names it in messages) and
/// wait for it to be gone.
pub fn kill_pidfd_and_wait(pidfd: BorrowedFd, pid: i32) -> Result<()> {
    match sys::pidfd_send_signal(pidfd, libc::SIGKILL) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
        Err(e) => return Err(crate::Error::from(e).context(format!("kill {pid}"))),
    }
    if !exited(pidfd, 10_000).context("wait for the container init to exit")? {
        crate::bail!("container init {pid} did not exit within 10s of SIGKILL");
    }
    Ok(())
}

/// The exit code a shell would report: the status, or 128 + signal.
pub fn exit_code(status: nix::sys::wait::WaitStatus) -> i32 {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 255,
    }
}
