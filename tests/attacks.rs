//! Attacks that runtimes have fallen to, each one tried on berth: inherited
//! capabilities (the CVE-2022-29162 class), a container racing another's
//! mount-point creation through a shared volume (the CVE-2024-45310
//! class), symlinked mount destinations and masked paths, pid reuse, and
//! concurrent creates of one id. Each test checks its attack really ran.

mod common;

/// The binary under test: this build's berth, or `BERTH_UNDER_TEST` (to
/// show that a test fails on an older berth).
fn berth_bin() -> String {
    std::env::var("BERTH_UNDER_TEST").unwrap_or_else(|_| common::BERTH.to_string())
}

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{Bundle, Runtime};
use serde_json::{json, Value};

/// The CapInh line of /proc/self/status as a mask.
fn cap_inh(status: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with("CapInh:"))
        .unwrap_or_else(|| panic!("no CapInh in {status}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

/// Run `c` with stdout and stderr in files: a detached container keeps
/// the runtime's stdio, and a pipe would never see EOF.
fn output(mut c: Command) -> std::process::Output {
    let out = std::env::temp_dir().join(common::unique("berth-attack-out"));
    let err = std::env::temp_dir().join(common::unique("berth-attack-err"));
    let status = c
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    let o = std::process::Output {
        status,
        stdout: std::fs::read(&out).unwrap_or_default(),
        stderr: std::fs::read(&err).unwrap_or_default(),
    };
    let _ = std::fs::remove_file(out);
    let _ = std::fs::remove_file(err);
    o
}

/// berth run by a parent whose own inheritable set is full of
/// capabilities (as a shell under a capability-granting login may be).
fn with_inheritable(rt: &Runtime, args: &[&str]) -> String {
    let mut c = Command::new("setpriv");
    c.args([
        "--inh-caps",
        "+net_raw,+sys_admin,+kill,+chown",
        "--",
        &berth_bin(),
        "--root",
    ])
    .arg(&rt.root)
    .args(args);
    let out = output(c);
    assert!(
        out.status.success(),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn no_inheritable_capabilities_unless_the_config_names_them() {
    // The runtime's caller has inheritable capabilities: prove it.
    let own = Command::new("setpriv")
        .args([
            "--inh-caps",
            "+net_raw,+sys_admin,+kill,+chown",
            "--",
            "grep",
            "CapInh",
            "/proc/self/status",
        ])
        .output()
        .unwrap();
    let own = String::from_utf8_lossy(&own.stdout).into_owned();
    assert_ne!(
        cap_inh(&own),
        0,
        "setpriv did not set an inheritable set: {own}"
    );

    let rt = Runtime::new(&berth_bin());
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    let id = common::unique("capinh");
    rt.created.borrow_mut().push(id.clone());
    with_inheritable(
        &rt,
        &["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id],
    );
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let init = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(cap_inh(&init), 0, "the init inherited capabilities: {init}");
    let exec = with_inheritable(&rt, &["exec", &id, "cat", "/proc/self/status"]);
    assert_eq!(cap_inh(&exec), 0, "exec inherited capabilities: {exec}");
    // exec --cap adds to bounding, effective and permitted, never inheritable.
    let exec = with_inheritable(
        &rt,
        &[
            "exec",
            "--cap",
            "CAP_NET_RAW",
            &id,
            "cat",
            "/proc/self/status",
        ],
    );
    assert_eq!(cap_inh(&exec), 0, "exec --cap made it inheritable: {exec}");

    // Asked for, they are there (the probe can see a non-empty set).
    let mut b = Bundle::new(&["cat", "/proc/self/status"]);
    b.edit(|s| {
        let caps = &mut s["process"]["capabilities"];
        caps["inheritable"] = json!(["CAP_KILL"]);
    });
    let (code, out, err) = rt.run(&b, &common::unique("capinh-asked"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(cap_inh(&out), 1 << 5, "CAP_KILL inheritable: {out}");
}

/// A host directory the attacker aims at; it must stay empty.
struct Outside(PathBuf);

impl Outside {
    fn new() -> Outside {
        let d = std::env::temp_dir().join(common::unique("berth-outside"));
        std::fs::create_dir_all(&d).unwrap();
        Outside(d)
    }

    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Host mounts at or below the directory.
    fn host_mounts(&self) -> Vec<String> {
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let p = self.0.to_string_lossy().into_owned();
        mi.lines()
            .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&p)))
            .map(String::from)
            .collect()
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// CVE-2024-45310 class: container A keeps swapping `vol/d` between a
/// directory and a symlink out (absolute and `..`), while container B,
/// sharing the volume, is created again and again with a tmpfs whose
/// destination goes through `vol/d`, and masked and read-only paths there.
#[test]
fn racing_symlink_swap_in_a_shared_volume_never_leads_out() {
    let rt = Runtime::new(&berth_bin());
    let outside = Outside::new();
    let vol = std::env::temp_dir().join(common::unique("berth-vol"));
    std::fs::create_dir_all(&vol).unwrap();
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = Rm(vol.clone());
    let out = outside.0.to_string_lossy().into_owned();
    let up = "../".repeat(12);
    let swap = format!(
        "while :; do mkdir /vol/d 2>/dev/null; rm -rf /vol/d; ln -s {out} /vol/d; rm -f /vol/d; \
         mkdir /vol/d 2>/dev/null; rm -rf /vol/d; ln -s {up}{} /vol/d; rm -f /vol/d; \
         echo x > /vol/swapping; done",
        out.trim_start_matches('/')
    );
    let bind = |s: &mut Value| {
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/vol", "type": "bind", "source": vol, "options": ["rbind", "rw"]
        }));
    };
    let mut a = Bundle::new(&["sh", "-c", &swap]);
    a.edit(bind);
    let ida = common::unique("swapper");
    rt.ok(&["run", "-d", "--bundle", a.dir.to_str().unwrap(), &ida]);
    // The attacker runs.
    for _ in 0..500 {
        if vol.join("swapping").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        vol.join("swapping").exists(),
        "the swapping container never ran"
    );

    let mut b = Bundle::new(&["true"]);
    b.edit(|s| {
        bind(s);
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/vol/d/sub", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]
        }));
        s["linux"]["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/vol/d/masked"));
        s["linux"]["readonlyPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/vol/d"));
    });
    let (mut made, mut refused) = (0, 0);
    for i in 0..30 {
        let id = format!("{}-{i}", common::unique("victim"));
        let o = rt.run_cmd(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
        if o.status.success() {
            made += 1;
            rt.ok(&["delete", "--force", &id]);
        } else {
            refused += 1;
        }
        assert!(
            outside.entries().is_empty(),
            "create {i} made {:?} outside the rootfs",
            outside.entries()
        );
        assert!(
            outside.host_mounts().is_empty(),
            "{:?}",
            outside.host_mounts()
        );
    }
    eprintln!("racing creates: {made} made, {refused} refused");
    // Something was created in the race (or every try was refused clearly).
    assert_eq!(made + refused, 30);
}

/// A mount destination and masked/read-only paths that are symlinks out
/// of the rootfs (absolute and through `..`) land inside it.
#[test]
fn symlinked_destinations_and_masked_paths_stay_in_the_root() {
    let rt = Runtime::new(&berth_bin());
    let outside = Outside::new();
    std::fs::write(outside.0.join("file"), "host file").unwrap();
    let before = outside.entries();
    let out = outside.0.to_string_lossy().into_owned();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        &format!(
            "grep -c ' {out}/sub ' /proc/self/mountinfo; touch /ro/x 2>/dev/null || echo ro-refused",
            out = outside.0.display()
        ),
    ]);
    let root = b.rootfs();
    // The symlinks' target exists inside the rootfs too: followed in the
    // root they lead there, followed on the host they would lead out.
    std::fs::create_dir_all(root.join(out.trim_start_matches('/'))).unwrap();
    std::os::unix::fs::symlink(&out, root.join("abs")).unwrap();
    std::os::unix::fs::symlink(
        format!("{}{}", "../".repeat(12), out.trim_start_matches('/')),
        root.join("rel"),
    )
    .unwrap();
    // A masked path through a symlink out: the host file would be covered
    // in the container's view if it were followed on the host.
    std::os::unix::fs::symlink(outside.0.join("file"), root.join("mask")).unwrap();
    std::os::unix::fs::symlink(&out, root.join("ro")).unwrap();
    b.edit(|s| {
        let m = s["mounts"].as_array_mut().unwrap();
        for d in ["/abs/sub", "/rel/sub"] {
            m.push(json!({"destination": d, "type": "tmpfs", "source": "tmpfs"}));
        }
        s["linux"]["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/mask"));
        s["linux"]["readonlyPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/ro"));
    });
    let (code, stdout, err) = rt.run(&b, &common::unique("symlinks"));
    assert_eq!(outside.entries(), before, "created outside the rootfs");
    assert_eq!(
        std::fs::read_to_string(outside.0.join("file")).unwrap(),
        "host file"
    );
    assert_eq!(code, 0, "{stdout}{err}");
    // Both tmpfs are there, inside: the rootfs got the directories.
    assert!(
        root.join(out.trim_start_matches('/')).join("sub").is_dir(),
        "{stdout}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    // Both tmpfs (and their copies under the read-only bind of /ro).
    let n: u32 = lines.first().and_then(|l| l.parse().ok()).unwrap_or(0);
    assert!(n >= 2, "{stdout}");
    assert_eq!(lines.get(1), Some(&"ro-refused"), "{stdout}");
}

#[test]
fn default_masked_and_readonly_paths() {
    let rt = Runtime::new(&berth_bin());
    let b = Bundle::new(&[
        "sh",
        "-c",
        "for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats; do \
           [ -e $f ] && echo $f $(wc -c < $f); done; \
         ls -A /sys/firmware | wc -l; ls -A /proc/acpi 2>/dev/null | wc -l; \
         echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable || echo sys-ro; \
         echo h > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable || echo sysrq-ro",
    ]);
    let (code, out, err) = rt.run(&b, &common::unique("masked"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    // Every masked /proc file that exists reads empty (/dev/null).
    let files: Vec<&&str> = lines.iter().filter(|l| l.starts_with("/proc/")).collect();
    // The ones this kernel has are all there (and so the probe ran).
    for f in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/latency_stats",
    ] {
        if std::path::Path::new(f).exists() {
            assert!(files.iter().any(|l| l.starts_with(f)), "{f}: {out}");
        }
    }
    assert!(!files.is_empty(), "{out}");
    for l in &files {
        assert!(l.ends_with(" 0"), "not masked: {l}");
    }
    let rest: Vec<&&str> = lines.iter().filter(|l| !l.starts_with("/proc/")).collect();
    assert_eq!(rest, [&"0", &"0", &"sys-ro", &"sysrq-ro"], "{out}");
}

/// Set in the copy of this binary that runs as pid 1 of a pid sandbox.
const PID_SANDBOX: &str = "BERTH_TEST_PID_SANDBOX";

/// Run test `name` again as pid 1 of a private pid namespace with a /proc
/// of its own (`unshare --pid --fork --mount-proc`), and check that it
/// passed there. True when called inside: the test body goes on. A berth
/// that signals a whole pid namespace by mistake then kills the sandbox,
/// not the host running the tests (once, in CI, it did).
fn in_pid_sandbox(name: &str) -> bool {
    if std::env::var_os(PID_SANDBOX).is_some() {
        return true;
    }
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(PID_SANDBOX, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} in a pid sandbox: {:?}\n{text}",
        out.status
    );
    false
}

/// Field 22 of /proc/PID/stat: the start time, in clock ticks.
fn start_time(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(19).unwrap().parse().unwrap()
}

/// The init dies and its pid is handed to an unrelated process: `state`
/// says stopped, and `kill`, `kill --all` and `delete --force` signal
/// neither that process nor any other. Also when the new process started
/// in the same clock tick as the init (start times count in 10 ms ticks;
/// made certain here by writing the newcomer's start time into the
/// state): the namespaces tell them apart. Runs in a pid sandbox: the
/// berth that failed this signalled every process in the host's pid
/// namespace.
#[test]
fn a_reused_pid_is_never_signalled() {
    if !in_pid_sandbox("a_reused_pid_is_never_signalled") {
        return;
    }
    let rt = Runtime::new(&berth_bin());
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    let id = common::unique("pidreuse");
    rt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let mut bystander = Command::new("/bin/sleep").arg("1000").spawn().unwrap();
    // SAFETY: kill of the container's init, a child of ours (pid 1 here).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    // SAFETY: blocking waitpid on that one pid.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    // Hand the pid to a new process: the sandbox's next pid is set just
    // below it.
    let mut victim = None;
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
        let mut c = Command::new("/bin/sleep").arg("1000").spawn().unwrap();
        if c.id() as i32 == pid {
            victim = Some(c);
            break;
        }
        let _ = c.kill();
        let _ = c.wait();
    }
    let mut victim = victim.expect("could not get the init's pid reused in 200 tries");
    let mut alive = |what: &str| {
        for (name, c) in [
            ("the new owner of the pid", &mut victim),
            ("a bystander", &mut bystander),
        ] {
            assert!(c.try_wait().unwrap().is_none(), "{what} signalled {name}");
        }
    };
    assert_eq!(rt.status(&id), "stopped");
    let err = rt.fails(&["kill", &id, "KILL"]);
    assert!(err.contains("not running"), "{err}");
    rt.ok(&["kill", "--all", &id, "KILL"]);
    alive("kill");

    // The same, had the newcomer started in the init's tick.
    let state_file = rt.root.join(&id).join("state.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    state["start_time"] = json!(start_time(pid));
    std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();
    assert_eq!(
        rt.status(&id),
        "stopped",
        "a newcomer of the same tick taken for the init"
    );
    let err = rt.fails(&["kill", &id, "KILL"]);
    assert!(err.contains("not running"), "{err}");
    rt.ok(&["kill", "--all", &id, "KILL"]);
    alive("kill of the same tick");
    rt.ok(&["delete", "--force", &id]);
    alive("delete --force");
    assert!(!rt.root.join(&id).exists());
    for c in [&mut victim, &mut bystander] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Eight `create`s of one id at once: one wins, the others fail saying so,
/// and after `delete` nothing of any of them is left.
#[test]
fn concurrent_creates_of_one_id() {
    let rt = Runtime::new(&berth_bin());
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    let id = common::unique("race");
    rt.created.borrow_mut().push(id.clone());
    let children: Vec<_> = (0..8)
        .map(|_| {
            let c = rt.cmd(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
            std::thread::spawn(move || output(c))
        })
        .collect();
    let results: Vec<_> = children.into_iter().map(|t| t.join().unwrap()).collect();
    let won = results.iter().filter(|o| o.status.success()).count();
    assert_eq!(won, 1, "winners: {won}");
    for o in results.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("already exists"), "unclear failure: {err}");
    }
    // One init (a berth process waiting for start, its argv the create's).
    let inits = processes_with_arg(&id);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert_eq!(inits, vec![pid]);
    assert_eq!(rt.status(&id), "created");
    rt.ok(&["delete", &id]);
    common::reap(pid);
    assert!(processes_with_arg(&id).is_empty());
    assert!(!rt.root.join(&id).exists());
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        assert!(
            !e.path().join(&id).exists(),
            "cgroup left in {}",
            e.path().display()
        );
    }
}

/// Live host pids with `arg` in their command line.
fn processes_with_arg(arg: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmd.split(|b| *b == 0).any(|a| a == arg.as_bytes()) {
            out.push(pid);
        }
    }
    out
}
