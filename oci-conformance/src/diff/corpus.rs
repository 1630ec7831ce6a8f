//! The corpus: every base config (sources.rs) adapted to our bundle, plus
//! the field-by-field variations of each (variations.rs), each with the
//! scenario it runs in; and the reproducible sample `make test` runs.

use serde_json::{json, Value};
use std::collections::BTreeMap;

/// How a config is run (the same way under both runtimes).
#[derive(Clone, Debug)]
pub enum Scenario {
    /// `run` in the foreground, stdio to files.
    Run,
    /// `create --console-socket` + `start`: the probe's stdio is a pty.
    Terminal,
    /// `create` + `start` of a holding probe, then `exec`: with `-p
    /// process.json` when `process` is set, then `args` (flags, and the
    /// command unless `-p` is used). `@ID@` in `args` is the container.
    Exec {
        process: Option<Value>,
        args: Vec<String>,
    },
    /// A command on a container that does not exist (`@ID@`).
    Cli(Vec<String>),
}

/// One config of the corpus.
#[derive(Clone, Debug)]
pub struct Entry {
    /// `SOURCE/GROUP/VARIATION` (what `--filter` matches).
    pub name: String,
    pub source: String,
    /// The field group it varies (`base` for an unvaried source).
    pub group: &'static str,
    pub variation: String,
    pub config: Value,
    pub scenario: Scenario,
    /// Run each runtime in a private mount namespace of its own (a config
    /// without a mount namespace makes runc mount in the caller's).
    pub private_mounts: bool,
    /// Start a helper process holding namespaces to join (`@HELPER@`).
    pub helper: bool,
}

impl Entry {
    pub fn new(source: &str, group: &'static str, variation: &str, config: Value) -> Entry {
        Entry {
            name: format!("{source}/{group}/{variation}"),
            source: source.into(),
            group,
            variation: variation.into(),
            config,
            scenario: Scenario::Run,
            private_mounts: false,
            helper: false,
        }
    }
}

/// Probes every config's process runs with: the /dev entries, whether the
/// rootfs is writable, the cgroup files resources end up in.
const STANDARD_PROBES: &[&str] = &[
    "lsl:/dev",
    "write:/",
    "write:/tmp",
    "read:/sys/fs/cgroup/devices/devices.list",
    "read:/sys/fs/cgroup/memory/memory.limit_in_bytes",
    "read:/sys/fs/cgroup/memory/memory.kmem.limit_in_bytes",
    "read:/sys/fs/cgroup/pids/pids.max",
    "read:/sys/fs/cgroup/cpu/cpu.shares",
    "read:/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    "read:/sys/fs/cgroup/cpuset/cpuset.cpus",
    "mkdir:/tmp/probe-dir",
];

/// The probe arguments for a process: the standard probes, one per
/// sysctl, device, mount destination, masked and read-only path, and the
/// startContainer hook's output; modes (`hold`, `exit:N`) stay last.
pub fn probe_args(config: &Value, process: &Value) -> Option<Vec<String>> {
    let args = process["args"].as_array()?;
    let first = args.first()?.as_str()?;
    if first != "/checker" && first != "checker" {
        return None;
    }
    let mut out: Vec<String> = vec![first.to_string()];
    let mut modes = Vec::new();
    for a in args.iter().skip(1).filter_map(|a| a.as_str()) {
        if a == "hold" || a.starts_with("exit:") {
            modes.push(a.to_string());
        } else {
            out.push(a.to_string());
        }
    }
    let mut add = |p: String| {
        if !out.contains(&p) {
            out.push(p);
        }
    };
    for p in STANDARD_PROBES {
        add(p.to_string());
    }
    if let Some(cwd) = process["cwd"].as_str() {
        add(format!("stat:{cwd}"));
    }
    if let Some(s) = config["linux"]["sysctl"].as_object() {
        for k in s.keys() {
            add(format!("read:/proc/sys/{}", k.replace('.', "/")));
        }
    }
    for d in config["linux"]["devices"].as_array().into_iter().flatten() {
        if let Some(p) = d["path"].as_str() {
            add(format!("stat:{p}"));
        }
    }
    for m in config["mounts"].as_array().into_iter().flatten() {
        if let Some(d) = m["destination"].as_str() {
            add(format!("stat:{d}"));
        }
    }
    for key in ["maskedPaths", "readonlyPaths"] {
        for p in config["linux"][key].as_array().into_iter().flatten() {
            if let Some(p) = p.as_str() {
                add(format!("stat:{p}"));
                add(format!("write:{p}"));
            }
        }
    }
    if config["hooks"]["startContainer"].is_array() {
        add("read:/dev/shm/hook-startContainer.out".into());
    }
    out.extend(modes);
    Some(out)
}

/// Fills in the probe arguments of the config's process (and of an exec's
/// process.json).
pub fn finish(mut e: Entry) -> Entry {
    if let Some(args) = probe_args(&e.config, &e.config["process"]) {
        e.config["process"]["args"] = json!(args);
    }
    if let Scenario::Exec {
        process: Some(p), ..
    } = &mut e.scenario
    {
        if let Some(args) = probe_args(&e.config, p) {
            p["args"] = json!(args);
        }
    }
    e
}

/// A small deterministic generator (xorshift64*), so a seed reproduces a
/// sample.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The sample: every unvaried base, then at least `per_group` configs of
/// every field group, then random configs up to `size` (indices into
/// `corpus`, in corpus order). `must` entries (by name) are always in.
pub fn sample(
    corpus: &[Entry],
    size: usize,
    per_group: usize,
    seed: u64,
    must: &[String],
) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut chosen = vec![false; corpus.len()];
    let mut by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in corpus.iter().enumerate() {
        by_group.entry(e.group).or_default().push(i);
        if e.group == "base" || must.contains(&e.name) {
            chosen[i] = true;
        }
    }
    for idx in by_group.values() {
        let mut pool = idx.clone();
        let mut have = pool.iter().filter(|i| chosen[**i]).count();
        while have < per_group && !pool.is_empty() {
            let i = pool.swap_remove(rng.below(pool.len()));
            if !chosen[i] {
                chosen[i] = true;
                have += 1;
            }
        }
    }
    let mut rest: Vec<usize> = (0..corpus.len()).filter(|i| !chosen[*i]).collect();
    let mut count = chosen.iter().filter(|c| **c).count();
    while count < size && !rest.is_empty() {
        let i = rest.swap_remove(rng.below(rest.len()));
        chosen[i] = true;
        count += 1;
    }
    (0..corpus.len()).filter(|i| chosen[*i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        let mut v = Vec::new();
        for (g, n) in [("base", 3), ("caps", 20), ("env", 8), ("hooks", 40)] {
            for i in 0..n {
                v.push(Entry::new("s", g, &format!("v{i}"), json!({})));
            }
        }
        v
    }

    #[test]
    fn sample_is_reproducible_and_covers_every_group() {
        let c = entries();
        let a = sample(&c, 30, 5, 42, &[]);
        assert_eq!(a, sample(&c, 30, 5, 42, &[]));
        assert_ne!(a, sample(&c, 30, 5, 43, &[]));
        assert_eq!(a.len(), 30);
        for g in ["caps", "env", "hooks"] {
            assert!(a.iter().filter(|i| c[**i].group == g).count() >= 5, "{g}");
        }
        assert_eq!(a.iter().filter(|i| c[**i].group == "base").count(), 3);
        let must = vec!["s/hooks/v39".to_string()];
        assert!(sample(&c, 10, 1, 1, &must)
            .iter()
            .any(|i| c[*i].name == "s/hooks/v39"));
    }

    #[test]
    fn probe_args_follow_the_config_and_keep_modes_last() {
        let c = json!({
            "process": { "args": ["/checker", "exit:3"], "cwd": "/tmp" },
            "linux": { "sysctl": { "net.ipv4.ip_forward": "1" },
                       "devices": [{ "path": "/dev/fuse" }] },
            "mounts": [{ "destination": "/mnt" }]
        });
        let a = probe_args(&c, &c["process"]).unwrap();
        assert_eq!(a.first().unwrap(), "/checker");
        assert_eq!(a.last().unwrap(), "exit:3");
        for p in [
            "read:/proc/sys/net/ipv4/ip_forward",
            "stat:/dev/fuse",
            "stat:/mnt",
            "stat:/tmp",
        ] {
            assert!(a.contains(&p.to_string()), "{p}");
        }
        let other = json!({ "args": ["/bin/sh"] });
        assert!(probe_args(&c, &other).is_none());
    }
}
