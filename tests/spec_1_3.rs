//! runtime-spec 1.3.0: the version berth reports, and each field 1.3 added
//! that berth implements (`linux.netDevices`, `linux.memoryPolicy`), refuses
//! clearly (`linux.intelRdt` without resctrl), or that current callers
//! pass (`--pidfd-socket`; `exec --cgroup` is in tests/exec_cgroup.rs,
//! which also runs in the cgroup v2 guest).

mod common;

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Bundle, Runtime};
use serde_json::{json, Value};

fn bundle_str(b: &Bundle) -> &str {
    b.dir.to_str().unwrap()
}

fn pid_of(rt: &Runtime, id: &str) -> i32 {
    rt.state(id)["pid"].as_i64().unwrap() as i32
}

/// The container is gone without a trace: no state, no state dir.
fn left_nothing(rt: &Runtime, id: &str) {
    assert!(!rt.run_cmd(&["state", id]).status.success(), "{id} exists");
    assert!(!common::exists(&rt.root.join(id)), "{id}'s state dir left");
}

// ---------------------------------------------------------------- version

#[test]
fn version_features_and_spec_say_1_3_0() {
    let rt = Runtime::berth();
    let v = rt.ok(&["--version"]);
    assert!(v.lines().any(|l| l == "spec: 1.3.0"), "{v}");
    let f: Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert_eq!(f["ociVersionMax"], "1.3.0");
    let linux = &f["linux"];
    assert_eq!(linux["netDevices"]["enabled"], true);
    assert_eq!(linux["intelRdt"]["enabled"], false);
    let modes: Vec<&str> = linux["memoryPolicy"]["modes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for m in [
        "MPOL_DEFAULT",
        "MPOL_BIND",
        "MPOL_INTERLEAVE",
        "MPOL_PREFERRED",
        "MPOL_LOCAL",
    ] {
        assert!(modes.contains(&m), "{m} in {modes:?}");
    }
    let flags = linux["memoryPolicy"]["flags"].as_array().unwrap();
    assert!(
        flags.iter().any(|x| x == "MPOL_F_STATIC_NODES"),
        "{flags:?}"
    );

    let dir = std::env::temp_dir().join(common::unique("berth-spec13"));
    std::fs::create_dir_all(&dir).unwrap();
    rt.ok(&["spec", "--bundle", dir.to_str().unwrap()]);
    let spec: Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(spec["ociVersion"], "1.3.0");

    // A 1.3.x config runs.
    let mut b = Bundle::new(&["/bin/true"]);
    b.edit(|s| s["ociVersion"] = json!("1.3.1"));
    let (code, _, err) = rt.run(&b, &common::unique("v13"));
    assert_eq!(code, 0, "{err}");
}

// ------------------------------------------------------------ netDevices

/// A host network interface made for one test, removed when dropped
/// (wherever the test failed). `dummy` where the kernel has it; this
/// host's kernel has no dummy driver, so `ifb` (also a virtual device that
/// carries no traffic and dies with its namespace) stands in.
struct HostIf {
    name: String,
}

impl HostIf {
    fn new(tag: &str) -> HostIf {
        // Unique and at most 15 bytes.
        let name = format!("b13{tag}{}", std::process::id() % 100_000);
        assert!(name.len() <= 15);
        for kind in ["dummy", "ifb"] {
            let out = Command::new("ip")
                .args(["link", "add", &name, "type", kind])
                .output()
                .expect("ip (iproute2)");
            if out.status.success() {
                eprintln!("{name}: a {kind} interface");
                return HostIf { name };
            }
        }
        panic!("cannot create a dummy or ifb interface {name}");
    }

    fn on_host(&self) -> bool {
        Path::new("/sys/class/net").join(&self.name).exists()
    }
}

impl Drop for HostIf {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The interfaces in the network namespace of `pid`.
fn interfaces_of(pid: i32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn net_devices_move_in_renamed_and_back_on_delete() {
    // Declared first: dropped last, after the runtime deleted its
    // containers (which moves the devices back).
    let renamed = HostIf::new("a");
    let kept = HostIf::new("b");
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/sh", "-c", "ls /sys/class/net; sleep 1000"]);
    let (rn, kn) = (renamed.name.clone(), kept.name.clone());
    b.edit(|s| {
        s["linux"]["netDevices"] = json!({ rn: { "name": "ctr0" }, kn: {} });
    });
    let id = common::unique("netdev");
    rt.ok(&["create", "--bundle", bundle_str(&b), &id]);
    let pid = pid_of(&rt, &id);
    let inside = interfaces_of(pid);
    assert!(inside.contains(&"ctr0".to_string()), "{inside:?}");
    assert!(inside.contains(&kept.name), "kept its name: {inside:?}");
    assert!(!inside.contains(&renamed.name), "{inside:?}");
    assert!(!renamed.on_host() && !kept.on_host(), "still on the host");

    // The container's processes die: its network namespace would take
    // virtual devices with it; the pin keeps them until delete.
    rt.ok(&["start", &id]);
    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    common::reap(pid);
    assert!(!renamed.on_host() && !kept.on_host());
    rt.ok(&["delete", &id]);
    assert!(renamed.on_host(), "{} not back on the host", renamed.name);
    assert!(kept.on_host(), "{} not back on the host", kept.name);
    left_nothing(&rt, &id);
}

/// The addresses of interface `dev` as `ip -o addr` prints them (address
/// and prefix), in the network namespace of `pid` (0: this one).
fn addresses_of(pid: i32, dev: &str) -> Vec<String> {
    let mut c = Command::new("nsenter");
    if pid != 0 {
        c.arg(format!("--net=/proc/{pid}/ns/net"));
    }
    let out = c
        .args(["ip", "-o", "addr", "show", "dev", dev])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(String::from))
        .filter(|a| !a.starts_with("fe80:"))
        .collect()
}

/// runtime-spec 1.3: a moved device keeps its permanent addresses (the
/// kernel drops them on a namespace move); they are the host's again
/// after delete. Documentation addresses (TEST-NET-1, 2001:db8::/32) on a
/// device that stays down: nothing is sent anywhere.
#[test]
fn net_devices_keep_their_addresses_in_and_out() {
    let dev = HostIf::new("ip");
    let want = ["192.0.2.10/24", "2001:db8::10/64"];
    for a in want {
        let st = Command::new("ip")
            .args(["addr", "add", a, "dev", &dev.name])
            .status()
            .unwrap();
        assert!(st.success(), "ip addr add {a}");
    }
    assert_eq!(addresses_of(0, &dev.name), want);
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/sleep", "1000"]);
    let name = dev.name.clone();
    b.edit(|s| {
        s["linux"]["netDevices"] = json!({ name: { "name": "ctr0" } });
    });
    let id = common::unique("netip");
    rt.ok(&["create", "--bundle", bundle_str(&b), &id]);
    let pid = pid_of(&rt, &id);
    assert_eq!(
        addresses_of(pid, "ctr0"),
        want,
        "addresses in the container"
    );
    rt.ok(&["delete", "--force", &id]);
    common::reap(pid);
    assert!(dev.on_host());
    assert_eq!(
        addresses_of(0, &dev.name),
        want,
        "addresses back on the host"
    );
    left_nothing(&rt, &id);
}

#[test]
fn net_devices_clear_errors_and_nothing_left() {
    let dev = HostIf::new("e");
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/true"]);
    let name = dev.name.clone();
    let cases: Vec<(Value, Option<Value>, &str)> = vec![
        (
            json!({ "b13nosuch0": {} }),
            None,
            "linux.netDevices[\"b13nosuch0\"]: no network interface \"b13nosuch0\" on the host",
        ),
        (
            json!({ &name: {} }),
            Some(
                json!([{ "type": "pid" }, { "type": "mount" }, { "type": "uts" }, { "type": "ipc" }]),
            ),
            "linux.netDevices: the container has no network namespace of its own",
        ),
        (
            json!({ &name: { "name": "lo" } }),
            None,
            "\"lo\" already exists",
        ),
        (
            json!({ &name: { "name": "x/y" } }),
            None,
            "is not a valid interface name",
        ),
        (
            json!({ &name: { "name": "same0" }, "b13other0": { "name": "same0" } }),
            None,
            "is also the name of",
        ),
    ];
    for (devs, namespaces, want) in cases {
        let id = common::unique("netdev-bad");
        b.edit(|s| {
            s["linux"]["netDevices"] = devs.clone();
            if let Some(ns) = &namespaces {
                s["linux"]["namespaces"] = ns.clone();
            }
        });
        let err = rt.fails(&["create", "--bundle", bundle_str(&b), &id]);
        assert!(err.contains(want), "{devs}: want {want:?}, got {err}");
        left_nothing(&rt, &id);
        assert!(dev.on_host(), "{devs}: the device left the host");
        b.edit(|s| {
            s["linux"]["namespaces"] = Bundle::new(&[]).spec["linux"]["namespaces"].clone();
        });
    }
}

/// A helper process of ours in a network namespace of its own, killed by
/// pid when dropped.
struct NetnsHolder(std::process::Child);

impl Drop for NetnsHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn net_devices_name_clash_in_a_joined_namespace_is_an_error_and_the_device_comes_back() {
    let dev = HostIf::new("c");
    let holder = NetnsHolder(
        Command::new("unshare")
            .args(["--net", "sleep", "1000"])
            .spawn()
            .unwrap(),
    );
    let hpid = holder.0.id();
    let ns_path = format!("/proc/{hpid}/ns/net");
    // Wait until unshare has made the namespace.
    for _ in 0..200 {
        if std::fs::read_link(&ns_path).ok() != std::fs::read_link("/proc/self/ns/net").ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let made = Command::new("nsenter")
        .args([
            &format!("--net={ns_path}"),
            "ip",
            "link",
            "add",
            "clash0",
            "type",
            "veth",
            "peer",
            "name",
            "clash1",
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/true"]);
    let name = dev.name.clone();
    b.edit(|s| {
        s["linux"]["netDevices"] = json!({ name: { "name": "clash0" } });
        for ns in s["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!(ns_path);
            }
        }
    });
    let id = common::unique("netdev-clash");
    let err = rt.fails(&["create", "--bundle", bundle_str(&b), &id]);
    assert!(
        err.contains(
            "an interface named \"clash0\" already exists in the container's network namespace"
        ),
        "{err}"
    );
    left_nothing(&rt, &id);
    assert!(
        dev.on_host(),
        "the device was not moved back after the failed create"
    );
    let theirs = interfaces_of(hpid as i32);
    assert!(!theirs.contains(&dev.name), "{theirs:?}");
    // The namespace's own device of that name was not taken for ours.
    assert!(theirs.contains(&"clash0".to_string()), "{theirs:?}");
}

// ----------------------------------------------------------- memoryPolicy

/// The task policy as /proc/self/numa_maps shows it for mappings without
/// a policy of their own (the container's `cat` reading its own maps).
fn policy_seen(rt: &Runtime, b: &mut Bundle, mp: Value) -> String {
    b.edit(|s| s["linux"]["memoryPolicy"] = mp.clone());
    let (code, out, err) = rt.run(b, &common::unique("mempol"));
    assert_eq!(code, 0, "{mp}: {err}");
    // "<addr> <policy> <key>=<value>...": the policy (which may hold a
    // space, "prefer (many):0") is what lies before the first key.
    let line = out
        .lines()
        .find(|l| l.contains("stack") || l.contains("heap") || l.contains("anon"))
        .or_else(|| out.lines().next())
        .unwrap_or_else(|| panic!("{mp}: no numa_maps: {out}"));
    let rest = line.split_once(' ').unwrap().1;
    let end = rest
        .split(' ')
        .position(|w| w.contains('=') && !w.contains(':') || w == "heap" || w == "stack")
        .unwrap_or(1);
    rest.split(' ').take(end).collect::<Vec<_>>().join(" ")
}

#[test]
fn memory_policy_is_the_container_process_policy_on_node_0() {
    assert!(
        Path::new("/proc/self/numa_maps").exists(),
        "kernel without CONFIG_NUMA"
    );
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/cat", "/proc/self/numa_maps"]);
    // Without the field: the default policy.
    let (code, out, err) = rt.run(&b, &common::unique("mempol"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .all(|l| l.split_whitespace().nth(1) == Some("default")),
        "{out}"
    );
    for (mp, want) in [
        (json!({ "mode": "MPOL_BIND", "nodes": "0" }), "bind:0"),
        (
            json!({ "mode": "MPOL_INTERLEAVE", "nodes": "0" }),
            "interleave:0",
        ),
        (
            json!({ "mode": "MPOL_PREFERRED", "nodes": "0" }),
            "prefer:0",
        ),
        (
            json!({ "mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"] }),
            "bind=static:0",
        ),
        (
            json!({ "mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"] }),
            "bind=relative:0",
        ),
        (
            json!({ "mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"] }),
            "bind=balancing:0",
        ),
        (
            json!({ "mode": "MPOL_PREFERRED_MANY", "nodes": "0" }),
            "prefer (many):0",
        ),
        (
            json!({ "mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0" }),
            "weighted interleave:0",
        ),
        (json!({ "mode": "MPOL_LOCAL" }), "local"),
    ] {
        assert_eq!(policy_seen(&rt, &mut b, mp.clone()), want, "{mp}");
    }
}

#[test]
fn memory_policy_invalid_is_an_error_naming_the_field() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/true"]);
    for (mp, want) in [
        (
            json!({ "mode": "MPOL_NOPE", "nodes": "0" }),
            "linux.memoryPolicy.mode: unknown mode \"MPOL_NOPE\"",
        ),
        (
            json!({ "mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NOPE"] }),
            "linux.memoryPolicy.flags[0]: unknown flag",
        ),
        (
            json!({ "mode": "MPOL_BIND" }),
            "linux.memoryPolicy.nodes: MPOL_BIND needs at least one node",
        ),
        (
            json!({ "mode": "MPOL_BIND", "nodes": "0-x" }),
            "linux.memoryPolicy.nodes: invalid node",
        ),
        (
            json!({ "mode": "MPOL_LOCAL", "nodes": "0" }),
            "linux.memoryPolicy.nodes: MPOL_LOCAL takes no nodes",
        ),
        (
            json!({ "mode": "MPOL_BIND", "nodes": "0",
                    "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"] }),
            "linux.memoryPolicy.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other",
        ),
        // Node 1 does not exist on this single-node host: the kernel
        // refuses it in the init, and the error says where it came from.
        (
            json!({ "mode": "MPOL_BIND", "nodes": "1" }),
            "linux.memoryPolicy: set_mempolicy(MPOL_BIND, nodes \"1\"): ",
        ),
    ] {
        b.edit(|s| s["linux"]["memoryPolicy"] = mp.clone());
        let id = common::unique("mempol-bad");
        let err = rt.fails(&["create", "--bundle", bundle_str(&b), &id]);
        assert!(err.contains(want), "{mp}: want {want:?}, got {err}");
        left_nothing(&rt, &id);
    }
}

// --------------------------------------------------------------- intelRdt

#[test]
fn intel_rdt_without_resctrl_is_a_clear_error() {
    let has_resctrl = std::fs::read_to_string("/proc/filesystems")
        .unwrap()
        .contains("resctrl")
        && Path::new("/sys/fs/resctrl/info").exists();
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/true"]);
    b.edit(|s| {
        s["linux"]["intelRdt"] = json!({
            "closID": "berth-test", "schemata": ["L3:0=ff"], "enableMonitoring": true
        })
    });
    let id = common::unique("rdt");
    let err = rt.fails(&["create", "--bundle", bundle_str(&b), &id]);
    let want = if has_resctrl {
        "linux.intelRdt: this host has resctrl, but berth does not support Intel RDT"
    } else {
        "linux.intelRdt: intelRdt is specified in config, but Intel RDT is not supported or enabled"
    };
    assert!(err.contains(want), "{err}");
    left_nothing(&rt, &id);
}

// ---------------------------------------------------------- pidfd-socket

/// A listening socket for --pidfd-socket in a fresh directory.
struct PidfdSocket {
    dir: PathBuf,
    listener: UnixListener,
}

impl PidfdSocket {
    fn new() -> PidfdSocket {
        let dir = std::env::temp_dir().join(common::unique("berth-pidfd"));
        std::fs::create_dir_all(&dir).unwrap();
        let listener = UnixListener::bind(dir.join("sock")).unwrap();
        PidfdSocket { dir, listener }
    }

    fn path(&self) -> String {
        self.dir.join("sock").to_str().unwrap().to_string()
    }

    /// Accept the runtime's connection (it is queued by now) and return
    /// the pid the received fd is a pidfd of.
    fn received_pid(&self) -> i32 {
        self.listener.set_nonblocking(true).unwrap();
        let (conn, _) = self.listener.accept().expect("the runtime connected");
        conn.set_nonblocking(false).unwrap();
        let (fd, name) = berth::tty::recv_master_named(conn.as_fd()).unwrap();
        assert_eq!(name, "pidfd");
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert_eq!(link.to_str().unwrap(), "anon_inode:[pidfd]");
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .unwrap_or_else(|| panic!("no Pid: in {info}"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for PidfdSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn pidfd_socket_on_create_run_and_exec_carries_the_right_process() {
    let rt = Runtime::berth();
    let b = Bundle::new(&["/bin/sleep", "1000"]);

    // create or run -d with a pidfd socket: (id, init pid, pid received).
    let start = |cmd: &[&str], name: &str| {
        let sock = PidfdSocket::new();
        let id = common::unique(name);
        let path = sock.path();
        let mut args = cmd.to_vec();
        args.extend_from_slice(&["--pidfd-socket", &path, "--bundle", bundle_str(&b), &id]);
        rt.ok(&args);
        let pid = pid_of(&rt, &id);
        (id.clone(), pid, sock.received_pid())
    };
    let (id, pid, got) = start(&["create"], "pidfd");
    assert_eq!(got, pid, "create: the init's pidfd");
    rt.ok(&["start", &id]);

    let sock = PidfdSocket::new();
    let pid_file = sock.dir.join("exec.pid");
    rt.ok(&[
        "exec",
        "-d",
        "--pidfd-socket",
        &sock.path(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "/bin/sleep",
        "1000",
    ]);
    let exec_pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_ne!(exec_pid, pid);
    assert_eq!(
        sock.received_pid(),
        exec_pid,
        "exec: the exec'd process's pidfd"
    );
    // Reaped here (it was reparented to this subreaper), or the init's
    // pid namespace could not finish dying at delete.
    // SAFETY: kill and a blocking waitpid on our own child, by pid.
    unsafe {
        libc::kill(exec_pid, libc::SIGKILL);
        libc::waitpid(exec_pid, std::ptr::null_mut(), 0);
    }
    rt.ok(&["delete", "--force", &id]);
    common::reap(pid);

    let (id, pid, got) = start(&["run", "-d"], "pidfd-run");
    assert_eq!(got, pid, "run: the init's pidfd");
    rt.ok(&["delete", "--force", &id]);
    common::reap(pid);

    // A socket nobody listens on: an error, and nothing is created.
    let id = common::unique("pidfd-bad");
    let err = rt.fails(&[
        "create",
        "--pidfd-socket",
        "/nonexistent/sock",
        "--bundle",
        bundle_str(&b),
        &id,
    ]);
    assert!(
        err.contains("connect to pidfd socket /nonexistent/sock"),
        "{err}"
    );
    left_nothing(&rt, &id);
}
