//! What `berth update` does, as library functions: runc's flags and the
//! `-r FILE|-` JSON into the LinuxResources the cgroup drivers apply.

use std::io::Read;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use crate::cgroups::resources::parse_size;
use crate::{bail, Context, Error, Result};

/// `runc update` flags. Memory values take sizes like `512m`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateOptions {
    pub blkio_weight: Option<u16>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_burst: Option<u64>,
    pub cpu_share: Option<u64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpu_idle: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub kernel_memory: Option<String>,
    pub kernel_memory_tcp: Option<String>,
    pub pids_limit: Option<i64>,
}

impl UpdateOptions {
    /// The flags as a LinuxResources holding only what was given.
    pub fn to_resources(&self) -> Result<LinuxResources> {
        let mut r = LinuxResources::default();
        let size = |v: &Option<String>, flag: &str| -> Result<Option<i64>> {
            v.as_deref()
                .map(|s| parse_size(s).context(format!("--{flag}")))
                .transpose()
        };
        let mut mem = LinuxMemory::default();
        let mut any_mem = false;
        for (flag, v, set) in [
            (
                "memory",
                &self.memory,
                LinuxMemory::set_limit as fn(&mut LinuxMemory, Option<i64>) -> &mut LinuxMemory,
            ),
            (
                "memory-reservation",
                &self.memory_reservation,
                LinuxMemory::set_reservation,
            ),
            ("memory-swap", &self.memory_swap, LinuxMemory::set_swap),
            (
                "kernel-memory",
                &self.kernel_memory,
                LinuxMemory::set_kernel,
            ),
            (
                "kernel-memory-tcp",
                &self.kernel_memory_tcp,
                LinuxMemory::set_kernel_tcp,
            ),
        ] {
            if let Some(n) = size(v, flag)? {
                set(&mut mem, Some(n));
                any_mem = true;
            }
        }
        if any_mem {
            r.set_memory(Some(mem));
        }
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(self.cpu_share)
            .set_quota(self.cpu_quota)
            .set_period(self.cpu_period)
            .set_burst(self.cpu_burst)
            .set_realtime_period(self.cpu_rt_period)
            .set_realtime_runtime(self.cpu_rt_runtime)
            .set_idle(self.cpu_idle)
            .set_cpus(self.cpuset_cpus.clone())
            .set_mems(self.cpuset_mems.clone());
        if cpu != LinuxCpu::default() {
            r.set_cpu(Some(cpu));
        }
        if let Some(p) = self.pids_limit {
            let mut pids = LinuxPids::default();
            pids.set_limit(p);
            r.set_pids(Some(pids));
        }
        if let Some(w) = self.blkio_weight {
            if !(10..=1000).contains(&w) {
                bail!("--blkio-weight {w} is out of range 10..=1000");
            }
            let mut b = LinuxBlockIo::default();
            b.set_weight(Some(w));
            r.set_block_io(Some(b));
        }
        Ok(r)
    }
}

/// `update -r FILE|-`: a LinuxResources JSON document (what containerd
/// sends).
pub fn resources_from_json(mut input: impl Read, what: &str) -> Result<LinuxResources> {
    let mut s = String::new();
    input
        .read_to_string(&mut s)
        .with_context(|| format!("read {what}"))?;
    serde_json::from_str(&s).map_err(|e| Error::msg(format!("parse {what} as LinuxResources: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_flags_become_resources() {
        let o = UpdateOptions {
            memory: Some("64m".into()),
            cpu_quota: Some(20000),
            pids_limit: Some(7),
            ..Default::default()
        };
        let r = o.to_resources().unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(20000));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 7);
        assert!(r.block_io().is_none());
        let bad = UpdateOptions {
            memory: Some("lots".into()),
            ..Default::default()
        };
        assert!(bad
            .to_resources()
            .unwrap_err()
            .message()
            .contains("--memory"));
    }

    #[test]
    fn resources_json_is_read() {
        let r = resources_from_json(
            &br#"{"memory":{"limit":1048576},"pids":{"limit":3}}"#[..],
            "stdin",
        )
        .unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(1048576));
        assert!(resources_from_json(&b"{"[..], "stdin").is_err());
    }
}
