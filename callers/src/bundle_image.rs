//! Images made by berth-bundle, for the callers to import and run: the
//! harness's busybox archive imported into a layout, unpacked (once flat,
//! once as an overlay bundle on a store), changed (a new file, a new
//! directory, a deleted applet: a whiteout), committed with config changes
//! and exported — the flat one as an oci-archive with zstd layers, the
//! overlay one as a docker-archive (gzip in the layout, uncompressed in the
//! archive, as `docker save` writes it).

use std::path::{Path, PathBuf};

use crate::proc::Cmd;

pub const OCI_NAME: &str = "localhost/berth-bundle/flat:1";
pub const DOCKER_NAME: &str = "localhost/berth-bundle/overlay:1";

/// The container's command in both images (from `--change CMD`).
const CMD: &str = r#"CMD ["sh", "-c", "cat /greeting; echo env:$GREETING; pwd; test -e /bin/vi || echo whiteout-ok"]"#;

pub struct BundleImages {
    /// oci-archive:FILE:OCI_NAME (flat bundle, zstd layer).
    pub oci: PathBuf,
    /// docker-archive:FILE:DOCKER_NAME (overlay bundle).
    pub docker: PathBuf,
}

/// What a container of the image called `kind` must print.
pub fn expected(kind: &str) -> Vec<String> {
    vec![
        format!("made by berth-bundle ({kind})"),
        format!("env:{kind}"),
        "/srv".into(),
        "whiteout-ok".into(),
    ]
}

/// Check a container's output against `expected(kind)`, line by line.
pub fn check_output(kind: &str, stdout: &str) -> Result<(), String> {
    let got: Vec<&str> = stdout.lines().map(str::trim_end).collect();
    let want = expected(kind);
    if got != want {
        return Err(format!("the committed image printed {got:?}, not {want:?}"));
    }
    Ok(())
}

fn tool(t: &Path, args: &[&str]) -> Result<(), String> {
    let mut v = vec![t.to_str().ok_or("berth-bundle path")?];
    v.extend_from_slice(args);
    Cmd::new(&v).timeout(120).run().check().map(|_| ())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn change(rootfs: &Path, kind: &str) -> Result<(), String> {
    let e = |e: std::io::Error| format!("change {}: {e}", rootfs.display());
    std::fs::write(
        rootfs.join("greeting"),
        format!("made by berth-bundle ({kind})\n"),
    )
    .map_err(e)?;
    std::fs::create_dir(rootfs.join("srv")).map_err(e)?;
    std::fs::remove_file(rootfs.join("bin/vi")).map_err(e)
}

fn commit(t: &Path, bundle: &Path, image: &str, compress: &str, kind: &str) -> Result<(), String> {
    tool(
        t,
        &[
            "commit",
            s(bundle),
            "--image",
            image,
            "--compress",
            compress,
            "--message",
            "berth-callers round trip",
            "--change",
            &format!("ENV GREETING={kind}"),
            "--change",
            "WORKDIR /srv",
            "--change",
            CMD,
        ],
    )
}

/// Build both archives under `dir` from the docker-archive `base`.
pub fn build(t: &Path, dir: &Path, base: &Path) -> Result<BundleImages, String> {
    if !t.is_file() {
        return Err(format!("no berth-bundle at {} (make build)", t.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let layout = dir.join("layout");
    let l = s(&layout);
    tool(t, &["import", s(base), &format!("{l}:base")])?;

    let flat = dir.join("flat");
    tool(
        t,
        &[
            "unpack",
            "--quiet",
            "--image",
            &format!("{l}:base"),
            s(&flat),
        ],
    )?;
    change(&flat.join("rootfs"), "flat")?;
    commit(t, &flat, &format!("{l}:flat"), "zstd", "flat")?;
    let oci = dir.join("flat-oci.tar");
    tool(
        t,
        &[
            "export",
            &format!("{l}:flat"),
            &format!("oci-archive:{}:{OCI_NAME}", oci.display()),
        ],
    )?;

    let ov = dir.join("overlay");
    let store = dir.join("store");
    tool(
        t,
        &[
            "unpack",
            "--quiet",
            "--overlay",
            "--store",
            s(&store),
            "--image",
            &format!("{l}:base"),
            s(&ov),
        ],
    )?;
    let built = change(&ov.join("rootfs"), "overlay")
        .and_then(|()| commit(t, &ov, &format!("{l}:overlay"), "gzip", "overlay"));
    // The overlay bundle is unmounted and released whatever happened.
    let removed = tool(t, &["rm", s(&ov), s(&flat)]);
    built?;
    removed?;
    let docker = dir.join("overlay-docker.tar");
    tool(
        t,
        &[
            "export",
            &format!("{l}:overlay"),
            &format!("docker-archive:{}:{DOCKER_NAME}", docker.display()),
        ],
    )?;
    Ok(BundleImages { oci, docker })
}

/// The archive of `kind` ("flat": oci-archive, "overlay": docker-archive)
/// and the name it carries.
pub fn archive<'a>(
    b: &'a Result<BundleImages, String>,
    kind: &str,
) -> Result<(&'a Path, &'static str), String> {
    let b = b
        .as_ref()
        .map_err(|e| format!("berth-bundle images: {e}"))?;
    Ok(match kind {
        "flat" => (b.oci.as_path(), OCI_NAME),
        _ => (b.docker.as_path(), DOCKER_NAME),
    })
}
