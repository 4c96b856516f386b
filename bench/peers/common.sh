# bench/peers/common.sh — sourced by the peer scripts: the cache directory
# (RUNNEL_BENCH_CACHE, default ~/.cache/runnel-bench) and a failure helper.
# Nothing here starts a server: the runnel-bench subcommands start theirs on
# 127.0.0.1 and stop them by PID.
CACHE=${RUNNEL_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runnel-bench}
mkdir -p "$CACHE"
# fail REASON: print the reason on stderr (one line, compare.sh records it) and exit 1
fail() { echo "$*" >&2; exit 1; }
