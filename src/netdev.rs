//! `linux.netDevices` (runtime-spec 1.3): host network interfaces moved
//! into the container's network namespace at create (renamed to `name`
//! when given) and moved back to the host at delete.
//!
//! The move is one rtnetlink RTM_NEWLINK with IFLA_NET_NS_FD (and
//! IFLA_IFNAME for the new name), sent by the runtime on the host. Virtual
//! devices (veth, dummy, macvlan, …) die with a network namespace instead
//! of returning to the host, so the container's network namespace is
//! pinned with a bind mount in the state directory (`netns`) before the
//! first device moves: when the container's processes exit, the devices
//! are still there, and `delete` (or a failed `create`) moves each back
//! under its host name, then drops the pin. What moved is on record in
//! `netdevices.json` before it moves, so a crash in between leaves nothing
//! `delete --force` cannot undo. The kernel drops a device's addresses on a
//! namespace move (MTU and hardware address survive); the runtime-spec
//! asks that its permanent addresses be kept, so they are read before the
//! move, recorded, and added again inside; on the way back the host's
//! addresses are given back the same way. Routes are not carried (runc
//! and crun do not either), nor IPv6 link-local addresses, which the
//! kernel makes again itself.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use oci_spec::runtime::Linux;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::process::namespaces;
use crate::{logging, sys};

const RECORD: &str = "netdevices.json";
const PIN: &str = "netns";

const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_DUMP: u16 = 0x300;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u32 = 0x80;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
/// IFNAMSIZ - 1.
const MAX_NAME: usize = 15;

/// One device: its name on the host and in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub host: String,
    pub container: String,
    /// Its hardware address, which survives the moves: what tells our
    /// device from another of the same name in a joined namespace.
    #[serde(default)]
    pub address: Vec<u8>,
    /// Its permanent addresses on the host, read just before it moved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<Ip>,
}

/// One interface address (an `ifaddrmsg` and its address attributes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ip {
    pub family: u8,
    pub prefix: u8,
    pub scope: u8,
    pub local: Vec<u8>,
    pub address: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broadcast: Vec<u8>,
}

impl Ip {
    /// The address as `ip` prints it, for messages.
    fn text(&self) -> String {
        let a = if self.local.is_empty() {
            &self.address
        } else {
            &self.local
        };
        let ip: Option<std::net::IpAddr> = match a.len() {
            4 => Some(<[u8; 4]>::try_from(a.as_slice()).unwrap().into()),
            16 => Some(<[u8; 16]>::try_from(a.as_slice()).unwrap().into()),
            _ => None,
        };
        match ip {
            Some(ip) => format!("{ip}/{}", self.prefix),
            None => format!("{a:?}/{}", self.prefix),
        }
    }
}

fn check_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > MAX_NAME
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        crate::bail!(
            "{field}: {name:?} is not a valid interface name (1 to {MAX_NAME} bytes, no '/', ':' or whitespace)"
        );
    }
    Ok(())
}

/// Check `linux.netDevices` against the config and the host: the container
/// needs a network namespace that is not the host's, each device must
/// exist on the host, and no two may get the same name inside.
pub fn plan(linux: Option<&Linux>, ns: &namespaces::Plan) -> Result<Vec<Device>> {
    let Some(devs) = linux.and_then(|l| l.net_devices().as_ref()) else {
        return Ok(Vec::new());
    };
    if devs.is_empty() {
        return Ok(Vec::new());
    }
    if !ns.has(libc::CLONE_NEWNET) {
        crate::bail!(
            "linux.netDevices: the container has no network namespace of its own (add a \"network\" entry to linux.namespaces)"
        );
    }
    if let Some(j) = ns.joins.iter().find(|j| j.flag == libc::CLONE_NEWNET) {
        let own = std::fs::metadata("/proc/self/ns/net").context("stat /proc/self/ns/net")?;
        let theirs =
            std::fs::metadata(&j.path).with_context(|| format!("stat {}", j.path.display()))?;
        use std::os::unix::fs::MetadataExt;
        if (own.dev(), own.ino()) == (theirs.dev(), theirs.ino()) {
            crate::bail!(
                "linux.netDevices: the network namespace {} is the host's own: devices cannot be moved into it",
                j.path.display()
            );
        }
    }
    let sock = Netlink::open()?;
    let mut out: Vec<Device> = Vec::with_capacity(devs.len());
    let mut names: Vec<&str> = devs.keys().map(String::as_str).collect();
    names.sort();
    for host in names {
        let field = format!("linux.netDevices[{host:?}]");
        check_name(&field, host)?;
        let container = devs[host].name().as_deref().unwrap_or(host);
        check_name(&format!("{field}.name"), container)?;
        if container == "lo" {
            crate::bail!("{field}.name: \"lo\" already exists in every network namespace");
        }
        if let Some(other) = out.iter().find(|d| d.container == container) {
            crate::bail!(
                "{field}.name: {container:?} is also the name of linux.netDevices[{:?}] in the container",
                other.host
            );
        }
        let found = sock
            .link(host)
            .with_context(|| format!("{field}: look up {host:?}"))?;
        let Some(link) = found else {
            crate::bail!("{field}: no network interface {host:?} on the host");
        };
        out.push(Device {
            host: host.to_string(),
            container: container.to_string(),
            address: link.address,
            ips: Vec::new(),
        });
    }
    Ok(out)
}

/// Move `devs` into the network namespace of `pid` (the container init),
/// after recording them and pinning that namespace in `state_dir`.
pub fn move_in(devs: &[Device], pid: i32, state_dir: &Path) -> Result<()> {
    if devs.is_empty() {
        return Ok(());
    }
    let sock = Netlink::open()?;
    let mut devs = devs.to_vec();
    // Each device's index, looked up once: its addresses are read and the
    // device moved by it.
    let mut indices = Vec::with_capacity(devs.len());
    for d in &mut devs {
        let index = sock.link(&d.host)?.map(|link| link.index);
        if let Some(index) = index {
            d.ips = sock
                .addresses(index)
                .with_context(|| format!("linux.netDevices[{:?}]: read its addresses", d.host))?;
        }
        indices.push(index);
    }
    crate::container::write_atomic(&state_dir.join(RECORD), &serde_json::to_vec(&devs)?, 0o600)?;
    let ns_path = format!("/proc/{pid}/ns/net");
    let pin = state_dir.join(PIN);
    std::fs::File::create(&pin).with_context(|| format!("create {}", pin.display()))?;
    nix::mount::mount(
        Some(ns_path.as_str()),
        &pin,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("pin the container's network namespace at {}", pin.display()))?;
    let netns = std::fs::File::open(&pin).with_context(|| format!("open {}", pin.display()))?;
    let inside = Netlink::open_in(netns.as_fd())?;
    for (d, index) in devs.iter().zip(indices) {
        let field = format!("linux.netDevices[{:?}]", d.host);
        let Some(index) = index else {
            crate::bail!("{field}: no network interface {:?} on the host", d.host);
        };
        sock.move_link(index, netns.as_fd(), &d.container)
            .map_err(|e| {
                let taken = format!(
                    "an interface named {:?} already exists in the container's network namespace",
                    d.container
                );
                name_taken(e, taken).context(format!(
                    "{field}: move {:?} into the container as {:?}",
                    d.host, d.container
                ))
            })?;
        add_ips(&inside, &d.container, &d.ips)
            .with_context(|| format!("{field}: keep its addresses in the container"))?;
        logging::debug(&format!(
            "netDevices: {} moved in as {}",
            d.host, d.container
        ));
    }
    Ok(())
}

/// Give interface `name` (seen by `sock`) the addresses `ips`; one it has
/// already is fine.
fn add_ips(sock: &Netlink, name: &str, ips: &[Ip]) -> Result<()> {
    if ips.is_empty() {
        return Ok(());
    }
    let Some(link) = sock.link(name)? else {
        crate::bail!("interface {name:?} vanished after the move");
    };
    for ip in ips {
        match sock.add_address(link.index, ip) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => {
                return Err(Error::from(e).context(format!("add {} to {name:?}", ip.text())));
            }
        }
    }
    Ok(())
}

/// Move every recorded device back to the host under its host name and
/// drop the pin: `delete`, and a `create` that failed. Every device is
/// tried; the first failure is returned.
pub fn restore(state_dir: &Path) -> Result<()> {
    let record = state_dir.join(RECORD);
    let pin = state_dir.join(PIN);
    let mut first_err: Option<Error> = None;
    if let Ok(data) = std::fs::read(&record) {
        let devs: Vec<Device> = serde_json::from_slice(&data).unwrap_or_default();
        if let Err(e) = move_out(&devs, &pin) {
            first_err = Some(e);
        }
    }
    if pin.exists() {
        let _ = nix::mount::umount2(&pin, nix::mount::MntFlags::MNT_DETACH);
        if let Err(e) = std::fs::remove_file(&pin) {
            first_err.get_or_insert(Error::from(e).context(format!("remove {}", pin.display())));
        }
    }
    let _ = std::fs::remove_file(&record);
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn move_out(devs: &[Device], pin: &Path) -> Result<()> {
    let netns = match std::fs::File::open(pin) {
        Ok(f) if is_netns(&f) => f,
        // Never pinned: create failed before the first move.
        _ => return Ok(()),
    };
    let host_ns = std::fs::File::open("/proc/self/ns/net").context("open /proc/self/ns/net")?;
    let sock = Netlink::open_in(netns.as_fd())?;
    let host = Netlink::open()?;
    let mut first_err = None;
    for d in devs {
        // A rename that failed after the move leaves the host name; a
        // device of the same name that is not ours (other address) stays.
        let mut found = None;
        for name in [&d.container, &d.host] {
            if let Some(l) = sock.link(name)? {
                if d.address.is_empty() || l.address == d.address {
                    found = Some(l.index);
                    break;
                }
            }
        }
        let Some(index) = found else {
            logging::warn(&format!(
                "netDevices: {:?} ({:?} on the host) is no longer in the container's network namespace",
                d.container, d.host
            ));
            continue;
        };
        if let Err(e) = sock.move_link(index, host_ns.as_fd(), &d.host) {
            let taken = format!("the host already has an interface named {:?}", d.host);
            let e = name_taken(e, taken);
            let e = e.context(format!(
                "linux.netDevices[{:?}]: move {:?} back to the host",
                d.host, d.container
            ));
            logging::warn(&e.to_string());
            first_err.get_or_insert(e);
        } else if let Err(e) = add_ips(&host, &d.host, &d.ips) {
            let e = e.context(format!(
                "linux.netDevices[{:?}]: give back its host addresses",
                d.host
            ));
            logging::warn(&e.to_string());
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A failed move: EEXIST means the name is taken, as `taken` says.
fn name_taken(e: std::io::Error, taken: String) -> Error {
    let e = Error::from(e);
    if e.errno() == Some(nix::errno::Errno::EEXIST) {
        e.context(taken)
    } else {
        e
    }
}

/// The pin is a namespace (nsfs), not the empty file left when the bind
/// mount was never made.
fn is_netns(f: &std::fs::File) -> bool {
    const NSFS_MAGIC: libc::c_long = 0x6e73_6673;
    nix::sys::statfs::fstatfs(f)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::FsType(NSFS_MAGIC as _))
}

struct Link {
    index: i32,
    address: Vec<u8>,
}

/// An rtnetlink socket.
struct Netlink {
    fd: OwnedFd,
    seq: std::cell::Cell<u32>,
}

impl Netlink {
    fn open() -> Result<Netlink> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .context("open an rtnetlink socket")?;
        Ok(Netlink {
            fd,
            seq: std::cell::Cell::new(1),
        })
    }

    /// A socket in network namespace `ns`: made by a short-lived thread
    /// that joined it (a socket stays in the namespace it was made in), so
    /// this process never leaves its own.
    fn open_in(ns: BorrowedFd) -> Result<Netlink> {
        std::thread::scope(|s| {
            s.spawn(|| {
                sys::setns(ns, libc::CLONE_NEWNET)
                    .context("join the container's network namespace")?;
                Netlink::open()
            })
            .join()
            .unwrap_or_else(|_| Err(Error::msg("netlink thread panicked")))
        })
    }

    /// Send one request: `header` (the family's fixed message), then
    /// `attrs`. Returns every reply message's payload (after its nlmsghdr)
    /// up to the ack or, for a dump, NLMSG_DONE.
    fn request(
        &self,
        ty: u16,
        flags: u16,
        header: &[u8],
        attrs: &[(u16, &[u8])],
    ) -> std::io::Result<Vec<Vec<u8>>> {
        let seq = self.seq.get();
        self.seq.set(seq.wrapping_add(1));
        let mut body = Vec::with_capacity(64);
        body.extend_from_slice(header);
        for (t, data) in attrs {
            let len = 4 + data.len();
            body.extend_from_slice(&(len as u16).to_ne_bytes());
            body.extend_from_slice(&t.to_ne_bytes());
            body.extend_from_slice(data);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&body);
        let fd = self.fd.as_raw_fd();
        socket::sendto(fd, &msg, &NetlinkAddr::new(0, 0), MsgFlags::empty())?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = socket::recv(fd, &mut buf, MsgFlags::empty())?;
            let mut at = 0;
            while at + 16 <= n {
                let m = &buf[at..n];
                let len = (u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize).min(m.len());
                if len < 16 {
                    return Err(std::io::Error::from_raw_os_error(libc::EPROTO));
                }
                let rty = u16::from_ne_bytes([m[4], m[5]]);
                let rseq = u32::from_ne_bytes(m[8..12].try_into().unwrap());
                at += len.next_multiple_of(4);
                if rseq != seq {
                    continue;
                }
                match rty {
                    NLMSG_ERROR => {
                        let code = i32::from_ne_bytes(m[16..20].try_into().unwrap_or([0; 4]));
                        if code != 0 {
                            return Err(std::io::Error::from_raw_os_error(-code));
                        }
                        return Ok(out);
                    }
                    NLMSG_DONE => return Ok(out),
                    _ => {
                        out.push(m[16..len].to_vec());
                        if !dump {
                            return Ok(out);
                        }
                    }
                }
            }
        }
    }

    /// Interface `name` in this socket's namespace.
    fn link(&self, name: &str) -> Result<Option<Link>> {
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        let p = match self.request(RTM_GETLINK, 0, &ifinfomsg(0), &[(IFLA_IFNAME, &n)]) {
            Ok(mut r) if r.first().is_some_and(|p| p.len() >= 16) => r.swap_remove(0),
            Ok(_) => crate::bail!("rtnetlink: short reply for {name:?}"),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(e) => return Err(Error::from(e).context(format!("rtnetlink: look up {name:?}"))),
        };
        let index = i32::from_ne_bytes(p[4..8].try_into().unwrap());
        let address = attrs(&p[16..])
            .find(|(t, _)| *t == IFLA_ADDRESS)
            .map(|(_, v)| v.to_vec())
            .unwrap_or_default();
        Ok(Some(Link { index, address }))
    }

    /// The permanent addresses of interface `index`, but IPv6 link-local
    /// ones (the kernel makes those itself).
    fn addresses(&self, index: i32) -> std::io::Result<Vec<Ip>> {
        let header = ifaddrmsg(libc::AF_UNSPEC as u8, 0, 0, 0);
        let mut out = Vec::new();
        for p in self.request(RTM_GETADDR, NLM_F_DUMP, &header, &[])? {
            if p.len() < 8 || i32::from_ne_bytes(p[4..8].try_into().unwrap()) != index {
                continue;
            }
            let mut flags = p[2] as u32;
            let mut ip = Ip {
                family: p[0],
                prefix: p[1],
                scope: p[3],
                local: Vec::new(),
                address: Vec::new(),
                broadcast: Vec::new(),
            };
            for (t, v) in attrs(&p[8..]) {
                match t {
                    IFA_ADDRESS => ip.address = v.to_vec(),
                    IFA_LOCAL => ip.local = v.to_vec(),
                    IFA_BROADCAST => ip.broadcast = v.to_vec(),
                    IFA_FLAGS if v.len() == 4 => flags = u32::from_ne_bytes(v.try_into().unwrap()),
                    _ => {}
                }
            }
            let link_local = ip.family == libc::AF_INET6 as u8
                && ip.address.len() == 16
                && ip.address[0] == 0xfe
                && ip.address[1] & 0xc0 == 0x80;
            if flags & IFA_F_PERMANENT != 0 && !link_local {
                out.push(ip);
            }
        }
        Ok(out)
    }

    /// Add `ip` to interface `index`.
    fn add_address(&self, index: i32, ip: &Ip) -> std::io::Result<()> {
        let header = ifaddrmsg(ip.family, ip.prefix, ip.scope, index);
        let mut attrs: Vec<(u16, &[u8])> = Vec::with_capacity(3);
        for (t, v) in [
            (IFA_LOCAL, &ip.local),
            (IFA_ADDRESS, &ip.address),
            (IFA_BROADCAST, &ip.broadcast),
        ] {
            if !v.is_empty() {
                attrs.push((t, v));
            }
        }
        self.request(
            RTM_NEWADDR,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &header,
            &attrs,
        )
        .map(|_| ())
    }

    /// Move interface `index` into the namespace `ns`, named `name` there.
    fn move_link(&self, index: i32, ns: BorrowedFd, name: &str) -> std::io::Result<()> {
        let fd = ns.as_raw_fd().to_ne_bytes();
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        self.request(
            RTM_NEWLINK,
            NLM_F_ACK,
            &ifinfomsg(index),
            &[(IFLA_NET_NS_FD, &fd), (IFLA_IFNAME, &n)],
        )
        .map(|_| ())
    }
}

/// struct ifinfomsg for interface `index`: family, pad, type, index,
/// flags, change.
fn ifinfomsg(index: i32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = libc::AF_UNSPEC as u8;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m
}

/// struct ifaddrmsg: family, prefix length, flags, scope, index.
fn ifaddrmsg(family: u8, prefix: u8, scope: u8, index: i32) -> [u8; 8] {
    let mut m = [family, prefix, 0, scope, 0, 0, 0, 0];
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m
}

/// The rtnetlink attributes (type, value) in `p`.
fn attrs(p: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at + 4 > p.len() {
            return None;
        }
        let len = u16::from_ne_bytes([p[at], p[at + 1]]) as usize;
        let ty = u16::from_ne_bytes([p[at + 2], p[at + 3]]);
        if len < 4 || at + len > p.len() {
            return None;
        }
        let v = &p[at + 4..at + len];
        at += len.next_multiple_of(4);
        Some((ty & 0x3fff, v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        for ok in ["eth0", "dummy-1", "a", "abcdefghijklmno"] {
            check_name("f", ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "abcdefghijklmnop", "a:1"] {
            assert!(check_name("f", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loopback_is_found_by_netlink() {
        let s = Netlink::open().unwrap();
        let lo = s.link("lo").unwrap().unwrap();
        assert_eq!((lo.index, lo.address), (1, vec![0; 6]));
        assert!(s.link("no-such-if0").unwrap().is_none());
    }
}
