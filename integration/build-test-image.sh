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

# shellcheck source=integration/lib-oci-layout.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-oci-layout.sh"

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

oci_check_outdir "$outdir" || exit 1

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

diff_ids=()
for n in 1 2; do
	diff_ids+=("$(sha256_of "$work/layer$n.tar")")
	gzip -n -9 <"$work/layer$n.tar" >"$work/layer$n.tar.gz"
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
manifest_digest=$(oci_write_layout "$work/layout" "$work/config.json" "$work/layer1.tar.gz" \
	"$work/layer2.tar.gz") || die "failed to write the OCI layout $work/layout"

rm -rf "$outdir"
mkdir -p "$(dirname "$outdir")"
mv "$work/layout" "$outdir"
chmod -R a+rX "$outdir"
log "wrote $outdir (manifest $manifest_digest)"
echo "$manifest_digest"
