/*
 * repl.c — what core does for replication (rn_core.h, "replication"): a
 * shard's role, its committed end, a follower's appends and truncation.
 * The decisions (who leads, which replicas are in sync, where the committed
 * end is) are broker/cluster's; core only enforces them:
 *
 *   - a produce is accepted only by a writable LEADER and answered only
 *     once the committed end covers it (shard.c: on_appended queues it on
 *     the shard, rn__shard_release_waiting answers it);
 *   - a consumer reads only below the committed end (shard.c caps fetches),
 *     a follower's replica fetch reads to the log end;
 *   - the committed end never moves backwards and never passes the log end;
 *   - a follower appends the leader's batches unchanged, in offset order,
 *     and truncates only when it is not leading.
 *
 * Everything runs on the loop thread; the truncation's file work runs off
 * it (rn_log_truncate_async).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

const char *rn_core_role_name(rn_core_role_t r) {
  switch (r) {
  case RN_CORE_ROLE_SOLO: return "solo";
  case RN_CORE_ROLE_LEADER: return "leader";
  case RN_CORE_ROLE_FOLLOWER: return "follower";
  case RN_CORE_ROLE_NONE: return "none";
  }
  return "?";
}

void rn_core_set_repl_hooks(rn_core_t *core, const rn_core_repl_hooks_t *h) {
  if (h)
    core->repl = *h;
  else
    memset(&core->repl, 0, sizeof core->repl);
}

void rn_core_shard_set_role(rn_core_t *core, rn_core_shard_t *sh, rn_core_role_t role, uint32_t epoch,
                            uint32_t leader_hint) {
  rn_core_role_t was = sh->role;
  sh->role = role;
  sh->leader_epoch = epoch;
  sh->leader_hint = leader_hint;
  if (role == RN_CORE_ROLE_LEADER) {
    uint64_t end = sh->log ? rn_log_end(sh->log) : 0;
    if (sh->committed > end) sh->committed = end;
    /* What it holds as a follower (or solo) is durable: its replica
     * appends are acknowledged only once they are. */
    sh->durable_end = end;
    if (was != RN_CORE_ROLE_LEADER) {
      sh->writable = false;
      snprintf(sh->unwritable_why, sizeof sh->unwritable_why, "the leader is starting (epoch %u)", epoch);
    }
  }
  if (was == RN_CORE_ROLE_LEADER && role != RN_CORE_ROLE_LEADER) {
    rn__shard_release_waiting(core, sh, RN_ENOTLEADER);
    sh->writable = false;
  }
  /* Parked fetches re-check the role: consumers of a former leader get
   * RN_ENOTLEADER, a new leader's consumers see its committed end. */
  rn__shard_wake_committed(core, sh);
}

rn_core_role_t rn_core_shard_role(const rn_core_shard_t *sh) { return sh->role; }

void rn_core_shard_set_placement(rn_core_shard_t *sh, const rn_core_placement_t *p) { sh->placement = *p; }

void rn_core_stream_set_replication(rn_core_stream_t *st, uint32_t replication, uint32_t min_insync) {
  st->replication = replication;
  st->min_insync = min_insync;
}
uint32_t rn_core_shard_leader_epoch(const rn_core_shard_t *sh) { return sh->leader_epoch; }

void rn_core_shard_set_writable(rn_core_shard_t *sh, bool writable, const char *why) {
  sh->writable = writable;
  snprintf(sh->unwritable_why, sizeof sh->unwritable_why, "%s", writable || !why ? "" : why);
}

void rn_core_shard_commit(rn_core_t *core, rn_core_shard_t *sh, uint64_t committed) {
  uint64_t end = sh->log ? rn_log_end(sh->log) : 0;
  if (committed > end) committed = end;
  if (committed <= sh->committed) return;
  sh->committed = committed;
  if (sh->role != RN_CORE_ROLE_LEADER) return;
  rn__shard_release_waiting(core, sh, 0);
  rn__shard_wake_committed(core, sh);
}

uint64_t rn_core_shard_committed(const rn_core_shard_t *sh) {
  return sh->role == RN_CORE_ROLE_SOLO ? rn__shard_visible_end(sh) : sh->committed;
}

uint64_t rn_core_shard_log_end(const rn_core_shard_t *sh) { return sh->log ? rn_log_end(sh->log) : 0; }

uint64_t rn_core_shard_durable_end(const rn_core_shard_t *sh) {
  if (sh->role == RN_CORE_ROLE_LEADER) return sh->durable_end;
  return rn_core_shard_log_end(sh);
}

/* The storage half of replication (rn_log_append_replica, the leader-epoch
 * history, rn_log_truncate_async) is not in storage/ yet: until it is,
 * these three answer RN_ENOTSUP rather than pretend (docs/cluster.md,
 * "Status"). The rest of this file is the real contract. */
#ifdef RN_LOG_HAVE_REPLICA
rn_err_t rn_core_shard_epoch_end(const rn_core_shard_t *sh, uint32_t epoch, uint32_t *found_epoch,
                                 uint64_t *end_offset) {
  if (!sh->log) return RN_ELOGFAILED;
  return rn_log_epoch_end(sh->log, epoch, found_epoch, end_offset);
}
#else
rn_err_t rn_core_shard_epoch_end(const rn_core_shard_t *sh, uint32_t epoch, uint32_t *found_epoch,
                                 uint64_t *end_offset) {
  (void)sh, (void)epoch, (void)found_epoch, (void)end_offset;
  return RN_ENOTSUP;
}
#endif

#ifdef RN_LOG_HAVE_REPLICA
/* ---- a follower's appends ------------------------------------------------------------------ */

typedef struct repl_job {
  rn_engine_t *eng;
  rn_shard_t *sh;
  rn_stream_t *st;    /* a reference: the shard outlives the job */
  unsigned pending;   /* appends not called back, + 1 while submitting */
  rn_err_t err;       /* the first failure */
  char msg[200];
  rn_core_repl_cb cb;
  void *ctx;
} repl_job_t;

static void repl_job_done(repl_job_t *j) {
  if (--j->pending) return;
  j->sh->replicating--;
  j->cb(j->ctx, j->err, j->err ? j->msg : NULL);
  rn__stream_unref(j->eng, j->st);
  free(j);
}

static void on_replicated(void *arg, rn_err_t err, uint64_t base) {
  repl_job_t *j = arg;
  (void)base;
  j->eng->inflight_appends--;
  if (err && !j->err) {
    j->err = err;
    snprintf(j->msg, sizeof j->msg, "stream %s shard %u: replica append failed: %s", j->st->name, j->sh->index,
             rn_strerror(err));
  }
  if (!err) j->sh->last_append_ms = rn__now_ms(j->eng);
  repl_job_done(j);
}

void rn_core_shard_replicate(rn_core_t *core, rn_core_shard_t *sh, const uint8_t *batches, size_t len,
                             rn_core_repl_cb cb, void *ctx) {
  char m[200];
  if (sh->role != RN_CORE_ROLE_FOLLOWER || sh->truncating || !sh->log) {
    snprintf(m, sizeof m, "stream %s shard %u: replica append refused: this broker is its %s%s", sh->stream->name,
             sh->index, rn_core_role_name(sh->role), sh->truncating ? " (truncating)" : "");
    return cb(ctx, RN_ENOTLEADER, m);
  }
  if (core->draining) return cb(ctx, RN_ESHUTDOWN, "broker is shutting down");
  repl_job_t *j = rn_xcalloc(1, sizeof *j);
  j->eng = core;
  j->sh = sh;
  j->st = sh->stream;
  j->st->refs++;
  j->cb = cb;
  j->ctx = ctx;
  j->pending = 1;
  sh->replicating++;
  for (size_t at = 0; at < len;) {
    rn_batch_header_t h;
    rn_err_t err = rn_batch_header_decode(batches + at, len - at, &h);
    if (!err && (h.batch_length < RN_BATCH_HEADER_SIZE || h.batch_length > len - at)) err = RN_ECORRUPT;
    if (!err) err = rn_log_append_replica(sh->log, batches + at, h.batch_length, on_replicated, j);
    if (err) {
      j->err = err == RN_EPARTIAL ? RN_ECORRUPT : err;
      snprintf(j->msg, sizeof j->msg,
               "stream %s shard %u: replica append at offset %" PRIu64 " (log end %" PRIu64 ") refused: %s",
               sh->stream->name, sh->index, err == 0 ? h.base_offset : 0, rn_log_next_offset(sh->log),
               rn_strerror(j->err));
      break;
    }
    core->inflight_appends++;
    j->pending++;
    rn__shard_note_replicated(sh, &h);
    at += h.batch_length;
  }
  repl_job_done(j);
}

/* ---- truncation ----------------------------------------------------------------------------- */

typedef struct trunc_job {
  rn_engine_t *eng;
  rn_shard_t *sh;
  rn_stream_t *st;
  uint64_t offset;
  rn_core_repl_cb cb;
  void *ctx;
} trunc_job_t;

static void on_truncated(void *arg, rn_err_t err) {
  trunc_job_t *j = arg;
  rn_shard_t *sh = j->sh;
  sh->truncating = false;
  char m[200];
  if (!err) {
    rn__shard_cut_producers(sh, j->offset);
    if (sh->committed > j->offset) sh->committed = j->offset;
    rn__eng_say(j->eng, RN_LVL_INFO, "stream %s shard %u: truncated to offset %" PRIu64 " (leader epoch history)",
                j->st->name, sh->index, j->offset);
  } else {
    snprintf(m, sizeof m, "stream %s shard %u: truncating to %" PRIu64 " failed: %s", j->st->name, sh->index, j->offset,
             rn_strerror(err));
  }
  j->cb(j->ctx, err, err ? m : NULL);
  rn__stream_unref(j->eng, j->st);
  free(j);
}

void rn_core_shard_truncate(rn_core_t *core, rn_core_shard_t *sh, uint64_t offset, rn_core_repl_cb cb, void *ctx) {
  char m[200];
  if (sh->role == RN_CORE_ROLE_LEADER || sh->role == RN_CORE_ROLE_SOLO || !sh->log) {
    snprintf(m, sizeof m, "stream %s shard %u: a %s does not truncate", sh->stream->name, sh->index,
             rn_core_role_name(sh->role));
    return cb(ctx, RN_EINVAL, m);
  }
  if (sh->replicating || sh->truncating || sh->inflight) {
    snprintf(m, sizeof m, "stream %s shard %u: appends in flight; truncate after they completed", sh->stream->name,
             sh->index);
    return cb(ctx, RN_EBUSY, m);
  }
  if (offset >= rn_log_next_offset(sh->log)) return cb(ctx, 0, NULL); /* nothing past it */
  trunc_job_t *j = rn_xcalloc(1, sizeof *j);
  j->eng = core;
  j->sh = sh;
  j->st = sh->stream;
  j->st->refs++;
  j->offset = offset;
  j->cb = cb;
  j->ctx = ctx;
  sh->truncating = true;
  rn_err_t err = rn_log_truncate_async(sh->log, offset, on_truncated, j);
  if (err) on_truncated(j, err);
}
#else
void rn_core_shard_replicate(rn_core_t *core, rn_core_shard_t *sh, const uint8_t *batches, size_t len,
                             rn_core_repl_cb cb, void *ctx) {
  (void)core, (void)sh, (void)batches, (void)len;
  cb(ctx, RN_ENOTSUP, "replica appends need storage's rn_log_append_replica, which is not built yet");
}

void rn_core_shard_truncate(rn_core_t *core, rn_core_shard_t *sh, uint64_t offset, rn_core_repl_cb cb, void *ctx) {
  (void)core, (void)sh, (void)offset;
  cb(ctx, RN_ENOTSUP, "truncating a follower needs storage's rn_log_truncate_async, which is not built yet");
}
#endif
