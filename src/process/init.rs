//! The container init: what runs in the child clone3 created, from birth to
//! execve of the container's process. Every failure before `Ready` goes to
//! the parent over the channel and becomes the error of `create`.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use oci_spec::runtime::Hook;

use super::attrs;
use super::channel::{Channel, Msg};
use super::fds;
use crate::error::{Context, Error, Result};
use crate::validate::Plan;
use crate::{hooks, rootfs, sys, tty};

/// What the init gets from the parent: the container's plan (every check
/// done, every option parsed) and the fds it needs to carry it out.
pub struct InitCtx<'a> {
    pub plan: &'a Plan<'a>,
    /// The container's cgroups, for the `cgroup` mount.
    pub cgroup: &'a crate::cgroups::Manager,
    pub chan: Channel,
    /// The fds ≥ 3 the init keeps (sorted); it closes every other one at
    /// birth (see `fds`).
    pub keep_fds: Vec<RawFd>,
    /// O_PATH fd of the exec fifo, reopened for writing via /proc/self/fd.
    pub exec_fifo: RawFd,
    pub console_socket: Option<RawFd>,
    /// Detached idmapped mounts by `mounts` index (rootfs::idmap).
    pub idmapped: &'a [Option<OwnedFd>],
    /// The runtime runs as a user other than root (rootless): see
    /// `wait_for_start`.
    pub unprivileged_runtime: bool,
}

/// Run the init; never returns.
pub fn run(ctx: InitCtx) -> ! {
    let closed = fds::close_all_except(&ctx.keep_fds).context("close the runtime's fds");
    let err = match closed.and_then(|()| setup(&ctx)) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if ctx.chan.send(&Msg::error(&err)).is_err() {
        eprintln!("berth init: {err}");
    }
    // No atexit handlers of the parent's copy.
    sys::exit(1)
}

enum Never {}

/// unshare(CLONE_NEWPID) only decides where our children are born, and it
/// must follow setns(user) so the pid namespace belongs to the joined user
/// namespace (mounting its /proc needs that). So this process forks the
/// real init with CLONE_PARENT, which makes it the runtime's own child,
/// tells the runtime its pid, and exits; the init carries on with setup.
pub(super) fn fork_into_pidns(chan: &Channel) -> Result<()> {
    // exit_signal must be 0 with CLONE_PARENT: the child inherits ours.
    let mut args = sys::CloneArgs {
        flags: libc::CLONE_PARENT as u64,
        ..sys::clone_args()
    };
    // SAFETY: single-threaded child; fork-like clone.
    match unsafe { sys::clone3(&mut args) }.context("clone3 the init into its pid namespace")? {
        0 => sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
            .context("set parent death signal"),
        pid => {
            let code = i32::from(chan.send(&Msg::Pid(pid)).is_err());
            // The init owns the setup now.
            sys::exit(code)
        }
    }
}

fn setup(ctx: &InitCtx) -> Result<Never> {
    let plan = ctx.plan;
    let ns = &plan.namespaces;
    // Die with the parent while it is still setting us up.
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
        .context("set parent death signal")?;

    if let Some(adj) = plan.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
            let mut err = Error::from(e).context(format!("set oom_score_adj to {adj}"));
            if adj < 0 {
                err = err.hint("lowering oom_score_adj needs CAP_SYS_RESOURCE");
            }
            err
        })?;
    }

    if let Some(j) = &ns.user_join {
        sys::setns(j.fd.as_fd(), libc::CLONE_NEWUSER).context("join user namespace")?;
        if ns.unshare_after_userns() != 0 {
            sys::unshare(ns.unshare_after_userns())
                .context("unshare namespaces in the joined user namespace")?;
        }
        if ns.forks_init() {
            fork_into_pidns(&ctx.chan)?;
        }
    }

    // A new user namespace's id maps are written by the runtime, or by
    // newuidmap for an unprivileged one: both need our /proc files to be
    // our user's, which they are only while we are dumpable. Nothing of
    // the container exists yet to reach us meanwhile.
    let new_userns = ns.new & libc::CLONE_NEWUSER != 0;
    if new_userns {
        sys::prctl(libc::PR_SET_DUMPABLE, 1).context("make the init dumpable for its id maps")?;
        ctx.chan.send(&Msg::IdMaps)?;
    }

    // Wait for the id maps and cgroup placement.
    let state_json = match ctx.chan.recv()? {
        Some(Msg::Go(state)) => state,
        Some(m) => crate::bail!("expected the go-ahead from the runtime, got {m:?}"),
        None => crate::bail!("the runtime went away during setup"),
    };
    if new_userns {
        sys::prctl(libc::PR_SET_DUMPABLE, 0).context("make the init non-dumpable again")?;
    }

    if plan.rootfs.userns {
        // Become root of the new user namespace (where uid 0 is mapped) so
        // what setup creates belongs to the container's root.
        sys::setresgid(0).context("become root of the user namespace (setresgid 0)")?;
        sys::setresuid(0).context("become root of the user namespace (setresuid 0)")?;
    }
    // After cgroup placement and as the user namespace's root (on v1 the
    // init joins its cgroups after clone3).
    ns.unshare_late()?;
    // The init leads its own session (it cannot fail for a fresh process).
    let _ = sys::setsid();

    rootfs::prepare(&plan.rootfs, ctx.cgroup, ctx.idmapped)?;
    // The idmapped trees are in place: their fds go.
    for fd in ctx.idmapped.iter().flatten() {
        close_fd(fd.as_raw_fd());
    }

    if let Some(sock) = ctx.console_socket {
        let size = plan.process.process.console_size();
        let (master, slave) = tty::open_pty(&plan.rootfs.rootfs.join("dev/pts"), size.as_ref())?;
        rootfs::mount_console(&plan.rootfs, slave.as_fd())?;
        tty::give_to(slave.as_fd(), plan.process.process.user().uid())?;
        // SAFETY: the console socket fd is inherited from the parent and
        // owned by nothing else in this process.
        let sock = unsafe { OwnedFd::from_raw_fd(sock) };
        tty::send_master(sock.as_fd(), master.as_fd())
            .context("send the console to --console-socket")?;
        drop(master);
        tty::attach_slave(slave)?;
    }

    let hooks = plan.hooks;
    let has = |h: Option<&Vec<Hook>>| h.is_some_and(|v| !v.is_empty());
    let mut state_json = state_json;
    if hooks.is_some_and(|h| has(h.prestart().as_ref()) || has(h.create_runtime().as_ref())) {
        ctx.chan.send(&Msg::Hooks)?;
        match ctx.chan.recv()? {
            Some(Msg::HooksDone(s)) => state_json = s,
            Some(m) => crate::bail!("expected hooks done from the runtime, got {m:?}"),
            None => crate::bail!("the runtime went away while running hooks"),
        }
    }
    if let Some(h) = hooks.and_then(|h| h.create_container().as_ref()) {
        let (cwd, env) = (
            Some(plan.rootfs.rootfs.as_path()),
            plan.process.environment(),
        );
        hooks::run_in_container("createContainer", h, &state_json, cwd, env)?;
    }

    rootfs::pivot(&plan.rootfs)?;

    if let Some(h) = plan.hostname {
        nix::unistd::sethostname(h).with_context(|| format!("sethostname {h:?}"))?;
    }
    if let Some(d) = plan.domainname {
        sys::setdomainname(d.as_bytes()).with_context(|| format!("setdomainname {d:?}"))?;
    }
    for (path, key, value) in &plan.sysctl {
        std::fs::write(path, value.as_bytes())
            .with_context(|| format!("write sysctl {key}={value}"))?;
    }
    rootfs::finalize(&plan.rootfs)?;

    plan.process.set_limits()?;
    if let Some(domain) = plan.personality {
        attrs::set_personality(domain)?;
    }
    if plan.new_keyring {
        join_session_keyring(plan.id);
    }
    if let Some(p) = &plan.memory_policy {
        super::mempolicy::apply(p)?;
    }
    // After `Ready` the fifo is reopened through /proc: a container
    // without it (no proc mount) must fail here, at `create`.
    let fifo_path = format!("/proc/self/fd/{}", ctx.exec_fifo);
    std::fs::metadata(&fifo_path).map_err(|e| {
        Error::from(e)
            .context(format!("reopen the exec fifo as {fifo_path}"))
            .hint("the container has no procfs at /proc; berth's init needs it before execve")
    })?;
    let exe = plan.process.become_process(&ctx.chan)?;

    // Setup is done: from here the init must outlive `create`.
    sys::prctl(libc::PR_SET_PDEATHSIG, 0).context("clear parent death signal")?;
    ctx.chan.send(&Msg::Ready)?;

    // Block until `start` opens the fifo for reading.
    let fifo = wait_for_start(ctx, &fifo_path).unwrap_or_else(|e| fatal(&e));
    // startContainer hooks run now, before the byte `start` waits for, so
    // that `start` can report their failure.
    if let Some(h) = hooks.and_then(|h| h.start_container().as_ref()) {
        let env = plan.process.environment();
        if let Err(e) = hooks::run_in_container("startContainer", h, &state_json, None, env) {
            let _ = nix::unistd::write(&fifo, format!("E{e}").as_bytes());
            fatal(&e);
        }
    }
    if let Err(e) = nix::unistd::write(&fifo, b"0") {
        fatal(&Error::from(e).context("write exec fifo"));
    }
    // The fifo stays open (close-on-exec) until execve: `start` reads to
    // EOF, so it returns, and poststart hooks run, only once the program is
    // executed (runtime.md lifecycle step 9). No close() follows the filter.
    let _until_exec = fifo;
    plan.process.exec(&exe, "init")
}

/// Block until `start` opens the exec fifo for reading; returns it open
/// for writing.
///
/// Meanwhile (`created`) `exec` joins our namespaces through
/// `/proc/PID/ns`, which a non-dumpable process keeps closed to whoever
/// lacks `CAP_SYS_PTRACE` in the user namespace its memory was made in: the
/// host's. Root has it; an unprivileged runtime does not, so for one the
/// init is dumpable while it waits, as runc's is (else a rootless `exec`
/// into a `created` container could not work). The cost: a process
/// exec'd into the container before `start` (nothing else of it exists
/// then), having the init's uid and capabilities, may reach the init's
/// `/proc` files meanwhile. The host binary stays out of reach (the init
/// runs from the sealed copy, see `host_binary`). Non-dumpable again as
/// soon as `start` opens the fifo.
fn wait_for_start(ctx: &InitCtx, fifo_path: &str) -> Result<std::fs::File> {
    if ctx.unprivileged_runtime {
        sys::prctl(libc::PR_SET_DUMPABLE, 1)
            .context("make the created init dumpable for a rootless exec")?;
    }
    let fifo = std::fs::OpenOptions::new()
        .write(true)
        .open(fifo_path)
        .context("open exec fifo")?;
    if ctx.unprivileged_runtime {
        sys::prctl(libc::PR_SET_DUMPABLE, 0).context("make the init non-dumpable again")?;
    }
    Ok(fifo)
}

/// Close one inherited fd (the parent's copy is never dropped here: the
/// init only leaves by execve or _exit).
fn close_fd(fd: RawFd) {
    if let Ok(fd) = u32::try_from(fd) {
        let _ = sys::close_range(fd, fd);
    }
}

/// After `Ready` there is nobody to report to but stderr.
fn fatal(e: &Error) -> ! {
    eprintln!("berth init: {e}");
    sys::exit(127)
}

fn join_session_keyring(id: &str) {
    if let Ok(name) = CString::new(id) {
        // A kernel without keyrings (ENOSYS) or a locked-down one is not
        // an error, as in runc.
        let _ = sys::join_session_keyring(&name);
    }
}
