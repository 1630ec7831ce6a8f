use super::human;
use crate::layout::index::{self, Descriptor, ImageManifest};
use crate::layout::Layout;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// LAYOUT, oci-archive:FILE or docker-archive:FILE
    layout: String,
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
    let file = a
        .layout
        .strip_prefix("oci-archive:")
        .or_else(|| a.layout.strip_prefix("docker-archive:"));
    let (l, entries, _tmp) = match file {
        Some(f) => {
            // An archive: read through a throwaway layout; names as tags.
            let tmp = crate::tempdir::TempDir::create(
                std::env::temp_dir().join(format!("berth-bundle-ls-{}", std::process::id())),
            )?;
            let (l, images) =
                crate::archive::import_images(std::path::Path::new(f), &tmp.path().join("layout"))?;
            let mut entries = Vec::new();
            for (i, m) in images.into_iter().enumerate() {
                let names = if m.names.is_empty() {
                    vec![format!("@{i}")]
                } else {
                    m.names
                };
                for n in names {
                    let mut d = m.desc.clone();
                    index::set_ref_name(&mut d, &n);
                    entries.push(d);
                }
            }
            (l, entries, Some(tmp))
        }
        None => {
            let l = Layout::open(&PathBuf::from(&a.layout))?;
            let e = l.index()?.manifests().clone();
            (l, e, None)
        }
    };
    let w = entries
        .iter()
        .map(|d| index::ref_name(d).unwrap_or("<none>").len())
        .chain([20])
        .max()
        .unwrap_or(20);
    println!("{:<w$} {:<19} {:>9}  PLATFORMS", "TAG", "DIGEST", "SIZE");
    for d in &entries {
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
            "{:<w$} sha256:{:<12} {:>9}  {}",
            index::ref_name(d).unwrap_or("<none>"),
            short,
            size,
            platforms(&l, d, 0).join(",")
        );
    }
    Ok(())
}
