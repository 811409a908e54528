#!/bin/bash
# Run a throwaway OCI registry (docker-registry, distribution 2.8) on
# loopback.
#
# Usage:
#   registry.sh start DIR PORT   start in the background, wait until /v2/
#                                responds, record the PID in DIR/registry.pid
#   registry.sh stop DIR         stop the registry recorded in DIR
#   registry.sh serve DIR PORT   run in the foreground, for a service manager
#                                such as `systemd-run --unit=...`
#
# DIR receives config.yml, storage/ (the blobs and manifests), registry.log
# and registry.pid. The registry listens on 127.0.0.1:PORT only, without TLS
# or authentication.
set -euo pipefail

log() { echo "registry: $*" >&2; }
die() {
	log "$*"
	exit 1
}

usage() {
	die "usage: registry.sh start DIR PORT | stop DIR | serve DIR PORT"
}

registry_bin=$(command -v docker-registry || true)

check_port() {
	if [[ ! $1 =~ ^[0-9]{1,5}$ ]] || ((10#$1 < 1 || 10#$1 > 65535)); then
		die "invalid port '$1'; pass a number from 1 to 65535"
	fi
}

write_config() {
	local dir=$1 port=$2
	mkdir -p "$dir/storage"
	cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
}

registry_responds() {
	curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/v2/" 2>/dev/null
}

# Print the recorded PID if that process is still this registry. A PID that
# the kernel has since reused for another program is ignored.
recorded_pid() {
	local dir=$1 pid cmdline
	[[ -f $dir/registry.pid ]] || return 1
	pid=$(cat "$dir/registry.pid")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *docker-registry*"$dir/config.yml"* ]] || return 1
	echo "$pid"
}

cmd_start() {
	local dir=$1 port=$2 pid i
	check_port "$port"
	[[ -n $registry_bin ]] ||
		die "docker-registry not found; install it with: apt-get install docker-registry"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)

	if pid=$(recorded_pid "$dir"); then
		die "a registry from $dir is already running as PID $pid; run: registry.sh stop $dir"
	fi
	if registry_responds "$port"; then
		die "something already listens on 127.0.0.1:$port; pick another port"
	fi

	write_config "$dir" "$port"
	setsid "$registry_bin" serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/registry.pid"

	# The registry responds within about 0.1 s. Allow 10 s for a loaded machine.
	for ((i = 0; i < 100; i++)); do
		if registry_responds "$port"; then
			log "listening on 127.0.0.1:$port (PID $pid, storage $dir/storage)"
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			cat "$dir/registry.log" >&2
			rm -f "$dir/registry.pid"
			die "docker-registry exited during startup; its log is above"
		fi
		sleep 0.1
	done
	cmd_stop "$dir"
	die "docker-registry did not respond on 127.0.0.1:$port/v2/ within 10 s; see $dir/registry.log"
}

cmd_stop() {
	local dir=$1 pid i
	if ! pid=$(recorded_pid "$dir"); then
		rm -f "$dir/registry.pid"
		log "no registry from $dir is running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "PID $pid ignored SIGTERM for 5 s, sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/registry.pid"
	log "stopped PID $pid"
}

cmd_serve() {
	local dir=$1 port=$2
	check_port "$port"
	[[ -n $registry_bin ]] ||
		die "docker-registry not found; install it with: apt-get install docker-registry"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	write_config "$dir" "$port"
	exec "$registry_bin" serve "$dir/config.yml"
}

case ${1:-} in
start)
	[[ $# -eq 3 ]] || usage
	cmd_start "$2" "$3"
	;;
stop)
	[[ $# -eq 2 ]] || usage
	cmd_stop "$2"
	;;
serve)
	[[ $# -eq 3 ]] || usage
	cmd_serve "$2" "$3"
	;;
*)
	usage
	;;
esac
