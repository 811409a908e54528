#!/bin/bash
# Run the scope suite (tests/test-scope) against a real systemd: boot a
# throwaway container with integration/lib-container.sh and run the suite
# inside it as root. On a host without systemd as PID 1 the suite skips its
# live cases, so this script is how they run.
#
# Usage: tests/scope-in-container.sh [BUILDDIR]
#
# BUILDDIR (default build beside this folder) must be a finished meson
# build. It is installed into the container. Its tests/test-scope runs there
# from the same path, because the container's root is an overlay over the
# host's /. Must run as root.
# Exits with the suite's status.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srcdir=$(dirname "$here")
builddir=$(cd "${1:-$srcdir/build}" 2>/dev/null && pwd) || {
	echo "scope-in-container: build directory ${1:-$srcdir/build} not found; run meson setup and ninja first" >&2
	exit 2
}
[[ -x $builddir/tests/test-scope ]] || {
	echo "scope-in-container: $builddir/tests/test-scope is missing; run ninja -C $builddir" >&2
	exit 2
}

# shellcheck source=integration/lib-container.sh
source "$srcdir/integration/lib-container.sh"
ct_install_traps

ct_boot "scope-$$" "$builddir" || exit 1
ct_run --setenv CK_VERBOSITY=verbose -- "$builddir/tests/test-scope"
