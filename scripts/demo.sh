#!/usr/bin/env bash
# Run a real container from an image: build a small OCI image (busybox from
# Debian's busybox-static) with umoci, unpack it into a bundle with
# berth-bundle, and run it with berth.
# Usage: scripts/demo.sh BERTH BERTH_BUNDLE
set -euo pipefail
berth=${1:?berth binary}
bundler=${2:?berth-bundle binary}
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The image: one layer with busybox and its applets, a Cmd.
umoci init --layout "$work/image"
umoci new --image "$work/image:demo"
umoci unpack --image "$work/image:demo" "$work/stage" >/dev/null
mkdir -p "$work/stage/rootfs/bin"
cp /bin/busybox "$work/stage/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$work/stage/rootfs/bin/$applet"
done
umoci repack --image "$work/image:demo" "$work/stage"
umoci config --image "$work/image:demo" --config.env PATH=/bin \
  --config.cmd sh --config.cmd -c \
  --config.cmd 'echo "hello from a berth container: hostname $(hostname), pid $$, uid $(id -u)"; ls /'

# Image -> bundle -> container.
"$bundler" unpack --image "$work/image:demo" "$work/bundle"
# No terminal: the demo may run without one (CI).
jq '.process.terminal = false' "$work/bundle/config.json" > "$work/config.json"
mv "$work/config.json" "$work/bundle/config.json"
"$berth" --root /run/berth run --bundle "$work/bundle" "demo-$$"
