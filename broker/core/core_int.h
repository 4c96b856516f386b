/*
 * core_int.h — private structures of broker/core (engine.c: streams,
 * metadata, admin, subsystems; shard.c: produce, idempotence, fetch, long
 * poll, offsets; info.c: broker info; meta.c: the metadata codec and the
 * local file store). Loop thread only unless a comment says otherwise.
 *
 * Transitional (issue 11): broker/groups/group.c still reads these
 * structures; the groups engineer moves it to rn_core.h's subsystem API.
 */
#ifndef RN_CORE_INT_H
#define RN_CORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "rn_base.h"
#include "rn_core.h"
#include "dedup.h"

/* Results are built in an rn_arena_t (rn_base.h). */

/* ---- producers (idempotence) -------------------------------------------------- */

#define RN__PRODUCER_WINDOW 5

/* What one producer id last appended to one shard. */
typedef struct rn__producer {
  uint64_t id;
  uint16_t epoch;
  int32_t next_seq; /* sequence the next new batch must carry */
  /* The last RN__PRODUCER_WINDOW batches: for answering retries. */
  struct {
    int32_t seq;
    uint32_t count;
    uint64_t base;
    uint32_t stored; /* records the batch stored (fewer than count when the dedup window dropped some) */
    bool durable;
  } win[RN__PRODUCER_WINDOW];
  uint32_t nwin;
  struct rn__producer *next; /* hash chain */
} rn__producer_t;

/* ---- streams and shards ----------------------------------------------------------- */

typedef struct rn__waiter rn__waiter_t;
typedef struct rn_core rn_engine_t; /* core's own name for rn_core_t */
typedef struct rn_core_stream rn_stream_t;
typedef struct rn_core_shard rn_shard_t;

#define RN__MAX_LINKS 2 /* parents or children of one shard (a split or a merge) */

struct rn_core_shard {
  rn_stream_t *stream;
  uint32_t index;
  uint8_t hk_start[16], hk_end[16];
  rn_core_shard_state_t state;
  uint32_t parents[RN__MAX_LINKS], nparents;
  uint32_t children[RN__MAX_LINKS], nchildren;
  rn_log_t *log;
  char *dir;
  int64_t last_append_ms;
  rn__producer_t **producers; /* hash table */
  uint32_t nproducers, producers_cap;
  rn__waiter_t *waiters; /* long-polling fetches parked on this shard */
  unsigned inflight;     /* appends not yet acknowledged */
  rn_core_shard_stats_t metrics; /* counters for /metrics (stream, offsets filled when read) */
  void *slots[RN_SUB__COUNT];    /* one per subsystem (rn_core_shard_slot) */
  /* Tiered streams (tier.c): the shard's tiering, attached right after its
   * log opened and closed before it; NULL otherwise. */
  rn_tier_shard_t *tier;
  uint32_t tier_segments; /* rn_log_segment_count at the last append: a roll ticks the tier */
  /* Replication (repl.c; rn_core.h "replication"). SOLO on a single broker. */
  rn_core_role_t role;
  uint32_t leader_epoch;
  uint32_t leader_hint;    /* the leader's broker id for RN_ENOTLEADER messages; 0 = unknown */
  uint64_t committed;      /* LEADER/FOLLOWER: the high watermark; <= rn_log_end */
  uint64_t durable_end;    /* LEADER: [0, durable_end) is durable on this disk (appends complete in order) */
  bool writable;           /* LEADER: enough replicas in sync */
  char unwritable_why[160];
  /* LEADER: produce items durable here, waiting for the committed end, in
   * offset order (appends complete in offset order). */
  struct produce_item *cwait_head, *cwait_tail;
  unsigned replicating;    /* FOLLOWER: replica appends in flight */
  rn_core_placement_t placement;
  bool truncating;         /* an rn_core_shard_truncate is running */
};

typedef rn_core_stream_state_t rn__stream_state_t;
#define RN__STREAM_CREATING RN_CORE_STREAM_CREATING
#define RN__STREAM_ACTIVE RN_CORE_STREAM_ACTIVE
#define RN__STREAM_DELETING RN_CORE_STREAM_DELETING

struct rn_core_stream {
  rn_engine_t *core;
  char *name;
  uint64_t uid;
  uint32_t nshards;
  int64_t retention_ms;
  int64_t retention_bytes;
  rn_durability_t durability;
  int64_t created_ms;
  /* Tiered storage (docs/tiering.md): retention_* above stay the total;
   * local_retention_* (> 0, or 0 = keep all local / unlimited) is what stays
   * on disk once uploaded. The shards' logs then run with their own
   * retention off and their rn_tier_shard_t applies both. */
  bool tiered;
  int64_t local_retention_ms, local_retention_bytes;
  /* The dedup window (docs/dedup.md; dedup.h): dedup NULL when off. */
  rn_core_dedup_key_t dedup_key;
  char *dedup_field;
  int64_t dedup_window_ms;
  rn__dedup_t *dedup;
  uint64_t dedup_duplicates, dedup_without_id; /* /metrics counters */
  /* The stream's descriptor in the store (tier.c): desc_gen counts changes,
   * desc_put_gen is the last one stored, desc_putting an upload in flight.
   * delete_objects: deleted by a request (not a failed create or restore),
   * so its objects go too. */
  uint64_t desc_gen, desc_put_gen;
  bool desc_putting;
  bool delete_objects;
  rn__stream_state_t state; /* transitions: rn_core.h, rn_core_stream_state_t */
  rn_shard_t *shards; /* nshards */
  uint32_t replication, min_insync; /* a cluster's (rn_core_stream_set_replication) */
  unsigned refs;      /* the registry's, requests' (produce, fetch, create work), subsystems' */
};

struct rn_core {
  rn_core_opts_t opts;
  rn_core_repl_hooks_t repl;   /* rn_core_set_repl_hooks; zeroed = none */
  char *data_dir;
  int64_t started_ms; /* wall clock at rn_core_open (broker info) */
  uv_loop_t *loop;
  rn_io_t *io;
  rn_journal_t *journal; /* owned; NULL = per-shard fdatasync rounds */
  uv_poll_t io_poll;
  uv_timer_t tick;
  rn_stream_t **streams;
  uint32_t nstreams, streams_cap;
  /* Deleted streams no request holds any more: their logs are closed on
   * the thread pool (after their in-flight I/O completed), then they are
   * freed and their directory removed. The check handle starts that after
   * the current callback chain (never inside a log's own callback). */
  rn_stream_t **doomed;
  uint32_t ndoomed, doomed_cap;
  uv_check_t reaper;
  uint64_t next_uid;
  uint64_t next_producer_id;
  uint64_t producer_id_limit; /* persisted; ids below may be in use */
  bool draining;
  unsigned inflight_appends;
  unsigned pending_work; /* thread-pool jobs and metadata writes in flight */
  rn_core_stats_t stats;
  rn_core_listener_t listeners[RN_SUB__COUNT];
  bool listening[RN_SUB__COUNT];
  /* Fetches with data to read waiting for fetch memory (shard.c), FIFO;
   * stats.fetch_memory_bytes is what fetch buffers hold now. */
  struct fetch_op *fetch_wait_head, *fetch_wait_tail;

  /* Metadata is written by thread-pool jobs; the newest snapshot wins. */
  rn_core_meta_store_t *meta;      /* opts.meta_store, or own_meta */
  rn_core_meta_store_t *own_meta;  /* the local file store core created (freed at close) */
  /* The newest snapshot, handed from the loop to thread-pool writers
   * (meta_write_newest): meta_mu guards these fields only and is never held
   * across I/O; meta_write_mu serialises writers (thread pool only). */
  pthread_mutex_t meta_mu, meta_write_mu;
  uint8_t *meta_buf; /* guarded by meta_mu; NULL = nothing left to write */
  size_t meta_len;

  /* Tiered storage (tier.c). NULL tier: no store configured. */
  rn_objstore_t *store;     /* opts.tier.store or own_store */
  rn_objstore_t *own_store; /* created from opts (destroyed at close) */
  rn_tier_t *tier;
  uv_poll_t store_poll;     /* readable: the store has completions (rn_objstore_poll) */
  bool store_polling;       /* store_poll initialised (closed at rn_core_close) */
  unsigned tier_opening;    /* thread-pool jobs inside rn_tier_shard_open: no tier call on the loop meanwhile */
  unsigned desc_puts;       /* stream descriptors being stored: shutdown waits for them (rn_core_idle) */
  char *tier_location;      /* "s3://bucket/prefix" or the directory */
  char *tier_jobs_dir;      /* <data_dir>/tier-jobs: stream-delete jobs */
  int64_t tier_ticked_ms;   /* last rn_tier_tick */
  bool tier_tick_soon;      /* a tiered shard rolled: tick at the next core tick */
  /* Back-pressure (rn_core_opts_t.tier.disk_high_water): the data
   * directory's use, checked by statfs on the thread pool once a second. */
  uv_fs_t disk_req;
  bool disk_checking;
  int64_t disk_checked_ms;
  uint32_t disk_used_pct;
  uint64_t tier_backlog_bytes; /* every tiered shard's, at the last tick */
  bool backpressure;
  uint64_t backpressure_episodes;
  /* rn_core_tier_status's last figures (kept while the tier's shard list
   * may move under an rn_tier_shard_open on the thread pool). */
  rn_tier_stats_t tier_stats;
  unsigned tier_gets_inflight, tier_gets_max, tier_jobs;
};

/* engine.c */
void rn__eng_say(const rn_engine_t *eng, rn_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int64_t rn__now_ms(const rn_engine_t *eng); /* eng->opts.clock */
/* Run work on the thread pool, then after on the loop, counted in
 * eng->pending_work (after must decrement it). When the job cannot be
 * queued, after(w, UV_EIO) runs here instead. w->data is the caller's. */
void rn__queue_work(rn_engine_t *eng, uv_work_t *w, uv_work_cb work, uv_after_work_cb after);
rn_stream_t *rn__stream_find(rn_engine_t *eng, const char *name);
void rn__stream_unref(rn_engine_t *eng, rn_stream_t *st);
/* Kinesis' equal split of the 128-bit key space: shard i of n. */
void rn__shard_range(uint32_t i, uint32_t n, uint8_t start[16], uint8_t end[16]);

/* shard.c */
/* Rebuild producer state from the shard's recent batches (at open). */
rn_err_t rn__shard_load_producers(rn_engine_t *eng, rn_shard_t *sh);
void rn__shard_free_producers(rn_shard_t *sh);
/* Cut producer windows back to the records below offset (a truncation). */
void rn__shard_cut_producers(rn_shard_t *sh, uint64_t offset);
/* Apply one replicated batch's producer fields (a follower's append). */
void rn__shard_note_replicated(rn_shard_t *sh, const rn_batch_header_t *h);
/* The end a consumer may read to: the log end (SOLO) or the committed end. */
uint64_t rn__shard_visible_end(const rn_shard_t *sh);
/* LEADER: acknowledge the produce items waiting at or below sh->committed;
 * fail all of them with err (leadership lost) when err != 0. */
void rn__shard_release_waiting(rn_engine_t *eng, rn_shard_t *sh, rn_err_t err);
/* The RN_ENOTLEADER message for sh (in buf). */
const char *rn__shard_not_leader_msg(const rn_shard_t *sh, char *buf, size_t len);
/* The stream's dedup window from its shards' logs (records that arrived
 * at or after now - window; docs/dedup.md). At open, blocking. */
rn_err_t rn__stream_load_dedup(rn_engine_t *eng, rn_stream_t *st);
/* Data or an end-of-stream change arrived: wake parked fetches. */
void rn__shard_wake(rn_engine_t *eng, rn_shard_t *sh);
/* Wake every fetch parked on sh (a LEADER's committed end moved). */
void rn__shard_wake_committed(rn_engine_t *eng, rn_shard_t *sh);
/* Complete every parked fetch now (drain, delete). */
void rn__shard_wake_all(rn_engine_t *eng, rn_shard_t *sh);

/* tier.c: core's side of tiered storage (docs/tiering.md). Loop thread
 * unless a comment says otherwise. */
/* At rn_core_open, before the metadata loads: the store and the rn_tier_t
 * from opts.tier (none when nothing is configured). Blocking. */
rn_err_t rn__tier_open(rn_engine_t *eng, char *why, size_t whylen);
/* At rn_core_open, once the loop handles exist: poll the store's fd, resume
 * interrupted stream-delete jobs (a failure is logged). Blocking (the jobs
 * directory). */
void rn__tier_start(rn_engine_t *eng);
/* At rn_core_close, after every shard's tier closed: free the tier and the
 * store (their callbacks run with RN_ECANCELED), close the poll handle. */
void rn__tier_close(rn_engine_t *eng);
/* Attach tiering to sh's open log (rn_tier_shard_open with st's retention).
 * Blocking: at open, or on the thread pool next to rn_log_open (then inside
 * rn__tier_opening_begin/end on the loop). */
rn_err_t rn__tier_shard_open(rn_engine_t *eng, rn_stream_t *st, rn_shard_t *sh, char *why, size_t whylen);
void rn__tier_opening_begin(rn_engine_t *eng);
void rn__tier_opening_end(rn_engine_t *eng);
void rn__tier_shard_close(rn_shard_t *sh); /* NULL tier ok */
/* st's retention changed: the tiers of its shards. */
void rn__tier_set_retention(rn_stream_t *st);
/* st's configuration changed (created, loaded, retention): store its
 * descriptor again (retried from the tick until stored). */
void rn__tier_stream_changed(rn_engine_t *eng, rn_stream_t *st);
/* st is closing after a delete: its shards' tiers closed, its objects
 * deleted by a durable job when st->delete_objects. */
void rn__tier_stream_closing(rn_engine_t *eng, rn_stream_t *st);
/* From core's tick: rn_tier_tick about once a second (sooner after a roll),
 * descriptors, the disk check and back-pressure. */
void rn__tier_tick(rn_engine_t *eng, int64_t now_ms);
/* An append to sh was acknowledged: a roll ticks the tier soon. */
void rn__tier_note_append(rn_engine_t *eng, rn_shard_t *sh);
/* The earliest offset stored anywhere (tiered: rn_tier_shard_start). */
uint64_t rn__shard_start(const rn_shard_t *sh);
/* Whether offset lies in sh's store: tiered, and tier start <= offset < log start. */
bool rn__shard_remote(const rn_shard_t *sh, uint64_t offset);
/* Whether a timestamp lookup that found `found` locally may find an earlier
 * record in the store: tiered, remote data below the log start, and found
 * is the log's start (no local record before it is older). */
bool rn__shard_time_remote(const rn_shard_t *sh, uint64_t found);
/* Produce to st now answers RN_EBACKLOG (back-pressure). */
bool rn__tier_refuses(const rn_engine_t *eng, const rn_stream_t *st);
/* The store's error for a reader: "shard N: remote read at offset O: ..." */
const char *rn__tier_err_text(rn_err_t err);

/* meta.c: the metadata snapshot's codec (BrokerMeta, protobuf: core's
 * storage format, private). */
typedef struct rn__meta_shard {
  uint8_t hk_start[16], hk_end[16];
  rn_core_shard_state_t state;
  uint32_t parents[RN__MAX_LINKS], nparents;
  uint32_t children[RN__MAX_LINKS], nchildren;
} rn__meta_shard_t;

typedef struct rn__meta_stream {
  char *name;
  uint64_t uid;
  uint32_t nshards;
  int64_t retention_ms, retention_bytes;
  rn_durability_t durability;
  int64_t created_ms;
  bool tiered;                                  /* tiered storage (docs/tiering.md) */
  int64_t local_retention_ms, local_retention_bytes; /* tiered only: as rn_stream_t's */
  rn_core_dedup_key_t dedup_key;                /* the dedup window, as rn_stream_t's */
  char *dedup_field;
  int64_t dedup_window_ms;
  rn__meta_shard_t *shards; /* nshards */
} rn__meta_stream_t;

typedef struct rn__meta {
  uint64_t next_uid;
  uint64_t producer_id_limit;
  rn__meta_stream_t *streams;
  size_t nstreams;
} rn__meta_t;

/* Encode *m (malloc'd *buf, the caller frees). */
rn_err_t rn__meta_encode(const rn__meta_t *m, uint8_t **buf, size_t *len);
/* Decode buf into *m (free with rn__meta_free). Old files (shard count
 * only) get the equal split, every shard OPEN. RN_ECORRUPT with why
 * (what names the snapshot in it). */
rn_err_t rn__meta_decode(const uint8_t *buf, size_t len, rn__meta_t *m, const char *what, char *why, size_t whylen);
void rn__meta_free(rn__meta_t *m);
/* One stream alone (a StreamMeta): a tiered stream's descriptor in its
 * object store (rn_tier_put_stream). Encode into a malloc'd *buf (the
 * caller frees); decode into *ms (free with rn__meta_stream_free), or
 * RN_ECORRUPT with why. */
rn_err_t rn__meta_stream_encode(const rn__meta_stream_t *ms, uint8_t **buf, size_t *len);
rn_err_t rn__meta_stream_decode(const uint8_t *buf, size_t len, rn__meta_stream_t *ms, const char *what, char *why,
                                size_t whylen);
void rn__meta_stream_free(rn__meta_stream_t *ms); /* the members; ms itself is the caller's */

/* info.c */
/* Broker info: version, start time, data directory usage (uv_fs_statfs on
 * the thread pool, never on the loop; skipped with skip_disk), limits,
 * counts, failed shards. */

#endif
