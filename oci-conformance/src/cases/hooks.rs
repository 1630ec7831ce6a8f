//! config.md#posix-platform-hooks and runtime.md#lifecycle: each hook runs at
//! its step, in order, with the state on stdin, its args, env and timeout;
//! failing hooks fail (or do not fail) the operation as the spec says.

use super::case;
use crate::case::{Case, Ctx, Level::*};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub fn cases() -> Vec<Case> {
    vec![
        case("hooks.order", "runtime.md#lifecycle", Must,
            "createRuntime and createContainer run at create, startContainer before the program at start, poststart after it, poststop at delete",
            order).mutant("drop:/hooks/startContainer"),
        case("hooks.prestart", "config.md#prestart", Must,
            "prestart hooks run at create, before the program (deprecated but required)", prestart)
            .mutant("drop:/hooks/prestart"),
        case("hooks.in-order", "config.md#posix-platform-hooks", Must,
            "hooks of one kind run in the listed order", in_order)
            .mutant("set:/hooks/createRuntime/0/args=[\"busybox\",\"true\"]"),
        case("hooks.state-stdin", "config.md#posix-platform-hooks", Must,
            "hooks receive the container state on stdin (id, pid, bundle, status)", state_stdin)
            .mutant("drop:/hooks/createRuntime"),
        case("hooks.state-status", "runtime.md#state", Must,
            "each hook's state names the status of its lifecycle step: created for prestart, createRuntime and createContainer (the environment exists), running for poststart, stopped for poststop",
            state_status).mutant("drop:/hooks/prestart").mutant_on_crun(),
        case("hooks.args-env", "config.md#posix-platform-hooks", Must,
            "a hook runs with its args and env", args_env)
            .mutant("drop:/hooks/createRuntime/0/env"),
        case("hooks.namespaces", "config.md#posix-platform-hooks", Must,
            "createRuntime runs in the runtime's namespaces; createContainer and startContainer in the container's",
            hook_namespaces).mutant("set:/linux/namespaces=[{\"type\":\"pid\"},{\"type\":\"network\"},{\"type\":\"ipc\"},{\"type\":\"uts\"},{\"type\":\"mount\",\"path\":\"/proc/1/ns/mnt\"}]"),
        case("hooks.createRuntime-fail", "config.md#createruntime-hooks", Must,
            "a failing createRuntime hook makes create fail, and the program never runs", |c| fail_at_create(c, "createRuntime"))
            .mutant("exit:create=0"),
        case("hooks.createContainer-fail", "config.md#createcontainer-hooks", Must,
            "a failing createContainer hook makes create fail, and the program never runs", |c| fail_at_create(c, "createContainer"))
            .mutant("exit:create=0"),
        case("hooks.prestart-fail", "config.md#prestart", Must,
            "a failing prestart hook makes create fail, and the program never runs", |c| fail_at_create(c, "prestart"))
            .mutant("exit:create=0"),
        case("hooks.startContainer-fail", "config.md#startcontainer-hooks", Must,
            "a failing startContainer hook makes start fail, and the program never runs", start_container_fail)
            .mutant("exit:start=0"),
        case("hooks.poststart-fail", "runtime.md#lifecycle", Must,
            "a failing poststart hook makes the runtime generate an error and stop the container", poststart_fail)
            .mutant("exit:create=0\nexit:start=0"),
        case("hooks.poststop-fail", "config.md#poststop", Must,
            "a failing poststop hook is only a warning: delete succeeds", poststop_fail)
            .mutant("exit:delete=1"),
        case("hooks.poststop-fail-continues", "runtime.md#lifecycle", Must,
            "after a failing poststop hook the remaining poststop hooks still run", poststop_fail_continues)
            .mutant("drop:/hooks/poststop/1").mutant_on_crun(),
        case("hooks.timeout", "config.md#posix-platform-hooks", Must,
            "a hook running past its timeout is aborted and create fails", timeout)
            .mutant("drop:/hooks/createRuntime/0/timeout"),
    ]
}

/// Hooks drain the state on stdin first: a runtime may die of SIGPIPE when a
/// hook exits before reading it, which is not what these cases check.
/// A host-side hook appending `line` to `<bundle>/hookdir/<file>`.
fn host_hook(ctx: &Ctx, script: &str) -> Value {
    let dir = ctx.path("rootfs/hookdir").display().to_string();
    json!({"path": "/bin/busybox", "args": ["busybox", "sh", "-c", format!("cat > /dev/null; cd {dir} && {script}")]})
}

/// A container-side hook (startContainer) writing in /hookdir.
fn container_hook(script: &str) -> Value {
    json!({"path": "/bin/busybox", "args": ["busybox", "sh", "-c", format!("cat > /dev/null; cd /hookdir && {script}")]})
}

fn log(ctx: &Ctx, file: &str) -> Vec<String> {
    std::fs::read_to_string(ctx.path(&format!("rootfs/hookdir/{file}")))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn order(ctx: &mut Ctx) {
    let hooks = json!({
        "createRuntime": [host_hook(ctx, "echo createRuntime >> order")],
        "createContainer": [host_hook(ctx, "echo createContainer >> order")],
        "startContainer": [container_hook("echo startContainer >> order")],
        "poststart": [host_hook(ctx, "echo poststart >> order")],
        "poststop": [host_hook(ctx, "echo poststop >> order")],
    });
    ctx.set("/hooks", hooks);
    ctx.set_args(&["/bin/sh", "-c", "echo program >> /hookdir/order"]);
    let Some(pid) = ctx.create_ok() else { return };
    let at_create = log(ctx, "order");
    ctx.check_eq(
        "create runs createRuntime then createContainer, nothing else",
        at_create.clone(),
        vec!["createRuntime".to_string(), "createContainer".to_string()],
    );
    let out = ctx.start();
    ctx.check("start succeeds", out.ok(), out.describe());
    let _ = ctx.wait_exit(pid);
    let at_start = log(ctx, "order");
    let tail: Vec<String> = at_start.iter().skip(2).cloned().collect();
    let sc = tail.iter().position(|l| l == "startContainer");
    let pr = tail.iter().position(|l| l == "program");
    let ps = tail.iter().position(|l| l == "poststart");
    ctx.check(
        "startContainer runs before the program",
        matches!((sc, pr), (Some(a), Some(b)) if a < b),
        format!("log {at_start:?}"),
    );
    ctx.check(
        "poststart runs at start",
        ps.is_some(),
        format!("log {at_start:?}"),
    );
    ctx.check(
        "poststop has not run before delete",
        !at_start.iter().any(|l| l == "poststop"),
        format!("log {at_start:?}"),
    );
    let out = ctx.delete();
    ctx.check("delete succeeds", out.ok(), out.describe());
    let at_delete = log(ctx, "order");
    ctx.check_eq(
        "delete runs poststop last",
        at_delete.last().map(String::as_str),
        Some("poststop"),
    );
}

fn prestart(ctx: &mut Ctx) {
    let h = host_hook(ctx, "echo prestart >> order");
    ctx.set("/hooks/prestart", json!([h]));
    if ctx.create_ok().is_none() {
        return;
    }
    ctx.check_eq(
        "prestart ran at create",
        log(ctx, "order"),
        vec!["prestart".to_string()],
    );
}

fn in_order(ctx: &mut Ctx) {
    let hooks: Vec<Value> = (1..=3)
        .map(|i| host_hook(ctx, &format!("echo {i} >> seq")))
        .collect();
    ctx.set("/hooks/createRuntime", json!(hooks));
    if ctx.create_ok().is_none() {
        return;
    }
    ctx.check_eq(
        "createRuntime hooks ran 1, 2, 3",
        log(ctx, "seq"),
        vec!["1".to_string(), "2".into(), "3".into()],
    );
}

fn state_stdin(ctx: &mut Ctx) {
    let dir = ctx.path("rootfs/hookdir").display().to_string();
    let raw = |file: &str| json!({"path": "/bin/busybox", "args": ["busybox", "sh", "-c", format!("cat > {dir}/{file}")]});
    let (cr, ps, pst) = (
        raw("state-createRuntime"),
        raw("state-poststart"),
        raw("state-poststop"),
    );
    ctx.set(
        "/hooks",
        json!({"createRuntime": [cr], "poststart": [ps], "poststop": [pst]}),
    );
    let Some((pid, _)) = ctx.run_holding(&[]) else {
        return;
    };
    let _ = ctx.kill("SIGKILL");
    let _ = ctx.wait_exit(pid);
    let out = ctx.delete();
    ctx.check("delete succeeds", out.ok(), out.describe());
    let bundle = std::fs::canonicalize(&ctx.bundle).unwrap_or_default();
    for hook in ["createRuntime", "poststart", "poststop"] {
        let text = std::fs::read_to_string(ctx.path(&format!("rootfs/hookdir/state-{hook}")))
            .unwrap_or_default();
        let state: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        ctx.check(
            format!("{hook} got a JSON state on stdin"),
            state.is_object(),
            format!("stdin {text:?}"),
        );
        let id = ctx.id.clone();
        ctx.check_eq(
            format!("{hook}'s state has the container id"),
            state["id"].as_str(),
            Some(id.as_str()),
        );
        let b = state["bundle"]
            .as_str()
            .map(|b| std::fs::canonicalize(b).unwrap_or_default());
        ctx.check_eq(
            format!("{hook}'s state has the bundle"),
            b,
            Some(bundle.clone()),
        );
        if hook != "poststop" {
            ctx.check_eq(
                format!("{hook}'s state has the container pid"),
                state["pid"].as_i64(),
                Some(pid as i64),
            );
        }
    }
}

/// The `status` field each hook finds on its stdin (runtime.md#state:
/// "created" is every moment after lifecycle step 2 until the program runs).
fn state_status(ctx: &mut Ctx) {
    let dir = ctx.path("rootfs/hookdir").display().to_string();
    let stages = [
        ("prestart", "created"),
        ("createRuntime", "created"),
        ("createContainer", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ];
    let mut hooks = serde_json::Map::new();
    for (stage, _) in stages {
        let script = format!("cat > {dir}/status-{stage}");
        hooks.insert(
            stage.into(),
            json!([{"path": "/bin/busybox", "args": ["busybox", "sh", "-c", script]}]),
        );
    }
    ctx.set("/hooks", Value::Object(hooks));
    let Some((pid, _)) = ctx.run_holding(&[]) else {
        return;
    };
    let _ = ctx.kill("SIGKILL");
    let _ = ctx.wait_exit(pid);
    let out = ctx.delete();
    ctx.check("delete succeeds", out.ok(), out.describe());
    for (stage, want) in stages {
        let text = std::fs::read_to_string(ctx.path(&format!("rootfs/hookdir/status-{stage}")))
            .unwrap_or_default();
        let state: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        ctx.check_eq(
            format!("{stage}'s state has status {want:?}"),
            state["status"].as_str(),
            Some(want),
        );
    }
}

fn args_env(ctx: &mut Ctx) {
    let dir = ctx.path("rootfs/hookdir").display().to_string();
    ctx.set("/hooks/createRuntime", json!([{
        "path": "/bin/busybox",
        "args": ["busybox", "sh", "-c", format!("echo \"$HOOK_VAR $0 $1\" > {dir}/args-env"), "first", "second"],
        "env": ["HOOK_VAR=from-env"]
    }]));
    if ctx.create_ok().is_none() {
        return;
    }
    ctx.check_eq(
        "the hook saw its env and args",
        log(ctx, "args-env"),
        vec!["from-env first second".to_string()],
    );
}

fn fail_at_create(ctx: &mut Ctx, kind: &str) {
    let h = host_hook(ctx, "exit 3");
    ctx.set(&format!("/hooks/{kind}"), json!([h]));
    ctx.set_args(&["/bin/sh", "-c", "echo program >> /hookdir/ran"]);
    let out = ctx.create();
    ctx.check(
        format!("create fails when {kind} fails"),
        !out.ok(),
        out.describe(),
    );
    if out.ok() {
        let _ = ctx.start();
    }
    std::thread::sleep(Duration::from_millis(100));
    ctx.check(
        "the program never ran",
        log(ctx, "ran").is_empty(),
        "the program ran",
    );
}

fn start_container_fail(ctx: &mut Ctx) {
    ctx.set("/hooks/startContainer", json!([container_hook("exit 3")]));
    ctx.set_args(&["/bin/sh", "-c", "echo program >> /hookdir/ran"]);
    if ctx.create_ok().is_none() {
        return;
    }
    let out = ctx.start();
    ctx.check(
        "start fails when startContainer fails",
        !out.ok(),
        out.describe(),
    );
    std::thread::sleep(Duration::from_millis(100));
    ctx.check(
        "the program never ran",
        log(ctx, "ran").is_empty(),
        "the program ran",
    );
}

fn poststart_fail(ctx: &mut Ctx) {
    let h = host_hook(ctx, "exit 3");
    ctx.set("/hooks/poststart", json!([h]));
    ctx.checker(&["hold"]);
    let created = ctx.create();
    let pid = if created.ok() { ctx.pid() } else { None };
    let started = if created.ok() {
        Some(ctx.start())
    } else {
        None
    };
    let reported = !created.ok() || started.as_ref().is_some_and(|o| !o.ok());
    let detail = started.as_ref().unwrap_or(&created).describe();
    ctx.check(
        "create or start generates an error for the failing poststart hook",
        reported,
        detail,
    );
    let stopped = match pid {
        Some(pid) => ctx.reaper.wait(pid, Duration::from_secs(5)).is_some(),
        None => true,
    };
    ctx.check(
        "the container's process is stopped",
        stopped,
        "the program is still running",
    );
}

fn poststop_fail(ctx: &mut Ctx) {
    let h = host_hook(ctx, "exit 3");
    ctx.set("/hooks/poststop", json!([h]));
    ctx.checker(&[]);
    let Some(pid) = ctx.run_ok() else { return };
    let _ = ctx.wait_exit(pid);
    let out = ctx.delete();
    ctx.check(
        "delete succeeds despite the failing poststop hook",
        out.ok(),
        out.describe(),
    );
    let gone = ctx.state().is_err();
    ctx.check("the container is gone", gone, "state still answers");
}

fn poststop_fail_continues(ctx: &mut Ctx) {
    let hooks = json!([
        host_hook(ctx, "exit 3"),
        host_hook(ctx, "echo second >> poststop")
    ]);
    ctx.set("/hooks/poststop", hooks);
    ctx.checker(&[]);
    let Some(pid) = ctx.run_ok() else { return };
    let _ = ctx.wait_exit(pid);
    let out = ctx.delete();
    ctx.check("delete succeeds", out.ok(), out.describe());
    ctx.check_eq(
        "the second poststop hook ran",
        log(ctx, "poststop"),
        vec!["second".to_string()],
    );
}

fn timeout(ctx: &mut Ctx) {
    let mut h = host_hook(ctx, "exec sleep 30");
    h["timeout"] = json!(1);
    ctx.set("/hooks/createRuntime", json!([h]));
    let start = Instant::now();
    let out = ctx.create();
    let took = start.elapsed();
    ctx.check(
        "create fails when the hook times out",
        !out.ok(),
        out.describe(),
    );
    ctx.check(
        "the hook is aborted after about its timeout",
        took < Duration::from_secs(15),
        format!("create took {took:?}"),
    );
}

fn hook_namespaces(ctx: &mut Ctx) {
    let dir = ctx.path("rootfs/hookdir").display().to_string();
    let ns = |file: &str, dir: &str| {
        json!({"path": "/bin/busybox", "args": ["busybox", "sh", "-c",
        format!("cat > /dev/null; busybox readlink /proc/self/ns/mnt > {dir}/{file}; busybox readlink /proc/self/ns/uts >> {dir}/{file}")]})
    };
    ctx.set(
        "/hooks",
        json!({
            "createRuntime": [ns("ns-createRuntime", &dir)],
            "createContainer": [ns("ns-createContainer", &dir)],
            "startContainer": [ns("ns-startContainer", "/hookdir")],
        }),
    );
    let Some((_, r)) = ctx.run_holding(&[]) else {
        return;
    };
    let host = |k: &str| {
        std::fs::read_link(format!("/proc/self/ns/{k}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let inside = vec![r.str("/namespaces/mnt"), r.str("/namespaces/uts")];
    // The runtime's own mount namespace may be private (crun's wrapper), so
    // createRuntime is checked against the container's, and the host's uts.
    let cr = log(ctx, "ns-createRuntime");
    ctx.check(
        "createRuntime does not run in the container's mount namespace",
        cr.len() == 2 && cr[0] != inside[0],
        format!("createRuntime in {cr:?}, container in {inside:?}"),
    );
    ctx.check_eq(
        "createRuntime runs in the runtime's uts namespace",
        cr.get(1).cloned(),
        Some(host("uts")),
    );
    ctx.check_eq(
        "createContainer runs in the container's mount and uts namespaces",
        log(ctx, "ns-createContainer"),
        inside.clone(),
    );
    ctx.check_eq(
        "startContainer runs in the container's mount and uts namespaces",
        log(ctx, "ns-startContainer"),
        inside,
    );
}
