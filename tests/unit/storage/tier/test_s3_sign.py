#!/usr/bin/env python3
"""S3 request signatures of storage/tier/s3.c against botocore's.

s3rver does not check signatures, so this is where signing is proved: the
C signer's Authorization header for each request printed by s3_sign_vectors
must equal what botocore's S3SigV4Auth computes for the same request (same
time, UNSIGNED-PAYLOAD). Skips (77) when python3-botocore is missing.
Usage: test_s3_sign.py <path to s3_sign_vectors>
"""
import datetime
import subprocess
import sys

try:
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError:
    print("skip: python3-botocore is not installed (tools/deps.sh installs it)")
    sys.exit(77)


class FixedClock(datetime.datetime):
    fixed = None

    @classmethod
    def utcnow(cls):
        return cls.fixed


class UnsignedPayloadAuth(botocore.auth.S3SigV4Auth):
    """S3SigV4Auth with payload signing off, as a client configured with
    payload_signing_enabled=False (what s3.c does) signs."""

    def _should_sha256_sign_payload(self, request):
        return False


def botocore_auth(method, host, path, query, amz_date, region, akid, secret, token):
    url = "https://" + host + path + ("?" + query if query else "")
    req = AWSRequest(method=method, url=url, data=b"")
    fixed = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    FixedClock.fixed = fixed
    # The clock botocore signs with: get_current_datetime() in newer
    # releases, datetime.datetime.utcnow() in older ones (Debian's).
    saved = getattr(botocore.auth, "get_current_datetime", None)
    real = botocore.auth.datetime.datetime
    if saved:
        botocore.auth.get_current_datetime = lambda *a, **k: fixed
    botocore.auth.datetime.datetime = FixedClock
    try:
        creds = Credentials(akid, secret, token or None)
        UnsignedPayloadAuth(creds, "s3", region).add_auth(req)
    finally:
        botocore.auth.datetime.datetime = real
        if saved:
            botocore.auth.get_current_datetime = saved
    assert req.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert req.headers["X-Amz-Date"] == amz_date
    return req.headers["Authorization"]


def main():
    out = subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout
    n = 0
    for line in out.splitlines():
        f = line.split("|")
        ours = f[9]
        theirs = botocore_auth(*f[:9])
        if ours != theirs:
            print(f"MISMATCH for {f[0]} {f[1]}{f[2]}?{f[3]}\n  ours:     {ours}\n  botocore: {theirs}")
            sys.exit(1)
        n += 1
    if n < 7:
        print(f"only {n} vectors printed")
        sys.exit(1)
    print(f"ok: {n} signatures equal botocore's")


if __name__ == "__main__":
    main()
