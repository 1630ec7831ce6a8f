//! config.md#mounts: the default mounts, tmpfs and bind mounts, options,
//! order, created destinations, idmapped mounts.

use super::case;
use crate::case::{Case, Ctx, Level::*};
use serde_json::json;

pub fn cases() -> Vec<Case> {
    vec![
        case(
            "mounts.defaults",
            "config.md#mounts",
            Must,
            "every configured mount is mounted at its destination with its type",
            defaults,
        )
        .mutant("drop-mount:/dev/mqueue"),
        case(
            "mounts.tmpfs-options",
            "config.md#mounts",
            Must,
            "a tmpfs mount gets its options (nosuid, nodev, noexec, mode)",
            tmpfs,
        )
        .mutant("drop-mount:/mnt/tmpfs"),
        case(
            "mounts.bind",
            "config.md#mounts",
            Must,
            "a bind mount shows the source directory's content at the destination",
            bind,
        )
        .mutant("drop-mount:/mnt/bind"),
        case(
            "mounts.bind-readonly",
            "config.md#mounts",
            Must,
            "a bind mount with `ro` is read-only",
            bind_ro,
        )
        .mutant("set:/mounts/7/options=[\"rbind\"]"),
        case(
            "mounts.bind-file",
            "config.md#mounts",
            Must,
            "a file can be bind-mounted onto a file destination",
            bind_file,
        )
        .mutant("drop-mount:/data/file-bind"),
        case(
            "mounts.create-destination",
            "config.md#mounts",
            Must,
            "a destination missing from the rootfs is created",
            create_dest,
        )
        .mutant("drop-mount:/new/deep/dir"),
        case(
            "mounts.order",
            "config.md#mounts",
            Must,
            "mounts are mounted in the listed order (a later mount may sit inside an earlier one)",
            order,
        )
        .mutant("drop-mount:/mnt/outer"),
        case(
            "mounts.sysfs-readonly",
            "config.md#mounts",
            Must,
            "the `ro` option of the /sys mount is applied",
            sysfs_ro,
        )
        .mutant("set:/mounts/5/options=[\"nosuid\",\"noexec\",\"nodev\"]"),
        case(
            "mounts.idmapped",
            "config.md#posix-platform-mounts",
            Must,
            "a bind mount with uidMappings/gidMappings is an idmapped mount (spec 1.2)",
            idmapped,
        )
        .tags(&["spec-1.2"])
        .mutant("drop:/mounts/7/uidMappings\ndrop:/mounts/7/gidMappings"),
        case(
            "mounts.idmap-without-mapping",
            "config.md#posix-platform-mounts",
            Must,
            "`idmap` with no uidMappings/gidMappings and no user namespace generates an error",
            idmap_without_mapping,
        )
        .tags(&["spec-1.2"])
        .mutant("exit:create=0"),
    ]
}

fn defaults(ctx: &mut Ctx) {
    let Some(r) = ctx.run_checker() else { return };
    for (dest, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        let got = r.mount_at(dest).map(|m| m.fstype);
        ctx.check_eq(
            format!("{dest} is a {fstype} mount"),
            got.as_deref(),
            Some(fstype),
        );
    }
    let cg = r.mounts().iter().any(|m| {
        m.target.starts_with("/sys/fs/cgroup")
            && (m.fstype == "cgroup" || m.fstype == "cgroup2" || m.fstype == "tmpfs")
    });
    ctx.check(
        "/sys/fs/cgroup is mounted",
        cg,
        "no cgroup mount under /sys/fs/cgroup",
    );
    let shm = r.mount_at("/dev/shm");
    ctx.check(
        "/dev/shm has nosuid,noexec,nodev",
        shm.as_ref()
            .is_some_and(|m| m.has_opt("nosuid") && m.has_opt("noexec") && m.has_opt("nodev")),
        format!("{shm:?}"),
    );
}

fn tmpfs(ctx: &mut Ctx) {
    ctx.push(
        "/mounts",
        json!({"destination": "/mnt/tmpfs", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=700"]}),
    );
    let Some(r) = ctx.probe(&["stat:/mnt/tmpfs"]) else {
        return;
    };
    let m = r.mount_at("/mnt/tmpfs");
    ctx.check_eq(
        "/mnt/tmpfs is tmpfs",
        m.as_ref().map(|m| m.fstype.as_str()),
        Some("tmpfs"),
    );
    for opt in ["nosuid", "nodev", "noexec"] {
        ctx.check(
            format!("/mnt/tmpfs has {opt}"),
            m.as_ref().is_some_and(|m| m.has_opt(opt)),
            format!("{m:?}"),
        );
    }
    ctx.check_eq(
        "mode=700 is applied",
        r.probe("stat:/mnt/tmpfs")["mode"].as_u64(),
        Some(0o700),
    );
}

fn host_dir(ctx: &mut Ctx) -> String {
    let dir = ctx.path("hostdata");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("hello"), "from the host\n");
    dir.display().to_string()
}

fn bind(ctx: &mut Ctx) {
    let src = host_dir(ctx);
    ctx.push(
        "/mounts",
        json!({"destination": "/mnt/bind", "type": "none", "source": src, "options": ["rbind"]}),
    );
    let Some(r) = ctx.probe(&["read:/mnt/bind/hello", "write:/mnt/bind"]) else {
        return;
    };
    ctx.check_eq(
        "the host file is visible",
        r.probe("read:/mnt/bind/hello").as_str(),
        Some("from the host"),
    );
    ctx.check_eq(
        "the bind mount is writable",
        r.probe("write:/mnt/bind")["ok"].as_bool(),
        Some(true),
    );
}

fn bind_ro(ctx: &mut Ctx) {
    let src = host_dir(ctx);
    ctx.push("/mounts", json!({"destination": "/mnt/bind", "type": "none", "source": src, "options": ["rbind", "ro"]}));
    let Some(r) = ctx.probe(&["read:/mnt/bind/hello", "write:/mnt/bind"]) else {
        return;
    };
    ctx.check_eq(
        "the host file is visible",
        r.probe("read:/mnt/bind/hello").as_str(),
        Some("from the host"),
    );
    ctx.check_eq(
        "writing fails with EROFS",
        r.probe("write:/mnt/bind")["error"].as_i64(),
        Some(libc::EROFS as i64),
    );
    let ro = r
        .mount_at("/mnt/bind")
        .is_some_and(|m| m.options.iter().any(|o| o == "ro"));
    ctx.check("the mount is ro", ro, "no ro option");
}

fn bind_file(ctx: &mut Ctx) {
    let src = ctx.path("single-file");
    let _ = std::fs::write(&src, "single file\n");
    ctx.push("/mounts", json!({"destination": "/data/file-bind", "type": "bind", "source": src, "options": ["bind", "ro"]}));
    let Some(r) = ctx.probe(&["read:/data/file-bind", "stat:/data/file-bind"]) else {
        return;
    };
    ctx.check_eq(
        "the file's content is visible",
        r.probe("read:/data/file-bind").as_str(),
        Some("single file"),
    );
    ctx.check_eq(
        "the destination is a regular file",
        r.probe("stat:/data/file-bind")["kind"].as_str(),
        Some("f"),
    );
}

fn create_dest(ctx: &mut Ctx) {
    ctx.push("/mounts", json!({"destination": "/new/deep/dir", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    let Some(r) = ctx.probe(&["stat:/new/deep/dir"]) else {
        return;
    };
    ctx.check_eq(
        "the destination exists as a directory",
        r.probe("stat:/new/deep/dir")["kind"].as_str(),
        Some("d"),
    );
    ctx.check(
        "a tmpfs is mounted there",
        r.mount_at("/new/deep/dir")
            .is_some_and(|m| m.fstype == "tmpfs"),
        "no mount at /new/deep/dir",
    );
}

fn order(ctx: &mut Ctx) {
    let src = host_dir(ctx);
    ctx.push("/mounts", json!({"destination": "/mnt/outer", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
    ctx.push("/mounts", json!({"destination": "/mnt/outer/inner", "type": "none", "source": src, "options": ["rbind"]}));
    let Some(r) = ctx.probe(&["read:/mnt/outer/inner/hello"]) else {
        return;
    };
    ctx.check(
        "the outer tmpfs is mounted",
        r.mount_at("/mnt/outer")
            .is_some_and(|m| m.fstype == "tmpfs"),
        "no tmpfs at /mnt/outer",
    );
    ctx.check_eq(
        "the inner bind is on top of it",
        r.probe("read:/mnt/outer/inner/hello").as_str(),
        Some("from the host"),
    );
    let mounts = r.mounts();
    let pos = |t: &str| mounts.iter().position(|m| m.target == t);
    ctx.check(
        "the outer mount precedes the inner one",
        matches!((pos("/mnt/outer"), pos("/mnt/outer/inner")), (Some(a), Some(b)) if a < b),
        "wrong order in mountinfo",
    );
}

fn sysfs_ro(ctx: &mut Ctx) {
    let Some(r) = ctx.probe(&["write:/sys/kernel"]) else {
        return;
    };
    let ro = r
        .mount_at("/sys")
        .is_some_and(|m| m.options.iter().any(|o| o == "ro"));
    ctx.check("/sys is mounted ro", ro, "no ro on /sys");
}

/// The mapping reads as runc applies it (and containerd relies on, passing
/// the container's own mappings): `containerID` is the id on disk, `hostID`
/// the id the mount shows.
fn idmapped(ctx: &mut Ctx) {
    ctx.set("/ociVersion", json!("1.2.0"));
    let src = host_dir(ctx);
    ctx.push(
        "/mounts",
        json!({"destination": "/mnt/idmap", "type": "bind", "source": src,
        "options": ["rbind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 1234, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 1234, "size": 1}]}),
    );
    let Some(r) = ctx.probe(&["stat:/mnt/idmap/hello"]) else {
        return;
    };
    let st = r.probe("stat:/mnt/idmap/hello");
    ctx.check_eq(
        "a root-owned host file appears owned by uid 1234",
        st["uid"].as_u64(),
        Some(1234),
    );
    ctx.check_eq("and by gid 1234", st["gid"].as_u64(), Some(1234));
}

fn idmap_without_mapping(ctx: &mut Ctx) {
    ctx.set("/ociVersion", json!("1.2.0"));
    let src = host_dir(ctx);
    ctx.push(
        "/mounts",
        json!({"destination": "/mnt/idmap", "type": "bind", "source": src,
        "options": ["rbind", "idmap"]}),
    );
    let out = ctx.create();
    ctx.check(
        "create with an idmap mount and nothing to map with fails",
        !out.ok(),
        out.describe(),
    );
}
