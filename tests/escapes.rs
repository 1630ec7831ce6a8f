//! Attacks on the runtime from inside the container, each one a way out that
//! a runtime has had: a host directory reached through an inherited fd (the
//! CVE-2024-21626 class) and the host binary overwritten through
//! `/proc/PID/exe` (the CVE-2019-5736 class). Each test proves its attack
//! ran: a probe that never executed, or an attacker that never saw a berth
//! process, would prove nothing.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{example, Bundle, Runtime, BERTH};
use serde_json::{json, Value};

/// A file only the host can see, and a probe that tries to read it through
/// `..` from its cwd: from any host directory a dozen `..` reach `/`.
struct HostSecret {
    dir: PathBuf,
    secret: String,
}

impl HostSecret {
    fn new() -> HostSecret {
        let dir = std::env::temp_dir().join(common::unique("berth-host-secret"));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = format!("HOST-SECRET-{}", common::unique("s"));
        std::fs::write(dir.join("secret"), &secret).unwrap();
        HostSecret { dir, secret }
    }

    /// Prints the container's hostname (proof it ran inside), then tries the
    /// host file relative to the cwd.
    fn probe(&self) -> String {
        let up = "../".repeat(16);
        format!(
            "echo ran-in:$(hostname); cat {up}{}/secret 2>/dev/null; echo",
            self.dir.strip_prefix("/").unwrap().display()
        )
    }
}

impl Drop for HostSecret {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn running(rt: &Runtime, id: &str, hostname: &str) -> (Bundle, i32) {
    let mut b = Bundle::new(&["/bin/sleep", "1000"]);
    b.edit(|s| s["hostname"] = json!(hostname));
    rt.ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), id]);
    let pid = rt.state(id)["pid"].as_i64().unwrap() as i32;
    (b, pid)
}

/// The outcome of one probe: it ran inside and saw nothing of the host, or
/// the runtime refused the cwd. Anything else fails the test.
fn judge(what: &str, code: Option<i32>, out: &str, err: &str, hs: &HostSecret, host: &str) {
    assert!(
        !out.contains(&hs.secret),
        "{what}: the container read a host file: {out}"
    );
    let ran_inside = out.contains(&format!("ran-in:{host}"));
    let refused = code != Some(0) && err.contains("cwd");
    assert!(
        ran_inside || refused,
        "{what}: neither ran inside the container nor was refused (exit {code:?}): {out}{err}"
    );
}

#[test]
fn exec_cwd_through_proc_self_fd_never_reaches_the_host() {
    let hs = HostSecret::new();
    let rt = Runtime::berth();
    let (_b, pid) = running(&rt, "t-esc-cwd", "escape-box");
    // The probe itself works: from a plain cwd it runs inside.
    let out = rt.ok(&[
        "exec",
        "--cwd",
        "/tmp",
        "t-esc-cwd",
        "/bin/sh",
        "-c",
        &hs.probe(),
    ]);
    judge("control", Some(0), &out, "", &hs, "escape-box");
    assert!(out.contains("ran-in:escape-box"), "{out}");
    let mut refused = 0;
    for n in 3..=32 {
        let cwd = format!("/proc/self/fd/{n}");
        let o = rt.run_cmd(&[
            "exec",
            "--cwd",
            &cwd,
            "t-esc-cwd",
            "/bin/sh",
            "-c",
            &hs.probe(),
        ]);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        judge(&cwd, o.status.code(), &out, &err, &hs, "escape-box");
        refused += usize::from(!o.status.success());
    }
    assert!(
        refused > 0,
        "no cwd was refused: every fd 3..32 was a directory?"
    );
    rt.ok(&["delete", "--force", "t-esc-cwd"]);
    common::reap(pid);
}

#[test]
fn process_cwd_through_proc_self_fd_never_reaches_the_host() {
    let hs = HostSecret::new();
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/sh", "-c", &hs.probe()]);
    for n in 3..=32 {
        let cwd = format!("/proc/self/fd/{n}");
        b.edit(|s| {
            s["hostname"] = json!("cwd-box");
            s["process"]["cwd"] = json!(cwd);
        });
        let id = format!("t-esc-pcwd-{n}");
        let (code, out, err) = rt.run(&b, &id);
        judge(&cwd, Some(code), &out, &err, &hs, "cwd-box");
        let _ = rt.run_cmd(&["delete", "--force", &id]);
    }
}

/// The fds of the shell inside, listed by a child (`ls -l`, not a glob in
/// the shell, which would list its own directory fd); the trailing `true`
/// keeps the shell from exec'ing `ls` in its place.
const FD_LIST: &str = "ls -l /proc/$$/fd; true";

/// The fd numbers of an `ls -l /proc/PID/fd` listing (`... N -> target`).
fn fd_numbers(listing: &str) -> BTreeSet<u32> {
    listing
        .lines()
        .filter_map(|l| {
            let (left, _) = l.split_once(" -> ")?;
            left.split_whitespace().last()?.parse().ok()
        })
        .collect()
}

/// Run `rt ARGS` with files dup'ed onto fds 3.. (and nothing else extra).
fn with_fds(rt: &Runtime, args: &[&str], files: &[&Path]) -> (i32, String, String) {
    let opened: Vec<std::fs::File> = files
        .iter()
        .map(|p| std::fs::File::open(p).unwrap())
        .collect();
    let raws: Vec<i32> = opened.iter().map(|f| f.as_raw_fd()).collect();
    let mut cmd = rt.cmd(args);
    // SAFETY: only dup2/fcntl between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Move the sources above the target range first, then dup2.
            let moved: Vec<i32> = raws
                .iter()
                .map(|&fd| libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100))
                .collect();
            for (i, fd) in moved.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_container_process_holds_only_stdio_and_the_fds_it_was_given() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/sh", "-c", FD_LIST]);
    let (code, out, err) = rt.run(&b, "t-fds-run");
    assert_eq!(code, 0, "{err}");
    assert_eq!(fd_numbers(&out), BTreeSet::from([0, 1, 2]), "run: {out}");

    let a = b.dir.join("a.txt");
    let c = b.dir.join("c.txt");
    std::fs::write(&a, "a").unwrap();
    std::fs::write(&c, "c").unwrap();
    let bundle = b.dir.to_str().unwrap().to_string();
    rt.created.borrow_mut().push("t-fds-run2".into());
    let (code, out, err) = with_fds(
        &rt,
        &[
            "run",
            "--preserve-fds",
            "1",
            "--bundle",
            &bundle,
            "t-fds-run2",
        ],
        &[&a],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        fd_numbers(&out),
        BTreeSet::from([0, 1, 2, 3]),
        "run --preserve-fds 1: {out}"
    );
    assert!(out.contains(" 3 -> ") && out.contains("a.txt"), "{out}");

    b.edit(|s| s["process"]["args"] = json!(["/bin/sleep", "1000"]));
    rt.ok(&["run", "-d", "--bundle", &bundle, "t-fds"]);
    let pid = rt.state("t-fds")["pid"].as_i64().unwrap() as i32;
    let out = rt.ok(&["exec", "t-fds", "/bin/sh", "-c", FD_LIST]);
    assert_eq!(fd_numbers(&out), BTreeSet::from([0, 1, 2]), "exec: {out}");

    let (code, out, err) = with_fds(
        &rt,
        &[
            "exec",
            "--preserve-fds",
            "2",
            "t-fds",
            "/bin/sh",
            "-c",
            FD_LIST,
        ],
        &[&a, &c],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        fd_numbers(&out),
        BTreeSet::from([0, 1, 2, 3, 4]),
        "exec --preserve-fds 2: {out}"
    );
    assert!(out.contains("a.txt") && out.contains("c.txt"), "{out}");

    // More fds promised than passed: the runtime's own fds must not fill
    // the gap.
    let (code, out, err) = with_fds(
        &rt,
        &[
            "exec",
            "--preserve-fds",
            "4",
            "t-fds",
            "/bin/sh",
            "-c",
            FD_LIST,
        ],
        &[&a],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        fd_numbers(&out),
        BTreeSet::from([0, 1, 2, 3]),
        "exec --preserve-fds 4 with one fd: {out}"
    );

    // exec --tty: the pty arrives over a console socket.
    let sock = b.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let accept = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        berth::tty::recv_master(conn.as_fd()).unwrap()
    });
    let tty_pid_file = b.dir.join("tty.pid");
    rt.ok(&[
        "exec",
        "-t",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        "--pid-file",
        tty_pid_file.to_str().unwrap(),
        "t-fds",
        "/bin/sh",
        "-c",
        FD_LIST,
    ]);
    let mut f = std::fs::File::from(accept.join().unwrap());
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let out = String::from_utf8_lossy(&raw).replace('\r', "");
    // The detached process was reparented to us (as to a shim): reap it.
    let tty_pid: i32 = std::fs::read_to_string(&tty_pid_file)
        .unwrap()
        .parse()
        .unwrap();
    // SAFETY: blocking wait for our own (reparented) child.
    unsafe { libc::waitpid(tty_pid, std::ptr::null_mut(), 0) };
    assert_eq!(
        fd_numbers(&out),
        BTreeSet::from([0, 1, 2]),
        "exec --tty: {out}"
    );
    assert!(out.contains("/dev/pts/"), "{out}");
    rt.ok(&["delete", "--force", "t-fds"]);
    common::reap(pid);
}

#[test]
fn the_host_binary_cannot_be_reached_or_overwritten_from_inside() {
    // The runtime under attack is a private copy, so a successful attack
    // corrupts only it (and nothing else runs it).
    let bin_dir = common::TempDir::new("berth-bin");
    let copy = bin_dir.0.join("berth");
    std::fs::copy(BERTH, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let original = std::fs::read(&copy).unwrap();
    let rt = Runtime::new(copy.to_str().unwrap());

    // The init must outlive the attack: its exit would end the pid namespace.
    let b = Bundle::new(&["/bin/sleep", "1000"]);
    let rootfs = b.rootfs();
    std::fs::copy(example("escape_attacker"), rootfs.join("attacker")).unwrap();
    // CVE-2019-5736's entry point: a script whose interpreter is the
    // runtime that execs it.
    std::fs::write(rootfs.join("evil"), "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(rootfs.join("evil"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bundle = b.dir.to_str().unwrap().to_string();

    // A created init (the runtime, waiting in the container as its pid 1),
    // the attacker exec'd next to it.
    rt.ok(&["create", "--bundle", &bundle, "t-esc-exe"]);
    let init = rt.state("t-esc-exe")["pid"].as_i64().unwrap() as i32;
    let report = b.dir.join("attack.json");
    let apid_file = b.dir.join("attacker.pid");
    let status = rt
        .cmd(&[
            "exec",
            "-d",
            "--pid-file",
            apid_file.to_str().unwrap(),
            "t-esc-exe",
            "/attacker",
            "30",
        ])
        .stdout(std::fs::File::create(&report).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let apid: i32 = std::fs::read_to_string(&apid_file)
        .unwrap()
        .parse()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));

    for i in 0..200 {
        let out = rt.run_cmd(&["exec", "t-esc-exe", "/bin/true"]);
        assert!(
            out.status.success(),
            "exec {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for _ in 0..10 {
        let _ = rt.run_cmd(&["exec", "t-esc-exe", "/evil"]);
    }
    rt.ok(&["start", "t-esc-exe"]);
    // Now no berth process runs: the attacker keeps trying to write what it
    // holds, then reports.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::fs::write(rootfs.join("attack-stop"), "").unwrap();
    // SAFETY: reaping our own (reparented) child by pid.
    unsafe { libc::waitpid(apid, std::ptr::null_mut(), 0) };
    let _ = rt.run_cmd(&["delete", "--force", "t-esc-exe"]);
    common::reap(init);
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let after = std::fs::read(&copy).unwrap();

    eprintln!("attacker's report: {text}");
    assert_eq!(after, original, "the host binary was modified: {text}");
    let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    let seen = v["seen"].as_array().unwrap();
    assert!(
        !seen.is_empty(),
        "the attacker never saw a berth process: {text}"
    );
    assert!(
        v["written"].as_array().unwrap().is_empty(),
        "the attacker wrote to a berth binary: {text}"
    );
    for fd in v["opath_fds"].as_array().unwrap() {
        assert_eq!(
            fd["read_only_mount"], true,
            "a berth exe reachable from inside is writable: {fd} ({text})"
        );
    }
}
