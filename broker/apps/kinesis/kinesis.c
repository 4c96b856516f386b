/*
 * kinesis.c — the Kinesis Data Streams JSON 1.1 API over the engine
 * (docs/kinesis.md): request checks (target, content type, SigV4), the
 * operations, the produce path shared with REST ingest, the tags and
 * stream-mode store, and the optional per-shard throughput limits.
 *
 * Every operation is a chain of calls into the engine's C API (rn_core.h:
 * describe, create, produce, fetch, list offsets, ...), each continuing in
 * a callback with the per-request state (kop_t); the last step answers the
 * call and frees the state. The engine may answer before a call returns,
 * so an engine call is always the last thing a step does.
 *
 * Streams are the engine's streams (the native protocol sees the same
 * ones). What Kinesis has and the engine does not — tags and the stream
 * mode — lives in <data_dir>/meta/kinesis-streams.json, keyed by stream name
 * and creation time (a deleted and recreated stream starts without tags),
 * rewritten atomically on the thread pool before the change is
 * acknowledged. Sequence numbers and shard iterators are kinesis_seq.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "kinesis_int.h"
#include "rn_base.h" /* rn_clock_t, rn_buf_t */
#include "rn_fs.h"   /* rn_snapshot_* */
#include "rn_core.h"
#include "rn_kinesis.h"
#include "runnel/batch.h"
#include "sigv4.h"

#define ACCOUNT "000000000000"
#define JSON_CT "application/x-amz-json-1.1"
#define DEFAULT_RETENTION_HOURS 24
#define MAX_RETENTION_HOURS 8760
#define ON_DEMAND_SHARDS 4
#define GET_RECORDS_MAX_BYTES (10u << 20)
#define MAX_TAGS 50

/* ---- the Kinesis tags / stream-mode store --------------------------------------------- */

typedef struct rn__kmeta_stream {
  char *name;
  int64_t created_ms; /* the stream this entry belongs to (a recreated stream starts empty) */
  bool on_demand;
  char **keys, **values; /* tags, sorted by key */
  size_t ntags;
} rn__kmeta_stream_t;

typedef struct rn__kmeta {
  rn__kmeta_stream_t *v;
  size_t n, cap;
  char *path; /* <data_dir>/meta/kinesis-streams.json */
  /* Persisting: newest snapshot wins, as in engine.c; the loop only hands
   * buffers over (rn_snapshot_slot_put), the thread pool writes them. */
  rn_snapshot_slot_t *slot;
} rn__kmeta_t;


/* ---- throughput limits ------------------------------------------------------------------ */

typedef struct rn__bucket {
  double w_bytes, w_records, r_bytes, r_calls; /* tokens */
  int64_t last_ms;
} rn__bucket_t;

typedef struct rn__slimits {
  char *name;
  int64_t created_ms;
  uint32_t n;
  rn__bucket_t *b;
} rn__slimits_t;

/* ---- the application's state ------------------------------------------------------------ */

struct rn_kinesis {
  uv_loop_t *loop;
  rn_core_t *core;
  rn_admin_t *adm;
  rn_clock_t clock; /* wall clock (rn_base.h); zeroed = the system's; tests replace it */
  uint8_t iter_key[RN__KITER_KEYLEN];
  rn_sigv4_key_t *creds; /* kinesis_credentials; none = accept any request */
  size_t ncreds;
  char *creds_buf;
  bool throttle; /* kinesis_throughput_limits: kinesis */
  uint32_t max_record_bytes, max_batch_bytes, max_shards;
  rn__kmeta_t kmeta;
  rn__slimits_t *limits;
  size_t nlimits, limits_cap;
  unsigned pending_jobs; /* thread-pool work: writes of the tags file */
};

static int64_t now_ms(const rn_kinesis_t *kin) { return rn_clock_wall_ms(&kin->clock); }

/* ---- the stream snapshot an operation works from ------------------------------------- */

typedef struct sshard {
  uint8_t hk_start[16], hk_end[16];
  uint64_t start, end;
  int64_t last_ms;
} sshard_t;

typedef struct sinfo {
  int64_t created_ms;
  uint32_t n;
  int64_t retention_ms, retention_bytes;
  sshard_t *sh;
} sinfo_t;

static bool sinfo_take(sinfo_t *si, const rn_core_stream_desc_t *d) {
  free(si->sh);
  memset(si, 0, sizeof(*si));
  if (!d) return false;
  si->created_ms = d->created_ms;
  si->retention_ms = d->retention_ms;
  si->retention_bytes = d->retention_bytes;
  si->n = d->nshards;
  si->sh = rn_xcalloc(si->n ? si->n : 1, sizeof(*si->sh));
  for (uint32_t i = 0; i < si->n; i++) {
    const rn_core_shard_desc_t *sd = &d->shards[i];
    memcpy(si->sh[i].hk_start, sd->hash_start, 16);
    memcpy(si->sh[i].hk_end, sd->hash_end, 16);
    si->sh[i].start = sd->start_offset;
    si->sh[i].end = sd->end_offset;
    si->sh[i].last_ms = sd->last_append_ms;
  }
  return true;
}

static int64_t retention_hours(const sinfo_t *si) {
  if (si->retention_ms <= 0) return MAX_RETENTION_HOURS; /* unlimited: reported as the maximum */
  return (si->retention_ms + 3599999) / 3600000;
}

/* ---- per-request state ----------------------------------------------------------------- */

typedef struct kop kop_t;

/* What one engine call hands the next step: the parts of a core result
 * (rn_core.h) the operations read, borrowed during the step only. */
typedef struct kans {
  rn_err_t err;
  const char *msg;
  const rn_core_stream_desc_t *stream;     /* describe, create, set retention */
  const rn_core_list_result_t *list;       /* list streams */
  const rn_core_offsets_result_t *offsets; /* list offsets */
  const rn_core_fetch_result_t *fetch;     /* fetch */
} kans_t;
typedef void (*kop_next)(kop_t *o, const kans_t *a);

struct kop {
  rn_admin_call_t *c;
  rn_kinesis_t *kin;
  rn__kreq_t k;
  kop_next next;
  sinfo_t si;
  rn__kiter_t it;
  uint64_t offset;
  bool refetched;
};

static void kop_free(kop_t *o) {
  rn__kreq_free(&o->k);
  free(o->si.sh);
  free(o);
}

static void kop_error(kop_t *o, rn_kinesis_err_t type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void kop_error(kop_t *o, rn_kinesis_err_t type, const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  rn_admin_reply_kerr(o->c, type, "%s", msg);
  kop_free(o);
}

static void kop_reply(kop_t *o, rn_buf_t *b) {
  if (b->oom) rn_admin_reply_kerr(o->c, RN_KERR_InternalFailure, "out of memory building the response");
  else rn_admin_reply(o->c, 200, JSON_CT, NULL, 0, b->p, b->len);
  rn_buf_free(b);
  kop_free(o);
}

static void kop_reply_empty(kop_t *o) {
  rn_admin_reply(o->c, 200, JSON_CT, NULL, 0, "{}", 2);
  kop_free(o);
}

/* The engine's callbacks, each handing its result to the step in o->next.
 * The engine may answer before the call returns, so a call is always the
 * last thing a step does. */
static void on_described(void *ctx, const rn_core_describe_result_t *r) {
  kop_t *o = ctx;
  kans_t a = {.err = r->err, .msg = r->msg, .stream = r->stream};
  o->next(o, &a);
}

static void on_created(void *ctx, const rn_core_create_result_t *r) {
  kop_t *o = ctx;
  kans_t a = {.err = r->err, .msg = r->msg, .stream = r->stream};
  o->next(o, &a);
}

static void on_deleted(void *ctx, const rn_core_delete_result_t *r) {
  kop_t *o = ctx;
  kans_t a = {.err = r->err, .msg = r->msg};
  o->next(o, &a);
}

static void on_listed(void *ctx, const rn_core_list_result_t *r) {
  kop_t *o = ctx;
  kans_t a = {.err = r->err, .msg = r->msg, .list = r};
  o->next(o, &a);
}

static void on_offsets(void *ctx, const rn_core_offsets_result_t *r) {
  kop_t *o = ctx;
  kans_t a = {.err = r->err, .msg = r->msg, .offsets = r};
  o->next(o, &a);
}

static void on_fetched(void *ctx, const rn_core_fetch_result_t *r) {
  kop_t *o = ctx;
  kans_t a = {.err = r->err, .msg = r->msg, .fetch = r};
  o->next(o, &a);
}

static void on_retention(void *ctx, const rn_core_retention_result_t *r) {
  kop_t *o = ctx;
  kans_t a = {.err = r->err, .msg = r->msg, .stream = r->stream};
  o->next(o, &a);
}

static void not_found(kop_t *o, const char *stream) {
  kop_error(o, RN_KERR_ResourceNotFoundException, "Stream %s under account " ACCOUNT " not found.", stream);
}

static void shard_not_found(kop_t *o, uint32_t shard, const char *given, const char *stream) {
  if (given)
    kop_error(o, RN_KERR_ResourceNotFoundException, "Shard %.128s in stream %s under account " ACCOUNT " does not exist",
              given, stream);
  else
    kop_error(o, RN_KERR_ResourceNotFoundException, "Shard shardId-%012u in stream %s under account " ACCOUNT " does not exist",
              shard, stream);
}

/* A storage failure the shard gets over by itself (docs/storage.md,
 * "Failures"): answered as 503 ServiceUnavailable, which stock SDKs retry
 * with backoff, not as a 500 for a broken broker. Tiered storage adds the
 * disk at its high-water mark while uploads are behind (EBACKLOG) and an
 * object store that failed or did not answer a read of older records
 * (EOBJSTORE, ETIMEDOUT; docs/tiering.md); a cluster's shard between
 * leaders or without enough replicas in sync (docs/cluster.md). */
static bool transient_error(rn_err_t err) {
  return err == RN_ENOSPC || err == RN_EMFILE || err == RN_ENFILE || err == RN_EBACKLOG || err == RN_EOBJSTORE ||
         err == RN_ETIMEDOUT ||
         /* a cluster between leaders, or with too few replicas in sync (docs/cluster.md) */
         err == RN_ENOTLEADER || err == RN_ENOTENOUGHREPLICAS || err == RN_ECONTROLPLANE || err == RN_ESTALEEPOCH;
}

/* An engine error as the Kinesis error a client expects. */
static void engine_error(kop_t *o, rn_err_t err, const char *msg, const char *stream) {
  const char *m = msg && msg[0] ? msg : rn_strerror(err);
  switch (err) {
  case RN_ENOSTREAM: return not_found(o, stream);
  case RN_EEXIST:
    return kop_error(o, RN_KERR_ResourceInUseException, "Stream %s under account " ACCOUNT " already exists.", stream);
  case RN_EBUSY: return kop_error(o, RN_KERR_ResourceInUseException, "Stream %s under account " ACCOUNT " is in use: %s", stream, m);
  case RN_EINVAL:
  case RN_EBADREQUEST:
  case RN_ETOOLARGE: return kop_error(o, RN_KERR_InvalidArgumentException, "%s", m);
  case RN_ENOSHARD: return kop_error(o, RN_KERR_ResourceNotFoundException, "%s", m);
  case RN_ETHROTTLED: return kop_error(o, RN_KERR_ProvisionedThroughputExceededException, "%s", m);
  case RN_ESHUTDOWN: return kop_error(o, RN_KERR_ServiceUnavailable, "The broker is shutting down; retry against another broker.");
  default:
    if (transient_error(err)) return kop_error(o, RN_KERR_ServiceUnavailable, "%s (%s); retry", m, rn_err_name(err));
    return kop_error(o, RN_KERR_InternalFailure, "%s (%s)", m, rn_err_name(err));
  }
}

static void describe(kop_t *o, const char *stream, kop_next next) {
  rn_core_describe_req_t d = {.name = stream};
  o->next = next;
  rn_core_describe_stream(o->kin->core, &d, on_described, o);
}

/* Take a describe answer into o->si; on failure answer and free o. */
static bool took_describe(kop_t *o, const kans_t *a, const char *stream) {
  if (a->err) {
    engine_error(o, a->err, a->msg, stream);
    return false;
  }
  if (!sinfo_take(&o->si, a->stream)) {
    kop_error(o, RN_KERR_InternalFailure, "unexpected answer from the engine");
    return false;
  }
  return true;
}

/* ---- JSON pieces -------------------------------------------------------------------------- */

static void put_arn(rn_buf_t *b, const char *region, const char *stream) {
  rn_buf_printf(b, "\"arn:aws:kinesis:%s:" ACCOUNT ":stream/%s\"", region, stream);
}

static void put_shard(rn_buf_t *b, const sinfo_t *si, uint32_t i) {
  char hs[40], he[40], seq[RN__KSEQ_BUFLEN];
  rn_hash_key_format(si->sh[i].hk_start, hs);
  rn_hash_key_format(si->sh[i].hk_end, he);
  rn__kseq_encode(si->created_ms, i, 0, seq);
  rn_buf_printf(b,
                 "{\"ShardId\":\"shardId-%012u\",\"HashKeyRange\":{\"StartingHashKey\":\"%s\",\"EndingHashKey\":\"%s\"},"
                 "\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"%s\"}}",
                 i, hs, he, seq);
}

/* ---- the tags / stream-mode store ----------------------------------------------------------------- */

static rn__kmeta_stream_t *kmeta_find(rn__kmeta_t *km, const char *name) {
  for (size_t i = 0; i < km->n; i++)
    if (strcmp(km->v[i].name, name) == 0) return &km->v[i];
  return NULL;
}

static void kmeta_clear(rn__kmeta_stream_t *e) {
  for (size_t i = 0; i < e->ntags; i++) {
    free(e->keys[i]);
    free(e->values[i]);
  }
  free(e->keys);
  free(e->values);
  e->keys = e->values = NULL;
  e->ntags = 0;
  e->on_demand = false;
}

/* The entry of the stream created at created_ms (NULL when it has none and
 * create is false). A stale entry (an older stream of that name) is reset. */
static rn__kmeta_stream_t *kmeta_get(rn__kmeta_t *km, const char *name, int64_t created_ms, bool create) {
  rn__kmeta_stream_t *e = kmeta_find(km, name);
  if (e && e->created_ms != created_ms) {
    if (!create) return NULL;
    kmeta_clear(e);
    e->created_ms = created_ms;
  }
  if (e || !create) return e;
  if (km->n == km->cap) {
    size_t nc = km->cap ? km->cap * 2 : 16;
    rn__kmeta_stream_t *nv = rn_xrealloc(km->v, nc * sizeof(*nv));
    km->v = nv;
    km->cap = nc;
  }
  e = &km->v[km->n++];
  memset(e, 0, sizeof(*e));
  e->name = rn_xstrdup(name);
  e->created_ms = created_ms;
  return e;
}

static void kmeta_remove(rn__kmeta_t *km, const char *name) {
  rn__kmeta_stream_t *e = kmeta_find(km, name);
  if (!e) return;
  kmeta_clear(e);
  free(e->name);
  *e = km->v[--km->n];
}

static int tag_index(const rn__kmeta_stream_t *e, const char *key) {
  for (size_t i = 0; i < e->ntags; i++)
    if (strcmp(e->keys[i], key) == 0) return (int)i;
  return -1;
}

static void tag_set(rn__kmeta_stream_t *e, const char *key, const char *value) {
  int i = tag_index(e, key);
  if (i >= 0) {
    free(e->values[i]);
    e->values[i] = rn_xstrdup(value);
    return;
  }
  /* Insert sorted. */
  char **nk = rn_xrealloc(e->keys, (e->ntags + 1) * sizeof(char *));
  e->keys = nk;
  char **nv = rn_xrealloc(e->values, (e->ntags + 1) * sizeof(char *));
  e->values = nv;
  size_t at = 0;
  while (at < e->ntags && strcmp(e->keys[at], key) < 0) at++;
  memmove(e->keys + at + 1, e->keys + at, (e->ntags - at) * sizeof(char *));
  memmove(e->values + at + 1, e->values + at, (e->ntags - at) * sizeof(char *));
  e->keys[at] = rn_xstrdup(key);
  e->values[at] = rn_xstrdup(value);
  e->ntags++;
}

static void tag_remove(rn__kmeta_stream_t *e, const char *key) {
  int i = tag_index(e, key);
  if (i < 0) return;
  free(e->keys[i]);
  free(e->values[i]);
  memmove(e->keys + i, e->keys + i + 1, (e->ntags - (size_t)i - 1) * sizeof(char *));
  memmove(e->values + i, e->values + i + 1, (e->ntags - (size_t)i - 1) * sizeof(char *));
  e->ntags--;
}

static rn_err_t kmeta_load(rn__kmeta_t *km, const char *data_dir, char *why, size_t whylen) {
  memset(km, 0, sizeof(*km));
  size_t pl = strlen(data_dir) + 64;
  km->path = malloc(pl);
  char *dir = malloc(pl);
  if (km->path && dir) snprintf(dir, pl, "%s/meta", data_dir);
  km->slot = dir ? rn_snapshot_slot_new(rn_fs_posix(), dir, "kinesis-streams.json") : NULL;
  if (!km->path || !km->slot) {
    free(dir);
    return RN_ENOMEM;
  }
  snprintf(km->path, pl, "%s/kinesis-streams.json", dir);
  void *text;
  size_t text_len;
  rn_err_t rerr = rn_snapshot_read(rn_fs_posix(), dir, "kinesis-streams.json", &text, &text_len);
  free(dir);
  if (rerr == RN_ENOENT) return 0; /* none yet */
  if (rerr) {
    snprintf(why, whylen, "cannot read %s: %s", km->path, rn_strerror(rerr));
    return rerr;
  }
  json_error_t jerr;
  json_t *root = json_loadb(text, text_len, 0, &jerr);
  free(text);
  if (!root) {
    snprintf(why, whylen, "%s is damaged (%s, line %d); move it away to start without Kinesis tags", km->path, jerr.text,
             jerr.line);
    return RN_ECORRUPT;
  }
  json_t *streams = json_object_get(root, "streams");
  size_t i;
  json_t *s;
  rn_err_t err = json_is_array(streams) ? 0 : RN_ECORRUPT;
  json_array_foreach(streams, i, s) {
    const char *name = json_string_value(json_object_get(s, "name"));
    json_t *created = json_object_get(s, "created_ms");
    if (!name || !json_is_integer(created)) {
      err = RN_ECORRUPT;
      break;
    }
    rn__kmeta_stream_t *e = kmeta_get(km, name, json_integer_value(created), true);
    const char *mode = json_string_value(json_object_get(s, "mode"));
    e->on_demand = mode && strcmp(mode, "ON_DEMAND") == 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(s, "tags"), k, v) {
      if (json_is_string(v)) tag_set(e, k, json_string_value(v));
    }
  }
  json_decref(root);
  if (err) snprintf(why, whylen, "%s is damaged (not the expected JSON shape)", km->path);
  return err;
}

static void kmeta_free(rn__kmeta_t *km) {
  for (size_t i = 0; i < km->n; i++) {
    kmeta_clear(&km->v[i]);
    free(km->v[i].name);
  }
  free(km->v);
  free(km->path);
  rn_snapshot_slot_destroy(km->slot);
  memset(km, 0, sizeof(*km));
}

/* Thread pool: write the newest snapshot (tmp, fdatasync, rename, fsync dir),
 * if one is not written yet. The loop never waits for it. */
static rn_err_t kmeta_write(rn__kmeta_t *km) { return rn_snapshot_slot_flush(km->slot); }

typedef struct kmeta_job {
  uv_work_t work;
  rn_kinesis_t *kin;
  rn_err_t err;
  void (*done)(void *arg, rn_err_t err);
  void *arg;
} kmeta_job_t;

static void kmeta_work(uv_work_t *w) {
  kmeta_job_t *j = w->data;
  j->err = kmeta_write(&j->kin->kmeta);
}

static void kmeta_after(uv_work_t *w, int status) {
  kmeta_job_t *j = w->data;
  j->kin->pending_jobs--;
  if (status && !j->err) j->err = RN_EIO;
  j->done(j->arg, j->err);
  free(j);
}

/* Snapshot the store now, write it on the thread pool, then done(arg, err)
 * on the loop. */
static void kmeta_persist(rn_kinesis_t *kin, void (*done)(void *arg, rn_err_t err), void *arg) {
  rn__kmeta_t *km = &kin->kmeta;
  json_t *root = json_pack("{s:i,s:[]}", "version", 1, "streams");
  json_t *arr = json_object_get(root, "streams");
  for (size_t i = 0; i < km->n; i++) {
    const rn__kmeta_stream_t *e = &km->v[i];
    json_t *tags = json_object();
    for (size_t t = 0; t < e->ntags; t++) json_object_set_new(tags, e->keys[t], json_string(e->values[t]));
    json_array_append_new(arr, json_pack("{s:s,s:I,s:s,s:o}", "name", e->name, "created_ms", (json_int_t)e->created_ms,
                                         "mode", e->on_demand ? "ON_DEMAND" : "PROVISIONED", "tags", tags));
  }
  char *text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
  json_decref(root);
  if (!text) return done(arg, RN_ENOMEM);
  rn_snapshot_slot_put(km->slot, text, strlen(text)); /* a pointer swap: never waits for a write */
  kmeta_job_t *j = rn_xcalloc(1, sizeof(*j));
  j->kin = kin;
  j->done = done;
  j->arg = arg;
  j->work.data = j;
  kin->pending_jobs++;
  if (uv_queue_work(kin->loop, &j->work, kmeta_work, kmeta_after)) {
    kin->pending_jobs--;
    free(j);
    done(arg, RN_EIO);
  }
}

static void persisted_reply_empty(void *arg, rn_err_t err) {
  kop_t *o = arg;
  if (err)
    kop_error(o, RN_KERR_InternalFailure, "writing %s failed: %s", o->kin->kmeta.path, rn_strerror(err));
  else
    kop_reply_empty(o);
}

/* ---- throughput limits ------------------------------------------------------------------------------- */

#define W_BYTES_PER_S (1024.0 * 1024.0)
#define W_RECORDS_PER_S 1000.0
#define R_BYTES_PER_S (2.0 * 1024.0 * 1024.0)
#define R_CALLS_PER_S 5.0

static rn__bucket_t *bucket(rn_kinesis_t *kin, const char *stream, const sinfo_t *si, uint32_t shard) {
  rn__slimits_t *l = NULL;
  for (size_t i = 0; i < kin->nlimits && !l; i++)
    if (strcmp(kin->limits[i].name, stream) == 0) l = &kin->limits[i];
  if (!l) {
    if (kin->nlimits == kin->limits_cap) {
      size_t nc = kin->limits_cap ? kin->limits_cap * 2 : 16;
      rn__slimits_t *nv = rn_xrealloc(kin->limits, nc * sizeof(*nv));
      kin->limits = nv;
      kin->limits_cap = nc;
    }
    l = &kin->limits[kin->nlimits++];
    memset(l, 0, sizeof(*l));
    l->name = rn_xstrdup(stream);
  }
  if (l->created_ms != si->created_ms || l->n != si->n || !l->b) {
    free(l->b);
    l->b = rn_xcalloc(si->n ? si->n : 1, sizeof(*l->b));
    l->n = si->n;
    l->created_ms = si->created_ms;
    int64_t now = now_ms(kin);
    for (uint32_t i = 0; i < si->n; i++) {
      l->b[i] = (rn__bucket_t){W_BYTES_PER_S, W_RECORDS_PER_S, R_BYTES_PER_S, R_CALLS_PER_S, now};
    }
  }
  rn__bucket_t *b = &l->b[shard];
  int64_t now = now_ms(kin);
  double dt = (double)(now - b->last_ms) / 1000.0;
  if (dt > 0) {
    b->w_bytes = b->w_bytes + dt * W_BYTES_PER_S > W_BYTES_PER_S ? W_BYTES_PER_S : b->w_bytes + dt * W_BYTES_PER_S;
    b->w_records = b->w_records + dt * W_RECORDS_PER_S > W_RECORDS_PER_S ? W_RECORDS_PER_S : b->w_records + dt * W_RECORDS_PER_S;
    b->r_bytes = b->r_bytes + dt * R_BYTES_PER_S > R_BYTES_PER_S ? R_BYTES_PER_S : b->r_bytes + dt * R_BYTES_PER_S;
    b->r_calls = b->r_calls + dt * R_CALLS_PER_S > R_CALLS_PER_S ? R_CALLS_PER_S : b->r_calls + dt * R_CALLS_PER_S;
    b->last_ms = now;
  }
  return b;
}

/* ---- the produce path ----------------------------------------------------------------------------------- */

typedef struct pbatch {
  uint32_t shard;
  size_t first, count; /* into order[] */
  rn_batch_builder_t bld;
} pbatch_t;

typedef struct prod_op {
  rn__produce_t pub;
  rn_kinesis_t *kin;
  char stream[129];
  const rn__krec_t *recs;
  rn__produce_cb cb;
  void *arg;
  sinfo_t si;
  size_t *order; /* accepted record indexes, grouped by batch */
  size_t norder;
  pbatch_t *batches;
  size_t nb;
  char **msgs; /* per-record messages, owned */
} prod_op_t;

static void prod_finish(prod_op_t *p) {
  for (size_t i = 0; i < p->pub.n; i++) {
    if (p->pub.res[i].err_type) p->pub.failed++;
  }
  rn_admin_counters_t *m = rn_admin_counters(p->kin->adm);
  if (!p->pub.err_type) {
    m->put_records_ok += p->pub.n - p->pub.failed;
    m->put_records_failed += p->pub.failed;
  }
  p->cb(&p->pub, p->arg);
  for (size_t i = 0; i < p->nb; i++) rn_batch_builder_free(&p->batches[i].bld);
  free(p->batches);
  free(p->order);
  if (p->msgs)
    for (size_t i = 0; i < p->pub.n; i++) free(p->msgs[i]);
  free(p->msgs);
  free(p->pub.res);
  free(p->si.sh);
  free(p);
}

static void prod_fail(prod_op_t *p, rn_kinesis_err_t type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void prod_fail(prod_op_t *p, rn_kinesis_err_t type, const char *fmt, ...) {
  p->pub.err_type = type;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->pub.err_msg, sizeof(p->pub.err_msg), fmt, ap);
  va_end(ap);
  prod_finish(p);
}

static void rec_fail(prod_op_t *p, size_t i, rn_kinesis_err_t type, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void rec_fail(prod_op_t *p, size_t i, rn_kinesis_err_t type, const char *fmt, ...) {
  if (!p->msgs) {
    p->msgs = rn_xcalloc(p->pub.n, sizeof(char *));
  }
  char buf[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  free(p->msgs[i]);
  p->msgs[i] = rn_xstrdup(buf);
  p->pub.res[i].err_type = type;
  p->pub.res[i].err_msg = p->msgs[i];
}

static uint32_t route(const sinfo_t *si, const uint8_t hash[16]) {
  /* Shards cover the key space in index order: the last shard whose start <= hash. */
  uint32_t lo = 0, hi = si->n;
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (memcmp(si->sh[mid].hk_start, hash, 16) <= 0) lo = mid;
    else hi = mid;
  }
  return lo;
}

typedef struct sortkey {
  uint32_t shard;
  size_t i;
} sortkey_t;

static int sortkey_cmp(const void *a, const void *b) {
  const sortkey_t *x = a, *y = b;
  if (x->shard != y->shard) return x->shard < y->shard ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

static void prod_appended(void *ctx, const rn_core_produce_result_t *r) {
  prod_op_t *p = ctx;
  if (r->err) {
    rn_err_t err = r->err;
    const char *m = r->msg ? r->msg : rn_strerror(err);
    if (err == RN_ENOSTREAM)
      return prod_fail(p, RN_KERR_ResourceNotFoundException, "Stream %s under account " ACCOUNT " not found.", p->stream);
    if (err == RN_ESHUTDOWN)
      return prod_fail(p, RN_KERR_ServiceUnavailable, "The broker is shutting down; retry against another broker.");
    if (transient_error(err)) return prod_fail(p, RN_KERR_ServiceUnavailable, "%s; retry", m);
    return prod_fail(p, RN_KERR_InternalFailure, "%s", m);
  }
  for (size_t b = 0; b < p->nb; b++) {
    const pbatch_t *pb = &p->batches[b];
    const rn_core_batch_result_t *res = b < r->nresults ? &r->results[b] : NULL;
    for (size_t j = 0; j < pb->count; j++) {
      size_t i = p->order[pb->first + j];
      if (!res) {
        rec_fail(p, i, RN_KERR_InternalFailure, "Internal service failure.");
      } else if (res->err) {
        rn_err_t err = res->err;
        if (err == RN_ETHROTTLED)
          rec_fail(p, i, RN_KERR_ProvisionedThroughputExceededException,
                   "Rate exceeded for shard shardId-%012u in stream %s under account " ACCOUNT ".", pb->shard, p->stream);
        else
          rec_fail(p, i, RN_KERR_InternalFailure, "%s: %s",
                   transient_error(err) ? "Service unavailable, retry" : "Internal service failure",
                   res->msg ? res->msg : rn_strerror(err));
        /* PutRecords keeps InternalFailure (one of the two codes AWS
         * documents per record); a lone record answers 503. */
        p->pub.res[i].retry_later = transient_error(err);
      } else {
        /* A record the stream's dedup window found stored answers with
         * its original (shard, offset): its ShardId and SequenceNumber. */
        uint32_t shard;
        uint64_t off;
        rn_core_batch_record_pos(res, (uint32_t)j, &shard, &off);
        p->pub.res[i].shard = shard;
        p->pub.res[i].offset = off;
      }
    }
  }
  prod_finish(p);
}

static void prod_described(void *ctx, const rn_core_describe_result_t *r) {
  prod_op_t *p = ctx;
  rn_kinesis_t *kin = p->kin;
  if (r->err) {
    if (r->err == RN_ENOSTREAM)
      return prod_fail(p, RN_KERR_ResourceNotFoundException, "Stream %s under account " ACCOUNT " not found.", p->stream);
    return prod_fail(p, RN_KERR_InternalFailure, "%s", r->msg ? r->msg : rn_strerror(r->err));
  }
  if (!sinfo_take(&p->si, r->stream) || p->si.n == 0)
    return prod_fail(p, RN_KERR_InternalFailure, "unexpected answer from the engine");
  p->pub.created_ms = p->si.created_ms;
  size_t n = p->pub.n;
  sortkey_t *keys = rn_xmalloc((n ? n : 1) * sizeof(*keys));
  p->order = rn_xmalloc((n ? n : 1) * sizeof(size_t));
  size_t nk = 0;
  for (size_t i = 0; i < n; i++) {
    const rn__krec_t *rec = &p->recs[i];
    uint8_t h[16];
    if (rec->has_hash) memcpy(h, rec->hash, 16);
    else rn_hash_key_for(rec->key, rec->key_len, h);
    uint32_t s = route(&p->si, h);
    p->pub.res[i].shard = s;
    if (kin->throttle) {
      rn__bucket_t *b = bucket(kin, p->stream, &p->si, s);
      double sz = (double)(rec->data_len + rec->key_len);
      if (b->w_records < 1.0 || b->w_bytes < sz) {
        rn_admin_counters(kin->adm)->throttled_records++;
        rec_fail(p, i, RN_KERR_ProvisionedThroughputExceededException,
                 "Rate exceeded for shard shardId-%012u in stream %s under account " ACCOUNT ".", s, p->stream);
        continue;
      }
      b->w_records -= 1.0;
      b->w_bytes -= sz;
    }
    keys[nk].shard = s;
    keys[nk].i = i;
    nk++;
  }
  qsort(keys, nk, sizeof(*keys), sortkey_cmp);
  /* One batch per shard, split when a batch would pass max_batch_bytes. */
  p->batches = rn_xcalloc(nk ? nk : 1, sizeof(*p->batches));
  size_t limit = kin->max_batch_bytes > 65536 ? kin->max_batch_bytes - 4096 : kin->max_batch_bytes / 2;
  int64_t now = now_ms(kin);
  pbatch_t *cur = NULL;
  for (size_t k = 0; k < nk; k++) {
    size_t i = keys[k].i;
    const rn__krec_t *rec = &p->recs[i];
    size_t sz = rec->data_len + rec->key_len + 32;
    if (!cur || cur->shard != keys[k].shard || rn_batch_builder_size(&cur->bld) + sz > limit) {
      cur = &p->batches[p->nb++];
      cur->shard = keys[k].shard;
      cur->first = k;
      rn_batch_builder_init(&cur->bld);
    }
    rn_record_t rr;
    memset(&rr, 0, sizeof(rr));
    rr.timestamp = now;
    rr.key = (const uint8_t *)rec->key;
    rr.key_len = rec->key_len;
    rr.value = rec->data;
    rr.value_len = rec->data_len;
    rn_err_t err = rn_batch_builder_add(&cur->bld, &rr);
    if (err) {
      free(keys);
      return prod_fail(p, RN_KERR_InternalFailure, "building a batch failed: %s", rn_strerror(err));
    }
    p->order[k] = i;
    cur->count++;
  }
  free(keys);
  p->norder = nk;
  if (p->nb == 0) return prod_finish(p); /* every record was throttled */
  rn_core_batch_in_t *bs = rn_xcalloc(p->nb, sizeof(*bs));
  for (size_t b = 0; b < p->nb; b++) {
    const uint8_t *bytes;
    size_t len;
    rn_err_t err = rn_batch_builder_finish(&p->batches[b].bld, RN_CODEC_NONE, NULL, &bytes, &len);
    if (err) {
      free(bs);
      return prod_fail(p, RN_KERR_InternalFailure, "sealing a batch failed: %s", rn_strerror(err));
    }
    bs[b] = (rn_core_batch_in_t){.shard = p->batches[b].shard, .data = bytes, .len = len};
  }
  rn_core_produce_req_t pr = {.stream = p->stream, .batches = bs, .nbatches = p->nb};
  /* The engine copies the batches before returning (it may also answer,
   * and p may be gone when it returns). */
  rn_core_produce(kin->core, &pr, prod_appended, p);
  free(bs);
}

void rn_kinesis_produce(rn_kinesis_t *kin, const char *stream, const rn__krec_t *recs, size_t n, rn__produce_cb cb, void *arg) {
  prod_op_t *p = rn_xcalloc(1, sizeof(*p));
  p->kin = kin;
  snprintf(p->stream, sizeof(p->stream), "%s", stream);
  p->recs = recs;
  p->cb = cb;
  p->arg = arg;
  p->pub.n = n;
  p->pub.res = rn_xcalloc(n ? n : 1, sizeof(*p->pub.res));
  for (size_t i = 0; i < n; i++) {
    size_t sz = recs[i].data_len + recs[i].key_len;
    if (sz > kin->max_record_bytes)
      return prod_fail(p, RN_KERR_InvalidArgumentException,
                       "Record %zu is %zu bytes (data + partition key); this broker accepts at most %u "
                       "(max_record_bytes)",
                       i, sz, kin->max_record_bytes);
  }
  if (rn_core_draining(kin->core))
    return prod_fail(p, RN_KERR_ServiceUnavailable, "The broker is shutting down; retry against another broker.");
  rn_core_describe_req_t d = {.name = p->stream};
  rn_core_describe_stream(kin->core, &d, prod_described, p);
}

/* ---- PutRecord / PutRecords ------------------------------------------------------------------------------------ */

static void put_record_done(rn__produce_t *p, void *arg) {
  kop_t *o = arg;
  if (p->err_type) return kop_error(o, p->err_type, "%s", p->err_msg);
  const rn__prod_result_t *res = &p->res[0];
  if (res->err_type) return kop_error(o, res->retry_later ? RN_KERR_ServiceUnavailable : res->err_type, "%s", res->err_msg);
  char seq[RN__KSEQ_BUFLEN];
  rn__kseq_encode(p->created_ms, res->shard, res->offset, seq);
  rn_buf_t b = {0};
  rn_buf_printf(&b, "{\"ShardId\":\"shardId-%012u\",\"SequenceNumber\":\"%s\",\"EncryptionType\":\"NONE\"}", res->shard,
                 seq);
  kop_reply(o, &b);
}

static uint64_t pow10u(int e) {
  uint64_t v = 1;
  while (e-- > 0) v *= 10;
  return v;
}

static void put_records_done(rn__produce_t *p, void *arg) {
  kop_t *o = arg;
  if (p->err_type) return kop_error(o, p->err_type, "%s", p->err_msg);
  rn_buf_t b = {0};
  rn_buf_reserve(&b, 64 + p->n * 110);
  rn_buf_printf(&b, "{\"FailedRecordCount\":%zu,\"Records\":[", p->failed);
  rn__kseq_cache_t sc;
  memset(sc.len, 0, sizeof(sc.len));
  for (size_t i = 0; i < p->n; i++) {
    const rn__prod_result_t *res = &p->res[i];
    if (i) rn_buf_put(&b, ",", 1);
    if (res->err_type) {
      rn_buf_printf(&b, "{\"ErrorCode\":\"%s\",\"ErrorMessage\":", rn_kinesis_err_name(res->err_type));
      rn__buf_json_str(&b, res->err_msg, strlen(res->err_msg));
      rn_buf_put(&b, "}", 1);
    } else {
      /* The hot loop of PutRecords: no printf. */
      const char *seq;
      size_t sl = rn__kseq_cached(&sc, p->created_ms, res->shard, res->offset, &seq);
      char sid[24] = "shardId-000000000000";
      for (int d = 19; d >= 8 && res->shard; d--) sid[d] = (char)('0' + ((uint64_t)res->shard / pow10u(19 - d)) % 10);
      rn_buf_put(&b, "{\"SequenceNumber\":\"", 19);
      rn_buf_put(&b, seq, sl);
      rn_buf_put(&b, "\",\"ShardId\":\"", 13);
      rn_buf_put(&b, sid, 20);
      rn_buf_put(&b, "\"}", 2);
    }
  }
  rn_buf_puts(&b, "],\"EncryptionType\":\"NONE\"}");
  kop_reply(o, &b);
}

/* ---- CreateStream / DeleteStream ----------------------------------------------------------------------------------- */

static void created(kop_t *o, const kans_t *a) {
  if (a->err) return engine_error(o, a->err, a->msg, o->k.stream);
  const rn_core_stream_desc_t *d = a->stream;
  if (!o->k.on_demand && o->k.ntags == 0) {
    /* A stale entry of an older stream of this name goes with its stream. */
    if (kmeta_find(&o->kin->kmeta, o->k.stream)) {
      kmeta_remove(&o->kin->kmeta, o->k.stream);
      return kmeta_persist(o->kin, persisted_reply_empty, o);
    }
    return kop_reply_empty(o);
  }
  rn__kmeta_stream_t *e = kmeta_get(&o->kin->kmeta, o->k.stream, d ? d->created_ms : 0, true);
  kmeta_clear(e);
  e->on_demand = o->k.on_demand;
  for (size_t i = 0; i < o->k.ntags; i++) tag_set(e, o->k.tags[i].key, o->k.tags[i].value);
  kmeta_persist(o->kin, persisted_reply_empty, o);
}

static void op_create(kop_t *o) {
  uint32_t count = o->k.has_shard_count ? o->k.shard_count : ON_DEMAND_SHARDS;
  if (count > o->kin->max_shards)
    return kop_error(o, RN_KERR_LimitExceededException,
                     "This request would exceed the shard limit for the account " ACCOUNT " in %s. Limit: %u shards per "
                     "stream (max_shards). Number of shards requested: %u.",
                     o->c->region, o->kin->max_shards, count);
  if (o->k.ntags > MAX_TAGS)
    return kop_error(o, RN_KERR_InvalidArgumentException, "A stream can have at most %d tags; %zu were given.", MAX_TAGS,
                     o->k.ntags);
  rn_core_create_req_t cr = {
      .name = o->k.stream,
      .shard_count = count,
      .retention_ms = 0, /* the broker's default_retention (24 h unless configured), as for every API */
      .retention_bytes = 0,
      .durability = RN_DURABILITY_SYNC,
      /* tiered when the broker's default_local_retention is set (docs/tiering.md) */
      .tiering = RN_CORE_TIERING_DEFAULT,
  };
  o->next = created;
  rn_core_create_stream(o->kin->core, &cr, on_created, o);
}

static void deleted(kop_t *o, const kans_t *a) {
  if (a->err) return engine_error(o, a->err, a->msg, o->k.stream);
  if (!kmeta_find(&o->kin->kmeta, o->k.stream)) return kop_reply_empty(o);
  kmeta_remove(&o->kin->kmeta, o->k.stream);
  kmeta_persist(o->kin, persisted_reply_empty, o);
}

static void op_delete(kop_t *o) {
  rn_core_delete_req_t dr = {.name = o->k.stream};
  o->next = deleted;
  rn_core_delete_stream(o->kin->core, &dr, on_deleted, o);
}

/* ---- DescribeStream / DescribeStreamSummary -------------------------------------------------------------------------- */

static bool on_demand_of(kop_t *o) {
  rn__kmeta_stream_t *e = kmeta_get(&o->kin->kmeta, o->k.stream, o->si.created_ms, false);
  return e && e->on_demand;
}

static void describe_common(kop_t *o, rn_buf_t *b) {
  rn_buf_puts(b, "\"StreamName\":");
  rn__buf_json_str(b, o->k.stream, strlen(o->k.stream));
  rn_buf_puts(b, ",\"StreamARN\":");
  put_arn(b, o->c->region, o->k.stream);
  rn_buf_printf(b, ",\"StreamStatus\":\"ACTIVE\",\"StreamModeDetails\":{\"StreamMode\":\"%s\"}",
                 on_demand_of(o) ? "ON_DEMAND" : "PROVISIONED");
  rn_buf_printf(b, ",\"RetentionPeriodHours\":%lld,\"StreamCreationTimestamp\":", (long long)retention_hours(&o->si));
  rn__buf_timestamp(b, o->si.created_ms);
  rn_buf_puts(b, ",\"EnhancedMonitoring\":[{\"ShardLevelMetrics\":[]}],\"EncryptionType\":\"NONE\"");
}

static void described(kop_t *o, const kans_t *a) {
  if (!took_describe(o, a, o->k.stream)) return;
  uint32_t first = 0;
  if (o->k.exclusive_start) {
    uint32_t x;
    if (rn__shard_id_parse(o->k.exclusive_start, strlen(o->k.exclusive_start), &x) == 0) first = x + 1;
    else first = o->si.n;
  }
  uint32_t limit = o->k.limit ? o->k.limit : 100;
  rn_buf_t b = {0};
  rn_buf_puts(&b, "{\"StreamDescription\":{");
  describe_common(o, &b);
  rn_buf_puts(&b, ",\"Shards\":[");
  uint32_t shown = 0;
  for (uint32_t i = first; i < o->si.n && shown < limit; i++, shown++) {
    if (shown) rn_buf_put(&b, ",", 1);
    put_shard(&b, &o->si, i);
  }
  rn_buf_printf(&b, "],\"HasMoreShards\":%s}}", first + shown < o->si.n ? "true" : "false");
  kop_reply(o, &b);
}

static void described_summary(kop_t *o, const kans_t *a) {
  if (!took_describe(o, a, o->k.stream)) return;
  rn_buf_t b = {0};
  rn_buf_puts(&b, "{\"StreamDescriptionSummary\":{");
  describe_common(o, &b);
  rn_buf_printf(&b, ",\"OpenShardCount\":%u,\"ConsumerCount\":0}}", o->si.n);
  kop_reply(o, &b);
}

/* ---- ListStreams ---------------------------------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static void listed(kop_t *o, const kans_t *a) {
  if (a->err) return engine_error(o, a->err, a->msg, "");
  const rn_core_list_result_t *lr = a->list;
  size_t n = lr ? lr->nnames : 0;
  const char **names = rn_xmalloc((n ? n : 1) * sizeof(char *));
  for (size_t i = 0; i < n; i++) names[i] = lr->names[i];
  qsort(names, n, sizeof(char *), cmp_str);
  /* Start after ExclusiveStartStreamName or the name inside NextToken. */
  char after[129] = "";
  if (o->k.next_token) {
    uint8_t raw[300];
    size_t tl = strlen(o->k.next_token), rl = 0;
    if (tl > 380 || rn__b64_decode(o->k.next_token, tl, raw, &rl) || rl < 4 || memcmp(raw, "ls1|", 4) != 0 ||
        rl - 4 > 128) {
      free(names);
      return kop_error(o, RN_KERR_InvalidArgumentException, "Invalid NextToken.");
    }
    memcpy(after, raw + 4, rl - 4);
    after[rl - 4] = 0;
  } else if (o->k.exclusive_start) {
    snprintf(after, sizeof(after), "%s", o->k.exclusive_start);
  }
  size_t first = 0;
  if (after[0])
    while (first < n && strcmp(names[first], after) <= 0) first++;
  uint32_t limit = o->k.limit ? o->k.limit : 100;
  size_t end = first + limit < n ? first + limit : n;
  rn_buf_t b = {0};
  rn_buf_puts(&b, "{\"StreamNames\":[");
  for (size_t i = first; i < end; i++) {
    if (i > first) rn_buf_put(&b, ",", 1);
    rn__buf_json_str(&b, names[i], strlen(names[i]));
  }
  rn_buf_puts(&b, "],\"StreamSummaries\":[");
  for (size_t i = first; i < end; i++) {
    if (i > first) rn_buf_put(&b, ",", 1);
    rn__kmeta_stream_t *e = kmeta_find(&o->kin->kmeta, names[i]);
    rn_buf_puts(&b, "{\"StreamName\":");
    rn__buf_json_str(&b, names[i], strlen(names[i]));
    rn_buf_puts(&b, ",\"StreamARN\":");
    put_arn(&b, o->c->region, names[i]);
    rn_buf_printf(&b, ",\"StreamStatus\":\"ACTIVE\",\"StreamModeDetails\":{\"StreamMode\":\"%s\"}}",
                   e && e->on_demand ? "ON_DEMAND" : "PROVISIONED");
  }
  rn_buf_printf(&b, "],\"HasMoreStreams\":%s", end < n ? "true" : "false");
  if (end < n) {
    char tok[140];
    int tl = snprintf(tok, sizeof(tok), "ls1|%s", names[end - 1]);
    char enc[200];
    rn__b64_encode((const uint8_t *)tok, (size_t)tl, enc);
    rn_buf_printf(&b, ",\"NextToken\":\"%s\"", enc);
  }
  rn_buf_puts(&b, "}");
  free(names);
  kop_reply(o, &b);
}

static void op_list_streams(kop_t *o) {
  o->next = listed;
  rn_core_list_streams(o->kin->core, on_listed, o);
}

/* ---- ListShards ------------------------------------------------------------------------------------------------------------ */

static void shards_listed(kop_t *o, const kans_t *a) {
  if (!took_describe(o, a, o->k.stream)) return;
  uint32_t first = (uint32_t)o->offset; /* from the NextToken, else 0 */
  if (o->k.next_token && o->it.created_ms != o->si.created_ms)
    return kop_error(o, RN_KERR_ExpiredNextTokenException, "The NextToken belongs to an earlier stream named %s.", o->k.stream);
  if (o->k.stream_created_ms && o->k.stream_created_ms / 1000 != o->si.created_ms / 1000)
    return not_found(o, o->k.stream);
  if (o->k.exclusive_start) {
    uint32_t x;
    uint32_t after = rn__shard_id_parse(o->k.exclusive_start, strlen(o->k.exclusive_start), &x) == 0 ? x + 1 : o->si.n;
    if (after > first) first = after;
  }
  if (o->k.shard_filter == RN__SHARDS_AFTER_SHARD_ID) {
    uint32_t after = o->k.filter_shard == UINT32_MAX ? o->si.n : o->k.filter_shard + 1;
    if (after > first) first = after;
  }
  /* Every shard is open and none was ever closed (no resharding yet), so the
   * trim-horizon, latest and timestamp filters all select every shard. */
  uint32_t limit = o->k.limit ? o->k.limit : 1000;
  rn_buf_t b = {0};
  rn_buf_puts(&b, "{\"Shards\":[");
  uint32_t shown = 0;
  for (uint32_t i = first; i < o->si.n && shown < limit; i++, shown++) {
    if (shown) rn_buf_put(&b, ",", 1);
    put_shard(&b, &o->si, i);
  }
  rn_buf_puts(&b, "]");
  if (first + shown < o->si.n) {
    char tok[220], enc[320];
    int tl = snprintf(tok, sizeof(tok), "lsh1|%lld|%u|%s", (long long)o->si.created_ms, first + shown, o->k.stream);
    rn__b64_encode((const uint8_t *)tok, (size_t)tl, enc);
    rn_buf_printf(&b, ",\"NextToken\":\"%s\"", enc);
  }
  rn_buf_puts(&b, "}");
  kop_reply(o, &b);
}

static void op_list_shards(kop_t *o) {
  if (o->k.next_token) {
    uint8_t raw[400];
    size_t tl = strlen(o->k.next_token), rl = 0;
    long long created = 0;
    unsigned next = 0;
    int used = 0;
    if (tl > 500 || rn__b64_decode(o->k.next_token, tl, raw, &rl)) goto bad;
    raw[rl] = 0;
    if (sscanf((const char *)raw, "lsh1|%lld|%u|%n", &created, &next, &used) != 2 || used <= 0 ||
        !rn__valid_stream_name((const char *)raw + used, rl - (size_t)used))
      goto bad;
    snprintf(o->k.stream, sizeof(o->k.stream), "%s", (const char *)raw + used);
    o->k.has_stream = true;
    o->it.created_ms = created;
    o->offset = next;
  }
  return describe(o, o->k.stream, shards_listed);
bad:
  kop_error(o, RN_KERR_InvalidArgumentException, "Invalid NextToken.");
}

/* ---- GetShardIterator ------------------------------------------------------------------------------------------------------- */

static void iterator_reply(kop_t *o, uint64_t offset) {
  rn__kiter_t it;
  memset(&it, 0, sizeof(it));
  snprintf(it.stream, sizeof(it.stream), "%s", o->k.stream);
  it.shard = o->k.shard;
  it.offset = offset;
  it.created_ms = o->si.created_ms;
  it.issued_ms = now_ms(o->kin);
  char enc[RN__KITER_MAXLEN + 1];
  rn__kiter_encode(o->kin->iter_key, &it, enc);
  rn_buf_t b = {0};
  rn_buf_printf(&b, "{\"ShardIterator\":\"%s\"}", enc);
  kop_reply(o, &b);
}

static void at_timestamp(kop_t *o, const kans_t *a) {
  if (a->err) return engine_error(o, a->err, a->msg, o->k.stream);
  const rn_core_offsets_result_t *lr = a->offsets;
  if (!lr || lr->nshards != 1) return kop_error(o, RN_KERR_InternalFailure, "unexpected answer from the engine");
  if (lr->shards[0].err) return engine_error(o, lr->shards[0].err, lr->shards[0].msg, o->k.stream);
  iterator_reply(o, lr->shards[0].offset);
}

static void iterator_described(kop_t *o, const kans_t *a) {
  if (!took_describe(o, a, o->k.stream)) return;
  if (o->k.shard >= o->si.n) return shard_not_found(o, o->k.shard, o->k.shard_id, o->k.stream);
  const sshard_t *sh = &o->si.sh[o->k.shard];
  switch (o->k.iter_type) {
  case RN__ITER_TRIM_HORIZON: return iterator_reply(o, sh->start);
  case RN__ITER_LATEST: return iterator_reply(o, sh->end);
  case RN__ITER_AT_TIMESTAMP: {
    int64_t now = now_ms(o->kin);
    if (o->k.ts_ms > now)
      return kop_error(o, RN_KERR_InvalidArgumentException,
                       "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. "
                       "timestampInMillis: %lld, currentTimestampInMillis: %lld",
                       (long long)o->k.ts_ms, (long long)now);
    /* Resolved by the engine on the thread pool (a read of the time index). */
    rn_core_shard_pos_t pos = {.shard = o->k.shard, .kind = RN_CORE_POS_TIMESTAMP, .value = o->k.ts_ms};
    rn_core_offsets_req_t lr = {.stream = o->k.stream, .shards = &pos, .nshards = 1};
    o->next = at_timestamp;
    return rn_core_list_offsets(o->kin->core, &lr, on_offsets, o);
  }
  default: break;
  }
  /* AT_ / AFTER_SEQUENCE_NUMBER */
  rn__kseq_t q;
  const char *seq = o->k.start_seq;
  if (rn__kseq_decode(seq, strlen(seq), &q) != 0)
    return kop_error(o, RN_KERR_InvalidArgumentException,
                     "StartingSequenceNumber %.128s used in GetShardIterator on shard shardId-%012u in stream %s under "
                     "account " ACCOUNT " is invalid.",
                     seq, o->k.shard, o->k.stream);
  if (q.shard != o->k.shard)
    return kop_error(o, RN_KERR_InvalidArgumentException,
                     "Invalid StartingSequenceNumber. It encodes shardId-%012u, while it was used in a call to a shard "
                     "with shardId-%012u",
                     q.shard, o->k.shard);
  if (q.created_s != (o->si.created_ms / 1000 & ((1ll << 36) - 1)))
    return kop_error(o, RN_KERR_InvalidArgumentException,
                     "StartingSequenceNumber %.128s used in GetShardIterator on shard shardId-%012u in stream %s under "
                     "account " ACCOUNT " is invalid because it did not come from this stream.",
                     seq, o->k.shard, o->k.stream);
  uint64_t off = q.offset;
  if (o->k.iter_type == RN__ITER_AFTER_SEQUENCE_NUMBER) off = off == UINT64_MAX ? off : off + 1;
  if (off > sh->end)
    return kop_error(o, RN_KERR_InvalidArgumentException,
                     "StartingSequenceNumber %.128s used in GetShardIterator on shard shardId-%012u in stream %s under "
                     "account " ACCOUNT " is invalid: no record with it exists yet.",
                     seq, o->k.shard, o->k.stream);
  if (off < sh->start) off = sh->start; /* trimmed by retention: the oldest record still there */
  iterator_reply(o, off);
}

/* ---- GetRecords --------------------------------------------------------------------------------------------------------------- */

static void fmt_time(int64_t ms, char *out, size_t n) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, n, "%a %b %d %H:%M:%S UTC %Y", &tm);
}

/* One GetRecords record appended to b: the JSON is written in place into
 * room reserved once per record (no printf): the sequence number is the
 * previous one stepped by one offset when the offsets follow each other
 * (rn__kseq_next) and the timestamp text is reused while it repeats. */
typedef struct recs_fmt {
  char seq[RN__KSEQ_BUFLEN];
  size_t seq_len;
  uint64_t seq_off; /* the offset seq encodes; valid when seq_len > 0 */
  char ts[RN__TIMESTAMP_BUFLEN];
  size_t ts_len;
  int64_t ts_ms; /* the timestamp ts holds; valid when ts_len > 0 */
} recs_fmt_t;

#define LIT(s) s, sizeof(s) - 1
static inline char *put_lit(char *w, const char *s, size_t n) {
  memcpy(w, s, n);
  return w + n;
}

static void record_json(rn_buf_t *b, recs_fmt_t *f, int64_t created_ms, uint32_t shard, const rn_record_t *rec,
                        bool first) {
  rn_buf_reserve(b, 128 + RN__KSEQ_BUFLEN + RN__TIMESTAMP_BUFLEN + rn__b64_encoded_len(rec->value_len));
  if (b->oom) return;
  if (f->seq_len && rec->offset == f->seq_off + 1) rn__kseq_next(f->seq, f->seq_len);
  else if (!f->seq_len || rec->offset != f->seq_off) f->seq_len = rn__kseq_encode(created_ms, shard, rec->offset, f->seq);
  f->seq_off = rec->offset;
  if (!f->ts_len || rec->timestamp != f->ts_ms) {
    f->ts_len = rn__timestamp_fmt(rec->timestamp, f->ts);
    f->ts_ms = rec->timestamp;
  }
  char *w = b->p + b->len;
  if (!first) *w++ = ',';
  w = put_lit(w, LIT("{\"SequenceNumber\":\""));
  w = put_lit(w, f->seq, f->seq_len);
  w = put_lit(w, LIT("\",\"ApproximateArrivalTimestamp\":"));
  w = put_lit(w, f->ts, f->ts_len);
  w = put_lit(w, LIT(",\"Data\":\""));
  w += rn__b64_encode_raw(rec->value, rec->value_len, w);
  w = put_lit(w, LIT("\",\"PartitionKey\":"));
  b->len = (size_t)(w - b->p);
  rn__buf_json_str(b, (const char *)rec->key, rec->key_len); /* also writes the NUL */
  rn_buf_put(b, "}", 1);
}

static void records_reply(kop_t *o, const uint8_t *batches, size_t len, uint64_t end_offset) {
  rn_kinesis_t *kin = o->kin;
  uint32_t limit = o->k.limit ? o->k.limit : 10000;
  /* Built in its own buffer and handed to the transport (no copy of the
   * 10+ MiB answer): a fresh one per call. */
  rn_buf_t b = {0};
  rn_buf_reserve(&b, len + len / 3 + 4096);
  rn_buf_puts(&b, "{\"Records\":[");
  uint64_t next = o->offset;
  uint32_t count = 0;
  size_t data_bytes = 0;
  int64_t last_ts = 0;
  bool stop = false;
  recs_fmt_t f = {.seq_len = 0, .ts_len = 0};
  for (size_t at = 0; at < len && !stop;) {
    rn_batch_header_t h;
    if (rn_batch_header_decode(batches + at, len - at, &h) || h.batch_length > len - at) break;
    rn_batch_iter_t bi;
    /* The log verified both checksums of every batch it returned (rn_log_span_read). */
    if (rn_batch_iter_init_verified(&bi, batches + at, h.batch_length)) {
      rn_batch_iter_free(&bi);
      break;
    }
    rn_record_t rec;
    while (rn_batch_iter_next(&bi, &rec) == 0) {
      if (rec.offset < o->offset) continue;
      if (count == limit || (count > 0 && data_bytes + rec.value_len > GET_RECORDS_MAX_BYTES)) {
        stop = true;
        break;
      }
      record_json(&b, &f, o->si.created_ms, o->it.shard, &rec, count == 0);
      count++;
      data_bytes += rec.value_len;
      next = rec.offset + 1;
      last_ts = rec.timestamp;
    }
    rn_batch_iter_free(&bi);
    at += h.batch_length;
  }
  int64_t behind = 0;
  const sshard_t *sh = &o->si.sh[o->it.shard];
  if (next < end_offset && count) behind = sh->last_ms > last_ts ? sh->last_ms - last_ts : 0;
  if (next < end_offset && !count && len) {
    rn_buf_free(&b);
    return kop_error(o, RN_KERR_InternalFailure, "shard shardId-%012u: the batch at offset %" PRIu64 " could not be decoded",
                     o->it.shard, o->offset);
  }
  rn__kiter_t it = o->it;
  it.offset = next;
  it.issued_ms = now_ms(kin);
  char enc[RN__KITER_MAXLEN + 1];
  rn__kiter_encode(kin->iter_key, &it, enc);
  rn_buf_printf(&b, "],\"NextShardIterator\":\"%s\",\"MillisBehindLatest\":%lld}", enc, (long long)behind);
  rn_admin_counters(kin->adm)->get_records_calls++;
  rn_admin_counters(kin->adm)->get_records_records += count;
  rn_admin_counters(kin->adm)->get_records_bytes += data_bytes;
  if (kin->throttle) bucket(kin, o->it.stream, &o->si, o->it.shard)->r_bytes -= (double)data_bytes;
  if (b.oom) {
    rn_buf_free(&b);
    rn_admin_reply_kerr(o->c, RN_KERR_InternalFailure, "out of memory building the response");
  } else {
    rn_admin_reply_owned(o->c, 200, JSON_CT, NULL, 0, (uint8_t *)b.p, b.len); /* takes b.p */
  }
  kop_free(o);
}

static void fetch(kop_t *o, uint64_t offset);

static void fetched(kop_t *o, const kans_t *a) {
  if (a->err) return engine_error(o, a->err, a->msg, o->it.stream);
  const rn_core_fetch_result_t *fr = a->fetch;
  if (!fr || fr->nresults != 1) return kop_error(o, RN_KERR_InternalFailure, "unexpected answer from the engine");
  const rn_core_fetch_shard_result_t *res = &fr->results[0];
  if (res->err) {
    if (res->err == RN_EOFFSET && !o->refetched && o->offset < res->start_offset) {
      o->refetched = true; /* retention trimmed past us meanwhile: from the oldest record */
      return fetch(o, res->start_offset);
    }
    return engine_error(o, res->err, res->msg, o->it.stream);
  }
  /* The batches are borrowed during the callback: records_reply copies them into the answer. */
  records_reply(o, res->batches, res->batches_len, res->end_offset);
}

static void fetch(kop_t *o, uint64_t offset) {
  o->offset = offset;
  rn_core_shard_pos_t pos = {
      .shard = o->it.shard, .kind = RN_CORE_POS_OFFSET, .value = (int64_t)offset, .max_bytes = GET_RECORDS_MAX_BYTES};
  rn_core_fetch_req_t fr = {
      .stream = o->it.stream, .shards = &pos, .nshards = 1, .max_wait_ms = 0, .max_bytes = GET_RECORDS_MAX_BYTES};
  o->next = fetched;
  rn_core_fetch(o->kin->core, &fr, on_fetched, o);
}

static void records_described(kop_t *o, const kans_t *a) {
  if (!took_describe(o, a, o->it.stream)) return;
  if (o->si.created_ms != o->it.created_ms) return not_found(o, o->it.stream);
  if (o->it.shard >= o->si.n) return shard_not_found(o, o->it.shard, NULL, o->it.stream);
  const sshard_t *sh = &o->si.sh[o->it.shard];
  if (o->kin->throttle) {
    rn__bucket_t *b = bucket(o->kin, o->it.stream, &o->si, o->it.shard);
    if (b->r_calls < 1.0 || b->r_bytes <= 0) {
      rn_admin_counters(o->kin->adm)->throttled_reads++;
      return kop_error(o, RN_KERR_ProvisionedThroughputExceededException,
                       "Rate exceeded for shard shardId-%012u in stream %s under account " ACCOUNT ".", o->it.shard,
                       o->it.stream);
    }
    b->r_calls -= 1.0;
  }
  uint64_t off = o->it.offset < sh->start ? sh->start : o->it.offset;
  if (off >= sh->end) {
    o->offset = off;
    return records_reply(o, NULL, 0, sh->end); /* at the tip: nothing to read */
  }
  fetch(o, off);
}

static void op_get_records(kop_t *o) {
  /* The answer may reach 10 MiB of data as base64 JSON: the transport
   * routes no more of this connection's requests while that would not fit. */
  rn_http_reserve(o->c->req, o->c->ctx, GET_RECORDS_MAX_BYTES / 3 * 4 + (2u << 20));
  if (rn__kiter_decode(o->kin->iter_key, o->k.iterator, o->k.iterator_len, &o->it) != 0)
    return kop_error(o, RN_KERR_InvalidArgumentException, "Invalid ShardIterator.");
  int64_t now = now_ms(o->kin);
  if (now - o->it.issued_ms > RN__KITER_TTL_MS) {
    char was[64], is[64];
    fmt_time(o->it.issued_ms, was, sizeof(was));
    fmt_time(now, is, sizeof(is));
    return kop_error(o, RN_KERR_ExpiredIteratorException,
                     "Iterator expired. The iterator was created at time %s while right now it is %s which is further in "
                     "the future than the tolerated delay of %d milliseconds.",
                     was, is, RN__KITER_TTL_MS);
  }
  describe(o, o->it.stream, records_described);
}

/* ---- retention ----------------------------------------------------------------------------------------------------------------- */

static void retention_set(kop_t *o, const kans_t *a) {
  if (a->err) return engine_error(o, a->err, a->msg, o->k.stream);
  kop_reply_empty(o);
}

static void retention_described(kop_t *o, const kans_t *a) {
  if (!took_describe(o, a, o->k.stream)) return;
  long long want = (long long)o->k.retention_hours;
  bool unlimited = o->si.retention_ms <= 0;
  long long cur = (long long)retention_hours(&o->si);
  bool increase = o->k.op == RN__KOP_IncreaseStreamRetentionPeriod;
  if (want < DEFAULT_RETENTION_HOURS)
    return kop_error(o, RN_KERR_InvalidArgumentException,
                     "Minimum allowed retention period is %d hours. Requested retention period (%lld hours) is too short.",
                     DEFAULT_RETENTION_HOURS, want);
  if (want > MAX_RETENTION_HOURS)
    return kop_error(o, RN_KERR_InvalidArgumentException,
                     "Maximum allowed retention period is %d hours. Requested retention period (%lld hours) is too long.",
                     MAX_RETENTION_HOURS, want);
  if (increase && (unlimited || want < cur)) {
    if (unlimited)
      return kop_error(o, RN_KERR_InvalidArgumentException,
                       "Requested retention period (%lld hours) for stream %s can not be shorter than existing retention "
                       "period (unlimited). Use DecreaseRetentionPeriod API.",
                       want, o->k.stream);
    return kop_error(o, RN_KERR_InvalidArgumentException,
                     "Requested retention period (%lld hours) for stream %s can not be shorter than existing retention "
                     "period (%lld hours). Use DecreaseRetentionPeriod API.",
                     want, o->k.stream, cur);
  }
  if (!increase && !unlimited && want > cur)
    return kop_error(o, RN_KERR_InvalidArgumentException,
                     "Requested retention period (%lld hours) for stream %s can not be longer than existing retention "
                     "period (%lld hours). Use IncreaseRetentionPeriod API.",
                     want, o->k.stream, cur);
  rn_core_retention_req_t sr = {
      .name = o->k.stream, .retention_ms = (int64_t)want * 3600 * 1000, .retention_bytes = o->si.retention_bytes};
  o->next = retention_set;
  rn_core_set_retention(o->kin->core, &sr, on_retention, o);
}

/* ---- tags ------------------------------------------------------------------------------------------------------------------------ */

static void tags_described(kop_t *o, const kans_t *a) {
  if (!took_describe(o, a, o->k.stream)) return;
  rn__kmeta_t *km = &o->kin->kmeta;
  if (o->k.op == RN__KOP_ListTagsForStream) {
    rn__kmeta_stream_t *e = kmeta_get(km, o->k.stream, o->si.created_ms, false);
    uint32_t limit = o->k.limit ? o->k.limit : 50;
    rn_buf_t b = {0};
    rn_buf_puts(&b, "{\"Tags\":[");
    size_t shown = 0, i = 0, n = e ? e->ntags : 0;
    if (o->k.exclusive_start)
      while (i < n && strcmp(e->keys[i], o->k.exclusive_start) <= 0) i++;
    for (; i < n && shown < limit; i++, shown++) {
      if (shown) rn_buf_put(&b, ",", 1);
      rn_buf_puts(&b, "{\"Key\":");
      rn__buf_json_str(&b, e->keys[i], strlen(e->keys[i]));
      rn_buf_puts(&b, ",\"Value\":");
      rn__buf_json_str(&b, e->values[i], strlen(e->values[i]));
      rn_buf_puts(&b, "}");
    }
    rn_buf_printf(&b, "],\"HasMoreTags\":%s}", i < n ? "true" : "false");
    return kop_reply(o, &b);
  }
  if (o->k.op == RN__KOP_AddTagsToStream) {
    rn__kmeta_stream_t *e = kmeta_get(km, o->k.stream, o->si.created_ms, false);
    size_t total = e ? e->ntags : 0;
    for (size_t i = 0; i < o->k.ntags; i++)
      if (!e || tag_index(e, o->k.tags[i].key) < 0) total++;
    if (total > MAX_TAGS)
      return kop_error(o, RN_KERR_InvalidArgumentException,
                       "Failed to add tags to stream %s under account " ACCOUNT
                       " because a given stream cannot have more than %d tags.",
                       o->k.stream, MAX_TAGS);
    e = kmeta_get(km, o->k.stream, o->si.created_ms, true);
    for (size_t i = 0; i < o->k.ntags; i++) tag_set(e, o->k.tags[i].key, o->k.tags[i].value);
  } else {
    rn__kmeta_stream_t *e = kmeta_get(km, o->k.stream, o->si.created_ms, false);
    if (!e) return kop_reply_empty(o);
    for (size_t i = 0; i < o->k.ntag_keys; i++) tag_remove(e, o->k.tag_keys[i]);
  }
  kmeta_persist(o->kin, persisted_reply_empty, o);
}

/* ---- DescribeLimits ---------------------------------------------------------------------------------------------------------------- */

static void op_describe_limits(kop_t *o) {
  rn_core_stats_t st;
  rn_core_stats(o->kin->core, &st);
  size_t on_demand = 0;
  for (size_t i = 0; i < o->kin->kmeta.n; i++) on_demand += o->kin->kmeta.v[i].on_demand;
  rn_buf_t b = {0};
  rn_buf_printf(&b,
                 "{\"ShardLimit\":%u,\"OpenShardCount\":%u,\"OnDemandStreamCount\":%zu,\"OnDemandStreamCountLimit\":%u}",
                 o->kin->max_shards, st.shards, on_demand, 50u);
  kop_reply(o, &b);
}

/* ---- dispatch ------------------------------------------------------------------------------------------------------------------------ */

static void run(kop_t *o) {
  switch (o->k.op) {
  case RN__KOP_CreateStream: return op_create(o);
  case RN__KOP_DeleteStream: return op_delete(o);
  case RN__KOP_DescribeStream: return describe(o, o->k.stream, described);
  case RN__KOP_DescribeStreamSummary: return describe(o, o->k.stream, described_summary);
  case RN__KOP_ListStreams: return op_list_streams(o);
  case RN__KOP_ListShards: return op_list_shards(o);
  case RN__KOP_PutRecord: return rn_kinesis_produce(o->kin, o->k.stream, o->k.recs, 1, put_record_done, o);
  case RN__KOP_PutRecords: return rn_kinesis_produce(o->kin, o->k.stream, o->k.recs, o->k.nrecs, put_records_done, o);
  case RN__KOP_GetShardIterator: return describe(o, o->k.stream, iterator_described);
  case RN__KOP_GetRecords: return op_get_records(o);
  case RN__KOP_IncreaseStreamRetentionPeriod:
  case RN__KOP_DecreaseStreamRetentionPeriod: return describe(o, o->k.stream, retention_described);
  case RN__KOP_AddTagsToStream:
  case RN__KOP_RemoveTagsFromStream:
  case RN__KOP_ListTagsForStream: return describe(o, o->k.stream, tags_described);
  case RN__KOP_DescribeLimits: return op_describe_limits(o);
  default: return kop_error(o, RN_KERR_InternalFailure, "operation %s has no handler", rn__kop_name(o->k.op));
  }
}

static const char *unsupported_why(rn__kop_t op) {
  switch (op) {
  case RN__KOP_SplitShard:
  case RN__KOP_MergeShards:
  case RN__KOP_UpdateShardCount:
    return "resharding is not supported yet: a stream keeps the shard count it was created with";
  case RN__KOP_RegisterStreamConsumer:
  case RN__KOP_DeregisterStreamConsumer:
  case RN__KOP_DescribeStreamConsumer:
  case RN__KOP_ListStreamConsumers:
  case RN__KOP_SubscribeToShard:
    return "enhanced fan-out is not supported yet: read with GetShardIterator and GetRecords (every reader gets "
           "the full throughput of a shard)";
  case RN__KOP_StartStreamEncryption:
  case RN__KOP_StopStreamEncryption: return "server-side encryption with KMS is not supported";
  case RN__KOP_EnableEnhancedMonitoring:
  case RN__KOP_DisableEnhancedMonitoring: return "shard-level metrics are always on: scrape GET /metrics";
  case RN__KOP_UpdateStreamMode: return "stream modes cannot be changed (a stream keeps its shard count)";
  default: return "see docs/kinesis.md for the supported operations";
  }
}

void rn_kinesis_handle(rn_kinesis_t *kin, rn_admin_call_t *c, const char *target) {
  const rn_http_req_t *req = c->req;
  c->hop = RN__HOP_KINESIS_UNKNOWN;
  snprintf(c->region, sizeof(c->region), "us-east-1");
  if (strcmp(req->method, "POST") != 0)
    return rn_admin_reply_kerr(c, RN_KERR_AccessDeniedException, "Unable to determine service/operation name to be authorized");
  /* "Kinesis_20131202.PutRecord" */
  static const char prefix[] = "Kinesis_20131202.";
  rn__kop_t op = RN__KOP_COUNT;
  if (target && strncmp(target, prefix, sizeof(prefix) - 1) == 0)
    op = rn__kop_from_name(target + sizeof(prefix) - 1, strlen(target + sizeof(prefix) - 1));
  if (op == RN__KOP_COUNT)
    return rn_admin_reply_kerr(c, RN_KERR_UnknownOperationException, "%s%.100s",
                         target ? "Unknown operation " : "No X-Amz-Target header: the operation is unknown", target ? target : "");
  c->hop = (int)op;
  const char *ct = rn_admin_req_header(req, "content-type");
  if (ct && strncmp(ct, "application/x-amz-cbor", 22) == 0)
    return rn_admin_reply_kerr(c, RN_KERR_SerializationException,
                         "CBOR is not supported; use the JSON protocol (Java SDK: -Daws.cborEnabled=false or "
                         "AWS_CBOR_DISABLE=true)");
  /* Authentication before anything else is looked at. */
  rn_sigv4_result_t sv;
  if (kin->ncreds) {
    int64_t now_s = now_ms(kin) / 1000;
    if (rn_sigv4_verify(req, kin->creds, kin->ncreds, "kinesis", now_s, 300, &sv) != RN_SIGV4_OK) {
      rn_admin_counters(kin->adm)->auth_failures++;
      return rn_admin_reply_kerr(c, sv.type, "%s", sv.message);
    }
    if (sv.region[0]) snprintf(c->region, sizeof(c->region), "%s", sv.region);
  } else if (rn_sigv4_scope(req, &sv) == 0 && sv.region[0]) {
    snprintf(c->region, sizeof(c->region), "%s", sv.region);
  }
  for (char *p = c->region; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) *p = '-';
  if (!rn__kop_supported(op))
    return rn_admin_reply_kerr(c, RN_KERR_InvalidArgumentException, "%s is not supported by runnel: %s.", rn__kop_name(op),
                         unsupported_why(op));
  kop_t *o = rn_xcalloc(1, sizeof(*o));
  o->c = c;
  o->kin = kin;
  rn__kerr_t err;
  if (rn__kreq_decode(op, req->body, req->body_len, &o->k, &err) != 0) {
    rn_admin_reply_kerr(c, err.type != RN_KERR_NONE ? err.type : RN_KERR_SerializationException, "%s", err.msg);
    free(o);
    return;
  }
  run(o);
}

/* ---- lifetime ---------------------------------------------------------------------------------- */

static rn_err_t parse_credentials(rn_kinesis_t *kin, const char *spec, char *why, size_t whylen) {
  size_t n = 0;
  for (const char *p = spec; *p; p++) n += *p == ',';
  kin->creds_buf = strdup(spec);
  kin->creds = calloc(n + 1, sizeof(*kin->creds));
  if (!kin->creds_buf || !kin->creds) return RN_ENOMEM;
  char *save = NULL;
  size_t idx = 0;
  for (char *tok = strtok_r(kin->creds_buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    idx++;
    while (*tok == ' ' || *tok == '\t') tok++;
    char *end = tok + strlen(tok);
    while (end > tok && (end[-1] == ' ' || end[-1] == '\t')) *--end = 0;
    if (!*tok) continue;
    char *colon = strchr(tok, ':');
    if (!colon || colon == tok || !colon[1]) {
      snprintf(why, whylen, "kinesis_credentials: entry %zu must be ACCESS_KEY_ID:SECRET_ACCESS_KEY", idx);
      return RN_EINVAL;
    }
    *colon = 0;
    kin->creds[kin->ncreds].akid = tok;
    kin->creds[kin->ncreds].secret = colon + 1;
    kin->ncreds++;
  }
  return 0;
}

rn_err_t rn_kinesis_new(uv_loop_t *loop, rn_core_t *core, rn_admin_t *adm, const rn_kinesis_opts_t *opts,
                        rn_kinesis_t **out, char *why, size_t whylen) {
  *out = NULL;
  if (whylen) why[0] = 0;
  rn_kinesis_t *kin = calloc(1, sizeof(*kin));
  if (!kin) return RN_ENOMEM;
  kin->loop = loop;
  kin->core = core;
  kin->adm = adm;
  kin->max_record_bytes = opts->max_record_bytes;
  kin->max_batch_bytes = opts->max_batch_bytes;
  kin->max_shards = opts->max_shards;
  kin->throttle = opts->throughput_limits;
  rn_err_t err = 0;
  if (RAND_bytes(kin->iter_key, sizeof(kin->iter_key)) != 1) {
    snprintf(why, whylen, "no randomness for the shard-iterator secret");
    err = RN_EIO;
  }
  if (!err) err = parse_credentials(kin, opts->credentials, why, whylen);
  if (!err) err = kmeta_load(&kin->kmeta, opts->data_dir, why, whylen);
  if (err) {
    rn_kinesis_destroy(kin);
    return err;
  }
  *out = kin;
  return 0;
}

bool rn_kinesis_open(const rn_kinesis_t *kin) { return kin->ncreds == 0; }

void rn_kinesis_set_clock(rn_kinesis_t *kin, int64_t (*fn)(void *arg), void *arg) {
  kin->clock.wall_ms = fn;
  kin->clock.arg = arg;
}

void rn_kinesis_destroy(rn_kinesis_t *kin) {
  if (!kin) return;
  /* The tags file's writes run on the thread pool; let them land. */
  while (kin->pending_jobs) uv_run(kin->loop, UV_RUN_ONCE);
  kmeta_free(&kin->kmeta);
  for (size_t i = 0; i < kin->nlimits; i++) {
    free(kin->limits[i].name);
    free(kin->limits[i].b);
  }
  free(kin->limits);
  free(kin->creds);
  free(kin->creds_buf);
  OPENSSL_cleanse(kin->iter_key, sizeof(kin->iter_key));
  free(kin);
}
