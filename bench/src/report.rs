//! Markdown (stdout and RESULTS.md) and JSON.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::bench::{Figure, Series};
use crate::stats::{paired, summarize};

fn f(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn ratio(x: f64, y: f64) -> String {
    if x.is_finite() && y.is_finite() && y > 0.0 {
        format!("{:.2}×", x / y)
    } else {
        "–".into()
    }
}

fn med(s: Option<&Series>, which: &str) -> f64 {
    let Some(s) = s.filter(|s| s.error.is_none()) else {
        return f64::NAN;
    };
    let v = match which {
        "wall" => &s.wall,
        "cpu" => &s.cpu,
        _ => &s.rss,
    };
    summarize(v).median
}

fn minimum(s: Option<&Series>) -> f64 {
    s.filter(|s| s.error.is_none())
        .map(|s| summarize(&s.wall).min)
        .unwrap_or(f64::NAN)
}

/// One figure as a markdown table: min, median, p95 of the wall time, the
/// ratio of medians to the reference, then CPU and peak RSS medians.
pub fn figure_md(fig: &Figure, reference: &str, out: &mut String) {
    let u = fig.unit;
    let n = fig
        .entries
        .iter()
        .map(|e| e.s.wall.len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(out, "### {} ({n} samples each)\n", fig.title);
    let refmed = med(fig.get(reference), "wall");
    // CPU in the figure's own unit (s for the image figures).
    let (cu, cdiv) = if u == "s" { ("s", 1000.0) } else { ("ms", 1.0) };
    if fig.has_usage {
        let _ = writeln!(
            out,
            "| | min {u} | median {u} | p95 {u} | median ÷ {reference}'s | CPU {cu} (median) | peak RSS MB (median) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    } else {
        let _ = writeln!(
            out,
            "| | min {u} | median {u} | p95 {u} | median ÷ {reference}'s |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    }
    for e in &fig.entries {
        let l = e.label.replace('|', "\\|");
        let label = if e.floor { format!("*{l}*") } else { l };
        if let Some(err) = &e.s.error {
            let err = err.replace('|', "\\|").replace('\n', " ");
            let cols = if fig.has_usage { 5 } else { 3 };
            let _ = writeln!(out, "| {label} | {err} |{}", " |".repeat(cols));
            continue;
        }
        let w = summarize(&e.s.wall);
        let r = ratio(w.median, refmed);
        if fig.has_usage {
            let c = summarize(&e.s.cpu);
            let m = summarize(&e.s.rss);
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} | {r} | {} | {} |",
                f(w.min),
                f(w.median),
                f(w.p95),
                f(c.median / cdiv),
                f(m.median)
            );
        } else {
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} | {r} |",
                f(w.min),
                f(w.median),
                f(w.p95)
            );
        }
        if e.s.leftovers > 0 {
            let _ = writeln!(
                out,
                "\n{}: {} samples left processes running (killed at cleanup)\n",
                e.label, e.s.leftovers
            );
        }
    }
    for n in &fig.notes {
        let _ = writeln!(out, "\n{n}");
    }
    out.push('\n');
}

pub struct Target {
    pub name: String,
    pub value: String,
    pub met: Option<bool>,
}

fn t(name: &str, value: String, met: Option<bool>) -> Target {
    Target {
        name: name.into(),
        value,
        met,
    }
}

fn find<'a>(figs: &'a [Figure], key: &str) -> Option<&'a Figure> {
    figs.iter().find(|f| f.key == key)
}

/// The project's targets, each met / not met / n/a (never a failure).
pub fn targets(figs: &[Figure], reference: &str) -> Vec<Target> {
    let mut out = Vec::new();
    let get = |key: &str, label: &str, which: &str| {
        find(figs, key)
            .map(|f| med(f.get(label), which))
            .unwrap_or(f64::NAN)
    };
    let rel = |name: &str, key: &str, peer: &str, which: &str, k: f64| -> Target {
        let b = get(key, reference, which);
        let p = get(key, peer, which);
        if !(b.is_finite() && p.is_finite() && p > 0.0) {
            return t(name, "n/a (no figure)".into(), None);
        }
        // For a time, the same ratio by minimum and by CPU, as a reading
        // aid on a loaded machine (the target is on the medians).
        let extra = if which == "wall" {
            let fig = find(figs, key);
            let bm = minimum(fig.and_then(|f| f.get(reference)));
            let pm = minimum(fig.and_then(|f| f.get(peer)));
            let bc = get(key, reference, "cpu");
            let pc = get(key, peer, "cpu");
            format!(" (by min {}, by CPU {})", ratio(bm, pm), ratio(bc, pc))
        } else {
            String::new()
        };
        t(
            name,
            format!("{} vs {} → {:.2}×{extra}", f(b), f(p), b / p),
            Some(b <= k * p),
        )
    };
    out.push(rel(
        "`run /bin/true` median ≤ 0.6 × crun's",
        "run",
        "crun",
        "wall",
        0.6,
    ));
    out.push(rel(
        "`run /bin/true` median ≤ 0.25 × runc's",
        "run",
        "runc",
        "wall",
        0.25,
    ));
    {
        let fig = find(figs, "run");
        let b = minimum(fig.and_then(|f| f.get(reference)));
        let u = minimum(fig.and_then(|f| f.get("floor: unshare")));
        out.push(if b.is_finite() && u.is_finite() {
            t(
                "`run` min within 2 ms of the unshare floor's min",
                format!("{} − {} = {} ms", f(b), f(u), f(b - u)),
                Some(b - u <= 2.0),
            )
        } else {
            t(
                "`run` min within 2 ms of the unshare floor's min",
                "n/a".into(),
                None,
            )
        });
    }
    for k in ["create", "start", "delete", "exec"] {
        out.push(rel(
            &format!("`{k}` median ≤ 0.7 × crun's"),
            k,
            "crun",
            "wall",
            0.7,
        ));
    }
    out.push(rel(
        "peak RSS of `create` ≤ crun's (medians, MB)",
        "create",
        "crun",
        "rss",
        1.0,
    ));
    out.push(rel(
        "peak RSS of `run` ≤ crun's (medians, MB)",
        "run",
        "crun",
        "rss",
        1.0,
    ));
    out.push(rel(
        "`list` with 100 running median ≤ 0.5 × crun's",
        "list",
        "crun",
        "wall",
        0.5,
    ));
    {
        let b = get("unpack", "berth-bundle", "wall");
        let u = get("unpack", "umoci", "wall");
        let fl = get("unpack", "floor: gzip -dc | tar -x", "wall");
        out.push(if b.is_finite() && u.is_finite() {
            t(
                "berth-bundle unpack ≥ 3 × umoci's speed",
                format!("{} s vs {} s → {:.2}× as fast", f(b), f(u), u / b),
                Some(u / b >= 3.0),
            )
        } else {
            t(
                "berth-bundle unpack ≥ 3 × umoci's speed",
                "n/a".into(),
                None,
            )
        });
        out.push(if b.is_finite() && fl.is_finite() {
            t(
                "berth-bundle unpack time ≤ 1 × the tar floor's",
                format!("{} s vs {} s → {:.2}×", f(b), f(fl), b / fl),
                Some(b <= fl),
            )
        } else {
            t(
                "berth-bundle unpack time ≤ 1 × the tar floor's",
                "n/a".into(),
                None,
            )
        });
        let o = find(figs, "overlay").and_then(|f| f.get("berth-bundle"));
        out.push(match o {
            Some(s) if s.error.is_none() && !s.wall.is_empty() => {
                let m = summarize(&s.wall).median;
                t(
                    "overlay bundle of a cached image < 50 ms (median)",
                    format!("{} ms", f(m)),
                    Some(m < 50.0),
                )
            }
            Some(s) => t(
                "overlay bundle of a cached image < 50 ms (median)",
                s.error.clone().unwrap_or_default(),
                None,
            ),
            None => t(
                "overlay bundle of a cached image < 50 ms (median)",
                "n/a".into(),
                None,
            ),
        });
        let c = get("commit", "berth-bundle", "wall");
        let r = get("commit", "umoci", "wall");
        let ce = find(figs, "commit")
            .and_then(|f| f.get("berth-bundle"))
            .and_then(|s| s.error.clone());
        out.push(if c.is_finite() && r.is_finite() {
            t(
                "commit ≥ 10 × faster than umoci repack (100 changed files)",
                format!("{} ms vs {} ms → {:.1}× as fast", f(c), f(r), r / c),
                Some(r / c >= 10.0),
            )
        } else {
            t(
                "commit ≥ 10 × faster than umoci repack (100 changed files)",
                ce.unwrap_or_else(|| "n/a".into()),
                None,
            )
        });
    }
    out
}

pub fn targets_md(ts: &[Target], out: &mut String) {
    let _ = writeln!(out, "| target | measured | |");
    let _ = writeln!(out, "|---|---|---|");
    for x in ts {
        let m = match x.met {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "n/a",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {m} |",
            x.name,
            x.value.replace('|', "\\|")
        );
    }
    out.push('\n');
}

/// berth against another berth binary measured in the same rounds: the
/// median of per-round ratios with a 95% bootstrap interval, and whether it
/// shows the new one within `tol` of the old.
pub fn comparison_md(
    figs: &[Figure],
    new: &str,
    old: &str,
    tol: f64,
    out: &mut String,
) -> Vec<Value> {
    let mut js = Vec::new();
    let _ = writeln!(
        out,
        "| figure | wall: {new} ÷ {old} (median of per-round ratios) | 95% interval | medians ms | within {:.0}% | CPU: ratio (95% interval) |",
        tol * 100.0
    );
    let _ = writeln!(out, "|---|---:|---|---|---|---|");
    for fig in figs {
        let (Some(a), Some(b)) = (fig.get(new), fig.get(old)) else {
            continue;
        };
        if a.error.is_some()
            || b.error.is_some()
            || a.wall.len() != b.wall.len()
            || a.wall.is_empty()
        {
            continue;
        }
        let p = paired(&a.wall, &b.wall);
        let lim = 1.0 + tol;
        let verdict = if p.n < 10 {
            "too few rounds to tell"
        } else if p.hi <= lim {
            "yes"
        } else if p.lo > lim {
            "**no**"
        } else {
            "inconclusive (interval spans the limit)"
        };
        let c = paired(&a.cpu, &b.cpu);
        let cpu = if fig.has_usage {
            format!("{:.3} ({:.3}–{:.3})", c.median_ratio, c.lo, c.hi)
        } else {
            "–".into()
        };
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3}–{:.3} | {} vs {} | {verdict} | {cpu} |",
            fig.key,
            p.median_ratio,
            p.lo,
            p.hi,
            f(summarize(&a.wall).median),
            f(summarize(&b.wall).median)
        );
        js.push(json!({"figure": fig.key, "new": new, "old": old, "n": p.n, "median_ratio": p.median_ratio,
                       "ci95": [p.lo, p.hi], "within": verdict,
                       "cpu_median_ratio": c.median_ratio, "cpu_ci95": [c.lo, c.hi]}));
    }
    out.push('\n');
    js
}

fn series_json(s: &Series) -> Value {
    let r = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| (x * 1000.0).round() / 1000.0).collect() };
    json!({
        "error": s.error,
        "wall": summarize(&s.wall).json(),
        "cpu_ms": summarize(&s.cpu).json(),
        "peak_rss_mb": summarize(&s.rss).json(),
        "leftover_samples": s.leftovers,
        "samples": { "wall": r(&s.wall), "cpu_ms": r(&s.cpu), "peak_rss_mb": r(&s.rss) },
    })
}

pub fn figures_json(figs: &[Figure]) -> Value {
    Value::Array(
        figs.iter()
            .map(|f| {
                json!({
                    "key": f.key, "title": f.title, "unit": f.unit, "notes": f.notes,
                    "entries": f.entries.iter().map(|e| json!({
                        "label": e.label, "floor": e.floor, "stats": series_json(&e.s)
                    })).collect::<Vec<_>>()
                })
            })
            .collect(),
    )
}

pub fn targets_json(ts: &[Target]) -> Value {
    Value::Array(
        ts.iter()
            .map(|x| json!({"target": x.name, "measured": x.value, "met": x.met}))
            .collect(),
    )
}
