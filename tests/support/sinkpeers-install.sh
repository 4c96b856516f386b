#!/usr/bin/env bash
# tests/support/sinkpeers-install.sh — the independent Parquet readers the
# sink tests check runnel's files with, installed once into a cache and reused.
#
#   sinkpeers-install.sh node      print a node_modules directory holding
#                                  @duckdb/node-api, hyparquet and
#                                  hyparquet-compressors (hyparquet's GZIP and
#                                  ZSTD; it has only snappy) (NODE_PATH)
#   sinkpeers-install.sh pyarrow   print the python executable of a venv that
#                                  has pyarrow
#   sinkpeers-install.sh           both (node's line first)
#
# The node readers come from the npm registry (npm install into
# $CACHE/sinkpeers-node-<versions>/), pyarrow from PyPI (pip install into a
# venv at $CACHE/sinkpeers-pyarrow-<version>/, made by Debian's python3 -m
# venv). The cache is RUNNEL_SINKPEERS_CACHE, default ~/.cache/runnel
# (XDG_CACHE_HOME honoured). Idempotent: a finished install is a directory
# renamed into place, so an interrupted one is redone; concurrent calls for
# the same tool are serialised by a lock in the cache. On failure it prints
# one line saying why on stderr and exits 1; the tests then skip (exit 77)
# with that reason.
set -euo pipefail
CACHE=${RUNNEL_SINKPEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runnel}
DUCKDB_NODE_VERSION=${DUCKDB_NODE_VERSION:-1.5.6-r.1}
HYPARQUET_VERSION=${HYPARQUET_VERSION:-1.33.0}
HYPARQUET_COMPRESSORS_VERSION=${HYPARQUET_COMPRESSORS_VERSION:-1.1.2}
PYARROW_VERSION=${PYARROW_VERSION:-26.0.1}
mkdir -p "$CACHE"
fail() { echo "sinkpeers-install: $*" >&2; exit 1; }

install_node() {
  local dest="$CACHE/sinkpeers-node-duckdb$DUCKDB_NODE_VERSION-hyparquet$HYPARQUET_VERSION-c$HYPARQUET_COMPRESSORS_VERSION"
  local pkgs=("@duckdb/node-api@$DUCKDB_NODE_VERSION" "hyparquet@$HYPARQUET_VERSION"
              "hyparquet-compressors@$HYPARQUET_COMPRESSORS_VERSION")
  if [ ! -f "$dest/node_modules/@duckdb/node-api/package.json" ] ||
     [ ! -f "$dest/node_modules/hyparquet/package.json" ] ||
     [ ! -f "$dest/node_modules/hyparquet-compressors/package.json" ]; then
    command -v npm >/dev/null || fail "node: no npm on PATH (tools/deps.sh installs it)"
    local log="$CACHE/sinkpeers-node-install.log"
    echo "sinkpeers-install: npm install ${pkgs[*]} into $dest (log: $log)" >&2
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    if ! (cd "$dest.tmp" && npm install --no-audit --no-fund --loglevel=error "${pkgs[@]}") >"$log" 2>&1; then
      rm -rf "$dest.tmp"
      # npm's last line only names its own debug log: say what went wrong
      fail "node: npm install ${pkgs[*]} failed: $(grep -m2 '^npm error' "$log" | paste -sd ' ' || tail -1 "$log")"
    fi
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
  fi
  command -v node >/dev/null || fail "node: no node on PATH"
  # The DuckDB binding is a native addon: it must load on this machine.
  (cd "$dest" && node -e 'require("@duckdb/node-api")') >/dev/null 2>&1 ||
    fail "node: @duckdb/node-api does not load here ($(node --version))"
  echo "$dest/node_modules"
}

install_pyarrow() {
  local dest="$CACHE/sinkpeers-pyarrow-$PYARROW_VERSION"
  if [ ! -x "$dest/bin/python" ] || ! "$dest/bin/python" -c 'import pyarrow.parquet' >/dev/null 2>&1; then
    local py=/usr/bin/python3
    [ -x "$py" ] || py=$(command -v python3 || true)
    [ -n "$py" ] || fail "pyarrow: no python3 on PATH"
    local log="$CACHE/sinkpeers-pyarrow-install.log"
    echo "sinkpeers-install: pip install pyarrow==$PYARROW_VERSION into a venv at $dest (log: $log)" >&2
    rm -rf "$dest.tmp"
    # Renaming a venv breaks the shebangs of its bin/ scripts but not
    # bin/python itself (it finds its site-packages from pyvenv.cfg next to
    # it): only bin/python is ever run.
    if ! { "$py" -m venv "$dest.tmp" && "$dest.tmp/bin/python" -m pip install --quiet \
             --disable-pip-version-check "pyarrow==$PYARROW_VERSION"; } >"$log" 2>&1; then
      rm -rf "$dest.tmp"
      fail "pyarrow: venv + pip install pyarrow==$PYARROW_VERSION failed: $(tail -1 "$log")"
    fi
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
  fi
  "$dest/bin/python" -c 'import pyarrow.parquet' >/dev/null 2>&1 ||
    fail "pyarrow: $dest/bin/python cannot import pyarrow.parquet"
  echo "$dest/bin/python"
}

# One installer per tool at a time (tests running in parallel may all ask):
# the others wait on the lock, then find the finished install.
locked() {
  exec {lock}>"$CACHE/.install-sinkpeers-$1.lock"
  flock "$lock"
  "install_$1"
  flock -u "$lock"
}

case "${1:-all}" in
  node) locked node ;;
  pyarrow) locked pyarrow ;;
  all) locked node; locked pyarrow ;;
  *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
esac
