//! The one environment every runtime runs in: a private mount namespace
//! made once for the whole benchmark, a tmpfs for state roots and bundles,
//! and the bundles themselves.

use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub type Res<T> = Result<T, String>;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const TMPFS_MAGIC: i64 = 0x0102_1994;

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL in paths")
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn fs_magic(p: &Path) -> Option<i64> {
    // SAFETY: an all-zero statfs is a valid out buffer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out pointer.
    if unsafe { libc::statfs(c(p).as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_type as i64)
}

/// What `enter_private_namespace` did, for the report.
pub struct Namespace {
    pub notes: Vec<String>,
    /// The tmpfs that stands in for the hybrid host's cgroup2 mount.
    pub fake_unified: Option<PathBuf>,
}

/// Unshare the mount namespace (once, for the whole run), make every mount
/// in it private (so nothing done here reaches the host), then hide a
/// hybrid host's cgroup2 mount.
///
/// Debian's crun 1.8 refuses a hybrid host (cgroup v1 controllers plus a
/// cgroup2 mount at /sys/fs/cgroup/unified). Here, inside the private
/// namespace only, that cgroup2 mount is detached and a tmpfs is mounted in
/// its place, so every runtime sees a plain cgroup v1 host. Detaching
/// rather than only covering it: a runtime that reads the mount table
/// (berth does) would otherwise still see the covered cgroup2 entry. The
/// host's own mount is untouched (private propagation is checked before).
pub fn enter_private_namespace() -> Res<Namespace> {
    let mut notes = Vec::new();
    let mut fake_unified = None;
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(os_err("unshare(CLONE_NEWNS)"));
        }
        if libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(os_err("make / rprivate"));
        }
    }
    let mi = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    if mi
        .lines()
        .any(|l| l.split(" - ").next().unwrap_or("").contains("shared:"))
    {
        return Err(
            "a mount is still shared after MS_REC|MS_PRIVATE: refusing to touch mounts".into(),
        );
    }
    let unified = Path::new("/sys/fs/cgroup/unified");
    if fs_magic(Path::new("/sys/fs/cgroup")) == Some(TMPFS_MAGIC)
        && fs_magic(unified) == Some(CGROUP2_SUPER_MAGIC)
    {
        // SAFETY: valid paths.
        unsafe {
            if libc::umount2(c(unified).as_ptr(), libc::MNT_DETACH) != 0 {
                return Err(os_err(
                    "detach /sys/fs/cgroup/unified in the private namespace",
                ));
            }
            if libc::mount(
                c"tmpfs".as_ptr(),
                c(unified).as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                c"mode=0755,size=64m".as_ptr() as *const libc::c_void,
            ) != 0
            {
                return Err(os_err("tmpfs over /sys/fs/cgroup/unified"));
            }
        }
        notes.push(
            "hybrid cgroup host: inside the benchmark's private mount namespace the cgroup2 mount \
             at /sys/fs/cgroup/unified is detached and covered by a tmpfs, so all runtimes see \
             cgroup v1 (crun 1.8 refuses the hybrid layout). crun still makes \
             `unified/ID/cgroup.procs` in that tmpfs for each container (and fails if it cannot): \
             the benchmark removes those between rounds, untimed"
                .to_string(),
        );
        fake_unified = Some(unified.to_path_buf());
    }
    Ok(Namespace {
        notes,
        fake_unified,
    })
}

/// Mount a tmpfs at `dir` (created if needed) in the private namespace.
pub fn mount_tmpfs(dir: &Path, size: &str) -> Res<()> {
    fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    // SAFETY: valid paths.
    if unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            c(dir).as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            CString::new(format!("mode=0755,size={size}"))
                .unwrap()
                .as_ptr() as *const libc::c_void,
        )
    } != 0
    {
        return Err(os_err(&format!("tmpfs on {}", dir.display())));
    }
    Ok(())
}

/// Bind `file` read-only onto `target` (an empty file made here): a copy of
/// the berth binary that berth recognises as protected and so does not
/// re-exec (used to measure the re-exec's cost).
pub fn bind_read_only(file: &Path, target: &Path) -> Res<()> {
    fs::write(target, b"").map_err(|e| format!("create {}: {e}", target.display()))?;
    // SAFETY: valid paths.
    unsafe {
        if libc::mount(
            c(file).as_ptr(),
            c(target).as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ) != 0
        {
            return Err(os_err("bind the berth binary"));
        }
        let fl =
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
        if libc::mount(
            std::ptr::null(),
            c(target).as_ptr(),
            std::ptr::null(),
            fl,
            std::ptr::null(),
        ) != 0
        {
            return Err(os_err("make the berth bind read-only"));
        }
    }
    Ok(())
}

pub fn umount(dir: &Path) {
    // SAFETY: valid path; failure is fine (not mounted).
    unsafe { libc::umount2(c(dir).as_ptr(), libc::MNT_DETACH) };
}

/// Find an executable by name on PATH (or take a path as is).
pub fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then(|| fs::canonicalize(&p).unwrap_or(p));
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    for d in path
        .split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
    {
        let p = Path::new(d).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

/// Output of a command run to completion (outside any measurement).
pub fn output(argv: &[&str]) -> Res<String> {
    let o = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    if !o.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            argv.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The bundles every runtime runs: one rootfs from Debian's busybox-static,
/// and configs made by `runc spec` (the peers' default; `berth spec` if no
/// runc) with ociVersion 1.1.0 (crun 1.8 refuses newer), no terminal, and
/// the process args of each workload.
pub struct Bundles {
    pub true_: PathBuf,
    pub sleep: PathBuf,
    pub rootfs_true: PathBuf,
    /// Namespace types of the config (for the unshare floor).
    pub namespaces: Vec<String>,
    pub spec_from: String,
}

pub fn busybox() -> Res<PathBuf> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        let p = Path::new(p);
        if p.is_file() {
            let head = fs::read(p).map_err(|e| e.to_string())?;
            // A static ELF has no PT_INTERP; the cheap check is the absence
            // of the loader's path.
            let dynamic = head.windows(14).any(|w| w == b"/lib64/ld-linu");
            if dynamic {
                return Err(format!(
                    "{} is dynamically linked: install busybox-static",
                    p.display()
                ));
            }
            return Ok(p.to_path_buf());
        }
    }
    Err("no busybox: install busybox-static (make deps)".into())
}

pub fn make_bundles(dir: &Path, spec_tool: &Path) -> Res<Bundles> {
    let bb = busybox()?;
    let mk = |name: &str, args: Value| -> Res<(PathBuf, Vec<String>)> {
        let b = dir.join(name);
        let bin = b.join("rootfs/bin");
        fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
        fs::copy(&bb, bin.join("busybox")).map_err(|e| e.to_string())?;
        for l in ["true", "sleep", "sh"] {
            std::os::unix::fs::symlink("busybox", bin.join(l)).map_err(|e| e.to_string())?;
        }
        output(&[
            spec_tool.to_str().unwrap(),
            "spec",
            "--bundle",
            b.to_str().unwrap(),
        ])?;
        let cfg = b.join("config.json");
        let mut v: Value =
            serde_json::from_str(&fs::read_to_string(&cfg).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        v["ociVersion"] = "1.1.0".into();
        v["process"]["terminal"] = false.into();
        v["process"]["args"] = args;
        let ns = v["linux"]["namespaces"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n["type"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        fs::write(&cfg, serde_json::to_string_pretty(&v).unwrap()).map_err(|e| e.to_string())?;
        Ok((b, ns))
    };
    let (true_, namespaces) = mk("bundle-true", serde_json::json!(["/bin/true"]))?;
    let (sleep, _) = mk("bundle-sleep", serde_json::json!(["/bin/sleep", "100000"]))?;
    Ok(Bundles {
        rootfs_true: true_.join("rootfs"),
        true_,
        sleep,
        namespaces,
        spec_from: spec_tool
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
    })
}

/// The unshare(1) flags that make the same namespaces as the config.
pub fn unshare_flags(namespaces: &[String]) -> Vec<String> {
    let mut f = Vec::new();
    for n in namespaces {
        let flag = match n.as_str() {
            "pid" => "--pid",
            "network" => "--net",
            "ipc" => "--ipc",
            "uts" => "--uts",
            "mount" => "--mount",
            "cgroup" => "--cgroup",
            "user" => "--user",
            "time" => "--time",
            _ => continue,
        };
        f.push(flag.to_string());
    }
    if namespaces.iter().any(|n| n == "pid") {
        f.push("--fork".into());
    }
    f
}

/// Every process whose parent is the driver (orphans re-parented to it),
/// by PID.
pub fn own_children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else {
            continue;
        };
        let mut it = rest.split_whitespace();
        let _state = it.next();
        if it.next().and_then(|p| p.parse::<i32>().ok()) == Some(me) {
            out.push(pid);
        }
    }
    out
}

/// Kill and reap every process still re-parented to the driver (and what
/// they leave behind, which comes to the driver in turn). Only processes
/// that are the driver's own children are signalled, by PID.
pub fn kill_own_children() -> usize {
    let mut killed = 0;
    for _ in 0..50 {
        crate::sample::reap_zombies();
        let kids = own_children();
        if kids.is_empty() {
            break;
        }
        for pid in kids {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit_once(')')
                .and_then(|x| x.1.split_whitespace().next())
                .unwrap_or("");
            if state == "Z" {
                continue;
            }
            if std::env::var_os("BENCH_DEBUG").is_some() {
                eprintln!("[bench] leftover {pid}: {}", stat.trim());
            }
            // SAFETY: pid is our child (it cannot be reused before we reap it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    killed
}

/// Remove cgroups the runtimes left for our containers (named with our
/// prefix) in every cgroup hierarchy visible here, deepest first.
pub fn remove_cgroups(prefix: &str) -> Vec<String> {
    let mut removed = Vec::new();
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut roots: Vec<PathBuf> = Vec::new();
    for l in mi.lines() {
        let (pre, post) = l.split_once(" - ").unwrap_or((l, ""));
        let fstype = post.split_whitespace().next().unwrap_or("");
        if fstype == "cgroup" || fstype == "cgroup2" {
            if let Some(mp) = pre.split_whitespace().nth(4) {
                let p = PathBuf::from(mp);
                if fs_magic(&p).is_some_and(|m| m != TMPFS_MAGIC) && !roots.contains(&p) {
                    roots.push(p);
                }
            }
        }
    }
    fn walk(dir: &Path, prefix: &str, inside: bool, out: &mut Vec<PathBuf>, depth: u32) {
        if depth > 6 {
            return;
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let p = e.path();
            let ours = inside || e.file_name().to_string_lossy().starts_with(prefix);
            walk(&p, prefix, ours, out, depth + 1);
            if ours {
                out.push(p);
            }
        }
    }
    for r in roots {
        let mut found = Vec::new();
        walk(&r, prefix, false, &mut found, 0);
        for p in found {
            // Children were pushed before their parent: deepest first.
            if fs::remove_dir(&p).is_ok() {
                removed.push(p.display().to_string());
            }
        }
    }
    removed
}

/// Host facts for the report.
pub fn host_facts() -> Value {
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':').map(|x| x.1.trim().to_string()))
        .unwrap_or_default();
    let os = fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("PRETTY_NAME="))
        .map(|l| {
            l.trim_start_matches("PRETTY_NAME=")
                .trim_matches('"')
                .to_string()
        })
        .unwrap_or_default();
    let mem_gb = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|k| (k / 1024.0 / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0);
    serde_json::json!({ "kernel": kernel, "cores": cores, "cpu": cpu, "os": os, "memory_gib": mem_gb })
}

pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
