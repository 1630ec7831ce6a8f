#!/bin/bash
# The systemd cgroup driver and CRIU suites inside the test guest booted
# with systemd as PID 1: once on cgroup v2, once with
# systemd.unified_cgroup_hierarchy=0 (v1 as systemd mounts it). CRIU runs
# in the v2 boot only. Skips (exit 0) with the reason only when qemu cannot
# run. BERTH_TEST_ARGS (e.g. --nocapture, a test name) goes to each binary;
# BERTH_SYSTEMD_MODES (default "v2 v1") picks the boots.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo=${CARGO:-cargo}
build() {
	local args=()
	for t in "$@"; do args+=(--test "$t"); done
	$cargo test --release --no-run --message-format=json "${args[@]}" \
		| jq -r 'select(.reason == "compiler-artifact" and .profile.test == true) | .executable // empty'
}
v2_tests=(systemd_cgroup checkpoint)
# Two callers' checkpoint/restore round trips (ctr and podman, runc and
# berth side by side; see callers/README.md), in the v2 boot where CRIU
# works.
callers_args="--only ctr,podman --filter checkpoint"
v1_tests=(systemd_cgroup)
rc=0
for mode in ${BERTH_SYSTEMD_MODES:-v2 v1}; do
	if [ "$mode" = v2 ]; then bins=$(build "${v2_tests[@]}"); flag=--systemd; else bins=$(build "${v1_tests[@]}"); flag=--systemd-v1; fi
	[ -n "$bins" ] || { echo "no test binaries built" >&2; exit 1; }
	# A guest that lacks systemd (or, on v2, a working CRIU) fails the tests
	# instead of letting them skip.
	cmd="cd '$root' || exit 1; export BERTH_GUEST_SYSTEMD=1; r=0"
	[ "$mode" = v2 ] && cmd+="; export BERTH_GUEST_CRIU=1"
	for b in $bins; do
		cmd+="; echo '== $(basename "$b") (systemd, cgroup $mode)'; '$b' --test-threads=1 ${BERTH_TEST_ARGS:-} || r=1"
	done
	if [ "$mode" = v2 ]; then
		rel=$($cargo build --release -p berth -p berth-callers --message-format=json \
			| jq -r 'select(.reason == "compiler-artifact" and .target.name == "berth-callers") | .executable // empty' | xargs dirname)
		cmd+="; echo '== berth-callers $callers_args (systemd, cgroup v2)'; '$rel/berth-callers' --berth '$rel/berth' $callers_args --records /tmp/berth-callers-records || r=1"
	fi
	cmd+="; exit \$r"
	set +e
	"$root/guest/run.sh" $flag "$cmd"
	r=$?
	set -e
	if [ $r -eq 77 ]; then
		echo "test-systemd: skipped (qemu cannot run here)"
		exit 0
	fi
	[ $r -eq 0 ] || rc=$r
done
exit $rc
