//! Cgroups v1 and v2 (issue 5). The runtime core calls only this interface.
//!
//! Lifecycle as the runtime uses it:
//! `Manager::new` (pure: computes paths) → `create` (mkdir + limits, before
//! clone3) → on v2 `clone_into_fd` is passed to clone3 (`CLONE_INTO_CGROUP`),
//! on v1 `add_pid` places the init before it runs user code → later
//! `freeze`/`thaw`/`pids`/`update`/`stats` → `destroy` at delete.

use std::os::fd::RawFd;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::Result;

/// What `state.json` keeps so later commands find the same cgroups.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Manager {
    /// Container id (used to build the default path).
    pub id: String,
}

impl Manager {
    /// Work out the cgroup paths for `cgroups_path` (`linux.cgroupsPath`,
    /// empty = default from the id); no filesystem changes.
    pub fn new(id: &str, _cgroups_path: Option<&str>, _systemd: bool) -> Result<Manager> {
        Ok(Manager { id: id.to_string() })
    }

    /// Create the cgroups and apply `resources`. Nothing is left behind on error.
    pub fn create(&self, _resources: Option<&LinuxResources>) -> Result<()> {
        Ok(())
    }

    /// v2: an O_PATH|O_DIRECTORY fd of the leaf cgroup for CLONE_INTO_CGROUP.
    pub fn clone_into_fd(&self) -> Option<RawFd> {
        None
    }

    /// v1 (or v2 without CLONE_INTO_CGROUP): move `pid` into every hierarchy.
    pub fn add_pid(&self, _pid: i32) -> Result<()> {
        Ok(())
    }

    /// Every pid in the container's cgroup.
    pub fn pids(&self) -> Result<Vec<i32>> {
        Ok(Vec::new())
    }

    /// Remove the cgroups (the processes must already be gone).
    pub fn destroy(&self) -> Result<()> {
        Ok(())
    }
}

impl Manager {
    /// The container is frozen (`paused`).
    pub fn is_frozen(&self) -> bool {
        false
    }

    /// Resume a frozen container.
    pub fn thaw(&self) -> Result<()> {
        Ok(())
    }
}
