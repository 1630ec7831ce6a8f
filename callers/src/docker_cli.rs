//! What podman and Docker share: podman's command line is Docker's, so the
//! checks that only use that common part are written once here, generic
//! over [`DockerCli`], and each caller lists them under its own names.

use std::path::PathBuf;
use std::time::Instant;

use crate::ctr::TTY_SCRIPT;
use crate::proc::{Cmd, Out};
use crate::suite::*;
use crate::{record, Env, IMG};

/// An init that reports SIGTERM (exit 143) and SIGUSR1, keeping a child.
pub const TRAPPER: &str = "trap 'echo got-term; exit 143' TERM; trap 'echo got-usr1' USR1; \
    echo ready; while :; do sleep 1 & wait $!; done";

/// A Docker-like client (docker, podman) set up for one suite.
pub trait DockerCli {
    /// The client, talking to this suite's daemon or storage.
    fn cli(&self) -> Cmd;
    /// `SUB` (run, create) with this runtime and the caller's fixed flags.
    fn with_runtime(&self, sub: &str, rt: Rt) -> Cmd;
    /// Remove a container whatever its state; errors are ignored.
    fn rm(&self, id: &str);
    /// The container id in what `run -d` or `create` printed.
    fn id_in(&self, stdout: &str) -> String;
    fn env(&self) -> &Env;
    fn rts(&self) -> &[RtInfo; 2];

    fn run(&self, rt: Rt) -> Cmd {
        self.with_runtime("run", rt)
    }
    fn create(&self, rt: Rt) -> Cmd {
        self.with_runtime("create", rt)
    }
    fn name(&self, rt: Rt, what: &str) -> String {
        format!("{}-{what}", rt.name())
    }
    fn inspect(&self, id: &str, fmt: &str) -> Result<String, String> {
        Ok(self
            .cli()
            .args(&["inspect", "-f", fmt, id])
            .run()
            .check()?
            .stdout
            .trim()
            .to_string())
    }
    fn logs(&self, id: &str) -> String {
        let o = self.cli().args(&["logs", id]).run();
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
    /// The runtime has no state left for the container (in the root the
    /// caller gave it, as recorded: podman gives none, the launcher does;
    /// dockerd 20.10 names the root after the container's runtime,
    /// `runtime-runc` for the default one).
    fn state_gone(&self, rt: Rt, id: &str) -> Result<(), String> {
        let root = record::root_of(&self.rts()[rt.idx()].rec, id)
            .ok_or(format!("no recorded create of {id}"))?;
        state_gone(&self.env().runtimes[rt.idx()], &root, id)
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
        let id = self.id_in(&o.stdout);
        let pid = self.inspect(&id, "{{.State.Pid}}")?;
        Ok((id, pid))
    }
    /// A detached container named for `what`, there for `f(id, pid)`, then
    /// removed.
    fn with_detached(
        &self,
        rt: Rt,
        what: &str,
        flags: &[&str],
        cmd: &[&str],
        f: impl FnOnce(&str, &str) -> CheckResult,
    ) -> CheckResult {
        let (id, pid) = self.detached(rt, &self.name(rt, what), flags, cmd)?;
        let res = f(&id, &pid);
        self.rm(&id);
        res
    }
}

pub fn run_output<C: DockerCli>(s: &C, rt: Rt, _: &mut Scene) -> CheckResult {
    let o = s
        .run(rt)
        .args(&["--rm", IMG, "sh", "-c", "echo out; echo err >&2; exit 3"])
        .run();
    expect_eq("exit code", o.code, 3).map_err(|e| format!("{e}: {}", o.brief()))?;
    expect_contains("stdout", &o.stdout, "out")?;
    expect_contains("stderr", &o.stderr, "err")?;
    Ok(String::new())
}

pub fn stdin<C: DockerCli>(s: &C, rt: Rt, _: &mut Scene) -> CheckResult {
    let o = s
        .run(rt)
        .args(&["-i", "--rm", IMG, "sh", "-c", "cat; echo done"])
        .stdin(b"data from stdin\n")
        .run()
        .check()?;
    expect_eq("stdout", o.stdout.as_str(), "data from stdin\ndone\n")?;
    Ok(String::new())
}

pub fn tty<C: DockerCli>(s: &C, rt: Rt, _: &mut Scene) -> CheckResult {
    let cmd = s
        .run(rt)
        .args(&["-it", "--rm", IMG, "sh", "-c", TTY_SCRIPT])
        .timeout(30);
    let o = run_typed_pty(&cmd);
    expect_eq("exit code", o.code, 6).map_err(|e| format!("{e}: {} {:?}", o.stderr, o.stdout))?;
    expect_contains("terminal", &o.stdout, "got:typed")?;
    expect_contains("terminal size", &o.stdout, "size:40 120")?;
    expect_contains("tty", &o.stdout, "/dev/pts/")?;
    Ok(String::new())
}

pub fn env_workdir_user<C: DockerCli>(s: &C, rt: Rt, _: &mut Scene) -> CheckResult {
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

/// The long-lived container of the later checks (`lc`), and its memory
/// cgroup (`memcg`) for the check that removes it.
pub fn detached_logs<C: DockerCli>(s: &C, rt: Rt, sc: &mut Scene) -> CheckResult {
    let (id, pid) = s.detached(rt, &s.name(rt, "lc"), &[], &["sh", "-c", TRAPPER])?;
    sc.set("lc", &id);
    s.wait_logs(&id, "ready", 1, 10.0)?;
    sc.set("memcg", cgroup_file(&pid, "memory", "")?.to_str().unwrap());
    Ok(String::new())
}

pub fn exec<C: DockerCli>(s: &C, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let o = s
        .cli()
        .args(&["exec", &id, "sh", "-c", "echo inexec; id -u; exit 4"])
        .run();
    expect_eq("exit code", o.code, 4).map_err(|e| format!("{e}: {}", o.brief()))?;
    expect_eq("stdout", o.stdout.as_str(), "inexec\n0\n")?;
    Ok(String::new())
}

pub fn exec_tty<C: DockerCli>(s: &C, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let cmd = s
        .cli()
        .args(&["exec", "-it", &id, "sh", "-c", EXEC_TTY_SCRIPT])
        .timeout(30);
    exec_tty_result(&run_typed_pty(&cmd))
}

pub fn stats<C: DockerCli>(s: &C, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let o = s
        .cli()
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

fn expect_status<C: DockerCli>(s: &C, id: &str, want: &str) -> Result<(), String> {
    expect_eq("status", s.inspect(id, "{{.State.Status}}")?.as_str(), want)
}

pub fn pause<C: DockerCli>(s: &C, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let pid = s.inspect(&id, "{{.State.Pid}}")?;
    let freezer = cgroup_file(&pid, "freezer", "freezer.state")?;
    s.cli().args(&["pause", &id]).run().check()?;
    expect_status(s, &id, "paused")?;
    expect_eq("freezer.state", read_trim(&freezer)?.as_str(), "FROZEN")?;
    s.cli().args(&["unpause", &id]).run().check()?;
    expect_status(s, &id, "running")?;
    expect_eq("freezer.state", read_trim(&freezer)?.as_str(), "THAWED")?;
    Ok(String::new())
}

pub fn kill_usr1<C: DockerCli>(s: &C, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    s.cli().args(&["kill", "-s", "USR1", &id]).run().check()?;
    s.wait_logs(&id, "got-usr1", 1, 5.0)?;
    expect_status(s, &id, "running")?;
    Ok(String::new())
}

pub fn stop<C: DockerCli>(s: &C, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let t0 = Instant::now();
    s.cli().args(&["stop", "-t", "10", &id]).run().check()?;
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

pub fn start_again<C: DockerCli>(s: &C, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    s.cli().args(&["start", &id]).run().check()?;
    expect_status(s, &id, "running")?;
    s.wait_logs(&id, "ready", 2, 10.0)?;
    Ok(String::new())
}

/// `rm` (with `flags`) of the long-lived container: neither the caller
/// nor the runtime may keep it, nor its cgroup stay.
pub fn rm_gone<C: DockerCli>(s: &C, rt: Rt, sc: &mut Scene, flags: &[&str]) -> CheckResult {
    let id = sc.get("lc")?;
    let memcg = PathBuf::from(sc.get("memcg")?);
    s.cli().arg("rm").args(flags).arg(&id).run().check()?;
    sc.take("lc");
    let o = s
        .cli()
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

pub fn run_rm<C: DockerCli>(s: &C, rt: Rt, _: &mut Scene) -> CheckResult {
    let name = s.name(rt, "rm");
    s.run(rt)
        .args(&["--rm", "--name", &name, IMG, "true"])
        .run()
        .check()?;
    let o = s
        .cli()
        .args(&["ps", "-aq", "--filter", &format!("name=^{name}$")])
        .run()
        .check()?;
    if !o.stdout.trim().is_empty() {
        return Err(format!(
            "container still listed after --rm: {}",
            o.stdout.trim()
        ));
    }
    // The runtime's state too: the id is the one the caller created.
    let rec = &s.rts()[rt.idx()].rec;
    let tag = record::current_tag(rec);
    let calls = record::read_calls(rec);
    let id = calls
        .iter()
        .rfind(|c| c.tag == tag && c.cmd == "create")
        .and_then(|c| c.argv.last())
        .ok_or("no create call recorded")?;
    s.state_gone(rt, id)?;
    Ok(String::new())
}

/// `run` of a missing executable: exit 127 and the path in the error; the
/// caller's check says what more the error must show.
pub fn run_missing<C: DockerCli>(s: &C, rt: Rt) -> Result<Out, String> {
    let name = s.name(rt, "missing");
    s.rm(&name);
    let o = s
        .run(rt)
        .args(&["--name", &name, IMG, "/nonexistent"])
        .run();
    s.rm(&name);
    expect_eq("exit code", o.code, 127).map_err(|e| format!("{e}: {}", o.brief()))?;
    expect_contains("stderr", &o.stderr, "/nonexistent")?;
    Ok(o)
}

/// `rounds` x 8 containers started at once with `start -a`.
pub fn burst<C: DockerCli>(s: &C, rt: Rt, rounds: usize) -> CheckResult {
    let mut failures = Vec::new();
    let mut n = 0;
    for r in 0..rounds {
        let mut ids = Vec::new();
        for i in 0..8 {
            let name = s.name(rt, &format!("burst-{r}-{i}"));
            s.rm(&name);
            let o = s
                .create(rt)
                .args(&["--name", &name, IMG, "true"])
                .run()
                .check()?;
            ids.push(s.id_in(&o.stdout));
        }
        let running: Vec<_> = ids
            .iter()
            .map(|id| s.cli().args(&["start", "-a", id]).start())
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
