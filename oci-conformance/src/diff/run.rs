//! Runs one corpus entry under one runtime, in a case directory of its own
//! (bundle, host-side files, hook outputs), and cleans up after it: the
//! container, every process of ours left, its cgroups, mounts under the
//! case directory, the directory.

use super::compare::{Normalizer, Outcome, Status};
use super::corpus::{probe_args, Entry, Scenario};
use crate::bundle::Template;
use crate::console::{read_until, ConsoleSocket};
use crate::reaper::{children_of, Reaper};
use crate::runtime::{Output, Runtime, Stdio3};
use crate::suite::remove_cgroup_tree;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long one runtime command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// The PATH runtimes (and so hooks) run with.
const RUNTIME_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long a holding probe may take to report after `start`.
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// One of the two runtimes compared.
pub struct Rt {
    pub label: &'static str,
    pub path: PathBuf,
    /// Its own `--root` state directory.
    pub root: PathBuf,
}

/// What every case run shares.
pub struct Env<'a> {
    pub work: PathBuf,
    pub template: &'a Template,
    pub reaper: &'a mut Reaper,
    /// Our namespace links, by /proc/self/ns name.
    pub host_ns: BTreeMap<String, String>,
    /// The cgroup every case's cgroupsPath goes under (top level).
    pub cgroup_parent: String,
}

/// Namespace links of a process, by /proc/PID/ns name.
pub fn ns_links(pid: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts", "time"] {
        if let Ok(l) = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")) {
            out.insert(ns.to_string(), l.display().to_string());
        }
    }
    out
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

fn mkdir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("mkdir {}: {e}", path.display()))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| format!("chown {}: {e}", path.display()))
}

fn chmod(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// What the corpus's configs expect in the rootfs beyond the shared
/// template: users 1000 and nobody, a root-only /root, a home, a /tmp
/// everyone may write, a symlink to /tmp.
fn prepare_rootfs(rootfs: &Path) -> Result<(), String> {
    for (name, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        (
            "etc/group",
            "root:x:0:\nwheel:x:10:user\nuser:x:1000:\nnogroup:x:65534:\n",
        ),
    ] {
        let p = rootfs.join(name);
        let _ = std::fs::remove_file(&p);
        write(&p, text)?;
    }
    let root = rootfs.join("root");
    mkdir(&root)?;
    chmod(&root, 0o700)?;
    let home = rootfs.join("home/user");
    mkdir(&home)?;
    chown(&home, 1000, 1000)?;
    chmod(&rootfs.join("tmp"), 0o1777)?;
    std::os::unix::fs::symlink("/tmp", rootfs.join("tmplink"))
        .map_err(|e| format!("symlink tmplink: {e}"))?;
    Ok(())
}

/// Host-side files configs name under `@HOST@`: bind sources and the
/// stand-ins for the files a caller bound in.
fn prepare_host(host: &Path, config_text: &str) -> Result<(), String> {
    mkdir(&host.join("bind-dir"))?;
    write(&host.join("bind-dir/inside"), "bound\n")?;
    write(&host.join("bind-file"), "bound file\n")?;
    let mut rest = config_text;
    while let Some(i) = rest.find("@HOST@/standin-") {
        let tail = &rest[i + "@HOST@/".len()..];
        let name: String = tail.chars().take_while(|c| *c != '"').collect();
        let p = host.join(&name);
        if name.starts_with("standin-dir-") {
            mkdir(&p)?;
        } else {
            let text = if name.ends_with("hosts") {
                "127.0.0.1 localhost\n"
            } else if name.ends_with("resolv.conf") {
                "nameserver 127.0.0.1\n"
            } else if name.ends_with("hostname") {
                "container\n"
            } else {
                ""
            };
            write(&p, text)?;
        }
        rest = &tail[name.len()..];
    }
    Ok(())
}

/// A process holding fresh namespaces of every kind, to join by path.
struct Helper {
    unshare: Child,
    pid: i32,
}

impl Helper {
    fn start() -> Result<Helper, String> {
        let mut unshare = Command::new("unshare")
            .args([
                "--net",
                "--ipc",
                "--uts",
                "--pid",
                "--cgroup",
                "--mount",
                "--fork",
                "--kill-child",
                "sleep",
                "600",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("unshare: {e}"))?;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            let kids = children_of(unshare.id() as i32);
            if let Some(pid) = kids.first() {
                // The child is ours once it has exec'd sleep in its namespaces.
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "sleep" {
                    return Ok(Helper { unshare, pid: *pid });
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = unshare.kill();
        let _ = unshare.wait();
        Err("the namespace helper did not start".into())
    }

    fn stop(mut self) {
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The probe's JSON report in a runtime's or pty's output, if any.
fn report_in(text: &str) -> Option<Value> {
    text.lines()
        .map(|l| l.trim_matches(|c| c == '\r' || c == '\n'))
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
}

/// A probe's exit code as a runtime reports it (128 + signal when killed).
fn exit_code(o: &Output) -> Option<i32> {
    o.code
}

/// Everything one run of an entry under one runtime produced.
pub struct CaseRun {
    pub outcome: Outcome,
    /// The commands and what they printed, for `--keep`.
    pub log: String,
}

struct Case<'a> {
    rt: Runtime,
    dir: PathBuf,
    bundle: PathBuf,
    host: PathBuf,
    id: String,
    log: &'a mut String,
    /// Config values a failure message may name (see `classify`).
    hints: Vec<(String, &'static str)>,
}

impl Case<'_> {
    fn io(&self, name: &str) -> Stdio3 {
        Stdio3 {
            stdout: self.dir.join(format!("{name}.out")),
            stderr: self.dir.join(format!("{name}.err")),
        }
    }
    fn run(&mut self, name: &str, args: &[&str]) -> Output {
        let io = self.io(name);
        let o = self.rt.run_with(args, &io, COMMAND_TIMEOUT);
        self.log.push_str(&format!(
            "$ {} -> {:?}{}\nstdout: {}\nstderr: {}\n",
            args.join(" "),
            o.code,
            if o.timed_out { " (timed out)" } else { "" },
            o.stdout.chars().take(4000).collect::<String>(),
            o.stderr.chars().take(2000).collect::<String>()
        ));
        o
    }
}

fn failed(case: &Case, stage: &str, o: &Output) -> Outcome {
    if o.timed_out {
        return Outcome::failed(stage, None, "timed out");
    }
    Outcome::failed_with(stage, exit_code(o), &o.stderr, &case.hints)
}

/// Runs `e` under `rt` as case number `seq`.
pub fn run_entry(env: &mut Env, e: &Entry, rt: &Rt, seq: usize) -> CaseRun {
    let mut log = String::new();
    let dir = env.work.join(format!("c{seq}")).join(rt.label);
    let id = format!("od{}-{seq}", std::process::id());
    let outcome = match setup_and_run(env, e, rt, &dir, &id, &mut log) {
        Ok(o) => o,
        Err(err) => Outcome::failed("setup", None, &format!("harness: {err}")),
    };
    cleanup(env, rt, &dir, &id);
    CaseRun { outcome, log }
}

fn setup_and_run(
    env: &mut Env,
    e: &Entry,
    rt: &Rt,
    dir: &Path,
    id: &str,
    log: &mut String,
) -> Result<Outcome, String> {
    let bundle = dir.join("bundle");
    let host = dir.join("host");
    mkdir(&bundle)?;
    mkdir(&host)?;
    let rootfs = env.template.instantiate(&bundle)?;
    prepare_rootfs(&rootfs)?;
    let text = serde_json::to_string_pretty(&e.config).map_err(|x| x.to_string())?;
    prepare_host(&host, &text)?;
    let helper = if e.helper {
        Some(Helper::start()?)
    } else {
        None
    };
    let helper_pid = helper
        .as_ref()
        .map(|h| h.pid.to_string())
        .unwrap_or_default();
    let cgroup_parent = env.cgroup_parent.clone();
    let fill = |s: &str| {
        s.replace("@ID@", id)
            .replace("@HOST@", &host.display().to_string())
            .replace("@BUNDLE@", &bundle.display().to_string())
            .replace("@CGROUP_PARENT@", &cgroup_parent)
            .replace("@HELPER@", &helper_pid)
    };
    write(&bundle.join("config.json"), &fill(&text))?;
    let norm = Normalizer::new(
        vec![
            (bundle.display().to_string(), "<bundle>".into()),
            (host.display().to_string(), "<host>".into()),
            (dir.display().to_string(), "<case>".into()),
            (rt.root.display().to_string(), "<state>".into()),
            (env.work.display().to_string(), "<work>".into()),
            (id.to_string(), "<id>".into()),
            (env.cgroup_parent.clone(), "<cgroup-parent>".into()),
        ],
        env.host_ns.clone(),
        helper
            .as_ref()
            .map(|h| ns_links(&h.pid.to_string()))
            .unwrap_or_default(),
    );
    // Runtimes get a small, fixed environment (hooks inherit it) and, for
    // a config without a mount namespace, a private mount namespace.
    let mut wrapper = vec!["-i".to_string(), format!("PATH={RUNTIME_PATH}")];
    if e.private_mounts {
        wrapper.extend(["unshare", "-m", "--propagation", "private", "--"].map(String::from));
    }
    wrapper.push(rt.path.display().to_string());
    wrapper.extend(["--root".to_string(), rt.root.display().to_string()]);
    let mut rt_cmd = Runtime::new("env");
    rt_cmd.global_args = wrapper;
    rt_cmd.label = rt.label.into();
    // Default signal dispositions, as under a shim or conmon.
    rt_cmd.fork_exec = true;
    let mut case = Case {
        rt: rt_cmd,
        dir: dir.to_path_buf(),
        bundle: bundle.clone(),
        host: host.clone(),
        id: id.to_string(),
        log,
        hints: e.config["process"]["cwd"]
            .as_str()
            .filter(|c| *c != "/" && !c.is_empty())
            .map(|c| vec![(c.trim_end_matches('/').to_string(), "cwd")])
            .unwrap_or_default(),
    };
    let mut outcome = match &e.scenario {
        Scenario::Run => run_plain(&mut case, &norm, &e.config["process"]["args"]),
        Scenario::Terminal => run_terminal(&mut case, &norm)?,
        Scenario::Exec { process, args } => {
            run_exec(env, &mut case, &norm, e, process, args, &fill)?
        }
        Scenario::Cli(args) => run_cli(&mut case, &norm, args),
    };
    hook_aspects(&case.host, &norm, &mut outcome);
    if let Some(h) = helper {
        h.stop();
    }
    Ok(outcome)
}

fn ran(norm: &Normalizer, report: &Value, exit: i32, prefix: &str) -> Outcome {
    Outcome {
        status: Status::Ran { exit },
        aspects: norm.report(report, prefix),
    }
}

/// The exit code the probe itself chooses (`exit:N`, else 0).
fn probe_exit(args: &Value) -> i32 {
    args.as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str()?.strip_prefix("exit:")?.parse().ok())
        .next_back()
        .unwrap_or(0)
}

/// Whether a runtime that let the probe report still failed the command:
/// it exits with another code than the probe chose and says why (a
/// poststart hook that fails after the process started).
fn failed_after_report(o: &Output, args: &Value) -> bool {
    o.code != Some(probe_exit(args)) && !super::compare::last_error(&o.stderr).is_empty()
}

fn run_plain(case: &mut Case, norm: &Normalizer, args: &Value) -> Outcome {
    let bundle = case.bundle.display().to_string();
    let id = case.id.clone();
    let o = case.run("run", &["run", "--bundle", &bundle, &id]);
    match report_in(&o.stdout) {
        Some(r) if !o.timed_out && !failed_after_report(&o, args) => {
            ran(norm, &r, o.code.unwrap_or(-1), "")
        }
        _ => failed(case, "run", &o),
    }
}

/// `create --console-socket` + `start`, as containerd and podman do: the
/// probe reports on the pty, whose master we receive.
fn run_terminal(case: &mut Case, norm: &Normalizer) -> Result<Outcome, String> {
    let sock = case.dir.join("console.sock");
    let listener = ConsoleSocket::bind(&sock).map_err(|e| e.to_string())?;
    let reader = std::thread::spawn(move || {
        let master = listener.receive_master(COMMAND_TIMEOUT).ok()?;
        Some(read_until(&master, COMMAND_TIMEOUT, |t| {
            report_in(t).is_some()
        }))
    });
    let bundle = case.bundle.display().to_string();
    let sock_s = sock.display().to_string();
    let id = case.id.clone();
    let created = case.run(
        "create",
        &[
            "create",
            "--console-socket",
            &sock_s,
            "--bundle",
            &bundle,
            &id,
        ],
    );
    let started = if created.ok() {
        Some(case.run("start", &["start", &id]))
    } else {
        // Unblocks the reader: the runtime never connected.
        let _ = std::os::unix::net::UnixStream::connect(&sock);
        None
    };
    let text = reader.join().ok().flatten().unwrap_or_default();
    case.log.push_str(&format!(
        "pty: {}\n",
        text.chars().take(4000).collect::<String>()
    ));
    let _ = case.run("kill", &["kill", &id, "KILL"]);
    Ok(match (started, report_in(&text)) {
        (None, _) => failed(case, "create", &created),
        (Some(s), _) if !s.ok() => failed(case, "start", &s),
        (Some(_), Some(r)) => ran(norm, &r, 0, ""),
        (Some(s), None) => failed(case, "start", &s),
    })
}

fn run_exec(
    env: &mut Env,
    case: &mut Case,
    norm: &Normalizer,
    e: &Entry,
    process: &Option<Value>,
    args: &[String],
    fill: &dyn Fn(&str) -> String,
) -> Result<Outcome, String> {
    let bundle = case.bundle.display().to_string();
    let id = case.id.clone();
    let o = case.run("init", &["create", "--bundle", &bundle, &id]);
    if !o.ok() {
        return Ok(failed(case, "create", &o));
    }
    let o = case.run("start", &["start", &id]);
    if !o.ok() {
        return Ok(failed(case, "start", &o));
    }
    let t0 = Instant::now();
    let init = loop {
        env.reaper.reap();
        let text = std::fs::read_to_string(case.dir.join("init.out")).unwrap_or_default();
        if let Some(r) = report_in(&text) {
            break r;
        }
        if t0.elapsed() > REPORT_TIMEOUT {
            return Ok(Outcome::failed(
                "start",
                None,
                "the container's process did not report",
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut cmd: Vec<String> = vec!["exec".into()];
    if let Some(p) = process {
        let path = case.dir.join("process.json");
        write(&path, &fill(&p.to_string()))?;
        cmd.push("-p".into());
        cmd.push(path.display().to_string());
        cmd.push(id.clone());
    }
    let probe =
        probe_args(&e.config, &json!({ "args": ["/checker"], "cwd": "/" })).unwrap_or_default();
    for a in args {
        match a.as_str() {
            "@ID@" => cmd.push(id.clone()),
            "@PROBE@" => cmd.extend(probe.iter().cloned()),
            other => cmd.push(other.to_string()),
        }
    }
    let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let o = case.run("exec", &refs);
    let mut outcome = match report_in(&o.stdout) {
        Some(r) if !o.timed_out => ran(norm, &r, o.code.unwrap_or(-1), "exec."),
        _ => failed(case, "exec", &o),
    };
    if outcome.ran() {
        outcome.aspects.extend(norm.report(&init, "init."));
    }
    let _ = case.run("kill", &["kill", &id, "KILL"]);
    Ok(outcome)
}

fn run_cli(case: &mut Case, norm: &Normalizer, args: &[String]) -> Outcome {
    let id = case.id.clone();
    let args: Vec<String> = args.iter().map(|a| a.replace("@ID@", &id)).collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = case.run("cli", &refs);
    if o.ok() {
        let mut out = Outcome {
            status: Status::Ran { exit: 0 },
            aspects: BTreeMap::new(),
        };
        out.aspects
            .insert("stdout".into(), norm.text(o.stdout.trim()));
        out
    } else {
        failed(case, &args[0], &o)
    }
}

/// What each host-side hook wrote (see `Normalizer::hook`).
fn hook_aspects(host: &Path, norm: &Normalizer, outcome: &mut Outcome) {
    let Ok(rd) = std::fs::read_dir(host) else {
        return;
    };
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        let Some(stage) = name
            .strip_prefix("hook-")
            .and_then(|s| s.strip_suffix(".out"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(ent.path()).unwrap_or_default();
        outcome.aspects.extend(norm.hook(stage, &text));
    }
}

/// Our cgroup in each v1 hierarchy and in the unified one, by mount dir.
fn own_cgroups() -> Vec<(PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
        return out;
    };
    for h in rd.flatten() {
        if h.file_type().map(|t| t.is_symlink()).unwrap_or(true) {
            continue;
        }
        let name = h.file_name().to_string_lossy().into_owned();
        for line in text.lines() {
            let mut f = line.splitn(3, ':');
            let (_, ctrl, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
            let matches = ctrl == name
                || ctrl == format!("name={name}")
                || (ctrl.is_empty() && name == "unified");
            if matches {
                out.push((h.path(), path.to_string()));
            }
        }
    }
    out
}

/// Removes the cgroups a case may have made: under our parent, at the top
/// level (no cgroupsPath), and under our own cgroup (a relative path).
pub fn remove_cgroups(parent: &str, id: &str) {
    for (mnt, own) in own_cgroups() {
        let own = own.trim_start_matches('/');
        for rel in [
            format!("{parent}/{id}"),
            id.to_string(),
            format!("{own}/{id}"),
            format!("{own}/{parent}/{id}"),
        ] {
            remove_cgroup_tree(&mnt.join(rel.trim_start_matches('/')));
        }
    }
}

/// Removes our top-level cgroup once the run is over.
pub fn remove_cgroup_parent(parent: &str) {
    for (mnt, own) in own_cgroups() {
        let _ = std::fs::remove_dir(mnt.join(parent));
        let _ = std::fs::remove_dir(mnt.join(own.trim_start_matches('/')).join(parent));
    }
}

/// Mount points at or under `dir` in our mount namespace, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|t| t.replace("\\040", " "))
        .filter(|t| t == &prefix || t.starts_with(&format!("{prefix}/")))
        .collect();
    out.sort_by_key(|t| std::cmp::Reverse(t.len()));
    out
}

fn cleanup(env: &mut Env, rt: &Rt, dir: &Path, id: &str) {
    let mut cleaner = Runtime::new(&rt.path);
    cleaner.global_args = vec!["--root".to_string(), rt.root.display().to_string()];
    let io = Stdio3 {
        stdout: env.work.join("cleanup.out"),
        stderr: env.work.join("cleanup.err"),
    };
    let _ = cleaner.run_with(&["delete", "--force", id], &io, COMMAND_TIMEOUT);
    env.reaper.kill_leftovers();
    remove_cgroups(&env.cgroup_parent, id);
    for m in mounts_under(dir) {
        let _ = Command::new("umount")
            .args(["-l", &m])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = std::fs::remove_dir_all(dir);
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
}
