use std::path::PathBuf;

use super::Globals;
use crate::checkpoint::{self, Criu, DumpOptions};
use crate::container::Container;
use crate::{bail, Result};

/// The flags `checkpoint` and `restore` share (runc's).
#[derive(clap::Args)]
pub struct Common {
    /// Directory of the image files (default: ./checkpoint).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's log and work files (default: the image path).
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// cgroups mode: soft (default), full, strict, ignore.
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Allow established TCP connections (CRIU's TCP repair).
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow unix sockets whose peer is outside the container.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow a terminal from the shell that started the container.
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Dump and restore file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// Not supported.
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Not supported.
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// Not supported.
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
}

impl Common {
    /// Refuse, by name, every flag given that berth does not support:
    /// these and `more`.
    pub fn refuse_unsupported(&self, more: &[(&str, bool)]) -> Result<()> {
        let own = [
            ("--empty-ns", !self.empty_ns.is_empty()),
            ("--lazy-pages", self.lazy_pages),
            ("--auto-dedup", self.auto_dedup),
        ];
        for (flag, given) in own.iter().chain(more) {
            if *given {
                bail!("not supported: {flag}");
            }
        }
        Ok(())
    }

    pub fn image_path(&self) -> PathBuf {
        self.image_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("checkpoint"))
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// A previous pre-dump, relative to the image path.
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Keep the container running after the checkpoint.
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Dump the memory only, leaving the container running.
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// Not supported.
    #[arg(long = "status-fd")]
    pub status_fd: Option<i32>,
    /// Not supported.
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    pub id: String,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    a.common.refuse_unsupported(&[
        ("--status-fd", a.status_fd.is_some()),
        ("--page-server", a.page_server.is_some()),
    ])?;
    let c = Container::load(&g.root, &a.id)?;
    let o = DumpOptions {
        image_path: a.common.image_path(),
        work_path: a.common.work_path,
        parent_path: a.parent_path,
        leave_running: a.leave_running,
        pre_dump: a.pre_dump,
        tcp_established: a.common.tcp_established,
        ext_unix_sk: a.common.ext_unix_sk,
        shell_job: a.common.shell_job,
        file_locks: a.common.file_locks,
        manage_cgroups_mode: a.common.manage_cgroups_mode,
    };
    checkpoint::checkpoint(&Criu::new(g.criu.as_deref()), &c, &o)?;
    Ok(0)
}
