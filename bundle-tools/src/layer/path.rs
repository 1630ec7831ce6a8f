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

#[cfg(test)]
mod tests {
    use super::*;

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
