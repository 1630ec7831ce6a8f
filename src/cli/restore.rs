use std::path::PathBuf;

use super::Globals;
use crate::checkpoint::{self, Criu, RestoreOptions};
use crate::container::Container;
use crate::lifecycle::{self, Console, CreateOptions};
use crate::process::foreground;
use crate::Result;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: super::checkpoint::Common,
    /// Bundle directory (holds config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Return once restored instead of waiting for the container.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the restored init's pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Do not become the subreaper of the restored processes.
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Socket the new pty master of a container with a terminal is sent to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Not supported.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Not supported.
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// Not supported.
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
    pub id: String,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    a.common.refuse_unsupported(&[
        ("--no-pivot", a.no_pivot),
        ("--lsm-profile", a.lsm_profile.is_some()),
        ("--lsm-mount-context", a.lsm_mount_context.is_some()),
        (
            "--no-subreaper without --detach",
            a.no_subreaper && !a.detach,
        ),
    ])?;
    let signals = if a.detach {
        None
    } else {
        Some(foreground::block_signals()?)
    };
    // In the foreground the restored init (orphaned when criu exits) must
    // come back to us to be waited for.
    if !a.detach {
        nix::sys::prctl::set_child_subreaper(true)?;
    }
    let spec = lifecycle::load_spec(&a.bundle)?;
    let id = a.id.clone();
    let o = CreateOptions {
        root: g.root.clone(),
        id: a.id,
        bundle: a.bundle,
        pid_file: a.pid_file,
        console: a.console_socket.map_or(Console::None, Console::Socket),
        no_pivot: false,
        no_new_keyring: false,
        preserve_fds: 0,
        systemd_cgroup: g.systemd_cgroup,
        pidfd_socket: None,
        rootless_cgroups: g.rootless,
    };
    let c = a.common;
    let r = RestoreOptions {
        image_path: c.image_path(),
        work_path: c.work_path,
        tcp_established: c.tcp_established,
        ext_unix_sk: c.ext_unix_sk,
        shell_job: c.shell_job,
        file_locks: c.file_locks,
        manage_cgroups_mode: c.manage_cgroups_mode,
    };
    let (c, pid) = checkpoint::restore(&Criu::new(g.criu.as_deref()), o, &spec, &r)?;
    drop(c);
    let Some(signals) = signals else { return Ok(0) };
    let pidfd = crate::sys::pidfd_open(pid)?;
    let code = foreground::supervise(pid, &pidfd, None, &signals)?;
    lifecycle::delete(Container::load(&g.root, &id)?, true)?;
    Ok(code)
}
