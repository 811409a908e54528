#!/bin/bash
# End-to-end scenario for kernels from a catalog. Inside a throwaway systemd
# container, it serves Debian's cloud kernel as a catalog on loopback and
# pulls it with bangerctl. Then it creates several VMs at once without
# --kernel, with neither the kernel nor the image in the store and an empty
# blob cache. It checks that the kernel artifacts, the image manifest and
# each image blob were downloaded exactly once. Every VM must run and report
# the qemu backend.
#
# Usage: test-kernel-catalog.sh [BUILDDIR]
#
# BUILDDIR must be a finished meson build; it defaults to $BANGER_BUILDDIR,
# else to build-ci-release in the source tree. Environment:
#   BANGER_CATALOG_VMS   number of parallel creates (default 8: the whole
#                        scenario took 44 s with 8 on 2 cores under TCG)
#   BANGER_CATALOG_BOOT  "parallel" (default) starts the VMs together;
#                        "sequential" boots them one at a time, stopping each
#                        before the next, for hosts that can run one VM only
# Prints one line per check and a final "N passed, N failed" line, and exits
# non-zero if any check failed. Must run as root.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srcdir=$(dirname "$here")
builddir=$(cd "${1:-${BANGER_BUILDDIR:-$srcdir/build-ci-release}}" 2>/dev/null && pwd) || {
	echo "test-kernel-catalog: build directory ${1:-${BANGER_BUILDDIR:-$srcdir/build-ci-release}} not found; run meson setup and ninja first" >&2
	exit 2
}
vm_count=${BANGER_CATALOG_VMS:-8}
boot_mode=${BANGER_CATALOG_BOOT:-parallel}
[[ $vm_count =~ ^[1-9][0-9]?$ ]] || {
	echo "test-kernel-catalog: invalid BANGER_CATALOG_VMS '$vm_count'; pass 1 to 99" >&2
	exit 2
}
[[ $boot_mode == parallel || $boot_mode == sequential ]] || {
	echo "test-kernel-catalog: invalid BANGER_CATALOG_BOOT '$boot_mode'; pass parallel or sequential" >&2
	exit 2
}

# shellcheck source=integration/lib-container.sh
source "$here/lib-container.sh"
# shellcheck source=integration/lib-checks.sh
source "$here/lib-checks.sh"

REGISTRY=127.0.0.1:5000
IMAGE=$REGISTRY/busybox:latest
CATALOG_PORT=8780
KERNEL_NAME=debian-cloud
MOUNTS=/srv/banger-test
SERVER_LOG=/var/tmp/catalog-requests.log
REGISTRY_CURSOR=/var/tmp/registry-journal.cursor

# The container has its own network namespace, so these ports are its own.
CT_BANGERD_CONF=$(printf '[VM]\nAccelerator=tcg\nDefaultKernel=%s\n\n[Kernel]\nCatalogURL=http://127.0.0.1:%s/index.json\n\n[Registry]\nInsecureRegistries=%s\n\n[Daemon]\nIdleTimeoutSec=60\n' \
	"$KERNEL_NAME" "$CATALOG_PORT" "$REGISTRY")

# Eight VMs booting at once under TCG make single commands slow.
RUN_TIMEOUT=900
checks_init catalog

# Print "COUNT METHOD URI" for each request the registry completed since the
# previous call, from docker-registry's "response completed" log lines.
registry_requests() {
	run_as "" sh -c "journalctl -u test-registry --no-pager -o cat --cursor-file=$REGISTRY_CURSOR | grep 'msg=\"response completed' || true"
	sed -n 's/.*http\.request\.method=\([A-Z]*\) .*http\.request\.uri="\{0,1\}\([^" ]*\).*/\1 \2/p' <<<"$OUT" | sort | uniq -c |
		awk '{print $1, $2, $3}'
}

# Print how many requests for PATH the catalog server logged.
request_count() {
	run_as "" sh -c "grep -c '^GET $1 ' $SERVER_LOG || true"
	echo "${OUT:-0}"
}

vm_state() {
	run_as alice bangerctl vm list --json
	jq -r --arg name "$1" '.[] | select(.name == $name) | .state' <<<"$OUT" 2>/dev/null
}

# Build the catalog from the unpacked Debian package: the bzImage as the
# "vmlinux" artifact (bangerd accepts either), the modules tarball and the
# configuration, plus a second entry whose vmlinux digest is wrong.
make_catalog() {
	local tree=$1 out=$2 release vm_sha mod_sha cfg_sha bad_sha
	release=$(basename "$(ls -d "$tree"/lib/modules/*)")
	mkdir -p "$out"
	cp "$tree/boot/vmlinuz-$release" "$out/vmlinux"
	tar -C "$tree" -czf "$out/modules.tar.gz" "lib/modules/$release"
	cp "$tree/boot/config-$release" "$out/config"
	vm_sha=$(sha256sum "$out/vmlinux" | cut -d' ' -f1)
	mod_sha=$(sha256sum "$out/modules.tar.gz" | cut -d' ' -f1)
	cfg_sha=$(sha256sum "$out/config" | cut -d' ' -f1)
	bad_sha=$(printf '%064d' 0)
	jq -n --arg name "$KERNEL_NAME" --arg version "$release" \
		--arg vm "$vm_sha" --arg mod "$mod_sha" --arg cfg "$cfg_sha" --arg bad "$bad_sha" '
		{kernels: [
			{name: $name, version: $version, arch: "amd64", artifacts: {
				vmlinux: {url: "vmlinux", sha256: $vm},
				modules: {url: "modules.tar.gz", sha256: $mod},
				config: {url: "config", sha256: $cfg}}},
			{name: "corrupt", version: $version, arch: "amd64", artifacts: {
				vmlinux: {url: "vmlinux", sha256: $bad},
				modules: {url: "modules.tar.gz", sha256: $mod}}}]}' >"$out/index.json"
}

"$here/fetch-kernel.sh" "$here/cache/kernel" >/dev/null || {
	echo "test-kernel-catalog: fetch-kernel.sh failed" >&2
	exit 2
}
make_catalog "$here/cache/kernel/root" "$work/catalog" || {
	echo "test-kernel-catalog: building the catalog in $work/catalog failed" >&2
	exit 2
}
"$here/build-test-image.sh" "$work/image" >/dev/null || {
	echo "test-kernel-catalog: build-test-image.sh failed" >&2
	exit 2
}

ct_boot "catalog-$$" "$builddir" \
	--bind-ro "$work/catalog:$MOUNTS/catalog" \
	--bind-ro "$work/image:$MOUNTS/image" \
	--bind-ro "$here:$MOUNTS/integration" || {
	fail "container boots"
	echo "$passed passed, $failed failed"
	exit 1
}
pass "container boots"

expect_ok "registry starts" "" systemd-run --unit=test-registry --service-type=exec \
	"$MOUNTS/integration/registry.sh" serve /var/tmp/test-registry 5000
expect_ok "registry responds" "" sh -c \
	"for i in \$(seq 100); do curl -fsS -o /dev/null http://$REGISTRY/v2/ && exit 0; sleep 0.1; done; exit 1"
expect_ok "test image pushes" "" "$MOUNTS/integration/push-test-image.sh" "$MOUNTS/image" "$IMAGE"
expect_ok "image pull" alice bangerctl image pull "$IMAGE"

expect_ok "catalog server starts" "" systemd-run --unit=test-catalog --service-type=exec \
	python3 "$MOUNTS/integration/catalog-server.py" "$MOUNTS/catalog" /var/tmp/catalog.port \
	"$SERVER_LOG" "$CATALOG_PORT"
expect_ok "catalog server responds" "" sh -c \
	"for i in \$(seq 100); do curl -fsS -o /dev/null http://127.0.0.1:$CATALOG_PORT/index.json && exit 0; sleep 0.1; done; exit 1"

# bangerctl kernel pull
expect_ok "kernel pull" alice bangerctl kernel pull "$KERNEL_NAME"
run_as alice bangerctl kernel list
if [[ $OUT == *"$KERNEL_NAME"* ]]; then pass "kernel list shows $KERNEL_NAME"; else fail "kernel list shows $KERNEL_NAME" "$OUT"; fi
n=$(request_count /vmlinux)
if [[ $n == 1 ]]; then pass "kernel pull downloads the vmlinux once"; else fail "kernel pull downloads the vmlinux once" "$n requests"; fi

run_as alice bangerctl kernel pull corrupt
if ((RC != 0)) && [[ $ERR == *sha256* ]]; then
	pass "pull with a wrong sha256 fails"
	echo "     $(tail -n 1 <<<"$ERR")"
else
	fail "pull with a wrong sha256 fails" "$(last_error_line)"
fi
expect_ok "pull with a wrong sha256 stores nothing" "" sh -c \
	'test ! -e /var/lib/banger/kernels/corrupt && ! ls -A /var/lib/banger/kernels | grep -q "^\.tmp"'

# Parallel creates on a cold store: one download of the kernel and of the
# image for all of them.
expect_ok "kernel rm empties the store" alice bangerctl kernel rm "$KERNEL_NAME"
expect_ok "image rm empties the store" alice bangerctl image rm "$IMAGE"
expect_ok "blob cache is emptied" "" rm -rf /var/cache/banger/blobs
expect_ok "request log is reset" "" truncate -s 0 "$SERVER_LOG"
registry_requests >/dev/null

if [[ $boot_mode == parallel ]]; then start_flag=(); else start_flag=(--no-start); fi
pids=()
for ((i = 1; i <= vm_count; i++)); do
	ct_run --user alice -- timeout 900 bangerctl vm create --image "$IMAGE" "${start_flag[@]}" "cat$i" \
		>"$work/create$i.out" 2>"$work/create$i.err" &
	pids+=($!)
done
for ((i = 1; i <= vm_count; i++)); do
	if wait "${pids[i - 1]}"; then
		pass "parallel vm create cat$i"
	else
		fail "parallel vm create cat$i" "$(tail -n 1 "$work/create$i.err")"
	fi
done

# The first create pulls the kernel and the others, waiting for it, find it
# in the store without asking the catalog.
for path in /index.json /vmlinux /modules.tar.gz /config; do
	n=$(request_count "$path")
	if [[ $n == 1 ]]; then
		pass "$vm_count creates fetch $path once"
	else
		fail "$vm_count creates fetch $path once" "$n requests"
	fi
done
run_as alice bangerctl kernel list
if [[ $OUT == *"$KERNEL_NAME"* ]]; then pass "create pulled $KERNEL_NAME into the store"; else fail "create pulled $KERNEL_NAME into the store" "$OUT"; fi

# The same holds for the image: the first create pulls it and the others wait
# for that pull and take its result. Every GET the registry served since the
# reset must be unique, and the manifest and each blob it names must be
# among them.
requests=$(registry_requests)
while IFS= read -r line; do echo "     $line"; done <<<"$requests"
repeated=$(awk '$2 == "GET" && $1 != 1' <<<"$requests")
if [[ -z $repeated ]]; then
	pass "$vm_count creates fetch each registry object once"
else
	fail "$vm_count creates fetch each registry object once" "$(tr '\n' ';' <<<"$repeated")"
fi
repo=${IMAGE#"$REGISTRY"/}
repo=${repo%%:*}
tag=${IMAGE##*:}
if grep -q "^1 GET /v2/$repo/manifests/$tag\$" <<<"$requests"; then
	pass "$vm_count creates fetch the image manifest once"
else
	fail "$vm_count creates fetch the image manifest once" "no single GET of /v2/$repo/manifests/$tag"
fi
run_as "" curl -fsS -H "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json" \
	"http://$REGISTRY/v2/$repo/manifests/$tag"
digests=$(jq -r '.config.digest, .layers[].digest' <<<"$OUT" 2>/dev/null)
if [[ -z $digests ]]; then
	fail "image blobs are listed" "manifest of $IMAGE: ${OUT:0:200}"
fi
for digest in $digests; do
	if grep -q "^1 GET /v2/$repo/blobs/$digest\$" <<<"$requests"; then
		pass "$vm_count creates fetch blob ${digest:0:19} once"
	else
		fail "$vm_count creates fetch blob ${digest:0:19} once" "not exactly one GET of /v2/$repo/blobs/$digest"
	fi
done
run_as alice bangerctl image list
if [[ $OUT == *"$repo"* ]]; then pass "create pulled $IMAGE into the store"; else fail "create pulled $IMAGE into the store" "$OUT"; fi

for ((i = 1; i <= vm_count; i++)); do
	if [[ $boot_mode == sequential ]]; then
		expect_ok "vm start cat$i" alice bangerctl vm start "cat$i"
	fi
	state=$(vm_state "cat$i")
	if [[ $state == running ]]; then pass "cat$i is running"; else fail "cat$i is running" "state '$state'"; fi
	expect_output "exec in cat$i" "cat$i" alice bangerctl vm exec "cat$i" -- cat /etc/hostname
	run_as alice bangerctl vm show "cat$i"
	if grep -qx "Backend=qemu" <<<"$OUT"; then pass "cat$i has the qemu backend"; else fail "cat$i has the qemu backend" "$(grep Backend <<<"$OUT")"; fi
	if [[ $boot_mode == sequential ]]; then
		expect_ok "vm stop cat$i" alice bangerctl vm stop --force "cat$i"
	fi
done

for ((i = 1; i <= vm_count; i++)); do
	expect_ok "vm rm cat$i" alice bangerctl vm rm "cat$i"
done

# Backend=firecracker: Firecracker cannot run here, so a create must fail
# with a message that names the cause, and leave no VM behind. Stopping
# bangerd makes the next call start it with the drop-in read.
FC_DROPIN=/etc/banger/bangerd.conf.d/60-firecracker.conf
firecracker_create_fails() {
	local name=$1 path=$2 expected=$3
	run_as "" sh -c "printf '[VM]\nBackend=firecracker\nFirecrackerPath=%s\n' '$path' >$FC_DROPIN && systemctl stop bangerd.service"
	run_as alice bangerctl vm create --image "$IMAGE" "$name"
	if ((RC != 0)) && [[ $ERR == *"$expected"* ]]; then
		pass "firecracker create with $path fails"
		echo "     $(tail -n 1 <<<"$ERR")"
	else
		fail "firecracker create with $path fails" "$(last_error_line)"
	fi
	if [[ -z $(vm_state "$name") ]]; then pass "failed create leaves no VM $name"; else fail "failed create leaves no VM $name" "state '$(vm_state "$name")'"; fi
}
firecracker_create_fails fc1 /usr/bin/firecracker-missing "check FirecrackerPath"
firecracker_create_fails fc2 /usr/bin/sleep "Firecracker exited before it responded on its API socket"
expect_ok "firecracker drop-in is removed" "" sh -c "rm -f $FC_DROPIN && systemctl stop bangerd.service"
run_as "" pgrep -x qemu-system-x86
if [[ -z $OUT ]]; then pass "no QEMU process is left"; else fail "no QEMU process is left" "$OUT"; fi

if ((failed > 0)); then
	echo "--- journal of bangerd"
	ct_run -- journalctl -b --no-pager -o short-monotonic -u bangerd.service | tail -n 100
	echo "--- catalog requests"
	ct_run -- cat "$SERVER_LOG"
	echo "--- registry requests"
	ct_run -- journalctl -u test-registry --no-pager -o cat | grep 'response completed' | tail -n 40
fi
echo "$passed passed, $failed failed"
((failed == 0))
