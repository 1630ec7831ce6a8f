//! `mounts` entries: the option table runc accepts, and mounting one entry
//! onto a destination resolved inside the rootfs.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use super::resolve::{self, Kind};
use crate::error::{Context, Error, Result};
use crate::sys::{
    self, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY, MOUNT_ATTR_RELATIME,
    MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME,
};

/// A mount's options, parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub flags: MsFlags,
    /// Flags to clear (from `rw`, `suid`...): matter on remounts.
    pub clear: MsFlags,
    /// Propagation changes, applied one by one after the mount.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes for mount_setattr(2): (set, clear).
    pub attr_set: u64,
    pub attr_clr: u64,
    /// Everything else: the filesystem's data string.
    pub data: Vec<String>,
    pub tmpcopyup: bool,
    /// `idmap` (Some(false)) or `ridmap` (Some(true): recursively).
    pub idmap: Option<bool>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flags: MsFlags::empty(),
            clear: MsFlags::empty(),
            propagation: Vec::new(),
            attr_set: 0,
            attr_clr: 0,
            data: Vec::new(),
            tmpcopyup: false,
            idmap: None,
        }
    }
}

impl Options {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

pub fn parse(opts: &[String]) -> Result<Options> {
    let mut o = Options::default();
    for opt in opts {
        let set = |o: &mut Options, f: MsFlags| {
            o.flags |= f;
            o.clear &= !f;
        };
        let clr = |o: &mut Options, f: MsFlags| {
            o.flags &= !f;
            o.clear |= f;
        };
        let attr = |o: &mut Options, set: u64, clr: u64| {
            o.attr_set = (o.attr_set & !clr) | set;
            o.attr_clr = (o.attr_clr & !set) | clr;
        };
        match opt.as_str() {
            "defaults" => {}
            "ro" => set(&mut o, MsFlags::MS_RDONLY),
            "rw" => clr(&mut o, MsFlags::MS_RDONLY),
            "nosuid" => set(&mut o, MsFlags::MS_NOSUID),
            "suid" => clr(&mut o, MsFlags::MS_NOSUID),
            "nodev" => set(&mut o, MsFlags::MS_NODEV),
            "dev" => clr(&mut o, MsFlags::MS_NODEV),
            "noexec" => set(&mut o, MsFlags::MS_NOEXEC),
            "exec" => clr(&mut o, MsFlags::MS_NOEXEC),
            "sync" => set(&mut o, MsFlags::MS_SYNCHRONOUS),
            "async" => clr(&mut o, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => set(&mut o, MsFlags::MS_DIRSYNC),
            "remount" => set(&mut o, MsFlags::MS_REMOUNT),
            "mand" => set(&mut o, MsFlags::MS_MANDLOCK),
            "nomand" => clr(&mut o, MsFlags::MS_MANDLOCK),
            "noatime" => set(&mut o, MsFlags::MS_NOATIME),
            "atime" => clr(&mut o, MsFlags::MS_NOATIME),
            "nodiratime" => set(&mut o, MsFlags::MS_NODIRATIME),
            "diratime" => clr(&mut o, MsFlags::MS_NODIRATIME),
            "relatime" => set(&mut o, MsFlags::MS_RELATIME),
            "norelatime" => clr(&mut o, MsFlags::MS_RELATIME),
            "strictatime" => set(&mut o, MsFlags::MS_STRICTATIME),
            "nostrictatime" => clr(&mut o, MsFlags::MS_STRICTATIME),
            "lazytime" => set(&mut o, MsFlags::MS_LAZYTIME),
            "nolazytime" => clr(&mut o, MsFlags::MS_LAZYTIME),
            "silent" => set(&mut o, MsFlags::MS_SILENT),
            "loud" => clr(&mut o, MsFlags::MS_SILENT),
            "iversion" => set(&mut o, MsFlags::MS_I_VERSION),
            "noiversion" => clr(&mut o, MsFlags::MS_I_VERSION),
            "nosymfollow" => set(&mut o, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
            "symfollow" => clr(&mut o, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
            "bind" => set(&mut o, MsFlags::MS_BIND),
            "rbind" => set(&mut o, MsFlags::MS_BIND | MsFlags::MS_REC),
            "private" => o.propagation.push(MsFlags::MS_PRIVATE),
            "rprivate" => o.propagation.push(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
            "shared" => o.propagation.push(MsFlags::MS_SHARED),
            "rshared" => o.propagation.push(MsFlags::MS_SHARED | MsFlags::MS_REC),
            "slave" => o.propagation.push(MsFlags::MS_SLAVE),
            "rslave" => o.propagation.push(MsFlags::MS_SLAVE | MsFlags::MS_REC),
            "unbindable" => o.propagation.push(MsFlags::MS_UNBINDABLE),
            "runbindable" => o.propagation.push(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
            "rro" => attr(&mut o, MOUNT_ATTR_RDONLY, 0),
            "rrw" => attr(&mut o, 0, MOUNT_ATTR_RDONLY),
            "rnosuid" => attr(&mut o, MOUNT_ATTR_NOSUID, 0),
            "rsuid" => attr(&mut o, 0, MOUNT_ATTR_NOSUID),
            "rnodev" => attr(&mut o, MOUNT_ATTR_NODEV, 0),
            "rdev" => attr(&mut o, 0, MOUNT_ATTR_NODEV),
            "rnoexec" => attr(&mut o, MOUNT_ATTR_NOEXEC, 0),
            "rexec" => attr(&mut o, 0, MOUNT_ATTR_NOEXEC),
            "rnodiratime" => attr(&mut o, MOUNT_ATTR_NODIRATIME, 0),
            "rdiratime" => attr(&mut o, 0, MOUNT_ATTR_NODIRATIME),
            "rrelatime" => attr(&mut o, MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
            "rnorelatime" => attr(&mut o, 0, MOUNT_ATTR__ATIME),
            "rnoatime" => attr(&mut o, MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
            "ratime" => attr(&mut o, 0, MOUNT_ATTR_NOATIME),
            "rstrictatime" => attr(&mut o, MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
            "rnostrictatime" => attr(&mut o, 0, MOUNT_ATTR_STRICTATIME),
            "rnosymfollow" => attr(&mut o, MOUNT_ATTR_NOSYMFOLLOW, 0),
            "rsymfollow" => attr(&mut o, 0, MOUNT_ATTR_NOSYMFOLLOW),
            "tmpcopyup" => o.tmpcopyup = true,
            "idmap" => o.idmap = Some(false),
            "ridmap" => o.idmap = Some(true),
            other => o.data.push(other.to_string()),
        }
    }
    Ok(o)
}

/// Flags the kernel locks on a mount made in a less privileged user
/// namespace: a remount inside a user namespace must keep them.
fn locked_flags(path: &str) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::statvfs(path) else {
        return MsFlags::empty();
    };
    use nix::sys::statvfs::FsFlags;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

/// Remount a bind mount with `flags` (MS_BIND|MS_REMOUNT), keeping what the
/// kernel locked when inside a user namespace.
pub fn remount_bind(path: &str, flags: MsFlags, userns: bool, what: &str) -> Result<()> {
    let mut f = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if userns {
        f |= locked_flags(path) & !MsFlags::MS_RDONLY;
    }
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | f,
        None::<&str>,
    )
    .with_context(|| format!("remount {what} with its options"))
}

pub fn set_propagation(path: &str, props: &[MsFlags], what: &str) -> Result<()> {
    for p in props {
        mount(None::<&str>, path, None::<&str>, *p, None::<&str>)
            .with_context(|| format!("set propagation of {what}"))?;
    }
    Ok(())
}

fn mount_setattr(fd: BorrowedFd, set: u64, clr: u64, what: &str) -> Result<()> {
    let attr = sys::MountAttr {
        attr_set: set,
        attr_clr: clr,
        ..Default::default()
    };
    sys::mount_setattr(fd, libc::AT_RECURSIVE as libc::c_uint, &attr)
        .with_context(|| format!("mount_setattr on {what}"))
}

/// Mount one `mounts` entry. `root` is an fd on the (bind-mounted) rootfs;
/// `idmapped` the detached mount the runtime made for an idmapped bind.
pub fn mount_entry(
    root: BorrowedFd,
    mp: &super::MountPlan,
    bundle: &Path,
    userns: bool,
    idmapped: Option<BorrowedFd>,
) -> Result<()> {
    let (m, opts) = (mp.mount, &mp.opts);
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or("");
    let bind = opts.is_bind() || typ == "bind";
    let source: Option<PathBuf> = m.source().as_ref().map(|s| {
        if bind && s.is_relative() {
            bundle.join(s)
        } else {
            s.clone()
        }
    });
    let what = format!(
        "{} on {}",
        source.as_deref().unwrap_or(Path::new(typ)).display(),
        dest.display()
    );
    let kind = match &source {
        Some(s)
            if bind
                && !std::fs::metadata(s)
                    .with_context(|| format!("mount {what}: source"))?
                    .is_dir() =>
        {
            Kind::File
        }
        _ => Kind::Dir,
    };
    let covered_mode = if bind {
        None
    } else {
        covered_mode(root, dest, typ, opts)
    };
    let target = resolve::ensure(root, dest, kind).with_context(|| format!("mount {what}"))?;
    let target_path = resolve::proc_fd_path(&target);
    let data = opts.data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());

    if bind {
        let src = source
            .as_deref()
            .ok_or_else(|| Error::msg(format!("mount {what}: bind mount without source")))?;
        let rec = opts.flags & MsFlags::MS_REC;
        match idmapped {
            Some(tree) => sys::move_mount(tree, target.as_fd())
                .with_context(|| format!("move idmapped mount {what} into place"))?,
            None => mount(
                Some(src),
                target_path.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | rec,
                None::<&str>,
            )
            .with_context(|| format!("mount {what}"))?,
        }
        // The fd still names the covered directory; reopen to reach the
        // new mount for the remount and propagation changes.
        let top = resolve::open_in_root(root, &resolve::relative(dest), libc::O_PATH)
            .with_context(|| format!("reopen {}", dest.display()))?;
        let top_path = resolve::proc_fd_path(&top);
        let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            remount_bind(&top_path, extra, userns, &what)?;
        }
        finish(&top, &top_path, opts, &what)
    } else {
        // tmpcopyup only means something for tmpfs (runc ignores it
        // elsewhere). The covered directory is opened before the mount
        // hides it; a read-only tmpfs is filled first, then remounted ro.
        let copy_from = if opts.tmpcopyup && typ == "tmpfs" {
            Some(
                super::copyup::open_dir(target.as_fd())
                    .with_context(|| format!("tmpcopyup {what}"))?,
            )
        } else {
            None
        };
        let fill = copy_from.is_some() || covered_mode.is_some();
        let mut flags = opts.flags & !MsFlags::MS_REMOUNT;
        if fill {
            flags &= !MsFlags::MS_RDONLY;
        }
        let src = source.as_deref().unwrap_or(Path::new(typ));
        let r = mount(Some(src), target_path.as_str(), Some(typ), flags, data);
        if r.is_ok() && fill {
            let top = resolve::open_in_root(root, &resolve::relative(dest), libc::O_PATH)
                .with_context(|| format!("reopen {}", dest.display()))?;
            if let Some(mode) = covered_mode {
                use std::os::unix::fs::PermissionsExt;
                let perm = std::fs::Permissions::from_mode(mode);
                std::fs::set_permissions(resolve::proc_fd_path(&top), perm)
                    .with_context(|| format!("chmod {what} to {mode:o}, the covered mode"))?;
            }
            if let Some(from) = copy_from {
                let to = super::copyup::open_dir(top.as_fd())?;
                super::copyup::copy_tree(from.as_fd(), to.as_fd())
                    .with_context(|| format!("tmpcopyup {what}"))?;
            }
            if opts.flags.contains(MsFlags::MS_RDONLY) {
                mount(
                    None::<&str>,
                    resolve::proc_fd_path(&top).as_str(),
                    None::<&str>,
                    flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    data,
                )
                .with_context(|| format!("remount {what} read-only"))?;
            }
        }
        if let Err(e) = r {
            // In a user namespace without its own network namespace the
            // kernel refuses sysfs: bind the host's, read-only (as runc).
            if typ == "sysfs" && userns && e == nix::errno::Errno::EPERM {
                mount(
                    Some("/sys"),
                    target_path.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .with_context(|| format!("bind /sys on {}", dest.display()))?;
                let top = resolve::open_in_root(root, &resolve::relative(dest), libc::O_PATH)?;
                let top_path = resolve::proc_fd_path(&top);
                remount_bind(&top_path, flags | MsFlags::MS_RDONLY, userns, &what)?;
                return finish(&top, &top_path, opts, &what);
            }
            return Err(Error::from(e).context(format!("mount {what}")));
        }
        let top = resolve::open_in_root(root, &resolve::relative(dest), libc::O_PATH)
            .with_context(|| format!("reopen {}", dest.display()))?;
        let top_path = resolve::proc_fd_path(&top);
        finish(&top, &top_path, opts, &what)
    }
}

/// The mode a tmpfs without `mode=` gets on its root: that of the
/// directory it covers, as runc gives it (None: nothing is covered, the
/// tmpfs keeps its default 1777, or the mount is no such tmpfs).
fn covered_mode(root: BorrowedFd, dest: &Path, typ: &str, opts: &Options) -> Option<u32> {
    if typ != "tmpfs" || opts.data.iter().any(|d| d.starts_with("mode=")) {
        return None;
    }
    let fd = resolve::open_in_root(root, &resolve::relative(dest), libc::O_PATH).ok()?;
    let st = nix::sys::stat::fstat(&fd).ok()?;
    (st.st_mode & libc::S_IFMT == libc::S_IFDIR).then_some(st.st_mode & 0o7777)
}

fn finish(top: &OwnedFd, top_path: &str, opts: &Options, what: &str) -> Result<()> {
    set_propagation(top_path, &opts.propagation, what)?;
    if opts.attr_set != 0 || opts.attr_clr != 0 {
        mount_setattr(top.as_fd(), opts.attr_set, opts.attr_clr, what)?;
    }
    Ok(())
}

/// `CString` of a path for raw syscalls.
pub fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::msg(format!("path with a NUL byte: {}", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> Options {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn options_map_to_flags_propagation_attrs_and_data() {
        let o = p(&[
            "rbind", "ro", "nosuid", "rslave", "rnoexec", "size=64k", "mode=755",
        ]);
        assert!(o.flags.contains(
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        ));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.attr_set, MOUNT_ATTR_NOEXEC);
        assert_eq!(o.data, vec!["size=64k", "mode=755"]);
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let o = p(&["ro", "rw", "nodev", "dev"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.clear.contains(MsFlags::MS_RDONLY | MsFlags::MS_NODEV));
        assert_eq!(parse(&["idmap".to_string()]).unwrap().idmap, Some(false));
        assert_eq!(parse(&["ridmap".to_string()]).unwrap().idmap, Some(true));
    }
}
