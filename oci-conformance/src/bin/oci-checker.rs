//! The in-container checker: copied into every bundle's rootfs as `/checker`,
//! it reports what the container process sees as one JSON object on stdout.
//!
//! Arguments are probes, run after the base report is gathered:
//! `stat:PATH`, `read:PATH`, `write:PATH` (open a file for writing, or create a
//! file in a directory), `mkdir:PATH`, `ls:PATH`, `lsl:PATH` (each entry with
//! its `stat:`), and the trailing modes
//! `hold` (print, then wait for a signal) and `exit:CODE`.

use serde_json::{json, Map, Value};
use std::ffi::CString;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn read_trim(path: &str) -> Value {
    match std::fs::read_to_string(path) {
        Ok(s) => Value::String(s.trim_end().to_string()),
        Err(e) => json!({ "error": e.raw_os_error().unwrap_or(0) }),
    }
}

fn status_field(status: &str, key: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(|v| v.trim().to_string())
}

fn rlimits() -> Value {
    let names: [(&str, u32); 16] = [
        ("RLIMIT_CPU", libc::RLIMIT_CPU),
        ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
        ("RLIMIT_DATA", libc::RLIMIT_DATA),
        ("RLIMIT_STACK", libc::RLIMIT_STACK),
        ("RLIMIT_CORE", libc::RLIMIT_CORE),
        ("RLIMIT_RSS", libc::RLIMIT_RSS),
        ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
        ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
        ("RLIMIT_AS", libc::RLIMIT_AS),
        ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
        ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
        ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
        ("RLIMIT_NICE", libc::RLIMIT_NICE),
        ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
        ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
    ];
    let mut out = Map::new();
    for (name, res) in names {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the rlimit we own; the resource id is a libc constant.
        let rc = unsafe { libc::getrlimit(res, &mut lim) };
        if rc == 0 {
            out.insert(name.into(), json!([lim.rlim_cur, lim.rlim_max]));
        }
    }
    Value::Object(out)
}

fn namespaces() -> Value {
    let mut out = Map::new();
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts", "time"] {
        if let Ok(link) = std::fs::read_link(format!("/proc/self/ns/{ns}")) {
            out.insert(ns.into(), Value::String(link.display().to_string()));
        }
    }
    Value::Object(out)
}

fn uname() -> (String, String) {
    // SAFETY: utsname is plain old data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return (String::new(), String::new());
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (field(&u.nodename), field(&u.domainname))
}

fn sched() -> Value {
    // SAFETY: sched_getscheduler(0) only queries the calling thread.
    let policy = unsafe { libc::sched_getscheduler(0) };
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: param is a valid, writable sched_param.
    unsafe { libc::sched_getparam(0, &mut param) };
    // SAFETY: getpriority has no pointer arguments (-1 is a valid nice value,
    // so an error is indistinguishable; the caller only compares values).
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    // ioprio_get(IOPRIO_WHO_PROCESS=1, 0)
    // SAFETY: ioprio_get has no pointer arguments.
    let ioprio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
    // SAFETY: cpu_set_t is plain old data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is valid for size_of::<cpu_set_t>() bytes.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    let mut cpus = Vec::new();
    if rc == 0 {
        for cpu in 0..libc::CPU_SETSIZE as usize {
            // SAFETY: cpu is below CPU_SETSIZE.
            if unsafe { libc::CPU_ISSET(cpu, &set) } {
                cpus.push(cpu);
            }
        }
    }
    json!({
        "policy": policy,
        "priority": param.sched_priority,
        "nice": nice,
        "ioprio": ioprio,
        "affinity": cpus,
    })
}

fn tty() -> Value {
    // SAFETY: isatty only inspects the descriptor.
    let isatty = |fd| unsafe { libc::isatty(fd) } == 1;
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into ws, which we own.
    let rc = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) };
    let name = std::fs::read_link("/proc/self/fd/0")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    // Who owns the terminal on stdin, and its mode (runc chowns the pty
    // slave to the process's user).
    // SAFETY: stat is plain old data; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid, writable stat; fd 0 is only inspected.
    let owner = if isatty(0) && unsafe { libc::fstat(0, &mut st) } == 0 {
        json!({ "uid": st.st_uid, "gid": st.st_gid, "mode": st.st_mode & 0o7777 })
    } else {
        Value::Null
    };
    json!({
        "owner": owner,
        "stdin": isatty(0),
        "stdout": isatty(1),
        "stderr": isatty(2),
        "name": name,
        "rows": if rc == 0 { ws.ws_row } else { 0 },
        "cols": if rc == 0 { ws.ws_col } else { 0 },
    })
}

fn stat_probe(path: &str) -> Value {
    match std::fs::symlink_metadata(path) {
        Err(e) => json!({ "exists": false, "error": e.raw_os_error().unwrap_or(0) }),
        Ok(m) => {
            let ft = m.file_type();
            let kind = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else if ft.is_dir() {
                "d"
            } else if ft.is_symlink() {
                "l"
            } else if ft.is_fifo() {
                "p"
            } else if ft.is_socket() {
                "s"
            } else {
                "f"
            };
            let rdev = m.rdev();
            let target = std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            json!({
                "exists": true,
                "kind": kind,
                "major": libc::major(rdev),
                "minor": libc::minor(rdev),
                "mode": m.mode() & 0o7777,
                "uid": m.uid(),
                "gid": m.gid(),
                "size": m.size(),
                "target": target,
            })
        }
    }
}

fn write_probe(path: &str) -> Value {
    let target = if std::path::Path::new(path).is_dir() {
        format!("{}/.oci-checker-probe", path.trim_end_matches('/'))
    } else {
        path.to_string()
    };
    let Ok(c) = CString::new(target.clone()) else {
        return json!({ "ok": false, "error": libc::EINVAL });
    };
    let flags = if target == path {
        libc::O_WRONLY
    } else {
        libc::O_WRONLY | libc::O_CREAT
    };
    // SAFETY: c is a valid NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        return json!({ "ok": false, "error": errno() });
    }
    // SAFETY: fd was just opened by us.
    unsafe { libc::close(fd) };
    if target != path {
        let _ = std::fs::remove_file(&target);
    }
    json!({ "ok": true })
}

fn mkdir_probe(path: &str) -> Value {
    let Ok(c) = CString::new(path) else {
        return json!({ "ok": false, "error": libc::EINVAL });
    };
    // SAFETY: c is a valid NUL-terminated path. The raw mkdirat syscall is
    // used so the seccomp cases know exactly which syscall is made.
    let rc = unsafe { libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, c.as_ptr(), 0o755) };
    if rc != 0 {
        return json!({ "ok": false, "error": errno() });
    }
    let _ = std::fs::remove_dir(path);
    json!({ "ok": true })
}

fn ls_probe(path: &str) -> Value {
    match std::fs::read_dir(path) {
        Err(e) => json!({ "error": e.raw_os_error().unwrap_or(0) }),
        Ok(rd) => {
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            json!(names)
        }
    }
}

/// The open descriptors and what they point at (the directory stream used
/// to list them is left out).
fn fds() -> Value {
    let mut out = Map::new();
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return Value::Object(out);
    };
    let entries: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for fd in entries {
        if let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
            let target = target.display().to_string();
            if target.starts_with("/proc/") && target.ends_with("/fd") {
                continue;
            }
            out.insert(fd, Value::String(target));
        }
    }
    Value::Object(out)
}

/// Every entry of a directory with its `stat:` report.
fn lsl_probe(path: &str) -> Value {
    match std::fs::read_dir(path) {
        Err(e) => json!({ "error": e.raw_os_error().unwrap_or(0) }),
        Ok(rd) => {
            let mut out = Map::new();
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let full = format!("{}/{name}", path.trim_end_matches('/'));
                out.insert(name, stat_probe(&full));
            }
            Value::Object(out)
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(100 + sig) }
}

fn hold() -> ! {
    for sig in [
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGHUP,
        libc::SIGINT,
    ] {
        // SAFETY: on_signal only calls _exit, which is async-signal-safe.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
    loop {
        // SAFETY: pause has no arguments; the handlers end the process.
        unsafe { libc::pause() };
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| status_field(&status, k).unwrap_or_default();
    let (hostname, domainname) = uname();
    // SAFETY: getgroups with size 0 returns the count only.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let mut groups = vec![0 as libc::gid_t; n.max(0) as usize];
    // SAFETY: groups has room for n entries.
    let n = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    groups.truncate(n.max(0) as usize);
    // SAFETY: personality(0xffffffff) only queries.
    let persona = unsafe { libc::personality(0xffff_ffff) };
    // SAFETY: trivial getters.
    let (uid, euid, gid, egid, pid, ppid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
            libc::getpid(),
            libc::getppid(),
        )
    };
    let mut report = json!({
        "pid": pid,
        "ppid": ppid,
        "uid": uid,
        "euid": euid,
        "gid": gid,
        "egid": egid,
        "groups": groups,
        "umask": field("Umask"),
        "cwd": std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
        "env": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "args": args,
        "hostname": hostname,
        "domainname": domainname,
        "caps": {
            "inheritable": field("CapInh"),
            "permitted": field("CapPrm"),
            "effective": field("CapEff"),
            "bounding": field("CapBnd"),
            "ambient": field("CapAmb"),
        },
        "no_new_privs": field("NoNewPrivs"),
        "seccomp": field("Seccomp"),
        "seccomp_filters": field("Seccomp_filters"),
        "signals": {
            "blocked": field("SigBlk"),
            "ignored": field("SigIgn"),
        },
        // SAFETY: getsid/getpgid of the calling process take no pointers.
        "sid": unsafe { libc::getsid(0) },
        // SAFETY: as above.
        "pgid": unsafe { libc::getpgid(0) },
        "fds": fds(),
        "oom_score_adj": read_trim("/proc/self/oom_score_adj"),
        "rlimits": rlimits(),
        "mountinfo": read_trim("/proc/self/mountinfo"),
        "namespaces": namespaces(),
        "personality": persona,
        "sched": sched(),
        "uid_map": read_trim("/proc/self/uid_map"),
        "gid_map": read_trim("/proc/self/gid_map"),
        "timens_offsets": read_trim("/proc/self/timens_offsets"),
        "cgroup": read_trim("/proc/self/cgroup"),
        "tty": tty(),
    });
    let mut probes = Map::new();
    let mut mode = None;
    for arg in &args {
        let (op, path) = arg.split_once(':').unwrap_or((arg.as_str(), ""));
        let value = match op {
            "stat" => stat_probe(path),
            "read" => read_trim(path),
            "write" => write_probe(path),
            "mkdir" => mkdir_probe(path),
            "ls" => ls_probe(path),
            "lsl" => lsl_probe(path),
            "hold" | "exit" => {
                mode = Some((op.to_string(), path.to_string()));
                continue;
            }
            _ => json!({ "error": "unknown probe" }),
        };
        probes.insert(arg.clone(), value);
    }
    report["probes"] = Value::Object(probes);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{report}");
    let _ = out.flush();
    drop(out);
    match mode {
        Some((m, _)) if m == "hold" => hold(),
        Some((_, code)) => std::process::exit(code.parse().unwrap_or(1)),
        None => {}
    }
}
