//! gzip layers. flate2 on the zlib-rs backend inflates several times faster
//! than the Go stdlib inflate umoci uses; multi-member streams (pigz) work.

use std::io::{BufReader, Read, Write};

pub fn decoder<R: Read>(r: R) -> impl Read {
    flate2::read::MultiGzDecoder::new(BufReader::with_capacity(256 << 10, r))
}

/// A deterministic gzip stream: no file name, header time 0 (flate2's
/// default), level 6 like `gzip`.
pub fn encoder<W: Write>(w: W) -> flate2::write::GzEncoder<W> {
    flate2::write::GzEncoder::new(w, flate2::Compression::new(6))
}
