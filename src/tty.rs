//! Terminals: the container's console pty and runc's console-socket protocol
//! (the pty master sent with SCM_RIGHTS, as containerd and conmon expect), and
//! the proxy `berth run` drives when it owns the terminal itself.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::thread::JoinHandle;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, SpecialCharacterIndices, Termios};
use oci_spec::runtime::Box as ConsoleSize;

use crate::{sys, Context, Result};

/// Open a new pty pair from the devpts instance mounted at `pts_dir`
/// (`<rootfs>/dev/pts` before pivot_root) and apply `size`. Returns
/// (master, slave).
pub fn open_pty(pts_dir: &Path, size: Option<&ConsoleSize>) -> Result<(OwnedFd, OwnedFd)> {
    let ptmx = pts_dir.join("ptmx");
    let master: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&ptmx)
        .with_context(|| format!("open {}", ptmx.display()))?
        .into();
    sys::unlock_pty(master.as_fd()).context("unlockpt")?;
    // TIOCGPTPEER opens the slave relative to the master's devpts instance,
    // so no path lookup (which could resolve into the wrong instance).
    let slave = sys::open_pty_peer(
        master.as_fd(),
        libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
    )
    .context("ioctl TIOCGPTPEER")?;
    if let Some(size) = size {
        let ws = libc::winsize {
            ws_row: u16::try_from(size.height()).unwrap_or(u16::MAX),
            ws_col: u16::try_from(size.width()).unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        set_winsize(master.as_fd(), &ws).context("set console size")?;
    }
    Ok((master, slave))
}

fn set_winsize(fd: BorrowedFd, ws: &libc::winsize) -> Result<()> {
    sys::set_winsize(fd, ws).context("ioctl TIOCSWINSZ")
}

fn get_winsize(fd: BorrowedFd) -> Result<libc::winsize> {
    sys::get_winsize(fd).context("ioctl TIOCGWINSZ")
}

/// The slave's path as seen inside the container, `/dev/pts/N`.
pub fn pty_name(master: BorrowedFd) -> Result<String> {
    let n = sys::pty_number(master).context("ioctl TIOCGPTN")?;
    Ok(format!("/dev/pts/{n}"))
}

/// Send `master` over the connected console socket: one message whose data
/// is the pty name and whose SCM_RIGHTS carries the fd. containerd's
/// `console.RecvFd` uses the data as the file's name; conmon only needs the
/// fd, but a stream socket needs at least one data byte to carry it.
pub fn send_master(socket: BorrowedFd, master: BorrowedFd) -> Result<()> {
    let name = pty_name(master)?;
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    let sent = sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .context("send pty master over console socket")?;
    if sent != name.len() {
        crate::bail!("send pty master over console socket: short write ({sent} bytes)");
    }
    Ok(())
}

/// Receive a pty master sent by `send_master`.
pub fn recv_master(socket: BorrowedFd) -> Result<OwnedFd> {
    recv_master_named(socket).map(|(fd, _)| fd)
}

/// Receive a pty master and the name sent with it.
pub fn recv_master_named(socket: BorrowedFd) -> Result<(OwnedFd, String)> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg_buf = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg_buf),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("receive pty master from console socket")?;
    let len = msg.bytes;
    let mut fd = None;
    for c in msg.cmsgs().context("receive pty master: control data")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for raw in fds {
                // SAFETY: SCM_RIGHTS installed this fd in our table just now;
                // nothing else owns it. Extra fds are wrapped and dropped.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                if fd.is_none() {
                    fd = Some(owned);
                }
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        crate::bail!("receive pty master: control data truncated");
    }
    let Some(fd) = fd else {
        crate::bail!("receive pty master: message carried no file descriptor");
    };
    let name = String::from_utf8_lossy(&buf[..len]).into_owned();
    Ok((fd, name))
}

/// The terminal belongs to the container's user (as runc makes it): the
/// slave's owner becomes `uid`, its group (devpts' `gid=`) stays.
pub fn give_to(slave: BorrowedFd, uid: u32) -> Result<()> {
    sys::fchown(slave, uid, u32::MAX).with_context(|| format!("chown the terminal to {uid}"))
}

/// Make `slave` the controlling terminal and stdin/stdout/stderr of the
/// calling process (setsid, TIOCSCTTY, dup2).
pub fn attach_slave(slave: OwnedFd) -> Result<()> {
    // The init already leads its own session (EPERM then): that is fine.
    match nix::unistd::setsid() {
        Ok(_) | Err(nix::errno::Errno::EPERM) => {}
        Err(e) => return Err(crate::Error::from(e).context("setsid")),
    }
    sys::set_controlling_tty(slave.as_fd()).context("ioctl TIOCSCTTY")?;
    for target in 0..=2 {
        sys::dup2(slave.as_fd(), target)
            .with_context(|| format!("dup2 pty slave onto fd {target}"))?;
    }
    if slave.as_raw_fd() <= 2 {
        // It is now one of the standard fds; don't close it.
        std::mem::forget(slave);
    }
    Ok(())
}

/// Copies between our stdin/stdout and a container's pty master, for
/// `berth run` with `terminal: true` and no console socket.
pub struct Proxy {
    master: OwnedFd,
    saved: Option<(OwnedFd, Termios)>,
    size_from: Option<OwnedFd>,
    stop_tx: Option<OwnedFd>,
    input: Option<JoinHandle<()>>,
    output: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Proxy our own fds 0 and 1.
    pub fn start(master: OwnedFd) -> Result<Proxy> {
        let stdin = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("dup stdin")?;
        let stdout = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("dup stdout")?;
        Self::with_io(master, stdin, stdout)
    }

    /// Proxy `input` → master and master → `output`. If `input` is a tty it
    /// is put in raw mode until `finish` (or drop).
    pub fn with_io(master: OwnedFd, input: OwnedFd, output: OwnedFd) -> Result<Proxy> {
        let input_is_tty = nix::unistd::isatty(&input).unwrap_or(false);
        let mut saved = None;
        let mut size_from = None;
        if input_is_tty {
            let orig = termios::tcgetattr(&input).context("tcgetattr stdin")?;
            let mut raw = orig.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(&input, SetArg::TCSANOW, &raw).context("set stdin raw")?;
            saved = Some((input.try_clone().context("dup stdin")?, orig));
            size_from = Some(input.try_clone().context("dup stdin")?);
        } else if nix::unistd::isatty(&output).unwrap_or(false) {
            size_from = Some(output.try_clone().context("dup stdout")?);
        }
        let (stop_rx, stop_tx) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        let stop_rx2 = stop_rx.try_clone().context("dup pipe")?;
        let mut proxy = Proxy {
            master,
            saved,
            size_from,
            stop_tx: Some(stop_tx),
            input: None,
            output: None,
        };
        proxy.resize()?;
        // Not a tty: the terminal's EOF char is how EOF reaches the
        // container's reader through the line discipline.
        let veof = if input_is_tty {
            None
        } else {
            let t = termios::tcgetattr(&proxy.master).context("tcgetattr pty master")?;
            // A terminal not yet set up (or in raw mode) may report 0: ^D.
            let c = t.control_chars[SpecialCharacterIndices::VEOF as usize];
            Some(if c == 0 { 0x04 } else { c })
        };
        let to_master = File::from(proxy.master.try_clone().context("dup pty master")?);
        let from_master = File::from(proxy.master.try_clone().context("dup pty master")?);
        proxy.input = Some(std::thread::spawn(move || {
            copy_input(File::from(input), to_master, stop_rx, veof)
        }));
        proxy.output = Some(std::thread::spawn(move || {
            copy_output(from_master, File::from(output), stop_rx2)
        }));
        Ok(proxy)
    }

    /// Copy our window size to the container's terminal (call on SIGWINCH).
    pub fn resize(&self) -> Result<()> {
        if let Some(fd) = &self.size_from {
            let ws = get_winsize(fd.as_fd())?;
            set_winsize(self.master.as_fd(), &ws)?;
        }
        Ok(())
    }

    /// After the container exited: stop forwarding input, drain what the
    /// master still holds to our output, restore our terminal.
    pub fn finish(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        // Closing the write end wakes both threads' polls.
        self.stop_tx.take();
        for t in [self.input.take(), self.output.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
        if let Some((fd, orig)) = self.saved.take() {
            termios::tcsetattr(&fd, SetArg::TCSANOW, &orig).context("restore terminal")?;
        }
        Ok(())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Wait for `fd` or the stop pipe; returns (fd ready, stop requested).
fn wait2(fd: BorrowedFd, stop: BorrowedFd, timeout: PollTimeout) -> (bool, bool) {
    loop {
        let mut p = [
            PollFd::new(fd, PollFlags::POLLIN),
            PollFd::new(stop, PollFlags::POLLIN),
        ];
        match poll(&mut p, timeout) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return (false, true),
            Ok(_) => return (p[0].any().unwrap_or(false), p[1].any().unwrap_or(false)),
        }
    }
}

fn copy_input(mut input: File, mut master: File, stop: OwnedFd, veof: Option<u8>) {
    let mut buf = [0u8; 4096];
    let mut last = b'\n';
    loop {
        let (_, stopped) = wait2(input.as_fd(), stop.as_fd(), PollTimeout::NONE);
        if stopped {
            return;
        }
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                last = buf[n - 1];
                if master.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if let Some(eof) = veof {
        // Mid-line, the first EOF char only flushes the pending line.
        let n = if last == b'\n' { 1 } else { 2 };
        let _ = master.write_all(&[eof; 2][..n]);
        // A ^D that arrives while the reader is switching the terminal out
        // of canonical mode is kept as a NUL and lost: our input has ended,
        // so repeat it until the container is gone.
        loop {
            let mut fds = [nix::poll::PollFd::new(
                stop.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            match nix::poll::poll(&mut fds, PollTimeout::from(200u8)) {
                Ok(0) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                _ => return,
            }
            if master.write_all(&[eof]).is_err() {
                return;
            }
        }
    }
}

fn copy_output(mut master: File, mut output: File, stop: OwnedFd) {
    let mut buf = [0u8; 4096];
    let mut stopping = false;
    loop {
        // Once stopped, only drain what is already there (the container is
        // gone; something it left behind may still hold the slave open).
        let timeout = if stopping {
            PollTimeout::from(100u8)
        } else {
            PollTimeout::NONE
        };
        let (ready, stopped) = wait2(master.as_fd(), stop.as_fd(), timeout);
        if !ready {
            if stopping || !stopped {
                return;
            }
            stopping = true;
            continue;
        }
        stopping |= stopped;
        match master.read(&mut buf) {
            // EIO: every slave fd is closed.
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if output.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
