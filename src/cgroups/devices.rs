//! Device access rules, shared by the v1 (`devices.allow`/`devices.deny`)
//! and v2 (eBPF) drivers.
//!
//! The effective list is the spec's `linux.resources.devices` followed by
//! the default allow-list every runc container gets, evaluated as "the last
//! rule that matches decides; nothing matches → deny".

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::{bail, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevType {
    All,
    Char,
    Block,
}

/// One normalized rule. `None` major/minor = wildcard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub typ: DevType,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Bits: 1 = mknod, 2 = read, 4 = write (the BPF_DEVCG_ACC_* values).
    pub access: u32,
}

pub const ACC_MKNOD: u32 = 1;
pub const ACC_READ: u32 = 2;
pub const ACC_WRITE: u32 = 4;
pub const ACC_ALL: u32 = 7;

impl Rule {
    const fn allow(typ: DevType, major: Option<u32>, minor: Option<u32>, access: u32) -> Rule {
        Rule {
            allow: true,
            typ,
            major,
            minor,
            access,
        }
    }

    pub fn from_spec(d: &LinuxDeviceCgroup) -> Result<Rule> {
        let typ = match d.typ() {
            None | Some(LinuxDeviceType::A) => DevType::All,
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => DevType::Char,
            Some(LinuxDeviceType::B) => DevType::Block,
            Some(LinuxDeviceType::P) => {
                bail!("devices: type \"p\" (FIFO) cannot be controlled by the devices cgroup")
            }
        };
        let num = |v: Option<i64>, what: &str| -> Result<Option<u32>> {
            match v {
                None | Some(-1) => Ok(None),
                Some(n) if (0..=u32::MAX as i64).contains(&n) => Ok(Some(n as u32)),
                Some(n) => bail!("devices: {what} {n} is out of range"),
            }
        };
        let access = match d.access().as_deref() {
            None | Some("") => ACC_ALL,
            Some(a) => parse_access(a)?,
        };
        Ok(Rule {
            allow: d.allow(),
            typ,
            major: num(d.major(), "major")?,
            minor: num(d.minor(), "minor")?,
            access,
        })
    }

    /// The v1 `devices.allow`/`devices.deny` line, e.g. `c 1:3 rwm`.
    pub fn v1_line(&self) -> String {
        let t = match self.typ {
            DevType::All => 'a',
            DevType::Char => 'c',
            DevType::Block => 'b',
        };
        let n = |v: Option<u32>| v.map_or("*".to_string(), |n| n.to_string());
        format!(
            "{t} {}:{} {}",
            n(self.major),
            n(self.minor),
            access_str(self.access)
        )
    }

    /// Does this rule match a request for `typ major:minor` with `access`?
    pub fn matches(&self, typ: DevType, major: u32, minor: u32, access: u32) -> bool {
        (self.typ == DevType::All || self.typ == typ)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && access & !self.access == 0
    }
}

pub fn parse_access(a: &str) -> Result<u32> {
    let mut bits = 0;
    for c in a.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => bail!("devices: access {a:?} may only contain r, w and m"),
        };
    }
    Ok(bits)
}

pub fn access_str(bits: u32) -> String {
    let mut s = String::new();
    if bits & ACC_READ != 0 {
        s.push('r');
    }
    if bits & ACC_WRITE != 0 {
        s.push('w');
    }
    if bits & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

/// The devices every container may use regardless of its spec (what runc
/// grants): mknod of anything, and rwm on the standard character devices.
pub fn default_allowed() -> Vec<Rule> {
    use DevType::*;
    vec![
        Rule::allow(Char, None, None, ACC_MKNOD),
        Rule::allow(Block, None, None, ACC_MKNOD),
        Rule::allow(Char, Some(1), Some(3), ACC_ALL), // /dev/null
        Rule::allow(Char, Some(1), Some(8), ACC_ALL), // /dev/random
        Rule::allow(Char, Some(1), Some(7), ACC_ALL), // /dev/full
        Rule::allow(Char, Some(5), Some(0), ACC_ALL), // /dev/tty
        Rule::allow(Char, Some(1), Some(5), ACC_ALL), // /dev/zero
        Rule::allow(Char, Some(1), Some(9), ACC_ALL), // /dev/urandom
        Rule::allow(Char, Some(136), None, ACC_ALL),  // /dev/pts/*
        Rule::allow(Char, Some(5), Some(2), ACC_ALL), // /dev/ptmx
        Rule::allow(Char, Some(10), Some(200), ACC_ALL), // /dev/net/tun
    ]
}

/// The complete rule list for a container: the spec's rules, then the
/// defaults. Without spec rules the container starts from deny-all.
pub fn effective_rules(spec: Option<&[LinuxDeviceCgroup]>) -> Result<Vec<Rule>> {
    let mut rules = vec![Rule {
        allow: false,
        typ: DevType::All,
        major: None,
        minor: None,
        access: ACC_ALL,
    }];
    for d in spec.unwrap_or(&[]) {
        rules.push(Rule::from_spec(d)?);
    }
    rules.extend(default_allowed());
    Ok(rules)
}

/// Evaluate a rule list the way the kernel filter will (last match wins,
/// default deny). Used by tests and by the BPF generator's self-check.
pub fn allowed(rules: &[Rule], typ: DevType, major: u32, minor: u32, access: u32) -> bool {
    rules
        .iter()
        .rev()
        .find(|r| r.matches(typ, major, minor, access))
        .is_some_and(|r| r.allow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    #[test]
    fn spec_rules_are_normalized() {
        let d = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .typ(LinuxDeviceType::C)
            .major(1i64)
            .minor(3i64)
            .access("rw")
            .build()
            .unwrap();
        let r = Rule::from_spec(&d).unwrap();
        assert_eq!(r.v1_line(), "c 1:3 rw");
        assert!(!r.allow);
        let all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap();
        assert_eq!(Rule::from_spec(&all).unwrap().v1_line(), "a *:* rwm");
        let bad = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rx")
            .build()
            .unwrap();
        assert!(Rule::from_spec(&bad).is_err());
    }

    #[test]
    fn defaults_allow_null_and_deny_the_rest() {
        let rules = effective_rules(None).unwrap();
        assert!(allowed(&rules, DevType::Char, 1, 3, ACC_READ | ACC_WRITE));
        assert!(allowed(&rules, DevType::Char, 136, 7, ACC_READ));
        assert!(!allowed(&rules, DevType::Block, 8, 0, ACC_READ));
        assert!(allowed(&rules, DevType::Block, 8, 0, ACC_MKNOD));
        assert!(!allowed(&rules, DevType::Char, 1, 1, ACC_READ)); // /dev/mem
    }

    #[test]
    fn later_rules_win() {
        let spec = [LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::B)
            .major(8i64)
            .access("r")
            .build()
            .unwrap()];
        let rules = effective_rules(Some(&spec)).unwrap();
        assert!(allowed(&rules, DevType::Block, 8, 1, ACC_READ));
        assert!(!allowed(&rules, DevType::Block, 8, 1, ACC_WRITE));
    }
}
