//! ================= KNOWN DIFFERENCES: berth vs runc 1.1.5 =================
//!
//! The one table of every difference the differential test expects today.
//! Each row selects corpus entries (`when`) and names the aspects of the
//! comparison that differ there (`aspects`; a trailing `*` matches a
//! prefix). The test fails when
//! - a difference appears that no row explains (new), or
//! - a row selects an entry where one of its aspects does not differ
//!   (stale: it was fixed, so shrink the table).
//!
//! Kinds: `BerthBug` (to be fixed in berth), `Deliberate` (berth differs on
//! purpose, with the reason), `RuncBug` (runc 1.1.5 is wrong, berth is
//! right).

use super::corpus::{Entry, Scenario};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    BerthBug,
    Deliberate,
    RuncBug,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BerthBug => "berth bug",
            Kind::Deliberate => "deliberate deviation",
            Kind::RuncBug => "runc bug",
        }
    }
}

pub struct Known {
    pub when: fn(&Entry) -> bool,
    pub aspects: &'static [&'static str],
    pub kind: Kind,
    pub field: &'static str,
    pub runc: &'static str,
    pub berth: &'static str,
}

/// Whether an aspect pattern of the table (`mount:*`) matches an aspect.
pub fn matches(pattern: &str, aspect: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => aspect.starts_with(prefix),
        None => aspect == pattern,
    }
}

// ---- selectors used by the table ----

#[allow(dead_code)]
fn var(e: &Entry, group: &str, name: &str) -> bool {
    e.group == group && e.variation == name
}

#[allow(dead_code)]
fn is_exec(e: &Entry) -> bool {
    matches!(e.scenario, Scenario::Exec { .. })
}

#[allow(dead_code)]
fn env_has(e: &Entry, key: &str) -> bool {
    e.config["process"]["env"]
        .as_array()
        .map(|a| {
            a.iter().any(|v| {
                v.as_str()
                    .map(|s| s.starts_with(&format!("{key}=")))
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false)
}

#[allow(dead_code)]
fn has_mount_type(c: &Value, t: &str) -> bool {
    c["mounts"]
        .as_array()
        .map(|a| a.iter().any(|m| m["type"] == t))
        .unwrap_or(false)
}

/// The table. Keep one row per distinct cause.
pub const KNOWN: &[Known] = &[];
