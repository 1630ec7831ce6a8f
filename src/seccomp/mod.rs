//! `linux.seccomp`: compiled to a BPF program in the parent (before clone3,
//! so the child only installs it), installed right before exec.
//!
//! We generate the BPF ourselves (`compile.rs`, `bpf.rs`) rather than with
//! seccompiler: seccompiler gives every rule of a filter one shared action
//! (the spec has one per rule, plus errno values), knows one ABI per filter
//! (Docker's profile lists x86_64, i386 and x32), and its install helpers
//! always set no_new_privs and cannot pass SECCOMP_FILTER_FLAG_LOG or
//! _SPEC_ALLOW, while the runtime must honour `noNewPrivileges: false`.
//!
//! Behaviour callers see (libseccomp/runc semantics unless noted):
//! - x86_64 is always filtered; i386 (`int 0x80`) and x32 (nr with bit 30)
//!   follow the rules by their own numbers when listed in `architectures`,
//!   and are killed (SECCOMP_RET_KILL_THREAD, libseccomp's bad-arch default)
//!   when not, so they can never bypass the filter.
//! - Syscall names unknown for an ABI are skipped.
//! - Precedence is libseccomp's (what runc and crun load; checked against
//!   it by tests/seccomp_differential.rs): a rule without `args` decides
//!   its syscall alone (the first such rule), rules with `args` are tried
//!   in config order otherwise, `args` within one rule are ANDed (also on
//!   one argument, where runc splits them into rules of their own), and a
//!   rule with the default action is dropped, as runc drops it.
//! - i386 and x32 compare only the low 32 bits of arguments (their ABIs'
//!   width, as libseccomp); on i386 a rule for a socket or SysV IPC call
//!   also covers socketcall(2)/ipc(2) with that call number.
//! - With a refusing default action, syscalls numbered above the newest one
//!   the profile names get ENOSYS, as in runc.
//! - SCMP_ACT_NOTIFY: the install returns the listener fd
//!   (SECCOMP_FILTER_FLAG_NEW_LISTENER); the container's process hands it
//!   to the runtime over the init channel, and the runtime, on the host,
//!   sends it with the container process state to `listenerPath`
//!   (`notify`). With notify rules the filter goes in before the runtime
//!   lets go of the process: with noNewPrivileges right after the
//!   executable lookup (not after the exec fifo), so the few syscalls
//!   left before execve pass through it (as in runc). NOTIFY may not be
//!   the default action nor apply to `sendmsg` (the hand-over).
//! - errnoRet outside ERRNO/TRACE or above 0xffff is rejected by `compile`.

mod bpf;
mod compile;
pub mod eval;
pub mod notify;
mod syscalls;

#[cfg(test)]
mod compile_tests;

use std::os::fd::OwnedFd;

use oci_spec::runtime::LinuxSeccomp;

use crate::Result;

pub use compile::{syscall_number, Abi};

/// Actions `compile` accepts, as the runtime-spec spells them.
pub const SUPPORTED_ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// Argument comparison operators `compile` accepts.
pub const SUPPORTED_OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// Architectures the filter enforces on an x86_64 host. Others may be listed
/// in a config; they cannot occur on this kernel and are ignored.
pub const SUPPORTED_ARCHITECTURES: &[&str] =
    &["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"];

/// seccomp(2) filter flags `compile` accepts.
pub const SUPPORTED_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// The subset of `SUPPORTED_FLAGS` the running kernel accepts, for the
/// `features` command. Probes with a NULL program: the kernel checks flags
/// (EINVAL) before reading the program (EFAULT), so nothing is installed.
/// WAIT_KILLABLE_RECV is only valid with a listener, so it is probed with
/// NEW_LISTENER (Linux 5.19+).
pub fn kernel_supported_flags() -> Vec<&'static str> {
    let flags = [
        ("SECCOMP_FILTER_FLAG_LOG", compile::FLAG_LOG),
        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", compile::FLAG_SPEC_ALLOW),
        ("SECCOMP_FILTER_FLAG_TSYNC", compile::FLAG_TSYNC),
        (
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
            compile::FLAG_WAIT_KILLABLE_RECV | compile::FLAG_NEW_LISTENER,
        ),
    ];
    flags
        .into_iter()
        .filter(|(_, bit)| {
            crate::sys::seccomp_set_filter(*bit, None)
                .is_err_and(|e| e.raw_os_error() == Some(libc::EFAULT))
        })
        .map(|(name, _)| name)
        .collect()
}

/// A compiled filter, ready to install without allocating.
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
    notify: bool,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &self.flags)
            .field("notify", &self.notify)
            .finish()
    }
}

/// Why `Filter::try_install` failed, without allocating a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// seccomp(2) failed with this errno (EACCES: neither no_new_privs nor
    /// CAP_SYS_ADMIN; EINVAL: a flag this kernel does not know).
    Errno(i32),
    /// With SECCOMP_FILTER_FLAG_TSYNC: this thread could not be synchronized.
    Tsync(i64),
}

/// Compile a runtime-spec seccomp config for the host architecture.
pub fn compile(config: &LinuxSeccomp) -> Result<Filter> {
    let c = compile::compile(config)?;
    Ok(Filter {
        program: c.program,
        flags: c.flags,
        notify: c.notify,
    })
}

impl Filter {
    /// Install on the calling thread (seccomp(2) with the config's flags).
    /// A filter with notify rules returns its listener fd, which must reach
    /// the listener before any notified syscall can complete. Allocates
    /// only to describe a failure.
    pub fn install(&self) -> Result<Option<OwnedFd>> {
        match self.try_install() {
            Ok(fd) => Ok(fd),
            Err(InstallError::Errno(e)) => Err(crate::Error::from(nix::errno::Errno::from_raw(e))
                .context("seccomp(SECCOMP_SET_MODE_FILTER)")),
            Err(InstallError::Tsync(tid)) => crate::bail!(
                "seccomp(SECCOMP_SET_MODE_FILTER): thread {tid} cannot be synchronized (SECCOMP_FILTER_FLAG_TSYNC)"
            ),
        }
    }

    /// `install` that never allocates, for callers between clone and exec
    /// that report errors themselves.
    pub fn try_install(&self) -> std::result::Result<Option<OwnedFd>, InstallError> {
        let errno =
            |e: std::io::Error| InstallError::Errno(e.raw_os_error().unwrap_or(libc::EINVAL));
        if self.notify {
            // TSYNC comes with TSYNC_ESRCH here: a thread that cannot be
            // synchronized is ESRCH, reported as such.
            return crate::sys::seccomp_set_filter_listener(self.flags, &self.program)
                .map(Some)
                .map_err(errno);
        }
        let rc = match crate::sys::seccomp_set_filter(self.flags, Some(&self.program)) {
            Ok(rc) => rc,
            Err(e) => return Err(errno(e)),
        };
        match rc {
            0 => Ok(None),
            tid => Err(InstallError::Tsync(tid)),
        }
    }

    /// Whether the filter has notify rules (and `install` a listener fd).
    pub fn notifies(&self) -> bool {
        self.notify
    }

    /// The BPF program, for inspection and tests.
    pub fn program(&self) -> &[libc::sock_filter] {
        &self.program
    }

    /// The seccomp(2) flags `install` passes.
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }
}
