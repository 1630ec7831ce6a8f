use super::Globals;
use crate::container::Container;
use crate::{lifecycle, Result};

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn pause(g: &Globals, a: Args) -> Result<i32> {
    lifecycle::pause(&Container::load(&g.root, &a.id)?)?;
    Ok(0)
}

pub fn resume(g: &Globals, a: Args) -> Result<i32> {
    lifecycle::resume(&Container::load(&g.root, &a.id)?)?;
    Ok(0)
}
