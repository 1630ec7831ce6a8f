#!/usr/bin/env bash
# berth-bundle's other half, measured: an overlay bundle of a cached image
# (`unpack --overlay`, the store already holding its layers) and `commit`
# of 100 changed files against `umoci repack` of the same change, on a
# ~300 MB, 2-layer gzip image built once from this machine's /usr with
# umoci and cached in $BENCH_DIR. Prints one line per figure.
#
#   bundle-tools/bench/commit.sh [BERTH_BUNDLE]     (make bench-commit)
#   env: BENCH_DIR (default /tmp/berth-bench-commit), RUNS (default 5)
set -euo pipefail

BB=$(realpath "${1:-target/x86_64-unknown-linux-gnu/release/berth-bundle}")
BENCH_DIR=${BENCH_DIR:-/tmp/berth-bench-commit}
RUNS=${RUNS:-5}
L=$BENCH_DIR/layout
IMG=$L:bench

for t in umoci bc; do
	command -v $t >/dev/null || { echo "bench-commit: $t is not installed (make deps)" >&2; exit 1; }
done

build_image() {
	echo "building the ~300 MB benchmark image in $L (once)..." >&2
	rm -rf "$BENCH_DIR" && mkdir -p "$BENCH_DIR"
	local w=$BENCH_DIR/work
	umoci init --layout "$L" && umoci new --image "$IMG"
	umoci unpack --image "$IMG" "$w" >/dev/null
	mkdir -p "$w/rootfs/usr/share" "$w/rootfs/usr/lib"
	cp -a /usr/share/zoneinfo /usr/share/perl /usr/share/i18n "$w/rootfs/usr/share/" 2>/dev/null || true
	cp -a /usr/include "$w/rootfs/usr/"
	umoci repack --image "$IMG" "$w"
	cp -a /usr/lib/python3 /usr/bin "$w/rootfs/usr/" 2>/dev/null || true
	cp -a /usr/lib/python3.11 "$w/rootfs/usr/lib/" 2>/dev/null || true
	umoci repack --image "$IMG" "$w"
	rm -rf "$w"
	touch "$BENCH_DIR/.complete"
}
[ -f "$BENCH_DIR/.complete" ] || build_image

now() { date +%s.%N; }
S=$BENCH_DIR/run
rm -rf "$S" && mkdir -p "$S"
cleanup() {
	for b in "$S"/ov*; do [ -d "$b" ] && "$BB" rm "$b" >/dev/null 2>&1 || true; done
	rm -rf "$S"
}
trap cleanup EXIT

# 100 files changed: 60 rewritten, 20 added, 20 deleted.
change() {
	local r=$1
	find "$r/usr/include" -type f -name '*.h' | sort | awk 'NR <= 80' >"$S/files"
	awk 'NR <= 60' "$S/files" | while read -r f; do echo "/* changed */" >>"$f"; done
	awk 'NR > 60' "$S/files" | xargs rm -f
	mkdir -p "$r/added"
	for i in $(seq 1 20); do echo "new $i" >"$r/added/f$i"; done
}

size=$(du -sm --apparent-size "$L/blobs" | cut -f1)
echo "image: $IMG ($size MB compressed)"

# Overlay bundle of a cached image: first unpack fills the store.
"$BB" unpack --overlay --store "$S/store" --quiet --image "$IMG" "$S/ov0"
best=
for r in $(seq 1 "$RUNS"); do
	s=$(now); "$BB" unpack --overlay --store "$S/store" --quiet --image "$IMG" "$S/ov$r"; e=$(now)
	t=$(echo "($e - $s) * 1000" | bc -l)
	if [ -z "$best" ] || (( $(echo "$t < $best" | bc -l) )); then best=$t; fi
done
printf 'overlay-cached-ms %.1f (best of %d)\n' "$best" "$RUNS"

# commit of the change vs umoci repack of the same change.
bbest= ; ubest=
for r in $(seq 1 "$RUNS"); do
	"$BB" unpack --quiet --image "$IMG" "$S/flat"
	change "$S/flat/rootfs"
	s=$(now); "$BB" commit "$S/flat" --image "$L:bb-$r" >/dev/null; e=$(now)
	bt=$(echo "$e - $s" | bc -l)
	umoci unpack --image "$IMG" "$S/um" >/dev/null
	change "$S/um/rootfs"
	s=$(now); umoci repack --image "$L:um-$r" "$S/um" >/dev/null; e=$(now)
	ut=$(echo "$e - $s" | bc -l)
	printf '  round %d: berth-bundle commit %.3fs, umoci repack %.3fs\n' "$r" "$bt" "$ut" >&2
	if [ -z "$bbest" ] || (( $(echo "$bt < $bbest" | bc -l) )); then bbest=$bt; fi
	if [ -z "$ubest" ] || (( $(echo "$ut < $ubest" | bc -l) )); then ubest=$ut; fi
	"$BB" rm "$S/flat" >/dev/null; rm -rf "$S/um"
	"$BB" rmi "$L:bb-$r" >/dev/null; umoci rm --image "$L:um-$r" >/dev/null 2>&1 || "$BB" rmi "$L:um-$r" >/dev/null
done
"$BB" gc "$L" >/dev/null
printf 'commit-100-files-s %.3f\n' "$bbest"
printf 'umoci-repack-s %.3f\n' "$ubest"
printf 'commit-speedup %.1fx\n' "$(echo "$ubest / $bbest" | bc -l)"
