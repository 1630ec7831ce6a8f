//! A profile shaped like Docker's default (default ERRNO, three x86 ABIs, a
//! large allow list with names from other architectures, argument rules for
//! personality and clone, clone3 answered with ENOSYS) must compile and let
//! a real shell run, while namespace creation stays denied.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::FromRawFd;

use berth::seccomp;
use oci_spec::runtime::LinuxSeccomp;

/// Syscalls a general-purpose container needs, plus names that exist only
/// on other architectures (skipped on x86_64, as profiles expect).
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "get_mempolicy",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_setup",
    "io_submit",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "riscv_flush_icache",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// The CLONE_NEW* flags a container without CAP_SYS_ADMIN may not use.
const NAMESPACE_FLAGS: u64 = 0x7e02_0000;

fn profile() -> LinuxSeccomp {
    let names: Vec<String> = ALLOWED.iter().map(|n| format!("\"{n}\"")).collect();
    let json = format!(
        r#"{{
  "defaultAction": "SCMP_ACT_ERRNO",
  "defaultErrnoRet": 1,
  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  "syscalls": [
    {{"names": [{names}], "action": "SCMP_ACT_ALLOW"}},
    {{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
      "args": [{{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}}]}},
    {{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
      "args": [{{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}}]}},
    {{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
      "args": [{{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}}]}},
    {{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
      "args": [{{"index": 0, "value": {NAMESPACE_FLAGS}, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}}]}},
    {{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}}
  ]
}}"#,
        names = names.join(", ")
    );
    serde_json::from_str(&json).expect("profile parses")
}

struct Run {
    status: i32,
    output: String,
}

/// Forks, installs `filter` and execs busybox with `args`; returns its wait
/// status and combined stdout/stderr.
fn busybox_under(filter: &seccomp::Filter, args: &[&str]) -> Run {
    let path = c"/bin/busybox";
    let argv_owned: Vec<CString> = std::iter::once("busybox")
        .chain(args.iter().copied())
        .map(|a| CString::new(a).expect("argument without NUL"))
        .collect();
    let mut argv: Vec<*const libc::c_char> = argv_owned.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());

    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    let [read_end, write_end] = fds;

    // SAFETY: the child only makes raw syscalls (dup2, prctl, seccomp,
    // execv) on memory prepared above, then execs or _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: as above; all pointers are to live, NUL-terminated data.
        unsafe {
            libc::dup2(write_end, 1);
            libc::dup2(write_end, 2);
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            if filter.try_install().is_err() {
                libc::_exit(120);
            }
            libc::execv(path.as_ptr(), argv.as_ptr());
            libc::_exit(121);
        }
    }
    // SAFETY: `write_end` is ours and closed once; `read_end` is owned by
    // the File from here on.
    let mut reader = unsafe {
        libc::close(write_end);
        std::fs::File::from_raw_fd(read_end)
    };
    let mut output = String::new();
    let read = reader.read_to_string(&mut output);
    let mut status = 0;
    loop {
        // SAFETY: reaps the child forked above.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.raw_os_error(), Some(libc::EINTR), "waitpid: {err}");
    }
    read.expect("read child output");
    Run { status, output }
}

#[test]
fn docker_like_profile_compiles_for_three_abis_within_kernel_limits() {
    let f = seccomp::compile(&profile()).expect("profile compiles");
    assert!(
        f.program().len() < 4096,
        "{} instructions",
        f.program().len()
    );
    // Each ABI section adds code: a native-only profile must be smaller.
    let mut native_only = profile();
    native_only.set_architectures(None);
    let g = seccomp::compile(&native_only).expect("profile compiles");
    assert!(g.program().len() * 2 < f.program().len());
}

#[test]
fn docker_like_profile_runs_a_shell() {
    let f = seccomp::compile(&profile()).expect("profile compiles");
    let run = busybox_under(&f, &["sh", "-c", "echo ok"]);
    assert!(
        libc::WIFEXITED(run.status) && libc::WEXITSTATUS(run.status) == 0,
        "status {:#x}, output {:?}",
        run.status,
        run.output
    );
    assert_eq!(run.output, "ok\n");
}

#[test]
fn docker_like_profile_denies_unshare() {
    let f = seccomp::compile(&profile()).expect("profile compiles");
    // Root could create a UTS namespace; the profile must stop it.
    let run = busybox_under(&f, &["unshare", "-u", "true"]);
    assert!(
        libc::WIFEXITED(run.status) && libc::WEXITSTATUS(run.status) != 0,
        "status {:#x}, output {:?}",
        run.status,
        run.output
    );
    assert!(
        run.output.contains("Operation not permitted"),
        "{:?}",
        run.output
    );
    // Sanity: without the filter the same command succeeds here.
    let allow = seccomp::compile(
        &serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).expect("parses"),
    )
    .expect("compiles");
    let run = busybox_under(&allow, &["unshare", "-u", "true"]);
    assert_eq!(run.status, 0, "output {:?}", run.output);
}

#[test]
fn docker_like_profile_forks_only_without_namespace_flags() {
    let f = seccomp::compile(&profile()).expect("profile compiles");
    // busybox sh forks for the pipeline (clone without CLONE_NEW*, clone3
    // answered with ENOSYS so libc falls back to clone).
    let run = busybox_under(&f, &["sh", "-c", "echo piped | cat; echo $?"]);
    assert_eq!(run.output, "piped\n0\n", "status {:#x}", run.status);
    assert_eq!(run.status, 0);
}
