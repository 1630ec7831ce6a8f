//! Runs cases against one runtime: a bundle per case, cleanup after each
//! (containers, leftover processes, cgroups, the bundle), results collected.

use crate::bundle::Template;
use crate::case::{Assertion, Case, Ctx};
use crate::reaper::Reaper;
use crate::runtime::Runtime;
use std::path::{Path, PathBuf};

/// A case's assertions under one runtime.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub id: String,
    pub section: String,
    pub level: String,
    pub requirement: String,
    pub deviation: Option<String>,
    pub assertions: Vec<Assertion>,
}

impl CaseResult {
    pub fn failed(&self) -> usize {
        self.assertions
            .iter()
            .filter(|a| a.passed == Some(false))
            .count()
    }
    pub fn passed(&self) -> usize {
        self.assertions
            .iter()
            .filter(|a| a.passed == Some(true))
            .count()
    }
    pub fn skipped(&self) -> usize {
        self.assertions
            .iter()
            .filter(|a| a.passed.is_none())
            .count()
    }
}

/// Host facts that decide which cases can run here.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// /sys/fs/cgroup is a cgroup2 mount (unified host).
    pub cgroup_v2: bool,
}

impl Host {
    pub fn detect() -> Host {
        let mut st: libc::statfs = unsafe_zeroed_statfs();
        // SAFETY: the path is NUL-terminated and st is a valid out pointer.
        let rc = unsafe { libc::statfs(c"/sys/fs/cgroup".as_ptr(), &mut st) };
        Host {
            cgroup_v2: rc == 0 && st.f_type == libc::CGROUP2_SUPER_MAGIC,
        }
    }
}

fn unsafe_zeroed_statfs() -> libc::statfs {
    // SAFETY: statfs is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Why a case cannot run on this host, if it cannot.
pub fn host_skip(case: &Case, host: Host) -> Option<String> {
    if case.tags.contains(&"cgroup-v2") && !host.cgroup_v2 {
        return Some(
            "needs a cgroup v2 host (this one is v1 hybrid); runs in the cgroup v2 guest with --filter tag:cgroup-v2"
                .into(),
        );
    }
    if case.tags.contains(&"cgroup-v1") && host.cgroup_v2 {
        return Some("needs cgroup v1 controllers (this host is unified)".into());
    }
    None
}

/// Whether `filter` selects `case`: a substring of its id or section, or
/// `tag:NAME`.
pub fn selected(case: &Case, filter: Option<&str>) -> bool {
    let Some(f) = filter else { return true };
    f.split(',').any(|f| {
        if let Some(tag) = f.strip_prefix("tag:") {
            case.tags.contains(&tag)
        } else {
            case.id.contains(f) || case.section.contains(f)
        }
    })
}

/// Removes the cgroups a case may have left, in every hierarchy.
pub fn remove_cgroups(id: &str) {
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in rd.flatten() {
        for rel in [format!("oci-conformance/{id}"), id.to_string()] {
            remove_cgroup_tree(&h.path().join(rel));
        }
    }
}

/// Removes the shared parent cgroup once the run is over.
pub fn remove_cgroup_parent() {
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for h in rd.flatten() {
            let _ = std::fs::remove_dir(h.path().join("oci-conformance"));
        }
    }
}

/// Removes a cgroup directory and every cgroup below it (deepest first).
pub fn remove_cgroup_tree(dir: &Path) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Runs one case against `runtime` in `work`; never leaves anything behind
/// except, when it failed and `keep_failed` is set, its bundle.
pub fn run_case(
    runtime: &Runtime,
    case: &Case,
    template: &Template,
    work: &Path,
    seq: usize,
    reaper: &mut Reaper,
    keep_failed: Option<&Path>,
) -> CaseResult {
    let id = format!("oc{}-{seq}", std::process::id());
    let bundle = work.join(&id);
    let mut result = CaseResult {
        id: case.id.into(),
        section: case.section.into(),
        level: case.level.as_str().into(),
        requirement: case.requirement.into(),
        deviation: case.deviation.map(String::from),
        assertions: Vec::new(),
    };
    let setup = std::fs::create_dir_all(&bundle)
        .map_err(|e| format!("mkdir {}: {e}", bundle.display()))
        .and_then(|_| template.instantiate(&bundle));
    if let Err(e) = setup {
        result.assertions.push(Assertion {
            name: "bundle is generated".into(),
            passed: Some(false),
            detail: e,
        });
        let _ = std::fs::remove_dir_all(&bundle);
        return result;
    }
    let mut ctx = Ctx::new(runtime, reaper, id.clone(), bundle.clone());
    (case.run)(&mut ctx);
    if ctx.assertions.is_empty() {
        ctx.check("case made an assertion", false, "the case recorded nothing");
    }
    ctx.cleanup();
    let ids = ctx.ids.clone();
    result.assertions = std::mem::take(&mut ctx.assertions);
    for a in &mut result.assertions {
        a.detail = stable_detail(&a.detail, &bundle, &ids);
    }
    drop(ctx);
    reaper.kill_leftovers();
    for id in &ids {
        remove_cgroups(id);
    }
    if result.failed() > 0 {
        if let Some(keep) = keep_failed {
            let dest = keep.join(format!("{}-{}", runtime.label_slug(), case.id));
            let _ = std::fs::remove_dir_all(&dest);
            if std::fs::create_dir_all(keep).is_ok() && std::fs::rename(&bundle, &dest).is_ok() {
                return result;
            }
            if copy_dir(&bundle, &dest).is_ok() {
                let _ = std::fs::remove_dir_all(&bundle);
                return result;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&bundle);
    result
}

/// Makes a diagnostic stable across runs (so RESULTS.md diffs show real
/// changes): the bundle path and container ids become placeholders, and
/// runtimes' log timestamps (`time="..."`) are dropped.
pub fn stable_detail(detail: &str, bundle: &Path, ids: &[String]) -> String {
    let mut s = detail.replace(&bundle.display().to_string(), "<bundle>");
    let mut ids: Vec<&String> = ids.iter().collect();
    ids.sort_by_key(|i| std::cmp::Reverse(i.len()));
    for id in ids {
        s = s.replace(id.as_str(), "<id>");
    }
    while let Some(start) = s.find("time=\"") {
        let rest = &s[start + 6..];
        let Some(end) = rest.find('"') else { break };
        let after = rest[end + 1..].trim_start().to_string();
        s = format!("{}{after}", &s[..start]);
    }
    s
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dst: PathBuf = to.join(e.file_name());
        let ft = e.file_type()?;
        if ft.is_dir() {
            copy_dir(&e.path(), &dst)?;
        } else if ft.is_file() {
            std::fs::copy(e.path(), dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_detail_hides_paths_ids_and_timestamps() {
        let d = "`runc create --bundle /tmp/w/oc1-2 oc1-2`: exit 1; stderr: time=\"2026-01-01T00:00:00Z\" level=error msg=\"x\"";
        let s = stable_detail(d, Path::new("/tmp/w/oc1-2"), &["oc1-2".into()]);
        assert_eq!(
            s,
            "`runc create --bundle <bundle> <id>`: exit 1; stderr: level=error msg=\"x\""
        );
    }
}
