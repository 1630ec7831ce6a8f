//! A process the runtime waits for in the foreground (`run`, `exec`):
//! signals are forwarded to it, its terminal is proxied when the runtime
//! owns it, and its exit status becomes ours.

use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::wait;
use crate::error::{Context, Error, Result};
use crate::{sys, tty};

/// Signals forwarded to the process (everything a terminal or a supervisor
/// sends; not the synchronous faults).
pub fn forwarded() -> SigSet {
    let mut set = SigSet::empty();
    for sig in Signal::iterator() {
        use Signal::*;
        if !matches!(
            sig,
            SIGKILL | SIGSTOP | SIGSEGV | SIGBUS | SIGILL | SIGFPE | SIGTRAP | SIGSYS | SIGABRT
        ) {
            set.add(sig);
        }
    }
    set
}

/// Block the forwarded signals before the process exists so none is lost
/// (the child resets its mask before exec).
pub fn block_signals() -> Result<SigSet> {
    let set = forwarded();
    set.thread_block().context("block signals")?;
    Ok(set)
}

/// A socketpair standing in for --console-socket when we drive the
/// terminal: (our end, the end given to the child).
pub fn console_pair() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the console")
}

/// Wait for `pid` (our child), forwarding signals and proxying its
/// terminal; returns its exit code (128 + signal when killed).
pub fn supervise(
    pid: i32,
    pidfd: &OwnedFd,
    console_rx: Option<OwnedFd>,
    signals: &SigSet,
) -> Result<i32> {
    let proxy = match console_rx {
        Some(rx) => Some(tty::Proxy::start(tty::recv_master(rx.as_fd())?)?),
        None => None,
    };
    let sfd = SignalFd::with_flags(signals, SfdFlags::SFD_CLOEXEC).context("signalfd")?;
    loop {
        let mut fds = [
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::from(e).context("wait for the container process")),
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            break;
        }
        if let Ok(Some(info)) = sfd.read_signal() {
            match info.ssi_signo as i32 {
                libc::SIGCHLD => {}
                libc::SIGWINCH => {
                    if let Some(p) = &proxy {
                        let _ = p.resize();
                    }
                }
                sig => {
                    let _ = sys::pidfd_send_signal(pidfd.as_fd(), sig);
                }
            }
        }
    }
    let status =
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).context("waitpid")?;
    if let Some(p) = proxy {
        let _ = p.finish();
    }
    Ok(wait::exit_code(status))
}
