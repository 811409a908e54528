#!/bin/sh
# Fails when a tracked C file differs from what the repository's .clang-format produces.
set -eu
cd "$(dirname "$0")/.."
git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror
