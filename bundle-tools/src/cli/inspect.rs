use super::human;
use crate::layout::platform::PlatformSpec;
use crate::layout::refs::{ImageRef, Selector};
use crate::layout::{Layout, Resolved};
use crate::tempdir::TempDir;
use anyhow::Result;
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// LAYOUT[:TAG], LAYOUT@DIGEST, oci-archive:FILE[:REF] or docker-archive:FILE[:REF]
    image: String,
    /// OS/ARCH[/VARIANT] to pick from an image index (default: the host)
    #[arg(long, value_parser = PlatformSpec::parse)]
    platform: Option<PlatformSpec>,
    /// Print JSON (manifest, config, layers)
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    /// LAYOUT[:TAG], LAYOUT@DIGEST, oci-archive:FILE[:REF] or docker-archive:FILE[:REF]
    image: String,
    /// OS/ARCH[/VARIANT] to pick from an image index (default: the host)
    #[arg(long, value_parser = PlatformSpec::parse)]
    platform: Option<PlatformSpec>,
    /// Do not truncate CREATED BY (docker's --no-trunc)
    #[arg(long = "no-trunc")]
    no_trunc: bool,
}

/// An image named on the command line; archives are read through a
/// throwaway layout that lives as long as this.
pub struct Opened {
    pub resolved: Resolved,
    _tmp: Option<TempDir>,
}

pub fn open(image: &str, platform: Option<PlatformSpec>) -> Result<Opened> {
    let want = platform.unwrap_or_else(PlatformSpec::host);
    match ImageRef::parse(image) {
        ImageRef::Layout { path, sel } => {
            let l = Layout::open(&path)?;
            Ok(Opened {
                resolved: l.resolve(&sel, &want)?,
                _tmp: None,
            })
        }
        ImageRef::OciArchive(f, r) | ImageRef::DockerArchive(f, r) => {
            let tmp = TempDir::create(
                std::env::temp_dir().join(format!("berth-bundle-read-{}", std::process::id())),
            )?;
            let lp = tmp.path().join("layout");
            crate::archive::import_one(&f, r.as_deref(), &lp, "image")?;
            let l = Layout::open(&lp)?;
            Ok(Opened {
                resolved: l.resolve(&Selector::Tag("image".into()), &want)?,
                _tmp: Some(tmp),
            })
        }
    }
}

fn list(v: &Option<Vec<String>>) -> Option<String> {
    v.as_ref().filter(|l| !l.is_empty()).map(|l| {
        let mut l = l.clone();
        l.sort();
        l.join(" ")
    })
}

pub fn run(a: Args) -> Result<()> {
    let o = open(&a.image, a.platform)?;
    let r = &o.resolved;
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
    let row = |k: &str, v: &str| println!("{:<14}{v}", format!("{k}:"));
    row(
        "Manifest",
        &format!(
            "{} ({})",
            r.manifest_desc.digest(),
            r.manifest_desc.media_type()
        ),
    );
    row(
        "Config",
        &format!(
            "{} ({})",
            r.manifest.config().digest(),
            human(r.manifest.config().size())
        ),
    );
    row(
        "Platform",
        &format!("{}/{}", r.config.os(), r.config.architecture()),
    );
    if let Some(c) = r.config.created() {
        row("Created", c);
    }
    if let Some(c) = r.config.author() {
        row("Author", c);
    }
    if let Some(c) = r.config.config() {
        let q = |v: &Option<Vec<String>>| v.as_ref().map(|v| format!("{v:?}"));
        if let Some(e) = q(c.entrypoint()) {
            row("Entrypoint", &e);
        }
        if let Some(e) = q(c.cmd()) {
            row("Cmd", &e);
        }
        if let Some(e) = c.env().as_ref().filter(|e| !e.is_empty()) {
            row("Env", &e.join(" "));
        }
        if let Some(u) = c.user().as_deref().filter(|u| !u.is_empty()) {
            row("User", u);
        }
        if let Some(w) = c.working_dir().as_deref().filter(|w| !w.is_empty()) {
            row("WorkingDir", w);
        }
        if let Some(v) = list(c.exposed_ports()) {
            row("ExposedPorts", &v);
        }
        if let Some(v) = list(c.volumes()) {
            row("Volumes", &v);
        }
        if let Some(l) = c.labels().as_ref().filter(|l| !l.is_empty()) {
            let mut l: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v}")).collect();
            l.sort();
            row("Labels", &l.join(" "));
        }
        if let Some(s) = c.stop_signal() {
            row("StopSignal", s);
        }
    }
    let layers = r.manifest.layers();
    let total: u64 = layers.iter().map(|l| l.size()).sum();
    row("Layers", &format!("{} ({})", layers.len(), human(total)));
    for l in layers {
        println!("  {} {:>9} {}", l.digest(), human(l.size()), l.media_type());
    }
    Ok(())
}

/// Docker's truncation of CREATED BY: 45 characters, the last an ellipsis.
fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n - 1).collect();
    t.push('…');
    t
}

pub fn history(a: HistoryArgs) -> Result<()> {
    let o = open(&a.image, a.platform)?;
    let r = &o.resolved;
    let hist = r.config.history().clone().unwrap_or_default();
    let mut layers = r.manifest.layers().iter();
    let mut rows: Vec<[String; 5]> = Vec::new();
    for h in &hist {
        let (id, size) = if h.empty_layer().unwrap_or(false) {
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
        let by = h.created_by().clone().unwrap_or_default();
        let by = if a.no_trunc { by } else { truncate(&by, 45) };
        let created = h.created().clone().unwrap_or_default();
        // Seconds are enough to read; --no-trunc shows the full stamp.
        let created = if a.no_trunc {
            created
        } else {
            match created.split_once('.') {
                Some((s, rest)) if rest.ends_with('Z') => format!("{s}Z"),
                _ => created,
            }
        };
        rows.push([
            id,
            created,
            by,
            size,
            h.comment().clone().unwrap_or_default(),
        ]);
    }
    let head = ["LAYER", "CREATED", "CREATED BY", "SIZE", "COMMENT"];
    let w: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: [&str; 5]| {
        let pad = |s: &str, n: usize| format!("{s}{}", " ".repeat(n - s.chars().count()));
        let size = format!("{}{}", " ".repeat(w[3] - r[3].chars().count()), r[3]);
        let l = format!(
            "{}   {}   {}   {}   {}",
            pad(r[0], w[0]),
            pad(r[1], w[1]),
            pad(r[2], w[2]),
            size,
            r[4]
        );
        println!("{}", l.trim_end());
    };
    line(head);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    Ok(())
}
