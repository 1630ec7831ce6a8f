//! `exec`: a new process inside a running container. Same single clone3 as
//! `create`: the parent enters the container's namespaces (the pid one for
//! its children), the child is born there (in its cgroup on v2), joins the
//! user namespace, and becomes the configured process.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use oci_spec::runtime::{LinuxSeccomp, Process};

use super::channel::{self, Channel, Msg};
use super::fds;
use super::launch::Launched;
use super::namespaces::{self, proc_name, Join, Plan};
use super::plan::ProcessPlan;
use crate::cgroups::Manager;
use crate::error::{Context, Error, Result};
use crate::{sys, tty};

pub struct ExecOpts<'a> {
    pub process: &'a Process,
    /// The container's seccomp profile, applied to exec'd processes too.
    pub seccomp: Option<&'a LinuxSeccomp>,
    /// The container's state (as `state` prints it), for a seccomp
    /// listener (`seccomp::notify`).
    pub container_state: serde_json::Value,
    pub console_socket: Option<OwnedFd>,
    pub preserve_fds: u32,
}

const TYPES: [i32; 8] = [
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWTIME,
];

/// The name of a namespace type under /proc/PID/ns (the process's own).
fn own_name(flag: i32) -> &'static str {
    match flag {
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWTIME => "time",
        f => proc_name(f),
    }
}

/// Every namespace of `pid` (the container init) that differs from ours,
/// to be joined: opened while the container is locked and known alive, so
/// the fds name its namespaces even if the lock is released before clone3.
pub fn namespaces_of(pid: i32) -> Result<Plan> {
    let mut plan = Plan::default();
    for flag in TYPES {
        let name = own_name(flag);
        let theirs = format!("/proc/{pid}/ns/{name}");
        // Only a namespace type this kernel lacks is skipped: any other
        // failure (EACCES: a non-dumpable init and no CAP_SYS_PTRACE) would
        // leave the process in ours, outside the container.
        let link = match std::fs::read_link(&theirs) {
            Ok(link) => link,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && Path::new(&format!("/proc/{pid}/ns")).is_dir() =>
            {
                continue
            }
            Err(e) => return Err(Error::from(e).context(format!("read {theirs}"))),
        };
        if std::fs::read_link(format!("/proc/self/ns/{name}")).is_ok_and(|own| own == link) {
            continue;
        }
        let file = std::fs::File::open(&theirs).with_context(|| format!("open {theirs}"))?;
        let join = Join {
            flag,
            fd: file.into(),
            path: theirs.into(),
        };
        if flag == libc::CLONE_NEWUSER {
            plan.user_join = Some(join);
        } else {
            plan.joins.push(join);
        }
    }
    Ok(plan)
}

struct Child<'a> {
    chan: Channel,
    /// The fds ≥ 3 the child keeps (sorted); every other one is closed at
    /// its birth: the parent's lock, cgroup and namespace fds name host
    /// directories (see `fds`).
    keep_fds: Vec<RawFd>,
    user_join: Option<BorrowedFd<'a>>,
    /// Rootless: the namespaces the child joins itself, after the user
    /// namespace (mount last), and whether one is a pid namespace.
    joins_in_child: Vec<(i32, BorrowedFd<'a>)>,
    /// Joined by the child once born in its cgroup (see `exec`).
    cgroup_join: Option<BorrowedFd<'a>>,
    console_socket: Option<RawFd>,
    prep: ProcessPlan<'a>,
}

/// Start the process; returns once it is about to exec (or failed).
pub fn exec(mut plan: Plan, cgroup: &Manager, o: ExecOpts) -> Result<Launched> {
    let userns = plan.user_join.is_some();
    // The cgroup namespace is joined by the child, not before clone3: a
    // parent inside it could not name the container's cgroup (outside the
    // namespace's root for the parent's own cgroup), and CLONE_INTO_CGROUP
    // would fail with ENOENT.
    let cgroup_join = plan
        .joins
        .iter()
        .position(|j| j.flag == libc::CLONE_NEWCGROUP)
        .map(|i| plan.joins.remove(i));
    let prep = ProcessPlan::new(o.process, o.seccomp, userns, &[], 3 + o.preserve_fds)?;
    let (parent_chan, child_chan) = channel::pair()?;
    // An unprivileged runtime could not return from the container's
    // namespaces (setns back needs CAP_SYS_ADMIN over our own): the child
    // joins them all, from inside the user namespace it joins first.
    let in_child = userns && sys::geteuid() != 0;
    let mut joins_in_child: Vec<(i32, BorrowedFd)> = Vec::new();
    if in_child {
        joins_in_child = plan.joins.iter().map(|j| (j.flag, j.fd.as_fd())).collect();
        joins_in_child.sort_by_key(|(f, _)| *f == libc::CLONE_NEWNS);
    }
    let forks = joins_in_child.iter().any(|(f, _)| *f == libc::CLONE_NEWPID);
    let mut own = vec![child_chan.raw_fd()];
    own.extend(plan.user_join.as_ref().map(|j| j.fd.as_raw_fd()));
    own.extend(joins_in_child.iter().map(|(_, fd)| fd.as_raw_fd()));
    own.extend(cgroup_join.as_ref().map(|j| j.fd.as_raw_fd()));
    own.extend(o.console_socket.as_ref().map(|s| s.as_raw_fd()));
    let child = Child {
        keep_fds: fds::keep_list(&own),
        chan: child_chan,
        user_join: plan.user_join.as_ref().map(|j| j.fd.as_fd()),
        joins_in_child,
        cgroup_join: cgroup_join.as_ref().map(|j| j.fd.as_fd()),
        console_socket: o.console_socket.as_ref().map(|s| s.as_raw_fd()),
        prep,
    };
    let leaf = cgroup.open_leaf()?;
    let mut args = sys::CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        ..sys::clone_args()
    };
    if let Some(fd) = &leaf {
        args.flags |= sys::CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    let saved = if in_child {
        namespaces::Saved::none()
    } else {
        namespaces::enter_for_clone(&plan, None)?
    };
    // SAFETY: berth is single-threaded here and the clone is fork-like.
    let cloned = unsafe { sys::clone3_pidfd(&mut args) };
    match cloned {
        Ok((0, _)) => run_child(child),
        _ => drop(child),
    }
    let restored = saved.restore();
    let (pid, pidfd) = cloned.context("clone3 for exec")?;
    let pidfd = pidfd.ok_or_else(|| Error::msg("clone3 returned no pidfd"))?;
    let mut launched = Launched { pid, pidfd };
    if forks {
        if let Err(e) = super::launch::adopt_forked_init(&parent_chan, &mut launched) {
            super::launch::kill_and_reap(&launched);
            return Err(e);
        }
    }
    let pid = launched.pid;
    let res = restored.and_then(|()| {
        if leaf.is_none() {
            cgroup.add_pid(pid)?;
        }
        parent_chan.send(&Msg::Go(Vec::new()))?;
        loop {
            match parent_chan.recv()? {
                Some(Msg::Ready) => return Ok(()),
                Some(Msg::SeccompFd(fd)) => {
                    crate::seccomp::notify::forward(o.seccomp, &fd, pid, o.container_state.clone())?
                }
                Some(Msg::Error(m, n)) => return Err(channel::remote_error(m, n)),
                Some(m) => {
                    return Err(Error::msg(format!(
                        "unexpected {m:?} from the exec'd process"
                    )))
                }
                None => return Err(Error::msg("the exec'd process exited during setup")),
            }
        }
    });
    if let Err(e) = res {
        super::launch::kill_and_reap(&launched);
        return Err(e);
    }
    Ok(launched)
}

fn run_child(c: Child) -> ! {
    let closed = fds::close_all_except(&c.keep_fds).context("close the runtime's fds");
    let err = match closed.and_then(|()| child_setup(&c)) {
        Ok(exe) => c.prep.exec(&exe, "exec"),
        Err(e) => e,
    };
    if c.chan.send(&Msg::error(&err)).is_err() {
        eprintln!("berth exec: {err}");
    }
    sys::exit(1)
}

fn child_setup(c: &Child) -> Result<std::ffi::CString> {
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
        .context("set parent death signal")?;
    let affinity = c.prep.process.exec_cpu_affinity().as_ref();
    if let Some(cpus) = affinity.and_then(|a| a.initial().as_deref()) {
        super::attrs::set_cpu_affinity(cpus)?;
    }
    if let Some(fd) = c.user_join {
        // SAFETY: fd was opened by the parent and is inherited.
        sys::setns(fd, libc::CLONE_NEWUSER).context("join user namespace")?;
    }
    for (flag, fd) in &c.joins_in_child {
        sys::setns(*fd, *flag)
            .with_context(|| format!("join the container's {} namespace", proc_name(*flag)))?;
    }
    if c.joins_in_child
        .iter()
        .any(|(f, _)| *f == libc::CLONE_NEWPID)
    {
        super::init::fork_into_pidns(&c.chan)?;
    }
    match c.chan.recv()? {
        Some(Msg::Go(_)) => {}
        _ => crate::bail!("the runtime went away during exec setup"),
    }
    if let Some(fd) = c.cgroup_join {
        sys::setns(fd, libc::CLONE_NEWCGROUP).context("join cgroup namespace")?;
    }
    // Now in the container's cgroup: the final CPU set.
    if let Some(cpus) = affinity.and_then(|a| a.cpu_affinity_final().as_deref()) {
        super::attrs::set_cpu_affinity(cpus)?;
    }
    // A fresh process leads no session, so this cannot fail.
    let _ = sys::setsid();
    if let Some(sock) = c.console_socket {
        let (master, slave) = tty::open_pty(
            Path::new("/dev/pts"),
            c.prep.process.console_size().as_ref(),
        )?;
        tty::give_to(slave.as_fd(), c.prep.process.user().uid())?;
        // SAFETY: the console socket fd is inherited from the parent.
        let sock = unsafe { OwnedFd::from_raw_fd(sock) };
        tty::send_master(sock.as_fd(), master.as_fd())
            .context("send the console to --console-socket")?;
        drop(master);
        tty::attach_slave(slave)?;
    }
    c.prep.set_limits()?;
    let exe = c.prep.become_process(&c.chan)?;
    sys::prctl(libc::PR_SET_PDEATHSIG, 0).context("clear parent death signal")?;
    c.chan.send(&Msg::Ready)?;
    Ok(exe)
}
