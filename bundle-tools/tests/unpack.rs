//! Unpacking hand-made layouts: every entry type, whiteout case,
//! compression, verification failure and config conversion rule.

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

fn cfg() -> Value {
    json!({"config": {}})
}

fn config_json(bundle: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(bundle.join("config.json")).expect("config.json"))
        .expect("json")
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "berth-bundle failed: {}", stderr(o));
}

#[test]
fn every_entry_type_keeps_its_metadata() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let mut sparse = e("sparse", b'S');
    sparse.sparse = Some((
        vec![(0, vec![b'h'; 512]), (1 << 20, b"tail".to_vec())],
        (1 << 20) + 4,
    ));
    let l1 = l.layer(
        GZ,
        &[
            dir("etc").mode(0o755).mtime(1_500_000_000),
            file("etc/hosts", b"127.0.0.1 localhost\n")
                .owner(1000, 1001)
                .mtime(1_400_000_000),
            file("bin/su", b"#!suid").mode(0o4755),
            dir("tmp").mode(0o1777),
            file("bin/ping", b"ping").mode(0o755).xattr(
                "security.capability",
                &[
                    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            ),
            file("data", b"x").xattr("user.note", b"hello"),
            symlink("abs", "/etc/hosts"),
            symlink("rel", "../etc/hosts").owner(5, 6),
            hardlink("hosts.link", "etc/hosts"),
            e("dev/null", b'3').mode(0o666).dev(1, 3),
            e("dev/loop0", b'4').mode(0o660).dev(7, 0),
            e("fifo", b'6').mode(0o600),
            sparse,
        ],
    );
    let l2 = l.layer(GZ, &[hardlink("lower.link", "etc/hosts")]);
    l.tag("v1", l.image(cfg(), vec![l1, l2]));
    let b = t.path().join("bundle");
    ok(&unpack(&l.reference("v1"), &b, &[]));
    let r = b.join("rootfs");
    let md = |p: &str| std::fs::symlink_metadata(r.join(p)).expect(p);
    assert_eq!(
        std::fs::read(r.join("etc/hosts")).expect("hosts"),
        b"127.0.0.1 localhost\n"
    );
    assert_eq!((md("etc/hosts").uid(), md("etc/hosts").gid()), (1000, 1001));
    assert_eq!(md("etc/hosts").mtime(), 1_400_000_000);
    assert_eq!(
        md("etc").mtime(),
        1_500_000_000,
        "directory mtime set after its children"
    );
    assert_eq!(md("bin/su").mode() & 0o7777, 0o4755);
    assert_eq!(md("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(md("bin").mode() & 0o7777, 0o755, "implied parent");
    assert_eq!(
        xattrs(&r.join("bin/ping"))
            .get("security.capability")
            .map(|v| v.len()),
        Some(20)
    );
    assert_eq!(
        xattrs(&r.join("data"))
            .get("user.note")
            .map(|v| v.as_slice()),
        Some(&b"hello"[..])
    );
    assert_eq!(
        std::fs::read_link(r.join("abs")).expect("abs"),
        Path::new("/etc/hosts")
    );
    assert_eq!(
        std::fs::read_link(r.join("rel")).expect("rel"),
        Path::new("../etc/hosts")
    );
    assert_eq!(md("rel").uid(), 5);
    assert_eq!(md("hosts.link").ino(), md("etc/hosts").ino());
    assert_eq!(
        md("lower.link").ino(),
        md("etc/hosts").ino(),
        "hardlink to a lower layer's file"
    );
    assert!(md("dev/null").file_type().is_char_device());
    assert_eq!(md("dev/null").rdev(), libc::makedev(1, 3));
    assert!(md("dev/loop0").file_type().is_block_device());
    assert!(md("fifo").file_type().is_fifo());
    let sp = md("sparse");
    assert_eq!(sp.len(), (1 << 20) + 4);
    assert!(
        sp.blocks() * 512 < 64 << 10,
        "sparse file stayed sparse ({} blocks)",
        sp.blocks()
    );
    let content = std::fs::read(r.join("sparse")).expect("sparse");
    assert!(content[..512].iter().all(|&b| b == b'h'));
    assert_eq!(&content[1 << 20..], b"tail");
    assert!(content[512..1 << 20].iter().all(|&b| b == 0));
    // Bundle records its source and a tree manifest with stat identity.
    let src: Value =
        serde_json::from_slice(&std::fs::read(b.join("berth-bundle.json")).expect("source"))
            .expect("json");
    assert!(src["manifest"]
        .as_str()
        .expect("manifest")
        .starts_with("sha256:"));
    let tree = std::fs::read_to_string(b.join("berth-tree.jsonl")).expect("tree");
    let hosts: Value = tree
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("line"))
        .find(|v| v["path"] == "/etc/hosts")
        .expect("hosts in tree");
    assert_eq!(hosts["ino"], md("etc/hosts").ino());
    assert_eq!(hosts["uid"], 1000);
    assert_eq!(hosts["nlink"], 3);
}

#[test]
fn whiteouts_follow_the_image_spec() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let l1 = l.layer(
        GZ,
        &[
            file("a/gone", b"1"),
            file("a/kept", b"1"),
            file("opq/old", b"1"),
            dir("opq/olddir"),
            file("opq/olddir/f", b"1"),
            file("deldir/x/y", b"1"),
            file("readd", b"old"),
            file("mixed/old", b"1"),
            file("mixed/sub/old", b"1"),
        ],
    );
    let l2 = l.layer(
        TAR,
        &[
            file("a/.wh.gone", b""),
            file("opq/.wh..wh..opq", b""),
            file("opq/new", b"2"),
            file(".wh.deldir", b""),
            file(".wh.readd", b""),
            file("readd", b"new"),
            // Same layer adds content before the opaque marker: it must survive.
            file("mixed/sub/new", b"2"),
            file("mixed/.wh..wh..opq", b""),
            // A whiteout of something that never existed is a no-op.
            file("nothere/.wh.x", b""),
        ],
    );
    l.tag("v1", l.image(cfg(), vec![l1, l2]));
    let b = t.path().join("bundle");
    ok(&unpack(&l.reference("v1"), &b, &[]));
    let r = b.join("rootfs");
    assert!(!r.join("a/gone").exists());
    assert!(r.join("a/kept").exists());
    assert!(!r.join("opq/old").exists() && !r.join("opq/olddir").exists());
    assert_eq!(std::fs::read(r.join("opq/new")).expect("new"), b"2");
    assert!(!r.join("deldir").exists());
    assert_eq!(std::fs::read(r.join("readd")).expect("readd"), b"new");
    assert!(
        r.join("mixed/sub/new").exists(),
        "same-layer content survives its opaque marker"
    );
    assert!(!r.join("mixed/old").exists() && !r.join("mixed/sub/old").exists());
    assert!(!r.join("nothere/.wh.x").exists());
    let found = describe_tree(&r).keys().any(|k| k.contains(".wh."));
    assert!(!found, "no whiteout file is ever extracted");
}

#[test]
fn zstd_plain_and_nondistributable_layers_unpack() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let a = l.layer(ZST, &[file("z", b"zstd")]);
    let b1 = l.layer(TAR, &[file("p", b"plain")]);
    let mut c = l.layer(GZ, &[file("n", b"nd")]);
    c["mediaType"] = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip".into();
    let mut d = l.layer(GZ, &[file("d", b"docker")]);
    d["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip".into();
    l.tag("v1", l.image(cfg(), vec![a, b1, c, d]));
    let b = t.path().join("bundle");
    ok(&unpack(&l.reference("v1"), &b, &[]));
    for (f, want) in [("z", "zstd"), ("p", "plain"), ("n", "nd"), ("d", "docker")] {
        assert_eq!(
            std::fs::read_to_string(b.join("rootfs").join(f)).expect(f),
            want
        );
    }
}

#[test]
fn unknown_media_type_is_a_clear_error() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let mut a = l.layer(GZ, &[file("z", b"x")]);
    a["mediaType"] = "application/vnd.example.layer.v1.tar+brotli".into();
    l.tag("v1", l.image(cfg(), vec![a]));
    let b = t.path().join("bundle");
    let o = unpack(&l.reference("v1"), &b, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unsupported layer media type"),
        "{}",
        stderr(&o)
    );
    assert!(!b.exists());
}

fn only_bundle_dir_left(parent: &Path) {
    let left: Vec<_> = std::fs::read_dir(parent)
        .expect("readdir")
        .map(|e| e.expect("dirent").file_name())
        .collect();
    assert!(
        left.iter().all(|n| n == "img"),
        "temporary or partial bundle left behind: {left:?}"
    );
}

#[test]
fn corrupt_blob_aborts_with_its_digest_and_leaves_no_bundle() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let good = l.layer(GZ, &[file("a", b"1")]);
    let bad = l.layer(TAR, &[file("b", &[7u8; 4096])]);
    let d = bad["digest"].as_str().expect("digest").to_string();
    // Flip one content byte; size stays the same.
    let p = l.dir.join("blobs/sha256").join(&d[7..]);
    let mut data = std::fs::read(&p).expect("blob");
    data[600] ^= 1;
    std::fs::write(&p, data).expect("corrupt");
    l.tag("v1", l.image(cfg(), vec![good, bad]));
    let b = t.path().join("bundle");
    let o = unpack(&l.reference("v1"), &b, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&d) && stderr(&o).contains("digest mismatch"),
        "{}",
        stderr(&o)
    );
    assert!(!b.exists());
    only_bundle_dir_left(t.path());
}

#[test]
fn size_mismatch_and_missing_blob_fail_cleanly() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let mut a = l.layer(GZ, &[file("a", b"1")]);
    a["size"] = json!(a["size"].as_u64().expect("size") - 1);
    l.tag("short", l.image(cfg(), vec![a]));
    let b = t.path().join("bundle");
    let o = unpack(&l.reference("short"), &b, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("size"), "{}", stderr(&o));
    let missing =
        json!({"mediaType": GZ, "digest": format!("sha256:{}", "a".repeat(64)), "size": 10});
    l.tag("missing", l.image(cfg(), vec![missing]));
    let o = unpack(&l.reference("missing"), &b, &[]);
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
    assert!(!b.exists());
    only_bundle_dir_left(t.path());
}

#[test]
fn decompression_bomb_stops_at_max_size() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let a = l.layer(GZ, &[file("zeros", &vec![0u8; 8 << 20])]);
    assert!(a["size"].as_u64().expect("size") < 100_000, "it is a bomb");
    l.tag("v1", l.image(cfg(), vec![a]));
    let b = t.path().join("bundle");
    let o = unpack(&l.reference("v1"), &b, &["--max-size", "1000000"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--max-size"), "{}", stderr(&o));
    assert!(!b.exists());
    only_bundle_dir_left(t.path());
}

#[test]
fn existing_bundle_is_refused_and_kept() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    l.tag("v1", l.image(cfg(), vec![l.layer(GZ, &[file("a", b"1")])]));
    let b = t.path().join("bundle");
    std::fs::create_dir(&b).expect("mkdir");
    std::fs::write(b.join("precious"), b"x").expect("write");
    let o = unpack(&l.reference("v1"), &b, &[]);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(b.join("precious").exists());
    // An empty directory is replaced.
    std::fs::remove_file(b.join("precious")).expect("rm");
    ok(&unpack(&l.reference("v1"), &b, &[]));
    assert!(b.join("rootfs/a").exists());
}

#[test]
fn sha512_blobs_and_digest_references_work() {
    use sha2::Digest as _;
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let data = gzip(&tar(&[file("s512", b"yes")]));
    let hexd = hex::encode(sha2::Sha512::digest(&data));
    std::fs::create_dir_all(l.dir.join("blobs/sha512")).expect("mkdir");
    std::fs::write(l.dir.join("blobs/sha512").join(&hexd), &data).expect("blob");
    let layer = json!({"mediaType": GZ, "digest": format!("sha512:{hexd}"), "size": data.len()});
    let m = l.image(cfg(), vec![layer]);
    let digest = m["digest"].as_str().expect("digest").to_string();
    l.tag("v1", m);
    let b = t.path().join("bundle");
    ok(&unpack(&format!("{}@{digest}", l.dir.display()), &b, &[]));
    assert_eq!(std::fs::read(b.join("rootfs/s512")).expect("file"), b"yes");
}

#[test]
fn platform_selection_through_nested_indexes() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let mut amd = l.image(
        json!({"config": {}, "os": "linux", "architecture": "amd64"}),
        vec![l.layer(GZ, &[file("arch", b"amd64")])],
    );
    amd["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let mut arm = l.image(
        json!({"config": {}, "os": "linux", "architecture": "arm", "variant": "v7"}),
        vec![l.layer(GZ, &[file("arch", b"armv7")])],
    );
    arm["platform"] = json!({"os": "linux", "architecture": "arm", "variant": "v7"});
    let inner = l.index_blob(vec![arm]);
    l.tag("multi", l.index_blob(vec![inner, amd]));
    let b = t.path().join("host");
    ok(&unpack(&l.reference("multi"), &b, &[]));
    assert_eq!(
        std::fs::read_to_string(b.join("rootfs/arch")).expect("arch"),
        "amd64"
    );
    let b = t.path().join("arm");
    ok(&unpack(
        &l.reference("multi"),
        &b,
        &["--platform", "linux/arm/v7"],
    ));
    assert_eq!(
        std::fs::read_to_string(b.join("rootfs/arch")).expect("arch"),
        "armv7"
    );
    let b = t.path().join("none");
    let o = unpack(&l.reference("multi"), &b, &["--platform", "linux/s390x"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("linux/s390x") && e.contains("linux/arm/v7") && e.contains("linux/amd64"),
        "{e}"
    );
}

#[test]
fn config_conversion_follows_conversion_md() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let base = l.layer(
        GZ,
        &[
            file(
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            ),
            file(
                "etc/group",
                b"root:x:0:\napp:x:1000:\naudio:x:29:app\nvideo:x:44:other,app\n",
            ),
        ],
    );
    let c = json!({
        "created": "2024-01-02T03:04:05Z", "author": "me", "os": "linux", "architecture": "amd64",
        "config": {
            "User": "app", "Entrypoint": ["/bin/entry"], "Cmd": ["--flag", "x"],
            "Env": ["PATH=/custom/bin", "FOO=bar"], "WorkingDir": "/srv",
            "Volumes": {"/data": {}}, "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "StopSignal": "SIGQUIT",
            "Labels": {"org.opencontainers.image.author": "label-wins", "com.example": "1"}
        }
    });
    l.tag("v1", l.image(c, vec![base.clone()]));
    let b = t.path().join("bundle");
    ok(&unpack(&l.reference("v1"), &b, &[]));
    let s = config_json(&b);
    assert_eq!(s["process"]["args"], json!(["/bin/entry", "--flag", "x"]));
    let env: Vec<&str> = s["process"]["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env.contains(&"PATH=/custom/bin") && env.contains(&"FOO=bar"));
    assert!(
        !env.iter().any(|e| e.starts_with("PATH=/usr")),
        "default PATH must not override the image's: {env:?}"
    );
    assert_eq!(s["process"]["cwd"], "/srv");
    assert_eq!(
        s["process"]["user"],
        json!({"uid": 1000, "gid": 1000, "additionalGids": [29, 44]})
    );
    let mounts = s["mounts"].as_array().expect("mounts");
    assert!(mounts.iter().any(|m| m["destination"] == "/data"));
    let a = &s["annotations"];
    assert_eq!(a["org.opencontainers.image.author"], "label-wins");
    assert_eq!(
        a["org.opencontainers.image.created"],
        "2024-01-02T03:04:05Z"
    );
    assert_eq!(a["org.opencontainers.image.stopSignal"], "SIGQUIT");
    assert_eq!(a["org.opencontainers.image.exposedPorts"], "53/udp,80/tcp");
    assert_eq!(a["org.opencontainers.image.architecture"], "amd64");
    assert_eq!(a["com.example"], "1");

    // user:group by name and number; an unknown name is an error.
    for (user, want) in [
        ("app:audio", json!({"uid": 1000, "gid": 29})),
        ("7:8", json!({"uid": 7, "gid": 8})),
    ] {
        l.tag(
            user,
            l.image(json!({"config": {"User": user}}), vec![base.clone()]),
        );
        let b = t.path().join(format!("b-{}", user.replace(':', "_")));
        ok(&unpack(
            &format!(
                "{}@{}",
                l.dir.display(),
                l.image(json!({"config": {"User": user}}), vec![base.clone()])["digest"]
                    .as_str()
                    .expect("d")
            ),
            &b,
            &[],
        ));
        assert_eq!(config_json(&b)["process"]["user"], want, "User {user}");
    }
    let m = l.image(json!({"config": {"User": "nobody"}}), vec![base.clone()]);
    let b = t.path().join("nobody");
    let o = unpack(
        &format!("{}@{}", l.dir.display(), m["digest"].as_str().expect("d")),
        &b,
        &[],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("nobody"),
        "{}",
        stderr(&o)
    );
    assert!(!b.exists());
}

#[test]
fn rootless_keeps_ownership_in_xattr_and_skips_devices() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    l.tag(
        "v1",
        l.image(
            cfg(),
            vec![l.layer(
                GZ,
                &[
                    file("owned", b"x").owner(1000, 100),
                    file("rootowned", b"x"),
                    dir("ro").mode(0o555),
                    file("ro/inner", b"x"),
                    e("dev/null", b'3').dev(1, 3),
                ],
            )],
        ),
    );
    let b = t.path().join("bundle");
    let o = unpack(&l.reference("v1"), &b, &["--rootless"]);
    ok(&o);
    assert!(stderr(&o).contains("skipped device node"), "{}", stderr(&o));
    let r = b.join("rootfs");
    assert!(!r.join("dev/null").exists());
    let me = unsafe_free_euid();
    assert_eq!(
        std::fs::metadata(r.join("owned")).expect("owned").uid(),
        me,
        "no chown when rootless"
    );
    assert_eq!(
        xattrs(&r.join("owned")).get("user.rootlesscontainers"),
        Some(&vec![0x08, 0xe8, 0x07, 0x10, 100])
    );
    assert!(!xattrs(&r.join("rootowned")).contains_key("user.rootlesscontainers"));
    assert_eq!(
        std::fs::metadata(r.join("ro")).expect("ro").mode() & 0o777,
        0o555
    );
    assert!(config_json(&b)["linux"]["namespaces"]
        .as_array()
        .expect("ns")
        .iter()
        .any(|n| n["type"] == "user"));
}

fn unsafe_free_euid() -> u32 {
    std::fs::metadata("/proc/self").expect("proc").uid()
}

#[test]
fn uid_and_gid_maps_shift_ownership() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    l.tag(
        "v1",
        l.image(cfg(), vec![l.layer(GZ, &[file("f", b"x").owner(1, 2)])]),
    );
    let b = t.path().join("bundle");
    ok(&unpack(
        &l.reference("v1"),
        &b,
        &["--uid-map", "0:100000:65536", "--gid-map", "0:200000:65536"],
    ));
    let md = std::fs::metadata(b.join("rootfs/f")).expect("f");
    assert_eq!((md.uid(), md.gid()), (100001, 200002));
    let s = config_json(&b);
    assert_eq!(s["linux"]["uidMappings"][0]["hostID"], 100000);
    let b2 = t.path().join("bad");
    let o = unpack(&l.reference("v1"), &b2, &["--uid-map", "0:100000:1"]);
    assert!(stderr(&o).contains("not covered"), "{}", stderr(&o));
    assert!(!b2.exists());
}

/// Unmounts on drop, so a failing assertion still cleans up.
struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn enospc_leaves_no_bundle() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    // Incompressible content larger than the filesystem it lands on.
    let mut data = vec![0u8; 3 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    l.tag(
        "v1",
        l.image(
            cfg(),
            vec![l.layer(GZ, &[file("small", b"1"), file("big", &data)])],
        ),
    );
    let small = t.path().join("small-fs");
    std::fs::create_dir(&small).expect("mkdir");
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .status();
    if !matches!(st, Ok(s) if s.success()) {
        eprintln!("SKIP: cannot mount a tmpfs (not root?)");
        return;
    }
    let _m = Mount(small.clone());
    let b = small.join("bundle");
    let o = unpack(&l.reference("v1"), &b, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("No space left on device") && stderr(&o).contains("big"),
        "{}",
        stderr(&o)
    );
    let left: Vec<_> = std::fs::read_dir(&small).expect("readdir").collect();
    assert!(
        left.is_empty(),
        "partial bundle left on the full filesystem"
    );
}

#[test]
fn rootless_unpack_works_as_an_unprivileged_user() {
    use std::os::unix::fs::PermissionsExt;
    if !have("setpriv") {
        eprintln!("SKIP: setpriv not installed");
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let l = LayoutBuilder::new(&t.path().join("img"));
    l.tag(
        "v1",
        l.image(
            cfg(),
            vec![
                l.layer(
                    GZ,
                    &[
                        dir("ro").mode(0o555),
                        file("ro/f", b"x").mode(0o444).owner(7, 7),
                        e("dev/null", b'3').dev(1, 3),
                        e("fifo", b'6').owner(7, 7),
                    ],
                ),
                l.layer(
                    GZ,
                    &[
                        file("ro/g", b"later layer writes into a 0555 dir"),
                        file("ro/.wh.f", b""),
                    ],
                ),
            ],
        ),
    );
    // Readable by the unprivileged user whatever umask the test runs with.
    assert!(sh(&format!("chmod -R a+rX {}", l.dir.display()))
        .status
        .success());
    let out = t.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    std::os::unix::fs::chown(&out, Some(65534), Some(65534)).expect("chown");
    let b = out.join("bundle");
    let o = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin(),
            "unpack",
            "--rootless",
            "--image",
        ])
        .arg(l.reference("v1"))
        .arg(&b)
        .output()
        .expect("setpriv");
    assert!(o.status.success(), "{}", stderr(&o));
    let r = b.join("rootfs");
    assert!(!r.join("ro/f").exists());
    assert!(r.join("ro/g").exists());
    let md = std::fs::metadata(r.join("ro")).expect("ro");
    assert_eq!((md.mode() & 0o777, md.uid()), (0o555, 65534));
    // Cleanup of a tree with read-only directories must work for tempdir.
    std::fs::set_permissions(r.join("ro"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn quiet_when_stderr_is_not_a_terminal() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    l.tag(
        "v1",
        l.image(cfg(), vec![l.layer(GZ, &[file("a", &vec![1u8; 1 << 20])])]),
    );
    let o = unpack(&l.reference("v1"), &t.path().join("b"), &[]);
    ok(&o);
    assert!(
        o.stderr.is_empty() && o.stdout.is_empty(),
        "unexpected output: {}",
        stderr(&o)
    );
}

#[test]
fn progress_is_drawn_on_a_terminal() {
    if !have("script") {
        eprintln!("SKIP: script(1) not installed");
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    l.tag(
        "v1",
        l.image(
            cfg(),
            vec![
                l.layer(GZ, &[file("a", b"1")]),
                l.layer(GZ, &[file("b", b"2")]),
            ],
        ),
    );
    let b = t.path().join("b");
    let cmd = format!(
        "{} unpack --image {} {}",
        bin(),
        l.reference("v1"),
        b.display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("layer 2/2"), "no progress on a tty: {out:?}");
    assert!(b.join("rootfs/b").exists());
}

#[test]
fn wrong_diff_id_is_rejected() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let entries = [file("a", b"1")];
    let good = sha256(&tar(&entries));
    let layer = l.layer(GZ, &entries);
    l.tag(
        "good",
        l.image(
            json!({"config": {}, "rootfs": {"type": "layers", "diff_ids": [good]}}),
            vec![layer.clone()],
        ),
    );
    let bad = format!("sha256:{}", "0".repeat(64));
    l.tag(
        "bad",
        l.image(
            json!({"config": {}, "rootfs": {"type": "layers", "diff_ids": [bad]}}),
            vec![layer],
        ),
    );
    ok(&unpack(&l.reference("good"), &t.path().join("g"), &[]));
    let b = t.path().join("b");
    let o = unpack(&l.reference("bad"), &b, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("diff_id"), "{}", stderr(&o));
    assert!(!b.exists());
}

#[test]
fn interrupted_unpack_leaves_a_complete_bundle_or_nothing() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let many: Vec<E> = (0..3000)
        .map(|i| file(&format!("d{}/f{i}", i % 50), &[7u8; 3000]))
        .collect();
    l.tag(
        "v1",
        l.image(cfg(), vec![l.layer(GZ, &many), l.layer(GZ, &many)]),
    );
    for delay_ms in [5u64, 40, 150] {
        let b = t.path().join(format!("b{delay_ms}"));
        let mut child = std::process::Command::new(bin())
            .args(["unpack", "--image", &l.reference("v1")])
            .arg(&b)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let st = child.wait().expect("wait");
        if st.success() {
            assert!(
                b.join("config.json").exists() && b.join("rootfs/d49/f2999").exists(),
                "complete"
            );
        } else {
            assert!(!b.exists(), "interrupted unpack left {}", b.display());
        }
        let temps: Vec<_> = std::fs::read_dir(t.path())
            .expect("readdir")
            .map(|e| {
                e.expect("dirent")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| n.contains("berth-unpack"))
            .collect();
        assert!(temps.is_empty(), "temporary directories left: {temps:?}");
    }
}

#[test]
fn directory_times_survive_later_layers_and_keep_fractions() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let l1 = l.layer(
        GZ,
        &[
            dir("d").mtime(1_500_000_000),
            file("d/old", b"1"),
            dir("w").mtime(1_500_000_100),
            file("w/gone", b"1"),
            file("frac", b"x").pax("mtime", "1600000000.25"),
            dir("fd").pax("mtime", "1600000001.5"),
        ],
    );
    // Layer 2 writes into d and deletes from w without entries for them.
    let l2 = l.layer(GZ, &[file("d/new", b"2"), file("w/.wh.gone", b"")]);
    l.tag("v1", l.image(cfg(), vec![l1, l2]));
    let b = t.path().join("bundle");
    ok(&unpack(&l.reference("v1"), &b, &[]));
    let md = |p: &str| std::fs::symlink_metadata(b.join("rootfs").join(p)).expect(p);
    assert_eq!(md("d").mtime(), 1_500_000_000, "written into by layer 2");
    assert_eq!(md("w").mtime(), 1_500_000_100, "whiteout in layer 2");
    assert_eq!(
        (md("frac").mtime(), md("frac").mtime_nsec()),
        (1_600_000_000, 250_000_000)
    );
    assert_eq!(
        (md("fd").mtime(), md("fd").mtime_nsec()),
        (1_600_000_001, 500_000_000)
    );
}

#[test]
fn rootless_file_replacing_a_directory_keeps_its_own_mode() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let l1 = l.layer(GZ, &[dir("x").mode(0o555), file("x/in", b"1")]);
    let l2 = l.layer(GZ, &[file("x", b"now a file").mode(0o640)]);
    l.tag("v1", l.image(cfg(), vec![l1, l2]));
    let b = t.path().join("bundle");
    ok(&unpack(&l.reference("v1"), &b, &["--rootless"]));
    let md = std::fs::symlink_metadata(b.join("rootfs/x")).expect("x");
    assert!(md.is_file());
    assert_eq!(md.mode() & 0o7777, 0o640);
}

#[test]
fn rootless_unprivileged_unpack_keeps_xattrs_it_cannot_set() {
    use std::os::unix::fs::PermissionsExt;
    if !have("setpriv") {
        eprintln!("SKIP: setpriv not installed");
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let cap = [
        1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    l.tag(
        "v1",
        l.image(
            cfg(),
            vec![l.layer(
                GZ,
                &[
                    file("bin/ping", b"ping")
                        .mode(0o755)
                        .xattr("security.capability", &cap),
                    file("t", b"x").xattr("trusted.note", b"secret"),
                    file("u", b"x").xattr("user.ok", b"fine"),
                ],
            )],
        ),
    );
    assert!(sh(&format!("chmod -R a+rX {}", l.dir.display()))
        .status
        .success());
    let out = t.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    std::os::unix::fs::chown(&out, Some(65534), Some(65534)).expect("chown");
    let b = out.join("bundle");
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()])
        .args(["unpack", "--rootless", "--image"])
        .arg(l.reference("v1"))
        .arg(&b)
        .output()
        .expect("setpriv");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("security.capability") && err.contains("trusted.note"),
        "{err}"
    );
    let r = b.join("rootfs");
    assert_eq!(
        xattrs(&r.join("bin/ping")).get("user.berth.xattr.security.capability"),
        Some(&cap.to_vec())
    );
    assert_eq!(
        xattrs(&r.join("t")).get("user.berth.xattr.trusted.note"),
        Some(&b"secret".to_vec())
    );
    assert_eq!(xattrs(&r.join("u")).get("user.ok"), Some(&b"fine".to_vec()));
}

#[test]
fn converted_config_sets_home_groups_and_a_writable_root() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let base = l.layer(
        GZ,
        &[
            file(
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            ),
            file("etc/group", b"root:x:0:\napp:x:1000:\naudio:x:29:app\n"),
        ],
    );
    let cases = [
        (json!({}), json!({"uid": 0, "gid": 0}), "HOME=/root"),
        (
            json!({"User": "1000"}),
            json!({"uid": 1000, "gid": 1000, "additionalGids": [29]}),
            "HOME=/home/app",
        ),
        (
            json!({"User": "4242"}),
            json!({"uid": 4242, "gid": 0}),
            "HOME=/",
        ),
        (
            json!({"User": "app", "Env": ["HOME=/custom"]}),
            json!({"uid": 1000, "gid": 1000, "additionalGids": [29]}),
            "HOME=/custom",
        ),
    ];
    for (i, (c, user, home)) in cases.into_iter().enumerate() {
        let tag = format!("t{i}");
        l.tag(&tag, l.image(json!({ "config": c }), vec![base.clone()]));
        let b = t.path().join(&tag);
        ok(&unpack(&l.reference(&tag), &b, &[]));
        let s = config_json(&b);
        assert_eq!(s["process"]["user"], user, "case {i}");
        let env: Vec<&str> = s["process"]["env"]
            .as_array()
            .expect("env")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            env.iter()
                .filter(|e| e.starts_with("HOME="))
                .collect::<Vec<_>>(),
            vec![&home],
            "case {i}: {env:?}"
        );
        assert_eq!(s["root"]["readonly"], false, "bundles are writable");
    }
}

/// Rootless bundles are flat: an overlay mounted in the user's own
/// namespace would not outlive berth-bundle, so `--overlay --rootless` is
/// refused up front, naming the way out, and leaves nothing behind.
#[test]
fn rootless_overlay_is_refused_and_says_to_unpack_flat() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    l.tag(
        "v1",
        l.image(serde_json::json!({}), vec![l.layer(GZ, &[file("f", b"x")])]),
    );
    let store = t.path().join("store");
    let b = t.path().join("b");
    let o = unpack(
        &l.reference("v1"),
        &b,
        &[
            "--rootless",
            "--overlay",
            "--store",
            store.to_str().expect("utf8"),
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("--overlay is not available rootless") && err.contains("unpack flat"),
        "{err}"
    );
    assert!(!b.exists() && !store.exists(), "nothing left behind");
    let names: Vec<_> = std::fs::read_dir(t.path())
        .expect("readdir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("img")]);
}
