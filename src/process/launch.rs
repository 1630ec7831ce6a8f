//! The parent side of `create`: one clone3 from the container's plan, then
//! drive the init through the channel protocol until it is ready (or
//! failed).

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::Mode;

use super::channel::{self, Msg};
use super::fds;
use super::init::{self, InitCtx};
use super::namespaces;
use crate::container::{State, Status, EXEC_FIFO};
use crate::error::{Context, Result};
use crate::rootfs::idmap::ContainerUserns;
use crate::validate::Plan;
use crate::{hooks, sys};

pub struct Launched {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

/// Create the container init from `plan` and take it to `Ready`, in
/// `state`'s cgroups (`cgroup_fd`: v2's leaf for CLONE_INTO_CGROUP), with
/// the connected `console_socket` if the process has a terminal. On error
/// the init is killed and reaped; the caller removes the state dir and
/// cgroups.
pub fn launch(
    plan: &Plan,
    state: &mut State,
    state_dir: &Path,
    console_socket: Option<OwnedFd>,
    cgroup_fd: Option<RawFd>,
) -> Result<Launched> {
    let ns = &plan.namespaces;
    let linux = plan.spec.linux().as_ref();

    // The exec fifo: the init blocks opening it for writing until `start`
    // opens it for reading. The O_PATH fd lets the init reopen it after
    // pivot_root through /proc/self/fd.
    let fifo_path = state_dir.join(EXEC_FIFO);
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
    let userns = match (&ns.user_join, linux) {
        (Some(j), _) => ContainerUserns::Joined(j.fd.as_fd()),
        (None, Some(lx)) if ns.new & libc::CLONE_NEWUSER != 0 => ContainerUserns::New(
            lx.uid_mappings().as_deref().unwrap_or(&[]),
            lx.gid_mappings().as_deref().unwrap_or(&[]),
        ),
        _ => ContainerUserns::None,
    };
    let idmapped = crate::rootfs::idmap::prepare(&plan.rootfs.mounts, &plan.bundle, userns)?;

    let (parent_chan, child_chan) = channel::pair()?;
    let cgroup = state.cgroup.clone();
    // The init keeps only these (and stdio, and what the caller passed):
    // the lock, the cgroup and namespace fds, our end of the channel close
    // at its birth.
    let mut own = vec![child_chan.raw_fd(), fifo.as_raw_fd()];
    own.extend(console_socket.as_ref().map(|s| s.as_raw_fd()));
    own.extend(ns.user_join.as_ref().map(|j| j.fd.as_raw_fd()));
    own.extend(idmapped.iter().flatten().map(|f| f.as_raw_fd()));
    let ctx = InitCtx {
        plan,
        cgroup: &cgroup,
        keep_fds: fds::keep_list(&own),
        chan: child_chan,
        exec_fifo: fifo.as_raw_fd(),
        console_socket: console_socket.as_ref().map(|s| s.as_raw_fd()),
        idmapped: &idmapped,
        unprivileged_runtime: sys::geteuid() != 0,
    };

    let flags = ns.clone_flags();
    let mut args = sys::CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..sys::clone_args()
    };
    // A joined cgroup namespace hides the container's cgroup from the
    // parent (it joins before clone3): CLONE_INTO_CGROUP would fail with
    // ENOENT. The init is then placed by pid while it waits for Go, still
    // before any of its setup runs.
    let into_cgroup =
        cgroup_fd.filter(|_| !ns.joins.iter().any(|j| j.flag == libc::CLONE_NEWCGROUP));
    if let Some(cg) = into_cgroup {
        args.flags |= sys::CLONE_INTO_CGROUP;
        args.cgroup = cg as u64;
    }

    crate::logging::debug(&format!(
        "clone3 flags {flags:#x}, joins {}, user join {}",
        ns.joins.len(),
        ns.user_join.is_some()
    ));
    let saved = namespaces::enter_for_clone(ns, linux)?;
    // SAFETY: berth is single-threaded here (no threads are ever started
    // before create), and the args ask for a fork-like clone.
    let cloned = unsafe { sys::clone3_pidfd(&mut args) };
    match cloned {
        Ok((0, _)) => init::run(ctx),
        _ => drop(ctx),
    }
    let restored = saved.restore();
    let (pid, pidfd) = cloned.with_context(|| format!("clone3 (flags {flags:#x})"))?;
    let pidfd = pidfd.ok_or_else(|| crate::Error::msg("clone3 returned no pidfd"))?;
    let mut launched = Launched { pid, pidfd };
    if ns.forks_init() {
        // The child forks the real init into the new pid namespace (see
        // init::fork_into_pidns) and exits.
        if let Err(e) = adopt_forked_init(&parent_chan, &mut launched) {
            kill_and_reap(&launched);
            return Err(e);
        }
    }
    let pid = launched.pid;
    state.record_init(pid);
    // The init exists: on record before anything else can fail or kill us.
    if let Err(e) = crate::container::save_state(state_dir, state) {
        kill_and_reap(&launched);
        return Err(e);
    }

    let res = restored.and_then(|()| {
        drive(
            plan,
            state,
            state_dir,
            &parent_chan,
            pid,
            into_cgroup.is_some(),
        )
    });
    if let Err(e) = res {
        kill_and_reap(&launched);
        return Err(e);
    }
    drop(fifo);
    Ok(launched)
}

/// Replace the intermediate child by the init it forked (our child too,
/// through CLONE_PARENT) and reap the intermediate.
pub(super) fn adopt_forked_init(chan: &channel::Channel, launched: &mut Launched) -> Result<()> {
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
    plan: &Plan,
    state: &State,
    state_dir: &Path,
    chan: &channel::Channel,
    pid: i32,
    born_in_cgroup: bool,
) -> Result<()> {
    // linux.netDevices: once the init sits in its network namespace (it
    // has unshared it by the time it asks for hooks or reports ready),
    // before any hook runs.
    let mut devices_moved = plan.net_devices.is_empty();
    let mut move_devices = || -> Result<()> {
        if !devices_moved {
            devices_moved = true;
            crate::netdev::move_in(&plan.net_devices, pid, state_dir)?;
        }
        Ok(())
    };
    if plan.namespaces.new & libc::CLONE_NEWUSER != 0 {
        match chan.recv()? {
            Some(Msg::IdMaps) => {}
            Some(Msg::Error(m, n)) => return Err(channel::remote_error(m, n)),
            Some(m) => crate::bail!("expected the id maps request from the init, got {m:?}"),
            None => crate::bail!("container init exited during setup"),
        }
        namespaces::write_id_maps(pid, plan.spec.linux().as_ref())
            .map_err(|e| chan.pending_error().unwrap_or(e))?;
    }
    if !born_in_cgroup {
        // An init that failed early (oom_score_adj, joining a user
        // namespace) is gone: its own error is the one to report.
        state
            .cgroup
            .add_pid(pid)
            .map_err(|e| chan.pending_error().unwrap_or(e))?;
    }
    let hooks = plan.hooks;
    let needs_state = hooks.is_some_and(|h| {
        h.create_container().as_ref().is_some_and(|v| !v.is_empty())
            || h.start_container().as_ref().is_some_and(|v| !v.is_empty())
    });
    // The hooks of create (prestart, createRuntime, createContainer) run
    // after lifecycle step 2, so their state says "created" (runtime.md#state;
    // crun does the same, runc 1.1 says "creating").
    let state_json = |status| serde_json::to_vec(&state.spec_state(status)).unwrap_or_default();
    let go = Msg::Go(if needs_state {
        state_json(Status::Created)
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
            Some(Msg::Ready) => return move_devices(),
            Some(Msg::Hooks) => {
                move_devices()?;
                let json = state_json(Status::Created);
                if let Some(h) = hooks {
                    hooks::run(
                        "prestart",
                        h.prestart().as_deref().unwrap_or(&[]),
                        &json,
                        None,
                    )?;
                    hooks::run(
                        "createRuntime",
                        h.create_runtime().as_deref().unwrap_or(&[]),
                        &json,
                        None,
                    )?;
                }
                if let Err(e) = chan.send(&Msg::HooksDone(json)) {
                    return Err(match chan.recv() {
                        Ok(Some(Msg::Error(m, n))) => channel::remote_error(m, n),
                        _ => e,
                    });
                }
            }
            Some(Msg::SeccompFd(fd)) => crate::seccomp::notify::forward(
                plan.spec
                    .linux()
                    .as_ref()
                    .and_then(|l| l.seccomp().as_ref()),
                &fd,
                pid,
                state.spec_state(Status::Creating),
            )?,
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

/// Socket activation: fds passed by systemd (LISTEN_PID = our pid) go to
/// the container as fds 3.. with LISTEN_PID=1.
pub fn listen_fds() -> Option<u32> {
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    (pid == std::process::id()).then_some(fds)
}
