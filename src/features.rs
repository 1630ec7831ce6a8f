//! `features` (runtime-spec features.md): what this build of berth supports,
//! as a JSON document that callers (containerd, podman) read before using a
//! field.

use serde_json::{json, Value};

use crate::cgroups::systemd;
use crate::process::mempolicy;
use crate::{seccomp, spec};

/// Every mount option `rootfs::mounts::parse` understands. A unit test keeps
/// the two in step.
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

pub fn document() -> Value {
    let mut caps: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
    caps.sort();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": spec::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": systemd::works(false), "systemdUser": systemd::works(true), "rdma": true },
            "seccomp": {
                "enabled": true,
                "actions": seccomp::SUPPORTED_ACTIONS,
                "operators": seccomp::SUPPORTED_OPERATORS,
                "archs": seccomp::SUPPORTED_ARCHITECTURES,
                "knownFlags": seccomp::SUPPORTED_FLAGS,
                "supportedFlags": seccomp::kernel_supported_flags(),
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false, "schemata": false, "monitoring": false },
            "memoryPolicy": {
                "modes": mempolicy::names(mempolicy::MODES),
                "flags": mempolicy::names(mempolicy::FLAGS),
            },
            "netDevices": { "enabled": true },
            "mountExtensions": { "idmap": { "enabled": true } },
        },
        "annotations": {
            "io.github.berth.version": env!("CARGO_PKG_VERSION"),
            "org.opencontainers.runc.checkpoint.enabled": "false",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_mount_options_are_the_ones_the_parser_knows() {
        for opt in MOUNT_OPTIONS {
            let o = crate::rootfs::mounts::parse(&[opt.to_string()]).expect(opt);
            assert!(
                o.data.is_empty(),
                "{opt} would be passed to the filesystem as data"
            );
        }
    }

    #[test]
    fn document_has_the_spec_fields() {
        let d = document();
        assert_eq!(d["ociVersionMax"], spec::OCI_VERSION);
        assert_eq!(d["linux"]["namespaces"].as_array().unwrap().len(), 8);
        assert!(d["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN"));
        assert!(d["linux"]["seccomp"]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "SCMP_ACT_ERRNO"));
        assert_eq!(spec::OCI_VERSION, "1.3.0");
        assert_eq!(
            d["linux"]["memoryPolicy"]["modes"]
                .as_array()
                .unwrap()
                .len(),
            7
        );
        assert_eq!(d["linux"]["netDevices"]["enabled"], true);
        // The document parses as the typed 1.3 features schema.
        let typed: oci_spec::runtime::Features = serde_json::from_value(d).unwrap();
        assert!(typed.linux().as_ref().unwrap().memory_policy().is_some());
    }
}
