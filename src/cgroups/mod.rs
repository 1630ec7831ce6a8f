//! Cgroups v1 and v2 (issue 5). The runtime core calls only this interface.
//!
//! Lifecycle as the runtime uses it:
//! `Manager::new` (pure: computes paths) → `create` (mkdir + limits, before
//! clone3) → on v2 `open_leaf` gives the fd for clone3's `CLONE_INTO_CGROUP`,
//! on v1 `add_pid` places the init before it runs user code → later
//! `freeze`/`thaw`/`pids`/`update`/`stats`/`kill_all` → `destroy` at delete.
//!
//! Files: `detect` (host layout), `v1`/`v2` (the two drivers), `devices*`
//! (device rules, v1 files and the v2 eBPF filter), `resources` (v1↔v2
//! conversions), `stats` (runc's `events` JSON), `oom` (OOM notification),
//! `systemd` (the `slice:prefix:name` path form and the systemd driver:
//! a transient scope over D-Bus, `systemd_bus`). Only the kernel's side:
//! the `update`, `events` and `ps` commands live in `crate::update`,
//! `crate::events` and `crate::ps`.
//!
//! Commands map onto it as: `pause`/`resume` = `freeze`/`thaw` (state
//! `paused` while `freezer_state` is `Frozen`); `update` = `update` with
//! `crate::update`'s flags or JSON; `ps` = `pids` + `crate::ps`; `kill
//! --all` = `kill_all`; `events` = `crate::events`; `delete` of what a
//! container left behind = `destroy_force`.

pub mod detect;
pub mod devices;
pub mod devices_bpf;
pub mod devices_v1;
pub mod exec_cgroup;
pub mod fsio;
pub mod oom;
pub mod resources;
pub mod stats;
pub mod systemd;
pub mod systemd_bus;
pub mod v1;
pub mod v2;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use detect::Mode;
pub use stats::Stats;

use crate::{bail, Result};

/// What `state.json` keeps so later commands find the same cgroups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    /// Container id (used to build the default path).
    pub id: String,
    /// Host layout when the container was created.
    pub mode: Option<Mode>,
    /// The container's cgroup path relative to each hierarchy's root, as
    /// resolved (e.g. `/process_api/…/ctr` for a relative `ctr`). On v1 the
    /// per-hierarchy values can differ; see `v1_dirs`.
    pub path: String,
    /// v1 (legacy or hybrid): hierarchy (`memory`, `name=systemd`, …) →
    /// the container's directory in it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub v1_dirs: BTreeMap<String, PathBuf>,
    /// The container's directory in the cgroup2 tree (unified host), or
    /// the companion cgroup on a hybrid host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified_dir: Option<PathBuf>,
    /// Where the cgroup2 tree is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified_mount: Option<PathBuf>,
    /// `--systemd-cgroup`: the parsed `slice:prefix:name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::Unit>,
    /// Rootless without delegation: the container has no cgroups of its
    /// own (see `create_or_skip`); every operation that needs them says so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// Rootless: no device rules (see `create_or_skip`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_devices: bool,
    /// systemd: the resources between `create` (before clone3) and
    /// `add_pid` (the unit is started with the init's pid).
    #[serde(skip)]
    pending: systemd::Pending,
}

/// The error of an operation on a container whose cgroups were skipped.
fn no_cgroup(what: &str) -> crate::Error {
    crate::Error::msg(format!(
        "{what} needs the container's cgroup, and this rootless container has none \
         (the caller could not create it: delegate a cgroup v2 subtree to the user)"
    ))
}

/// Freezer state as `state`/`pause` report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FreezerState {
    Thawed,
    Freezing,
    Frozen,
}

impl Manager {
    /// Work out the cgroup paths for `cgroups_path` (`linux.cgroupsPath`,
    /// empty = default from the id); no filesystem changes.
    pub fn new(id: &str, cgroups_path: Option<&str>, systemd: bool) -> Result<Manager> {
        let layout = detect::layout()?;
        Self::with_layout(layout, id, cgroups_path, systemd)
    }

    /// `new` against a given layout (tests, and callers that detected it).
    pub fn with_layout(
        layout: &detect::Layout,
        id: &str,
        cgroups_path: Option<&str>,
        use_systemd: bool,
    ) -> Result<Manager> {
        if id.is_empty() || id.contains('/') || id == "." || id == ".." {
            bail!("container id {id:?} cannot name a cgroup");
        }
        let mut unit = None;
        let inner = if use_systemd {
            let path = cgroups_path.unwrap_or("");
            let u = if crate::sys::geteuid() == 0 {
                systemd::Unit::parse(path, id)?
            } else {
                if layout.mode != Mode::Unified {
                    bail!("--systemd-cgroup for a rootless user needs cgroup v2");
                }
                systemd::Unit::parse_user(path, id)?
            };
            let p = u.cgroup_path()?;
            unit = Some(u);
            p
        } else {
            match cgroups_path {
                None | Some("") => id.to_string(),
                Some(p) => p.to_string(),
            }
        };
        check_inner_path(&inner)?;
        let mut m = Manager {
            id: id.to_string(),
            mode: Some(layout.mode),
            path: inner.clone(),
            unified_mount: layout.unified_mount.clone(),
            systemd: unit,
            ..Default::default()
        };
        // Relative paths hang below our own cgroup. On cgroup2 runc uses our
        // cgroup's parent, because ours already holds processes and the
        // no-internal-processes rule would forbid enabling controllers in it.
        let resolve = |own: Option<&String>, v2: bool| -> String {
            if inner.starts_with('/') {
                return inner.clone();
            }
            let own = own.map(String::as_str).unwrap_or("/");
            let base = if v2 {
                Path::new(own).parent().unwrap_or(Path::new("/"))
            } else {
                Path::new(own)
            };
            base.join(&inner).to_string_lossy().into_owned()
        };
        match layout.mode {
            Mode::Unified => {
                let rel = resolve(layout.own.get(""), true);
                let mount = layout
                    .unified_mount
                    .as_ref()
                    .ok_or_else(|| crate::Error::msg("cgroup2 mount point not found"))?;
                m.unified_dir = Some(join_cg(mount, &rel));
                m.path = rel;
            }
            Mode::Legacy | Mode::Hybrid => {
                for (ctrl, mount) in &layout.v1_mounts {
                    let rel = resolve(layout.own.get(ctrl), false);
                    m.v1_dirs.insert(ctrl.clone(), join_cg(mount, &rel));
                }
                if let (Mode::Hybrid, Some(mount)) = (layout.mode, &layout.unified_mount) {
                    let rel = resolve(layout.own.get(""), false);
                    m.unified_dir = Some(join_cg(mount, &rel));
                }
                m.path = resolve(None, false);
            }
        }
        Ok(m)
    }

    pub fn mode(&self) -> Result<Mode> {
        self.mode
            .ok_or_else(|| crate::Error::msg("cgroup manager has no mode (not created by new)"))
    }

    fn is_v2(&self) -> bool {
        self.mode == Some(Mode::Unified)
    }

    /// Create the cgroups and apply `resources`. Nothing is left behind on error.
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<()> {
        let resources = resources.map(resources::normalize);
        if let Some(unit) = &self.systemd {
            if let Err(e) = systemd::probe(unit) {
                self.pending.refuse();
                return Err(e);
            }
            self.pending.wait(resources.unwrap_or_default());
            return Ok(());
        }
        if self.is_v2() {
            v2::create(self, resources.as_ref())
        } else {
            v1::create(self, resources.as_ref())
        }
    }

    /// `create`, except that with `rootless` a caller who may not create
    /// the cgroups (EACCES, EPERM, EROFS: not delegated) and whose config
    /// sets no limits runs the container without cgroups of its own, as
    /// runc's rootless mode does. True when skipped. Limits that cannot be
    /// applied are an error naming the fix.
    pub fn create_or_skip(
        &mut self,
        resources: Option<&LinuxResources>,
        rootless: bool,
    ) -> Result<bool> {
        // An unprivileged caller cannot load a device filter (bpf and v1's
        // devices.deny need privilege over the host), and needs none: it
        // cannot make device nodes, they are bind-mounted. runc skips the
        // rules alike.
        self.skip_devices = rootless && crate::sys::geteuid() != 0;
        let err = match self.create(resources) {
            Ok(()) => return Ok(false),
            Err(e) => e,
        };
        let denied = matches!(
            err.errno(),
            Some(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM | nix::errno::Errno::EROFS)
        );
        if !rootless || !denied {
            return Err(err);
        }
        if resources.is_some_and(sets_limits) {
            return Err(err.hint(
                "rootless: linux.resources needs a cgroup the user may write \
                 (a delegated cgroup v2 subtree); remove the limits or delegate one",
            ));
        }
        self.skipped = true;
        self.v1_dirs.clear();
        self.unified_dir = None;
        Ok(true)
    }

    /// Change the limits of a live container (`berth update`).
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        if self.skipped {
            return Err(no_cgroup("update"));
        }
        let resources = resources::normalize(resources);
        if let Some(unit) = &self.systemd {
            systemd::set(unit, &resources, self.is_v2())?;
        }
        if self.is_v2() {
            v2::apply(self, &resources, true)
        } else {
            v1::apply(self, &resources, true)
        }
    }

    /// v2: an `O_PATH|O_DIRECTORY` fd on the leaf cgroup, for clone3's
    /// `CLONE_INTO_CGROUP` (the init is born inside it). `None` on v1.
    pub fn open_leaf(&self) -> Result<Option<OwnedFd>> {
        if self.skipped || !self.is_v2() || self.pending.is_waiting() {
            return Ok(None);
        }
        v2::open_dir(self.unified()?).map(Some)
    }

    /// v1 (or v2 without CLONE_INTO_CGROUP): move `pid` into every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        if self.skipped {
            return Ok(());
        }
        if pid <= 0 {
            bail!("add_pid: invalid pid {pid}");
        }
        if let (Some(unit), Some(res)) = (&self.systemd, self.pending.take()) {
            return self.start_unit(unit, pid, &res);
        }
        if self.is_v2() {
            fsio::write(self.unified()?, "cgroup.procs", &pid.to_string())
        } else {
            v1::add_pid(self, pid)
        }
    }

    /// Every pid in the container's cgroup (and cgroups below it): `ps`.
    pub fn pids(&self) -> Result<Vec<i32>> {
        // The callers fall back to the init's pid namespace.
        if self.skipped {
            return Ok(Vec::new());
        }
        fsio::procs_recursive(self.procs_dir()?)
    }

    /// systemd: start the scope with `pid` in it, then what the cgroupfs
    /// drivers do on top (hierarchies systemd leaves alone on v1, every
    /// resource file). The unit is stopped again on error.
    fn start_unit(&self, unit: &systemd::Unit, pid: i32, res: &LinuxResources) -> Result<()> {
        systemd::start(unit, pid, res, self.is_v2())?;
        let r = if self.is_v2() {
            let dir = self.unified()?;
            if unit.unit_name().ends_with(".slice") {
                fsio::write(dir, "cgroup.procs", &pid.to_string())?;
            }
            // Controllers systemd does not delegate (hugetlb, rdma, misc).
            if let Some(root) = &self.unified_mount {
                if let Ok(wanted) = detect::v2_controllers(root) {
                    let _ = v2::enable_down_to(root, dir, &wanted);
                }
            }
            v2::apply(self, res, false)
        } else {
            v1::create(self, Some(res)).and_then(|()| v1::add_pid(self, pid))
        };
        if r.is_err() {
            let _ = systemd::stop(unit);
        }
        r
    }

    /// Remove the cgroups (the processes must already be gone).
    pub fn destroy(&self) -> Result<()> {
        if self.skipped {
            return Ok(());
        }
        if let Some(unit) = &self.systemd {
            if self.pending.nothing_started() {
                return Ok(());
            }
            systemd::stop(unit)?;
        }
        if self.is_v2() {
            v2::destroy(self)
        } else {
            v1::destroy(self)
        }
    }

    /// Kill everything inside, wait for it to be gone, then remove the
    /// cgroups (`delete` of a container that left processes behind).
    pub fn destroy_force(&self) -> Result<()> {
        if self.skipped {
            return Ok(());
        }
        let _ = self.thaw();
        self.kill_all(libc::SIGKILL)?;
        self.wait_empty(Duration::from_secs(10))?;
        self.destroy()
    }

    /// `pause`: stop every task, returning once the kernel says frozen.
    pub fn freeze(&self) -> Result<()> {
        if self.skipped {
            return Err(no_cgroup("pause"));
        }
        if self.is_v2() {
            v2::set_frozen(self.unified()?, true)
        } else {
            v1::set_frozen(self, true)
        }
    }

    /// `resume`.
    pub fn thaw(&self) -> Result<()> {
        if self.skipped {
            return Err(no_cgroup("resume"));
        }
        if self.is_v2() {
            v2::set_frozen(self.unified()?, false)
        } else {
            v1::set_frozen(self, false)
        }
    }

    pub fn freezer_state(&self) -> Result<FreezerState> {
        if self.skipped {
            return Ok(FreezerState::Thawed);
        }
        if self.is_v2() {
            v2::freezer_state(self.unified()?)
        } else {
            v1::freezer_state(self)
        }
    }

    /// `kill --all` and `delete --force`: send `signal` to every process.
    /// SIGKILL on v2 uses `cgroup.kill` when the kernel has it; otherwise
    /// the cgroup is frozen so nothing can fork past the signal, every pid
    /// is signalled, and it is thawed so the signal is delivered.
    pub fn kill_all(&self, signal: i32) -> Result<()> {
        if self.skipped {
            return Err(no_cgroup("kill --all"));
        }
        if self.is_v2() && signal == libc::SIGKILL {
            let dir = self.unified()?;
            if dir.join("cgroup.kill").exists() {
                return fsio::write(dir, "cgroup.kill", "1");
            }
        }
        let can_freeze = self.is_v2() || self.v1_dirs.contains_key("freezer");
        if can_freeze {
            self.freeze()?;
        }
        let mut result = Ok(());
        for pid in self.pids()? {
            if let Err(e) = crate::sys::kill(pid, signal) {
                if e.raw_os_error() != Some(libc::ESRCH) && result.is_ok() {
                    result = Err(fsio::io_error(e, format!("kill({pid}, {signal})")));
                }
            }
        }
        if can_freeze {
            self.thaw()?;
        }
        result
    }

    /// Wait until the cgroup has no processes left (after `kill_all`).
    pub fn wait_empty(&self, timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        loop {
            let left = self.pids()?;
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() > end {
                bail!(
                    "{} processes still in cgroup {} after {timeout:?}: {left:?}",
                    left.len(),
                    self.path
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Resource usage figures (`events --stats`).
    pub fn stats(&self) -> Result<Stats> {
        if self.skipped {
            return Err(no_cgroup("events"));
        }
        if self.is_v2() {
            stats::v2(self)
        } else {
            stats::v1(self)
        }
    }

    /// How many times the kernel's OOM killer has killed a process in the
    /// container (`memory.events` `oom_kill` / `memory.oom_control`
    /// `oom_kill`). `events` reports an `oom` event when it grows.
    pub fn oom_kill_count(&self) -> Result<u64> {
        if self.skipped {
            return Err(no_cgroup("events"));
        }
        if self.is_v2() {
            let dir = self.unified()?;
            Ok(fsio::keyed(&fsio::read_keyed(dir, "memory.events")?, "oom_kill").unwrap_or(0))
        } else {
            let dir = self.v1_dir("memory")?;
            Ok(fsio::keyed(&fsio::read_keyed(dir, "memory.oom_control")?, "oom_kill").unwrap_or(0))
        }
    }

    /// The container's directory in v1 hierarchy `ctrl`; a clear error when
    /// the host does not mount it.
    pub fn v1_dir(&self, ctrl: &str) -> Result<&Path> {
        match self.v1_dirs.get(ctrl) {
            Some(p) => Ok(p),
            None => bail!(
                "{ctrl} controller not supported on this host (no cgroup v1 hierarchy mounts it)"
            ),
        }
    }

    /// The directory of the freezer that `pause` uses (cgroup2's own on
    /// v2, the v1 freezer hierarchy's otherwise).
    pub fn freezer_dir(&self) -> Result<&Path> {
        if self.is_v2() {
            self.unified()
        } else {
            self.v1_dir("freezer")
        }
    }

    /// The container's cgroup2 directory.
    pub fn unified(&self) -> Result<&Path> {
        match &self.unified_dir {
            Some(p) => Ok(p),
            None => bail!("this host has no cgroup2 hierarchy"),
        }
    }

    /// The directory whose `cgroup.procs` lists the container's processes.
    fn procs_dir(&self) -> Result<&Path> {
        if self.is_v2() {
            return self.unified();
        }
        for c in [
            "pids",
            "memory",
            "freezer",
            "devices",
            "cpu",
            "name=systemd",
        ] {
            if let Some(d) = self.v1_dirs.get(c) {
                return Ok(d);
            }
        }
        match self.v1_dirs.values().next() {
            Some(d) => Ok(d),
            None => bail!("no cgroup hierarchy to list processes from"),
        }
    }
}

/// `resources` asks for something only a cgroup can enforce. Device rules
/// alone do not count: a rootless container cannot create device nodes
/// (they are bind-mounted), as runc reasons.
fn sets_limits(r: &LinuxResources) -> bool {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("devices");
        o.retain(|_, x| !x.is_null());
        return !o.is_empty();
    }
    false
}

/// `linux.cgroupsPath` must stay inside the hierarchy.
fn check_inner_path(p: &str) -> Result<()> {
    if p.split('/').any(|c| c == "..") {
        bail!("cgroupsPath {p:?} must not contain \"..\"");
    }
    if p.contains('\0') {
        bail!("cgroupsPath {p:?} contains a NUL byte");
    }
    Ok(())
}

/// `mount` + `/a/b` without letting `/` reset the join.
fn join_cg(mount: &Path, rel: &str) -> PathBuf {
    let mut p = mount.to_path_buf();
    for c in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        p.push(c);
    }
    p
}

impl Manager {
    /// The container is frozen (`paused`).
    pub fn is_frozen(&self) -> bool {
        matches!(self.freezer_state(), Ok(FreezerState::Frozen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hybrid() -> detect::Layout {
        detect::from_proc(
            "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
             35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
             40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
            "4:memory:/process_api/abc\n1:cpu:/\n1:name=systemd:/\n0::/\n",
        )
        .unwrap()
    }

    #[test]
    fn relative_paths_hang_below_own_cgroup_on_v1() {
        let m = Manager::with_layout(&hybrid(), "c1", None, false).unwrap();
        assert_eq!(
            m.v1_dirs["memory"],
            Path::new("/sys/fs/cgroup/memory/process_api/abc/c1")
        );
        assert_eq!(m.v1_dirs["cpu"], Path::new("/sys/fs/cgroup/cpu/c1"));
        assert_eq!(
            m.v1_dirs["name=systemd"],
            Path::new("/sys/fs/cgroup/systemd/c1")
        );
        assert_eq!(
            m.unified_dir.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified/c1"))
        );
    }

    #[test]
    fn absolute_paths_are_taken_from_the_root() {
        let m = Manager::with_layout(&hybrid(), "c1", Some("/berth/x"), false).unwrap();
        assert_eq!(
            m.v1_dirs["memory"],
            Path::new("/sys/fs/cgroup/memory/berth/x")
        );
        assert_eq!(m.path, "/berth/x");
    }

    #[test]
    fn v2_relative_paths_use_the_parent_of_own_cgroup() {
        let l = detect::from_proc(
            "25 20 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/user.slice/session-1.scope\n",
        )
        .unwrap();
        let m = Manager::with_layout(&l, "c1", Some("ctrs/c1"), false).unwrap();
        assert_eq!(
            m.unified_dir.as_deref(),
            Some(Path::new("/sys/fs/cgroup/user.slice/ctrs/c1"))
        );
    }

    #[test]
    fn dotdot_and_bad_ids_are_refused() {
        assert!(Manager::with_layout(&hybrid(), "c1", Some("/a/../b"), false).is_err());
        assert!(Manager::with_layout(&hybrid(), "a/b", None, false).is_err());
    }

    #[test]
    fn device_rules_alone_set_no_limits() {
        let r: LinuxResources =
            serde_json::from_str(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).unwrap();
        assert!(!sets_limits(&r));
        let r: LinuxResources = serde_json::from_str(r#"{"pids":{"limit":10}}"#).unwrap();
        assert!(sets_limits(&r));
    }

    #[test]
    fn manager_round_trips_through_json() {
        let m = Manager::with_layout(&hybrid(), "c1", None, false).unwrap();
        let s = serde_json::to_string(&m).unwrap();
        let back: Manager = serde_json::from_str(&s).unwrap();
        assert_eq!(m, back);
    }
}
