//! The receiving end of `--console-socket`: the runtime connects to our unix
//! socket and passes the pty master with SCM_RIGHTS.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

/// A listening console socket.
pub struct ConsoleSocket {
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn bind(path: &Path) -> io::Result<ConsoleSocket> {
        let listener = UnixListener::bind(path)
            .map_err(|e| io::Error::new(e.kind(), format!("bind {}: {e}", path.display())))?;
        listener.set_nonblocking(true)?;
        Ok(ConsoleSocket { listener })
    }

    /// Accepts the runtime's connection and receives the pty master.
    pub fn receive_master(&self, timeout: Duration) -> io::Result<OwnedFd> {
        let start = Instant::now();
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("accept on console socket: {e}"),
                    ))
                }
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut data = [0u8; 4096];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // Room for one cmsghdr carrying a single fd, suitably aligned.
        let mut cbuf = [0u64; 8];
        // SAFETY: msghdr is plain old data; all-zero is valid before we fill it.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: msg points at buffers that live for this call.
        let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("recvmsg on console socket: {e}"),
            ));
        }
        // SAFETY: msg was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR walk within msg_controllen.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
                    return Ok(OwnedFd::from_raw_fd(fd));
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Err(io::Error::other(
            "the runtime sent no file descriptor on the console socket",
        ))
    }
}

/// Reads from the pty master until `done(text)` or the timeout.
pub fn read_until(master: &OwnedFd, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < timeout {
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is a valid pollfd for one descriptor.
        let rc = unsafe { libc::poll(&mut pfd, 1, 50) };
        if rc <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: buf is writable for its length; the fd is ours.
        let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
        if done(&String::from_utf8_lossy(&out)) {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
