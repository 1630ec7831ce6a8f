//! config-linux.md#namespaces and #user-namespace-mappings: every type new,
//! absent (shared with the runtime) and joined by path.

use super::case;
use crate::case::{Case, Ctx, Level::*};
use serde_json::{json, Value};

pub fn cases() -> Vec<Case> {
    vec![
        case("ns.new.pid", "config-linux.md#namespaces", Must,
            "a pid namespace without path is a new namespace", |c| new_ns(c, "pid", "pid"))
            .mutant("set:/linux/namespaces=[{\"type\":\"network\"},{\"type\":\"ipc\"},{\"type\":\"uts\"},{\"type\":\"mount\"}]"),
        case("ns.new.network", "config-linux.md#namespaces", Must,
            "a network namespace without path is a new namespace", |c| new_ns(c, "network", "net"))
            .mutant("set:/linux/namespaces=[{\"type\":\"pid\"},{\"type\":\"ipc\"},{\"type\":\"uts\"},{\"type\":\"mount\"}]"),
        case("ns.new.ipc", "config-linux.md#namespaces", Must,
            "an ipc namespace without path is a new namespace", |c| new_ns(c, "ipc", "ipc"))
            .mutant("set:/linux/namespaces=[{\"type\":\"pid\"},{\"type\":\"network\"},{\"type\":\"uts\"},{\"type\":\"mount\"}]"),
        case("ns.new.uts", "config-linux.md#namespaces", Must,
            "a uts namespace without path is a new namespace", |c| new_ns(c, "uts", "uts"))
            .mutant("set:/linux/namespaces=[{\"type\":\"pid\"},{\"type\":\"network\"},{\"type\":\"ipc\"},{\"type\":\"mount\"}]\ndrop:/hostname"),
        case("ns.new.mount", "config-linux.md#namespaces", Must,
            "a mount namespace without path is a new namespace", |c| new_ns(c, "mount", "mnt"))
            .mutant("set:/linux/namespaces/4={\"type\":\"mount\",\"path\":\"/proc/1/ns/mnt\"}"),
        case("ns.new.cgroup", "config-linux.md#namespaces", Must,
            "a cgroup namespace without path is a new namespace", |c| new_ns(c, "cgroup", "cgroup"))
            .mutant("set:/linux/namespaces=[{\"type\":\"pid\"},{\"type\":\"network\"},{\"type\":\"ipc\"},{\"type\":\"uts\"},{\"type\":\"mount\"}]"),
        case("ns.new.user", "config-linux.md#user-namespace-mappings", Must,
            "a new user namespace gets uidMappings and gidMappings", user_ns)
            .mutant("set:/linux/uidMappings/0/hostID=200000"),
        case("ns.new.time", "config-linux.md#namespaces", Must,
            "a new time namespace gets linux.timeOffsets", time_ns)
            .mutant("drop:/linux/timeOffsets"),
        case("ns.absent.network", "config-linux.md#namespaces", Must,
            "a namespace type not listed is inherited from the runtime", absent_network)
            .mutant("set:/linux/namespaces=[{\"type\":\"pid\"},{\"type\":\"network\"},{\"type\":\"ipc\"},{\"type\":\"uts\"},{\"type\":\"mount\"}]"),
        case("ns.absent.ipc", "config-linux.md#namespaces", Must,
            "an ipc namespace not listed is inherited from the runtime", absent_ipc)
            .mutant("set:/linux/namespaces=[{\"type\":\"pid\"},{\"type\":\"network\"},{\"type\":\"ipc\"},{\"type\":\"uts\"},{\"type\":\"mount\"}]"),
        case("ns.path.network", "config-linux.md#namespaces", Must,
            "a network namespace with path joins that namespace", |c| join_ns(c, "network", "net"))
            .mutant("drop:/linux/namespaces/1/path"),
        case("ns.path.ipc", "config-linux.md#namespaces", Must,
            "an ipc namespace with path joins that namespace", |c| join_ns(c, "ipc", "ipc"))
            .mutant("drop:/linux/namespaces/2/path"),
        case("ns.path.uts", "config-linux.md#namespaces", Must,
            "a uts namespace with path joins that namespace", |c| join_ns(c, "uts", "uts"))
            .mutant("drop:/linux/namespaces/3/path"),
        case("ns.path.pid", "config-linux.md#namespaces", Must,
            "a pid namespace with path joins that namespace", |c| join_ns(c, "pid", "pid"))
            .mutant("drop:/linux/namespaces/0/path"),
        case("ns.path.cgroup", "config-linux.md#namespaces", Must,
            "a cgroup namespace with path joins that namespace", |c| join_ns(c, "cgroup", "cgroup"))
            .mutant("drop:/linux/namespaces/5/path"),
        case("ns.path.wrong-type", "config-linux.md#namespaces", Must,
            "a path that is not a namespace of the given type generates an error", wrong_type)
            .mutant("exit:create=0\nexit:start=0"),
        case("ns.duplicate", "config-linux.md#namespaces", Must,
            "a namespace type listed twice generates an error", duplicate)
            .mutant("exit:create=0"),
    ]
}

fn ns_list(types: &[&str]) -> Value {
    json!(types.iter().map(|t| json!({"type": t})).collect::<Vec<_>>())
}

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn new_ns(ctx: &mut Ctx, ty: &str, kind: &str) {
    ctx.set(
        "/linux/namespaces",
        ns_list(&["pid", "network", "ipc", "uts", "mount", "cgroup"]),
    );
    let Some(r) = ctx.run_checker() else { return };
    let inside = r.str(&format!("/namespaces/{kind}"));
    let host = host_ns(kind);
    ctx.check(
        format!("the {ty} namespace differs from the runtime's"),
        !inside.is_empty() && inside != host,
        format!("inside {inside:?}, host {host:?}"),
    );
}

fn user_ns(ctx: &mut Ctx) {
    ctx.set(
        "/linux/namespaces",
        ns_list(&["pid", "network", "ipc", "uts", "mount", "user"]),
    );
    ctx.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    ctx.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    // A cgroup v1 mount is not allowed from an unprivileged user namespace.
    if let Some(m) = ctx.config["mounts"].as_array_mut() {
        m.retain(|m| m["type"] != "cgroup");
    }
    let Some(r) = ctx.run_checker() else { return };
    let inside = r.str("/namespaces/user");
    ctx.check(
        "the user namespace differs from the runtime's",
        !inside.is_empty() && inside != host_ns("user"),
        format!("inside {inside:?}"),
    );
    let norm = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    ctx.check_eq(
        "uid_map is 0 100000 65536",
        norm(r.str("/uid_map")),
        "0 100000 65536".into(),
    );
    ctx.check_eq(
        "gid_map is 0 100000 65536",
        norm(r.str("/gid_map")),
        "0 100000 65536".into(),
    );
    ctx.check_eq(
        "the process is uid 0 inside",
        r.get("/uid").as_u64(),
        Some(0),
    );
}

fn time_ns(ctx: &mut Ctx) {
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        return ctx.skip("time namespace", "kernel has no time namespaces");
    }
    ctx.set(
        "/linux/namespaces",
        ns_list(&["pid", "network", "ipc", "uts", "mount", "time"]),
    );
    ctx.set("/linux/timeOffsets", json!({"monotonic": {"secs": 86400, "nanosecs": 0}, "boottime": {"secs": 172800, "nanosecs": 0}}));
    let Some(r) = ctx.run_checker() else { return };
    let inside = r.str("/namespaces/time");
    ctx.check(
        "the time namespace differs from the runtime's",
        !inside.is_empty() && inside != host_ns("time"),
        format!("inside {inside:?}"),
    );
    let offs = r.str("/timens_offsets");
    let has = |clock: &str, secs: &str| {
        offs.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 2
                && (f[0] == clock || f[0] == if clock == "monotonic" { "1" } else { "7" })
                && f[1] == secs
        })
    };
    ctx.check(
        "monotonic offset is 86400s",
        has("monotonic", "86400"),
        format!("timens_offsets {offs:?}"),
    );
    ctx.check(
        "boottime offset is 172800s",
        has("boottime", "172800"),
        format!("timens_offsets {offs:?}"),
    );
}

fn absent_network(ctx: &mut Ctx) {
    ctx.set(
        "/linux/namespaces",
        ns_list(&["pid", "ipc", "uts", "mount"]),
    );
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq(
        "the network namespace is the runtime's",
        r.str("/namespaces/net"),
        host_ns("net"),
    );
}

fn absent_ipc(ctx: &mut Ctx) {
    ctx.set(
        "/linux/namespaces",
        ns_list(&["pid", "network", "uts", "mount"]),
    );
    let Some(r) = ctx.run_checker() else { return };
    ctx.check_eq(
        "the ipc namespace is the runtime's",
        r.str("/namespaces/ipc"),
        host_ns("ipc"),
    );
}

/// Starts a holder container, then a second one joining its `ty` namespace.
fn join_ns(ctx: &mut Ctx, ty: &str, kind: &str) {
    let all = ["pid", "network", "ipc", "uts", "mount", "cgroup"];
    ctx.set("/linux/namespaces", ns_list(&all));
    let Some((holder_pid, holder)) = ctx.run_holding(&[]) else {
        return;
    };
    let mut list: Vec<Value> = all.iter().map(|t| json!({"type": t})).collect();
    if let Some(e) = list.iter_mut().find(|e| e["type"] == ty) {
        e["path"] = json!(format!("/proc/{holder_pid}/ns/{kind}"));
    }
    ctx.set("/linux/namespaces", json!(list));
    ctx.checker(&[]);
    let first = ctx.id.clone();
    ctx.id = format!("{first}-b");
    ctx.set(
        "/linux/cgroupsPath",
        json!(format!("/oci-conformance/{}", ctx.id)),
    );
    let _ = std::fs::remove_file(ctx.path("container.out"));
    let report = ctx.run_checker();
    ctx.id = first;
    let Some(r) = report else { return };
    let want = holder.str(&format!("/namespaces/{kind}"));
    ctx.check_eq(
        format!("the second container is in the first one's {ty} namespace"),
        r.str(&format!("/namespaces/{kind}")),
        want,
    );
    if ty != "mount" {
        let other = if ty == "ipc" { "net" } else { "ipc" };
        ctx.check(
            format!("other namespaces ({other}) are still new"),
            r.str(&format!("/namespaces/{other}")) != holder.str(&format!("/namespaces/{other}")),
            "shared a namespace that was not asked for",
        );
    }
}

fn wrong_type(ctx: &mut Ctx) {
    let all = ["pid", "network", "ipc", "uts", "mount"];
    ctx.set("/linux/namespaces", ns_list(&all));
    let Some((holder_pid, _)) = ctx.run_holding(&[]) else {
        return;
    };
    ctx.set("/linux/namespaces", json!([
        {"type": "pid"}, {"type": "network"}, {"type": "ipc", "path": format!("/proc/{holder_pid}/ns/net")},
        {"type": "uts"}, {"type": "mount"}
    ]));
    let first = ctx.id.clone();
    ctx.id = format!("{first}-b");
    ctx.set(
        "/linux/cgroupsPath",
        json!(format!("/oci-conformance/{}", ctx.id)),
    );
    let out = ctx.create();
    let ok = out.ok() && ctx.start().ok();
    ctx.id = first;
    ctx.check(
        "an ipc namespace whose path is a network namespace is refused",
        !ok,
        out.describe(),
    );
}

fn duplicate(ctx: &mut Ctx) {
    ctx.set(
        "/linux/namespaces",
        ns_list(&["pid", "network", "network", "ipc", "uts", "mount"]),
    );
    let out = ctx.create();
    ctx.check(
        "create with network listed twice fails",
        !out.ok(),
        out.describe(),
    );
}
