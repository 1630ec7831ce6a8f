//! The suite is the child subreaper of every container it starts: once a
//! runtime's `create` exits, the container's init is re-parented to us, and
//! we reap it here. Reaping is only done between runtime invocations (the suite
//! is single-threaded), so `waitpid(-1)` never steals a runtime's own status.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

/// Makes this process the subreaper of all its descendants.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes a plain integer argument.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::new(
            io::Error::last_os_error().kind(),
            format!(
                "prctl(PR_SET_CHILD_SUBREAPER): {}",
                io::Error::last_os_error()
            ),
        ));
    }
    Ok(())
}

/// How a reaped process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

#[derive(Default)]
pub struct Reaper {
    exited: HashMap<i32, Exit>,
}

impl Reaper {
    /// Reaps every exited child without blocking and remembers its status.
    pub fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: status is a valid out pointer; WNOHANG never blocks.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let exit = if libc::WIFSIGNALED(status) {
                Exit::Signal(libc::WTERMSIG(status))
            } else {
                Exit::Code(libc::WEXITSTATUS(status))
            };
            self.exited.insert(pid, exit);
        }
    }

    /// Waits until `pid` (a re-parented container process) has been reaped.
    pub fn wait(&mut self, pid: i32, timeout: Duration) -> Option<Exit> {
        let start = Instant::now();
        loop {
            self.reap();
            if let Some(e) = self.exited.remove(&pid) {
                return Some(e);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether `pid` has already been reaped (it is gone, and was ours).
    pub fn has_exited(&mut self, pid: i32) -> bool {
        self.reap();
        self.exited.contains_key(&pid)
    }

    /// Kills and reaps every process that is still our child: containers and
    /// hooks the runtime left behind. Only our own descendants can be here.
    pub fn kill_leftovers(&mut self) -> usize {
        let me = std::process::id() as i32;
        let mut killed = 0;
        for _ in 0..50 {
            let kids = children_of(me);
            if kids.is_empty() {
                break;
            }
            for pid in &kids {
                // SAFETY: kill with a pid we just read as our child.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            killed += kids.len();
            std::thread::sleep(Duration::from_millis(10));
            self.reap();
        }
        self.exited.clear();
        killed
    }
}

/// Pids whose parent is `ppid`, from /proc.
pub fn children_of(ppid: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: parse after it.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let _state = fields.next();
        if fields.next().and_then(|p| p.parse::<i32>().ok()) == Some(ppid) {
            out.push(pid);
        }
    }
    out
}
