//! Which fds a process that enters the container may hold.
//!
//! The runtime's own fds (the state-dir lock, cgroup and namespace fds, the
//! rootfs) name host directories: one of them reached through
//! `/proc/self/fd/N` as a cwd or a path is a way out of the container (the
//! CVE-2024-21626 class). So a child born by clone3 first closes every fd
//! except stdio, the fds its caller passed on purpose (`LISTEN_FDS`,
//! `--preserve-fds`) and the few it needs for setup; close-on-exec would be
//! too late, as the cwd and the mounts are resolved before execve.
//!
//! What the caller passed is recorded once, at start-up, before berth
//! opens anything: a slot of the promised range that was not open then is
//! not the caller's, and whatever berth opened there is closed too.

use std::os::fd::RawFd;
use std::sync::OnceLock;

use crate::sys;

static INHERITED: OnceLock<Vec<RawFd>> = OnceLock::new();

/// Record which of fds `3..3 + count` are open now (the caller's). Call it
/// before the runtime opens any fd of its own.
pub fn record_inherited(count: u32) {
    let open = (3..3 + count as RawFd)
        .filter(|&fd| sys::fd_is_open(fd))
        .collect();
    let _ = INHERITED.set(open);
}

/// The fds ≥ 3 the caller passed (see `record_inherited`).
pub fn inherited() -> &'static [RawFd] {
    INHERITED.get().map(Vec::as_slice).unwrap_or(&[])
}

/// The fds a child keeps: stdio, what the caller passed, and `own` (the
/// child's channel end and the like), sorted and without duplicates.
/// Built in the parent; `close_all_except` uses it in the child.
pub fn keep_list(own: &[RawFd]) -> Vec<RawFd> {
    let mut keep: Vec<RawFd> = inherited()
        .iter()
        .chain(own)
        .copied()
        .filter(|&fd| fd >= 3)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    keep
}

/// Close every fd ≥ 3 that is not in `keep` (sorted), one close_range per
/// gap. No allocation: it runs in the child right after clone3.
pub fn close_all_except(keep: &[RawFd]) -> std::io::Result<()> {
    let mut next: u32 = 3;
    for &fd in keep {
        let Ok(fd) = u32::try_from(fd) else { continue };
        if fd < next {
            continue;
        }
        if fd > next {
            sys::close_range(next, fd - 1)?;
        }
        next = fd + 1;
    }
    sys::close_range(next, u32::MAX)
}

/// Mark every fd from `first` up close-on-exec: one close_range, or where
/// the kernel refuses it (before 5.11, or a filter), fcntl on each fd
/// listed in /proc/self/fd.
pub fn cloexec_from(first: u32) -> std::io::Result<()> {
    if sys::cloexec_from(first).is_ok() {
        return Ok(());
    }
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd: &RawFd| fd >= first as RawFd)
        .collect();
    for fd in fds {
        // EBADF: the directory's own fd, closed by now.
        let _ = sys::set_cloexec(fd);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn only_the_kept_fds_survive() {
        // In a forked child, so the test harness's own fds are untouched.
        let files: Vec<std::fs::File> = (0..6)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let fds: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
        let keep = vec![fds[1], fds[4]];
        // SAFETY: the child only makes syscalls and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = close_all_except(&keep).is_ok()
                && fds
                    .iter()
                    .all(|fd| sys::fd_is_open(*fd) == keep.contains(fd))
                && sys::fd_is_open(0);
            // SAFETY: _exit is always sound.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
