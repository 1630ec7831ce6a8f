//! Where the corpus's base configs come from, all made at test time by the
//! real tools on this machine: `runc spec`, `runc spec --rootless`, `crun
//! spec`, `berth spec`, `ctr oci spec`, and the config.json podman and
//! Docker wrote into their bundles, as recorded by the callers harness
//! (callers/record-runtime, target/callers/records/<caller>/runc/).
//!
//! A base is then adapted to our bundle (`adapt`): the probe as process, the
//! rootfs path, the cgroup path, stand-ins for host files the caller bound
//! in, and no hooks whose binaries were the caller's daemon. Everything
//! else is the tool's own config.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One base config.
pub struct Base {
    /// `runc-spec`, `podman-run`, `docker/--read-only (+ --tmpfs)`, ...
    pub name: String,
    pub config: Value,
    /// Whether the field-by-field variations are applied to it (the plain
    /// defaults and plain `run`s); the other recorded caller configs run
    /// as they are.
    pub varied: bool,
}

fn run_tool(dir: &Path, argv: &[&str]) -> Result<String, String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `TOOL spec`-style generators that write ./config.json, and `ctr oci
/// spec`, which prints it. Returns the bases and, for each tool that could
/// not give one, why.
pub fn tool_specs(work: &Path, runc: &Path, berth: &Path) -> (Vec<Base>, Vec<String>) {
    let runc = runc.display().to_string();
    let berth = berth.display().to_string();
    let tools: Vec<(&str, Vec<&str>, bool)> = vec![
        ("runc-spec", vec![runc.as_str(), "spec"], true),
        (
            "runc-spec-rootless",
            vec![runc.as_str(), "spec", "--rootless"],
            true,
        ),
        ("crun-spec", vec!["crun", "spec"], true),
        ("berth-spec", vec![berth.as_str(), "spec"], true),
        ("ctr-oci-spec", vec!["ctr", "oci", "spec"], false),
    ];
    let mut bases = Vec::new();
    let mut skipped = Vec::new();
    for (name, argv, writes_file) in tools {
        let dir = work.join("specs").join(name);
        let got = std::fs::create_dir_all(&dir)
            .map_err(|e| format!("mkdir {}: {e}", dir.display()))
            .and_then(|_| run_tool(&dir, &argv))
            .and_then(|stdout| {
                if writes_file {
                    std::fs::read_to_string(dir.join("config.json"))
                        .map_err(|e| format!("`{}` wrote no config.json: {e}", argv.join(" ")))
                } else {
                    Ok(stdout)
                }
            })
            .and_then(|text| {
                serde_json::from_str::<Value>(&text)
                    .map_err(|e| format!("`{}`: not JSON: {e}", argv.join(" ")))
            });
        match got {
            Ok(config) => bases.push(Base {
                name: name.into(),
                config,
                varied: true,
            }),
            Err(e) => skipped.push(format!("{name}: {e}")),
        }
    }
    (bases, skipped)
}

/// One recorded `create`/`run` of a caller, from the harness's INDEX.tsv.
struct Recorded {
    caller: String,
    check: String,
    dir: PathBuf,
}

fn read_index(records: &Path) -> Result<Vec<Recorded>, String> {
    let index = records.join("INDEX.tsv");
    let text = std::fs::read_to_string(&index).map_err(|e| format!("{}: {e}", index.display()))?;
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 6 {
            continue;
        }
        let (caller, runtime, check, command, exit, dir) = (f[0], f[1], f[2], f[3], f[4], f[5]);
        if !["podman", "docker"].contains(&caller)
            || runtime != "runc"
            || !["create", "run"].contains(&command)
            || exit != "0"
        {
            continue;
        }
        out.push(Recorded {
            caller: caller.into(),
            check: check.into(),
            dir: records.join(dir),
        });
    }
    Ok(out)
}

/// The config.json podman and Docker wrote, one per check of the callers
/// harness (the first `create` of each), from a records directory.
pub fn caller_configs(records: &Path) -> Result<Vec<Base>, String> {
    let mut bases: Vec<Base> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in read_index(records)? {
        if !seen.insert((r.caller.clone(), r.check.clone())) {
            continue;
        }
        let path = r.dir.join("config.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(config) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let plain = r.check.starts_with("run: output");
        bases.push(Base {
            name: if plain {
                format!("{}-run", r.caller)
            } else {
                format!("{}/{}", r.caller, r.check)
            },
            config,
            varied: plain,
        });
    }
    for caller in ["podman", "docker"] {
        if !bases.iter().any(|b| b.name == format!("{caller}-run")) {
            return Err(format!(
                "{}: no recorded plain `run` of {caller}",
                records.display()
            ));
        }
    }
    Ok(bases)
}

/// Runs the callers harness for podman and Docker only, to record their
/// configs (about a minute: it starts private daemons and runs its checks).
pub fn produce_records(
    callers: &Path,
    berth: &Path,
    runc: &Path,
    out: &Path,
) -> Result<String, String> {
    let t0 = Instant::now();
    let log = out.with_extension("log");
    let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let status = Command::new(callers)
        .arg("--berth")
        .arg(berth)
        .arg("--runc")
        .arg(runc)
        .args(["--only", "podman,docker", "--records"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| format!("{}: {e}", callers.display()))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    if out.join("INDEX.tsv").is_file() {
        Ok(format!(
            "{} ({}, {:.0}s)",
            callers.display(),
            status,
            t0.elapsed().as_secs_f64()
        ))
    } else {
        Err(format!(
            "{} {status} and wrote no records: {}",
            callers.display(),
            tail.join(" / ")
        ))
    }
}

/// Adapts a tool's config to our bundle. `@ID@`, `@HOST@` (a per-case host
/// directory) are filled in per case and runtime.
pub fn adapt(mut c: Value) -> Value {
    c["root"]["path"] = json!("rootfs");
    if c["process"].is_null() {
        c["process"] = json!({});
    }
    c["process"]["args"] = json!(["/checker"]);
    c["process"]["terminal"] = json!(false);
    if c["linux"]["cgroupsPath"].is_string() {
        c["linux"]["cgroupsPath"] = json!("/@CGROUP_PARENT@/@ID@");
    }
    // Host files the caller bound in (hosts, resolv.conf, its shm, ...)
    // are gone with its daemon: bind stand-ins from the case's host dir.
    if let Some(mounts) = c["mounts"].as_array_mut() {
        for (i, m) in mounts.iter_mut().enumerate() {
            let Some(src) = m["source"].as_str() else {
                continue;
            };
            if !src.starts_with('/') || Path::new(src).exists() {
                continue;
            }
            let base = Path::new(src)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let kind = if base == "shm" { "dir" } else { "file" };
            m["source"] = json!(format!("@HOST@/standin-{kind}-{i}-{base}"));
        }
    }
    // Hooks whose binary is gone (dockerd's libnetwork-setkey through
    // /proc/PID/exe) are dropped.
    if let Some(hooks) = c["hooks"].as_object_mut() {
        for list in hooks.values_mut() {
            if let Some(a) = list.as_array_mut() {
                a.retain(|h| {
                    h["path"]
                        .as_str()
                        .map(|p| Path::new(p).exists() && !p.starts_with("/proc/"))
                        .unwrap_or(false)
                });
            }
        }
        hooks.retain(|_, l| l.as_array().map(|a| !a.is_empty()).unwrap_or(true));
        if hooks.is_empty() {
            c.as_object_mut().map(|o| o.remove("hooks"));
        }
    }
    c
}

/// How long producing records may take before we give up on them.
pub const RECORDS_TIMEOUT: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapt_replaces_caller_paths_and_keeps_the_rest() {
        let c = json!({
            "ociVersion": "1.0.2-dev",
            "process": { "args": ["sh"], "terminal": true, "cwd": "/" },
            "root": { "path": "/var/lib/docker/overlay2/x/merged" },
            "hostname": "abc",
            "mounts": [
                { "destination": "/proc", "type": "proc", "source": "proc" },
                { "destination": "/etc/hosts", "type": "bind", "source": "/nonexistent/ct/hosts", "options": ["rbind"] },
                { "destination": "/dev/shm", "type": "bind", "source": "/nonexistent/ct/shm" }
            ],
            "hooks": { "prestart": [{ "path": "/proc/1234/exe", "args": ["libnetwork-setkey"] }] },
            "linux": { "cgroupsPath": "/docker/abc" }
        });
        let a = adapt(c);
        assert_eq!(a["root"]["path"], "rootfs");
        assert_eq!(a["process"]["args"], json!(["/checker"]));
        assert_eq!(a["process"]["terminal"], false);
        assert_eq!(a["hostname"], "abc");
        assert_eq!(a["mounts"][0]["source"], "proc");
        assert_eq!(a["mounts"][1]["source"], "@HOST@/standin-file-1-hosts");
        assert_eq!(a["mounts"][2]["source"], "@HOST@/standin-dir-2-shm");
        assert!(a.get("hooks").is_none());
        assert_eq!(a["linux"]["cgroupsPath"], "/@CGROUP_PARENT@/@ID@");
    }
}
