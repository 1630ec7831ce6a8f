//! `oci-conformance --runtime PATH [--label L] [--private-cgroup2] [--root DIR] [--optional]
//! [--runtime PATH ...] [--filter PATTERN] [--tap|--json] [--keep-failed DIR]
//! [--results FILE] [--gate LABEL] [--list]`

use crate::bundle::Template;
use crate::cases;
use crate::interrupt;
use crate::reaper::{self, Reaper};
use crate::report::{self, RuntimeResults, Tap, Totals};
use crate::runtime::Runtime;
use crate::suite;
use std::path::{Path, PathBuf};

const USAGE: &str = "usage: oci-conformance --runtime PATH [--label LABEL] [--private-cgroup2] \
[--oci-version V] [--root DIR] [--optional] [--runtime PATH ...] [--filter PATTERN[,PATTERN]] [--tap|--json] \
[--keep-failed DIR] [--results FILE] [--gate LABEL] [--checker PATH] [--busybox PATH] [--list]";

struct RuntimeArg {
    runtime: Runtime,
    optional: bool,
}

struct Options {
    runtimes: Vec<RuntimeArg>,
    filter: Option<String>,
    json: bool,
    keep_failed: Option<PathBuf>,
    results: Option<PathBuf>,
    gate: Option<String>,
    checker: Option<PathBuf>,
    busybox: PathBuf,
    list: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        runtimes: Vec::new(),
        filter: None,
        json: false,
        keep_failed: None,
        results: None,
        gate: None,
        checker: None,
        busybox: PathBuf::from("/bin/busybox"),
        list: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let last = |o: &mut Options, name: &str| -> Result<usize, String> {
            if o.runtimes.is_empty() {
                Err(format!("{name} must follow a --runtime"))
            } else {
                Ok(o.runtimes.len() - 1)
            }
        };
        match a.as_str() {
            "--runtime" => o.runtimes.push(RuntimeArg {
                runtime: Runtime::new(value("--runtime")?),
                optional: false,
            }),
            "--label" => {
                let v = value("--label")?;
                let i = last(&mut o, "--label")?;
                o.runtimes[i].runtime.label = v;
            }
            "--oci-version" => {
                let v = value("--oci-version")?;
                let i = last(&mut o, "--oci-version")?;
                o.runtimes[i].runtime.oci_version = v;
            }
            "--root" => {
                // The runtime's state directory (its global --root flag),
                // e.g. where /run is read-only, as in the cgroup v2 guest.
                let v = value("--root")?;
                let i = last(&mut o, "--root")?;
                o.runtimes[i]
                    .runtime
                    .global_args
                    .extend(["--root".into(), v]);
            }
            "--private-cgroup2" => {
                let i = last(&mut o, "--private-cgroup2")?;
                o.runtimes[i].runtime.private_cgroup2 = true;
            }
            "--optional" => {
                let i = last(&mut o, "--optional")?;
                o.runtimes[i].optional = true;
            }
            "--filter" => o.filter = Some(value("--filter")?),
            "--tap" => o.json = false,
            "--json" => o.json = true,
            "--keep-failed" => o.keep_failed = Some(value("--keep-failed")?.into()),
            "--results" => o.results = Some(value("--results")?.into()),
            "--gate" => o.gate = Some(value("--gate")?),
            "--checker" => o.checker = Some(value("--checker")?.into()),
            "--busybox" => o.busybox = value("--busybox")?.into(),
            "--list" => o.list = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if o.runtimes.is_empty() && !o.list {
        return Err(format!("no --runtime given\n{USAGE}"));
    }
    Ok(o)
}

/// The checker next to our own executable (cargo puts both bins together).
fn default_checker() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join("oci-checker");
    p.exists().then_some(p)
}

/// A scratch directory removed on drop.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn make_work() -> Result<WorkDir, String> {
    let base = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let dir = base.join(format!("oci-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    Ok(WorkDir(dir))
}

/// Why an optional runtime cannot be tested, if it cannot.
fn unusable(rt: &Runtime, template: &Template, work: &Path, reaper: &mut Reaper) -> Option<String> {
    if !rt.path.exists() {
        return Some(format!(
            "{} does not exist (not built yet)",
            rt.path.display()
        ));
    }
    let smoke = cases::all()
        .into_iter()
        .find(|c| c.id == "lifecycle.smoke")?;
    let r = suite::run_case(rt, &smoke, template, work, 0, reaper, None);
    if r.failed() > 0 {
        let why = r
            .assertions
            .iter()
            .find(|a| a.passed == Some(false))
            .map(|a| format!("{}: {}", a.name, a.detail))
            .unwrap_or_default();
        return Some(format!("cannot run a basic container yet ({why})"));
    }
    None
}

pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("oci-conformance: {e}");
            return 2;
        }
    };
    let all_cases = cases::all();
    if opts.list {
        for c in all_cases
            .iter()
            .filter(|c| suite::selected(c, opts.filter.as_deref()))
        {
            println!(
                "{}\t{}\t{}\t{}",
                c.id,
                c.section,
                c.level.as_str(),
                c.requirement
            );
        }
        return 0;
    }
    if let Err(e) = reaper::become_subreaper() {
        eprintln!("oci-conformance: {e}");
        return 2;
    }
    let Some(checker) = opts.checker.clone().or_else(default_checker) else {
        eprintln!("oci-conformance: cannot find oci-checker next to this binary; pass --checker");
        return 2;
    };
    let work = match make_work() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("oci-conformance: {e}");
            return 2;
        }
    };
    let template = match Template::build(&work.0, &opts.busybox, &checker) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("oci-conformance: building the rootfs template: {e}");
            return 2;
        }
    };
    interrupt::catch();
    let host = suite::Host::detect();
    let mut reaper = Reaper::default();
    let mut tap = (!opts.json).then(Tap::new);
    let mut all = Vec::new();
    let mut seq = 1;
    for ra in &opts.runtimes {
        let rt = &ra.runtime;
        let mut rr = RuntimeResults {
            label: rt.label.clone(),
            path: rt.path.display().to_string(),
            skipped: None,
            cases: Vec::new(),
        };
        if let Some(t) = &tap {
            t.comment(&format!("runtime: {} ({})", rt.label, rt.path.display()));
        }
        if ra.optional {
            if let Some(why) = unusable(rt, &template, &work.0, &mut reaper) {
                if let Some(t) = &tap {
                    t.comment(&format!("SKIP runtime {}: {why}", rt.label));
                }
                rr.skipped = Some(why);
                all.push(rr);
                continue;
            }
        }
        for case in all_cases
            .iter()
            .filter(|c| suite::selected(c, opts.filter.as_deref()))
        {
            if interrupt::interrupted() {
                if let Some(t) = &tap {
                    t.comment("interrupted: stopped after cleaning up the last case");
                }
                break;
            }
            let result = match suite::host_skip(case, host) {
                Some(why) => suite::CaseResult {
                    id: case.id.into(),
                    section: case.section.into(),
                    level: case.level.as_str().into(),
                    requirement: case.requirement.into(),
                    deviation: case.deviation.map(String::from),
                    assertions: vec![crate::case::Assertion {
                        name: "runs on this host".into(),
                        passed: None,
                        detail: why,
                    }],
                },
                None => suite::run_case(
                    rt,
                    case,
                    &template,
                    &work.0,
                    seq,
                    &mut reaper,
                    opts.keep_failed.as_deref(),
                ),
            };
            seq += 1;
            if let Some(t) = &mut tap {
                t.case(&result);
            }
            rr.cases.push(result);
        }
        if let Some(t) = &tap {
            let tt = rr.totals();
            t.comment(&format!(
                "{}: {} passed, {} failed, {} skipped, {} deliberate deviations",
                rt.label, tt.passed, tt.failed, tt.skipped, tt.deviations
            ));
        }
        all.push(rr);
    }
    suite::remove_cgroup_parent();
    let mut grand = Totals::default();
    for r in &all {
        let t = r.totals();
        grand.passed += t.passed;
        grand.failed += t.failed;
        grand.skipped += t.skipped;
        grand.deviations += t.deviations;
    }
    if let Some(t) = &tap {
        t.finish(grand);
    } else {
        println!("{}", report::to_json(&all));
    }
    if let Some(path) = &opts.results {
        let md = report::results_markdown(&all, &host_description(host));
        if let Err(e) = std::fs::write(path, md) {
            eprintln!("oci-conformance: write {}: {e}", path.display());
            return 2;
        }
    }
    if interrupt::interrupted() {
        return 130;
    }
    i32::from(gate_fails(&all, opts.gate.as_deref()))
}

/// Kernel release and cgroup layout, for the results header.
fn host_description(host: suite::Host) -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cgroups = if host.cgroup_v2 {
        "cgroup v2 (unified)"
    } else {
        "cgroup v1 hybrid (v2 cases skipped)"
    };
    format!("Linux {}, {cgroups}", kernel.trim())
}

/// Whether the run fails: with `--gate LABEL`, when that runtime fails an
/// assertion a peer passes (or any assertion, with no peer); without it,
/// when any runtime fails any assertion.
fn gate_fails(all: &[RuntimeResults], gate: Option<&str>) -> bool {
    let Some(label) = gate else {
        return all.iter().any(|r| r.totals().failed > 0);
    };
    let Some(gated) = all.iter().find(|r| r.label == label && r.skipped.is_none()) else {
        return false;
    };
    let peers: Vec<&RuntimeResults> = all
        .iter()
        .filter(|r| r.label != label && r.skipped.is_none())
        .collect();
    if peers.is_empty() {
        return gated.totals().failed > 0;
    }
    !report::regressions(gated, &peers).is_empty()
}
