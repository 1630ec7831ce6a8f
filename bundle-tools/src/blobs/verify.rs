//! A reader that hashes and counts what passes through it.

use super::{Digest, Hasher};
use anyhow::{bail, Result};
use std::io::{self, Read};

pub struct VerifiedReader<R> {
    inner: R,
    expected: Digest,
    size: u64,
    read: u64,
    hasher: Option<Hasher>,
}

impl<R: Read> VerifiedReader<R> {
    pub fn new(inner: R, expected: Digest, size: u64) -> Self {
        let hasher = Some(Hasher::new(expected.algorithm()));
        VerifiedReader {
            inner,
            expected,
            size,
            read: 0,
            hasher,
        }
    }

    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Read what is left (a decompressor may stop before the blob's end) and
    /// check size and digest.
    pub fn finish(mut self) -> Result<()> {
        io::copy(&mut self, &mut io::sink())?;
        if self.read != self.size {
            bail!(
                "blob {}: size is {} bytes, descriptor says {}",
                self.expected,
                self.read,
                self.size
            );
        }
        let got = self.hasher.take().map(Hasher::finish);
        match got {
            Some(d) if d == self.expected => Ok(()),
            Some(d) => bail!(
                "blob {}: digest mismatch, content hashes to {d}",
                self.expected
            ),
            None => bail!("blob {}: verified twice", self.expected),
        }
    }
}

impl<R: Read> Read for VerifiedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {}: longer than its descriptor's size {}",
                    self.expected, self.size
                ),
            ));
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::Algorithm;

    fn digest_of(b: &[u8]) -> Digest {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(b);
        h.finish()
    }

    #[test]
    fn accepts_matching_content() {
        let d = digest_of(b"hello");
        let r = VerifiedReader::new(&b"hello"[..], d, 5);
        assert!(r.finish().is_ok());
    }

    #[test]
    fn rejects_wrong_digest_naming_it() {
        let d = digest_of(b"hello");
        let r = VerifiedReader::new(&b"hellp"[..], d.clone(), 5);
        let e = format!("{:#}", r.finish().expect_err("must fail"));
        assert!(e.contains(&d.to_string()), "{e}");
        assert!(e.contains("digest mismatch"), "{e}");
    }

    #[test]
    fn rejects_wrong_size_both_ways() {
        let d = digest_of(b"hello");
        assert!(VerifiedReader::new(&b"hello"[..], d.clone(), 6)
            .finish()
            .is_err());
        let mut r = VerifiedReader::new(&b"hello"[..], d, 4);
        let mut v = Vec::new();
        assert!(r.read_to_end(&mut v).is_err());
    }
}
