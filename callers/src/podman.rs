//! podman (rootful, cgroupfs manager, host network): conmon drives the
//! runtime. Everything podman keeps is under the suite's temp dir, its
//! locks included (`lock_type = "file"`: the default SHM lock segment is
//! shared by every podman on the host).

use std::path::PathBuf;
use std::time::Instant;

use crate::ctr::TTY_SCRIPT;
use crate::proc::{run_pty, Cmd, Step};
use crate::suite::*;
use crate::{bundle_image, record, Env, IMG};

pub struct Podman {
    env: Env,
    dir: PathBuf,
    rts: [RtInfo; 2],
}

const TRAPPER: &str = "trap 'echo got-term; exit 143' TERM; trap 'echo got-usr1' USR1; \
    echo ready; while :; do sleep 1 & wait $!; done";

impl Podman {
    fn p(&self) -> Cmd {
        let d = &self.dir;
        Cmd::new(&["podman"])
            .arg(format!("--root={}", d.join("graph").display()))
            .arg(format!("--runroot={}", d.join("runroot").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--network-config-dir={}", d.join("cni").display()))
            .args(&[
                "--cgroup-manager=cgroupfs",
                "--events-backend=file",
                "--storage-driver=overlay",
            ])
            .env(
                "CONTAINERS_CONF",
                d.join("containers.conf").to_str().unwrap(),
            )
            .env(
                "CONTAINERS_STORAGE_CONF",
                d.join("storage.conf").to_str().unwrap(),
            )
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                d.join("registries.conf").to_str().unwrap(),
            )
            .env("TMPDIR", d.join("tmp-images").to_str().unwrap())
            .timeout(60)
    }
    /// `podman run` with this runtime, this run's cgroup parent, host network.
    fn run(&self, rt: Rt) -> Cmd {
        self.p()
            .arg("run")
            .arg(format!(
                "--runtime={}",
                self.rts[rt.idx()].launcher.display()
            ))
            .arg(format!("--cgroup-parent=/{}/podman", self.env.cgroup))
            .args(&["--network=host", "--pull=never"])
    }
    fn name(&self, rt: Rt, what: &str) -> String {
        format!("{}-{what}", rt.name())
    }
    fn inspect(&self, id: &str, fmt: &str) -> Result<String, String> {
        Ok(self
            .p()
            .args(&["inspect", "-f", fmt, id])
            .run()
            .check()?
            .stdout
            .trim()
            .to_string())
    }
    fn rm(&self, id: &str) {
        let _ = self.p().args(&["rm", "-f", "-t", "0", id]).run();
    }
    fn logs(&self, id: &str) -> String {
        let o = self.p().args(&["logs", id]).run();
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
    fn state_gone(&self, rt: Rt, id: &str) -> Result<(), String> {
        let root = record::root_of(&self.rts[rt.idx()].rec, id)
            .ok_or(format!("no recorded create of {id}"))?;
        state_gone(&self.env.runtimes[rt.idx()], &root, id)
    }
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
        let id = o.stdout.trim().lines().last().unwrap_or("").to_string();
        let pid = self.inspect(&id, "{{.State.Pid}}")?;
        Ok((id, pid))
    }
}

fn p_run(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
    let o = s
        .run(rt)
        .args(&["--rm", IMG, "sh", "-c", "echo out; echo err >&2; exit 3"])
        .run();
    expect_eq("exit code", o.code, 3).map_err(|e| format!("{e}: {}", o.brief()))?;
    expect_contains("stdout", &o.stdout, "out")?;
    expect_contains("stderr", &o.stderr, "err")?;
    Ok(String::new())
}

fn p_stdin(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
    let o = s
        .run(rt)
        .args(&["-i", "--rm", IMG, "sh", "-c", "cat; echo done"])
        .stdin(b"data from stdin\n")
        .run()
        .check()?;
    expect_eq("stdout", o.stdout.as_str(), "data from stdin\ndone\n")?;
    Ok(String::new())
}

fn p_tty(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
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

fn p_env(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
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

fn p_detached(s: &Podman, rt: Rt, sc: &mut Scene) -> CheckResult {
    let (id, pid) = s.detached(rt, &s.name(rt, "lc"), &[], &["sh", "-c", TRAPPER])?;
    sc.set("lc", &id);
    s.wait_logs(&id, "ready", 1, 10.0)?;
    sc.set("memcg", cgroup_file(&pid, "memory", "")?.to_str().unwrap());
    Ok(String::new())
}

fn p_exec(s: &Podman, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let o = s
        .p()
        .args(&["exec", &id, "sh", "-c", "echo inexec; id -u; exit 4"])
        .run();
    expect_eq("exit code", o.code, 4).map_err(|e| format!("{e}: {}", o.brief()))?;
    expect_eq("stdout", o.stdout.as_str(), "inexec\n0\n")?;
    Ok(String::new())
}

fn p_exec_tty(s: &Podman, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let cmd = s
        .p()
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

fn p_top(s: &Podman, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let pid = s.inspect(&id, "{{.State.Pid}}")?;
    let o = s.p().args(&["top", &id, "hpid", "args"]).run().check()?;
    if !o
        .stdout
        .lines()
        .any(|l| l.split_whitespace().next() == Some(pid.as_str()))
    {
        return Err(format!("init {pid} not in podman top: {}", o.stdout.trim()));
    }
    Ok(String::new())
}

fn p_stats(s: &Podman, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let o = s
        .p()
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

fn p_pause(s: &Podman, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let pid = s.inspect(&id, "{{.State.Pid}}")?;
    let freezer = cgroup_file(&pid, "freezer", "freezer.state")?;
    s.p().args(&["pause", &id]).run().check()?;
    expect_eq(
        "status",
        s.inspect(&id, "{{.State.Status}}")?.as_str(),
        "paused",
    )?;
    expect_eq("freezer.state", read_trim(&freezer)?.as_str(), "FROZEN")?;
    s.p().args(&["unpause", &id]).run().check()?;
    expect_eq(
        "status",
        s.inspect(&id, "{{.State.Status}}")?.as_str(),
        "running",
    )?;
    expect_eq("freezer.state", read_trim(&freezer)?.as_str(), "THAWED")?;
    Ok(String::new())
}

fn p_kill_usr1(s: &Podman, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    s.p().args(&["kill", "-s", "USR1", &id]).run().check()?;
    s.wait_logs(&id, "got-usr1", 1, 5.0)?;
    expect_eq(
        "status",
        s.inspect(&id, "{{.State.Status}}")?.as_str(),
        "running",
    )?;
    Ok(String::new())
}

fn p_stop(s: &Podman, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let t0 = Instant::now();
    s.p().args(&["stop", "-t", "10", &id]).run().check()?;
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

fn p_start(s: &Podman, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    s.p().args(&["start", &id]).run().check()?;
    expect_eq(
        "status",
        s.inspect(&id, "{{.State.Status}}")?.as_str(),
        "running",
    )?;
    s.wait_logs(&id, "ready", 2, 10.0)?;
    Ok(String::new())
}

fn p_rm(s: &Podman, rt: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let memcg = PathBuf::from(sc.get("memcg")?);
    s.p().args(&["rm", "-f", "-t", "10", &id]).run().check()?;
    sc.take("lc");
    let o = s
        .p()
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

fn p_memory(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
    let (id, pid) = s.detached(
        rt,
        &s.name(rt, "mem"),
        &["--memory", "64m"],
        &["sleep", "300"],
    )?;
    let res = (|| {
        let f = cgroup_file(&pid, "memory", "memory.limit_in_bytes")?;
        expect_eq("memory.limit_in_bytes", read_trim(&f)?.as_str(), "67108864")?;
        Ok(String::new())
    })();
    s.rm(&id);
    res
}

fn p_run_rm(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
    let name = s.name(rt, "rm");
    s.run(rt)
        .args(&["--rm", "--name", &name, IMG, "true"])
        .run()
        .check()?;
    let o = s
        .p()
        .args(&["ps", "-aq", "--filter", &format!("name=^{name}$")])
        .run()
        .check()?;
    if !o.stdout.trim().is_empty() {
        return Err(format!(
            "container still listed after --rm: {}",
            o.stdout.trim()
        ));
    }
    let tag = record::current_tag(&s.rts[rt.idx()].rec);
    let calls = record::read_calls(&s.rts[rt.idx()].rec);
    let id = calls
        .iter()
        .rfind(|c| c.tag == tag && c.cmd == "create")
        .and_then(|c| c.argv.last().cloned())
        .ok_or("no create call recorded")?;
    s.state_gone(rt, &id)?;
    Ok(String::new())
}

fn p_missing(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
    // conmon hands podman the runtime's error; podman maps "not found"
    // errors to 127. A runtime whose error conmon cannot read shows as
    // "no logs from conmon".
    let name = s.name(rt, "missing");
    s.rm(&name);
    let o = s
        .run(rt)
        .args(&["--name", &name, IMG, "/nonexistent"])
        .run();
    s.rm(&name);
    expect_eq("exit code", o.code, 127).map_err(|e| format!("{e}: {}", o.brief()))?;
    expect_contains("stderr", &o.stderr, "/nonexistent")?;
    expect_contains("stderr", &o.stderr, "no such file or directory")?;
    if o.stderr.contains("no logs from conmon") {
        return Err(format!(
            "conmon had no error from the runtime: {}",
            o.stderr.trim()
        ));
    }
    Ok(o.stderr.trim().to_string())
}

/// `rounds` x 8 containers started at once with `podman start -a`.
fn p_burst(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
    let rounds = if s.env.full { 10 } else { 1 };
    let mut failures = Vec::new();
    let mut n = 0;
    for r in 0..rounds {
        let mut ids = Vec::new();
        for i in 0..8 {
            let name = s.name(rt, &format!("burst-{r}-{i}"));
            s.rm(&name);
            let o = s
                .p()
                .arg("create")
                .arg(format!("--runtime={}", s.rts[rt.idx()].launcher.display()))
                .arg(format!("--cgroup-parent=/{}/podman", s.env.cgroup))
                .args(&[
                    "--network=host",
                    "--pull=never",
                    "--name",
                    &name,
                    IMG,
                    "true",
                ])
                .run()
                .check()?;
            ids.push(o.stdout.trim().lines().last().unwrap_or("").to_string());
        }
        let running: Vec<_> = ids
            .iter()
            .map(|id| s.p().args(&["start", "-a", id]).start())
            .collect();
        for o in running.into_iter().map(|x| x.finish()) {
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

pub fn checks() -> Vec<Check<Podman>> {
    vec![
        Check {
            name: "run: output + exit code",
            run: p_run,
        },
        Check {
            name: "stdin (-i)",
            run: p_stdin,
        },
        Check {
            name: "run -it (pty): input, size, tty",
            run: p_tty,
        },
        Check {
            name: "env, workdir, user",
            run: p_env,
        },
        Check {
            name: "-d + logs",
            run: p_detached,
        },
        Check {
            name: "exec: output + exit code",
            run: p_exec,
        },
        Check {
            name: "exec -it",
            run: p_exec_tty,
        },
        Check {
            name: "top",
            run: p_top,
        },
        Check {
            name: "stats",
            run: p_stats,
        },
        Check {
            name: "pause + unpause",
            run: p_pause,
        },
        Check {
            name: "kill -s USR1",
            run: p_kill_usr1,
        },
        Check {
            name: "stop: SIGTERM, exit 143",
            run: p_stop,
        },
        Check {
            name: "start again",
            run: p_start,
        },
        Check {
            name: "rm: state and cgroup gone",
            run: p_rm,
        },
        Check {
            name: "--memory: limit in cgroup",
            run: p_memory,
        },
        Check {
            name: "run --rm",
            run: p_run_rm,
        },
        Check {
            name: "failing create: runtime's error (JSON path)",
            run: p_missing,
        },
        Check {
            name: "burst: N x 8 `start -a` at once",
            run: p_burst,
        },
        Check {
            name: "berth-bundle commit: oci-archive (zstd) load + run",
            run: p_bundle_oci,
        },
        Check {
            name: "berth-bundle commit: docker-archive load + run",
            run: p_bundle_docker,
        },
    ]
}

/// `podman load` of an archive berth-bundle exported, then `podman run`
/// of it: the committed file, whiteout and config changes must show.
fn bundle_run(s: &Podman, rt: Rt, kind: &str) -> CheckResult {
    let (file, name) = bundle_image::archive(&s.env.images.bundle, kind)?;
    let o = s
        .p()
        .args(&["load", "-q", "-i", file.to_str().unwrap()])
        .timeout(120)
        .run()
        .check()?;
    let listed = s
        .p()
        .args(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .run()
        .check()?;
    if !listed.stdout.lines().any(|l| l.trim() == name) {
        return Err(format!(
            "podman load of {} ({}) did not name the image {name}: {:?}",
            file.display(),
            o.stdout.trim(),
            listed.stdout.trim()
        ));
    }
    let o = s.run(rt).args(&["--rm", name]).run().check()?;
    bundle_image::check_output(kind, &o.stdout)?;
    Ok(String::new())
}

fn p_bundle_oci(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
    bundle_run(s, rt, "flat")
}

fn p_bundle_docker(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
    bundle_run(s, rt, "overlay")
}

pub fn suite(env: Env) -> Report {
    let t0 = Instant::now();
    let mut report = Report {
        caller: "podman".into(),
        versions: String::new(),
        rows: Vec::new(),
        notes: Vec::new(),
        secs: 0.0,
        setup_error: None,
    };
    match setup(env) {
        Ok(s) => {
            report.versions = versions(&s);
            report.rows = run_checks("podman", &s, &s.rts, &checks(), &*s.env.progress);
            teardown(&s, &mut report.notes);
        }
        Err(e) => report.setup_error = Some(e),
    }
    report.secs = t0.elapsed().as_secs_f64();
    report
}

fn versions(s: &Podman) -> String {
    let p = s
        .p()
        .args(&["version", "--format", "{{.Client.Version}}"])
        .run();
    let c = Cmd::new(&["conmon", "--version"]).timeout(10).run();
    format!(
        "podman {}, {}, cgroupfs",
        p.stdout.trim(),
        c.stdout.lines().next().unwrap_or("conmon ?").trim()
    )
}

fn setup(env: Env) -> Result<Podman, String> {
    let dir = env.tmp.clone();
    let bin = dir.join("bin");
    for d in ["bin", "cni", "tmp", "tmp-images", "static", "volumes"] {
        std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
    }
    let roots = [dir.join("rt-runc"), dir.join("rt-berth")];
    let mut rts = Vec::new();
    for rt in Rt::ALL {
        let launcher = bin.join(rt.name());
        let rec = env.records.join(rt.name());
        // podman passes no --root: the launcher gives each runtime its own.
        record::make_launcher(
            &launcher,
            &env.runtimes[rt.idx()],
            &rec,
            Some(&roots[rt.idx()]),
        )?;
        rts.push(RtInfo { launcher, rec });
    }
    let d = dir.display();
    let conf = format!(
        r#"# berth-callers: a private podman; nothing shared with the host's.
[containers]
log_driver = "k8s-file"
netns = "host"
# podman raises nofile and nproc to 1048576 for root; root lacks
# CAP_SYS_RESOURCE here, so stay under the host's hard limits.
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
lock_type = "file"
static_dir = "{d}/static"
volume_path = "{d}/volumes"
tmp_dir = "{d}/tmp"

[engine.runtimes]
berth = ["{berth}"]
runc-rec = ["{runc}"]

[network]
network_backend = "cni"
network_config_dir = "{d}/cni"
"#,
        berth = rts[1].launcher.display(),
        runc = rts[0].launcher.display(),
    );
    std::fs::write(dir.join("containers.conf"), conf).map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("storage.conf"),
        format!("[storage]\ndriver = \"overlay\"\nrunroot = \"{d}/runroot\"\ngraphroot = \"{d}/graph\"\n"),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("registries.conf"),
        "unqualified-search-registries = []\n",
    )
    .map_err(|e| e.to_string())?;
    let s = Podman {
        env,
        dir,
        rts: rts.try_into().map_err(|_| "runtimes")?,
    };
    for img in [&s.env.images.base, &s.env.images.user] {
        s.p()
            .args(&["load", "-q", "-i", img.to_str().unwrap()])
            .timeout(120)
            .run()
            .check()?;
    }
    Ok(s)
}

fn teardown(s: &Podman, notes: &mut Vec<String>) {
    let o = s.p().args(&["ps", "-aq"]).run();
    for id in o.stdout.split_whitespace() {
        notes.push(format!("container {id} was left; removed"));
        s.rm(id);
    }
}
