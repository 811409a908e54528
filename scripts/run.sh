#!/bin/bash
# Build and install banger, then boot a first VM named "demo" from a local
# busybox image and the Debian cloud kernel.
#
# Usage: scripts/run.sh [--keep]
#
# Must run as root on Debian 12. When systemd is PID 1, banger is installed
# on this machine and the VM runs here. Otherwise (containers, CI machines)
# every step runs inside a throwaway systemd container booted from this
# machine's own root file system, as the integration tests do, and the
# container is stopped at the end. With --keep, the container stays up until
# Enter is pressed, so the VM can be used from another terminal.
#
# No public registry is assumed to be reachable: the image is built from
# Debian's busybox-static and served by docker-registry on 127.0.0.1:5000.
# Environment: BANGER_SKIP_DEPS=1 skips scripts/install-deps.sh.
set -uo pipefail

srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
integration=$srcdir/integration
builddir=$srcdir/build-run
registry=127.0.0.1:5000
image=$registry/busybox:latest
kernel_name=cloud
keep=

log() { echo "run.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

case ${1:-} in
"") ;;
--keep) keep=yes ;;
*) die "unknown option '$1'; usage: scripts/run.sh [--keep]" ;;
esac
[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and banger); run: sudo scripts/run.sh"

if [[ ${BANGER_SKIP_DEPS:-} != 1 ]]; then
	log "installing packages with scripts/install-deps.sh"
	sh "$srcdir/scripts/install-deps.sh" >/dev/null || die "scripts/install-deps.sh failed"
fi

log "building in $builddir"
if [[ ! -f $builddir/build.ninja ]]; then
	meson setup "$builddir" -Dbuildtype=release >/dev/null || die "meson setup $builddir failed"
fi
ninja -C "$builddir" -j2 >/dev/null || die "the build failed; run: ninja -C $builddir"

kernel_deb=$("$integration/fetch-kernel.sh" "$integration/cache/kernel") || die "fetch-kernel.sh failed"

work=$(mktemp -d /tmp/banger-run.XXXXXX)
"$integration/build-test-image.sh" "$work/image" >/dev/null || die "build-test-image.sh failed"

# Both modes define target_run USER CMD... (USER "" is root) and the paths
# of the kernel package, the image layout and the integration scripts where
# the commands run.
if [[ $(cat /proc/1/comm 2>/dev/null) == systemd ]]; then
	mode=host
	# NOTE: untested, because the test machines do not run systemd as
	# PID 1 and so never take this branch.
	target_kernel=$kernel_deb
	target_image=$work/image
	target_integration=$integration
	registry_dir=$work/registry

	log "installing into / with meson install"
	meson install -C "$builddir" --no-rebuild --quiet || die "meson install from $builddir failed"
	for file in /usr/lib/sysusers.d/banger*.conf; do
		[[ -f $file ]] && systemd-sysusers "$file"
	done
	# The image is served over plain HTTP from loopback.
	mkdir -p /etc/banger/bangerd.conf.d
	printf '[Registry]\nInsecureRegistries=%s\n' "$registry" >/etc/banger/bangerd.conf.d/40-run-local-registry.conf
	systemctl daemon-reload
	systemctl reload dbus.service

	target_run() {
		local user=$1
		shift
		if [[ -n $user ]]; then
			runuser -u "$user" -- "$@"
		else
			"$@"
		fi
	}
	cleanup() {
		"$integration/registry.sh" stop "$registry_dir" >/dev/null 2>&1
		rm -rf "$work"
	}
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	"$integration/registry.sh" start "$registry_dir" 5000 || die "the local registry did not start"
	user=${SUDO_USER:-}
else
	mode=container
	# shellcheck source=integration/lib-container.sh
	source "$integration/lib-container.sh"
	target_kernel=/srv/banger-run/kernel/$(basename "$kernel_deb")
	target_image=/srv/banger-run/image
	target_integration=/srv/banger-run/integration

	target_run() {
		local user=$1
		shift
		if [[ -n $user ]]; then
			ct_run --user "$user" -- "$@"
		else
			ct_run -- "$@"
		fi
	}
	cleanup() {
		ct_stop
		rm -rf "$work"
	}
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	log "systemd is not PID 1 here, so banger runs in a throwaway systemd container"
	# TCG because KVM may be missing or unusable where systemd is not PID 1,
	# for example in nested virtual machines.
	CT_BANGERD_CONF=$(printf '[VM]\nAccelerator=tcg\n\n[Registry]\nInsecureRegistries=%s\n' "$registry")
	ct_boot "run-$$" "$builddir" \
		--bind-ro "$integration/cache/kernel:/srv/banger-run/kernel" \
		--bind-ro "$work/image:/srv/banger-run/image" \
		--bind-ro "$integration:/srv/banger-run/integration" || die "the container did not boot"
	target_run "" systemd-run -q --unit=banger-run-registry --service-type=exec \
		"$target_integration/registry.sh" serve /var/tmp/banger-run-registry 5000 ||
		die "the local registry did not start"
	# alice is a member of group banger, which polkit lets manage VMs.
	user=alice
fi

step() {
	log "$1"
	shift
	"$@" || die "failed: ${*:2}"
}

step "waiting for the registry on $registry" target_run "" sh -c \
	"for i in \$(seq 100); do curl -fs -o /dev/null http://$registry/v2/ && exit 0; sleep 0.1; done; exit 1"
step "pushing the busybox image to $image" \
	target_run "" "$target_integration/push-test-image.sh" "$target_image" "$image"
step "importing kernel $(basename "$kernel_deb") as '$kernel_name'" \
	target_run "$user" bangerctl kernel import "$target_kernel" --name "$kernel_name"
step "pulling $image" target_run "$user" bangerctl image pull "$image"
step "creating VM demo (QEMU boots it, under TCG this takes a few seconds)" \
	target_run "$user" bangerctl vm create --image "$image" --kernel "$kernel_name" demo
step "bangerctl vm exec demo -- uname -a" target_run "$user" bangerctl vm exec demo -- uname -a
# The VM's address comes from its bus object; bangerd's DNS answers demo.banger on the bridge.
# shellcheck disable=SC2016 # the script runs in the target's shell
step "pinging demo over banger0 and resolving demo.banger" target_run "$user" sh -c \
	'a=$(busctl get-property org.banger1 /org/banger1/vm/demo org.banger1.VM Address | cut -d\" -f2) &&
	 gw=$(ip -4 -o addr show dev banger0 | awk "{print \$4}" | cut -d/ -f1) &&
	 ping -c 1 -W 10 "$a" && test "$(dig +short @"$gw" demo.banger)" = "$a" && echo "demo.banger is $a"'
target_run "$user" bangerctl vm list

if [[ $mode == host ]]; then
	cat <<EOF

VM 'demo' is running.
  Run a command in it:   bangerctl vm exec demo -- sh -c 'cat /etc/hostname; ls /'
  Read its console:      bangerctl vm console-log demo
  Stop and remove it:    bangerctl vm stop demo && bangerctl vm rm demo
The local registry on $registry stops now; the VM keeps running.
EOF
elif [[ -n $keep ]]; then
	enter="nsenter -t $CT_PID -a -- runuser -u alice --"
	cat <<EOF

VM 'demo' is running in container $CT_NAME. From another terminal:
  Run a command in it:   $enter bangerctl vm exec demo -- sh -c 'cat /etc/hostname; ls /'
  Read its console:      $enter bangerctl vm console-log demo
  Stop and remove it:    $enter sh -c 'bangerctl vm stop demo && bangerctl vm rm demo'
Press Enter to stop the container and the VM in it.
EOF
	read -r _
else
	cat <<EOF

On a machine with systemd as PID 1, these commands use and remove the VM:
  bangerctl vm exec demo -- sh -c 'cat /etc/hostname; ls /'
  bangerctl vm console-log demo
  bangerctl vm stop demo && bangerctl vm rm demo
The container and the VM in it are now stopped. To try the commands here,
run scripts/run.sh --keep.
EOF
fi
