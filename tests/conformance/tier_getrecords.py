#!/usr/bin/env python3
"""boto3 GetRecords over a tiered stream, checked record by record (issue 13).

    tier_getrecords.py --endpoint URL --stream NAME --expect FILE
                       [--at-timestamp SECONDS] [--region R]

Started by tests/integration/test_tier_s3.c (which starts runneld, produces
the records and writes FILE) under Debian's /usr/bin/python3, so this is
Debian's python3-boto3 driving the broker's Kinesis API the way a user's
application would (endpoint_url=..., dummy credentials, retries off so an
error the broker sends is seen as sent).

FILE has one line per record, in offset order within each shard:

    <shard index>\t<timestamp ms>\t<data>

(data printable ASCII without tabs). Every shard is read with GetRecords
from a TRIM_HORIZON iterator until it has returned as many records as FILE
lists for it; each record must be the next expected one, byte for byte,
with the expected ApproximateArrivalTimestamp (natively produced records
carry the producer's timestamp: docs/kinesis.md). Most of them live in the
object store only, so this reads through the broker's remote path.

With --at-timestamp T (epoch seconds; botocore sends whole seconds) each
shard is also read from an AT_TIMESTAMP iterator: its first record must be
the first one of FILE for that shard whose timestamp is >= T, and the read
must go on to the shard's last expected record.

No check waits on time: reads loop a bounded number of GetRecords calls.
Exit 0 when every check passed, 1 otherwise (the reason on stderr), 2 on
bad arguments.
"""

import argparse
import datetime
import os
import sys
import tempfile

MAX_EMPTY_READS = 200  # GetRecords answers without records before giving up on a shard
LIMIT = 10000          # records per GetRecords (the API's maximum)


def fail(msg):
    print(f"tier_getrecords: FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def load_expect(path):
    shards = {}
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip(b"\n")
            if not line:
                continue
            parts = line.split(b"\t", 2)
            if len(parts) != 3:
                fail(f"{path}:{n}: not <shard>\\t<ts>\\t<data>")
            shards.setdefault(int(parts[0]), []).append((int(parts[1]), parts[2]))
    return shards


def shard_id(i):
    return f"shardId-{i:012d}"


def read_shard(client, stream, sid, it_args, want, what):
    """Read from the iterator it_args describes until len(want) records came;
    compare each with want[k] (timestamp ms, data)."""
    it = client.get_shard_iterator(StreamName=stream, ShardId=sid, **it_args)["ShardIterator"]
    got = 0
    empty = 0
    calls = 0
    while got < len(want):
        if it is None:
            fail(f"{what} {sid}: the shard closed after {got} of {len(want)} records")
        r = client.get_records(ShardIterator=it, Limit=LIMIT)
        calls += 1
        recs = r["Records"]
        if not recs:
            empty += 1
            if empty > MAX_EMPTY_READS:
                fail(f"{what} {sid}: {got} of {len(want)} records after {calls} GetRecords calls "
                     f"({empty} empty; MillisBehindLatest {r.get('MillisBehindLatest')})")
        for rec in recs:
            if got >= len(want):
                fail(f"{what} {sid}: more records than produced: {rec['Data'][:60]!r}")
            ts, data = want[got]
            if rec["Data"] != data:
                fail(f"{what} {sid}: record {got}: data {rec['Data'][:80]!r}, want {data[:80]!r}")
            at = rec["ApproximateArrivalTimestamp"]
            if isinstance(at, datetime.datetime):
                at = at.timestamp()
            if abs(at * 1000.0 - ts) > 1.0:
                fail(f"{what} {sid}: record {got}: ApproximateArrivalTimestamp {at}, want {ts / 1000.0}")
            got += 1
        it = r.get("NextShardIterator")
    return got, calls


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--stream", required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--at-timestamp", type=int)
    ap.add_argument("--region", default="us-east-1")
    a = ap.parse_args()

    # Leave ~/.aws alone: the broker's loopback default needs no real key.
    tmp = tempfile.mkdtemp(prefix="tier-getrecords-")
    for var, name in (("AWS_CONFIG_FILE", "config"), ("AWS_SHARED_CREDENTIALS_FILE", "credentials")):
        p = os.path.join(tmp, name)
        open(p, "w").close()
        os.environ[var] = p
    try:
        import boto3
        import botocore
        from botocore.config import Config
    except ImportError as e:
        fail(f"python3-boto3 is not installed for {sys.executable} ({e}); tools/deps.sh installs it")

    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=30, read_timeout=120)
    s = boto3.session.Session(aws_access_key_id="tier", aws_secret_access_key="tier", region_name=a.region)
    client = s.client("kinesis", endpoint_url=a.endpoint, config=cfg)
    print(f"tier_getrecords: boto3 {boto3.__version__} botocore {botocore.__version__} "
          f"({boto3.__file__}) against {a.endpoint}", flush=True)

    want = load_expect(a.expect)
    desc = client.describe_stream(StreamName=a.stream)["StreamDescription"]
    sids = [sh["ShardId"] for sh in desc["Shards"]]
    missing = [shard_id(i) for i in sorted(want) if shard_id(i) not in sids]
    if missing:
        fail(f"DescribeStream lists {sids}; records went to {missing} too")

    total = 0
    from botocore.exceptions import ClientError
    try:
        for i in sorted(want):
            got, calls = read_shard(client, a.stream, shard_id(i), {"ShardIteratorType": "TRIM_HORIZON"}, want[i],
                                    "TRIM_HORIZON")
            print(f"tier_getrecords: {shard_id(i)}: TRIM_HORIZON read {got} records byte-exact in {calls} calls",
                  flush=True)
            total += got
        if a.at_timestamp is not None:
            t_ms = a.at_timestamp * 1000
            for i in sorted(want):
                rest = [w for w in want[i] if w[0] >= t_ms]
                if not rest:
                    continue
                skipped = len(want[i]) - len(rest)
                got, calls = read_shard(client, a.stream, shard_id(i),
                                        {"ShardIteratorType": "AT_TIMESTAMP",
                                         "Timestamp": datetime.datetime.fromtimestamp(a.at_timestamp,
                                                                                      datetime.timezone.utc)},
                                        rest, "AT_TIMESTAMP")
                print(f"tier_getrecords: {shard_id(i)}: AT_TIMESTAMP {a.at_timestamp} starts at record {skipped} "
                      f"(the first at or after it) and read {got} records in {calls} calls", flush=True)
    except ClientError as e:
        err = e.response.get("Error", {})
        fail(f"the broker answered {err.get('Code')}: {err.get('Message')}")
    print(f"tier_getrecords: ok: {total} records from TRIM_HORIZON", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
