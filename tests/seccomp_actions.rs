//! Every seccomp action and flag in a container: a busybox bundle whose
//! process (the static probe, examples/seccomp_probe.rs) makes a mkdir
//! that a rule catches; the test observes the exit status, the signal,
//! the errno, the tracer's event, the kernel's audit log, or the flags
//! berth passes to seccomp(2) (under strace).

mod common;
mod seccomp_common;

use std::path::Path;
use std::process::Stdio;

use common::{example, Bundle, Runtime};
use seccomp_common::Listener;
use serde_json::{json, Value};

/// A bundle running the probe (as `/NAME`) with `seccomp`.
fn probe_bundle(name: &str, args: &[&str], seccomp: Value) -> Bundle {
    let exe = format!("/{name}");
    let mut full = vec![exe.as_str()];
    full.extend_from_slice(args);
    let mut b = Bundle::new(&full);
    std::fs::copy(example("seccomp_probe"), b.rootfs().join(name)).unwrap();
    b.edit(|s| {
        s["linux"]["seccomp"] = seccomp;
        // No core dumps for the SIGSYS deaths.
        s["process"]["rlimits"] = json!([{"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]);
    });
    b
}

/// A profile allowing everything but mkdir, which gets `action`.
fn on_mkdir(action: &str, extra: Value) -> Value {
    let mut rule = json!({"names": ["mkdir"], "action": action});
    if let (Some(r), Some(e)) = (rule.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})
}

fn run(b: &Bundle, id: &str) -> (i32, String, String) {
    Runtime::berth().run(b, id)
}

const SIGSYS_EXIT: i32 = 128 + libc::SIGSYS;

#[test]
fn errno_returns_errno_ret_to_the_process() {
    let b = probe_bundle(
        "probe",
        &["mkdir", "/dev/shm/e"],
        on_mkdir("SCMP_ACT_ERRNO", json!({"errnoRet": 18})),
    );
    let (code, out, err) = run(&b, "act-errno");
    assert_eq!((code, out.trim()), (0, "errno 18"), "{err}");
}

/// The Docker-shaped default allow list (containers-common's profile).
fn docker_allow_list() -> Vec<String> {
    let p: Value =
        serde_json::from_slice(&std::fs::read("/usr/share/containers/seccomp.json").expect(
            "/usr/share/containers/seccomp.json (golang-github-containers-common, make deps)",
        ))
        .unwrap();
    p["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["action"] == "SCMP_ACT_ALLOW" && r["args"].as_array().is_none_or(|a| a.is_empty())
        })
        .filter(|r| r["includes"].as_object().is_none_or(|o| o.is_empty()))
        .max_by_key(|r| r["names"].as_array().map_or(0, |n| n.len()))
        .unwrap()["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn allow_rules_open_a_default_deny_profile() {
    let mut names = docker_allow_list();
    names.retain(|n| n != "mkdir");
    // The profile allows this one for amd64 only (an `includes` rule).
    names.push("arch_prctl".into());
    let deny = |allow_mkdir: bool| {
        let mut rules = vec![json!({"names": names, "action": "SCMP_ACT_ALLOW"})];
        if allow_mkdir {
            rules.push(json!({"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}));
        }
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules})
    };
    let b = probe_bundle("probe", &["mkdir", "/dev/shm/a"], deny(false));
    let (code, out, err) = run(&b, "act-deny");
    assert_eq!((code, out.trim()), (0, "errno 1"), "{err}");
    let b = probe_bundle("probe", &["mkdir", "/dev/shm/a"], deny(true));
    let (code, out, err) = run(&b, "act-allow");
    assert_eq!((code, out.trim()), (0, "ok"), "{err}");
}

#[test]
fn kill_process_ends_the_whole_process_with_sigsys() {
    let b = probe_bundle(
        "probe",
        &["thread", "/dev/shm/k"],
        on_mkdir("SCMP_ACT_KILL_PROCESS", json!({})),
    );
    let (code, out, err) = run(&b, "act-kill-process");
    assert_eq!(code, SIGSYS_EXIT, "{out}{err}");
    assert!(!out.contains("thread"), "{out}");
}

#[test]
fn kill_thread_and_kill_end_only_the_calling_thread() {
    for action in ["SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL"] {
        let b = probe_bundle(
            "probe",
            &["thread", "/dev/shm/k"],
            on_mkdir(action, json!({})),
        );
        let (code, out, err) = run(&b, "act-kill-thread");
        assert_eq!((code, out.trim()), (0, "thread killed"), "{action}: {err}");
    }
}

#[test]
fn trap_sends_sigsys_naming_the_syscall() {
    let b = probe_bundle(
        "probe",
        &["trap", "/dev/shm/t"],
        on_mkdir("SCMP_ACT_TRAP", json!({})),
    );
    let (code, out, err) = run(&b, "act-trap");
    assert_eq!(
        (code, out.trim()),
        (
            0,
            format!("sigsys nr={} arch=c000003e data=0", libc::SYS_mkdir).as_str()
        ),
        "{err}"
    );
    // Without a handler, SIGSYS ends the process.
    let b = probe_bundle(
        "probe",
        &["mkdir", "/dev/shm/t"],
        on_mkdir("SCMP_ACT_TRAP", json!({})),
    );
    let (code, out, err) = run(&b, "act-trap-default");
    assert_eq!(code, SIGSYS_EXIT, "{out}{err}");
}

#[test]
fn trace_reaches_a_tracer_with_errno_ret_and_is_enosys_without_one() {
    let profile = on_mkdir("SCMP_ACT_TRACE", json!({"errnoRet": 77}));
    let b = probe_bundle("probe", &["trace", "/dev/shm/traced"], profile.clone());
    let (code, out, err) = run(&b, "act-trace");
    // The tracer sees the rule's data, then lets the syscall run.
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["event data=77", "tracee ok"],
        "{err}"
    );
    let b = probe_bundle("probe", &["mkdir", "/dev/shm/untraced"], profile);
    let (code, out, err) = run(&b, "act-trace-none");
    assert_eq!((code, out.trim()), (0, "errno 38"), "{err}");
}

/// Kernel log lines of seccomp audit records (type=1326) for `comm`.
fn audit_lines(comm: &str) -> Vec<String> {
    let out = std::process::Command::new("dmesg").output().expect("dmesg");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("type=1326") && l.contains(&format!("comm=\"{comm}\"")))
        .map(str::to_string)
        .collect()
}

/// Runs the probe under `seccomp` as a process with a unique name and
/// returns its audit records with `code`. The kernel rate-limits audit
/// lines it prints (no auditd here), and other tests make them too: a
/// missing line is tried again, a few times, with a new name.
fn logged(tag: &str, seccomp: Value, code: &str, want_out: &str) -> Vec<String> {
    for attempt in 0..5 {
        // comm keeps 15 bytes: short, unique per test, process and try.
        let name = format!("{tag}{}x{attempt}", std::process::id());
        let b = probe_bundle(&name, &["mkdir", "/dev/shm/l"], seccomp.clone());
        let (rc, out, err) = run(&b, "act-log");
        assert_eq!((rc, out.trim()), (0, want_out), "{err}");
        let lines: Vec<String> = audit_lines(&name)
            .into_iter()
            .filter(|l| l.contains(&format!("code={code}")))
            .collect();
        if !lines.is_empty() {
            return lines;
        }
        if attempt < 4 {
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
    }
    Vec::new()
}

#[test]
fn log_allows_and_the_kernel_logs_it() {
    if !Path::new("/proc/sys/kernel/seccomp/actions_logged").exists()
        || !std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_logged")
            .unwrap_or_default()
            .contains("log")
    {
        eprintln!("skipped: this kernel does not log SECCOMP_RET_LOG (actions_logged)");
        return;
    }
    let lines = logged(
        "pl",
        on_mkdir("SCMP_ACT_LOG", json!({})),
        "0x7ffc0000",
        "ok",
    );
    assert!(!lines.is_empty(), "no audit record of the logged mkdir");
    assert!(
        lines[0].contains(&format!("syscall={}", libc::SYS_mkdir)),
        "{lines:?}"
    );
}

#[test]
fn flag_log_logs_errno_actions_too() {
    let mut profile = on_mkdir("SCMP_ACT_ERRNO", json!({"errnoRet": 18}));
    profile["flags"] = json!(["SECCOMP_FILTER_FLAG_LOG"]);
    // The audit record carries the action, not its data.
    let lines = logged("pf", profile, "0x50000", "errno 18");
    assert!(
        !lines.is_empty(),
        "no audit record of the errno'd mkdir with SECCOMP_FILTER_FLAG_LOG"
    );
}

/// The seccomp(2) calls `berth run` makes for `b` (strace -f).
fn traced_seccomp_calls(b: &Bundle, id: &str) -> Vec<String> {
    let rt = Runtime::berth();
    let log = b.dir.join("strace.log");
    rt.created.borrow_mut().push(id.to_string());
    let status = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=seccomp", "-o"])
        .arg(&log)
        .arg(&rt.bin)
        .arg("--root")
        .arg(&rt.root)
        .args(["run", "--bundle", b.dir.to_str().unwrap(), id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("strace (make deps)");
    assert!(status.success(), "berth run under strace failed");
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("SECCOMP_SET_MODE_FILTER"))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_flag_reaches_seccomp_2() {
    let l = Listener::start("flags");
    let flagged = |flags: &[&str], notify: bool| {
        let mut p = if notify {
            l.profile(&["mkdir"], "")
        } else {
            on_mkdir("SCMP_ACT_ERRNO", json!({"errnoRet": 18}))
        };
        p["flags"] = json!(flags);
        p
    };
    let cases: [(&[&str], bool, &str); 5] = [
        (&["SECCOMP_FILTER_FLAG_LOG"], false, "SECCOMP_FILTER_FLAG_LOG,"),
        (&["SECCOMP_FILTER_FLAG_SPEC_ALLOW"], false, "SECCOMP_FILTER_FLAG_SPEC_ALLOW,"),
        (&["SECCOMP_FILTER_FLAG_TSYNC"], false, "SECCOMP_FILTER_FLAG_TSYNC,"),
        (
            &["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"],
            true,
            "SECCOMP_FILTER_FLAG_TSYNC|SECCOMP_FILTER_FLAG_NEW_LISTENER|SECCOMP_FILTER_FLAG_TSYNC_ESRCH|SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,",
        ),
        // Without a listener WAIT_KILLABLE_RECV is dropped (as libseccomp
        // does; the kernel refuses it alone).
        (&["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"], false, "SECCOMP_SET_MODE_FILTER, 0,"),
    ];
    for (flags, notify, want) in cases {
        let b = probe_bundle("probe", &["mkdir", "/dev/shm/f"], flagged(flags, notify));
        let calls = traced_seccomp_calls(&b, "act-flags");
        assert_eq!(calls.len(), 1, "{flags:?}: {calls:?}");
        assert!(calls[0].contains(want), "{flags:?}: {}", calls[0]);
    }
}

#[test]
fn spec_allow_leaves_speculative_store_bypass_alone() {
    let vuln = std::fs::read_to_string("/sys/devices/system/cpu/vulnerabilities/spec_store_bypass")
        .unwrap_or_default();
    if !vuln.contains("seccomp") {
        eprintln!(
            "skipped: spec_store_bypass is {:?} here, seccomp does not force its mitigation (the flag itself is checked in every_flag_reaches_seccomp_2)",
            vuln.trim()
        );
        return;
    }
    let status = |flags: Value| {
        let mut p = on_mkdir("SCMP_ACT_ERRNO", json!({}));
        p["flags"] = flags;
        let mut b = Bundle::new(&["grep", "Speculation_Store_Bypass", "/proc/self/status"]);
        b.edit(|s| s["linux"]["seccomp"] = p);
        run(&b, "act-ssb").1
    };
    let forced = status(json!([]));
    let spared = status(json!(["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]));
    assert!(forced.contains("force mitigated"), "{forced}");
    assert!(!spared.contains("force mitigated"), "{spared}");
}

#[test]
fn tsync_puts_the_filter_on_every_thread() {
    let dir = std::env::temp_dir().join(common::unique("berth-tsync"));
    std::fs::create_dir_all(&dir).unwrap();
    let probe = |flags: Value, name: &str| {
        let mut p = on_mkdir("SCMP_ACT_ERRNO", json!({"errnoRet": 18}));
        p["flags"] = flags;
        let out = std::process::Command::new(example("seccomp_probe"))
            .arg("tsync")
            .arg(p.to_string())
            .arg(dir.join(name))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // The other thread was running before the install: only TSYNC gives
    // it the filter.
    assert_eq!(
        probe(json!(["SECCOMP_FILTER_FLAG_TSYNC"]), "synced"),
        "thread errno 18"
    );
    assert_eq!(probe(json!([]), "unsynced"), "thread ok");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `usr1` probe under notify, its mkdir held by the listener and
/// signalled while it waits: its last line and whether SIGUSR1 stayed
/// pending, the syscall waiting, until the listener answered.
fn signal_a_held_notification(flags: Value) -> String {
    let mut l = Listener::start("killable");
    let mut p = l.profile(&["mkdir"], "/dev/shm/held=hold");
    p["flags"] = flags;
    let b = probe_bundle("probe", &["usr1", "/dev/shm/held"], p);
    let rt = Runtime::berth();
    rt.created.borrow_mut().push("act-killable".into());
    let out_path = b.dir.join("out");
    let mut child = rt
        .cmd(&["run", "--bundle", b.dir.to_str().unwrap(), "act-killable"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = l.wait_log("held pid=");
    let pid: i32 = log
        .split("held pid=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    // SAFETY: kill(2) of the container's process, by the pid the
    // listener saw (the probe is waiting in mkdir).
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    // Either the signal interrupts the wait (the probe finishes on its
    // own), or it stays pending (for good: 20 looks in a row) until the
    // listener answers.
    let mut pending_looks = 0;
    let mut exited = false;
    for _ in 0..1000 {
        if let Ok(Some(_)) = child.try_wait() {
            exited = true;
            break;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let mask = |key: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or(0)
        };
        if (mask("SigPnd:") | mask("ShdPnd:")) & (1 << (libc::SIGUSR1 - 1)) != 0 {
            pending_looks += 1;
            if pending_looks == 20 {
                break;
            }
        } else {
            pending_looks = 0;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pending = !exited && pending_looks == 20;
    l.release();
    let status = child.wait().unwrap();
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(status.success(), "{out}");
    format!(
        "{} pending={pending}",
        out.lines().last().unwrap_or_default()
    )
}

#[test]
fn wait_killable_recv_keeps_a_received_notification_from_signals() {
    // Without the flag the handled signal interrupts the wait: EINTR.
    assert_eq!(
        signal_a_held_notification(json!([])),
        format!("errno {} handled=1 pending=false", libc::EINTR)
    );
    // With it, once the listener has the notification only fatal signals
    // end the wait: SIGUSR1 stays pending, the listener's answer stands.
    assert_eq!(
        signal_a_held_notification(json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])),
        "ok handled=1 pending=true"
    );
}
