//! podman (rootful, cgroupfs manager, host network): conmon drives the
//! runtime. Everything podman keeps is under the suite's temp dir, its
//! locks included (`lock_type = "file"`: the default SHM lock segment is
//! shared by every podman on the host).

use std::path::PathBuf;

use crate::docker_cli::{self as dc, DockerCli};
use crate::proc::Cmd;
use crate::suite::*;
use crate::{bundle_image, checkpoint, cleanup, record, Env, IMG};

pub struct Podman {
    env: Env,
    dir: PathBuf,
    rts: [RtInfo; 2],
}

impl DockerCli for Podman {
    fn cli(&self) -> Cmd {
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
    /// This run's cgroup parent, host network.
    fn with_runtime(&self, sub: &str, rt: Rt) -> Cmd {
        self.cli()
            .arg(sub)
            .arg(format!(
                "--runtime={}",
                self.rts[rt.idx()].launcher.display()
            ))
            .arg(format!("--cgroup-parent=/{}/podman", self.env.cgroup))
            .args(&["--network=host", "--pull=never"])
    }
    fn rm(&self, id: &str) {
        let _ = self.cli().args(&["rm", "-f", "-t", "0", id]).run();
    }
    fn id_in(&self, stdout: &str) -> String {
        stdout.trim().lines().last().unwrap_or("").to_string()
    }
    fn env(&self) -> &Env {
        &self.env
    }
    fn rts(&self) -> &[RtInfo; 2] {
        &self.rts
    }
}

fn p_top(s: &Podman, _: Rt, sc: &mut Scene) -> CheckResult {
    let id = sc.get("lc")?;
    let pid = s.inspect(&id, "{{.State.Pid}}")?;
    let o = s.cli().args(&["top", &id, "hpid", "args"]).run().check()?;
    if !o
        .stdout
        .lines()
        .any(|l| l.split_whitespace().next() == Some(pid.as_str()))
    {
        return Err(format!("init {pid} not in podman top: {}", o.stdout.trim()));
    }
    Ok(String::new())
}

fn p_rm(s: &Podman, rt: Rt, sc: &mut Scene) -> CheckResult {
    dc::rm_gone(s, rt, sc, &["-f", "-t", "10"])
}

fn p_memory(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
    s.with_detached(
        rt,
        "mem",
        &["--memory", "64m"],
        &["sleep", "300"],
        |_, pid| {
            let f = cgroup_file(pid, "memory", "memory.limit_in_bytes")?;
            expect_eq("memory.limit_in_bytes", read_trim(&f)?.as_str(), "67108864")?;
            Ok(String::new())
        },
    )
}

fn p_missing(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
    // conmon hands podman the runtime's error; podman maps "not found"
    // errors to 127. A runtime whose error conmon cannot read shows as
    // "no logs from conmon".
    let o = dc::run_missing(s, rt)?;
    expect_contains("stderr", &o.stderr, "no such file or directory")?;
    if o.stderr.contains("no logs from conmon") {
        return Err(format!(
            "conmon had no error from the runtime: {}",
            o.stderr.trim()
        ));
    }
    Ok(o.stderr.trim().to_string())
}

fn p_burst(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
    dc::burst(s, rt, if s.env.full { 10 } else { 1 })
}

pub fn checks() -> Vec<Check<Podman>> {
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
            name: "run -it (pty): input, size, tty",
            run: dc::tty,
        },
        Check {
            name: "env, workdir, user",
            run: dc::env_workdir_user,
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
            run: p_top,
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
            name: "rm: state and cgroup gone",
            run: p_rm,
        },
        Check {
            name: "--memory: limit in cgroup",
            run: p_memory,
        },
        Check {
            name: "run --rm",
            run: dc::run_rm,
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

/// `podman container checkpoint` (the runtime's checkpoint, which stops
/// the container), then `podman container restore` (conmon runs the
/// runtime's restore --detach): the counter's lines in the container's log
/// (k8s-file, read directly: each `podman logs` costs seconds in the guest)
/// must go on.
fn p_checkpoint(s: &Podman, rt: Rt, _: &mut Scene) -> CheckResult {
    let name = s.name(rt, "criu");
    let t = checkpoint::Steps::new();
    let o = s
        .run(rt)
        .args(&[
            "-d",
            "--name",
            &name,
            IMG,
            "sh",
            "-c",
            checkpoint::COUNTER_LOG,
        ])
        .run()
        .check()?;
    let id = s.id_in(&o.stdout);
    let res = (|| {
        let log = PathBuf::from(s.inspect(&id, "{{.HostConfig.LogConfig.Path}}")?);
        let counts = || checkpoint::counts(&std::fs::read_to_string(&log).unwrap_or_default());
        poll(30.0, || counts().contains(&3).then_some(()))
            .ok_or_else(|| format!("the container never counted to 3 in {}", log.display()))?;
        t.step("run");
        // `podman container SUB [FLAGS] ID`, then the container's status.
        let step = |sub: &str, flags: &[&str], status: &str| -> Result<(), String> {
            s.cli()
                .args(&["container", sub])
                .args(flags)
                .arg(&id)
                .timeout(180)
                .run()
                .check()?;
            t.step(sub);
            let st = s.inspect(&id, "{{.State.Status}}")?;
            expect_eq(&format!("state after the {sub}"), st.as_str(), status)
        };
        step("checkpoint", &[], "exited")?;
        let before = counts();
        let last = *before.last().ok_or("no count in the log")?;
        // --keep: CRIU's logs stay in the container's userdata dir.
        step("restore", &["--keep"], "running")?;
        // conmon may append to the log or start it again.
        let after = poll(15.0, || {
            let all = counts();
            let new = all.strip_prefix(&before[..]).unwrap_or(&all[..]);
            new.first().copied()
        })
        .ok_or_else(|| {
            format!(
                "the restored container printed no count; {}",
                restored_state(s, &id)
            )
        })?;
        Ok(format!(
            "{}; {}",
            checkpoint::went_on(last, after, true)?,
            t.report()
        ))
    })();
    s.rm(&id);
    res
}

/// What explains a restore that printed nothing: the restored init's
/// stdio and what CRIU's restore log (in the runtime's work path, podman's
/// userdata dir) says about it.
fn restored_state(s: &Podman, id: &str) -> String {
    let pid = s.inspect(id, "{{.State.Pid}}").unwrap_or_default();
    let fds: Vec<String> = (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|l| format!("{fd} -> {}", l.display()))
                .unwrap_or_else(|e| format!("{fd}: {e}"))
        })
        .collect();
    let log = s
        .dir
        .join("graph/overlay-containers")
        .join(id)
        .join("userdata/restore.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Error") || l.contains("inherit") || l.contains("pipe"))
        .collect();
    format!(
        "restored init {pid}: fds [{}]; {}: {}",
        fds.join(", "),
        log.display(),
        crate::proc::last_lines(&lines.join("\n"), 12)
    )
}

/// `podman load` of an archive berth-bundle exported, then `podman run`
/// of it: the committed file, whiteout and config changes must show.
fn bundle_run(s: &Podman, rt: Rt, kind: &str) -> CheckResult {
    let (file, name) = bundle_image::archive(&s.env.images.bundle, kind)?;
    let o = s
        .cli()
        .args(&["load", "-q", "-i", file.to_str().unwrap()])
        .timeout(120)
        .run()
        .check()?;
    let listed = s
        .cli()
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
    Report::run(
        "podman",
        || setup(env),
        |s, report| {
            report.versions = versions(s);
            let f = &s.env.filter;
            let mut checks = selected(f, checks());
            checkpoint::gate(f, &mut checks, p_checkpoint, report);
            report.rows = run_checks("podman", s, &s.rts, &checks, &*s.env.progress);
            teardown(s, &mut report.notes);
        },
    )
}

fn versions(s: &Podman) -> String {
    let p = s
        .cli()
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
    // With cgroupfs, podman puts every conmon in libpod_parent/conmon and
    // never removes it: ours to remove only if no hierarchy had it before.
    if !cleanup::cgroup_mounts()
        .iter()
        .any(|m| m.join("libpod_parent").exists())
    {
        cleanup::add_cgroup("libpod_parent");
    }
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
        s.cli()
            .args(&["load", "-q", "-i", img.to_str().unwrap()])
            .timeout(120)
            .run()
            .check()?;
    }
    Ok(s)
}

fn teardown(s: &Podman, notes: &mut Vec<String>) {
    let o = s.cli().args(&["ps", "-aq"]).run();
    for id in o.stdout.split_whitespace() {
        notes.push(format!("container {id} was left; removed"));
        s.rm(id);
    }
}
