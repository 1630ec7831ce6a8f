//! The field-by-field variations applied to every varied base config. Each
//! belongs to one field group (`GROUPS`); a variation that does not apply
//! to a base (removing a namespace it does not have) is left out for it.

use super::corpus::{Entry, Scenario};
use super::seccomp;
use crate::cases::process::CAP_NAMES;
use crate::jsonptr;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Every field group the corpus varies.
pub const GROUPS: &[&str] = &[
    "caps",
    "rlimits",
    "user",
    "cwd",
    "env",
    "rootfs",
    "masked",
    "namespaces",
    "seccomp",
    "hooks",
    "mounts",
    "devices",
    "sysctl",
    "hostname",
    "nnp",
    "oom",
    "terminal",
    "resources",
    "process",
    "exec",
    "spec-1.2",
];

/// What the variations need to know about this host.
pub struct Host {
    /// Our own rlimits, (soft, hard), `u64::MAX` for unlimited.
    pub limits: BTreeMap<String, (u64, u64)>,
}

/// `RLIMIT_*` names in /proc/self/limits order.
pub const RLIMITS: &[(&str, &str)] = &[
    ("RLIMIT_CPU", "Max cpu time"),
    ("RLIMIT_FSIZE", "Max file size"),
    ("RLIMIT_DATA", "Max data size"),
    ("RLIMIT_STACK", "Max stack size"),
    ("RLIMIT_CORE", "Max core file size"),
    ("RLIMIT_RSS", "Max resident set"),
    ("RLIMIT_NPROC", "Max processes"),
    ("RLIMIT_NOFILE", "Max open files"),
    ("RLIMIT_MEMLOCK", "Max locked memory"),
    ("RLIMIT_AS", "Max address space"),
    ("RLIMIT_LOCKS", "Max file locks"),
    ("RLIMIT_SIGPENDING", "Max pending signals"),
    ("RLIMIT_MSGQUEUE", "Max msgqueue size"),
    ("RLIMIT_NICE", "Max nice priority"),
    ("RLIMIT_RTPRIO", "Max realtime priority"),
    ("RLIMIT_RTTIME", "Max realtime timeout"),
];

impl Host {
    /// Reads our limits from /proc/self/limits (no syscalls of our own).
    pub fn detect() -> Host {
        let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let mut limits = BTreeMap::new();
        for (name, label) in RLIMITS {
            let Some(line) = text.lines().find(|l| l.starts_with(label)) else {
                continue;
            };
            let vals: Vec<u64> = line[label.len()..]
                .split_whitespace()
                .take(2)
                .map(|v| v.parse().unwrap_or(u64::MAX))
                .collect();
            if vals.len() == 2 {
                limits.insert(name.to_string(), (vals[0], vals[1]));
            }
        }
        Host { limits }
    }

    /// A (soft, hard) pair for `name` that any runtime may set here: at
    /// most our hard limit (root cannot raise it without CAP_SYS_RESOURCE),
    /// low enough to be visible, high enough for a runtime's init.
    pub fn settable(&self, name: &str) -> (u64, u64) {
        let hard = self.limits.get(name).map(|l| l.1).unwrap_or(u64::MAX);
        let want: u64 = match name {
            "RLIMIT_CPU" => 3600,
            "RLIMIT_FSIZE" => 1 << 32,
            "RLIMIT_DATA" | "RLIMIT_AS" | "RLIMIT_RSS" => 1 << 36,
            "RLIMIT_STACK" => 16 << 20,
            "RLIMIT_CORE" => 1 << 20,
            "RLIMIT_NPROC" | "RLIMIT_SIGPENDING" => 4096,
            "RLIMIT_NOFILE" => 4096,
            "RLIMIT_MEMLOCK" => 4 << 20,
            "RLIMIT_LOCKS" => 1000,
            "RLIMIT_MSGQUEUE" => 409_600,
            "RLIMIT_RTTIME" => 1_000_000,
            _ => 0,
        };
        let hard = hard.min(want.max(1));
        let soft = if hard > 1 { hard / 2 } else { hard };
        (soft, hard)
    }
}

/// Every capability this kernel knows, but CAP_SYS_RESOURCE: root's
/// bounding set here lacks it, so naming it fails for every runtime.
pub fn all_caps() -> Vec<&'static str> {
    CAP_NAMES
        .into_iter()
        .filter(|c| *c != "CAP_SYS_RESOURCE")
        .collect()
}

const CAP_SETS: &[&str] = &[
    "bounding",
    "effective",
    "permitted",
    "inheritable",
    "ambient",
];

fn has_ns(c: &Value, t: &str) -> bool {
    c["linux"]["namespaces"]
        .as_array()
        .map(|a| a.iter().any(|n| n["type"] == t))
        .unwrap_or(false)
}

fn remove_ns(c: &mut Value, t: &str) -> bool {
    let Some(a) = c["linux"]["namespaces"].as_array_mut() else {
        return false;
    };
    let before = a.len();
    a.retain(|n| n["type"] != t);
    before != a.len()
}

fn set_ns(c: &mut Value, t: &str, path: Option<&str>) {
    remove_ns(c, t);
    let mut ns = json!({ "type": t });
    if let Some(p) = path {
        ns["path"] = json!(p);
    }
    if !c["linux"]["namespaces"].is_array() {
        c["linux"]["namespaces"] = json!([]);
    }
    c["linux"]["namespaces"].as_array_mut().unwrap().push(ns);
}

fn push(c: &mut Value, ptr: &[&str], v: Value) {
    let mut cur = c;
    for k in ptr {
        cur = &mut cur[*k];
    }
    if !cur.is_array() {
        *cur = json!([]);
    }
    cur.as_array_mut().unwrap().push(v);
}

fn set_user(c: &mut Value, uid: u32, gid: u32) {
    c["process"]["user"]["uid"] = json!(uid);
    c["process"]["user"]["gid"] = json!(gid);
}

fn user_ns_maps(c: &mut Value) {
    set_ns(c, "user", None);
    c["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    c["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
}

/// The hook a stage runs: host `sh` writing its arguments, environment
/// and the state on stdin to `@HOST@/hook-STAGE.out`; startContainer runs
/// in the container (busybox sh) and writes to /dev/shm, which the probe
/// reads.
pub fn recording_hook(stage: &str, extra: &str) -> Value {
    let out = if stage == "startContainer" {
        "/dev/shm/hook-startContainer.out".to_string()
    } else {
        format!("@HOST@/hook-{stage}.out")
    };
    let script = format!(
        "{{ echo \"args: $0 $*\"; echo \"env: $(env | sort | tr '\\n' ' ')\"; echo \"state: $(cat)\"; }} > {out}{extra}"
    );
    json!({ "path": "/bin/sh", "args": ["sh", "-c", script, stage, "arg1"] })
}

/// Collects the variations of one base.
struct Vars<'a> {
    source: &'a str,
    base: &'a Value,
    out: Vec<Entry>,
}

impl Vars<'_> {
    /// Adds a variation when `f` says it applies to this base.
    fn add(
        &mut self,
        group: &'static str,
        name: &str,
        f: impl FnOnce(&mut Value) -> bool,
    ) -> Option<&mut Entry> {
        if NEGATIVE.contains(&format!("{group}/{name}").as_str())
            && !NEGATIVE_BASES.contains(&self.source)
        {
            return None;
        }
        let mut c = self.base.clone();
        if !f(&mut c) {
            return None;
        }
        self.out.push(Entry::new(self.source, group, name, c));
        self.out.last_mut()
    }
    fn set(
        &mut self,
        group: &'static str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Option<&mut Entry> {
        self.add(group, name, |c| {
            f(c);
            true
        })
    }
}

/// Variations runc refuses by design (validation, missing files, what
/// root may not do here). What they test does not depend on the base, so
/// only NEGATIVE_BASES get them, and the corpus stays mostly configs runc
/// runs.
const NEGATIVE: &[&str] = &[
    "caps/permitted-empty",
    "caps/sys-resource-not-in-host-bounding",
    "caps/effective-not-in-permitted",
    "rlimits/soft-above-hard",
    "rlimits/above-host-hard-limit",
    "rlimits/unknown-type",
    "cwd/relative",
    "cwd/empty",
    "cwd/is-a-file",
    "env/entry-without-equals",
    "env/relative-args-without-path",
    "rootfs/missing-path",
    "rootfs/propagation-unbindable",
    "namespaces/user-without-mappings",
    "namespaces/user-added-with-mappings",
    "namespaces/path-missing",
    "namespaces/path-wrong-type",
    "namespaces/duplicate-type",
    "namespaces/unknown-type",
    "seccomp/minimal-default-errno-no-nnp",
    "seccomp/allow-but-mkdirat-kill-process",
    "seccomp/unknown-action",
    "seccomp/flag-log",
    "seccomp/notify-without-listener",
    "hooks/prestart-fails",
    "hooks/createRuntime-fails",
    "hooks/createContainer-fails",
    "hooks/startContainer-fails",
    "hooks/poststart-fails",
    "hooks/timeout-exceeded",
    "hooks/missing-binary",
    "hooks/relative-path",
    "mounts/bind-missing-source",
    "mounts/unknown-type",
    "mounts/unknown-option",
    "mounts/no-mounts",
    "devices/redefines-null",
    "devices/invalid-type",
    "sysctl/not-namespaced",
    "sysctl/no-such-key",
    "sysctl/net-without-netns",
    "hostname/without-uts-ns",
    "hostname/too-long",
    "oom/score-adj--500",
    "oom/score-adj--1000",
    "oom/score-adj-1001",
    "resources/hugepage-limits",
    "resources/network-class-id",
    "process/missing-binary",
    "process/not-executable",
    "process/a-directory",
    "process/empty-args",
    "process/args-absent",
    "exec/process-json-cwd-missing",
    "exec/process-json-missing-binary",
    "exec/args-missing-binary",
    "exec/args-unknown-container",
    "spec-1.2/time-namespace",
];

/// Bases that get the NEGATIVE variations.
const NEGATIVE_BASES: &[&str] = &["runc-spec", "podman-run", "docker-run"];

/// Bases that also get one variation per capability (each capability
/// alone in every set), so that every capability is granted somewhere
/// without multiplying the corpus by every base.
const EVERY_CAP_BASES: &[&str] = &["runc-spec", "podman-run", "docker-run"];

/// The variations of `base` (already adapted to our bundle).
pub fn variations(source: &str, base: &Value, host: &Host) -> Vec<Entry> {
    let mut v = Vars {
        source,
        base,
        out: Vec::new(),
    };
    caps(&mut v);
    if EVERY_CAP_BASES.contains(&source) {
        every_cap(&mut v);
    }
    rlimits(&mut v, host);
    user(&mut v);
    cwd(&mut v);
    env(&mut v);
    rootfs(&mut v);
    masked(&mut v);
    namespaces(&mut v);
    seccomp_profiles(&mut v);
    hooks(&mut v);
    mounts(&mut v);
    devices(&mut v);
    sysctl(&mut v);
    hostname(&mut v);
    nnp(&mut v);
    oom(&mut v);
    terminal(&mut v);
    resources(&mut v);
    process(&mut v);
    exec(&mut v);
    spec12(&mut v);
    v.out
}

fn caps(v: &mut Vars) {
    for set in ["bounding", "effective", "permitted"] {
        v.set("caps", &format!("{set}-empty"), |c| {
            c["process"]["capabilities"][set] = json!([]);
        });
    }
    v.set("caps", "inheritable-as-permitted", |c| {
        let p = c["process"]["capabilities"]["permitted"].clone();
        c["process"]["capabilities"]["inheritable"] = p;
    });
    v.set("caps", "ambient-with-inheritable", |c| {
        let p = c["process"]["capabilities"]["permitted"].clone();
        c["process"]["capabilities"]["inheritable"] = p.clone();
        c["process"]["capabilities"]["ambient"] = p;
    });
    v.set("caps", "ambient-without-inheritable", |c| {
        let p = c["process"]["capabilities"]["permitted"].clone();
        c["process"]["capabilities"]["inheritable"] = json!([]);
        c["process"]["capabilities"]["ambient"] = p;
    });
    v.set("caps", "all-sets-full", |c| {
        for set in CAP_SETS {
            c["process"]["capabilities"][*set] = json!(all_caps());
        }
    });
    v.set("caps", "add-sys-admin", |c| {
        for set in ["bounding", "effective", "permitted"] {
            push(c, &["process", "capabilities", set], json!("CAP_SYS_ADMIN"));
        }
    });
    v.set("caps", "unknown-name", |c| {
        for set in ["bounding", "effective", "permitted"] {
            push(c, &["process", "capabilities", set], json!("CAP_BOGUS"));
        }
    });
    v.set("caps", "sys-resource-not-in-host-bounding", |c| {
        for set in ["bounding", "effective", "permitted"] {
            push(
                c,
                &["process", "capabilities", set],
                json!("CAP_SYS_RESOURCE"),
            );
        }
    });
    v.set("caps", "no-capabilities-object", |c| {
        c["process"]
            .as_object_mut()
            .map(|p| p.remove("capabilities"));
    });
    v.set("caps", "effective-not-in-permitted", |c| {
        push(
            c,
            &["process", "capabilities", "effective"],
            json!("CAP_SYS_ADMIN"),
        );
        push(
            c,
            &["process", "capabilities", "bounding"],
            json!("CAP_SYS_ADMIN"),
        );
    });
    v.set("caps", "non-root-user-keeps-caps", |c| {
        set_user(c, 1000, 1000)
    });
    v.set("caps", "lowercase-name", |c| {
        push(
            c,
            &["process", "capabilities", "bounding"],
            json!("cap_sys_admin"),
        );
    });
}

fn every_cap(v: &mut Vars) {
    for cap in all_caps() {
        v.set("caps", &format!("only-{}", cap.to_lowercase()), |c| {
            for set in CAP_SETS {
                c["process"]["capabilities"][*set] = json!([cap]);
            }
        });
    }
}

fn rlimits(v: &mut Vars, host: &Host) {
    for (name, _) in RLIMITS {
        let (soft, hard) = host.settable(name);
        v.set("rlimits", &name.to_lowercase(), |c| {
            let rl = c["process"]["rlimits"].as_array_mut().map(std::mem::take);
            let mut rl: Vec<Value> = rl.unwrap_or_default();
            rl.retain(|r| r["type"] != *name);
            rl.push(json!({ "type": name, "soft": soft, "hard": hard }));
            c["process"]["rlimits"] = json!(rl);
        });
    }
    v.set("rlimits", "soft-above-hard", |c| {
        c["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024 }]);
    });
    let (_, hard) = host.settable("RLIMIT_NOFILE");
    let above = host
        .limits
        .get("RLIMIT_NOFILE")
        .map(|l| l.1)
        .unwrap_or(hard)
        .saturating_add(1);
    v.set("rlimits", "above-host-hard-limit", |c| {
        c["process"]["rlimits"] =
            json!([{ "type": "RLIMIT_NOFILE", "soft": above, "hard": above }]);
    });
    v.set("rlimits", "unknown-type", |c| {
        c["process"]["rlimits"] = json!([{ "type": "RLIMIT_BOGUS", "soft": 1, "hard": 1 }]);
    });
    v.set("rlimits", "same-type-twice", |c| {
        c["process"]["rlimits"] = json!([
            { "type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024 },
            { "type": "RLIMIT_NOFILE", "soft": 512, "hard": 512 }
        ]);
    });
    v.set("rlimits", "empty-list", |c| {
        c["process"]["rlimits"] = json!([])
    });
    v.set("rlimits", "absent", |c| {
        c["process"].as_object_mut().map(|p| p.remove("rlimits"));
    });
}

fn user(v: &mut Vars) {
    v.set("user", "uid-gid-1000", |c| set_user(c, 1000, 1000));
    v.set("user", "additional-gids", |c| {
        set_user(c, 1000, 1000);
        c["process"]["user"]["additionalGids"] = json!([10, 1000, 2000]);
    });
    v.set("user", "root-with-additional-gids", |c| {
        c["process"]["user"]["additionalGids"] = json!([5, 10]);
    });
    v.set("user", "umask-077", |c| {
        c["process"]["user"]["umask"] = json!(0o077)
    });
    v.set("user", "umask-0", |c| {
        c["process"]["user"]["umask"] = json!(0)
    });
    v.set("user", "nobody", |c| set_user(c, 65534, 65534));
    v.set("user", "uid-1000-gid-0", |c| set_user(c, 1000, 0));
    v.set("user", "uid-not-in-passwd", |c| set_user(c, 4242, 4242));
    v.set("user", "username-field", |c| {
        c["process"]["user"]["username"] = json!("nobody");
    });
    v.set("user", "user-object-absent", |c| {
        c["process"].as_object_mut().map(|p| p.remove("user"));
    });
}

fn cwd(v: &mut Vars) {
    v.set("cwd", "exists", |c| c["process"]["cwd"] = json!("/tmp"));
    v.set("cwd", "missing", |c| {
        c["process"]["cwd"] = json!("/newdir/sub")
    });
    v.set("cwd", "missing-readonly-rootfs", |c| {
        c["process"]["cwd"] = json!("/newdir/sub");
        c["root"]["readonly"] = json!(true);
    });
    v.set("cwd", "relative", |c| c["process"]["cwd"] = json!("tmp"));
    v.set("cwd", "empty", |c| c["process"]["cwd"] = json!(""));
    v.set("cwd", "is-a-file", |c| {
        c["process"]["cwd"] = json!("/checker")
    });
    v.set("cwd", "root-only-dir-non-root-user", |c| {
        c["process"]["cwd"] = json!("/root");
        set_user(c, 65534, 65534);
    });
    v.set("cwd", "root-only-dir-root", |c| {
        c["process"]["cwd"] = json!("/root")
    });
    v.set("cwd", "trailing-slash", |c| {
        c["process"]["cwd"] = json!("/tmp/")
    });
    v.set("cwd", "through-symlink", |c| {
        c["process"]["cwd"] = json!("/tmplink")
    });
}

fn env(v: &mut Vars) {
    v.set("env", "absent", |c| {
        c["process"].as_object_mut().map(|p| p.remove("env"));
    });
    v.set("env", "empty", |c| c["process"]["env"] = json!([]));
    v.set("env", "home-set", |c| {
        push(c, &["process", "env"], json!("HOME=/data"))
    });
    v.set("env", "duplicate-key", |c| {
        push(c, &["process", "env"], json!("DUP=1"));
        push(c, &["process", "env"], json!("DUP=2"));
    });
    v.set("env", "entry-without-equals", |c| {
        push(c, &["process", "env"], json!("NOEQUALS"));
    });
    v.set("env", "empty-value", |c| {
        push(c, &["process", "env"], json!("EMPTY="))
    });
    v.set("env", "no-path", |c| {
        let mut e = jsonptr::strings(&c["process"]["env"]);
        e.retain(|x| !x.starts_with("PATH="));
        c["process"]["env"] = json!(e);
    });
    v.set("env", "relative-args-with-path", |c| {
        c["process"]["args"] = json!(["checker"]);
        let mut e = jsonptr::strings(&c["process"]["env"]);
        e.retain(|x| !x.starts_with("PATH="));
        e.push("PATH=/bin:/".into());
        c["process"]["env"] = json!(e);
    });
    v.set("env", "relative-args-without-path", |c| {
        c["process"]["args"] = json!(["checker"]);
        let mut e = jsonptr::strings(&c["process"]["env"]);
        e.retain(|x| !x.starts_with("PATH="));
        c["process"]["env"] = json!(e);
    });
    v.set("env", "long-value", |c| {
        push(
            c,
            &["process", "env"],
            json!(format!("LONG={}", "x".repeat(8192))),
        );
    });
    v.set("env", "non-root-home-from-passwd", |c| {
        set_user(c, 1000, 1000)
    });
}

fn rootfs(v: &mut Vars) {
    v.set("rootfs", "readonly", |c| {
        c["root"]["readonly"] = json!(true)
    });
    v.set("rootfs", "writable", |c| {
        c["root"]["readonly"] = json!(false)
    });
    v.set("rootfs", "absolute-path", |c| {
        c["root"]["path"] = json!("@BUNDLE@/rootfs")
    });
    v.set("rootfs", "missing-path", |c| {
        c["root"]["path"] = json!("no-such-rootfs")
    });
    for p in ["shared", "slave", "private", "unbindable", "rshared"] {
        v.set("rootfs", &format!("propagation-{p}"), |c| {
            c["linux"]["rootfsPropagation"] = json!(p);
        });
    }
}

fn masked(v: &mut Vars) {
    v.set("masked", "masked-empty", |c| {
        c["linux"]["maskedPaths"] = json!([])
    });
    v.set("masked", "readonly-empty", |c| {
        c["linux"]["readonlyPaths"] = json!([])
    });
    v.set("masked", "masked-file", |c| {
        push(c, &["linux", "maskedPaths"], json!("/data/marker"))
    });
    v.set("masked", "masked-dir", |c| {
        push(c, &["linux", "maskedPaths"], json!("/data"))
    });
    v.set("masked", "masked-missing", |c| {
        push(c, &["linux", "maskedPaths"], json!("/nonexistent"));
    });
    v.set("masked", "readonly-dir", |c| {
        push(c, &["linux", "readonlyPaths"], json!("/data"))
    });
    v.set("masked", "readonly-file", |c| {
        push(c, &["linux", "readonlyPaths"], json!("/data/marker"));
    });
    v.set("masked", "readonly-missing", |c| {
        push(c, &["linux", "readonlyPaths"], json!("/nonexistent"));
    });
    v.set("masked", "masked-and-readonly", |c| {
        push(c, &["linux", "maskedPaths"], json!("/data"));
        push(c, &["linux", "readonlyPaths"], json!("/data"));
    });
    v.set("masked", "masked-relative", |c| {
        push(c, &["linux", "maskedPaths"], json!("data"))
    });
}

const NS_TYPES: &[&str] = &["pid", "network", "ipc", "uts", "mount", "cgroup", "user"];

/// /proc/PID/ns names of the namespace types.
fn ns_file(t: &str) -> &str {
    match t {
        "network" => "net",
        "mount" => "mnt",
        other => other,
    }
}

fn namespaces(v: &mut Vars) {
    for t in NS_TYPES {
        if let Some(e) = v.add("namespaces", &format!("{t}-absent"), |c| remove_ns(c, t)) {
            e.private_mounts = *t == "mount";
        }
    }
    if let Some(e) = v.add("namespaces", "mount-absent-no-masks", |c| {
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
        remove_ns(c, "mount")
    }) {
        e.private_mounts = true;
    }
    for t in ["pid", "network", "ipc", "uts", "cgroup"] {
        v.add("namespaces", &format!("{t}-added"), |c| {
            if has_ns(c, t) {
                return false;
            }
            set_ns(c, t, None);
            true
        });
    }
    v.add("namespaces", "user-added-mapped-to-root", |c| {
        if has_ns(c, "user") {
            return false;
        }
        set_ns(c, "user", None);
        c["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": 0, "size": 65536 }]);
        c["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": 0, "size": 65536 }]);
        true
    });
    // Container root is host uid 100000: the rootfs (owned by host root)
    // is read-only to it, so mount points to create fail.
    v.add("namespaces", "user-added-with-mappings", |c| {
        if has_ns(c, "user") {
            return false;
        }
        user_ns_maps(c);
        true
    });
    v.add("namespaces", "user-without-mappings", |c| {
        if has_ns(c, "user") {
            return false;
        }
        set_ns(c, "user", None);
        true
    });
    for t in ["network", "ipc", "uts", "pid", "cgroup"] {
        let path = format!("/proc/@HELPER@/ns/{}", ns_file(t));
        if let Some(e) = v.set("namespaces", &format!("{t}-path"), |c| {
            set_ns(c, t, Some(&path))
        }) {
            e.helper = true;
        }
    }
    v.set("namespaces", "path-missing", |c| {
        set_ns(c, "network", Some("/proc/self/ns/no-such-ns"));
    });
    if let Some(e) = v.set("namespaces", "path-wrong-type", |c| {
        set_ns(c, "ipc", Some("/proc/@HELPER@/ns/net"));
    }) {
        e.helper = true;
    }
    v.set("namespaces", "duplicate-type", |c| {
        push(c, &["linux", "namespaces"], json!({ "type": "ipc" }));
        push(c, &["linux", "namespaces"], json!({ "type": "ipc" }));
    });
    v.set("namespaces", "unknown-type", |c| {
        push(c, &["linux", "namespaces"], json!({ "type": "bogus" }));
    });
}

fn bounding(c: &Value) -> Vec<String> {
    jsonptr::strings(&c["process"]["capabilities"]["bounding"])
}

fn seccomp_profiles(v: &mut Vars) {
    v.add(
        "seccomp",
        "containers-common-default",
        |c| match seccomp::containers_common(&bounding(c)) {
            Ok(p) => {
                c["linux"]["seccomp"] = p;
                true
            }
            Err(_) => false,
        },
    );
    v.add(
        "seccomp",
        "containers-common-default-no-nnp",
        |c| match seccomp::containers_common(&bounding(c)) {
            Ok(p) => {
                c["linux"]["seccomp"] = p;
                c["process"]["noNewPrivileges"] = json!(false);
                true
            }
            Err(_) => false,
        },
    );
    v.set("seccomp", "runtime-tools-style-default-deny", |c| {
        c["linux"]["seccomp"] = seccomp::runtime_tools_style(&bounding(c));
    });
    v.set("seccomp", "minimal-default-errno", |c| {
        c["linux"]["seccomp"] = seccomp::minimal("SCMP_ACT_ERRNO");
        c["process"]["noNewPrivileges"] = json!(true);
    });
    v.set("seccomp", "minimal-default-errno-no-nnp", |c| {
        c["linux"]["seccomp"] = seccomp::minimal("SCMP_ACT_ERRNO");
        c["process"]["noNewPrivileges"] = json!(false);
    });
    v.set("seccomp", "minimal-default-kill", |c| {
        c["linux"]["seccomp"] = seccomp::minimal("SCMP_ACT_KILL");
        c["process"]["noNewPrivileges"] = json!(true);
    });
    let allow_but = |rule: Value| {
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [rule]
        })
    };
    // Each variation allows all but this rule.
    let rows = [
        (
            "allow-but-mkdirat-errno",
            json!({ "names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }),
        ),
        (
            "allow-but-mkdirat-errno-default-ret",
            json!({ "names": ["mkdirat"], "action": "SCMP_ACT_ERRNO" }),
        ),
        (
            "allow-but-mkdirat-kill-process",
            json!({ "names": ["mkdirat"], "action": "SCMP_ACT_KILL_PROCESS" }),
        ),
        (
            "allow-but-mkdirat-mode-arg",
            json!({
                "names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                "args": [{ "index": 2, "value": 0o755, "op": "SCMP_CMP_EQ" }]
            }),
        ),
        (
            "allow-but-mkdirat-masked-eq",
            json!({
                "names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                "args": [{ "index": 2, "value": 0o700, "valueTwo": 0o700, "op": "SCMP_CMP_MASKED_EQ" }]
            }),
        ),
        (
            "allow-but-mkdirat-trace",
            json!({ "names": ["mkdirat"], "action": "SCMP_ACT_TRACE" }),
        ),
        (
            "allow-but-mkdirat-log",
            json!({ "names": ["mkdirat"], "action": "SCMP_ACT_LOG" }),
        ),
        (
            "unknown-syscall-name",
            json!({
                "names": ["no_such_syscall", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1
            }),
        ),
        (
            "unknown-action",
            json!({ "names": ["mkdirat"], "action": "SCMP_ACT_BOGUS" }),
        ),
    ];
    for (name, rule) in rows {
        v.set("seccomp", name, |c| c["linux"]["seccomp"] = allow_but(rule));
    }
    v.set("seccomp", "default-errno-ret", |c| {
        let mut p = seccomp::minimal("SCMP_ACT_ERRNO");
        p["defaultErrnoRet"] = json!(38);
        c["linux"]["seccomp"] = p;
        c["process"]["noNewPrivileges"] = json!(true);
    });
    v.set("seccomp", "flag-log", |c| {
        let mut p =
            allow_but(json!({ "names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 }));
        p["flags"] = json!(["SECCOMP_FILTER_FLAG_LOG"]);
        c["linux"]["seccomp"] = p;
    });
    v.set("seccomp", "notify-without-listener", |c| {
        c["linux"]["seccomp"] =
            allow_but(json!({ "names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY" }));
    });
    v.set("seccomp", "no-architectures", |c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 }]
        });
    });
}

const HOOK_STAGES: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

fn hooks(v: &mut Vars) {
    for stage in HOOK_STAGES {
        v.set("hooks", &format!("{stage}-records"), |c| {
            push(c, &["hooks", stage], recording_hook(stage, ""));
        });
        v.set("hooks", &format!("{stage}-fails"), |c| {
            push(c, &["hooks", stage], recording_hook(stage, "; exit 7"));
        });
    }
    v.set("hooks", "all-stages", |c| {
        for stage in HOOK_STAGES {
            push(c, &["hooks", stage], recording_hook(stage, ""));
        }
    });
    v.set("hooks", "env-and-timeout", |c| {
        let mut h = recording_hook("prestart", "");
        h["env"] = json!(["HOOK_VAR=1", "PATH=/usr/bin:/bin"]);
        h["timeout"] = json!(5);
        push(c, &["hooks", "prestart"], h);
    });
    v.set("hooks", "timeout-exceeded", |c| {
        push(
            c,
            &["hooks", "createRuntime"],
            json!({ "path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1 }),
        );
    });
    v.set("hooks", "missing-binary", |c| {
        push(
            c,
            &["hooks", "createRuntime"],
            json!({ "path": "/no/such/hook", "args": ["x"] }),
        );
    });
    v.set("hooks", "relative-path", |c| {
        push(
            c,
            &["hooks", "createRuntime"],
            json!({ "path": "sh", "args": ["sh", "-c", "true"] }),
        );
    });
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    json!({ "destination": dest, "type": typ, "source": source, "options": options })
}

fn mounts(v: &mut Vars) {
    let tmpfs = |dest: &str, options: &[&str]| mount(dest, "tmpfs", "tmpfs", options);
    let bind = |dest: &str, source: &str, options: &[&str]| mount(dest, "bind", source, options);
    let (dir, file) = ("@HOST@/bind-dir", "@HOST@/bind-file");
    // Each variation adds these mounts.
    let mut rows: Vec<(String, Vec<Value>)> = vec![
        (
            "tmpfs-size-mode".into(),
            vec![tmpfs("/mnt", &["size=1m", "mode=1777", "nosuid"])],
        ),
        (
            "tmpfs-new-destination".into(),
            vec![tmpfs("/new/deep/dir", &[])],
        ),
        (
            "tmpfs-uid-gid".into(),
            vec![tmpfs("/mnt", &["uid=1000", "gid=1000", "mode=700"])],
        ),
        (
            "bind-dir-ro".into(),
            vec![bind("/mnt", dir, &["rbind", "ro"])],
        ),
        (
            "bind-dir-no-type".into(),
            vec![json!({ "destination": "/mnt", "source": dir, "options": ["bind"] })],
        ),
        (
            "bind-file-new-destination".into(),
            vec![bind("/etc/bound-file", file, &["bind", "ro"])],
        ),
        (
            "bind-over-file".into(),
            vec![bind("/etc/passwd", file, &["bind"])],
        ),
        (
            "bind-nosuid-nodev-noexec".into(),
            vec![bind("/mnt", dir, &["bind", "nosuid", "nodev", "noexec"])],
        ),
    ];
    for p in ["rshared", "rslave", "rprivate", "runbindable"] {
        rows.push((format!("bind-{p}"), vec![bind("/mnt", dir, &["rbind", p])]));
    }
    rows.extend([
        (
            "bind-missing-source".into(),
            vec![bind("/mnt", "@HOST@/no-such-source", &["bind"])],
        ),
        (
            "unknown-type".into(),
            vec![mount("/mnt", "bogusfs", "none", &[])],
        ),
        ("unknown-option".into(), vec![tmpfs("/mnt", &["bogusopt"])]),
        ("relative-destination".into(), vec![tmpfs("mnt", &[])]),
        (
            "recursive-ro".into(),
            vec![bind("/mnt", dir, &["rbind", "rro"])],
        ),
        (
            "second-proc".into(),
            vec![mount("/mnt", "proc", "proc", &[])],
        ),
        ("destination-symlink".into(), vec![tmpfs("/tmplink", &[])]),
        (
            "atime-options".into(),
            vec![tmpfs("/mnt", &["noatime", "nodiratime"])],
        ),
        (
            "mqueue-and-sysfs-again".into(),
            vec![
                mount("/mnt", "sysfs", "sysfs", &["ro"]),
                mount("/data", "mqueue", "mqueue", &[]),
            ],
        ),
    ]);
    for (name, added) in rows {
        v.set("mounts", &name, |c| {
            for x in added {
                push(c, &["mounts"], x);
            }
        });
    }
    v.set("mounts", "no-mounts", |c| c["mounts"] = json!([]));
}

fn device(path: &str, typ: &str, major: i64, minor: i64) -> Value {
    json!({ "path": path, "type": typ, "major": major, "minor": minor, "fileMode": 0o666, "uid": 0, "gid": 0 })
}

fn devices(v: &mut Vars) {
    let mut owned = device("/dev/fuse", "c", 10, 229);
    owned["uid"] = json!(1000);
    owned["gid"] = json!(1000);
    owned["fileMode"] = json!(0o600);
    let mut null = device("/dev/null", "c", 1, 3);
    null["fileMode"] = json!(0o600);
    // Each variation adds this device.
    let rows = [
        ("fuse", device("/dev/fuse", "c", 10, 229)),
        ("owner-and-mode", owned),
        ("in-subdirectory", device("/dev/net/tun", "c", 10, 200)),
        (
            "fifo",
            json!({ "path": "/dev/myfifo", "type": "p", "fileMode": 0o644 }),
        ),
        ("block", device("/dev/loop7", "b", 7, 7)),
        ("redefines-null", null),
        ("outside-dev", device("/data/mynull", "c", 1, 3)),
        ("unbuffered-type-u", device("/dev/myzero", "u", 1, 5)),
        ("invalid-type", device("/dev/bogus", "x", 1, 5)),
        (
            "no-file-mode",
            json!({ "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229 }),
        ),
    ];
    for (name, x) in rows {
        v.set("devices", name, |c| push(c, &["linux", "devices"], x));
    }
    v.set("devices", "cgroup-allow-rule", |c| {
        push(
            c,
            &["linux", "resources", "devices"],
            json!({ "allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw" }),
        )
    });
}

fn sysctl(v: &mut Vars) {
    let s = |c: &mut Value, k: &str, val: &str| c["linux"]["sysctl"][k] = json!(val);
    v.set("sysctl", "net-ipv4-ip-forward", |c| {
        s(c, "net.ipv4.ip_forward", "1")
    });
    v.set("sysctl", "net-core-somaxconn", |c| {
        s(c, "net.core.somaxconn", "512")
    });
    v.set("sysctl", "kernel-shmmax-ipc", |c| {
        s(c, "kernel.shmmax", "4096000")
    });
    v.set("sysctl", "fs-mqueue-msg-max", |c| {
        s(c, "fs.mqueue.msg_max", "20")
    });
    v.set("sysctl", "kernel-domainname-uts", |c| {
        s(c, "kernel.domainname", "example.org")
    });
    v.set("sysctl", "net-without-netns", |c| {
        remove_ns(c, "network");
        s(c, "net.ipv4.ip_forward", "1")
    });
    v.set("sysctl", "not-namespaced", |c| {
        s(c, "kernel.printk", "4 4 1 7")
    });
    v.set("sysctl", "no-such-key", |c| {
        s(c, "net.ipv4.no_such_sysctl", "1")
    });
    v.set("sysctl", "slash-separated", |c| {
        s(c, "net/ipv4/ip_forward", "1")
    });
}

fn hostname(v: &mut Vars) {
    v.set("hostname", "set", |c| c["hostname"] = json!("diff-host"));
    v.set("hostname", "empty", |c| c["hostname"] = json!(""));
    v.set("hostname", "absent", |c| {
        c.as_object_mut().map(|o| o.remove("hostname"));
    });
    v.set("hostname", "without-uts-ns", |c| {
        c["hostname"] = json!("diff-host");
        remove_ns(c, "uts");
    });
    v.set("hostname", "too-long", |c| {
        c["hostname"] = json!("h".repeat(65))
    });
    v.set("hostname", "domainname", |c| {
        c["domainname"] = json!("example.org")
    });
    v.set("hostname", "domainname-without-uts-ns", |c| {
        c["domainname"] = json!("example.org");
        c.as_object_mut().map(|o| o.remove("hostname"));
        remove_ns(c, "uts");
    });
}

fn nnp(v: &mut Vars) {
    v.set("nnp", "true", |c| {
        c["process"]["noNewPrivileges"] = json!(true)
    });
    v.set("nnp", "false", |c| {
        c["process"]["noNewPrivileges"] = json!(false)
    });
    v.set("nnp", "absent", |c| {
        c["process"]
            .as_object_mut()
            .map(|p| p.remove("noNewPrivileges"));
    });
    v.set("nnp", "false-non-root", |c| {
        c["process"]["noNewPrivileges"] = json!(false);
        set_user(c, 1000, 1000);
    });
    v.set("nnp", "true-non-root", |c| {
        c["process"]["noNewPrivileges"] = json!(true);
        set_user(c, 1000, 1000);
    });
}

fn oom(v: &mut Vars) {
    for adj in [0i64, 500, 1000, -500, -1000, 1001] {
        v.set("oom", &format!("score-adj-{adj}"), |c| {
            c["process"]["oomScoreAdj"] = json!(adj)
        });
    }
    v.set("oom", "absent", |c| {
        c["process"]
            .as_object_mut()
            .map(|p| p.remove("oomScoreAdj"));
    });
}

fn terminal(v: &mut Vars) {
    let size = json!({ "height": 40, "width": 120 });
    // Run on a terminal: process.terminal true, and then what `f` changes.
    let on_terminal = |v: &mut Vars, name: &str, f: &dyn Fn(&mut Value)| {
        if let Some(e) = v.set("terminal", name, |c| {
            c["process"]["terminal"] = json!(true);
            f(c);
        }) {
            e.scenario = Scenario::Terminal;
        }
    };
    on_terminal(v, "true", &|_| {});
    on_terminal(v, "true-non-root-pty-owner", &|c| set_user(c, 1000, 1000));
    on_terminal(v, "true-console-size", &|c| {
        c["process"]["consoleSize"] = size.clone()
    });
    v.set("terminal", "false", |c| {
        c["process"]["terminal"] = json!(false)
    });
    v.set("terminal", "false-console-size", |c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["consoleSize"] = size;
    });
}

fn resources(v: &mut Vars) {
    // Each variation sets one of linux.resources.
    let rows = [
        (
            "memory-kernel",
            "memory",
            json!({ "limit": 268_435_456i64, "kernel": 67_108_864i64 }),
        ),
        (
            "memory-kernel-tcp",
            "memory",
            json!({ "kernelTCP": 67_108_864i64 }),
        ),
        ("memory-limit", "memory", json!({ "limit": 268_435_456i64 })),
        (
            "memory-swap",
            "memory",
            json!({ "limit": 268_435_456i64, "swap": 536_870_912i64 }),
        ),
        (
            "memory-reservation",
            "memory",
            json!({ "reservation": 134_217_728i64 }),
        ),
        ("memory-swappiness", "memory", json!({ "swappiness": 10 })),
        ("pids-limit", "pids", json!({ "limit": 100 })),
        ("cpu-shares", "cpu", json!({ "shares": 512 })),
        (
            "cpu-quota",
            "cpu",
            json!({ "quota": 50000, "period": 100000 }),
        ),
        ("cpuset-cpus", "cpu", json!({ "cpus": "0" })),
        ("blkio-weight", "blockIO", json!({ "weight": 500 })),
        (
            "hugepage-limits",
            "hugepageLimits",
            json!([{ "pageSize": "2MB", "limit": 0 }]),
        ),
        ("network-class-id", "network", json!({ "classID": 1048577 })),
    ];
    for (name, key, x) in rows {
        v.set("resources", name, |c| c["linux"]["resources"][key] = x);
    }
    v.set("resources", "no-cgroups-path", |c| {
        c["linux"].as_object_mut().map(|l| l.remove("cgroupsPath"));
    });
    v.set("resources", "relative-cgroups-path", |c| {
        c["linux"]["cgroupsPath"] = json!("@CGROUP_PARENT@/@ID@")
    });
}

fn process(v: &mut Vars) {
    // Each variation sets process.args.
    let rows = [
        ("exit-code", json!(["/checker", "exit:3"])),
        ("missing-binary", json!(["/no/such/binary"])),
        ("not-executable", json!(["/etc/passwd"])),
        ("a-directory", json!(["/tmp"])),
        ("empty-args", json!([])),
    ];
    for (name, args) in rows {
        v.set("process", name, |c| c["process"]["args"] = args);
    }
    v.set("process", "args-absent", |c| {
        c["process"].as_object_mut().map(|p| p.remove("args"));
    });
    v.set("process", "shell-script", |c| {
        c["process"]["args"] = json!(["/bin/sh", "-c", "exec /checker"]);
    });
    v.set("process", "annotations", |c| {
        c["annotations"] = json!({ "org.example.key": "value" })
    });
}

/// The process.json of an exec: the config's process with the probe.
fn exec_process(c: &Value) -> Value {
    let mut p = c["process"].clone();
    p["args"] = json!(["/checker"]);
    p["terminal"] = json!(false);
    p
}

fn exec(v: &mut Vars) {
    let hold = |c: &mut Value| c["process"]["args"] = json!(["/checker", "hold"]);
    let with_process = |v: &mut Vars, name: &str, f: &dyn Fn(&mut Value)| {
        let Some(e) = v.set("exec", name, hold) else {
            return;
        };
        let mut p = exec_process(&e.config);
        f(&mut p);
        e.scenario = Scenario::Exec {
            process: Some(p),
            args: Vec::new(),
        };
    };
    with_process(v, "process-json", &|_| {});
    with_process(v, "process-json-without-user", &|p| {
        p.as_object_mut().map(|o| o.remove("user"));
    });
    with_process(v, "process-json-user-1000", &|p| {
        p["user"] = json!({ "uid": 1000, "gid": 1000, "additionalGids": [10] });
    });
    with_process(v, "process-json-no-caps", &|p| {
        p.as_object_mut().map(|o| o.remove("capabilities"));
    });
    with_process(v, "process-json-rlimits", &|p| {
        p["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "soft": 256, "hard": 512 }]);
    });
    with_process(v, "process-json-cwd-missing", &|p| {
        p["cwd"] = json!("/no/such/dir")
    });
    with_process(v, "process-json-missing-binary", &|p| {
        p["args"] = json!(["/no/such/binary"])
    });
    with_process(v, "process-json-exit-code", &|p| {
        p["args"] = json!(["/checker", "exit:5"])
    });
    with_process(v, "process-json-env-absent", &|p| {
        p.as_object_mut().map(|o| o.remove("env"));
    });
    let with_args = |v: &mut Vars, name: &str, args: &[&str]| {
        let Some(e) = v.set("exec", name, hold) else {
            return;
        };
        e.scenario = Scenario::Exec {
            process: None,
            args: args.iter().map(|s| s.to_string()).collect(),
        };
    };
    with_args(v, "args", &["@ID@", "@PROBE@"]);
    with_args(v, "args-user", &["--user", "1000:1000", "@ID@", "@PROBE@"]);
    with_args(
        v,
        "args-additional-gids",
        &[
            "--user",
            "1000:1000",
            "--additional-gids",
            "10",
            "@ID@",
            "@PROBE@",
        ],
    );
    with_args(v, "args-cwd", &["--cwd", "/tmp", "@ID@", "@PROBE@"]);
    with_args(v, "args-env", &["--env", "EXTRA=1", "@ID@", "@PROBE@"]);
    with_args(
        v,
        "args-cap",
        &["--cap", "CAP_SYS_ADMIN", "@ID@", "@PROBE@"],
    );
    with_args(
        v,
        "args-no-new-privs",
        &["--no-new-privs", "@ID@", "@PROBE@"],
    );
    with_args(v, "args-missing-binary", &["@ID@", "/no/such/binary"]);
    with_args(v, "args-exit-code", &["@ID@", "/checker", "exit:4"]);
    with_args(
        v,
        "args-unknown-container",
        &["no-such-container", "/checker"],
    );
}

fn spec12(v: &mut Vars) {
    v.set("spec-1.2", "personality-linux32", |c| {
        c["linux"]["personality"] = json!({ "domain": "LINUX32" })
    });
    v.set("spec-1.2", "scheduler-batch", |c| {
        c["process"]["scheduler"] = json!({ "policy": "SCHED_BATCH", "nice": 5 })
    });
    v.set("spec-1.2", "io-priority", |c| {
        c["process"]["ioPriority"] = json!({ "class": "IOPRIO_CLASS_BE", "priority": 3 })
    });
    v.set("spec-1.2", "time-namespace", |c| {
        set_ns(c, "time", None);
        c["linux"]["timeOffsets"] = json!({ "monotonic": { "secs": 86400, "nanosecs": 0 } });
    });
    v.set("spec-1.2", "mount-idmap", |c| {
        user_ns_maps(c);
        push(
            c,
            &["mounts"],
            json!({
                "destination": "/mnt", "type": "bind", "source": "@HOST@/bind-dir",
                "options": ["rbind", "idmap"],
                "uidMappings": [{ "containerID": 0, "hostID": 100000, "size": 65536 }],
                "gidMappings": [{ "containerID": 0, "hostID": 100000, "size": 65536 }]
            }),
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_is_used_and_names_are_unique() {
        let base = super::super::sources::adapt(json!({
            "ociVersion": "1.0.2-dev",
            "process": { "user": { "uid": 0, "gid": 0 }, "cwd": "/", "env": ["PATH=/bin"],
                         "capabilities": { "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                           "permitted": ["CAP_KILL"] } },
            "root": { "path": "rootfs" },
            "linux": { "namespaces": [{ "type": "pid" }, { "type": "mount" }, { "type": "uts" }] }
        }));
        let host = Host {
            limits: BTreeMap::new(),
        };
        let vs = variations("runc-spec", &base, &host);
        for g in GROUPS {
            assert!(
                vs.iter().filter(|e| e.group == *g).count() >= 5,
                "group {g}"
            );
        }
        let mut names: Vec<&String> = vs.iter().map(|e| &e.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
        assert!(vs.iter().all(|e| GROUPS.contains(&e.group)));
    }

    #[test]
    fn settable_limits_stay_under_our_hard_limit() {
        let mut limits = BTreeMap::new();
        limits.insert("RLIMIT_NOFILE".to_string(), (1024, 2048));
        limits.insert("RLIMIT_NICE".to_string(), (0, 0));
        let h = Host { limits };
        assert_eq!(h.settable("RLIMIT_NOFILE"), (1024, 2048));
        assert_eq!(h.settable("RLIMIT_NICE"), (0, 0));
        assert_eq!(h.settable("RLIMIT_CPU"), (1800, 3600));
    }
}
