//! berth-bundle: turn OCI images (layouts, OCI and docker archives) into
//! runtime bundles for berth.
//!
//! `layout` finds the image, `blobs` reads it verified, `layer` applies the
//! changesets into the rootfs, `convert` writes config.json and `unpack`
//! ties these together with the all-or-nothing bundle creation.

pub mod archive;
pub mod blobs;
pub mod bundle;
pub mod cli;
pub mod clock;
pub mod commit;
pub mod config_edit;
pub mod convert;
pub mod images;
pub mod layer;
pub mod layout;
pub mod overlay;
pub mod progress;
pub mod store;
pub mod tempdir;
pub mod tree;
pub mod unpack;

/// The syscall layer (the `berth-sys` crate, shared with the runtime).
pub use berth_sys as sys;
