//! `--systemd-cgroup`: `linux.cgroupsPath` of the form `slice:prefix:name`
//! (runc's; empty means `system.slice:berth:ID`), and the driver: systemd
//! makes the cgroup as a transient scope `prefix-name.scope` in the slice,
//! started over D-Bus (`systemd_bus`) with the init's pid once clone3 has
//! made it, with `Delegate=yes` and the resource properties systemd knows;
//! the cgroup files (everything else, and the same limits again) are then
//! written by the v1/v2 drivers as for cgroupfs. `update` sets properties
//! and files, `delete` stops the unit (and resets it if it failed).
//!
//! A rootless caller (euid != 0) gets its own user manager (`user.slice` by
//! default, below the manager's `ControlGroup`); cgroup v2 only there.

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use super::devices::{access_str, effective_rules, DevType};
use super::resources::shares_to_weight;
use super::systemd_bus::{value, Bus, Property};
use crate::{bail, Result};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// Parent slice, e.g. `system.slice`.
    pub slice: String,
    /// Unit name prefix, e.g. `berth` or `cri-containerd`.
    pub prefix: String,
    /// Scope name, usually the container id.
    pub name: String,
    /// A rootless user's manager instead of the system's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user: bool,
    /// The manager's own cgroup (a user manager's `ControlGroup`), under
    /// which its slices live; empty for the system manager.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub base: String,
}

impl Unit {
    /// Parse `slice:prefix:name`; empty means `system.slice:berth:<id>`.
    pub fn parse(s: &str, id: &str) -> Result<Unit> {
        if s.is_empty() {
            return Ok(Unit {
                slice: "system.slice".into(),
                prefix: "berth".into(),
                name: id.into(),
                user: false,
                base: String::new(),
            });
        }
        let parts: Vec<&str> = s.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            bail!("--systemd-cgroup: cgroupsPath {s:?} is not of the form slice:prefix:name");
        };
        if !slice.is_empty() && !slice.ends_with(".slice") {
            bail!("--systemd-cgroup: {slice:?} is not a slice name (must end in .slice)");
        }
        for (what, v) in [("slice", slice), ("prefix", prefix), ("name", name)] {
            if v.contains('/') {
                bail!("--systemd-cgroup: {what} {v:?} must not contain '/'");
            }
        }
        if name.is_empty() {
            bail!("--systemd-cgroup: cgroupsPath {s:?} has an empty name");
        }
        Ok(Unit {
            slice: if slice.is_empty() {
                "system.slice".into()
            } else {
                slice.into()
            },
            prefix: prefix.into(),
            name: name.into(),
            user: false,
            base: String::new(),
        })
    }

    /// `parse` for the calling user's manager: default slice `user.slice`,
    /// paths below the manager's cgroup (asked over D-Bus).
    pub fn parse_user(s: &str, id: &str) -> Result<Unit> {
        let mut u = Unit::parse(s, id)?;
        if s.is_empty() || s.starts_with(':') {
            u.slice = "user.slice".into();
        }
        u.user = true;
        let mut bus = Bus::connect(true)?;
        u.base = bus.manager_property("ControlGroup")?;
        Ok(u)
    }

    /// The unit systemd would create: `<prefix>-<name>.scope`, or the name
    /// itself when it is a slice.
    pub fn unit_name(&self) -> String {
        if self.name.ends_with(".slice") {
            self.name.clone()
        } else if self.prefix.is_empty() {
            format!("{}.scope", self.name)
        } else {
            format!("{}-{}.scope", self.prefix, self.name)
        }
    }

    /// Where that unit lives in the hierarchy: slices nest by their dashes
    /// (`a-b.slice` is `/a.slice/a-b.slice`).
    pub fn cgroup_path(&self) -> Result<String> {
        let mut path = self.base.trim_end_matches('/').to_string();
        path.push_str(&expand_slice(&self.slice)?);
        path.push('/');
        path.push_str(&self.unit_name());
        Ok(path)
    }
}

/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` → ``.
pub fn expand_slice(slice: &str) -> Result<String> {
    let Some(stem) = slice.strip_suffix(".slice") else {
        bail!("{slice:?} is not a slice name");
    };
    if stem == "-" {
        return Ok(String::new());
    }
    if stem.is_empty() || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        bail!("{slice:?} is not a valid slice name");
    }
    let mut out = String::new();
    let mut acc = String::new();
    for part in stem.split('-') {
        if !acc.is_empty() {
            acc.push('-');
        }
        acc.push_str(part);
        out.push('/');
        out.push_str(&acc);
        out.push_str(".slice");
    }
    Ok(out)
}

/// Where a systemd container's unit stands in this process: the resources
/// it is to start with are held by the `Manager` from `create` (before
/// clone3) to `add_pid` (after it). A mutex, not a cell: managers cross
/// `catch_unwind` in tests.
#[derive(Debug, Default)]
pub struct Pending(std::sync::Mutex<Stage>);

#[derive(Clone, Debug, Default, PartialEq)]
enum Stage {
    /// Started, or loaded from state.json (the unit is there to stop).
    #[default]
    Started,
    /// `create` done, the unit not started yet.
    Waiting(Box<LinuxResources>),
    /// `create` refused (no systemd, the name taken): nothing to undo.
    Refused,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Stage> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn wait(&self, res: LinuxResources) {
        *self.lock() = Stage::Waiting(Box::new(res));
    }
    pub fn refuse(&self) {
        *self.lock() = Stage::Refused;
    }
    /// The resources to start the unit with, once.
    pub fn take(&self) -> Option<LinuxResources> {
        let mut g = self.lock();
        match std::mem::take(&mut *g) {
            Stage::Waiting(r) => Some(*r),
            other => {
                *g = other;
                None
            }
        }
    }
    pub fn is_waiting(&self) -> bool {
        matches!(*self.lock(), Stage::Waiting(_))
    }
    /// No unit was started by this process and none is recorded: `destroy`
    /// must leave systemd (and another container's unit) alone.
    pub fn nothing_started(&self) -> bool {
        !matches!(*self.lock(), Stage::Started)
    }
}

impl Clone for Pending {
    fn clone(&self) -> Self {
        Pending(std::sync::Mutex::new(self.lock().clone()))
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other) || *self.lock() == *other.lock()
    }
}

impl Eq for Pending {}

/// `features`: the driver works when systemd answers (the system manager,
/// or with `user` the caller's own).
pub fn works(user: bool) -> bool {
    Bus::connect(user).is_ok()
}

/// Before clone3: is there a systemd to talk to? (The connection is
/// closed again before any setns.)
pub fn probe(unit: &Unit) -> Result<()> {
    let mut bus = Bus::connect(unit.user)?;
    if bus.has_unit(&unit.unit_name())? {
        // A leftover failed scope of that name is forgotten; a live one is
        // another container's.
        bus.reset_failed_unit(&unit.unit_name())?;
        if bus.has_unit(&unit.unit_name())? {
            bail!(
                "systemd unit {} already exists (another container with this cgroupsPath?)",
                unit.unit_name()
            );
        }
    }
    Ok(())
}

/// After clone3: the transient unit with the init in it; returns once
/// systemd's job is done.
pub fn start(unit: &Unit, pid: i32, res: &LinuxResources, v2: bool) -> Result<()> {
    let name = unit.unit_name();
    let mut props: Vec<Property> = vec![
        (
            "Description".into(),
            value::string(&format!("berth container {}", unit.name)),
        ),
        ("DefaultDependencies".into(), value::boolean(false)),
    ];
    if !name.ends_with(".slice") {
        props.push(("Slice".into(), value::string(&unit.slice)));
        props.push(("PIDs".into(), value::u32_array(&[pid as u32])));
        props.push(("Delegate".into(), value::boolean(true)));
    }
    props.extend(resource_properties(res, v2)?);
    let mut bus = Bus::connect(unit.user)?;
    bus.start_transient_unit(&name, props)
}

/// `update`: the properties systemd knows (runtime, not persisted).
pub fn set(unit: &Unit, res: &LinuxResources, v2: bool) -> Result<()> {
    let props = resource_properties(res, v2)?;
    let mut bus = Bus::connect(unit.user)?;
    bus.set_unit_properties(&unit.unit_name(), props)
}

/// `delete`: stop the unit, forget it if it failed.
pub fn stop(unit: &Unit) -> Result<()> {
    let name = unit.unit_name();
    let mut bus = Bus::connect(unit.user)?;
    bus.stop_unit(&name)?;
    bus.reset_failed_unit(&name)
}

/// The unit properties for `res` that systemd understands, in its units:
/// memory, CPU weight/shares and quota, tasks, CPU and memory-node sets
/// (v2) and the device list. Everything (these included) is written to the
/// cgroup files afterwards as well.
pub fn resource_properties(res: &LinuxResources, v2: bool) -> Result<Vec<Property>> {
    let mut out: Vec<Property> = Vec::new();
    let max = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    if let Some(m) = res.memory() {
        if let Some(l) = m.limit() {
            let key = if v2 { "MemoryMax" } else { "MemoryLimit" };
            out.push((key.into(), value::u64(max(l))));
        }
        if v2 {
            if let Some(r) = m.reservation() {
                out.push(("MemoryLow".into(), value::u64(max(r))));
            }
            if let Some(sw) = super::resources::swap_to_v2(m.swap(), m.limit())? {
                out.push(("MemorySwapMax".into(), value::u64(max(sw))));
            }
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(sh) = c.shares() {
            if v2 {
                out.push(("CPUWeight".into(), value::u64(shares_to_weight(sh))));
            } else {
                out.push(("CPUShares".into(), value::u64(sh)));
            }
        }
        if c.quota().is_some() || c.period().is_some() {
            let period = c.period().unwrap_or(100_000);
            out.push(("CPUQuotaPeriodUSec".into(), value::u64(period)));
            out.push((
                "CPUQuotaPerSecUSec".into(),
                value::u64(quota_per_sec(c.quota(), period)),
            ));
        }
        if v2 {
            if let Some(cpus) = c.cpus() {
                out.push(("AllowedCPUs".into(), value::bytes(&bitmask(cpus)?)));
            }
            if let Some(mems) = c.mems() {
                out.push(("AllowedMemoryNodes".into(), value::bytes(&bitmask(mems)?)));
            }
        }
    }
    if let Some(p) = res.pids() {
        let l = p.limit();
        out.push((
            "TasksMax".into(),
            value::u64(if l > 0 { l as u64 } else { u64::MAX }),
        ));
    }
    let (policy, allow) = device_properties(res)?;
    out.push(("DevicePolicy".into(), value::string(&policy)));
    out.push(("DeviceAllow".into(), value::string_pairs(&allow)));
    Ok(out)
}

/// systemd takes the quota per second, in whole percents (10 ms steps, so
/// rounded up as runc does); no quota is infinity.
pub fn quota_per_sec(quota: Option<i64>, period: u64) -> u64 {
    match quota {
        Some(q) if q > 0 && period > 0 => {
            let per_sec = (q as u64).saturating_mul(1_000_000) / period;
            per_sec.div_ceil(10_000) * 10_000
        }
        _ => u64::MAX,
    }
}

/// A cpuset list (`0-3,5`) as systemd's bitmask bytes (bit i of byte i/8).
pub fn bitmask(list: &str) -> Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) else {
            bail!("cpuset list {list:?}: {part:?} is not a number or range");
        };
        if a > b || b >= 8192 {
            bail!("cpuset list {list:?}: bad range {part:?}");
        }
        for i in a..=b {
            if out.len() <= i / 8 {
                out.resize(i / 8 + 1, 0);
            }
            out[i / 8] |= 1 << (i % 8);
        }
    }
    Ok(out)
}

/// `DevicePolicy` and `DeviceAllow` for the container's device rules (the
/// same list the cgroupfs drivers enforce): deny-all resets to `strict`;
/// systemd cannot express denials of single devices, so those are left to
/// the device filter berth installs itself.
fn device_properties(res: &LinuxResources) -> Result<(String, Vec<(String, String)>)> {
    let mut policy = "strict".to_string();
    let mut allow: Vec<(String, String)> = Vec::new();
    for r in effective_rules(res.devices().as_deref())? {
        if r.typ == DevType::All && r.major.is_none() && r.minor.is_none() {
            allow.clear();
            policy = if r.allow { "auto" } else { "strict" }.into();
            continue;
        }
        if !r.allow || policy == "auto" {
            continue;
        }
        let kind = match r.typ {
            DevType::Char => "char",
            DevType::Block => "block",
            DevType::All => continue,
        };
        let path = match (r.major, r.minor) {
            (None, _) => format!("{kind}-*"),
            (Some(ma), Some(mi)) => format!("/dev/{kind}/{ma}:{mi}"),
            (Some(ma), None) => match proc_devices_name(kind, ma) {
                Some(n) => format!("{kind}-{n}"),
                None => continue,
            },
        };
        allow.push((path, access_str(r.access)));
    }
    Ok((policy, allow))
}

/// The driver name of a major number in /proc/devices (systemd's
/// `char-NAME` device classes).
fn proc_devices_name(kind: &str, major: u32) -> Option<String> {
    let text = std::fs::read_to_string("/proc/devices").ok()?;
    let section = if kind == "char" {
        "Character devices:"
    } else {
        "Block devices:"
    };
    let mut inside = false;
    for line in text.lines() {
        if line.ends_with("devices:") {
            inside = line == section;
            continue;
        }
        if !inside {
            continue;
        }
        let mut f = line.split_whitespace();
        if let (Some(m), Some(n)) = (f.next(), f.next()) {
            if m.parse() == Ok(major) {
                return Some(n.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_prefix_name_is_parsed() {
        let u = Unit::parse("kubepods-besteffort.slice:cri-containerd:abc", "x").unwrap();
        assert_eq!(u.unit_name(), "cri-containerd-abc.scope");
        assert_eq!(
            u.cgroup_path().unwrap(),
            "/kubepods.slice/kubepods-besteffort.slice/cri-containerd-abc.scope"
        );
        let d = Unit::parse("", "c1").unwrap();
        assert_eq!(d.cgroup_path().unwrap(), "/system.slice/berth-c1.scope");
    }

    #[test]
    fn resources_become_systemd_properties() {
        assert_eq!(quota_per_sec(Some(50_000), 100_000), 500_000);
        assert_eq!(quota_per_sec(Some(12_345), 100_000), 130_000);
        assert_eq!(quota_per_sec(None, 100_000), u64::MAX);
        assert_eq!(bitmask("0-2,9").unwrap(), vec![0b111, 0b10]);
        assert!(bitmask("3-1").is_err());
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":1048576},"cpu":{"shares":1024,"quota":20000,"period":100000},
                "pids":{"limit":10},"devices":[{"allow":false,"access":"rwm"}]}"#,
        )
        .unwrap();
        let names: Vec<String> = resource_properties(&r, true)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for n in [
            "MemoryMax",
            "CPUWeight",
            "CPUQuotaPerSecUSec",
            "TasksMax",
            "DevicePolicy",
            "DeviceAllow",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        let v1: Vec<String> = resource_properties(&r, false)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(v1.iter().any(|x| x == "MemoryLimit") && v1.iter().any(|x| x == "CPUShares"));
        let (policy, allow) = device_properties(&r).unwrap();
        assert_eq!(policy, "strict");
        assert!(allow.contains(&("/dev/char/1:3".to_string(), "rwm".to_string())));
        assert!(allow.contains(&("char-*".to_string(), "m".to_string())));
    }

    #[test]
    fn malformed_systemd_paths_are_refused() {
        assert!(Unit::parse("/a/b", "x").is_err());
        assert!(Unit::parse("a:b", "x").is_err());
        assert!(Unit::parse("notaslice:p:n", "x").is_err());
        assert!(Unit::parse("system.slice:p:", "x").is_err());
        assert!(expand_slice("a--b.slice").is_err());
        assert_eq!(expand_slice("-.slice").unwrap(), "");
    }
}
