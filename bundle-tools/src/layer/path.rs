//! Lexical normalisation of tar entry names before anything touches disk.

use anyhow::{bail, Result};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Normalise a tar name to a relative path inside the root: leading `/` and
/// `.` components are dropped (like GNU tar), `..` pops a component and is an
/// error if it would climb above the root. `None` is the root itself.
pub fn normalize(name: &[u8]) -> Result<Option<PathBuf>> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    bail!(
                        "path {:?} climbs out of the root filesystem",
                        String::from_utf8_lossy(name)
                    );
                }
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(name.len());
    for (i, c) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c);
    }
    Ok(Some(PathBuf::from(OsStr::from_bytes(&out))))
}

/// Whether `block` is a valid tar header (its checksum matches), or the
/// all-zero end-of-archive block.
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    if block[..512].iter().all(|&b| b == 0) {
        return true;
    }
    let field = String::from_utf8_lossy(&block[148..156]);
    let digits = field.trim_matches(|c: char| c == ' ' || c == '\0');
    let Ok(want) = u32::from_str_radix(digits, 8) else {
        return false;
    };
    let sum: u32 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    sum == want
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_tar_headers() {
        let mut h = tar::Header::new_ustar();
        h.set_path("a").expect("path");
        h.set_cksum();
        assert!(is_tar_header(h.as_bytes()));
        assert!(is_tar_header(&[0u8; 512]));
        assert!(!is_tar_header(&[b'#'; 512]));
        assert!(!is_tar_header(b"short"));
    }

    #[test]
    fn normalises_and_contains() {
        assert_eq!(normalize(b"./a//b/").expect("ok"), Some("a/b".into()));
        assert_eq!(
            normalize(b"/etc/passwd").expect("ok"),
            Some("etc/passwd".into())
        );
        assert_eq!(normalize(b"a/../b").expect("ok"), Some("b".into()));
        assert_eq!(normalize(b"./").expect("ok"), None);
        assert!(normalize(b"../x").is_err());
        assert!(normalize(b"a/../../x").is_err());
    }
}

/// Like [`normalize`], but `..` at the root stays at the root, the way the
/// kernel resolves paths inside a chroot (used for symlink targets).
pub fn normalize_in_root(name: &[u8]) -> PathBuf {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    PathBuf::from(OsStr::from_bytes(&parts.join(&b'/')))
}

#[cfg(test)]
mod in_root_tests {
    use super::*;

    #[test]
    fn dotdot_is_clamped_at_the_root() {
        assert_eq!(normalize_in_root(b"../../a/./b/../c"), PathBuf::from("a/c"));
        assert_eq!(normalize_in_root(b"/"), PathBuf::from(""));
    }
}
