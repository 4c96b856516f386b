#!/usr/bin/env bash
# bench/compare.sh — the side-by-side comparison of issue 6 in one command:
# runnel against Redis Streams and NATS JetStream with the same load
# generator design (runnel-bench broker | redis | nats), the same workload
# and stated durability, plus the machine's physical limit measured in the
# same run (raw write + fdatasync inside every row; loopback TCP).
#
#   bench/compare.sh [--quick] [--out DIR] [--duration S] [--rounds N]
#                    [--backlog SIZE] [--build-dir DIR] [--no-install]
#
# Installs what is missing (tools/deps.sh with RN_DEPS_BENCH=1: redis-server,
# nats-server, libhiredis-dev, libnats-dev, gnuplot-nox), builds Release into
# build-bench/, starts every server itself on 127.0.0.1 with its data in a
# temporary directory and stops it by PID (the subcommands do that), and
# writes DIR/RESULTS.md, DIR/results/results.jsonl (one JSON row per line)
# and DIR/results/*.png (default DIR: bench/). See bench/README.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMDLINE="bench/compare.sh $*"

QUICK=0 OUT="$ROOT/bench" DURATION=20 ROUNDS=4 BACKLOG=5G BUILD="$ROOT/build-bench" INSTALL=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) OUT=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --backlog) BACKLOG=$2; shift ;;
    --build-dir) BUILD=$2; shift ;;
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
WARMUP=1
if [ "$QUICK" = 1 ]; then
  # smoke-test sizes: the whole run takes a few minutes; the figures are
  # too short to quote.
  DURATION=2 ROUNDS=2 WARMUP=0.3 BACKLOG=32M
fi

if [ "$INSTALL" = 1 ]; then RN_DEPS_BENCH=1 "$ROOT/tools/deps.sh"; fi
for tool in redis-server nats-server python3; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool not found (run without --no-install)" >&2; exit 1; }
done

# Release build (the generator of an existing build directory is kept)
GEN=(-G Ninja)
[ -f "$BUILD/CMakeCache.txt" ] && GEN=()
cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target runnel-bench runneld -j"$(nproc)" >/dev/null
BENCH="$BUILD/bench/runnel-bench"
for sub in redis nats; do
  "$BENCH" "$sub" --help >/dev/null 2>&1 || { echo "compare.sh: runnel-bench $sub was not built" >&2; exit 1; }
done

mkdir -p "$OUT/results"
RES="$OUT/results"
JSONL="$RES/results.jsonl"
: >"$JSONL"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/runnel-compare.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# ---- machine facts (before) -------------------------------------------------
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
DISK_SRC=$(df -P "$WORK" | awk 'NR==2 {print $1}')
DISK_FS=$(df -PT "$WORK" | awk 'NR==2 {print $2}')
DISK_DEV=$(basename "$(readlink -f "$DISK_SRC")" 2>/dev/null || echo "?")
DISK_MODEL=$(cat "/sys/class/block/${DISK_DEV%%[0-9]*}/device/model" 2>/dev/null | xargs || true)
[ -n "$DISK_MODEL" ] || DISK_MODEL=$(cat "/sys/class/block/${DISK_DEV}/device/vendor" 2>/dev/null | xargs || true)
DISK_ROT=$(cat "/sys/class/block/${DISK_DEV%%[0-9]*}/queue/rotational" 2>/dev/null || echo "?")
python3 - "$RES/meta.json" <<PY
import json, os, platform, sys
def read(p):
    try: return open(p).read().strip()
    except OSError: return "?"
mem = [l for l in read("/proc/meminfo").splitlines() if l.startswith("MemTotal")]
json.dump({
  "command": """$CMDLINE""",
  "quick": $QUICK, "duration_s": float("$DURATION"), "rounds": int("$ROUNDS"), "backlog": "$BACKLOG",
  "date": os.popen("date -u +%Y-%m-%dT%H:%M:%SZ").read().strip(),
  "nproc": os.cpu_count(),
  "cpu": next((l.split(":",1)[1].strip() for l in read("/proc/cpuinfo").splitlines() if l.startswith("model name")), "?"),
  "memory": mem[0].split(":",1)[1].strip() if mem else "?",
  "kernel": platform.release(),
  "os": next((l.split("=",1)[1].strip('"') for l in read("/etc/os-release").splitlines() if l.startswith("PRETTY_NAME=")), "?"),
  "disk": "$DISK_SRC ($DISK_FS; model: ${DISK_MODEL:-?}; rotational: $DISK_ROT)",
  "loadavg_before": read("/proc/loadavg"),
  "packages": {p: os.popen("dpkg-query -W -f='\${Version}' %s 2>/dev/null" % p).read() or "?"
               for p in ["redis-server", "nats-server", "libhiredis-dev", "libnats-dev", "gnuplot-nox", "liburing-dev", "libuv1-dev"]},
}, open(sys.argv[1], "w"), indent=1)
PY

# ---- rows ---------------------------------------------------------------------
COMMON=(--dir "$WORK" --shards 16 --producers 4 --consumers 4 --duration "$DURATION" --rounds "$ROUNDS"
        --warmup "$WARMUP" --json)
# system configurations: name | subcommand and its durability flag. Every system
# reads through its consumer-group mechanism: runnel consumer groups (4 members,
# broker-assigned shards), Redis XREADGROUP, NATS durable pull consumers.
CONFIGS=(
  "runnel-sync|broker --durability sync --use-groups"
  "runnel-interval|broker --durability interval --use-groups"
  "redis-always|redis --fsync always"
  "redis-everysec|redis --fsync everysec"
  "nats-always|nats --sync always"
  "nats-default|nats --sync default"
)

# run LABEL CONFIG ARGS...: one row into results.jsonl. A subcommand that
# exits 3 could not run its durability mode (a blocked row says why); any
# other failure keeps its JSON row (with its error and missing counts) or
# records the failure.
run() {
  local label=$1 cfg=$2; shift 2
  local name=${cfg%%|*} args=${cfg#*|}
  local err="$WORK/stderr" out="$WORK/stdout" rc=0
  echo "compare.sh: $label $name" >&2
  # shellcheck disable=SC2086
  "$BENCH" $args "${COMMON[@]}" --label "$label" "$@" >"$out" 2>"$err" || rc=$?
  python3 "$ROOT/bench/report.py" row --label "$label" --config "$name" --rc "$rc" \
    --stdout "$out" --stderr "$err" >>"$JSONL"
}

"$BENCH" tcp --duration "$([ "$QUICK" = 1 ] && echo 1 || echo 5)" --streams 1 --label tcp-1 --json >>"$JSONL"
"$BENCH" tcp --duration "$([ "$QUICK" = 1 ] && echo 1 || echo 5)" --streams 2 --label tcp-2 --json >>"$JSONL"

# (a) max throughput, 1 KiB records
for c in "${CONFIGS[@]}"; do run a-max-1k "$c" --record-size 1024; done
# (b) fixed rates at 25 % and 50 % of runnel's durable maximum from (a)
MAX=$(python3 "$ROOT/bench/report.py" get --label a-max-1k --config runnel-sync --field records_per_s <"$JSONL")
if [ -z "$MAX" ] || [ "${MAX%.*}" -le 0 ]; then
  echo "compare.sh: no runnel maximum from (a); the fixed-rate rows assume 40000 records/s" >&2
  MAX=40000
fi
for pct in 25 50; do
  RATE=$(( ${MAX%.*} * pct / 100 ))
  for c in "${CONFIGS[@]}"; do run "b-rate-$pct" "$c" --record-size 1024 --rate "$RATE"; done
done
# (c) 100-byte records, max records/s
for c in "${CONFIGS[@]}"; do run c-max-100b "$c" --record-size 100; done
# (d) fan-out: 4 independent consumer groups on one stream
for c in "${CONFIGS[@]}"; do run d-fanout-4 "$c" --record-size 1024 --groups 4; done
# (e) catch-up read of a backlog
for c in "${CONFIGS[@]}"; do run e-catchup "$c" --record-size 1024 --backlog "$BACKLOG" --rounds 1; done

# (f) runnel only: a 4-member group over 16 shards at 25 % of the durable max while
# producers run; member 0 is abandoned (like kill -9) 3 s into the slice
RATE25=$(( ${MAX%.*} * 25 / 100 ))
run f-group-rebalance "runnel-sync|broker --durability sync --use-groups" --record-size 1024 --rate "$RATE25" \
  --session-timeout-ms 3000 --kill-member-at 3 --duration 12 --rounds 1

python3 - "$RES/meta.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["loadavg_after"] = open("/proc/loadavg").read().strip()
json.dump(m, open(sys.argv[1], "w"), indent=1)
PY

python3 "$ROOT/bench/report.py" report --results "$RES" --md "$OUT/RESULTS.md"
echo "compare.sh: wrote $OUT/RESULTS.md and $RES/" >&2
