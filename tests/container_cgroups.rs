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

/// Every key path of a JSON value (arrays: their first element's shape).
fn shape(v: &serde_json::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{prefix}.{k}");
                out.insert(p.clone());
                shape(x, &p, out);
            }
        }
        serde_json::Value::Array(a) => {
            if let Some(x) = a.first() {
                shape(x, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

const WORKLOAD: &str = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=20 2>/dev/null; \
                        (while true; do :; done) & sleep 1000 & wait";

fn events_stats(rt: &Runtime, id: &str) -> serde_json::Value {
    serde_json::from_str(rt.ok(&["events", "--stats", id]).trim()).unwrap()
}

#[test]
fn events_stats_has_runc_shape_and_real_values() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/sh", "-c", WORKLOAD]);
    let id = common::unique("t-ev");
    rt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    // Wait until the workload is in place: three processes, 20 MB in shm.
    let mut ev = events_stats(&rt, &id);
    for _ in 0..300 {
        if ev["data"]["pids"]["current"] == 3
            && ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) >= 20 << 20
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        ev = events_stats(&rt, &id);
    }
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    assert_eq!(
        ev["data"]["pids"]["current"], 3,
        "sh, the spinner and sleep"
    );
    let usage = ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap();
    assert!(
        usage >= 20 << 20,
        "memory usage {usage} below the 20 MiB the container wrote to shm"
    );
    let cpu1 = ev["data"]["cpu"]["usage"]["total"].as_u64().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let cpu2 = events_stats(&rt, &id)["data"]["cpu"]["usage"]["total"]
        .as_u64()
        .unwrap();
    assert!(
        cpu2 > cpu1,
        "cpu usage grows while the container spins: {cpu1} -> {cpu2}"
    );

    // The same bundle under runc: the same JSON shape.
    if std::path::Path::new("/usr/sbin/runc").exists() {
        let runc = Runtime::new("/usr/sbin/runc");
        let mut rb = Bundle::new(&["/bin/sh", "-c", WORKLOAD]);
        rb.edit(|s| s["ociVersion"] = json!("1.1.0"));
        runc.ok(&["run", "-d", "--bundle", rb.dir.to_str().unwrap(), "ev-runc"]);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let r: serde_json::Value =
            serde_json::from_str(runc.ok(&["events", "--stats", "ev-runc"]).trim()).unwrap();
        let (mut a, mut bb) = (Default::default(), Default::default());
        shape(&ev, "", &mut a);
        shape(&r, "", &mut bb);
        let missing: Vec<_> = bb.difference(&a).collect();
        assert!(
            missing.is_empty(),
            "keys runc prints that berth does not: {missing:?}"
        );
        let rpid = runc.state("ev-runc")["pid"].as_i64().unwrap() as i32;
        runc.ok(&["delete", "--force", "ev-runc"]);
        common::reap(rpid);
    } else {
        eprintln!("runc not installed: shape comparison skipped");
    }
    rt.ok(&["delete", "--force", &id]);
    common::reap(pid);
}

#[test]
fn pause_stops_progress_and_resume_restores_it() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /out/n; sleep 0.01; done",
    ]);
    let out = b.dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    b.edit(|s| s["mounts"].as_array_mut().unwrap().push(json!({"destination": "/out", "type": "bind", "source": out.to_str().unwrap(), "options": ["rbind", "rw"]})));
    let id = common::unique("t-pause");
    rt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let read = || {
        std::fs::read_to_string(out.join("n"))
            .unwrap_or_default()
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    for _ in 0..300 {
        if read() > 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    let frozen = read();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(read(), frozen, "a paused container made progress");
    let err = rt.fails(&["pause", &id]);
    assert!(err.contains("container not running"), "{err}");
    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    for _ in 0..300 {
        if read() > frozen {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(read() > frozen, "no progress after resume");
    assert!(rt.fails(&["resume", &id]).contains("container not paused"));
    rt.ok(&["delete", "--force", &id]);
    common::reap(pid);
}

#[test]
fn update_changes_a_live_pids_limit_and_oom_is_reported() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/sh", "-c", "sleep 1000"]);
    let id = common::unique("t-update");
    rt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let pids_dir = cgroup_dirs(pid as i64)
        .into_iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/pids"))
        .unwrap();
    rt.ok(&["update", "--pids-limit", "7", &id]);
    assert_eq!(
        std::fs::read_to_string(pids_dir.join("pids.max"))
            .unwrap()
            .trim(),
        "7"
    );
    // containerd's way: a LinuxResources document on stdin.
    let mut child = rt
        .cmd(&["update", "-r", "-", &id])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"pids":{"limit":9}}"#)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(pids_dir.join("pids.max"))
            .unwrap()
            .trim(),
        "9"
    );
    rt.ok(&["delete", "--force", &id]);
    common::reap(pid);

    // A memory-limited container that allocates past its limit is OOM-killed.
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "sleep 0.3; dd if=/dev/zero of=/dev/shm/big bs=1M count=64 2>/dev/null; sleep 0.5",
    ]);
    b.edit(|s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 16 << 20, "swap": 16 << 20});
        s["mounts"][3]["options"] = json!(["nosuid", "noexec", "nodev", "mode=1777", "size=128m"]);
    });
    let id = common::unique("t-oom");
    rt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let out = rt
        .cmd(&["events", "--interval", "100ms", &id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.contains("\"type\":\"oom\"")),
        "no oom event in:\n{text}"
    );
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    common::reap(pid);
}
