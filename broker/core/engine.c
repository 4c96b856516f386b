/*
 * engine.c — the broker's registry of streams and shards: metadata on disk,
 * the admin operations, request dispatch, and the plumbing that connects the
 * storage layer to the libuv loop (the rn_io completion fd, the tick timer).
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
 * the stream (refs == 0); nothing here blocks the loop except rn_engine_open
 * and rn_engine_close, which run before and after serving.
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

#include "engine_int.h"
#include "rn_core.h" /* issue 11: the API this file moves to; declared only for now */

#define PRODUCER_ID_BLOCK 1000

/* ---- small helpers ---------------------------------------------------------- */

void rn_engine_opts_default(rn_engine_opts_t *o) {
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
  o->default_retention_ms = 24 * 3600 * 1000;
}

/* The retention time a request asks for, as the engine stores it (> 0 ms,
 * or 0 = forever): on the wire 0 means "the broker's default" and a negative
 * value "forever" (runnel.proto, StreamConfig). */
static int64_t requested_retention_ms(const rn_engine_t *eng, int64_t wire) {
  if (wire == 0) wire = eng->opts.default_retention_ms;
  return wire > 0 ? wire : 0;
}

/* Retention values that are almost certainly a mistake (a unit slip: 100
 * bytes, 500 ms): accepted — they are valid — but logged, since retention
 * would delete each sealed segment as soon as it exists. */
static void warn_absurd_retention(const rn_engine_t *eng, const char *stream, int64_t ms, int64_t bytes) {
  if (ms > 0 && ms < 60 * 1000)
    rn__eng_say(eng, RN_LOG_WARN, "stream %s: retention of %lld ms keeps records for less than a minute; meant hours?",
                stream, (long long)ms);
  if (bytes > 0 && (uint64_t)bytes < eng->opts.segment_bytes)
    rn__eng_say(eng, RN_LOG_WARN,
                "stream %s: retention_bytes %lld per shard is below one segment (segment_bytes %llu): every "
                "sealed segment is deleted at once, leaving only the active one",
                stream, (long long)bytes, (unsigned long long)eng->opts.segment_bytes);
}

void rn__eng_say(const rn_engine_t *eng, rn_log_level_t level, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (eng->opts.logger) {
    eng->opts.logger(eng->opts.logger_arg, level, msg);
  } else {
    static const char *const names[] = {"debug", "info", "warn", "error"};
    fprintf(stderr, "%s engine: %s\n", names[level], msg);
  }
}

int64_t rn__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct rn__arena_blk {
  struct rn__arena_blk *next;
  size_t used, cap;
  max_align_t data[];
};

void *rn__arena_alloc(rn__arena_t *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  struct rn__arena_blk *b = a->head;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > 16384 ? n : 16384;
    b = malloc(sizeof(*b) + cap);
    if (!b) abort();
    b->next = a->head;
    b->used = 0;
    b->cap = cap;
    a->head = b;
  }
  void *p = (char *)b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

char *rn__arena_printf(rn__arena_t *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = rn__arena_alloc(a, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

void rn__arena_free(rn__arena_t *a) {
  while (a->head) {
    struct rn__arena_blk *b = a->head;
    a->head = b->next;
    free(b);
  }
}

void rn_engine_error(Runnel__Error *e, rn_err_t err, const char *msg) {
  runnel__error__init(e);
  e->code = rn_err_to_wire(err);
  /* protobuf-c's fields are not const; packing only reads them. */
  e->name = (char *)(uintptr_t)rn_err_name(err);
  e->message = (char *)(uintptr_t)(msg ? msg : rn_strerror(err));
  e->retriable = rn_err_retriable(err);
}

void rn__fill_error(rn__arena_t *a, Runnel__Error **out, rn_err_t err, const char *fmt, ...) {
  Runnel__Error *e = rn__arena_alloc(a, sizeof(*e));
  char *msg = NULL;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    msg = rn__arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  rn_engine_error(e, err, msg);
  *out = e;
}

/* Reply with only a request-level error. */
static void reply_error(rn_engine_reply_cb cb, void *ctx, rn_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_error(rn_engine_reply_cb cb, void *ctx, rn_err_t err, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__Error e;
  rn_engine_error(&e, err, msg);
  resp.error = &e;
  cb(ctx, &resp);
}

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
static void shard_range(uint32_t i, uint32_t n, uint8_t start[16], uint8_t end[16]) {
  u128 max = ~(u128)0;
  u128 step = n == 1 ? 0 : max / n + ((max % n) == n - 1 ? 1 : 0);
  u128 s = (u128)i * step;
  u128 e = (i + 1 == n) ? max : (u128)(i + 1) * step - 1;
  put_be128(start, s);
  put_be128(end, e);
}

/* ---- streams ------------------------------------------------------------------------ */

static bool valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 128) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      return false;
  }
  return strcmp(s, ".") && strcmp(s, "..");
}

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
  lo.max_batch_bytes = eng->opts.max_batch_bytes;
  lo.logger = (void (*)(void *, rn_log_level_t, const char *))eng->opts.logger;
  lo.logger_arg = eng->opts.logger_arg;
  return lo;
}

static rn_stream_t *stream_new(const char *name, uint32_t nshards) {
  rn_stream_t *st = calloc(1, sizeof(*st));
  if (!st) return NULL;
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
    shard_range(i, nshards, st->shards[i].hk_start, st->shards[i].hk_end);
  }
  return st;
}

/* Open every shard's log. Blocking: at startup, or on a thread-pool thread
 * for a new stream (rn_log_open only touches the file system; the logs are
 * handed to the loop thread afterwards). */
static rn_err_t stream_open_logs(rn_engine_t *eng, rn_stream_t *st, char *why, size_t whylen) {
  char *dir = stream_dir(eng, st->name, st->uid);
  if (!dir) return RN_ENOMEM;
  rn_log_opts_t lo = log_opts(eng, st);
  rn_err_t err = 0;
  for (uint32_t i = 0; i < st->nshards && !err; i++) {
    rn_shard_t *sh = &st->shards[i];
    size_t n = strlen(dir) + 32;
    sh->dir = malloc(n);
    if (!sh->dir) {
      err = RN_ENOMEM;
      break;
    }
    snprintf(sh->dir, n, "%s/shardId-%012u", dir, i);
    rn_log_recovery_t rec;
    err = rn_log_open(eng->io, sh->dir, &lo, &sh->log, &rec);
    if (err) snprintf(why, whylen, "stream %s shard %u: %s", st->name, i, rec.message);
  }
  free(dir);
  return err;
}

static void stream_free(rn_stream_t *st) {
  if (!st) return;
  for (uint32_t i = 0; i < st->nshards; i++) {
    free(st->shards[i].dir);
    rn__shard_free_producers(&st->shards[i]);
  }
  free(st->shards);
  free(st->name);
  free(st);
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

/* ---- metadata ------------------------------------------------------------------------ */

/* Serialise the registry (active streams only) as the newest snapshot. */
static rn_err_t meta_snapshot(rn_engine_t *eng) {
  Runnel__BrokerMeta m = RUNNEL__BROKER_META__INIT;
  Runnel__StreamMeta *sm = calloc(eng->nstreams + 1, sizeof(*sm));
  Runnel__StreamMeta **smp = calloc(eng->nstreams + 1, sizeof(*smp));
  Runnel__StreamConfig *sc = calloc(eng->nstreams + 1, sizeof(*sc));
  if (!sm || !smp || !sc) {
    free(sm);
    free(smp);
    free(sc);
    return RN_ENOMEM;
  }
  size_t n = 0;
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    rn_stream_t *st = eng->streams[i];
    if (st->state != RN__STREAM_ACTIVE) continue;
    runnel__stream_meta__init(&sm[n]);
    runnel__stream_config__init(&sc[n]);
    sc[n].name = st->name;
    sc[n].shard_count = st->nshards;
    sc[n].retention_ms = st->retention_ms;
    sc[n].retention_bytes = st->retention_bytes;
    sc[n].durability = (Runnel__Durability)st->durability;
    sm[n].config = &sc[n];
    sm[n].created_ms = st->created_ms;
    sm[n].uid = st->uid;
    smp[n] = &sm[n];
    n++;
  }
  m.n_streams = n;
  m.streams = smp;
  m.next_uid = eng->next_uid;
  m.producer_id_limit = eng->producer_id_limit;
  size_t len = runnel__broker_meta__get_packed_size(&m);
  uint8_t *buf = malloc(len ? len : 1);
  rn_err_t err = buf ? 0 : RN_ENOMEM;
  if (buf) {
    runnel__broker_meta__pack(&m, buf);
    pthread_mutex_lock(&eng->meta_mu);
    free(eng->meta_buf);
    eng->meta_buf = buf;
    eng->meta_len = len;
    eng->meta_version++;
    pthread_mutex_unlock(&eng->meta_mu);
  }
  free(sm);
  free(smp);
  free(sc);
  return err;
}

/* Thread pool: write the newest snapshot if it is newer than what is on
 * disk. Writes are serialised by meta_mu, so versions only move forward. */
static rn_err_t meta_write_newest(rn_engine_t *eng) {
  pthread_mutex_lock(&eng->meta_mu);
  rn_err_t err = 0;
  if (eng->meta_version > eng->meta_written) {
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/meta", eng->data_dir);
    err = rn_fs_write_atomic(rn_fs_posix(), dir, "broker.meta", eng->meta_buf, eng->meta_len);
    if (!err) eng->meta_written = eng->meta_version;
  }
  pthread_mutex_unlock(&eng->meta_mu);
  return err;
}

typedef struct meta_job {
  uv_work_t work;
  rn_engine_t *eng;
  rn_err_t err;
  void (*done)(struct meta_job *job);
  /* what the continuation needs */
  rn_stream_t *st;
  rn_engine_reply_cb cb;
  void *ctx;
  uint64_t u64;
  char why[512];
} meta_job_t;

static void meta_work(uv_work_t *w) {
  meta_job_t *j = w->data;
  j->err = meta_write_newest(j->eng);
}

static void meta_after(uv_work_t *w, int status) {
  meta_job_t *j = w->data;
  j->eng->pending_work--;
  if (status) j->err = status;
  if (j->err) rn__eng_say(j->eng, RN_LOG_ERROR, "writing metadata failed: %s", rn_strerror(j->err));
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
  eng->pending_work++;
  int rc = uv_queue_work(eng->loop, &j->work, meta_work, meta_after);
  if (rc) {
    eng->pending_work--;
    j->err = RN_EIO;
    j->done(j);
    free(j);
  }
}

static meta_job_t *meta_job_new(void (*done)(meta_job_t *), rn_engine_reply_cb cb, void *ctx) {
  meta_job_t *j = calloc(1, sizeof(*j));
  if (!j) abort();
  j->done = done;
  j->cb = cb;
  j->ctx = ctx;
  return j;
}

/* ---- describe ---------------------------------------------------------------------- */

static Runnel__StreamDescription *describe(rn__arena_t *a, const rn_stream_t *st) {
  Runnel__StreamDescription *d = rn__arena_alloc(a, sizeof(*d));
  runnel__stream_description__init(d);
  Runnel__StreamConfig *c = rn__arena_alloc(a, sizeof(*c));
  runnel__stream_config__init(c);
  c->name = st->name;
  c->shard_count = st->nshards;
  c->retention_ms = st->retention_ms > 0 ? st->retention_ms : -1; /* on the wire: -1 = forever */
  c->retention_bytes = st->retention_bytes > 0 ? st->retention_bytes : -1;
  c->durability = (Runnel__Durability)st->durability;
  d->config = c;
  d->created_ms = st->created_ms;
  d->status = st->state == RN__STREAM_ACTIVE ? "ACTIVE" : st->state == RN__STREAM_CREATING ? "CREATING" : "DELETING";
  d->n_shards = st->nshards;
  d->shards = rn__arena_alloc(a, st->nshards * sizeof(*d->shards));
  for (uint32_t i = 0; i < st->nshards; i++) {
    const rn_shard_t *sh = &st->shards[i];
    Runnel__ShardInfo *si = rn__arena_alloc(a, sizeof(*si));
    runnel__shard_info__init(si);
    si->index = i;
    si->shard_id = rn__arena_printf(a, "shardId-%012u", i);
    si->hash_key_start.data = (uint8_t *)(uintptr_t)sh->hk_start;
    si->hash_key_start.len = 16;
    si->hash_key_end.data = (uint8_t *)(uintptr_t)sh->hk_end;
    si->hash_key_end.len = 16;
    if (sh->log) {
      si->start_offset = rn_log_start(sh->log);
      si->end_offset = rn_log_end(sh->log);
      si->stored_bytes = rn_log_size_bytes(sh->log);
    }
    si->last_append_ms = sh->last_append_ms;
    d->shards[i] = si;
  }
  return d;
}

/* ---- admin operations ----------------------------------------------------------------- */

typedef struct create_job {
  uv_work_t work;
  rn_engine_t *eng;
  rn_stream_t *st;
  rn_engine_reply_cb cb;
  void *ctx;
  rn_err_t err;
  char why[512];
} create_job_t;

static void create_work(uv_work_t *w) {
  create_job_t *j = w->data;
  j->err = stream_open_logs(j->eng, j->st, j->why, sizeof(j->why));
}

static void close_stream_logs(rn_stream_t *st, bool discard) {
  for (uint32_t i = 0; i < st->nshards; i++) {
    if (!st->shards[i].log) continue;
    if (discard)
      rn_log_close_discard(st->shards[i].log);
    else
      rn_log_close(st->shards[i].log);
    st->shards[i].log = NULL;
  }
}

/* Remove a directory tree (thread pool). */
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

typedef struct rm_job {
  uv_work_t work;
  rn_engine_t *eng;
  char *path;
} rm_job_t;

static void rm_work(uv_work_t *w) {
  rm_job_t *j = w->data;
  nftw(j->path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void rm_after(uv_work_t *w, int status) {
  (void)status;
  rm_job_t *j = w->data;
  j->eng->pending_work--;
  free(j->path);
  free(j);
}

static void remove_dir_async(rn_engine_t *eng, char *path /* taken */) {
  rm_job_t *j = calloc(1, sizeof(*j));
  if (!j) abort();
  j->eng = eng;
  j->path = path;
  j->work.data = j;
  eng->pending_work++;
  if (uv_queue_work(eng->loop, &j->work, rm_work, rm_after)) {
    eng->pending_work--;
    free(path);
    free(j);
  }
}

/* A stream left the registry and no request holds it: close and delete. */
static void stream_destroy(rn_engine_t *eng, rn_stream_t *st) {
  close_stream_logs(st, true);
  char *dir = stream_dir(eng, st->name, st->uid);
  if (dir) remove_dir_async(eng, dir);
  stream_free(st);
}

static void on_reap(uv_check_t *h) {
  rn_engine_t *eng = h->data;
  while (eng->ndoomed) stream_destroy(eng, eng->doomed[--eng->ndoomed]);
  uv_check_stop(&eng->reaper);
}

void rn__stream_unref(rn_engine_t *eng, rn_stream_t *st) {
  assert(st->refs > 0); /* so a stream is doomed exactly once */
  if (--st->refs != 0 || st->state != RN__STREAM_DELETING) return;
  if (eng->ndoomed == eng->doomed_cap) {
    uint32_t nc = eng->doomed_cap ? eng->doomed_cap * 2 : 8;
    rn_stream_t **n = realloc(eng->doomed, nc * sizeof(*n));
    if (!n) abort();
    eng->doomed = n;
    eng->doomed_cap = nc;
  }
  eng->doomed[eng->ndoomed++] = st;
  uv_check_start(&eng->reaper, on_reap);
}

static void create_meta_done(meta_job_t *j) {
  rn_engine_t *eng = j->eng;
  rn_stream_t *st = j->st;
  if (j->err) {
    /* Not durable: undo. The directory is removed (an orphan at worst). */
    st->state = RN__STREAM_DELETING;
    registry_remove(eng, st);
    reply_error(j->cb, j->ctx, j->err, "stream %s: writing metadata failed: %s", st->name, rn_strerror(j->err));
    rn__stream_unref(eng, st); /* the registry's */
    rn__stream_unref(eng, st); /* the create work's */
    return;
  }
  rn__arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__CreateStreamResponse cr = RUNNEL__CREATE_STREAM_RESPONSE__INIT;
  cr.stream = describe(&a, st);
  resp.op_case = RUNNEL__RESPONSE__OP_CREATE_STREAM;
  resp.create_stream = &cr;
  rn__eng_say(eng, RN_LOG_INFO, "created stream %s (%u shards, %s)", st->name, st->nshards, rn_durability_name(st->durability));
  j->cb(j->ctx, &resp);
  rn__arena_free(&a);
  rn__stream_unref(eng, st);
}

static void create_after(uv_work_t *w, int status) {
  create_job_t *j = w->data;
  rn_engine_t *eng = j->eng;
  rn_stream_t *st = j->st;
  eng->pending_work--;
  if (status && !j->err) j->err = RN_EIO;
  if (j->err) {
    rn__eng_say(eng, RN_LOG_ERROR, "creating stream %s failed: %s", st->name, j->why[0] ? j->why : rn_strerror(j->err));
    st->state = RN__STREAM_DELETING;
    registry_remove(eng, st);
    reply_error(j->cb, j->ctx, j->err, "stream %s: %s", st->name, j->why[0] ? j->why : rn_strerror(j->err));
    rn__stream_unref(eng, st); /* the registry's */
    rn__stream_unref(eng, st); /* the create work's */
    free(j);
    return;
  }
  st->state = RN__STREAM_ACTIVE;
  eng->stats.streams++;
  eng->stats.shards += st->nshards;
  meta_job_t *mj = meta_job_new(create_meta_done, j->cb, j->ctx);
  mj->st = st;
  free(j);
  meta_persist(eng, mj);
}

static void handle_create(rn_engine_t *eng, const Runnel__CreateStreamRequest *r, rn_engine_reply_cb cb, void *ctx) {
  const Runnel__StreamConfig *c = r ? r->config : NULL;
  if (!c) return reply_error(cb, ctx, RN_EBADREQUEST, "CreateStream needs a config");
  if (!valid_name(c->name))
    return reply_error(cb, ctx, RN_EINVAL, "stream name \"%.140s\" is invalid: 1-128 characters of A-Z a-z 0-9 _ . -", c->name);
  if (c->shard_count < 1 || c->shard_count > eng->opts.max_shards)
    return reply_error(cb, ctx, RN_EINVAL, "shard count %u is out of range 1..%u", c->shard_count, eng->opts.max_shards);
  if ((unsigned)c->durability > RUNNEL__DURABILITY__DURABILITY_NONE)
    return reply_error(cb, ctx, RN_EINVAL, "unknown durability %d", (int)c->durability);
  if (eng->draining) return reply_error(cb, ctx, RN_ESHUTDOWN, "broker is shutting down");
  if (rn__stream_find(eng, c->name)) return reply_error(cb, ctx, RN_EEXIST, "stream %s already exists", c->name);
  rn_stream_t *st = stream_new(c->name, c->shard_count);
  if (!st) return reply_error(cb, ctx, RN_ENOMEM, "out of memory");
  st->uid = eng->next_uid++;
  st->retention_ms = requested_retention_ms(eng, c->retention_ms);
  st->retention_bytes = c->retention_bytes > 0 ? c->retention_bytes : 0;
  warn_absurd_retention(eng, st->name, st->retention_ms, st->retention_bytes);
  st->durability = (rn_durability_t)c->durability;
  st->created_ms = rn__now_ms();
  st->state = RN__STREAM_CREATING;
  /* Two references, as a stream loaded at open holds one: the registry's
   * (dropped by delete or a failed create) and the create work's (dropped
   * by create_meta_done). */
  st->refs = 2;
  if (registry_add(eng, st)) {
    stream_free(st);
    return reply_error(cb, ctx, RN_ENOMEM, "out of memory");
  }
  create_job_t *j = calloc(1, sizeof(*j));
  if (!j) abort();
  j->eng = eng;
  j->st = st;
  j->cb = cb;
  j->ctx = ctx;
  j->work.data = j;
  eng->pending_work++;
  if (uv_queue_work(eng->loop, &j->work, create_work, create_after)) {
    eng->pending_work--;
    j->err = RN_EIO;
    create_after(&j->work, 0);
  }
}

static void delete_meta_done(meta_job_t *j) {
  rn_engine_t *eng = j->eng;
  if (j->err) {
    reply_error(j->cb, j->ctx, j->err, "stream %s: deleted, but writing metadata failed (%s): it may reappear after a restart",
                j->st->name, rn_strerror(j->err));
  } else {
    Runnel__Response resp = RUNNEL__RESPONSE__INIT;
    Runnel__DeleteStreamResponse dr = RUNNEL__DELETE_STREAM_RESPONSE__INIT;
    resp.op_case = RUNNEL__RESPONSE__OP_DELETE_STREAM;
    resp.delete_stream = &dr;
    j->cb(j->ctx, &resp);
  }
  rn__eng_say(eng, RN_LOG_INFO, "deleted stream %s", j->st->name);
  rn__stream_unref(eng, j->st);
}

static void handle_delete(rn_engine_t *eng, const Runnel__DeleteStreamRequest *r, rn_engine_reply_cb cb, void *ctx) {
  if (!r) return reply_error(cb, ctx, RN_EBADREQUEST, "DeleteStream needs a name");
  rn_stream_t *st = rn__stream_find(eng, r->name);
  if (!st || st->state == RN__STREAM_DELETING) return reply_error(cb, ctx, RN_ENOSTREAM, "stream %s not found", r->name);
  if (st->state == RN__STREAM_CREATING) return reply_error(cb, ctx, RN_EBUSY, "stream %s is still being created", r->name);
  st->state = RN__STREAM_DELETING;
  rn__groups_stream_deleted(eng, st);
  registry_remove(eng, st);
  eng->stats.streams--;
  eng->stats.shards -= st->nshards;
  for (uint32_t i = 0; i < st->nshards; i++) rn__shard_wake_all(eng, &st->shards[i]);
  st->refs++;
  meta_job_t *mj = meta_job_new(delete_meta_done, cb, ctx);
  mj->st = st;
  meta_persist(eng, mj);
  /* The registry's own reference: */
  rn__stream_unref(eng, st);
}

static void handle_list(rn_engine_t *eng, rn_engine_reply_cb cb, void *ctx) {
  rn__arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__ListStreamsResponse lr = RUNNEL__LIST_STREAMS_RESPONSE__INIT;
  lr.names = rn__arena_alloc(&a, (eng->nstreams + 1) * sizeof(char *));
  for (uint32_t i = 0; i < eng->nstreams; i++)
    if (eng->streams[i]->state == RN__STREAM_ACTIVE) lr.names[lr.n_names++] = eng->streams[i]->name;
  resp.op_case = RUNNEL__RESPONSE__OP_LIST_STREAMS;
  resp.list_streams = &lr;
  cb(ctx, &resp);
  rn__arena_free(&a);
}

static void handle_describe(rn_engine_t *eng, const Runnel__DescribeStreamRequest *r, rn_engine_reply_cb cb, void *ctx) {
  if (!r) return reply_error(cb, ctx, RN_EBADREQUEST, "DescribeStream needs a name");
  rn_stream_t *st = rn__stream_find(eng, r->name);
  if (!st || st->state != RN__STREAM_ACTIVE) return reply_error(cb, ctx, RN_ENOSTREAM, "stream %s not found", r->name);
  rn__arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__DescribeStreamResponse dr = RUNNEL__DESCRIBE_STREAM_RESPONSE__INIT;
  dr.stream = describe(&a, st);
  resp.op_case = RUNNEL__RESPONSE__OP_DESCRIBE_STREAM;
  resp.describe_stream = &dr;
  cb(ctx, &resp);
  rn__arena_free(&a);
}

static void retention_meta_done(meta_job_t *j) {
  if (j->err) {
    reply_error(j->cb, j->ctx, j->err, "stream %s: retention changed but not persisted: %s", j->st->name, rn_strerror(j->err));
  } else {
    rn__arena_t a = {0};
    Runnel__Response resp = RUNNEL__RESPONSE__INIT;
    Runnel__SetRetentionResponse sr = RUNNEL__SET_RETENTION_RESPONSE__INIT;
    sr.stream = describe(&a, j->st);
    resp.op_case = RUNNEL__RESPONSE__OP_SET_RETENTION;
    resp.set_retention = &sr;
    j->cb(j->ctx, &resp);
    rn__arena_free(&a);
  }
  rn__stream_unref(j->eng, j->st);
}

static void handle_set_retention(rn_engine_t *eng, const Runnel__SetRetentionRequest *r, rn_engine_reply_cb cb, void *ctx) {
  if (!r) return reply_error(cb, ctx, RN_EBADREQUEST, "SetRetention needs a name");
  rn_stream_t *st = rn__stream_find(eng, r->name);
  if (!st || st->state != RN__STREAM_ACTIVE) return reply_error(cb, ctx, RN_ENOSTREAM, "stream %s not found", r->name);
  st->retention_ms = requested_retention_ms(eng, r->retention_ms);
  st->retention_bytes = r->retention_bytes > 0 ? r->retention_bytes : 0;
  warn_absurd_retention(eng, st->name, st->retention_ms, st->retention_bytes);
  for (uint32_t i = 0; i < st->nshards; i++)
    rn_log_set_retention(st->shards[i].log, st->retention_ms > 0 ? st->retention_ms : -1,
                         st->retention_bytes > 0 ? st->retention_bytes : -1);
  st->refs++;
  meta_job_t *mj = meta_job_new(retention_meta_done, cb, ctx);
  mj->st = st;
  meta_persist(eng, mj);
}

static void reply_producer(rn_engine_reply_cb cb, void *ctx, uint64_t id) {
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__InitProducerResponse ir = RUNNEL__INIT_PRODUCER_RESPONSE__INIT;
  ir.producer_id = id;
  ir.producer_epoch = 0;
  resp.op_case = RUNNEL__RESPONSE__OP_INIT_PRODUCER;
  resp.init_producer = &ir;
  cb(ctx, &resp);
}

static void producer_meta_done(meta_job_t *j) {
  if (j->err)
    reply_error(j->cb, j->ctx, j->err, "cannot persist producer ids: %s", rn_strerror(j->err));
  else
    reply_producer(j->cb, j->ctx, j->u64);
}

static void handle_init_producer(rn_engine_t *eng, rn_engine_reply_cb cb, void *ctx) {
  uint64_t id = eng->next_producer_id++;
  if (id < eng->producer_id_limit) return reply_producer(cb, ctx, id);
  /* A new block: durable before any id of it is handed out. */
  eng->producer_id_limit = id + PRODUCER_ID_BLOCK;
  meta_job_t *mj = meta_job_new(producer_meta_done, cb, ctx);
  mj->u64 = id;
  meta_persist(eng, mj);
}

/* ---- dispatch -------------------------------------------------------------------------- */

void rn_engine_handle(rn_engine_t *eng, const Runnel__Request *req, rn_engine_reply_cb cb, void *ctx) {
  switch (req->op_case) {
  case RUNNEL__REQUEST__OP_CREATE_STREAM: return handle_create(eng, req->create_stream, cb, ctx);
  case RUNNEL__REQUEST__OP_DELETE_STREAM: return handle_delete(eng, req->delete_stream, cb, ctx);
  case RUNNEL__REQUEST__OP_LIST_STREAMS: return handle_list(eng, cb, ctx);
  case RUNNEL__REQUEST__OP_DESCRIBE_STREAM: return handle_describe(eng, req->describe_stream, cb, ctx);
  case RUNNEL__REQUEST__OP_SET_RETENTION: return handle_set_retention(eng, req->set_retention, cb, ctx);
  case RUNNEL__REQUEST__OP_INIT_PRODUCER: return handle_init_producer(eng, cb, ctx);
  case RUNNEL__REQUEST__OP_PRODUCE: return rn__handle_produce(eng, req, cb, ctx);
  case RUNNEL__REQUEST__OP_FETCH: return rn__handle_fetch(eng, req, cb, ctx);
  case RUNNEL__REQUEST__OP_LIST_OFFSETS: return rn__handle_list_offsets(eng, req, cb, ctx);
  case RUNNEL__REQUEST__OP_GROUP_HEARTBEAT:
  case RUNNEL__REQUEST__OP_GROUP_COMMIT:
  case RUNNEL__REQUEST__OP_GROUP_CREATE:
  case RUNNEL__REQUEST__OP_GROUP_LIST:
  case RUNNEL__REQUEST__OP_GROUP_DESCRIBE:
  case RUNNEL__REQUEST__OP_GROUP_DELETE:
  case RUNNEL__REQUEST__OP_GROUP_RESET: return rn__handle_group(eng, req, cb, ctx);
  case RUNNEL__REQUEST__OP_BROKER_INFO: return rn__handle_broker_info(eng, req->broker_info, cb, ctx);
  default: return reply_error(cb, ctx, RN_EUNKNOWNOP, "unknown operation %d", (int)req->op_case);
  }
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
  int64_t now = rn__now_ms();
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    rn_stream_t *st = eng->streams[i];
    if (st->state != RN__STREAM_ACTIVE) continue;
    for (uint32_t k = 0; k < st->nshards; k++) rn_log_tick(st->shards[k].log, now);
  }
  rn__groups_tick(eng);
}

/* ---- open / close ------------------------------------------------------------------------ */


static rn_err_t load_meta(rn_engine_t *eng, char *why, size_t whylen) {
  char path[4200];
  snprintf(path, sizeof(path), "%s/meta/broker.meta", eng->data_dir);
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno == ENOENT) return 0; /* a new data directory */
    snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
    return -errno;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
  size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
  fclose(f);
  Runnel__BrokerMeta *m = buf && got == (size_t)n ? runnel__broker_meta__unpack(NULL, got, buf) : NULL;
  free(buf);
  if (!m) {
    snprintf(why, whylen, "%s is damaged (not a BrokerMeta message); refusing to start rather than forget streams", path);
    return RN_ECORRUPT;
  }
  eng->next_uid = m->next_uid;
  eng->producer_id_limit = m->producer_id_limit;
  rn_err_t err = 0;
  for (size_t i = 0; i < m->n_streams && !err; i++) {
    Runnel__StreamMeta *sm = m->streams[i];
    if (!sm->config || !valid_name(sm->config->name) || sm->config->shard_count == 0) {
      snprintf(why, whylen, "%s: stream entry %zu is invalid", path, i);
      err = RN_ECORRUPT;
      break;
    }
    rn_stream_t *st = stream_new(sm->config->name, sm->config->shard_count);
    if (!st) {
      err = RN_ENOMEM;
      break;
    }
    st->uid = sm->uid;
    st->retention_ms = sm->config->retention_ms;
    st->retention_bytes = sm->config->retention_bytes;
    st->durability = (rn_durability_t)sm->config->durability;
    st->created_ms = sm->created_ms;
    st->state = RN__STREAM_ACTIVE;
    st->refs = 1;
    err = registry_add(eng, st);
    if (err) {
      stream_free(st);
      break;
    }
    err = stream_open_logs(eng, st, why, whylen);
    for (uint32_t k = 0; !err && k < st->nshards; k++) err = rn__shard_load_producers(eng, &st->shards[k]);
    if (!err) {
      eng->stats.streams++;
      eng->stats.shards += st->nshards;
    }
  }
  runnel__broker_meta__free_unpacked(m, NULL);
  return err;
}

/* Remove stream directories the metadata does not know (interrupted create
 * or delete). */
static void remove_orphans(rn_engine_t *eng) {
  char path[4200];
  snprintf(path, sizeof(path), "%s/streams", eng->data_dir);
  DIR *d = opendir(path);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    bool known = false;
    for (uint32_t i = 0; i < eng->nstreams && !known; i++) {
      char name[400];
      snprintf(name, sizeof(name), "%s-%" PRIu64, eng->streams[i]->name, eng->streams[i]->uid);
      known = !strcmp(name, e->d_name);
    }
    if (!known) {
      char *p = malloc(strlen(path) + strlen(e->d_name) + 2);
      if (!p) break;
      sprintf(p, "%s/%s", path, e->d_name);
      rn__eng_say(eng, RN_LOG_WARN, "removing %s: not in the metadata (an interrupted create or delete)", p);
      nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
      free(p);
    }
  }
  closedir(d);
}

rn_err_t rn_engine_open(const rn_engine_opts_t *opts, rn_engine_t **out, char *why, size_t whylen) {
  *out = NULL;
  why[0] = 0;
  rn_engine_t *eng = calloc(1, sizeof(*eng));
  if (!eng) return RN_ENOMEM;
  eng->opts = *opts;
  eng->loop = opts->loop;
  eng->data_dir = strdup(opts->data_dir);
  eng->started_ms = rn__now_ms();
  pthread_mutex_init(&eng->meta_mu, NULL);
  eng->next_uid = 1;
  eng->producer_id_limit = 1;
  char path[4200];
  snprintf(path, sizeof(path), "%s/meta", eng->data_dir);
  rn_err_t err = rn_fs_posix()->mkdirs(rn_fs_posix(), path);
  if (!err) {
    snprintf(path, sizeof(path), "%s/streams", eng->data_dir);
    err = rn_fs_posix()->mkdirs(rn_fs_posix(), path);
  }
  if (err) {
    snprintf(why, whylen, "cannot create %s: %s", path, rn_strerror(err));
    goto fail;
  }
  rn_io_opts_t io_opts;
  rn_io_opts_default(&io_opts);
  io_opts.backend = opts->io_backend;
  err = rn_io_new(&io_opts, &eng->io);
  if (err) {
    snprintf(why, whylen, "disk I/O backend: %s", rn_strerror(err));
    goto fail;
  }
  err = load_meta(eng, why, whylen);
  if (err) goto fail;
  remove_orphans(eng);
  err = rn__groups_open(eng, why, whylen);
  if (err) goto fail;
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
  rn__eng_say(eng, RN_LOG_INFO, "opened %s: %u stream(s), %u shard(s), disk I/O %s", eng->data_dir,
              eng->stats.streams, eng->stats.shards, rn_io_backend_name(rn_io_backend(eng->io)));
  *out = eng;
  return 0;
fail:
  if (!why[0]) snprintf(why, whylen, "%s", rn_strerror(err));
  rn__groups_close(eng);
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    close_stream_logs(eng->streams[i], false);
    stream_free(eng->streams[i]);
  }
  free(eng->streams);
  rn_io_destroy(eng->io);
  free(eng->meta_buf);
  pthread_mutex_destroy(&eng->meta_mu);
  free(eng->data_dir);
  free(eng);
  return err;
}

void rn_engine_drain(rn_engine_t *eng) {
  eng->draining = true;
  for (uint32_t i = 0; i < eng->nstreams; i++)
    for (uint32_t k = 0; k < eng->streams[i]->nshards; k++) rn__shard_wake_all(eng, &eng->streams[i]->shards[k]);
}

int rn_engine_idle(const rn_engine_t *eng) { return eng->inflight_appends == 0 && eng->pending_work == 0; }

int rn_engine_draining(const rn_engine_t *eng) { return eng->draining; }

static void on_handle_closed(uv_handle_t *h) { (void)h; }

rn_err_t rn_engine_close(rn_engine_t *eng) {
  if (!eng) return 0;
  rn_err_t first = 0;
  uv_poll_stop(&eng->io_poll);
  uv_close((uv_handle_t *)&eng->io_poll, on_handle_closed);
  uv_timer_stop(&eng->tick);
  uv_close((uv_handle_t *)&eng->tick, on_handle_closed);
  uv_check_stop(&eng->reaper);
  uv_close((uv_handle_t *)&eng->reaper, on_handle_closed);
  /* Let the handles' close callbacks and any thread-pool work finish. */
  while (eng->pending_work) uv_run(eng->loop, UV_RUN_ONCE);
  uv_run(eng->loop, UV_RUN_NOWAIT);
  {
    rn_err_t err = rn__groups_close(eng);
    if (err && !first) first = err;
  }
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    rn_stream_t *st = eng->streams[i];
    for (uint32_t k = 0; k < st->nshards; k++) {
      if (!st->shards[k].log) continue;
      rn_err_t err = rn_log_close(st->shards[k].log);
      st->shards[k].log = NULL;
      if (err && !first) first = err;
    }
    stream_free(st);
  }
  while (eng->ndoomed) stream_destroy(eng, eng->doomed[--eng->ndoomed]);
  /* The removal jobs just queued by stream_destroy: */
  while (eng->pending_work) uv_run(eng->loop, UV_RUN_ONCE);
  free(eng->doomed);
  free(eng->streams);
  rn_io_destroy(eng->io);
  free(eng->meta_buf);
  pthread_mutex_destroy(&eng->meta_mu);
  rn__eng_say(eng, RN_LOG_INFO, "closed %s%s", eng->data_dir, first ? " with errors" : " cleanly");
  free(eng->data_dir);
  free(eng);
  return first;
}

void rn_engine_stats(const rn_engine_t *eng, rn_engine_stats_t *st) {
  *st = eng->stats;
  st->failed_shards = 0;
  for (uint32_t i = 0; i < eng->nstreams; i++)
    for (uint32_t k = 0; k < eng->streams[i]->nshards; k++) {
      rn_log_t *log = eng->streams[i]->shards[k].log;
      if (log && rn_log_failure(log)) st->failed_shards++;
    }
}

const double rn_engine_latency_bounds[RN_ENGINE_LATENCY_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

void rn_engine_foreach_shard(const rn_engine_t *eng, rn_engine_shard_stats_fn fn, void *arg) {
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    const rn_stream_t *st = eng->streams[i];
    if (st->state != RN__STREAM_ACTIVE) continue;
    for (uint32_t k = 0; k < st->nshards; k++) {
      const rn_shard_t *sh = &st->shards[k];
      rn_engine_shard_stats_t s = sh->metrics;
      s.stream = st->name;
      s.shard = k;
      s.start_offset = sh->log ? rn_log_start(sh->log) : 0;
      s.end_offset = sh->log ? rn_log_end(sh->log) : 0;
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
        rn_log_sync_stats_t ss;
        rn_log_sync_stats(sh->log, &ss);
        s.sync_count = ss.count;
        s.sync_seconds_sum = ss.seconds_sum;
        _Static_assert(RN_LOG_SYNC_BUCKETS == RN_ENGINE_LATENCY_BUCKETS, "same histogram bounds");
        memcpy(s.sync_buckets, ss.buckets, sizeof(s.sync_buckets));
      }
      fn(arg, &s);
    }
  }
}
