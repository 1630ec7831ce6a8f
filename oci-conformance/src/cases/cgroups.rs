//! config-linux.md#control-groups: cgroupsPath and resources, on v1 (this
//! host) and v2 (the cgroup v2 guest: `--filter tag:cgroup-v2`), and the
//! runc CLI's update/events.

use super::case;
use crate::case::{Case, Ctx, Level::*};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        case("cgroups.path", "config-linux.md#cgroups-path", Must,
            "an absolute cgroupsPath is the container's cgroup in every hierarchy", path)
            .tags(&["cgroup-v1"]).mutant("drop:/linux/cgroupsPath"),
        case("cgroups.v1.memory", "config-linux.md#memory", Must,
            "memory limit, reservation, swappiness and disableOOMKiller are written to the memory controller", v1_memory)
            .tags(&["cgroup-v1"]).mutant("drop:/linux/resources/memory"),
        case("cgroups.v1.memory-kernel", "config-linux.md#memory", Runc,
            "memory.kernel and kernelTCP (NOT RECOMMENDED; kernels since 5.16 ignore kmem limits) do not stop the container: create succeeds and the memory limit is still written",
            v1_memory_kernel)
            .tags(&["cgroup-v1"]).mutant("set:/linux/resources/memory/limit=1"),
        case("cgroups.v1.memory-swap", "config-linux.md#memory", Must,
            "memory.swap (memory+swap) is written to memory.memsw.limit_in_bytes", v1_swap)
            .tags(&["cgroup-v1"]).mutant("drop:/linux/resources/memory/swap"),
        case("cgroups.v1.cpu", "config-linux.md#cpu", Must,
            "cpu shares, quota and period are written to the cpu controller", v1_cpu)
            .tags(&["cgroup-v1"]).mutant("drop:/linux/resources/cpu/shares\ndrop:/linux/resources/cpu/quota"),
        case("cgroups.v1.cpuset", "config-linux.md#cpu", Must,
            "cpus and mems are written to the cpuset controller", v1_cpuset)
            .tags(&["cgroup-v1"]).mutant("drop:/linux/resources/cpu/cpus"),
        case("cgroups.v1.pids", "config-linux.md#pids", Must,
            "pids.limit is written to pids.max", v1_pids)
            .tags(&["cgroup-v1"]).mutant("drop:/linux/resources/pids"),
        case("cgroups.v1.blkio", "config-linux.md#block-io", Must,
            "blockIO weight is written to the blkio controller", v1_blkio)
            .tags(&["cgroup-v1"]).mutant("drop:/linux/resources/blockIO"),
        case("cgroups.v1.devices", "config-linux.md#allowed-device-list", Must,
            "the device allow-list is the config's (deny all, then allowed entries)", v1_devices)
            .tags(&["cgroup-v1"]).mutant("set:/linux/resources/devices=[{\"allow\":true,\"access\":\"rwm\"}]"),
        case("cgroups.devices.enforced", "config-linux.md#allowed-device-list", Must,
            "a device node not on the allow-list cannot be opened; an allowed one can", devices_enforced)
            .mutant("set:/linux/resources/devices/1/allow=false"),
        case("cgroups.hugetlb", "config-linux.md#huge-page-limits", Must,
            "hugepageLimits are written to the hugetlb controller", hugetlb)
            .tags(&["cgroup-v1"]).mutant("drop:/linux/resources/hugepageLimits"),
        case("cgroups.network", "config-linux.md#network", Must,
            "network classID and priorities are written to net_cls/net_prio", network)
            .tags(&["cgroup-v1"]).mutant("drop:/linux/resources/network"),
        case("cgroups.update", "runtime.md#operations", Runc,
            "update --resources changes a running container's limits", update)
            .tags(&["cgroup-v1"]).mutant("noop:update"),
        case("cgroups.events-stats", "runtime.md#operations", Runc,
            "events --stats reports the container's resource usage as JSON", events)
            .mutant("noop:events"),
        case("cgroups.v2.memory", "config-linux.md#memory", Must,
            "memory limit and reservation become memory.max and memory.low", v2_memory)
            .tags(&["cgroup-v2"]).mutant("drop:/linux/resources/memory"),
        case("cgroups.v2.cpu", "config-linux.md#cpu", Must,
            "cpu quota/period become cpu.max", v2_cpu)
            .tags(&["cgroup-v2"]).mutant("drop:/linux/resources/cpu"),
        case("cgroups.v2.pids", "config-linux.md#pids", Must,
            "pids.limit becomes pids.max", v2_pids)
            .tags(&["cgroup-v2"]).mutant("drop:/linux/resources/pids"),
        case("cgroups.v2.unified", "config-linux.md#unified", Must,
            "linux.resources.unified keys are written as cgroup v2 files", v2_unified)
            .tags(&["cgroup-v2"]).mutant("drop:/linux/resources/unified"),
        case("cgroups.v2.hugetlb", "config-linux.md#huge-page-limits", Must,
            "hugepageLimits become hugetlb.<size>.max", v2_hugetlb)
            .tags(&["cgroup-v2"]).mutant("drop:/linux/resources/hugepageLimits"),
        case("cgroups.v2.update", "runtime.md#operations", Runc,
            "update --resources changes a running container's pids.max", v2_update)
            .tags(&["cgroup-v2"]).mutant("noop:update"),
        case("cgroups.v2.path", "config-linux.md#cgroups-path", Must,
            "an absolute cgroupsPath is the container's cgroup (0::/path)", v2_path)
            .tags(&["cgroup-v2"]).mutant("drop:/linux/cgroupsPath"),
    ]
}

/// The host directory of `pid`'s cgroup in v1 hierarchy `ctrl`.
fn v1_dir(pid: i32, ctrl: &str) -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        ctrls
            .split(',')
            .any(|c| c == ctrl)
            .then(|| std::path::PathBuf::from(format!("/sys/fs/cgroup/{ctrl}{path}")))
    })
}

fn v2_dir(pid: i32) -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix("0::")
            .map(|p| std::path::PathBuf::from(format!("/sys/fs/cgroup{p}")))
    })
}

fn read_in(dir: &Option<std::path::PathBuf>, file: &str) -> Option<String> {
    dir.as_ref()
        .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
        .map(|s| s.trim().to_string())
}

fn path(ctx: &mut Ctx) {
    let Some(pid) = ctx.create_ok() else { return };
    let want = format!("/oci-conformance/{}", ctx.id);
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    for ctrl in ["memory", "pids", "cpu", "devices", "freezer"] {
        if !std::path::Path::new(&format!("/sys/fs/cgroup/{ctrl}")).exists() {
            continue;
        }
        let got = text.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls
                .split(',')
                .any(|c| c == ctrl)
                .then(|| path.to_string())
        });
        ctx.check_eq(
            format!("{ctrl} cgroup is {want}"),
            got.as_deref(),
            Some(want.as_str()),
        );
    }
}

fn v1_memory(ctx: &mut Ctx) {
    ctx.set("/linux/resources/memory", json!({"limit": 67108864, "reservation": 33554432, "swappiness": 30, "disableOOMKiller": true}));
    let Some(pid) = ctx.create_ok() else { return };
    let d = v1_dir(pid, "memory");
    ctx.check_eq(
        "memory.limit_in_bytes is 64 MiB",
        read_in(&d, "memory.limit_in_bytes").as_deref(),
        Some("67108864"),
    );
    ctx.check_eq(
        "memory.soft_limit_in_bytes is 32 MiB",
        read_in(&d, "memory.soft_limit_in_bytes").as_deref(),
        Some("33554432"),
    );
    if read_in(&d, "memory.swappiness").is_some() {
        ctx.check_eq(
            "memory.swappiness is 30",
            read_in(&d, "memory.swappiness").as_deref(),
            Some("30"),
        );
    }
    let oom = read_in(&d, "memory.oom_control").unwrap_or_default();
    ctx.check(
        "memory.oom_control has oom_kill_disable 1",
        oom.lines().any(|l| l == "oom_kill_disable 1"),
        format!("{oom:?}"),
    );
}

fn v1_memory_kernel(ctx: &mut Ctx) {
    ctx.set(
        "/linux/resources/memory",
        json!({"limit": 67108864, "kernel": 33554432, "kernelTCP": 16777216}),
    );
    let Some(pid) = ctx.create_ok() else { return };
    let d = v1_dir(pid, "memory");
    ctx.check_eq(
        "memory.limit_in_bytes is 64 MiB",
        read_in(&d, "memory.limit_in_bytes").as_deref(),
        Some("67108864"),
    );
}

fn v1_swap(ctx: &mut Ctx) {
    let root = v1_dir(std::process::id() as i32, "memory");
    if read_in(&root, "memory.memsw.limit_in_bytes").is_none() {
        return ctx.skip(
            "memory.memsw.limit_in_bytes is set",
            "swap accounting is off on this host (no memory.memsw files)",
        );
    }
    ctx.set(
        "/linux/resources/memory",
        json!({"limit": 67108864, "swap": 134217728}),
    );
    let Some(pid) = ctx.create_ok() else { return };
    let d = v1_dir(pid, "memory");
    ctx.check_eq(
        "memory.memsw.limit_in_bytes is 128 MiB",
        read_in(&d, "memory.memsw.limit_in_bytes").as_deref(),
        Some("134217728"),
    );
}

fn v1_cpu(ctx: &mut Ctx) {
    ctx.set(
        "/linux/resources/cpu",
        json!({"shares": 512, "quota": 50000, "period": 100000}),
    );
    let Some(pid) = ctx.create_ok() else { return };
    let d = v1_dir(pid, "cpu");
    ctx.check_eq(
        "cpu.shares is 512",
        read_in(&d, "cpu.shares").as_deref(),
        Some("512"),
    );
    ctx.check_eq(
        "cpu.cfs_quota_us is 50000",
        read_in(&d, "cpu.cfs_quota_us").as_deref(),
        Some("50000"),
    );
    ctx.check_eq(
        "cpu.cfs_period_us is 100000",
        read_in(&d, "cpu.cfs_period_us").as_deref(),
        Some("100000"),
    );
}

fn v1_cpuset(ctx: &mut Ctx) {
    ctx.set("/linux/resources/cpu", json!({"cpus": "0", "mems": "0"}));
    let Some(pid) = ctx.create_ok() else { return };
    let d = v1_dir(pid, "cpuset");
    ctx.check_eq(
        "cpuset.cpus is 0",
        read_in(&d, "cpuset.cpus").as_deref(),
        Some("0"),
    );
    ctx.check_eq(
        "cpuset.mems is 0",
        read_in(&d, "cpuset.mems").as_deref(),
        Some("0"),
    );
}

fn v1_pids(ctx: &mut Ctx) {
    ctx.set("/linux/resources/pids", json!({"limit": 42}));
    let Some(pid) = ctx.create_ok() else { return };
    let d = v1_dir(pid, "pids");
    ctx.check_eq(
        "pids.max is 42",
        read_in(&d, "pids.max").as_deref(),
        Some("42"),
    );
}

fn v1_blkio(ctx: &mut Ctx) {
    let root = v1_dir(std::process::id() as i32, "blkio");
    let file = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| read_in(&root, f).is_some());
    let Some(file) = file else {
        return ctx.skip(
            "blkio weight is applied",
            "the blkio controller has no weight file here (no CFQ/BFQ)",
        );
    };
    ctx.set("/linux/resources/blockIO", json!({"weight": 300}));
    let Some(pid) = ctx.create_ok() else { return };
    let d = v1_dir(pid, "blkio");
    let got = read_in(&d, file).unwrap_or_default();
    ctx.check(
        format!("{file} is 300"),
        got.split_whitespace().any(|w| w == "300"),
        format!("{file} {got:?}"),
    );
}

fn v1_devices(ctx: &mut Ctx) {
    ctx.set("/linux/resources/devices", json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rw"}]));
    let Some(pid) = ctx.create_ok() else { return };
    let list = read_in(&v1_dir(pid, "devices"), "devices.list").unwrap_or_default();
    ctx.check(
        "devices.list does not allow everything",
        !list.lines().any(|l| l == "a *:* rwm"),
        format!("devices.list {list:?}"),
    );
    ctx.check(
        "devices.list allows c 1:11 rw",
        list.lines().any(|l| l == "c 1:11 rw"),
        format!("devices.list {list:?}"),
    );
}

fn devices_enforced(ctx: &mut Ctx) {
    ctx.set("/linux/devices", json!([
        {"path": "/dev/conformance-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600},
        {"path": "/dev/conformance-port", "type": "c", "major": 1, "minor": 4, "fileMode": 0o600},
    ]));
    ctx.set("/linux/resources/devices", json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rw"}]));
    let Some(r) = ctx.probe(&["write:/dev/conformance-kmsg", "write:/dev/conformance-port"]) else {
        return;
    };
    ctx.check_eq(
        "an allowed device (c 1:11) opens",
        r.probe("write:/dev/conformance-kmsg")["ok"].as_bool(),
        Some(true),
    );
    ctx.check_eq(
        "a device not allowed (c 1:4) fails with EPERM",
        r.probe("write:/dev/conformance-port")["error"].as_i64(),
        Some(libc::EPERM as i64),
    );
}

fn hugetlb(ctx: &mut Ctx) {
    if !std::path::Path::new("/sys/fs/cgroup/hugetlb").exists() {
        return ctx.skip(
            "hugetlb limit is applied",
            "no hugetlb cgroup controller on this host",
        );
    }
    ctx.set(
        "/linux/resources/hugepageLimits",
        json!([{"pageSize": "2MB", "limit": 4194304}]),
    );
    let Some(pid) = ctx.create_ok() else { return };
    let d = v1_dir(pid, "hugetlb");
    ctx.check_eq(
        "hugetlb.2MB.limit_in_bytes is 4 MiB",
        read_in(&d, "hugetlb.2MB.limit_in_bytes").as_deref(),
        Some("4194304"),
    );
}

fn network(ctx: &mut Ctx) {
    if !std::path::Path::new("/sys/fs/cgroup/net_cls").exists() {
        return ctx.skip(
            "net_cls classid is applied",
            "no net_cls/net_prio cgroup controllers on this host",
        );
    }
    ctx.set("/linux/resources/network", json!({"classID": 1048577}));
    let Some(pid) = ctx.create_ok() else { return };
    let d = v1_dir(pid, "net_cls");
    ctx.check_eq(
        "net_cls.classid is 1048577",
        read_in(&d, "net_cls.classid").as_deref(),
        Some("1048577"),
    );
}

fn update(ctx: &mut Ctx) {
    update_pids(ctx, |pid| v1_dir(pid, "pids"));
}

/// `update --resources FILE` raises pids.max of a running container; `dir`
/// finds its pids cgroup directory.
fn update_pids(ctx: &mut Ctx, dir: fn(i32) -> Option<std::path::PathBuf>) {
    ctx.set("/linux/resources/pids", json!({"limit": 50}));
    let Some((pid, _)) = ctx.run_holding(&[]) else {
        return;
    };
    let file = ctx.path("update.json");
    let _ = std::fs::write(&file, json!({"pids": {"limit": 99}}).to_string());
    let (id, f) = (ctx.id.clone(), file.display().to_string());
    let out = ctx.rt(&["update", "--resources", &f, &id]);
    ctx.check("update succeeds", out.ok(), out.describe());
    ctx.check_eq(
        "pids.max is now 99",
        read_in(&dir(pid), "pids.max").as_deref(),
        Some("99"),
    );
}

fn events(ctx: &mut Ctx) {
    if ctx.run_holding(&[]).is_none() {
        return;
    }
    let id = ctx.id.clone();
    let out = ctx.rt(&["events", "--stats", &id]);
    ctx.check("events --stats succeeds", out.ok(), out.describe());
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_default();
    ctx.check_eq(
        "the event is of type stats",
        v["type"].as_str(),
        Some("stats"),
    );
    ctx.check(
        "it reports at least one pid",
        v.pointer("/data/pids/current")
            .and_then(|p| p.as_u64())
            .unwrap_or(0)
            >= 1,
        out.stdout.chars().take(200).collect::<String>(),
    );
}

fn v2_memory(ctx: &mut Ctx) {
    ctx.set(
        "/linux/resources/memory",
        json!({"limit": 67108864, "reservation": 33554432}),
    );
    let Some(pid) = ctx.create_ok() else { return };
    let d = v2_dir(pid);
    ctx.check_eq(
        "memory.max is 64 MiB",
        read_in(&d, "memory.max").as_deref(),
        Some("67108864"),
    );
    ctx.check_eq(
        "memory.low is 32 MiB",
        read_in(&d, "memory.low").as_deref(),
        Some("33554432"),
    );
}

fn v2_cpu(ctx: &mut Ctx) {
    ctx.set(
        "/linux/resources/cpu",
        json!({"quota": 50000, "period": 100000}),
    );
    let Some(pid) = ctx.create_ok() else { return };
    ctx.check_eq(
        "cpu.max is 50000 100000",
        read_in(&v2_dir(pid), "cpu.max").as_deref(),
        Some("50000 100000"),
    );
}

fn v2_pids(ctx: &mut Ctx) {
    ctx.set("/linux/resources/pids", json!({"limit": 42}));
    let Some(pid) = ctx.create_ok() else { return };
    ctx.check_eq(
        "pids.max is 42",
        read_in(&v2_dir(pid), "pids.max").as_deref(),
        Some("42"),
    );
}

fn v2_hugetlb(ctx: &mut Ctx) {
    let root = Some(std::path::PathBuf::from("/sys/fs/cgroup"));
    if read_in(&root, "cgroup.subtree_control")
        .is_none_or(|c| !c.split(' ').any(|c| c == "hugetlb"))
    {
        return ctx.skip(
            "hugetlb limit is applied",
            "no hugetlb controller in this cgroup v2 hierarchy",
        );
    }
    ctx.set(
        "/linux/resources/hugepageLimits",
        json!([{"pageSize": "2MB", "limit": 4194304}]),
    );
    let Some(pid) = ctx.create_ok() else { return };
    ctx.check_eq(
        "hugetlb.2MB.max is 4 MiB",
        read_in(&v2_dir(pid), "hugetlb.2MB.max").as_deref(),
        Some("4194304"),
    );
}

fn v2_update(ctx: &mut Ctx) {
    update_pids(ctx, v2_dir);
}

fn v2_unified(ctx: &mut Ctx) {
    ctx.set("/linux/resources/unified", json!({"pids.max": "17"}));
    let Some(pid) = ctx.create_ok() else { return };
    ctx.check_eq(
        "pids.max is 17",
        read_in(&v2_dir(pid), "pids.max").as_deref(),
        Some("17"),
    );
}

fn v2_path(ctx: &mut Ctx) {
    let Some(pid) = ctx.create_ok() else { return };
    let want = format!("0::/oci-conformance/{}", ctx.id);
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    ctx.check(
        "the container's cgroup is the cgroupsPath",
        text.lines().any(|l| l == want),
        format!("/proc/{pid}/cgroup {text:?}"),
    );
}
