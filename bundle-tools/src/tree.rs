//! The manifest of an unpacked tree that `commit` diffs against: one JSON
//! line per entry with its metadata and stat identity (inode, ctime). Content
//! is not hashed: the kernel bumps ctime on every change and a copy gets a
//! new inode, so (ino, ctime) equal means unchanged.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::path::PathBuf;

#[derive(Serialize)]
struct Entry<'a> {
    path: String,
    #[serde(rename = "type")]
    kind: &'a str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rdev: Option<u64>,
    ino: u64,
    nlink: u64,
    ctime_ns: i128,
}

/// Escape non-UTF-8 bytes and backslashes as `\ooo` so every name round-trips.
pub fn escape(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.contains('\\') => s.to_string(),
        _ => {
            let mut out = String::new();
            for chunk in b.utf8_chunks() {
                for ch in chunk.valid().chars() {
                    if ch == '\\' {
                        out.push_str("\\134");
                    } else {
                        out.push(ch);
                    }
                }
                for byte in chunk.invalid() {
                    out.push_str(&format!("\\{byte:03o}"));
                }
            }
            out
        }
    }
}

/// What `commit` needs of a manifest line.
#[derive(Deserialize, Clone, Debug)]
pub struct Recorded {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub ino: u64,
    pub ctime_ns: i128,
}

/// Undo [`escape`].
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Read a manifest: relative path (the root is "") → its record.
pub fn read_manifest(path: &Path) -> Result<HashMap<PathBuf, Recorded>> {
    use std::io::BufRead;
    let f = fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut out = HashMap::new();
    for (i, line) in std::io::BufReader::with_capacity(1 << 20, f)
        .lines()
        .enumerate()
    {
        let line = line.with_context(|| format!("read {}", path.display()))?;
        let r: Recorded = serde_json::from_str(&line)
            .with_context(|| format!("{}: line {}: invalid entry", path.display(), i + 1))?;
        let raw = unescape(r.path.trim_start_matches('/'));
        let rel = PathBuf::from(std::ffi::OsStr::from_bytes(&raw));
        out.insert(rel, r);
    }
    Ok(out)
}

/// Walk `rootfs` (never following symlinks) and write the manifest.
pub fn write_manifest(rootfs: &Path, out: &Path) -> Result<u64> {
    // Through a temporary file: a crash leaves the old manifest or the new.
    let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
    let f = fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut n = 0;
    let res = walk(rootfs, rootfs, &mut w, &mut n).and_then(|()| {
        let f = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("write {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("sync {}", tmp.display()))?;
        fs::rename(&tmp, out).with_context(|| format!("rename {} into place", out.display()))
    });
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map(|()| n)
}

fn walk(root: &Path, dir: &Path, w: &mut impl Write, n: &mut u64) -> Result<()> {
    let md = fs::symlink_metadata(dir).with_context(|| format!("lstat {}", dir.display()))?;
    record(root, dir, &md, w)?;
    *n += 1;
    let mut ents: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("read directory {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("read directory {}", dir.display()))?;
    ents.sort_by_key(|e| e.file_name());
    for e in ents {
        let p = e.path();
        let md = fs::symlink_metadata(&p).with_context(|| format!("lstat {}", p.display()))?;
        if md.is_dir() {
            walk(root, &p, w, n)?;
        } else {
            record(root, &p, &md, w)?;
            *n += 1;
        }
    }
    Ok(())
}

fn record(root: &Path, p: &Path, md: &fs::Metadata, w: &mut impl Write) -> Result<()> {
    let rel = p.strip_prefix(root).unwrap_or(p);
    let mut path = String::from("/");
    path.push_str(&escape(rel.as_os_str().as_bytes()));
    let ft = md.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_file() {
        "file"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    };
    let link = if ft.is_symlink() {
        Some(escape(
            fs::read_link(p)
                .with_context(|| format!("readlink {}", p.display()))?
                .as_os_str()
                .as_bytes(),
        ))
    } else {
        None
    };
    let e = Entry {
        path,
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: if ft.is_file() { md.size() } else { 0 },
        mtime: md.mtime(),
        link,
        rdev: (ft.is_char_device() || ft.is_block_device()).then(|| md.rdev()),
        ino: md.ino(),
        nlink: md.nlink(),
        ctime_ns: md.ctime() as i128 * 1_000_000_000 + md.ctime_nsec() as i128,
    };
    serde_json::to_writer(&mut *w, &e).context("write tree manifest")?;
    w.write_all(b"\n").context("write tree manifest")?;
    Ok(())
}
