use super::Globals;
use crate::container::Container;
use crate::{lifecycle, Result};

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    lifecycle::start(&c)?;
    Ok(0)
}
