//! The JSON documents of an image layout, as `oci-spec`'s image types
//! (descriptors, indexes, manifests, image configs), plus what those types
//! leave to the caller: Docker's media types, the ref-name annotation, and
//! a lenient reading of image configs.
//!
//! Where the types do not fit, raw JSON is used instead, on purpose:
//! - documents we rewrite but did not write (index.json on tag/untag, image
//!   configs on commit/config) are edited as `serde_json::Value`: the typed
//!   structs drop fields they do not know (Docker's `Healthcheck`,
//!   `container_config`, future spec fields), and oci-spec 0.10's
//!   `Platform` names `os.version`/`os.features` `os_version`/`os_features`;
//! - `ImageConfiguration` requires `rootfs`, `architecture` and `os`, which
//!   real (and hand-made) configs omit, so those are filled in before parsing;
//! - digests used as file names are re-validated by `blobs::Digest`
//!   (oci-spec accepts any registered algorithm and encoding).

use crate::blobs::Digest;
use anyhow::{Context, Result};
pub use oci_spec::image::{
    Arch, Config as RunConfig, Descriptor, History, ImageConfiguration, ImageIndex, ImageManifest,
    MediaType, Os, Platform,
};
use std::collections::HashMap;
use std::str::FromStr;

pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

pub fn is_index(mt: &MediaType) -> bool {
    matches!(mt, MediaType::ImageIndex) || mt.to_string() == MT_DOCKER_LIST
}

pub fn is_manifest(mt: &MediaType) -> bool {
    matches!(mt, MediaType::ImageManifest) || mt.to_string() == MT_DOCKER_MANIFEST
}

/// The tag an index.json entry carries.
pub fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()?
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
}

/// Our (validated) digest as oci-spec's.
pub fn oci_digest(d: &Digest) -> oci_spec::image::Digest {
    oci_spec::image::Digest::from_str(&d.to_string()).expect("a validated digest is a digest")
}

/// The blob digest a descriptor names, validated for use as a path.
pub fn blob_digest(d: &Descriptor) -> Result<Digest> {
    Digest::parse(d.digest().as_ref())
}

pub fn descriptor(mt: MediaType, d: &Digest, size: u64) -> Descriptor {
    Descriptor::new(mt, size, oci_digest(d))
}

/// `os/arch[/variant]`.
pub fn platform_name(p: &Platform) -> String {
    let mut s = format!("{}/{}", p.os(), p.architecture());
    if let Some(v) = p.variant() {
        s.push('/');
        s.push_str(v);
    }
    s
}

pub fn platform(os: &str, arch: &str, variant: Option<String>) -> Platform {
    let mut p = Platform::default();
    p.set_os(Os::from(os));
    p.set_architecture(Arch::from(arch));
    p.set_variant(variant);
    p
}

/// An empty-annotation-free index listing `manifests`.
pub fn new_index(manifests: Vec<Descriptor>) -> ImageIndex {
    let mut i: ImageIndex = serde_json::from_value(serde_json::json!({
        "schemaVersion": 2, "manifests": []
    }))
    .expect("minimal index");
    i.set_media_type(Some(MediaType::ImageIndex));
    i.set_manifests(manifests);
    i
}

pub fn set_ref_name(d: &mut Descriptor, tag: &str) {
    let mut a = d.annotations().clone().unwrap_or_default();
    a.insert(ANNOTATION_REF_NAME.into(), tag.into());
    d.set_annotations(Some(a));
}

pub fn without_annotations(mut d: Descriptor) -> Descriptor {
    d.set_annotations(None::<HashMap<String, String>>);
    d
}

/// Parse an image config, filling in what real configs leave out and
/// oci-spec requires (`rootfs`, `architecture`, `os`).
pub fn parse_config(raw: &serde_json::Value) -> Result<ImageConfiguration> {
    let mut v = raw.clone();
    if let Some(o) = v.as_object_mut() {
        o.entry("rootfs")
            .or_insert_with(|| serde_json::json!({"type": "layers", "diff_ids": []}));
        if let Some(r) = o.get_mut("rootfs").and_then(|r| r.as_object_mut()) {
            r.entry("type").or_insert_with(|| "layers".into());
            r.entry("diff_ids").or_insert_with(|| serde_json::json!([]));
        }
        o.entry("architecture").or_insert_with(|| "".into());
        o.entry("os").or_insert_with(|| "".into());
    }
    serde_json::from_value(v).context("not an image config")
}

/// `os`/`architecture` of a config as strings ("" when absent).
pub fn config_os_arch(c: &ImageConfiguration) -> (String, String) {
    (c.os().to_string(), c.architecture().to_string())
}
