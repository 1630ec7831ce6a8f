//! berth: a runc-compatible OCI container runtime.
//!
//! The modules follow the container lifecycle: `cli` parses commands and
//! calls into `container` (state directory, lock, status) and `process` (the
//! single clone3 setup path and the parent/child protocol); the child sets up
//! `rootfs`, `capabilities`, `rlimits`, `seccomp` and the `tty`, and the
//! runtime runs `hooks` at the points the runtime-spec names.

pub mod capabilities;
pub mod cgroups;
pub mod checkpoint;
pub mod cli;
pub mod container;
pub mod error;
pub mod events;
pub mod features;
pub mod hooks;
pub mod intel_rdt;
pub mod lifecycle;
pub mod logging;
pub mod netdev;
pub mod process;
pub mod ps;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod spec;
pub mod tty;
pub mod update;
pub mod validate;

/// The syscall layer (the `berth-sys` crate, shared with berth-bundle).
pub use berth_sys as sys;

pub use error::{Context, Error, Result};
