//! Docker: Debian's dockerd (with its own private containerd) and Debian's
//! client, /usr/bin/docker by full path. berth is the default runtime;
//! runc is registered beside it (`--runtime runc-rec`).

use std::path::PathBuf;
use std::time::Instant;

use crate::ctr::{runtime_error_reaches_user, OOM_SCRIPT, TTY_SCRIPT};
use crate::daemon::{Containerd, Daemon};
use crate::proc::{run_pty, Cmd, Step};
use crate::suite::*;
use crate::{record, Env, IMG};

pub const CLIENT: &str = "/usr/bin/docker";

pub struct Docker {
    env: Env,
    ctd: Containerd,
    dockerd: Daemon,
    sock: PathBuf,
    client_cfg: PathBuf,
    rts: [RtInfo; 2],
}

/// Names of the runtimes in dockerd (`runc` itself is reserved).
fn rt_name(rt: Rt) -> &'static str {
    match rt {
        Rt::Runc => "runc-rec",
        Rt::Berth => "berth",
    }
}

/// An init that reports SIGTERM (exit 143) and SIGUSR1, keeping a child.
const TRAPPER: &str = "trap 'echo got-term; exit 143' TERM; trap 'echo got-usr1' USR1; \
    echo ready; while :; do sleep 1 & wait $!; done";

impl Docker {
    fn d(&self) -> Cmd {
        Cmd::new(&[CLIENT, "-H", &format!("unix://{}", self.sock.display())])
            .env("DOCKER_CONFIG", self.client_cfg.to_str().unwrap())
            .timeout(60)
    }
    /// berth is the default runtime: its checks name none.
    fn rtflag(&self, rt: Rt) -> Vec<String> {
        match rt {
            Rt::Runc => vec!["--runtime".into(), rt_name(rt).into()],
            Rt::Berth => vec![],
        }
    }
    fn run(&self, rt: Rt) -> Cmd {
        self.d()
            .arg("run")
            .args(&self.rtflag(rt))
            .args(&["--network", "none"])
    }
    fn name(&self, rt: Rt, what: &str) -> String {
        format!("{}-{what}", rt.name())
    }
    fn inspect(&self, id: &str, fmt: &str) -> Result<String, String> {
        Ok(self
            .d()
            .args(&["inspect", "-f", fmt, id])
            .run()
            .check()?
            .stdout
            .trim()
            .to_string())
    }
    fn rm(&self, id: &str) {
        let _ = self.d().args(&["rm", "-f", id]).run();
    }
    fn logs(&self, id: &str) -> String {
        let o = self.d().args(&["logs", id]).run();
        o.stdout + &o.stderr
    }
    fn wait_logs(&self, id: &str, needle: &str, count: usize, secs: f64) -> Result<(), String> {
        let mut last = String::new();
        poll(secs, || {
            last = self.logs(id);
            (last.matches(needle).count() >= count).then_some(())
        })
        .ok_or_else(|| {
            format!(
                "logs of {id}: wanted {needle:?} x{count}, got {:?}",
                last.trim()
            )
        })
    }
    /// The runtime has no state left for the container (in the root dockerd
    /// gave it, as recorded: dockerd 20.10 names the root after the
    /// container's runtime, `runtime-runc` for the default one).
    fn state_gone(&self, rt: Rt, full_id: &str) -> Result<(), String> {
        let root = record::root_of(&self.rts[rt.idx()].rec, full_id)
            .ok_or(format!("no recorded create of {full_id}"))?;
        state_gone(&self.env.runtimes[rt.idx()], &root, full_id)
    }
    /// Start a detached container; its id and init pid.
    fn detached(
        &self,
        rt: Rt,
        name: &str,
        flags: &[&str],
        cmd: &[&str],
    ) -> Result<(String, String), String> {
        self.rm(name);
        let o = self
            .run(rt)
            .args(&["-d", "--name", name])
            .args(flags)
            .arg(IMG)
            .args(cmd)
            .run()
            .check()?;
        let id = o.stdout.trim().to_string();
        let pid = self.inspect(&id, "{{.State.Pid}}")?;
        Ok((id, pid))
    }
}

fn d_run(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let o = s
        .run(rt)
        .args(&["--rm", IMG, "sh", "-c", "echo out; echo err >&2; exit 3"])
        .run();
    expect_eq("exit code", o.code, 3).map_err(|e| format!("{e}: {}", o.brief()))?;
    expect_contains("stdout", &o.stdout, "out")?;
    expect_contains("stderr", &o.stderr, "err")?;
    Ok(String::new())
}

fn d_stdin(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let o = s
        .run(rt)
        .args(&["-i", "--rm", IMG, "sh", "-c", "cat; echo done"])
        .stdin(b"data from stdin\n")
        .run()
        .check()?;
    expect_eq("stdout", o.stdout.as_str(), "data from stdin\ndone\n")?;
    Ok(String::new())
}

fn d_tty(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let cmd = s
        .run(rt)
        .args(&["-it", "--rm", IMG, "sh", "-c", TTY_SCRIPT])
        .timeout(30);
    let o = run_pty(
        &cmd,
        40,
        120,
        &[Step {
            expect: "ready",
            send: "typed\r",
        }],
    );
    expect_eq("exit code", o.code, 6).map_err(|e| format!("{e}: {} {:?}", o.stderr, o.stdout))?;
    expect_contains("terminal", &o.stdout, "got:typed")?;
    expect_contains("terminal size", &o.stdout, "size:40 120")?;
    expect_contains("tty", &o.stdout, "/dev/pts/")?;
    Ok(String::new())
}

fn d_env(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let o = s
        .run(rt)
        .args(&[
            "--rm",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "-u",
            "65534:65534",
            IMG,
        ])
        .args(&["sh", "-c", "echo $FOO; pwd; id -u; id -g"])
        .run()
        .check()?;
    expect_eq(
        "output",
        o.stdout.split_whitespace().collect::<Vec<_>>(),
        vec!["bar", "/tmp", "65534", "65534"],
    )?;
    Ok(String::new())
}

fn d_readonly(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let o = s
        .run(rt)
        .args(&["--rm", "--read-only", "--tmpfs", "/tmp", IMG])
        .args(&["sh", "-c", "touch /x; echo rc=$?; touch /tmp/y; echo rc=$?"])
        .run()
        .check()?;
    expect_eq("stdout", o.stdout.as_str(), "rc=1\nrc=0\n")?;
    expect_contains("stderr", &o.stderr, "Read-only file system")?;
    Ok(String::new())
}

fn d_detached(s: &Docker, rt: Rt, sc: &mut Scene) -> CheckResult {
    let (id, pid) = s.detached(rt, &s.name(rt, "lc"), &[], &["sh", "-c", TRAPPER])?;
    sc.set("lc", &id);
    s.wait_logs(&id, "ready", 1, 10.0)?;
    sc.set("memcg", cgroup_file(&pid, "memory", "")?.to_str().unwrap());
    Ok(String::new())
}

fn d_exec(s: &Docker, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let o = s
        .d()
        .args(&["exec", &id, "sh", "-c", "echo inexec; id -u; exit 4"])
        .run();
    expect_eq("exit code", o.code, 4).map_err(|e| format!("{e}: {}", o.brief()))?;
    expect_eq("stdout", o.stdout.as_str(), "inexec\n0\n")?;
    Ok(String::new())
}

fn d_exec_tty(s: &Docker, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let cmd = s
        .d()
        .args(&[
            "exec",
            "-it",
            &id,
            "sh",
            "-c",
            "echo ready; read x; echo got:$x; tty",
        ])
        .timeout(30);
    let o = run_pty(
        &cmd,
        40,
        120,
        &[Step {
            expect: "ready",
            send: "typed\r",
        }],
    );
    expect_eq("exit code", o.code, 0).map_err(|e| format!("{e}: {} {:?}", o.stderr, o.stdout))?;
    expect_contains("terminal", &o.stdout, "got:typed")?;
    expect_contains("tty", &o.stdout, "/dev/pts/")?;
    Ok(String::new())
}

fn d_top(s: &Docker, _: Rt, sc: &mut Scene) -> CheckResult {
    // dockerd asks the shim, which runs the runtime's `ps --format json`.
    let id = sc.get("lc")?;
    let pid = s.inspect(&id, "{{.State.Pid}}")?;
    let o = s.d().args(&["top", &id]).run().check()?;
    let pids: Vec<&str> = o
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    if !pids.contains(&pid.as_str()) {
        return Err(format!("init {pid} not in docker top: {}", o.stdout.trim()));
    }
    Ok(format!("{} processes", pids.len()))
}

fn d_stats(s: &Docker, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let o = s
        .d()
        .args(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.MemUsage}}|{{.PIDs}}",
            &id,
        ])
        .run()
        .check()?;
    let line = o.stdout.trim();
    let (mem, pids) = line.split_once('|').ok_or(format!("stats: {line:?}"))?;
    if mem.starts_with("0B") || pids.trim().parse::<u64>().unwrap_or(0) == 0 {
        return Err(format!("stats show nothing: {line:?}"));
    }
    Ok(line.to_string())
}

fn d_pause(s: &Docker, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let pid = s.inspect(&id, "{{.State.Pid}}")?;
    let freezer = cgroup_file(&pid, "freezer", "freezer.state")?;
    s.d().args(&["pause", &id]).run().check()?;
    expect_eq(
        "status",
        s.inspect(&id, "{{.State.Status}}")?.as_str(),
        "paused",
    )?;
    expect_eq("freezer.state", read_trim(&freezer)?.as_str(), "FROZEN")?;
    s.d().args(&["unpause", &id]).run().check()?;
    expect_eq(
        "status",
        s.inspect(&id, "{{.State.Status}}")?.as_str(),
        "running",
    )?;
    expect_eq("freezer.state", read_trim(&freezer)?.as_str(), "THAWED")?;
    Ok(String::new())
}

fn d_kill_usr1(s: &Docker, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    s.d().args(&["kill", "-s", "USR1", &id]).run().check()?;
    s.wait_logs(&id, "got-usr1", 1, 5.0)?;
    expect_eq(
        "status",
        s.inspect(&id, "{{.State.Status}}")?.as_str(),
        "running",
    )?;
    Ok(String::new())
}

fn d_stop(s: &Docker, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let t0 = Instant::now();
    s.d().args(&["stop", "-t", "10", &id]).run().check()?;
    let secs = t0.elapsed().as_secs_f64();
    expect_eq(
        "exit code",
        s.inspect(&id, "{{.State.ExitCode}}")?.as_str(),
        "143",
    )?;
    s.wait_logs(&id, "got-term", 1, 5.0)?;
    if secs > 8.0 {
        return Err(format!("stop took {secs:.1}s: SIGTERM did not end it"));
    }
    Ok(format!("{secs:.1}s"))
}

fn d_start(s: &Docker, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    s.d().args(&["start", &id]).run().check()?;
    expect_eq(
        "status",
        s.inspect(&id, "{{.State.Status}}")?.as_str(),
        "running",
    )?;
    s.wait_logs(&id, "ready", 2, 10.0)?;
    Ok(String::new())
}

fn d_restart(s: &Docker, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let before = s.inspect(&id, "{{.State.StartedAt}}")?;
    s.d().args(&["restart", "-t", "10", &id]).run().check()?;
    expect_eq(
        "status",
        s.inspect(&id, "{{.State.Status}}")?.as_str(),
        "running",
    )?;
    if s.inspect(&id, "{{.State.StartedAt}}")? == before {
        return Err("StartedAt did not change".into());
    }
    s.wait_logs(&id, "ready", 3, 10.0)?;
    Ok(String::new())
}

fn d_rm_f(s: &Docker, rt: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let memcg = PathBuf::from(sc.get("memcg")?);
    s.d().args(&["rm", "-f", &id]).run().check()?;
    sc.take("lc");
    let o = s
        .d()
        .args(&["ps", "-aq", "--no-trunc", "--filter", &format!("id={id}")])
        .run()
        .check()?;
    if !o.stdout.trim().is_empty() {
        return Err(format!("still listed: {}", o.stdout.trim()));
    }
    s.state_gone(rt, &id)?;
    if memcg.exists() {
        return Err(format!("cgroup {} still there", memcg.display()));
    }
    Ok(String::new())
}

fn d_memory(s: &Docker, rt: Rt, sc: &mut Scene) -> CheckResult {
    let (id, pid) = s.detached(
        rt,
        &s.name(rt, "mem"),
        &["--memory", "64m"],
        &["sleep", "300"],
    )?;
    sc.set("mem", &id);
    sc.set("mempid", &pid);
    let f = cgroup_file(&pid, "memory", "memory.limit_in_bytes")?;
    expect_eq("memory.limit_in_bytes", read_trim(&f)?.as_str(), "67108864")?;
    Ok(String::new())
}

fn d_update(s: &Docker, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("mem")?;
    let pid = sc.get("mempid")?;
    let res = (|| {
        s.d()
            .args(&["update", "--memory", "96m", "--memory-swap", "192m", &id])
            .run()
            .check()?;
        let f = cgroup_file(&pid, "memory", "memory.limit_in_bytes")?;
        expect_eq(
            "memory.limit_in_bytes",
            read_trim(&f)?.as_str(),
            "100663296",
        )?;
        expect_eq(
            "HostConfig.Memory",
            s.inspect(&id, "{{.HostConfig.Memory}}")?.as_str(),
            "100663296",
        )?;
        Ok(String::new())
    })();
    s.rm(&id);
    sc.take("mem");
    res
}

fn d_oom(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let name = s.name(rt, "oom");
    s.rm(&name);
    let o = s
        .run(rt)
        .args(&[
            "--name",
            &name,
            "--memory",
            "32m",
            "--memory-swap",
            "32m",
            IMG,
        ])
        .args(&["sh", "-c", OOM_SCRIPT])
        .run();
    let res = (|| {
        expect_eq("exit code", o.code, 137).map_err(|e| format!("{e}: {}", o.brief()))?;
        expect_eq(
            "OOMKilled",
            s.inspect(&name, "{{.State.OOMKilled}}")?.as_str(),
            "true",
        )?;
        Ok(String::new())
    })();
    s.rm(&name);
    res
}

fn d_pids(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let (id, pid) = s.detached(
        rt,
        &s.name(rt, "pids"),
        &["--pids-limit", "12"],
        &["sleep", "300"],
    )?;
    let res = (|| {
        let f = cgroup_file(&pid, "pids", "pids.max")?;
        expect_eq("pids.max", read_trim(&f)?.as_str(), "12")?;
        Ok(String::new())
    })();
    s.rm(&id);
    res
}

fn d_cpus(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let (id, pid) = s.detached(
        rt,
        &s.name(rt, "cpus"),
        &["--cpus", "0.5"],
        &["sleep", "300"],
    )?;
    let res = (|| {
        let q = read_trim(&cgroup_file(&pid, "cpu", "cpu.cfs_quota_us")?)?;
        let p = read_trim(&cgroup_file(&pid, "cpu", "cpu.cfs_period_us")?)?;
        expect_eq(
            "cpu.cfs_quota_us/cpu.cfs_period_us",
            (q.as_str(), p.as_str()),
            ("50000", "100000"),
        )?;
        Ok(String::new())
    })();
    s.rm(&id);
    res
}

fn d_init(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let (id, pid) = s.detached(rt, &s.name(rt, "init"), &["--init"], &["sleep", "300"])?;
    let res = (|| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        expect_contains("the init's command line", &cmdline, "docker-init")?;
        // docker-init passes SIGTERM on; sleep dies of it: 143, at once.
        let t0 = Instant::now();
        s.d().args(&["stop", "-t", "10", &id]).run().check()?;
        let secs = t0.elapsed().as_secs_f64();
        expect_eq(
            "exit code",
            s.inspect(&id, "{{.State.ExitCode}}")?.as_str(),
            "143",
        )?;
        if secs > 8.0 {
            return Err(format!("stop took {secs:.1}s"));
        }
        Ok(String::new())
    })();
    s.rm(&id);
    res
}

fn d_pid_host(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let marker = match rt {
        Rt::Runc => ["2001", "2002"],
        Rt::Berth => ["2003", "2004"],
    };
    let script = format!(
        "sleep {} & sleep {} & echo ready; wait",
        marker[0], marker[1]
    );
    let (id, pid) = s.detached(
        rt,
        &s.name(rt, "pidhost"),
        &["--pid", "host"],
        &["sh", "-c", &script],
    )?;
    let pids = match poll(5.0, || cgroup_pids(&pid).ok().filter(|p| p.len() >= 3)) {
        Some(p) => p,
        None => {
            s.rm(&id);
            return Err("the container's three processes never showed in its cgroup".into());
        }
    };
    let children: Vec<i32> = pids.into_iter().filter(|p| p.to_string() != pid).collect();
    let rm = s.d().args(&["rm", "-f", &id]).run();
    let gone = poll(5.0, || {
        children
            .iter()
            .all(|p| !alive_with(*p, "sleep"))
            .then_some(())
    });
    let left: Vec<i32> = children
        .iter()
        .copied()
        .filter(|p| alive_with(*p, "sleep"))
        .collect();
    for p in &left {
        crate::proc::kill(*p, libc::SIGKILL);
    }
    rm.check()?;
    if gone.is_none() {
        return Err(format!(
            "background children survived `docker rm -f`: {left:?}"
        ));
    }
    Ok(String::new())
}

fn d_run_rm(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let name = s.name(rt, "rm");
    s.run(rt)
        .args(&["--rm", "--name", &name, IMG, "true"])
        .run()
        .check()?;
    let o = s
        .d()
        .args(&["ps", "-aq", "--filter", &format!("name=^{name}$")])
        .run()
        .check()?;
    if !o.stdout.trim().is_empty() {
        return Err(format!(
            "container still listed after --rm: {}",
            o.stdout.trim()
        ));
    }
    // The runtime's state too: the id is the one the shim created.
    let calls = record::read_calls(&s.rts[rt.idx()].rec);
    let tag = record::current_tag(&s.rts[rt.idx()].rec);
    let created: Vec<&record::Call> = calls
        .iter()
        .filter(|c| c.tag == tag && c.cmd == "create")
        .collect();
    let id = created
        .last()
        .and_then(|c| c.argv.last())
        .ok_or("no create call recorded")?;
    s.state_gone(rt, id)?;
    Ok(String::new())
}

fn d_missing(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let name = s.name(rt, "missing");
    s.rm(&name);
    let o = s
        .run(rt)
        .args(&["--name", &name, IMG, "/nonexistent"])
        .run();
    s.rm(&name);
    expect_eq("exit code", o.code, 127).map_err(|e| format!("{e}: {}", o.brief()))?;
    expect_contains("stderr", &o.stderr, "/nonexistent")?;
    runtime_error_reaches_user(&s.rts[rt.idx()], &o.stderr)
}

fn d_commit(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let name = s.name(rt, "commit");
    let image = format!("localhost/berth-callers/committed-{}:1", rt.name());
    let (id, _) = s.detached(
        rt,
        &name,
        &[],
        &[
            "sh",
            "-c",
            "echo committed > /marker; echo ready; sleep 300",
        ],
    )?;
    let res = (|| {
        s.wait_logs(&id, "ready", 1, 10.0)?;
        // A running container is paused while it is committed.
        s.d().args(&["commit", &id, &image]).run().check()?;
        let o = s
            .run(rt)
            .args(&["--rm", &image, "cat", "/marker"])
            .run()
            .check()?;
        expect_eq("the new image's /marker", o.stdout.as_str(), "committed\n")?;
        Ok(String::new())
    })();
    s.rm(&id);
    let _ = s.d().args(&["rmi", &image]).run();
    res
}

fn d_health(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let flags = [
        "--health-cmd",
        "test -e /tmp/healthy",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "--health-timeout",
        "5s",
    ];
    let (id, _) = s.detached(
        rt,
        &s.name(rt, "health"),
        &flags,
        &["sh", "-c", "touch /tmp/healthy; sleep 300"],
    )?;
    let mut last = String::new();
    let ok = poll(20.0, || {
        last = s
            .inspect(&id, "{{.State.Health.Status}}")
            .unwrap_or_default();
        (last == "healthy").then_some(())
    });
    s.rm(&id);
    ok.ok_or(format!("health status {last:?} after 20s"))?;
    Ok(String::new())
}

/// `rounds` x 8 containers started at once with `docker start -a`.
fn burst(s: &Docker, rt: Rt, rounds: usize) -> CheckResult {
    let mut failures = Vec::new();
    let mut n = 0;
    for r in 0..rounds {
        let mut ids = Vec::new();
        for i in 0..8 {
            let name = s.name(rt, &format!("burst-{r}-{i}"));
            s.rm(&name);
            let o = s
                .d()
                .args(&["create", "--network", "none", "--name", &name])
                .args(&s.rtflag(rt))
                .args(&[IMG, "true"])
                .run()
                .check()?;
            ids.push(o.stdout.trim().to_string());
        }
        let running: Vec<_> = ids
            .iter()
            .map(|id| s.d().args(&["start", "-a", id]).start())
            .collect();
        for o in running.into_iter().map(|r| r.finish()) {
            n += 1;
            if o.code != 0 {
                failures.push(o.brief());
            }
        }
        for id in &ids {
            s.rm(id);
        }
    }
    if let Some(first) = failures.first() {
        return Err(format!("{} of {n} failed; first: {first}", failures.len()));
    }
    Ok(format!("{n} starts"))
}

fn d_burst(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    burst(s, rt, if s.env.full { 12 } else { 3 })
}

pub fn checks() -> Vec<Check<Docker>> {
    vec![
        Check {
            name: "run: output + exit code",
            run: d_run,
        },
        Check {
            name: "stdin (-i)",
            run: d_stdin,
        },
        Check {
            name: "tty (-it, pty): input, size, tty",
            run: d_tty,
        },
        Check {
            name: "env, workdir, user",
            run: d_env,
        },
        Check {
            name: "--read-only (+ --tmpfs)",
            run: d_readonly,
        },
        Check {
            name: "-d + logs",
            run: d_detached,
        },
        Check {
            name: "exec: output + exit code",
            run: d_exec,
        },
        Check {
            name: "exec -it",
            run: d_exec_tty,
        },
        Check {
            name: "top",
            run: d_top,
        },
        Check {
            name: "stats",
            run: d_stats,
        },
        Check {
            name: "pause + unpause",
            run: d_pause,
        },
        Check {
            name: "kill -s USR1",
            run: d_kill_usr1,
        },
        Check {
            name: "stop: SIGTERM, exit 143",
            run: d_stop,
        },
        Check {
            name: "start again",
            run: d_start,
        },
        Check {
            name: "restart",
            run: d_restart,
        },
        Check {
            name: "rm -f: state and cgroup gone",
            run: d_rm_f,
        },
        Check {
            name: "--memory: limit in cgroup",
            run: d_memory,
        },
        Check {
            name: "update --memory",
            run: d_update,
        },
        Check {
            name: "OOM: exit 137 + OOMKilled",
            run: d_oom,
        },
        Check {
            name: "--pids-limit",
            run: d_pids,
        },
        Check {
            name: "--cpus",
            run: d_cpus,
        },
        Check {
            name: "--init: docker-init, stop 143",
            run: d_init,
        },
        Check {
            name: "--pid host: no child survives rm -f",
            run: d_pid_host,
        },
        Check {
            name: "run --rm",
            run: d_run_rm,
        },
        Check {
            name: "missing executable: 127 + runtime's error",
            run: d_missing,
        },
        Check {
            name: "commit + run the new image",
            run: d_commit,
        },
        Check {
            name: "healthcheck",
            run: d_health,
        },
        Check {
            name: "burst: N x 8 `start -a` at once",
            run: d_burst,
        },
    ]
}

pub fn suite(env: Env) -> Report {
    let t0 = Instant::now();
    let mut report = Report {
        caller: "Docker".into(),
        versions: String::new(),
        rows: Vec::new(),
        notes: Vec::new(),
        secs: 0.0,
        setup_error: None,
    };
    match setup(env) {
        Ok(s) => {
            report.versions = versions(&s);
            (s.env.progress)(&format!("docker: {}", report.versions));
            report.rows = run_checks("docker", &s, &s.rts, &checks(), &*s.env.progress);
            teardown(&s, &mut report.notes);
        }
        Err(e) => report.setup_error = Some(e),
    }
    report.secs = t0.elapsed().as_secs_f64();
    report
}

fn versions(s: &Docker) -> String {
    let o = s
        .d()
        .args(&[
            "version",
            "--format",
            "{{.Client.Version}}|{{.Server.Version}}|{{.Server.APIVersion}}",
        ])
        .run();
    let v: Vec<String> = o.stdout.trim().split('|').map(str::to_string).collect();
    format!(
        "client {CLIENT} {}, dockerd {} (API {}), its own containerd",
        v.first().map(String::as_str).unwrap_or("?"),
        v.get(1).map(String::as_str).unwrap_or("?"),
        v.get(2).map(String::as_str).unwrap_or("?")
    )
}

fn setup(env: Env) -> Result<Docker, String> {
    let dir = env.tmp.clone();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    let mut rts = Vec::new();
    for rt in Rt::ALL {
        let launcher = bin.join(rt_name(rt));
        let rec = env.records.join(rt.name());
        record::make_launcher(&launcher, &env.runtimes[rt.idx()], &rec, None)?;
        rts.push(RtInfo { launcher, rec });
    }
    let rts: [RtInfo; 2] = rts.try_into().map_err(|_| "runtimes")?;
    let ctd = Containerd::start(&dir.join("containerd"), None, &[])?;
    let sock = dir.join("docker.sock");
    let cfg = dir.join("daemon.json");
    // An empty config file: /etc/docker/daemon.json is not read.
    std::fs::write(&cfg, "{}\n").map_err(|e| e.to_string())?;
    let argv: Vec<String> = [
        "dockerd".to_string(),
        format!("--config-file={}", cfg.display()),
        format!("--data-root={}", dir.join("data").display()),
        format!("--exec-root={}", dir.join("exec").display()),
        format!("--pidfile={}", dir.join("dockerd.pid").display()),
        format!("--host=unix://{}", sock.display()),
        format!("--containerd={}", ctd.sock.display()),
        "--iptables=false".into(),
        "--ip6tables=false".into(),
        "--ip-masq=false".into(),
        "--bridge=none".into(),
        "--userland-proxy=false".into(),
        // The default (-500) needs CAP_SYS_RESOURCE, which root lacks here.
        "--oom-score-adjust=0".into(),
        "--storage-driver=overlay2".into(),
        "--exec-opt=native.cgroupdriver=cgroupfs".into(),
        format!("--cgroup-parent=/{}/docker", env.cgroup),
        format!("--add-runtime=berth={}", rts[1].launcher.display()),
        format!("--add-runtime=runc-rec={}", rts[0].launcher.display()),
        "--default-runtime=berth".into(),
    ]
    .to_vec();
    let dockerd = Daemon::spawn("dockerd", &argv, &[], &dir.join("dockerd.log"))?;
    let client_cfg = dir.join("client");
    std::fs::create_dir_all(&client_cfg).map_err(|e| e.to_string())?;
    let s = Docker {
        env,
        ctd,
        dockerd,
        sock,
        client_cfg,
        rts,
    };
    s.dockerd.wait_ready(60.0, || {
        s.sock.exists() && s.d().arg("version").timeout(10).run().ok()
    })?;
    for img in [&s.env.images.base, &s.env.images.user] {
        s.d()
            .args(&["load", "-i", img.to_str().unwrap()])
            .timeout(120)
            .run()
            .check()?;
    }
    Ok(s)
}

fn teardown(s: &Docker, notes: &mut Vec<String>) {
    let o = s.d().args(&["ps", "-aq"]).run();
    for id in o.stdout.split_whitespace() {
        notes.push(format!("container {id} was left; removed"));
        s.rm(id);
    }
    let log = std::fs::read_to_string(&s.dockerd.log).unwrap_or_default();
    if let Some(l) = log
        .lines()
        .find(|l| l.contains("failed to parse") && l.contains("version"))
    {
        notes.push(format!("dockerd: {}", l.trim()));
    }
    s.dockerd.stop();
    s.ctd.daemon.stop();
}
