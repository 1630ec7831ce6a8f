//! oci-conformance: a runtime-agnostic OCI runtime-spec conformance suite.
//!
//! Each case generates a bundle (static busybox + our checker), drives the
//! runtime only through its CLI, and checks the result from inside the
//! container (the checker's JSON report) and from outside (state, exit codes,
//! cgroups, hook outputs).

pub mod bundle;
pub mod case;
pub mod cases;
pub mod cli;
pub mod console;
pub mod diff;
pub mod interrupt;
pub mod jsonptr;
pub mod mutant;
pub mod reaper;
pub mod report;
pub mod runtime;
pub mod suite;
