//! Image config → runtime config, by the image-spec's conversion.md, on top
//! of berth's default spec. All conversion rules live here.

use crate::layer::IdMap;
use crate::layout::index::ImageConfiguration;
use crate::sys;
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder,
    Spec, UserBuilder,
};
use std::collections::{BTreeMap, HashMap};
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
    img: &ImageConfiguration,
    rootfs: BorrowedFd<'_>,
    opts: &ConvertOptions<'_>,
) -> Result<Spec> {
    let mut spec = berth_spec::default_spec(opts.rootless);
    let cfg = img.config().clone().unwrap_or_default();
    let mut process = spec
        .process()
        .clone()
        .context("default spec has no process")?;

    // Entrypoint + Cmd → args (Cmd appended); neither keeps the default.
    let mut args: Vec<String> = cfg.entrypoint().clone().unwrap_or_default();
    args.extend(cfg.cmd().clone().unwrap_or_default());
    if !args.is_empty() {
        process.set_args(Some(args));
    }

    // Env verbatim; defaults are added only for names the image lacks.
    let image_env = cfg.env().clone().unwrap_or_default();
    let names: Vec<&str> = image_env
        .iter()
        .map(|e| e.split('=').next().unwrap_or(""))
        .collect();
    let mut env = image_env.clone();
    for d in process.env().clone().unwrap_or_default() {
        if !names.contains(&d.split('=').next().unwrap_or("")) {
            env.push(d);
        }
    }
    process.set_env(Some(env));

    let cwd = cfg
        .working_dir()
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    process.set_cwd(cwd.into());

    let user = cfg.user().as_deref().filter(|u| !u.is_empty());
    let resolved = resolve_user(user.unwrap_or("0"), rootfs)?;
    if user.is_some() {
        let mut u = UserBuilder::default().uid(resolved.uid).gid(resolved.gid);
        if let Some(extra) = resolved.additional_gids.clone().filter(|e| !e.is_empty()) {
            u = u.additional_gids(extra);
        }
        process.set_user(u.build().context("process user")?);
    }
    // HOME from the user's /etc/passwd entry ("/" without one), as Docker
    // and umoci do, unless the image sets it.
    if !names.contains(&"HOME") {
        let mut env = process.env().clone().unwrap_or_default();
        env.push(format!("HOME={}", resolved.home.as_deref().unwrap_or("/")));
        process.set_env(Some(env));
    }
    spec.set_process(Some(process));
    // Bundles from images are writable, as umoci's, Docker's and podman's.
    if let Some(mut root) = spec.root().clone() {
        root.set_readonly(Some(false));
        spec.set_root(Some(root));
    }

    // Volumes → mounts: a tmpfs per volume keeps application data out of
    // the rootfs, as conversion.md asks.
    if let Some(vols) = cfg.volumes() {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        let mut vols = vols.clone();
        vols.sort();
        for v in vols {
            mounts.push(
                MountBuilder::default()
                    .destination(v)
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(vec!["nosuid".into(), "nodev".into(), "mode=755".into()])
                    .build()
                    .context("volume mount")?,
            );
        }
        spec.set_mounts(Some(mounts));
    }

    spec.set_annotations(Some(
        annotations(img).into_iter().collect::<HashMap<_, _>>(),
    ));

    if !opts.uid_map.is_empty() || !opts.gid_map.is_empty() {
        let m = |map: &IdMap| -> Result<Vec<LinuxIdMapping>> {
            map.0
                .iter()
                .map(|r| {
                    LinuxIdMappingBuilder::default()
                        .container_id(r.container)
                        .host_id(r.host)
                        .size(r.size)
                        .build()
                        .context("id mapping")
                })
                .collect()
        };
        let mut linux = spec.linux().clone().context("default spec has no linux")?;
        linux.set_uid_mappings(Some(m(opts.uid_map)?));
        linux.set_gid_mappings(Some(m(opts.gid_map)?));
        let mut ns = linux.namespaces().clone().unwrap_or_default();
        if !ns.iter().any(|n| n.typ() == LinuxNamespaceType::User) {
            ns.push(
                LinuxNamespaceBuilder::default()
                    .typ(LinuxNamespaceType::User)
                    .build()
                    .context("user namespace")?,
            );
        }
        linux.set_namespaces(Some(ns));
        spec.set_linux(Some(linux));
    }
    Ok(spec)
}

/// Implicit annotations from the config, then Labels, which win conflicts.
pub fn annotations(img: &ImageConfiguration) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    let k = |s: &str| format!("org.opencontainers.image.{s}");
    let (os, arch) = crate::layout::index::config_os_arch(img);
    if !os.is_empty() {
        a.insert(k("os"), os);
    }
    if !arch.is_empty() {
        a.insert(k("architecture"), arch);
    }
    let opt = [
        ("variant", img.variant()),
        ("os.version", img.os_version()),
        ("author", img.author()),
        ("created", img.created()),
    ];
    for (name, v) in opt {
        if let Some(v) = v {
            a.insert(k(name), v.clone());
        }
    }
    if let Some(f) = img.os_features() {
        a.insert(k("os.features"), f.join(","));
    }
    if let Some(cfg) = img.config() {
        if let Some(s) = cfg.stop_signal() {
            a.insert(k("stopSignal"), s.clone());
        }
        if let Some(p) = cfg.exposed_ports() {
            let mut p = p.clone();
            p.sort();
            a.insert(k("exposedPorts"), p.join(","));
        }
        if let Some(l) = cfg.labels() {
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

/// A config `User` resolved against the image's passwd and group files.
#[derive(Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (when they apply: no explicit group given).
    pub additional_gids: Option<Vec<u32>>,
    /// The passwd entry's home directory.
    pub home: Option<String>,
}

/// `user[:group]` → uid, gid, additionalGids when they apply, home.
pub fn resolve_user(spec: &str, rootfs: BorrowedFd<'_>) -> Result<ResolvedUser> {
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

    let home = |f: &Vec<&str>| f.get(5).filter(|h| !h.is_empty()).map(|h| h.to_string());
    let (uid, pw_gid, name, home) = if let Ok(uid) = user.parse::<u32>() {
        // A numeric user with a passwd entry is that user: its name brings
        // its supplementary groups and its home.
        let ent = pw.iter().find(|f| f[2].parse::<u32>().ok() == Some(uid));
        (
            uid,
            ent.and_then(|f| f[3].parse::<u32>().ok()),
            ent.map(|f| f[0]),
            ent.and_then(home),
        )
    } else {
        let Some(ent) = pw.iter().find(|f| f[0] == user) else {
            bail!(
                "user {user:?} (image config User {spec:?}) not found in the image's /etc/passwd"
            );
        };
        let uid = ent[2]
            .parse::<u32>()
            .with_context(|| format!("/etc/passwd: bad uid for {user}"))?;
        (uid, ent[3].parse::<u32>().ok(), Some(user), home(ent))
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
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: extra,
        home,
    })
}
