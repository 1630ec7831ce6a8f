//! `commit`: a bundle's changes since unpack (or its last commit) become one
//! new layer on top of its image, tagged in a layout.
//!
//! Order, so a crash at any point leaves the layout valid with the old tag
//! or the new one: the layer, config and manifest blobs are written and
//! synced first (temporary file + rename), then index.json is rewritten
//! atomically under the layout's index lock. The whole run holds the
//! layout's blob lock shared, so `gc` cannot remove the new blobs before
//! they are tagged. Then the bundle is refreshed (its tree manifest, or its
//! overlay's layers), so a second commit holds only what changed since.
//!
//! The refresh is crash-safe too: the new tree manifest gets a new name
//! and `berth-bundle.json` switches to it in one rename; an overlay bundle's
//! record lists the new layer before its upper directory (whose content that
//! layer holds, so the view is the same either way) is swapped for an empty
//! one by rename. A commit killed before the record switched leaves the
//! bundle on its old image with its changes, and committing again works.

use crate::blobs::{Compression, Digest, Hasher};
use crate::bundle::{Source, TREE_FILE};
use crate::config_edit::{self, HistoryEntry};
use crate::layer::diff;
use crate::layer::generate::{self, OwnerMap};
use crate::layout::index::{self, ImageManifest, MediaType};
use crate::layout::refs::{split_layout_ref, Selector};
use crate::layout::Layout;
use crate::{archive, clock, overlay, store, tree};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

pub struct CommitOptions {
    /// LAYOUT:TAG to write.
    pub image: String,
    pub message: Option<String>,
    pub author: Option<String>,
    pub compression: Compression,
    /// Dockerfile-style config changes.
    pub changes: Vec<String>,
}

#[derive(Debug)]
pub struct Report {
    pub manifest: Digest,
    pub layer: Digest,
    pub diff_id: Digest,
    pub entries: u64,
}

/// The layout and tag a commit (or tag/config) writes.
pub fn destination(image: &str) -> Result<(PathBuf, String)> {
    let (layout, sel) = split_layout_ref(image);
    match sel {
        Selector::Tag(t) => Ok((layout, t)),
        Selector::Default => Ok((layout, "latest".into())),
        Selector::Digest(_) => bail!("{image}: a destination is LAYOUT[:TAG], not a digest"),
    }
}

fn oci_layer_type(mt: &MediaType) -> MediaType {
    match mt.to_string().as_str() {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => MediaType::ImageLayerGzip,
        "application/vnd.docker.image.rootfs.diff.tar" => MediaType::ImageLayer,
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => MediaType::ImageLayerZstd,
        _ => mt.clone(),
    }
}

/// The uncompressed digest of a layer blob (for base configs without
/// diff_ids).
pub fn diff_id_of(layout: &Layout, d: &index::Descriptor) -> Result<Digest> {
    let c = Compression::from_layer_media_type(d.media_type().as_ref())?;
    let digest = index::blob_digest(d)?;
    let mut r = layout.store.open(&digest, d.size())?;
    let mut h = Hasher::new(crate::blobs::Algorithm::Sha256);
    {
        let mut dec = c.decoder(&mut r)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut dec, &mut buf)
                .with_context(|| format!("layer {digest}: decompress"))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    r.finish()?;
    Ok(h.finish())
}

/// Bring the bundle's base image (manifest, config, layers) into `target`.
fn base_image(src: &Source, target: &Layout) -> Result<(ImageManifest, serde_json::Value)> {
    let md = Digest::parse(&src.manifest).context("bundle record: manifest")?;
    if !target.store.contains(&md) {
        let Some(from) = &src.layout else {
            bail!(
                "the bundle's image {} came from an archive and is not in {}: import the archive there first",
                src.manifest,
                target.path.display()
            );
        };
        let from = Layout::open(from).context("the bundle's source layout")?;
        let size = std::fs::metadata(from.store.path(&md))
            .with_context(|| {
                format!(
                    "the bundle's manifest {md} is gone from {}",
                    from.path.display()
                )
            })?
            .len();
        let m: ImageManifest = from.store.read_json(&md, size)?;
        for d in std::iter::once(m.config()).chain(m.layers().iter()) {
            target.copy_blob_from(&from, &index::blob_digest(d)?)?;
        }
        target.copy_blob_from(&from, &md)?;
    }
    let size = std::fs::metadata(target.store.path(&md))
        .with_context(|| format!("stat blob {md}"))?
        .len();
    let m: ImageManifest = target.store.read_json(&md, size)?;
    let cfg: serde_json::Value = target.read_json(m.config())?;
    for l in m.layers() {
        let d = index::blob_digest(l)?;
        if !target.store.contains(&d) {
            bail!("base layer {d} is missing from {}", target.path.display());
        }
    }
    Ok((m, cfg))
}

pub fn commit(bundle: &Path, opts: &CommitOptions) -> Result<Report> {
    let _bundle_lock = crate::bundle::lock(bundle)?;
    let mut src = Source::read(bundle)?;
    crate::bundle::remove_stale_files(bundle, &src);
    let (layout_path, tag) = destination(&opts.image)?;
    let target = Layout::open_or_create(&layout_path)?;
    let _blobs = target.lock_blobs(false)?;
    let st = match &src.overlay {
        Some(ov) => Some(store::LayerStore::open(&ov.store)?),
        None => None,
    };
    let _held = st.as_ref().map(store::LayerStore::hold).transpose()?;
    let (base, mut cfg) = base_image(&src, &target)?;

    // Validate the config changes before any work.
    for c in &opts.changes {
        config_edit::apply_change(&mut cfg.clone(), c)?;
    }

    let rootfs = bundle.join("rootfs");
    let (uid_map, gid_map) = src.id_maps()?;
    let owners = OwnerMap {
        rootless: src.rootless,
        uid_map,
        gid_map,
    };
    let mut mounted_here = false;
    let changes = match &src.overlay {
        Some(ov) => {
            if !overlay::is_mounted(&rootfs)? {
                overlay::mount(bundle, ov)?;
                mounted_here = true;
            }
            diff::overlay(&bundle.join(overlay::UPPER), &rootfs)
        }
        None => {
            let t = bundle.join(src.tree.as_deref().unwrap_or(TREE_FILE));
            let recorded = tree::read_manifest(&t)?;
            diff::flat(&rootfs, &recorded)
        }
    };
    let changes = match changes {
        Ok(c) => c,
        Err(e) => {
            if mounted_here {
                let _ = overlay::umount(bundle);
            }
            return Err(e);
        }
    };
    let layer = generate::write_layer(&target.store, &changes, &owners, opts.compression)?;
    // overlayfs cannot stack one directory twice: a layer equal to the top
    // of the stack (an empty commit again, a commit killed after the bundle
    // record switched, committed again) changes nothing there and is not
    // stacked; an empty layer never is.
    let stack = match &src.overlay {
        Some(ov) => {
            let key = layer.diff_id.to_string();
            if layer.entries == 0 || ov.layers.last() == Some(&key) {
                false
            } else if ov.layers.contains(&key) {
                if mounted_here {
                    let _ = overlay::umount(bundle);
                }
                bail!(
                    "the new layer {key} equals a lower layer of the bundle's overlay, which overlayfs cannot stack twice; unpack flat to commit this change"
                );
            } else {
                true
            }
        }
        None => false,
    };

    // Config: diff_ids, history, the requested changes.
    let mut diff_ids: Vec<String> = cfg["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != base.layers().len() {
        diff_ids = base
            .layers()
            .iter()
            .map(|l| diff_id_of(&target, l).map(|d| d.to_string()))
            .collect::<Result<_>>()?;
    }
    diff_ids.push(layer.diff_id.to_string());
    cfg["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
    for c in &opts.changes {
        config_edit::apply_change(&mut cfg, c)?;
    }
    let created = clock::now();
    let created_by = if opts.changes.is_empty() {
        "berth-bundle commit".to_string()
    } else {
        format!(
            "berth-bundle commit --change {}",
            opts.changes.join(" --change ")
        )
    };
    config_edit::push_history(
        &mut cfg,
        &HistoryEntry {
            created: &created,
            author: opts.author.as_deref(),
            created_by: &created_by,
            comment: opts.message.as_deref(),
            empty_layer: false,
        },
    )?;
    let cfg_bytes = serde_json::to_vec(&cfg)?;
    let cfg_digest = target.store.put_bytes(&cfg_bytes)?;

    let mut layers: Vec<index::Descriptor> = base
        .layers()
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.set_media_type(oci_layer_type(l.media_type()));
            l
        })
        .collect();
    layers.push(index::descriptor(
        layer.compression.oci_layer_media_type().into(),
        &layer.digest,
        layer.size,
    ));
    let manifest = archive::new_manifest(
        index::descriptor(MediaType::ImageConfig, &cfg_digest, cfg_bytes.len() as u64),
        layers,
    );
    let m_bytes = serde_json::to_vec(&manifest)?;
    let m_digest = target.store.put_bytes(&m_bytes)?;
    let mut desc = index::descriptor(MediaType::ImageManifest, &m_digest, m_bytes.len() as u64);
    if let (Some(os), Some(arch)) = (cfg["os"].as_str(), cfg["architecture"].as_str()) {
        desc.set_platform(Some(index::platform(
            os,
            arch,
            cfg["variant"].as_str().map(String::from),
        )));
    }
    target.tag(&tag, desc)?;

    // The bundle now stands on the new image.
    src.layout = Some(std::fs::canonicalize(&target.path).unwrap_or(target.path.clone()));
    src.reference = format!("{}:{tag}", layout_path.display());
    src.manifest = m_digest.to_string();
    src.config = cfg_digest.to_string();
    src.layers.push(layer.digest.to_string());
    if let (Some(ov), Some(st)) = (src.overlay.clone(), &st) {
        let key = layer.diff_id.to_string();
        let desc = index::descriptor(
            layer.compression.oci_layer_media_type().into(),
            &layer.digest,
            layer.size,
        );
        let mut ov2 = ov.clone();
        if stack {
            st.acquire(bundle, std::slice::from_ref(&key))?;
            st.ensure_layer(&target, &desc, &layer.diff_id)?;
            ov2.layers.push(key);
        }
        overlay::umount(bundle)?;
        src.overlay = Some(ov2.clone());
        src.write(bundle)?;
        overlay::reset_upper(bundle)?;
        if !mounted_here {
            overlay::mount(bundle, &ov2)?;
        }
    } else {
        let old = src.tree.clone().unwrap_or(TREE_FILE.into());
        let name = format!("berth-tree.{}.jsonl", &m_digest.hex()[..16]);
        src.entries = tree::write_manifest(&rootfs, &bundle.join(&name))?;
        src.tree = Some(name.clone());
        src.write(bundle)?;
        if old != name {
            let _ = std::fs::remove_file(bundle.join(old));
        }
    }
    Ok(Report {
        manifest: m_digest,
        layer: layer.digest,
        diff_id: layer.diff_id,
        entries: layer.entries,
    })
}
