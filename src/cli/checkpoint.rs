use std::path::PathBuf;

use super::Globals;
use crate::checkpoint::{self, Criu, DumpOptions};
use crate::container::Container;
use crate::{bail, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Directory for the image files (default: ./checkpoint).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's log and work files (default: the image path).
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// A previous pre-dump, relative to the image path.
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Keep the container running after the checkpoint.
    #[arg(long = "leave-running")]
    pub leave_running: bool,
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
    /// Dump the memory only, leaving the container running.
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// cgroups mode: soft (default), full, strict, ignore.
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Not supported.
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Not supported.
    #[arg(long = "status-fd")]
    pub status_fd: Option<i32>,
    /// Not supported.
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// Not supported.
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// Not supported.
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    pub id: String,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    for (flag, given) in [
        // Passed through by the library, but untested here: refused.
        ("--tcp-established", a.tcp_established),
        ("--ext-unix-sk", a.ext_unix_sk),
        ("--shell-job", a.shell_job),
        ("--file-locks", a.file_locks),
        ("--empty-ns", !a.empty_ns.is_empty()),
        ("--status-fd", a.status_fd.is_some()),
        ("--page-server", a.page_server.is_some()),
        ("--lazy-pages", a.lazy_pages),
        ("--auto-dedup", a.auto_dedup),
    ] {
        if given {
            bail!("not supported: {flag}");
        }
    }
    let c = Container::load(&g.root, &a.id)?;
    let o = DumpOptions {
        image_path: a.image_path.unwrap_or_else(|| PathBuf::from("checkpoint")),
        work_path: a.work_path,
        parent_path: a.parent_path,
        leave_running: a.leave_running,
        pre_dump: a.pre_dump,
        tcp_established: a.tcp_established,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        manage_cgroups_mode: a.manage_cgroups_mode,
    };
    checkpoint::checkpoint(&Criu::new(g.criu.as_deref()), &c, &o)?;
    Ok(0)
}
