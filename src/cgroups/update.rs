//! What `berth update` and `berth events` do, as library functions; the CLI
//! only parses arguments into these.

use std::io::{Read, Write};
use std::time::Duration;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use super::resources::parse_size;
use super::stats::Event;
use super::Manager;
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

/// Parse a Go duration (`5s`, `100ms`, `1m30s`, `1h`, `250us`).
pub fn parse_go_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        bail!("invalid duration {s:?}");
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| Error::msg(format!("invalid duration {s:?}: missing unit")))?;
        let n: f64 = rest[..n_end]
            .parse()
            .map_err(|_| Error::msg(format!("invalid duration {s:?}")))?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => bail!("invalid duration {s:?}: unknown unit {u:?}"),
        };
        total += n * secs;
        rest = &rest[u_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// `events`: with `stats_only`, print one stats event; otherwise print a
/// stats event every `interval` and an `oom` event whenever the OOM killer
/// has struck since the last look, until `running()` says the container is
/// gone. One JSON object per line, like runc.
pub fn events(
    m: &Manager,
    id: &str,
    interval: Duration,
    stats_only: bool,
    out: &mut dyn Write,
    running: &mut dyn FnMut() -> bool,
) -> Result<()> {
    let emit = |out: &mut dyn Write, e: &Event| -> Result<()> {
        serde_json::to_writer(&mut *out, e)?;
        out.write_all(b"\n").context("write event")?;
        out.flush().context("write event")
    };
    if stats_only {
        return emit(out, &Event::stats(id, m.stats()?));
    }
    let mut ooms = m.oom_kill_count().unwrap_or(0);
    // Without a notifier (no memory controller) the kill counter is polled.
    let watcher = super::oom::OomWatcher::new(m).ok();
    let tick = Duration::from_millis(100).min(interval.max(Duration::from_millis(1)));
    let mut since_stats = interval;
    while running() {
        if since_stats >= interval {
            emit(out, &Event::stats(id, m.stats()?))?;
            since_stats = Duration::ZERO;
        }
        let notified = match &watcher {
            Some(w) => w.wait(tick)?,
            None => {
                std::thread::sleep(tick);
                false
            }
        };
        since_stats += tick;
        let now = m.oom_kill_count().unwrap_or(ooms);
        // v1 notifies once per OOM condition, also with the OOM killer
        // disabled (nothing killed); v2 and polling go by the kill counter.
        let oom = if watcher.is_some() && m.mode != Some(super::Mode::Unified) {
            notified
        } else {
            now > ooms
        };
        if oom {
            emit(out, &Event::oom(id))?;
        }
        ooms = now;
    }
    // A last look: an OOM kill is often what ended the container.
    if m.oom_kill_count().unwrap_or(ooms) > ooms {
        emit(out, &Event::oom(id))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(
            parse_go_duration("100ms").unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5x").is_err());
    }

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
