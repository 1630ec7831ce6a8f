//! Applying layer changesets to a root filesystem: the tar walk
//! (`extract`), whiteouts, ownership maps and the decompression pipeline.

pub mod diff;
pub mod extract;
pub mod generate;
pub mod idmap;
pub mod path;
pub mod pipeline;
pub mod whiteouts;

pub use extract::{ExtractOptions, Extractor};
pub use idmap::IdMap;
