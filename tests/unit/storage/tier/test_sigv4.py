#!/usr/bin/env python3
"""test_sigv4.py PRINTER — sigv4.c's signatures against botocore's.

Runs PRINTER (test_sigv4_print), which prints fixed S3 requests as raw parts
(method, host, unencoded path, query pairs and headers, body) with the
Authorization header sigv4.c computed, and recomputes each with botocore's
S3SigV4Auth at the same time: the path encoded the way botocore's S3
serializer does (quote, safe '/~'), the query as params, the body hashed or
UNSIGNED-PAYLOAD. Asserts the headers are equal, and that the URL path and
query sigv4.c says to send are the ones botocore signed. Exit 77 (skip) when
botocore is missing (Debian: python3-botocore).
"""
import datetime
import json
import subprocess
import sys
from unittest import mock
from urllib.parse import quote

try:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as e:  # pragma: no cover
    print(f"SKIP: botocore is not installed ({e}); apt-get install python3-botocore")
    sys.exit(77)

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


class S3Conf:
    def __init__(self, sign):
        self.s3 = {"payload_signing_enabled": sign}


def botocore_auth(c):
    path = quote(c["path"].encode("utf-8"), safe="/~")
    scheme = "http" if c["host"].startswith("127.") else "https"
    url = f"{scheme}://{c['host']}{path}"
    headers = {"Host": c["host"]}
    for name, value in c["headers"]:
        headers[name] = value
    if c["token"]:
        headers["X-Amz-Security-Token"] = c["token"]
    req = AWSRequest(method=c["method"], url=url, headers=headers, data=c["body"].encode("utf-8"),
                     params=[(k, v) for k, v in c["query"]])
    req.context["client_config"] = S3Conf(not c["unsigned"])
    creds = Credentials(AK, SK, c["token"])
    auth = S3SigV4Auth(creds, "s3", c["region"])
    when = datetime.datetime.utcfromtimestamp(c["time"])
    import botocore.auth as ba
    if hasattr(ba, "get_current_datetime"):  # newer botocore
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            auth.add_auth(req)
    else:
        with mock.patch("botocore.auth.datetime") as dt:
            dt.datetime.utcnow.return_value = when
            auth.add_auth(req)
    canon_query = auth.canonical_query_string(req)
    return req.headers["Authorization"], req.headers["X-Amz-Date"], path, canon_query


def main():
    out = subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout
    n = bad = 0
    for line in out.splitlines():
        c = json.loads(line)
        n += 1
        want, date, path, query = botocore_auth(c)
        problems = []
        if c["authorization"] != want:
            problems.append(f"authorization\n  ours:     {c['authorization']}\n  botocore: {want}")
        if c["amz_date"] != date:
            problems.append(f"x-amz-date ours {c['amz_date']} botocore {date}")
        if c["url_path"] != path:
            problems.append(f"path ours {c['url_path']} botocore {path}")
        if c["url_query"] != query:
            problems.append(f"query ours {c['url_query']} botocore {query}")
        if problems:
            bad += 1
            print(f"FAIL {c['name']}: " + "; ".join(problems))
        else:
            print(f"ok   {c['name']}")
    if n < 10:
        print(f"only {n} cases printed")
        return 1
    print(f"{n - bad} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
