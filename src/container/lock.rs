use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};

/// An exclusive flock on a container's directory: every command that reads
/// or changes a container holds it, so concurrent start/kill/delete on one
/// id run one after another. Released on drop (or when the process exits).
pub struct Lock {
    _file: File,
}

impl Lock {
    pub fn acquire(dir: &Path) -> Result<Lock> {
        let file = File::open(dir)
            .map_err(|e| Error::from(e).context(format!("open {}", dir.display())))?;
        loop {
            // SAFETY: flock on a valid, owned fd.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(Lock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::from(err).context(format!("lock {}", dir.display())));
            }
        }
    }
}
