//! Importing archives into a layout: docker-archive (`docker save`:
//! `manifest.json`, `repositories`, layer tars, possibly symlinked) and
//! OCI archives (a tarred layout). Members are staged inside the target
//! layout (same filesystem) and renamed into `blobs/` after hashing.

use crate::blobs::{Algorithm, Compression, Digest, Hasher};
use crate::layer::path::normalize;
use crate::layout::index::{self, Descriptor, ImageIndex, ImageManifest, MediaType};
use crate::layout::Layout;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct DockerManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

struct Staged {
    dir: PathBuf,
    links: HashMap<PathBuf, PathBuf>,
}

impl Staged {
    /// A member path, following the archive's own symlinks lexically.
    fn resolve(&self, name: &str) -> Result<PathBuf> {
        let mut p = normalize(name.as_bytes())?
            .with_context(|| format!("archive member {name:?} names the root"))?;
        for _ in 0..16 {
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => return Ok(self.dir.join(p)),
            }
        }
        bail!("archive member {name:?}: too many symlinks")
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        crate::tempdir::remove_tree(&self.dir);
    }
}

/// One image of an archive, imported: its descriptor and the names the
/// archive gives it (docker-archive RepoTags, OCI ref.name annotations).
pub struct Imported {
    pub desc: Descriptor,
    pub names: Vec<String>,
}

/// Pick the image `pick` names (a name, or `@N` for the N-th) out of those
/// an archive holds; without `pick`, the only one.
pub fn select<'a>(file: &Path, images: &'a [Imported], pick: Option<&str>) -> Result<&'a Imported> {
    let listing = || {
        images
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if m.names.is_empty() {
                    format!("@{i}")
                } else {
                    format!("@{i} ({})", m.names.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match pick {
        None if images.len() == 1 => Ok(&images[0]),
        None => bail!(
            "{}: the archive holds {} images; name one as ARCHIVE:REF (images: {})",
            file.display(),
            images.len(),
            listing()
        ),
        Some(p) => {
            if let Some(n) = p.strip_prefix('@').and_then(|n| n.parse::<usize>().ok()) {
                return images.get(n).with_context(|| {
                    format!("{}: no image @{n} (images: {})", file.display(), listing())
                });
            }
            let want = |n: &String| {
                n == p
                    || n.strip_prefix("docker.io/library/") == Some(p)
                    || n.strip_prefix("docker.io/") == Some(p)
            };
            images
                .iter()
                .find(|m| m.names.iter().any(want))
                .with_context(|| {
                    format!(
                        "{}: no image named {p:?} (images: {})",
                        file.display(),
                        listing()
                    )
                })
        }
    }
}

/// Import every image of FILE into the layout at `layout_path` (created if
/// needed); tags are not set.
pub fn import_images(file: &Path, layout_path: &Path) -> Result<(Layout, Vec<Imported>)> {
    let layout = Layout::open_or_create(layout_path)?;
    let _blobs = layout.lock_blobs(false)?;
    let staged = stage(file, layout_path)?;
    let images = if staged.dir.join("oci-layout").is_file() {
        import_oci(&layout, &staged)?
    } else if staged.dir.join("manifest.json").is_file() {
        import_docker(&layout, &staged)?
    } else {
        bail!(
            "{}: neither an OCI archive (no oci-layout) nor a docker-archive (no manifest.json)",
            file.display()
        );
    };
    drop(_blobs);
    Ok((layout, images))
}

/// Import the image `pick` selects (see [`select`]) as `tag`.
pub fn import_one(
    file: &Path,
    pick: Option<&str>,
    layout_path: &Path,
    tag: &str,
) -> Result<Descriptor> {
    let (layout, images) = import_images(file, layout_path)?;
    let img = select(file, &images, pick)?;
    layout.tag(tag, img.desc.clone())?;
    Ok(img.desc.clone())
}

/// Import FILE keeping the archive's names as tags (`latest` for an
/// unnamed single image). Returns (tag, descriptor) pairs.
pub fn import_keeping_names(file: &Path, layout_path: &Path) -> Result<Vec<(String, Descriptor)>> {
    let (layout, images) = import_images(file, layout_path)?;
    let mut out = Vec::new();
    for (i, m) in images.iter().enumerate() {
        let names = if m.names.is_empty() {
            if images.len() > 1 {
                bail!(
                    "{}: image @{i} has no name; import it with LAYOUT:TAG and ARCHIVE:@{i}",
                    file.display()
                );
            }
            vec!["latest".to_string()]
        } else {
            m.names.clone()
        };
        for n in names {
            layout.tag(&n, m.desc.clone())?;
            out.push((n, m.desc.clone()));
        }
    }
    Ok(out)
}

fn stage(file: &Path, layout_path: &Path) -> Result<Staged> {
    let f = File::open(file).with_context(|| format!("open {}", file.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let head = {
        use std::io::BufRead;
        r.fill_buf()
            .with_context(|| format!("read {}", file.display()))?
            .to_vec()
    };
    let mut dec = Compression::sniff(&head).decoder(r)?;
    // Check the first header before the tar reader sees it: its errors
    // quote the header, which for a text file is the file itself.
    let mut first = vec![0u8; 512];
    let mut n = 0;
    while n < first.len() {
        match dec.read(&mut first[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("read {}", file.display())),
        }
    }
    first.truncate(n);
    if !crate::layer::path::is_tar_header(&first) {
        bail!(
            "{}: not an image archive (not a tar file: expected a docker-archive or an OCI archive)",
            file.display()
        );
    }
    let dec = std::io::Cursor::new(first).chain(dec);
    let dir = layout_path.join(format!(".import-{}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut staged = Staged {
        dir,
        links: HashMap::new(),
    };
    let mut ar = tar::Archive::new(dec);
    for e in ar
        .entries()
        .with_context(|| format!("read archive {}", file.display()))?
    {
        let mut e = e.with_context(|| format!("read archive {}", file.display()))?;
        let name = e.path_bytes().into_owned();
        let ctx = || {
            format!(
                "archive {}: member {:?}",
                file.display(),
                String::from_utf8_lossy(&name)
            )
        };
        let Some(rel) = normalize(&name).with_context(ctx)? else {
            continue;
        };
        match e.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                // Only plain files and directories we create ourselves exist
                // in the staging dir, so joining a normalised path is safe.
                let dst = staged.dir.join(&rel);
                if let Some(p) = dst.parent() {
                    std::fs::create_dir_all(p).with_context(ctx)?;
                }
                let mut out = File::create(&dst).with_context(ctx)?;
                std::io::copy(&mut e, &mut out).with_context(ctx)?;
            }
            tar::EntryType::Symlink => {
                let t = e.link_name_bytes().with_context(ctx)?;
                let mut target = rel
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
                    .into_os_string()
                    .into_encoded_bytes();
                if t.starts_with(b"/") {
                    target.clear();
                }
                target.push(b'/');
                target.extend_from_slice(&t);
                let Some(tp) = normalize(&target).with_context(ctx)? else {
                    bail!("{}: symlink to the root", ctx())
                };
                staged.links.insert(rel, tp);
            }
            _ => {}
        }
    }
    Ok(staged)
}

/// Hash a staged file and move it into the store under its digest.
fn adopt(layout: &Layout, src: &Path, alg: Algorithm) -> Result<(Digest, u64)> {
    let mut f = File::open(src).with_context(|| format!("open {}", src.display()))?;
    let mut h = Hasher::new(alg);
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .with_context(|| format!("read {}", src.display()))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    let d = h.finish();
    let dst = layout.store.path(&d);
    if let Some(p) = dst.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("create {}", p.display()))?;
    }
    if !dst.exists() {
        std::fs::rename(src, &dst)
            .with_context(|| format!("move {} to {}", src.display(), dst.display()))?;
    }
    Ok((d, n))
}

fn import_oci(layout: &Layout, st: &Staged) -> Result<Vec<Imported>> {
    // Move every blob, verifying it hashes to its own name.
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        let dir = st.dir.join("blobs").join(alg.name());
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd {
            let e = e.with_context(|| format!("read {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let want = Digest::parse(&format!("{}:{name}", alg.name()))?;
            let (got, _) = adopt(layout, &e.path(), alg)?;
            if got != want {
                bail!("blob {want}: digest mismatch, content hashes to {got}");
            }
        }
    }
    let raw = std::fs::read(st.dir.join("index.json")).context("OCI archive: read index.json")?;
    let idx: ImageIndex =
        serde_json::from_slice(&raw).context("OCI archive: invalid index.json")?;
    if idx.manifests().is_empty() {
        bail!("OCI archive: index.json lists no images");
    }
    let named = idx.manifests().iter().any(|d| index::ref_name(d).is_some());
    if named || idx.manifests().len() == 1 {
        return Ok(idx
            .manifests()
            .iter()
            .map(|d| Imported {
                names: index::ref_name(d).map(String::from).into_iter().collect(),
                desc: index::without_annotations(d.clone()),
            })
            .collect());
    }
    // Several unnamed manifests (platforms of one image): keep them
    // together behind one nested index so platform selection still works.
    let nested = index::new_index(idx.manifests().clone());
    let bytes = serde_json::to_vec(&nested)?;
    let d = layout.store.put_bytes(&bytes)?;
    Ok(vec![Imported {
        desc: index::descriptor(MediaType::ImageIndex, &d, bytes.len() as u64),
        names: vec![],
    }])
}

fn import_docker(layout: &Layout, st: &Staged) -> Result<Vec<Imported>> {
    let raw = std::fs::read(st.dir.join("manifest.json"))
        .context("docker-archive: read manifest.json")?;
    let ms: Vec<DockerManifest> =
        serde_json::from_slice(&raw).context("docker-archive: invalid manifest.json")?;
    if ms.is_empty() {
        bail!("docker-archive: manifest.json lists no images")
    }
    // Identical layers may be one file (or symlinks to it): adopt it once.
    let mut seen: HashMap<PathBuf, Descriptor> = HashMap::new();
    ms.iter()
        .map(|m| {
            Ok(Imported {
                desc: import_docker_image(layout, st, m, &mut seen)?,
                names: m.repo_tags.clone().unwrap_or_default(),
            })
        })
        .collect()
}

fn import_docker_image(
    layout: &Layout,
    st: &Staged,
    m: &DockerManifest,
    seen: &mut HashMap<PathBuf, Descriptor>,
) -> Result<Descriptor> {
    let cfg_path = st.resolve(&m.config)?;
    let cfg_bytes = std::fs::read(&cfg_path)
        .with_context(|| format!("docker-archive: read config {}", m.config))?;
    let cfg: serde_json::Value = serde_json::from_slice(&cfg_bytes)
        .with_context(|| format!("docker-archive: invalid config {}", m.config))?;
    let cfg_digest = layout.store.put_bytes(&cfg_bytes)?;
    let mut layers = Vec::new();
    for l in &m.layers {
        let p = st.resolve(l)?;
        if let Some(d) = seen.get(&p) {
            layers.push(d.clone());
            continue;
        }
        let mut head = [0u8; 4];
        let n = File::open(&p)
            .and_then(|mut f| f.read(&mut head))
            .with_context(|| format!("docker-archive: layer {l}"))?;
        let comp = Compression::sniff(&head[..n]);
        let (d, size) = adopt(layout, &p, Algorithm::Sha256)
            .with_context(|| format!("docker-archive: layer {l}"))?;
        let desc = index::descriptor(comp.oci_layer_media_type().into(), &d, size);
        seen.insert(p, desc.clone());
        layers.push(desc);
    }
    let platform = match (
        cfg.get("os").and_then(|v| v.as_str()),
        cfg.get("architecture").and_then(|v| v.as_str()),
    ) {
        (Some(os), Some(arch)) => Some(index::platform(
            os,
            arch,
            cfg.get("variant")
                .and_then(|v| v.as_str())
                .map(String::from),
        )),
        _ => None,
    };
    let manifest = new_manifest(
        index::descriptor(MediaType::ImageConfig, &cfg_digest, cfg_bytes.len() as u64),
        layers,
    );
    let bytes = serde_json::to_vec(&manifest)?;
    let d = layout.store.put_bytes(&bytes)?;
    let mut desc = index::descriptor(MediaType::ImageManifest, &d, bytes.len() as u64);
    desc.set_platform(platform);
    Ok(desc)
}

/// An OCI image manifest for `config` and `layers`.
pub fn new_manifest(config: Descriptor, layers: Vec<Descriptor>) -> ImageManifest {
    let mut m: ImageManifest = serde_json::from_value(serde_json::json!({
        "schemaVersion": 2,
        "config": serde_json::to_value(&config).expect("descriptor serialises"),
        "layers": [],
    }))
    .expect("minimal manifest");
    m.set_media_type(Some(MediaType::ImageManifest));
    m.set_layers(layers);
    m
}
