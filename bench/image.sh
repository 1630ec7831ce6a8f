#!/usr/bin/env bash
# Builds the benchmark image once: an OCI layout DIR/layout tagged `bench`,
# gzip layers made with tar from this machine's /usr, the top one with
# whiteouts (deleted directories and files) and rewritten files.
#
#   bench/image.sh DIR full|quick
#
# full: ~280 MB, ~40k entries in 4 layers; quick: ~25 MB, ~4k entries in
# 3 layers. Directories missing on this machine are skipped. Rebuilt only
# when DIR has no stamp for this recipe (RECIPE below).
#
# The layers are written here with tar, gzip and sha256sum rather than
# with `umoci repack`: the same content, in a few seconds instead of
# minutes (repack --refresh-bundle re-walks and re-hashes the whole tree
# after every layer), and umoci stays only a peer under test.
set -euo pipefail
dir=${1:?cache dir} size=${2:?full or quick}
RECIPE=4
stamp=$dir/.complete-$size-r$RECIPE
[ -f "$stamp" ] && exit 0
for t in tar gzip sha256sum jq; do
	command -v $t >/dev/null || { echo "image.sh: $t is not installed (make deps)" >&2; exit 1; }
done

echo "[bench] building the $size benchmark image in $dir (once; cached)" >&2
rm -rf "$dir" && mkdir -p "$dir/layout/blobs/sha256" "$dir/work"
L=$dir/layout w=$dir/work
diff_ids=() layers=() history=()

# add_blob FILE MEDIATYPE: move FILE into the store; prints its descriptor.
add_blob() {
	local d s
	d=$(sha256sum "$1" | cut -d' ' -f1)
	s=$(stat -c %s "$1")
	mv "$1" "$L/blobs/sha256/$d"
	jq -cn --arg m "$2" --arg d "sha256:$d" --argjson s "$s" '{mediaType: $m, digest: $d, size: $s}'
}

# add_layer DIR PATH...: one layer of the PATHs (relative to DIR) that exist.
add_layer() {
	local from=$1 p paths=()
	shift
	for p in "$@"; do [ -e "$from/$p" ] && paths+=("$p"); done
	[ ${#paths[@]} -gt 0 ] || { echo "image.sh: none of $* exists under $from" >&2; exit 1; }
	tar -C "$from" -c --numeric-owner --sort=name -f "$w/layer.tar" "${paths[@]}"
	diff_ids+=("sha256:$(sha256sum "$w/layer.tar" | cut -d' ' -f1)")
	gzip -n -c "$w/layer.tar" >"$w/layer.tar.gz"
	rm -f "$w/layer.tar"
	layers+=("$(add_blob "$w/layer.tar.gz" application/vnd.oci.image.layer.v1.tar+gzip)")
	history+=("$(jq -cn --arg c "add ${paths[*]}" '{created_by: $c}')")
}

# The top layer: whiteouts for what is deleted, rewritten copies of files.
top=$w/top
whiteout() { # whiteout PATH (relative)
	mkdir -p "$top/$(dirname "$1")"
	: >"$top/$(dirname "$1")/.wh.$(basename "$1")"
}
rewrite() { # rewrite PATH (relative): a changed copy of /PATH
	mkdir -p "$top/$(dirname "$1")"
	cp -a "/$1" "$top/$1"
	echo "/* rewritten */" >>"$top/$1"
}

if [ "$size" = full ]; then
	add_layer / usr/share/man usr/share/zoneinfo usr/share/i18n usr/share/perl
	add_layer / usr/include
	add_layer / usr/lib/python3 usr/lib/python3.11
	for p in usr/share/man/man3 usr/share/man/de usr/include/linux; do [ -e "/$p" ] && whiteout "$p"; done
	if [ -d /usr/lib/python3.11 ]; then
		mapfile -t pyc < <(cd / && find usr/lib/python3.11 -name '*.pyc' | sort)
		for p in "${pyc[@]}"; do whiteout "$p"; done
	fi
else
	add_layer / usr/share/zoneinfo usr/share/perl
	add_layer / usr/include/linux usr/include/x86_64-linux-gnu
	for p in usr/include/linux/netfilter usr/share/zoneinfo/America; do [ -e "/$p" ] && whiteout "$p"; done
fi
mapfile -t headers < <(cd / && find usr/include/x86_64-linux-gnu -type f -name '*.h' | sort)
for p in "${headers[@]:0:50}"; do rewrite "$p"; done
mkdir -p "$top/etc" && echo "berth-bench $size image" >"$top/etc/berth-bench"
chown -R 0:0 "$top" && find "$top" -type d -exec chmod 0755 {} +
(cd "$top" && mapfile -t all < <(ls -A) && tar -C "$top" -c --numeric-owner --sort=name -f "$w/layer.tar" "${all[@]}")
diff_ids+=("sha256:$(sha256sum "$w/layer.tar" | cut -d' ' -f1)")
gzip -n -c "$w/layer.tar" >"$w/layer.tar.gz" && rm -f "$w/layer.tar"
layers+=("$(add_blob "$w/layer.tar.gz" application/vnd.oci.image.layer.v1.tar+gzip)")
history+=('{"created_by":"whiteouts and rewritten files"}')

jq -cn --args '$ARGS.positional | map(fromjson)' "${history[@]}" >"$w/history.json"
jq -cn --args '$ARGS.positional' "${diff_ids[@]}" >"$w/diff_ids.json"
jq -cn --slurpfile h "$w/history.json" --slurpfile d "$w/diff_ids.json" \
	'{architecture: "amd64", os: "linux", config: {Env: ["PATH=/usr/bin:/bin"], Cmd: ["/bin/sh"]},
	  rootfs: {type: "layers", diff_ids: $d[0]}, history: $h[0]}' >"$w/config.json"
config=$(add_blob "$w/config.json" application/vnd.oci.image.config.v1+json)
jq -cn --argjson c "$config" --args \
	'{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: $c,
	  layers: ($ARGS.positional | map(fromjson))}' "${layers[@]}" >"$w/manifest.json"
manifest=$(add_blob "$w/manifest.json" application/vnd.oci.image.manifest.v1+json)
jq -cn --argjson m "$manifest" \
	'{schemaVersion: 2, manifests: [$m + {annotations: {"org.opencontainers.image.ref.name": "bench"}}]}' >"$L/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$L/oci-layout"
rm -rf "$w"
touch "$stamp"
