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
    /// The config's ociVersion (the state berth prints and hooks get
    /// carries the version berth implements, as runc's does).
    pub oci_version: String,
    pub id: String,
    /// Host pid of the container init.
    pub pid: i32,
    /// Its start time (/proc/PID/stat field 22): a pid is only ours while
    /// the process behind it started at this time.
    pub start_time: u64,
    /// The init's pid and mount namespaces (inode numbers), where they are
    /// not the runtime's own. The start time counts in 10 ms ticks: a pid
    /// reused within the tick the init started in looks the same by it
    /// alone, but not from a namespace the new process is not in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_pid_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_mnt_ns: Option<u64>,
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

/// The inode of namespace `kind` of `pid` (0: the runtime itself), read
/// from the link's text (`pid:[4026531836]`): the same number a stat of it
/// gives, without the kernel making an nsfs inode to stat (a third of
/// `list`'s time with a stat per container).
pub fn ns_inode(pid: i32, kind: &str) -> std::io::Result<u64> {
    let path = if pid == 0 {
        format!("/proc/self/ns/{kind}")
    } else {
        format!("/proc/{pid}/ns/{kind}")
    };
    let link = std::fs::read_link(&path)?;
    link.to_str()
        .and_then(|l| l.strip_prefix(kind)?.strip_prefix(":[")?.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{path} links to {}", link.display()),
            )
        })
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
        self.status_of(self.init_alive(), exec_fifo)
    }

    /// The status, whether the init is alive already known (`init_alive`,
    /// or an `init_pidfd` that was or was not handed out).
    pub fn status_of(&self, init_alive: bool, exec_fifo: &Path) -> Status {
        if !init_alive {
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
            Some((start, state)) if start == self.start_time && state != b'Z' && state != b'X' => {}
            _ => return false,
        }
        // A namespace that cannot be read (EACCES: a rootless runtime and a
        // non-dumpable init) proves nothing either way; one that reads as
        // another is a different process.
        for (kind, want) in [("pid", self.init_pid_ns), ("mnt", self.init_mnt_ns)] {
            if let (Some(want), Ok(ino)) = (want, ns_inode(self.pid, kind)) {
                if ino != want {
                    return false;
                }
            }
        }
        true
    }

    /// A pidfd of the init, only while `pid` is still the init (checked
    /// after the pidfd is open: a pid reused later cannot slip in).
    pub fn init_pidfd(&self) -> Option<std::os::fd::OwnedFd> {
        let fd = crate::sys::pidfd_open(self.pid).ok()?;
        self.init_alive().then_some(fd)
    }

    /// Take `pid` as the container's init: its start time, and its pid and
    /// mount namespaces where they differ from the runtime's.
    pub fn record_init(&mut self, pid: i32) {
        self.pid = pid;
        self.start_time = crate::sys::proc_stat(pid).map(|s| s.0).unwrap_or(0);
        let own = |kind| ns_inode(0, kind).ok();
        let init = |kind| ns_inode(pid, kind).ok().filter(|i| Some(*i) != own(kind));
        self.init_pid_ns = init("pid");
        self.init_mnt_ns = init("mnt");
    }

    /// The runtime-spec state (runtime.md#state) as hooks and seccomp
    /// agents get it: exactly its fields, `ociVersion` the version berth
    /// implements, and no pid once the process is gone (runc's hooks get
    /// the same).
    pub fn spec_state(&self, status: Status) -> serde_json::Value {
        let v = SpecState {
            oci_version: crate::spec::OCI_VERSION,
            id: &self.id,
            status: status.as_str(),
            pid: (status != Status::Stopped).then_some(self.pid),
            bundle: &self.bundle,
            annotations: &self.annotations,
        };
        serde_json::to_value(v).unwrap_or_default()
    }

    /// What `state` and `list` print: the runtime-spec state plus runc's
    /// extra fields, pid 0 once stopped, as runc prints it.
    pub fn to_oci_json(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        let v = OciState {
            oci_version: crate::spec::OCI_VERSION,
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

/// The runtime-spec state, in the spec's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpecState<'a> {
    oci_version: &'a str,
    id: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
    bundle: &'a Path,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn ns_inode_from_the_link_is_the_inode_a_stat_gives() {
        for kind in ["pid", "mnt", "net"] {
            let statted = std::fs::metadata(format!("/proc/self/ns/{kind}"))
                .unwrap()
                .ino();
            assert_eq!(super::ns_inode(0, kind).unwrap(), statted, "{kind}");
            let me = std::process::id() as i32;
            assert_eq!(super::ns_inode(me, kind).unwrap(), statted, "{kind}");
        }
        assert!(super::ns_inode(i32::MAX, "pid").is_err());
    }
}
