//! commit round trips: unpack → change (add, modify, delete files and
//! directories, make a directory opaque, rename, hardlinks, xattrs, type
//! changes, ownership) → commit → unpack gives exactly the changed tree,
//! for flat and overlay bundles; umoci reads the result the same way.

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "berth-bundle failed: {}", stderr(o));
}

fn base_image(l: &LayoutBuilder) {
    let layer = l.layer(
        GZ,
        &[
            dir("a"),
            file("a/f1", b"one"),
            file("a/f2", b"two"),
            dir("opq"),
            file("opq/x", b"x"),
            file("opq/sub/y", b"y"),
            file("gone/z", b"z"),
            file("typ1", b"file, becomes a dir"),
            file("typ2/c", b"dir, becomes a file"),
            symlink("typ3", "a/f1"),
            file("ren", b"renamed later"),
            file("hl1", b"linked later"),
            file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
        ],
    );
    let top = l.layer(GZ, &[file("a/top", b"second layer")]);
    l.tag(
        "base",
        l.image(json!({"config": {"Cmd": ["/bin/sh"]}}), vec![layer, top]),
    );
}

/// Every kind of change, by shell, inside the rootfs `r`.
fn change(r: &Path) {
    let script = format!(
        r#"set -e; cd {r}
        echo new > added; mkdir -p newdir/deep; echo d > newdir/deep/f
        echo mod >> a/f1; chown 1234:5678 a/f1; chmod 600 a/f1
        rm a/f2; rm -r gone
        rm -rf opq; mkdir opq; echo n > opq/new
        rm typ1; mkdir typ1; echo in > typ1/in
        rm -r typ2; echo nowfile > typ2
        rm typ3; echo file > typ3
        mv ren renamed
        ln hl1 hl2
        ln -s a/f1 newlink
        mkfifo fifo"#,
        r = r.display()
    );
    let o = sh(&script);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    set_xattr(&r.join("added"), "user.note", b"hello");
}

fn set_xattr(p: &Path, k: &str, v: &[u8]) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
    let k = std::ffi::CString::new(k).expect("key");
    // SAFETY: valid NUL-terminated strings and a value pointer/len pair.
    let r = unsafe { libc::lsetxattr(c.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    assert_eq!(r, 0, "setxattr {}", p.display());
}

fn check_links(r: &Path) {
    let a = std::fs::metadata(r.join("hl1")).expect("hl1");
    let b = std::fs::metadata(r.join("hl2")).expect("hl2");
    assert_eq!(a.ino(), b.ino(), "hardlink kept");
    let f1 = std::fs::metadata(r.join("a/f1")).expect("f1");
    assert_eq!((f1.uid(), f1.gid(), f1.mode() & 0o777), (1234, 5678, 0o600));
}

/// The digests of `tag`'s layers.
fn layers(layout: &Path, tag: &str) -> Vec<String> {
    let idx: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index"))
            .expect("json");
    let m = idx["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag}"));
    let d = m["digest"].as_str().expect("digest");
    let man: Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&d[7..])).expect("manifest"),
    )
    .expect("json");
    man["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("d").to_string())
        .collect()
}

/// Names in a layer blob (any compression).
fn layer_names(layout: &Path, digest: &str) -> Vec<String> {
    let o = sh(&format!(
        "f={}/blobs/sha256/{}; (gzip -dc $f 2>/dev/null || zstd -dc $f 2>/dev/null || cat $f) | tar -t",
        layout.display(),
        &digest[7..]
    ));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn flat_commit_round_trips_every_change() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    base_image(&l);
    let b = t.path().join("b");
    ok(&unpack(&l.reference("base"), &b, &[]));
    change(&b.join("rootfs"));
    let o = run(&[
        "commit",
        b.to_str().expect("utf8"),
        "--image",
        &l.reference("c1"),
        "-m",
        "first",
        "--author",
        "me",
    ]);
    ok(&o);
    let b2 = t.path().join("b2");
    ok(&unpack(&l.reference("c1"), &b2, &[]));
    assert_same_tree(&b.join("rootfs"), &b2.join("rootfs"));
    check_links(&b2.join("rootfs"));
    let names = layer_names(&l.dir, layers(&l.dir, "c1").last().expect("layer"));
    // A directory emptied and refilled: an opaque marker, or (when the new
    // directory got the old one's inode, so a flat diff cannot tell it was
    // replaced) a whiteout for each old entry; both give the same tree,
    // which assert_same_tree checked.
    let has = |n: &str| names.iter().any(|x| x == n);
    assert!(
        has("opq/.wh..wh..opq") || (has("opq/.wh.x") && has("opq/.wh.sub")),
        "opq/ neither opaque nor whited out: {names:?}"
    );
    for want in [
        "opq/", ".wh.gone", "a/.wh.f2", ".wh.ren", "renamed", "typ1/in",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.starts_with("a/top")),
        "unchanged file committed: {names:?}"
    );

    // A second commit holds only what changed since the first.
    std::fs::write(b.join("rootfs/newdir/second"), b"2").expect("write");
    ok(&run(&[
        "commit",
        b.to_str().expect("utf8"),
        "--image",
        &l.reference("c2"),
        "--compress",
        "zstd",
    ]));
    let names = layer_names(&l.dir, layers(&l.dir, "c2").last().expect("layer"));
    assert_eq!(names, vec!["newdir/", "newdir/second"]);
    let b3 = t.path().join("b3");
    ok(&unpack(&l.reference("c2"), &b3, &[]));
    assert_same_tree(&b.join("rootfs"), &b3.join("rootfs"));

    // History and config.
    let o = run(&["inspect", "--json", &l.reference("c2")]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    let h = v["config"]["history"].as_array().expect("history");
    assert_eq!(h[h.len() - 2]["comment"], "first");
    assert_eq!(h[h.len() - 2]["author"], "me");
    assert_eq!(
        v["config"]["rootfs"]["diff_ids"]
            .as_array()
            .expect("ids")
            .len(),
        4
    );

    if have("umoci") {
        let u = t.path().join("umoci");
        // c1 (umoci 0.4.7 reads gzip layers only, not c2's zstd one).
        let st = Command::new("umoci")
            .args(["unpack", "--image", &l.reference("c1")])
            .arg(&u)
            .output()
            .expect("umoci");
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        assert_same_tree(&b2.join("rootfs"), &u.join("rootfs"));
        check_links(&u.join("rootfs"));
    }
}

#[test]
fn commit_is_reproducible_and_applies_changes() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    base_image(&l);
    let mut digests = Vec::new();
    for i in 0..2 {
        let b = t.path().join(format!("b{i}"));
        ok(&unpack(&l.reference("base"), &b, &[]));
        let r = b.join("rootfs");
        let o = sh(&format!(
            "set -e; cd {}; echo same > a/new; rm a/f2; touch -h -d @1700000000 a/new a; touch -d @1700000000 .",
            r.display()
        ));
        assert!(o.status.success());
        if i == 1 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        ok(&run(&[
            "commit",
            b.to_str().expect("utf8"),
            "--image",
            &l.reference(&format!("r{i}")),
            "--change",
            "ENV FOO=bar",
            "--change",
            "CMD [\"/bin/echo\", \"hi\"]",
        ]));
        digests.push(layers(&l.dir, &format!("r{i}")).pop().expect("layer"));
    }
    assert_eq!(digests[0], digests[1], "same change, different commit time");
    let o = run(&["inspect", "--json", &l.reference("r1")]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["config"]["config"]["Cmd"], json!(["/bin/echo", "hi"]));
    assert!(v["config"]["config"]["Env"]
        .as_array()
        .expect("env")
        .contains(&json!("FOO=bar")));
    let o = run(&[
        "commit",
        t.path().join("b0").to_str().expect("utf8"),
        "--image",
        &l.reference("x"),
        "--change",
        "RUN make",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("unsupported instruction"),
        "{}",
        stderr(&o)
    );
}

/// Removes an overlay bundle (unmounting it) whatever the test's outcome.
/// podman with cgroupfs puts every conmon in `libpod_parent/conmon` of each
/// hierarchy and never removes it: removed on drop (also on a panic) when
/// no hierarchy had `libpod_parent` before.
struct LibpodParent(Vec<PathBuf>);
impl LibpodParent {
    fn claim() -> LibpodParent {
        let dirs: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .chain([PathBuf::from("/sys/fs/cgroup")])
            .map(|d| d.join("libpod_parent"))
            .collect();
        if dirs.iter().any(|d| d.exists()) {
            LibpodParent(Vec::new())
        } else {
            LibpodParent(dirs)
        }
    }
}
impl Drop for LibpodParent {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d.join("conmon"));
            let _ = std::fs::remove_dir(d);
        }
    }
}

struct Bundle(PathBuf);
impl Drop for Bundle {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = Command::new(bin()).arg("rm").arg(&self.0).output();
            let _ = Command::new("umount").arg(self.0.join("rootfs")).output();
        }
    }
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

#[test]
fn overlay_bundles_share_the_store_and_commit_their_upper_dir() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    base_image(&l);
    let store = t.path().join("store");
    let s = store.to_str().expect("utf8");
    // Two unpacks at once share the layers: each is extracted once.
    let kids: Vec<_> = (0..2)
        .map(|i| {
            Command::new(bin())
                .args([
                    "unpack",
                    "--overlay",
                    "--store",
                    s,
                    "--image",
                    &l.reference("base"),
                ])
                .arg(t.path().join(format!("o{i}")))
                .output()
        })
        .collect();
    let _g: Vec<Bundle> = (0..3)
        .map(|i| Bundle(t.path().join(format!("o{i}"))))
        .collect();
    for k in kids {
        ok(&k.expect("spawn"));
    }
    assert_eq!(
        count(&store.join("layers/sha256")),
        2,
        "two layers, once each"
    );
    let o0 = t.path().join("o0");
    assert!(o0.join("rootfs/a/top").exists(), "mounted");
    // A bundle of a cached image costs a mount.
    let start = std::time::Instant::now();
    ok(&run(&[
        "unpack",
        "--overlay",
        "--store",
        s,
        "--image",
        &l.reference("base"),
        t.path().join("o2").to_str().expect("utf8"),
    ]));
    assert!(start.elapsed().as_millis() < 1000, "{:?}", start.elapsed());

    change(&o0.join("rootfs"));
    ok(&run(&[
        "commit",
        o0.to_str().expect("utf8"),
        "--image",
        &l.reference("oc"),
    ]));
    let flat = t.path().join("flat");
    ok(&unpack(&l.reference("oc"), &flat, &[]));
    assert_same_tree(&o0.join("rootfs"), &flat.join("rootfs"));
    check_links(&flat.join("rootfs"));
    assert_eq!(
        count(&o0.join("upper")),
        0,
        "upper emptied into a store layer"
    );
    assert_eq!(count(&store.join("layers/sha256")), 3);

    // Second commit: only the new change.
    std::fs::write(o0.join("rootfs/a/later"), b"l").expect("write");
    ok(&run(&[
        "commit",
        o0.to_str().expect("utf8"),
        "--image",
        &l.reference("oc2"),
    ]));
    let names = layer_names(&l.dir, layers(&l.dir, "oc2").last().expect("layer"));
    assert_eq!(names, vec!["a/", "a/later"]);

    // umount / mount, then rm refuses while a container of it lives.
    ok(&run(&["umount", o0.to_str().expect("utf8")]));
    assert!(!o0.join("rootfs/a/later").exists());
    ok(&run(&["mount", o0.to_str().expect("utf8")]));
    assert!(o0.join("rootfs/a/later").exists());
    let state = t.path().join("state");
    std::fs::create_dir_all(state.join("c1")).expect("mkdir");
    let me = std::process::id();
    let start_time = std::fs::read_to_string(format!("/proc/{me}/stat")).expect("stat");
    let start_time: u64 = start_time
        .rsplit(')')
        .next()
        .expect("fields")
        .split_whitespace()
        .nth(19)
        .expect("starttime")
        .parse()
        .expect("number");
    std::fs::write(
        state.join("c1/state.json"),
        serde_json::to_vec(&json!({"bundle": o0, "pid": me, "start_time": start_time}))
            .expect("json"),
    )
    .expect("state");
    let o = run(&[
        "rm",
        "--state-root",
        state.to_str().expect("utf8"),
        o0.to_str().expect("utf8"),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("c1"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(state.join("c1")).expect("rm state");
    for i in 0..3 {
        ok(&run(&[
            "rm",
            "--state-root",
            state.to_str().expect("utf8"),
            t.path().join(format!("o{i}")).to_str().expect("utf8"),
        ]));
    }
    assert_eq!(
        count(&store.join("layers/sha256")),
        0,
        "every layer released"
    );
    assert!(!o0.exists());
}

/// Found by the crash test: a commit whose layer equals one already in the
/// overlay stack (an empty commit twice; a commit killed after the bundle
/// record switched, committed again) must not stack one store directory
/// twice (overlayfs refuses that with ELOOP).
#[test]
fn overlay_commits_of_the_same_layer_twice_still_mount() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    base_image(&l);
    let store = t.path().join("store");
    let b = t.path().join("b");
    let _g = Bundle(b.clone());
    let bs = b.to_str().expect("utf8");
    ok(&run(&[
        "unpack",
        "--overlay",
        "--store",
        store.to_str().expect("utf8"),
        "--image",
        &l.reference("base"),
        bs,
    ]));
    for tag in ["e1", "e2"] {
        ok(&run(&["commit", bs, "--image", &l.reference(tag)]));
    }
    std::fs::write(b.join("rootfs/added"), b"x").expect("write");
    ok(&run(&["commit", bs, "--image", &l.reference("c1")]));
    ok(&run(&["commit", bs, "--image", &l.reference("e3")]));
    ok(&run(&["umount", bs]));
    ok(&run(&["mount", bs]));
    let flat = t.path().join("flat");
    ok(&unpack(&l.reference("e3"), &flat, &[]));
    assert_same_tree(&b.join("rootfs"), &flat.join("rootfs"));
    assert_eq!(
        layers(&l.dir, "e3").len(),
        6,
        "every commit is a layer of the image"
    );
}

#[test]
fn overlay_with_many_layers_mounts() {
    // 80 layers: absolute store paths would not fit mount(2)'s one page.
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let ls: Vec<Value> = (0..80)
        .map(|i| l.layer(TAR, &[file(&format!("f{i}"), format!("{i}").as_bytes())]))
        .collect();
    l.tag("many", l.image(json!({"config": {}}), ls));
    let b = t.path().join("b");
    let _g = Bundle(b.clone());
    ok(&run(&[
        "unpack",
        "--overlay",
        "--store",
        t.path().join("s").to_str().expect("utf8"),
        "--image",
        &l.reference("many"),
        b.to_str().expect("utf8"),
    ]));
    assert_eq!(std::fs::read(b.join("rootfs/f0")).expect("bottom"), b"0");
    assert_eq!(std::fs::read(b.join("rootfs/f79")).expect("top"), b"79");
}

#[test]
fn image_management_tag_rmi_gc_config_export() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    base_image(&l);
    let b = t.path().join("b");
    ok(&unpack(&l.reference("base"), &b, &[]));
    std::fs::write(b.join("rootfs/extra"), b"x").expect("write");
    ok(&run(&[
        "commit",
        b.to_str().expect("utf8"),
        "--image",
        &l.reference("c"),
    ]));
    ok(&run(&["tag", &l.reference("c"), "again"]));
    ok(&run(&[
        "config",
        "--image",
        &l.reference("again"),
        "--entrypoint",
        "/bin/sh",
        "--cmd",
        "-c",
        "--cmd",
        "echo hi",
        "--env",
        "A=1",
        "--workdir",
        "/srv",
        "--user",
        "7",
        "--label",
        "k=v",
        "--port",
        "8080",
        "--volume",
        "/data",
        "--stop-signal",
        "SIGTERM",
    ]));
    let o = run(&["inspect", &l.reference("again")]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    for want in [
        "Entrypoint:   [\"/bin/sh\"]",
        "WorkingDir:   /srv",
        "Volumes:      /data",
        "Labels:       k=v",
        "ExposedPorts: 8080/tcp",
        "StopSignal:   SIGTERM",
        "User:         7",
    ] {
        assert!(out.contains(want), "{want:?} not in\n{out}");
    }
    let o = run(&["history", &l.reference("again")]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.lines().last().expect("row").contains("<empty layer>"),
        "{out}"
    );
    // Untag the commit; gc then removes what only it reached.
    ok(&run(&["rmi", &l.reference("c")]));
    ok(&run(&["rm", &l.reference("again")]));
    let before = count(&l.dir.join("blobs/sha256"));
    ok(&run(&["gc", l.dir.to_str().expect("utf8")]));
    let after = count(&l.dir.join("blobs/sha256"));
    assert!(after < before, "{before} -> {after}");
    ok(&unpack(&l.reference("base"), &t.path().join("still"), &[]));

    // Export both formats, read them back directly and by import.
    ok(&run(&[
        "export",
        &l.reference("base"),
        &format!("docker-archive:{}:web:v1", t.path().join("d.tar").display()),
    ]));
    ok(&run(&[
        "export",
        &l.reference("base"),
        &format!("oci-archive:{}:v2", t.path().join("o.tar").display()),
    ]));
    let o = run(&[
        "ls",
        &format!("docker-archive:{}", t.path().join("d.tar").display()),
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("web:v1"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    ok(&run(&[
        "history",
        &format!("docker-archive:{}:web:v1", t.path().join("d.tar").display()),
    ]));
    ok(&run(&[
        "inspect",
        &format!("oci-archive:{}:v2", t.path().join("o.tar").display()),
    ]));
    let l2 = t.path().join("l2");
    ok(&run(&[
        "import",
        t.path().join("d.tar").to_str().expect("utf8"),
        l2.to_str().expect("utf8"),
    ]));
    let x = t.path().join("x");
    ok(&unpack(&format!("{}:web:v1", l2.display()), &x, &[]));
    assert_same_tree(&t.path().join("still/rootfs"), &x.join("rootfs"));
}

#[test]
fn skopeo_and_podman_read_what_berth_bundle_writes() {
    if !have("skopeo") {
        eprintln!("SKIP: skopeo is not installed (make deps)");
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    base_image(&l);
    let b = t.path().join("b");
    ok(&unpack(&l.reference("base"), &b, &[]));
    change(&b.join("rootfs"));
    for tag in ["gz", "zst"] {
        if tag == "zst" {
            std::fs::write(b.join("rootfs/z"), b"zstd layer").expect("write");
        }
        ok(&run(&[
            "commit",
            b.to_str().expect("utf8"),
            "--image",
            &l.reference(tag),
            "--compress",
            if tag == "gz" { "gzip" } else { "zstd" },
        ]));
        let o = Command::new("skopeo")
            .args(["inspect", &format!("oci:{}", l.reference(tag))])
            .output()
            .expect("skopeo");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(
            v["Layers"].as_array().expect("layers").len(),
            if tag == "gz" { 3 } else { 4 }
        );
        let dst = t.path().join("copy");
        let o = Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                &format!("oci:{}", l.reference(tag)),
                &format!("oci:{}:{tag}", dst.display()),
            ])
            .output()
            .expect("skopeo");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let u = t.path().join(format!("u-{tag}"));
        ok(&unpack(&format!("{}:{tag}", dst.display()), &u, &[]));
        assert_same_tree(&b.join("rootfs"), &u.join("rootfs"));
    }
    if !have("podman") {
        eprintln!("SKIP: podman is not installed (make deps)");
        return;
    }
    // A private podman: its own root, runroot, tmpdir; cgroupfs.
    let _conmon_cgroups = LibpodParent::claim();
    let arch = t.path().join("web.tar");
    ok(&run(&[
        "export",
        &l.reference("zst"),
        &format!("docker-archive:{}:localhost/web:v1", arch.display()),
    ]));
    let p = |args: &[&str]| {
        Command::new("podman")
            .arg("--root")
            .arg(t.path().join("pr"))
            .arg("--runroot")
            .arg(t.path().join("prr"))
            .arg("--tmpdir")
            .arg(t.path().join("pt"))
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
                "--storage-driver",
                "vfs",
            ])
            .args(args)
            .output()
            .expect("podman")
    };
    let o = p(&["load", "-i", arch.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = p(&["image", "inspect", "localhost/web:v1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        v[0]["RootFS"]["Layers"].as_array().expect("layers").len(),
        4
    );
    let o = p(&["run", "--rm", "--net=none", "localhost/web:v1", "/bin/true"]);
    let _ = p(&["system", "reset", "-f"]);
    let _ = sh(&format!(
        "umount -R {}/pr 2>/dev/null; umount -R {}/prr 2>/dev/null",
        t.path().display(),
        t.path().display()
    ));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    if err.contains("setrlimit") {
        eprintln!(
            "SKIP: podman run: this host refuses podman's rlimits ({})",
            err.trim()
        );
    }
}
