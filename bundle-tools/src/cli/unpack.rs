use crate::layer::idmap::{IdMap, IdRange};
use crate::layout::platform::PlatformSpec;
use crate::unpack::{self, UnpackOptions, DEFAULT_MAX_SIZE};
use anyhow::{Context, Result};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// LAYOUT[:TAG], LAYOUT@DIGEST, oci-archive:FILE[:REF] or docker-archive:FILE[:REF]
    #[arg(long)]
    image: String,
    /// Bundle directory to create (must not exist, or be empty)
    bundle: PathBuf,
    /// Unpack as an unprivileged user: no chown (ownership goes into the
    /// user.rootlesscontainers xattr), no device nodes, rootless config.json
    #[arg(long)]
    rootless: bool,
    /// CONTAINER:HOST[:SIZE] uid mapping (repeatable)
    #[arg(long = "uid-map", value_parser = IdRange::parse)]
    uid_map: Vec<IdRange>,
    /// CONTAINER:HOST[:SIZE] gid mapping (repeatable)
    #[arg(long = "gid-map", value_parser = IdRange::parse)]
    gid_map: Vec<IdRange>,
    /// OS/ARCH[/VARIANT] to select from an image index (default: host)
    #[arg(long, value_parser = PlatformSpec::parse)]
    platform: Option<PlatformSpec>,
    /// Abort when the uncompressed content passes this many bytes
    #[arg(long = "max-size", default_value_t = DEFAULT_MAX_SIZE)]
    max_size: u64,
    /// Never show a progress bar
    #[arg(long, short)]
    quiet: bool,
    /// Make the rootfs an overlay of layers kept once in the shared store
    /// (a bundle for a cached image costs a mount)
    #[arg(long)]
    overlay: bool,
    /// The layer store of --overlay
    #[arg(long, default_value = crate::store::DEFAULT_STORE)]
    store: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let opts = UnpackOptions {
        image: a.image,
        platform: a.platform.unwrap_or_else(PlatformSpec::host),
        rootless: a.rootless,
        uid_map: IdMap(a.uid_map),
        gid_map: IdMap(a.gid_map),
        max_size: a.max_size,
        progress: !a.quiet && std::io::stderr().is_terminal(),
        overlay: a.overlay.then_some(a.store),
    };
    crate::sys::trap_interrupts().context("install signal handlers")?;
    let r = unpack::unpack(&opts, &a.bundle)?;
    for n in &r.notes {
        eprintln!("berth-bundle: note: {n}");
    }
    Ok(())
}
