use super::human;
use crate::layout::index::{self, Descriptor, ImageManifest};
use crate::layout::Layout;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    layout: PathBuf,
}

fn platforms(l: &Layout, d: &Descriptor, depth: u32) -> Vec<String> {
    if let Some(p) = d.platform() {
        return vec![index::platform_name(p)];
    }
    if depth > 8 {
        return vec![];
    }
    if index::is_index(d.media_type()) {
        if let Ok(idx) = l.read_json::<index::ImageIndex>(d) {
            return idx
                .manifests()
                .iter()
                .flat_map(|m| platforms(l, m, depth + 1))
                .collect();
        }
    } else if index::is_manifest(d.media_type()) {
        if let Ok(m) = l.read_json::<ImageManifest>(d) {
            if let Ok(c) = l
                .read_json::<serde_json::Value>(m.config())
                .and_then(|raw| index::parse_config(&raw))
            {
                let (os, arch) = index::config_os_arch(&c);
                return vec![format!("{os}/{arch}")];
            }
        }
    }
    vec!["?".into()]
}

fn image_size(l: &Layout, d: &Descriptor) -> Option<u64> {
    if !index::is_manifest(d.media_type()) {
        return None;
    }
    let m: ImageManifest = l.read_json(d).ok()?;
    Some(d.size() + m.config().size() + m.layers().iter().map(|x| x.size()).sum::<u64>())
}

pub fn run(a: Args) -> Result<()> {
    let l = Layout::open(&a.layout)?;
    let idx = l.index()?;
    println!("{:<20} {:<19} {:>9}  PLATFORMS", "TAG", "DIGEST", "SIZE");
    for d in idx.manifests() {
        let digest = d.digest().to_string();
        let short = digest
            .split(':')
            .nth(1)
            .map(|h| &h[..h.len().min(12)])
            .unwrap_or("");
        let size = image_size(&l, d)
            .map(human)
            .unwrap_or_else(|| "index".into());
        println!(
            "{:<20} sha256:{:<12} {:>9}  {}",
            index::ref_name(d).unwrap_or("<none>"),
            short,
            size,
            platforms(&l, d, 0).join(",")
        );
    }
    Ok(())
}
