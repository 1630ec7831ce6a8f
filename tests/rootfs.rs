//! The container's filesystem: mounts, devices, masked and read-only
//! paths, and a hostile rootfs that tries to redirect mounts onto the host.

mod common;

use common::{exists, Bundle, Runtime};
use serde_json::json;

fn run_sh(
    b: &mut Bundle,
    edit: impl FnOnce(&mut serde_json::Value),
    script: &str,
) -> (i32, String, String) {
    b.edit(|s| s["process"]["args"] = json!(["/bin/sh", "-c", script]));
    b.edit(edit);
    let rt = Runtime::berth();
    rt.run(b, &common::unique("t-rootfs"))
}

#[test]
fn default_mounts_match_the_spec() {
    let mut b = Bundle::new(&[]);
    let (code, out, err) = run_sh(&mut b, |_| {}, "cat /proc/self/mountinfo");
    assert_eq!(code, 0, "{err}");
    let find = |mp: &str| {
        out.lines()
            .find(|l| l.split(' ').nth(4) == Some(mp))
            .unwrap_or_else(|| panic!("no {mp} in\n{out}"))
            .to_string()
    };
    assert!(find("/").contains(" ro,"), "root is read-only");
    assert!(find("/proc").contains(" - proc "));
    assert!(find("/dev").contains(" - tmpfs "));
    assert!(find("/dev/pts").contains(" - devpts "));
    assert!(find("/dev/shm").contains("nodev,noexec"));
    assert!(find("/dev/mqueue").contains(" - mqueue "));
    assert!(find("/sys").contains(" ro,"), "sysfs is read-only");
    let cg = find("/sys/fs/cgroup");
    assert!(cg.contains(" ro,") && cg.contains(" - tmpfs "), "{cg}");
    assert!(find("/sys/fs/cgroup/memory").contains(" - cgroup "));
}

#[test]
fn masked_and_readonly_paths() {
    let mut b = Bundle::new(&[]);
    let (code, out, err) = run_sh(
        &mut b,
        |_| {},
        "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname 2>/dev/null; echo ro=$?",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "0\n0\nro=1\n");
}

#[test]
fn writable_root_when_not_readonly() {
    let mut b = Bundle::new(&[]);
    let (code, out, err) = run_sh(
        &mut b,
        |s| s["root"]["readonly"] = json!(false),
        "touch /newfile && echo ok",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ok\n");
    assert!(b.rootfs().join("newfile").exists());
}

#[test]
fn bind_mounts_with_options() {
    let mut b = Bundle::new(&[]);
    let host = b.dir.join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("data"), "from-host").unwrap();
    std::fs::write(b.dir.join("single"), "one-file").unwrap();
    let (code, out, err) = run_sh(
        &mut b,
        |s| {
            let m = s["mounts"].as_array_mut().unwrap();
            m.push(json!({"destination": "/mnt/ro", "type": "bind", "source": "shared", "options": ["rbind", "ro", "nosuid"]}));
            m.push(json!({"destination": "/mnt/rw", "type": "bind", "source": "shared", "options": ["bind", "rw"]}));
            m.push(json!({"destination": "/etc/single", "type": "bind", "source": "single", "options": ["bind", "ro"]}));
            m.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=1777", "noexec"]}));
        },
        "cat /mnt/ro/data; echo; touch /mnt/ro/x 2>/dev/null; echo ro=$?; touch /mnt/rw/y; echo rw=$?; cat /etc/single; echo; \
         grep ' /tmp ' /proc/self/mountinfo | grep -c noexec",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "from-host\nro=1\nrw=0\none-file\n1\n");
    assert!(host.join("y").exists());
}

#[test]
fn spec_devices_are_created() {
    let mut b = Bundle::new(&[]);
    let (code, out, err) = run_sh(
        &mut b,
        |s| {
            s["linux"]["devices"] = json!([{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 416, "uid": 7, "gid": 8}]);
        },
        "stat -c '%t,%T %a %u %g' /dev/mynull; ls -l /dev/ptmx /dev/fd | wc -l; echo x > /dev/null && echo null-ok",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1,3 640 7 8\n2\nnull-ok\n");
}

#[test]
fn no_pivot_mode_runs() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/sh", "-c", "ls / | wc -l"]);
    let out = rt.run_cmd(&[
        "run",
        "--no-pivot",
        "--bundle",
        b.dir.to_str().unwrap(),
        "t-nopivot",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn failing_mount_gives_precise_error_and_leaves_nothing() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/true"]);
    b.edit(|s| {
        s["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/x", "type": "nosuchfs", "source": "none"}))
    });
    let err = rt.fails(&["create", "--bundle", b.dir.to_str().unwrap(), "t-badmount"]);
    assert!(err.contains("mount none on /x: no such device"), "{err}");
    assert!(!exists(&rt.root.join("t-badmount")));
}

/// A rootfs whose directories are symlinks to host paths (absolute and
/// relative) must never get a mount or a file on the host.
#[test]
fn hostile_rootfs_symlinks_cannot_redirect_mounts_to_the_host() {
    let canary = std::env::temp_dir().join(common::unique("berth-canary"));
    std::fs::create_dir_all(&canary).unwrap();
    std::fs::write(canary.join("keep"), "untouched").unwrap();
    let rt = Runtime::berth();
    for (i, link) in [
        canary.to_str().unwrap().to_string(),
        format!("../../../../../../..{}", canary.display()),
    ]
    .iter()
    .enumerate()
    {
        let mut b = Bundle::new(&["/bin/true"]);
        std::os::unix::fs::symlink(link, b.rootfs().join("evil")).unwrap();
        b.edit(|s| {
            let m = s["mounts"].as_array_mut().unwrap();
            m.push(json!({"destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs"}));
            m.push(json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"}));
        });
        let id = format!("t-hostile{i}");
        let out = rt.run_cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &id]);
        // Either refused or contained: the host side is untouched.
        let _ = out;
        let entries: Vec<_> = std::fs::read_dir(&canary)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            entries,
            vec![std::ffi::OsString::from("keep")],
            "host dir changed"
        );
        assert_eq!(
            std::fs::read_to_string(canary.join("keep")).unwrap(),
            "untouched"
        );
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mi.contains(canary.to_str().unwrap()),
            "a mount landed on the host"
        );
        assert!(!exists(&rt.root.join(&id)));
    }
    std::fs::remove_dir_all(&canary).unwrap();
}

#[test]
fn hostile_device_path_is_contained() {
    let canary = std::env::temp_dir().join(common::unique("berth-canary-dev"));
    std::fs::create_dir_all(&canary).unwrap();
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/true"]);
    // /dev is a tmpfs, but a device path with .. must stay inside the root.
    b.edit(|s| {
        s["linux"]["devices"] = json!([{"path": format!("/dev/../../../../../..{}/node", canary.display()), "type": "c", "major": 1, "minor": 3}]);
    });
    let _ = rt.run_cmd(&["run", "--bundle", b.dir.to_str().unwrap(), "t-hostdev"]);
    assert!(
        std::fs::read_dir(&canary).unwrap().next().is_none(),
        "device node created on the host"
    );
    std::fs::remove_dir_all(&canary).unwrap();
}

#[test]
fn tmpcopyup_fills_the_tmpfs_with_what_it_covers() {
    let mut b = Bundle::new(&[]);
    let etc = b.rootfs().join("etc");
    std::fs::create_dir_all(etc.join("sub")).unwrap();
    std::fs::write(etc.join("sub/file"), "covered\n").unwrap();
    std::fs::write(etc.join("exe"), "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(etc.join("exe"), std::fs::Permissions::from_mode(0o4751)).unwrap();
    std::os::unix::fs::chown(etc.join("sub/file"), Some(7), Some(8)).unwrap();
    // A symlink leading out of the rootfs is copied as a symlink.
    let canary = std::env::temp_dir().join(common::unique("copyup-canary"));
    std::fs::write(&canary, "host\n").unwrap();
    std::os::unix::fs::symlink(&canary, etc.join("out")).unwrap();
    let host_before = std::fs::read_dir(&etc).unwrap().count();

    let (code, out, err) = run_sh(
        &mut b,
        |s| {
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                "options": ["tmpcopyup", "nosuid", "mode=755"]
            }));
        },
        "cat /etc/sub/file; stat -c '%a %u:%g' /etc/exe /etc/sub/file; readlink /etc/out; \
         grep ' /etc ' /proc/self/mountinfo | grep -c tmpfs; echo new > /etc/new && cat /etc/new",
    );
    assert_eq!(code, 0, "{err}");
    let want = format!("covered\n4751 0:0\n644 7:8\n{}\n1\nnew\n", canary.display());
    assert_eq!(out, want);
    // The image's directory and the host file are untouched.
    assert!(!exists(&etc.join("new")));
    assert_eq!(std::fs::read_dir(&etc).unwrap().count(), host_before);
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "host\n");
    let _ = std::fs::remove_file(&canary);

    // Read-only: filled first, then remounted ro.
    let mut b = Bundle::new(&[]);
    std::fs::write(b.rootfs().join("etc/kept"), "kept\n").unwrap();
    let (code, out, err) = run_sh(
        &mut b,
        |s| {
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                "options": ["tmpcopyup", "ro"]
            }));
        },
        "cat /etc/kept; touch /etc/x 2>/dev/null && echo writable || echo read-only",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "kept\nread-only\n");
}

#[test]
fn idmapped_bind_mounts_show_mapped_owners() {
    let src = std::env::temp_dir().join(common::unique("idmap-src"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("root-file"), "r\n").unwrap();
    std::fs::write(src.join("user-file"), "u\n").unwrap();
    std::os::unix::fs::chown(src.join("user-file"), Some(1000), Some(1000)).unwrap();
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = Rm(src.clone());
    let src_s = src.to_str().unwrap().to_string();

    // No user namespace: {containerID 0, hostID 1234} shows on-disk 0 as
    // 1234 (runc's reading); 1000 is unmapped (overflow id 65534).
    let mut b = Bundle::new(&[]);
    let (code, out, err) = run_sh(
        &mut b,
        |s| {
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt", "type": "bind", "source": src_s,
                "options": ["rbind", "idmap"],
                "uidMappings": [{"containerID": 0, "hostID": 1234, "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": 1234, "size": 1}]
            }));
        },
        "stat -c '%u:%g' /mnt/root-file /mnt/user-file; grep ' /mnt ' /proc/self/mountinfo | grep -c idmapped",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1234:1234\n65534:65534\n1\n");

    // A user namespace (0 → 100000) and `idmap` without mappings: the
    // container's own mapping, so host root's files are the container root's
    // and what it creates is owned by root on disk.
    let mut b = Bundle::new(&[]);
    std::fs::create_dir(b.rootfs().join("mnt")).unwrap();
    let (code, out, err) = run_sh(
        &mut b,
        |s| {
            common::add_userns(s);
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt", "type": "bind", "source": src_s,
                "options": ["bind", "idmap"]
            }));
        },
        "stat -c '%u:%g' /mnt/root-file /mnt/user-file; echo c > /mnt/created",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "0:0\n1000:1000\n");
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(src.join("created")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));

    // Errors: idmap on a non-bind mount, and without mappings or userns.
    let rt = Runtime::berth();
    for (mount, want) in [
        (
            json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}),
            "only supported for bind mounts",
        ),
        (
            json!({"destination": "/mnt", "type": "bind", "source": src_s, "options": ["bind", "idmap"]}),
            "needs a user namespace",
        ),
    ] {
        let mut b = Bundle::new(&["/bin/true"]);
        b.edit(|s| s["mounts"].as_array_mut().unwrap().push(mount));
        let id = common::unique("t-idmap-err");
        let err = rt.fails(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
        assert!(err.contains(want), "{err}");
        assert!(!exists(&rt.root.join(&id)), "no state left");
    }
}

#[test]
fn overlay_mount_with_its_data_options() {
    let mut b = Bundle::new(&[]);
    for d in ["lower", "upper", "work"] {
        std::fs::create_dir_all(b.dir.join(d)).unwrap();
    }
    std::fs::write(b.dir.join("lower/a"), "lower\n").unwrap();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        b.dir.join("lower").display(),
        b.dir.join("upper").display(),
        b.dir.join("work").display()
    );
    let (code, out, err) = run_sh(
        &mut b,
        |s| {
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt", "type": "overlay", "source": "overlay",
                "options": [data, "nodev"]
            }));
        },
        "cat /mnt/a; echo upper > /mnt/b; echo changed > /mnt/a; grep ' /mnt ' /proc/self/mountinfo | grep -c ' - overlay '",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "lower\n1\n");
    // Writes went to the upper layer; the lower one is untouched.
    assert_eq!(
        std::fs::read_to_string(b.dir.join("upper/b")).unwrap(),
        "upper\n"
    );
    assert_eq!(
        std::fs::read_to_string(b.dir.join("upper/a")).unwrap(),
        "changed\n"
    );
    assert_eq!(
        std::fs::read_to_string(b.dir.join("lower/a")).unwrap(),
        "lower\n"
    );
}

#[test]
fn propagation_options_reach_the_mount() {
    let mut b = Bundle::new(&[]);
    std::fs::create_dir_all(b.dir.join("shared")).unwrap();
    let (code, out, err) = run_sh(
        &mut b,
        |s| {
            let m = s["mounts"].as_array_mut().unwrap();
            m.push(json!({"destination": "/mnt/sh", "type": "bind", "source": "shared", "options": ["rbind", "rshared"]}));
            m.push(json!({"destination": "/mnt/pr", "type": "bind", "source": "shared", "options": ["rbind", "rprivate", "rro"]}));
        },
        "grep -E ' /mnt/(sh|pr) ' /proc/self/mountinfo",
    );
    assert_eq!(code, 0, "{err}");
    let line = |mp: &str| {
        out.lines()
            .find(|l| l.split(' ').nth(4) == Some(mp))
            .unwrap_or_else(|| panic!("no {mp} in {out}"))
            .to_string()
    };
    assert!(line("/mnt/sh").contains(" shared:"), "{out}");
    let pr = line("/mnt/pr");
    assert!(!pr.contains("shared:") && !pr.contains("master:"), "{pr}");
    assert!(pr.split(' ').nth(5).unwrap().starts_with("ro"), "rro: {pr}");
}

/// A host mount with nosuid,nodev,noexec, bound read-only into a container
/// with a user namespace: the kernel locks those flags, so the read-only
/// remount must keep them (or fail with EPERM).
#[test]
fn user_namespace_bind_keeps_the_locked_flags() {
    let host = std::env::temp_dir().join(common::unique("locked"));
    std::fs::create_dir_all(&host).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &host,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _guard = Unmount(host.clone());
    std::fs::write(host.join("f"), "locked\n").unwrap();
    let mut b = Bundle::new(&[]);
    std::fs::create_dir(b.rootfs().join("mnt")).unwrap();
    let src = host.to_str().unwrap().to_string();
    let (code, out, err) = run_sh(
        &mut b,
        |s| {
            common::add_userns(s);
            s["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", "ro"]
            }));
        },
        "cat /mnt/f; grep ' /mnt ' /proc/self/mountinfo | cut -d' ' -f6",
    );
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("locked"));
    let opts = lines.next().unwrap_or_default();
    for want in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(opts.split(',').any(|o| o == want), "{want} in {opts}");
    }
}
