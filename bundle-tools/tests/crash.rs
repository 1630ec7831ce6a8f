//! Crash injection: `commit` (flat and overlay bundles) and `unpack
//! --overlay` into the layer store are SIGKILLed at moments spread over
//! their run time (and a little beyond), then:
//! - the layout is valid: index.json parses and every blob an entry reaches
//!   is present with its digest and size (never a half-written blob);
//! - the store holds no half-extracted layer as present (the finished
//!   unpack equals a flat unpack of the same image), and `gc --store`
//!   leaves no temporary extraction, no reference of a bundle that does not
//!   use the layer, no unfinished bundle directory or mount, no layer
//!   nobody uses;
//! - the next commit / unpack works and gives exactly the changed tree;
//! - `gc LAYOUT` removes the temporary files of killed writers and every
//!   blob no tag reaches.
//!
//! BERTH_CRASH_POINTS (default 6; `make test-full` sets 60) kill points per
//! operation; BERTH_CRASH_SEED repeats a run (the seed is printed).

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bytes that do not compress (so compressing them takes time).
fn random_bytes(rng: &mut fastrand::Rng, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    rng.fill(&mut v);
    v
}

fn points() -> u64 {
    std::env::var("BERTH_CRASH_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

fn seed() -> u64 {
    std::env::var("BERTH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
                | 1
        })
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "berth-bundle failed: {}", stderr(o));
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// Run berth-bundle `args` and SIGKILL it after `delay` (unless it ended).
fn kill_after(args: &[&str], delay: Duration) {
    let mut c = Command::new(bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berth-bundle");
    std::thread::sleep(delay);
    // Child::kill is SIGKILL; an already finished child is reaped by wait.
    let _ = c.kill();
    let _ = c.wait();
}

fn timed(args: &[&str]) -> Duration {
    let t = Instant::now();
    ok(&run(args));
    t.elapsed()
}

/// Mount points at or under `dir` (deepest first).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mut v: Vec<PathBuf> = mi
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v
}

/// The test's directory; whatever is mounted under it is detached when the
/// test ends, passed or failed.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Scratch(tempfile::tempdir().expect("tempdir"))
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for m in mounts_under(self.0.path()) {
            let _ = Command::new("umount").arg("-l").arg(&m).output();
        }
    }
}

/// Verify a blob on disk against its descriptor.
fn check_blob(layout: &Path, d: &Value, what: &str) -> Vec<u8> {
    let digest = d["digest"].as_str().expect("digest");
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let p = layout.join("blobs/sha256").join(hex);
    let data = std::fs::read(&p)
        .unwrap_or_else(|e| panic!("{what}: blob {digest} referenced but missing: {e}"));
    assert_eq!(
        data.len() as u64,
        d["size"].as_u64().expect("size"),
        "{what}: blob {digest} has the wrong size (half-written?)"
    );
    assert_eq!(
        sha256(&data),
        digest,
        "{what}: blob {digest} has the wrong content (half-written?)"
    );
    data
}

/// index.json parses and every blob it reaches is complete; returns the
/// reached digests.
fn check_layout(layout: &Path, what: &str) -> HashSet<String> {
    let raw = std::fs::read(layout.join("index.json")).expect("read index.json");
    let idx: Value = serde_json::from_slice(&raw)
        .unwrap_or_else(|e| panic!("{what}: index.json is not valid JSON: {e}"));
    let mut seen = HashSet::new();
    for m in idx["manifests"].as_array().expect("manifests") {
        let mb = check_blob(layout, m, what);
        seen.insert(m["digest"].as_str().expect("digest").to_string());
        let man: Value = serde_json::from_slice(&mb).expect("manifest JSON");
        for d in std::iter::once(&man["config"]).chain(man["layers"].as_array().expect("layers")) {
            check_blob(layout, d, what);
            seen.insert(d["digest"].as_str().expect("digest").to_string());
        }
    }
    seen
}

fn tags(layout: &Path) -> Vec<String> {
    let idx: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index"))
            .expect("index json");
    idx["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(String::from)
        .collect()
}

/// After `gc LAYOUT`: no temporary file, no blob no tag reaches.
fn gc_layout(layout: &Path, what: &str) {
    ok(&run(&["gc", s(layout)]));
    let keep = check_layout(layout, what);
    for e in std::fs::read_dir(layout.join("blobs/sha256")).expect("blobs") {
        let n = e
            .expect("dirent")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            keep.contains(&format!("sha256:{n}")),
            "{what}: gc left {n} (a temporary or unreachable blob)"
        );
    }
    for e in std::fs::read_dir(layout).expect("layout") {
        let n = e
            .expect("dirent")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(!n.starts_with("index.tmp-"), "{what}: gc left {n}");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// After `gc --store`: nothing in tmp/, every reference names a bundle
/// whose record lists the layer, every layer is referenced; `bundles` are
/// the bundles that should still hold the store's layers.
fn gc_store(store: &Path, bundles: &[&Path], what: &str) {
    ok(&run(&["gc", "--store", s(store)]));
    assert!(
        names(&store.join("tmp")).is_empty(),
        "{what}: gc --store left {:?} in tmp/",
        names(&store.join("tmp"))
    );
    let mut used: HashMap<String, usize> = HashMap::new();
    for b in bundles {
        let rec: Value = serde_json::from_slice(
            &std::fs::read(b.join("berth-bundle.json")).expect("bundle record"),
        )
        .expect("record json");
        for k in rec["overlay"]["layers"].as_array().expect("overlay layers") {
            *used
                .entry(k.as_str().expect("key").to_string())
                .or_default() += 1;
        }
    }
    let layers: HashSet<String> = names(&store.join("layers/sha256"))
        .into_iter()
        .map(|n| format!("sha256:{n}"))
        .collect();
    let used_keys: HashSet<String> = used.keys().cloned().collect();
    assert_eq!(
        layers, used_keys,
        "{what}: store layers are not those in use"
    );
    for (k, users) in &used {
        let hex = k.strip_prefix("sha256:").expect("sha256");
        let refs = names(&store.join("refs/sha256").join(hex));
        assert_eq!(refs.len(), *users, "{what}: references of {k}: {refs:?}");
    }
    let ref_dirs: HashSet<String> = names(&store.join("refs/sha256"))
        .into_iter()
        .map(|n| format!("sha256:{n}"))
        .collect();
    assert_eq!(
        ref_dirs, used_keys,
        "{what}: references of layers not in use"
    );
}

/// Unfinished `.NAME.berth-unpack-PID` directories beside bundles in `dir`.
fn unfinished(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.contains(".berth-unpack-"))
        .collect()
}

fn is_mounted(p: &Path) -> bool {
    let a = std::fs::symlink_metadata(p).expect("lstat");
    let b = std::fs::metadata(p.parent().expect("parent")).expect("stat parent");
    a.dev() != b.dev()
}

/// A base image with enough content that unpack and commit take a while:
/// three layers, incompressible files, a few hundred small ones.
fn base_image(l: &LayoutBuilder, rng: &mut fastrand::Rng) {
    let mut small = vec![
        dir("etc"),
        file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
    ];
    for i in 0..300 {
        small.push(file(
            &format!("d{}/f{i}", i % 10),
            format!("{i}").as_bytes(),
        ));
    }
    let big1 = random_bytes(rng, 3 << 20);
    let big2 = random_bytes(rng, 2 << 20);
    let l1 = l.layer(GZ, &small);
    let l2 = l.layer(GZ, &[file("big/one", &big1), file("d1/f1", b"over")]);
    let l3 = l.layer(
        GZ,
        &[file("big/two", &big2), e("d2/.wh.f2", b'0'), dir("d3")],
    );
    l.tag(
        "base",
        l.image(json!({"config": {"Cmd": ["/bin/sh"]}}), vec![l1, l2, l3]),
    );
}

/// A change worth committing: a new incompressible file, a modified and a
/// deleted one, a new directory.
fn change(r: &Path, rng: &mut fastrand::Rng, i: u64) {
    std::fs::write(r.join(format!("new-{i}.bin")), random_bytes(rng, 2 << 20)).expect("write new");
    std::fs::write(
        r.join("etc/passwd"),
        format!("root:x:0:0::/root:/bin/sh\n#{i}\n"),
    )
    .expect("modify");
    let _ = std::fs::remove_file(r.join(format!("d3/f{}", 3 + 10 * (i % 30))));
    std::fs::create_dir_all(r.join(format!("dir-{i}/sub"))).expect("mkdir");
    std::fs::write(r.join(format!("dir-{i}/sub/x")), b"x").expect("write");
}

/// commit killed at spread moments, for a flat or an overlay bundle.
fn commit_killed(overlay: bool) {
    let seed = seed();
    let n = points();
    let kind = if overlay { "overlay" } else { "flat" };
    eprintln!("commit ({kind}) crash points: {n}, BERTH_CRASH_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let t = Scratch::new();
    let l = LayoutBuilder::new(&t.path().join("img"));
    base_image(&l, &mut rng);
    let out = t.path().join("out");
    let store = t.path().join("store");
    let b = t.path().join("b");
    let mut args = vec!["unpack", "--quiet", "--image"];
    let base = l.reference("base");
    args.push(&base);
    if overlay {
        args.extend(["--overlay", "--store", s(&store)]);
    }
    args.push(s(&b));
    ok(&run(&args));
    let rootfs = b.join("rootfs");
    let dest = format!("{}:new", out.display());
    let commit = ["commit", s(&b), "--image", &dest];

    // How long a commit of one change takes (a kill may land past its end).
    change(&rootfs, &mut rng, 1000);
    let took = timed(&commit);
    eprintln!("commit ({kind}) of one change takes {took:?}");
    let span = took.as_micros() as u64 * 6 / 5;

    let mut before = 0;
    for i in 0..n {
        if overlay && !is_mounted(&rootfs) {
            ok(&run(&["mount", s(&b)]));
        }
        change(&rootfs, &mut rng, i);
        let d = Duration::from_micros(rng.u64(..=span));
        let what = format!("commit ({kind}) killed after {d:?} (point {i})");
        kill_after(&commit, d);
        // The layout: the old tag or the new one, never broken.
        check_layout(&out, &what);
        assert_eq!(tags(&out), vec!["new".to_string()], "{what}: tags");
        // The next commit works and holds exactly the changed tree.
        if overlay && !is_mounted(&rootfs) {
            ok(&run(&["mount", s(&b)]));
        }
        ok(&run(&commit));
        if overlay && !is_mounted(&rootfs) {
            ok(&run(&["mount", s(&b)]));
        }
        let check = t.path().join("check");
        ok(&unpack(&dest, &check, &["--quiet"]));
        assert_same_tree(&rootfs, &check.join("rootfs"));
        ok(&run(&["rm", s(&check)]));
        // Leftovers in the bundle: none after a finished commit.
        let left: Vec<String> = names(&b)
            .into_iter()
            .filter(|n| n.contains("tmp-") || n.contains("-old-"))
            .collect();
        assert!(left.is_empty(), "{what}: left in the bundle: {left:?}");
        let trees: Vec<String> = names(&b)
            .into_iter()
            .filter(|n| n.starts_with("berth-tree"))
            .collect();
        assert_eq!(trees.len(), usize::from(!overlay), "{what}: {trees:?}");
        gc_layout(&out, &what);
        if overlay {
            gc_store(&store, &[&b], &what);
        }
        let blobs = names(&out.join("blobs/sha256")).len();
        assert!(blobs > before, "{what}: the commit added no blob");
        before = blobs;
    }
    ok(&run(&["rm", s(&b)]));
    if overlay {
        gc_store(&store, &[], "after rm");
    }
    assert!(mounts_under(t.path()).is_empty(), "mounts left");
}

#[test]
fn commit_of_a_flat_bundle_killed_at_any_moment_leaves_a_valid_layout() {
    commit_killed(false);
}

#[test]
fn commit_of_an_overlay_bundle_killed_at_any_moment_leaves_a_valid_layout_and_store() {
    commit_killed(true);
}

#[test]
fn overlay_unpack_killed_at_any_moment_leaves_no_half_layer_and_gc_cleans_up() {
    let seed = seed();
    let n = points();
    eprintln!("unpack --overlay crash points: {n}, BERTH_CRASH_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let t = Scratch::new();
    let l = LayoutBuilder::new(&t.path().join("img"));
    base_image(&l, &mut rng);
    let base = l.reference("base");
    let flat = t.path().join("flat");
    ok(&unpack(&base, &flat, &["--quiet"]));
    let store = t.path().join("store");
    let b = t.path().join("b");
    let args = [
        "unpack",
        "--quiet",
        "--overlay",
        "--store",
        s(&store),
        "--image",
        &base,
        s(&b),
    ];
    let took = timed(&args);
    eprintln!("unpack --overlay of 3 new layers takes {took:?}");
    ok(&run(&["rm", s(&b)]));
    gc_store(&store, &[], "calibration");
    let span = took.as_micros() as u64 * 6 / 5;

    // A bundle that shares the layers: its references must survive gc.
    let other = t.path().join("other");
    for i in 0..n {
        let keep_other = i % 3 == 2;
        if keep_other {
            ok(&run(&args[..7]
                .iter()
                .copied()
                .chain([s(&other)])
                .collect::<Vec<_>>()));
        }
        let d = Duration::from_micros(rng.u64(..=span));
        let what = format!("unpack --overlay killed after {d:?} (point {i})");
        kill_after(&args, d);
        let finished = b.join("berth-bundle.json").exists();
        let mut live: Vec<&Path> = Vec::new();
        if finished {
            live.push(&b);
        }
        if keep_other {
            live.push(&other);
        }
        gc_store(&store, &live, &what);
        assert!(
            unfinished(t.path()).is_empty(),
            "{what}: gc left {:?}",
            unfinished(t.path())
        );
        let mounts = mounts_under(t.path());
        let want: Vec<PathBuf> = live.iter().map(|p| p.join("rootfs")).collect();
        for m in &mounts {
            assert!(want.contains(m), "{what}: mount left at {}", m.display());
        }
        // The next unpack works and no layer is half there.
        if !finished {
            if b.exists() {
                // Only the empty directory a user made is allowed.
                assert!(names(&b).is_empty(), "{what}: {:?} in b", names(&b));
            }
            ok(&run(&args));
        }
        assert_same_tree(&b.join("rootfs"), &flat.join("rootfs"));
        ok(&run(&["rm", s(&b)]));
        if keep_other {
            assert_same_tree(&other.join("rootfs"), &flat.join("rootfs"));
            ok(&run(&["rm", s(&other)]));
        }
        gc_store(&store, &[], &what);
    }
    assert!(mounts_under(t.path()).is_empty(), "mounts left");
}

/// A flat unpack killed half-way leaves only its temporary directory, which
/// the next unpack of the same bundle removes.
#[test]
fn flat_unpack_killed_leaves_nothing_the_next_unpack_does_not_remove() {
    let seed = seed();
    let n = points();
    eprintln!("unpack (flat) crash points: {n}, BERTH_CRASH_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let t = Scratch::new();
    let l = LayoutBuilder::new(&t.path().join("img"));
    base_image(&l, &mut rng);
    let base = l.reference("base");
    let b = t.path().join("b");
    let args = ["unpack", "--quiet", "--image", &base, s(&b)];
    let took = timed(&args);
    let reference = t.path().join("ref");
    std::fs::rename(&b, &reference).expect("rename");
    let span = took.as_micros() as u64 * 6 / 5;
    for i in 0..n {
        let d = Duration::from_micros(rng.u64(..=span));
        let what = format!("unpack killed after {d:?} (point {i})");
        kill_after(&args, d);
        if !b.join("berth-bundle.json").exists() {
            ok(&run(&args));
        }
        assert!(
            unfinished(t.path()).is_empty(),
            "{what}: left {:?}",
            unfinished(t.path())
        );
        assert_same_tree(&b.join("rootfs"), &reference.join("rootfs"));
        ok(&run(&["rm", s(&b)]));
    }
}
