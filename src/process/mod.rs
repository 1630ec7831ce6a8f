//! Process creation: the single clone3 path (`launch`), the init that runs in
//! the child (`init`), their protocol (`channel`) and namespace handling;
//! what a child entering the container may hold (`fds`, `host_binary`).

pub mod attrs;
pub mod channel;
pub mod exec;
pub mod fds;
pub mod foreground;
pub mod host_binary;
pub mod init;
pub mod launch;
pub mod mempolicy;
pub mod namespaces;
pub mod pidfd_socket;
pub mod plan;
pub mod wait;
