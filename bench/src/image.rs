//! Image figures: unpack (berth-bundle vs umoci vs the gzip|tar floor),
//! an overlay bundle of a cached image, and commit vs `umoci repack` of 100
//! changed files.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::bench::{Entry, Figure, Series, INTERRUPTED};
use crate::env::Res;
use crate::sample::{self, Cmd, Reap, Sample};

pub struct ImagePlan {
    pub size: &'static str,
    pub unpack_rounds: usize,
    pub overlay_samples: usize,
    pub commit_rounds: usize,
    pub changed_files: usize,
}

pub struct ImageResult {
    pub figures: Vec<Figure>,
    pub facts: Value,
    pub notes: Vec<String>,
}

use crate::bench::log;

struct Runner {
    env: Vec<String>,
    out: String,
    err: String,
}

impl Runner {
    fn sample(&self, argv: Vec<String>) -> Res<Sample> {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        let cmd = Cmd::new(&argv, &self.env, &self.out, &self.err);
        let s = sample::sample(&cmd, Reap::All);
        if !s.ok() {
            return Err(format!(
                "`{}`: {}",
                cmd.display,
                sample::describe_failure(&s, &self.err)
            ));
        }
        Ok(s)
    }
}

fn rm_rf(p: &Path) {
    if p.exists() || p.symlink_metadata().is_ok() {
        // A bundle may hold a mount (an overlay rootfs): detach it first.
        crate::env::umount(&p.join("rootfs"));
        let _ = fs::remove_dir_all(p);
    }
}

/// Read a file once so that every unpacker reads it from the page cache.
fn warm(p: &Path) {
    use std::io::Read;
    if let Ok(mut f) = fs::File::open(p) {
        let mut buf = vec![0u8; 1 << 20];
        while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// The image's layer blobs, in order, from the layout's `bench` tag.
fn layer_blobs(layout: &Path) -> Res<Vec<(PathBuf, u64)>> {
    let rd = |p: &Path| -> Res<Value> {
        serde_json::from_str(&fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?)
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let blob = |d: &str| layout.join("blobs").join(d.replacen(':', "/", 1));
    let index = rd(&layout.join("index.json"))?;
    let m = index["manifests"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "bench")
        })
        .ok_or("no `bench` tag in the layout")?;
    let manifest = rd(&blob(m["digest"].as_str().unwrap_or("")))?;
    Ok(manifest["layers"]
        .as_array()
        .ok_or("manifest without layers")?
        .iter()
        .map(|l| {
            (
                blob(l["digest"].as_str().unwrap_or("")),
                l["size"].as_u64().unwrap_or(0),
            )
        })
        .collect())
}

/// The last layer's size of TAG in a layout (what a commit added).
fn top_layer_size(layout: &Path, tag: &str) -> Option<u64> {
    let index: Value =
        serde_json::from_str(&fs::read_to_string(layout.join("index.json")).ok()?).ok()?;
    let m = index["manifests"]
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)?;
    let d = m["digest"].as_str()?.replacen(':', "/", 1);
    let man: Value =
        serde_json::from_str(&fs::read_to_string(layout.join("blobs").join(d)).ok()?).ok()?;
    man["layers"].as_array()?.last()?["size"].as_u64()
}

/// Entries of a tree: relative path → (type, mode, uid, gid, size, link).
type Tree = BTreeMap<String, (char, u32, u32, u32, u64, String)>;

fn walk(root: &Path) -> Tree {
    let mut t = Tree::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = p.symlink_metadata() else {
                continue;
            };
            let ft = m.file_type();
            let kind = if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else if ft.is_file() {
                'f'
            } else {
                'o'
            };
            let link = if ft.is_symlink() {
                fs::read_link(&p)
                    .map(|l| l.display().to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let size = if ft.is_file() { m.len() } else { 0 };
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            t.insert(rel, (kind, m.mode() & 0o7777, m.uid(), m.gid(), size, link));
            if ft.is_dir() {
                stack.push(p);
            }
        }
    }
    t
}

fn tree_diff(a: &Tree, b: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("only in berth-bundle's: {k}")),
            Some(w) if w != v => out.push(format!("differs: {k}: {v:?} vs {w:?}")),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.push(format!("only in umoci's: {k}"));
        }
    }
    out
}

/// Copy a layout for a commit to write into (the cached one stays as it is).
fn copy_layout(from: &Path, to: &Path) -> Res<()> {
    rm_rf(to);
    fs::create_dir_all(to.join("blobs/sha256")).map_err(|e| e.to_string())?;
    for f in ["index.json", "oci-layout"] {
        fs::copy(from.join(f), to.join(f)).map_err(|e| format!("copy {f}: {e}"))?;
    }
    for e in fs::read_dir(from.join("blobs/sha256"))
        .map_err(|e| e.to_string())?
        .flatten()
    {
        fs::copy(e.path(), to.join("blobs/sha256").join(e.file_name()))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub fn supports(bb: &Path) -> (bool, bool) {
    let help = |args: &[&str]| {
        let mut a = vec![bb.to_str().unwrap()];
        a.extend_from_slice(args);
        crate::env::output(&a).unwrap_or_default()
    };
    let top = help(&["--help"]);
    let commit = top.lines().any(|l| l.trim_start().starts_with("commit "));
    let overlay = help(&["unpack", "--help"]).contains("--overlay");
    (overlay, commit)
}

fn entry(label: &str, floor: bool) -> Entry {
    Entry {
        label: label.into(),
        floor,
        s: Series::default(),
    }
}

pub fn image_figures(
    bench_dir: &Path,
    cache: &Path,
    work: &Path,
    tmp: &Path,
    bb: &Path,
    plan: &ImagePlan,
) -> Res<ImageResult> {
    let umoci = crate::env::which("umoci").ok_or("umoci is not installed (make deps)")?;
    let bash = crate::env::which("bash").ok_or("no bash")?;
    let t0 = std::time::Instant::now();
    let st = std::process::Command::new(&bash)
        .arg(bench_dir.join("image.sh"))
        .arg(cache)
        .arg(plan.size)
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err("building the benchmark image failed".into());
    }
    let built_s = t0.elapsed().as_secs_f64();
    let layout = cache.join("layout");
    let image = format!("{}:bench", layout.display());
    let blobs = layer_blobs(&layout)?;
    let compressed: u64 = blobs.iter().map(|b| b.1).sum();
    for b in &blobs {
        warm(&b.0);
    }
    let r = Runner {
        env: vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            "HOME=/root".into(),
        ],
        out: tmp.join("img-stdout").display().to_string(),
        err: tmp.join("img-stderr").display().to_string(),
    };
    let (has_overlay, has_commit) = supports(bb);
    let mut notes = Vec::new();
    fs::create_dir_all(work).map_err(|e| e.to_string())?;

    // Unpack.
    let mut unpack = Figure::new(
        "unpack",
        "unpack the image into a bundle (wall s)",
        "s",
        true,
    );
    unpack.entries = vec![
        entry("berth-bundle", false),
        entry("umoci", false),
        entry("floor: gzip -dc | tar -x", true),
    ];
    let outs: Vec<PathBuf> = ["berth-bundle", "umoci", "floor"]
        .iter()
        .map(|n| work.join(format!("unpack-{n}")))
        .collect();
    let argv = |j: usize| -> Vec<String> {
        let o = outs[j].display().to_string();
        match j {
            0 => vec![
                bb.display().to_string(),
                "unpack".into(),
                "--quiet".into(),
                "--image".into(),
                image.clone(),
                o,
            ],
            1 => vec![
                umoci.display().to_string(),
                "unpack".into(),
                "--image".into(),
                image.clone(),
                o,
            ],
            _ => {
                let mut a = vec![
                    bash.display().to_string(),
                    bench_dir.join("floor-unpack.sh").display().to_string(),
                    o,
                ];
                a.extend(blobs.iter().map(|b| b.0.display().to_string()));
                a
            }
        }
    };
    for round in 0..plan.unpack_rounds {
        log(&format!(
            "unpack: round {}/{}",
            round + 1,
            plan.unpack_rounds
        ));
        for k in 0..3 {
            let j = (round + k) % 3;
            if unpack.entries[j].s.error.is_some() {
                continue;
            }
            rm_rf(&outs[j]);
            match r.sample(argv(j)) {
                Ok(s) => unpack.entries[j].s.push(&s),
                Err(e) => unpack.entries[j].s.error = Some(e),
            }
        }
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
    }
    // Walls in s for this figure.
    for e in unpack.entries.iter_mut() {
        e.s.wall.iter_mut().for_each(|w| *w /= 1000.0);
    }
    let mut facts = json!({
        "image_size": plan.size,
        "layers": blobs.len(),
        "compressed_mb": (compressed as f64 / 1e6 * 10.0).round() / 10.0,
        "build_s": (built_s * 10.0).round() / 10.0,
    });
    let bt = walk(&outs[0].join("rootfs"));
    let bytes: u64 = bt.values().map(|v| v.4).sum();
    facts["entries"] = json!(bt.len());
    facts["unpacked_mb"] = json!((bytes as f64 / 1e6 * 10.0).round() / 10.0);
    let mut rate = Figure::new(
        "unpack_rate",
        "unpack throughput (MB/s of unpacked file data)",
        "MB/s",
        false,
    );
    for e in &unpack.entries {
        let mut s = Series {
            error: e.s.error.clone(),
            ..Default::default()
        };
        s.wall = e.s.wall.iter().map(|w| bytes as f64 / 1e6 / w).collect();
        rate.entries.push(Entry {
            label: e.label.clone(),
            floor: e.floor,
            s,
        });
    }
    if unpack.entries[0].s.error.is_none() && unpack.entries[1].s.error.is_none() {
        let d = tree_diff(&bt, &walk(&outs[1].join("rootfs")));
        facts["trees_agree"] = json!(d.is_empty());
        if !d.is_empty() {
            notes.push(format!(
                "berth-bundle's and umoci's trees differ in {} entries, e.g. {}",
                d.len(),
                d.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ));
        }
    }
    rm_rf(&outs[2]);
    let mut figs = vec![unpack, rate];

    // Overlay bundle of a cached image.
    let mut overlay = Figure::new("overlay", "overlay bundle of a cached image", "ms", true);
    overlay.entries = vec![entry("berth-bundle", false)];
    if !has_overlay {
        overlay.entries[0].s.error =
            Some("not available yet (`berth-bundle unpack --help` has no --overlay)".into());
    } else {
        let ov = |i: usize| work.join(format!("overlay-{i}"));
        let av = |i: usize| {
            vec![
                bb.display().to_string(),
                "unpack".into(),
                "--overlay".into(),
                "--quiet".into(),
                "--image".into(),
                image.clone(),
                ov(i).display().to_string(),
            ]
        };
        // The first one fills the cache (untimed).
        match r.sample(av(0)) {
            Err(e) => overlay.entries[0].s.error = Some(e),
            Ok(_) => {
                for i in 1..=plan.overlay_samples {
                    match r.sample(av(i)) {
                        Ok(s) => overlay.entries[0].s.push(&s),
                        Err(e) => {
                            overlay.entries[0].s.error = Some(e);
                            break;
                        }
                    }
                    rm_rf(&ov(i));
                }
            }
        }
        rm_rf(&ov(0));
    }
    figs.push(overlay);

    // Commit vs repack of N changed files, on the bundles of the last
    // unpack round. Each round appends a line to the same N files, so each
    // new layer has N changed files whether or not the tool refreshes its
    // view of the bundle after a commit (umoci repack does not, without
    // --refresh-bundle, which is not used: plain repack is the peer).
    let n = plan.changed_files;
    let mut commit = Figure::new(
        "commit",
        &format!("new layer of {n} changed files (commit vs umoci repack)"),
        "ms",
        true,
    );
    commit.entries = vec![entry("berth-bundle", false), entry("umoci", false)];
    let ready = [
        outs[0].join("rootfs").is_dir(),
        outs[1].join("rootfs").is_dir(),
    ];
    if !has_commit {
        commit.entries[0].s.error =
            Some("not available yet (`berth-bundle --help` lists no commit)".into());
    } else if !ready[0] {
        commit.entries[0].s.error = Some("no berth-bundle bundle (unpack failed)".into());
    }
    if !ready[1] {
        commit.entries[1].s.error = Some("no umoci bundle (unpack failed)".into());
    }
    let files: Vec<String> = {
        let mut f: Vec<&String> = bt
            .iter()
            .filter(|(_, v)| v.0 == 'f' && v.4 > 0)
            .map(|(k, _)| k)
            .collect();
        f.sort();
        let step = (f.len() / n.max(1)).max(1);
        f.into_iter().step_by(step).take(n).cloned().collect()
    };
    let layouts = [
        work.join("commit-layout-berth-bundle"),
        work.join("commit-layout-umoci"),
    ];
    for (j, l) in layouts.iter().enumerate() {
        if commit.entries[j].s.error.is_none() {
            if let Err(e) = copy_layout(&layout, l) {
                commit.entries[j].s.error = Some(e);
            }
        }
    }
    let cav = |j: usize| -> Vec<String> {
        let img = format!("{}:bench", layouts[j].display());
        let b = outs[j].display().to_string();
        if j == 0 {
            vec![
                bb.display().to_string(),
                "commit".into(),
                b,
                "--image".into(),
                img,
            ]
        } else {
            vec![
                umoci.display().to_string(),
                "repack".into(),
                "--image".into(),
                img,
                b,
            ]
        }
    };
    for round in 0..plan.commit_rounds {
        if commit.entries.iter().all(|e| e.s.error.is_some()) {
            break;
        }
        log(&format!(
            "commit/repack: round {}/{}",
            round + 1,
            plan.commit_rounds
        ));
        for (e, out) in commit.entries.iter().zip(&outs) {
            if e.s.error.is_some() {
                continue;
            }
            for f in &files {
                let p = out.join("rootfs").join(f);
                let mut c = fs::read(&p).unwrap_or_default();
                c.extend_from_slice(format!("\nberth-bench round {round}\n").as_bytes());
                let _ = fs::write(&p, c);
            }
        }
        for k in 0..2 {
            let j = (round + k) % 2;
            if commit.entries[j].s.error.is_some() {
                continue;
            }
            match r.sample(cav(j)) {
                Ok(s) => commit.entries[j].s.push(&s),
                Err(e) => commit.entries[j].s.error = Some(e),
            }
        }
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
    }
    for (j, l) in layouts.iter().enumerate() {
        if let Some(sz) =
            top_layer_size(l, "bench").filter(|_| !commit.entries[j].s.wall.is_empty())
        {
            facts[format!("commit_layer_bytes_{}", commit.entries[j].label)] = json!(sz);
        }
    }
    figs.push(commit);
    for p in outs.iter().chain(layouts.iter()) {
        rm_rf(p);
    }
    Ok(ImageResult {
        figures: figs,
        facts,
        notes,
    })
}
