//! Effects of cgroup limits on real processes, on whatever hierarchy the
//! machine has: cgroup v1 (hybrid) on the build host, cgroup v2 in the test
//! guest (`make test-cgroup2` runs this binary there too).

mod cgroups_common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth::cgroups::FreezerState;
use berth::events::events;
use berth::update::resources_from_json;
use cgroups_common::*;

#[test]
fn memory_limit_oom_kills_the_process_and_events_reports_oom() {
    let cg = TestCgroup::new(
        "oom",
        Some(res(r#"{"memory":{"limit":16777216,"swap":16777216}}"#)),
    );
    let before = cg.m.oom_kill_count().unwrap();
    assert_eq!(before, 0);
    let done = Arc::new(AtomicBool::new(false));
    let (m, d) = (cg.m.clone(), done.clone());
    let watcher = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut running = || !d.load(Ordering::SeqCst);
        events(
            &m,
            "oom",
            Duration::from_secs(60),
            false,
            &mut out,
            &mut running,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut c = spawn(&cg, || touch_memory(64 << 20));
    assert_eq!(c.wait(), Exit::Signal(libc::SIGKILL));
    assert!(cg.m.oom_kill_count().unwrap() >= 1);
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::SeqCst);
    let out = watcher.join().unwrap();
    assert!(
        out.lines().any(|l| l == r#"{"type":"oom","id":"oom"}"#),
        "no oom event in:\n{out}"
    );
    // The same allocation fits under a larger limit.
    let cg2 = TestCgroup::new("nooom", Some(res(r#"{"memory":{"limit":134217728}}"#)));
    let mut c2 = spawn(&cg2, || touch_memory(64 << 20));
    assert_eq!(c2.wait(), Exit::Code(0));
}

#[test]
fn pids_limit_stops_a_fork_bomb_at_the_limit() {
    let cg = TestCgroup::new("pids", Some(res(r#"{"pids":{"limit":8}}"#)));
    // The child itself is one of the 8.
    let mut c = spawn(&cg, || fork_until_refused(100));
    assert_eq!(c.wait(), Exit::Code(7));
}

#[test]
fn update_changes_a_live_pids_limit() {
    let cg = TestCgroup::new("upd", Some(res(r#"{"pids":{"limit":20}}"#)));
    let mut c = spawn(&cg, || fork_until_refused(100));
    assert_eq!(c.wait(), Exit::Code(19));
    let r = resources_from_json(&br#"{"pids":{"limit":4}}"#[..], "test").unwrap();
    cg.m.update(&r).unwrap();
    let mut c = spawn(&cg, || fork_until_refused(100));
    assert_eq!(c.wait(), Exit::Code(3));
    assert_eq!(cg.m.stats().unwrap().pids.limit, 4);
}

#[test]
fn devices_outside_the_allow_list_cannot_be_opened() {
    // /dev/kmsg is c 1:11: not in the default list; allow it read-only.
    let cg = TestCgroup::new(
        "dev",
        Some(res(r#"{"devices":[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":11,"access":"r"}]}"#)),
    );
    assert!(Path::new("/dev/kmsg").exists() && Path::new("/dev/null").exists());
    let mut c = spawn(&cg, || open_errno(b"/dev/null\0"));
    assert_eq!(
        c.wait(),
        Exit::Code(0),
        "default allow-list grants /dev/null"
    );
    let mut c = spawn(&cg, || open_errno(b"/dev/kmsg\0"));
    assert_eq!(
        c.wait(),
        Exit::Code(libc::EPERM),
        "kmsg is allowed r, not rw"
    );
    let mut c = spawn(&cg, || {
        // SAFETY: NUL-terminated literal path.
        let fd = unsafe { libc::open(c"/dev/kmsg".as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            return 1;
        }
        0
    });
    assert_eq!(c.wait(), Exit::Code(0), "kmsg read-only is allowed");
    // Outside the cgroup the same open works: the cgroup made the difference.
    assert_eq!(open_errno(b"/dev/kmsg\0"), 0);
}

#[test]
fn pause_stops_progress_and_resume_restores_it() {
    let cg = TestCgroup::new("pause", None);
    let sh = Shared::new();
    let _c = spawn(&cg, || count_forever(&sh, 0));
    wait_until(|| sh.get(0) > 1000, "child to start counting");
    assert_eq!(cg.m.freezer_state().unwrap(), FreezerState::Thawed);
    cg.m.freeze().unwrap();
    assert_eq!(cg.m.freezer_state().unwrap(), FreezerState::Frozen);
    let a = sh.get(0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sh.get(0), a, "counter moved while frozen");
    eprintln!("figure: counter held at {a} for 300 ms while frozen");
    cg.m.thaw().unwrap();
    assert_eq!(cg.m.freezer_state().unwrap(), FreezerState::Thawed);
    wait_until(|| sh.get(0) > a + 1000, "counter to move after thaw");
}

#[test]
fn cpu_quota_caps_cpu_time() {
    let cg = TestCgroup::new(
        "quota",
        Some(res(r#"{"cpu":{"quota":5000,"period":100000}}"#)),
    );
    let mut c = spawn(&cg, || spin_for(Duration::from_millis(1500)));
    // Read the child's CPU time before reaping it.
    std::thread::sleep(Duration::from_millis(1400));
    let used = cpu_seconds(c.pid);
    assert_eq!(c.wait(), Exit::Code(0));
    eprintln!("figure: 1.5 s of spinning under a 5% quota used {used:.3} s of CPU");
    // 5% of 1.5 s is 0.075 s; allow for scheduler slack and tick accounting.
    assert!(used <= 0.3, "child used {used}s of CPU under a 5% quota");
    let st = cg.m.stats().unwrap();
    assert!(st.cpu.throttling.throttled_periods > 0, "{:?}", st.cpu);
    assert!(st.cpu.usage.total > 0);
}

#[test]
fn cpuset_pins_processes_to_the_given_cpu() {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cg = TestCgroup::new("cpuset", Some(res(r#"{"cpu":{"cpus":"0"}}"#)));
    let mut c = spawn(&cg, || {
        // SAFETY: a zeroed cpu_set_t filled by the kernel.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer and size of `set`.
        if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } != 0 {
            return 100;
        }
        // SAFETY: reading the set just filled.
        (0..64)
            .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
            .count() as i32
    });
    assert_eq!(c.wait(), Exit::Code(1), "host has {n} CPUs");
}

#[test]
fn stats_report_real_usage() {
    let cg = TestCgroup::new("stats", Some(res(r#"{"pids":{"limit":50}}"#)));
    let sh = Shared::new();
    let _c = spawn(&cg, || {
        touch_memory(8 << 20);
        count_forever(&sh, 0)
    });
    wait_until(|| sh.get(0) > 1000, "child to run");
    std::thread::sleep(Duration::from_millis(100));
    let st = cg.m.stats().unwrap();
    assert_eq!(st.pids.current, 1);
    assert_eq!(st.pids.limit, 50);
    assert!(st.memory.usage.usage >= 8 << 20, "{:?}", st.memory.usage);
    assert!(st.cpu.usage.total > 0);
    assert!(!st.memory.raw.is_empty());
    assert_eq!(cg.m.pids().unwrap(), vec![_c.pid]);
}

#[test]
fn kill_all_signals_every_process() {
    let cg = TestCgroup::new("killall", None);
    let mut kids: Vec<Child> = (0..3)
        .map(|_| {
            spawn(&cg, || loop {
                // SAFETY: sleep until a signal ends us.
                unsafe { libc::pause() };
            })
        })
        .collect();
    assert_eq!(cg.m.pids().unwrap().len(), 3);
    cg.m.kill_all(libc::SIGTERM).unwrap();
    for k in &mut kids {
        assert_eq!(k.wait(), Exit::Signal(libc::SIGTERM));
    }
    cg.m.wait_empty(Duration::from_secs(5)).unwrap();
    assert_eq!(cg.m.freezer_state().unwrap(), FreezerState::Thawed);
}

#[test]
fn a_failed_create_leaves_no_cgroup_behind() {
    let e = TestCgroup::try_new(
        "badcreate",
        Some(res(r#"{"pids":{"limit":5},"cpu":{"cpus":"4000"}}"#)),
    )
    .err()
    .expect("cpuset.cpus 4000 must be refused");
    assert!(e.message().contains("cpuset.cpus"), "{e}");
    let m = berth::cgroups::Manager::new(
        &format!("berth-test-{}-badcreate", std::process::id()),
        None,
        false,
    )
    .unwrap();
    for d in m.v1_dirs.values().chain(m.unified_dir.iter()) {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn destroy_removes_the_cgroups() {
    let cg = TestCgroup::new("destroy", None);
    let dirs: Vec<_> =
        cg.m.v1_dirs
            .values()
            .chain(cg.m.unified_dir.iter())
            .cloned()
            .collect();
    assert!(!dirs.is_empty());
    for d in &dirs {
        assert!(d.is_dir(), "{} missing", d.display());
    }
    cg.m.destroy().unwrap();
    for d in &dirs {
        assert!(!d.exists(), "{} still there", d.display());
    }
}

#[test]
fn check_before_update_refuses_a_limit_below_usage() {
    let cg = TestCgroup::new("cbu", Some(res(r#"{"memory":{"limit":134217728}}"#)));
    let sh = Shared::new();
    let _c = spawn(&cg, || {
        touch_memory(32 << 20);
        count_forever(&sh, 0)
    });
    wait_until(|| sh.get(0) > 1000, "child to allocate");
    let r = res(r#"{"memory":{"limit":4194304,"checkBeforeUpdate":true}}"#);
    let e = cg.m.update(&r).unwrap_err();
    assert!(e.message().contains("below current usage"), "{e}");
    // Without the check a 64 MiB limit is accepted.
    cg.m.update(&res(r#"{"memory":{"limit":67108864,"swap":67108864}}"#))
        .unwrap();
    assert_eq!(cg.m.stats().unwrap().memory.usage.limit, 67108864);
}

fn wait_until(mut f: impl FnMut() -> bool, what: &str) {
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn ps_lists_exactly_the_container_processes() {
    let cg = TestCgroup::new("ps", None);
    let c = spawn(&cg, || {
        // SAFETY: sleep until killed.
        unsafe { libc::pause() };
        0
    });
    let pids = cg.m.pids().unwrap();
    assert_eq!(pids, vec![c.pid]);
    assert_eq!(berth::ps::json(&pids).unwrap(), format!("[{}]", c.pid));
    let t = berth::ps::table(&pids, &["-ef".to_string()]).unwrap();
    let rows: Vec<&str> = t.lines().collect();
    assert_eq!(rows.len(), 2, "{t}");
    assert!(rows[0].contains("PID"));
    assert_eq!(
        rows[1].split_whitespace().nth(1),
        Some(c.pid.to_string().as_str())
    );
}

#[test]
fn delete_force_kills_everything_and_removes_the_cgroups() {
    let cg = TestCgroup::new("force", None);
    let mut kids: Vec<Child> = (0..3)
        .map(|_| {
            spawn(&cg, || loop {
                // SAFETY: sleep until killed.
                unsafe { libc::pause() };
            })
        })
        .collect();
    cg.m.freeze().unwrap();
    let dirs: Vec<_> =
        cg.m.v1_dirs
            .values()
            .chain(cg.m.unified_dir.iter())
            .cloned()
            .collect();
    // Reap concurrently: on v1 the cgroup only empties once zombies go.
    let pids: Vec<i32> = kids.iter().map(|k| k.pid).collect();
    let reaper = std::thread::spawn(move || {
        pids.iter()
            .map(|&p| {
                let mut st = 0;
                // SAFETY: waiting for our own child into a local.
                unsafe { libc::waitpid(p, &mut st, 0) };
                libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL
            })
            .collect::<Vec<bool>>()
    });
    cg.m.destroy_force().unwrap();
    assert_eq!(reaper.join().unwrap(), vec![true; 3]);
    for k in &mut kids {
        k.forget();
    }
    for d in &dirs {
        assert!(!d.exists(), "{} still there", d.display());
    }
}
