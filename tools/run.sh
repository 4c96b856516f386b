#!/usr/bin/env bash
# Install what is missing, build (release), and run runnel on this machine.
#
# The broker daemon (runneld) is not built yet: until it lands this runs the
# storage benchmark against ./data, which exercises the same log the broker
# will sit on and prints its throughput next to the disk's raw
# write+fdatasync limit. Extra arguments go to `runnel-bench storage`.
set -euo pipefail
cd "$(dirname "$0")/.."

./tools/deps.sh

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build

mkdir -p data
echo "runneld is not built yet; running the storage benchmark on ./data instead." >&2
exec ./build/bench/runnel-bench storage --dir ./data --total 256M "$@"
