//! Reading and writing cgroup files, with errors that name the file.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use crate::error::errno_text;
use crate::{Error, Result};

/// Write `value` to `dir/file`. A missing file means the host's kernel or
/// mount lacks the feature: say so, naming the file.
pub fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    match fs::write(&path, value) {
        Ok(()) => Ok(()),
        // cgroupfs answers EACCES, not ENOENT, for a file it does not have.
        Err(_) if dir.is_dir() && !path.exists() => Err(Error::msg(format!(
            "write {value:?} to {}: not supported on this host (no such file)",
            path.display()
        ))),
        Err(e) => Err(io_error(
            e,
            format!("write {value:?} to {}", path.display()),
        )),
    }
}

pub fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|e| io_error(e, format!("read {}", path.display())))
}

/// `read` trimmed.
pub fn read_trim(dir: &Path, file: &str) -> Result<String> {
    Ok(read(dir, file)?.trim().to_string())
}

/// A single number; `max` reads as `None`.
pub fn read_u64(dir: &Path, file: &str) -> Result<Option<u64>> {
    let s = read_trim(dir, file)?;
    if s == "max" {
        return Ok(None);
    }
    s.parse::<u64>().map(Some).map_err(|_| {
        Error::msg(format!(
            "read {}: {s:?} is not a number",
            dir.join(file).display()
        ))
    })
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, ...).
pub fn read_keyed(dir: &Path, file: &str) -> Result<Vec<(String, u64)>> {
    Ok(parse_keyed(&read(dir, file)?))
}

pub fn parse_keyed(s: &str) -> Vec<(String, u64)> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse::<u64>().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

pub fn keyed(v: &[(String, u64)], key: &str) -> Option<u64> {
    v.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

pub fn io_error(e: std::io::Error, what: String) -> Error {
    match e.raw_os_error() {
        Some(n) => Error::with_errno(
            format!("{what}: {}", errno_text(n)),
            Some(nix::errno::Errno::from_raw(n)),
        ),
        None => Error::msg(format!("{what}: {e}")),
    }
}

/// `mkdir -p dir`, returning the directories it created, outermost first.
pub fn mkdir_all(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    missing.reverse();
    let mut created = Vec::new();
    for d in missing {
        match fs::create_dir(&d) {
            Ok(()) => created.push(d),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                remove_dirs(&created);
                return Err(io_error(e, format!("mkdir {}", d.display())));
            }
        }
    }
    Ok(created)
}

/// Remove cgroup directories, innermost first. Best effort: used to undo.
pub fn remove_dirs(dirs: &[PathBuf]) {
    for d in dirs.iter().rev() {
        let _ = rmdir(d);
    }
}

/// rmdir a cgroup; retries briefly while exiting tasks leave it (EBUSY).
/// A cgroup that is already gone is fine.
pub fn rmdir(dir: &Path) -> Result<()> {
    let mut delay = Duration::from_millis(2);
    for _ in 0..12 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(200));
            }
            Err(e) => return Err(io_error(e, format!("rmdir {}", dir.display()))),
        }
    }
    Err(Error::msg(format!(
        "rmdir {}: device or resource busy (processes still inside)",
        dir.display()
    )))
}

/// Child cgroup directories of `dir`, recursively (depth first, children
/// before parents), not including `dir`.
pub fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let p = e.path();
                out.extend(subdirs(&p));
                out.push(p);
            }
        }
    }
    out
}

/// Pids in `cgroup.procs` of `dir` and every cgroup below it.
pub fn procs_recursive(dir: &Path) -> Result<Vec<i32>> {
    let mut pids = Vec::new();
    let mut dirs = subdirs(dir);
    dirs.push(dir.to_path_buf());
    for d in dirs {
        match fs::read_to_string(d.join("cgroup.procs")) {
            Ok(s) => pids.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(e, format!("read {}/cgroup.procs", d.display()))),
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}
