#!/bin/bash
# `make test-cgroup2`: build the cgroup test binaries and run them inside the
# cgroup v2 guest. Skips (exit 0) with the reason only when qemu cannot run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo=${CARGO:-cargo}
tests=(cgroups_v2 cgroups_effects cgroups_events)
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
bins=$($cargo test --no-run --message-format=json "${args[@]}" \
	| jq -r 'select(.reason == "compiler-artifact" and .profile.test == true) | .executable // empty')
[ -n "$bins" ] || { echo "no test binaries built" >&2; exit 1; }
cmd="cd '$root'"
for b in $bins; do
	cmd+=" && echo '== $(basename "$b")' && '$b' --test-threads=1"
done
set +e
"$root/guest/run.sh" "$cmd"
rc=$?
set -e
if [ $rc -eq 77 ]; then
	echo "test-cgroup2: skipped (qemu cannot run here)"
	exit 0
fi
exit $rc
