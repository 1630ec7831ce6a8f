use std::io::Write;

use super::Globals;
use crate::container::{Container, Status};
use crate::events::{events, parse_go_duration};
use crate::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Print one stats event and exit.
    #[arg(long)]
    pub stats: bool,
    /// Interval between stats events (a Go duration like 5s).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    pub id: String,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    let interval = parse_go_duration(&a.interval)?;
    let c = Container::load(&g.root, &a.id)?;
    if c.status() == Status::Stopped {
        crate::bail!("container not running");
    }
    let (cgroup, state) = (c.state.cgroup.clone(), c.state.clone());
    let dir = c.dir.clone();
    // Do not hold the lock while streaming: other commands must go on.
    drop(c);
    let fifo = dir.join(crate::container::EXEC_FIFO);
    let mut running = || state.status(&fifo) != Status::Stopped;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    events(&cgroup, &a.id, interval, a.stats, &mut out, &mut running)?;
    out.flush().ok();
    Ok(0)
}
