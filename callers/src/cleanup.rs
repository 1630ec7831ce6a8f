//! Everything the harness creates is registered here and undone by
//! [`cleanup`], on success, on failure and on SIGINT/SIGTERM: daemons are
//! stopped by PID, then every process still descended from the harness (a
//! subreaper, so shims, monitors and containers stay in its tree) is killed
//! by PID, mounts under its own temp dirs are detached, its cgroups removed
//! and its dirs deleted. Nothing outside what it registered is touched.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::proc;

#[derive(Default)]
struct Reg {
    daemons: Vec<(String, i32)>,
    roots: Vec<PathBuf>,
    cgroups: Vec<String>,
    /// Dirs outside the roots that a caller creates where it cannot be told
    /// otherwise (containerd 1.6's shim sockets: /run/containerd/s); only
    /// those absent when registered, removed only if empty.
    run_dirs: Vec<PathBuf>,
    /// Trees outside the roots whose names are this run's own (a shim's
    /// default runtime root for this run's containerd namespace).
    owned_trees: Vec<PathBuf>,
}

static REG: Mutex<Option<Reg>> = Mutex::new(None);
static CLEANING: Mutex<bool> = Mutex::new(false);

fn with<T>(f: impl FnOnce(&mut Reg) -> T) -> T {
    let mut g = REG.lock().unwrap();
    f(g.get_or_insert_with(Reg::default))
}

pub fn add_root(p: &Path) {
    with(|r| r.roots.push(p.to_path_buf()));
}

/// A top-level cgroup name (in every hierarchy) this run creates under.
pub fn add_cgroup(name: &str) {
    with(|r| r.cgroups.push(name.to_string()));
}

pub fn add_daemon(name: &str, pid: i32) {
    with(|r| r.daemons.push((name.to_string(), pid)));
}

/// Register `p` (and its missing parents) for removal if they do not exist
/// yet.
pub fn add_run_dir_if_absent(p: &Path) {
    let mut missing = Vec::new();
    let mut cur = Some(p);
    while let Some(d) = cur {
        if d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    with(|r| {
        // Deepest first.
        for d in missing {
            if !r.run_dirs.contains(&d) {
                r.run_dirs.push(d);
            }
        }
    });
}

/// A tree outside the roots, named for this run only: removed whole.
pub fn add_owned_tree(p: &Path) {
    with(|r| r.owned_trees.push(p.to_path_buf()));
}

/// Stop one daemon (SIGTERM, then SIGKILL) and forget it.
pub fn stop_daemon(pid: i32, grace: Duration) {
    proc::stop(pid, grace);
    with(|r| r.daemons.retain(|(_, p)| *p != pid));
}

/// Processes descended from this one: (pid, ppid, command name).
pub fn descendants() -> Vec<(i32, i32, String)> {
    let me = std::process::id() as i32;
    let mut all = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Some((ppid, comm, state)) = stat(pid) {
                if state != 'Z' {
                    all.push((pid, ppid, comm));
                }
            }
        }
    }
    let mut tree = vec![me];
    let mut out = Vec::new();
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, ppid, comm) in &all {
            if tree.contains(ppid) && !tree.contains(pid) {
                tree.push(*pid);
                out.push((*pid, *ppid, comm.clone()));
                grew = true;
            }
        }
    }
    out
}

/// (ppid, comm, state) from /proc/PID/stat.
pub fn stat(pid: i32) -> Option<(i32, String, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let mut rest = s[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((ppid, comm, state))
}

/// Paths (under `prefix`) of the unix sockets that `pids` have open.
fn sockets_of(pids: &[i32], prefix: &str) -> Vec<PathBuf> {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let by_inode: std::collections::HashMap<String, String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f.get(7)?;
            path.starts_with(prefix)
                .then(|| (f[6].to_string(), path.to_string()))
        })
        .collect();
    let mut out = Vec::new();
    for pid in pids {
        let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(link) = std::fs::read_link(e.path()) else {
                continue;
            };
            let l = link.to_string_lossy();
            if let Some(inode) = l.strip_prefix("socket:[").and_then(|x| x.strip_suffix(']')) {
                if let Some(p) = by_inode.get(inode) {
                    out.push(PathBuf::from(p));
                }
            }
        }
    }
    out
}

/// Mount points (unescaped) of every mount, with the filesystem type.
pub fn mounts() -> Vec<(PathBuf, String)> {
    let s = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    s.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            Some((
                PathBuf::from(unescape(f.get(4)?)),
                f.get(dash + 1)?.to_string(),
            ))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push(u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points of the cgroup hierarchies (v1 and v2).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    mounts()
        .into_iter()
        .filter(|(_, t)| t == "cgroup" || t == "cgroup2")
        .map(|(p, _)| p)
        .collect()
}

fn unmount_under(roots: &[PathBuf]) -> Vec<PathBuf> {
    for _ in 0..4 {
        let mut mine: Vec<PathBuf> = mounts()
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| roots.iter().any(|r| p.starts_with(r)))
            .collect();
        if mine.is_empty() {
            return mine;
        }
        mine.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in mine {
            if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
                // SAFETY: umount2 of a path under our own temp dir.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
    mounts()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| roots.iter().any(|r| p.starts_with(r)))
        .collect()
}

/// Remove a cgroup directory tree, deepest first. Processes still in it are
/// ours (the name is this run's); they are killed by PID first.
fn remove_cgroup_tree(dir: &Path, notes: &mut Vec<String>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path(), notes);
            }
        }
    }
    for attempt in 0..20 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    if attempt == 0 {
                        notes.push(format!("process {pid} left in cgroup {}", dir.display()));
                    }
                    proc::kill(pid, libc::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    notes.push(format!("cannot remove cgroup {}", dir.display()));
}

/// Undo everything registered. Idempotent; returns notes on what had been
/// left behind (leaks the callers did not clean up themselves).
pub fn cleanup() -> Vec<String> {
    let mut cleaning = CLEANING.lock().unwrap();
    let mut notes = Vec::new();
    let reg = with(std::mem::take);
    // Daemons, newest first (dockerd before its containerd).
    for (name, pid) in reg.daemons.iter().rev() {
        if proc::stop(*pid, Duration::from_secs(15)).is_none() {
            notes.push(format!("{name} (pid {pid}) did not exit"));
        }
    }
    // What is left of the tree: shims, monitors, containers. A shim
    // killed here leaves its socket in /run/containerd/s: note which of
    // those sockets our processes hold, and remove them after.
    let mut sockets = Vec::new();
    for round in 0..10 {
        let left = descendants();
        if left.is_empty() {
            break;
        }
        sockets.extend(sockets_of(
            &left.iter().map(|l| l.0).collect::<Vec<_>>(),
            "/run/containerd/",
        ));
        if round == 0 {
            for (pid, _, comm) in &left {
                notes.push(format!("left running: pid {pid} ({comm})"));
            }
        }
        for (pid, _, _) in &left {
            proc::kill(*pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for p in &sockets {
        let _ = std::fs::remove_file(p);
    }
    let stuck = unmount_under(&reg.roots);
    for p in &stuck {
        notes.push(format!("cannot unmount {}", p.display()));
    }
    for mp in cgroup_mounts() {
        for name in &reg.cgroups {
            let d = mp.join(name);
            if d.exists() {
                remove_cgroup_tree(&d, &mut notes);
            }
        }
    }
    for t in &reg.owned_trees {
        if t.exists() {
            if let Err(e) = std::fs::remove_dir_all(t) {
                notes.push(format!("cannot remove {}: {e}", t.display()));
            }
        }
    }
    let mut run_dirs = reg.run_dirs.clone();
    run_dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for d in &run_dirs {
        let _ = std::fs::remove_dir(d);
    }
    for r in &reg.roots {
        if stuck.iter().any(|p| p.starts_with(r)) {
            notes.push(format!("kept {} (mounts remain)", r.display()));
        } else if r.exists() {
            if let Err(e) = std::fs::remove_dir_all(r) {
                notes.push(format!("cannot remove {}: {e}", r.display()));
            }
        }
    }
    *cleaning = true;
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/x\\"), "/x\\");
    }

    #[test]
    fn reads_own_stat() {
        let (ppid, comm, state) = stat(std::process::id() as i32).unwrap();
        assert!(ppid > 0);
        assert!(!comm.is_empty());
        assert!(state != 'Z');
    }
}
