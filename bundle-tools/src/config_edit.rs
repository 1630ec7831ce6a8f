//! Editing image configs: Dockerfile-style `--change` instructions (`ENV`,
//! `CMD`, `ENTRYPOINT`, `EXPOSE`, `LABEL`, `USER`, `VOLUME`, `WORKDIR`,
//! `STOPSIGNAL`, as `docker commit --change` takes them) and history
//! entries. Configs are edited as JSON so fields this tool does not know
//! (Docker's `Healthcheck`, `OnBuild`, ...) survive.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

fn run_config(cfg: &mut Value) -> Result<&mut Map<String, Value>> {
    let o = cfg
        .as_object_mut()
        .context("image config is not a JSON object")?;
    let c = o.entry("config").or_insert_with(|| json!({}));
    if c.is_null() {
        *c = json!({});
    }
    c.as_object_mut()
        .context("image config: config is not an object")
}

/// `["a", "b"]` (JSON form) or `a b` (shell form: `/bin/sh -c "a b"`).
fn command(arg: &str) -> Result<Vec<String>> {
    let t = arg.trim();
    if t.starts_with('[') {
        return serde_json::from_str(t).with_context(|| format!("invalid JSON array {t:?}"));
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), t.into()])
}

/// `K=V K2="V 2"` or the legacy `K V` form.
fn pairs(arg: &str) -> Result<Vec<(String, String)>> {
    let t = arg.trim();
    let first = t.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let Some((k, v)) = t.split_once(char::is_whitespace) else {
            bail!("expected KEY=VALUE or KEY VALUE, got {t:?}");
        };
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut words = Vec::new();
    for ch in t.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"') | (None, '\'') => quote = Some(ch),
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        bail!("unterminated quote in {t:?}");
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            bail!("expected KEY=VALUE, got {w:?}");
        };
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Set (or replace) `K=V` in the Env list.
pub fn set_env(cfg: &mut Value, k: &str, v: &str) -> Result<()> {
    let c = run_config(cfg)?;
    let env = c.entry("Env").or_insert_with(|| json!([]));
    let list = env.as_array_mut().context("config Env is not a list")?;
    let prefix = format!("{k}=");
    list.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
    list.push(json!(format!("{k}={v}")));
    Ok(())
}

fn set_map_key(cfg: &mut Value, field: &str, k: &str, v: Value) -> Result<()> {
    let c = run_config(cfg)?;
    let m = c.entry(field).or_insert_with(|| json!({}));
    if m.is_null() {
        *m = json!({});
    }
    m.as_object_mut()
        .with_context(|| format!("config {field} is not an object"))?
        .insert(k.to_string(), v);
    Ok(())
}

pub fn set_field(cfg: &mut Value, field: &str, v: Value) -> Result<()> {
    run_config(cfg)?.insert(field.to_string(), v);
    Ok(())
}

/// `80`, `80/tcp`, `53/udp`.
pub fn port(p: &str) -> Result<String> {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    if num.parse::<u16>().is_err() && !num.contains('-') {
        bail!("invalid port {p:?}");
    }
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        bail!("invalid port protocol in {p:?}");
    }
    Ok(format!("{num}/{proto}"))
}

pub fn add_port(cfg: &mut Value, p: &str) -> Result<()> {
    set_map_key(cfg, "ExposedPorts", &port(p)?, json!({}))
}

pub fn add_volume(cfg: &mut Value, v: &str) -> Result<()> {
    if !v.starts_with('/') {
        bail!("volume {v:?} is not an absolute path");
    }
    set_map_key(cfg, "Volumes", v, json!({}))
}

pub fn add_label(cfg: &mut Value, k: &str, v: &str) -> Result<()> {
    set_map_key(cfg, "Labels", k, json!(v))
}

/// Apply one Dockerfile-style instruction.
pub fn apply_change(cfg: &mut Value, instr: &str) -> Result<()> {
    let t = instr.trim();
    let (op, arg) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    let arg = arg.trim();
    let ctx = || format!("--change {instr:?}");
    match op.to_ascii_uppercase().as_str() {
        "ENV" => {
            for (k, v) in pairs(arg).with_context(ctx)? {
                set_env(cfg, &k, &v)?;
            }
        }
        "LABEL" => {
            for (k, v) in pairs(arg).with_context(ctx)? {
                add_label(cfg, &k, &v)?;
            }
        }
        "CMD" => set_field(cfg, "Cmd", json!(command(arg).with_context(ctx)?))?,
        "ENTRYPOINT" => set_field(cfg, "Entrypoint", json!(command(arg).with_context(ctx)?))?,
        "EXPOSE" => {
            for p in arg.split_whitespace() {
                add_port(cfg, p).with_context(ctx)?;
            }
        }
        "VOLUME" => {
            let vols: Vec<String> = if arg.starts_with('[') {
                serde_json::from_str(arg).with_context(ctx)?
            } else {
                arg.split_whitespace().map(String::from).collect()
            };
            for v in vols {
                add_volume(cfg, &v).with_context(ctx)?;
            }
        }
        "USER" if !arg.is_empty() => set_field(cfg, "User", json!(arg))?,
        "WORKDIR" if arg.starts_with('/') => set_field(cfg, "WorkingDir", json!(arg))?,
        "STOPSIGNAL" if !arg.is_empty() => set_field(cfg, "StopSignal", json!(arg))?,
        "USER" | "WORKDIR" | "STOPSIGNAL" => {
            bail!("{}: needs a value (WORKDIR an absolute path)", ctx())
        }
        other => bail!(
            "{}: unsupported instruction {other:?} (ENV, LABEL, CMD, ENTRYPOINT, EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL)",
            ctx()
        ),
    }
    Ok(())
}

/// A history entry, as `docker commit` writes one.
pub struct HistoryEntry<'a> {
    pub created: &'a str,
    pub author: Option<&'a str>,
    pub created_by: &'a str,
    pub comment: Option<&'a str>,
    pub empty_layer: bool,
}

/// Append a history entry and set the config's `created` (and `author`).
pub fn push_history(cfg: &mut Value, h: &HistoryEntry<'_>) -> Result<()> {
    let o = cfg
        .as_object_mut()
        .context("image config is not a JSON object")?;
    o.insert("created".into(), json!(h.created));
    if let Some(a) = h.author {
        o.insert("author".into(), json!(a));
    }
    let mut e = json!({ "created": h.created, "created_by": h.created_by });
    if let Some(a) = h.author {
        e["author"] = json!(a);
    }
    if let Some(c) = h.comment {
        e["comment"] = json!(c);
    }
    if h.empty_layer {
        e["empty_layer"] = json!(true);
    }
    let hist = o.entry("history").or_insert_with(|| json!([]));
    if hist.is_null() {
        *hist = json!([]);
    }
    hist.as_array_mut()
        .context("image config history is not a list")?
        .push(e);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_style_changes() {
        let mut c = json!({"config": {"Env": ["PATH=/bin", "A=1"]}, "Healthcheck": {"x": 1}});
        apply_change(&mut c, "ENV A=2 B=\"two words\"").expect("env");
        apply_change(&mut c, "ENV C three").expect("legacy env");
        apply_change(&mut c, "CMD [\"/bin/sh\", \"-c\", \"x\"]").expect("cmd");
        apply_change(&mut c, "ENTRYPOINT run me").expect("entrypoint");
        apply_change(&mut c, "EXPOSE 80 53/udp").expect("expose");
        apply_change(&mut c, "LABEL a=b").expect("label");
        apply_change(&mut c, "VOLUME /data").expect("volume");
        apply_change(&mut c, "WORKDIR /srv").expect("workdir");
        apply_change(&mut c, "USER app").expect("user");
        apply_change(&mut c, "STOPSIGNAL SIGQUIT").expect("stopsignal");
        let k = &c["config"];
        assert_eq!(
            k["Env"],
            json!(["PATH=/bin", "A=2", "B=two words", "C=three"])
        );
        assert_eq!(k["Entrypoint"], json!(["/bin/sh", "-c", "run me"]));
        assert_eq!(k["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(k["Volumes"], json!({"/data": {}}));
        assert_eq!(c["Healthcheck"], json!({"x": 1}), "unknown fields survive");
        assert!(apply_change(&mut c, "RUN make").is_err());
        assert!(apply_change(&mut c, "EXPOSE http").is_err());
        assert!(apply_change(&mut c, "WORKDIR relative").is_err());
    }
}
