#!/usr/bin/env python3
"""Kinesis wire-level checks that no stock client can send: raw HTTP/1.1
through Python's http.client, with a small SigV4 signer of our own.

    raw_http.py --endpoint URL [--auth-endpoint URL --auth-creds AKID:SECRET]
                [--target runneld|kinesalite]

Covers: malformed JSON and wrong JSON types (SerializationException),
unknown and missing operations (UnknownOperationException), field
validation (ValidationException), the x-amzn-RequestId header and the error
body shape, keep-alive, timestamps as integers, decimals and exponent
notation, the operations runnel does not support yet, and SigV4 rejections
(wrong secret, unknown key, missing/garbled Authorization, body changed after
signing, a request signed 10 minutes ago). Standard library only.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import sys
import traceback
import urllib.parse
import uuid

TARGET_PREFIX = "Kinesis_20131202."
CT = "application/x-amz-json-1.1"
MAX_ROUNDS = 20000


class CheckFailed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def sigv4_headers(method, host, path, body, akid, secret, region="us-east-1", service="kinesis",
                  when=None, extra=None):
    """Headers of a SigV4-signed request (AWS4-HMAC-SHA256, signed: host,
    x-amz-date, x-amz-target, content-type)."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amzdate = when.strftime("%Y%m%dT%H%M%SZ")
    date = when.strftime("%Y%m%d")
    hdrs = {"host": host, "x-amz-date": amzdate}
    hdrs.update({k.lower(): v for k, v in (extra or {}).items()})
    names = sorted(hdrs)
    canon = "\n".join([method, path, "", "".join(f"{k}:{hdrs[k].strip()}\n" for k in names), ";".join(names),
                       hashlib.sha256(body).hexdigest()])
    scope = f"{date}/{region}/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope, hashlib.sha256(canon.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    # Host, Content-Type and X-Amz-Target are sent by the caller (same values).
    out = {"X-Amz-Date": amzdate}
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={akid}/{scope}, SignedHeaders={';'.join(names)}, "
                            f"Signature={sig}")
    return out


class Conn:
    def __init__(self, endpoint, creds):
        u = urllib.parse.urlsplit(endpoint)
        self.host = u.netloc
        self.creds = creds
        self.c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)

    def send(self, op, body, headers=None, sign=True, target=True, creds=None, when=None, tamper_body=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        h = {"Content-Type": CT}
        if target:
            h["X-Amz-Target"] = TARGET_PREFIX + op if "." not in op else op
        h.update(headers or {})
        if sign:
            akid, secret = creds or self.creds
            h.update(sigv4_headers("POST", self.host, "/", body, akid, secret, when=when,
                                   extra={k: v for k, v in h.items() if k.lower() in ("content-type", "x-amz-target")}))
        if tamper_body is not None:
            body = tamper_body
        self.c.request("POST", "/", body=body, headers=h)
        r = self.c.getresponse()
        data = r.read()
        try:
            doc = json.loads(data) if data else {}
        except ValueError:
            doc = {"__raw": data[:300]}
        return r, doc

    def ok(self, op, body, **kw):
        r, doc = self.send(op, body, **kw)
        expect(r.status == 200, f"{op}: HTTP {r.status} {doc}")
        expect(r.getheader("x-amzn-RequestId"), f"{op}: no x-amzn-RequestId on a success")
        return doc

    def err(self, codes, op, body, what=None, statuses=(400,), **kw):
        codes = (codes,) if isinstance(codes, str) else tuple(codes)
        r, doc = self.send(op, body, **kw)
        t = (doc.get("__type") or "").rsplit("#", 1)[-1]
        what = what or op
        expect(r.status in statuses, f"{what}: HTTP {r.status} {doc}, want {statuses} with {'/'.join(codes)}")
        expect(t in codes, f"{what}: __type {doc.get('__type')!r} ({doc}), want {'/'.join(codes)}")
        expect(r.getheader("x-amzn-RequestId"), f"{what}: no x-amzn-RequestId on an error")
        ct = r.getheader("Content-Type") or ""
        expect(ct.startswith(CT) or ct.startswith("application/json"), f"{what}: Content-Type {ct!r}")
        expect(isinstance(doc.get("message", doc.get("Message", "")), str), f"{what}: message is not a string")
        return doc


class Raw:
    def __init__(self, a):
        self.a = a
        self.strict = a.target == "runneld"
        self.k = Conn(a.endpoint, ("conformance", "conformance-secret"))
        self.passed, self.failed = [], []
        self.stream = f"conf-raw-{uuid.uuid4().hex[:8]}"

    def check(self, name, fn):
        try:
            fn()
        except Exception as e:
            self.failed.append(name)
            extra = "" if isinstance(e, CheckFailed) else "\n" + traceback.format_exc()
            print(f"FAIL {name}: {e}{extra}", flush=True)
            return False
        self.passed.append(name)
        print(f"PASS {name}", flush=True)
        return True

    # ------------------------------------------------------------------
    def t_setup(self):
        self.k.ok("CreateStream", {"StreamName": self.stream, "ShardCount": 1})
        for _ in range(2000):
            d = self.k.ok("DescribeStreamSummary", {"StreamName": self.stream})["StreamDescriptionSummary"]
            if d["StreamStatus"] == "ACTIVE":
                return
        raise CheckFailed("stream not ACTIVE")

    def t_request_id_and_keepalive(self):
        r, doc = self.k.send("ListStreams", {})
        expect(r.status == 200, f"ListStreams HTTP {r.status}")
        ids = {r.getheader("x-amzn-RequestId")}
        sock = self.k.c.sock
        expect(sock is not None, "connection closed after a keep-alive response")
        for _ in range(5):
            r, doc = self.k.send("ListStreams", {})
            ids.add(r.getheader("x-amzn-RequestId"))
            expect(self.k.c.sock is sock, "HTTP/1.1 connection was not kept alive")
        expect(len(ids) == 6 and None not in ids, f"x-amzn-RequestId not unique per response: {ids}")
        ct = r.getheader("Content-Type") or ""
        expect(ct.startswith(CT), f"Content-Type {ct!r}, want {CT}")
        # An empty body is an empty input.
        r, doc = self.k.send("ListStreams", b"")
        expect(r.status == 200 or (doc.get("__type") or "").endswith("SerializationException"),
               f"ListStreams with an empty body: HTTP {r.status} {doc}")

    def t_malformed_json(self):
        for body in (b'{"StreamName":', b"not json at all", b'{"StreamName": "a",}', b"{'StreamName': 'a'}",
                     b'{"StreamName": "a"} trailing', b"\xff\xfe{}"):
            self.k.err("SerializationException", "DescribeStream", body, what=f"DescribeStream body {body!r}")
        # well-formed JSON with the wrong types
        self.k.err("SerializationException", "CreateStream", {"StreamName": self.stream + "x", "ShardCount": "two"},
                   what="ShardCount as a string")
        self.k.err("SerializationException", "DescribeStream", {"StreamName": 42}, what="StreamName as a number")
        self.k.err("SerializationException", "PutRecords", {"StreamName": self.stream, "Records": {"a": 1}},
                   what="Records as an object")
        self.k.err("SerializationException", "PutRecord", {"StreamName": self.stream, "PartitionKey": "k",
                                                           "Data": "!!not base64!!"}, what="Data not base64")

    def t_unknown_operation(self):
        self.k.err("UnknownOperationException", "FlyToTheMoon", {}, what="Kinesis_20131202.FlyToTheMoon")
        self.k.err("UnknownOperationException", "DynamoDB_20120810.ListTables", {}, what="another service's target")
        self.k.err("UnknownOperationException", "ListStreams", {}, target=False, what="no X-Amz-Target")

    def t_validation(self):
        cases = [
            ("CreateStream", {"StreamName": self.stream + "-z", "ShardCount": 0}, "ShardCount 0"),
            ("CreateStream", {"StreamName": "bad name!", "ShardCount": 1}, "StreamName with a space and '!'"),
            ("CreateStream", {"StreamName": "s" * 129, "ShardCount": 1}, "StreamName of 129 characters"),
            ("DescribeStream", {}, "DescribeStream without StreamName"),
            ("PutRecord", {"StreamName": self.stream, "Data": "eA=="}, "PutRecord without PartitionKey"),
            ("PutRecord", {"StreamName": self.stream, "PartitionKey": "", "Data": "eA=="}, "empty PartitionKey"),
            ("PutRecord", {"StreamName": self.stream, "PartitionKey": "p" * 257, "Data": "eA=="},
             "PartitionKey of 257 characters"),
            ("PutRecords", {"StreamName": self.stream, "Records": []}, "PutRecords with no records"),
            ("GetRecords", {"ShardIterator": "x", "Limit": 0}, "GetRecords Limit 0"),
            ("GetRecords", {"ShardIterator": "x", "Limit": 10001}, "GetRecords Limit 10001"),
            ("GetShardIterator", {"StreamName": self.stream, "ShardId": "shardId-000000000000",
                                  "ShardIteratorType": "SIDEWAYS"}, "unknown ShardIteratorType"),
        ]
        for op, body, what in cases:
            self.k.err(("ValidationException",), op, body, what=what)

    def _put(self, data):
        d = self.k.ok("PutRecord", {"StreamName": self.stream, "PartitionKey": "p",
                                    "Data": base64.b64encode(data).decode()})
        return d["SequenceNumber"]

    def _iter(self, **kw):
        body = {"StreamName": self.stream, "ShardId": "shardId-000000000000"}
        body.update(kw)
        return self.k.ok("GetShardIterator", body)["ShardIterator"]

    def _read_all(self, it, want):
        recs = []
        for _ in range(200):
            d = self.k.ok("GetRecords", {"ShardIterator": it})
            recs += d["Records"]
            it = d["NextShardIterator"]
            if len(recs) >= want:
                break
        d = self.k.ok("GetRecords", {"ShardIterator": it})
        return recs + d["Records"]

    def t_timestamps(self):
        # Records one millisecond tick apart (bounded by count).
        seqs = [self._put(b"ts-0")]
        it = self._iter(ShardIteratorType="TRIM_HORIZON")
        first = self._read_all(it, 1)
        expect(len(first) == 1, f"{len(first)} records")
        t0 = first[0]["ApproximateArrivalTimestamp"]
        expect(isinstance(t0, (int, float)), f"ApproximateArrivalTimestamp {t0!r} is not a JSON number")
        recs = first
        for n in range(MAX_ROUNDS):
            seqs.append(self._put(f"ts-{n + 1}".encode()))
            recs = self._read_all(self._iter(ShardIteratorType="TRIM_HORIZON"), len(seqs))
            if round(recs[-1]["ApproximateArrivalTimestamp"] * 1000) > round(t0 * 1000):
                break
        else:
            raise CheckFailed("arrival time never advanced a millisecond")
        t1_ms = round(recs[-1]["ApproximateArrivalTimestamp"] * 1000)
        want = [r["SequenceNumber"] for r in recs if round(r["ApproximateArrivalTimestamp"] * 1000) >= t1_ms]
        expect(0 < len(want) < len(recs), "trivial split")
        sec, ms = divmod(t1_ms, 1000)
        forms = {
            "decimal": f"{sec}.{ms:03d}",
            "exponent": f"{sec // 10**9}.{sec % 10**9:09d}{ms:03d}e9",
            "exponent with capital E and sign": f"{sec}{ms:03d}E-3",
        }
        for what, lit in forms.items():
            body = ('{"StreamName": "%s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP",'
                    ' "Timestamp": %s}' % (self.stream, lit))
            it = self.k.ok("GetShardIterator", body)["ShardIterator"]
            got = [r["SequenceNumber"] for r in self._read_all(it, len(want))]
            expect(got == want, f"AT_TIMESTAMP as {what} ({lit}): got {len(got)} records, want {len(want)}")
        for what, lit in (("integer", str(sec - 3600)), ("integer in exponent form", f"{(sec - 3600) / 1e9!r}e9")):
            body = ('{"StreamName": "%s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP",'
                    ' "Timestamp": %s}' % (self.stream, lit))
            it = self.k.ok("GetShardIterator", body)["ShardIterator"]
            got = [r["SequenceNumber"] for r in self._read_all(it, len(recs))]
            expect(got == [r["SequenceNumber"] for r in recs], f"AT_TIMESTAMP as {what} ({lit}) an hour back")

    def t_iterators(self):
        it = self._iter(ShardIteratorType="TRIM_HORIZON")
        self.k.err("InvalidArgumentException", "GetRecords", {"ShardIterator": it[:-4]}, what="truncated iterator")
        raw = bytearray(it.encode())
        raw[len(raw) // 3] ^= 0x01
        self.k.err(("InvalidArgumentException",), "GetRecords", {"ShardIterator": raw.decode("latin-1")},
                   what="iterator with one bit flipped")
        self.k.err("InvalidArgumentException", "GetShardIterator",
                   {"StreamName": self.stream, "ShardId": "shardId-000000000000",
                    "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": "12345"},
                   what="AT_SEQUENCE_NUMBER with a made-up sequence number")
        self.k.err(("InvalidArgumentException", "ValidationException"), "GetShardIterator",
                   {"StreamName": self.stream, "ShardId": "shardId-000000000000",
                    "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": "not-a-number"},
                   what="AT_SEQUENCE_NUMBER with a non-numeric sequence number")
        self.k.err("ResourceNotFoundException", "GetShardIterator",
                   {"StreamName": self.stream, "ShardId": "shardId-000000000001", "ShardIteratorType": "LATEST"},
                   what="unknown shard")

    def t_unsupported(self):
        for op, body in (("SplitShard", {"StreamName": self.stream, "ShardToSplit": "shardId-000000000000",
                                         "NewStartingHashKey": str(2**127)}),
                         ("MergeShards", {"StreamName": self.stream, "ShardToMerge": "shardId-000000000000",
                                          "AdjacentShardToMerge": "shardId-000000000001"}),
                         ("UpdateShardCount", {"StreamName": self.stream, "TargetShardCount": 2,
                                               "ScalingType": "UNIFORM_SCALING"}),
                         ("RegisterStreamConsumer", {"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/"
                                                     + self.stream, "ConsumerName": "c"}),
                         ("SubscribeToShard", {"ConsumerARN": "arn:x", "ShardId": "shardId-000000000000",
                                               "StartingPosition": {"Type": "LATEST"}})):
            r, doc = self.k.send(op, body)
            expect(r.status == 400, f"{op}: HTTP {r.status} {doc}, want 400")
            expect(doc.get("__type") and "not supported" in (doc.get("message") or ""),
                   f"{op}: {doc}, want an error type and a message saying it is not supported")
        # The stream is untouched.
        d = self.k.ok("DescribeStreamSummary", {"StreamName": self.stream})["StreamDescriptionSummary"]
        expect(d["OpenShardCount"] == 1, f"OpenShardCount {d['OpenShardCount']} after refused resharding")

    def t_sigv4(self):
        akid, secret = self.a.auth_creds.split(":", 1)
        k = Conn(self.a.auth_endpoint, (akid, secret))
        k.ok("ListStreams", {})
        name = f"conf-rawsig-{uuid.uuid4().hex[:8]}"
        k.ok("CreateStream", {"StreamName": name, "ShardCount": 1})
        put = {"StreamName": name, "PartitionKey": "p", "Data": base64.b64encode(b"signed").decode()}
        k.ok("PutRecord", put)
        bad = ("InvalidSignatureException",)
        k.err(bad, "ListStreams", {}, creds=(akid, secret + "x"), what="wrong secret")
        k.err(("UnrecognizedClientException",), "ListStreams", {}, creds=("AKIDNOTKNOWN", secret),
              what="unknown access key id")
        k.err(("MissingAuthenticationTokenException",), "ListStreams", {}, sign=False, statuses=(400, 403),
              what="no Authorization header")
        k.err(("IncompleteSignatureException", "InvalidSignatureException"), "ListStreams", {}, sign=False,
              headers={"Authorization": "AWS4-HMAC-SHA256 garbage", "X-Amz-Date": "20240101T000000Z"},
              statuses=(400, 403), what="garbled Authorization header")
        forged = json.dumps(dict(put, Data=base64.b64encode(b"forged").decode())).encode()
        k.err(bad, "PutRecord", put, tamper_body=forged, what="body changed after signing")
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
        k.err(bad, "ListStreams", {}, when=old, what="request signed 10 minutes ago")
        ahead = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=10)
        k.err(bad, "ListStreams", {}, when=ahead, what="request signed 10 minutes ahead")
        # errors before authentication still need a valid signature to say more
        it = k.ok("GetShardIterator", {"StreamName": name, "ShardId": "shardId-000000000000",
                                       "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
        recs = k.ok("GetRecords", {"ShardIterator": it})["Records"]
        expect([base64.b64decode(r["Data"]) for r in recs] == [b"signed"], f"records after forgeries: {recs}")
        k.ok("DeleteStream", {"StreamName": name})

    def t_cleanup(self):
        self.k.ok("DeleteStream", {"StreamName": self.stream})

    def run(self):
        if not self.check("setup", self.t_setup):
            return self.finish()
        self.check("request_id_and_keepalive", self.t_request_id_and_keepalive)
        self.check("malformed_json", self.t_malformed_json)
        self.check("unknown_operation", self.t_unknown_operation)
        self.check("validation", self.t_validation)
        self.check("timestamps", self.t_timestamps)
        self.check("iterators", self.t_iterators)
        if self.strict:
            self.check("unsupported_operations", self.t_unsupported)
        if self.a.auth_endpoint:
            self.check("sigv4", self.t_sigv4)
        else:
            print("SKIP sigv4: no --auth-endpoint", flush=True)
        self.check("cleanup", self.t_cleanup)
        return self.finish()

    def finish(self):
        print(f"conformance[raw-http]: {len(self.passed)} passed, {len(self.failed)} failed", flush=True)
        if self.failed:
            print("failed: " + ", ".join(self.failed), flush=True)
        return 1 if self.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--auth-endpoint")
    ap.add_argument("--auth-creds")
    ap.add_argument("--target", default="runneld", choices=["runneld", "kinesalite"])
    return Raw(ap.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
