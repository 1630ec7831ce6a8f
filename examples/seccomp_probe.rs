//! A static probe for the container-level seccomp tests
//! (tests/seccomp_actions.rs, tests/seccomp_notify.rs), built with the tests
//! (`cargo test` builds examples). Each mode makes one mkdir(2) of PATH the
//! way a seccomp action shows best and prints one line about what happened:
//!
//! - `mkdir PATH`: `ok` or `errno N`;
//! - `trap PATH`: with a SIGSYS handler: `sigsys nr=NR arch=HEX data=N`;
//! - `thread PATH`: from a second thread: `thread ok|errno N` when the
//!   thread returns, `thread killed` when only it died (main prints);
//! - `trace PATH`: under a tracer (this process) that sets
//!   PTRACE_O_TRACESECCOMP: `event data=N` per seccomp stop, then the
//!   tracee's own line;
//! - `usr1 PATH`: with a SIGUSR1 handler (no SA_RESTART): prints `pid P`
//!   first, then `ok|errno N handled=H` (H: signals handled meanwhile);
//! - `tsync PROFILE_JSON PATH` (on the host): a second thread waits while
//!   the main thread installs the profile with berth (no_new_privs set),
//!   then makes the mkdir: `thread ok|errno N`.

use std::io::Write;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

fn mkdir(path: &std::ffi::CStr) -> String {
    // SAFETY: mkdir with a valid NUL-terminated path.
    let rc = unsafe { libc::syscall(libc::SYS_mkdir, path.as_ptr(), 0o755) };
    if rc == 0 {
        "ok".into()
    } else {
        format!(
            "errno {}",
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        )
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

static SYS_NR: AtomicI32 = AtomicI32::new(-1);
static SYS_ARCH: AtomicU32 = AtomicU32::new(0);
static SYS_DATA: AtomicI32 = AtomicI32::new(-1);
static HANDLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo; for SIGSYS from seccomp,
    // si_errno holds SECCOMP_RET_DATA and the union holds `_sigsys { void
    // *call_addr; int syscall; unsigned arch; }` at byte 16.
    unsafe {
        let base = info as *const u8;
        SYS_DATA.store((*info).si_errno, Ordering::SeqCst);
        SYS_NR.store(*(base.add(24) as *const i32), Ordering::SeqCst);
        SYS_ARCH.store(*(base.add(28) as *const u32), Ordering::SeqCst);
    }
}

extern "C" fn on_usr1(_sig: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

fn handle(sig: libc::c_int, f: usize, flags: libc::c_int) {
    // SAFETY: installs a handler that only touches atomics; `sa` is fully
    // initialized (zeroed, then the handler and flags).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = f;
        sa.sa_flags = flags;
        assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0);
    }
}

fn tasks() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The thread's result, or `killed` once it is gone without one.
fn from_thread(path: std::ffi::CString, before: impl FnOnce() + Send + 'static) -> String {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    // Not joined: a thread seccomp killed never finishes its closure.
    std::thread::spawn(move || {
        let _ = go_rx.recv();
        let _ = tx.send(mkdir(&path));
    });
    before();
    let _ = go_tx.send(());
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(20)) {
            Ok(r) => return r,
            Err(_) if tasks() <= 1 => return "killed".into(),
            Err(_) => {}
        }
    }
}

fn trace(path: &std::ffi::CStr) {
    // SAFETY: the child only makes raw syscalls and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: PTRACE_TRACEME and raise take no pointers.
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::raise(libc::SIGSTOP);
        }
        say(&format!("tracee {}", mkdir(path)));
        // SAFETY: ends the child.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for our child; `status` is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let opts = libc::PTRACE_O_TRACESECCOMP | libc::PTRACE_O_EXITKILL;
    // SAFETY: the child is our tracee, stopped.
    unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, opts) };
    let mut sig = 0;
    loop {
        // SAFETY: resumes our stopped tracee, delivering `sig`.
        unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, sig) };
        sig = 0;
        // SAFETY: as above.
        if unsafe { libc::waitpid(pid, &mut status, 0) } != pid || libc::WIFEXITED(status) {
            break;
        }
        if libc::WIFSIGNALED(status) {
            say(&format!("tracee signal {}", libc::WTERMSIG(status)));
            break;
        }
        if status >> 8 == libc::SIGTRAP | (libc::PTRACE_EVENT_SECCOMP << 8) {
            let mut msg: libc::c_ulong = 0;
            // SAFETY: GETEVENTMSG writes one c_ulong into `msg`.
            unsafe {
                libc::ptrace(
                    libc::PTRACE_GETEVENTMSG,
                    pid,
                    0,
                    &mut msg as *mut libc::c_ulong,
                )
            };
            say(&format!("event data={msg}"));
        } else if libc::WIFSTOPPED(status) {
            sig = libc::WSTOPSIG(status);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let path = |i: usize| std::ffi::CString::new(args[i].as_str()).unwrap();
    match mode {
        "mkdir" => say(&mkdir(&path(2))),
        "trap" => {
            handle(
                libc::SIGSYS,
                on_sigsys as *const () as usize,
                libc::SA_SIGINFO,
            );
            let _ = mkdir(&path(2));
            say(&format!(
                "sigsys nr={} arch={:x} data={}",
                SYS_NR.load(Ordering::SeqCst),
                SYS_ARCH.load(Ordering::SeqCst),
                SYS_DATA.load(Ordering::SeqCst)
            ));
        }
        "thread" => say(&format!("thread {}", from_thread(path(2), || {}))),
        "trace" => trace(&path(2)),
        "usr1" => {
            handle(libc::SIGUSR1, on_usr1 as *const () as usize, 0);
            say(&format!("pid {}", std::process::id()));
            let r = mkdir(&path(2));
            say(&format!("{r} handled={}", HANDLED.load(Ordering::SeqCst)));
        }
        "tsync" => {
            let profile: oci_spec::runtime::LinuxSeccomp =
                serde_json::from_str(&args[2]).expect("profile JSON");
            let filter = berth::seccomp::compile(&profile).expect("profile compiles");
            let r = from_thread(path(3), move || {
                berth::sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).expect("no_new_privs");
                filter.install().expect("install");
            });
            say(&format!("thread {r}"));
        }
        _ => {
            eprintln!("usage: seccomp_probe mkdir|trap|thread|trace|usr1 PATH | tsync JSON PATH");
            std::process::exit(2);
        }
    }
}
