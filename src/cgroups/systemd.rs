//! `--systemd-cgroup`: `linux.cgroupsPath` of the form `slice:prefix:name`.
//!
//! The driver proper (a transient scope created over D-Bus) is a later
//! issue; here the path is parsed and mapped to the cgroup systemd would
//! create, and a host without systemd as PID 1 is refused clearly.

use serde::{Deserialize, Serialize};

use crate::{bail, Result};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// Parent slice, e.g. `system.slice`.
    pub slice: String,
    /// Unit name prefix, e.g. `berth` or `cri-containerd`.
    pub prefix: String,
    /// Scope name, usually the container id.
    pub name: String,
}

impl Unit {
    /// Parse `slice:prefix:name`; empty means `system.slice:berth:<id>`.
    pub fn parse(s: &str, id: &str) -> Result<Unit> {
        if s.is_empty() {
            return Ok(Unit {
                slice: "system.slice".into(),
                prefix: "berth".into(),
                name: id.into(),
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
        })
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
        let mut path = expand_slice(&self.slice)?;
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

/// The systemd driver talks to systemd; without it as PID 1 there is no one
/// to talk to.
pub fn require_systemd() -> Result<()> {
    let comm = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    let booted = std::path::Path::new("/run/systemd/system").is_dir();
    if comm.trim() != "systemd" || !booted {
        bail!(
            "--systemd-cgroup: systemd is not running as PID 1 on this host (PID 1 is {:?}); \
             use the cgroupfs driver (omit --systemd-cgroup)",
            comm.trim()
        );
    }
    Ok(())
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
    fn malformed_systemd_paths_are_refused() {
        assert!(Unit::parse("/a/b", "x").is_err());
        assert!(Unit::parse("a:b", "x").is_err());
        assert!(Unit::parse("notaslice:p:n", "x").is_err());
        assert!(Unit::parse("system.slice:p:", "x").is_err());
        assert!(expand_slice("a--b.slice").is_err());
        assert_eq!(expand_slice("-.slice").unwrap(), "");
    }
}
