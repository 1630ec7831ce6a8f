//! What changed in a bundle since unpack (or the last commit), as the
//! sorted [`Change`] list a layer is generated from.
//!
//! - Flat bundles: the tree against the manifest written at unpack. An
//!   entry whose (inode, ctime) differ changed — the kernel bumps ctime on
//!   every content, metadata, xattr or link-count change, and a replaced
//!   file is a new inode. A directory whose own (inode, ctime) are unchanged
//!   gained and lost no names, so its names come from the manifest and it is
//!   not read; only its entries are lstat'ed.
//! - Overlay bundles: the upper directory is the change set. A 0/0
//!   character device is a whiteout, `trusted.overlay.opaque` (or
//!   `user.overlay.opaque`) = `y` an opaque directory, and a directory with
//!   `trusted.overlay.redirect` (a renamed lower directory) is written in
//!   full, from the merged view, behind an opaque marker.

use super::generate::Change;
use crate::sys;
use crate::tree::Recorded;
use anyhow::{Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

fn ctime_ns(md: &std::fs::Metadata) -> i128 {
    md.ctime() as i128 * 1_000_000_000 + md.ctime_nsec() as i128
}

fn sorted_names(dir: &Path) -> Result<Vec<OsString>> {
    let mut v: Vec<OsString> = std::fs::read_dir(dir)
        .with_context(|| format!("read directory {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("read directory {}", dir.display()))?;
    v.sort();
    Ok(v)
}

/// Every entry below `rel` (in `root`), as new.
fn add_all(root: &Path, rel: &Path, out: &mut Vec<Change>) -> Result<()> {
    for name in sorted_names(&root.join(rel))? {
        let child = rel.join(&name);
        let src = root.join(&child);
        let md =
            std::fs::symlink_metadata(&src).with_context(|| format!("lstat {}", src.display()))?;
        out.push(Change::Entry {
            path: child.clone(),
            src,
        });
        if md.is_dir() {
            add_all(root, &child, out)?;
        }
    }
    Ok(())
}

/// Flat bundle: `rootfs` against its manifest.
pub fn flat(rootfs: &Path, manifest: &HashMap<PathBuf, Recorded>) -> Result<Vec<Change>> {
    // Names per directory as recorded.
    let mut children: HashMap<&Path, BTreeSet<OsString>> = HashMap::new();
    for p in manifest.keys() {
        if let (Some(parent), Some(name)) = (p.parent(), p.file_name()) {
            children.entry(parent).or_default().insert(name.to_owned());
        }
    }
    let mut out = Vec::new();
    let mut w = FlatWalk {
        root: rootfs,
        manifest,
        children: &children,
        out: &mut out,
    };
    w.dir(Path::new(""))?;
    Ok(out)
}

struct FlatWalk<'a> {
    root: &'a Path,
    manifest: &'a HashMap<PathBuf, Recorded>,
    children: &'a HashMap<&'a Path, BTreeSet<OsString>>,
    out: &'a mut Vec<Change>,
}

impl FlatWalk<'_> {
    /// `rel` is a directory that existed as this same directory at unpack.
    fn dir(&mut self, rel: &Path) -> Result<()> {
        let abs = self.root.join(rel);
        let md =
            std::fs::symlink_metadata(&abs).with_context(|| format!("lstat {}", abs.display()))?;
        let rec = self.manifest.get(rel);
        let unchanged = rec.is_some_and(|r| r.ino == md.ino() && r.ctime_ns == ctime_ns(&md));
        if !unchanged && !rel.as_os_str().is_empty() {
            self.out.push(Change::Entry {
                path: rel.to_path_buf(),
                src: abs.clone(),
            });
        }
        let recorded = self.children.get(rel).cloned().unwrap_or_default();
        let names: Vec<OsString> = if unchanged {
            recorded.iter().cloned().collect()
        } else {
            sorted_names(&abs)?
        };
        let present: BTreeSet<&OsString> = names.iter().collect();
        // Deletions first, in name order with the additions after them.
        for gone in recorded.iter().filter(|n| !present.contains(n)) {
            self.out.push(Change::Whiteout(rel.join(gone)));
        }
        for name in &names {
            let child = rel.join(name);
            let src = self.root.join(&child);
            let Ok(cmd) = std::fs::symlink_metadata(&src) else {
                // Gone since the listing (or never there: an unchanged
                // directory cannot lose names, so this is a race).
                continue;
            };
            let old = self.manifest.get(&child);
            if cmd.is_dir() {
                match old {
                    Some(r) if r.kind == "dir" && r.ino == cmd.ino() => self.dir(&child)?,
                    Some(r) => {
                        // A new directory where something else was: if that
                        // was a directory too, hide what it held.
                        self.out.push(Change::Entry {
                            path: child.clone(),
                            src: src.clone(),
                        });
                        if r.kind == "dir" {
                            self.out.push(Change::Opaque(child.clone()));
                        }
                        add_all(self.root, &child, self.out)?;
                    }
                    None => {
                        self.out.push(Change::Entry {
                            path: child.clone(),
                            src: src.clone(),
                        });
                        add_all(self.root, &child, self.out)?;
                    }
                }
                continue;
            }
            let changed = match old {
                None => true,
                Some(r) => r.ino != cmd.ino() || r.ctime_ns != ctime_ns(&cmd) || r.kind == "dir",
            };
            if changed {
                self.out.push(Change::Entry { path: child, src });
            }
        }
        Ok(())
    }
}

const OPAQUE_KEYS: [&std::ffi::CStr; 2] = [c"trusted.overlay.opaque", c"user.overlay.opaque"];
const REDIRECT_KEYS: [&std::ffi::CStr; 2] = [c"trusted.overlay.redirect", c"user.overlay.redirect"];
const METACOPY_KEYS: [&std::ffi::CStr; 2] = [c"trusted.overlay.metacopy", c"user.overlay.metacopy"];

fn has_xattr(p: &Path, keys: &[&std::ffi::CStr]) -> Result<Option<Vec<u8>>> {
    let c = sys::cstr(p.as_os_str())?;
    for k in keys {
        if let Some(v) =
            sys::lgetxattr(&c, k).with_context(|| format!("read xattrs of {}", p.display()))?
        {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Overlay bundle: the upper directory (`merged` is the mounted rootfs,
/// read for content the upper layer only references).
pub fn overlay(upper: &Path, merged: &Path) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    upper_dir(upper, merged, Path::new(""), &mut out)?;
    Ok(out)
}

fn upper_dir(upper: &Path, merged: &Path, rel: &Path, out: &mut Vec<Change>) -> Result<()> {
    for name in sorted_names(&upper.join(rel))? {
        let child = rel.join(&name);
        let src = upper.join(&child);
        let md =
            std::fs::symlink_metadata(&src).with_context(|| format!("lstat {}", src.display()))?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            out.push(Change::Whiteout(child));
            continue;
        }
        if md.is_dir() {
            out.push(Change::Entry {
                path: child.clone(),
                src: src.clone(),
            });
            if has_xattr(&src, &REDIRECT_KEYS)?.is_some() {
                // A renamed lower directory: its content lives elsewhere in
                // the lower layers; write all of it from the merged view.
                out.push(Change::Opaque(child.clone()));
                add_all(merged, &child, out)?;
                continue;
            }
            if has_xattr(&src, &OPAQUE_KEYS)?.as_deref() == Some(b"y") {
                out.push(Change::Opaque(child.clone()));
            }
            upper_dir(upper, merged, &child, out)?;
            continue;
        }
        let src = if ft.is_file() && has_xattr(&src, &METACOPY_KEYS)?.is_some() {
            // Metadata-only copy-up: the data is in a lower layer.
            merged.join(&child)
        } else {
            src
        };
        out.push(Change::Entry { path: child, src });
    }
    Ok(())
}
