//! The default `config.json` written by `berth spec` (and used by
//! berth-bundle as the base its image conversion starts from).
//!
//! It follows runc's default so bundles behave the same under both runtimes:
//! a shell on a terminal, a read-only rootfs, the usual pseudo-filesystems,
//! a small capability set and the masked/read-only /proc and /sys paths.

use serde_json::{json, Value};

/// runtime-spec version berth writes and implements.
pub const OCI_VERSION: &str = "1.2.0";

const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The default spec; `rootless` maps the calling user to root in a new user
/// namespace and drops what an unprivileged user cannot set up.
pub fn default_spec(rootless: bool) -> Value {
    let mut spec = json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "berth",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
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
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if rootless {
        make_rootless(&mut spec);
    }
    spec
}

/// What runc's `spec --rootless` changes: a user namespace mapping the caller
/// to root, the host network (an unprivileged user cannot configure a new
/// one), /sys bound from the host (sysfs cannot be mounted without a network
/// namespace of one's own), no uid=/gid= mount options (those ids are not
/// mapped), and no resource limits (cgroups are usually not delegated).
fn make_rootless(spec: &mut Value) {
    // SAFETY: geteuid/getegid cannot fail and touch no memory.
    let (uid, gid) = (crate::sys::geteuid(), crate::sys::getegid());
    let linux = &mut spec["linux"];
    if let Some(nss) = linux["namespaces"].as_array_mut() {
        nss.retain(|ns| !matches!(ns["type"].as_str(), Some("network") | Some("user")));
        nss.push(json!({ "type": "user" }));
    }
    linux["uidMappings"] = json!([{ "containerID": 0, "hostID": uid, "size": 1 }]);
    linux["gidMappings"] = json!([{ "containerID": 0, "hostID": gid, "size": 1 }]);
    if let Some(obj) = linux.as_object_mut() {
        obj.remove("resources");
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = json!({ "destination": "/sys", "type": "none", "source": "/sys",
                             "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] });
                continue;
            }
            if let Some(opts) = m["options"].as_array_mut() {
                opts.retain(|o| {
                    let o = o.as_str().unwrap_or("");
                    !o.starts_with("uid=") && !o.starts_with("gid=")
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_as_oci_spec() {
        let s: oci_spec::runtime::Spec = serde_json::from_value(default_spec(false)).unwrap();
        assert_eq!(s.hostname().as_deref(), Some("berth"));
        assert_eq!(s.mounts().as_ref().unwrap().len(), 7);
    }

    #[test]
    fn rootless_spec_has_userns_and_no_netns() {
        let s = default_spec(true);
        let types: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(types.contains(&"user"));
        assert!(!types.contains(&"network"));
        assert!(s["linux"].get("resources").is_none());
        let devpts = &s["mounts"][2]["options"];
        assert!(!devpts.as_array().unwrap().iter().any(|o| o == "gid=5"));
    }
}
