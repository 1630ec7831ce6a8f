//! One measured command: a fresh sampler process per sample.
//!
//! The driver forks a *sampler* for every sample. The sampler makes itself a
//! child subreaper, reads the clock, spawns the command (posix_spawn, i.e.
//! clone(CLONE_VM|CLONE_VFORK) + execve), waits for it, reads the clock again,
//! then reaps whatever of the command's process tree was re-parented to it
//! (helpers such as `runc init`, double-forked children) and reads
//! `getrusage(RUSAGE_CHILDREN)`. Because the sampler is new for each sample:
//! - `ru_maxrss` is the peak RSS of the largest process of *this* sample's
//!   tree (the kernel folds a reaped child's own and children's peak into
//!   its parent's), not a high-water mark left by an earlier sample;
//! - `ru_utime + ru_stime` is the CPU time of every process of the tree
//!   that was reaped, in the runtime's helpers too;
//! - none of the driver's own work (its fork, its bookkeeping, this file's
//!   code) is inside the two clock readings or in the rusage: the only cost
//!   in the wall time besides the command is one posix_spawn and one wait4,
//!   and the floors (a bare spawn of /bin/true) are measured the same way.
//!
//! What stays alive when the command exits (a created container's init,
//! named by the runtime's --pid-file) is not waited for in `Reap::Init`
//! mode, though every other process of the tree is: the init is
//! re-parented to the driver (itself a subreaper) when the sampler exits,
//! and the driver reaps it when it kills it.

use std::ffi::CString;
use std::os::raw::c_char;

/// How long a sampler waits for leftovers before it gives up on them (they
/// then go to the driver, which kills and reaps them at cleanup).
const LEFTOVER_WAIT_S: u32 = 30;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Reap {
    /// The command must leave nothing running: wait for every process that
    /// comes to the sampler (bounded by LEFTOVER_WAIT_S).
    All,
    /// The command leaves a container running, its init named in the
    /// command's pid file: wait for every other process that comes to the
    /// sampler (helpers that exit just after the runtime returns, such as
    /// crun's intermediate process in `run --detach`), but not for that one.
    Init,
}

/// What one sample measured.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Sample {
    pub wall_ns: u64,
    /// wait status of the command (0 = exited 0), or -1 if it could not be
    /// spawned (then `spawn_errno` says why).
    pub status: i32,
    pub spawn_errno: i32,
    /// Peak RSS of the largest process of the reaped tree, KiB.
    pub maxrss_kb: i64,
    /// CPU time of the reaped tree, µs.
    pub user_us: i64,
    pub sys_us: i64,
    /// Processes still running when the sampler stopped waiting (Reap::All).
    pub leftovers: i32,
}

impl Sample {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
    pub fn wall_ms(&self) -> f64 {
        self.wall_ns as f64 / 1e6
    }
    pub fn cpu_ms(&self) -> f64 {
        (self.user_us + self.sys_us) as f64 / 1e3
    }
    pub fn rss_mb(&self) -> f64 {
        self.maxrss_kb as f64 / 1024.0
    }
}

/// A command ready to spawn: argv and envp as C arrays, built before any
/// fork so the sampler only spawns.
pub struct Cmd {
    path: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    _env: Vec<CString>,
    env_ptrs: Vec<*const c_char>,
    stdout: CString,
    stderr: CString,
    /// For Reap::Init: where the runtime writes the init's PID.
    pid_file: Option<String>,
    pub display: String,
}

impl Cmd {
    /// `argv[0]` must be an absolute path. stdin is /dev/null; stdout and
    /// stderr go to the given files (truncated).
    pub fn new(argv: &[String], env: &[String], stdout: &str, stderr: &str) -> Cmd {
        let cs = |s: &str| CString::new(s).expect("no NUL in arguments");
        let args: Vec<CString> = argv.iter().map(|a| cs(a)).collect();
        let mut argv_ptrs: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let envs: Vec<CString> = env.iter().map(|a| cs(a)).collect();
        let mut env_ptrs: Vec<*const c_char> = envs.iter().map(|a| a.as_ptr()).collect();
        env_ptrs.push(std::ptr::null());
        Cmd {
            path: cs(&argv[0]),
            _argv: args,
            argv_ptrs,
            _env: envs,
            env_ptrs,
            stdout: cs(stdout),
            stderr: cs(stderr),
            pid_file: None,
            display: argv.join(" "),
        }
    }

    pub fn with_pid_file(mut self, p: &str) -> Cmd {
        self.pid_file = Some(p.to_string());
        self
    }
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

extern "C" fn on_alarm(_: libc::c_int) {}

/// Run `cmd` once in a fresh sampler and return what it measured.
pub fn sample(cmd: &Cmd, reap: Reap) -> Sample {
    let mut fds = [0i32; 2];
    // SAFETY: valid out array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Sample {
            status: -1,
            spawn_errno: errno(),
            ..Default::default()
        };
    }
    // SAFETY: the driver is single-threaded; the child only makes syscalls
    // on memory prepared before the fork, then _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = errno();
        // SAFETY: our fds.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        return Sample {
            status: -1,
            spawn_errno: e,
            ..Default::default()
        };
    }
    if pid == 0 {
        // SAFETY: in the sampler child.
        unsafe {
            libc::close(fds[0]);
            let s = sampler(cmd, reap);
            let p = &s as *const Sample as *const u8;
            let mut off = 0usize;
            let n = std::mem::size_of::<Sample>();
            while off < n {
                let w = libc::write(fds[1], p.add(off) as *const libc::c_void, n - off);
                if w <= 0 {
                    break;
                }
                off += w as usize;
            }
            libc::_exit(0);
        }
    }
    // SAFETY: our fd.
    unsafe { libc::close(fds[1]) };
    let mut s = Sample::default();
    let n = std::mem::size_of::<Sample>();
    let mut off = 0usize;
    while off < n {
        // SAFETY: writing into our own Sample's bytes.
        let r = unsafe {
            libc::read(
                fds[0],
                (&mut s as *mut Sample as *mut u8).add(off) as *mut libc::c_void,
                n - off,
            )
        };
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        if r <= 0 {
            break;
        }
        off += r as usize;
    }
    // SAFETY: our fd; pid is our child.
    unsafe {
        libc::close(fds[0]);
        let mut st = 0;
        while libc::waitpid(pid, &mut st, 0) < 0 && errno() == libc::EINTR {}
    }
    if off < n {
        return Sample {
            status: -1,
            spawn_errno: libc::EPIPE,
            ..Default::default()
        };
    }
    s
}

/// Body of the sampler process.
unsafe fn sampler(cmd: &Cmd, reap: Reap) -> Sample {
    let mut out = Sample::default();
    libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
    let mut at: libc::posix_spawnattr_t = std::mem::zeroed();
    libc::posix_spawn_file_actions_init(&mut fa);
    libc::posix_spawnattr_init(&mut at);
    libc::posix_spawn_file_actions_addopen(&mut fa, 0, c"/dev/null".as_ptr(), libc::O_RDONLY, 0);
    let wr = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    libc::posix_spawn_file_actions_addopen(&mut fa, 1, cmd.stdout.as_ptr(), wr, 0o644);
    libc::posix_spawn_file_actions_addopen(&mut fa, 2, cmd.stderr.as_ptr(), wr, 0o644);
    // Rust ignores SIGPIPE in its processes; commands get the default back,
    // and an empty signal mask.
    let mut def: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut def);
    libc::sigaddset(&mut def, libc::SIGPIPE);
    libc::posix_spawnattr_setsigdefault(&mut at, &def);
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::posix_spawnattr_setsigmask(&mut at, &empty);
    libc::posix_spawnattr_setflags(
        &mut at,
        (libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK) as libc::c_short,
    );

    let mut child: libc::pid_t = 0;
    let t0 = now_ns();
    let rc = libc::posix_spawn(
        &mut child,
        cmd.path.as_ptr(),
        &fa,
        &at,
        cmd.argv_ptrs.as_ptr() as *const *mut c_char,
        cmd.env_ptrs.as_ptr() as *const *mut c_char,
    );
    if rc != 0 {
        out.status = -1;
        out.spawn_errno = rc;
        return out;
    }
    let mut st = 0;
    while libc::waitpid(child, &mut st, 0) < 0 && errno() == libc::EINTR {}
    let t1 = now_ns();
    out.wall_ns = t1 - t0;
    out.status = st;

    match reap {
        Reap::All => {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_alarm as *const () as usize;
            libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
            libc::alarm(LEFTOVER_WAIT_S);
            loop {
                let r = libc::waitpid(-1, &mut st, 0);
                if r > 0 {
                    continue;
                }
                if errno() == libc::EINTR {
                    out.leftovers = 1;
                }
                break;
            }
            libc::alarm(0);
        }
        Reap::Init => {
            let init: i32 = cmd
                .pid_file
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let me = libc::getpid();
            let children = format!("/proc/{me}/task/{me}/children");
            let deadline = now_ns() + LEFTOVER_WAIT_S as u64 * 1_000_000_000;
            loop {
                while libc::waitpid(-1, &mut st, libc::WNOHANG) > 0 {}
                let list = std::fs::read_to_string(&children).unwrap_or_default();
                let others = list
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                    .filter(|&p| p != init)
                    .count();
                if others == 0 {
                    break;
                }
                if now_ns() > deadline {
                    out.leftovers = 1;
                    break;
                }
                libc::usleep(200);
            }
        }
    }
    let mut ru: libc::rusage = std::mem::zeroed();
    libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
    out.maxrss_kb = ru.ru_maxrss;
    out.user_us = ru.ru_utime.tv_sec * 1_000_000 + ru.ru_utime.tv_usec;
    out.sys_us = ru.ru_stime.tv_sec * 1_000_000 + ru.ru_stime.tv_usec;
    out
}

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// What the driver learns when it reaps a process of its own (a container
/// init that was re-parented to it): its rusage, the same fields as a
/// sample's.
pub fn reap_own(pid: i32) -> Option<Sample> {
    let mut st = 0;
    // SAFETY: an all-zero rusage is a valid out buffer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid out pointers for one child's status and rusage.
        let r = unsafe { libc::wait4(pid, &mut st, 0, &mut ru) };
        if r == pid {
            break;
        }
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        return None;
    }
    Some(Sample {
        wall_ns: 0,
        status: st,
        spawn_errno: 0,
        maxrss_kb: ru.ru_maxrss,
        user_us: ru.ru_utime.tv_sec * 1_000_000 + ru.ru_utime.tv_usec,
        sys_us: ru.ru_stime.tv_sec * 1_000_000 + ru.ru_stime.tv_usec,
        leftovers: 0,
    })
}

/// Whether `pid` is a child of the driver (without reaping it).
pub fn is_own_child(pid: i32) -> bool {
    // SAFETY: an all-zero siginfo_t is a valid out buffer.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointer; WNOWAIT leaves the child unreaped.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    r == 0
}

/// Reap every child that has already exited (none that is running).
pub fn reap_zombies() {
    let mut st = 0;
    // SAFETY: valid out pointer.
    while unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) } > 0 {}
}

/// Describe a sample's failure for the report.
pub fn describe_failure(s: &Sample, stderr_file: &str) -> String {
    let why = if s.status == -1 {
        format!(
            "could not spawn: {}",
            std::io::Error::from_raw_os_error(s.spawn_errno)
        )
    } else if libc::WIFEXITED(s.status) {
        format!("exit status {}", libc::WEXITSTATUS(s.status))
    } else if libc::WIFSIGNALED(s.status) {
        format!("killed by signal {}", libc::WTERMSIG(s.status))
    } else {
        format!("wait status {}", s.status)
    };
    let err = std::fs::read_to_string(stderr_file).unwrap_or_default();
    let err: String = err.trim().chars().take(400).collect();
    if err.is_empty() {
        why
    } else {
        format!("{why}: {err}")
    }
}
