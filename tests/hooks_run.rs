//! berth::hooks::run against real processes (busybox sh).

use std::path::{Path, PathBuf};

use oci_spec::runtime::Hook;

const BB: &str = "/bin/busybox";

/// A temp dir removed on drop, even when the test panics.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn tmpdir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("berth-hooks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    TempDir(d)
}

fn hook(args: &[&str], env: Option<&[&str]>, timeout: Option<i64>) -> Hook {
    let mut h = Hook::default();
    h.set_path(PathBuf::from(BB));
    h.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    h.set_env(env.map(|e| e.iter().map(|s| s.to_string()).collect()));
    h.set_timeout(timeout);
    h
}

fn sh(script: &str, env: Option<&[&str]>) -> Hook {
    hook(&["sh", "-c", script], env, None)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn hook_gets_state_on_stdin_and_exactly_the_given_env() {
    let d = tmpdir("stdin-env");
    // The shell's exec-time environment, before ash adds its own defaults.
    let script = format!(
        "{BB} cat /proc/$$/environ > {0}/env; {BB} cat > {0}/stdin",
        d.display()
    );
    let state = br#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":1,"bundle":"/b"}"#;
    berth::hooks::run(
        "createRuntime",
        &[sh(&script, Some(&["FOO=bar", "X=1=2"]))],
        state,
        None,
    )
    .expect("hook runs");
    assert_eq!(read(&d.join("stdin")).as_bytes(), state);
    let mut env: Vec<String> = read(&d.join("env"))
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    env.sort();
    assert_eq!(env, vec!["FOO=bar", "X=1=2"]);
}

#[test]
fn absent_env_means_the_runtimes_environment_and_empty_env_means_none() {
    // runc passes its own environment to a hook without `env` (hooks rely
    // on its PATH); an `env`, even empty, is the whole environment.
    let d = tmpdir("noenv");
    let script = format!("{BB} cat /proc/$$/environ > {}/env", d.display());
    // One of our variables that ash does not make up itself.
    let (k, v) = std::env::vars()
        .find(|(k, _)| !["SHLVL", "PATH", "PWD", "OLDPWD", "_"].contains(&k.as_str()))
        .expect("the test runs with some environment");
    let ours = format!("{k}={v}");
    berth::hooks::run("poststart", &[sh(&script, None)], b"{}", None).expect("hook runs");
    assert!(
        read(&d.join("env")).split('\0').any(|e| e == ours),
        "{ours} did not reach the hook"
    );
    berth::hooks::run("poststart", &[sh(&script, Some(&[]))], b"{}", None).expect("hook runs");
    assert!(
        !read(&d.join("env"))
            .split('\0')
            .any(|e| e.starts_with(&format!("{k}="))),
        "an empty env must stay empty"
    );
}

#[test]
fn hooks_run_in_the_bundle_and_need_an_absolute_path() {
    let d = tmpdir("cwd");
    let script = format!("{BB} pwd > {}/cwd", d.display());
    let state = format!("{{\"bundle\":\"{}\"}}", d.display());
    berth::hooks::run(
        "prestart",
        &[sh(&script, Some(&[]))],
        state.as_bytes(),
        None,
    )
    .expect("hook runs");
    assert_eq!(read(&d.join("cwd")).trim(), d.display().to_string());
    let mut relative = sh("true", None);
    relative.set_path(PathBuf::from("busybox"));
    let err = berth::hooks::run("prestart", &[relative], b"{}", None).unwrap_err();
    assert!(err.to_string().contains("must be absolute"), "{err}");
}

#[test]
fn hooks_run_in_order() {
    let d = tmpdir("order");
    let log = d.join("log");
    let hooks: Vec<Hook> = (0..4)
        .map(|i| sh(&format!("echo {i} >> {}", log.display()), None))
        .collect();
    berth::hooks::run("prestart", &hooks, b"{}", None).expect("hooks run");
    assert_eq!(read(&log), "0\n1\n2\n3\n");
}

#[test]
fn args0_is_argv0_and_empty_args_use_path() {
    let d = tmpdir("argv0");
    // busybox dispatches on argv[0]: "echo" runs the echo applet.
    let out = d.join("out");
    let script = format!("echo \"$0 $1\" > {}", out.display());
    berth::hooks::run(
        "createContainer",
        &[hook(&["sh", "-c", &script, "myname", "a1"], None, None)],
        b"{}",
        None,
    )
    .expect("hook runs");
    assert_eq!(read(&out), "myname a1\n");

    // No args: argv = [path], so a script sees its own path as $0.
    let script_path = d.join("hook.sh");
    std::fs::write(
        &script_path,
        format!("#!{BB} sh\necho \"$0\" > {}\n", out.display()),
    )
    .expect("write hook script");
    std::fs::set_permissions(
        &script_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod hook script");
    let mut bare = Hook::default();
    bare.set_path(script_path.clone());
    berth::hooks::run("createContainer", &[bare], b"{}", None).expect("script hook runs");
    assert_eq!(read(&out).trim(), script_path.display().to_string());
}

#[test]
fn failing_hook_error_names_stage_index_path_status_and_output() {
    let hooks = [
        sh("exit 0", None),
        sh("echo to-out; echo to-err >&2; exit 3", None),
        sh("exit 0", None),
    ];
    let e = berth::hooks::run("startContainer", &hooks, b"{}", None).expect_err("hook #1 fails");
    let m = e.message();
    assert!(
        m.starts_with("startContainer hook #1 (/bin/busybox): exit status 3"),
        "{m}"
    );
    assert!(m.contains("to-out") && m.contains("to-err"), "{m}");
}

#[test]
fn signal_death_is_reported() {
    let e = berth::hooks::run("poststop", &[sh("kill -9 $$", None)], b"{}", None)
        .expect_err("hook killed");
    assert!(e.message().contains("killed by signal 9"), "{e}");
}

#[test]
fn timeout_kills_and_reaps_the_hook() {
    let d = tmpdir("timeout");
    let pidfile = d.join("pid");
    let script = format!("echo $$ > {}; exec {BB} sleep 100", pidfile.display());
    let e = berth::hooks::run(
        "createRuntime",
        &[hook(&["sh", "-c", &script], None, Some(1))],
        b"{}",
        None,
    )
    .expect_err("hook times out");
    assert!(e.message().contains("timed out"), "{e}");
    assert!(e.message().starts_with("createRuntime hook #0"), "{e}");
    let pid = read(&pidfile).trim().to_string();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "hook process {pid} still exists (not killed or not reaped)"
    );
}

#[test]
fn missing_path_gives_clear_error() {
    let mut h = Hook::default();
    h.set_path(PathBuf::from("/nonexistent/hook"));
    let e = berth::hooks::run("prestart", &[h], b"{}", None).expect_err("no such hook");
    assert_eq!(
        e.message(),
        "prestart hook #0 (/nonexistent/hook): exec: no such file or directory"
    );
}

#[test]
fn large_output_does_not_block_the_hook() {
    // 1 MiB on stdout would fill a pipe if nobody read it.
    let e = berth::hooks::run(
        "poststart",
        &[sh(
            &format!("{BB} yes | {BB} head -c 1048576; exit 5"),
            None,
        )],
        b"{}",
        None,
    )
    .expect_err("exits 5");
    assert!(e.message().contains("exit status 5"), "{e}");
    assert!(e.message().len() < 4096, "captured output not bounded");
}

#[test]
fn no_hooks_is_ok_and_huge_timeout_does_not_panic() {
    berth::hooks::run("prestart", &[], b"{}", None).expect("no hooks");
    berth::hooks::run(
        "prestart",
        &[hook(&["true"], None, Some(i64::MAX))],
        b"{}",
        None,
    )
    .expect("huge timeout");
}

#[test]
fn nonpositive_timeout_is_rejected() {
    let e = berth::hooks::run("prestart", &[hook(&["true"], None, Some(0))], b"{}", None)
        .expect_err("timeout 0");
    assert!(
        e.message().contains("timeout must be greater than zero"),
        "{e}"
    );
}
