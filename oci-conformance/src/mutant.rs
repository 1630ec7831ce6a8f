//! The mutant runtime: a real runtime with exactly one thing broken, used to
//! prove that each case fails on a runtime that gets its requirement wrong.
//!
//! Invocation: `oci-mutant --mutation SPEC --real PATH <runtime args...>`.
//! SPEC is one of (several separated by newlines):
//! - `drop:/json/pointer` — remove a config field before `create`
//! - `set:/json/pointer=JSON` — overwrite a config field before `create`
//! - `drop-mount:/dest` — remove the mount with that destination
//! - `add-mount:JSON` — append a mount
//! - `state:/json/pointer=JSON` — patch the output of `state`
//! - `exit:COMMAND=CODE` — run COMMAND for real, then exit with CODE
//! - `noop:COMMAND` — do not run COMMAND at all; exit 0

use crate::jsonptr;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    Drop(String),
    Set(String, Value),
    DropMount(String),
    AddMount(Value),
    State(String, Value),
    Exit(String, i32),
    Noop(String),
}

pub fn parse(spec: &str) -> Result<Vec<Mutation>, String> {
    spec.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (kind, rest) = l
                .split_once(':')
                .ok_or_else(|| format!("mutation {l:?} has no kind"))?;
            let kv = || {
                rest.split_once('=')
                    .ok_or_else(|| format!("mutation {l:?} needs KEY=VALUE"))
            };
            let json = |v: &str| {
                serde_json::from_str::<Value>(v).map_err(|e| format!("mutation {l:?}: {e}"))
            };
            Ok(match kind {
                "drop" => Mutation::Drop(rest.into()),
                "set" => {
                    let (k, v) = kv()?;
                    Mutation::Set(k.into(), json(v)?)
                }
                "drop-mount" => Mutation::DropMount(rest.into()),
                "add-mount" => Mutation::AddMount(json(rest)?),
                "state" => {
                    let (k, v) = kv()?;
                    Mutation::State(k.into(), json(v)?)
                }
                "exit" => {
                    let (k, v) = kv()?;
                    Mutation::Exit(
                        k.into(),
                        v.parse().map_err(|e| format!("mutation {l:?}: {e}"))?,
                    )
                }
                "noop" => Mutation::Noop(rest.into()),
                other => return Err(format!("unknown mutation kind {other:?}")),
            })
        })
        .collect()
}

/// Applies the config mutations to a parsed config.json.
pub fn mutate_config(config: &mut Value, mutations: &[Mutation]) {
    for m in mutations {
        match m {
            Mutation::Drop(p) => {
                jsonptr::remove(config, p);
            }
            Mutation::Set(p, v) => jsonptr::set(config, p, v.clone()),
            Mutation::DropMount(dest) => {
                if let Some(Value::Array(mounts)) = config.get_mut("mounts") {
                    mounts.retain(|m| m.get("destination").and_then(|d| d.as_str()) != Some(dest));
                }
            }
            Mutation::AddMount(m) => jsonptr::push(config, "/mounts", m.clone()),
            _ => {}
        }
    }
}

/// Applies the state mutations to parsed `state` output.
pub fn mutate_state(state: &mut Value, mutations: &[Mutation]) {
    for m in mutations {
        if let Mutation::State(p, v) = m {
            jsonptr::set(state, p, v.clone());
        }
    }
}

/// The runtime command in `args` (the first non-flag word, skipping global
/// flags' values conservatively: our suite passes no global flags).
pub fn command_of(args: &[String]) -> Option<&str> {
    args.iter()
        .find(|a| !a.starts_with('-'))
        .map(|s| s.as_str())
}

/// The bundle directory of a `create`/`run` invocation.
pub fn bundle_of(args: &[String]) -> String {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--bundle" || a == "-b" {
            if let Some(v) = it.next() {
                return v.clone();
            }
        }
        if let Some(v) = a.strip_prefix("--bundle=") {
            return v.into();
        }
    }
    ".".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_kind() {
        let m = parse("drop:/hostname\nset:/process/cwd=\"/tmp\"\ndrop-mount:/proc\nstate:/status=\"x\"\nexit:start=0\nnoop:kill").unwrap();
        assert_eq!(m.len(), 6);
        assert_eq!(m[4], Mutation::Exit("start".into(), 0));
        assert!(parse("bogus:1").is_err());
    }

    #[test]
    fn drop_mount_removes_only_that_destination() {
        let mut c = json!({"mounts": [{"destination": "/proc"}, {"destination": "/dev"}]});
        mutate_config(&mut c, &[Mutation::DropMount("/proc".into())]);
        assert_eq!(c, json!({"mounts": [{"destination": "/dev"}]}));
    }

    #[test]
    fn finds_bundle_and_command() {
        let a: Vec<String> = ["create", "--bundle", "/b", "id"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(command_of(&a), Some("create"));
        assert_eq!(bundle_of(&a), "/b");
    }
}
