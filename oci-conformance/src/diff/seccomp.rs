//! Seccomp profiles of the corpus: the Docker-shaped default that Debian's
//! containers-common ships (read and converted to the OCI form at test
//! time, as podman does for a container's capabilities), a runtime-tools
//! style default-deny profile (one rule per syscall), and a minimal
//! default-deny profile that allows only what the probe itself calls.

use crate::jsonptr;
use serde_json::{json, Value};

/// Where Debian's containers-common puts its default profile.
pub const CONTAINERS_COMMON: &str = "/usr/share/containers/seccomp.json";

/// The kernel's release as (major, minor), for `minKernel` rules.
fn kernel_version() -> (u64, u64) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u64>().ok());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Converts a containers/Docker-format profile (`archMap`, rules with
/// `includes`/`excludes` on capabilities, arches and kernel versions) into
/// an OCI `linux.seccomp` for amd64 and the given bounding set.
pub fn convert_docker_profile(profile: &Value, bounding: &[String]) -> Result<Value, String> {
    let default_action = profile["defaultAction"]
        .as_str()
        .ok_or("no defaultAction")?
        .to_string();
    let mut architectures = Vec::new();
    for entry in profile["archMap"].as_array().cloned().unwrap_or_default() {
        if entry["architecture"] == "SCMP_ARCH_X86_64" {
            architectures.push("SCMP_ARCH_X86_64".to_string());
            architectures.extend(jsonptr::strings(&entry["subArchitectures"]));
        }
    }
    let kernel = kernel_version();
    let kernel_ok = |v: &Value| {
        let Some(min) = v.as_str() else { return true };
        let mut p = min.split('.').filter_map(|x| x.parse::<u64>().ok());
        let want = (p.next().unwrap_or(0), p.next().unwrap_or(0));
        kernel >= want
    };
    let has_cap = |c: &String| bounding.iter().any(|b| b == c);
    let mut syscalls = Vec::new();
    for rule in profile["syscalls"].as_array().ok_or("no syscalls")? {
        let inc = &rule["includes"];
        let exc = &rule["excludes"];
        let inc_arches = jsonptr::strings(&inc["arches"]);
        if !inc_arches.is_empty() && !inc_arches.iter().any(|a| a == "amd64") {
            continue;
        }
        if jsonptr::strings(&exc["arches"])
            .iter()
            .any(|a| a == "amd64")
        {
            continue;
        }
        if !jsonptr::strings(&inc["caps"]).iter().all(has_cap) {
            continue;
        }
        if jsonptr::strings(&exc["caps"]).iter().any(has_cap) {
            continue;
        }
        if !kernel_ok(&inc["minKernel"])
            || (exc["minKernel"].is_string() && kernel_ok(&exc["minKernel"]))
        {
            continue;
        }
        let mut out = json!({ "names": rule["names"], "action": rule["action"] });
        if let Some(args) = rule["args"].as_array() {
            if !args.is_empty() {
                out["args"] = Value::Array(args.clone());
            }
        }
        if rule["errnoRet"].is_u64() {
            out["errnoRet"] = rule["errnoRet"].clone();
        }
        syscalls.push(out);
    }
    let mut seccomp = json!({
        "defaultAction": default_action,
        "architectures": architectures,
        "syscalls": syscalls,
    });
    if profile["defaultErrnoRet"].is_u64() {
        seccomp["defaultErrnoRet"] = profile["defaultErrnoRet"].clone();
    }
    Ok(seccomp)
}

/// Reads containers-common's profile and converts it for `bounding`.
pub fn containers_common(bounding: &[String]) -> Result<Value, String> {
    let text = std::fs::read_to_string(CONTAINERS_COMMON)
        .map_err(|e| format!("{CONTAINERS_COMMON}: {e} (containers-common, make deps)"))?;
    let profile: Value =
        serde_json::from_str(&text).map_err(|e| format!("{CONTAINERS_COMMON}: {e}"))?;
    convert_docker_profile(&profile, bounding)
}

/// What the probe (a static Rust binary) and a runtime's last steps before
/// `execve` call: the allow list of the minimal default-deny profile.
pub const PROBE_SYSCALLS: &[&str] = &[
    "read",
    "write",
    "openat",
    "open",
    "close",
    "close_range",
    "fstat",
    "newfstatat",
    "statx",
    "lstat",
    "stat",
    "lseek",
    "mmap",
    "munmap",
    "mprotect",
    "mremap",
    "brk",
    "madvise",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "ioctl",
    "pread64",
    "access",
    "faccessat",
    "faccessat2",
    "execve",
    "exit",
    "exit_group",
    "getpid",
    "getppid",
    "gettid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getgroups",
    "getsid",
    "getpgid",
    "getdents64",
    "readlink",
    "readlinkat",
    "getcwd",
    "uname",
    "getrlimit",
    "prlimit64",
    "prctl",
    "futex",
    "sched_getaffinity",
    "sched_getscheduler",
    "sched_getparam",
    "sched_yield",
    "getpriority",
    "ioprio_get",
    "personality",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "poll",
    "ppoll",
    "fcntl",
    "dup",
    "dup2",
    "dup3",
    "getrandom",
    "nanosleep",
    "clock_gettime",
    "clock_nanosleep",
    "tgkill",
    "kill",
    "mkdirat",
    "rmdir",
    "unlinkat",
    "capget",
    "statfs",
    "fstatfs",
    "pause",
    "sched_setaffinity",
    "epoll_pwait",
    "epoll_ctl",
    "epoll_create1",
    "pipe2",
    "waitid",
    "wait4",
    "setsid",
    "umask",
];

/// A short default-deny profile: only the probe's own syscalls pass.
pub fn minimal(default_action: &str) -> Value {
    json!({
        "defaultAction": default_action,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{ "names": PROBE_SYSCALLS, "action": "SCMP_ACT_ALLOW" }],
    })
}

/// The shape runtime-tools' generator writes: default deny with EPERM, the
/// native and compat architectures, one rule per allowed syscall, and a
/// personality rule with an argument comparison. The allow list is
/// containers-common's unconditional one when it is readable, else the
/// probe's.
pub fn runtime_tools_style(bounding: &[String]) -> Value {
    let mut names: Vec<String> = containers_common(bounding)
        .ok()
        .and_then(|p| {
            p["syscalls"].as_array().map(|rules| {
                rules
                    .iter()
                    .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
                    .flat_map(|r| jsonptr::strings(&r["names"]))
                    .collect()
            })
        })
        .unwrap_or_default();
    if names.is_empty() {
        names = PROBE_SYSCALLS.iter().map(|s| s.to_string()).collect();
    }
    names.retain(|n| n != "personality");
    let mut syscalls: Vec<Value> = names
        .iter()
        .map(|n| json!({ "names": [n], "action": "SCMP_ACT_ALLOW" }))
        .collect();
    for persona in [0u64, 8, 0xffff_ffff] {
        syscalls.push(json!({
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{ "index": 0, "value": persona, "op": "SCMP_CMP_EQ" }],
        }));
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_profile_rules_follow_caps_and_arches() {
        let profile = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "archMap": [
                { "architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"] },
                { "architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"] }
            ],
            "syscalls": [
                { "names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [], "includes": {}, "excludes": {} },
                { "names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": { "caps": ["CAP_SYS_ADMIN"] }, "excludes": {} },
                { "names": ["umount2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "includes": {}, "excludes": { "caps": ["CAP_SYS_ADMIN"] } },
                { "names": ["arm_fadvise64_64"], "action": "SCMP_ACT_ALLOW", "includes": { "arches": ["arm"] }, "excludes": {} }
            ]
        });
        let out = convert_docker_profile(&profile, &["CAP_KILL".into()]).unwrap();
        assert_eq!(
            out["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
        );
        assert_eq!(out["defaultErrnoRet"], 38);
        let names: Vec<&Value> = out["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["names"][0])
            .collect();
        assert_eq!(names, vec!["read", "umount2"]);
        let out = convert_docker_profile(&profile, &["CAP_SYS_ADMIN".into()]).unwrap();
        assert_eq!(out["syscalls"][1]["names"][0], "mount");
        assert_eq!(out["syscalls"].as_array().unwrap().len(), 2);
    }
}
