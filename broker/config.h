/*
 * config.h — runneld's configuration: ONE table, RN_CONFIG_TABLE below, is
 * the source of truth. It generates the rn_config_t struct, the YAML keys,
 * the validation bounds, the command-line flags, `runneld --help` and
 * `runneld --print-config-reference` (which produces docs/configuration.md).
 * Adding a setting means adding one row here; nothing else lists keys.
 *
 * Precedence, lowest first: the defaults in the table, the YAML file given
 * with --config, then flags (--data-dir, --listen, ..., --set key=value) in
 * the order they appear on the command line.
 *
 * Pure: no event loop, no sockets; only rn_config_load_file reads a file
 * (blocking — call it at startup). Not thread-safe; a config is filled once
 * on the main thread and then only read.
 */
#ifndef RN_BROKER_CONFIG_H
#define RN_BROKER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runnel/error.h"

/*
 * X(name, type, default, min, max, choices, flag, doc)
 *
 *   type     STR    string; min/max bound its length in bytes
 *            ADDR   "HOST:PORT" (IPv4, [IPv6] or a name; port 0..65535, 0 =
 *                   any free port); min/max unused
 *            ENUM   one of choices ("a|b|c"); the field holds the index,
 *                   which callers map onto their own enum (main.c asserts
 *                   the orders match)
 *            U32    unsigned integer in [min, max]
 *            SIZE32 byte count in [min, max]; accepts binary suffixes: KiB,
 *                   MiB, GiB (also written K, M, G or Ki, Mi, Gi)
 *            SIZE64 like SIZE32, 64-bit; also TiB
 *            DUR32  duration in milliseconds in [min, max]: `500ms`, `30s`,
 *                   `5m`, `24h`, `7d`, or a bare integer (milliseconds)
 *            RETAIN a retention time in ms in [min, max] (a duration as
 *                   DUR32), or `forever` (stored as -1); int64_t
 *            SECRET like STR, but never printed back: --print-config and
 *                   every log line show only whether it is set
 *            OPTRET like RETAIN, or empty = unset (stored as 0)
 *   default  a string, parsed and validated like any user-supplied value
 *   flag     long option that sets the key ("data-dir" -> --data-dir), or
 *            NULL; every key can also be set with --set name=value
 */
#define RN_CONFIG_TABLE(X)                                                                         \
  X(data_dir, STR, "./data", 1, 4096, NULL, "data-dir",                                          \
    "Root directory of all broker data: stream metadata and one directory of log segments per "    \
    "shard. Created when missing.")                                                                \
  X(listen, ADDR, "127.0.0.1:7400", 0, 0, NULL, "listen",                                         \
    "Native protocol listener, `HOST:PORT`. Port 0 binds any free port (see `port_file`). "        \
    "The native protocol has no authentication yet: a non-loopback address is refused unless "   \
    "`auth` is `none`.")                                                                           \
  X(http_listen, ADDR, "127.0.0.1:7480", 0, 0, NULL, "http",                                      \
    "HTTP listener, `HOST:PORT`: HTTP/1.1 and HTTP/2 (cleartext with prior knowledge, or ALPN "  \
    "`h2` over TLS) on the one port; see docs/http.md. Port 0 binds any free port. A "           \
    "non-loopback address needs both `kinesis_credentials` and `rest_api_keys`, or `auth: none`.") \
  X(auth, ENUM, "auto", 0, 0, "auto|none", NULL,                                                   \
    "`auto`: loopback listeners are open (development), and a listener on any other address "    \
    "starts only when it authenticates its clients (the HTTP port: `kinesis_credentials` and "   \
    "`rest_api_keys` both set; the native port cannot yet). `none`: run every listener open on "  \
    "any address — for a trusted network only; logged as a warning at every start.")              \
  X(http_tls_cert, STR, "", 0, 4096, NULL, NULL,                                                   \
    "PEM file with the HTTP port's TLS certificate (chain). Set together with `http_tls_key`; "   \
    "then the HTTP port speaks TLS only (ALPN `h2` and `http/1.1`). Empty = cleartext.")          \
  X(http_tls_key, STR, "", 0, 4096, NULL, NULL,                                                    \
    "PEM file with the private key of `http_tls_cert`.")                                           \
  X(http_max_header_bytes, SIZE32, "16KiB", 1024, 1048576, NULL, NULL,                             \
    "Largest HTTP request head (request line and headers; for HTTP/2 the header list, counted "   \
    "as name + value + 32 per field). Larger: 431 and, for HTTP/1.1, the connection closes.")     \
  X(http_max_body_bytes, SIZE32, "16MiB", 1024, 1073741824, NULL, NULL,                           \
    "Largest HTTP request body (after chunked decoding; gzip is not decoded by the transport). " \
    "Larger: 413 (before reading the body when the length is announced).")                        \
  X(http_header_timeout_ms, DUR32, "10s", 1, 3600000, NULL, NULL,                                  \
    "A request head must arrive completely within this long (ms) of its first byte (a new "       \
    "connection: of the accept, TLS handshake included). Else 408 and close (slowloris defence).") \
  X(http_body_timeout_ms, DUR32, "30s", 1, 3600000, NULL, NULL,                                    \
    "While a request body is being received, the client must send some of it at least this "     \
    "often (ms). Else 408 and close.")                                                             \
  X(http_idle_timeout_ms, DUR32, "60s", 0, 86400000, NULL, NULL,                                   \
    "Close an HTTP connection with no request in progress for this long (ms), and one whose "     \
    "responses make no write progress for this long; 0 = never.")                                  \
  X(http_max_connections, U32, "10000", 1, 1000000, NULL, NULL,                                    \
    "Most HTTP connections open at once. Up to 16 more are accepted to answer one request each: " \
    "/healthz, /readyz and /metrics as usual, anything else 503 ServiceUnavailable; beyond those " \
    "they are closed at once. Logged, and counted in runnel_connections_refused_total.")           \
  X(kinesis_credentials, SECRET, "", 0, 65536, NULL, NULL,                                         \
    "SigV4 credentials the Kinesis API accepts: `AKID:SECRET,AKID2:SECRET2`. Requests must then "  \
    "be signed with one of them (AWS's error types otherwise). Empty = any request is accepted, "  \
    "signed or not (the loopback development default). Prefer `kinesis_credentials_file` or the " \
    "environment variable `RUNNEL_KINESIS_CREDENTIALS` to keep the secret out of config files "    \
    "and command lines (at most one of the three). See docs/kinesis.md.")                         \
  X(kinesis_credentials_file, STR, "", 0, 4096, NULL, NULL,                                        \
    "File holding `kinesis_credentials` (surrounding whitespace ignored). It must not be "        \
    "readable or writable by group or others (chmod 600), else runneld refuses to start.")       \
  X(kinesis_throughput_limits, ENUM, "off", 0, 0, "off|kinesis", NULL,                             \
    "Per-shard throughput limits of the Kinesis API and REST ingest. `kinesis`: AWS's "           \
    "provisioned-shard limits (writes 1 MiB/s and 1000 records/s, reads 2 MiB/s and 5 "            \
    "GetRecords calls/s per shard), answered with ProvisionedThroughputExceededException "        \
    "(REST: 429), so apps can exercise their throttling paths.")                                   \
  X(rest_api_keys, SECRET, "", 0, 65536, NULL, NULL,                                               \
    "API keys of REST ingest: `KEY:STREAM|STREAM,KEY2:*` (a key writes the listed streams, or "   \
    "every stream with `*`), sent as `Authorization: Bearer KEY` or `x-api-key: KEY`. Empty = "    \
    "open (the loopback development default). Also from `rest_api_keys_file` or the environment " \
    "variable `RUNNEL_REST_API_KEYS` (at most one of the three).")                                 \
  X(rest_api_keys_file, STR, "", 0, 4096, NULL, NULL,                                              \
    "File holding `rest_api_keys`; permissions checked as for `kinesis_credentials_file`.")       \
  X(rest_max_body_bytes, SIZE32, "5MiB", 1024, 268435456, NULL, NULL,                              \
    "Largest REST ingest request body after gzip decoding; larger bodies get 413.")               \
  X(port_file, STR, "", 0, 4096, NULL, "port-file",                                               \
    "When set, once both listeners are bound runneld writes `<native_port> <http_port>\\n` to "    \
    "this file atomically (temporary file + rename) and removes it on clean shutdown. With "       \
    "`--listen 127.0.0.1:0 --http 127.0.0.1:0` it lets tests find the ports chosen at run time.") \
  X(log_level, ENUM, "info", 0, 0, "debug|info|warn|error", "log-level",                         \
    "Least severe level written to stderr (one line per event: time, level, component).")        \
  X(io_backend, ENUM, "auto", 0, 0, "auto|uring|posix", NULL,                                     \
    "Disk I/O backend of the shard logs. `auto` uses io_uring and falls back to POSIX threads "    \
    "when io_uring is unavailable; the environment variable `RUNNEL_IO_BACKEND` overrides "       \
    "`auto`.")                                                                                     \
  X(max_frame_bytes, SIZE32, "16MiB", 1024, 1073741824, NULL, NULL,                               \
    "Largest request frame accepted (the protobuf message after the 4-byte length). A larger "     \
    "frame is a framing error: the broker answers ETOOLARGE and closes that connection.")        \
  X(max_record_bytes, SIZE32, "1MiB", 1024, 67108864, NULL, NULL,                                 \
    "Largest record (partition key + data + headers) accepted in a produce request.")             \
  X(max_batch_bytes, SIZE32, "8MiB", 1024, 1073741824, NULL, NULL,                                \
    "Largest record batch accepted in a produce request. At least `max_record_bytes`, below "     \
    "`max_frame_bytes`.")                                                                          \
  X(max_fetch_bytes, SIZE32, "16MiB", 1024, 1073741824, NULL, NULL,                               \
    "Cap on the record bytes of one fetch response, whatever the client asks for.")               \
  X(max_fetch_memory_bytes, SIZE64, "256MiB", 0, 1099511627776, NULL, NULL,                       \
    "Broker-wide budget for fetch read buffers (native fetches and Kinesis GetRecords), held "     \
    "from the read until the reply is written. A fetch that does not fit waits (first come, "     \
    "first served) and never fails for it; produce is not affected. 0 = no limit.")              \
  X(max_wait_ms, DUR32, "30s", 0, 3600000, NULL, NULL,                                            \
    "Cap on how long a fetch may long-poll for data (ms); 0 disables long polling.")             \
  X(idle_timeout_ms, DUR32, "10m", 0, 86400000, NULL, NULL,                                      \
    "Close a native connection after this long (ms) with no request and nothing outstanding; "   \
    "0 = never.")                                                                                  \
  X(drain_timeout_ms, DUR32, "30s", 0, 3600000, NULL, NULL,                                       \
    "During shutdown, close a connection whose unwritten replies made no progress for this long " \
    "(ms), so a client that stopped reading cannot hold up a clean shutdown; 0 = only "            \
    "`idle_timeout_ms` applies.")                                                                  \
  X(max_connections, U32, "10000", 1, 1000000, NULL, NULL,                                        \
    "Most native connections open at once; further ones are accepted, closed at once and "        \
    "logged. The HTTP port has its own limit, `http_max_connections`.")                           \
  X(fd_reserve, U32, "256", 16, 1000000, NULL, NULL,                                              \
    "File descriptors kept for storage (segment rolls, indexes, metadata): a new connection on "  \
    "either port is closed at once when fewer than this many would remain under the open-file "   \
    "limit (counted as `runnel_connections_refused_total{reason=\"fds\"}`). At start runneld "    \
    "raises its soft RLIMIT_NOFILE to the hard limit and warns when `max_connections + "          \
    "http_max_connections + fd_reserve` exceeds it.")                                             \
  X(max_inflight_per_connection, U32, "1024", 1, 1000000, NULL, NULL,                             \
    "Most requests of one connection being processed at once (pipelining); at the limit the "     \
    "broker stops reading that connection until replies go out.")                                 \
  X(max_output_bytes_per_connection, SIZE64, "4MiB", 65536, 1073741824, NULL, NULL,                \
    "Back-pressure: while a connection has more reply bytes than this not yet written to its "    \
    "socket, the broker stops reading its requests.")                                              \
  X(segment_bytes, SIZE64, "256MiB", 65536, 68719476736, NULL, NULL,                              \
    "A shard's log rolls to a new segment file when the active one reaches this size.")          \
  X(interval_ms, DUR32, "1s", 1, 3600000, NULL, NULL,                                             \
    "fdatasync period (ms) of streams in `interval` durability mode.")                            \
  X(journal_bytes, SIZE64, "512MiB", 0, 68719476736, NULL, "journal-bytes",                        \
    "Size of the shared journal `<data_dir>/journal` through which every `sync` stream is "        \
    "acknowledged: one write and one fdatasync per round for all shards, whatever their number "  \
    "(docs/storage.md, \"The journal\"). Preallocated (written whole) when created; an existing " \
    "journal keeps its size. At least 4 x `max_batch_bytes` + 1MiB. 0 = no journal: each shard "   \
    "fdatasyncs its own files per round (a data directory that has a journal still uses it).")   \
  X(journal_checkpoint_ms, DUR32, "1s", 10, 3600000, NULL, NULL,                                 \
    "How often the journal checkpoints while records arrive (every shard's new segment bytes "    \
    "fdatasync'ed in the background, then the journal's space reused): bounds what a restart "    \
    "after a crash replays. A checkpoint also starts whenever the journal is a quarter full.")    \
  X(max_shards, U32, "1024", 1, 65536, NULL, NULL, "Most shards one stream may have.")            \
  X(default_retention, RETAIN, "24h", 60000, 315360000000, NULL, NULL,                             \
    "Retention time of a stream created without one, through every API (native, runnelctl, "     \
    "the Kinesis API's CreateStream): a duration such as `24h` or `7d`, or `forever`. Kinesis's " \
    "own default is 24 hours.")                                                                    \
  X(dedup_max_ids, U32, "8388608", 1, 1073741824, NULL, NULL,                                       \
    "Most ids one stream's dedup window holds (docs/dedup.md). The default covers a 1 h window "  \
    "at ~2 300 records/s; memory grows with use (~56-112 bytes per id: 59 MB per million ids "   \
    "measured). When full, the oldest ids are evicted before their window ends "                    \
    "(`runnel_dedup_evictions_total`); produce is never refused for it.")                          \
  X(metrics_latency_detail, ENUM, "stream", 0, 0, "stream|shard", NULL,                             \
    "Granularity of the append-latency and fdatasync histograms in `/metrics`: `stream` sums the "  \
    "shards of each stream (16 buckets per stream), `shard` keeps one histogram per shard (for "   \
    "debugging a hot shard: a 1024-shard stream then costs ~40 000 series).")                       \
  X(group_log_segment_bytes, SIZE64, "4MiB", 4096, 1073741824, NULL, NULL,                         \
    "Segment size of the consumer groups' checkpoint log; when the log holds more than twice "    \
    "this, a snapshot of every group is written and the segments it covers are deleted.")         \
  X(s3_bucket, STR, "", 0, 255, NULL, NULL,                                                        \
    "Tiered storage (docs/tiering.md): the S3 bucket that sealed segments of tiered streams go "  \
    "to. Empty = no S3 store. Exclusive with `tier_dir`. Credentials come from the environment "  \
    "(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or from "                \
    "`s3_credentials_file`; they are never printed or logged.")                                    \
  X(s3_endpoint, STR, "", 0, 1024, NULL, NULL,                                                     \
    "URL of an S3-compatible endpoint (`http://127.0.0.1:9000` for MinIO). Empty = AWS, "        \
    "`https://s3.<s3_region>.amazonaws.com`. Also archive sinks' `s3://` destinations'.")                                                     \
  X(s3_region, STR, "us-east-1", 1, 64, NULL, NULL, "Region the S3 requests are signed for.")     \
  X(s3_prefix, STR, "", 0, 512, NULL, NULL,                                                        \
    "Prepended to every object key in the bucket (no leading `/`), so one bucket can hold the "   \
    "objects of several clusters.")                                                                \
  X(s3_path_style, ENUM, "auto", 0, 0, "auto|true|false", NULL,                                    \
    "`true`: path-style URLs (`<endpoint>/<bucket>/<key>`); `false`: virtual-hosted "             \
    "(`<bucket>.<host>/<key>`); `auto`: path-style when `s3_endpoint` is set, else "              \
    "virtual-hosted.")                                                                             \
  X(s3_ca_file, STR, "", 0, 4096, NULL, NULL,                                                      \
    "PEM bundle of the CAs that sign the S3 endpoint's TLS certificate. Empty = the system's.")   \
  X(s3_credentials_file, STR, "", 0, 4096, NULL, NULL,                                             \
    "An AWS credentials file (INI) to read the S3 keys from when the environment has none; the "  \
    "section is `s3_profile`.")                                                                    \
  X(s3_profile, STR, "", 0, 128, NULL, NULL,                                                       \
    "Profile (section) of `s3_credentials_file`. Empty = `$AWS_PROFILE`, else `default`.")        \
  X(tier_dir, STR, "", 0, 4096, NULL, "tier-dir",                                                  \
    "A local directory as the tiered-storage store instead of S3 (tests; an NFS mount). Objects "  \
    "are files under it (written in its `.rn-tmp-work/` and renamed into place; opening the "    \
    "store removes what a killed process left there). Exclusive with `s3_bucket`.")               \
  X(tier_upload_concurrency, U32, "4", 1, 256, NULL, NULL,                                         \
    "Segments uploading at once, over every tiered shard of the broker.")                         \
  X(tier_upload_bandwidth, SIZE64, "0", 0, 1099511627776, NULL, NULL,                              \
    "Upload bandwidth limit in bytes per second, over every upload; 0 = unlimited.")              \
  X(tier_cache_bytes, SIZE64, "256MiB", 65536, 1099511627776, NULL, NULL,                          \
    "Memory for chunks of remote segments read back from the store (an LRU cache).")              \
  X(tier_chunk_bytes, SIZE32, "4MiB", 4096, 268435456, NULL, NULL,                                 \
    "Size of one ranged GET of a remote segment (and of a cache entry).")                         \
  X(tier_readahead_chunks, U32, "4", 0, 64, NULL, NULL,                                            \
    "Chunks fetched ahead of a sequential reader of remote data (several GETs in flight).")       \
  X(tier_gc_grace, DUR32, "1h", 0, 2592000000, NULL, NULL,                                         \
    "The collector deletes an object the manifest does not know only when it is older than "      \
    "this (an upload may be under way).")                                                          \
  X(tier_gc_interval, DUR32, "10m", 0, 2592000000, NULL, NULL,                                     \
    "How often the collector lists each tiered shard's prefix for orphans; 0 = never.")           \
  X(tier_request_timeout, DUR32, "30s", 100, 3600000, NULL, NULL,                                  \
    "Deadline of one object-store operation, retries included.")                                   \
  X(tier_segment_max_age, DUR32, "1h", 0, 2592000000, NULL, NULL,                                  \
    "A tiered shard's active segment is sealed (and so uploaded) once it is this old and holds "   \
    "data, however small: on a lost disk at most this much of the stream is missing from the "    \
    "bucket (a restore brings back everything sealed). 0 = only by size (`segment_bytes`).")       \
  X(tier_disk_high_water, U32, "90", 1, 100, NULL, NULL,                                           \
    "Percent of the data directory's file system in use above which produce to tiered streams "   \
    "answers EBACKLOG (retriable) while uploads are behind, rather than filling the disk. "       \
    "Checked once a second.")                                                                      \
  X(default_local_retention, OPTRET, "", 1000, 315360000000, NULL, NULL,                           \
    "Unset (the default): streams created through the Kinesis API are not tiered. Set: they are " \
    "tiered, with this as their local retention (how long an uploaded segment stays on disk; "    \
    "`forever` keeps every segment local as well). Also the local retention of a stream created " \
    "tiered without one.")                                                                         \
  X(etcd, STR, "", 0, 1024, NULL, "etcd",                                                          \
    "Join a cluster (docs/cluster.md): its etcd endpoints, `http://HOST:PORT[,...]`. Empty (the " \
    "default) = a single broker, with no etcd at all.")                                            \
  X(broker_id, U32, "0", 0, 1000000, NULL, "broker-id",                                            \
    "This broker's id in the cluster (>= 1, unique, stable across restarts). Needed with `etcd`.") \
  X(advertise, STR, "", 0, 256, NULL, "advertise",                                                 \
    "HOST:PORT other brokers and clients reach this broker's native port at. Empty = the native " \
    "listen address with the port it bound.")                                                      \
  X(rack, STR, "", 0, 63, NULL, "rack",                                                            \
    "A label (an availability zone): replicas of a shard are spread over distinct racks.")         \
  X(cluster_root, STR, "/runnel", 1, 127, NULL, NULL,                                              \
    "The etcd key prefix of the cluster's keys (several clusters may share one etcd).")           \
  X(cluster_lease, DUR32, "3s", 1000, 60000, NULL, NULL,                                           \
    "Broker liveness: the etcd lease TTL (whole seconds). A broker whose lease ends is dead to "   \
    "the controller, which moves its leaderships; a leader that could not renew its lease for "   \
    "this long stops acknowledging.")                                                              \
  X(replica_lag, DUR32, "2s", 100, 600000, NULL, NULL,                                             \
    "A follower that has not caught up with its leader's log for this long leaves the shard's "   \
    "in-sync set (acknowledgements stop waiting for it).")

#define RN__CFG_CTYPE_STR char *
#define RN__CFG_CTYPE_ADDR char *
#define RN__CFG_CTYPE_ENUM int
#define RN__CFG_CTYPE_U32 uint32_t
#define RN__CFG_CTYPE_SIZE32 uint32_t
#define RN__CFG_CTYPE_SIZE64 uint64_t
#define RN__CFG_CTYPE_DUR32 uint32_t
#define RN__CFG_CTYPE_RETAIN int64_t
#define RN__CFG_CTYPE_SECRET char *
#define RN__CFG_CTYPE_OPTRET int64_t

/* Values of `auth`, in the order of its choices. */
typedef enum { RN_AUTH_AUTO = 0, RN_AUTH_NONE = 1 } rn_auth_mode_t;

/* Values of `s3_path_style`, in the order of its choices. */
typedef enum { RN_S3_PATH_AUTO = 0, RN_S3_PATH_TRUE = 1, RN_S3_PATH_FALSE = 2 } rn_s3_path_style_t;

/* The effective configuration. Strings are owned by the config (freed by
 * rn_config_free) and never NULL after rn_config_init. */
typedef struct rn_config {
#define RN__CFG_FIELD(name, type, dflt, min, max, choices, flag, doc) RN__CFG_CTYPE_##type name;
  RN_CONFIG_TABLE(RN__CFG_FIELD)
#undef RN__CFG_FIELD
} rn_config_t;

/* Fill cfg with the table's defaults. Aborts on out-of-memory (startup only). */
void rn_config_init(rn_config_t *cfg);

/* Free the strings cfg owns and zero it. NULL ok. */
void rn_config_free(rn_config_t *cfg);

/* Set key to value (text as in YAML or on the command line), validating it.
 * origin (may be NULL) says where the value came from and is appended to an
 * error ("… (from --set)"). On failure cfg is unchanged and why (may be NULL)
 * holds one line: "config: KEY: must be between 1024 and 67108864, got 5".
 * Returns 0, RN_ENOENT (unknown key) or RN_EINVAL. */
rn_err_t rn_config_set(rn_config_t *cfg, const char *key, const char *value, const char *origin,
                       char *why, size_t whylen);

/* Apply a YAML document: a mapping of table keys to scalar values. name
 * labels errors ("name:LINE"). Unknown keys, duplicate keys, non-scalar
 * values and invalid values are errors; on error cfg may hold the keys set
 * before the bad one. Returns 0, RN_ENOENT, RN_EINVAL or RN_EFORMAT (not
 * YAML / not a mapping). */
rn_err_t rn_config_load_yaml(rn_config_t *cfg, const char *text, size_t len, const char *name,
                             char *why, size_t whylen);

/* Read path (blocking) and rn_config_load_yaml it. Returns as above or the
 * -errno of open/read. */
rn_err_t rn_config_load_file(rn_config_t *cfg, const char *path, char *why, size_t whylen);

/* Checks across keys (e.g. max_record_bytes <= max_batch_bytes <
 * max_frame_bytes). Returns 0 or RN_EINVAL with why. */
rn_err_t rn_config_check(const rn_config_t *cfg, char *why, size_t whylen);

/* Fill kinesis_credentials and rest_api_keys from their *_file keys or the
 * environment (RUNNEL_KINESIS_CREDENTIALS, RUNNEL_REST_API_KEYS). At most one
 * of the three sources may be set per secret. A secret file must be a
 * regular file not accessible by group or others. Blocking (reads files):
 * call at startup, after rn_config_from_args. Returns 0, RN_EINVAL (two
 * sources, permissions), RN_ETOOLARGE or an -errno of open, with why. */
rn_err_t rn_config_resolve_secrets(rn_config_t *cfg, char *why, size_t whylen);

typedef enum {
  RN_CONFIG_RUN = 0,       /* start the broker */
  RN_CONFIG_HELP,          /* --help: print rn_config_print_help, exit 0 */
  RN_CONFIG_VERSION,       /* --version */
  RN_CONFIG_REFERENCE,     /* --print-config-reference */
  RN_CONFIG_PRINT,         /* --print-config: the effective config as YAML */
  RN_CONFIG_MAN,           /* --print-man: runneld(8) in roff */
} rn_config_action_t;

/* Parse runneld's command line (argv[0] is the program) into cfg, which
 * rn_config_init filled: load --config FILE first, then apply the other
 * flags in order, then rn_config_check. *action says what to do. On error
 * why holds one line; returns RN_EINVAL/RN_ENOENT/RN_EFORMAT or a file
 * error. With --help, --version or --print-config-reference nothing else
 * is applied or checked. */
rn_err_t rn_config_from_args(rn_config_t *cfg, int argc, char *const argv[],
                             rn_config_action_t *action, char *why, size_t whylen);

/* runneld(8) in roff, from the same table as --help. */
void rn_config_print_man(FILE *out, const char *version);

/* Usage text: synopsis, every flag, every key with its default. */
void rn_config_print_help(FILE *out, const char *prog);

/* The Markdown configuration reference (docs/configuration.md). */
void rn_config_print_reference(FILE *out);

/* cfg as a YAML document that rn_config_load_yaml accepts. */
void rn_config_print(FILE *out, const rn_config_t *cfg);

/* Split "HOST:PORT" (IPv6 as "[::1]:7400") into host (without brackets,
 * NUL-terminated, at most hostlen-1 bytes) and port. Returns 0 or RN_EINVAL. */
rn_err_t rn_config_split_addr(const char *addr, char *host, size_t hostlen, uint16_t *port);

#endif
