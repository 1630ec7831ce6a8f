//! The recording wrapper (`callers/record-runtime`): launchers that callers
//! get as their runtime, and reading back what was recorded.

use std::path::{Path, PathBuf};

use crate::proc::Cmd;

/// The wrapper script in this checkout.
pub fn wrapper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("record-runtime")
}

/// Write `out`, a launcher that records into `dir` and runs `real` (with
/// `--root root` first when the caller passes none and `root` is given).
pub fn make_launcher(
    out: &Path,
    real: &Path,
    dir: &Path,
    root: Option<&Path>,
) -> Result<(), String> {
    let w = wrapper();
    let mut c = Cmd::new(&[w.to_str().unwrap(), "--make-launcher"])
        .arg(out.to_str().unwrap())
        .arg(real.to_str().unwrap())
        .arg(dir.to_str().unwrap());
    if let Some(r) = root {
        c = c.arg(r.to_str().unwrap());
    }
    c.timeout(10).run().check().map(|_| ())
}

/// Mark the calls that follow as belonging to `tag` (a check's name).
pub fn set_tag(dir: &Path, tag: &str) {
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join("TAG"), tag);
}

/// The tag the calls are recorded under now.
pub fn current_tag(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("TAG")).unwrap_or_default()
}

/// One recorded runtime call.
#[derive(Debug, Clone)]
pub struct Call {
    pub dir: PathBuf,
    pub start: u128,
    pub argv: Vec<String>,
    pub cmd: String,
    pub exit: Option<i32>,
    pub tag: String,
    /// What the call appended to its --log file.
    pub log: String,
    /// What it printed (state, ps, list, features, --version only).
    pub stdout: String,
}

fn nul_split(b: &[u8]) -> Vec<String> {
    b.split(|c| *c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// The command word: the first argument that is neither a global flag nor
/// a global flag's value.
pub fn command_of(argv: &[String]) -> String {
    match command_index(argv) {
        Some(i) if argv[i].starts_with('-') => "version".into(),
        Some(i) => argv[i].clone(),
        None => String::new(),
    }
}

fn command_index(argv: &[String]) -> Option<usize> {
    let mut skip = false;
    for (i, a) in argv.iter().enumerate() {
        if skip {
            skip = false;
            continue;
        }
        match a.as_str() {
            "--root" | "--log" | "--log-format" | "--criu" | "--rootless" => skip = true,
            "--version" | "-v" => return Some(i),
            s if s.starts_with('-') => {}
            _ => return Some(i),
        }
    }
    None
}

pub fn read_calls(dir: &Path) -> Vec<Call> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let start = name
            .split('-')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let argv = nul_split(&std::fs::read(p.join("argv")).unwrap_or_default());
        let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
        out.push(Call {
            start,
            cmd: command_of(&argv),
            argv,
            exit: read("exit").trim().parse().ok(),
            tag: read("tag").trim().to_string(),
            log: read("log"),
            stdout: read("stdout"),
            dir: p,
        });
    }
    out.sort_by_key(|c| c.start);
    out
}

impl Call {
    /// The command with its flags (no values) and, for kill, the signal;
    /// then the exit status: `kill --all 9 -> 1`.
    pub fn signature(&self) -> String {
        let mut words = vec![self.cmd.clone()];
        let mut positional = Vec::new();
        let from = command_index(&self.argv)
            .map(|i| i + 1)
            .unwrap_or(self.argv.len());
        for a in &self.argv[from..] {
            if a.starts_with('-') {
                words.push(a.split('=').next().unwrap_or(a).to_string());
            } else {
                positional.push(a.clone());
            }
        }
        if self.cmd == "kill" {
            if let Some(sig) = positional.last() {
                words.push(sig.clone());
            }
        }
        let exit = self
            .exit
            .map(|e| e.to_string())
            .unwrap_or_else(|| "?".into());
        match self.output_shape() {
            Some(shape) => format!("{} -> {exit} {shape}", words.join(" ")),
            None => format!("{} -> {exit}", words.join(" ")),
        }
    }

    /// The shape of what a caller parses from the runtime's output: `state`'s
    /// keys and status, `ps --format json`'s type. Values that differ from
    /// run to run (pids, times, paths) are left out.
    pub fn output_shape(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(self.stdout.trim()).ok()?;
        match (self.cmd.as_str(), &v) {
            ("state", serde_json::Value::Object(m)) => {
                let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
                keys.sort();
                Some(format!(
                    "{{{}; status={}}}",
                    keys.join(","),
                    m.get("status")?.as_str().unwrap_or("?")
                ))
            }
            ("ps", serde_json::Value::Array(a)) => Some(
                if a.iter().all(|x| x.is_i64()) {
                    "[pids]"
                } else {
                    "[not pids]"
                }
                .to_string(),
            ),
            ("ps", serde_json::Value::Null) => Some("null".into()),
            _ => None,
        }
    }

    /// The `msg` of every error line in the call's JSON log.
    pub fn log_errors(&self) -> Vec<String> {
        self.log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["level"] == "error")
            .filter_map(|v| v["msg"].as_str().map(str::to_string))
            .collect()
    }
}

impl Call {
    /// The container the call is about: the first argument after the
    /// command that is not a flag or a flag's value.
    pub fn container(&self) -> String {
        let Some(i) = command_index(&self.argv) else {
            return String::new();
        };
        let mut skip = false;
        for a in &self.argv[i + 1..] {
            if skip {
                skip = false;
                continue;
            }
            if a.starts_with('-') {
                // Flags of runc's commands that take a value.
                skip = !a.contains('=')
                    && matches!(
                        a.as_str(),
                        "--bundle"
                            | "-b"
                            | "--pid-file"
                            | "--console-socket"
                            | "--process"
                            | "-p"
                            | "--preserve-fds"
                            | "--cwd"
                            | "--env"
                            | "-e"
                            | "--user"
                            | "-u"
                            | "--cap"
                            | "-c"
                            | "--format"
                            | "-f"
                            | "--resources"
                            | "-r"
                            | "--interval"
                            | "--additional-gids"
                            | "-g"
                            | "--process-label"
                            | "--apparmor"
                            | "--cgroup"
                            | "--memory"
                            | "--memory-swap"
                            | "--cpu-quota"
                            | "--cpu-period"
                            | "--cpu-shares"
                            | "--cpuset-cpus"
                            | "--cpuset-mems"
                            | "--pids-limit"
                            | "--kernel-memory"
                            | "--blkio-weight"
                            | "--memory-reservation"
                            | "--cpu-rt-period"
                            | "--cpu-rt-runtime"
                            | "--l3-cache-schema"
                            | "--mem-bw-schema"
                    );
                continue;
            }
            return a.clone();
        }
        String::new()
    }
}

/// The state root the runtime was given for container `id`'s create: the
/// caller's `--root`, else the launcher's (RECORD_ROOT), else None (the
/// runtime's default).
pub fn root_of(dir: &Path, id: &str) -> Option<PathBuf> {
    let calls = read_calls(dir);
    let c = calls
        .iter()
        .rfind(|c| c.cmd == "create" && c.container() == id)?;
    if let Some(i) = c.argv.iter().position(|a| a == "--root") {
        return c.argv.get(i + 1).map(PathBuf::from);
    }
    if let Some(r) = c.argv.iter().find_map(|a| a.strip_prefix("--root=")) {
        return Some(PathBuf::from(r));
    }
    let r = std::fs::read_to_string(c.dir.join("root")).ok()?;
    Some(PathBuf::from(r.trim()))
}

/// The calls of one check, as signatures, container by container (calls
/// for several containers interleave): `create --bundle --pid-file -> 0,
/// start -> 0, delete -> 0`; runs of one signature collapse (`state -> 0
/// x3`) and containers that saw the same calls are counted (`8 x [..]`).
pub fn summary(calls: &[&Call]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut per: std::collections::HashMap<String, Vec<(String, usize)>> = Default::default();
    for c in calls {
        let id = c.container();
        if !per.contains_key(&id) {
            order.push(id.clone());
        }
        let seq = per.entry(id).or_default();
        let s = c.signature();
        match seq.last_mut() {
            Some((last, n)) if *last == s => *n += 1,
            _ => seq.push((s, 1)),
        }
    }
    let render = |seq: &Vec<(String, usize)>| -> Vec<String> {
        seq.iter()
            .map(|(s, n)| {
                if *n > 1 {
                    format!("{s} x{n}")
                } else {
                    s.clone()
                }
            })
            .collect()
    };
    if order.len() == 1 {
        return render(&per[&order[0]]);
    }
    // Count containers with the same sequence, in order of appearance.
    let mut groups: Vec<(Vec<String>, usize)> = Vec::new();
    for id in &order {
        let r = render(&per[id]);
        match groups.iter_mut().find(|(g, _)| *g == r) {
            Some((_, n)) => *n += 1,
            None => groups.push((r, 1)),
        }
    }
    groups
        .into_iter()
        .map(|(g, n)| format!("{n} x [{}]", g.join(", ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(argv: &[&str], exit: i32) -> Call {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        Call {
            dir: PathBuf::new(),
            start: 0,
            cmd: command_of(&argv),
            argv,
            exit: Some(exit),
            tag: String::new(),
            log: String::new(),
            stdout: String::new(),
        }
    }

    #[test]
    fn output_shapes_drop_values() {
        let mut c = call(&["state", "x"], 0);
        c.stdout = r#"{"ociVersion":"1.0.2","id":"x","pid":5,"status":"running"}"#.into();
        assert_eq!(
            c.signature(),
            "state -> 0 {id,ociVersion,pid,status; status=running}"
        );
        let mut p = call(&["ps", "--format", "json", "x"], 0);
        p.stdout = "[12,13]".into();
        assert_eq!(p.signature(), "ps --format -> 0 [pids]");
        assert_eq!(p.container(), "x");
    }

    #[test]
    fn command_skips_global_flags() {
        let c = call(
            &[
                "--root",
                "/r",
                "--log",
                "/l.json",
                "--log-format",
                "json",
                "kill",
                "--all",
                "abc",
                "9",
            ],
            1,
        );
        assert_eq!(c.cmd, "kill");
        assert_eq!(c.signature(), "kill --all 9 -> 1");
        assert_eq!(call(&["--version"], 0).cmd, "version");
        let c = call(&["create", "--bundle", "/b", "--pid-file", "/p", "id"], 0);
        assert_eq!(c.signature(), "create --bundle --pid-file -> 0");
    }

    #[test]
    fn summary_collapses_repeats() {
        let a = call(&["state", "x"], 0);
        let b = call(&["start", "x"], 0);
        let calls = vec![&a, &a, &b];
        assert_eq!(summary(&calls), vec!["state -> 0 x2", "start -> 0"]);
    }

    #[test]
    fn summary_groups_interleaved_containers() {
        let c1 = call(&["--root", "/r", "create", "--bundle", "/b", "c1"], 0);
        let c2 = call(&["create", "--bundle", "/b", "c2"], 0);
        let s1 = call(&["start", "c1"], 0);
        let s2 = call(&["start", "c2"], 1);
        let s3 = call(&["create", "--bundle", "/b", "c3"], 0);
        let s4 = call(&["start", "c3"], 0);
        assert_eq!(c1.container(), "c1");
        assert_eq!(call(&["kill", "--all", "c9", "9"], 0).container(), "c9");
        let calls = vec![&c1, &c2, &s1, &s2, &s3, &s4];
        assert_eq!(
            summary(&calls),
            vec![
                "2 x [create --bundle -> 0, start -> 0]",
                "1 x [create --bundle -> 0, start -> 1]"
            ]
        );
    }

    #[test]
    fn log_errors_are_the_error_lines() {
        let mut c = call(&["create", "x"], 1);
        c.log = "{\"level\":\"warning\",\"msg\":\"w\"}\n{\"level\":\"error\",\"msg\":\"boom\"}\nnot json\n".into();
        assert_eq!(c.log_errors(), vec!["boom"]);
    }
}
