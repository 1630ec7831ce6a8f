#!/bin/bash
# guest/test-cgroups.sh v2|v1: build the cgroup test binaries and run them
# inside the test guest, booted with cgroup2 (v2) or with cgroup v1
# hierarchies (v1, hybrid as on a v1 host). `make test` runs the version the
# host does not have (guest/host-cgroups prints which the host has); the
# other runs on the host itself. Skips (exit 0) with the reason only when
# qemu cannot run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo=${CARGO:-cargo}
case ${1:-} in
# NAME:FILTER runs only the tests of NAME that match FILTER (rootless: the
# others are for the host and skip in the guest).
v2) tests=(cgroups_v2 cgroups_effects cgroups_events exec_cgroup rootless:delegated_cgroup_v2_subtree_is_used); boot=() ;;
v1) tests=(cgroups_v1 cgroups_effects cgroups_events container_cgroups); boot=(--cgroup-v1) ;;
*) echo "usage: $0 v1|v2" >&2; exit 2 ;;
esac
args=()
declare -A filter=()
for t in "${tests[@]}"; do
	args+=(--test "${t%%:*}")
	[ "$t" = "${t%%:*}" ] || filter[${t%%:*}]=${t#*:}
done
bins=$($cargo test --release --no-run --message-format=json "${args[@]}" \
	| jq -r 'select(.reason == "compiler-artifact" and .profile.test == true) | .executable // empty')
[ -n "$bins" ] || { echo "no test binaries built" >&2; exit 1; }
# Every binary runs even if an earlier one fails; the status is the worst.
# BERTH_TEST_ARGS (e.g. --nocapture, a test name) is passed to each binary.
cmd="cd '$root' || exit 1; rc=0"
for b in $bins; do
	n=$(basename "$b")
	cmd+="; echo '== $n'; '$b' --test-threads=1 ${filter[${n%-*}]:-} ${BERTH_TEST_ARGS:-} || rc=1"
done
cmd+="; exit \$rc"
set +e
"$root/guest/run.sh" "${boot[@]}" "$cmd"
rc=$?
set -e
if [ $rc -eq 77 ]; then
	echo "test-cgroups $1: skipped (qemu cannot run here)"
	exit 0
fi
exit $rc
