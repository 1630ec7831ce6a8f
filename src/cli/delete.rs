use super::Globals;
use crate::container::{self, Container};
use crate::{lifecycle, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Kill a running container first.
    #[arg(short, long)]
    pub force: bool,
    pub id: String,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    let c = match Container::load(&g.root, &a.id) {
        Ok(c) => c,
        // runc: `delete --force` of a missing container succeeds; what a
        // create that died before its first state write left goes too.
        Err(e) if a.force && e.message() == "container does not exist" => {
            container::remove_orphan(&g.root, &a.id)?;
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    lifecycle::delete(c, a.force)?;
    Ok(0)
}
