//! What the container's process gets: checked from inside the container.

mod common;

use common::{exists, Bundle, Runtime};
use serde_json::json;

/// Run `script` with busybox sh in a fresh container; (code, stdout, stderr).
fn sh(edit: impl FnOnce(&mut serde_json::Value), script: &str) -> (i32, String, String) {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/sh", "-c", script]);
    b.edit(edit);
    let id = common::unique("t-proc");
    let r = rt.run(&b, &id);
    assert!(!exists(&rt.root.join(&id)), "state left behind");
    r
}

#[test]
fn hostname_domainname_env_cwd() {
    let (code, out, err) = sh(
        |s| {
            s["hostname"] = json!("box1");
            s["domainname"] = json!("example.org");
            s["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
            s["process"]["cwd"] = json!("/tmp");
        },
        "hostname; cat /proc/sys/kernel/domainname; echo \"$FOO\"; pwd; env | wc -l",
    );
    assert_eq!(code, 0, "{err}");
    // env: PATH, FOO, and the PWD/SHLVL the shell adds.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..4],
        &["box1", "example.org", "bar baz", "/tmp"],
        "{out}"
    );
}

#[test]
fn user_groups_and_umask() {
    let (code, out, err) = sh(
        |s| {
            s["process"]["user"] =
                json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 63})
        },
        "id -u; id -g; id -G; umask",
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1001");
    let groups: Vec<&str> = lines[2].split_whitespace().collect();
    assert!(groups.contains(&"5") && groups.contains(&"7"), "{out}");
    assert_eq!(lines[3], "0077");
}

#[test]
fn capabilities_and_no_new_privileges() {
    let (code, out, err) = sh(
        |s| {
            s["process"]["capabilities"] = json!({
                "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"],
                "effective": ["CAP_KILL", "CAP_CHOWN"],
                "permitted": ["CAP_KILL", "CAP_CHOWN"],
                "inheritable": ["CAP_KILL"],
                "ambient": ["CAP_KILL"]
            });
            s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            s["process"]["noNewPrivileges"] = json!(true);
        },
        "grep -E '^(Cap|NoNewPrivs)' /proc/self/status",
    );
    assert_eq!(code, 0, "{err}");
    // CAP_CHOWN = 0, CAP_KILL = 5, CAP_NET_RAW = 13. The shell is a non-root
    // user: after exec only the ambient set survives into permitted/effective.
    assert!(out.contains("CapBnd:\t0000000000002021"), "{out}");
    assert!(out.contains("CapInh:\t0000000000000020"), "{out}");
    assert!(out.contains("CapAmb:\t0000000000000020"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000020"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
}

#[test]
fn rlimits_are_applied() {
    let (code, out, err) = sh(
        |s| {
            s["process"]["rlimits"] = json!([
                {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
            ])
        },
        "ulimit -n; ulimit -H -n; ulimit -c",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "123\n456\n0\n");
}

#[test]
fn rlimit_above_hard_limit_fails_clearly_without_cap_sys_resource() {
    // This machine's root lacks CAP_SYS_RESOURCE in its bounding set: raising
    // a hard limit fails for every runtime. berth must say so, and clean up.
    // SAFETY: getrlimit writes into the zeroed rlimit we own.
    let cur = unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_max
    };
    let has_sys_resource = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .map(|l| u64::from_str_radix(l[7..].trim(), 16).unwrap() & (1 << 24) != 0)
        .unwrap();
    let want = cur.saturating_mul(2).min(1 << 30);
    let (code, _, err) = sh(
        |s| {
            s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": want, "hard": want}])
        },
        "true",
    );
    if has_sys_resource {
        eprintln!("skipped: this host has CAP_SYS_RESOURCE, so the limit can be raised");
        return;
    }
    assert_ne!(code, 0);
    assert!(
        err.contains("setrlimit RLIMIT_NOFILE") && err.contains("operation not permitted"),
        "{err}"
    );
}

#[test]
fn cap_sys_resource_request_fails_clearly() {
    let (code, _, err) = sh(
        |s| {
            let caps = json!(["CAP_SYS_RESOURCE"]);
            s["process"]["capabilities"] =
                json!({"bounding": caps, "effective": caps, "permitted": caps});
        },
        "true",
    );
    let has = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .contains("CapBnd:\t000001ffffffffff");
    if has {
        eprintln!("skipped: this host has CAP_SYS_RESOURCE");
        return;
    }
    assert_ne!(code, 0);
    assert!(err.contains("CAP_SYS_RESOURCE"), "{err}");
}

#[test]
fn negative_oom_score_adj_fails_clearly() {
    let (code, _, err) = sh(|s| s["process"]["oomScoreAdj"] = json!(-997), "true");
    if code == 0 {
        eprintln!("skipped: this host allows lowering oom_score_adj");
        return;
    }
    assert!(
        err.contains("oom_score_adj") && err.contains("-997"),
        "{err}"
    );
}

#[test]
fn positive_oom_score_adj_is_applied() {
    let (code, out, err) = sh(
        |s| s["process"]["oomScoreAdj"] = json!(500),
        "cat /proc/self/oom_score_adj",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "500");
}

#[test]
fn sysctl_is_written_in_the_container_namespace() {
    let (code, out, err) = sh(
        |s| s["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}),
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1\n1234\n");
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/shmmni")
            .unwrap()
            .trim(),
        "1234"
    );
}

#[test]
fn user_namespace_maps_ids() {
    let (code, out, err) = sh(
        |s| {
            common::add_userns(s);
            s["root"]["readonly"] = json!(false);
        },
        "id -u; cat /proc/self/uid_map; cat /proc/self/gid_map",
    );
    assert_eq!(code, 0, "{err}");
    let norm: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(norm, ["0", "0 100000 65536", "0 100000 65536"], "{out}");
}

#[test]
fn time_namespace_offsets_apply() {
    let (code, out, err) = sh(
        |s| {
            s["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "time"}));
            s["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400 * 400, "nanosecs": 0}, "monotonic": {"secs": 3600}});
        },
        "cat /proc/uptime; cat /proc/self/timens_offsets",
    );
    assert_eq!(code, 0, "{err}");
    let uptime: f64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(uptime > 86400.0 * 400.0, "{out}");
    assert!(out.contains("monotonic") && out.contains("3600"), "{out}");
}

#[test]
fn joins_namespaces_by_path() {
    let rt = Runtime::berth();
    let a = Bundle::new(&["/bin/sleep", "1000"]);
    rt.ok(&["run", "-d", "--bundle", a.dir.to_str().unwrap(), "t-ns-a"]);
    let pid = rt.state("t-ns-a")["pid"].as_i64().unwrap();
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "for n in net uts ipc; do readlink /proc/self/ns/$n; done; hostname",
    ]);
    b.edit(|s| {
        s["hostname"] = json!(null);
        for ns in s["linux"]["namespaces"].as_array_mut().unwrap() {
            let t = ns["type"].as_str().unwrap().to_string();
            if ["network", "uts", "ipc"].contains(&t.as_str()) {
                let name = if t == "network" { "net".to_string() } else { t };
                ns["path"] = json!(format!("/proc/{pid}/ns/{name}"));
            }
        }
    });
    let (code, out, err) = rt.run(&b, "t-ns-b");
    assert_eq!(code, 0, "{err}");
    let want: Vec<String> = ["net", "uts", "ipc"]
        .iter()
        .map(|n| {
            std::fs::read_link(format!("/proc/{pid}/ns/{n}"))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let got: Vec<&str> = out.lines().take(3).collect();
    assert_eq!(got, want);
    assert_eq!(
        out.lines().nth(3),
        Some("berth"),
        "hostname of the joined uts namespace"
    );
    // The runtime itself went back to its own namespaces.
    assert_ne!(
        std::fs::read_link("/proc/self/ns/net")
            .unwrap()
            .to_string_lossy(),
        want[0]
    );
}

#[test]
fn joins_pid_namespace_by_path() {
    let rt = Runtime::berth();
    let a = Bundle::new(&["/bin/sleep", "1000"]);
    rt.ok(&["run", "-d", "--bundle", a.dir.to_str().unwrap(), "t-pid-a"]);
    let pid = rt.state("t-pid-a")["pid"].as_i64().unwrap();
    let mut b = Bundle::new(&["/bin/sh", "-c", "ps -o pid,comm | grep -c sleep"]);
    b.edit(|s| {
        for ns in s["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "pid" {
                ns["path"] = json!(format!("/proc/{pid}/ns/pid"));
            }
        }
    });
    let (code, out, err) = rt.run(&b, "t-pid-b");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "1",
        "the sleeping init of the first container is visible"
    );
}

#[test]
fn new_pid_namespace_inside_a_joined_user_namespace() {
    let rt = Runtime::berth();
    let mut a = Bundle::new(&["/bin/sleep", "1000"]);
    a.edit(|s| {
        common::add_userns(s);
    });
    rt.ok(&["run", "-d", "--bundle", a.dir.to_str().unwrap(), "t-uj-a"]);
    let a_pid = rt.state("t-uj-a")["pid"].as_i64().unwrap();
    let mut b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "echo $$; readlink /proc/self/ns/user; cat /proc/self/uid_map; id -u; ps -o pid,comm | grep -c sleep; true",
    ]);
    b.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user", "path": format!("/proc/{a_pid}/ns/user")}));
    });
    let (code, out, err) = rt.run(&b, "t-uj-b");
    assert_eq!(code, 0, "{err}");
    let a_user = std::fs::read_link(format!("/proc/{a_pid}/ns/user")).unwrap();
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        [
            "1".to_string(),
            a_user.to_string_lossy().into_owned(),
            "0 100000 65536".into(),
            "0".into(),
            "0".into(),
        ],
        "pid 1 of a new pid namespace, in A's user namespace, not seeing A's sleep"
    );

    // Detached: the state and the pid file name the real init (the
    // runtime's child), not the intermediate that forked it.
    let mut c = Bundle::new(&["/bin/sleep", "1000"]);
    c.spec = b.spec.clone();
    c.edit(|s| s["process"]["args"] = json!(["/bin/sleep", "1000"]));
    let pid_file = c.dir.join("c.pid");
    rt.ok(&[
        "create",
        "--bundle",
        c.dir.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "t-uj-c",
    ]);
    let c_pid = rt.state("t-uj-c")["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        c_pid.to_string()
    );
    let status = std::fs::read_to_string(format!("/proc/{c_pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(
        nspid.ends_with("\t1"),
        "init is pid 1 of its namespace: {nspid}"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{c_pid}/ns/user")).unwrap(),
        a_user
    );
    rt.ok(&["start", "t-uj-c"]);
    assert_eq!(rt.status("t-uj-c"), "running");
    rt.ok(&["kill", "t-uj-c", "KILL"]);
    rt.wait_status("t-uj-c", "stopped");
    rt.ok(&["delete", "t-uj-c"]);
}

#[test]
fn preserve_fds_and_listen_fds_pass_through() {
    use std::os::unix::process::CommandExt;
    let rt = Runtime::berth();
    let b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "echo $LISTEN_FDS $LISTEN_PID; cat <&3; cat <&4; ls /proc/self/fd | wc -l",
    ]);
    let f3 = b.dir.join("three");
    let f4 = b.dir.join("four");
    std::fs::write(&f3, "fd3\n").unwrap();
    std::fs::write(&f4, "fd4\n").unwrap();
    // Through a shell so LISTEN_PID can name the runtime's own pid.
    let script = format!(
        "exec 3<{} 4<{}; LISTEN_PID=$$ LISTEN_FDS=1 exec {} --root {} run --preserve-fds 1 --bundle {} t-fds",
        f3.display(),
        f4.display(),
        common::BERTH,
        rt.root.display(),
        b.dir.display()
    );
    rt.created.borrow_mut().push("t-fds".into());
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .process_group(0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1 1");
    assert_eq!(lines[1], "fd3");
    assert_eq!(lines[2], "fd4");
    // 0,1,2,3,4 and the fd ls itself opens: nothing else leaked.
    assert_eq!(lines[3], "6", "{text}");
}

#[test]
fn seccomp_errno_rule_applies() {
    let (code, out, err) = sh(
        |s| {
            s["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
            });
            s["root"]["readonly"] = json!(false);
        },
        "mkdir /tmp/x 2>&1; echo rc=$?",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Permission denied") && out.contains("rc=1"),
        "{out}"
    );
}
