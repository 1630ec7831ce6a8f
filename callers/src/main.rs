//! berth-callers: berth under the programs that really call it —
//! containerd's runc shim (through `ctr`), podman's conmon and Docker —
//! each check run with runc and with berth, every runtime call recorded by
//! `callers/record-runtime`. Fails when berth fails a check runc passes.
//! See callers/README.md.

mod bundle_image;
mod checkpoint;
mod cleanup;
mod ctr;
mod daemon;
mod docker;
mod docker_cli;
mod image;
mod podman;
mod proc;
mod record;
mod suite;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub const IMG: &str = "localhost/berth-callers/busybox:1";
/// The same layer; the config says User 65534:65534, WorkingDir /tmp and
/// FROM_IMAGE=yes.
pub const IMG_USER: &str = "localhost/berth-callers/busybox-nobody:1";

pub struct Images {
    pub base: PathBuf,
    pub user: PathBuf,
    /// Made by berth-bundle from `base` (or why not).
    pub bundle: Result<bundle_image::BundleImages, String>,
}

/// What a caller suite is given.
pub struct Env {
    /// Its own temp dir (daemon roots, sockets, bundles).
    pub tmp: PathBuf,
    /// Where its runtime calls are recorded (kept after the run).
    pub records: PathBuf,
    /// The real runtimes: runc, berth.
    pub runtimes: [PathBuf; 2],
    pub images: Arc<Images>,
    /// This run's cgroup name (top level in every hierarchy).
    pub cgroup: String,
    pub full: bool,
    /// `--filter`: only the checks whose name contains it.
    pub filter: Option<String>,
    pub progress: Arc<dyn Fn(&str) + Send + Sync>,
}

struct Args {
    berth: PathBuf,
    /// berth-bundle (default: beside berth).
    bundle_tool: Option<PathBuf>,
    runc: PathBuf,
    only: Vec<String>,
    full: bool,
    filter: Option<String>,
    records: PathBuf,
}

const USAGE: &str = "usage: berth-callers --berth PATH [--runc PATH] [--berth-bundle PATH] [--only ctr,podman,docker] [--filter WORD] [--full] [--records DIR]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        berth: PathBuf::new(),
        bundle_tool: None,
        runc: PathBuf::from("/usr/sbin/runc"),
        only: vec!["ctr".into(), "podman".into(), "docker".into()],
        full: false,
        filter: None,
        records: PathBuf::from("target/callers/records"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().ok_or(format!("{x} needs a value\n{USAGE}"));
        match x.as_str() {
            "--berth" => a.berth = PathBuf::from(val()?),
            "--runc" => a.runc = PathBuf::from(val()?),
            "--berth-bundle" => a.bundle_tool = Some(PathBuf::from(val()?)),
            "--only" => a.only = val()?.split(',').map(str::to_string).collect(),
            "--records" => a.records = PathBuf::from(val()?),
            "--filter" => a.filter = Some(val()?),
            "--full" => a.full = true,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {x}\n{USAGE}")),
        }
    }
    if a.berth.as_os_str().is_empty() {
        return Err(USAGE.into());
    }
    for o in &a.only {
        if !["ctr", "podman", "docker"].contains(&o.as_str()) {
            return Err(format!("unknown caller {o}\n{USAGE}"));
        }
    }
    Ok(a)
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// SIGINT, SIGTERM and SIGHUP go to one thread, which cleans up and exits.
fn handle_signals() {
    // SAFETY: sigset manipulation on a local set, then blocking it for this
    // thread (and the threads it spawns after this point).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let set = set;
        std::thread::spawn(move || {
            let mut sig = 0;
            libc::sigwait(&set, &mut sig);
            eprintln!("\nberth-callers: signal {sig}: stopping daemons and cleaning up");
            for n in cleanup::cleanup() {
                eprintln!("  {n}");
            }
            std::process::exit(128 + sig);
        });
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    handle_signals();
    proc::init();
    let t0 = Instant::now();
    let code = run(&args);
    let notes = cleanup::cleanup();
    let mut code = code;
    if !notes.is_empty() {
        println!("\ncleanup:");
        for n in &notes {
            println!("  - {n}");
        }
    }
    // What must not be left: this run's mounts, cgroups, processes.
    let leaks = leftovers();
    if !leaks.is_empty() {
        println!("\nLEFT BEHIND after cleanup:");
        for l in &leaks {
            println!("  - {l}");
        }
        code = 1;
    }
    println!("berth-callers: {:.0}s in all", t0.elapsed().as_secs_f64());
    std::process::exit(code);
}

fn leftovers() -> Vec<String> {
    let me = std::process::id();
    let name = format!("berth-callers-{me}");
    let mut out = Vec::new();
    for (p, _) in cleanup::mounts() {
        if p.to_string_lossy().contains(&name) {
            out.push(format!("mount {}", p.display()));
        }
    }
    for mp in cleanup::cgroup_mounts() {
        if mp.join(&name).exists() {
            out.push(format!("cgroup {}", mp.join(&name).display()));
        }
    }
    for (pid, _, comm) in cleanup::descendants() {
        out.push(format!("process {pid} ({comm})"));
    }
    out
}

fn run(args: &Args) -> i32 {
    let me = std::process::id();
    let name = format!("berth-callers-{me}");
    let tmp = PathBuf::from("/tmp").join(&name);
    cleanup::add_root(&tmp);
    cleanup::add_cgroup(&name);
    if let Err(e) = std::fs::create_dir_all(&tmp) {
        eprintln!("berth-callers: {}: {e}", tmp.display());
        return 1;
    }
    let runtimes = [absolute(&args.runc), absolute(&args.berth)];
    for r in &runtimes {
        if !r.is_file() {
            eprintln!("berth-callers: no runtime at {} (make build?)", r.display());
            return 1;
        }
    }
    let records = absolute(&args.records);
    let _ = std::fs::remove_dir_all(&records);
    if let Err(e) = std::fs::create_dir_all(&records) {
        eprintln!("berth-callers: {}: {e}", records.display());
        return 1;
    }
    let records = absolute(&records);
    println!(
        "berth-callers: runc {} vs berth {}; records in {}",
        runtimes[0].display(),
        runtimes[1].display(),
        records.display()
    );
    for r in &runtimes {
        let o = proc::Cmd::new(&[r.to_str().unwrap(), "--version"])
            .timeout(10)
            .run();
        println!("  {}: {}", r.display(), o.stdout.trim().replace('\n', "; "));
    }
    // The images: written by hand, loaded by every caller.
    let base = tmp.join("busybox.tar");
    let user = tmp.join("busybox-nobody.tar");
    let layer = match image::layer(Path::new("/bin/busybox")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("berth-callers: /bin/busybox (busybox-static, make deps): {e}");
            return 1;
        }
    };
    let specs = [
        (
            &base,
            image::ImageSpec {
                tag: IMG,
                user: None,
                workdir: None,
                env: &[],
            },
        ),
        (
            &user,
            image::ImageSpec {
                tag: IMG_USER,
                user: Some("65534:65534"),
                workdir: Some("/tmp"),
                env: &["FROM_IMAGE=yes"],
            },
        ),
    ];
    for (path, spec) in specs {
        if let Err(e) = image::write_archive(path, &layer, &spec) {
            eprintln!("berth-callers: writing {}: {e}", path.display());
            return 1;
        }
    }
    // The same image through berth-bundle (unpack, change, commit, export).
    let tool = args.bundle_tool.clone().unwrap_or_else(|| {
        runtimes[1]
            .parent()
            .unwrap_or(Path::new("."))
            .join("berth-bundle")
    });
    let bundle = if suite::selects(&args.filter, "berth-bundle") {
        bundle_image::build(&absolute(&tool), &tmp.join("berth-bundle"), &base)
    } else {
        Err("not made: no berth-bundle check is selected (--filter)".to_string())
    };
    match &bundle {
        Ok(_) => println!("  berth-bundle images: {}", tool.display()),
        Err(e) => println!("  berth-bundle images could not be made: {e}"),
    }
    let images = Arc::new(Images { base, user, bundle });
    let out_lock = Arc::new(Mutex::new(()));
    let progress: Arc<dyn Fn(&str) + Send + Sync> = {
        let l = out_lock.clone();
        Arc::new(move |s: &str| {
            let _g = l.lock().unwrap();
            println!("{s}");
        })
    };
    // The callers run at once, each with its own daemons.
    let mut handles = Vec::new();
    for caller in &args.only {
        let env = Env {
            tmp: tmp.join(caller),
            records: records.join(caller),
            runtimes: runtimes.clone(),
            images: images.clone(),
            cgroup: name.clone(),
            full: args.full,
            filter: args.filter.clone(),
            progress: progress.clone(),
        };
        let caller = caller.clone();
        handles.push(std::thread::spawn(move || match caller.as_str() {
            "ctr" => ctr::suite(env),
            "podman" => podman::suite(env),
            _ => docker::suite(env),
        }));
    }
    let reports: Vec<suite::Report> = handles
        .into_iter()
        .map(|h| h.join().expect("suite thread"))
        .collect();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut setup_failed = false;
    for r in &reports {
        print!("{}", suite::render(r));
        setup_failed |= r.setup_error.is_some();
        skipped += r.skipped.len();
        for row in &r.rows {
            if row.res[1].ok {
                passed += 1;
            } else if row.gate_fails() {
                failed += 1;
            } else {
                skipped += 1;
            }
        }
    }
    write_index(&records, &reports);
    println!(
        "\nberth-callers: {} checks per runtime; berth fails {} that runc passes; {} fail with runc too or cannot run here (not counted)",
        passed + failed + skipped,
        failed,
        skipped
    );
    println!("callers: {passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 || setup_failed {
        1
    } else {
        0
    }
}

/// records/INDEX.tsv: one line per recorded call (caller, runtime, check,
/// command, exit, dir), for whoever reuses the recorded configs.
fn write_index(records: &Path, reports: &[suite::Report]) {
    let _ = reports;
    let mut lines = vec!["caller\truntime\tcheck\tcommand\texit\tdir\targv".to_string()];
    let Ok(callers) = std::fs::read_dir(records) else {
        return;
    };
    let mut callers: Vec<_> = callers.flatten().filter(|e| e.path().is_dir()).collect();
    callers.sort_by_key(|e| e.file_name());
    for c in callers {
        for rt in suite::Rt::ALL {
            for call in record::read_calls(&c.path().join(rt.name())) {
                lines.push(format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    c.file_name().to_string_lossy(),
                    rt.name(),
                    call.tag,
                    call.cmd,
                    call.exit.map(|e| e.to_string()).unwrap_or_default(),
                    call.dir
                        .strip_prefix(records)
                        .unwrap_or(&call.dir)
                        .display(),
                    call.argv.join(" ")
                ));
            }
        }
    }
    let _ = std::fs::write(records.join("INDEX.tsv"), lines.join("\n") + "\n");
}
