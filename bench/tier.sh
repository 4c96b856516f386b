#!/usr/bin/env bash
# bench/tier.sh — what tiered storage costs and what it reads back at
# (issue 13, "What it must show" 5). One run, one broker, everything side
# by side so the figures are ratios on a shared, noisy machine:
#
#   bench/tier.sh [--store dir|s3rver] [--records N] [--record-size B]
#                 [--shards S] [--rounds R] [--producers P] [--segment SIZE]
#                 [--build-dir DIR] [--dir DIR] [--store-dir DIR] [--store-nice N]
#                 [--label TEXT]
#
# Starts runneld (127.0.0.1, run-time ports, data in a fresh directory under
# --dir, default ./data) tiered to a local directory (--store dir, default)
# or to s3rver (--store s3rver: installed by tests/support/s3peers-install.sh
# and started on 127.0.0.1 with a free port; the run stops with a reason when
# it cannot be; --store-dir puts the store's files on another filesystem,
# e.g. /dev/shm: a remote store does not write the broker's disk, a
# stand-in under --dir does, and then tiered produce shares the disk's
# write bandwidth with its own uploads; --store-nice runs s3rver under
# nice N, so on a small machine the stand-in's CPU yields to the broker's
# as a store on other machines would), with two streams of S shards: "plain" (not tiered) and
# "tiered" (--tiered --local-retention 1s). Then:
#
#   produce   R rounds; each round produces the same N records of B bytes
#             (P `runnelctl produce` processes in parallel, 1/P of the lines
#             each) into plain and into tiered, the order alternating per
#             round; before each slice the upload backlog is let drain to 0
#             so no slice pays for an earlier one's uploads. Per round and
#             overall: records/s of each, tiered/plain (target >= 0.95), and
#             the upload rate while producing (bytes uploaded from the slice's
#             start until its backlog was 0, over that time);
#   upload    the store is taken away (tier_dir replaced by a file; s3rver
#             stopped by PID), N records go into tiered (acknowledged: produce
#             does not wait for the store), the store comes back, and the
#             backlog's drain is timed from the first uploaded byte to a
#             backlog of 0: upload MB/s of a backlog;
#   catch-up  once tiered's sealed segments have left the local disk, both
#             streams are read from earliest by `runnelctl consume` (one
#             reader, shard after shard), alternating twice: MB/s from the
#             store vs from the local disk (page cache: both were just
#             written), their ratio, and how many GETs were in flight during
#             the remote reads: Little's law over /metrics
#             (runnel_tier_request_seconds{op="get"}: sum of GET latencies /
#             wall time), the GETs and bytes downloaded, and the largest
#             gets_inflight `runnelctl tier status --json` showed (sampled).
#
# Prints one JSON line per measurement and a summary line
# {"bench":"tier","what":"summary",...}; runneld and s3rver are stopped by
# PID and the data removed at the end (kept with its log on failure).
# Tiering's cache is set far below the data (tier_cache_bytes 16MiB), so the
# second remote pass reads the store again.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STORE=dir RECORDS=300000 SIZE=1000 SHARDS=4 ROUNDS=4 PRODUCERS=2 SEGMENT=8MiB
BUILD="$ROOT/build-bench" DIR="$PWD/data" LABEL="" STORE_DIR="" STORE_NICE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --store) STORE=$2; shift ;;
    --records) RECORDS=$2; shift ;;
    --record-size) SIZE=$2; shift ;;
    --shards) SHARDS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --producers) PRODUCERS=$2; shift ;;
    --segment) SEGMENT=$2; shift ;;
    --build-dir) BUILD=$2; shift ;;
    --dir) DIR=$2; shift ;;
    --label) LABEL=$2; shift ;;
    --store-dir) STORE_DIR=$2; shift ;;
    --store-nice) STORE_NICE=$2; shift ;;
    -h|--help) sed -n '2,44p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tier.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
case "$STORE" in dir|s3rver) ;; *) echo "tier.sh: --store dir|s3rver" >&2; exit 2 ;; esac
RUNNELD="$BUILD/broker/runneld" CTL="$BUILD/tools/runnelctl"
for b in "$RUNNELD" "$CTL"; do [ -x "$b" ] || { echo "tier.sh: $b not built (cmake --build $BUILD)" >&2; exit 1; }; done
"$RUNNELD" --help | grep -q tier_dir || { echo "tier.sh: this runneld has no tiering (no tier_dir key)" >&2; exit 1; }
mkdir -p "$DIR"
WORK=$(mktemp -d "$DIR/tier.XXXXXX")
SBASE=$WORK
if [ -n "$STORE_DIR" ]; then mkdir -p "$STORE_DIR"; SBASE=$(mktemp -d "$STORE_DIR/tier-store.XXXXXX"); fi
PID= S3PID= OK=0
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  [ -n "$S3PID" ] && kill "$S3PID" 2>/dev/null
  wait 2>/dev/null || true
  [ "$SBASE" != "$WORK" ] && rm -rf "$SBASE"
  if [ "$OK" = 1 ]; then rm -rf "$WORK"; else echo "tier.sh: kept $WORK (runneld.log)" >&2; fi
}
trap cleanup EXIT
now() { date +%s.%N; }
py() { python3 -c "$@"; }

# ---- the store ------------------------------------------------------------------
STORE_ARGS=()
S3PORT= S3DIR="$SBASE/s3rver" S3MOD=
s3rver_start() { # on $S3PORT with data in $S3DIR; sets S3PID
  (cd "$WORK" && NODE_PATH="$S3MOD" exec nice -n "$STORE_NICE" node -e "
    const S3rver = require('s3rver');
    new S3rver({port: $S3PORT, address: '127.0.0.1', directory: '$S3DIR', silent: true,
                configureBuckets: [{name: 'bench'}]}).run().then(() => console.log('ready'));" \
    >"$WORK/s3rver.out" 2>"$WORK/s3rver.err") &
  S3PID=$!
  for _ in $(seq 1 600); do # until it answers (a bound, not a wait on time)
    grep -q ready "$WORK/s3rver.out" 2>/dev/null && return 0
    kill -0 "$S3PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "tier.sh: s3rver did not start: $(cat "$WORK/s3rver.err")" >&2; exit 1
}
s3rver_stop() { kill "$S3PID"; wait "$S3PID" 2>/dev/null || true; S3PID=; }
if [ "$STORE" = dir ]; then
  STORE_ARGS=(--set "tier_dir=$SBASE/store")
else
  INSTALL="$ROOT/tests/support/s3peers-install.sh"
  [ -x "$INSTALL" ] || { echo "tier.sh: --store s3rver needs $INSTALL (not in this tree)" >&2; exit 1; }
  S3MOD=$("$INSTALL" s3rver 2>"$WORK/s3install.log" | tail -1) || {
    echo "tier.sh: s3rver could not be installed: $(tail -3 "$WORK/s3install.log")" >&2; exit 1; }
  S3PORT=$(py 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$S3DIR"
  s3rver_start
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
  STORE_ARGS=(--set "s3_endpoint=http://127.0.0.1:$S3PORT" --set s3_bucket=bench --set s3_path_style=true)
fi
store_down() {
  if [ "$STORE" = dir ]; then mv "$SBASE/store" "$SBASE/store.away"; : >"$SBASE/store"; else s3rver_stop; fi
}
store_up() {
  if [ "$STORE" = dir ]; then rm -f "$SBASE/store"; mv "$SBASE/store.away" "$SBASE/store"; else s3rver_start; fi
}

# ---- the broker ------------------------------------------------------------------
"$RUNNELD" --data-dir "$WORK/data" --listen 127.0.0.1:0 --http 127.0.0.1:0 --port-file "$WORK/ports" \
  --log-level warn --set "segment_bytes=$SEGMENT" --set tier_cache_bytes=16MiB --set tier_disk_high_water=100 \
  --set tier_request_timeout=5s "${STORE_ARGS[@]}" >>"$WORK/runneld.log" 2>&1 &
PID=$!
while [ ! -s "$WORK/ports" ]; do
  kill -0 "$PID" 2>/dev/null || { echo "tier.sh: runneld exited; see $WORK/runneld.log" >&2; cat "$WORK/runneld.log" >&2; exit 1; }
  sleep 0.01
done
read -r NATIVE HTTP <"$WORK/ports"
ADDR=127.0.0.1:$NATIVE
ctl() { "$CTL" --broker "$ADDR" "$@"; }
metrics() { curl -sf "http://127.0.0.1:$HTTP/metrics"; }
# metric NAME [LABELS]: the sample's value (0 when absent)
metric() { metrics | awk -v n="$1" -v l="${2:-}" '
  { name=$1; sub(/\{.*/, "", name); if (name != n) next
    if (l != "" && index($1, l) == 0) next; v += $NF; found=1 }
  END { printf "%.0f\n", found ? v : 0 }'; }
metricf() { metrics | awk -v n="$1" -v l="${2:-}" '
  { name=$1; sub(/\{.*/, "", name); if (name != n) next
    if (l != "" && index($1, l) == 0) next; v += $NF }
  END { printf "%.6f\n", v }'; }
backlog() { metric runnel_tier_upload_backlog_bytes; }
wait_drained() { # until the upload backlog is 0 (bounded)
  for _ in $(seq 1 6000); do [ "$(backlog)" = 0 ] && return 0; sleep 0.1; done
  echo "tier.sh: the upload backlog did not drain; see $WORK/runneld.log" >&2; exit 1
}

ctl stream create plain --shards "$SHARDS" --retention forever >/dev/null
ctl stream create tiered --shards "$SHARDS" --tiered --local-retention 1s --retention forever >/dev/null

# N records of SIZE bytes (distinct, printable), split over the producers
py "
import random, sys
r = random.Random(13); n, size, p = $RECORDS, $SIZE, $PRODUCERS
outs = [open('$WORK/records.%d' % i, 'w') for i in range(p)]
alpha = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
pad = ''.join(r.choice(alpha) for _ in range(size))
for i in range(n):
    head = '%010d:' % i
    outs[i % p].write(head + pad[len(head):size] + '\n')
"

# produce_slice STREAM: prints records/s; fails when a record failed
produce_slice() {
  local t0 t1 pids=()
  t0=$(now)
  for i in $(seq 0 $((PRODUCERS - 1))); do
    ctl --json produce "$1" <"$WORK/records.$i" >"$WORK/produce.$i.json" 2>"$WORK/produce.$i.err" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { echo "tier.sh: produce to $1 failed: $(cat "$WORK"/produce.*.err)" >&2; exit 1; }; done
  t1=$(now)
  py "print(f'{$RECORDS/($t1-$t0):.1f}')"
}

declare -A CPU_B CPU_S
# CPU seconds a process used so far (0 when there is none): utime + stime
cpu_s() { if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"; else echo 0; fi; }

ROWS="$WORK/rows.jsonl"
: >"$ROWS"
row() { echo "$1" | tee -a "$ROWS"; }
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="plain tiered"; else order="tiered plain"; fi
  for s in $order; do
    wait_drained
    u0=$(metric runnel_tier_uploaded_bytes_total) t0=$(now)
    c0=$(cpu_s "$PID") s0=$(cpu_s "$S3PID")
    rps=$(produce_slice "$s")
    c1=$(cpu_s "$PID") s1=$(cpu_s "$S3PID")
    CPU_B[$r.$s]=$(py "print(f'{$c1-$c0:.2f}')") CPU_S[$r.$s]=$(py "print(f'{$s1-$s0:.2f}')")
    if [ "$s" = tiered ]; then
      wait_drained
      t1=$(now) u1=$(metric runnel_tier_uploaded_bytes_total)
      TIERED[$r]=$rps
      UPP[$r]=$(py "print(f'{($u1-$u0)/1e6/($t1-$t0):.1f}')")
    else
      PLAIN[$r]=$rps
    fi
  done
  row "{\"bench\":\"tier\",\"what\":\"produce\",\"label\":\"$LABEL\",\"store\":\"$STORE\",\"round\":$r,\"records\":$RECORDS,\"record_size\":$SIZE,\"shards\":$SHARDS,\"producers\":$PRODUCERS,\"plain_records_per_s\":${PLAIN[$r]},\"tiered_records_per_s\":${TIERED[$r]},\"ratio\":$(py "print(f'{${TIERED[$r]}/${PLAIN[$r]}:.3f}')"),\"upload_while_producing_mb_per_s\":${UPP[$r]},\"runneld_cpu_s_plain\":${CPU_B[$r.plain]},\"runneld_cpu_s_tiered\":${CPU_B[$r.tiered]},\"store_cpu_s_tiered\":${CPU_S[$r.tiered]}}"
done

# ---- upload of a backlog ------------------------------------------------------------
wait_drained
store_down
produce_slice tiered >/dev/null # acknowledged with the store gone
b0=0
for _ in $(seq 1 300); do b0=$(backlog); [ "$b0" != 0 ] && break; sleep 0.1; done # the last seal reaches the backlog
[ "$b0" != 0 ] || { echo "tier.sh: no upload backlog after producing into a dead store: --segment ($SEGMENT) too large for --records x --record-size over $SHARDS shards?" >&2; exit 1; }
u0=$(metric runnel_tier_uploaded_bytes_total)
store_up
for _ in $(seq 1 6000); do [ "$(metric runnel_tier_uploaded_bytes_total)" != "$u0" ] && break; sleep 0.02; done # the first retry
t0=$(now) u1=$(metric runnel_tier_uploaded_bytes_total)
for _ in $(seq 1 60000); do [ "$(backlog)" = 0 ] && break; sleep 0.02; done
t1=$(now) u2=$(metric runnel_tier_uploaded_bytes_total)
UPLOAD=$(py "print(f'{($u2-$u1)/1e6/($t1-$t0):.1f}')")
row "{\"bench\":\"tier\",\"what\":\"upload\",\"label\":\"$LABEL\",\"store\":\"$STORE\",\"backlog_bytes\":$b0,\"uploaded_bytes\":$((u2 - u0)),\"seconds\":$(py "print(f'{$t1-$t0:.2f}')"),\"upload_mb_per_s\":$UPLOAD}"

# ---- catch-up reads -------------------------------------------------------------------
for _ in $(seq 1 6000); do # tiered's sealed segments off the local disk
  n=$(ctl --json stream describe tiered | py 'import json,sys; print(sum(s["local_segments"] for s in json.load(sys.stdin)["shards"]))')
  [ "$n" -le $((SHARDS * 2)) ] && break
  sleep 0.1
done
REMOTE_SEGS=$(ctl --json stream describe tiered | py 'import json,sys; print(sum(s["remote_segments"] for s in json.load(sys.stdin)["shards"]))')
[ "$REMOTE_SEGS" -gt 0 ] || { echo "tier.sh: nothing of tiered is remote: --segment ($SEGMENT) too large?" >&2; exit 1; }
PLAIN_RECS=$((RECORDS * ROUNDS)) TIERED_RECS=$((RECORDS * (ROUNDS + 1)))
sample_inflight() { # largest gets_inflight `tier status` showed while $1 runs
  local max=0 v
  while kill -0 "$1" 2>/dev/null; do
    v=$(ctl --json tier status 2>/dev/null | py '
import json, sys
try: print(int(json.load(sys.stdin).get("gets_inflight") or 0))
except Exception: print(0)') || v=0
    [ "$v" -gt "$max" ] && max=$v
    sleep 0.05
  done
  echo "$max"
}
read_pass() { # read_pass STREAM RECORDS -> "MB/s gets_in_flight gets bytes_down max_inflight"
  local s0 c0 d0 t0 t1 rp n
  s0=$(metricf runnel_tier_request_seconds_sum 'op="get"') c0=$(metric runnel_tier_request_seconds_count 'op="get"')
  d0=$(metric runnel_tier_downloaded_bytes_total)
  t0=$(now)
  ctl consume "$1" --from earliest --format '%o\n' >"$WORK/read.out" 2>"$WORK/read.err" &
  rp=$!
  local mx; mx=$(sample_inflight "$rp")
  wait "$rp" || { echo "tier.sh: consume $1 failed: $(cat "$WORK/read.err")" >&2; exit 1; }
  t1=$(now)
  n=$(wc -l <"$WORK/read.out")
  [ "$n" = "$2" ] || { echo "tier.sh: consume $1 read $n records, want $2" >&2; exit 1; }
  local s1 c1 d1
  s1=$(metricf runnel_tier_request_seconds_sum 'op="get"') c1=$(metric runnel_tier_request_seconds_count 'op="get"')
  d1=$(metric runnel_tier_downloaded_bytes_total)
  py "print(f'{$2*$SIZE/1e6/($t1-$t0):.1f} {($s1-$s0)/($t1-$t0):.2f} {$c1-$c0} {$d1-$d0} $mx')"
}
for pass in 1 2; do
  read -r LMB _ _ _ _ < <(read_pass plain "$PLAIN_RECS")
  read -r RMB GIF GETS DOWN MX < <(read_pass tiered "$TIERED_RECS")
  LOCAL[$pass]=$LMB REMOTE[$pass]=$RMB GINF[$pass]=$GIF
  row "{\"bench\":\"tier\",\"what\":\"catchup\",\"label\":\"$LABEL\",\"store\":\"$STORE\",\"pass\":$pass,\"local_mb_per_s\":$LMB,\"remote_mb_per_s\":$RMB,\"ratio\":$(py "print(f'{$RMB/$LMB:.3f}')"),\"gets\":$GETS,\"bytes_downloaded\":$DOWN,\"gets_in_flight_mean\":$GIF,\"inflight_max_sampled\":$MX,\"remote_segments\":$REMOTE_SEGS}"
done

# ---- summary -------------------------------------------------------------------------
py "
import json, statistics
rows = [json.loads(l) for l in open('$ROWS')]
prod = [r for r in rows if r['what'] == 'produce']
cu = [r for r in rows if r['what'] == 'catchup']
up = [r for r in rows if r['what'] == 'upload'][0]
plain = sum(r['plain_records_per_s'] for r in prod) / len(prod)
tiered = sum(r['tiered_records_per_s'] for r in prod) / len(prod)
print(json.dumps({'bench': 'tier', 'what': 'summary', 'label': '$LABEL', 'store': '$STORE', 'store_fs': '$(stat -f -c %T "$SBASE")', 'data_fs': '$(stat -f -c %T "$WORK")',
  'records': $RECORDS, 'record_size': $SIZE, 'shards': $SHARDS, 'rounds': $ROUNDS, 'segment': '$SEGMENT',
  'produce_plain_records_per_s': round(plain, 1), 'produce_tiered_records_per_s': round(tiered, 1),
  'produce_ratio': round(tiered / plain, 3),
  'produce_ratio_median': round(statistics.median(r['ratio'] for r in prod), 3), 'target_produce_ratio': 0.95,
  'upload_while_producing_mb_per_s': round(statistics.median(r['upload_while_producing_mb_per_s'] for r in prod), 1),
  'upload_mb_per_s': up['upload_mb_per_s'],
  'runneld_cpu_s_plain': round(sum(r['runneld_cpu_s_plain'] for r in prod), 2),
  'runneld_cpu_s_tiered': round(sum(r['runneld_cpu_s_tiered'] for r in prod), 2),
  'store_cpu_s_tiered': round(sum(r['store_cpu_s_tiered'] for r in prod), 2),
  'catchup_local_mb_per_s': round(statistics.median(r['local_mb_per_s'] for r in cu), 1),
  'catchup_remote_mb_per_s': round(statistics.median(r['remote_mb_per_s'] for r in cu), 1),
  'catchup_ratio': round(statistics.median(r['ratio'] for r in cu), 3),
  'gets_in_flight_mean': round(statistics.median(r['gets_in_flight_mean'] for r in cu), 2),
  'inflight_max_sampled': max(r['inflight_max_sampled'] for r in cu)}))
" | tee -a "$ROWS"
kill "$PID"; wait "$PID" || { echo "tier.sh: runneld did not exit cleanly; see $WORK/runneld.log" >&2; exit 1; }
PID=
OK=1
