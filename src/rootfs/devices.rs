//! Device nodes: runc's defaults in the container's /dev plus
//! `linux.devices` wherever their paths say (inside the rootfs, resolved
//! there), created with mknod, or bind-mounted from the host inside a user
//! namespace (where mknod is not allowed); then the /dev symlinks.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::mounts::cpath;
use super::resolve::{self, Kind};
use crate::error::{Context, Error, Result};
use crate::sys;

pub struct Device {
    pub path: PathBuf,
    pub kind: u32,
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// runc's default devices: every container gets these.
fn defaults() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(n, ma, mi)| Device {
        path: Path::new("/dev").join(n),
        kind: libc::S_IFCHR,
        major: ma,
        minor: mi,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

fn from_spec(d: &LinuxDevice) -> Result<Device> {
    // Any path in the container, as runc allows (`/dev` is only where
    // they usually live): `create` resolves it inside the rootfs.
    if !d.path().is_absolute() || d.path().file_name().is_none() {
        crate::bail!(
            "device {:?}: path must be an absolute file path in the container",
            d.path().display().to_string()
        );
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => crate::bail!(
            "device {}: type 'a' is only valid in cgroup rules",
            d.path().display()
        ),
    };
    Ok(Device {
        path: d.path().clone(),
        kind,
        major: d.major(),
        minor: d.minor(),
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// The defaults not overridden by the spec, then the spec's devices.
pub fn wanted(spec_devices: Option<&Vec<LinuxDevice>>) -> Result<Vec<Device>> {
    let mut out: Vec<Device> = Vec::new();
    let spec: Vec<Device> = spec_devices
        .into_iter()
        .flatten()
        .map(from_spec)
        .collect::<Result<_>>()?;
    for d in defaults() {
        if !spec.iter().any(|s| s.path == d.path) {
            out.push(d);
        }
    }
    out.extend(spec);
    Ok(out)
}

pub fn create(root: BorrowedFd, d: &Device, userns: bool) -> Result<()> {
    let what = || format!("create device {}", d.path.display());
    if userns {
        // A bind of the host's node: the kernel refuses mknod here.
        let target = resolve::ensure(root, &d.path, Kind::File).with_context(what)?;
        let host = if d.kind == libc::S_IFIFO {
            return Err(Error::msg(format!(
                "{}: fifos cannot be bound from the host",
                what()
            )));
        } else {
            &d.path
        };
        return mount(
            Some(host),
            resolve::proc_fd_path(&target).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("bind host device {}", host.display()));
    }
    let rel = resolve::relative(&d.path);
    let parent_rel = rel.parent().unwrap_or(Path::new(""));
    let name = rel
        .file_name()
        .ok_or_else(|| Error::msg(format!("{}: no file name", what())))?;
    resolve::ensure(root, &Path::new("/").join(parent_rel), Kind::Dir).with_context(what)?;
    let parent = resolve::open_in_root(root, parent_rel, libc::O_PATH | libc::O_DIRECTORY)
        .with_context(what)?;
    let cname = cpath(Path::new(name))?;
    let dev = libc::makedev(d.major as u32, d.minor as u32);
    loop {
        match sys::mknodat(parent.as_fd(), &cname, d.kind | d.mode, dev) {
            Ok(()) => break,
            // The same device the image had there is made anew (exact
            // mode and owner); anything else is an error, as the
            // runtime-spec says (never following a link).
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let Some(st) = sys::lstatat(parent.as_fd(), &cname).with_context(what)? else {
                    continue;
                };
                let same = st.st_mode & libc::S_IFMT == d.kind
                    && (d.kind == libc::S_IFIFO || st.st_rdev == dev);
                if !same {
                    crate::bail!("{}: a different file already exists at that path", what());
                }
                if sys::unlinkat(parent.as_fd(), &cname, 0).is_ok() {
                    continue;
                }
                return Err(Error::from(e).context(what()));
            }
            Err(e) => return Err(Error::from(e).context(what())),
        }
    }
    // mknod's mode is filtered by the umask: set it exactly.
    sys::fchmodat(parent.as_fd(), &cname, d.mode)
        .and_then(|()| sys::fchownat(parent.as_fd(), &cname, d.uid, d.gid))
        .with_context(|| format!("chmod/chown {}", d.path.display()))?;
    Ok(())
}

/// /dev/fd, stdin/out/err, ptmx and (if the host has it) core.
pub fn symlinks(root: BorrowedFd) -> Result<()> {
    resolve::ensure(root, Path::new("/dev"), Kind::Dir)?;
    let dev = resolve::open_in_root(root, Path::new("dev"), libc::O_PATH | libc::O_DIRECTORY)
        .context("open /dev")?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        let (t, n) = (cpath(Path::new(target))?, cpath(Path::new(name))?);
        match sys::symlinkat(&t, dev.as_fd(), &n) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(Error::from(e).context(format!("symlink /dev/{name}"))),
        }
    }
    Ok(())
}
