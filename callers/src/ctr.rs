//! containerd through `ctr`: the runc shim (`containerd-shim-runc-v2`)
//! drives the runtime, as it does for Docker and Kubernetes.

use std::path::PathBuf;

use crate::daemon::{Containerd, Daemon};
use crate::proc::Cmd;
use crate::suite::*;
use crate::{bundle_image, checkpoint, cleanup, record, Env, IMG, IMG_USER};

pub struct Ctr {
    env: Env,
    ctd: Containerd,
    ns: String,
    rts: [RtInfo; 2],
    /// `--runc-root` per runtime.
    roots: [PathBuf; 2],
    fifo: PathBuf,
    events: Daemon,
}

/// Reads a typed line, then reports the terminal's size once the caller has
/// set it (ctr resizes the console after the start, asynchronously; busybox
/// `stty size` of a 0x0 terminal prints nothing and exits 0).
pub const TTY_SCRIPT: &str = "echo ready; read x; echo got:$x; \
    for i in $(seq 25); do s=$(stty size 2>/dev/null); [ -n \"$s\" ] && [ \"$s\" != '0 0' ] && break; sleep 0.2; done; \
    echo size:$s; tty; exit 6";

/// dd's 64M buffer in a 32M cgroup: the kernel kills dd; the init stays a
/// moment, so that the shim's OOM event is not raced by the exit, then
/// exits with dd's status. dd starts a second after the container: the
/// shim registers its OOM eventfd (cgroup v1) only after `start` returns,
/// and an OOM before that is never reported (that race is the caller's,
/// with any runtime: under load `make test-full` lost it with runc in the
/// ctr check and with berth in Docker's).
pub const OOM_SCRIPT: &str =
    "sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1; rc=$?; sleep 1; exit $rc";

/// A container init that reports SIGTERM with exit 7 and keeps a child.
const TRAPPER: &str =
    "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 1 & wait $!; done";

impl Ctr {
    fn ctr(&self) -> Cmd {
        Cmd::new(&["ctr", "-a", self.ctd.sock.to_str().unwrap(), "-n", &self.ns]).timeout(60)
    }
    fn id(&self, rt: Rt, what: &str) -> String {
        format!("{}-{what}", rt.name())
    }
    /// `ctr run` flags that make the shim use this runtime.
    fn rflags(&self, rt: Rt) -> Vec<String> {
        vec![
            "--runc-binary".into(),
            self.rts[rt.idx()].launcher.display().to_string(),
            "--runc-root".into(),
            self.roots[rt.idx()].display().to_string(),
            "--fifo-dir".into(),
            self.fifo.display().to_string(),
        ]
    }
    fn run(&self, rt: Rt) -> Cmd {
        self.ctr().arg("run").args(&self.rflags(rt))
    }
    fn fifo(&self) -> [String; 2] {
        ["--fifo-dir".into(), self.fifo.display().to_string()]
    }
    /// (pid, status) of a task from `ctr task ls`.
    fn task(&self, id: &str) -> Result<(String, String), String> {
        let o = self.ctr().args(&["task", "ls"]).run().check()?;
        for l in o.stdout.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 3 && f[0] == id {
                return Ok((f[1].to_string(), f[2].to_string()));
            }
        }
        Err(format!(
            "no task {id} in `ctr task ls`: {}",
            o.stdout.trim()
        ))
    }
    fn wait_status(&self, id: &str, want: &str, secs: f64) -> Result<(), String> {
        let mut last = String::new();
        poll(secs, || match self.task(id) {
            Ok((_, st)) if st == want => Some(()),
            Ok((_, st)) => {
                last = st;
                None
            }
            Err(e) => {
                last = e;
                None
            }
        })
        .ok_or_else(|| format!("task {id} not {want} after {secs}s (last: {last})"))
    }
    /// Events seen so far for `id`: (topic, payload).
    fn events_for(&self, id: &str) -> Vec<(String, serde_json::Value)> {
        let text = std::fs::read_to_string(&self.events.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let brace = l.find('{')?;
                let topic = l[..brace].split_whitespace().last()?.to_string();
                let v: serde_json::Value = serde_json::from_str(&l[brace..]).ok()?;
                let cid = v["container_id"].as_str().or(v["id"].as_str())?;
                (cid == id).then_some((topic, v))
            })
            .collect()
    }
    /// Remove a task and its container whatever state they are in.
    fn remove(&self, id: &str) {
        if self.task(id).is_ok() {
            let _ = self
                .ctr()
                .args(&["task", "kill", "-s", "KILL", id])
                .timeout(20)
                .run();
            let _ = poll(5.0, || {
                self.task(id)
                    .ok()
                    .filter(|(_, s)| s == "STOPPED")
                    .map(|_| ())
            });
            let _ = self
                .ctr()
                .args(&["task", "delete", "-f", id])
                .timeout(20)
                .run();
        }
        let _ = self.ctr().args(&["container", "rm", id]).timeout(20).run();
    }
    fn state_gone(&self, rt: Rt, id: &str) -> Result<(), String> {
        let root = record::root_of(&self.rts[rt.idx()].rec, id)
            .ok_or(format!("no recorded create of {id}"))?;
        state_gone(&self.env.runtimes[rt.idx()], &root, id)
    }
}

fn c_run(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    let o = s
        .run(rt)
        .args(&[
            "--rm",
            IMG,
            &s.id(rt, "run"),
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .run();
    expect_eq("exit code", o.code, 3).map_err(|e| format!("{e}: {}", o.brief()))?;
    expect_contains("stdout", &o.stdout, "out")?;
    expect_contains("stderr", &o.stderr, "err")?;
    Ok(String::new())
}

fn c_stdin(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    // ctr does not close the task's stdin at EOF: the container reads a line.
    let o = s
        .run(rt)
        .args(&[
            "--rm",
            IMG,
            &s.id(rt, "stdin"),
            "sh",
            "-c",
            "read x; echo got:$x",
        ])
        .stdin(b"data from stdin\n")
        .timeout(30)
        .run();
    let o = o.check()?;
    expect_contains("stdout", &o.stdout, "got:data from stdin")?;
    Ok(String::new())
}

fn c_tty(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    let cmd = s
        .run(rt)
        .args(&["-t", "--rm", IMG, &s.id(rt, "tty"), "sh", "-c"])
        .arg(TTY_SCRIPT)
        .timeout(30);
    let o = run_typed_pty(&cmd);
    expect_eq("exit code", o.code, 6).map_err(|e| format!("{e}: {} {:?}", o.stderr, o.stdout))?;
    expect_contains("terminal", &o.stdout, "got:typed")?;
    expect_contains("terminal size", &o.stdout, "size:40 120")
        .map_err(|e| format!("{e}; whole terminal: {:?}", o.stdout))?;
    expect_contains("tty", &o.stdout, "/dev/pts/")?;
    Ok(String::new())
}

fn c_env_user(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    // The image says User 65534:65534, WorkingDir /tmp, FROM_IMAGE=yes.
    let o = s
        .run(rt)
        .args(&[
            "--rm",
            "--env",
            "FOO=bar",
            "--cwd",
            "/etc",
            IMG_USER,
            &s.id(rt, "env"),
        ])
        .args(&["sh", "-c", "echo $FOO $FROM_IMAGE; pwd; id -u; id -g"])
        .run()
        .check()?;
    expect_eq(
        "output",
        o.stdout.split_whitespace().collect::<Vec<_>>(),
        vec!["bar", "yes", "/etc", "65534", "65534"],
    )?;
    Ok(String::new())
}

fn c_readonly(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    let o = s
        .run(rt)
        .args(&[
            "--rm",
            "--read-only",
            IMG,
            &s.id(rt, "ro"),
            "sh",
            "-c",
            "touch /x; echo rc=$?",
        ])
        .run()
        .check()?;
    expect_contains("stdout", &o.stdout, "rc=1")?;
    expect_contains("stderr", &o.stderr, "Read-only file system")?;
    Ok(String::new())
}

fn c_create_start(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    // `ctr container create` takes no --runc-binary: the container names a
    // runtime whose shim (a wrapper of containerd-shim-runc-v2) finds this
    // runtime as `runc` on its PATH.
    let id = s.id(rt, "created");
    let runtime = format!("io.containerd.callers{}.v2", rt.name());
    s.ctr()
        .args(&[
            "container",
            "create",
            "--runtime",
            &runtime,
            IMG,
            &id,
            "--",
            "sh",
            "-c",
            "echo started; exit 5",
        ])
        .run()
        .check()?;
    let o = s
        .ctr()
        .args(&["task", "start"])
        .args(&s.fifo())
        .arg(&id)
        .run();
    let res = (|| {
        expect_eq("exit code of task start", o.code, 5)
            .map_err(|e| format!("{e}: {}", o.brief()))?;
        expect_contains("stdout", &o.stdout, "started")?;
        // An attached `task start` deletes the task when it exits.
        s.ctr().args(&["container", "rm", &id]).run().check()?;
        Ok(String::new())
    })();
    if res.is_err() {
        s.remove(&id);
    }
    res
}

fn c_detached(s: &Ctr, rt: Rt, sc: &mut Scene) -> CheckResult {
    let id = s.id(rt, "detached");
    s.run(rt)
        .args(&[
            "-d",
            "--memory-limit",
            "67108864",
            IMG,
            &id,
            "sh",
            "-c",
            TRAPPER,
        ])
        .run()
        .check()?;
    sc.set("det", &id);
    let (pid, st) = s.task(&id)?;
    expect_eq("status", st.as_str(), "RUNNING")?;
    let f = cgroup_file(&pid, "memory", "memory.limit_in_bytes")?;
    expect_eq("memory.limit_in_bytes", read_trim(&f)?.as_str(), "67108864")?;
    sc.set("pid", &pid);
    sc.set("memcg", f.parent().unwrap().to_str().unwrap());
    Ok(String::new())
}

fn c_exec(s: &Ctr, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("det")?;
    let o = s
        .ctr()
        .args(&["task", "exec"])
        .args(&s.fifo())
        .args(&[
            "--exec-id",
            "e1",
            &id,
            "sh",
            "-c",
            "echo inexec; id -u; exit 4",
        ])
        .run();
    expect_eq("exit code", o.code, 4).map_err(|e| format!("{e}: {}", o.brief()))?;
    expect_contains("stdout", &o.stdout, "inexec\n0")?;
    Ok(String::new())
}

fn c_exec_tty(s: &Ctr, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("det")?;
    let cmd = s
        .ctr()
        .args(&["task", "exec", "-t"])
        .args(&s.fifo())
        .args(&["--exec-id", "e2", &id, "sh", "-c", EXEC_TTY_SCRIPT])
        .timeout(30);
    exec_tty_result(&run_typed_pty(&cmd))
}

fn c_ps(s: &Ctr, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("det")?;
    let pid = sc.get("pid")?;
    // The shim's Pids is the runtime's `ps --format json`.
    let o = s.ctr().args(&["task", "ps", &id]).run().check()?;
    let listed: Vec<i32> = o
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    if !listed.contains(&pid.parse().unwrap_or(-1)) {
        return Err(format!("init {pid} not in `ctr task ps`: {listed:?}"));
    }
    let now = cgroup_pids(&pid)?;
    for p in &listed {
        if !now.contains(p) && cleanup::stat(*p).is_some() {
            return Err(format!(
                "pid {p} listed but not in the container's cgroup {now:?}"
            ));
        }
    }
    Ok(format!("{} pids", listed.len()))
}

fn c_pause(s: &Ctr, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("det")?;
    let pid = sc.get("pid")?;
    let freezer = cgroup_file(&pid, "freezer", "freezer.state")?;
    s.ctr().args(&["task", "pause", &id]).run().check()?;
    s.wait_status(&id, "PAUSED", 5.0)?;
    expect_eq("freezer.state", read_trim(&freezer)?.as_str(), "FROZEN")?;
    s.ctr().args(&["task", "resume", &id]).run().check()?;
    s.wait_status(&id, "RUNNING", 5.0)?;
    expect_eq(
        "freezer.state after resume",
        read_trim(&freezer)?.as_str(),
        "THAWED",
    )?;
    Ok(String::new())
}

fn c_metrics(s: &Ctr, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("det")?;
    let o = s.ctr().args(&["task", "metrics", &id]).run().check()?;
    let get = |k: &str| {
        o.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_string)
    };
    expect_eq(
        "memory.limit_in_bytes",
        get("memory.limit_in_bytes").as_deref(),
        Some("67108864"),
    )?;
    let pids: u64 = get("pids.current")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if pids == 0 {
        return Err(format!("no pids.current in metrics: {}", o.stdout.trim()));
    }
    Ok(String::new())
}

fn c_kill(s: &Ctr, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("det")?;
    s.ctr()
        .args(&["task", "kill", "-s", "TERM", &id])
        .run()
        .check()?;
    s.wait_status(&id, "STOPPED", 10.0)?;
    let exit = poll(5.0, || {
        s.events_for(&id)
            .into_iter()
            .find(|(t, v)| t == "/tasks/exit" && v["id"] == id.as_str())
            .map(|(_, v)| v["exit_status"].as_u64().unwrap_or(0))
    });
    expect_eq("exit status in the /tasks/exit event", exit, Some(7))?;
    Ok(String::new())
}

fn c_delete(s: &Ctr, rt: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("det")?;
    let memcg = PathBuf::from(sc.get("memcg")?);
    s.ctr().args(&["task", "delete", &id]).run().check()?;
    s.ctr().args(&["container", "rm", &id]).run().check()?;
    sc.take("det");
    s.state_gone(rt, &id)?;
    if memcg.exists() {
        return Err(format!("cgroup {} still there", memcg.display()));
    }
    Ok(String::new())
}

fn c_kill_all(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    let id = s.id(rt, "killall");
    s.run(rt)
        .args(&["-d", IMG, &id, "sh", "-c", "sleep 1000 & sleep 1001 & wait"])
        .run()
        .check()?;
    let res = (|| {
        let (pid, _) = s.task(&id)?;
        let pids = poll(5.0, || cgroup_pids(&pid).ok().filter(|p| p.len() >= 3))
            .ok_or("the container's three processes never showed in its cgroup")?;
        s.ctr()
            .args(&["task", "kill", "--all", "-s", "KILL", &id])
            .run()
            .check()?;
        s.wait_status(&id, "STOPPED", 10.0)?;
        let left: Vec<i32> = pids
            .into_iter()
            .filter(|p| alive_with(*p, "sleep"))
            .collect();
        if !left.is_empty() {
            return Err(format!("still running after kill --all: {left:?}"));
        }
        Ok(String::new())
    })();
    s.remove(&id);
    res
}

fn c_host_pid(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    // A container in the host's pid namespace (this process's: PID 1's
    // cannot be opened here): when its init dies, the shim has the runtime
    // `kill --all` what is left in the cgroup.
    let id = s.id(rt, "hostpid");
    s.run(rt)
        .args(&[
            "-d",
            "--with-ns",
            &format!("pid:/proc/{}/ns/pid", std::process::id()),
            IMG,
            &id,
        ])
        .args(&["sh", "-c", "sleep 1002 & sleep 1003 & wait"])
        .run()
        .check()?;
    let res = (|| {
        let (pid, _) = s.task(&id)?;
        let pids = poll(5.0, || cgroup_pids(&pid).ok().filter(|p| p.len() >= 3))
            .ok_or("the container's three processes never showed in its cgroup")?;
        let children: Vec<i32> = pids.into_iter().filter(|p| p.to_string() != pid).collect();
        s.ctr()
            .args(&["task", "kill", "-s", "KILL", &id])
            .run()
            .check()?;
        s.wait_status(&id, "STOPPED", 10.0)?;
        s.ctr().args(&["task", "delete", &id]).run().check()?;
        let left = poll(3.0, || {
            let l: Vec<i32> = children
                .iter()
                .copied()
                .filter(|p| alive_with(*p, "sleep"))
                .collect();
            l.is_empty().then_some(())
        });
        if left.is_none() {
            let l: Vec<i32> = children
                .iter()
                .copied()
                .filter(|p| alive_with(*p, "sleep"))
                .collect();
            for p in &l {
                crate::proc::kill(*p, libc::SIGKILL);
            }
            return Err(format!(
                "children of the init survived its death and the task's delete: {l:?}"
            ));
        }
        Ok(String::new())
    })();
    s.remove(&id);
    res
}

fn c_oom(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    let id = s.id(rt, "oom");
    let o = s
        .run(rt)
        .args(&["--rm", "--memory-limit", "33554432", IMG, &id])
        .args(&["sh", "-c", OOM_SCRIPT])
        .run();
    expect_eq("exit code", o.code, 137).map_err(|e| format!("{e}: {}", o.brief()))?;
    poll(5.0, || {
        s.events_for(&id)
            .iter()
            .any(|(t, _)| t == "/tasks/oom")
            .then_some(())
    })
    .ok_or("no /tasks/oom event")?;
    Ok(String::new())
}

fn c_missing(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    let o = s
        .run(rt)
        .args(&["--rm", IMG, &s.id(rt, "missing"), "/nonexistent"])
        .run();
    if o.code == 0 {
        return Err("ran".into());
    }
    expect_contains("stderr", &o.stderr, "/nonexistent")?;
    runtime_error_reaches_user(&s.rts[rt.idx()], &o.stderr)
}

/// The runtime's own error message (from its JSON log, as the shim reads
/// it) must be what the user sees.
pub fn runtime_error_reaches_user(rt: &RtInfo, shown: &str) -> CheckResult {
    let tag = record::current_tag(&rt.rec);
    let calls = record::read_calls(&rt.rec);
    let msgs: Vec<String> = calls
        .iter()
        .filter(|c| c.tag == tag && c.cmd == "create")
        .flat_map(|c| c.log_errors())
        .collect();
    let Some(msg) = msgs.last() else {
        return Err("the runtime logged no error for the failed create".into());
    };
    expect_contains("the caller's error", shown, msg)?;
    Ok(format!("runtime said: {msg}"))
}

fn c_events(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    let id = s.id(rt, "detached");
    let topics: Vec<String> = s.events_for(&id).into_iter().map(|(t, _)| t).collect();
    let want = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ];
    let missing: Vec<&str> = want
        .iter()
        .copied()
        .filter(|w| !topics.iter().any(|t| t == w))
        .collect();
    if !missing.is_empty() {
        return Err(format!("events for {id} lack {missing:?} (saw {topics:?})"));
    }
    Ok(String::new())
}

/// `rounds` x 8 `ctr run --rm ... true` at once: a process that ends at
/// once must not fail its start.
fn c_burst(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    let rounds = if s.env.full { 10 } else { 2 };
    let mut failures = Vec::new();
    let mut n = 0;
    for r in 0..rounds {
        let running: Vec<_> = (0..8)
            .map(|i| {
                s.run(rt)
                    .args(&["--rm", IMG, &s.id(rt, &format!("burst-{r}-{i}")), "true"])
                    .start()
            })
            .collect();
        for o in running.into_iter().map(|x| x.finish()) {
            n += 1;
            if o.code != 0 {
                failures.push(o.brief());
            }
        }
        for i in 0..8 {
            let id = s.id(rt, &format!("burst-{r}-{i}"));
            if s.task(&id).is_ok() || s.ctr().args(&["container", "info", &id]).run().ok() {
                s.remove(&id);
            }
        }
    }
    if let Some(first) = failures.first() {
        return Err(format!("{} of {n} failed; first: {first}", failures.len()));
    }
    Ok(format!("{n} runs"))
}

pub fn checks() -> Vec<Check<Ctr>> {
    vec![
        Check {
            name: "run: output + exit code",
            run: c_run,
        },
        Check {
            name: "stdin",
            run: c_stdin,
        },
        Check {
            name: "tty (pty): input, size, tty",
            run: c_tty,
        },
        Check {
            name: "env, cwd, user (image config)",
            run: c_env_user,
        },
        Check {
            name: "read-only rootfs",
            run: c_readonly,
        },
        Check {
            name: "container create + task start",
            run: c_create_start,
        },
        Check {
            name: "detached + memory limit in cgroup",
            run: c_detached,
        },
        Check {
            name: "exec: output + exit code",
            run: c_exec,
        },
        Check {
            name: "exec --tty",
            run: c_exec_tty,
        },
        Check {
            name: "task ps",
            run: c_ps,
        },
        Check {
            name: "pause + resume",
            run: c_pause,
        },
        Check {
            name: "metrics",
            run: c_metrics,
        },
        Check {
            name: "kill TERM (trapped, exit 7)",
            run: c_kill,
        },
        Check {
            name: "delete: state and cgroup gone",
            run: c_delete,
        },
        Check {
            name: "kill --all",
            run: c_kill_all,
        },
        Check {
            name: "host pid ns: no child survives",
            run: c_host_pid,
        },
        Check {
            name: "OOM: exit 137 + oom event",
            run: c_oom,
        },
        Check {
            name: "missing executable: runtime's error",
            run: c_missing,
        },
        Check {
            name: "events",
            run: c_events,
        },
        Check {
            name: "burst: N x 8 `run --rm true` at once",
            run: c_burst,
        },
        Check {
            name: "berth-bundle commit: oci-archive (zstd) import + run",
            run: c_bundle_oci,
        },
        Check {
            name: "berth-bundle commit: docker-archive import + run",
            run: c_bundle_docker,
        },
    ]
}

/// `ctr container checkpoint --task` (ctr pauses the task, the shim has
/// the runtime checkpoint it with --leave-running, ctr resumes it) into an
/// image, the task and container removed, then `ctr container restore
/// --live` from that image (the shim restores at the task's start). The
/// restored rootfs is a fresh snapshot: the first count in its /count is
/// the restored shell's first (1 if it started again). The checkpointed
/// task goes on until it is removed, so that count need only be above the
/// last one seen before the checkpoint.
fn c_checkpoint(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    let id = s.id(rt, "criu");
    let image = format!("localhost/berth-callers/checkpoint-{}:1", rt.name());
    // `ctr container restore` has no --fifo-dir: its stdio FIFOs go to
    // containerd's default dir, and ctr leaves them there when it returns.
    let fifo_dir = PathBuf::from("/run/containerd/fifo");
    cleanup::add_run_dir_if_absent(&fifo_dir);
    let fifos_before = dir_entries(&fifo_dir);
    let t = checkpoint::Steps::new();
    s.run(rt)
        .args(&["-d", IMG, &id, "sh", "-c", checkpoint::COUNTER_FILE])
        .run()
        .check()?;
    let counts = |pid: &str| checkpoint::file_counts(&PathBuf::from(format!("/proc/{pid}/root")));
    let res = (|| {
        let (pid, _) = s.task(&id)?;
        poll(30.0, || counts(&pid).contains(&3).then_some(()))
            .ok_or("the container never counted to 3")?;
        let before = *counts(&pid).last().ok_or("no /count")?;
        t.step("run");
        s.ctr()
            .args(&["container", "checkpoint", "--task", &id, &image])
            .timeout(180)
            .run()
            .check()?;
        t.step("checkpoint");
        s.remove(&id);
        t.step("remove");
        s.ctr()
            .args(&["container", "restore", "--live", &id, &image])
            .timeout(180)
            .run()
            .check()?;
        t.step("restore");
        let (pid, st) = s.task(&id)?;
        expect_eq("restored task", st.as_str(), "RUNNING")?;
        let after = poll(20.0, || counts(&pid).first().copied())
            .ok_or("the restored container never wrote /count")?;
        Ok(format!(
            "{}; {}",
            checkpoint::went_on(before, after, false)?,
            t.report()
        ))
    })();
    s.remove(&id);
    let _ = s.ctr().args(&["images", "rm", &image]).run();
    for e in dir_entries(&fifo_dir) {
        if !fifos_before.contains(&e) {
            let _ = std::fs::remove_dir_all(&e);
        }
    }
    res
}

fn dir_entries(d: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(d)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// `ctr images import` of an archive berth-bundle exported, then `ctr run`
/// of it: the committed file, whiteout and config changes must show.
fn bundle_run(s: &Ctr, rt: Rt, kind: &str) -> CheckResult {
    let (file, name) = bundle_image::archive(&s.env.images.bundle, kind)?;
    s.ctr()
        .args(&["images", "import", file.to_str().unwrap()])
        .timeout(120)
        .run()
        .check()?;
    let ls = s.ctr().args(&["images", "ls", "-q"]).run().check()?;
    if !ls.stdout.lines().any(|l| l.trim() == name) {
        return Err(format!(
            "ctr images import of {} did not name the image {name}: {:?}",
            file.display(),
            ls.stdout.trim()
        ));
    }
    let o = s
        .run(rt)
        .args(&["--rm", name, &s.id(rt, &format!("bundle-{kind}"))])
        .run()
        .check()?;
    bundle_image::check_output(kind, &o.stdout)?;
    Ok(String::new())
}

fn c_bundle_oci(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    bundle_run(s, rt, "flat")
}

fn c_bundle_docker(s: &Ctr, rt: Rt, _: &mut Scene) -> CheckResult {
    bundle_run(s, rt, "overlay")
}

pub fn suite(env: Env) -> Report {
    Report::run(
        "containerd (ctr)",
        || setup(env),
        |s, report| {
            report.versions = versions(s);
            let f = &s.env.filter;
            let mut checks = selected(f, checks());
            checkpoint::gate(f, &mut checks, c_checkpoint, report);
            report.rows = run_checks("ctr", s, &s.rts, &checks, &*s.env.progress);
            teardown(s, &mut report.notes);
        },
    )
}

fn versions(s: &Ctr) -> String {
    let o = s.ctr().arg("version").run();
    let v: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("Version:"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    format!(
        "ctr {}, containerd {}, containerd-shim-runc-v2",
        v.first().unwrap_or(&"?"),
        v.get(1).unwrap_or(&"?")
    )
}

fn setup(env: Env) -> Result<Ctr, String> {
    let dir = env.tmp.clone();
    let bin = dir.join("bin");
    let shims = dir.join("shims");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&shims).map_err(|e| e.to_string())?;
    let ns = env.cgroup.clone();
    let mut rts = Vec::new();
    for rt in Rt::ALL {
        let launcher = bin.join(rt.name());
        let rec = env.records.join(rt.name());
        record::make_launcher(&launcher, &env.runtimes[rt.idx()], &rec, None)?;
        // For `ctr container create`: a shim named for this runtime that
        // finds the launcher as `runc` on its PATH.
        let path_dir = dir.join(format!("path-{}", rt.name()));
        std::fs::create_dir_all(&path_dir).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink(&launcher, path_dir.join("runc")).map_err(|e| e.to_string())?;
        let shim = shims.join(format!("containerd-shim-callers{}-v2", rt.name()));
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\nPATH='{}':\"$PATH\" exec /usr/bin/containerd-shim-runc-v2 \"$@\"\n",
                path_dir.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        rts.push(RtInfo { launcher, rec });
    }
    // Those shims use the runc shim's default root for this namespace.
    let default_root = PathBuf::from("/run/containerd/runc").join(&ns);
    cleanup::add_run_dir_if_absent(&default_root);
    cleanup::add_owned_tree(&default_root);
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let ctd = Containerd::start(&dir.join("containerd"), None, &[("PATH".into(), path)])?;
    let events = Daemon::spawn(
        "ctr events",
        &[
            "ctr".into(),
            "-a".into(),
            ctd.sock.display().to_string(),
            "-n".into(),
            ns.clone(),
            "events".into(),
        ],
        &[],
        &dir.join("events.txt"),
    )?;
    let s = Ctr {
        roots: [dir.join("root-runc"), dir.join("root-berth")],
        fifo: dir.join("fifo"),
        rts: rts.try_into().map_err(|_| "runtimes")?,
        ns,
        ctd,
        events,
        env,
    };
    for img in [&s.env.images.base, &s.env.images.user] {
        s.ctr()
            .args(&["images", "import", img.to_str().unwrap()])
            .timeout(120)
            .run()
            .check()?;
    }
    Ok(s)
}

fn teardown(s: &Ctr, notes: &mut Vec<String>) {
    let o = s.ctr().args(&["container", "ls", "-q"]).run();
    for id in o.stdout.split_whitespace() {
        notes.push(format!("container {id} was left; removed"));
        s.remove(id);
    }
    s.events.stop();
    s.ctd.daemon.stop();
}
