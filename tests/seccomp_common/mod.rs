//! Helpers shared by the container-level seccomp tests: the notify
//! listener (examples/seccomp_listener.rs) and the probe
//! (examples/seccomp_probe.rs), both built by `cargo test`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::Value;

use crate::common::example;

/// A running listener with its own directory (socket, log, states); ended
/// (stdin closed, then killed by pid if need be) and removed on drop.
pub struct Listener {
    pub dir: PathBuf,
    pub socket: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Listener {
    pub fn start(tag: &str) -> Listener {
        let dir = std::env::temp_dir().join(format!(
            "berth-listener-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("agent.sock");
        let mut child = Command::new(example("seccomp_listener"))
            .arg(&socket)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the listener");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "listener did not start");
        let stdin = child.stdin.take();
        Listener {
            dir,
            socket,
            child,
            stdin,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The container process state of connection `n` (from 1).
    pub fn state(&self, n: usize) -> Value {
        let p = self.dir.join(format!("state-{n}.json"));
        let data = std::fs::read(&p)
            .unwrap_or_else(|e| panic!("{}: {e}; log:\n{}", p.display(), self.log()));
        serde_json::from_slice(&data).expect("the state is JSON")
    }

    /// Wait (bounded) until the log has a line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        for _ in 0..1000 {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("listener log never showed {needle:?}:\n{}", self.log());
    }

    /// Answer every held syscall (`continue`).
    pub fn release(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(b"release\n").unwrap();
        stdin.flush().unwrap();
    }

    /// A `linux.seccomp` that notifies `names` to this listener, with
    /// `metadata` (the listener's answers).
    pub fn profile(&self, names: &[&str], metadata: &str) -> Value {
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "listenerPath": self.socket,
            "listenerMetadata": metadata,
            "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}]
        })
    }
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for Listener {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let pid = self.child.id() as i32;
        // It exits at the end of its stdin; a listener stuck elsewhere is
        // killed, by its pid only.
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // SAFETY: kill(2) of our own child by pid.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
