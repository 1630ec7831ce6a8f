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
declare -A times
# One timed run; leaves its tree in $BENCH_DIR/out-NAME.
run_once() {
	local name=$1 round=$2; shift 2
	local out=$BENCH_DIR/out-$name
	rm -rf "$out"
	sync
	local s e t
	s=$(now); "$@" "$out" >/dev/null; e=$(now)
	t=$(echo "$e - $s" | bc -l)
	echo "  round $round $name: ${t}s" >&2
	times[$name,$round]=$t
	if [ -z "${best[$name]:-}" ] || (( $(echo "$t < ${best[$name]}" | bc -l) )); then best[$name]=$t; fi
}

size=$(du -sm --apparent-size "$L/blobs" | cut -f1)
echo "image: $IMG ($size MB compressed), $RUNS interleaved rounds" >&2
# Rounds interleave the three so each sees the same machine load (this
# machine is shared); ratios are reported per round and for the best times.
for r in $(seq 1 "$RUNS"); do
	run_once umoci "$r" umoci unpack --image "$IMG"
	run_once floor "$r" floor
	run_once berth "$r" "$BB" unpack --quiet --image "$IMG"
	[ "$r" = "$RUNS" ] || rm -rf "$BENCH_DIR"/out-*
done

files=$(find "$BENCH_DIR/out-berth/rootfs" | wc -l)
usize=$(du -sm --apparent-size "$BENCH_DIR/out-berth/rootfs" | cut -f1)
# Both unpackers must agree before their times mean anything.
if ! diff <(cd "$BENCH_DIR/out-umoci/rootfs" && find . -printf '%p %y %m %U %G %s %l\n' | sort) \
	<(cd "$BENCH_DIR/out-berth/rootfs" && find . -printf '%p %y %m %U %G %s %l\n' | sort) >/dev/null; then
	echo "bench-unpack: berth-bundle and umoci trees differ" >&2; exit 1
fi
rm -rf "$BENCH_DIR"/out-*
printf '%-8s' round; for n in umoci floor berth; do printf ' %8s' "$n"; done; printf ' %12s %12s\n' "berth/umoci" "berth/floor"
for r in $(seq 1 "$RUNS"); do
	printf '%-8s' "$r"; for n in umoci floor berth; do printf ' %8.2f' "${times[$n,$r]}"; done
	printf ' %11.2fx %11.2fx\n' "$(echo "${times[umoci,$r]} / ${times[berth,$r]}" | bc -l)" "$(echo "${times[floor,$r]} / ${times[berth,$r]}" | bc -l)"
done
printf '%-8s' best; for n in umoci floor berth; do printf ' %8.2f' "${best[$n]}"; done
printf ' %11.2fx %11.2fx\n' "$(echo "${best[umoci]} / ${best[berth]}" | bc -l)" "$(echo "${best[floor]} / ${best[berth]}" | bc -l)"
echo "($files entries, $usize MB unpacked)"
