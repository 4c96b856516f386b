#!/usr/bin/env bash
# tests/support/s3peers-install.sh — the S3 stand-ins the tests run on
# loopback, installed once into a cache and reused.
#
#   s3peers-install.sh s3rver   print the node_modules directory holding s3rver
#                               (use it as NODE_PATH)
#   s3peers-install.sh minio    print the path of a minio binary
#   s3peers-install.sh          both (s3rver's line first)
#
# s3rver comes from the npm registry (npm install s3rver@$S3RVER_VERSION into
# $CACHE/s3rver-<version>/); MinIO from the Go module proxy (go install
# github.com/minio/minio@$MINIO_VERSION into $CACHE/minio-<version>/). MinIO
# is AGPL: a test tool here, never shipped. The cache is RUNNEL_S3PEERS_CACHE,
# default ~/.cache/runnel (XDG_CACHE_HOME honoured). Idempotent: a finished
# install is a directory renamed into place, so an interrupted one is redone.
# On failure it prints one line saying why on stderr and exits 1; the tests
# then skip (exit 77) with that reason.
set -euo pipefail
CACHE=${RUNNEL_S3PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runnel}
S3RVER_VERSION=${S3RVER_VERSION:-3.7.1}
# The module has no semver tags: a pseudo-version of a RELEASE commit.
MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
mkdir -p "$CACHE"
fail() { echo "s3peers-install: $*" >&2; exit 1; }

install_s3rver() {
  local dest="$CACHE/s3rver-$S3RVER_VERSION"
  if [ ! -f "$dest/node_modules/s3rver/package.json" ]; then
    command -v npm >/dev/null || fail "s3rver: no npm on PATH (tools/deps.sh installs it)"
    local log="$CACHE/s3rver-install.log"
    echo "s3peers-install: npm install s3rver@$S3RVER_VERSION into $dest (log: $log)" >&2
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    if ! (cd "$dest.tmp" && npm install --no-audit --no-fund --loglevel=error "s3rver@$S3RVER_VERSION") >"$log" 2>&1; then
      rm -rf "$dest.tmp"
      fail "s3rver: npm install s3rver@$S3RVER_VERSION failed: $(tail -1 "$log")"
    fi
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
  fi
  command -v node >/dev/null || fail "s3rver: no node on PATH"
  echo "$dest/node_modules"
}

install_minio() {
  local dest="$CACHE/minio-$MINIO_VERSION"
  if [ ! -x "$dest/minio" ]; then
    command -v go >/dev/null || fail "minio: no Go toolchain on PATH (needed to go install minio $MINIO_VERSION)"
    local log="$CACHE/minio-install.log"
    echo "s3peers-install: go install github.com/minio/minio@$MINIO_VERSION into $dest (log: $log; takes minutes)" >&2
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    if ! GOBIN="$dest.tmp" GOFLAGS=-mod=mod nice go install "github.com/minio/minio@$MINIO_VERSION" >"$log" 2>&1; then
      rm -rf "$dest.tmp"
      fail "minio: go install minio@$MINIO_VERSION failed ($(go version 2>/dev/null | awk '{print $3}')): $(tail -1 "$log")"
    fi
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
  fi
  "$dest/minio" --version >/dev/null 2>&1 || fail "minio: $dest/minio does not run"
  echo "$dest/minio"
}

case "${1:-all}" in
  s3rver) install_s3rver ;;
  minio) install_minio ;;
  all) install_s3rver; install_minio ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
