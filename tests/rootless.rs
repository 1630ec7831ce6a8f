//! Rootless, end to end: berth run by an unprivileged user the test makes
//! (with its own /etc/subuid and /etc/subgid entries), with the
//! XDG_RUNTIME_DIR the test gives it (no logind here). Every user, entry,
//! file and container is removed again, even when a test fails.
//!
//! On this host the cgroups are not delegated, so a container without
//! limits runs without cgroups of its own. The delegated cgroup v2 case
//! (`delegated_cgroup_v2_subtree_is_used`) runs in the cgroup v2 guest
//! (guest/test-cgroups.sh v2), whose root is the mount namespace's root (no
//! chroot, where the kernel would refuse unprivileged user namespaces).

mod common;

/// The binary under test: this build's berth, or `BERTH_UNDER_TEST` (to
/// show that a test fails on an older berth).
fn berth_bin() -> String {
    std::env::var("BERTH_UNDER_TEST").unwrap_or_else(|_| common::BERTH.to_string())
}

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use serde_json::{json, Value};

/// useradd and the /etc/subuid edits of this binary's tests, one at a time.
static USERS: Mutex<()> = Mutex::new(());

const SUB_COUNT: u32 = 65536;
static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// An unprivileged user with subordinate ids, a private XDG_RUNTIME_DIR
/// and a copy of berth it can execute.
struct User {
    name: Option<String>,
    uid: u32,
    gid: u32,
    /// First subordinate uid and gid (None: no entries).
    sub: Option<u32>,
    dir: PathBuf,
    bin: PathBuf,
    /// Moved into this cgroup v2 directory before dropping privileges.
    cgroup: Option<PathBuf>,
    created: std::cell::RefCell<Vec<String>>,
}

fn run_root(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Add or remove exactly `line` in `path`, by a temp file renamed over it.
fn edit_ids(path: &str, line: &str, add: bool) {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<&str> = old.lines().filter(|l| *l != line).collect();
    if add {
        lines.push(line);
    }
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    let tmp = format!("{path}.berth-test-{}", std::process::id());
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

impl User {
    /// A new user (useradd) with `/etc/subuid` and `/etc/subgid` entries.
    fn new() -> User {
        let _g = USERS.lock().unwrap_or_else(|e| e.into_inner());
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("berth-rl-{}-{n}", std::process::id());
        // useradd is told not to allocate subordinate ids: ours are added
        // (and removed) as single lines below.
        run_root(
            "useradd",
            &[
                "-M",
                "-d",
                "/nonexistent",
                "-s",
                "/usr/sbin/nologin",
                "-K",
                "SUB_UID_COUNT=0",
                "-K",
                "SUB_GID_COUNT=0",
                &name,
            ],
        );
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &name]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        // Far from what useradd hands out (SUB_UID_MAX 600100000).
        let sub = 2_000_000_000 + ((std::process::id() % 4096) * 8 + n % 8) * SUB_COUNT;
        let mut u = User::bare(Some(name), uid, gid);
        u.sub = Some(sub);
        for f in ["/etc/subuid", "/etc/subgid"] {
            edit_ids(f, &u.sub_line(), true);
        }
        u
    }

    /// A uid without a passwd entry (the guest's /etc is read-only).
    fn bare(name: Option<String>, uid: u32, gid: u32) -> User {
        common::subreaper();
        let dir = std::env::temp_dir().join(common::unique("berth-rootless"));
        std::fs::create_dir_all(dir.join("xdg")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(dir.join("xdg"), Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(dir.join("xdg"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let bin = dir.join("berth");
        std::fs::copy(berth_bin(), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        User {
            name,
            uid,
            gid,
            sub: None,
            dir,
            bin,
            cgroup: None,
            created: Default::default(),
        }
    }

    fn sub_line(&self) -> String {
        format!(
            "{}:{}:{SUB_COUNT}",
            self.name.as_deref().unwrap_or(""),
            self.sub.unwrap_or(0)
        )
    }

    fn xdg(&self) -> PathBuf {
        self.dir.join("xdg")
    }

    /// berth as this user, with only PATH and (if `xdg`) XDG_RUNTIME_DIR.
    fn cmd(&self, args: &[&str], xdg: bool) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        if xdg {
            c.env("XDG_RUNTIME_DIR", self.xdg());
        }
        c.current_dir(&self.dir).stdin(Stdio::null());
        let procs = self
            .cgroup
            .as_ref()
            .map(|d| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).unwrap());
        let (uid, gid) = (self.uid, self.gid);
        // SAFETY: the closure only makes async-signal-safe calls (open,
        // write, close, setgroups, setresgid, setresuid) on data prepared
        // before the fork.
        unsafe {
            c.pre_exec(move || {
                if let Some(p) = &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                    if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        if let Some(i) = args.iter().position(|a| *a == "run" || *a == "create") {
            if let Some(id) = args.last().filter(|_| i < args.len() - 1) {
                self.created.borrow_mut().push(id.to_string());
            }
        }
        // Files, not pipes: a detached container keeps the runtime's stdio.
        let out = self.dir.join(common::unique("out"));
        let err = self.dir.join(common::unique("err"));
        let status = self
            .cmd(args, true)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        let o = Output {
            status,
            stdout: std::fs::read(&out).unwrap_or_default(),
            stderr: std::fs::read(&err).unwrap_or_default(),
        };
        let _ = std::fs::remove_file(out);
        let _ = std::fs::remove_file(err);
        o
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "berth {args:?} as uid {} failed: {}{}",
            self.uid,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "berth {args:?} as uid {} unexpectedly succeeded: {}",
            self.uid,
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// A busybox bundle with the config `berth spec --rootless` writes as
    /// this user, running `args`.
    fn bundle(&self, args: &[&str]) -> common::Bundle {
        let mut b = common::Bundle::new(args);
        let spec_dir = self.dir.join(common::unique("spec"));
        std::fs::create_dir(&spec_dir).unwrap();
        std::os::unix::fs::chown(&spec_dir, Some(self.uid), Some(self.gid)).unwrap();
        self.ok(&["spec", "--rootless", "--bundle", spec_dir.to_str().unwrap()]);
        let mut spec: Value =
            serde_json::from_slice(&std::fs::read(spec_dir.join("config.json")).unwrap()).unwrap();
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        b.edit(|s| *s = spec);
        // The user reads the bundle (the test made it as root).
        for p in [&b.dir, &b.dir.join("rootfs")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        b
    }

    /// Nothing of container `id` is left in the user's state root.
    fn assert_no_state(&self, id: &str) {
        let dir = self.xdg().join("berth").join(id);
        assert!(!dir.exists(), "state left behind: {}", dir.display());
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }
}

impl Drop for User {
    fn drop(&mut self) {
        for id in self.created.borrow().iter() {
            let pid = self
                .cmd(&["state", id], true)
                .output()
                .ok()
                .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
                .and_then(|v| v["pid"].as_i64())
                .unwrap_or(0) as i32;
            let _ = self
                .cmd(&["delete", "--force", id], true)
                .stderr(Stdio::null())
                .output();
            common::reap(pid);
        }
        let _g = USERS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(name) = &self.name {
            if self.sub.is_some() {
                for f in ["/etc/subuid", "/etc/subgid"] {
                    edit_ids(f, &self.sub_line(), false);
                }
            }
            let _ = Command::new("userdel").arg(name).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Host cgroup directories named `id` (none may exist for a rootless
/// container on this host).
fn host_cgroups_named(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = e.path().join(id);
        if p.exists() {
            found.push(p);
        }
    }
    found
}

fn in_guest() -> bool {
    std::env::var_os("BERTH_GUEST").is_some()
}

#[test]
fn rootless_spec_runs_as_an_unprivileged_user() {
    if in_guest() {
        return;
    }
    let u = User::new();
    let b = u.bundle(&["sh", "-c", "id -u; cat /proc/self/uid_map; ls -l /dev/null"]);
    let id = common::unique("rl-run");
    let out = u.ok(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"0"),
        "not root in its namespace: {out}"
    );
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", &u.uid.to_string(), "1"], "{out}");
    // /dev/null is the host's node, bound (mknod is refused here).
    assert!(
        lines[2].starts_with('c') && lines[2].contains("1,") && lines[2].contains('3'),
        "{out}"
    );
    assert!(
        host_cgroups_named(&id).is_empty(),
        "{:?}",
        host_cgroups_named(&id)
    );
    u.assert_no_state(&id);
}

#[test]
fn rootless_lifecycle_with_the_full_mapping() {
    if in_guest() {
        return;
    }
    let u = User::new();
    let mut b = u.bundle(&["sleep", "1000"]);
    let sub = u.sub.unwrap();
    b.edit(|s| {
        for (key, own) in [("uidMappings", u.uid), ("gidMappings", u.gid)] {
            s["linux"][key] = json!([
                {"containerID": 0, "hostID": own, "size": 1},
                {"containerID": 1, "hostID": sub, "size": SUB_COUNT}
            ]);
        }
    });
    let id = common::unique("rl-life");
    u.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    // State where runc keeps it for a rootless user.
    assert!(u.xdg().join("berth").join(&id).join("state.json").exists());
    let st = u.state(&id);
    assert_eq!(st["status"], "running");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(host_cgroups_named(&id).is_empty());

    // exec: the whole mapping (newuidmap), uid 1000 inside is a sub id.
    let out = u.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map",
    ]);
    let want = format!("1 {sub} {SUB_COUNT}");
    let norm: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(norm.iter().filter(|l| **l == want).count(), 2, "{out}");
    let out = u.ok(&["exec", "--user", "1000:1000", &id, "id"]);
    assert!(
        out.contains("uid=1000") && out.contains("gid=1000"),
        "{out}"
    );

    // ps lists the init (and nothing of the host).
    let ps: Vec<i32> = serde_json::from_str(&u.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(ps, vec![pid]);
    // No cgroup to freeze: a clear error, and the container carries on.
    let err = u.fails(&["pause", &id]);
    assert!(err.contains("cgroup") && err.contains("delegate"), "{err}");
    assert_eq!(u.state(&id)["status"], "running");

    u.ok(&["kill", &id, "KILL"]);
    for _ in 0..500 {
        if u.state(&id)["status"] == "stopped" {
            break;
        }
        common::reap(pid);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(u.state(&id)["status"], "stopped");
    u.ok(&["delete", &id]);
    assert!(!u.xdg().join("berth").join(&id).exists());
    let list = u.ok(&["list", "-q"]);
    assert!(!list.contains(&id), "{list}");
}

#[test]
fn rootless_errors_name_the_fix() {
    if in_guest() {
        return;
    }
    let u = User::new();
    // No XDG_RUNTIME_DIR and /run/berth not writable.
    let o = u.cmd(&["list"], false).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "list without a state root succeeded");
    assert!(
        err.contains("XDG_RUNTIME_DIR") && err.contains("--root"),
        "{err}"
    );

    // Limits need a cgroup the user may write.
    let mut b = u.bundle(&["true"]);
    b.edit(|s| s["linux"]["resources"] = json!({"pids": {"limit": 10}}));
    let id = common::unique("rl-lim");
    let err = u.fails(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(
        err.contains("linux.resources") && err.contains("delegated"),
        "{err}"
    );
    assert!(!u.xdg().join("berth").join(&id).exists());

    // --rootless false: cgroup permission errors are not ignored.
    let b = u.bundle(&["true"]);
    let err = u.fails(&[
        "--rootless",
        "false",
        "run",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    assert!(err.contains("permission denied"), "{err}");
    assert!(!u.xdg().join("berth").join(&id).exists());

    // Ids beyond the user's /etc/subuid entry: newuidmap refuses.
    let mut b = u.bundle(&["true"]);
    b.edit(|s| {
        s["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": u.uid, "size": 1},
            {"containerID": 1, "hostID": u.sub.unwrap() + SUB_COUNT, "size": 10}
        ])
    });
    let err = u.fails(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(
        err.contains("newuidmap") && err.contains("/etc/subuid"),
        "{err}"
    );
    assert!(!u.xdg().join("berth").join(&id).exists());
}

/// In the cgroup v2 guest: a subtree delegated to the user (chowned, as
/// systemd's Delegate= does) is used, limits included, and pause works.
#[test]
fn delegated_cgroup_v2_subtree_is_used() {
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if !in_guest() || !unified {
        eprintln!("skipped: the delegated cgroup v2 case runs in the guest (make test-cgroup2)");
        return;
    }
    // The guest's /etc is the host's, read-only: a uid without a name,
    // mapping only itself (no newuidmap needed).
    let (uid, gid) = (61000 + std::process::id() % 1000, 61000);
    let deleg = PathBuf::from("/sys/fs/cgroup").join(common::unique("berth-deleg"));
    let leaf = deleg.join("runtime");
    /// Removes the delegated subtree last (after the user's containers).
    struct Rm(PathBuf, Vec<PathBuf>);
    impl Drop for Rm {
        fn drop(&mut self) {
            for d in &self.1 {
                let _ = std::fs::remove_dir(d);
            }
            let _ = std::fs::remove_dir(self.0.join("runtime"));
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let mut rm = Rm(deleg.clone(), Vec::new());
    std::fs::create_dir_all(&leaf).unwrap();
    // What systemd's Delegate= hands over: the directory and the files that
    // move processes and enable controllers below it.
    for p in [
        deleg.clone(),
        deleg.join("cgroup.procs"),
        deleg.join("cgroup.subtree_control"),
        deleg.join("cgroup.threads"),
        leaf.clone(),
        leaf.join("cgroup.procs"),
    ] {
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
    }
    let mut u = User::bare(None, uid, gid);
    u.cgroup = Some(leaf.clone());

    // The config `berth spec --rootless` writes as that user, with limits.
    let mut b = u.bundle(&["sleep", "1000"]);
    b.edit(|s| {
        s["linux"]["resources"] = json!({"pids": {"limit": 42}, "memory": {"limit": 64 << 20}})
    });
    let id = common::unique("rl-deleg");
    let cg = deleg.join(&id);
    rm.1.push(cg.clone());
    u.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    let pid = u.state(&id)["pid"].as_i64().unwrap() as i32;
    // The container's cgroup is in the user's subtree (next to the
    // caller's), holding the init, with the limits set, seen from outside
    // and from inside (the cgroup namespace's root is that cgroup; the
    // spec's /sys rbind already has cgroup2 at /sys/fs/cgroup, where the
    // kernel refuses a second mount of it: berth binds the cgroup there).
    let read = |f: &str| std::fs::read_to_string(cg.join(f)).unwrap();
    assert_eq!(read("pids.max").trim(), "42");
    assert_eq!(read("memory.max").trim(), (64u64 << 20).to_string());
    assert!(read("cgroup.procs").lines().any(|l| l == pid.to_string()));
    let inside = u.ok(&[
        "exec",
        &id,
        "cat",
        "/proc/self/cgroup",
        "/sys/fs/cgroup/pids.max",
        "/sys/fs/cgroup/memory.max",
    ]);
    let want = format!("0::/\n42\n{}\n", 64u64 << 20);
    assert_eq!(inside, want);
    // The user changes the limit and freezes the container.
    u.ok(&["update", "--pids-limit", "17", &id]);
    assert_eq!(read("pids.max").trim(), "17");
    u.ok(&["pause", &id]);
    assert_eq!(u.state(&id)["status"], "paused");
    assert_eq!(read("cgroup.freeze").trim(), "1");
    u.ok(&["resume", &id]);
    assert_eq!(u.state(&id)["status"], "running");
    u.ok(&["delete", "--force", &id]);
    common::reap(pid);
    assert!(!cg.exists(), "cgroup left behind");
    u.assert_no_state(&id);
}

/// `exec` into a `created` container (before `start`), as the user and as
/// root with the same bundle: runc allows it, and both see the same
/// namespaces (the user's single-id mapping); the init still waits for
/// `start` afterwards.
#[test]
fn rootless_exec_into_a_created_container() {
    if in_guest() {
        return;
    }
    let u = User::new();
    let b = u.bundle(&["sleep", "1000"]);
    let probe = [
        "sh",
        "-c",
        "echo exec-in-created; id -u; cat /proc/self/uid_map; cat /proc/1/comm",
    ];
    let want = |out: &str| {
        let norm: Vec<String> = out
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            norm[..3],
            ["exec-in-created", "0", &format!("0 {} 1", u.uid)],
            "{out}"
        );
    };
    let root = common::Runtime::berth();
    for as_user in [true, false] {
        let who = if as_user { "user" } else { "root" };
        let id = common::unique(&format!("rl-cexec-{who}"));
        let ok = |a: &[&str]| if as_user { u.ok(a) } else { root.ok(a) };
        let state = |i: &str| if as_user { u.state(i) } else { root.state(i) };
        ok(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
        assert_eq!(state(&id)["status"], "created", "{who}");
        let out = ok(&["exec", &id, probe[0], probe[1], probe[2]]);
        want(&out);
        assert_eq!(
            state(&id)["status"],
            "created",
            "{who}: exec started the container"
        );
        ok(&["start", &id]);
        assert_eq!(state(&id)["status"], "running", "{who}");
        let out = ok(&["exec", &id, probe[0], probe[1], probe[2]]);
        want(&out);
        assert!(out.trim_end().ends_with("sleep"), "{who}: {out}");
        let pid = state(&id)["pid"].as_i64().unwrap() as i32;
        ok(&["delete", "--force", &id]);
        common::reap(pid);
        let err = if as_user {
            u.fails(&["state", &id])
        } else {
            root.fails(&["state", &id])
        };
        assert!(
            err.contains(&id) || err.contains("not exist"),
            "{who}: {err}"
        );
    }
}
