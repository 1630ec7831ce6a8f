use crate::archive;
use crate::layout::refs::{split_layout_ref, Selector};
use anyhow::{bail, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// docker-archive (`docker save`) or OCI archive tarball, optionally
    /// FILE:REF to import one image of several
    file: String,
    /// Destination LAYOUT[:TAG] (the layout is created if missing); without
    /// TAG the archive's names (RepoTags, ref.name) become the tags
    dest: String,
}

pub fn run(a: Args) -> Result<()> {
    let (file, pick) =
        match crate::layout::refs::ImageRef::parse(&format!("oci-archive:{}", a.file)) {
            crate::layout::refs::ImageRef::OciArchive(f, r) => (f, r),
            _ => (PathBuf::from(&a.file), None),
        };
    let (layout, sel) = split_layout_ref(&a.dest);
    match sel {
        Selector::Tag(tag) => {
            let d = archive::import_one(&file, pick.as_deref(), &layout, &tag)?;
            println!("{}:{tag} {}", layout.display(), d.digest());
        }
        Selector::Default if pick.is_some() => {
            let d = archive::import_one(&file, pick.as_deref(), &layout, "latest")?;
            println!("{}:latest {}", layout.display(), d.digest());
        }
        Selector::Default => {
            for (tag, d) in archive::import_keeping_names(&file, &layout)? {
                println!("{}:{tag} {}", layout.display(), d.digest());
            }
        }
        Selector::Digest(_) => bail!("import destination must be LAYOUT[:TAG], not a digest"),
    }
    Ok(())
}
