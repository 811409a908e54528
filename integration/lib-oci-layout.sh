# shellcheck shell=bash
# Write OCI image layouts by hand, for the test image builders. Source this
# file, then:
#   oci_check_outdir DIR
#       Fail unless DIR is missing, empty or already an OCI layout, so that a
#       typo never makes a builder delete an unrelated directory.
#   oci_write_layout LAYOUT CONFIG LAYER...
#       Store the config JSON file CONFIG and the gzip layer files as blobs of
#       the new directory LAYOUT, then write the manifest, index.json (tag
#       "latest", platform linux/amd64) and oci-layout. Prints the manifest
#       digest as sha256:HEX. The input files are copied, not moved.

oci_check_outdir() {
	if [[ -e $1 && ! -f $1/oci-layout ]] && [[ -n $(ls -A "$1") ]]; then
		echo "$1 exists and is not an OCI image layout; pass an empty or new directory" >&2
		return 1
	fi
}

# Copy FILE into LAYOUT/blobs/sha256 and print its hex digest.
oci_store_blob() {
	local layout=$1 file=$2 digest
	digest=$(sha256sum "$file" | cut -d' ' -f1)
	cp "$file" "$layout/blobs/sha256/$digest"
	echo "$digest"
}

oci_write_layout() {
	local layout=$1 config=$2
	shift 2
	local layer digest size layers='' manifest_digest manifest_size

	mkdir -p "$layout/blobs/sha256" || return 1
	for layer; do
		digest=$(oci_store_blob "$layout" "$layer") || return 1
		size=$(stat -c %s "$layer")
		[[ -n $layers ]] && layers+=$',\n'
		layers+=$(
			cat <<EOF
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:$digest",
      "size": $size
    }
EOF
		)
	done

	digest=$(oci_store_blob "$layout" "$config") || return 1
	size=$(stat -c %s "$config")
	cat >"$layout/manifest.json" <<EOF
{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:$digest",
    "size": $size
  },
  "layers": [
$layers
  ]
}
EOF
	manifest_digest=$(oci_store_blob "$layout" "$layout/manifest.json") || return 1
	manifest_size=$(stat -c %s "$layout/manifest.json")
	rm "$layout/manifest.json"

	cat >"$layout/index.json" <<EOF
{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:$manifest_digest",
      "size": $manifest_size,
      "annotations": {"org.opencontainers.image.ref.name": "latest"},
      "platform": {"architecture": "amd64", "os": "linux"}
    }
  ]
}
EOF
	echo '{"imageLayoutVersion": "1.0.0"}' >"$layout/oci-layout"
	echo "sha256:$manifest_digest"
}
