#!/usr/bin/env bash
# bench/sink.sh — what an archive sink delivers against what the stream
# takes in (issue 14, "What it must show" 4). One run, one broker, every
# figure side by side so they are ratios on a shared, noisy machine:
#
#   bench/sink.sh [--records N] [--shards S] [--producers P] [--rounds R] [--interval D]
#                 [--dest-dir DIR] [--build-dir DIR] [--dir DIR] [--label TEXT]
#
# Starts runneld (127.0.0.1, run-time ports, data in a fresh directory under
# --dir, default ./data; sync durability), makes N JSON events of ~300 bytes
# (event_uuid, event_type, created_at, user_id, a payload: the seeds'
# mobile events) split over P `runnelctl produce` processes, then per round:
#
#   produce   the N events into a fresh stream of S shards with nothing
#             reading it: the stream's durable produce rate (records/s);
#   parquet   a Parquet sink (snappy, hourly partitions by event type) on
#             that stream, created at earliest: the time from its creation
#             until its lag is 0 gives its records/s, over the produce rate;
#   ndjson    the same with an NDJSON.gz sink;
#   live      both sinks on a fresh stream while the N events are produced
#             at full speed: the produce rate with sinks attached, and how
#             long after the last acknowledgement the sinks' lag was 0;
#   dedup     when runnelctl has --dedup-field: the N events into a stream
#             with a 1 h window on event_uuid against one without (ratio).
#
# Sinks buffer 5 MiB per shard or --interval (default 100ms: each shard's
# last, partial buffer would otherwise wait the interval out and the timing
# would measure the wait, not the delivery).
# Objects go to --dest-dir (default: under the run's directory, the same
# disk as the broker's data) through a file:/// destination: no S3 stand-in
# takes CPU from the broker on a 2-core machine. Prints one JSON line per
# measurement and a summary line {"bench":"sink","what":"summary",...};
# runneld is stopped by PID and the data removed at the end (kept with its
# log on failure). The target of the issue: a sink keeps up with a stream at
# half the broker's durable maximum, i.e. sink/produce >= 0.5.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RECORDS=200000 SHARDS=4 PRODUCERS=2 ROUNDS=2 INTERVAL=100ms
BUILD="$ROOT/build-bench" DIR="$PWD/data" LABEL="" DEST_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --records) RECORDS=$2; shift ;;
    --shards) SHARDS=$2; shift ;;
    --producers) PRODUCERS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --interval) INTERVAL=$2; shift ;;
    --dest-dir) DEST_DIR=$2; shift ;;
    --build-dir) BUILD=$2; shift ;;
    --dir) DIR=$2; shift ;;
    --label) LABEL=$2; shift ;;
    -h|--help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "sink.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
RUNNELD="$BUILD/broker/runneld" CTL="$BUILD/tools/runnelctl"
for b in "$RUNNELD" "$CTL"; do [ -x "$b" ] || { echo "sink.sh: $b not built (cmake --build $BUILD)" >&2; exit 1; }; done
"$CTL" sink create --help >/dev/null 2>&1 || { echo "sink.sh: this runnelctl has no sinks" >&2; exit 1; }
mkdir -p "$DIR"
WORK=$(mktemp -d "$DIR/sink.XXXXXX")
WORK=$(cd "$WORK" && pwd)
DEST=${DEST_DIR:-$WORK/objects}
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
PID= OK=0
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  wait 2>/dev/null || true
  [ -n "$DEST_DIR" ] && rm -rf "$DEST"
  if [ "$OK" = 1 ]; then rm -rf "$WORK"; else echo "sink.sh: kept $WORK (runneld.log)" >&2; fi
}
trap cleanup EXIT
now() { date +%s.%N; }
py() { python3 -c "$@"; }

"$RUNNELD" --data-dir "$WORK/data" --listen 127.0.0.1:0 --http 127.0.0.1:0 --port-file "$WORK/ports" \
  --log-level warn >>"$WORK/runneld.log" 2>&1 &
PID=$!
while [ ! -s "$WORK/ports" ]; do
  kill -0 "$PID" 2>/dev/null || { echo "sink.sh: runneld exited; see $WORK/runneld.log" >&2; cat "$WORK/runneld.log" >&2; exit 1; }
  sleep 0.01
done
read -r NATIVE HTTP <"$WORK/ports"
ADDR=127.0.0.1:$NATIVE
ctl() { "$CTL" --broker "$ADDR" "$@"; }

cat >"$WORK/events.yaml" <<'EOF'
columns:
  - {name: event_uuid, type: string, nullable: false}
  - {name: event_type, type: string}
  - {name: created_at, type: timestamp}
  - {name: user_id, type: int64}
  - {name: app_version, type: string}
  - {name: payload, type: string}
metadata: [partition_key, shard, offset, arrival_time]
compression: snappy
EOF

# N events of ~300 bytes, over 3 hours of created_at, split over the producers
py "
import random, uuid
r = random.Random(14); n, p = $RECORDS, $PRODUCERS
outs = [open('$WORK/events.%d' % i, 'w') for i in range(p)]
types = ['app_open', 'screen_view', 'purchase', 'ad_click', 'app_close']
alpha = 'abcdefghijklmnopqrstuvwxyz0123456789'
for i in range(n):
    u = uuid.UUID(int=r.getrandbits(128), version=4)
    pay = ''.join(r.choice(alpha) for _ in range(150))
    line = '{\"event_uuid\":\"%s\",\"event_type\":\"%s\",\"created_at\":\"2026-12-02T%02d:%02d:%02dZ\",\"user_id\":%d,\"app_version\":\"4.%d.%d\",\"payload\":\"%s\"}' % (
        u, types[i % 5], 5 + i % 3, (i // 60) % 60, i % 60, r.randrange(10**6), i % 10, i % 7, pay)
    outs[i % p].write(line + '\n')
"
BYTES=$(cat "$WORK"/events.* | wc -c)

# produce STREAM: prints records/s; fails when a record failed
produce() {
  local t0 t1 pids=()
  t0=$(now)
  for i in $(seq 0 $((PRODUCERS - 1))); do
    ctl --json produce --key-field event_uuid "$1" <"$WORK/events.$i" >"$WORK/produce.$i.json" 2>"$WORK/produce.$i.err" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { echo "sink.sh: produce to $1 failed: $(cat "$WORK"/produce.*.err)" >&2; exit 1; }; done
  t1=$(now)
  py "print(f'{$RECORDS/($t1-$t0):.1f}')"
}
lag() { ctl --json sink describe "$1" | py 'import json,sys; d=json.load(sys.stdin); print(d["lag_records"], d["records"], d["error_records"])'; }
# wait_caught_up SINK: until its lag is 0 with every record delivered (bounded); prints the time
wait_caught_up() {
  local l r e
  for _ in $(seq 1 60000); do
    read -r l r e < <(lag "$1")
    if [ "$l" = 0 ] && [ "$((r + e))" -ge "$RECORDS" ]; then
      [ "$e" = 0 ] || { echo "sink.sh: sink $1 sent $e records to its error prefix" >&2; exit 1; }
      now; return 0
    fi
    sleep 0.02
  done
  echo "sink.sh: sink $1 did not catch up; see $WORK/runneld.log" >&2; exit 1
}
sink_create() { # NAME STREAM FORMAT
  local extra=()
  [ "$3" = parquet ] && extra=(--format parquet --schema "$WORK/events.yaml")
  [ "$3" = ndjson ] && extra=(--format ndjson --compression gzip)
  ctl sink create "$1" --stream "$2" --to "file://$DEST/$1/" "${extra[@]}" --buffer-bytes 5MiB --buffer-interval "$INTERVAL" \
    --prefix 'event_type=!{field:event_type}/!{timestamp:yyyy/MM/dd/HH}/' --event-time-field created_at >/dev/null
}
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"; }
du_b() { du -sb "$1" | cut -f1; }

HAS_DEDUP=0
ctl stream create --help 2>&1 | grep -q -- --dedup-field && HAS_DEDUP=1
declare -a P PQ ND LIVE_P LIVE_LAG DD_ON DD_OFF
for r in $(seq 1 "$ROUNDS"); do
  s=s$r
  ctl stream create "$s" --shards "$SHARDS" --retention forever >/dev/null
  p=$(produce "$s"); P+=("$p")
  echo "{\"bench\":\"sink\",\"what\":\"produce\",\"round\":$r,\"records_per_s\":$p,\"records\":$RECORDS,\"bytes\":$BYTES}"
  for f in parquet ndjson; do
    c0=$(cpu_s "$PID"); t0=$(now)
    sink_create "$f$r" "$s" "$f"
    t1=$(wait_caught_up "$f$r")
    c1=$(cpu_s "$PID")
    rate=$(py "print(f'{$RECORDS/($t1-$t0):.1f}')")
    out=$(du_b "$DEST/$f$r")
    echo "{\"bench\":\"sink\",\"what\":\"$f\",\"round\":$r,\"records_per_s\":$rate,\"over_produce\":$(py "print(f'{$rate/$p:.3f}')"),\"object_bytes\":$out,\"input_bytes\":$BYTES,\"broker_cpu_s\":$(py "print(f'{$c1-$c0:.2f}')"),\"wall_s\":$(py "print(f'{$t1-$t0:.2f}')")}"
    if [ "$f" = parquet ]; then PQ+=("$rate"); else ND+=("$rate"); fi
    ctl sink delete "$f$r" >/dev/null
  done
  # live: both sinks attached while producing at full speed
  l=live$r
  ctl stream create "$l" --shards "$SHARDS" --retention forever >/dev/null
  sink_create "lp$r" "$l" parquet
  sink_create "ln$r" "$l" ndjson
  t0=$(now)
  lp=$(produce "$l")
  tp=$(now)
  ta=$(wait_caught_up "lp$r"); tb=$(wait_caught_up "ln$r")
  after=$(py "print(f'{max($ta,$tb)-$tp:.2f}')")
  LIVE_P+=("$lp"); LIVE_LAG+=("$after")
  echo "{\"bench\":\"sink\",\"what\":\"live\",\"round\":$r,\"produce_records_per_s\":$lp,\"over_produce\":$(py "print(f'{$lp/$p:.3f}')"),\"caught_up_s_after_last_ack\":$after}"
  ctl sink delete "lp$r" >/dev/null; ctl sink delete "ln$r" >/dev/null
  ctl stream delete "$l" >/dev/null; ctl stream delete "$s" >/dev/null
  rm -rf "${DEST:?}"/*
  if [ "$HAS_DEDUP" = 1 ]; then
    for mode in off on; do
      d=dd$mode$r
      if [ $mode = on ]; then
        ctl stream create "$d" --shards "$SHARDS" --retention forever --dedup-field event_uuid --dedup-window 1h >/dev/null
      else
        ctl stream create "$d" --shards "$SHARDS" --retention forever >/dev/null
      fi
      x=$(produce "$d")
      if [ $mode = on ]; then DD_ON+=("$x"); else DD_OFF+=("$x"); fi
      ctl stream delete "$d" >/dev/null
    done
    echo "{\"bench\":\"sink\",\"what\":\"dedup\",\"round\":$r,\"with_records_per_s\":${DD_ON[-1]},\"without_records_per_s\":${DD_OFF[-1]},\"ratio\":$(py "print(f'{${DD_ON[-1]}/${DD_OFF[-1]}:.3f}')")}"
  fi
done
med() { py "import statistics,sys; print(statistics.median([float(x) for x in sys.argv[1:]]))" "$@"; }
mp=$(med "${P[@]}") mq=$(med "${PQ[@]}") mn=$(med "${ND[@]}") ml=$(med "${LIVE_P[@]}") mg=$(med "${LIVE_LAG[@]}")
dd=null
[ "$HAS_DEDUP" = 1 ] && dd=$(py "print(f'{$(med "${DD_ON[@]}")/$(med "${DD_OFF[@]}"):.3f}')")
echo "{\"bench\":\"sink\",\"what\":\"summary\",\"label\":\"$LABEL\",\"records\":$RECORDS,\"shards\":$SHARDS,\"producers\":$PRODUCERS,\"rounds\":$ROUNDS,\"interval\":\"$INTERVAL\",\"produce_records_per_s\":$mp,\"parquet_records_per_s\":$mq,\"ndjson_records_per_s\":$mn,\"parquet_over_produce\":$(py "print(f'{$mq/$mp:.3f}')"),\"ndjson_over_produce\":$(py "print(f'{$mn/$mp:.3f}')"),\"live_produce_over_produce\":$(py "print(f'{$ml/$mp:.3f}')"),\"live_caught_up_s_after_last_ack\":$mg,\"dedup_ratio\":$dd,\"target_sink_over_produce\":0.5}"
OK=1
