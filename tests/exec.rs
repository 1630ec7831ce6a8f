//! `exec`: a new process inside a running container, in its namespaces and
//! cgroup, as the configured user.

mod common;

use common::{Bundle, Runtime};

fn running(rt: &Runtime, id: &str) -> (Bundle, i32) {
    let mut b = Bundle::new(&["/bin/sleep", "1000"]);
    b.edit(|s| s["hostname"] = serde_json::json!("exec-host"));
    rt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), id]);
    let pid = rt.state(id)["pid"].as_i64().unwrap() as i32;
    (b, pid)
}

#[test]
fn exec_joins_the_containers_namespaces_and_cgroup() {
    let rt = Runtime::berth();
    let (_b, pid) = running(&rt, "t-exec");
    let out = rt.ok(&[
        "exec",
        "t-exec",
        "/bin/sh",
        "-c",
        "hostname; echo $$; cat /proc/self/cgroup | grep pids",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "exec-host");
    assert_ne!(lines[1], "1", "not the init");
    let init_cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let init_pids = init_cg.lines().find(|l| l.contains(":pids:")).unwrap();
    // Inside the container's cgroup namespace the path reads as "/".
    assert!(
        lines[2].ends_with(":/") || init_pids.ends_with(lines[2].rsplit(':').next().unwrap()),
        "{out}"
    );
    for ns in ["pid", "mnt", "uts", "ipc", "net"] {
        let inner = rt.ok(&[
            "exec",
            "t-exec",
            "/bin/readlink",
            &format!("/proc/self/ns/{ns}"),
        ]);
        let outer = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(inner.trim(), outer.to_str().unwrap(), "{ns}");
    }
    rt.ok(&["delete", "--force", "t-exec"]);
    common::reap(pid);
}

#[test]
fn exec_flags_user_cwd_env_and_exit_code() {
    let rt = Runtime::berth();
    let (_b, pid) = running(&rt, "t-exec2");
    let out = rt.run_cmd(&[
        "exec",
        "-u",
        "1000:1001",
        "--cwd",
        "/tmp",
        "-e",
        "FOO=bar",
        "t-exec2",
        "/bin/sh",
        "-c",
        "id -u; id -g; pwd; echo $FOO; exit 9",
    ]);
    assert_eq!(out.status.code(), Some(9));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1000\n1001\n/tmp\nbar\n"
    );
    let err = rt.fails(&["exec", "t-exec2", "no-such-binary"]);
    assert!(err.contains("executable file not found"), "{err}");
    rt.ok(&["delete", "--force", "t-exec2"]);
    common::reap(pid);
}

#[test]
fn exec_detached_writes_pid_file_and_process_json_works() {
    let rt = Runtime::berth();
    let (b, pid) = running(&rt, "t-exec3");
    let pf = b.dir.join("exec.pid");
    rt.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        "t-exec3",
        "/bin/sleep",
        "1000",
    ]);
    let epid: i32 = std::fs::read_to_string(&pf).unwrap().parse().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{epid}")).exists());
    let ps = rt.ok(&["ps", "--format", "json", "t-exec3"]);
    let pids: Vec<i32> = serde_json::from_str(ps.trim()).unwrap();
    assert!(pids.contains(&epid) && pids.contains(&pid), "{ps}");

    let pj = b.dir.join("process.json");
    std::fs::write(&pj, r#"{"args": ["/bin/sh", "-c", "echo from-json $X"], "env": ["X=1", "PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}}"#).unwrap();
    assert_eq!(
        rt.ok(&["exec", "--process", pj.to_str().unwrap(), "t-exec3"]),
        "from-json 1\n"
    );
    // The detached process was reparented to us (the subreaper, like a
    // containerd shim): a dying pid-namespace init waits until it is reaped.
    rt.ok(&["kill", "--all", "t-exec3", "KILL"]);
    // SAFETY: blocking wait for our own (reparented) child.
    unsafe { libc::waitpid(epid, std::ptr::null_mut(), 0) };
    rt.ok(&["delete", "--force", "t-exec3"]);
    common::reap(pid);
}

#[test]
fn exec_in_stopped_container_fails() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/true"]);
    rt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), "t-exec4"]);
    rt.wait_status("t-exec4", "stopped");
    let err = rt.fails(&["exec", "t-exec4", "/bin/true"]);
    assert!(err.contains("stopped"), "{err}");
}
