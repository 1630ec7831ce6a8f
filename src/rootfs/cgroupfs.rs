//! The `cgroup` mount inside the container. cgroup v1 cannot be mounted
//! again with no controller named (every controller is already bound to a
//! hierarchy), so on v1/hybrid the container gets what runc gives it: a
//! tmpfs with one mount per hierarchy. With a cgroup namespace the init
//! may mount cgroupfs in (`Plan::cgroupfs`: the kernel refuses cgroup v1
//! in a user namespace that does not own the cgroup namespace) each is
//! that hierarchy's cgroupfs, showing the namespace's root: the
//! container's own cgroup for a new namespace, wherever a joined one is
//! rooted otherwise. Else each is a read-only bind of the container's own
//! cgroup. On a pure v2 host it is cgroup2 itself (rooted at the
//! container's cgroup when it has a cgroup namespace).

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use super::mounts::{self, Options};
use super::resolve::{self, Kind};
use crate::cgroups::{self, Manager, Mode};
use crate::error::{Context, Result};

pub fn mount_cgroup(
    root: BorrowedFd,
    dest: &Path,
    opts: &Options,
    cg: &Manager,
    cgroupns: bool,
    cgroupfs: bool,
) -> Result<()> {
    let what = format!("cgroup on {}", dest.display());
    let layout = cgroups::detect::layout()?;
    let target = resolve::ensure(root, dest, Kind::Dir).with_context(|| format!("mount {what}"))?;
    let base_flags = opts.flags
        & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME);
    if layout.mode == Mode::Unified {
        if cgroupns {
            match mount(
                Some("cgroup2"),
                resolve::proc_fd_path(&target).as_str(),
                Some("cgroup2"),
                opts.flags,
                None::<&str>,
            ) {
                // The target is already the root of a cgroup2 mount (a /sys
                // rbind, as `spec --rootless` has): the kernel refuses the
                // same superblock twice there; bind the cgroup, as runc does.
                Err(nix::errno::Errno::EBUSY) => {}
                r => return r.with_context(|| format!("mount {what}")),
            }
        }
        let src = cg
            .unified_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
        drop(target);
        return bind_ro(root, &src, dest, opts, &what);
    }
    mount(
        Some("tmpfs"),
        resolve::proc_fd_path(&target).as_str(),
        Some("tmpfs"),
        base_flags,
        Some("mode=755"),
    )
    .with_context(|| format!("mount tmpfs for {what}"))?;
    // Group controllers by hierarchy (cpu and cpuacct may share one).
    let mut hierarchies: BTreeMap<&Path, Vec<&str>> = BTreeMap::new();
    for (ctrl, mnt) in &layout.v1_mounts {
        hierarchies
            .entry(mnt.as_path())
            .or_default()
            .push(ctrl.as_str());
    }
    for (mnt, ctrls) in &hierarchies {
        let Some(name) = mnt.file_name() else {
            continue;
        };
        let Some(src) = ctrls.iter().find_map(|c| cg.v1_dirs.get(*c)) else {
            continue;
        };
        let sub = dest.join(name);
        if cgroupfs {
            mount_fs(root, "cgroup", &ctrls.join(","), &sub, opts)?;
        } else {
            bind_ro(
                root,
                src,
                &sub,
                opts,
                &format!("cgroup {} on {}", src.display(), sub.display()),
            )?;
        }
        // Co-mounted controllers: `cpu -> cpu,cpuacct`, as on the host.
        let top = resolve::open_in_root(
            root,
            &resolve::relative(dest),
            libc::O_PATH | libc::O_DIRECTORY,
        )?;
        for c in ctrls {
            let c = c.trim_start_matches("name=");
            if Path::new(c) != Path::new(name) {
                let _ = nix::unistd::symlinkat(name, &top, c);
            }
        }
    }
    if let Some(u) = &cg.unified_dir {
        let sub = dest.join("unified");
        if cgroupfs {
            mount_fs(root, "cgroup2", "", &sub, opts)?;
        } else {
            bind_ro(
                root,
                u,
                &sub,
                opts,
                &format!("cgroup {} on {}", u.display(), sub.display()),
            )?;
        }
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let top = resolve::open_in_root(root, &resolve::relative(dest), libc::O_PATH)?;
        mount(
            None::<&str>,
            resolve::proc_fd_path(&top).as_str(),
            None::<&str>,
            MsFlags::MS_REMOUNT | base_flags | MsFlags::MS_RDONLY,
            Some("mode=755"),
        )
        .with_context(|| format!("remount {what} read-only"))?;
    }
    Ok(())
}

/// A new mount of the cgroup filesystem `fstype` (v1: the hierarchy of
/// `ctrls`) on `dest` inside the root, with the mount's restricting flags:
/// the kernel shows it from the root of the caller's cgroup namespace.
fn mount_fs(
    root: BorrowedFd,
    fstype: &str,
    ctrls: &str,
    dest: &Path,
    opts: &Options,
) -> Result<()> {
    let what = || format!("mount {fstype} {ctrls} on {}", dest.display());
    let t = resolve::ensure(root, dest, Kind::Dir).with_context(what)?;
    let flags = opts.flags
        & (MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_RELATIME
            | MsFlags::MS_RDONLY);
    // The source is free text; runc's names, as callers may read them.
    let source = if ctrls == "name=systemd" {
        "systemd"
    } else {
        fstype
    };
    mount(
        Some(source),
        resolve::proc_fd_path(&t).as_str(),
        Some(fstype),
        flags,
        Some(ctrls).filter(|c| !c.is_empty()),
    )
    .with_context(what)
}

/// Bind `src` on `dest` (inside the root), then remount it with the mount's
/// restricting flags.
fn bind_ro(root: BorrowedFd, src: &Path, dest: &Path, opts: &Options, what: &str) -> Result<()> {
    let t = resolve::ensure(root, dest, Kind::Dir).with_context(|| format!("mount {what}"))?;
    mount(
        Some(src),
        resolve::proc_fd_path(&t).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("mount {what}"))?;
    let top = resolve::open_in_root(root, &resolve::relative(dest), libc::O_PATH)
        .with_context(|| format!("reopen {}", dest.display()))?;
    let flags = opts.flags
        & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY);
    mounts::remount_bind(&resolve::proc_fd_path(&top), flags, false, what)
}
