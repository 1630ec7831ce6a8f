use crate::blobs::Compression;
use crate::commit::{self, CommitOptions};
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The bundle (made by `unpack`, flat or --overlay)
    bundle: PathBuf,
    /// LAYOUT[:TAG] to write the new image to (created if missing; TAG
    /// defaults to latest)
    #[arg(long)]
    image: String,
    /// History comment
    #[arg(long, short)]
    message: Option<String>,
    /// Author of the new image and history entry
    #[arg(long, short)]
    author: Option<String>,
    /// Layer compression: gzip (default; umoci and Docker 20.10 read only
    /// gzip), zstd or none
    #[arg(long, default_value = "gzip", value_parser = Compression::parse)]
    compress: Compression,
    /// Dockerfile-style config change (ENV, CMD, ENTRYPOINT, EXPOSE, LABEL,
    /// USER, VOLUME, WORKDIR, STOPSIGNAL); repeatable
    #[arg(long = "change", short = 'c')]
    changes: Vec<String>,
}

pub fn run(a: Args) -> Result<()> {
    crate::sys::trap_interrupts().context("install signal handlers")?;
    let r = commit::commit(
        &a.bundle,
        &CommitOptions {
            image: a.image.clone(),
            message: a.message,
            author: a.author,
            compression: a.compress,
            changes: a.changes,
        },
    )?;
    println!(
        "{} {} ({} entries, layer {})",
        a.image, r.manifest, r.entries, r.layer
    );
    Ok(())
}
