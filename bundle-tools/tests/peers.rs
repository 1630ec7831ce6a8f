//! Proven against real peers: images built with Debian's umoci and copied
//! with skopeo; `berth-bundle unpack` and `umoci unpack` of the same image
//! must give identical trees, and the bundle must run under runc (and berth
//! once its runtime exists).

mod common;
use common::*;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tools_present(tools: &[&str]) -> bool {
    for t in tools {
        if !have(t) {
            eprintln!("SKIP: {t} is not installed (run `make deps`)");
            return false;
        }
    }
    true
}

fn must(cmd: &mut Command) {
    let o = cmd.output().expect("spawn");
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn set_xattr(p: &Path, k: &str, v: &[u8]) {
    let c = CString::new(p.as_os_str().as_bytes()).expect("path");
    let k = CString::new(k).expect("key");
    // SAFETY: valid NUL-terminated strings and a value pointer/len pair.
    let r = unsafe { libc::lsetxattr(c.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    assert_eq!(r, 0, "setxattr {}", p.display());
}

/// A two-layer image built by umoci from a directory: every entry type in
/// layer 1; deletions (whiteouts), a hardlink to a lower file and metadata
/// changes in layer 2. Returns the layout path.
fn umoci_image(t: &Path) -> PathBuf {
    let l = t.join("layout");
    let b = t.join("work");
    must(Command::new("umoci").arg("init").arg("--layout").arg(&l));
    must(
        Command::new("umoci")
            .arg("new")
            .arg("--image")
            .arg(format!("{}:t", l.display())),
    );
    must(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:t", l.display()))
            .arg(&b),
    );
    let r = b.join("rootfs");
    let script = format!(
        r#"set -e; R={r}
        mkdir -p $R/bin $R/etc $R/d/sub $R/d/gone $R/dev $R/tmp $R/usr/lib
        cp /bin/busybox $R/bin/busybox; chmod 4755 $R/bin/busybox
        ln -s busybox $R/bin/sh; ln -s /bin/busybox $R/bin/abs-echo
        printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n' > $R/etc/passwd
        printf 'root:x:0:\napp:x:1000:\n' > $R/etc/group
        echo hi > $R/d/sub/f; ln $R/d/sub/f $R/d/hl; chown 1000:1001 $R/d/sub/f
        echo bye > $R/d/gone/x; echo x > $R/d/del; chmod 1777 $R/tmp; chmod 2750 $R/usr/lib
        mkfifo $R/fifo; mknod $R/dev/null c 1 3; mknod $R/dev/loop9 b 7 9
        truncate -s 5M $R/sparse; printf tail >> $R/sparse
        ln -s ../d/sub/f $R/usr/rel; ln -s /nonexistent $R/dangling
        for i in $(seq 1 200); do echo $i > $R/usr/lib/file$i; done
        touch -d 2001-02-03 $R/d/del"#,
        r = r.display()
    );
    must(Command::new("sh").arg("-c").arg(&script));
    set_xattr(&r.join("d/sub/f"), "user.note", b"hello");
    if have("setcap") {
        must(
            Command::new("setcap")
                .arg("cap_net_raw+ep")
                .arg(r.join("d/hl")),
        );
    }
    must(
        Command::new("umoci")
            .arg("repack")
            .arg("--image")
            .arg(format!("{}:t", l.display()))
            .arg(&b),
    );
    let script = format!(
        r#"set -e; R={r}
        rm -rf $R/d/gone $R/d/del $R/fifo; ln $R/bin/busybox $R/bin/ls
        chmod 700 $R/etc; chown -h 5:5 $R/usr/rel; echo new > $R/d/sub/added
        rm $R/usr/lib/file1*"#,
        r = r.display()
    );
    must(Command::new("sh").arg("-c").arg(&script));
    must(
        Command::new("umoci")
            .arg("repack")
            .arg("--image")
            .arg(format!("{}:t", l.display()))
            .arg(&b),
    );
    must(
        Command::new("umoci")
            .args([
                "config",
                "--config.cmd",
                "/bin/busybox",
                "--config.cmd",
                "echo",
                "--config.cmd",
                "hello-from-bundle",
            ])
            .arg("--image")
            .arg(format!("{}:t", l.display())),
    );
    l
}

#[test]
fn berth_bundle_and_umoci_unpack_identical_trees() {
    if !tools_present(&["umoci", "busybox"]) {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let l = umoci_image(t.path());
    let image = format!("{}:t", l.display());
    let u = t.path().join("umoci-bundle");
    must(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(&image)
            .arg(&u),
    );
    let b = t.path().join("berth-bundle");
    let o = unpack(&image, &b, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same_tree(&u.join("rootfs"), &b.join("rootfs"));
    // Spot checks that the fixture really exercises what the walk compares.
    let tree = describe_tree(&b.join("rootfs"));
    assert!(
        tree["/d/sub/f"].contains("user.note"),
        "{}",
        tree["/d/sub/f"]
    );
    assert!(tree["/bin/busybox"].starts_with("file 4755"));
    assert!(!tree.contains_key("/d/gone") && !tree.contains_key("/usr/lib/file10"));
    assert!(tree.contains_key("/usr/lib/file2"));
}

#[test]
fn rootless_unpack_matches_umoci_rootless() {
    if !tools_present(&["umoci", "busybox"]) {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let l = umoci_image(t.path());
    let image = format!("{}:t", l.display());
    let u = t.path().join("umoci-bundle");
    must(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(&image)
            .arg(&u),
    );
    let b = t.path().join("berth-bundle");
    let o = unpack(&image, &b, &["--rootless"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // umoci puts empty files where device nodes were; berth-bundle skips
    // them (with a note). Everything else, the ownership xattrs included,
    // must be the same.
    for dev in ["dev/null", "dev/loop9"] {
        assert!(!b.join("rootfs").join(dev).exists());
        std::fs::remove_file(u.join("rootfs").join(dev)).expect("umoci placeholder");
    }
    assert_same_tree(&u.join("rootfs"), &b.join("rootfs"));
    let x = xattrs(&b.join("rootfs/d/sub/f"));
    assert_eq!(
        x.get("user.rootlesscontainers"),
        Some(&vec![0x08, 0xe8, 0x07, 0x10, 0xe9, 0x07])
    );
}

#[test]
fn skopeo_archives_import_and_unpack_like_the_layout() {
    if !tools_present(&["umoci", "skopeo", "busybox"]) {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let l = umoci_image(t.path());
    let image = format!("{}:t", l.display());
    let reference = t.path().join("ref");
    assert!(unpack(&image, &reference, &[]).status.success());

    let dock = t.path().join("docker.tar");
    must(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{image}"))
            .arg(format!("docker-archive:{}:img:latest", dock.display())),
    );
    let oci = t.path().join("oci.tar");
    must(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{image}"))
            .arg(format!("oci-archive:{}:img", oci.display())),
    );

    // import FILE LAYOUT:TAG, then unpack from the new layout.
    let l2 = t.path().join("imported");
    let o = run(&[
        "import",
        dock.to_str().expect("utf8"),
        &format!("{}:fromdocker", l2.display()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[
        "import",
        oci.to_str().expect("utf8"),
        &format!("{}:fromoci", l2.display()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for tag in ["fromdocker", "fromoci"] {
        let b = t.path().join(format!("b-{tag}"));
        let o = unpack(&format!("{}:{tag}", l2.display()), &b, &[]);
        assert!(o.status.success(), "{tag}: {}", stderr(&o));
        assert_same_tree(&reference.join("rootfs"), &b.join("rootfs"));
    }
    // Archives read directly by unpack.
    for src in [
        format!("docker-archive:{}", dock.display()),
        format!("oci-archive:{}", oci.display()),
    ] {
        let b = t
            .path()
            .join(format!("direct-{}", src.split(':').next().unwrap_or("x")));
        let o = unpack(&src, &b, &[]);
        assert!(o.status.success(), "{src}: {}", stderr(&o));
        assert_same_tree(&reference.join("rootfs"), &b.join("rootfs"));
        let leftovers: Vec<_> = std::fs::read_dir(&b)
            .expect("bundle")
            .map(|e| e.expect("dirent").file_name())
            .collect();
        assert!(
            !leftovers.iter().any(|n| n == "image-layout"),
            "temporary layout left in bundle"
        );
    }
    let o = run(&["ls", l2.to_str().expect("utf8")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("fromdocker") && out.contains("fromoci") && out.contains("linux/amd64"),
        "{out}"
    );
}

/// Prepare a bundle to run non-interactively, printing a marker.
fn runnable_bundle(t: &Path) -> Option<PathBuf> {
    if !tools_present(&["umoci", "busybox"]) {
        return None;
    }
    let l = umoci_image(t);
    let b = t.join("bundle");
    let o = unpack(&format!("{}:t", l.display()), &b, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = b.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&p).expect("config")).expect("json");
    assert_eq!(
        cfg["process"]["args"],
        serde_json::json!(["/bin/busybox", "echo", "hello-from-bundle"])
    );
    cfg["process"]["terminal"] = false.into();
    std::fs::write(&p, serde_json::to_vec(&cfg).expect("json")).expect("write config");
    Some(b)
}

/// `RUNTIME run` of a freshly unpacked bundle prints its greeting; the
/// container is deleted whatever happens.
fn assert_bundle_runs(runtime: &Path) {
    let t = tempfile::tempdir().expect("tempdir");
    let Some(b) = runnable_bundle(t.path()) else {
        return;
    };
    let id = format!("berth-bundle-test-{}", std::process::id());
    let state = t.path().join("state");
    let o = Command::new(runtime)
        .arg("--root")
        .arg(&state)
        .args(["run", "-b"])
        .arg(&b)
        .arg(&id)
        .output()
        .expect("run the runtime");
    let _ = Command::new(runtime)
        .arg("--root")
        .arg(&state)
        .args(["delete", "-f", &id])
        .output();
    assert!(
        o.status.success(),
        "{} run failed: {}",
        runtime.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "hello-from-bundle"
    );
}

#[test]
fn bundle_runs_under_runc() {
    if !tools_present(&["runc"]) {
        return;
    }
    assert_bundle_runs(Path::new("runc"));
}

#[test]
fn bundle_runs_under_berth() {
    let berth = std::env::var("BERTH")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/x86_64-unknown-linux-gnu/release/berth")
        });
    if !berth.exists() {
        eprintln!(
            "SKIP: no berth binary at {} (build it or set $BERTH)",
            berth.display()
        );
        return;
    }
    let v = Command::new(&berth)
        .arg("--version")
        .output()
        .expect("berth --version");
    if v.stdout.is_empty() {
        eprintln!(
            "SKIP: {} does not implement its CLI yet (no --version output)",
            berth.display()
        );
        return;
    }
    assert_bundle_runs(&berth);
}
