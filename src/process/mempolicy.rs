//! `linux.memoryPolicy` (runtime-spec 1.3): the NUMA policy the container's
//! process starts with, set by the init with set_mempolicy(2) just before
//! execve (the policy is inherited across fork and execve). Checked in the
//! parent; the kernel's own refusal (a node this host lacks, a flag its
//! version does not know) is reported naming the field.

use oci_spec::runtime::{Linux, MemoryPolicyFlagType, MemoryPolicyModeType};
use serde_json::Value;

use crate::error::{Context, Result};
use crate::sys;

/// Modes and flags by their spec names, with the kernel's values
/// (include/uapi/linux/mempolicy.h). `features` lists these names.
pub const MODES: &[(&str, libc::c_int)] = &[
    ("MPOL_DEFAULT", 0),
    ("MPOL_PREFERRED", 1),
    ("MPOL_BIND", 2),
    ("MPOL_INTERLEAVE", 3),
    ("MPOL_LOCAL", 4),
    ("MPOL_PREFERRED_MANY", 5),
    ("MPOL_WEIGHTED_INTERLEAVE", 6),
];
pub const FLAGS: &[(&str, libc::c_int)] = &[
    ("MPOL_F_NUMA_BALANCING", 1 << 13),
    ("MPOL_F_RELATIVE_NODES", 1 << 14),
    ("MPOL_F_STATIC_NODES", 1 << 15),
];

/// The names of a table (`features` lists them).
pub fn names(table: &[(&'static str, libc::c_int)]) -> Vec<&'static str> {
    table.iter().map(|(n, _)| *n).collect()
}

/// Node numbers above this are refused (the kernel's MAX_NUMNODES is at
/// most 1024).
const MAX_NODES: usize = 1024;

/// A checked policy, ready for set_mempolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode_name: &'static str,
    /// Mode with its flags or'ed in.
    pub mode: libc::c_int,
    pub nodemask: Vec<libc::c_ulong>,
    pub nodes: String,
}

fn mode_name(m: MemoryPolicyModeType) -> &'static str {
    match m {
        MemoryPolicyModeType::MpolDefault => "MPOL_DEFAULT",
        MemoryPolicyModeType::MpolPreferred => "MPOL_PREFERRED",
        MemoryPolicyModeType::MpolBind => "MPOL_BIND",
        MemoryPolicyModeType::MpolInterleave => "MPOL_INTERLEAVE",
        MemoryPolicyModeType::MpolLocal => "MPOL_LOCAL",
        MemoryPolicyModeType::MpolPreferredMany => "MPOL_PREFERRED_MANY",
        MemoryPolicyModeType::MpolWeightedInterleave => "MPOL_WEIGHTED_INTERLEAVE",
    }
}

fn flag_name(f: MemoryPolicyFlagType) -> &'static str {
    match f {
        MemoryPolicyFlagType::MpolFNumaBalancing => "MPOL_F_NUMA_BALANCING",
        MemoryPolicyFlagType::MpolFRelativeNodes => "MPOL_F_RELATIVE_NODES",
        MemoryPolicyFlagType::MpolFStaticNodes => "MPOL_F_STATIC_NODES",
    }
}

fn value_of(table: &[(&str, libc::c_int)], name: &str) -> libc::c_int {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .unwrap_or(0)
}

/// Parse a node list ("0-3,5") into a nodemask.
pub fn parse_nodes(s: &str) -> Result<Vec<libc::c_ulong>> {
    let bits = libc::c_ulong::BITS as usize;
    let mut mask: Vec<libc::c_ulong> = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            crate::bail!("empty element in node list {s:?}");
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let num = |x: &str| -> Result<usize> {
            x.parse::<usize>()
                .ok()
                .filter(|n| *n < MAX_NODES)
                .ok_or_else(|| {
                    crate::Error::msg(format!(
                        "invalid node {x:?} in {s:?} (a number below {MAX_NODES})"
                    ))
                })
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi {
            crate::bail!("invalid range {part:?} in {s:?}");
        }
        for n in lo..=hi {
            if mask.len() <= n / bits {
                mask.resize(n / bits + 1, 0);
            }
            mask[n / bits] |= 1 << (n % bits);
        }
    }
    Ok(mask)
}

/// Check `linux.memoryPolicy` and build the policy.
pub fn plan(linux: Option<&Linux>) -> Result<Option<Policy>> {
    let Some(mp) = linux.and_then(|l| l.memory_policy().as_ref()) else {
        return Ok(None);
    };
    let name = mode_name(mp.mode());
    let nodes = mp.nodes().as_deref().unwrap_or("").trim();
    let nodemask = if nodes.is_empty() {
        Vec::new()
    } else {
        parse_nodes(nodes).context("linux.memoryPolicy.nodes")?
    };
    let mut mode = value_of(MODES, name);
    let flags: Vec<&str> = mp.flags().iter().flatten().map(|f| flag_name(*f)).collect();
    for f in &flags {
        mode |= value_of(FLAGS, f);
    }
    match name {
        "MPOL_DEFAULT" | "MPOL_LOCAL" if !nodemask.is_empty() => {
            crate::bail!("linux.memoryPolicy.nodes: {name} takes no nodes (got {nodes:?})")
        }
        "MPOL_DEFAULT" | "MPOL_LOCAL" if !flags.is_empty() => {
            crate::bail!("linux.memoryPolicy.flags: {name} takes no flags (got {flags:?})")
        }
        "MPOL_BIND" | "MPOL_INTERLEAVE" | "MPOL_PREFERRED_MANY" | "MPOL_WEIGHTED_INTERLEAVE"
            if nodemask.is_empty() =>
        {
            crate::bail!("linux.memoryPolicy.nodes: {name} needs at least one node")
        }
        _ => {}
    }
    if flags.contains(&"MPOL_F_STATIC_NODES") && flags.contains(&"MPOL_F_RELATIVE_NODES") {
        crate::bail!(
            "linux.memoryPolicy.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other"
        );
    }
    Ok(Some(Policy {
        mode_name: name,
        mode,
        nodemask,
        nodes: nodes.to_string(),
    }))
}

/// Set the policy for this (single-threaded) process: the init, just
/// before the process is started.
pub fn apply(p: &Policy) -> Result<()> {
    sys::set_mempolicy(p.mode, &p.nodemask).with_context(|| {
        format!(
            "linux.memoryPolicy: set_mempolicy({}, nodes {:?})",
            p.mode_name, p.nodes
        )
    })
}

/// A config that did not parse: when the cause is in `linux.memoryPolicy`
/// (a mode or flag the spec does not name), the message naming the field;
/// serde's own names neither the field nor the accepted values' meaning.
pub fn explain_parse_error(raw: &Value) -> Option<String> {
    let mp = raw.get("linux")?.get("memoryPolicy")?;
    match mp.get("mode") {
        None => return Some("linux.memoryPolicy.mode: required".into()),
        Some(Value::String(m)) if !MODES.iter().any(|(n, _)| n == m) => {
            return Some(format!(
                "linux.memoryPolicy.mode: unknown mode {m:?} (known: {})",
                names(MODES).join(", ")
            ))
        }
        Some(Value::String(_)) => {}
        Some(other) => return Some(format!("linux.memoryPolicy.mode: not a string: {other}")),
    }
    if let Some(flags) = mp.get("flags") {
        let Some(list) = flags.as_array() else {
            return Some(format!("linux.memoryPolicy.flags: not an array: {flags}"));
        };
        for (i, f) in list.iter().enumerate() {
            if !f
                .as_str()
                .is_some_and(|f| FLAGS.iter().any(|(n, _)| *n == f))
            {
                return Some(format!(
                    "linux.memoryPolicy.flags[{i}]: unknown flag {f} (known: {})",
                    names(FLAGS).join(", ")
                ));
            }
        }
    }
    match mp.get("nodes") {
        Some(n) if !n.is_string() && !n.is_null() => {
            Some(format!("linux.memoryPolicy.nodes: not a string: {n}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lists() {
        assert_eq!(parse_nodes("0").unwrap(), vec![1]);
        assert_eq!(parse_nodes("0-2,5").unwrap(), vec![0b100111]);
        assert_eq!(parse_nodes("64").unwrap(), vec![0, 1]);
        for bad in ["", "a", "3-1", "0,,1", "5000", "-1"] {
            assert!(parse_nodes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kernel_values() {
        assert_eq!(value_of(MODES, "MPOL_BIND"), 2);
        assert_eq!(value_of(FLAGS, "MPOL_F_STATIC_NODES"), 0x8000);
    }

    #[test]
    fn unknown_mode_named() {
        let v = serde_json::json!({"linux": {"memoryPolicy": {"mode": "MPOL_NOPE"}}});
        let m = explain_parse_error(&v).unwrap();
        assert!(
            m.starts_with("linux.memoryPolicy.mode: unknown mode"),
            "{m}"
        );
        let v =
            serde_json::json!({"linux": {"memoryPolicy": {"mode": "MPOL_BIND", "flags": ["X"]}}});
        let m = explain_parse_error(&v).unwrap();
        assert!(m.starts_with("linux.memoryPolicy.flags[0]"), "{m}");
    }
}
