//! Bundles: a busybox + checker rootfs template built once per run, and one
//! bundle directory per case whose rootfs hard-links the template.

use serde_json::{json, Value};
use std::io;
use std::path::{Path, PathBuf};

/// Applets linked into the rootfs; cases and hooks use them.
const APPLETS: &[&str] = &[
    "sh", "sleep", "cat", "echo", "true", "false", "ls", "mkdir", "env", "id", "touch", "kill",
    "date", "printf", "test", "stat",
];

fn ctx<T>(r: io::Result<T>, what: impl FnOnce() -> String) -> Result<T, String> {
    r.map_err(|e| format!("{}: {e}", what()))
}

/// The read-only template every case's rootfs is made from.
pub struct Template {
    pub dir: PathBuf,
}

impl Template {
    /// Builds `<work>/template` from a static busybox and the checker binary.
    pub fn build(work: &Path, busybox: &Path, checker: &Path) -> Result<Template, String> {
        let dir = work.join("template");
        for sub in [
            "bin", "proc", "sys", "dev", "tmp", "etc", "hookdir", "mnt", "data",
        ] {
            let p = dir.join(sub);
            ctx(std::fs::create_dir_all(&p), || {
                format!("mkdir {}", p.display())
            })?;
        }
        let bb = dir.join("bin/busybox");
        ctx(std::fs::copy(busybox, &bb), || {
            format!("copy {} to {}", busybox.display(), bb.display())
        })?;
        for applet in APPLETS {
            let link = dir.join("bin").join(applet);
            ctx(std::os::unix::fs::symlink("busybox", &link), || {
                format!("symlink {}", link.display())
            })?;
        }
        let ck = dir.join("checker");
        ctx(std::fs::copy(checker, &ck), || {
            format!("copy {} to {}", checker.display(), ck.display())
        })?;
        let files = [
            (
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            ),
            ("etc/group", "root:x:0:\nnobody:x:65534:\n"),
            ("data/marker", "oci-conformance\n"),
        ];
        for (name, text) in files {
            let p = dir.join(name);
            ctx(std::fs::write(&p, text), || {
                format!("write {}", p.display())
            })?;
        }
        Ok(Template { dir })
    }

    /// Makes `<bundle>/rootfs` as a hard-linked copy of the template (cheap).
    pub fn instantiate(&self, bundle: &Path) -> Result<PathBuf, String> {
        let rootfs = bundle.join("rootfs");
        copy_tree(&self.dir, &rootfs)?;
        Ok(rootfs)
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    ctx(std::fs::create_dir_all(to), || {
        format!("mkdir {}", to.display())
    })?;
    let rd = ctx(std::fs::read_dir(from), || {
        format!("read {}", from.display())
    })?;
    for entry in rd {
        let entry = ctx(entry, || format!("read {}", from.display()))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ft = ctx(entry.file_type(), || format!("stat {}", src.display()))?;
        if ft.is_dir() {
            copy_tree(&src, &dst)?;
        } else if ft.is_symlink() {
            let target = ctx(std::fs::read_link(&src), || {
                format!("readlink {}", src.display())
            })?;
            ctx(std::os::unix::fs::symlink(&target, &dst), || {
                format!("symlink {}", dst.display())
            })?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            ctx(std::fs::copy(&src, &dst), || {
                format!("copy {}", src.display())
            })?;
        }
    }
    Ok(())
}

/// The capabilities runc's and crun's default specs grant.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A complete, conservative config: the checker as process, the usual
/// mounts, five new namespaces and a cgroupsPath under `/oci-conformance`.
pub fn default_config(id: &str, oci_version: &str) -> Value {
    let caps = json!(DEFAULT_CAPS);
    json!({
        "ociVersion": oci_version,
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["/checker"],
            "env": ["PATH=/bin", "TERM=xterm", "OCI_CONFORMANCE=1"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": "oci-conf",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "cgroupsPath": format!("/oci-conformance/{id}"),
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS
        }
    })
}
