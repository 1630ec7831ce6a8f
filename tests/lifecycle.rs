//! The runtime-spec lifecycle as runc's callers see it: exit codes, state
//! transitions, error texts callers match, pid files, and cleanup.

mod common;

use common::{exists, Bundle, Runtime};
use std::os::unix::fs::PermissionsExt;

#[test]
fn run_true_exits_zero_and_leaves_nothing() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/true"]);
    let (code, _, err) = rt.run(&b, "t-true");
    assert_eq!(code, 0, "{err}");
    assert!(!exists(&rt.root.join("t-true")), "state dir left behind");
}

#[test]
fn run_propagates_exit_status_and_signals() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/sh", "-c", "exit 42"]);
    assert_eq!(rt.run(&b, "t-exit").0, 42);
    // Without a pid namespace of its own (as pid 1 it could not SIGKILL
    // itself), the shell dies of the signal: run reports 128 + 9.
    let mut b = Bundle::new(&["/bin/sh", "-c", "kill -9 $$"]);
    b.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid")
    });
    assert_eq!(rt.run(&b, "t-sig").0, 128 + 9);
}

#[test]
fn run_prints_container_output() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/echo", "hello", "world"]);
    let (code, out, _) = rt.run(&b, "t-echo");
    assert_eq!(code, 0);
    assert_eq!(out, "hello world\n");
}

#[test]
fn create_start_kill_delete_transitions() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    let pid_file = b.dir.join("init.pid");
    rt.ok(&[
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "t-life",
    ]);
    let st = rt.state("t-life");
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], "t-life");
    assert_eq!(
        st["bundle"],
        b.dir.canonicalize().unwrap().to_str().unwrap()
    );
    // The pid file holds the decimal pid with no newline, as runc writes it.
    let pid_text = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(pid_text, st["pid"].to_string());
    assert!(!pid_text.ends_with('\n'));

    rt.ok(&["start", "t-life"]);
    assert_eq!(rt.status("t-life"), "running");
    let err = rt.fails(&["start", "t-life"]);
    assert!(
        err.contains("cannot start an already running container"),
        "{err}"
    );
    let err = rt.fails(&["delete", "t-life"]);
    assert!(err.contains("is not stopped: running"), "{err}");

    rt.ok(&["kill", "t-life", "KILL"]);
    rt.wait_status("t-life", "stopped");
    assert_eq!(rt.state("t-life")["pid"], 0);
    let err = rt.fails(&["kill", "t-life"]);
    assert!(err.contains("container not running"), "{err}");
    let err = rt.fails(&["start", "t-life"]);
    assert!(
        err.contains("cannot start a container that has stopped"),
        "{err}"
    );
    rt.ok(&["delete", "t-life"]);
    assert!(!exists(&rt.root.join("t-life")));
    let err = rt.fails(&["state", "t-life"]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn delete_of_created_container_kills_it_like_runc() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    rt.ok(&[
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        "t-delcreated",
    ]);
    let pid = rt.state("t-delcreated")["pid"].as_i64().unwrap();
    rt.ok(&["delete", "t-delcreated"]);
    common::reap(pid as i32);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "init {pid} survived delete"
    );
}

#[test]
fn delete_force_kills_running_container() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    rt.ok(&[
        "run",
        "--detach",
        "--bundle",
        b.dir.to_str().unwrap(),
        "t-force",
    ]);
    assert_eq!(rt.status("t-force"), "running");
    let pid = rt.state("t-force")["pid"].as_i64().unwrap() as i32;
    rt.ok(&["delete", "--force", "t-force"]);
    common::reap(pid);
    assert!(!exists(&rt.root.join("t-force")));
    // runc: deleting a missing container with --force succeeds.
    rt.ok(&["delete", "--force", "t-force"]);
}

#[test]
fn kill_accepts_names_with_and_without_sig_and_numbers() {
    let rt = Runtime::berth();
    // The init is PID 1 of its pid namespace: the kernel drops signals it has
    // no handler for, so the script says when its traps are in place.
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "trap 'exit 7' USR1; trap 'exit 8' HUP; touch /ready; while true; do sleep 0.05; done",
    ]);
    b.edit(|s| s["root"]["readonly"] = false.into());
    let ready = b.rootfs().join("ready");
    for (i, sig) in ["USR1", "SIGUSR1", "10"].iter().enumerate() {
        let id = format!("t-kill{i}");
        let _ = std::fs::remove_file(&ready);
        rt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
        for _ in 0..500 {
            if exists(&ready) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(exists(&ready), "{id}: the script never installed its traps");
        rt.ok(&["kill", &id, sig]);
        rt.wait_status(&id, "stopped");
        assert_eq!(rt.state(&id)["status"], "stopped");
    }
    let err = rt.fails(&["kill", "t-kill0", "NOTASIGNAL"]);
    assert!(err.contains("invalid signal"), "{err}");
}

#[test]
fn unknown_container_errors_say_does_not_exist() {
    let rt = Runtime::berth();
    for cmd in ["state", "start", "kill", "delete"] {
        let out = rt.run_cmd(&[cmd, "nope"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("container does not exist"),
            "{cmd}"
        );
    }
}

#[test]
fn ids_that_could_escape_root_are_rejected() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/true"]);
    for id in ["../escape", "a/b", "..", ".", "bad id"] {
        let err = rt.fails(&["create", "--bundle", b.dir.to_str().unwrap(), id]);
        assert!(err.contains("invalid container ID format"), "{id}: {err}");
    }
    assert!(!exists(&rt.root.parent().unwrap().join("escape")));
}

#[test]
fn duplicate_id_is_refused_and_original_untouched() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    rt.ok(&["create", "--bundle", b.dir.to_str().unwrap(), "t-dup"]);
    let err = rt.fails(&["create", "--bundle", b.dir.to_str().unwrap(), "t-dup"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(rt.status("t-dup"), "created");
}

#[test]
fn usage_errors_use_runc_exit_codes() {
    let rt = Runtime::berth();
    assert_eq!(rt.run_cmd(&["no-such-command"]).status.code(), Some(3));
    assert_eq!(
        rt.run_cmd(&["state", "--bogus", "x"]).status.code(),
        Some(1)
    );
    assert_eq!(rt.run_cmd(&["start"]).status.code(), Some(1));
    assert_eq!(rt.run_cmd(&["--version"]).status.code(), Some(0));
}

#[test]
fn malformed_config_is_a_clear_error_with_no_state_left() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/true"]);
    std::fs::write(
        b.dir.join("config.json"),
        b"{ \"ociVersion\": \"1.2.0\", \"process\": ",
    )
    .unwrap();
    let err = rt.fails(&["create", "--bundle", b.dir.to_str().unwrap(), "t-bad"]);
    assert!(err.contains("config.json"), "{err}");
    assert!(!exists(&rt.root.join("t-bad")));
}

#[test]
fn missing_executable_fails_create_not_start() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["no-such-binary"]);
    let err = rt.fails(&["create", "--bundle", b.dir.to_str().unwrap(), "t-noexe"]);
    assert!(err.contains("executable file not found in $PATH"), "{err}");
    assert!(!exists(&rt.root.join("t-noexe")));
}

#[test]
fn json_log_gets_exactly_one_error_object() {
    let rt = Runtime::berth();
    let log = std::env::temp_dir().join(common::unique("berth-log"));
    let out = rt.run_cmd(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["level"], "error");
    assert!(v["msg"]
        .as_str()
        .unwrap()
        .contains("container does not exist"));
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn concurrent_operations_on_one_id_never_corrupt_state() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    rt.ok(&["create", "--bundle", b.dir.to_str().unwrap(), "t-conc"]);
    let mut children = Vec::new();
    for i in 0..12 {
        let args: Vec<&str> = match i % 4 {
            0 => vec!["start", "t-conc"],
            1 => vec!["state", "t-conc"],
            2 => vec!["kill", "t-conc", "0"],
            _ => vec!["list"],
        };
        children.push(
            rt.cmd(&args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    for mut c in children {
        c.wait().unwrap();
    }
    // Exactly one start won; the state file is whole and the status sane.
    assert_eq!(rt.status("t-conc"), "running");
    let raw = std::fs::read(rt.root.join("t-conc/state.json")).unwrap();
    serde_json::from_slice::<serde_json::Value>(&raw).expect("state.json intact");
    rt.ok(&["delete", "--force", "t-conc"]);
}

#[test]
fn stopped_zombie_init_is_reported_stopped() {
    // A detached init that exits stays a zombie here (we are its subreaper
    // and do not reap it yet): it must read as stopped, not running.
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/true"]);
    rt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), "t-zombie"]);
    rt.wait_status("t-zombie", "stopped");
}

#[test]
fn spec_writes_default_config_and_refuses_to_overwrite() {
    let dir = std::env::temp_dir().join(common::unique("berth-spec"));
    std::fs::create_dir_all(&dir).unwrap();
    let rt = Runtime::berth();
    rt.ok(&["spec", "--bundle", dir.to_str().unwrap()]);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["root"]["path"], "rootfs");
    assert!(rt
        .fails(&["spec", "--bundle", dir.to_str().unwrap()])
        .contains("exists"));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
