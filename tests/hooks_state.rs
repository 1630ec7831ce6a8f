//! What hooks get from a real container: the runtime-spec state on stdin
//! (exactly its fields) and, for the hooks that run in the container
//! without an `env`, the container process's environment.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{Bundle, Runtime};
use serde_json::{json, Value};

/// A hook that copies its stdin to `out`.
fn record_stdin(out: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {out}")]})
}

/// The spec version berth reports as its own (`berth --version`).
fn berth_spec_version(rt: &Runtime) -> String {
    let out = rt.ok(&["--version"]);
    out.lines()
        .find_map(|l| l.strip_prefix("spec: "))
        .unwrap_or_else(|| panic!("no spec version in {out:?}"))
        .trim()
        .to_string()
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// berth, a fresh id, a writable bundle running /bin/true and the bundle's
/// canonical path (what the state names).
fn setup(prefix: &str) -> (Runtime, String, Bundle, PathBuf) {
    let mut b = Bundle::new(&["/bin/true"]);
    b.edit(|s| s["root"]["readonly"] = json!(false));
    let dir = b.dir.canonicalize().unwrap();
    (Runtime::berth(), common::unique(prefix), b, dir)
}

#[test]
fn every_hook_gets_exactly_the_runtime_spec_state() {
    let (rt, id, mut b, dir) = setup("t-hook-state");
    // startContainer runs after pivot_root: it writes into the rootfs.
    let outside = |stage: &str| dir.join(format!("{stage}.json"));
    let inside = "/startContainer.json";
    b.edit(|s| {
        // Not the version berth implements: the state must not echo it.
        s["ociVersion"] = json!("1.0.2");
        s["annotations"] = json!({"org.example.hook": "yes"});
        for stage in [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop",
        ] {
            s["hooks"][stage] = json!([record_stdin(&outside(stage).display().to_string())]);
        }
        s["hooks"]["startContainer"] = json!([record_stdin(inside)]);
    });
    let (code, _, err) = rt.run(&b, &id);
    assert_eq!(code, 0, "{err}");
    let version = berth_spec_version(&rt);
    assert_ne!(version, "1.0.2");
    let read = |p: &std::path::Path| -> Value {
        let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text:?}", p.display()))
    };
    let states = [
        ("prestart", read(&outside("prestart"))),
        ("createRuntime", read(&outside("createRuntime"))),
        ("createContainer", read(&outside("createContainer"))),
        ("startContainer", read(&b.rootfs().join(&inside[1..]))),
        ("poststart", read(&outside("poststart"))),
        ("poststop", read(&outside("poststop"))),
    ];
    for (stage, state) in &states {
        let mut want: BTreeSet<&str> =
            ["ociVersion", "id", "status", "pid", "bundle", "annotations"].into();
        if *stage == "poststop" {
            // The process is gone: no pid (runc omits it too).
            want.remove("pid");
        } else {
            assert!(
                state["pid"].as_i64().is_some_and(|p| p > 0),
                "{stage}: {state}"
            );
        }
        assert_eq!(keys(state), want, "{stage}: {state}");
        assert_eq!(state["ociVersion"], version.as_str(), "{stage}: {state}");
        assert_eq!(state["id"], id.as_str(), "{stage}: {state}");
        assert_eq!(state["bundle"], dir.to_str().unwrap(), "{stage}: {state}");
        assert_eq!(
            state["annotations"],
            json!({"org.example.hook": "yes"}),
            "{stage}: {state}"
        );
    }
    assert_eq!(states[5].1["status"], "stopped");
}

#[test]
fn state_output_keeps_runcs_extra_fields_and_reports_berths_spec_version() {
    let rt = Runtime::berth();
    let id = common::unique("t-state-fields");
    let mut b = Bundle::new(&["/bin/sleep", "60"]);
    b.edit(|s| s["ociVersion"] = json!("1.0.2"));
    rt.ok(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    let state = rt.state(&id);
    let pid = state["pid"].as_i64().unwrap_or(0) as i32;
    rt.ok(&["delete", "--force", &id]);
    common::reap(pid);
    for k in ["rootfs", "created", "owner"] {
        assert!(state.get(k).is_some(), "{k} missing: {state}");
    }
    // runc prints the version it implements, not the config's.
    assert_eq!(
        state["ociVersion"],
        berth_spec_version(&rt).as_str(),
        "{state}"
    );
}

/// The variables of a NUL-separated environ file, sorted.
fn environ(p: &std::path::Path) -> Vec<String> {
    let raw = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut vars: Vec<String> = String::from_utf8_lossy(&raw)
        .split('\0')
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect();
    vars.sort();
    vars
}

#[test]
fn container_side_hooks_without_env_get_the_processs_environment() {
    let (rt, id, mut b, dir) = setup("t-hook-env");
    let created = dir.join("createContainer.env");
    b.edit(|s| {
        s["process"]["env"] = json!(["PATH=/bin", "FROM_CONFIG=1"]);
        // The shell's exec-time environment (`; exit`: the shell does not
        // exec cat in its place with its own variables added).
        // createContainer runs before pivot_root in the container's root,
        // where its /proc is mounted.
        s["hooks"]["createContainer"] = json!([{"path": "/bin/sh", "args":
            ["sh", "-c", format!("cat proc/$$/environ > {}; exit", created.display())]}]);
        s["hooks"]["startContainer"] = json!([{"path": "/bin/sh", "args":
            ["sh", "-c", "cat /proc/$$/environ > /startContainer.env; exit"]}]);
        // A hook with `env` still gets exactly that.
        s["hooks"]["createContainer"]
            .as_array_mut()
            .unwrap()
            .push(json!({"path": "/bin/sh", "env": ["ONLY=this"], "args":
                ["sh", "-c", format!("/bin/cat proc/$$/environ > {}.given; exit", created.display())]}));
    });
    // The runtime's own environment must not reach them.
    let out = rt
        .cmd(&["run", "--bundle", b.dir.to_str().unwrap(), &id])
        .env("FROM_RUNTIME", "1")
        .output()
        .expect("run berth");
    rt.created.borrow_mut().push(id.clone());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(environ(&created), ["FROM_CONFIG=1", "PATH=/bin"]);
    assert_eq!(
        environ(&b.rootfs().join("startContainer.env")),
        // By then the init has the process's HOME (from /etc/passwd), as
        // runc's has.
        ["FROM_CONFIG=1", "HOME=/root", "PATH=/bin"]
    );
    assert_eq!(
        environ(&dir.join("createContainer.env.given")),
        ["ONLY=this"]
    );
}
