//! A runtime killed half-way (a shim or a node dying) must leave nothing
//! that `delete --force` cannot remove: `create`, `run` and `delete` are
//! SIGKILLed at moments spread over their run time, then `delete --force`
//! must leave no state directory, no cgroup in any hierarchy and no
//! process, and the id must be usable again.
//!
//! BERTH_CRASH_POINTS (default 20; `make test-full` uses 60) kill points per
//! command; BERTH_CRASH_SEED repeats a run (the seed is printed).
//!
//! One test in its own binary: it reaps every exited child of this
//! process (the killed runtimes' orphans are reparented to it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Bundle, Runtime};
use serde_json::json;

fn reap_all() {
    loop {
        // SAFETY: non-blocking wait for any exited child of ours.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if r <= 0 {
            return;
        }
    }
}

/// Processes whose command line holds `marker` (the container's args).
fn processes_with(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let is_zombie = std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        });
        if cmd.contains(marker) && !is_zombie {
            out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    out
}

/// Every directory the container's cgroups would have, in every hierarchy.
fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        out.push(h.path().join(rel.trim_start_matches('/')));
    }
    // A pure cgroup v2 host mounts the hierarchy itself here.
    out.push(Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/')));
    out
}

struct Subject<'a> {
    rt: &'a Runtime,
    bundle: &'a Bundle,
    cg: &'a str,
    marker: &'a str,
}

impl Subject<'_> {
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.rt
            .cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn bundle(&self) -> &str {
        self.bundle.dir.to_str().unwrap()
    }

    /// How long `args` takes to run to its end (the median of three).
    fn duration(&self, args: &[&str], id: &str) -> Duration {
        let mut times: Vec<Duration> = (0..3)
            .map(|_| {
                let t = Instant::now();
                let st = self.spawn(args).wait().unwrap();
                let d = t.elapsed();
                assert!(st.success(), "{args:?} failed");
                let _ = self.rt.run_cmd(&["delete", "--force", id]);
                reap_all();
                d
            })
            .collect();
        times.sort();
        times[1]
    }

    /// SIGKILL `args` after `delay`, then check what `delete --force` leaves.
    fn kill_and_check(&self, args: &[&str], id: &str, delay: Duration, what: &str) {
        let mut child = self.spawn(args);
        std::thread::sleep(delay);
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        let dir = self.rt.root.join(id);
        if dir.exists() {
            let listed = self.rt.ok(&["list", "-q"]);
            assert!(
                listed.lines().any(|l| l == id),
                "{what}: a container left by a killed runtime is hidden from list: {listed:?}"
            );
        }
        let out = self.rt.run_cmd(&["delete", "--force", id]);
        assert!(
            out.status.success(),
            "{what}: delete --force failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The init may still be on its way out (it dies with its parent).
        let mut left = Vec::new();
        for _ in 0..200 {
            reap_all();
            left = processes_with(self.marker);
            if left.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(left.is_empty(), "{what}: processes left: {left:?}");
        assert!(!dir.exists(), "{what}: state directory left");
        for d in cgroup_dirs(self.cg) {
            assert!(!d.exists(), "{what}: cgroup {} left", d.display());
        }
        // The id can be used again.
        self.rt.ok(&["create", "--bundle", self.bundle(), id]);
        self.rt.ok(&["delete", "--force", id]);
        reap_all();
    }
}

#[test]
fn a_runtime_killed_at_any_moment_leaves_nothing_delete_force_cannot_remove() {
    let points: u64 = std::env::var("BERTH_CRASH_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("BERTH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash points: {points} per command, BERTH_CRASH_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);

    let rt = Runtime::berth();
    let marker = format!("{}", 7_000_000 + std::process::id());
    let cg = format!("/{}", common::unique("berth-crash"));
    let mut b = Bundle::new(&["/bin/sleep", &marker]);
    b.edit(|s| s["linux"]["cgroupsPath"] = json!(cg));
    let s = Subject {
        rt: &rt,
        bundle: &b,
        cg: &cg,
        marker: &marker,
    };
    let id = "t-crash";
    let bundle = s.bundle().to_string();
    rt.created.borrow_mut().push(id.into());

    let create = ["create", "--bundle", &bundle, id];
    let t_create = s.duration(&create, id);
    let run = ["run", "-d", "--bundle", &bundle, id];
    let t_run = s.duration(&run, id);
    eprintln!("create takes {t_create:?}, run -d {t_run:?}");

    for i in 0..points {
        // Spread over the whole command, and a little beyond its end.
        let d = Duration::from_micros(rng.u64(..=(t_create.as_micros() as u64 * 6 / 5)));
        s.kill_and_check(
            &create,
            id,
            d,
            &format!("create killed after {d:?} (point {i})"),
        );
    }
    for i in 0..points {
        let d = Duration::from_micros(rng.u64(..=(t_run.as_micros() as u64 * 6 / 5)));
        s.kill_and_check(&run, id, d, &format!("run killed after {d:?} (point {i})"));
    }
    let delete = ["delete", "--force", id];
    for i in 0..points {
        rt.ok(&["create", "--bundle", &bundle, id]);
        let t = Instant::now();
        let st = Command::new(&rt.bin)
            .arg("--root")
            .arg(&rt.root)
            .args(["state", id])
            .output()
            .unwrap();
        assert!(st.status.success());
        // delete takes a few ms: spread kills over ~1.2 of that, measured
        // on `state` as a floor plus the kill and wait.
        let floor = t.elapsed();
        let d = Duration::from_micros(rng.u64(..=((floor.as_micros() as u64 + 3000) * 2)));
        s.kill_and_check(
            &delete,
            id,
            d,
            &format!("delete killed after {d:?} (point {i})"),
        );
    }
    reap_all();
}
