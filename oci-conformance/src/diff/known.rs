//! ================= KNOWN DIFFERENCES: berth vs runc 1.1.5 =================
//!
//! The one table of every difference the differential test expects today.
//! Each row selects corpus entries (`when`) and names the aspects of the
//! comparison that differ there (`aspects`; a trailing `*` matches a
//! prefix). The test fails when
//! - a difference appears that no row explains (new), or
//! - a row selects an entry where one of its aspects does not differ
//!   (stale: it was fixed, so shrink the table).
//!
//! Kinds: `BerthBug` (to be fixed in berth), `Deliberate` (berth differs on
//! purpose, with the reason), `RuncBug` (runc 1.1.5 is wrong, berth is
//! right).

use super::corpus::{Entry, Scenario};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    BerthBug,
    Deliberate,
    RuncBug,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BerthBug => "berth bug",
            Kind::Deliberate => "deliberate deviation",
            Kind::RuncBug => "runc bug",
        }
    }
}

pub struct Known {
    pub when: fn(&Entry) -> bool,
    pub aspects: &'static [&'static str],
    pub kind: Kind,
    pub field: &'static str,
    pub runc: &'static str,
    pub berth: &'static str,
}

/// Whether an aspect pattern of the table (`mount:*`) matches an aspect.
/// A leading `?` marks an aspect that need not differ everywhere the row
/// applies; the `exec.`/`init.` prefix of an exec case's report is not
/// part of the pattern.
pub fn matches(pattern: &str, aspect: &str) -> bool {
    let pattern = pattern.trim_start_matches('?');
    let aspect = aspect
        .strip_prefix("exec.")
        .or_else(|| aspect.strip_prefix("init."))
        .unwrap_or(aspect);
    glob(pattern, aspect)
}

/// `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

// ---- selectors used by the table ----

fn var(e: &Entry, group: &str, name: &str) -> bool {
    e.group == group && e.variation == name
}

fn runs_in_foreground(e: &Entry) -> bool {
    matches!(e.scenario, Scenario::Run | Scenario::Exec { .. })
}

fn has_mount_type(c: &Value, t: &str) -> bool {
    c["mounts"]
        .as_array()
        .map(|a| a.iter().any(|m| m["type"] == t))
        .unwrap_or(false)
}

fn ns(c: &Value, t: &str) -> Option<Value> {
    c["linux"]["namespaces"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["type"] == t).cloned())
}

fn has_hook(e: &Entry, stage: &str) -> bool {
    e.config["hooks"][stage].is_array()
}

fn rootless(e: &Entry) -> bool {
    e.source == "runc-spec-rootless"
}

/// This host's hugetlb is a controller of the hybrid cgroup2 tree, with
/// no v1 hierarchy of its own.
fn hugetlb_in_cgroup2_only() -> bool {
    !std::path::Path::new("/sys/fs/cgroup/hugetlb").exists()
        && std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "hugetlb"))
}

/// The table. Keep one row per distinct cause.
pub const KNOWN: &[Known] = &[
    Known {
        when: runs_in_foreground,
        aspects: &["fds", "tty"],
        kind: Kind::Deliberate,
        field: "stdio of `run`/`exec` in the foreground",
        runc: "copies the process's stdio through pipes it makes (chowned to the process's user)",
        berth: "hands its own stdio to the process, as crun does and as runc does with --detach",
    },
    Known {
        when: |e| has_mount_type(&e.config, "cgroup"),
        aspects: &["mount:/sys/fs/cgroup", "mount:/sys/fs/cgroup/unified", "?probe:stat:/sys/fs/cgroup"],
        kind: Kind::Deliberate,
        field: "mounts[type=cgroup] on a cgroup v1 hybrid host",
        runc: "leaves the tmpfs at /sys/fs/cgroup writable although the mount says ro, and omits the unified hierarchy",
        berth: "mounts the tmpfs with the mount's own options (ro) and the container's cgroup2 dir at /sys/fs/cgroup/unified, where systemd looks on a hybrid host",
    },
    Known {
        when: |e| var(e, "namespaces", "cgroup-path") && rootless(e),
        aspects: &["outcome"],
        kind: Kind::RuncBug,
        field: "linux.namespaces[cgroup].path in a new user namespace",
        runc: "cannot mount cgroupfs there (EPERM) and fails",
        berth: "binds the container's cgroup directories read-only and runs",
    },
    Known {
        when: |e| var(e, "exec", "process-json-rlimits"),
        aspects: &["?exec.rlimit.RLIMIT_NOFILE"],
        kind: Kind::RuncBug,
        field: "exec -p process.json with rlimits (RLIMIT_NOFILE below its hard limit)",
        runc: "sometimes gives the exec'd process soft = hard (its parent sets the limit with prlimit while the Go runtime in `runc init` raises the soft limit to the hard one at start-up: a race, seen in about 1 run of 3 under load)",
        berth: "the configured limits, always",
    },
    Known {
        when: |e| e.group == "hooks" && e.config["hooks"].is_object(),
        aspects: &["hook:*:state.ociVersion"],
        kind: Kind::Deliberate,
        field: "hook state.ociVersion",
        runc: "the runtime-spec version runc implements (1.0.2-dev)",
        berth: "the one berth implements (1.3.0): the version the state complies with, as runtime.md#state defines it",
    },
    Known {
        when: |e| has_hook(e, "poststart") && !var(e, "hooks", "poststart-fails"),
        aspects: &["hook:poststart:state.status"],
        kind: Kind::RuncBug,
        field: "hooks.poststart state.status",
        runc: "`created` (computed before the process starts)",
        berth: "`running`: the runtime-spec runs poststart after the user process has started",
    },
    Known {
        when: |e| has_hook(e, "prestart") || has_hook(e, "createRuntime") || has_hook(e, "createContainer"),
        aspects: &[
            "?hook:prestart:state.status",
            "?hook:createRuntime:state.status",
            "?hook:createContainer:state.status",
        ],
        kind: Kind::RuncBug,
        field: "state.status given to the hooks of create",
        runc: "`creating`",
        berth: "`created` (after lifecycle step 2, as the runtime-spec and crun say)",
    },
    Known {
        when: |_| true,
        aspects: &["?signals.ignored"],
        kind: Kind::RuncBug,
        field: "signals ignored by the runtime's caller",
        runc: "leaves a caller's ignored signal 32 ignored in the container (a Go runtime artefact: it resets the others, 32 it leaves alone)",
        berth: "starts the process with every signal at its default, whatever its caller ignored",
    },
    Known {
        when: |e| {
            (has_hook(e, "startContainer") && !var(e, "hooks", "startContainer-fails"))
                || (has_hook(e, "createContainer") && !var(e, "hooks", "createContainer-fails"))
        },
        aspects: &["?hook:startContainer:state.pid", "?hook:createContainer:state.pid"],
        kind: Kind::RuncBug,
        field: "state.pid given to createContainer/startContainer hooks",
        runc: "1 (the pid as its init sees itself in the container's pid namespace)",
        berth: "the container process's pid as the host sees it, as the runtime-spec's state defines it",
    },
    Known {
        when: |e| var(e, "mounts", "tmpfs-size-mode") || var(e, "mounts", "tmpfs-uid-gid"),
        aspects: &["probe:stat:/mnt"],
        kind: Kind::RuncBug,
        field: "mounts[type=tmpfs] with mode= over an existing directory",
        runc: "chmods the tmpfs root to the old directory's mode, overriding mode=",
        berth: "the tmpfs keeps the mode= the config gives",
    },
    Known {
        when: |e| var(e, "rootfs", "propagation-shared") || var(e, "rootfs", "propagation-rshared"),
        aspects: &["mount:*"],
        kind: Kind::RuncBug,
        field: "linux.rootfsPropagation shared/rshared",
        runc: "the container's mounts show no propagation (runc 1.1.5 applies it to / before the rootfs bind)",
        berth: "the rootfs (and with rshared everything under it) is shared, as the field asks",
    },
    Known {
        when: |e| var(e, "rootfs", "propagation-unbindable"),
        aspects: &["outcome"],
        kind: Kind::RuncBug,
        field: "linux.rootfsPropagation unbindable",
        runc: "fails to bind the rootfs after making / unbindable",
        berth: "applies unbindable after pivot_root and runs",
    },
    Known {
        when: |e| {
            var(e, "spec-1.2", "scheduler-batch")
                || var(e, "spec-1.2", "io-priority")
                || var(e, "spec-1.2", "personality-linux32")
                || var(e, "hostname", "domainname")
                || var(e, "spec-1.2", "mount-idmap")
        },
        aspects: &["?sched", "?personality", "?domainname", "?mount:/mnt", "?probe:*"],
        kind: Kind::Deliberate,
        field: "runtime-spec 1.2 fields: process.scheduler, process.ioPriority, linux.personality, domainname, idmapped mounts",
        runc: "1.1.5 predates them and ignores them",
        berth: "applies them (runtime-spec 1.2)",
    },
    Known {
        when: |e| var(e, "spec-1.2", "time-namespace"),
        aspects: &["outcome"],
        kind: Kind::Deliberate,
        field: "linux.namespaces[time] + linux.timeOffsets (runtime-spec 1.2)",
        runc: "1.1.5 does not know the time namespace and fails",
        berth: "creates it with the offsets",
    },
    Known {
        when: |e| var(e, "seccomp", "flag-log"),
        aspects: &["outcome"],
        kind: Kind::Deliberate,
        field: "linux.seccomp.flags (runtime-spec 1.1)",
        runc: "1.1.5 refuses: seccomp flags are not yet supported",
        berth: "installs the filter with SECCOMP_FILTER_FLAG_LOG",
    },
    Known {
        when: |e| var(e, "hostname", "domainname-without-uts-ns"),
        aspects: &["outcome"],
        kind: Kind::Deliberate,
        field: "domainname without a new UTS namespace",
        runc: "1.1.5 ignores domainname",
        berth: "refuses it, as newer runc does (it would change the host's domain name)",
    },
    Known {
        when: |e| var(e, "namespaces", "user-absent") && rootless(e),
        aspects: &["outcome"],
        kind: Kind::Deliberate,
        field: "linux.uidMappings without a new user namespace",
        runc: "1.1.5 ignores the mappings",
        berth: "refuses the config (the mappings cannot apply), as newer runc does",
    },
    Known {
        when: |e| var(e, "rlimits", "same-type-twice"),
        aspects: &["outcome"],
        kind: Kind::RuncBug,
        field: "process.rlimits with one type twice",
        runc: "applies both (the last wins)",
        berth: "refuses it: the runtime-spec says duplicated types MUST be an error",
    },
    Known {
        when: |e| var(e, "devices", "redefines-null") && e.source != "docker-run",
        aspects: &["outcome"],
        kind: Kind::RuncBug,
        field: "linux.devices redefining /dev/null with mode 0600",
        runc: "fails reopening /dev/null in the container",
        berth: "creates the device as given and runs",
    },
    Known {
        when: |e| var(e, "resources", "hugepage-limits") && hugetlb_in_cgroup2_only(),
        aspects: &["outcome"],
        kind: Kind::Deliberate,
        field: "linux.resources.hugepageLimits on a hybrid host whose hugetlb controller is in the cgroup2 tree (no v1 hierarchy)",
        runc: "fails: cannot set hugetlb limit (runc 1.1.5 looks for a v1 hugetlb hierarchy only)",
        berth: "sets the limit in the container's cgroup2 directory, where the host offers hugetlb, and runs (with no hugetlb controller at all it refuses at create, naming the field)",
    },
    Known {
        when: |e| {
            (var(e, "mounts", "mqueue-and-sysfs-again") && rootless(e))
                || (var(e, "namespaces", "user-added-mapped-to-root") && ns(&e.config, "network").is_none())
        },
        aspects: &["outcome"],
        kind: Kind::Deliberate,
        field: "a sysfs mount in a user namespace without its own network namespace",
        runc: "fails: the kernel refuses a new sysfs there",
        berth: "falls back to a read-only recursive bind of /sys",
    },
    Known {
        // Both fail: container root (host uid 100000) cannot create mount
        // points in a rootfs owned by host root. runc stops already at
        // /sys (the row above); berth binds /sys and stops at the next
        // mount point it must create, and which one that is depends on the
        // order of the mounts podman wrote, which varies from record to
        // record (a stop at `/etc/hostname` is classed `hostname`).
        when: |e| {
            (var(e, "namespaces", "user-added-with-mappings") || var(e, "spec-1.2", "mount-idmap"))
                && ns(&e.config, "network").is_none()
        },
        aspects: &["?error-class"],
        kind: Kind::Deliberate,
        field: "a mapped user namespace that cannot write the rootfs, without its own network namespace",
        runc: "fails mounting sysfs",
        berth: "binds /sys instead and fails at the first mount point it must create (both fail)",
    },
    Known {
        when: |e| var(e, "namespaces", "mount-absent-no-masks") && e.config["root"]["readonly"] == true,
        aspects: &["mount:/", "?probe:write:*", "?probe:mkdir:*"],
        kind: Kind::Deliberate,
        field: "root.readonly without a mount namespace",
        runc: "skips finalizing the rootfs: the root stays writable",
        berth: "makes its bind of the rootfs read-only as root.readonly asks",
    },
    Known {
        when: |e| var(e, "namespaces", "user-added-with-mappings") || var(e, "spec-1.2", "mount-idmap"),
        aspects: &["?probe:stat:/dev/mqueue", "?probe:lsl:/dev/mqueue"],
        kind: Kind::RuncBug,
        field: "the group of /dev/mqueue in a new user namespace",
        runc: "the overflow group: its init makes the IPC namespace (whose creator owns the mqueue root) as the container's root user but still the host's root group",
        berth: "the container's root group: the init makes the IPC namespace as the container's root user and group",
    },
    Known {
        when: |e| {
            var(e, "namespaces", "path-wrong-type")
                || (e.group == "oom" && e.variation.starts_with("score-adj-") && {
                    let adj = &e.variation["score-adj-".len()..];
                    adj.starts_with('-') || adj == "1001"
                })
        },
        aspects: &["error-class"],
        kind: Kind::RuncBug,
        field: "a namespace path of the wrong type; an oomScoreAdj the kernel refuses",
        runc: "fails with `can't get final child's PID from pipe: EOF`, naming no cause",
        berth: "fails naming the namespace, or oom_score_adj and why",
    },
    Known {
        // Only where the config sets no HOME itself (podman's does).
        when: |e| {
            var(e, "mounts", "bind-over-file")
                && !e.config["process"]["env"]
                    .as_array()
                    .is_some_and(|env| env.iter().any(|v| v.as_str().is_some_and(|s| s.starts_with("HOME="))))
        },
        aspects: &["env:HOME"],
        kind: Kind::Deliberate,
        field: "HOME when /etc/passwd is not a passwd file (a file bound over it)",
        runc: "sets HOME to the empty string",
        berth: "sets HOME=/, what runc gives a user without a passwd entry",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_with_prefixes_and_optional_marks() {
        assert!(matches("fds", "exec.fds"));
        assert!(matches("?mount:*", "init.mount:/proc"));
        assert!(!matches("mount:/", "mount:/proc"));
        assert!(matches("hook:*:state.pid", "hook:poststop:state.pid"));
        assert!(!matches("hook:*:state.pid", "hook:poststop:env"));
    }
}
