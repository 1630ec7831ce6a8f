//! The suite checks the runtime, not itself: every case must pass against
//! runc and fail against a mutant runc that breaks exactly what the case
//! checks (`oci-mutant`). Needs root and /usr/sbin/runc; skipped otherwise.
//! A case neither runc nor crun passes here is proven on berth's release
//! build when it exists (`make test` builds it first).

use oci_conformance::bundle::Template;
use oci_conformance::cases;
use oci_conformance::reaper::{self, Reaper};
use oci_conformance::runtime::Runtime;
use oci_conformance::suite;
use std::path::{Path, PathBuf};

const RUNC: &str = "/usr/sbin/runc";
const CRUN: &str = "/usr/bin/crun";
const BERTH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/x86_64-unknown-linux-gnu/release/berth"
);

struct Scratch(PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_case_fails_against_its_mutant() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0
        || !Path::new(RUNC).exists()
        || !Path::new("/bin/busybox").exists()
    {
        eprintln!("skipped: needs root, {RUNC} and /bin/busybox");
        return;
    }
    reaper::become_subreaper().expect("become subreaper");
    let work = Scratch(
        std::env::temp_dir().join(format!("oci-conformance-selftest-{}", std::process::id())),
    );
    std::fs::create_dir_all(&work.0).expect("create scratch dir");
    let template = Template::build(
        &work.0,
        Path::new("/bin/busybox"),
        Path::new(env!("CARGO_BIN_EXE_oci-checker")),
    )
    .expect("build rootfs template");
    let host = suite::Host::detect();
    let mut runc = Runtime::new(RUNC);
    let mut crun = Runtime::new(CRUN);
    // crun 1.8 needs its wrapper on the hybrid host only.
    crun.private_cgroup2 = Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists();
    let mut berth = Runtime::new(BERTH);
    berth.label = "berth".into();
    // Where /run is read-only (the cgroup v2 guest), state directories go
    // under OCI_CONFORMANCE_SELFTEST_ROOT; `--root=DIR` stays one argument so
    // the mutant wrapper still finds the command.
    if let Ok(root) = std::env::var("OCI_CONFORMANCE_SELFTEST_ROOT") {
        for rt in [&mut runc, &mut crun, &mut berth] {
            let dir = format!("{root}/{}", rt.label_slug());
            rt.global_args.push(format!("--root={dir}"));
        }
    }
    let mut reaper = Reaper::default();
    let filter = std::env::var("OCI_CONFORMANCE_SELFTEST_FILTER").ok();
    let (mut proven, mut survived, mut untestable, mut no_mutant) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (seq, case) in cases::all().iter().enumerate() {
        if !suite::selected(case, filter.as_deref()) {
            continue;
        }
        if suite::host_skip(case, host).is_some() {
            untestable.push(format!("{} (not on this host)", case.id));
            continue;
        }
        // Prove on runc; where runc cannot pass the case here, on crun, then
        // on berth.
        let bases: Vec<&Runtime> = if case.mutant_on_crun {
            vec![&crun, &berth]
        } else {
            vec![&runc, &crun, &berth]
        };
        let mut chosen = None;
        let mut verdicts = Vec::new();
        for (i, real) in bases.into_iter().enumerate() {
            if !real.path.exists() {
                verdicts.push(format!("{} not installed", real.label));
                continue;
            }
            let base = suite::run_case(
                real,
                case,
                &template,
                &work.0,
                4 * seq + i,
                &mut reaper,
                None,
            );
            if case.deviation.is_some() {
                chosen = Some((real, base));
                break;
            }
            if base.failed() == 0 && base.passed() > 0 {
                chosen = Some((real, base));
                break;
            }
            let verdict = if base.failed() > 0 {
                "fails it"
            } else {
                "skips it"
            };
            verdicts.push(format!("{} {verdict}", real.label));
        }
        let Some((real, base)) = chosen else {
            untestable.push(format!("{} ({})", case.id, verdicts.join(", ")));
            continue;
        };
        if case.deviation.is_some() {
            // The case must see runc's deviation: that is its failure mode.
            if base.failed() > 0 {
                proven.push(case.id.to_string());
            } else {
                survived.push(format!(
                    "{}: deviation case passes on {} (does not detect the deviation)",
                    case.id, real.label
                ));
            }
            continue;
        }
        let Some(m) = case.mutant else {
            no_mutant.push(case.id.to_string());
            continue;
        };
        let mut mutant = Runtime::new(env!("CARGO_BIN_EXE_oci-mutant"));
        mutant.label = "mutant".into();
        mutant.global_args = vec![
            "--mutation".into(),
            m.into(),
            "--real".into(),
            real.path.display().to_string(),
        ];
        mutant.global_args.extend(real.global_args.iter().cloned());
        mutant.cleanup_path = Some(real.path.clone());
        mutant.private_cgroup2 = real.private_cgroup2;
        let r = suite::run_case(
            &mutant,
            case,
            &template,
            &work.0,
            4 * seq + 3,
            &mut reaper,
            None,
        );
        if r.failed() > 0 {
            proven.push(case.id.to_string());
        } else {
            survived.push(format!(
                "{}: passes against mutant {m:?} of {}",
                case.id, real.label
            ));
        }
    }
    suite::remove_cgroup_parent();
    eprintln!("proven by a mutant: {}", proven.len());
    eprintln!("not provable here (no peer passes the case): {untestable:#?}");
    assert!(
        no_mutant.is_empty(),
        "cases without a mutant: {no_mutant:#?}"
    );
    assert!(
        survived.is_empty(),
        "cases that do not fail against their mutant: {survived:#?}"
    );
}
