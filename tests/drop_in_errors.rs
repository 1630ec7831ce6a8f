//! Configs runc refuses or carries out where berth once did otherwise
//! (oci-diff's berth-bug rows of issue 11): each is run for real, and a
//! refusal must be a clear error at `create` naming its cause, with no
//! container, cgroup or state left behind.

mod common;

use common::{Bundle, Runtime};
use serde_json::json;

/// The bundle as Debian's runc 1.1.5 accepts it too, in a cgroup of its
/// own (`cgroupsPath`, relative: under the runtime's cgroup), returned
/// with that path.
fn bundle(args: &[&str]) -> (Bundle, String) {
    let mut b = Bundle::new(args);
    let cg = common::unique("berth-differr");
    b.edit(|s| {
        s["ociVersion"] = json!("1.1.0");
        s["linux"]["cgroupsPath"] = json!(cg);
    });
    (b, cg)
}

#[test]
fn a_device_outside_dev_is_created_where_the_config_says() {
    let (mut b, _) = bundle(&["/bin/stat", "-c", "%F %t:%T %a", "/data/mynull"]);
    b.edit(|s| {
        s["linux"]["devices"] = json!([{
            "path": "/data/mynull", "type": "c", "major": 1, "minor": 3,
            "fileMode": 0o620, "uid": 0, "gid": 0
        }]);
    });
    let rt = Runtime::berth();
    let (code, out, err) = rt.run(&b, "t-dev-outside");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "character special file 1:3 620");
}

#[test]
fn a_device_path_through_a_symlink_never_lands_outside_the_rootfs() {
    let outside = std::env::temp_dir().join(common::unique("berth-dev-outside"));
    std::fs::create_dir_all(&outside).unwrap();
    let (mut b, _) = bundle(&["/bin/true"]);
    let rel = format!("../../../../../../../..{}", outside.display());
    std::os::unix::fs::symlink(&outside, b.rootfs().join("abs")).unwrap();
    std::os::unix::fs::symlink(&rel, b.rootfs().join("rel")).unwrap();
    let rt = Runtime::berth();
    for path in ["/abs/mynull", "/rel/mynull", "/abs/sub/mynull"] {
        b.edit(|s| {
            s["linux"]["devices"] = json!([{
                "path": path, "type": "c", "major": 1, "minor": 3
            }]);
        });
        // Refused (the link leads nowhere inside the rootfs) or made
        // inside it, where the kernel resolves the link: never outside.
        let _ = rt.run(&b, "t-dev-link");
        let _ = rt.run_cmd(&["delete", "--force", "t-dev-link"]);
        assert!(
            std::fs::read_dir(&outside).unwrap().next().is_none(),
            "{path}: created outside the rootfs"
        );
    }
    std::fs::remove_dir_all(&outside).unwrap();
}
