//! The runtime figures: run, create/start/delete, exec, 100 running
//! containers (state, list), each in interleaved rounds.
//!
//! Interleaving: every round takes one sample of each participant, so a
//! burst of load from the other users of this machine hits all of them
//! alike. The order within a round follows a Williams design
//! (stats::order): each participant runs right after each other one
//! equally often, so what a command leaves behind for the next (a cgroup
//! v1 attach is cheap right after another one, page cache, network
//! namespaces still being torn down) falls on each in turn.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::env::{Bundles, Res};
use crate::sample::{self, Cmd, Reap, Sample};

pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub struct Runtime {
    pub label: String,
    pub path: PathBuf,
    pub root: PathBuf,
    pub version: String,
    /// Only in the `run` figure (the berth binary from a read-only bind).
    pub run_only: bool,
    pub note: Option<String>,
}

#[derive(Default, Clone)]
pub struct Series {
    pub wall: Vec<f64>,
    pub cpu: Vec<f64>,
    pub rss: Vec<f64>,
    pub error: Option<String>,
    pub leftovers: u32,
}

impl Series {
    pub fn push(&mut self, s: &Sample) {
        self.wall.push(s.wall_ms());
        self.cpu.push(s.cpu_ms());
        self.rss.push(s.rss_mb());
        self.leftovers += s.leftovers.max(0) as u32;
    }
}

pub struct Entry {
    pub label: String,
    pub floor: bool,
    pub s: Series,
}

pub struct Figure {
    pub key: String,
    pub title: String,
    /// Unit of `wall` ("ms", or "s" for totals).
    pub unit: &'static str,
    /// Whether cpu/rss columns mean anything for this figure.
    pub has_usage: bool,
    pub entries: Vec<Entry>,
    pub notes: Vec<String>,
}

impl Figure {
    pub fn new(key: &str, title: &str, unit: &'static str, has_usage: bool) -> Figure {
        Figure {
            key: key.into(),
            title: title.into(),
            unit,
            has_usage,
            entries: Vec::new(),
            notes: Vec::new(),
        }
    }
    fn entry(&mut self, label: &str, floor: bool) -> usize {
        if let Some(i) = self.entries.iter().position(|e| e.label == label) {
            return i;
        }
        self.entries.push(Entry {
            label: label.into(),
            floor,
            s: Series::default(),
        });
        self.entries.len() - 1
    }
    pub fn get(&self, label: &str) -> Option<&Series> {
        self.entries.iter().find(|e| e.label == label).map(|e| &e.s)
    }
}

/// Rounds of each section.
#[derive(Clone, Copy)]
pub struct Plan {
    pub warmup: usize,
    pub run: usize,
    pub lifecycle: usize,
    pub exec: usize,
    pub many_batches: usize,
    pub many: usize,
    pub many_queries: usize,
}

struct Live {
    rt: usize,
    id: String,
}

pub struct Ctx {
    pub tmp: PathBuf,
    pub env: Vec<String>,
    pub prefix: String,
    counter: u64,
    pub bundles: Bundles,
    pub rts: Vec<Runtime>,
    live: Vec<Live>,
    out: String,
    err: String,
    /// The tmpfs standing in for cgroup2 (see env.rs), swept between rounds.
    pub fake_unified: Option<PathBuf>,
    /// Cleaning up: commands run even after an interrupt.
    cleaning: bool,
}

pub static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

pub fn log(msg: &str) {
    let t = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64();
    eprintln!("[bench {t:6.1}s] {msg}");
}

impl Ctx {
    pub fn new(tmp: PathBuf, bundles: Bundles, rts: Vec<Runtime>) -> Ctx {
        let out = tmp.join("stdout").display().to_string();
        let err = tmp.join("stderr").display().to_string();
        Ctx {
            tmp,
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            prefix: format!("bb{}-", std::process::id()),
            counter: 0,
            bundles,
            rts,
            live: Vec::new(),
            out,
            err,
            fake_unified: None,
            cleaning: false,
        }
    }

    /// Remove what a runtime left in the stand-in cgroup2 tmpfs for
    /// containers that no longer exist (untimed, between rounds), so it
    /// does not grow over the run.
    pub fn sweep(&self) {
        let Some(dir) = &self.fake_unified else {
            return;
        };
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&self.prefix) && !self.live.iter().any(|l| l.id == name) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    fn new_id(&mut self, rt: usize) -> String {
        self.counter += 1;
        format!("{}{}-{}", self.prefix, rt, self.counter)
    }

    fn rt_argv(&self, rt: usize, args: &[&str]) -> Vec<String> {
        let r = &self.rts[rt];
        let mut v = vec![
            r.path.display().to_string(),
            "--root".into(),
            r.root.display().to_string(),
        ];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// One sample; an error if the command failed.
    fn sample(&self, argv: Vec<String>, reap: Reap) -> Res<Sample> {
        self.sample_pf(argv, reap, None)
    }

    /// One sample of a command that writes a container init's PID to
    /// `pid_file` (Reap::Init).
    fn sample_pf(&self, argv: Vec<String>, reap: Reap, pid_file: Option<&str>) -> Res<Sample> {
        if INTERRUPTED.load(Ordering::Relaxed) && !self.cleaning {
            return Err("interrupted".into());
        }
        let mut cmd = Cmd::new(&argv, &self.env, &self.out, &self.err);
        if let Some(p) = pid_file {
            cmd = cmd.with_pid_file(p);
        }
        let s = sample::sample(&cmd, reap);
        // Anything that died outside a sampler (a helper that outlived
        // one) is the driver's child: reap it now.
        sample::reap_zombies();
        if !s.ok() {
            return Err(format!(
                "`{}`: {}",
                cmd.display,
                sample::describe_failure(&s, &self.err)
            ));
        }
        Ok(s)
    }

    fn track(&mut self, rt: usize, id: &str) {
        self.live.push(Live {
            rt,
            id: id.to_string(),
        });
    }

    fn untrack(&mut self, rt: usize, id: &str) {
        self.live.retain(|l| !(l.rt == rt && l.id == id));
    }

    fn pid_file(&self, id: &str) -> PathBuf {
        self.tmp.join(format!("{id}.pid"))
    }

    /// Kill a container's init by PID (it is the driver's child: the
    /// runtime that made it has exited and the driver is a subreaper) and
    /// reap it; returns its rusage. Falls back to the runtime's `kill`.
    fn stop_init(&mut self, rt: usize, id: &str) -> Option<Sample> {
        let pid: Option<i32> = fs::read_to_string(self.pid_file(id))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let _ = fs::remove_file(self.pid_file(id));
        if let Some(pid) = pid.filter(|p| *p > 1) {
            if sample::is_own_child(pid) {
                // SAFETY: our child, so the PID cannot have been reused.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return sample::reap_own(pid);
            }
        }
        let _ = self.sample(self.rt_argv(rt, &["kill", id, "KILL"]), Reap::All);
        for _ in 0..250 {
            sample::reap_zombies();
            if pid.is_none_or(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// Remove a container whatever its state (untimed).
    fn force_delete(&mut self, rt: usize, id: &str) {
        let _ = self.stop_init(rt, id);
        let _ = self.sample(self.rt_argv(rt, &["delete", "--force", id]), Reap::All);
        self.untrack(rt, id);
    }

    /// Every container the benchmark made and did not delete, then anything
    /// a runtime still lists in its (private) state root.
    pub fn cleanup(&mut self) {
        self.cleaning = true;
        let live: Vec<(usize, String)> = self.live.iter().map(|l| (l.rt, l.id.clone())).collect();
        for (rt, id) in live {
            self.force_delete(rt, &id);
        }
        for rt in 0..self.rts.len() {
            if !self.rts[rt].root.exists() {
                continue;
            }
            let argv = self.rt_argv(rt, &["list", "-q"]);
            let a: Vec<&str> = argv.iter().map(|s| s.as_str()).collect();
            if let Ok(out) = crate::env::output(&a) {
                for id in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    let id = id.to_string();
                    let _ = self.sample(self.rt_argv(rt, &["delete", "--force", &id]), Reap::All);
                }
            }
        }
    }

    fn order(&self, n: usize, round: usize) -> Vec<usize> {
        crate::stats::order(n, round)
    }

    fn bench_rts(&self) -> Vec<usize> {
        (0..self.rts.len())
            .filter(|&i| !self.rts[i].run_only)
            .collect()
    }
}

fn progress(section: &str, round: usize, total: usize) {
    if total >= 10 && (round + 1).is_multiple_of((total / 5).max(1)) {
        log(&format!("{section}: round {}/{total}", round + 1));
    }
}

/// 1 + 7: `run` of /bin/true in the foreground (create, start, wait,
/// delete), next to the floors: unshare(1) making the config's namespaces
/// and exec'ing the same /bin/true, and a bare spawn of it.
pub fn run_figure(ctx: &mut Ctx, plan: &Plan) -> Figure {
    let mut fig = Figure::new(
        "run",
        "run /bin/true (foreground, full lifecycle)",
        "ms",
        true,
    );
    enum P {
        Rt(usize),
        Floor(Vec<String>),
    }
    let mut parts: Vec<(String, P)> = Vec::new();
    for i in 0..ctx.rts.len() {
        parts.push((ctx.rts[i].label.clone(), P::Rt(i)));
    }
    let t = ctx
        .bundles
        .rootfs_true
        .join("bin/true")
        .display()
        .to_string();
    if let Some(u) = crate::env::which("unshare") {
        let mut a = vec![u.display().to_string()];
        a.extend(crate::env::unshare_flags(&ctx.bundles.namespaces));
        a.push(t.clone());
        fig.notes.push(format!(
            "floor unshare: `unshare {} …/bin/true`",
            a[1..a.len() - 1].join(" ")
        ));
        parts.push(("floor: unshare".into(), P::Floor(a)));
    }
    parts.push(("floor: fork+exec".into(), P::Floor(vec![t])));
    for (l, p) in &parts {
        fig.entry(l, matches!(p, P::Floor(_)));
    }
    let bundle = ctx.bundles.true_.display().to_string();
    let total = plan.warmup + plan.run;
    for round in 0..total {
        for j in ctx.order(parts.len(), round) {
            if fig.entries[j].s.error.is_some() {
                continue;
            }
            let res = match &parts[j].1 {
                P::Rt(rt) => {
                    let rt = *rt;
                    let id = ctx.new_id(rt);
                    ctx.track(rt, &id);
                    let r = ctx.sample(
                        ctx.rt_argv(rt, &["run", "--bundle", &bundle, &id]),
                        Reap::All,
                    );
                    if r.is_ok() {
                        ctx.untrack(rt, &id);
                    } else {
                        ctx.force_delete(rt, &id);
                    }
                    r
                }
                P::Floor(a) => ctx.sample(a.clone(), Reap::All),
            };
            match res {
                Ok(s) if round >= plan.warmup => fig.entries[j].s.push(&s),
                Ok(_) => {}
                Err(e) => fig.entries[j].s.error = Some(e),
            }
        }
        ctx.sweep();
        progress("run", round, total);
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
    }
    fig
}

/// 2: `create`, `start` and `delete` of a `sleep` container, each its own
/// sample. Between start and delete the driver SIGKILLs the container's
/// init by PID and reaps it (untimed), so `delete` is of a stopped
/// container, as a shim deletes one. The init's own rusage is added to
/// `create`: what a runtime does in the init before `start` (rootfs, mounts,
/// namespaces) is create's work, and its peak RSS is part of create's tree.
pub fn lifecycle_figures(ctx: &mut Ctx, plan: &Plan) -> Vec<Figure> {
    let mut create = Figure::new(
        "create",
        "create (sleep container; incl. the container init's setup)",
        "ms",
        true,
    );
    let mut start = Figure::new("start", "start", "ms", true);
    let mut delete = Figure::new("delete", "delete (stopped container)", "ms", true);
    create.notes.push(
        "create's CPU and peak RSS include the container init (reaped by the benchmark after start), \
         whose post-start cost is one execve of busybox sleep for every runtime"
            .into(),
    );
    let rts = ctx.bench_rts();
    for &rt in &rts {
        let l = ctx.rts[rt].label.clone();
        create.entry(&l, false);
        start.entry(&l, false);
        delete.entry(&l, false);
    }
    let bundle = ctx.bundles.sleep.display().to_string();
    let total = plan.warmup + plan.lifecycle;
    for round in 0..total {
        for j in ctx.order(rts.len(), round) {
            let rt = rts[j];
            if create.entries[j].s.error.is_some() {
                continue;
            }
            let keep = round >= plan.warmup;
            let id = ctx.new_id(rt);
            let pidf = ctx.pid_file(&id).display().to_string();
            ctx.track(rt, &id);
            let c = ctx.sample_pf(
                ctx.rt_argv(
                    rt,
                    &["create", "--bundle", &bundle, "--pid-file", &pidf, &id],
                ),
                Reap::Init,
                Some(&pidf),
            );
            let c = match c {
                Ok(s) => s,
                Err(e) => {
                    create.entries[j].s.error = Some(e);
                    ctx.force_delete(rt, &id);
                    continue;
                }
            };
            let s = match ctx.sample(ctx.rt_argv(rt, &["start", &id]), Reap::All) {
                Ok(s) => s,
                Err(e) => {
                    create.entries[j].s.error = Some(format!("start failed: {e}"));
                    ctx.force_delete(rt, &id);
                    continue;
                }
            };
            let init = ctx.stop_init(rt, &id);
            let d = ctx.sample(ctx.rt_argv(rt, &["delete", &id]), Reap::All);
            match d {
                Ok(d) => {
                    ctx.untrack(rt, &id);
                    if keep {
                        let mut cs = c;
                        if let Some(i) = init {
                            cs.user_us += i.user_us;
                            cs.sys_us += i.sys_us;
                            cs.maxrss_kb = cs.maxrss_kb.max(i.maxrss_kb);
                        }
                        create.entries[j].s.push(&cs);
                        start.entries[j].s.push(&s);
                        delete.entries[j].s.push(&d);
                    }
                }
                Err(e) => {
                    create.entries[j].s.error = Some(format!("delete failed: {e}"));
                    ctx.force_delete(rt, &id);
                }
            }
        }
        ctx.sweep();
        progress("create/start/delete", round, total);
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
    }
    for f in [&mut start, &mut delete] {
        for (j, e) in create.entries.iter().enumerate() {
            if e.s.error.is_some() {
                f.entries[j].s.error = Some("see create".into());
            }
        }
    }
    vec![create, start, delete]
}

/// Create and start a `sleep` container (untimed); its init is tracked.
fn start_sleeper(ctx: &mut Ctx, rt: usize) -> Res<String> {
    let id = ctx.new_id(rt);
    let pidf = ctx.pid_file(&id).display().to_string();
    let bundle = ctx.bundles.sleep.display().to_string();
    ctx.track(rt, &id);
    ctx.sample_pf(
        ctx.rt_argv(
            rt,
            &["create", "--bundle", &bundle, "--pid-file", &pidf, &id],
        ),
        Reap::Init,
        Some(&pidf),
    )
    .and_then(|_| ctx.sample(ctx.rt_argv(rt, &["start", &id]), Reap::All))
    .map(|_| id.clone())
    .inspect_err(|_| ctx.force_delete(rt, &id))
}

fn stop_and_delete(ctx: &mut Ctx, rt: usize, id: &str) {
    let _ = ctx.stop_init(rt, id);
    if ctx
        .sample(ctx.rt_argv(rt, &["delete", id]), Reap::All)
        .is_ok()
    {
        ctx.untrack(rt, id);
    } else {
        ctx.force_delete(rt, id);
    }
}

/// 3: `exec` of /bin/true (foreground) into a running container, one per
/// runtime, made before the rounds.
pub fn exec_figure(ctx: &mut Ctx, plan: &Plan) -> Figure {
    let mut fig = Figure::new(
        "exec",
        "exec /bin/true into a running container",
        "ms",
        true,
    );
    let rts = ctx.bench_rts();
    let mut targets: Vec<Option<String>> = Vec::new();
    for (j, &rt) in rts.iter().enumerate() {
        fig.entry(&ctx.rts[rt].label.clone(), false);
        match start_sleeper(ctx, rt) {
            Ok(id) => targets.push(Some(id)),
            Err(e) => {
                fig.entries[j].s.error = Some(e);
                targets.push(None);
            }
        }
    }
    let total = plan.warmup + plan.exec;
    for round in 0..total {
        for j in ctx.order(rts.len(), round) {
            let Some(id) = targets[j].clone() else {
                continue;
            };
            if fig.entries[j].s.error.is_some() {
                continue;
            }
            match ctx.sample(ctx.rt_argv(rts[j], &["exec", &id, "/bin/true"]), Reap::All) {
                Ok(s) if round >= plan.warmup => fig.entries[j].s.push(&s),
                Ok(_) => {}
                Err(e) => fig.entries[j].s.error = Some(e),
            }
        }
        ctx.sweep();
        progress("exec", round, total);
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
    }
    for (j, id) in targets.into_iter().enumerate() {
        if let Some(id) = id {
            stop_and_delete(ctx, rts[j], &id);
        }
    }
    fig
}

/// 4: N containers kept running per runtime, all runtimes' at once (made
/// interleaved: container k of each runtime, then k+1, …). Figures: the
/// total time to make them (`run --detach`, sum of the samples), the time
/// of each, then `state` of one of them and `list` of all, in interleaved
/// rounds. Then every container is killed, reaped and deleted (untimed).
pub fn many_figures(ctx: &mut Ctx, plan: &Plan) -> Vec<Figure> {
    let n = plan.many;
    let mut total_f = Figure::new(
        "many_total",
        &format!("{n} containers: total time to run --detach them (one batch = one sample)"),
        "s",
        false,
    );
    let mut each_f = Figure::new(
        "many_each",
        &format!("run --detach of one of {n} (kept running)"),
        "ms",
        true,
    );
    let mut state_f = Figure::new(
        "state",
        &format!("state of one container, {n} running"),
        "ms",
        true,
    );
    let mut list_f = Figure::new("list", &format!("list, {n} running"), "ms", true);
    let rts = ctx.bench_rts();
    for &rt in &rts {
        let l = ctx.rts[rt].label.clone();
        for f in [&mut total_f, &mut each_f, &mut state_f, &mut list_f] {
            f.entry(&l, false);
        }
    }
    let bundle = ctx.bundles.sleep.display().to_string();
    let mut failed: Vec<Option<String>> = vec![None; rts.len()];
    for batch in 0..plan.many_batches {
        log(&format!(
            "{n} running: batch {}/{}",
            batch + 1,
            plan.many_batches
        ));
        let mut ids: Vec<Vec<String>> = vec![Vec::new(); rts.len()];
        let mut sums = vec![0.0f64; rts.len()];
        for k in 0..n {
            for j in ctx.order(rts.len(), k) {
                if failed[j].is_some() {
                    continue;
                }
                let rt = rts[j];
                let id = ctx.new_id(rt);
                let pidf = ctx.pid_file(&id).display().to_string();
                ctx.track(rt, &id);
                match ctx.sample_pf(
                    ctx.rt_argv(
                        rt,
                        &[
                            "run",
                            "--detach",
                            "--bundle",
                            &bundle,
                            "--pid-file",
                            &pidf,
                            &id,
                        ],
                    ),
                    Reap::Init,
                    Some(&pidf),
                ) {
                    Ok(s) => {
                        sums[j] += s.wall_ms();
                        each_f.entries[j].s.push(&s);
                        ids[j].push(id);
                    }
                    Err(e) => {
                        failed[j] = Some(e);
                        ctx.force_delete(rt, &id);
                    }
                }
            }
            if INTERRUPTED.load(Ordering::Relaxed) {
                break;
            }
        }
        for j in 0..rts.len() {
            if failed[j].is_none() && ids[j].len() == n {
                total_f.entries[j].s.wall.push(sums[j] / 1000.0);
            }
        }
        // Sanity: `list` shows all n of each runtime running.
        for j in 0..rts.len() {
            if failed[j].is_some() {
                continue;
            }
            if let Ok(_s) = ctx.sample(ctx.rt_argv(rts[j], &["list"]), Reap::All) {
                let out = fs::read_to_string(&ctx.out).unwrap_or_default();
                let running = out.lines().filter(|l| l.contains("running")).count();
                if running < n {
                    failed[j] = Some(format!("list shows {running} running of {n}"));
                }
            }
        }
        for round in 0..plan.many_queries + plan.warmup {
            for j in ctx.order(rts.len(), round) {
                if failed[j].is_some() {
                    continue;
                }
                let id = ids[j][round % ids[j].len()].clone();
                match ctx.sample(ctx.rt_argv(rts[j], &["state", &id]), Reap::All) {
                    Ok(s) if round >= plan.warmup => state_f.entries[j].s.push(&s),
                    Ok(_) => {}
                    Err(e) => failed[j] = Some(e),
                }
            }
            for j in ctx.order(rts.len(), round + 1) {
                if failed[j].is_some() {
                    continue;
                }
                match ctx.sample(ctx.rt_argv(rts[j], &["list"]), Reap::All) {
                    Ok(s) if round >= plan.warmup => list_f.entries[j].s.push(&s),
                    Ok(_) => {}
                    Err(e) => failed[j] = Some(e),
                }
            }
        }
        log(&format!("{n} running: tearing down"));
        ctx.sweep();
        for j in 0..rts.len() {
            for id in std::mem::take(&mut ids[j]) {
                let _ = ctx.stop_init(rts[j], &id);
            }
        }
        // Delete after every init is gone (a stopped container each).
        let tracked: Vec<(usize, String)> = ctx.live.iter().map(|l| (l.rt, l.id.clone())).collect();
        for (rt, id) in tracked {
            if ctx
                .sample(ctx.rt_argv(rt, &["delete", &id]), Reap::All)
                .is_ok()
            {
                ctx.untrack(rt, &id);
            } else {
                ctx.force_delete(rt, &id);
            }
        }
        ctx.sweep();
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
    }
    for (j, f) in failed.into_iter().enumerate() {
        if let Some(e) = f {
            for fig in [&mut total_f, &mut each_f, &mut state_f, &mut list_f] {
                fig.entries[j].s.error = Some(e.clone());
            }
        }
    }
    vec![total_f, each_f, state_f, list_f]
}
