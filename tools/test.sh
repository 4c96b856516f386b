#!/usr/bin/env bash
# Install what is missing, then two builds, warnings as errors in both:
#   1. AddressSanitizer + UndefinedBehaviorSanitizer: every test except the
#      `slow` label;
#   2. ThreadSanitizer: the `unit` and `integration` labels (the broker's
#      threads: the I/O thread pool, librunnel's I/O thread, the loggers).
# This is the README's test command and exactly what .ci/run runs. Extra
# arguments go to ctest in both stages (e.g. -L fault, -R test_log);
# RN_TSAN_STAGE=0 skips the second stage. Both builds arm the loop-thread
# blocking check (RN_BLOCKING_CHECK): a blocking file operation on runneld's
# event-loop thread aborts the test that reached it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

./tools/deps.sh

BUILD=${RN_BUILD_DIR:-build-test}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DRN_WERROR=ON -DRN_ASAN=ON -DRN_UBSAN=ON -DRN_BLOCKING_CHECK=ON >/dev/null
cmake --build "$BUILD"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd "$BUILD" && ctest --output-on-failure -j"$(nproc)" -LE slow "$@")

if [ "${RN_TSAN_STAGE:-1}" != 0 ]; then
  TSAN_BUILD=${RN_TSAN_BUILD_DIR:-build-tsan}
  cmake -S . -B "$TSAN_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DRN_WERROR=ON -DRN_TSAN=ON -DRN_BLOCKING_CHECK=ON >/dev/null
  cmake --build "$TSAN_BUILD"
  # A data race report fails the test (exit status 66), in runneld too.
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
  cd "$ROOT/$TSAN_BUILD"
  ctest --output-on-failure -j"$(nproc)" -L 'unit|integration' -LE slow "$@"
fi
