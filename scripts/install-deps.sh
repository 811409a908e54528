#!/bin/sh
# Install every Debian 12 package that banger's build, runtime and tests need.
set -eu

build="meson ninja-build pkg-config gcc clang libclang-rt-14-dev clang-format
libsystemd-dev libcurl4-openssl-dev libarchive-dev libext2fs-dev comerr-dev
libjson-c-dev libinih-dev check libzstd-dev liblz4-dev libssl-dev libyaml-dev
libnftables-dev"
runtime="qemu-system-x86 e2fsprogs kmod dbus polkitd pkexec systemd systemd-container
nftables iproute2 openssh-client git"
tests="docker-registry skopeo busybox-static apache2-utils cpio python3 curl util-linux
lz4 zstd xz-utils rsync jq procps passwd shellcheck openssl
iptables bind9-dnsutils iputils-ping"
bench="debootstrap umoci hyperfine time"

export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update
# shellcheck disable=SC2086
apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends $build $runtime $tests $bench
