//! Image config → runtime config, by the image-spec's conversion.md, on top
//! of berth's default spec. All conversion rules live here.

use crate::layer::IdMap;
use crate::layout::index::ImageConfig;
use crate::sys;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::BorrowedFd;

pub struct ConvertOptions<'a> {
    pub rootless: bool,
    pub uid_map: &'a IdMap,
    pub gid_map: &'a IdMap,
}

/// Build config.json. `rootfs` is used to resolve user and group names from
/// the image's own /etc/passwd and /etc/group (read inside the rootfs).
pub fn convert(
    img: &ImageConfig,
    rootfs: BorrowedFd<'_>,
    opts: &ConvertOptions<'_>,
) -> Result<Value> {
    let mut spec = berth::spec::default_spec(opts.rootless);
    let cfg = img.config.clone().unwrap_or_default();
    let process = spec
        .get_mut("process")
        .and_then(Value::as_object_mut)
        .context("default spec has no process")?;

    // Entrypoint + Cmd → args (Cmd appended); neither keeps the default.
    let mut args: Vec<String> = cfg.entrypoint.clone().unwrap_or_default();
    args.extend(cfg.cmd.clone().unwrap_or_default());
    if !args.is_empty() {
        process.insert("args".into(), json!(args));
    }

    // Env verbatim; defaults are added only for names the image lacks.
    let image_env = cfg.env.clone().unwrap_or_default();
    let names: Vec<&str> = image_env
        .iter()
        .map(|e| e.split('=').next().unwrap_or(""))
        .collect();
    let mut env = image_env.clone();
    if let Some(defaults) = process.get("env").and_then(Value::as_array) {
        for d in defaults.iter().filter_map(Value::as_str) {
            if !names.contains(&d.split('=').next().unwrap_or("")) {
                env.push(d.to_string());
            }
        }
    }
    process.insert("env".into(), json!(env));

    let cwd = cfg
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    process.insert("cwd".into(), json!(cwd));

    if let Some(user) = cfg.user.as_deref().filter(|u| !u.is_empty()) {
        let (uid, gid, extra) = resolve_user(user, rootfs)?;
        let mut u = json!({ "uid": uid, "gid": gid });
        if let Some(extra) = extra {
            if !extra.is_empty() {
                u["additionalGids"] = json!(extra);
            }
        }
        process.insert("user".into(), u);
    }

    // Volumes → mounts: a tmpfs per volume keeps application data out of
    // the rootfs, as conversion.md asks.
    if let Some(vols) = &cfg.volumes {
        let mounts = spec
            .get_mut("mounts")
            .and_then(Value::as_array_mut)
            .context("default spec has no mounts")?;
        for v in vols.keys() {
            mounts.push(json!({
                "destination": v, "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=755"]
            }));
        }
    }

    spec["annotations"] = json!(annotations(img));

    if !opts.uid_map.is_empty() || !opts.gid_map.is_empty() {
        let m = |map: &IdMap| -> Value {
            json!(map
                .0
                .iter()
                .map(|r| json!({"containerID": r.container, "hostID": r.host, "size": r.size}))
                .collect::<Vec<_>>())
        };
        let linux = spec
            .get_mut("linux")
            .and_then(Value::as_object_mut)
            .context("default spec has no linux")?;
        linux.insert("uidMappings".into(), m(opts.uid_map));
        linux.insert("gidMappings".into(), m(opts.gid_map));
        if let Some(ns) = linux.get_mut("namespaces").and_then(Value::as_array_mut) {
            if !ns.iter().any(|n| n["type"] == "user") {
                ns.push(json!({"type": "user"}));
            }
        }
    }
    Ok(spec)
}

/// Implicit annotations from the config, then Labels, which win conflicts.
pub fn annotations(img: &ImageConfig) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    let k = |s: &str| format!("org.opencontainers.image.{s}");
    if !img.os.is_empty() {
        a.insert(k("os"), img.os.clone());
    }
    if !img.architecture.is_empty() {
        a.insert(k("architecture"), img.architecture.clone());
    }
    let opt = [
        ("variant", &img.variant),
        ("os.version", &img.os_version),
        ("author", &img.author),
        ("created", &img.created),
    ];
    for (name, v) in opt {
        if let Some(v) = v {
            a.insert(k(name), v.clone());
        }
    }
    if let Some(f) = &img.os_features {
        a.insert(k("os.features"), f.join(","));
    }
    if let Some(cfg) = &img.config {
        if let Some(s) = &cfg.stop_signal {
            a.insert(k("stopSignal"), s.clone());
        }
        if let Some(p) = &cfg.exposed_ports {
            a.insert(
                k("exposedPorts"),
                p.keys().cloned().collect::<Vec<_>>().join(","),
            );
        }
        if let Some(l) = &cfg.labels {
            for (key, v) in l {
                a.insert(key.clone(), v.clone());
            }
        }
    }
    a
}

fn read_in_root(rootfs: BorrowedFd<'_>, path: &str) -> Result<Option<String>> {
    let c = sys::cstr(std::ffi::OsStr::new(path))?;
    let fd = match sys::open_in_root(rootfs, &c, libc::O_RDONLY) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("open /{path} in rootfs")),
    };
    let mut s = String::new();
    // Bounded: a hostile image could make /etc/passwd huge (or /dev/zero).
    std::fs::File::from(fd)
        .take(16 << 20)
        .read_to_string(&mut s)
        .with_context(|| format!("read /{path} in rootfs"))?;
    Ok(Some(s))
}

/// `user[:group]` → (uid, gid, additionalGids when they apply).
pub fn resolve_user(spec: &str, rootfs: BorrowedFd<'_>) -> Result<(u32, u32, Option<Vec<u32>>)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_in_root(rootfs, "etc/passwd")?;
    let groups = read_in_root(rootfs, "etc/group")?;
    // name:x:uid:gid:...
    let pw: Vec<Vec<&str>> = passwd
        .as_deref()
        .unwrap_or("")
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    let gr: Vec<Vec<&str>> = groups
        .as_deref()
        .unwrap_or("")
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 3)
        .collect();

    let (uid, pw_gid, name) = if let Ok(uid) = user.parse::<u32>() {
        let ent = pw.iter().find(|f| f[2].parse::<u32>().ok() == Some(uid));
        (uid, ent.and_then(|f| f[3].parse::<u32>().ok()), None)
    } else {
        let Some(ent) = pw.iter().find(|f| f[0] == user) else {
            bail!(
                "user {user:?} (image config User {spec:?}) not found in the image's /etc/passwd"
            );
        };
        let uid = ent[2]
            .parse::<u32>()
            .with_context(|| format!("/etc/passwd: bad uid for {user}"))?;
        (uid, ent[3].parse::<u32>().ok(), Some(user))
    };
    let gid = match group {
        Some(g) if g.parse::<u32>().is_ok() => g.parse::<u32>().unwrap_or(0),
        Some(g) => {
            let Some(ent) = gr.iter().find(|f| f[0] == g) else {
                bail!(
                    "group {g:?} (image config User {spec:?}) not found in the image's /etc/group"
                );
            };
            ent[2]
                .parse::<u32>()
                .with_context(|| format!("/etc/group: bad gid for {g}"))?
        }
        None => pw_gid.unwrap_or(0),
    };
    // Supplementary groups only for a named user without an explicit group.
    let extra = match (name, group) {
        (Some(n), None) => {
            let mut v: Vec<u32> = gr
                .iter()
                .filter(|f| {
                    f.get(3)
                        .map(|m| m.split(',').any(|m| m == n))
                        .unwrap_or(false)
                })
                .filter_map(|f| f[2].parse::<u32>().ok())
                .filter(|g| *g != gid)
                .collect();
            v.sort_unstable();
            v.dedup();
            Some(v)
        }
        _ => None,
    };
    Ok((uid, gid, extra))
}
