//! The re-exec from a read-only bind of the binary (src/process/host_binary.rs)
//! goes through an `open_tree` fd and leaves a variable in the re-exec'd
//! runtime's environment. Neither may reach the container, even where the
//! fd would land in the range of fds a caller promised with
//! `--preserve-fds` and did not pass.

mod common;

use std::collections::BTreeSet;

use common::{Bundle, Runtime};

/// The fd numbers and environment the container's shell sees.
const PROBE: &str = "ls /proc/$$/fd; echo env:; env";

fn fds_and_env(out: &str) -> (BTreeSet<u32>, Vec<&str>) {
    let (fds, env) = out.split_once("env:\n").unwrap_or((out, ""));
    let fds = fds
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (fds, env.lines().collect())
}

#[test]
fn the_runtime_fd_kept_across_its_re_exec_never_reaches_the_container() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/sh", "-c", PROBE]);
    let bundle = b.dir.to_str().unwrap().to_string();
    // Nothing passed but stdio, five promised: the runtime's first fds
    // (its /proc/self/exe, the open_tree fd) fall in 3..8.
    let out = rt.ok(&[
        "run",
        "--preserve-fds",
        "5",
        "--bundle",
        &bundle,
        "t-hb-run",
    ]);
    let (fds, env) = fds_and_env(&out);
    assert_eq!(fds, BTreeSet::from([0, 1, 2]), "run: {out}");
    assert!(
        env.iter().all(|e| !e.starts_with("_BERTH")),
        "run: the runtime's own variable in the container: {out}"
    );

    b.edit(|s| s["process"]["args"] = serde_json::json!(["/bin/sleep", "1000"]));
    rt.ok(&["run", "-d", "--bundle", &bundle, "t-hb"]);
    let out = rt.ok(&[
        "exec",
        "--preserve-fds",
        "5",
        "t-hb",
        "/bin/sh",
        "-c",
        PROBE,
    ]);
    let (fds, env) = fds_and_env(&out);
    assert_eq!(fds, BTreeSet::from([0, 1, 2]), "exec: {out}");
    assert!(
        env.iter().all(|e| !e.starts_with("_BERTH")),
        "exec: the runtime's own variable in the container: {out}"
    );
}

/// The re-exec comes before the arguments are parsed, for any argument
/// that names a command entering a container: one that only looks like
/// one (a container called `run`) still gets the command it asked for.
#[test]
fn an_argument_that_only_looks_like_an_entering_command_is_parsed_as_given() {
    let rt = Runtime::berth();
    let err = rt.fails(&["state", "run"]);
    assert!(err.contains("run"), "{err}");
    assert!(!err.contains("re-exec"), "{err}");
    let out = rt.ok(&["list", "--quiet"]);
    assert_eq!(out, "", "{out}");
}
