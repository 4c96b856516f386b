/*
 * tier.c — core's side of tiered storage (docs/tiering.md; the library is
 * storage/tier/, rn_tier.h): core owns the object store (a caller's, a
 * local directory or S3, from rn_core_opts_t.tier) and one rn_tier_t on
 * core's rn_io_t. This file wires them to the loop and to core's streams:
 *
 *   - the store's completion fd is a uv_poll_t that runs rn_objstore_poll;
 *   - every tiered shard's log runs with its own retention off and an
 *     rn_tier_shard_t attached right after it opened (rn__tier_shard_open),
 *     closed right before it closes; the tier applies total and local
 *     retention, uploads sealed segments and serves reads below the log's
 *     start (shard.c calls rn_tier_read / rn_tier_find_time);
 *   - core's tick calls rn_tier_tick about once a second (and soon after a
 *     tiered shard rolled), retries stream descriptors the store has not
 *     taken yet, and checks the data directory's use (statfs on the thread
 *     pool) for back-pressure;
 *   - a deleted tiered stream's objects go by a durable job in
 *     <data_dir>/tier-jobs (rn_tier_delete_stream), resumed at the next
 *     start when a crash interrupted it.
 *
 * Back-pressure: while the data directory's file system is fuller than
 * opts.tier.disk_high_water percent AND the broker has upload backlog,
 * produce to tiered streams answers RN_EBACKLOG (retriable). The state
 * changes only on the tick (once a second), never per request, and each
 * episode logs one warning when it begins and one line when it ends.
 *
 * Threading: the loop thread, except rn__tier_shard_open, which is blocking
 * and runs where rn_log_open runs (rn_core_open, or the thread-pool job of
 * a create or a restore). While such a job is inside it, the loop makes no
 * tier call of its own that the job could race with: the tick skips the
 * tier and the store's poll handle is stopped (rn__tier_opening_begin/end).
 */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"
#include "rn_fs.h"

#define TIER_TICK_MS 1000
#define DISK_CHECK_MS 1000

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = rn_xmalloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

/* ---- the store and the tier ---------------------------------------------------------------- */

rn_err_t rn__tier_open(rn_engine_t *eng, char *why, size_t whylen) {
  const rn_core_opts_t *o = &eng->opts;
  rn_err_t err = 0;
  if (o->tier.store) {
    eng->store = o->tier.store;
    eng->tier_location = xasprintf("(a %s store)", o->tier.store->ops->name);
  } else if (o->tier.dir && o->tier.dir[0]) {
    err = rn_localdir_new(o->tier.dir, &eng->own_store, why, whylen);
    if (err) return err;
    eng->store = eng->own_store;
    eng->tier_location = xasprintf("%s", o->tier.dir);
  } else if (o->tier.s3.bucket && o->tier.s3.bucket[0]) {
    err = rn_s3_new(&o->tier.s3, &eng->own_store, why, whylen);
    if (err) return err;
    eng->store = eng->own_store;
    const char *prefix = o->tier.s3.prefix ? o->tier.s3.prefix : "";
    eng->tier_location = xasprintf("s3://%s%s%s", o->tier.s3.bucket, prefix[0] ? "/" : "", prefix);
  } else {
    return 0; /* no store: tiered streams are refused */
  }
  eng->tier_jobs_dir = xasprintf("%s/tier-jobs", eng->data_dir);
  rn_fs_t *fs = rn_io_fs(eng->io);
  err = fs->mkdirs(fs, eng->tier_jobs_dir);
  if (err) {
    snprintf(why, whylen, "cannot create %s: %s", eng->tier_jobs_dir, rn_strerror(err));
    return err;
  }
  rn_tier_opts_t to = o->tier.tier;
  to.store = eng->store;
  to.io = eng->io;
  to.clock = eng->opts.clock;
  to.logger = eng->opts.logger.fn ? eng->opts.logger : rn_logger_stderr_as("tier");
  err = rn_tier_new(&to, &eng->tier);
  if (err) {
    snprintf(why, whylen, "tiered storage: %s", rn_strerror(err));
    return err;
  }
  rn__eng_say(eng, RN_LVL_INFO, "tiered storage: store %s (%s), %u uploads at once, cache %" PRIu64 " bytes",
              eng->store->ops->name, eng->tier_location, to.upload_concurrency, to.cache_bytes);
  return 0;
}

static void on_store(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  rn_engine_t *eng = h->data;
  rn_objstore_poll(eng->store);
}

void rn__tier_start(rn_engine_t *eng) {
  if (!eng->tier) return;
  uv_poll_init(eng->loop, &eng->store_poll, rn_objstore_fd(eng->store));
  eng->store_poll.data = eng;
  uv_poll_start(&eng->store_poll, UV_READABLE, on_store);
  eng->store_polling = true;
  /* A job that cannot resume leaves objects behind, not data at risk: the
   * broker serves, and says so. */
  rn_err_t err = rn_tier_resume_jobs(eng->tier, eng->tier_jobs_dir);
  if (err)
    rn__eng_say(eng, RN_LVL_ERROR, "tiered storage: resuming the stream-delete jobs in %s failed: %s; their objects stay",
                eng->tier_jobs_dir, rn_strerror(err));
}

static void on_poll_closed(uv_handle_t *h) { (void)h; }

void rn__tier_close(rn_engine_t *eng) {
  if (eng->store_polling) {
    uv_poll_stop(&eng->store_poll);
    uv_close((uv_handle_t *)&eng->store_poll, on_poll_closed);
    eng->store_polling = false;
  }
  rn_tier_destroy(eng->tier); /* every shard closed before */
  eng->tier = NULL;
  rn_objstore_destroy(eng->own_store);
  eng->own_store = eng->store = NULL;
  free(eng->tier_location);
  free(eng->tier_jobs_dir);
  eng->tier_location = eng->tier_jobs_dir = NULL;
}

/* ---- shards ------------------------------------------------------------------------------------ */

static int64_t or_forever(int64_t v) { return v > 0 ? v : -1; }

rn_err_t rn__tier_shard_open(rn_engine_t *eng, rn_stream_t *st, rn_shard_t *sh, char *why, size_t whylen) {
  if (!eng->tier) {
    snprintf(why, whylen, "stream %s is tiered but this broker has no store: tiering needs s3_bucket or tier_dir",
             st->name);
    return RN_EINVAL;
  }
  rn_tier_shard_opts_t so = {
      .stream = st->name,
      .uid = st->uid,
      .shard = sh->index,
      .dir = sh->dir,
      .retention_ms = or_forever(st->retention_ms),
      .retention_bytes = or_forever(st->retention_bytes),
      .local_retention_ms = or_forever(st->local_retention_ms),
      .local_retention_bytes = or_forever(st->local_retention_bytes),
  };
  char tw[400] = "";
  rn_err_t err = rn_tier_shard_open(eng->tier, sh->log, &so, &sh->tier, tw, sizeof tw);
  if (err) {
    sh->tier = NULL;
    snprintf(why, whylen, "stream %s shard %u: tiered storage: %s", st->name, sh->index, tw[0] ? tw : rn_strerror(err));
    return err;
  }
  sh->tier_segments = rn_log_segment_count(sh->log);
  return 0;
}

void rn__tier_opening_begin(rn_engine_t *eng) {
  if (eng->tier_opening++ == 0 && eng->store_polling) uv_poll_stop(&eng->store_poll);
}

void rn__tier_opening_end(rn_engine_t *eng) {
  assert(eng->tier_opening > 0);
  if (--eng->tier_opening == 0 && eng->store_polling) uv_poll_start(&eng->store_poll, UV_READABLE, on_store);
}

void rn__tier_shard_close(rn_shard_t *sh) {
  rn_tier_shard_close(sh->tier);
  sh->tier = NULL;
}

void rn__tier_set_retention(rn_stream_t *st) {
  for (uint32_t i = 0; i < st->nshards; i++)
    if (st->shards[i].tier)
      rn_tier_shard_set_retention(st->shards[i].tier, or_forever(st->retention_ms), or_forever(st->retention_bytes),
                                  or_forever(st->local_retention_ms), or_forever(st->local_retention_bytes));
}

uint64_t rn__shard_start(const rn_shard_t *sh) {
  if (sh->tier) return rn_tier_shard_start(sh->tier);
  return sh->log ? rn_log_start(sh->log) : 0;
}

bool rn__shard_remote(const rn_shard_t *sh, uint64_t offset) {
  return sh->tier && sh->log && offset < rn_log_start(sh->log) && offset >= rn_tier_shard_start(sh->tier);
}

bool rn__shard_time_remote(const rn_shard_t *sh, uint64_t found) {
  if (!sh->tier || !sh->log) return false;
  uint64_t local = rn_log_start(sh->log);
  return rn_tier_shard_start(sh->tier) < local && found <= local;
}

bool rn__tier_refuses(const rn_engine_t *eng, const rn_stream_t *st) { return st->tiered && eng->backpressure; }

const char *rn__tier_err_text(rn_err_t err) {
  switch (err) {
  case RN_ECORRUPT: return "a remote object failed verification; it is not served";
  case RN_EOBJSTORE: return "the object store failed the request";
  case RN_ETIMEDOUT: return "the object store did not answer in time (tier_request_timeout)";
  case RN_ECANCELED: return "the read was cancelled (the shard is closing)";
  default: return rn_strerror(err);
  }
}

void rn__tier_note_append(rn_engine_t *eng, rn_shard_t *sh) {
  if (!sh->tier || !sh->log) return;
  uint32_t n = rn_log_segment_count(sh->log);
  if (n != sh->tier_segments) {
    sh->tier_segments = n;
    eng->tier_tick_soon = true; /* a sealed segment to upload */
  }
}

/* ---- stream descriptors ------------------------------------------------------------------------------
 * A stream's descriptor is its StreamMeta (meta.c's codec), put at the
 * stream's key in the store whenever its configuration changes. The put
 * carries the name and uid, not the stream: its completion finds the
 * stream again (or not, after a delete), so nothing waits on the store. */

typedef struct desc_put {
  rn_engine_t *eng;
  char *name;
  uint64_t uid, gen;
  uint8_t *buf;
  size_t len;
} desc_put_t;

static void desc_put(rn_engine_t *eng, rn_stream_t *st);

static void desc_put_done(void *arg, const rn_obj_result_t *r) {
  desc_put_t *d = arg;
  rn_engine_t *eng = d->eng;
  eng->desc_puts--;
  rn_stream_t *st = rn__stream_find(eng, d->name);
  if (st && st->uid == d->uid) {
    st->desc_putting = false;
    if (r->err == 0) {
      if (d->gen > st->desc_put_gen) st->desc_put_gen = d->gen;
      /* Changed while this put was in flight: store the newer one now, not
       * at the next tick - a stop right after the change waits for it. */
      if (st->desc_put_gen < st->desc_gen && st->state == RN__STREAM_ACTIVE) desc_put(eng, st);
    } else if (r->err != RN_ECANCELED) {
      rn__eng_say(eng, RN_LVL_WARN, "stream %s: storing its descriptor (what a restore needs) failed: %s (%s); retried",
                  d->name, r->message[0] ? r->message : rn_strerror(r->err), rn_err_name(r->err));
    }
  }
  free(d->buf);
  free(d->name);
  free(d);
}

static void desc_put(rn_engine_t *eng, rn_stream_t *st) {
  rn__meta_stream_t ms = {
      .name = st->name,
      .uid = st->uid,
      .nshards = st->nshards,
      .retention_ms = st->retention_ms,
      .retention_bytes = st->retention_bytes,
      .durability = st->durability,
      .created_ms = st->created_ms,
      .tiered = true,
      .local_retention_ms = st->local_retention_ms,
      .local_retention_bytes = st->local_retention_bytes,
      .dedup_key = st->dedup_key,
      .dedup_field = st->dedup_field,
      .dedup_window_ms = st->dedup_window_ms,
  };
  ms.shards = rn_xcalloc(st->nshards + 1, sizeof(*ms.shards));
  for (uint32_t k = 0; k < st->nshards; k++) {
    const rn_shard_t *sh = &st->shards[k];
    rn__meta_shard_t *x = &ms.shards[k];
    memcpy(x->hk_start, sh->hk_start, 16);
    memcpy(x->hk_end, sh->hk_end, 16);
    x->state = sh->state;
    x->nparents = sh->nparents;
    memcpy(x->parents, sh->parents, sizeof(x->parents));
    x->nchildren = sh->nchildren;
    memcpy(x->children, sh->children, sizeof(x->children));
  }
  desc_put_t *d = rn_xcalloc(1, sizeof(*d));
  d->eng = eng;
  d->name = rn_xstrdup(st->name);
  d->uid = st->uid;
  d->gen = st->desc_gen;
  rn_err_t err = rn__meta_stream_encode(&ms, &d->buf, &d->len);
  free(ms.shards);
  if (!err) err = rn_tier_put_stream(eng->tier, st->name, st->uid, d->buf, d->len, desc_put_done, d);
  if (err) {
    rn__eng_say(eng, RN_LVL_WARN, "stream %s: cannot store its descriptor: %s; retried", st->name, rn_strerror(err));
    free(d->buf);
    free(d->name);
    free(d);
    return;
  }
  st->desc_putting = true;
  eng->desc_puts++;
}

void rn__tier_stream_changed(rn_engine_t *eng, rn_stream_t *st) {
  if (!st->tiered || !eng->tier) return;
  st->desc_gen++;
  if (!st->desc_putting && eng->tier_opening == 0 && st->state == RN__STREAM_ACTIVE) desc_put(eng, st);
}

void rn__tier_stream_closing(rn_engine_t *eng, rn_stream_t *st) {
  for (uint32_t i = 0; i < st->nshards; i++) rn__tier_shard_close(&st->shards[i]);
  if (!st->delete_objects || !eng->tier) return;
  st->delete_objects = false; /* one job per incarnation */
  rn_err_t err = rn_tier_delete_stream(eng->tier, eng->tier_jobs_dir, st->name, st->uid, st->nshards);
  if (err)
    rn__eng_say(eng, RN_LVL_ERROR,
                "stream %s: deleting its objects in the store could not start (%s): they stay until the collector "
                "or an operator removes them",
                st->name, rn_strerror(err));
  else
    rn__eng_say(eng, RN_LVL_INFO, "stream %s: deleting its objects in the store (a job in %s)", st->name,
                eng->tier_jobs_dir);
}

/* ---- the tick: the tier, descriptors, back-pressure ------------------------------------------------ */

static void backpressure_update(rn_engine_t *eng) {
  uint32_t hw = eng->opts.tier.disk_high_water;
  bool want = hw > 0 && hw < 100 && eng->disk_used_pct > hw && eng->tier_backlog_bytes > 0;
  if (want == eng->backpressure) return;
  eng->backpressure = want;
  if (want) {
    eng->backpressure_episodes++;
    rn__eng_say(eng, RN_LVL_WARN,
                "the data directory %s is %u%% full (tier_disk_high_water %u%%) with %" PRIu64
                " bytes waiting for upload: produce to tiered streams answers EBACKLOG until uploads catch up",
                eng->data_dir, eng->disk_used_pct, hw, eng->tier_backlog_bytes);
  } else {
    rn__eng_say(eng, RN_LVL_INFO, "the data directory is %u%% full, %" PRIu64
                " bytes wait for upload: produce to tiered streams is accepted again",
                eng->disk_used_pct, eng->tier_backlog_bytes);
  }
}

static void on_disk_statfs(uv_fs_t *req) {
  rn_engine_t *eng = req->data;
  eng->pending_work--;
  eng->disk_checking = false;
  if (req->result >= 0 && req->ptr) {
    const uv_statfs_t *s = req->ptr;
    uint64_t used = s->f_blocks >= s->f_bfree ? s->f_blocks - s->f_bfree : 0;
    uint64_t total = used + s->f_bavail; /* what df shows: the reserve is not the broker's */
    eng->disk_used_pct = total ? (uint32_t)((used * 100 + total - 1) / total) : 0;
    backpressure_update(eng);
  }
  uv_fs_req_cleanup(req);
}

void rn__tier_tick(rn_engine_t *eng, int64_t now) {
  if (!eng->tier || eng->tier_opening) return;
  if (!eng->tier_tick_soon && now - eng->tier_ticked_ms < TIER_TICK_MS) return;
  bool full = now - eng->tier_ticked_ms >= TIER_TICK_MS;
  eng->tier_ticked_ms = now;
  eng->tier_tick_soon = false;
  if (eng->draining) rn_tier_drain(eng->tier); /* once: later calls return at once */
  rn_tier_tick(eng->tier, now);
  if (!full) return;
  uint64_t backlog = 0;
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    rn_stream_t *st = eng->streams[i];
    if (st->state != RN__STREAM_ACTIVE || !st->tiered) continue;
    for (uint32_t k = 0; k < st->nshards; k++) {
      if (!st->shards[k].tier) continue;
      rn_tier_shard_stats_t ss;
      rn_tier_shard_stats(st->shards[k].tier, &ss);
      backlog += ss.backlog_bytes;
    }
    /* A retry; not while draining, where a store that is down would hold
     * shutdown for ever (the next start stores it again). */
    if (st->desc_put_gen < st->desc_gen && !st->desc_putting && !eng->draining) desc_put(eng, st);
  }
  eng->tier_backlog_bytes = backlog;
  if (eng->backpressure) backpressure_update(eng); /* ends as soon as the backlog is gone */
  if (!eng->disk_checking && now - eng->disk_checked_ms >= DISK_CHECK_MS && !eng->draining) {
    eng->disk_checked_ms = now;
    eng->disk_req.data = eng;
    eng->pending_work++;
    eng->disk_checking = true;
    if (uv_fs_statfs(eng->loop, &eng->disk_req, eng->data_dir, on_disk_statfs) < 0) {
      eng->pending_work--;
      eng->disk_checking = false;
    }
  }
}

/* ---- status -------------------------------------------------------------------------------------------- */

void rn_core_tier_status(rn_core_t *eng, rn_core_tier_status_t *out) {
  memset(out, 0, sizeof(*out));
  if (!eng->tier) return;
  out->enabled = true;
  out->store = eng->store->ops->name;
  out->location = eng->tier_location;
  /* While a thread-pool job is inside rn_tier_shard_open the tier's shard
   * list may move: the last figures then (counters never go back). */
  if (eng->tier_opening == 0) {
    rn_tier_stats(eng->tier, &eng->tier_stats);
    eng->tier_gets_inflight = rn_tier_gets_inflight(eng->tier, &eng->tier_gets_max);
    eng->tier_jobs = rn_tier_jobs_active(eng->tier);
  }
  out->stats = eng->tier_stats;
  out->gets_inflight = eng->tier_gets_inflight;
  out->gets_inflight_max = eng->tier_gets_max;
  out->delete_jobs = eng->tier_jobs;
  out->cache_limit_bytes = eng->opts.tier.tier.cache_bytes;
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    const rn_stream_t *st = eng->streams[i];
    if (st->state != RN__STREAM_ACTIVE || !st->tiered) continue;
    out->tiered_streams++;
    for (uint32_t k = 0; k < st->nshards; k++) {
      if (!st->shards[k].tier) continue;
      out->tiered_shards++;
      rn_tier_shard_stats_t ss;
      rn_tier_shard_stats(st->shards[k].tier, &ss);
      out->backlog_bytes += ss.backlog_bytes;
      out->backlog_segments += ss.backlog_segments;
      if (ss.backlog_age_ms > out->backlog_age_ms) out->backlog_age_ms = ss.backlog_age_ms;
      out->remote_bytes += ss.remote_bytes;
      out->remote_segments += ss.remote_segments;
    }
  }
  out->disk_used_percent = eng->disk_used_pct;
  out->disk_high_water = eng->opts.tier.disk_high_water;
  out->backpressure = eng->backpressure;
  out->backpressure_episodes = eng->backpressure_episodes;
}
