#!/bin/bash
# Benchmark: registry image to ext4 file.
#
# Builds a Debian bookworm tree with debootstrap and pushes it as a one-layer
# OCI image to a docker-registry on 127.0.0.1. Then it times two ways to turn
# that image into an ext4 file, each starting from an empty blob cache:
#   (a) banger's image_pull() through bench/bench-pull.c;
#   (b) skopeo copy to an OCI directory, umoci unpack and mke2fs -t ext4 -d.
# Wall and CPU time come from hyperfine. Peak memory comes from one
# /usr/bin/time -v run of each side, and for (b) it is the largest of its
# three steps. Prints a Markdown report on stdout.
#
# Usage: bench/pull-to-ext4.sh BUILDDIR [WORKDIR]
#
# BUILDDIR is a finished meson build of banger, which contains
# bench/bench-pull. WORKDIR (default /var/tmp/banger-bench) keeps the
# debootstrap tree between runs. Must run as root. Needs debootstrap, umoci,
# skopeo, docker-registry, hyperfine and GNU time (scripts/install-deps.sh,
# bench list), and the Debian mirror of /etc/apt/sources.list* for the first
# debootstrap.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srcdir=$(dirname "$here")
builddir=$(cd "${1:?usage: pull-to-ext4.sh BUILDDIR [WORKDIR]}" && pwd)
work=${2:-/var/tmp/banger-bench}
runs=${BENCH_RUNS:-5}
port=${BENCH_PORT:-5099}
reference=127.0.0.1:$port/bench/debian:bookworm

log() { echo "bench: $*" >&2; }

mirror() {
	# The first URI of the main Debian archive in apt's enabled source files.
	local f files=()
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] && files+=("$f")
	done
	((${#files[@]} > 0)) || return 0
	grep -hoE '^[[:space:]]*(URIs:|deb)[[:space:]]+https?://[^[:space:]]+' "${files[@]}" |
		awk '{print $2}' | grep -v security | head -n 1 || true
}

build_tree() {
	if [[ -f $work/rootfs/.complete ]]; then
		return
	fi
	local url
	url=$(mirror)
	[[ -n $url ]] || {
		log "no Debian mirror found in /etc/apt/sources.list*"
		exit 1
	}
	log "debootstrap bookworm from $url"
	rm -rf "$work/rootfs"
	debootstrap --variant=minbase --include=python3,perl bookworm "$work/rootfs" "$url" >&2
	touch "$work/rootfs/.complete"
}

# Writes an OCI layout with one gzip layer of the tree to $work/oci.
build_layout() {
	if [[ -f $work/oci/index.json ]]; then
		return
	fi
	local diff_id layer_digest layer_size config config_digest manifest manifest_digest
	log "building the OCI layout"
	rm -rf "$work/oci" "$work/layer.tar"
	mkdir -p "$work/oci/blobs/sha256"
	tar --numeric-owner --xattrs --exclude=./.complete -C "$work/rootfs" -cf "$work/layer.tar" .
	diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
	gzip -6 -n -c "$work/layer.tar" >"$work/layer.tar.gz"
	rm "$work/layer.tar"
	layer_digest=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
	layer_size=$(stat -c %s "$work/layer.tar.gz")
	mv "$work/layer.tar.gz" "$work/oci/blobs/sha256/$layer_digest"

	config=$(printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/bash"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$diff_id")
	config_digest=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
	printf '%s' "$config" >"$work/oci/blobs/sha256/$config_digest"
	manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
		"$config_digest" "${#config}" "$layer_digest" "$layer_size")
	manifest_digest=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
	printf '%s' "$manifest" >"$work/oci/blobs/sha256/$manifest_digest"
	printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"bookworm"}}]}' \
		"$manifest_digest" "${#manifest}" >"$work/oci/index.json"
}

build_bench_pull() {
	if [[ ! -x $builddir/bench/bench-pull ]]; then
		log "$builddir/bench/bench-pull is missing: run 'ninja -C $builddir' first"
		exit 1
	fi
	cp "$builddir/bench/bench-pull" "$work/bench-pull"
}

registry_stop() {
	"$srcdir/integration/registry.sh" stop "$work/registry" >/dev/null 2>&1 || true
}

[[ $(id -u) == 0 ]] || {
	log "must run as root (debootstrap, umoci unpack)"
	exit 1
}
mkdir -p "$work"
build_tree
build_layout
build_bench_pull

trap registry_stop EXIT
registry_stop
rm -rf "$work/registry"
"$srcdir/integration/registry.sh" start "$work/registry" "$port" >&2
skopeo copy -q --dest-tls-verify=false "oci:$work/oci:bookworm" "docker://$reference" >&2

tree_mib=$(du -sm --exclude=./.complete "$work/rootfs" | cut -f1)
n_files=$(find "$work/rootfs" | wc -l)
layer_mib=$(($(du -bc "$work"/oci/blobs/sha256/* | tail -n 1 | cut -f1) / 1048576))
# mke2fs -d needs a size up front: the tree plus 30 % and 64 MiB, the
# sizing image_pull() computes from the layer.
ext4_mib=$((tree_mib * 130 / 100 + 64))

cmd_banger="rm -rf $work/a && mkdir $work/a && $work/bench-pull $reference $work/a/blobs $work/a/rootfs.ext4 127.0.0.1:$port"
cmd_tools="rm -rf $work/b && mkdir $work/b && skopeo copy -q --src-tls-verify=false docker://$reference oci:$work/b/oci:bookworm && umoci unpack --image $work/b/oci:bookworm $work/b/bundle >/dev/null && mke2fs -q -t ext4 -d $work/b/bundle/rootfs $work/b/rootfs.ext4 ${ext4_mib}M"

log "timing $runs runs of each side"
hyperfine --runs "$runs" --warmup 1 --export-markdown "$work/hyperfine.md" \
	--export-json "$work/hyperfine.json" \
	-n "banger image_pull()" "$cmd_banger" \
	-n "skopeo + umoci + mke2fs" "$cmd_tools" >&2

peak_kib() {
	/usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {print $2}'
}

rm -rf "$work/a" && mkdir "$work/a"
rss_banger=$(peak_kib "$work/bench-pull" "$reference" "$work/a/blobs" "$work/a/rootfs.ext4" "127.0.0.1:$port")
rm -rf "$work/b" && mkdir "$work/b"
rss_skopeo=$(peak_kib skopeo copy -q --src-tls-verify=false "docker://$reference" "oci:$work/b/oci:bookworm")
rss_umoci=$(peak_kib umoci unpack --image "$work/b/oci:bookworm" "$work/b/bundle")
rss_mke2fs=$(peak_kib mke2fs -q -t ext4 -d "$work/b/bundle/rootfs" "$work/b/rootfs.ext4" "${ext4_mib}M")
rss_tools=$(printf '%s\n' "$rss_skopeo" "$rss_umoci" "$rss_mke2fs" | sort -n | tail -n 1)
e2fsck -fn "$work/a/rootfs.ext4" >/dev/null 2>&1 && fsck_a=clean || fsck_a="NOT clean"

mean_a=$(jq '.results[0].mean' "$work/hyperfine.json")
mean_b=$(jq '.results[1].mean' "$work/hyperfine.json")
ratio=$(awk -v a="$mean_a" -v b="$mean_b" 'BEGIN {printf "%.2f", b / a}')
cpu_a=$(jq '.results[0].user + .results[0].system' "$work/hyperfine.json")
cpu_b=$(jq '.results[1].user + .results[1].system' "$work/hyperfine.json")
cpu_ratio=$(awk -v a="$cpu_a" -v b="$cpu_b" 'BEGIN {printf "%.2f", b / a}')

cat <<EOF
## Run of $(date -u +%Y-%m-%d)

Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo),
$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(grep -oP '^PRETTY_NAME="\K[^"]+' /etc/os-release).
Image: debootstrap --variant=minbase --include=python3,perl bookworm, $tree_mib MiB in
$n_files files, one gzip layer of $layer_mib MiB, served by docker-registry on 127.0.0.1.

$(cat "$work/hyperfine.md")

Mean wall time ratio (skopeo + umoci + mke2fs) / banger: **$ratio**. Mean CPU time (user +
system): banger $(printf '%.2f' "$cpu_a") s, tools $(printf '%.2f' "$cpu_b") s, ratio **$cpu_ratio**.

| side | peak RSS |
|---|---|
| banger image_pull() | $((rss_banger / 1024)) MiB |
| skopeo copy | $((rss_skopeo / 1024)) MiB |
| umoci unpack | $((rss_umoci / 1024)) MiB |
| mke2fs -d | $((rss_mke2fs / 1024)) MiB |
| max of the three tools | $((rss_tools / 1024)) MiB |

e2fsck -fn on banger's file: $fsck_a.
EOF
