//! `tag`, `rmi` (and `rm` of a LAYOUT:TAG), `gc`, `config`, `export`.

use crate::config_edit;
use crate::images;
use crate::layout::platform::PlatformSpec;
use crate::layout::refs::{split_layout_ref, ImageRef, Selector};
use crate::layout::Layout;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct TagArgs {
    /// LAYOUT[:TAG] or LAYOUT@DIGEST
    source: String,
    /// The new tag (NEWTAG, or LAYOUT:NEWTAG in the same layout)
    target: String,
}

fn layout_of(image: &str) -> Result<(PathBuf, Selector)> {
    match ImageRef::parse(image) {
        ImageRef::Layout { path, sel } => Ok((path, sel)),
        _ => bail!("{image}: this command works on layouts; import the archive first"),
    }
}

pub fn tag(a: TagArgs) -> Result<()> {
    let (path, sel) = layout_of(&a.source)?;
    let l = Layout::open(&path)?;
    let desc = l.top_descriptor(&sel)?;
    let new = match split_layout_ref(&a.target) {
        (p, Selector::Tag(t)) if same_dir(&p, &path) => t,
        (p, Selector::Tag(_)) if p.exists() => {
            bail!(
                "{}: tag within the source layout {}",
                a.target,
                path.display()
            )
        }
        _ if !a.target.contains('/') => a.target.clone(),
        _ => bail!("{}: expected NEWTAG or LAYOUT:NEWTAG", a.target),
    };
    l.tag(&new, crate::layout::index::without_annotations(desc))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[derive(clap::Args)]
pub struct RmiArgs {
    /// LAYOUT:TAG to untag (blobs stay until `gc`)
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn untag(image: &str) -> Result<()> {
    let (path, sel) = layout_of(image)?;
    let Selector::Tag(t) = sel else {
        bail!("{image}: name the tag to remove (LAYOUT:TAG)");
    };
    if !Layout::open(&path)?.untag(&t)? {
        bail!("{}: no tag {t:?}", path.display());
    }
    Ok(())
}

pub fn rmi(a: RmiArgs) -> Result<()> {
    for i in &a.images {
        untag(i)?;
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct GcArgs {
    /// The layout whose unreachable blobs (and temporary files) go
    #[arg(required_unless_present = "store")]
    layout: Option<PathBuf>,
    /// Also (or only) clean a layer store: what killed unpacks and commits
    /// left, and layers no bundle uses
    #[arg(long)]
    store: Option<PathBuf>,
}

pub fn gc(a: GcArgs) -> Result<()> {
    if let Some(p) = &a.layout {
        let l = Layout::open(p)?;
        let (n, bytes) = images::gc(&l)?;
        println!("removed {n} blobs ({})", super::human(bytes));
    }
    if let Some(p) = &a.store {
        if !p.join("layers").is_dir() {
            anyhow::bail!("--store {}: not a berth-bundle layer store", p.display());
        }
        let r = crate::store::LayerStore::open(p)?.gc()?;
        println!(
            "store: removed {} layers, {} stale references, {} temporary extractions, {} unfinished bundles",
            r.layers, r.references, r.temporaries, r.bundles
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct ConfigArgs {
    /// LAYOUT[:TAG] or LAYOUT@DIGEST
    #[arg(long)]
    image: String,
    /// Tag for the new image (default: the image's own tag)
    #[arg(long)]
    tag: Option<String>,
    /// Entrypoint, one argument per flag
    #[arg(long, num_args = 1, allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// Cmd, one argument per flag
    #[arg(long, num_args = 1, allow_hyphen_values = true)]
    cmd: Vec<String>,
    /// Remove Entrypoint (before --entrypoint)
    #[arg(long)]
    clear_entrypoint: bool,
    /// Remove Cmd (before --cmd)
    #[arg(long)]
    clear_cmd: bool,
    /// KEY=VALUE (repeatable)
    #[arg(long)]
    env: Vec<String>,
    /// WorkingDir (absolute path)
    #[arg(long)]
    workdir: Option<String>,
    /// User: NAME, UID, NAME:GROUP or UID:GID
    #[arg(long)]
    user: Option<String>,
    /// KEY=VALUE (repeatable)
    #[arg(long)]
    label: Vec<String>,
    /// PORT[/PROTO] (repeatable)
    #[arg(long)]
    port: Vec<String>,
    /// Absolute path (repeatable)
    #[arg(long)]
    volume: Vec<String>,
    /// StopSignal: a signal name (SIGTERM) or number
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    /// Dockerfile-style change, as commit --change (repeatable)
    #[arg(long)]
    change: Vec<String>,
    /// OS/ARCH[/VARIANT] to pick from an image index (default: the host)
    #[arg(long, value_parser = PlatformSpec::parse)]
    platform: Option<PlatformSpec>,
}

fn kv(s: &str) -> Result<(&str, &str)> {
    s.split_once('=')
        .with_context(|| format!("expected KEY=VALUE, got {s:?}"))
}

pub fn config(a: ConfigArgs) -> Result<()> {
    let (path, sel) = layout_of(&a.image)?;
    let tag = match (&a.tag, &sel) {
        (Some(t), _) => t.clone(),
        (None, Selector::Tag(t)) => t.clone(),
        (None, _) => bail!("{}: give --tag for the new image", a.image),
    };
    let l = Layout::open(&path)?;
    let r = l.resolve(&sel, &a.platform.clone().unwrap_or_else(PlatformSpec::host))?;
    let d = images::reconfigure(&l, &r, &tag, "berth-bundle config", |cfg| {
        if a.clear_entrypoint {
            config_edit::set_field(cfg, "Entrypoint", json!(null))?;
        }
        if a.clear_cmd {
            config_edit::set_field(cfg, "Cmd", json!(null))?;
        }
        if !a.entrypoint.is_empty() {
            config_edit::set_field(cfg, "Entrypoint", json!(a.entrypoint))?;
        }
        if !a.cmd.is_empty() {
            config_edit::set_field(cfg, "Cmd", json!(a.cmd))?;
        }
        for e in &a.env {
            let (k, v) = kv(e)?;
            config_edit::set_env(cfg, k, v)?;
        }
        if let Some(w) = &a.workdir {
            config_edit::apply_change(cfg, &format!("WORKDIR {w}"))?;
        }
        if let Some(u) = &a.user {
            config_edit::set_field(cfg, "User", json!(u))?;
        }
        for e in &a.label {
            let (k, v) = kv(e)?;
            config_edit::add_label(cfg, k, v)?;
        }
        for p in &a.port {
            config_edit::add_port(cfg, p)?;
        }
        for v in &a.volume {
            config_edit::add_volume(cfg, v)?;
        }
        if let Some(s) = &a.stop_signal {
            config_edit::set_field(cfg, "StopSignal", json!(s))?;
        }
        for c in &a.change {
            config_edit::apply_change(cfg, c)?;
        }
        Ok(())
    })?;
    println!("{}:{tag} {d}", path.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// LAYOUT[:TAG] or LAYOUT@DIGEST
    image: String,
    /// docker-archive:FILE[:NAME] or oci-archive:FILE[:NAME]
    dest: String,
    /// OS/ARCH[/VARIANT] to pick from an image index (default: the host)
    #[arg(long, value_parser = PlatformSpec::parse)]
    platform: Option<PlatformSpec>,
}

pub fn export(a: ExportArgs) -> Result<()> {
    let (path, sel) = layout_of(&a.image)?;
    let l = Layout::open(&path)?;
    let r = l.resolve(&sel, &a.platform.unwrap_or_else(PlatformSpec::host))?;
    let default_name = match &sel {
        Selector::Tag(t) => Some(t.clone()),
        _ => None,
    };
    let split = |s: &str| -> (PathBuf, Option<String>) {
        // FILE[:NAME]: FILE need not exist and NAME may hold ':' and '/':
        // the first ':' whose prefix lies in an existing directory ends FILE.
        for (i, _) in s.match_indices(':') {
            let f = Path::new(&s[..i]);
            let dir = match f.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if i > 0 && dir.is_dir() && !f.is_dir() {
                return (
                    f.into(),
                    Some(s[i + 1..].to_string()).filter(|n| !n.is_empty()),
                );
            }
        }
        (s.into(), None)
    };
    if let Some(rest) = a.dest.strip_prefix("docker-archive:") {
        let (f, n) = split(rest);
        images::export_docker(&l, &r, &f, n.or(default_name).as_deref())
    } else if let Some(rest) = a.dest.strip_prefix("oci-archive:") {
        let (f, n) = split(rest);
        let n = n.or(default_name).unwrap_or_else(|| "latest".into());
        images::export_oci(&l, &r, &f, &n)
    } else {
        bail!(
            "{}: expected docker-archive:FILE[:NAME] or oci-archive:FILE[:NAME]",
            a.dest
        )
    }
}
