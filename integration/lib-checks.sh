#!/bin/bash
# Check helpers shared by the integration scenarios: counters, a scratch
# directory, and commands run in the container (lib-container.sh) with their
# status and output kept for assertions. Source lib-container.sh first, then
# this file, then call checks_init.

# shellcheck disable=SC2034 # RC, OUT and ERR are read by the scenarios
RC=0 OUT='' ERR=''

pass() {
	echo "ok   $1"
	passed=$((passed + 1))
}

fail() {
	echo "FAIL $1${2:+: $2}"
	failed=$((failed + 1))
}

# shellcheck disable=SC2317 # called by the EXIT trap
checks_cleanup() {
	ct_stop
	rm -rf "$work"
}

# Reset the counters, make the scratch directory $work (/tmp/banger-NAME.*)
# and stop the container and remove $work on exit.
checks_init() {
	passed=0
	failed=0
	work=$(mktemp -d "/tmp/banger-$1.XXXXXX")
	trap checks_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# Run a command in the container as USER ("" for root) with a time limit of
# RUN_TIMEOUT seconds (default 600), and keep its exit status, stdout and
# stderr in RC, OUT and ERR.
# NOTE: systemd-run expands ${NAME} in the command it runs, so scripts passed
# through here use $NAME only.
run_as() {
	local user=$1
	shift
	local args=()
	[[ -n $user ]] && args=(--user "$user")
	RC=0
	ct_run "${args[@]}" -- timeout "${RUN_TIMEOUT:-600}" "$@" >"$work/out" 2>"$work/err" || RC=$?
	OUT=$(cat "$work/out")
	ERR=$(cat "$work/err")
}

# The last line of stderr, or of stdout, for failure messages. Progress
# lines come first and the error last.
last_error_line() {
	local line
	line=$(tail -n 1 <<<"$ERR")
	[[ -n $line ]] || line=$(tail -n 1 <<<"$OUT")
	echo "exit $RC${line:+, $line}"
}

# Pass when the command exits 0.
expect_ok() {
	local name=$1 user=$2
	shift 2
	run_as "$user" "$@"
	if ((RC == 0)); then
		pass "$name"
	else
		fail "$name" "$(last_error_line)"
	fi
}

# Pass when the command exits 0 and prints exactly EXPECTED.
expect_output() {
	local name=$1 expected=$2 user=$3
	shift 3
	run_as "$user" "$@"
	if ((RC != 0)); then
		fail "$name" "$(last_error_line)"
	elif [[ $OUT != "$expected" ]]; then
		fail "$name" "printed '$OUT', expected '$expected'"
	else
		pass "$name"
	fi
}

# Pass when the command exits non-zero and its stderr contains NEEDLE,
# compared case-insensitively.
expect_error() {
	local name=$1 needle=$2 user=$3
	shift 3
	run_as "$user" "$@"
	if ((RC == 0)); then
		fail "$name" "succeeded, expected an error naming '$needle'"
	elif [[ ${ERR,,} != *"${needle,,}"* ]]; then
		fail "$name" "exit $RC, stderr does not contain '$needle': $(tail -n 1 <<<"$ERR")"
	else
		pass "$name"
		echo "     $(tail -n 1 <<<"$ERR")"
	fi
}
