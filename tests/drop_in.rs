//! Behaviour runc users and its callers rely on, found by running other
//! people's configs (runtime-tools' validation, runc spec bundles) and
//! checked here against runc itself where it can run the same bundle.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Bundle, Runtime};
use serde_json::json;

fn runc() -> Option<Runtime> {
    ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .map(Runtime::new)
}

/// The bundle as Debian's runc 1.1.5 accepts it too.
fn bundle(args: &[&str]) -> Bundle {
    let mut b = Bundle::new(args);
    b.edit(|s| s["ociVersion"] = json!("1.1.0"));
    b
}

/// `run` the bundle under runc (if installed) and berth: (code, stdout)
/// of each, runc first.
fn both(b: &Bundle, id: &str) -> Vec<(i32, String, String)> {
    let mut out = Vec::new();
    for rt in runc().into_iter().chain([Runtime::berth()]) {
        out.push(rt.run(b, id));
        let _ = rt.run_cmd(&["delete", "--force", id]);
    }
    out
}

#[test]
fn a_missing_cwd_is_created() {
    let mut b = bundle(&["/bin/pwd"]);
    b.edit(|s| s["process"]["cwd"] = json!("/made/here"));
    for rt in runc().into_iter().chain([Runtime::berth()]) {
        let (code, out, err) = rt.run(&b, "t-cwd-made");
        assert_eq!(code, 0, "{}: {err}", rt.bin);
        assert_eq!(out.trim(), "/made/here");
        std::fs::remove_dir_all(b.rootfs().join("made")).unwrap();
    }
}

#[test]
fn a_missing_cwd_is_never_created_through_a_symlink_leading_out() {
    let outside = std::env::temp_dir().join(common::unique("berth-outside"));
    std::fs::create_dir_all(&outside).unwrap();
    let mut b = bundle(&["/bin/pwd"]);
    let rel = format!("../../../../../../../..{}", outside.display());
    std::os::unix::fs::symlink(&rel, b.rootfs().join("out")).unwrap();
    std::os::unix::fs::symlink(&outside, b.rootfs().join("abs")).unwrap();
    for cwd in ["/out/made", "/abs/made"] {
        b.edit(|s| s["process"]["cwd"] = json!(cwd));
        // runc refuses these (mkdir: file exists); berth either refuses or
        // creates inside the rootfs, where the kernel resolves the link.
        let (code, out, err) = Runtime::berth().run(&b, "t-cwd-link");
        assert!(code != 0 || out.trim() == cwd, "{cwd}: {out}{err}");
        assert!(
            std::fs::read_dir(&outside).unwrap().next().is_none(),
            "{cwd}: created outside the rootfs"
        );
    }
    std::fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn a_cwd_only_root_can_enter_is_entered_before_the_user_switch() {
    let mut b = bundle(&["/bin/sh", "-c", "pwd; id -u"]);
    std::fs::set_permissions(
        b.rootfs().join("root"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    b.edit(|s| {
        s["process"]["cwd"] = json!("/root");
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    for (code, out, err) in both(&b, "t-cwd-root") {
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, "/root\n1000\n");
    }
}

#[test]
fn kernel_memory_limits_are_accepted_and_ignored() {
    let mut b = bundle(&["/bin/true"]);
    b.edit(|s| {
        s["linux"]["resources"]["memory"] = json!({"kernel": 67108864, "kernelTCP": 67108864})
    });
    for (code, _, err) in both(&b, "t-kmem") {
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn exec_failures_exit_255_with_runcs_text() {
    for rt in runc().into_iter().chain([Runtime::berth()]) {
        let b = bundle(&["/bin/sleep", "1000"]);
        rt.ok(&[
            "run",
            "-d",
            "--bundle",
            b.dir.to_str().unwrap(),
            "t-exec255",
        ]);
        let pid = rt.state("t-exec255")["pid"].as_i64().unwrap() as i32;
        let out = rt.run_cmd(&["exec", "t-exec255", "/no/such/binary"]);
        assert_eq!(out.status.code(), Some(255), "{}", rt.bin);
        assert!(String::from_utf8_lossy(&out.stderr).contains("exec failed"));
        let out = rt.run_cmd(&["exec", "t-exec255", "/bin/sh", "-c", "exit 3"]);
        assert_eq!(out.status.code(), Some(3), "{}", rt.bin);
        // A process.json without user runs as root.
        let pj = b.dir.join("p.json");
        std::fs::write(&pj, r#"{"args": ["/bin/id", "-u"], "cwd": "/"}"#).unwrap();
        assert_eq!(
            rt.ok(&["exec", "-p", pj.to_str().unwrap(), "t-exec255"]),
            "0\n",
            "{}",
            rt.bin
        );
        rt.ok(&["delete", "--force", "t-exec255"]);
        common::reap(pid);
    }
}

#[test]
fn a_read_only_dev_gets_its_pts_and_nodes_then_turns_read_only() {
    let mut b = bundle(&[
        "/bin/sh",
        "-c",
        "test -c /dev/null && test -d /dev/pts && grep ' /dev ro,' /proc/self/mountinfo | wc -l",
    ]);
    b.edit(|s| {
        for m in s["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/dev" {
                m["options"].as_array_mut().unwrap().push(json!("ro"));
            }
        }
    });
    for (code, out, err) in both(&b, "t-dev-ro") {
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.trim(), "1");
    }
}

#[test]
fn every_poststop_hook_runs_even_after_one_fails() {
    let rt = Runtime::berth();
    let mut b = bundle(&["/bin/true"]);
    let marker = b.dir.join("second-ran");
    b.edit(|s| {
        s["hooks"]["poststop"] = json!([
            {"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]},
            {"path": "/bin/sh", "args": ["sh", "-c", format!("echo ok > {}", marker.display())]}
        ])
    });
    let (code, _, err) = rt.run(&b, "t-poststop");
    assert_eq!(code, 0, "{err}");
    assert!(marker.exists(), "the second poststop hook did not run");
}

#[test]
fn create_container_hooks_run_in_the_containers_root() {
    let rt = Runtime::berth();
    let mut b = bundle(&["/bin/true"]);
    let out = b.dir.join("hook-cwd");
    b.edit(|s| {
        s["hooks"]["createContainer"] = json!([
            {"path": "/bin/sh", "args": ["sh", "-c", format!("pwd > {}", out.display())]}
        ])
    });
    let (code, _, err) = rt.run(&b, "t-hook-cwd");
    assert_eq!(code, 0, "{err}");
    let cwd = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        Path::new(cwd.trim()),
        b.rootfs().canonicalize().unwrap(),
        "createContainer hook cwd"
    );
}

#[test]
fn the_terminal_belongs_to_the_containers_user() {
    use std::io::Read;
    use std::os::fd::AsFd;
    let rt = Runtime::berth();
    let mut b = bundle(&["/bin/sh", "-c", "stat -c %u $(tty)"]);
    b.edit(|s| {
        s["process"]["terminal"] = json!(true);
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let sock = b.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let accept = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        berth::tty::recv_master(conn.as_fd()).unwrap()
    });
    let bundle_dir = b.dir.to_str().unwrap().to_string();
    rt.ok(&[
        "run",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        &bundle_dir,
        "t-tty-owner",
    ]);
    let pid = rt.state("t-tty-owner")["pid"].as_i64().unwrap_or(0) as i32;
    let mut f = std::fs::File::from(accept.join().unwrap());
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    common::reap(pid);
    let _ = rt.run_cmd(&["delete", "--force", "t-tty-owner"]);
    assert_eq!(String::from_utf8_lossy(&out).trim(), "1000");
}

#[test]
fn exec_ignore_paused_and_resume_do_not_deadlock() {
    let rt = Runtime::berth();
    let b = bundle(&["/bin/sleep", "1000"]);
    rt.ok(&[
        "run",
        "-d",
        "--bundle",
        b.dir.to_str().unwrap(),
        "t-paused-exec",
    ]);
    let pid = rt.state("t-paused-exec")["pid"].as_i64().unwrap() as i32;
    rt.ok(&["pause", "t-paused-exec"]);
    let exec = rt
        .cmd(&["exec", "--ignore-paused", "t-paused-exec", "/bin/true"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // resume must not wait for the exec, which waits for the thaw.
    let (tx, rx) = std::sync::mpsc::channel();
    let (bin, root) = (rt.bin.clone(), rt.root.clone());
    std::thread::spawn(move || {
        let out = std::process::Command::new(bin)
            .arg("--root")
            .arg(root)
            .args(["resume", "t-paused-exec"])
            .output()
            .unwrap();
        let _ = tx.send(out.status.success());
    });
    let resumed = rx.recv_timeout(std::time::Duration::from_secs(10));
    let mut exec = exec;
    let status = exec.wait().unwrap();
    rt.ok(&["delete", "--force", "t-paused-exec"]);
    common::reap(pid);
    assert_eq!(resumed, Ok(true), "resume deadlocked against exec");
    assert!(status.success());
}

#[test]
fn a_container_without_a_mount_namespace_leaves_the_hosts_mounts_as_they_were() {
    let rt = Runtime::berth();
    let mut b = bundle(&["/bin/sh", "-c", "readlink /proc/self/ns/mnt"]);
    b.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
        s["linux"].as_object_mut().unwrap().remove("maskedPaths");
        s["linux"].as_object_mut().unwrap().remove("readonlyPaths");
    });
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let (code, out, err) = rt.run(&b, "t-no-mntns");
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(code, 0, "{err}");
    // It ran in our mount namespace...
    let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_eq!(out.trim(), ours.to_str().unwrap());
    // ...and left it exactly as it was (runc leaves its mounts behind).
    assert_eq!(before, after, "host mountinfo changed");

    // Masked and read-only paths cannot be had there: runc's text.
    b.edit(|s| s["linux"]["maskedPaths"] = json!(["/proc/kcore"]));
    let (code, _, err) = rt.run(&b, "t-no-mntns2");
    assert_ne!(code, 0);
    assert!(
        err.contains("unable to restrict sys entries without a private MNT namespace"),
        "{err}"
    );
    assert_eq!(
        before,
        std::fs::read_to_string("/proc/self/mountinfo").unwrap()
    );
}

#[test]
fn run_into_a_frozen_cgroup_fails_at_once() {
    let cg = format!("/{}", common::unique("berth-frozen"));
    let freezer = Path::new("/sys/fs/cgroup/freezer");
    if !freezer.exists() {
        eprintln!("skipped: no v1 freezer hierarchy");
        return;
    }
    let dir = freezer.join(cg.trim_start_matches('/'));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("freezer.state"), "FROZEN").unwrap();
    let rt = Runtime::berth();
    let mut b = bundle(&["/bin/true"]);
    b.edit(|s| s["linux"]["cgroupsPath"] = json!(cg));
    let (code, _, err) = rt.run(&b, "t-frozen");
    std::fs::write(dir.join("freezer.state"), "THAWED").unwrap();
    let _ = rt.run_cmd(&["delete", "--force", "t-frozen"]);
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join(cg.trim_start_matches('/')));
    }
    assert_ne!(code, 0);
    assert!(err.contains("unexpectedly frozen"), "{err}");
}

/// Full procfs and sysfs mounts (their root is the filesystem's root) in
/// the mount namespace of `pid`, by listmount(2)/statmount(2) (Linux 6.8),
/// which see mounts no path reaches.
fn full_proc_and_sys_mounts(pid: i32) -> Option<usize> {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok()?;
    let mut ns_id = 0u64;
    const NS_GET_MNTNS_ID: libc::c_ulong = 0x8008_b705;
    // SAFETY: the ioctl writes one u64 into ns_id.
    if unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_MNTNS_ID, &mut ns_id) } < 0 {
        return None;
    }
    #[repr(C)]
    struct Req {
        size: u32,
        spare: u32,
        mnt_id: u64,
        param: u64,
        mnt_ns_id: u64,
    }
    let req = |mnt_id, param| Req {
        size: 32,
        spare: 0,
        mnt_id,
        param,
        mnt_ns_id: ns_id,
    };
    let mut ids = vec![0u64; 4096];
    let list = req(u64::MAX, 0);
    // SAFETY: req is a valid mnt_id_req and ids has the given capacity.
    let n = unsafe { libc::syscall(458, &list as *const Req, ids.as_mut_ptr(), ids.len(), 0) };
    if n < 0 {
        return None;
    }
    let mut full = 0;
    for &id in &ids[..n as usize] {
        let mut buf = vec![0u8; 8192];
        let st = req(id, 0x1 | 0x8); // STATMOUNT_SB_BASIC | STATMOUNT_MNT_ROOT
                                     // SAFETY: req is valid and buf has the given length.
        if unsafe { libc::syscall(457, &st as *const Req, buf.as_mut_ptr(), buf.len(), 0) } < 0 {
            continue;
        }
        let magic = u64::from_ne_bytes(buf[24..32].try_into().unwrap());
        if magic != 0x9fa0 && magic != 0x6265_6572 {
            continue;
        }
        let off = u32::from_ne_bytes(buf[104..108].try_into().unwrap()) as usize;
        let strs = &buf[512..];
        if strs.get(off..off + 2) == Some(b"/\0") {
            full += 1;
        }
    }
    Some(full)
}

#[test]
fn no_pivot_leaves_no_host_procfs_or_sysfs_in_the_containers_namespace() {
    let rt = Runtime::berth();
    let b = bundle(&["/bin/sleep", "1000"]);
    rt.ok(&[
        "run",
        "-d",
        "--no-pivot",
        "--bundle",
        b.dir.to_str().unwrap(),
        "t-no-pivot",
    ]);
    let pid = rt.state("t-no-pivot")["pid"].as_i64().unwrap() as i32;
    let full = full_proc_and_sys_mounts(pid);
    rt.ok(&["delete", "--force", "t-no-pivot"]);
    common::reap(pid);
    let Some(full) = full else {
        eprintln!("skipped: this kernel has no listmount/statmount (Linux 6.8)");
        return;
    };
    // The container's own /proc and /sys, and nothing of the host's.
    assert_eq!(full, 2);
}

/// The `SigIgn:` mask of a /proc/PID/status text.
fn ignored_mask(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no SigIgn in {status:?}"))
}

#[test]
fn signals_the_caller_ignored_are_default_in_the_container() {
    use berth::sys::{set_disposition, Disposition};
    use std::os::unix::process::CommandExt;
    // SIGPIPE and SIGTERM, and the real-time signals glibc reserves (32,
    // 33), which its signal() cannot reset.
    let signals = [libc::SIGPIPE, libc::SIGTERM, 32, 33, 64];
    let ignore = move || {
        for sig in signals {
            set_disposition(sig, Disposition::Ignore)?;
        }
        Ok(())
    };
    let want: u64 = signals.iter().map(|s| 1u64 << (s - 1)).sum();
    // The caller's dispositions as such a caller's children see them.
    let mut host = std::process::Command::new("/bin/cat");
    host.arg("/proc/self/status");
    // SAFETY: the closure only makes rt_sigaction syscalls, which are
    // async-signal-safe between fork and exec.
    unsafe { host.pre_exec(ignore) };
    let out = host.output().unwrap();
    assert_eq!(
        ignored_mask(&String::from_utf8_lossy(&out.stdout)) & want,
        want
    );

    let rt = Runtime::berth();
    let id = common::unique("t-sigign");
    let b = bundle(&["/bin/cat", "/proc/self/status"]);
    let mut cmd = rt.cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    // SAFETY: as above.
    unsafe { cmd.pre_exec(ignore) };
    rt.created.borrow_mut().push(id.clone());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = String::from_utf8_lossy(&out.stdout);
    assert_eq!(ignored_mask(&status), 0, "{status}");
}

#[test]
fn a_tmpfs_over_a_directory_takes_its_mode_unless_mode_is_given() {
    let mut b = bundle(&["/bin/stat", "-c", "%n %a", "/mnt/a", "/mnt/b", "/mnt/c"]);
    let mnt = b.rootfs().join("mnt");
    for (d, mode) in [("a", 0o2750), ("b", 0o711)] {
        std::fs::create_dir_all(mnt.join(d)).unwrap();
        std::fs::set_permissions(mnt.join(d), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    b.edit(|s| {
        let mounts = s["mounts"].as_array_mut().unwrap();
        // a: existing, no mode= (read-only too); b: existing, mode= given;
        // c: created by the runtime.
        mounts.push(
            json!({"destination": "/mnt/a", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "ro"]}),
        );
        mounts.push(
            json!({"destination": "/mnt/b", "type": "tmpfs", "source": "tmpfs",
            "options": ["mode=700"]}),
        );
        mounts.push(json!({"destination": "/mnt/c", "type": "tmpfs", "source": "tmpfs"}));
    });
    let (code, out, err) = Runtime::berth().run(&b, "t-tmpfs-mode");
    assert_eq!(code, 0, "{err}");
    // a as runc gives it (the covered directory's mode, special bits
    // included); b keeps the mode= the config asks for (runc would chmod
    // it to 711, a known runc bug); c has tmpfs's default.
    assert_eq!(out, "/mnt/a 2750\n/mnt/b 700\n/mnt/c 1777\n");
}

#[test]
fn a_tmpfs_over_a_directory_has_the_mode_runc_gives_it() {
    let Some(_) = runc() else {
        eprintln!("skipped: runc is not installed");
        return;
    };
    // A bundle each: the first runtime leaves /mnt/c behind.
    let make = || {
        let mut b = bundle(&["/bin/stat", "-c", "%n %a", "/mnt/a", "/mnt/c"]);
        let a = b.rootfs().join("mnt/a");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o750)).unwrap();
        b.edit(|s| {
            let mounts = s["mounts"].as_array_mut().unwrap();
            for d in ["/mnt/a", "/mnt/c"] {
                mounts.push(json!({"destination": d, "type": "tmpfs", "source": "tmpfs"}));
            }
        });
        b
    };
    let (rb, bb) = (make(), make());
    let by_runc = runc().unwrap().run(&rb, "t-tmpfs-runc");
    let by_berth = Runtime::berth().run(&bb, "t-tmpfs-runc");
    assert_eq!(by_runc.0, 0, "runc: {}", by_runc.2);
    assert_eq!(by_berth.0, 0, "berth: {}", by_berth.2);
    assert_eq!(by_berth.1, by_runc.1, "berth vs runc");
    assert_eq!(by_berth.1, "/mnt/a 750\n/mnt/c 1777\n");
}

#[test]
fn dev_mqueue_belongs_to_the_containers_root_in_a_new_user_namespace() {
    let mut b = bundle(&["/bin/stat", "-c", "%u:%g", "/dev/mqueue"]);
    b.edit(common::add_userns);
    let runs = both(&b, "t-mqueue-owner");
    let (code, out, err) = runs.last().unwrap();
    assert_eq!(*code, 0, "{err}");
    assert_eq!(out, "0:0\n");
    if let [(code, out, err), _] = &runs[..] {
        // runc's is the container root's too, but in the overflow group:
        // it makes the IPC namespace after setresuid(0), before setresgid.
        assert_eq!(*code, 0, "runc: {err}");
        assert_eq!(out, "0:65534\n", "runc");
    }
}
