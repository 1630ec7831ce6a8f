//! The manifest of an unpacked tree that `commit` diffs against: one JSON
//! line per entry with its metadata and stat identity (inode, ctime). Content
//! is not hashed: the kernel bumps ctime on every change and a copy gets a
//! new inode, so (ino, ctime) equal means unchanged.

use anyhow::{Context, Result};
use serde::Serialize;
use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

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

/// Walk `rootfs` (never following symlinks) and write the manifest.
pub fn write_manifest(rootfs: &Path, out: &Path) -> Result<u64> {
    let f = fs::File::create(out).with_context(|| format!("create {}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut n = 0;
    walk(rootfs, rootfs, &mut w, &mut n)?;
    w.flush()
        .with_context(|| format!("write {}", out.display()))?;
    Ok(n)
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
