#!/bin/bash
# End-to-end scenario for banger's network: the bridge, taps, NAT, DNS, port
# forwards, reconciliation after SIGKILL, the helper dying in the middle of a
# call, and who may call what. Everything runs in one throwaway systemd
# container with two VMs under QEMU (TCG).
#
# Usage: test-network.sh [BUILDDIR]
#
# BUILDDIR must be a finished meson build, which is installed into the
# container. It defaults to $BANGER_BUILDDIR, else to build-ci-release in the
# source tree. The kernel and systemd-resolved come from the Debian mirror on
# the first run and are kept in integration/cache. Prints one line per check
# and a final "N passed, N failed" line, and exits non-zero if any check
# failed. Must run as root.
#
# Inside the container, a network namespace "outside" plays the world beyond
# the host: a veth pair joins it (OUTSIDE_PEER) to the container
# (OUTSIDE_HOST), and outside-server.py serves DNS and HTTP there. The
# container's /etc/resolv.conf points at that DNS server, and its iptables
# FORWARD policy is DROP, as Docker leaves it.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srcdir=$(dirname "$here")
builddir=$(cd "${1:-${BANGER_BUILDDIR:-$srcdir/build-ci-release}}" 2>/dev/null && pwd) || {
	echo "test-network: build directory ${1:-${BANGER_BUILDDIR:-$srcdir/build-ci-release}} not found; run meson setup and ninja first" >&2
	exit 2
}

# shellcheck source=integration/lib-container.sh
source "$here/lib-container.sh"
# shellcheck source=integration/lib-checks.sh
source "$here/lib-checks.sh"

REGISTRY=127.0.0.1:5000
IMAGE=$REGISTRY/busybox:latest
KERNEL_NAME=cloud
MOUNTS=/srv/banger-test
BRIDGE=banger0
OUTSIDE_HOST=198.51.100.1
OUTSIDE_PEER=198.51.100.2
# Forwards that stay in place from the port checks to the end.
HTTP_PORT=8080
UDP_PORT=5353
VM2_PORT=8083
# Words that a polkit denial message contains, in lower case.
DENIED='(not authorized|access denied|accessdenied|not allowed|permission)'

checks_init network

# Run CMD in VM as alice, who owns both VMs.
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

vm_state() {
	run_as alice bangerctl vm list --json
	jq -r --arg name "$1" '.[] | select(.name == $name) | .state' <<<"$OUT" 2>/dev/null
}

# Print the names of the links in the container whose name starts with
# bngtap, sorted.
tap_links() {
	run_as "" ip -j link show
	jq -r '.[].ifname | select(startswith("bngtap"))' <<<"$OUT" 2>/dev/null | sort
}

# Print banger's nftables table without counters, so that traffic does not
# change it.
nft_banger() {
	run_as "" nft -s list table inet banger
	echo "$OUT"
}

# Print how many rules of banger's table match destination port PORT, or
# "no table" when the table is missing.
nft_port_rules() {
	run_as "" nft -s list table inet banger
	if ((RC != 0)); then
		echo "no table"
		return
	fi
	grep -c "dport $1 " <<<"$OUT"
}

# Send TEXT in one UDP datagram to ADDRESS PORT and print the reply, from
# the container or, with a leading "outside", from the outside namespace.
udp_ask() {
	local prefix=()
	if [[ $1 == outside ]]; then
		prefix=(ip netns exec outside)
		shift
	fi
	run_as "" "${prefix[@]}" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
print(s.recv(2048).decode())' "$@"
}

# Print what a denied or failed call may leave behind: files under
# /var/lib/banger, VM scopes, links, and every nftables rule.
snapshot() {
	run_as "" sh -c '
		find /var/lib/banger 2>/dev/null | sort
		echo "-- scopes"
		systemctl list-units --all --plain --no-legend "banger-vm-*" | cut -d" " -f1
		echo "-- links"
		ip -o link show | cut -d: -f2 | sort
		echo "-- rules"
		nft -s list ruleset'
	echo "$OUT"
}

# Compare two snapshots and report the check NAME.
expect_same_snapshot() {
	local name=$1 before=$2 after=$3
	if [[ $before == "$after" ]]; then
		pass "$name"
	else
		fail "$name" "changed: $(diff <(echo "$before") <(echo "$after") | grep '^[<>]' | head -n 8 | tr '\n' ' ')"
	fi
}

# Pass when OUT contains NEEDLE.
expect_out_contains() {
	local name=$1 needle=$2
	if ((RC == 0)) && [[ $OUT == *"$needle"* ]]; then
		pass "$name"
	else
		fail "$name" "exit $RC, expected '$needle' in: $(tr '\n' ' ' <<<"$OUT$ERR" | cut -c1-300)"
	fi
}

dump_diagnostics() {
	echo "--- journal of bangerd and banger-helper"
	ct_run -- journalctl -b --no-pager -o short-monotonic -u bangerd.service -u banger-helper.service \
		-u 'banger-vm-*' -u banger-dns.socket | tail -n 200
	echo "--- outside server"
	ct_run -- journalctl -b --no-pager -o cat -u test-outside.service | tail -n 40
	echo "--- links, addresses and rules"
	ct_run -- sh -c 'ip -d link show; ip -4 addr show; nft list ruleset' | tail -n 150
	echo "--- container log"
	tail -n 50 "$CT_LOG"
}

# Download systemd-resolved at the host's systemd version into the cache and
# print the .deb's path. The host never installs it: its package would make
# /etc/resolv.conf a link to a stub resolver that does not run there.
fetch_resolved() {
	local cachedir=$here/cache/resolved version deb
	version=$(dpkg-query -W -f '${Version}' systemd 2>/dev/null) || return 1
	mkdir -p "$cachedir"
	# apt-get download finds nothing until the package lists exist.
	if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
		apt-get -o DPkg::Lock::Timeout=300 -q update >&2 || return 1
	fi
	deb=$(compgen -G "$cachedir/systemd-resolved_${version//:/%3a}_*.deb" | head -n 1)
	if [[ -z $deb ]]; then
		(cd "$cachedir" && apt-get -q -o APT::Sandbox::User=root download "systemd-resolved=$version" >&2) ||
			return 1
		deb=$(compgen -G "$cachedir/systemd-resolved_${version//:/%3a}_*.deb" | head -n 1)
	fi
	[[ -n $deb ]] && echo "$deb"
}

# Inputs on the host: the kernel, the image, the UDP echo server for the
# guests (their busybox has none), systemd-resolved and the container's
# resolv.conf.
kernel_deb=$("$here/fetch-kernel.sh" "$here/cache/kernel") || {
	echo "test-network: fetch-kernel.sh failed" >&2
	exit 2
}
"$here/build-test-image.sh" "$work/image" >/dev/null || {
	echo "test-network: build-test-image.sh failed" >&2
	exit 2
}
mkdir -p "$work/files"
cc -static -Os -o "$work/files/udp-echo" "$here/udp-echo.c" || {
	echo "test-network: building udp-echo.c failed; it needs gcc and libc6-dev" >&2
	exit 2
}
echo "nameserver $OUTSIDE_PEER" >"$work/resolv.conf"
chmod -R a+rX "$work"

boot_args=(--bind-ro "$here/cache/kernel:$MOUNTS/kernel" --bind-ro "$work:$MOUNTS/work"
	--bind-ro "$here:$MOUNTS/integration" --resolv-conf "$work/resolv.conf")
resolved_deb=$(fetch_resolved)
if [[ -n $resolved_deb ]]; then
	boot_args+=(--unpack-deb "$resolved_deb")
else
	echo "test-network: systemd-resolved could not be downloaded; its checks will fail" >&2
fi

ct_boot "net-$$" "$builddir" "${boot_args[@]}" || {
	fail "container boots"
	echo "$passed passed, $failed failed"
	exit 1
}
pass "container boots"
kernel_path=$MOUNTS/kernel/$(basename "$kernel_deb")

# The world before bangerd first starts: FORWARD policy DROP, the outside
# namespace with its servers, and a resolver that points there.
expect_output "bangerd has not started yet" inactive "" systemctl show -p ActiveState --value bangerd.service
expect_ok "no network state exists yet" "" test ! -e /var/lib/banger/network.conf
expect_ok "FORWARD policy is set to DROP" "" iptables -P FORWARD DROP
expect_ok "outside namespace is created" "" sh -c "
	ip netns add outside &&
	ip link add outside0 type veth peer name eth0 netns outside &&
	ip addr add $OUTSIDE_HOST/24 dev outside0 && ip link set outside0 up &&
	ip -n outside addr add $OUTSIDE_PEER/24 dev eth0 &&
	ip -n outside link set eth0 up && ip -n outside link set lo up"
expect_ok "outside server starts" "" systemd-run --unit=test-outside --service-type=exec \
	-p NetworkNamespacePath=/run/netns/outside \
	python3 "$MOUNTS/integration/outside-server.py" "$OUTSIDE_PEER" "$MOUNTS/work/files"
expect_ok "container resolves outside.test" "" sh -c \
	"for i in \$(seq 100); do [ \"\$(dig +short +time=1 +tries=1 outside.test)\" = $OUTSIDE_PEER ] && exit 0; sleep 0.1; done; exit 1"
if [[ -n $resolved_deb ]]; then
	expect_ok "systemd-resolved starts" "" systemctl start systemd-resolved.service
else
	fail "systemd-resolved starts" "the package could not be downloaded into $here/cache/resolved"
fi
run_as "" cat /etc/resolv.conf
if [[ $OUT == "nameserver $OUTSIDE_PEER" ]]; then
	pass "resolv.conf names only the outside server"
else
	fail "resolv.conf names only the outside server" "$(tr '\n' ' ' <<<"$OUT")"
fi

# The image and the kernel, as in every scenario. These start bangerd.
expect_ok "registry starts" "" systemd-run --unit=test-registry --service-type=exec \
	"$MOUNTS/integration/registry.sh" serve /var/tmp/test-registry 5000
expect_ok "registry responds" "" sh -c \
	"for i in \$(seq 100); do curl -fsS -o /dev/null http://$REGISTRY/v2/ && exit 0; sleep 0.1; done; exit 1"
expect_ok "test image pushes" "" "$MOUNTS/integration/push-test-image.sh" "$MOUNTS/work/image" "$IMAGE"
expect_ok "image pull" alice bangerctl image pull "$IMAGE"
expect_ok "kernel import" alice bangerctl kernel import "$kernel_path" --name "$KERNEL_NAME"

# Two VMs, created at once.
for vm in vm1 vm2; do
	ct_run --user alice -- timeout 600 bangerctl vm create --image "$IMAGE" --kernel "$KERNEL_NAME" \
		--memory 256 "$vm" >"$work/create-$vm.out" 2>&1 &
	echo $! >"$work/create-$vm.pid"
done
for vm in vm1 vm2; do
	if wait "$(cat "$work/create-$vm.pid")"; then
		pass "vm create $vm"
	else
		fail "vm create $vm" "$(tail -n 1 "$work/create-$vm.out")"
	fi
done

run_as "" cat /var/lib/banger/network.conf
subnet=$(sed -n 's/^Subnet=//p' <<<"$OUT")
if [[ $subnet =~ ^([0-9]+\.[0-9]+\.[0-9]+)\.0/24$ ]]; then
	pass "network.conf records a /24 subnet"
	net_prefix=${BASH_REMATCH[1]}
else
	fail "network.conf records a /24 subnet" "'$OUT'"
	net_prefix=unknown
fi
bridge_addr=$net_prefix.1
run_as "" ip -j -4 addr show dev "$BRIDGE"
got=$(jq -r '.[0].addr_info[0] | "\(.local)/\(.prefixlen)"' <<<"$OUT" 2>/dev/null)
if [[ $got == "$bridge_addr/24" ]]; then pass "$BRIDGE has host 1 of the subnet"; else fail "$BRIDGE has host 1 of the subnet" "'$got', expected '$bridge_addr/24'"; fi

declare -A vm_addr vm_tap
for vm in vm1 vm2; do
	vm_tap[$vm]=$(vm_property "$vm" Tap)
	vm_addr[$vm]=$(vm_property "$vm" Address)
	slot=${vm_tap[$vm]#bngtap}
	if [[ $slot =~ ^[0-9]+$ ]]; then
		pass "$vm has tap ${vm_tap[$vm]}"
		expected=$net_prefix.$((slot + 1))
	else
		fail "$vm has tap ${vm_tap[$vm]}" "Tap is '${vm_tap[$vm]}', expected bngtapN"
		expected=unknown
	fi
	if [[ ${vm_addr[$vm]} == "$expected" ]]; then
		pass "$vm has address $expected"
	else
		fail "$vm has address $expected" "Address is '${vm_addr[$vm]}'"
	fi
	run_as "" ip -j -d link show "${vm_tap[$vm]}"
	info=$(jq -r '.[0] | "\(.ifalias) \(.master) \(.linkinfo.info_data.type) \(.linkinfo.info_data.user)"' \
		<<<"$OUT" 2>/dev/null)
	if [[ $info == "banger $BRIDGE tap bangerd" ]]; then
		pass "${vm_tap[$vm]} is bangerd's tap on $BRIDGE with alias banger"
	else
		fail "${vm_tap[$vm]} is bangerd's tap on $BRIDGE with alias banger" "alias, master, type, user: '$info'"
	fi
done
if [[ -n ${vm_addr[vm1]} && ${vm_addr[vm1]} != "${vm_addr[vm2]}" ]]; then
	pass "VMs have distinct addresses"
else
	fail "VMs have distinct addresses" "'${vm_addr[vm1]}' and '${vm_addr[vm2]}'"
fi
run_as alice bangerctl vm list
if [[ $(head -n 1 <<<"$OUT") == *ADDRESS* && $OUT == *"${vm_addr[vm1]}"* && $OUT == *"${vm_addr[vm2]}"* ]]; then
	pass "vm list shows the addresses"
else
	fail "vm list shows the addresses" "$(tr '\n' '|' <<<"$OUT")"
fi

guest vm1 cat /etc/resolv.conf
if [[ $OUT == *"nameserver $bridge_addr"* && $OUT == *"search banger"* ]]; then
	pass "guest resolv.conf names the bridge and banger"
else
	fail "guest resolv.conf names the bridge and banger" "$(tr '\n' '|' <<<"$OUT")"
fi
expect_ok "guest pings the bridge" alice bangerctl vm exec vm1 -- ping -c 1 -W 5 "$bridge_addr"
guest vm1 ping -c 1 -W 5 vm2.banger
expect_out_contains "vm1 pings vm2.banger" "${vm_addr[vm2]}"
guest vm2 nslookup vm1.banger
expect_out_contains "vm2 resolves vm1.banger" "${vm_addr[vm1]}"
# Print how many A queries for outside.test from the container the outside
# server has logged.
outside_queries() {
	run_as "" journalctl -b --no-pager -o cat -u test-outside.service
	grep -c "^dns $OUTSIDE_HOST outside.test 1$" <<<"$OUT"
}
queries_before=$(outside_queries)
guest vm1 nslookup outside.test
expect_out_contains "guest resolves outside.test through bangerd" "$OUTSIDE_PEER"
queries_after=$(outside_queries)
if ((queries_after > queries_before)); then
	pass "bangerd forwards the query to the outside server"
else
	fail "bangerd forwards the query to the outside server" "no new A query from $OUTSIDE_HOST in its log"
fi
# The guest's wget runs under timeout because wget -T crashes with SIGSEGV in
# Debian 12's busybox-static (1.35.0).
expect_output "guest reaches the outside server through NAT" "$OUTSIDE_HOST" alice \
	bangerctl vm exec vm1 -- timeout 20 wget -q -O - "http://outside.test:8000/"
expect_output "FORWARD policy is still DROP" "-P FORWARD DROP" "" sh -c 'iptables -S FORWARD | head -n 1'

# The host queries bangerd for VM names over UDP and TCP.
expect_output "dig over UDP finds vm1.banger" "${vm_addr[vm1]}" "" \
	dig +short +time=2 +tries=2 "@$bridge_addr" vm1.banger
expect_output "dig over TCP finds vm2.banger" "${vm_addr[vm2]}" "" \
	dig +short +tcp +time=2 +tries=2 "@$bridge_addr" vm2.banger
run_as "" dig +time=2 +tries=2 "@$bridge_addr" unknown.banger
expect_out_contains "unknown.banger is NXDOMAIN" "status: NXDOMAIN"
expect_output "bangerd forwards other names" "$OUTSIDE_PEER" "" \
	dig +short +time=2 +tries=2 "@$bridge_addr" outside.test

# systemd-resolved routes .banger to the bridge.
run_as "" resolvectl dns "$BRIDGE"
expect_out_contains "resolvectl dns shows the bridge address" "$bridge_addr"
run_as "" resolvectl domain "$BRIDGE"
expect_out_contains "resolvectl domain shows ~banger" "~banger"
run_as "" resolvectl query --legend=no vm1.banger
expect_out_contains "resolvectl resolves vm1.banger" "${vm_addr[vm1]}"

# Port forwards. vm1 serves HTTP on port 80 and UDP echo on UDP_PORT.
expect_ok "guest httpd starts" alice bangerctl vm exec vm1 -- sh -c \
	'mkdir -p /www && echo "hello from vm1" >/www/index.html && httpd -p 80 -h /www'
expect_ok "guest fetches udp-echo" alice bangerctl vm exec vm1 -- sh -c \
	'timeout 60 wget -q -O /tmp/udp-echo http://outside.test:8000/files/udp-echo && chmod 755 /tmp/udp-echo'
expect_ok "guest udp-echo starts" alice bangerctl vm exec vm1 -- /tmp/udp-echo "$UDP_PORT"
expect_ok "port add $HTTP_PORT:80" alice bangerctl vm port add vm1 "$HTTP_PORT:80"
expect_ok "port add $UDP_PORT:$UDP_PORT/udp" alice bangerctl vm port add vm1 "$UDP_PORT:$UDP_PORT/udp"
expect_output "forward reached at 127.0.0.1" "hello from vm1" "" \
	curl -fsS -m 10 "http://127.0.0.1:$HTTP_PORT/"
expect_output "forward reached at the bridge address" "hello from vm1" "" \
	curl -fsS -m 10 "http://$bridge_addr:$HTTP_PORT/"
expect_output "forward reached from outside" "hello from vm1" "" \
	ip netns exec outside curl -fsS -m 10 "http://$OUTSIDE_HOST:$HTTP_PORT/"
udp_ask 127.0.0.1 "$UDP_PORT" local
if [[ $RC == 0 && $OUT == "echo local" ]]; then pass "udp forward echoes at 127.0.0.1"; else fail "udp forward echoes at 127.0.0.1" "$(last_error_line)"; fi
udp_ask outside "$OUTSIDE_HOST" "$UDP_PORT" far
if [[ $RC == 0 && $OUT == "echo far" ]]; then pass "udp forward echoes from outside"; else fail "udp forward echoes from outside" "$(last_error_line)"; fi

run_as alice bangerctl vm port list vm1
if [[ $OUT == *"$HTTP_PORT"* && $OUT == *"$UDP_PORT"* && $OUT == *udp* ]]; then
	pass "port list shows both forwards"
else
	fail "port list shows both forwards" "$(tr '\n' '|' <<<"$OUT")"
fi
run_as alice bangerctl vm port list vm1 --json
if ((RC == 0)) && jq -e 'type == "array" and length == 2' <<<"$OUT" >/dev/null 2>&1; then pass "port list --json has two entries"; else fail "port list --json has two entries" "$OUT"; fi
run_as "" busctl --system get-property org.banger1 /org/banger1/vm/vm1 org.banger1.VM PortForwards
if [[ $OUT == *'"tcp" '"$HTTP_PORT 80"* && $OUT == *'"udp" '"$UDP_PORT $UDP_PORT"* ]]; then
	pass "PortForwards property lists both"
else
	fail "PortForwards property lists both" "$OUT"
fi

# A port add fails, naming the port, when a process in the container has
# bound that host port. Other bad requests fail naming their value.
expect_ok "a process holds port 9090" "" systemd-run --unit=test-busy-port --service-type=exec \
	python3 -m http.server --bind 0.0.0.0 9090
# shellcheck disable=SC2016 # expanded by the shell in the container
run_as "" sh -c 'for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:9090/ && exit 0; sleep 0.1; done; exit 1'
before=$(snapshot)
expect_error "port add of a bound port names it" 9090 alice bangerctl vm port add vm1 9090:80
expect_error "port add of a forwarded port names it" "$HTTP_PORT" alice bangerctl vm port add vm1 "$HTTP_PORT:81"
expect_error "port add above 65535 names the value" 70000 alice bangerctl vm port add vm1 70000:80
expect_error "port add with an unknown protocol names it" sctp alice bangerctl vm port add vm1 8081:80/sctp
expect_error "port add of a non-number names it" abc alice bangerctl vm port add vm1 abc:80
expect_error "port add of a 20-digit port names it" 99999999999999999999 alice \
	bangerctl vm port add vm1 99999999999999999999:80
expect_error "port add of port 0 names it" 0:80 alice bangerctl vm port add vm1 0:80
expect_error "port add of a negative port names it" -1 alice bangerctl vm port add vm1 -- -1:80
# bangerd checks bus arguments itself, since callers other than bangerctl
# skip the client's checks.
vm1_call=(busctl --system call org.banger1 /org/banger1/vm/vm1 org.banger1.VM)
expect_error "AddPortForward with proto sctp names it" sctp alice "${vm1_call[@]}" \
	AddPortForward sqq sctp 8081 80
expect_error "AddPortForward of host port 0 names it" "host port 0" alice "${vm1_call[@]}" \
	AddPortForward sqq tcp 0 80
expect_error "AddPortForward to guest port 0 names it" "guest port 0" alice "${vm1_call[@]}" \
	AddPortForward sqq tcp 8081 0
expect_error "port add to a missing VM names it" novm alice bangerctl vm port add novm 8081:80
expect_error "port rm of a port not forwarded names it" 9999 alice bangerctl vm port rm vm1 9999
expect_same_snapshot "rejected port changes leave nothing behind" "$before" "$(snapshot)"
run_as "" systemctl stop test-busy-port.service

expect_ok "port rm $HTTP_PORT" alice bangerctl vm port rm vm1 "$HTTP_PORT"
count=$(nft_port_rules "$HTTP_PORT")
if [[ $count == 0 ]]; then pass "port rm removes the nft rules"; else fail "port rm removes the nft rules" "$count rules still match dport $HTTP_PORT"; fi
run_as "" curl -fsS -m 5 "http://127.0.0.1:$HTTP_PORT/"
if ((RC != 0)); then pass "removed forward no longer answers"; else fail "removed forward no longer answers" "curl printed '$OUT'"; fi
count=$(nft_port_rules "$UDP_PORT")
if [[ $count =~ ^[1-9] ]]; then pass "the udp forward keeps its rules"; else fail "the udp forward keeps its rules" "$count rules match dport $UDP_PORT"; fi

# vm2 serves HTTP too, forwarded from VM2_PORT; it must survive the next
# checks.
expect_ok "vm2 httpd starts" alice bangerctl vm exec vm2 -- sh -c \
	'mkdir -p /www && echo "hello from vm2" >/www/index.html && httpd -p 80 -h /www'
expect_ok "port add $VM2_PORT:80 on vm2" alice bangerctl vm port add vm2 "$VM2_PORT:80"
expect_output "vm2 forward answers" "hello from vm2" "" curl -fsS -m 10 "http://127.0.0.1:$VM2_PORT/"
# The number of rules one TCP forward takes, to compare against later.
forward_rules=$(nft_port_rules "$VM2_PORT")
if [[ $forward_rules =~ ^[1-9][0-9]*$ ]]; then
	pass "vm2's forward has nft rules"
else
	fail "vm2's forward has nft rules" "$forward_rules rules match dport $VM2_PORT"
	forward_rules=unknown
fi

# Reconciliation. The helper, called as root, makes a tap and a forward for
# slot 99, which no VM has. A bangerd killed between a helper call and its
# record leaves the same. A tap made by hand with banger's alias is stale
# too. A link named like banger's taps but without the alias is not
# banger's, so it must stay.
expect_ok "helper makes a stale tap for slot 99" "" busctl --system call org.banger1.Helper \
	/org/banger1/helper org.banger1.Helper CreateTap u 99
expect_ok "helper makes a stale forward for slot 99" "" busctl --system call org.banger1.Helper \
	/org/banger1/helper org.banger1.Helper AddPortForward usqq 99 tcp 9099 80
expect_ok "a stale tap with alias banger is made by hand" "" sh -c \
	'ip tuntap add dev bngtap98 mode tap && ip link set bngtap98 alias banger'
expect_ok "a tap without the alias is made by hand" "" ip tuntap add dev bngtap97 mode tap
stale_rules=$(nft_port_rules 9099)
if [[ $stale_rules =~ ^[1-9] ]]; then pass "stale forward is in nft"; else fail "stale forward is in nft" "$stale_rules rules match dport 9099"; fi
stale_taps=$(tap_links | tr '\n' ' ')
# shellcheck disable=SC2016 # expanded by the shell in the container
expect_ok "bangerd and the helper are killed with SIGKILL" "" sh -c \
	'systemctl kill --signal=KILL bangerd.service; systemctl kill --signal=KILL banger-helper.service
	for i in $(seq 100); do
		systemctl is-active -q bangerd.service || systemctl is-active -q banger-helper.service || exit 0
		sleep 0.1
	done; exit 1'
expect_ok "a bus call starts bangerd again" alice bangerctl vm list
# shellcheck disable=SC2016 # expanded by the shell in the container
run_as "" sh -c 'for i in $(seq 300); do ip link show bngtap99 >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1'
taps=$(tap_links | tr '\n' ' ')
if [[ $stale_taps != *"bngtap99 "* || $stale_taps != *"bngtap98 "* ]]; then
	fail "reconcile removes the stale taps" "not checked, the stale taps were not made: $stale_taps"
elif [[ $taps == *bngtap9[89]* ]]; then
	fail "reconcile removes the stale taps" "links after 30 s: $taps"
else
	pass "reconcile removes the stale taps"
fi
if [[ $taps == *"bngtap97 "* ]]; then pass "reconcile keeps the tap without the alias"; else fail "reconcile keeps the tap without the alias" "links: $taps"; fi
count=$(nft_port_rules 9099)
if [[ ! $stale_rules =~ ^[1-9] ]]; then
	fail "reconcile removes the stale forward" "not checked, the stale forward was not made"
elif [[ $count == 0 ]]; then
	pass "reconcile removes the stale forward"
else
	fail "reconcile removes the stale forward" "$count rules match dport 9099"
fi
for vm in vm1 vm2; do
	if [[ -n ${vm_tap[$vm]} && $taps == *"${vm_tap[$vm]} "* ]]; then pass "$vm keeps its tap"; else fail "$vm keeps its tap" "links: $taps"; fi
done
count=$(nft_port_rules "$VM2_PORT")
if [[ $count == "$forward_rules" ]]; then pass "vm2 keeps its forward rules"; else fail "vm2 keeps its forward rules" "$count rules, $forward_rules before"; fi
expect_output "vm2 forward answers after reconcile" "hello from vm2" "" curl -fsS -m 10 "http://127.0.0.1:$VM2_PORT/"
udp_ask 127.0.0.1 "$UDP_PORT" again
if [[ $RC == 0 && $OUT == "echo again" ]]; then pass "udp forward echoes after reconcile"; else fail "udp forward echoes after reconcile" "$(last_error_line)"; fi
expect_ok "vm1 still pings vm2.banger" alice bangerctl vm exec vm1 -- ping -c 1 -W 5 vm2.banger
run_as "" ip link delete bngtap97

# The helper dies in the middle of a call: it is stopped, a port add
# waits on it, and then it is killed. The add fails with a clear error, a
# retry succeeds, and nothing is left twice.
# shellcheck disable=SC2016 # expanded by the shell in the container
run_as "" sh -c '
	busctl --system call org.banger1.Helper /org/banger1/helper org.banger1.Helper EnsureNetwork >/dev/null || exit 1
	pid=$(systemctl show -p MainPID --value banger-helper.service)
	[ "$pid" -gt 0 ] && kill -STOP "$pid" && echo "$pid"'
helper_pid=$OUT
if ((RC == 0)); then pass "helper is stopped with SIGSTOP"; else fail "helper is stopped with SIGSTOP" "$(last_error_line)"; fi
ct_run --user alice -- timeout 300 bangerctl vm port add vm1 8084:80 >"$work/port-add.out" 2>"$work/port-add.err" &
port_add=$!
# The call waits in the stopped helper's socket: ss shows its receive queue
# grow.
# shellcheck disable=SC2016 # expanded by the shell in the container
expect_ok "the call reaches the stopped helper" "" sh -c '
	for i in $(seq 300); do
		queued=$(ss -xpH | awk -v owner="pid=$1," "index(\$0, owner) { sum += \$3 } END { print sum + 0 }")
		[ "$queued" -gt 0 ] && exit 0
		sleep 0.1
	done
	exit 1' sh "$helper_pid"
expect_ok "stopped helper is killed with SIGKILL" "" kill -KILL "$helper_pid"
if wait "$port_add"; then
	fail "port add fails when the helper dies" "it succeeded: $(cat "$work/port-add.out")"
else
	error=$(tail -n 1 "$work/port-add.err")
	if [[ $error == *8084* && ${error,,} == *helper* ]]; then
		pass "port add fails when the helper dies"
		echo "     $error"
	else
		fail "port add fails when the helper dies" "the error names neither 8084 nor the helper: '$error'"
	fi
fi
count=$(nft_port_rules 8084)
if [[ $count == 0 ]]; then pass "the failed add leaves no rule"; else fail "the failed add leaves no rule" "$count rules match dport 8084"; fi
expect_ok "port add succeeds on retry" alice bangerctl vm port add vm1 8084:80
count=$(nft_port_rules 8084)
if [[ $count == "$forward_rules" ]]; then pass "the retry adds each rule once"; else fail "the retry adds each rule once" "$count rules, $forward_rules for one forward"; fi
expect_output "the retried forward answers" "hello from vm1" "" curl -fsS -m 10 "http://127.0.0.1:8084/"
expect_ok "port rm 8084" alice bangerctl vm port rm vm1 8084
taps=$(tap_links | tr '\n' ' ')
expected=$(printf '%s\n' "${vm_tap[vm1]}" "${vm_tap[vm2]}" | sort | tr '\n' ' ')
if [[ $taps == "$expected" ]]; then pass "only the VMs' taps remain"; else fail "only the VMs' taps remain" "links '$taps', expected '$expected'"; fi

# Who may call what. Each row contains the method, the caller, the expected
# outcome and the command. The outcome "ok" means the call succeeds,
# "denied" that polkit rejects it, "owner" that it is denied with a message
# naming alice as the owner, and "authorized" that it fails for a reason
# other than authorization. A denial must leave nothing behind. Rows run in
# order because later rows rely on earlier ones.
run_as "" sh -c 'rm -rf /var/tmp/import && mkdir -p /var/tmp/import/root/etc &&
	echo ID=imported >/var/tmp/import/root/etc/os-release &&
	tar -C /var/tmp/import/root -cJf /var/tmp/import/rootfs.tar.xz . && chmod -R a+rX /var/tmp/import'
create=(bangerctl vm create --image "$IMAGE" --kernel "$KERNEL_NAME" --no-start)
import=(bangerctl image import /var/tmp/import/rootfs.tar.xz --name)
kimport=(bangerctl kernel import "$kernel_path" --name)
matrix=(
	"CreateVM|bob|denied|${create[*]} bobvm"
	"CreateVM|alice|ok|${create[*]} alicevm"
	"CreateVM|carol|ok|${create[*]} carolvm"
	"CreateVM|root|ok|${create[*]} rootvm"
	"PullImage|bob|denied|bangerctl image pull $IMAGE"
	"PullImage|alice|ok|bangerctl image pull $IMAGE"
	"PullImage|carol|ok|bangerctl image pull $IMAGE"
	"PullImage|root|ok|bangerctl image pull $IMAGE"
	"ImportImage|bob|denied|${import[*]} bob-import:1"
	"ImportImage|alice|ok|${import[*]} alice-import:1"
	"ImportImage|carol|ok|${import[*]} carol-import:1"
	"ImportImage|root|ok|${import[*]} root-import:1"
	"image Delete|bob|denied|bangerctl image rm alice-import:1"
	"image Delete|alice|ok|bangerctl image rm carol-import:1"
	"image Delete|carol|ok|bangerctl image rm alice-import:1"
	"image Delete|root|ok|bangerctl image rm root-import:1"
	"ImportKernel|bob|denied|${kimport[*]} bob-kernel"
	"ImportKernel|carol|ok|${kimport[*]} carol-kernel"
	"ImportKernel|root|ok|${kimport[*]} root-kernel"
	"kernel Delete|bob|denied|bangerctl kernel rm carol-kernel"
	"kernel Delete|alice|ok|bangerctl kernel rm carol-kernel"
	"kernel Delete|root|ok|bangerctl kernel rm root-kernel"
	"PullKernel|bob|denied|bangerctl kernel pull catalog-kernel"
	"PullKernel|alice|authorized|bangerctl kernel pull catalog-kernel"
	"PullKernel|root|authorized|bangerctl kernel pull catalog-kernel"
	"PruneVMs|bob|denied|bangerctl vm prune"
	"PruneVMs --all|carol|denied|bangerctl vm prune --all"
	"PruneVMs|carol|ok|bangerctl vm prune"
	"Exec|bob|denied|bangerctl vm exec vm2 -- true"
	"Exec|carol|owner|bangerctl vm exec vm2 -- true"
	"Exec|alice|ok|bangerctl vm exec vm2 -- true"
	"Exec|root|ok|bangerctl vm exec vm2 -- true"
	"AddPortForward|bob|denied|bangerctl vm port add vm2 9001:80"
	"AddPortForward|carol|owner|bangerctl vm port add vm2 9001:80"
	"AddPortForward|alice|ok|bangerctl vm port add vm2 9001:80"
	"AddPortForward|root|ok|bangerctl vm port add vm2 9002:80"
	"RemovePortForward|bob|denied|bangerctl vm port rm vm2 9001"
	"RemovePortForward|carol|owner|bangerctl vm port rm vm2 9001"
	"RemovePortForward|alice|ok|bangerctl vm port rm vm2 9001"
	"RemovePortForward|root|ok|bangerctl vm port rm vm2 9002"
	"Restart|bob|denied|bangerctl vm restart vm2"
	"Restart|carol|owner|bangerctl vm restart vm2"
	"Restart|alice|ok|bangerctl vm restart vm2"
	"Stop|bob|denied|bangerctl vm stop vm2"
	"Stop|carol|owner|bangerctl vm stop vm2"
	"Stop|root|ok|bangerctl vm stop vm2"
	"Start|bob|denied|bangerctl vm start vm2"
	"Start|carol|owner|bangerctl vm start vm2"
	"Start|root|ok|bangerctl vm start vm2"
	"Restart|root|ok|bangerctl vm restart vm2"
	"Stop|alice|ok|bangerctl vm stop vm2"
	"Start|alice|ok|bangerctl vm start vm2"
	"Delete|bob|denied|bangerctl vm rm vm2"
	"Delete|carol|owner|bangerctl vm rm vm2"
	"Delete|root|ok|bangerctl vm rm alicevm"
	"Delete|alice|ok|bangerctl vm rm vm2"
)
for row in "${matrix[@]}"; do
	IFS='|' read -r method user outcome command <<<"$row"
	read -r -a argv <<<"$command"
	name="$method by $user"
	runner=$user
	[[ $user == root ]] && runner=""
	case $outcome in
	ok)
		expect_ok "$name is allowed" "$runner" "${argv[@]}"
		;;
	authorized)
		run_as "$runner" "${argv[@]}"
		if [[ ${ERR,,} =~ $DENIED ]]; then
			fail "$name is authorized" "$(last_error_line)"
		else
			pass "$name is authorized"
		fi
		;;
	denied | owner)
		before=$(snapshot)
		run_as "$runner" "${argv[@]}"
		if ((RC == 0)); then
			fail "$name is denied" "it succeeded"
		elif [[ $outcome == owner && (${ERR,,} != *"belongs to another user"* || $ERR != *alice*) ]]; then
			fail "$name is denied naming the owner" "$(last_error_line)"
		elif [[ $outcome == denied && ! ${ERR,,} =~ $DENIED ]]; then
			fail "$name is denied" "$(last_error_line)"
		elif [[ $outcome == owner ]]; then
			pass "$name is denied naming the owner"
		else
			pass "$name is denied"
		fi
		expect_same_snapshot "$name leaves nothing behind" "$before" "$(snapshot)"
		;;
	esac
	# Carol's prune removes her own VM and leaves everyone else's.
	if [[ $row == "PruneVMs|carol|ok|"* ]]; then
		for vm in carolvm alicevm rootvm vm1 vm2; do
			state=$(vm_state "$vm")
			if [[ $vm == carolvm && -z $state ]]; then
				pass "carol's prune removes carolvm"
			elif [[ $vm != carolvm && -n $state ]]; then
				pass "carol's prune leaves $vm"
			else
				fail "carol's prune handles $vm" "state '$state'"
			fi
		done
	fi
done

# Direct calls to the helper: only user bangerd may make them. Each refusal
# is logged with the caller, and none changes anything. The targets are the
# live VMs' slot and forward, so a call that got through would show.
# Slot 1 when vm1's tap is unknown, so that the calls still parse.
vm1_slot=${vm_tap[vm1]#bngtap}
[[ $vm1_slot =~ ^[0-9]+$ ]] || vm1_slot=1
helper_calls=(
	"EnsureNetwork|"
	"CreateTap|u 77"
	"DeleteTap|u $vm1_slot"
	"AddPortForward|usqq $vm1_slot tcp 9077 80"
	"RemovePortForward|usq $vm1_slot udp $UDP_PORT"
	"Reconcile|au 0"
	"StartScope|sauttt vm1 1 1 0 0 0"
)
before=$(snapshot)
for user in alice bob carol; do
	for call in "${helper_calls[@]}"; do
		IFS='|' read -r method args <<<"$call"
		read -r -a argv <<<"$args"
		run_as "$user" busctl --system call org.banger1.Helper /org/banger1/helper org.banger1.Helper \
			"$method" "${argv[@]}"
		if ((RC != 0)) && [[ ${ERR,,} =~ $DENIED ]]; then
			pass "helper $method by $user is denied"
		else
			fail "helper $method by $user is denied" "$(last_error_line)"
		fi
	done
done
expect_same_snapshot "denied helper calls leave nothing behind" "$before" "$(snapshot)"
run_as "" journalctl -b --no-pager -o cat -u banger-helper.service
helper_journal=$OUT
for user in alice bob carol; do
	run_as "" id -u "$user"
	uid=$OUT
	for call in "${helper_calls[@]}"; do
		method=${call%%|*}
		if grep "$method" <<<"$helper_journal" | grep -qE "(uid[ =]?$uid\b|'$user'|\b$user\b)"; then
			pass "helper journal records $user's $method"
		else
			fail "helper journal records $user's $method" "no line names $method and $user or uid $uid"
		fi
	done
done

# Removing every VM removes every tap and every forward.
expect_ok "vm rm vm1" alice bangerctl vm rm vm1
expect_ok "vm prune --all by root" "" bangerctl vm prune --all
run_as alice bangerctl vm list --json
if [[ $(jq -r 'length' <<<"$OUT" 2>/dev/null) == 0 ]]; then pass "no VM remains"; else fail "no VM remains" "$OUT"; fi
taps=$(tap_links)
if [[ -z $taps ]]; then pass "no bngtap link remains"; else fail "no bngtap link remains" "$(tr '\n' ' ' <<<"$taps")"; fi
run_as "" nft -s list ruleset
rules=$(grep 'comment "banger slot' <<<"$OUT")
if [[ -z $rules ]]; then pass "no forward rule remains"; else fail "no forward rule remains" "$(tr '\n' '|' <<<"$rules")"; fi

# A build with -Db_sanitize=address,undefined reports memory errors,
# undefined behaviour and leaks on stderr, which the journal keeps.
run_as "" journalctl -b --no-pager -o cat -u bangerd.service -u banger-helper.service
reports=$(grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' <<<"$OUT")
if [[ -z $reports ]]; then
	pass "the journals have no sanitizer reports"
else
	fail "the journals have no sanitizer reports" "$(head -n 3 <<<"$reports" | tr '\n' ' ')"
fi

if ((failed > 0)); then
	dump_diagnostics
fi
echo "$passed passed, $failed failed"
((failed == 0))
