//! The container processes of the checkpoint tests (tests/checkpoint.rs),
//! built statically with the tests (`cargo test` builds examples) and copied
//! into a busybox rootfs, which has no `flock` and no way to hold a TCP
//! connection between two processes.
//!
//! Usage:
//! - `ckpt_helper locks PATH`: hold an exclusive flock(2) on `PATH.flock`
//!   and a POSIX write lock (fcntl F_SETLK, whole file) on `PATH.posix`,
//!   write `PATH.held`, then sleep forever.
//! - `ckpt_helper tcp`: listen on 127.0.0.1, start `ckpt_helper tcp-client
//!   PORT` as a second process, accept its connection and write every number
//!   it sends to `/count`. The client sends 1, 2, 3, … every 0.2 s and exits
//!   (as does the server) on the first error.
//! - `ckpt_helper dgram PATH`: connect a unix datagram socket to `PATH` and
//!   send 1, 2, 3, … every 0.2 s; exit on the first error.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, Flock, FlockArg};

const TICK: Duration = Duration::from_millis(200);

fn die(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("ckpt_helper: {what}: {e}");
    std::process::exit(1)
}

fn open(path: &str) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap_or_else(|e| die(path, e))
}

fn locks(path: &str) -> ! {
    let flocked = Flock::lock(
        open(&format!("{path}.flock")),
        FlockArg::LockExclusiveNonblock,
    )
    .unwrap_or_else(|(_, e)| die("flock", e));
    let posix = open(&format!("{path}.posix"));
    let whole = libc::flock {
        l_type: libc::F_WRLCK as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(posix.as_fd(), FcntlArg::F_SETLK(&whole)).unwrap_or_else(|e| die("fcntl F_SETLK", e));
    std::fs::write(format!("{path}.held"), "held\n").unwrap_or_else(|e| die("write", e));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
        let _ = (&flocked, &posix);
    }
}

fn tcp_server() -> ! {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| die("bind", e));
    let port = listener.local_addr().unwrap().port();
    let exe = std::env::current_exe().unwrap_or_else(|e| die("current_exe", e));
    let mut client = std::process::Command::new(exe)
        .args(["tcp-client", &port.to_string()])
        .spawn()
        .unwrap_or_else(|e| die("spawn the client", e));
    let (conn, _) = listener.accept().unwrap_or_else(|e| die("accept", e));
    drop(listener);
    let mut err = "the client closed the connection".to_string();
    for line in BufReader::new(conn).lines() {
        let written = line.map_err(|e| format!("read: {e}")).and_then(|l| {
            std::fs::write("/count", format!("{l}\n")).map_err(|e| format!("write: {e}"))
        });
        if let Err(e) = written {
            err = e;
            break;
        }
    }
    let _ = client.kill();
    let _ = client.wait();
    die("server", err)
}

fn tcp_client(port: &str) -> ! {
    let mut conn =
        TcpStream::connect(format!("127.0.0.1:{port}")).unwrap_or_else(|e| die("connect", e));
    for i in 1u64.. {
        writeln!(conn, "{i}").unwrap_or_else(|e| die("send", e));
        std::thread::sleep(TICK);
    }
    unreachable!()
}

fn dgram(path: &str) -> ! {
    let sock = UnixDatagram::unbound().unwrap_or_else(|e| die("socket", e));
    sock.connect(path).unwrap_or_else(|e| die(path, e));
    for i in 1u64.. {
        sock.send(i.to_string().as_bytes())
            .unwrap_or_else(|e| die("send", e));
        std::thread::sleep(TICK);
    }
    unreachable!()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["locks", path] => locks(path),
        ["tcp"] => tcp_server(),
        ["tcp-client", port] => tcp_client(port),
        ["dgram", path] => dgram(path),
        _ => die("usage", "ckpt_helper locks PATH | tcp | dgram PATH"),
    }
}
