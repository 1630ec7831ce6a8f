//! Drives a runtime binary through its CLI only, the way runc is driven.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A runtime under test.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub path: PathBuf,
    /// Column label in reports.
    pub label: String,
    /// Run every invocation in a private mount namespace with a tmpfs over
    /// /sys/fs/cgroup/unified (crun 1.8 refuses the hybrid host otherwise).
    pub private_cgroup2: bool,
    /// ociVersion written into generated configs unless a case needs newer.
    pub oci_version: String,
    /// Extra global arguments before the command (e.g. `--root DIR`).
    pub global_args: Vec<String>,
    /// Binary used for cleanup (`delete --force`) instead of `path`; the
    /// mutant self-test cleans up with the real runtime.
    pub cleanup_path: Option<PathBuf>,
    /// Start the runtime with fork + exec instead of posix_spawn, so it
    /// begins with default signal dispositions: glibc's posix_spawn leaves
    /// its internal signals (32, 33) ignored in the child, and ignored
    /// signals survive execve into the container.
    pub fork_exec: bool,
}

/// The outcome of one runtime invocation.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub command: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
    /// A one-line description for assertion diagnostics.
    pub fn describe(&self) -> String {
        let status = if self.timed_out {
            "timed out".to_string()
        } else {
            match self.code {
                Some(c) => format!("exit {c}"),
                None => "killed".into(),
            }
        };
        let err = self.stderr.trim();
        let err: String = err.chars().take(300).collect();
        format!("`{}`: {status}; stderr: {err}", self.command)
    }
}

/// Where a runtime invocation's stdio goes.
pub struct Stdio3 {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

fn private_cgroup2_ns() -> std::io::Result<()> {
    // SAFETY: called in the forked child before exec; unshare and mount are
    // plain syscalls on static, NUL-terminated strings.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(
            c"tmpfs".as_ptr(),
            c"/sys/fs/cgroup/unified".as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"size=4k".as_ptr().cast(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Runtime {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let label = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Runtime {
            path,
            label,
            private_cgroup2: false,
            oci_version: "1.1.0".into(),
            global_args: Vec::new(),
            cleanup_path: None,
            fork_exec: false,
        }
    }

    /// The label, usable in file names.
    pub fn label_slug(&self) -> String {
        self.label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect()
    }

    /// The runtime to clean up with.
    pub fn cleaner(&self) -> Runtime {
        match &self.cleanup_path {
            Some(p) => Runtime {
                path: p.clone(),
                // The wrapper's own flags go; the real runtime's state
                // directory (`--root=DIR`, one argument) stays.
                global_args: self
                    .global_args
                    .iter()
                    .filter(|a| a.starts_with("--root="))
                    .cloned()
                    .collect(),
                cleanup_path: None,
                ..self.clone()
            },
            None => self.clone(),
        }
    }

    /// Runs `runtime ARGS`, stdio to the given files, killing it after `timeout`.
    pub fn run_with(&self, args: &[&str], io: &Stdio3, timeout: Duration) -> Output {
        let command = format!("{} {}", self.label, args.join(" "));
        let mut cmd = Command::new(&self.path);
        cmd.args(&self.global_args).args(args);
        cmd.stdin(Stdio::null());
        let open = |p: &Path| File::create(p);
        match (open(&io.stdout), open(&io.stderr)) {
            (Ok(o), Ok(e)) => {
                cmd.stdout(o).stderr(e);
            }
            (Err(e), _) | (_, Err(e)) => {
                return Output {
                    code: None,
                    stdout: String::new(),
                    stderr: format!("cannot open output file: {e}"),
                    timed_out: false,
                    command,
                }
            }
        }
        if self.fork_exec {
            use std::os::unix::fs::MetadataExt;
            use std::os::unix::process::CommandExt;
            // Setting the (unchanged) ids makes std fork and exec.
            if let Ok(me) = std::fs::metadata("/proc/self") {
                cmd.uid(me.uid()).gid(me.gid());
            }
        }
        if self.private_cgroup2 {
            use std::os::unix::process::CommandExt;
            // SAFETY: the closure only makes raw syscalls (no allocation, no locks).
            unsafe {
                cmd.pre_exec(private_cgroup2_ns);
            }
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Output {
                    code: None,
                    stdout: String::new(),
                    stderr: format!("cannot run {}: {e}", self.path.display()),
                    timed_out: false,
                    command,
                }
            }
        };
        let start = Instant::now();
        let mut timed_out = false;
        let mut delay = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) => {}
                Err(_) => break None,
            }
            if start.elapsed() > timeout {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(10));
        };
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        Output {
            code: status.and_then(|s| s.code()),
            stdout: read(&io.stdout),
            stderr: read(&io.stderr),
            timed_out,
            command,
        }
    }
}
