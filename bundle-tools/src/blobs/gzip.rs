//! gzip layers. flate2 on the zlib-rs backend inflates several times faster
//! than the Go stdlib inflate umoci uses; multi-member streams (pigz) work.

use std::io::{BufReader, Read};

pub fn decoder<R: Read>(r: R) -> impl Read {
    flate2::read::MultiGzDecoder::new(BufReader::with_capacity(256 << 10, r))
}
