#!/bin/bash
# Fetch Debian's cloud kernel into a cache folder without installing it.
#
# Usage: fetch-kernel.sh CACHEDIR
#
# Downloads linux-image-cloud-amd64 and the versioned
# linux-image-VERSION-cloud-amd64 package it depends on into CACHEDIR,
# unpacks the versioned package into CACHEDIR/root and prints the path of the
# versioned .deb on stdout. A second run reuses the downloaded packages and the
# unpacked tree. Must run as root (apt-get download and dpkg -x).
set -euo pipefail

log() { echo "fetch-kernel: $*" >&2; }
die() {
	log "$*"
	exit 1
}

[[ $# -eq 1 ]] || die "usage: fetch-kernel.sh CACHEDIR"
cachedir=$1
mkdir -p "$cachedir"
cachedir=$(cd "$cachedir" && pwd)

meta_package=linux-image-cloud-amd64

# apt-get download finds nothing until the package lists exist.
apt_update_if_empty() {
	if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
		log "package lists are empty, running apt-get update"
		apt-get -o DPkg::Lock::Timeout=300 -q update >&2
	fi
}

# Download one package into the cache folder. apt-get download writes to the
# current directory.
download_package() {
	local name=$1
	apt_update_if_empty
	log "downloading $name"
	# As root, apt-get warns that user _apt cannot write to the cache folder
	# and downloads as root anyway, so ask for root from the start.
	(cd "$cachedir" && apt-get -q -o APT::Sandbox::User=root download "$name" >&2) ||
		die "apt-get download $name failed; check the package mirror in /etc/apt/sources.list"
}

find_deb() {
	local pattern=$1
	compgen -G "$cachedir/$pattern" | sort -V | tail -n 1 || true
}

meta_deb=$(find_deb "${meta_package}_*.deb")
if [[ -z $meta_deb ]]; then
	download_package "$meta_package"
	meta_deb=$(find_deb "${meta_package}_*.deb")
	[[ -n $meta_deb ]] || die "apt-get download $meta_package left no .deb in $cachedir"
fi

# Read the versioned package name from the downloaded metapackage itself, so
# the pair stays consistent even when the mirror has moved on since.
versioned_package=$(dpkg-deb -f "$meta_deb" Depends |
	tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*-cloud-amd64\).*/\1/p' | head -n 1)
[[ -n $versioned_package ]] ||
	die "$meta_deb does not depend on a linux-image-VERSION-cloud-amd64 package"

versioned_deb=$(find_deb "${versioned_package}_*.deb")
if [[ -z $versioned_deb ]]; then
	download_package "$versioned_package"
	versioned_deb=$(find_deb "${versioned_package}_*.deb")
	[[ -n $versioned_deb ]] || die "apt-get download $versioned_package left no .deb in $cachedir"
fi

# The stamp names the .deb that root/ was unpacked from, so a newer package
# replaces the tree instead of mixing into it.
stamp="$cachedir/root.unpacked-from"
if [[ ! -d $cachedir/root || ! -f $stamp || $(cat "$stamp") != "$(basename "$versioned_deb")" ]]; then
	log "unpacking $(basename "$versioned_deb") into $cachedir/root"
	rm -rf "$cachedir/root" "$cachedir/root.tmp" "$stamp"
	dpkg -x "$versioned_deb" "$cachedir/root.tmp"
	mv "$cachedir/root.tmp" "$cachedir/root"
	basename "$versioned_deb" >"$stamp"
fi

echo "$versioned_deb"
