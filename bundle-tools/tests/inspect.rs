//! ls / inspect / history, and importing a hand-made legacy docker-save
//! archive (layer directories, `repositories`, a symlinked duplicate layer).

mod common;
use common::*;
use serde_json::json;

fn image_with_history(l: &LayoutBuilder) -> serde_json::Value {
    let a = l.layer(GZ, &[file("a", b"1")]);
    let b = l.layer(ZST, &[file("b", b"2")]);
    l.image(
        json!({
            "created": "2024-05-06T07:08:09Z",
            "config": {"Cmd": ["/bin/sh"]},
            "history": [
                {"created": "2024-05-06T07:08:00Z", "created_by": "ADD rootfs.tar /"},
                {"created": "2024-05-06T07:08:01Z", "created_by": "ENV FOO=bar", "empty_layer": true},
                {"created": "2024-05-06T07:08:02Z", "created_by": "RUN make install"}
            ]
        }),
        vec![a, b],
    )
}

#[test]
fn ls_lists_tags_digests_sizes_and_platforms() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let m = image_with_history(&l);
    let digest = m["digest"].as_str().expect("digest").to_string();
    l.tag("v1", m.clone());
    let mut arm = m.clone();
    arm["platform"] = json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
    l.tag("multi", l.index_blob(vec![arm]));
    let o = run(&["ls", l.dir.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let v1 = out.lines().find(|x| x.starts_with("v1 ")).expect("v1 row");
    assert!(
        v1.contains(&digest[7..19]) && v1.contains("linux/amd64"),
        "{v1}"
    );
    assert!(v1.contains("B"), "size shown: {v1}");
    let multi = out
        .lines()
        .find(|x| x.starts_with("multi "))
        .expect("multi row");
    assert!(
        multi.contains("linux/arm64/v8") && multi.contains("index"),
        "{multi}"
    );
}

#[test]
fn inspect_shows_manifest_config_and_layers() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let m = image_with_history(&l);
    l.tag("v1", m.clone());
    let o = run(&["inspect", "--json", &l.reference("v1")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("inspect --json is JSON");
    assert_eq!(v["digest"], m["digest"]);
    assert_eq!(v["layers"].as_array().expect("layers").len(), 2);
    assert_eq!(v["layers"][1]["mediaType"], ZST);
    assert_eq!(v["config"]["config"]["Cmd"], json!(["/bin/sh"]));
    let o = run(&["inspect", &l.reference("v1")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Layers:       2") && out.contains("/bin/sh"),
        "{out}"
    );
}

#[test]
fn history_marks_empty_layers() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    let m = image_with_history(&l);
    l.tag("v1", m);
    let o = run(&["history", &l.reference("v1")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[1].contains("sha256:") && lines[1].contains("ADD rootfs.tar"),
        "{out}"
    );
    assert!(
        lines[2].contains("<empty layer>") && lines[2].contains("ENV FOO=bar"),
        "{out}"
    );
    assert!(
        lines[3].contains("sha256:") && lines[3].contains("RUN make install"),
        "{out}"
    );
}

#[test]
fn legacy_docker_save_archive_imports_and_unpacks() {
    let t = tempfile::tempdir().expect("tempdir");
    let l1 = tar(&[file("etc/one", b"1"), file("gone", b"x")]);
    let l2 = gzip(&tar(&[file("etc/two", b"2"), file(".wh.gone", b"")]));
    let cfg = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]}, "rootfs": {"type": "layers", "diff_ids": []}})).expect("json");
    let manifest = serde_json::to_vec(&json!([{
        "Config": "cfg.json", "RepoTags": ["img:latest"],
        "Layers": ["aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"]
    }]))
    .expect("json");
    let mut dup = symlink("ccc/layer.tar", "../aaa/layer.tar");
    dup.mode = 0o777;
    let archive = tar(&[
        file("cfg.json", &cfg),
        dir("aaa"),
        file("aaa/layer.tar", &l1),
        file("aaa/VERSION", b"1.0"),
        dir("bbb"),
        file("bbb/layer.tar", &l2),
        dir("ccc"),
        dup,
        file("manifest.json", &manifest),
        file("repositories", br#"{"img":{"latest":"aaa"}}"#),
    ]);
    let f = t.path().join("save.tar");
    std::fs::write(&f, archive).expect("write archive");
    let layout = t.path().join("layout");
    let o = run(&[
        "import",
        f.to_str().expect("utf8"),
        &format!("{}:saved", layout.display()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["inspect", "--json", &format!("{}:saved", layout.display())]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let layers = v["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 3);
    assert_eq!(layers[0]["mediaType"], TAR);
    assert_eq!(layers[1]["mediaType"], GZ);
    assert_eq!(
        layers[0]["digest"], layers[2]["digest"],
        "the symlinked duplicate is the same blob"
    );
    let b = t.path().join("bundle");
    let o = unpack(&format!("{}:saved", layout.display()), &b, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Layer 3 re-adds `gone`: same content as layer 1.
    assert_eq!(std::fs::read(b.join("rootfs/etc/two")).expect("two"), b"2");
    assert!(b.join("rootfs/gone").exists());
    assert!(!layout.read_dir().expect("layout").any(|e| e
        .expect("dirent")
        .file_name()
        .to_string_lossy()
        .starts_with(".import")));
}

#[test]
fn import_rejects_what_is_not_an_image_archive() {
    let t = tempfile::tempdir().expect("tempdir");
    let f = t.path().join("x.tar");
    std::fs::write(&f, tar(&[file("hello", b"world")])).expect("write");
    let o = run(&[
        "import",
        f.to_str().expect("utf8"),
        &format!("{}:x", t.path().join("l").display()),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("neither an OCI archive"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_text_file_is_not_an_archive_and_is_not_quoted() {
    let t = tempfile::tempdir().expect("tempdir");
    let f = t.path().join("notes.txt");
    let text = "# a text file, long enough to fill a tar header block\n".repeat(40);
    std::fs::write(&f, &text).expect("write");
    for args in [
        vec![
            "import".to_string(),
            f.display().to_string(),
            format!("{}:x", t.path().join("l").display()),
        ],
        vec![
            "unpack".into(),
            "--image".into(),
            format!("oci-archive:{}", f.display()),
            t.path().join("b").display().to_string(),
        ],
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&a);
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(e.contains("not an image archive"), "{e}");
        assert!(!e.contains("long enough") && e.len() < 300, "{e}");
    }
}

#[test]
fn errors_name_things_without_debug_output() {
    let t = tempfile::tempdir().expect("tempdir");
    let l = LayoutBuilder::new(&t.path().join("img"));
    l.tag(
        "v1",
        l.image(
            json!({"config": {}}),
            vec![l.layer(GZ, &[file("f", b"x").owner(5, 5)])],
        ),
    );
    let o = run(&["inspect", &l.reference("nope")]);
    let e = stderr(&o);
    assert!(
        e.contains("no image tagged \"nope\"") && e.contains("v1"),
        "{e}"
    );
    let o = unpack(
        &l.reference("v1"),
        &t.path().join("b"),
        &["--uid-map", "0:100000:1"],
    );
    let e = stderr(&o);
    assert!(
        e.contains("id map 0:100000:1") && !e.contains("IdRange"),
        "{e}"
    );
}
