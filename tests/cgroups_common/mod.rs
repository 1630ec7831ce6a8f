//! Shared by the cgroup suites: until the runtime exists, a "container" is
//! a child process placed in the cgroup the way the runtime will place its
//! init — on v1 it blocks until `add_pid` has moved it into every
//! hierarchy; on v2 it is born inside the cgroup by clone3(CLONE_INTO_CGROUP).
//!
//! Child bodies run after fork/clone in a copy of a multi-threaded process:
//! they stick to raw libc calls (no allocation) and report through their
//! exit status or a shared page.

#![allow(dead_code)]

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth::cgroups::{Manager, Mode};
use oci_spec::runtime::LinuxResources;

/// A test cgroup removed on drop, whatever happened (processes killed).
pub struct TestCgroup {
    pub m: Manager,
}

impl TestCgroup {
    pub fn new(name: &str, res: Option<LinuxResources>) -> TestCgroup {
        Self::try_new(name, res).expect("create test cgroup")
    }

    pub fn try_new(name: &str, res: Option<LinuxResources>) -> berth::Result<TestCgroup> {
        let id = format!("berth-test-{}-{name}", std::process::id());
        let m = Manager::new(&id, None, false)?;
        m.create(res.as_ref())?;
        Ok(TestCgroup { m })
    }

    pub fn is_v2(&self) -> bool {
        self.m.mode == Some(Mode::Unified)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = self.m.thaw();
        let _ = self.m.kill_all(libc::SIGKILL);
        let _ = self.m.wait_empty(Duration::from_secs(5));
        if let Err(e) = self.m.destroy() {
            eprintln!("cleanup of {}: {e}", self.m.path);
        }
    }
}

/// `resources` from JSON, the way a spec carries them.
pub fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("resources JSON")
}

pub struct Child {
    pub pid: i32,
    reaped: bool,
}

/// Start `body` in the cgroup; its return value is the exit code.
pub fn spawn(cg: &TestCgroup, body: impl FnOnce() -> i32) -> Child {
    if cg.is_v2() {
        spawn_v2(&cg.m, body)
    } else {
        spawn_v1(&cg.m, body)
    }
}

fn spawn_v1(m: &Manager, body: impl FnOnce() -> i32) -> Child {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fork has no preconditions; the child only runs `body`
    // (raw libc calls) and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let mut b = 0u8;
        // SAFETY: reading one byte into a local from our own pipe.
        unsafe {
            libc::close(fds[1]);
            if libc::read(fds[0], &mut b as *mut u8 as *mut libc::c_void, 1) != 1 {
                libc::_exit(126);
            }
        }
        let code = body();
        // SAFETY: terminating the child without running the parent's atexit.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: closing our copy of the read end, an fd we own.
    unsafe { libc::close(fds[0]) };
    let placed = m.add_pid(pid);
    let go = if placed.is_ok() { 1u8 } else { 0u8 };
    // SAFETY: writing one byte from a local to our own pipe, then closing it.
    unsafe {
        if go == 1 {
            libc::write(fds[1], &go as *const u8 as *const libc::c_void, 1);
        }
        libc::close(fds[1]);
    }
    if let Err(e) = placed {
        // SAFETY: pid is our child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let mut c = Child { pid, reaped: false };
        c.wait();
        panic!("add_pid: {e}");
    }
    Child { pid, reaped: false }
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

fn spawn_v2(m: &Manager, body: impl FnOnce() -> i32) -> Child {
    let fd = m
        .open_leaf()
        .expect("open leaf cgroup")
        .expect("v2 has a leaf fd");
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: fd.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone3 without CLONE_VM and with no stack behaves like fork:
    // the child gets a copy of our memory and returns 0 here; `args` is a
    // valid clone_args of the size passed.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    assert!(pid >= 0, "clone3: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = body();
        // SAFETY: terminating the child.
        unsafe { libc::_exit(code) };
    }
    Child {
        pid: pid as i32,
        reaped: false,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Child {
    pub fn wait(&mut self) -> Exit {
        let mut st = 0;
        loop {
            // SAFETY: waiting for our own child into a local.
            let r = unsafe { libc::waitpid(self.pid, &mut st, 0) };
            if r == self.pid {
                break;
            }
            let e = std::io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EINTR), "waitpid: {e}");
        }
        self.reaped = true;
        if libc::WIFSIGNALED(st) {
            Exit::Signal(libc::WTERMSIG(st))
        } else {
            Exit::Code(libc::WEXITSTATUS(st))
        }
    }

    /// Someone else reaped it.
    pub fn forget(&mut self) {
        self.reaped = true;
    }

    /// Wait at most `t`; `None` if still running.
    pub fn wait_timeout(&mut self, t: Duration) -> Option<Exit> {
        let end = Instant::now() + t;
        loop {
            let mut st = 0;
            // SAFETY: as in `wait`, without blocking.
            let r = unsafe { libc::waitpid(self.pid, &mut st, libc::WNOHANG) };
            if r == self.pid {
                self.reaped = true;
                return Some(if libc::WIFSIGNALED(st) {
                    Exit::Signal(libc::WTERMSIG(st))
                } else {
                    Exit::Code(libc::WEXITSTATUS(st))
                });
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: pid is our unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let mut st = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(self.pid, &mut st, 0) };
        }
    }
}

/// A page shared with children (MAP_SHARED), holding counters.
pub struct Shared {
    ptr: *mut AtomicU64,
}

// SAFETY: the page holds only atomics.
unsafe impl Send for Shared {}
// SAFETY: the page holds only atomics.
unsafe impl Sync for Shared {}

impl Shared {
    pub fn new() -> Shared {
        // SAFETY: a fresh anonymous shared mapping; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Shared {
            ptr: p as *mut AtomicU64,
        }
    }

    pub fn at(&self, i: usize) -> &AtomicU64 {
        assert!(i < 512);
        // SAFETY: the mapping is 4096 bytes = 512 zero-initialized u64s,
        // alive as long as self.
        unsafe { &*self.ptr.add(i) }
    }

    pub fn get(&self, i: usize) -> u64 {
        self.at(i).load(Ordering::SeqCst)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: unmapping the page mapped in `new`.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, 4096) };
    }
}

/// Child body: map and touch `bytes` of anonymous memory; 0 if it survives.
pub fn touch_memory(bytes: usize) -> i32 {
    // SAFETY: anonymous private mapping, written only within its length.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return 2;
        }
        let p = p as *mut u8;
        let mut off = 0;
        while off < bytes {
            std::ptr::write_volatile(p.add(off), 1);
            off += 4096;
        }
    }
    0
}

/// Child body: fork until the kernel refuses, keeping every child asleep,
/// then kill and reap them and exit with how many forks succeeded.
pub fn fork_until_refused(max: usize) -> i32 {
    let mut kids = [0i32; 256];
    let mut n = 0;
    let mut refused = false;
    while n < max.min(kids.len()) {
        // SAFETY: fork in the child; the grandchild only pauses.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: sleep until killed.
            unsafe {
                libc::pause();
                libc::_exit(0)
            };
        }
        if pid < 0 {
            refused = std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN);
            break;
        }
        kids[n] = pid;
        n += 1;
    }
    for &k in &kids[..n] {
        // SAFETY: our own children.
        unsafe {
            libc::kill(k, libc::SIGKILL);
            libc::waitpid(k, std::ptr::null_mut(), 0);
        }
    }
    if refused {
        n as i32
    } else {
        200
    }
}

/// Child body: open `path` (NUL-terminated) read-write; 0 or the errno.
pub fn open_errno(path: &'static [u8]) -> i32 {
    // SAFETY: path is NUL-terminated static bytes.
    let fd = unsafe { libc::open(path.as_ptr() as *const libc::c_char, libc::O_RDWR) };
    if fd < 0 {
        return std::io::Error::last_os_error().raw_os_error().unwrap_or(1);
    }
    // SAFETY: closing the fd just opened.
    unsafe { libc::close(fd) };
    0
}

/// Child body: count forever into `slot` of the shared page.
pub fn count_forever(sh: &Shared, slot: usize) -> i32 {
    loop {
        sh.at(slot).fetch_add(1, Ordering::Relaxed);
    }
}

/// Child body: spin for `wall` of wall-clock time, then exit 0.
pub fn spin_for(wall: Duration) -> i32 {
    let end = Instant::now() + wall;
    let mut x = 0u64;
    while Instant::now() < end {
        x = std::hint::black_box(x.wrapping_add(1));
    }
    0
}

/// CPU time (user+sys) of a reaped or live process, from /proc, in seconds.
pub fn cpu_seconds(pid: i32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields after ")" start at field 3 (state): utime is 14, stime 15.
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}
