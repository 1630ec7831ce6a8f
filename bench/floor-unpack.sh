#!/usr/bin/env bash
# The unpack floor: what any unpacker must at least do. Each gzip layer is
# decompressed and untarred in order (`gzip -dc | tar -x`), then the
# whiteouts that layer brought are applied (the benchmark images have
# plain whiteouts only; an opaque one is applied naively, after the layer).
#
#   bench/floor-unpack.sh OUT LAYER_BLOB...    (OUT/rootfs is made)
set -euo pipefail
root=$1/rootfs
shift
mkdir -p "$root"
for blob in "$@"; do
	gzip -dc "$blob" | tar -x -C "$root" --numeric-owner -p
	find "$root" -name '.wh.*' -print0 | while IFS= read -r -d '' wh; do
		base=${wh##*/}
		if [ "$base" = .wh..wh..opq ]; then
			find "${wh%/*}" -mindepth 1 -maxdepth 1 ! -name .wh..wh..opq -exec rm -rf {} +
		else
			rm -rf "${wh%/*}/${base#.wh.}"
		fi
		rm -f "$wh"
	done
done
