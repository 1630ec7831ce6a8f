//! The test image, written by hand as a docker-archive (the `docker save`
//! format, which `docker load`, `ctr image import` and `podman load` all
//! read): one uncompressed layer with Debian's static busybox and its applet
//! symlinks, an image config, and `manifest.json`. No registry involved.

use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

/// What goes into one image's config.
pub struct ImageSpec<'a> {
    pub tag: &'a str,
    pub user: Option<&'a str>,
    pub workdir: Option<&'a str>,
    pub env: &'a [&'a str],
}

fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).expect("tar path");
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    // A fixed time: the same inputs give the same layer digest.
    h.set_mtime(1_700_000_000);
    h
}

/// The layer: a tar of the root filesystem.
pub fn layer(busybox: &Path) -> std::io::Result<Vec<u8>> {
    let bin = std::fs::read(busybox)?;
    // Through the harness's spawn/wait (its reaper takes every child).
    let list = crate::proc::Cmd::new(&[&busybox.to_string_lossy(), "--list"]).run();
    if list.code != 0 || list.stdout.is_empty() {
        return Err(std::io::Error::other(format!(
            "{}: exit {}: {}",
            list.line, list.code, list.stderr
        )));
    }
    let applets = list.stdout;
    let mut t = tar::Builder::new(Vec::new());
    for (d, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("var", 0o755),
    ] {
        let mut h = header(&format!("{d}/"), tar::EntryType::Directory, mode, 0);
        h.set_cksum();
        t.append(&h, std::io::empty())?;
    }
    let mut h = header(
        "bin/busybox",
        tar::EntryType::Regular,
        0o755,
        bin.len() as u64,
    );
    h.set_cksum();
    t.append(&h, bin.as_slice())?;
    for a in applets.split_whitespace().filter(|a| *a != "busybox") {
        let mut h = header(&format!("bin/{a}"), tar::EntryType::Symlink, 0o777, 0);
        h.set_link_name("busybox")?;
        h.set_cksum();
        t.append(&h, std::io::empty())?;
    }
    for (p, body) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("etc/hostname", "berth-callers\n"),
    ] {
        let mut h = header(p, tar::EntryType::Regular, 0o644, body.len() as u64);
        h.set_cksum();
        t.append(&h, body.as_bytes())?;
    }
    t.into_inner()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The image config (image-spec config.md; Docker reads the same fields).
pub fn config(spec: &ImageSpec, diff_id: &str) -> Vec<u8> {
    let mut env = vec!["PATH=/usr/local/bin:/usr/bin:/bin".to_string()];
    env.extend(spec.env.iter().map(|s| s.to_string()));
    let mut cfg = json!({
        "Env": env,
        "Cmd": ["sh"],
    });
    if let Some(u) = spec.user {
        cfg["User"] = json!(u);
    }
    if let Some(w) = spec.workdir {
        cfg["WorkingDir"] = json!(w);
    }
    let v = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "berth-callers: busybox-static by hand"}],
    });
    serde_json::to_vec(&v).unwrap()
}

/// Write a docker-archive of `spec` (layer given) to `out`.
pub fn write_archive(out: &Path, layer: &[u8], spec: &ImageSpec) -> std::io::Result<()> {
    let diff_id = sha256_hex(layer);
    let cfg = config(spec, &diff_id);
    let cfg_id = sha256_hex(&cfg);
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("{cfg_id}.json"),
        "RepoTags": [spec.tag],
        "Layers": [format!("{diff_id}/layer.tar")],
    }]))
    .unwrap();
    let (name, tag) = spec.tag.rsplit_once(':').unwrap_or((spec.tag, "latest"));
    let repositories = serde_json::to_vec(&json!({ name: { tag: diff_id } })).unwrap();
    let f = std::fs::File::create(out)?;
    let mut t = tar::Builder::new(f);
    let mut dir = header(&format!("{diff_id}/"), tar::EntryType::Directory, 0o755, 0);
    dir.set_cksum();
    t.append(&dir, std::io::empty())?;
    for (p, body) in [
        (format!("{diff_id}/layer.tar"), layer),
        (format!("{diff_id}/VERSION"), b"1.0".as_slice()),
        (format!("{cfg_id}.json"), cfg.as_slice()),
        ("manifest.json".to_string(), manifest.as_slice()),
        ("repositories".to_string(), repositories.as_slice()),
    ] {
        let mut h = header(&p, tar::EntryType::Regular, 0o644, body.len() as u64);
        h.set_cksum();
        t.append(&h, body)?;
    }
    t.into_inner()?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_the_layer_and_the_user() {
        let spec = ImageSpec {
            tag: "localhost/x:1",
            user: Some("65534:65534"),
            workdir: Some("/tmp"),
            env: &["A=b"],
        };
        let v: serde_json::Value = serde_json::from_slice(&config(&spec, "ab")).unwrap();
        assert_eq!(v["rootfs"]["diff_ids"][0], "sha256:ab");
        assert_eq!(v["config"]["User"], "65534:65534");
        assert_eq!(v["config"]["WorkingDir"], "/tmp");
        assert_eq!(v["config"]["Env"][1], "A=b");
    }

    #[test]
    fn archive_lists_manifest_config_and_layer() {
        let dir = std::env::temp_dir().join(format!("berth-callers-img-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("a.tar");
        let layer = b"not really a tar".to_vec();
        let spec = ImageSpec {
            tag: "localhost/x:1",
            user: None,
            workdir: None,
            env: &[],
        };
        write_archive(&out, &layer, &spec).unwrap();
        let mut names = Vec::new();
        let mut manifest = String::new();
        let mut a = tar::Archive::new(std::fs::File::open(&out).unwrap());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            if p == "manifest.json" {
                std::io::Read::read_to_string(&mut e, &mut manifest).unwrap();
            }
            names.push(p);
        }
        std::fs::remove_dir_all(&dir).unwrap();
        let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        let layer_path = m[0]["Layers"][0].as_str().unwrap();
        let cfg_path = m[0]["Config"].as_str().unwrap();
        assert!(names.iter().any(|n| n == layer_path));
        assert!(names.iter().any(|n| n == cfg_path));
        assert_eq!(m[0]["RepoTags"][0], "localhost/x:1");
        assert_eq!(layer_path, format!("{}/layer.tar", sha256_hex(&layer)));
    }

    /// The layer is made while the harness's reaper thread waits for any
    /// child: listing busybox's applets must not lose its child to it
    /// (the suite once stopped at start-up with `No child processes`).
    #[test]
    fn layer_is_made_while_the_reaper_runs() {
        crate::proc::init();
        for _ in 0..30 {
            let l = layer(std::path::Path::new("/bin/busybox")).unwrap();
            assert!(l.len() > 1 << 20);
        }
    }
}
