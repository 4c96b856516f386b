/*
 * engine.h — TRANSITIONAL (issue 11): the broker's old engine names, kept
 * so the folders not yet ported to rn_core.h (main.c, net/, apps/, groups/)
 * compile unchanged. Not part of the rn_core library: every name here is
 * either an alias of rn_core.h, the native protocol entry point
 * (native/dispatch.c) or the consumer groups' (groups/group.c). New code
 * includes rn_core.h (and dispatch.h) instead; this header goes away when
 * the last user is ported.
 *
 * rn_engine_open/rn_engine_close (broker/engine_compat.c, in rn_broker)
 * open and close core together with the consumer groups, as the engine
 * did.
 */
#ifndef RN_BROKER_ENGINE_H
#define RN_BROKER_ENGINE_H

#include <stdint.h>
#include <uv.h>

#include "rn_core.h"
#include "runnel.pb-c.h"

typedef struct rn_core rn_engine_t;
typedef rn_core_opts_t rn_engine_opts_t;
typedef rn_core_stats_t rn_engine_stats_t;
typedef rn_core_shard_stats_t rn_engine_shard_stats_t;
typedef rn_core_shard_stats_fn rn_engine_shard_stats_fn;
/* Same type as native/dispatch.h's rn_native_reply_cb. */
typedef void (*rn_engine_reply_cb)(void *ctx, const Runnel__Response *resp);

#define RN_ENGINE_FETCH_DEFAULT_BYTES RN_CORE_FETCH_DEFAULT_BYTES
#define RN_ENGINE_LATENCY_BUCKETS RN_CORE_LATENCY_BUCKETS
#define rn_engine_latency_bounds rn_core_latency_bounds

static inline void rn_engine_opts_default(rn_engine_opts_t *o) { rn_core_opts_default(o); }

/* rn_core_open, then the consumer groups (their internal log, snapshot,
 * tick and stream-deleted hook). Blocking. */
rn_err_t rn_engine_open(const rn_engine_opts_t *opts, rn_engine_t **out, char *why, size_t whylen);
/* rn_core_close (which closes the groups first through their listener). */
rn_err_t rn_engine_close(rn_engine_t *eng);

/* rn_native_handle and rn_native_error under their old names (defined in
 * native/dispatch.c, so this header does not reach into native/). */
void rn_engine_handle(rn_engine_t *eng, const Runnel__Request *req, rn_engine_reply_cb cb, void *ctx);
void rn_engine_error(Runnel__Error *e, rn_err_t err, const char *msg);
static inline void *rn_engine_reply_hold(rn_engine_t *eng) { return rn_core_fetch_hold(eng); }
static inline void rn_engine_reply_release(void *token) { rn_core_fetch_release(token); }
static inline void rn_engine_drain(rn_engine_t *eng) { rn_core_drain(eng); }
static inline int rn_engine_idle(const rn_engine_t *eng) { return rn_core_idle(eng); }
static inline int rn_engine_draining(const rn_engine_t *eng) { return rn_core_draining(eng); }
static inline void rn_engine_stats(const rn_engine_t *eng, rn_engine_stats_t *st) { rn_core_stats(eng, st); }
static inline void rn_engine_foreach_shard(const rn_engine_t *eng, rn_engine_shard_stats_fn fn, void *arg) {
  rn_core_foreach_shard(eng, fn, arg);
}

/* ---- consumer groups (groups/group.c; the groups engineer gives them an API) ---- */

typedef struct rn_engine_group_stats {
  const char *stream, *group; /* valid during the callback only */
  uint32_t shard;
  uint32_t members;           /* of the group */
  uint64_t checkpoint;
  uint64_t lag_records;       /* end offset - the group's read position */
  int64_t lag_ms;             /* now - arrival of the oldest unconsumed record; 0 caught up;
                                 -1 unknown (no checkpoint, or its arrival not read yet) */
  int checkpoint_known;       /* the group has an offset position (checkpoint) in the shard */
} rn_engine_group_stats_t;

typedef void (*rn_engine_group_stats_fn)(void *arg, const rn_engine_group_stats_t *s);

/* Call fn once per (group, shard) of every consumer group, groups in
 * creation order, shards in order. Loop thread; fn must not call back into
 * the engine. */
void rn_engine_foreach_group_shard(const rn_engine_t *eng, rn_engine_group_stats_fn fn, void *arg);

struct rn_core_stream;
/* Open the groups' internal log and snapshot (after the streams are loaded).
 * Blocking. */
rn_err_t rn__groups_open(rn_engine_t *eng, char *why, size_t whylen);
/* Close the internal log (no append in flight). Blocking. */
rn_err_t rn__groups_close(rn_engine_t *eng);
/* Session expiry, the internal log's timers, compaction. Loop tick. */
void rn__groups_tick(rn_engine_t *eng);
/* The stream is being deleted: drop its groups. */
void rn__groups_stream_deleted(rn_engine_t *eng, struct rn_core_stream *st);
void rn__handle_group(rn_engine_t *eng, const Runnel__Request *req, rn_engine_reply_cb cb, void *ctx);

#endif
