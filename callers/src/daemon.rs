//! Private daemons: each with its own config, root, state and socket under
//! the run's temp dir, in its own process group (a terminal's ^C reaches
//! the harness, which stops them by PID), logging to a file.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{cleanup, proc, suite};

pub struct Daemon {
    pub name: String,
    pub pid: i32,
    pub log: PathBuf,
}

impl Daemon {
    pub fn spawn(
        name: &str,
        argv: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> Result<Daemon, String> {
        let f = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(f.try_clone().map_err(|e| e.to_string())?)
            .stderr(f)
            .process_group(0);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = proc::spawn(&mut c).map_err(|e| format!("cannot start {name}: {e}"))?;
        let pid = child.id() as i32;
        cleanup::add_daemon(name, pid);
        Ok(Daemon {
            name: name.into(),
            pid,
            log: log.to_path_buf(),
        })
    }

    /// Fail with the tail of its log if it exited.
    pub fn alive(&self) -> Result<(), String> {
        if proc::exited(self.pid) {
            Err(format!("{} exited: {}", self.name, self.log_tail(5)))
        } else {
            Ok(())
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        proc::last_lines(&std::fs::read_to_string(&self.log).unwrap_or_default(), n)
    }

    /// Wait until `ready` holds, failing early if the daemon dies.
    pub fn wait_ready(&self, secs: f64, mut ready: impl FnMut() -> bool) -> Result<(), String> {
        let mut dead = None;
        let ok = suite::poll(secs, || {
            if let Err(e) = self.alive() {
                dead = Some(e);
                return Some(false);
            }
            ready().then_some(true)
        });
        match (ok, dead) {
            (_, Some(e)) => Err(e),
            (Some(true), _) => Ok(()),
            _ => Err(format!(
                "{} not ready after {secs}s: {}",
                self.name,
                self.log_tail(5)
            )),
        }
    }

    pub fn stop(&self) {
        cleanup::stop_daemon(self.pid, Duration::from_secs(15));
    }
}

/// A private containerd: config at `dir/containerd.toml`, socket
/// `dir/containerd.sock`. The CRI plugin only when asked for (with its
/// config lines appended).
pub struct Containerd {
    pub daemon: Daemon,
    pub sock: PathBuf,
}

impl Containerd {
    pub fn start(
        dir: &Path,
        cri: Option<&str>,
        env: &[(String, String)],
    ) -> Result<Containerd, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let sock = dir.join("containerd.sock");
        let d = dir.display();
        let mut cfg = format!(
            r#"# berth-callers: a private containerd; nothing shared with the host's.
version = 2
root = "{d}/root"
state = "{d}/state"
oom_score = 0
{disabled}
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#,
            disabled = if cri.is_some() {
                "disabled_plugins = []".to_string()
            } else {
                r#"disabled_plugins = ["io.containerd.grpc.v1.cri"]"#.to_string()
            }
        );
        if let Some(extra) = cri {
            cfg.push_str(extra);
        }
        let conf = dir.join("containerd.toml");
        std::fs::write(&conf, cfg).map_err(|e| e.to_string())?;
        // containerd 1.6 puts shim sockets in /run/containerd/s whatever
        // its state dir: remove that dir at the end if we made it.
        cleanup::add_run_dir_if_absent(Path::new("/run/containerd/s"));
        let daemon = Daemon::spawn(
            "containerd",
            &[
                "containerd".into(),
                "--config".into(),
                conf.display().to_string(),
            ],
            env,
            &dir.join("containerd.log"),
        )?;
        let sockc = sock.clone();
        daemon.wait_ready(30.0, || {
            sockc.exists()
                && proc::Cmd::new(&["ctr", "-a", sockc.to_str().unwrap(), "version"])
                    .timeout(10)
                    .run()
                    .ok()
        })?;
        Ok(Containerd { daemon, sock })
    }
}
