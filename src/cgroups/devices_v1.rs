//! cgroup v1 devices controller: `devices.deny` / `devices.allow`.

use std::path::Path;

use super::devices::{DevType, Rule, ACC_ALL};
use super::fsio;
use crate::Result;

/// Apply `rules` in order. The list starts with "deny all", which in v1
/// switches the cgroup to default-deny and drops inherited exceptions; each
/// later rule then adds (allow) or removes (deny) an exception.
pub fn apply(dir: &Path, rules: &[Rule]) -> Result<()> {
    for r in rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        // The kernel reads any line starting with `a` as "everything", so a
        // type-less rule narrowed by number or access becomes a c and a b line.
        let narrowed = r.major.is_some() || r.minor.is_some() || r.access != ACC_ALL;
        if r.typ == DevType::All && narrowed {
            for typ in [DevType::Char, DevType::Block] {
                let split = Rule { typ, ..r.clone() };
                fsio::write(dir, file, &split.v1_line())?;
            }
        } else {
            fsio::write(dir, file, &r.v1_line())?;
        }
    }
    Ok(())
}
