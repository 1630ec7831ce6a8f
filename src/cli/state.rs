use super::Globals;
use crate::container::Container;
use crate::Result;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    let v = c.state.to_oci_json(c.status());
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}
