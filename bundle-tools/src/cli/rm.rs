use anyhow::Result;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Bundles to remove, or LAYOUT:TAG images to untag
    #[arg(required = true)]
    targets: Vec<String>,
    /// Runtime state directories searched for containers of a bundle
    #[arg(long = "state-root", default_values = ["/run/berth", "/run/runc"])]
    state_roots: Vec<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    for t in &a.targets {
        let p = Path::new(t);
        if p.join(crate::bundle::SOURCE_FILE).is_file() || !t.contains(':') {
            crate::bundle::remove(p, &a.state_roots)?;
        } else {
            super::images::untag(t)?;
        }
    }
    Ok(())
}
