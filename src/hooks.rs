//! runtime-spec hooks: run with the container state on stdin, `env` as the
//! whole environment, `timeout` enforced.
//!
//! No threads are used: hooks may run from the container's init right after
//! clone3. The state goes in through a memfd (no pipe, so no SIGPIPE or
//! deadlock if the hook never reads it); stdout/stderr are pipes read in a
//! poll loop that also waits on the hook's pidfd and the timeout.

use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::{Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use oci_spec::runtime::Hook;

use std::path::Path;

use crate::{Context, Error, Result};

/// How much of a hook's stdout/stderr is kept for the error message.
const CAPTURE_LIMIT: usize = 4096;
/// How much of each stream is shown in the error message.
const SHOW_LIMIT: usize = 1024;

/// Run `hooks` in order; the first failure stops and is returned, naming the
/// stage (e.g. `createRuntime`), the hook's index (its position in the
/// config.json array, from 0) and path. `cwd`: the hooks' working
/// directory (the container's root for createContainer hooks), else ours.
pub fn run(stage: &str, hooks: &[Hook], state_json: &[u8], cwd: Option<&Path>) -> Result<()> {
    run_with_env(stage, hooks, state_json, cwd, None)
}

/// `run` for the hooks the container's init runs (createContainer,
/// startContainer): one without `env` gets `env`, the environment the
/// container's process has by then, as runc's init gives them its own.
pub fn run_in_container<'a>(
    stage: &str,
    hooks: &[Hook],
    state_json: &[u8],
    cwd: Option<&Path>,
    env: impl IntoIterator<Item = &'a CStr>,
) -> Result<()> {
    let env: Vec<&CStr> = env.into_iter().collect();
    run_with_env(stage, hooks, state_json, cwd, Some(&env))
}

fn run_with_env(
    stage: &str,
    hooks: &[Hook],
    state_json: &[u8],
    cwd: Option<&Path>,
    default_env: Option<&[&CStr]>,
) -> Result<()> {
    for (i, hook) in hooks.iter().enumerate() {
        run_one(hook, state_json, cwd, default_env)
            .with_context(|| format!("{stage} hook #{i} ({})", hook.path().display()))?;
    }
    Ok(())
}

/// Run every hook of `hooks`, also after one fails (poststop: the
/// runtime-spec wants them all run); the failures are returned together.
pub fn run_all(stage: &str, hooks: &[Hook], state_json: &[u8]) -> Result<()> {
    let failures: Vec<String> = hooks
        .iter()
        .enumerate()
        .filter_map(|(i, hook)| {
            run_one(hook, state_json, None, None)
                .with_context(|| format!("{stage} hook #{i} ({})", hook.path().display()))
                .err()
                .map(|e| e.to_string())
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::msg(failures.join("; ")))
    }
}

/// A hook's fields as the runtime-spec wants them (checked at create, and
/// again when a hook runs).
pub fn check(hook: &Hook) -> Result<()> {
    if !hook.path().is_absolute() {
        // The runtime-spec wants an absolute path; runc does not search
        // PATH for it either.
        crate::bail!(
            "path {:?} must be absolute",
            hook.path().display().to_string()
        );
    }
    for entry in hook.env().as_deref().unwrap_or_default() {
        if entry.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
            crate::bail!("invalid env entry {entry:?}: want KEY=VALUE");
        }
    }
    if let Some(t) = hook.timeout().filter(|t| *t <= 0) {
        crate::bail!("timeout must be greater than zero, got {t}");
    }
    Ok(())
}

/// `default_env`: the environment of a hook without `env` (None: ours).
fn run_one(
    hook: &Hook,
    state_json: &[u8],
    cwd: Option<&Path>,
    default_env: Option<&[&CStr]>,
) -> Result<()> {
    check(hook)?;
    let path = hook.path();
    let mut cmd = Command::new(path);
    // Host-side hooks run in the bundle directory, as runc's do (it works
    // from there); createContainer in the container's root.
    let bundle = serde_json::from_slice::<serde_json::Value>(state_json)
        .ok()
        .and_then(|s| s["bundle"].as_str().map(std::path::PathBuf::from))
        .filter(|b| b.is_dir());
    if let Some(dir) = cwd.map(Path::to_path_buf).or(bundle) {
        cmd.current_dir(dir);
    }
    // args[0] is argv[0]; with no args, argv is just [path].
    if let Some([arg0, rest @ ..]) = hook.args().as_deref() {
        cmd.arg0(arg0).args(rest);
    }
    // No `env`: the runtime's own environment, as runc passes it (hooks
    // rely on its PATH), or the one given for the container's hooks; an
    // `env`, even empty, is the whole environment.
    if hook.env().is_some() || default_env.is_some() {
        cmd.env_clear();
    }
    if hook.env().is_none() {
        for var in default_env.into_iter().flatten() {
            let var = var.to_bytes();
            if let Some(i) = var.iter().position(|b| *b == b'=') {
                cmd.env(
                    OsStr::from_bytes(&var[..i]),
                    OsStr::from_bytes(&var[i + 1..]),
                );
            }
        }
    }
    for (k, v) in hook
        .env()
        .iter()
        .flatten()
        .filter_map(|e| e.split_once('='))
    {
        cmd.env(k, v);
    }
    let timeout = hook.timeout().map(|t| Duration::from_secs(t as u64));

    cmd.stdin(Stdio::from(state_memfd(state_json)?))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("exec")?;
    let outcome = supervise(&mut child, timeout);
    match outcome {
        Ok((status, out, err)) if !status.success() => crate::bail!(
            "{}, stdout: {}, stderr: {}",
            describe(status),
            show(&out),
            show(&err)
        ),
        Ok(_) => Ok(()),
        Err(e) => {
            // Timed out or failed to wait: never leave the hook behind.
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// A memfd holding `data`, positioned at 0: the hook reads the state and then
/// sees EOF, and a hook that never reads it can't block us.
fn state_memfd(data: &[u8]) -> Result<OwnedFd> {
    let mut file = File::from(
        crate::sys::memfd_create(c"berth-hook-state", libc::MFD_CLOEXEC).context("memfd_create")?,
    );
    file.write_all(data).context("write state to memfd")?;
    file.rewind().context("rewind state memfd")?;
    Ok(file.into())
}

fn pidfd_open(pid: u32) -> Result<OwnedFd> {
    crate::sys::pidfd_open(pid as libc::pid_t).context("pidfd_open")
}

/// Collect the hook's output until it exits or `timeout` passes.
fn supervise(
    child: &mut Child,
    timeout: Option<Duration>,
) -> Result<(ExitStatus, Vec<u8>, Vec<u8>)> {
    let pidfd = pidfd_open(child.id())?;
    let mut streams: [(Option<OwnedFd>, Vec<u8>); 2] = [
        (child.stdout.take().map(OwnedFd::from), Vec::new()),
        (child.stderr.take().map(OwnedFd::from), Vec::new()),
    ];
    // A timeout too large for Instant is as good as none.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let wait = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let secs = timeout.map_or(0, |t| t.as_secs());
                    crate::bail!("timed out after {secs}s, killed");
                }
                // Round up so we never spin on a sub-millisecond remainder.
                let ms = left.as_millis().saturating_add(1).min(i32::MAX as u128) as i32;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        let mut which = Vec::new();
        for (idx, (fd, _)) in streams.iter().enumerate() {
            if let Some(fd) = fd {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                which.push(idx);
            }
        }
        match poll(&mut fds, wait) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("poll hook"),
            Ok(_) => {}
        }
        let exited = fds[0].any().unwrap_or(false);
        let ready: Vec<usize> = fds[1..]
            .iter()
            .zip(&which)
            .filter(|(p, _)| p.any().unwrap_or(false))
            .map(|(_, &i)| i)
            .collect();
        drop(fds);
        for i in ready {
            read_some(&mut streams[i]);
        }
        if exited {
            // Take what is already buffered, but don't wait for grandchildren
            // that may still hold the pipes open.
            // Bounded, in case such a grandchild keeps writing.
            for s in streams.iter_mut() {
                for _ in 0..64 {
                    if !readable_now(s.0.as_ref()) {
                        break;
                    }
                    read_some(s);
                }
            }
            let status = child.wait().context("wait for hook")?;
            let [(_, out), (_, err)] = streams;
            return Ok((status, out, err));
        }
    }
}

fn readable_now(fd: Option<&OwnedFd>) -> bool {
    let Some(fd) = fd else { return false };
    let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut p, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// One read from a ready stream; EOF or an error closes it. Bytes beyond
/// CAPTURE_LIMIT are read and dropped so the hook never blocks on a full pipe.
fn read_some(stream: &mut (Option<OwnedFd>, Vec<u8>)) {
    let Some(fd) = &stream.0 else { return };
    let mut buf = [0u8; 4096];
    match nix::unistd::read(fd.as_fd(), &mut buf) {
        Ok(0) | Err(_) => stream.0 = None,
        Ok(n) => {
            let room = CAPTURE_LIMIT.saturating_sub(stream.1.len());
            stream.1.extend_from_slice(&buf[..n.min(room)]);
        }
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    }
}

fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let t = text.trim();
    if t.len() <= SHOW_LIMIT {
        return format!("{t:?}");
    }
    let mut end = SHOW_LIMIT;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}...", &t[..end])
}
