#!/usr/bin/env bash
# test_s3_store.sh — the S3 object store (storage/tier/s3.c) against real
# S3 implementations on loopback: MinIO (verifies signatures and multipart
# uploads) and s3rver. For each, starts the server on a free port in a
# temporary directory, creates a bucket, runs test_tier with
# RUNNEL_TEST_S3_* naming it (its test_s3_store case: every operation,
# ranges, a 12 MiB multipart upload, LIST across pages, bad credentials, a
# closed port), and stops the server by PID. Exits 77 (skip) with the
# reason when neither stand-in can be installed.
# Usage: test_s3_store.sh <test_tier binary> [minio|s3rver]...
set -uo pipefail
BIN=$1
shift
PEERS=${*:-minio s3rver}
HERE=$(cd "$(dirname "$0")" && pwd)
INSTALL=$HERE/../support/s3peers-install.sh
TMP=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Wait (bounded) until the server answers HTTP at all.
wait_http() {
  for _ in $(seq 200); do
    if curl -s -o /dev/null "http://127.0.0.1:$1/"; then return 0; fi
    kill -0 "$PID" 2>/dev/null || return 1
    sleep 0.1 # polling a child that is starting: no event to wait on
  done
  return 1
}

make_bucket() {
  python3 - "$1" "$2" "$AK" "$SK" <<'PY'
import sys, boto3
from botocore.config import Config
c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                 aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4],
                 config=Config(s3={"addressing_style": "path"}))
c.create_bucket(Bucket=sys.argv[2])
PY
}

ran=0
skipped=()
for peer in $PEERS; do
  port=$(free_port)
  case $peer in
  minio)
    if ! minio=$("$INSTALL" minio 2>"$TMP/install.err"); then
      skipped+=("minio: $(tail -1 "$TMP/install.err")")
      continue
    fi
    mkdir -p "$TMP/minio"
    MINIO_ROOT_USER=rnkey MINIO_ROOT_PASSWORD=rnsecret123 "$minio" server "$TMP/minio" --address "127.0.0.1:$port" \
      --console-address "127.0.0.1:$(free_port)" >"$TMP/minio.log" 2>&1 &
    PID=$!
    extra=(RUNNEL_TEST_S3_CHECKS_SIGNATURES=1 RUNNEL_TEST_S3_MANY=1100)
    AK=rnkey SK=rnsecret123
    ;;
  s3rver)
    if ! nm=$("$INSTALL" s3rver 2>"$TMP/install.err"); then
      skipped+=("s3rver: $(tail -1 "$TMP/install.err")")
      continue
    fi
    mkdir -p "$TMP/s3rver"
    node "$nm/s3rver/bin/s3rver.js" -d "$TMP/s3rver" -a 127.0.0.1 -p "$port" --silent >"$TMP/s3rver.log" 2>&1 &
    PID=$!
    # s3rver 3.7 answers InternalError to a LIST of more than 1000 keys
    # (boto3's too), so the paging check runs on MinIO only.
    extra=()
    AK=S3RVER SK=S3RVER # s3rver's fixed key pair (it does not verify signatures)
    ;;
  *) echo "unknown peer $peer"; exit 2 ;;
  esac
  if ! wait_http "$port"; then
    echo "FAIL: $peer did not start:"; tail -5 "$TMP/$peer.log"; exit 1
  fi
  make_bucket "$port" rnt || { echo "FAIL: cannot create a bucket on $peer"; exit 1; }
  echo "== $peer on 127.0.0.1:$port"
  if ! env RUNNEL_TEST_S3_ENDPOINT="http://127.0.0.1:$port" RUNNEL_TEST_S3_BUCKET=rnt AWS_ACCESS_KEY_ID="$AK" \
      AWS_SECRET_ACCESS_KEY="$SK" "${extra[@]}" "$BIN"; then
    echo "FAIL: test_tier against $peer"; exit 1
  fi
  kill "$PID"; wait "$PID" 2>/dev/null; PID=
  ran=$((ran + 1))
done
for s in "${skipped[@]}"; do echo "skipped $s"; done
[ $ran -gt 0 ] || { echo "skip: no S3 stand-in could be installed"; exit 77; }
