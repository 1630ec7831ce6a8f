//! What `berth events` does: stats events at an interval and OOM events as
//! they happen, one JSON object per line like runc.

use std::io::Write;
use std::time::Duration;

use crate::cgroups::stats::Event;
use crate::cgroups::{oom, Manager, Mode};
use crate::{bail, Context, Error, Result};

/// Parse a Go duration (`5s`, `100ms`, `1m30s`, `1h`, `250us`).
pub fn parse_go_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        bail!("invalid duration {s:?}");
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| Error::msg(format!("invalid duration {s:?}: missing unit")))?;
        let n: f64 = rest[..n_end]
            .parse()
            .map_err(|_| Error::msg(format!("invalid duration {s:?}")))?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => bail!("invalid duration {s:?}: unknown unit {u:?}"),
        };
        total += n * secs;
        rest = &rest[u_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// `events`: with `stats_only`, print one stats event; otherwise print a
/// stats event every `interval` and an `oom` event whenever the OOM killer
/// has struck since the last look, until `running()` says the container is
/// gone. One JSON object per line, like runc.
pub fn events(
    m: &Manager,
    id: &str,
    interval: Duration,
    stats_only: bool,
    out: &mut dyn Write,
    running: &mut dyn FnMut() -> bool,
) -> Result<()> {
    let emit = |out: &mut dyn Write, e: &Event| -> Result<()> {
        serde_json::to_writer(&mut *out, e)?;
        out.write_all(b"\n").context("write event")?;
        out.flush().context("write event")
    };
    if stats_only {
        return emit(out, &Event::stats(id, m.stats()?));
    }
    let mut ooms = m.oom_kill_count().unwrap_or(0);
    // Without a notifier (no memory controller) the kill counter is polled.
    let watcher = oom::OomWatcher::new(m).ok();
    let tick = Duration::from_millis(100).min(interval.max(Duration::from_millis(1)));
    let mut since_stats = interval;
    while running() {
        if since_stats >= interval {
            emit(out, &Event::stats(id, m.stats()?))?;
            since_stats = Duration::ZERO;
        }
        let notified = match &watcher {
            Some(w) => w.wait(tick)?,
            None => {
                std::thread::sleep(tick);
                false
            }
        };
        since_stats += tick;
        let now = m.oom_kill_count().unwrap_or(ooms);
        // v1 notifies once per OOM condition, also with the OOM killer
        // disabled (nothing killed); v2 and polling go by the kill counter.
        let oom = if watcher.is_some() && m.mode != Some(Mode::Unified) {
            notified
        } else {
            now > ooms
        };
        if oom {
            emit(out, &Event::oom(id))?;
        }
        ooms = now;
    }
    // A last look: an OOM kill is often what ended the container.
    if m.oom_kill_count().unwrap_or(ooms) > ooms {
        emit(out, &Event::oom(id))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(
            parse_go_duration("100ms").unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5x").is_err());
    }
}
