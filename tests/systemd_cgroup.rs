//! `--systemd-cgroup`: berth asks systemd (PID 1) for a transient scope per
//! container. Runs for real in the test guest booted with systemd as PID 1
//! (`guest/test-systemd.sh`, cgroup v2 and then v1); on this host (PID 1 is
//! not systemd) only the refusal is checked, and the rest returns early with
//! a note unless BERTH_GUEST_SYSTEMD is set, where a missing systemd fails.

mod common;

use std::collections::HashMap;
use std::process::Command;

use berth::cgroups::{detect, Mode};
use common::*;

fn under_systemd() -> bool {
    let booted = std::path::Path::new("/run/systemd/private").exists();
    if booted {
        return true;
    }
    assert!(
        std::env::var_os("BERTH_GUEST_SYSTEMD").is_none(),
        "the systemd guest has no /run/systemd/private"
    );
    eprintln!("skipped: systemd is not PID 1 here (run guest/test-systemd.sh)");
    false
}

fn v2() -> bool {
    detect::layout().unwrap().mode == Mode::Unified
}

/// `systemctl show UNIT` as a map.
fn show(unit: &str) -> HashMap<String, String> {
    let out = Command::new("systemctl")
        .args(["show", "--no-pager", unit])
        .output()
        .expect("systemctl");
    // List properties (DeviceAllow) come one line per entry.
    let mut m: HashMap<String, String> = HashMap::new();
    for (k, v) in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
    {
        m.entry(k.to_string())
            .and_modify(|old| {
                old.push('\n');
                old.push_str(v)
            })
            .or_insert_with(|| v.to_string());
    }
    m
}

fn cgroup_file(rel: &str, ctrl: &str, file: &str) -> String {
    let base = if v2() {
        "/sys/fs/cgroup".to_string()
    } else {
        format!("/sys/fs/cgroup/{ctrl}")
    };
    let p = format!("{base}{rel}/{file}");
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {p}: {e}"))
        .trim()
        .to_string()
}

fn sleeper(path: &str) -> Bundle {
    let mut b = Bundle::new(&["sleep", "1000"]);
    let path = path.to_string();
    b.edit(|s| {
        s["linux"]["cgroupsPath"] = path.into();
        s["linux"]["resources"] = serde_json::json!({
            "memory": {"limit": 67108864},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "pids": {"limit": 32},
            "devices": [{"allow": false, "access": "rwm"}],
        });
    });
    b
}

#[test]
fn scope_lifecycle_with_properties() {
    if !under_systemd() {
        return;
    }
    let rt = Runtime::berth();
    let id = unique("sd");
    let b = sleeper(&format!("berthtest-inner.slice:berth:{id}"));
    let bundle = b.dir.to_str().unwrap();
    rt.ok(&["--systemd-cgroup", "create", "--bundle", bundle, &id]);
    let unit = format!("berth-{id}.scope");
    let rel = format!("/berthtest.slice/berthtest-inner.slice/{unit}");
    let p = show(&unit);
    assert_eq!(p["ActiveState"], "active", "{p:?}");
    assert_eq!(p["Slice"], "berthtest-inner.slice");
    assert_eq!(p["ControlGroup"], rel);
    assert_eq!(p["Delegate"], "yes");
    assert_eq!(p["TasksMax"], "32");
    assert_eq!(p["CPUQuotaPerSecUSec"], "500ms");
    assert_eq!(p["DevicePolicy"], "strict");
    assert!(p["DeviceAllow"].contains("/dev/char/1:3 rwm"), "{p:?}");
    assert!(p["Description"].contains(&id));
    let st = rt.state(&id);
    let pid = st["pid"].as_i64().unwrap();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        own.contains(&format!(":{rel}\n")),
        "init not in {rel}: {own}"
    );
    if v2() {
        assert_eq!(p["MemoryMax"], "67108864");
        assert_eq!(p["CPUWeight"], shares_weight(512));
        assert_eq!(cgroup_file(&rel, "", "memory.max"), "67108864");
        assert_eq!(cgroup_file(&rel, "", "pids.max"), "32");
        assert_eq!(cgroup_file(&rel, "", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(p["MemoryLimit"], "67108864");
        assert_eq!(p["CPUShares"], "512");
        assert_eq!(
            cgroup_file(&rel, "memory", "memory.limit_in_bytes"),
            "67108864"
        );
        assert_eq!(cgroup_file(&rel, "pids", "pids.max"), "32");
        // A hierarchy systemd leaves alone: berth places the init itself.
        assert!(
            cgroup_file(&rel, "freezer", "cgroup.procs").contains(&pid.to_string()),
            "init not in the freezer hierarchy"
        );
    }
    rt.ok(&["start", &id]);
    rt.ok(&[
        "update",
        "--memory",
        "134217728",
        "--pids-limit",
        "64",
        "--cpu-quota",
        "25000",
        &id,
    ]);
    let p = show(&unit);
    assert_eq!(p["TasksMax"], "64");
    assert_eq!(p["CPUQuotaPerSecUSec"], "250ms");
    if v2() {
        assert_eq!(p["MemoryMax"], "134217728");
        assert_eq!(cgroup_file(&rel, "", "memory.max"), "134217728");
        assert_eq!(cgroup_file(&rel, "", "pids.max"), "64");
    } else {
        assert_eq!(p["MemoryLimit"], "134217728");
        assert_eq!(
            cgroup_file(&rel, "memory", "memory.limit_in_bytes"),
            "134217728"
        );
    }
    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    let ps = rt.ok(&["ps", "--format", "json", &id]);
    assert!(ps.contains(&pid.to_string()), "ps: {ps}");
    rt.ok(&["delete", "--force", &id]);
    reap(pid as i32);
    let p = show(&unit);
    assert_eq!(p["LoadState"], "not-found", "unit left after delete: {p:?}");
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/unified{rel}")).exists());
}

/// v1 shares → v2 weight as berth converts them (the same table systemd
/// is given).
fn shares_weight(shares: u64) -> String {
    berth::cgroups::resources::shares_to_weight(shares).to_string()
}

#[test]
fn default_path_is_system_slice_and_exit_stops_the_scope() {
    if !under_systemd() {
        return;
    }
    let rt = Runtime::berth();
    let id = unique("sdd");
    let mut b = Bundle::new(&["sh", "-c", "cat /proc/self/cgroup; sleep 1"]);
    b.edit(|s| {
        s["linux"].as_object_mut().unwrap().remove("cgroupsPath");
        // Without a cgroup namespace the init sees its real path.
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "cgroup");
    });
    let out = rt.ok(&[
        "--systemd-cgroup",
        "run",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    assert!(
        out.contains(&format!("/system.slice/berth-{id}.scope")),
        "{out}"
    );
    assert_eq!(show(&format!("berth-{id}.scope"))["LoadState"], "not-found");
}

#[test]
fn berth_is_single_threaded_after_talking_to_systemd() {
    if !under_systemd() {
        return;
    }
    let rt = Runtime::berth();
    let id = unique("sdt");
    let out = std::env::temp_dir().join(unique("threads"));
    let mut b = Bundle::new(&["true"]);
    let cmd = format!("ls /proc/$PPID/task | wc -l > {}", out.display());
    b.edit(|s| {
        s["hooks"] = serde_json::json!({
            "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", cmd]}]
        });
    });
    rt.ok(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    let n = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert_eq!(n.trim(), "1", "berth had {} threads after D-Bus", n.trim());
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn unit_name_in_use_is_refused_and_nothing_left() {
    if !under_systemd() {
        return;
    }
    let rt = Runtime::berth();
    let id = unique("sdu");
    let id2 = unique("sdu");
    let path = format!("system.slice:berthdup:{id}");
    let b = sleeper(&path);
    let bundle = b.dir.to_str().unwrap();
    rt.ok(&["--systemd-cgroup", "create", "--bundle", bundle, &id]);
    let err = rt.fails(&["--systemd-cgroup", "create", "--bundle", bundle, &id2]);
    assert!(err.contains("already exists"), "{err}");
    assert!(!rt.root.join(&id2).exists(), "state left behind");
    assert_eq!(
        show(&format!("berthdup-{id}.scope"))["ActiveState"],
        "active"
    );
    rt.ok(&["delete", "--force", &id]);
    let bad = sleeper("notaslice:x:y");
    let err = rt.fails(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        bad.dir.to_str().unwrap(),
        &id2,
    ]);
    assert!(err.contains("not a slice name"), "{err}");
}

/// No dbus-daemon (its socket hidden in a mount namespace of this test's
/// own): berth talks to systemd over /run/systemd/private instead.
#[test]
fn private_socket_when_there_is_no_system_bus() {
    if !under_systemd() {
        return;
    }
    let rt = Runtime::berth();
    let id = unique("sdp");
    let mut b = Bundle::new(&["sh", "-c", "cat /proc/self/cgroup"]);
    b.edit(|s| {
        s["linux"]["cgroupsPath"] = format!("system.slice:berthpriv:{id}").into();
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "cgroup");
    });
    let script = format!(
        "mount -t tmpfs berth-test /run/dbus && exec {} --root {} --systemd-cgroup run --bundle {} {id}",
        BERTH,
        rt.root.display(),
        b.dir.display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("/system.slice/berthpriv-{id}.scope")),
        "{stdout}"
    );
    assert_eq!(
        show(&format!("berthpriv-{id}.scope"))["LoadState"],
        "not-found"
    );
}

/// Without systemd (this host): a clear refusal before anything is made.
#[test]
fn without_systemd_the_driver_is_refused_clearly() {
    if std::path::Path::new("/run/systemd/private").exists() {
        return;
    }
    let rt = Runtime::berth();
    let id = unique("nosd");
    let b = Bundle::new(&["true"]);
    let err = rt.fails(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    assert!(
        err.contains("systemd cgroup driver requested but no systemd on /run/systemd/private or the system bus"),
        "{err}"
    );
    assert!(!rt.root.join(&id).exists(), "state left behind");
    let feats: serde_json::Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert_eq!(feats["linux"]["cgroup"]["systemd"], false);
}

#[test]
fn features_report_systemd_when_it_works() {
    if !under_systemd() {
        return;
    }
    let rt = Runtime::berth();
    let feats: serde_json::Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert_eq!(feats["linux"]["cgroup"]["systemd"], true);
}
