#!/bin/bash
# End-to-end scenario for getting into a guest. It checks SSH by name against
# a host key pinned before first boot, and a tampered host key. It checks
# exec with its streams, exit status, signals and a terminal, the console, and
# a guest's listening ports. It checks the workspace copy and sync in a guest
# without sshd, and authorized keys read while their owner rotates them
# during parallel creates. Everything runs in one throwaway systemd container
# with VMs under QEMU (TCG).
#
# Usage: test-guest-access.sh [BUILDDIR]
#
# BUILDDIR must be a finished meson build, which is installed into the
# container. It defaults to $BANGER_BUILDDIR, else to build-ci-release in the
# source tree. The kernel and the Debian image with openssh-server come from
# the Debian mirror on the first run and are kept in integration/cache.
# Prints one line per check and a final "N passed, N failed" line, and exits
# non-zero if any check failed. Must run as root.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srcdir=$(dirname "$here")
builddir=$(cd "${1:-${BANGER_BUILDDIR:-$srcdir/build-ci-release}}" 2>/dev/null && pwd) || {
	echo "test-guest-access: build directory ${1:-${BANGER_BUILDDIR:-$srcdir/build-ci-release}} not found; run meson setup and ninja first" >&2
	exit 2
}

# shellcheck source=integration/lib-container.sh
source "$here/lib-container.sh"
# shellcheck source=integration/lib-checks.sh
source "$here/lib-checks.sh"

REGISTRY=127.0.0.1:5000
SSH_IMAGE=$REGISTRY/debian-ssh:latest
BUSYBOX_IMAGE=$REGISTRY/busybox:latest
KERNEL_NAME=cloud
MOUNTS=/srv/banger-test
SCRIPTS=$MOUNTS/work/scripts
KNOWN_HOSTS=/var/lib/banger/ssh/known_hosts
SSH_CONFIG=/etc/ssh/ssh_config.d/banger.conf
# The VM with sshd that most checks use, the busybox VM with a workspace, and
# the VMs created in parallel while alice rotates her key.
VM=ssh1
WS_VM=ws1
ROTATION_VMS=(rot1 rot2 rot3 rot4)
# 11 MiB, more than the 10 MB that exec must stream.
BIG_BYTES=11534336
LISTEN_PORT=7777
# Commands run by ct_run start in /, so paths in alice's home are absolute.
ALICE_HOME=/home/alice
# Words that a polkit denial message contains, in lower case.
DENIED='(not authorized|access denied|accessdenied|not allowed|permission)'

checks_init guest-access

# Write the shell script NAME.sh from stdin into the scratch directory, which
# is mounted in the container so that the script is $SCRIPTS/NAME.sh. ct_run hands its command to systemd, which
# expands $NAME and turns $$ into $, so scripts that use shell variables run
# from a file.
write_script() {
	mkdir -p "$work/scripts"
	cat >"$work/scripts/$1.sh"
	chmod -R a+rX "$work/scripts"
}

# Run the script NAME.sh in the container as USER ("" for root) with ARGS.
run_script() {
	local user=$1 name=$2
	shift 2
	run_as "$user" sh "$SCRIPTS/$name.sh" "$@"
}

# Run CMD in VM as alice, who owns every VM here.
guest() {
	local vm=$1
	shift
	run_as alice bangerctl vm exec "$vm" -- "$@"
}

# Print a string property of an org.banger1.VM object, or nothing.
vm_property() {
	run_as "" busctl --system get-property org.banger1 "/org/banger1/vm/$1" org.banger1.VM "$2"
	sed -n 's/^s "\(.*\)"$/\1/p' <<<"$OUT"
}

# Print "PROTO ADDRESS PROCESS" for each socket listening on PORT in the
# JSON array of vm ports in OUT.
listener() {
	jq -r --argjson port "$1" '.[] | select(.port == $port) | "\(.proto) \(.address) \(.process)"' \
		<<<"$OUT" 2>/dev/null
}

# Pass when VM is neither listed, nor stored, nor pinned in known_hosts.
expect_no_trace() {
	local name=$1 vm=$2
	run_as "" sh -c "bangerctl vm list || exit 1; ls /var/lib/banger/vms 2>/dev/null; cat $KNOWN_HOSTS 2>/dev/null; exit 0"
	if ((RC == 0)) && ! grep -qw -- "$vm" <<<"$OUT"; then
		pass "$name"
	else
		fail "$name" "exit $RC: $(grep -w -- "$vm" <<<"$OUT$ERR" | head -n 3 | tr '\n' '|')"
	fi
}

# Pass when the last command exited 0 and printed NEEDLE on stdout.
expect_out_has() {
	local name=$1 needle=$2
	if ((RC == 0)) && [[ $OUT == *"$needle"* ]]; then
		pass "$name"
	else
		fail "$name" "exit $RC, expected '$needle' in: $(tr '\n' ' ' <<<"$OUT $ERR" | cut -c1-300)"
	fi
}

# Pass when the last command failed and its stderr matches PATTERN, an
# extended regular expression compared case-insensitively.
expect_err_match() {
	local name=$1 pattern=$2
	if ((RC != 0)) && grep -qiE "$pattern" <<<"$ERR"; then
		pass "$name"
	else
		fail "$name" "exit $RC, expected stderr matching '$pattern': $(tail -n 2 <<<"$ERR" | tr '\n' ' ')"
	fi
}

# Compare two values for the check NAME.
expect_equal() {
	local name=$1 got=$2 expected=$3
	if [[ $got == "$expected" ]]; then
		pass "$name"
	else
		fail "$name" "got '$got', expected '$expected'"
	fi
}

# Like expect_equal, for two values that the scenario computed: an empty
# value fails, so two failed lookups never match.
expect_same() {
	if [[ -z $3 ]]; then
		fail "$1" "got '$2', expected a value that could not be computed"
	else
		expect_equal "$@"
	fi
}

dump_diagnostics() {
	echo "--- journal of bangerd, banger-helper and the VMs"
	ct_run -- journalctl -b --no-pager -o short-monotonic -u bangerd.service -u banger-helper.service \
		-u 'banger-vm-*' | tail -n 200
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

# Scripts run in the container. Each takes its inputs as arguments.

# Make an Ed25519 key pair for the calling user without a passphrase.
write_script make-key <<'EOF'
set -e
mkdir -p "$HOME/.ssh"
chmod 700 "$HOME/.ssh"
rm -f "$HOME/.ssh/id_ed25519" "$HOME/.ssh/id_ed25519.pub"
ssh-keygen -q -t ed25519 -N '' -C "$1" -f "$HOME/.ssh/id_ed25519"
EOF

# Pipe a line and then 5 MB into exec's stdin, and print what came back
# after the labels "line", "sent" and "received".
write_script exec-stdin <<'EOF'
echo "line $(echo hi | bangerctl vm exec "$1" -- cat)"
head -c 5000000 /dev/urandom >"$HOME/stdin.bin"
echo "sent $(sha256sum <"$HOME/stdin.bin" | cut -d' ' -f1)"
echo "received $(bangerctl vm exec "$1" -- sha256sum <"$HOME/stdin.bin" | cut -d' ' -f1)"
EOF

# Copy the guest's file PATH to the host through exec's stdout and print its
# size and SHA-256.
write_script exec-fetch <<'EOF'
set -e
bangerctl vm exec "$1" -- cat "$2" >"$HOME/fetched.bin"
stat -c %s "$HOME/fetched.bin"
sha256sum <"$HOME/fetched.bin" | cut -d' ' -f1
EOF

# Run a guest shell that kills itself with SIGKILL, and print exec's status.
write_script exec-signal <<'EOF'
bangerctl vm exec "$1" -- sh -c 'kill -9 $$'
echo "status $?"
EOF

# Run ARGS on a new terminal, as an interactive user would, and print what
# the terminal showed without carriage returns, then "status N" with ARGS's
# exit status. With --send TEXT BYTES, write BYTES (escapes as in Python)
# to the terminal once TEXT has appeared. Gives up after 60 s.
write_script on-terminal <<'EOF'
python3 - "$@" <<'PY'
import os, pty, select, sys, time

args = sys.argv[1:]
wait_for = send = None
if args[0] == "--send":
    wait_for, send = args[1].encode(), args[2].encode().decode("unicode_escape").encode("latin-1")
    args = args[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(args[0], args)
out = b""
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    if select.select([fd], [], [], 1)[0]:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    if send is not None and wait_for in out:
        os.write(fd, send)
        send = None
else:
    os.kill(pid, 9)
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
print("status %d" % os.waitstatus_to_exitcode(status))
PY
EOF

# Run the script NAME.sh from this directory in VM with sh -s, passing ARGS.
write_script guest-script <<'EOF'
vm=$1 name=$2
shift 2
exec bangerctl vm exec "$vm" -- sh -s "$@" <"$(dirname "$0")/$name.sh"
EOF

# In the guest (run with sh -s): start a TCP listener that outlives exec.
write_script guest-listen <<'EOF'
setsid python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen()
time.sleep(3600)' "$1" </dev/null >/dev/null 2>&1 &
for i in $(seq 50); do
	ss -Htln "sport = :$1" | grep -q . && exit 0
	sleep 0.1
done
echo "nothing listens on port $1 after 5 s" >&2
exit 1
EOF

# In the guest (run with sh -s): replace every host key file that sshd reads
# with a new key and make the listening sshd load it. Prints the new key's
# fingerprint.
write_script guest-tamper <<'EOF'
set -e
ssh-keygen -q -t ed25519 -N '' -C tampered -f /tmp/tampered
pid=$(pgrep -o -x sshd)
# The files that sshd serves: its -h options, else the HostKey lines of its
# configuration.
keys=$(tr '\0' '\n' <"/proc/$pid/cmdline" | sed -n '/^-h$/{n;p;}')
[ -n "$keys" ] || keys=$(sshd -T | sed -n 's/^hostkey //p')
for key in $keys; do
	cp /tmp/tampered "$key"
	cp /tmp/tampered.pub "$key.pub"
done
kill -HUP "$pid"
# sshd executes itself again on SIGHUP and then listens on port 22 again.
sleep 1
for i in $(seq 50); do
	ss -Htln 'sport = :22' | grep -q . && break
	sleep 0.1
done
ssh-keygen -lf /tmp/tampered.pub | cut -d' ' -f2
EOF

# Make the git working tree ~/DIR with a tracked, an untracked, an ignored
# and a nested untracked file.
write_script make-workspace <<'EOF'
set -e
dir=$HOME/$1
rm -rf "$dir"
mkdir -p "$dir/sub"
cd "$dir"
git init -q
git config user.email alice@example.org
git config user.name alice
printf 'tracked v1\n' >tracked.txt
printf '*.log\n' >.gitignore
git add tracked.txt .gitignore
git commit -qm 'Add the tracked file'
printf 'untracked\n' >untracked.txt
printf 'nested\n' >sub/nested.txt
printf 'ignored\n' >ignored.log
EOF

# Edit the tracked file of ~/DIR and delete its untracked file.
write_script edit-workspace <<'EOF'
set -e
printf 'tracked v2\n' >"$HOME/$1/tracked.txt"
rm "$HOME/$1/untracked.txt"
EOF

# Rotate the calling user's key pair every 0.2 s until the file STOP
# exists, and print the number of new pairs. Each pair is kept as ~/keys/N
# and ~/keys/N.pub, with the pair from before as number 0. The active pair
# is replaced by rename, so a reader sees a whole file.
write_script rotate-keys <<'EOF'
mkdir -p "$HOME/keys"
cp "$HOME/.ssh/id_ed25519" "$HOME/keys/0"
cp "$HOME/.ssh/id_ed25519.pub" "$HOME/keys/0.pub"
n=0
while [ ! -e "$1" ]; do
	n=$((n + 1))
	ssh-keygen -q -t ed25519 -N '' -C "rotated-$n" -f "$HOME/keys/$n" || exit 1
	cp "$HOME/keys/$n" "$HOME/.ssh/.id.tmp"
	cp "$HOME/keys/$n.pub" "$HOME/.ssh/.id.pub.tmp"
	mv "$HOME/.ssh/.id.tmp" "$HOME/.ssh/id_ed25519"
	mv "$HOME/.ssh/.id.pub.tmp" "$HOME/.ssh/id_ed25519.pub"
	sleep 0.2
done
echo "$n"
EOF

# Print the number N of the rotated key whose public key is the line on
# stdin, or nothing.
write_script which-key <<'EOF'
read -r key_type blob comment
grep -l -F " $blob" "$HOME"/keys/*.pub 2>/dev/null | head -n 1 | xargs -r basename | sed 's/\.pub$//'
EOF

# Inputs on the host: the kernel, both images and the registry's config.
kernel_deb=$("$here/fetch-kernel.sh" "$here/cache/kernel") || {
	echo "test-guest-access: fetch-kernel.sh failed" >&2
	exit 2
}
if ! "$here/build-ssh-image.sh" "$work/images/ssh" >/dev/null ||
	! "$here/build-test-image.sh" "$work/images/busybox" >/dev/null; then
	echo "test-guest-access: building the test images failed" >&2
	exit 2
fi
chmod -R a+rX "$work"

ct_boot "access-$$" "$builddir" \
	--bind-ro "$here/cache/kernel:$MOUNTS/kernel" \
	--bind-ro "$work:$MOUNTS/work" \
	--bind-ro "$here:$MOUNTS/integration" || {
	fail "container boots"
	echo "$passed passed, $failed failed"
	exit 1
}
pass "container boots"
kernel_path=$MOUNTS/kernel/$(basename "$kernel_deb")

expect_ok "registry starts" "" systemd-run --unit=test-registry --service-type=exec \
	"$MOUNTS/integration/registry.sh" serve /var/tmp/test-registry 5000
expect_ok "registry responds" "" sh -c \
	"for i in \$(seq 100); do curl -fsS -o /dev/null http://$REGISTRY/v2/ && exit 0; sleep 0.1; done; exit 1"
expect_ok "ssh image pushes" "" "$MOUNTS/integration/push-test-image.sh" "$MOUNTS/work/images/ssh" "$SSH_IMAGE"
expect_ok "busybox image pushes" "" "$MOUNTS/integration/push-test-image.sh" \
	"$MOUNTS/work/images/busybox" "$BUSYBOX_IMAGE"
expect_ok "ssh image pull" alice bangerctl image pull "$SSH_IMAGE"
expect_ok "busybox image pull" alice bangerctl image pull "$BUSYBOX_IMAGE"
expect_ok "kernel import" alice bangerctl kernel import "$kernel_path" --name "$KERNEL_NAME"

# alice's key pair, which vm create reads from ~/.ssh/*.pub by default.
expect_ok "alice makes a key" alice sh "$SCRIPTS/make-key.sh" alice-original
run_as alice cat "$ALICE_HOME/.ssh/id_ed25519.pub"
alice_key=$(cut -d' ' -f2 <<<"$OUT")
expect_ok "carol makes a key" carol sh "$SCRIPTS/make-key.sh" carol

# A VM from the image with sshd.
expect_ok "vm create $VM" alice bangerctl vm create --image "$SSH_IMAGE" --kernel "$KERNEL_NAME" "$VM"
expect_ok "guest has /usr/sbin/sshd" alice bangerctl vm exec "$VM" -- test -x /usr/sbin/sshd
vm_id=$(vm_property "$VM" Id)
fingerprint=$(vm_property "$VM" HostKeyFingerprint)
if [[ $fingerprint == SHA256:?* ]]; then
	pass "$VM has a HostKeyFingerprint"
else
	fail "$VM has a HostKeyFingerprint" "'$fingerprint'"
fi

# The container has no systemd-resolved, so its resolver queries banger's
# DNS server on the bridge directly, as resolved does for the banger domain.
run_as "" ip -j -4 addr show dev banger0
bridge_addr=$(jq -r '.[0].addr_info[0].local // empty' <<<"$OUT" 2>/dev/null)
expect_ok "container resolver points at the bridge" "" \
	sh -c "rm -f /etc/resolv.conf && printf 'nameserver %s\n' '$bridge_addr' >/etc/resolv.conf"
run_as alice getent hosts "$VM.banger"
expect_out_has "$VM.banger resolves to the VM's address" "$(vm_property "$VM" Address)"

# The host key: generated on the host, pinned in known_hosts before boot,
# and the one sshd in the guest serves.
guest "$VM" cat /etc/ssh/ssh_host_ed25519_key.pub
guest_host_key=$OUT
if ((RC == 0)) && [[ $guest_host_key == "ssh-ed25519 "* ]]; then
	pass "guest has an Ed25519 host key"
else
	fail "guest has an Ed25519 host key" "$(last_error_line)"
fi
guest_fingerprint=$(ssh-keygen -lf - <<<"$guest_host_key" 2>/dev/null | cut -d' ' -f2)
expect_same "HostKeyFingerprint matches the guest's host key" "$fingerprint" "$guest_fingerprint"
run_as "" stat -c '%a' "$KNOWN_HOSTS"
expect_equal "known_hosts is world-readable" "$OUT" 644
run_as "" cat "$KNOWN_HOSTS"
known_line=$(grep "^$VM\.banger," <<<"$OUT")
expect_same "known_hosts names $VM by name and id" "$(cut -d' ' -f1 <<<"$known_line")" "$VM.banger,$vm_id"
expect_same "known_hosts pins the guest's host key" "$(cut -d' ' -f2,3 <<<"$known_line")" \
	"$(cut -d' ' -f1,2 <<<"$guest_host_key")"
run_as "" cat "$SSH_CONFIG"
expect_out_has "ssh_config drop-in names banger's known_hosts" "$KNOWN_HOSTS"
guest "$VM" cat /work/.banger/authorized_keys
expect_out_has "guest authorizes alice's key" "$alice_key"

# ssh by name with strict checking succeeds only because of the pin, and
# writes nothing to alice's own known_hosts.
run_as alice ssh -o BatchMode=yes -o StrictHostKeyChecking=yes "$VM.banger" echo ssh-ok
expect_out_has "ssh $VM.banger as alice" ssh-ok
if ((RC == 0)); then
	expect_ok "ssh leaves alice's known_hosts alone" alice test ! -s "$ALICE_HOME/.ssh/known_hosts"
else
	fail "ssh leaves alice's known_hosts alone" "ssh failed"
fi
run_as alice bangerctl vm ssh "$VM" -- echo vm-ssh-ok
expect_out_has "vm ssh $VM" vm-ssh-ok
run_as carol ssh -o BatchMode=yes -o StrictHostKeyChecking=yes "$VM.banger" true
expect_err_match "ssh with carol's key is rejected" 'permission denied'
run_as carol bangerctl vm exec "$VM" -- true
expect_err_match "carol cannot exec in alice's VM" "$DENIED"

# exec: streams, exit status, signals and a terminal.
run_script alice exec-stdin "$VM"
expect_equal "exec passes a line on stdin" "$(sed -n 's/^line //p' <<<"$OUT")" hi
expect_same "exec passes 5 MB on stdin" "$(sed -n 's/^received //p' <<<"$OUT")" \
	"$(sed -n 's/^sent //p' <<<"$OUT")"
guest "$VM" sh -c "head -c $BIG_BYTES /dev/urandom >/tmp/big && sha256sum /tmp/big | cut -d' ' -f1"
big_sum=$OUT
run_script alice exec-fetch "$VM" /tmp/big
mapfile -t lines <<<"$OUT"
expect_equal "exec streams 11 MiB of stdout" "${lines[0]:-}" "$BIG_BYTES"
expect_same "exec output has the guest's SHA-256" "${lines[1]:-}" "$big_sum"
guest "$VM" sh -c 'echo to-stdout; echo to-stderr >&2'
expect_equal "exec keeps stdout apart" "$OUT" to-stdout
expect_equal "exec keeps stderr apart" "$ERR" to-stderr
guest "$VM" sh -c 'exit 7'
expect_equal "exec returns the exit status" "$RC" 7
run_script alice exec-signal "$VM"
expect_equal "exec returns 128+9 for SIGKILL" "$OUT" "status 137"
guest "$VM" /nonexistent/command
if ((RC != 0)) && [[ $ERR == *"/nonexistent/command"* ]]; then
	pass "exec of a missing command names it"
else
	fail "exec of a missing command names it" "exit $RC: $(tail -n 1 <<<"$ERR")"
fi
run_script alice on-terminal bangerctl vm exec -t "$VM" -- tty
if [[ $OUT =~ ^/dev/pts/[0-9]+$'\n'"status 0"$ ]]; then
	pass "exec -t gives the command a terminal"
else
	fail "exec -t gives the command a terminal" "the terminal showed '$(tr '\n' '|' <<<"$OUT")'"
fi
run_script alice on-terminal bangerctl vm exec -t "$VM" -- sh -c 'exit 5'
expect_equal "exec -t returns the exit status" "$OUT" "status 5"
run_script alice on-terminal --send "to detach" '\x1dq' bangerctl vm console "$VM"
expect_equal "console detaches on Ctrl-] q" "$(tail -n 1 <<<"$OUT")" "status 0"
expect_out_has "console says it detached" "Detached from the console of VM '$VM'"


# Listening ports, with a listener started through exec.
run_as alice bangerctl vm ports --json "$VM"
if ((RC == 0)) && [[ -z $(listener "$LISTEN_PORT") ]]; then
	pass "ports lists no listener on $LISTEN_PORT yet"
else
	fail "ports lists no listener on $LISTEN_PORT yet" "$(last_error_line)"
fi
expect_ok "exec starts a listener" alice sh "$SCRIPTS/guest-script.sh" "$VM" guest-listen "$LISTEN_PORT"
run_as alice bangerctl vm ports --json "$VM"
expect_equal "ports lists the new listener" "$(listener "$LISTEN_PORT")" "tcp 0.0.0.0 python3"
expect_equal "ports lists sshd" "$(listener 22 | head -n 1)" "tcp 0.0.0.0 sshd"
run_as alice bangerctl vm ports "$VM"
if ((RC == 0)) && grep -qE "^tcp +0\.0\.0\.0 +$LISTEN_PORT +[0-9]+ +python3\$" <<<"$OUT"; then
	pass "ports table shows the listener"
else
	fail "ports table shows the listener" "exit $RC: $(tr '\n' '|' <<<"$OUT$ERR" | cut -c1-300)"
fi

# A host key changed in the guest no longer matches the pin, so both ssh
# paths reject the connection.
run_script alice guest-script "$VM" guest-tamper
tampered=$OUT
if ((RC == 0)) && [[ $tampered == SHA256:* && $tampered != "$fingerprint" ]]; then
	pass "guest serves a tampered host key"
else
	fail "guest serves a tampered host key" "exit $RC, '$tampered': $(tail -n 1 <<<"$ERR")"
fi
run_as alice ssh -o BatchMode=yes "$VM.banger" echo reached
expect_err_match "ssh $VM.banger rejects the tampered key" 'host key verification failed|identification has changed'
run_as alice bangerctl vm ssh "$VM" -- echo reached
expect_err_match "vm ssh rejects the tampered key" 'host key verification failed|identification has changed'
if [[ $OUT != *reached* ]]; then
	pass "no command runs with the tampered key"
else
	fail "no command runs with the tampered key" "the guest ran the command"
fi
expect_ok "vm stop $VM" alice bangerctl vm stop "$VM"

# A workspace in a guest without sshd: tracked and untracked files are
# copied, ignored ones are not.
expect_ok "alice makes a git working tree" alice sh "$SCRIPTS/make-workspace.sh" proj
expect_ok "alice makes a plain directory" alice mkdir -p "$ALICE_HOME/notgit"
expect_ok "alice writes a file that is no key" alice sh -c "echo not-a-key >$ALICE_HOME/bad.pub"
expect_ok "alice makes a second key" alice \
	ssh-keygen -q -t ed25519 -N '' -C alice-extra -f "$ALICE_HOME/extra"
run_as alice cat "$ALICE_HOME/extra.pub"
extra_key=$(cut -d' ' -f2 <<<"$OUT")
create_bad=(bangerctl vm create --image "$BUSYBOX_IMAGE" --kernel "$KERNEL_NAME")
expect_error "workspace outside git is rejected" "$ALICE_HOME/notgit" alice \
	"${create_bad[@]}" --workspace "$ALICE_HOME/notgit" bad-ws
expect_no_trace "rejected workspace leaves nothing" bad-ws
expect_error "missing --ssh-key file is rejected" "$ALICE_HOME/missing.pub" alice \
	"${create_bad[@]}" --ssh-key "$ALICE_HOME/missing.pub" bad-key
expect_no_trace "missing key file leaves nothing" bad-key
expect_error "--ssh-key without a key is rejected" "$ALICE_HOME/bad.pub" alice \
	"${create_bad[@]}" --ssh-key "$ALICE_HOME/bad.pub" bad-key
expect_no_trace "invalid key file leaves nothing" bad-key
expect_error "--work-size 1 is rejected" "invalid work disk size 1 MiB" alice "${create_bad[@]}" --work-size 1 bad-size
expect_no_trace "invalid work size leaves nothing" bad-size
expect_ok "vm create $WS_VM with a workspace" alice bangerctl vm create --image "$BUSYBOX_IMAGE" \
	--kernel "$KERNEL_NAME" --workspace "$ALICE_HOME/proj" --ssh-key "$ALICE_HOME/extra.pub" \
	--work-size 64 "$WS_VM"
guest "$WS_VM" cat /work/.banger/authorized_keys
if ((RC == 0)) && (($(grep -c . <<<"$OUT") == 1)) && [[ $OUT == *" $extra_key"* ]]; then
	pass "--ssh-key replaces the default keys"
else
	fail "--ssh-key replaces the default keys" "exit $RC: $(tr '\n' '|' <<<"$OUT" | cut -c1-200)"
fi
# 64 MiB less ext4's own metadata.
guest "$WS_VM" df -k /work
work_kib=$(awk 'NR == 2 { print $2 }' <<<"$OUT")
if ((RC == 0)) && [[ $work_kib =~ ^[0-9]+$ ]] && ((work_kib > 50000 && work_kib <= 65536)); then
	pass "--work-size 64 gives a 64 MiB work disk"
else
	fail "--work-size 64 gives a 64 MiB work disk" "df printed '$(tr '\n' '|' <<<"$OUT")': $(last_error_line)"
fi
expect_output "guest has no sshd" absent alice bangerctl vm exec "$WS_VM" -- \
	sh -c 'if [ -e /usr/sbin/sshd ]; then echo present; else echo absent; fi'
expect_output "workspace has the tracked file" "tracked v1" alice \
	bangerctl vm exec "$WS_VM" -- cat /work/proj/tracked.txt
expect_output "workspace has the untracked file" untracked alice \
	bangerctl vm exec "$WS_VM" -- cat /work/proj/untracked.txt
expect_output "workspace has the nested file" nested alice \
	bangerctl vm exec "$WS_VM" -- cat /work/proj/sub/nested.txt
expect_output "workspace lacks the ignored file" absent alice bangerctl vm exec "$WS_VM" -- \
	sh -c 'if [ -e /work/proj/ignored.log ]; then echo present; else echo absent; fi'
run_as alice bangerctl vm exec "$WS_VM" -- true
expect_equal "exec on a clean workspace warns of nothing" "$ERR" ""

expect_ok "alice edits the workspace" alice sh "$SCRIPTS/edit-workspace.sh" proj
run_as alice bangerctl vm exec "$WS_VM" -- true
if ((RC == 0)) && [[ ${ERR,,} == *sync* ]]; then
	pass "exec warns that the workspace changed"
	echo "     $(tail -n 1 <<<"$ERR")"
else
	fail "exec warns that the workspace changed" "exit $RC, stderr '$ERR'"
fi
expect_ok "vm sync $WS_VM" alice bangerctl vm sync "$WS_VM"
run_as alice bangerctl vm exec "$WS_VM" -- cat /work/proj/tracked.txt
expect_equal "sync copies the edit" "$OUT" "tracked v2"
expect_equal "exec after sync warns of nothing" "$ERR" ""
expect_output "sync removes the deleted file" absent alice bangerctl vm exec "$WS_VM" -- \
	sh -c 'if [ -e /work/proj/untracked.txt ]; then echo present; else echo absent; fi'
expect_ok "vm stop $WS_VM" alice bangerctl vm stop "$WS_VM"

# Key rotation during parallel creates: each VM gets one whole key that
# alice had at some instant, and that key logs in.
run_as alice rm -f "$ALICE_HOME/rotation.stop"
ct_run --user alice -- sh "$SCRIPTS/rotate-keys.sh" "$ALICE_HOME/rotation.stop" >"$work/rotations" 2>&1 &
rotate_pid=$!
for vm in "${ROTATION_VMS[@]}"; do
	ct_run --user alice -- timeout 600 bangerctl vm create --image "$SSH_IMAGE" --kernel "$KERNEL_NAME" \
		"$vm" >"$work/create-$vm.out" 2>&1 &
	echo $! >"$work/create-$vm.pid"
done
for vm in "${ROTATION_VMS[@]}"; do
	if wait "$(cat "$work/create-$vm.pid")"; then
		pass "parallel vm create $vm"
	else
		fail "parallel vm create $vm" "$(tail -n 1 "$work/create-$vm.out")"
	fi
done
run_as alice touch "$ALICE_HOME/rotation.stop"
wait "$rotate_pid"
rotations=$(tail -n 1 "$work/rotations")
if [[ $rotations =~ ^[0-9]+$ ]] && ((rotations > 1)); then
	pass "alice rotated her key $rotations times"
else
	fail "alice rotated her key during the creates" "$(tr '\n' ' ' <"$work/rotations")"
fi
for vm in "${ROTATION_VMS[@]}"; do
	guest "$vm" cat /work/.banger/authorized_keys
	keys=$OUT
	if ((RC != 0)) || (($(grep -c . <<<"$keys") != 1)); then
		fail "$vm has one authorized key" "exit $RC: $(tr '\n' '|' <<<"$keys")"
		continue
	fi
	pass "$vm has one authorized key"
	echo "$keys" >"$work/scripts/$vm.key"
	run_as alice sh -c "sh $SCRIPTS/which-key.sh <$SCRIPTS/$vm.key"
	key=$OUT
	if [[ -z $key ]]; then
		fail "$vm has one of alice's keys" "unknown key '$(cut -c1-60 <<<"$keys")'"
		continue
	fi
	pass "$vm has one of alice's keys"
	run_as alice ssh -o BatchMode=yes -o IdentitiesOnly=yes -i "$ALICE_HOME/keys/$key" "$vm.banger" echo key-ok
	expect_out_has "ssh $vm.banger with that key" key-ok
done
for vm in "${ROTATION_VMS[@]}"; do
	expect_ok "vm stop $vm" alice bangerctl vm stop "$vm"
done
run_as "" sh -c 'find /var/lib/banger/vms -name "*.ext4" | sort'
disks=$OUT
for vm in "${ROTATION_VMS[@]}"; do
	id=$(vm_property "$vm" Id)
	vm_disks=$(grep -E "/($vm|${id:-no-id})/" <<<"$disks" || true)
	if [[ -z $vm_disks ]]; then
		fail "$vm has disk files" "none under /var/lib/banger/vms/$vm"
		continue
	fi
	if grep -qv '/root\.ext4$' <<<"$vm_disks"; then
		pass "$vm has a work disk"
	else
		fail "$vm has a work disk" "only $(tr '\n' ' ' <<<"$vm_disks")"
	fi
	for disk in $vm_disks; do
		expect_ok "$vm $(basename "$disk") passes e2fsck -fn" "" e2fsck -fn "$disk"
	done
done

# Deleting a VM drops its pin and keeps the others.
expect_ok "vm rm ${ROTATION_VMS[0]}" alice bangerctl vm rm "${ROTATION_VMS[0]}"
run_as "" cat "$KNOWN_HOSTS"
if ((RC == 0)) && ! grep -q "^${ROTATION_VMS[0]}\.banger," <<<"$OUT" &&
	grep -q "^${ROTATION_VMS[1]}\.banger," <<<"$OUT"; then
	pass "vm rm drops the known_hosts line"
else
	fail "vm rm drops the known_hosts line" "exit $RC: $(tr '\n' '|' <<<"$OUT" | cut -c1-300)"
fi
for vm in "$VM" "$WS_VM" "${ROTATION_VMS[@]:1}"; do
	expect_ok "vm rm $vm" alice bangerctl vm rm "$vm"
done
run_as "" cat "$KNOWN_HOSTS"
expect_equal "known_hosts is empty after every rm" "$OUT" ""

# A build with -Db_sanitize=address,undefined reports memory errors on
# stderr, which the journal keeps.
run_as "" journalctl -b --no-pager -o cat -u bangerd.service -u banger-helper.service
reports=$(grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' <<<"$OUT")
if [[ -z $reports ]]; then
	pass "journal has no sanitizer reports"
else
	fail "journal has no sanitizer reports" "$(head -n 3 <<<"$reports" | tr '\n' ' ')"
fi

finish
