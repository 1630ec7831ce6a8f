//! One error type for the whole runtime: a message built from context layers,
//! e.g. `mount proc on /proc: permission denied`, and the errno that started
//! it, if any, so code can branch on the kernel's answer while callers get
//! runc's texts.

use std::fmt;

#[derive(Debug)]
pub struct Error {
    msg: String,
    errno: Option<nix::errno::Errno>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn msg(m: impl Into<String>) -> Self {
        Error {
            msg: m.into(),
            errno: None,
        }
    }

    /// A kernel error: its text in runc's spelling, and the errno.
    pub fn from_errno(e: nix::errno::Errno) -> Self {
        Error {
            msg: errno_text(e as i32),
            errno: Some(e),
        }
    }

    /// An error reported from another process (the container init) with
    /// its message and errno.
    pub fn with_errno(m: impl Into<String>, errno: Option<nix::errno::Errno>) -> Self {
        Error {
            msg: m.into(),
            errno,
        }
    }

    /// Prefix this error with what was being done when it happened.
    pub fn context(self, c: impl fmt::Display) -> Self {
        Error {
            msg: format!("{c}: {}", self.msg),
            errno: self.errno,
        }
    }

    /// Append an explanation: `...: permission denied (why)`.
    pub fn hint(self, h: impl fmt::Display) -> Self {
        Error {
            msg: format!("{} ({h})", self.msg),
            errno: self.errno,
        }
    }

    pub fn message(&self) -> &str {
        &self.msg
    }

    /// The errno at the root of the chain, when a syscall failed.
    pub fn errno(&self) -> Option<nix::errno::Errno> {
        self.errno
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// `strerror` in lower case, the way runc and the kernel docs spell errors.
pub fn errno_text(errno: i32) -> String {
    let s = nix::errno::Errno::from_raw(errno).desc();
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_lowercase());
    }
    out.push_str(chars.as_str());
    out
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(n) => Error::from_errno(nix::errno::Errno::from_raw(n)),
            None => Error::msg(e.to_string()),
        }
    }
}

impl From<nix::errno::Errno> for Error {
    fn from(e: nix::errno::Errno) -> Self {
        Error::from_errno(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::msg(e.to_string())
    }
}

/// Attach context to any fallible result.
pub trait Context<T> {
    fn context(self, c: impl fmt::Display) -> Result<T>;
    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, c: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(c))
    }
    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

/// `bail!("...")`: return early with a formatted error.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::error::Error::msg(format!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_layers_read_outside_in() {
        let r: std::result::Result<(), nix::errno::Errno> = Err(nix::errno::Errno::EACCES);
        let e = r.context("mount proc on /proc").unwrap_err();
        assert_eq!(e.message(), "mount proc on /proc: permission denied");
        assert_eq!(e.context("create").errno(), Some(nix::errno::Errno::EACCES));
    }
}
