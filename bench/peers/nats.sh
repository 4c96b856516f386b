#!/usr/bin/env bash
# bench/peers/nats.sh — NATS JetStream >= 2.10 for bench/compare.sh.
#
#   bench/peers/nats.sh install   print the path of a nats-server binary that
#                                 knows `sync_interval: always` (fsync before
#                                 every acknowledgement)
#
# Debian 12's nats-server is 2.9.10, which has no sync_interval, so the
# durable row needs a newer one: `go install` of the server module from the
# Go module proxy into $CACHE/nats-server-<version>/ (built once, then
# reused). NATS_VERSION overrides the version (default v2.14.10). On failure
# it prints one line saying why on stderr and exits 1; compare.sh then records
# the NATS rows as skipped (or falls back to Debian's 2.9 for the relaxed row).
set -euo pipefail
. "$(dirname "$0")/common.sh"
VERSION=${NATS_VERSION:-v2.14.10}
DEST="$CACHE/nats-server-$VERSION"
case "${1:-}" in
  install)
    if [ ! -x "$DEST/nats-server" ]; then
      command -v go >/dev/null || fail "nats: no Go toolchain on PATH (needed to go install nats-server $VERSION)"
      LOG="$CACHE/nats-install.log"
      echo "nats.sh: go install github.com/nats-io/nats-server/v2@$VERSION into $DEST (log: $LOG)" >&2
      mkdir -p "$DEST.tmp"
      if ! GOBIN="$DEST.tmp" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$VERSION" >"$LOG" 2>&1; then
        rm -rf "$DEST.tmp"
        fail "nats: go install nats-server $VERSION failed ($(go version 2>/dev/null | awk '{print $3}')): $(tail -1 "$LOG")"
      fi
      rm -rf "$DEST"
      mv "$DEST.tmp" "$DEST"
    fi
    "$DEST/nats-server" --version >/dev/null 2>&1 || fail "nats: $DEST/nats-server does not run"
    echo "$DEST/nats-server"
    ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
