//! `exec` and cgroups: the exec'd process joins the container's cgroups
//! (on cgroup v2 born there with CLONE_INTO_CGROUP, on v1 placed by pid
//! before it runs anything of the container's), and `exec --cgroup`
//! (runc's sub-cgroup selection) puts it in a sub-cgroup instead. Runs on
//! this v1 hybrid host and in the cgroup v2 guest (guest/test-cgroup2.sh).

mod common;

use std::path::{Path, PathBuf};

use common::{Bundle, Runtime};
use serde_json::Value;

/// (controller, path) of each line of a /proc/PID/cgroup text.
fn cgroup_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next()?, f.next()?, f.next()?);
            Some((c.to_string(), p.to_string()))
        })
        .collect()
}

#[test]
fn exec_joins_the_container_cgroup_and_honours_cgroup_selection() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    let id = common::unique("exec-cg");
    rt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let state: Value =
        serde_json::from_slice(&std::fs::read(rt.root.join(&id).join("state.json")).unwrap())
            .unwrap();
    let cg = &state["cgroup"];
    let mut dirs: Vec<(String, PathBuf)> = cg["v1_dirs"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), PathBuf::from(v.as_str().unwrap())))
                .collect()
        })
        .unwrap_or_default();
    if let Some(u) = cg["unified_dir"].as_str() {
        dirs.push((String::new(), PathBuf::from(u)));
    }
    let v2 = cg["mode"] == "unified";

    // Plain exec: exactly the init's cgroups, every hierarchy.
    let exec_cg = |args: &[&str]| -> Vec<(String, String)> {
        let mut a = vec!["exec"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[&id, "/bin/cat", "/proc/self/cgroup"]);
        cgroup_lines(&rt.ok(&a))
    };
    let init = cgroup_lines(&std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap());
    let plain = exec_cg(&[]);
    // The exec'd process sees them through the container's cgroup
    // namespace: same hierarchies, each path a suffix of the init's.
    assert_eq!(plain.len(), init.len());
    for ((c1, p1), (c2, p2)) in plain.iter().zip(&init) {
        assert_eq!(c1, c2);
        assert!(
            p2.ends_with(p1.as_str()) || p1 == "/",
            "{c1}: {p1} vs init {p2}"
        );
    }

    // Sub-cgroups made by "the caller" (below the container's; delete
    // removes them with it).
    let sub_all = "sel-all";
    let make_sub = |ctrl: &str, d: &Path, sub: &str| {
        std::fs::create_dir_all(d.join(sub)).unwrap();
        if ctrl == "cpuset" {
            // A v1 cpuset starts empty: no process could join it.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                std::fs::write(d.join(sub).join(f), std::fs::read(d.join(f)).unwrap()).unwrap();
            }
        }
    };
    for (c, d) in &dirs {
        make_sub(c, d, sub_all);
    }
    let seen = exec_cg(&["--cgroup", sub_all]);
    for (c, p) in &seen {
        if dirs
            .iter()
            .any(|(k, _)| k == c || (k.is_empty() && c.is_empty()))
        {
            assert!(p.ends_with("/sel-all"), "{c}: {p}");
        }
    }
    if !v2 {
        // Per controller: only pids moves.
        let pids_dir = &dirs.iter().find(|(k, _)| k == "pids").unwrap().1;
        make_sub("pids", pids_dir, "sel-pids");
        let seen = exec_cg(&["--cgroup", "pids:sel-pids"]);
        for (c, p) in &seen {
            if c == "pids" {
                assert!(p.ends_with("/sel-pids"), "{p}");
            } else {
                assert!(!p.contains("sel-"), "{c}: {p}");
            }
        }
        let err = rt.fails(&["exec", "--cgroup", "nosuchctl:x", &id, "/bin/true"]);
        assert!(
            err.contains("controller \"nosuchctl\" is not mounted"),
            "{err}"
        );
    } else {
        let err = rt.fails(&["exec", "--cgroup", "pids:x", &id, "/bin/true"]);
        assert!(
            err.contains("on cgroup v2 the argument is a single sub-cgroup PATH"),
            "{err}"
        );
    }
    // How the process gets there, seen through pids.max at the number of
    // processes already inside (the init): a process born into the cgroup
    // (CLONE_INTO_CGROUP, v2) is a fork that limit refuses; one moved in
    // by pid (v1) is not (pids.max never refuses a migration).
    let pids_dir = dirs
        .iter()
        .find(|(k, _)| if v2 { k.is_empty() } else { k == "pids" })
        .map(|(_, d)| d.clone())
        .unwrap();
    let max = pids_dir.join("pids.max");
    let current = std::fs::read_to_string(pids_dir.join("pids.current")).unwrap();
    std::fs::write(&max, current.trim()).unwrap();
    let out = rt.run_cmd(&["exec", &id, "/bin/true"]);
    std::fs::write(&max, "max").unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if v2 {
        assert!(
            !out.status.success(),
            "not born into the container's cgroup"
        );
        assert!(err.contains("clone3 for exec"), "{err}");
    } else {
        assert!(out.status.success(), "{err}");
    }

    let err = rt.fails(&["exec", "--cgroup", "nosuch", &id, "/bin/true"]);
    assert!(err.contains("no such sub-cgroup"), "{err}");
    let err = rt.fails(&["exec", "--cgroup", "../escape", &id, "/bin/true"]);
    assert!(
        err.contains("must stay below the container's cgroup"),
        "{err}"
    );
    rt.ok(&["delete", "--force", &id]);
    common::reap(pid);
    for (_, d) in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}
