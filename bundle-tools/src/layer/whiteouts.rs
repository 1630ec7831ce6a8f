//! Whiteouts (image-spec layer.md): `.wh.NAME` removes NAME from lower
//! layers, `.wh..wh..opq` empties its directory of lower-layer content.
//! Neither may hide what the same layer adds, whatever the tar order.

use super::extract::{remove_at, Extractor};
use crate::sys;
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const OPAQUE: &[u8] = b".wh..opq";

/// Apply the whiteout `parent/.wh.<rest>`.
pub fn apply(x: &mut Extractor, parent: &Path, rest: &[u8]) -> Result<()> {
    x.forget_cache();
    if rest == OPAQUE {
        return opaque(x, parent);
    }
    if rest.starts_with(b".wh.") {
        // Other `.wh..wh.` names are aufs internals with no meaning here.
        return Ok(());
    }
    if rest.is_empty() || rest == b"." || rest == b".." || rest.contains(&b'/') {
        anyhow::bail!("invalid whiteout name");
    }
    let target = parent.join(OsStr::from_bytes(rest));
    if x.layer_paths.contains(&target) {
        return Ok(());
    }
    let pfd = match x.open_dir(parent, false) {
        Ok(fd) => fd,
        // Nothing below a missing (or non-directory) parent to delete.
        Err(_) => return Ok(()),
    };
    let name = sys::cstr(OsStr::from_bytes(rest))?;
    if let Some(st) =
        sys::lstatat(pfd.as_fd(), &name).with_context(|| format!("lstat {}", target.display()))?
    {
        remove_at(
            pfd.as_fd(),
            &name,
            st.st_mode & libc::S_IFMT == libc::S_IFDIR,
        )
        .with_context(|| format!("whiteout {}", target.display()))?;
    }
    Ok(())
}

fn opaque(x: &mut Extractor, dir: &Path) -> Result<()> {
    // What this layer already put under `dir` (and their ancestors) stays.
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for p in x
        .layer_paths
        .iter()
        .filter(|p| p.starts_with(dir) && p.as_path() != dir)
    {
        let mut a = p.as_path();
        while a != dir {
            keep.insert(a.to_path_buf());
            a = a.parent().unwrap_or(dir);
        }
    }
    let dfd = x
        .open_dir(dir, true)
        .with_context(|| format!("opaque directory {}", dir.display()))?;
    clear(dfd, dir, &keep)
}

fn clear(dfd: std::os::fd::OwnedFd, dir: &Path, keep: &HashSet<PathBuf>) -> Result<()> {
    let base = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&dfd)
    ))
    .context("locate opaque directory")?;
    let rd = std::fs::read_dir(&base)
        .with_context(|| format!("read opaque directory {}", dir.display()))?;
    for ent in rd {
        let ent = ent.with_context(|| format!("read opaque directory {}", dir.display()))?;
        let rel = dir.join(ent.file_name());
        let ft = ent
            .file_type()
            .with_context(|| format!("stat {}", rel.display()))?;
        let name = sys::cstr(&ent.file_name())?;
        if keep.contains(&rel) {
            if ft.is_dir() {
                let sub = sys::openat(
                    dfd.as_fd(),
                    &name,
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
                .with_context(|| format!("open {}", rel.display()))?;
                clear(sub, &rel, keep)?;
            }
            continue;
        }
        remove_at(dfd.as_fd(), &name, ft.is_dir())
            .with_context(|| format!("opaque whiteout removes {}", rel.display()))?;
    }
    Ok(())
}
