//! The container lifecycle in one place: create, start, kill, delete, state.
//! The CLI commands are thin wrappers over these functions.
//!
//! Deviation from the runtime-spec, following runc because containerd
//! relies on it: `delete` of a `created` container kills its init and
//! deletes it instead of failing.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use oci_spec::runtime::{LinuxResources, Spec};

use crate::update::UpdateOptions;

use crate::container::{self, Container, State, Status, EXEC_FIFO};
use crate::error::{Context, Error, Result};
use crate::process::launch::{self, Launched};
use crate::process::wait;
use crate::{cgroups, hooks, logging, spec, sys, validate};

/// `create` and `run`: everything besides the config.
pub struct CreateOptions {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console: Console,
    /// `--pidfd-socket`: receives a pidfd of the init.
    pub pidfd_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub systemd_cgroup: bool,
    /// `--rootless`: skip cgroups the caller cannot create (when the
    /// config sets no limits).
    pub rootless_cgroups: bool,
}

/// Where a container's terminal goes.
pub enum Console {
    None,
    /// `--console-socket PATH`: the pty master is sent there.
    Socket(PathBuf),
    /// The runtime drives the terminal itself (foreground `run` or
    /// `exec`): the master comes back on this socketpair end.
    Proxied(OwnedFd),
}

impl Console {
    /// Connect to the console socket (if any): the fd the init sends the
    /// pty master on.
    fn connect(self) -> Result<Option<OwnedFd>> {
        Ok(match self {
            Console::None => None,
            Console::Proxied(fd) => Some(fd),
            Console::Socket(path) => Some(OwnedFd::from(
                std::os::unix::net::UnixStream::connect(&path)
                    .with_context(|| format!("connect to console socket {}", path.display()))?,
            )),
        })
    }

    fn check(&self, terminal: bool) -> Result<()> {
        crate::validate::console(
            terminal,
            matches!(self, Console::Socket(_)),
            matches!(self, Console::Proxied(_)),
        )
    }
}

/// Load and minimally check `<bundle>/config.json`.
pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    let mut value: serde_json::Value =
        serde_json::from_slice(&data).with_context(|| format!("parse {}", path.display()))?;
    let mut changed = false;
    if let Some(process) = value.get_mut("process").and_then(|p| p.as_object_mut()) {
        // As runc: a process without `user` runs as root.
        if !process.contains_key("user") {
            process.insert("user".into(), serde_json::json!({"uid": 0, "gid": 0}));
            changed = true;
        }
        if let Some(caps) = process.get_mut("capabilities") {
            changed |= crate::capabilities::drop_unknown(caps);
        }
    }
    let parsed = if changed {
        serde_json::from_value(value.clone())
    } else {
        serde_json::from_slice(&data)
    };
    let spec: Spec = parsed.map_err(|e| {
        // A 1.3 field's bad value, named (serde names neither field nor path).
        match crate::process::mempolicy::explain_parse_error(&value) {
            Some(m) => Error::msg(format!("{}: {m}", path.display())),
            None => Error::from(e).context(format!("parse {}", path.display())),
        }
    })?;
    if !spec.version().starts_with("1.") {
        crate::bail!(
            "{}: unsupported ociVersion {:?}",
            path.display(),
            spec.version()
        );
    }
    Ok(spec)
}

/// Create the container `o.id` from `spec` (the bundle's config.json,
/// parsed once by the caller): validate it into a plan, make the state
/// directory and cgroups, launch the init. Nothing is left behind on error.
pub fn create(o: CreateOptions, spec: &Spec) -> Result<(Container, Launched)> {
    build(
        o,
        spec,
        |plan, state, dir, console_socket| {
            let leaf = state.cgroup.open_leaf()?;
            let cgroup_fd = leaf.as_ref().map(|fd| fd.as_raw_fd());
            launch::launch(plan, state, dir, console_socket, cgroup_fd)
        },
        |l| l.pid,
        send_launched_pidfd,
        launch::kill_and_reap,
    )
}

/// `restore`: as `create`, but the processes come from `restore` (CRIU,
/// given the plan, the state with its cgroups made and the connected
/// console socket if any), which returns the init's pid; `undo` kills them
/// if the state cannot be saved.
pub fn restore(
    o: CreateOptions,
    spec: &Spec,
    restore: impl FnOnce(&validate::Plan, &State, Option<OwnedFd>) -> Result<i32>,
    undo: impl Fn(&i32),
) -> Result<Container> {
    build(
        o,
        spec,
        |plan, state, _, console| restore(plan, state, console),
        |p| *p,
        |socket, _| match socket {
            Some(_) => crate::bail!("not supported: --pidfd-socket"),
            None => Ok(()),
        },
        undo,
    )
    .map(|(c, _)| c)
}

/// `create` and `restore`: validate, make the state dir and cgroups, let
/// `make` bring up the processes, record them. Nothing is left behind on
/// error.
fn build<T>(
    o: CreateOptions,
    spec: &Spec,
    make: impl FnOnce(&validate::Plan, &mut State, &Path, Option<OwnedFd>) -> Result<T>,
    pid_of: impl Fn(&T) -> i32,
    send_pidfd: impl Fn(Option<&OwnedFd>, &T) -> Result<()>,
    undo: impl Fn(&T),
) -> Result<(Container, T)> {
    container::validate_id(&o.id)?;
    let listen_fds = launch::listen_fds().unwrap_or(0);
    let plan = validate::container(
        spec,
        &validate::RuntimeOptions {
            id: &o.id,
            bundle: &o.bundle,
            no_pivot: o.no_pivot,
            no_new_keyring: o.no_new_keyring,
            listen_fds,
            preserve_fds: o.preserve_fds,
        },
    )?;
    o.console
        .check(plan.process.process.terminal().unwrap_or(false))?;
    let console_socket = o.console.connect()?;
    let pidfd_socket = o
        .pidfd_socket
        .as_deref()
        .map(crate::process::pidfd_socket::connect)
        .transpose()?;
    let cgroup = cgroups::Manager::new(
        &o.id,
        spec.linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .and_then(|p| p.to_str()),
        o.systemd_cgroup,
    )?;

    // A cgroup someone froze would freeze the init half-way (runc's check
    // and text); it is not ours to remove.
    if cgroup.is_frozen() {
        crate::bail!("container's cgroup unexpectedly frozen");
    }
    let (dir, lock) = container::create_dir(&o.root, &o.id)?;
    let mut state = State {
        oci_version: spec.version().clone(),
        id: o.id.clone(),
        pid: 0,
        start_time: 0,
        init_pid_ns: None,
        init_mnt_ns: None,
        bundle: plan.bundle.clone(),
        rootfs: plan.rootfs_path().to_path_buf(),
        created: logging::rfc3339_now(),
        owner: owner_name(),
        annotations: spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        hooks: spec.hooks().clone(),
        cgroup,
        own_pid_ns: plan.namespaces.new & libc::CLONE_NEWPID != 0,
        host_mounts: plan.rootfs.host_mount_ns,
        creating: true,
    };
    let res = (|| -> Result<T> {
        // Before any resource exists: whatever point a create dies at,
        // `delete --force` finds the cgroups (and, once it is saved again
        // after clone3, the init) here.
        container::save_state(&dir, &state)?;
        // What `exec` needs later, so it never rereads the bundle.
        container::save_exec_config(&dir, spec)?;
        let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
        if state.cgroup.create_or_skip(resources, o.rootless_cgroups)? {
            logging::debug("rootless: cgroups not delegated and no limits set; skipped");
            container::save_state(&dir, &state)?;
        }
        let launched = make(&plan, &mut state, &dir, console_socket)?;
        let pid = pid_of(&launched);
        if state.pid != pid {
            state.record_init(pid);
        }
        state.creating = false;
        if let Err(e) = container::save_state(&dir, &state)
            .and_then(|()| write_pid_file(o.pid_file.as_deref(), pid))
            .and_then(|()| send_pidfd(pidfd_socket.as_ref(), &launched))
        {
            undo(&launched);
            return Err(e);
        }
        Ok(launched)
    })();
    match res {
        Ok(launched) => Ok((Container::from_parts(dir, state, lock), launched)),
        Err(e) => {
            let _ = crate::netdev::restore(&dir);
            let _ = state.release_host_mounts();
            let _ = state.cgroup.destroy();
            let _ = container::remove_dir(&dir);
            Err(e)
        }
    }
}

fn send_launched_pidfd(socket: Option<&OwnedFd>, launched: &Launched) -> Result<()> {
    match socket {
        Some(s) => crate::process::pidfd_socket::send(s.as_fd(), launched.pidfd.as_fd()),
        None => Ok(()),
    }
}

fn write_pid_file(path: Option<&Path>, pid: i32) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    // Decimal pid, no newline: the bytes runc writes and callers read.
    container::write_atomic(&path, pid.to_string().as_bytes(), 0o644)
}

fn owner_name() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = sys::geteuid();
    if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let mut f = line.split(':');
            if let (Some(name), _, Some(id)) = (f.next(), f.next(), f.next()) {
                if id.parse() == Ok(uid) {
                    return name.to_string();
                }
            }
        }
    }
    format!("#{uid}")
}

/// Release the init blocked on the exec fifo, then run poststart hooks.
pub fn start(c: &Container) -> Result<()> {
    match c.status() {
        Status::Created => {}
        Status::Stopped => crate::bail!("cannot start a container that has stopped"),
        Status::Running => crate::bail!("cannot start an already running container"),
        s => crate::bail!("cannot start a container in the {} state", s.as_str()),
    }
    // The init's pidfd first: once the fifo is open the process may run,
    // exit and be reaped (by a shim) at once, and its pid would be gone.
    let pidfd = sys::pidfd_open(c.state.pid)
        .ok()
        .filter(|_| c.state.init_alive())
        .ok_or_else(|| Error::msg("container init exited before it could be started"))?;
    let fifo_path = c.dir.join(EXEC_FIFO);
    // Non-blocking open, then wait for the init's byte or its death: a dead
    // init must not leave `start` hanging.
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo_path)
        .context("open exec fifo")?;
    let mut fds = [
        PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
        PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
    ];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::from(e).context("wait for the container init")),
        }
    }
    // Read to EOF: the init holds its end until execve (or its death).
    let mut msg = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(&fifo, &mut buf) {
            Ok(0) => break,
            Ok(n) => msg.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(Error::from(e).context("wait for the container init")),
                }
            }
            Err(e) => return Err(Error::from(e).context("read exec fifo")),
        }
    }
    let _ = std::fs::remove_file(&fifo_path);
    match &msg[..] {
        b"0" => {}
        [b'E', msg @ ..] => crate::bail!("{}", String::from_utf8_lossy(msg)),
        _ => crate::bail!("container init exited before it could be started"),
    }
    if let Some(h) = c.state.hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
        let json = serde_json::to_vec(&c.state.spec_state(Status::Running))?;
        if let Err(e) = hooks::run("poststart", h, &json, None) {
            // runtime-spec: a failing poststart hook is an error and the
            // container is stopped.
            let _ = kill_init_and_wait(c);
            return Err(e);
        }
    }
    Ok(())
}

use std::os::unix::fs::OpenOptionsExt;

/// Parse a signal as runc does: `TERM`, `SIGTERM`, `15`, `RTMIN+2`.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        crate::bail!("invalid signal {s:?}");
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rt) = name.strip_prefix("RTMIN") {
        let off: i32 = if rt.is_empty() {
            0
        } else {
            rt.strip_prefix('+')
                .and_then(|n| n.parse().ok())
                .unwrap_or(-1)
        };
        let n = libc::SIGRTMIN() + off;
        if off >= 0 && n <= libc::SIGRTMAX() {
            return Ok(n);
        }
    } else if let Some(rt) = name.strip_prefix("RTMAX") {
        let off: i32 = if rt.is_empty() {
            0
        } else {
            rt.strip_prefix('-')
                .and_then(|n| n.parse().ok())
                .unwrap_or(-1)
        };
        let n = libc::SIGRTMAX() - off;
        if off >= 0 && n >= libc::SIGRTMIN() {
            return Ok(n);
        }
    } else if let Ok(sig) = format!("SIG{name}").parse::<nix::sys::signal::Signal>() {
        return Ok(sig as i32);
    }
    crate::bail!("invalid signal {s:?}")
}

/// `kill`: the init, or with `all` every process of the container. As in
/// runc, `--all` of a stopped container still signals what is left in its
/// cgroup (a container without a pid namespace of its own leaves its
/// children behind; containerd's shim kills them this way).
pub fn kill(c: &Container, sig: i32, all: bool) -> Result<()> {
    if all {
        let in_cgroup = c.state.cgroup.pids().unwrap_or_default();
        if !in_cgroup.is_empty() {
            return c.state.cgroup.kill_all(sig);
        }
        if c.status() != Status::Stopped {
            let (pids, ns) = container_pids(c, || c.state.init_alive())?;
            for pid in pids {
                let _ = signal_in_ns(pid, ns, sig);
            }
        }
        return Ok(());
    }
    let pidfd = c
        .state
        .init_pidfd()
        .ok_or_else(|| Error::msg("container not running"))?;
    sys::pidfd_send_signal(pidfd.as_fd(), sig)
        .with_context(|| format!("send signal {sig} to {}", c.state.pid))
}

/// Every process of the container: from its cgroup when cgroups know it,
/// else (own pid namespace) every host process in the init's namespace.
/// The init is checked first (it may have died and its pid gone to another
/// process), and a namespace that is the runtime's own is never taken for
/// the container's: that would signal every process on the host.
/// With the pids scanned from a pid namespace comes that namespace.
/// `init_alive` checks the init (or says what an earlier check found).
fn container_pids(
    c: &Container,
    init_alive: impl FnOnce() -> bool,
) -> Result<(Vec<i32>, Option<u64>)> {
    let pids = c.state.cgroup.pids()?;
    if !pids.is_empty() {
        return Ok((pids, None));
    }
    if !init_alive() {
        return Ok((Vec::new(), None));
    }
    let mut out = vec![c.state.pid];
    if !c.state.own_pid_ns {
        return Ok((out, None));
    }
    let ns = container::ns_inode(c.state.pid, "pid").context("read the init's pid namespace")?;
    if container::ns_inode(0, "pid").ok() == Some(ns)
        || c.state.init_pid_ns.is_some_and(|i| i != ns)
    {
        crate::bail!(
            "pid {} is not in the container's pid namespace any more",
            c.state.pid
        );
    }
    for e in std::fs::read_dir("/proc").context("read /proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid != c.state.pid && container::ns_inode(pid, "pid").is_ok_and(|i| i == ns) {
            out.push(pid);
        }
    }
    Ok((out, Some(ns)))
}

/// Signal `pid` only while it is in pid namespace `ns`: checked on the
/// process a pidfd holds, so a pid reused after the scan is never hit.
fn signal_in_ns(pid: i32, ns: Option<u64>, sig: i32) -> Result<()> {
    let pidfd = sys::pidfd_open(pid).map_err(|_| Error::msg("container not running"))?;
    if let Some(ns) = ns {
        if container::ns_inode(pid, "pid").ok() != Some(ns) {
            crate::bail!("pid {pid} left the container");
        }
    }
    sys::pidfd_send_signal(pidfd.as_fd(), sig)
        .with_context(|| format!("send signal {sig} to {pid}"))
}

pub fn delete(c: Container, force: bool) -> Result<()> {
    // The init is checked once, on an open pidfd (`init_pidfd`): the status
    // and the pids follow from that check, and the kill goes to that pidfd,
    // which a process reusing the pid later is never behind.
    let init = c.state.init_pidfd();
    match c.state.status_of(init.is_some(), &c.dir.join(EXEC_FIFO)) {
        Status::Stopped => {}
        // runc deletes a created container (containerd relies on it).
        Status::Created => kill_and_wait(init, c.state.pid)?,
        s if force => {
            if s == Status::Paused {
                let _ = c.state.cgroup.thaw();
            }
            let (pids, ns) = container_pids(&c, || init.is_some())?;
            for pid in pids {
                if pid != c.state.pid {
                    let _ = signal_in_ns(pid, ns, libc::SIGKILL);
                }
            }
            kill_and_wait(init, c.state.pid)?
        }
        s => crate::bail!(
            "cannot delete container {} that is not stopped: {}",
            c.state.id,
            s.as_str()
        ),
    }
    destroy(c)
}

/// SIGKILL the init, if it still is the init, and wait until it is gone.
fn kill_init_and_wait(c: &Container) -> Result<()> {
    kill_and_wait(c.state.init_pidfd(), c.state.pid)
}

/// SIGKILL the process behind `pidfd` (`pid` for messages), if any, and
/// wait until it is gone.
fn kill_and_wait(pidfd: Option<OwnedFd>, pid: i32) -> Result<()> {
    match pidfd {
        Some(fd) => wait::kill_pidfd_and_wait(fd.as_fd(), pid),
        None => Ok(()),
    }
}

/// Tear down a stopped container: poststop hooks, cgroups, state dir.
pub fn destroy(c: Container) -> Result<()> {
    if let Some(h) = c.state.hooks.as_ref().and_then(|h| h.poststop().as_ref()) {
        let json = serde_json::to_vec(&c.state.spec_state(Status::Stopped))?;
        if let Err(e) = hooks::run_all("poststop", h, &json) {
            logging::warn(&e.to_string());
        }
    }
    if let Err(e) = crate::netdev::restore(&c.dir) {
        logging::warn(&e.to_string());
    }
    c.state.release_host_mounts()?;
    // What a container without its own pid namespace left behind dies
    // with it (runc does the same), or the cgroups could not go.
    if !c.state.cgroup.pids().unwrap_or_default().is_empty() {
        c.state.cgroup.destroy_force()?;
    } else {
        c.state.cgroup.destroy()?;
    }
    c.remove_dir()
}

/// Freeze the container (runc allows it when created or running).
pub fn pause(c: &Container) -> Result<()> {
    match c.status() {
        Status::Running | Status::Created => c.state.cgroup.freeze(),
        _ => crate::bail!("container not running"),
    }
}

pub fn resume(c: &Container) -> Result<()> {
    if c.status() != Status::Paused {
        crate::bail!("container not paused");
    }
    c.state.cgroup.thaw()
}

/// Apply new limits: the JSON document (if any), then the flags over it.
pub fn update(
    c: &Container,
    from_json: Option<LinuxResources>,
    flags: &UpdateOptions,
) -> Result<()> {
    if c.status() == Status::Stopped {
        crate::bail!("container not running");
    }
    if let Some(r) = from_json {
        c.state.cgroup.update(&r)?;
    }
    let r = flags.to_resources()?;
    if r != LinuxResources::default() {
        c.state.cgroup.update(&r)?;
    }
    Ok(())
}

/// `exec`: everything besides the process.
pub struct ExecOptions {
    pub console: Console,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    /// `--pidfd-socket`: receives a pidfd of the exec'd process.
    pub pidfd_socket: Option<PathBuf>,
    /// `--cgroup`: sub-cgroups of the container's to run the process in.
    pub cgroup: Vec<String>,
}

/// Start `process` inside the running container (`exec`), with the
/// container's seccomp profile from `cfg`. The container's lock is released
/// before the process is started: a process born into a frozen cgroup
/// (`--ignore-paused`) must not keep `resume` waiting.
pub fn exec(
    c: Container,
    cfg: &container::ExecConfig,
    process: &oci_spec::runtime::Process,
    o: ExecOptions,
) -> Result<Launched> {
    o.console.check(process.terminal().unwrap_or(false))?;
    match c.status() {
        Status::Stopped => crate::bail!("cannot exec in a stopped container"),
        Status::Paused if !o.ignore_paused => {
            crate::bail!("cannot exec in a paused container (use --ignore-paused)")
        }
        _ => {}
    }
    let pidfd_socket = o
        .pidfd_socket
        .as_deref()
        .map(crate::process::pidfd_socket::connect)
        .transpose()?;
    let cgroup = crate::cgroups::exec_cgroup::select(&c.state.cgroup, &o.cgroup)?;
    let namespaces = crate::process::exec::namespaces_of(c.state.pid)?;
    let container_state = c.state.spec_state(c.status());
    drop(c);
    let launched = crate::process::exec::exec(
        namespaces,
        &cgroup,
        crate::process::exec::ExecOpts {
            process,
            seccomp: cfg.seccomp.as_ref(),
            container_state,
            console_socket: o.console.connect()?,
            preserve_fds: o.preserve_fds,
        },
    )?;
    if let Err(e) = send_launched_pidfd(pidfd_socket.as_ref(), &launched) {
        launch::kill_and_reap(&launched);
        return Err(e);
    }
    Ok(launched)
}

/// Every process of the container (`ps`).
pub fn processes(c: &Container) -> Result<Vec<i32>> {
    if c.status() == Status::Stopped {
        return Ok(Vec::new());
    }
    container_pids(c, || c.state.init_alive()).map(|(pids, _)| pids)
}

/// `spec`: write the default config.json into `bundle`.
pub fn write_default_spec(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        crate::bail!("File {} exists. Remove it first", path.display());
    }
    let mut data = serde_json::to_vec_pretty(&spec::default_spec(rootless))?;
    data.push(b'\n');
    std::fs::write(&path, data).with_context(|| format!("write {}", path.display()))
}
