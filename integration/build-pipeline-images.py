#!/usr/bin/env python3
"""Build the OCI image layouts that test-images.sh pulls through bangerd.

Usage: build-pipeline-images.py BASE OUTDIR

BASE is the busybox layout from build-test-image.sh. OUTDIR receives one
layout per image, each tagged "latest":

  kinds   BASE's layers, then a layer with /opt/lower/target, then a layer
          with every tar entry kind under /opt/kinds (see KINDS below).
  big     one uncompressed layer of 48 MiB of random bytes, so a download
          lasts long enough to be interrupted.
  para-a, para-b
          one uncompressed layer of 12 MiB of random bytes each.

OUTDIR/expected.tsv lists, for each path that the scenario checks, the line that
`stat -c '%a %u %g %h %F'` prints for it in a VM booted from "kinds".
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile

MIB = 1024 * 1024
EPOCH = 0

# A v2 file capability (linux/capability.h, VFS_CAP_REVISION_2): the
# little-endian magic with the effective flag, then permitted, inheritable
# and the high words. It grants CAP_NET_BIND_SERVICE (bit 10).
CAPABILITY_V2 = bytes([0x01, 0x00, 0x00, 0x02, 0x00, 0x04]) + bytes(14)

# Three 100-byte components make a path of over 300 bytes, while each
# component stays below ext4's 255-byte name limit.
LONG_DIR = "opt/kinds/long/" + "/".join(c * 100 for c in "abc")
MANY_ENTRIES = 5000


def entry(name, kind, mode, uid=0, gid=0, **fields):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    info.mtime = EPOCH
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def tar_bytes(entries):
    """Return an uncompressed PAX tar of (TarInfo, bytes or None) pairs, in order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            if data is None:
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def dirs(*names):
    return [(entry(n, tarfile.DIRTYPE, 0o755), None) for n in names]


def lower_layer():
    return tar_bytes(dirs("opt", "opt/lower") + [
        (entry("opt/lower/target", tarfile.REGTYPE, 0o644), b"data of the lower layer\n"),
    ])


def kinds_layer():
    """Return the entry-kinds layer and the stat line expected for each path."""
    entries = dirs("opt", "opt/kinds", "opt/kinds/many", "opt/kinds/long")
    parts = LONG_DIR.split("/")
    for i in range(4, len(parts) + 1):
        entries += dirs("/".join(parts[:i]))
    entries += [
        (entry("opt/kinds/hardlink", tarfile.LNKTYPE, 0o644, linkname="opt/lower/target"), None),
        (entry("opt/kinds/symlink", tarfile.SYMTYPE, 0o777, linkname="../lower/target"), None),
        (entry("opt/kinds/chardev", tarfile.CHRTYPE, 0o620, devmajor=4, devminor=64), None),
        (entry("opt/kinds/blockdev", tarfile.BLKTYPE, 0o640, gid=6, devmajor=8, devminor=1), None),
        (entry("opt/kinds/fifo", tarfile.FIFOTYPE, 0o600), None),
        (entry("opt/kinds/setuid", tarfile.REGTYPE, 0o4755), b"setuid\n"),
        (entry("opt/kinds/setgid", tarfile.REGTYPE, 0o2755, gid=50), b"setgid\n"),
        (entry("opt/kinds/owner", tarfile.REGTYPE, 0o640, uid=100000, gid=200000), b"owner\n"),
        (entry("opt/kinds/cap", tarfile.REGTYPE, 0o755,
               pax_headers={"SCHILY.xattr.security.capability": CAPABILITY_V2.decode("ascii")}),
         b"capability\n"),
        (entry(LONG_DIR + "/file", tarfile.REGTYPE, 0o644), b"long path\n"),
    ]
    entries += [(entry(f"opt/kinds/many/{i:04d}", tarfile.REGTYPE, 0o644), b"")
                for i in range(MANY_ENTRIES)]
    expected = {
        "/opt/lower/target": "644 0 0 2 regular file",
        "/opt/kinds/hardlink": "644 0 0 2 regular file",
        "/opt/kinds/symlink": "777 0 0 1 symbolic link",
        "/opt/kinds/chardev": "620 0 0 1 character special file",
        "/opt/kinds/blockdev": "640 0 6 1 block special file",
        "/opt/kinds/fifo": "600 0 0 1 fifo",
        "/opt/kinds/setuid": "4755 0 0 1 regular file",
        "/opt/kinds/setgid": "2755 0 50 1 regular file",
        "/opt/kinds/owner": "640 100000 200000 1 regular file",
        "/opt/kinds/cap": "755 0 0 1 regular file",
        "/" + LONG_DIR + "/file": "644 0 0 1 regular file",
        "/opt/kinds/many": "755 0 0 2 directory",
    }
    return tar_bytes(entries), expected


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"))
        with open(os.path.join(path, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion": "1.0.0"}\n')

    def add_blob(self, data, media_type):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.path, "blobs", "sha256", digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def copy_blob(self, base, descriptor):
        name = descriptor["digest"].split(":", 1)[1]
        shutil.copy(os.path.join(base, "blobs", "sha256", name),
                    os.path.join(self.path, "blobs", "sha256", name))

    def finish(self, config, layers):
        config_descriptor = self.add_blob(json.dumps(config).encode(),
                                          "application/vnd.oci.image.config.v1+json")
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_descriptor,
            "layers": layers,
        }
        descriptor = self.add_blob(json.dumps(manifest).encode(),
                                   "application/vnd.oci.image.manifest.v1+json")
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [descriptor],
        }
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(index, f)


def read_blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1]), "rb") as f:
        return f.read()


def new_config(diff_ids):
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }


def build_kinds(base, out):
    with open(os.path.join(base, "index.json")) as f:
        index = json.load(f)
    manifest = json.loads(read_blob(base, index["manifests"][0]["digest"]))
    config = json.loads(read_blob(base, manifest["config"]["digest"]))

    layout = Layout(out)
    layers = list(manifest["layers"])
    for descriptor in layers:
        layout.copy_blob(base, descriptor)
    kinds, expected = kinds_layer()
    for tar in (lower_layer(), kinds):
        config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(tar).hexdigest())
        layers.append(layout.add_blob(gzip.compress(tar, mtime=0),
                                      "application/vnd.oci.image.layer.v1.tar+gzip"))
    layout.finish(config, layers)
    return expected


def build_random(out, size):
    tar = tar_bytes(dirs("data") + [
        (entry("data/random", tarfile.REGTYPE, 0o644), os.urandom(size)),
    ])
    layout = Layout(out)
    layer = layout.add_blob(tar, "application/vnd.oci.image.layer.v1.tar")
    layout.finish(new_config(["sha256:" + hashlib.sha256(tar).hexdigest()]), [layer])


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: build-pipeline-images.py BASE OUTDIR")
    base, out = sys.argv[1], sys.argv[2]
    if not os.path.isfile(os.path.join(base, "index.json")):
        sys.exit(f"build-pipeline-images: {base} is not an OCI image layout; "
                 "build one with build-test-image.sh")
    if os.path.exists(out):
        sys.exit(f"build-pipeline-images: {out} exists; pass a new directory")

    expected = build_kinds(base, os.path.join(out, "kinds"))
    build_random(os.path.join(out, "big"), 48 * MIB)
    build_random(os.path.join(out, "para-a"), 12 * MIB)
    build_random(os.path.join(out, "para-b"), 12 * MIB)
    with open(os.path.join(out, "expected.tsv"), "w") as f:
        for path, line in expected.items():
            f.write(f"{path}\t{line}\n")


if __name__ == "__main__":
    main()
