#!/usr/bin/env bash
# bench/compare.sh — the side-by-side comparison of issues 6 and 12 in one
# command: runnel against Redis Streams, NATS JetStream and Apache Kafka with
# the same load generator (runnel-bench broker | redis | nats | kafka), the
# same workload and stated durability, plus the machine's physical limit
# measured in the same run (raw write + fdatasync inside every row; loopback
# TCP), and runnel's shard sweep (issue 12).
#
#   bench/compare.sh [--quick] [--out DIR] [--duration S] [--rounds N]
#                    [--only all|sweep|peers] [--shards "1 4 16 64 256"]
#                    [--sweep-configs "runnel-sync ..."] [--peers "redis nats kafka"]
#                    [--workloads "a b25 b50 c d e f"] [--backlog SIZE]
#                    [--build-dir DIR] [--no-install]
#
# --only sweep: the shard sweep only (every --sweep-configs system, default
# runnel-sync, at each of --shards: max rate, then a quarter of that max);
# --only peers: the 16-shard workloads (a)-(f) of --workloads with runnel and
# every peer of --peers; all (default): both. --quick: smoke-test sizes
# (2 s per row, workloads "a b25 f" unless given): a few minutes.
#
# Installs what is missing (tools/deps.sh with RN_DEPS_BENCH=1: redis-server,
# libhiredis-dev, libnats-dev, librdkafka-dev, gnuplot-nox, java/maven; then
# bench/peers/nats.sh install (nats-server >= 2.10 via go install) and
# bench/peers/kafka.sh install (Kafka jars from Maven Central) into
# ~/.cache/runnel-bench), builds Release into build-bench/, starts every
# server itself on 127.0.0.1 with its data in a temporary directory and stops
# it by PID (the subcommands do that). A peer that cannot be installed is
# skipped: its rows say "skipped" and why. Writes DIR/RESULTS.md,
# DIR/results/results.jsonl (one JSON row per line) and DIR/results/*.png
# (default DIR: bench/). See bench/README.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMDLINE="bench/compare.sh$(printf " %q" "$@")"

QUICK=0 OUT="$ROOT/bench" DURATION=20 ROUNDS=4 BACKLOG=5G BUILD="$ROOT/build-bench" INSTALL=1
ONLY=all SWEEP_SHARDS="1 4 16 64 256" SWEEP_CONFIGS="runnel-sync" PEERS="redis nats kafka" WORKLOADS=
DURATION_SET=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY=$2; shift ;;
    --shards) SWEEP_SHARDS=$2; shift ;;
    --sweep-configs) SWEEP_CONFIGS=$2; shift ;;
    --peers) PEERS=$2; shift ;;
    --workloads) WORKLOADS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --duration) DURATION=$2; DURATION_SET=1; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --backlog) BACKLOG=$2; shift ;;
    --build-dir) BUILD=$2; shift ;;
    --no-install) INSTALL=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
case "$ONLY" in all|sweep|peers) ;; *) echo "compare.sh: --only must be all, sweep or peers" >&2; exit 2 ;; esac
# Kafka runs in a JVM: its rows get a longer unmeasured warm-up (JIT, page
# cache) so the measured slices are not its start-up.
WARMUP=1 KAFKA_WARMUP=10
if [ "$QUICK" = 1 ]; then
  # smoke-test sizes: the whole run takes a few minutes; the figures are
  # too short to quote.
  ROUNDS=2 WARMUP=0.3 KAFKA_WARMUP=2 BACKLOG=32M
  [ "$DURATION_SET" = 1 ] || DURATION=2
  # a JVM start per row: Kafka runs only the workloads of the issue-12 targets
  [ -n "$WORKLOADS" ] || KAFKA_WORKLOADS="a b25"
fi
[ -n "$WORKLOADS" ] || WORKLOADS="a b25 b50 c d e f"
[ -n "${KAFKA_WORKLOADS:-}" ] || KAFKA_WORKLOADS=$WORKLOADS
want() { case " $WORKLOADS " in *" $1 "*) return 0 ;; esac; return 1; }
has_peer() { case " $PEERS " in *" $1 "*) return 0 ;; esac; return 1; }

if [ "$INSTALL" = 1 ]; then RN_DEPS_BENCH=1 "$ROOT/tools/deps.sh"; fi
command -v python3 >/dev/null || { echo "compare.sh: python3 not found (run without --no-install)" >&2; exit 1; }

# ---- peers: install what is missing, or say why a peer is skipped --------------
# SKIP[config]=reason: every row of that config becomes {"skipped": reason}.
declare -A SKIP=()
PEER_NOTES=()
NATS_BIN= KAFKA_LIBS=
need_peers=0
{ [ "$ONLY" != sweep ] || [ "$SWEEP_CONFIGS" != runnel-sync ]; } && need_peers=1
if [ "$need_peers" = 1 ]; then
  ERRF=$(mktemp)
  PEER_CACHE=${RUNNEL_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runnel-bench}
  if has_peer redis && ! command -v redis-server >/dev/null; then
    SKIP[redis-always]="redis-server not found (Debian redis-server; run without --no-install)"
    SKIP[redis-everysec]=${SKIP[redis-always]}
  fi
  if has_peer nats; then
    # --no-install: only what is already in the cache (no registry access)
    if [ "$INSTALL" = 1 ] || [ -x "$PEER_CACHE/nats-server-${NATS_VERSION:-v2.14.10}/nats-server" ]; then
      NATS_BIN=$("$ROOT/bench/peers/nats.sh" install 2>"$ERRF") || NATS_BIN=
    fi
    if [ -z "$NATS_BIN" ]; then
      why=$(tail -1 "$ERRF" 2>/dev/null || true)
      why=${why:-"nats-server >= 2.10 not installed (--no-install)"}
      if command -v nats-server >/dev/null; then
        NATS_BIN=$(command -v nats-server)
        PEER_NOTES+=("nats: $why; using $NATS_BIN ($("$NATS_BIN" --version 2>&1 | head -1)) — its durable row is blocked if it predates 2.10")
      else
        SKIP[nats-always]="$why"; SKIP[nats-default]="$why"
      fi
    fi
    : >"$ERRF"
  fi
  if has_peer kafka; then
    if [ "$INSTALL" = 1 ] || [ -n "${RUNNEL_KAFKA_LIBS:-}" ] ||
       [ -f "$PEER_CACHE/kafka-${KAFKA_VERSION:-4.1.1}/libs/kafka_2.13-${KAFKA_VERSION:-4.1.1}.jar" ]; then
      KAFKA_LIBS=${RUNNEL_KAFKA_LIBS:-$("$ROOT/bench/peers/kafka.sh" install 2>"$ERRF")} || KAFKA_LIBS=
    fi
    if [ -z "$KAFKA_LIBS" ]; then
      why=$(tail -1 "$ERRF" 2>/dev/null || true)
      SKIP[kafka-always]=${why:-"Kafka jars not installed (--no-install, none cached, no RUNNEL_KAFKA_LIBS)"}
      SKIP[kafka-default]=${SKIP[kafka-always]}
    fi
  fi
  rm -f "$ERRF"
fi
for k in "${!SKIP[@]}"; do echo "compare.sh: skipping $k: ${SKIP[$k]}" >&2; done

# Release build (the generator of an existing build directory is kept)
GEN=(-G Ninja)
[ -f "$BUILD/CMakeCache.txt" ] && GEN=()
cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target runnel-bench runneld -j"$(nproc)" >/dev/null
BENCH="$BUILD/bench/runnel-bench"
for sub in redis nats kafka; do
  if ! "$BENCH" "$sub" --help >/dev/null 2>&1; then
    why="runnel-bench $sub was not built (its C client library was missing at configure time)"
    for c in "$sub-always" "$sub-everysec" "$sub-default"; do [ -n "${SKIP[$c]:-}" ] || SKIP[$c]=$why; done
    echo "compare.sh: $why" >&2
  fi
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
CMP_CMDLINE=$CMDLINE CMP_ONLY=$ONLY CMP_WORKLOADS=$WORKLOADS CMP_SWEEP_SHARDS=$SWEEP_SHARDS CMP_SWEEP_CONFIGS=$SWEEP_CONFIGS \
CMP_WARMUP=$WARMUP CMP_KAFKA_WARMUP=$KAFKA_WARMUP CMP_NATS_BIN=$NATS_BIN CMP_KAFKA_LIBS=$KAFKA_LIBS \
CMP_PEER_NOTES=$(printf '%s\n' "${PEER_NOTES[@]}") \
CMP_SKIPS=$(for k in "${!SKIP[@]}"; do printf '%s=%s\n' "$k" "${SKIP[$k]}"; done) \
python3 - "$RES/meta.json" <<PY
import json, os, platform, sys
def read(p):
    try: return open(p).read().strip()
    except OSError: return "?"
mem = [l for l in read("/proc/meminfo").splitlines() if l.startswith("MemTotal")]
json.dump({
  "command": os.environ["CMP_CMDLINE"],
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
               for p in ["redis-server", "nats-server", "libhiredis-dev", "libnats-dev", "librdkafka-dev", "gnuplot-nox",
                         "liburing-dev", "libuv1-dev"]},
  "only": os.environ["CMP_ONLY"], "workloads": os.environ["CMP_WORKLOADS"].split(),
  "sweep_shards": [int(x) for x in os.environ["CMP_SWEEP_SHARDS"].split()],
  "sweep_configs": os.environ["CMP_SWEEP_CONFIGS"].split(),
  "warmup_s": float(os.environ["CMP_WARMUP"]), "kafka_warmup_s": float(os.environ["CMP_KAFKA_WARMUP"]),
  "peers": {
    "nats-server used": os.popen("'%s' --version 2>&1" % os.environ["CMP_NATS_BIN"]).read().strip() if os.environ["CMP_NATS_BIN"] else "not installed",
    "nats-server used, path": os.environ["CMP_NATS_BIN"] or "—",
    "kafka broker jars": os.environ["CMP_KAFKA_LIBS"] or "not installed",
    "java (kafka broker)": os.popen("java -version 2>&1").read().splitlines()[0] if os.environ["CMP_KAFKA_LIBS"] else "—",
  },
  "peer_notes": [l for l in os.environ["CMP_PEER_NOTES"].split("\n") if l],
  "skipped": dict(l.split("=", 1) for l in os.environ["CMP_SKIPS"].split("\n") if "=" in l),
}, open(sys.argv[1], "w"), indent=1)
PY

# ---- rows ---------------------------------------------------------------------
COMMON=(--dir "$WORK" --producers 4 --duration "$DURATION" --rounds "$ROUNDS" --warmup "$WARMUP" --json)
# system configurations: name | subcommand and its durability flag. Every system
# reads through its consumer-group mechanism: runnel consumer groups (4 members,
# broker-assigned shards), Redis XREADGROUP, NATS durable pull consumers, Kafka
# consumer groups.
ALL_CONFIGS=(
  "runnel-sync|broker --durability sync --use-groups"
  "runnel-interval|broker --durability interval --use-groups"
  "redis-always|redis --fsync always"
  "redis-everysec|redis --fsync everysec"
  "nats-always|nats --sync always"
  "nats-default|nats --sync default"
  "kafka-always|kafka --flush always"
  "kafka-default|kafka --flush default"
)
CONFIGS=()
for c in "${ALL_CONFIGS[@]}"; do
  sys=${c%%-*}
  [ "$sys" = runnel ] || has_peer "$sys" && CONFIGS+=("$c")
done
config_of() { local c; for c in "${ALL_CONFIGS[@]}"; do [ "${c%%|*}" = "$1" ] && { echo "$c"; return 0; }; done; return 1; }

# run LABEL CONFIG SHARDS ARGS...: one row into results.jsonl. A config that
# could not be installed gets a skipped row saying why; a subcommand that
# exits 3 could not run its durability mode (a blocked row says why); any
# other failure keeps its JSON row (with its error and missing counts) or
# records the failure.
run() {
  local label=$1 cfg=$2 shards=$3; shift 3
  local name=${cfg%%|*} args=${cfg#*|}
  case "$name:$label" in
    kafka-*:a-*|kafka-*:b-rate-*|kafka-*:c-*|kafka-*:d-*|kafka-*:e-*)
      local w=${label%%-*}; [ "$w" = b ] && w=b${label##*-}
      case " $KAFKA_WORKLOADS " in *" $w "*) ;; *) return 0 ;; esac ;;
  esac
  local err="$WORK/stderr" out="$WORK/stdout" rc=0
  local consumers=$(( shards < 4 ? shards : 4 ))
  local extra=()
  case "$name" in
    nats-*) extra=(--nats-server "$NATS_BIN") ;;
    kafka-*) extra=(--kafka-libs "$KAFKA_LIBS" --warmup "$KAFKA_WARMUP") ;;
  esac
  if [ -n "${SKIP[$name]:-}" ]; then
    echo "compare.sh: $label $name: skipped (${SKIP[$name]})" >&2
    python3 "$ROOT/bench/report.py" skip --label "$label" --config "$name" --shards "$shards" \
      --reason "${SKIP[$name]}" >>"$JSONL"
    return 0
  fi
  echo "compare.sh: $label $name ($shards shards) $(date -u +%H:%M:%S)" >&2
  # shellcheck disable=SC2086
  "$BENCH" $args "${COMMON[@]}" --shards "$shards" --consumers "$consumers" "${extra[@]}" --label "$label" "$@" \
    >"$out" 2>"$err" || rc=$?
  python3 "$ROOT/bench/report.py" row --label "$label" --config "$name" --rc "$rc" \
    --stdout "$out" --stderr "$err" >>"$JSONL"
}
# field LABEL CONFIG FIELD: a field of a row already measured ("" if none)
field() { python3 "$ROOT/bench/report.py" get --label "$1" --config "$2" --field "$3" <"$JSONL"; }

"$BENCH" tcp --duration "$([ "$QUICK" = 1 ] && echo 1 || echo 5)" --streams 1 --label tcp-1 --json >>"$JSONL"
"$BENCH" tcp --duration "$([ "$QUICK" = 1 ] && echo 1 || echo 5)" --streams 2 --label tcp-2 --json >>"$JSONL"

# ---- the shard sweep (issue 12) ----------------------------------------------
# Each config of --sweep-configs at every shard count: its maximum (records/s
# and the ratio to the raw loop of the same row), then a quarter of that
# maximum (publish and end-to-end percentiles). 4 producers; min(4, shards)
# consumers in a group.
if [ "$ONLY" != peers ]; then
  for name in $SWEEP_CONFIGS; do
    cfg=$(config_of "$name") || { echo "compare.sh: unknown sweep config $name" >&2; exit 2; }
    for n in $SWEEP_SHARDS; do
      run "sweep-max-$n" "$cfg" "$n" --record-size 1024
      SMAX=$(field "sweep-max-$n" "$name" records_per_s)
      if [ -n "$SMAX" ] && [ "${SMAX%.*}" -gt 0 ]; then
        run "sweep-q25-$n" "$cfg" "$n" --record-size 1024 --rate $(( ${SMAX%.*} / 4 ))
      else
        echo "compare.sh: no maximum for $name at $n shards: no quarter-rate row" >&2
      fi
    done
  done
fi

# ---- the 16-shard workloads with the peers (issues 6 and 12) ------------------
if [ "$ONLY" != sweep ]; then
  # (a) max throughput, 1 KiB records
  want a && for c in "${CONFIGS[@]}"; do run a-max-1k "$c" 16 --record-size 1024; done
  # (b) fixed rates at 25 % and 50 % of runnel's durable maximum from (a)
  MAX=$(field a-max-1k runnel-sync records_per_s)
  [ -n "$MAX" ] || MAX=$(field sweep-max-16 runnel-sync records_per_s)
  if [ -z "$MAX" ] || [ "${MAX%.*}" -le 0 ]; then
    echo "compare.sh: no runnel maximum from (a); the fixed-rate rows assume 40000 records/s" >&2
    MAX=40000
  fi
  for pct in 25 50; do
    want "b$pct" || continue
    RATE=$(( ${MAX%.*} * pct / 100 ))
    for c in "${CONFIGS[@]}"; do run "b-rate-$pct" "$c" 16 --record-size 1024 --rate "$RATE"; done
  done
  # (c) 100-byte records, max records/s
  want c && for c in "${CONFIGS[@]}"; do run c-max-100b "$c" 16 --record-size 100; done
  # (d) fan-out: 4 independent consumer groups on one stream
  want d && for c in "${CONFIGS[@]}"; do run d-fanout-4 "$c" 16 --record-size 1024 --groups 4; done
  # (e) catch-up read of a backlog
  want e && for c in "${CONFIGS[@]}"; do run e-catchup "$c" 16 --record-size 1024 --backlog "$BACKLOG" --rounds 1; done

  # (f) runnel only: a 4-member group over 16 shards at 25 % of the durable max while
  # producers run; member 0 is abandoned (like kill -9) 3 s into the slice
  if want f; then
    RATE25=$(( ${MAX%.*} * 25 / 100 ))
    run f-group-rebalance "runnel-sync|broker --durability sync --use-groups" 16 --record-size 1024 --rate "$RATE25" \
      --session-timeout-ms 3000 --kill-member-at 3 --duration 12 --rounds 1
  fi
fi

python3 - "$RES/meta.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["loadavg_after"] = open("/proc/loadavg").read().strip()
json.dump(m, open(sys.argv[1], "w"), indent=1)
PY

python3 "$ROOT/bench/report.py" report --results "$RES" --md "$OUT/RESULTS.md"
echo "compare.sh: wrote $OUT/RESULTS.md and $RES/" >&2
