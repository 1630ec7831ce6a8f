//! Installs compiled filters in forked children and checks what the kernel
//! does with their syscalls. Each child reports through its exit status;
//! after `install` it only makes raw syscalls and `_exit`s.

use std::arch::asm;
use std::panic::AssertUnwindSafe;

use berth::seccomp::{self, InstallError};
use oci_spec::runtime::LinuxSeccomp;

const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;

fn config(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).expect("test config parses")
}

fn filter(json: &str) -> seccomp::Filter {
    seccomp::compile(&config(json)).expect("filter compiles")
}

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Exit(i32),
    Signal(i32),
}

/// Forks, runs `child` (its return value is the exit code) and reaps it.
fn in_child(child: impl FnOnce() -> i32) -> End {
    // SAFETY: the child runs only `child`, which sticks to raw syscalls, and
    // leaves with `_exit`, so no state of the parent's other threads is used.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: ends the forked child without running the parent's
        // atexit handlers or destructors.
        unsafe { libc::_exit(code) }
    }
    let mut status = 0;
    loop {
        // SAFETY: waits for the child forked above; `status` is a valid
        // out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.raw_os_error(), Some(libc::EINTR), "waitpid: {err}");
    }
    if libc::WIFEXITED(status) {
        End::Exit(libc::WEXITSTATUS(status))
    } else {
        End::Signal(libc::WTERMSIG(status))
    }
}

/// What the runtime's init does before installing: no core files for the
/// SIGSYS deaths below, and no_new_privs so the install needs no privilege.
fn prepare() {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on the calling process with valid arguments.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
}

fn prepare_and_install(f: &seccomp::Filter) -> std::result::Result<(), InstallError> {
    prepare();
    f.try_install().map(drop)
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A raw syscall; returns the result and errno (0 on success).
fn sys(nr: libc::c_long, a0: u64, a1: u64, a2: u64) -> (i64, i32) {
    // SAFETY: the calls made through this helper take integer arguments
    // only, or pointers the caller keeps valid.
    let rc = unsafe { libc::syscall(nr, a0, a1, a2) };
    (rc, if rc == -1 { errno() } else { 0 })
}

#[test]
fn errno_action_returns_the_configured_errno() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
        {"names":["mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
        {"names":["getppid"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let end = in_child(|| {
        if prepare_and_install(&f).is_err() {
            return 1;
        }
        let mut buf = [0u8; 256];
        if sys(libc::SYS_getcwd, buf.as_mut_ptr() as u64, 256, 0).1 != libc::EACCES {
            return 2;
        }
        let dir = c"/tmp/berth-seccomp-never-created";
        if sys(
            libc::SYS_mkdirat,
            libc::AT_FDCWD as u64,
            dir.as_ptr() as u64,
            0o755,
        )
        .1 != libc::ENOSYS
        {
            return 3;
        }
        // No errnoRet: EPERM, as runc does.
        if sys(libc::SYS_getppid, 0, 0, 0).1 != libc::EPERM {
            return 4;
        }
        // Unlisted syscalls take the default action.
        if sys(libc::SYS_getpid, 0, 0, 0).0 <= 0 {
            return 5;
        }
        0
    });
    assert_eq!(end, End::Exit(0));
}

#[test]
fn default_errno_leaves_only_the_allow_list() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["exit_group","getpid"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let end = in_child(|| {
        if prepare_and_install(&f).is_err() {
            return 1;
        }
        if sys(libc::SYS_getppid, 0, 0, 0).1 != libc::EPERM {
            return 2;
        }
        if sys(libc::SYS_getuid, 0, 0, 0).1 != libc::EPERM {
            return 3;
        }
        if sys(libc::SYS_getpid, 0, 0, 0).0 <= 0 {
            return 4;
        }
        // The parent seeing 7 proves exit_group went through.
        7
    });
    assert_eq!(end, End::Exit(7));
}

#[test]
fn syscalls_newer_than_the_profile_fail_with_enosys() {
    // exit_group is 231; getppid (110) is older, openat2 (437) newer.
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["exit_group"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let end = in_child(|| {
        if prepare_and_install(&f).is_err() {
            return 1;
        }
        if sys(libc::SYS_getppid, 0, 0, 0).1 != libc::EPERM {
            return 2;
        }
        if sys(libc::SYS_openat2, 0, 0, 0).1 != libc::ENOSYS {
            return 3;
        }
        0
    });
    assert_eq!(end, End::Exit(0));
}

#[test]
fn default_errno_ret_sets_the_default_errno() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"syscalls":[
        {"names":["exit_group"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let end = in_child(|| {
        if prepare_and_install(&f).is_err() {
            return 1;
        }
        if sys(libc::SYS_getppid, 0, 0, 0).1 != libc::ENOSYS {
            return 2;
        }
        0
    });
    assert_eq!(end, End::Exit(0));
}

#[test]
fn personality_query_is_allowed_but_other_personas_are_denied() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["exit_group"],"action":"SCMP_ACT_ALLOW"},
        {"names":["personality"],"action":"SCMP_ACT_ALLOW",
         "args":[{"index":0,"value":4294967295,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    let end = in_child(|| {
        if prepare_and_install(&f).is_err() {
            return 1;
        }
        if sys(libc::SYS_personality, 0xffff_ffff, 0, 0).0 < 0 {
            return 2;
        }
        // 8 = PER_LINUX32 ... would be allowed by the kernel, not by us.
        if sys(libc::SYS_personality, 8, 0, 0).1 != libc::EPERM {
            return 3;
        }
        0
    });
    assert_eq!(end, End::Exit(0));
}

#[test]
fn masked_eq_denies_namespace_flags_only() {
    let ns = libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP;
    // Docker's form: refused by default, allowed without namespace flags.
    let f = filter(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":13,"syscalls":[
        {{"names":["exit_group"],"action":"SCMP_ACT_ALLOW"}},
        {{"names":["unshare"],"action":"SCMP_ACT_ALLOW",
          "args":[{{"index":0,"value":{ns},"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}}]}}]}}"#
    ));
    let end = in_child(|| {
        if prepare_and_install(&f).is_err() {
            return 1;
        }
        if sys(libc::SYS_unshare, 0, 0, 0).0 != 0 {
            return 2;
        }
        if sys(libc::SYS_unshare, libc::CLONE_FILES as u64, 0, 0).0 != 0 {
            return 3;
        }
        if sys(libc::SYS_unshare, libc::CLONE_NEWUTS as u64, 0, 0).1 != libc::EACCES {
            return 4;
        }
        let mixed = (libc::CLONE_FILES | libc::CLONE_NEWNET) as u64;
        if sys(libc::SYS_unshare, mixed, 0, 0).1 != libc::EACCES {
            return 5;
        }
        0
    });
    assert_eq!(end, End::Exit(0));
}

#[test]
fn sixty_four_bit_arguments_compare_both_halves() {
    // lseek(-1, off, SEEK_SET): EBADF means the filter let it through.
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["lseek"],"action":"SCMP_ACT_ERRNO","errnoRet":13,
         "args":[{"index":1,"value":4294967301,"op":"SCMP_CMP_EQ"}]},
        {"names":["lseek"],"action":"SCMP_ACT_ERRNO","errnoRet":22,
         "args":[{"index":1,"value":8589934592,"op":"SCMP_CMP_GE"}]}]}"#,
    );
    let end = in_child(|| {
        if prepare_and_install(&f).is_err() {
            return 1;
        }
        let bad_fd = u64::MAX;
        let lseek = |off: u64| sys(libc::SYS_lseek, bad_fd, off, 0).1;
        if lseek(0x1_0000_0005) != libc::EACCES {
            return 2;
        }
        // Same low word, different high word.
        if lseek(5) != libc::EBADF {
            return 3;
        }
        if lseek(0x2_0000_0005) != libc::EINVAL {
            return 4;
        }
        // 0x1_ffff_ffff < 2^33 even though its low word is larger.
        if lseek(0x1_ffff_ffff) != libc::EBADF {
            return 5;
        }
        0
    });
    assert_eq!(end, End::Exit(0));
}

#[test]
fn kill_process_ends_the_process_with_sigsys() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["getppid"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
    );
    let end = in_child(|| {
        if prepare_and_install(&f).is_err() {
            return 1;
        }
        sys(libc::SYS_getppid, 0, 0, 0);
        2
    });
    assert_eq!(end, End::Signal(libc::SIGSYS));
}

#[test]
fn kill_and_kill_thread_end_a_single_threaded_child_with_sigsys() {
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"] {
        let f = filter(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {{"names":["getppid"],"action":"{action}"}}]}}"#
        ));
        let end = in_child(|| {
            if prepare_and_install(&f).is_err() {
                return 1;
            }
            sys(libc::SYS_getppid, 0, 0, 0);
            2
        });
        assert_eq!(end, End::Signal(libc::SIGSYS), "{action}");
    }
}

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    const SYS_SECCOMP: i32 = 1;
    // SAFETY: the kernel passes a valid siginfo; for SIGSYS its union holds
    // `_sigsys { void *call_addr; int syscall; unsigned arch; }` right after
    // the three leading ints and padding, i.e. at byte 16.
    let (code, nr, arch) = unsafe {
        let base = info as *const u8;
        (
            (*info).si_code,
            *(base.add(24) as *const i32),
            *(base.add(28) as *const u32),
        )
    };
    let ok = code == SYS_SECCOMP && nr as libc::c_long == libc::SYS_getppid && arch == 0xc000_003e;
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(if ok { 42 } else { 43 }) }
}

#[test]
fn trap_delivers_sigsys_naming_the_syscall() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["getppid"],"action":"SCMP_ACT_TRAP"}]}"#,
    );
    let end = in_child(|| {
        // SAFETY: installs a handler that only reads siginfo and _exits;
        // `sa` is fully initialized.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigsys as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
                return 1;
            }
        }
        if prepare_and_install(&f).is_err() {
            return 2;
        }
        sys(libc::SYS_getppid, 0, 0, 0);
        3
    });
    assert_eq!(end, End::Exit(42));
}

#[test]
fn trace_without_a_tracer_fails_with_enosys_and_log_allows() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["getppid"],"action":"SCMP_ACT_TRACE"},
        {"names":["getpid"],"action":"SCMP_ACT_LOG"}]}"#,
    );
    let end = in_child(|| {
        if prepare_and_install(&f).is_err() {
            return 1;
        }
        if sys(libc::SYS_getppid, 0, 0, 0).1 != libc::ENOSYS {
            return 2;
        }
        // SAFETY: getpid has no preconditions.
        if sys(libc::SYS_getpid, 0, 0, 0).0 != unsafe { libc::getpid() } as i64 {
            return 3;
        }
        0
    });
    assert_eq!(end, End::Exit(0));
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["no_such_syscall","socketcall","getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    );
    let end = in_child(|| {
        if prepare_and_install(&f).is_err() {
            return 1;
        }
        if sys(libc::SYS_getppid, 0, 0, 0).1 != libc::EACCES {
            return 2;
        }
        0
    });
    assert_eq!(end, End::Exit(0));
}

#[test]
fn all_supported_flags_install() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW"],"syscalls":[
        {"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    );
    assert_eq!(f.flags(), 1 | 2 | 4);
    let end = in_child(|| {
        if prepare_and_install(&f).is_err() {
            return 1;
        }
        if sys(libc::SYS_getppid, 0, 0, 0).1 != libc::EACCES {
            return 2;
        }
        0
    });
    assert_eq!(end, End::Exit(0));
}

#[test]
fn install_without_no_new_privs_or_cap_sys_admin_is_refused() {
    let f = filter(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
    let end = in_child(|| {
        // Dropping to an unprivileged uid clears the capability sets.
        // SAFETY: plain syscall on the calling process.
        if unsafe { libc::setresuid(65534, 65534, 65534) } != 0 {
            return 1;
        }
        match f.try_install() {
            Err(InstallError::Errno(libc::EACCES)) => 0,
            _ => 2,
        }
    });
    assert_eq!(end, End::Exit(0));
}

/// i386 syscall through `int 0x80`; only eax is used (no arguments).
fn int80(nr: u32) -> i32 {
    let ret: i32;
    // SAFETY: an i386 syscall without arguments; the kernel returns in eax
    // and, on the compat path, may clobber r8-r11.
    unsafe {
        asm!(
            "int 0x80",
            inlateout("eax") nr => ret,
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
            options(nostack)
        );
    }
    ret
}

const I386_GETPID: u32 = 20;
const I386_GETPPID: u32 = 64;

#[test]
fn i386_syscalls_follow_the_rules_when_x86_is_listed() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
        "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    );
    let end = in_child(|| {
        if prepare_and_install(&f).is_err() {
            return 1;
        }
        // i386 getpid is 20, x86_64's 20 is writev: the i386 table was used.
        // SAFETY: getpid has no preconditions.
        if int80(I386_GETPID) != unsafe { libc::getpid() } {
            return 2;
        }
        if int80(I386_GETPPID) != -libc::EACCES {
            return 3;
        }
        0
    });
    assert_eq!(end, End::Exit(0));
}

#[test]
fn i386_syscalls_are_killed_when_x86_is_not_listed() {
    let f = filter(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
    let end = in_child(|| {
        if prepare_and_install(&f).is_err() {
            return 1;
        }
        int80(I386_GETPID);
        2
    });
    assert_eq!(end, End::Signal(libc::SIGSYS));
}

#[test]
fn x32_syscall_numbers_do_not_bypass_the_filter() {
    let x32_getppid = X32_SYSCALL_BIT | libc::SYS_getppid;
    let x32_getpid = X32_SYSCALL_BIT | libc::SYS_getpid;

    let native_only = filter(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
    let end = in_child(|| {
        if prepare_and_install(&native_only).is_err() {
            return 1;
        }
        sys(x32_getpid, 0, 0, 0);
        2
    });
    assert_eq!(end, End::Signal(libc::SIGSYS));

    let with_x32 = filter(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
        "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X32"],"syscalls":[
        {"names":["exit_group"],"action":"SCMP_ACT_ALLOW"},
        {"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    );
    let end = in_child(|| {
        if prepare_and_install(&with_x32).is_err() {
            return 1;
        }
        if sys(x32_getppid, 0, 0, 0).1 != libc::EACCES {
            return 2;
        }
        // Unlisted x32 calls take the default action.
        if sys(x32_getpid, 0, 0, 0).1 != libc::EPERM {
            return 3;
        }
        0
    });
    assert_eq!(end, End::Exit(0));
}

#[test]
fn this_kernel_supports_every_flag_berth_accepts() {
    // Kernels since 5.19 know all four (WAIT_KILLABLE_RECV is the newest).
    let mut flags = seccomp::kernel_supported_flags();
    flags.sort_unstable();
    let mut want = seccomp::SUPPORTED_FLAGS.to_vec();
    want.sort_unstable();
    assert_eq!(flags, want);
    let end = in_child(|| {
        let _ = seccomp::kernel_supported_flags();
        // No filter was installed: reading our own seccomp mode gives 0.
        // SAFETY: PR_GET_SECCOMP takes no pointers.
        unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) }
    });
    assert_eq!(end, End::Exit(0));
}

#[test]
fn install_failure_carries_the_syscall_in_its_message() {
    let f = filter(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
    // Checked in the child, reported through the exit code: the error text
    // is built after fork, which glibc's fork-safe malloc allows.
    let end = in_child(|| {
        // SAFETY: plain syscall on the calling process.
        if unsafe { libc::setresuid(65534, 65534, 65534) } != 0 {
            return 1;
        }
        match f.install() {
            Err(e) if e.message() == "seccomp(SECCOMP_SET_MODE_FILTER): permission denied" => 0,
            _ => 2,
        }
    });
    assert_eq!(end, End::Exit(0));
}
