//! cgroup v2 (unified hierarchy).
//!
//! One tree; a controller is usable in a cgroup once every ancestor lists it
//! in `cgroup.subtree_control`. `create` enables every controller the parent
//! offers down to the container's cgroup, applies the limits, and the init
//! is then cloned straight into it (`CLONE_INTO_CGROUP` with `open_dir`).

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxHugepageLimit, LinuxRdma, LinuxResources};

use super::devices::effective_rules;
use super::fsio::{self, write};
use super::resources::{
    blkio_weight_to_io, check_page_size, check_unified_key, cpu_max, limit_str_v2, pids_max,
    shares_to_weight, swap_to_v2,
};
use super::{detect, devices_bpf, FreezerState, Manager};
use crate::{bail, Error, Result};

pub fn create(m: &Manager, res: Option<&LinuxResources>) -> Result<()> {
    let dir = m.unified()?;
    let root = m
        .unified_mount
        .as_deref()
        .ok_or_else(|| Error::msg("cgroup2 mount point unknown"))?;
    let created = fsio::mkdir_all(dir)?;
    let r = (|| {
        // Everything the tree offers at the top; each level passes on what
        // it can (enabling top-down fills in the next level's list).
        let wanted = detect::v2_controllers(root)?;
        enable_down_to(root, dir, &wanted)?;
        match res {
            Some(r) => apply(m, r, false),
            None => apply(m, &LinuxResources::default(), false),
        }
    })();
    if let Err(e) = r {
        fsio::remove_dirs(&created);
        return Err(e);
    }
    Ok(())
}

/// Enable `ctrls` in `subtree_control` of every cgroup from `root` down to
/// the parent of `leaf`, skipping ones already enabled. Controllers a level
/// does not offer are left out (the per-resource writes then report them).
pub fn enable_down_to(root: &Path, leaf: &Path, ctrls: &[String]) -> Result<()> {
    let mut chain: Vec<&Path> = leaf
        .ancestors()
        .skip(1)
        .take_while(|p| p.starts_with(root))
        .collect();
    chain.reverse();
    for d in chain {
        let offered = detect::v2_controllers(d)?;
        let enabled = fsio::read(d, "cgroup.subtree_control")?;
        let enabled: Vec<&str> = enabled.split_whitespace().collect();
        for c in ctrls {
            if enabled.contains(&c.as_str()) || !offered.contains(c) {
                continue;
            }
            write(d, "cgroup.subtree_control", &format!("+{c}"))?;
        }
    }
    Ok(())
}

/// `O_PATH|O_DIRECTORY|O_CLOEXEC` on a cgroup directory.
pub fn open_dir(dir: &Path) -> Result<OwnedFd> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::msg(format!("{} contains a NUL byte", dir.display())))?;
    crate::sys::open(&c, libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| fsio::io_error(e, format!("open {}", dir.display())))
}

pub fn destroy(m: &Manager) -> Result<()> {
    let dir = m.unified()?;
    for sub in fsio::subdirs(dir) {
        fsio::rmdir(&sub)?;
    }
    fsio::rmdir(dir)
}

pub fn set_frozen(dir: &Path, frozen: bool) -> Result<()> {
    write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    let want = if frozen { 1 } else { 0 };
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let ev = fsio::read_keyed(dir, "cgroup.events")?;
        if fsio::keyed(&ev, "frozen") == Some(want) {
            return Ok(());
        }
        if Instant::now() > end {
            if frozen {
                let _ = write(dir, "cgroup.freeze", "0");
            }
            bail!(
                "{}: frozen did not become {want} within 5s",
                dir.join("cgroup.events").display()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn freezer_state(dir: &Path) -> Result<FreezerState> {
    let want = fsio::read_trim(dir, "cgroup.freeze")? == "1";
    let is = fsio::keyed(&fsio::read_keyed(dir, "cgroup.events")?, "frozen") == Some(1);
    Ok(match (want, is) {
        (true, true) => FreezerState::Frozen,
        (true, false) => FreezerState::Freezing,
        _ => FreezerState::Thawed,
    })
}

/// A clear error when the container's cgroup lacks `ctrl`.
fn need(dir: &Path, ctrl: &str) -> Result<()> {
    let have = detect::v2_controllers(dir)?;
    if !have.iter().any(|c| c == ctrl) {
        bail!(
            "{ctrl} controller not supported on this host ({} lists {:?})",
            dir.join("cgroup.controllers").display(),
            have.join(" ")
        );
    }
    Ok(())
}

pub fn apply(m: &Manager, res: &LinuxResources, update: bool) -> Result<()> {
    let dir = m.unified()?;
    if let Some(mem) = res.memory() {
        memory(dir, mem, update)?;
    }
    if let Some(cpu) = res.cpu() {
        cpu_(dir, cpu)?;
    }
    if let Some(p) = res.pids() {
        need(dir, "pids")?;
        write(dir, "pids.max", &pids_max(p.limit()))?;
    }
    if let Some(b) = res.block_io() {
        io(dir, b)?;
    }
    if let Some(h) = res.hugepage_limits() {
        hugetlb(dir, h)?;
    }
    if let Some(n) = res.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            bail!("network: net_cls and net_prio are cgroup v1 controllers, not supported on cgroup v2");
        }
    }
    if let Some(r) = res.rdma() {
        if !r.is_empty() {
            rdma(dir, r)?;
        }
    }
    if let Some(u) = res.unified() {
        unified(dir, u)?;
    }
    // Devices last: a bad filter must not leave other limits half-applied
    // on create, and on update only an explicit list replaces the filter.
    if res.devices().is_some() || !update {
        let rules = effective_rules(res.devices().as_deref())?;
        let fd = open_dir(dir)?;
        devices_bpf::apply(&fd, &rules)
            .map_err(|e| e.context(format!("device filter on {}", dir.display())))?;
    }
    Ok(())
}

fn memory(dir: &Path, mem: &oci_spec::runtime::LinuxMemory, update: bool) -> Result<()> {
    // Kernel memory limits do not exist on cgroup v2; runc accepts and
    // ignores them, and so does berth.
    if mem.kernel().is_some() || mem.kernel_tcp().is_some() {
        crate::logging::warn(
            "linux.resources.memory.kernel and kernelTCP are ignored: cgroup v2 has no kernel memory limits",
        );
    }
    let any = mem.limit().is_some()
        || mem.reservation().is_some()
        || mem.swap().is_some()
        || mem.swappiness().is_some()
        || mem.disable_oom_killer() == Some(true)
        || mem.use_hierarchy() == Some(false);
    if !any {
        return Ok(());
    }
    need(dir, "memory")?;
    if mem.swappiness().is_some() {
        bail!("memory.swappiness: memory.swappiness does not exist on cgroup v2");
    }
    if mem.disable_oom_killer() == Some(true) {
        bail!("memory.disableOOMKiller: memory.oom_control does not exist on cgroup v2");
    }
    if mem.use_hierarchy() == Some(false) {
        bail!("memory.useHierarchy=false: cgroup v2 is always hierarchical");
    }
    if let (true, Some(true), Some(limit)) = (update, mem.check_before_update(), mem.limit()) {
        let usage = fsio::read_u64(dir, "memory.current")?.unwrap_or(0);
        if limit >= 0 && (limit as u64) < usage {
            bail!(
                "memory.limit {limit} is below current usage {usage} ({}); checkBeforeUpdate refuses it",
                dir.join("memory.current").display()
            );
        }
    }
    let swap = swap_to_v2(mem.swap(), mem.limit())?;
    if let Some(s) = swap {
        if !dir.join("memory.swap.max").exists() {
            if s == -1 {
                // Unlimited swap on a kernel without swap accounting is moot.
            } else {
                bail!(
                    "memory.swap not supported on this host: {} does not exist (no swap accounting)",
                    dir.join("memory.swap.max").display()
                );
            }
        } else {
            // Lower swap before changing memory.max so no moment allows
            // more than both limits together.
            write(dir, "memory.swap.max", &limit_str_v2(s))?;
        }
    }
    if let Some(l) = mem.limit() {
        write(dir, "memory.max", &limit_str_v2(l))?;
    }
    if let Some(r) = mem.reservation() {
        write(dir, "memory.low", &limit_str_v2(r))?;
    }
    Ok(())
}

fn cpu_(dir: &Path, cpu: &oci_spec::runtime::LinuxCpu) -> Result<()> {
    if cpu.realtime_period().is_some() || cpu.realtime_runtime().is_some() {
        bail!("cpu.realtimePeriod/realtimeRuntime: cpu.rt_* do not exist for cgroups on cgroup v2");
    }
    let wants_cpu = cpu.shares().is_some()
        || cpu.quota().is_some()
        || cpu.period().is_some()
        || cpu.burst().is_some()
        || cpu.idle().is_some();
    if wants_cpu {
        need(dir, "cpu")?;
        if let Some(s) = cpu.shares() {
            if s != 0 {
                write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
            }
        }
        if cpu.quota().is_some() || cpu.period().is_some() {
            // cpu.max takes both; keep the side that was not given.
            let cur = fsio::read_trim(dir, "cpu.max")?;
            let mut it = cur.split_whitespace();
            let cur_quota = it.next().and_then(|q| q.parse::<i64>().ok());
            let cur_period = it
                .next()
                .and_then(|p| p.parse::<u64>().ok())
                .unwrap_or(100_000);
            let quota = if cpu.quota().is_some() {
                cpu.quota()
            } else {
                cur_quota
            };
            let period = cpu.period().unwrap_or(cur_period);
            write(dir, "cpu.max", &cpu_max(quota, period))?;
        }
        if let Some(b) = cpu.burst() {
            write(dir, "cpu.max.burst", &b.to_string())?;
        }
        if let Some(i) = cpu.idle() {
            write(dir, "cpu.idle", &i.to_string())?;
        }
    }
    if cpu.cpus().is_some() || cpu.mems().is_some() {
        need(dir, "cpuset")?;
        if let Some(c) = cpu.cpus() {
            write(dir, "cpuset.cpus", c)?;
        }
        if let Some(c) = cpu.mems() {
            write(dir, "cpuset.mems", c)?;
        }
    }
    Ok(())
}

fn io(dir: &Path, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    let any_throttle = throttles
        .iter()
        .any(|(_, d)| d.as_ref().is_some_and(|v| !v.is_empty()));
    let any = b.weight().is_some()
        || b.leaf_weight().is_some()
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || any_throttle;
    if !any {
        return Ok(());
    }
    need(dir, "io")?;
    if b.leaf_weight().is_some() {
        bail!("blockIO.leafWeight: blkio.leaf_weight has no cgroup v2 equivalent");
    }
    // BFQ takes the v1 scale directly; io.weight (the cost model) the v2 one.
    let weight = |w: u16, dev: Option<(i64, i64)>| -> Result<()> {
        let prefix = dev.map(|(a, b)| format!("{a}:{b} ")).unwrap_or_default();
        if dir.join("io.bfq.weight").exists() {
            write(dir, "io.bfq.weight", &format!("{prefix}{w}"))
        } else if dir.join("io.weight").exists() {
            let v = blkio_weight_to_io(w);
            let v = if dev.is_some() {
                v.to_string()
            } else {
                format!("default {v}")
            };
            write(dir, "io.weight", &format!("{prefix}{v}"))
        } else {
            bail!(
                "blockIO weight not supported on this host: neither {} nor {} exists",
                dir.join("io.bfq.weight").display(),
                dir.join("io.weight").display()
            )
        }
    };
    if let Some(w) = b.weight() {
        weight(w, None)?;
    }
    for d in b.weight_device().iter().flatten() {
        if d.leaf_weight().is_some() {
            bail!("blockIO.weightDevice.leafWeight has no cgroup v2 equivalent");
        }
        if let Some(w) = d.weight() {
            weight(w, Some((d.major(), d.minor())))?;
        }
    }
    for (key, devs) in throttles {
        for d in devs.iter().flatten() {
            let rate = if d.rate() == 0 {
                "max".to_string()
            } else {
                d.rate().to_string()
            };
            write(
                dir,
                "io.max",
                &format!("{}:{} {key}={rate}", d.major(), d.minor()),
            )?;
        }
    }
    Ok(())
}

pub fn hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    need(dir, "hugetlb")?;
    for l in limits {
        check_page_size(l.page_size())?;
        let max = format!("hugetlb.{}.max", l.page_size());
        if !dir.join(&max).exists() {
            bail!(
                "hugepage size {} not supported on this host: {} does not exist (host sizes: {:?})",
                l.page_size(),
                dir.join(&max).display(),
                super::resources::host_page_sizes()
            );
        }
        write(dir, &max, &limit_str_v2(l.limit()))?;
        // Reservations are charged separately; limit them alike when the
        // kernel accounts them, so mmap(MAP_HUGETLB) fails up front.
        let rsvd = format!("hugetlb.{}.rsvd.max", l.page_size());
        if dir.join(&rsvd).exists() {
            write(dir, &rsvd, &limit_str_v2(l.limit()))?;
        }
    }
    Ok(())
}

pub fn rdma(dir: &Path, rdma: &HashMap<String, LinuxRdma>) -> Result<()> {
    let file: PathBuf = dir.join("rdma.max");
    if !file.exists() {
        bail!(
            "rdma controller not supported on this host: {} does not exist",
            file.display()
        );
    }
    for (dev, r) in rdma {
        if dev.is_empty() || dev.contains(char::is_whitespace) {
            bail!("rdma: device name {dev:?} is invalid");
        }
        let mut line = dev.clone();
        if let Some(h) = r.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = r.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        write(dir, "rdma.max", &line)?;
    }
    Ok(())
}

/// `linux.resources.unified`: raw cgroup2 files, each checked to name a file
/// of a controller this cgroup has, in this cgroup.
pub fn unified(dir: &Path, u: &HashMap<String, String>) -> Result<()> {
    let have = detect::v2_controllers(dir)?;
    let mut keys: Vec<&String> = u.keys().collect();
    keys.sort();
    for k in keys {
        let ctrl = check_unified_key(k)?;
        if ctrl != "cgroup" && !have.iter().any(|c| c == ctrl) {
            bail!(
                "unified: {k:?} needs the {ctrl} controller, not enabled in {} ({:?})",
                dir.display(),
                have.join(" ")
            );
        }
        if !dir.join(k).is_file() {
            bail!("unified: {} does not exist", dir.join(k).display());
        }
        write(dir, k, &u[k])?;
    }
    Ok(())
}
