//! Directories we create and must remove again, whatever happens: the
//! all-or-nothing temporary bundle, archive staging areas.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// A directory removed on drop unless `keep` was called.
pub struct TempDir {
    path: PathBuf,
    armed: bool,
}

impl TempDir {
    pub fn create(path: PathBuf) -> Result<Self> {
        std::fs::create_dir(&path)
            .with_context(|| format!("create temporary directory {}", path.display()))?;
        Ok(TempDir { path, armed: true })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.armed {
            remove_tree(&self.path);
        }
    }
}

/// Remove a tree we created; if permissions block it (rootless unpack of
/// read-only directories), make directories writable and retry.
pub fn remove_tree(p: &Path) {
    if std::fs::remove_dir_all(p).is_ok() || !p.exists() {
        return;
    }
    fn open_up(p: &Path) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(md) = std::fs::symlink_metadata(p) {
            if md.is_dir() {
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
                if let Ok(rd) = std::fs::read_dir(p) {
                    for e in rd.flatten() {
                        open_up(&e.path());
                    }
                }
            }
        }
    }
    open_up(p);
    let _ = std::fs::remove_dir_all(p);
}
