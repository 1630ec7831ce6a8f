//! Extracting one layer tar into the rootfs with full fidelity while never
//! touching anything outside it.
//!
//! Containment: every parent directory is opened with openat2
//! `RESOLVE_IN_ROOT`, so symlinks (absolute or `..`) resolve as if the rootfs
//! were `/` — a write "through" `etc -> /etc` lands in `rootfs/etc`, never on
//! the host. The final component is always created with `*at` calls that do
//! not follow it (`O_EXCL|O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`).

use super::idmap::IdMap;
use super::path::normalize;
use super::whiteouts::{self, remove_at, LayerTree};
use crate::sys;
use anyhow::{bail, Context, Result};
use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use tar::EntryType;

/// xattr umoci uses to record ownership a rootless unpack cannot apply.
pub const ROOTLESS_XATTR: &str = "user.rootlesscontainers";

#[derive(Clone, Debug, Default)]
pub struct ExtractOptions {
    pub rootless: bool,
    pub uid_map: IdMap,
    pub gid_map: IdMap,
    /// Write whiteouts the way overlayfs keeps them (0/0 character devices,
    /// `trusted.overlay.opaque`) instead of applying them: a layer of the
    /// shared store, extracted on its own.
    pub overlay_whiteouts: bool,
}

pub struct Extractor {
    root: OwnedFd,
    root_path: PathBuf,
    opts: ExtractOptions,
    /// Paths this layer has written: whiteouts only hide lower layers.
    layer_paths: HashSet<PathBuf>,
    /// Directory mtimes, set when the layer is done (children change them):
    /// a directory's own entry, else the mtime it had before this layer
    /// wrote into it (as umoci keeps it).
    dir_times: HashMap<PathBuf, (i64, i64)>,
    /// Rootless: real directory modes, applied at the end (we keep u+rwx
    /// meanwhile so later entries can be written into them).
    dir_modes: HashMap<PathBuf, u32>,
    /// The last parent directory opened: tar entries come grouped by
    /// directory, so this saves an openat2 per entry.
    cache: Option<(PathBuf, OwnedFd)>,
    buf: Vec<u8>,
    /// Whether the cached parent directory is setgid (new files inherit
    /// its group then, so they always need a chown).
    parent_sgid: bool,
    euid: u32,
    egid: u32,
    pub notes: Vec<String>,
    pub entries: u64,
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    mtime_ns: i64,
    xattrs: Vec<(CString, Vec<u8>)>,
}

fn io_ctx<T>(r: io::Result<T>, what: &str, p: &Path) -> Result<T> {
    r.with_context(|| format!("{what} {}", p.display()))
}

impl Extractor {
    pub fn new(rootfs: &Path, opts: ExtractOptions) -> Result<Self> {
        let c = sys::cstr(rootfs.as_os_str())?;
        let root = sys::openat(sys::cwd_fd(), &c, libc::O_PATH | libc::O_DIRECTORY, 0)
            .with_context(|| format!("open rootfs {}", rootfs.display()))?;
        Ok(Extractor {
            root,
            root_path: rootfs.to_path_buf(),
            opts,
            layer_paths: HashSet::new(),
            dir_times: HashMap::new(),
            dir_modes: HashMap::new(),
            cache: None,
            buf: vec![0u8; 256 << 10],
            parent_sgid: true,
            euid: sys::geteuid(),
            egid: sys::getegid(),
            notes: Vec::new(),
            entries: 0,
        })
    }

    pub fn root_fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Apply one layer's tar stream.
    pub fn apply_layer<R: Read>(&mut self, r: R, label: &str) -> Result<()> {
        self.layer_paths.clear();
        let mut ar = tar::Archive::new(r);
        let entries = ar
            .entries()
            .with_context(|| format!("layer {label}: read tar"))?;
        for e in entries {
            if sys::interrupted() {
                bail!("layer {label}: interrupted by a signal");
            }
            let mut e = e.with_context(|| format!("layer {label}: read tar entry header"))?;
            let name = e.path_bytes().into_owned();
            self.apply_entry(&mut e).with_context(|| {
                format!("layer {label}: entry {:?}", String::from_utf8_lossy(&name))
            })?;
            self.entries += 1;
        }
        self.finish_layer()
            .with_context(|| format!("layer {label}: set directory times"))
    }

    fn apply_entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = e.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let Some(path) = normalize(&e.path_bytes())? else {
            // The root itself ("./"): only its metadata can change.
            if kind == EntryType::Directory {
                let meta = self.meta(e)?;
                let dot = c".";
                self.set_meta_at(
                    self.root.try_clone()?.as_fd(),
                    dot,
                    &meta,
                    false,
                    Path::new("."),
                )?;
            }
            return Ok(());
        };
        let (parent, name) = split(&path);
        let name_bytes = name.as_bytes();
        if let Some(rest) = name_bytes.strip_prefix(b".wh.") {
            self.cache = None;
            if let Ok(pfd) = self.open_dir_in_root(parent, false) {
                if let Ok(st) = sys::fstat(pfd.as_fd()) {
                    self.keep_dir_time(parent, &st);
                }
            }
            return whiteouts::apply(self, parent, rest);
        }

        let pfd = self.take_parent(parent, true)?;
        let res = self.create_entry(e, kind, pfd.as_fd(), &path, name);
        // The parent stays valid unless create_entry removed a directory or
        // symlink (then a cached path might now resolve elsewhere).
        if res.as_ref().map(|keep| *keep).unwrap_or(false) {
            self.cache = Some((parent.to_path_buf(), pfd));
        }
        res?;
        self.layer_paths.insert(path);
        Ok(())
    }

    /// Returns whether the parent fd may stay cached.
    fn create_entry<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        kind: EntryType,
        pfd: BorrowedFd<'_>,
        path: &Path,
        name: &OsStr,
    ) -> Result<bool> {
        let cname = sys::cstr(name)?;
        // Files and directories are created optimistically (most names are
        // new); anything else checks for an existing entry first.
        let mut keep_cache = true;
        let optimistic = matches!(
            kind,
            EntryType::Regular
                | EntryType::Continuous
                | EntryType::GNUSparse
                | EntryType::Directory
        );
        if !optimistic {
            (_, keep_cache) = clear_existing(pfd, &cname, kind, path)?;
        }
        let meta = self.meta(e)?;
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                keep_cache =
                    self.write_file(e, kind == EntryType::GNUSparse, pfd, &cname, &meta, path)?;
            }
            EntryType::Directory => {
                let mode = if self.opts.rootless {
                    meta.mode | 0o700
                } else {
                    meta.mode
                };
                match sys::mkdirat(pfd, &cname, mode & 0o777) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        let existing_dir;
                        (existing_dir, keep_cache) = clear_existing(pfd, &cname, kind, path)?;
                        if !existing_dir {
                            io_ctx(sys::mkdirat(pfd, &cname, mode & 0o777), "mkdir", path)?;
                        }
                    }
                    Err(e) => return Err(e).with_context(|| format!("mkdir {}", path.display())),
                }
                self.set_meta_at(pfd, &cname, &meta, false, path)?;
                if self.opts.rootless {
                    io_ctx(sys::fchmodat(pfd, &cname, mode), "chmod", path)?;
                    self.dir_modes.insert(path.to_path_buf(), meta.mode);
                }
                self.dir_times
                    .insert(path.to_path_buf(), (meta.mtime, meta.mtime_ns));
            }
            EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .with_context(|| format!("symlink {} has no target", path.display()))?;
                let t = CString::new(target.as_ref()).context("NUL in symlink target")?;
                // The target is stored verbatim (absolute ones included); it
                // is only ever followed through RESOLVE_IN_ROOT.
                io_ctx(sys::symlinkat(&t, pfd, &cname), "symlink", path)?;
                self.set_symlink_owner_at(pfd, &cname, &meta, path)?;
                self.set_xattrs_at(pfd, &cname, &meta, path)?;
                io_ctx(
                    sys::utimensat_ns(pfd, &cname, meta.mtime, meta.mtime_ns),
                    "set mtime of",
                    path,
                )?;
            }
            EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .with_context(|| format!("hardlink {} has no target", path.display()))?;
                let Some(tpath) = normalize(&target)? else {
                    bail!("hardlink {} points at the root directory", path.display());
                };
                let (tparent, tname) = split(&tpath);
                let tfd = self
                    .open_dir(tparent, false)
                    .with_context(|| format!("hardlink target {}", tpath.display()))?;
                let ctname = sys::cstr(tname)?;
                sys::linkat(tfd.as_fd(), &ctname, pfd, &cname).with_context(|| {
                    format!("hardlink {} to {}", path.display(), tpath.display())
                })?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (fmt, dev) = match kind {
                    EntryType::Fifo => (libc::S_IFIFO, 0),
                    _ => {
                        let major = e.header().device_major()?.unwrap_or(0);
                        let minor = e.header().device_minor()?.unwrap_or(0);
                        let fmt = if kind == EntryType::Char {
                            libc::S_IFCHR
                        } else {
                            libc::S_IFBLK
                        };
                        (fmt, libc::makedev(major, minor))
                    }
                };
                if self.opts.rootless && fmt != libc::S_IFIFO {
                    self.notes
                        .push(format!("skipped device node {} (rootless)", path.display()));
                    return Ok(keep_cache);
                }
                io_ctx(
                    sys::mknodat(pfd, &cname, fmt | (meta.mode & 0o777), dev),
                    "mknod",
                    path,
                )?;
                self.set_meta_at(pfd, &cname, &meta, true, path)?;
            }
            other => bail!("unsupported tar entry type {:?}", other.as_byte() as char),
        }
        Ok(keep_cache)
    }

    fn meta<R: Read>(&self, e: &mut tar::Entry<'_, R>) -> Result<Meta> {
        let h = e.header();
        let mode = h.mode().context("invalid mode")? & 0o7777;
        let uid = u32::try_from(h.uid().context("invalid uid")?).context("uid out of range")?;
        let gid = u32::try_from(h.gid().context("invalid gid")?).context("gid out of range")?;
        let mut mtime = h.mtime().context("invalid mtime")? as i64;
        let mut mtime_ns = 0;
        let mut xattrs = Vec::new();
        if let Some(exts) = e.pax_extensions().context("invalid PAX header")? {
            for ext in exts {
                let ext = ext.context("invalid PAX record")?;
                if ext.key_bytes() == b"mtime" {
                    (mtime, mtime_ns) =
                        pax_time(ext.value_bytes()).context("invalid PAX mtime record")?;
                } else if let Some(k) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((
                        CString::new(k).context("NUL in xattr name")?,
                        ext.value_bytes().to_vec(),
                    ));
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            mtime_ns,
            xattrs,
        })
    }

    fn write_file<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        sparse: bool,
        pfd: BorrowedFd<'_>,
        cname: &CStr,
        meta: &Meta,
        path: &Path,
    ) -> Result<bool> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        // Rootless: user.* xattrs need write permission on the inode, so the
        // owner keeps rw until they are set; the real mode goes on last.
        let create_mode = if self.opts.rootless {
            meta.mode & 0o777 | 0o600
        } else {
            meta.mode & 0o777
        };
        let mut keep_cache = true;
        let fd = match sys::openat(pfd, cname, flags, create_mode) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                (_, keep_cache) = clear_existing(pfd, cname, EntryType::Regular, path)?;
                io_ctx(sys::openat(pfd, cname, flags, create_mode), "create", path)?
            }
            Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
        };
        let mut f = File::from(fd);
        let size = e.size();
        let mut holes = false;
        loop {
            let n = match e.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(err).with_context(|| format!("read content of {}", path.display()))
                }
            };
            if sparse && self.buf[..n].iter().all(|&b| b == 0) {
                // Keep holes holes: seek instead of writing zeros.
                io_ctx(sys::lseek_cur(f.as_fd(), n as i64), "seek in", path)?;
                holes = true;
                continue;
            }
            io_ctx(f.write_all(&self.buf[..n]), "write", path)?;
        }
        if holes {
            io_ctx(sys::ftruncate(f.as_fd(), size), "truncate", path)?;
        }
        let fd = f.as_fd();
        // A new file already belongs to our euid/egid unless its directory
        // is setgid: skip the chown then (most image files are root's).
        let owned_already = !self.opts.rootless
            && !self.parent_sgid
            && self.opts.uid_map.to_host(meta.uid).ok() == Some(self.euid)
            && self.opts.gid_map.to_host(meta.gid).ok() == Some(self.egid);
        if !owned_already {
            self.apply_owner(
                meta,
                path,
                |uid, gid| sys::fchown(fd, uid, gid),
                |k, v| sys::fsetxattr(fd, k, v),
            )?;
        }
        // chown clears setuid/setgid, so the full mode goes on after it.
        if !self.opts.rootless && meta.mode & 0o7000 != 0 {
            io_ctx(sys::fchmod(fd, meta.mode), "chmod", path)?;
        }
        for (k, v) in &meta.xattrs {
            let r = sys::fsetxattr(fd, k, v);
            self.xattr_result(r, k, v, path, |k, v| sys::fsetxattr(fd, k, v))?;
        }
        if self.opts.rootless && create_mode != meta.mode {
            io_ctx(sys::fchmod(fd, meta.mode), "chmod", path)?;
        }
        io_ctx(
            sys::futimens_ns(fd, meta.mtime, meta.mtime_ns),
            "set mtime of",
            path,
        )?;
        Ok(keep_cache)
    }

    /// Ownership: chown to the mapped host ids, or (rootless) record the
    /// container ids in the rootlesscontainers xattr as umoci does.
    fn apply_owner(
        &self,
        meta: &Meta,
        path: &Path,
        chown: impl FnOnce(u32, u32) -> io::Result<()>,
        setx: impl FnOnce(&CStr, &[u8]) -> io::Result<()>,
    ) -> Result<()> {
        if self.opts.rootless {
            if meta.uid != 0 || meta.gid != 0 {
                let v = rootless_xattr_value(meta.uid, meta.gid);
                setx(c"user.rootlesscontainers", &v)
                    .with_context(|| format!("set {ROOTLESS_XATTR} on {}", path.display()))?;
            }
            return Ok(());
        }
        let uid = self
            .opts
            .uid_map
            .to_host(meta.uid)
            .with_context(|| format!("owner of {}", path.display()))?;
        let gid = self
            .opts
            .gid_map
            .to_host(meta.gid)
            .with_context(|| format!("group of {}", path.display()))?;
        chown(uid, gid).with_context(|| format!("chown {} to {uid}:{gid}", path.display()))
    }

    /// Like `set_owner_at`, but the kernel refuses `user.*` xattrs on
    /// symlinks and special files: their rootless ownership is dropped, as
    /// umoci does for symlinks.
    fn set_symlink_owner_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        meta: &Meta,
        path: &Path,
    ) -> Result<()> {
        let setx = |k: &CStr, v: &[u8]| match sys::lsetxattrat(dir, name, k, v) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
            r => r,
        };
        self.apply_owner(meta, path, |u, g| sys::fchownat(dir, name, u, g), setx)
    }

    fn set_owner_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        meta: &Meta,
        path: &Path,
    ) -> Result<()> {
        self.apply_owner(
            meta,
            path,
            |u, g| sys::fchownat(dir, name, u, g),
            |k, v| sys::lsetxattrat(dir, name, k, v),
        )
    }

    fn set_xattrs_at(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        meta: &Meta,
        path: &Path,
    ) -> Result<()> {
        for (k, v) in &meta.xattrs {
            let r = sys::lsetxattrat(dir, name, k, v);
            self.xattr_result(r, k, v, path, |k, v| sys::lsetxattrat(dir, name, k, v))?;
        }
        Ok(())
    }

    /// Rootless: an xattr the kernel refuses an unprivileged user
    /// (`security.capability`, `trusted.*`) is kept under
    /// `user.berth.xattr.NAME` (as ownership goes into
    /// user.rootlesscontainers) with a note, the way umoci warns and goes on.
    fn xattr_result(
        &mut self,
        r: io::Result<()>,
        k: &CStr,
        v: &[u8],
        path: &Path,
        set: impl FnOnce(&CStr, &[u8]) -> io::Result<()>,
    ) -> Result<()> {
        let name = k.to_string_lossy();
        match r {
            Ok(()) => Ok(()),
            Err(e)
                if self.opts.rootless
                    && !name.starts_with("user.")
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::ENOTSUP)
                    ) =>
            {
                let kept = CString::new(format!("{KEPT_XATTR_PREFIX}{name}"))
                    .context("NUL in xattr name")?;
                let how = match set(&kept, v) {
                    Ok(()) => format!("kept as {}", kept.to_string_lossy()),
                    Err(_) => "dropped".to_string(),
                };
                self.notes.push(format!(
                    "cannot set xattr {name} on {} as an unprivileged user ({e}); {how}",
                    path.display()
                ));
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("set xattr {name} on {}", path.display())),
        }
    }

    /// Owner, mode, xattrs (and mtime for non-directories) of a name that is
    /// not a symlink.
    fn set_meta_at(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        meta: &Meta,
        with_mtime: bool,
        path: &Path,
    ) -> Result<()> {
        if with_mtime {
            // Fifos and device nodes, like symlinks, cannot carry user.* xattrs.
            self.set_symlink_owner_at(dir, name, meta, path)?;
        } else {
            self.set_owner_at(dir, name, meta, path)?;
        }
        if !self.opts.rootless {
            io_ctx(sys::fchmodat(dir, name, meta.mode), "chmod", path)?;
        }
        self.set_xattrs_at(dir, name, meta, path)?;
        if with_mtime {
            io_ctx(
                sys::utimensat_ns(dir, name, meta.mtime, meta.mtime_ns),
                "set mtime of",
                path,
            )?;
        }
        Ok(())
    }

    /// The parent directory for an entry, from the cache or resolved in root.
    fn take_parent(&mut self, parent: &Path, create: bool) -> Result<OwnedFd> {
        if let Some((p, fd)) = self.cache.take() {
            if p == parent {
                return Ok(fd);
            }
        }
        let fd = self.open_dir_in_root(parent, create)?;
        let st = sys::fstat(fd.as_fd())
            .with_context(|| format!("stat directory {}", parent.display()))?;
        self.parent_sgid = st.st_mode & libc::S_ISGID != 0;
        self.keep_dir_time(parent, &st);
        Ok(fd)
    }

    /// Remember a directory's mtime before this layer writes into it, so a
    /// directory the layer changes without an entry of its own keeps it.
    fn keep_dir_time(&mut self, dir: &Path, st: &libc::stat) {
        if !dir.as_os_str().is_empty() {
            self.dir_times
                .entry(dir.to_path_buf())
                .or_insert((st.st_mtime, st.st_mtime_nsec));
        }
    }

    /// Open a directory inside the rootfs, following symlinks only within
    /// it; with `create`, make missing (implied) parents as 0755 root dirs.
    fn open_dir_in_root(&mut self, rel: &Path, create: bool) -> Result<OwnedFd> {
        if rel.as_os_str().is_empty() {
            return Ok(self.root.try_clone()?);
        }
        let c = sys::cstr(rel.as_os_str())?;
        match sys::open_in_root(self.root.as_fd(), &c, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => return Ok(fd),
            Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e).with_context(|| format!("open directory {}", rel.display())),
        }
        self.mkdir_p(rel, 0)
    }

    /// Create the missing directories of `rel`. Each step re-resolves the
    /// prefix in root, so symlink components are followed but contained; a
    /// dangling symlink is followed to its (in-root) target, which is created.
    fn mkdir_p(&mut self, rel: &Path, hops: u32) -> Result<OwnedFd> {
        if hops > 40 {
            bail!(
                "too many levels of symbolic links creating {}",
                rel.display()
            );
        }
        let comps: Vec<_> = rel.components().collect();
        let mut prefix = PathBuf::new();
        let mut fd = self.root.try_clone()?;
        for (i, comp) in comps.iter().enumerate() {
            let parent = prefix.clone();
            prefix.push(comp);
            let cp = sys::cstr(prefix.as_os_str())?;
            match sys::open_in_root(self.root.as_fd(), &cp, libc::O_PATH | libc::O_DIRECTORY) {
                Ok(next) => {
                    fd = next;
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("open directory {}", prefix.display()))
                }
            }
            let name = sys::cstr(comp.as_os_str())?;
            match sys::lstatat(fd.as_fd(), &name)
                .with_context(|| format!("lstat {}", prefix.display()))?
            {
                Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                    let target = sys::readlinkat(fd.as_fd(), &name)
                        .with_context(|| format!("readlink {}", prefix.display()))?;
                    let mut joined = if target.starts_with(b"/") {
                        Vec::new()
                    } else {
                        parent.as_os_str().as_bytes().to_vec()
                    };
                    joined.push(b'/');
                    joined.extend_from_slice(&target);
                    let mut next = super::path::normalize_in_root(&joined);
                    for c in &comps[i + 1..] {
                        next.push(c);
                    }
                    return self.mkdir_p(&next, hops + 1);
                }
                Some(_) => bail!("{} exists and is not a directory", prefix.display()),
                None => {
                    sys::mkdirat(fd.as_fd(), &name, 0o755).with_context(|| {
                        format!("create implied directory {}", prefix.display())
                    })?;
                    fd =
                        sys::open_in_root(self.root.as_fd(), &cp, libc::O_PATH | libc::O_DIRECTORY)
                            .with_context(|| {
                                format!("open implied directory {}", prefix.display())
                            })?;
                }
            }
        }
        Ok(fd)
    }

    fn finish_layer(&mut self) -> Result<()> {
        self.cache = None;
        let dirs = std::mem::take(&mut self.dir_times);
        for (p, (sec, nsec)) in dirs {
            self.at_if_present(&p, "set mtime of", |dir, name| {
                sys::utimensat_ns(dir, name, sec, nsec)
            })?;
        }
        Ok(())
    }

    /// Apply `op` to `p` through its parent directory, unless a later entry
    /// removed or replaced it (its parent is gone, or ENOENT).
    fn at_if_present(
        &mut self,
        p: &Path,
        what: &str,
        op: impl FnOnce(BorrowedFd, &CStr) -> io::Result<()>,
    ) -> Result<()> {
        let (parent, name) = split(p);
        let Ok(pfd) = self.open_dir_in_root(parent, false) else {
            return Ok(());
        };
        let c = sys::cstr(name)?;
        match op(pfd.as_fd(), &c) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                Err(e).with_context(|| format!("{what} {}", p.display()))
            }
            _ => Ok(()),
        }
    }

    /// After the last layer: rootless directory modes.
    pub fn finish(&mut self) -> Result<()> {
        let modes = std::mem::take(&mut self.dir_modes);
        let mut modes: Vec<_> = modes.into_iter().collect();
        // Deepest first, so tightening a parent never blocks a child.
        modes.sort_by_key(|m| std::cmp::Reverse(m.0.components().count()));
        for (p, mode) in modes {
            // Only while it is still a directory: a later layer may have put
            // a file (or symlink) in its place, which keeps its own mode.
            self.at_if_present(&p, "chmod", |dir, name| match sys::lstatat(dir, name)? {
                Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                    sys::fchmodat(dir, name, mode)
                }
                _ => Ok(()),
            })?;
        }
        Ok(())
    }

    pub fn root_path(&self) -> &Path {
        &self.root_path
    }
}

/// Make way for a new entry at `name`: an existing directory stays when
/// the entry is a directory too, anything else is removed. Returns
/// (kept an existing directory, parent cache still valid).
fn clear_existing(
    dir: BorrowedFd<'_>,
    name: &CStr,
    kind: EntryType,
    path: &Path,
) -> Result<(bool, bool)> {
    let Some(st) = io_ctx(sys::lstatat(dir, name), "lstat", path)? else {
        return Ok((false, true));
    };
    let fmt = st.st_mode & libc::S_IFMT;
    if fmt == libc::S_IFDIR && kind == EntryType::Directory {
        return Ok((true, true));
    }
    remove_at(dir, name, fmt == libc::S_IFDIR)
        .with_context(|| format!("replace existing {}", path.display()))?;
    // Removing a directory or symlink may change what cached paths mean.
    Ok((false, fmt != libc::S_IFDIR && fmt != libc::S_IFLNK))
}

pub(super) fn split(p: &Path) -> (&Path, &OsStr) {
    let parent = p.parent().unwrap_or(Path::new(""));
    let name = p.file_name().unwrap_or(p.as_os_str());
    (parent, name)
}

/// Prefix under which a rootless unpack keeps xattrs it may not set.
pub const KEPT_XATTR_PREFIX: &str = "user.berth.xattr.";

/// A PAX time record: `SECONDS[.FRACTION]` (negative times allowed).
fn pax_time(v: &[u8]) -> Result<(i64, i64)> {
    let s = std::str::from_utf8(v).context("not UTF-8")?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().context("not a number")?;
    if frac.is_empty() {
        return Ok((sec, 0));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        bail!("not a number");
    }
    let digits = &frac[..frac.len().min(9)];
    let mut ns: i64 = digits.parse().context("not a number")?;
    for _ in digits.len()..9 {
        ns *= 10;
    }
    if s.starts_with('-') && ns != 0 {
        // -1.25 is 1.25 s before the epoch: -2 s + 0.75 s.
        return Ok((sec - 1, 1_000_000_000 - ns));
    }
    Ok((sec, ns))
}

/// The protobuf encoding of rootlesscontainers' `Resource{uid=1, gid=2}`
/// (proto3: zero fields are omitted).
pub fn rootless_xattr_value(uid: u32, gid: u32) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut out = Vec::new();
    if uid != 0 {
        out.push(0x08);
        varint(&mut out, uid as u64);
    }
    if gid != 0 {
        out.push(0x10);
        varint(&mut out, gid as u64);
    }
    out
}

impl LayerTree for Extractor {
    fn open_dir(&mut self, rel: &Path, create: bool) -> Result<OwnedFd> {
        self.open_dir_in_root(rel, create)
    }
    fn layer_paths(&self) -> &HashSet<PathBuf> {
        &self.layer_paths
    }
    fn overlay_whiteouts(&self) -> bool {
        self.opts.overlay_whiteouts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_xattr_is_protobuf() {
        assert_eq!(rootless_xattr_value(1000, 0), vec![0x08, 0xe8, 0x07]);
        assert_eq!(rootless_xattr_value(0, 5), vec![0x10, 5]);
        assert!(rootless_xattr_value(0, 0).is_empty());
    }

    #[test]
    fn pax_times_keep_their_fraction() {
        assert_eq!(
            pax_time(b"1600000000.5").expect("ok"),
            (1600000000, 500000000)
        );
        assert_eq!(pax_time(b"12").expect("ok"), (12, 0));
        assert_eq!(pax_time(b"1.0000000019").expect("ok"), (1, 1));
        assert_eq!(pax_time(b"-1.25").expect("ok"), (-2, 750000000));
        assert!(pax_time(b"1.x").is_err());
    }
}
