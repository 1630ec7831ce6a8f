//! SCMP_ACT_NOTIFY end to end: a container (and an exec'd process) whose
//! mkdir calls a listener on the host answers (examples/seccomp_listener.rs),
//! the container process state it receives (runtime-spec), and the errors
//! when there is nobody to send the fd to.

mod common;
mod seccomp_common;

use common::{Bundle, Runtime};
use seccomp_common::Listener;
use serde_json::Value;

/// The listener's answers, by path (see the listener's docs).
const ANSWERS: &str = "/dev/shm/denied=errno:18;/dev/shm/faked=fake;/dev/shm/real=continue";

/// Tries each answer from inside and reports what it saw; also lists the
/// shell's fds, where no listener fd may be.
const SCRIPT: &str = "mkdir /dev/shm/denied; echo denied=$?; \
    mkdir /dev/shm/faked && test ! -e /dev/shm/faked && echo faked; \
    mkdir /dev/shm/real && test -d /dev/shm/real && echo real; \
    for f in /proc/$$/fd/*; do readlink $f; done; true";

fn notify_bundle(l: &Listener, nnp: bool, args: &[&str]) -> Bundle {
    let mut b = Bundle::new(args);
    b.edit(|s| {
        s["process"]["noNewPrivileges"] = nnp.into();
        s["linux"]["seccomp"] = l.profile(&["mkdir", "mkdirat"], ANSWERS);
    });
    b
}

fn check_answers(out: &str, err: &str) {
    assert!(out.contains("denied=1"), "stdout: {out}\nstderr: {err}");
    assert!(err.contains("Invalid cross-device link"), "stderr: {err}");
    assert!(out.contains("faked"), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("real"), "stdout: {out}\nstderr: {err}");
    assert!(
        !out.contains("seccomp"),
        "a listener fd leaked into the container: {out}"
    );
}

fn check_state(state: &Value, id: &str, bundle: &Bundle, pid: i64, init_pid: i64, status: &str) {
    assert_eq!(state["fds"], serde_json::json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], ANSWERS, "{state}");
    assert_eq!(state["pid"], pid, "{state}");
    assert!(
        state["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{state}"
    );
    let s = &state["state"];
    assert_eq!(s["id"], id, "{state}");
    assert_eq!(s["status"], status, "{state}");
    assert_eq!(s["pid"], init_pid, "{state}");
    let canonical = std::fs::canonicalize(&bundle.dir).unwrap();
    assert_eq!(s["bundle"], canonical.to_str().unwrap(), "{state}");
}

#[test]
fn the_listener_answers_the_containers_syscalls_with_and_without_no_new_privileges() {
    for nnp in [false, true] {
        let l = Listener::start("run");
        let b = notify_bundle(&l, nnp, &["sh", "-c", SCRIPT]);
        let rt = Runtime::berth();
        let id = format!("notify-run-{nnp}");
        let pid_file = b.dir.join("init.pid");
        let out = rt.run_cmd(&[
            "run",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--bundle",
            b.dir.to_str().unwrap(),
            &id,
        ]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "nnp={nnp}: {stdout}{stderr}");
        check_answers(&stdout, &stderr);
        let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
        // The fd reached the listener during create, before the process
        // ran: the state says "creating".
        check_state(&l.state(1), &id, &b, pid, pid, "creating");
        let log = l.log();
        for p in ["/dev/shm/denied", "/dev/shm/faked", "/dev/shm/real"] {
            assert!(log.contains(&format!("path={p}")), "nnp={nnp}: {log}");
        }
    }
}

#[test]
fn exec_sends_the_exec_processes_fd_with_the_running_state() {
    for nnp in [false, true] {
        let l = Listener::start("exec");
        let b = notify_bundle(&l, nnp, &["sleep", "1000"]);
        let rt = Runtime::berth();
        let id = format!("notify-exec-{nnp}");
        rt.ok(&["run", "--detach", "--bundle", b.dir.to_str().unwrap(), &id]);
        let init = rt.state(&id)["pid"].as_i64().unwrap();
        let pid_file = b.dir.join("exec.pid");
        let out = rt.run_cmd(&[
            "exec",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "sh",
            "-c",
            SCRIPT,
        ]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "nnp={nnp}: {stdout}{stderr}");
        check_answers(&stdout, &stderr);
        let exec_pid: i64 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_ne!(exec_pid, init);
        // Connection 1 was the init's (create), 2 the exec'd process's.
        check_state(&l.state(1), &id, &b, init, init, "creating");
        check_state(&l.state(2), &id, &b, exec_pid, init, "running");
        rt.ok(&["delete", "--force", &id]);
        common::reap(init as i32);
    }
}

#[test]
fn no_listener_fails_create_and_leaves_nothing_behind() {
    let l = Listener::start("none");
    let mut b = notify_bundle(&l, false, &["true"]);
    let missing = l.dir.join("nobody.sock");
    b.edit(|s| s["linux"]["seccomp"]["listenerPath"] = missing.to_str().unwrap().into());
    let rt = Runtime::berth();
    let err = rt.fails(&["create", "--bundle", b.dir.to_str().unwrap(), "notify-none"]);
    assert!(
        err.contains("linux.seccomp.listenerPath")
            && err.contains("nobody.sock")
            && err.contains("connect"),
        "{err}"
    );
    let err = rt.fails(&["state", "notify-none"]);
    assert!(
        err.contains("does not exist") || err.contains("not found"),
        "{err}"
    );
    // An abstract name nobody listens on fails the same way.
    b.edit(|s| s["linux"]["seccomp"]["listenerPath"] = "@berth-test-nobody-listens".into());
    let err = rt.fails(&["run", "--bundle", b.dir.to_str().unwrap(), "notify-none"]);
    assert!(err.contains("@berth-test-nobody-listens"), "{err}");
}

/// An edit of `linux.seccomp`.
type Change = fn(&mut Value);

#[test]
fn notify_configs_the_runtime_cannot_serve_are_refused_naming_the_field() {
    let l = Listener::start("bad");
    let cases: [(&str, Change, &str); 4] = [
        (
            "no listenerPath",
            |s| {
                s.as_object_mut().unwrap().remove("listenerPath");
                s.as_object_mut().unwrap().remove("listenerMetadata");
            },
            "listenerPath is not set",
        ),
        (
            "notify default",
            |s| s["defaultAction"] = "SCMP_ACT_NOTIFY".into(),
            "defaultAction: SCMP_ACT_NOTIFY cannot be the default action",
        ),
        (
            "notify sendmsg",
            |s| s["syscalls"][0]["names"] = serde_json::json!(["mkdir", "sendmsg"]),
            "SCMP_ACT_NOTIFY cannot be used for sendmsg",
        ),
        (
            "metadata alone",
            |s| {
                s.as_object_mut().unwrap().remove("listenerPath");
                s["syscalls"][0]["action"] = "SCMP_ACT_ERRNO".into();
            },
            "listenerMetadata is set but listenerPath is not",
        ),
    ];
    let rt = Runtime::berth();
    for (what, change, want) in cases {
        let mut b = notify_bundle(&l, false, &["true"]);
        b.edit(|s| change(&mut s["linux"]["seccomp"]));
        let err = rt.fails(&["create", "--bundle", b.dir.to_str().unwrap(), "notify-bad"]);
        assert!(
            err.contains("linux.seccomp") && err.contains(want),
            "{what}: {err}"
        );
    }
    // Nothing connected.
    assert!(!l.log().contains("connect"), "{}", l.log());
}

#[test]
fn a_listener_path_without_notify_rules_is_ignored() {
    let l = Listener::start("ignored");
    let mut b = notify_bundle(
        &l,
        false,
        &["sh", "-c", "mkdir /dev/shm/plain && echo made"],
    );
    b.edit(|s| {
        s["linux"]["seccomp"]["syscalls"] = serde_json::json!([]);
        s["linux"]["seccomp"]["listenerPath"] = "/nonexistent/agent.sock".into();
    });
    let (code, out, err) = Runtime::berth().run(&b, "notify-ignored");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("made"), "{out}{err}");
}
