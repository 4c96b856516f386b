/*
 * tier.c — tiering for a broker (rn_tier_t) and its shards (rn_tier_shard_t):
 * the manifest on disk, the uploader, local and total retention, remote
 * deletes, the garbage collector, stream descriptors, stream-delete jobs and
 * restore. Remote reads and their cache are in reader.c (tier_int.h's
 * second half); the manifest codec in manifest.c.
 *
 * Invariants, in the order they protect data:
 *   1. A local segment is deleted (rn_log_delete_below) only when its
 *      UPLOADED record is durable in the manifest file (applied to ts->mf),
 *      or when total retention covers it and no remote entry is older.
 *   2. ts->mf is the manifest file's content: a record is applied only after
 *      the write (and fdatasync) that holds it completed. So everything read
 *      from ts->mf is durable.
 *   3. PUTs of a segment start only after its STARTED record is durable, so
 *      every object the uploader creates is referenced by the manifest or
 *      was left by a crash and is younger than... nothing: the collector
 *      deletes what no entry references once older than gc_grace.
 *   4. Remote objects of an entry are deleted only after the START record
 *      that puts the entry below the shard's start is durable (readers stop
 *      there first), and the entry leaves the manifest (DELETED) only after
 *      its objects are gone: a crash in between redoes the delete.
 *   5. One upload at a time per shard, in offset order: the manifest's
 *      entries are contiguous in what was uploaded, and only the last may be
 *      STARTED without UPLOADED.
 *
 * The upload state machine of a shard (ts->up.state):
 *   IDLE --(a sealed segment past the uploaded end, a slot, bandwidth)-->
 *   STARTING (STARTED being written) --> PUTTING (.index, .timeindex, .log)
 *   --> RECORDING (UPLOADED being written) --> IDLE
 *   any failure --> BACKOFF (until retry_ms; doubling, with jitter) --> IDLE
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "tier_int.h"

#define MANIFEST_NAME "tier.manifest"
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 60000
#define DEL_CONCURRENCY 8

static const char *const seg_suffix[3] = {".index", ".timeindex", ".log"};

const char *rn__up_state_name(rn__up_state_t s) {
  static const char *const names[] = {"idle", "starting", "putting", "recording", "backoff"};
  return s <= RN__UP_BACKOFF ? names[s] : "?";
}

/* ==== options, the tier ====================================================== */

void rn_tier_opts_default(rn_tier_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->cluster = "local";
  o->upload_concurrency = 4;
  o->cache_bytes = 256ull << 20;
  o->chunk_bytes = 4u << 20;
  o->readahead_chunks = 4;
  o->gc_grace_ms = 3600 * 1000;
  o->gc_interval_ms = 600 * 1000;
}

int64_t rn__tier_now(const rn_tier_t *t) { return rn_clock_wall_ms(&t->o.clock); }

rn_err_t rn_tier_new(const rn_tier_opts_t *o, rn_tier_t **out) {
  *out = NULL;
  if (!o || !o->store || !o->io || o->chunk_bytes < 4096 || o->upload_concurrency == 0) return RN_EINVAL;
  const char *cl = o->cluster && *o->cluster ? o->cluster : "local";
  if (strlen(cl) >= sizeof(((rn_tier_t *)0)->cluster) || strchr(cl, '/')) return RN_EINVAL;
  rn_tier_t *t = calloc(1, sizeof(*t));
  if (!t) return RN_ENOMEM;
  t->o = *o;
  snprintf(t->cluster, sizeof(t->cluster), "%s", cl);
  t->o.cluster = t->cluster;
  /* A read may need a few chunks at once (a batch spanning them): a cache
   * smaller than that would evict what the read is still assembling. */
  uint64_t min_cache = 4ull * o->chunk_bytes + (8u << 20);
  if (t->o.cache_bytes < min_cache) t->o.cache_bytes = min_cache;
  t->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)rn__tier_now(t);
  t->last_gc_ms = rn__tier_now(t);
  *out = t;
  return 0;
}

/* ---- store operations in flight ---------------------------------------------
 * Every store call carries an op (heap, freed by its callback). An op is
 * listed in its tier so that closing a shard or the tier can detach it:
 * its callback then only frees it. */

rn__op_t *rn__op_new(rn_tier_t *t, rn_tier_shard_t *ts, size_t size) {
  rn__op_t *op = calloc(1, size < sizeof(*op) ? sizeof(*op) : size);
  if (!op) return NULL;
  op->t = t;
  op->ts = ts;
  op->next = t->ops;
  if (t->ops) t->ops->prev = op;
  t->ops = op;
  return op;
}

/* Unlink and free; what the op points to is the caller's. */
void rn__op_done(rn__op_t *op) {
  if (op->t) {
    if (op->prev)
      op->prev->next = op->next;
    else
      op->t->ops = op->next;
    if (op->next) op->next->prev = op->prev;
  }
  free(op);
}

static void detach_ops(rn_tier_t *t, rn_tier_shard_t *ts) {
  for (rn__op_t *op = t->ops, *nx; op; op = nx) {
    nx = op->next;
    if (ts && op->ts != ts) continue;
    /* Out of the list for good: the callback sees op->t == NULL. */
    if (op->prev)
      op->prev->next = op->next;
    else
      t->ops = op->next;
    if (op->next) op->next->prev = op->prev;
    op->t = NULL;
    op->ts = NULL;
    op->prev = op->next = NULL;
    if (op->cancel) op->cancel(op);
  }
}

static void set_error(rn_tier_t *t, rn_tier_shard_t *ts, rn_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_error(rn_tier_t *t, rn_tier_shard_t *ts, rn_err_t err, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  t->last_err = err;
  snprintf(t->last_error, sizeof(t->last_error), "%s", msg);
  if (ts) {
    ts->last_err = err;
    snprintf(ts->last_error, sizeof(ts->last_error), "%s", msg);
  }
}

/* ---- keys ---------------------------------------------------------------------- */

/* "<hash8>/" + rest, where hash8 spreads keys over the store's partitions. */
static void hashed(char *out, size_t cap, const char *rest) {
  snprintf(out, cap, "%08x/%s", (unsigned)(XXH3_64bits(rest, strlen(rest)) & 0xffffffffu), rest);
}

void rn__tier_shard_prefix(const rn_tier_t *t, const char *stream, uint64_t uid, uint32_t shard, char *out,
                           size_t cap) {
  char rest[RN__TIER_KEY_MAX];
  snprintf(rest, sizeof(rest), "%s/%s-%" PRIu64 "/%" PRIu32 "/", t->cluster, stream, uid, shard);
  hashed(out, cap, rest);
}

static void stream_prefix(const rn_tier_t *t, const char *stream, char *out, size_t cap) {
  char rest[RN__TIER_KEY_MAX];
  snprintf(rest, sizeof(rest), "%s/_streams/%s/", t->cluster, stream);
  hashed(out, cap, rest);
}

void rn__tier_seg_key(const rn_tier_shard_t *ts, uint64_t base, uint32_t epoch, int kind, char *out, size_t cap) {
  static const char *const sfx[] = {".index", ".timeindex", ".log"};
  snprintf(out, cap, "%s%020" PRIu64 "-%" PRIu32 "%s", ts->prefix, base, epoch, sfx[kind]);
}

static bool name_ok(const char *s) {
  if (!s || !*s || strlen(s) > 128) return false;
  for (const char *p = s; *p; p++)
    if (*p == '/' || (unsigned char)*p < 0x20) return false;
  return true;
}

/* ==== the manifest file ====================================================== */

typedef struct mf_job {
  rn_tier_shard_t *ts;
  rn_fs_t *fs;
  char path[RN__TIER_PATH_MAX];
  char dir[RN__TIER_PATH_MAX - 64];
  uint64_t off;
  uint8_t buf[RN_MF_WRITE_RECS * RN_MF_REC_MAX];
  size_t len;
  rn_mf_rec_t recs[RN_MF_WRITE_RECS];
  unsigned n;
  uint8_t *snap; /* compaction: the whole new file */
  size_t snap_len;
  void (*done[RN_MF_WRITE_RECS])(rn_tier_shard_t *ts, rn_err_t err, const rn_mf_rec_t *r);
} mf_job_t;

static rn_err_t mf_job_fn(void *arg) {
  mf_job_t *j = arg;
  if (j->snap) return rn_snapshot_write(j->fs, j->dir, MANIFEST_NAME, j->snap, j->snap_len);
  rn_file_t *f;
  rn_err_t err = j->fs->open(j->fs, j->path, RN_FS_CREATE, &f);
  if (err) return err;
  struct iovec iov = {j->buf, j->len};
  err = f->fs->pwritev(f, &iov, 1, j->off);
  if (!err) err = f->fs->datasync(f);
  f->fs->close(f);
  return err;
}

static void mf_kick(rn_tier_shard_t *ts);

static void mf_job_cb(void *arg, rn_err_t res) {
  mf_job_t *j = arg;
  rn_tier_shard_t *ts = j->ts;
  ts->io_inflight--;
  ts->mf_active = false;
  if (j->snap) {
    if (!res) {
      ts->mf_size = j->snap_len;
      ts->mf.records = ts->mf_snap_records;
    } else {
      rn_say(&ts->t->o.logger, RN_LVL_WARN, "tier %s/%u: compacting the manifest failed: %s (kept the old one)",
             ts->stream, ts->shard, rn_strerror(res));
    }
    free(j->snap);
    free(j);
    mf_kick(ts);
    return;
  }
  if (!res) {
    ts->mf_size = j->off + j->len;
    for (unsigned i = 0; i < j->n; i++) {
      char why[200];
      rn_err_t e = rn_mf_apply(&ts->mf, &j->recs[i], why, sizeof(why));
      if (e) { /* the uploader never writes a contradiction: a bug if so */
        rn_say(&ts->t->o.logger, RN_LVL_ERROR, "tier %s/%u: manifest record refused: %s", ts->stream, ts->shard, why);
      }
    }
  } else {
    set_error(ts->t, ts, res, "writing %s: %s", j->path, rn_strerror(res));
    rn_say(&ts->t->o.logger, RN_LVL_WARN, "tier %s/%u: writing the manifest failed: %s", ts->stream, ts->shard,
           rn_strerror(res));
  }
  for (unsigned i = 0; i < j->n; i++)
    if (j->done[i]) j->done[i](ts, res, &j->recs[i]);
  free(j);
  mf_kick(ts);
}

/* Queue a record; done (may be NULL) runs once it is durable and applied,
 * or failed. Writes go one at a time, each with what queued meanwhile. */
static rn_err_t mf_append(rn_tier_shard_t *ts, const rn_mf_rec_t *r,
                          void (*done)(rn_tier_shard_t *ts, rn_err_t err, const rn_mf_rec_t *r)) {
  if (ts->mfq_len == RN__MFQ_MAX) return RN_EBUSY;
  ts->mfq[ts->mfq_len] = *r;
  ts->mfq_done[ts->mfq_len] = done;
  ts->mfq_len++;
  mf_kick(ts);
  return 0;
}

static void mf_kick(rn_tier_shard_t *ts) {
  if (ts->mf_active || ts->closing) return;
  rn_tier_t *t = ts->t;
  mf_job_t *j = calloc(1, sizeof(*j));
  if (!j) return; /* retried by the next append or tick */
  j->ts = ts;
  j->fs = rn_io_fs(t->o.io);
  snprintf(j->path, sizeof(j->path), "%s/%s", ts->dir, MANIFEST_NAME);
  snprintf(j->dir, sizeof(j->dir), "%s", ts->dir);
  if (ts->mfq_len) {
    unsigned n = ts->mfq_len < RN_MF_WRITE_RECS ? ts->mfq_len : RN_MF_WRITE_RECS;
    for (unsigned i = 0; i < n; i++) {
      j->recs[i] = ts->mfq[i];
      j->done[i] = ts->mfq_done[i];
      j->len += rn_mf_encode(&j->recs[i], j->buf + j->len);
    }
    j->n = n;
    j->off = ts->mf_size;
    memmove(ts->mfq, ts->mfq + n, (ts->mfq_len - n) * sizeof(*ts->mfq));
    memmove(ts->mfq_done, ts->mfq_done + n, (ts->mfq_len - n) * sizeof(*ts->mfq_done));
    ts->mfq_len -= n;
  } else if (ts->mf.records > 4 * (uint64_t)ts->mf.n + 64) {
    /* Compaction: the same state in the fewest records. */
    if (rn_mf_snapshot(&ts->mf, &j->snap, &j->snap_len)) {
      free(j);
      return;
    }
    ts->mf_snap_records = (ts->mf.start ? 1 : 0);
    for (uint32_t i = 0; i < ts->mf.n; i++) ts->mf_snap_records += ts->mf.segs[i].uploaded ? 2 : 1;
  } else {
    free(j);
    return;
  }
  if (rn_io_job_bg(t->o.io, mf_job_fn, mf_job_cb, j)) {
    /* Put the records back: the next tick tries again. */
    for (unsigned i = j->n; i > 0; i--) {
      if (ts->mfq_len == RN__MFQ_MAX) break;
      memmove(ts->mfq + 1, ts->mfq, ts->mfq_len * sizeof(*ts->mfq));
      memmove(ts->mfq_done + 1, ts->mfq_done, ts->mfq_len * sizeof(*ts->mfq_done));
      ts->mfq[0] = j->recs[i - 1];
      ts->mfq_done[0] = j->done[i - 1];
      ts->mfq_len++;
    }
    free(j->snap);
    free(j);
    return;
  }
  ts->mf_active = true;
  ts->io_inflight++;
}

/* ---- the bucket's mirror of the manifest ---- */

typedef struct mirror_op {
  rn__op_t op;
  uint8_t *data;
} mirror_op_t;

static void mirror_cb(void *arg, const rn_obj_result_t *r) {
  mirror_op_t *m = arg;
  rn_tier_shard_t *ts = m->op.ts;
  if (ts) {
    ts->mirror_active = false;
    if (r->err) {
      ts->mirror_dirty = true;
      if (ts->t->draining) ts->mirror_drain_failed = true;
      set_error(ts->t, ts, r->err, "mirroring the manifest: %s", r->message);
    }
  }
  free(m->data);
  rn__op_done(&m->op);
}

static void mirror(rn_tier_shard_t *ts) {
  if (ts->mirror_active || !ts->mirror_dirty || ts->closing || ts->mirror_drain_failed) return;
  mirror_op_t *m = (mirror_op_t *)rn__op_new(ts->t, ts, sizeof(*m));
  size_t len;
  if (!m) return;
  if (rn_mf_snapshot(&ts->mf, &m->data, &len)) {
    rn__op_done(&m->op);
    return;
  }
  char key[RN__TIER_KEY_MAX];
  snprintf(key, sizeof(key), "%smanifest", ts->prefix);
  if (rn_objstore_put_mem(ts->t->o.store, key, m->data, len, mirror_cb, m)) {
    free(m->data);
    rn__op_done(&m->op);
    return;
  }
  ts->mirror_dirty = false;
  ts->mirror_active = true;
}

void rn_tier_drain(rn_tier_t *t) {
  if (t->draining) return;
  t->draining = true;
  for (uint32_t i = 0; i < t->nshards; i++) mirror(t->shards[i]);
}

bool rn_tier_drained(const rn_tier_t *t) {
  for (uint32_t i = 0; i < t->nshards; i++) {
    const rn_tier_shard_t *ts = t->shards[i];
    if (ts->closing) continue;
    if (ts->mirror_active || (ts->mirror_dirty && !ts->mirror_drain_failed)) return false;
  }
  return true;
}

/* ==== shards ================================================================= */

static rn_err_t load_manifest(rn_tier_shard_t *ts, char *why, size_t whylen) {
  rn_fs_t *fs = rn_io_fs(ts->t->o.io);
  void *data = NULL;
  size_t len = 0;
  rn_err_t err = rn_snapshot_read(fs, ts->dir, MANIFEST_NAME, &data, &len);
  if (err == RN_ENOENT) return 0;
  if (err) {
    snprintf(why, whylen, "%s/%s: %s", ts->dir, MANIFEST_NAME, rn_strerror(err));
    return err;
  }
  size_t valid = 0;
  char w[200] = "";
  err = rn_mf_parse(&ts->mf, data, len, &valid, w, sizeof(w));
  free(data);
  if (err) {
    snprintf(why, whylen, "%s/%s: %s", ts->dir, MANIFEST_NAME, w);
    return err;
  }
  ts->mf_size = valid;
  if (valid < len) {
    /* A torn last write: cut it off so appends follow the valid records. */
    char path[RN__TIER_PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", ts->dir, MANIFEST_NAME);
    rn_file_t *f;
    err = fs->open(fs, path, 0, &f);
    if (!err) {
      err = f->fs->truncate(f, valid);
      if (!err) err = f->fs->datasync(f);
      f->fs->close(f);
    }
    if (err) {
      snprintf(why, whylen, "%s: cannot cut its torn tail: %s", path, rn_strerror(err));
      return err;
    }
    rn_say(&ts->t->o.logger, RN_LVL_WARN, "tier %s/%u: manifest had a torn last write (%zu byte(s) dropped)",
           ts->stream, ts->shard, len - valid);
  }
  return 0;
}

rn_err_t rn_tier_shard_open(rn_tier_t *t, rn_log_t *log, const rn_tier_shard_opts_t *o, rn_tier_shard_t **out,
                            char *why, size_t whylen) {
  rn_assert_may_block("rn_tier_shard_open (reads the manifest)");
  *out = NULL;
  if (whylen) why[0] = '\0';
  if (!t || !log || !o || !name_ok(o->stream) || !o->dir || strlen(o->dir) > RN__TIER_PATH_MAX - 32) {
    snprintf(why, whylen, "invalid tier shard options");
    return RN_EINVAL;
  }
  rn_tier_shard_t *ts = calloc(1, sizeof(*ts));
  if (!ts) return RN_ENOMEM;
  ts->t = t;
  ts->log = log;
  snprintf(ts->stream, sizeof(ts->stream), "%s", o->stream);
  snprintf(ts->dir, sizeof(ts->dir), "%s", o->dir);
  ts->uid = o->uid;
  ts->shard = o->shard;
  ts->retention_ms = o->retention_ms;
  ts->retention_bytes = o->retention_bytes;
  ts->local_retention_ms = o->local_retention_ms;
  ts->local_retention_bytes = o->local_retention_bytes;
  rn__tier_shard_prefix(t, ts->stream, ts->uid, ts->shard, ts->prefix, sizeof(ts->prefix));
  rn_err_t err = load_manifest(ts, why, whylen);
  uint64_t up_end = rn_mf_uploaded_end(&ts->mf);
  if (!err && rn_log_next_offset(log) < up_end) {
    snprintf(why, whylen,
             "%s: the log ends at offset %" PRIu64 ", below the %" PRIu64 " already uploaded (a restored shard opens "
             "its log at the manifest's end)",
             ts->dir, rn_log_next_offset(log), up_end);
    err = RN_ECORRUPT;
  }
  if (err) {
    rn_mf_free(&ts->mf);
    free(ts);
    return err;
  }
  if (t->nshards == t->shards_cap) {
    uint32_t nc = t->shards_cap ? t->shards_cap * 2 : 16;
    rn_tier_shard_t **ns = realloc(t->shards, nc * sizeof(*ns));
    if (!ns) {
      rn_mf_free(&ts->mf);
      free(ts);
      return RN_ENOMEM;
    }
    t->shards = ns;
    t->shards_cap = nc;
  }
  t->shards[t->nshards++] = ts;
  ts->mirror_dirty = ts->mf.n > 0; /* the bucket may lag behind a crash */
  *out = ts;
  return 0;
}

void rn_tier_shard_close(rn_tier_shard_t *ts) {
  if (!ts) return;
  rn_tier_t *t = ts->t;
  ts->closing = true;
  rn__reader_shard_close(ts); /* reads: RN_ECANCELED; the cache forgets the shard */
  if (ts->up.state == RN__UP_STARTING || ts->up.state == RN__UP_PUTTING || ts->up.state == RN__UP_RECORDING)
    t->uploads_active--;
  detach_ops(t, ts);
  /* Manifest writes in flight hold ts: wait for them (short disk jobs). */
  while (ts->io_inflight) {
    rn_assert_may_block("rn_tier_shard_close (waits for a manifest write)");
    rn_io_wait(t->o.io, 100);
  }
  for (uint32_t i = 0; i < t->nshards; i++)
    if (t->shards[i] == ts) {
      memmove(t->shards + i, t->shards + i + 1, (t->nshards - i - 1) * sizeof(*t->shards));
      t->nshards--;
      break;
    }
  rn_mf_free(&ts->mf);
  free(ts);
}

void rn_tier_shard_set_retention(rn_tier_shard_t *ts, int64_t retention_ms, int64_t retention_bytes,
                                 int64_t local_retention_ms, int64_t local_retention_bytes) {
  ts->retention_ms = retention_ms;
  ts->retention_bytes = retention_bytes;
  ts->local_retention_ms = local_retention_ms;
  ts->local_retention_bytes = local_retention_bytes;
}

/* The first entry at or past the shard's start. */
static uint32_t first_live(const rn_tier_shard_t *ts) {
  uint32_t i = 0;
  while (i < ts->mf.n && ts->mf.segs[i].next <= ts->mf.start) i++;
  return i;
}

uint64_t rn_tier_shard_start(const rn_tier_shard_t *ts) {
  uint64_t ls = rn_log_start(ts->log);
  uint32_t i = first_live(ts);
  if (i < ts->mf.n && ts->mf.segs[i].uploaded && ts->mf.segs[i].base < ls) return ts->mf.segs[i].base;
  return ls;
}

uint64_t rn_tier_shard_remote_end(const rn_tier_shard_t *ts) {
  uint32_t i = first_live(ts);
  uint64_t end = rn_mf_uploaded_end(&ts->mf);
  return i < ts->mf.n && end ? end : rn_log_start(ts->log);
}

/* ==== uploads ================================================================ */

typedef struct put_op {
  rn__op_t op;
  int kind; /* 0 index, 1 timeindex, 2 log */
} put_op_t;

static void upload_fail(rn_tier_shard_t *ts, rn_err_t err, const char *what) {
  rn_tier_t *t = ts->t;
  t->uploads_active--;
  uint32_t b = ts->up.backoff_ms ? ts->up.backoff_ms * 2 : BACKOFF_MIN_MS;
  if (b > BACKOFF_MAX_MS) b = BACKOFF_MAX_MS;
  ts->up.backoff_ms = b;
  t->rng ^= t->rng << 13;
  t->rng ^= t->rng >> 7;
  t->rng ^= t->rng << 17;
  ts->up.retry_ms = rn__tier_now(t) + b / 2 + (int64_t)(t->rng % (b / 2 + 1));
  ts->up.state = RN__UP_BACKOFF;
  ts->up.failures++;
  set_error(t, ts, err, "upload of segment %" PRIu64 ": %s", ts->up.seg.base, what);
  /* One warning per episode, then one a minute while it lasts. */
  int64_t now = rn__tier_now(t);
  if (ts->up.failures == 1 || now - ts->up.warned_ms >= 60000) {
    rn_say(&t->o.logger, RN_LVL_WARN,
           "tier %s/%u: upload of segment %" PRIu64 " failed (%s); retrying in %u ms; the local backlog grows until "
           "the store is back",
           ts->stream, ts->shard, ts->up.seg.base, what, b);
    ts->up.warned_ms = now;
  }
}

static void shard_work(rn_tier_shard_t *ts, int64_t now);

static void on_uploaded(rn_tier_shard_t *ts, rn_err_t err, const rn_mf_rec_t *r) {
  (void)r;
  if (ts->up.state != RN__UP_RECORDING) return;
  if (err) {
    upload_fail(ts, err, "writing its UPLOADED record");
    return;
  }
  rn_tier_t *t = ts->t;
  t->uploads_active--;
  if (ts->up.failures)
    rn_say(&t->o.logger, RN_LVL_INFO, "tier %s/%u: uploads work again after %u failure(s)", ts->stream, ts->shard,
           ts->up.failures);
  ts->up.failures = 0;
  ts->up.backoff_ms = 0;
  ts->up.state = RN__UP_IDLE;
  ts->uploaded_bytes += ts->up.seg.bytes;
  ts->uploaded_segments++;
  t->bytes_uploaded += ts->up.seg.bytes;
  ts->mirror_dirty = true;
  shard_work(ts, rn__tier_now(t));
}

static void put_cb(void *arg, const rn_obj_result_t *r) {
  put_op_t *p = arg;
  rn_tier_shard_t *ts = p->op.ts;
  int kind = p->kind;
  rn__op_done(&p->op);
  if (!ts || ts->up.state != RN__UP_PUTTING) return;
  if (r->err && !ts->up.put_err) {
    ts->up.put_err = r->err;
    snprintf(ts->up.put_msg, sizeof(ts->up.put_msg), "PUT %s: %.200s", seg_suffix[kind], r->message);
  }
  if (--ts->up.puts_pending) return;
  if (ts->up.put_err) {
    upload_fail(ts, ts->up.put_err, ts->up.put_msg);
    return;
  }
  ts->up.state = RN__UP_RECORDING;
  rn_err_t err = mf_append(ts, &(rn_mf_rec_t){.type = RN_MF_UPLOADED, .base = ts->up.seg.base}, on_uploaded);
  if (err) upload_fail(ts, err, "queueing its UPLOADED record");
}

static void on_started(rn_tier_shard_t *ts, rn_err_t err, const rn_mf_rec_t *r) {
  (void)r;
  if (ts->up.state != RN__UP_STARTING) return;
  if (err) {
    upload_fail(ts, err, "writing its STARTED record");
    return;
  }
  rn_tier_t *t = ts->t;
  ts->up.state = RN__UP_PUTTING;
  ts->up.put_err = 0;
  ts->up.puts_pending = 0;
  for (int k = 0; k < 3; k++) {
    char path[RN__TIER_PATH_MAX], key[RN__TIER_KEY_MAX];
    if (rn_log_seg_path(ts->log, ts->up.seg.base, seg_suffix[k], path, sizeof(path))) {
      ts->up.put_err = RN_ETOOLARGE;
      break;
    }
    rn__tier_seg_key(ts, ts->up.seg.base, ts->up.seg.epoch, k, key, sizeof(key));
    uint64_t len = k == 0 ? ts->up.seg.index_bytes : k == 1 ? ts->up.seg.timeindex_bytes : ts->up.seg.bytes;
    put_op_t *p = (put_op_t *)rn__op_new(t, ts, sizeof(*p));
    if (!p) {
      ts->up.put_err = RN_ENOMEM;
      break;
    }
    p->kind = k;
    rn_err_t e = rn_objstore_put_file(t->o.store, key, path, len, put_cb, p);
    if (e) {
      rn__op_done(&p->op);
      ts->up.put_err = e;
      snprintf(ts->up.put_msg, sizeof(ts->up.put_msg), "PUT %.180s: %s", key, rn_strerror(e));
      break;
    }
    ts->up.puts_pending++;
  }
  if (ts->up.puts_pending == 0) upload_fail(ts, ts->up.put_err ? ts->up.put_err : RN_EIO, ts->up.put_msg);
}

/* The next local segment to upload: sealed, at or past the uploaded end. */
static bool next_candidate(const rn_tier_shard_t *ts, rn_log_seg_info_t *out) {
  uint64_t end = rn_mf_uploaded_end(&ts->mf);
  if (end < ts->mf.start) end = ts->mf.start;
  rn_log_seg_info_t segs[64];
  uint32_t n = rn_log_segments(ts->log, segs, 64);
  for (uint32_t i = 0; i < n && i < 64; i++) {
    if (!segs[i].sealed) return false;
    if (segs[i].base >= end && segs[i].next > segs[i].base) {
      *out = segs[i];
      return true;
    }
  }
  /* More than 64 segments: the listing above was a window; look further. */
  if (n > 64) {
    rn_log_seg_info_t *all = malloc(n * sizeof(*all));
    if (!all) return false;
    uint32_t m = rn_log_segments(ts->log, all, n);
    bool found = false;
    for (uint32_t i = 0; i < m && i < n && all[i].sealed; i++)
      if (all[i].base >= end && all[i].next > all[i].base) {
        *out = all[i];
        found = true;
        break;
      }
    free(all);
    return found;
  }
  return false;
}

static void maybe_upload(rn_tier_shard_t *ts, int64_t now) {
  rn_tier_t *t = ts->t;
  if (ts->up.state == RN__UP_BACKOFF && now >= ts->up.retry_ms) ts->up.state = RN__UP_IDLE;
  if (ts->up.state != RN__UP_IDLE || t->uploads_active >= t->o.upload_concurrency) return;
  if (t->o.upload_bytes_per_sec && now < t->bw_next_ms) return;
  rn_log_seg_info_t s;
  if (!next_candidate(ts, &s)) return;
  ts->up.seg = s;
  ts->up.state = RN__UP_STARTING;
  ts->up.started_ms = now;
  t->uploads_active++;
  if (t->o.upload_bytes_per_sec) {
    int64_t from = t->bw_next_ms > now ? t->bw_next_ms : now;
    t->bw_next_ms = from + (int64_t)(s.bytes * 1000 / t->o.upload_bytes_per_sec);
  }
  /* A STARTED for this very segment is already durable (a crash or a failed
   * PUT since): go straight to the PUTs. */
  const rn_mf_seg_t *last = ts->mf.n ? &ts->mf.segs[ts->mf.n - 1] : NULL;
  if (last && !last->uploaded && last->base == s.base && last->next == s.next && last->bytes == s.bytes &&
      last->epoch == s.epoch) {
    on_started(ts, 0, NULL);
    return;
  }
  rn_err_t err = mf_append(
      ts, &(rn_mf_rec_t){RN_MF_STARTED, s.base, s.next, s.bytes, s.max_ts, s.epoch}, on_started);
  if (err) upload_fail(ts, err, "queueing its STARTED record");
}

/* ==== retention and remote deletes =========================================== */

typedef struct del_op {
  rn__op_t op;
  uint64_t base;
} del_op_t;

static void on_deleted_rec(rn_tier_shard_t *ts, rn_err_t err, const rn_mf_rec_t *r) {
  (void)r;
  ts->del_active = false;
  if (!err) {
    ts->t->remote_deletes++;
    ts->mirror_dirty = true;
  }
}

static void del_cb(void *arg, const rn_obj_result_t *r) {
  del_op_t *d = arg;
  rn_tier_shard_t *ts = d->op.ts;
  uint64_t base = d->base;
  rn__op_done(&d->op);
  if (!ts) return;
  if (r->err && !ts->del_err) {
    ts->del_err = r->err;
    set_error(ts->t, ts, r->err, "deleting segment %" PRIu64 ": %s", base, r->message);
  }
  if (--ts->dels_pending) return;
  if (ts->del_err) {
    ts->del_active = false;
    ts->del_retry_ms = rn__tier_now(ts->t) + 5000;
    return;
  }
  if (mf_append(ts, &(rn_mf_rec_t){.type = RN_MF_DELETED, .base = base}, on_deleted_rec)) ts->del_active = false;
}

/* Delete the objects of one entry that must go: below the start (total
 * retention), or a STARTED whose local segment is gone (it can never be
 * uploaded now). One entry at a time per shard. */
static void maybe_remote_delete(rn_tier_shard_t *ts, int64_t now) {
  if (ts->del_active || now < ts->del_retry_ms) return;
  uint64_t ls = rn_log_start(ts->log);
  const rn_mf_seg_t *e = NULL;
  for (uint32_t i = 0; i < ts->mf.n; i++) {
    const rn_mf_seg_t *s = &ts->mf.segs[i];
    bool below = s->next <= ts->mf.start;
    bool stale = !s->uploaded && s->base < ls &&
                 !(ts->up.state != RN__UP_IDLE && ts->up.state != RN__UP_BACKOFF && ts->up.seg.base == s->base);
    if (below || stale) {
      e = s;
      break;
    }
  }
  if (!e) return;
  ts->del_active = true;
  ts->del_err = 0;
  ts->dels_pending = 0;
  for (int k = 0; k < 3; k++) {
    char key[RN__TIER_KEY_MAX];
    rn__tier_seg_key(ts, e->base, e->epoch, k, key, sizeof(key));
    del_op_t *d = (del_op_t *)rn__op_new(ts->t, ts, sizeof(*d));
    if (!d) break;
    d->base = e->base;
    if (rn_objstore_delete(ts->t->o.store, key, del_cb, d)) {
      rn__op_done(&d->op);
      break;
    }
    ts->dels_pending++;
  }
  if (ts->dels_pending < 3) {
    /* Some deletes were not submitted: the ones that were finish, and the
     * entry is tried again in full later (deletes are idempotent). */
    if (ts->dels_pending == 0) ts->del_active = false;
    ts->del_err = RN_ENOMEM;
    ts->del_retry_ms = now + 5000;
  }
}

static void on_start_rec(rn_tier_shard_t *ts, rn_err_t err, const rn_mf_rec_t *r) {
  ts->start_active = false;
  if (err) return;
  ts->mirror_dirty = true;
  /* The local copies of what went below the start go too. */
  if (rn_log_start(ts->log) < r->base) (void)rn_log_delete_below(ts->log, r->base);
  maybe_remote_delete(ts, rn__tier_now(ts->t));
}

static void apply_retention(rn_tier_shard_t *ts, int64_t now) {
  rn_log_seg_info_t *segs = NULL;
  uint32_t n = rn_log_segment_count(ts->log);
  segs = malloc((n ? n : 1) * sizeof(*segs));
  if (!segs) return;
  n = rn_log_segments(ts->log, segs, n);
  uint64_t local_bytes = 0;
  for (uint32_t i = 0; i < n; i++) local_bytes += segs[i].bytes;
  uint64_t ls = n ? segs[0].base : 0;
  /* Total bytes: remote entries not also local, plus the local ones. */
  uint64_t total = local_bytes;
  uint32_t live = first_live(ts);
  for (uint32_t i = live; i < ts->mf.n; i++)
    if (ts->mf.segs[i].uploaded && ts->mf.segs[i].base < ls) total += ts->mf.segs[i].bytes;

  /* 1. Total retention of remote entries, oldest first: START, then deletes. */
  if (!ts->start_active) {
    uint64_t new_start = 0, t_bytes = total;
    for (uint32_t i = live; i < ts->mf.n; i++) {
      const rn_mf_seg_t *s = &ts->mf.segs[i];
      if (!s->uploaded) break;
      /* the newest segment of the shard is never dropped by bytes */
      bool by_time = ts->retention_ms >= 0 && s->max_ts < now - ts->retention_ms;
      bool by_bytes = ts->retention_bytes >= 0 && t_bytes > (uint64_t)ts->retention_bytes && s->next < rn_log_end(ts->log);
      if (!by_time && !by_bytes) break;
      t_bytes -= s->bytes;
      new_start = s->next;
    }
    if (new_start > ts->mf.start) {
      ts->start_active = true;
      if (mf_append(ts, &(rn_mf_rec_t){.type = RN_MF_START, .base = new_start}, on_start_rec)) ts->start_active = false;
    }
  }

  /* 2. With nothing remote left at or past the start, total retention of
   * local segments (never uploaded: the store was away long enough). */
  bool remote_left = false;
  for (uint32_t i = live; i < ts->mf.n; i++)
    if (ts->mf.segs[i].uploaded) remote_left = true;
  if (!remote_left && !ts->start_active) {
    uint64_t below = 0, t_bytes = total;
    for (uint32_t i = 0; i + 1 < n; i++) {
      if (!segs[i].sealed) break;
      if (ts->up.state != RN__UP_IDLE && ts->up.state != RN__UP_BACKOFF && ts->up.seg.base == segs[i].base) break;
      bool by_time = ts->retention_ms >= 0 && segs[i].max_ts < now - ts->retention_ms;
      bool by_bytes = ts->retention_bytes >= 0 && t_bytes > (uint64_t)ts->retention_bytes;
      if (!by_time && !by_bytes) break;
      t_bytes -= segs[i].bytes;
      below = segs[i].next;
    }
    if (below > ls) {
      rn_say(&ts->t->o.logger, RN_LVL_WARN,
             "tier %s/%u: total retention drops local segments below offset %" PRIu64 " that were never uploaded",
             ts->stream, ts->shard, below);
      (void)rn_log_delete_below(ts->log, below);
    }
  }

  /* 3. Local retention: uploaded segments (UPLOADED durable) leave the disk. */
  uint64_t up_end = rn_mf_uploaded_end(&ts->mf);
  if (ts->local_retention_ms >= 0 || ts->local_retention_bytes >= 0) {
    uint64_t below = 0, l_bytes = local_bytes;
    for (uint32_t i = 0; i + 1 < n; i++) {
      if (!segs[i].sealed || segs[i].next > up_end) break;
      const rn_mf_seg_t *e = rn_mf_find(&ts->mf, segs[i].base);
      if (!e || !e->uploaded || e->base != segs[i].base || e->next != segs[i].next) break;
      bool by_time = ts->local_retention_ms >= 0 && segs[i].max_ts < now - ts->local_retention_ms;
      bool by_bytes = ts->local_retention_bytes >= 0 && l_bytes > (uint64_t)ts->local_retention_bytes;
      if (!by_time && !by_bytes) break;
      l_bytes -= segs[i].bytes;
      below = segs[i].next;
    }
    if (below > ls) (void)rn_log_delete_below(ts->log, below);
  }
  free(segs);
}

static void shard_work(rn_tier_shard_t *ts, int64_t now) {
  if (ts->closing) return;
  if (!ts->t->draining) maybe_upload(ts, now); /* no new upload to wait for once a stop is coming */
  apply_retention(ts, now);
  maybe_remote_delete(ts, now);
  mirror(ts);
  mf_kick(ts);
}

/* ==== the collector ========================================================== */

typedef struct gc_op {
  rn__op_t op;
} gc_op_t;

static void gc_del_cb(void *arg, const rn_obj_result_t *r) {
  rn__op_t *op = arg;
  rn_tier_t *t = op->t;
  if (t && !r->err) t->orphans_collected++;
  rn__op_done(op);
}

static bool referenced(const rn_tier_shard_t *ts, const char *key) {
  size_t pl = strlen(ts->prefix);
  if (strncmp(key, ts->prefix, pl) != 0) return true; /* not this shard's: never touch */
  const char *rest = key + pl;
  if (strcmp(rest, "manifest") == 0) return true;
  uint64_t base;
  uint32_t epoch;
  char sfx[16];
  if (sscanf(rest, "%20" SCNu64 "-%" SCNu32 "%15s", &base, &epoch, sfx) != 3) return false;
  for (uint32_t i = 0; i < ts->mf.n; i++)
    if (ts->mf.segs[i].base == base && ts->mf.segs[i].epoch == epoch) return true;
  /* At or past the uploaded end a future upload may write this very key
   * (a shard restored from a mirror that lagged): deleting it could race
   * that PUT, so it waits until the shard's uploads have passed it. */
  if (base >= rn_mf_uploaded_end(&ts->mf) && base >= ts->mf.start) return true;
  /* An upload in progress whose STARTED is not applied yet (its PUTs have
   * not started either) or is being retried. */
  if (ts->up.state != RN__UP_IDLE && ts->up.seg.base == base) return true;
  return false;
}

static void gc_list_cb(void *arg, const rn_obj_result_t *r, const rn_obj_entry_t *e, size_t n) {
  gc_op_t *g = arg;
  rn_tier_shard_t *ts = g->op.ts;
  rn_tier_t *t = g->op.t;
  rn__op_done(&g->op);
  if (!ts) return;
  ts->gc_active = false;
  if (r->err) {
    set_error(t, ts, r->err, "collector: listing %s: %s", ts->prefix, r->message);
    return;
  }
  int64_t now = rn__tier_now(t);
  for (size_t i = 0; i < n; i++) {
    if (referenced(ts, e[i].key)) continue;
    if (e[i].mtime_ms && e[i].mtime_ms > now - t->o.gc_grace_ms) continue; /* maybe an upload racing us */
    rn__op_t *op = rn__op_new(t, ts, sizeof(*op));
    if (!op) return;
    if (rn_objstore_delete(t->o.store, e[i].key, gc_del_cb, op)) rn__op_done(op);
  }
}

static void gc_shard(rn_tier_shard_t *ts) {
  if (ts->gc_active || ts->closing) return;
  gc_op_t *g = (gc_op_t *)rn__op_new(ts->t, ts, sizeof(*g));
  if (!g) return;
  if (rn_objstore_list(ts->t->o.store, ts->prefix, gc_list_cb, g)) {
    rn__op_done(&g->op);
    return;
  }
  ts->gc_active = true;
}

void rn_tier_gc_now(rn_tier_t *t) {
  for (uint32_t i = 0; i < t->nshards; i++) gc_shard(t->shards[i]);
  t->last_gc_ms = rn__tier_now(t);
}

/* ==== tick ==================================================================== */

static void jobs_tick(rn_tier_t *t, int64_t now);

void rn_tier_tick(rn_tier_t *t, int64_t now) {
  uint32_t n = t->nshards;
  /* Round robin: a different shard first each tick, so one busy shard does
   * not take every upload slot. */
  for (uint32_t k = 0; k < n; k++) shard_work(t->shards[(t->rr + k) % n], now);
  if (n) t->rr = (t->rr + 1) % n;
  if (t->o.gc_interval_ms > 0 && now - t->last_gc_ms >= t->o.gc_interval_ms) rn_tier_gc_now(t);
  jobs_tick(t, now);
  rn__reader_tick(t, now);
}

/* ==== stats =================================================================== */

void rn_tier_shard_stats(const rn_tier_shard_t *ts, rn_tier_shard_stats_t *out) {
  memset(out, 0, sizeof(*out));
  uint32_t n = rn_log_segment_count(ts->log);
  rn_log_seg_info_t *segs = malloc((n ? n : 1) * sizeof(*segs));
  if (segs) n = rn_log_segments(ts->log, segs, n);
  uint64_t ls = rn_log_start(ts->log), up_end = rn_mf_uploaded_end(&ts->mf);
  int64_t now = rn__tier_now(ts->t);
  out->local_bytes = rn_log_size_bytes(ts->log);
  out->local_segments = n;
  for (uint32_t i = first_live(ts); i < ts->mf.n; i++)
    if (ts->mf.segs[i].uploaded) {
      out->remote_bytes += ts->mf.segs[i].bytes;
      out->remote_segments++;
    }
  for (uint32_t i = 0; segs && i < n; i++) {
    if (!segs[i].sealed || segs[i].base < up_end) continue;
    if (segs[i].base < ls) continue;
    out->backlog_bytes += segs[i].bytes;
    out->backlog_segments++;
    if (!out->backlog_age_ms && segs[i].max_ts != INT64_MIN && segs[i].max_ts < now)
      out->backlog_age_ms = now - segs[i].max_ts;
  }
  free(segs);
  out->uploaded_bytes = ts->uploaded_bytes;
  out->uploaded_segments = ts->uploaded_segments;
  out->last_err = ts->last_err;
  snprintf(out->last_error, sizeof(out->last_error), "%s", ts->last_error);
}

void rn_tier_stats(const rn_tier_t *t, rn_tier_stats_t *out) {
  memset(out, 0, sizeof(*out));
  out->uploads_active = t->uploads_active;
  for (uint32_t i = 0; i < t->nshards; i++) {
    rn_tier_shard_stats_t s;
    rn_tier_shard_stats(t->shards[i], &s);
    out->backlog_bytes += s.backlog_bytes;
  }
  out->bytes_uploaded = t->bytes_uploaded;
  out->bytes_downloaded = t->bytes_downloaded;
  out->cache_bytes = t->cache_used;
  out->cache_hits = t->cache_hits;
  out->cache_misses = t->cache_misses;
  out->cache_evictions = t->cache_evictions;
  out->orphans_collected = t->orphans_collected;
  out->remote_deletes = t->remote_deletes;
  out->corrupt_objects = t->corrupt_objects;
  out->last_err = t->last_err;
  snprintf(out->last_error, sizeof(out->last_error), "%s", t->last_error);
  rn_objstore_stats(t->o.store, &out->store);
}

/* ==== stream descriptors ===================================================== */

typedef struct desc_op {
  rn__op_t op;
  rn_obj_cb cb;
  rn_obj_get_cb gcb;
  void *arg;
  uint8_t *data;
} desc_op_t;

static void desc_cancel(rn__op_t *op) {
  desc_op_t *d = (desc_op_t *)op;
  rn_obj_result_t r = {.err = RN_ECANCELED};
  snprintf(r.message, sizeof(r.message), "cancelled: the tier is closing");
  if (d->cb) d->cb(d->arg, &r);
  if (d->gcb) d->gcb(d->arg, &r, NULL, 0);
}

static void put_desc_cb(void *arg, const rn_obj_result_t *r) {
  desc_op_t *d = arg;
  bool live = d->op.t != NULL;
  rn_obj_cb cb = d->cb;
  void *a = d->arg;
  free(d->data);
  rn__op_done(&d->op);
  if (live) cb(a, r);
}

rn_err_t rn_tier_put_stream(rn_tier_t *t, const char *stream, uint64_t uid, const uint8_t *desc, size_t len,
                            rn_obj_cb cb, void *arg) {
  if (!name_ok(stream) || !cb) return RN_EINVAL;
  char key[RN__TIER_KEY_MAX];
  stream_prefix(t, stream, key, sizeof(key));
  size_t kl = strlen(key);
  snprintf(key + kl, sizeof(key) - kl, "%020" PRIu64, uid);
  desc_op_t *d = (desc_op_t *)rn__op_new(t, NULL, sizeof(*d));
  if (!d) return RN_ENOMEM;
  d->data = malloc(len ? len : 1);
  if (!d->data) {
    rn__op_done(&d->op);
    return RN_ENOMEM;
  }
  memcpy(d->data, desc, len);
  d->cb = cb;
  d->arg = arg;
  d->op.cancel = desc_cancel;
  rn_err_t err = rn_objstore_put_mem(t->o.store, key, d->data, len, put_desc_cb, d);
  if (err) {
    free(d->data);
    rn__op_done(&d->op);
  }
  return err;
}

static void get_desc_data_cb(void *arg, const rn_obj_result_t *r, uint8_t *data, size_t len) {
  desc_op_t *d = arg;
  bool live = d->op.t != NULL;
  rn_obj_get_cb cb = d->gcb;
  void *a = d->arg;
  rn__op_done(&d->op);
  if (live)
    cb(a, r, data, len);
  else
    free(data);
}

static void get_desc_list_cb(void *arg, const rn_obj_result_t *r, const rn_obj_entry_t *e, size_t n) {
  desc_op_t *d = arg;
  rn_tier_t *t = d->op.t;
  if (!t) {
    rn__op_done(&d->op);
    return;
  }
  rn_obj_result_t res = *r;
  const rn_obj_entry_t *best = NULL;
  if (!r->err)
    for (size_t i = 0; i < n; i++) /* the newest incarnation */
      if (!best || e[i].mtime_ms > best->mtime_ms || (e[i].mtime_ms == best->mtime_ms && strcmp(e[i].key, best->key) > 0))
        best = &e[i];
  if (!r->err && !best) {
    res.err = RN_ENOENT;
    snprintf(res.message, sizeof(res.message), "the store has no descriptor of this stream");
  }
  if (res.err) {
    rn_obj_get_cb cb = d->gcb;
    void *a = d->arg;
    rn__op_done(&d->op);
    cb(a, &res, NULL, 0);
    return;
  }
  rn_err_t err = rn_objstore_get(t->o.store, best->key, 0, 0, get_desc_data_cb, d);
  if (err) {
    res.err = err;
    snprintf(res.message, sizeof(res.message), "GET %s: %s", best->key, rn_strerror(err));
    rn_obj_get_cb cb = d->gcb;
    void *a = d->arg;
    rn__op_done(&d->op);
    cb(a, &res, NULL, 0);
  }
}

rn_err_t rn_tier_get_stream(rn_tier_t *t, const char *stream, rn_obj_get_cb cb, void *arg) {
  if (!name_ok(stream) || !cb) return RN_EINVAL;
  char prefix[RN__TIER_KEY_MAX];
  stream_prefix(t, stream, prefix, sizeof(prefix));
  desc_op_t *d = (desc_op_t *)rn__op_new(t, NULL, sizeof(*d));
  if (!d) return RN_ENOMEM;
  d->gcb = cb;
  d->arg = arg;
  d->op.cancel = desc_cancel;
  rn_err_t err = rn_objstore_list(t->o.store, prefix, get_desc_list_cb, d);
  if (err) rn__op_done(&d->op);
  return err;
}

/* ==== stream-delete jobs ======================================================
 * A job is a file "<jobs_dir>/<stream>-<uid>.delete" holding
 * "stream uid nshards\n", written durably before any delete. The job walks
 * the shards in order: list the prefix, delete every key (a few at a time),
 * next shard; then the stream's descriptor of that uid; then the file. An
 * error pauses it (retried by the tick); a restart resumes it from the file. */

struct rn__job {
  rn_tier_t *t;
  char dir[RN__TIER_PATH_MAX];
  char stream[130];
  uint64_t uid;
  uint32_t nshards;
  uint32_t shard;       /* next shard to list; nshards = the descriptor */
  char **keys;          /* listed, to delete */
  size_t nkeys, next_key;
  unsigned pending;     /* deletes in flight */
  bool busy;            /* a list, deletes or the file removal in flight */
  bool failed;
  int64_t retry_ms;
  bool done;
  struct rn__job *next;
};

static void job_step(rn__job_t *j);

static void job_free_keys(rn__job_t *j) {
  for (size_t i = 0; i < j->nkeys; i++) free(j->keys[i]);
  free(j->keys);
  j->keys = NULL;
  j->nkeys = j->next_key = 0;
}

static void job_fail(rn__job_t *j, rn_err_t err, const char *msg) {
  j->failed = true;
  j->busy = false;
  j->retry_ms = rn__tier_now(j->t) + 5000;
  set_error(j->t, NULL, err, "deleting stream %s: %s", j->stream, msg);
}

typedef struct job_op {
  rn__op_t op;
  rn__job_t *job;
} job_op_t;

static void job_del_cb(void *arg, const rn_obj_result_t *r) {
  job_op_t *o = arg;
  rn__job_t *j = o->op.t ? o->job : NULL;
  rn__op_done(&o->op);
  if (!j) return;
  j->pending--;
  if (r->err) j->failed = true;
  if (j->pending == 0) {
    if (j->failed) {
      job_fail(j, r->err ? r->err : RN_EOBJSTORE, "a delete failed");
      return;
    }
    job_step(j);
  }
}

static void job_list_cb(void *arg, const rn_obj_result_t *r, const rn_obj_entry_t *e, size_t n) {
  job_op_t *o = arg;
  rn__job_t *j = o->op.t ? o->job : NULL;
  rn__op_done(&o->op);
  if (!j) return;
  j->busy = false;
  if (r->err) {
    job_fail(j, r->err, r->message);
    return;
  }
  j->keys = calloc(n ? n : 1, sizeof(*j->keys));
  if (!j->keys) {
    job_fail(j, RN_ENOMEM, "out of memory");
    return;
  }
  for (size_t i = 0; i < n; i++) {
    j->keys[i] = strdup(e[i].key);
    if (!j->keys[i]) {
      job_free_keys(j);
      job_fail(j, RN_ENOMEM, "out of memory");
      return;
    }
    j->nkeys++;
  }
  j->shard++;
  job_step(j);
}

static rn_err_t job_unlink_fn(void *arg) {
  rn__job_t *j = arg;
  rn_fs_t *fs = rn_io_fs(j->t->o.io);
  char path[RN__TIER_PATH_MAX + 160];
  snprintf(path, sizeof(path), "%s/%s-%" PRIu64 ".delete", j->dir, j->stream, j->uid);
  rn_err_t err = fs->unlink(fs, path);
  if (err && err != RN_ENOENT) return err;
  return fs->sync_dir(fs, j->dir);
}

static void job_unlink_cb(void *arg, rn_err_t res) {
  rn__job_t *j = arg;
  j->t->jobs_io--;
  j->busy = false;
  if (res) {
    job_fail(j, res, "removing its job file");
    return;
  }
  rn_say(&j->t->o.logger, RN_LVL_INFO, "tier: the objects of stream %s (uid %" PRIu64 ") are deleted", j->stream,
         j->uid);
  j->done = true;
}

static void job_step(rn__job_t *j) {
  rn_tier_t *t = j->t;
  j->failed = false;
  /* Deletes of listed keys first, DEL_CONCURRENCY at a time. */
  while (j->next_key < j->nkeys && j->pending < DEL_CONCURRENCY) {
    job_op_t *o = (job_op_t *)rn__op_new(t, NULL, sizeof(*o));
    if (!o) break;
    o->job = j;
    if (rn_objstore_delete(t->o.store, j->keys[j->next_key], job_del_cb, o)) {
      rn__op_done(&o->op);
      break;
    }
    j->next_key++;
    j->pending++;
  }
  if (j->pending) {
    j->busy = true;
    return;
  }
  if (j->next_key < j->nkeys) {
    job_fail(j, RN_ENOMEM, "cannot submit deletes");
    return;
  }
  job_free_keys(j);
  j->busy = true;
  if (j->shard < j->nshards) {
    char prefix[RN__TIER_KEY_MAX];
    rn__tier_shard_prefix(t, j->stream, j->uid, j->shard, prefix, sizeof(prefix));
    job_op_t *o = (job_op_t *)rn__op_new(t, NULL, sizeof(*o));
    if (!o || (o->job = j, rn_objstore_list(t->o.store, prefix, job_list_cb, o))) {
      if (o) rn__op_done(&o->op);
      job_fail(j, RN_ENOMEM, "cannot list");
    }
    return;
  }
  if (j->shard == j->nshards) { /* the descriptor of this incarnation */
    j->shard++;
    char key[RN__TIER_KEY_MAX];
    stream_prefix(t, j->stream, key, sizeof(key));
    size_t kl = strlen(key);
    snprintf(key + kl, sizeof(key) - kl, "%020" PRIu64, j->uid);
    j->keys = calloc(1, sizeof(*j->keys));
    if (j->keys && (j->keys[0] = strdup(key))) j->nkeys = 1;
    job_step(j);
    return;
  }
  if (rn_io_job_bg(t->o.io, job_unlink_fn, job_unlink_cb, j)) {
    job_fail(j, RN_ENOMEM, "cannot remove its job file");
    return;
  }
  t->jobs_io++;
}

static void jobs_tick(rn_tier_t *t, int64_t now) {
  for (rn__job_t **pp = &t->jobs; *pp;) {
    rn__job_t *j = *pp;
    if (j->done) {
      *pp = j->next;
      job_free_keys(j);
      free(j);
      continue;
    }
    if (!j->busy && j->failed && now >= j->retry_ms) {
      j->next_key = 0; /* idempotent deletes: start the listed keys again */
      job_step(j);
    }
    pp = &j->next;
  }
}

typedef struct job_write {
  rn__job_t *job;
  char line[200];
} job_write_t;

static rn_err_t job_write_fn(void *arg) {
  job_write_t *w = arg;
  rn_fs_t *fs = rn_io_fs(w->job->t->o.io);
  rn_err_t err = fs->mkdirs(fs, w->job->dir);
  if (err) return err;
  char name[180];
  snprintf(name, sizeof(name), "%s-%" PRIu64 ".delete", w->job->stream, w->job->uid);
  return rn_snapshot_write(fs, w->job->dir, name, w->line, strlen(w->line));
}

static void job_write_cb(void *arg, rn_err_t res) {
  job_write_t *w = arg;
  rn__job_t *j = w->job;
  free(w);
  j->t->jobs_io--;
  j->busy = false;
  if (res) {
    /* Not durable: nothing was deleted yet; the stream's objects stay (the
     * collector does not see them: their shards are gone). Report it. */
    set_error(j->t, NULL, res, "deleting stream %s: cannot record the job: %s", j->stream, rn_strerror(res));
    rn_say(&j->t->o.logger, RN_LVL_ERROR, "tier: cannot record the delete job of stream %s: %s (its objects stay)",
           j->stream, rn_strerror(res));
    j->done = true;
    return;
  }
  job_step(j);
}

static rn__job_t *job_new(rn_tier_t *t, const char *jobs_dir, const char *stream, uint64_t uid, uint32_t nshards) {
  if (!name_ok(stream) || !jobs_dir || strlen(jobs_dir) >= RN__TIER_PATH_MAX) return NULL;
  for (rn__job_t *j = t->jobs; j; j = j->next)
    if (!j->done && j->uid == uid && strcmp(j->stream, stream) == 0) return NULL; /* already running */
  rn__job_t *j = calloc(1, sizeof(*j));
  if (!j) return NULL;
  j->t = t;
  snprintf(j->dir, sizeof(j->dir), "%s", jobs_dir);
  snprintf(j->stream, sizeof(j->stream), "%s", stream);
  j->uid = uid;
  j->nshards = nshards;
  j->next = t->jobs;
  t->jobs = j;
  return j;
}

rn_err_t rn_tier_delete_stream(rn_tier_t *t, const char *jobs_dir, const char *stream, uint64_t uid,
                               uint32_t nshards) {
  if (!name_ok(stream) || !jobs_dir) return RN_EINVAL;
  rn__job_t *j = job_new(t, jobs_dir, stream, uid, nshards);
  if (!j) return RN_EBUSY;
  job_write_t *w = calloc(1, sizeof(*w));
  if (!w) {
    j->done = true;
    return RN_ENOMEM;
  }
  w->job = j;
  snprintf(w->line, sizeof(w->line), "%s %" PRIu64 " %" PRIu32 "\n", stream, uid, nshards);
  j->busy = true;
  if (rn_io_job_bg(t->o.io, job_write_fn, job_write_cb, w)) {
    free(w);
    j->done = true;
    return RN_ENOMEM;
  }
  t->jobs_io++;
  return 0;
}

typedef struct scan_ctx {
  rn_tier_t *t;
  const char *dir;
  rn_fs_t *fs;
  unsigned started;
} scan_ctx_t;

static int scan_job(void *arg, const char *name) {
  scan_ctx_t *c = arg;
  size_t nl = strlen(name);
  if (nl < 8 || strcmp(name + nl - 7, ".delete") != 0) return 0;
  void *data = NULL;
  size_t len = 0;
  if (rn_snapshot_read(c->fs, c->dir, name, &data, &len)) return 0;
  char stream[130];
  uint64_t uid;
  uint32_t nshards;
  if (sscanf(data, "%129s %" SCNu64 " %" SCNu32, stream, &uid, &nshards) == 3 && name_ok(stream)) {
    rn__job_t *j = job_new(c->t, c->dir, stream, uid, nshards);
    if (j) {
      rn_say(&c->t->o.logger, RN_LVL_INFO, "tier: resuming the delete of stream %s (uid %" PRIu64 ")", stream, uid);
      job_step(j);
      c->started++;
    }
  } else {
    rn_say(&c->t->o.logger, RN_LVL_WARN, "tier: %s/%s is not a delete job; left alone", c->dir, name);
  }
  free(data);
  return 0;
}

rn_err_t rn_tier_resume_jobs(rn_tier_t *t, const char *jobs_dir) {
  rn_assert_may_block("rn_tier_resume_jobs (lists the jobs directory)");
  rn_fs_t *fs = rn_io_fs(t->o.io);
  scan_ctx_t c = {t, jobs_dir, fs, 0};
  rn_err_t err = fs->list(fs, jobs_dir, scan_job, &c);
  return err == RN_ENOENT ? 0 : err;
}

unsigned rn_tier_jobs_active(const rn_tier_t *t) {
  unsigned n = 0;
  for (const rn__job_t *j = t->jobs; j; j = j->next) n += !j->done;
  return n;
}

/* ==== restore ================================================================ */

typedef struct restore_op {
  rn__op_t op;
  rn_tier_offset_cb cb;
  void *arg;
  char dir[RN__TIER_PATH_MAX];
  uint8_t *data;
  size_t len;
  uint64_t offset;
  rn_fs_t *fs;
} restore_op_t;

static rn_err_t restore_write_fn(void *arg) {
  restore_op_t *r = arg;
  rn_err_t err = r->fs->mkdirs(r->fs, r->dir);
  if (!err) err = rn_snapshot_write(r->fs, r->dir, MANIFEST_NAME, r->data, r->len);
  return err;
}

static void restore_cancel(rn__op_t *op) {
  restore_op_t *r = (restore_op_t *)op;
  r->cb(r->arg, RN_ECANCELED, 0);
}

static void restore_write_cb(void *arg, rn_err_t res) {
  restore_op_t *r = arg;
  rn_tier_t *t = r->op.t;
  if (t) t->jobs_io--;
  rn_tier_offset_cb cb = r->cb;
  void *a = r->arg;
  uint64_t off = r->offset;
  free(r->data);
  bool live = t != NULL;
  rn__op_done(&r->op);
  if (live) cb(a, res, res ? 0 : off);
}

static void restore_get_cb(void *arg, const rn_obj_result_t *res, uint8_t *data, size_t len) {
  restore_op_t *r = arg;
  rn_tier_t *t = r->op.t;
  if (!t) {
    free(data);
    rn__op_done(&r->op);
    return;
  }
  rn_err_t err = res->err;
  rn_mf_t m = {0};
  size_t valid = 0;
  char why[200];
  if (!err) {
    err = rn_mf_parse(&m, data, len, &valid, why, sizeof(why));
    if (!err && valid != len) err = RN_ECORRUPT; /* a mirror is written whole */
    if (err) rn_say(&t->o.logger, RN_LVL_ERROR, "tier: restore: the bucket's manifest is damaged (%s)", why);
  }
  if (!err) {
    /* The log continues after the last uploaded segment (or the start, if
     * retention removed every remote one). */
    uint64_t end = rn_mf_uploaded_end(&m);
    r->offset = end > m.start ? end : m.start;
    r->data = data;
    r->len = len;
    data = NULL;
    if (rn_io_job_bg(t->o.io, restore_write_fn, restore_write_cb, r) == 0) {
      t->jobs_io++;
      rn_mf_free(&m);
      return;
    }
    err = RN_ENOMEM;
    data = r->data;
    r->data = NULL;
  }
  rn_mf_free(&m);
  free(data);
  rn_tier_offset_cb cb = r->cb;
  void *a = r->arg;
  rn__op_done(&r->op);
  cb(a, err, 0);
}

rn_err_t rn_tier_restore_shard(rn_tier_t *t, const char *stream, uint64_t uid, uint32_t shard, const char *dir,
                               rn_tier_offset_cb cb, void *arg) {
  if (!name_ok(stream) || !dir || strlen(dir) >= RN__TIER_PATH_MAX || !cb) return RN_EINVAL;
  restore_op_t *r = (restore_op_t *)rn__op_new(t, NULL, sizeof(*r));
  if (!r) return RN_ENOMEM;
  r->cb = cb;
  r->arg = arg;
  r->op.cancel = restore_cancel;
  r->fs = rn_io_fs(t->o.io);
  snprintf(r->dir, sizeof(r->dir), "%s", dir);
  char key[RN__TIER_KEY_MAX];
  rn__tier_shard_prefix(t, stream, uid, shard, key, sizeof(key));
  size_t kl = strlen(key);
  snprintf(key + kl, sizeof(key) - kl, "manifest");
  rn_err_t err = rn_objstore_get(t->o.store, key, 0, 0, restore_get_cb, r);
  if (err) rn__op_done(&r->op);
  return err;
}

/* ==== destroy ================================================================= */

void rn_tier_destroy(rn_tier_t *t) {
  if (!t) return;
  while (t->nshards) rn_tier_shard_close(t->shards[t->nshards - 1]);
  /* Jobs' file writes hold the jobs: wait for them (short disk jobs). */
  while (t->jobs_io) {
    rn_assert_may_block("rn_tier_destroy (waits for a job file write)");
    rn_io_wait(t->o.io, 100);
  }
  detach_ops(t, NULL);
  rn__reader_destroy(t);
  while (t->jobs) {
    rn__job_t *j = t->jobs;
    t->jobs = j->next;
    job_free_keys(j);
    free(j);
  }
  free(t->shards);
  free(t);
}
