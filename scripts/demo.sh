#!/usr/bin/env bash
# Build a busybox bundle from Debian's busybox-static and run a real
# container in it with berth. Usage: scripts/demo.sh [BERTH_BINARY]
set -euo pipefail
berth=${1:-berth}
bundle=$(mktemp -d /tmp/berth-demo.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for applet in $("$bundle/rootfs/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$bundle/rootfs/bin/$applet"
done
cd "$bundle"
"$berth" spec
# Not a terminal (the demo may run in CI); print a little about the container.
jq '.process.terminal = false
    | .process.args = ["sh", "-c", "echo hello from a berth container: hostname $(hostname), pid $$, uid $(id -u); ls /"]' \
  config.json > config.json.new
mv config.json.new config.json
"$berth" --root /run/berth run "demo-$$"
