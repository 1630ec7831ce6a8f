//! Image management on layouts, like docker's image commands: `tag`, `rm`
//! (untag), `gc` (remove unreachable blobs), `config` (a new config and
//! manifest with edited run settings) and `export` to docker-archive and
//! OCI archive files.

use crate::blobs::{Compression, Digest};
use crate::clock;
use crate::config_edit::{self, HistoryEntry};
use crate::layout::index::{self, Descriptor, ImageManifest, MediaType};
use crate::layout::{Layout, Resolved};
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Every blob reachable from the layout's index.json.
pub fn reachable(l: &Layout) -> Result<HashSet<Digest>> {
    let mut seen = HashSet::new();
    let mut todo: Vec<Descriptor> = l.index()?.manifests().clone();
    while let Some(d) = todo.pop() {
        let dg = index::blob_digest(&d)?;
        if !seen.insert(dg.clone()) || !l.store.contains(&dg) {
            continue;
        }
        if index::is_index(d.media_type()) {
            let i: index::ImageIndex = l.read_json(&d)?;
            todo.extend(i.manifests().iter().cloned());
        } else if index::is_manifest(d.media_type()) {
            let m: ImageManifest = l.read_json(&d)?;
            todo.push(m.config().clone());
            todo.extend(m.layers().iter().cloned());
        }
    }
    Ok(seen)
}

/// Remove blobs no tag reaches (and stale temporary files). Returns
/// (blobs removed, bytes freed).
pub fn gc(l: &Layout) -> Result<(usize, u64)> {
    let _ex = l.lock_blobs(true)?;
    l.remove_index_temporaries()?;
    let keep = reachable(l)?;
    let (mut n, mut bytes) = (0, 0);
    for alg in ["sha256", "sha512"] {
        let dir = l.path.join("blobs").join(alg);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd {
            let e = e.with_context(|| format!("read {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = name.starts_with(".tmp-");
            let unreachable = Digest::parse(&format!("{alg}:{name}"))
                .map(|d| !keep.contains(&d))
                .unwrap_or(false);
            if stale || unreachable {
                let sz = e.metadata().map(|m| m.len()).unwrap_or(0);
                std::fs::remove_file(e.path())
                    .with_context(|| format!("remove {}", e.path().display()))?;
                n += 1;
                bytes += sz;
            }
        }
    }
    Ok((n, bytes))
}

/// Write a new config (edited by `edit`) and manifest for image `r` in
/// `l`, tagged `tag`; a history entry records `created_by`.
pub fn reconfigure(
    l: &Layout,
    r: &Resolved,
    tag: &str,
    created_by: &str,
    edit: impl FnOnce(&mut serde_json::Value) -> Result<()>,
) -> Result<Digest> {
    let _blobs = l.lock_blobs(false)?;
    let mut cfg = r.config_raw.clone();
    edit(&mut cfg)?;
    let now = clock::now();
    config_edit::push_history(
        &mut cfg,
        &HistoryEntry {
            created: &now,
            author: None,
            created_by,
            comment: None,
            empty_layer: true,
        },
    )?;
    let bytes = serde_json::to_vec(&cfg)?;
    let cd = l.store.put_bytes(&bytes)?;
    let m = crate::archive::new_manifest(
        index::descriptor(MediaType::ImageConfig, &cd, bytes.len() as u64),
        r.manifest.layers().clone(),
    );
    let mb = serde_json::to_vec(&m)?;
    let md = l.store.put_bytes(&mb)?;
    let mut desc = index::descriptor(MediaType::ImageManifest, &md, mb.len() as u64);
    desc.set_platform(r.manifest_desc.platform().clone());
    l.tag(tag, desc)?;
    Ok(md)
}

fn tar_file(
    ar: &mut tar::Builder<std::io::BufWriter<std::fs::File>>,
    name: &str,
    data: &mut dyn std::io::Read,
    size: u64,
) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)
        .with_context(|| format!("archive member {name}"))?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    ar.append(&h, data).context("write archive")
}

fn tar_dir(ar: &mut tar::Builder<std::io::BufWriter<std::fs::File>>, name: &str) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)
        .with_context(|| format!("archive member {name}"))?;
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_cksum();
    ar.append(&h, std::io::empty()).context("write archive")
}

/// Write FILE through a temporary file and rename (no half archive).
fn write_archive(
    file: &Path,
    f: impl FnOnce(&mut tar::Builder<std::io::BufWriter<std::fs::File>>) -> Result<()>,
) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp-{}", file.display(), std::process::id()));
    let res = (|| -> Result<()> {
        let out =
            std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        let mut ar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, out));
        f(&mut ar)?;
        let mut w = ar.into_inner().context("finish archive")?;
        w.flush().context("write archive")?;
        w.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .context("write archive")?;
        std::fs::rename(&tmp, file).with_context(|| format!("rename {} into place", file.display()))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// An OCI archive: a layout holding only this image, tagged `name`.
pub fn export_oci(l: &Layout, r: &Resolved, file: &Path, name: &str) -> Result<()> {
    let mut blobs: Vec<Descriptor> = vec![r.manifest_desc.clone(), r.manifest.config().clone()];
    blobs.extend(r.manifest.layers().iter().cloned());
    let mut desc = index::without_annotations(r.manifest_desc.clone());
    index::set_ref_name(&mut desc, name);
    let idx = serde_json::to_vec(&index::new_index(vec![desc]))?;
    write_archive(file, |ar| {
        tar_file(
            ar,
            "oci-layout",
            &mut &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
            30,
        )?;
        tar_file(ar, "index.json", &mut &idx[..], idx.len() as u64)?;
        tar_dir(ar, "blobs/")?;
        let mut dirs = HashSet::new();
        let mut done = HashSet::new();
        for b in &blobs {
            let d = index::blob_digest(b)?;
            if !done.insert(d.clone()) {
                continue;
            }
            if dirs.insert(d.algorithm().name()) {
                tar_dir(ar, &format!("blobs/{}/", d.algorithm().name()))?;
            }
            let mut rd = l.store.open(&d, b.size())?;
            tar_file(
                ar,
                &format!("blobs/{}/{}", d.algorithm().name(), d.hex()),
                &mut rd,
                b.size(),
            )?;
            rd.finish()?;
        }
        Ok(())
    })
}

/// A docker-archive (`docker save` format, as skopeo writes it): the
/// config as HEX.json, each layer uncompressed as DIFFID.tar,
/// manifest.json with RepoTags, and `repositories`.
pub fn export_docker(l: &Layout, r: &Resolved, file: &Path, name: Option<&str>) -> Result<()> {
    let cfg_d = index::blob_digest(r.manifest.config())?;
    let cfg_bytes = l.store.read_all(&cfg_d, r.manifest.config().size())?;
    let mut diff_ids = r.config.rootfs().diff_ids().clone();
    let mut cfg_bytes = cfg_bytes;
    let mut cfg_d = cfg_d;
    if diff_ids.len() != r.manifest.layers().len() {
        // docker load needs them: compute, and write the config with them.
        diff_ids = r
            .manifest
            .layers()
            .iter()
            .map(|d| crate::commit::diff_id_of(l, d).map(|x| x.to_string()))
            .collect::<Result<_>>()?;
        let mut v = r.config_raw.clone();
        v["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
        cfg_bytes = serde_json::to_vec(&v)?;
        let mut h = crate::blobs::Hasher::new(crate::blobs::Algorithm::Sha256);
        h.update(&cfg_bytes);
        cfg_d = h.finish();
    }
    let mut layer_names = Vec::new();
    for d in &diff_ids {
        let d = Digest::parse(d).context("config diff_ids")?;
        layer_names.push(format!("{}.tar", d.hex()));
    }
    let tags: Vec<String> = name
        .map(|n| {
            if n.contains(':') {
                n.to_string()
            } else {
                format!("{n}:latest")
            }
        })
        .into_iter()
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("{}.json", cfg_d.hex()),
        "RepoTags": tags,
        "Layers": layer_names,
    }]))?;
    let mut repos = serde_json::Map::new();
    if let (Some(t), Some(last)) = (tags.first(), diff_ids.last()) {
        if let Some((repo, tag)) = t.rsplit_once(':') {
            let last = last.strip_prefix("sha256:").unwrap_or(last);
            repos.insert(repo.to_string(), serde_json::json!({ tag: last }));
        }
    }
    let repos = serde_json::to_vec(&repos)?;
    write_archive(file, |ar| {
        tar_file(
            ar,
            &format!("{}.json", cfg_d.hex()),
            &mut &cfg_bytes[..],
            cfg_bytes.len() as u64,
        )?;
        let mut done = HashSet::new();
        for (desc, n) in r.manifest.layers().iter().zip(&layer_names) {
            if !done.insert(n.clone()) {
                continue;
            }
            // Uncompressed, so the member hashes to its diff_id; staged in
            // a temporary file because a tar member needs its size first.
            let d = index::blob_digest(desc)?;
            let c = Compression::from_layer_media_type(desc.media_type().as_ref())?;
            let (tmp, mut f) = l.store.create_temp()?;
            let res = (|| -> Result<()> {
                let mut rd = l.store.open(&d, desc.size())?;
                {
                    let mut dec = c.decoder(&mut rd)?;
                    std::io::copy(&mut dec, &mut f).context("decompress layer")?;
                }
                rd.finish()?;
                let size = f.metadata()?.len();
                let mut back = std::fs::File::open(&tmp)?;
                tar_file(ar, n, &mut back, size)
            })();
            let _ = std::fs::remove_file(&tmp);
            res?;
        }
        tar_file(
            ar,
            "manifest.json",
            &mut &manifest[..],
            manifest.len() as u64,
        )?;
        tar_file(ar, "repositories", &mut &repos[..], repos.len() as u64)
    })
}
