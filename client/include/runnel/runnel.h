/*
 * runnel/runnel.h — librunnel, the C client of runnel's native protocol.
 *
 * This header is the specification of the library; docs/client.md explains
 * it with examples.
 *
 * Handles (all opaque, all created by a _new function and released by the
 * matching _destroy, which accepts NULL):
 *   rn_client_t    one TCP connection to one broker (the bootstrap, from a
 *                  list), owned by an internal I/O thread; requests from any
 *                  number of application threads are pipelined over it
 *                  (correlation ids). In a cluster it also keeps one
 *                  connection per shard leader it sends to (each with an
 *                  I/O thread of its own): produce and fetch go to the
 *                  shard's leader (docs/client.md, "Clusters").
 *   rn_producer_t  batches records per (stream, shard), sends them
 *                  asynchronously, retries, idempotent by default.
 *   rn_consumer_t  reads one shard of one stream from a position.
 *   rn_group_consumer_t  a member of a consumer group: reads the shards the
 *                  broker assigns it, checkpoints, at-least-once.
 *
 * Threading, once for the whole library:
 *   - Every blocking call ("Blocking." in its comment) posts a request to the
 *     client's I/O thread and waits for the answer; it may be called from any
 *     application thread, concurrently with other calls on the same client.
 *   - Callbacks (producer delivery reports) run on the client's I/O thread,
 *     or on the I/O thread of the leader connection the batch went on.
 *     A callback must be quick and must not call a blocking function of this
 *     library: such a call returns RN_EBUSY instead of deadlocking.
 *   - A client must outlive every producer and consumer made from it.
 *
 * Errors: every function returns rn_err_t (runnel/error.h): 0 on success, a
 * negative code from the one error table otherwise. rn_err_name(),
 * rn_strerror() and rn_err_retriable() describe a code. The broker's or the
 * connection's specific text for the last failed call on this thread is in
 * rn_last_error_message(). When a function that takes a callback returns an
 * error, the callback is never called for that call.
 *
 * Strings passed in are borrowed for the duration of the call (the library
 * copies what it keeps) unless a comment says otherwise.
 */
#ifndef RUNNEL_RUNNEL_H
#define RUNNEL_RUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runnel/batch.h" /* rn_record_t, rn_codec_t, rn_record_header_next */
#include "runnel/error.h" /* rn_err_t and the error table */
#include "runnel/durability.h" /* rn_durability_t */
#include "runnel/keys.h" /* hash keys: MD5 routing, decimal parse/format */

#ifdef __cplusplus
extern "C" {
#endif

/* Symbol visibility: the library is built with -fvisibility=hidden and only
 * RN_EXTERN functions are exported from the shared library. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define RN_EXTERN __attribute__((visibility("default")))
#else
#define RN_EXTERN
#endif

#define RN_DEFAULT_BROKER "127.0.0.1:7400"

/* Detail text of the last failed librunnel call made by this thread (for
 * example the broker's message "stream \"x\" does not exist" or
 * "connect 127.0.0.1:7400: connection refused"); "" when that call gave no
 * detail. Thread-local storage, valid until this thread's next librunnel
 * call. Never NULL. */
RN_EXTERN const char *rn_last_error_message(void);

/* ==== client ============================================================== */

typedef struct rn_client rn_client_t;

/* Client configuration. Initialise with rn_client_conf_init() (later versions
 * append fields; init sets them to their defaults). */
typedef struct rn_client_conf {
  const char *broker;            /* "host:port", or a bootstrap list "host:port,host:port,..."
                                    (tried in turn: a failed connection attempt moves
                                    to the next address); default RN_DEFAULT_BROKER;
                                    borrowed */
  uint32_t connect_timeout_ms;   /* one connect attempt; default 5000 */
  uint32_t request_timeout_ms;   /* a request without answer fails with
                                    RN_ETIMEDOUT after this (plus a fetch's
                                    max_wait_ms); default 30000 */
  uint32_t reconnect_backoff_ms; /* first delay after a failure; default 100 */
  uint32_t reconnect_backoff_max_ms; /* doubling stops here; default 5000 */
  uint32_t max_frame_bytes;      /* largest response accepted; default 64 MiB */
} rn_client_conf_t;

/* Fill *conf with the defaults. */
RN_EXTERN void rn_client_conf_init(rn_client_conf_t *conf);

/* Create a client and start its I/O thread. The connection is opened lazily
 * by the first request and reopened after a loss:
 *   - a request waits while a connection attempt is under way; when the
 *     attempt fails, every waiting request fails with RN_ECONNECTION;
 *   - when the connection is lost, every request sent on it and not yet
 *     answered fails with RN_ECONNECTION (retriable: the broker may or may
 *     not have executed it);
 *   - after a failure the next attempt waits reconnect_backoff_ms, doubling
 *     up to reconnect_backoff_max_ms, reset by a successful connection;
 *   - with a bootstrap list, an attempt that fails moves to the next address
 *     at once, and the waiting requests fail only when every address failed
 *     in a row (then the backoff applies);
 *   - a shard leader's connection (a cluster) follows the same rules.
 * conf may be NULL (defaults); it is copied. On success *out owns the client
 * (free with rn_client_destroy). Returns 0, RN_EINVAL (malformed broker
 * address), RN_ENOMEM or a -errno from thread creation. Not blocking. */
RN_EXTERN rn_err_t rn_client_new(const rn_client_conf_t *conf, rn_client_t **out);

/* Stop the I/O thread, fail every outstanding request with RN_ECANCELED,
 * close the connection and free the client. Every producer and consumer of
 * this client must have been destroyed before. NULL is a no-op. Must not be
 * called from a callback. */
RN_EXTERN void rn_client_destroy(rn_client_t *cl);

/* ==== broker information =================================================== */

/* Every new connection starts with a BrokerInfo request (before any other
 * request is written) so the client knows the broker's limits: a request
 * frame above max_frame_bytes fails with RN_ETOOLARGE without being sent,
 * and the producer refuses a record above max_record_bytes in send() (see
 * rn_producer_send). A broker that predates BrokerInfo (it answers
 * RN_EUNKNOWNOP) is used with the default limits below. A peer that is not
 * a runnel broker — for instance runneld's HTTP port — fails the connection
 * attempt, and every request waiting for it, with RN_EPROTOCOL (not
 * retriable) and a message that says what answered. */
#define RN_DEFAULT_MAX_RECORD_BYTES (1u << 20)
#define RN_DEFAULT_MAX_BATCH_BYTES (8u << 20)
#define RN_DEFAULT_MAX_FRAME_BYTES (16u << 20)
#define RN_DEFAULT_MAX_FETCH_BYTES (16u << 20)

/* A shard whose log failed; it refuses appends. */
typedef struct rn_failed_shard {
  char *stream;
  uint32_t shard;
  rn_err_t err;  /* what failed the log (rn_err_name: "EIO", ...) */
  char *message; /* the broker's text */
} rn_failed_shard_t;

/* The broker's answer to BrokerInfo. Owned by the caller: free with
 * rn_broker_info_free (one allocation tree; do not free the members).
 * Strings are never NULL. */
typedef struct rn_broker_info {
  char *version;                 /* runneld's version, e.g. "0.1.0" */
  int64_t start_ms;              /* when the broker started, ms since the epoch */
  char *data_dir;                /* its data directory, as configured */
  uint64_t data_dir_free_bytes;  /* space available to the broker; 0 with data_dir_err */
  uint64_t data_dir_total_bytes;
  rn_err_t data_dir_err;         /* 0, or why the sizes are unknown (statfs failed) */
  char *data_dir_message;        /* "" when data_dir_err is 0 */
  uint32_t max_record_bytes;     /* key + data + header keys and values of one record */
  uint32_t max_batch_bytes;      /* one stored batch */
  uint32_t max_frame_bytes;      /* one request frame */
  uint32_t max_fetch_bytes;      /* cap on one fetch response's record bytes */
  uint32_t stream_count;
  uint32_t shard_count;          /* over every stream */
  size_t failed_shard_count;
  rn_failed_shard_t *failed_shards;
  char *health;                  /* "ok", or "degraded" while any shard is failed */
} rn_broker_info_t;

/* Ask the broker about itself. Blocking. On success *out (caller frees with
 * rn_broker_info_free). Errors: RN_EUNKNOWNOP (a broker older than this
 * request), RN_EPROTOCOL, transport errors. */
RN_EXTERN rn_err_t rn_broker_info(rn_client_t *cl, rn_broker_info_t **out);

RN_EXTERN void rn_broker_info_free(rn_broker_info_t *info); /* NULL ok */

/* ==== routing (pure functions) =========================================== */

/* Hash keys come from runnel/keys.h (the one rule, shared with the broker):
 * RN_HASH_KEY_BYTES, RN_HASH_KEY_STRLEN, rn_hash_key_for() (MD5 of a
 * partition key), rn_hash_key_parse() / rn_hash_key_parse_n() (canonical
 * decimal "0" .. "340282366920938463463374607431768211455", as Kinesis's
 * ExplicitHashKey: no leading zeros; RN_EINVAL otherwise) and
 * rn_hash_key_format(). */

/* ==== admin =============================================================== */

/* rn_durability_t, rn_durability_name() and rn_durability_parse() come from
 * runnel/durability.h (shared with the broker). */

/* Where a stream's dedup window takes a record's id from. */
typedef enum rn_dedup_key {
  RN_DEDUP_NONE = 0,
  RN_DEDUP_FIELD = 1,     /* a JSON field of the record's data */
  RN_DEDUP_RECORD_ID = 2, /* the record id (rn_message_t.id) */
} rn_dedup_key_t;

/* Settings of a stream to create. Strings borrowed for the call. */
typedef struct rn_stream_config {
  const char *name;        /* [A-Za-z0-9_.-]{1,128} */
  uint32_t shard_count;    /* >= 1 */
  int64_t retention_ms;    /* 0: the broker's default_retention (24 h unless
                              configured); < 0: keep forever (by time) */
  int64_t retention_bytes; /* per shard; <= 0: unlimited */
  rn_durability_t durability;
  /* Tiered storage (docs/tiering.md): sealed segments go to the broker's
   * object store; retention_* above stay the total. Needs a broker with a
   * store (s3_bucket or tier_dir), else RN_EINVAL. */
  bool tiered;
  int64_t local_retention_ms;    /* tiered: how long an uploaded segment stays on the broker's disk;
                                    0 = the broker's default_local_retention (unset: all stays),
                                    < 0 = all stays */
  int64_t local_retention_bytes; /* tiered: per shard; <= 0 = unlimited */
  /* The dedup window (docs/dedup.md): a record whose id was already stored
   * within dedup_window_ms is acknowledged with the original's shard and
   * offset and not stored again. RN_DEDUP_NONE (default): no window;
   * RN_DEDUP_FIELD: the id is dedup_field ("event_uuid", or a dotted path
   * "meta.id") of the data read as a JSON object; RN_DEDUP_RECORD_ID: the
   * record id (rn_message_t.id). The window must be 1 ms .. 7 days and no
   * longer than the retention, else RN_EINVAL. */
  rn_dedup_key_t dedup_key;
  const char *dedup_field;
  int64_t dedup_window_ms;
  /* A cluster (docs/cluster.md): copies of every shard (1..5; 0 = the
   * cluster's default, min(3, brokers alive); a single broker refuses > 1)
   * and the in-sync copies a produce needs (0 = floor(replication/2)+1). */
  uint32_t replication;
  uint32_t min_insync;
} rn_stream_config_t;

/* One shard as described by the broker. */
typedef struct rn_shard_info {
  uint32_t index;                              /* the N of shardId-%012d */
  char shard_id[32];                           /* "shardId-000000000003" */
  uint8_t hash_key_start[RN_HASH_KEY_BYTES];   /* inclusive, big-endian */
  uint8_t hash_key_end[RN_HASH_KEY_BYTES];     /* inclusive, big-endian */
  uint64_t start_offset;                       /* earliest stored offset */
  uint64_t end_offset;                         /* high watermark: next offset */
  int64_t last_append_ms;                      /* newest record's arrival, 0 = none */
  uint64_t stored_bytes;                       /* bytes of its segments on the broker's disk */
  /* Tiered streams (0 otherwise): start_offset is then the earliest offset
   * anywhere (= remote_start_offset), local_start_offset the earliest on
   * the broker's disk; reads below it come from the store. */
  uint64_t remote_start_offset;
  uint64_t local_start_offset;
  uint64_t remote_bytes;                       /* in the store */
  uint32_t remote_segments;
  uint32_t local_segments;                     /* on the broker's disk, the active one included */
  uint64_t upload_backlog_bytes;               /* sealed, not uploaded yet */
  uint32_t upload_backlog_segments;
  int64_t upload_backlog_age_ms;               /* the oldest has waited this long; 0 = none */
  /* A cluster (0 / empty on a single broker): the leader's broker id (0 =
   * none: offline) and native address, the leader epoch, the replicas and
   * the in-sync replicas. */
  uint32_t leader;
  char leader_address[96];
  uint32_t leader_epoch;
  uint32_t replicas[5], replica_count;
  uint32_t isr[5], isr_count;
} rn_shard_info_t;

/* A stream's description. Owned by the caller: free with rn_stream_desc_free
 * (one allocation tree; do not free the members). */
typedef struct rn_stream_desc {
  char *name;
  int64_t retention_ms;
  int64_t retention_bytes;
  rn_durability_t durability;
  int64_t created_ms;
  char *status;            /* "ACTIVE", ... */
  size_t shard_count;
  rn_shard_info_t *shards; /* shard_count entries, by index */
  bool tiered;
  int64_t local_retention_ms;    /* tiered: > 0, or -1 = everything stays local */
  int64_t local_retention_bytes; /* tiered: per shard, -1 = unlimited */
  rn_dedup_key_t dedup_key;      /* RN_DEDUP_NONE: no dedup window */
  char *dedup_field;             /* RN_DEDUP_FIELD: the field; else NULL */
  int64_t dedup_window_ms;
} rn_stream_desc_t;

RN_EXTERN void rn_stream_desc_free(rn_stream_desc_t *desc); /* NULL ok */

/* Index into shards[0, n) of the shard whose [hash_key_start, hash_key_end]
 * contains hash_key. Returns 0 with *pos set, or RN_ENOSHARD when no range
 * contains it (the ranges of a stream cover the whole space, so that means a
 * malformed description). Pure. */
RN_EXTERN rn_err_t rn_shard_for_hash(const rn_shard_info_t *shards, size_t n,
                                     const uint8_t hash_key[RN_HASH_KEY_BYTES], size_t *pos);

/* Create a stream. Blocking. out may be NULL; otherwise on success *out gets
 * the new stream's description (caller frees). Errors: RN_EEXIST,
 * RN_EINVAL, transport errors (RN_ECONNECTION, RN_ETIMEDOUT), ... */
RN_EXTERN rn_err_t rn_stream_create(rn_client_t *cl, const rn_stream_config_t *config,
                                    rn_stream_desc_t **out);

/* Delete a stream and its data. Blocking. RN_ENOSTREAM when absent. */
RN_EXTERN rn_err_t rn_stream_delete(rn_client_t *cl, const char *name);

/* Names of all streams. Owned by the caller: rn_stream_names_free. */
typedef struct rn_stream_names {
  size_t count;
  char **names;
} rn_stream_names_t;

RN_EXTERN void rn_stream_names_free(rn_stream_names_t *names); /* NULL ok */

/* List the streams. Blocking. On success *out (caller frees). */
RN_EXTERN rn_err_t rn_stream_list(rn_client_t *cl, rn_stream_names_t **out);

/* Describe a stream: settings and every shard with its hash-key range and
 * offsets. Blocking. On success *out (caller frees). */
RN_EXTERN rn_err_t rn_stream_describe(rn_client_t *cl, const char *name, rn_stream_desc_t **out);

/* Change a stream's retention (values as in rn_stream_config_t). Blocking.
 * out may be NULL; otherwise the updated description (caller frees). */
RN_EXTERN rn_err_t rn_stream_set_retention(rn_client_t *cl, const char *name, int64_t retention_ms,
                                           int64_t retention_bytes, rn_stream_desc_t **out);

/* Every retention of a stream at once (tiered streams have two). */
typedef struct rn_retention {
  int64_t retention_ms;          /* as in rn_stream_config_t: the total */
  int64_t retention_bytes;
  int64_t local_retention_ms;    /* tiered streams only (others: RN_EINVAL unless 0):
                                    0 = unchanged, < 0 = everything stays local, > 0 = new */
  int64_t local_retention_bytes; /* 0 = unchanged, < 0 = unlimited, > 0 = new */
} rn_retention_t;

/* rn_stream_set_retention with local retention. Blocking. out may be NULL. */
RN_EXTERN rn_err_t rn_stream_set_retentions(rn_client_t *cl, const char *name, const rn_retention_t *r,
                                            rn_stream_desc_t **out);

/* Recreate a tiered stream from the broker's object store (a broker with
 * an empty data directory, a lost disk): the same shards, hash ranges and
 * retention; every record still in total retention is served again.
 * Blocking (the broker downloads each shard's manifest). out may be NULL.
 * Errors: RN_EEXIST (the stream exists on this broker), RN_ENOENT (the
 * store has no such stream), RN_EINVAL (the broker has no store),
 * RN_EOBJSTORE / RN_ETIMEDOUT (the store). */
RN_EXTERN rn_err_t rn_stream_restore(rn_client_t *cl, const char *name, rn_stream_desc_t **out);

/* ==== tiered storage ====================================================== */

/* One kind of object-store operation. */
typedef struct rn_tier_op_stats {
  char op[16];                 /* "put", "get", "head", "list", "delete" */
  uint64_t requests;           /* sent, retries included */
  uint64_t errors;             /* operations that failed */
  uint64_t retries;
  uint64_t latency_count;
  double latency_sum_seconds;
  double latency_p50_seconds;  /* bucket upper bounds; 0 = no operation yet */
  double latency_p99_seconds;
} rn_tier_op_stats_t;

/* The broker's uploader, cache and errors. Owned by the caller: free with
 * rn_tier_status_free. Strings are never NULL. */
typedef struct rn_tier_status {
  bool enabled;                /* the broker has a store; the rest is 0 when not */
  char *store;                 /* "s3", "localdir" */
  char *location;              /* "s3://bucket/prefix" or the directory */
  uint64_t uploads_active;
  uint64_t backlog_bytes;      /* sealed segments of every tiered shard not uploaded yet */
  uint32_t backlog_segments;
  int64_t backlog_age_ms;
  uint64_t bytes_uploaded, bytes_downloaded; /* since the broker started */
  uint64_t cache_bytes, cache_limit_bytes, cache_hits, cache_misses, cache_evictions;
  uint64_t orphans_collected, remote_deletes, corrupt_objects;
  rn_err_t last_err;           /* 0 = none */
  char *last_error;            /* "" when last_err is 0 */
  uint32_t tiered_streams, tiered_shards;
  uint64_t remote_bytes;
  uint32_t remote_segments;
  uint32_t disk_used_percent, disk_high_water;
  bool backpressure;           /* produce to tiered streams answers RN_EBACKLOG now */
  uint32_t gets_inflight, gets_inflight_max;
  uint32_t delete_jobs;
  size_t op_count;
  rn_tier_op_stats_t *ops;     /* op_count entries */
} rn_tier_status_t;

/* Ask the broker about its tiered storage. Blocking. On success *out
 * (caller frees). A broker without a store answers enabled = false. */
RN_EXTERN rn_err_t rn_tier_status(rn_client_t *cl, rn_tier_status_t **out);
RN_EXTERN void rn_tier_status_free(rn_tier_status_t *st); /* NULL ok */

/* A position in a shard. */
typedef enum {
  RN_POS_OFFSET = 0,    /* value = offset */
  RN_POS_EARLIEST = 1,  /* the oldest record still stored */
  RN_POS_LATEST = 2,    /* the current end: only records appended later */
  RN_POS_TIMESTAMP = 3  /* value = ms since the epoch: first record at or after */
} rn_pos_kind_t;

/* Offsets of one shard. */
typedef struct rn_shard_offsets {
  uint32_t shard;
  rn_err_t err;          /* this shard's error; the other fields are 0 then */
  uint64_t offset;       /* the requested position, resolved to an offset */
  uint64_t start_offset; /* earliest stored */
  uint64_t end_offset;   /* high watermark */
} rn_shard_offsets_t;

/* Owned by the caller: rn_offsets_free. */
typedef struct rn_offsets {
  size_t count;
  rn_shard_offsets_t *shards;
} rn_offsets_t;

RN_EXTERN void rn_offsets_free(rn_offsets_t *offs); /* NULL ok */

/* Start/end offsets of every shard of a stream and the position (kind,
 * value) resolved in each. Blocking. On success *out (caller frees). */
RN_EXTERN rn_err_t rn_stream_list_offsets(rn_client_t *cl, const char *name, rn_pos_kind_t kind,
                                          int64_t value, rn_offsets_t **out);

/* ==== producer ============================================================ */

typedef struct rn_producer rn_producer_t;

/* Producer configuration. Initialise with rn_producer_conf_init(). */
typedef struct rn_producer_conf {
  uint32_t linger_ms;           /* a batch waits at most this for more records; default 5 */
  uint32_t max_batch_bytes;     /* a batch is sent when its records reach this; default 1 MiB */
  rn_codec_t codec;             /* RN_CODEC_NONE (default) or RN_CODEC_LZ4 */
  bool idempotent;              /* default true: retries never duplicate */
  uint64_t max_buffered_bytes;  /* records accepted and not yet acknowledged; default 64 MiB */
  uint32_t block_ms;            /* send() waits this long for buffer space; default 60000;
                                   0 = never wait (RN_EAGAIN at once) */
  uint32_t delivery_timeout_ms; /* a record fails once this has passed since send(),
                                   retries included; default 120000 */
  uint32_t retry_backoff_ms;    /* first retry delay, doubling; default 100 */
  uint32_t retry_backoff_max_ms;/* default 1000 */
  uint32_t close_timeout_ms;    /* rn_producer_destroy flushes this long; default 30000 */
  uint32_t max_in_flight;       /* batches on the wire per (stream, shard) at once; default
                                   5, at most 5 (the broker remembers the last 5 batches
                                   per producer and shard, so retries stay exactly-once);
                                   0 = default. Order per shard is kept either way; without
                                   idempotence a retry may reorder when this is above 1 */
} rn_producer_conf_t;

RN_EXTERN void rn_producer_conf_init(rn_producer_conf_t *conf);

/* Delivery report of one record: err is 0 on success, with the shard and
 * the record's offset in it (a record the stream's dedup window found
 * already stored: its original's shard and offset, which may be another
 * shard than the one it was routed to); on failure shard is the target shard (or
 * UINT32_MAX when routing failed) and offset is 0. Runs on the client's I/O
 * thread (or, for records cancelled by rn_producer_destroy, on the thread
 * calling destroy), exactly once per record that send() accepted, in send
 * order per shard. opaque is the value given to send(). */
typedef void (*rn_delivery_cb)(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque);

/* Create a producer on cl. conf may be NULL (defaults); it is copied. With
 * idempotence on (the default) this obtains a producer id from the broker:
 * Blocking then, and it fails with that request's error. On success *out
 * owns the producer (rn_producer_destroy). */
RN_EXTERN rn_err_t rn_producer_new(rn_client_t *cl, const rn_producer_conf_t *conf,
                                   rn_producer_t **out);

/* Queue one record for stream, routed by MD5(key). key/data are copied
 * (key may be NULL only with keylen 0; data NULL only with datalen 0).
 * Asynchronous: cb (may be NULL) reports the outcome later. The first send
 * to a stream describes it to learn its shards (Blocking, once per stream).
 * When the buffer (max_buffered_bytes) is full, waits up to block_ms for
 * space, then returns RN_ETIMEDOUT (RN_EAGAIN when block_ms is 0).
 * Thread-safe. Called from a delivery callback it never waits: RN_EAGAIN
 * when full, RN_EBUSY when the stream is not known yet.
 * Returns 0 (cb will be called exactly once), RN_ENOSTREAM, RN_ETOOLARGE
 * (one record larger than max_buffered_bytes or the batch format),
 * RN_EINVAL, RN_ECLOSED (producer being destroyed) or a describe error. */
RN_EXTERN rn_err_t rn_producer_send(rn_producer_t *p, const char *stream, const void *key,
                                    size_t keylen, const void *data, size_t datalen,
                                    rn_delivery_cb cb, void *opaque);

/* A record with every option, for rn_producer_send_message. */
typedef struct rn_message {
  const char *stream;
  const void *key;             /* partition key */
  size_t key_len;
  const char *explicit_hash_key; /* decimal; NULL = MD5(key) routes */
  const void *data;
  size_t data_len;
  const rn_record_header_t *headers; /* header_count entries; copied */
  size_t header_count;
  const void *id;              /* record id for the broker's dedup window; NULL = none */
  size_t id_len;
  int64_t timestamp_ms;        /* 0 = now */
  rn_delivery_cb cb;
  void *opaque;
} rn_message_t;

/* rn_producer_send with every option; same contract. An unparsable
 * explicit_hash_key gives RN_EINVAL. */
RN_EXTERN rn_err_t rn_producer_send_message(rn_producer_t *p, const rn_message_t *msg);

/* Send every queued record now (ignoring linger) and wait until no record
 * is outstanding: every record accepted so far (also those other threads
 * send meanwhile) has been reported to its callback and the callback
 * returned. Blocking, at most timeout_ms (then RN_ETIMEDOUT; nothing is
 * lost, the records stay queued). Thread-safe. RN_EBUSY from a callback. */
RN_EXTERN rn_err_t rn_producer_flush(rn_producer_t *p, uint32_t timeout_ms);

/* Records accepted and not yet reported. Thread-safe. */
RN_EXTERN size_t rn_producer_outstanding(rn_producer_t *p);

/* Flush for at most close_timeout_ms, then fail what is left with
 * RN_ECANCELED (callbacks run on this thread), wait for requests still on
 * the wire to end, and free. Blocking. NULL is a no-op. Must not be called
 * from a callback, nor concurrently with other calls on p. */
RN_EXTERN void rn_producer_destroy(rn_producer_t *p);

/* ==== consumer ============================================================ */

typedef struct rn_consumer rn_consumer_t;

/* Create a reader of one shard (by index) of stream, starting at the
 * position (kind, value), resolved by the first fetch. Not blocking; errors
 * in stream/shard show up in the first poll. On success *out owns the
 * consumer (rn_consumer_destroy). A consumer is used by one thread at a
 * time. */
RN_EXTERN rn_err_t rn_consumer_new(rn_client_t *cl, const char *stream, uint32_t shard,
                                   rn_pos_kind_t kind, int64_t value, rn_consumer_t **out);

/* Next record. When the fetched records are used up, sends one Fetch that
 * the broker holds up to max_wait_ms until records arrive (long poll;
 * 0 = answer at once). Blocking. Batches are verified (checksums) before
 * any record of them is returned; records below the requested position are
 * skipped.
 * Returns 0 with *rec set — its pointers live until the next poll, seek or
 * destroy on this consumer —, RN_EAGAIN when no record arrived within
 * max_wait_ms, RN_EOFFSET when the position is outside what the shard
 * stores (e.g. deleted by retention: seek to recover), RN_ECORRUPT, or a
 * request error (RN_ENOSTREAM, RN_ENOSHARD, RN_ECONNECTION, ...). After an
 * error the position is unchanged: polling again retries. */
RN_EXTERN rn_err_t rn_consumer_poll(rn_consumer_t *c, uint32_t max_wait_ms, const rn_record_t **rec);

/* Move to a new position; drops fetched records. Not blocking. */
RN_EXTERN rn_err_t rn_consumer_seek(rn_consumer_t *c, rn_pos_kind_t kind, int64_t value);

/* Offset of the next record poll returns; false (and *offset untouched)
 * while the starting position is not resolved yet (before the first fetch
 * answered). */
RN_EXTERN bool rn_consumer_position(const rn_consumer_t *c, uint64_t *offset);

/* The shard's high watermark (end_offset: one past the last committed
 * record) as of the latest fetch; false before the first fetch. With
 * position >= high watermark the consumer has read everything there was. */
RN_EXTERN bool rn_consumer_high_watermark(const rn_consumer_t *c, uint64_t *end_offset);

/* Free the consumer (and the records poll returned). NULL is a no-op. */
RN_EXTERN void rn_consumer_destroy(rn_consumer_t *c);

/* ==== consumer groups ====================================================== */

/* A consumer group reads one stream; the broker assigns the stream's shards
 * to the group's members, keeps a durable checkpoint per shard and reports
 * lag (docs/groups.md). Delivery is at least once: a record counts as
 * processed once the application calls rn_group_poll again after receiving
 * it (or rn_group_commit / close); checkpoints cover processed records only,
 * so after a crash the records since the last commit are delivered again. */

typedef struct rn_group_consumer rn_group_consumer_t;

/* Called from rn_group_poll (on the polling thread) when the member gets
 * shards (assigned) or must give them up (revoked: their processed records
 * are committed before the call). shards[0, n) sorted, borrowed. */
typedef void (*rn_group_shards_cb)(void *arg, const uint32_t *shards, size_t n);

typedef struct rn_group_conf {
  uint32_t session_timeout_ms;     /* the broker frees this member's shards when it has
                                      not heard from it for this long; default 10000 */
  rn_pos_kind_t start_kind;        /* where a group created by this join starts:
                                      RN_POS_EARLIEST, RN_POS_LATEST (default) or
                                      RN_POS_TIMESTAMP (start_value ms) */
  int64_t start_value;
  bool auto_commit;                /* default true: commit processed records every
                                      auto_commit_interval_ms from rn_group_poll */
  uint32_t auto_commit_interval_ms;/* default 1000 */
  uint32_t max_attempts;           /* rn_group_nack of the same record this many times
                                      sends it to the dead-letter stream and moves on;
                                      0 (default) = no dead-letter stream: redeliver forever */
  const char *dlq_stream;          /* NULL = "<stream>.dlq" (created with 1 shard, sync,
                                      when missing); borrowed for rn_group_consumer_new */
  const char *client_id;           /* shown by describe; NULL = "librunnel" */
  rn_group_shards_cb on_assigned;  /* may be NULL */
  rn_group_shards_cb on_revoked;   /* may be NULL */
  void *cb_arg;
} rn_group_conf_t;

RN_EXTERN void rn_group_conf_init(rn_group_conf_t *conf);

/* Join group on stream as a new member (the group is created on first join
 * with conf's start position). Blocking (one heartbeat). conf may be NULL;
 * it is copied. On success *out owns the member (rn_group_consumer_close). A
 * member is used by one thread at a time. Errors: RN_ENOSTREAM, RN_EINVAL,
 * transport errors. */
RN_EXTERN rn_err_t rn_group_consumer_new(rn_client_t *cl, const char *stream, const char *group,
                                         const rn_group_conf_t *conf, rn_group_consumer_t **out);

/* Next record of one of the member's shards; *shard (may be NULL) gets its
 * shard. Marks the record the previous call returned as processed, sends
 * heartbeats and auto-commits when due, applies assignment changes (calling
 * on_revoked/on_assigned), and long-polls the member's shards for at most
 * max_wait_ms. Blocking. Returns 0 with *rec valid until the next call on
 * this member, RN_EAGAIN when nothing arrived in max_wait_ms, RN_ECORRUPT,
 * or a transport error (the member keeps its state: poll again). When the
 * broker no longer knows the member (its session expired), the member drops
 * its shards (on_revoked, nothing committed), joins again and goes on. */
RN_EXTERN rn_err_t rn_group_poll(rn_group_consumer_t *gc, uint32_t max_wait_ms, const rn_record_t **rec,
                                 uint32_t *shard);

/* Reject the record the last poll returned: the next poll returns it again.
 * With max_attempts > 0, the max_attempts-th rejection of the same record
 * produces it to the dead-letter stream (value, key, id and headers copied,
 * plus headers "dlq.stream", "dlq.group", "dlq.shard", "dlq.offset",
 * "dlq.timestamp", "dlq.attempts" and "dlq.reason" = reason) and marks it
 * processed: the group moves past it. Blocking only then (the produce waits
 * for its acknowledgement). reason may be NULL. Returns 0, RN_EINVAL (no
 * record to reject), or the dead-letter produce's error (the record is then
 * redelivered). */
RN_EXTERN rn_err_t rn_group_nack(rn_group_consumer_t *gc, const char *reason);

/* Commit the processed records of every held shard now and wait until the
 * checkpoints are durable. With include_current, the record the last poll
 * returned counts as processed too. Blocking. Returns 0, RN_EFENCED /
 * RN_EUNKNOWNMEMBER (the shard moved on: the member drops it at its next
 * poll), or a transport error. */
RN_EXTERN rn_err_t rn_group_commit(rn_group_consumer_t *gc, bool include_current);

/* Shards the member holds now (sorted). *n entries are written to
 * shards[0, cap); returns how many it holds. */
RN_EXTERN size_t rn_group_shards(const rn_group_consumer_t *gc, uint32_t *shards, size_t cap);

/* True when the member holds every shard the broker means to give it (none
 * pending) and, as of the latest fetch, has read each of them up to its
 * high watermark: everything there was when it looked has been delivered. */
RN_EXTERN bool rn_group_drained(const rn_group_consumer_t *gc);

/* CLOCK_MONOTONIC time (ms) at which the member sent its last heartbeat or
 * commit that the broker answered: the broker frees the member's shards
 * session_timeout_ms after it last heard from it. 0 before the first. */
RN_EXTERN int64_t rn_group_last_contact_ms(const rn_group_consumer_t *gc);

/* The member id the broker gave (valid until the member rejoins or closes). */
RN_EXTERN const char *rn_group_member_id(const rn_group_consumer_t *gc);

/* Commit what was processed (the record last returned included), leave the
 * group (its shards go to other members at once) and free. Blocking. NULL is
 * a no-op. Returns the first error of the commit or leave (the member is
 * freed regardless). */
RN_EXTERN rn_err_t rn_group_consumer_close(rn_group_consumer_t *gc);

/* Drop the member without committing or leaving, as if the process died: the
 * broker frees its shards only when its session times out. For tests and
 * benchmarks. NULL is a no-op. */
RN_EXTERN void rn_group_consumer_abandon(rn_group_consumer_t *gc);

/* ---- group administration ---- */

typedef struct rn_group_member_info {
  char *member_id;
  char *client_id;
  uint32_t member_epoch;
  uint32_t session_timeout_ms;
  int64_t last_heartbeat_ms; /* ms since its last heartbeat */
  size_t shard_count;
  uint32_t *shards;
  uint32_t pending;
} rn_group_member_info_t;

typedef struct rn_group_shard_info {
  uint32_t shard;
  char *owner;               /* member id, "" = none */
  bool has_checkpoint;       /* the group has an offset position here (a commit, or its
                                create/reset position); false for a timestamp start
                                no member has resolved yet */
  uint64_t checkpoint;       /* next offset to read */
  int64_t checkpoint_ms;     /* wall time of the last commit, 0 = never committed */
  uint64_t start_offset, end_offset;
  uint64_t lag_records;      /* end_offset - max(checkpoint, start_offset) */
  int64_t lag_ms;            /* age of the oldest unconsumed record: now - its broker
                                arrival time; 0 when caught up; -1 = unknown (no
                                checkpoint, or its record could not be read) */
} rn_group_shard_info_t;

/* Owned by the caller: rn_group_desc_free. */
typedef struct rn_group_desc {
  char *stream;
  char *group;
  rn_pos_kind_t start_kind;
  int64_t start_value;
  int64_t created_ms;
  size_t member_count;
  rn_group_member_info_t *members;
  size_t shard_count;
  rn_group_shard_info_t *shards;
} rn_group_desc_t;

RN_EXTERN void rn_group_desc_free(rn_group_desc_t *d); /* NULL ok */

/* Create a group without joining it (RN_EEXIST when it exists). Blocking. */
RN_EXTERN rn_err_t rn_group_create(rn_client_t *cl, const char *stream, const char *group,
                                   rn_pos_kind_t start_kind, int64_t start_value);
/* Names of the stream's groups (rn_stream_names_free). Blocking. */
RN_EXTERN rn_err_t rn_group_list(rn_client_t *cl, const char *stream, rn_stream_names_t **out);
/* Members, assignment, checkpoints and lag. Blocking. RN_ENOGROUP. */
RN_EXTERN rn_err_t rn_group_describe(rn_client_t *cl, const char *stream, const char *group,
                                     rn_group_desc_t **out);
/* Delete a group without members (RN_EGROUPACTIVE otherwise). Blocking. */
RN_EXTERN rn_err_t rn_group_delete(rn_client_t *cl, const char *stream, const char *group);
/* Move the checkpoints of shards[0, n) (n == 0: every shard) to a position:
 * RN_POS_EARLIEST, RN_POS_LATEST, RN_POS_TIMESTAMP or RN_POS_OFFSET (the
 * same offset in each shard). Only while the group has no members
 * (RN_EGROUPACTIVE). Creates the group when missing. out may be NULL.
 * Blocking. */
RN_EXTERN rn_err_t rn_group_reset(rn_client_t *cl, const char *stream, const char *group, rn_pos_kind_t kind,
                                  int64_t value, const uint32_t *shards, size_t n, rn_group_desc_t **out);

/* ==== archive sinks (docs/sinks.md) ========================================== */

/* A sink delivers one stream to an object store as NDJSON(.gz) or Parquet
 * objects under a prefix template, buffered per shard by size and time. */
typedef enum { RN_SINK_FORMAT_NDJSON = 0, RN_SINK_FORMAT_PARQUET = 1 } rn_sink_format_t;
/* The wire's SinkCompression: 0 = the format's default (NDJSON gzip, Parquet
 * the schema's), 1 none, 2 gzip, 3 snappy, 4 zstd. */
typedef enum {
  RN_SINK_COMPRESSION_DEFAULT = 0,
  RN_SINK_COMPRESSION_NONE = 1,
  RN_SINK_COMPRESSION_GZIP = 2,
  RN_SINK_COMPRESSION_SNAPPY = 3,
  RN_SINK_COMPRESSION_ZSTD = 4,
} rn_sink_compression_t;

/* Borrowed by rn_sink_create for the call. */
typedef struct rn_sink_conf {
  const char *name, *stream;
  const char *destination;      /* "s3://bucket/prefix/" or "file:///dir/" */
  rn_sink_format_t format;
  rn_sink_compression_t compression;
  const char *schema;           /* Parquet: the schema file's text */
  const char *prefix;           /* NULL = "!{timestamp:yyyy/MM/dd/HH}/" */
  const char *error_prefix;     /* NULL = "errors/!{error}/!{timestamp:yyyy/MM/dd}/" */
  uint64_t buffer_bytes;        /* 0 = 5 MiB */
  int64_t buffer_interval_ms;   /* 0 = 300 s */
  const char *event_time_field; /* NULL = arrival time */
  bool start_latest;            /* start at the end instead of the earliest record */
} rn_sink_conf_t;

typedef struct rn_sink_shard_desc {
  uint32_t shard;
  uint64_t checkpoint;          /* every record below is in an object */
  uint64_t end_offset, lag_records;
  int64_t lag_ms;               /* 0 caught up; -1 unknown */
  uint64_t buffered_bytes, buffered_records;
  char *state;                  /* "idle", "reading", "buffering", "flushing", "retrying", "paused", "stopped" */
  char *last_error;             /* "" none */
  uint64_t objects, records, error_records; /* since the broker started */
  bool pending;                 /* a flush of [pending_first, pending_last] is being written */
  uint64_t pending_first, pending_last;
} rn_sink_shard_desc_t;

/* Owned by the caller: rn_sink_desc_free. */
typedef struct rn_sink_desc {
  char *name, *stream, *destination, *schema, *prefix, *error_prefix, *event_time_field;
  rn_sink_format_t format;
  rn_sink_compression_t compression;
  uint64_t buffer_bytes;
  int64_t buffer_interval_ms;
  bool start_latest;
  bool paused;
  char *state;                  /* "running", "paused", "stopped: <why>" */
  int64_t created_ms;
  size_t shard_count;
  rn_sink_shard_desc_t *shards;
} rn_sink_desc_t;

RN_EXTERN void rn_sink_desc_free(rn_sink_desc_t *d); /* NULL ok */
/* Create a sink (answered once it is durable). out may be NULL. Blocking.
 * RN_EEXIST, RN_ENOSTREAM, RN_EINVAL (rn_last_error_message says which field). */
RN_EXTERN rn_err_t rn_sink_create(rn_client_t *cl, const rn_sink_conf_t *conf, rn_sink_desc_t **out);
/* Every sink's name, sorted (rn_stream_names_free). Blocking. */
RN_EXTERN rn_err_t rn_sink_list(rn_client_t *cl, rn_stream_names_t **out);
/* Configuration, state and per-shard position and lag. RN_ENOSINK. Blocking. */
RN_EXTERN rn_err_t rn_sink_describe(rn_client_t *cl, const char *name, rn_sink_desc_t **out);
/* Pause (resume false) or resume; the sink keeps its position. out may be NULL. Blocking. */
RN_EXTERN rn_err_t rn_sink_pause(rn_client_t *cl, const char *name, bool resume, rn_sink_desc_t **out);
/* Delete a sink (objects already written stay). Blocking. */
RN_EXTERN rn_err_t rn_sink_delete(rn_client_t *cl, const char *name);

#ifdef __cplusplus
}
#endif
#endif
