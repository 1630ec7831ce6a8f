//! berth's syscall layer, shared by the runtime and berth-bundle: thin
//! wrappers over the calls that `nix` and `std` do not cover, each
//! returning `io::Result` and holding the only `unsafe` for its call (with
//! a `// SAFETY:` comment). libc's structs and constants are used where it
//! has them (clone_args, open_how, RESOLVE_*, CLOSE_RANGE_*); the mount API,
//! which libc lacks for glibc targets, is spelt out in `mount`.

mod at;
mod bpf;
mod fd;
mod mount;
mod process;
mod seccomp;
mod tty;

pub use at::*;
pub use bpf::*;
pub use fd::*;
pub use mount::*;
pub use process::*;
pub use seccomp::*;
pub use tty::*;

use std::io;

/// A raw syscall's result: the value, or errno as `io::Error`.
pub(crate) fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
