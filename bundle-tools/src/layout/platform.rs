//! Choosing one manifest from (possibly nested) image indexes by platform.

use super::index::{self, Descriptor, Platform};
use super::Layout;
use anyhow::{bail, Context, Result};

/// `os/arch[/variant]` as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl PlatformSpec {
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(PlatformSpec {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Ok(PlatformSpec {
                    os: os.to_string(),
                    arch: arch.to_string(),
                    variant: Some(v.to_string()),
                })
            }
            _ => bail!("invalid platform {s:?}: expected OS/ARCH[/VARIANT]"),
        }
    }

    /// The platform this binary runs on, in Go's GOOS/GOARCH names.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        let variant = (arch == "arm64").then(|| "v8".to_string());
        PlatformSpec {
            os: "linux".into(),
            arch: arch.into(),
            variant,
        }
    }

    fn matches(&self, p: &Platform) -> bool {
        if p.os().to_string() != self.os || p.architecture().to_string() != self.arch {
            return false;
        }
        match (&self.variant, p.variant()) {
            (Some(want), Some(have)) => want == have,
            // arm64's only variant is v8; an unset variant means the default.
            _ => true,
        }
    }
}

/// From candidate descriptors pick the one image manifest for `want`,
/// descending into indexes. Descriptors without a platform match anything.
pub fn select(layout: &Layout, cands: &[Descriptor], want: &PlatformSpec) -> Result<Descriptor> {
    let mut seen = Vec::new();
    if let Some(d) = walk(layout, cands, want, &mut seen, 0)? {
        return Ok(d);
    }
    let avail: Vec<String> = seen.iter().map(index::platform_name).collect();
    bail!(
        "no image for platform {}/{}{} (available: {})",
        want.os,
        want.arch,
        want.variant
            .as_ref()
            .map(|v| format!("/{v}"))
            .unwrap_or_default(),
        if avail.is_empty() {
            "none".to_string()
        } else {
            avail.join(", ")
        }
    )
}

fn walk(
    layout: &Layout,
    cands: &[Descriptor],
    want: &PlatformSpec,
    seen: &mut Vec<Platform>,
    depth: u32,
) -> Result<Option<Descriptor>> {
    if depth > 8 {
        bail!("image indexes nested more than 8 deep");
    }
    for d in cands {
        if let Some(p) = d.platform() {
            if !want.matches(p) {
                seen.push(p.clone());
                continue;
            }
        }
        if index::is_index(d.media_type()) {
            let idx = super::read_index(layout, d)?;
            if let Some(found) = walk(layout, idx.manifests(), want, seen, depth + 1)? {
                return Ok(Some(found));
            }
        } else if index::is_manifest(d.media_type()) {
            if d.platform().is_none() {
                // Check the config's own platform so a single-platform image
                // of a foreign architecture is not picked silently.
                let m: index::ImageManifest = layout.read_json(d)?;
                let raw: serde_json::Value = layout.read_json(m.config())?;
                let c = index::parse_config(&raw)
                    .with_context(|| format!("config {}", m.config().digest()))?;
                let (os, arch) = index::config_os_arch(&c);
                if !os.is_empty() && !arch.is_empty() {
                    let p = index::platform(&os, &arch, c.variant().clone());
                    if !want.matches(&p) {
                        seen.push(p);
                        continue;
                    }
                }
            }
            return Ok(Some(d.clone()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_platforms() {
        let p = PlatformSpec::parse("linux/arm/v7").expect("valid");
        assert_eq!(p.variant.as_deref(), Some("v7"));
        assert!(PlatformSpec::parse("linux").is_err());
        assert!(PlatformSpec::parse("linux//v7").is_err());
    }

    #[test]
    fn variant_must_match_when_both_given() {
        let want = PlatformSpec::parse("linux/arm/v7").expect("valid");
        let mut p = index::platform("linux", "arm", Some("v6".into()));
        assert!(!want.matches(&p));
        p.set_variant(Some("v7".into()));
        assert!(want.matches(&p));
    }
}
