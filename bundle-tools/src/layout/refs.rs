//! Image references on the command line: `LAYOUT[:TAG]` or
//! `LAYOUT@sha256:DIGEST`, plus `oci-archive:FILE` / `docker-archive:FILE`.

use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// No tag given: the layout's only image, else `latest`.
    Default,
    Tag(String),
    Digest(String),
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Default => write!(f, "(no tag given, and no single image or \"latest\")"),
            Selector::Tag(t) => write!(f, "tagged {t:?}"),
            Selector::Digest(d) => write!(f, "with digest {d}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    Layout {
        path: PathBuf,
        sel: Selector,
    },
    /// `oci-archive:FILE[:REF]`
    OciArchive(PathBuf, Option<String>),
    /// `docker-archive:FILE[:REF]` (REF a RepoTag, or `@N`)
    DockerArchive(PathBuf, Option<String>),
}

/// `FILE[:REF]` as skopeo names archive images: the first `:` after which
/// what precedes is an existing file starts REF.
fn split_archive(s: &str) -> (PathBuf, Option<String>) {
    if std::path::Path::new(s).is_file() {
        return (s.into(), None);
    }
    for (i, _) in s.match_indices(':') {
        if std::path::Path::new(&s[..i]).is_file() {
            return (
                s[..i].into(),
                Some(s[i + 1..].to_string()).filter(|r| !r.is_empty()),
            );
        }
    }
    (s.into(), None)
}

impl ImageRef {
    pub fn parse(s: &str) -> Self {
        if let Some(f) = s.strip_prefix("oci-archive:") {
            let (f, r) = split_archive(f);
            return ImageRef::OciArchive(f, r);
        }
        if let Some(f) = s.strip_prefix("docker-archive:") {
            let (f, r) = split_archive(f);
            return ImageRef::DockerArchive(f, r);
        }
        let s = s.strip_prefix("oci:").unwrap_or(s);
        let (path, sel) = split_layout_ref(s);
        ImageRef::Layout { path, sel }
    }
}

/// Split `LAYOUT[:TAG]` / `LAYOUT@DIGEST`. A ':' only starts a tag after the
/// last '/', so layout paths may contain colons in directory names.
pub fn split_layout_ref(s: &str) -> (PathBuf, Selector) {
    // An existing layout followed by `:TAG` wins, so tags may hold ':' and
    // '/' (`LAYOUT:docker.io/library/busybox:1.36`, as import keeps names).
    for (i, _) in s.match_indices(':') {
        if i + 1 < s.len() && std::path::Path::new(&s[..i]).join("oci-layout").is_file() {
            return (s[..i].into(), Selector::Tag(s[i + 1..].to_string()));
        }
    }
    let last = s.rfind('/').map(|i| i + 1).unwrap_or(0);
    let tail = &s[last..];
    if let Some(i) = tail.find('@') {
        return (
            s[..last + i].into(),
            Selector::Digest(tail[i + 1..].to_string()),
        );
    }
    if let Some(i) = tail.rfind(':') {
        if i + 1 < tail.len() {
            return (
                s[..last + i].into(),
                Selector::Tag(tail[i + 1..].to_string()),
            );
        }
    }
    (s.trim_end_matches(':').into(), Selector::Default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_digests_and_archives() {
        assert_eq!(
            split_layout_ref("img:v1"),
            ("img".into(), Selector::Tag("v1".into()))
        );
        assert_eq!(
            split_layout_ref("/a:b/img"),
            ("/a:b/img".into(), Selector::Default)
        );
        assert_eq!(
            split_layout_ref("./x@sha256:ab"),
            ("./x".into(), Selector::Digest("sha256:ab".into()))
        );
        assert_eq!(
            ImageRef::parse("oci-archive:/t.tar"),
            ImageRef::OciArchive("/t.tar".into(), None)
        );
        assert_eq!(
            ImageRef::parse("docker-archive:t.tar"),
            ImageRef::DockerArchive("t.tar".into(), None)
        );
    }
}
