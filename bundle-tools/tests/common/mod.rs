//! Shared test helpers: a raw tar writer (so hostile names reach the
//! extractor unfiltered), hand-made OCI layouts, tree comparison, canaries.
#![allow(dead_code)]

use sha2::Digest as _;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth-bundle")
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("spawn berth-bundle")
}

pub fn unpack(image: &str, bundle: &Path, extra: &[&str]) -> Output {
    let mut a = vec!["unpack", "--image", image];
    a.extend_from_slice(extra);
    let b = bundle.to_str().expect("utf8 path");
    a.push(b);
    run(&a)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn sh(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh")
}

pub fn have(tool: &str) -> bool {
    sh(&format!("command -v {tool}")).status.success()
}

// ---------------------------------------------------------------- tar

/// GNU sparse segments (offset, data) and the file's real size.
pub type Sparse = (Vec<(u64, Vec<u8>)>, u64);

#[derive(Clone)]
pub struct E {
    pub name: Vec<u8>,
    pub kind: u8,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub data: Vec<u8>,
    pub link: Vec<u8>,
    pub dev: (u32, u32),
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// GNU sparse: (offset, data) segments and the real size.
    pub sparse: Option<Sparse>,
    /// Extra PAX records (key, value), e.g. a sub-second `mtime`.
    pub pax: Vec<(String, Vec<u8>)>,
}

pub fn e(name: &str, kind: u8) -> E {
    E {
        name: name.as_bytes().to_vec(),
        kind,
        mode: if kind == b'5' { 0o755 } else { 0o644 },
        uid: 0,
        gid: 0,
        mtime: 1_600_000_000,
        data: vec![],
        link: vec![],
        dev: (0, 0),
        xattrs: vec![],
        sparse: None,
        pax: vec![],
    }
}
pub fn file(name: &str, data: &[u8]) -> E {
    let mut x = e(name, b'0');
    x.data = data.to_vec();
    x
}
pub fn dir(name: &str) -> E {
    e(name, b'5')
}
pub fn symlink(name: &str, target: &str) -> E {
    let mut x = e(name, b'2');
    x.mode = 0o777;
    x.link = target.as_bytes().to_vec();
    x
}
pub fn hardlink(name: &str, target: &str) -> E {
    let mut x = e(name, b'1');
    x.link = target.as_bytes().to_vec();
    x
}
impl E {
    pub fn mode(mut self, m: u32) -> Self {
        self.mode = m;
        self
    }
    pub fn owner(mut self, u: u32, g: u32) -> Self {
        self.uid = u;
        self.gid = g;
        self
    }
    pub fn mtime(mut self, t: u64) -> Self {
        self.mtime = t;
        self
    }
    pub fn xattr(mut self, k: &str, v: &[u8]) -> Self {
        self.xattrs.push((k.into(), v.to_vec()));
        self
    }
    pub fn pax(mut self, k: &str, v: &str) -> Self {
        self.pax.push((k.into(), v.as_bytes().to_vec()));
        self
    }
    pub fn dev(mut self, ma: u32, mi: u32) -> Self {
        self.dev = (ma, mi);
        self
    }
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}\0", v, width = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

fn header(name: &[u8], kind: u8, size: u64, x: &E) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], x.mode as u64);
    octal(&mut h[108..116], x.uid as u64);
    octal(&mut h[116..124], x.gid as u64);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], x.mtime);
    h[156] = kind;
    let l = x.link.len().min(100);
    h[157..157 + l].copy_from_slice(&x.link[..l]);
    if kind == b'S' {
        h[257..265].copy_from_slice(b"ustar  \0");
    } else {
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
    }
    octal(&mut h[329..337], x.dev.0 as u64);
    octal(&mut h[337..345], x.dev.1 as u64);
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(512) {
        out.push(0);
    }
}

fn pax_record(k: &str, v: &[u8]) -> Vec<u8> {
    let body_len = k.len() + v.len() + 3;
    let mut len = body_len + body_len.to_string().len();
    if len.to_string().len() != body_len.to_string().len() {
        len += 1;
    }
    let mut r = format!("{len} {k}=").into_bytes();
    r.extend_from_slice(v);
    r.push(b'\n');
    r
}

/// Serialise entries as a tar stream; long names and xattrs go into PAX.
pub fn tar(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for x in entries {
        let mut pax = Vec::new();
        if x.name.len() > 100 {
            pax.extend(pax_record("path", &x.name));
        }
        if x.link.len() > 100 {
            pax.extend(pax_record("linkpath", &x.link));
        }
        for (k, v) in &x.xattrs {
            pax.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
        }
        for (k, v) in &x.pax {
            pax.extend(pax_record(k, v));
        }
        if !pax.is_empty() {
            out.extend_from_slice(&header(
                b"PaxHeaders/x",
                b'x',
                pax.len() as u64,
                &e("p", b'x'),
            ));
            out.extend_from_slice(&pax);
            pad(&mut out);
        }
        if let Some((segs, real)) = &x.sparse {
            let stored: u64 = segs.iter().map(|s| s.1.len() as u64).sum();
            let mut h = header(&x.name, b'S', stored, x);
            for (i, (off, d)) in segs.iter().enumerate().take(4) {
                let b = 386 + i * 24;
                octal(&mut h[b..b + 12], *off);
                octal(&mut h[b + 12..b + 24], d.len() as u64);
            }
            octal(&mut h[483..495], *real);
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| b as u32).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            out.extend_from_slice(&h);
            for (_, d) in segs {
                out.extend_from_slice(d);
            }
            pad(&mut out);
            continue;
        }
        out.extend_from_slice(&header(&x.name, x.kind, x.data.len() as u64, x));
        out.extend_from_slice(&x.data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

pub fn gzip(b: &[u8]) -> Vec<u8> {
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    g.write_all(b).expect("gzip");
    g.finish().expect("gzip")
}

pub fn zstd(b: &[u8]) -> Vec<u8> {
    zstd::encode_all(b, 3).expect("zstd")
}

// ------------------------------------------------------------- layouts

pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

pub struct LayoutBuilder {
    pub dir: PathBuf,
}

pub const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const ZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

impl LayoutBuilder {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir layout");
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("oci-layout");
        std::fs::write(
            dir.join("index.json"),
            br#"{"schemaVersion":2,"manifests":[]}"#,
        )
        .expect("index");
        LayoutBuilder {
            dir: dir.to_path_buf(),
        }
    }

    pub fn blob(&self, b: &[u8]) -> serde_json::Value {
        let d = sha256(b);
        std::fs::write(self.dir.join("blobs/sha256").join(&d[7..]), b).expect("write blob");
        serde_json::json!({"digest": d, "size": b.len()})
    }

    /// A layer of the given media type from tar entries.
    pub fn layer(&self, mt: &str, entries: &[E]) -> serde_json::Value {
        let t = tar(entries);
        let data = match mt {
            GZ => gzip(&t),
            ZST => zstd(&t),
            _ => t,
        };
        let mut d = self.blob(&data);
        d["mediaType"] = mt.into();
        d
    }

    /// Write config + manifest; returns the manifest descriptor.
    pub fn image(
        &self,
        config: serde_json::Value,
        layers: Vec<serde_json::Value>,
    ) -> serde_json::Value {
        let mut cfg = config;
        if cfg.get("architecture").is_none() {
            cfg["architecture"] = "amd64".into();
            cfg["os"] = "linux".into();
        }
        let mut c = self.blob(&serde_json::to_vec(&cfg).expect("json"));
        c["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": c, "layers": layers,
        });
        let mut d = self.blob(&serde_json::to_vec(&m).expect("json"));
        d["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
        d
    }

    pub fn index_blob(&self, manifests: Vec<serde_json::Value>) -> serde_json::Value {
        let i = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
        let mut d = self.blob(&serde_json::to_vec(&i).expect("json"));
        d["mediaType"] = "application/vnd.oci.image.index.v1+json".into();
        d
    }

    pub fn tag(&self, tag: &str, mut desc: serde_json::Value) {
        desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
        let p = self.dir.join("index.json");
        let mut idx: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&p).expect("read index")).expect("index json");
        idx["manifests"]
            .as_array_mut()
            .expect("manifests")
            .push(desc);
        std::fs::write(&p, serde_json::to_vec(&idx).expect("json")).expect("write index");
    }

    pub fn reference(&self, tag: &str) -> String {
        format!("{}:{tag}", self.dir.display())
    }
}

// ------------------------------------------------------- tree compare

pub fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).expect("path");
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 65536];
    // SAFETY: buffer pointer/len are valid; the kernel writes at most len bytes.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return out;
    }
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
    {
        let k = CString::new(name).expect("xattr name");
        let mut v = vec![0u8; 65536];
        // SAFETY: as above, for the value buffer.
        let m = unsafe { libc::lgetxattr(c.as_ptr(), k.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        if m >= 0 {
            v.truncate(m as usize);
            out.insert(String::from_utf8_lossy(name).into_owned(), v);
        }
    }
    out
}

/// One line per entry: type, mode, owner, size, content hash, xattrs, link.
pub fn describe_tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, String>) {
        let md = std::fs::symlink_metadata(p).expect("lstat");
        let ft = md.file_type();
        let rel = format!("/{}", p.strip_prefix(root).expect("prefix").display());
        let (kind, extra) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_symlink() {
            (
                "symlink",
                std::fs::read_link(p)
                    .expect("readlink")
                    .display()
                    .to_string(),
            )
        } else if ft.is_file() {
            ("file", sha256(&std::fs::read(p).expect("read")))
        } else if ft.is_char_device() || ft.is_block_device() {
            ("dev", format!("{:x}", md.rdev()))
        } else {
            ("other", String::new())
        };
        let size = if ft.is_file() { md.size() } else { 0 };
        let x = xattrs(p);
        out.insert(
            rel,
            format!(
                "{kind} {:o} {}:{} {size} {extra} {x:?}",
                md.mode() & 0o7777,
                md.uid(),
                md.gid()
            ),
        );
        if ft.is_dir() {
            for e in std::fs::read_dir(p).expect("readdir") {
                walk(root, &e.expect("dirent").path(), out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

pub fn assert_same_tree(a: &Path, b: &Path) {
    let ta = describe_tree(a);
    let tb = describe_tree(b);
    let mut diffs = Vec::new();
    for (k, v) in &ta {
        match tb.get(k) {
            Some(w) if w == v => {}
            Some(w) => diffs.push(format!("{k}: {v} != {w}")),
            None => diffs.push(format!("{k}: only in {}", a.display())),
        }
    }
    for k in tb.keys().filter(|k| !ta.contains_key(*k)) {
        diffs.push(format!("{k}: only in {}", b.display()));
    }
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
    assert!(ta.len() > 1, "compared an empty tree");
}

// ------------------------------------------------------------ canaries

/// Files and directories outside the bundle that hostile layers aim at.
pub struct Canaries {
    pub dir: PathBuf,
    snapshot: BTreeMap<String, String>,
}

impl Canaries {
    pub fn plant(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("sub")).expect("canary dir");
        std::fs::write(dir.join("file"), b"canary").expect("canary file");
        std::fs::write(dir.join("sub/inner"), b"inner").expect("canary file");
        let snapshot = Self::snap(dir);
        Canaries {
            dir: dir.to_path_buf(),
            snapshot,
        }
    }
    fn snap(dir: &Path) -> BTreeMap<String, String> {
        let mut m = describe_tree(dir);
        // mtimes matter too: a write that restores content must still show.
        for (k, v) in m.iter_mut() {
            let p = dir.join(k.trim_start_matches('/'));
            let md = std::fs::symlink_metadata(&p).expect("lstat canary");
            v.push_str(&format!(" m{} c{}", md.mtime(), md.ctime()));
        }
        m
    }
    pub fn check(&self) {
        assert_eq!(
            Self::snap(&self.dir),
            self.snapshot,
            "a canary outside the bundle changed"
        );
    }
}
