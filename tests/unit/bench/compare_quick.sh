#!/usr/bin/env bash
# Smoke test of bench/compare.sh (ctest label `slow`): the quick run into a
# temporary directory, then checks that every workload produced rows, that
# no row failed, and that the summary and the plots exist.
#   compare_quick.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=$1 BUILD=$2
OUT=$(mktemp -d "${TMPDIR:-/tmp}/compare-quick.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
"$SRC/bench/compare.sh" --quick --no-install --out "$OUT" --build-dir "$BUILD"
test -s "$OUT/RESULTS.md"
test -s "$OUT/results/throughput.png"
python3 - "$OUT/results/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
labels = {r.get("label") for r in rows}
want = {"a-max-1k", "b-rate-25", "b-rate-50", "c-max-100b", "d-fanout-4", "e-catchup", "tcp-1"}
assert want <= labels, "missing workloads: %s" % (want - labels)
bad = [r for r in rows if "run_failed" in r]
assert not bad, "failed rows: %s" % [(r["label"], r["config"], r["run_failed"]) for r in bad]
ok = [r for r in rows if r.get("records_per_s")]
assert len(ok) >= 25, "too few measured rows: %d" % len(ok)
print("compare_quick: %d rows, %d measured" % (len(rows), len(ok)))
PY
