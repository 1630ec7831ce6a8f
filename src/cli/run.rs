use std::os::fd::OwnedFd;

use super::Globals;
use crate::container::Container;
use crate::lifecycle::{self, Console};
use crate::process::foreground;
use crate::Result;

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: super::create::Args,
    /// Return after start instead of waiting for the container.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container after it exits (no delete).
    #[arg(long)]
    pub keep: bool,
}

pub fn run(g: &Globals, a: RunArgs) -> Result<i32> {
    let id = a.create.id.clone();
    let signals = if a.detach {
        None
    } else {
        Some(foreground::block_signals()?)
    };
    let spec = lifecycle::load_spec(&a.create.bundle)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    // In the foreground without a console socket, run drives the terminal.
    let mut console_rx: Option<OwnedFd> = None;
    let console = if terminal && a.create.console_socket.is_none() && !a.detach {
        let (ours, theirs) = foreground::console_pair()?;
        console_rx = Some(ours);
        Some(Console::Proxied(theirs))
    } else {
        None
    };

    let (container, launched) = lifecycle::create(a.create.into_options(g, console), &spec)?;
    if let Err(e) = lifecycle::start(&container) {
        let _ = lifecycle::delete(container, true);
        return Err(e);
    }
    drop(container); // release the lock while the container runs
    let Some(signals) = signals else { return Ok(0) };
    let code = foreground::supervise(launched.pid, &launched.pidfd, console_rx, &signals)?;
    if !a.keep {
        lifecycle::delete(Container::load(&g.root, &id)?, true)?;
    }
    Ok(code)
}
