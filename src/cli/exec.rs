use std::os::fd::OwnedFd;
use std::path::PathBuf;

use oci_spec::runtime::{Capability, Process};

use super::Globals;
use crate::container::{self, Container, ExecConfig};
use crate::lifecycle::{self, Console, ExecOptions};
use crate::process::foreground;
use crate::{Error, Result};

/// runc's `exec` flags. Without --process, the process is the container's
/// own (from its config.json) with the command and these flags applied.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(short = 't', long)]
    pub tty: bool,
    /// UID[:GID]
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// A process.json (runtime-spec Process) replacing the command and flags.
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "process-label", hide = true)]
    pub process_label: Option<String>,
    #[arg(long = "apparmor", hide = true)]
    pub apparmor: Option<String>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    #[arg(short = 'c', long = "cap")]
    pub caps: Vec<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Accepted for runc compatibility (exec into a sub-cgroup): not supported.
    #[arg(long, hide = true)]
    pub cgroup: Vec<String>,
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn build_process(a: &Args, cfg: &ExecConfig) -> Result<Process> {
    if let Some(p) = &a.process {
        let data = std::fs::read(p)
            .map_err(|e| Error::from(e).context(format!("read {}", p.display())))?;
        let mut v: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| Error::from(e).context(format!("parse {}", p.display())))?;
        // As runc: a process without `user` runs as root, without `cwd` in /.
        if let Some(obj) = v.as_object_mut() {
            obj.entry("user")
                .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
            obj.entry("cwd").or_insert_with(|| "/".into());
            // runc: a process without capabilities gets the container's.
            if let Some(c) = cfg.process.as_ref().and_then(|p| p.capabilities().as_ref()) {
                if !obj.contains_key("capabilities") {
                    obj.insert("capabilities".into(), serde_json::to_value(c)?);
                }
            }
        }
        crate::capabilities::drop_unknown(&mut v["capabilities"]);
        return serde_json::from_value(v)
            .map_err(|e| Error::from(e).context(format!("parse {}", p.display())));
    }
    if a.command.is_empty() {
        crate::bail!("exec needs a command (or --process)");
    }
    let mut p = cfg.process.clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let parse = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| Error::msg(format!("--user {u:?}: expected UID[:GID]")))
        };
        p.user_mut().set_uid(parse(uid)?);
        p.user_mut().set_gid(parse(gid)?);
    }
    if !a.additional_gids.is_empty() {
        // Added to the config's groups, as runc adds them.
        let mut gids = p.user().additional_gids().clone().unwrap_or_default();
        gids.extend(a.additional_gids.iter().copied());
        p.user_mut().set_additional_gids(Some(gids));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.caps {
            let cap: Capability = serde_json::from_value(serde_json::Value::from(name.as_str()))
                .map_err(|_| Error::msg(format!("--cap {name}: unknown capability")))?;
            for set in [
                caps.bounding().clone(),
                caps.effective().clone(),
                caps.permitted().clone(),
            ]
            .iter()
            .enumerate()
            {
                let mut s = set.1.clone().unwrap_or_default();
                s.insert(cap);
                match set.0 {
                    0 => caps.set_bounding(Some(s)),
                    1 => caps.set_effective(Some(s)),
                    _ => caps.set_permitted(Some(s)),
                };
            }
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    let cfg = c.exec_config()?;
    let process = build_process(&a, &cfg)?;
    let terminal = process.terminal().unwrap_or(false);
    let signals = if a.detach {
        None
    } else {
        Some(foreground::block_signals()?)
    };
    let mut console_rx: Option<OwnedFd> = None;
    let console = match &a.console_socket {
        Some(path) => Console::Socket(path.clone()),
        None if terminal && !a.detach => {
            let (ours, theirs) = foreground::console_pair()?;
            console_rx = Some(ours);
            Console::Proxied(theirs)
        }
        None => Console::None,
    };
    let pid_file = match &a.pid_file {
        Some(p) if p.is_relative() => Some(std::env::current_dir()?.join(p)),
        p => p.clone(),
    };
    let opts = ExecOptions {
        console,
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
    };
    let launched = lifecycle::exec(c, &cfg, &process, opts)?;
    if let Some(p) = pid_file {
        container::write_atomic(&p, launched.pid.to_string().as_bytes(), 0o644)?;
    }
    match signals {
        None => Ok(0),
        Some(s) => foreground::supervise(launched.pid, &launched.pidfd, console_rx, &s),
    }
}
