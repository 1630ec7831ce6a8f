use crate::archive;
use crate::layout::refs::{split_layout_ref, Selector};
use anyhow::{bail, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// docker-archive (`docker save`) or OCI archive tarball
    file: PathBuf,
    /// Destination LAYOUT:TAG (the layout is created if missing)
    dest: String,
}

pub fn run(a: Args) -> Result<()> {
    let (layout, sel) = split_layout_ref(&a.dest);
    let tag = match sel {
        Selector::Tag(t) => t,
        Selector::Default => "latest".to_string(),
        Selector::Digest(_) => bail!("import destination must be LAYOUT[:TAG], not a digest"),
    };
    let d = archive::import(&a.file, &layout, &tag)?;
    println!("{}:{tag} {}", layout.display(), d.digest());
    Ok(())
}
