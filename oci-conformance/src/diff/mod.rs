//! `oci-diff`: runc as the oracle. A corpus of configs made by the real
//! tools on this machine (see sources.rs) and field-by-field variations
//! of each (variations.rs) run under runc and under berth with the probe
//! (`oci-checker`) as the process; the two outcomes must be the same:
//! both ran with the same report, or both failed at the same stage for the
//! same reason class. Every difference must be in the table of known ones
//! (known.rs), and every row of that table must still differ.
//!
//! ```text
//! oci-diff --berth PATH [--runc PATH] [--full | --sample N] [--seed S]
//!          [--records DIR] [--callers PATH] [--filter SUBSTR[,SUBSTR]]
//!          [--list] [--keep DIR] [--results FILE] [--verbose]
//! ```
//! `OCI_DIFF_SEED` and `OCI_DIFF_SAMPLE` set the seed and sample size.

pub mod compare;
pub mod corpus;
pub mod known;
pub mod run;
pub mod seccomp;
pub mod sources;
pub mod variations;

use crate::bundle::Template;
use crate::interrupt;
use crate::reaper::{self, Reaper};
use compare::{diff, Diff, Status};
use corpus::{Entry, Scenario};
use known::{Kind, KNOWN};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

const USAGE: &str = "usage: oci-diff --berth PATH [--runc PATH] [--full | --sample N] [--seed S] \
[--records DIR] [--callers PATH] [--filter SUBSTR[,SUBSTR]] [--list] [--keep DIR] [--results FILE] \
[--checker PATH] [--busybox PATH] [--strict] [--verbose]";

/// Default size of the sample `make test` runs.
const DEFAULT_SAMPLE: usize = 150;
/// Configs of every field group a sample holds at least.
const PER_GROUP: usize = 5;
/// Share of the configs runc must run (no vacuous pass).
const MIN_RUNC_SUCCESS: f64 = 0.80;

struct Options {
    berth: PathBuf,
    runc: PathBuf,
    full: bool,
    sample: usize,
    seed: Option<u64>,
    records: PathBuf,
    callers: Option<PathBuf>,
    filter: Vec<String>,
    list: bool,
    keep: Option<PathBuf>,
    results: Option<PathBuf>,
    checker: Option<PathBuf>,
    busybox: PathBuf,
    verbose: bool,
    /// Fail on open berth bugs of the table too.
    strict: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let env_num = |k: &str| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let mut o = Options {
        berth: PathBuf::new(),
        runc: PathBuf::from("/usr/sbin/runc"),
        full: false,
        sample: env_num("OCI_DIFF_SAMPLE")
            .map(|n| n as usize)
            .unwrap_or(DEFAULT_SAMPLE),
        seed: env_num("OCI_DIFF_SEED"),
        records: PathBuf::from("target/callers/records"),
        callers: None,
        filter: Vec::new(),
        list: false,
        keep: None,
        results: None,
        checker: None,
        busybox: PathBuf::from("/bin/busybox"),
        verbose: false,
        strict: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--berth" => o.berth = value()?.into(),
            "--runc" => o.runc = value()?.into(),
            "--full" => o.full = true,
            "--sample" => o.sample = value()?.parse().map_err(|e| format!("--sample: {e}"))?,
            "--seed" => o.seed = Some(value()?.parse().map_err(|e| format!("--seed: {e}"))?),
            "--records" => o.records = value()?.into(),
            "--callers" => o.callers = Some(value()?.into()),
            "--filter" => o.filter = value()?.split(',').map(String::from).collect(),
            "--list" => o.list = true,
            "--keep" => o.keep = Some(value()?.into()),
            "--results" => o.results = Some(value()?.into()),
            "--checker" => o.checker = Some(value()?.into()),
            "--busybox" => o.busybox = value()?.into(),
            "--verbose" | "-v" => o.verbose = true,
            "--strict" => o.strict = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if o.berth.as_os_str().is_empty() && !o.list {
        return Err(format!("--berth is required\n{USAGE}"));
    }
    Ok(o)
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// CLI commands on a container that does not exist.
fn cli_entries() -> Vec<Entry> {
    let cmds: &[(&str, &[&str])] = &[
        ("state", &["state", "@ID@"]),
        ("start", &["start", "@ID@"]),
        ("kill", &["kill", "@ID@", "KILL"]),
        ("delete", &["delete", "@ID@"]),
        ("delete-force", &["delete", "--force", "@ID@"]),
        ("pause", &["pause", "@ID@"]),
        ("resume", &["resume", "@ID@"]),
        ("ps", &["ps", "@ID@"]),
        ("exec", &["exec", "@ID@", "/checker"]),
        ("update", &["update", "--pids-limit", "10", "@ID@"]),
        ("events-stats", &["events", "--stats", "@ID@"]),
    ];
    cmds.iter()
        .map(|(name, args)| {
            let mut e = Entry::new(
                "cli",
                "cli",
                &format!("unknown-container-{name}"),
                json!({}),
            );
            e.scenario = Scenario::Cli(args.iter().map(|s| s.to_string()).collect());
            e
        })
        .collect()
}

/// The whole corpus, in a stable order.
fn build_corpus(work: &Path, o: &Options) -> (Vec<Entry>, Vec<String>) {
    let mut notes = Vec::new();
    let (mut bases, skipped) = sources::tool_specs(work, &o.runc, &o.berth);
    for s in skipped {
        notes.push(format!("source skipped: {s}"));
    }
    let records = absolute(&o.records);
    let from_records = match sources::caller_configs(&records) {
        Ok(b) => {
            notes.push(format!(
                "podman/Docker configs: {} recorded calls from {}",
                b.len(),
                records.display()
            ));
            Ok(b)
        }
        Err(first) => match &o.callers {
            Some(callers) => {
                let out = work.join("records");
                println!(
                    "oci-diff: {first}; recording podman and Docker with {} ...",
                    callers.display()
                );
                sources::produce_records(callers, &o.berth, &o.runc, &out).and_then(|how| {
                    let b = sources::caller_configs(&out)?;
                    notes.push(format!(
                        "podman/Docker configs: {} recorded now by {how}",
                        b.len()
                    ));
                    Ok(b)
                })
            }
            None => Err(format!("{first} (and no --callers to record them)")),
        },
    };
    match from_records {
        Ok(b) => bases.extend(b),
        Err(e) => notes.push(format!("source skipped: podman-run, docker-run: {e}")),
    }
    let host = variations::Host::detect();
    let mut corpus = Vec::new();
    for b in &bases {
        let adapted = sources::adapt(b.config.clone());
        corpus.push(Entry::new(&b.name, "base", "as-is", adapted.clone()));
        if b.varied {
            corpus.extend(variations::variations(&b.name, &adapted, &host));
        }
    }
    corpus.extend(cli_entries());
    let corpus = corpus.into_iter().map(corpus::finish).collect();
    (corpus, notes)
}

/// The result of one config under both runtimes.
struct Compared {
    index: usize,
    runc: compare::Outcome,
    berth: compare::Outcome,
    diffs: Vec<Diff>,
    /// Differences no row explains.
    new: Vec<Diff>,
    /// Rows selecting this entry, and whether each of their aspects differed.
    rows: Vec<(usize, bool)>,
}

/// Checks one entry's differences against the table.
fn judge(
    e: &Entry,
    diffs: &[Diff],
    runc: &compare::Outcome,
    berth: &compare::Outcome,
) -> (Vec<Diff>, Vec<(usize, bool)>) {
    let outcome_level = |a: &str| a == "outcome" || a == "error-class" || a == "exit-code";
    let both_ran = runc.ran() && berth.ran();
    let mut rows = Vec::new();
    let mut explained = vec![false; diffs.len()];
    for (i, k) in KNOWN.iter().enumerate() {
        if !(k.when)(e) {
            continue;
        }
        // A row about the report can only be judged when both ran.
        let about_report = k
            .aspects
            .iter()
            .any(|a| !outcome_level(a.trim_start_matches('?').trim_end_matches('*')));
        if about_report && !both_ran {
            continue;
        }
        let mut all = true;
        for a in k.aspects {
            let hit: Vec<usize> = diffs
                .iter()
                .enumerate()
                .filter(|(_, d)| known::matches(a, &d.aspect))
                .map(|(j, _)| j)
                .collect();
            if hit.is_empty() && !a.starts_with('?') {
                all = false;
            }
            for j in hit {
                explained[j] = true;
            }
        }
        rows.push((i, all));
    }
    let new = diffs
        .iter()
        .zip(explained)
        .filter(|(_, x)| !x)
        .map(|(d, _)| d.clone())
        .collect();
    (new, rows)
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    interrupt::catch();
    let t0 = Instant::now();
    let pid = std::process::id();
    let work = PathBuf::from(format!("/tmp/oci-diff-{pid}"));
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("oci-diff: {}: {e}", work.display());
        return 1;
    }
    let code = run_all(&o, &work, t0);
    for m in run::mounts_under(&work) {
        let _ = std::process::Command::new("umount")
            .args(["-l", &m])
            .status();
    }
    let _ = std::fs::remove_dir_all(&work);
    let leftover = run::mounts_under(&work);
    if !leftover.is_empty() {
        println!("oci-diff: LEFT BEHIND: mounts {leftover:?}");
        return 1;
    }
    println!("oci-diff: {:.0}s in all", t0.elapsed().as_secs_f64());
    code
}

fn run_all(o: &Options, work: &Path, t0: Instant) -> i32 {
    let berth = absolute(&o.berth);
    let runc = absolute(&o.runc);
    let o = Options {
        berth: berth.clone(),
        runc: runc.clone(),
        ..clone_options(o)
    };
    let (corpus, notes) = build_corpus(work, &o);
    let corpus: Vec<Entry> = corpus
        .into_iter()
        .filter(|e| o.filter.is_empty() || o.filter.iter().any(|f| e.name.contains(f.as_str())))
        .collect();
    for n in &notes {
        println!("oci-diff: {n}");
    }
    let seed = o.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000)
            .unwrap_or(1)
    });
    let chosen: Vec<usize> = if o.full || !o.filter.is_empty() {
        (0..corpus.len()).collect()
    } else {
        corpus::sample(&corpus, o.sample, PER_GROUP, seed, &[])
    };
    if o.full || !o.filter.is_empty() {
        println!("oci-diff: whole corpus: {} configs", corpus.len());
    } else {
        println!(
            "oci-diff: sample of {} of {} configs, seed {seed} (reproduce: OCI_DIFF_SEED={seed} OCI_DIFF_SAMPLE={} make test-diff; all: make test-diff DIFF_ARGS=--full)",
            chosen.len(),
            corpus.len(),
            o.sample
        );
    }
    if o.list {
        for i in &chosen {
            println!("{}", corpus[*i].name);
        }
        return 0;
    }
    if !berth.is_file() || !runc.is_file() {
        println!(
            "oci-diff: need both runtimes: {} {}",
            runc.display(),
            berth.display()
        );
        return 1;
    }
    if let Err(e) = reaper::become_subreaper() {
        println!("oci-diff: {e}");
        return 1;
    }
    let checker = o.checker.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("oci-checker")))
    });
    let Some(checker) = checker.filter(|c| c.is_file()) else {
        println!("oci-diff: cannot find oci-checker next to this binary; pass --checker");
        return 1;
    };
    let template = match Template::build(work, &o.busybox, &checker) {
        Ok(t) => t,
        Err(e) => {
            println!("oci-diff: {e}");
            return 1;
        }
    };
    let mut reaper = Reaper::default();
    let cgroup_parent = format!("oci-diff-{}", std::process::id());
    let mut env = run::Env {
        work: work.to_path_buf(),
        template: &template,
        reaper: &mut reaper,
        host_ns: run::ns_links("self"),
        cgroup_parent: cgroup_parent.clone(),
    };
    let rts = [
        run::Rt {
            label: "runc",
            path: runc.clone(),
            root: work.join("state-runc"),
        },
        run::Rt {
            label: "berth",
            path: berth.clone(),
            root: work.join("state-berth"),
        },
    ];
    println!(
        "oci-diff: runc {} vs berth {}",
        runc.display(),
        berth.display()
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let sig = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    println!(
        "oci-diff: our signal mask {}, ignored {} (runtimes inherit them)",
        sig("SigBlk:"),
        sig("SigIgn:")
    );
    let mut results: Vec<Compared> = Vec::new();
    let mut results_file = Vec::new();
    let run_start = Instant::now();
    for (n, &i) in chosen.iter().enumerate() {
        if interrupt::interrupted() {
            println!("oci-diff: interrupted; reporting what ran");
            break;
        }
        let e = &corpus[i];
        let a = run::run_entry(&mut env, e, &rts[0], n);
        let b = run::run_entry(&mut env, e, &rts[1], n);
        let diffs = diff(&a.outcome, &b.outcome);
        let (new, rows) = judge(e, &diffs, &a.outcome, &b.outcome);
        if o.verbose || !new.is_empty() {
            let mark = if !new.is_empty() {
                "NEW"
            } else if diffs.is_empty() {
                "same"
            } else {
                "known"
            };
            println!("[{n:>4}] {mark:<5} {}", e.name);
            for d in &new {
                println!(
                    "         {}: runc {} | berth {}",
                    d.aspect,
                    short(&d.runc, 220),
                    short(&d.berth, 220)
                );
            }
        }
        if let Some(keep) = &o.keep {
            if !new.is_empty() {
                let dir = keep.join(e.name.replace('/', "_"));
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(dir.join("config.json"), e.config.to_string());
                let _ = std::fs::write(dir.join("runc.log"), &a.log);
                let _ = std::fs::write(dir.join("berth.log"), &b.log);
            }
        }
        if o.results.is_some() {
            results_file.push(json!({
                "name": e.name,
                "runc": a.outcome.summary(),
                "berth": b.outcome.summary(),
                "diffs": diffs.iter().map(|d| json!({ "aspect": d.aspect, "runc": d.runc, "berth": d.berth })).collect::<Vec<_>>(),
                "new": new.iter().map(|d| d.aspect.clone()).collect::<Vec<_>>(),
            }));
        }
        results.push(Compared {
            index: i,
            runc: a.outcome,
            berth: b.outcome,
            diffs,
            new,
            rows,
        });
    }
    let run_secs = run_start.elapsed().as_secs_f64();
    run::remove_cgroup_parent(&cgroup_parent);
    if let Some(path) = &o.results {
        let text: Vec<String> = results_file.iter().map(|v| v.to_string()).collect();
        let _ = std::fs::write(path, text.join("\n") + "\n");
    }
    report(&corpus, &results, run_secs, t0, o.full, o.strict)
}

fn clone_options(o: &Options) -> Options {
    Options {
        berth: o.berth.clone(),
        runc: o.runc.clone(),
        full: o.full,
        sample: o.sample,
        seed: o.seed,
        records: o.records.clone(),
        callers: o.callers.clone(),
        filter: o.filter.clone(),
        list: o.list,
        keep: o.keep.clone(),
        results: o.results.clone(),
        checker: o.checker.clone(),
        busybox: o.busybox.clone(),
        verbose: o.verbose,
        strict: o.strict,
    }
}

fn report(
    corpus: &[Entry],
    results: &[Compared],
    run_secs: f64,
    t0: Instant,
    full: bool,
    strict: bool,
) -> i32 {
    let mut fail = Vec::new();
    // Field groups: how many configs of each ran.
    let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
    for g in variations::GROUPS.iter().chain(["base", "cli"].iter()) {
        groups.insert(g, 0);
    }
    for r in results {
        *groups.entry(corpus[r.index].group).or_default() += 1;
    }
    println!("\noci-diff: configs per field group:");
    let line: Vec<String> = groups.iter().map(|(g, n)| format!("{g} {n}")).collect();
    println!("  {}", line.join(", "));
    for g in variations::GROUPS {
        let n = groups.get(g).copied().unwrap_or(0);
        if n == 0 || (full && n < PER_GROUP) {
            fail.push(format!("field group {g} varies in only {n} configs"));
        }
    }
    let sources: std::collections::BTreeSet<&str> = results
        .iter()
        .map(|r| corpus[r.index].source.as_str())
        .collect();
    println!(
        "  sources: {}",
        sources.into_iter().collect::<Vec<_>>().join(", ")
    );
    let total = results.len();
    let runc_ok = results.iter().filter(|r| r.runc.ran()).count();
    let rate = if total == 0 {
        0.0
    } else {
        runc_ok as f64 / total as f64
    };
    println!(
        "oci-diff: runc ran {runc_ok} of {total} configs ({:.1}%; at least {:.0}% required)",
        rate * 100.0,
        MIN_RUNC_SUCCESS * 100.0
    );
    if total == 0 || rate < MIN_RUNC_SUCCESS {
        fail.push(format!("runc ran only {:.1}% of the configs", rate * 100.0));
    }
    let both_fail = results
        .iter()
        .filter(|r| !r.runc.ran() && !r.berth.ran())
        .count();
    let same = results.iter().filter(|r| r.diffs.is_empty()).count();
    let same_fail = results
        .iter()
        .filter(|r| r.diffs.is_empty() && !r.runc.ran())
        .count();
    println!(
        "oci-diff: {same} configs the same ({} ran alike, {same_fail} failed alike at the same stage for the same reason), {both_fail} failed under both",
        same - same_fail
    );
    // The table.
    println!("\noci-diff: known differences (oci-conformance/src/diff/known.rs):");
    println!(
        "  {:<4} {:<20} {:>5} {:>5}  field",
        "row", "kind", "cases", "stale"
    );
    let mut stale_rows = 0;
    let mut unexercised = 0;
    for (i, k) in KNOWN.iter().enumerate() {
        let hits: Vec<(usize, bool)> = results
            .iter()
            .flat_map(|r| {
                r.rows
                    .iter()
                    .filter(|(row, _)| *row == i)
                    .map(move |(_, all)| (r.index, *all))
            })
            .collect();
        let stale: Vec<&str> = hits
            .iter()
            .filter(|(_, all)| !all)
            .map(|(idx, _)| corpus[*idx].name.as_str())
            .collect();
        if hits.is_empty() {
            unexercised += 1;
        }
        println!(
            "  {:<4} {:<20} {:>5} {:>5}  {}",
            i,
            k.kind.as_str(),
            hits.len(),
            stale.len(),
            k.field
        );
        if !stale.is_empty() {
            stale_rows += 1;
            fail.push(format!(
                "known row {i} ({}) no longer differs in: {}",
                k.field,
                stale.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let mut open_bugs = Vec::new();
    for (i, k) in KNOWN.iter().enumerate() {
        let hit = results
            .iter()
            .any(|r| r.rows.iter().any(|(row, _)| *row == i));
        if k.kind == Kind::BerthBug && hit {
            open_bugs.push(format!("row {i}: {}", k.field));
        }
    }
    if !open_bugs.is_empty() {
        println!("\noci-diff: open berth bugs this run met (fixing one makes its row stale):");
        for b in &open_bugs {
            println!("  {b}");
        }
        if strict {
            fail.push(format!("{} open berth bugs (--strict)", open_bugs.len()));
        }
    }
    let kinds = |kind: Kind| KNOWN.iter().filter(|k| k.kind == kind).count();
    println!(
        "  {} rows: {} berth bugs, {} deliberate deviations, {} runc bugs; {unexercised} not exercised by this run, {stale_rows} stale",
        KNOWN.len(),
        kinds(Kind::BerthBug),
        kinds(Kind::Deliberate),
        kinds(Kind::RuncBug)
    );
    let new: Vec<&Compared> = results.iter().filter(|r| !r.new.is_empty()).collect();
    if !new.is_empty() {
        println!("\noci-diff: NEW differences (not in the table):");
        for r in &new {
            let e = &corpus[r.index];
            for d in &r.new {
                println!(
                    "  {} :: {}\n      runc:  {}\n      berth: {}",
                    e.name,
                    d.aspect,
                    short(&d.runc, 300),
                    short(&d.berth, 300)
                );
            }
        }
        fail.push(format!(
            "{} configs with differences not in the table",
            new.len()
        ));
    }
    let status = |r: &Compared| matches!(r.runc.status, Status::Ran { .. });
    let _ = status;
    println!(
        "\noci-diff: {total} configs in {run_secs:.0}s ({:.0}s with setup)",
        t0.elapsed().as_secs_f64()
    );
    if fail.is_empty() {
        println!("oci-diff: PASS");
        0
    } else {
        for f in &fail {
            println!("oci-diff: FAIL: {f}");
        }
        1
    }
}
