#!/bin/bash
# Build the busybox test image as an OCI image layout, without a container
# daemon.
#
# Usage: build-test-image.sh OUTDIR
#
# OUTDIR receives oci-layout, index.json (tag "latest") and blobs/sha256/.
# The image has two gzip layers:
#   1. /bin/busybox from Debian's busybox-static package with one relative
#      symlink per applet that `busybox --list-full` prints, /etc/passwd,
#      /etc/group, /etc/delete-me, /srv/opaque/old, /tmp (mode 1777), /root
#      (mode 0700) and empty /dev, /proc, /sys, /run, /var.
#   2. The whiteout etc/.wh.delete-me, the opaque whiteout
#      srv/opaque/.wh..wh..opq, srv/opaque/new, and etc/banger-test
#      containing TEST_IMAGE_LINE below.
# Tar entries are sorted, owned by 0:0 and dated SOURCE_DATE_EPOCH (default
# 0), and gzip runs with -n, so two runs with the same busybox binary produce
# the same digests. The manifest digest is printed on stdout.
set -euo pipefail

# The scenario reads /etc/banger-test in the guest and expects this line.
TEST_IMAGE_LINE="banger test image, layer 2"

log() { echo "build-test-image: $*" >&2; }
die() {
	log "$*"
	exit 1
}

[[ $# -eq 1 ]] || die "usage: build-test-image.sh OUTDIR"
outdir=$1
epoch=${SOURCE_DATE_EPOCH:-0}

busybox=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/bin/busybox$' || true)
[[ -n $busybox && -x $busybox ]] ||
	die "busybox from busybox-static not found; install it with: apt-get install busybox-static"

# Replace OUTDIR only when it is empty or already an OCI layout, so a typo
# never deletes an unrelated directory.
if [[ -e $outdir ]]; then
	if [[ ! -f $outdir/oci-layout ]] && [[ -n $(ls -A "$outdir") ]]; then
		die "$outdir exists and is not an OCI image layout; pass an empty or new directory"
	fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/banger-test-image.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Write both layer tars. Python's tarfile sets every header field
# explicitly, which GNU tar would take from the file system.
"$busybox" --list-full >"$work/applets"
python3 - "$busybox" "$work" "$epoch" "$TEST_IMAGE_LINE" <<'EOF'
import io
import os
import sys
import tarfile

busybox, work, epoch, test_line = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


def entry(name, kind, mode, **fields):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = epoch
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def write_layer(path, entries):
    # entries maps a path to (TarInfo, bytes or None). Sorting puts parents first.
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            info, data = entries[name]
            if data is None:
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def add_dir(entries, name, mode=0o755):
    entries[name] = (entry(name, tarfile.DIRTYPE, mode), None)


def add_file(entries, name, data, mode=0o644):
    entries[name] = (entry(name, tarfile.REGTYPE, mode), data)


def add_parents(entries, name):
    parts = name.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        parent = "/".join(parts[:i])
        if parent not in entries:
            add_dir(entries, parent)


layer1 = {}
for name in ("bin", "dev", "etc", "proc", "run", "sbin", "srv", "srv/opaque",
             "sys", "usr", "usr/bin", "usr/sbin", "var"):
    add_dir(layer1, name)
add_dir(layer1, "tmp", 0o1777)
add_dir(layer1, "root", 0o700)

with open(busybox, "rb") as f:
    add_file(layer1, "bin/busybox", f.read(), 0o755)

with open(os.path.join(work, "applets")) as f:
    applets = [line.strip().rstrip("/") for line in f if line.strip()]
for name in applets:
    if name == "bin/busybox":
        continue
    add_parents(layer1, name)
    # A relative target stays inside the image wherever its root is mounted.
    depth = name.count("/")
    target = "../" * depth + "bin/busybox" if depth else "bin/busybox"
    layer1[name] = (entry(name, tarfile.SYMTYPE, 0o777, linkname=target), None)

add_file(layer1, "etc/passwd",
         b"root:x:0:0:root:/root:/bin/sh\n"
         b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
add_file(layer1, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
add_file(layer1, "etc/delete-me", b"removed by a whiteout in layer 2\n")
add_file(layer1, "srv/opaque/old", b"hidden by an opaque whiteout in layer 2\n")
write_layer(os.path.join(work, "layer1.tar"), layer1)

layer2 = {}
add_dir(layer2, "etc")
add_dir(layer2, "srv")
add_dir(layer2, "srv/opaque")
add_file(layer2, "etc/.wh.delete-me", b"", 0o600)
add_file(layer2, "srv/opaque/.wh..wh..opq", b"", 0o600)
add_file(layer2, "srv/opaque/new", b"added in layer 2\n")
add_file(layer2, "etc/banger-test", (test_line + "\n").encode())
write_layer(os.path.join(work, "layer2.tar"), layer2)
EOF

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

mkdir -p "$work/layout/blobs/sha256"
blobs=$work/layout/blobs/sha256

# Store a file as a blob and print its digest.
store_blob() {
	local digest
	digest=$(sha256_of "$1")
	cp "$1" "$blobs/$digest"
	echo "$digest"
}

diff_ids=()
layer_digests=()
layer_sizes=()
for n in 1 2; do
	diff_ids+=("$(sha256_of "$work/layer$n.tar")")
	gzip -n -9 <"$work/layer$n.tar" >"$work/layer$n.tar.gz"
	layer_digests+=("$(store_blob "$work/layer$n.tar.gz")")
	layer_sizes+=("$(size_of "$work/layer$n.tar.gz")")
done

created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
cat >"$work/config.json" <<EOF
{
  "created": "$created",
  "architecture": "amd64",
  "os": "linux",
  "config": {
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["/bin/sh"]
  },
  "rootfs": {
    "type": "layers",
    "diff_ids": ["sha256:${diff_ids[0]}", "sha256:${diff_ids[1]}"]
  },
  "history": [
    {"created": "$created", "created_by": "build-test-image.sh: busybox and /etc"},
    {"created": "$created", "created_by": "build-test-image.sh: whiteouts and /etc/banger-test"}
  ]
}
EOF
config_digest=$(store_blob "$work/config.json")
config_size=$(size_of "$work/config.json")

cat >"$work/manifest.json" <<EOF
{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:$config_digest",
    "size": $config_size
  },
  "layers": [
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:${layer_digests[0]}",
      "size": ${layer_sizes[0]}
    },
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:${layer_digests[1]}",
      "size": ${layer_sizes[1]}
    }
  ]
}
EOF
manifest_digest=$(store_blob "$work/manifest.json")
manifest_size=$(size_of "$work/manifest.json")

cat >"$work/layout/index.json" <<EOF
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
echo '{"imageLayoutVersion": "1.0.0"}' >"$work/layout/oci-layout"

rm -rf "$outdir"
mkdir -p "$(dirname "$outdir")"
mv "$work/layout" "$outdir"
chmod -R a+rX "$outdir"
log "wrote $outdir (manifest sha256:$manifest_digest)"
echo "sha256:$manifest_digest"
