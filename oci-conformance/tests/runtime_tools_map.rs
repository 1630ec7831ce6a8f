//! RUNTIME_TOOLS_MAP.md must name all 58 runtime-tools validation programs,
//! and every case id it cites must exist.

use oci_conformance::cases;

#[test]
fn map_names_58_programs_and_only_existing_cases() {
    let text = include_str!("../RUNTIME_TOOLS_MAP.md");
    let ids: Vec<&str> = cases::all().iter().map(|c| c.id).collect();
    let mut programs = 0;
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        programs += 1;
        let cells: Vec<&str> = line.split('|').collect();
        let cited = cells.get(2).copied().unwrap_or("");
        for id in cited.split('`').skip(1).step_by(2) {
            if id.ends_with(".*") {
                let prefix = id.trim_end_matches('*');
                assert!(
                    ids.iter().any(|c| c.starts_with(prefix)),
                    "no case matches {id}"
                );
            } else if let Some(suffix) = id.strip_prefix('.') {
                assert!(
                    ids.iter().any(|c| c.ends_with(suffix)),
                    "no case ends with {id}"
                );
            } else {
                assert!(ids.contains(&id), "map cites unknown case {id}");
            }
        }
    }
    assert_eq!(
        programs, 58,
        "the map must list the 58 runtime-tools programs"
    );
}

#[test]
fn case_ids_are_unique() {
    let mut ids: Vec<&str> = cases::all().iter().map(|c| c.id).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate case ids");
}
