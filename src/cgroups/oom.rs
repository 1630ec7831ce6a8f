//! OOM notifications for `events`.
//!
//! v1: an eventfd registered through `cgroup.event_control` against
//! `memory.oom_control`; the kernel signals it whenever the cgroup hits an
//! out-of-memory condition, including when the OOM killer is disabled and
//! the tasks are left waiting. v2: inotify on `memory.events`, whose
//! `oom_kill` counter says whether a process was killed.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::fsio::{self, io_error};
use super::Manager;
use crate::{Error, Result};

pub struct OomWatcher {
    fd: OwnedFd,
    /// v1: `memory.oom_control`, which must stay open while registered.
    _oom_control: Option<File>,
    v2: bool,
}

fn last_err(what: &str) -> Error {
    io_error(std::io::Error::last_os_error(), what.to_string())
}

impl OomWatcher {
    pub fn new(m: &Manager) -> Result<OomWatcher> {
        if m.mode == Some(super::Mode::Unified) {
            let dir = m.unified()?;
            // SAFETY: inotify_init1 takes flags only.
            let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
            if fd < 0 {
                return Err(last_err("inotify_init1"));
            }
            // SAFETY: fd was just created and is owned by nobody else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let path = dir.join("memory.events");
            let c = std::ffi::CString::new(path.to_string_lossy().as_bytes())
                .map_err(|e| Error::msg(e.to_string()))?;
            // SAFETY: valid inotify fd and NUL-terminated path.
            if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) } < 0 {
                return Err(last_err(&format!("inotify_add_watch {}", path.display())));
            }
            return Ok(OomWatcher {
                fd,
                _oom_control: None,
                v2: true,
            });
        }
        let dir = m.v1_dir("memory")?;
        // SAFETY: eventfd takes an initial value and flags only.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(last_err("eventfd"));
        }
        // SAFETY: efd was just created and is owned by nobody else.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        let ctl_path = dir.join("memory.oom_control");
        let ctl = File::open(&ctl_path)
            .map_err(|e| io_error(e, format!("open {}", ctl_path.display())))?;
        fsio::write(
            dir,
            "cgroup.event_control",
            &format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd()),
        )?;
        Ok(OomWatcher {
            fd: efd,
            _oom_control: Some(ctl),
            v2: false,
        })
    }

    /// Wait up to `timeout` for a notification. v1: `true` means the cgroup
    /// hit OOM. v2: `true` means `memory.events` changed (compare its
    /// `oom_kill` counter). Also `true` on v1 when the cgroup was removed.
    pub fn wait(&self, timeout: Duration) -> Result<bool> {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(false);
            }
            return Err(io_error(e, "poll".into()));
        }
        if r == 0 {
            return Ok(false);
        }
        // Drain: an 8-byte counter (eventfd) or inotify records.
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a local buffer of the given length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr() as *mut _, buf.len()) };
        Ok(n > 0 || !self.v2)
    }
}
