#!/usr/bin/env bash
# First look at container start-up: `run` of /bin/true in the same busybox
# bundle under berth, runc and crun, timed by hyperfine in one run.
# Usage: scripts/bench-run.sh BERTH_BINARY
set -euo pipefail
berth=${1:?berth binary}
runs=${BENCH_RUNS:-100}
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/"
ln -s busybox "$work/bundle/rootfs/bin/true"
(cd "$work/bundle" && "$berth" spec)
# ociVersion 1.1.0: Debian's crun 1.8 refuses newer ones.
jq '.ociVersion = "1.1.0" | .process.terminal = false | .process.args = ["/bin/true"]' \
  "$work/bundle/config.json" > "$work/config.json" && mv "$work/config.json" "$work/bundle/config.json"

# crun 1.8 refuses this hybrid cgroup host: give it a private mount
# namespace with a tmpfs over the cgroup2 mount. The wrapper's own cost is
# measured too, so it can be subtracted.
cat > "$work/crun" <<'WRAP'
#!/bin/sh
exec unshare -m sh -c 'mount --make-rslave / && mount -t tmpfs tmpfs /sys/fs/cgroup/unified && exec "$0" "$@"' "$@"
WRAP
chmod +x "$work/crun"

cmds=(-n berth "$berth --root $work/berth run b"
      -n runc "runc --root $work/runc run r")
if command -v crun >/dev/null; then
  cmds+=(-n crun "$work/crun crun --root $work/crun-state run c"
         -n crun-wrapper-only "$work/crun true")
fi
cd "$work/bundle"
hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/run.json" "${cmds[@]}" >/dev/null
jq -r '
  (.results | map({key: .command, value: .median}) | from_entries) as $m
  | "median run of /bin/true (ms):",
    (.results[] | "  \(.command): \(.median * 1000 * 100 | round / 100)"),
    "ratios (berth / peer, lower is better):",
    "  berth/runc: \($m.berth / $m.runc * 100 | round / 100)",
    (if $m.crun then "  berth/crun: \($m.berth / $m.crun * 100 | round / 100) (crun incl. its wrapper; wrapper alone \($m["crun-wrapper-only"] * 1000 * 100 | round / 100) ms)",
                     "  berth/(crun - wrapper): \($m.berth / ($m.crun - $m["crun-wrapper-only"]) * 100 | round / 100)" else empty end)
' "$work/run.json"
