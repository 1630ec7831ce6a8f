//! Whiteouts (image-spec layer.md): `.wh.NAME` removes NAME from lower
//! layers, `.wh..wh..opq` empties its directory of lower-layer content.
//! Neither may hide what the same layer adds, whatever the tar order.

use crate::sys;
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const OPAQUE: &[u8] = b".wh..opq";

/// What whiteouts need of the tree being extracted into.
pub trait LayerTree {
    /// Open a directory inside the root (symlinks resolved in it); with
    /// `create`, missing parents are made.
    fn open_dir(&mut self, rel: &Path, create: bool) -> Result<OwnedFd>;
    /// Paths the current layer has written so far.
    fn layer_paths(&self) -> &HashSet<PathBuf>;
    /// Record whiteouts as overlayfs does instead of applying them.
    fn overlay_whiteouts(&self) -> bool;
}

/// Apply the whiteout `parent/.wh.<rest>`.
pub fn apply(x: &mut impl LayerTree, parent: &Path, rest: &[u8]) -> Result<()> {
    if x.overlay_whiteouts() {
        return record_overlay(x, parent, rest);
    }
    if rest == OPAQUE {
        return opaque(x, parent);
    }
    let Some(target) = hidden_path(x, parent, rest)? else {
        return Ok(());
    };
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

/// The lower-layer path `parent/.wh.<rest>` hides, or None when there is
/// nothing to do (aufs' other `.wh..wh.` names; a path this layer wrote).
fn hidden_path(x: &impl LayerTree, parent: &Path, rest: &[u8]) -> Result<Option<PathBuf>> {
    if rest.starts_with(b".wh.") {
        // Other `.wh..wh.` names are aufs internals with no meaning here.
        return Ok(None);
    }
    if rest.is_empty() || rest == b"." || rest == b".." || rest.contains(&b'/') {
        anyhow::bail!("invalid whiteout name");
    }
    let target = parent.join(OsStr::from_bytes(rest));
    Ok((!x.layer_paths().contains(&target)).then_some(target))
}

/// overlayfs' form: `.wh.NAME` is a 0/0 character device NAME, the opaque
/// marker `trusted.overlay.opaque=y` on its directory.
fn record_overlay(x: &mut impl LayerTree, parent: &Path, rest: &[u8]) -> Result<()> {
    if rest == OPAQUE {
        let dfd = x
            .open_dir(parent, true)
            .with_context(|| format!("opaque directory {}", parent.display()))?;
        return sys::lsetxattrat(dfd.as_fd(), c".", c"trusted.overlay.opaque", b"y")
            .with_context(|| format!("mark {} opaque", parent.display()));
    }
    let Some(target) = hidden_path(x, parent, rest)? else {
        return Ok(());
    };
    let pfd = x
        .open_dir(parent, true)
        .with_context(|| format!("whiteout {}", target.display()))?;
    let name = sys::cstr(OsStr::from_bytes(rest))?;
    if let Some(st) = sys::lstatat(pfd.as_fd(), &name)? {
        remove_at(
            pfd.as_fd(),
            &name,
            st.st_mode & libc::S_IFMT == libc::S_IFDIR,
        )?;
    }
    sys::mknodat(pfd.as_fd(), &name, libc::S_IFCHR, 0)
        .with_context(|| format!("whiteout {}", target.display()))
}

fn opaque(x: &mut impl LayerTree, dir: &Path) -> Result<()> {
    // What this layer already put under `dir` (and their ancestors) stays.
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for p in x
        .layer_paths()
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

fn clear(dfd: OwnedFd, dir: &Path, keep: &HashSet<PathBuf>) -> Result<()> {
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

/// Remove `name` in `dir`; a directory is removed with its contents
/// (through the fd's own path: nothing else writes the tree meanwhile, and
/// remove_dir_all never follows symlinks).
pub fn remove_at(dir: BorrowedFd<'_>, name: &CStr, is_dir: bool) -> Result<()> {
    if !is_dir {
        return sys::unlinkat(dir, name, 0).context("unlink");
    }
    let base = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&dir)
    ))
    .context("locate parent directory")?;
    let p = base.join(OsStr::from_bytes(name.to_bytes()));
    std::fs::remove_dir_all(&p).with_context(|| format!("remove directory {}", p.display()))
}
