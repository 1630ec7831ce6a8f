//! `berth-bench text-order BINARY OUT -- CMD...`: which of BINARY's
//! functions run when CMD runs, in the order they first run, written to OUT
//! as a linker symbol ordering file (one mangled name per line).
//!
//! Why: a command's peak RSS is mostly the binary's program text that the
//! kernel maps around each page fault (64 KiB of fault-around). The code a
//! command runs is spread over the whole 4 MB `.text`, so nearly all of it
//! gets mapped. Laid out first and together (`build.rs` passes OUT to lld
//! as `--symbol-ordering-file`), that code is a few hundred KB.
//!
//! How: CMD and every process it forks run under ptrace. A process whose
//! executable is BINARY is single-stepped and each instruction address is
//! kept; any other process (the shell, the container's program) just runs,
//! still traced so that what it forks is seen. BINARY must be a static,
//! non-PIE executable (berth's release build is), so addresses are the
//! symbol table's.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

const OPTIONS: libc::c_int = libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK
    | libc::PTRACE_O_TRACECLONE
    | libc::PTRACE_O_TRACEEXEC
    | libc::PTRACE_O_EXITKILL;

/// Byte offset of `rip` in `struct user_regs_struct` (x86-64).
const RIP: usize = 16 * 8;

pub fn main(args: &[String]) -> Result<(), String> {
    let (binary, out, cmd) = match args {
        [b, o, dd, cmd @ ..] if dd == "--" && !cmd.is_empty() => (b, o, cmd),
        _ => return Err("usage: berth-bench text-order BINARY OUT -- CMD...".into()),
    };
    let meta = std::fs::metadata(binary).map_err(|e| format!("{binary}: {e}"))?;
    let id = (meta.dev(), meta.ino());
    let symbols = text_symbols(binary)?;
    let seen = trace(cmd, id)?;
    // Instruction addresses → functions, in the order they first ran.
    let mut first: HashMap<usize, u64> = HashMap::new();
    for (&addr, &seq) in &seen {
        let i = symbols.partition_point(|(start, _)| *start <= addr);
        if i == 0 {
            continue;
        }
        let e = first.entry(i - 1).or_insert(seq);
        *e = (*e).min(seq);
    }
    let mut order: Vec<(u64, usize)> = first.into_iter().map(|(i, s)| (s, i)).collect();
    order.sort_unstable();
    let mut text = String::new();
    for (_, i) in &order {
        text.push_str(&symbols[*i].1);
        text.push('\n');
    }
    std::fs::write(out, text).map_err(|e| format!("write {out}: {e}"))?;
    eprintln!(
        "[text-order] {} instructions at distinct addresses, {} of {} functions: {out}",
        seen.len(),
        order.len(),
        symbols.len()
    );
    Ok(())
}

/// (start address, mangled name) of every function, sorted by address.
fn text_symbols(binary: &str) -> Result<Vec<(u64, String)>, String> {
    let out = Command::new("nm")
        .args(["--defined-only", "-n", binary])
        .output()
        .map_err(|e| format!("nm: {e}"))?;
    if !out.status.success() {
        return Err(format!("nm {binary} failed"));
    }
    let mut syms: Vec<(u64, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let addr = u64::from_str_radix(f.next()?, 16).ok()?;
            let kind = f.next()?;
            let name = f.next()?;
            matches!(kind, "t" | "T" | "w" | "W").then(|| (addr, name.to_string()))
        })
        .collect();
    syms.sort_unstable();
    if syms.is_empty() {
        return Err(format!("{binary} has no function symbols (stripped?)"));
    }
    Ok(syms)
}

/// Run `cmd` under ptrace; every instruction address executed by a process
/// whose executable is `id` (dev, ino), with the sequence number of its
/// first execution.
fn trace(cmd: &[String], id: (u64, u64)) -> Result<HashMap<u64, u64>, String> {
    let argv: Vec<CString> = cmd
        .iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| "NUL in argument".to_string()))
        .collect::<Result<_, _>>()?;
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // Orphans (a detached container's init) come to us, to be reaped.
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    // SAFETY: fork in a single-threaded driver; the child only calls
    // async-signal-safe functions before execvp.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if child == 0 {
        // SAFETY: PTRACE_TRACEME and raise take no pointers; argv outlives
        // the execvp call.
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::raise(libc::SIGSTOP);
            libc::execvp(ptrs[0], ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let mut seq = 0u64;
    // pid → single-stepped (its executable is the binary).
    let mut procs: HashMap<libc::pid_t, bool> = HashMap::new();
    let is_binary = |pid: libc::pid_t| {
        std::fs::metadata(format!("/proc/{pid}/exe"))
            .map(|m| (m.dev(), m.ino()) == id)
            .unwrap_or(false)
    };
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if pid < 0 {
            break; // ECHILD: every traced process is gone
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            procs.remove(&pid);
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        let mut deliver = 0;
        if let std::collections::hash_map::Entry::Vacant(e) = procs.entry(pid) {
            // First stop of a new tracee (its SIGSTOP); the first child
            // gets its options here, forked ones inherit them.
            if pid == child {
                // SAFETY: pid is our stopped tracee.
                unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, OPTIONS) };
            }
            e.insert(is_binary(pid));
        } else if event == libc::PTRACE_EVENT_EXEC {
            procs.insert(pid, is_binary(pid));
        } else if event == 0 && sig != libc::SIGTRAP {
            deliver = sig;
        }
        let step = procs.get(&pid).copied().unwrap_or(false);
        if step && event == 0 && sig == libc::SIGTRAP {
            // SAFETY: PEEKUSER of a stopped tracee at a valid offset.
            let rip = unsafe { libc::ptrace(libc::PTRACE_PEEKUSER, pid, RIP, 0) } as u64;
            seen.entry(rip).or_insert_with(|| {
                seq += 1;
                seq
            });
        }
        let req = if step {
            libc::PTRACE_SINGLESTEP
        } else {
            libc::PTRACE_CONT
        };
        // SAFETY: resuming our stopped tracee; a signal number or 0.
        unsafe { libc::ptrace(req, pid, 0, deliver) };
    }
    Ok(seen)
}
