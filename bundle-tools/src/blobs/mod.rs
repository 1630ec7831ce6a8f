//! The content-addressed blob store of an image layout: `blobs/<alg>/<hex>`.
//! Every read is verified against the descriptor's digest and size while it
//! streams; nothing a caller gets from here is trusted before `finish`.

mod digest;
mod gzip;
mod verify;
mod zstd;

pub use digest::{Algorithm, Digest, Hasher};
pub use verify::VerifiedReader;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// JSON documents (manifests, configs, indexes) larger than this are refused:
/// they are read whole into memory.
pub const MAX_JSON_BLOB: u64 = 64 << 20;

/// How a layer blob is compressed, from its media type; one module per codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression of a layer media type (OCI and Docker names, the
    /// non-distributable variants); an unknown type is an error.
    pub fn from_layer_media_type(mt: &str) -> Result<Self> {
        Ok(match mt {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar" => Compression::None,
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Compression::Zstd,
            other => bail!("unsupported layer media type {other:?}"),
        })
    }

    /// Sniff the compression of a stream from its first bytes (docker-archive
    /// layers carry no media type).
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub fn oci_layer_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// Wrap `r` in the matching decoder.
    pub fn decoder<'a, R: Read + 'a>(self, r: R) -> Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(gzip::decoder(r)),
            Compression::Zstd => Box::new(zstd::decoder(r)?),
        })
    }
}

/// A compressing writer of one of the layer codecs.
pub enum Encoder<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(::zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Write the codec's trailer and return the inner writer.
    pub fn finish(self) -> std::io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(g) => g.finish(),
            Encoder::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Zstd(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(g) => g.flush(),
            Encoder::Zstd(z) => z.flush(),
        }
    }
}

impl Compression {
    pub fn encoder<W: Write>(self, w: W) -> Result<Encoder<W>> {
        Ok(match self {
            Compression::None => Encoder::None(w),
            Compression::Gzip => Encoder::Gzip(gzip::encoder(w)),
            Compression::Zstd => Encoder::Zstd(zstd::encoder(w)?),
        })
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "gzip" => Compression::Gzip,
            "zstd" => Compression::Zstd,
            "none" => Compression::None,
            other => bail!("unknown compression {other:?}: expected gzip, zstd or none"),
        })
    }
}

/// A layout's `blobs/` directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(layout: &Path) -> Self {
        Store {
            root: layout.join("blobs"),
        }
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root.join(d.algorithm().name()).join(d.hex())
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Open a blob for streaming; the reader fails on the first byte past
    /// `size` and at EOF if the digest or size differ.
    pub fn open(&self, d: &Digest, size: u64) -> Result<VerifiedReader<File>> {
        let p = self.path(d);
        let f = File::open(&p).with_context(|| format!("blob {d}: open {}", p.display()))?;
        Ok(VerifiedReader::new(f, d.clone(), size))
    }

    /// Read and verify a whole (small) blob.
    pub fn read_all(&self, d: &Digest, size: u64) -> Result<Vec<u8>> {
        if size > MAX_JSON_BLOB {
            bail!("blob {d}: size {size} is larger than the {MAX_JSON_BLOB} byte limit for JSON blobs");
        }
        let mut r = self.open(d, size)?;
        let mut buf = Vec::with_capacity(size as usize);
        r.read_to_end(&mut buf)
            .with_context(|| format!("blob {d}: read"))?;
        r.finish()?;
        Ok(buf)
    }

    pub fn read_json<T: DeserializeOwned>(&self, d: &Digest, size: u64) -> Result<T> {
        let buf = self.read_all(d, size)?;
        serde_json::from_slice(&buf).with_context(|| format!("blob {d}: invalid JSON"))
    }

    /// Store bytes, returning their sha256 digest.
    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest> {
        self.put_reader(&mut &data[..]).map(|(d, _)| d)
    }

    /// A new temporary file in `blobs/sha256` for a blob being written.
    pub fn create_temp(&self) -> Result<(PathBuf, File)> {
        let dir = self.root.join("sha256");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let tmp = tempfile_in(&dir)?;
        let f = File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        Ok((tmp, f))
    }

    /// Move a complete, synced temporary file into place as blob `d`, and
    /// sync the directory so the name survives a crash.
    pub fn adopt_temp(&self, tmp: &Path, d: &Digest) -> Result<()> {
        let dst = self.path(d);
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).with_context(|| format!("create {}", p.display()))?;
        }
        std::fs::rename(tmp, &dst)
            .with_context(|| format!("rename blob into {}", dst.display()))?;
        sync_dir(dst.parent().unwrap_or(&self.root))
    }

    /// Copy a stream into the store under its sha256 digest, through a
    /// temporary file renamed into place so a blob path is always complete.
    pub fn put_reader(&self, r: &mut dyn Read) -> Result<(Digest, u64)> {
        let dir = self.root.join("sha256");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let tmp = tempfile_in(&dir)?;
        let mut h = Hasher::new(Algorithm::Sha256);
        let mut n = 0u64;
        {
            let mut f = File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let k = match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e).context("read blob content");
                    }
                };
                h.update(&buf[..k]);
                n += k as u64;
                if let Err(e) = f.write_all(&buf[..k]) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e).with_context(|| format!("write {}", tmp.display()));
                }
            }
            if let Err(e) = f.sync_all() {
                let _ = std::fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("sync {}", tmp.display()));
            }
        }
        let d = h.finish();
        self.adopt_temp(&tmp, &d)?;
        Ok((d, n))
    }
}

/// fsync a directory (a rename in it is durable afterwards).
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).with_context(|| format!("open {}", dir.display()))?;
    f.sync_all()
        .with_context(|| format!("sync {}", dir.display()))
}

fn tempfile_in(dir: &Path) -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Ok(dir.join(format!(".tmp-{}-{n}", std::process::id())))
}
