//! What a run under one runtime came to (`Outcome`), made comparable: the
//! probe's report becomes named aspects with everything that legitimately
//! differs between two runs (paths of the case's directories, container
//! and process ids, mount and device numbers, namespace inodes) replaced,
//! and a failure becomes a stage and a reason class.

use serde_json::Value;
use std::collections::BTreeMap;

/// How one runtime's run of a config ended.
#[derive(Clone, Debug)]
pub enum Status {
    /// The process ran (the probe reported); its exit status.
    Ran { exit: i32 },
    /// The runtime failed before the probe could report.
    Failed {
        /// `run`, `create`, `start`, `exec`, or the CLI command.
        stage: String,
        class: String,
        exit: Option<i32>,
        message: String,
    },
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: Status,
    /// Named, normalized observations (only when the process ran).
    pub aspects: BTreeMap<String, String>,
}

impl Outcome {
    pub fn failed(stage: &str, exit: Option<i32>, stderr: &str) -> Outcome {
        Outcome::failed_with(stage, exit, stderr, &[])
    }
    /// `hints`: config values (a path) and the class a message naming
    /// them is about.
    pub fn failed_with(
        stage: &str,
        exit: Option<i32>,
        stderr: &str,
        hints: &[(String, &'static str)],
    ) -> Outcome {
        Outcome {
            status: Status::Failed {
                stage: stage.into(),
                class: classify(stderr, exit, hints),
                exit,
                message: last_error(stderr),
            },
            aspects: BTreeMap::new(),
        }
    }
    pub fn ran(&self) -> bool {
        matches!(self.status, Status::Ran { .. })
    }
    pub fn summary(&self) -> String {
        match &self.status {
            Status::Ran { exit } => format!("ran, exit {exit}"),
            Status::Failed {
                stage,
                class,
                exit,
                message,
            } => format!(
                "{stage} failed ({class}), exit {}: {message}",
                exit.map(|e| e.to_string()).unwrap_or("-".into())
            ),
        }
    }
}

/// The last error line a runtime printed, without log decorations.
pub fn last_error(stderr: &str) -> String {
    let line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.contains("level=warning"))
        .unwrap_or("")
        .trim();
    let line = match line.find("msg=\"") {
        Some(i) => line[i + 5..].trim_end_matches('"'),
        None => line,
    };
    line.chars().take(300).collect()
}

/// Reason classes of a failure, first match wins: what the message is
/// about, in words both runtimes use. `container-exit`/`container-signal`
/// when the runtime said nothing (the process itself ended early).
const SPECIFIC: &[(&str, &[&str])] = &[
    ("timeout", &["timed out", "timeout"]),
    ("hook", &["hook #", "running hook", "hook ran", "hooks."]),
    ("seccomp", &["seccomp", "syscall", "listenerpath", "scmp_"]),
    ("sysctl", &["sysctl", "/proc/sys/"]),
    ("rlimit", &["rlimit"]),
    ("oom-score", &["oom_score_adj", "oomscoreadj", "oom score"]),
    ("hostname", &["hostname", "domainname", "sethostname"]),
    ("cwd", &["cwd", "chdir", "working directory"]),
    (
        "user",
        &[
            "setup user",
            "unmapped user",
            "setresuid",
            "setresgid",
            "setgroups",
        ],
    ),
    ("capabilities", &["capabilit", "cap_", " caps"]),
    (
        "namespace",
        &[
            "namespace",
            " ns ",
            "netns",
            "setns",
            "uidmapping",
            "gidmapping",
            "mapping",
            // A parse error listing the namespace types.
            "expected one of `mount`",
        ],
    ),
    ("cgroup", &["cgroup"]),
    (
        "device",
        &[
            "device node",
            "create device",
            "host device",
            "device type",
            // A parse error listing the device types.
            "expected one of `a`, `b`, `c`",
        ],
    ),
    // A parse error naming no field of the above.
    (
        "config",
        &["unknown variant", "missing field", "no variant for"],
    ),
];

/// Classes of messages that name no specific field, after the hints.
const GENERIC: &[(&str, &[&str])] = &[
    (
        "mount",
        &[
            "mount",
            "rootfs",
            "pivot",
            "propagation",
            "masked",
            "readonly",
        ],
    ),
    ("device", &["device", "mknod"]),
    ("user", &["setuid", "setgid", "uid", "gid", "user"]),
    ("env", &["environment", "env ", "process.env"]),
    (
        "exec",
        &[
            "exec",
            "executable",
            "args",
            "no such file",
            "permission denied",
            "not found",
        ],
    ),
    (
        "config",
        &[
            "config", "json", "invalid", "unknown", "must", "parse", "spec",
        ],
    ),
    (
        "container-state",
        &[
            "does not exist",
            "no such container",
            "not running",
            "stopped",
        ],
    ),
];

pub fn classify(stderr: &str, exit: Option<i32>, hints: &[(String, &'static str)]) -> String {
    let err = last_error(stderr).to_lowercase();
    if err.is_empty() {
        return match exit {
            Some(c) if c >= 128 => "container-signal".into(),
            Some(_) => "container-exit".into(),
            None => "killed".into(),
        };
    }
    let find = |table: &[(&str, &[&str])]| {
        table
            .iter()
            .find(|(_, words)| words.iter().any(|w| err.contains(w)))
            .map(|(class, _)| class.to_string())
    };
    if let Some(c) = find(SPECIFIC) {
        return c;
    }
    if let Some((_, class)) = hints.iter().find(|(v, _)| err.contains(&v.to_lowercase())) {
        return class.to_string();
    }
    find(GENERIC).unwrap_or_else(|| "other".into())
}

/// Replaces what differs between two runs of one config by placeholders.
pub struct Normalizer {
    /// (concrete text, placeholder), longest first.
    pub subs: Vec<(String, String)>,
    /// Our own namespace links (`net:[4026531840]`) by /proc/self/ns name.
    pub host_ns: BTreeMap<String, String>,
    /// The helper's namespace links, when the case has a helper.
    pub helper_ns: BTreeMap<String, String>,
}

impl Normalizer {
    pub fn new(
        mut subs: Vec<(String, String)>,
        host_ns: BTreeMap<String, String>,
        helper_ns: BTreeMap<String, String>,
    ) -> Normalizer {
        subs.retain(|(from, _)| !from.is_empty());
        subs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        Normalizer {
            subs,
            host_ns,
            helper_ns,
        }
    }

    pub fn text(&self, s: &str) -> String {
        let mut s = s.to_string();
        for (from, to) in &self.subs {
            if s.contains(from.as_str()) {
                s = s.replace(from.as_str(), to);
            }
        }
        strip_inodes(&s)
    }

    fn value(&self, v: &Value) -> String {
        match v {
            Value::String(s) => self.text(s),
            Value::Null => "-".into(),
            other => self.text(&other.to_string()),
        }
    }

    /// The probe's JSON report as aspects.
    pub fn report(&self, r: &Value, prefix: &str) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            a.insert(format!("{prefix}{k}"), v);
        };
        for k in [
            "uid",
            "euid",
            "gid",
            "egid",
            "groups",
            "umask",
            "cwd",
            "args",
            "hostname",
            "domainname",
            "no_new_privs",
            "seccomp",
            "seccomp_filters",
            "oom_score_adj",
            "personality",
            "sched",
            "uid_map",
            "gid_map",
            "timens_offsets",
            "cgroup",
            "fds",
        ] {
            let v = &r[k];
            let s = match k {
                "uid_map" | "gid_map" => self
                    .value(v)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => self.value(v),
            };
            put(k, s);
        }
        // One aspect per variable (values in order): a variable one
        // runtime adds or drops is named, not the whole list.
        let mut env: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for kv in r["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
        {
            let (k, v) = kv.split_once('=').unwrap_or((kv, "(no =)"));
            env.entry(k.to_string()).or_default().push(self.text(v));
        }
        for (k, v) in env {
            put(&format!("env:{k}"), v.join("\n"));
        }
        let pid = r["pid"].as_i64().unwrap_or(-1);
        put("pid", if pid == 1 { "1".into() } else { "not-1".into() });
        put(
            "ppid",
            if r["ppid"] == 0 {
                "0".into()
            } else {
                "outside".into()
            },
        );
        for k in ["sid", "pgid"] {
            let v = r[k].as_i64().unwrap_or(-1);
            put(
                k,
                if v == pid {
                    "own".into()
                } else if v == 0 {
                    "0".into()
                } else {
                    "other".into()
                },
            );
        }
        for (set, v) in r["caps"].as_object().into_iter().flatten() {
            put(&format!("caps.{set}"), self.value(v));
        }
        for (k, v) in r["signals"].as_object().into_iter().flatten() {
            put(&format!("signals.{k}"), self.value(v));
        }
        for (k, v) in r["rlimits"].as_object().into_iter().flatten() {
            put(&format!("rlimit.{k}"), self.value(v));
        }
        for (k, v) in r["namespaces"].as_object().into_iter().flatten() {
            let link = v.as_str().unwrap_or("");
            let who = if self.host_ns.get(k).map(|h| h == link).unwrap_or(false) {
                "host"
            } else if self.helper_ns.get(k).map(|h| h == link).unwrap_or(false) {
                "helper"
            } else {
                "new"
            };
            put(&format!("ns.{k}"), who.into());
        }
        let mut tty = r["tty"].clone();
        if let Some(name) = tty["name"].as_str() {
            tty["name"] = Value::String(strip_inodes(name));
        }
        put("tty", self.value(&tty));
        for (target, line) in self.mounts(r["mountinfo"].as_str().unwrap_or("")) {
            put(&format!("mount:{target}"), line);
        }
        for (k, v) in r["probes"].as_object().into_iter().flatten() {
            if let Some(stage) = k
                .strip_prefix("read:/dev/shm/hook-")
                .and_then(|s| s.strip_suffix(".out"))
            {
                if let Some(text) = v.as_str() {
                    for (hk, hv) in self.hook(stage, text) {
                        put(&hk, hv);
                    }
                    continue;
                }
            }
            // The v1 device cgroup's exceptions are a set; the kernel
            // lists them in the order they were written.
            let v = match (k.ends_with("devices.list"), v.as_str()) {
                (true, Some(text)) => {
                    let mut lines: Vec<&str> = text.lines().collect();
                    lines.sort();
                    Value::String(lines.join("\n"))
                }
                _ => v.clone(),
            };
            // A directory listing: one aspect per entry.
            if let (Some(dir), Some(entries)) = (k.strip_prefix("lsl:"), v.as_object()) {
                for (name, st) in entries {
                    put(
                        &format!("probe:lsl:{}/{name}", dir.trim_end_matches('/')),
                        self.value(st),
                    );
                }
                continue;
            }
            put(&format!("probe:{k}"), self.value(&v));
        }
        a
    }

    /// mountinfo by mount point: root, options, propagation, type, source
    /// and super options (ids and device numbers dropped); mounts stacked
    /// on one point are kept in order.
    pub fn mounts(&self, mountinfo: &str) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let l: Vec<&str> = left.split_whitespace().collect();
            if l.len() < 6 {
                continue;
            }
            let optional: Vec<&str> = l[6..]
                .iter()
                .map(|o| o.split(':').next().unwrap_or(o))
                .collect();
            let desc = format!(
                "{} {} [{}] {}",
                self.text(l[3]),
                l[5],
                optional.join(","),
                self.text(right)
            );
            let target = self.text(l[4]);
            out.entry(target)
                .and_modify(|s| {
                    s.push_str(" + ");
                    s.push_str(&desc);
                })
                .or_insert(desc);
        }
        out
    }
}

impl Normalizer {
    /// What a recording hook wrote (variations.rs `recording_hook`): its
    /// arguments, working directory, environment and each field of the
    /// state it was given, as `hook:STAGE:...` aspects. The container's
    /// host pid becomes `PID` (pid 1 stays), timestamps `<time>`.
    pub fn hook(&self, stage: &str, text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let key = |k: &str| format!("hook:{stage}:{k}");
        for line in text.lines() {
            if let Some(args) = line.strip_prefix("args: ") {
                out.push((key("args"), self.text(args)));
            } else if let Some(env) = line.strip_prefix("env: ") {
                let mut vars: Vec<String> = Vec::new();
                for kv in env.split_whitespace() {
                    match kv.strip_prefix("PWD=") {
                        Some(pwd) => out.push((key("cwd"), self.text(pwd))),
                        None if kv.starts_with("SHLVL=") => {}
                        None => vars.push(self.text(kv)),
                    }
                }
                out.push((key("env"), vars.join(" ")));
            } else if let Some(state) = line.strip_prefix("state: ") {
                let v: Value = serde_json::from_str(state).unwrap_or(Value::Null);
                for (k, field) in v.as_object().into_iter().flatten() {
                    let shown = match (k.as_str(), field) {
                        ("pid", Value::Number(n)) if n.as_i64() == Some(1) => "1".to_string(),
                        ("pid", _) => "PID".to_string(),
                        ("created", _) => "<time>".to_string(),
                        _ => self.value(field),
                    };
                    out.push((key(&format!("state.{k}")), shown));
                }
                out.push((key("state"), "given".into()));
            }
        }
        out
    }
}

/// `pipe:[123]`, `socket:[4]`, `net:[4026531840]` lose their numbers.
pub fn strip_inodes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(":[") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let digits = tail[2..].chars().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 && tail[2 + digits..].starts_with(']') {
            out.push_str(":[N]");
            rest = &tail[3 + digits..];
        } else {
            out.push_str(":[");
            rest = &tail[2..];
        }
    }
    out.push_str(rest);
    out
}

/// One aspect in which the runtimes differ.
#[derive(Clone, Debug)]
pub struct Diff {
    pub aspect: String,
    pub runc: String,
    pub berth: String,
}

/// The differences between runc's outcome and berth's: `outcome` when one
/// ran and the other failed; `error-class` and `exit-code` when both
/// failed; `exit-code` and every differing aspect when both ran.
pub fn diff(runc: &Outcome, berth: &Outcome) -> Vec<Diff> {
    let mut out = Vec::new();
    let d = |aspect: &str, a: String, b: String| Diff {
        aspect: aspect.into(),
        runc: a,
        berth: b,
    };
    match (&runc.status, &berth.status) {
        (Status::Ran { exit: a }, Status::Ran { exit: b }) => {
            if a != b {
                out.push(d("exit-code", a.to_string(), b.to_string()));
            }
            let keys: std::collections::BTreeSet<&String> =
                runc.aspects.keys().chain(berth.aspects.keys()).collect();
            for k in keys {
                let a = runc
                    .aspects
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| "(none)".into());
                let b = berth
                    .aspects
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| "(none)".into());
                if a != b {
                    out.push(d(k, a, b));
                }
            }
        }
        (
            Status::Failed {
                stage: sa,
                class: ca,
                exit: ea,
                ..
            },
            Status::Failed {
                stage: sb,
                class: cb,
                exit: eb,
                ..
            },
        ) => {
            if (sa, ca) != (sb, cb) {
                out.push(d(
                    "error-class",
                    format!("{sa}: {ca}"),
                    format!("{sb}: {cb}"),
                ));
            }
            if ea != eb {
                out.push(d("exit-code", format!("{ea:?}"), format!("{eb:?}")));
            }
        }
        _ => out.push(d("outcome", runc.summary(), berth.summary())),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inode_numbers_and_paths_are_normalized() {
        assert_eq!(
            strip_inodes("pipe:[123] net:[4] a:[b]"),
            "pipe:[N] net:[N] a:[b]"
        );
        let n = Normalizer::new(
            vec![
                ("/tmp/w/1/runc".into(), "<case>".into()),
                ("/tmp/w".into(), "<work>".into()),
            ],
            BTreeMap::new(),
            BTreeMap::new(),
        );
        assert_eq!(
            n.text("/tmp/w/1/runc/bundle and /tmp/w/x"),
            "<case>/bundle and <work>/x"
        );
    }

    #[test]
    fn mountinfo_keeps_what_matters() {
        let n = Normalizer::new(vec![], BTreeMap::new(), BTreeMap::new());
        let m = n.mounts(
            "91 115 254:0 /r / rw,relatime - ext4 /dev/vda rw\n\
             93 91 0:43 / /proc rw,relatime shared:5 - proc proc rw\n\
             94 91 0:44 / /proc rw - tmpfs tmpfs ro\n",
        );
        assert_eq!(m["/"], "/r rw,relatime [] ext4 /dev/vda rw");
        assert_eq!(
            m["/proc"],
            "/ rw,relatime [shared] proc proc rw + / rw [] tmpfs tmpfs ro"
        );
    }

    #[test]
    fn failures_are_classified_by_what_they_name() {
        let runc = "time=\"x\" level=error msg=\"runc run failed: unable to start container process: error during container init: error setting rlimits for ready process: error setting rlimit type 7: operation not permitted\"";
        assert_eq!(classify(runc, Some(1), &[]), "rlimit");
        assert_eq!(classify("", Some(159), &[]), "container-signal");
        assert_eq!(classify("", Some(3), &[]), "container-exit");
        let hints = [("/data/x".to_string(), "cwd")];
        assert_eq!(
            classify("error: mkdir /data/x: not a directory", Some(1), &hints),
            "cwd"
        );
        assert_eq!(
            classify("error: mkdir /data/y: not a directory", Some(1), &hints),
            "other"
        );
        assert_eq!(last_error("a\nb\n\n"), "b");
    }

    #[test]
    fn diff_names_outcome_or_aspects() {
        let ran = |env: &str| Outcome {
            status: Status::Ran { exit: 0 },
            aspects: [("env".to_string(), env.to_string())].into_iter().collect(),
        };
        assert!(diff(&ran("a"), &ran("a")).is_empty());
        assert_eq!(diff(&ran("a"), &ran("b"))[0].aspect, "env");
        let failed = Outcome::failed("run", Some(1), "error: bad cwd");
        assert_eq!(diff(&ran("a"), &failed)[0].aspect, "outcome");
        let other = Outcome::failed("run", Some(255), "error: chdir failed");
        let d = diff(&failed, &other);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].aspect, "exit-code");
        let _ = json!({});
    }
}
