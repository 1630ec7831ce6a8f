#!/bin/bash
# make text-order: trace which functions berth's commands run (berth-bench
# text-order, single-stepping under ptrace; ~10 min) and write them, in the
# order they first run, to text-order.txt at the top of the repository,
# which build.rs hands to the linker. Rerun after changes to the start-up
# path or the dependencies; a stale list only costs memory (names that are
# gone are skipped).
#   bench/text-order.sh BERTH BERTH_BENCH OUT
set -euo pipefail
berth=$(realpath "${1:?berth binary}")
bench=$(realpath "${2:?berth-bench binary}")
out=${3:?output file}
busybox=$(command -v busybox)
tmp=$(mktemp -d /tmp/berth-text-order.XXXXXX)
root=$tmp/root
cleanup() {
	for id in to-run to-sleep; do "$berth" --root "$root" delete --force "$id" >/dev/null 2>&1 || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/b/rootfs/bin"
cp "$busybox" "$tmp/b/rootfs/bin/busybox"
for a in sh true sleep; do ln -s busybox "$tmp/b/rootfs/bin/$a"; done
cd "$tmp/b"
"$berth" spec
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"true"/' config.json
mkdir "$tmp/s" && ln -s ../b/rootfs "$tmp/s/rootfs"
sed 's/"true"$/"sleep", "1000"/' config.json >"$tmp/s/config.json"
# The commands, most used first: what containerd's shim, podman and the
# benchmark call.
script='set -e
B=$1; R="--root $2"; cd "$3"
$B $R run to-run
cd ../s
$B $R create to-sleep
$B $R start to-sleep
$B $R state to-sleep >/dev/null
$B $R list >/dev/null
$B $R list --format json >/dev/null
$B $R exec to-sleep true
$B $R exec --detach to-sleep true
$B $R ps to-sleep >/dev/null
$B $R pause to-sleep
$B $R resume to-sleep
$B $R events --stats to-sleep >/dev/null
$B $R update --pids-limit 100 to-sleep
$B $R kill to-sleep KILL
$B $R delete --force to-sleep
$B features >/dev/null
$B spec --rootless --bundle "$4"
$B --version >/dev/null'
mkdir "$tmp/spec"
"$bench" text-order "$berth" "$out" -- bash -c "$script" text-order "$berth" "$root" "$tmp/b" "$tmp/spec"
