#!/usr/bin/env bash
# Install what is missing, build with AddressSanitizer + UndefinedBehavior-
# Sanitizer and warnings as errors, and run the whole test suite except the
# `slow` label. This is the README's test command and exactly what .ci/run
# runs. Extra arguments go to ctest (e.g. -L fault, -R test_log).
set -euo pipefail
cd "$(dirname "$0")/.."

./tools/deps.sh

BUILD=${RN_BUILD_DIR:-build-test}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DRN_WERROR=ON -DRN_ASAN=ON -DRN_UBSAN=ON >/dev/null
cmake --build "$BUILD"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$BUILD"
ctest --output-on-failure -j"$(nproc)" -LE slow "$@"
