//! What a case is, and the context it runs in: a fresh bundle, the runtime
//! driver, the reaper, and the assertions it records.

use crate::bundle;
use crate::reaper::{Exit, Reaper};
use crate::runtime::{Output, Runtime, Stdio3};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// The spec's requirement level a case checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Must,
    Should,
    /// Not a spec keyword: behaviour of runc that callers rely on.
    Runc,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::Runc => "runc",
        }
    }
}

/// One conformance case: a requirement, how to check it, and how to break it.
pub struct Case {
    /// Stable id, `area.what` (also what `--filter` matches).
    pub id: &'static str,
    /// Where the requirement is, e.g. `config.md#hostname`.
    pub section: &'static str,
    pub level: Level,
    /// The requirement, paraphrased from the spec.
    pub requirement: &'static str,
    /// Extra tags: `cgroup-v1`, `cgroup-v2`, `spec-1.2`, ...
    pub tags: &'static [&'static str],
    /// Set when runc (and berth, deliberately) differ from the spec here.
    pub deviation: Option<&'static str>,
    /// How `oci-mutant` breaks exactly what this case checks (see mutant.rs).
    pub mutant: Option<&'static str>,
    /// Prove the mutant on crun instead of runc (runc cannot pass the case
    /// here, so breaking it under runc would prove nothing).
    pub mutant_on_crun: bool,
    pub run: fn(&mut Ctx),
}

/// One TAP line.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub name: String,
    /// `None` when skipped.
    pub passed: Option<bool>,
    pub detail: String,
}

/// What the checker printed, and how the container's process ended.
pub struct Report {
    pub json: Value,
    pub exit: Option<Exit>,
}

impl Report {
    pub fn get(&self, pointer: &str) -> &Value {
        self.json.pointer(pointer).unwrap_or(&Value::Null)
    }
    pub fn str(&self, pointer: &str) -> String {
        match self.get(pointer) {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            v => v.to_string(),
        }
    }
    pub fn probe(&self, probe: &str) -> &Value {
        self.json
            .get("probes")
            .and_then(|p| p.get(probe))
            .unwrap_or(&Value::Null)
    }
    /// Parsed /proc/self/mountinfo.
    pub fn mounts(&self) -> Vec<MountInfo> {
        self.str("/mountinfo")
            .lines()
            .filter_map(MountInfo::parse)
            .collect()
    }
    /// The last (visible) mount at `target`.
    pub fn mount_at(&self, target: &str) -> Option<MountInfo> {
        self.mounts().into_iter().rev().find(|m| m.target == target)
    }
}

/// One line of mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub target: String,
    pub root: String,
    pub options: Vec<String>,
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    pub super_options: Vec<String>,
}

impl MountInfo {
    pub fn parse(line: &str) -> Option<MountInfo> {
        let (left, right) = line.split_once(" - ")?;
        let l: Vec<&str> = left.split_whitespace().collect();
        let r: Vec<&str> = right.split_whitespace().collect();
        if l.len() < 6 || r.len() < 3 {
            return None;
        }
        Some(MountInfo {
            root: unescape(l[3]),
            target: unescape(l[4]),
            options: l[5].split(',').map(String::from).collect(),
            optional: l[6..].iter().map(|s| s.to_string()).collect(),
            fstype: r[0].to_string(),
            source: r[1].to_string(),
            super_options: r[2].split(',').map(String::from).collect(),
        })
    }
    pub fn has_opt(&self, opt: &str) -> bool {
        self.options.iter().any(|o| o == opt) || self.super_options.iter().any(|o| o == opt)
    }
    pub fn propagation(&self) -> &'static str {
        if self.optional.iter().any(|o| o.starts_with("shared:")) {
            "shared"
        } else if self.optional.iter().any(|o| o.starts_with("master:")) {
            "slave"
        } else if self.optional.iter().any(|o| o == "unbindable") {
            "unbindable"
        } else {
            "private"
        }
    }
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
}

/// Default timeout of one runtime command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a container's process may take to finish on its own.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a case needs. One per case run.
pub struct Ctx<'a> {
    pub runtime: &'a Runtime,
    pub reaper: &'a mut Reaper,
    /// The container id (unique per run and case).
    pub id: String,
    pub bundle: PathBuf,
    pub config: Value,
    pub assertions: Vec<Assertion>,
    /// Every container id this case may have created (deleted afterwards).
    pub ids: Vec<String>,
    calls: usize,
}

impl<'a> Ctx<'a> {
    pub fn new(
        runtime: &'a Runtime,
        reaper: &'a mut Reaper,
        id: String,
        bundle: PathBuf,
    ) -> Ctx<'a> {
        let config = bundle::default_config(&id, &runtime.oci_version);
        Ctx {
            runtime,
            reaper,
            ids: vec![id.clone()],
            id,
            bundle,
            config,
            assertions: Vec::new(),
            calls: 0,
        }
    }

    // ---- assertions ----

    /// Records one assertion.
    pub fn check(&mut self, name: impl Into<String>, passed: bool, detail: impl Into<String>) {
        self.assertions.push(Assertion {
            name: name.into(),
            passed: Some(passed),
            detail: if passed { String::new() } else { detail.into() },
        });
    }

    /// Records `actual == expected`.
    pub fn check_eq<T: PartialEq + std::fmt::Debug>(
        &mut self,
        name: impl Into<String>,
        actual: T,
        expected: T,
    ) {
        let passed = actual == expected;
        self.check(
            name,
            passed,
            format!("expected {expected:?}, got {actual:?}"),
        );
    }

    pub fn skip(&mut self, name: impl Into<String>, reason: impl Into<String>) {
        self.assertions.push(Assertion {
            name: name.into(),
            passed: None,
            detail: reason.into(),
        });
    }

    // ---- config ----

    /// Sets a config field by JSON pointer, creating objects on the way.
    pub fn set(&mut self, pointer: &str, value: Value) {
        crate::jsonptr::set(&mut self.config, pointer, value);
    }

    pub fn remove(&mut self, pointer: &str) {
        crate::jsonptr::remove(&mut self.config, pointer);
    }

    /// Appends to an array field (creating it).
    pub fn push(&mut self, pointer: &str, value: Value) {
        crate::jsonptr::push(&mut self.config, pointer, value);
    }

    pub fn set_args(&mut self, args: &[&str]) {
        self.set("/process/args", serde_json::json!(args));
    }

    /// Checker with probes as the container's process.
    pub fn checker(&mut self, probes: &[&str]) {
        let mut args = vec!["/checker"];
        args.extend_from_slice(probes);
        self.set_args(&args);
    }

    pub fn write_config(&self) -> Result<(), String> {
        let path = self.bundle.join("config.json");
        let text = serde_json::to_string_pretty(&self.config)
            .map_err(|e| format!("serialize config: {e}"))?;
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))
    }

    /// A host path inside the bundle (hook outputs and such).
    pub fn path(&self, name: &str) -> PathBuf {
        self.bundle.join(name)
    }

    // ---- runtime operations ----

    fn io(&mut self, tag: &str) -> Stdio3 {
        self.calls += 1;
        let logs = self.bundle.join("log");
        let _ = std::fs::create_dir_all(&logs);
        Stdio3 {
            stdout: logs.join(format!("{:02}-{tag}.out", self.calls)),
            stderr: logs.join(format!("{:02}-{tag}.err", self.calls)),
        }
    }

    /// Runs the runtime with arbitrary arguments.
    pub fn rt(&mut self, args: &[&str]) -> Output {
        let tag = args.first().copied().unwrap_or("none").to_string();
        let io = self.io(&tag);
        self.runtime.run_with(args, &io, COMMAND_TIMEOUT)
    }

    /// `create --bundle B ID` after writing the config; the container's
    /// stdout/stderr go to `container.out`/`container.err` in the bundle.
    pub fn create(&mut self) -> Output {
        let id = self.id.clone();
        self.create_id(&id)
    }

    pub fn create_id(&mut self, id: &str) -> Output {
        self.create_with(id, &[])
    }

    /// `create` with extra flags (e.g. `--console-socket PATH`) before the id.
    pub fn create_with(&mut self, id: &str, extra: &[&str]) -> Output {
        if let Err(e) = self.write_config() {
            return Output {
                code: None,
                stdout: String::new(),
                stderr: e,
                timed_out: false,
                command: "write config".into(),
            };
        }
        if !self.ids.iter().any(|i| i == id) {
            self.ids.push(id.to_string());
        }
        let io = Stdio3 {
            stdout: self.bundle.join("container.out"),
            stderr: self.bundle.join("container.err"),
        };
        self.calls += 1;
        let bundle = self.bundle.display().to_string();
        let mut args = vec!["create", "--bundle", bundle.as_str()];
        args.extend_from_slice(extra);
        args.push(id);
        self.runtime.run_with(&args, &io, COMMAND_TIMEOUT)
    }

    pub fn start(&mut self) -> Output {
        let id = self.id.clone();
        self.rt(&["start", &id])
    }

    pub fn kill(&mut self, signal: &str) -> Output {
        let id = self.id.clone();
        self.rt(&["kill", &id, signal])
    }

    pub fn delete(&mut self) -> Output {
        let id = self.id.clone();
        self.rt(&["delete", &id])
    }

    /// `state ID`, parsed. Err carries the runtime's diagnostics.
    pub fn state(&mut self) -> Result<Value, String> {
        let id = self.id.clone();
        let out = self.rt(&["state", &id]);
        if !out.ok() {
            return Err(out.describe());
        }
        serde_json::from_str(&out.stdout)
            .map_err(|e| format!("state output is not JSON ({e}): {}", out.stdout.trim()))
    }

    pub fn status(&mut self) -> String {
        self.state()
            .ok()
            .and_then(|s| s.get("status").and_then(|v| v.as_str()).map(String::from))
            .unwrap_or_default()
    }

    pub fn pid(&mut self) -> Option<i32> {
        self.state()
            .ok()
            .and_then(|s| s.get("pid").and_then(|p| p.as_i64()))
            .map(|p| p as i32)
    }

    /// Creates the container, asserting it worked; returns its pid.
    pub fn create_ok(&mut self) -> Option<i32> {
        let out = self.create();
        if !out.ok() {
            self.check("runtime creates the container", false, out.describe());
            return None;
        }
        let pid = self.pid();
        if pid.is_none() {
            self.check(
                "state reports the container's pid",
                false,
                "no pid in state",
            );
        }
        pid
    }

    /// create + start, asserting both worked; returns the container's pid.
    pub fn run_ok(&mut self) -> Option<i32> {
        let pid = self.create_ok()?;
        let out = self.start();
        if !out.ok() {
            self.check("runtime starts the container", false, out.describe());
            return None;
        }
        Some(pid)
    }

    /// Waits for the container's process (our re-parented child) to end.
    pub fn wait_exit(&mut self, pid: i32) -> Option<Exit> {
        self.reaper.wait(pid, EXIT_TIMEOUT)
    }

    /// Runs the configured process to completion and parses the checker's
    /// report from its stdout. Records a failed assertion when it cannot.
    pub fn run_checker(&mut self) -> Option<Report> {
        let pid = self.run_ok()?;
        let exit = self.wait_exit(pid);
        if exit.is_none() {
            self.check(
                "container process exits on its own",
                false,
                "still running after 10s",
            );
        }
        let out = std::fs::read_to_string(self.bundle.join("container.out")).unwrap_or_default();
        let line = out.lines().find(|l| l.starts_with('{')).unwrap_or("");
        match serde_json::from_str::<Value>(line) {
            Ok(json) => Some(Report { json, exit }),
            Err(_) => {
                let err =
                    std::fs::read_to_string(self.bundle.join("container.err")).unwrap_or_default();
                self.check(
                    "checker reports from inside the container",
                    false,
                    format!(
                        "no report (process {}); stdout: {:?}; stderr: {:?}",
                        exit.map(|e| e.to_string()).unwrap_or_default(),
                        out.chars().take(200).collect::<String>(),
                        err.chars().take(300).collect::<String>()
                    ),
                );
                None
            }
        }
    }

    /// `run_checker` with these probes.
    pub fn probe(&mut self, probes: &[&str]) -> Option<Report> {
        self.checker(probes);
        self.run_checker()
    }

    /// Starts a long-running checker (`hold`) and waits for its report.
    pub fn run_holding(&mut self, probes: &[&str]) -> Option<(i32, Report)> {
        let mut p = probes.to_vec();
        p.push("hold");
        self.checker(&p);
        let pid = self.run_ok()?;
        for _ in 0..400 {
            let out =
                std::fs::read_to_string(self.bundle.join("container.out")).unwrap_or_default();
            if let Some(line) = out.lines().find(|l| l.starts_with('{')) {
                if let Ok(json) = serde_json::from_str::<Value>(line) {
                    return Some((pid, Report { json, exit: None }));
                }
            }
            if self.reaper.has_exited(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.check(
            "checker reports from inside the container",
            false,
            "no report from a holding container",
        );
        None
    }

    /// Best-effort removal of every container this case created.
    pub fn cleanup(&mut self) {
        let cleaner = self.runtime.cleaner();
        for id in self.ids.clone() {
            let io = self.io("cleanup");
            let _ = cleaner.run_with(&["delete", "--force", &id], &io, COMMAND_TIMEOUT);
        }
    }
}
