//! cgroup v1 / hybrid specifics, on the build host (v1 controllers under
//! /sys/fs/cgroup/*, a cgroup2 at /sys/fs/cgroup/unified). On a cgroup v2
//! host these tests return early with a note.

mod cgroups_common;

use std::fs;
use std::path::Path;

use berth::cgroups::{detect, Manager, Mode};
use cgroups_common::*;

fn on_v1() -> bool {
    let mode = detect::layout().expect("detect cgroups").mode;
    if mode != Mode::Unified {
        return true;
    }
    eprintln!("skipped: host is cgroup v2 (these tests are for v1/hybrid hosts)");
    false
}

fn read(dir: &Path, f: &str) -> String {
    let p = dir.join(f);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn the_process_joins_every_hierarchy_including_name_systemd_and_unified() {
    if !on_v1() {
        return;
    }
    let cg = TestCgroup::new("join", None);
    let l = detect::layout().unwrap();
    let c = spawn(&cg, || {
        // SAFETY: sleep until killed.
        unsafe { libc::pause() };
        0
    });
    let text = fs::read_to_string(format!("/proc/{}/cgroup", c.pid)).unwrap();
    for (ctrl, dir) in &cg.m.v1_dirs {
        let mount = &l.v1_mounts[ctrl];
        let rel = Path::new("/").join(dir.strip_prefix(mount).unwrap());
        let line = text
            .lines()
            .find(|line| {
                line.split(':')
                    .nth(1)
                    .is_some_and(|cs| cs.split(',').any(|c| c == ctrl))
            })
            .unwrap_or_else(|| panic!("{ctrl} missing in\n{text}"));
        assert!(
            line.ends_with(&format!(":{}", rel.display())),
            "{ctrl}: {line} (want {})",
            rel.display()
        );
    }
    assert!(cg.m.v1_dirs.contains_key("name=systemd"));
    if l.mode == Mode::Hybrid {
        let u = cg.m.unified_dir.as_ref().unwrap();
        let rel = Path::new("/").join(u.strip_prefix(l.unified_mount.as_ref().unwrap()).unwrap());
        assert!(
            text.lines()
                .any(|line| line == format!("0::{}", rel.display())),
            "unified companion missing in\n{text}"
        );
    }
    // `c` is killed and reaped when dropped.
}

#[test]
fn hugetlb_is_driven_through_the_unified_tree_on_hybrid() {
    if !on_v1() {
        return;
    }
    let l = detect::layout().unwrap();
    if l.mode != Mode::Hybrid || l.v1_mounts.contains_key("hugetlb") {
        eprintln!("skipped: hugetlb is not bound to the cgroup2 tree here");
        return;
    }
    let root = l.unified_mount.clone().unwrap();
    let before = read(&root, "cgroup.subtree_control");
    if !before.split_whitespace().any(|c| c == "hugetlb") {
        // Enabling it would reconfigure the host's cgroups, which tests must
        // never do; the cgroup v2 guest covers hugetlb limits.
        eprintln!("skipped: hugetlb is not enabled in the host's cgroup2 root");
        return;
    }
    let r = std::panic::catch_unwind(|| {
        let cg = TestCgroup::new(
            "hugetlb",
            Some(res(
                r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#,
            )),
        );
        let u = cg.m.unified_dir.clone().unwrap();
        assert_eq!(read(&u, "hugetlb.2MB.max"), "4194304");
        assert!(cg.m.stats().unwrap().hugetlb.contains_key("2MB"));
        let bad = TestCgroup::try_new(
            "hugetlb-bad",
            Some(res(
                r#"{"hugepageLimits":[{"pageSize":"3MB","limit":4194304}]}"#,
            )),
        );
        let e = bad.err().expect("3MB pages do not exist");
        assert!(e.message().contains("hugetlb.3MB.max"), "{e}");
    });
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn what_the_host_lacks_is_refused_naming_the_controller() {
    if !on_v1() {
        return;
    }
    let l = detect::layout().unwrap();
    let mut cases = vec![];
    if !l.v1_mounts.contains_key("net_cls") {
        cases.push((
            r#"{"network":{"classID":1048577}}"#,
            "net_cls controller not supported on this host",
        ));
    }
    if !l.v1_mounts.contains_key("net_prio") {
        cases.push((
            r#"{"network":{"priorities":[{"name":"lo","priority":1}]}}"#,
            "net_prio controller not supported on this host",
        ));
    }
    if !l.v1_mounts.contains_key("rdma") {
        cases.push((
            r#"{"rdma":{"mlx5_0":{"hcaHandles":3}}}"#,
            "rdma controller not supported on this host",
        ));
    }
    // Weight files appear only below the root, so look in a fresh cgroup.
    let probe = TestCgroup::new("probe", None);
    let blkio = probe.m.v1_dir("blkio").unwrap().to_path_buf();
    if !blkio.join("blkio.weight").exists() && !blkio.join("blkio.bfq.weight").exists() {
        cases.push((
            r#"{"blockIO":{"weight":500}}"#,
            "blkio weight not supported on this host",
        ));
    }
    if !blkio.join("blkio.leaf_weight").exists() {
        cases.push((
            r#"{"blockIO":{"leafWeight":500}}"#,
            "blkio.leaf_weight: not supported on this host",
        ));
    }
    drop(probe);
    assert!(
        !cases.is_empty(),
        "this host was expected to lack net_cls, net_prio, rdma and blkio.leaf_weight"
    );
    for (json, needle) in cases {
        let e = TestCgroup::try_new("lacks", Some(res(json)))
            .err()
            .unwrap_or_else(|| panic!("{json} accepted"));
        assert!(e.message().contains(needle), "{json}: {e}");
        let m = Manager::new(
            &format!("berth-test-{}-lacks", std::process::id()),
            None,
            false,
        )
        .unwrap();
        for d in m.v1_dirs.values() {
            assert!(!d.exists(), "{json} left {}", d.display());
        }
    }
}

/// A whole disk's `major:minor` (throttles refuse partitions).
fn a_disk() -> String {
    let mut fallback = String::new();
    for e in fs::read_dir("/sys/block").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let dev = read(&e.path(), "dev");
        if !(name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram")) {
            return dev;
        }
        fallback = dev;
    }
    fallback
}

#[test]
fn v1_files_get_the_spec_values() {
    if !on_v1() {
        return;
    }
    let disk = a_disk();
    let (maj, min) = disk.split_once(':').unwrap();
    let cg = TestCgroup::new(
        "files",
        Some(res(&format!(
            r#"{{"blockIO":{{"throttleReadBpsDevice":[{{"major":{maj},"minor":{min},"rate":1048576}}]}}}}"#
        ))),
    );
    let line = read(
        cg.m.v1_dir("blkio").unwrap(),
        "blkio.throttle.read_bps_device",
    );
    assert!(line.contains(&format!("{disk} 1048576")), "{line}");
    drop(cg);
    let cg = TestCgroup::new(
        "files",
        Some(res(
            r#"{"memory":{"limit":67108864,"reservation":33554432,"swap":134217728,
                          "swappiness":10,"disableOOMKiller":false,"kernelTCP":16777216},
                "cpu":{"shares":512,"quota":20000,"period":50000,"burst":1000,"idle":0},
                "pids":{"limit":-1}}"#,
        )),
    );
    let mem = cg.m.v1_dir("memory").unwrap();
    assert_eq!(read(mem, "memory.limit_in_bytes"), "67108864");
    assert_eq!(read(mem, "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(read(mem, "memory.memsw.limit_in_bytes"), "134217728");
    assert_eq!(read(mem, "memory.swappiness"), "10");
    assert_eq!(read(mem, "memory.kmem.tcp.limit_in_bytes"), "16777216");
    let cpu = cg.m.v1_dir("cpu").unwrap();
    assert_eq!(read(cpu, "cpu.shares"), "512");
    assert_eq!(read(cpu, "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(cpu, "cpu.cfs_period_us"), "50000");
    assert_eq!(read(cpu, "cpu.cfs_burst_us"), "1000");
    assert_eq!(read(cg.m.v1_dir("pids").unwrap(), "pids.max"), "max");
    let blkio = cg.m.v1_dir("blkio").unwrap();
    if blkio.join("blkio.bfq.weight").exists() {
        cg.m.update(&res(r#"{"blockIO":{"weight":300}}"#)).unwrap();
        assert!(read(blkio, "blkio.bfq.weight").contains("300"));
    }
    // Shrinking memory below memsw and growing it again both work: the
    // order of the two writes follows the direction.
    cg.m.update(&res(r#"{"memory":{"limit":16777216,"swap":16777216}}"#))
        .unwrap();
    assert_eq!(read(mem, "memory.memsw.limit_in_bytes"), "16777216");
    cg.m.update(&res(r#"{"memory":{"limit":268435456,"swap":268435456}}"#))
        .unwrap();
    assert_eq!(read(mem, "memory.limit_in_bytes"), "268435456");
    // Out-of-range shares are refused, not silently clamped.
    let e = cg.m.update(&res(r#"{"cpu":{"shares":1}}"#)).unwrap_err();
    assert!(e.message().contains("cpu.shares"), "{e}");
}

#[test]
fn kernel_memory_limit_is_ignored_when_the_kernel_ignores_it() {
    if !on_v1() {
        return;
    }
    let mem = &detect::layout().unwrap().v1_mounts["memory"];
    match TestCgroup::try_new("kmem", Some(res(r#"{"memory":{"kernel":33554432}}"#))) {
        // Kernels that still have it: the value is set; the others (5.16+)
        // ignore the write, and so does berth (with a warning), as runc.
        Ok(cg) => {
            let got = read(cg.m.v1_dir("memory").unwrap(), "memory.kmem.limit_in_bytes");
            assert!(got == "33554432" || got == "9223372036854771712", "{got}");
        }
        Err(e) => panic!("memory.kernel must be accepted (runc ignores it): {e}"),
    }
    assert!(mem.exists());
}

#[test]
fn systemd_driver_fails_clearly_without_systemd() {
    if !on_v1() {
        return;
    }
    let comm = fs::read_to_string("/proc/1/comm").unwrap_or_default();
    if comm.trim() == "systemd" {
        eprintln!("skipped: systemd is PID 1 here");
        return;
    }
    // The driver asks systemd at create (over D-Bus), before any cgroup
    // exists; without systemd that is a clear error and nothing is made.
    let m = Manager::new("c1", Some("system.slice:berth:c1"), true).unwrap();
    let e = m.create(None).unwrap_err();
    assert!(
        e.message()
            .contains("systemd cgroup driver requested but no systemd"),
        "{e}"
    );
    assert!(!Path::new("/sys/fs/cgroup/pids/system.slice/berth-c1.scope").exists());
    let e = Manager::new("c1", Some("/not/a/slice/form"), true).unwrap_err();
    assert!(e.message().contains("slice:prefix:name"), "{e}");
}

#[test]
fn update_options_apply_to_a_live_container() {
    if !on_v1() {
        return;
    }
    use berth::update::UpdateOptions;
    let cg = TestCgroup::new("updopts", Some(res(r#"{"memory":{"limit":67108864}}"#)));
    let o = UpdateOptions {
        memory: Some("32m".into()),
        cpu_quota: Some(30000),
        cpu_period: Some(100000),
        pids_limit: Some(12),
        ..Default::default()
    };
    cg.m.update(&o.to_resources().unwrap()).unwrap();
    assert_eq!(
        read(cg.m.v1_dir("memory").unwrap(), "memory.limit_in_bytes"),
        (32u64 << 20).to_string()
    );
    assert_eq!(
        read(cg.m.v1_dir("cpu").unwrap(), "cpu.cfs_quota_us"),
        "30000"
    );
    assert_eq!(read(cg.m.v1_dir("pids").unwrap(), "pids.max"), "12");
}

#[test]
fn disable_oom_killer_leaves_the_process_waiting_instead_of_killed() {
    if !on_v1() {
        return;
    }
    let cg = TestCgroup::new(
        "nooomkill",
        Some(res(
            r#"{"memory":{"limit":16777216,"swap":16777216,"disableOOMKiller":true}}"#,
        )),
    );
    let mem = cg.m.v1_dir("memory").unwrap().to_path_buf();
    // `events` hears about the OOM condition although nothing is killed.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (m, d) = (cg.m.clone(), done.clone());
    let watcher = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut running = || !d.load(std::sync::atomic::Ordering::SeqCst);
        berth::events::events(
            &m,
            "x",
            std::time::Duration::from_secs(60),
            false,
            &mut out,
            &mut running,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut c = spawn(&cg, || touch_memory(64 << 20));
    assert_eq!(
        c.wait_timeout(std::time::Duration::from_millis(1500)),
        None,
        "killed despite disableOOMKiller"
    );
    let oom = read(&mem, "memory.oom_control");
    assert!(oom.contains("oom_kill_disable 1"), "{oom}");
    assert!(oom.contains("under_oom 1"), "{oom}");
    assert_eq!(cg.m.oom_kill_count().unwrap(), 0);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let out = watcher.join().unwrap();
    assert!(
        out.lines().any(|l| l == r#"{"type":"oom","id":"x"}"#),
        "no oom event in:\n{out}"
    );
    // Raising the limit lets it finish.
    cg.m.update(&res(r#"{"memory":{"limit":134217728,"swap":134217728}}"#))
        .unwrap();
    assert_eq!(
        c.wait_timeout(std::time::Duration::from_secs(20)),
        Some(Exit::Code(0))
    );
}

#[test]
fn realtime_runtime_and_period_are_set() {
    if !on_v1() {
        return;
    }
    let cpu = &detect::layout().unwrap().v1_mounts["cpu"];
    if !cpu.join("cpu.rt_runtime_us").exists() {
        let e = TestCgroup::try_new("rt", Some(res(r#"{"cpu":{"realtimeRuntime":1000}}"#)))
            .err()
            .unwrap();
        assert!(e.message().contains("cpu.rt_runtime_us"), "{e}");
        return;
    }
    let cg = TestCgroup::new(
        "rt",
        Some(res(
            r#"{"cpu":{"realtimePeriod":500000,"realtimeRuntime":10000}}"#,
        )),
    );
    let d = cg.m.v1_dir("cpu").unwrap();
    assert_eq!(read(d, "cpu.rt_period_us"), "500000");
    assert_eq!(read(d, "cpu.rt_runtime_us"), "10000");
    // A SCHED_FIFO process is allowed in a cgroup with an RT budget.
    let mut c = spawn(&cg, || {
        let p = libc::sched_param { sched_priority: 1 };
        // SAFETY: setting our own scheduler with a valid param.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) } != 0 {
            return std::io::Error::last_os_error().raw_os_error().unwrap_or(1);
        }
        0
    });
    assert_eq!(c.wait(), Exit::Code(0));
}

#[test]
fn unified_keys_go_to_the_cgroup2_companion_on_hybrid() {
    if !on_v1() {
        return;
    }
    let l = detect::layout().unwrap();
    let json = r#"{"unified":{"cgroup.max.descendants":"2"}}"#;
    if l.mode != Mode::Hybrid {
        let e = TestCgroup::try_new("unified", Some(res(json)))
            .err()
            .unwrap();
        assert!(e.message().contains("no cgroup2 hierarchy"), "{e}");
        return;
    }
    let cg = TestCgroup::new("unified", Some(res(json)));
    let u = cg.m.unified_dir.clone().unwrap();
    assert_eq!(read(&u, "cgroup.max.descendants"), "2");
    // The limit holds: a third sub-cgroup cannot be made.
    fs::create_dir(u.join("s1")).unwrap();
    fs::create_dir(u.join("s2")).unwrap();
    let e = fs::create_dir(u.join("s3")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "{e}");
    let e =
        cg.m.update(&res(r#"{"unified":{"../cgroup.procs":"1"}}"#))
            .unwrap_err();
    assert!(e.message().contains("not a cgroup file name"), "{e}");
}

#[test]
fn per_device_weight_needs_bfq_on_that_device() {
    if !on_v1() {
        return;
    }
    let disk = a_disk();
    let (maj, min) = disk.split_once(':').unwrap();
    let json = format!(
        r#"{{"blockIO":{{"weight":300,"weightDevice":[{{"major":{maj},"minor":{min},"weight":200}}]}}}}"#
    );
    let name = fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .find(|e| read(&e.path(), "dev") == disk)
        .unwrap()
        .path();
    let sched = read(&name, "queue/scheduler");
    match TestCgroup::try_new("wdev", Some(res(&json))) {
        Ok(cg) => {
            assert!(sched.contains("[bfq]"), "accepted without BFQ ({sched})");
            let d = cg.m.v1_dir("blkio").unwrap();
            assert!(read(d, "blkio.bfq.weight").contains("300"));
            assert!(read(d, "blkio.bfq.weight_device").contains(&format!("{disk} 200")));
        }
        Err(e) => {
            assert!(!sched.contains("[bfq]"), "{e}");
            // Without any proportional I/O scheduler (no bfq module, as in
            // the test guest) the plain weight is refused first.
            assert!(
                e.message().contains("weight_device")
                    || e.message().contains("blkio weight not supported"),
                "{e}"
            );
        }
    }
}
