//! Checkpoint and restore through a caller, with CRIU: a busybox shell
//! counts in memory; after the caller's checkpoint and restore the count
//! must go on from where it was, not start again at 1. The checks run only
//! where `criu check` passes; elsewhere they are listed as skipped with
//! CRIU's reason, except in the test guest (BERTH_GUEST_CRIU set, see
//! guest/test-systemd.sh), where a failing `criu check` fails the suite.

use std::cell::RefCell;
use std::path::Path;
use std::time::Instant;

use crate::proc::{last_lines, Cmd};
use crate::suite::{selects, Check, CheckResult, Report, Rt, Scene};

/// Prints `count:N` (N only in the shell's memory) every 0.3 s.
pub const COUNTER_LOG: &str = "i=0; while :; do i=$((i+1)); echo count:$i; sleep 0.3; done";

/// Appends N (only in the shell's memory) to /count every 0.2 s.
pub const COUNTER_FILE: &str =
    "i=0; while :; do i=$((i+1)); echo count:$i >> /count; sleep 0.2; done";

/// Does CRIU work here (`criu check`)? The reason if not.
pub fn criu_works() -> Result<(), String> {
    let o = Cmd::new(&["criu", "check"]).timeout(120).run();
    if o.code == 0 {
        return Ok(());
    }
    let text = format!("{}{}", o.stdout, o.stderr);
    Err(format!(
        "`criu check` fails here (exit {}): {}",
        o.code,
        last_lines(text.trim(), 2).replace('\n', "; ")
    ))
}

/// The round trip's name, the same for every caller.
pub const ROUND_TRIP: &str = "checkpoint + restore (CRIU): count goes on";

/// Add the round trip (`run`) to `checks` if `--filter` selects it and
/// CRIU works here; otherwise list it in the report as skipped, or, in the
/// test guest, fail the suite.
pub fn gate<S>(
    filter: &Option<String>,
    checks: &mut Vec<Check<S>>,
    run: fn(&S, Rt, &mut Scene) -> CheckResult,
    report: &mut Report,
) {
    if !selects(filter, ROUND_TRIP) {
        return;
    }
    match criu_works() {
        Ok(()) => checks.push(Check {
            name: ROUND_TRIP,
            run,
        }),
        Err(why) if std::env::var_os("BERTH_GUEST_CRIU").is_some() => {
            report.setup_error = Some(format!("in the test guest (BERTH_GUEST_CRIU): {why}"));
        }
        Err(why) => report.skipped.push((ROUND_TRIP.to_string(), why)),
    }
}

/// The values of the lines of `text` that end in `count:N` (a log line
/// may have a prefix: k8s-file's time and stream), in order.
pub fn counts(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.trim().rsplit_once("count:")?.1.parse().ok())
        .collect()
}

/// How long each step of a round trip took (for the check's detail).
pub struct Steps {
    last: RefCell<Instant>,
    done: RefCell<Vec<String>>,
}

impl Steps {
    pub fn new() -> Steps {
        Steps {
            last: RefCell::new(Instant::now()),
            done: RefCell::new(Vec::new()),
        }
    }
    pub fn step(&self, what: &str) {
        let now = Instant::now();
        let secs = (now - *self.last.borrow()).as_secs_f64();
        self.done.borrow_mut().push(format!("{what} {secs:.1}s"));
        *self.last.borrow_mut() = now;
    }
    pub fn report(&self) -> String {
        self.done.borrow().join(", ")
    }
}

/// What [`COUNTER_FILE`] wrote so far in the rootfs at `root`.
pub fn file_counts(root: &Path) -> Vec<u64> {
    counts(&std::fs::read_to_string(root.join("count")).unwrap_or_default())
}

/// The counter went on from `before` (the last value seen before the
/// checkpoint) to `after` (the first seen after the restore): `after` may
/// repeat `before` (a line in flight at the dump) or be the next one.
pub fn went_on(before: u64, after: u64, exact: bool) -> Result<String, String> {
    let ok = if exact {
        after == before || after == before + 1
    } else {
        after > before
    };
    if ok {
        Ok(format!(
            "count {before} at the checkpoint, {after} after the restore"
        ))
    } else {
        Err(format!(
            "the restored counter is at {after}, it was at {before} at the checkpoint{}",
            if after <= 2 { ": it started again" } else { "" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_from_count_lines_only() {
        assert_eq!(
            counts("count:1\nnoise\ncount:2\n count:3 \n"),
            vec![1, 2, 3]
        );
        assert_eq!(counts("2026-12-01T20:00:00Z stdout F count:12\n"), vec![12]);
    }

    #[test]
    fn a_counter_that_starts_again_fails() {
        assert!(went_on(7, 8, true).is_ok());
        assert!(went_on(7, 7, true).is_ok());
        assert!(went_on(7, 1, true).unwrap_err().contains("started again"));
        assert!(went_on(7, 9, true).is_err());
        assert!(went_on(7, 9, false).is_ok());
        assert!(went_on(7, 1, false).is_err());
    }
}
