//! Applying layer changesets to a root filesystem: the tar walk
//! (`extract`), whiteouts, ownership maps and the decompression pipeline.

pub mod extract;
pub mod idmap;
pub mod path;
pub mod pipeline;
pub mod whiteouts;

pub use extract::{ExtractOptions, Extractor};
pub use idmap::IdMap;
