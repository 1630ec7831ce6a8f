//! Which namespaces the container gets new, which it joins by path, and the
//! parent-side juggling clone3 needs for the joined ones.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};

use crate::error::{Context, Error, Result};
use crate::sys;

pub fn flag_of(t: LinuxNamespaceType) -> i32 {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// The name under /proc/PID/ns/.
pub fn proc_name(flag: i32) -> &'static str {
    match flag {
        libc::CLONE_NEWNS => "mnt",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "pid_for_children",
        libc::CLONE_NEWNET => "net",
        libc::CLONE_NEWTIME => "time_for_children",
        _ => "?",
    }
}

pub struct Join {
    pub flag: i32,
    pub fd: OwnedFd,
    pub path: PathBuf,
}

#[derive(Default)]
pub struct Plan {
    /// CLONE_NEW* flags of the namespaces created new.
    pub new: i32,
    /// Namespaces joined by path, except the user namespace.
    pub joins: Vec<Join>,
    /// A user namespace joined by path.
    pub user_join: Option<Join>,
}

impl Plan {
    pub fn from_spec(linux: Option<&Linux>) -> Result<Plan> {
        let mut plan = Plan::default();
        let mut seen = 0;
        let namespaces = linux.and_then(|l| l.namespaces().as_ref());
        for ns in namespaces.into_iter().flatten() {
            let flag = flag_of(ns.typ());
            if seen & flag != 0 {
                crate::bail!("namespace {} is listed twice", ns.typ());
            }
            seen |= flag;
            match ns.path() {
                None => plan.new |= flag,
                Some(p) if p.as_os_str().is_empty() => plan.new |= flag,
                Some(p) => {
                    let file = File::open(p).with_context(|| {
                        format!("open {} namespace path {}", ns.typ(), p.display())
                    })?;
                    let join = Join {
                        flag,
                        fd: file.into(),
                        path: p.clone(),
                    };
                    if flag == libc::CLONE_NEWUSER {
                        plan.user_join = Some(join);
                    } else {
                        plan.joins.push(join);
                    }
                }
            }
        }
        Ok(plan)
    }

    /// New or joined.
    pub fn has(&self, flag: i32) -> bool {
        self.new & flag != 0
            || self.joins.iter().any(|j| j.flag == flag)
            || (flag == libc::CLONE_NEWUSER && self.user_join.is_some())
    }

    pub fn has_userns(&self) -> bool {
        self.has(libc::CLONE_NEWUSER)
    }

    /// The CLONE_NEW* flags clone3 gets. The time namespace is made by
    /// the parent (see `enter_for_clone`), the `late` ones by the init
    /// itself, and with a user namespace joined by path everything is
    /// unshared by the init after joining it.
    pub fn clone_flags(&self) -> u64 {
        if self.user_join.is_some() {
            return 0;
        }
        (self.new & !(libc::CLONE_NEWTIME | self.late())) as u64
    }

    /// What the init unshares itself after joining a user namespace by path
    /// (so they belong to it).
    pub fn unshare_after_userns(&self) -> i32 {
        if self.user_join.is_some() {
            self.new & !(libc::CLONE_NEWTIME | self.late())
        } else {
            0
        }
    }

    /// What the init unshares last, once it sits in its cgroups and is root
    /// of its user namespace: the cgroup namespace (then rooted at the
    /// container's cgroup) and, in a user namespace, the IPC namespace. Its
    /// mqueue filesystem's root belongs to whoever creates the namespace:
    /// the container's root, not the runtime (which the container would
    /// see as the overflow user on /dev/mqueue).
    pub fn late(&self) -> i32 {
        let ipc = if self.has_userns() {
            libc::CLONE_NEWIPC
        } else {
            0
        };
        self.new & (libc::CLONE_NEWCGROUP | ipc)
    }

    /// Unshare the `late` namespaces (the init, at that point).
    pub fn unshare_late(&self) -> Result<()> {
        let late = self.late();
        if late == 0 {
            return Ok(());
        }
        let names: Vec<&str> = [libc::CLONE_NEWCGROUP, libc::CLONE_NEWIPC]
            .into_iter()
            .filter(|f| late & f != 0)
            .map(proc_name)
            .collect();
        sys::unshare(late).with_context(|| format!("unshare {} namespace", names.join(" and ")))
    }

    /// A new pid namespace inside a user namespace joined by path: only a
    /// child of the unsharing process is born into it, so the init is
    /// forked once more (see `init::fork_into_pidns`).
    pub fn forks_init(&self) -> bool {
        self.user_join.is_some() && self.new & libc::CLONE_NEWPID != 0
    }
}

/// The parent's own namespaces, saved before it enters the container's so it
/// can return to them right after clone3.
pub struct Saved(Vec<(i32, OwnedFd)>);

impl Saved {
    /// Nothing entered, nothing to restore.
    pub fn none() -> Saved {
        Saved(Vec::new())
    }

    pub fn restore(self) -> Result<()> {
        for (flag, fd) in self.0 {
            sys::setns(fd.as_fd(), flag).with_context(|| {
                format!("return to the runtime's {} namespace", proc_name(flag))
            })?;
        }
        Ok(())
    }
}

/// Enter the joined namespaces (and create a new time namespace with its
/// offsets) in the parent, so that clone3 gives birth to the init inside
/// them. The kernel forces this: a pid namespace can only be entered by
/// being born into it; host-owned namespaces can no longer be joined once
/// the init is in its new user namespace; and time offsets can only be
/// written between `unshare(CLONE_NEWTIME)` and the first process entering
/// it (clone3 with CLONE_NEWTIME would leave them unwritable: EACCES).
pub fn enter_for_clone(plan: &Plan, linux: Option<&Linux>) -> Result<Saved> {
    let mut saved = Vec::new();
    let time_new = plan.new & libc::CLONE_NEWTIME != 0;
    let res = (|| -> Result<()> {
        // Open every namespace of ours first, and do the time namespace
        // before joining any: once in the container's mount namespace,
        // /proc is the container's.
        let mut own = Vec::new();
        for j in &plan.joins {
            let f = File::open(format!("/proc/self/ns/{}", proc_name(j.flag)))
                .with_context(|| format!("open own {} namespace", proc_name(j.flag)))?;
            own.push((j.flag, OwnedFd::from(f)));
        }
        if time_new {
            let f =
                File::open("/proc/self/ns/time_for_children").context("open own time namespace")?;
            saved.push((libc::CLONE_NEWTIME, OwnedFd::from(f)));
            sys::unshare(libc::CLONE_NEWTIME).context("unshare time namespace")?;
            write_time_offsets(linux)?;
        }
        // The mount namespace last: joining it changes our root.
        let mut joins: Vec<&Join> = plan.joins.iter().collect();
        joins.sort_by_key(|j| j.flag == libc::CLONE_NEWNS);
        for j in joins {
            if let Some(i) = own.iter().position(|(f, _)| *f == j.flag) {
                saved.push(own.swap_remove(i));
            }
            sys::setns(j.fd.as_fd(), j.flag).with_context(|| {
                format!("join {} namespace {}", proc_name(j.flag), j.path.display())
            })?;
        }
        Ok(())
    })();
    let saved = Saved(saved);
    if let Err(e) = res {
        saved.restore()?;
        return Err(e);
    }
    Ok(saved)
}

/// `linux.timeOffsets` names only the clocks a time namespace has.
pub fn check_time_offsets(linux: Option<&Linux>) -> Result<()> {
    for clock in linux
        .and_then(|l| l.time_offsets().as_ref())
        .into_iter()
        .flatten()
        .map(|(c, _)| c)
    {
        if clock != "monotonic" && clock != "boottime" {
            crate::bail!("linux.timeOffsets: unknown clock {clock:?} (monotonic or boottime)");
        }
    }
    Ok(())
}

fn write_time_offsets(linux: Option<&Linux>) -> Result<()> {
    let Some(offsets) = linux.and_then(|l| l.time_offsets().as_ref()) else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in offsets {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    if text.is_empty() {
        return Ok(());
    }
    std::fs::write("/proc/self/timens_offsets", text.as_bytes())
        .context("write time namespace offsets")
}

/// Write the init's uid_map and gid_map (the init waits until we are done).
pub fn write_id_maps(pid: i32, linux: Option<&Linux>) -> Result<()> {
    let Some(linux) = linux else { return Ok(()) };
    write_maps(
        pid,
        linux.uid_mappings().as_deref().unwrap_or(&[]),
        linux.gid_mappings().as_deref().unwrap_or(&[]),
    )
}

/// Write `pid`'s uid_map and gid_map (each skipped when empty). A runtime
/// without privilege writes a map itself only when it maps its own id
/// alone (the gid map after denying setgroups, as the kernel requires);
/// any other map goes through newuidmap/newgidmap, which check
/// /etc/subuid and /etc/subgid. `pid` must be dumpable meanwhile (see
/// `init::setup`).
pub fn write_maps(pid: i32, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<()> {
    let unprivileged = sys::geteuid() != 0;
    for (file, maps, own) in [
        ("uid_map", uid, sys::geteuid()),
        ("gid_map", gid, sys::getegid()),
    ] {
        if maps.is_empty() {
            continue;
        }
        if unprivileged && !crate::rootless::own_id_only(maps, own) {
            map_with_helper(pid, file, maps, own)?;
            continue;
        }
        if unprivileged && file == "gid_map" {
            let path = format!("/proc/{pid}/setgroups");
            std::fs::write(&path, b"deny")
                .map_err(|e| Error::from(e).context(format!("write {path}")))?;
        }
        let mut text = String::new();
        for m in maps {
            text.push_str(&format!(
                "{} {} {}\n",
                m.container_id(),
                m.host_id(),
                m.size()
            ));
        }
        let path = format!("/proc/{pid}/{file}");
        // One write: the kernel accepts a map only once, whole.
        std::fs::write(&path, text.as_bytes())
            .map_err(|e| Error::from(e).context(format!("write {path}")))?;
    }
    Ok(())
}

/// newuidmap/newgidmap PID (containerID hostID size)...
fn map_with_helper(pid: i32, file: &str, maps: &[LinuxIdMapping], own: u32) -> Result<()> {
    let (tool, field, db) = if file == "uid_map" {
        ("newuidmap", "linux.uidMappings", "/etc/subuid")
    } else {
        ("newgidmap", "linux.gidMappings", "/etc/subgid")
    };
    let why = format!(
        "{field} maps more than the caller's own id {own}: an unprivileged runtime needs \
         {tool} (Debian package uidmap) and an entry for the user in {db}"
    );
    let Some(bin) = find_helper(tool) else {
        crate::bail!("{why}; {tool} is not installed");
    };
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("run {}", bin.display()))?;
    if !out.status.success() {
        crate::bail!(
            "{why}; {tool} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn find_helper(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}
