//! Output: TAP (one line per assertion), JSON, and the side-by-side
//! RESULTS.md table.

use crate::suite::CaseResult;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Every case's results under one runtime (or why the runtime was skipped).
#[derive(Debug, Clone)]
pub struct RuntimeResults {
    pub label: String,
    pub path: String,
    pub skipped: Option<String>,
    pub cases: Vec<CaseResult>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub deviations: usize,
}

impl RuntimeResults {
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for c in &self.cases {
            for a in &c.assertions {
                match a.passed {
                    Some(true) => t.passed += 1,
                    None => t.skipped += 1,
                    Some(false) if c.deviation.is_some() => t.deviations += 1,
                    Some(false) => t.failed += 1,
                }
            }
        }
        t
    }
}

/// Streams TAP lines as cases finish.
pub struct Tap {
    n: usize,
}

impl Tap {
    pub fn new() -> Tap {
        println!("TAP version 13");
        Tap { n: 0 }
    }

    pub fn comment(&self, text: &str) {
        for line in text.lines() {
            println!("# {line}");
        }
    }

    pub fn case(&mut self, r: &CaseResult) {
        for a in &r.assertions {
            self.n += 1;
            let name = format!("{}: {} [{} {}]", r.id, a.name, r.section, r.level);
            match a.passed {
                Some(true) => println!("ok {} - {name}", self.n),
                None => println!("ok {} - {name} # SKIP {}", self.n, a.detail),
                Some(false) => match &r.deviation {
                    Some(d) => println!(
                        "not ok {} - {name} # TODO deliberate deviation: {d}",
                        self.n
                    ),
                    None => {
                        println!("not ok {} - {name}", self.n);
                        for line in a.detail.lines() {
                            println!("  # {line}");
                        }
                    }
                },
            }
        }
    }

    pub fn finish(&self, totals: Totals) {
        println!("1..{}", self.n);
        println!(
            "# {} passed, {} failed, {} skipped, {} deliberate deviations",
            totals.passed, totals.failed, totals.skipped, totals.deviations
        );
    }
}

impl Default for Tap {
    fn default() -> Self {
        Tap::new()
    }
}

/// Machine-readable results.
pub fn to_json(all: &[RuntimeResults]) -> Value {
    let runtimes: Vec<Value> = all
        .iter()
        .map(|r| {
            let t = r.totals();
            json!({
                "label": r.label,
                "path": r.path,
                "skipped": r.skipped,
                "totals": { "passed": t.passed, "failed": t.failed, "skipped": t.skipped, "deviations": t.deviations },
                "cases": r.cases.iter().map(|c| json!({
                    "id": c.id,
                    "section": c.section,
                    "level": c.level,
                    "requirement": c.requirement,
                    "deviation": c.deviation,
                    "assertions": c.assertions.iter().map(|a| json!({
                        "name": a.name,
                        "result": match a.passed { Some(true) => "pass", Some(false) => "fail", None => "skip" },
                        "detail": a.detail,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "runtimes": runtimes })
}

fn cell(r: &RuntimeResults, id: &str) -> String {
    if r.skipped.is_some() {
        return "—".into();
    }
    let Some(c) = r.cases.iter().find(|c| c.id == id) else {
        return "—".into();
    };
    let (p, f, s) = (c.passed(), c.failed(), c.skipped());
    let total = p + f;
    if total == 0 && s > 0 {
        "skip".into()
    } else if f == 0 {
        format!("pass {p}/{total}")
    } else if c.deviation.is_some() {
        format!("deviation {p}/{total}")
    } else {
        format!("**FAIL** {p}/{total}")
    }
}

/// (case id, assertion) pairs `gated` fails (not as a deliberate deviation)
/// while some peer passes them, or passes the whole case: a failure early in
/// a case ("runtime creates the container") is only reported by runtimes
/// that fail it, so a peer that passed the case has no assertion of that name.
pub fn regressions(gated: &RuntimeResults, peers: &[&RuntimeResults]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in gated.cases.iter().filter(|c| c.deviation.is_none()) {
        for a in c.assertions.iter().filter(|a| a.passed == Some(false)) {
            let peer_pass = peers.iter().any(|p| {
                p.cases.iter().any(|pc| {
                    pc.id == c.id
                        && (pc
                            .assertions
                            .iter()
                            .any(|pa| pa.name == a.name && pa.passed == Some(true))
                            || (pc.deviation.is_none() && pc.failed() == 0 && pc.passed() > 0))
                })
            });
            if peer_pass {
                out.push((c.id.clone(), a.name.clone()));
            }
        }
    }
    out
}

/// Escapes a table cell.
fn esc(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The side-by-side table, case × runtime, with totals, failures and the
/// list of assertions the first runtime fails while a peer passes them.
pub fn results_markdown(all: &[RuntimeResults], host: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# oci-conformance results\n");
    let _ = writeln!(
        md,
        "Regenerated by `make conformance` (`oci-conformance --results FILE`); do not edit by hand.\n"
    );
    let _ = writeln!(md, "Host: {host}.\n");
    for r in all {
        let _ = writeln!(md, "- {}: `{}`", r.label, r.path);
    }
    let _ = writeln!(md);
    let _ = writeln!(md, "## Totals (assertions)\n");
    let _ = writeln!(
        md,
        "| runtime | passed | failed | skipped | deliberate deviations | note |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for r in all {
        let t = r.totals();
        let note = r.skipped.clone().unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            esc(&r.label),
            t.passed,
            t.failed,
            t.skipped,
            t.deviations,
            esc(&note)
        );
    }
    // Assertions a peer passes but the first (gated) runtime fails.
    if let Some((first, peers)) = all.split_first() {
        let peers: Vec<&RuntimeResults> = peers.iter().filter(|p| p.skipped.is_none()).collect();
        if first.skipped.is_none() && !peers.is_empty() {
            let regress = regressions(first, &peers);
            let _ = writeln!(
                md,
                "\n## Assertions {} fails that a peer passes here: {}\n",
                first.label,
                regress.len()
            );
            for (case, name) in regress {
                let _ = writeln!(md, "- `{case}`: {name}");
            }
        }
    }
    let _ = writeln!(md, "\n## Cases\n");
    let mut header = String::from("| case | section | level | requirement |");
    let mut rule = String::from("|---|---|---|---|");
    for r in all {
        let _ = write!(header, " {} |", esc(&r.label));
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    let ids: Vec<(String, String, String, String)> = all
        .iter()
        .find(|r| r.skipped.is_none())
        .map(|r| {
            r.cases
                .iter()
                .map(|c| {
                    let req = match &c.deviation {
                        Some(d) => format!("{} (deliberate deviation: {d})", c.requirement),
                        None => c.requirement.clone(),
                    };
                    (c.id.clone(), c.section.clone(), c.level.clone(), req)
                })
                .collect()
        })
        .unwrap_or_default();
    for (id, section, level, req) in &ids {
        let mut row = format!("| `{id}` | {section} | {level} | {} |", esc(req));
        for r in all {
            let _ = write!(row, " {} |", cell(r, id));
        }
        let _ = writeln!(md, "{row}");
    }
    let _ = writeln!(md, "\n## Failures and skips\n");
    for r in all {
        if let Some(reason) = &r.skipped {
            let _ = writeln!(md, "### {}\n\nColumn skipped: {reason}\n", r.label);
            continue;
        }
        let _ = writeln!(md, "### {}\n", r.label);
        for c in &r.cases {
            for a in &c.assertions {
                match (a.passed, &c.deviation) {
                    (Some(false), Some(d)) => {
                        let _ = writeln!(md, "- deviation `{}`: {} — {}", c.id, a.name, esc(d));
                    }
                    (Some(false), None) => {
                        let _ = writeln!(md, "- FAIL `{}`: {} — {}", c.id, a.name, esc(&a.detail));
                    }
                    (None, _) => {
                        let _ = writeln!(md, "- skip `{}`: {} — {}", c.id, a.name, esc(&a.detail));
                    }
                    _ => {}
                }
            }
        }
        let _ = writeln!(md);
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Assertion;
    use crate::suite::CaseResult;

    fn case(id: &str, results: &[(&str, Option<bool>)]) -> CaseResult {
        CaseResult {
            id: id.into(),
            section: String::new(),
            level: String::new(),
            requirement: String::new(),
            deviation: None,
            assertions: results
                .iter()
                .map(|(name, passed)| Assertion {
                    name: (*name).into(),
                    passed: *passed,
                    detail: String::new(),
                })
                .collect(),
        }
    }

    fn runtime(label: &str, cases: Vec<CaseResult>) -> RuntimeResults {
        RuntimeResults {
            label: label.into(),
            path: String::new(),
            skipped: None,
            cases,
        }
    }

    #[test]
    fn a_setup_failure_in_a_case_a_peer_passes_is_a_regression() {
        let gated = runtime(
            "b",
            vec![case(
                "ns",
                &[("runtime creates the container", Some(false))],
            )],
        );
        let peer = runtime("r", vec![case("ns", &[("joined", Some(true))])]);
        assert_eq!(regressions(&gated, &[&peer]).len(), 1);
        // Not when the peer fails the case too, or only skipped it.
        let failing = runtime("r", vec![case("ns", &[("joined", Some(false))])]);
        let skipped = runtime("r", vec![case("ns", &[("joined", None)])]);
        assert!(regressions(&gated, &[&failing, &skipped]).is_empty());
    }
}
