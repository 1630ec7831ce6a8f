#!/bin/bash
# The conformance suite's cgroup v2 cases (tag:cgroup-v2), and the cases
# whose mechanism differs on v2 (freezer, eBPF device filter, stats, cgroup
# namespace, cgroup removal), inside the cgroup v2 guest, against berth and
# runc (and crun) side by side. Writes
# oci-conformance/RESULTS-cgroup2.md. Skips (exit 0) with the reason only when
# qemu cannot run. Exit status: non-zero when berth fails an assertion a peer
# passes there, or a case does not fail against its mutant.
#   guest/conformance-cgroup2.sh SUITE_BINARY BERTH_BINARY
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
suite=$(realpath "$1") berth=$(realpath "$2")
out=$root/oci-conformance/RESULTS-cgroup2.md
filter=tag:cgroup-v2,pause.resume,cgroups.devices.enforced,cgroups.events-stats,delete.stopped,ns.new.cgroup,ns.path.cgroup
mutants=$(${CARGO:-cargo} test --release --no-run --message-format=json -p oci-conformance --test mutants \
	| jq -r 'select(.reason == "compiler-artifact" and .profile.test == true) | .executable // empty')
[ -n "$mutants" ] || { echo "conformance-cgroup2: the mutant self-test did not build" >&2; exit 1; }
# /run is read-only in the guest (the host's / over 9p): state roots in /tmp.
cmd="mkdir -p /tmp/berth-root /tmp/runc-root /tmp/crun-root /tmp/out"
cmd+="; args=(--runtime '$berth' --label berth --root /tmp/berth-root)"
if runc=$(command -v runc 2>/dev/null); then
	v=$("$runc" --version | awk 'NR==1 {print $3}')
	cmd+="; args+=(--runtime '$runc' --label 'runc $v' --root /tmp/runc-root)"
fi
if crun=$(command -v crun 2>/dev/null); then
	v=$("$crun" --version | awk 'NR==1 {print $3}')
	cmd+="; args+=(--runtime '$crun' --label 'crun $v (ociVersion 1.1.0)' --root /tmp/crun-root --oci-version 1.1.0)"
fi
cmd+="; '$suite' \"\${args[@]}\" --filter '$filter' --results /tmp/out/results.md --gate berth; rc=\$?"
cmd+="; echo '=== BEGIN RESULTS'; cat /tmp/out/results.md; echo '=== END RESULTS'"
# The same cases against their mutants (the suite checks the runtime, not
# itself), proven on runc, crun or berth there.
cmd+="; echo '== mutant self-test'; OCI_CONFORMANCE_SELFTEST_FILTER='$filter' OCI_CONFORMANCE_SELFTEST_ROOT=/tmp/selftest '$mutants' --nocapture || rc=1"
cmd+="; exit \$rc"
set +e
"$root/guest/run.sh" "bash -c $(printf '%q' "$cmd")"
rc=$?
set -e
if [ $rc -eq 77 ]; then
	echo "conformance-cgroup2: skipped (qemu cannot run here)"
	exit 0
fi
log=${BERTH_GUEST_CACHE:-$root/target/guest}/console.log
if grep -q '^=== BEGIN RESULTS' "$log"; then
	sed -n '/^=== BEGIN RESULTS/,/^=== END RESULTS/{//!p}' "$log" | tr -d '\r' >"$out"
	echo "conformance-cgroup2: wrote $out"
fi
exit $rc
