//! `exec --cgroup` (runc's sub-cgroup selection): the exec'd process goes
//! into a sub-cgroup of the container's instead of the container's own.
//! `--cgroup PATH` names it for every hierarchy (the only form on cgroup
//! v2); on v1, `--cgroup CONTROLLER[,CONTROLLER...]:PATH` names it per
//! controller, and a plain PATH covers the controllers not named. The
//! sub-cgroups must exist (the runtime does not make them) and stay below
//! the container's cgroup. The result is a `Manager` whose directories are
//! the chosen ones, so exec places the process as usual (CLONE_INTO_CGROUP
//! on v2, cgroup.procs on v1).

use std::collections::BTreeMap;

use super::Manager;
use crate::{bail, Result};

/// Parsed `--cgroup` arguments: controller ("" = every other one) → path.
fn parse(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for arg in args {
        let (ctrls, path) = match arg.split_once(':') {
            Some((c, p)) => (c.split(',').map(str::trim).collect::<Vec<_>>(), p),
            None => (vec![""], arg.as_str()),
        };
        let path = path.trim_matches('/');
        if path.is_empty() {
            bail!("--cgroup {arg:?}: empty sub-cgroup path");
        }
        if path.split('/').any(|c| c == ".." || c == ".") || path.contains('\0') {
            bail!("--cgroup {arg:?}: the path must stay below the container's cgroup (no \".\" or \"..\")");
        }
        for c in ctrls {
            if c.is_empty() && arg.contains(':') {
                bail!("--cgroup {arg:?}: empty controller name");
            }
            if out.insert(c.to_string(), path.to_string()).is_some() {
                let what = if c.is_empty() { "a plain path" } else { c };
                bail!("--cgroup {arg:?}: {what} given more than once");
            }
        }
    }
    Ok(out)
}

/// The cgroups an exec'd process joins: `m` itself without `--cgroup`.
pub fn select(m: &Manager, args: &[String]) -> Result<Manager> {
    let sel = parse(args)?;
    if sel.is_empty() {
        return Ok(m.clone());
    }
    let mut out = m.clone();
    if m.is_v2() {
        if sel.len() != 1 || !sel.contains_key("") {
            bail!("--cgroup: on cgroup v2 the argument is a single sub-cgroup PATH (CONTROLLER:PATH is for cgroup v1)");
        }
        let dir = m.unified()?.join(&sel[""]);
        if !dir.is_dir() {
            bail!(
                "--cgroup {:?}: no such sub-cgroup {}",
                sel[""],
                dir.display()
            );
        }
        out.unified_dir = Some(dir);
        return Ok(out);
    }
    for c in sel.keys().filter(|c| !c.is_empty()) {
        if !m.v1_dirs.contains_key(c) {
            bail!(
                "--cgroup {c}:{}: controller {c:?} is not mounted on this host",
                sel[c]
            );
        }
    }
    let all = sel.get("");
    for (ctrl, dir) in out.v1_dirs.iter_mut() {
        if let Some(sub) = sel.get(ctrl).or(all) {
            let d = dir.join(sub);
            if !d.is_dir() {
                bail!("--cgroup: no such sub-cgroup {} ({ctrl})", d.display());
            }
            *dir = d;
        }
    }
    if let (Some(u), Some(sub)) = (out.unified_dir.as_mut(), all) {
        let d = u.join(sub);
        if !d.is_dir() {
            bail!(
                "--cgroup {sub:?}: no such sub-cgroup {} (cgroup2)",
                d.display()
            );
        }
        *u = d;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn forms() {
        let p = parse(&s(&["a/b"])).unwrap();
        assert_eq!(p[""], "a/b");
        let p = parse(&s(&["cpu,memory:x", "pids:/y/"])).unwrap();
        assert_eq!(
            (p["cpu"].as_str(), p["memory"].as_str(), p["pids"].as_str()),
            ("x", "x", "y")
        );
        for bad in [
            &["../x"][..],
            &["a/../b"],
            &[""],
            &["cpu:"],
            &[":x"],
            &["x", "y"],
            &["cpu:a", "cpu:b"],
        ] {
            assert!(parse(&s(bad)).is_err(), "{bad:?}");
        }
    }
}
