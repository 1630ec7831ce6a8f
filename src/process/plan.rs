//! The process plan: the container's process as runc runs it, prepared in
//! the parent (strings, limits, capabilities, seccomp) and applied in the
//! child just before execve; shared by the container init and `exec`.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;

use oci_spec::runtime::{LinuxSeccomp, PosixRlimitType, Process};

use super::attrs;
use super::channel::{Channel, Msg};
use super::fds;
use crate::capabilities::{self, CapSets};
use crate::error::{Context, Error, Result};
use crate::{seccomp, sys};

pub type Rlimit = (libc::__rlimit_resource_t, u64, u64, String);

pub struct ProcessPlan<'a> {
    pub process: &'a Process,
    /// In a user namespace (setgroups may be denied there).
    pub userns: bool,
    pub caps: CapSets,
    pub last_cap: u8,
    pub rlimits: Vec<Rlimit>,
    pub seccomp: Option<seccomp::Filter>,
    pub no_new_privs: bool,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// fds 0..keep_fds survive exec (stdio, LISTEN_FDS, --preserve-fds).
    pub keep_fds: u32,
    /// `HOME=` from the container's /etc/passwd when `env` has no HOME
    /// (runc's rule), found in the child before any seccomp filter.
    pub home: std::cell::OnceCell<CString>,
}

impl<'a> ProcessPlan<'a> {
    /// Parent side: everything that can fail on bad input fails here.
    pub fn new(
        process: &'a Process,
        seccomp_cfg: Option<&LinuxSeccomp>,
        userns: bool,
        extra_env: &[String],
        keep_fds: u32,
    ) -> Result<ProcessPlan<'a>> {
        let cwd = process.cwd();
        if cwd.as_os_str().is_empty() {
            crate::bail!("process.cwd must not be empty");
        }
        if !cwd.is_absolute() {
            crate::bail!(
                "process.cwd {:?} must be an absolute path",
                cwd.display().to_string()
            );
        }
        let (args, mut env) = process_strings(process)?;
        for e in extra_env {
            env.push(cstring(e.clone())?);
        }
        Ok(ProcessPlan {
            process,
            userns,
            caps: capabilities::parse(process.capabilities().as_ref())
                .context("process.capabilities")?,
            last_cap: capabilities::last_cap(),
            rlimits: parse_rlimits(process).context("process.rlimits")?,
            seccomp: match seccomp_cfg {
                Some(s) => Some(seccomp::compile(s).context("linux.seccomp")?),
                None => None,
            },
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            args,
            env,
            keep_fds,
            home: std::cell::OnceCell::new(),
        })
    }

    /// rlimits, scheduler and I/O priority.
    pub fn set_limits(&self) -> Result<()> {
        for (res, soft, hard, name) in &self.rlimits {
            if let Err(os) = sys::setrlimit(*res, *soft, *hard) {
                let eperm = os.raw_os_error() == Some(libc::EPERM);
                let mut e =
                    Error::from(os).context(format!("setrlimit {name} (soft {soft}, hard {hard})"));
                if eperm {
                    e = e.hint("raising a hard limit needs CAP_SYS_RESOURCE");
                }
                return Err(e);
            }
        }
        if let Some(s) = self.process.scheduler().as_ref() {
            attrs::set_scheduler(s)?;
        }
        if let Some(io) = self.process.io_priority().as_ref() {
            attrs::set_io_priority(io.class(), io.priority())?;
        }
        Ok(())
    }

    /// Become the configured process: fds close-on-exec, signals reset and
    /// the cwd entered as root (before any filter: a profile may deny
    /// close_range, rt_sigaction, chdir or getcwd), seccomp (early, when it
    /// needs CAP_SYS_ADMIN), user and groups, capabilities, no_new_privs,
    /// cwd again as the user if root was refused, umask. Returns the
    /// resolved executable. A filter with notify rules hands its listener
    /// fd to the runtime on `chan` as soon as it is installed.
    pub fn become_process(&self, chan: &Channel) -> Result<CString> {
        fds::cloexec_from(self.keep_fds).context("close inherited fds")?;
        if let Some(home) = self.default_home() {
            let _ = self.home.set(home);
        }
        sys::reset_signals();
        // The cwd is tried as root first (it may be a directory only root
        // can enter), and again as the user if root was refused: runc's
        // order.
        let entered = self.enter_cwd(true)?;
        if let Some(f) = self.seccomp.as_ref().filter(|_| !self.no_new_privs) {
            // Without no_new_privs the filter needs CAP_SYS_ADMIN: install
            // it before the capabilities go.
            install_seccomp(f, chan)?;
        }
        self.switch_user()?;
        if self.no_new_privs {
            sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).context("set no_new_privs")?;
        }
        if !entered {
            self.enter_cwd(false)?;
        }
        sys::umask(self.process.user().umask().unwrap_or(0o022));
        let exe = self.lookup_exec()?;
        if let Some(f) = self
            .seccomp
            .as_ref()
            .filter(|f| self.no_new_privs && f.notifies())
        {
            // The listener must get the fd while the runtime still waits
            // on `chan`: not after the exec fifo, as `exec` installs.
            install_seccomp(f, chan)?;
        }
        Ok(exe)
    }

    /// `HOME=DIR` when `process.env` has no (or an empty) HOME: the home
    /// of `process.user.uid` in the container's /etc/passwd, else `/`, as
    /// runc sets it.
    fn default_home(&self) -> Option<CString> {
        if self.env.iter().any(|e| {
            e.to_bytes()
                .strip_prefix(b"HOME=")
                .is_some_and(|v| !v.is_empty())
        }) {
            return None;
        }
        let uid = self.process.user().uid().to_string();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let home = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 6 && f[2] == uid)
            .map(|f| f[5].to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "/".into());
        CString::new(format!("HOME={home}")).ok()
    }

    /// chdir to `process.cwd` and make sure it is inside the root. With
    /// `permission_may_fail`, a refusal is not an error yet (false: try
    /// again after the user switch).
    fn enter_cwd(&self, permission_may_fail: bool) -> Result<bool> {
        let cwd = self.process.cwd();
        if cwd.as_os_str().is_empty() {
            return Ok(true);
        }
        let what = || {
            format!(
                "chdir to cwd ({:?}) set in config.json failed",
                cwd.display().to_string()
            )
        };
        match nix::unistd::chdir(cwd) {
            Ok(()) => {}
            Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) if permission_may_fail => {
                return Ok(false)
            }
            Err(e) => return Err(Error::from(e).context(what())),
        }
        // A cwd reached through a magic link (/proc/self/fd/N) can lie
        // outside the container's root: the kernel then reports it as
        // unreachable. Refuse it before anything runs there.
        let mut buf = [0u8; libc::PATH_MAX as usize];
        match sys::getcwd_raw(&mut buf) {
            Ok(_) if buf[0] == b'/' => Ok(true),
            _ => Err(
                Error::msg("the directory is outside the container's root filesystem")
                    .context(what()),
            ),
        }
    }

    /// The process's environment: `env`, with the default HOME once
    /// `become_process` has found it.
    pub fn environment(&self) -> impl Iterator<Item = &CStr> {
        self.env
            .iter()
            .filter(|e| self.home.get().is_none() || e.to_bytes() != b"HOME=")
            .chain(self.home.get())
            .map(CString::as_c_str)
    }

    /// The last steps: seccomp (late, with no_new_privs), then execve and
    /// nothing else. Only returns by exiting.
    pub fn exec(&self, exe: &CStr, who: &str) -> ! {
        let fatal = |e: Error| -> ! {
            eprintln!("berth {who}: {e}");
            sys::exit(127)
        };
        let mut argv: Vec<*const libc::c_char> = self.args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.environment().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        if let Some(f) = self
            .seccomp
            .as_ref()
            .filter(|f| self.no_new_privs && !f.notifies())
        {
            // As late as possible: the filter need not allow what setup
            // used; only execve follows it.
            if let Err(e) = f.install() {
                fatal(e.context("install seccomp filter"));
            }
        }
        let err = sys::execve(exe, &argv, &envp);
        fatal(Error::from(err).context(format!("exec {exe:?}")))
    }

    /// setgroups/setresgid/setresuid keeping capabilities, then the caps.
    fn switch_user(&self) -> Result<()> {
        self.caps.drop_bounding(self.last_cap)?;
        sys::prctl(libc::PR_SET_KEEPCAPS, 1).context("set keepcaps")?;
        let u = self.process.user();
        let (uid, gid, groups) = (
            u.uid(),
            u.gid(),
            u.additional_gids().clone().unwrap_or_default(),
        );
        if let Err(e) = sys::setgroups(&groups) {
            // A rootless user namespace has setgroups denied; with no extra
            // groups requested there is nothing to do.
            if !(self.userns && groups.is_empty() && e.raw_os_error() == Some(libc::EPERM)) {
                return Err(Error::from(e).context(format!("setgroups {groups:?}")));
            }
        }
        sys::setresgid(gid).with_context(|| format!("setresgid {gid}"))?;
        sys::setresuid(uid).with_context(|| format!("setresuid {uid}"))?;
        sys::prctl(libc::PR_SET_KEEPCAPS, 0).context("clear keepcaps")?;
        self.caps.apply()
    }

    /// Resolve args[0] like execvp would, in the container's filesystem and
    /// with its PATH, so a missing binary fails `create` rather than `start`.
    fn lookup_exec(&self) -> Result<CString> {
        let Some(arg0) = self.args.first() else {
            crate::bail!("process.args must not be empty");
        };
        let name = arg0.to_bytes();
        let executable = |p: &CStr| -> bool {
            sys::executable(p)
                && std::fs::metadata(std::ffi::OsStr::from_bytes(p.to_bytes()))
                    .is_ok_and(|m| m.is_file())
        };
        if name.contains(&b'/') {
            if executable(arg0) {
                return Ok(arg0.clone());
            }
            let err = std::io::Error::last_os_error();
            return Err(
                Error::from(err).context(format!("exec: {:?}", String::from_utf8_lossy(name)))
            );
        }
        let path = self
            .env
            .iter()
            .find_map(|e| e.to_bytes().strip_prefix(b"PATH="))
            .unwrap_or(b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        for dir in path.split(|&b| b == b':') {
            let dir = if dir.is_empty() { &b"."[..] } else { dir };
            let mut full = Vec::with_capacity(dir.len() + name.len() + 1);
            full.extend_from_slice(dir);
            full.push(b'/');
            full.extend_from_slice(name);
            if let Ok(c) = CString::new(full) {
                if executable(&c) {
                    return Ok(c);
                }
            }
        }
        crate::bail!(
            "exec: {:?}: executable file not found in $PATH",
            String::from_utf8_lossy(name)
        )
    }
}

/// Install `f`; a listener fd goes to the runtime at once (see
/// `seccomp::notify`).
fn install_seccomp(f: &seccomp::Filter, chan: &Channel) -> Result<()> {
    if let Some(fd) = f.install().context("install seccomp filter")? {
        chan.send(&Msg::SeccompFd(fd))
            .context("hand the seccomp listener fd to the runtime")?;
    }
    Ok(())
}

pub fn cstring(s: String) -> Result<CString> {
    CString::new(s).map_err(|e| Error::msg(format!("string with a NUL byte: {:?}", e.into_vec())))
}

fn process_strings(p: &Process) -> Result<(Vec<CString>, Vec<CString>)> {
    let args = p
        .args()
        .as_ref()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::msg("process.args must not be empty"))?;
    let args = args
        .iter()
        .map(|a| cstring(a.clone()))
        .collect::<Result<Vec<_>>>()
        .context("process.args")?;
    if let Some(bad) = p.env().iter().flatten().find(|e| !e.contains('=')) {
        // runc refuses it too (the kernel would pass it on unchanged).
        crate::bail!("process.env: invalid entry {bad:?}: want KEY=VALUE");
    }
    // One entry per key, the last value in the first one's place: the
    // environment runc's init builds (setenv per entry).
    let mut merged: Vec<&String> = Vec::new();
    for e in p.env().iter().flatten() {
        let key = e.split('=').next();
        match merged.iter_mut().find(|m| m.split('=').next() == key) {
            Some(m) => *m = e,
            None => merged.push(e),
        }
    }
    let env = merged
        .into_iter()
        .map(|e| cstring(e.clone()))
        .collect::<Result<Vec<_>>>()
        .context("process.env")?;
    Ok((args, env))
}

fn parse_rlimits(p: &Process) -> Result<Vec<Rlimit>> {
    let mut out: Vec<Rlimit> = Vec::new();
    let rl = p.rlimits().as_ref();
    for r in rl.into_iter().flatten() {
        let name = serde_json::to_value(r.typ())?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let res = match r.typ() {
            PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
            PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
            PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
            PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
            PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
            PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
            PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
            PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
            PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
            PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
            PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
            PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
            PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
            PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
            PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
            PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
        };
        if out.iter().any(|(known, ..)| *known == res) {
            crate::bail!("process.rlimits: {name} is given more than once");
        }
        if r.soft() > r.hard() {
            crate::bail!(
                "{name}: soft limit {} is above hard limit {}",
                r.soft(),
                r.hard()
            );
        }
        out.push((res, r.soft(), r.hard(), name));
    }
    Ok(out)
}
