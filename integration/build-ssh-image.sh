#!/bin/bash
# Build a minimal Debian 12 image with openssh-server as an OCI image layout,
# without a container daemon.
#
# Usage: build-ssh-image.sh OUTDIR
#
# OUTDIR receives oci-layout, index.json (tag "latest") and blobs/sha256/.
# The tree comes from `debootstrap --variant=minbase` of bookworm with
# openssh-server, procps, iproute2 and python3-minimal, fetched from the
# Debian mirror that apt on this machine uses. The image has no SSH host keys,
# no apt lists, no documentation and an empty /dev, and runs
# /bin/sleep infinity as its command: banger-init starts sshd itself.
# The single gzip layer is a tar sorted by name with numeric owners.
#
# The finished layout is kept in integration/cache/ssh-image-KEY, where KEY
# is a hash of this script, lib-oci-layout.sh and the mirror URL, and later
# runs copy it from there. A first build took 65 to 130 s on a 2-core machine
# fetching from deb.debian.org, and a cached run takes under a second. Prints
# the manifest digest on stdout. Must run as root (debootstrap).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=integration/lib-oci-layout.sh
source "$here/lib-oci-layout.sh"
cacheroot=$here/cache
packages=openssh-server,procps,iproute2,python3-minimal

log() { echo "build-ssh-image: $*" >&2; }
die() {
	log "$*"
	exit 1
}

[[ $# -eq 1 ]] || die "usage: build-ssh-image.sh OUTDIR"
outdir=$1

[[ $(id -u) -eq 0 ]] || die "must run as root, because debootstrap needs it"
command -v debootstrap >/dev/null ||
	die "debootstrap not found; install it with: apt-get install debootstrap"

oci_check_outdir "$outdir" || exit 1

# The archive that apt's sources name for the bookworm release itself, which
# excludes bookworm-updates and bookworm-security.
# shellcheck disable=SC2016 # $(REPO_URI) is apt's format variable
mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Release: bookworm' \
	'Identifier: Packages' 'Component: main' | head -n 1)
[[ -n $mirror ]] ||
	die "no source for Debian bookworm main in /etc/apt/sources.list*; add the Debian mirror there"

key=$(cat "${BASH_SOURCE[0]}" "$here/lib-oci-layout.sh" - <<<"$mirror" | sha256sum | cut -c1-16)
cached=$cacheroot/ssh-image-$key

# Remove what the image should not carry: host keys (banger gives each VM
# its own), package lists and caches, logs, documentation, and the host's
# identity that debootstrap copies in.
trim_tree() {
	local root=$1
	rm -f "$root"/etc/ssh/ssh_host_*
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
		"$root"/var/lib/dpkg/*-old "$root"/var/cache/ldconfig/aux-cache "$root"/var/log/*
	rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
	find "$root/usr/share/doc" -type f ! -name copyright -delete
	find "$root/usr/share/doc" -type d -empty -delete
	rm -rf "${root:?}"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/* "$root"/tmp/*
	mkdir -p "$root/var/log/apt" "$root/usr/share/doc"
	echo debian >"$root/etc/hostname"
	printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
	: >"$root/etc/resolv.conf"
	: >"$root/etc/machine-id"
}

# Write the OCI layout of the tree ROOT to LAYOUT, using WORK for
# temporary files, and print the manifest digest.
write_layout() {
	local root=$1 layout=$2 work=$3 diff_id created entries=()

	# Top-level names go in byte order, and --sort=name orders everything below.
	mapfile -t entries < <(find "$root" -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort)
	tar -C "$root" --sort=name --numeric-owner --xattrs --xattrs-include='*' --format=pax \
		--pax-option=delete=atime,delete=ctime -cf "$work/layer.tar" -- "${entries[@]}"
	diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
	gzip -n -6 "$work/layer.tar"

	created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	cat >"$work/config.json" <<EOF
{
  "created": "$created",
  "architecture": "amd64",
  "os": "linux",
  "config": {
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["/bin/sleep", "infinity"]
  },
  "rootfs": {"type": "layers", "diff_ids": ["sha256:$diff_id"]},
  "history": [
    {"created": "$created", "created_by": "build-ssh-image.sh: debootstrap --variant=minbase --include=$packages bookworm $mirror"}
  ]
}
EOF
	oci_write_layout "$layout" "$work/config.json" "$work/layer.tar.gz"
}

# Build the layout into the cache. The temporary directory sits beside the
# cache entry so that the final rename is atomic, and a run that dies
# half way leaves only a .tmp-* directory, which the next build removes.
build_cache() {
	local tmp start=$SECONDS
	rm -rf "$cacheroot"/.tmp-ssh-image-*
	tmp=$(mktemp -d "$cacheroot/.tmp-ssh-image-$key.XXXXXX")
	log "debootstrap bookworm from $mirror into $tmp/root"
	if ! debootstrap --variant=minbase --include="$packages" bookworm "$tmp/root" "$mirror" \
		>"$tmp/debootstrap.log" 2>&1; then
		tail -n 20 "$tmp/debootstrap.log" >&2
		[[ -f $tmp/root/debootstrap/debootstrap.log ]] && tail -n 20 "$tmp/root/debootstrap/debootstrap.log" >&2
		rm -rf "$tmp"
		die "debootstrap from $mirror failed; its log is above"
	fi
	[[ -x $tmp/root/usr/sbin/sshd ]] || {
		rm -rf "$tmp"
		die "debootstrap finished but left no /usr/sbin/sshd"
	}
	trim_tree "$tmp/root"
	write_layout "$tmp/root" "$tmp/layout" "$tmp" >/dev/null
	chmod -R a+rX "$tmp/layout"
	mv "$tmp/layout" "$cached"
	rm -rf "$tmp"
	log "built $cached in $((SECONDS - start)) s"
	# Entries of earlier versions of this script or of another mirror.
	find "$cacheroot" -mindepth 1 -maxdepth 1 -type d -name 'ssh-image-*' \
		! -name "ssh-image-$key" -exec rm -rf {} +
}

mkdir -p "$cacheroot" "$(dirname "$outdir")"
staging=$(mktemp -d "$(dirname "$outdir")/.tmp-ssh-image.XXXXXX")
trap 'rm -rf "$staging"' EXIT

# Parallel runs wait for the one that builds, and a build never removes an
# entry that another run is copying.
exec {lock}>"$cacheroot/ssh-image.lock"
flock "$lock"
[[ -f $cached/index.json ]] || build_cache
cp -a --reflink=auto "$cached" "$staging/layout"
flock -u "$lock"

rm -rf "$outdir"
mv "$staging/layout" "$outdir"
manifest_digest=$(jq -r '.manifests[0].digest' "$outdir/index.json")
log "wrote $outdir from $cached (manifest $manifest_digest)"
echo "$manifest_digest"
