//! The parent↔init protocol: one SOCK_SEQPACKET socketpair, one message per
//! step, a tag byte and an optional payload.
//!
//! ```text
//! parent                        init (child)
//!   clone3 ─────────────────────▶ born in its namespaces
//!                  ◀──────────── Pid(n)       (only for a new pid namespace in a
//!                                              joined user namespace: the real init)
//!                  ◀──────────── IdMaps       (only for a new user namespace:
//!                                              dumpable until Go)
//!   uid/gid maps, cgroups
//!   Go(state) ──────────────────▶ setup: rootfs, console...
//!                  ◀──────────── Hooks        (only with prestart/createRuntime hooks)
//!   run hooks; HooksDone(state) ▶ createContainer hooks, pivot_root, ...
//!                  ◀──────────── SeccompFd(fd) (only with SCMP_ACT_NOTIFY rules:
//!   send it to listenerPath                   right after the filter is in)
//!                  ◀──────────── Ready | Error(message, errno)
//! ```

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use crate::error::{Context, Error, Result};

#[derive(Debug)]
pub enum Msg {
    /// parent → init: id maps and cgroups are in place, continue; payload
    /// is the state JSON for createContainer/startContainer hooks (empty
    /// when there are none).
    Go(Vec<u8>),
    /// init → parent: run prestart and createRuntime hooks now.
    Hooks,
    /// parent → init: hooks done; payload is the state JSON for the
    /// createContainer hooks.
    HooksDone(Vec<u8>),
    /// init → parent: ready to exec once started.
    Ready,
    /// init → parent: dumpable now (so its /proc files are its user's, as
    /// an unprivileged runtime and newuidmap need), write the id maps.
    IdMaps,
    /// intermediate → parent: the real init, forked into a new pid
    /// namespace that only a child of the intermediate can be born into.
    Pid(i32),
    /// init → parent: setup failed with this message (and errno, 0 when
    /// none).
    Error(String, i32),
    /// init or exec'd process → parent: the seccomp listener fd (passed
    /// with SCM_RIGHTS), for `seccomp::notify::send_to_listener`.
    SeccompFd(OwnedFd),
}

impl Msg {
    /// An `Error` message carrying `e`'s text and errno.
    pub fn error(e: &Error) -> Msg {
        Msg::Error(e.message().to_string(), e.errno().map_or(0, |n| n as i32))
    }
}

/// The error an `Error` message reports, errno included.
pub fn remote_error(message: String, errno: i32) -> Error {
    Error::with_errno(
        message,
        (errno != 0).then(|| nix::errno::Errno::from_raw(errno)),
    )
}

pub struct Channel {
    fd: OwnedFd,
}

/// (parent end, child end); both close-on-exec.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the init channel")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

const MAX_MSG: usize = 1 << 20;

impl Channel {
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send(&self, msg: &Msg) -> Result<()> {
        let mut buf = Vec::with_capacity(16);
        match msg {
            Msg::Go(state) => {
                buf.push(b'G');
                buf.extend_from_slice(state);
            }
            Msg::Hooks => buf.push(b'h'),
            Msg::HooksDone(state) => {
                buf.push(b'H');
                buf.extend_from_slice(state);
            }
            Msg::Ready => buf.push(b'r'),
            Msg::IdMaps => buf.push(b'm'),
            Msg::Pid(pid) => {
                buf.push(b'p');
                buf.extend_from_slice(&pid.to_ne_bytes());
            }
            Msg::Error(m, errno) => {
                buf.push(b'e');
                buf.extend_from_slice(&errno.to_ne_bytes());
                buf.extend_from_slice(m.as_bytes());
            }
            Msg::SeccompFd(fd) => return self.send_fd(b'S', fd.as_raw_fd()),
        }
        // write(2), not send(2): the init sends `Ready` after an early
        // seccomp filter, and profiles that allow nothing else still allow
        // write (runc's init writes its sync pipe there too). A seqpacket
        // socket keeps the message boundary either way; berth ignores
        // SIGPIPE, and an init whose parent is gone may die of it.
        loop {
            match nix::unistd::write(&self.fd, &buf) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::from(e).context("send on the init channel")),
            }
        }
    }

    /// One tag byte with `fd` (SCM_RIGHTS).
    fn send_fd(&self, tag: u8, fd: RawFd) -> Result<()> {
        let fds = [fd];
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &[std::io::IoSlice::new(&[tag])],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::from(e).context("send an fd on the init channel")),
            }
        }
    }

    /// The next message; `None` when the other side closed its end (died).
    pub fn recv(&self) -> Result<Option<Msg>> {
        self.recv_flags(MsgFlags::empty())
    }

    /// The error the other side already reported, if one is queued: what
    /// really went wrong when our own step failed because it died.
    pub fn pending_error(&self) -> Option<Error> {
        match self.recv_flags(MsgFlags::MSG_DONTWAIT) {
            Ok(Some(Msg::Error(m, n))) => Some(remote_error(m, n)),
            _ => None,
        }
    }

    /// The length of the next message, without taking it (0 when the
    /// other side closed its end). recvmsg like the real receive, so an
    /// init under an early seccomp filter needs no other syscall; no
    /// control buffer, so a passed fd stays queued, not installed.
    fn peek_len(&self, flags: MsgFlags) -> Result<usize> {
        loop {
            let mut iov = [std::io::IoSliceMut::new(&mut [])];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                None,
                flags | MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
            ) {
                Ok(m) => return Ok(m.bytes),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::from(e).context("receive on the init channel")),
            }
        }
    }

    fn recv_flags(&self, flags: MsgFlags) -> Result<Option<Msg>> {
        // Sized to the message (MSG_TRUNC reports a seqpacket's real
        // length), not MAX_MSG each time.
        let len = self.peek_len(flags)?;
        if len > MAX_MSG {
            return Err(Error::msg(format!(
                "message of {len} bytes on the init channel exceeds {MAX_MSG}"
            )));
        }
        let mut buf = vec![0u8; len.max(1)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let (n, mut passed) = loop {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                flags | MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => {
                    let mut passed = None;
                    for c in m.cmsgs().context("receive on the init channel")? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for raw in fds {
                                // SAFETY: SCM_RIGHTS just installed this fd in
                                // our table; nothing else owns it. Extra fds
                                // are dropped (closed).
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                passed.get_or_insert(owned);
                            }
                        }
                    }
                    if m.flags.contains(MsgFlags::MSG_TRUNC) {
                        return Err(Error::msg("truncated message on the init channel"));
                    }
                    break (m.bytes, passed);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::from(e).context("receive on the init channel")),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let payload = &buf[1..n];
        let msg = match buf[0] {
            b'G' => Msg::Go(payload.to_vec()),
            b'h' => Msg::Hooks,
            b'H' => Msg::HooksDone(payload.to_vec()),
            b'r' => Msg::Ready,
            b'm' => Msg::IdMaps,
            b'S' => match passed.take() {
                Some(fd) => Msg::SeccompFd(fd),
                None => {
                    return Err(Error::msg(
                        "seccomp fd message without an fd on the init channel",
                    ))
                }
            },
            b'p' => match <[u8; 4]>::try_from(payload) {
                Ok(b) => Msg::Pid(i32::from_ne_bytes(b)),
                Err(_) => return Err(Error::msg("malformed pid message on the init channel")),
            },
            b'e' if payload.len() >= 4 => {
                let (errno, text) = payload.split_at(4);
                let errno = i32::from_ne_bytes([errno[0], errno[1], errno[2], errno[3]]);
                Msg::Error(String::from_utf8_lossy(text).into_owned(), errno)
            }
            t => {
                return Err(Error::msg(format!(
                    "unexpected message tag {t:#x} on the init channel"
                )))
            }
        };
        Ok(Some(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().unwrap();
        for m in [
            Msg::Go(Vec::new()),
            Msg::Hooks,
            Msg::HooksDone(b"{\"id\":\"x\"}".to_vec()),
            Msg::Ready,
            Msg::IdMaps,
            Msg::Pid(4242),
            Msg::Error(
                "mount proc on /proc: permission denied".into(),
                libc::EACCES,
            ),
        ] {
            a.send(&m).unwrap();
            let got = b.recv().unwrap().expect("a message");
            assert_eq!(format!("{got:?}"), format!("{m:?}"));
        }
        // An fd arrives as a new fd for the same open file.
        let (r, _w) = nix::unistd::pipe().unwrap();
        a.send(&Msg::SeccompFd(r.try_clone().unwrap())).unwrap();
        match b.recv().unwrap() {
            Some(Msg::SeccompFd(fd)) => {
                let st = |f: &OwnedFd| nix::sys::stat::fstat(f).unwrap().st_ino;
                assert_eq!(st(&fd), st(&r));
            }
            m => panic!("expected a seccomp fd, got {m:?}"),
        }
        drop(a);
        assert!(b.recv().unwrap().is_none());
    }

    #[test]
    fn a_large_message_arrives_whole() {
        let (a, b) = pair().unwrap();
        let state: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        a.send(&Msg::Go(state.clone())).unwrap();
        a.send(&Msg::Ready).unwrap();
        match b.recv().unwrap() {
            Some(Msg::Go(got)) => assert_eq!(got, state),
            m => panic!("expected Go, got {m:?}"),
        }
        assert!(matches!(b.recv().unwrap(), Some(Msg::Ready)));
        assert!(b.pending_error().is_none());
    }
}
