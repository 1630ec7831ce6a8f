//! Command line: one file per command, each thin glue over the library.

mod commit;
mod images;
mod import;
mod inspect;
mod ls;
mod mount;
mod rm;
mod unpack;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth-bundle",
    version,
    about = "Unpack OCI images into runtime bundles for berth"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Unpack an image into a runtime bundle (rootfs + config.json).
    Unpack(unpack::Args),
    /// Commit a bundle's changes as a new layer and image in a layout.
    Commit(commit::Args),
    /// Mount an overlay bundle's rootfs again (after a reboot or umount).
    Mount(mount::Args),
    /// Unmount an overlay bundle's rootfs.
    Umount(mount::Args),
    /// Remove bundles (unmounting them, releasing their store layers), or
    /// untag LAYOUT:TAG images.
    Rm(rm::Args),
    /// Import a docker-archive or OCI archive into a layout as LAYOUT:TAG.
    Import(import::Args),
    /// Export an image to a docker-archive or OCI archive file.
    Export(images::ExportArgs),
    /// Tag an image of a layout (SOURCE NEWTAG).
    Tag(images::TagArgs),
    /// Remove tags (blobs stay until gc).
    Rmi(images::RmiArgs),
    /// Remove blobs no tag reaches.
    Gc(images::GcArgs),
    /// Edit an image's run settings into a new config and manifest.
    Config(images::ConfigArgs),
    /// List the images of a layout: tags, digests, sizes, platforms.
    Ls(ls::Args),
    /// Show an image's manifest, config and layers.
    Inspect(inspect::Args),
    /// Show an image's history, like `docker history`.
    History(inspect::HistoryArgs),
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Unpack(a) => unpack::run(a),
        Cmd::Commit(a) => commit::run(a),
        Cmd::Mount(a) => mount::run(a),
        Cmd::Umount(a) => mount::umount(a),
        Cmd::Rm(a) => rm::run(a),
        Cmd::Import(a) => import::run(a),
        Cmd::Export(a) => images::export(a),
        Cmd::Tag(a) => images::tag(a),
        Cmd::Rmi(a) => images::rmi(a),
        Cmd::Gc(a) => images::gc(a),
        Cmd::Config(a) => images::config(a),
        Cmd::Ls(a) => ls::run(a),
        Cmd::Inspect(a) => inspect::run(a),
        Cmd::History(a) => inspect::history(a),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth-bundle: {e:#}");
            1
        }
    }
}

pub(crate) fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < U.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", U[i])
    }
}
