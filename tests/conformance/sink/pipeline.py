#!/usr/bin/env python3
"""The seeds' archive pipeline, seen from outside the broker (issue 14):
a mobile backend producing with boto3, an analyst reading with DuckDB.

    pipeline.py produce --endpoint URL --stream S --n N --dup-pct P --seed X --out EXPECT.json
        N events {"event_uuid", "event_type" (one of 5), "created_at" (ISO 8601
        over 3 hours of one day, some with a +02:00 offset), "user",
        "payload": {"amount"}, "score", "coupon" (null in ~30 %), "city"}
        sent with boto3 PutRecords (batches of up to 500) to runneld's
        Kinesis API; P % of them are sent a second time in a later batch.
        Records a PutRecords answer refuses are sent again until accepted.
        --slice I/K sends only the I-th of K parts of the sends (the caller
        waits for the sinks in between, so objects come from several
        flushes); part I > 0 adds to the EXPECT.json of part I-1.
        EXPECT.json: every event, its exact JSON bytes, how often it was
        accepted and the (ShardId, SequenceNumber) of every acceptance.

    pipeline.py verify --dir DIR --expect EXPECT.json --node NODE --node-path NP
                       [--parquet GLOB] [--ndjson GLOB] [--dedup]
        DIR holds the bucket's objects as files (tier_s3.py mirror). Runs
        DuckDB (duckdb_query.mjs next to this file) over them and compares:
          Parquet: read_parquet(GLOB, hive_partitioning = true, filename = true)
            - SELECT event_type, hour, count(*) GROUP BY ... equals what was
              accepted, per event type and UTC hour of created_at;
            - the Hive columns year/month/day/hour are created_at's (UTC);
            - every row's columns equal its event's (path $.payload.amount,
              the nullable coupon, the timestamp) and its metadata columns:
              _shard and _sequence_number those PutRecords answered,
              _partition_key the one sent;
            - (_shard, _offset) unique over all objects; each object's rows
              are of the shard its name says, their min and max _offset the
              first and last of its name;
          NDJSON: read_json(GLOB) the same counts by type and hour, and every
            line byte-equal to the JSON that was sent;
            and hyparquet, a second reader, gets the same rows per object;
          both: with --dedup count(DISTINCT event_uuid) = count(*) = events;
            without it each event_uuid appears exactly as often as it was
            accepted.
        Every mismatch is printed (up to 10 per check); exit 1 if any.

Run under Debian's /usr/bin/python3 (python3-boto3). Exit 0 ok, 1 failed,
2 usage.
"""

import argparse
import base64
import collections
import datetime
import glob
import gzip
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import uuid

TYPES = ["app_open", "page_view", "add_to_cart", "purchase", "logout"]
HOURS = ["2026-11-30T07", "2026-11-30T08", "2026-11-30T09"]
CITIES = ["Zürich", "Lyon", "São Paulo", "Kraków", "Oslo"]
NAME_RE = re.compile(r"^(?P<sink>.+)-shardId-(?P<shard>\d{12})-(?P<first>\d{20})-(?P<last>\d{20})\.(?P<ext>[a-z.]+)$")


def aws_isolated():
    tmp = tempfile.mkdtemp(prefix="sink-pipeline-")
    for var, name in (("AWS_CONFIG_FILE", "config"), ("AWS_SHARED_CREDENTIALS_FILE", "credentials")):
        if not os.environ.get(var):
            p = os.path.join(tmp, name)
            open(p, "w").close()
            os.environ[var] = p


def make_events(n, rng):
    evs = []
    for i in range(n):
        h = HOURS[i % 3]
        minute, sec, ms = rng.randrange(60), rng.randrange(60), rng.randrange(1000)
        if i % 10 == 7:
            # the same instant written with a +02:00 offset: the partition
            # must be the UTC hour
            hh = int(h[-2:]) + 2
            created = f"{h[:-2]}{hh:02d}:{minute:02d}:{sec:02d}.{ms:03d}+02:00"
        else:
            created = f"{h}:{minute:02d}:{sec:02d}.{ms:03d}Z"
        utc = datetime.datetime(2026, 11, 30, int(h[-2:]), minute, sec, ms * 1000, tzinfo=datetime.timezone.utc)
        ev = {
            "event_uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "event_type": TYPES[rng.randrange(len(TYPES))],
            "created_at": created,
            "user": f"u{rng.randrange(200)}",
            "payload": {"amount": rng.randrange(-1000, 100000)},
            "score": rng.randrange(1, 100000) / 1000 + 0.0005,
            "coupon": None if rng.random() < 0.3 else f"C{rng.randrange(100)}",
            "city": CITIES[rng.randrange(len(CITIES))],
        }
        data = json.dumps(ev, separators=(",", ":"), ensure_ascii=False)
        evs.append({"ev": ev, "data": data, "ms": int(utc.timestamp() * 1000), "hour": utc.hour,
                    "sent": 0, "acks": []})
    return evs


def produce(a):
    aws_isolated()
    import boto3
    from botocore.config import Config

    rng = random.Random(a.seed)
    evs = make_events(a.n, rng)
    order = list(range(len(evs)))
    ndup = len(evs) * a.dup_pct // 100
    dups = rng.sample(range(len(evs)), ndup)
    # a duplicate goes out in a later batch than its first send (a mobile
    # client retrying after a lost answer)
    order = order + dups
    cfg = Config(retries={"total_max_attempts": 3, "mode": "standard"}, connect_timeout=30, read_timeout=120)
    kin = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1").client(
        "kinesis", endpoint_url=a.endpoint, config=cfg)
    part, parts = (int(x) for x in a.slice.split("/"))
    lo, hi = len(order) * part // parts, len(order) * (part + 1) // parts
    if part > 0:  # the earlier slices' acceptances
        with open(a.out) as f:
            prev = json.load(f)["events"]
        for e, p in zip(evs, prev):
            e["sent"], e["acks"] = p["sent"], p["acks"]
    order = order[lo:hi]
    refused = 0
    for b in range(0, len(order), 500):
        todo = order[b:b + 500]
        for attempt in range(20):
            recs = [{"Data": evs[i]["data"].encode(), "PartitionKey": evs[i]["ev"]["user"]} for i in todo]
            r = kin.put_records(StreamName=a.stream, Records=recs)
            again = []
            for i, rr in zip(todo, r["Records"]):
                if rr.get("ErrorCode"):
                    again.append(i)
                else:
                    evs[i]["sent"] += 1
                    evs[i]["acks"].append([rr["ShardId"], rr["SequenceNumber"]])
            refused += len(again)
            todo = again
            if not todo:
                break
        if todo:
            print(f"pipeline produce: {len(todo)} records still refused after 20 tries", file=sys.stderr)
            return 1
    with open(a.out, "w") as f:
        json.dump({"events": evs}, f)
    sent = sum(e["sent"] for e in evs)
    print(f"pipeline produce: slice {a.slice} ({len(order)} sends): {len(evs)} events, {sent} records accepted so "
          f"far ({ndup} sent twice in all, {refused} refusals sent again) through boto3 PutRecords")
    return 0


class Checks:
    def __init__(self):
        self.failed = 0

    def fail(self, check, items):
        if not items:
            print(f"  ok   {check}")
            return
        self.failed += 1
        print(f"  FAIL {check}: {len(items)} mismatches")
        for x in items[:10]:
            print(f"         {x}")


def duck(a, *sql):
    env = dict(os.environ, NODE_PATH=a.node_path)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "duckdb_query.mjs")
    p = subprocess.run([a.node, script, *sql], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"duckdb: {p.stderr.strip()}\nSQL: {sql[-1]}")
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def per_type_hour(evs, dedup):
    """What the archive must hold by (type, hour): every acceptance, or with
    dedup every event once (a duplicate is acknowledged, not stored)."""
    c = collections.Counter()
    for e in evs:
        c[(e["ev"]["event_type"], e["hour"])] += 1 if dedup else e["sent"]
    return c


def check_counts(ck, what, evs, rows_th, rows_uuid, dedup):
    want = per_type_hour(evs, dedup)
    got = collections.Counter({(r["event_type"], int(r["hour"])): int(r["n"]) for r in rows_th})
    ck.fail(f"{what}: count(*) by event_type and hour equals what was produced ({sum(want.values())} records)",
            [f"{k}: {got.get(k, 0)} objects' rows, {want.get(k, 0)} produced" for k in sorted(set(want) | set(got))
             if got.get(k, 0) != want.get(k, 0)])
    seen = {r["event_uuid"]: int(r["n"]) for r in rows_uuid}
    if dedup:
        if what == "Parquet":
            ck.fail("dedup: a duplicate PutRecords entry is answered with the original ShardId and SequenceNumber",
                    [f"{e['ev']['event_uuid']}: {e['acks']}" for e in evs
                     if len({tuple(x) for x in e["acks"]}) > 1])
        bad = [f"{u}: {n} rows" for u, n in seen.items() if n != 1]
        bad += [f"{e['ev']['event_uuid']}: missing" for e in evs if e["ev"]["event_uuid"] not in seen]
        ck.fail(f"{what}: count(DISTINCT event_uuid) = count(*) = {len(evs)} (dedup on)", bad)
    else:
        bad = [f"{e['ev']['event_uuid']}: {seen.get(e['ev']['event_uuid'], 0)} rows, accepted {e['sent']} times"
               for e in evs if seen.get(e["ev"]["event_uuid"], 0) != e["sent"]]
        known = {e["ev"]["event_uuid"] for e in evs}
        bad += [f"{u}: never produced" for u in seen if u not in known]
        ck.fail(f"{what}: each event_uuid appears as often as PutRecords accepted it (no dedup)", bad)


def verify_parquet(a, ck, evs, by_uuid):
    src = (f"read_parquet('{os.path.join(a.dir, a.parquet)}', hive_partitioning = true, filename = true, "
           f"union_by_name = true)")
    tz = "SET TimeZone = 'UTC'"
    th = duck(a, tz, f"SELECT event_type, hour, count(*) AS n FROM {src} GROUP BY event_type, hour ORDER BY ALL")
    uu = duck(a, tz, f"SELECT event_uuid, count(*) AS n FROM {src} GROUP BY event_uuid")
    check_counts(ck, "Parquet", evs, th, uu, a.dedup)
    rows = duck(a, tz, f"""SELECT event_uuid, event_type, epoch_ms(created_at) AS ca, amount, score, coupon,
        _shard, _offset, _partition_key, _sequence_number, year, month, day, hour, filename FROM {src}""")
    bad_cols, bad_hive, bad_meta, bad_seq = [], [], [], []
    pairs = collections.Counter()
    files = collections.defaultdict(list)
    for r in rows:
        e = by_uuid.get(r["event_uuid"])
        if e is None:
            bad_cols.append(f"row {r['event_uuid']}: never produced")
            continue
        ev = e["ev"]
        want = (ev["event_type"], e["ms"], ev["payload"]["amount"], ev["score"], ev["coupon"])
        got = (r["event_type"], int(r["ca"]), int(r["amount"]), float(r["score"]), r["coupon"])
        if got != want:
            bad_cols.append(f"{r['event_uuid']}: (type, created_at ms, amount, score, coupon) {got}, sent {want}")
        t = datetime.datetime.fromtimestamp(e["ms"] / 1000, datetime.timezone.utc)
        hive = (int(r["year"]), int(r["month"]), int(r["day"]), int(r["hour"]))
        if hive != (t.year, t.month, t.day, t.hour):
            bad_hive.append(f"{r['event_uuid']}: year/month/day/hour {hive}, created_at {ev['created_at']}")
        shards = {s for s, _ in e["acks"]}
        if r["_shard"] not in shards or r["_partition_key"] != ev["user"]:
            bad_meta.append(f"{r['event_uuid']}: _shard {r['_shard']} _partition_key {r['_partition_key']!r}, "
                            f"PutRecords said {sorted(shards)} for key {ev['user']!r}")
        if r["_sequence_number"] not in {q for _, q in e["acks"]}:
            bad_seq.append(f"{r['event_uuid']}: _sequence_number {r['_sequence_number']!r}, PutRecords answered "
                           f"{[q for _, q in e['acks']]}")
        pairs[(r["_shard"], int(r["_offset"]))] += 1
        files[r["filename"]].append((r["_shard"], int(r["_offset"])))
    ck.fail("Parquet: every row's columns equal the event's (incl. $.payload.amount, nullable coupon, timestamp)",
            bad_cols)
    ck.fail("Parquet: Hive partition year/month/day/hour = created_at in UTC (event time, offsets honoured)",
            bad_hive)
    ck.fail("Parquet: _shard and _partition_key are those PutRecords used", bad_meta)
    ck.fail("Parquet: _sequence_number is the SequenceNumber PutRecords answered", bad_seq)
    ck.fail("Parquet: (_shard, _offset) once over all objects (exactly-once objects)",
            [f"{k}: {n} rows" for k, n in pairs.items() if n != 1])
    bad_names = []
    for fn, offs in files.items():
        m = NAME_RE.match(os.path.basename(fn))
        if not m:
            bad_names.append(f"{fn}: name is not <sink>-shardId-<12>-<20>-<20>.<ext>")
            continue
        sid = f"shardId-{m['shard']}"
        lo, hi = min(o for _, o in offs), max(o for _, o in offs)
        if any(s != sid for s, _ in offs):
            bad_names.append(f"{fn}: holds rows of {sorted({s for s, _ in offs})}")
        if (lo, hi) != (int(m["first"]), int(m["last"])):
            bad_names.append(f"{fn}: rows' offsets span [{lo}, {hi}]")
    ck.fail(f"Parquet: each of {len(files)} objects holds its named shard's rows, min/max _offset = its name's "
            "first/last", bad_names)
    # a second, independent reader: hyparquet's rows per file = DuckDB's
    by_file = collections.defaultdict(collections.Counter)
    for r in rows:
        by_file[r["filename"]][r["event_uuid"]] += 1
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hyparquet_rows.mjs")
    names = sorted(glob.glob(os.path.join(a.dir, a.parquet), recursive=True))
    bad = []
    if len(names) != len(files):
        bad.append(f"glob finds {len(names)} files, DuckDB read {len(files)}")
    for i in range(0, len(names), 200):
        p = subprocess.run([a.node, script, *names[i:i + 200]], env=dict(os.environ, NODE_PATH=a.node_path),
                           capture_output=True, text=True)
        if p.returncode != 0:
            bad.append(f"hyparquet: {p.stderr.strip()}")
            break
        for line in p.stdout.splitlines():
            h = json.loads(line)
            got = collections.Counter(h["uuids"])
            if h["rows"] != len(h["uuids"]) or got != by_file.get(h["file"], collections.Counter()):
                bad.append(f"{os.path.relpath(h['file'], a.dir)}: hyparquet reads {h['rows']} rows "
                           f"({len(h['uuids'])} uuids), DuckDB {sum(by_file.get(h['file'], {}).values())}")
    ck.fail(f"Parquet: hyparquet (a second reader) reads the same event_uuids per object as DuckDB", bad)
    print(f"  Parquet: {len(rows)} rows in {len(files)} objects")


def verify_ndjson(a, ck, evs, by_uuid):
    src = (f"read_json('{os.path.join(a.dir, a.ndjson)}', format = 'newline_delimited', "
           "columns = {event_uuid: 'VARCHAR', event_type: 'VARCHAR', created_at: 'VARCHAR'})")
    tz = "SET TimeZone = 'UTC'"
    th = duck(a, tz, f"""SELECT event_type, hour(CAST(created_at AS TIMESTAMPTZ)) AS hour, count(*) AS n
        FROM {src} GROUP BY ALL ORDER BY ALL""")
    uu = duck(a, tz, f"SELECT event_uuid, count(*) AS n FROM {src} GROUP BY event_uuid")
    check_counts(ck, "NDJSON", evs, th, uu, a.dedup)
    # byte for byte: the archived line is the JSON the producer sent
    sent = {e["data"] for e in evs}
    bad, lines, objs = [], 0, 0
    for fn in glob.glob(os.path.join(a.dir, a.ndjson), recursive=True):
        objs += 1
        with gzip.open(fn, "rb") as f:
            for line in f.read().decode("utf-8").split("\n")[:-1]:
                lines += 1
                if line not in sent:
                    bad.append(f"{os.path.relpath(fn, a.dir)}: line {line[:120]!r} was never sent as such")
    ck.fail("NDJSON: every line is byte-equal to a record that was sent (compact, key order, UTF-8, numbers)", bad)
    print(f"  NDJSON: {lines} lines in {objs} objects")


def verify(a):
    with open(a.expect) as f:
        evs = json.load(f)["events"]
    by_uuid = {e["ev"]["event_uuid"]: e for e in evs}
    ck = Checks()
    try:
        if a.parquet:
            verify_parquet(a, ck, evs, by_uuid)
        if a.ndjson:
            verify_ndjson(a, ck, evs, by_uuid)
    except RuntimeError as e:
        print(f"  FAIL {e}")
        return 1
    return 1 if ck.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="op", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--stream", required=True)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--dup-pct", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("--slice", default="0/1", help="I/K: send the I-th of K parts of the sends (same seed); "
                   "I > 0 continues the --out file of part I-1")
    v = sub.add_parser("verify")
    v.add_argument("--dir", required=True)
    v.add_argument("--expect", required=True)
    v.add_argument("--node", default="node")
    v.add_argument("--node-path", required=True)
    v.add_argument("--parquet")
    v.add_argument("--ndjson")
    v.add_argument("--dedup", action="store_true")
    a = ap.parse_args()
    return produce(a) if a.op == "produce" else verify(a)


if __name__ == "__main__":
    sys.exit(main())
