#!/usr/bin/env python3
"""tests/conformance/sink/check_parquet.py — runnel's Parquet files read by an
independent reader: every value, the schema's types and the row group count
must equal what pq_gen wrote.

  check_parquet.py --reader duckdb|hyparquet|pyarrow --gen PQ_GEN
                   --install tests/support/sinkpeers-install.sh --work DIR

pq_gen writes DIR/<reader>/<case>.parquet and <case>.expected.json; the
reader scripts beside this file (read_parquet.mjs, read_parquet.py) print
what they read as JSON. For pyarrow the column-chunk statistics are checked
too (min/max in each type's order, null counts, NaN-free double bounds with
-0.0/+0.0 for zeros), recomputed here from the expected rows; for DuckDB a
few --sql queries whose filters let it skip row groups by those statistics
must count what the expected rows say. Exit 0 all equal, 1 a difference
(listed, the first 30), 77 (skip) with the reason when the reader cannot be
installed here (sinkpeers-install.sh failed).
"""
import argparse
import glob
import json
import math
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77


def canon(kind, v):
    """A value in a form equal only for equal values (doubles by bits)."""
    if v is None:
        return None
    if kind == "DOUBLE":
        f = float(v)
        return "nan" if math.isnan(f) else repr(f)
    return v


def expected_stats(exp):
    """Per row group, per column: null_count, min, max as the spec says."""
    rows, cols = exp["rows"], exp["columns"]
    per = exp["row_group_rows"] or max(len(rows), 1)
    out = []
    for g0 in range(0, len(rows), per):
        grp = rows[g0:g0 + per]
        chunks = []
        for c, col in enumerate(cols):
            vals = [r[c] for r in grp if r[c] is not None]
            one = {"null_count": len(grp) - len(vals), "min": None, "max": None}
            k = col["type"]
            if k == "DOUBLE":
                fs = [float(v) for v in vals if not math.isnan(float(v))]
                if fs:
                    lo, hi = min(fs), max(fs)
                    one["min"] = "-0.0" if lo == 0 else repr(lo)
                    one["max"] = "0.0" if hi == 0 else repr(hi)
            elif vals:
                if k in ("INT64", "TIMESTAMP"):
                    key = int
                elif k == "STRING":
                    key = lambda s: s.encode()  # unsigned byte order
                else:
                    key = lambda b: b
                one["min"], one["max"] = min(vals, key=key), max(vals, key=key)
            chunks.append(one)
        out.append(chunks)
    return out


def got_stats(kind, st):
    if st is None:
        return None
    lo, hi = st["min"], st["max"]
    if kind == "DOUBLE" and lo is not None:
        lo, hi = repr(float(lo)), repr(float(hi))
    return {"null_count": st["null_count"], "min": lo, "max": hi}


def compare(exp, got, diffs, with_stats):
    name = os.path.basename(got["file"])

    def diff(msg):
        diffs.append(f"{name}: {msg}")

    want_schema = [{"name": c["name"], "type": c["type"], "nullable": c["nullable"]} for c in exp["columns"]]
    if got["schema"] != want_schema:
        diff(f"schema {got['schema']} != {want_schema}")
        return 0
    if got["row_groups"] != exp["row_groups"]:
        diff(f"row groups {got['row_groups']} != {exp['row_groups']}")
    if len(got["rows"]) != len(exp["rows"]):
        diff(f"rows {len(got['rows'])} != {len(exp['rows'])}")
        return 0
    kinds = [c["type"] for c in exp["columns"]]
    n = 0
    for r, (gr, er) in enumerate(zip(got["rows"], exp["rows"])):
        for c, k in enumerate(kinds):
            n += 1
            if canon(k, gr[c]) != canon(k, er[c]):
                diff(f"row {r} column {exp['columns'][c]['name']}: read {gr[c]!r}, wrote {er[c]!r}")
    if with_stats:
        want = expected_stats(exp)
        if len(got["stats"]) != len(want):
            diff(f"statistics of {len(got['stats'])} row groups, expected {len(want)}")
        for g, (gs, ws) in enumerate(zip(got["stats"], want)):
            for c, k in enumerate(kinds):
                have = got_stats(k, gs["columns"][c])
                if have != ws[c]:
                    diff(f"row group {g} column {exp['columns'][c]['name']}: statistics {have} != {ws[c]}")
    return n


def run(cmd, env=None):
    return subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)


def duckdb_sql_checks(node_env, files, exps, diffs):
    """Filters DuckDB evaluates with the chunk statistics (row groups whose
    min/max exclude the value are skipped): wrong statistics give wrong counts."""
    preds = [
        ("i_req = 9223372036854775807", lambda r, c: r[c["i_req"]] == "9223372036854775807"),
        ("i_req = -9223372036854775808", lambda r, c: r[c["i_req"]] == "-9223372036854775808"),
        ("s = ''", lambda r, c: r[c["s"]] == ""),
        ("s > 'zzz'", lambda r, c: r[c["s"]] is not None and r[c["s"]].encode() > b"zzz"),
        ("s_req >= '\U0001F986'", lambda r, c: r[c["s_req"]].encode() >= "\U0001F986".encode()),
        ("b_req", lambda r, c: r[c["b_req"]] is True),
        ("t_req = '0001-01-01 00:00:00+00'::TIMESTAMPTZ", lambda r, c: r[c["t_req"]] == "-62135596800000"),
        ("d_req = 1.7976931348623157e308", lambda r, c: r[c["d_req"]] not in ("NaN",) and
         r[c["d_req"]] == 1.7976931348623157e308),
        ("i IS NULL", lambda r, c: r[c["i"]] is None),
    ]
    n = 0
    for f, exp in zip(files, exps):
        if not os.path.basename(f).startswith("types_"):
            continue
        cidx = {col["name"]: i for i, col in enumerate(exp["columns"])}
        q = "'" + f.replace("'", "''") + "'"
        sql = " UNION ALL ".join(
            f"SELECT {i} AS k, count(*)::INTEGER AS n FROM read_parquet({q}) WHERE {p}" for i, (p, _) in enumerate(preds))
        res = run(["node", os.path.join(HERE, "read_parquet.mjs"), "--sql", sql + " ORDER BY k"], env=node_env)
        if res.returncode != 0:
            diffs.append(f"{os.path.basename(f)}: duckdb --sql failed: {res.stderr.strip()[-500:]}")
            continue
        got = {row["k"]: row["n"] for row in json.loads(res.stdout)}
        for i, (p, fn) in enumerate(preds):
            want = sum(1 for r in exp["rows"] if fn(r, cidx))
            n += 1
            if got.get(i) != want:
                diffs.append(f"{os.path.basename(f)}: WHERE {p}: duckdb counted {got.get(i)}, expected {want}")
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reader", required=True, choices=["duckdb", "hyparquet", "pyarrow"])
    ap.add_argument("--gen", required=True)
    ap.add_argument("--install", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()

    peer = "pyarrow" if a.reader == "pyarrow" else "node"
    inst = run(["bash", a.install, peer])
    if inst.returncode != 0:
        reason = (inst.stderr.strip().splitlines() or ["sinkpeers-install.sh failed"])[-1]
        print(f"SKIP: {a.reader}: {reason}")
        return SKIP
    where = inst.stdout.strip().splitlines()[-1]

    work = os.path.join(a.work, a.reader)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    gen = run([a.gen, work])
    if gen.returncode != 0:
        print(f"pq_gen failed: {gen.stderr}")
        return 1
    files = sorted(glob.glob(os.path.join(work, "*.parquet")))
    exps = []
    for f in files:
        with open(f[: -len(".parquet")] + ".expected.json", encoding="utf-8") as fh:
            exps.append(json.load(fh))

    env = dict(os.environ)
    if peer == "node":
        env["NODE_PATH"] = where
        cmd = ["node", os.path.join(HERE, "read_parquet.mjs"), "--reader", a.reader] + files
    else:
        cmd = [where, os.path.join(HERE, "read_parquet.py")] + files
    res = run(cmd, env=env)
    if res.returncode != 0:
        print(f"{a.reader} failed (exit {res.returncode}):\n{res.stderr}")
        return 1
    gots = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    if len(gots) != len(files):
        print(f"{a.reader} printed {len(gots)} results for {len(files)} files\n{res.stderr}")
        return 1

    diffs = []
    values = 0
    for exp, got in zip(exps, gots):
        values += compare(exp, got, diffs, with_stats=(a.reader == "pyarrow"))
    queries = duckdb_sql_checks(env, files, exps, diffs) if a.reader == "duckdb" else 0

    for d in diffs[:30]:
        print("DIFF " + d)
    if len(diffs) > 30:
        print(f"... and {len(diffs) - 30} more")
    print(f"check_parquet: {a.reader}: {len(files)} files, {values} values compared"
          + (f", {queries} statistics-pruned counts" if queries else "")
          + (", statistics of every column chunk" if a.reader == "pyarrow" else "")
          + f": {'OK' if not diffs else str(len(diffs)) + ' differences'}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
