/*
 * sink.c — archive sinks: their state (durable in <data_dir>/sinks/sinks.meta),
 * the per-shard delivery machine, the admin operations and the numbers
 * describe and /metrics report. rn_sinks.h states the order of work.
 *
 * Invariants:
 *  - A shard's checkpoint `next` only moves after every object of a flush
 *    was PUT, and every record below it is in exactly one data or error
 *    object.
 *  - A flush's range is durable (pending) before its first PUT, and a
 *    pending range is redone exactly, so a retry rewrites the same keys.
 *  - One step in flight per shard: reading, encoding or putting. The
 *    buffer holds whole stored batches starting at or before `next`.
 *  - Memory of a sink is reachable while anything it started is in flight:
 *    every fetch, encode job, PUT and state write holds a reference.
 *
 * Loop thread only, except encode_work and snap_work (thread pool).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rn_base.h"
#include "rn_core.h"
#include "rn_fs.h"
#include "rn_sinks.h"
#include "runnel.pb-c.h"
#include "runnel/batch.h"
#include "runnel/keys.h"
#include "sinks_int.h"

/* protobuf-c takes char * for strings it only reads when packing. */
#define W(s) ((char *)(uintptr_t)(s))

#define STATE_DIR "sinks"
#define STATE_FILE "sinks.meta"
#define DEFAULT_BUFFER_BYTES (5ull << 20)
#define DEFAULT_INTERVAL_MS 300000
#define MAX_RETRY_MS 30000u
#define MIN_FETCH_BYTES (64u << 10)

typedef struct sink sink_t;

/* A shard reads and flushes at once: while one flush is encoded and PUT,
 * the next buffer fills. At most one flush at a time (its range is the one
 * pending range), and reading stops once the next buffer is full. */
typedef enum { FL_NONE, FL_ENCODING, FL_PUTTING, FL_RETRY } flush_phase_t;

typedef struct sshard {
  sink_t *sk;
  uint32_t shard;
  uint64_t next;          /* durable checkpoint (once the snapshot holding it is written) */
  bool pending;           /* [pfirst, plast] is being delivered (or, after a restart, must be redone) */
  uint64_t pfirst, plast;
  /* Reading: whole stored batches covering [.., buf_end), the records at
   * or after the flush's range. */
  bool reading;           /* a fetch is out */
  uint64_t read_retry_at_ns; /* != 0: the last read failed; not before then */
  uint8_t *buf;
  size_t len, cap;
  uint64_t buf_end, buf_records;
  int64_t oldest_arrival_ms; /* of the first buffered record */
  uint64_t since_ns;      /* monotonic time the first batch was buffered */
  /* The flush in progress: its batches (moved from the buffer), objects. */
  flush_phase_t fl;
  uint8_t *fbuf;
  size_t flen;
  int64_t f_oldest_ms;
  rn__sink_obj_t *objs;
  size_t nobjs, puts_left;
  bool put_failed;
  uint64_t retry_at_ns;
  uint32_t retry_ms;
  uint64_t enc_records, enc_errors;
  /* Counters since the broker started. */
  uint64_t objects, records, error_records, bytes_out, put_failures, skipped;
  char last_error[256];
} sshard_t;

struct sink {
  rn_sinks_t *ss;
  unsigned refs;
  bool deleted;           /* gone from ss->sinks; freed at refs == 0 */
  char *name, *stream, *dest, *schema, *prefix, *error_prefix, *event_time_field;
  rn_sink_config_t cfg;   /* strings point at the copies above */
  rn__sink_fmt_t *fmt;
  uint64_t stream_uid;
  int64_t created_ms;
  bool paused;
  char stopped[200];      /* "" running; else why delivery stopped */
  rn_core_stream_t *st;   /* bound (referenced) while the stream is ACTIVE */
  rn_objstore_t *store;   /* NULL when opts.store is used */
  uv_poll_t *poll;        /* its own allocation: freed by its close callback, which may run after the sink */
  bool poll_on;
  sshard_t *shards;
  uint32_t nshards;
  /* The state loaded for shards of a stream not bound yet. */
  Runnel__SinkState *loaded;
};

struct rn_sinks {
  rn_core_t *core;
  rn_sinks_opts_t opts;
  rn_fs_t *fs;
  char *dir;
  rn_snapshot_slot_t *slot;
  sink_t **sinks;
  size_t nsinks;
  Runnel__SinksSnapshot *loaded; /* the file as read at open, until every sink took its part */
  bool closing;
  /* Encode jobs running, and the shards waiting for one (FIFO): at most
   * opts.encode_jobs at once, so encoding never holds every thread of the
   * pool that core's reads and metadata writes also use. */
  uv_poll_t *store_poll;  /* opts.store's completions, when one is given */
  unsigned encoding;
  sshard_t **encq;
  size_t nencq, capencq;
};

/* ---- helpers ------------------------------------------------------------------------ */

static void shard_error(sshard_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void shard_error(sshard_t *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->last_error, sizeof s->last_error, fmt, ap);
  va_end(ap);
  rn_core_log(s->sk->ss->core, RN_LVL_WARN, "sink %s shard %u: %s", s->sk->name, s->shard, s->last_error);
}

static uint64_t mono_ns(const rn_sinks_t *ss) { return rn_clock_mono_ns(&rn_core_options(ss->core)->clock); }

static char *dup_or_empty(const char *s) { return rn_xstrdup(s ? s : ""); }

static void sink_ref(sink_t *sk) { sk->refs++; }
static void sink_free(sink_t *sk);
static void sink_unref(sink_t *sk) {
  if (--sk->refs == 0) sink_free(sk);
}

/* Drop the read buffer: reading goes on after the flush's range, or at the checkpoint. */
static void buffer_clear(sshard_t *s) {
  free(s->buf);
  s->buf = NULL;
  s->len = s->cap = 0;
  s->buf_end = s->fl != FL_NONE ? s->plast + 1 : s->next;
  s->buf_records = 0;
  s->oldest_arrival_ms = 0;
}

static void objs_clear(sshard_t *s) {
  rn__sink_objs_free(s->objs, s->nobjs);
  s->objs = NULL;
  s->nobjs = s->puts_left = 0;
  free(s->fbuf);
  s->fbuf = NULL;
  s->flen = 0;
}

/* ---- the state file ----------------------------------------------------------------- */

static Runnel__SinkConfig *config_to_pb(rn_arena_t *a, const rn_sink_config_t *c) {
  Runnel__SinkConfig *p = rn_arena_alloc(a, sizeof *p);
  runnel__sink_config__init(p);
  p->name = W(c->name);
  p->stream = W(c->stream);
  p->destination = W(c->destination);
  p->format = (Runnel__SinkFormat)c->format;
  p->compression = (Runnel__SinkCompression)c->compression;
  p->schema = W(c->schema);
  p->prefix = W(c->prefix);
  p->error_prefix = W(c->error_prefix);
  p->buffer_bytes = c->buffer_bytes;
  p->buffer_interval_ms = c->buffer_interval_ms;
  p->event_time_field = W(c->event_time_field);
  p->start_kind = c->start_latest ? RUNNEL__POSITION_KIND__POSITION_LATEST : RUNNEL__POSITION_KIND__POSITION_EARLIEST;
  return p;
}

static void config_from_pb(rn_sink_config_t *c, const Runnel__SinkConfig *p) {
  memset(c, 0, sizeof *c);
  c->name = p->name;
  c->stream = p->stream;
  c->destination = p->destination;
  c->format = (rn_sink_format_t)p->format;
  c->compression = (rn_sink_compression_t)p->compression;
  c->schema = p->schema;
  c->prefix = p->prefix;
  c->error_prefix = p->error_prefix;
  c->buffer_bytes = p->buffer_bytes;
  c->buffer_interval_ms = p->buffer_interval_ms;
  c->event_time_field = p->event_time_field;
  c->start_latest = p->start_kind == RUNNEL__POSITION_KIND__POSITION_LATEST;
}

/* Hand the state as it is now to the slot (written by the next snap job). */
static void state_put(rn_sinks_t *ss) {
  rn_arena_t a = {0};
  Runnel__SinksSnapshot snap;
  runnel__sinks_snapshot__init(&snap);
  snap.sinks = rn_arena_alloc(&a, (ss->nsinks + 1) * sizeof *snap.sinks);
  for (size_t i = 0; i < ss->nsinks; i++) {
    sink_t *sk = ss->sinks[i];
    if (sk->loaded != NULL && sk->shards == NULL) { /* not bound: keep what was loaded */
      snap.sinks[snap.n_sinks++] = sk->loaded;
      continue;
    }
    Runnel__SinkState *st = rn_arena_alloc(&a, sizeof *st);
    runnel__sink_state__init(st);
    st->config = config_to_pb(&a, &sk->cfg);
    st->stream_uid = sk->stream_uid;
    st->created_ms = sk->created_ms;
    st->paused = sk->paused;
    st->shards = rn_arena_alloc(&a, (sk->nshards + 1) * sizeof *st->shards);
    for (uint32_t j = 0; j < sk->nshards; j++) {
      const sshard_t *s = &sk->shards[j];
      Runnel__SinkShardState *p = rn_arena_alloc(&a, sizeof *p);
      runnel__sink_shard_state__init(p);
      p->shard = s->shard;
      p->next = s->next;
      p->pending = s->pending;
      p->pending_first = s->pfirst;
      p->pending_last = s->plast;
      st->shards[st->n_shards++] = p;
    }
    snap.sinks[snap.n_sinks++] = st;
  }
  size_t len = runnel__sinks_snapshot__get_packed_size(&snap);
  uint8_t *buf = rn_xmalloc(len ? len : 1);
  runnel__sinks_snapshot__pack(&snap, buf);
  rn_arena_free(&a);
  rn_snapshot_slot_put(ss->slot, buf, len);
}

/* A write of the state on the thread pool; then `after` on the loop. */
typedef struct snap_job {
  uv_work_t work;
  rn_sinks_t *ss;
  sink_t *sk;                  /* referenced, or NULL */
  rn_err_t err;
  void (*after)(struct snap_job *j);
  rn_sink_reply_cb cb;         /* an admin reply waiting for durability */
  void *ctx;
  bool describe;               /* reply with the sink's description */
} snap_job_t;

static void snap_work(uv_work_t *w) {
  snap_job_t *j = w->data;
  j->err = rn_snapshot_slot_flush(j->ss->slot);
}

static void reply_sink(sink_t *sk, rn_sink_reply_cb cb, void *ctx);

static void snap_after(uv_work_t *w, int status) {
  (void)status;
  snap_job_t *j = w->data;
  rn_sinks_t *ss = j->ss;
  rn_core_work_end(ss->core);
  if (j->err != 0)
    rn_core_log(ss->core, RN_LVL_ERROR, "sinks: writing %s/%s failed: %s", ss->dir, STATE_FILE, rn_strerror(j->err));
  if (j->after != NULL) j->after(j);
  if (j->cb != NULL) {
    if (j->err != 0) {
      char msg[200];
      snprintf(msg, sizeof msg, "writing the sinks' state failed: %s", rn_strerror(j->err));
      rn_sink_reply_t r = {.err = j->err, .message = msg};
      j->cb(j->ctx, &r);
    } else if (j->describe && j->sk != NULL) {
      reply_sink(j->sk, j->cb, j->ctx);
    } else {
      rn_sink_reply_t r = {0};
      j->cb(j->ctx, &r);
    }
  }
  if (j->sk != NULL) sink_unref(j->sk);
  free(j);
}

/* state_put, then write it; `after` and the reply run once it is durable. */
static void state_write(rn_sinks_t *ss, sink_t *sk, void (*after)(snap_job_t *), rn_sink_reply_cb cb, void *ctx,
                        bool describe) {
  state_put(ss);
  snap_job_t *j = rn_xcalloc(1, sizeof *j);
  j->work.data = j;
  j->ss = ss;
  j->sk = sk;
  if (sk) sink_ref(sk);
  j->after = after;
  j->cb = cb;
  j->ctx = ctx;
  j->describe = describe;
  rn_core_work_begin(ss->core);
  if (uv_queue_work(rn_core_loop(ss->core), &j->work, snap_work, snap_after) != 0) {
    j->err = RN_ENOMEM;
    snap_after(&j->work, 0);
  }
}

/* ---- the object store of a sink ----------------------------------------------------- */

static void on_store(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  sink_t *sk = h->data;
  rn_objstore_poll(sk->store);
}

static void poll_freed(uv_handle_t *h) { free(h); }

static void on_shared_store(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  rn_sinks_t *ss = h->data;
  rn_objstore_poll(ss->opts.store);
}

static rn_objstore_t *sink_store(const sink_t *sk) { return sk->store ? sk->store : sk->ss->opts.store; }

/* Parse "s3://bucket/prefix/" or "file:///dir/" and make the store. */
static rn_err_t store_open(rn_sinks_t *ss, const char *dest, rn_objstore_t **out, char *why, size_t whylen) {
  *out = NULL;
  if (strncmp(dest, "s3://", 5) == 0) {
    const char *b = dest + 5;
    const char *slash = strchr(b, '/');
    size_t blen = slash ? (size_t)(slash - b) : strlen(b);
    if (blen < 3 || blen > 63) {
      snprintf(why, whylen, "destination %s: the bucket name must have 3 to 63 characters", dest);
      return RN_EINVAL;
    }
    char bucket[64], prefix[1024];
    memcpy(bucket, b, blen);
    bucket[blen] = '\0';
    const char *p = slash ? slash + 1 : "";
    size_t plen = strlen(p);
    if (plen >= sizeof prefix - 1) {
      snprintf(why, whylen, "destination %s: prefix too long", dest);
      return RN_EINVAL;
    }
    memcpy(prefix, p, plen + 1);
    if (plen > 0 && prefix[plen - 1] != '/') strcat(prefix, "/");
    rn_s3_opts_t o = ss->opts.s3;
    o.bucket = bucket;
    o.prefix = prefix;
    return rn_s3_new(&o, out, why, whylen);
  }
  if (strncmp(dest, "file://", 7) == 0) {
    const char *dir = dest + 7;
    if (dir[0] != '/') {
      snprintf(why, whylen, "destination %s: a file:// destination needs an absolute path (file:///dir/)", dest);
      return RN_EINVAL;
    }
    return rn_localdir_new(dir, out, why, whylen);
  }
  snprintf(why, whylen, "destination %s: expected s3://bucket/prefix/ or file:///dir/", dest);
  return RN_EINVAL;
}

/* ---- sinks: making and freeing ------------------------------------------------------ */

static void poll_closed(uv_handle_t *h) {
  sink_t *sk = h->data;
  free(h);
  sink_unref(sk);
}

/* Destroying a store joins its threads: on the thread pool, unless the loop
 * no longer runs (close). Nothing may be in flight on it. */
typedef struct store_job {
  uv_work_t work;
  rn_core_t *core;
  rn_objstore_t *store;
} store_job_t;

static void store_destroy_work(uv_work_t *w) {
  store_job_t *j = w->data;
  rn_objstore_destroy(j->store);
}

static void store_destroy_after(uv_work_t *w, int status) {
  (void)status;
  store_job_t *j = w->data;
  rn_core_work_end(j->core);
  free(j);
}

static void store_destroy(rn_sinks_t *ss, rn_objstore_t *store) {
  if (store == NULL) return;
  if (ss->closing) {
    rn_objstore_destroy(store);
    return;
  }
  store_job_t *j = rn_xcalloc(1, sizeof *j);
  j->work.data = j;
  j->core = ss->core;
  j->store = store;
  rn_core_work_begin(ss->core);
  if (uv_queue_work(rn_core_loop(ss->core), &j->work, store_destroy_work, store_destroy_after) != 0) {
    rn_objstore_destroy(store);
    store_destroy_after(&j->work, 0);
  }
}

static void sink_free(sink_t *sk) {
  for (uint32_t i = 0; i < sk->nshards; i++) {
    buffer_clear(&sk->shards[i]);
    objs_clear(&sk->shards[i]);
  }
  free(sk->shards);
  if (sk->st) rn_core_stream_unref(sk->st);
  store_destroy(sk->ss, sk->store);
  rn__sink_fmt_free(sk->fmt);
  free(sk->name);
  free(sk->stream);
  free(sk->dest);
  free(sk->schema);
  free(sk->prefix);
  free(sk->error_prefix);
  free(sk->event_time_field);
  free(sk);
}

/* Copy c into a new sink (refs 1: the list's) and compile its format. The
 * store comes after (sink_attach_store): opening one touches files. */
static rn_err_t sink_new(rn_sinks_t *ss, const rn_sink_config_t *c, sink_t **out, char *why, size_t whylen) {
  rn__sink_fmt_t *fmt;
  rn_err_t rc = rn__sink_fmt_compile(c, &fmt, why, whylen);
  if (rc != 0) return rc;
  sink_t *sk = rn_xcalloc(1, sizeof *sk);
  sk->ss = ss;
  sk->refs = 1;
  sk->fmt = fmt;
  sk->name = dup_or_empty(c->name);
  sk->stream = dup_or_empty(c->stream);
  sk->dest = dup_or_empty(c->destination);
  sk->schema = dup_or_empty(c->schema);
  sk->prefix = dup_or_empty(c->prefix && *c->prefix ? c->prefix : "!{timestamp:yyyy/MM/dd/HH}/");
  sk->error_prefix =
      dup_or_empty(c->error_prefix && *c->error_prefix ? c->error_prefix : "errors/!{error}/!{timestamp:yyyy/MM/dd}/");
  sk->event_time_field = dup_or_empty(c->event_time_field);
  sk->cfg = *c;
  sk->cfg.name = sk->name;
  sk->cfg.stream = sk->stream;
  sk->cfg.destination = sk->dest;
  sk->cfg.schema = sk->schema;
  sk->cfg.prefix = sk->prefix;
  sk->cfg.error_prefix = sk->error_prefix;
  sk->cfg.event_time_field = sk->event_time_field;
  if (sk->cfg.buffer_bytes == 0) sk->cfg.buffer_bytes = DEFAULT_BUFFER_BYTES;
  if (sk->cfg.buffer_interval_ms == 0) sk->cfg.buffer_interval_ms = DEFAULT_INTERVAL_MS;
  *out = sk;
  return 0;
}

/* Give sk its store (NULL: opts.store is used) and poll it on the loop. */
static void sink_attach_store(sink_t *sk, rn_objstore_t *store) {
  sk->store = store;
  if (store == NULL) return;
  sk->poll = rn_xcalloc(1, sizeof *sk->poll);
  sk->poll->data = sk;
  uv_poll_init(rn_core_loop(sk->ss->core), sk->poll, rn_objstore_fd(store));
  uv_poll_start(sk->poll, UV_READABLE, on_store);
  sk->poll_on = true;
  sink_ref(sk); /* the poll handle's, dropped when it closed */
}

/* Take sk out of the list; it is freed once nothing in flight holds it. */
static void sink_remove(rn_sinks_t *ss, sink_t *sk) {
  for (size_t i = 0; i < ss->nsinks; i++)
    if (ss->sinks[i] == sk) {
      memmove(&ss->sinks[i], &ss->sinks[i + 1], (ss->nsinks - i - 1) * sizeof *ss->sinks);
      ss->nsinks--;
      break;
    }
  sk->deleted = true;
  if (sk->poll_on) {
    sk->poll_on = false;
    uv_close((uv_handle_t *)sk->poll, poll_closed);
  }
  sink_unref(sk);
}

static sink_t *sink_find(const rn_sinks_t *ss, const char *name) {
  for (size_t i = 0; i < ss->nsinks; i++)
    if (strcmp(ss->sinks[i]->name, name) == 0) return ss->sinks[i];
  return NULL;
}

/* Give sk shards for st (at `start` each, or the loaded state) and hold st. */
static void sink_bind(sink_t *sk, rn_core_stream_t *st, bool latest) {
  uint32_t n = rn_core_stream_nshards(st);
  sk->shards = rn_xcalloc(n ? n : 1, sizeof *sk->shards);
  sk->nshards = n;
  for (uint32_t i = 0; i < n; i++) {
    sshard_t *s = &sk->shards[i];
    rn_core_shard_t *sh = rn_core_stream_shard(st, i);
    s->sk = sk;
    s->shard = i;
    s->next = latest ? rn_core_shard_end_offset(sh) : rn_core_shard_start_offset(sh);
    s->retry_ms = sk->ss->opts.retry_ms;
    if (sk->loaded != NULL)
      for (size_t j = 0; j < sk->loaded->n_shards; j++) {
        const Runnel__SinkShardState *p = sk->loaded->shards[j];
        if (p->shard != i) continue;
        s->next = p->next;
        s->pending = p->pending;
        s->pfirst = p->pending_first;
        s->plast = p->pending_last;
      }
    s->buf_end = s->next;
  }
  sk->loaded = NULL;
  sk->st = st;
  rn_core_stream_ref(st);
}

/* ---- delivery ------------------------------------------------------------------------ */

static void shard_step(sshard_t *s);

static bool shard_runs(const sshard_t *s) {
  const sink_t *sk = s->sk;
  return !sk->deleted && !sk->paused && sk->stopped[0] == '\0' && sk->st != NULL && !sk->ss->closing &&
         !rn_core_draining(sk->ss->core);
}

static uint64_t backoff_ns(sshard_t *s) {
  uint64_t at = mono_ns(s->sk->ss) + (uint64_t)s->retry_ms * 1000000ull;
  s->retry_ms = s->retry_ms * 2 > MAX_RETRY_MS ? MAX_RETRY_MS : s->retry_ms * 2;
  return at;
}

static void flush_retry_later(sshard_t *s) {
  s->fl = FL_RETRY;
  s->retry_at_ns = backoff_ns(s);
}

/* The read buffer is ready to become the next flush. */
static bool flush_due(const sshard_t *s) {
  if (s->fl != FL_NONE) return false;
  if (s->pending) return s->buf_end > s->plast; /* a range to redo: all of it read */
  if (s->len == 0) return false;
  if (s->len >= s->sk->cfg.buffer_bytes) return true;
  uint64_t waited = mono_ns(s->sk->ss) - s->since_ns;
  return waited >= (uint64_t)s->sk->cfg.buffer_interval_ms * 1000000ull;
}

/* -- encode -- */

typedef struct enc_job {
  uv_work_t work;
  sshard_t *s;
  rn__sink_enc_t e;
  rn_err_t state_err;
} enc_job_t;

static void encode_work(uv_work_t *w) {
  enc_job_t *j = w->data;
  /* The flush's range durable before any PUT (the invariant above). */
  j->state_err = rn_snapshot_slot_flush(j->s->sk->ss->slot);
  if (j->state_err == 0) rn__sink_encode(&j->e);
}

static void start_puts(sshard_t *s);
static void encode_next(rn_sinks_t *ss);

static void encode_after(uv_work_t *w, int status) {
  (void)status;
  enc_job_t *j = w->data;
  sshard_t *s = j->s;
  sink_t *sk = s->sk;
  rn_core_work_end(sk->ss->core);
  sk->ss->encoding--;
  if (j->state_err != 0) {
    shard_error(s, "writing the sinks' state failed: %s (the flush waits)", rn_strerror(j->state_err));
    flush_retry_later(s);
  } else if (j->e.err != 0) {
    shard_error(s, "encoding [%llu, %llu] failed: %s", (unsigned long long)j->e.first, (unsigned long long)j->e.last,
                j->e.msg);
    rn__sink_objs_free(j->e.objs, j->e.nobjs);
    flush_retry_later(s);
  } else if (sk->deleted || sk->ss->closing) {
    rn__sink_objs_free(j->e.objs, j->e.nobjs);
    s->fl = FL_NONE;
  } else {
    s->objs = j->e.objs;
    s->nobjs = j->e.nobjs;
    s->enc_records = j->e.records;
    s->enc_errors = j->e.error_records;
    start_puts(s);
  }
  free(j);
  encode_next(sk->ss);
  sink_unref(sk);
}

static void encode_start(sshard_t *s) {
  sink_t *sk = s->sk;
  sk->ss->encoding++;
  enc_job_t *j = rn_xcalloc(1, sizeof *j);
  j->work.data = j;
  j->s = s;
  j->e.fmt = sk->fmt;
  j->e.sink = sk->name;
  j->e.shard = s->shard;
  j->e.batches = s->fbuf;
  j->e.len = s->flen;
  j->e.first = s->pfirst;
  j->e.last = s->plast;
  sink_ref(sk);
  rn_core_work_begin(sk->ss->core);
  if (uv_queue_work(rn_core_loop(sk->ss->core), &j->work, encode_work, encode_after) != 0) {
    j->state_err = RN_ENOMEM;
    encode_after(&j->work, 0);
  }
}

/* Queue s's flush for an encode job; the next waiting one starts when a job is free. */
static void encode_queue(sshard_t *s) {
  rn_sinks_t *ss = s->sk->ss;
  s->fl = FL_ENCODING;
  if (ss->capencq == ss->nencq) {
    ss->capencq = ss->capencq ? ss->capencq * 2 : 16;
    ss->encq = rn_xrealloc(ss->encq, ss->capencq * sizeof *ss->encq);
  }
  sink_ref(s->sk);
  ss->encq[ss->nencq++] = s;
  encode_next(ss);
}

static void encode_next(rn_sinks_t *ss) {
  while (ss->nencq > 0 && ss->encoding < ss->opts.encode_jobs) {
    sshard_t *s = ss->encq[0];
    memmove(ss->encq, ss->encq + 1, (ss->nencq - 1) * sizeof *ss->encq);
    ss->nencq--;
    encode_start(s);
    sink_unref(s->sk); /* the queue's */
  }
}

/* The read buffer becomes the flush of [next, buf_end - 1] (or of the
 * pending range being redone); reading goes on after it. */
static void start_flush(sshard_t *s) {
  sink_t *sk = s->sk;
  if (!s->pending) {
    s->pending = true;
    s->pfirst = s->next;
    s->plast = s->buf_end - 1;
    state_put(sk->ss);
  }
  s->fbuf = s->buf;
  s->flen = s->len;
  s->f_oldest_ms = s->oldest_arrival_ms;
  s->buf = NULL;
  s->len = s->cap = 0;
  s->buf_records = 0;
  s->oldest_arrival_ms = 0;
  s->fl = FL_ENCODING;
  if (s->buf_end > s->plast + 1) s->buf_end = s->plast + 1; /* a redone range read past its end */
  encode_queue(s);
}

/* -- put -- */

typedef struct put_op {
  sshard_t *s;
  size_t i;
} put_op_t;

static void flush_done(sshard_t *s) {
  sink_t *sk = s->sk;
  s->objects += s->nobjs;
  s->records += s->enc_records;
  s->error_records += s->enc_errors;
  for (size_t i = 0; i < s->nobjs; i++) s->bytes_out += s->objs[i].len;
  s->next = s->plast + 1;
  s->pending = false;
  s->retry_ms = sk->ss->opts.retry_ms;
  s->last_error[0] = '\0';
  objs_clear(s);
  s->fl = FL_NONE;
  state_write(sk->ss, NULL, NULL, NULL, NULL, false);
}

static void on_put(void *arg, const rn_obj_result_t *r) {
  put_op_t *op = arg;
  sshard_t *s = op->s;
  sink_t *sk = s->sk;
  if (r->err == 0) {
    s->objs[op->i].stored = true;
  } else {
    s->put_failed = true;
    s->put_failures++;
    if (r->err != RN_ECANCELED) shard_error(s, "PUT %s failed: %s", s->objs[op->i].key, r->message);
  }
  free(op);
  if (--s->puts_left == 0) {
    if (s->put_failed) {
      flush_retry_later(s);
    } else {
      flush_done(s);
      shard_step(s);
    }
  }
  sink_unref(sk);
}

static void start_puts(sshard_t *s) {
  sink_t *sk = s->sk;
  s->fl = FL_PUTTING;
  s->put_failed = false;
  size_t todo = 0;
  for (size_t i = 0; i < s->nobjs; i++) todo += !s->objs[i].stored;
  if (todo == 0) {
    flush_done(s);
    shard_step(s);
    return;
  }
  s->puts_left = todo;
  for (size_t i = 0; i < s->nobjs; i++) {
    if (s->objs[i].stored) continue;
    put_op_t *op = rn_xcalloc(1, sizeof *op);
    op->s = s;
    op->i = i;
    sink_ref(sk);
    rn_err_t rc = rn_objstore_put_mem(sink_store(sk), s->objs[i].key, s->objs[i].data, s->objs[i].len, on_put, op);
    if (rc != 0) {
      rn_obj_result_t r = {.err = rc};
      snprintf(r.message, sizeof r.message, "%s", rn_strerror(rc));
      on_put(op, &r);
    }
  }
}

/* -- read -- */

static void on_fetch(void *ctx, const rn_core_fetch_result_t *r) {
  sshard_t *s = ctx;
  sink_t *sk = s->sk;
  s->reading = false;
  if (sk->deleted || sk->ss->closing) {
    sink_unref(sk);
    return;
  }
  const rn_core_fetch_shard_result_t *fr = r->err == 0 && r->nresults == 1 ? &r->results[0] : NULL;
  rn_err_t err = fr ? fr->err : r->err;
  if (err == 0 && s->pending && s->fl == FL_NONE && fr->batches_len == 0 && fr->end_offset <= s->plast) {
    /* The range of a flush to redo is no longer all in the log (a stream
     * without sync durability lost its tail in a crash): deliver what is
     * there. */
    shard_error(s, "the pending flush [%llu, %llu] ends past the log's end %llu; delivering up to the end",
                (unsigned long long)s->pfirst, (unsigned long long)s->plast, (unsigned long long)fr->end_offset);
    if (fr->end_offset <= s->pfirst)
      s->pending = false;
    else
      s->plast = fr->end_offset - 1;
    state_put(sk->ss);
  }
  if (err == RN_EOFFSET && fr != NULL && fr->start_offset > s->buf_end && s->len == 0 && s->fl == FL_NONE) {
    /* Retention removed records the sink had not delivered yet. */
    s->skipped += fr->start_offset - s->next;
    shard_error(s, "records %llu..%llu expired before they were delivered; going on at %llu",
                (unsigned long long)s->next, (unsigned long long)fr->start_offset - 1,
                (unsigned long long)fr->start_offset);
    s->next = s->buf_end = fr->start_offset;
    if (s->pending && s->plast < s->next) s->pending = false;
    state_put(sk->ss);
  } else if (err != 0) {
    if (err != RN_ESHUTDOWN) shard_error(s, "reading failed: %s", fr && fr->msg ? fr->msg : r->msg);
    s->read_retry_at_ns = backoff_ns(s);
    sink_unref(sk);
    return;
  } else if (fr->batches_len > 0 && shard_runs(s)) {
    /* Copy the batches; note their records and arrival times. */
    const uint8_t *p = fr->batches;
    size_t left = fr->batches_len;
    if (s->len == 0) s->since_ns = mono_ns(sk->ss);
    if (s->cap - s->len < left) {
      size_t cap = s->cap ? s->cap : 1;
      while (cap - s->len < left) cap *= 2;
      s->buf = rn_xrealloc(s->buf, cap);
      s->cap = cap;
    }
    memcpy(s->buf + s->len, p, left);
    s->len += left;
    while (left >= RN_BATCH_HEADER_SIZE) {
      rn_batch_header_t h;
      if (rn_batch_header_decode(p, left, &h) != 0 || h.batch_length > left) break;
      if (s->oldest_arrival_ms == 0) s->oldest_arrival_ms = h.arrival_time_ms;
      s->buf_records += h.record_count;
      p += h.batch_length;
      left -= h.batch_length;
    }
    s->buf_end = fr->next_offset;
  }
  if (!shard_runs(s) && sk->paused && s->fl == FL_NONE) buffer_clear(s); /* read again on resume */
  shard_step(s);
  sink_unref(sk);
}

static void start_fetch(sshard_t *s) {
  sink_t *sk = s->sk;
  rn_sinks_t *ss = sk->ss;
  uint32_t wait = ss->opts.poll_ms;
  if (s->len > 0 && s->fl == FL_NONE) {
    uint64_t waited_ms = (mono_ns(ss) - s->since_ns) / 1000000ull;
    uint64_t left = (uint64_t)sk->cfg.buffer_interval_ms > waited_ms ? (uint64_t)sk->cfg.buffer_interval_ms - waited_ms : 0;
    if (left < wait) wait = (uint32_t)left;
  }
  uint64_t room = sk->cfg.buffer_bytes > s->len ? sk->cfg.buffer_bytes - s->len : 0;
  if (room < MIN_FETCH_BYTES) room = MIN_FETCH_BYTES;
  if (room > (16u << 20)) room = 16u << 20;
  if (s->pending && s->fl == FL_NONE) wait = 0; /* redoing a range that is all there */
  rn_core_shard_pos_t pos = {.shard = s->shard, .kind = RN_CORE_POS_OFFSET, .value = (int64_t)s->buf_end};
  rn_core_fetch_req_t fq = {.stream = sk->stream, .shards = &pos, .nshards = 1, .max_wait_ms = wait,
                            .max_bytes = (uint32_t)room};
  s->reading = true;
  sink_ref(sk);
  rn_core_fetch(ss->core, &fq, on_fetch, s);
}

/* Whatever comes next: a flush when the buffer is due and none is out; a
 * read when none is out and the buffer has room (or a range to redo is not
 * all read yet). */
static void shard_step(sshard_t *s) {
  if (!shard_runs(s)) return;
  if (flush_due(s)) start_flush(s);
  if (s->reading) return;
  if (s->read_retry_at_ns != 0) {
    if (mono_ns(s->sk->ss) < s->read_retry_at_ns) return;
    s->read_retry_at_ns = 0;
  }
  if (s->len >= s->sk->cfg.buffer_bytes) return;      /* full: waits for the flush out */
  if (s->pending && s->fl == FL_NONE && s->buf_end > s->plast) return;
  if (s->fl != FL_NONE && s->pending && s->buf_end <= s->plast) return; /* (never: the flush holds its range) */
  start_fetch(s);
}

/* ---- core's listener ------------------------------------------------------------------ */

static void on_stream_created(void *arg, rn_core_stream_t *st) {
  rn_sinks_t *ss = arg;
  for (size_t i = 0; i < ss->nsinks; i++) {
    sink_t *sk = ss->sinks[i];
    if (sk->st != NULL || sk->shards != NULL || strcmp(sk->stream, rn_core_stream_name(st)) != 0) continue;
    if (sk->stream_uid != rn_core_stream_uid(st)) continue;
    sink_bind(sk, st, false);
    sk->stopped[0] = '\0';
  }
}

static void on_stream_deleting(void *arg, rn_core_stream_t *st) {
  rn_sinks_t *ss = arg;
  for (size_t i = 0; i < ss->nsinks; i++) {
    sink_t *sk = ss->sinks[i];
    if (sk->st != st) continue;
    snprintf(sk->stopped, sizeof sk->stopped, "stream %s was deleted", sk->stream);
    rn_core_stream_unref(st);
    sk->st = NULL;
  }
}

static void on_tick(void *arg) {
  rn_sinks_t *ss = arg;
  uint64_t now = mono_ns(ss);
  for (size_t i = 0; i < ss->nsinks; i++) {
    sink_t *sk = ss->sinks[i];
    for (uint32_t j = 0; j < sk->nshards; j++) {
      sshard_t *s = &sk->shards[j];
      if (s->fl == FL_RETRY && now >= s->retry_at_ns && shard_runs(s)) {
        if (s->objs != NULL)
          start_puts(s);
        else
          encode_queue(s); /* the encode (or the state write before it) failed: again */
      }
      shard_step(s);
    }
  }
}

static rn_err_t on_close(void *arg) {
  rn_sinks_t *ss = arg;
  ss->closing = true;
  if (ss->opts.store != NULL) {
    /* A borrowed store outlives us: let what is in flight on it complete
     * now, while the sinks its callbacks name still exist. */
    while (rn_objstore_inflight(ss->opts.store) > 0) rn_objstore_wait(ss->opts.store, 100);
    if (ss->store_poll) uv_close((uv_handle_t *)ss->store_poll, poll_freed);
    ss->store_poll = NULL;
  }
  while (ss->nsinks > 0) {
    sink_t *sk = ss->sinks[ss->nsinks - 1];
    /* The loop no longer runs: stop polling by hand, cancel the PUTs. */
    if (sk->poll_on) {
      sk->poll_on = false;
      uv_close((uv_handle_t *)sk->poll, poll_freed); /* its callback runs at the loop's last turn */
      sk->refs--;                                    /* the handle's */
    }
    sink_ref(sk);
    rn_objstore_destroy(sk->store); /* cancels: on_put runs with RN_ECANCELED */
    sk->store = NULL;
    ss->nsinks--;
    sk->deleted = true;
    sk->refs--; /* the list's */
    sink_unref(sk);
  }
  for (size_t i = 0; i < ss->nencq; i++) sink_unref(ss->encq[i]->sk);
  free(ss->encq);
  free(ss->sinks);
  rn_snapshot_slot_destroy(ss->slot);
  if (ss->loaded) runnel__sinks_snapshot__free_unpacked(ss->loaded, NULL);
  free(ss->dir);
  free(ss);
  return 0;
}

/* ---- open -------------------------------------------------------------------------------- */

void rn_sinks_opts_default(rn_sinks_opts_t *o) {
  memset(o, 0, sizeof *o);
  rn_s3_opts_default(&o->s3);
  o->retry_ms = 1000;
  o->poll_ms = 1000;
  o->encode_jobs = 2;
}

rn_err_t rn_sinks_open(rn_core_t *core, const rn_sinks_opts_t *opts, rn_sinks_t **out, char *why, size_t whylen) {
  rn_sinks_t *ss = rn_xcalloc(1, sizeof *ss);
  ss->core = core;
  if (opts)
    ss->opts = *opts;
  else
    rn_sinks_opts_default(&ss->opts);
  if (ss->opts.retry_ms == 0) ss->opts.retry_ms = 1000;
  if (ss->opts.poll_ms == 0) ss->opts.poll_ms = 1000;
  if (ss->opts.encode_jobs == 0) ss->opts.encode_jobs = 2;
  const rn_core_opts_t *co = rn_core_options(core);
  ss->fs = co->fs ? co->fs : rn_fs_posix();
  size_t n = strlen(rn_core_data_dir(core)) + sizeof "/" STATE_DIR;
  ss->dir = rn_xmalloc(n);
  snprintf(ss->dir, n, "%s/%s", rn_core_data_dir(core), STATE_DIR);
  rn_err_t rc = ss->fs->mkdirs(ss->fs, ss->dir);
  if (rc != 0) {
    snprintf(why, whylen, "cannot create %s: %s", ss->dir, rn_strerror(rc));
    goto fail;
  }
  ss->slot = rn_snapshot_slot_new(ss->fs, ss->dir, STATE_FILE);
  void *data = NULL;
  size_t len = 0;
  rc = rn_snapshot_read(ss->fs, ss->dir, STATE_FILE, &data, &len);
  if (rc == RN_ENOENT) {
    rc = 0;
  } else if (rc != 0) {
    snprintf(why, whylen, "cannot read %s/%s: %s", ss->dir, STATE_FILE, rn_strerror(rc));
    goto fail;
  } else {
    ss->loaded = runnel__sinks_snapshot__unpack(NULL, len, data);
    free(data);
    if (ss->loaded == NULL) {
      snprintf(why, whylen, "%s/%s is damaged (not a sinks state); refusing to start rather than deliver records "
               "twice or skip them", ss->dir, STATE_FILE);
      rc = RN_ECORRUPT;
      goto fail;
    }
    for (size_t i = 0; i < ss->loaded->n_sinks; i++) {
      Runnel__SinkState *p = ss->loaded->sinks[i];
      if (p->config == NULL) continue;
      rn_sink_config_t c;
      config_from_pb(&c, p->config);
      sink_t *sk;
      char w[256];
      rc = sink_new(ss, &c, &sk, w, sizeof w);
      rn_objstore_t *store = NULL;
      if (rc == 0 && ss->opts.store == NULL && (rc = store_open(ss, c.destination, &store, w, sizeof w)) != 0)
        sink_unref(sk);
      if (rc != 0) {
        snprintf(why, whylen, "sink %s in %s/%s: %s", c.name, ss->dir, STATE_FILE, w);
        goto fail;
      }
      sink_attach_store(sk, store);
      sk->stream_uid = p->stream_uid;
      sk->created_ms = p->created_ms;
      sk->paused = p->paused;
      sk->loaded = p;
      snprintf(sk->stopped, sizeof sk->stopped, "stream %s not found", sk->stream);
      ss->sinks = rn_xrealloc(ss->sinks, (ss->nsinks + 1) * sizeof *ss->sinks);
      ss->sinks[ss->nsinks++] = sk;
    }
  }
  rn_core_listener_t l = {.stream_created = on_stream_created,
                          .stream_deleting = on_stream_deleting,
                          .tick = on_tick,
                          .close = on_close,
                          .arg = ss};
  if (ss->opts.store != NULL) {
    ss->store_poll = rn_xcalloc(1, sizeof *ss->store_poll);
    ss->store_poll->data = ss;
    uv_poll_init(rn_core_loop(core), ss->store_poll, rn_objstore_fd(ss->opts.store));
    uv_poll_start(ss->store_poll, UV_READABLE, on_shared_store);
  }
  rn_core_listen(core, RN_SUB_SINKS, &l);
  /* Sinks whose stream did not come back keep the loaded state for the file. */
  *out = ss;
  return 0;
fail:
  ss->closing = true; /* stores are destroyed here, not on a loop that does not run yet */
  for (size_t i = 0; i < ss->nsinks; i++) {
    sink_t *sk = ss->sinks[i];
    if (sk->poll_on) {
      uv_close((uv_handle_t *)sk->poll, poll_freed);
      sk->poll_on = false;
      sk->refs--;
    }
    sink_unref(sk);
  }
  free(ss->sinks);
  rn_snapshot_slot_destroy(ss->slot);
  if (ss->loaded) runnel__sinks_snapshot__free_unpacked(ss->loaded, NULL);
  free(ss->dir);
  free(ss);
  return rc ? rc : RN_EINVAL;
}

rn_sinks_t *rn_sinks_of(const rn_core_t *core) { return rn_core_listener_arg(core, RN_SUB_SINKS); }

/* ---- describe ------------------------------------------------------------------------------ */

static const char *phase_name(const sshard_t *s) {
  const sink_t *sk = s->sk;
  if (sk->stopped[0]) return "stopped";
  switch (s->fl) {
  case FL_ENCODING:
  case FL_PUTTING: return "flushing";
  case FL_RETRY: return "retrying";
  default: break;
  }
  if (sk->paused) return "paused";
  if (s->read_retry_at_ns) return "retrying";
  if (s->len > 0) return "buffering";
  return s->reading ? "reading" : "idle";
}

static void shard_info(const sshard_t *s, rn_sink_shard_info_t *o) {
  const sink_t *sk = s->sk;
  memset(o, 0, sizeof *o);
  o->shard = s->shard;
  o->checkpoint = s->next;
  uint64_t end = s->next;
  if (sk->st != NULL) end = rn_core_shard_end_offset(rn_core_stream_shard(sk->st, s->shard));
  o->end_offset = end;
  o->lag_records = end > s->next ? end - s->next : 0;
  int64_t now = rn_core_now_ms(sk->ss->core);
  int64_t oldest = s->fl != FL_NONE && s->f_oldest_ms > 0 ? s->f_oldest_ms : s->oldest_arrival_ms;
  if (o->lag_records == 0)
    o->lag_ms = 0;
  else if (oldest > 0)
    o->lag_ms = now > oldest ? now - oldest : 0;
  else
    o->lag_ms = -1;
  o->buffered_bytes = s->len + s->flen;
  o->buffered_records = s->buf_records;
  o->state = phase_name(s);
  o->last_error = s->last_error;
  o->objects = s->objects;
  o->records = s->records;
  o->error_records = s->error_records;
  o->bytes_out = s->bytes_out;
  o->put_failures = s->put_failures;
  o->pending = s->pending;
  o->pending_first = s->pfirst;
  o->pending_last = s->plast;
}

static void reply_sink(sink_t *sk, rn_sink_reply_cb cb, void *ctx) {
  rn_sink_shard_info_t *si = rn_xcalloc(sk->nshards + 1, sizeof *si);
  for (uint32_t i = 0; i < sk->nshards; i++) shard_info(&sk->shards[i], &si[i]);
  char state[256];
  if (sk->stopped[0])
    snprintf(state, sizeof state, "stopped: %s", sk->stopped);
  else
    snprintf(state, sizeof state, "%s", sk->paused ? "paused" : "running");
  rn_sink_description_t d = {.config = sk->cfg, .paused = sk->paused, .state = state, .created_ms = sk->created_ms,
                             .shards = si, .n_shards = sk->nshards};
  rn_sink_reply_t r = {.sink = &d};
  cb(ctx, &r);
  free(si);
}

/* ---- admin operations ---------------------------------------------------------------------- */

static void reply_err(rn_sink_reply_cb cb, void *ctx, rn_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_err(rn_sink_reply_cb cb, void *ctx, rn_err_t err, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  rn_sink_reply_t r = {.err = err, .message = msg};
  cb(ctx, &r);
}

static void start_all(snap_job_t *j) {
  if (j->sk == NULL || j->sk->deleted) return;
  for (uint32_t i = 0; i < j->sk->nshards; i++) shard_step(&j->sk->shards[i]);
}

/* Opening a store touches files (a local directory's root, a credentials
 * file): done on the thread pool, then the sink joins the list. */
typedef struct create_job {
  uv_work_t work;
  sink_t *sk;
  rn_objstore_t *store;
  rn_err_t err;
  char why[512];
  rn_sink_reply_cb cb;
  void *ctx;
} create_job_t;

static void create_work(uv_work_t *w) {
  create_job_t *j = w->data;
  if (j->sk->ss->opts.store == NULL) j->err = store_open(j->sk->ss, j->sk->dest, &j->store, j->why, sizeof j->why);
}

static void create_after(uv_work_t *w, int status) {
  (void)status;
  create_job_t *j = w->data;
  sink_t *sk = j->sk;
  rn_sinks_t *ss = sk->ss;
  rn_core_work_end(ss->core);
  rn_core_stream_t *st = rn_core_stream_find(ss->core, sk->stream);
  if (j->err != 0) {
    reply_err(j->cb, j->ctx, j->err, "%s", j->why);
  } else if (sink_find(ss, sk->name) != NULL) {
    reply_err(j->cb, j->ctx, RN_EEXIST, "sink %s already exists", sk->name);
  } else if (st == NULL || rn_core_stream_uid(st) != sk->stream_uid) {
    reply_err(j->cb, j->ctx, RN_ENOSTREAM, "stream %s not found (deleted while the sink was being created)",
              sk->stream);
  } else if (ss->closing || rn_core_draining(ss->core)) {
    reply_err(j->cb, j->ctx, RN_ESHUTDOWN, "the broker is shutting down");
  } else {
    sink_attach_store(sk, j->store);
    j->store = NULL;
    sink_bind(sk, st, sk->cfg.start_latest);
    ss->sinks = rn_xrealloc(ss->sinks, (ss->nsinks + 1) * sizeof *ss->sinks);
    ss->sinks[ss->nsinks++] = sk;
    rn_core_log(ss->core, RN_LVL_INFO, "sink %s created: stream %s to %s as %s", sk->name, sk->stream, sk->dest,
                rn__sink_fmt_ext(sk->fmt));
    state_write(ss, sk, start_all, j->cb, j->ctx, true);
    free(j);
    return;
  }
  store_destroy(ss, j->store); /* a failed create's store: nothing in flight */
  sink_unref(sk);
  free(j);
}

void rn_sinks_create(rn_sinks_t *ss, const rn_sink_config_t *c, rn_sink_reply_cb cb, void *ctx) {
  char why[512];
  if (rn_core_draining(ss->core)) return reply_err(cb, ctx, RN_ESHUTDOWN, "the broker is shutting down");
  const char *name = c->name ? c->name : "";
  if (rn_name_check_stream(name, strlen(name), why, sizeof why) != 0)
    return reply_err(cb, ctx, RN_EINVAL, "sink name: %s", why);
  if (sink_find(ss, name) != NULL) return reply_err(cb, ctx, RN_EEXIST, "sink %s already exists", name);
  rn_core_stream_t *st = rn_core_stream_find(ss->core, c->stream ? c->stream : "");
  if (st == NULL) return reply_err(cb, ctx, RN_ENOSTREAM, "stream %s not found", c->stream ? c->stream : "");
  if (c->destination == NULL || !*c->destination)
    return reply_err(cb, ctx, RN_EINVAL, "a sink needs a destination (s3://bucket/prefix/ or file:///dir/)");
  if (c->buffer_bytes != 0 && (c->buffer_bytes < (64u << 10) || c->buffer_bytes > (128ull << 20)))
    return reply_err(cb, ctx, RN_EINVAL, "buffer size %llu out of range: 64KiB .. 128MiB",
                     (unsigned long long)c->buffer_bytes);
  if (c->buffer_interval_ms != 0 && (c->buffer_interval_ms < 10 || c->buffer_interval_ms > 3600000))
    return reply_err(cb, ctx, RN_EINVAL, "buffer interval %lld ms out of range: 10 ms .. 1 h",
                     (long long)c->buffer_interval_ms);
  sink_t *sk;
  rn_err_t rc = sink_new(ss, c, &sk, why, sizeof why);
  if (rc != 0) return reply_err(cb, ctx, rc, "%s", why);
  sk->stream_uid = rn_core_stream_uid(st);
  sk->created_ms = rn_core_now_ms(ss->core);
  sk->cfg.start_latest = c->start_latest;
  create_job_t *j = rn_xcalloc(1, sizeof *j);
  j->work.data = j;
  j->sk = sk;
  j->cb = cb;
  j->ctx = ctx;
  rn_core_work_begin(ss->core);
  if (uv_queue_work(rn_core_loop(ss->core), &j->work, create_work, create_after) != 0) {
    j->err = RN_ENOMEM;
    snprintf(j->why, sizeof j->why, "cannot queue the store's opening");
    create_after(&j->work, 0);
  }
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

void rn_sinks_list(rn_sinks_t *ss, rn_sink_reply_cb cb, void *ctx) {
  const char **names = rn_xcalloc(ss->nsinks + 1, sizeof *names);
  for (size_t i = 0; i < ss->nsinks; i++) names[i] = ss->sinks[i]->name;
  qsort(names, ss->nsinks, sizeof *names, cmp_str);
  rn_sink_reply_t r = {.names = names, .n_names = ss->nsinks};
  cb(ctx, &r);
  free(names);
}

void rn_sinks_describe(rn_sinks_t *ss, const char *name, rn_sink_reply_cb cb, void *ctx) {
  sink_t *sk = sink_find(ss, name ? name : "");
  if (sk == NULL) return reply_err(cb, ctx, RN_ENOSINK, "sink %s not found", name ? name : "");
  reply_sink(sk, cb, ctx);
}

void rn_sinks_pause(rn_sinks_t *ss, const char *name, bool resume, rn_sink_reply_cb cb, void *ctx) {
  sink_t *sk = sink_find(ss, name ? name : "");
  if (sk == NULL) return reply_err(cb, ctx, RN_ENOSINK, "sink %s not found", name ? name : "");
  sk->paused = !resume;
  if (sk->paused)
    for (uint32_t i = 0; i < sk->nshards; i++) {
      sshard_t *s = &sk->shards[i];
      if (!s->reading) buffer_clear(s); /* read again on resume; a flush out finishes */
    }
  state_write(ss, sk, resume ? start_all : NULL, cb, ctx, true);
}

void rn_sinks_delete(rn_sinks_t *ss, const char *name, rn_sink_reply_cb cb, void *ctx) {
  sink_t *sk = sink_find(ss, name ? name : "");
  if (sk == NULL) return reply_err(cb, ctx, RN_ENOSINK, "sink %s not found", name ? name : "");
  rn_core_log(ss->core, RN_LVL_INFO, "sink %s deleted", sk->name);
  sink_remove(ss, sk);
  state_write(ss, NULL, NULL, cb, ctx, false);
}

void rn_sinks_foreach_shard(rn_sinks_t *ss, void (*fn)(void *arg, const rn_sinks_shard_stats_t *s), void *arg) {
  if (ss == NULL) return;
  for (size_t i = 0; i < ss->nsinks; i++) {
    sink_t *sk = ss->sinks[i];
    for (uint32_t j = 0; j < sk->nshards; j++) {
      rn_sink_shard_info_t info;
      shard_info(&sk->shards[j], &info);
      rn_sinks_shard_stats_t st = {.sink = sk->name, .stream = sk->stream, .info = &info};
      fn(arg, &st);
    }
  }
}
