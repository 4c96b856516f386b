#!/usr/bin/env python3
"""A test's view of the bucket behind a tiered broker (issue 13), via boto3.

    tier_s3.py --endpoint URL --bucket B list [PREFIX]
        one line per object: <key>\t<size>\t<last modified, epoch ms>
    tier_s3.py --endpoint URL --bucket B get KEY FILE
        the object's bytes into FILE
    tier_s3.py --endpoint URL --bucket B put KEY FILE
        FILE's bytes as the object KEY (plant an orphan, replace an object)
    tier_s3.py --endpoint URL --bucket B mirror PREFIX DIR
        every object under PREFIX into DIR/<key>, its file's mtime set to
        the object's LastModified (one process for a whole listing)

Credentials: --access-key/--secret-key, else AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY (the test sets those of its S3 peer); path-style addressing, region us-east-1 unless
--region. The fault tests (tests/fault/test_tier_*.c) use it to compare
what the bucket holds with what the broker says it uploaded, independently
of the broker's own S3 client. Run under Debian's /usr/bin/python3
(python3-boto3). Exit 0, 1 on an S3 error (reason on stderr), 2 on usage.
"""

import argparse
import os
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--access-key")
    ap.add_argument("--secret-key")
    ap.add_argument("op", choices=["list", "get", "put", "mirror"])
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="tier-s3-")
    for var, name in (("AWS_CONFIG_FILE", "config"), ("AWS_SHARED_CREDENTIALS_FILE", "credentials")):
        if not os.environ.get(var):
            p = os.path.join(tmp, name)
            open(p, "w").close()
            os.environ[var] = p
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as e:
        print(f"tier_s3: python3-boto3 is not installed for {sys.executable} ({e})", file=sys.stderr)
        return 1
    cfg = Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 3, "mode": "standard"})
    kw = {}
    if a.access_key:
        kw = {"aws_access_key_id": a.access_key, "aws_secret_access_key": a.secret_key}
    s3 = boto3.session.Session(region_name=a.region, **kw).client("s3", endpoint_url=a.endpoint, config=cfg)
    try:
        if a.op == "mirror":
            if len(a.args) != 2:
                ap.error("mirror PREFIX DIR")
            prefix, root = a.args
            token = None
            while True:
                kw = {"Bucket": a.bucket, "Prefix": prefix}
                if token:
                    kw["ContinuationToken"] = token
                r = s3.list_objects_v2(**kw)
                for o in r.get("Contents", []):
                    path = os.path.join(root, o["Key"])
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    try:
                        body = s3.get_object(Bucket=a.bucket, Key=o["Key"])["Body"].read()
                    except ClientError as e:
                        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                            continue  # deleted between the listing and the GET
                        raise
                    with open(path, "wb") as f:
                        f.write(body)
                    t = o["LastModified"].timestamp()
                    os.utime(path, (t, t))
                if not r.get("IsTruncated"):
                    break
                token = r["NextContinuationToken"]
        elif a.op == "list":
            prefix = a.args[0] if a.args else ""
            token = None
            while True:
                kw = {"Bucket": a.bucket, "Prefix": prefix}
                if token:
                    kw["ContinuationToken"] = token
                r = s3.list_objects_v2(**kw)
                for o in r.get("Contents", []):
                    print(f"{o['Key']}\t{o['Size']}\t{int(o['LastModified'].timestamp() * 1000)}")
                if not r.get("IsTruncated"):
                    break
                token = r["NextContinuationToken"]
        elif a.op == "get":
            if len(a.args) != 2:
                ap.error("get KEY FILE")
            body = s3.get_object(Bucket=a.bucket, Key=a.args[0])["Body"].read()
            with open(a.args[1], "wb") as f:
                f.write(body)
        else:
            if len(a.args) != 2:
                ap.error("put KEY FILE")
            with open(a.args[1], "rb") as f:
                s3.put_object(Bucket=a.bucket, Key=a.args[0], Body=f.read())
    except (ClientError, BotoCoreError) as e:
        print(f"tier_s3: {a.op} {' '.join(a.args)}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
