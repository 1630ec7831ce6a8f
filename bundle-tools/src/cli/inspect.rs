use super::human;
use crate::layout::platform::PlatformSpec;
use crate::layout::refs::{ImageRef, Selector};
use crate::layout::{Layout, Resolved};
use anyhow::{bail, Result};
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// LAYOUT[:TAG] or LAYOUT@DIGEST
    image: String,
    #[arg(long, value_parser = PlatformSpec::parse)]
    platform: Option<PlatformSpec>,
    /// Print JSON (manifest, config, layers)
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    image: String,
    #[arg(long, value_parser = PlatformSpec::parse)]
    platform: Option<PlatformSpec>,
}

fn resolve(image: &str, platform: Option<PlatformSpec>) -> Result<(PathBuf, Selector, Resolved)> {
    let ImageRef::Layout { path, sel } = ImageRef::parse(image) else {
        bail!("{image}: inspect reads layouts; import archives first");
    };
    let l = Layout::open(&path)?;
    let r = l.resolve(&sel, &platform.unwrap_or_else(PlatformSpec::host))?;
    Ok((path, sel, r))
}

pub fn run(a: Args) -> Result<()> {
    let (_, _, r) = resolve(&a.image, a.platform)?;
    if a.json {
        let v = json!({
            "digest": r.manifest_desc.digest(),
            "manifest": r.manifest,
            "config": r.config_raw,
            "layers": r.manifest.layers(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "Manifest:     {} ({})",
        r.manifest_desc.digest(),
        r.manifest_desc.media_type()
    );
    println!(
        "Config:       {} ({})",
        r.manifest.config().digest(),
        human(r.manifest.config().size())
    );
    println!(
        "Platform:     {}/{}",
        r.config.os(),
        r.config.architecture()
    );
    if let Some(c) = r.config.created() {
        println!("Created:      {c}");
    }
    if let Some(c) = r.config.config() {
        let cmd: Vec<String> = c
            .entrypoint()
            .iter()
            .flatten()
            .chain(c.cmd().iter().flatten())
            .cloned()
            .collect();
        println!("Command:      {cmd:?}");
        if let Some(e) = c.env() {
            println!("Env:          {}", e.join(" "));
        }
        if let Some(u) = c.user() {
            println!("User:         {u}");
        }
    }
    let layers = r.manifest.layers();
    let total: u64 = layers.iter().map(|l| l.size()).sum();
    println!("Layers:       {} ({})", layers.len(), human(total));
    for l in layers {
        println!("  {} {:>9} {}", l.digest(), human(l.size()), l.media_type());
    }
    Ok(())
}

pub fn history(a: HistoryArgs) -> Result<()> {
    let (_, _, r) = resolve(&a.image, a.platform)?;
    let hist = r.config.history().clone().unwrap_or_default();
    let mut layers = r.manifest.layers().iter();
    println!(
        "{:<19} {:<25} {:>9}  CREATED BY",
        "LAYER", "CREATED", "SIZE"
    );
    for h in &hist {
        let empty = h.empty_layer().unwrap_or(false);
        let (id, size) = if empty {
            ("<empty layer>".to_string(), "0B".to_string())
        } else {
            match layers.next() {
                Some(l) => (
                    l.digest().to_string().chars().take(19).collect(),
                    human(l.size()),
                ),
                None => ("<missing>".into(), "?".into()),
            }
        };
        let by = h
            .created_by()
            .clone()
            .or_else(|| h.comment().clone())
            .unwrap_or_default();
        println!(
            "{id:<19} {:<25} {size:>9}  {by}",
            h.created().clone().unwrap_or_default()
        );
    }
    Ok(())
}
