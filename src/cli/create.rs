use std::path::PathBuf;

use super::Globals;
use crate::lifecycle::{self, Console, CreateOptions};
use crate::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Bundle directory (holds config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the init's pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (terminal: true).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the container's init.
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// Use move + chroot instead of pivot_root (e.g. on a ramfs root).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N more fds (from 3, after LISTEN_FDS) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Accepted for runc compatibility; berth has no intelRdt support.
    #[arg(long = "intelrdt-l3-cache", hide = true)]
    pub intelrdt: Option<String>,
    pub id: String,
}

impl Args {
    /// The options for `lifecycle::create`; `console` when the caller (run)
    /// drives the terminal itself, else the --console-socket.
    pub fn into_options(self, g: &Globals, console: Option<Console>) -> CreateOptions {
        let console = console.unwrap_or(match self.console_socket {
            Some(p) => Console::Socket(p),
            None => Console::None,
        });
        CreateOptions {
            root: g.root.clone(),
            id: self.id,
            bundle: self.bundle,
            pid_file: self.pid_file,
            console,
            pidfd_socket: self.pidfd_socket,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            systemd_cgroup: g.systemd_cgroup,
            rootless_cgroups: g.rootless,
        }
    }
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    let spec = lifecycle::load_spec(&a.bundle)?;
    lifecycle::create(a.into_options(g, None), &spec)?;
    Ok(0)
}
