//! cgroup v1 (and the v1 side of a hybrid host).
//!
//! Each controller has its own hierarchy; the container gets a directory of
//! the same relative path in every one (including `name=systemd`) and, on a
//! hybrid host, in the cgroup2 tree too. Controllers the host binds to that
//! cgroup2 tree instead (hugetlb here) are driven through it.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::devices::effective_rules;
use super::fsio::{self, write};
use super::resources::{check_page_size, limit_str_v1, pids_max};
use super::{detect, devices_v1, v2, FreezerState, Manager};
use crate::{bail, Error, Result};

pub fn create(m: &Manager, res: Option<&LinuxResources>) -> Result<()> {
    let mut created: Vec<PathBuf> = Vec::new();
    // Without `linux.resources` the device rules still start from
    // deny-all plus the default list (as on v2, and as runc does).
    let r = create_dirs(m, &mut created).and_then(|()| match res {
        Some(r) => apply(m, r, false),
        None => apply(m, &LinuxResources::default(), false),
    });
    if let Err(e) = r {
        fsio::remove_dirs(&created);
        return Err(e);
    }
    Ok(())
}

fn create_dirs(m: &Manager, created: &mut Vec<PathBuf>) -> Result<()> {
    // Co-mounted controllers share a directory: create it once.
    let mut seen: Vec<&Path> = Vec::new();
    for (ctrl, dir) in &m.v1_dirs {
        if seen.contains(&dir.as_path()) {
            continue;
        }
        seen.push(dir);
        let new = fsio::mkdir_all(dir)?;
        let first_new = new.first().cloned();
        created.extend(new);
        // A new cpuset cgroup starts with empty cpus/mems and refuses
        // tasks: copy them down from the parent.
        if ctrl == "cpuset" {
            if let Some(first) = first_new {
                init_cpuset(&first, dir)?;
            }
        }
    }
    if let Some(u) = &m.unified_dir {
        created.extend(fsio::mkdir_all(u)?);
    }
    Ok(())
}

fn init_cpuset(first_new: &Path, leaf: &Path) -> Result<()> {
    let mut chain: Vec<&Path> = leaf
        .ancestors()
        .take_while(|p| p.starts_with(first_new))
        .collect();
    chain.reverse();
    for d in chain {
        let parent = d
            .parent()
            .ok_or_else(|| Error::msg(format!("{} has no parent", d.display())))?;
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if fsio::read_trim(d, f)?.is_empty() {
                write(d, f, &fsio::read_trim(parent, f)?)?;
            }
        }
    }
    Ok(())
}

pub fn add_pid(m: &Manager, pid: i32) -> Result<()> {
    let p = pid.to_string();
    let mut seen: Vec<&Path> = Vec::new();
    for dir in m.v1_dirs.values() {
        if seen.contains(&dir.as_path()) {
            continue;
        }
        seen.push(dir);
        write(dir, "cgroup.procs", &p)?;
    }
    if let Some(u) = &m.unified_dir {
        write(u, "cgroup.procs", &p)?;
    }
    Ok(())
}

pub fn destroy(m: &Manager) -> Result<()> {
    let mut first_err = None;
    let mut dirs: Vec<&PathBuf> = m.v1_dirs.values().collect();
    dirs.extend(m.unified_dir.iter());
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        // Sub-cgroups the container made (nested runtimes) go first.
        for sub in fsio::subdirs(d) {
            if let Err(e) = fsio::rmdir(&sub) {
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = fsio::rmdir(d) {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub fn set_frozen(m: &Manager, frozen: bool) -> Result<()> {
    let dir = m.v1_dir("freezer")?;
    let want = if frozen { "FROZEN" } else { "THAWED" };
    // Writing FROZEN starts freezing; the state reads FREEZING until every
    // task has stopped. Re-writing nudges tasks that were mid-fork.
    for i in 0..2000 {
        if i % 50 == 0 {
            write(dir, "freezer.state", want)?;
        }
        if fsio::read_trim(dir, "freezer.state")? == want {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    if frozen {
        let _ = write(dir, "freezer.state", "THAWED");
    }
    bail!(
        "{}: did not reach {want} within 2s",
        dir.join("freezer.state").display()
    )
}

pub fn freezer_state(m: &Manager) -> Result<FreezerState> {
    let dir = m.v1_dir("freezer")?;
    Ok(match fsio::read_trim(dir, "freezer.state")?.as_str() {
        "FROZEN" => FreezerState::Frozen,
        "FREEZING" => FreezerState::Freezing,
        _ => FreezerState::Thawed,
    })
}

/// Apply `res`; `update` is true for a live container (`berth update`).
pub fn apply(m: &Manager, res: &LinuxResources, update: bool) -> Result<()> {
    if m.skip_devices {
        // Rootless: see Manager::create_or_skip.
    } else if let Some(devs) = res.devices() {
        // Only an explicit rule list changes devices on update.
        let dir = m.v1_dir("devices")?;
        devices_v1::apply(dir, &effective_rules(Some(devs))?)?;
    } else if !update {
        let dir = m.v1_dir("devices")?;
        devices_v1::apply(dir, &effective_rules(None)?)?;
    }
    if let Some(mem) = res.memory() {
        memory(m, mem, update)?;
    }
    if let Some(cpu) = res.cpu() {
        cpu_(m, cpu)?;
    }
    if let Some(p) = res.pids() {
        write(m.v1_dir("pids")?, "pids.max", &pids_max(p.limit()))?;
    }
    if let Some(b) = res.block_io() {
        blkio(m, b)?;
    }
    if let Some(h) = res.hugepage_limits() {
        hugetlb(m, h)?;
    }
    if let Some(n) = res.network() {
        if let Some(id) = n.class_id() {
            write(m.v1_dir("net_cls")?, "net_cls.classid", &id.to_string())?;
        }
        if let Some(prios) = n.priorities() {
            let dir = m.v1_dir("net_prio")?;
            for p in prios {
                write(
                    dir,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
    }
    if let Some(rdma) = res.rdma() {
        if !rdma.is_empty() {
            if let Some(dir) = m.v1_dirs.get("rdma") {
                v2::rdma(dir, rdma)?;
            } else if let Some(dir) = hybrid_dir_with(m, "rdma")? {
                v2::rdma(&dir, rdma)?;
            } else {
                bail!("rdma controller not supported on this host (not mounted, not in cgroup2)");
            }
        }
    }
    if let Some(u) = res.unified() {
        if !u.is_empty() {
            let Some(dir) = m.unified_dir.as_deref() else {
                bail!(
                    "unified: the host has no cgroup2 hierarchy for {:?}",
                    u.keys().collect::<Vec<_>>()
                );
            };
            for ctrl in u.keys().filter_map(|k| k.split_once('.').map(|(c, _)| c)) {
                if ctrl != "cgroup" {
                    enable_hybrid(m, ctrl)?;
                }
            }
            v2::unified(dir, u)?;
        }
    }
    Ok(())
}

fn memory(m: &Manager, mem: &oci_spec::runtime::LinuxMemory, update: bool) -> Result<()> {
    let dir = m.v1_dir("memory")?;
    if let (true, Some(true), Some(limit)) = (update, mem.check_before_update(), mem.limit()) {
        let usage = fsio::read_u64(dir, "memory.usage_in_bytes")?.unwrap_or(0);
        if limit >= 0 && (limit as u64) < usage {
            bail!(
                "memory.limit {limit} is below current usage {usage} ({}); checkBeforeUpdate refuses it",
                dir.join("memory.usage_in_bytes").display()
            );
        }
    }
    match (mem.limit(), mem.swap()) {
        (Some(l), Some(s)) => {
            // memsw must stay >= limit at every step: raise memsw first
            // when growing, lower the limit first when shrinking.
            let cur = fsio::read_u64(dir, "memory.limit_in_bytes")?.unwrap_or(u64::MAX);
            let growing = l < 0 || (l as u64) > cur;
            if growing {
                write(dir, "memory.memsw.limit_in_bytes", &limit_str_v1(s))?;
                write(dir, "memory.limit_in_bytes", &limit_str_v1(l))?;
            } else {
                write(dir, "memory.limit_in_bytes", &limit_str_v1(l))?;
                write(dir, "memory.memsw.limit_in_bytes", &limit_str_v1(s))?;
            }
        }
        (Some(l), None) => {
            if let Err(e) = write(dir, "memory.limit_in_bytes", &limit_str_v1(l)) {
                // Growing past memsw needs memsw raised alongside (runc
                // raises it to match for -1).
                if l == -1 && dir.join("memory.memsw.limit_in_bytes").exists() {
                    write(dir, "memory.memsw.limit_in_bytes", "-1")?;
                    write(dir, "memory.limit_in_bytes", "-1")?;
                } else {
                    return Err(e);
                }
            }
        }
        (None, Some(s)) => write(dir, "memory.memsw.limit_in_bytes", &limit_str_v1(s))?,
        (None, None) => {}
    }
    if let Some(r) = mem.reservation() {
        write(dir, "memory.soft_limit_in_bytes", &limit_str_v1(r))?;
    }
    if let Some(k) = mem.kernel() {
        write(dir, "memory.kmem.limit_in_bytes", &limit_str_v1(k))?;
        // Since Linux 5.16 the file is still there but writes are ignored:
        // as runc does, the setting is accepted and ignored then.
        let got = fsio::read_trim(dir, "memory.kmem.limit_in_bytes")?;
        if k >= 0 && got.parse::<i64>().ok() != Some(k) {
            crate::logging::warn(&format!(
                "linux.resources.memory.kernel ignored: this kernel no longer limits kernel memory ({} reads {got})",
                dir.join("memory.kmem.limit_in_bytes").display()
            ));
        }
    }
    if let Some(k) = mem.kernel_tcp() {
        write(dir, "memory.kmem.tcp.limit_in_bytes", &limit_str_v1(k))?;
    }
    if let Some(s) = mem.swappiness() {
        if s > 100 {
            bail!("memory.swappiness {s} is out of range 0..=100");
        }
        write(dir, "memory.swappiness", &s.to_string())?;
    }
    if let Some(d) = mem.disable_oom_killer() {
        write(dir, "memory.oom_control", if d { "1" } else { "0" })?;
    }
    if let Some(h) = mem.use_hierarchy() {
        write(dir, "memory.use_hierarchy", if h { "1" } else { "0" })?;
    }
    Ok(())
}

fn cpu_(m: &Manager, cpu: &oci_spec::runtime::LinuxCpu) -> Result<()> {
    let wants_cpu = cpu.shares().is_some()
        || cpu.quota().is_some()
        || cpu.period().is_some()
        || cpu.burst().is_some()
        || cpu.realtime_period().is_some()
        || cpu.realtime_runtime().is_some()
        || cpu.idle().is_some();
    if wants_cpu {
        let dir = m.v1_dir("cpu")?;
        if let Some(s) = cpu.shares() {
            write(dir, "cpu.shares", &s.to_string())?;
            let got = fsio::read_trim(dir, "cpu.shares")?;
            if got != s.to_string() {
                bail!(
                    "cpu.shares {s} is out of range: {} reads back {got}",
                    dir.join("cpu.shares").display()
                );
            }
        }
        if let Some(p) = cpu.period() {
            write(dir, "cpu.cfs_period_us", &p.to_string())?;
        }
        if let Some(q) = cpu.quota() {
            write(dir, "cpu.cfs_quota_us", &q.max(-1).to_string())?;
        }
        if let Some(b) = cpu.burst() {
            write(dir, "cpu.cfs_burst_us", &b.to_string())?;
        }
        // The runtime before the period: the kernel checks runtime <= period.
        if let Some(p) = cpu.realtime_period() {
            if let Err(e) = write(dir, "cpu.rt_period_us", &p.to_string()) {
                if let Some(r) = cpu.realtime_runtime() {
                    write(dir, "cpu.rt_runtime_us", &r.to_string())?;
                    write(dir, "cpu.rt_period_us", &p.to_string())?;
                } else {
                    return Err(e);
                }
            }
        }
        if let Some(r) = cpu.realtime_runtime() {
            write(dir, "cpu.rt_runtime_us", &r.to_string())?;
        }
        if let Some(i) = cpu.idle() {
            write(dir, "cpu.idle", &i.to_string())?;
        }
    }
    if cpu.cpus().is_some() || cpu.mems().is_some() {
        let dir = m.v1_dir("cpuset")?;
        if let Some(c) = cpu.cpus() {
            write(dir, "cpuset.cpus", c)?;
        }
        if let Some(c) = cpu.mems() {
            write(dir, "cpuset.mems", c)?;
        }
    }
    Ok(())
}

fn blkio(m: &Manager, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
    let any = b.weight().is_some()
        || b.leaf_weight().is_some()
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || b.throttle_read_bps_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_write_bps_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_read_iops_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_write_iops_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty());
    if !any {
        return Ok(());
    }
    let dir = m.v1_dir("blkio")?;
    // Proportional weights exist only with the BFQ (or old CFQ) scheduler.
    let weight_file = |bfq: &str, plain: &str| -> Result<String> {
        for f in [bfq, plain] {
            if dir.join(f).exists() {
                return Ok(f.to_string());
            }
        }
        bail!(
            "blkio weight not supported on this host: neither {} nor {} exists (no BFQ/CFQ I/O scheduler)",
            dir.join(bfq).display(),
            dir.join(plain).display()
        )
    };
    if let Some(w) = b.weight() {
        write(
            dir,
            &weight_file("blkio.bfq.weight", "blkio.weight")?,
            &w.to_string(),
        )?;
    }
    if let Some(w) = b.leaf_weight() {
        write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    if let Some(devs) = b.weight_device() {
        for d in devs {
            if let Some(w) = d.weight() {
                let f = weight_file("blkio.bfq.weight_device", "blkio.weight_device")?;
                write(dir, &f, &format!("{}:{} {w}", d.major(), d.minor()))?;
            }
            if let Some(w) = d.leaf_weight() {
                write(
                    dir,
                    "blkio.leaf_weight_device",
                    &format!("{}:{} {w}", d.major(), d.minor()),
                )?;
            }
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, devs) in throttles {
        for d in devs.iter().flatten() {
            write(
                dir,
                file,
                &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            )?;
        }
    }
    Ok(())
}

fn hugetlb(m: &Manager, limits: &[oci_spec::runtime::LinuxHugepageLimit]) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    for l in limits {
        check_page_size(l.page_size())?;
    }
    if let Some(dir) = m.v1_dirs.get("hugetlb") {
        for l in limits {
            let f = format!("hugetlb.{}.limit_in_bytes", l.page_size());
            write(dir, &f, &limit_str_v1(l.limit()))?;
        }
        return Ok(());
    }
    // Hybrid host with hugetlb bound to the cgroup2 tree.
    let Some(dir) = hybrid_dir_with(m, "hugetlb")? else {
        bail!("linux.resources.hugepageLimits: cannot set hugetlb limits: no hugetlb controller on this host (no v1 hierarchy and not in cgroup2)");
    };
    v2::hugetlb(&dir, limits)
}

/// On a hybrid host, the container's cgroup2 directory with `ctrl` enabled
/// for it, if the cgroup2 tree has that controller at all.
fn hybrid_dir_with(m: &Manager, ctrl: &str) -> Result<Option<PathBuf>> {
    let (Some(dir), Some(root)) = (&m.unified_dir, &m.unified_mount) else {
        return Ok(None);
    };
    if !detect::v2_controllers(root)?.iter().any(|c| c == ctrl) {
        return Ok(None);
    }
    enable_hybrid(m, ctrl)?;
    Ok(Some(dir.clone()))
}

fn enable_hybrid(m: &Manager, ctrl: &str) -> Result<()> {
    let (Some(dir), Some(root)) = (&m.unified_dir, &m.unified_mount) else {
        bail!("{ctrl}: this host has no cgroup2 hierarchy");
    };
    v2::enable_down_to(root, dir, &[ctrl.to_string()])
}
