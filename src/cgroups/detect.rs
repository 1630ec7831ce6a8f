//! Which cgroup layout the host has, and where each hierarchy is mounted.
//!
//! Read once from `/proc/self/mountinfo` and `/proc/self/cgroup`:
//! - `Unified`: `/sys/fs/cgroup` is cgroup2 (every modern distribution);
//! - `Hybrid`: v1 controllers under `/sys/fs/cgroup/<name>` and a cgroup2 at
//!   `/sys/fs/cgroup/unified` (systemd's "hybrid" mode, this machine);
//! - `Legacy`: v1 only.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::{bail, Context, Result};

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Legacy,
    Hybrid,
    Unified,
}

/// The host's hierarchies as this process sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub mode: Mode,
    /// v1: controller (or `name=systemd`) → mount point. Co-mounted
    /// controllers (`cpu,cpuacct`) appear once per controller.
    pub v1_mounts: BTreeMap<String, PathBuf>,
    /// The cgroup2 mount (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
    pub unified_mount: Option<PathBuf>,
    /// `/proc/self/cgroup`: hierarchy key (controller, `name=systemd`, or
    /// `""` for cgroup2) → this process's cgroup in it.
    pub own: BTreeMap<String, String>,
}

static LAYOUT: OnceLock<std::result::Result<Layout, String>> = OnceLock::new();

/// The host layout, detected on first use.
pub fn layout() -> Result<&'static Layout> {
    LAYOUT
        .get_or_init(|| detect().map_err(|e| e.message().to_string()))
        .as_ref()
        .map_err(|e| crate::Error::msg(e.clone()))
}

pub fn detect() -> Result<Layout> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let own = fs::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    from_proc(&mountinfo, &own)
}

/// Build the layout from the text of `mountinfo` and `/proc/self/cgroup`.
pub fn from_proc(mountinfo: &str, self_cgroup: &str) -> Result<Layout> {
    let mut v1_mounts = BTreeMap::new();
    let mut unified_mount = None;
    for line in mountinfo.lines() {
        // `id parent maj:min root mountpoint opts [optional...] - fstype source superopts`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let rfields: Vec<&str> = right.split(' ').collect();
        if fields.len() < 5 || rfields.len() < 3 {
            continue;
        }
        let mount_point = PathBuf::from(unescape(fields[4]));
        match rfields[0] {
            // Prefer the canonical location if several exist.
            "cgroup2" if unified_mount.is_none() || mount_point == Path::new(CGROUP_ROOT) => {
                unified_mount = Some(mount_point);
            }
            "cgroup" => {
                for opt in rfields[2].split(',') {
                    if is_v1_controller(opt) || opt.starts_with("name=") {
                        v1_mounts
                            .entry(opt.to_string())
                            .or_insert_with(|| mount_point.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let mut own = BTreeMap::new();
    for line in self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            own.insert(String::new(), path.to_string());
        } else {
            for c in ctrls.split(',') {
                own.insert(c.to_string(), path.to_string());
            }
        }
    }
    let mode = match (&unified_mount, v1_mounts.is_empty()) {
        (Some(m), true) if m == Path::new(CGROUP_ROOT) => Mode::Unified,
        (Some(_), true) => Mode::Unified,
        (Some(_), false) => Mode::Hybrid,
        (None, false) => Mode::Legacy,
        (None, true) => bail!("no cgroup filesystem is mounted (checked /proc/self/mountinfo)"),
    };
    Ok(Layout {
        mode,
        v1_mounts,
        unified_mount,
        own,
    })
}

/// Controllers a v1 hierarchy can carry.
pub const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

fn is_v1_controller(s: &str) -> bool {
    V1_CONTROLLERS.contains(&s)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Controllers the cgroup2 tree offers at `dir` (`cgroup.controllers`).
pub fn v2_controllers(dir: &Path) -> Result<Vec<String>> {
    let f = dir.join("cgroup.controllers");
    let s = fs::read_to_string(&f).with_context(|| format!("read {}", f.display()))?;
    Ok(s.split_whitespace().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_host_is_detected_with_comounted_controllers() {
        let l = from_proc(
            HYBRID_MOUNTINFO,
            "4:memory:/a/b\n2:cpu,cpuacct:/\n1:name=systemd:/x\n0::/\n",
        )
        .unwrap();
        assert_eq!(l.mode, Mode::Hybrid);
        assert_eq!(l.v1_mounts["cpu"], Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(
            l.v1_mounts["cpuacct"],
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(
            l.v1_mounts["name=systemd"],
            Path::new("/sys/fs/cgroup/systemd")
        );
        assert_eq!(
            l.unified_mount.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        assert_eq!(l.own["memory"], "/a/b");
        assert_eq!(l.own[""], "/");
        assert_eq!(l.own["name=systemd"], "/x");
    }

    #[test]
    fn unified_host_is_detected() {
        let l = from_proc(
            "25 20 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
            "0::/user.slice\n",
        )
        .unwrap();
        assert_eq!(l.mode, Mode::Unified);
        assert!(l.v1_mounts.is_empty());
        assert_eq!(l.own[""], "/user.slice");
    }

    #[test]
    fn no_cgroup_mount_is_an_error() {
        let e = from_proc("1 0 0:1 / / rw - ext4 /dev/sda rw\n", "").unwrap_err();
        assert!(e.message().contains("no cgroup filesystem"), "{e}");
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
