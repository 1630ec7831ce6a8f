//! `linux.seccomp` → BPF program.
//!
//! Layout of the generated program:
//!
//! ```text
//!   A = arch
//!   x86_64?  → x86_64 section
//!   i386?    → i386 section          (only if SCMP_ARCH_X86 is listed)
//!   ret bad-arch action
//! x86_64 section:
//!   A = nr; nr >= 0x4000_0000 → x32 section (if SCMP_ARCH_X32 is listed,
//!                                 else ret bad-arch action)
//!   nr > newest syscall the profile names → ret ENOSYS (deny defaults only)
//!   binary search on nr → leaves of `jeq nr` → `ret action` or rule bodies
//!   ret default action
//! ```
//!
//! The native ABI is always filtered, whatever `architectures` lists, and any
//! other ABI gets the bad-arch action (kill), as with libseccomp. Names a
//! table lacks are skipped, like libseccomp-based runtimes do, because
//! profiles list syscalls of every architecture.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

use super::bpf::{Asm, Label, Target, BPF_JEQ, BPF_JGE, BPF_JGT};
use super::syscalls;
use crate::{Context, Result};

pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub(crate) const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Return values (linux/seccomp.h).
pub(crate) const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub(crate) const RET_KILL_THREAD: u32 = 0x0000_0000;
pub(crate) const RET_TRAP: u32 = 0x0003_0000;
pub(crate) const RET_ERRNO: u32 = 0x0005_0000;
pub(crate) const RET_TRACE: u32 = 0x7ff0_0000;
pub(crate) const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub(crate) const RET_LOG: u32 = 0x7ffc_0000;
pub(crate) const RET_ALLOW: u32 = 0x7fff_0000;

/// libseccomp's default for a syscall from an ABI the filter does not list.
const RET_BAD_ARCH: u32 = RET_KILL_THREAD;

// struct seccomp_data offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// Syscalls per leaf of the dispatch tree; keeps every conditional jump
/// inside a leaf far below the 255-instruction limit.
const LEAF: usize = 16;

// seccomp(2) flags (linux/seccomp.h).
pub(crate) const FLAG_TSYNC: libc::c_ulong = 1;
pub(crate) const FLAG_LOG: libc::c_ulong = 2;
pub(crate) const FLAG_SPEC_ALLOW: libc::c_ulong = 4;
pub(crate) const FLAG_NEW_LISTENER: libc::c_ulong = 8;
pub(crate) const FLAG_TSYNC_ESRCH: libc::c_ulong = 16;
pub(crate) const FLAG_WAIT_KILLABLE_RECV: libc::c_ulong = 32;

/// The syscall the container's process hands the listener fd to the
/// runtime with (`process::channel`), right after the filter is in place:
/// it cannot wait for a listener that does not have the fd yet.
pub(crate) const HAND_OVER_SYSCALL: &str = "sendmsg";

/// The ABIs an x86_64 kernel runs, each with its own syscall numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abi {
    X86_64,
    I386,
    X32,
}

impl Abi {
    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Abi::X86_64 => syscalls::X86_64,
            Abi::I386 => syscalls::I386,
            Abi::X32 => syscalls::X32,
        }
    }

    /// i386 and x32 pass 32-bit arguments (x32's int, long and pointers
    /// are 32 bits), so only the low words are compared, as libseccomp
    /// does: a handler that reads an int ignores the upper half of its
    /// register, and a rule comparing it must not be dodged by setting it.
    fn wide_args(self) -> bool {
        self == Abi::X86_64
    }
}

/// The number of `name` in `abi`, if that ABI has it.
pub fn syscall_number(abi: Abi, name: &str) -> Option<u32> {
    let t = abi.table();
    t.binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| t[i].1)
}

/// One argument test, already split for the 32-bit BPF machine.
#[derive(Clone, Copy, Debug)]
struct Cond {
    index: u32,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: u64,
}

#[derive(Clone, Debug)]
struct Rule {
    ret: u32,
    conds: Vec<Cond>,
}

pub(crate) struct Compiled {
    pub(crate) program: Vec<libc::sock_filter>,
    /// seccomp(2) flags; SECCOMP_FILTER_FLAG_NEW_LISTENER when `notify`.
    pub(crate) flags: libc::c_ulong,
    /// Some rule returns SECCOMP_RET_USER_NOTIF: the install yields a
    /// listener fd for `listenerPath`.
    pub(crate) notify: bool,
}

fn action_ret(action: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<u32> {
    use LinuxSeccompAction::*;
    let data = |errno: Option<u32>| -> Result<u32> {
        let e = errno.unwrap_or(libc::EPERM as u32);
        if e > 0xffff {
            crate::bail!("errnoRet {e} does not fit in SECCOMP_RET_DATA (16 bits)");
        }
        Ok(e)
    };
    if errno_ret.is_some() && !matches!(action, ScmpActErrno | ScmpActTrace) {
        crate::bail!("errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE");
    }
    Ok(match action {
        ScmpActKill | ScmpActKillThread => RET_KILL_THREAD,
        ScmpActKillProcess => RET_KILL_PROCESS,
        ScmpActTrap => RET_TRAP,
        ScmpActErrno => RET_ERRNO | data(errno_ret)?,
        ScmpActTrace => RET_TRACE | data(errno_ret)?,
        ScmpActLog => RET_LOG,
        ScmpActAllow => RET_ALLOW,
        ScmpActNotify => RET_USER_NOTIF,
    })
}

/// The seccomp(2) flags for `flags` in a filter that does (`notify`) or
/// does not return SECCOMP_RET_USER_NOTIF. As with libseccomp,
/// WAIT_KILLABLE_RECV only applies with a listener (the kernel refuses it
/// alone), and TSYNC with a listener adds TSYNC_ESRCH (the kernel refuses
/// TSYNC and NEW_LISTENER together otherwise: both use the return value).
fn flags_bits(flags: &[LinuxSeccompFilterFlag], notify: bool) -> libc::c_ulong {
    let mut bits = 0;
    for f in flags {
        bits |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if notify => {
                FLAG_WAIT_KILLABLE_RECV
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    if notify {
        bits |= FLAG_NEW_LISTENER;
        if bits & FLAG_TSYNC != 0 {
            bits |= FLAG_TSYNC_ESRCH;
        }
    }
    bits
}

/// The notify rules' constraints: a listener to send the fd to, no notify
/// default (every syscall of the hand-over would wait for a listener that
/// has no fd yet), and not the hand-over syscall itself. Without notify
/// rules, `listenerPath` is ignored (as in runc).
fn check_notify(config: &LinuxSeccomp) -> Result<bool> {
    let notify_rules: Vec<&oci_spec::runtime::LinuxSyscall> = config
        .syscalls()
        .iter()
        .flatten()
        .filter(|s| s.action() == LinuxSeccompAction::ScmpActNotify)
        .collect();
    let path = config
        .listener_path()
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty());
    if config.listener_metadata().is_some() && path.is_none() {
        crate::bail!("seccomp listenerMetadata is set but listenerPath is not (runtime-spec: it MUST NOT be)");
    }
    if config.default_action() == LinuxSeccompAction::ScmpActNotify {
        crate::bail!(
            "seccomp defaultAction: SCMP_ACT_NOTIFY cannot be the default action (the listener fd is handed to the runtime with syscalls it would hold)"
        );
    }
    if notify_rules.is_empty() {
        return Ok(false);
    }
    if path.is_none() {
        crate::bail!("seccomp: SCMP_ACT_NOTIFY is used but listenerPath is not set");
    }
    for (i, sc) in config.syscalls().iter().flatten().enumerate() {
        if sc.action() == LinuxSeccompAction::ScmpActNotify
            && sc.names().iter().any(|n| n == HAND_OVER_SYSCALL)
        {
            crate::bail!(
                "{}: SCMP_ACT_NOTIFY cannot be used for {HAND_OVER_SYSCALL} (berth hands the listener fd to the runtime with it)",
                rule_name(i, sc.names())
            );
        }
    }
    Ok(true)
}

fn cond(arg: &LinuxSeccompArg) -> Result<Cond> {
    let index = arg.index();
    if index > 5 {
        crate::bail!("argument index {index} out of range (0-5)");
    }
    Ok(Cond {
        index: index as u32,
        op: arg.op(),
        value: arg.value(),
        value_two: arg.value_two().unwrap_or(0),
    })
}

/// `seccomp syscalls[3] (mount, umount2)`, short even for huge allow lists.
fn rule_name(index: usize, names: &[String]) -> String {
    let mut shown = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 3 {
        shown.push_str(&format!(", … {} more", names.len() - 3));
    }
    format!("seccomp syscalls[{index}] ({shown})")
}

/// Per-ABI rules, keyed by syscall number, in the order they are tried.
type Table = std::collections::BTreeMap<u32, Vec<Rule>>;

pub(crate) fn compile(config: &LinuxSeccomp) -> Result<Compiled> {
    if !cfg!(target_arch = "x86_64") {
        crate::bail!("seccomp: only x86_64 hosts are supported");
    }
    let notify = check_notify(config)?;
    let flags = flags_bits(config.flags().as_deref().unwrap_or_default(), notify);
    if config.default_errno_ret().is_some()
        && !matches!(
            config.default_action(),
            LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
        )
    {
        crate::bail!(
            "seccomp defaultErrnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE"
        );
    }
    let default = action_ret(config.default_action(), config.default_errno_ret())
        .context("seccomp defaultAction")?;

    let mut abis = vec![Abi::X86_64];
    for a in config.architectures().as_deref().unwrap_or_default() {
        let abi = match a {
            Arch::ScmpArchNative | Arch::ScmpArchX86_64 => Abi::X86_64,
            Arch::ScmpArchX86 => Abi::I386,
            Arch::ScmpArchX32 => Abi::X32,
            // Other ABIs never reach an x86_64 kernel's seccomp.
            _ => continue,
        };
        if !abis.contains(&abi) {
            abis.push(abi);
        }
    }

    let mut tables: Vec<(Abi, Table)> = abis.iter().map(|a| (*a, Table::new())).collect();
    for (i, sc) in config
        .syscalls()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let what = || rule_name(i, sc.names());
        let ret = action_ret(sc.action(), sc.errno_ret()).with_context(what)?;
        let conds = sc
            .args()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(cond)
            .collect::<Result<Vec<_>>>()
            .with_context(what)?;
        for (abi, table) in tables.iter_mut() {
            for name in sc.names() {
                let Some(nr) = syscall_number(*abi, name) else {
                    // send and recv exist on i386 only through socketcall.
                    if *abi == Abi::I386 && ret != default {
                        add_multiplexed(table, name, ret);
                    }
                    continue;
                };
                let rules = table.entry(nr).or_default();
                // A rule with the default action changes nothing, and runc
                // drops it (libseccomp refuses it): it must not shadow a
                // later rule. Its syscall still counts for the ENOSYS bound.
                if ret == default {
                    continue;
                }
                rules.push(Rule {
                    ret,
                    conds: conds.clone(),
                });
                if *abi == Abi::I386 {
                    add_multiplexed(table, name, ret);
                }
            }
        }
    }

    let mut asm = Asm::default();
    let sections: Vec<(Abi, Label)> = abis.iter().map(|a| (*a, asm.label())).collect();
    let section = |abi: Abi| sections.iter().find(|(a, _)| *a == abi).map(|(_, l)| *l);

    asm.load(OFF_ARCH);
    for (audit, abi) in [
        (AUDIT_ARCH_X86_64, Abi::X86_64),
        (AUDIT_ARCH_I386, Abi::I386),
    ] {
        if let Some(l) = section(abi) {
            asm.jump(BPF_JEQ, audit, Target::Next, Target::Skip(1));
            asm.ja(l);
        }
    }
    asm.ret(RET_BAD_ARCH);

    for (abi, table) in tables {
        let Some(start) = section(abi) else { continue };
        asm.bind(start);
        asm.load(OFF_NR);
        if abi == Abi::X86_64 {
            // x32 shares AUDIT_ARCH_X86_64 and is told apart by this bit.
            asm.jump(BPF_JGE, X32_SYSCALL_BIT, Target::Next, Target::Skip(1));
            match section(Abi::X32) {
                Some(l) => asm.ja(l),
                None => asm.ret(RET_BAD_ARCH),
            }
        }
        if denies(config.default_action()) {
            if let Some(newest) = table.keys().next_back() {
                // Newer than anything the profile names: the author could not
                // have meant to deny it, and ENOSYS lets libc fall back.
                asm.jump(BPF_JGT, *newest, Target::Next, Target::Skip(1));
                asm.ret(RET_ERRNO | libc::ENOSYS as u32);
            }
        }
        emit_section(&mut asm, abi, &table, default);
    }

    let program = asm.finish()?;
    Ok(Compiled {
        program,
        flags,
        notify,
    })
}

/// Whether unnamed syscalls are refused by default, so that syscalls newer
/// than the profile get ENOSYS instead (what runc does, so glibc's
/// fallbacks for e.g. clone3 or faccessat2 work under old profiles).
fn denies(default: LinuxSeccompAction) -> bool {
    use LinuxSeccompAction::*;
    matches!(
        default,
        ScmpActErrno | ScmpActKill | ScmpActKillThread | ScmpActKillProcess | ScmpActTrap
    )
}

/// What a syscall's `jeq` leads to.
enum Body<'a> {
    /// A rule without arguments comes first: return its action directly.
    Ret(u32),
    /// Argument tests, emitted after the dispatch tree.
    Rules(&'a [Rule]),
}

/// libseccomp's precedence (what runc and crun load): a rule without
/// argument tests decides the syscall alone, the first such rule winning
/// and every rule with tests dropped, whatever the order; otherwise the
/// rules with tests are tried in config order.
fn order(rules: &[Rule]) -> Vec<Rule> {
    match rules.iter().find(|r| r.conds.is_empty()) {
        Some(catch_all) => vec![catch_all.clone()],
        None => rules.to_vec(),
    }
}

/// On i386 the socket calls and SysV IPC also go through the multiplexers
/// socketcall(2) and ipc(2), the call in their first argument: a rule for
/// `connect` must catch socketcall(SYS_CONNECT, ...) too, or i386 code
/// would walk around it. As libseccomp does, the multiplexed rule tests
/// the call number only (the other arguments are behind a pointer).
fn add_multiplexed(table: &mut Table, name: &str, ret: u32) {
    const SOCKETCALL: &[&str] = &[
        "socket",
        "bind",
        "connect",
        "listen",
        "accept",
        "getsockname",
        "getpeername",
        "socketpair",
        "send",
        "recv",
        "sendto",
        "recvfrom",
        "shutdown",
        "setsockopt",
        "getsockopt",
        "sendmsg",
        "recvmsg",
        "accept4",
        "recvmmsg",
        "sendmmsg",
    ];
    const IPC: &[(&str, u64)] = &[
        ("semop", 1),
        ("semget", 2),
        ("semctl", 3),
        ("semtimedop", 4),
        ("msgsnd", 11),
        ("msgrcv", 12),
        ("msgget", 13),
        ("msgctl", 14),
        ("shmat", 21),
        ("shmdt", 22),
        ("shmget", 23),
        ("shmctl", 24),
    ];
    let (mux, call) = if let Some(i) = SOCKETCALL.iter().position(|n| *n == name) {
        ("socketcall", i as u64 + 1)
    } else if let Some((_, c)) = IPC.iter().find(|(n, _)| *n == name) {
        ("ipc", *c)
    } else {
        return;
    };
    let Some(nr) = syscall_number(Abi::I386, mux) else {
        return;
    };
    table.entry(nr).or_default().push(Rule {
        ret,
        conds: vec![Cond {
            index: 0,
            op: LinuxSeccompOperator::ScmpCmpEq,
            value: call,
            value_two: 0,
        }],
    });
}

fn emit_section(asm: &mut Asm, abi: Abi, table: &Table, default: u32) {
    let ordered: Vec<(u32, Vec<Rule>)> = table.iter().map(|(nr, r)| (*nr, order(r))).collect();
    let entries: Vec<(u32, Body)> = ordered
        .iter()
        .map(|(nr, rules)| match rules.as_slice() {
            [] => (*nr, Body::Ret(default)),
            [only] if only.conds.is_empty() => (*nr, Body::Ret(only.ret)),
            rules => (*nr, Body::Rules(rules)),
        })
        .collect();
    let mut bodies = Vec::new();
    emit_tree(asm, &entries, default, &mut bodies);
    for (label, rules) in bodies {
        asm.bind(label);
        emit_rules(asm, abi, rules, default);
    }
}

/// Binary search over sorted syscall numbers. Inner nodes are
/// `jge mid; ja right` so no conditional jump crosses a subtree.
fn emit_tree<'a>(
    asm: &mut Asm,
    entries: &[(u32, Body<'a>)],
    default: u32,
    bodies: &mut Vec<(Label, &'a [Rule])>,
) {
    if entries.len() > LEAF {
        let mid = entries.len() / 2;
        let right = asm.label();
        asm.jump(BPF_JGE, entries[mid].0, Target::Next, Target::Skip(1));
        asm.ja(right);
        emit_tree(asm, &entries[..mid], default, bodies);
        asm.bind(right);
        emit_tree(asm, &entries[mid..], default, bodies);
        return;
    }
    // Leaf: `jeq nr → stub` for each, then the default, then the stubs
    // (one `ret` per distinct action, one `ja body` per rule list).
    let mut rets: Vec<(u32, Label)> = Vec::new();
    let mut trampolines: Vec<(Label, &'a [Rule])> = Vec::new();
    for (nr, body) in entries {
        let to = match body {
            Body::Ret(k) => match rets.iter().find(|(r, _)| r == k) {
                Some((_, l)) => *l,
                None => {
                    let l = asm.label();
                    rets.push((*k, l));
                    l
                }
            },
            Body::Rules(rules) => {
                let l = asm.label();
                trampolines.push((l, rules));
                l
            }
        };
        asm.jump(BPF_JEQ, *nr, Target::Label(to), Target::Next);
    }
    asm.ret(default);
    for (k, l) in rets {
        asm.bind(l);
        asm.ret(k);
    }
    for (l, rules) in trampolines {
        asm.bind(l);
        let body = asm.label();
        asm.ja(body);
        bodies.push((body, rules));
    }
}

fn emit_rules(asm: &mut Asm, abi: Abi, rules: &[Rule], default: u32) {
    for rule in rules {
        if rule.conds.is_empty() {
            asm.ret(rule.ret);
            return;
        }
        let next = asm.label();
        for c in &rule.conds {
            emit_cond(asm, abi, c, next);
        }
        asm.ret(rule.ret);
        asm.bind(next);
    }
    asm.ret(default);
}

fn hi(v: u64) -> u32 {
    (v >> 32) as u32
}

fn lo(v: u64) -> u32 {
    v as u32
}

/// Falls through when the condition holds, jumps to `fail` otherwise.
/// 64-bit comparisons are done on the high words first; the low words only
/// decide when the high words are equal (little-endian: low word first).
fn emit_cond(asm: &mut Asm, abi: Abi, c: &Cond, fail: Label) {
    use LinuxSeccompOperator::*;
    let off_lo = OFF_ARGS + 8 * c.index;
    let off_hi = off_lo + 4;
    let pass = asm.label();
    let f = Target::Label(fail);
    let p = Target::Label(pass);
    let n = Target::Next;
    let wide = abi.wide_args();
    let v = c.value;
    match c.op {
        ScmpCmpEq => {
            if wide {
                asm.load(off_hi);
                asm.jump(BPF_JEQ, hi(v), n, f);
            }
            asm.load(off_lo);
            asm.jump(BPF_JEQ, lo(v), n, f);
        }
        ScmpCmpNe => {
            if wide {
                asm.load(off_hi);
                asm.jump(BPF_JEQ, hi(v), n, p);
            }
            asm.load(off_lo);
            asm.jump(BPF_JEQ, lo(v), f, n);
        }
        ScmpCmpGt | ScmpCmpGe => {
            if wide {
                asm.load(off_hi);
                asm.jump(BPF_JGT, hi(v), p, n);
                asm.jump(BPF_JEQ, hi(v), n, f);
            }
            asm.load(off_lo);
            let op = if c.op == ScmpCmpGt { BPF_JGT } else { BPF_JGE };
            asm.jump(op, lo(v), n, f);
        }
        ScmpCmpLt | ScmpCmpLe => {
            // A < v  ⇔  !(A >= v);  A <= v  ⇔  !(A > v).
            if wide {
                asm.load(off_hi);
                asm.jump(BPF_JGE, hi(v), n, p);
                asm.jump(BPF_JEQ, hi(v), n, f);
            }
            asm.load(off_lo);
            let op = if c.op == ScmpCmpLt { BPF_JGE } else { BPF_JGT };
            asm.jump(op, lo(v), f, n);
        }
        ScmpCmpMaskedEq => {
            // `value` is the mask, `valueTwo` the expected masked value.
            let want = c.value_two;
            if wide {
                asm.load(off_hi);
                asm.and(hi(v));
                asm.jump(BPF_JEQ, hi(want), n, f);
            }
            asm.load(off_lo);
            asm.and(lo(v));
            asm.jump(BPF_JEQ, lo(want), n, f);
        }
    }
    asm.bind(pass);
}
