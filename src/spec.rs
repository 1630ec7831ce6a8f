//! The default `config.json` written by `berth spec` (and used by
//! berth-bundle as the base its image conversion starts from). The typed
//! default lives in the shared `berth-spec` crate; this module keeps the
//! runtime's JSON form of it.

use serde_json::Value;

pub use berth_spec::OCI_VERSION;

/// The default spec, typed; `rootless` maps the calling user to root in a
/// new user namespace and drops what an unprivileged user cannot set up.
pub fn default_spec_typed(rootless: bool) -> oci_spec::runtime::Spec {
    berth_spec::default_spec(rootless)
}

/// The default spec as JSON (what `berth spec` writes and tests edit).
pub fn default_spec(rootless: bool) -> Value {
    serde_json::to_value(berth_spec::default_spec(rootless))
        .expect("a typed spec always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_as_oci_spec() {
        let s: oci_spec::runtime::Spec = serde_json::from_value(default_spec(false)).unwrap();
        assert_eq!(s.hostname().as_deref(), Some("berth"));
        assert_eq!(s.mounts().as_ref().unwrap().len(), 7);
    }

    #[test]
    fn rootless_spec_has_userns_and_no_netns() {
        let s = default_spec(true);
        let types: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(types.contains(&"user"));
        assert!(!types.contains(&"network"));
        assert!(s["linux"].get("resources").is_none());
        let devpts = &s["mounts"][2]["options"];
        assert!(!devpts.as_array().unwrap().iter().any(|o| o == "gid=5"));
    }
}
