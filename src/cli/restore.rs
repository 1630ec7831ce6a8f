use std::path::PathBuf;

use super::Globals;
use crate::checkpoint::{self, Criu, RestoreOptions};
use crate::container::Container;
use crate::lifecycle::{self, Console, CreateOptions};
use crate::process::foreground;
use crate::{bail, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Directory of the image files (default: ./checkpoint).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's log and work files (default: the image path).
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
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
    /// Not supported (untested).
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Not supported (untested).
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Not supported (untested).
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Not supported (untested).
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: soft (default), full, strict, ignore.
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Not supported (restores with a terminal are refused).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Not supported.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Not supported.
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Not supported.
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Not supported.
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// Not supported.
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// Not supported.
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
    pub id: String,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    for (flag, given) in [
        // Passed through by the library, but untested here: refused.
        ("--tcp-established", a.tcp_established),
        ("--ext-unix-sk", a.ext_unix_sk),
        ("--shell-job", a.shell_job),
        ("--file-locks", a.file_locks),
        ("--console-socket", a.console_socket.is_some()),
        ("--no-pivot", a.no_pivot),
        ("--empty-ns", !a.empty_ns.is_empty()),
        ("--auto-dedup", a.auto_dedup),
        ("--lazy-pages", a.lazy_pages),
        ("--lsm-profile", a.lsm_profile.is_some()),
        ("--lsm-mount-context", a.lsm_mount_context.is_some()),
        (
            "--no-subreaper without --detach",
            a.no_subreaper && !a.detach,
        ),
    ] {
        if given {
            bail!("not supported: {flag}");
        }
    }
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
        console: Console::None,
        no_pivot: false,
        no_new_keyring: false,
        preserve_fds: 0,
        systemd_cgroup: g.systemd_cgroup,
    };
    let r = RestoreOptions {
        image_path: a.image_path.unwrap_or_else(|| PathBuf::from("checkpoint")),
        work_path: a.work_path,
        tcp_established: a.tcp_established,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        manage_cgroups_mode: a.manage_cgroups_mode,
    };
    let (c, pid) = checkpoint::restore(&Criu::new(g.criu.as_deref()), o, &spec, &r)?;
    drop(c);
    let Some(signals) = signals else { return Ok(0) };
    let pidfd = crate::sys::pidfd_open(pid)?;
    let code = foreground::supervise(pid, &pidfd, None, &signals)?;
    lifecycle::delete(Container::load(&g.root, &id)?, true)?;
    Ok(code)
}
