//! config-linux.md: devices, maskedPaths, readonlyPaths, sysctl, seccomp,
//! rootfsPropagation, personality, mountLabel, and the process fields
//! scheduler, ioPriority and execCPUAffinity.

use super::case;
use crate::bundle::{MASKED_PATHS, READONLY_PATHS};
use crate::case::{Case, Ctx, Level::*};
use crate::reaper::Exit;
use serde_json::{json, Value};

pub fn cases() -> Vec<Case> {
    vec![
        case("devices.default", "config-linux.md#default-devices", Must,
            "/dev/null, zero, full, random, urandom and tty exist as the right character devices", default_devices)
            .mutant("add-mount:{\"destination\":\"/dev/full\",\"type\":\"bind\",\"source\":\"/dev/zero\",\"options\":[\"bind\"]}"),
        case("devices.default-symlinks", "config-linux.md#dev-symbolic-links", Must,
            "/dev/fd, /dev/stdin, /dev/stdout, /dev/stderr are set up", dev_symlinks)
            .mutant("add-mount:{\"destination\":\"/dev/fd\",\"type\":\"tmpfs\",\"source\":\"tmpfs\"}"),
        case("devices.ptmx", "config-linux.md#dev-symbolic-links", Must,
            "/dev/ptmx points at /dev/pts/ptmx when devpts is mounted", dev_ptmx)
            .mutant("add-mount:{\"destination\":\"/dev/ptmx\",\"type\":\"bind\",\"source\":\"/dev/null\",\"options\":[\"bind\"]}"),
        case("devices.configured", "config-linux.md#devices", Must,
            "linux.devices entries are created with their type, major/minor, fileMode, uid and gid", configured_devices)
            .mutant("set:/linux/devices/0/minor=5"),
        case("devices.existing-mismatch", "config-linux.md#devices", Must,
            "a device path where a different file already exists generates an error", device_mismatch)
            .mutant("exit:create=0\nexit:start=0"),
        case("devices.fifo", "config-linux.md#devices", Must,
            "a `p` (fifo) device entry is created as a fifo", fifo_device)
            .mutant("drop:/linux/devices"),
        case("masked-paths", "config-linux.md#masked-paths", Must,
            "maskedPaths are masked so the container cannot read them", masked)
            .mutant("drop:/linux/maskedPaths"),
        case("readonly-paths", "config-linux.md#readonly-paths", Must,
            "readonlyPaths are read-only inside the container", readonly)
            .mutant("drop:/linux/readonlyPaths"),
        case("masked-paths.custom", "config-linux.md#masked-paths", Must,
            "any listed path is masked: a file reads empty, a directory is empty", masked_custom)
            .mutant("drop:/linux/maskedPaths"),
        case("readonly-paths.custom", "config-linux.md#readonly-paths", Must,
            "any listed path is read-only, and only it", readonly_custom)
            .mutant("drop:/linux/readonlyPaths"),
        case("mounts.propagation-option", "config.md#mounts", Must,
            "a bind mount's propagation option (rshared/rprivate) is applied", mount_propagation)
            .mutant("set:/mounts/7/options=[\"rbind\",\"rprivate\"]"),
        case("sysctl", "config-linux.md#sysctl", Must,
            "linux.sysctl values are written for the container", sysctl)
            .mutant("drop:/linux/sysctl"),
        case("sysctl.not-namespaced", "config-linux.md#sysctl", Runc,
            "a sysctl outside the container's namespaces (vm.*) is refused", sysctl_host)
            .mutant("exit:create=0"),
        case("seccomp.errno", "config-linux.md#seccomp", Must,
            "SCMP_ACT_ERRNO with errnoRet makes the syscall fail with that errno; Seccomp mode is 2", |c| seccomp_errno(c, Some(13), libc::EACCES))
            .mutant("drop:/linux/seccomp"),
        case("seccomp.errno-default", "config-linux.md#seccomp", Must,
            "SCMP_ACT_ERRNO without errnoRet returns EPERM", |c| seccomp_errno(c, None, libc::EPERM))
            .mutant("drop:/linux/seccomp"),
        case("seccomp.kill", "config-linux.md#seccomp", Must,
            "SCMP_ACT_KILL kills the process with SIGSYS", |c| seccomp_kill(c, "SCMP_ACT_KILL"))
            .mutant("drop:/linux/seccomp"),
        case("seccomp.kill-process", "config-linux.md#seccomp", Must,
            "SCMP_ACT_KILL_PROCESS kills the process with SIGSYS", |c| seccomp_kill(c, "SCMP_ACT_KILL_PROCESS"))
            .mutant("drop:/linux/seccomp"),
        case("seccomp.kill-thread", "config-linux.md#seccomp", Must,
            "SCMP_ACT_KILL_THREAD kills the (single) thread with SIGSYS", |c| seccomp_kill(c, "SCMP_ACT_KILL_THREAD"))
            .mutant("drop:/linux/seccomp"),
        case("seccomp.trap", "config-linux.md#seccomp", Must,
            "SCMP_ACT_TRAP delivers SIGSYS", |c| seccomp_kill(c, "SCMP_ACT_TRAP"))
            .mutant("drop:/linux/seccomp"),
        case("seccomp.trace", "config-linux.md#seccomp", Must,
            "SCMP_ACT_TRACE without a tracer fails the syscall with ENOSYS", seccomp_trace)
            .mutant("drop:/linux/seccomp"),
        case("seccomp.log", "config-linux.md#seccomp", Must,
            "SCMP_ACT_LOG allows the syscall", seccomp_log)
            .mutant("set:/linux/seccomp/syscalls/0/action=\"SCMP_ACT_ERRNO\""),
        case("seccomp.default-errno", "config-linux.md#seccomp", Must,
            "defaultAction applies to syscalls no rule matches (an allow-list)", seccomp_default_action)
            .mutant("set:/linux/seccomp/defaultAction=\"SCMP_ACT_ALLOW\""),
        case("seccomp.args", "config-linux.md#seccomp", Must,
            "rules with args only match calls whose arguments satisfy them", seccomp_args)
            .mutant("drop:/linux/seccomp/syscalls/0/args"),
        case("seccomp.errno-ret-unsupported", "config-linux.md#seccomp", Must,
            "defaultErrnoRet with a defaultAction that takes no errno generates an error", seccomp_errno_unsupported)
            .mutant("drop:/linux/seccomp/defaultErrnoRet"),
        case("seccomp.invalid-action", "config-linux.md#seccomp", Must,
            "an unknown seccomp action generates an error", seccomp_invalid)
            .mutant("exit:create=0"),
        case("seccomp.setup-before-filter", "config-linux.md#seccomp", Must,
            "the runtime's own setup does not depend on syscalls the profile denies: with getcwd denied (and no noNewPrivileges, so the filter goes in while the runtime still holds CAP_SYS_ADMIN) the program runs",
            seccomp_setup_before_filter)
            .mutant("set:/linux/seccomp/syscalls/0/names=[\"getcwd\",\"execve\"]").mutant_on_crun(),
        case("seccomp.allow-list-without-close-range", "config-linux.md#seccomp", Must,
            "a default-deny profile of the Docker era (no close_range, clone3 or pidfd_open on its allow-list), without noNewPrivileges: the program runs under it",
            seccomp_old_allow_list)
            .mutant("set:/linux/seccomp/syscalls/0/names=[\"read\"]"),
        case("seccomp.allow-list-exec", "config-linux.md#seccomp", Runc,
            "exec into a container with that Docker-era default-deny profile runs the process under the filter",
            seccomp_old_allow_list_exec).mutant("noop:exec"),
        case("rootfs-propagation.private", "config-linux.md#rootfs-mount-propagation", Must,
            "rootfsPropagation private makes / a private mount", |c| propagation(c, "private", "private"))
            .mutant("set:/linux/rootfsPropagation=\"shared\"").mutant_on_crun(),
        case("rootfs-propagation.shared", "config-linux.md#rootfs-mount-propagation", Must,
            "rootfsPropagation shared makes / a shared mount", |c| propagation(c, "shared", "shared"))
            .mutant("drop:/linux/rootfsPropagation"),
        case("rootfs-propagation.slave", "config-linux.md#rootfs-mount-propagation", Must,
            "rootfsPropagation slave makes / a slave mount (private when the host side has no peer group)", propagation_slave)
            .mutant("set:/linux/rootfsPropagation=\"shared\"").mutant_on_crun(),
        case("rootfs-propagation.unbindable", "config-linux.md#rootfs-mount-propagation", Must,
            "rootfsPropagation unbindable makes / unbindable", |c| propagation(c, "unbindable", "unbindable"))
            .mutant("drop:/linux/rootfsPropagation"),
        case("personality", "config-linux.md#personality", Must,
            "linux.personality LINUX32 sets the process's execution domain", personality)
            .mutant("drop:/linux/personality"),
        case("mount-label", "config-linux.md#mount-label", Must,
            "mountLabel labels the container's mounts (SELinux)", mount_label),
        case("apparmor-profile", "config.md#linux-process", Must,
            "apparmorProfile confines the process (AppArmor)", apparmor),
        case("process.scheduler", "config.md#linux-process", Must,
            "process.scheduler sets the scheduling policy and nice value (spec 1.2)", scheduler)
            .tags(&["spec-1.2"]).mutant("drop:/process/scheduler"),
        case("process.io-priority", "config.md#linux-process", Must,
            "process.ioPriority sets the I/O class and priority (spec 1.2)", io_priority)
            .tags(&["spec-1.2"]).mutant("drop:/process/ioPriority"),
        case("process.exec-cpu-affinity", "config.md#linux-process", Must,
            "execCPUAffinity.final of an exec'd process pins it (spec 1.2; not applied to init)", cpu_affinity)
            .tags(&["spec-1.2"]).mutant("noop:exec"),
    ]
}

fn default_devices(ctx: &mut Ctx) {
    let devs = [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ];
    let probes: Vec<String> = devs
        .iter()
        .map(|(n, _, _)| format!("stat:/dev/{n}"))
        .collect();
    let refs: Vec<&str> = probes.iter().map(String::as_str).collect();
    let Some(r) = ctx.probe(&refs) else { return };
    for ((name, maj, min), probe) in devs.iter().zip(&probes) {
        let st = r.probe(probe);
        let got = (
            st["kind"].as_str().unwrap_or("-").to_string(),
            st["major"].as_u64(),
            st["minor"].as_u64(),
        );
        ctx.check_eq(
            format!("/dev/{name} is c {maj}:{min}"),
            got,
            ("c".to_string(), Some(*maj), Some(*min)),
        );
        ctx.check_eq(
            format!("/dev/{name} is mode 0666"),
            st["mode"].as_u64(),
            Some(0o666),
        );
    }
}

fn dev_symlinks(ctx: &mut Ctx) {
    let links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    let probes: Vec<String> = links
        .iter()
        .map(|(n, _)| format!("stat:/dev/{n}"))
        .collect();
    let refs: Vec<&str> = probes.iter().map(String::as_str).collect();
    let Some(r) = ctx.probe(&refs) else { return };
    for ((name, target), probe) in links.iter().zip(&probes) {
        let st = r.probe(probe);
        ctx.check_eq(
            format!("/dev/{name} links to {target}"),
            (st["kind"].as_str(), st["target"].as_str()),
            (Some("l"), Some(*target)),
        );
    }
}

fn dev_ptmx(ctx: &mut Ctx) {
    let Some(r) = ctx.probe(&["stat:/dev/ptmx"]) else {
        return;
    };
    let st = r.probe("stat:/dev/ptmx");
    let target = st["target"].as_str().unwrap_or("");
    ctx.check(
        "/dev/ptmx is a symlink to pts/ptmx",
        st["kind"] == "l" && (target == "pts/ptmx" || target == "/dev/pts/ptmx"),
        format!("{st}"),
    );
}

fn configured_devices(ctx: &mut Ctx) {
    ctx.set("/linux/devices", json!([
        {"path": "/dev/conformance-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 5},
        {"path": "/dev/conformance-loop", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600, "uid": 1000, "gid": 1000},
    ]));
    let Some(r) = ctx.probe(&["stat:/dev/conformance-null", "stat:/dev/conformance-loop"]) else {
        return;
    };
    let c = r.probe("stat:/dev/conformance-null").clone();
    ctx.check_eq(
        "char device type and numbers",
        (c["kind"].as_str(), c["major"].as_u64(), c["minor"].as_u64()),
        (Some("c"), Some(1), Some(3)),
    );
    ctx.check_eq("char device fileMode 0640", c["mode"].as_u64(), Some(0o640));
    ctx.check_eq(
        "char device uid/gid 0/5",
        (c["uid"].as_u64(), c["gid"].as_u64()),
        (Some(0), Some(5)),
    );
    let b = r.probe("stat:/dev/conformance-loop").clone();
    ctx.check_eq(
        "block device type and numbers",
        (b["kind"].as_str(), b["major"].as_u64(), b["minor"].as_u64()),
        (Some("b"), Some(7), Some(200)),
    );
    ctx.check_eq(
        "block device fileMode 0600",
        b["mode"].as_u64(),
        Some(0o600),
    );
    ctx.check_eq(
        "block device uid/gid 1000/1000",
        (b["uid"].as_u64(), b["gid"].as_u64()),
        (Some(1000), Some(1000)),
    );
}

fn device_mismatch(ctx: &mut Ctx) {
    ctx.set(
        "/linux/devices",
        json!([{"path": "/data/marker", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]),
    );
    ctx.checker(&[]);
    let out = ctx.create();
    let failed = !out.ok() || !ctx.start().ok();
    ctx.check(
        "create with a device at an existing regular file fails",
        failed,
        out.describe(),
    );
}

fn fifo_device(ctx: &mut Ctx) {
    ctx.set(
        "/linux/devices",
        json!([{"path": "/dev/conformance-fifo", "type": "p", "fileMode": 0o600}]),
    );
    let Some(r) = ctx.probe(&["stat:/dev/conformance-fifo"]) else {
        return;
    };
    ctx.check_eq(
        "/dev/conformance-fifo is a fifo",
        r.probe("stat:/dev/conformance-fifo")["kind"].as_str(),
        Some("p"),
    );
}

fn masked(ctx: &mut Ctx) {
    let mut probes = Vec::new();
    for p in MASKED_PATHS {
        probes.push(format!("stat:{p}"));
        probes.push(format!("read:{p}"));
        probes.push(format!("ls:{p}"));
    }
    let refs: Vec<&str> = probes.iter().map(String::as_str).collect();
    let Some(r) = ctx.probe(&refs) else { return };
    for p in MASKED_PATHS {
        if !std::path::Path::new(p).exists() {
            ctx.skip(
                format!("{p} is masked"),
                format!("{p} does not exist on this host"),
            );
            continue;
        }
        let st = r.probe(&format!("stat:{p}"));
        let masked = match st["kind"].as_str() {
            Some("d") => r
                .probe(&format!("ls:{p}"))
                .as_array()
                .is_some_and(|a| a.is_empty()),
            Some("c") => st["major"] == 1 && st["minor"] == 3,
            Some(_) => r.probe(&format!("read:{p}")).as_str() == Some(""),
            None => false,
        };
        ctx.check(
            format!("{p} is masked (empty directory or /dev/null)"),
            masked,
            format!("stat {st}"),
        );
    }
}

fn masked_custom(ctx: &mut Ctx) {
    ctx.set("/linux/maskedPaths", json!(["/data/marker", "/hookdir"]));
    let _ = std::fs::write(ctx.path("rootfs/hookdir/secret"), "secret\n");
    let Some(r) = ctx.probe(&["read:/data/marker", "ls:/hookdir"]) else {
        return;
    };
    ctx.check_eq(
        "the masked file reads empty",
        r.probe("read:/data/marker").as_str(),
        Some(""),
    );
    ctx.check_eq(
        "the masked directory is empty",
        r.probe("ls:/hookdir").clone(),
        json!([]),
    );
}

fn readonly_custom(ctx: &mut Ctx) {
    ctx.set("/linux/readonlyPaths", json!(["/data"]));
    let Some(r) = ctx.probe(&["write:/data", "write:/tmp", "read:/data/marker"]) else {
        return;
    };
    ctx.check_eq(
        "writing under /data fails with EROFS",
        r.probe("write:/data")["error"].as_i64(),
        Some(libc::EROFS as i64),
    );
    ctx.check_eq(
        "/data is still readable",
        r.probe("read:/data/marker").as_str(),
        Some("oci-conformance"),
    );
    ctx.check_eq(
        "other paths stay writable",
        r.probe("write:/tmp")["ok"].as_bool(),
        Some(true),
    );
}

fn mount_propagation(ctx: &mut Ctx) {
    let src = ctx.path("propagation-src");
    let _ = std::fs::create_dir_all(&src);
    ctx.push("/mounts", json!({"destination": "/mnt/shared", "type": "none", "source": src.display().to_string(), "options": ["rbind", "rshared"]}));
    ctx.push("/mounts", json!({"destination": "/mnt/private", "type": "none", "source": src.display().to_string(), "options": ["rbind", "rprivate"]}));
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq(
        "the rshared bind mount is shared",
        r.mount_at("/mnt/shared").map(|m| m.propagation()),
        Some("shared"),
    );
    ctx.check_eq(
        "the rprivate bind mount is private",
        r.mount_at("/mnt/private").map(|m| m.propagation()),
        Some("private"),
    );
}

fn readonly(ctx: &mut Ctx) {
    let probes: Vec<String> = READONLY_PATHS
        .iter()
        .map(|p| format!("write:{p}"))
        .collect();
    let refs: Vec<&str> = probes.iter().map(String::as_str).collect();
    let Some(r) = ctx.probe(&refs) else { return };
    for p in READONLY_PATHS {
        if !std::path::Path::new(p).exists() {
            ctx.skip(
                format!("{p} is read-only"),
                format!("{p} does not exist on this host"),
            );
            continue;
        }
        let m = r.mount_at(p);
        ctx.check(
            format!("{p} is a read-only mount"),
            m.as_ref()
                .is_some_and(|m| m.options.iter().any(|o| o == "ro")),
            format!("{m:?}"),
        );
    }
    let w = r.probe("write:/proc/sysrq-trigger");
    ctx.check(
        "writing /proc/sysrq-trigger fails",
        w["ok"] != true,
        format!("{w}"),
    );
}

fn sysctl(ctx: &mut Ctx) {
    ctx.set("/linux/sysctl", json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536000", "net.ipv4.ping_group_range": "0 2000"}));
    let Some(r) = ctx.probe(&[
        "read:/proc/sys/net/ipv4/ip_forward",
        "read:/proc/sys/kernel/shmmax",
        "read:/proc/sys/net/ipv4/ping_group_range",
    ]) else {
        return;
    };
    ctx.check_eq(
        "net.ipv4.ip_forward is 1",
        r.probe("read:/proc/sys/net/ipv4/ip_forward").as_str(),
        Some("1"),
    );
    ctx.check_eq(
        "kernel.shmmax is 65536000",
        r.probe("read:/proc/sys/kernel/shmmax").as_str(),
        Some("65536000"),
    );
    let range = r
        .probe("read:/proc/sys/net/ipv4/ping_group_range")
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    ctx.check_eq(
        "net.ipv4.ping_group_range is 0 2000",
        range.as_str(),
        "0 2000",
    );
}

fn sysctl_host(ctx: &mut Ctx) {
    ctx.set("/linux/sysctl", json!({"vm.swappiness": "10"}));
    let out = ctx.create();
    ctx.check("create with vm.swappiness fails", !out.ok(), out.describe());
}

fn seccomp_with(ctx: &mut Ctx, action: &str, errno: Option<i64>) {
    let mut rule = json!({"names": ["mkdirat", "mkdir"], "action": action});
    if let Some(e) = errno {
        rule["errnoRet"] = json!(e);
    }
    ctx.set("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [rule]}));
}

fn seccomp_errno(ctx: &mut Ctx, ret: Option<i64>, want: i32) {
    seccomp_with(ctx, "SCMP_ACT_ERRNO", ret);
    let Some(r) = ctx.probe(&["mkdir:/tmp/seccomp-probe", "write:/tmp"]) else {
        return;
    };
    ctx.check_eq(
        format!("mkdirat fails with errno {want}"),
        r.probe("mkdir:/tmp/seccomp-probe")["error"].as_i64(),
        Some(want as i64),
    );
    ctx.check_eq(
        "other syscalls are allowed (file creation works)",
        r.probe("write:/tmp")["ok"].as_bool(),
        Some(true),
    );
    ctx.check_eq("Seccomp mode is 2 (filter)", r.str("/seccomp"), "2".into());
}

fn seccomp_kill(ctx: &mut Ctx, action: &str) {
    seccomp_with(ctx, action, None);
    ctx.checker(&["mkdir:/tmp/seccomp-probe"]);
    let Some(pid) = ctx.run_ok() else { return };
    let exit = ctx.wait_exit(pid);
    ctx.check_eq(
        format!("{action} ends the process with SIGSYS"),
        exit,
        Some(Exit::Signal(libc::SIGSYS)),
    );
}

fn seccomp_setup_before_filter(ctx: &mut Ctx) {
    ctx.set("/process/noNewPrivileges", json!(false));
    ctx.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}),
    );
    ctx.set_args(&["/bin/busybox", "true"]);
    let Some(pid) = ctx.run_ok() else { return };
    let exit = ctx.wait_exit(pid);
    ctx.check_eq("the program runs and exits 0", exit, Some(Exit::Code(0)));
}

fn seccomp_trace(ctx: &mut Ctx) {
    seccomp_with(ctx, "SCMP_ACT_TRACE", None);
    let Some(r) = ctx.probe(&["mkdir:/tmp/seccomp-probe"]) else {
        return;
    };
    ctx.check_eq(
        "mkdirat fails with ENOSYS (no tracer)",
        r.probe("mkdir:/tmp/seccomp-probe")["error"].as_i64(),
        Some(libc::ENOSYS as i64),
    );
}

fn seccomp_log(ctx: &mut Ctx) {
    seccomp_with(ctx, "SCMP_ACT_LOG", None);
    let Some(r) = ctx.probe(&["mkdir:/tmp/seccomp-probe"]) else {
        return;
    };
    ctx.check_eq(
        "mkdirat succeeds",
        r.probe("mkdir:/tmp/seccomp-probe")["ok"].as_bool(),
        Some(true),
    );
    ctx.check_eq("Seccomp mode is 2 (filter)", r.str("/seccomp"), "2".into());
}

/// What a static Rust binary (our checker) and a runtime's init need: an
/// allow-list for default-deny profiles.
const ALLOW_LIST: &[&str] = &[
    "read",
    "write",
    "openat",
    "open",
    "close",
    "fstat",
    "newfstatat",
    "statx",
    "lstat",
    "stat",
    "mmap",
    "munmap",
    "mprotect",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "ioctl",
    "pread64",
    "access",
    "faccessat",
    "faccessat2",
    "getpid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getgroups",
    "getcwd",
    "readlink",
    "readlinkat",
    "uname",
    "getrlimit",
    "prlimit64",
    "sched_getscheduler",
    "sched_getparam",
    "sched_getaffinity",
    "getpriority",
    "ioprio_get",
    "personality",
    "getdents64",
    "exit",
    "exit_group",
    "execve",
    "execveat",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "futex",
    "sigaltstack",
    "poll",
    "ppoll",
    "getrandom",
    "fcntl",
    "prctl",
    "capget",
    "capset",
    "setgroups",
    "setresuid",
    "setresgid",
    "setuid",
    "setgid",
    "gettid",
    "tgkill",
    "lseek",
    "madvise",
    "mremap",
    "clock_gettime",
    "nanosleep",
    "clock_nanosleep",
    "epoll_pwait",
    "fchdir",
    "chdir",
    "close_range",
    "dup2",
    "dup3",
    "seccomp",
    "keyctl",
    "sched_yield",
    "pselect6",
    "getdents",
    "statfs",
    "fstatfs",
    "umask",
    "set_mempolicy",
    "get_mempolicy",
    "writev",
    "readv",
    "getsid",
    "setsid",
    "kill",
    "wait4",
];

fn seccomp_default_action(ctx: &mut Ctx) {
    // Block only what our checker does not need: everything is allowed except
    // by default... an allow-list is too host-specific, so use ERRNO default
    // with a broad allow-list of what a static Rust binary and runc init use.
    ctx.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::EXDEV,
        "syscalls": [{"names": ALLOW_LIST.to_vec(), "action": "SCMP_ACT_ALLOW"}]}),
    );
    let Some(r) = ctx.probe(&["mkdir:/tmp/seccomp-probe"]) else {
        return;
    };
    let e = r.probe("mkdir:/tmp/seccomp-probe")["error"].as_i64();
    ctx.check(
        "mkdirat (not allowed) fails by the default action",
        e == Some(libc::EXDEV as i64) || e == Some(libc::EPERM as i64),
        format!("error {e:?}"),
    );
}

/// A Docker-era default-deny profile (none of the newer syscalls on its
/// allow-list), without noNewPrivileges: the filter goes in early.
fn set_old_allow_list(ctx: &mut Ctx) {
    let newer = [
        "close_range",
        "clone3",
        "pidfd_open",
        "pidfd_send_signal",
        "openat2",
        "faccessat2",
    ];
    let allowed: Vec<&str> = ALLOW_LIST
        .iter()
        .copied()
        .filter(|n| !newer.contains(n))
        .collect();
    ctx.set("/process/noNewPrivileges", json!(false));
    ctx.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}),
    );
}

fn seccomp_old_allow_list(ctx: &mut Ctx) {
    set_old_allow_list(ctx);
    let Some(r) = ctx.probe(&[]) else { return };
    ctx.check_eq("Seccomp mode is 2 (filter)", r.str("/seccomp"), "2".into());
}

fn seccomp_old_allow_list_exec(ctx: &mut Ctx) {
    set_old_allow_list(ctx);
    if ctx.run_holding(&[]).is_none() {
        return;
    }
    let id = ctx.id.clone();
    let out = ctx.rt(&["exec", &id, "/checker", "exit:0"]);
    ctx.check("exec succeeds", out.ok(), out.describe());
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let r: Value = serde_json::from_str(line).unwrap_or(Value::Null);
    ctx.check_eq(
        "the exec'd process runs under the filter (Seccomp mode 2)",
        r["seccomp"].as_str(),
        Some("2"),
    );
}

fn seccomp_args(ctx: &mut Ctx) {
    // personality(PER_LINUX32) is refused; personality(0xffffffff) (a query) is not.
    ctx.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EMLINK,
         "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"}]}]}),
    );
    let Some(r) = ctx.probe(&["mkdir:/tmp/seccomp-probe"]) else {
        return;
    };
    ctx.check_eq(
        "mkdirat with mode 0755 (rule wants 0700) is allowed",
        r.probe("mkdir:/tmp/seccomp-probe")["ok"].as_bool(),
        Some(true),
    );
    // Same rule, matching argument.
    ctx.cleanup();
    ctx.set("/linux/seccomp/syscalls/0/args/0/value", json!(0o755));
    let _ = std::fs::remove_file(ctx.path("container.out"));
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq(
        "mkdirat with mode 0755 (rule wants 0755) fails with EMLINK",
        r.probe("mkdir:/tmp/seccomp-probe")["error"].as_i64(),
        Some(libc::EMLINK as i64),
    );
}

fn seccomp_errno_unsupported(ctx: &mut Ctx) {
    seccomp_with(ctx, "SCMP_ACT_ERRNO", None);
    ctx.set("/linux/seccomp/defaultErrnoRet", json!(libc::EIO));
    ctx.checker(&[]);
    let out = ctx.create();
    let failed = !out.ok() || !ctx.start().ok();
    ctx.check(
        "create with defaultAction SCMP_ACT_ALLOW and defaultErrnoRet fails",
        failed,
        out.describe(),
    );
}

fn seccomp_invalid(ctx: &mut Ctx) {
    seccomp_with(ctx, "SCMP_ACT_NO_SUCH_ACTION", None);
    let out = ctx.create();
    ctx.check(
        "create with an unknown seccomp action fails",
        !out.ok(),
        out.describe(),
    );
}

fn propagation(ctx: &mut Ctx, value: &str, want: &str) {
    ctx.set("/linux/rootfsPropagation", json!(value));
    let Some(r) = ctx.run_checker() else { return };
    let got = r.mount_at("/").map(|m| m.propagation());
    ctx.check_eq(format!("/ is {want}"), got, Some(want));
}

fn propagation_slave(ctx: &mut Ctx) {
    ctx.set("/linux/rootfsPropagation", json!("slave"));
    let Some(r) = ctx.run_checker() else { return };
    let got = r.mount_at("/").map(|m| m.propagation());
    ctx.check(
        "/ receives but does not send propagation (slave, or private)",
        matches!(got, Some("slave") | Some("private")),
        format!("/ is {got:?}"),
    );
}

fn personality(ctx: &mut Ctx) {
    ctx.set("/linux/personality", json!({"domain": "LINUX32"}));
    let Some(r) = ctx.run_checker() else { return };
    let p = r.get("/personality").as_i64().unwrap_or(-1);
    ctx.check_eq("personality is PER_LINUX32 (8)", p & 0xff, 8);
}

fn mount_label(ctx: &mut Ctx) {
    if !std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        return ctx.skip(
            "mounts carry mountLabel",
            "SELinux is not enabled on this host",
        );
    }
    ctx.check(
        "mounts carry mountLabel",
        false,
        "SELinux hosts are not supported by this suite yet",
    );
}

fn apparmor(ctx: &mut Ctx) {
    if !std::path::Path::new("/sys/kernel/security/apparmor").exists() {
        return ctx.skip(
            "the process runs under apparmorProfile",
            "AppArmor is not enabled on this host",
        );
    }
    ctx.check(
        "the process runs under apparmorProfile",
        false,
        "AppArmor hosts are not supported by this suite yet",
    );
}

fn scheduler(ctx: &mut Ctx) {
    ctx.set("/ociVersion", json!("1.2.0"));
    ctx.set(
        "/process/scheduler",
        json!({"policy": "SCHED_BATCH", "nice": 5}),
    );
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq(
        "policy is SCHED_BATCH (3)",
        r.get("/sched/policy").as_i64(),
        Some(libc::SCHED_BATCH as i64),
    );
    ctx.check_eq("nice is 5", r.get("/sched/nice").as_i64(), Some(5));
}

fn io_priority(ctx: &mut Ctx) {
    ctx.set("/ociVersion", json!("1.2.0"));
    ctx.set(
        "/process/ioPriority",
        json!({"class": "IOPRIO_CLASS_BE", "priority": 6}),
    );
    let Some(r) = ctx.run_checker() else { return };
    // ioprio = class << 13 | data; BE is class 2.
    ctx.check_eq(
        "ioprio is best-effort level 6",
        r.get("/sched/ioprio").as_i64(),
        Some((2 << 13) | 6),
    );
}

fn cpu_affinity(ctx: &mut Ctx) {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if n < 2 {
        return ctx.skip("the exec'd process is pinned to CPU 1", "needs 2 CPUs");
    }
    if ctx.run_holding(&[]).is_none() {
        return;
    }
    let process = json!({"args": ["/checker"], "cwd": "/", "env": ["PATH=/bin"],
        "user": {"uid": 0, "gid": 0}, "execCPUAffinity": {"initial": "0", "final": "1"}});
    let file = ctx.path("exec-affinity.json");
    let _ = std::fs::write(&file, process.to_string());
    let (id, f) = (ctx.id.clone(), file.display().to_string());
    let out = ctx.rt(&["exec", "--process", &f, &id]);
    ctx.check(
        "exec --process with execCPUAffinity succeeds",
        out.ok(),
        out.describe(),
    );
    let r: serde_json::Value = serde_json::from_str(
        out.stdout
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or("{}"),
    )
    .unwrap_or_default();
    ctx.check_eq(
        "the exec'd process's affinity is CPU 1",
        r.pointer("/sched/affinity").cloned(),
        Some(json!([1])),
    );
}
