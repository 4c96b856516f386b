/*
 * rn_tier.h — tiered storage: sealed segments in an S3-compatible object
 * store, reads below the local disk served from it, a bucket that can
 * restore a stream. docs/tiering.md describes the object layout, the
 * manifest, the guarantees and the failure modes.
 *
 * Two parts, one header (storage/tier/ is one library, rn_tier):
 *
 *   1. rn_objstore_t — an asynchronous object store: put (multipart for
 *      large objects), ranged get, head, list, delete. Backends: S3 on
 *      libcurl (s3.c), a local directory (localdir.c: tests, an NFS mount),
 *      and a fault-injecting wrapper around another store (faulty.c).
 *   2. rn_tier_t / rn_tier_shard_t — per broker and per shard: the manifest
 *      (what is remote, durable locally and mirrored to the bucket), the
 *      uploader, local and total retention of a tiered shard, the garbage
 *      collector and remote reads through a bounded cache.
 *
 * Threading, for both parts: an object is owned by one thread, the owner
 * (the broker's loop thread). Every function is called there and every
 * callback runs there, from rn_objstore_poll(). Completion is signalled
 * through a file descriptor (rn_objstore_fd), like rn_io: an event loop
 * waits on it; nothing here blocks the owner except where a function says
 * "Blocking" (open, restore steps, close).
 *
 * Async contract (as rn_io's): when a function taking a callback returns an
 * error, the callback is never called; otherwise it is called exactly once.
 * Operations in flight when their object closes complete with RN_ECANCELED.
 */
#ifndef RN_TIER_H
#define RN_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_base.h"
#include "rn_io.h"
#include "rn_log.h"
#include "runnel/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== 1. the object store ================================================= */

typedef struct rn_objstore rn_objstore_t;

/* What every operation reports. Valid only during the callback; a GET's
 * data is handed over (see rn_obj_get_cb). */
typedef struct rn_obj_result {
  rn_err_t err;        /* 0; RN_ENOENT (no such key: GET/HEAD); RN_EOBJSTORE
                        * (the store answered an error, or retries and the
                        * deadline ran out: message says which); RN_ETIMEDOUT
                        * (the deadline passed); RN_ECANCELED (store closing);
                        * RN_ECORRUPT (a GET returned fewer/more bytes than
                        * asked or the object changed size) */
  int http_status;     /* last HTTP status (S3); 0 for other backends */
  unsigned attempts;   /* requests sent, retries included */
  uint64_t object_size; /* GET/HEAD: the whole object's size */
  int64_t mtime_ms;    /* HEAD: last modified (ms since the epoch); 0 unknown */
  char message[256];   /* on error: what and where (never a credential) */
} rn_obj_result_t;

typedef void (*rn_obj_cb)(void *arg, const rn_obj_result_t *r);
/* GET completion: on success data[0, len) holds the requested range and the
 * callback owns it (free() it). NULL on error. */
typedef void (*rn_obj_get_cb)(void *arg, const rn_obj_result_t *r, uint8_t *data, size_t len);

typedef struct rn_obj_entry {
  const char *key;   /* as given to put (an S3 store's own prefix removed) */
  uint64_t size;
  int64_t mtime_ms;
} rn_obj_entry_t;
/* LIST completion: every key under the prefix (all pages), sorted; the
 * array and its strings are valid only during the callback. */
typedef void (*rn_obj_list_cb)(void *arg, const rn_obj_result_t *r, const rn_obj_entry_t *entries, size_t n);

/* Per-operation counters and latency, for /metrics and `runnelctl tier
 * status`. Index with rn_obj_op_t. */
typedef enum { RN_OBJ_PUT = 0, RN_OBJ_GET, RN_OBJ_HEAD, RN_OBJ_LIST, RN_OBJ_DELETE, RN_OBJ_NOPS } rn_obj_op_t;
const char *rn_obj_op_name(rn_obj_op_t op); /* "put", "get", ... */
typedef struct rn_objstore_stats {
  uint64_t requests[RN_OBJ_NOPS]; /* HTTP requests (or file operations) sent, retries included */
  uint64_t errors[RN_OBJ_NOPS];   /* operations that completed with an error */
  uint64_t retries[RN_OBJ_NOPS];
  uint64_t bytes_up, bytes_down;
  rn_hist_t seconds[RN_OBJ_NOPS]; /* per operation, rn_hist_latency_bounds */
} rn_objstore_stats_t;
/* The backend table. Each backend file fills one; rn_objstore_* below
 * dispatch through it. A backend owns everything behind self. */
typedef struct rn_objstore_ops {
  const char *name; /* "s3", "localdir", "faulty" */
  rn_err_t (*put_mem)(rn_objstore_t *os, const char *key, const uint8_t *data, size_t len, rn_obj_cb cb, void *arg);
  rn_err_t (*put_file)(rn_objstore_t *os, const char *key, const char *path, uint64_t len, rn_obj_cb cb, void *arg);
  rn_err_t (*get)(rn_objstore_t *os, const char *key, uint64_t off, uint64_t len, rn_obj_get_cb cb, void *arg);
  rn_err_t (*head)(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg);
  rn_err_t (*list)(rn_objstore_t *os, const char *prefix, rn_obj_list_cb cb, void *arg);
  rn_err_t (*del)(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg);
  int (*fd)(const rn_objstore_t *os);
  int (*poll)(rn_objstore_t *os);
  unsigned (*inflight)(const rn_objstore_t *os);
  void (*stats)(const rn_objstore_t *os, rn_objstore_stats_t *out); /* NULL: none */
  void (*destroy)(rn_objstore_t *os);
} rn_objstore_ops_t;

struct rn_objstore {
  const rn_objstore_ops_t *ops;
};

/* Fill *out (zeroed first). Backends without counters leave it zeroed. */
void rn_objstore_stats(const rn_objstore_t *os, rn_objstore_stats_t *out);

/* Put data[0, len) at key (overwriting). data must stay valid until cb. */
rn_err_t rn_objstore_put_mem(rn_objstore_t *os, const char *key, const uint8_t *data, size_t len, rn_obj_cb cb,
                             void *arg);
/* Put the first len bytes of the file at path (read on the store's own
 * threads, never the owner's): a single PUT, or a multipart upload when len
 * exceeds the store's part size (an aborted multipart upload is aborted on
 * the store, never left behind). The file must not shrink until cb. */
rn_err_t rn_objstore_put_file(rn_objstore_t *os, const char *key, const char *path, uint64_t len, rn_obj_cb cb,
                              void *arg);
/* Bytes [off, off + len) of the object at key (len 0: to its end). */
rn_err_t rn_objstore_get(rn_objstore_t *os, const char *key, uint64_t off, uint64_t len, rn_obj_get_cb cb, void *arg);
rn_err_t rn_objstore_head(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg);
rn_err_t rn_objstore_list(rn_objstore_t *os, const char *prefix, rn_obj_list_cb cb, void *arg);
/* Delete key; deleting a missing key succeeds (idempotent). */
rn_err_t rn_objstore_delete(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg);
/* Readable when completions wait. Owned by the store. */
int rn_objstore_fd(const rn_objstore_t *os);
/* Run the callbacks of completed operations; never blocks; returns how many. */
int rn_objstore_poll(rn_objstore_t *os);
/* Operations submitted whose callbacks have not run. */
unsigned rn_objstore_inflight(const rn_objstore_t *os);
/* Cancel what is in flight (callbacks run with RN_ECANCELED, from inside
 * this call), then free. Blocking briefly (joins the store's threads).
 * NULL ok. Not from inside one of its callbacks. */
void rn_objstore_destroy(rn_objstore_t *os);

/* Block until at least one completion is ready or timeout_ms passes, then
 * poll. For tests, tools and blocking steps (restore); never on a loop. */
int rn_objstore_wait(rn_objstore_t *os, int timeout_ms);

/* ---- S3 (s3.c, libcurl multi on one thread of its own) ---- */
typedef struct rn_s3_opts {
  const char *endpoint;    /* "https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:9000";
                            * NULL = https://s3.<region>.amazonaws.com */
  const char *bucket;      /* required */
  const char *region;      /* default "us-east-1" */
  const char *prefix;      /* prepended to every key ("" default); no leading '/' */
  bool path_style;         /* true: <endpoint>/<bucket>/<key>; false: <bucket>.<host>/<key> */
  const char *access_key;  /* credentials; NULL: from the environment
                            * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
                            * AWS_SESSION_TOKEN) or credentials_file */
  const char *secret_key;
  const char *session_token;
  const char *credentials_file; /* an AWS credentials file (INI); profile below */
  const char *profile;          /* default "default" (or AWS_PROFILE) */
  const char *ca_file;     /* TLS: CA bundle; NULL = system default */
  uint32_t request_timeout_ms; /* deadline of one operation, retries included; default 30000 */
  uint32_t max_retries;    /* on 5xx, SlowDown, connection errors, timeouts; default 5 */
  uint32_t backoff_ms;     /* first retry delay; doubles, full jitter; default 100 */
  uint64_t part_bytes;     /* multipart part size, also the single-PUT limit; default 16 MiB, min 5 MiB */
  uint32_t max_connections; /* concurrent requests; default 16 */
  rn_logger_t logger;
} rn_s3_opts_t;
void rn_s3_opts_default(rn_s3_opts_t *o);
/* Create an S3 store. Copies every string. Returns 0, RN_EINVAL (what is
 * wrong in why: no bucket, no credentials, bad endpoint) or RN_ENOMEM. */
rn_err_t rn_s3_new(const rn_s3_opts_t *o, rn_objstore_t **out, char *why, size_t whylen);

/* ---- a local directory (localdir.c: worker threads do the file I/O) ---- */
/* Keys map to files under root (created when missing); writes go to a
 * temporary file, fdatasync, rename, so an object is whole or absent. */
rn_err_t rn_localdir_new(const char *root, rn_objstore_t **out, char *why, size_t whylen);

/* ---- the fault-injecting wrapper (faulty.c, tests) ---- */
typedef struct rn_faulty_opts {
  /* Per operation kind (rn_obj_op_t): fail the next fail_next[op] operations with
   * RN_EOBJSTORE (without touching the inner store), then behave. */
  unsigned fail_next[RN_OBJ_NOPS];
  bool down;               /* every operation fails (an outage) until set false */
  bool lose_put_response;  /* PUTs reach the inner store, then report an error */
  bool truncate_gets;      /* GETs return one byte less than asked */
  bool corrupt_gets;       /* GETs flip a bit of what they return */
  uint32_t latency_ms;     /* delay every completion this long (a timer thread) */
} rn_faulty_opts_t;
/* Wrap inner (owned by the wrapper from now on). Wait on the wrapper's fd,
 * not the inner store's. */
rn_err_t rn_faulty_new(rn_objstore_t *inner, const rn_faulty_opts_t *o, rn_objstore_t **out);
/* Change the faults; owner thread. Applies to operations submitted after. */
void rn_faulty_set(rn_objstore_t *faulty, const rn_faulty_opts_t *o);

/* ==== 2. tiering ============================================================
 *
 * Object layout (docs/tiering.md): for a shard,
 *   shard prefix  P = "<hash8>/<cluster>/<stream>-<uid>/<shard>/"
 *                 hash8 = 8 hex digits of XXH3 of the rest of P, spreading
 *                 keys over the store's partitions
 *   P<base 20 digits>-<epoch>.log, .index, .timeindex   a sealed segment
 *   P"manifest"                                         the mirrored manifest
 * and for a stream, its descriptor per incarnation (what restore needs):
 *   "<hash8>/<cluster>/_streams/<stream>/<uid>"
 *
 * The manifest (manifest.c) is a per-shard append-only stream of records
 * (a pure codec, fuzzed: the unit a later replication carries), kept in
 * "<shard dir>/tier.manifest" and compacted by snapshot:
 *   STARTED  base, next, bytes, max_ts, epoch   durable before the PUTs
 *   UPLOADED base                               durable after them
 *   DELETED  base                               remote delete done (retention)
 *   START    offset                             the shard's total start moved
 * A segment leaves the local disk only after its UPLOADED is durable. */

typedef struct rn_tier rn_tier_t;
typedef struct rn_tier_shard rn_tier_shard_t;

typedef struct rn_tier_opts {
  rn_objstore_t *store;      /* borrowed; outlives the tier */
  rn_io_t *io;               /* borrowed: manifest writes and file reads run as its jobs */
  const char *cluster;       /* key component; default "local" */
  uint32_t upload_concurrency;   /* segments uploading at once, whole broker; default 4 */
  uint64_t upload_bytes_per_sec; /* 0 = unlimited */
  uint64_t cache_bytes;      /* remote-read cache (memory, LRU); default 256 MiB */
  uint32_t chunk_bytes;      /* ranged GET size; default 4 MiB */
  uint32_t readahead_chunks; /* chunks fetched ahead of a sequential reader; default 4 */
  int64_t gc_grace_ms;       /* an unknown object younger than this is kept; default 1 h */
  int64_t gc_interval_ms;    /* how often the collector lists; default 10 min; <=0 off */
  rn_clock_t clock;
  rn_logger_t logger;
} rn_tier_opts_t;
void rn_tier_opts_default(rn_tier_opts_t *o);

rn_err_t rn_tier_new(const rn_tier_opts_t *o, rn_tier_t **out);
/* Every shard closed first. Cancels what is in flight: each callback of
 * rn_tier_put_stream, rn_tier_get_stream and rn_tier_restore_shard not yet
 * called is called now, with RN_ECANCELED, before this returns (so callers
 * can free their arguments); the store's own late completions only free
 * the tier's bookkeeping. NULL ok. */
void rn_tier_destroy(rn_tier_t *t);
/* Time-driven work for every shard: start uploads (bounded, fair across
 * shards), local and total retention, remote deletes, GC, stream-delete
 * jobs. Owner thread; call about once a second and after appends roll. */
void rn_tier_tick(rn_tier_t *t, int64_t now_ms);

typedef struct rn_tier_shard_opts {
  const char *stream;        /* name (key component) */
  uint64_t uid;              /* stream incarnation */
  uint32_t shard;            /* shard index */
  const char *dir;           /* the shard's log directory: the manifest lives there */
  int64_t retention_ms;      /* total: remote and local; <0 forever */
  int64_t retention_bytes;   /* total; <0 unlimited */
  int64_t local_retention_ms;    /* what stays on disk once uploaded; <0 = keep all */
  int64_t local_retention_bytes; /* <0 = unlimited */
} rn_tier_shard_opts_t;

/* Attach tiering to an open log (borrowed; the broker opens it with its own
 * retention off: this shard applies both). Loads the manifest
 * ("<dir>/tier.manifest", created empty when missing). Blocking. Returns 0,
 * RN_ECORRUPT (manifest damaged: why says where) or a file-system error. */
rn_err_t rn_tier_shard_open(rn_tier_t *t, rn_log_t *log, const rn_tier_shard_opts_t *o, rn_tier_shard_t **out,
                            char *why, size_t whylen);
/* Stop uploads and reads of this shard (their callbacks run with
 * RN_ECANCELED), free. The log stays open. NULL ok. */
void rn_tier_shard_close(rn_tier_shard_t *ts);
void rn_tier_shard_set_retention(rn_tier_shard_t *ts, int64_t retention_ms, int64_t retention_bytes,
                                 int64_t local_retention_ms, int64_t local_retention_bytes);

/* Earliest offset stored anywhere (the first remote segment's base, else
 * the log's start). */
uint64_t rn_tier_shard_start(const rn_tier_shard_t *ts);
/* Offset after the last uploaded segment (the first not remote); the log's
 * start when nothing was uploaded. */
uint64_t rn_tier_shard_remote_end(const rn_tier_shard_t *ts);

/* Read from the bucket: whole batches starting with the one containing
 * offset (rn_tier_shard_start <= offset < rn_log_start(log)), at most cap
 * bytes but always at least the first batch, every batch verified, up to
 * the end of its remote segment. Served from the cache, else by ranged
 * GETs (several in flight, read-ahead for a sequential reader). cb gets
 * data it owns (free()), or an error: RN_EOFFSET (not remote), RN_ECORRUPT
 * (the object failed verification: reported, never served), RN_EOBJSTORE /
 * RN_ETIMEDOUT (the store), RN_ECANCELED. */
typedef void (*rn_tier_read_cb)(void *arg, rn_err_t err, uint8_t *data, size_t len);
/* (Both rn_tier_read and rn_tier_find_time deliver their callback from
 * rn_io_poll of the tier's rn_io_t, never from inside the call itself, even
 * when everything is cached; rn_tier_shard_close runs the pending ones with
 * RN_ECANCELED.) */
rn_err_t rn_tier_read(rn_tier_shard_t *ts, uint64_t offset, size_t cap, rn_tier_read_cb cb, void *arg);

/* First remote offset whose record timestamp is >= ts_ms (the log's start
 * when no remote record qualifies). */
typedef void (*rn_tier_offset_cb)(void *arg, rn_err_t err, uint64_t offset);
rn_err_t rn_tier_find_time(rn_tier_shard_t *ts, int64_t ts_ms, rn_tier_offset_cb cb, void *arg);

typedef struct rn_tier_shard_stats {
  uint64_t local_bytes, remote_bytes;
  uint32_t local_segments, remote_segments;
  uint64_t backlog_bytes;     /* sealed segments not yet uploaded */
  uint32_t backlog_segments;
  int64_t backlog_age_ms;     /* how long the oldest has waited; 0 none */
  uint64_t uploaded_bytes, uploaded_segments; /* this run */
  rn_err_t last_err;          /* of the last failed upload; 0 none */
  char last_error[256];
} rn_tier_shard_stats_t;
void rn_tier_shard_stats(const rn_tier_shard_t *ts, rn_tier_shard_stats_t *out);

typedef struct rn_tier_stats {
  uint64_t uploads_active;
  uint64_t backlog_bytes;     /* every shard's */
  uint64_t bytes_uploaded, bytes_downloaded;
  uint64_t cache_bytes, cache_hits, cache_misses, cache_evictions;
  uint64_t orphans_collected, remote_deletes;
  uint64_t corrupt_objects;   /* remote reads that failed verification */
  rn_err_t last_err;
  char last_error[256];
  rn_objstore_stats_t store;
} rn_tier_stats_t;
void rn_tier_stats(const rn_tier_t *t, rn_tier_stats_t *out);
/* Remote GETs in flight now; *max (may be NULL) = the most at once so far
 * (how much parallelism a catch-up read used). */
unsigned rn_tier_gets_inflight(const rn_tier_t *t, unsigned *max);
/* Run the collector on every shard now (rn_tier_tick runs it every
 * gc_interval_ms): for tests and `runnelctl tier gc`. */
void rn_tier_gc_now(rn_tier_t *t);
/* Stream-delete jobs not finished. */
unsigned rn_tier_jobs_active(const rn_tier_t *t);
/* A graceful stop is coming: every shard whose manifest has changed since
 * its last mirror is mirrored now, and while draining a shard whose mirror
 * fails is not tried again (a store that is down must not hold the stop).
 * Uploads in progress go on; no new one starts. Owner thread; calls after
 * the first do nothing. */
void rn_tier_drain(rn_tier_t *t);
/* Since rn_tier_drain: no mirror is in flight or still to be tried, so the
 * bucket's manifests are as current as they will get (what a restore
 * reads). Owner thread. */
bool rn_tier_drained(const rn_tier_t *t);

/* ---- streams: the descriptor object, deletion, restore ---- */

/* Put the stream's descriptor (opaque bytes the broker encodes: name, uid,
 * shards and their hash ranges, retention, durability) at its key,
 * "<hash8>/<cluster>/_streams/<stream>/<uid, 20 digits>": one per
 * incarnation, so deleting an old one never touches a newer one. */
rn_err_t rn_tier_put_stream(rn_tier_t *t, const char *stream, uint64_t uid, const uint8_t *desc, size_t len,
                            rn_obj_cb cb, void *arg);
/* Get the newest incarnation's descriptor back (RN_ENOENT when the bucket
 * has no such stream). */
rn_err_t rn_tier_get_stream(rn_tier_t *t, const char *stream, rn_obj_get_cb cb, void *arg);
/* Delete every object of a stream incarnation (its shards' prefixes, then
 * its descriptor) as a durable, resumable job: the job is recorded in
 * "<jobs_dir>/<stream>-<uid>.delete" before it starts and removed when done;
 * rn_tier_resume_jobs restarts the ones a crash interrupted. */
rn_err_t rn_tier_delete_stream(rn_tier_t *t, const char *jobs_dir, const char *stream, uint64_t uid,
                               uint32_t nshards);
rn_err_t rn_tier_resume_jobs(rn_tier_t *t, const char *jobs_dir);
/* Restore one shard onto an empty directory: download its manifest into
 * "<dir>/tier.manifest" (durably) and report the offset after its last
 * uploaded segment (open the log with opts.first_offset there, then
 * rn_tier_shard_open). RN_ENOENT when the bucket has no manifest for it. */
rn_err_t rn_tier_restore_shard(rn_tier_t *t, const char *stream, uint64_t uid, uint32_t shard, const char *dir,
                               rn_tier_offset_cb cb, void *arg);

#ifdef __cplusplus
}
#endif
#endif
