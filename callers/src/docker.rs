//! Docker: Debian's dockerd (with its own private containerd) and Debian's
//! client, /usr/bin/docker by full path. berth is the default runtime;
//! runc is registered beside it (`--runtime runc-rec`).

use std::path::PathBuf;
use std::time::Instant;

use crate::ctr::{runtime_error_reaches_user, OOM_SCRIPT};
use crate::daemon::{Containerd, Daemon};
use crate::docker_cli::{self as dc, DockerCli};
use crate::proc::Cmd;
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

impl Docker {
    /// berth is the default runtime: its checks name none.
    fn rtflag(&self, rt: Rt) -> Vec<String> {
        match rt {
            Rt::Runc => vec!["--runtime".into(), rt_name(rt).into()],
            Rt::Berth => vec![],
        }
    }
}

impl DockerCli for Docker {
    fn cli(&self) -> Cmd {
        Cmd::new(&[CLIENT, "-H", &format!("unix://{}", self.sock.display())])
            .env("DOCKER_CONFIG", self.client_cfg.to_str().unwrap())
            .timeout(60)
    }
    /// No network.
    fn with_runtime(&self, sub: &str, rt: Rt) -> Cmd {
        self.cli()
            .arg(sub)
            .args(&self.rtflag(rt))
            .args(&["--network", "none"])
    }
    fn rm(&self, id: &str) {
        let _ = self.cli().args(&["rm", "-f", id]).run();
    }
    fn id_in(&self, stdout: &str) -> String {
        stdout.trim().to_string()
    }
    fn env(&self) -> &Env {
        &self.env
    }
    fn rts(&self) -> &[RtInfo; 2] {
        &self.rts
    }
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

fn d_top(s: &Docker, _: Rt, sc: &mut Scene) -> CheckResult {
    // dockerd asks the shim, which runs the runtime's `ps --format json`.
    let id = sc.get("lc")?;
    let pid = s.inspect(&id, "{{.State.Pid}}")?;
    let o = s.cli().args(&["top", &id]).run().check()?;
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

fn d_restart(s: &Docker, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let before = s.inspect(&id, "{{.State.StartedAt}}")?;
    s.cli().args(&["restart", "-t", "10", &id]).run().check()?;
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
    dc::rm_gone(s, rt, sc, &["-f"])
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
        s.cli()
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
    s.with_detached(
        rt,
        "pids",
        &["--pids-limit", "12"],
        &["sleep", "300"],
        |_, pid| {
            let f = cgroup_file(pid, "pids", "pids.max")?;
            expect_eq("pids.max", read_trim(&f)?.as_str(), "12")?;
            Ok(String::new())
        },
    )
}

fn d_cpus(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    s.with_detached(
        rt,
        "cpus",
        &["--cpus", "0.5"],
        &["sleep", "300"],
        |_, pid| {
            let q = read_trim(&cgroup_file(pid, "cpu", "cpu.cfs_quota_us")?)?;
            let p = read_trim(&cgroup_file(pid, "cpu", "cpu.cfs_period_us")?)?;
            expect_eq(
                "cpu.cfs_quota_us/cpu.cfs_period_us",
                (q.as_str(), p.as_str()),
                ("50000", "100000"),
            )?;
            Ok(String::new())
        },
    )
}

fn d_init(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    s.with_detached(rt, "init", &["--init"], &["sleep", "300"], |id, pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        expect_contains("the init's command line", &cmdline, "docker-init")?;
        // docker-init passes SIGTERM on; sleep dies of it: 143, at once.
        let t0 = Instant::now();
        s.cli().args(&["stop", "-t", "10", id]).run().check()?;
        let secs = t0.elapsed().as_secs_f64();
        expect_eq(
            "exit code",
            s.inspect(id, "{{.State.ExitCode}}")?.as_str(),
            "143",
        )?;
        if secs > 8.0 {
            return Err(format!("stop took {secs:.1}s"));
        }
        Ok(String::new())
    })
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
    let rm = s.cli().args(&["rm", "-f", &id]).run();
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

fn d_missing(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let o = dc::run_missing(s, rt)?;
    runtime_error_reaches_user(&s.rts[rt.idx()], &o.stderr)
}

fn d_commit(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    let image = format!("localhost/berth-callers/committed-{}:1", rt.name());
    let script = "echo committed > /marker; echo ready; sleep 300";
    let res = s.with_detached(rt, "commit", &[], &["sh", "-c", script], |id, _| {
        s.wait_logs(id, "ready", 1, 10.0)?;
        // A running container is paused while it is committed.
        s.cli().args(&["commit", id, &image]).run().check()?;
        let o = s
            .run(rt)
            .args(&["--rm", &image, "cat", "/marker"])
            .run()
            .check()?;
        expect_eq("the new image's /marker", o.stdout.as_str(), "committed\n")?;
        Ok(String::new())
    });
    let _ = s.cli().args(&["rmi", &image]).run();
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

fn d_burst(s: &Docker, rt: Rt, _: &mut Scene) -> CheckResult {
    dc::burst(s, rt, if s.env.full { 12 } else { 3 })
}

pub fn checks() -> Vec<Check<Docker>> {
    vec![
        Check {
            name: "run: output + exit code",
            run: dc::run_output,
        },
        Check {
            name: "stdin (-i)",
            run: dc::stdin,
        },
        Check {
            name: "tty (-it, pty): input, size, tty",
            run: dc::tty,
        },
        Check {
            name: "env, workdir, user",
            run: dc::env_workdir_user,
        },
        Check {
            name: "--read-only (+ --tmpfs)",
            run: d_readonly,
        },
        Check {
            name: "-d + logs",
            run: dc::detached_logs,
        },
        Check {
            name: "exec: output + exit code",
            run: dc::exec,
        },
        Check {
            name: "exec -it",
            run: dc::exec_tty,
        },
        Check {
            name: "top",
            run: d_top,
        },
        Check {
            name: "stats",
            run: dc::stats,
        },
        Check {
            name: "pause + unpause",
            run: dc::pause,
        },
        Check {
            name: "kill -s USR1",
            run: dc::kill_usr1,
        },
        Check {
            name: "stop: SIGTERM, exit 143",
            run: dc::stop,
        },
        Check {
            name: "start again",
            run: dc::start_again,
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
            run: dc::run_rm,
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
    Report::run(
        "Docker",
        || setup(env),
        |s, report| {
            report.versions = versions(s);
            (s.env.progress)(&format!("docker: {}", report.versions));
            let checks = selected(&s.env.filter, checks());
            report.rows = run_checks("docker", s, &s.rts, &checks, &*s.env.progress);
            teardown(s, &mut report.notes);
        },
    )
}

fn versions(s: &Docker) -> String {
    let o = s
        .cli()
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
        s.sock.exists() && s.cli().arg("version").timeout(10).run().ok()
    })?;
    for img in [&s.env.images.base, &s.env.images.user] {
        s.cli()
            .args(&["load", "-i", img.to_str().unwrap()])
            .timeout(120)
            .run()
            .check()?;
    }
    Ok(s)
}

fn teardown(s: &Docker, notes: &mut Vec<String>) {
    let o = s.cli().args(&["ps", "-aq"]).run();
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
