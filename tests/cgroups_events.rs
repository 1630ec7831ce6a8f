//! `events --stats` has runc's JSON shape: runc (Debian's, `make deps`) runs
//! a busybox container on this host, berth's stats describe a busybox in a
//! berth cgroup, and the two documents must have the same keys.
//!
//! Alone in its binary: it reaps runc's orphaned container init as a
//! subreaper, which must not steal other tests' children.

mod cgroups_common;

use std::collections::BTreeSet;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth::cgroups::stats::Event;
use cgroups_common::*;
use serde_json::Value;

/// Every key path in the document (`data.memory.usage.limit`), arrays as
/// `[]` when non-empty.
fn shape(v: &Value, path: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{path}.{k}");
                out.insert(p.clone());
                // raw holds memory.stat keys, which both read from the
                // same kernel file; compare them as keys only.
                if !path.ends_with(".raw") {
                    shape(v, &p, out);
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            out.insert(format!("{path}[]"));
        }
        _ => {}
    }
}

struct Runc {
    root: PathBuf,
    id: String,
}

impl Runc {
    fn cmd(&self) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(&self.root);
        c
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
        // Reap the container init we adopted as subreaper.
        // SAFETY: waitpid on any child, non-blocking, into a null status.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        let _ = std::fs::remove_dir_all(self.root.parent().unwrap_or(Path::new("/nonexistent")));
    }
}

#[test]
fn events_stats_has_the_same_shape_as_runc() {
    assert!(
        Command::new("runc").arg("--version").output().is_ok(),
        "runc is needed for the comparison (make deps installs it)"
    );
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(r, 0);
    let dir = std::env::temp_dir().join(format!("berth-events-{}", std::process::id()));
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
    std::fs::copy("/bin/busybox", bundle.join("rootfs/bin/busybox")).unwrap();
    let runc = Runc {
        root: dir.join("state"),
        id: format!("berth-events-{}", std::process::id()),
    };
    let st = Command::new("runc")
        .arg("spec")
        .current_dir(&bundle)
        .status()
        .unwrap();
    assert!(st.success());
    let cfg_path = bundle.join("config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["args"] = serde_json::json!(["/bin/busybox", "sleep", "60"]);
    cfg["process"]["terminal"] = Value::Bool(false);
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    // The container inherits runc's stdio: a pipe would stay open as long
    // as it runs, so errors go to a file.
    let errf = dir.join("run.err");
    let st = runc
        .cmd()
        .args(["run", "-d", "--bundle"])
        .arg(&bundle)
        .arg(&runc.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errf).unwrap())
        .status()
        .unwrap();
    assert!(
        st.success(),
        "runc run: {}",
        std::fs::read_to_string(&errf).unwrap_or_default()
    );

    // The same workload in a berth cgroup.
    let cg = TestCgroup::new("events", None);
    let prog = CString::new("/bin/busybox").unwrap();
    let args = [
        c"busybox".as_ptr(),
        c"sleep".as_ptr(),
        c"60".as_ptr(),
        std::ptr::null(),
    ];
    let _c = spawn(&cg, || {
        // SAFETY: NUL-terminated program and argv prepared before fork.
        unsafe { libc::execv(prog.as_ptr(), args.as_ptr()) };
        127
    });
    std::thread::sleep(Duration::from_millis(300));

    let out = runc
        .cmd()
        .args(["events", "--stats", &runc.id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "runc events: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = serde_json::to_value(Event::stats(&runc.id, cg.m.stats().unwrap())).unwrap();

    let (mut a, mut b) = (BTreeSet::new(), BTreeSet::new());
    shape(&theirs, "", &mut a);
    shape(&ours, "", &mut b);
    // Fields runc omits when zero may be present on one side only (page
    // cache, for one, depends on what each runtime wrote).
    let omitempty = |p: &&String| {
        const ZERO_OMITTED: &[&str] = &[
            ".data.memory.cache",
            ".data.pids.current",
            ".data.pids.limit",
            ".data.cpu.usage.total",
            ".data.cpu.throttling.periods",
            ".data.cpu.throttling.throttled_periods",
            ".data.cpu.throttling.throttled_time",
        ];
        ZERO_OMITTED.contains(&p.as_str())
            || (p.starts_with(".data.memory.") && (p.ends_with(".usage") || p.ends_with(".max")))
            || p.starts_with(".data.blkio.")
            // On a hybrid host without a v1 hugetlb hierarchy berth reads
            // hugetlb from the cgroup2 tree once a container enabled it
            // there; runc only reads v1 hierarchies on such a host.
            || (p.starts_with(".data.hugetlb.") && !cg.m.v1_dirs.contains_key("hugetlb"))
    };
    let only_runc: Vec<_> = a.difference(&b).filter(|p| !omitempty(p)).collect();
    let only_berth: Vec<_> = b.difference(&a).filter(|p| !omitempty(p)).collect();
    assert!(
        only_runc.is_empty() && only_berth.is_empty(),
        "shapes differ\nonly in runc: {only_runc:?}\nonly in berth: {only_berth:?}\nrunc: {theirs}\nberth: {ours}"
    );
    // Real values, not zeros.
    assert_eq!(ours["data"]["pids"]["current"], 1);
    assert!(ours["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert!(ours["data"]["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    // Per-CPU figures exist on v1 (cpuacct) only, for both runtimes.
    let percpu = |v: &Value| {
        v["data"]["cpu"]["usage"]["percpu"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    };
    assert_eq!(percpu(&ours), percpu(&theirs));
}
