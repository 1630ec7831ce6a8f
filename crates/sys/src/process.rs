//! Processes: clone3, pidfds, namespaces, prctl, execve, signals.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::check;

/// `struct clone_args` (CLONE_ARGS_SIZE_VER2), libc's definition.
pub type CloneArgs = libc::clone_args;

/// `CLONE_INTO_CGROUP` (Linux 5.7). libc's glibc constant is a `c_int`
/// that cannot hold the value, so it is spelt here as clone_args takes it.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// An all-zero `clone_args`, for the fields the caller then sets.
pub fn clone_args() -> CloneArgs {
    // SAFETY: clone_args is plain integers; all-zero is its documented
    // "no options" value.
    unsafe { std::mem::zeroed() }
}

/// Fork-like clone3: returns 0 in the child, the child's pid in the parent.
/// With `CLONE_PIDFD` the pidfd is stored through `args.pidfd`.
///
/// # Safety
/// The caller must be single-threaded (the child gets a copy of only the
/// calling thread) and `args` must not ask for a shared VM or a new stack.
pub unsafe fn clone3(args: &mut CloneArgs) -> io::Result<libc::pid_t> {
    // SAFETY: args points to a live, correctly sized clone_args; the caller
    // guarantees the fork-like use (no CLONE_VM, no stack).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    check(ret).map(|r| r as libc::pid_t)
}

/// clone3 with CLONE_PIDFD: in the parent, the child's pid and its pidfd
/// (owned); in the child, 0 and None.
///
/// # Safety
/// As for `clone3`.
pub unsafe fn clone3_pidfd(args: &mut CloneArgs) -> io::Result<(libc::pid_t, Option<OwnedFd>)> {
    let mut fd: RawFd = -1;
    args.flags |= libc::CLONE_PIDFD as u64;
    args.pidfd = &mut fd as *mut RawFd as u64;
    // SAFETY: the caller upholds clone3's contract.
    let pid = unsafe { clone3(args) }?;
    if pid == 0 {
        return Ok((0, None));
    }
    // SAFETY: with CLONE_PIDFD the kernel stored a new fd that we now own.
    Ok((pid, Some(unsafe { OwnedFd::from_raw_fd(fd) })))
}

pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_send_signal(pidfd: BorrowedFd, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall; a null siginfo means "as kill(2) would".
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(|_| ())
}

pub fn setns(fd: BorrowedFd, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall; fd is a live namespace fd.
    check(unsafe { libc::setns(fd.as_raw_fd(), nstype) } as libc::c_long).map(|_| ())
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe { libc::unshare(flags) } as libc::c_long).map(|_| ())
}

/// setresuid(uid, uid, uid).
pub fn setresuid(uid: libc::uid_t) -> io::Result<()> {
    // SAFETY: integer-only syscall; on failure credentials are unchanged.
    check(unsafe { libc::setresuid(uid, uid, uid) } as libc::c_long).map(|_| ())
}

/// setresgid(gid, gid, gid).
pub fn setresgid(gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: integer-only syscall; on failure credentials are unchanged.
    check(unsafe { libc::setresgid(gid, gid, gid) } as libc::c_long).map(|_| ())
}

/// setgroups(2) with `groups`.
pub fn setgroups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: the pointer and length describe the live slice.
    check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } as libc::c_long).map(|_| ())
}

/// setsid(2): a new session led by the caller.
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid has no memory effects.
    check(unsafe { libc::setsid() } as libc::c_long).map(|_| ())
}

/// setdomainname(2).
pub fn setdomainname(name: &[u8]) -> io::Result<()> {
    // SAFETY: the pointer and length describe the live byte slice.
    check(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } as libc::c_long)
        .map(|_| ())
}

/// _exit(2): end the process now, without atexit handlers (a forked
/// child's copy of the parent's state must not run them).
pub fn exit(code: i32) -> ! {
    // SAFETY: _exit is always sound.
    unsafe { libc::_exit(code) }
}

/// kill(2).
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    check(unsafe { libc::kill(pid, sig) } as libc::c_long).map(|_| ())
}

/// Wait for a signal, forever (a child kept only to be killed).
pub fn pause_forever() -> ! {
    loop {
        // SAFETY: pause has no memory effects.
        unsafe { libc::pause() };
    }
}

/// prctl(PR_SET_NAME): the process's comm, at most 15 bytes.
pub fn set_name(name: &[u8]) {
    let mut buf = [0u8; 16];
    let n = name.len().min(15);
    buf[..n].copy_from_slice(&name[..n]);
    // SAFETY: buf is a NUL-terminated buffer of 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr()) };
}

/// personality(2) with `persona`.
pub fn personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: personality takes an integer and touches no memory.
    if unsafe { libc::personality(persona) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER1); libc has none.
#[repr(C)]
#[derive(Default)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    pub util_min: u32,
    pub util_max: u32,
}

/// sched_setattr(2) for the calling thread (`attr.size` is set here).
pub fn sched_setattr(mut attr: SchedAttr) -> io::Result<()> {
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: attr is a valid sched_attr whose size field matches.
    check(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) })
        .map(|_| ())
}

/// ioprio_set(IOPRIO_WHO_PROCESS, self, class << 13 | level).
pub fn ioprio_set(class: libc::c_long, level: libc::c_long) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: integer-only syscall.
    check(unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            (class << 13) | level,
        )
    })
    .map(|_| ())
}

/// Pin the calling thread to `cpus` (each below CPU_SETSIZE).
pub fn sched_setaffinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: cpu is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: set is a valid cpu_set_t of the size given.
    check(
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) }
            as libc::c_long,
    )
    .map(|_| ())
}

/// setrlimit(2).
pub fn setrlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: lim is a valid rlimit struct.
    check(unsafe { libc::setrlimit(resource, &lim) } as libc::c_long).map(|_| ())
}

/// access(path, X_OK): the caller may execute it.
pub fn executable(path: &CStr) -> bool {
    // SAFETY: path is NUL-terminated.
    unsafe { libc::access(path.as_ptr(), libc::X_OK) == 0 }
}

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a new session keyring.
pub fn join_session_keyring(name: &CStr) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: name is a valid C string for the duration of the call.
    check(unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) })
        .map(|_| ())
}

/// capset(2), v3: effective, permitted and inheritable as 64-bit masks.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let half = |m: u64, hi: bool| if hi { (m >> 32) as u32 } else { m as u32 };
    let data = [false, true].map(|hi| Data {
        effective: half(effective, hi),
        permitted: half(permitted, hi),
        inheritable: half(inheritable, hi),
    });
    let mut hdr = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    // SAFETY: header and the two data structs have the kernel's v3 layout
    // and outlive the call.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) })
        .map(|_| ())
}

/// Raise capability `cap` in the ambient set.
pub fn raise_ambient(cap: u32) -> io::Result<()> {
    // SAFETY: integer-only prctl.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            cap as libc::c_ulong,
            0,
            0,
        )
    } as libc::c_long)
    .map(|_| ())
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog); `None` probes the flags
/// (the kernel checks them, EINVAL, before reading the program, EFAULT).
/// Returns the kernel's answer (with TSYNC, a positive thread id on
/// failure).
pub fn seccomp_set_filter(
    flags: libc::c_ulong,
    prog: Option<&[libc::sock_filter]>,
) -> io::Result<libc::c_long> {
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    let fprog = prog.map(|p| libc::sock_fprog {
        len: p.len() as u16,
        filter: p.as_ptr() as *mut libc::sock_filter,
    });
    let ptr = fprog
        .as_ref()
        .map_or(std::ptr::null(), |f| f as *const libc::sock_fprog);
    // SAFETY: `ptr` is null or points at a sock_fprog describing `prog`,
    // which outlives the call; the kernel copies the program and writes
    // nothing back.
    check(unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, ptr) })
}

pub fn prctl(op: libc::c_int, a: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the prctl ops we use take integer arguments only.
    check(unsafe { libc::prctl(op, a, 0, 0, 0) } as libc::c_long).map(|_| ())
}

/// execve that only returns on failure.
pub fn execve(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> io::Error {
    // SAFETY: argv/envp are NULL-terminated arrays of pointers into CStrings
    // that the caller keeps alive across the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// The highest signal number (the kernel's `_NSIG`).
pub const MAX_SIGNAL: libc::c_int = 64;

/// A signal disposition `set_disposition` can install.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    Default,
    Ignore,
}

/// The kernel's `struct sigaction` as rt_sigaction(2) takes it on x86_64
/// and the other architectures with `sa_restorer` (not libc's, whose mask
/// is 128 bytes).
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Set `sig` to `d` with the raw rt_sigaction syscall (sigset size 8).
/// libc's signal() and sigaction() refuse the real-time signals glibc
/// keeps for itself (32, 33), but a process may still inherit them
/// ignored. Async-signal-safe: usable between fork and exec.
pub fn set_disposition(sig: libc::c_int, d: Disposition) -> io::Result<()> {
    let act = KernelSigaction {
        handler: match d {
            Disposition::Default => libc::SIG_DFL,
            Disposition::Ignore => libc::SIG_IGN,
        },
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: `act` is a live kernel sigaction with no handler function to
    // call (SIG_DFL or SIG_IGN), its size matches the sigset size passed,
    // and a null old-action pointer asks for nothing back.
    check(unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            &act as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            std::mem::size_of::<u64>(),
        )
    })
    .map(|_| ())
}

/// Reset every signal to its default disposition and unblock all: the
/// runtime ignores SIGPIPE (Rust's default), `run` blocks signals, and
/// whatever the runtime's caller ignored is inherited; none of it may leak
/// into the container's process. Every signal 1..=64 but SIGKILL and
/// SIGSTOP, by the raw syscall: libc's signal() skips glibc's reserved
/// real-time signals (32, 33).
pub fn reset_signals() {
    for sig in 1..=MAX_SIGNAL {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // Setting SIG_DFL on a valid signal cannot fail.
        let _ = set_disposition(sig, Disposition::Default);
    }
    // SAFETY: an empty, initialised set; sigprocmask has no other effects.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH): run the file behind `fd`.
/// Only returns on failure.
pub fn execve_fd(
    fd: BorrowedFd,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> io::Error {
    // SAFETY: argv/envp are NULL-terminated arrays of pointers into CStrings
    // that the caller keeps alive across the call; the path is empty.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

/// The start time (clock ticks since boot, field 22 of /proc/PID/stat) and
/// the state letter of `pid`; None when the process does not exist.
pub fn proc_stat(pid: libc::pid_t) -> Option<(u64, u8)> {
    use std::io::Read;
    // One read of a buffer the line fits in (procfs gives it whole), not
    // std::fs::read's stat and growing reads: `list` does this per container.
    let mut f = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buf = [0u8; 2048];
    let mut len = 0;
    while len < buf.len() {
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if buf[len - 1] == b'\n' {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let data = &buf[..len];
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let end = data.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(data.get(end + 2..)?).ok()?;
    let mut fields = rest.split(' ');
    let state = fields.next()?.as_bytes().first().copied()?;
    // `state` was field 3; start time is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Turn SIGINT/SIGTERM/SIGHUP into a flag the extraction loop polls, so an
/// interrupted unpack takes the normal error path and removes its
/// temporary directory instead of dying half-way.
pub fn trap_interrupts() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: sigaction is plain old data; zeroed is a valid empty mask.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as *const () as usize;
        // SAFETY: `sa` is initialised, the handler only does an atomic store,
        // and a null old-action pointer is allowed.
        check(unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } as libc::c_long)?;
    }
    Ok(())
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_of_self_is_running() {
        let (start, state) = proc_stat(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert!(state != b'Z' && state != b'X');
        assert!(proc_stat(i32::MAX).is_none());
    }
}
