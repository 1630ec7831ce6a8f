//! zstd layers (`tar+zstd`).

use anyhow::{Context, Result};
use std::io::{BufReader, Read, Write};

pub fn decoder<R: Read>(r: R) -> Result<impl Read> {
    ::zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(256 << 10, r))
        .context("initialise zstd decoder")
}

/// zstd at the default level 3, without a checksum or dictionary: the
/// frame depends on the content only.
pub fn encoder<W: Write>(w: W) -> Result<::zstd::stream::write::Encoder<'static, W>> {
    ::zstd::stream::write::Encoder::new(w, 3).context("initialise zstd encoder")
}
