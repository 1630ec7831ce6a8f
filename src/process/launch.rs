//! The parent side of `create`: prepare everything, one clone3, then drive
//! the init through the channel protocol until it is ready (or failed).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use super::channel::{self, Msg};
use super::fds;
use super::init::{self, InitCtx};
use super::namespaces::{self, Plan};
use super::prepared::Prepared;
use crate::container::{State, Status, EXEC_FIFO};
use crate::error::{Context, Result};
use crate::rootfs::idmap::ContainerUserns;
use crate::{hooks, sys};

pub struct Launch<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub state_dir: &'a Path,
    /// Connected console socket (or `run`'s own socketpair end).
    pub console_socket: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// v2: the leaf cgroup for CLONE_INTO_CGROUP.
    pub cgroup_fd: Option<RawFd>,
}

pub struct Launched {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub start_time: u64,
}

/// Create the container init and take it to `Ready`. On error the init is
/// killed and reaped; the caller removes the state dir and cgroups.
pub fn launch(l: Launch, state: &mut State) -> Result<Launched> {
    let linux = l.spec.linux().as_ref();
    let plan = Plan::from_spec(linux)?;
    validate_ids(&plan, l.spec)?;
    validate_sysctl(&plan, l.spec)?;
    let Some(process) = l.spec.process().as_ref() else {
        crate::bail!("config.json: process is required");
    };
    let listen = listen_fds();
    let extra_env: Vec<String> = match listen {
        Some(n) => vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".to_string()],
        None => Vec::new(),
    };
    let keep_fds = 3 + listen.unwrap_or(0) + l.preserve_fds;
    let prep = Prepared::new(
        process,
        linux.and_then(|l| l.seccomp().as_ref()),
        plan.has_userns(),
        &extra_env,
        keep_fds,
    )?;

    // The exec fifo: the init blocks opening it for writing until `start`
    // opens it for reading. The O_PATH fd lets the init reopen it after
    // pivot_root through /proc/self/fd.
    let fifo_path = l.state_dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o622)).context("create exec fifo")?;
    // Writable by anyone (not subject to our umask): the init opens it
    // after switching to the container's user, possibly in a user namespace.
    std::fs::set_permissions(&fifo_path, std::fs::Permissions::from_mode(0o622))
        .context("chmod exec fifo")?;
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&fifo_path)
        .context("open exec fifo")?;

    // Idmapped mounts are made here, on the host, where the privilege to
    // set MOUNT_ATTR_IDMAP is (see rootfs::idmap).
    let userns = match (&plan.user_join, linux) {
        (Some(j), _) => ContainerUserns::Joined(j.fd.as_fd()),
        (None, Some(lx)) if plan.new & libc::CLONE_NEWUSER != 0 => ContainerUserns::New(
            lx.uid_mappings().as_deref().unwrap_or(&[]),
            lx.gid_mappings().as_deref().unwrap_or(&[]),
        ),
        _ => ContainerUserns::None,
    };
    let idmapped = crate::rootfs::idmap::prepare(l.spec, l.bundle, userns)?;

    let (parent_chan, child_chan) = channel::pair()?;
    let cgroup = state.cgroup.clone();
    // The init keeps only these (and stdio, and what the caller passed):
    // the lock, the cgroup and namespace fds, our end of the channel close
    // at its birth.
    let mut own = vec![child_chan.raw_fd(), fifo.as_raw_fd()];
    own.extend(l.console_socket.as_ref().map(|s| s.as_raw_fd()));
    own.extend(plan.user_join.as_ref().map(|j| j.fd.as_raw_fd()));
    own.extend(idmapped.iter().flatten().map(|f| f.as_raw_fd()));
    let ctx = InitCtx {
        id: l.id,
        spec: l.spec,
        rootfs: l.rootfs,
        bundle: l.bundle,
        keep_fds: fds::keep_list(&own),
        chan: child_chan,
        exec_fifo: fifo.as_raw_fd(),
        console_socket: l.console_socket.as_ref().map(|s| s.as_raw_fd()),
        no_pivot: l.no_pivot,
        no_new_keyring: l.no_new_keyring,
        user_join: plan.user_join.as_ref().map(|j| j.fd.as_raw_fd()),
        unshare_after_userns: if plan.user_join.is_some() {
            plan.new & !(libc::CLONE_NEWCGROUP | libc::CLONE_NEWTIME)
        } else {
            0
        },
        new_cgroupns: plan.new & libc::CLONE_NEWCGROUP != 0,
        cgroupns: plan.has(libc::CLONE_NEWCGROUP),
        cgroup: &cgroup,
        idmapped: &idmapped,
        userns: plan.has_userns(),
        mountns: plan.has(libc::CLONE_NEWNS),
        utsns: plan.has(libc::CLONE_NEWUTS),
        prep,
    };

    let mut flags = libc::CLONE_PIDFD as u64;
    if plan.user_join.is_none() {
        // The cgroup namespace is unshared by the init once it sits in its
        // cgroups; the time namespace was made by the parent (see
        // namespaces::enter_for_clone).
        flags |= (plan.new & !(libc::CLONE_NEWCGROUP | libc::CLONE_NEWTIME)) as u64;
    }
    let mut pidfd: RawFd = -1;
    let mut args = sys::CloneArgs {
        flags,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..sys::clone_args()
    };
    // A joined cgroup namespace hides the container's cgroup from the
    // parent (it joins before clone3): CLONE_INTO_CGROUP would fail with
    // ENOENT. The init is then placed by pid while it waits for Go, still
    // before any of its setup runs.
    let into_cgroup = l
        .cgroup_fd
        .filter(|_| !plan.joins.iter().any(|j| j.flag == libc::CLONE_NEWCGROUP));
    if let Some(cg) = into_cgroup {
        args.flags |= sys::CLONE_INTO_CGROUP;
        args.cgroup = cg as u64;
    }

    crate::logging::debug(&format!(
        "clone3 flags {flags:#x}, joins {}, user join {}",
        plan.joins.len(),
        plan.user_join.is_some()
    ));
    let saved = namespaces::enter_for_clone(&plan, linux)?;
    // SAFETY: berth is single-threaded here (no threads are ever started
    // before create), and the args ask for a fork-like clone.
    let cloned = unsafe { sys::clone3(&mut args) };
    match cloned {
        Ok(0) => init::run(ctx),
        _ => drop(ctx),
    }
    let restored = saved.restore();
    let pid = cloned.with_context(|| format!("clone3 (flags {flags:#x})"))?;
    // SAFETY: with CLONE_PIDFD the kernel stored a new fd we now own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let mut launched = Launched {
        pid,
        start_time: 0,
        pidfd,
    };
    if plan.user_join.is_some() && plan.new & libc::CLONE_NEWPID != 0 {
        // The child forks the real init into the new pid namespace (see
        // init::fork_into_pidns) and exits.
        if let Err(e) = adopt_forked_init(&parent_chan, &mut launched) {
            kill_and_reap(&launched);
            return Err(e);
        }
    }
    let pid = launched.pid;
    launched.start_time = sys::proc_stat(pid).map(|s| s.0).unwrap_or(0);
    state.pid = pid;
    state.start_time = launched.start_time;

    let res =
        restored.and_then(|()| drive(&l, &plan, state, &parent_chan, pid, into_cgroup.is_some()));
    if let Err(e) = res {
        kill_and_reap(&launched);
        return Err(e);
    }
    drop(fifo);
    Ok(launched)
}

/// Replace the intermediate child by the init it forked (our child too,
/// through CLONE_PARENT) and reap the intermediate.
fn adopt_forked_init(chan: &channel::Channel, launched: &mut Launched) -> Result<()> {
    let init = match chan.recv()? {
        Some(Msg::Pid(p)) => p,
        Some(Msg::Error(m, n)) => return Err(channel::remote_error(m, n)),
        Some(m) => crate::bail!("expected the init's pid from the runtime's child, got {m:?}"),
        None => crate::bail!("container init exited during setup"),
    };
    let pidfd = sys::pidfd_open(init).context("pidfd_open the container init")?;
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(launched.pid), None);
    launched.pid = init;
    launched.pidfd = pidfd;
    Ok(())
}

/// Parent's half of the protocol after clone3.
fn drive(
    l: &Launch,
    plan: &Plan,
    state: &State,
    chan: &channel::Channel,
    pid: i32,
    born_in_cgroup: bool,
) -> Result<()> {
    if plan.new & libc::CLONE_NEWUSER != 0 {
        namespaces::write_id_maps(pid, l.spec.linux().as_ref())?;
    }
    if !born_in_cgroup {
        state.cgroup.add_pid(pid)?;
    }
    let hooks = l.spec.hooks().as_ref();
    let needs_state = hooks.is_some_and(|h| {
        h.create_container().as_ref().is_some_and(|v| !v.is_empty())
            || h.start_container().as_ref().is_some_and(|v| !v.is_empty())
    });
    let state_json = |status| serde_json::to_vec(&state.to_oci_json(status)).unwrap_or_default();
    let go = Msg::Go(if needs_state {
        state_json(Status::Creating)
    } else {
        Vec::new()
    });
    if let Err(e) = chan.send(&go) {
        // The init may have failed before reading: its error is queued.
        return Err(match chan.recv() {
            Ok(Some(Msg::Error(m, n))) => channel::remote_error(m, n),
            _ => e,
        });
    }
    loop {
        match chan.recv()? {
            Some(Msg::Ready) => return Ok(()),
            Some(Msg::Hooks) => {
                let json = state_json(Status::Creating);
                if let Some(h) = hooks {
                    hooks::run("prestart", h.prestart().as_deref().unwrap_or(&[]), &json)?;
                    hooks::run(
                        "createRuntime",
                        h.create_runtime().as_deref().unwrap_or(&[]),
                        &json,
                    )?;
                }
                if let Err(e) = chan.send(&Msg::HooksDone(json)) {
                    return Err(match chan.recv() {
                        Ok(Some(Msg::Error(m, n))) => channel::remote_error(m, n),
                        _ => e,
                    });
                }
            }
            Some(Msg::Error(m, n)) => return Err(channel::remote_error(m, n)),
            Some(m) => crate::bail!("unexpected {m:?} from the container init"),
            None => crate::bail!("container init exited during setup"),
        }
    }
}

pub fn kill_and_reap(l: &Launched) {
    let _ = sys::pidfd_send_signal(l.pidfd.as_fd(), libc::SIGKILL);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(l.pid), None);
}

fn validate_ids(plan: &Plan, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let has_maps = linux.is_some_and(|l| {
        l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
    });
    if plan.new & libc::CLONE_NEWUSER != 0 && !has_maps {
        crate::bail!("a new user namespace needs linux.uidMappings and linux.gidMappings");
    }
    if has_maps && plan.new & libc::CLONE_NEWUSER == 0 {
        crate::bail!("user namespace mappings specified, but no new user namespace is requested");
    }
    Ok(())
}

/// Only namespaced sysctls can be set, and only in a namespace of the
/// container's own (runc's rule): anything else would change the host.
fn validate_sysctl(plan: &Plan, spec: &Spec) -> Result<()> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
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
    for key in sysctl.keys() {
        let ns = if IPC.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            Some((libc::CLONE_NEWIPC, "ipc"))
        } else if key.starts_with("net.") {
            Some((libc::CLONE_NEWNET, "network"))
        } else if key == "kernel.hostname" || key == "kernel.domainname" {
            Some((libc::CLONE_NEWUTS, "uts"))
        } else {
            None
        };
        match ns {
            None => crate::bail!("sysctl {key:?} is not in a separate kernel namespace"),
            Some((flag, name)) if !plan.has(flag) => {
                crate::bail!("sysctl {key:?} is not allowed: the container has no {name} namespace of its own")
            }
            _ => {}
        }
    }
    Ok(())
}

/// Socket activation: fds passed by systemd (LISTEN_PID = our pid) go to
/// the container as fds 3.. with LISTEN_PID=1.
pub fn listen_fds() -> Option<u32> {
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    (pid == std::process::id()).then_some(fds)
}
