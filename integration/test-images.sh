#!/bin/bash
# End-to-end scenario for the image pipeline through bangerd. It checks
# concurrent pulls, the blob cache, a pull interrupted by SIGKILL, an image
# with every tar entry kind booted in a VM, and a manifest with a corrupt
# config. Everything runs in one throwaway systemd container with a loopback
# registry.
#
# Usage: test-images.sh [BUILDDIR]
#
# BUILDDIR must be a finished meson build, which is installed into the
# container. It defaults to $BANGER_BUILDDIR, else to build-ci-release in the
# source tree. The kernel comes from fetch-kernel.sh, which needs the Debian
# mirror on its first run. Prints one line per check and a final
# "N passed, N failed" line, and exits non-zero if any check failed. Must run
# as root.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srcdir=$(dirname "$here")
builddir=$(cd "${1:-${BANGER_BUILDDIR:-$srcdir/build-ci-release}}" 2>/dev/null && pwd) || {
	echo "test-images: build directory ${1:-${BANGER_BUILDDIR:-$srcdir/build-ci-release}} not found; run meson setup and ninja first" >&2
	exit 2
}

# shellcheck source=integration/lib-container.sh
source "$here/lib-container.sh"
# shellcheck source=integration/lib-checks.sh
source "$here/lib-checks.sh"

REGISTRY=127.0.0.1:5000
REGISTRY_DIR=/var/tmp/test-registry
SMALL=$REGISTRY/busybox:latest
KINDS=$REGISTRY/kinds:latest
BIG=$REGISTRY/big:latest
PARA_A=$REGISTRY/para-a:latest
PARA_B=$REGISTRY/para-b:latest
BAD=$REGISTRY/bad:latest
KERNEL_NAME=cloud
VM=kinds-vm
MOUNTS=/srv/banger-test
BLOBS=/var/cache/banger/blobs/sha256

checks_init images

# Print the paths under banger's state, runtime and cache directories.
snapshot() {
	run_as "" sh -c 'find /var/lib/banger /run/banger /var/cache/banger 2>/dev/null | sort'
	echo "$OUT"
}

# Print how many times the registry's access log shows a GET of PATH.
registry_gets() {
	run_as "" journalctl -b --no-pager -o cat -u test-registry.service
	grep -c "\"GET $1 HTTP" <<<"$OUT"
}

# Print every blob digest of REPOSITORY:latest as the registry serves it: the
# config's, then each layer's. skopeo may compress layers while it pushes, so
# the layout's digests can differ.
registry_blobs() {
	run_as "" curl -fsS -H "Accept: application/vnd.oci.image.manifest.v1+json" \
		"http://$REGISTRY/v2/$1/manifests/latest"
	jq -r '.config.digest, .layers[].digest' <<<"$OUT"
}

# Start a pull through the D-Bus API as alice and print the job's path.
start_pull() {
	ct_run --user alice -- busctl --system call org.banger1 /org/banger1 org.banger1.Manager \
		PullImage "sa{sv}" "$1" 0 | sed -n 's/^o "\(.*\)"$/\1/p'
}

# Wait up to 10 minutes for the job at PATH to finish and print its State and
# Error, separated by a tab.
# shellcheck disable=SC2016 # expanded by the shell in the container
wait_job() {
	ct_run --user alice -- sh -c '
		for i in $(seq 6000); do
			state=$(busctl --system get-property org.banger1 "$1" org.banger1.Job State) || exit 1
			case $state in
			*running*) sleep 0.1 ;;
			*)
				error=$(busctl --system get-property org.banger1 "$1" org.banger1.Job Error)
				printf "%s\t%s\n" "$state" "$error"
				exit 0
				;;
			esac
		done
		exit 1' sh "$1"
}

# Print the problems in the blob cache: temporary files and blobs whose
# content does not match their name. The scenario pulls before it calls this,
# so a missing cache is a problem too.
cache_problems() {
	# shellcheck disable=SC2016 # expanded by the shell in the container
	run_as "" sh -c '
		cd '"$BLOBS"' || exit 0
		for f in $(ls -A); do
			case $f in
			*[!0-9a-f]* | "") echo "temporary file $f" ;;
			*) [ "$(sha256sum "$f" | cut -d" " -f1)" = "$f" ] || echo "blob $f does not match its digest" ;;
			esac
		done'
	echo "$OUT"
}

# Print the directory under /var/lib/banger/images whose record names REF.
image_dir() {
	run_as "" sh -c "grep -l -F '\"$1\"' /var/lib/banger/images/*/record.json 2>/dev/null | head -n 1 | xargs -r dirname"
	echo "$OUT"
}

set_throttle() {
	# The registry is on the container's own loopback, which a token bucket
	# slows to about 5 MB/s so that a 48 MiB download lasts several seconds.
	# The bucket must hold more than one 64 KiB loopback packet, or tbf drops
	# every large packet.
	expect_ok "loopback is throttled" "" tc qdisc replace dev lo root tbf rate 40mbit burst 1mb latency 400ms
}

clear_throttle() {
	run_as "" tc qdisc del dev lo root
}

dump_diagnostics() {
	echo "--- journal of bangerd"
	ct_run -- journalctl -b --no-pager -o short-monotonic -u bangerd.service -u 'banger-vm-*' | tail -n 200
	echo "--- registry log"
	ct_run -- journalctl -b --no-pager -o cat -u test-registry.service | tail -n 40
	echo "--- container log"
	tail -n 50 "$CT_LOG"
}

finish() {
	if ((failed > 0)); then
		dump_diagnostics
	fi
	echo "$passed passed, $failed failed"
	((failed == 0))
	exit
}

# Inputs on the host: the kernel package, the image layouts, the registry
# configuration and a manifest whose config blob the registry will serve
# with other bytes.
kernel_deb=$("$here/fetch-kernel.sh" "$here/cache/kernel") || {
	echo "test-images: fetch-kernel.sh failed" >&2
	exit 2
}
if ! "$here/build-test-image.sh" "$work/images/busybox" >/dev/null ||
	! "$here/build-pipeline-images.py" "$work/images/busybox" "$work/images/pipeline"; then
	echo "test-images: building the test images failed" >&2
	exit 2
fi
mkdir -p "$work/registry" "$work/bad"
cat >"$work/registry/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/storage
http:
  addr: $REGISTRY
EOF
python3 - "$work/bad" <<'EOF'
import hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as tar:
    info = tarfile.TarInfo("hello")
    info.size = 6
    tar.addfile(info, io.BytesIO(b"hello\n"))
layer = buf.getvalue()
config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
    "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
# Same size, other bytes: the registry serves these under the config's digest.
tampered = config.replace(b"amd64", b"arm64")
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": "sha256:" + hashlib.sha256(layer).hexdigest(), "size": len(layer)}]}
for name, data in (("layer", layer), ("config", config), ("tampered", tampered),
                   ("manifest", json.dumps(manifest).encode())):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
EOF
chmod -R a+rX "$work"
bad_config=$(sha256sum "$work/bad/config" | cut -d' ' -f1)

ct_boot "img-$$" "$builddir" \
	--bind-ro "$here/cache/kernel:$MOUNTS/kernel" \
	--bind-ro "$work:$MOUNTS/work" \
	--bind-ro "$here:$MOUNTS/integration" || {
	fail "container boots"
	echo "$passed passed, $failed failed"
	exit 1
}
pass "container boots"
kernel_path=$MOUNTS/kernel/$(basename "$kernel_deb")

# The registry runs as a transient service, whose journal keeps its access
# log.
expect_ok "registry starts" "" systemd-run --unit=test-registry --service-type=exec \
	docker-registry serve "$MOUNTS/work/registry/config.yml"
expect_ok "registry responds" "" sh -c \
	"for i in \$(seq 100); do curl -fsS -o /dev/null http://$REGISTRY/v2/ && exit 0; sleep 0.1; done; exit 1"
for image in busybox kinds big para-a para-b; do
	layout=$MOUNTS/work/images/pipeline/$image
	[[ $image == busybox ]] && layout=$MOUNTS/work/images/busybox
	expect_ok "image $image pushes" "" "$MOUNTS/integration/push-test-image.sh" "$layout" \
		"$REGISTRY/$image:latest"
done

# Two pulls of one reference started at the same moment share one job, and
# the registry sends each blob once.
start_pull "$SMALL" >"$work/job1" &
pull1=$!
start_pull "$SMALL" >"$work/job2" &
pull2=$!
wait "$pull1" "$pull2"
job1=$(cat "$work/job1")
job2=$(cat "$work/job2")
if [[ -n $job1 && $job1 == "$job2" ]]; then
	pass "concurrent pulls of one reference share a job"
else
	fail "concurrent pulls of one reference share a job" "job paths '$job1' and '$job2'"
fi
result=$(wait_job "$job1")
if [[ $result == *'"done"'* ]]; then pass "shared pull finishes"; else fail "shared pull finishes" "$result"; fi
small_blobs=$(registry_blobs busybox)
for digest in $small_blobs; do
	count=$(registry_gets "/v2/busybox/blobs/$digest")
	if [[ $count == 1 ]]; then
		pass "blob ${digest:7:12} is fetched once"
	else
		fail "blob ${digest:7:12} is fetched once" "$count GET requests"
	fi
done

# A second pull of the same reference takes every blob from the cache.
expect_ok "second pull of busybox" alice bangerctl image pull "$SMALL"
for digest in $small_blobs; do
	count=$(registry_gets "/v2/busybox/blobs/$digest")
	if [[ $count == 1 ]]; then
		pass "second pull reuses cached blob ${digest:7:12}"
	else
		fail "second pull reuses cached blob ${digest:7:12}" "$count GET requests in all"
	fi
done

# Pulls of two references run side by side: at one instant both jobs are
# running and both have received bytes.
set_throttle
# shellcheck disable=SC2016 # expanded by the shell in the container
run_as alice sh -c '
	pull() { busctl --system call org.banger1 /org/banger1 org.banger1.Manager PullImage "sa{sv}" "$1" 0 | cut -d\" -f2; }
	prop() { busctl --system get-property org.banger1 "$1" org.banger1.Job "$2" | cut -d" " -f2 | tr -d \"; }
	a=$(pull "$1") && b=$(pull "$2") || exit 1
	both=no
	for i in $(seq 3000); do
		sa=$(prop "$a" State) sb=$(prop "$b" State)
		if [ "$sa" = running ] && [ "$sb" = running ] &&
			[ "$(prop "$a" BytesDone)" -gt 0 ] && [ "$(prop "$b" BytesDone)" -gt 0 ]; then
			both=yes
		fi
		[ "$sa" != running ] && [ "$sb" != running ] && break
		sleep 0.05
	done
	echo "$a $b $both $sa $sb"' sh "$PARA_A" "$PARA_B"
read -r job_a job_b both state_a state_b <<<"$OUT"
if [[ -n ${job_a:-} && $job_a != "${job_b:-}" ]]; then
	pass "pulls of two references get two jobs"
else
	fail "pulls of two references get two jobs" "$(last_error_line)"
fi
if [[ ${both:-} == yes ]]; then
	pass "pulls of two references download at once"
else
	fail "pulls of two references download at once" "no instant with both jobs downloading: $OUT"
fi
if [[ ${state_a:-} == "done" && ${state_b:-} == "done" ]]; then
	pass "both parallel pulls finish"
else
	fail "both parallel pulls finish" "states '${state_a:-}' and '${state_b:-}'"
fi

# SIGKILL to bangerd in the middle of a download.
big_layer=$(registry_blobs big | tail -n 1)
big_job=$(start_pull "$BIG")
# shellcheck disable=SC2016 # expanded by the shell in the container
run_as alice sh -c '
	for i in $(seq 600); do
		done=$(busctl --system get-property org.banger1 "$1" org.banger1.Job BytesDone | cut -d" " -f2)
		[ "$done" -gt 4194304 ] 2>/dev/null && { echo "$done"; exit 0; }
		sleep 0.05
	done
	exit 1' sh "$big_job"
if ((RC == 0)); then
	pass "big pull is downloading"
	run_as "" systemctl show -p MainPID --value bangerd.service
	expect_ok "bangerd is killed with SIGKILL mid-download" "" kill -KILL "$OUT"
else
	fail "big pull is downloading" "job '$big_job': $(last_error_line)"
fi
clear_throttle
expect_output "no blob is stored under the big layer's digest" absent "" \
	sh -c "if [ -e $BLOBS/${big_layer#sha256:} ]; then echo present; else echo absent; fi"
# The next call starts bangerd again, which loads the store.
bctl_list() { run_as alice bangerctl image list; }
bctl_list
if ((RC == 0)) && [[ $OUT != *"$REGISTRY/big"* ]]; then
	pass "interrupted pull leaves no image"
else
	fail "interrupted pull leaves no image" "$(last_error_line): $OUT"
fi
problems=$(cache_problems)
if [[ -z $problems ]]; then
	pass "interrupted pull leaves no partial blob"
else
	fail "interrupted pull leaves no partial blob" "$(tr '\n' ' ' <<<"$problems")"
fi
run_as "" sh -c 'find /var/lib/banger/images -mindepth 1 -maxdepth 1 -name ".tmp-*"'
if [[ -z $OUT ]]; then pass "interrupted pull leaves no temporary image"; else fail "interrupted pull leaves no temporary image" "$OUT"; fi
expect_ok "pull after the interruption" alice bangerctl image pull "$BIG"
expect_output "big layer is cached after the pull" present "" \
	sh -c "if [ -e $BLOBS/${big_layer#sha256:} ]; then echo present; else echo absent; ls -A $BLOBS; fi"

# Every tar entry kind, pulled, checked on the host side of the ext4 and in
# a VM.
expect_ok "pull of the entry-kinds image" alice bangerctl image pull "$KINDS"
kinds_dir=$(image_dir "$KINDS")
if [[ -n $kinds_dir ]]; then
	pass "entry-kinds image has a directory"
	expect_ok "entry-kinds rootfs passes e2fsck -fn" "" e2fsck -fn "$kinds_dir/rootfs.ext4"
	run_as "" debugfs -R "ea_list /opt/kinds/cap" "$kinds_dir/rootfs.ext4"
	if [[ $OUT == *"security.capability (20) = 01 00 00 02 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00"* ]]; then
		pass "security.capability is stored with its 20 bytes"
	else
		fail "security.capability is stored with its 20 bytes" "debugfs printed: $(tr '\n' ' ' <<<"$OUT")"
	fi
else
	fail "entry-kinds image has a directory" "no record under /var/lib/banger/images names $KINDS"
fi

expect_ok "kernel import" alice bangerctl kernel import "$kernel_path" --name "$KERNEL_NAME"
expect_ok "vm create from the entry-kinds image" alice \
	bangerctl vm create --image "$KINDS" --kernel "$KERNEL_NAME" "$VM"
paths=()
expected=()
while IFS=$'\t' read -r path line; do
	paths+=("$path")
	expected+=("$line")
done <"$work/images/pipeline/expected.tsv"
run_as alice bangerctl vm exec "$VM" -- stat -c '%a %u %g %h %F' "${paths[@]}"
mapfile -t lines <<<"$OUT"
for i in "${!paths[@]}"; do
	name="VM sees ${paths[i]:0:40} as '${expected[i]}'"
	if ((RC != 0)); then
		fail "$name" "$(last_error_line)"
	elif [[ ${lines[i]:-} == "${expected[i]}" ]]; then
		pass "$name"
	else
		fail "$name" "stat printed '${lines[i]:-}'"
	fi
done
# shellcheck disable=SC2016 # expanded by the shell in the VM
expect_output "VM sees device numbers" "4 40 8 1" alice bangerctl vm exec "$VM" -- \
	sh -c 'echo $(stat -c "%t %T" /opt/kinds/chardev /opt/kinds/blockdev)'
expect_output "VM lists the owner above 65535" "100000 200000" alice bangerctl vm exec "$VM" -- \
	sh -c "ls -ln /opt/kinds/owner | awk '{ print \$3, \$4 }'"
expect_output "VM reads the hardlink's data" "data of the lower layer" alice \
	bangerctl vm exec "$VM" -- cat /opt/kinds/hardlink
expect_output "VM reads through the long path" "long path" alice \
	bangerctl vm exec "$VM" -- sh -c 'cat /opt/kinds/long/a*/b*/c*/file'
expect_output "VM lists 5000 entries" 5000 alice \
	bangerctl vm exec "$VM" -- sh -c 'ls /opt/kinds/many | wc -l'

expect_error "image rm of the image a VM uses names the VM" "$VM" alice bangerctl image rm "$KINDS"
bctl_list
if [[ $OUT == *"$REGISTRY/kinds"* ]]; then pass "refused image rm keeps the image"; else fail "refused image rm keeps the image" "$OUT"; fi

# A manifest whose config blob does not match its digest. The registry
# checks uploads but not the bytes it serves, so the stored copy is replaced
# after the upload.
# shellcheck disable=SC2016 # expanded by the shell in the container
expect_ok "manifest with a corrupt config pushes" "" sh -c '
	set -e
	r=http://$1 dir=$2 storage=$3
	upload() {
		loc=$(curl -fsS -X POST -D - -o /dev/null "$r/v2/bad/blobs/uploads/" |
			tr -d "\r" | sed -n "s/^[Ll]ocation: //p")
		case $loc in /*) loc=$r$loc ;; esac
		case $loc in *\?*) loc="$loc&" ;; *) loc="$loc?" ;; esac
		curl -fsS -X PUT -H "Content-Type: application/octet-stream" --data-binary "@$dir/$1" \
			"$loc"digest=sha256:"$(sha256sum "$dir/$1" | cut -d" " -f1)"
	}
	upload layer
	upload config
	curl -fsS -X PUT -H "Content-Type: application/vnd.oci.image.manifest.v1+json" \
		--data-binary "@$dir/manifest" "$r/v2/bad/manifests/latest"
	hex=$(sha256sum "$dir/config" | cut -d" " -f1)
	cp "$dir/tampered" "$storage/docker/registry/v2/blobs/sha256/$(echo "$hex" | cut -c1-2)/$hex/data"' \
	sh "$REGISTRY" "$MOUNTS/work/bad" "$REGISTRY_DIR/storage"
before=$(snapshot)
expect_error "pull with a corrupt config names its digest" "sha256:$bad_config" alice bangerctl image pull "$BAD"
after=$(snapshot)
if [[ $before == "$after" ]]; then
	pass "pull with a corrupt config leaves nothing"
else
	fail "pull with a corrupt config leaves nothing" \
		"new state: $(diff <(echo "$before") <(echo "$after") | grep '^[<>]' | tr '\n' ' ')"
fi

expect_ok "vm rm" alice sh -c "bangerctl vm stop $VM && bangerctl vm rm $VM"

# A build with -Db_sanitize=address,undefined reports memory errors on
# stderr, which the journal keeps.
run_as "" journalctl -b --no-pager -o cat -u bangerd.service
reports=$(grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' <<<"$OUT")
if [[ -z $reports ]]; then
	pass "bangerd's journal has no sanitizer reports"
else
	fail "bangerd's journal has no sanitizer reports" "$(head -n 3 <<<"$reports" | tr '\n' ' ')"
fi

finish
