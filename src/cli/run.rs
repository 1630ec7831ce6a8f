use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::Globals;
use crate::container::Container;
use crate::error::{Context, Error};
use crate::process::wait;
use crate::{lifecycle, sys, tty, Result};

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: super::create::Args,
    /// Return after start instead of waiting for the container.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container after it exits (no delete).
    #[arg(long)]
    pub keep: bool,
}

/// Signals `run` forwards to the container (everything a terminal or a
/// supervisor sends; not the synchronous faults, not SIGCHLD).
fn forwarded() -> SigSet {
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

pub fn run(g: &Globals, a: RunArgs) -> Result<i32> {
    let id = a.create.id.clone();
    let mut opts = a.create.opts(g, a.detach);
    // Block forwarded signals before the container exists so none is lost;
    // the init resets its mask before exec.
    let signals = forwarded();
    if !a.detach {
        signals.thread_block().context("block signals")?;
    }
    let bundle_spec =
        lifecycle::load_spec(&std::fs::canonicalize(&opts.bundle).unwrap_or(opts.bundle.clone()))?;
    let terminal = bundle_spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let mut console_rx: Option<OwnedFd> = None;
    if terminal && opts.console_socket.is_none() && !a.detach {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .context("socketpair for the console")?;
        opts.console_fd = Some(theirs);
        console_rx = Some(ours);
    }
    drop(bundle_spec);

    let (container, launched) = lifecycle::create(opts)?;
    let pidfd = launched.pidfd;
    if let Err(e) = lifecycle::start(&container) {
        let _ = lifecycle::delete(container, true);
        return Err(e);
    }
    drop(container); // release the lock while the container runs
    if a.detach {
        return Ok(0);
    }

    let proxy = match console_rx {
        Some(rx) => Some(tty::Proxy::start(tty::recv_master(rx.as_fd())?)?),
        None => None,
    };
    let sfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC).context("signalfd")?;
    loop {
        let mut fds = [
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::from(e).context("wait for the container")),
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            break;
        }
        if let Ok(Some(info)) = sfd.read_signal() {
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGCHLD {
                continue;
            }
            if sig == libc::SIGWINCH {
                if let Some(p) = &proxy {
                    p.resize();
                }
                continue;
            }
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), sig);
        }
    }
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(launched.pid), None)
        .context("waitpid")?;
    if let Some(p) = proxy {
        p.finish();
    }
    let code = wait::exit_code(status);
    if !a.keep {
        let c = Container::load(&g.root, &id)?;
        lifecycle::delete(c, true)?;
    }
    Ok(code)
}
