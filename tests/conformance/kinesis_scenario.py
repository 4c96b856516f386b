#!/usr/bin/env python3
"""One Kinesis conformance scenario, run through one stock client.

    kinesis_scenario.py --client boto3|awscli-v2|awscli-v1|js --endpoint URL
        [--auth-endpoint URL --auth-creds AKID:SECRET]   SigV4 checks
        [--runnelctl PATH --native HOST:PORT]            records crossing APIs
        [--aws PATH] [--node PATH --js-dir DIR] [--target runneld|kinesalite]

Started by run.py (which starts runneld); it can also be pointed at any
Kinesis endpoint (e.g. kinesalite, via tools/kinesalite.js) to check the
tests themselves: --target kinesalite leaves out what only runneld has
(SigV4 verification against configured keys, the native protocol, the
sequence-number layout).

Every check prints PASS/FAIL with the reason; the last line is
"conformance[CLIENT]: N passed, M failed". Exit 0 only when nothing failed.
No check waits on time: where data must arrive, reads loop a bounded number
of times; no check asserts on timing.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kinesis_clients import (Boto3Client, CliClient, ClientFailure, JsClient,  # noqa: E402
                             KinesisError)

HASH_MAX = 2**128 - 1
MAX_READ_CALLS = 200        # GetRecords calls allowed to see expected data
MAX_STATUS_POLLS = 2000     # DescribeStreamSummary polls for ACTIVE / deleted
MAX_TS_ROUNDS = 20000       # filler records written to cross a timestamp tick


class CheckFailed(Exception):
    pass


class CheckSkipped(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def eq(got, want, what):
    if got != want:
        raise CheckFailed(f"{what}: got {got!r}, want {want!r}")


def md5_hash_key(pk):
    return int.from_bytes(hashlib.md5(pk.encode("utf-8")).digest(), "big")


def shard_index(shard_id):
    expect(shard_id.startswith("shardId-") and len(shard_id) == 20 and shard_id[8:].isdigit(),
           f"shard id {shard_id!r} is not shardId-%012d")
    return int(shard_id[8:])


def short(b, n=40):
    r = repr(b)
    return r if len(r) <= n else r[:n] + f"...({len(b)} bytes)"


class Scenario:
    def __init__(self, args, client):
        self.a = args
        self.c = client
        self.strict = args.target == "runneld"
        self.slow = isinstance(client, CliClient)  # one process per call: fewer repetitions
        self.passed = []
        self.failed = []
        self.skipped = []
        tag = uuid.uuid4().hex[:8]
        base = f"conf-{client.name.replace('.', '')}-{tag}"
        self.s1 = base + "-one"     # 1 shard: iterators and GetRecords
        self.s5 = base + "-five"    # 5 shards: routing, ListShards, PutRecords
        self.s1_records = []        # every record written to s1, in order: dicts
        self.s5_shards = []

    # -- plumbing -----------------------------------------------------------
    def call(self, op, params=None, creds=None):
        return self.c.call(op, params or {}, creds)

    def expect_error(self, codes, op, params, creds=None, what=None):
        codes = (codes,) if isinstance(codes, str) else tuple(codes)
        try:
            out = self.call(op, params, creds)
        except KinesisError as e:
            expect(e.code in codes, f"{what or op}: error {e.code} ({e.message!r}), want {'/'.join(codes)}")
            expect(e.status in (None, 400), f"{what or op}: HTTP status {e.status}, want 400")
            return e
        raise CheckFailed(f"{what or op}: succeeded ({short(json.dumps(out, default=str), 200)}), "
                          f"want {'/'.join(codes)}")

    def check(self, name, fn, *args):
        try:
            fn(*args)
        except CheckSkipped as e:
            self.skipped.append(name)
            print(f"SKIP {name}: {e}", flush=True)
            return True
        except CheckFailed as e:
            self.failed.append(name)
            print(f"FAIL {name}: {e}", flush=True)
            return False
        except (KinesisError, ClientFailure) as e:
            self.failed.append(name)
            print(f"FAIL {name}: unexpected {type(e).__name__} {e}", flush=True)
            return False
        except Exception as e:  # a bug in the check itself is a failure too
            self.failed.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}\n{traceback.format_exc()}", flush=True)
            return False
        self.passed.append(name)
        print(f"PASS {name}", flush=True)
        return True

    def wait_active(self, stream):
        for _ in range(MAX_STATUS_POLLS):
            d = self.call("DescribeStreamSummary", {"StreamName": stream})["StreamDescriptionSummary"]
            if d["StreamStatus"] == "ACTIVE":
                return d
            expect(d["StreamStatus"] == "CREATING", f"{stream}: status {d['StreamStatus']}")
        raise CheckFailed(f"{stream} not ACTIVE after {MAX_STATUS_POLLS} polls")

    def iterator(self, stream, shard, itype, **kw):
        p = {"StreamName": stream, "ShardId": shard, "ShardIteratorType": itype}
        p.update(kw)
        it = self.call("GetShardIterator", p)["ShardIterator"]
        expect(isinstance(it, str) and it, f"GetShardIterator {itype}: no ShardIterator")
        return it

    def read(self, it, want, limit=None, exact=True):
        """GetRecords from `it` until `want` records arrived (bounded by call
        count). With exact, one more call must return nothing. Returns
        (records, next iterator, last MillisBehindLatest)."""
        recs, mbl = [], None
        for _ in range(MAX_READ_CALLS):
            if len(recs) >= want:
                break
            p = {"ShardIterator": it}
            if limit:
                p["Limit"] = limit
            out = self.call("GetRecords", p)
            self._check_getrecords_shape(out, limit)
            recs += out["Records"]
            it, mbl = out.get("NextShardIterator"), out["MillisBehindLatest"]
            expect(it, "GetRecords on an open shard returned no NextShardIterator")
        expect(len(recs) >= want, f"only {len(recs)} of {want} records after {MAX_READ_CALLS} GetRecords")
        if exact:
            out = self.call("GetRecords", {"ShardIterator": it})
            self._check_getrecords_shape(out, None)
            extra = out["Records"]
            expect(not extra and len(recs) == want,
                   f"{len(recs) + len(extra)} records where {want} were expected (extra: "
                   f"{[short(r['Data']) for r in (recs[want:] + extra)][:5]})")
            expect(out["MillisBehindLatest"] == 0,
                   f"MillisBehindLatest {out['MillisBehindLatest']} at the tip, want 0")
            it, mbl = out["NextShardIterator"], out["MillisBehindLatest"]
        return recs, it, mbl

    @staticmethod
    def _check_getrecords_shape(out, limit):
        expect(isinstance(out.get("Records"), list), "GetRecords: no Records list")
        expect(isinstance(out.get("MillisBehindLatest"), int) and out["MillisBehindLatest"] >= 0,
               f"GetRecords: MillisBehindLatest {out.get('MillisBehindLatest')!r}, want an integer >= 0")
        if limit:
            expect(len(out["Records"]) <= limit, f"GetRecords Limit={limit} returned {len(out['Records'])}")
        for r in out["Records"]:
            for k in ("SequenceNumber", "Data", "PartitionKey", "ApproximateArrivalTimestamp"):
                expect(k in r, f"GetRecords record lacks {k}: {short(r, 200)}")
            expect(isinstance(r["Data"], bytes), "record Data is not a blob")
            expect(r["SequenceNumber"].isdigit(), f"SequenceNumber {r['SequenceNumber']!r} is not decimal")

    def same_records(self, got, want, what):
        g = [(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in got]
        w = [(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in want]
        if g != w:
            def fmt(lst):
                return [(s[-8:], k, short(d, 24)) for s, k, d in lst]
            raise CheckFailed(f"{what}: records differ\n   got  {fmt(g)}\n   want {fmt(w)}")

    def put(self, stream, pk, data, **kw):
        p = {"StreamName": stream, "PartitionKey": pk, "Data": data}
        p.update(kw)
        p = {k: v for k, v in p.items() if v is not None}
        out = self.call("PutRecord", p)
        expect(out.get("ShardId") and out.get("SequenceNumber", "").isdigit(), f"PutRecord answer {out}")
        rec = {"SequenceNumber": out["SequenceNumber"], "PartitionKey": pk,
               "Data": data.encode("utf-8") if isinstance(data, str) else data, "ShardId": out["ShardId"]}
        if stream == self.s1:
            self.s1_records.append(rec)
        return rec

    # -- the checks ---------------------------------------------------------
    def t_create(self):
        for name, n in ((self.s1, 1), (self.s5, 5)):
            out = self.call("CreateStream", {"StreamName": name, "ShardCount": n})
            expect(out == {}, f"CreateStream answered {out}, want an empty body")
        for name in (self.s1, self.s5):
            self.wait_active(name)
        self.expect_error("ResourceInUseException", "CreateStream", {"StreamName": self.s1, "ShardCount": 1},
                          what="CreateStream of an existing stream")

    def t_waiters(self):
        # The client's own waiter (`aws kinesis wait stream-exists`, boto3's
        # get_waiter, the JS SDK's waitUntilStreamExists): its first
        # DescribeStream already sees ACTIVE, so nothing sleeps.
        self.c.wait("StreamExists", {"StreamName": self.s5})

    def t_stream_arn(self):
        arn = self.call("DescribeStreamSummary", {"StreamName": self.s5})["StreamDescriptionSummary"]["StreamARN"]
        try:
            d = self.call("DescribeStreamSummary", {"StreamARN": arn})["StreamDescriptionSummary"]
        except ClientFailure as e:
            if "StreamARN" in str(e) or "stream-arn" in str(e):
                why = " ".join(str(e).split())[:160]
                raise CheckSkipped(f"this client version has no StreamARN parameter ({why})")
            raise
        eq(d["StreamName"], self.s5, "DescribeStreamSummary by StreamARN")
        out = self.call("ListShards", {"StreamARN": arn})
        eq(len(out["Shards"]), 5, "ListShards by StreamARN")
        rec = self.put(self.s5, "by-arn", b"written by ARN", StreamARN=arn, StreamName=None)
        it = self.call("GetShardIterator", {"StreamARN": arn, "ShardId": rec["ShardId"],
                                            "ShardIteratorType": "AT_SEQUENCE_NUMBER",
                                            "StartingSequenceNumber": rec["SequenceNumber"]})["ShardIterator"]
        got, _, _ = self.read(it, 1, exact=False)
        eq(got[0]["Data"], b"written by ARN", "record written and read by StreamARN")
        self.expect_error("ResourceNotFoundException", "DescribeStreamSummary",
                          {"StreamARN": arn.rsplit("/", 1)[0] + "/" + self.s5 + "-nope"},
                          what="DescribeStreamSummary of an unknown stream's ARN")

    def t_describe_stream(self):
        d = self.call("DescribeStream", {"StreamName": self.s5})["StreamDescription"]
        eq(d["StreamName"], self.s5, "StreamName")
        eq(d["StreamStatus"], "ACTIVE", "StreamStatus")
        eq(d["HasMoreShards"], False, "HasMoreShards")
        eq(d["RetentionPeriodHours"], 24, "RetentionPeriodHours")
        expect(d["StreamARN"].startswith("arn:aws:kinesis:") and d["StreamARN"].endswith(":stream/" + self.s5),
               f"StreamARN {d['StreamARN']!r}")
        expect(isinstance(d.get("StreamCreationTimestamp"), float), "StreamCreationTimestamp missing")
        expect(isinstance(d.get("EnhancedMonitoring"), list), "EnhancedMonitoring missing")
        shards = d["Shards"]
        eq([s["ShardId"] for s in shards], [f"shardId-{i:012d}" for i in range(5)], "shard ids")
        nxt = 0
        for s in shards:
            lo, hi = int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])
            eq(lo, nxt, f"{s['ShardId']} StartingHashKey (ranges must be contiguous)")
            expect(hi >= lo, f"{s['ShardId']}: EndingHashKey < StartingHashKey")
            nxt = hi + 1
            ssn = s["SequenceNumberRange"]["StartingSequenceNumber"]
            expect(ssn.isdigit(), f"StartingSequenceNumber {ssn!r}")
            expect("EndingSequenceNumber" not in s["SequenceNumberRange"], "open shard has EndingSequenceNumber")
        eq(nxt, HASH_MAX + 1, "hash key ranges must cover 0..2^128-1")
        self.s5_shards = shards
        # paging
        d = self.call("DescribeStream", {"StreamName": self.s5, "Limit": 2})["StreamDescription"]
        eq([s["ShardId"] for s in d["Shards"]], ["shardId-000000000000", "shardId-000000000001"], "Limit=2 page")
        eq(d["HasMoreShards"], True, "HasMoreShards with Limit=2")
        d = self.call("DescribeStream", {"StreamName": self.s5,
                                         "ExclusiveStartShardId": "shardId-000000000001"})["StreamDescription"]
        eq([s["ShardId"] for s in d["Shards"]], [f"shardId-{i:012d}" for i in (2, 3, 4)],
           "ExclusiveStartShardId=shardId-000000000001")
        eq(d["HasMoreShards"], False, "HasMoreShards after the last page")

    def t_describe_summary(self):
        d = self.call("DescribeStreamSummary", {"StreamName": self.s5})["StreamDescriptionSummary"]
        eq(d["StreamName"], self.s5, "StreamName")
        eq(d["StreamStatus"], "ACTIVE", "StreamStatus")
        eq(d["OpenShardCount"], 5, "OpenShardCount")
        eq(d["RetentionPeriodHours"], 24, "RetentionPeriodHours")
        expect(d["StreamARN"].endswith(":stream/" + self.s5), f"StreamARN {d['StreamARN']!r}")
        expect(isinstance(d.get("StreamCreationTimestamp"), float), "StreamCreationTimestamp missing")

    def t_list_streams(self):
        names = self.call("ListStreams")["StreamNames"]
        expect(self.s1 in names and self.s5 in names, f"ListStreams lacks our streams: {names}")
        out = self.call("ListStreams", {"Limit": 1})
        eq(len(out["StreamNames"]), 1, "ListStreams Limit=1 count")
        eq(out["HasMoreStreams"], True, "HasMoreStreams with Limit=1")
        seen, start = [], None
        for _ in range(10000):
            p = {"Limit": 1}
            if start:
                p["ExclusiveStartStreamName"] = start
            out = self.call("ListStreams", p)
            seen += out["StreamNames"]
            if not out["HasMoreStreams"]:
                break
            start = out["StreamNames"][-1]
        expect(self.s1 in seen and self.s5 in seen, "ExclusiveStartStreamName paging lost a stream")
        eq(seen, sorted(set(seen)), "ListStreams paging order (sorted, no duplicates)")

    def t_list_shards(self):
        ids = [f"shardId-{i:012d}" for i in range(5)]
        out = self.call("ListShards", {"StreamName": self.s5})
        eq([s["ShardId"] for s in out["Shards"]], ids, "ListShards")
        expect(not out.get("NextToken"), "ListShards without MaxResults returned a NextToken")
        # NextToken paging with MaxResults: later pages send only NextToken.
        got, pages, p = [], [], {"StreamName": self.s5, "MaxResults": 2}
        for _ in range(10):
            out = self.call("ListShards", p)
            pages.append(len(out["Shards"]))
            expect(len(out["Shards"]) <= 2, f"MaxResults=2 page has {len(out['Shards'])} shards")
            got += [s["ShardId"] for s in out["Shards"]]
            if not out.get("NextToken"):
                break
            p = {"NextToken": out["NextToken"], "MaxResults": 2}
        eq(got, ids, f"shards over NextToken pages {pages}")
        expect(pages[:3] == [2, 2, 1], f"page sizes {pages}, want [2, 2, 1]")
        # ShardFilter
        out = self.call("ListShards", {"StreamName": self.s5,
                                       "ShardFilter": {"Type": "AFTER_SHARD_ID", "ShardId": ids[2]}})
        eq([s["ShardId"] for s in out["Shards"]], ids[3:], "ShardFilter AFTER_SHARD_ID shardId-000000000002")
        out = self.call("ListShards", {"StreamName": self.s5, "ShardFilter": {"Type": "AT_TRIM_HORIZON"}})
        eq([s["ShardId"] for s in out["Shards"]], ids, "ShardFilter AT_TRIM_HORIZON")
        out = self.call("ListShards", {"StreamName": self.s5, "ShardFilter": {"Type": "AT_LATEST"}})
        eq([s["ShardId"] for s in out["Shards"]], ids, "ShardFilter AT_LATEST")
        out = self.call("ListShards", {"StreamName": self.s5, "ExclusiveStartShardId": ids[3]})
        eq([s["ShardId"] for s in out["Shards"]], ids[4:], "ExclusiveStartShardId shardId-000000000003")
        # NextToken together with StreamName is an error in AWS.
        tok = self.call("ListShards", {"StreamName": self.s5, "MaxResults": 1}).get("NextToken")
        expect(tok, "MaxResults=1 of 5 shards returned no NextToken")
        self.expect_error("InvalidArgumentException", "ListShards", {"StreamName": self.s5, "NextToken": tok},
                          what="ListShards with both NextToken and StreamName")

    def shard_for(self, hk):
        for s in self.s5_shards:
            if int(s["HashKeyRange"]["StartingHashKey"]) <= hk <= int(s["HashKeyRange"]["EndingHashKey"]):
                return s["ShardId"]
        raise CheckFailed(f"no shard holds hash key {hk}")

    def check_seq_layout(self, seq, shard_id):
        n = int(seq)
        if self.strict:  # the 186-bit layout the KCL decodes (shard index in bits 4..35)
            eq(n.bit_length(), 186, f"bit length of sequence number {seq}")
            eq((n >> 4) & 0xFFFFFFFF, shard_index(shard_id), f"shard index bits of {seq}")

    def t_put_record_routing(self):
        expect(self.s5_shards, "needs DescribeStream's shards")
        last = {}
        for i in range(6 if self.slow else 20):
            pk = f"user-{i}-{uuid.uuid4()}"
            data = json.dumps({"event": "view", "i": i}).encode()
            rec = self.put(self.s5, pk, data)
            eq(rec["ShardId"], self.shard_for(md5_hash_key(pk)), f"ShardId of partition key {pk} (MD5 routing)")
            self.check_seq_layout(rec["SequenceNumber"], rec["ShardId"])
            prev = last.get(rec["ShardId"])
            expect(prev is None or int(rec["SequenceNumber"]) > prev,
                   f"sequence numbers not increasing in {rec['ShardId']}")
            last[rec["ShardId"]] = int(rec["SequenceNumber"])
        s3 = self.s5_shards[3]
        for hk in (s3["HashKeyRange"]["StartingHashKey"], s3["HashKeyRange"]["EndingHashKey"]):
            rec = self.put(self.s5, "ignored-when-explicit", b"ehk", ExplicitHashKey=hk)
            eq(rec["ShardId"], "shardId-000000000003", f"ShardId for ExplicitHashKey {hk}")

    def t_put_records(self):
        expect(self.s5_shards, "needs DescribeStream's shards")
        recs = [{"PartitionKey": f"batch-{i}-{uuid.uuid4().hex}", "Data": f"batch record {i}".encode()}
                for i in range(12)]
        out = self.call("PutRecords", {"StreamName": self.s5, "Records": recs})
        eq(out.get("FailedRecordCount", 0), 0, "FailedRecordCount")
        eq(len(out["Records"]), len(recs), "result count")
        for r, res in zip(recs, out["Records"]):
            expect("ErrorCode" not in res, f"unexpected per-record error {res}")
            eq(res["ShardId"], self.shard_for(md5_hash_key(r["PartitionKey"])), "PutRecords ShardId (MD5 routing)")
            self.check_seq_layout(res["SequenceNumber"], res["ShardId"])
        # read them back from shard of the first record: same data, same sequence numbers
        sid = out["Records"][0]["ShardId"]
        mine = [(res["SequenceNumber"], r["PartitionKey"], r["Data"])
                for r, res in zip(recs, out["Records"]) if res["ShardId"] == sid]
        it = self.iterator(self.s5, sid, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=mine[0][0])
        got, _, _ = self.read(it, len(mine), exact=False)
        got = [(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in got
               if r["PartitionKey"].startswith("batch-")]
        eq(got[:len(mine)], mine, f"records read back from {sid}")

    def t_put_oversize(self):
        # AWS: a record's data + partition key is at most 1 MiB. Data over
        # 1 MiB breaks the API's length constraint on Data: a
        # ValidationException for the whole request, in PutRecords too
        # (InvalidArgumentException accepted: AWS's newer 10 MiB data
        # constraint moves the check past validation).
        too_big = ("ValidationException", "InvalidArgumentException")
        self.expect_error(too_big, "PutRecord",
                          {"StreamName": self.s1, "PartitionKey": "big", "Data": b"x" * (1048576 + 1)},
                          what="PutRecord with 1 MiB + 1 byte of data")
        batch = [{"PartitionKey": "ok-1", "Data": b"valid one"},
                 {"PartitionKey": "big", "Data": b"y" * (1048576 + 1)},
                 {"PartitionKey": "ok-2", "Data": b"valid two"}]
        self.expect_error(too_big, "PutRecords", {"StreamName": self.s1, "Records": batch},
                          what="PutRecords with one 1 MiB + 1 byte record among valid ones")
        # Data within 1 MiB, but data + partition key over it (on s5: should
        # it be accepted, s1's exact content checks stay meaningful).
        self.expect_error("InvalidArgumentException", "PutRecord",
                          {"StreamName": self.s5, "PartitionKey": "pk", "Data": b"w" * 1048575},
                          what="PutRecord with 1048575 bytes of data and a 2-byte partition key")
        many = [{"PartitionKey": f"k{i}", "Data": b"z"} for i in range(501)]
        self.expect_error("ValidationException", "PutRecords", {"StreamName": self.s1, "Records": many},
                          what="PutRecords with 501 records")
        # Nothing of the rejected requests may have been written: s1 must
        # still be empty (t_iterators checks its exact content later).
        it = self.iterator(self.s1, "shardId-000000000000", "TRIM_HORIZON")
        self.read(it, 0)
        # Exactly 1 MiB of data + partition key is allowed (the limit is inclusive).
        rec = self.put(self.s5, "max-size", b"m" * (1048576 - len("max-size")))
        it = self.iterator(self.s5, rec["ShardId"], "AT_SEQUENCE_NUMBER",
                           StartingSequenceNumber=rec["SequenceNumber"])
        got, _, _ = self.read(it, 1, limit=1, exact=False)
        eq(len(got[0]["Data"]), 1048576 - len("max-size"), "length of the 1 MiB record read back")
        expect(got[0]["Data"] == rec["Data"], "1 MiB record data differs")

    def t_iterators(self):
        sh = "shardId-000000000000"
        payloads = [bytes(range(256)) + b"\x00end",               # binary, every byte value
                    "text record \u00e9\u4e2d\U0001F600",          # UTF-8 text
                    b'{"event":"click","user":"u1"}',
                    b"\xff\xfe\xfd",
                    b"r4"]
        for i, d in enumerate(payloads):
            self.put(self.s1, f"key-{i}", d)
        r = self.s1_records
        # TRIM_HORIZON, read with Limit=2 following NextShardIterator
        it = self.iterator(self.s1, sh, "TRIM_HORIZON")
        got, tip, mbl = self.read(it, 5, limit=2)
        self.same_records(got, r, "TRIM_HORIZON")
        eq(mbl, 0, "MillisBehindLatest once caught up")
        # AT_SEQUENCE_NUMBER / AFTER_SEQUENCE_NUMBER
        it = self.iterator(self.s1, sh, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=r[2]["SequenceNumber"])
        got, _, _ = self.read(it, 3)
        self.same_records(got, r[2:], "AT_SEQUENCE_NUMBER of record 2")
        it = self.iterator(self.s1, sh, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=r[2]["SequenceNumber"])
        got, _, _ = self.read(it, 2)
        self.same_records(got, r[3:], "AFTER_SEQUENCE_NUMBER of record 2")
        it = self.iterator(self.s1, sh, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=r[4]["SequenceNumber"])
        self.read(it, 0)
        # LATEST: nothing now; the next record put afterwards is the first one read.
        latest = self.iterator(self.s1, sh, "LATEST")
        out = self.call("GetRecords", {"ShardIterator": latest})
        eq(out["Records"], [], "GetRecords at LATEST before any new record")
        eq(out["MillisBehindLatest"], 0, "MillisBehindLatest at LATEST")
        after_empty = out["NextShardIterator"]
        self.put(self.s1, "key-5", b"after LATEST")
        got, _, _ = self.read(latest, 1)
        self.same_records(got, r[5:], "LATEST iterator after a new record")
        got, _, _ = self.read(after_empty, 1)
        self.same_records(got, r[5:], "NextShardIterator of an empty read at LATEST")
        got, _, _ = self.read(tip, 1)
        self.same_records(got, r[5:], "NextShardIterator kept from the TRIM_HORIZON read")
        # GetRecords Limit=1 from the start: one record, and MillisBehindLatest is an integer >= 0
        it = self.iterator(self.s1, sh, "TRIM_HORIZON")
        out = self.call("GetRecords", {"ShardIterator": it, "Limit": 1})
        expect(len(out["Records"]) <= 1, "Limit=1")
        # ApproximateArrivalTimestamp: plausible, and never decreasing along the shard.
        it = self.iterator(self.s1, sh, "TRIM_HORIZON")
        got, _, _ = self.read(it, len(r))
        now = time.time()
        prev = 0
        for g in got:
            ts = g["ApproximateArrivalTimestamp"]
            expect(now - 3600 < ts < now + 3600, f"ApproximateArrivalTimestamp {ts} vs now {now}")
            expect(ts >= prev, "ApproximateArrivalTimestamp decreased along the shard")
            prev = ts

    def t_at_timestamp(self):
        sh = "shardId-000000000000"
        expect(len(self.s1_records) >= 6, "needs the records of the iterator check")
        res = self.c.ts_resolution_ms
        # Learn the arrival time (ms) of every record in s1.
        it = self.iterator(self.s1, sh, "TRIM_HORIZON")
        got, tip, _ = self.read(it, len(self.s1_records))
        self.same_records(got, self.s1_records, "s1 before AT_TIMESTAMP")
        arrivals = [round(g["ApproximateArrivalTimestamp"] * 1000) for g in got]
        # Write filler records until one lands on a later tick of the
        # client's timestamp resolution (1 s for botocore, 1 ms for the JS
        # SDK) than the last record: bounded by count, not by time.
        first_tick = arrivals[-1] // res
        for n in range(MAX_TS_ROUNDS):
            self.put(self.s1, "filler", f"filler {n}".encode())
            got, tip, _ = self.read(tip, 1, exact=False)
            eq(got[0]["SequenceNumber"], self.s1_records[-1]["SequenceNumber"], "filler read back")
            arrivals.append(round(got[0]["ApproximateArrivalTimestamp"] * 1000))
            if arrivals[-1] // res > first_tick:
                break
        else:
            raise CheckFailed(f"arrival time did not advance a tick in {MAX_TS_ROUNDS} records")
        t_ms = (arrivals[-1] // res) * res
        want = [rec for rec, a in zip(self.s1_records, arrivals) if a >= t_ms]
        expect(0 < len(want) < len(self.s1_records), "AT_TIMESTAMP split is trivial")
        it = self.iterator(self.s1, sh, "AT_TIMESTAMP", Timestamp=t_ms / 1000.0)
        got, _, _ = self.read(it, len(want))
        self.same_records(got, want, f"AT_TIMESTAMP {t_ms / 1000.0}")
        # A timestamp before the first record reads everything.
        it = self.iterator(self.s1, sh, "AT_TIMESTAMP", Timestamp=float((arrivals[0] // 1000) - 3600))
        got, _, _ = self.read(it, len(self.s1_records))
        self.same_records(got, self.s1_records, "AT_TIMESTAMP an hour before the first record")
        # A timestamp in the future is an InvalidArgumentException in AWS.
        self.expect_error("InvalidArgumentException", "GetShardIterator",
                          {"StreamName": self.s1, "ShardId": sh, "ShardIteratorType": "AT_TIMESTAMP",
                           "Timestamp": time.time() + 86400}, what="AT_TIMESTAMP one day in the future")

    def t_retention(self):
        def hours():
            return self.call("DescribeStreamSummary",
                             {"StreamName": self.s1})["StreamDescriptionSummary"]["RetentionPeriodHours"]
        eq(hours(), 24, "initial RetentionPeriodHours")
        self.call("IncreaseStreamRetentionPeriod", {"StreamName": self.s1, "RetentionPeriodHours": 48})
        eq(hours(), 48, "after IncreaseStreamRetentionPeriod 48")
        self.expect_error("InvalidArgumentException", "IncreaseStreamRetentionPeriod",
                          {"StreamName": self.s1, "RetentionPeriodHours": 36},
                          what="IncreaseStreamRetentionPeriod below the current period")
        self.expect_error("InvalidArgumentException", "DecreaseStreamRetentionPeriod",
                          {"StreamName": self.s1, "RetentionPeriodHours": 72},
                          what="DecreaseStreamRetentionPeriod above the current period")
        self.expect_error(("InvalidArgumentException", "ValidationException"), "IncreaseStreamRetentionPeriod",
                          {"StreamName": self.s1, "RetentionPeriodHours": 8761},
                          what="IncreaseStreamRetentionPeriod above 8760 hours")
        self.call("DecreaseStreamRetentionPeriod", {"StreamName": self.s1, "RetentionPeriodHours": 24})
        eq(hours(), 24, "after DecreaseStreamRetentionPeriod 24")
        self.expect_error("InvalidArgumentException", "DecreaseStreamRetentionPeriod",
                          {"StreamName": self.s1, "RetentionPeriodHours": 12},
                          what="DecreaseStreamRetentionPeriod below 24 hours")
        self.expect_error("ResourceNotFoundException", "IncreaseStreamRetentionPeriod",
                          {"StreamName": self.s1 + "-nope", "RetentionPeriodHours": 48},
                          what="IncreaseStreamRetentionPeriod of an unknown stream")
        # The records survive retention changes.
        it = self.iterator(self.s1, "shardId-000000000000", "TRIM_HORIZON")
        got, _, _ = self.read(it, len(self.s1_records))
        self.same_records(got, self.s1_records, "s1 after retention changes")

    def t_tags(self):
        def tags(**kw):
            p = {"StreamName": self.s5}
            p.update(kw)
            out = self.call("ListTagsForStream", p)
            return {t["Key"]: t.get("Value") for t in out["Tags"]}, out["HasMoreTags"]
        eq(tags(), ({}, False), "tags of a new stream")
        self.call("AddTagsToStream", {"StreamName": self.s5, "Tags": {"team": "mobile", "env": "test",
                                                                      "cost-center": "42"}})
        eq(tags(), ({"team": "mobile", "env": "test", "cost-center": "42"}, False), "tags after AddTagsToStream")
        self.call("AddTagsToStream", {"StreamName": self.s5, "Tags": {"env": "prod"}})
        eq(tags()[0]["env"], "prod", "AddTagsToStream overwrites a key")
        t, more = tags(Limit=2)
        eq((len(t), more), (2, True), "ListTagsForStream Limit=2")
        last = list(t)[-1]  # the last key of the page, in the order returned
        t2, more = tags(ExclusiveStartTagKey=last)
        eq(set(t) | set(t2), {"team", "env", "cost-center"}, "tags over ExclusiveStartTagKey paging")
        eq(more, False, "HasMoreTags on the last page")
        self.call("RemoveTagsFromStream", {"StreamName": self.s5, "TagKeys": ["env", "absent-key"]})
        eq(tags(), ({"team": "mobile", "cost-center": "42"}, False), "tags after RemoveTagsFromStream")
        self.expect_error("ResourceNotFoundException", "ListTagsForStream", {"StreamName": self.s5 + "-nope"},
                          what="ListTagsForStream of an unknown stream")

    def t_describe_limits(self):
        out = self.call("DescribeLimits")
        expect(isinstance(out.get("ShardLimit"), int) and out["ShardLimit"] > 0, f"ShardLimit in {out}")
        expect(isinstance(out.get("OpenShardCount"), int) and out["OpenShardCount"] >= 6,
               f"OpenShardCount {out.get('OpenShardCount')} with our 6 shards open")
        for k in ("OnDemandStreamCount", "OnDemandStreamCountLimit"):
            expect(isinstance(out.get(k), int), f"{k} missing from {out}")

    def t_errors(self):
        nope = self.s1 + "-does-not-exist"
        sh = "shardId-000000000000"
        for op, p in (("DescribeStream", {"StreamName": nope}),
                      ("DescribeStreamSummary", {"StreamName": nope}),
                      ("ListShards", {"StreamName": nope}),
                      ("PutRecord", {"StreamName": nope, "PartitionKey": "k", "Data": b"d"}),
                      ("PutRecords", {"StreamName": nope, "Records": [{"PartitionKey": "k", "Data": b"d"}]}),
                      ("GetShardIterator", {"StreamName": nope, "ShardId": sh, "ShardIteratorType": "LATEST"}),
                      ("AddTagsToStream", {"StreamName": nope, "Tags": {"a": "b"}}),
                      ("DeleteStream", {"StreamName": nope})):
            e = self.expect_error("ResourceNotFoundException", op, p, what=f"{op} of an unknown stream")
            expect(e.message, f"{op}: ResourceNotFoundException without a message")
        self.expect_error("ResourceNotFoundException", "GetShardIterator",
                          {"StreamName": self.s5, "ShardId": "shardId-000000000099", "ShardIteratorType": "LATEST"},
                          what="GetShardIterator of an unknown shard")
        self.expect_error(("ValidationException", "InvalidArgumentException"), "GetShardIterator",
                          {"StreamName": self.s1, "ShardId": sh, "ShardIteratorType": "SIDEWAYS"},
                          what="GetShardIterator with an unknown ShardIteratorType")
        self.expect_error("InvalidArgumentException", "GetShardIterator",
                          {"StreamName": self.s1, "ShardId": sh, "ShardIteratorType": "AT_SEQUENCE_NUMBER"},
                          what="AT_SEQUENCE_NUMBER without StartingSequenceNumber")
        # A sequence number of another shard is not valid for this one.
        if self.s5_shards:
            rec = self.put(self.s5, "x", b"x", ExplicitHashKey=self.s5_shards[4]["HashKeyRange"]["StartingHashKey"])
            self.expect_error("InvalidArgumentException", "GetShardIterator",
                              {"StreamName": self.s5, "ShardId": "shardId-000000000001",
                               "ShardIteratorType": "AT_SEQUENCE_NUMBER",
                               "StartingSequenceNumber": rec["SequenceNumber"]},
                              what="AT_SEQUENCE_NUMBER with a sequence number of another shard")
        self.expect_error("InvalidArgumentException", "GetRecords", {"ShardIterator": "A" * 200},
                          what="GetRecords with a made-up iterator")
        it = self.iterator(self.s1, sh, "TRIM_HORIZON")
        for pos in (len(it) // 2, len(it) - 2):
            c = it[pos]
            t = it[:pos] + ("B" if c != "B" else "C") + it[pos + 1:]
            self.expect_error("InvalidArgumentException", "GetRecords", {"ShardIterator": t},
                              what=f"GetRecords with an iterator changed at character {pos}")

    def t_sigv4(self):
        ep = self.a.auth_endpoint
        akid, secret = self.a.auth_creds.split(":", 1)
        c = self.a.make_client(ep, (akid, secret))
        try:
            out = c.call("ListStreams", {})
            expect(isinstance(out.get("StreamNames"), list), "ListStreams with the right key")
            name = f"conf-sig-{uuid.uuid4().hex[:8]}"
            c.call("CreateStream", {"StreamName": name, "ShardCount": 1})
            for _ in range(MAX_STATUS_POLLS):
                if c.call("DescribeStreamSummary", {"StreamName": name})["StreamDescriptionSummary"][
                        "StreamStatus"] == "ACTIVE":
                    break
            r = c.call("PutRecord", {"StreamName": name, "PartitionKey": "p", "Data": b"signed \x00 bytes"})
            it = c.call("GetShardIterator", {"StreamName": name, "ShardId": r["ShardId"],
                                             "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
            got = []
            for _ in range(MAX_READ_CALLS):
                out = c.call("GetRecords", {"ShardIterator": it})
                got += out["Records"]
                it = out["NextShardIterator"]
                if got:
                    break
            eq([g["Data"] for g in got], [b"signed \x00 bytes"], "signed PutRecord/GetRecords round trip")
            for creds, codes, what in (
                    ((akid, secret + "x"), ("InvalidSignatureException",), "a wrong secret"),
                    ((akid + "X", secret), ("UnrecognizedClientException", "InvalidSignatureException"),
                     "an unknown access key id")):
                for op, p in (("ListStreams", {}),
                              ("PutRecord", {"StreamName": name, "PartitionKey": "p", "Data": b"forged"})):
                    try:
                        c.call(op, p, creds=creds)
                    except KinesisError as e:
                        expect(e.code in codes, f"{op} with {what}: {e.code} ({e.message}), want {'/'.join(codes)}")
                        expect(e.status in (None, 400, 403), f"{op} with {what}: HTTP {e.status}")
                        continue
                    raise CheckFailed(f"{op} with {what} succeeded")
            # the forged PutRecords wrote nothing
            it = c.call("GetShardIterator", {"StreamName": name, "ShardId": r["ShardId"],
                                             "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
            out = c.call("GetRecords", {"ShardIterator": it})
            eq([g["Data"] for g in out["Records"]], [b"signed \x00 bytes"], "records after forged requests")
            c.call("DeleteStream", {"StreamName": name})
        finally:
            c.close()

    def t_cross_api(self):
        ctl, native = self.a.runnelctl, self.a.native
        env = dict(os.environ, RUNNEL_BROKER=native)
        marker = uuid.uuid4().hex
        # Kinesis PutRecord -> native consume
        data = json.dumps({"event": "cross", "via": self.c.name, "id": marker}).encode()
        rec = self.put(self.s1, "cross-" + marker, data)
        binrec = self.put(self.s1, "crossbin-" + marker, b"\x00\x01\xfe\xff" + marker.encode())
        p = subprocess.run([ctl, "--broker", native, "--json", "consume", self.s1, "--shard", rec["ShardId"]],
                           capture_output=True, text=True, env=env, timeout=120)
        expect(p.returncode == 0, f"runnelctl consume exit {p.returncode}: {p.stderr.strip()}")
        lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
        eq(len(lines), len(self.s1_records), "records runnelctl consume sees in s1")
        mine = [x for x in lines if x.get("key") == "cross-" + marker]
        eq(len(mine), 1, "our record in runnelctl consume output")
        eq(mine[0].get("data"), data.decode(), "data of the record read natively")
        import base64
        binl = [x for x in lines if x.get("key") == "crossbin-" + marker]
        eq(len(binl), 1, "our binary record in runnelctl consume output")
        eq(base64.b64decode(binl[0].get("data_base64", "")), binrec["Data"], "binary data read natively")
        # native produce -> Kinesis GetRecords
        line = json.dumps({"event": "native", "id": marker, "text": "h\u00e9llo"})
        p = subprocess.run([ctl, "--broker", native, "produce", self.s1], input=line + "\n",
                           capture_output=True, text=True, env=env, timeout=120)
        expect(p.returncode == 0, f"runnelctl produce exit {p.returncode}: {p.stderr.strip()}")
        it = self.iterator(self.s1, "shardId-000000000000", "AFTER_SEQUENCE_NUMBER",
                           StartingSequenceNumber=binrec["SequenceNumber"])
        got, _, _ = self.read(it, 1)
        eq(got[0]["Data"], line.encode("utf-8"), "data of the natively produced record via GetRecords")
        expect(int(got[0]["SequenceNumber"]) > int(binrec["SequenceNumber"]), "sequence number order")
        self.check_seq_layout(got[0]["SequenceNumber"], "shardId-000000000000")
        self.s1_records.append({"SequenceNumber": got[0]["SequenceNumber"],
                                "PartitionKey": got[0]["PartitionKey"], "Data": got[0]["Data"]})

    def t_partial_failure(self):
        """PutRecords with per-record failures (HTTP 200, FailedRecordCount,
        ErrorCode/ErrorMessage in place of SequenceNumber/ShardId).

        How it is triggered: AWS fails single records of a PutRecords when a
        shard is over its write limit (ProvisionedThroughputExceededException)
        or on an internal failure. runneld does the same with
        `kinesis_throughput_limits: kinesis` (AWS's 1 MiB/s and 1000
        records/s per shard, as token buckets that start full), which the
        runner sets on a separate server (--partial-failure). One request
        sends three 400 KiB records to shard 0 interleaved with small records
        to shard 1: 3 x 400 KiB > 1 MiB, so exactly the third big record
        fails, in one instant and whatever the machine's speed. Then the
        failed record is retried the way AWS's docs say (resend only the
        failed records), bounded by count, until it is accepted."""
        c = self.a.make_client(self.a.partial_failure, self.c.default_creds)
        name = f"conf-pf-{uuid.uuid4().hex[:8]}"
        try:
            c.call("CreateStream", {"StreamName": name, "ShardCount": 2})
            for _ in range(MAX_STATUS_POLLS):
                d = c.call("DescribeStream", {"StreamName": name})["StreamDescription"]
                if d["StreamStatus"] == "ACTIVE":
                    break
            sh = d["Shards"]
            ehk = [sh[0]["HashKeyRange"]["StartingHashKey"], sh[1]["HashKeyRange"]["StartingHashKey"]]
            big = 400 * 1024
            recs = []
            for i in range(3):
                recs.append({"PartitionKey": f"big-{i}", "ExplicitHashKey": ehk[0], "Data": bytes([65 + i]) * big})
                recs.append({"PartitionKey": f"small-{i}", "ExplicitHashKey": ehk[1], "Data": f"small {i}".encode()})
            out = c.call("PutRecords", {"StreamName": name, "Records": recs})
            eq(out.get("FailedRecordCount"), 1, "FailedRecordCount")
            eq(len(out["Records"]), 6, "result count")
            for i, res in enumerate(out["Records"]):
                if i == 4:
                    eq(res.get("ErrorCode"), "ProvisionedThroughputExceededException", "ErrorCode of record 4")
                    expect(res.get("ErrorMessage"), "failed record without ErrorMessage")
                    expect("SequenceNumber" not in res and "ShardId" not in res,
                           f"failed record carries SequenceNumber/ShardId: {res}")
                else:
                    expect("ErrorCode" not in res, f"record {i} failed: {res}")
                    eq(res["ShardId"], sh[0 if i % 2 == 0 else 1]["ShardId"], f"ShardId of record {i}")
            # Only the accepted records were written, in order.
            for k, want in ((0, [recs[0], recs[2]]), (1, [recs[1], recs[3], recs[5]])):
                it = c.call("GetShardIterator", {"StreamName": name, "ShardId": sh[k]["ShardId"],
                                                 "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
                got = []
                for _ in range(MAX_READ_CALLS):
                    o = c.call("GetRecords", {"ShardIterator": it})
                    got += o["Records"]
                    it = o["NextShardIterator"]
                    if len(got) >= len(want):
                        break
                eq([(g["PartitionKey"], g["Data"]) for g in got], [(w["PartitionKey"], w["Data"]) for w in want],
                   f"records in {sh[k]['ShardId']} after the partial failure")
            # Resend the failed record until the shard's budget lets it in.
            for n in range(MAX_TS_ROUNDS):
                out = c.call("PutRecords", {"StreamName": name, "Records": [recs[4]]})
                if out.get("FailedRecordCount", 0) == 0:
                    eq(out["Records"][0]["ShardId"], sh[0]["ShardId"], "ShardId of the resent record")
                    break
                eq(out["Records"][0].get("ErrorCode"), "ProvisionedThroughputExceededException", "resend ErrorCode")
            else:
                raise CheckFailed(f"the resent record was refused {MAX_TS_ROUNDS} times")
            c.call("DeleteStream", {"StreamName": name})
        finally:
            c.close()

    def t_delete(self):
        for name in (self.s1, self.s5):
            out = self.call("DeleteStream", {"StreamName": name})
            expect(out == {}, f"DeleteStream answered {out}")
        for name in (self.s1, self.s5):
            for _ in range(MAX_STATUS_POLLS):
                try:
                    d = self.call("DescribeStreamSummary", {"StreamName": name})["StreamDescriptionSummary"]
                except KinesisError as e:
                    eq(e.code, "ResourceNotFoundException", f"DescribeStreamSummary of deleted {name}")
                    break
                eq(d["StreamStatus"], "DELETING", f"status of {name} after DeleteStream")
            else:
                raise CheckFailed(f"{name} still DELETING after {MAX_STATUS_POLLS} polls")
        self.c.wait("StreamNotExists", {"StreamName": self.s5})
        names = self.call("ListStreams")["StreamNames"]
        expect(self.s1 not in names and self.s5 not in names, "deleted streams still listed")
        self.expect_error("ResourceNotFoundException", "GetShardIterator",
                          {"StreamName": self.s1, "ShardId": "shardId-000000000000",
                           "ShardIteratorType": "TRIM_HORIZON"}, what="GetShardIterator of a deleted stream")
        # the stream name can be used again, and starts empty
        self.call("CreateStream", {"StreamName": self.s1, "ShardCount": 1})
        self.wait_active(self.s1)
        it = self.iterator(self.s1, "shardId-000000000000", "TRIM_HORIZON")
        self.read(it, 0)
        self.call("DeleteStream", {"StreamName": self.s1})

    def run(self):
        print(f"client: {self.c.version}; endpoint {self.a.endpoint}", flush=True)
        if isinstance(self.c, JsClient):
            self.check("js_default_handler_is_http2",
                       lambda: expect("Http2" in self.c.handler,
                                      f"default request handler {self.c.handler}, want the HTTP/2 one"))
        if not self.check("create_stream", self.t_create):
            return self.finish()
        self.check("waiters", self.t_waiters)
        self.check("describe_stream", self.t_describe_stream)
        self.check("describe_stream_summary", self.t_describe_summary)
        self.check("list_streams", self.t_list_streams)
        self.check("list_shards", self.t_list_shards)
        self.check("put_record_routing", self.t_put_record_routing)
        self.check("put_records", self.t_put_records)
        self.check("stream_arn", self.t_stream_arn)
        self.check("put_oversize", self.t_put_oversize)
        if self.a.partial_failure:
            self.check("put_records_partial_failure", self.t_partial_failure)
        else:
            self.skipped.append("put_records_partial_failure")
            print("SKIP put_records_partial_failure: no --partial-failure server", flush=True)
        if self.check("iterators", self.t_iterators):
            self.check("at_timestamp", self.t_at_timestamp)
        self.check("retention", self.t_retention)
        self.check("tags", self.t_tags)
        self.check("describe_limits", self.t_describe_limits)
        self.check("errors", self.t_errors)
        if self.a.auth_endpoint:
            self.check("sigv4", self.t_sigv4)
        else:
            self.skipped.append("sigv4")
            print("SKIP sigv4: no --auth-endpoint", flush=True)
        if self.a.runnelctl:
            self.check("cross_api", self.t_cross_api)
        else:
            self.skipped.append("cross_api")
            print("SKIP cross_api: no --runnelctl", flush=True)
        self.check("delete_stream", self.t_delete)
        return self.finish()

    def finish(self):
        label = self.c.name + (f"/{self.a.transport}" if self.a.transport else "")
        print(f"conformance[{label}]: {len(self.passed)} passed, {len(self.failed)} failed, "
              f"{len(self.skipped)} skipped", flush=True)
        if self.failed:
            print("failed: " + ", ".join(self.failed), flush=True)
        return 1 if self.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--client", required=True, choices=["boto3", "awscli-v2", "awscli-v1", "js"])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--creds", default="conformance:conformance-secret", help="AKID:SECRET for --endpoint")
    ap.add_argument("--auth-endpoint")
    ap.add_argument("--auth-creds")
    ap.add_argument("--partial-failure", help="endpoint of a server set up for per-record failures")
    ap.add_argument("--runnelctl")
    ap.add_argument("--native")
    ap.add_argument("--aws", help="path of the aws program (awscli-v1/-v2)")
    ap.add_argument("--node", default="node")
    ap.add_argument("--js-dir", help="directory with adapter.cjs and node_modules")
    ap.add_argument("--target", default="runneld", choices=["runneld", "kinesalite"])
    ap.add_argument("--transport", default="", help="label of the summary line (e.g. tls)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="rn-conf-cli-")

    def make_client(endpoint, creds):
        if a.client == "boto3":
            return Boto3Client(endpoint, a.region, creds)
        if a.client.startswith("awscli"):
            return CliClient(a.aws, int(a.client[-1]), endpoint, a.region, creds, tmp)
        return JsClient(a.node, a.js_dir, endpoint, a.region, creds)

    a.make_client = make_client
    client = make_client(a.endpoint, tuple(a.creds.split(":", 1)))
    try:
        rc = Scenario(a, client).run()
    finally:
        client.close()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    return rc


if __name__ == "__main__":
    sys.exit(main())
