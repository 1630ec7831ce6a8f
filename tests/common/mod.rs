//! Shared integration-test harness: busybox bundles, a private `--root` per
//! test, and cleanup of every container and child even when a test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// An example binary (examples/NAME.rs) next to the berth binary under
/// test, built by `cargo test`.
pub fn example(name: &str) -> PathBuf {
    let p = Path::new(BERTH)
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.exists(),
        "{} missing: `cargo test` builds the examples",
        p.display()
    );
    p
}

/// Make the test process a child subreaper: detached containers whose
/// runtime process exited are reparented to us (PID 1 here never reaps).
pub fn subreaper() {
    // SAFETY: integer-only prctl.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Reap `pid` if it is an exited child of ours (a container init that was
/// reparented to this subreaper). Only by pid: other test threads wait for
/// their own children.
pub fn reap(pid: i32) {
    if pid > 0 {
        // SAFETY: waitpid with a null status pointer and WNOHANG.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
    }
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A fresh directory under the temp dir, removed (with its contents) when
/// dropped, also when the test panics.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let d = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A bundle with a busybox rootfs and berth's default spec, made for tests:
/// no terminal, `args` as given.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Value,
}

pub const APPLETS: &[&str] = &[
    "sh",
    "true",
    "false",
    "echo",
    "cat",
    "ls",
    "hostname",
    "id",
    "sleep",
    "ps",
    "mount",
    "env",
    "pwd",
    "grep",
    "stat",
    "touch",
    "umask",
    "head",
    "readlink",
    "test",
    "wc",
    "ulimit",
    "domainname",
    "mkdir",
    "kill",
    "tty",
    "stty",
];

impl Bundle {
    pub fn new(args: &[&str]) -> Bundle {
        subreaper();
        let dir = std::env::temp_dir().join(unique("berth-bundle"));
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "root"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("busybox-static (make deps)");
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        )
        .unwrap();
        let mut spec = berth::spec::default_spec(false);
        spec["process"]["terminal"] = Value::Bool(false);
        spec["process"]["args"] = args.iter().map(|s| Value::from(*s)).collect();
        let b = Bundle { dir, spec };
        b.save();
        b
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn save(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.spec).unwrap(),
        )
        .unwrap();
    }

    /// Change the spec and write it back.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.spec);
        self.save();
    }
}

/// Give the spec a new user namespace mapping container ids 0..65536 to
/// host ids 100000.. (uid and gid).
pub fn add_userns(spec: &mut Value) {
    spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    spec["linux"]["uidMappings"] = map.clone();
    spec["linux"]["gidMappings"] = map;
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A runtime binary with its own state root; deletes every container it
/// created when dropped.
pub struct Runtime {
    pub bin: String,
    pub root: PathBuf,
    pub created: std::cell::RefCell<Vec<String>>,
}

impl Runtime {
    pub fn berth() -> Runtime {
        Runtime::new(BERTH)
    }

    pub fn new(bin: &str) -> Runtime {
        subreaper();
        let root = std::env::temp_dir().join(unique("berth-root"));
        Runtime {
            bin: bin.to_string(),
            root,
            created: Default::default(),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root).args(args);
        c.stdin(Stdio::null());
        c
    }

    pub fn run_cmd(&self, args: &[&str]) -> Output {
        if args.iter().any(|a| *a == "create" || *a == "run") {
            if let Some(id) = args.last() {
                self.created.borrow_mut().push(id.to_string());
            }
        }
        // Files, not pipes: a detached container inherits the runtime's
        // stdio, and a pipe would not see EOF until the container exits.
        let out_path = std::env::temp_dir().join(unique("berth-out"));
        let err_path = std::env::temp_dir().join(unique("berth-err"));
        let status = self
            .cmd(args)
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .expect("spawn runtime");
        let stdout = std::fs::read(&out_path).unwrap_or_default();
        let stderr = std::fs::read(&err_path).unwrap_or_default();
        let _ = std::fs::remove_file(&out_path);
        let _ = std::fs::remove_file(&err_path);
        Output {
            status,
            stdout,
            stderr,
        }
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run_cmd(args);
        assert!(
            out.status.success(),
            "{} {:?} failed ({:?}): {}{}",
            self.bin,
            args,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run_cmd(args);
        assert!(
            !out.status.success(),
            "{:?} unexpectedly succeeded: {}",
            args,
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// `run` in the foreground: (exit code, stdout, stderr).
    pub fn run(&self, bundle: &Bundle, id: &str) -> (i32, String, String) {
        let out = self.run_cmd(&["run", "--bundle", bundle.dir.to_str().unwrap(), id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Wait (bounded) until `id` reaches `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        for _ in 0..500 {
            if self.status(id) == status {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{id} never reached {status}: {}", self.status(id));
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for id in self.created.borrow().iter() {
            let pid = self
                .cmd(&["state", id])
                .output()
                .ok()
                .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
                .and_then(|v| v["pid"].as_i64())
                .unwrap_or(0) as i32;
            let _ = self
                .cmd(&["delete", "--force", id])
                .stderr(Stdio::null())
                .output();
            reap(pid);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}
