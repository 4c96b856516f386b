#!/usr/bin/env bash
# Install what is missing, build (release), and start one broker on the
# embedded default configuration: data under ./data, native protocol on
# 127.0.0.1:7400, HTTP (/healthz) on 127.0.0.1:7480. Extra arguments go to
# runneld (see `./build/broker/runneld --help`). Stop it with Ctrl-C (SIGINT):
# it finishes in-flight appends, syncs and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

./tools/deps.sh

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build

exec ./build/broker/runneld "$@"
