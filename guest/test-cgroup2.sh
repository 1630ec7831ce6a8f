#!/bin/bash
# `make test-cgroup2`: build the cgroup test binaries and run them inside the
# cgroup v2 guest. Skips (exit 0) with the reason only when qemu cannot run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo=${CARGO:-cargo}
tests=(cgroups_v2 cgroups_effects cgroups_events exec_cgroup)
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
bins=$($cargo test --release --no-run --message-format=json "${args[@]}" \
	| jq -r 'select(.reason == "compiler-artifact" and .profile.test == true) | .executable // empty')
[ -n "$bins" ] || { echo "no test binaries built" >&2; exit 1; }
# Every binary runs even if an earlier one fails; the status is the worst.
# BERTH_TEST_ARGS (e.g. --nocapture, a test name) is passed to each binary.
cmd="cd '$root' || exit 1; rc=0"
for b in $bins; do
	cmd+="; echo '== $(basename "$b")'; '$b' --test-threads=1 ${BERTH_TEST_ARGS:-} || rc=1"
done
cmd+="; exit \$rc"
set +e
"$root/guest/run.sh" "$cmd"
rc=$?
set -e
if [ $rc -eq 77 ]; then
	echo "test-cgroup2: skipped (qemu cannot run here)"
	exit 0
fi
exit $rc
