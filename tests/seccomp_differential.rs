//! berth's seccomp filters decide every syscall as libseccomp's do (runc
//! and crun build theirs with it): both programs run through one classic
//! BPF interpreter (`berth::seccomp::eval`) over every syscall number of
//! x86_64, i386 and x32 (and unknown and out-of-range numbers), with the
//! boundary values of every argument rule.
//!
//! The reference is libseccomp 2.5 (Debian's python3-seccomp, `export_bpf`)
//! fed the way runc feeds it (rules with the default action skipped,
//! comparisons of one argument split into rules of their own, names
//! resolved on the native ABI), plus runc's ENOSYS stub (syscalls newer
//! than the profile's newest get ENOSYS under refusing defaults), which
//! berth has too. Profiles: containers-common's Docker-shaped default
//! (read from /usr/share/containers/seccomp.json, converted as Docker and
//! podman do for their default capabilities) and one using every operator
//! and action.
//!
//! Deliberate differences, each classified below and counted, never
//! silently accepted:
//! - newer syscall table: berth knows syscalls libseccomp 2.5.4 does not
//!   (uretprobe, mseal, ...): berth applies the profile's rules to them
//!   and its ENOSYS bound follows the newest one it knows.
//! - several comparisons of one argument in a rule: berth requires all of
//!   them (what a rule means, and what libseccomp itself accepts for
//!   distinct arguments); runc, because libseccomp refuses that, turns
//!   each into a rule of its own, so `a0 >= 5, a0 <= 10` matches anything.
//!
//! `BERTH_SECCOMP_FULL=1` (make test-full) tries far more argument
//! combinations and pseudo-random arguments for every syscall.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use berth::seccomp::eval::{self, SeccompData};
use berth::seccomp::{syscall_number, Abi};
use oci_spec::runtime::LinuxSeccomp;
use serde_json::{json, Value};

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const X32_BIT: u32 = 0x4000_0000;
const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;

/// Builds the filter with libseccomp the way runc's libcontainer/seccomp
/// does, exports it, and reports each profile name's number per ABI.
const LIBSECCOMP: &str = r#"
import json, sys
import seccomp as S
prof = json.load(open(sys.argv[1]))
ARCH = {"SCMP_ARCH_X86": S.Arch.X86, "SCMP_ARCH_X86_64": S.Arch.X86_64,
        "SCMP_ARCH_X32": S.Arch.X32, "SCMP_ARCH_NATIVE": S.Arch.NATIVE}
OPS = {"SCMP_CMP_NE": S.NE, "SCMP_CMP_LT": S.LT, "SCMP_CMP_LE": S.LE,
       "SCMP_CMP_EQ": S.EQ, "SCMP_CMP_GE": S.GE, "SCMP_CMP_GT": S.GT,
       "SCMP_CMP_MASKED_EQ": S.MASKED_EQ}
def action(name, errno):
    e = 1 if errno is None else errno
    return {"SCMP_ACT_KILL": S.KILL, "SCMP_ACT_KILL_THREAD": S.KILL,
            "SCMP_ACT_KILL_PROCESS": S.KILL_PROCESS, "SCMP_ACT_TRAP": S.TRAP,
            "SCMP_ACT_ERRNO": S.ERRNO(e), "SCMP_ACT_TRACE": S.TRACE(e),
            "SCMP_ACT_LOG": S.LOG, "SCMP_ACT_ALLOW": S.ALLOW,
            "SCMP_ACT_NOTIFY": S.NOTIFY}[name]
default = action(prof["defaultAction"], prof.get("defaultErrnoRet"))
f = S.SyscallFilter(default)
f.set_attr(S.Attr.CTL_NNP, 0)
arches = [S.Arch.X86_64]
for a in prof.get("architectures", []):
    if a in ARCH and ARCH[a] not in arches and ARCH[a] != S.Arch.NATIVE:
        arches.append(ARCH[a])
        f.add_arch(ARCH[a])
calls = [(n, r) for r in prof.get("syscalls", []) for n in r["names"]]
if len(calls) > 32:
    f.set_attr(S.Attr.CTL_OPTIMIZE, 2)
for name, r in calls:
    act = action(r["action"], r.get("errnoRet"))
    if act == default:
        continue
    try:
        nr = S.resolve_syscall(S.Arch.NATIVE, name)
    except Exception:
        continue
    if nr == -1:
        # __NR_SCMP_ERROR: a name libseccomp does not know (runc skips it).
        continue
    conds = [S.Arg(a["index"], OPS[a["op"]], a["value"], a.get("valueTwo", 0))
             for a in r.get("args") or []]
    idx = [a["index"] for a in r.get("args") or []]
    try:
        if len(set(idx)) < len(idx):
            for c in conds:
                f.add_rule(act, nr, c)
        else:
            f.add_rule(act, nr, *conds)
    except Exception as e:
        sys.exit("libseccomp refuses the rule for %s: %s" % (name, e))
f.export_bpf(open(sys.argv[2], "wb"))
names = sorted(set(n for n, _ in calls))
nums = {}
for key, arch in (("x86_64", S.Arch.X86_64), ("x86", S.Arch.X86), ("x32", S.Arch.X32)):
    nums[key] = {}
    for n in names:
        try:
            v = S.resolve_syscall(arch, n)
            nums[key][n] = v if v >= 0 else None
        except Exception:
            nums[key][n] = None
print(json.dumps({"numbers": nums, "arches": [str(a) for a in arches]}))
"#;

fn full() -> bool {
    std::env::var("BERTH_SECCOMP_FULL").is_ok_and(|v| v == "1")
}

struct Reference {
    program: Vec<libc::sock_filter>,
    /// name → number per ABI key ("x86_64", "x86", "x32"), libseccomp's.
    numbers: BTreeMap<String, BTreeMap<String, Option<u32>>>,
}

fn libseccomp(profile: &Value, tag: &str) -> Reference {
    let dir = std::env::temp_dir().join(format!("berth-diff-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json_path = dir.join("profile.json");
    let bpf_path = dir.join("filter.bpf");
    std::fs::write(&json_path, profile.to_string()).unwrap();
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(LIBSECCOMP)
        .arg(&json_path)
        .arg(&bpf_path)
        .output()
        .expect("python3 (make deps)");
    assert!(
        out.status.success(),
        "libseccomp (python3-seccomp, make deps): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let raw = std::fs::read(&bpf_path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let program = raw
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let numbers = report["numbers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(abi, m)| {
            let m = m
                .as_object()
                .unwrap()
                .iter()
                .map(|(n, v)| (n.clone(), v.as_u64().map(|v| v as u32)))
                .collect();
            (abi.clone(), m)
        })
        .collect();
    Reference { program, numbers }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    X86_64,
    I386,
    X32,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::X86_64 => "x86_64",
            Kind::I386 => "x86",
            Kind::X32 => "x32",
        }
    }
    fn abi(self) -> Abi {
        match self {
            Kind::X86_64 => Abi::X86_64,
            Kind::I386 => Abi::I386,
            Kind::X32 => Abi::X32,
        }
    }
    fn audit(self) -> u32 {
        if self == Kind::I386 {
            AUDIT_ARCH_I386
        } else {
            AUDIT_ARCH_X86_64
        }
    }
}

fn listed(profile: &Value, arch: &str) -> bool {
    profile["architectures"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == arch))
}

/// runc's ENOSYS stub (libcontainer/seccomp/patchbpf), in front of
/// libseccomp's program: under a refusing default, numbers above the
/// newest the profile names (per ABI, as libseccomp knows them) get ENOSYS.
fn runc_stub(profile: &Value, r: &Reference, d: &SeccompData) -> Option<u32> {
    let allowish = ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"];
    if allowish.iter().any(|a| profile["defaultAction"] == *a) {
        return None;
    }
    let max = |k: Kind| r.numbers[k.key()].values().flatten().max().copied();
    let over = |k: Kind| max(k).is_some_and(|m| d.nr > m);
    let enosys = match d.arch {
        AUDIT_ARCH_X86_64 if d.nr & X32_BIT != 0 => {
            listed(profile, "SCMP_ARCH_X32") && over(Kind::X32)
        }
        AUDIT_ARCH_X86_64 => over(Kind::X86_64),
        AUDIT_ARCH_I386 => listed(profile, "SCMP_ARCH_X86") && over(Kind::I386),
        _ => false,
    };
    enosys.then_some(RET_ENOSYS)
}

/// Boundary values of one comparison, and a few fixed ones.
fn edges(arg: &Value, wide: bool) -> Vec<u64> {
    let v = arg["value"].as_u64().unwrap();
    let v2 = arg["valueTwo"].as_u64().unwrap_or(0);
    let mut out = vec![
        0,
        1,
        v,
        v.wrapping_sub(1),
        v.wrapping_add(1),
        v ^ (1 << 32),
        (v & 0xffff_ffff_0000_0000) | (v as u32).wrapping_add(1) as u64,
        (v & 0xffff_ffff_0000_0000) | (v as u32).wrapping_sub(1) as u64,
        v & 0xffff_ffff,
        u64::MAX,
        0xffff_ffff,
        0x1_0000_0000,
    ];
    if arg["op"] == "SCMP_CMP_MASKED_EQ" {
        let low_bit = v & v.wrapping_neg();
        out.extend([
            v2,
            v2 | !v,
            v2 ^ low_bit,
            (v2 & v) | (!v & 0x5555_5555_5555_5555),
        ]);
    }
    if !wide {
        // i386 passes 32-bit registers: the upper halves are zero.
        for x in out.iter_mut() {
            *x &= 0xffff_ffff;
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A tiny deterministic generator for the sampled combinations.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 ^ (self.0 >> 29)
    }
}

/// Argument vectors for a syscall whose rules compare `per_index`.
fn arg_vectors(
    per_index: &BTreeMap<usize, Vec<u64>>,
    limit: usize,
    rng: &mut Lcg,
) -> Vec<[u64; 6]> {
    let mut out = vec![[0u64; 6]];
    let total: usize = per_index.values().map(|v| v.len()).product();
    let idx: Vec<(usize, &Vec<u64>)> = per_index.iter().map(|(i, v)| (*i, v)).collect();
    if total <= limit {
        for mut n in 0..total {
            let mut a = [0u64; 6];
            for (i, vals) in &idx {
                a[*i] = vals[n % vals.len()];
                n /= vals.len();
            }
            out.push(a);
        }
    } else {
        for _ in 0..limit {
            let mut a = [0u64; 6];
            for (i, vals) in &idx {
                a[*i] = vals[(rng.next() % vals.len() as u64) as usize];
            }
            out.push(a);
        }
    }
    out
}

#[derive(Default)]
struct Outcome {
    inputs: usize,
    deliberate: BTreeMap<&'static str, usize>,
    unexplained: Vec<String>,
}

/// Compare berth's and the reference's decisions for `profile`.
fn compare(profile: &Value, tag: &str) -> Outcome {
    let cfg: LinuxSeccomp = serde_json::from_value(profile.clone()).unwrap();
    let berth = berth::seccomp::compile(&cfg).expect("berth compiles the profile");
    let r = libseccomp(profile, tag);
    let rules: Vec<&Value> = profile["syscalls"].as_array().unwrap().iter().collect();
    let limit = if full() { 1 << 16 } else { 4096 };
    let mut rng = Lcg(0x5eed);
    let mut out = Outcome::default();

    for kind in [Kind::X86_64, Kind::I386, Kind::X32] {
        let wide = kind != Kind::I386;
        let berth_nr = |n: &str| syscall_number(kind.abi(), n);
        let lib_nr = |n: &str| r.numbers[kind.key()].get(n).copied().flatten();
        // Numbers only one of the two tables gives a profile name, and the
        // ENOSYS bound each would draw: the newer-table difference.
        let mut table_diff: BTreeSet<u32> = BTreeSet::new();
        let names: BTreeSet<&str> = rules
            .iter()
            .flat_map(|r| r["names"].as_array().unwrap())
            .map(|n| n.as_str().unwrap())
            .collect();
        let mut differing = Vec::new();
        let mux: Vec<u32> = ["socketcall", "ipc"]
            .iter()
            .filter_map(|m| syscall_number(Abi::I386, m))
            .filter(|_| kind == Kind::I386)
            .collect();
        for n in &names {
            // libseccomp names i386's socket and IPC calls by their
            // multiplexer; berth's table has their own numbers and adds the
            // multiplexer's rules (both compared here).
            if lib_nr(n).is_some_and(|l| mux.contains(&l)) {
                continue;
            }
            if berth_nr(n) != lib_nr(n) {
                table_diff.extend(berth_nr(n));
                table_diff.extend(lib_nr(n));
                differing.push(format!("{n} ({:?}/{:?})", berth_nr(n), lib_nr(n)));
            }
        }
        if !differing.is_empty() {
            eprintln!(
                "{tag} {kind:?}: berth/libseccomp numbers differ for {}",
                differing.join(", ")
            );
        }
        let max_b = names.iter().filter_map(|n| berth_nr(n)).max();
        let max_l = names.iter().filter_map(|n| lib_nr(n)).max();
        let bound_moved = |nr: u32| match (max_b, max_l) {
            (Some(b), Some(l)) => nr > b.min(l) && nr <= b.max(l),
            _ => false,
        };
        // Syscalls with a rule comparing one argument twice.
        let mut same_index: BTreeSet<u32> = BTreeSet::new();
        // Argument edges per syscall number.
        let mut arg_edges: BTreeMap<u32, BTreeMap<usize, Vec<u64>>> = BTreeMap::new();
        for rule in &rules {
            let args = rule["args"].as_array().cloned().unwrap_or_default();
            let idx: Vec<u64> = args.iter().map(|a| a["index"].as_u64().unwrap()).collect();
            let dup = idx.iter().collect::<BTreeSet<_>>().len() < idx.len();
            for n in rule["names"].as_array().unwrap() {
                let n = n.as_str().unwrap();
                for nr in [berth_nr(n), lib_nr(n)].into_iter().flatten() {
                    if dup {
                        same_index.insert(nr);
                    }
                    for a in &args {
                        let e = arg_edges.entry(nr).or_default();
                        let slot = e.entry(a["index"].as_u64().unwrap() as usize).or_default();
                        slot.extend(edges(a, wide));
                        slot.sort_unstable();
                        slot.dedup();
                    }
                }
            }
        }
        if kind == Kind::I386 {
            // libseccomp turns socket and SysV IPC rules into rules on the
            // multiplexers' call number (a0).
            for mux in ["socketcall", "ipc"] {
                let nr = berth_nr(mux).unwrap();
                let e = arg_edges.entry(nr).or_default();
                e.entry(0).or_default().extend(0..=24);
                e.get_mut(&0).unwrap().sort_unstable();
                e.get_mut(&0).unwrap().dedup();
            }
        }

        let base = if kind == Kind::X32 { X32_BIT } else { 0 };
        let mut nrs: BTreeSet<u32> = (0..=600).map(|n| base | n).collect();
        nrs.extend([
            base | 0x3fff_ffff,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_fffe,
            0xffff_ffff,
            base | 0x1000,
        ]);
        if kind == Kind::X32 {
            // x32's own numbers (512-547) and the i386-style ones above.
            nrs.extend((0..1024).map(|n| X32_BIT | n));
        }
        for nr in nrs {
            let mut vectors = match arg_edges.get(&nr) {
                Some(per) => arg_vectors(per, limit, &mut rng),
                None => vec![[0; 6], [u64::MAX; 6]],
            };
            if full() {
                for _ in 0..64 {
                    let mut a = [0u64; 6];
                    for x in a.iter_mut() {
                        *x = if wide {
                            rng.next()
                        } else {
                            rng.next() & 0xffff_ffff
                        };
                    }
                    vectors.push(a);
                }
            }
            for args in vectors {
                let d = SeccompData {
                    nr,
                    arch: kind.audit(),
                    instruction_pointer: 0x7fff_0000_1000,
                    args,
                };
                out.inputs += 1;
                let ours = eval::run(berth.program(), &d).expect("berth's program runs");
                let theirs = runc_stub(profile, &r, &d)
                    .map(Ok)
                    .unwrap_or_else(|| eval::run(&r.program, &d))
                    .expect("libseccomp's program runs");
                if ours == theirs {
                    continue;
                }
                let class = if table_diff.contains(&nr) || bound_moved(nr) {
                    Some("newer syscall table")
                } else if same_index.contains(&nr) {
                    Some("several comparisons of one argument")
                } else {
                    None
                };
                match class {
                    Some(c) => *out.deliberate.entry(c).or_default() += 1,
                    None => out.unexplained.push(format!(
                        "{tag} {kind:?} nr {nr:#x} args {args:x?}: berth {ours:#x}, libseccomp {theirs:#x}"
                    )),
                }
            }
        }
    }
    // Syscalls from ABIs the profile does not filter: the bad-arch action.
    for nr in [0, 59, 0x4000_0000] {
        let d = SeccompData {
            nr,
            arch: AUDIT_ARCH_AARCH64,
            ..Default::default()
        };
        out.inputs += 1;
        let ours = eval::run(berth.program(), &d).unwrap();
        let theirs = eval::run(&r.program, &d).unwrap();
        if ours != theirs {
            out.unexplained.push(format!(
                "{tag} aarch64 nr {nr}: berth {ours:#x}, libseccomp {theirs:#x}"
            ));
        }
    }
    eprintln!(
        "{tag}: {} inputs, berth {} / libseccomp {} instructions, deliberate differences {:?}, unexplained {}",
        out.inputs,
        berth.program().len(),
        r.program.len(),
        out.deliberate,
        out.unexplained.len()
    );
    out
}

fn check(profile: &Value, tag: &str) {
    let o = compare(profile, tag);
    assert!(
        o.unexplained.is_empty(),
        "{} decisions differ from libseccomp's, e.g.:\n{}",
        o.unexplained.len(),
        o.unexplained
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// containers-common's Docker-format profile as Docker and podman turn it
/// into `linux.seccomp` for x86_64 and capabilities `caps`.
fn docker_profile(caps: &[&str]) -> Value {
    let path = Path::new("/usr/share/containers/seccomp.json");
    let src: Value =
        serde_json::from_slice(&std::fs::read(path).expect(
            "/usr/share/containers/seccomp.json (golang-github-containers-common, make deps)",
        ))
        .unwrap();
    let has_cap = |c: &Value| caps.iter().any(|x| c == x);
    let mut syscalls = Vec::new();
    for r in src["syscalls"].as_array().unwrap() {
        let inc = &r["includes"];
        let exc = &r["excludes"];
        let arches = |v: &Value| v["arches"].as_array().cloned().unwrap_or_default();
        let icaps = inc["caps"].as_array().cloned().unwrap_or_default();
        let ecaps = exc["caps"].as_array().cloned().unwrap_or_default();
        if !arches(inc).is_empty() && !arches(inc).iter().any(|a| a == "amd64") {
            continue;
        }
        if arches(exc).iter().any(|a| a == "amd64") {
            continue;
        }
        if !icaps.iter().all(has_cap) || ecaps.iter().any(has_cap) {
            continue;
        }
        let mut rule = json!({"names": r["names"], "action": r["action"]});
        if let Some(e) = r.get("errnoRet").filter(|e| !e.is_null()) {
            rule["errnoRet"] = e.clone();
        }
        if let Some(a) = r["args"].as_array().filter(|a| !a.is_empty()) {
            rule["args"] = Value::Array(a.clone());
        }
        syscalls.push(rule);
    }
    let mut p = json!({
        "defaultAction": src["defaultAction"],
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    });
    if let Some(e) = src.get("defaultErrnoRet") {
        p["defaultErrnoRet"] = e.clone();
    }
    p
}

/// Docker's default capabilities: those of the runc default spec, which
/// berth's is.
fn docker_caps() -> Vec<String> {
    berth::spec::default_spec(false)["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn docker_shaped_default_profile_decides_as_libseccomp() {
    let docker = docker_caps();
    assert!(docker.iter().any(|c| c == "CAP_AUDIT_WRITE"), "{docker:?}");
    check(
        &docker_profile(&docker.iter().map(String::as_str).collect::<Vec<_>>()),
        "docker-caps",
    );
    // podman's default capabilities lack CAP_AUDIT_WRITE: socket gets its
    // argument rules.
    let podman: Vec<&str> = docker
        .iter()
        .map(String::as_str)
        .filter(|c| *c != "CAP_AUDIT_WRITE" && *c != "CAP_MKNOD" && *c != "CAP_NET_RAW")
        .collect();
    check(&docker_profile(&podman), "podman-caps");
    // And a privileged container's (every capability the profile names).
    check(
        &docker_profile(&[
            "CAP_SYS_ADMIN",
            "CAP_SYS_PTRACE",
            "CAP_SYS_MODULE",
            "CAP_SYS_RAWIO",
            "CAP_SYS_TIME",
            "CAP_SYS_PACCT",
            "CAP_SYS_TTY_CONFIG",
            "CAP_DAC_READ_SEARCH",
            "CAP_SYS_CHROOT",
            "CAP_AUDIT_WRITE",
            "CAP_SYS_BOOT",
            "CAP_SYS_NICE",
            "CAP_SYSLOG",
            "CAP_BPF",
            "CAP_PERFMON",
        ]),
        "all-caps",
    );
}

/// Every operator and action, 64-bit values, several rules per syscall,
/// unconditional rules next to conditional ones, rules with the default
/// action, socket and SysV IPC calls (multiplexed on i386).
fn every_operator_and_action(default: &str) -> Value {
    json!({
        "defaultAction": default,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "listenerPath": "/run/agent.sock",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x1_0000_0005u64, "op": "SCMP_CMP_EQ"}]},
            {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_NE"}]},
            {"names": ["open", "openat"], "action": "SCMP_ACT_TRAP",
             "args": [{"index": 1, "value": 3, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["close"], "action": "SCMP_ACT_LOG",
             "args": [{"index": 0, "value": 0xffff_fffeu64, "op": "SCMP_CMP_GT"}]},
            {"names": ["dup"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_LT"}]},
            {"names": ["dup2"], "action": "SCMP_ACT_KILL_THREAD",
             "args": [{"index": 0, "value": 0x1_0000_0000u64, "op": "SCMP_CMP_LE"},
                      {"index": 1, "value": 10, "op": "SCMP_CMP_GE"}]},
            {"names": ["lseek"], "action": "SCMP_ACT_TRACE", "errnoRet": 9,
             "args": [{"index": 2, "value": 2, "op": "SCMP_CMP_GE"}]},
            {"names": ["getpid", "exit_group"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getuid"], "action": "SCMP_ACT_KILL"},
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["bind", "send"], "action": "SCMP_ACT_ERRNO", "errnoRet": 98},
            {"names": ["connect"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["shmget", "semop"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3},
            {"names": ["tkill"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["tkill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3,
             "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_GE"}]},
            {"names": ["uname"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_GE"},
                      {"index": 0, "value": 10, "op": "SCMP_CMP_LE"}]},
            {"names": ["mseal", "uretprobe"], "action": "SCMP_ACT_ALLOW"}
        ]
    })
}

#[test]
fn a_profile_with_every_operator_and_action_decides_as_libseccomp() {
    check(&every_operator_and_action("SCMP_ACT_ERRNO"), "ops-errno");
    check(&every_operator_and_action("SCMP_ACT_ALLOW"), "ops-allow");
    check(
        &every_operator_and_action("SCMP_ACT_KILL_PROCESS"),
        "ops-kill",
    );
}
