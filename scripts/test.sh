#!/bin/bash
# Run every test banger has. That is shellcheck on the shell scripts, the unit
# suites under ASan and UBSan, and the fuzz targets for a bounded number of
# runs. Then a release build, and the integration scenarios in a booted
# systemd container with VMs under QEMU (TCG).
#
# Usage: scripts/test.sh
#
# Must run as root on Debian 12: it installs packages with apt-get, mounts
# overlays and boots containers. Build directories go to build-ci-* in the
# source tree and are reused by later runs. Environment:
#   BANGER_SKIP_DEPS=1       skip scripts/install-deps.sh (packages present)
#   BANGER_FUZZ_RUNS=N       inputs per fuzz target (default 20000)
#   BANGER_FUZZ_MAX_SECONDS  time limit per fuzz target (default 120)
#
# Prints one line per part and a final "N passed, N failed" line, and exits
# non-zero if any part failed. Logs go to build-ci-logs/.
set -uo pipefail

srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$srcdir" || exit 2

logdir=$srcdir/build-ci-logs
asan_build=$srcdir/build-ci-asan
fuzz_build=$srcdir/build-ci-fuzz
release_build=$srcdir/build-ci-release
fuzz_runs=${BANGER_FUZZ_RUNS:-20000}
fuzz_max_seconds=${BANGER_FUZZ_MAX_SECONDS:-120}

passed=0
failed=0
failed_parts=()
start_seconds=$SECONDS

if [[ $(id -u) -ne 0 ]]; then
	echo "test.sh: must run as root (apt-get, mounts and systemd-nspawn); run: sudo scripts/test.sh" >&2
	exit 2
fi

rm -rf "$logdir"
mkdir -p "$logdir"

pass() {
	echo "ok   $1"
	passed=$((passed + 1))
}

fail() {
	echo "FAIL $1${2:+: $2}"
	failed=$((failed + 1))
	failed_parts+=("$1")
}

section() {
	echo
	echo "== $*"
}

# Run a command with its output in build-ci-logs/LOG.log. On failure, show
# the last lines of that log.
run_logged() {
	local name=$1 log=$logdir/$2.log
	shift 2
	if "$@" >"$log" 2>&1; then
		pass "$name"
		return 0
	fi
	tail -n 40 "$log" | sed 's/^/    /'
	fail "$name" "see $log"
	return 1
}

# Configure BUILDDIR with the given options. A build directory left from an
# earlier run is reconfigured with the same options.
setup() {
	local builddir=$1
	shift
	if [[ -f $builddir/build.ninja ]]; then
		meson setup --reconfigure "$builddir" "$@" || return 1
	elif [[ -d $builddir/meson-private ]]; then
		# An earlier configure failed half way.
		meson setup --wipe "$builddir" "$@" || return 1
	else
		meson setup "$builddir" "$@" || return 1
	fi
}

setup_and_build() {
	setup "$@" || return 1
	ninja -C "$1" -j2
}

setup_with_clang() {
	(
		export CC=clang
		setup "$@"
	)
}

section "packages"
if [[ ${BANGER_SKIP_DEPS:-} == 1 ]]; then
	echo "skipped (BANGER_SKIP_DEPS=1)"
else
	run_logged "install-deps.sh" install-deps sh "$srcdir/scripts/install-deps.sh"
fi

section "kernel"
run_logged "fetch-kernel.sh" fetch-kernel "$srcdir/integration/fetch-kernel.sh" "$srcdir/integration/cache/kernel"
# The unit suites that boot or import the real kernel read these; without them they skip.
kernel_deb=$(tail -n 1 "$logdir/fetch-kernel.log")
if [[ -f $kernel_deb ]]; then
	export BANGER_TEST_KERNEL_DEB=$kernel_deb
	export BANGER_TEST_KERNEL_DIR=$srcdir/integration/cache/kernel/root
else
	fail "kernel for the unit suites" "fetch-kernel.sh printed no .deb path"
fi

section "shell scripts"
run_logged "shellcheck" shellcheck shellcheck -x -P "$srcdir/integration" \
	"$srcdir"/scripts/*.sh "$srcdir"/integration/*.sh "$srcdir/.ci/run"

section "unit tests under ASan and UBSan"
asan_ok=
if run_logged "build with -Db_sanitize=address,undefined" build-asan \
	setup_and_build "$asan_build" -Db_sanitize=address,undefined -Dbuildtype=debug; then
	asan_ok=yes
	meson test -C "$asan_build" --no-rebuild --num-processes 2 --print-errorlogs \
		>"$logdir/meson-test.log" 2>&1
	# One part per suite, from meson's machine-readable log.
	while IFS=$'\t' read -r name result; do
		if [[ $result == OK ]]; then
			pass "unit $name"
		else
			fail "unit $name" "$result"
		fi
	done < <(jq -r '[.name, .result] | @tsv' "$asan_build/meson-logs/testlog.json" 2>/dev/null)
	if [[ ! -s $asan_build/meson-logs/testlog.json ]]; then
		tail -n 40 "$logdir/meson-test.log" | sed 's/^/    /'
		fail "meson test" "no results in $asan_build/meson-logs/testlog.json"
	fi
	# Check prints a summary line per suite: "NN%: Checks: N, Failures: N, Errors: N".
	grep -h -E '^[0-9]+%: Checks:' "$asan_build/meson-logs/testlog.txt" 2>/dev/null | sed 's/^/    /'
fi

section "fuzz targets"
# The clang build of every target is a part of its own, because clang warns
# where gcc does not. The fuzz targets are then built one by one, so a
# warning elsewhere does not stop the fuzzing.
if run_logged "configure with clang and -Dfuzz=true" configure-fuzz \
	setup_with_clang "$fuzz_build" -Dfuzz=true -Db_sanitize=address,undefined \
	-Db_lundef=false -Dbuildtype=debug; then
	run_logged "build everything with clang" build-clang ninja -C "$fuzz_build" -j2
	fuzz_names=$(meson introspect --targets "$fuzz_build" |
		jq -r '.[] | select(.name | startswith("fuzz-")) | .name | ltrimstr("fuzz-")' | sort)
	for name in $fuzz_names; do
		corpus=$srcdir/tests/fuzz/corpus-$name
		target=$fuzz_build/tests/fuzz-$name
		if ! ninja -C "$fuzz_build" -j2 "tests/fuzz-$name" >"$logdir/build-fuzz-$name.log" 2>&1; then
			fail "fuzz $name" "build failed, see $logdir/build-fuzz-$name.log"
			continue
		fi
		if [[ ! -d $corpus ]]; then
			fail "fuzz $name" "seed corpus $corpus is missing"
			continue
		fi
		# libFuzzer writes new inputs into its first directory, so that is a
		# scratch folder and the seed corpus stays untouched.
		scratch=$(mktemp -d /tmp/banger-fuzz-"$name".XXXXXX)
		run_logged "fuzz $name ($fuzz_runs runs)" "fuzz-$name" \
			"$target" -runs="$fuzz_runs" -max_total_time="$fuzz_max_seconds" \
			-artifact_prefix="$logdir/fuzz-$name-" "$scratch" "$corpus"
		rm -rf "$scratch"
	done
fi

section "release build"
release_ok=
if run_logged "release build" build-release \
	setup_and_build "$release_build" -Dbuildtype=release; then
	release_ok=yes
fi

section "integration scenarios"
# Each scenario runs against the release build and again against the ASan
# and UBSan build, whose daemon reports memory errors in its journal.
for scenario in "$srcdir"/integration/test-*.sh; do
	name=$(basename "$scenario" .sh)
	for variant in release asan; do
		if [[ $variant == release ]]; then
			builddir=$release_build
			built=$release_ok
		else
			builddir=$asan_build
			built=$asan_ok
		fi
		if [[ -z $built ]]; then
			fail "integration $name ($variant)" "skipped because the $variant build failed"
			continue
		fi
		# The scenario prints its own checks, shown here as they run. It
		# takes about 20 s on 2 cores. The limit only stops a hung run,
		# whose traps then stop its container.
		if timeout 900 bash "$scenario" "$builddir" 2>&1 |
			tee "$logdir/$name-$variant.log" | sed 's/^/    /'; then
			pass "integration $name ($variant)"
		else
			fail "integration $name ($variant)" "see $logdir/$name-$variant.log"
		fi
	done
done

echo
if ((failed > 0)); then
	echo "failed parts: ${failed_parts[*]}"
fi
echo "took $((SECONDS - start_seconds)) s"
echo "$passed passed, $failed failed"
((failed == 0))
