//! SCMP_ACT_NOTIFY: where the listener fd goes.
//!
//! The container's process installs the filter and gets the listener fd
//! (SECCOMP_FILTER_FLAG_NEW_LISTENER). It hands the fd to the runtime over
//! the init channel (`process::channel`, SCM_RIGHTS) right away: a notified
//! syscall waits until a listener answers, and none can before it has the
//! fd. The runtime, on the host, connects to `listenerPath` and sends the
//! fd with the container process state (runtime-spec config-linux.md, "The
//! Container Process State"): one `sendmsg` carrying the JSON and the fd
//! (`fds: ["seccompFd"]`), then the connection is closed. The container
//! never sees the socket, which is a host path.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use oci_spec::runtime::LinuxSeccomp;

use crate::error::{Context, Error, Result};

/// The name of the listener fd in the state's `fds` (runtime-spec).
pub const SECCOMP_FD_NAME: &str = "seccompFd";

/// The container process state for the listener: `pid` is the process the
/// filter is in (the init, or an exec'd process), `state` the container's
/// state as `state` prints it.
pub fn process_state(
    config: &LinuxSeccomp,
    pid: i32,
    state: serde_json::Value,
) -> serde_json::Value {
    let mut v = serde_json::Map::new();
    v.insert("ociVersion".into(), crate::spec::OCI_VERSION.into());
    v.insert("fds".into(), serde_json::json!([SECCOMP_FD_NAME]));
    v.insert("pid".into(), pid.into());
    if let Some(m) = config.listener_metadata() {
        v.insert("metadata".into(), m.clone().into());
    }
    v.insert("state".into(), state);
    serde_json::Value::Object(v)
}

/// Connect to `listenerPath` (`@name`: the abstract socket `name`) and send
/// the listener fd with the container process state; the connection is
/// closed afterwards. Errors name the field.
pub fn send_to_listener(
    config: &LinuxSeccomp,
    listener_fd: BorrowedFd,
    pid: i32,
    state: serde_json::Value,
) -> Result<()> {
    let Some(path) = config
        .listener_path()
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty())
    else {
        crate::bail!("seccomp: SCMP_ACT_NOTIFY is used but listenerPath is not set");
    };
    let what = || format!("linux.seccomp.listenerPath {}", path.display());
    let stream = connect(path).with_context(|| format!("{}: connect", what()))?;
    let json = serde_json::to_vec(&process_state(config, pid, state))?;
    let fds = [listener_fd.as_raw_fd()];
    let sent = loop {
        match sendmsg::<()>(
            stream.as_raw_fd(),
            &[std::io::IoSlice::new(&json)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => break n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(
                    Error::from(e).context(format!("{}: send the seccomp listener fd", what()))
                )
            }
        }
    };
    // The fd went with the first bytes; a stream may take the rest in
    // more writes (the runtime-spec allows several, fds only in the first).
    (&stream)
        .write_all(&json[sent..])
        .with_context(|| format!("{}: send the container process state", what()))?;
    Ok(())
}

fn connect(path: &std::path::Path) -> std::io::Result<UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    match path.as_os_str().as_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            UnixStream::connect_addr(&addr)
        }
        None => UnixStream::connect(path),
    }
}

/// The runtime's side, for the init channel's `SeccompFd` message: send
/// `listener_fd` (from process `pid`) to the config's listener.
pub fn forward(
    config: Option<&LinuxSeccomp>,
    listener_fd: &std::os::fd::OwnedFd,
    pid: i32,
    state: serde_json::Value,
) -> Result<()> {
    use std::os::fd::AsFd;
    let Some(config) = config else {
        crate::bail!("a seccomp listener fd arrived, but the container has no seccomp profile");
    };
    send_to_listener(config, listener_fd.as_fd(), pid, state)
}
