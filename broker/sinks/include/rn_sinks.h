/*
 * rn_sinks.h — archive sinks (docs/sinks.md) as a C API: a sink delivers one
 * stream to an object store (S3, or a local directory) as NDJSON(.gz) or
 * Parquet objects under a prefix template, buffered per shard by size and
 * by time (Firehose's 5 MiB / 300 s). No protobuf here: the native session
 * translates the wire messages (broker/native/dispatch_sinks.c).
 *
 * Delivery, per (sink, shard), in this order:
 *   1. read the shard from the checkpoint like a consumer (rn_core_fetch,
 *      long poll) into the shard's buffer (copies of the stored batches);
 *   2. when the buffer reaches buffer_bytes, or its oldest record has waited
 *      buffer_interval_ms, fix the flush's range [first, last] and make it
 *      durable in <data_dir>/sinks/sinks.meta (the "pending" flush);
 *   3. on the thread pool, decode the range's records, render each one's
 *      prefix, convert it (NDJSON line or Parquet row) and build one object
 *      per prefix, named <prefix><sink>-<shardId>-<first>-<last>.<ext> after
 *      that prefix's first and last offsets; records that cannot be parsed
 *      or converted go to objects under the error prefix with the reason;
 *   4. PUT every object (the store retries; a failed PUT is retried with
 *      backoff for ever: an outage stalls the sink and grows its lag, never
 *      loses a record);
 *   5. once all are stored, the checkpoint moves past `last` (durable with
 *      the next snapshot write) and reading goes on.
 * A restart with a pending flush redoes exactly that range, so it rewrites
 * the same keys: exactly-once objects, at-least-once PUTs.
 *
 * Threading: everything on core's loop thread; encoding on the thread pool;
 * the state file is written on the thread pool (rn_snapshot_slot).
 *
 * Contract of every operation: borrows its request, calls cb exactly once
 * (possibly before it returns) with a reply valid during the call only.
 * Changes (create, pause, resume, delete) answer once the state file that
 * holds them is durable. Errors: RN_ENOSINK, RN_ENOSTREAM, RN_EEXIST,
 * RN_EINVAL (with a message naming the field), RN_ESHUTDOWN.
 */
#ifndef RN_SINKS_H
#define RN_SINKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_base.h"
#include "rn_core.h"
#include "rn_tier.h"
#include "runnel/error.h"

typedef struct rn_sinks rn_sinks_t;

typedef struct rn_sinks_opts {
  /* S3 settings (endpoint, region, credentials, path style, timeouts) for
   * s3:// destinations; bucket and prefix come from the destination. Strings
   * borrowed; they must outlive the sinks (runneld's config does). */
  rn_s3_opts_t s3;
  /* Delay before a failed PUT is tried again (doubling up to 30 s). Default 1000. */
  uint32_t retry_ms;
  /* Fetch long-poll wait of the readers; default 1000 (they also wake at
   * their buffer's deadline). */
  uint32_t poll_ms;
  /* Encode jobs (decode, convert, compress a flush) running at once over
   * every sink, on libuv's thread pool; more flushes wait in order. Default
   * 2: the pool's other threads stay free for core's reads. */
  unsigned encode_jobs;
  /* Tests: the store every sink writes to, whatever its destination says
   * (borrowed; e.g. an rn_faulty_new wrapper; the sinks poll it on core's
   * loop and wait for what is in flight on it at close). NULL = from the
   * destination. */
  rn_objstore_t *store;
} rn_sinks_opts_t;

void rn_sinks_opts_default(rn_sinks_opts_t *o);

/* Load <data_dir>/sinks/sinks.meta and attach to core as its RN_SUB_SINKS
 * listener; delivery starts when the loop runs. Blocking: after
 * rn_core_open, before anything is served. On success *out is owned by
 * core (rn_core_close frees it). A damaged state file refuses to start
 * (why says so) rather than deliver records twice or skip them. */
rn_err_t rn_sinks_open(rn_core_t *core, const rn_sinks_opts_t *opts, rn_sinks_t **out, char *why, size_t whylen);

/* The sinks attached to core, or NULL. Borrowed, until rn_core_close. */
rn_sinks_t *rn_sinks_of(const rn_core_t *core);

typedef enum rn_sink_format { RN_SINK_NDJSON = 0, RN_SINK_PARQUET = 1 } rn_sink_format_t;
/* Values equal the wire's SinkCompression. */
typedef enum rn_sink_compression {
  RN_SINK_COMP_DEFAULT = 0, /* NDJSON: gzip; Parquet: the schema's (snappy unless it says) */
  RN_SINK_COMP_NONE = 1,
  RN_SINK_COMP_GZIP = 2,
  RN_SINK_COMP_SNAPPY = 3,  /* Parquet only */
  RN_SINK_COMP_ZSTD = 4,    /* Parquet only */
} rn_sink_compression_t;

typedef struct rn_sink_config {
  const char *name;             /* [A-Za-z0-9_.-]{1,128} */
  const char *stream;
  const char *destination;      /* "s3://bucket/prefix/" or "file:///abs/dir/" */
  rn_sink_format_t format;
  rn_sink_compression_t compression;
  const char *schema;           /* Parquet: the schema file's text; NULL/"" for NDJSON */
  const char *prefix;           /* NULL/"" = "!{timestamp:yyyy/MM/dd/HH}/" */
  const char *error_prefix;     /* NULL/"" = "errors/!{error}/!{timestamp:yyyy/MM/dd}/" */
  uint64_t buffer_bytes;        /* 0 = 5 MiB; 64 KiB .. 128 MiB */
  int64_t buffer_interval_ms;   /* 0 = 300 s; 1 s .. 1 h (tests may go as low as 10 ms) */
  const char *event_time_field; /* NULL/"" = arrival time */
  bool start_latest;            /* a new sink starts at the end instead of the earliest record */
} rn_sink_config_t;

typedef struct rn_sink_shard_info {
  uint32_t shard;
  uint64_t checkpoint, end_offset, lag_records;
  int64_t lag_ms;               /* 0 caught up; -1 unknown */
  uint64_t buffered_bytes, buffered_records;
  const char *state;            /* "idle", "reading", "flushing", "retrying", "paused", "stopped" */
  const char *last_error;       /* "" none */
  uint64_t objects, records, error_records, bytes_out, put_failures;
  bool pending;
  uint64_t pending_first, pending_last;
} rn_sink_shard_info_t;

typedef struct rn_sink_description {
  rn_sink_config_t config;      /* defaults filled in */
  bool paused;
  const char *state;            /* "running", "paused", "stopped: ..." */
  int64_t created_ms;
  const rn_sink_shard_info_t *shards;
  size_t n_shards;
} rn_sink_description_t;

typedef struct rn_sink_reply {
  rn_err_t err;
  const char *message;
  const rn_sink_description_t *sink; /* create, describe, pause, resume */
  const char *const *names;          /* list: every sink's name, sorted */
  size_t n_names;
} rn_sink_reply_t;
typedef void (*rn_sink_reply_cb)(void *ctx, const rn_sink_reply_t *r);

void rn_sinks_create(rn_sinks_t *ss, const rn_sink_config_t *c, rn_sink_reply_cb cb, void *ctx);
void rn_sinks_list(rn_sinks_t *ss, rn_sink_reply_cb cb, void *ctx);
void rn_sinks_describe(rn_sinks_t *ss, const char *name, rn_sink_reply_cb cb, void *ctx);
/* Pause (resume false) keeps the position: in-flight PUTs finish, buffered
 * records not yet flushed are read again on resume. */
void rn_sinks_pause(rn_sinks_t *ss, const char *name, bool resume, rn_sink_reply_cb cb, void *ctx);
void rn_sinks_delete(rn_sinks_t *ss, const char *name, rn_sink_reply_cb cb, void *ctx);

/* /metrics: one call per (sink, shard). Loop thread; fn must not call back. */
typedef struct rn_sinks_shard_stats {
  const char *sink, *stream;    /* valid during the call */
  const rn_sink_shard_info_t *info;
} rn_sinks_shard_stats_t;
void rn_sinks_foreach_shard(rn_sinks_t *ss, void (*fn)(void *arg, const rn_sinks_shard_stats_t *s), void *arg);

#endif
