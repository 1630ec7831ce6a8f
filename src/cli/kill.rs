use super::Globals;
use crate::container::Container;
use crate::{lifecycle, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Signal every process of the container, not only its init.
    #[arg(short, long)]
    pub all: bool,
    pub id: String,
    /// Signal name (with or without SIG) or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    let sig = lifecycle::parse_signal(&a.signal)?;
    let c = Container::load(&g.root, &a.id)?;
    lifecycle::kill(&c, sig, a.all)?;
    Ok(0)
}
