//! Command line: one file per command, each thin glue over the library.

mod import;
mod inspect;
mod ls;
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
    /// Import a docker-archive or OCI archive into a layout as LAYOUT:TAG.
    Import(import::Args),
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
        Cmd::Import(a) => import::run(a),
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
