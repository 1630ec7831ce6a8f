//! Two behaviours containerd's shim relies on: `start` of a process that
//! ends at once succeeds (its exit and reaping race with `start`), and
//! `kill --all` of a stopped container still signals what is left in its
//! cgroup (containers without a pid namespace of their own).

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Bundle, Runtime};
use serde_json::json;

/// Reap `pid` (a container init reparented to us) as soon as it exits, the
/// way a shim does.
fn reap_when_done(pid: i32) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // SAFETY: blocking wait for one pid of ours.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    })
}

fn strace() -> Option<&'static str> {
    ["/usr/bin/strace", "/bin/strace"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

#[test]
fn start_succeeds_when_the_process_exits_and_is_reaped_before_start_is_done() {
    let strace = strace().expect("strace (make deps)");
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/echo", "ran"]);
    let out_file = b.dir.join("out");
    rt.created.borrow_mut().push("t-start-race".into());
    let st = rt
        .cmd(&[
            "create",
            "--bundle",
            b.dir.to_str().unwrap(),
            "t-start-race",
        ])
        .stdout(std::fs::File::create(&out_file).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    let pid = rt.state("t-start-race")["pid"].as_i64().unwrap() as i32;
    let reaper = reap_when_done(pid);
    // Every pidfd_open of `start` is held back 300 ms: long enough for the
    // released process to run, exit and be reaped if `start` let it go
    // before taking its pidfd.
    let out = Command::new(strace)
        .args(["-f", "-o", "/dev/null", "-e", "trace=pidfd_open"])
        .args(["-e", "inject=pidfd_open:delay_enter=300000"])
        .arg(&rt.bin)
        .arg("--root")
        .arg(&rt.root)
        .args(["start", "t-start-race"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "start failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    reaper.join().unwrap();
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "ran\n");
    rt.ok(&["delete", "t-start-race"]);
}

#[test]
fn two_hundred_short_lived_starts_never_fail() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/true"]);
    let bundle = b.dir.to_str().unwrap().to_string();
    let failures = AtomicUsize::new(0);
    let mut errors = std::sync::Mutex::new(Vec::new());
    for round in 0..25 {
        let ids: Vec<String> = (0..8).map(|i| format!("t-short-{round}-{i}")).collect();
        let mut reapers = Vec::new();
        for id in &ids {
            rt.ok(&["create", "--bundle", &bundle, id]);
            let pid = rt.state(id)["pid"].as_i64().unwrap() as i32;
            reapers.push(reap_when_done(pid));
        }
        std::thread::scope(|s| {
            for id in &ids {
                let (failures, errors) = (&failures, &errors);
                let (bin, root) = (rt.bin.clone(), rt.root.clone());
                s.spawn(move || {
                    let out = Command::new(bin)
                        .arg("--root")
                        .arg(root)
                        .args(["start", id])
                        .output()
                        .unwrap();
                    if !out.status.success() {
                        failures.fetch_add(1, Ordering::SeqCst);
                        errors
                            .lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&out.stderr).into_owned());
                    }
                });
            }
        });
        for r in reapers {
            r.join().unwrap();
        }
        for id in &ids {
            rt.ok(&["delete", "--force", id]);
        }
    }
    let errors = errors.get_mut().unwrap();
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "failed starts: {errors:?}"
    );
}

#[test]
fn kill_all_of_a_stopped_container_kills_what_is_left_in_its_cgroup() {
    let rt = Runtime::berth();
    // No pid namespace of its own (docker --pid host): the init leaves two
    // children behind when it exits.
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "sleep 1000 & echo $!; sleep 1000 & echo $!",
    ]);
    b.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
        s["linux"]["cgroupsPath"] = json!(common::unique("berth-killall"));
    });
    let out_file = b.dir.join("out");
    rt.created.borrow_mut().push("t-killall".into());
    let st = rt
        .cmd(&[
            "run",
            "-d",
            "--bundle",
            b.dir.to_str().unwrap(),
            "t-killall",
        ])
        .stdout(std::fs::File::create(&out_file).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    rt.wait_status("t-killall", "stopped");
    let mut children: Vec<i32> = Vec::new();
    for _ in 0..200 {
        children = std::fs::read_to_string(&out_file)
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if children.len() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(children.len(), 2);
    for c in &children {
        assert!(common::exists(std::path::Path::new(&format!("/proc/{c}"))));
    }
    rt.ok(&["kill", "--all", "t-killall", "KILL"]);
    for c in &children {
        // SAFETY: blocking wait for a reparented child of ours.
        let r = unsafe { libc::waitpid(*c, std::ptr::null_mut(), 0) };
        assert_eq!(r, *c, "child {c} was not ours to reap");
    }
    // Without --all a stopped container still cannot be signalled.
    let err = rt.fails(&["kill", "t-killall", "KILL"]);
    assert!(err.contains("container not running"), "{err}");
    rt.ok(&["delete", "t-killall"]);
}

#[test]
fn delete_of_a_stopped_container_kills_what_is_left_in_its_cgroup() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/sh", "-c", "sleep 1000 & echo $!"]);
    b.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    });
    let out_file = b.dir.join("out");
    rt.created.borrow_mut().push("t-delete-left".into());
    let st = rt
        .cmd(&[
            "run",
            "-d",
            "--bundle",
            b.dir.to_str().unwrap(),
            "t-delete-left",
        ])
        .stdout(std::fs::File::create(&out_file).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    rt.wait_status("t-delete-left", "stopped");
    let mut child = 0;
    for _ in 0..200 {
        if let Ok(c) = std::fs::read_to_string(&out_file).unwrap().trim().parse() {
            child = c;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(child > 0);
    rt.ok(&["delete", "t-delete-left"]);
    // SAFETY: blocking wait for a reparented child of ours.
    let reaped = unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
    assert_eq!(reaped, child);
}
