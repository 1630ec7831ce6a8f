use crate::bundle::Source;
use crate::overlay;
use anyhow::{bail, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// An overlay bundle (`unpack --overlay`)
    bundle: PathBuf,
}

fn overlay_of(b: &std::path::Path) -> Result<crate::bundle::Overlay> {
    match Source::read(b)?.overlay {
        Some(ov) => Ok(ov),
        None => bail!(
            "{} is a flat bundle: its rootfs is a directory, not a mount",
            b.display()
        ),
    }
}

pub fn run(a: Args) -> Result<()> {
    let ov = overlay_of(&a.bundle)?;
    overlay::mount(&a.bundle, &ov)
}

pub fn umount(a: Args) -> Result<()> {
    overlay_of(&a.bundle)?;
    overlay::umount(&a.bundle)
}
