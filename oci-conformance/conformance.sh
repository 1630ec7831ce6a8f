#!/bin/bash
# Runs the conformance suite against berth and, when installed, runc and crun,
# and regenerates oci-conformance/RESULTS.md. Used by `make conformance`.
#   conformance.sh SUITE_BINARY BERTH_BINARY [extra suite arguments...]
# Exit status: non-zero when berth fails an assertion that runc or crun passes
# here (or, with no peer, any assertion).
set -euo pipefail
suite=$1 berth=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
args=(--runtime "$berth" --label berth --optional)
if runc=$(command -v runc 2>/dev/null); then
	v=$("$runc" --version | awk 'NR==1 {print $3}')
	args+=(--runtime "$runc" --label "runc $v")
fi
if crun=$(command -v crun 2>/dev/null); then
	v=$("$crun" --version | awk 'NR==1 {print $3}')
	if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
		# crun 1.8 refuses a hybrid cgroup host and ociVersion >= 1.2: it runs in
		# a private mount namespace with a tmpfs over /sys/fs/cgroup/unified.
		args+=(--runtime "$crun" --label "crun $v (private mount ns, tmpfs on cgroup2, ociVersion 1.1.0)" --private-cgroup2 --oci-version 1.1.0)
	else
		args+=(--runtime "$crun" --label "crun $v (ociVersion 1.1.0)" --oci-version 1.1.0)
	fi
fi
exec "$suite" "${args[@]}" --results "$here/RESULTS.md" --gate berth "$@"
