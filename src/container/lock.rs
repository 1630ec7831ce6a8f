use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use crate::error::{Error, Result};

/// An exclusive flock on a container's directory: every command that reads
/// or changes a container holds it, so concurrent start/kill/delete on one
/// id run one after another. Released on drop (or when the process exits).
pub struct Lock {
    _file: File,
}

impl Lock {
    /// The lock if it is free now; None when another process holds it.
    pub fn try_acquire(dir: &Path) -> Result<Option<Lock>> {
        let file = File::open(dir)
            .map_err(|e| Error::from(e).context(format!("open {}", dir.display())))?;
        match crate::sys::flock_exclusive_nonblocking(file.as_fd()) {
            Ok(true) => Ok(Some(Lock { _file: file })),
            Ok(false) => Ok(None),
            Err(e) => Err(Error::from(e).context(format!("lock {}", dir.display()))),
        }
    }

    pub fn acquire(dir: &Path) -> Result<Lock> {
        let file = File::open(dir)
            .map_err(|e| Error::from(e).context(format!("open {}", dir.display())))?;
        match crate::sys::flock_exclusive(file.as_fd()) {
            Ok(()) => Ok(Lock { _file: file }),
            Err(e) => Err(Error::from(e).context(format!("lock {}", dir.display()))),
        }
    }
}
