//! Paths inside the container's rootfs, resolved by the kernel with
//! `openat2(RESOLVE_IN_ROOT)`: `..` and symlinks (absolute or relative)
//! cannot leave the rootfs, so a hostile image cannot redirect a mount or a
//! device node onto the host.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Context, Error, Result};

/// openat2 relative to `root` as if it were `/` (see `sys::open_in_root`);
/// an empty path is the root itself.
pub fn open_in_root(root: BorrowedFd, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    crate::sys::open_in_root(root, &crate::sys::cstr(rel.as_os_str())?, flags)
}

/// A container path as components relative to its root (`/a/../b` → `b`
/// is left to the kernel: we only strip the leading `/`).
pub fn relative(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect()
}

pub enum Kind {
    Dir,
    File,
}

/// Make sure `path` exists inside the rootfs (creating directories, and the
/// last component as `kind`) and return an O_PATH fd on it. Every step is
/// resolved in the root, so nothing outside it is created or opened.
pub fn ensure(root: BorrowedFd, path: &Path, kind: Kind) -> Result<OwnedFd> {
    let rel = relative(path);
    let what = || format!("resolve {} in the container rootfs", path.display());
    match open_in_root(root, &rel, libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(Error::from(e).context(what())),
    }
    let comps: Vec<_> = rel.components().collect();
    let mut prefix = PathBuf::new();
    for (i, comp) in comps.iter().enumerate() {
        let parent =
            open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY).with_context(what)?;
        prefix.push(comp);
        match open_in_root(root, &prefix, libc::O_PATH) {
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(Error::from(e).context(what())),
        }
        let Component::Normal(name) = comp else {
            return Err(Error::msg(format!("{}: cannot create {:?}", what(), comp)));
        };
        let cname = CString::new(name.as_bytes())
            .map_err(|_| Error::msg(format!("{}: NUL in path", what())))?;
        let last = i + 1 == comps.len();
        let made = if last && matches!(kind, Kind::File) {
            crate::sys::openat(
                parent.as_fd(),
                &cname,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                0o644,
            )
            .map(drop)
        } else {
            crate::sys::mkdirat(parent.as_fd(), &cname, 0o755)
        };
        if let Err(e) = made {
            // EEXIST here means a dangling symlink: its target is outside or
            // missing; refuse rather than create through it.
            return Err(Error::from(e).context(format!("{}: create {}", what(), prefix.display())));
        }
    }
    open_in_root(root, &rel, libc::O_PATH).with_context(what)
}

/// The path the kernel resolves back to exactly the object behind `fd`.
pub fn proc_fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let base = std::env::temp_dir().join(format!("berth-resolve-{}", std::process::id()));
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("etc/rel")).unwrap();
        let rfd: OwnedFd = std::fs::File::open(&root).unwrap().into();
        // Dangling (inside the root) symlinks are refused; `..` is clamped.
        assert!(ensure(rfd.as_fd(), Path::new("/abs/created"), Kind::Dir).is_err());
        assert!(ensure(rfd.as_fd(), Path::new("/etc/rel/file"), Kind::File).is_err());
        ensure(rfd.as_fd(), Path::new("/../../outside/x"), Kind::Dir).unwrap();
        assert!(
            root.join("outside/x").is_dir(),
            "`..` stays inside the root"
        );
        assert!(
            std::fs::read_dir(&outside).unwrap().next().is_none(),
            "something was created outside the root"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
