# shellcheck shell=bash
# Boot the host's own root file system as a throwaway systemd container, with
# a banger build installed into it, and run commands inside.
#
# Source this file, then:
#   ct_boot NAME BUILDDIR [--bind-ro SRC[:DST]]... [--resolv-conf FILE]
#           [--unpack-deb DEB]...
#       Mount an overlay over / backed by a tmpfs, install BUILDDIR into it
#       with `meson install`, create the test users and configuration, and
#       boot it with systemd-nspawn. Returns when systemd inside is up.
#       --resolv-conf copies FILE to the container's /etc/resolv.conf, which
#       nspawn then leaves alone. --unpack-deb unpacks DEB into the overlay
#       with `dpkg -x` and creates the users of its sysusers.d files. No
#       maintainer script runs, so the host never gets the package.
#   ct_run [--user USER] [--setenv KEY=VALUE]... [--stdin] -- CMD [ARG...]
#       Run CMD inside as a transient service and return its exit status.
#       stdin is /dev/null unless --stdin is given.
#   ct_stop
#       Power the container off, remove its cgroups and unmount its file
#       systems. Safe to call more than once and after a failed ct_boot.
#   ct_install_traps
#       Call ct_stop on exit, on SIGINT and on SIGTERM.
#
# Only one container per shell. The host must mount cgroups in the v1 hybrid
# layout, with /sys/fs/cgroup/unified and /sys/fs/cgroup/systemd. nspawn runs
# with --register=no and --keep-unit because the library is written for
# hosts where systemd is not PID 1, so there is no host systemd to register
# with. NOTE: hosts with systemd as PID 1 or a pure cgroup v2 layout are
# untested.
#
# Inside the container: users alice and carol (in group banger) and bob (not
# in it),
# the drop-in /etc/banger/bangerd.conf.d/50-test.conf written from
# CT_BANGERD_CONF, and a default target that starts only basic.target and
# dbus.service.

CT_NAME=
CT_STATE=
CT_ROOT=
CT_NSPAWN_PID=
CT_PID=
CT_LOG=

# Drop-in for bangerd inside the container. Set it before ct_boot to change.
: "${CT_BANGERD_CONF:=$(printf '[VM]\nAccelerator=tcg\n\n[Registry]\nInsecureRegistries=127.0.0.1:5000\n\n[Daemon]\nIdleTimeoutSec=5\n')}"

CT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

ct_log() { echo "container: $*" >&2; }

# Make the overlay: a tmpfs carries the upper and work directories, so
# nothing the container writes reaches the host's disk.
ct_mount_root() {
	mkdir -p "$CT_STATE/rw" "$CT_STATE/root"
	mount -t tmpfs -o mode=0755 "banger-ct-$CT_NAME" "$CT_STATE/rw" || return 1
	mkdir -p "$CT_STATE/rw/upper" "$CT_STATE/rw/work"
	mount -t overlay -o "lowerdir=/,upperdir=$CT_STATE/rw/upper,workdir=$CT_STATE/rw/work" \
		"banger-ct-$CT_NAME" "$CT_STATE/root" || return 1
	CT_ROOT=$CT_STATE/root
}

# Give the container its own identity and a default target that starts
# nothing the host happens to enable.
ct_prepare_systemd() {
	local unitdir=$CT_ROOT/etc/systemd/system

	rm -f "$CT_ROOT/etc/machine-id"
	systemd-id128 new >"$CT_ROOT/etc/machine-id"

	mkdir -p "$unitdir"
	cat >"$unitdir/banger-ci.target" <<EOF
[Unit]
Description=banger integration test container
Requires=basic.target
Wants=dbus.service
After=basic.target dbus.service
AllowIsolate=yes
EOF
	ln -sfn banger-ci.target "$unitdir/default.target"
	ln -sfn /dev/null "$unitdir/timers.target"
}

ct_install_build() {
	local builddir=$1
	meson install -C "$builddir" --destdir "$CT_ROOT" --no-rebuild --quiet >"$CT_STATE/install.log" 2>&1 || {
		cat "$CT_STATE/install.log" >&2
		ct_log "meson install from $builddir failed; its output is above"
		return 1
	}

	# The system user bangerd and group banger come from banger's own
	# sysusers.d file.
	if compgen -G "$CT_ROOT/usr/lib/sysusers.d/banger*.conf" >/dev/null; then
		systemd-sysusers --root="$CT_ROOT" >&2 || {
			ct_log "systemd-sysusers --root=$CT_ROOT failed"
			return 1
		}
	fi
}

# Unpack a package into the overlay without running its maintainer scripts,
# then create the system users its sysusers.d files declare. dpkg -x would
# replace the links of a merged /usr (/lib, /sbin) with directories, so the
# package goes to a staging directory first and tar keeps those links.
ct_unpack_deb() {
	local deb=$1 staging=$CT_STATE/unpack
	rm -rf "$staging"
	if ! dpkg -x "$deb" "$staging" ||
		! tar -C "$staging" -cf - . | tar -C "$CT_ROOT" -xf - --keep-directory-symlink; then
		ct_log "unpacking $deb into the container failed"
		return 1
	fi
	rm -rf "$staging"
	systemd-sysusers --root="$CT_ROOT" >&2 || {
		ct_log "systemd-sysusers --root=$CT_ROOT failed after unpacking $deb"
		return 1
	}
}

ct_create_users() {
	if ! chroot "$CT_ROOT" getent group banger >/dev/null; then
		# NOTE: only a build without units/banger.sysusers gets here. The
		# group is made so the scenario can go on, and the scenario checks
		# the sysusers file on its own.
		ct_log "group banger missing after systemd-sysusers; creating it for the test users"
		groupadd --root "$CT_ROOT" --system banger || return 1
	fi
	useradd --root "$CT_ROOT" --create-home --shell /bin/bash --groups banger alice || return 1
	useradd --root "$CT_ROOT" --create-home --shell /bin/bash --groups banger carol || return 1
	useradd --root "$CT_ROOT" --create-home --shell /bin/bash bob || return 1
}

ct_write_config() {
	mkdir -p "$CT_ROOT/etc/banger/bangerd.conf.d"
	printf '%s\n' "$CT_BANGERD_CONF" >"$CT_ROOT/etc/banger/bangerd.conf.d/50-test.conf"
}

# Print the PID of the container's init: the child of nspawn running
# systemd.
ct_find_init() {
	local child children
	# The file is one line of space-separated PIDs without a final newline.
	read -r -a children <"/proc/$CT_NSPAWN_PID/task/$CT_NSPAWN_PID/children" 2>/dev/null
	for child in "${children[@]}"; do
		if [[ $(cat "/proc/$child/comm" 2>/dev/null) == systemd ]]; then
			echo "$child"
			return 0
		fi
	done
	return 1
}

ct_boot() {
	local name=$1 builddir=$2
	shift 2
	local binds=() debs=() resolv_conf='' nspawn_opts=() i state deb

	if [[ -n $CT_STATE ]]; then
		ct_log "a container ($CT_NAME) is already running in this shell; call ct_stop first"
		return 1
	fi
	[[ $name =~ ^[a-zA-Z0-9][a-zA-Z0-9-]{0,40}$ ]] || {
		ct_log "invalid container name '$name'; use letters, digits and '-'"
		return 1
	}
	[[ -f $builddir/build.ninja ]] || {
		ct_log "$builddir is not a meson build directory; run: meson setup $builddir"
		return 1
	}
	while (($#)); do
		case $1 in
		--bind-ro)
			binds+=("--bind-ro=$2")
			shift 2
			;;
		--resolv-conf)
			resolv_conf=$2
			nspawn_opts+=(--resolv-conf=off)
			shift 2
			;;
		--unpack-deb)
			debs+=("$2")
			shift 2
			;;
		*)
			ct_log "unknown ct_boot option '$1'"
			return 1
			;;
		esac
	done
	[[ -e /dev/kvm ]] && binds+=(--bind=/dev/kvm)

	CT_NAME=$name
	CT_STATE=$(mktemp -d "/tmp/banger-ct-$name.XXXXXX") || return 1
	CT_LOG=$CT_STATE/nspawn.log

	ct_mount_root || return 1
	ct_install_build "$builddir" || return 1
	for deb in "${debs[@]}"; do
		ct_unpack_deb "$deb" || return 1
	done
	if [[ -n $resolv_conf ]]; then
		# The host's file may be a symbolic link; the container gets a file.
		rm -f "$CT_ROOT/etc/resolv.conf"
		cp "$resolv_conf" "$CT_ROOT/etc/resolv.conf" || return 1
	fi
	ct_prepare_systemd || return 1
	ct_create_users || return 1
	ct_write_config || return 1

	# Each container gets its own cgroup in both named hierarchies, or
	# parallel containers collide. Only the nspawn process moves there.
	mkdir -p "/sys/fs/cgroup/unified/ci-$CT_NAME" "/sys/fs/cgroup/systemd/ci-$CT_NAME" || return 1
	(
		echo "$BASHPID" >"/sys/fs/cgroup/unified/ci-$CT_NAME/cgroup.procs"
		echo "$BASHPID" >"/sys/fs/cgroup/systemd/ci-$CT_NAME/cgroup.procs"
		exec setsid systemd-nspawn -q -D "$CT_ROOT" -M "$CT_NAME" --register=no --keep-unit \
			--private-network --link-journal=no --console=read-only "${binds[@]}" "${nspawn_opts[@]}" -b
	) </dev/null >"$CT_LOG" 2>&1 &
	CT_NSPAWN_PID=$!

	# systemd in a container reaches its default target in about 0.3 s.
	# Allow 60 s for a loaded machine.
	for ((i = 0; i < 600; i++)); do
		if ! kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
			cat "$CT_LOG" >&2
			ct_log "systemd-nspawn exited during boot; its output is above"
			return 1
		fi
		# systemctl fails until systemd has made its private socket.
		CT_PID=$(ct_find_init) && [[ -S /proc/$CT_PID/root/run/systemd/private ]] && break
		sleep 0.1
	done
	if [[ -z $CT_PID || ! -S /proc/$CT_PID/root/run/systemd/private ]]; then
		cat "$CT_LOG" >&2
		ct_log "systemd did not start in container $CT_NAME within 60 s; its output is above"
		return 1
	fi

	state=$(timeout 60 nsenter -t "$CT_PID" -a -- systemctl is-system-running --wait 2>>"$CT_LOG")
	case $state in
	running | degraded) ;;
	*)
		cat "$CT_LOG" >&2
		ct_log "container $CT_NAME is '$state' after boot, expected running or degraded; its output is above"
		return 1
		;;
	esac
	# nspawn copies /dev/net/tun with the host's mode, which is 0600 on a host without udev.
	# udev's default rules make it 0666, so QEMU, running as bangerd, can attach to the taps
	# that banger-helper creates for bangerd. Creating a tap, or attaching to one that another
	# user owns, still needs CAP_NET_ADMIN.
	nsenter -t "$CT_PID" -a -- chmod 0666 /dev/net/tun || {
		ct_log "failed to make /dev/net/tun usable in container $CT_NAME"
		return 1
	}
	ct_log "booted $CT_NAME (nspawn PID $CT_NSPAWN_PID, init PID $CT_PID, root $CT_ROOT, state $state)"
}

ct_run() {
	local props=() stdin=/dev/null
	while (($#)); do
		case $1 in
		--user)
			props+=(-p "User=$2")
			shift 2
			;;
		--setenv)
			props+=("--setenv=$2")
			shift 2
			;;
		--stdin)
			stdin=/dev/stdin
			shift
			;;
		--)
			shift
			break
			;;
		*)
			ct_log "unknown ct_run option '$1'; put the command after --"
			return 2
			;;
		esac
	done
	[[ -n $CT_PID ]] || {
		ct_log "no container is running; call ct_boot first"
		return 2
	}
	# systemd-run resolves CMD with the caller's PATH, so set it here too.
	nsenter -t "$CT_PID" -a -- env PATH="$CT_PATH" systemd-run -q --wait --pipe --collect \
		--service-type=exec --setenv=PATH="$CT_PATH" "${props[@]}" -- "$@" <"$stdin"
}

# Send SIGTERM, then SIGKILL after a grace period, to every process left in
# the container's cgroup. All of them descend from the nspawn started here.
ct_kill_cgroup() {
	local procs=/sys/fs/cgroup/systemd/ci-$CT_NAME pid i signal
	[[ -d $procs ]] || return 0
	for signal in TERM KILL; do
		find "$procs" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
			kill "-$signal" "$pid" 2>/dev/null
		done
		for ((i = 0; i < 50; i++)); do
			[[ -z $(find "$procs" -name cgroup.procs -exec cat {} + 2>/dev/null) ]] && return 0
			sleep 0.1
		done
	done
}

ct_remove_cgroups() {
	local hierarchy dir
	for hierarchy in unified systemd; do
		dir=/sys/fs/cgroup/$hierarchy/ci-$CT_NAME
		[[ -d $dir ]] || continue
		# Children first: systemd inside made its own cgroups below ours.
		find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
		[[ -d $dir ]] && ct_log "could not remove cgroup $dir; processes are still in it"
	done
}

ct_unmount() {
	local target
	# Unmount the deepest mount points first.
	awk -v prefix="$CT_STATE/" 'index($5, prefix) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r target; do
			umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null ||
				ct_log "could not unmount $target"
		done
}

ct_stop() {
	local i
	[[ -n $CT_STATE ]] || return 0

	if [[ -n $CT_NSPAWN_PID ]] && kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
		# SIGTERM makes nspawn power the container off in an orderly way,
		# which takes 1 to 2 s. Allow 30 s.
		kill -TERM "$CT_NSPAWN_PID" 2>/dev/null
		for ((i = 0; i < 300; i++)); do
			kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
			ct_log "systemd-nspawn (PID $CT_NSPAWN_PID) did not exit within 30 s of SIGTERM; killing it"
			kill -KILL "$CT_NSPAWN_PID" 2>/dev/null
		fi
		wait "$CT_NSPAWN_PID" 2>/dev/null
	fi
	[[ -n $CT_NAME ]] && ct_kill_cgroup
	[[ -n $CT_NAME ]] && ct_remove_cgroups
	ct_unmount
	if [[ -z $(awk -v prefix="$CT_STATE/" 'index($5, prefix) == 1' /proc/self/mountinfo) ]]; then
		rm -rf "$CT_STATE"
	else
		ct_log "left $CT_STATE in place because something is still mounted below it"
	fi
	ct_log "stopped $CT_NAME"
	CT_NAME='' CT_STATE='' CT_ROOT='' CT_NSPAWN_PID='' CT_PID=''
}

ct_install_traps() {
	trap 'ct_stop' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}
