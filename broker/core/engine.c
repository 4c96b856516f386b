/*
 * engine.c — broker/core's registry of streams and shards: metadata through
 * the metadata store, the admin operations of rn_core.h, the subsystems'
 * slots and listeners, and the plumbing that connects the storage layer to
 * the libuv loop (the rn_io completion fd, the tick timer).
 *
 * Layout under data_dir:
 *   meta/broker.meta                  BrokerMeta (protobuf), written atomically
 *   streams/<name>-<uid>/shardId-<12 digits>/   one rn_log_t per shard
 * A stream's directory is named with a uid so a deleted stream's files never
 * mix with a new stream of the same name; directories that the metadata does
 * not list are leftovers of an interrupted create or delete and are removed
 * at open.
 *
 * Invariants: metadata changes are durable before the request that made
 * them is answered; a stream's logs are closed only when no request holds
 * the stream (refs == 0); nothing here blocks the loop except rn_core_open
 * and rn_core_close, which run before and after serving.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core_int.h"
#include "runnel/keys.h"
#include "rn_base.h"

#define PRODUCER_ID_BLOCK 1000

/* ---- small helpers ---------------------------------------------------------- */

void rn_core_opts_default(rn_core_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->data_dir = "./data";
  o->io_backend = RN_IO_AUTO;
  o->max_record_bytes = 1u << 20;
  o->max_batch_bytes = 8u << 20;
  o->max_fetch_bytes = 16u << 20;
  o->max_frame_bytes = 16u << 20;
  o->max_fetch_memory_bytes = 256ull << 20;
  o->max_wait_ms = 30000;
  o->max_shards = 1024;
  o->segment_bytes = 256ull << 20;
  o->group_segment_bytes = 4ull << 20;
  o->interval_ms = 1000;
  o->journal_bytes = 0; /* runneld's default (journal_bytes) is 512 MiB */
  o->journal_checkpoint_ms = 1000;
  o->default_retention_ms = 24 * 3600 * 1000;
  o->dedup_max_ids = RN_CORE_DEDUP_MAX_IDS_DEFAULT;
  rn_s3_opts_default(&o->tier.s3);
  o->tier.s3.bucket = NULL; /* no S3 store unless a bucket is given */
  rn_tier_opts_default(&o->tier.tier);
  o->tier.disk_high_water = 90;
  o->tier.segment_max_age_ms = 3600 * 1000;
}

/* The retention time a request asks for, as the engine stores it (> 0 ms,
 * or 0 = forever): on the wire 0 means "the broker's default" and a negative
 * value "forever" (runnel.proto, StreamConfig). */
static int64_t requested_retention_ms(const rn_engine_t *eng, int64_t wire) {
  if (wire == 0) wire = eng->opts.default_retention_ms;
  return wire > 0 ? wire : 0;
}

/* The dedup window a create asks for (rn_core_create_req_t): 0, or why
 * not. Retention is the stored one (requested_retention_ms: 0 = forever). */
static rn_err_t check_dedup(const rn_engine_t *eng, const rn_core_create_req_t *c, char *why, size_t whylen) {
  const char *f = c->dedup_field ? c->dedup_field : "";
  switch (c->dedup_key) {
  case RN_CORE_DEDUP_NONE:
    if (f[0] || c->dedup_window_ms) {
      snprintf(why, whylen, "a dedup field or window needs a dedup key (field or record-id)");
      return RN_EINVAL;
    }
    return 0;
  case RN_CORE_DEDUP_FIELD:
    if (!f[0] || strlen(f) > RN_CORE_DEDUP_FIELD_MAX || f[0] == '.' || f[strlen(f) - 1] == '.' || strstr(f, "..")) {
      snprintf(why, whylen, "dedup field \"%.64s\" must be a JSON member name or dotted path (a.b) of 1..%d bytes",
               f, RN_CORE_DEDUP_FIELD_MAX);
      return RN_EINVAL;
    }
    break;
  case RN_CORE_DEDUP_RECORD_ID:
    if (f[0]) {
      snprintf(why, whylen, "dedup by record id takes no dedup field");
      return RN_EINVAL;
    }
    break;
  default: snprintf(why, whylen, "unknown dedup key %d", (int)c->dedup_key); return RN_EINVAL;
  }
  if (c->dedup_window_ms <= 0 || c->dedup_window_ms > RN_CORE_DEDUP_MAX_WINDOW_MS) {
    snprintf(why, whylen, "dedup window %lld ms is out of range 1..%lld (7 days)", (long long)c->dedup_window_ms,
             (long long)RN_CORE_DEDUP_MAX_WINDOW_MS);
    return RN_EINVAL;
  }
  int64_t ret = requested_retention_ms(eng, c->retention_ms);
  if (ret > 0 && c->dedup_window_ms > ret) {
    snprintf(why, whylen, "dedup window %lld ms is longer than the retention (%lld ms): it is rebuilt from the log",
             (long long)c->dedup_window_ms, (long long)ret);
    return RN_EINVAL;
  }
  return 0;
}

/* Retention values that are almost certainly a mistake (a unit slip: 100
 * bytes, 500 ms): accepted — they are valid — but logged, since retention
 * would delete each sealed segment as soon as it exists. */
static void warn_absurd_retention(const rn_engine_t *eng, const char *stream, int64_t ms, int64_t bytes) {
  if (ms > 0 && ms < 60 * 1000)
    rn__eng_say(eng, RN_LVL_WARN, "stream %s: retention of %lld ms keeps records for less than a minute; meant hours?",
                stream, (long long)ms);
  if (bytes > 0 && (uint64_t)bytes < eng->opts.segment_bytes)
    rn__eng_say(eng, RN_LVL_WARN,
                "stream %s: retention_bytes %lld per shard is below one segment (segment_bytes %llu): every "
                "sealed segment is deleted at once, leaving only the active one",
                stream, (long long)bytes, (unsigned long long)eng->opts.segment_bytes);
}

/* A local retention longer than the total keeps nothing remote for long:
 * valid, but almost certainly meant the other way round. */
static void warn_local_retention(const rn_engine_t *eng, const rn_stream_t *st) {
  if (st->retention_ms > 0 && st->local_retention_ms > st->retention_ms)
    rn__eng_say(eng, RN_LVL_WARN,
                "stream %s: local retention %lld ms is longer than the total retention %lld ms: segments are "
                "deleted everywhere before they would leave the disk",
                st->name, (long long)st->local_retention_ms, (long long)st->retention_ms);
}

void rn__eng_say(const rn_engine_t *eng, rn_level_t level, const char *fmt, ...) {
  rn_logger_t dflt = rn_logger_stderr_as("engine");
  va_list ap;
  va_start(ap, fmt);
  rn_vsay(eng->opts.logger.fn != NULL ? &eng->opts.logger : &dflt, level, fmt, ap);
  va_end(ap);
}

int64_t rn__now_ms(const rn_engine_t *eng) { return rn_clock_wall_ms(&eng->opts.clock); }

void rn__queue_work(rn_engine_t *eng, uv_work_t *w, uv_work_cb work, uv_after_work_cb after) {
  eng->pending_work++;
  if (uv_queue_work(eng->loop, w, work, after)) after(w, UV_EIO);
}

/* Answer a request with only an error: r = {err, msg}, the rest zeroed
 * (each result type's "nothing"). */
static const char *fmt_msg(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const char *fmt_msg(char *buf, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, len, fmt, ap); /* a message longer than the buffer is cut */
  va_end(ap);
  return buf;
}

#define FAIL(type, cb, ctx, e, ...)                                 \
  do {                                                               \
    char m_[512];                                                    \
    type r_ = {.err = (e), .msg = fmt_msg(m_, sizeof m_, __VA_ARGS__)}; \
    (cb)((ctx), &r_);                                                \
  } while (0)

/* ---- hash ranges -------------------------------------------------------------- */

typedef unsigned __int128 u128;

static void put_be128(uint8_t out[16], u128 v) {
  for (int i = 15; i >= 0; i--) {
    out[i] = (uint8_t)v;
    v >>= 8;
  }
}

/* Kinesis' equal split: shard i starts at i * floor(2^128 / n); the last
 * ends at 2^128 - 1. */
void rn__shard_range(uint32_t i, uint32_t n, uint8_t start[16], uint8_t end[16]) {
  u128 max = ~(u128)0;
  u128 step = n == 1 ? 0 : max / n + ((max % n) == n - 1 ? 1 : 0);
  u128 s = (u128)i * step;
  u128 e = (i + 1 == n) ? max : (u128)(i + 1) * step - 1;
  put_be128(start, s);
  put_be128(end, e);
}

/* ---- streams ------------------------------------------------------------------------ */

rn_stream_t *rn__stream_find(rn_engine_t *eng, const char *name) {
  for (uint32_t i = 0; i < eng->nstreams; i++)
    if (!strcmp(eng->streams[i]->name, name)) return eng->streams[i];
  return NULL;
}

static char *stream_dir(const rn_engine_t *eng, const char *name, uint64_t uid) {
  size_t n = strlen(eng->data_dir) + strlen(name) + 64;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/streams/%s-%" PRIu64, eng->data_dir, name, uid);
  return p;
}

static rn_log_opts_t log_opts(const rn_engine_t *eng, const rn_stream_t *st) {
  rn_log_opts_t lo;
  rn_log_opts_default(&lo);
  lo.durability = st->durability;
  lo.interval_ms = eng->opts.interval_ms;
  lo.segment_bytes = eng->opts.segment_bytes;
  lo.retention_ms = st->retention_ms > 0 ? st->retention_ms : -1;
  lo.retention_bytes = st->retention_bytes > 0 ? st->retention_bytes : -1;
  if (st->tiered) { /* the shard's tier applies total and local retention (rn_tier.h) */
    lo.retention_ms = lo.retention_bytes = -1;
    /* and only sealed segments go to the store: seal by age too */
    if (eng->opts.tier.segment_max_age_ms > 0 && eng->opts.tier.segment_max_age_ms < lo.segment_ms)
      lo.segment_ms = eng->opts.tier.segment_max_age_ms;
  }
  lo.max_batch_bytes = eng->opts.max_batch_bytes;
  lo.logger = eng->opts.logger;
  lo.clock = eng->opts.clock;
  if (eng->journal && st->durability == RN_DURABILITY_SYNC) lo.journal = eng->journal;
  return lo;
}

/* A shard's name in the journal: unique per stream incarnation (uid) and
 * shard, stable across restarts. */
static uint64_t journal_id(const rn_stream_t *st, uint32_t shard) { return (st->uid << 17) | (uint64_t)(shard + 1); }

/* A new stream of nshards OPEN shards over the equal split of the key
 * space (a loaded stream then takes its ranges from the metadata). */
static rn_stream_t *stream_new(rn_engine_t *eng, const char *name, uint32_t nshards) {
  rn_stream_t *st = calloc(1, sizeof(*st));
  if (!st) return NULL;
  st->core = eng;
  st->name = strdup(name);
  st->nshards = nshards;
  st->shards = calloc(nshards, sizeof(rn_shard_t));
  if (!st->name || !st->shards) {
    free(st->name);
    free(st->shards);
    free(st);
    return NULL;
  }
  for (uint32_t i = 0; i < nshards; i++) {
    st->shards[i].stream = st;
    st->shards[i].index = i;
    st->shards[i].state = RN_CORE_SHARD_OPEN;
    st->shards[i].role = eng->opts.cluster ? RN_CORE_ROLE_NONE : RN_CORE_ROLE_SOLO;
    rn__shard_range(i, nshards, st->shards[i].hk_start, st->shards[i].hk_end);
  }
  return st;
}

/* Set every shard's directory (when not set yet). */
static rn_err_t stream_set_dirs(rn_engine_t *eng, rn_stream_t *st) {
  char *dir = stream_dir(eng, st->name, st->uid);
  if (!dir) return RN_ENOMEM;
  rn_err_t err = 0;
  for (uint32_t i = 0; i < st->nshards && !err; i++) {
    rn_shard_t *sh = &st->shards[i];
    if (sh->dir) continue;
    size_t n = strlen(dir) + 32;
    sh->dir = malloc(n);
    if (!sh->dir) {
      err = RN_ENOMEM;
      break;
    }
    snprintf(sh->dir, n, "%s/shardId-%012u", dir, i);
  }
  free(dir);
  return err;
}

/* Open every shard's log, and for a tiered stream attach its tier
 * (rn__tier_shard_open). first_offsets (NULL: none) gives each new log's
 * first offset (a restore: the offset after the shard's remote segments).
 * Blocking: at startup, or on a thread-pool thread for a new stream
 * (rn_log_open only touches the file system; the logs are handed to the
 * loop thread afterwards; the tier is opened inside
 * rn__tier_opening_begin/end). */
static rn_err_t stream_open_logs(rn_engine_t *eng, rn_stream_t *st, const uint64_t *first_offsets, char *why,
                                 size_t whylen) {
  rn_err_t err = stream_set_dirs(eng, st);
  if (err) return err;
  rn_log_opts_t lo = log_opts(eng, st);
  for (uint32_t i = 0; i < st->nshards && !err; i++) {
    rn_shard_t *sh = &st->shards[i];
    rn_log_recovery_t rec;
    lo.journal_id = journal_id(st, i);
    if (first_offsets) lo.first_offset = first_offsets[i];
    err = rn_log_open(eng->io, sh->dir, &lo, &sh->log, &rec);
    if (err) snprintf(why, whylen, "stream %s shard %u: %s", st->name, i, rec.message);
    if (!err && st->tiered) err = rn__tier_shard_open(eng, st, sh, why, whylen);
  }
  return err;
}

static void stream_free(rn_stream_t *st) {
  if (!st) return;
  for (uint32_t i = 0; i < st->nshards; i++) {
    free(st->shards[i].dir);
    rn__shard_free_producers(&st->shards[i]);
  }
  rn__dedup_free(st->dedup);
  free(st->dedup_field);
  free(st->shards);
  free(st->name);
  free(st);
}

/* Give st its dedup window (none for RN_CORE_DEDUP_NONE). The values were
 * validated (create) or decoded (metadata). */
static rn_err_t stream_set_dedup(rn_engine_t *eng, rn_stream_t *st, rn_core_dedup_key_t key, const char *field,
                                 int64_t window_ms) {
  if (key == RN_CORE_DEDUP_NONE) return 0;
  st->dedup_key = key;
  st->dedup_window_ms = window_ms;
  if (key == RN_CORE_DEDUP_FIELD && !(st->dedup_field = strdup(field))) return RN_ENOMEM;
  st->dedup = rn__dedup_new(window_ms, eng->opts.dedup_max_ids);
  return st->dedup ? 0 : RN_ENOMEM;
}

static rn_err_t registry_add(rn_engine_t *eng, rn_stream_t *st) {
  if (eng->nstreams == eng->streams_cap) {
    uint32_t nc = eng->streams_cap ? eng->streams_cap * 2 : 16;
    rn_stream_t **n = realloc(eng->streams, nc * sizeof(*n));
    if (!n) return RN_ENOMEM;
    eng->streams = n;
    eng->streams_cap = nc;
  }
  eng->streams[eng->nstreams++] = st;
  return 0;
}

static void registry_remove(rn_engine_t *eng, rn_stream_t *st) {
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    if (eng->streams[i] == st) {
      memmove(eng->streams + i, eng->streams + i + 1, (eng->nstreams - i - 1) * sizeof(*eng->streams));
      eng->nstreams--;
      return;
    }
  }
}

/* ---- subsystems' events -------------------------------------------------------------------- */

static void notify_created(rn_engine_t *eng, rn_stream_t *st) {
  for (int s = 0; s < RN_SUB__COUNT; s++) {
    const rn_core_listener_t *l = &eng->listeners[s];
    if (!eng->listening[s]) continue;
    if (l->stream_created) l->stream_created(l->arg, st);
    for (uint32_t k = 0; l->shard_opened && k < st->nshards; k++) l->shard_opened(l->arg, &st->shards[k]);
  }
}

static void notify_deleting(rn_engine_t *eng, rn_stream_t *st) {
  for (int s = 0; s < RN_SUB__COUNT; s++) {
    const rn_core_listener_t *l = &eng->listeners[s];
    if (eng->listening[s] && l->stream_deleting) l->stream_deleting(l->arg, st);
  }
}

/* The stream's shards are about to be closed and freed. */
static void notify_closing(rn_engine_t *eng, rn_stream_t *st) {
  for (int s = 0; s < RN_SUB__COUNT; s++) {
    const rn_core_listener_t *l = &eng->listeners[s];
    for (uint32_t k = 0; eng->listening[s] && l->shard_closing && k < st->nshards; k++) l->shard_closing(l->arg, &st->shards[k]);
  }
}

void rn_core_listen(rn_core_t *core, rn_core_sub_t sub, const rn_core_listener_t *l) {
  assert((unsigned)sub < RN_SUB__COUNT);
  core->listening[sub] = l != NULL;
  memset(&core->listeners[sub], 0, sizeof(core->listeners[sub]));
  if (!l) return;
  core->listeners[sub] = *l;
  for (uint32_t i = 0; i < core->nstreams; i++) {
    rn_stream_t *st = core->streams[i];
    if (st->state != RN__STREAM_ACTIVE) continue;
    if (l->stream_created) l->stream_created(l->arg, st);
    for (uint32_t k = 0; l->shard_opened && k < st->nshards; k++) l->shard_opened(l->arg, &st->shards[k]);
  }
}

/* ---- metadata ------------------------------------------------------------------------ */

/* Serialise the registry (active streams only) as the newest snapshot. */
static rn_err_t meta_snapshot(rn_engine_t *eng) {
  rn__meta_t m = {.next_uid = eng->next_uid, .producer_id_limit = eng->producer_id_limit};
  m.streams = calloc(eng->nstreams + 1, sizeof(*m.streams));
  if (!m.streams) return RN_ENOMEM;
  rn_err_t err = 0;
  for (uint32_t i = 0; i < eng->nstreams && !err; i++) {
    rn_stream_t *st = eng->streams[i];
    if (st->state != RN__STREAM_ACTIVE) continue;
    rn__meta_stream_t *ms = &m.streams[m.nstreams++];
    ms->name = st->name;
    ms->uid = st->uid;
    ms->nshards = st->nshards;
    ms->retention_ms = st->retention_ms;
    ms->retention_bytes = st->retention_bytes;
    ms->durability = st->durability;
    ms->created_ms = st->created_ms;
    ms->tiered = st->tiered;
    ms->local_retention_ms = st->local_retention_ms;
    ms->local_retention_bytes = st->local_retention_bytes;
    ms->dedup_key = st->dedup_key;
    ms->dedup_field = st->dedup_field; /* borrowed: only shards are freed below */
    ms->dedup_window_ms = st->dedup_window_ms;
    ms->shards = calloc(st->nshards, sizeof(*ms->shards));
    if (!ms->shards) {
      err = RN_ENOMEM;
      break;
    }
    for (uint32_t k = 0; k < st->nshards; k++) {
      const rn_shard_t *sh = &st->shards[k];
      rn__meta_shard_t *x = &ms->shards[k];
      memcpy(x->hk_start, sh->hk_start, 16);
      memcpy(x->hk_end, sh->hk_end, 16);
      x->state = sh->state;
      x->nparents = sh->nparents;
      memcpy(x->parents, sh->parents, sizeof(x->parents));
      x->nchildren = sh->nchildren;
      memcpy(x->children, sh->children, sizeof(x->children));
    }
  }
  uint8_t *buf = NULL;
  size_t len = 0;
  if (!err) err = rn__meta_encode(&m, &buf, &len);
  if (!err) {
    pthread_mutex_lock(&eng->meta_mu);
    free(eng->meta_buf);
    eng->meta_buf = buf;
    eng->meta_len = len;
    pthread_mutex_unlock(&eng->meta_mu);
  }
  for (size_t i = 0; i < m.nstreams; i++) free(m.streams[i].shards);
  free(m.streams);
  return err;
}

/* Thread pool: write the newest snapshot if it is newer than what is on
 * disk. The loop never waits for a write: meta_mu guards only the hand-over
 * of the newest buffer (the loop swaps a pointer under it, meta_snapshot),
 * while meta_write_mu, taken by writers alone, serialises the saves so what
 * is on disk only moves forward. A non-NULL slot is a snapshot not yet on
 * disk: a writer takes it out for the save and puts it back only when the
 * save failed and nothing newer arrived meanwhile (the next write retries
 * it, so a job whose snapshot a failed writer took still gets it saved). An
 * empty slot means the newest snapshot is on disk: nothing to do. */
static rn_err_t meta_write_newest(rn_engine_t *eng) {
  pthread_mutex_lock(&eng->meta_write_mu);
  pthread_mutex_lock(&eng->meta_mu);
  uint8_t *buf = eng->meta_buf;
  size_t len = eng->meta_len;
  eng->meta_buf = NULL;
  pthread_mutex_unlock(&eng->meta_mu);
  rn_err_t err = 0;
  if (buf) {
    err = eng->meta->ops->save(eng->meta, buf, len);
    pthread_mutex_lock(&eng->meta_mu);
    if (err && eng->meta_buf == NULL) {
      eng->meta_buf = buf; /* nothing newer: keep it for the retry */
      buf = NULL;
    }
    pthread_mutex_unlock(&eng->meta_mu);
    free(buf);
  }
  pthread_mutex_unlock(&eng->meta_write_mu);
  return err;
}

/* The continuation of a metadata write: which operation, and its caller. */
typedef struct meta_job {
  uv_work_t work;
  rn_engine_t *eng;
  rn_err_t err;
  void (*done)(struct meta_job *job);
  rn_stream_t *st;
  union {
    rn_core_create_cb create;
    rn_core_delete_cb del;
    rn_core_retention_cb retention;
    rn_core_producer_cb producer;
  } cb;
  void *ctx;
  uint64_t u64;
} meta_job_t;

static void meta_work(uv_work_t *w) {
  meta_job_t *j = w->data;
  j->err = meta_write_newest(j->eng);
}

static void meta_after(uv_work_t *w, int status) {
  meta_job_t *j = w->data;
  j->eng->pending_work--;
  if (status && !j->err) j->err = RN_EIO;
  if (j->err) rn__eng_say(j->eng, RN_LVL_ERROR, "writing metadata failed: %s", rn_strerror(j->err));
  j->done(j);
  free(j);
}

/* Snapshot now, write on the thread pool, then j->done on the loop. */
static void meta_persist(rn_engine_t *eng, meta_job_t *j) {
  j->eng = eng;
  j->work.data = j;
  j->err = meta_snapshot(eng);
  if (j->err) {
    j->done(j);
    free(j);
    return;
  }
  rn__queue_work(eng, &j->work, meta_work, meta_after);
}

static meta_job_t *meta_job_new(void (*done)(meta_job_t *), void *ctx) {
  meta_job_t *j = rn_xcalloc(1, sizeof(*j));
  j->done = done;
  j->ctx = ctx;
  return j;
}

/* ---- describe ---------------------------------------------------------------------- */

const char *rn_core_stream_state_name(rn_core_stream_state_t s) {
  switch (s) {
  case RN_CORE_STREAM_CREATING: return "CREATING";
  case RN_CORE_STREAM_ACTIVE: return "ACTIVE";
  case RN_CORE_STREAM_DELETING: return "DELETING";
  case RN_CORE_STREAM_CLOSING: return "CLOSING";
  }
  return "UNKNOWN";
}

static const rn_core_stream_desc_t *describe(rn_arena_t *a, const rn_stream_t *st) {
  rn_core_stream_desc_t *d = rn_arena_alloc(a, sizeof(*d));
  d->name = st->name;
  d->nshards = st->nshards;
  d->retention_ms = st->retention_ms > 0 ? st->retention_ms : -1; /* described: -1 = forever */
  d->retention_bytes = st->retention_bytes > 0 ? st->retention_bytes : -1;
  d->durability = st->durability;
  d->created_ms = st->created_ms;
  d->state = st->state;
  d->tiered = st->tiered;
  if (st->tiered) {
    d->local_retention_ms = st->local_retention_ms > 0 ? st->local_retention_ms : -1;
    d->local_retention_bytes = st->local_retention_bytes > 0 ? st->local_retention_bytes : -1;
  }
  d->dedup_key = st->dedup_key;
  d->dedup_field = st->dedup_field;
  d->dedup_window_ms = st->dedup_window_ms;
  d->replication = st->replication;
  d->min_insync = st->min_insync;
  rn_core_shard_desc_t *shards = rn_arena_alloc(a, (st->nshards + 1) * sizeof(*shards));
  for (uint32_t i = 0; i < st->nshards; i++) {
    const rn_shard_t *sh = &st->shards[i];
    rn_core_shard_desc_t *si = &shards[i];
    si->index = i;
    memcpy(si->hash_start, sh->hk_start, 16);
    memcpy(si->hash_end, sh->hk_end, 16);
    si->state = sh->state;
    si->parents = sh->nparents ? sh->parents : NULL;
    si->nparents = sh->nparents;
    si->children = sh->nchildren ? sh->children : NULL;
    si->nchildren = sh->nchildren;
    si->placement = sh->placement;
    if (sh->log) {
      si->start_offset = rn__shard_start(sh);
      si->end_offset = rn__shard_visible_end(sh);
      si->stored_bytes = rn_log_size_bytes(sh->log);
    }
    if (sh->tier) {
      rn_tier_shard_stats_t ts;
      rn_tier_shard_stats(sh->tier, &ts);
      si->remote_start_offset = si->start_offset;
      si->local_start_offset = rn_log_start(sh->log);
      si->remote_bytes = ts.remote_bytes;
      si->remote_segments = ts.remote_segments;
      si->local_segments = rn_log_segment_count(sh->log);
      si->backlog_bytes = ts.backlog_bytes;
      si->backlog_segments = ts.backlog_segments;
      si->backlog_age_ms = ts.backlog_age_ms;
    }
    si->last_append_ms = sh->last_append_ms;
  }
  d->shards = shards;
  return d;
}

/* ---- deleting: closing a stream's logs off the loop ------------------------------------------
 * A deleted stream that no request holds any more (refs 0, state DELETING)
 * is "doomed". Its logs are failed at once (nothing new is submitted; what
 * was not written completes with RN_ECANCELED) and, once none of them has
 * I/O in flight, closed on the thread pool together with the removal of
 * the stream's directory: closing segment files and unlinking them are
 * file-system calls that may block. Only then is the stream freed. */

typedef struct rm_job {
  uv_work_t work;
  rn_engine_t *eng;
  rn_stream_t *st; /* NULL: only remove path */
  char *path;
} rm_job_t;

/* Remove a directory tree (thread pool). */
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void rm_work(uv_work_t *w) {
  rm_job_t *j = w->data;
  if (j->st)
    for (uint32_t i = 0; i < j->st->nshards; i++) {
      rn_log_close_discard(j->st->shards[i].log); /* no I/O in flight: only closes files */
      j->st->shards[i].log = NULL;
    }
  if (j->path) nftw(j->path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void rm_after(uv_work_t *w, int status) {
  (void)status;
  rm_job_t *j = w->data;
  j->eng->pending_work--;
  stream_free(j->st);
  free(j->path);
  free(j);
}

/* Close st's logs (st may be NULL) and remove path (taken; may be NULL) on
 * the thread pool, then free st. */
static void close_and_remove_async(rn_engine_t *eng, rn_stream_t *st, char *path) {
  rm_job_t *j = rn_xcalloc(1, sizeof(*j));
  j->eng = eng;
  j->st = st;
  j->path = path;
  j->work.data = j;
  eng->pending_work++;
  if (uv_queue_work(eng->loop, &j->work, rm_work, rm_after)) {
    /* No thread pool: do it here rather than leak the files. */
    eng->pending_work++;
    rm_work(&j->work);
    rm_after(&j->work, 0);
    eng->pending_work--;
  }
}

static bool stream_io_idle(const rn_stream_t *st) {
  for (uint32_t i = 0; i < st->nshards; i++)
    if (st->shards[i].log && rn_log_inflight(st->shards[i].log)) return false;
  return true;
}

/* DELETING -> CLOSING: no request holds st any more. Subsystems drop their
 * slots; the logs are failed so nothing new is submitted (what was not
 * written completes with RN_ECANCELED). From the reaper, never inside a
 * log's own callback. */
static void stream_begin_close(rn_engine_t *eng, rn_stream_t *st) {
  assert(st->state == RN__STREAM_DELETING);
  st->state = RN_CORE_STREAM_CLOSING;
  notify_closing(eng, st);
  rn__tier_stream_closing(eng, st); /* before the logs: the tier reads them */
  for (uint32_t i = 0; i < st->nshards; i++) rn_log_discard_begin(st->shards[i].log);
}

/* Every loop iteration while streams are doomed: fail their logs, then
 * hand the ones whose I/O completed to the thread pool. */
static void on_reap(uv_check_t *h) {
  rn_engine_t *eng = h->data;
  for (uint32_t i = 0; i < eng->ndoomed;) {
    rn_stream_t *st = eng->doomed[i];
    if (st->state == RN__STREAM_DELETING) stream_begin_close(eng, st);
    if (!stream_io_idle(st)) {
      i++;
      continue;
    }
    eng->doomed[i] = eng->doomed[--eng->ndoomed];
    close_and_remove_async(eng, st, stream_dir(eng, st->name, st->uid));
  }
  if (eng->ndoomed == 0) uv_check_stop(&eng->reaper);
}

void rn__stream_unref(rn_engine_t *eng, rn_stream_t *st) {
  assert(st->refs > 0); /* so a stream is doomed exactly once */
  if (--st->refs != 0 || st->state != RN__STREAM_DELETING) return;
  if (eng->ndoomed == eng->doomed_cap) {
    uint32_t nc = eng->doomed_cap ? eng->doomed_cap * 2 : 8;
    rn_stream_t **n = rn_xrealloc(eng->doomed, nc * sizeof(*n));
    eng->doomed = n;
    eng->doomed_cap = nc;
  }
  eng->doomed[eng->ndoomed++] = st;
  uv_check_start(&eng->reaper, on_reap);
}

/* ---- admin operations ----------------------------------------------------------------- */

typedef struct create_job {
  uv_work_t work;
  rn_engine_t *eng;
  rn_stream_t *st;
  rn_core_create_cb cb; /* also a restore's (rn_core_restore_cb: the same result type) */
  void *ctx;
  uint64_t *first_offsets; /* a restore's, per shard (owned); NULL for a create */
  const char *what;        /* "creating" or "restoring" */
  rn_err_t err;
  char why[512];
} create_job_t;

static void create_work(uv_work_t *w) {
  create_job_t *j = w->data;
  j->err = stream_open_logs(j->eng, j->st, j->first_offsets, j->why, sizeof(j->why));
}

static void create_meta_done(meta_job_t *j) {
  rn_engine_t *eng = j->eng;
  rn_stream_t *st = j->st;
  if (j->err) {
    /* Not durable: undo. The directory is removed (an orphan at worst). */
    st->state = RN__STREAM_DELETING;
    registry_remove(eng, st);
    eng->stats.streams--;
    eng->stats.shards -= st->nshards;
    FAIL(rn_core_create_result_t, j->cb.create, j->ctx, j->err, "stream %s: writing metadata failed: %s", st->name,
         rn_strerror(j->err));
    rn__stream_unref(eng, st); /* the registry's */
    rn__stream_unref(eng, st); /* the create work's */
    return;
  }
  rn_arena_t a = {0};
  rn_core_create_result_t r = {0};
  r.stream = describe(&a, st);
  if (st->tiered)
    rn__eng_say(eng, RN_LVL_INFO, "%s stream %s (%u shards, %s, tiered)", j->u64 ? "restored" : "created", st->name,
                st->nshards, rn_durability_name(st->durability));
  else
    rn__eng_say(eng, RN_LVL_INFO, "created stream %s (%u shards, %s)", st->name, st->nshards,
                rn_durability_name(st->durability));
  notify_created(eng, st);
  if (!j->u64) rn__tier_stream_changed(eng, st); /* its descriptor (a restored one is in the store) */
  j->cb.create(j->ctx, &r);
  rn_arena_free(&a);
  rn__stream_unref(eng, st);
}

static void create_after(uv_work_t *w, int status) {
  create_job_t *j = w->data;
  rn_engine_t *eng = j->eng;
  rn_stream_t *st = j->st;
  eng->pending_work--;
  if (st->tiered) rn__tier_opening_end(eng);
  if (status && !j->err) j->err = RN_EIO;
  bool restore = j->first_offsets != NULL;
  free(j->first_offsets);
  if (j->err) {
    rn__eng_say(eng, RN_LVL_ERROR, "%s stream %s failed: %s", j->what, st->name, j->why[0] ? j->why : rn_strerror(j->err));
    st->state = RN__STREAM_DELETING;
    registry_remove(eng, st);
    FAIL(rn_core_create_result_t, j->cb, j->ctx, j->err, "stream %s: %s", st->name, j->why[0] ? j->why : rn_strerror(j->err));
    rn__stream_unref(eng, st); /* the registry's */
    rn__stream_unref(eng, st); /* the create work's */
    free(j);
    return;
  }
  st->state = RN__STREAM_ACTIVE;
  eng->stats.streams++;
  eng->stats.shards += st->nshards;
  meta_job_t *mj = meta_job_new(create_meta_done, j->ctx);
  mj->cb.create = j->cb;
  mj->st = st;
  mj->u64 = restore;
  free(j);
  meta_persist(eng, mj);
}

/* Open st's logs (and tiers) on the thread pool, then make it ACTIVE and
 * durable in the metadata; cb (a create's or a restore's) answers. */
static void create_open(rn_engine_t *eng, rn_stream_t *st, uint64_t *first_offsets, const char *what,
                        rn_core_create_cb cb, void *ctx) {
  create_job_t *j = rn_xcalloc(1, sizeof(*j));
  j->eng = eng;
  j->st = st;
  j->cb = cb;
  j->ctx = ctx;
  j->first_offsets = first_offsets;
  j->what = what;
  j->work.data = j;
  if (st->tiered) rn__tier_opening_begin(eng);
  rn__queue_work(eng, &j->work, create_work, create_after);
}

void rn_core_create_stream(rn_core_t *eng, const rn_core_create_req_t *c, rn_core_create_cb cb, void *ctx) {
  const char *name = c->name ? c->name : "";
  char why[256];
  if (rn_name_check_stream(name, strlen(name), why, sizeof why)) {
    FAIL(rn_core_create_result_t, cb, ctx, RN_EINVAL, "%s", why);
    return;
  }
  if (c->shard_count < 1 || c->shard_count > eng->opts.max_shards) {
    FAIL(rn_core_create_result_t, cb, ctx, RN_EINVAL, "shard count %u is out of range 1..%u", c->shard_count, eng->opts.max_shards);
    return;
  }
  if ((unsigned)c->durability > RN_DURABILITY_NONE) {
    FAIL(rn_core_create_result_t, cb, ctx, RN_EINVAL, "unknown durability %d", (int)c->durability);
    return;
  }
  if (eng->draining) {
    FAIL(rn_core_create_result_t, cb, ctx, RN_ESHUTDOWN, "broker is shutting down");
    return;
  }
  if (rn__stream_find(eng, name)) {
    FAIL(rn_core_create_result_t, cb, ctx, RN_EEXIST, "stream %s already exists", name);
    return;
  }
  if ((unsigned)c->tiering > RN_CORE_TIERING_DEFAULT) {
    FAIL(rn_core_create_result_t, cb, ctx, RN_EINVAL, "unknown tiering %d", (int)c->tiering);
    return;
  }
  bool tiered = c->tiering == RN_CORE_TIERING_ON ||
                (c->tiering == RN_CORE_TIERING_DEFAULT && eng->opts.tier.default_local_retention_ms != 0 && eng->tier);
  if (tiered && !eng->tier) {
    FAIL(rn_core_create_result_t, cb, ctx, RN_EINVAL,
         "stream %s: tiering needs s3_bucket or tier_dir in the broker's configuration", name);
    return;
  }
  if (!tiered && (c->local_retention_ms || c->local_retention_bytes)) {
    FAIL(rn_core_create_result_t, cb, ctx, RN_EINVAL, "stream %s: a local retention needs a tiered stream", name);
    return;
  }
  char dwhy[300];
  if (check_dedup(eng, c, dwhy, sizeof dwhy)) {
    FAIL(rn_core_create_result_t, cb, ctx, RN_EINVAL, "stream %s: %s", name, dwhy);
    return;
  }
  uint32_t copies = c->replication ? c->replication : 1;
  if (copies > RN_CORE_MAX_REPLICAS || c->min_insync > copies) {
    FAIL(rn_core_create_result_t, cb, ctx, RN_EINVAL,
         "stream %s: replication %u / min-insync %u: replication is 1..%u and min-insync at most the replication",
         name, c->replication, c->min_insync, RN_CORE_MAX_REPLICAS);
    return;
  }
  if (eng->opts.cluster && !c->local) {
    if (!eng->repl.create_stream) {
      FAIL(rn_core_create_result_t, cb, ctx, RN_ENOTSUP, "stream %s: the cluster layer is not running", name);
      return;
    }
    eng->repl.create_stream(eng->repl.arg, c, cb, ctx);
    return;
  }
  if (!eng->opts.cluster && copies > 1) {
    FAIL(rn_core_create_result_t, cb, ctx, RN_EINVAL,
         "stream %s: replication %u needs a cluster (runneld --etcd ...); a single broker keeps one copy", name,
         c->replication);
    return;
  }
  rn_stream_t *st = stream_new(eng, name, c->shard_count);
  if (!st) {
    FAIL(rn_core_create_result_t, cb, ctx, RN_ENOMEM, "out of memory");
    return;
  }
  if (c->uid) {
    st->uid = c->uid; /* the cluster's: the same on every replica */
    if (eng->next_uid <= c->uid) eng->next_uid = c->uid + 1;
  } else {
    st->uid = eng->next_uid++;
  }
  st->retention_ms = requested_retention_ms(eng, c->retention_ms);
  st->retention_bytes = c->retention_bytes > 0 ? c->retention_bytes : 0;
  warn_absurd_retention(eng, st->name, st->retention_ms, st->retention_bytes);
  st->durability = c->durability;
  st->replication = c->replication;
  st->min_insync = c->min_insync;
  st->created_ms = rn__now_ms(eng);
  st->tiered = tiered;
  if (tiered) {
    int64_t lr = c->local_retention_ms ? c->local_retention_ms : eng->opts.tier.default_local_retention_ms;
    st->local_retention_ms = lr > 0 ? lr : 0;
    st->local_retention_bytes = c->local_retention_bytes > 0 ? c->local_retention_bytes : 0;
    warn_local_retention(eng, st);
  }
  if (stream_set_dedup(eng, st, c->dedup_key, c->dedup_field, c->dedup_window_ms)) {
    stream_free(st);
    FAIL(rn_core_create_result_t, cb, ctx, RN_ENOMEM, "out of memory");
    return;
  }
  st->state = RN__STREAM_CREATING;
  /* Two references, as a stream loaded at open holds one: the registry's
   * (dropped by delete or a failed create) and the create work's (dropped
   * by create_meta_done). */
  st->refs = 2;
  if (registry_add(eng, st)) {
    stream_free(st);
    FAIL(rn_core_create_result_t, cb, ctx, RN_ENOMEM, "out of memory");
    return;
  }
  create_open(eng, st, NULL, "creating", cb, ctx);
}

/* ---- restore (tiered storage) ------------------------------------------------------------------
 * A restore rebuilds a tiered stream from its object store, in four steps,
 * each answered on the loop:
 *   1. rn_tier_get_stream: the descriptor (a StreamMeta, meta.c's codec);
 *      the stream is registered CREATING with its old uid and ranges, so a
 *      create of the same name meanwhile gets RN_EEXIST;
 *   2. on the thread pool: the stream's directory is removed if a leftover
 *      (the registry does not know it) and every shard directory made;
 *   3. per shard, rn_tier_restore_shard: its manifest into the shard
 *      directory and the offset after its last uploaded segment (a shard
 *      that never uploaded anything has no manifest: it starts at 0);
 *   4. create_open: the logs open at those offsets, the tiers attach, the
 *      stream becomes ACTIVE and durable in the metadata.
 * Any failure unregisters the stream and removes its local files; its
 * objects are never touched (delete_objects stays false). */

typedef struct restore_op {
  uv_work_t work;
  rn_engine_t *eng;
  char *name;
  rn_stream_t *st;
  rn_core_restore_cb cb;
  void *ctx;
  uint32_t pending; /* shard restores in flight */
  uint64_t *first;  /* per shard */
  rn_err_t err;
  char why[512];
} restore_op_t;

typedef struct restore_shard {
  restore_op_t *op;
  uint32_t shard;
} restore_shard_t;

static void restore_free(restore_op_t *op) {
  free(op->first);
  free(op->name);
  free(op);
}

/* Fail the restore: answer, and undo the registration (the reaper closes
 * and removes what was made locally). */
static void restore_fail(restore_op_t *op) {
  rn_engine_t *eng = op->eng;
  rn__eng_say(eng, RN_LVL_ERROR, "restoring stream %s failed: %s", op->name, op->why[0] ? op->why : rn_strerror(op->err));
  FAIL(rn_core_restore_result_t, op->cb, op->ctx, op->err, "stream %s: %s", op->name,
       op->why[0] ? op->why : rn_strerror(op->err));
  rn_stream_t *st = op->st;
  if (st) {
    st->state = RN__STREAM_DELETING;
    registry_remove(eng, st);
    rn__stream_unref(eng, st); /* the registry's */
    rn__stream_unref(eng, st); /* the restore's */
  }
  restore_free(op);
}

static void restore_step(restore_op_t *op);

static void restore_shard_done(void *arg, rn_err_t err, uint64_t offset) {
  restore_shard_t *rs = arg;
  restore_op_t *op = rs->op;
  if (err == RN_ENOENT) {
    offset = 0; /* nothing was ever uploaded from this shard */
    err = 0;
  }
  if (err && !op->err) {
    op->err = err;
    snprintf(op->why, sizeof op->why, "shard %u: its manifest could not be restored from the store: %s", rs->shard,
             rn__tier_err_text(err));
  }
  if (!err) op->first[rs->shard] = offset;
  free(rs);
  restore_step(op);
}

/* One shard restore (or the submitting guard) finished. */
static void restore_step(restore_op_t *op) {
  if (--op->pending) return;
  if (op->err || op->eng->draining) {
    if (!op->err) op->err = RN_ESHUTDOWN;
    return restore_fail(op);
  }
  /* 4. Open at those offsets; create_open answers from now on. */
  uint64_t *first = op->first;
  op->first = NULL;
  rn_stream_t *st = op->st;
  rn_core_restore_cb cb = op->cb;
  void *ctx = op->ctx;
  restore_free(op);
  create_open(st->core, st, first, "restoring", cb, ctx);
}

/* 2. Thread pool: a clean directory per shard. */
static void restore_dirs_work(uv_work_t *w) {
  restore_op_t *op = w->data;
  rn_stream_t *st = op->st;
  char *dir = stream_dir(op->eng, st->name, st->uid);
  if (!dir) {
    op->err = RN_ENOMEM;
    return;
  }
  struct stat sb;
  if (stat(dir, &sb) == 0) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); /* a leftover: not in the registry */
  free(dir);
  rn_fs_t *fs = rn_io_fs(op->eng->io);
  for (uint32_t i = 0; i < st->nshards && !op->err; i++) {
    op->err = fs->mkdirs(fs, st->shards[i].dir);
    if (op->err) snprintf(op->why, sizeof op->why, "cannot create %s: %s", st->shards[i].dir, rn_strerror(op->err));
  }
}

/* 3. Every shard's manifest. */
static void restore_dirs_after(uv_work_t *w, int status) {
  restore_op_t *op = w->data;
  rn_engine_t *eng = op->eng;
  eng->pending_work--;
  if (status && !op->err) op->err = RN_EIO;
  if (!op->err && eng->draining) op->err = RN_ESHUTDOWN;
  if (op->err) return restore_fail(op);
  rn_stream_t *st = op->st;
  op->pending = 1; /* a guard while submitting */
  for (uint32_t i = 0; i < st->nshards; i++) {
    restore_shard_t *rs = rn_xcalloc(1, sizeof(*rs));
    rs->op = op;
    rs->shard = i;
    op->pending++;
    rn_err_t err = rn_tier_restore_shard(eng->tier, st->name, st->uid, i, st->shards[i].dir, restore_shard_done, rs);
    if (err) restore_shard_done(rs, err, 0); /* no callback will come */
  }
  restore_step(op); /* drops the guard */
}

/* 1. The descriptor. */
static void restore_got_desc(void *arg, const rn_obj_result_t *r, uint8_t *data, size_t len) {
  restore_op_t *op = arg;
  rn_engine_t *eng = op->eng;
  if (r->err) {
    op->err = r->err;
    if (r->err == RN_ENOENT)
      snprintf(op->why, sizeof op->why, "the store (%s) has no stream %s", eng->tier_location, op->name);
    else
      snprintf(op->why, sizeof op->why, "reading its descriptor from the store failed: %s",
               r->message[0] ? r->message : rn__tier_err_text(r->err));
    free(data);
    return restore_fail(op);
  }
  rn__meta_stream_t ms;
  char what[300];
  snprintf(what, sizeof what, "the descriptor of stream %s in the store", op->name);
  op->err = rn__meta_stream_decode(data, len, &ms, what, op->why, sizeof op->why);
  free(data);
  if (op->err) return restore_fail(op);
  if (strcmp(ms.name, op->name) != 0 || !ms.tiered || ms.nshards < 1 || ms.nshards > eng->opts.max_shards) {
    op->err = RN_ECORRUPT;
    snprintf(op->why, sizeof op->why, "%s describes %s (%u shards%s): not a stream this broker can restore", what,
             ms.name, ms.nshards, ms.tiered ? "" : ", not tiered");
    rn__meta_stream_free(&ms);
    return restore_fail(op);
  }
  for (uint32_t i = 0; i < eng->nstreams; i++)
    if (eng->streams[i]->uid == ms.uid) {
      op->err = RN_EEXIST;
      snprintf(op->why, sizeof op->why,
               "its uid %" PRIu64 " is the uid of stream %s on this broker: restore it onto a broker without it",
               ms.uid, eng->streams[i]->name);
      rn__meta_stream_free(&ms);
      return restore_fail(op);
    }
  if (rn__stream_find(eng, op->name) || eng->draining) {
    op->err = eng->draining ? RN_ESHUTDOWN : RN_EEXIST;
    snprintf(op->why, sizeof op->why, "%s", eng->draining ? "broker is shutting down" : "it was created meanwhile");
    rn__meta_stream_free(&ms);
    return restore_fail(op);
  }
  rn_stream_t *st = stream_new(eng, ms.name, ms.nshards);
  if (!st) {
    rn__meta_stream_free(&ms);
    op->err = RN_ENOMEM;
    return restore_fail(op);
  }
  st->uid = ms.uid;
  st->retention_ms = ms.retention_ms;
  st->retention_bytes = ms.retention_bytes;
  st->durability = ms.durability;
  st->created_ms = ms.created_ms;
  st->tiered = true;
  st->local_retention_ms = ms.local_retention_ms;
  st->local_retention_bytes = ms.local_retention_bytes;
  if (stream_set_dedup(eng, st, ms.dedup_key, ms.dedup_field, ms.dedup_window_ms)) {
    rn__meta_stream_free(&ms);
    stream_free(st);
    op->err = RN_ENOMEM;
    return restore_fail(op);
  }
  for (uint32_t k = 0; k < st->nshards; k++) {
    rn_shard_t *sh = &st->shards[k];
    const rn__meta_shard_t *x = &ms.shards[k];
    memcpy(sh->hk_start, x->hk_start, 16);
    memcpy(sh->hk_end, x->hk_end, 16);
    sh->state = x->state;
    sh->nparents = x->nparents;
    memcpy(sh->parents, x->parents, sizeof(sh->parents));
    sh->nchildren = x->nchildren;
    memcpy(sh->children, x->children, sizeof(sh->children));
  }
  rn__meta_stream_free(&ms);
  /* The uid names the stream's objects: it stays. New streams get uids
   * past it, so they never meet these objects. */
  if (eng->next_uid <= st->uid) eng->next_uid = st->uid + 1;
  st->state = RN__STREAM_CREATING;
  st->refs = 2; /* the registry's and the restore's, as a create */
  op->first = rn_xcalloc(st->nshards + 1, sizeof(*op->first));
  if (registry_add(eng, st) || stream_set_dirs(eng, st)) {
    registry_remove(eng, st);
    stream_free(st);
    op->err = RN_ENOMEM;
    return restore_fail(op);
  }
  op->st = st;
  op->work.data = op;
  rn__queue_work(eng, &op->work, restore_dirs_work, restore_dirs_after);
}

void rn_core_restore_stream(rn_core_t *eng, const rn_core_restore_req_t *req, rn_core_restore_cb cb, void *ctx) {
  const char *name = req->name ? req->name : "";
  char why[256];
  if (rn_name_check_stream(name, strlen(name), why, sizeof why)) {
    FAIL(rn_core_restore_result_t, cb, ctx, RN_EINVAL, "%s", why);
    return;
  }
  if (!eng->tier) {
    FAIL(rn_core_restore_result_t, cb, ctx, RN_EINVAL,
         "stream %s: restoring needs the stream's store: tiering needs s3_bucket or tier_dir in the broker's "
         "configuration", name);
    return;
  }
  if (eng->draining) {
    FAIL(rn_core_restore_result_t, cb, ctx, RN_ESHUTDOWN, "broker is shutting down");
    return;
  }
  if (rn__stream_find(eng, name)) {
    FAIL(rn_core_restore_result_t, cb, ctx, RN_EEXIST,
         "stream %s exists on this broker: a restore only recreates a stream this broker does not have (delete "
         "it first, which also deletes its objects)",
         name);
    return;
  }
  restore_op_t *op = rn_xcalloc(1, sizeof(*op));
  op->eng = eng;
  op->name = rn_xstrdup(name);
  op->cb = cb;
  op->ctx = ctx;
  rn_err_t err = rn_tier_get_stream(eng->tier, name, restore_got_desc, op);
  if (err) {
    op->err = err;
    snprintf(op->why, sizeof op->why, "reading its descriptor from the store: %s", rn_strerror(err));
    restore_fail(op);
  }
}

static void delete_meta_done(meta_job_t *j) {
  rn_engine_t *eng = j->eng;
  if (j->err) {
    FAIL(rn_core_delete_result_t, j->cb.del, j->ctx, j->err,
         "stream %s: deleted, but writing metadata failed (%s): it may reappear after a restart", j->st->name,
         rn_strerror(j->err));
  } else {
    rn_core_delete_result_t r = {0};
    j->cb.del(j->ctx, &r);
  }
  rn__eng_say(eng, RN_LVL_INFO, "deleted stream %s", j->st->name);
  rn__stream_unref(eng, j->st);
}

void rn_core_delete_stream(rn_core_t *eng, const rn_core_delete_req_t *r, rn_core_delete_cb cb, void *ctx) {
  const char *name = r->name ? r->name : "";
  if (eng->opts.cluster && !r->local) {
    if (!eng->repl.delete_stream) {
      FAIL(rn_core_delete_result_t, cb, ctx, RN_ENOTSUP, "stream %s: the cluster layer is not running", name);
      return;
    }
    eng->repl.delete_stream(eng->repl.arg, r, cb, ctx);
    return;
  }
  rn_stream_t *st = rn__stream_find(eng, name);
  if (!st || st->state == RN__STREAM_DELETING) {
    FAIL(rn_core_delete_result_t, cb, ctx, RN_ENOSTREAM, "stream %s not found", name);
    return;
  }
  if (st->state == RN__STREAM_CREATING) {
    FAIL(rn_core_delete_result_t, cb, ctx, RN_EBUSY, "stream %s is still being created", name);
    return;
  }
  st->state = RN__STREAM_DELETING;
  st->delete_objects = st->tiered; /* its objects go too, by a durable job once it closes */
  notify_deleting(eng, st);
  registry_remove(eng, st);
  eng->stats.streams--;
  eng->stats.shards -= st->nshards;
  for (uint32_t i = 0; i < st->nshards; i++) rn__shard_wake_all(eng, &st->shards[i]);
  st->refs++;
  meta_job_t *mj = meta_job_new(delete_meta_done, ctx);
  mj->cb.del = cb;
  mj->st = st;
  meta_persist(eng, mj);
  /* The registry's own reference: */
  rn__stream_unref(eng, st);
}

void rn_core_list_streams(rn_core_t *eng, rn_core_list_cb cb, void *ctx) {
  rn_arena_t a = {0};
  rn_core_list_result_t r = {0};
  const char **names = rn_arena_alloc(&a, (eng->nstreams + 1) * sizeof(char *));
  for (uint32_t i = 0; i < eng->nstreams; i++)
    if (eng->streams[i]->state == RN__STREAM_ACTIVE) names[r.nnames++] = eng->streams[i]->name;
  r.names = names;
  cb(ctx, &r);
  rn_arena_free(&a);
}

void rn_core_describe_stream(rn_core_t *eng, const rn_core_describe_req_t *req, rn_core_describe_cb cb, void *ctx) {
  const char *name = req->name ? req->name : "";
  rn_stream_t *st = rn__stream_find(eng, name);
  if (!st || st->state != RN__STREAM_ACTIVE) {
    FAIL(rn_core_describe_result_t, cb, ctx, RN_ENOSTREAM, "stream %s not found", name);
    return;
  }
  rn_arena_t a = {0};
  rn_core_describe_result_t r = {0};
  r.stream = describe(&a, st);
  cb(ctx, &r);
  rn_arena_free(&a);
}

static void retention_meta_done(meta_job_t *j) {
  if (j->err) {
    FAIL(rn_core_retention_result_t, j->cb.retention, j->ctx, j->err, "stream %s: retention changed but not persisted: %s",
         j->st->name, rn_strerror(j->err));
  } else {
    rn_arena_t a = {0};
    rn_core_retention_result_t r = {0};
    r.stream = describe(&a, j->st);
    j->cb.retention(j->ctx, &r);
    rn_arena_free(&a);
  }
  rn__stream_unref(j->eng, j->st);
}

void rn_core_set_retention(rn_core_t *eng, const rn_core_retention_req_t *req, rn_core_retention_cb cb, void *ctx) {
  const char *name = req->name ? req->name : "";
  rn_stream_t *st = rn__stream_find(eng, name);
  if (!st || st->state != RN__STREAM_ACTIVE) {
    FAIL(rn_core_retention_result_t, cb, ctx, RN_ENOSTREAM, "stream %s not found", name);
    return;
  }
  if (!st->tiered && (req->local_retention_ms || req->local_retention_bytes)) {
    FAIL(rn_core_retention_result_t, cb, ctx, RN_EINVAL,
         "stream %s is not tiered: it has no local retention (its retention is all there is)", name);
    return;
  }
  int64_t new_ret = requested_retention_ms(eng, req->retention_ms);
  if (st->dedup && new_ret > 0 && new_ret < st->dedup_window_ms) {
    FAIL(rn_core_retention_result_t, cb, ctx, RN_EINVAL,
         "stream %s: retention %lld ms would be shorter than its dedup window (%lld ms)", name, (long long)new_ret,
         (long long)st->dedup_window_ms);
    return;
  }
  st->retention_ms = new_ret;
  st->retention_bytes = req->retention_bytes > 0 ? req->retention_bytes : 0;
  warn_absurd_retention(eng, st->name, st->retention_ms, st->retention_bytes);
  if (st->tiered) {
    if (req->local_retention_ms) st->local_retention_ms = req->local_retention_ms > 0 ? req->local_retention_ms : 0;
    if (req->local_retention_bytes)
      st->local_retention_bytes = req->local_retention_bytes > 0 ? req->local_retention_bytes : 0;
    warn_local_retention(eng, st);
    rn__tier_set_retention(st); /* the logs' own retention stays off */
    rn__tier_stream_changed(eng, st);
  } else {
    for (uint32_t i = 0; i < st->nshards; i++)
      rn_log_set_retention(st->shards[i].log, st->retention_ms > 0 ? st->retention_ms : -1,
                           st->retention_bytes > 0 ? st->retention_bytes : -1);
  }
  st->refs++;
  meta_job_t *mj = meta_job_new(retention_meta_done, ctx);
  mj->cb.retention = cb;
  mj->st = st;
  meta_persist(eng, mj);
}

static void reply_producer(rn_engine_t *eng, rn_core_producer_cb cb, void *ctx, uint64_t id) {
  rn_core_producer_result_t r = {0};
  r.producer_id = ((uint64_t)eng->opts.broker_id << 40) + id;
  r.producer_epoch = 0;
  cb(ctx, &r);
}

static void producer_meta_done(meta_job_t *j) {
  if (j->err)
    FAIL(rn_core_producer_result_t, j->cb.producer, j->ctx, j->err, "cannot persist producer ids: %s", rn_strerror(j->err));
  else
    reply_producer(j->eng, j->cb.producer, j->ctx, j->u64);
}

void rn_core_init_producer(rn_core_t *eng, rn_core_producer_cb cb, void *ctx) {
  uint64_t id = eng->next_producer_id++;
  if (id < eng->producer_id_limit) return reply_producer(eng, cb, ctx, id);
  /* A new block: durable before any id of it is handed out. */
  eng->producer_id_limit = id + PRODUCER_ID_BLOCK;
  meta_job_t *mj = meta_job_new(producer_meta_done, ctx);
  mj->cb.producer = cb;
  mj->u64 = id;
  meta_persist(eng, mj);
}

/* ---- for subsystems ---------------------------------------------------------------------- */

rn_core_stream_t *rn_core_stream_find(rn_core_t *core, const char *name) {
  rn_stream_t *st = name ? rn__stream_find(core, name) : NULL;
  return st && st->state == RN__STREAM_ACTIVE ? st : NULL;
}
void rn_core_stream_ref(rn_core_stream_t *st) { st->refs++; }
void rn_core_stream_unref(rn_core_stream_t *st) { rn__stream_unref(st->core, st); }
const char *rn_core_stream_name(const rn_core_stream_t *st) { return st->name; }
uint64_t rn_core_stream_uid(const rn_core_stream_t *st) { return st->uid; }
rn_core_stream_state_t rn_core_stream_state(const rn_core_stream_t *st) { return st->state; }
uint32_t rn_core_stream_nshards(const rn_core_stream_t *st) { return st->nshards; }
rn_core_shard_t *rn_core_stream_shard(rn_core_stream_t *st, uint32_t i) { return i < st->nshards ? &st->shards[i] : NULL; }
rn_core_stream_t *rn_core_shard_stream(const rn_core_shard_t *sh) { return sh->stream; }
uint32_t rn_core_shard_index(const rn_core_shard_t *sh) { return sh->index; }
uint64_t rn_core_shard_start_offset(const rn_core_shard_t *sh) { return rn__shard_start(sh); }
uint64_t rn_core_shard_end_offset(const rn_core_shard_t *sh) { return rn__shard_visible_end(sh); }
rn_core_shard_state_t rn_core_shard_state(const rn_core_shard_t *sh) { return sh->state; }
void rn_core_shard_hash_range(const rn_core_shard_t *sh, uint8_t start[16], uint8_t end[16]) {
  memcpy(start, sh->hk_start, 16);
  memcpy(end, sh->hk_end, 16);
}
void *rn_core_shard_slot(const rn_core_shard_t *sh, rn_core_sub_t sub) {
  assert((unsigned)sub < RN_SUB__COUNT);
  return sh->slots[sub];
}
void rn_core_shard_set_slot(rn_core_shard_t *sh, rn_core_sub_t sub, void *p) {
  assert((unsigned)sub < RN_SUB__COUNT);
  sh->slots[sub] = p;
}
rn_io_t *rn_core_io(rn_core_t *core) { return core->io; }
uv_loop_t *rn_core_loop(const rn_core_t *core) { return core->loop; }
const rn_core_opts_t *rn_core_options(const rn_core_t *core) { return &core->opts; }
const char *rn_core_data_dir(const rn_core_t *core) { return core->data_dir; }
int64_t rn_core_now_ms(const rn_core_t *core) { return rn__now_ms(core); }
void rn_core_log(const rn_core_t *core, rn_level_t level, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  rn__eng_say(core, level, "%s", msg);
}
void rn_core_work_begin(rn_core_t *core) { core->pending_work++; }
void rn_core_work_end(rn_core_t *core) {
  assert(core->pending_work > 0);
  core->pending_work--;
}

/* ---- loop plumbing ---------------------------------------------------------------------- */

static void on_io(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  rn_engine_t *eng = h->data;
  rn_io_poll(eng->io);
}

static void on_tick(uv_timer_t *t) {
  rn_engine_t *eng = t->data;
  int64_t now = rn__now_ms(eng);
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    rn_stream_t *st = eng->streams[i];
    if (st->state != RN__STREAM_ACTIVE) continue;
    for (uint32_t k = 0; k < st->nshards; k++) rn_log_tick(st->shards[k].log, now);
    if (st->dedup) rn__dedup_expire(st->dedup, now);
  }
  if (eng->journal) rn_journal_tick(eng->journal, now);
  rn__tier_tick(eng, now);
  for (int s = 0; s < RN_SUB__COUNT; s++)
    if (eng->listening[s] && eng->listeners[s].tick) eng->listeners[s].tick(eng->listeners[s].arg);
}

/* ---- open / close ------------------------------------------------------------------------ */

/* The shared journal: opened (created when journal_bytes > 0, else only
 * when one exists) before any log, since the logs replay from it. */
static rn_err_t open_journal(rn_engine_t *eng, rn_fs_t *fs, char *why, size_t whylen) {
  char path[4200];
  snprintf(path, sizeof(path), "%s/journal", eng->data_dir);
  rn_file_t *f = NULL;
  bool exists = fs->open(fs, path, RN_FS_RDONLY, &f) == 0;
  if (f) fs->close(f);
  if (!exists && eng->opts.journal_bytes == 0) return 0;
  if (exists && eng->opts.journal_bytes == 0)
    rn__eng_say(eng, RN_LVL_WARN, "journal_bytes is 0 but %s exists: it is still used (stop cleanly, then delete it to turn it off)", path);
  rn_journal_opts_t jo;
  rn_journal_opts_default(&jo);
  if (eng->opts.journal_bytes) jo.size_bytes = eng->opts.journal_bytes;
  if (eng->opts.journal_checkpoint_ms) jo.checkpoint_ms = eng->opts.journal_checkpoint_ms;
  jo.clock = eng->opts.clock;
  jo.logger = eng->opts.logger;
  rn_journal_recovery_t rec;
  rn_err_t err = rn_journal_open(eng->io, path, &jo, &eng->journal, &rec);
  if (err) {
    snprintf(why, whylen, "%s", rec.message[0] ? rec.message : rn_strerror(err));
    return err;
  }
  uint64_t need = eng->opts.max_batch_bytes > (256u << 10) ? eng->opts.max_batch_bytes : (256u << 10);
  if (rn_journal_max_record(eng->journal) < need) {
    snprintf(why, whylen, "the journal %s (%" PRIu64 " bytes) is too small for max_batch_bytes %u: it needs at least 4 x %" PRIu64 " + 1MiB bytes (journal_bytes)",
             path, rn_journal_max_record(eng->journal) * 4, eng->opts.max_batch_bytes, need);
    rn_journal_close(eng->journal);
    eng->journal = NULL;
    return RN_EINVAL;
  }
  if (rec.created)
    rn__eng_say(eng, RN_LVL_INFO, "created the journal %s (%" PRIu64 " bytes, preallocated)", path, jo.size_bytes);
  return 0;
}

static rn_err_t load_meta(rn_engine_t *eng, char *why, size_t whylen) {
  uint8_t *buf = NULL;
  size_t len = 0;
  rn_err_t err = eng->meta->ops->load(eng->meta, &buf, &len);
  if (err == RN_ENOENT) return 0; /* a new data directory */
  char what[4200];
  snprintf(what, sizeof(what), "%s/meta/broker.meta", eng->data_dir);
  if (err) {
    snprintf(why, whylen, "cannot read %s: %s", what, rn_strerror(err));
    return err;
  }
  rn__meta_t m;
  err = rn__meta_decode(buf, len, &m, what, why, whylen);
  free(buf);
  if (err) return err;
  eng->next_uid = m.next_uid;
  eng->producer_id_limit = m.producer_id_limit;
  for (size_t i = 0; i < m.nstreams && !err; i++) {
    const rn__meta_stream_t *ms = &m.streams[i];
    rn_stream_t *st = stream_new(eng, ms->name, ms->nshards);
    if (!st) {
      err = RN_ENOMEM;
      break;
    }
    st->uid = ms->uid;
    st->retention_ms = ms->retention_ms;
    st->retention_bytes = ms->retention_bytes;
    st->durability = ms->durability;
    st->created_ms = ms->created_ms;
    st->tiered = ms->tiered;
    st->local_retention_ms = ms->local_retention_ms;
    st->local_retention_bytes = ms->local_retention_bytes;
    if (stream_set_dedup(eng, st, ms->dedup_key, ms->dedup_field, ms->dedup_window_ms)) {
      stream_free(st);
      err = RN_ENOMEM;
      break;
    }
    for (uint32_t k = 0; k < st->nshards; k++) {
      rn_shard_t *sh = &st->shards[k];
      const rn__meta_shard_t *x = &ms->shards[k];
      memcpy(sh->hk_start, x->hk_start, 16);
      memcpy(sh->hk_end, x->hk_end, 16);
      sh->state = x->state;
      sh->nparents = x->nparents;
      memcpy(sh->parents, x->parents, sizeof(sh->parents));
      sh->nchildren = x->nchildren;
      memcpy(sh->children, x->children, sizeof(sh->children));
    }
    st->state = RN__STREAM_ACTIVE;
    st->refs = 1;
    err = registry_add(eng, st);
    if (err) {
      stream_free(st);
      break;
    }
    st->desc_gen = st->tiered; /* stored again at start: a put may have failed before a crash */
    err = stream_open_logs(eng, st, NULL, why, whylen);
    for (uint32_t k = 0; !err && k < st->nshards; k++) err = rn__shard_load_producers(eng, &st->shards[k]);
    if (!err && st->dedup) err = rn__stream_load_dedup(eng, st);
    if (!err) {
      eng->stats.streams++;
      eng->stats.shards += st->nshards;
    }
  }
  rn__meta_free(&m);
  return err;
}

typedef struct orphan_scan {
  rn_engine_t *eng;
  char **names;
  size_t n, cap;
} orphan_scan_t;

static int orphan_note(void *arg, const char *name) {
  orphan_scan_t *o = arg;
  if (name[0] == '.') return 0;
  for (uint32_t i = 0; i < o->eng->nstreams; i++) {
    char known[400];
    snprintf(known, sizeof(known), "%s-%" PRIu64, o->eng->streams[i]->name, o->eng->streams[i]->uid);
    if (!strcmp(known, name)) return 0;
  }
  if (o->n == o->cap) {
    size_t nc = o->cap ? o->cap * 2 : 8;
    char **nn = realloc(o->names, nc * sizeof(*nn));
    if (!nn) return RN_ENOMEM;
    o->names = nn;
    o->cap = nc;
  }
  o->names[o->n] = strdup(name);
  if (!o->names[o->n]) return RN_ENOMEM;
  o->n++;
  return 0;
}

/* Remove stream directories the metadata does not know (interrupted create
 * or delete). At open, before serving. */
static void remove_orphans(rn_engine_t *eng) {
  char path[4200];
  snprintf(path, sizeof(path), "%s/streams", eng->data_dir);
  rn_fs_t *fs = rn_io_fs(eng->io);
  orphan_scan_t o = {.eng = eng};
  fs->list(fs, path, orphan_note, &o);
  for (size_t i = 0; i < o.n; i++) {
    char *p = malloc(strlen(path) + strlen(o.names[i]) + 2);
    if (p) {
      sprintf(p, "%s/%s", path, o.names[i]);
      rn__eng_say(eng, RN_LVL_WARN, "removing %s: not in the metadata (an interrupted create or delete)", p);
      nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
      free(p);
    }
    free(o.names[i]);
  }
  free(o.names);
}

static void free_streams(rn_engine_t *eng) {
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    rn_stream_t *st = eng->streams[i];
    for (uint32_t k = 0; k < st->nshards; k++) {
      rn__tier_shard_close(&st->shards[k]);
      rn_log_close(st->shards[k].log);
      st->shards[k].log = NULL;
    }
    stream_free(st);
  }
  eng->nstreams = 0;
}

rn_err_t rn_core_open(const rn_core_opts_t *opts, rn_core_t **out, char *why, size_t whylen) {
  char whybuf[1];
  if (!why || whylen == 0) {
    why = whybuf;
    whylen = sizeof(whybuf);
  }
  why[0] = 0;
  rn_engine_t *eng = calloc(1, sizeof(*eng));
  if (!eng) return RN_ENOMEM;
  eng->opts = *opts;
  eng->loop = opts->loop;
  eng->data_dir = strdup(opts->data_dir);
  eng->opts.data_dir = eng->data_dir;
  eng->started_ms = rn__now_ms(eng);
  pthread_mutex_init(&eng->meta_mu, NULL);
  pthread_mutex_init(&eng->meta_write_mu, NULL);
  eng->next_uid = 1;
  eng->producer_id_limit = 1;
  rn_err_t err = 0;
  char path[4200];
  eng->meta = opts->meta_store;
  if (!eng->meta) {
    snprintf(path, sizeof(path), "%s/meta", eng->data_dir);
    eng->meta = eng->own_meta = rn_core_meta_store_file(opts->fs, path);
    if (!eng->meta) {
      err = RN_ENOMEM;
      goto fail;
    }
  }
  rn_fs_t *fs = opts->fs ? opts->fs : rn_fs_posix();
  snprintf(path, sizeof(path), "%s/meta", eng->data_dir);
  err = fs->mkdirs(fs, path);
  if (!err) {
    snprintf(path, sizeof(path), "%s/streams", eng->data_dir);
    err = fs->mkdirs(fs, path);
  }
  if (err) {
    snprintf(why, whylen, "cannot create %s: %s", path, rn_strerror(err));
    goto fail;
  }
  rn_io_opts_t io_opts;
  rn_io_opts_default(&io_opts);
  io_opts.backend = opts->io_backend;
  if (opts->fs) io_opts.fs = opts->fs;
  err = rn_io_new(&io_opts, &eng->io);
  if (err) {
    snprintf(why, whylen, "disk I/O backend: %s", rn_strerror(err));
    goto fail;
  }
  err = open_journal(eng, fs, why, whylen);
  if (err) goto fail;
  err = rn__tier_open(eng, why, whylen);
  if (err) goto fail;
  err = load_meta(eng, why, whylen);
  if (err) goto fail;
  remove_orphans(eng);
  /* Producer ids: start a fresh block past anything handed out before. */
  eng->next_producer_id = eng->producer_id_limit;
  eng->producer_id_limit = eng->next_producer_id + PRODUCER_ID_BLOCK;
  err = meta_snapshot(eng);
  if (!err) err = meta_write_newest(eng);
  if (err) {
    snprintf(why, whylen, "cannot write metadata: %s", rn_strerror(err));
    goto fail;
  }
  uv_poll_init(eng->loop, &eng->io_poll, rn_io_fd(eng->io));
  eng->io_poll.data = eng;
  uv_poll_start(&eng->io_poll, UV_READABLE, on_io);
  uv_check_init(eng->loop, &eng->reaper);
  eng->reaper.data = eng;
  uv_timer_init(eng->loop, &eng->tick);
  eng->tick.data = eng;
  uv_timer_start(&eng->tick, on_tick, 100, 100);
  rn__tier_start(eng);
  rn__eng_say(eng, RN_LVL_INFO, "opened %s: %u stream(s), %u shard(s), disk I/O %s", eng->data_dir,
              eng->stats.streams, eng->stats.shards, rn_io_backend_name(rn_io_backend(eng->io)));
  *out = eng;
  return 0;
fail:
  if (!why[0]) snprintf(why, whylen, "%s", rn_strerror(err));
  free_streams(eng);
  free(eng->streams);
  rn__tier_close(eng);
  rn_journal_close(eng->journal);
  rn_io_destroy(eng->io);
  rn_core_meta_store_destroy(eng->own_meta);
  free(eng->meta_buf);
  pthread_mutex_destroy(&eng->meta_mu);
  pthread_mutex_destroy(&eng->meta_write_mu);
  free(eng->data_dir);
  free(eng);
  return err;
}

void rn_core_drain(rn_core_t *eng) {
  eng->draining = true;
  eng->tier_tick_soon = true; /* the tier's drain starts at the next tick (rn__tier_tick) */
  for (uint32_t i = 0; i < eng->nstreams; i++)
    for (uint32_t k = 0; k < eng->streams[i]->nshards; k++) rn__shard_wake_all(eng, &eng->streams[i]->shards[k]);
}

bool rn_core_idle(const rn_core_t *eng) {
  /* Descriptor puts and manifest mirrors in flight are waited for
   * (rn_tier_drained), so a restore after a graceful stop sees the
   * configuration last acknowledged and every segment uploaded before it.
   * Each ends within the store's deadline (tier_request_timeout); neither
   * is retried while draining. */
  return eng->inflight_appends == 0 && eng->pending_work == 0 && eng->ndoomed == 0 && eng->desc_puts == 0 &&
         (!eng->tier || (eng->tier_opening == 0 && rn_tier_drained(eng->tier)));
}

bool rn_core_draining(const rn_core_t *eng) { return eng->draining; }

static void on_handle_closed(uv_handle_t *h) { (void)h; }

rn_err_t rn_core_close(rn_core_t *eng) {
  if (!eng) return 0;
  rn_err_t first = 0;
  uv_poll_stop(&eng->io_poll);
  uv_close((uv_handle_t *)&eng->io_poll, on_handle_closed);
  uv_timer_stop(&eng->tick);
  uv_close((uv_handle_t *)&eng->tick, on_handle_closed);
  uv_check_stop(&eng->reaper);
  uv_close((uv_handle_t *)&eng->reaper, on_handle_closed);
  /* Let the handles' close callbacks and any thread-pool work finish (the
   * store's poll handle stays until then: a fetch may wait on a remote
   * read). */
  while (eng->pending_work) uv_run(eng->loop, UV_RUN_ONCE);
  if (eng->store_polling) {
    uv_poll_stop(&eng->store_poll);
    uv_close((uv_handle_t *)&eng->store_poll, on_handle_closed);
    eng->store_polling = false;
  }
  uv_run(eng->loop, UV_RUN_NOWAIT);
  for (int s = 0; s < RN_SUB__COUNT; s++) {
    if (!eng->listening[s] || !eng->listeners[s].close) continue;
    rn_err_t err = eng->listeners[s].close(eng->listeners[s].arg);
    if (err && !first) first = err;
  }
  /* Tiered storage first, while every stream is still there: each shard's
   * tier closes before its log (deleted streams start their delete jobs),
   * then the tier and the store go (their callbacks run with RN_ECANCELED
   * and may look streams up). */
  for (uint32_t i = 0; i < eng->nstreams; i++)
    for (uint32_t k = 0; k < eng->streams[i]->nshards; k++) rn__tier_shard_close(&eng->streams[i]->shards[k]);
  for (uint32_t i = 0; i < eng->ndoomed; i++) rn__tier_stream_closing(eng, eng->doomed[i]);
  rn__tier_close(eng);
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    rn_stream_t *st = eng->streams[i];
    notify_closing(eng, st);
    for (uint32_t k = 0; k < st->nshards; k++) {
      if (!st->shards[k].log) continue;
      rn_err_t err = rn_log_close(st->shards[k].log);
      st->shards[k].log = NULL;
      if (err && !first) first = err;
    }
    stream_free(st);
  }
  /* Deleted streams whose I/O had not landed yet: the loop is not serving
   * any more, so wait for it here and close them as the reaper would. */
  while (eng->ndoomed) {
    rn_stream_t *st = eng->doomed[--eng->ndoomed];
    if (st->state == RN__STREAM_DELETING) stream_begin_close(eng, st);
    while (!stream_io_idle(st)) rn_io_wait(eng->io, -1);
    close_and_remove_async(eng, st, stream_dir(eng, st->name, st->uid));
  }
  /* The close jobs just queued: */
  while (eng->pending_work) uv_run(eng->loop, UV_RUN_ONCE);
  free(eng->doomed);
  free(eng->streams);
  if (eng->journal) {
    rn_err_t err = rn_journal_close(eng->journal);
    if (err && !first) first = err;
    eng->journal = NULL;
  }
  rn_io_destroy(eng->io);
  rn_core_meta_store_destroy(eng->own_meta);
  free(eng->meta_buf);
  pthread_mutex_destroy(&eng->meta_mu);
  pthread_mutex_destroy(&eng->meta_write_mu);
  rn__eng_say(eng, RN_LVL_INFO, "closed %s%s", eng->data_dir, first ? " with errors" : " cleanly");
  free(eng->data_dir);
  free(eng);
  return first;
}

void rn_core_stats(const rn_core_t *eng, rn_core_stats_t *st) {
  *st = eng->stats;
  st->journal = eng->journal != NULL;
  if (eng->journal) rn_journal_stats(eng->journal, &st->journal_stats);
  st->failed_shards = 0;
  for (uint32_t i = 0; i < eng->nstreams; i++)
    for (uint32_t k = 0; k < eng->streams[i]->nshards; k++) {
      rn_log_t *log = eng->streams[i]->shards[k].log;
      if (log && rn_log_failure(log)) st->failed_shards++;
    }
}

void rn_core_foreach_shard(const rn_core_t *eng, rn_core_shard_stats_fn fn, void *arg) {
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    const rn_stream_t *st = eng->streams[i];
    if (st->state != RN__STREAM_ACTIVE) continue;
    for (uint32_t k = 0; k < st->nshards; k++) {
      const rn_shard_t *sh = &st->shards[k];
      rn_core_shard_stats_t s = sh->metrics;
      s.stream = st->name;
      s.shard = k;
      s.start_offset = rn__shard_start(sh);
      s.end_offset = sh->log ? rn_log_end(sh->log) : 0;
      if (sh->tier) {
        rn_tier_shard_stats_t ts;
        rn_tier_shard_stats(sh->tier, &ts);
        s.tiered = true;
        s.remote_bytes = ts.remote_bytes;
        s.remote_segments = ts.remote_segments;
        s.backlog_bytes = ts.backlog_bytes;
        s.backlog_segments = ts.backlog_segments;
      }
      s.last_append_ms = sh->last_append_ms;
      s.failed = sh->log && rn_log_failure(sh->log) ? 1 : 0;
      s.stored_bytes = sh->log ? rn_log_size_bytes(sh->log) : 0;
      s.segments = sh->log ? rn_log_segment_count(sh->log) : 0;
      s.health_what = "";
      if (sh->log) {
        rn_log_health_t h;
        rn_log_health(sh->log, &h);
        s.health_state = (int)h.state;
        s.health_err = h.err;
        s.health_what = h.what;
        rn_log_sync_stats(sh->log, &s.sync);
      }
      fn(arg, &s);
    }
  }
}

void rn_core_foreach_dedup(const rn_core_t *eng, rn_core_dedup_stats_fn fn, void *arg) {
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    const rn_stream_t *st = eng->streams[i];
    if (st->state != RN__STREAM_ACTIVE || !st->dedup) continue;
    rn_core_dedup_stats_t s = {
        .stream = st->name,
        .duplicates = st->dedup_duplicates,
        .without_id = st->dedup_without_id,
        .evictions = st->dedup->evictions,
        .ids = rn__dedup_count(st->dedup),
        .memory_bytes = rn__dedup_bytes(st->dedup),
    };
    fn(arg, &s);
  }
}
