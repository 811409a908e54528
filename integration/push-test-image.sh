#!/bin/bash
# Push an OCI image layout to a registry on loopback with skopeo.
#
# Usage: push-test-image.sh OUTDIR HOST:PORT/REPOSITORY:TAG
#
# OUTDIR is a layout from build-test-image.sh. Its "latest" tag is pushed
# over plain HTTP, as the test registry has no TLS.
set -euo pipefail

die() {
	echo "push-test-image: $*" >&2
	exit 1
}

[[ $# -eq 2 ]] || die "usage: push-test-image.sh OUTDIR HOST:PORT/REPOSITORY:TAG"
layout=$1
reference=$2

[[ -f $layout/oci-layout && -f $layout/index.json ]] ||
	die "$layout is not an OCI image layout; build one with build-test-image.sh $layout"
[[ $reference == */*:* ]] ||
	die "invalid reference '$reference'; expected HOST:PORT/REPOSITORY:TAG"
command -v skopeo >/dev/null ||
	die "skopeo not found; install it with: apt-get install skopeo"

skopeo copy --quiet --dest-tls-verify=false "oci:$layout:latest" "docker://$reference"
