use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Hooks;
use serde::{Deserialize, Serialize};

use crate::cgroups;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What `state.json` records about a container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// Host pid of the container init.
    pub pid: i32,
    /// Its start time (/proc/PID/stat field 22): a pid is only ours while
    /// the process behind it started at this time.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Hooks still to run after create (poststart, poststop).
    #[serde(default)]
    pub hooks: Option<Hooks>,
    #[serde(default)]
    pub cgroup: cgroups::Manager,
    /// The init has its own pid namespace (killing it kills the rest).
    #[serde(default)]
    pub own_pid_ns: bool,
    /// No mount namespace of its own: its mounts hang under a bind of the
    /// rootfs in the runtime's namespace, which `delete` detaches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_mounts: bool,
    /// `create` has not finished: written first, before anything else of
    /// the container exists, so a create that dies at any point leaves
    /// what `delete --force` needs to remove it all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creating: bool,
}

impl State {
    /// Detach what the container mounted in the runtime's own namespace
    /// (the rootfs bind and everything below it); nothing when it had a
    /// mount namespace of its own.
    pub fn release_host_mounts(&self) -> crate::Result<()> {
        if !self.host_mounts {
            return Ok(());
        }
        match nix::mount::umount2(&self.rootfs, nix::mount::MntFlags::MNT_DETACH) {
            // EINVAL: not a mount point (any more).
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(crate::Error::from(e).context(format!(
                "detach the container's mounts at {}",
                self.rootfs.display()
            ))),
        }
    }
}

impl State {
    /// Derive the status: `stopped` once the init is gone, a zombie, or a
    /// different process reusing its pid; `created` while the exec fifo
    /// exists; `running` otherwise.
    pub fn status(&self, exec_fifo: &Path) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.creating {
            return Status::Creating;
        }
        if exec_fifo.exists() {
            return Status::Created;
        }
        if self.cgroup.is_frozen() {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn init_alive(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        match crate::sys::proc_stat(self.pid) {
            Some((start, state)) => start == self.start_time && state != b'Z' && state != b'X',
            None => false,
        }
    }

    /// The runtime-spec state object plus runc's extra fields, as `state`
    /// prints it and hooks receive it on stdin.
    pub fn to_oci_json(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        let v = OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid,
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        };
        serde_json::to_value(v).unwrap_or_default()
    }
}

/// The printed state, fields in runc's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OciState<'a> {
    oci_version: &'a str,
    id: &'a str,
    pid: i32,
    status: &'a str,
    bundle: &'a Path,
    rootfs: &'a Path,
    created: &'a str,
    owner: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}
