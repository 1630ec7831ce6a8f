//! A seccomp notify listener (agent) for the tests (tests/seccomp_notify.rs),
//! built with the tests (`cargo test` builds examples).
//!
//! Usage: `seccomp_listener SOCKET OUTDIR`
//!
//! It listens on the unix socket SOCKET; each connection is one runtime
//! sending a container process state (JSON) with the listener fd in
//! SCM_RIGHTS, as the runtime-spec describes. The state goes to
//! `OUTDIR/state-N.json` (N counts connections from 1). The listener fd's
//! notifications are answered from the state's `metadata`, a `;`-separated
//! list of `PATH=ANSWER` for mkdir/mkdirat of PATH:
//!
//! - `errno:N`: the syscall fails with errno N;
//! - `fake`: it returns 0 without running (nothing is created);
//! - `continue`: the kernel runs it (SECCOMP_USER_NOTIF_FLAG_CONTINUE);
//! - `hold`: no answer until a line arrives on stdin, then `continue`.
//!
//! Paths without an answer, and other syscalls, continue. Every event is a
//! line in `OUTDIR/log` (`connect N`, `notify pid=P nr=NR path=PATH`,
//! `answer ...`, `stale ...` when the syscall stopped waiting). It prints
//! `ready` once listening and exits at the end of its stdin.

use std::collections::VecDeque;
use std::io::{BufRead, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

struct Agent {
    out: PathBuf,
    log: std::fs::File,
    connections: usize,
    listeners: Vec<(OwnedFd, Vec<(String, String)>)>,
    held: VecDeque<(usize, u64, String)>,
}

impl Agent {
    fn note(&mut self, line: &str) {
        let _ = writeln!(self.log, "{line}");
    }

    fn accept(&mut self, stream: UnixStream) -> Result<(), String> {
        self.connections += 1;
        let n = self.connections;
        let mut buf = vec![0u8; 1 << 16];
        let mut cmsg = nix::cmsg_space!([RawFd; 4]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| format!("recvmsg: {e}"))?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for fd in raw {
                    // SAFETY: SCM_RIGHTS just installed this fd; we own it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        let first = msg.bytes;
        let mut json = buf[..first].to_vec();
        // The rest of the state, if the runtime wrote it in more pieces.
        (&stream)
            .read_to_end(&mut json)
            .map_err(|e| format!("read: {e}"))?;
        std::fs::write(self.out.join(format!("state-{n}.json")), &json)
            .map_err(|e| format!("write state: {e}"))?;
        let state: serde_json::Value =
            serde_json::from_slice(&json).map_err(|e| format!("state JSON: {e}"))?;
        let names = state["fds"].as_array().cloned().unwrap_or_default();
        let idx = names
            .iter()
            .position(|v| v == "seccompFd")
            .ok_or("no seccompFd in fds")?;
        if names.len() != fds.len() {
            return Err(format!("{} fd names, {} fds", names.len(), fds.len()));
        }
        let answers = state["metadata"]
            .as_str()
            .unwrap_or_default()
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let fd = fds.swap_remove(idx);
        self.note(&format!("connect {n} fds={}", names.len()));
        self.listeners.push((fd, answers));
        Ok(())
    }

    fn handle(&mut self, i: usize) {
        let fd = self.listeners[i].0.as_fd();
        let req = match berth::sys::seccomp_notif_recv(fd) {
            Ok(r) => r,
            Err(e) => return self.note(&format!("recv failed: {e}")),
        };
        let nr = req.data.nr as i64;
        let ptr = match nr {
            libc::SYS_mkdir => Some(req.data.args[0]),
            libc::SYS_mkdirat => Some(req.data.args[1]),
            _ => None,
        };
        let path = ptr.map(|p| read_string(req.pid, p)).unwrap_or_default();
        // The memory read is only trustworthy if the syscall still waits.
        if !berth::sys::seccomp_notif_id_valid(fd, req.id) {
            return self.note(&format!("stale id={} path={path}", req.id));
        }
        self.note(&format!("notify pid={} nr={nr} path={path}", req.pid));
        let answer = self.listeners[i]
            .1
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| "continue".into());
        if answer == "hold" {
            self.note(&format!("held pid={} path={path}", req.pid));
            self.held.push_back((i, req.id, path));
            return;
        }
        self.answer(i, req.id, &path, &answer);
    }

    fn answer(&mut self, i: usize, id: u64, path: &str, answer: &str) {
        let fd = self.listeners[i].0.as_fd();
        let res = if let Some(n) = answer.strip_prefix("errno:") {
            let n: i32 = n.parse().unwrap_or(libc::EPERM);
            berth::sys::seccomp_notif_send(fd, id, 0, -n, false)
        } else if answer == "fake" {
            berth::sys::seccomp_notif_send(fd, id, 0, 0, false)
        } else {
            berth::sys::seccomp_notif_send(fd, id, 0, 0, true)
        };
        match res {
            Ok(()) => self.note(&format!("answer {answer} path={path}")),
            Err(e) => self.note(&format!("stale answer {answer} path={path}: {e}")),
        }
    }
}

/// A NUL-terminated string at `addr` in process `pid`.
fn read_string(pid: u32, addr: u64) -> String {
    let Ok(mem) = std::fs::File::open(format!("/proc/{pid}/mem")) else {
        return String::new();
    };
    let mut buf = vec![0u8; 4096];
    let n = mem.read_at(&mut buf, addr).unwrap_or(0);
    buf.truncate(n);
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: seccomp_listener SOCKET OUTDIR");
        std::process::exit(2);
    }
    let out = Path::new(&args[2]).to_path_buf();
    let _ = std::fs::remove_file(&args[1]);
    let listener = UnixListener::bind(&args[1]).expect("bind the listener socket");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join("log"))
        .expect("open the log");
    let mut agent = Agent {
        out,
        log,
        connections: 0,
        listeners: Vec::new(),
        held: VecDeque::new(),
    };
    println!("ready");
    let _ = std::io::stdout().flush();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    let stdin_fd = std::io::stdin();
    loop {
        let (ready, stdin_ready): (Vec<(usize, PollFlags)>, PollFlags) = {
            let mut pfds = vec![
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(stdin_fd.as_fd(), PollFlags::POLLIN),
            ];
            for (fd, _) in &agent.listeners {
                pfds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut pfds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => panic!("poll: {e}"),
            }
            let ev = |p: &PollFd| p.revents().unwrap_or(PollFlags::empty());
            let mut ready = Vec::new();
            if ev(&pfds[0]).contains(PollFlags::POLLIN) {
                ready.push((usize::MAX, PollFlags::POLLIN));
            }
            for (i, p) in pfds[2..].iter().enumerate() {
                if !ev(p).is_empty() {
                    ready.push((i, ev(p)));
                }
            }
            (ready, ev(&pfds[1]))
        };
        if !stdin_ready.is_empty() {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            // A line releases every held syscall.
            while let Some((i, id, path)) = agent.held.pop_front() {
                agent.answer(i, id, &path, "continue");
            }
        }
        let mut gone = Vec::new();
        for (i, ev) in ready {
            if i == usize::MAX {
                if let Ok((stream, _)) = listener.accept() {
                    if let Err(e) = agent.accept(stream) {
                        agent.note(&format!("bad connection: {e}"));
                    }
                }
            } else if ev.contains(PollFlags::POLLIN) {
                agent.handle(i);
            } else if ev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                // Every process under that filter is gone.
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            agent.held.retain(|(h, ..)| *h != i);
            for h in agent.held.iter_mut() {
                if h.0 > i {
                    h.0 -= 1;
                }
            }
            agent.listeners.remove(i);
        }
    }
}
