#!/usr/bin/env bash
# Times `berth-bundle unpack` against `umoci unpack` and the practical floor
# (`gzip -dc LAYER | tar -x` per layer plus whiteout removal) on the same
# multi-layer image, in one run. The image (~650 MB, ~40k files, 4 gzip
# layers with whiteouts) is built once from this machine's /usr with umoci
# and cached in $BENCH_DIR.
#
#   bundle-tools/bench/unpack.sh [BERTH_BUNDLE]     (make bench-unpack)
#   env: BENCH_DIR (default /tmp/berth-bench-unpack), RUNS (default 3)
set -euo pipefail

BB=${1:-target/x86_64-unknown-linux-gnu/release/berth-bundle}
BENCH_DIR=${BENCH_DIR:-/tmp/berth-bench-unpack}
RUNS=${RUNS:-3}
L=$BENCH_DIR/layout
IMG=$L:bench

for t in umoci gzip tar; do
	command -v $t >/dev/null || { echo "bench-unpack: $t is not installed (make deps)" >&2; exit 1; }
done
[ -x "$BB" ] || { echo "bench-unpack: no $BB (cargo build --release -p berth-bundle)" >&2; exit 1; }

build_image() {
	echo "building benchmark image in $L (once)..." >&2
	rm -rf "$BENCH_DIR" && mkdir -p "$BENCH_DIR"
	local w=$BENCH_DIR/work
	umoci init --layout "$L" && umoci new --image "$IMG"
	umoci unpack --image "$IMG" "$w" >/dev/null
	local r=$w/rootfs
	mkdir -p "$r/usr/share" "$r/usr/lib"
	cp -a /usr/share/man /usr/share/zoneinfo /usr/share/i18n /usr/share/perl "$r/usr/share/"
	umoci repack --image "$IMG" "$w"
	cp -a /usr/include "$r/usr/"
	cp -a /usr/lib/python3 /usr/lib/python3.11 "$r/usr/lib/"
	umoci repack --image "$IMG" "$w"
	cp -a /usr/bin "$r/usr/"
	umoci repack --image "$IMG" "$w"
	# Deletions (whiteouts) and rewrites in the top layer.
	rm -rf "$r/usr/share/man/man3" "$r/usr/share/man/de" "$r/usr/include/linux"
	find "$r/usr/lib/python3.11" -name '*.pyc' -delete
	echo changed >"$r/usr/share/zoneinfo/UTC"
	umoci repack --image "$IMG" "$w"
	rm -rf "$w"
	touch "$BENCH_DIR/.complete"
}
[ -f "$BENCH_DIR/.complete" ] || build_image

now() { date +%s.%N; }

# The floor: decompress and untar each layer in order, then apply its
# whiteouts (what any unpacker must at least do).
floor() {
	local root=$1
	mkdir -p "$root"
	local m
	m=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="bench") | .digest' "$L/index.json")
	for d in $(jq -r '.layers[].digest' "$L/blobs/sha256/${m#sha256:}"); do
		gzip -dc "$L/blobs/sha256/${d#sha256:}" | tar -x -C "$root" --numeric-owner -p
		find "$root" -name '.wh.*' -print0 | while IFS= read -r -d '' wh; do
			base=$(basename "$wh")
			if [ "$base" = ".wh..wh..opq" ]; then
				find "$(dirname "$wh")" -mindepth 1 -maxdepth 1 ! -name '.wh..wh..opq' -exec rm -rf {} +
			else
				rm -rf "$(dirname "$wh")/${base#.wh.}"
			fi
			rm -f "$wh"
		done
	done
}

declare -A best
run() {
	local name=$1; shift
	local out=$BENCH_DIR/out-$name
	for i in $(seq 1 "$RUNS"); do
		rm -rf "$out"
		sync
		local s e
		s=$(now); "$@" "$out" >/dev/null; e=$(now)
		local t; t=$(echo "$e - $s" | bc -l)
		echo "  $name run $i: ${t}s" >&2
		if [ -z "${best[$name]:-}" ] || (( $(echo "$t < ${best[$name]}" | bc -l) )); then best[$name]=$t; fi
	done
}

size=$(du -sm --apparent-size "$L/blobs" | cut -f1)
echo "image: $IMG ($size MB compressed), $RUNS runs each, best time counts" >&2
run umoci umoci unpack --image "$IMG"
run floor floor
run berth "$BB" unpack --quiet --image "$IMG"

files=$(find "$BENCH_DIR/out-berth/rootfs" | wc -l)
usize=$(du -sm --apparent-size "$BENCH_DIR/out-berth/rootfs" | cut -f1)
# Both unpackers must agree before their times mean anything.
if ! diff <(cd "$BENCH_DIR/out-umoci/rootfs" && find . -printf '%p %y %m %U %G %s %l\n' | sort) \
	<(cd "$BENCH_DIR/out-berth/rootfs" && find . -printf '%p %y %m %U %G %s %l\n' | sort) >/dev/null; then
	echo "bench-unpack: berth-bundle and umoci trees differ" >&2; exit 1
fi
rm -rf "$BENCH_DIR"/out-*
printf '%-14s %8s %10s\n' unpacker seconds "vs umoci"
for n in umoci floor berth; do
	printf '%-14s %8.2f %9.2fx\n' "$n" "${best[$n]}" "$(echo "${best[umoci]} / ${best[$n]}" | bc -l)"
done
echo "($files entries, $usize MB unpacked)"
