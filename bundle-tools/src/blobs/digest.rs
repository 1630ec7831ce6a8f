//! Digests (`alg:hex`) and the streaming hasher for each algorithm.

use anyhow::{bail, Result};
use sha2::Digest as _;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest. The hex part is checked to be exactly the
/// algorithm's length of lowercase hex, so it is safe to use as a file name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Digest {
    alg: Algorithm,
    hex: String,
}

impl Digest {
    pub fn parse(s: &str) -> Result<Self> {
        let Some((alg, hex)) = s.split_once(':') else {
            bail!("invalid digest {s:?}: expected ALGORITHM:HEX");
        };
        let alg = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => bail!("invalid digest {s:?}: unsupported algorithm {other:?}"),
        };
        if hex.len() != alg.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            bail!(
                "invalid digest {s:?}: expected {} lowercase hex digits",
                alg.hex_len()
            );
        }
        Ok(Digest {
            alg,
            hex: hex.to_string(),
        })
    }
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.alg.name(), self.hex)
    }
}

pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(alg: Algorithm) -> Self {
        match alg {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
    pub fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest {
                alg: Algorithm::Sha256,
                hex: hex::encode(h.finalize()),
            },
            Hasher::Sha512(h) => Digest {
                alg: Algorithm::Sha512,
                hex: hex::encode(h.finalize()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_traversal_and_bad_lengths() {
        assert!(Digest::parse("sha256:../../etc/passwd").is_err());
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        let d = Digest::parse(&format!("sha512:{}", "0".repeat(128))).expect("valid sha512");
        assert_eq!(d.algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn hasher_matches_known_vectors() {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(b"abc");
        assert_eq!(
            h.finish().to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut h = Hasher::new(Algorithm::Sha512);
        h.update(b"abc");
        assert!(h.finish().hex().starts_with("ddaf35a193617aba"));
    }
}
