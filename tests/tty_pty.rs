//! berth::tty against real ptys from the host's devpts.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use oci_spec::runtime::Box as ConsoleSize;

const BB: &str = "/bin/busybox";

fn host_pty(size: Option<&ConsoleSize>) -> (OwnedFd, OwnedFd) {
    berth::tty::open_pty(Path::new("/dev/pts"), size).expect("open pty on host devpts")
}

/// Read the master until EIO (all slave fds closed).
fn read_all(master: OwnedFd) -> String {
    let mut f = File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Run busybox `args` in a child whose terminal is `slave` (attach_slave in
/// the forked child), then return everything it printed.
fn run_on_slave(master: OwnedFd, slave: OwnedFd, args: &[&str]) -> (String, bool) {
    let raw = slave.as_raw_fd();
    let mut cmd = Command::new(BB);
    cmd.args(args);
    // SAFETY: the closure only makes syscalls (setsid, ioctl, dup2); `raw`
    // is open in the child because the parent holds `slave` until spawn.
    unsafe {
        cmd.pre_exec(move || {
            let dup = libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 3);
            berth::tty::attach_slave(OwnedFd::from_raw_fd(dup))
                .map_err(|_| std::io::Error::from_raw_os_error(libc::EIO))
        });
    }
    let mut child = cmd.spawn().expect("spawn busybox on pty");
    drop(slave);
    let out = read_all(master);
    let ok = child.wait().expect("wait child").success();
    (out, ok)
}

#[test]
fn master_sent_over_socket_arrives_with_name_and_works() {
    let (master, slave) = host_pty(None);
    let name = berth::tty::pty_name(master.as_fd()).expect("pty name");
    let (a, b) = UnixStream::pair().expect("socketpair");
    berth::tty::send_master(a.as_fd(), master.as_fd()).expect("send master");
    drop(master);
    let (got, got_name) = berth::tty::recv_master_named(b.as_fd()).expect("recv master");
    assert_eq!(got_name, name);
    assert!(got_name.starts_with("/dev/pts/"), "{got_name}");
    let mut s = File::from(slave);
    s.write_all(b"ping\n").expect("write slave");
    let mut buf = [0u8; 64];
    let n = File::from(got)
        .read(&mut buf)
        .expect("read received master");
    // The line discipline turns \n into \r\n by default (onlcr).
    assert_eq!(&buf[..n], b"ping\r\n");
}

#[test]
fn recv_without_fd_is_an_error() {
    let (mut a, b) = UnixStream::pair().expect("socketpair");
    a.write_all(b"/dev/pts/0").expect("write");
    let e = berth::tty::recv_master(b.as_fd()).expect_err("no fd sent");
    assert!(e.message().contains("no file descriptor"), "{e}");
}

#[test]
fn attached_slave_is_the_controlling_terminal_and_stdio() {
    let (master, slave) = host_pty(None);
    let name = berth::tty::pty_name(master.as_fd()).expect("pty name");
    // `tty` reads fd 0's name; `/dev/tty` opens only with a controlling tty.
    let (out, ok) = run_on_slave(master, slave, &["sh", "-c", "tty; echo ctty > /dev/tty"]);
    assert!(ok, "child failed: {out}");
    assert_eq!(out, format!("{name}\r\nctty\r\n"));
}

#[test]
fn console_size_is_applied() {
    let size: ConsoleSize =
        serde_json::from_str(r#"{"height":37,"width":123}"#).expect("console size");
    let (master, slave) = host_pty(Some(&size));
    let (out, ok) = run_on_slave(master, slave, &["stty", "size"]);
    assert!(ok, "stty failed: {out}");
    assert_eq!(out.trim(), "37 123");
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe")
}

fn proxy_roundtrip(input: &[u8]) -> String {
    let (master, slave) = host_pty(None);
    let (in_r, in_w) = pipe();
    let (out_r, out_w) = pipe();
    let proxy = berth::tty::Proxy::with_io(master.try_clone().expect("dup master"), in_r, out_w)
        .expect("start proxy");
    let raw = slave.as_raw_fd();
    let mut cmd = Command::new(BB);
    cmd.args(["sh", "-c", "cat; echo eof-seen"])
        .stdin(Stdio::null());
    // SAFETY: only syscalls in the child; see run_on_slave.
    unsafe {
        cmd.pre_exec(move || {
            let dup = libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 3);
            berth::tty::attach_slave(OwnedFd::from_raw_fd(dup))
                .map_err(|_| std::io::Error::from_raw_os_error(libc::EIO))
        });
    }
    let mut child = cmd.spawn().expect("spawn");
    drop(slave);
    drop(master);
    let mut w = File::from(in_w);
    w.write_all(input).expect("write proxy input");
    drop(w); // EOF on the proxy's stdin
    let status = child.wait().expect("wait");
    proxy.finish().expect("finish proxy");
    let mut out = String::new();
    File::from(out_r)
        .read_to_string(&mut out)
        .expect("read proxy output");
    assert!(status.success(), "child failed: {out:?}");
    out
}

#[test]
fn proxy_forwards_input_output_and_eof_from_pipes() {
    let out = proxy_roundtrip(b"hello\n");
    // Echoed by the terminal, then printed by cat; cat ended, so EOF arrived.
    assert_eq!(out.matches("hello").count(), 2, "{out:?}");
    assert!(out.ends_with("eof-seen\r\n"), "{out:?}");
}

#[test]
fn proxy_passes_eof_after_a_partial_line() {
    let out = proxy_roundtrip(b"abc");
    assert!(out.contains("abc"), "{out:?}");
    assert!(out.ends_with("eof-seen\r\n"), "{out:?}");
}
