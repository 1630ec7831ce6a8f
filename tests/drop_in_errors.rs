//! Configs runc refuses or carries out where berth once did otherwise
//! (oci-diff's berth-bug rows of issue 11): each is run for real, and a
//! refusal must be a clear error at `create` naming its cause, with no
//! container, cgroup or state left behind.

mod common;

use std::path::{Path, PathBuf};

use common::{Bundle, Runtime};
use serde_json::json;

/// The bundle as Debian's runc 1.1.5 accepts it too, in a cgroup of its
/// own (`cgroupsPath`, relative: under the runtime's cgroup), returned
/// with that path.
fn bundle(args: &[&str]) -> (Bundle, String) {
    let mut b = Bundle::new(args);
    let cg = common::unique("berth-differr");
    b.edit(|s| {
        s["ociVersion"] = json!("1.1.0");
        s["linux"]["cgroupsPath"] = json!(cg);
    });
    (b, cg)
}

#[test]
fn a_device_outside_dev_is_created_where_the_config_says() {
    let (mut b, _) = bundle(&["/bin/stat", "-c", "%F %t:%T %a", "/data/mynull"]);
    b.edit(|s| {
        s["linux"]["devices"] = json!([{
            "path": "/data/mynull", "type": "c", "major": 1, "minor": 3,
            "fileMode": 0o620, "uid": 0, "gid": 0
        }]);
    });
    let rt = Runtime::berth();
    let (code, out, err) = rt.run(&b, "t-dev-outside");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "character special file 1:3 620");
}

#[test]
fn a_device_where_the_image_has_a_different_file_is_refused() {
    let (mut b, cg) = bundle(&["/bin/true"]);
    std::fs::create_dir_all(b.rootfs().join("data")).unwrap();
    std::fs::write(b.rootfs().join("data/marker"), "image").unwrap();
    b.edit(|s| {
        s["linux"]["devices"] = json!([{
            "path": "/data/marker", "type": "c", "major": 1, "minor": 3
        }]);
    });
    let rt = Runtime::berth();
    let err = create_fails(&rt, &b, "t-dev-mismatch", &cg);
    assert!(
        err.contains("/data/marker") && err.contains("different file already exists"),
        "{err}"
    );
    let kept = std::fs::read_to_string(b.rootfs().join("data/marker")).unwrap();
    assert_eq!(kept, "image", "the image's file was replaced");
}

#[test]
fn a_device_path_through_a_symlink_never_lands_outside_the_rootfs() {
    let outside = std::env::temp_dir().join(common::unique("berth-dev-outside"));
    std::fs::create_dir_all(&outside).unwrap();
    let (mut b, _) = bundle(&["/bin/true"]);
    let rel = format!("../../../../../../../..{}", outside.display());
    std::os::unix::fs::symlink(&outside, b.rootfs().join("abs")).unwrap();
    std::os::unix::fs::symlink(&rel, b.rootfs().join("rel")).unwrap();
    let rt = Runtime::berth();
    for path in ["/abs/mynull", "/rel/mynull", "/abs/sub/mynull"] {
        b.edit(|s| {
            s["linux"]["devices"] = json!([{
                "path": path, "type": "c", "major": 1, "minor": 3
            }]);
        });
        // Refused (the link leads nowhere inside the rootfs) or made
        // inside it, where the kernel resolves the link: never outside.
        let _ = rt.run(&b, "t-dev-link");
        let _ = rt.run_cmd(&["delete", "--force", "t-dev-link"]);
        assert!(
            std::fs::read_dir(&outside).unwrap().next().is_none(),
            "{path}: created outside the rootfs"
        );
    }
    std::fs::remove_dir_all(&outside).unwrap();
}

/// The directories a container's cgroup `rel` would have on this host
/// (one per v1 hierarchy and the cgroup2 one), under the caller's own
/// cgroups as berth places a relative cgroupsPath.
fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut out = Vec::new();
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let base = match ctrls {
            "" if Path::new("/sys/fs/cgroup/unified").is_dir() => {
                PathBuf::from("/sys/fs/cgroup/unified")
            }
            "" => PathBuf::from("/sys/fs/cgroup"),
            c => {
                let name = c.trim_start_matches("name=");
                let dir = Path::new("/sys/fs/cgroup").join(name);
                if !dir.is_dir() {
                    continue;
                }
                dir
            }
        };
        out.push(base.join(path.trim_start_matches('/')).join(rel));
    }
    out
}

/// `create` must fail; nothing of the container may remain. Returns the
/// error text.
fn create_fails(rt: &Runtime, b: &Bundle, id: &str, cg: &str) -> String {
    let err = rt.fails(&["create", "--bundle", b.dir.to_str().unwrap(), id]);
    let state = rt.run_cmd(&["state", id]);
    assert!(
        !state.status.success(),
        "{id}: state left behind after: {err}"
    );
    for d in cgroup_dirs(cg) {
        assert!(!d.exists(), "{id}: cgroup {} left behind", d.display());
    }
    err
}

/// The host's hugetlb: a v1 hierarchy, or the controller in the cgroup2
/// tree (a hybrid host can bind it there).
fn host_hugetlb() -> Option<&'static str> {
    if Path::new("/sys/fs/cgroup/hugetlb").is_dir() {
        return Some("v1");
    }
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .find(|d| {
            std::fs::read_to_string(Path::new(d).join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "hugetlb"))
        })
        .map(|_| "cgroup2")
}

#[test]
fn hugepage_limits_are_enforced_or_refused_naming_the_field() {
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").is_dir() {
        eprintln!("skip: this kernel offers no 2MB huge pages");
        return;
    }
    let (mut b, cg) = bundle(&["/bin/true"]);
    let limit = 4u64 << 20;
    b.edit(|s| {
        s["linux"]["resources"]["hugepageLimits"] = json!([{ "pageSize": "2MB", "limit": limit }]);
    });
    let rt = Runtime::berth();
    match host_hugetlb() {
        None => {
            let err = create_fails(&rt, &b, "t-huge", &cg);
            assert!(
                err.contains("linux.resources.hugepageLimits") && err.contains("hugetlb"),
                "{err}"
            );
        }
        Some(kind) => {
            eprintln!("skip the refusal: the host has a hugetlb controller ({kind}); checking the limit is set");
            rt.ok(&["create", "--bundle", b.dir.to_str().unwrap(), "t-huge"]);
            let file = if kind == "v1" {
                "hugetlb.2MB.limit_in_bytes"
            } else {
                "hugetlb.2MB.max"
            };
            let set: Vec<String> = cgroup_dirs(&cg)
                .iter()
                .filter_map(|d| std::fs::read_to_string(d.join(file)).ok())
                .map(|v| v.trim().to_string())
                .collect();
            rt.ok(&["delete", "--force", "t-huge"]);
            assert_eq!(set, vec![limit.to_string()], "{file} of the container");
        }
    }
}

#[test]
fn a_hugepage_size_the_host_lacks_is_refused_up_front() {
    let sizes: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    // 3MB is a huge page size of no architecture.
    assert!(!sizes.iter().any(|s| s == "hugepages-3072kB"));
    let (mut b, cg) = bundle(&["/bin/true"]);
    b.edit(|s| {
        s["linux"]["resources"]["hugepageLimits"] =
            json!([{ "pageSize": "3MB", "limit": 6291456 }]);
    });
    let rt = Runtime::berth();
    let err = create_fails(&rt, &b, "t-huge-3mb", &cg);
    assert!(
        err.contains("linux.resources.hugepageLimits[0].pageSize") && err.contains("3MB"),
        "{err}"
    );
}

#[test]
fn a_profile_denying_setgroups_without_no_new_privileges_reports_setgroups() {
    let (mut b, cg) = bundle(&["/bin/true"]);
    b.edit(|s| {
        s["process"]["noNewPrivileges"] = json!(false);
        // Installed before the user switch (it needs CAP_SYS_ADMIN without
        // no_new_privs): setgroups is denied with EPERM; what the init
        // needs to report it is allowed.
        s["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{
                "names": ["read", "write", "close", "mmap", "munmap", "mremap",
                          "brk", "madvise", "rt_sigaction", "rt_sigprocmask",
                          "rt_sigreturn", "prctl", "futex", "exit", "exit_group"],
                "action": "SCMP_ACT_ALLOW"
            }]
        });
    });
    let rt = Runtime::berth();
    let err = create_fails(&rt, &b, "t-setgroups", &cg);
    assert!(
        err.contains("setgroups") && err.contains("operation not permitted"),
        "{err}"
    );
}

#[test]
fn a_config_without_proc_fails_at_create() {
    let (mut b, cg) = bundle(&["/bin/true"]);
    b.edit(|s| s["mounts"] = json!([]));
    let rt = Runtime::berth();
    let err = create_fails(&rt, &b, "t-no-proc", &cg);
    assert!(err.contains("/proc") && err.contains("exec fifo"), "{err}");
}

#[test]
fn a_user_unmapped_in_the_user_namespace_is_refused_naming_the_mapping() {
    let (mut b, cg) = bundle(&["/bin/true"]);
    b.edit(|s| {
        common::add_userns(s);
        s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 1}]);
        s["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 1000}]);
        s["process"]["terminal"] = json!(true);
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    // The socket is never reached: the config is refused before.
    let sock = b.dir.join("console.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let rt = Runtime::berth();
    let dir = b.dir.to_str().unwrap().to_string();
    let create = |id: &str| {
        let err = rt.fails(&[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            &dir,
            id,
        ]);
        assert!(
            !rt.run_cmd(&["state", id]).status.success(),
            "{id} left behind"
        );
        for d in cgroup_dirs(&cg) {
            assert!(!d.exists(), "{id}: cgroup {} left behind", d.display());
        }
        err
    };
    let err = create("t-unmapped-uid");
    assert!(
        err.contains("process.user.uid") && err.contains("1000") && err.contains("uidMappings"),
        "{err}"
    );
    // The gid: 1000 is just past the gid mapping.
    b.edit(|s| s["process"]["user"] = json!({"uid": 0, "gid": 1000}));
    let err = create("t-unmapped-gid");
    assert!(
        err.contains("process.user.gid") && err.contains("gidMappings"),
        "{err}"
    );
    b.edit(|s| s["process"]["user"] = json!({"uid": 0, "gid": 0, "additionalGids": [5, 4000]}));
    let err = create("t-unmapped-groups");
    assert!(
        err.contains("process.user.additionalGids") && err.contains("4000"),
        "{err}"
    );
    // Mapped ids still run.
    b.edit(|s| {
        s["process"]["terminal"] = json!(false);
        s["process"]["user"] = json!({"uid": 0, "gid": 999});
        s["process"]["args"] = json!(["/bin/id", "-g"]);
    });
    let (code, out, err) = rt.run(&b, "t-mapped");
    assert_eq!((code, out.trim()), (0, "999"), "{err}");
}
