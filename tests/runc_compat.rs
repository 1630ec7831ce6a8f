//! The same bundle under runc and berth: what callers observe must match
//! (exit codes, the status at each step, error texts they match, pid files).

mod common;

use common::{Bundle, Runtime};

fn runc() -> Option<Runtime> {
    for p in ["/usr/sbin/runc", "/usr/bin/runc"] {
        if std::path::Path::new(p).exists() {
            return Some(Runtime::new(p));
        }
    }
    eprintln!("skipped: runc is not installed (make deps)");
    None
}

/// The same bundle bytes for both runtimes (ociVersion 1.1.0, which the
/// Debian runc knows).
fn bundle(args: &[&str]) -> Bundle {
    let mut b = Bundle::new(args);
    b.edit(|s| s["ociVersion"] = serde_json::json!("1.1.0"));
    b
}

/// (exit code, observed status or error marker) for each lifecycle step.
fn walk(rt: &Runtime, b: &Bundle, id: &str) -> Vec<(Option<i32>, String)> {
    let pid_file = b.dir.join(format!("{id}.pid"));
    let mut seen = Vec::new();
    let mut step = |args: &[&str]| {
        let out = rt.run_cmd(args);
        if args[0] == "kill" && out.status.success() {
            // A signal is asynchronous: observe the state once it landed.
            for _ in 0..300 {
                if rt
                    .run_cmd(&["state", id])
                    .stdout
                    .windows(9)
                    .any(|w| w == b"\"stopped\"")
                {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let marker = [
            "container not running",
            "does not exist",
            "cannot start",
            "not stopped",
        ]
        .iter()
        .find(|m| err.contains(*m))
        .map(|m| m.to_string())
        .unwrap_or_default();
        let status = rt
            .run_cmd(&["state", id])
            .stdout
            .pipe(|o| serde_json::from_slice::<serde_json::Value>(&o).ok())
            .map(|v| v["status"].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| "gone".into());
        seen.push((out.status.code(), format!("{status} {marker}")));
    };
    step(&[
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        id,
    ]);
    step(&["start", id]);
    step(&["start", id]);
    step(&["delete", id]);
    step(&["kill", id, "KILL"]);
    step(&["kill", id, "KILL"]);
    step(&["delete", id]);
    step(&["state", id]);
    step(&["kill", id]);
    seen
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

#[test]
fn lifecycle_matches_runc_step_by_step() {
    let Some(runc) = runc() else { return };
    let berth = Runtime::berth();
    let b = bundle(&["/bin/sleep", "1000"]);
    let r = walk(&runc, &b, "compat-runc");
    let o = walk(&berth, &b, "compat-berth");
    eprintln!("runc: {r:?}");
    assert_eq!(
        r[0],
        (Some(0), "created ".to_string()),
        "the walk observes real states"
    );
    assert_eq!(o, r, "berth (left) vs runc (right)");
}

#[test]
fn pid_file_bytes_match_runc_format() {
    let Some(runc) = runc() else { return };
    let berth = Runtime::berth();
    let b = bundle(&["/bin/sleep", "1000"]);
    for (rt, id) in [(&runc, "pidf-runc"), (&berth, "pidf-berth")] {
        let pf = b.dir.join(format!("{id}.pid"));
        rt.ok(&[
            "create",
            "--bundle",
            b.dir.to_str().unwrap(),
            "--pid-file",
            pf.to_str().unwrap(),
            id,
        ]);
        let text = std::fs::read_to_string(&pf).unwrap();
        assert!(text.bytes().all(|c| c.is_ascii_digit()), "{id}: {text:?}");
        assert_eq!(text, rt.state(id)["pid"].to_string());
        rt.ok(&["delete", "--force", id]);
    }
}

#[test]
fn exit_codes_match_runc() {
    let Some(runc) = runc() else { return };
    let berth = Runtime::berth();
    for (args, id) in [
        (vec!["/bin/true"], "ec0"),
        (vec!["/bin/sh", "-c", "exit 3"], "ec3"),
        (vec!["/bin/false"], "ec1"),
    ] {
        let b = bundle(&args);
        let r = runc.run(&b, &format!("{id}-runc")).0;
        let o = berth.run(&b, &format!("{id}-berth")).0;
        assert_eq!(o, r, "{args:?}");
    }
}

/// The most common way to make a bundle: `runc spec` (its ambient set has
/// no inheritable counterpart, which the kernel refuses to raise; runc
/// leaves those out). The process sees the same capability sets under both.
#[test]
fn a_runc_spec_bundle_runs_with_the_same_capabilities_as_under_runc() {
    let Some(runc) = runc() else { return };
    let berth = Runtime::berth();
    let b = Bundle::new(&["/bin/true"]);
    std::fs::remove_file(b.dir.join("config.json")).unwrap();
    let out = std::process::Command::new(&runc.bin)
        .arg("spec")
        .current_dir(&b.dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.dir.join("config.json")).unwrap()).unwrap();
    assert!(spec["process"]["capabilities"]["ambient"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    assert!(spec["process"]["capabilities"]["inheritable"].is_null());
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["process"]["args"] = serde_json::json!(["/bin/grep", "^Cap", "/proc/self/status"]);
    std::fs::write(
        b.dir.join("config.json"),
        serde_json::to_vec(&spec).unwrap(),
    )
    .unwrap();
    let (code, theirs, err) = runc.run(&b, "t-runc-spec");
    assert_eq!(code, 0, "runc: {err}");
    let (code, ours, err) = berth.run(&b, "t-runc-spec");
    assert_eq!(code, 0, "berth: {err}");
    assert_eq!(ours, theirs);
}
