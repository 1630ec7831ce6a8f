//! A D-Bus client for systemd's manager (`org.freedesktop.systemd1`), on
//! rustbus: synchronous, pure Rust, and it starts no threads (berth must
//! stay single-threaded at clone3 and at every setns). A connection lives
//! only as long as one driver call and is closed before anything else runs.
//!
//! Where systemd is reached, in order: the system bus (dbus-daemon, as on
//! every Kubernetes node), then systemd's private socket
//! (`/run/systemd/private`, root only, no bus daemon in between: no Hello,
//! no destination). For a rootless user's manager: the session bus, then
//! `$XDG_RUNTIME_DIR/systemd/private`.
//!
//! The private socket needs care with systemd 252's sd-bus: a message that
//! arrives in the same read as the client's `BEGIN` (rustbus sends `BEGIN`
//! and the first call back to back) stays in its buffer unprocessed until
//! more data arrives. `wake` therefore pings until systemd answers before
//! the first real call.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix026::sys::socket::UnixAddr;
use rustbus::connection::Timeout;
use rustbus::message_builder::MarshalledMessage;
use rustbus::params::{Base, Container, Param};
use rustbus::{DuplexConn, MessageBuilder, MessageType};

use crate::{bail, Error, Result};

const DEST: &str = "org.freedesktop.systemd1";
const OBJ: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// One reply; systemd answers at once unless it is very busy (TCG guests).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A job (start or stop of a scope) to finish.
const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// A `(name, value)` unit property for `StartTransientUnit` and
/// `SetUnitProperties` (D-Bus `(sv)`).
pub type Property = (String, Param<'static, 'static>);

pub struct Bus {
    conn: DuplexConn,
    /// Connected to systemd itself (private socket), not through a bus.
    direct: bool,
    /// Signals read while waiting for a reply.
    signals: Vec<MarshalledMessage>,
    /// What was connected to, for messages.
    pub address: PathBuf,
}

/// Where the manager is to be found (`user`: a rootless user's manager).
fn candidates(user: bool) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    let from_env = |var: &str| -> Option<PathBuf> {
        let v = std::env::var(var).ok()?;
        let rest = v.strip_prefix("unix:")?;
        rest.split(',')
            .find_map(|kv| kv.strip_prefix("path="))
            .map(PathBuf::from)
    };
    if user {
        let runtime = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", crate::sys::geteuid())));
        if let Some(p) = from_env("DBUS_SESSION_BUS_ADDRESS") {
            out.push((p, false));
        }
        out.push((runtime.join("bus"), false));
        out.push((runtime.join("systemd/private"), true));
    } else {
        if let Some(p) = from_env("DBUS_SYSTEM_BUS_ADDRESS") {
            out.push((p, false));
        }
        out.push((PathBuf::from("/run/dbus/system_bus_socket"), false));
        if crate::sys::geteuid() == 0 {
            out.push((PathBuf::from("/run/systemd/private"), true));
        }
    }
    out.dedup();
    out
}

fn bus_error(e: rustbus::connection::Error, what: &str) -> Error {
    let errno = match &e {
        rustbus::connection::Error::IoError(io) => io.raw_os_error(),
        rustbus::connection::Error::NixError(n) => Some(*n as i32),
        _ => None,
    };
    let msg = format!("{what}: {e}");
    match errno {
        Some(n) => Error::from(std::io::Error::from_raw_os_error(n)).context(msg),
        None => Error::msg(msg),
    }
}

impl Bus {
    /// Connect to systemd (the system manager, or with `user` the calling
    /// user's), trying each address in turn.
    pub fn connect(user: bool) -> Result<Bus> {
        let mut tried = Vec::new();
        for (path, direct) in candidates(user) {
            match Self::connect_to(&path, direct) {
                Ok(b) => return Ok(b),
                Err(e) => tried.push(format!("{}: {e}", path.display())),
            }
        }
        let (who, where_) = if user {
            (
                "no systemd user manager",
                "$XDG_RUNTIME_DIR/systemd/private or the session bus",
            )
        } else {
            ("no systemd", "/run/systemd/private or the system bus")
        };
        bail!(
            "systemd cgroup driver requested but {who} on {where_} ({}); \
             use the cgroupfs driver (omit --systemd-cgroup)",
            tried.join("; ")
        )
    }

    fn connect_to(path: &Path, direct: bool) -> Result<Bus> {
        if !path.exists() {
            bail!("no such socket");
        }
        let addr = UnixAddr::new(path).map_err(|e| Error::msg(format!("bad address: {e}")))?;
        let mut conn =
            DuplexConn::connect_to_bus(addr, false).map_err(|e| bus_error(e, "connect"))?;
        // rustbus opens its socket without SOCK_CLOEXEC.
        use std::os::fd::AsRawFd;
        let fd = conn.send.as_raw_fd();
        nix026::fcntl::fcntl(
            fd,
            nix026::fcntl::FcntlArg::F_SETFD(nix026::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(|e| Error::msg(format!("fcntl(FD_CLOEXEC): {e}")))?;
        if !direct {
            conn.send_hello(Timeout::Duration(CALL_TIMEOUT))
                .map_err(|e| bus_error(e, "Hello"))?;
        }
        let mut bus = Bus {
            conn,
            direct,
            signals: Vec::new(),
            address: path.to_path_buf(),
        };
        if direct {
            bus.wake()?;
        } else {
            // A bus without systemd on it (a container's dbus-daemon).
            let reply = bus.call(
                "org.freedesktop.DBus",
                "NameHasOwner",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                &[Param::from(DEST)],
            )?;
            if !reply.body.parser().get::<bool>().unwrap_or(false) {
                bail!("{DEST} is not on this bus");
            }
        }
        Ok(bus)
    }

    /// Direct connection: `Peer.Ping` every half second until one is
    /// answered (see the module comment); replies to the others are
    /// skipped by `call` later.
    fn wake(&mut self) -> Result<()> {
        const PEER: &str = "org.freedesktop.DBus.Peer";
        let end = Instant::now() + CALL_TIMEOUT;
        let mut sent = Vec::new();
        loop {
            sent.push(self.send(PEER, "Ping", OBJ, DEST, &[])?);
            let step = Instant::now() + Duration::from_millis(500);
            loop {
                let left = step.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match self.conn.recv.get_next_message(Timeout::Duration(left)) {
                    Ok(m)
                        if m.dynheader
                            .response_serial
                            .is_some_and(|s| sent.contains(&s)) =>
                    {
                        return Ok(())
                    }
                    Ok(m) if m.typ == MessageType::Signal => self.signals.push(m),
                    Ok(_) => {}
                    Err(rustbus::connection::Error::TimedOut) => break,
                    Err(e) => return Err(bus_error(e, "Ping")),
                }
            }
            if Instant::now() >= end {
                bail!("Ping: no answer from systemd within {CALL_TIMEOUT:?}");
            }
        }
    }

    /// Send a method call; its serial.
    fn send(
        &mut self,
        iface: &str,
        member: &str,
        obj: &str,
        dest: &str,
        params: &[Param],
    ) -> Result<u32> {
        let mut b = MessageBuilder::new()
            .call(member)
            .with_interface(iface)
            .on(obj);
        if !self.direct {
            b = b.at(dest);
        }
        let mut msg = b.build();
        msg.body
            .push_old_params(params)
            .map_err(|e| Error::msg(format!("{member}: marshal: {e}")))?;
        let serial = self
            .conn
            .send
            .send_message(&msg)
            .map_err(|e| bus_error(e, member))?
            .write_all()
            .map_err(|(ctx, e)| {
                ctx.force_finish();
                bus_error(e, member)
            })?;
        Ok(serial)
    }

    /// Call `member` of `iface` on `obj` and wait for its reply; an error
    /// reply becomes an `Err` naming the D-Bus error.
    fn call(
        &mut self,
        iface: &str,
        member: &str,
        obj: &str,
        dest: &str,
        params: &[Param],
    ) -> Result<MarshalledMessage> {
        let serial = self.send(iface, member, obj, dest, params)?;
        let end = Instant::now() + CALL_TIMEOUT;
        loop {
            let reply = self.next(end, member)?;
            if reply.dynheader.response_serial == Some(serial) {
                if reply.typ == MessageType::Error {
                    let name = reply.dynheader.error_name.clone().unwrap_or_default();
                    let text = reply.body.parser().get::<String>().unwrap_or_default();
                    return Err(DbusError { name, text }.into_error(member));
                }
                return Ok(reply);
            }
            if reply.typ == MessageType::Signal {
                self.signals.push(reply);
            }
        }
    }

    fn next(&mut self, end: Instant, what: &str) -> Result<MarshalledMessage> {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("{what}: no answer from systemd within {CALL_TIMEOUT:?}");
        }
        self.conn
            .recv
            .get_next_message(Timeout::Duration(left))
            .map_err(|e| bus_error(e, what))
    }

    fn manager(&mut self, member: &str, params: &[Param]) -> Result<MarshalledMessage> {
        self.call(MANAGER, member, OBJ, DEST, params)
    }

    /// Ask for job signals (`JobRemoved`): on a bus also a match rule.
    fn subscribe(&mut self) -> Result<()> {
        if !self.direct {
            let rule = "type='signal',sender='org.freedesktop.systemd1',\
                        interface='org.freedesktop.systemd1.Manager',member='JobRemoved',\
                        path='/org/freedesktop/systemd1'";
            self.call(
                "org.freedesktop.DBus",
                "AddMatch",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                &[Param::from(rule)],
            )?;
        }
        match self.manager("Subscribe", &[]) {
            // A second Subscribe on one connection is refused; harmless.
            Err(e) if e.to_string().contains("AlreadySubscribed") => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Wait for `JobRemoved` of `job`; its result (`done`, `failed`, …).
    fn wait_job(&mut self, job: &str, what: &str) -> Result<String> {
        let end = Instant::now() + JOB_TIMEOUT;
        loop {
            let msg = match self.signals.is_empty() {
                false => self.signals.remove(0),
                true => self.next(end, what)?,
            };
            if msg.typ != MessageType::Signal
                || msg.dynheader.member.as_deref() != Some("JobRemoved")
            {
                continue;
            }
            let mut p = msg.body.parser();
            let _id = p.get::<u32>();
            let path = match p.get_param() {
                Ok(Param::Base(Base::ObjectPath(s))) => s,
                _ => continue,
            };
            if path != job {
                continue;
            }
            let _unit = p.get::<String>();
            return Ok(p.get::<String>().unwrap_or_default());
        }
    }

    /// `StartTransientUnit(name, "replace", props, [])`, then wait for its
    /// job; anything but `done` is an error.
    pub fn start_transient_unit(&mut self, name: &str, props: Vec<Property>) -> Result<()> {
        self.subscribe()?;
        let aux = Container::make_array_with_sig(
            sig("(sa(sv))"),
            std::iter::empty::<Param<'static, 'static>>(),
        )
        .map_err(|e| Error::msg(format!("marshal: {e}")))?;
        let reply = self.manager(
            "StartTransientUnit",
            &[
                Param::from(name),
                Param::from("replace"),
                properties(props)?,
                Param::Container(aux),
            ],
        )?;
        let job = object_path(&reply, "StartTransientUnit")?;
        let result = self.wait_job(&job, "StartTransientUnit")?;
        if result != "done" {
            bail!(
                "systemd could not start {name}: job {result} \
                 (see `systemctl status {name}` and the journal)"
            );
        }
        Ok(())
    }

    /// `SetUnitProperties(name, runtime, props)`.
    pub fn set_unit_properties(&mut self, name: &str, props: Vec<Property>) -> Result<()> {
        if props.is_empty() {
            return Ok(());
        }
        self.manager(
            "SetUnitProperties",
            &[Param::from(name), Param::from(true), properties(props)?],
        )
        .map(|_| ())
    }

    /// Stop `name` and wait; a unit systemd no longer knows is stopped.
    pub fn stop_unit(&mut self, name: &str) -> Result<()> {
        self.subscribe()?;
        let reply = match self.manager("StopUnit", &[Param::from(name), Param::from("replace")]) {
            Err(e) if is_no_such_unit(&e) => return Ok(()),
            r => r?,
        };
        let job = object_path(&reply, "StopUnit")?;
        self.wait_job(&job, "StopUnit")?;
        Ok(())
    }

    /// `ResetFailedUnit`: forget a failed unit so its name can be reused.
    pub fn reset_failed_unit(&mut self, name: &str) -> Result<()> {
        match self.manager("ResetFailedUnit", &[Param::from(name)]) {
            Err(e) if is_no_such_unit(&e) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Whether systemd has a unit of this name loaded.
    pub fn has_unit(&mut self, name: &str) -> Result<bool> {
        match self.manager("GetUnit", &[Param::from(name)]) {
            Ok(_) => Ok(true),
            Err(e) if is_no_such_unit(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A string property of the manager object (e.g. `ControlGroup`).
    pub fn manager_property(&mut self, prop: &str) -> Result<String> {
        let reply = self.call(
            "org.freedesktop.DBus.Properties",
            "Get",
            OBJ,
            DEST,
            &[Param::from(MANAGER), Param::from(prop)],
        )?;
        match reply.body.parser().get_param() {
            Ok(Param::Container(Container::Variant(v))) => match v.value {
                Param::Base(Base::String(s)) => Ok(s),
                other => bail!("manager property {prop}: unexpected value {other:?}"),
            },
            other => bail!("manager property {prop}: unexpected reply {other:?}"),
        }
    }
}

struct DbusError {
    name: String,
    text: String,
}

impl DbusError {
    fn into_error(self, member: &str) -> Error {
        Error::msg(format!("systemd {member}: {} ({})", self.text, self.name))
    }
}

fn is_no_such_unit(e: &Error) -> bool {
    let s = e.to_string();
    s.contains("org.freedesktop.systemd1.NoSuchUnit") || s.contains("not loaded")
}

fn sig(s: &str) -> rustbus::signature::Type {
    rustbus::signature::Type::parse_description(s)
        .ok()
        .and_then(|mut v| v.pop())
        .expect("static D-Bus signature")
}

fn object_path(reply: &MarshalledMessage, member: &str) -> Result<String> {
    match reply.body.parser().get_param() {
        Ok(Param::Base(Base::ObjectPath(s))) => Ok(s),
        other => bail!("systemd {member}: unexpected reply {other:?}"),
    }
}

/// `a(sv)` from name/value pairs.
fn properties(props: Vec<Property>) -> Result<Param<'static, 'static>> {
    let items = props.into_iter().map(|(name, value)| {
        Param::Container(Container::Struct(vec![
            Param::from(name),
            Param::Container(Container::make_variant(value)),
        ]))
    });
    Container::make_array_with_sig(sig("(sv)"), items)
        .map(Param::Container)
        .map_err(|e| Error::msg(format!("marshal unit properties: {e}")))
}

/// Property values of the D-Bus types systemd uses.
pub mod value {
    use super::*;

    pub fn string(s: &str) -> Param<'static, 'static> {
        Param::from(s.to_string())
    }
    pub fn boolean(b: bool) -> Param<'static, 'static> {
        Param::from(b)
    }
    pub fn u64(v: u64) -> Param<'static, 'static> {
        Param::from(v)
    }
    /// `au`
    pub fn u32_array(v: &[u32]) -> Param<'static, 'static> {
        Param::Container(
            Container::make_array_with_sig(sig("u"), v.iter().map(|&x| Param::from(x)))
                .expect("au"),
        )
    }
    /// `ay`
    pub fn bytes(v: &[u8]) -> Param<'static, 'static> {
        Param::Container(
            Container::make_array_with_sig(sig("y"), v.iter().map(|&x| Param::from(x)))
                .expect("ay"),
        )
    }
    /// `a(ss)`
    pub fn string_pairs(v: &[(String, String)]) -> Param<'static, 'static> {
        Param::Container(
            Container::make_array_with_sig(
                sig("(ss)"),
                v.iter().map(|(a, b)| {
                    Param::Container(Container::Struct(vec![
                        Param::from(a.clone()),
                        Param::from(b.clone()),
                    ]))
                }),
            )
            .expect("a(ss)"),
        )
    }
}
