//! Processes: this harness is a child subreaper (PID 1 here does not reap),
//! one thread reaps every child, and commands run with a deadline.
//!
//! Nothing else in the program may wait for children: `Command::output()`
//! and `Child::wait()` would race the reaper. Spawn through [`spawn`] and
//! wait through [`wait`]; orphans (shims, conmon, container processes whose
//! parent died) are reaped and forgotten.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Reaper {
    state: Mutex<ReapState>,
    cv: Condvar,
}

#[derive(Default)]
struct ReapState {
    /// Children spawned through [`spawn`] whose status nobody collected yet.
    ours: HashSet<i32>,
    /// Exit statuses of those children (raw wait status).
    done: HashMap<i32, i32>,
}

fn reaper() -> &'static Reaper {
    static R: OnceLock<Reaper> = OnceLock::new();
    R.get_or_init(|| Reaper {
        state: Mutex::new(ReapState::default()),
        cv: Condvar::new(),
    })
}

/// Become a child subreaper and start the reaping thread. Call once, early.
pub fn init() {
    // SAFETY: integer-only prctl.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let r = reaper();
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || loop {
            let mut status = 0;
            // SAFETY: plain waitpid on any child.
            let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
            if pid > 0 {
                let mut st = r.state.lock().unwrap();
                if st.ours.contains(&pid) {
                    st.done.insert(pid, status);
                    r.cv.notify_all();
                }
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .expect("reaper thread");
}

/// Spawn and remember the child so that [`wait`] can collect its status.
/// The reaper cannot take the status first: it needs the same lock.
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    let r = reaper();
    let mut st = r.state.lock().unwrap();
    let child = cmd.spawn()?;
    st.ours.insert(child.id() as i32);
    Ok(child)
}

/// Exit status in the shell's convention: the code, or 128 + the signal.
pub fn decode(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        -1
    }
}

/// Wait for a child spawned by [`spawn`] until `deadline`; None on time-out
/// (the child is left running).
pub fn wait(pid: i32, deadline: Option<Instant>) -> Option<i32> {
    let r = reaper();
    let mut st = r.state.lock().unwrap();
    loop {
        if let Some(s) = st.done.remove(&pid) {
            st.ours.remove(&pid);
            return Some(decode(s));
        }
        match deadline {
            None => st = r.cv.wait(st).unwrap(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                st = r.cv.wait_timeout(st, d - now).unwrap().0;
            }
        }
    }
}

/// Has the child exited? (Non-blocking; the status stays collectable.)
pub fn exited(pid: i32) -> bool {
    reaper().state.lock().unwrap().done.contains_key(&pid)
}

pub fn kill(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: signalling one pid we started.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Stop a child: SIGTERM, `grace` to exit, then SIGKILL. Returns its status.
pub fn stop(pid: i32, grace: Duration) -> Option<i32> {
    kill(pid, libc::SIGTERM);
    if let Some(s) = wait(pid, Some(Instant::now() + grace)) {
        return Some(s);
    }
    kill(pid, libc::SIGKILL);
    wait(pid, Some(Instant::now() + Duration::from_secs(10)))
}

/// What a command did.
#[derive(Debug, Clone, Default)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub secs: f64,
    /// The command line, for messages.
    pub line: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0 && !self.timed_out
    }
    /// A one-line account for failure messages.
    pub fn brief(&self) -> String {
        let mut s = format!(
            "`{}` exit {}{}",
            self.line,
            self.code,
            if self.timed_out { " (timed out)" } else { "" }
        );
        let err = self.stderr.trim();
        if !err.is_empty() {
            s.push_str(&format!(": {}", last_lines(err, 3)));
        } else if !self.stdout.trim().is_empty() {
            s.push_str(&format!("; stdout: {}", last_lines(self.stdout.trim(), 3)));
        }
        s
    }
    /// Fail unless exit 0.
    pub fn check(self) -> Result<Out, String> {
        if self.ok() {
            Ok(self)
        } else {
            Err(self.brief())
        }
    }
}

pub fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let from = lines.len().saturating_sub(n);
    lines[from..].join(" / ")
}

/// Quote an argument for a readable command line.
pub fn quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// A command to run with a deadline and captured output.
#[derive(Clone)]
pub struct Cmd {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl Cmd {
    pub fn new<S: AsRef<str>>(argv: &[S]) -> Cmd {
        Cmd {
            argv: argv.iter().map(|s| s.as_ref().to_string()).collect(),
            env: Vec::new(),
            stdin: None,
            timeout: Duration::from_secs(60),
        }
    }
    pub fn arg(mut self, a: impl AsRef<str>) -> Cmd {
        self.argv.push(a.as_ref().to_string());
        self
    }
    pub fn args<S: AsRef<str>>(mut self, a: &[S]) -> Cmd {
        self.argv.extend(a.iter().map(|s| s.as_ref().to_string()));
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Cmd {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn stdin(mut self, data: &[u8]) -> Cmd {
        self.stdin = Some(data.to_vec());
        self
    }
    pub fn timeout(mut self, secs: u64) -> Cmd {
        self.timeout = Duration::from_secs(secs);
        self
    }
    pub fn line(&self) -> String {
        self.argv
            .iter()
            .map(|a| quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..]);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Start it in the background with stdout and stderr captured.
    pub fn start(&self) -> Running {
        let mut c = self.command();
        c.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = match spawn(&mut c) {
            Ok(ch) => ch,
            Err(e) => {
                return Running {
                    pid: -1,
                    line: self.line(),
                    started,
                    timeout: self.timeout,
                    rx: None,
                    spawn_error: Some(format!("cannot run {}: {e}", self.argv[0])),
                }
            }
        };
        let (tx, rx) = mpsc::channel();
        if let (Some(data), Some(mut w)) = (self.stdin.clone(), child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = w.write_all(&data);
            });
        }
        for (i, r) in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .enumerate()
        {
            let tx = tx.clone();
            if let Some(mut r) = r {
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        match r.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                buf.extend_from_slice(&chunk[..n]);
                                // Partial output stays visible if a
                                // grandchild keeps the pipe open.
                                let _ = tx.send((i, buf.clone(), false));
                            }
                        }
                    }
                    let _ = tx.send((i, buf, true));
                });
            }
        }
        Running {
            pid: child.id() as i32,
            line: self.line(),
            started,
            timeout: self.timeout,
            rx: Some(rx),
            spawn_error: None,
        }
    }

    pub fn run(&self) -> Out {
        self.start().finish()
    }
}

/// A command started by [`Cmd::start`].
pub struct Running {
    pub pid: i32,
    line: String,
    started: Instant,
    timeout: Duration,
    rx: Option<mpsc::Receiver<(usize, Vec<u8>, bool)>>,
    spawn_error: Option<String>,
}

impl Running {
    /// Wait for it (killing it at its deadline) and collect its output.
    pub fn finish(self) -> Out {
        let deadline = self.started + self.timeout;
        self.finish_by(deadline)
    }

    fn finish_by(self, deadline: Instant) -> Out {
        let mut out = Out {
            line: self.line.clone(),
            ..Out::default()
        };
        if let Some(e) = self.spawn_error {
            out.code = 127;
            out.stderr = e;
            return out;
        }
        match wait(self.pid, Some(deadline)) {
            Some(c) => out.code = c,
            None => {
                out.timed_out = true;
                kill(self.pid, libc::SIGKILL);
                out.code =
                    wait(self.pid, Some(Instant::now() + Duration::from_secs(5))).unwrap_or(-1);
            }
        }
        out.secs = self.started.elapsed().as_secs_f64();
        // The pipes close when the process exits, unless it left a
        // descendant holding them (a daemonised monitor): then take what
        // arrived and move on.
        let mut bufs = [Vec::new(), Vec::new()];
        let mut closed = [false, false];
        let until = Instant::now() + Duration::from_secs(2);
        if let Some(rx) = self.rx {
            while !(closed[0] && closed[1]) {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                match rx.recv_timeout(until - now) {
                    Ok((i, b, fin)) => {
                        bufs[i] = b;
                        closed[i] |= fin;
                    }
                    Err(_) => break,
                }
            }
        }
        out.stdout = String::from_utf8_lossy(&bufs[0]).into_owned();
        out.stderr = String::from_utf8_lossy(&bufs[1]).into_owned();
        out
    }
}

/// One step of a terminal conversation: wait until the output (since the
/// previous step) contains `expect`, then type `send`.
pub struct Step<'a> {
    pub expect: &'a str,
    pub send: &'a str,
}

/// Run `cmd` on a new pseudo-terminal (its controlling terminal, size
/// `rows`x`cols`), as a person at a terminal would, following `steps`.
/// Output is the terminal's, without carriage returns.
pub fn run_pty(cmd: &Cmd, rows: u16, cols: u16, steps: &[Step]) -> Out {
    let started = Instant::now();
    let deadline = started + cmd.timeout;
    let mut out = Out {
        line: cmd.line(),
        ..Out::default()
    };
    let (mut master, mut slave) = (-1, -1);
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two fds; the name buffer and termios are null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    if rc != 0 {
        out.code = -1;
        out.stderr = format!("openpty: {}", std::io::Error::last_os_error());
        return out;
    }
    // SAFETY: both fds were just returned by openpty and are owned here.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // Close-on-exec for both: the child gets the slave as fds 0-2 only.
    for fd in [&master, &slave] {
        // SAFETY: fcntl on a fd we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let mut c = cmd.command();
    let dup = |f: &OwnedFd| Stdio::from(f.try_clone().expect("dup pty"));
    c.stdin(dup(&slave)).stdout(dup(&slave)).stderr(dup(&slave));
    c.env("TERM", "xterm");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match spawn(&mut c) {
        Ok(ch) => ch,
        Err(e) => {
            out.code = 127;
            out.stderr = format!("cannot run {}: {e}", cmd.argv[0]);
            return out;
        }
    };
    drop(slave);
    let pid = child.id() as i32;
    let mut f = std::fs::File::from(master);
    let mut buf = Vec::new();
    let mut step = 0;
    let mut mark = 0;
    let mut exited_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            out.timed_out = true;
            kill(pid, libc::SIGKILL);
            break;
        }
        if exited_at.is_none() && exited(pid) {
            exited_at = Some(now);
        }
        // After the process exits, drain briefly (a container's output may
        // still be on its way through the terminal).
        if exited_at.is_some_and(|t| now.duration_since(t) > Duration::from_millis(300)) {
            break;
        }
        let mut pfd = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on a fd we own.
        let n = unsafe { libc::poll(&mut pfd, 1, 50) };
        if n > 0 {
            let mut chunk = [0u8; 4096];
            match f.read(&mut chunk) {
                Ok(0) => {
                    if exited_at.is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                // EIO: every slave fd is closed.
                Err(_) => {
                    if exited_at.is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        if step < steps.len() {
            let seen = String::from_utf8_lossy(&buf[mark..]);
            if let Some(at) = seen.find(steps[step].expect) {
                mark += at + steps[step].expect.len();
                let _ = f.write_all(steps[step].send.as_bytes());
                step += 1;
            }
        }
    }
    out.code = wait(pid, Some(Instant::now() + Duration::from_secs(10))).unwrap_or(-1);
    out.secs = started.elapsed().as_secs_f64();
    out.stdout = String::from_utf8_lossy(&buf).replace('\r', "");
    if step < steps.len() {
        out.stderr = format!("never saw {:?} on the terminal", steps[step].expect);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("abc/d-1"), "abc/d-1");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn decode_status() {
        // exit(3) is 3 << 8; killed by SIGKILL is 9.
        assert_eq!(decode(3 << 8), 3);
        assert_eq!(decode(9), 137);
    }

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\nb\nc\nd", 2), "c / d");
        assert_eq!(last_lines("a", 3), "a");
    }
}
