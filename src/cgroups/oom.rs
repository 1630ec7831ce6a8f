//! OOM notifications for `events`.
//!
//! v1: an eventfd registered through `cgroup.event_control` against
//! `memory.oom_control`; the kernel signals it whenever the cgroup hits an
//! out-of-memory condition, including when the OOM killer is disabled and
//! the tasks are left waiting. v2: inotify on `memory.events`, whose
//! `oom_kill` counter says whether a process was killed.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
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

impl OomWatcher {
    pub fn new(m: &Manager) -> Result<OomWatcher> {
        if m.mode == Some(super::Mode::Unified) {
            let dir = m.unified()?;
            let path = dir.join("memory.events");
            let c = std::ffi::CString::new(path.to_string_lossy().as_bytes())
                .map_err(|e| Error::msg(e.to_string()))?;
            let fd = crate::sys::inotify_modify(&c)
                .map_err(|e| io_error(e, format!("inotify on {}", path.display())))?;
            return Ok(OomWatcher {
                fd,
                _oom_control: None,
                v2: true,
            });
        }
        let dir = m.v1_dir("memory")?;
        let efd = crate::sys::eventfd().map_err(|e| io_error(e, "eventfd".into()))?;
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
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        if !crate::sys::poll_readable(self.fd.as_fd(), ms)
            .map_err(|e| io_error(e, "poll".into()))?
        {
            return Ok(false);
        }
        // Drain: an 8-byte counter (eventfd) or inotify records.
        let mut buf = [0u8; 4096];
        let n = crate::sys::read(self.fd.as_fd(), &mut buf).unwrap_or(0);
        Ok(n > 0 || !self.v2)
    }
}
