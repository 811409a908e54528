#!/bin/bash
# End-to-end scenario: pull an image from a loopback registry, import a
# kernel, boot a VM under QEMU (TCG) and drive it with bangerctl, all inside
# a throwaway systemd container with real D-Bus, polkit and bangerd.
#
# Usage: test-skeleton.sh [BUILDDIR]
#
# BUILDDIR must be a finished meson build, which is installed into the
# container. It defaults to $BANGER_BUILDDIR, else to build-ci-release in the
# source tree (the release build of scripts/test.sh). The kernel comes from
# fetch-kernel.sh, which needs the Debian mirror on its first run. Prints one
# line per check and a final "N passed, N failed" line, and exits non-zero if
# any check failed. Must run as root.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srcdir=$(dirname "$here")
builddir=$(cd "${1:-${BANGER_BUILDDIR:-$srcdir/build-ci-release}}" 2>/dev/null && pwd) || {
	echo "test-skeleton: build directory ${1:-${BANGER_BUILDDIR:-$srcdir/build-ci-release}} not found; run meson setup and ninja first" >&2
	exit 2
}

# shellcheck source=integration/lib-container.sh
source "$here/lib-container.sh"
# shellcheck source=integration/lib-checks.sh
source "$here/lib-checks.sh"

# Must match TEST_IMAGE_LINE in build-test-image.sh.
TEST_IMAGE_LINE="banger test image, layer 2"
REGISTRY=127.0.0.1:5000
IMAGE=$REGISTRY/busybox:latest
KERNEL_NAME=cloud
MOUNTS=/srv/banger-test

checks_init skeleton

bctl() {
	run_as alice bangerctl "$@"
}

# Print what a failed command may leave behind: every path under
# /var/lib/banger and /run/banger, the banger VM scopes, the QEMU processes
# and the names of the other processes of user bangerd. bangerd itself is
# left out because it may exit when idle between two snapshots.
snapshot() {
	run_as "" sh -c '
		find /var/lib/banger /run/banger 2>/dev/null | sort
		echo "-- scopes"
		systemctl list-units --all --plain --no-legend "banger-vm-*" | cut -d" " -f1
		echo "-- processes"
		pgrep -x qemu-system-x86 || true
		ps -u bangerd -o comm= | grep -vx bangerd | sort || true'
	echo "$OUT"
}

# Run a command that must fail with an error naming VALUE, and check that it
# left no file, scope or process behind.
expect_clean_error() {
	local name=$1 value=$2
	shift 2
	local before after
	before=$(snapshot)
	expect_error "$name reports '$value'" "$value" alice "$@"
	local rc=$RC
	after=$(snapshot)
	if ((rc == 127)); then
		fail "$name leaves nothing behind" "not checked, the command was not found"
	elif [[ $before == "$after" ]]; then
		pass "$name leaves nothing behind"
	else
		fail "$name leaves nothing behind" \
			"new state: $(diff <(echo "$before") <(echo "$after") | grep '^[<>]' | tr '\n' ' ')"
	fi
}

# Print the PIDs of the QEMU processes in the container, one per line.
qemu_pids() {
	run_as "" pgrep -x qemu-system-x86
	echo "$OUT"
}

vm_state() {
	bctl vm list --json
	jq -r --arg name "$1" '.[] | select(.name == $name) | .state' <<<"$OUT" 2>/dev/null
}

dump_diagnostics() {
	echo "--- journal of bangerd"
	ct_run -- journalctl -b --no-pager -o short-monotonic -u bangerd.service -u 'banger-vm-*' | tail -n 200
	echo "--- console log of vm1"
	ct_run --user alice -- bangerctl vm console-log vm1 | tail -n 100
	echo "--- console logs under /var/lib/banger and /run/banger"
	# shellcheck disable=SC2016 # expanded by the shell in the container
	ct_run -- sh -c 'for f in $(find /var/lib/banger /run/banger -name "*console*" -type f 2>/dev/null); do
		echo "== $f"; tail -n 60 "$f"; done'
	echo "--- container log"
	tail -n 50 "$CT_LOG"
}

# Prepare the inputs on the host: the kernel package and the image layout.
kernel_deb=$("$here/fetch-kernel.sh" "$here/cache/kernel") || {
	echo "test-skeleton: fetch-kernel.sh failed" >&2
	exit 2
}
"$here/build-test-image.sh" "$work/image" >/dev/null || {
	echo "test-skeleton: build-test-image.sh failed" >&2
	exit 2
}

ct_boot "skel-$$" "$builddir" \
	--bind-ro "$here/cache/kernel:$MOUNTS/kernel" \
	--bind-ro "$work/image:$MOUNTS/image" \
	--bind-ro "$here:$MOUNTS/integration" || {
	fail "container boots"
	echo "$passed passed, $failed failed"
	exit 1
}
pass "container boots"
kernel_path=$MOUNTS/kernel/$(basename "$kernel_deb")

# Installation: the sysusers.d file, D-Bus activation and polkit rules.
expect_ok "sysusers.d creates user bangerd" "" getent passwd bangerd
expect_ok "sysusers.d creates group banger" "" getent group banger
expect_output "bangerd.service is installed" loaded "" systemctl show -p LoadState --value bangerd.service
expect_ok "org.banger1 is activatable" "" sh -c \
	'busctl --system list --activatable --no-legend | grep -q "^org\.banger1 "'
# Introspection carries argument names, so busctl and D-Bus browsers show them.
run_as alice busctl --system --xml-interface introspect org.banger1 /org/banger1
if [[ $OUT == *'<method name="CreateVM">'* && $OUT == *'name="name"'* && $OUT == *'name="spec"'* ]]; then
	pass "introspection names CreateVM's arguments"
else
	fail "introspection names CreateVM's arguments" "$(last_error_line)"
fi

# The registry runs as a transient service, so it outlives ct_run.
expect_ok "registry starts" "" systemd-run --unit=test-registry --service-type=exec \
	"$MOUNTS/integration/registry.sh" serve /var/tmp/test-registry 5000
expect_ok "registry responds" "" sh -c \
	"for i in \$(seq 100); do curl -fsS -o /dev/null http://$REGISTRY/v2/ && exit 0; sleep 0.1; done; exit 1"
expect_ok "test image pushes" "" "$MOUNTS/integration/push-test-image.sh" "$MOUNTS/image" "$IMAGE"
expect_ok "registry serves the manifest" "" curl -fsS -o /dev/null \
	-H "Accept: application/vnd.oci.image.manifest.v1+json" "http://$REGISTRY/v2/busybox/manifests/latest"

# The main path, as alice (group banger).
expect_ok "image pull" alice bangerctl image pull "$IMAGE"
bctl image list
if [[ $OUT == *busybox* ]]; then pass "image list shows busybox"; else fail "image list shows busybox" "$OUT"; fi
expect_ok "kernel import" alice bangerctl kernel import "$kernel_path" --name "$KERNEL_NAME"
bctl kernel list
if [[ $OUT == *"$KERNEL_NAME"* ]]; then pass "kernel list shows $KERNEL_NAME"; else fail "kernel list shows $KERNEL_NAME" "$OUT"; fi
expect_ok "vm create vm1" alice bangerctl vm create --image "$IMAGE" --kernel "$KERNEL_NAME" vm1
vm1_created=$((RC == 0))

expect_output "exec reads the hostname" vm1 alice bangerctl vm exec vm1 -- cat /etc/hostname
expect_output "exec reads layer 2" "$TEST_IMAGE_LINE" alice bangerctl vm exec vm1 -- cat /etc/banger-test
expect_output "whiteout removes /etc/delete-me" absent alice \
	bangerctl vm exec vm1 -- sh -c 'if [ -e /etc/delete-me ]; then echo present; else echo absent; fi'
expect_output "opaque whiteout hides layer 1" new alice bangerctl vm exec vm1 -- ls /srv/opaque
run_as alice bangerctl vm exec vm1 -- sh -c 'exit 3'
if ((RC == 3)); then pass "exec returns the exit status"; else fail "exec returns the exit status" "exit $RC, expected 3"; fi

# Exec streams bangerctl's own stdin and stdout, with no size limit.
run_as alice sh -c 'head -c 3000000 /dev/zero | bangerctl vm exec vm1 -- wc -c'
if ((RC == 0)) && [[ $OUT =~ ^[[:space:]]*3000000$ ]]; then
	pass "exec streams 3 MB of stdin"
else
	fail "exec streams 3 MB of stdin" "$(last_error_line)"
fi
expect_output "exec runs as the user given" 1000 alice bangerctl vm exec -u 1000:1000 vm1 -- id -u
expect_error "exec rejects a user the guest lacks" "does not exist" alice \
	bangerctl vm exec -u no-such-user vm1 -- id
# On a terminal, -t gives the command one of the same size and passes resizes on.
run_as alice python3 "$MOUNTS/integration/pty-run.py" --rows 30 --cols 100 \
	--expect '# ' --send 'stty size\r' --expect '30 100' \
	--resize 50x132 --sleep 1 --send 'stty size\r' --expect '50 132' --send 'exit 7\r' \
	-- bangerctl vm exec -t vm1 -- sh
if ((RC == 0)) && [[ $OUT == *"exit 7"* ]]; then
	pass "exec -t follows the terminal size"
else
	fail "exec -t follows the terminal size" "$(tail -n 3 <<<"$OUT" | tr '\r\n' '  ')"
fi

# The agent lists what listens in the guest.
run_as alice bangerctl vm exec vm1 -- sh -c 'nc -l -p 8081 </dev/null >/dev/null 2>&1 & sleep 1'
run_as alice bangerctl vm ports --json vm1
if ((RC == 0)) && jq -e '.[] | select(.proto == "tcp" and .port == 8081 and .process == "nc")' \
	<<<"$OUT" >/dev/null 2>&1; then
	pass "ports lists a listener"
else
	fail "ports lists a listener" "$(last_error_line)"
fi

# The serial console takes input, and a second client is turned away while one is attached.
run_as alice python3 "$MOUNTS/integration/pty-run.py" \
	--expect 'Ctrl-]' --send '\r' --expect '# ' --send 'echo con""sole-ok\r' --expect 'console-ok' \
	--send '\x1dq' -- bangerctl vm console vm1
if ((RC == 0)) && [[ $OUT == *"exit 0"* ]]; then
	pass "console attaches, echoes and detaches"
else
	fail "console attaches, echoes and detaches" "$(tail -n 3 <<<"$OUT" | tr '\r\n' '  ')"
fi
ct_run --user alice -- python3 "$MOUNTS/integration/pty-run.py" --expect 'Ctrl-]' --sleep 4 \
	--send '\x1dq' -- bangerctl vm console vm1 >"$work/console-holder" 2>&1 &
holder=$!
sleep 2
expect_error "a second console client gets Busy" "in use by another client" alice \
	bangerctl vm console vm1
if wait "$holder"; then
	pass "the first console client detaches"
else
	fail "the first console client detaches" "$(tail -n 2 "$work/console-holder" | tr '\r\n' '  ')"
fi

# The console also reaches the journal under the VM's scope, copied by banger-console-log.
run_as "" sh -c 'journalctl --sync; journalctl -u banger-vm-vm1.scope -o cat --no-pager'
if [[ $OUT == *"banger-init: ready"* && $OUT == *console-ok* ]]; then
	pass "journal shows the console under the scope"
else
	fail "journal shows the console under the scope" "$(tail -n 2 <<<"$OUT")"
fi

# The scope contains the VM's QEMU process.
expect_output "scope is active" active "" systemctl is-active banger-vm-vm1.scope
run_as "" systemctl show -p ControlGroup --value banger-vm-vm1.scope
cgroup=$OUT
qemu_before=$(qemu_pids)
if [[ -z $cgroup ]]; then
	fail "scope has a control group" "ControlGroup is empty"
elif [[ $(wc -l <<<"$qemu_before") -ne 1 || -z $qemu_before ]]; then
	fail "scope contains the QEMU process" "expected one QEMU process, found: ${qemu_before:-none}"
else
	run_as "" sh -c "cat /sys/fs/cgroup/systemd$cgroup/cgroup.procs 2>/dev/null ||
		cat /sys/fs/cgroup/unified$cgroup/cgroup.procs 2>/dev/null || cat /sys/fs/cgroup$cgroup/cgroup.procs"
	if grep -qx "$qemu_before" <<<"$OUT"; then
		pass "scope contains the QEMU process"
	else
		fail "scope contains the QEMU process" "QEMU PID $qemu_before not in $cgroup: $(tr '\n' ' ' <<<"$OUT")"
	fi
	procs=$OUT
	run_as "" sh -c "for p in $(tr '\n' ' ' <<<"$procs"); do cat /proc/\$p/comm; done"
	if grep -qx banger-console- <<<"$OUT"; then
		pass "scope contains banger-console-log"
	else
		fail "scope contains banger-console-log" "processes: $(tr '\n' ' ' <<<"$OUT")"
	fi
fi
# This cgroup setup does not enforce the limits, so check that they are set.
run_as "" systemctl show -p Slice --value banger-vm-vm1.scope
if [[ $OUT == banger.slice ]]; then pass "scope is in banger.slice"; else fail "scope is in banger.slice" "Slice is '$OUT'"; fi
for limit in MemoryMax TasksMax; do
	run_as "" systemctl show -p "$limit" --value banger-vm-vm1.scope
	if [[ $OUT =~ ^[0-9]+$ ]]; then
		pass "scope sets $limit"
	else
		fail "scope sets $limit" "$limit is '$OUT'"
	fi
done
state=$(vm_state vm1)
if [[ $state == running ]]; then pass "vm list shows vm1 running"; else fail "vm list shows vm1 running" "state '$state'"; fi

# A restart of bangerd adopts the running VM instead of restarting it.
expect_ok "bangerd restarts" "" systemctl restart bangerd.service
expect_output "exec works after a restart" vm1 alice bangerctl vm exec vm1 -- cat /etc/hostname
qemu_after=$(qemu_pids)
if [[ -n $qemu_before && $qemu_after == "$qemu_before" ]]; then
	pass "restart keeps the QEMU process"
else
	fail "restart keeps the QEMU process" "before '$qemu_before', after '$qemu_after'"
fi

# With IdleTimeoutSec=5, bangerd exits when left alone. Poll for up to 120 s
# so a slow machine does not fail the check.
# systemctl reports "inactive" for a unit that does not exist, too.
idle=
run_as "" systemctl show -p LoadState --value bangerd.service
if [[ $OUT == loaded ]]; then
	for ((i = 0; i < 120; i++)); do
		run_as "" systemctl is-active bangerd.service
		if [[ $OUT == inactive ]]; then
			idle=yes
			break
		fi
		sleep 1
	done
fi
if [[ -n $idle ]]; then pass "bangerd exits when idle"; else fail "bangerd exits when idle" "'$OUT' after 120 s"; fi
state=$(vm_state vm1)
if [[ $state == running ]]; then pass "activation finds vm1 running"; else fail "activation finds vm1 running" "state '$state'"; fi
expect_output "bangerd is active again" active "" systemctl is-active bangerd.service
expect_output "exec works after activation" vm1 alice bangerctl vm exec vm1 -- cat /etc/hostname

# bangerd may be killed at any instant: the next call starts it again and
# it adopts the running VM instead of restarting it.
qemu_before=$(qemu_pids)
expect_ok "bangerd is killed with SIGKILL" "" systemctl kill --signal=KILL bangerd.service
state=$(vm_state vm1)
if [[ $state == running ]]; then pass "vm1 is running after SIGKILL"; else fail "vm1 is running after SIGKILL" "state '$state'"; fi
expect_output "exec works after SIGKILL" vm1 alice bangerctl vm exec vm1 -- cat /etc/hostname
qemu_after=$(qemu_pids)
if [[ -n $qemu_before && $qemu_after == "$qemu_before" ]]; then
	pass "SIGKILL keeps the QEMU process"
else
	fail "SIGKILL keeps the QEMU process" "before '$qemu_before', after '$qemu_after'"
fi

# The console log contains the guest's serial console, where banger-init
# reports its progress.
run_as alice bangerctl vm console-log vm1
if ((RC == 0)) && [[ $OUT == *banger-init* ]]; then
	pass "console log shows banger-init"
else
	fail "console log shows banger-init" "$(last_error_line)"
fi

# bob is not in group banger, so polkit denies him.
run_as bob bangerctl vm create --image "$IMAGE" --kernel "$KERNEL_NAME" bobvm
if ((RC != 0)) && [[ ${ERR,,} =~ (not\ authorized|access\ denied|accessdenied|not\ allowed|permission) ]]; then
	pass "bob's vm create is denied"
	echo "     $(grep -m 1 -iE 'authoriz|denied|allowed|permission' <<<"$ERR")"
else
	fail "bob's vm create is denied" "$(last_error_line)"
fi
if ((RC != 127)); then
	state=$(vm_state bobvm)
	expect_ok "bob's denied create leaves no VM record" "" test ! -e /var/lib/banger/vms/bobvm
	if [[ -z $state ]]; then pass "bob's denied create leaves no VM"; else fail "bob's denied create leaves no VM" "bobvm is '$state'"; fi
fi

# carol is in group banger, which grants actions on one's own VMs only, so
# she may not stop alice's vm1, and the denial names the owner and the
# polkit action she lacks.
expect_error "carol's vm stop of vm1 names the owner" "belongs to another user" carol \
	bangerctl vm stop vm1
if [[ ${ERR,,} == *org.banger1.vm.manage-any* && ${ERR,,} == *alice* ]]; then
	pass "carol's denial names alice and manage-any"
else
	fail "carol's denial names alice and manage-any" "$(last_error_line)"
fi
expect_output "vm1 survives carol's vm stop" vm1 alice bangerctl vm exec vm1 -- cat /etc/hostname

# Bad inputs fail with a message that names the value and leave nothing.
expect_clean_error "pull of an unknown repository" "$REGISTRY/no-such-image" \
	bangerctl image pull "$REGISTRY/no-such-image:latest"
expect_clean_error "pull from a registry that is down" 127.0.0.1:5999 \
	bangerctl image pull 127.0.0.1:5999/busybox:latest
expect_clean_error "vm create with an unknown image" 127.0.0.1:5000/never-pulled \
	bangerctl vm create --image 127.0.0.1:5000/never-pulled:latest --kernel "$KERNEL_NAME" vm2
run_as "" sh -c 'echo "this is not a kernel" >/var/tmp/not-a-kernel && chmod 644 /var/tmp/not-a-kernel'
expect_clean_error "import of a file that is not a kernel" not-a-kernel \
	bangerctl kernel import /var/tmp/not-a-kernel --name bogus
expect_clean_error "vm create with an invalid name" 'Bad_Name!' \
	bangerctl vm create --image "$IMAGE" --kernel "$KERNEL_NAME" 'Bad_Name!'
expect_clean_error "vm create with more memory than the host" "MiB of physical memory" \
	bangerctl vm create --image "$IMAGE" --kernel "$KERNEL_NAME" --memory 4000000000 vm2
expect_clean_error "vm create with too many vcpus" "Invalid vcpus 255" \
	bangerctl vm create --image "$IMAGE" --kernel "$KERNEL_NAME" --vcpus 255 vm2
expect_clean_error "vm create with a duplicate name" vm1 \
	bangerctl vm create --image "$IMAGE" --kernel "$KERNEL_NAME" vm1
expect_output "vm1 survives the duplicate create" vm1 alice bangerctl vm exec vm1 -- cat /etc/hostname

# Images without a registry: a rootfs tarball imports under the given name,
# an image that a VM uses cannot be removed, and failed imports leave
# nothing behind.
run_as "" sh -c 'rm -rf /var/tmp/import && mkdir -p /var/tmp/import/root/etc /var/tmp/import/evil/sub &&
	echo ID=imported >/var/tmp/import/root/etc/os-release &&
	tar -C /var/tmp/import/root -cJf /var/tmp/import/rootfs.tar.xz . &&
	echo owned >/var/tmp/import/evil/escape &&
	cd /var/tmp/import/evil/sub && tar -P -cf /var/tmp/import/escape.tar ../escape &&
	chmod -R a+rX /var/tmp/import'
expect_ok "image import of a rootfs tarball" alice \
	bangerctl image import /var/tmp/import/rootfs.tar.xz --name imported:1
bctl image list
if [[ $OUT == *docker.io/library/imported:1* ]]; then pass "image list shows the imported image"; else fail "image list shows the imported image" "$OUT"; fi
expect_clean_error "image import of a rootfs tarball without a name" --name \
	bangerctl image import /var/tmp/import/rootfs.tar.xz
expect_clean_error "image import of an entry leaving the root" ../escape \
	bangerctl image import /var/tmp/import/escape.tar --name escape:1
expect_clean_error "image rm of an image that vm1 uses" "'vm1'" bangerctl image rm "$IMAGE"
expect_ok "image rm of the imported image" alice bangerctl image rm imported:1

# Stop and delete. The checks for leftovers mean something only if vm1 was
# ever made.
if ((!vm1_created)); then
	fail "vm stop and rm" "not checked, vm create vm1 failed"
	dump_diagnostics
	echo "$passed passed, $failed failed"
	exit 1
fi
expect_ok "vm stop" alice bangerctl vm stop vm1
state=$(vm_state vm1)
if [[ $state == stopped ]]; then pass "vm list shows vm1 stopped"; else fail "vm list shows vm1 stopped" "state '$state'"; fi
run_as "" pgrep -x qemu-system-x86
if [[ -z $OUT ]]; then pass "stop ends the QEMU process"; else fail "stop ends the QEMU process" "PIDs $OUT"; fi
expect_ok "vm start after stop" alice bangerctl vm start vm1
expect_output "exec works after start" vm1 alice bangerctl vm exec vm1 -- cat /etc/hostname
expect_ok "vm stop again" alice bangerctl vm stop vm1
expect_ok "vm rm" alice bangerctl vm rm vm1
state=$(vm_state vm1)
if [[ -z $state ]]; then pass "vm list no longer shows vm1"; else fail "vm list no longer shows vm1" "state '$state'"; fi
run_as "" systemctl list-units --all --plain --no-legend banger-vm-vm1.scope
if [[ -z $OUT ]]; then pass "rm leaves no scope"; else fail "rm leaves no scope" "$OUT"; fi
run_as "" pgrep -x qemu-system-x86
if [[ -z $OUT ]]; then pass "rm leaves no QEMU process"; else fail "rm leaves no QEMU process" "PIDs $OUT"; fi
run_as "" sh -c 'find /var/lib/banger/vms -mindepth 1 -maxdepth 1 2>/dev/null'
if [[ -z $OUT ]]; then pass "rm leaves no files in /var/lib/banger/vms"; else fail "rm leaves no files in /var/lib/banger/vms" "$(tr '\n' ' ' <<<"$OUT")"; fi
run_as "" sh -c 'find /run/banger -type s 2>/dev/null'
if [[ -z $OUT ]]; then pass "rm leaves no sockets in /run/banger"; else fail "rm leaves no sockets in /run/banger" "$(tr '\n' ' ' <<<"$OUT")"; fi

# A second create of a name whose create is in flight joins that job only
# when the caller and the request are the same. Another user, or other
# settings, get an error instead of a silent success.
ct_run --user alice -- timeout 300 bangerctl vm create --image "$IMAGE" --kernel "$KERNEL_NAME" \
	dup1 >"$work/dup1.out" 2>&1 &
dup_pid=$!
for _ in $(seq 240); do
	run_as "" systemctl list-units --all --plain --no-legend banger-vm-dup1.scope
	[[ -n $OUT ]] && break
	sleep 0.5
done
expect_error "create of dup1 in flight with other memory fails" "in progress" alice \
	bangerctl vm create --image "$IMAGE" --kernel "$KERNEL_NAME" --memory 300 dup1
expect_error "carol's create of alice's dup1 in flight fails" "in progress" carol \
	bangerctl vm create --image "$IMAGE" --kernel "$KERNEL_NAME" dup1
if wait "$dup_pid"; then pass "first create of dup1 succeeds"; else fail "first create of dup1 succeeds" "$(tail -n 1 "$work/dup1.out")"; fi
bctl vm list --json
owner=$(jq -r '.[] | select(.name == "dup1") | .owner' <<<"$OUT" 2>/dev/null)
run_as "" id -u alice
if [[ -n $owner && $owner == "$OUT" ]]; then pass "dup1 belongs to alice"; else fail "dup1 belongs to alice" "owner '$owner'"; fi
expect_ok "vm rm dup1" alice bangerctl vm rm dup1

# bangerd killed by SIGKILL while a create boots the VM: the QEMU process
# and its scope outlive bangerd. The next call must stop them, and the name
# must be usable again.
ct_run --user alice -- timeout 300 bangerctl vm create --image "$IMAGE" --kernel "$KERNEL_NAME" \
	killme >"$work/killme.out" 2>&1 &
create_pid=$!
scope_seen=
for _ in $(seq 240); do
	run_as "" systemctl list-units --all --plain --no-legend banger-vm-killme.scope
	if [[ -n $OUT ]]; then
		scope_seen=1
		break
	fi
	sleep 0.5
done
run_as "" systemctl show -p MainPID --value bangerd.service
bangerd_pid=$OUT
if [[ -n $scope_seen && -n $bangerd_pid && $bangerd_pid != 0 ]]; then
	expect_ok "bangerd is killed during vm create" "" kill -9 "$bangerd_pid"
else
	fail "bangerd is killed during vm create" "scope seen '$scope_seen', bangerd PID '$bangerd_pid'"
fi
wait "$create_pid"
bctl vm list
run_as "" systemctl list-units --all --plain --no-legend banger-vm-killme.scope
if [[ -z $OUT ]]; then pass "restart stops the scope of killme"; else fail "restart stops the scope of killme" "$OUT"; fi
run_as "" pgrep -x qemu-system-x86
if [[ -z $OUT ]]; then pass "restart ends the QEMU process of killme"; else fail "restart ends the QEMU process of killme" "PIDs $OUT"; fi
if [[ -n $(vm_state killme) ]]; then
	expect_ok "vm rm killme after the interrupted create" alice bangerctl vm rm killme
fi
expect_ok "vm create killme again" alice bangerctl vm create --image "$IMAGE" --kernel "$KERNEL_NAME" killme
expect_ok "vm rm killme" alice bangerctl vm rm killme
run_as "" pgrep -x qemu-system-x86
if [[ -z $OUT ]]; then pass "vm rm killme leaves no QEMU process"; else fail "vm rm killme leaves no QEMU process" "PIDs $OUT"; fi

# A build with -Db_sanitize=address,undefined reports memory errors,
# undefined behaviour and leaks on stderr, which the journal keeps.
run_as "" journalctl -b --no-pager -o cat -u bangerd.service
reports=$(grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' <<<"$OUT")
if [[ -z $reports ]]; then
	pass "bangerd's journal has no sanitizer reports"
else
	fail "bangerd's journal has no sanitizer reports" "$(head -n 3 <<<"$reports" | tr '\n' ' ')"
fi

if ((failed > 0)); then
	dump_diagnostics
fi
echo "$passed passed, $failed failed"
((failed == 0))
