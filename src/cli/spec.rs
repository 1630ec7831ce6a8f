use std::path::PathBuf;

use crate::{lifecycle, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Where to write config.json.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// A spec for running as an unprivileged user.
    #[arg(long)]
    pub rootless: bool,
}

pub fn run(a: Args) -> Result<i32> {
    lifecycle::write_default_spec(&a.bundle, a.rootless)?;
    Ok(0)
}
