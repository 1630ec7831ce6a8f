use super::Globals;
use crate::Result;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_g: &Globals, _a: Args) -> Result<i32> {
    println!(
        "{}",
        serde_json::to_string_pretty(&crate::features::document())?
    );
    Ok(0)
}
