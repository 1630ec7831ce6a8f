//! berth-bench: `make bench` / `make bench-quick`.
//!
//!   berth-bench [--quick] [--runtime LABEL=PATH]... [--no-peers]
//!               [--bundle-tool PATH] [--repo DIR] [--only SECTIONS]
//!               [--results DIR] [--no-results] [--strict]
//!   berth-bench env [--repo DIR] -- CMD [ARGS]...
//!
//! Runtimes: each `--runtime LABEL=PATH` (the first is the reference that
//! ratios are taken to; default `berth=$BERTH` or the release build, plus
//! `berth-old=$BERTH_OLD` when set), then runc and crun from PATH unless
//! `--no-peers` or already given. Sections (`--only`, comma-separated):
//! run, lifecycle, exec, many, image.
//!
//! Everything runs inside one private mount namespace made at start (see
//! env.rs), as root. Output: markdown on stdout; RESULTS.md and
//! results.json in `--results` (default: bench/ for a full run,
//! target/bench/ for --quick).
//!
//! `env` sets up the same namespace, tmpfs and bundles, then runs CMD with
//! BENCH_* variables naming them (bench/profile.sh uses it).
//!
//! It never fails on a figure or a target. `--strict` (the smoke test of
//! `make bench-quick`) makes it exit 3 when berth or berth-bundle could not
//! do what a figure asks (an error, not a time); peers' failures and
//! commands "not available yet" are reported only.

mod bench;
mod env;
mod image;
mod report;
mod sample;
mod stats;
mod text_order;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::json;

use bench::{Ctx, Figure, Plan, Runtime, INTERRUPTED};
use env::Res;

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn install_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a handler that only stores to an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

struct Opts {
    quick: bool,
    runtimes: Vec<(String, String)>,
    peers: bool,
    bundle_tool: Option<String>,
    repo: PathBuf,
    only: Option<Vec<String>>,
    results: Option<PathBuf>,
    write_results: bool,
    strict: bool,
    env_cmd: Option<Vec<String>>,
}

fn usage() -> ! {
    eprintln!(
        "usage: berth-bench [--quick] [--runtime LABEL=PATH]... [--no-peers] [--bundle-tool PATH]\n\
         \x20                  [--repo DIR] [--only run,lifecycle,exec,many,image] [--results DIR] [--no-results] [--strict]\n\
         \x20      berth-bench env [--repo DIR] -- CMD [ARGS]..."
    );
    std::process::exit(2)
}

fn parse() -> Opts {
    let mut o = Opts {
        quick: false,
        runtimes: Vec::new(),
        peers: true,
        bundle_tool: std::env::var("BERTH_BUNDLE").ok().filter(|s| !s.is_empty()),
        repo: PathBuf::from("."),
        only: None,
        results: None,
        write_results: true,
        strict: false,
        env_cmd: None,
    };
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(|s| s.as_str()) == Some("env") {
        args.next();
        o.env_cmd = Some(Vec::new());
    }
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("berth-bench: {name} needs a value");
                usage()
            })
        };
        match a.as_str() {
            "--quick" => o.quick = true,
            "--runtime" => {
                let v = val("--runtime");
                let Some((l, p)) = v.split_once('=') else {
                    eprintln!("berth-bench: --runtime takes LABEL=PATH");
                    usage()
                };
                o.runtimes.push((l.to_string(), p.to_string()));
            }
            "--no-peers" => o.peers = false,
            "--bundle-tool" => o.bundle_tool = Some(val("--bundle-tool")),
            "--repo" => o.repo = PathBuf::from(val("--repo")),
            "--only" => o.only = Some(val("--only").split(',').map(String::from).collect()),
            "--results" => o.results = Some(PathBuf::from(val("--results"))),
            "--no-results" => o.write_results = false,
            "--strict" => o.strict = true,
            "--" if o.env_cmd.is_some() => {
                o.env_cmd = Some(args.by_ref().collect());
                break;
            }
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("berth-bench: unknown argument {a}");
                usage()
            }
        }
    }
    o
}

fn first_line(argv: &[&str]) -> String {
    env::output(argv)
        .map(|s| s.lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_else(|e| e)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("text-order") {
        if let Err(e) = text_order::main(&args[1..]) {
            eprintln!("berth-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let o = parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("berth-bench: must run as root (it runs real containers)");
        std::process::exit(1);
    }
    // The driver is the subreaper of everything it starts: container inits
    // outlive the runtime commands that made them and come to it.
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    install_signals();
    let code = match real_main(&o) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-bench: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn abs(p: &Path) -> PathBuf {
    fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn real_main(o: &Opts) -> Res<i32> {
    let started = Instant::now();
    bench::START.get_or_init(|| started);
    let repo = abs(&o.repo);
    let release = repo.join("target/x86_64-unknown-linux-gnu/release");
    let work = repo.join("target/bench");
    let tmp = work.join(format!("tmp-{}", std::process::id()));

    // Runtimes under test.
    let mut wanted = o.runtimes.clone();
    if wanted.is_empty() {
        let b = std::env::var("BERTH").ok().filter(|s| !s.is_empty());
        wanted.push((
            "berth".into(),
            b.unwrap_or_else(|| release.join("berth").display().to_string()),
        ));
        if let Some(old) = std::env::var("BERTH_OLD").ok().filter(|s| !s.is_empty()) {
            wanted.push(("berth-old".into(), old));
        }
    }
    if o.peers {
        for p in ["runc", "crun"] {
            if !wanted.iter().any(|w| w.0 == p) {
                match env::which(p) {
                    Some(path) => wanted.push((p.into(), path.display().to_string())),
                    None => eprintln!("[bench] {p} is not installed (make deps): left out"),
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (l, _) in &wanted {
        if !seen.insert(l.clone()) || l.is_empty() || l.contains('|') {
            return Err(format!(
                "runtime label {l:?} is empty, repeated or has a '|'"
            ));
        }
    }

    let ns = env::enter_private_namespace()?;
    env::mount_tmpfs(&tmp, "512m")?;
    let result = (|| -> Res<i32> {
        let mut rts = Vec::new();
        for (i, (label, path)) in wanted.iter().enumerate() {
            let p = env::which(path)
                .ok_or_else(|| format!("runtime {label}: no executable at {path}"))?;
            let root = tmp.join(format!("root-{i}"));
            let version = first_line(&[p.to_str().unwrap(), "--version"]);
            rts.push(Runtime {
                label: label.clone(),
                path: p,
                root,
                version,
                run_only: false,
                note: None,
            });
        }
        // The reference berth once more, from a read-only bind of the same
        // binary: berth does not re-exec itself from there, so the
        // difference of the two is the cost of the re-exec.
        let reference = rts[0].label.clone();
        if reference.starts_with("berth") {
            let ro_dir = tmp.join("ro");
            fs::create_dir_all(&ro_dir).map_err(|e| e.to_string())?;
            let ro = ro_dir.join("berth");
            match env::bind_read_only(&rts[0].path, &ro) {
                Ok(()) => rts.push(Runtime {
                    label: format!("{reference} (ro bind: no re-exec)"),
                    path: ro,
                    root: tmp.join("root-ro"),
                    version: rts[0].version.clone(),
                    run_only: true,
                    note: Some("the same binary from a read-only bind mount, where it skips its protective re-exec".into()),
                }),
                Err(e) => eprintln!("[bench] no read-only berth: {e}"),
            }
        }
        let spec_tool = env::which("runc").unwrap_or_else(|| rts[0].path.clone());
        let bundles = env::make_bundles(&tmp, &spec_tool)?;
        let mut ctx = Ctx::new(tmp.clone(), bundles, rts);
        ctx.fake_unified = ns.fake_unified.clone();
        let r = if let Some(cmd) = &o.env_cmd {
            run_env(&ctx, cmd)
        } else {
            run_bench(o, &repo, &work, &release, &mut ctx, &ns, started)
        };
        ctx.cleanup();
        r
    })();
    let killed = env::kill_own_children();
    if killed > 0 {
        eprintln!("[bench] cleanup: killed {killed} leftover processes");
    }
    let removed = env::remove_cgroups(&format!("bb{}-", std::process::id()));
    if !removed.is_empty() {
        eprintln!(
            "[bench] cleanup: removed {} leftover cgroups",
            removed.len()
        );
    }
    env::umount(&tmp);
    let _ = fs::remove_dir(&tmp);
    result
}

fn run_env(ctx: &Ctx, cmd: &[String]) -> Res<i32> {
    if cmd.is_empty() {
        return Err("env: no command".into());
    }
    let mut c = std::process::Command::new(&cmd[0]);
    c.args(&cmd[1..])
        .env("BENCH_TMP", &ctx.tmp)
        .env("BENCH_BUNDLE_TRUE", &ctx.bundles.true_)
        .env("BENCH_BUNDLE_SLEEP", &ctx.bundles.sleep)
        .env("BENCH_PREFIX", &ctx.prefix)
        .env(
            "BENCH_UNSHARE_FLAGS",
            env::unshare_flags(&ctx.bundles.namespaces).join(" "),
        );
    for (i, r) in ctx.rts.iter().enumerate() {
        let key = if r.run_only {
            "RO".to_string()
        } else {
            i.to_string()
        };
        c.env(format!("BENCH_RUNTIME_{key}"), &r.path);
        c.env(format!("BENCH_ROOT_{key}"), &r.root);
        c.env(format!("BENCH_LABEL_{key}"), &r.label);
    }
    let st = c.status().map_err(|e| format!("{}: {e}", cmd[0]))?;
    Ok(st.code().unwrap_or(1))
}

fn run_bench(
    o: &Opts,
    repo: &Path,
    work: &Path,
    release: &Path,
    ctx: &mut Ctx,
    ns: &env::Namespace,
    started: Instant,
) -> Res<i32> {
    let on = |s: &str| o.only.as_ref().is_none_or(|v| v.iter().any(|x| x == s));
    let plan = if o.quick {
        Plan {
            warmup: 2,
            run: 30,
            lifecycle: 15,
            exec: 15,
            many_batches: 1,
            many: 100,
            many_queries: 10,
        }
    } else {
        Plan {
            warmup: 5,
            run: 500,
            lifecycle: 200,
            exec: 200,
            many_batches: 3,
            many: 100,
            many_queries: 50,
        }
    };
    let load0 = env::loadavg();
    let mut figs: Vec<Figure> = Vec::new();
    if on("run") {
        bench::log(&format!("run /bin/true: {} rounds", plan.run));
        figs.push(bench::run_figure(ctx, &plan));
    }
    if on("lifecycle") {
        bench::log(&format!("create/start/delete: {} rounds", plan.lifecycle));
        figs.extend(bench::lifecycle_figures(ctx, &plan));
    }
    if on("exec") {
        bench::log(&format!("exec: {} rounds", plan.exec));
        figs.push(bench::exec_figure(ctx, &plan));
    }
    if on("many") {
        figs.extend(bench::many_figures(ctx, &plan));
    }
    let bb = o
        .bundle_tool
        .clone()
        .map(PathBuf::from)
        .unwrap_or_else(|| release.join("berth-bundle"));
    let mut image_facts = json!(null);
    let mut image_notes = Vec::new();
    let mut image_figs = Vec::new();
    if on("image") && !INTERRUPTED.load(Ordering::Relaxed) {
        let iplan = if o.quick {
            image::ImagePlan {
                size: "quick",
                unpack_rounds: 1,
                overlay_samples: 3,
                changed_files: 100,
            }
        } else {
            image::ImagePlan {
                size: "full",
                unpack_rounds: 4,
                overlay_samples: 20,
                changed_files: 100,
            }
        };
        if !bb.is_file() {
            image_notes.push(format!(
                "no berth-bundle at {} (make build): image figures skipped",
                bb.display()
            ));
        } else {
            let cache = work.join(format!("image-{}", iplan.size));
            // Unpacked trees go to a tmpfs: the figures are the unpackers'
            // own work, not this shared disk's writeback.
            let uw = ctx.tmp.join("image-work");
            let r = env::mount_tmpfs(&uw, "4g").and_then(|_| {
                image::image_figures(&repo.join("bench"), &cache, &uw, &ctx.tmp, &bb, &iplan)
            });
            env::umount(&uw);
            match r {
                Ok(r) => {
                    image_figs = r.figures;
                    image_facts = r.facts;
                    image_notes.extend(r.notes);
                }
                Err(e) => image_notes.push(format!("image figures failed: {e}")),
            }
            let _ = fs::remove_dir(&uw);
        }
    }
    if INTERRUPTED.load(Ordering::Relaxed) {
        return Err("interrupted (containers, processes and mounts cleaned up)".into());
    }
    let load1 = env::loadavg();
    let elapsed = started.elapsed().as_secs_f64();

    // Report.
    let reference = ctx.rts[0].label.clone();
    let host = env::host_facts();
    let umoci_v = env::which("umoci")
        .map(|u| first_line(&[u.to_str().unwrap(), "--version"]))
        .unwrap_or_default();
    let bb_v = if bb.is_file() {
        first_line(&[bb.to_str().unwrap(), "--version"])
    } else {
        "absent".into()
    };
    let git = env::output(&[
        "git",
        "-C",
        repo.to_str().unwrap(),
        "describe",
        "--always",
        "--dirty",
    ])
    .map(|s| s.trim().to_string())
    .unwrap_or_default();
    let date = env::output(&["date", "-u", "+%Y-%m-%d %H:%M UTC"])
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mut md = String::new();
    let mode = if o.quick {
        "quick (`make bench-quick`)"
    } else {
        "full (`make bench`)"
    };
    let _ = writeln!(md, "# berth benchmark\n");
    let _ = writeln!(
        md,
        "{date}, {mode}, {:.0} s. Tree `{git}`. {}; kernel {}; {} cores ({}); {} GiB. \
         Load average {load0} at the start, {load1} at the end.\n",
        elapsed,
        host["os"].as_str().unwrap_or(""),
        host["kernel"].as_str().unwrap_or(""),
        host["cores"],
        host["cpu"].as_str().unwrap_or(""),
        host["memory_gib"]
    );
    let _ = writeln!(md, "| runtime | binary | version |\n|---|---|---|");
    for r in &ctx.rts {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} |",
            r.label,
            r.path.display(),
            r.version
        );
    }
    let _ = writeln!(md, "| berth-bundle | `{}` | {bb_v} |", bb.display());
    let _ = writeln!(md, "| umoci | | {umoci_v} |\n");
    let _ = writeln!(
        md,
        "How it is measured: every runtime runs the same bundles (`{} spec` config, ociVersion 1.1.0, \
         terminal off; rootfs of Debian's busybox-static; namespaces {}), with its own `--root` on one tmpfs, \
         all in one private mount namespace made once for the whole run. Rounds are interleaved (one \
         sample of each participant per round, in the orders of a Williams design: each runs right after each \
         other one equally often). Each sample runs in a fresh \
         child-subreaper process of the driver: wall time is taken around posix_spawn + wait4 of the command; \
         CPU is user+sys of the command's whole process tree (RUSAGE_CHILDREN after reaping everything \
         that came to the sampler, helpers such as `runc init` included); peak RSS is that tree's largest \
         process (ru_maxrss). The driver's own work is outside both. Floors (in italics) are measured the same way.\n",
        ctx.bundles.spec_from,
        ctx.bundles.namespaces.join(", ")
    );
    for n in &ns.notes {
        let _ = writeln!(md, "- {n}");
    }
    for r in &ctx.rts {
        if let Some(n) = &r.note {
            let _ = writeln!(md, "- {}: {n}", r.label);
        }
    }
    let _ = writeln!(
        md,
        "- This machine is shared with other developers: figures are noisy; medians and mins of \
         interleaved rounds are the ones to read, ratios more than absolute times.\n"
    );
    let _ = writeln!(md, "## Targets\n");
    let mut all: Vec<Figure> = Vec::new();
    all.extend(figs);
    all.extend(image_figs);
    let ts = report::targets(&all, &reference);
    report::targets_md(&ts, &mut md);
    let mut comparisons = Vec::new();
    for r in ctx
        .rts
        .iter()
        .skip(1)
        .filter(|r| r.label.starts_with("berth") && !r.run_only)
    {
        let _ = writeln!(md, "## {reference} against {} (same rounds)\n", r.label);
        comparisons.extend(report::comparison_md(
            &all, &reference, &r.label, 0.03, &mut md,
        ));
    }
    let _ = writeln!(md, "## Container runtime\n");
    for fig in all
        .iter()
        .filter(|f| !["unpack", "unpack_rate", "overlay", "commit"].contains(&f.key.as_str()))
    {
        report::figure_md(fig, &reference, &mut md);
    }
    if let (Some(run), Some(ro)) = (
        all.iter().find(|f| f.key == "run"),
        ctx.rts.iter().find(|r| r.run_only).map(|r| r.label.clone()),
    ) {
        if let (Some(a), Some(b)) = (run.get(&reference), run.get(&ro)) {
            if a.error.is_none() && b.error.is_none() && !a.wall.is_empty() {
                let p = stats::paired(&a.wall, &b.wall);
                let da = stats::summarize(&a.wall);
                let db = stats::summarize(&b.wall);
                let _ = writeln!(
                    md,
                    "Re-exec cost: `run` median {} ms from the writable binary vs {} ms from the read-only bind \
                     (min {} vs {} ms); per-round ratio {:.3} (95% {:.3}–{:.3}).\n",
                    report_f(da.median), report_f(db.median), report_f(da.min), report_f(db.min),
                    p.median_ratio, p.lo, p.hi
                );
            }
        }
    }
    let _ = writeln!(md, "## Images\n");
    if !image_facts.is_null() {
        let _ = writeln!(
            md,
            "Image: {} layers (gzip), {} MB compressed, {} MB of file data in {} entries unpacked, \
             built from this machine's /usr by `bench/image.sh` (cached under target/bench). \
             berth-bundle's and umoci's trees agree: {}.\n",
            image_facts["layers"], image_facts["compressed_mb"], image_facts["unpacked_mb"],
            image_facts["entries"], image_facts["trees_agree"]
        );
    }
    for n in &image_notes {
        let _ = writeln!(md, "- {n}\n");
    }
    for fig in all
        .iter()
        .filter(|f| ["unpack", "unpack_rate", "overlay", "commit"].contains(&f.key.as_str()))
    {
        report::figure_md(fig, "berth-bundle", &mut md);
    }
    print!("{md}");

    let js = json!({
        "date": date, "mode": if o.quick { "quick" } else { "full" }, "tree": git, "host": host,
        "elapsed_s": elapsed, "loadavg": [load0, load1],
        "runtimes": ctx.rts.iter().map(|r| json!({"label": r.label, "path": r.path, "version": r.version, "run_only": r.run_only})).collect::<Vec<_>>(),
        "berth_bundle": {"path": bb, "version": bb_v}, "umoci": umoci_v,
        "bundle": {"spec_from": ctx.bundles.spec_from, "namespaces": ctx.bundles.namespaces},
        "notes": ns.notes, "reference": reference,
        "targets": report::targets_json(&ts), "comparisons": comparisons,
        "figures": report::figures_json(&all), "image": image_facts, "image_notes": image_notes,
    });
    if o.write_results {
        let dir = o.results.clone().unwrap_or_else(|| {
            if o.quick {
                work.to_path_buf()
            } else {
                repo.join("bench")
            }
        });
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        fs::write(dir.join("RESULTS.md"), &md).map_err(|e| e.to_string())?;
        fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(&js).unwrap(),
        )
        .map_err(|e| e.to_string())?;
        eprintln!(
            "[bench] wrote {}/RESULTS.md and results.json ({:.0} s)",
            dir.display(),
            elapsed
        );
    }
    let ours = |l: &str| l.starts_with(reference.as_str()) || l == "berth-bundle";
    let failures: Vec<String> = all
        .iter()
        .flat_map(|f| f.entries.iter().map(move |e| (f, e)))
        .filter(|(_, e)| ours(&e.label))
        .filter_map(|(f, e)| e.s.error.as_ref().map(|err| (f, e, err)))
        .filter(|(_, _, err)| !err.starts_with("not available yet") && err.as_str() != "see create")
        .map(|(f, e, err)| format!("{} / {}: {err}", f.key, e.label))
        .chain(
            image_notes
                .iter()
                .filter(|n| n.contains("failed") || n.contains("differ"))
                .cloned(),
        )
        .collect();
    if !failures.is_empty() {
        for x in &failures {
            eprintln!("[bench] FAILED: {x}");
        }
        if o.strict {
            return Ok(3);
        }
    }
    Ok(0)
}

fn report_f(x: f64) -> String {
    format!("{x:.2}")
}
