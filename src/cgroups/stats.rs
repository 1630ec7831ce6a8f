//! Resource figures in the JSON shape of `runc events` (its `types` package):
//! `{"type":"stats","id":…,"data":{"cpu":…,"memory":…,…}}` and
//! `{"type":"oom","id":…}`. Field names and which fields are omitted when
//! zero follow runc, so tools that parse runc's output parse ours.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fsio::{self, keyed};
use super::{detect, Manager};
use crate::Result;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// One line of `events` output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    #[serde(rename = "type")]
    pub typ: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

impl Event {
    pub fn stats(id: &str, s: Stats) -> Event {
        Event {
            typ: "stats".into(),
            id: id.into(),
            data: Some(s),
        }
    }
    pub fn oom(id: &str) -> Event {
        Event {
            typ: "oom".into(),
            id: id.into(),
            data: None,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    pub network_interfaces: Option<Vec<NetworkInterface>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CpuUsage {
    /// Nanoseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CpuSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServicedRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioQueueRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServiceTimeRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioWaitTimeRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioMergedRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioTimeRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "sectorsRecursive",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Intel RDT figures (resctrl); berth does not manage RDT, so this stays
/// empty, as runc's does for containers without `linux.intelRdt`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct IntelRdt {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NetworkInterface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// `0-3,6` → [0,1,2,3,6].
pub fn parse_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.parse::<u16>() {
                    out.push(a);
                }
            }
        }
    }
    out
}

fn num(dir: &Path, f: &str) -> u64 {
    fsio::read_u64(dir, f).ok().flatten().unwrap_or(0)
}

/// A limit file: `max`/huge values read as the "unlimited" u64 runc prints.
fn limit(dir: &Path, f: &str) -> u64 {
    match fsio::read_u64(dir, f) {
        Ok(Some(v)) => v,
        Ok(None) => u64::MAX,
        Err(_) => 0,
    }
}

fn cpuset(dir: &Path, prefix: &str) -> CpuSet {
    let f = |n: &str| format!("{prefix}{n}");
    CpuSet {
        // The configured sets, as runc reports them (empty = inherited).
        cpus: parse_list(&fsio::read(dir, &f("cpus")).unwrap_or_default()),
        mems: parse_list(&fsio::read(dir, &f("mems")).unwrap_or_default()),
        cpu_exclusive: num(dir, &f("cpu_exclusive")),
        mem_hardwall: num(dir, &f("mem_hardwall")),
        mem_exclusive: num(dir, &f("mem_exclusive")),
        memory_migrate: num(dir, &f("memory_migrate")),
        memory_spread_page: num(dir, &f("memory_spread_page")),
        memory_spread_slab: num(dir, &f("memory_spread_slab")),
        memory_pressure: num(dir, &f("memory_pressure")),
        sched_load_balance: num(dir, &f("sched_load_balance")),
        sched_relax_domain_level: fsio::read_trim(dir, &f("sched_relax_domain_level"))
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    }
}

fn blkio_entries(dir: &Path, file: &str) -> Vec<BlkioEntry> {
    let Ok(s) = fsio::read(dir, file) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in s.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some((maj, min)) = f.first().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        let (op, value) = match f.len() {
            3 => (f[1].to_string(), f[2].parse().unwrap_or(0)),
            2 => (String::new(), f[1].parse().unwrap_or(0)),
            _ => continue,
        };
        out.push(BlkioEntry {
            major,
            minor,
            op,
            value,
        });
    }
    out
}

pub fn v1(m: &Manager) -> Result<Stats> {
    let mut s = Stats::default();
    if let Some(d) = m.v1_dirs.get("cpuacct") {
        s.cpu.usage.total = num(d, "cpuacct.usage");
        s.cpu.usage.percpu = fsio::read(d, "cpuacct.usage_percpu")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        s.cpu.usage.percpu_user = fsio::read(d, "cpuacct.usage_percpu_user")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        s.cpu.usage.percpu_kernel = fsio::read(d, "cpuacct.usage_percpu_sys")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        s.cpu.usage.user = num(d, "cpuacct.usage_user");
        s.cpu.usage.kernel = num(d, "cpuacct.usage_sys");
    }
    if let Some(d) = m.v1_dirs.get("cpu") {
        let st = fsio::read_keyed(d, "cpu.stat").unwrap_or_default();
        s.cpu.throttling.periods = keyed(&st, "nr_periods").unwrap_or(0);
        s.cpu.throttling.throttled_periods = keyed(&st, "nr_throttled").unwrap_or(0);
        s.cpu.throttling.throttled_time = keyed(&st, "throttled_time").unwrap_or(0);
    }
    if let Some(d) = m.v1_dirs.get("cpuset") {
        s.cpuset = cpuset(d, "cpuset.");
    }
    if let Some(d) = m.v1_dirs.get("memory") {
        let raw: BTreeMap<String, u64> = fsio::read_keyed(d, "memory.stat")?.into_iter().collect();
        s.memory.cache = raw.get("cache").copied().unwrap_or(0);
        let entry = |p: &str| MemoryEntry {
            limit: limit(d, &format!("{p}.limit_in_bytes")),
            usage: num(d, &format!("{p}.usage_in_bytes")),
            max: num(d, &format!("{p}.max_usage_in_bytes")),
            failcnt: num(d, &format!("{p}.failcnt")),
        };
        s.memory.usage = entry("memory");
        s.memory.swap = entry("memory.memsw");
        s.memory.kernel = entry("memory.kmem");
        s.memory.kernel_tcp = entry("memory.kmem.tcp");
        s.memory.raw = raw;
    }
    if let Some(d) = m.v1_dirs.get("pids") {
        s.pids.current = num(d, "pids.current");
        s.pids.limit = match fsio::read_u64(d, "pids.max") {
            Ok(Some(v)) => v,
            _ => 0,
        };
    }
    if let Some(d) = m.v1_dirs.get("blkio") {
        let b = &mut s.blkio;
        // Prefer the scheduler's figures (BFQ, then CFQ), then the
        // throttle layer's, like runc.
        let pick = |name: &str| {
            for f in [
                format!("blkio.bfq.{name}"),
                format!("blkio.{name}"),
                format!("blkio.throttle.{name}"),
            ] {
                let v = blkio_entries(d, &f);
                if !v.is_empty() {
                    return v;
                }
            }
            Vec::new()
        };
        b.io_service_bytes_recursive = pick("io_service_bytes_recursive");
        b.io_serviced_recursive = pick("io_serviced_recursive");
        b.io_queued_recursive = blkio_entries(d, "blkio.io_queued_recursive");
        b.io_service_time_recursive = blkio_entries(d, "blkio.io_service_time_recursive");
        b.io_wait_time_recursive = blkio_entries(d, "blkio.io_wait_time_recursive");
        b.io_merged_recursive = blkio_entries(d, "blkio.io_merged_recursive");
        b.io_time_recursive = blkio_entries(d, "blkio.time_recursive");
        b.sectors_recursive = blkio_entries(d, "blkio.sectors_recursive");
    }
    if let Some(d) = m.v1_dirs.get("hugetlb") {
        for size in super::resources::host_page_sizes() {
            s.hugetlb.insert(
                size.clone(),
                Hugetlb {
                    usage: num(d, &format!("hugetlb.{size}.usage_in_bytes")),
                    max: num(d, &format!("hugetlb.{size}.max_usage_in_bytes")),
                    failcnt: num(d, &format!("hugetlb.{size}.failcnt")),
                },
            );
        }
    } else if let Some(d) = &m.unified_dir {
        if detect::v2_controllers(d).is_ok_and(|c| c.iter().any(|c| c == "hugetlb")) {
            s.hugetlb = hugetlb_v2(d);
        }
    }
    Ok(s)
}

fn hugetlb_v2(d: &Path) -> BTreeMap<String, Hugetlb> {
    let mut out = BTreeMap::new();
    for size in super::resources::host_page_sizes() {
        let events = fsio::read_keyed(d, &format!("hugetlb.{size}.events")).unwrap_or_default();
        out.insert(
            size.clone(),
            Hugetlb {
                usage: num(d, &format!("hugetlb.{size}.current")),
                max: 0,
                failcnt: keyed(&events, "max").unwrap_or(0),
            },
        );
    }
    out
}

pub fn v2(m: &Manager) -> Result<Stats> {
    let d = m.unified()?;
    let mut s = Stats::default();
    let have = detect::v2_controllers(d)?;
    let has = |c: &str| have.iter().any(|h| h == c);
    // cpu.stat exists without the cpu controller (usage only).
    let st = fsio::read_keyed(d, "cpu.stat")?;
    s.cpu.usage.total = keyed(&st, "usage_usec").unwrap_or(0) * 1000;
    s.cpu.usage.user = keyed(&st, "user_usec").unwrap_or(0) * 1000;
    s.cpu.usage.kernel = keyed(&st, "system_usec").unwrap_or(0) * 1000;
    s.cpu.throttling.periods = keyed(&st, "nr_periods").unwrap_or(0);
    s.cpu.throttling.throttled_periods = keyed(&st, "nr_throttled").unwrap_or(0);
    s.cpu.throttling.throttled_time = keyed(&st, "throttled_usec").unwrap_or(0) * 1000;
    if has("cpuset") {
        s.cpuset = cpuset(d, "cpuset.");
    }
    if has("memory") {
        let raw: BTreeMap<String, u64> = fsio::read_keyed(d, "memory.stat")?.into_iter().collect();
        s.memory.cache = raw.get("file").copied().unwrap_or(0);
        let events = fsio::read_keyed(d, "memory.events").unwrap_or_default();
        s.memory.usage = MemoryEntry {
            limit: limit(d, "memory.max"),
            usage: num(d, "memory.current"),
            max: num(d, "memory.peak"),
            failcnt: keyed(&events, "max").unwrap_or(0),
        };
        if d.join("memory.swap.current").exists() {
            // runc reports swap as memory+swap, the v1 meaning.
            let swap_events = fsio::read_keyed(d, "memory.swap.events").unwrap_or_default();
            let swap_limit = limit(d, "memory.swap.max");
            s.memory.swap = MemoryEntry {
                limit: if swap_limit == u64::MAX || s.memory.usage.limit == u64::MAX {
                    u64::MAX
                } else {
                    swap_limit + s.memory.usage.limit
                },
                usage: num(d, "memory.swap.current") + s.memory.usage.usage,
                max: 0,
                failcnt: keyed(&swap_events, "fail").unwrap_or(0),
            };
        }
        s.memory.raw = raw;
    }
    if has("pids") {
        s.pids.current = num(d, "pids.current");
        s.pids.limit = match fsio::read_u64(d, "pids.max") {
            Ok(Some(v)) => v,
            _ => 0,
        };
    }
    if has("io") {
        // io.stat: `maj:min rbytes=… wbytes=… rios=… wios=… …`
        for line in fsio::read(d, "io.stat").unwrap_or_default().lines() {
            let mut it = line.split_whitespace();
            let Some((maj, min)) = it.next().and_then(|dev| dev.split_once(':')) else {
                continue;
            };
            let (Ok(major), Ok(minor)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
                continue;
            };
            for kv in it {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let Ok(value) = v.parse::<u64>() else {
                    continue;
                };
                let (list, op) = match k {
                    "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                    "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                    "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                    "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                    _ => continue,
                };
                list.push(BlkioEntry {
                    major,
                    minor,
                    op: op.into(),
                    value,
                });
            }
        }
    }
    if has("hugetlb") {
        s.hugetlb = hugetlb_v2(d);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse() {
        assert_eq!(parse_list("0-3,6\n"), vec![0, 1, 2, 3, 6]);
        assert_eq!(parse_list(""), Vec::<u16>::new());
    }

    #[test]
    fn empty_stats_have_runcs_shape() {
        let v = serde_json::to_value(Event::stats("c", Stats::default())).unwrap();
        let data = &v["data"];
        for k in [
            "cpu",
            "cpuset",
            "memory",
            "pids",
            "blkio",
            "hugetlb",
            "intel_rdt",
            "network_interfaces",
        ] {
            assert!(data.get(k).is_some(), "missing {k}");
        }
        assert_eq!(data["memory"]["usage"]["limit"], 0);
        assert!(data["memory"].get("raw").is_none());
        assert!(data["network_interfaces"].is_null());
        let oom = serde_json::to_string(&Event::oom("c")).unwrap();
        assert_eq!(oom, r#"{"type":"oom","id":"c"}"#);
    }
}
