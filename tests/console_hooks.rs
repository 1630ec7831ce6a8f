//! The console socket protocol containerd and conmon use, and hooks at the
//! points the runtime-spec names, end to end with real containers.

mod common;

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;

use common::{exists, Bundle, Runtime};
use serde_json::json;

#[test]
fn console_socket_receives_a_pty_with_the_console_size() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/sh", "-c", "tty; stty size"]);
    b.edit(|s| {
        s["process"]["terminal"] = json!(true);
        s["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    });
    let sock = b.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let accept = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        berth::tty::recv_master(conn.as_fd()).unwrap()
    });
    rt.ok(&[
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        "t-console",
    ]);
    let master = accept.join().unwrap();
    let pid = rt.state("t-console")["pid"].as_i64().unwrap() as i32;
    rt.ok(&["start", "t-console"]);
    let mut out = Vec::new();
    let mut f = std::fs::File::from(master);
    let mut buf = [0u8; 1024];
    // The pty returns EIO once the container's side is closed.
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("/dev/pts/") || text.contains("/dev/console"),
        "{text}"
    );
    assert!(text.contains("30 100"), "{text}");
    rt.wait_status("t-console", "stopped");
    rt.ok(&["delete", "t-console"]);
    common::reap(pid);
}

#[test]
fn terminal_without_console_socket_is_refused_for_create() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/true"]);
    b.edit(|s| s["process"]["terminal"] = json!(true));
    let err = rt.fails(&["create", "--bundle", b.dir.to_str().unwrap(), "t-noconsole"]);
    assert!(err.contains("console socket"), "{err}");
    assert!(!exists(&rt.root.join("t-noconsole")));
}

fn hook(stage: &str, file: &str) -> serde_json::Value {
    json!({"path": "/bin/busybox", "args": ["busybox", "sh", "-c", format!("echo {stage} >> {file}")]})
}

#[test]
fn hooks_run_in_lifecycle_order() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/true"]);
    let out = b.dir.join("hookout");
    std::fs::create_dir_all(&out).unwrap();
    let host_file = out.join("order");
    let hf = host_file.to_str().unwrap().to_string();
    b.edit(|s| {
        s["root"]["readonly"] = json!(false);
        s["mounts"].as_array_mut().unwrap().push(json!({"destination": "/hookout", "type": "bind", "source": out.to_str().unwrap(), "options": ["rbind", "rw"]}));
        s["hooks"] = json!({
            "prestart": [hook("prestart", &hf)],
            "createRuntime": [hook("createRuntime", &hf)],
            "createContainer": [hook("createContainer", &hf)],
            // Inside the container, after pivot_root: its view of the file.
            "startContainer": [hook("startContainer", "/hookout/order")],
            "poststart": [hook("poststart", &hf)],
            "poststop": [hook("poststop", &hf)],
        });
    });
    let (code, _, err) = rt.run(&b, "t-hooks");
    assert_eq!(code, 0, "{err}");
    let order = std::fs::read_to_string(&host_file).unwrap();
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
}

#[test]
fn hooks_get_the_state_on_stdin() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/true"]);
    let state_file = b.dir.join("state.json");
    b.edit(|s| {
        s["hooks"] = json!({"createRuntime": [{"path": "/bin/busybox", "args": ["busybox", "sh", "-c", format!("cat > {}", state_file.display())]}]});
    });
    let (code, _, err) = rt.run(&b, "t-hookstate");
    assert_eq!(code, 0, "{err}");
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(st["id"], "t-hookstate");
    assert_eq!(st["status"], "created");
    assert!(st["pid"].as_i64().unwrap() > 0);
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/sleep", "100"]);
    b.edit(|s| s["hooks"] = json!({"createRuntime": [{"path": "/bin/busybox", "args": ["busybox", "sh", "-c", "echo nope >&2; exit 3"]}]}));
    let err = rt.fails(&["create", "--bundle", b.dir.to_str().unwrap(), "t-hookfail"]);
    assert!(
        err.contains("createRuntime") && err.contains("nope"),
        "{err}"
    );
    assert!(!exists(&rt.root.join("t-hookfail")));
}

#[test]
fn run_drives_the_terminal_itself_without_a_console_socket() {
    use std::io::Write;
    let rt = Runtime::berth();
    let mut b = Bundle::new(&["/bin/sh"]);
    b.edit(|s| s["process"]["terminal"] = json!(true));
    rt.created.borrow_mut().push("t-runtty".into());
    let mut child = rt
        .cmd(&["run", "--bundle", b.dir.to_str().unwrap(), "t-runtty"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo hi-$((1+1))\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hi-2"), "{text}");
    assert_eq!(out.status.code(), Some(0));
}
