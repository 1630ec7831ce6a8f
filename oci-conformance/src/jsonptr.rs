//! Editing JSON by RFC 6901 pointer, creating objects and arrays on the way.

use serde_json::{Map, Value};

fn tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn step<'v>(v: &'v mut Value, token: &str) -> Option<&'v mut Value> {
    if v.is_null() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => Some(m.entry(token.to_string()).or_insert(Value::Null)),
        Value::Array(a) => token.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
        _ => None,
    }
}

/// Sets `pointer` to `value`; missing objects are created.
pub fn set(root: &mut Value, pointer: &str, value: Value) {
    let mut cur = root;
    for t in tokens(pointer) {
        match step(cur, &t) {
            Some(next) => cur = next,
            None => return,
        }
    }
    *cur = value;
}

/// Removes the key or array element at `pointer`. Returns whether it existed.
pub fn remove(root: &mut Value, pointer: &str) -> bool {
    let toks = tokens(pointer);
    let Some((last, parents)) = toks.split_last() else {
        return false;
    };
    let mut cur = root;
    for t in parents {
        cur = match cur {
            Value::Object(m) => match m.get_mut(t) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(a) => match t.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match cur {
        Value::Object(m) => m.remove(last).is_some(),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Appends `value` to the array at `pointer` (created when missing).
pub fn push(root: &mut Value, pointer: &str, value: Value) {
    let mut cur = root;
    for t in tokens(pointer) {
        match step(cur, &t) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if !cur.is_array() {
        *cur = Value::Array(Vec::new());
    }
    if let Value::Array(a) = cur {
        a.push(value);
    }
}

/// The strings in the array `v` (none when it is not an array).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_creates_missing_objects() {
        let mut v = json!({});
        set(&mut v, "/linux/resources/pids/limit", json!(5));
        assert_eq!(v, json!({"linux": {"resources": {"pids": {"limit": 5}}}}));
    }

    #[test]
    fn remove_deletes_array_elements_and_keys() {
        let mut v = json!({"a": [1, 2, 3], "b": 1});
        assert!(remove(&mut v, "/a/1"));
        assert!(remove(&mut v, "/b"));
        assert!(!remove(&mut v, "/c"));
        assert_eq!(v, json!({"a": [1, 3]}));
    }

    #[test]
    fn push_appends_and_creates() {
        let mut v = json!({});
        push(&mut v, "/hooks/prestart", json!({"path": "/x"}));
        push(&mut v, "/hooks/prestart", json!({"path": "/y"}));
        assert_eq!(v["hooks"]["prestart"].as_array().map(|a| a.len()), Some(2));
    }
}
