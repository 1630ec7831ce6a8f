//! zstd layers (`tar+zstd`).

use anyhow::{Context, Result};
use std::io::{BufReader, Read};

pub fn decoder<R: Read>(r: R) -> Result<impl Read> {
    ::zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(256 << 10, r))
        .context("initialise zstd decoder")
}
