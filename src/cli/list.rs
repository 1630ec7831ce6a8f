use super::Globals;
use crate::container::{self, Status};
use crate::Result;

#[derive(clap::Args)]
pub struct Args {
    /// table or json.
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Only the ids.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(g: &Globals, a: Args) -> Result<i32> {
    let mut rows = Vec::new();
    for id in container::list_ids(&g.root)? {
        let dir = container::dir_of(&g.root, &id);
        match container::peek(&g.root, &id) {
            Ok(Some(state)) => {
                let status = state.status(&dir.join(container::EXEC_FIFO));
                rows.push(state.to_oci_json(status));
            }
            // No state yet: a create under way, or one that died first
            // (`delete --force` removes it). Shown, not hidden.
            Ok(None) if dir.exists() => {
                let status = if container::is_locked(&g.root, &id) {
                    Status::Creating
                } else {
                    Status::Stopped
                };
                rows.push(serde_json::json!({
                    "ociVersion": "", "id": id, "pid": 0, "status": status.as_str(),
                    "bundle": "", "rootfs": "", "created": "", "owner": ""
                }));
            }
            // Deleted while we list: simply not listed.
            _ => {}
        }
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r["id"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    if a.format == "json" {
        // runc prints `null` for no containers; callers parse either.
        if rows.is_empty() {
            println!("null");
        } else {
            println!("{}", serde_json::to_string(&rows)?);
        }
        return Ok(0);
    }
    let mut table = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
        .map(String::from)
        .to_vec()];
    for r in &rows {
        let s = |k: &str| {
            r[k].as_str()
                .map(String::from)
                .unwrap_or_else(|| r[k].to_string())
        };
        table.push(vec![
            s("id"),
            s("pid"),
            s("status"),
            s("bundle"),
            s("created"),
            s("owner"),
        ]);
    }
    print!("{}", format_table(&table));
    Ok(0)
}

/// Columns padded like Go's tabwriter with minwidth 12 and padding 3, as
/// runc's list prints them (the last column unpadded).
fn format_table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, |r| r.len());
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len() + 3)
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[c]));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_pads_like_runc() {
        let t = super::format_table(&[
            vec!["ID".into(), "PID".into()],
            vec!["a-long-container-id".into(), "1".into()],
        ]);
        assert_eq!(t, "ID                    PID\na-long-container-id   1\n");
    }
}
