//! The default `config.json` written by `berth spec` and used by
//! berth-bundle as the base its image conversion starts from, as a typed
//! [`oci_spec::runtime::Spec`].
//!
//! It follows runc's default so bundles behave the same under both runtimes:
//! a shell on a terminal, a read-only rootfs, the usual pseudo-filesystems,
//! a small capability set and the masked/read-only /proc and /sys paths.

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::collections::HashSet;

/// The runtime-spec version berth writes and implements, as a literal for
/// `concat!` (the `--version` text).
#[macro_export]
macro_rules! oci_version {
    () => {
        "1.3.0"
    };
}

/// runtime-spec version berth writes and implements.
pub const OCI_VERSION: &str = oci_version!();

const DEFAULT_CAPS: [Capability; 3] = [
    Capability::AuditWrite,
    Capability::Kill,
    Capability::NetBindService,
];

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn mount(dest: &str, typ: &str, source: &str, opts: &[&str]) -> Mount {
    let mut b = MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source);
    if !opts.is_empty() {
        b = b.options(opts.iter().map(|o| o.to_string()).collect::<Vec<_>>());
    }
    // Every field given: a builder error here is a programming error.
    b.build().expect("valid mount")
}

fn namespace(t: LinuxNamespaceType) -> LinuxNamespace {
    LinuxNamespaceBuilder::default()
        .typ(t)
        .build()
        .expect("valid namespace")
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The default spec; `rootless` maps the calling user to root in a new user
/// namespace and drops what an unprivileged user cannot set up.
pub fn default_spec(rootless: bool) -> Spec {
    let caps: HashSet<Capability> = DEFAULT_CAPS.into_iter().collect();
    let process = ProcessBuilder::default()
        .terminal(true)
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .expect("user"),
        )
        .args(strings(&["sh"]))
        .env(strings(&[PATH, "TERM=xterm"]))
        .cwd("/")
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .build()
                .expect("capabilities"),
        )
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(1024u64)
            .soft(1024u64)
            .build()
            .expect("rlimit")])
        .no_new_privileges(true)
        .build()
        .expect("process");
    let mut process = process;
    // The builder starts from oci-spec's own defaults: keep only ours.
    process.set_capabilities(process.capabilities().clone().map(|mut c| {
        c.set_inheritable(None);
        c.set_ambient(None);
        c
    }));
    process.set_console_size(None);
    process.set_apparmor_profile(None);
    process.set_selinux_label(None);

    let mounts = vec![
        mount("/proc", "proc", "proc", &[]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ];
    use LinuxNamespaceType as N;
    let linux = LinuxBuilder::default()
        .resources(
            LinuxResourcesBuilder::default()
                .devices(vec![LinuxDeviceCgroupBuilder::default()
                    .allow(false)
                    .access("rwm")
                    .build()
                    .expect("device rule")])
                .build()
                .expect("resources"),
        )
        .namespaces(
            [N::Pid, N::Network, N::Ipc, N::Uts, N::Mount, N::Cgroup]
                .into_iter()
                .map(namespace)
                .collect::<Vec<_>>(),
        )
        .masked_paths(strings(&[
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ]))
        .readonly_paths(strings(&[
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ]))
        .build()
        .expect("linux");
    let mut linux = linux;
    linux.set_uid_mappings(None);
    linux.set_gid_mappings(None);
    linux.set_sysctl(None);
    linux.set_devices(None);
    linux.set_cgroups_path(None);
    linux.set_rootfs_propagation(None);
    linux.set_mount_label(None);

    let mut spec = SpecBuilder::default()
        .version(OCI_VERSION)
        .process(process)
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(true)
                .build()
                .expect("root"),
        )
        .hostname("berth")
        .mounts(mounts)
        .linux(linux)
        .build()
        .expect("spec");
    spec.set_annotations(None);
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
pub fn make_rootless(spec: &mut Spec) {
    use LinuxNamespaceType as N;
    let (uid, gid) = (berth_sys::geteuid(), berth_sys::getegid());
    if let Some(linux) = spec.linux_mut() {
        let mut nss = linux.namespaces().clone().unwrap_or_default();
        nss.retain(|ns| !matches!(ns.typ(), N::Network | N::User));
        nss.push(namespace(N::User));
        linux.set_namespaces(Some(nss));
        let map = |host: u32| {
            vec![LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host)
                .size(1u32)
                .build()
                .expect("id mapping")]
        };
        linux.set_uid_mappings(Some(map(uid)));
        linux.set_gid_mappings(Some(map(gid)));
        linux.set_resources(None);
    }
    if let Some(mounts) = spec.mounts_mut() {
        for m in mounts.iter_mut() {
            if m.destination().as_os_str() == "/sys" {
                *m = mount(
                    "/sys",
                    "none",
                    "/sys",
                    &["rbind", "nosuid", "noexec", "nodev", "ro"],
                );
                continue;
            }
            if let Some(opts) = m.options().clone() {
                let kept: Vec<String> = opts
                    .into_iter()
                    .filter(|o| !o.starts_with("uid=") && !o.starts_with("gid="))
                    .collect();
                m.set_options(Some(kept));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The default as berth has always written it, spelt as JSON: the typed
    /// builder above must produce exactly this.
    fn expected() -> serde_json::Value {
        json!({
            "ociVersion": "1.3.0",
            "process": {
                "terminal": true,
                "user": { "uid": 0, "gid": 0 },
                "args": ["sh"],
                "env": [PATH, "TERM=xterm"],
                "cwd": "/",
                "capabilities": {
                    "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                    "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                    "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
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
        })
    }

    #[test]
    fn typed_default_is_the_documented_default() {
        let want: Spec = serde_json::from_value(expected()).expect("fixture parses");
        assert_eq!(default_spec(false), want);
        // And nothing extra appears when written out.
        let mut got = serde_json::to_value(default_spec(false)).expect("serialise");
        let mut exp = expected();
        for v in [&mut got, &mut exp] {
            for set in ["bounding", "effective", "permitted"] {
                let caps = &mut v["process"]["capabilities"][set];
                let mut c: Vec<String> = serde_json::from_value(caps.take()).expect("caps");
                c.sort();
                *caps = json!(c);
            }
        }
        assert_eq!(got, exp);
    }

    #[test]
    fn rootless_spec_has_userns_and_no_netns() {
        let s = default_spec(true);
        let linux = s.linux().as_ref().expect("linux");
        let types: Vec<_> = linux
            .namespaces()
            .as_ref()
            .expect("namespaces")
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(types.contains(&LinuxNamespaceType::User));
        assert!(!types.contains(&LinuxNamespaceType::Network));
        assert!(linux.resources().is_none());
        let uid = linux.uid_mappings().as_ref().expect("uid map");
        assert_eq!(uid[0].host_id(), berth_sys::geteuid());
        let mounts = s.mounts().as_ref().expect("mounts");
        let devpts = mounts[2].options().as_ref().expect("devpts options");
        assert!(!devpts.iter().any(|o| o == "gid=5"));
        assert_eq!(mounts[5].typ().as_deref(), Some("none"));
    }
}
