//! Running as an unprivileged user, as runc's rootless mode does: where the
//! state lives, and whether cgroup permission errors may be ignored.
//!
//! - State: `--root` when given; else `$XDG_RUNTIME_DIR/berth` for a caller
//!   whose effective uid is not 0 and who has `XDG_RUNTIME_DIR` set; else
//!   `/run/berth`. An unprivileged caller without `XDG_RUNTIME_DIR` who
//!   cannot write `/run/berth` gets an error naming both fixes.
//! - `--rootless auto|true|false` (runc's global flag): whether the cgroups
//!   of a container without resource limits may be skipped when the caller
//!   cannot create them (not delegated). `auto` is true for an effective
//!   uid other than 0 and for root of a user namespace that does not map the
//!   whole id range (a rootless caller under e.g. rootlesskit).
//! - The user namespace of a rootless container maps the caller's own uid
//!   and gid directly; any other id goes through `newuidmap`/`newgidmap`
//!   (Debian `uidmap`), which check `/etc/subuid` and `/etc/subgid` (see
//!   `process::namespaces::write_maps`).

use std::path::{Path, PathBuf};

use nix::unistd::AccessFlags;

use crate::error::{Error, Result};
use crate::sys;

const DEFAULT_ROOT: &str = "/run/berth";

/// The state root for `explicit` (`--root`) and this caller.
pub fn state_root(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    if sys::geteuid() == 0 {
        return Ok(PathBuf::from(DEFAULT_ROOT));
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(x) if !x.is_empty() => Ok(Path::new(&x).join("berth")),
        _ if writable(Path::new(DEFAULT_ROOT)) => Ok(PathBuf::from(DEFAULT_ROOT)),
        _ => Err(Error::msg(format!(
            "rootless: {DEFAULT_ROOT} is not writable by uid {} and XDG_RUNTIME_DIR is not set: \
             set XDG_RUNTIME_DIR (state goes to $XDG_RUNTIME_DIR/berth) or pass --root DIR",
            sys::geteuid()
        ))),
    }
}

/// `dir`, or the nearest existing parent it would be created in, is
/// writable by us.
fn writable(dir: &Path) -> bool {
    let mut p = dir;
    loop {
        if p.exists() {
            return nix::unistd::access(p, AccessFlags::W_OK | AccessFlags::X_OK).is_ok();
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}

/// `--rootless`: whether cgroup permission errors may be ignored.
pub fn cgroups_rootless(flag: &str) -> Result<bool> {
    match flag {
        "true" => Ok(true),
        "false" => Ok(false),
        "auto" => Ok(sys::geteuid() != 0 || !owns_all_ids()),
        other => Err(Error::msg(format!(
            "--rootless: {other:?} is not one of auto, true, false"
        ))),
    }
}

/// Our user namespace maps the whole uid range (the initial namespace
/// does).
fn owns_all_ids() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| full_map(&m))
}

fn full_map(uid_map: &str) -> bool {
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

/// A mapping a user may write for a user namespace it creates without
/// privilege: its own id, once.
pub fn own_id_only(maps: &[oci_spec::runtime::LinuxIdMapping], own: u32) -> bool {
    matches!(maps, [m] if m.size() == 1 && m.host_id() == own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_identity_map_of_every_id_is_full() {
        assert!(full_map("         0          0 4294967295\n"));
        assert!(!full_map("0 1000 1\n"));
        assert!(!full_map("0 1000 1\n1 100000 65536\n"));
    }

    #[test]
    fn an_explicit_root_wins() {
        assert_eq!(
            state_root(Some(PathBuf::from("/x/y"))).unwrap(),
            Path::new("/x/y")
        );
    }

    #[test]
    fn rootless_flag_values() {
        assert!(cgroups_rootless("true").unwrap());
        assert!(!cgroups_rootless("false").unwrap());
        assert!(cgroups_rootless("maybe").is_err());
    }
}
