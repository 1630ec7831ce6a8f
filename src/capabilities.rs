//! `process.capabilities`: parsed in the parent, applied in the init with
//! one capset(2) for effective/permitted/inheritable, prctl for the bounding
//! and ambient sets.

use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{Context, Error, Result};

/// Capability sets as bitmasks (bit N = capability N).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

fn mask_of(set: &Option<Capabilities>) -> Result<u64> {
    let mut mask = 0u64;
    for cap in set.iter().flatten() {
        let name = serde_json::to_value(cap)?;
        let name = name.as_str().unwrap_or_default();
        let c: caps::Capability = name
            .parse()
            .map_err(|_| Error::msg(format!("unknown capability {name}")))?;
        mask |= c.bitmask();
    }
    Ok(mask)
}

/// Removes the names this kernel's capability list does not have, exactly
/// as spelled (`CAP_BOGUS`, `cap_kill`), from every set of a JSON
/// `capabilities` object, with a warning: runc ignores them. Returns
/// whether anything was removed.
pub fn drop_unknown(caps: &mut serde_json::Value) -> bool {
    let known: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    let mut dropped = Vec::new();
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        if let Some(list) = caps.get_mut(set).and_then(|l| l.as_array_mut()) {
            list.retain(|n| {
                let name = n.as_str().unwrap_or_default();
                let ok = known.iter().any(|k| k == name);
                if !ok {
                    dropped.push(format!("{set}: {name}"));
                }
                ok
            });
        }
    }
    if !dropped.is_empty() {
        crate::logging::warn(&format!(
            "ignoring unknown or unavailable capabilities: {}",
            dropped.join(", ")
        ));
    }
    !dropped.is_empty()
}

/// Absent capabilities mean none at all (runc's behaviour).
pub fn parse(caps: Option<&LinuxCapabilities>) -> Result<CapSets> {
    let Some(c) = caps else {
        return Ok(CapSets::default());
    };
    Ok(CapSets {
        bounding: mask_of(c.bounding())?,
        effective: mask_of(c.effective())?,
        permitted: mask_of(c.permitted())?,
        inheritable: mask_of(c.inheritable())?,
        ambient: mask_of(c.ambient())?,
    })
}

/// The highest capability this kernel knows.
pub fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

fn names(mask: u64) -> String {
    let mut out = Vec::new();
    for c in caps::all() {
        if mask & c.bitmask() != 0 {
            out.push(c.to_string());
        }
    }
    out.join(",")
}

impl CapSets {
    /// Drop everything outside the bounding set; needs CAP_SETPCAP, so it
    /// runs before the user switch.
    pub fn drop_bounding(&self, last_cap: u8) -> Result<()> {
        for cap in 0..=last_cap {
            if self.bounding & (1u64 << cap) == 0 {
                crate::sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong)
                    .with_context(|| format!("drop capability {cap} from the bounding set"))?;
            }
        }
        Ok(())
    }

    /// Set effective, permitted and inheritable in one capset, then raise
    /// what of the ambient set the kernel allows. Runs after the user switch (with PR_SET_KEEPCAPS).
    pub fn apply(&self) -> Result<()> {
        if let Err(e) = crate::sys::capset(self.effective, self.permitted, self.inheritable) {
            let mut what = format!(
                "set capabilities (effective {}; permitted {}; inheritable {})",
                names(self.effective),
                names(self.permitted),
                names(self.inheritable)
            );
            if (self.effective | self.permitted | self.inheritable)
                & caps::Capability::CAP_SYS_RESOURCE.bitmask()
                != 0
            {
                what.push_str(
                    " [CAP_SYS_RESOURCE requested: is it in the runtime's own bounding set?]",
                );
            }
            return Err(Error::from(e).context(what));
        }
        for cap in (0..64u32).filter(|c| self.ambient & (1 << c) != 0) {
            if let Err(e) = crate::sys::raise_ambient(cap) {
                // As runc: an ambient capability the kernel refuses (not in
                // permitted and inheritable, as in `runc spec`'s config) is
                // not raised, and that is no error.
                crate::logging::debug(&format!(
                    "ambient capability {} not raised: {e}",
                    names(1 << cap)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_dropped_as_runc_ignores_them() {
        let mut c = serde_json::json!({
            "bounding": ["CAP_KILL", "CAP_BOGUS", "cap_chown"],
            "ambient": ["CAP_KILL"]
        });
        assert!(drop_unknown(&mut c));
        assert_eq!(c["bounding"], serde_json::json!(["CAP_KILL"]));
        assert_eq!(c["ambient"], serde_json::json!(["CAP_KILL"]));
        assert!(!drop_unknown(&mut c));
    }

    #[test]
    fn parses_names_into_masks() {
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_KILL","CAP_CHOWN"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]}"#,
        )
        .unwrap();
        let s = parse(Some(&c)).unwrap();
        assert_eq!(s.bounding, (1 << 5) | 1); // CAP_KILL = 5, CAP_CHOWN = 0
        assert_eq!(s.effective, 1 << 5);
        assert_eq!(s.ambient, 0);
        assert_eq!(parse(None).unwrap(), CapSets::default());
    }
}
