//! The hostile-layer corpus: each case must end in a clear error or a
//! result contained in the rootfs, and the canaries planted beside the
//! bundle (the targets of every escape attempt) must be unchanged after it.

mod common;
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static N: AtomicU32 = AtomicU32::new(0);

struct Case {
    t: tempfile::TempDir,
    canary: Canaries,
}

impl Case {
    fn new() -> Self {
        let t = tempfile::tempdir().expect("tempdir");
        let canary = Canaries::plant(&t.path().join("canary"));
        Case { t, canary }
    }
    /// Absolute host path of the canary directory, as an attacker would write it.
    fn host(&self, rel: &str) -> String {
        format!("{}/{rel}", self.canary.dir.display())
    }
    fn run(&self, layers: &[&[E]], extra: &[&str]) -> (std::process::Output, PathBuf) {
        self.run_cfg(layers, extra, json!({"config": {}}))
    }
    fn run_cfg(
        &self,
        layers: &[&[E]],
        extra: &[&str],
        cfg: serde_json::Value,
    ) -> (std::process::Output, PathBuf) {
        let l = LayoutBuilder::new(
            &self
                .t
                .path()
                .join(format!("img{}", N.fetch_add(1, Ordering::Relaxed))),
        );
        let descs = layers.iter().map(|es| l.layer(GZ, es)).collect();
        l.tag("x", l.image(cfg, descs));
        let b = self
            .t
            .path()
            .join(format!("bundle{}", N.fetch_add(1, Ordering::Relaxed)));
        let o = unpack(&l.reference("x"), &b, extra);
        self.canary.check();
        if !o.status.success() {
            assert!(!b.exists(), "failed unpack left a bundle");
        }
        (o, b)
    }
}

fn fails_with(o: &std::process::Output, what: &str) {
    assert!(!o.status.success(), "hostile layer was accepted");
    assert!(
        stderr(o).contains(what),
        "error does not say {what:?}: {}",
        stderr(o)
    );
}

fn succeeds(o: &std::process::Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

#[test]
fn dotdot_entry_is_rejected() {
    let c = Case::new();
    let (o, _) = c.run(&[&[file("../../canary/file", b"pwned")]], &[]);
    fails_with(&o, "climbs out of the root filesystem");
    let (o, _) = c.run(&[&[file("a/../../canary/new", b"pwned")]], &[]);
    fails_with(&o, "\"a/../../canary/new\"");
}

#[test]
fn absolute_entry_lands_inside_rootfs() {
    let c = Case::new();
    let target = c.host("file");
    let (o, b) = c.run(&[&[file(&target, b"pwned")]], &[]);
    succeeds(&o);
    let inside = b.join("rootfs").join(target.trim_start_matches('/'));
    assert_eq!(std::fs::read(inside).expect("contained copy"), b"pwned");
}

#[test]
fn write_through_absolute_symlink_is_contained() {
    let c = Case::new();
    let (o, b) = c.run(
        &[&[
            symlink("evil", &c.host("")),
            file("evil/file", b"pwned"),
            file("evil/sub/inner", b"pwned"),
        ]],
        &[],
    );
    succeeds(&o);
    let inside = b
        .join("rootfs")
        .join(c.host("file").trim_start_matches('/'));
    assert_eq!(std::fs::read(inside).expect("contained"), b"pwned");
    // The symlink itself is kept as it was.
    assert_eq!(
        std::fs::read_link(b.join("rootfs/evil")).expect("link"),
        Path::new(&c.host(""))
    );
}

#[test]
fn write_through_relative_symlink_is_contained() {
    let c = Case::new();
    let up = "../".repeat(30);
    let (o, b) = c.run(
        &[&[
            dir("d"),
            symlink("d/evil", &format!("{up}{}", c.host(""))),
            file("d/evil/file", b"pwned"),
        ]],
        &[],
    );
    succeeds(&o);
    assert!(b
        .join("rootfs")
        .join(c.host("file").trim_start_matches('/'))
        .exists());
}

#[test]
fn symlink_planted_in_a_lower_layer_is_contained() {
    let c = Case::new();
    let (o, _) = c.run(
        &[
            &[symlink("etc", &c.host(""))],
            &[file("etc/file", b"pwned"), dir("etc/sub").mode(0o777)],
        ],
        &[],
    );
    succeeds(&o);
}

#[test]
fn symlink_chain_out_of_root_is_contained() {
    let c = Case::new();
    let (o, _) = c.run(
        &[&[
            symlink("a", "b"),
            symlink("b", "c/../../.."),
            file("a/tmp-x", b"x"),
            symlink("s2", &c.host("sub")),
            file("s2/inner", b"pwned"),
        ]],
        &[],
    );
    succeeds(&o);
}

#[test]
fn file_replacing_an_outward_symlink_does_not_write_through_it() {
    let c = Case::new();
    let (o, b) = c.run(
        &[
            &[symlink("f", &c.host("file"))],
            &[file("f", b"pwned").mode(0o777)],
        ],
        &[],
    );
    succeeds(&o);
    assert_eq!(std::fs::read(b.join("rootfs/f")).expect("f"), b"pwned");
    assert!(!std::fs::symlink_metadata(b.join("rootfs/f"))
        .expect("f")
        .file_type()
        .is_symlink());
}

#[test]
fn directory_entry_over_an_outward_symlink_does_not_chmod_the_host() {
    let c = Case::new();
    let (o, _) = c.run(
        &[
            &[symlink("d", &c.host("sub"))],
            &[dir("d").mode(0o777).owner(1234, 1234)],
        ],
        &[],
    );
    succeeds(&o);
}

#[test]
fn hardlink_out_of_the_root_is_refused() {
    let c = Case::new();
    let (o, _) = c.run(&[&[hardlink("h", "../canary/file")]], &[]);
    fails_with(&o, "climbs out of the root filesystem");
    let (o, _) = c.run(&[&[hardlink("h", &c.host("file"))]], &[]);
    fails_with(&o, "hardlink");
    // Through a symlinked directory: resolved inside the root, where the
    // target does not exist.
    let (o, _) = c.run(
        &[&[symlink("ln", &c.host("")), hardlink("h", "ln/file")]],
        &[],
    );
    fails_with(&o, "hardlink");
}

#[test]
fn hardlink_to_an_outward_symlink_links_the_symlink_itself() {
    let c = Case::new();
    let (o, b) = c.run(&[&[symlink("s", &c.host("file")), hardlink("h", "s")]], &[]);
    succeeds(&o);
    assert!(std::fs::symlink_metadata(b.join("rootfs/h"))
        .expect("h")
        .file_type()
        .is_symlink());
}

#[test]
fn whiteouts_through_symlinks_stay_inside() {
    let c = Case::new();
    let (o, _) = c.run(
        &[
            &[symlink("evil", &c.host(""))],
            &[file("evil/.wh.file", b""), file("evil/.wh.sub", b"")],
        ],
        &[],
    );
    succeeds(&o);
    let (o, _) = c.run(
        &[
            &[symlink("evil", &c.host(""))],
            &[file("evil/.wh..wh..opq", b"")],
        ],
        &[],
    );
    succeeds(&o);
    let (o, _) = c.run(&[&[file("../.wh.canary", b"")]], &[]);
    fails_with(&o, "climbs out");
}

#[test]
fn device_nodes_are_skipped_when_rootless() {
    let c = Case::new();
    let (o, b) = c.run(
        &[&[e("dev/sda", b'4').dev(8, 0), e("dev/mem", b'3').dev(1, 1)]],
        &["--rootless"],
    );
    succeeds(&o);
    assert!(
        stderr(&o).contains("skipped device node dev/sda"),
        "{}",
        stderr(&o)
    );
    assert!(!b.join("rootfs/dev/sda").exists() && !b.join("rootfs/dev/mem").exists());
}

#[test]
fn entry_below_a_regular_file_fails_cleanly() {
    let c = Case::new();
    let (o, _) = c.run(&[&[file("f", b"x"), file("f/child", b"y")]], &[]);
    fails_with(&o, "f/child");
}

#[test]
fn passwd_symlink_to_the_host_is_not_read() {
    let c = Case::new();
    // A host file the image points its /etc/passwd at, with a user only it has.
    let host_passwd = c.t.path().join("host-passwd");
    std::fs::write(&host_passwd, b"hostonly:x:4242:4242::/:/bin/sh\n").expect("host passwd");
    let (o, _) = c.run_cfg(
        &[&[
            dir("etc"),
            symlink("etc/passwd", host_passwd.to_str().expect("utf8")),
        ]],
        &[],
        json!({"config": {"User": "hostonly"}}),
    );
    fails_with(&o, "hostonly");
}

#[test]
fn invalid_whiteout_names_are_errors() {
    let c = Case::new();
    let (o, _) = c.run(&[&[file("a/.wh.", b"")]], &[]);
    fails_with(&o, "invalid whiteout");
}

#[test]
fn garbage_layer_is_a_clear_error() {
    let c = Case::new();
    let l = LayoutBuilder::new(&c.t.path().join("img"));
    let mut d = l.blob(&gzip(
        b"this is not a tar archive at all, just some text padding it out",
    ));
    d["mediaType"] = GZ.into();
    l.tag("x", l.image(json!({"config": {}}), vec![d]));
    let b = c.t.path().join("bundle");
    let o = unpack(&l.reference("x"), &b, &[]);
    c.canary.check();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("layer sha256:"), "{}", stderr(&o));
    assert!(!b.exists());
}
