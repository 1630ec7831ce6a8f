//! `checkpoint` / `restore` with CRIU. Runs for real in the test guest
//! (`guest/test-systemd.sh`, the cgroup v2 boot, where `criu check`
//! passes and BERTH_GUEST_CRIU is set); on a host whose CRIU fails its own
//! `criu check` (this build host: `vdso: Unexpected rt vDSO area bounds`)
//! only the refusals are checked and the rest returns early with a note.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn criu_works() -> bool {
    let ok = Command::new("criu")
        .arg("check")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("BERTH_GUEST_CRIU").is_none(),
            "`criu check` fails in the guest"
        );
        eprintln!("skipped: `criu check` fails here (run guest/test-systemd.sh)");
    }
    ok
}

/// A container whose shell counts in memory and writes each value to
/// /count in its rootfs.
fn counter() -> Bundle {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /count; sleep 0.2; done",
    ]);
    b.edit(|s| s["root"]["readonly"] = false.into());
    b
}

fn count(b: &Bundle) -> Option<u64> {
    std::fs::read_to_string(b.rootfs().join("count"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Poll (no timing asserted: a generous deadline only) until `f` holds.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < end, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first value the container writes after `after` is overwritten with
/// 0: it must carry on from `from`, not start again at 1.
fn assert_count_goes_on(b: &Bundle, from: u64) {
    let mut seen = 0;
    wait_until("the restored container to count", || {
        seen = count(b).unwrap_or(0);
        seen != 0
    });
    assert!(
        seen > from,
        "restored counter wrote {seen}, checkpointed at {from}: it started again"
    );
}

fn scratch() -> TempDir {
    TempDir::new("berth-ckpt")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn start_counting(rt: &Runtime, b: &Bundle, id: &str) -> i32 {
    rt.ok(&["run", "-d", "--bundle", p(&b.dir), id]);
    wait_until("the counter to reach 3", || count(b).unwrap_or(0) >= 3);
    rt.state(id)["pid"].as_i64().unwrap() as i32
}

fn restore(rt: &Runtime, b: &Bundle, images: &Path, work: &Path, id: &str) {
    restore_with(rt, b, images, work, id, &[]);
}

/// `restore --detach` with `flags` added.
fn restore_with(rt: &Runtime, b: &Bundle, images: &Path, work: &Path, id: &str, flags: &[&str]) {
    rt.created.borrow_mut().push(id.to_string());
    let mut args = vec!["restore", "--detach"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[
        "--image-path",
        p(images),
        "--work-path",
        p(work),
        "--bundle",
        p(&b.dir),
        id,
    ]);
    rt.ok(&args);
}

/// Restore `images` as `id` (with `flags`) with /count zeroed; the
/// counter must go on from `at`; then kill and delete it.
fn restore_counts_on(rt: &Runtime, b: &Bundle, images: &Path, id: &str, at: u64, flags: &[&str]) {
    std::fs::write(b.rootfs().join("count"), "0").unwrap();
    restore_with(rt, b, images, images, id, flags);
    assert_eq!(rt.status(id), "running");
    assert_count_goes_on(b, at);
    kill_and_delete(rt, id);
}

/// `checkpoint` (the container stops) with `flags` added; waits for the
/// old init to be gone.
fn checkpoint_with(rt: &Runtime, id: &str, images: &Path, flags: &[&str]) {
    let pid = rt.state(id)["pid"].as_i64().unwrap() as i32;
    let mut args = vec!["checkpoint"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--image-path", p(images), id]);
    rt.ok(&args);
    reap(pid);
    assert_eq!(rt.status(id), "stopped", "checkpoint left it running");
}

/// `checkpoint --leave-running` into `images`.
fn checkpoint_leave_running(rt: &Runtime, id: &str, images: &Path) {
    rt.ok(&[
        "checkpoint",
        "--leave-running",
        "--image-path",
        p(images),
        id,
    ]);
}

fn kill_and_delete(rt: &Runtime, id: &str) {
    let pid = rt.state(id)["pid"].as_i64().unwrap_or(0) as i32;
    rt.ok(&["kill", id, "KILL"]);
    wait_until("the container to stop", || {
        reap(pid);
        rt.status(id) == "stopped"
    });
    rt.ok(&["delete", id]);
}

#[test]
fn checkpoint_then_restore_continues_the_count() {
    if !criu_works() {
        return;
    }
    let rt = Runtime::berth();
    let b = counter();
    let d = scratch();
    let (images, work) = (d.0.join("img"), d.0.join("work"));
    let id = unique("ck");
    start_counting(&rt, &b, &id);
    checkpoint_with(&rt, &id, &images, &["--work-path", p(&work)]);
    let at = count(&b).unwrap();
    assert!(work.join("dump.log").exists());
    rt.ok(&["delete", &id]);
    std::fs::write(b.rootfs().join("count"), "0").unwrap();

    restore(&rt, &b, &images, &work, &id);
    assert_eq!(rt.status(&id), "running");
    let st = rt.state(&id);
    let new_pid = st["pid"].as_i64().unwrap();
    assert!(new_pid > 0 && std::path::Path::new(&format!("/proc/{new_pid}")).exists());
    assert_count_goes_on(&b, at);
    let list = rt.ok(&["list", "--format", "json"]);
    assert!(list.contains(&id), "{list}");
    // In the container's own cgroup, as berth made it.
    let own = std::fs::read_to_string(format!("/proc/{new_pid}/cgroup")).unwrap();
    assert!(own.contains(&id), "restored init not in its cgroup: {own}");
    kill_and_delete(&rt, &id);
}

#[test]
fn leave_running_then_restore_into_a_new_id() {
    if !criu_works() {
        return;
    }
    let rt = Runtime::berth();
    let b = counter();
    let d = scratch();
    let images = d.0.join("img");
    let id = unique("ckl");
    start_counting(&rt, &b, &id);
    // Read before: the container goes on counting while and after it is
    // dumped, and the dumped value is at least this.
    let at = count(&b).unwrap();
    checkpoint_leave_running(&rt, &id, &images);
    assert_eq!(rt.status(&id), "running");
    let after = count(&b).unwrap();
    wait_until("the original to go on counting", || {
        count(&b).unwrap_or(0) > after
    });
    kill_and_delete(&rt, &id);
    restore_counts_on(&rt, &b, &images, &unique("ckn"), at, &[]);
}

/// containerd's order (`ctr container checkpoint --task`): pause, dump
/// with `--leave-running`, resume.
#[test]
fn a_paused_container_is_checkpointed_and_stays_paused() {
    if !criu_works() {
        return;
    }
    let rt = Runtime::berth();
    let b = counter();
    let d = scratch();
    let images = d.0.join("img");
    let id = unique("ckz");
    start_counting(&rt, &b, &id);
    rt.ok(&["pause", &id]);
    let at = count(&b).unwrap();
    checkpoint_leave_running(&rt, &id, &images);
    assert_eq!(rt.status(&id), "paused", "the checkpoint thawed it");
    rt.ok(&["resume", &id]);
    wait_until("the original to go on counting", || {
        count(&b).unwrap_or(0) > at
    });
    kill_and_delete(&rt, &id);
    restore_counts_on(&rt, &b, &images, &unique("ckzn"), at, &[]);

    // Without --leave-running the paused container is dumped and ends.
    let id = unique("ckz");
    start_counting(&rt, &b, &id);
    rt.ok(&["pause", &id]);
    let at = count(&b).unwrap();
    checkpoint_with(&rt, &id, &d.0.join("img2"), &[]);
    rt.ok(&["delete", &id]);
    restore_counts_on(&rt, &b, &d.0.join("img2"), &unique("ckzn"), at, &[]);
}

#[test]
fn pre_dump_then_dump_with_parent_path() {
    if !criu_works() {
        return;
    }
    let rt = Runtime::berth();
    let b = counter();
    let d = scratch();
    let (pre, fin) = (d.0.join("pre"), d.0.join("final"));
    let id = unique("ckp");
    let pid = start_counting(&rt, &b, &id);
    rt.ok(&["checkpoint", "--pre-dump", "--image-path", p(&pre), &id]);
    assert_eq!(rt.status(&id), "running", "pre-dump stopped the container");
    rt.ok(&[
        "checkpoint",
        "--image-path",
        p(&fin),
        "--parent-path",
        "../pre",
        &id,
    ]);
    reap(pid);
    let at = count(&b).unwrap();
    rt.ok(&["delete", &id]);
    restore_counts_on(&rt, &b, &fin, &id, at, &[]);
}

#[test]
fn unsupported_flags_and_bad_input_are_refused() {
    let rt = Runtime::berth();
    let d = scratch();
    for flag in ["--lazy-pages", "--auto-dedup"] {
        let err = rt.fails(&["checkpoint", flag, "nosuch"]);
        assert!(err.contains(&format!("not supported: {flag}")), "{err}");
    }
    let err = rt.fails(&["checkpoint", "--page-server", "1.2.3.4:5", "nosuch"]);
    assert!(err.contains("not supported: --page-server"), "{err}");
    let err = rt.fails(&["checkpoint", "--empty-ns", "network", "nosuch"]);
    assert!(err.contains("not supported: --empty-ns"), "{err}");
    let b = Bundle::new(&["sleep", "100"]);
    let err = rt.fails(&["restore", "--lazy-pages", "--bundle", p(&b.dir), "r1"]);
    assert!(err.contains("not supported: --lazy-pages"), "{err}");
    let err = rt.fails(&["restore", "--no-subreaper", "--bundle", p(&b.dir), "r1"]);
    assert!(
        err.contains("not supported: --no-subreaper without --detach"),
        "{err}"
    );
    // A directory that holds no checkpoint: nothing is left behind.
    let id = unique("ckbad");
    let err = rt.fails(&[
        "restore",
        "--detach",
        "--image-path",
        p(&d.0),
        "--bundle",
        p(&b.dir),
        &id,
    ]);
    assert!(
        err.contains("not a berth checkpoint image directory")
            || err.contains("CRIU cannot checkpoint on this system"),
        "{err}"
    );
    assert!(!rt.root.join(&id).exists(), "state left behind");

    // A running container, and no CRIU where --criu points.
    let id = unique("ckc");
    rt.ok(&["run", "-d", "--bundle", p(&b.dir), &id]);
    let err = rt.fails(&[
        "--criu",
        "/nonexistent/criu",
        "checkpoint",
        "--image-path",
        p(&d.0),
        &id,
    ]);
    assert!(err.contains("cannot run CRIU (/nonexistent/criu)"), "{err}");
    if !criu_works() {
        // This host: CRIU's own check fails, and berth says so.
        let err = rt.fails(&["checkpoint", "--image-path", p(&d.0), &id]);
        assert!(
            err.contains("CRIU cannot checkpoint on this system: `criu check` failed"),
            "{err}"
        );
    }
    assert_eq!(rt.status(&id), "running");
}

/// A writable busybox bundle running `args`, with the helper at /helper.
fn helper_bundle(args: &[&str]) -> Bundle {
    let mut b = Bundle::new(args);
    b.edit(|s| s["root"]["readonly"] = false.into());
    std::fs::copy(example("ckpt_helper"), b.rootfs().join("helper")).unwrap();
    b
}

/// Whether someone else holds a lock on `path` that conflicts with an
/// exclusive flock (tried and, if got, released at once).
fn flock_taken(path: &Path) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    let f = std::fs::File::open(path).unwrap();
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(_unlocked_on_drop) => false,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => true,
        Err((_, e)) => panic!("flock {}: {e}", path.display()),
    }
}

/// The pid of the process holding a POSIX lock on `path` that conflicts
/// with a write lock of the whole file (F_GETLK: nothing is taken).
fn posix_lock_holder(path: &Path) -> Option<i32> {
    use nix::fcntl::{fcntl, FcntlArg};
    use std::os::fd::AsFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut l = libc::flock {
        l_type: libc::F_WRLCK as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(f.as_fd(), FcntlArg::F_GETLK(&mut l)).unwrap();
    (l.l_type != libc::F_UNLCK as i16).then_some(l.l_pid)
}

#[test]
fn file_locks_are_held_again_after_restore() {
    if !criu_works() {
        return;
    }
    let rt = Runtime::berth();
    let b = helper_bundle(&["/helper", "locks", "/lock"]);
    let d = scratch();
    let images = d.0.join("img");
    let (flock, posix) = (b.rootfs().join("lock.flock"), b.rootfs().join("lock.posix"));
    let id = unique("ckf");
    rt.ok(&["run", "-d", "--bundle", p(&b.dir), &id]);
    wait_until("the helper to take its locks", || {
        b.rootfs().join("lock.held").exists()
    });
    assert!(flock_taken(&flock), "the helper's flock is not seen");
    let holder = posix_lock_holder(&posix).expect("the helper's POSIX lock is not seen");
    let err = rt.fails(&["checkpoint", "--image-path", p(&images), &id]);
    assert!(
        err.contains("--file-locks") || err.contains("lock"),
        "{err}"
    );
    assert_eq!(rt.status(&id), "running");

    checkpoint_with(&rt, &id, &images, &["--file-locks"]);
    // Released with the dumped processes: the locks were theirs.
    assert!(!flock_taken(&flock), "flock still held after the dump");
    assert_eq!(posix_lock_holder(&posix), None, "POSIX lock still held");
    rt.ok(&["delete", &id]);

    restore_with(&rt, &b, &images, &images, &id, &["--file-locks"]);
    assert_eq!(rt.status(&id), "running");
    assert!(flock_taken(&flock), "flock not held after restore");
    let new_holder = posix_lock_holder(&posix).expect("POSIX lock not held after restore");
    let init = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    assert_eq!(
        new_holder, init,
        "POSIX lock held by {new_holder}, not the restored init (dumped: {holder})"
    );
    kill_and_delete(&rt, &id);
}

#[test]
fn tcp_connection_inside_the_container_survives_with_tcp_established() {
    if !criu_works() {
        return;
    }
    let rt = Runtime::berth();
    // Its own network namespace (the default spec's): lo up, then a
    // server and a client process talking over 127.0.0.1.
    let mut b = helper_bundle(&["sh", "-c", "ip link set lo up && exec /helper tcp"]);
    std::os::unix::fs::symlink("busybox", b.rootfs().join("bin/ip")).unwrap();
    b.edit(|s| {
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push("CAP_NET_ADMIN".into());
        }
    });
    let d = scratch();
    let images = d.0.join("img");
    let id = unique("ckt");
    start_counting(&rt, &b, &id);
    checkpoint_with(&rt, &id, &images, &["--tcp-established"]);
    let at = count(&b).unwrap();
    rt.ok(&["delete", &id]);
    // Numbers the client sends after the restore reach the server over
    // the restored connection, following on from the dumped ones.
    restore_counts_on(&rt, &b, &images, &id, at, &["--tcp-established"]);
}

#[test]
fn datagram_socket_to_a_peer_outside_is_reconnected_with_ext_unix_sk() {
    if !criu_works() {
        return;
    }
    use std::os::unix::net::UnixDatagram;
    let rt = Runtime::berth();
    let d = scratch();
    let images = d.0.join("img");
    // The peer is the test's socket, in a directory bound into the
    // container at the same path (CRIU reconnects by the peer's name,
    // inside the container's root). CRIU finds a socket's peer with
    // sock_diag in the dumped tasks' network namespace only: the
    // container shares the host's.
    let dir = d.0.join("sock");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("peer.sock");
    let peer = UnixDatagram::bind(&path).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let recv = || -> u64 {
        let mut buf = [0u8; 32];
        let n = peer.recv(&mut buf).expect("a datagram from the container");
        std::str::from_utf8(&buf[..n]).unwrap().parse().unwrap()
    };
    let mut b = helper_bundle(&["/helper", "dgram", p(&path)]);
    b.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "network");
        s["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": p(&dir), "type": "bind", "source": p(&dir), "options": ["rbind"]
        }))
    });
    let id = unique("cku");
    rt.ok(&["run", "-d", "--bundle", p(&b.dir), &id]);
    while recv() < 3 {}
    let err = rt.fails(&["checkpoint", "--image-path", p(&images), &id]);
    assert!(err.contains("ext-unix-sk"), "{err}");
    assert_eq!(rt.status(&id), "running");
    checkpoint_with(&rt, &id, &images, &["--ext-unix-sk"]);
    // The last number sent before the dump.
    peer.set_nonblocking(true).unwrap();
    let mut at = 0;
    let mut buf = [0u8; 32];
    while let Ok(n) = peer.recv(&mut buf) {
        at = std::str::from_utf8(&buf[..n]).unwrap().parse().unwrap();
    }
    peer.set_nonblocking(false).unwrap();
    assert!(at >= 3, "datagrams lost before the dump");
    rt.ok(&["delete", &id]);

    restore_with(&rt, &b, &images, &images, &id, &["--ext-unix-sk"]);
    let next = recv();
    assert!(
        next > at,
        "restored sender sent {next}, dumped after {at}: it started again"
    );
    kill_and_delete(&rt, &id);
}

/// Every number read from a pty master, one per line, sent on by a thread
/// until the slave side is gone (EIO).
fn numbers_from(master: std::os::fd::OwnedFd) -> std::sync::mpsc::Receiver<u64> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(std::fs::File::from(master)).lines() {
            let Ok(line) = line else { break };
            if let Ok(n) = line.trim().parse() {
                if tx.send(n).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

fn next_number(rx: &std::sync::mpsc::Receiver<u64>) -> u64 {
    rx.recv_timeout(Duration::from_secs(60))
        .expect("a number on the terminal")
}

/// The last number `rx` got before its slave side closed.
fn last_number(rx: std::sync::mpsc::Receiver<u64>) -> u64 {
    rx.iter().last().unwrap_or(0)
}

/// The restored shell's first number on its new terminal `master` follows
/// on from `at`; then kill and delete it.
fn terminal_counts_on(rt: &Runtime, id: &str, master: std::os::fd::OwnedFd, at: u64) {
    let next = next_number(&numbers_from(master));
    assert!(
        next > at,
        "restored shell printed {next}, dumped after {at}: it started again"
    );
    kill_and_delete(rt, id);
}

const TTY_COUNTER: &[&str] = &[
    "sh",
    "-c",
    "i=0; while :; do i=$((i+1)); echo $i; sleep 0.2; done",
];

/// A console socket in `dir` whose first connection's pty master (and the
/// name sent with it) a thread receives.
fn console_socket(
    dir: &Path,
    name: &str,
) -> (
    PathBuf,
    std::thread::JoinHandle<(std::os::fd::OwnedFd, String)>,
) {
    let path = dir.join(name);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let t = std::thread::spawn(move || {
        use std::os::fd::AsFd;
        let (conn, _) = listener.accept().unwrap();
        berth::tty::recv_master_named(conn.as_fd()).unwrap()
    });
    (path, t)
}

#[test]
fn terminal_container_is_restored_onto_a_new_pty_sent_to_the_console_socket() {
    if !criu_works() {
        return;
    }
    let rt = Runtime::berth();
    let mut b = Bundle::new(TTY_COUNTER);
    b.edit(|s| s["process"]["terminal"] = true.into());
    let d = scratch();
    let images = d.0.join("img");
    let id = unique("ckty");
    let (sock, got) = console_socket(&d.0, "c1.sock");
    rt.ok(&[
        "run",
        "-d",
        "--console-socket",
        p(&sock),
        "--bundle",
        p(&b.dir),
        &id,
    ]);
    let rx = numbers_from(got.join().unwrap().0);
    while next_number(&rx) < 3 {}
    checkpoint_with(&rt, &id, &images, &[]);
    let at = last_number(rx);
    rt.ok(&["delete", &id]);

    // Without a socket for the new master: refused, nothing left.
    let err = rt.fails(&[
        "restore",
        "--detach",
        "--image-path",
        p(&images),
        "--bundle",
        p(&b.dir),
        &id,
    ]);
    assert!(err.contains("console socket"), "{err}");
    assert!(!rt.root.join(&id).exists(), "state left behind");

    let (sock, got) = console_socket(&d.0, "c2.sock");
    restore_with(
        &rt,
        &b,
        &images,
        &images,
        &id,
        &["--console-socket", p(&sock)],
    );
    let (master, name) = got.join().unwrap();
    assert!(name.starts_with("/dev/pts/"), "{name}");
    terminal_counts_on(&rt, &id, master, at);
}

#[test]
fn shell_job_moves_a_container_onto_the_restoring_terminal() {
    if !criu_works() {
        return;
    }
    use std::os::fd::AsFd;
    let rt = Runtime::berth();
    let b = Bundle::new(TTY_COUNTER);
    let d = scratch();
    let images = d.0.join("img");
    let id = unique("cksj");
    // Started "from a shell": berth's stdio (and so the init's) is a host
    // terminal, not the container's own.
    let (master, slave) = berth::tty::open_pty(Path::new("/dev/pts"), None).unwrap();
    rt.created.borrow_mut().push(id.clone());
    let st = rt
        .cmd(&["run", "-d", "--bundle", p(&b.dir), &id])
        .stdin(slave.as_fd().try_clone_to_owned().unwrap())
        .stdout(slave.as_fd().try_clone_to_owned().unwrap())
        .stderr(slave.as_fd().try_clone_to_owned().unwrap())
        .status()
        .unwrap();
    assert!(st.success(), "run -d on a terminal failed");
    drop(slave);
    let rx = numbers_from(master);
    while next_number(&rx) < 3 {}
    let err = rt.fails(&["checkpoint", "--image-path", p(&images), &id]);
    assert!(err.contains("--shell-job"), "{err}");
    checkpoint_with(&rt, &id, &images, &["--shell-job"]);
    let at = last_number(rx);
    rt.ok(&["delete", &id]);

    let (master, slave) = berth::tty::open_pty(Path::new("/dev/pts"), None).unwrap();
    rt.created.borrow_mut().push(id.clone());
    let out = rt
        .cmd(&[
            "restore",
            "--detach",
            "--shell-job",
            "--image-path",
            p(&images),
            "--bundle",
            p(&b.dir),
            &id,
        ])
        .stdin(slave)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore --shell-job: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    terminal_counts_on(&rt, &id, master, at);
}
