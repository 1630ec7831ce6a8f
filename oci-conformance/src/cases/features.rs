//! features.md: the `features` command describes what the runtime supports.

use super::case;
use crate::case::{Case, Ctx, Level::*};
use crate::jsonptr;
use serde_json::Value;

pub fn cases() -> Vec<Case> {
    vec![
        case("features.document", "features.md", Must,
            "`features` prints a JSON document with ociVersionMin/Max, hooks, mountOptions and linux sections",
            document).mutant("exit:features=1"),
        case("features.oci-version-range", "features.md", Must,
            "ociVersionMax is not below ociVersionMin, and configs with either version are accepted",
            version_range).mutant("exit:create=1"),
        case("features.namespaces", "features.md#linux", Should,
            "linux.namespaces lists the namespace types the runtime supports",
            namespaces).mutant("noop:features"),
        case("features.capabilities", "features.md#linux", Should,
            "linux.capabilities lists capability names",
            capabilities).mutant("noop:features"),
        case("features.seccomp", "features.md#linux", Should,
            "linux.seccomp says whether seccomp is enabled and which actions and operators are known",
            seccomp).mutant("noop:features"),
        case("features.cgroup", "features.md#linux", Should,
            "linux.cgroup says whether v1/v2/systemd are supported",
            cgroup).mutant("noop:features"),
    ]
}

fn features(ctx: &mut Ctx) -> Option<Value> {
    let out = ctx.rt(&["features"]);
    ctx.check("features succeeds", out.ok(), out.describe());
    if !out.ok() {
        return None;
    }
    match serde_json::from_str::<Value>(out.stdout.trim()) {
        Ok(v) if v.is_object() => Some(v),
        _ => {
            ctx.check(
                "features prints a JSON object",
                false,
                out.stdout.chars().take(200).collect::<String>(),
            );
            None
        }
    }
}

fn semver(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.split('.').count() >= 3
            && s.split('.')
                .next()
                .is_some_and(|m| m.parse::<u32>().is_ok())
    })
}

fn list(v: &Value, p: &str) -> Vec<String> {
    v.pointer(p).map(jsonptr::strings).unwrap_or_default()
}

fn document(ctx: &mut Ctx) {
    let Some(f) = features(ctx) else { return };
    ctx.check(
        "ociVersionMin is a version",
        semver(&f["ociVersionMin"]),
        format!("{}", f["ociVersionMin"]),
    );
    ctx.check(
        "ociVersionMax is a version",
        semver(&f["ociVersionMax"]),
        format!("{}", f["ociVersionMax"]),
    );
    let hooks = list(&f, "/hooks");
    for h in [
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        ctx.check(
            format!("hooks lists {h}"),
            hooks.iter().any(|x| x == h),
            format!("hooks {hooks:?}"),
        );
    }
    let opts = list(&f, "/mountOptions");
    for o in ["ro", "nosuid", "nodev", "noexec", "bind"] {
        ctx.check(
            format!("mountOptions lists {o}"),
            opts.iter().any(|x| x == o),
            format!("{} options", opts.len()),
        );
    }
}

fn semver_key(v: &str) -> (u64, u64, u64) {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let mut it = core.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

fn version_range(ctx: &mut Ctx) {
    let Some(f) = features(ctx) else { return };
    let (min, max) = (
        f["ociVersionMin"].as_str().unwrap_or("").to_string(),
        f["ociVersionMax"].as_str().unwrap_or("").to_string(),
    );
    ctx.check(
        "ociVersionMax is not below ociVersionMin",
        semver_key(&max) >= semver_key(&min),
        format!("min {min}, max {max}"),
    );
    let first = ctx.id.clone();
    for (which, v) in [("ociVersionMin", min), ("ociVersionMax", max)] {
        ctx.id = format!("{first}-{}", &which[10..]);
        ctx.set("/ociVersion", serde_json::json!(v));
        ctx.set(
            "/linux/cgroupsPath",
            serde_json::json!(format!("/oci-conformance/{}", ctx.id)),
        );
        let out = ctx.create();
        ctx.check(
            format!("a config with ociVersion {which} ({v}) is accepted"),
            out.ok(),
            out.describe(),
        );
    }
    ctx.id = first;
}

fn namespaces(ctx: &mut Ctx) {
    let Some(f) = features(ctx) else { return };
    let ns = list(&f, "/linux/namespaces");
    for t in ["pid", "network", "ipc", "uts", "mount", "user", "cgroup"] {
        ctx.check(
            format!("namespaces lists {t}"),
            ns.iter().any(|x| x == t),
            format!("namespaces {ns:?}"),
        );
    }
}

fn capabilities(ctx: &mut Ctx) {
    let Some(f) = features(ctx) else { return };
    let caps = list(&f, "/linux/capabilities");
    ctx.check(
        "capabilities lists CAP_CHOWN and CAP_SYS_ADMIN",
        caps.iter().any(|c| c == "CAP_CHOWN") && caps.iter().any(|c| c == "CAP_SYS_ADMIN"),
        format!("{} capabilities", caps.len()),
    );
}

fn seccomp(ctx: &mut Ctx) {
    let Some(f) = features(ctx) else { return };
    ctx.check(
        "linux.seccomp.enabled is a boolean",
        f.pointer("/linux/seccomp/enabled")
            .is_some_and(|v| v.is_boolean()),
        format!("{}", f["linux"]["seccomp"]),
    );
    let actions = list(&f, "/linux/seccomp/actions");
    ctx.check(
        "seccomp actions include SCMP_ACT_ALLOW and SCMP_ACT_ERRNO",
        actions.iter().any(|a| a == "SCMP_ACT_ALLOW")
            && actions.iter().any(|a| a == "SCMP_ACT_ERRNO"),
        format!("actions {actions:?}"),
    );
    let ops = list(&f, "/linux/seccomp/operators");
    ctx.check(
        "seccomp operators include SCMP_CMP_EQ",
        ops.iter().any(|o| o == "SCMP_CMP_EQ"),
        format!("operators {ops:?}"),
    );
}

fn cgroup(ctx: &mut Ctx) {
    let Some(f) = features(ctx) else { return };
    for k in ["v1", "v2"] {
        ctx.check(
            format!("linux.cgroup.{k} is a boolean"),
            f.pointer(&format!("/linux/cgroup/{k}"))
                .is_some_and(|v| v.is_boolean()),
            format!("{}", f["linux"]["cgroup"]),
        );
    }
}
