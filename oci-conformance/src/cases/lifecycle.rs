//! runtime.md: state, lifecycle, operations and their error cases.

use super::case;
use crate::case::{Case, Ctx, Level::*};
use crate::reaper::Exit;
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        case("lifecycle.smoke", "runtime.md#lifecycle", Must,
            "create, start, the program runs and exits, state is stopped, delete removes it",
            smoke).mutant("state:/status=\"running\""),
        case("state.fields", "runtime.md#state", Must,
            "state reports ociVersion, id, status, pid (on Linux, while created/running), bundle (absolute) and annotations",
            state_fields).mutant("state:/bundle=\"/nonexistent\""),
        case("state.pid-is-container", "runtime.md#state", Must,
            "the pid in state is the container's process, as seen on the host",
            state_pid).mutant("state:/pid=1"),
        case("state.running", "runtime.md#state", Must,
            "status is `running` while the user program runs",
            state_running).mutant("state:/status=\"created\""),
        case("state.id-matches", "runtime.md#state", Must,
            "the id in state is the container's id",
            state_id).mutant("state:/id=\"someone-else\""),
        case("create.program-not-run", "runtime.md#create", Must,
            "create does not run the user program; start runs it",
            program_not_run).mutant("noop:start"),
        case("create.id-unique", "runtime.md#create", Must,
            "create with an id that is not unique generates an error and leaves the first container alone",
            id_unique).mutant("exit:create=0"),
        case("create.invalid-config", "runtime.md#create", Must,
            "create with an unreadable or invalid config.json generates an error",
            invalid_config).mutant("exit:create=0"),
        case("create.missing-root", "config.md#root", Must,
            "root.path names an existing directory; create fails when it does not exist",
            missing_root).mutant("exit:create=0"),
        case("start.twice", "runtime.md#start", Must,
            "start on a container that is not `created` has no effect and generates an error",
            start_twice).mutant("exit:start=0"),
        case("start.stopped", "runtime.md#start", Must,
            "start on a stopped container generates an error",
            start_stopped).mutant("exit:start=0"),
        case("start.no-process", "runtime.md#start", Must,
            "process is optional at create; start generates an error when process was not set",
            start_no_process).deviation("runc (and berth) reject a config without process at create time rather than at start"),
        case("kill.signal", "runtime.md#kill", Must,
            "kill sends the given signal to the container's process",
            kill_signal).mutant("noop:kill"),
        case("kill.signal-number", "runtime.md#kill", Must,
            "kill accepts a signal given by number",
            kill_signal_number).mutant("noop:kill"),
        case("kill.default-sigterm", "runtime.md#kill", Runc,
            "kill without a signal sends SIGTERM (runc's CLI)",
            kill_default).mutant("noop:kill"),
        case("kill.created", "runtime.md#kill", Must,
            "kill on a created container signals it (it is `created`, so signalling is allowed)",
            kill_created).mutant("noop:kill"),
        case("kill.stopped", "runtime.md#kill", Must,
            "kill on a stopped container has no effect and generates an error",
            kill_stopped).mutant("exit:kill=0"),
        case("delete.running", "runtime.md#delete", Must,
            "delete on a running container generates an error and leaves it running",
            delete_running).mutant("exit:delete=0"),
        case("delete.stopped", "runtime.md#delete", Must,
            "delete removes a stopped container: state errors afterwards, the id is free again, its cgroup is gone",
            delete_stopped).mutant("noop:delete"),
        case("delete.created", "runtime.md#delete", Must,
            "delete on a container that is not stopped (here: created) generates an error",
            delete_created).deviation("runc (and berth) delete a `created` container by killing it; callers rely on it"),
        case("delete.force", "runtime.md#delete", Runc,
            "delete --force removes a running container and its process",
            delete_force).mutant("noop:delete"),
        case("ops.unknown-id", "runtime.md#operations", Must,
            "state, start, kill and delete of an unknown container id generate errors",
            unknown_id).mutant("exit:state=0\nexit:start=0\nexit:kill=0\nexit:delete=0"),
        case("ops.missing-id", "runtime.md#operations", Must,
            "state, start, kill and delete without a container id generate errors",
            missing_id).mutant("exit:state=0\nexit:start=0\nexit:kill=0\nexit:delete=0"),
        case("ops.exit-code-propagates", "runtime.md#lifecycle", Must,
            "the container's process exit code is the program's own",
            exit_code).mutant("set:/process/args=[\"/checker\",\"exit:0\"]"),
        case("state.stopped-after-signal", "runtime.md#state", Must,
            "a container whose process was killed is `stopped`",
            stopped_after_signal).mutant("state:/status=\"running\""),
        case("pause.resume", "runtime.md#operations", Runc,
            "pause freezes the container (state `paused`), resume thaws it (state `running`)",
            pause_resume).mutant("noop:pause"),
        case("create.pid-file", "runtime.md#create", Runc,
            "create --pid-file writes the container's pid",
            pid_file).mutant("state:/pid=1"),
        case("create.config-snapshot", "runtime.md#create", Must,
            "changes to config.json after create do not affect the container",
            config_snapshot).mutant("noop:create\nnoop:start"),
        case("config.unknown-properties", "config.md#extensibility", Must,
            "unknown properties in config.json are ignored, not an error",
            unknown_properties).mutant("exit:create=1"),
        case("config.invalid-version", "config.md#specification-version", Must,
            "an ociVersion that is not SemVer is an invalid config and is refused",
            invalid_version).mutant("exit:create=0\nexit:start=0"),
        case("delete.keeps-foreign-resources", "runtime.md#delete", Must,
            "delete removes what create made, but not resources it did not create (a bind mount's source)",
            keeps_foreign).mutant("noop:delete"),
        case("exec.process-json", "config.md#process", Runc,
            "exec --process applies the given process: args, cwd, env, user",
            exec_process_json).mutant("noop:exec"),
        case("exec.stopped", "runtime.md#operations", Runc,
            "exec into a stopped container fails",
            exec_stopped).mutant("exit:exec=0"),
        case("exec.joins-container", "runtime.md#operations", Runc,
            "exec runs a process inside the running container's namespaces",
            exec_joins).mutant("noop:exec"),
    ]
}

fn smoke(ctx: &mut Ctx) {
    let Some(pid) = ctx.create_ok() else { return };
    let st = ctx.status();
    ctx.check_eq("state after create is `created`", st.as_str(), "created");
    let out = ctx.start();
    ctx.check("start succeeds", out.ok(), out.describe());
    let exit = ctx.wait_exit(pid);
    ctx.check_eq("the program runs to exit code 0", exit, Some(Exit::Code(0)));
    let st = ctx.status();
    ctx.check_eq(
        "state after the program exits is `stopped`",
        st.as_str(),
        "stopped",
    );
    let out = ctx.delete();
    ctx.check(
        "delete of a stopped container succeeds",
        out.ok(),
        out.describe(),
    );
    let gone = ctx.state();
    ctx.check(
        "state of a deleted container is an error",
        gone.is_err(),
        "state still answers after delete",
    );
}

fn state_fields(ctx: &mut Ctx) {
    ctx.set(
        "/annotations",
        json!({"org.example.key": "value-1", "com.example.other": "2"}),
    );
    if ctx.create_ok().is_none() {
        return;
    }
    let state = match ctx.state() {
        Ok(s) => s,
        Err(e) => return ctx.check("state answers", false, e),
    };
    let version = state["ociVersion"].as_str().unwrap_or("");
    ctx.check(
        "ociVersion is a semver string",
        version.split('.').count() >= 3,
        format!("ociVersion {version:?}"),
    );
    let id = ctx.id.clone();
    ctx.check_eq(
        "id is the container id",
        state["id"].as_str(),
        Some(id.as_str()),
    );
    ctx.check_eq(
        "status is `created`",
        state["status"].as_str(),
        Some("created"),
    );
    let pid = state["pid"].as_i64().unwrap_or(0);
    ctx.check("pid is set while created", pid > 0, format!("pid {pid}"));
    let bundle = ctx.bundle.display().to_string();
    let got = state["bundle"].as_str().unwrap_or("").to_string();
    let same = std::fs::canonicalize(&got).ok() == std::fs::canonicalize(&bundle).ok();
    ctx.check(
        "bundle is the bundle's absolute path",
        got.starts_with('/') && same,
        format!("bundle {got:?}, expected {bundle:?}"),
    );
    ctx.check_eq(
        "annotations are the config's",
        state["annotations"].clone(),
        json!({"org.example.key": "value-1", "com.example.other": "2"}),
    );
}

fn state_pid(ctx: &mut Ctx) {
    let Some((pid, report)) = ctx.run_holding(&[]) else {
        return;
    };
    let host_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let inside = report.str("/namespaces/pid");
    ctx.check_eq(
        "the state pid lives in the container's pid namespace",
        host_ns,
        inside,
    );
    let host_uts = std::fs::read_link(format!("/proc/{pid}/ns/uts"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let inside = report.str("/namespaces/uts");
    ctx.check_eq(
        "the state pid lives in the container's uts namespace",
        host_uts,
        inside,
    );
    ctx.check_eq(
        "the program is pid 1 of its pid namespace",
        report.get("/pid").as_i64(),
        Some(1),
    );
}

fn state_running(ctx: &mut Ctx) {
    if ctx.run_holding(&[]).is_none() {
        return;
    }
    let st = ctx.status();
    ctx.check_eq("state after start is `running`", st.as_str(), "running");
}

fn state_id(ctx: &mut Ctx) {
    if ctx.create_ok().is_none() {
        return;
    }
    let st = ctx.state().unwrap_or_default();
    let id = ctx.id.clone();
    ctx.check_eq("state id", st["id"].as_str(), Some(id.as_str()));
}

fn program_not_run(ctx: &mut Ctx) {
    ctx.checker(&[]);
    let Some(pid) = ctx.create_ok() else { return };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = std::fs::read_to_string(ctx.path("container.out")).unwrap_or_default();
    ctx.check(
        "no output from the program before start",
        before.is_empty(),
        format!("program printed {} bytes before start", before.len()),
    );
    let out = ctx.start();
    ctx.check("start succeeds", out.ok(), out.describe());
    let _ = ctx.wait_exit(pid);
    let after = std::fs::read_to_string(ctx.path("container.out")).unwrap_or_default();
    ctx.check(
        "the program ran after start",
        after.contains("\"pid\""),
        "no report after start",
    );
}

fn id_unique(ctx: &mut Ctx) {
    if ctx.create_ok().is_none() {
        return;
    }
    let out = ctx.create();
    ctx.check(
        "second create with the same id fails",
        !out.ok(),
        out.describe(),
    );
    let st = ctx.status();
    ctx.check_eq(
        "the first container is still `created`",
        st.as_str(),
        "created",
    );
}

fn invalid_config(ctx: &mut Ctx) {
    // Write garbage instead of the config: create_id rewrites config.json,
    // so call the runtime directly.
    let path = ctx.path("config.json");
    let _ = std::fs::write(&path, "{ this is not json");
    let bundle = ctx.bundle.display().to_string();
    let id = ctx.id.clone();
    let out = ctx.rt(&["create", "--bundle", &bundle, &id]);
    ctx.check(
        "create with malformed config.json fails",
        !out.ok(),
        out.describe(),
    );
    let st = ctx.state();
    ctx.check(
        "no container exists after the failed create",
        st.is_err(),
        "state answers for a container whose create failed",
    );
    let _ = std::fs::remove_file(&path);
    let out = ctx.rt(&["create", "--bundle", &bundle, &id]);
    ctx.check(
        "create with no config.json fails",
        !out.ok(),
        out.describe(),
    );
}

fn missing_root(ctx: &mut Ctx) {
    ctx.set("/root/path", json!("no-such-rootfs"));
    let out = ctx.create();
    ctx.check(
        "create with a missing root.path fails",
        !out.ok(),
        out.describe(),
    );
}

fn start_twice(ctx: &mut Ctx) {
    if ctx.run_holding(&[]).is_none() {
        return;
    }
    let out = ctx.start();
    ctx.check(
        "start on a running container fails",
        !out.ok(),
        out.describe(),
    );
    let st = ctx.status();
    ctx.check_eq("the container is still `running`", st.as_str(), "running");
}

fn start_stopped(ctx: &mut Ctx) {
    ctx.checker(&[]);
    let Some(pid) = ctx.run_ok() else { return };
    let _ = ctx.wait_exit(pid);
    let out = ctx.start();
    ctx.check(
        "start on a stopped container fails",
        !out.ok(),
        out.describe(),
    );
    let st = ctx.status();
    ctx.check_eq("the container stays `stopped`", st.as_str(), "stopped");
}

fn start_no_process(ctx: &mut Ctx) {
    ctx.remove("/process");
    let out = ctx.create();
    ctx.check(
        "create accepts a config without process",
        out.ok(),
        out.describe(),
    );
    let out = ctx.start();
    ctx.check(
        "start without process generates an error",
        !out.ok(),
        out.describe(),
    );
}

fn kill_signal(ctx: &mut Ctx) {
    let Some((pid, _)) = ctx.run_holding(&[]) else {
        return;
    };
    let out = ctx.kill("SIGUSR1");
    ctx.check("kill SIGUSR1 succeeds", out.ok(), out.describe());
    let exit = ctx.wait_exit(pid);
    ctx.check_eq(
        "the program received SIGUSR1",
        exit,
        Some(Exit::Code(100 + libc::SIGUSR1)),
    );
}

fn kill_signal_number(ctx: &mut Ctx) {
    let Some((pid, _)) = ctx.run_holding(&[]) else {
        return;
    };
    let out = ctx.kill("12");
    ctx.check("kill 12 succeeds", out.ok(), out.describe());
    let exit = ctx.wait_exit(pid);
    ctx.check_eq(
        "the program received signal 12 (SIGUSR2)",
        exit,
        Some(Exit::Code(100 + libc::SIGUSR2)),
    );
}

fn kill_default(ctx: &mut Ctx) {
    let Some((pid, _)) = ctx.run_holding(&[]) else {
        return;
    };
    let id = ctx.id.clone();
    let out = ctx.rt(&["kill", &id]);
    ctx.check("kill without a signal succeeds", out.ok(), out.describe());
    let exit = ctx.wait_exit(pid);
    ctx.check_eq(
        "the program received SIGTERM",
        exit,
        Some(Exit::Code(100 + libc::SIGTERM)),
    );
}

fn kill_created(ctx: &mut Ctx) {
    let Some(pid) = ctx.create_ok() else { return };
    let out = ctx.kill("SIGKILL");
    ctx.check(
        "kill SIGKILL on a created container succeeds",
        out.ok(),
        out.describe(),
    );
    let exit = ctx.wait_exit(pid);
    ctx.check(
        "the created container's process is gone",
        exit.is_some(),
        "still alive 10s after SIGKILL",
    );
    let st = ctx.status();
    ctx.check_eq("state becomes `stopped`", st.as_str(), "stopped");
}

fn kill_stopped(ctx: &mut Ctx) {
    ctx.checker(&[]);
    let Some(pid) = ctx.run_ok() else { return };
    let _ = ctx.wait_exit(pid);
    let out = ctx.kill("SIGTERM");
    ctx.check(
        "kill on a stopped container fails",
        !out.ok(),
        out.describe(),
    );
    let st = ctx.status();
    ctx.check_eq("the container stays `stopped`", st.as_str(), "stopped");
}

fn delete_running(ctx: &mut Ctx) {
    let Some((pid, _)) = ctx.run_holding(&[]) else {
        return;
    };
    let out = ctx.delete();
    ctx.check(
        "delete on a running container fails",
        !out.ok(),
        out.describe(),
    );
    let st = ctx.status();
    ctx.check_eq("the container is still `running`", st.as_str(), "running");
    let alive = !ctx.reaper.has_exited(pid);
    ctx.check("its process is still alive", alive, "the process exited");
}

fn delete_stopped(ctx: &mut Ctx) {
    ctx.checker(&[]);
    let Some(pid) = ctx.run_ok() else { return };
    let _ = ctx.wait_exit(pid);
    let out = ctx.delete();
    ctx.check("delete succeeds", out.ok(), out.describe());
    let st = ctx.state();
    ctx.check(
        "state errors after delete",
        st.is_err(),
        "state still answers",
    );
    let cg = format!("/sys/fs/cgroup/pids/oci-conformance/{}", ctx.id);
    if std::path::Path::new("/sys/fs/cgroup/pids").is_dir() {
        ctx.check(
            "the container's cgroup is removed",
            !std::path::Path::new(&cg).exists(),
            format!("{cg} still exists"),
        );
    }
    let out = ctx.create();
    ctx.check("the id can be reused", out.ok(), out.describe());
}

fn delete_created(ctx: &mut Ctx) {
    if ctx.create_ok().is_none() {
        return;
    }
    let out = ctx.delete();
    ctx.check(
        "delete on a created container fails",
        !out.ok(),
        out.describe(),
    );
}

fn delete_force(ctx: &mut Ctx) {
    let Some((pid, _)) = ctx.run_holding(&[]) else {
        return;
    };
    let id = ctx.id.clone();
    let out = ctx.rt(&["delete", "--force", &id]);
    ctx.check("delete --force succeeds", out.ok(), out.describe());
    let exit = ctx.wait_exit(pid);
    ctx.check("the process is killed", exit.is_some(), "still alive");
    let st = ctx.state();
    ctx.check(
        "state errors afterwards",
        st.is_err(),
        "state still answers",
    );
}

fn unknown_id(ctx: &mut Ctx) {
    let id = format!("{}-never-created", ctx.id);
    for (op, args) in [
        ("state", vec!["state", id.as_str()]),
        ("start", vec!["start", id.as_str()]),
        ("kill", vec!["kill", id.as_str(), "SIGTERM"]),
        ("delete", vec!["delete", id.as_str()]),
    ] {
        let out = ctx.rt(&args);
        ctx.check(
            format!("{op} of an unknown id fails"),
            !out.ok(),
            out.describe(),
        );
    }
}

fn exit_code(ctx: &mut Ctx) {
    ctx.checker(&["exit:7"]);
    let Some(pid) = ctx.run_ok() else { return };
    let exit = ctx.wait_exit(pid);
    ctx.check_eq("exit code 7 is observed", exit, Some(Exit::Code(7)));
}

fn stopped_after_signal(ctx: &mut Ctx) {
    let Some((pid, _)) = ctx.run_holding(&[]) else {
        return;
    };
    let out = ctx.kill("SIGKILL");
    ctx.check("kill SIGKILL succeeds", out.ok(), out.describe());
    let exit = ctx.wait_exit(pid);
    ctx.check_eq(
        "the process died of SIGKILL",
        exit,
        Some(Exit::Signal(libc::SIGKILL)),
    );
    let st = ctx.status();
    ctx.check_eq("state is `stopped`", st.as_str(), "stopped");
}

fn pause_resume(ctx: &mut Ctx) {
    let Some((pid, _)) = ctx.run_holding(&[]) else {
        return;
    };
    let id = ctx.id.clone();
    let out = ctx.rt(&["pause", &id]);
    ctx.check("pause succeeds", out.ok(), out.describe());
    let st = ctx.status();
    ctx.check_eq("state is `paused`", st.as_str(), "paused");
    if std::path::Path::new("/sys/fs/cgroup/freezer").exists() {
        let freezer = std::fs::read_to_string(format!(
            "/sys/fs/cgroup/freezer/oci-conformance/{id}/freezer.state"
        ))
        .unwrap_or_default();
        ctx.check_eq("the freezer cgroup is FROZEN", freezer.trim(), "FROZEN");
    } else {
        // cgroup v2: the kernel reports the frozen state in cgroup.events.
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let events = cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .and_then(|p| std::fs::read_to_string(format!("/sys/fs/cgroup{p}/cgroup.events")).ok())
            .unwrap_or_default();
        ctx.check(
            "the cgroup is frozen (cgroup.events: frozen 1)",
            events.lines().any(|l| l == "frozen 1"),
            events.replace('\n', "; "),
        );
    }
    let stopped = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("State:") && !l.contains("R (running)"));
    ctx.check(
        "the process is not running while paused",
        stopped,
        "State: R",
    );
    let out = ctx.rt(&["resume", &id]);
    ctx.check("resume succeeds", out.ok(), out.describe());
    let st = ctx.status();
    ctx.check_eq("state is `running` again", st.as_str(), "running");
}

fn pid_file(ctx: &mut Ctx) {
    if ctx.write_config().is_err() {
        return ctx.check("config written", false, "cannot write config");
    }
    let pidfile = ctx.path("pidfile");
    let (bundle, id, pf) = (
        ctx.bundle.display().to_string(),
        ctx.id.clone(),
        pidfile.display().to_string(),
    );
    let out = ctx.rt(&["create", "--bundle", &bundle, "--pid-file", &pf, &id]);
    ctx.check("create --pid-file succeeds", out.ok(), out.describe());
    let written: Option<i64> = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let state_pid = ctx.state().ok().and_then(|s| s["pid"].as_i64());
    ctx.check(
        "pid file matches state's pid",
        written.is_some() && written == state_pid,
        format!("pid file {written:?}, state {state_pid:?}"),
    );
}

fn exec_joins(ctx: &mut Ctx) {
    let Some((_, init)) = ctx.run_holding(&[]) else {
        return;
    };
    let id = ctx.id.clone();
    let out = ctx.rt(&["exec", &id, "/checker"]);
    ctx.check("exec succeeds", out.ok(), out.describe());
    let report: serde_json::Value = serde_json::from_str(
        out.stdout
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or("{}"),
    )
    .unwrap_or_default();
    for ns in ["pid", "mnt", "uts", "ipc", "net"] {
        let p = format!("/namespaces/{ns}");
        ctx.check_eq(
            format!("exec'd process shares the {ns} namespace"),
            report.pointer(&p).cloned(),
            Some(init.get(&p).clone()),
        );
    }
    ctx.check_eq(
        "exec'd process sees the hostname",
        report["hostname"].as_str(),
        Some("oci-conf"),
    );
}

fn config_snapshot(ctx: &mut Ctx) {
    ctx.set("/hostname", json!("before-create"));
    ctx.checker(&[]);
    let Some(pid) = ctx.create_ok() else { return };
    let mut changed = ctx.config.clone();
    changed["hostname"] = json!("after-create");
    changed["process"]["env"] = json!(["PATH=/bin", "CHANGED=1"]);
    let _ = std::fs::write(ctx.path("config.json"), changed.to_string());
    let out = ctx.start();
    ctx.check("start succeeds", out.ok(), out.describe());
    let _ = ctx.wait_exit(pid);
    let text = std::fs::read_to_string(ctx.path("container.out")).unwrap_or_default();
    let r: serde_json::Value =
        serde_json::from_str(text.lines().find(|l| l.starts_with('{')).unwrap_or("{}"))
            .unwrap_or_default();
    ctx.check_eq(
        "hostname is the one from create time",
        r["hostname"].as_str(),
        Some("before-create"),
    );
    let env = r["env"].to_string();
    ctx.check(
        "env is the one from create time",
        r.is_object() && !env.contains("CHANGED=1"),
        format!("env {env}"),
    );
}

fn unknown_properties(ctx: &mut Ctx) {
    ctx.set("/org.example.unknown", json!({"nested": true}));
    ctx.set("/process/org.example.unknownToo", json!(1));
    ctx.checker(&[]);
    let Some(pid) = ctx.run_ok() else { return };
    let exit = ctx.wait_exit(pid);
    ctx.check_eq("the container runs normally", exit, Some(Exit::Code(0)));
}

fn invalid_version(ctx: &mut Ctx) {
    ctx.set("/ociVersion", json!("invalid"));
    let out = ctx.create();
    let refused = !out.ok() || !ctx.start().ok();
    ctx.check(
        "ociVersion \"invalid\" is refused at create or start",
        refused,
        out.describe(),
    );
}

fn keeps_foreign(ctx: &mut Ctx) {
    let src = ctx.path("foreign");
    let _ = std::fs::create_dir_all(&src);
    let _ = std::fs::write(src.join("keep"), "keep\n");
    ctx.push("/mounts", json!({"destination": "/mnt/foreign", "type": "none", "source": src.display().to_string(), "options": ["rbind"]}));
    ctx.checker(&[]);
    let Some(pid) = ctx.run_ok() else { return };
    let _ = ctx.wait_exit(pid);
    let cg = format!("/sys/fs/cgroup/pids/oci-conformance/{}", ctx.id);
    let out = ctx.delete();
    ctx.check("delete succeeds", out.ok(), out.describe());
    ctx.check(
        "the bind source and its file survive delete",
        src.join("keep").exists(),
        "the bind mount source was removed",
    );
    if std::path::Path::new("/sys/fs/cgroup/pids").is_dir() {
        ctx.check(
            "the cgroup create made is removed",
            !std::path::Path::new(&cg).exists(),
            format!("{cg} still exists"),
        );
    }
}

fn missing_id(ctx: &mut Ctx) {
    for op in ["state", "start", "kill", "delete"] {
        let out = ctx.rt(&[op]);
        ctx.check(
            format!("{op} without an id fails"),
            !out.ok(),
            out.describe(),
        );
    }
}

fn report_of(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().find(|l| l.starts_with('{')).unwrap_or("{}"))
        .unwrap_or_default()
}

fn exec_process_json(ctx: &mut Ctx) {
    if ctx.run_holding(&[]).is_none() {
        return;
    }
    let process = json!({
        "args": ["/checker", "exit:0"],
        "cwd": "/data",
        "env": ["PATH=/bin", "EXEC_VAR=yes"],
        "user": {"uid": 1000, "gid": 1000},
        "terminal": false,
    });
    let file = ctx.path("exec-process.json");
    let _ = std::fs::write(&file, process.to_string());
    let (id, f) = (ctx.id.clone(), file.display().to_string());
    let out = ctx.rt(&["exec", "--process", &f, &id]);
    ctx.check("exec --process succeeds", out.ok(), out.describe());
    let r = report_of(&out.stdout);
    ctx.check_eq("cwd is /data", r["cwd"].as_str(), Some("/data"));
    ctx.check(
        "env holds EXEC_VAR=yes",
        r["env"]
            .as_array()
            .is_some_and(|e| e.iter().any(|v| v == "EXEC_VAR=yes")),
        format!("env {}", r["env"]),
    );
    ctx.check_eq(
        "uid/gid are 1000/1000",
        (r["uid"].as_u64(), r["gid"].as_u64()),
        (Some(1000), Some(1000)),
    );
    ctx.check(
        "the exec'd process is not pid 1",
        r["pid"].as_i64().is_some_and(|p| p > 1),
        format!("pid {}", r["pid"]),
    );
}

fn exec_stopped(ctx: &mut Ctx) {
    ctx.checker(&[]);
    let Some(pid) = ctx.run_ok() else { return };
    let _ = ctx.wait_exit(pid);
    let id = ctx.id.clone();
    let out = ctx.rt(&["exec", &id, "/checker"]);
    ctx.check(
        "exec into a stopped container fails",
        !out.ok(),
        out.describe(),
    );
}
