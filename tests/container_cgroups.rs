//! Containers are placed in their cgroups before user code runs, limited by
//! `linux.resources`, and their cgroups go away with them.

mod common;

use common::{Bundle, Runtime};
use serde_json::json;

fn cgroup_dirs(pid: i64) -> Vec<std::path::PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let base = if ctrls.is_empty() {
            "/sys/fs/cgroup/unified".to_string()
        } else {
            format!("/sys/fs/cgroup/{}", ctrls.trim_start_matches("name="))
        };
        if std::path::Path::new(&base).exists() {
            dirs.push(std::path::PathBuf::from(format!("{base}{path}")));
        }
    }
    dirs
}

#[test]
fn container_is_limited_in_its_own_cgroups_which_delete_removes() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/sleep", "1000"]);
    let id = common::unique("t-cg");
    b.edit(|s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
        s["linux"]["resources"]["pids"] = json!({"limit": 32});
    });
    rt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let dirs = cgroup_dirs(pid);
    let mem = dirs
        .iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/memory"))
        .expect("memory cgroup");
    assert!(mem.ends_with(&id), "{mem:?}");
    assert_eq!(
        std::fs::read_to_string(mem.join("memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        "67108864"
    );
    let pids = dirs
        .iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/pids"))
        .expect("pids cgroup");
    assert_eq!(
        std::fs::read_to_string(pids.join("pids.max"))
            .unwrap()
            .trim(),
        "32"
    );
    rt.ok(&["delete", "--force", &id]);
    common::reap(pid as i32);
    for d in &dirs {
        if d.ends_with(&id) {
            assert!(!d.exists(), "cgroup {d:?} left behind");
        }
    }
}

#[test]
fn failed_create_leaves_no_cgroup() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["no-such-binary"]);
    let id = common::unique("t-cgfail");
    b.edit(|s| s["linux"]["resources"]["pids"] = json!({"limit": 16}));
    rt.fails(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let pids_path = own
        .lines()
        .find(|l| l.contains(":pids:"))
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    // Relative cgroupsPath default: <our own pids cgroup>/<id>.
    let p = std::path::PathBuf::from(format!("/sys/fs/cgroup/pids{pids_path}")).join(&id);
    assert!(!p.exists(), "{p:?} left behind");
}

#[test]
fn kill_all_signals_every_process() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    let id = common::unique("t-killall");
    rt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let dirs = cgroup_dirs(pid);
    let pids_dir = dirs
        .iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/pids"))
        .unwrap()
        .clone();
    for _ in 0..200 {
        if std::fs::read_to_string(pids_dir.join("cgroup.procs"))
            .unwrap()
            .lines()
            .count()
            >= 3
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    rt.ok(&["kill", "--all", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    for _ in 0..200 {
        if std::fs::read_to_string(pids_dir.join("cgroup.procs"))
            .unwrap()
            .trim()
            .is_empty()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        std::fs::read_to_string(pids_dir.join("cgroup.procs"))
            .unwrap()
            .trim(),
        ""
    );
    common::reap(pid as i32);
}
