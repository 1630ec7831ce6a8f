//! Checks of the generated programs' logic with a small cBPF interpreter, so
//! every operator and value edge can be covered; the kernel-level proof is in
//! `tests/seccomp_*.rs`.

use oci_spec::runtime::LinuxSeccomp;

use super::bpf::MAX_INSNS;
use super::compile::*;

struct Data {
    nr: u32,
    arch: u32,
    args: [u64; 6],
}

/// What the kernel returns for `d` (through `eval`, the interpreter the
/// differential tests use too).
fn run(prog: &[libc::sock_filter], d: &Data) -> u32 {
    let data = super::eval::SeccompData {
        nr: d.nr,
        arch: d.arch,
        instruction_pointer: 0,
        args: d.args,
    };
    super::eval::run(prog, &data).expect("a valid program")
}

fn config(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).expect("test config parses")
}

fn prog(json: &str) -> Vec<libc::sock_filter> {
    compile(&config(json)).expect("compiles").program
}

fn nr(abi: Abi, name: &str) -> u32 {
    syscall_number(abi, name).expect("known syscall")
}

fn call(abi: Abi, name: &str, args: [u64; 6]) -> Data {
    let arch = if abi == Abi::I386 {
        AUDIT_ARCH_I386
    } else {
        AUDIT_ARCH_X86_64
    };
    Data {
        nr: nr(abi, name),
        arch,
        args,
    }
}

const EPERM_RET: u32 = RET_ERRNO | libc::EPERM as u32;

#[test]
fn tables_know_common_and_new_syscalls() {
    assert_eq!(syscall_number(Abi::X86_64, "read"), Some(0));
    assert_eq!(syscall_number(Abi::X86_64, "clone3"), Some(435));
    assert_eq!(syscall_number(Abi::X86_64, "file_setattr"), Some(469));
    assert_eq!(syscall_number(Abi::I386, "getpid"), Some(20));
    assert_eq!(syscall_number(Abi::I386, "socketcall"), Some(102));
    assert_eq!(
        syscall_number(Abi::X32, "getpid"),
        Some(X32_SYSCALL_BIT | 39)
    );
    assert_eq!(syscall_number(Abi::X86_64, "socketcall"), None);
    assert_eq!(syscall_number(Abi::X86_64, "no_such_call"), None);
}

const OPS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

fn holds(op: &str, a: u64, v: u64, v2: u64) -> bool {
    match op {
        "SCMP_CMP_NE" => a != v,
        "SCMP_CMP_LT" => a < v,
        "SCMP_CMP_LE" => a <= v,
        "SCMP_CMP_EQ" => a == v,
        "SCMP_CMP_GE" => a >= v,
        "SCMP_CMP_GT" => a > v,
        "SCMP_CMP_MASKED_EQ" => a & v == v2,
        _ => unreachable!(),
    }
}

const EDGES: [u64; 10] = [
    0,
    1,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0001,
    0x1_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_ffff_0000_0000,
    u64::MAX,
];

#[test]
fn every_operator_compares_all_64_bits_on_x86_64() {
    for op in OPS {
        for v in EDGES {
            let v2 = v & 0xffff_0000_ffff_0000;
            let p = prog(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["lseek"],
                "action":"SCMP_ACT_ERRNO","args":[{{"index":1,"value":{v},"valueTwo":{v2},"op":"{op}"}}]}}]}}"#
            ));
            for a in EDGES.iter().chain(&[v.wrapping_add(1), v.wrapping_sub(1)]) {
                let want = if holds(op, *a, v, v2) {
                    EPERM_RET
                } else {
                    RET_ALLOW
                };
                let got = run(&p, &call(Abi::X86_64, "lseek", [7, *a, 0, 0, 0, 0]));
                assert_eq!(got, want, "{op} arg={a:#x} value={v:#x} valueTwo={v2:#x}");
            }
        }
    }
}

#[test]
fn i386_compares_only_the_low_words() {
    let p = prog(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],
        "syscalls":[{"names":["personality"],"action":"SCMP_ACT_ERRNO",
        "args":[{"index":0,"value":4294967295,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    let p32 = |a| run(&p, &call(Abi::I386, "personality", [a, 0, 0, 0, 0, 0]));
    assert_eq!(p32(0xffff_ffff), EPERM_RET);
    // Garbage in the upper half is not part of the i386 ABI.
    assert_eq!(p32(0x1234_5678_ffff_ffff), EPERM_RET);
    assert_eq!(p32(8), RET_ALLOW);
    let p64 = |a| run(&p, &call(Abi::X86_64, "personality", [a, 0, 0, 0, 0, 0]));
    assert_eq!(p64(0xffff_ffff), EPERM_RET);
    assert_eq!(p64(0x1234_5678_ffff_ffff), RET_ALLOW);
}

#[test]
fn args_in_one_rule_are_anded_and_rules_are_alternatives() {
    let p = prog(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[
            {"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":1,"value":1,"op":"SCMP_CMP_EQ"}]},
        {"names":["socket"],"action":"SCMP_ACT_LOG","args":[
            {"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    let s = |a0, a1| run(&p, &call(Abi::X86_64, "socket", [a0, a1, 0, 0, 0, 0]));
    assert_eq!(s(1, 1), RET_ALLOW);
    assert_eq!(s(1, 2), EPERM_RET);
    assert_eq!(s(2, 1), RET_LOG);
    assert_eq!(s(2, 9), RET_LOG);
    assert_eq!(s(3, 1), EPERM_RET);
}

#[test]
fn a_catch_all_rule_decides_alone_whatever_the_order() {
    // libseccomp's precedence, which runc and crun load: the rule without
    // arguments wins over rules with them, before or after it.
    let specific = r#"{"names":["kill"],"action":"SCMP_ACT_ERRNO","errnoRet":13,"args":[
            {"index":1,"value":9,"op":"SCMP_CMP_EQ"}]}"#;
    let catch_all = r#"{"names":["kill"],"action":"SCMP_ACT_ALLOW"}"#;
    for (a, b) in [(catch_all, specific), (specific, catch_all)] {
        let p = prog(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{a},{b}]}}"#
        ));
        let k = |sig| run(&p, &call(Abi::X86_64, "kill", [1, sig, 0, 0, 0, 0]));
        assert_eq!(k(9), RET_ALLOW);
        assert_eq!(k(15), RET_ALLOW);
    }
}

#[test]
fn rules_with_the_default_action_are_dropped() {
    // As runc does: `getppid(5)` is not stopped by a rule restating the
    // default, the next rule decides.
    let p = prog(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["getppid"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":5,"op":"SCMP_CMP_EQ"}]},
        {"names":["getppid"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":3,"op":"SCMP_CMP_GE"}]}]}"#,
    );
    let g = |a0| run(&p, &call(Abi::X86_64, "getppid", [a0, 0, 0, 0, 0, 0]));
    assert_eq!(g(5), RET_ALLOW);
    assert_eq!(g(1), EPERM_RET);
}

#[test]
fn i386_socket_and_ipc_rules_cover_their_multiplexers() {
    let p = prog(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"syscalls":[
        {"names":["connect"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
        {"names":["shmget"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    );
    let i386 = |name, a0| run(&p, &call(Abi::I386, name, [a0, 0, 0, 0, 0, 0]));
    assert_eq!(i386("connect", 0), RET_ERRNO | 13);
    assert_eq!(i386("socketcall", 3), RET_ERRNO | 13); // SYS_CONNECT
    assert_eq!(i386("socketcall", 1), RET_ALLOW); // SYS_SOCKET
    assert_eq!(i386("ipc", 23), EPERM_RET); // SHMGET
    assert_eq!(i386("ipc", 21), RET_ALLOW); // SHMAT
}

#[test]
fn actions_map_to_kernel_return_values() {
    let p = prog(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"syscalls":[
        {"names":["read"],"action":"SCMP_ACT_ALLOW"},
        {"names":["write"],"action":"SCMP_ACT_KILL"},
        {"names":["open"],"action":"SCMP_ACT_KILL_THREAD"},
        {"names":["close"],"action":"SCMP_ACT_KILL_PROCESS"},
        {"names":["stat"],"action":"SCMP_ACT_TRAP"},
        {"names":["fstat"],"action":"SCMP_ACT_ERRNO"},
        {"names":["lstat"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
        {"names":["poll"],"action":"SCMP_ACT_TRACE","errnoRet":7},
        {"names":["lseek"],"action":"SCMP_ACT_LOG"},
        {"names":["exit_group"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let r = |name| run(&p, &call(Abi::X86_64, name, [0; 6]));
    assert_eq!(r("read"), RET_ALLOW);
    assert_eq!(r("write"), RET_KILL_THREAD);
    assert_eq!(r("open"), RET_KILL_THREAD);
    assert_eq!(r("close"), RET_KILL_PROCESS);
    assert_eq!(r("stat"), RET_TRAP);
    assert_eq!(r("fstat"), EPERM_RET);
    assert_eq!(r("lstat"), RET_ERRNO | 13);
    assert_eq!(r("poll"), RET_TRACE | 7);
    assert_eq!(r("lseek"), RET_LOG);
    assert_eq!(r("mmap"), RET_ERRNO | 38);
}

#[test]
fn unlisted_abis_get_the_bad_arch_action() {
    let p = prog(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
    assert_eq!(run(&p, &call(Abi::X86_64, "getpid", [0; 6])), RET_ALLOW);
    assert_eq!(run(&p, &call(Abi::I386, "getpid", [0; 6])), RET_KILL_THREAD);
    assert_eq!(run(&p, &call(Abi::X32, "getpid", [0; 6])), RET_KILL_THREAD);
    let other = Data {
        nr: 1,
        arch: 0xc000_00b7,
        args: [0; 6],
    };
    assert_eq!(run(&p, &other), RET_KILL_THREAD);
}

#[test]
fn listed_abis_get_the_rules_by_their_own_numbers() {
    let p = prog(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
        "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
        "syscalls":[{"names":["getpid","socketcall"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    for abi in [Abi::X86_64, Abi::I386, Abi::X32] {
        assert_eq!(run(&p, &call(abi, "getpid", [0; 6])), EPERM_RET, "{abi:?}");
        assert_eq!(run(&p, &call(abi, "getppid", [0; 6])), RET_ALLOW, "{abi:?}");
    }
    assert_eq!(run(&p, &call(Abi::I386, "socketcall", [0; 6])), EPERM_RET);
}

#[test]
fn a_config_listing_no_native_arch_still_filters_native_calls() {
    let p = prog(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_AARCH64"],
        "syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert_eq!(run(&p, &call(Abi::X86_64, "getpid", [0; 6])), EPERM_RET);
}

#[test]
fn every_known_syscall_with_args_fits_and_dispatches() {
    // All ~370 x86_64 syscalls, each with an argument rule, on three ABIs:
    // exercises the dispatch tree and long jumps over big bodies.
    let names: Vec<String> = [Abi::X86_64]
        .iter()
        .flat_map(|_| {
            super::syscalls::X86_64
                .iter()
                .map(|(n, _)| format!("\"{n}\""))
        })
        .collect();
    let p = prog(&format!(
        r#"{{"defaultAction":"SCMP_ACT_KILL_PROCESS","syscalls":[
        {{"names":[{}],"action":"SCMP_ACT_ALLOW","args":[{{"index":2,"value":5,"op":"SCMP_CMP_GT"}}]}}]}}"#,
        names.join(",")
    ));
    for (name, _) in super::syscalls::X86_64 {
        let c = |a| run(&p, &call(Abi::X86_64, name, [0, 0, a, 0, 0, 0]));
        assert_eq!(c(6), RET_ALLOW, "{name}");
        assert_eq!(c(5), RET_KILL_PROCESS, "{name}");
    }
    // A hole in the table, below the newest named syscall.
    let unknown = Data {
        nr: 400,
        arch: AUDIT_ARCH_X86_64,
        args: [0, 0, 6, 0, 0, 0],
    };
    assert_eq!(run(&p, &unknown), RET_KILL_PROCESS);
}

#[test]
fn an_allow_list_on_three_abis_stays_under_the_kernel_limit() {
    let names: Vec<String> = super::syscalls::X86_64
        .iter()
        .map(|(n, _)| format!("\"{n}\""))
        .collect();
    let p = prog(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ERRNO",
        "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
        "syscalls":[{{"names":[{}],"action":"SCMP_ACT_ALLOW"}}]}}"#,
        names.join(",")
    ));
    assert!(p.len() < MAX_INSNS / 2, "{} instructions", p.len());
    assert_eq!(run(&p, &call(Abi::X32, "read", [0; 6])), RET_ALLOW);
    assert_eq!(run(&p, &call(Abi::I386, "read", [0; 6])), RET_ALLOW);
}

fn compile_err(json: &str) -> String {
    match compile(&config(json)) {
        Ok(_) => panic!("compiled: {json}"),
        Err(e) => e.message().to_string(),
    }
}

#[test]
fn notify_needs_a_listener_and_spares_the_hand_over() {
    let e = compile_err(r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/run/a.sock"}"#);
    assert!(
        e.contains("defaultAction: SCMP_ACT_NOTIFY cannot be the default"),
        "{e}"
    );
    let e = compile_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(e.contains("listenerPath is not set"), "{e}");
    let e = compile_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(e.contains("listenerPath is not set"), "{e}");
    let e = compile_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/a.sock","syscalls":[{"names":["mkdir","sendmsg"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(
        e.contains("syscalls[0] (mkdir, sendmsg)") && e.contains("sendmsg"),
        "{e}"
    );
    let e = compile_err(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerMetadata":"x"}"#);
    assert!(
        e.contains("listenerMetadata is set but listenerPath is not"),
        "{e}"
    );
}

#[test]
fn notify_sets_new_listener_and_returns_user_notif() {
    let c = compile(&config(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/a.sock","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    ))
    .unwrap();
    assert!(c.notify);
    assert_eq!(c.flags, FLAG_NEW_LISTENER);
    assert_eq!(
        run(&c.program, &call(Abi::X86_64, "mkdir", [0; 6])),
        RET_USER_NOTIF
    );
    // TSYNC needs TSYNC_ESRCH next to NEW_LISTENER; WAIT_KILLABLE_RECV
    // only counts with a listener (as in libseccomp).
    let flags = r#""flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]"#;
    let c = compile(&config(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW",{flags},"listenerPath":"/run/a.sock","syscalls":[{{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}}]}}"#
    )))
    .unwrap();
    assert_eq!(
        c.flags,
        FLAG_TSYNC | FLAG_TSYNC_ESRCH | FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV
    );
    let c = compile(&config(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW",{flags}}}"#
    )))
    .unwrap();
    assert!(!c.notify);
    assert_eq!(c.flags, FLAG_TSYNC);
    // listenerPath without notify rules is ignored, as in runc.
    let c = compile(&config(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/a.sock"}"#,
    ))
    .unwrap();
    assert!(!c.notify);
    assert_eq!(c.flags, 0);
}

#[test]
fn invalid_values_are_rejected_with_context() {
    let e = compile_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":65536}]}"#,
    );
    assert!(e.contains("errnoRet 65536"), "{e}");
    let e = compile_err(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","errnoRet":1}]}"#,
    );
    assert!(e.contains("errnoRet is only valid"), "{e}");
    let e = compile_err(r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":1}"#);
    assert!(e.contains("defaultErrnoRet"), "{e}");
    let e = compile_err(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    assert!(e.contains("argument index 6"), "{e}");
}

#[test]
fn flags_map_to_seccomp_bits() {
    let c = compile(&config(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}"#,
    ))
    .expect("compiles");
    assert_eq!(c.flags, FLAG_TSYNC | FLAG_LOG | FLAG_SPEC_ALLOW);
}

#[test]
fn unknown_names_are_skipped() {
    let p = prog(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["not_a_syscall","arm_fadvise64_64","getpid"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert_eq!(run(&p, &call(Abi::X86_64, "getpid", [0; 6])), EPERM_RET);
}

#[test]
fn syscalls_newer_than_the_profile_get_enosys_under_deny_defaults() {
    for default in ["SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"] {
        let p = prog(&format!(
            r#"{{"defaultAction":"{default}","architectures":["SCMP_ARCH_X86"],"syscalls":[
            {{"names":["read","exit_group"],"action":"SCMP_ACT_ALLOW"}}]}}"#
        ));
        let ret = action_ret_of(default);
        let r = |abi, name| run(&p, &call(abi, name, [0; 6]));
        assert_eq!(r(Abi::X86_64, "read"), RET_ALLOW, "{default}");
        // Older than exit_group (231): the default action.
        assert_eq!(r(Abi::X86_64, "getppid"), ret, "{default}");
        // Newer: ENOSYS, per ABI (i386 exit_group is 252, clone3 is 435).
        assert_eq!(r(Abi::X86_64, "clone3"), RET_ERRNO | 38, "{default}");
        assert_eq!(r(Abi::I386, "clone3"), RET_ERRNO | 38, "{default}");
        assert_eq!(r(Abi::I386, "getppid"), ret, "{default}");
    }
    // Allow-by-default profiles keep allowing new syscalls.
    let p = prog(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["read"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert_eq!(run(&p, &call(Abi::X86_64, "clone3", [0; 6])), RET_ALLOW);
}

fn action_ret_of(action: &str) -> u32 {
    match action {
        "SCMP_ACT_ERRNO" => EPERM_RET,
        "SCMP_ACT_KILL_PROCESS" => RET_KILL_PROCESS,
        "SCMP_ACT_TRAP" => RET_TRAP,
        _ => unreachable!(),
    }
}
