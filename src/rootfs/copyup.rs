//! `tmpcopyup` (a runc extension): a tmpfs mounted over a directory of the
//! image starts with a copy of what it covers, so `/tmp` or `/run` keep the
//! image's files while becoming writable and private.
//!
//! The covered directory is opened before the mount and walked with
//! `*at` calls and `O_NOFOLLOW` on both sides: a symlink in the image is
//! copied as a symlink, never followed (out of the rootfs or anywhere).

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmodat, fstatat, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, symlinkat, Gid, Uid};

use crate::error::{Context, Result};

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Open the directory an O_PATH fd names, for reading its entries.
pub fn open_dir(path_fd: BorrowedFd) -> Result<OwnedFd> {
    openat(path_fd, c".", DIR_FLAGS, Mode::empty()).context("open the covered directory")
}

/// Copy the tree under `from` into `to`: directories, regular files,
/// symlinks, device nodes, fifos and sockets, with owner, mode and times.
pub fn copy_tree(from: BorrowedFd, to: BorrowedFd) -> Result<()> {
    for name in entries(from)? {
        copy_entry(from, to, &name).with_context(|| format!("copy {}", name.to_string_lossy()))?;
    }
    Ok(())
}

fn entries(dir: BorrowedFd) -> Result<Vec<CString>> {
    let dup = nix::unistd::dup(dir).context("dup directory fd")?;
    let mut d = nix::dir::Dir::from_fd(dup).context("read directory")?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.context("read directory entry")?;
        let n = e.file_name();
        if n != c"." && n != c".." {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

fn copy_entry(from: BorrowedFd, to: BorrowedFd, name: &CStr) -> Result<()> {
    let st = fstatat(from, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let fmt = st.st_mode & libc::S_IFMT;
    let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
    match fmt {
        libc::S_IFDIR => {
            match mkdirat(to, name, Mode::from_bits_truncate(0o700)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
            let sub_from = openat(from, name, DIR_FLAGS, Mode::empty())?;
            let sub_to = openat(to, name, DIR_FLAGS, Mode::empty())?;
            copy_tree(sub_from.as_fd(), sub_to.as_fd())?;
        }
        libc::S_IFREG => {
            let src = openat(
                from,
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let dst = openat(
                to,
                name,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o600),
            )?;
            copy_data(src, dst)?;
        }
        libc::S_IFLNK => {
            let target = readlinkat(from, name)?;
            symlinkat(target.as_os_str(), to, name)?;
        }
        libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO | libc::S_IFSOCK => {
            mknodat(to, name, SFlag::from_bits_truncate(fmt), perm, st.st_rdev)?;
        }
        _ => return Ok(()),
    }
    fchownat(
        to,
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    if fmt != libc::S_IFLNK {
        // After chown, which clears the set-id bits.
        fchmodat(to, name, perm, FchmodatFlags::NoFollowSymlink).or_else(|e| {
            // Older kernels refuse AT_SYMLINK_NOFOLLOW for fchmodat; the
            // entry is not a symlink, so following is the same.
            if e == Errno::EOPNOTSUPP || e == Errno::ENOTSUP {
                fchmodat(to, name, perm, FchmodatFlags::FollowSymlink)
            } else {
                Err(e)
            }
        })?;
    }
    let atime = TimeSpec::new(st.st_atime, st.st_atime_nsec);
    let mtime = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
    utimensat(to, name, &atime, &mtime, UtimensatFlags::NoFollowSymlink).context("set times")?;
    Ok(())
}

/// Copy a file's bytes (std uses copy_file_range, in the kernel, for files).
fn copy_data(src: OwnedFd, dst: OwnedFd) -> Result<()> {
    let (mut s, mut d) = (std::fs::File::from(src), std::fs::File::from(dst));
    std::io::copy(&mut s, &mut d).context("copy file data")?;
    Ok(())
}
