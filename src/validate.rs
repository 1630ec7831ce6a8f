//! The whole config, checked once in the parent before anything is created,
//! and turned into the typed plan the rest carries out: namespaces
//! (`process::namespaces::Plan`), the root filesystem (`rootfs::Plan`), the
//! process (`process::plan::ProcessPlan`) and the few per-container
//! settings below. The init only executes the plan; it never decides
//! whether the config is valid. Messages name the field
//! (`linux.sysctl["kernel.x"]: ...`).
//!
//! What only the container can show (the executable lookup, the cwd after
//! the mounts) is still found in the child and reported the same way.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hook, Hooks, Spec};

use crate::error::{Context, Error, Result};
use crate::process::namespaces;
use crate::process::plan::ProcessPlan;
use crate::rootfs;

/// What the runtime was asked besides the config (create/run flags).
pub struct RuntimeOptions<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// fds 3.. passed to the process (LISTEN_FDS and --preserve-fds).
    pub listen_fds: u32,
    pub preserve_fds: u32,
}

/// A container, ready to be created.
pub struct Plan<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    /// Canonical bundle directory.
    pub bundle: PathBuf,
    pub namespaces: namespaces::Plan,
    pub rootfs: rootfs::Plan<'a>,
    pub process: ProcessPlan<'a>,
    pub hostname: Option<&'a str>,
    pub domainname: Option<&'a str>,
    /// (`/proc/sys/...` path, key, value).
    pub sysctl: Vec<(PathBuf, &'a str, &'a str)>,
    pub oom_score_adj: Option<i32>,
    /// The persona for personality(2).
    pub personality: Option<libc::c_ulong>,
    pub new_keyring: bool,
    pub hooks: Option<&'a Hooks>,
    /// `linux.memoryPolicy`, set by the init before execve.
    pub memory_policy: Option<crate::process::mempolicy::Policy>,
    /// `linux.netDevices`, moved in by the parent.
    pub net_devices: Vec<crate::netdev::Device>,
}

impl Plan<'_> {
    /// The canonical root filesystem path.
    pub fn rootfs_path(&self) -> &Path {
        &self.rootfs.rootfs
    }
}

/// Check `spec` (from `opts.bundle`) and build its plan.
pub fn container<'a>(spec: &'a Spec, opts: &RuntimeOptions<'a>) -> Result<Plan<'a>> {
    let bundle = std::fs::canonicalize(opts.bundle)
        .with_context(|| format!("bundle {}", opts.bundle.display()))?;
    let linux = spec.linux().as_ref();
    let Some(process) = spec.process().as_ref() else {
        crate::bail!("process: required (config.json has none)");
    };
    let ns = namespaces::Plan::from_spec(linux)?;
    ids(&ns, spec)?;
    namespaces::check_time_offsets(linux)?;

    let hostname = spec.hostname().as_deref().filter(|h| !h.is_empty());
    let domainname = spec.domainname().as_deref().filter(|d| !d.is_empty());
    for (field, v) in [("hostname", hostname), ("domainname", domainname)] {
        if v.is_some() && !ns.has(libc::CLONE_NEWUTS) {
            crate::bail!("{field}: unable to set {field} without a private UTS namespace");
        }
    }
    let sysctl = sysctls(&ns, spec)?;
    security_labels(spec, process)?;
    let personality = match linux.and_then(|l| l.personality().as_ref()) {
        Some(p) => Some(crate::process::attrs::persona(p).context("linux.personality")?),
        None => None,
    };
    if let Some(h) = spec.hooks().as_ref() {
        hooks(h)?;
    }
    crate::intel_rdt::check(linux)?;
    crate::cgroups::resources::check_hugepage_limits(linux.and_then(|l| l.resources().as_ref()))?;
    let memory_policy = crate::process::mempolicy::plan(linux)?;
    let net_devices = crate::netdev::plan(linux, &ns)?;

    let listen_env: Vec<String> = match opts.listen_fds {
        0 => Vec::new(),
        n => vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".to_string()],
    };
    let process_plan = ProcessPlan::new(
        process,
        linux.and_then(|l| l.seccomp().as_ref()),
        ns.has_userns(),
        &listen_env,
        3 + opts.listen_fds + opts.preserve_fds,
    )?;
    let rootfs = rootfs::Plan::from_spec(spec, &bundle, &ns, opts.no_pivot)?;
    Ok(Plan {
        id: opts.id,
        spec,
        bundle,
        namespaces: ns,
        rootfs,
        process: process_plan,
        hostname,
        domainname,
        sysctl,
        oom_score_adj: process.oom_score_adj(),
        personality,
        new_keyring: !opts.no_new_keyring,
        hooks: spec.hooks().as_ref(),
        memory_policy,
        net_devices,
    })
}

/// AppArmor and SELinux labels. berth applies neither; on a host without
/// them (no LSM to apply them to) they are ignored, as runc ignores them
/// there; on a host that enforces one, asking for a label it would not get
/// is an error rather than a container that silently runs unconfined.
fn security_labels(spec: &Spec, process: &oci_spec::runtime::Process) -> Result<()> {
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y");
    if apparmor
        && process
            .apparmor_profile()
            .as_deref()
            .is_some_and(|p| !p.is_empty())
    {
        crate::bail!("process.apparmorProfile: AppArmor is enabled on this host but berth cannot apply profiles");
    }
    let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
    let label = process
        .selinux_label()
        .as_deref()
        .is_some_and(|l| !l.is_empty());
    let mount_label = spec
        .linux()
        .as_ref()
        .and_then(|l| l.mount_label().as_deref())
        .is_some_and(|l| !l.is_empty());
    if selinux && (label || mount_label) {
        let field = if label {
            "process.selinuxLabel"
        } else {
            "linux.mountLabel"
        };
        crate::bail!("{field}: SELinux is enabled on this host but berth cannot apply labels");
    }
    Ok(())
}

/// The terminal and console-socket combinations runc accepts, for `create`,
/// `run` and `exec` alike. `proxied`: the runtime drives the terminal itself
/// (foreground `run` or `exec`).
pub fn console(terminal: bool, console_socket: bool, proxied: bool) -> Result<()> {
    if terminal && !console_socket && !proxied {
        crate::bail!("cannot allocate tty if berth will detach without setting console socket");
    }
    if !terminal && console_socket {
        crate::bail!("cannot use console socket if berth will not detach or allocate tty");
    }
    Ok(())
}

fn ids(ns: &namespaces::Plan, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let has_maps = linux.is_some_and(|l| {
        l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
    });
    if ns.new & libc::CLONE_NEWUSER != 0 && !has_maps {
        crate::bail!(
            "linux.uidMappings: a new user namespace needs linux.uidMappings and linux.gidMappings"
        );
    }
    if has_maps && ns.new & libc::CLONE_NEWUSER == 0 {
        crate::bail!(
            "linux.uidMappings: user namespace mappings specified, but no new user namespace is requested"
        );
    }
    if ns.new & libc::CLONE_NEWUSER != 0 {
        if let (Some(l), Some(p)) = (linux, spec.process().as_ref()) {
            user_mapped(p.user(), l)?;
        }
    }
    Ok(())
}

/// In a new user namespace the process's ids must be mapped: the kernel
/// refuses to switch to (or chown the terminal to) an id without a host
/// counterpart.
fn user_mapped(u: &oci_spec::runtime::User, l: &oci_spec::runtime::Linux) -> Result<()> {
    let none = Vec::new();
    let uid_maps = l.uid_mappings().as_ref().unwrap_or(&none);
    let gid_maps = l.gid_mappings().as_ref().unwrap_or(&none);
    let check = |field: &str, id: u32, maps: &[oci_spec::runtime::LinuxIdMapping], key: &str| {
        let mapped = maps.iter().any(|m| {
            id >= m.container_id()
                && u64::from(id) < u64::from(m.container_id()) + u64::from(m.size())
        });
        if mapped {
            return Ok(());
        }
        let ranges: Vec<String> = maps
            .iter()
            .map(|m| {
                let end = u64::from(m.container_id()) + u64::from(m.size());
                format!("{}-{}", m.container_id(), end.saturating_sub(1))
            })
            .collect();
        crate::bail!(
            "{field}: cannot run as unmapped user {id} in the container's user namespace \
             (linux.{key} maps container ids [{}] only)",
            ranges.join(", ")
        )
    };
    check("process.user.uid", u.uid(), uid_maps, "uidMappings")?;
    check("process.user.gid", u.gid(), gid_maps, "gidMappings")?;
    for g in u.additional_gids().iter().flatten() {
        check("process.user.additionalGids", *g, gid_maps, "gidMappings")?;
    }
    Ok(())
}

/// Only namespaced sysctls can be set, and only in a namespace of the
/// container's own (runc's rule): anything else would change the host.
fn sysctls<'a>(ns: &namespaces::Plan, spec: &'a Spec) -> Result<Vec<(PathBuf, &'a str, &'a str)>> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(Vec::new());
    };
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let mut out = Vec::with_capacity(sysctl.len());
    for (given, value) in sysctl {
        let field = format!("linux.sysctl[{given:?}]");
        // The /proc/sys path form (`net/ipv4/ip_forward`) is accepted as
        // runc accepts it: the name with dots and slashes swapped.
        let slashes = given
            .find(['.', '/'])
            .is_some_and(|i| given[i..].starts_with('/'));
        let (key, rel) = if slashes {
            let swapped: String = given
                .chars()
                .map(|c| match c {
                    '/' => '.',
                    '.' => '/',
                    c => c,
                })
                .collect();
            (swapped, given.clone())
        } else {
            (given.clone(), given.replace('.', "/"))
        };
        if given.contains("..")
            || rel.starts_with('/')
            || (!slashes && given.contains('/'))
            || key.is_empty()
        {
            crate::bail!("{field}: invalid name");
        }
        let ns_of = if IPC.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            Some((libc::CLONE_NEWIPC, "ipc"))
        } else if key.starts_with("net.") {
            Some((libc::CLONE_NEWNET, "network"))
        } else if key == "kernel.hostname" || key == "kernel.domainname" {
            Some((libc::CLONE_NEWUTS, "uts"))
        } else {
            None
        };
        match ns_of {
            None => crate::bail!("{field}: sysctl {key:?} is not in a separate kernel namespace"),
            Some((flag, name)) if !ns.has(flag) => crate::bail!(
                "{field}: sysctl {key:?} is not allowed: the container has no {name} namespace of its own"
            ),
            _ => {}
        }
        let path = PathBuf::from("/proc/sys").join(rel);
        out.push((path, given.as_str(), value.as_str()));
    }
    Ok(out)
}

fn hooks(h: &Hooks) -> Result<()> {
    #[allow(deprecated)]
    let stages: [(&str, &Option<Vec<Hook>>); 6] = [
        ("prestart", h.prestart()),
        ("createRuntime", h.create_runtime()),
        ("createContainer", h.create_container()),
        ("startContainer", h.start_container()),
        ("poststart", h.poststart()),
        ("poststop", h.poststop()),
    ];
    for (stage, list) in stages {
        for (i, hook) in list.iter().flatten().enumerate() {
            crate::hooks::check(hook)
                .map_err(|e: Error| e.context(format!("hooks.{stage}[{i}]")))?;
        }
    }
    Ok(())
}
