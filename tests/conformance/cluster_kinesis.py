#!/usr/bin/env python3
"""boto3 against a three-broker cluster through a broker that does not lead
the shard, across a kill -9 of the leader (issue 15).

    cluster_kinesis.py --endpoint URL --stream NAME --count N
                       --kill-after K --kill-pid PID [--region R]

Started by tests/integration/test_cluster_kinesis.c, which starts etcd and
three runneld, creates STREAM (one shard, replication 3) and passes the
HTTP endpoint of a follower and the PID of the shard's leader. This is
Debian's python3-boto3 used the way an application would (endpoint_url,
dummy credentials; botocore's own retries off, so every error the broker
sends is seen and retried here, visibly).

 1. PutRecord N records one at a time (sync produce). After the K-th is
    acknowledged the leader is sent SIGKILL (by the PID the test gave). A
    PutRecord that fails is retried (at most RETRIES times, with a short
    pause: a bounded retry, not a synchronisation); the time from the kill
    to the first acknowledged PutRecord after it is printed as
    "failover_ms N" (a measurement, not an assertion).
 2. GetRecords from TRIM_HORIZON through the same broker (it forwards the
    reads to the new leader) until the shard's end: every acknowledged
    record must be there, at the sequence number its PutRecord returned.
    Kinesis has no idempotent producer: a PutRecord retried after an
    ambiguous failure may be stored twice, so duplicates are counted and
    printed, not failed (runnel's idempotent producer is checked for zero
    duplicates by test_cluster_failover).

Exit 0 when every check passed, 1 otherwise (the reason on stderr), 2 on
bad arguments.
"""

import argparse
import os
import signal
import sys
import tempfile
import time

RETRIES = 600          # per record; 600 * 50 ms bounds a failover far beyond any expected one
MAX_EMPTY_READS = 200


def fail(msg):
    print(f"cluster_kinesis: FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--stream", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--kill-after", type=int, required=True)
    ap.add_argument("--kill-pid", type=int, required=True)
    ap.add_argument("--region", default="us-east-1")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="cluster-kinesis-")
    for var, name in (("AWS_CONFIG_FILE", "config"), ("AWS_SHARED_CREDENTIALS_FILE", "credentials")):
        p = os.path.join(tmp, name)
        open(p, "w").close()
        os.environ[var] = p
    try:
        import boto3
        import botocore
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as e:
        fail(f"python3-boto3 is not installed for {sys.executable} ({e}); tools/deps.sh installs it")

    cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=30)
    s = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="k", region_name=a.region)
    client = s.client("kinesis", endpoint_url=a.endpoint, config=cfg)
    print(f"cluster_kinesis: boto3 {boto3.__version__} botocore {botocore.__version__} against {a.endpoint}",
          flush=True)

    acked = {}  # data -> sequence number
    killed_at = None
    first_after = None
    errors = {}
    for i in range(a.count):
        data = f"rec-{i:06d}".encode()
        sent_at = time.monotonic()
        for attempt in range(RETRIES):
            try:
                r = client.put_record(StreamName=a.stream, Data=data, PartitionKey="k")
                break
            except (ClientError, BotoCoreError) as e:
                code = e.response["Error"]["Code"] if isinstance(e, ClientError) else type(e).__name__
                errors[code] = errors.get(code, 0) + 1
                time.sleep(0.05)
        else:
            fail(f"PutRecord of record {i} failed {RETRIES} times (errors so far: {errors})")
        acked[data] = r["SequenceNumber"]
        if killed_at is not None and first_after is None and sent_at > killed_at:
            first_after = time.monotonic()
        if i + 1 == a.kill_after:
            os.kill(a.kill_pid, signal.SIGKILL)
            killed_at = time.monotonic()
    if killed_at is None or first_after is None:
        fail(f"the leader was not killed before the last record (count {a.count}, kill after {a.kill_after})")
    print(f"cluster_kinesis: {len(acked)} PutRecord acknowledged; retried errors {errors}", flush=True)
    print(f"failover_ms {int((first_after - killed_at) * 1000)}", flush=True)

    sid = client.describe_stream(StreamName=a.stream)["StreamDescription"]["Shards"][0]["ShardId"]
    it = client.get_shard_iterator(StreamName=a.stream, ShardId=sid, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    seen = {}
    empty = 0
    while len(seen) < len(acked):
        r = client.get_records(ShardIterator=it, Limit=10000)
        if not r["Records"]:
            empty += 1
            if empty > MAX_EMPTY_READS:
                missing = [d for d in acked if d not in seen]
                fail(f"lost-write: {len(missing)} acknowledged records never read, e.g. {missing[:3]}")
        for rec in r["Records"]:
            seen.setdefault(rec["Data"], []).append(rec["SequenceNumber"])
        it = r["NextShardIterator"]
    dups = 0
    for d, seq in acked.items():
        if seq not in seen.get(d, []):
            fail(f"record {d!r} acknowledged at sequence number {seq}, read at {seen.get(d)}")
    for d, seqs in seen.items():
        if d not in acked:
            fail(f"a record that was never produced: {d[:60]!r}")
        dups += len(seqs) - 1
    print(f"cluster_kinesis: every acknowledged record read back through the follower at its sequence number; "
          f"lost-write 0, duplicates {dups} (PutRecord retries after an ambiguous failure)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
