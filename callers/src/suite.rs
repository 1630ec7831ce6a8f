//! Checks, run once with runc and once with berth, and the table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::proc::{run_pty, Cmd, Out, Step};
use crate::record;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Rt {
    Runc,
    Berth,
}

impl Rt {
    pub const ALL: [Rt; 2] = [Rt::Runc, Rt::Berth];
    pub fn name(self) -> &'static str {
        match self {
            Rt::Runc => "runc",
            Rt::Berth => "berth",
        }
    }
    pub fn idx(self) -> usize {
        self as usize
    }
}

/// One runtime as a caller sees it.
#[derive(Clone)]
pub struct RtInfo {
    /// The recording launcher the caller is given.
    pub launcher: PathBuf,
    /// Where that launcher records.
    pub rec: PathBuf,
}

/// What one check leaves for a later check with the same runtime (a
/// container id, say): checks of one caller form a scenario.
#[derive(Default)]
pub struct Scene {
    vals: HashMap<String, String>,
}

impl Scene {
    pub fn set(&mut self, k: &str, v: &str) {
        self.vals.insert(k.into(), v.into());
    }
    pub fn get(&self, k: &str) -> Result<String, String> {
        self.vals
            .get(k)
            .cloned()
            .ok_or_else(|| format!("needs `{k}` from an earlier check, which failed"))
    }
    pub fn take(&mut self, k: &str) -> Option<String> {
        self.vals.remove(k)
    }
}

pub type CheckResult = Result<String, String>;

pub struct Check<S> {
    pub name: &'static str,
    pub run: fn(&S, Rt, &mut Scene) -> CheckResult,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub ok: bool,
    pub detail: String,
    pub secs: f64,
    pub calls: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub res: [Outcome; 2],
}

impl Row {
    /// berth fails what runc passes.
    pub fn gate_fails(&self) -> bool {
        self.res[0].ok && !self.res[1].ok
    }
    pub fn calls_same(&self) -> bool {
        self.res[0].calls == self.res[1].calls
    }
}

pub struct Report {
    pub caller: String,
    pub versions: String,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    pub secs: f64,
    pub setup_error: Option<String>,
    /// Checks run with neither runtime: (check, why) — what they need is
    /// missing here (CRIU that passes `criu check`).
    pub skipped: Vec<(String, String)>,
}

impl Report {
    /// A caller's report: `setup`, then (if that worked) `checks` fills in
    /// the versions, rows and notes; timed as a whole.
    pub fn run<S>(
        caller: &str,
        setup: impl FnOnce() -> Result<S, String>,
        checks: impl FnOnce(&S, &mut Report),
    ) -> Report {
        let t0 = Instant::now();
        let mut report = Report {
            caller: caller.into(),
            versions: String::new(),
            rows: Vec::new(),
            notes: Vec::new(),
            secs: 0.0,
            setup_error: None,
            skipped: Vec::new(),
        };
        match setup() {
            Ok(s) => checks(&s, &mut report),
            Err(e) => report.setup_error = Some(e),
        }
        report.secs = t0.elapsed().as_secs_f64();
        report
    }
}

/// `--filter`: does it select the check named `name`?
pub fn selects(filter: &Option<String>, name: &str) -> bool {
    filter.as_deref().is_none_or(|f| name.contains(f))
}

/// The checks `--filter` selects.
pub fn selected<S>(filter: &Option<String>, checks: Vec<Check<S>>) -> Vec<Check<S>> {
    checks
        .into_iter()
        .filter(|c| selects(filter, c.name))
        .collect()
}

/// Run every check with runc, then with berth, tagging the recorder so that
/// each check's runtime calls can be told apart.
pub fn run_checks<S>(
    caller: &str,
    suite: &S,
    rts: &[RtInfo; 2],
    checks: &[Check<S>],
    progress: &dyn Fn(&str),
) -> Vec<Row> {
    let mut scenes = [Scene::default(), Scene::default()];
    let mut rows = Vec::new();
    for c in checks {
        let mut res = Vec::new();
        for rt in Rt::ALL {
            record::set_tag(&rts[rt.idx()].rec, c.name);
            let t0 = Instant::now();
            let r = (c.run)(suite, rt, &mut scenes[rt.idx()]);
            let secs = t0.elapsed().as_secs_f64();
            let (ok, detail) = match r {
                Ok(d) => (true, d),
                Err(e) => (false, e),
            };
            res.push(Outcome {
                ok,
                detail,
                secs,
                calls: Vec::new(),
            });
        }
        let [a, b]: [Outcome; 2] = res.try_into().unwrap();
        progress(&format!(
            "{caller}: {:<34} runc {} ({:.1}s)  berth {} ({:.1}s)",
            c.name,
            if a.ok { "ok" } else { "FAIL" },
            a.secs,
            if b.ok { "ok" } else { "FAIL" },
            b.secs
        ));
        for (rt, o) in [("runc", &a), ("berth", &b)] {
            if o.ok && !o.detail.is_empty() {
                progress(&format!("{caller}:   {rt}: {}", o.detail));
            }
        }
        rows.push(Row {
            name: c.name.to_string(),
            res: [a, b],
        });
    }
    for rt in Rt::ALL {
        record::set_tag(&rts[rt.idx()].rec, "(after the checks)");
    }
    // Late calls (a delete after the caller returned) still land under the
    // right tag: give them a moment.
    std::thread::sleep(Duration::from_millis(500));
    attach_calls(&mut rows, rts);
    rows
}

/// Fill each outcome's call summary from the recordings.
pub fn attach_calls(rows: &mut [Row], rts: &[RtInfo; 2]) {
    for rt in Rt::ALL {
        let calls = record::read_calls(&rts[rt.idx()].rec);
        for row in rows.iter_mut() {
            let mine: Vec<&record::Call> = calls
                .iter()
                .filter(|c| c.tag == row.name && c.cmd != "version")
                .collect();
            row.res[rt.idx()].calls = record::summary(&mine);
        }
    }
}

fn cell(o: &Outcome) -> String {
    if o.ok {
        "ok".into()
    } else {
        "FAIL".into()
    }
}

/// The per-caller table and what explains it.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "\n=== {} ({}) — {:.0}s ===\n",
        r.caller, r.versions, r.secs
    ));
    if let Some(e) = &r.setup_error {
        s.push_str(&format!("SETUP FAILED: {e}\n"));
    }
    let w = r
        .rows
        .iter()
        .map(|x| x.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    s.push_str(&format!("{:<w$} | runc | berth | runtime calls\n", "check"));
    s.push_str(&format!("{:-<w$}-|------|-------|--------------\n", ""));
    for row in &r.rows {
        let calls = if row.res[0].calls.is_empty() && row.res[1].calls.is_empty() {
            "-"
        } else if row.calls_same() {
            "same"
        } else {
            "differ"
        };
        s.push_str(&format!(
            "{:<w$} | {:<4} | {:<5} | {}\n",
            row.name,
            cell(&row.res[0]),
            cell(&row.res[1]),
            calls
        ));
    }
    let berth_fail: Vec<&Row> = r.rows.iter().filter(|x| x.gate_fails()).collect();
    if !berth_fail.is_empty() {
        s.push_str("\nberth fails where runc passes:\n");
        for row in berth_fail {
            s.push_str(&format!("  - {}: {}\n", row.name, row.res[1].detail));
            s.push_str(&format!(
                "      berth calls: {}\n",
                row.res[1].calls.join(", ")
            ));
            s.push_str(&format!(
                "      runc calls:  {}\n",
                row.res[0].calls.join(", ")
            ));
        }
    }
    let runc_fail: Vec<&Row> = r.rows.iter().filter(|x| !x.res[0].ok).collect();
    if !runc_fail.is_empty() {
        s.push_str("\nrunc fails here (not held against berth):\n");
        for row in runc_fail {
            s.push_str(&format!(
                "  - {}: runc: {}{}\n",
                row.name,
                row.res[0].detail,
                if row.res[1].ok {
                    String::new()
                } else {
                    format!("; berth: {}", row.res[1].detail)
                }
            ));
        }
    }
    let differ: Vec<&Row> = r
        .rows
        .iter()
        .filter(|x| !x.calls_same() && !x.gate_fails())
        .collect();
    if !differ.is_empty() {
        s.push_str("\nruntime calls that differ (same check, runc vs berth):\n");
        for row in differ {
            s.push_str(&format!("  - {}:\n", row.name));
            s.push_str(&format!("      runc:  {}\n", row.res[0].calls.join(", ")));
            s.push_str(&format!("      berth: {}\n", row.res[1].calls.join(", ")));
        }
    }
    if !r.skipped.is_empty() {
        s.push_str("\nskipped here (run with neither runtime):\n");
        for (name, why) in &r.skipped {
            s.push_str(&format!("  - {name}: {why}\n"));
        }
    }
    if !r.notes.is_empty() {
        s.push_str("\nnotes:\n");
        for n in &r.notes {
            s.push_str(&format!("  - {n}\n"));
        }
    }
    s
}

/// A check's own waiting: poll `f` until it returns Some or `secs` pass.
pub fn poll<T>(secs: f64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fail unless `got` contains `want`.
pub fn expect_contains(what: &str, got: &str, want: &str) -> Result<(), String> {
    if got.contains(want) {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {want:?} in {:?}",
            crate::proc::last_lines(got.trim(), 6)
        ))
    }
}

pub fn expect_eq<T: PartialEq + std::fmt::Debug>(
    what: &str,
    got: T,
    want: T,
) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, expected {want:?}"))
    }
}

/// Host-side cgroup v1 file of a process: `/sys/fs/cgroup/<controller>/<path>/<file>`.
pub fn cgroup_file(pid: &str, controller: &str, file: &str) -> Result<PathBuf, String> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("read /proc/{pid}/cgroup: {e}"))?;
    for l in cg.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrls.split(',').any(|c| c == controller) {
            return Ok(Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(path.trim_start_matches('/'))
                .join(file));
        }
    }
    Err(format!("process {pid} has no {controller} cgroup"))
}

pub fn read_trim(p: &Path) -> Result<String, String> {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("read {}: {e}", p.display()))
}

/// Pids in the cgroup (pids controller) of `pid`.
pub fn cgroup_pids(pid: &str) -> Result<Vec<i32>, String> {
    let f = cgroup_file(pid, "pids", "cgroup.procs")?;
    Ok(read_trim(&f)?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Fail if `runtime --root root state id` still knows the container.
pub fn state_gone(runtime: &Path, root: &Path, id: &str) -> Result<(), String> {
    let o = crate::proc::Cmd::new(&[
        runtime.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "state",
        id,
    ])
    .timeout(10)
    .run();
    if o.code == 0 {
        return Err(format!(
            "the runtime still has container {id} (in {})",
            root.display()
        ));
    }
    if !root.exists() {
        return Err(format!(
            "the runtime's root {} is not there: wrong root?",
            root.display()
        ));
    }
    Ok(())
}

/// Is `pid` alive (not a zombie) and still running `marker` in its cmdline?
pub fn alive_with(pid: i32, marker: &str) -> bool {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
    crate::cleanup::stat(pid).is_some_and(|(_, _, st)| st != 'Z') && cmd.contains(marker)
}

/// What an `exec` with a terminal runs: a typed line, then its tty.
pub const EXEC_TTY_SCRIPT: &str = "echo ready; read x; echo got:$x; tty";

/// `cmd` on a 40x120 pseudo-terminal, typing a line once it says `ready`.
pub fn run_typed_pty(cmd: &Cmd) -> Out {
    run_pty(
        cmd,
        40,
        120,
        &[Step {
            expect: "ready",
            send: "typed\r",
        }],
    )
}

/// The result of [`EXEC_TTY_SCRIPT`] run by [`run_typed_pty`].
pub fn exec_tty_result(o: &Out) -> CheckResult {
    expect_eq("exit code", o.code, 0).map_err(|e| format!("{e}: {} {:?}", o.stderr, o.stdout))?;
    expect_contains("terminal", &o.stdout, "got:typed")?;
    expect_contains("tty", &o.stdout, "/dev/pts/")?;
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(ok: bool, calls: &[&str]) -> Outcome {
        Outcome {
            ok,
            detail: if ok { String::new() } else { "boom".into() },
            secs: 0.0,
            calls: calls.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn gate_is_berth_failing_what_runc_passes() {
        let r = |a, b| Row {
            name: "x".into(),
            res: [o(a, &[]), o(b, &[])],
        };
        assert!(r(true, false).gate_fails());
        assert!(!r(false, false).gate_fails());
        assert!(!r(false, true).gate_fails());
        assert!(!r(true, true).gate_fails());
    }

    #[test]
    fn table_marks_failures_and_differing_calls() {
        let rep = Report {
            caller: "docker".into(),
            versions: "v".into(),
            rows: vec![
                Row {
                    name: "run".into(),
                    res: [
                        o(true, &["create -> 0"]),
                        o(false, &["create -> 0", "start -> 1"]),
                    ],
                },
                Row {
                    name: "exec".into(),
                    res: [o(false, &[]), o(true, &[])],
                },
            ],
            notes: vec![],
            secs: 1.0,
            setup_error: None,
            skipped: vec![("checkpoint".into(), "no CRIU".into())],
        };
        let t = render(&rep);
        assert!(t.contains("run   | ok   | FAIL  | differ"));
        assert!(t.contains("berth fails where runc passes:\n  - run: boom"));
        assert!(t.contains("runc fails here"));
        assert!(t.contains("start -> 1"));
        assert!(t.contains("skipped here (run with neither runtime):\n  - checkpoint: no CRIU"));
    }

    #[test]
    fn filter_selects_by_name() {
        assert!(selects(&None, "anything"));
        let f = Some("checkpoint".to_string());
        assert!(selects(&f, "checkpoint + restore"));
        assert!(!selects(&f, "run: output"));
    }

    #[test]
    fn scene_reports_missing_values() {
        let mut s = Scene::default();
        assert!(s.get("c").unwrap_err().contains("`c`"));
        s.set("c", "1");
        assert_eq!(s.get("c").unwrap(), "1");
    }
}
