#!/usr/bin/env python3
"""tests/conformance/sink/read_parquet.py — reads Parquet files with pyarrow
and prints what it saw as JSON, one object per file and line, in the form of
read_parquet.mjs (check_parquet.py compares them with what was written):

  PYTHON read_parquet.py FILE...

PYTHON is the venv interpreter tests/support/sinkpeers-install.sh pyarrow
prints. Per file: {"file", "row_groups", "schema": [{"name", "type",
"nullable"}], "rows": [[...], ...]}; "type" is STRING INT64 DOUBLE BOOLEAN or
TIMESTAMP (timestamp[ms, tz=UTC] only), else "OTHER:<arrow type>"; INT64 and
TIMESTAMP (ms) values as decimal strings, doubles as numbers or "NaN",
"Infinity", "-Infinity", "-0".
"""
import json
import math
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def kind(t):
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "STRING"
    if pa.types.is_int64(t):
        return "INT64"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t) and t.unit == "ms" and t.tz in ("UTC", "+00:00"):
        return "TIMESTAMP"
    return "OTHER:" + str(t)


def dbl(v):
    if v is None:
        return None
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if v == 0 and math.copysign(1.0, v) < 0:
        return "-0"
    return v


def read(path):
    pf = pq.ParquetFile(path)
    table = pf.read()
    kinds = [kind(f.type) for f in table.schema]
    schema = [{"name": f.name, "type": k, "nullable": f.nullable} for f, k in zip(table.schema, kinds)]
    cols = []
    for col, k in zip(table.columns, kinds):
        if k == "TIMESTAMP":
            # the stored milliseconds, not datetimes (which stop at year 9999)
            vals = col.cast(pa.int64()).to_pylist()
            cols.append([None if v is None else str(v) for v in vals])
        elif k == "INT64":
            cols.append([None if v is None else str(v) for v in col.to_pylist()])
        elif k == "DOUBLE":
            cols.append([dbl(v) for v in col.to_pylist()])
        else:
            cols.append(col.to_pylist())
    rows = [list(r) for r in zip(*cols)] if cols else []
    # each column chunk's statistics as pyarrow decodes them (physical
    # values: min_raw/max_raw), for check_parquet.py to recompute
    stats = []
    for g in range(pf.metadata.num_row_groups):
        rg = pf.metadata.row_group(g)
        chunks = []
        for c, k in enumerate(kinds):
            st = rg.column(c).statistics
            if st is None:
                chunks.append(None)
                continue
            one = {"null_count": st.null_count if st.has_null_count else None, "min": None, "max": None}
            if st.has_min_max:
                lo, hi = st.min_raw, st.max_raw
                if k == "DOUBLE":
                    lo, hi = dbl(lo), dbl(hi)
                elif k in ("INT64", "TIMESTAMP"):
                    lo, hi = str(lo), str(hi)
                elif k == "STRING":
                    lo = lo.decode() if isinstance(lo, bytes) else lo
                    hi = hi.decode() if isinstance(hi, bytes) else hi
                one["min"], one["max"] = lo, hi
            chunks.append(one)
        stats.append({"num_rows": rg.num_rows, "columns": chunks})
    return {"file": path, "row_groups": pf.metadata.num_row_groups, "schema": schema, "rows": rows,
            "stats": stats}


def main():
    if len(sys.argv) < 2:
        print("usage: read_parquet.py FILE...", file=sys.stderr)
        return 2
    for path in sys.argv[1:]:
        print(json.dumps(read(path), ensure_ascii=False, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
