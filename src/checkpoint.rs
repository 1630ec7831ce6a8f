//! `checkpoint` and `restore`: the container's process tree written to
//! image files and brought back, by the `criu` binary (Debian's `criu`,
//! its command line: one short-lived process per operation, nothing to
//! keep in step with a CRIU RPC schema; the global `--criu PATH` picks the
//! binary).
//!
//! What CRIU is told, as runc tells it: every bind mount of the spec is an
//! external mount (`mnt[DEST]` at dump, mapped back to its source at
//! restore); the init's stdio, when it is a pipe, a socket or a file on a
//! mount outside the container, is external too and is given the restoring
//! `berth`'s own stdio (`--inherit-fd`; the keys are kept in the image
//! directory as `berth-stdio.json`); restored tasks go into the cgroup
//! berth makes for the new container (`--cgroup-root`, CRIU's
//! `--manage-cgroups` mode `soft` unless told otherwise). The rootfs is
//! bind-mounted onto a directory of its own for CRIU's `--root`.
//!
//! A container with `terminal: true`: its pty slave is an external tty
//! (`tty[RDEV:DEV]`) and its `/dev/console` an external mount; `restore
//! --console-socket` opens a new pty pair on the host's devpts, gives CRIU
//! the slave for the tty (`--inherit-fd`, CRIU makes it the session's
//! controlling terminal again) and for `/dev/console`, and sends the master
//! to the socket. (runc gets the same from CRIU's RPC-only
//! `orphan-pts-master`.) A non-terminal init whose stdio is a terminal
//! outside the container (started from a shell) needs `--shell-job` on both
//! sides: that terminal is an external tty too (CRIU's own shell-job
//! handling cannot reopen a pty of a devpts outside the container's mount
//! namespace), and the restored tasks get the restoring `berth`'s stdin,
//! which must be a terminal.
//!
//! Flags with no test here are refused with `not supported: FLAG` (the
//! README has the table).

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::container::{Container, State, Status};
use crate::error::{Context, Error, Result};
use crate::{bail, validate};

/// The `criu` binary (`--criu`, default `criu` on PATH).
pub struct Criu(pub PathBuf);

impl Criu {
    pub fn new(path: Option<&str>) -> Criu {
        Criu(PathBuf::from(path.unwrap_or("criu")))
    }

    /// `criu check`: a missing binary or a kernel it cannot work with is
    /// named before anything is touched.
    pub fn check(&self) -> Result<()> {
        let out = Command::new(&self.0)
            .arg("check")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                Error::from(e).context(format!(
                    "cannot run CRIU ({}); install Debian's criu or pass --criu PATH",
                    self.0.display()
                ))
            })?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr).to_string()
                + &String::from_utf8_lossy(&out.stdout);
            bail!(
                "CRIU cannot checkpoint on this system: `{} check` failed: {}",
                self.0.display(),
                text.trim()
            );
        }
        Ok(())
    }

    /// Run `criu ARGS` (logging to `log` in `work`); a failure quotes the
    /// log's error lines.
    /// `stdin`: CRIU's fd 0 if not ours.
    fn run(
        &self,
        what: &str,
        args: &[String],
        work: &Path,
        log: &str,
        stdin: Option<OwnedFd>,
    ) -> Result<()> {
        let status = Command::new(&self.0)
            .args(args)
            .stdin(stdin.map_or_else(Stdio::inherit, Stdio::from))
            .status()
            .with_context(|| format!("run {}", self.0.display()))?;
        if status.success() {
            return Ok(());
        }
        let text = std::fs::read_to_string(work.join(log)).unwrap_or_default();
        let errors: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("Error") || l.contains("error"))
            .collect();
        let tail = if errors.is_empty() {
            text.lines().rev().take(5).collect::<Vec<_>>()
        } else {
            errors.into_iter().rev().take(8).collect()
        };
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "criu {what} failed ({status}); {}: {}",
            work.join(log).display(),
            tail.join(" | ")
        )
    }
}

/// `checkpoint`'s options (runc's flags).
#[derive(Default)]
pub struct DumpOptions {
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    pub pre_dump: bool,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: Option<String>,
}

/// `restore`'s options besides those of `create`.
#[derive(Default)]
pub struct RestoreOptions {
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: Option<String>,
}

/// The init's fds 0–2 as CRIU is to see them.
#[derive(Serialize, Deserialize)]
struct Stdio3 {
    /// `--inherit-fd` resource per fd (`pipe:[INO]`, `file[MNT:INO]`,
    /// `tty[RDEV:DEV]` for the container's console, …), none when CRIU
    /// restores the file itself.
    fds: Vec<Option<String>>,
    /// The tty is the container's console (`terminal: true`), not a
    /// shell's terminal (`--shell-job`).
    #[serde(default)]
    console: bool,
}

impl Stdio3 {
    /// The console's external tty key, if the init's stdio is the
    /// container's terminal.
    fn tty(&self) -> Option<&str> {
        self.fds
            .iter()
            .flatten()
            .find_map(|k| k.starts_with("tty[").then_some(k.as_str()))
    }
}

const STDIO_FILE: &str = "berth-stdio.json";

/// The external mount name (dump) of a terminal container's `/dev/console`.
const CONSOLE: &str = "/dev/console";

fn has_terminal(spec: &Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

fn manage_cgroups(mode: &Option<String>) -> Result<String> {
    let m = mode.as_deref().unwrap_or("soft");
    match m {
        "soft" | "full" | "strict" | "ignore" => Ok(format!("--manage-cgroups={m}")),
        _ => bail!("--manage-cgroups-mode {m:?}: one of soft, full, strict, ignore"),
    }
}

fn path_arg(p: &Path) -> Result<String> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    Ok(abs.to_string_lossy().into_owned())
}

/// The spec's bind mounts: (destination, source).
fn bind_mounts(spec: &Spec, bundle: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let opts = m.options().clone().unwrap_or_default();
        let bind =
            m.typ().as_deref() == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
        let Some(src) = m.source() else { continue };
        if !bind {
            continue;
        }
        let src = if src.is_absolute() {
            src.clone()
        } else {
            bundle.join(src)
        };
        out.push((m.destination().to_string_lossy().into_owned(), src));
    }
    out
}

/// Mount ids of the mounts in `pid`'s mount namespace.
fn mount_ids(pid: i32) -> Result<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .with_context(|| format!("read /proc/{pid}/mountinfo"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect())
}

/// How CRIU is to treat the init's fd `fd`: (dump `--external`, restore
/// `--inherit-fd` key). `terminal`: the container has a console pty;
/// `shell_job`: a terminal from outside may be dumped.
fn stdio_key(
    pid: i32,
    fd: i32,
    mounts: &[u64],
    terminal: bool,
    shell_job: bool,
) -> Result<Option<(Option<String>, String)>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let link = match std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) {
        Ok(l) => l.to_string_lossy().into_owned(),
        Err(_) => return Ok(None),
    };
    let meta = std::fs::metadata(format!("/proc/{pid}/fd/{fd}"))
        .with_context(|| format!("stat the init's fd {fd} ({link})"))?;
    // UNIX 98 pty slaves (majors 136–143).
    let pty = meta.file_type().is_char_device()
        && (136..=143).contains(&nix::sys::stat::major(meta.rdev()));
    if pty {
        if !terminal && !shell_job {
            bail!(
                "the init's fd {fd} is a terminal from outside the container ({link}): checkpoint it with --shell-job (and restore with --shell-job from a terminal)"
            );
        }
        let key = format!("tty[{:x}:{:x}]", meta.rdev(), meta.dev());
        return Ok(Some((Some(key.clone()), key)));
    }
    if let Some(ino) = link
        .strip_prefix("pipe:[")
        .and_then(|r| r.strip_suffix(']'))
    {
        // CRIU names an inherited pipe or socket as the kernel's link text.
        return Ok(Some((None, format!("pipe:[{ino}]"))));
    }
    if let Some(ino) = link
        .strip_prefix("socket:[")
        .and_then(|r| r.strip_suffix(']'))
    {
        return Ok(Some((
            Some(format!("unix[{ino}]")),
            format!("socket:[{ino}]"),
        )));
    }
    if !link.starts_with('/') {
        return Ok(None);
    }
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))?;
    let mnt: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if mounts.contains(&mnt) {
        return Ok(None); // a file of the container's: CRIU reopens it
    }
    let ino = std::fs::metadata(format!("/proc/{pid}/fd/{fd}"))?.ino();
    let key = format!("file[{mnt:x}:{ino:x}]");
    Ok(Some((Some(key.clone()), key)))
}

/// `berth checkpoint`.
pub fn checkpoint(criu: &Criu, c: &Container, o: &DumpOptions) -> Result<()> {
    // A paused container is dumped as it is (containerd pauses the task
    // before its checkpoint): CRIU is told the frozen cgroup, so it seizes
    // the tasks there instead of freezing them itself.
    let paused = match c.status() {
        Status::Running => false,
        Status::Paused => true,
        s => bail!("container is not running (it is {})", s.as_str()),
    };
    let spec = crate::lifecycle::load_spec(&c.state.bundle)?;
    check_namespaces(&spec)?;
    let terminal = has_terminal(&spec);
    criu.check()?;
    let images = &o.image_path;
    std::fs::create_dir_all(images)
        .with_context(|| format!("create image directory {}", images.display()))?;
    let work = o.work_path.clone().unwrap_or_else(|| images.clone());
    std::fs::create_dir_all(&work)
        .with_context(|| format!("create work directory {}", work.display()))?;
    let pid = c.state.pid;
    let log = if o.pre_dump {
        "pre-dump.log"
    } else {
        "dump.log"
    };
    let mut args: Vec<String> = vec![
        if o.pre_dump { "pre-dump" } else { "dump" }.into(),
        "--tree".into(),
        pid.to_string(),
        "--images-dir".into(),
        path_arg(images)?,
        "--work-dir".into(),
        path_arg(&work)?,
        "--log-file".into(),
        log.into(),
        "-v4".into(),
        manage_cgroups(&o.manage_cgroups_mode)?,
    ];
    if paused {
        args.push("--freeze-cgroup".into());
        args.push(path_arg(c.state.cgroup.freezer_dir()?)?);
    }
    if let Some(parent) = &o.parent_path {
        // CRIU wants it relative to the image directory, as runc documents.
        args.push("--prev-images-dir".into());
        args.push(parent.to_string_lossy().into_owned());
    }
    if o.pre_dump || o.parent_path.is_some() {
        args.push("--track-mem".into());
    }
    for (flag, on) in [
        ("--leave-running", o.leave_running && !o.pre_dump),
        ("--tcp-established", o.tcp_established),
        ("--ext-unix-sk", o.ext_unix_sk),
        ("--shell-job", o.shell_job),
        ("--file-locks", o.file_locks),
    ] {
        if on {
            args.push(flag.into());
        }
    }
    if !o.pre_dump {
        for (dest, _) in bind_mounts(&spec, &c.state.bundle) {
            args.push("--external".into());
            args.push(format!("mnt[{dest}]:{dest}"));
        }
        if terminal {
            // The pty slave bound there: its master is not the container's.
            args.push("--external".into());
            args.push(format!("mnt[{CONSOLE}]:{CONSOLE}"));
        }
        let mounts = mount_ids(pid)?;
        let mut fds = Vec::new();
        for fd in 0..3 {
            match stdio_key(pid, fd, &mounts, terminal, o.shell_job)? {
                Some((ext, key)) => {
                    if let Some(ext) = ext {
                        if !args.contains(&ext) {
                            args.push("--external".into());
                            args.push(ext);
                        }
                    }
                    fds.push(Some(key));
                }
                None => fds.push(None),
            }
        }
        if terminal && !fds.iter().flatten().any(|k| k.starts_with("tty[")) {
            bail!("not supported: checkpoint of a terminal container whose init's stdio is not its console");
        }
        crate::container::write_atomic(
            &images.join(STDIO_FILE),
            &serde_json::to_vec(&Stdio3 {
                fds,
                console: terminal,
            })?,
            0o600,
        )?;
    }
    criu.run(
        if o.pre_dump { "pre-dump" } else { "dump" },
        &args,
        &work,
        log,
        None,
    )?;
    // What stays running stays as it was: paused.
    if paused && (o.leave_running || o.pre_dump) {
        c.state.cgroup.freeze()?;
    }
    Ok(())
}

/// CRIU mounts what it dumped onto the mount points it finds in the new
/// rootfs; a fresh rootfs (a caller's new snapshot of the image: `ctr
/// container restore`) has none of those `create` made. Make them as
/// `create` does, resolved inside the rootfs; not under a tmpfs of the
/// container, whose content CRIU restores whole.
fn make_mount_points(rootfs: &Path, spec: &Spec, binds: &[(String, PathBuf)]) -> Result<()> {
    use crate::rootfs::resolve::{self, Kind};
    let dir = std::fs::File::open(rootfs)
        .with_context(|| format!("open the rootfs {}", rootfs.display()))?;
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let tmpfs: Vec<&Path> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().as_path())
        .collect();
    for m in mounts {
        let dest = m.destination();
        if tmpfs.iter().any(|t| dest != *t && dest.starts_with(t)) {
            continue;
        }
        let file_source = binds
            .iter()
            .any(|(d, src)| Path::new(d) == dest && src.metadata().is_ok_and(|md| !md.is_dir()));
        let kind = if file_source { Kind::File } else { Kind::Dir };
        resolve::ensure(dir.as_fd(), dest, kind)
            .with_context(|| format!("make the mount point {} for CRIU", dest.display()))?;
    }
    Ok(())
}

/// Joined namespaces (a `path`) would need CRIU's external namespaces;
/// not done here.
fn check_namespaces(spec: &Spec) -> Result<()> {
    for ns in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(p) = ns.path() {
            bail!(
                "not supported: checkpoint/restore of a container that joins an existing {:?} namespace ({})",
                ns.typ(),
                p.display()
            );
        }
    }
    Ok(())
}

/// `berth restore`: a new container `o.id` from `spec` whose processes
/// CRIU brings back from `r.image_path`. Returns the container and its
/// init's pid.
pub fn restore(
    criu: &Criu,
    o: crate::lifecycle::CreateOptions,
    spec: &Spec,
    r: &RestoreOptions,
) -> Result<(Container, i32)> {
    if o.systemd_cgroup {
        bail!("not supported: restore with --systemd-cgroup (CRIU would place the tasks before systemd's scope exists)");
    }
    check_namespaces(spec)?;
    criu.check()?;
    let stdio: Stdio3 = {
        let p = r.image_path.join(STDIO_FILE);
        let mut data = Vec::new();
        std::fs::File::open(&p)
            .and_then(|mut f| f.read_to_end(&mut data))
            .with_context(|| {
                format!(
                    "{}: not a berth checkpoint image directory",
                    r.image_path.display()
                )
            })?;
        serde_json::from_slice(&data).with_context(|| format!("parse {}", p.display()))?
    };
    let terminal = has_terminal(spec);
    match (stdio.tty().is_some(), stdio.console) {
        (true, true) if !terminal => bail!(
            "the checkpoint's init has a console: restore it from a bundle with process.terminal true, with --console-socket"
        ),
        (true, false) if !r.shell_job => bail!(
            "the checkpoint's init has a terminal from a shell: restore it with --shell-job from a terminal"
        ),
        (true, false) if !nix::unistd::isatty(std::io::stdin()).unwrap_or(false) => bail!(
            "restore --shell-job: the checkpoint's init had a shell's terminal; berth's stdin must be a terminal to hand it on"
        ),
        _ if terminal && !stdio.console => bail!(
            "process.terminal is true but the checkpoint's init has no console"
        ),
        _ => {}
    }
    let bundle = o.bundle.clone();
    let c = crate::lifecycle::restore(
        o,
        spec,
        |plan, state, console| run_restore(criu, plan, state, spec, &bundle, r, &stdio, console),
        |pid| {
            let _ = crate::process::wait::kill_and_wait(*pid);
        },
    )?;
    let pid = c.state.pid;
    Ok((c, pid))
}

/// A terminal container's new console: (master, slave, slave's path).
type Pty = (OwnedFd, OwnedFd, String);

/// The restored container's console: a new pty pair on the host's devpts.
fn new_console(spec: &Spec) -> Result<Pty> {
    let size = spec.process().as_ref().and_then(|p| p.console_size());
    let (master, slave) = crate::tty::open_pty(Path::new("/dev/pts"), size.as_ref())
        .context("open the restored container's pty")?;
    let name = crate::tty::pty_name(master.as_fd())?;
    Ok((master, slave, name))
}

#[allow(clippy::too_many_arguments)]
fn run_restore(
    criu: &Criu,
    plan: &validate::Plan,
    state: &State,
    spec: &Spec,
    bundle: &Path,
    r: &RestoreOptions,
    stdio: &Stdio3,
    console: Option<OwnedFd>,
) -> Result<i32> {
    // A shell job's terminal is our stdin, and so CRIU's.
    let pty = match (stdio.tty(), stdio.console, &console) {
        (Some(_), true, Some(_)) => Some(new_console(spec)?),
        (Some(_), true, None) => {
            bail!("the checkpoint's init has a console: restore needs --console-socket")
        }
        _ => None,
    };
    let work = r.work_path.clone().unwrap_or_else(|| r.image_path.clone());
    std::fs::create_dir_all(&work)
        .with_context(|| format!("create work directory {}", work.display()))?;
    let binds = bind_mounts(spec, bundle);
    make_mount_points(plan.rootfs_path(), spec, &binds)?;
    // CRIU's --root must be a mount point of its own.
    let root = work.join("berth-criu-root");
    std::fs::create_dir_all(&root)?;
    nix::mount::mount(
        Some(plan.rootfs_path()),
        &root,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| Error::from(e).context(format!("bind the rootfs onto {}", root.display())))?;
    let res = (|| -> Result<i32> {
        let pidfile = work.join("berth-restore.pid");
        let _ = std::fs::remove_file(&pidfile);
        let mut args: Vec<String> = vec![
            "restore".into(),
            "--images-dir".into(),
            path_arg(&r.image_path)?,
            "--work-dir".into(),
            path_arg(&work)?,
            "--log-file".into(),
            "restore.log".into(),
            "-v4".into(),
            "--root".into(),
            path_arg(&root)?,
            "--restore-detached".into(),
            "--pidfile".into(),
            path_arg(&pidfile)?,
            manage_cgroups(&r.manage_cgroups_mode)?,
            "--cgroup-root".into(),
            state.cgroup.path.clone(),
        ];
        for (flag, on) in [
            ("--tcp-established", r.tcp_established),
            ("--ext-unix-sk", r.ext_unix_sk),
            // A shell's terminal is an external tty, handed on with
            // --inherit-fd: CRIU's own shell job would take its stdin
            // again after moving it to its fd store.
            ("--shell-job", r.shell_job && stdio.tty().is_none()),
            ("--file-locks", r.file_locks),
        ] {
            if on {
                args.push(flag.into());
            }
        }
        for (dest, src) in &binds {
            args.push("--external".into());
            args.push(format!("mnt[{dest}]:{}", src.display()));
        }
        let mut stdin = None;
        if let Some((_, slave, name)) = &pty {
            // CRIU's stdin is the new slave: the tty's resource and the
            // console mount's source.
            stdin = Some(slave.try_clone().context("dup the pty slave")?);
            args.push("--external".into());
            args.push(format!("mnt[{CONSOLE}]:{name}"));
        }
        for (fd, key) in stdio.fds.iter().enumerate() {
            let Some(key) = key else { continue };
            if key.starts_with("tty[") {
                let arg = format!("fd[0]:{key}");
                if !args.contains(&arg) {
                    args.push("--inherit-fd".into());
                    args.push(arg);
                }
            } else if fd == 0 && stdio.tty().is_some() {
                bail!("not supported: restore of a terminal container whose init's stdin is not its console");
            } else {
                args.push("--inherit-fd".into());
                args.push(format!("fd[{fd}]:{key}"));
            }
        }
        criu.run("restore", &args, &work, "restore.log", stdin)?;
        let text = std::fs::read_to_string(&pidfile)
            .with_context(|| format!("read CRIU's pid file {}", pidfile.display()))?;
        let pid = text
            .trim()
            .parse::<i32>()
            .map_err(|_| Error::msg(format!("CRIU's pid file holds {text:?}")))?;
        if let (Some((master, _, _)), Some(socket)) = (&pty, &console) {
            if let Err(e) = crate::tty::send_master(socket.as_fd(), master.as_fd()) {
                let _ = crate::process::wait::kill_and_wait(pid);
                return Err(e);
            }
        }
        Ok(pid)
    })();
    let _ = nix::mount::umount2(&root, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(&root);
    res
}
