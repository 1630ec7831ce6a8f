//! Conversions between the runtime-spec's (cgroup v1 shaped) values and
//! cgroup v2 files, and checks shared by both drivers.

use oci_spec::runtime::LinuxResources;

use crate::{bail, Result};

/// `cpu.shares` (2..262144, default 1024) → `cpu.weight` (1..10000,
/// default 100).
///
/// The mapping is quadratic in log2(shares) so that the three fixed points
/// line up: 2 → 1, 1024 → 100 (both defaults), 262144 → 10000. The older
/// linear mapping (`1 + (shares-2)*9999/262142`) put the v1 default at 39,
/// giving containers less CPU than uncontained processes; runtimes moved
/// to this curve for that reason.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262144 {
        return 10000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (10f64.powf(exponent).ceil() as u64).clamp(1, 10000)
}

/// `blkio.weight` (10..1000) → `io.weight` (1..10000), linear.
pub fn blkio_weight_to_io(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// The spec's `memory.swap` is the v1 memory+swap limit; v2's
/// `memory.swap.max` is swap alone. Returns the value for `memory.swap.max`
/// (`None` = leave it, `Some(-1)` = max).
pub fn swap_to_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<i64>> {
    let limit = limit.unwrap_or(0);
    match swap {
        // Memory unlimited and swap unset: unlimit both, as v1 would.
        None | Some(0) if limit == -1 => Ok(Some(-1)),
        None | Some(0) => Ok(None),
        Some(-1) => Ok(Some(-1)),
        Some(s) if s < -1 => bail!("memory.swap {s} is not a valid limit"),
        Some(s) => {
            if limit == 0 || limit == -1 {
                bail!("memory.swap {s} needs a memory limit (memory.swap.max is swap on top of memory.max)");
            }
            if s < limit {
                bail!(
                    "memory.swap {s} is below memory.limit {limit}: memory+swap must be >= memory"
                );
            }
            Ok(Some(s - limit))
        }
    }
}

/// The spec's zero values that mean "not set" (as runc reads them): a zero
/// memory limit, CPU shares, quota or period, realtime values, pids limit or
/// block I/O weight, and empty cpuset strings. Returned as `None` so the
/// drivers leave those files alone instead of writing a 0 the kernel would
/// take literally (a memory limit of 0 bytes).
pub fn normalize(r: &LinuxResources) -> LinuxResources {
    let nz_i = |v: Option<i64>| v.filter(|&x| x != 0);
    let nz_u = |v: Option<u64>| v.filter(|&x| x != 0);
    let mut r = r.clone();
    if let Some(m) = r.memory_mut() {
        let (l, res, sw, k, kt) = (
            m.limit(),
            m.reservation(),
            m.swap(),
            m.kernel(),
            m.kernel_tcp(),
        );
        m.set_limit(nz_i(l));
        m.set_reservation(nz_i(res));
        m.set_swap(nz_i(sw));
        m.set_kernel(nz_i(k));
        m.set_kernel_tcp(nz_i(kt));
    }
    if let Some(c) = r.cpu_mut() {
        let (sh, q, p) = (c.shares(), c.quota(), c.period());
        let (rp, rr) = (c.realtime_period(), c.realtime_runtime());
        let cpus = c.cpus().clone().filter(|s| !s.is_empty());
        let mems = c.mems().clone().filter(|s| !s.is_empty());
        c.set_shares(nz_u(sh));
        c.set_quota(nz_i(q));
        c.set_period(nz_u(p));
        c.set_realtime_period(nz_u(rp));
        c.set_realtime_runtime(nz_i(rr));
        c.set_cpus(cpus);
        c.set_mems(mems);
    }
    if r.pids().as_ref().is_some_and(|p| p.limit() == 0) {
        r.set_pids(None);
    }
    if let Some(b) = r.block_io_mut() {
        let (w, lw) = (b.weight(), b.leaf_weight());
        b.set_weight(w.filter(|&w| w != 0));
        b.set_leaf_weight(lw.filter(|&w| w != 0));
    }
    r
}

/// `-1` (or any negative) is "no limit".
pub fn limit_str_v2(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// v1 limit files take `-1` for unlimited.
pub fn limit_str_v1(v: i64) -> String {
    if v < 0 {
        "-1".to_string()
    } else {
        v.to_string()
    }
}

/// `pids.max` on both versions: non-positive means unlimited (runc).
pub fn pids_max(limit: i64) -> String {
    if limit <= 0 {
        "max".to_string()
    } else {
        limit.to_string()
    }
}

/// v2 `cpu.max`: `"$QUOTA $PERIOD"`, quota `max` when unset or negative.
pub fn cpu_max(quota: Option<i64>, period: u64) -> String {
    match quota {
        Some(q) if q > 0 => format!("{q} {period}"),
        _ => format!("max {period}"),
    }
}

/// Page sizes as the kernel names them in hugetlb file names, e.g. `2MB`,
/// `1GB`; the spec uses the same spelling. Reject anything else before it
/// becomes a path.
pub fn check_page_size(s: &str) -> Result<()> {
    let ok = s.len() >= 3
        && (s.ends_with("KB") || s.ends_with("MB") || s.ends_with("GB"))
        && s[..s.len() - 2].bytes().all(|b| b.is_ascii_digit());
    if !ok {
        bail!("hugepageLimits: page size {s:?} is not of the form <n>KB|MB|GB");
    }
    Ok(())
}

/// `linux.resources.hugepageLimits`, checked before anything is created:
/// every page size well formed and offered by the kernel, and a hugetlb
/// controller to enforce them (a v1 hierarchy, or the cgroup2 tree's; a
/// hybrid host may bind it to either). A limit that cannot be enforced is
/// an error, never a container that runs without it.
pub fn check_hugepage_limits(r: Option<&LinuxResources>) -> Result<()> {
    let Some(limits) = r.and_then(|r| r.hugepage_limits().as_ref()) else {
        return Ok(());
    };
    if limits.is_empty() {
        return Ok(());
    }
    let host = host_page_sizes();
    for (i, l) in limits.iter().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}].pageSize");
        check_page_size(l.page_size()).map_err(|e| e.context(&field))?;
        if !host.iter().any(|s| s == l.page_size()) {
            bail!(
                "{field}: {} is not a huge page size of this kernel (it offers {:?}, /sys/kernel/mm/hugepages)",
                l.page_size(),
                host
            );
        }
    }
    let layout = super::detect::layout()?;
    let in_v2 = layout
        .unified_mount
        .as_deref()
        .and_then(|m| super::detect::v2_controllers(m).ok())
        .is_some_and(|c| c.iter().any(|c| c == "hugetlb"));
    if !layout.v1_mounts.contains_key("hugetlb") && !in_v2 {
        bail!(
            "linux.resources.hugepageLimits: cannot set hugetlb limits: this host has no hugetlb \
             controller (no cgroup v1 hierarchy, not in the cgroup2 tree's cgroup.controllers)"
        );
    }
    Ok(())
}

/// Page sizes the kernel offers, from `/sys/kernel/mm/hugepages`.
pub fn host_page_sizes() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(kb) = n
                .strip_prefix("hugepages-")
                .and_then(|s| s.strip_suffix("kB"))
                .and_then(|s| s.parse::<u64>().ok())
            {
                out.push(page_size_name(kb));
            }
        }
    }
    out.sort();
    out
}

/// 2048 → `2MB`, 1048576 → `1GB`, 64 → `64KB`.
pub fn page_size_name(kb: u64) -> String {
    if kb >= 1 << 20 && kb.is_multiple_of(1 << 20) {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb.is_multiple_of(1 << 10) {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

/// A `linux.resources.unified` key must name one file in the container's
/// own cgroup: `<controller>.<name>`, no path separators.
pub fn check_unified_key(key: &str) -> Result<&str> {
    if key.is_empty() || key.contains('/') || key.starts_with('.') || key.contains('\0') {
        bail!("unified: {key:?} is not a cgroup file name");
    }
    let Some((ctrl, rest)) = key.split_once('.') else {
        bail!("unified: {key:?} is not of the form <controller>.<file>");
    };
    if rest.is_empty() {
        bail!("unified: {key:?} is not of the form <controller>.<file>");
    }
    Ok(ctrl)
}

/// Memory sizes as `runc update` takes them: bytes, or a number with a
/// binary suffix (`k`, `m`, `g`, `t`, `p`, with optional `b`/`ib`), or `-1`.
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let unit = unit.trim();
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => bail!("invalid size {s:?}: unknown unit {unit:?}"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| crate::Error::msg(format!("invalid size {s:?}")))?;
    let v = n * mult as f64;
    if !(0.0..9.2e18).contains(&v) {
        bail!("invalid size {s:?}: out of range");
    }
    Ok(v as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_map_onto_weight_fixed_points() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(shares_to_weight(0), 0);
        assert!(shares_to_weight(512) < 100 && shares_to_weight(512) > 1);
        assert!(shares_to_weight(2048) > 100);
    }

    #[test]
    fn blkio_weight_maps_linearly() {
        assert_eq!(blkio_weight_to_io(10), 1);
        assert_eq!(blkio_weight_to_io(1000), 10000);
        assert_eq!(blkio_weight_to_io(500), 1 + 490 * 9999 / 990);
    }

    #[test]
    fn swap_is_converted_to_swap_only() {
        assert_eq!(swap_to_v2(Some(300), Some(100)).unwrap(), Some(200));
        assert_eq!(swap_to_v2(Some(-1), Some(100)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(None, Some(-1)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(None, Some(100)).unwrap(), None);
        assert!(swap_to_v2(Some(50), Some(100)).is_err());
        assert!(swap_to_v2(Some(50), None).is_err());
    }

    #[test]
    fn cpu_max_formats_quota_and_period() {
        assert_eq!(cpu_max(Some(50000), 100000), "50000 100000");
        assert_eq!(cpu_max(Some(-1), 100000), "max 100000");
        assert_eq!(cpu_max(None, 10000), "max 10000");
    }

    #[test]
    fn page_sizes_are_validated_and_named() {
        assert!(check_page_size("2MB").is_ok());
        assert!(check_page_size("1GB").is_ok());
        assert!(check_page_size("../x").is_err());
        assert!(check_page_size("2M").is_err());
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1048576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
    }

    #[test]
    fn unified_keys_must_be_plain_file_names() {
        assert_eq!(check_unified_key("memory.high").unwrap(), "memory");
        assert!(check_unified_key("../memory.max").is_err());
        assert!(check_unified_key("memory").is_err());
        assert!(check_unified_key("a/b.c").is_err());
    }

    #[test]
    fn zero_values_mean_unset() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":0,"reservation":5},"cpu":{"shares":0,"quota":0,"cpus":""},
                "pids":{"limit":0},"blockIO":{"weight":0}}"#,
        )
        .unwrap();
        let n = normalize(&r);
        let m = n.memory().as_ref().unwrap();
        assert_eq!((m.limit(), m.reservation()), (None, Some(5)));
        let c = n.cpu().as_ref().unwrap();
        assert_eq!(
            (c.shares(), c.quota(), c.cpus().as_deref()),
            (None, None, None)
        );
        assert!(n.pids().is_none());
        assert_eq!(n.block_io().as_ref().unwrap().weight(), None);
    }

    #[test]
    fn sizes_parse_like_runc_update() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("2kb").unwrap(), 2048);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("12q").is_err());
        assert!(parse_size("").is_err());
    }
}
