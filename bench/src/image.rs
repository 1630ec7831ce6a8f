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

/// The change every commit round makes, the same in each bundle: 60
/// files rewritten (a line appended), 20 deleted, 20 added.
struct Change {
    modify: Vec<String>,
    delete: Vec<String>,
    add: Vec<String>,
}

impl Change {
    fn pick(tree: &Tree, n: usize) -> Change {
        let mut f: Vec<&String> = tree
            .iter()
            .filter(|(_, v)| v.0 == 'f' && v.4 > 0)
            .map(|(k, _)| k)
            .collect();
        f.sort();
        let n_mod = n * 6 / 10;
        let n_del = n / 5;
        let n_add = n - n_mod - n_del;
        let step = (f.len() / (n_mod + n_del).max(1)).max(1);
        let picked: Vec<String> = f
            .into_iter()
            .step_by(step)
            .take(n_mod + n_del)
            .cloned()
            .collect();
        Change {
            modify: picked[..n_mod.min(picked.len())].to_vec(),
            delete: picked[n_mod.min(picked.len())..].to_vec(),
            add: (0..n_add)
                .map(|i| format!("berth-bench-added/f{i}"))
                .collect(),
        }
    }
    fn len(&self) -> usize {
        self.modify.len() + self.delete.len() + self.add.len()
    }
    fn apply(&self, rootfs: &Path, round: usize) -> Res<()> {
        let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
        for f in &self.modify {
            let p = rootfs.join(f);
            let mut c = fs::read(&p).map_err(|e| io(&p, e))?;
            c.extend_from_slice(format!("\nberth-bench round {round}\n").as_bytes());
            fs::write(&p, c).map_err(|e| io(&p, e))?;
        }
        for f in &self.delete {
            let p = rootfs.join(f);
            fs::remove_file(&p).map_err(|e| io(&p, e))?;
        }
        fs::create_dir_all(rootfs.join("berth-bench-added")).map_err(|e| e.to_string())?;
        for f in &self.add {
            let p = rootfs.join(f);
            fs::write(&p, format!("added in round {round}\n")).map_err(|e| io(&p, e))?;
        }
        Ok(())
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
    let s = |p: &Path| p.display().to_string();
    let bbs = s(bb);
    let store = work.join("store");
    let ov = |name: &str| work.join(format!("overlay-{name}"));
    let overlay_argv = |b: &Path| -> Vec<String> {
        vec![
            bbs.clone(),
            "unpack".into(),
            "--overlay".into(),
            "--store".into(),
            s(&store),
            "--quiet".into(),
            "--image".into(),
            image.clone(),
            s(b),
        ]
    };
    // Removes an overlay bundle the tool's way (unmount, release its store
    // layers), then whatever is left.
    let rm_bundle = |b: &Path| {
        if b.join("berth-bundle.json").exists() {
            let _ = r.sample(vec![bbs.clone(), "rm".into(), s(b)]);
        }
        rm_rf(b);
    };

    // Overlay bundle of a cached image: the first fills the store
    // (untimed), then each sample makes a new bundle, removed after it.
    let mut overlay = Figure::new("overlay", "overlay bundle of a cached image", "ms", true);
    overlay.entries = vec![entry("berth-bundle", false)];
    let mut overlay_ok = false;
    if !has_overlay {
        overlay.entries[0].s.error =
            Some("not available yet (`berth-bundle unpack --help` has no --overlay)".into());
    } else {
        match r.sample(overlay_argv(&ov("warm"))) {
            Err(e) => overlay.entries[0].s.error = Some(e),
            Ok(_) => {
                overlay_ok = true;
                for i in 0..plan.overlay_samples {
                    let b = ov(&i.to_string());
                    match r.sample(overlay_argv(&b)) {
                        Ok(x) => overlay.entries[0].s.push(&x),
                        Err(e) => {
                            overlay.entries[0].s.error = Some(e);
                            break;
                        }
                    }
                    rm_bundle(&b);
                }
            }
        }
        rm_bundle(&ov("warm"));
    }

    // Unpack rounds; each is followed by a commit round on the bundles it
    // made, so every commit starts from a fresh unpack and makes the same
    // change (60 files rewritten, 20 deleted, 20 added).
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
    let n = plan.changed_files;
    let mut commit = Figure::new(
        "commit",
        &format!("new layer of {n} changed files (60% rewritten, 20% deleted, 20% added): commit vs umoci repack"),
        "ms",
        true,
    );
    commit.entries = vec![
        entry("berth-bundle", false),
        entry("umoci", false),
        entry("berth-bundle (overlay bundle)", false),
    ];
    if !has_commit {
        for j in [0, 2] {
            commit.entries[j].s.error =
                Some("not available yet (`berth-bundle --help` lists no commit)".into());
        }
    } else if !overlay_ok {
        commit.entries[2].s.error = Some("no overlay bundle (see the overlay figure)".into());
    }
    commit.notes.push(
        "umoci repack is plain `umoci repack` (no --refresh-bundle); every bundle is a fresh unpack of the image; \
         each tool writes its new layer into its own copy of the layout, under a new tag each round"
            .into(),
    );
    let outs: Vec<PathBuf> = ["berth-bundle", "umoci", "floor"]
        .iter()
        .map(|n| work.join(format!("unpack-{n}")))
        .collect();
    let argv = |j: usize| -> Vec<String> {
        let o = s(&outs[j]);
        match j {
            0 => vec![
                bbs.clone(),
                "unpack".into(),
                "--quiet".into(),
                "--image".into(),
                image.clone(),
                o,
            ],
            1 => vec![
                s(&umoci),
                "unpack".into(),
                "--image".into(),
                image.clone(),
                o,
            ],
            _ => {
                let mut a = vec![s(&bash), s(&bench_dir.join("floor-unpack.sh")), o];
                a.extend(blobs.iter().map(|b| s(&b.0)));
                a
            }
        }
    };
    let layouts = [
        work.join("layout-berth-bundle"),
        work.join("layout-umoci"),
        work.join("layout-berth-bundle-overlay"),
    ];
    for (j, l) in layouts.iter().enumerate() {
        if commit.entries[j].s.error.is_none() {
            if let Err(e) = copy_layout(&layout, l) {
                commit.entries[j].s.error = Some(e);
            }
        }
    }
    let mut facts = json!({
        "image_size": plan.size,
        "layers": blobs.len(),
        "compressed_mb": (compressed as f64 / 1e6 * 10.0).round() / 10.0,
        "build_s": (built_s * 10.0).round() / 10.0,
    });
    let mut bytes = 0u64;
    let mut change: Option<Change> = None;
    for round in 0..plan.unpack_rounds {
        log(&format!(
            "unpack and commit: round {}/{}",
            round + 1,
            plan.unpack_rounds
        ));
        for j in crate::stats::order(3, round) {
            rm_bundle(&outs[j]);
            if unpack.entries[j].s.error.is_some() {
                continue;
            }
            match r.sample(argv(j)) {
                Ok(x) => unpack.entries[j].s.push(&x),
                Err(e) => unpack.entries[j].s.error = Some(e),
            }
        }
        rm_rf(&outs[2]);
        if round == 0 && unpack.entries[0].s.error.is_none() {
            let bt = walk(&outs[0].join("rootfs"));
            bytes = bt.values().map(|v| v.4).sum();
            facts["entries"] = json!(bt.len());
            facts["unpacked_mb"] = json!((bytes as f64 / 1e6 * 10.0).round() / 10.0);
            if unpack.entries[1].s.error.is_none() {
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
            let c = Change::pick(&bt, n);
            facts["changed_files"] = json!(c.len());
            change = Some(c);
        }
        let Some(ch) = change.as_ref() else { break };
        // The bundles to commit: the two fresh unpacks, and a fresh overlay bundle.
        let ovb = ov("commit");
        let bundles = [outs[0].clone(), outs[1].clone(), ovb.clone()];
        if commit.entries[2].s.error.is_none() {
            if let Err(e) = r.sample(overlay_argv(&ovb)) {
                commit.entries[2].s.error = Some(e);
            }
        }
        for (j, b) in bundles.iter().enumerate() {
            let ready = commit.entries[j].s.error.is_none()
                && (j == 2 || unpack.entries[j].s.error.is_none());
            if ready {
                if let Err(e) = ch.apply(&b.join("rootfs"), round) {
                    commit.entries[j].s.error = Some(format!("applying the change: {e}"));
                }
            } else if commit.entries[j].s.error.is_none() {
                commit.entries[j].s.error = Some("no bundle (unpack failed)".into());
            }
        }
        let tag = format!("bench-r{round}");
        for j in crate::stats::order(3, round) {
            if commit.entries[j].s.error.is_some() {
                continue;
            }
            let img = format!("{}:{tag}", s(&layouts[j]));
            let a = if j == 1 {
                vec![
                    s(&umoci),
                    "repack".into(),
                    "--image".into(),
                    img,
                    s(&bundles[j]),
                ]
            } else {
                vec![
                    bbs.clone(),
                    "commit".into(),
                    s(&bundles[j]),
                    "--image".into(),
                    img,
                ]
            };
            match r.sample(a) {
                Ok(x) => commit.entries[j].s.push(&x),
                Err(e) => commit.entries[j].s.error = Some(e),
            }
        }
        rm_bundle(&ovb);
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
    }
    // Walls in s for the unpack figure.
    for e in unpack.entries.iter_mut() {
        e.s.wall.iter_mut().for_each(|w| *w /= 1000.0);
    }
    let mut rate = Figure::new(
        "unpack_rate",
        "unpack throughput (MB/s of unpacked file data)",
        "MB/s",
        false,
    );
    for e in &unpack.entries {
        let mut x = Series {
            error: e.s.error.clone(),
            ..Default::default()
        };
        x.wall = e.s.wall.iter().map(|w| bytes as f64 / 1e6 / w).collect();
        rate.entries.push(Entry {
            label: e.label.clone(),
            floor: e.floor,
            s: x,
        });
    }
    for (j, l) in layouts.iter().enumerate() {
        let last = format!("bench-r{}", plan.unpack_rounds.saturating_sub(1));
        if let Some(sz) = top_layer_size(l, &last).filter(|_| !commit.entries[j].s.wall.is_empty())
        {
            facts[format!("commit_layer_bytes: {}", commit.entries[j].label)] = json!(sz);
        }
    }
    for p in &outs {
        rm_bundle(p);
    }
    for p in &layouts {
        rm_rf(p);
    }
    rm_rf(&store);
    Ok(ImageResult {
        figures: vec![unpack, rate, overlay, commit],
        facts,
        notes,
    })
}
