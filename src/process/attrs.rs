//! Per-process kernel attributes from the config: `linux.personality`,
//! `process.scheduler` (sched_setattr) and `process.ioPriority`.

use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Scheduler,
};

use crate::error::{Context, Error, Result};
use crate::sys;

/// The persona `linux.personality` asks for (checked in the parent).
pub fn persona(p: &LinuxPersonality) -> Result<libc::c_ulong> {
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        crate::bail!("flags are not supported");
    }
    Ok(match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    })
}

pub fn set_personality(domain: libc::c_ulong) -> Result<()> {
    sys::personality(domain).with_context(|| format!("personality {domain:#x}"))
}

pub fn set_scheduler(s: &Scheduler) -> Result<()> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER,
        LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO,
        LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR,
        LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = sys::SchedAttr {
        policy: policy as u32,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    sys::sched_setattr(attr).with_context(|| format!("sched_setattr (policy {policy})"))?;
    Ok(())
}

pub fn set_io_priority(class: IOPriorityClass, priority: i64) -> Result<()> {
    let class = match class {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&priority) {
        crate::bail!("process.ioPriority: priority {priority} is outside 0..7");
    }
    sys::ioprio_set(class, priority).context("ioprio_set")?;
    Ok(())
}

/// Pin the calling thread to a CPU list like `0-2,5`.
pub fn set_cpu_affinity(list: &str) -> Result<()> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| Error::msg(format!("execCPUAffinity: bad CPU list {list:?}")))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b || b >= libc::CPU_SETSIZE as usize {
            crate::bail!("execCPUAffinity: bad CPU range {part:?}");
        }
        cpus.extend(a..=b);
    }
    sys::sched_setaffinity(&cpus).with_context(|| format!("sched_setaffinity {list}"))
}
