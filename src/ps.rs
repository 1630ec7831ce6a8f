//! `berth ps [--format table|json] ID [ps args]`: the container's processes
//! are the pids in its cgroup (`Manager::pids`); `json` prints them as an
//! array, `table` runs the host's `ps` with the given arguments (default
//! `-ef`) and keeps the header and the rows of those pids.

use std::process::Command;

use crate::{bail, Error, Result};

/// `[1234,1240]`, what `runc ps --format json` prints.
pub fn json(pids: &[i32]) -> Result<String> {
    Ok(serde_json::to_string(pids)?)
}

/// Run `ps args` and keep the header plus the rows for `pids`.
pub fn table(pids: &[i32], args: &[String]) -> Result<String> {
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Error::from(e).context(format!("run ps {}", args.join(" "))))?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    filter(&String::from_utf8_lossy(&out.stdout), pids)
}

/// Keep `ps` output's header and the rows whose PID column is in `pids`.
pub fn filter(ps_output: &str, pids: &[i32]) -> Result<String> {
    let mut lines = ps_output.lines();
    let Some(header) = lines.next() else {
        bail!("ps printed nothing");
    };
    let Some(col) = header.split_whitespace().position(|h| h == "PID") else {
        bail!("ps output has no PID column (header: {header:?})");
    };
    let mut out = String::from(header);
    out.push('\n');
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_other_processes_are_dropped() {
        let ps = "UID PID PPID C STIME TTY TIME CMD\n\
                  root 1 0 0 00:00 ? 00:00:00 init\n\
                  root 42 1 0 00:00 ? 00:00:00 sleep 10\n";
        let t = filter(ps, &[42]).unwrap();
        assert_eq!(t.lines().count(), 2);
        assert!(t.contains("sleep 10") && !t.contains("init"));
        assert!(filter("USER COMMAND\n", &[1]).is_err());
        assert_eq!(json(&[1, 2]).unwrap(), "[1,2]");
    }
}
