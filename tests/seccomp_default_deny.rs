//! A default-deny seccomp profile (the kind runtime-tools and strict
//! callers use) lets the container run when it allows what the process
//! needs: nothing berth does after installing the filter may need more
//! than runc itself needs at that point.

mod common;

use common::{Bundle, Runtime};
use serde_json::json;

/// What a static busybox `true` calls, and the execve that starts it.
const BUSYBOX_TRUE: &[&str] = &[
    "execve",
    "arch_prctl",
    "brk",
    "exit_group",
    "getrandom",
    "getuid",
    "mprotect",
    "prctl",
    "prlimit64",
    "readlink",
    "rseq",
    "set_robust_list",
    "set_tid_address",
];

/// Without noNewPrivileges the filter goes in while CAP_SYS_ADMIN is held,
/// before the user switch; runc 1.1 then still makes these calls: the
/// bounding set and capabilities (prctl, capget, capset), the ids
/// (setgroups, setresgid, setresuid), chdir and umask, the lookup of the
/// executable (newfstatat, faccessat2), the sync with its parent (write,
/// read), the exec fifo (openat, write, close) and its fd sweep (openat,
/// getdents64, fcntl, close). berth's equivalents: getcwd (the check that
/// the cwd is inside the root; runc >= 1.1.12 makes it too), statx and
/// access for the lookup, sendto on its channel.
const AFTER_AN_EARLY_FILTER: &[&str] = &[
    "prctl",
    "capget",
    "capset",
    "setgroups",
    "setresgid",
    "setresuid",
    "chdir",
    "umask",
    "newfstatat",
    "faccessat2",
    "write",
    "read",
    "openat",
    "close",
    "getdents64",
    "fcntl",
    "getcwd",
    "statx",
    "access",
    "sendto",
];

fn profile(names: Vec<&str>) -> serde_json::Value {
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    })
}

#[test]
fn with_no_new_privileges_only_the_process_syscalls_are_needed() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/true"]);
    b.edit(|s| {
        s["process"]["noNewPrivileges"] = json!(true);
        s["linux"]["seccomp"] = profile(BUSYBOX_TRUE.to_vec());
    });
    let (code, out, err) = rt.run(&b, "t-deny-nnp");
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn without_no_new_privileges_only_what_runc_needs_after_its_filter_is_needed() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/true"]);
    b.edit(|s| {
        s["process"]["noNewPrivileges"] = json!(false);
        let mut names = BUSYBOX_TRUE.to_vec();
        names.extend_from_slice(AFTER_AN_EARLY_FILTER);
        s["linux"]["seccomp"] = profile(names);
    });
    let (code, out, err) = rt.run(&b, "t-deny-early");
    assert_eq!(code, 0, "{out}{err}");
    // And create/start, where the init waits on the exec fifo after the
    // filter is in.
    let bundle = b.dir.to_str().unwrap().to_string();
    rt.ok(&["create", "--bundle", &bundle, "t-deny-early2"]);
    let pid = rt.state("t-deny-early2")["pid"].as_i64().unwrap() as i32;
    rt.ok(&["start", "t-deny-early2"]);
    rt.wait_status("t-deny-early2", "stopped");
    common::reap(pid);
    rt.ok(&["delete", "t-deny-early2"]);
}

#[test]
fn a_filter_that_denies_close_range_does_not_stop_the_container() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/sh", "-c", "ls /proc/$$/fd; true"]);
    b.edit(|s| {
        s["process"]["noNewPrivileges"] = json!(false);
        s["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    let (code, out, err) = rt.run(&b, "t-deny-close-range");
    assert_eq!(code, 0, "{err}");
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2"], "{out}");
}
