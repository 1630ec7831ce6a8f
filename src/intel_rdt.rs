//! `linux.intelRdt` (closID, schemata, l3CacheSchema, memBwSchema,
//! enableMonitoring): berth does not drive resctrl. A config that asks for
//! it is refused, as runc refuses it on a host without Intel RDT, never
//! silently run without the cache and bandwidth limits it asked for.

use std::path::Path;

use oci_spec::runtime::Linux;

use crate::Result;

pub fn check(linux: Option<&Linux>) -> Result<()> {
    if linux.and_then(|l| l.intel_rdt().as_ref()).is_none() {
        return Ok(());
    }
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|t| t.starts_with("resctrl "))
        });
    if !mounted && !Path::new("/sys/fs/resctrl/info").exists() {
        crate::bail!(
            "linux.intelRdt: intelRdt is specified in config, but Intel RDT is not supported or enabled (no resctrl filesystem on this host)"
        );
    }
    crate::bail!(
        "linux.intelRdt: this host has resctrl, but berth does not support Intel RDT (closID/schemata/monitoring)"
    )
}
