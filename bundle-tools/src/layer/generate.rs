//! Generating a layer: a sorted list of changes (entries to write, paths
//! whited out, directories made opaque) becomes a reproducible tar stream,
//! compressed into the layout's blob store while both its digest and its
//! diff_id are computed.
//!
//! Reproducible: nothing about the moment of the commit goes into the tar
//! (no atime/ctime records, gzip header time 0, entries and xattrs in sorted
//! order, the first path of a hardlinked inode carries the content), so the
//! same changes give the same digest. `SOURCE_DATE_EPOCH`, when set, clamps
//! later mtimes to it.

use crate::blobs::{Algorithm, Compression, Digest, Hasher, Store};
use crate::layer::extract::{KEPT_XATTR_PREFIX, ROOTLESS_XATTR};
use crate::layer::IdMap;
use crate::sys;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

/// One change of a layer, by path relative to the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Write the entry at `path` as it is in the tree at `src`.
    Entry { path: PathBuf, src: PathBuf },
    /// `path` is deleted (`.wh.NAME`).
    Whiteout(PathBuf),
    /// The lower layers' content of directory `path` is hidden (`.wh..wh..opq`).
    Opaque(PathBuf),
}

/// How ownership on disk maps back to the image's ids.
#[derive(Clone, Debug, Default)]
pub struct OwnerMap {
    /// Rootless bundle: files belong to the unpacking user; the image's ids
    /// are in `user.rootlesscontainers` (absent: 0:0), other xattrs that
    /// could not be set in `user.berth.xattr.*`.
    pub rootless: bool,
    pub uid_map: IdMap,
    pub gid_map: IdMap,
}

impl OwnerMap {
    fn to_image(&self, uid: u32, gid: u32, xattrs: &[(CString, Vec<u8>)]) -> Result<(u32, u32)> {
        if self.rootless {
            let v = xattrs
                .iter()
                .find(|(k, _)| k.as_bytes() == ROOTLESS_XATTR.as_bytes())
                .map(|(_, v)| v.as_slice())
                .unwrap_or(&[]);
            return parse_rootless_xattr(v);
        }
        Ok((
            self.uid_map.to_container(uid)?,
            self.gid_map.to_container(gid)?,
        ))
    }
}

/// Decode rootlesscontainers' `Resource{uid=1, gid=2}` protobuf.
pub fn parse_rootless_xattr(v: &[u8]) -> Result<(u32, u32)> {
    let (mut uid, mut gid, mut i) = (0u64, 0u64, 0usize);
    while i < v.len() {
        let key = v[i];
        i += 1;
        let mut val = 0u64;
        let mut shift = 0;
        loop {
            let Some(&b) = v.get(i) else {
                bail!("{ROOTLESS_XATTR}: truncated value");
            };
            i += 1;
            val |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 || shift > 63 {
                break;
            }
        }
        match key {
            0x08 => uid = val,
            0x10 => gid = val,
            _ => bail!("{ROOTLESS_XATTR}: unexpected field"),
        }
    }
    Ok((
        u32::try_from(uid).context("uid out of range")?,
        u32::try_from(gid).context("gid out of range")?,
    ))
}

/// Counts and hashes what passes through.
struct Hashing<W> {
    inner: W,
    hasher: Hasher,
    n: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.hasher.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hashing<W>(inner: W) -> Hashing<W> {
    Hashing {
        inner,
        hasher: Hasher::new(Algorithm::Sha256),
        n: 0,
    }
}

/// A written layer blob.
#[derive(Clone, Debug)]
pub struct Layer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub compression: Compression,
    pub entries: u64,
}

/// Write `changes` as a layer blob into `store`.
pub fn write_layer(
    store: &Store,
    changes: &[Change],
    owners: &OwnerMap,
    compression: Compression,
) -> Result<Layer> {
    let (tmp, file) = store.create_temp()?;
    let res = (|| -> Result<Layer> {
        let blob = hashing(io::BufWriter::with_capacity(1 << 20, file));
        let enc = compression.encoder(blob)?;
        let mut tar = tar::Builder::new(hashing(enc));
        let mut g = Generator {
            owners,
            links: HashMap::new(),
            clamp: source_date_epoch(),
            entries: 0,
        };
        for c in changes {
            g.change(&mut tar, c)?;
        }
        let uncompressed = tar.into_inner().context("finish layer tar")?;
        let diff_id = uncompressed.hasher.finish();
        let mut blob = uncompressed
            .inner
            .finish()
            .context("finish layer compression")?;
        blob.flush().context("write layer blob")?;
        let size = blob.n;
        let digest = blob.hasher.finish();
        let f = blob
            .inner
            .into_inner()
            .map_err(|e| e.into_error())
            .context("write layer blob")?;
        f.sync_all().context("sync layer blob")?;
        Ok(Layer {
            digest,
            size,
            diff_id,
            compression,
            entries: g.entries,
        })
    })();
    match res {
        Ok(l) => {
            store.adopt_temp(&tmp, &l.digest)?;
            Ok(l)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// `SOURCE_DATE_EPOCH`, the reproducible-builds convention.
pub fn source_date_epoch() -> Option<i64> {
    std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
}

struct Generator<'a> {
    owners: &'a OwnerMap,
    /// (dev, ino) of hardlinked files already written → their tar name.
    links: HashMap<(u64, u64), Vec<u8>>,
    clamp: Option<i64>,
    entries: u64,
}

fn tar_name(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

impl Generator<'_> {
    fn change<W: Write>(&mut self, tar: &mut tar::Builder<W>, c: &Change) -> Result<()> {
        match c {
            Change::Whiteout(p) => {
                let name = whiteout_name(p, None);
                self.marker(tar, &name)
            }
            Change::Opaque(p) => {
                let name = whiteout_name(p, Some(b".wh..opq"));
                self.marker(tar, &name)
            }
            Change::Entry { path, src } => self
                .entry(tar, path, src)
                .with_context(|| format!("commit {}", path.display())),
        }
    }

    fn marker<W: Write>(&mut self, tar: &mut tar::Builder<W>, name: &[u8]) -> Result<()> {
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_mtime(0);
        self.append(tar, h, name, None, &[], io::empty())?;
        Ok(())
    }

    fn entry<W: Write>(
        &mut self,
        tar: &mut tar::Builder<W>,
        path: &Path,
        src: &Path,
    ) -> Result<()> {
        let c = sys::cstr(src.as_os_str())?;
        let md = std::fs::symlink_metadata(src).context("lstat")?;
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let ft = md.file_type();
        if ft.is_socket() {
            return Ok(());
        }
        let all = sys::lxattrs(&c).context("read xattrs")?;
        let (uid, gid) = self.owners.to_image(md.uid(), md.gid(), &all)?;
        let xattrs = image_xattrs(&all, self.owners.rootless);
        let mut h = Header::new_ustar();
        h.set_mode(md.mode() & 0o7777);
        h.set_size(0);
        let mtime = match self.clamp {
            Some(t) if md.mtime() > t => t,
            _ => md.mtime(),
        };
        h.set_mtime(mtime.max(0) as u64);
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if u64::from(uid) > 0o7777777 || u64::from(gid) > 0o7777777 {
            pax.push(("uid".into(), uid.to_string().into_bytes()));
            pax.push(("gid".into(), gid.to_string().into_bytes()));
        } else {
            h.set_uid(uid.into());
            h.set_gid(gid.into());
        }
        let name = tar_name(path);
        if ft.is_dir() {
            h.set_entry_type(EntryType::Directory);
            let mut n = name;
            n.push(b'/');
            return self.append(tar, h, &n, None, &xattrs_pax(pax, &xattrs), io::empty());
        }
        if ft.is_symlink() {
            h.set_entry_type(EntryType::Symlink);
            let target = std::fs::read_link(src).context("readlink")?;
            let t = target.as_os_str().as_bytes().to_vec();
            return self.append(
                tar,
                h,
                &name,
                Some(&t),
                &xattrs_pax(pax, &xattrs),
                io::empty(),
            );
        }
        if md.nlink() > 1 && !ft.is_dir() {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                h.set_entry_type(EntryType::Link);
                return self.append(tar, h, &name, Some(&first), &pax, io::empty());
            }
            self.links.insert(key, name.clone());
        }
        if ft.is_file() {
            h.set_entry_type(EntryType::Regular);
            h.set_size(md.len());
            let f = File::open(src).context("open")?;
            return self.append(tar, h, &name, None, &xattrs_pax(pax, &xattrs), f);
        }
        let kind = if ft.is_char_device() {
            EntryType::Char
        } else if ft.is_block_device() {
            EntryType::Block
        } else {
            EntryType::Fifo
        };
        h.set_entry_type(kind);
        if kind != EntryType::Fifo {
            let rdev = md.rdev();
            h.set_device_major(libc::major(rdev)).context("device")?;
            h.set_device_minor(libc::minor(rdev)).context("device")?;
        }
        self.append(tar, h, &name, None, &xattrs_pax(pax, &xattrs), io::empty())
    }

    fn append<W: Write, R: io::Read>(
        &mut self,
        tar: &mut tar::Builder<W>,
        mut h: Header,
        name: &[u8],
        link: Option<&[u8]>,
        pax: &[(String, Vec<u8>)],
        data: R,
    ) -> Result<()> {
        let mut pax = pax.to_vec();
        set_name_field(&mut h.as_old_mut().name, name);
        if name.len() > 100 {
            pax.push(("path".into(), name.to_vec()));
        }
        if let Some(l) = link {
            set_name_field(&mut h.as_old_mut().linkname, l);
            if l.len() > 100 {
                pax.push(("linkpath".into(), l.to_vec()));
            }
        }
        if !pax.is_empty() {
            pax.sort();
            tar.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .context("write PAX header")?;
        }
        h.set_cksum();
        tar.append(&h, data).context("write layer")?;
        self.entries += 1;
        Ok(())
    }
}

fn set_name_field(field: &mut [u8], name: &[u8]) {
    field.fill(0);
    let n = name.len().min(field.len());
    field[..n].copy_from_slice(&name[..n]);
}

/// `dir/.wh.NAME`, or `dir/.wh..wh..opq` for an opaque directory.
fn whiteout_name(p: &Path, opaque: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let (parent, leaf): (&Path, &[u8]) = match opaque {
        Some(o) => (p, o),
        None => (
            p.parent().unwrap_or(Path::new("")),
            p.file_name().map(OsStr::as_bytes).unwrap_or(b""),
        ),
    };
    if !parent.as_os_str().is_empty() {
        out.extend_from_slice(parent.as_os_str().as_bytes());
        out.push(b'/');
    }
    out.extend_from_slice(b".wh.");
    out.extend_from_slice(leaf);
    out
}

/// The xattrs that belong in the image: overlay's own and the rootless
/// ownership record are dropped; rootless-kept ones get their names back.
fn image_xattrs(all: &[(CString, Vec<u8>)], rootless: bool) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for (k, v) in all {
        let k = String::from_utf8_lossy(k.as_bytes()).into_owned();
        if k.starts_with("trusted.overlay.") || k.starts_with("user.overlay.") {
            continue;
        }
        if rootless && k == ROOTLESS_XATTR {
            continue;
        }
        let name = match k.strip_prefix(KEPT_XATTR_PREFIX) {
            Some(orig) if rootless => orig.to_string(),
            _ => k,
        };
        out.push((name, v.clone()));
    }
    out.sort();
    out
}

fn xattrs_pax(
    mut pax: Vec<(String, Vec<u8>)>,
    xattrs: &[(String, Vec<u8>)],
) -> Vec<(String, Vec<u8>)> {
    for (k, v) in xattrs {
        pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
    }
    pax
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::extract::rootless_xattr_value;

    #[test]
    fn rootless_xattr_round_trips() {
        for (u, g) in [(0, 0), (1000, 100), (65534, 5), (u32::MAX, 1)] {
            assert_eq!(
                parse_rootless_xattr(&rootless_xattr_value(u, g)).expect("ok"),
                (u, g)
            );
        }
        assert!(parse_rootless_xattr(&[0x08]).is_err());
    }

    #[test]
    fn whiteout_names() {
        assert_eq!(whiteout_name(Path::new("a/b"), None), b"a/.wh.b");
        assert_eq!(whiteout_name(Path::new("top"), None), b".wh.top");
        assert_eq!(
            whiteout_name(Path::new("d"), Some(b".wh..opq")),
            b"d/.wh..wh..opq"
        );
    }
}
