//! config.md: process (args, env, cwd, user, umask, rlimits, capabilities,
//! noNewPrivileges, oomScoreAdj), root, hostname, domainname.

use super::case;
use crate::case::{Case, Ctx, Level::*};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        case("process.args", "config.md#process", Must,
            "the runtime runs process.args, args[0] as the executable, the rest as its arguments",
            args).mutant("set:/process/args/2=\"read:/etc/group\""),
        case("process.env", "config.md#process", Must,
            "process.env is the program's environment",
            env).mutant("set:/process/env=[\"PATH=/bin\"]"),
        case("process.cwd", "config.md#process", Must,
            "process.cwd is the program's working directory",
            cwd).mutant("set:/process/cwd=\"/\""),
        case("process.cwd-created", "config.md#process", Must,
            "a process.cwd missing from the rootfs is created (as runc does), and the program runs there",
            cwd_created).mutant("set:/process/cwd=\"/\""),
        case("process.user", "config.md#user", Must,
            "uid, gid and additionalGids are the program's credentials",
            user).mutant("set:/process/user/uid=0"),
        case("process.user.additional-gids", "config.md#user", Must,
            "additionalGids are the program's supplementary groups",
            user_groups).mutant("drop:/process/user/additionalGids"),
        case("process.user.umask", "config.md#user", Must,
            "process.user.umask is the program's umask",
            umask).mutant("drop:/process/user/umask"),
        case("process.rlimits", "config.md#posix-process", Must,
            "each rlimits entry is applied with setrlimit (soft and hard)",
            rlimits).mutant("drop:/process/rlimits"),
        case("process.rlimits.invalid-type", "config.md#posix-process", Must,
            "an rlimit type that maps to no kernel resource generates an error",
            rlimits_invalid).mutant("exit:create=0"),
        case("process.rlimits.duplicate", "config.md#posix-process", Must,
            "duplicated rlimit types generate an error",
            rlimits_duplicate).mutant("exit:create=0"),
        case("process.rlimits.above-hard", "config.md#posix-process", Must,
            "an rlimit that cannot be set (hard above ours, no CAP_SYS_RESOURCE) generates an error",
            rlimits_above_hard).mutant("exit:create=0"),
        case("process.capabilities", "config.md#linux-process", Must,
            "each capability set holds exactly the listed capabilities",
            capabilities).mutant("set:/process/capabilities/bounding=[\"CAP_CHOWN\",\"CAP_KILL\",\"CAP_NET_RAW\"]"),
        case("process.capabilities.ambient", "config.md#linux-process", Must,
            "ambient and inheritable capabilities are set as listed",
            capabilities_ambient).mutant("drop:/process/capabilities/ambient"),
        case("process.capabilities.unknown", "config.md#linux-process", Must,
            "a capability that cannot be mapped or granted generates an error",
            capabilities_unknown).mutant("exit:create=0")
            .deviation("runc ignores unknown or unavailable capability names with a warning; callers ship capability lists newer than the kernel and rely on it"),
        case("process.capabilities.not-in-bounding", "config.md#linux-process", Must,
            "a capability this host cannot grant (CAP_SYS_RESOURCE, absent from our bounding set) generates an error",
            capabilities_ungrantable).mutant("exit:create=0\nexit:start=0"),
        case("process.no-new-privileges", "config.md#linux-process", Must,
            "noNewPrivileges true sets no_new_privs",
            nnp_true).mutant("set:/process/noNewPrivileges=false"),
        case("process.no-new-privileges.false", "config.md#linux-process", Must,
            "noNewPrivileges false leaves no_new_privs clear",
            nnp_false).mutant("set:/process/noNewPrivileges=true"),
        case("process.oom-score-adj", "config.md#linux-process", Must,
            "oomScoreAdj is written to the program's oom_score_adj",
            oom).mutant("drop:/process/oomScoreAdj"),
        case("process.terminal", "config.md#process", Must,
            "terminal true attaches a pseudoterminal to the process's stdio, sized by consoleSize",
            terminal).mutant("drop:/process/consoleSize"),
        case("process.oom-score-adj.unset", "config.md#linux-process", Must,
            "without oomScoreAdj the runtime does not change oom_score_adj",
            oom_unset).mutant("set:/process/oomScoreAdj=999"),
        case("root.path", "config.md#root", Must,
            "root.path is the container's root filesystem",
            root_path).mutant("set:/root/path=\"/\""),
        case("root.absolute-path", "bundle.md", Must,
            "root.path may be absolute as well as relative to the bundle",
            root_absolute).mutant("set:/root/path=\"/nonexistent-root\""),
        case("root.readonly", "config.md#root", Must,
            "root.readonly true makes the root filesystem read-only",
            root_readonly).mutant("drop:/root/readonly"),
        case("root.writable", "config.md#root", Must,
            "root.readonly false (or absent) leaves the root filesystem writable",
            root_writable).mutant("set:/root/readonly=true"),
        case("hostname", "config.md#hostname", Must,
            "hostname is the container's hostname, as seen from inside",
            hostname).mutant("drop:/hostname"),
        case("domainname", "config.md#domainname", Must,
            "domainname is the container's NIS domain name",
            domainname).mutant("drop:/domainname"),
        case("hostname.needs-uts", "config-linux.md#namespaces", Runc,
            "hostname without a new uts namespace generates an error",
            hostname_needs_uts).mutant("exit:create=0\nexit:start=0"),
        case("ociVersion.required", "config.md#specification-version", Should,
            "ociVersion is REQUIRED: a config without it is invalid and should be refused",
            no_oci_version).mutant("exit:create=0"),
    ]
}

fn args(ctx: &mut Ctx) {
    let Some(r) = ctx.probe(&["read:/data/marker", "ls:/data"]) else {
        return;
    };
    ctx.check_eq(
        "argv is passed as configured",
        r.get("/args").clone(),
        json!(["read:/data/marker", "ls:/data"]),
    );
    ctx.check_eq(
        "argv[1] is acted on",
        r.probe("read:/data/marker").as_str(),
        Some("oci-conformance"),
    );
}

fn env(ctx: &mut Ctx) {
    ctx.set(
        "/process/env",
        json!(["PATH=/bin", "ALPHA=1", "WITH_SPACE=a b", "EMPTY="]),
    );
    let Some(r) = ctx.run_checker() else { return };
    let env: Vec<String> = serde_json::from_value(r.get("/env").clone()).unwrap_or_default();
    for want in ["PATH=/bin", "ALPHA=1", "WITH_SPACE=a b", "EMPTY="] {
        ctx.check(
            format!("environment holds {want:?}"),
            env.iter().any(|e| e == want),
            format!("env {env:?}"),
        );
    }
}

fn cwd(ctx: &mut Ctx) {
    ctx.set("/process/cwd", json!("/data"));
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq("cwd is /data", r.str("/cwd"), "/data".into());
}

fn cwd_created(ctx: &mut Ctx) {
    ctx.set("/process/cwd", json!("/made/by/runtime"));
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq(
        "cwd is /made/by/runtime",
        r.str("/cwd"),
        "/made/by/runtime".into(),
    );
}

fn user(ctx: &mut Ctx) {
    ctx.set("/process/user", json!({"uid": 1000, "gid": 1001}));
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq("uid is 1000", r.get("/uid").as_u64(), Some(1000));
    ctx.check_eq("euid is 1000", r.get("/euid").as_u64(), Some(1000));
    ctx.check_eq("gid is 1001", r.get("/gid").as_u64(), Some(1001));
    ctx.check_eq("egid is 1001", r.get("/egid").as_u64(), Some(1001));
}

fn user_groups(ctx: &mut Ctx) {
    ctx.set(
        "/process/user",
        json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 6]}),
    );
    let Some(r) = ctx.run_checker() else { return };
    let mut g: Vec<u64> = serde_json::from_value(r.get("/groups").clone()).unwrap_or_default();
    g.sort();
    ctx.check(
        "supplementary groups include 5 and 6",
        g.contains(&5) && g.contains(&6),
        format!("groups {g:?}"),
    );
}

fn umask(ctx: &mut Ctx) {
    ctx.set("/process/user/umask", json!(0o027));
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq("umask is 0027", r.str("/umask"), "0027".into());
}

fn rlimits(ctx: &mut Ctx) {
    let want: [(&str, u64, u64); 4] = [
        ("RLIMIT_NOFILE", 512, 1000),
        ("RLIMIT_CORE", 4096, 8192),
        ("RLIMIT_CPU", 100, 200),
        ("RLIMIT_MSGQUEUE", 4096, 8192),
    ];
    let list: Vec<_> = want
        .iter()
        .map(|(t, s, h)| json!({"type": t, "soft": s, "hard": h}))
        .collect();
    ctx.set("/process/rlimits", json!(list));
    let Some(r) = ctx.run_checker() else { return };
    for (t, s, h) in want {
        ctx.check_eq(
            format!("{t} is soft {s}, hard {h}"),
            r.get(&format!("/rlimits/{t}")).clone(),
            json!([s, h]),
        );
    }
}

fn create_fails(ctx: &mut Ctx, what: &str) {
    let out = ctx.create();
    let failed = if out.ok() {
        // Some runtimes defer the error to start: accept that, but it must fail.
        !ctx.start().ok()
    } else {
        true
    };
    ctx.check(
        format!("{what} generates an error at create or start"),
        failed,
        out.describe(),
    );
}

fn rlimits_invalid(ctx: &mut Ctx) {
    ctx.set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]),
    );
    let out = ctx.create();
    ctx.check(
        "create with rlimit type RLIMIT_BOGUS fails",
        !out.ok(),
        out.describe(),
    );
}

fn rlimits_duplicate(ctx: &mut Ctx) {
    ctx.set(
        "/process/rlimits",
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512},
            {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 256}
        ]),
    );
    let out = ctx.create();
    ctx.check(
        "create with RLIMIT_NOFILE twice fails",
        !out.ok(),
        out.describe(),
    );
}

fn rlimits_above_hard(ctx: &mut Ctx) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if lim.rlim_max == libc::RLIM_INFINITY || lim.rlim_max > (1 << 20) - 1 {
        return ctx.skip(
            "rlimit above the hard limit fails",
            "our RLIMIT_NOFILE hard limit is already at the kernel maximum",
        );
    }
    let over = lim.rlim_max + 1;
    ctx.set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "soft": over, "hard": over}]),
    );
    let out = ctx.create();
    ctx.check(
        format!(
            "create with RLIMIT_NOFILE {over} (above our hard limit, no CAP_SYS_RESOURCE) fails"
        ),
        !out.ok(),
        out.describe(),
    );
}

/// Every capability this kernel knows, by number (linux/capability.h).
pub const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Capability numbers (linux/capability.h).
pub fn cap_number(name: &str) -> Option<u32> {
    CAP_NAMES.iter().position(|n| *n == name).map(|p| p as u32)
}

/// The /proc/PID/status hex mask of a capability list.
pub fn cap_mask(names: &[&str]) -> u64 {
    names
        .iter()
        .filter_map(|n| cap_number(n))
        .fold(0, |m, c| m | (1u64 << c))
}

fn mask_of(hex: &str) -> u64 {
    u64::from_str_radix(hex.trim(), 16).unwrap_or(u64::MAX)
}

fn capabilities(ctx: &mut Ctx) {
    let set = ["CAP_CHOWN", "CAP_KILL"];
    ctx.set(
        "/process/capabilities",
        json!({"bounding": set, "effective": set, "permitted": set}),
    );
    let Some(r) = ctx.run_checker() else { return };
    let want = cap_mask(&set);
    for s in ["bounding", "effective", "permitted"] {
        let got = mask_of(&r.str(&format!("/caps/{s}")));
        ctx.check(
            format!("{s} set is exactly CAP_CHOWN,CAP_KILL"),
            got == want,
            format!("expected {want:016x}, got {got:016x}"),
        );
    }
    let inh = mask_of(&r.str("/caps/inheritable"));
    ctx.check(
        "inheritable set is empty when not listed",
        inh == 0,
        format!("got {inh:016x}"),
    );
    let amb = mask_of(&r.str("/caps/ambient"));
    ctx.check(
        "ambient set is empty when not listed",
        amb == 0,
        format!("got {amb:016x}"),
    );
}

fn capabilities_ambient(ctx: &mut Ctx) {
    let set = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let amb = ["CAP_NET_BIND_SERVICE"];
    ctx.set("/process/capabilities", json!({"bounding": set, "effective": set, "permitted": set, "inheritable": amb, "ambient": amb}));
    ctx.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    let Some(r) = ctx.run_checker() else { return };
    let want = cap_mask(&amb);
    let got = mask_of(&r.str("/caps/ambient"));
    ctx.check(
        "ambient set is CAP_NET_BIND_SERVICE",
        got == want,
        format!("expected {want:016x}, got {got:016x}"),
    );
    let got = mask_of(&r.str("/caps/inheritable"));
    ctx.check(
        "inheritable set is CAP_NET_BIND_SERVICE",
        got == want,
        format!("expected {want:016x}, got {got:016x}"),
    );
    let got = mask_of(&r.str("/caps/effective"));
    ctx.check(
        "a non-root user keeps ambient capabilities in its effective set",
        got == want,
        format!("expected {want:016x}, got {got:016x}"),
    );
}

fn capabilities_unknown(ctx: &mut Ctx) {
    let set = ["CAP_CHOWN", "CAP_BOGUS_CAPABILITY"];
    ctx.set(
        "/process/capabilities",
        json!({"bounding": set, "effective": set, "permitted": set}),
    );
    create_fails(ctx, "an unknown capability name");
}

fn capabilities_ungrantable(ctx: &mut Ctx) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(mask_of)
        .unwrap_or(0);
    if bnd & cap_mask(&["CAP_SYS_RESOURCE"]) != 0 {
        return ctx.skip(
            "an ungrantable capability fails",
            "CAP_SYS_RESOURCE is in our bounding set here",
        );
    }
    let set = ["CAP_CHOWN", "CAP_SYS_RESOURCE"];
    ctx.set(
        "/process/capabilities",
        json!({"bounding": set, "effective": set, "permitted": set}),
    );
    create_fails(ctx, "CAP_SYS_RESOURCE, which this host cannot grant,");
}

fn nnp_true(ctx: &mut Ctx) {
    ctx.set("/process/noNewPrivileges", json!(true));
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq("NoNewPrivs is 1", r.str("/no_new_privs"), "1".into());
}

fn nnp_false(ctx: &mut Ctx) {
    ctx.set("/process/noNewPrivileges", json!(false));
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq("NoNewPrivs is 0", r.str("/no_new_privs"), "0".into());
}

fn oom(ctx: &mut Ctx) {
    ctx.set("/process/oomScoreAdj", json!(423));
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq(
        "oom_score_adj is 423",
        r.str("/oom_score_adj"),
        "423".into(),
    );
}

fn root_path(ctx: &mut Ctx) {
    let Some(r) = ctx.probe(&["read:/data/marker", "stat:/checker"]) else {
        return;
    };
    ctx.check_eq(
        "the bundle's rootfs is /",
        r.probe("read:/data/marker").as_str(),
        Some("oci-conformance"),
    );
    let root = r.mount_at("/");
    ctx.check("a mount is at /", root.is_some(), "no / in mountinfo");
}

fn root_readonly(ctx: &mut Ctx) {
    ctx.set("/root/readonly", json!(true));
    let Some(r) = ctx.probe(&["write:/data", "write:/tmp"]) else {
        return;
    };
    ctx.check_eq(
        "writing under / fails with EROFS",
        r.probe("write:/data")["error"].as_i64(),
        Some(libc::EROFS as i64),
    );
    let ro = r
        .mount_at("/")
        .map(|m| m.options.iter().any(|o| o == "ro"))
        .unwrap_or(false);
    ctx.check("/ is mounted ro", ro, "no ro in / mount options");
}

fn root_writable(ctx: &mut Ctx) {
    ctx.set("/root/readonly", json!(false));
    let Some(r) = ctx.probe(&["write:/data"]) else {
        return;
    };
    ctx.check_eq(
        "writing under / works",
        r.probe("write:/data")["ok"].as_bool(),
        Some(true),
    );
}

fn hostname(ctx: &mut Ctx) {
    ctx.set("/hostname", json!("conformance-host"));
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq(
        "hostname is conformance-host",
        r.str("/hostname"),
        "conformance-host".into(),
    );
}

fn domainname(ctx: &mut Ctx) {
    ctx.set("/domainname", json!("conformance.example"));
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq(
        "domainname is conformance.example",
        r.str("/domainname"),
        "conformance.example".into(),
    );
}

fn hostname_needs_uts(ctx: &mut Ctx) {
    let ns: Vec<_> = ["pid", "network", "ipc", "mount"]
        .iter()
        .map(|t| json!({"type": t}))
        .collect();
    ctx.set("/linux/namespaces", json!(ns));
    create_fails(ctx, "hostname without a uts namespace");
}

fn no_oci_version(ctx: &mut Ctx) {
    ctx.remove("/ociVersion");
    let out = ctx.create();
    ctx.check("create without ociVersion fails", !out.ok(), out.describe());
}

fn terminal(ctx: &mut Ctx) {
    use crate::console::{read_until, ConsoleSocket};
    use std::time::Duration;
    ctx.set("/process/terminal", json!(true));
    ctx.set("/process/consoleSize", json!({"height": 31, "width": 117}));
    ctx.set("/process/env", json!(["PATH=/bin", "TERM=xterm"]));
    ctx.checker(&["stat:/dev/console"]);
    let sock_path = ctx.path("console.sock");
    let sock = match ConsoleSocket::bind(&sock_path) {
        Ok(s) => s,
        Err(e) => return ctx.check("console socket is set up", false, e.to_string()),
    };
    let (id, sp) = (ctx.id.clone(), sock_path.display().to_string());
    let out = ctx.create_with(&id, &["--console-socket", &sp]);
    if !out.ok() {
        return ctx.check(
            "create with terminal and --console-socket succeeds",
            false,
            out.describe(),
        );
    }
    let master = match sock.receive_master(Duration::from_secs(5)) {
        Ok(m) => m,
        Err(e) => {
            return ctx.check(
                "the runtime sends the pty master on the console socket",
                false,
                e.to_string(),
            )
        }
    };
    ctx.check(
        "the runtime sends the pty master on the console socket",
        true,
        "",
    );
    let pid = ctx.pid();
    let out = ctx.start();
    ctx.check("start succeeds", out.ok(), out.describe());
    let text = read_until(&master, Duration::from_secs(10), |t| t.contains("\"tty\""));
    if let Some(pid) = pid {
        let _ = ctx.wait_exit(pid);
    }
    let line = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let r: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    ctx.check(
        "the checker's report arrives through the pty master",
        r.is_object(),
        format!("read {:?}", text.chars().take(200).collect::<String>()),
    );
    for fd in ["stdin", "stdout", "stderr"] {
        ctx.check_eq(
            format!("{fd} is a terminal"),
            r["tty"][fd].as_bool(),
            Some(true),
        );
    }
    let name = r["tty"]["name"].as_str().unwrap_or("").to_string();
    ctx.check(
        "stdin is a /dev/pts device",
        name.starts_with("/dev/pts/"),
        format!("stdin is {name:?}"),
    );
    ctx.check_eq(
        "consoleSize sets the window size",
        (r["tty"]["rows"].as_u64(), r["tty"]["cols"].as_u64()),
        (Some(31), Some(117)),
    );
}

fn oom_unset(ctx: &mut Ctx) {
    ctx.remove("/process/oomScoreAdj");
    let ours = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap_or_default();
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq(
        "oom_score_adj is the runtime's own",
        r.str("/oom_score_adj"),
        ours.trim().to_string(),
    );
}

fn root_absolute(ctx: &mut Ctx) {
    let abs = ctx.path("rootfs").display().to_string();
    ctx.set("/root/path", json!(abs));
    let Some(r) = ctx.probe(&["read:/data/marker"]) else {
        return;
    };
    ctx.check_eq(
        "the absolute root.path is the container's /",
        r.probe("read:/data/marker").as_str(),
        Some("oci-conformance"),
    );
}
