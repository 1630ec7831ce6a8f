//! A container on disk: `<root>/<id>/` with `state.json`, the exec fifo and
//! a lock serialising every operation on that id.

mod id;
mod lock;
mod state;

pub use id::validate_id;
pub use lock::Lock;
pub use state::{ns_inode, State, Status};

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// What `exec` needs of the config (kept apart from state.json, which every
/// command reads).
pub const EXEC_CONFIG: &str = "exec.json";

/// The parts of the container's config `exec` starts from: the process
/// (defaults for env, user, cwd, capabilities...) and the seccomp profile
/// every exec'd process gets too.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ExecConfig {
    #[serde(default)]
    pub process: Option<oci_spec::runtime::Process>,
    #[serde(default)]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
}

/// Keep what `exec` needs of `spec` in the state directory: `exec` never
/// rereads the bundle (which may have changed since `create`).
pub fn save_exec_config(dir: &Path, spec: &oci_spec::runtime::Spec) -> Result<()> {
    let cfg = ExecConfig {
        process: spec.process().clone(),
        seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
    };
    write_atomic(&dir.join(EXEC_CONFIG), &serde_json::to_vec(&cfg)?, 0o600)
}

/// A container whose directory is locked for the lifetime of this value.
pub struct Container {
    pub dir: PathBuf,
    pub state: State,
    _lock: Lock,
}

/// The state directory of `id` under `root` (the id must be valid).
pub fn dir_of(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Create `<root>/<id>` exclusively and lock it: the first step of `create`.
pub fn create_dir(root: &Path, id: &str) -> Result<(PathBuf, Lock)> {
    validate_id(id)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("create state root {}", root.display()))?;
    let dir = dir_of(root, id);
    match fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::msg(format!("container with id {id} already exists")))
        }
        Err(e) => return Err(Error::from(e).context(format!("create {}", dir.display()))),
    }
    let lock = Lock::acquire(&dir)?;
    Ok((dir, lock))
}

impl Container {
    /// Lock and load an existing container; `container does not exist` (the
    /// text callers match) when there is no such id.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = dir_of(root, id);
        let not_found = || Error::msg("container does not exist");
        let lock = match Lock::acquire(&dir) {
            Ok(l) => l,
            Err(_) if !dir.exists() => return Err(not_found()),
            Err(e) => return Err(e),
        };
        // A concurrent delete may have removed the directory while we waited.
        let data = match fs::read(dir.join(STATE_FILE)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => {
                return Err(Error::from(e).context(format!("read {}/{STATE_FILE}", dir.display())))
            }
        };
        let state: State = serde_json::from_slice(&data)
            .with_context(|| format!("parse {}/{STATE_FILE}", dir.display()))?;
        Ok(Container {
            dir,
            state,
            _lock: lock,
        })
    }

    pub fn from_parts(dir: PathBuf, state: State, lock: Lock) -> Container {
        Container {
            dir,
            state,
            _lock: lock,
        }
    }

    /// The status, derived from the kernel rather than trusted from disk.
    pub fn status(&self) -> Status {
        self.state.status(&self.dir.join(EXEC_FIFO))
    }

    /// What `exec` starts from (see `save_exec_config`). A container made
    /// by a berth that did not keep it falls back to its bundle's config.
    pub fn exec_config(&self) -> Result<ExecConfig> {
        let path = self.dir.join(EXEC_CONFIG);
        match fs::read(&path) {
            Ok(data) => {
                serde_json::from_slice(&data).with_context(|| format!("parse {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let spec = crate::lifecycle::load_spec(&self.state.bundle)?;
                Ok(ExecConfig {
                    process: spec.process().clone(),
                    seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
                })
            }
            Err(e) => Err(Error::from(e).context(format!("read {}", path.display()))),
        }
    }

    pub fn save(&self) -> Result<()> {
        save_state(&self.dir, &self.state)
    }

    /// Remove the state directory (the lock goes with it).
    pub fn remove_dir(&self) -> Result<()> {
        remove_dir(&self.dir)
    }
}

/// Write state.json atomically (temp file + rename).
pub fn save_state(dir: &Path, state: &State) -> Result<()> {
    let data = serde_json::to_vec(state)?;
    write_atomic(&dir.join(STATE_FILE), &data, 0o600)
}

pub fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::from(e).context(format!("remove {}", dir.display()))),
    }
}

/// Write `path` so that readers see the old content or the new, never a
/// partial file: write a sibling temp file, then rename over.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(Error::from(e).context(format!("write {}", path.display())));
    }
    Ok(())
}

/// What `list` shows of `id` without taking its lock (state.json is only
/// ever replaced whole, by rename): its state, or None for a directory
/// whose create has not written one (still running, or died first).
pub fn peek(root: &Path, id: &str) -> Result<Option<State>> {
    let path = dir_of(root, id).join(STATE_FILE);
    match fs::read(&path) {
        Ok(data) => Ok(Some(
            serde_json::from_slice(&data).with_context(|| format!("parse {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::from(e).context(format!("read {}", path.display()))),
    }
}

/// A state directory without state.json: a create that has not written it
/// yet (it holds the lock) or one that died before (nothing else of it
/// exists then). Waits for the lock and removes the directory if it is
/// still without state; true when there was one.
pub fn remove_orphan(root: &Path, id: &str) -> Result<bool> {
    validate_id(id)?;
    let dir = dir_of(root, id);
    let _lock = match Lock::acquire(&dir) {
        Ok(l) => l,
        Err(_) if !dir.exists() => return Ok(false),
        Err(e) => return Err(e),
    };
    if dir.join(STATE_FILE).exists() {
        return Ok(false);
    }
    remove_dir(&dir)?;
    Ok(true)
}

/// Whether another process holds `id`'s lock right now (a create or
/// another command under way).
pub fn is_locked(root: &Path, id: &str) -> bool {
    Lock::try_acquire(&dir_of(root, id)).is_ok_and(|l| l.is_none())
}

/// Every container id under `root`, sorted.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(Error::from(e).context(format!("read {}", root.display()))),
    };
    for entry in rd.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if let Some(name) = entry.file_name().to_str() {
                if validate_id(name).is_ok() {
                    ids.push(name.to_string());
                }
            }
        }
    }
    ids.sort();
    Ok(ids)
}
