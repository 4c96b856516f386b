#!/usr/bin/env bash
# Install the Debian packages runnel needs to build and test.
#
# Idempotent and quick: it asks dpkg which packages are missing and only runs
# apt-get (update + install) when something is. Used by both README commands
# and by .ci/run. Needs root (or sudo) only when something must be installed.
# RN_DEPS_BENCH=1 adds the packages of bench/compare.sh (the peers, their C
# clients, gnuplot). Installing redis-server or nats-server does not need
# their system services: compare.sh starts its own on 127.0.0.1.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config
  clang libclang-rt-dev          # fuzz targets (libFuzzer) and sanitizers
  liburing-dev                   # io_uring disk backend
  libxxhash-dev                  # XXH3 checksums
  liblz4-dev                     # batch compression
  libcmocka-dev                  # unit tests
  python3                        # test harness helpers
  libuv1-dev                     # broker and client event loops
  protobuf-c-compiler libprotobuf-c-dev  # native wire protocol
  libyaml-dev                    # broker config
  libssl-dev                     # MD5 routing, SHA-256/HMAC
  libjansson-dev                 # JSON (runnelctl output; the Kinesis API and REST ingest)
  zlib1g-dev                     # gzip request bodies of REST ingest; GZIP Parquet pages
  libsnappy-dev                  # SNAPPY Parquet pages (snappy-c.h; broker/sinks/parquet.c)
  libzstd-dev                    # ZSTD Parquet pages (zstd.h; broker/sinks/parquet.c)
  libdeflate-dev                 # gzip of archive sinks' NDJSON objects (2.6x zlib's speed)
  libhttp-parser-dev             # HTTP/1.1 request parsing (broker HTTP port)
  libnghttp2-dev                 # HTTP/2 (h2c prior knowledge, ALPN h2) on the HTTP port
  libcurl4-openssl-dev           # the S3 object store of tiered storage (storage/tier/s3.c)
  python3-botocore               # tests: S3 request signatures checked against botocore's
  curl                           # HTTP transport tests (h1, h2c, TLS/ALPN)
  etcd-server                    # the cluster control plane (broker/cluster/etcd.c); its tests run /usr/bin/etcd
  awscli python3-boto3           # conformance suite: AWS CLI v2 (/usr/bin/aws), boto3
  # conformance suite, the JS SDK: node and npm, from Debian only when missing
  # (an existing node, e.g. NodeSource's nodejs that bundles npm, is kept).
  $(command -v node >/dev/null 2>&1 || echo nodejs)
  $(command -v npm >/dev/null 2>&1 || echo npm)
)

# Optional: the side-by-side benchmark (bench/compare.sh sets RN_DEPS_BENCH=1):
# the peers' servers, their C clients (runnel-bench redis / nats) and gnuplot
# (PNG plots; gnuplot-nox has the pngcairo terminal without X); librdkafka-dev
# for runnel-bench kafka, and java + maven where missing to fetch and run the
# Kafka broker from Maven Central (bench/peers/kafka.sh; issue 12). NATS >= 2.10
# comes from the Go module proxy (bench/peers/nats.sh), not from Debian.
if [ "${RN_DEPS_BENCH:-0}" = 1 ]; then
  PKGS+=(redis-server nats-server libhiredis-dev libnats-dev gnuplot-nox librdkafka-dev
    $(command -v java >/dev/null 2>&1 || echo default-jre-headless)
    $(command -v mvn >/dev/null 2>&1 || echo maven))
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}" >&2
SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
