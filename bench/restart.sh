#!/usr/bin/env bash
# bench/restart.sh — how long runneld takes to serve again after kill -9
# (issue 12: "restart after kill -9 with 10 GB over 64 shards under 3 s
# cold"). One run:
#
#   bench/restart.sh [--shards N] [--size GB] [--build-dir DIR] [--dir DIR]
#                    [--durability sync|interval|none] [--label TEXT]
#
# Starts runneld (127.0.0.1, run-time ports, data in a fresh directory under
# --dir, default ./data), fills one stream of N shards with about SIZE GB
# through `runnel-bench broker --backlog` (4 producers; one consumer reads it
# back once), kills runneld
# with SIGKILL while it is idle, then restarts it twice on the same data:
# once with a warm page cache, and - after another kill -9 and
# `echo 3 > /proc/sys/vm/drop_caches` (root; skipped with a reason
# otherwise) - once cold. Each restart is timed from exec to the moment the
# broker writes its port file (it listens only after every log is open and
# recovered). Prints one JSON line per restart; stops runneld by PID and
# removes the data at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARDS=64 SIZE=10 BUILD="$ROOT/build-bench" DIR="$PWD/data" DUR=none LABEL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --shards) SHARDS=$2; shift ;;
    --size) SIZE=$2; shift ;;
    --build-dir) BUILD=$2; shift ;;
    --dir) DIR=$2; shift ;;
    --durability) DUR=$2; shift ;;
    --label) LABEL=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "restart.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
RUNNELD="$BUILD/broker/runneld" BENCH="$BUILD/bench/runnel-bench"
for b in "$RUNNELD" "$BENCH"; do [ -x "$b" ] || { echo "restart.sh: $b not built (cmake --build $BUILD)" >&2; exit 1; }; done
mkdir -p "$DIR"
WORK=$(mktemp -d "$DIR/restart.XXXXXX")
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

start() { # start runneld; sets PID, ADDR and SECS (seconds until it listens)
  rm -f "$WORK/ports"
  local t0; t0=$(date +%s.%N)
  "$RUNNELD" --data-dir "$WORK/data" --listen 127.0.0.1:0 --http 127.0.0.1:0 --port-file "$WORK/ports" \
    --log-level warn >>"$WORK/runneld.log" 2>&1 &
  PID=$!
  while [ ! -s "$WORK/ports" ]; do
    kill -0 "$PID" 2>/dev/null || { echo "restart.sh: runneld exited; see $WORK/runneld.log" >&2; cat "$WORK/runneld.log" >&2; exit 1; }
    sleep 0.01
  done
  local t1; t1=$(date +%s.%N)
  ADDR=127.0.0.1:$(awk '{print $1; exit}' "$WORK/ports") # the port file holds "NATIVE HTTP"
  SECS=$(python3 -c "print(f'{$t1-$t0:.3f}')")
}
kill9() { kill -9 "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

start
# About SIZE GB: 4 producers as fast as they go, until that much is stored.
BYTES=$(python3 -c "print(int($SIZE*1e9))")
RUNNEL_BENCH_KEEP_STREAM=1 "$BENCH" broker --broker "$ADDR" --dir "$WORK" --durability "$DUR" --shards "$SHARDS" \
  --producers 4 --consumers 1 --backlog "$BYTES" --rounds 1 --duration 1 --warmup 0 --json >"$WORK/fill.json" 2>>"$WORK/fill.log" || {
  echo "restart.sh: fill failed; see $WORK/fill.log" >&2; cat "$WORK/fill.log" >&2; exit 1; }
STORED=$(du -sb "$WORK/data/streams" | awk '{print $1}')
kill9
for cache in warm cold; do
  note=""
  if [ "$cache" = cold ]; then
    sync
    if ! { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then note="cannot drop the page cache (not root): measured warm"; fi
  fi
  start
  secs=$SECS
  kill9
  printf '{"bench":"restart","label":"%s","shards":%s,"stored_bytes":%s,"durability":"%s","cache":"%s","serve_again_s":%s,"note":"%s"}\n' \
    "$LABEL" "$SHARDS" "$STORED" "$DUR" "$cache" "$secs" "$note"
done
