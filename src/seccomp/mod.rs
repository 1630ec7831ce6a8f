//! `linux.seccomp`: compiled to a BPF program in the parent (before clone3,
//! so the child only installs it), installed right before exec.

use oci_spec::runtime::LinuxSeccomp;

use crate::Result;

/// A compiled filter, ready to install without allocating.
pub struct Filter {
    _private: (),
}

/// Compile a runtime-spec seccomp config for the host architecture.
pub fn compile(_config: &LinuxSeccomp) -> Result<Filter> {
    crate::bail!("seccomp is not implemented yet")
}

impl Filter {
    /// Install on the calling thread (seccomp(2) with the config's flags).
    pub fn install(&self) -> Result<()> {
        crate::bail!("seccomp is not implemented yet")
    }
}
