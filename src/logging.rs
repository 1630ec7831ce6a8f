//! `--log`, `--log-format`, `--debug`: where runtime messages go.
//!
//! Callers parse the log file: containerd keeps its last error line, podman
//! reads the file as one JSON object, so a failed command appends exactly one
//! error entry (and debug lines only with `--debug`). The error also goes to
//! stderr as one plain line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

struct Logger {
    file: Option<File>,
    json: bool,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Set up logging once, from the global flags.
pub fn init(path: Option<&Path>, json: bool, debug: bool) -> crate::Result<()> {
    let file = match path {
        Some(p) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| {
                    crate::Error::from(e).context(format!("open log file {}", p.display()))
                })?,
        ),
        None => None,
    };
    let _ = LOGGER.set(Logger { file, json, debug });
    Ok(())
}

pub fn debug_enabled() -> bool {
    LOGGER.get().is_some_and(|l| l.debug)
}

pub fn error(msg: &str) {
    eprintln!("berth: {msg}");
    write("error", msg, false);
}

pub fn warn(msg: &str) {
    write("warning", msg, true);
}

pub fn debug(msg: &str) {
    if debug_enabled() {
        write("debug", msg, true);
    }
}

/// One entry to the log file; without a log file, `to_stderr` entries go to
/// stderr (errors are already printed there by `error`).
fn write(level: &str, msg: &str, to_stderr: bool) {
    let Some(logger) = LOGGER.get() else {
        if to_stderr {
            eprintln!("berth: {level}: {msg}");
        }
        return;
    };
    let line = if logger.json {
        let mut s =
            serde_json::json!({ "level": level, "msg": msg, "time": rfc3339_now() }).to_string();
        s.push('\n');
        s
    } else {
        format!("time=\"{}\" level={level} msg={:?}\n", rfc3339_now(), msg)
    };
    match &logger.file {
        // One write per entry keeps concurrent writers' lines whole (O_APPEND).
        Some(f) => {
            let _ = (&*f).write_all(line.as_bytes());
        }
        None if to_stderr => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        None => {}
    }
}

/// Current UTC time as RFC 3339 with nanoseconds.
pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// Format a Unix time as RFC 3339 UTC (`2024-05-01T12:00:00.123456789Z`).
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_798_761_599, 0), "2026-12-31T23:59:59.000000000Z");
    }
}
