/*
 * engine_int.h — private structures of the broker engine (engine.c: streams,
 * metadata, admin, dispatch; shard.c: produce, idempotence, fetch, long
 * poll). Loop thread only unless a comment says otherwise.
 */
#ifndef RN_BROKER_ENGINE_INT_H
#define RN_BROKER_ENGINE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "rn_base.h"

/* Responses are built in an rn_arena_t (rn_base.h). */

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
    bool durable;
  } win[RN__PRODUCER_WINDOW];
  uint32_t nwin;
  struct rn__producer *next; /* hash chain */
} rn__producer_t;

/* ---- streams and shards ----------------------------------------------------------- */

typedef struct rn__waiter rn__waiter_t;
typedef struct rn__groups rn__groups_t;
typedef struct rn_stream rn_stream_t;

typedef struct rn_shard {
  rn_stream_t *stream;
  uint32_t index;
  uint8_t hk_start[16], hk_end[16];
  rn_log_t *log;
  char *dir;
  int64_t last_append_ms;
  rn__producer_t **producers; /* hash table */
  uint32_t nproducers, producers_cap;
  rn__waiter_t *waiters; /* long-polling fetches parked on this shard */
  unsigned inflight;     /* appends not yet acknowledged */
  rn_engine_shard_stats_t metrics; /* counters for /metrics (stream, offsets filled when read) */
} rn_shard_t;

typedef enum { RN__STREAM_CREATING, RN__STREAM_ACTIVE, RN__STREAM_DELETING } rn__stream_state_t;

struct rn_stream {
  char *name;
  uint64_t uid;
  uint32_t nshards;
  int64_t retention_ms;
  int64_t retention_bytes;
  rn_durability_t durability;
  int64_t created_ms;
  rn__stream_state_t state;
  rn_shard_t *shards; /* nshards */
  unsigned refs;      /* requests holding the stream (produce, fetch, create work) */
};

struct rn_engine {
  rn_engine_opts_t opts;
  char *data_dir;
  int64_t started_ms; /* wall clock at rn_engine_open (BrokerInfo) */
  uv_loop_t *loop;
  rn_io_t *io;
  uv_poll_t io_poll;
  uv_timer_t tick;
  rn_stream_t **streams;
  uint32_t nstreams, streams_cap;
  /* Deleted streams no request holds any more: closed and removed by the
   * check handle after the current callback chain (never inside a log's
   * own callback). */
  rn_stream_t **doomed;
  uint32_t ndoomed, doomed_cap;
  uv_check_t reaper;
  uint64_t next_uid;
  uint64_t next_producer_id;
  uint64_t producer_id_limit; /* persisted; ids below may be in use */
  bool draining;
  unsigned inflight_appends;
  unsigned pending_work; /* thread-pool jobs and metadata writes in flight */
  rn_engine_stats_t stats;
  rn__groups_t *groups; /* consumer groups (group.c) */
  /* Fetches with data to read waiting for fetch memory (shard.c), FIFO;
   * stats.fetch_memory_bytes is what fetch buffers hold now. */
  struct fetch_op *fetch_wait_head, *fetch_wait_tail;

  /* Metadata is written by thread-pool jobs; the newest snapshot wins. */
  pthread_mutex_t meta_mu;
  uint8_t *meta_buf; /* guarded by meta_mu */
  size_t meta_len;
  uint64_t meta_version, meta_written; /* guarded by meta_mu */
};

/* engine.c */
void rn__eng_say(const rn_engine_t *eng, rn_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int64_t rn__now_ms(const rn_engine_t *eng); /* eng->opts.clock */
rn_stream_t *rn__stream_find(rn_engine_t *eng, const char *name);
void rn__stream_unref(rn_engine_t *eng, rn_stream_t *st);
void rn__fill_error(rn_arena_t *a, Runnel__Error **out, rn_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* shard.c */
void rn__handle_produce(rn_engine_t *eng, const Runnel__Request *req, rn_engine_reply_cb cb, void *ctx);
void rn__handle_fetch(rn_engine_t *eng, const Runnel__Request *req, rn_engine_reply_cb cb, void *ctx);
void rn__handle_list_offsets(rn_engine_t *eng, const Runnel__Request *req, rn_engine_reply_cb cb, void *ctx);
/* Rebuild producer state from the shard's recent batches (at open). */
rn_err_t rn__shard_load_producers(rn_engine_t *eng, rn_shard_t *sh);
void rn__shard_free_producers(rn_shard_t *sh);
/* Data or an end-of-stream change arrived: wake parked fetches. */
void rn__shard_wake(rn_engine_t *eng, rn_shard_t *sh);
/* Complete every parked fetch now (drain, delete). */
void rn__shard_wake_all(rn_engine_t *eng, rn_shard_t *sh);

/* group.c */
/* Open the groups' internal log and snapshot (after the streams are loaded).
 * Blocking. */
rn_err_t rn__groups_open(rn_engine_t *eng, char *why, size_t whylen);
/* Close the internal log (no append in flight). Blocking. */
rn_err_t rn__groups_close(rn_engine_t *eng);
/* Session expiry, the internal log's timers, compaction. Loop tick. */
void rn__groups_tick(rn_engine_t *eng);
/* The stream is being deleted: drop its groups. */
void rn__groups_stream_deleted(rn_engine_t *eng, rn_stream_t *st);
void rn__handle_group(rn_engine_t *eng, const Runnel__Request *req, rn_engine_reply_cb cb, void *ctx);

/* info.c */
/* BrokerInfo: version, start time, data directory usage (uv_fs_statfs on
 * the thread pool, never on the loop; skipped with skip_disk), limits,
 * counts, failed shards. */
void rn__handle_broker_info(rn_engine_t *eng, const Runnel__BrokerInfoRequest *r, rn_engine_reply_cb cb, void *ctx);

#endif
