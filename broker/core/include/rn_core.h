/*
 * rn_core.h — the broker's engine (broker/core/) as a C API: streams,
 * shards, produce (idempotent), fetch with long poll, offsets, broker info,
 * the metadata store. No protobuf here: the native session
 * (broker/native/dispatch.c) and the HTTP applications translate their wire
 * formats to these structs and back.
 *
 * Threading. Everything runs on the loop thread given in rn_core_opts_t;
 * every function here must be called on it unless its comment says
 * otherwise. Disk work goes to rn_io_t (appends, syncs) or the libuv thread
 * pool (reads, metadata snapshots, closing and removing files), never
 * blocking the loop.
 *
 * The asynchronous contract, one for every operation below:
 *  - rn_core_<op>(core, req, cb, ctx) calls cb exactly once, possibly
 *    before it returns, always on the loop thread.
 *  - The request is borrowed for the duration of the call: core copies what
 *    it keeps (produce copies each batch into the log before returning).
 *  - The result, and everything it points to, is borrowed during the
 *    callback only (except fetched batches kept with rn_core_fetch_hold).
 *  - ctx belongs to the caller; it must stay valid until cb ran (a session
 *    that goes away marks its ctx closed rather than freeing it).
 *  - A failure is r->err (an rn_err_t, < 0) with r->msg a one-line message
 *    specific to this failure (never NULL when err != 0; NULL when 0).
 *    Per-shard failures of produce/fetch/list offsets are in their items;
 *    the request-level err is then 0.
 */
#ifndef RN_CORE_H
#define RN_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rn_base.h"
#include "rn_io.h"
#include "rn_log.h"
#include "rn_tier.h"
#include "runnel/durability.h"
#include "runnel/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rn_core rn_core_t;
typedef struct rn_core_stream rn_core_stream_t;
typedef struct rn_core_shard rn_core_shard_t;
typedef struct rn_core_meta_store rn_core_meta_store_t;

/* Max bytes of a fetch whose request leaves max_bytes at 0 (before the
 * max_fetch_bytes cap). */
#define RN_CORE_FETCH_DEFAULT_BYTES (4u << 20)

/* ==== opening and closing ======================================================== */

typedef struct rn_core_opts {
  uv_loop_t *loop;             /* the loop thread everything runs on; borrowed, outlives core */
  const char *data_dir;        /* root of all broker data; copied */
  rn_io_backend_t io_backend;  /* RN_IO_AUTO by default */
  /* The file system everything core persists goes through (logs, the
   * metadata file, directories); NULL = rn_fs_posix(). Borrowed; must
   * outlive core. For tests (crash simulation, thread checks). */
  rn_fs_t *fs;
  uint32_t max_record_bytes;   /* largest record value + key; default 1 MiB */
  uint32_t max_batch_bytes;    /* largest batch; default 8 MiB */
  uint32_t max_fetch_bytes;    /* cap on one fetch result; default 16 MiB */
  uint32_t max_frame_bytes;    /* the server's request frame limit, reported by broker info
                                  (the server enforces it); default 16 MiB */
  /* The fetch memory budget: broker-wide bytes of fetch read buffers (every
   * caller's fetches alike), held from the read until the result's bytes
   * are released (at the end of the callback, or by rn_core_fetch_release
   * after a hold). A fetch with data to read that does not fit waits, first
   * come first served, until memory comes back; it never fails for it. One
   * fetch always proceeds when nothing is held. 0 = no limit. Default
   * 256 MiB. */
  uint64_t max_fetch_memory_bytes;
  uint32_t max_wait_ms;        /* cap on a fetch long poll; default 30000 */
  uint32_t max_shards;         /* per stream; default 1024 */
  uint64_t segment_bytes;      /* log segment size; default 256 MiB */
  uint64_t group_segment_bytes;/* consumer groups' checkpoint log segment; compacted at 2x; default 4 MiB */
  uint32_t interval_ms;        /* fdatasync period of interval-mode streams; default 1000 */
  /* The shared journal of sync-mode streams (<data_dir>/journal,
   * docs/storage.md "The journal"): its size when created; 0 = none (each
   * shard fdatasyncs its own files), unless the data directory already has
   * one, which is then still used. Default 0 here; runneld's configuration
   * default is 512 MiB. */
  uint64_t journal_bytes;
  uint32_t journal_checkpoint_ms; /* checkpoint period (bounds replay at restart); default 1000 */
  int64_t default_retention_ms;/* retention of a stream created without one; < 0 = forever; default 24 h */
  /* The most ids one stream's dedup window holds (docs/dedup.md); when
   * full, the oldest are evicted before their time (counted, never a
   * produce failure). Memory grows with use, about 56-112 bytes per id.
   * Default RN_CORE_DEDUP_MAX_IDS_DEFAULT (1 h at ~2.3k records/s). */
  uint32_t dedup_max_ids;
  /* Where stream metadata lives. NULL = the local file
   * <data_dir>/meta/broker.meta (rn_core_meta_store_file). Borrowed; must
   * outlive core. */
  rn_core_meta_store_t *meta_store;
  /* A cluster member (broker/cluster, docs/cluster.md): every shard starts
   * in role NONE (refusing produce and fetch) until the cluster layer gives
   * it one; false = a single broker, every shard SOLO. */
  bool cluster;
  /* A cluster member's broker id (1..2^20): the producer ids it hands out
   * are (broker_id << 40) + n, so no two brokers give out the same one (a
   * leader keeps one idempotence window per id, whichever broker issued
   * it). 0 = a single broker: ids n. */
  uint32_t broker_id;
  /* One line per event (rn_base.h); fn NULL = the stderr line as "engine".
   * Called on the loop thread, or on the thread calling
   * rn_core_open/rn_core_close. */
  rn_logger_t logger;
  /* Where core, its logs and the consumer groups read time (rn_base.h);
   * zeroed = the system clock. Tests inject it. */
  rn_clock_t clock;
  /* Tiered storage (docs/tiering.md). Core owns the object store and one
   * rn_tier_t on its rn_io_t: the store is `store` when given (borrowed,
   * must outlive core: tests wrap one in rn_faulty_new), else a local
   * directory when `dir` is set (rn_localdir_new), else S3 when s3.bucket
   * is set (rn_s3_new; strings borrowed during rn_core_open only), else
   * none: then creating a tiered stream fails with RN_EINVAL. */
  struct {
    rn_objstore_t *store;
    const char *dir;
    rn_s3_opts_t s3;            /* bucket NULL or "" = no S3 store */
    /* Uploader, cache, collector (rn_tier_opts_t): store, io, clock and
     * logger are core's own whatever is set here. Defaults as rn_tier.h's. */
    rn_tier_opts_t tier;
    /* Produce to a tiered stream answers RN_EBACKLOG (retriable) while the
     * data directory's file system is more than this percent full (statfs,
     * checked at most once a second, off the loop) and the broker has
     * upload backlog. 0 or >= 100 = never. Default 90. */
    uint32_t disk_high_water;
    /* A tiered shard's log rolls its active segment once it is this old
     * and not empty (rn_log_opts_t.segment_ms), so it gets uploaded: what a
     * lost disk takes is bounded in time. 0 = by size only. Default 1 h. */
    int64_t segment_max_age_ms;
    /* Local retention of a tiered stream created without one, and whether
     * streams created with RN_CORE_TIERING_DEFAULT (the Kinesis API) are
     * tiered: 0 = unset (they are not), < 0 = tiered keeping everything
     * local, > 0 = tiered with this local retention (ms). Default 0. */
    int64_t default_local_retention_ms;
  } tier;
} rn_core_opts_t;

/* Fill *o with the defaults above (loop and data_dir NULL). */
void rn_core_opts_default(rn_core_opts_t *o);

/* Open the data directory: load stream metadata through the meta store,
 * open (recover) every shard. Blocking: call before anything is served.
 * On success *out owns everything until rn_core_close. On failure *out is
 * untouched and why holds a one-line reason (why may be NULL). */
rn_err_t rn_core_open(const rn_core_opts_t *opts, rn_core_t **out, char *why, size_t whylen);

/* Begin shutdown: refuse new produce requests (RN_ESHUTDOWN), complete
 * parked fetches now with what they have. In-flight appends keep going. */
void rn_core_drain(rn_core_t *core);

/* True once every in-flight append and thread-pool job (core's and the
 * subsystems' rn_core_work_begin) has completed, every deleted stream's
 * files are closed, and (tiered storage) every stream descriptor and shard
 * manifest mirror being stored in the object store has been, or failed:
 * neither is retried once draining. */
bool rn_core_idle(const rn_core_t *core);

/* True from rn_core_drain on (/readyz answers 503 then). */
bool rn_core_draining(const rn_core_t *core);

/* Sync and close every shard (clean-shutdown markers), free everything.
 * Blocking; call after the callers stopped and rn_core_idle() holds. NULL
 * ok. Returns the first error met. */
rn_err_t rn_core_close(rn_core_t *core);

/* ==== descriptions ================================================================ */

/* Where a stream's dedup window takes a record's id from (docs/dedup.md). */
typedef enum rn_core_dedup_key {
  RN_CORE_DEDUP_NONE = 0,       /* no dedup window */
  RN_CORE_DEDUP_FIELD = 1,      /* dedup_field of the data, read as a JSON object */
  RN_CORE_DEDUP_RECORD_ID = 2,  /* the batch record's id */
} rn_core_dedup_key_t;

/* The longest dedup window a stream may keep (it is also <= retention). */
#define RN_CORE_DEDUP_MAX_WINDOW_MS (7ll * 24 * 3600 * 1000)
#define RN_CORE_DEDUP_MAX_IDS_DEFAULT (8u << 20)
/* The longest dedup_field (a name or a dotted path). */
#define RN_CORE_DEDUP_FIELD_MAX 255

/* A stream's life. Transitions (loop thread):
 *   CREATING -> ACTIVE     its directories and logs exist and the metadata
 *                          snapshot naming it is durable
 *   CREATING -> (freed)    creation failed; never visible to lookups
 *   ACTIVE   -> DELETING   delete accepted: unreachable to new requests at
 *                          once; parked fetches complete; the snapshot
 *                          without it is written
 *   DELETING -> CLOSING    no request holds it any more: subsystems get
 *                          shard_closing, its logs are failed (nothing new
 *                          is submitted)
 *   CLOSING  -> (freed)    once its logs have no I/O in flight they are
 *                          closed on the thread pool and the directory is
 *                          removed; then it is freed on the loop
 * Only ACTIVE streams are found by name or described; CLOSING is seen only
 * by a subsystem holding a reference. */
typedef enum rn_core_stream_state {
  RN_CORE_STREAM_CREATING = 0,
  RN_CORE_STREAM_ACTIVE = 1,
  RN_CORE_STREAM_DELETING = 2,
  RN_CORE_STREAM_CLOSING = 3,
} rn_core_stream_state_t;

/* "CREATING", "ACTIVE", "DELETING", "CLOSING". Static storage. */
const char *rn_core_stream_state_name(rn_core_stream_state_t s);

/* Where a shard's replicas are (a cluster; zeroed on a single broker), as
 * the control plane says: for descriptions and client routing only. */
#define RN_CORE_MAX_REPLICAS 5
typedef struct rn_core_placement {
  uint32_t leader;              /* broker id; 0 = none (offline) */
  uint32_t leader_epoch;
  char leader_address[96];      /* host:port of the leader's native listener */
  uint32_t replicas[RN_CORE_MAX_REPLICAS], nreplicas;
  uint32_t isr[RN_CORE_MAX_REPLICAS], nisr;
} rn_core_placement_t;

/* A shard's state in its stream's key space (resharding). OPEN shards take
 * appends; a CLOSED shard keeps its data readable until retention, its hash
 * range now served by its children. */
typedef enum rn_core_shard_state {
  RN_CORE_SHARD_OPEN = 0,
  RN_CORE_SHARD_CLOSED = 1,
} rn_core_shard_state_t;

typedef struct rn_core_shard_desc {
  uint32_t index;               /* the N of shardId-%012u */
  uint8_t hash_start[16];       /* big-endian, inclusive */
  uint8_t hash_end[16];         /* big-endian, inclusive */
  rn_core_shard_state_t state;
  const uint32_t *parents;      /* nparents shard indexes (resharding); NULL when 0 */
  uint32_t nparents;
  const uint32_t *children;     /* nchildren shard indexes; NULL when 0 */
  uint32_t nchildren;
  uint64_t start_offset;        /* earliest stored offset (tiered: anywhere, rn_tier_shard_start) */
  uint64_t end_offset;          /* next offset a reader can wait for (high watermark) */
  int64_t last_append_ms;       /* arrival of the newest record, 0 if none */
  uint64_t stored_bytes;        /* bytes of the shard's segment files on the local disk */
  /* Tiered streams only (zero otherwise): rn_tier_shard_stats. */
  uint64_t remote_start_offset; /* = start_offset */
  uint64_t local_start_offset;  /* earliest offset on the local disk (rn_log_start) */
  uint64_t remote_bytes;
  uint32_t remote_segments, local_segments;
  uint64_t backlog_bytes;       /* sealed, not uploaded yet */
  uint32_t backlog_segments;
  int64_t backlog_age_ms;       /* the oldest of them has waited this long; 0 none */
  /* A cluster (zero on a single broker): rn_core_shard_set_placement's. */
  rn_core_placement_t placement;
} rn_core_shard_desc_t;

typedef struct rn_core_stream_desc {
  const char *name;
  uint32_t nshards;
  int64_t retention_ms;         /* < 0 = forever */
  int64_t retention_bytes;      /* per shard; -1 = unlimited */
  rn_durability_t durability;
  int64_t created_ms;
  rn_core_stream_state_t state;
  bool tiered;
  int64_t local_retention_ms;   /* tiered: > 0, or -1 = keep all local; 0 when not tiered */
  int64_t local_retention_bytes; /* tiered: per shard, -1 = unlimited; 0 when not tiered */
  rn_core_dedup_key_t dedup_key; /* RN_CORE_DEDUP_NONE: no window (field NULL, window 0) */
  const char *dedup_field;      /* RN_CORE_DEDUP_FIELD only, else NULL */
  int64_t dedup_window_ms;
  const rn_core_shard_desc_t *shards; /* nshards, in index order */
  uint32_t replication, min_insync;   /* a cluster's; 0 on a single broker */
} rn_core_stream_desc_t;

/* ==== streams (admin) ================================================================ */

/* Whether a new stream is tiered. */
typedef enum rn_core_tiering {
  RN_CORE_TIERING_OFF = 0,      /* not tiered (the zeroed request) */
  RN_CORE_TIERING_ON = 1,       /* tiered: needs a store (else RN_EINVAL) */
  RN_CORE_TIERING_DEFAULT = 2,  /* tiered when opts.tier.default_local_retention_ms is set (and a
                                   store is configured); the Kinesis API's CreateStream */
} rn_core_tiering_t;

typedef struct rn_core_create_req {
  const char *name;             /* [A-Za-z0-9_.-]{1,128} */
  uint32_t shard_count;         /* 1..max_shards */
  int64_t retention_ms;         /* 0 = the broker's default_retention_ms, < 0 = forever */
  int64_t retention_bytes;      /* per shard; <= 0 = unlimited */
  rn_durability_t durability;
  rn_core_tiering_t tiering;
  int64_t local_retention_ms;   /* tiered: 0 = opts.tier.default_local_retention_ms (unset: keep
                                   all local), < 0 = keep all local */
  int64_t local_retention_bytes; /* tiered: per shard; <= 0 = unlimited */
  /* The dedup window (docs/dedup.md): NONE (field NULL or "", window 0),
   * or FIELD with a field name / dotted path of 1..RN_CORE_DEDUP_FIELD_MAX
   * bytes, or RECORD_ID; the window 1 ms .. RN_CORE_DEDUP_MAX_WINDOW_MS and
   * <= the stream's retention (it is rebuilt from the log at open).
   * Anything else: RN_EINVAL. The Kinesis API's CreateStream leaves it off. */
  rn_core_dedup_key_t dedup_key;
  const char *dedup_field;      /* borrowed during the call */
  int64_t dedup_window_ms;
  /* The stream's uid (its directory, journal ids and objects are named by
   * it); 0 = core assigns the next one. The cluster passes the uid the
   * control plane gave the stream, the same on every replica. */
  uint64_t uid;
  /* A cluster: copies and in-sync copies (StreamConfig's meaning; 0 =
   * defaults). A single broker refuses replication > 1. */
  uint32_t replication, min_insync;
  /* Create the local copy only (the cluster layer's own call, for a stream
   * the control plane already has); false = a user's create, which in a
   * cluster goes to the hooks' create_stream. */
  bool local;
} rn_core_create_req_t;

typedef struct rn_core_create_result {
  rn_err_t err;
  const char *msg;
  const rn_core_stream_desc_t *stream; /* on success; NULL on failure */
} rn_core_create_result_t;
typedef void (*rn_core_create_cb)(void *ctx, const rn_core_create_result_t *r);

/* Create a stream; cb runs once its directories exist and the metadata
 * snapshot naming it is durable. RN_EEXISTS, RN_EINVAL, RN_ESHUTDOWN, ... */
void rn_core_create_stream(rn_core_t *core, const rn_core_create_req_t *req, rn_core_create_cb cb, void *ctx);

typedef struct rn_core_delete_req {
  const char *name;
  bool local;                   /* the cluster layer's own call (see rn_core_create_req_t.local) */
} rn_core_delete_req_t;

typedef struct rn_core_delete_result {
  rn_err_t err;
  const char *msg;
} rn_core_delete_result_t;
typedef void (*rn_core_delete_cb)(void *ctx, const rn_core_delete_result_t *r);

/* Delete a stream: unreachable at once (state DELETING); cb runs once the
 * snapshot without it is durable. Its logs are closed on the thread pool
 * after in-flight I/O completed, then its directory is removed. */
void rn_core_delete_stream(rn_core_t *core, const rn_core_delete_req_t *req, rn_core_delete_cb cb, void *ctx);

typedef struct rn_core_list_result {
  rn_err_t err;
  const char *msg;
  const char *const *names;     /* nnames ACTIVE streams, in creation order */
  uint32_t nnames;
} rn_core_list_result_t;
typedef void (*rn_core_list_cb)(void *ctx, const rn_core_list_result_t *r);

void rn_core_list_streams(rn_core_t *core, rn_core_list_cb cb, void *ctx);

typedef struct rn_core_describe_req {
  const char *name;
} rn_core_describe_req_t;

typedef struct rn_core_describe_result {
  rn_err_t err;
  const char *msg;
  const rn_core_stream_desc_t *stream; /* on success */
} rn_core_describe_result_t;
typedef void (*rn_core_describe_cb)(void *ctx, const rn_core_describe_result_t *r);

void rn_core_describe_stream(rn_core_t *core, const rn_core_describe_req_t *req, rn_core_describe_cb cb, void *ctx);

typedef struct rn_core_retention_req {
  const char *name;
  int64_t retention_ms;         /* as in rn_core_create_req_t */
  int64_t retention_bytes;
  /* Tiered streams only (non-zero on another stream: RN_EINVAL): 0 =
   * unchanged, < 0 = keep all local / unlimited, > 0 = the new value. */
  int64_t local_retention_ms;
  int64_t local_retention_bytes;
} rn_core_retention_req_t;

/* Result: the stream as it is after the change (durable in the snapshot). */
typedef rn_core_describe_result_t rn_core_retention_result_t;
typedef void (*rn_core_retention_cb)(void *ctx, const rn_core_retention_result_t *r);

void rn_core_set_retention(rn_core_t *core, const rn_core_retention_req_t *req, rn_core_retention_cb cb, void *ctx);

typedef struct rn_core_producer_result {
  rn_err_t err;
  const char *msg;
  uint64_t producer_id;         /* new, never handed out before (persisted limit) */
  uint16_t producer_epoch;
} rn_core_producer_result_t;
typedef void (*rn_core_producer_cb)(void *ctx, const rn_core_producer_result_t *r);

void rn_core_init_producer(rn_core_t *core, rn_core_producer_cb cb, void *ctx);

/* ==== tiered storage (docs/tiering.md) ============================================== */

typedef struct rn_core_restore_req {
  const char *name;
} rn_core_restore_req_t;

/* Result: the restored stream (durable in the metadata snapshot). */
typedef rn_core_create_result_t rn_core_restore_result_t;
typedef void (*rn_core_restore_cb)(void *ctx, const rn_core_restore_result_t *r);

/* Recreate a tiered stream from the object store onto this broker: fetch
 * its descriptor (rn_tier_get_stream), recreate it with the same uid, hash
 * ranges, retention and durability, and per shard download its manifest
 * into the empty shard directory (rn_tier_restore_shard), open the log at
 * the offset after the last uploaded segment and attach the tier; then the
 * metadata snapshot naming it is written. Every record still in total
 * retention is then read from the store. RN_EEXIST (the stream exists
 * here), RN_ENOENT (the store has no such stream), RN_EINVAL (no store),
 * RN_EOBJSTORE / RN_ETIMEDOUT / RN_ECORRUPT (the store), RN_ESHUTDOWN. */
void rn_core_restore_stream(rn_core_t *core, const rn_core_restore_req_t *req, rn_core_restore_cb cb, void *ctx);

/* The uploader, the cache and the errors, over the whole broker (`runnelctl
 * tier status`, /metrics). From memory; loop thread. */
typedef struct rn_core_tier_status {
  bool enabled;                 /* a store is configured; everything else 0 when not */
  const char *store;            /* the backend's name ("s3", "localdir", "faulty"); static */
  const char *location;         /* "s3://BUCKET/PREFIX" or the directory; lives as long as core */
  rn_tier_stats_t stats;        /* rn_tier_stats: uploads, bytes, cache, GC, per-op store stats */
  uint64_t cache_limit_bytes;
  uint32_t tiered_streams, tiered_shards;
  uint64_t backlog_bytes;       /* summed over the tiered shards (rn_tier_shard_stats) */
  uint32_t backlog_segments;
  int64_t backlog_age_ms;       /* the oldest */
  uint64_t remote_bytes;
  uint32_t remote_segments;
  uint32_t disk_used_percent;   /* the data directory, as last checked (0 before the first check) */
  uint32_t disk_high_water;     /* opts.tier.disk_high_water */
  bool backpressure;            /* produce to tiered streams answers RN_EBACKLOG now */
  uint64_t backpressure_episodes; /* times it began since core opened */
  unsigned gets_inflight;       /* remote GETs in flight now */
  unsigned gets_inflight_max;   /* the most at once so far (a catch-up read's parallelism) */
  unsigned delete_jobs;         /* stream-delete jobs not finished */
} rn_core_tier_status_t;
void rn_core_tier_status(rn_core_t *core, rn_core_tier_status_t *out);

/* ==== produce ======================================================================= */

typedef struct rn_core_batch_in {
  uint32_t shard;
  const uint8_t *data;          /* one stored batch (proto/runnel/batch.h); borrowed during the call */
  size_t len;
} rn_core_batch_in_t;

typedef struct rn_core_produce_req {
  const char *stream;
  const rn_core_batch_in_t *batches; /* nbatches; may point into a frame (zero copy) */
  size_t nbatches;
  /* Forwarded by another broker (ProduceRequest.forwarded): a shard not led
   * here answers RN_ENOTLEADER instead of forwarding again, so two brokers
   * with stale views never pass a batch back and forth. */
  bool forwarded;
} rn_core_produce_req_t;

/* A record the stream's dedup window found already stored: not stored
 * again; its original is at (shard, offset), maybe another shard. */
typedef struct rn_core_dedup_hit {
  uint32_t index;               /* the record's position in the batch as sent */
  uint32_t shard;
  uint64_t offset;
} rn_core_dedup_hit_t;

typedef struct rn_core_batch_result {
  uint32_t shard;
  rn_err_t err;                 /* this batch's failure; 0 = appended (or a duplicate) */
  const char *msg;
  uint64_t base_offset;
  bool duplicate;               /* a retry of a batch already stored: base_offset is the original's */
  /* Dedup streams: the records found in the window, by increasing index.
   * Every other record was stored, in order, from base_offset on
   * (stored_count of them; without hits stored_count is the batch's record
   * count). Use rn_core_batch_record_pos for one record's place. */
  const rn_core_dedup_hit_t *hits;
  uint32_t nhits;
  uint32_t stored_count;
} rn_core_batch_result_t;

/* Where record i (its index in the batch as sent) of a successful batch
 * is: its dedup hit's (shard, offset), or the batch's shard at base_offset
 * plus the stored records before it. */
static inline void rn_core_batch_record_pos(const rn_core_batch_result_t *r, uint32_t i, uint32_t *shard,
                                            uint64_t *offset) {
  uint32_t before = 0;
  for (uint32_t k = 0; k < r->nhits && r->hits[k].index <= i; k++) {
    if (r->hits[k].index == i) {
      *shard = r->hits[k].shard;
      *offset = r->hits[k].offset;
      return;
    }
    before++;
  }
  *shard = r->shard;
  *offset = r->base_offset + (i - before);
}

typedef struct rn_core_produce_result {
  rn_err_t err;                 /* request-level: RN_ENOSTREAM, RN_ESHUTDOWN, ... */
  const char *msg;
  const rn_core_batch_result_t *results; /* nresults, one per batch in request order */
  size_t nresults;
} rn_core_produce_result_t;
typedef void (*rn_core_produce_cb)(void *ctx, const rn_core_produce_result_t *r);

/* Append each batch to its shard; cb runs once every batch's durability
 * promise (the stream's rn_durability_t) holds or failed. Idempotent
 * producers' retries are answered from the producer window. */
void rn_core_produce(rn_core_t *core, const rn_core_produce_req_t *req, rn_core_produce_cb cb, void *ctx);

/* ==== fetch and offsets ================================================================= */

/* Where to read. Values equal the wire's PositionKind. */
typedef enum rn_core_pos_kind {
  RN_CORE_POS_OFFSET = 0,       /* value = offset */
  RN_CORE_POS_EARLIEST = 1,
  RN_CORE_POS_LATEST = 2,       /* the current end: only records appended later */
  RN_CORE_POS_TIMESTAMP = 3,    /* value = ms since the epoch: first record at or after */
} rn_core_pos_kind_t;

typedef struct rn_core_shard_pos {
  uint32_t shard;
  rn_core_pos_kind_t kind;
  int64_t value;
  uint32_t max_bytes;           /* fetch: per shard; 0 = the request's max_bytes. Ignored by list offsets */
} rn_core_shard_pos_t;

typedef struct rn_core_fetch_req {
  const char *stream;
  const rn_core_shard_pos_t *shards; /* nshards */
  size_t nshards;
  uint32_t max_wait_ms;         /* long poll when nothing is there; capped by max_wait_ms */
  uint32_t max_bytes;           /* whole result; 0 = RN_CORE_FETCH_DEFAULT_BYTES; capped by max_fetch_bytes */
  /* A follower's replica fetch (broker/cluster) when != 0: its broker id
   * and the leader epoch it follows. Every shard must be LEADER here; the
   * replication hooks' replica_fetch accepts or refuses each part (its
   * offset is the follower's log end), and the read goes to the log end,
   * not the committed end. 0 = a consumer. */
  uint32_t replica_id;
  uint32_t leader_epoch;
  uint64_t stream_uid;          /* != 0: only that incarnation of the stream (else RN_ENOSTREAM) */
  bool forwarded;               /* from another broker (FetchRequest.forwarded): never forwarded again */
} rn_core_fetch_req_t;

typedef struct rn_core_fetch_shard_result {
  uint32_t shard;
  rn_err_t err;
  const char *msg;
  uint64_t offset;              /* the resolved position (absolute offset) */
  const uint8_t *batches;       /* zero or more whole batches; see rn_core_fetch_hold */
  size_t batches_len;
  uint64_t start_offset;
  uint64_t end_offset;          /* high watermark */
  uint64_t next_offset;         /* where to fetch next */
  uint64_t committed;           /* the committed end (= end_offset for a consumer); a replica
                                   fetch's end_offset is the leader's log end */
  uint32_t leader_epoch;        /* the shard's leader epoch here (0 on a single broker) */
} rn_core_fetch_shard_result_t;

typedef struct rn_core_fetch_result {
  rn_err_t err;
  const char *msg;
  const rn_core_fetch_shard_result_t *results; /* nresults, in request order */
  size_t nresults;
} rn_core_fetch_result_t;
typedef void (*rn_core_fetch_cb)(void *ctx, const rn_core_fetch_result_t *r);

/* Read from each shard (on the thread pool, within the fetch memory
 * budget); when nothing is there, park until data arrives, the wait
 * expires, the stream goes away or the broker drains. Timestamp positions
 * are resolved on the thread pool too. */
void rn_core_fetch(rn_core_t *core, const rn_core_fetch_req_t *req, rn_core_fetch_cb cb, void *ctx);

/* Zero copy. Called from inside an rn_core_fetch callback: keeps the
 * result's batch bytes valid after the callback returns (so they can be
 * handed to a socket). Returns a token that owns them and their share of
 * the fetch memory budget until rn_core_fetch_release(token), or NULL when
 * the result holds no such bytes (then everything is valid during the
 * callback only). Loop thread. */
void *rn_core_fetch_hold(rn_core_t *core);
/* Free what a hold kept. NULL ok. Any time after the callback returned, on
 * the loop thread. */
void rn_core_fetch_release(void *token);

typedef struct rn_core_offsets_req {
  const char *stream;
  const rn_core_shard_pos_t *shards; /* nshards; 0 = every shard at RN_CORE_POS_LATEST */
  size_t nshards;
} rn_core_offsets_req_t;

typedef struct rn_core_shard_offsets {
  uint32_t shard;
  rn_err_t err;
  const char *msg;
  uint64_t offset;              /* the resolved position */
  uint64_t start_offset;
  uint64_t end_offset;
} rn_core_shard_offsets_t;

typedef struct rn_core_offsets_result {
  rn_err_t err;
  const char *msg;
  const rn_core_shard_offsets_t *shards; /* nshards, in request order */
  size_t nshards;
} rn_core_offsets_result_t;
typedef void (*rn_core_offsets_cb)(void *ctx, const rn_core_offsets_result_t *r);

/* Resolve positions to offsets. Timestamps need a read of the shard's
 * index, done on the thread pool (cb then runs later). */
void rn_core_list_offsets(rn_core_t *core, const rn_core_offsets_req_t *req, rn_core_offsets_cb cb, void *ctx);

/* ==== broker info ========================================================================= */

typedef struct rn_core_info_req {
  bool skip_disk;               /* leave out the data directory's statfs */
} rn_core_info_req_t;

typedef struct rn_core_failed_shard {
  const char *stream;
  uint32_t shard;
  rn_err_t err;                 /* the error that failed the log */
  const char *msg;
} rn_core_failed_shard_t;

typedef struct rn_core_info_result {
  rn_err_t err;
  const char *msg;
  const char *version;          /* runneld's version, "0.1.0" */
  int64_t start_ms;             /* when core was opened (ms since the epoch) */
  const char *data_dir;         /* as configured */
  uint64_t data_dir_free_bytes; /* statfs f_bavail * f_bsize */
  uint64_t data_dir_total_bytes;
  rn_err_t data_dir_err;        /* statfs failed (sizes 0) */
  const char *data_dir_msg;     /* NULL when data_dir_err == 0 or skipped */
  bool data_dir_skipped;        /* skip_disk was set */
  uint32_t max_record_bytes, max_batch_bytes, max_frame_bytes, max_fetch_bytes;
  uint32_t stream_count;
  uint32_t shard_count;         /* over every stream */
  const rn_core_failed_shard_t *failed; /* nfailed */
  size_t nfailed;
  bool degraded;                /* any shard failed ("degraded" vs "ok") */
} rn_core_info_result_t;
typedef void (*rn_core_info_cb)(void *ctx, const rn_core_info_result_t *r);

/* Statfs runs on the thread pool, never on the loop. */
void rn_core_broker_info(rn_core_t *core, const rn_core_info_req_t *req, rn_core_info_cb cb, void *ctx);

/* ==== stats, for /healthz and /metrics ===================================================== */

typedef struct rn_core_stats {
  uint32_t streams;
  uint32_t shards;
  uint32_t failed_shards;       /* logs failed by an I/O error */
  uint64_t records_in, bytes_in, records_out, bytes_out;
  /* The fetch memory budget: bytes held by fetch buffers now, fetches
   * waiting for budget now, fetches that ever had to wait. */
  uint64_t fetch_memory_bytes;
  uint64_t fetch_memory_waiting;
  uint64_t fetch_memory_waits;
  /* The shared journal (all zero without one; rn_log.h, rn_journal_stats). */
  bool journal;
  rn_journal_stats_t journal_stats;
} rn_core_stats_t;
void rn_core_stats(const rn_core_t *core, rn_core_stats_t *st);

/* Per-shard counters, counted on the loop thread as acknowledgements and
 * fetch results go out; zero when core opens (Prometheus counters). */
typedef struct rn_core_shard_stats {
  const char *stream;           /* valid during the callback only */
  uint32_t shard;
  uint64_t records_in, bytes_in;   /* batches acknowledged (bytes: stored batch bytes) */
  uint64_t records_out, bytes_out; /* returned by fetches */
  uint64_t append_errors;
  uint64_t start_offset, end_offset;
  int64_t last_append_ms;
  int failed;                   /* the shard's log failed after an I/O error */
  uint64_t stored_bytes;
  uint32_t segments;            /* segment files, the active one included */
  /* Append latency: handing the batch to the log -> acknowledgement.
   * Seconds, buckets rn_hist_latency_bounds (rn_base.h). */
  rn_hist_t append;
  /* fdatasync rounds of the shard's log (rn_log_sync_stats; same bounds). */
  rn_hist_t sync;
  /* rn_log_health: RN_LOG_HEALTHY / DEGRADED / FAILED, its error and the
   * step that failed (static or valid during the callback only). */
  int health_state;
  rn_err_t health_err;
  const char *health_what;
  /* Tiered streams (zero otherwise): rn_tier_shard_stats. */
  bool tiered;
  uint64_t remote_bytes;
  uint32_t remote_segments;
  uint64_t backlog_bytes;
  uint32_t backlog_segments;
} rn_core_shard_stats_t;

typedef void (*rn_core_shard_stats_fn)(void *arg, const rn_core_shard_stats_t *s);

/* Call fn once per shard of every ACTIVE stream, in stream order. fn must
 * not call back into core. */
void rn_core_foreach_shard(const rn_core_t *core, rn_core_shard_stats_fn fn, void *arg);

/* A stream's dedup window, for /metrics (docs/dedup.md). Counters are zero
 * when core opens (the rebuild at open is not counted). */
typedef struct rn_core_dedup_stats {
  const char *stream;           /* valid during the callback only */
  uint64_t duplicates;          /* records acknowledged from the window, not stored */
  uint64_t without_id;          /* records stored without an id (no field, not JSON, ...) */
  uint64_t evictions;           /* ids dropped before their time because the window was full */
  uint64_t ids;                 /* ids in the window now */
  uint64_t memory_bytes;        /* the window's allocation now */
} rn_core_dedup_stats_t;
typedef void (*rn_core_dedup_stats_fn)(void *arg, const rn_core_dedup_stats_t *s);

/* Call fn once per ACTIVE stream with a dedup window. fn must not call
 * back into core. */
void rn_core_foreach_dedup(const rn_core_t *core, rn_core_dedup_stats_fn fn, void *arg);

/* ==== the metadata store ===================================================================== */

/* Where core keeps its metadata (streams, shard ranges and states, uid and
 * producer-id counters). The snapshot is an opaque byte string (core's own
 * storage format); a store only keeps the newest one durably.
 *
 * load: blocking, at rn_core_open, on the opening thread. Sets *buf
 *   (malloc'd, the caller frees) and *len; RN_ENOENT when nothing was ever
 *   saved (then *buf is NULL).
 * save: blocking, called on a thread-pool thread, never on the loop; at
 *   most one save runs at a time per store; returns once the snapshot is
 *   durable (or the error). buf is borrowed.
 * destroy: frees the store (NULL-safe through rn_core_meta_store_destroy). */
typedef struct rn_core_meta_store_ops {
  rn_err_t (*load)(rn_core_meta_store_t *ms, uint8_t **buf, size_t *len);
  rn_err_t (*save)(rn_core_meta_store_t *ms, const uint8_t *buf, size_t len);
  void (*destroy)(rn_core_meta_store_t *ms);
} rn_core_meta_store_ops_t;

struct rn_core_meta_store {
  const rn_core_meta_store_ops_t *ops;
};

/* The local file store: <dir>/broker.meta, read and written through fs
 * (NULL = rn_fs_posix(); borrowed, must outlive the store) as an atomic
 * snapshot (temp, fdatasync, rename, fsync dir). dir is copied. Returns
 * NULL on OOM. */
rn_core_meta_store_t *rn_core_meta_store_file(rn_fs_t *fs, const char *dir);
/* ms->ops->destroy(ms); NULL ok. */
void rn_core_meta_store_destroy(rn_core_meta_store_t *ms);

/* ==== for subsystems (groups, tiering, sinks, replication) ===================================== */

/* Each subsystem owns one slot on every shard and one listener. Per-shard
 * state of every subsystem hangs off the shard, not off parallel arrays
 * sized nshards. */
typedef enum rn_core_sub {
  RN_SUB_GROUPS = 0,
  RN_SUB_TIER,
  RN_SUB_SINKS,
  RN_SUB_REPL,
  RN_SUB__COUNT
} rn_core_sub_t;

/* Events a subsystem hears, all on the loop thread, in this order for a
 * stream's life: stream_created, shard_opened (each shard), ...,
 * stream_deleting, shard_closing (each shard). A callback may read core
 * and its own slots; it must not create or delete streams. Any callback
 * may be NULL.
 *  stream_created: the stream just became ACTIVE (also called for every
 *    existing stream when the listener is registered).
 *  stream_deleting: the stream just became DELETING; it is unreachable by
 *    name; st and its shards stay valid until the matching shard_closing
 *    calls returned.
 *  shard_opened: the shard's log is open (also at registration).
 *  shard_closing: the last chance to free the subsystem's slot: after it
 *    returns, the shard is closed and freed (delete, or rn_core_close). */
typedef struct rn_core_listener {
  void (*stream_created)(void *arg, rn_core_stream_t *st);
  void (*stream_deleting)(void *arg, rn_core_stream_t *st);
  void (*shard_opened)(void *arg, rn_core_shard_t *sh);
  void (*shard_closing)(void *arg, rn_core_shard_t *sh);
  /* Core's periodic tick (every 100 ms), after the shards' logs ticked. */
  void (*tick)(void *arg);
  /* rn_core_close: after every handle closed and thread-pool job finished,
   * before the shards close. Blocking allowed (the loop is not serving).
   * Its error is rn_core_close's if no earlier one. */
  rn_err_t (*close)(void *arg);
  void *arg;
} rn_core_listener_t;

/* Register sub's listener (*l is copied; one per sub; a second call
 * replaces it; NULL removes it). Replays stream_created and shard_opened
 * for every ACTIVE stream before returning. */
void rn_core_listen(rn_core_t *core, rn_core_sub_t sub, const rn_core_listener_t *l);

/* The ACTIVE stream of that name, or NULL. Borrowed: valid on the loop
 * thread until its stream_deleting event (or, across that, while a
 * reference is held). */
rn_core_stream_t *rn_core_stream_find(rn_core_t *core, const char *name);
/* Keep st's memory (not its reachability) across a delete; every ref needs
 * one unref. */
void rn_core_stream_ref(rn_core_stream_t *st);
void rn_core_stream_unref(rn_core_stream_t *st);

const char *rn_core_stream_name(const rn_core_stream_t *st); /* lives as long as st */
uint64_t rn_core_stream_uid(const rn_core_stream_t *st);     /* distinct per incarnation of a name */
rn_core_stream_state_t rn_core_stream_state(const rn_core_stream_t *st);
uint32_t rn_core_stream_nshards(const rn_core_stream_t *st);
/* Shard i (< nshards) of st; lives as long as st. */
rn_core_shard_t *rn_core_stream_shard(rn_core_stream_t *st, uint32_t i);

rn_core_stream_t *rn_core_shard_stream(const rn_core_shard_t *sh);
uint32_t rn_core_shard_index(const rn_core_shard_t *sh);
uint64_t rn_core_shard_start_offset(const rn_core_shard_t *sh);
uint64_t rn_core_shard_end_offset(const rn_core_shard_t *sh);
rn_core_shard_state_t rn_core_shard_state(const rn_core_shard_t *sh);
void rn_core_shard_hash_range(const rn_core_shard_t *sh, uint8_t start[16], uint8_t end[16]);

/* The subsystem's per-shard pointer; NULL until set. Core never touches
 * what it points to: the subsystem sets it (typically in shard_opened) and
 * frees it in shard_closing. */
void *rn_core_shard_slot(const rn_core_shard_t *sh, rn_core_sub_t sub);
void rn_core_shard_set_slot(rn_core_shard_t *sh, rn_core_sub_t sub, void *p);

/* The offset of the first record at or after ts_ms in sh (its end offset
 * when none), read on the thread pool; cb on the loop thread with err 0 or
 * the read's error. sh must stay alive (hold a stream ref) until cb. */
typedef void (*rn_core_offset_cb)(void *ctx, rn_err_t err, uint64_t offset);
void rn_core_shard_offset_at(rn_core_t *core, rn_core_shard_t *sh, int64_t ts_ms, rn_core_offset_cb cb, void *ctx);

/* Shared machinery, borrowed for core's lifetime. */
rn_io_t *rn_core_io(rn_core_t *core);           /* the append/sync engine every log uses */
uv_loop_t *rn_core_loop(const rn_core_t *core);
const rn_core_opts_t *rn_core_options(const rn_core_t *core);
const char *rn_core_data_dir(const rn_core_t *core);
/* Wall clock, ms since the epoch: rn_core_opts_t.clock (the one clock core
 * uses). Any thread. */
int64_t rn_core_now_ms(const rn_core_t *core);
/* Log one line through the configured logger. Loop thread. */
void rn_core_log(const rn_core_t *core, rn_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Work a subsystem adds to core's in-flight count (thread-pool jobs, its
 * own log's appends): rn_core_idle() is false while any is outstanding. */
void rn_core_work_begin(rn_core_t *core);
void rn_core_work_end(rn_core_t *core);

/* -- for subsystems, continued (broker/core/subsys.c) -- */

/* When the stream was created (ms since the epoch): the time part of its
 * records' Kinesis sequence numbers (runnel/seqnum.h). */
int64_t rn_core_stream_created_ms(const rn_core_stream_t *st);

/* The stream of that name in any state (CREATING and DELETING included),
 * or NULL: for a subsystem that answers "still being created" (RN_EBUSY)
 * apart from "not found". Borrowed as rn_core_stream_find's result. */
rn_core_stream_t *rn_core_stream_lookup(rn_core_t *core, const char *name);

/* The shard's log, for reads off the loop (rn_log_span_plan on the loop,
 * rn_log_span_read on any thread, rn_log_span_release on the loop). NULL
 * when the shard has none (its open failed). Borrowed, as long as the
 * shard; a subsystem never appends to it. sh NULL: NULL. */
rn_log_t *rn_core_shard_log(const rn_core_shard_t *sh);

/* rn_log_read(log, from, *buf, *cap, len), growing *buf (realloc) and
 * reading again while the batch at from is larger than *cap (RN_ETOOLARGE):
 * for a replay that walks a log start to end. *buf is the caller's
 * (malloc'd, freed by the caller, also after an error); *cap follows it.
 * Returns rn_log_read's result, or RN_ENOMEM when growing failed. Blocking
 * (disk): at open, or off the loop, as rn_log_read. */
rn_err_t rn_core_log_read(rn_log_t *log, uint64_t from, uint8_t **buf, size_t *cap, size_t *len);

/* Bytes acknowledged to the shard since core opened (the assignment's
 * weight for balancing by throughput). */
uint64_t rn_core_shard_bytes_in(const rn_core_shard_t *sh);

/* The arg of sub's registered listener, or NULL when none: how a front end
 * finds a subsystem's handle from core. Borrowed, while registered. */
void *rn_core_listener_arg(const rn_core_t *core, rn_core_sub_t sub);

/* ==== replication (repl.c; for broker/cluster) ======================================
 *
 * A shard's role decides who may write and read it (docs/cluster.md):
 *   SOLO      a single broker's shard (no cluster): a produce is
 *             acknowledged once its durability holds on this disk; readers
 *             see the log's durable end. The default.
 *   LEADER    produce is accepted while the shard is writable (enough
 *             replicas in sync, rn_core_shard_set_writable; else
 *             RN_ENOTENOUGHREPLICAS) and stamped with the leader epoch; a
 *             batch durable here waits for the committed end
 *             (rn_core_shard_commit) before it is acknowledged; consumers
 *             see only records below the committed end; followers read to
 *             the log end through replica fetches.
 *   FOLLOWER  takes only replica appends (rn_core_shard_replicate) and
 *             truncations; produce and consumer fetch answer RN_ENOTLEADER.
 *   NONE      no replica here, or the shard is offline: RN_ENOTLEADER.
 * Core opened with opts.cluster starts every shard as NONE; the cluster
 * layer sets roles from the control plane. Every call below is on the loop
 * thread. */
typedef enum rn_core_role {
  RN_CORE_ROLE_SOLO = 0,
  RN_CORE_ROLE_LEADER = 1,
  RN_CORE_ROLE_FOLLOWER = 2,
  RN_CORE_ROLE_NONE = 3,
} rn_core_role_t;
const char *rn_core_role_name(rn_core_role_t r);

typedef struct rn_core_repl_hooks {
  /* A replica fetch reached a LEADER shard: the follower replica_id at
   * offset (its log end, every record below durable there) under
   * leader_epoch. Return 0 to serve it, or the error the follower gets
   * (RN_ESTALEEPOCH for an older epoch, RN_ENOTLEADER, ...). */
  rn_err_t (*replica_fetch)(void *arg, rn_core_shard_t *sh, uint32_t replica_id, uint32_t leader_epoch,
                            uint64_t offset);
  /* A LEADER shard's local durable end advanced to end (a produce became
   * durable on this disk); the committed end may follow. */
  void (*local_durable)(void *arg, rn_core_shard_t *sh, uint64_t end);
  /* A user's create or delete in a cluster (core opened with opts.cluster):
   * the cluster layer writes it to the control plane and answers cb
   * itself, once the local copy exists (or is gone). NULL: RN_ENOTSUP. */
  /* A produce batch for a shard this broker does not lead (FOLLOWER or
   * NONE, a request that was not forwarded already): send it unchanged to
   * the shard's leader and call done(ctx, result) once, on the loop thread,
   * with the leader's answer (result and what it points to borrowed during
   * the call; result->shard ignored). The bytes are borrowed during the
   * call only. Return false when there is no leader to send it to: the
   * batch is answered RN_ENOTLEADER. NULL: RN_ENOTLEADER. */
  bool (*forward_produce)(void *arg, rn_core_shard_t *sh, const uint8_t *batch, size_t len,
                          void (*done)(void *ctx, const rn_core_batch_result_t *r), void *ctx);
  /* A consumer's fetch (not forwarded already) of shards none of which is
   * led here: when one other broker leads them all, send the request there
   * and call cb(ctx, result) once with its answer (borrowed during the
   * call; rn_core_fetch_hold returns NULL inside it, so the caller copies)
   * and return true. false: core answers each shard itself (RN_ENOTLEADER).
   * req is borrowed during the call only. */
  bool (*forward_fetch)(void *arg, rn_core_stream_t *st, const rn_core_fetch_req_t *req, rn_core_fetch_cb cb,
                        void *ctx);
  void (*create_stream)(void *arg, const rn_core_create_req_t *req, rn_core_create_cb cb, void *ctx);
  void (*delete_stream)(void *arg, const rn_core_delete_req_t *req, rn_core_delete_cb cb, void *ctx);
  void *arg;
} rn_core_repl_hooks_t;
/* Install (copied) or remove (NULL) the hooks. */
void rn_core_set_repl_hooks(rn_core_t *core, const rn_core_repl_hooks_t *h);

/* Give sh a role under leader epoch `epoch` (LEADER: the epoch stamped in
 * its batches; FOLLOWER: the epoch it follows), naming leader_hint (a
 * broker id, 0 = unknown) in RN_ENOTLEADER messages. A LEADER starts
 * unwritable, with its committed end at min(committed end so far, log end).
 * Leaving LEADER answers every produce still waiting for the committed end
 * RN_ENOTLEADER (retriable: its records may or may not survive; an
 * idempotent producer's retry is answered by the new leader without a
 * duplicate) and wakes parked fetches (they get RN_ENOTLEADER). */
void rn_core_shard_set_role(rn_core_t *core, rn_core_shard_t *sh, rn_core_role_t role, uint32_t epoch,
                            uint32_t leader_hint);
rn_core_role_t rn_core_shard_role(const rn_core_shard_t *sh);
/* The placement descriptions report (copied). */
void rn_core_shard_set_placement(rn_core_shard_t *sh, const rn_core_placement_t *p);
/* The stream's replication and min in-sync, for descriptions. */
void rn_core_stream_set_replication(rn_core_stream_t *st, uint32_t replication, uint32_t min_insync);
uint32_t rn_core_shard_leader_epoch(const rn_core_shard_t *sh);
/* LEADER: whether produce is accepted; why (copied) is the message of the
 * RN_ENOTENOUGHREPLICAS answers while not. */
void rn_core_shard_set_writable(rn_core_shard_t *sh, bool writable, const char *why);
/* Move the committed end (the high watermark) to `committed` (clamped to
 * the log end; never backwards). LEADER: acknowledges the produces whose
 * records are all below it and wakes consumers. FOLLOWER: remembered (the
 * start of its committed end if it becomes leader). */
void rn_core_shard_commit(rn_core_t *core, rn_core_shard_t *sh, uint64_t committed);
uint64_t rn_core_shard_committed(const rn_core_shard_t *sh);
/* The log's next offset (the end a follower fetches from, durable records
 * and any in flight), and its durable end. */
uint64_t rn_core_shard_log_end(const rn_core_shard_t *sh);
/* LEADER: the end of what is durable on this disk (its own appends
 * complete in order); other roles: the log end (a follower's replica
 * appends are answered only once durable, one at a time). */
uint64_t rn_core_shard_durable_end(const rn_core_shard_t *sh);

typedef void (*rn_core_repl_cb)(void *ctx, rn_err_t err, const char *msg);
/* FOLLOWER: append whole consecutive batches exactly as the leader stored
 * them (offsets, epochs, arrival times kept), the first at the log's next
 * offset; cb once every one is durable under the stream's durability, or
 * with the first error (RN_EOFFSET: not at the log end; RN_ESTALEEPOCH: an
 * epoch older than the log's; RN_ENOTLEADER: not a follower; a log error).
 * Producer state follows the batches (idempotence survives a failover).
 * batches is copied before the call returns. */
void rn_core_shard_replicate(rn_core_t *core, rn_core_shard_t *sh, const uint8_t *batches, size_t len,
                             rn_core_repl_cb cb, void *ctx);
/* The leader-epoch history lookup (KIP-279, rn_log_epoch_end) on sh's
 * log. */
rn_err_t rn_core_shard_epoch_end(const rn_core_shard_t *sh, uint32_t epoch, uint32_t *found_epoch,
                                 uint64_t *end_offset);
/* FOLLOWER or NONE: remove every record at or after offset (a batch
 * boundary), durably, without blocking the loop, then cb. Producer state
 * and the committed end are cut back too. RN_EBUSY while replica appends
 * are in flight. */
void rn_core_shard_truncate(rn_core_t *core, rn_core_shard_t *sh, uint64_t offset, rn_core_repl_cb cb, void *ctx);

/* ==== the data directory lock (dirlock.c) ====================================== */

/* One owner per data directory. runneld takes an exclusive
 * flock(2) on <data_dir>/LOCK before it reads or writes anything else under
 * data_dir, and holds it until the process exits (the kernel releases it
 * then, also after kill -9, so a stale file never blocks a restart). The file
 * holds the owner's pid in decimal, for the message a second broker prints.
 *
 * Blocking (open, flock with LOCK_NB, write): call at startup, before the
 * loop runs. Not thread-safe; one lock per process. */
typedef struct rn_dirlock rn_dirlock_t;

/* Create data_dir (and parents) when missing, then lock data_dir/LOCK.
 * On success *out owns the lock (rn_dirlock_release). Returns 0;
 * RN_EBUSY when another process holds it — why says
 * "data directory D is in use by pid N" (pid as written by the owner, or
 * "another process" when the file holds none); or a -errno of mkdir/open/
 * flock/write with why naming the path. */
rn_err_t rn_dirlock_acquire(const char *data_dir, rn_dirlock_t **out, char *why, size_t whylen);

/* Release and free. The LOCK file stays (removing it would race with a new
 * owner that opened it). NULL ok. */
void rn_dirlock_release(rn_dirlock_t *lock);


#ifdef __cplusplus
}
#endif
#endif
