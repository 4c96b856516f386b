/*
 * reader.c — reads below the local disk: rn_tier_read and rn_tier_find_time,
 * served from a bounded LRU cache of remote chunks filled by ranged GETs.
 *
 * A remote segment is read in chunks: chunk k of its .log object is bytes
 * [k * chunk_bytes, (k + 1) * chunk_bytes), one ranged GET; its .index and
 * .timeindex objects are one chunk each (a whole GET). A read:
 *   1. gets the segment's index (cached like a chunk) and looks up the
 *      position of its offset (rn_log_index_lookup verifies the file);
 *   2. walks the batches from there through the chunks that hold them,
 *      starting the GETs of every chunk it needs at once plus
 *      readahead_chunks after them (into the next segments: a sequential
 *      reader keeps several GETs in flight);
 *      read-ahead has a budget of its own, half the cache, over every shard:
 *      chunks fetched ahead and not yet read (in flight or ready) count
 *      against it, a read takes its chunk out of it, and the rest of the
 *      cache is what eviction takes first (LRU: chunks already read are
 *      older than chunks arriving ahead). A full cache therefore never
 *      stops read-ahead, and read-ahead never evicts more than half of it;
 *   3. verifies every batch it returns (both checksums) — a batch that fails
 *      is RN_ECORRUPT, counted, logged, and its chunks leave the cache; it
 *      is never returned.
 * Readers of a chunk that is loading wait for that one GET.
 *
 * Callbacks are never run from inside rn_tier_read or from inside the
 * cache's own bookkeeping: a finished read is handed to rn_io (a no-op job)
 * and delivered from rn_io_poll, so a callback may do anything (read again,
 * close the shard).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runnel/batch.h"
#include "tier_int.h"

#define NBUCKETS 4096u
#define MAX_PREFETCH_GETS 64u

struct rn__chunk {
  rn_tier_shard_t *ts; /* NULL once its shard closed (a GET still in flight frees it) */
  uint64_t base;       /* the segment */
  uint32_t epoch;
  uint8_t kind;        /* 0 index, 1 timeindex, 2 log */
  uint64_t idx;        /* chunk number (0 for the index files) */
  uint8_t *data;       /* owned once ready */
  size_t len;
  bool ready, hashed, in_lru;
  bool ahead;          /* fetched ahead and not read yet: counted in t->ahead_bytes */
  rn_err_t err;        /* the GET failed: waiters see it, then it goes */
  char msg[200];
  rn__chunk_t *hnext, *lprev, *lnext;
};

struct rn__rop {
  rn_tier_shard_t *ts;
  bool time;           /* rn_tier_find_time */
  uint64_t base;       /* the remote segment being read */
  uint64_t offset;
  int64_t ts_ms;
  size_t cap;
  int phase;           /* 0: needs the index; 1: walking batches from pos */
  uint64_t pos;
  uint8_t *out;
  size_t out_len, out_cap;
  rn_err_t err;
  uint64_t result_offset;
  rn_tier_read_cb cb;
  rn_tier_offset_cb tcb;
  void *arg;
  rn__rop_t *next;
};

typedef struct get_op {
  rn__op_t op;
  rn__chunk_t *c;
  uint64_t want; /* bytes asked (0: whole object) */
} get_op_t;

/* ---- the cache ---------------------------------------------------------------- */

static uint32_t bucket_of(const rn_tier_shard_t *ts, uint64_t base, uint8_t kind, uint64_t idx) {
  uint64_t h = (uint64_t)(uintptr_t)ts * 0x9E3779B97F4A7C15ull ^ base * 0xC2B2AE3D27D4EB4Full ^
               (idx << 2 | kind) * 0x165667B19E3779F9ull;
  return (uint32_t)(h >> 40) & (NBUCKETS - 1);
}

static bool cache_init(rn_tier_t *t) {
  if (t->buckets) return true;
  t->buckets = calloc(NBUCKETS, sizeof(*t->buckets));
  t->nbuckets = t->buckets ? NBUCKETS : 0;
  return t->buckets != NULL;
}

static rn__chunk_t *lookup(rn_tier_t *t, const rn_tier_shard_t *ts, uint64_t base, uint8_t kind, uint64_t idx) {
  if (!t->buckets) return NULL;
  for (rn__chunk_t *c = t->buckets[bucket_of(ts, base, kind, idx)]; c; c = c->hnext)
    if (c->ts == ts && c->base == base && c->kind == kind && c->idx == idx) return c;
  return NULL;
}

static void unhash(rn_tier_t *t, rn__chunk_t *c) {
  if (!c->hashed) return;
  rn__chunk_t **pp = &t->buckets[bucket_of(c->ts, c->base, c->kind, c->idx)];
  while (*pp && *pp != c) pp = &(*pp)->hnext;
  if (*pp) *pp = c->hnext;
  c->hashed = false;
  c->hnext = NULL;
}

static void lru_unlink(rn_tier_t *t, rn__chunk_t *c) {
  if (!c->in_lru) return;
  if (c->lprev)
    c->lprev->lnext = c->lnext;
  else
    t->lru_head = c->lnext;
  if (c->lnext)
    c->lnext->lprev = c->lprev;
  else
    t->lru_tail = c->lprev;
  c->lprev = c->lnext = NULL;
  c->in_lru = false;
  t->cache_used -= c->len;
}

static void lru_push(rn_tier_t *t, rn__chunk_t *c) {
  c->lprev = NULL;
  c->lnext = t->lru_head;
  if (t->lru_head) t->lru_head->lprev = c;
  t->lru_head = c;
  if (!t->lru_tail) t->lru_tail = c;
  c->in_lru = true;
  t->cache_used += c->len;
}

static void lru_touch(rn_tier_t *t, rn__chunk_t *c) {
  if (!c->in_lru || t->lru_head == c) return;
  size_t len = c->len;
  lru_unlink(t, c);
  c->len = len;
  lru_push(t, c);
}

/* A chunk fetched ahead is read now (or goes unread): out of the budget. */
static void ahead_done(rn_tier_t *t, rn__chunk_t *c) {
  if (!c->ahead) return;
  c->ahead = false;
  t->ahead_bytes -= t->o.chunk_bytes;
}

static void chunk_free(rn_tier_t *t, rn__chunk_t *c) {
  if (t) {
    ahead_done(t, c);
    unhash(t, c);
    lru_unlink(t, c);
  }
  free(c->data);
  free(c);
}

/* Down to cache_bytes, least recently used first; chunks fetched ahead and
 * not read yet are passed over (at most half the cache: the rest was read). */
static void evict(rn_tier_t *t, const rn__chunk_t *keep) {
  rn__chunk_t *c = t->lru_tail;
  while (t->cache_used > t->o.cache_bytes && c) {
    rn__chunk_t *prev = c->lprev;
    if (c != keep && !c->ahead) {
      chunk_free(t, c);
      t->cache_evictions++;
    }
    c = prev;
  }
}

static void wake(rn_tier_shard_t *ts);

static void get_cb(void *arg, const rn_obj_result_t *r, uint8_t *data, size_t len) {
  get_op_t *g = arg;
  rn__chunk_t *c = g->c;
  rn_tier_t *t = g->op.t;
  uint64_t want = g->want;
  rn__op_done(&g->op);
  if (!t || !c->ts) { /* its shard closed meanwhile */
    free(data);
    free(c);
    return;
  }
  t->gets_inflight--;
  rn_tier_shard_t *ts = c->ts;
  if (!r->err && want && len != want) {
    c->err = RN_ECORRUPT;
    snprintf(c->msg, sizeof(c->msg), "a GET returned %zu bytes of %" PRIu64, len, want);
    t->corrupt_objects++;
    free(data);
  } else if (r->err) {
    c->err = r->err == RN_ENOENT ? RN_EOBJSTORE : r->err;
    snprintf(c->msg, sizeof(c->msg), "%.170s%s", r->message, r->err == RN_ENOENT ? " (missing from the store)" : "");
    free(data);
  } else {
    c->data = data;
    c->len = len;
    c->ready = true;
    t->bytes_downloaded += len;
    lru_push(t, c);
    evict(t, c);
  }
  if (c->err) {
    char key[RN__TIER_KEY_MAX];
    rn__tier_seg_key(ts, c->base, c->epoch, c->kind, key, sizeof(key));
    rn_say(&t->o.logger, RN_LVL_WARN, "tier %s/%u: GET %s chunk %" PRIu64 ": %s", ts->stream, ts->shard, key, c->idx,
           c->msg);
  }
  bool failed = c->err != 0;
  wake(ts); /* may free c when ready (a corrupt segment's chunks are dropped) */
  if (failed) chunk_free(t, c); /* every waiter saw the error */
}

/* Start the GET of a chunk (not counted as a miss: prefetch or miss);
 * ahead: a read-ahead's, charged to the budget until read. */
static rn__chunk_t *fetch(rn_tier_shard_t *ts, const rn_mf_seg_t *e, uint8_t kind, uint64_t idx, bool ahead) {
  rn_tier_t *t = ts->t;
  if (!cache_init(t)) return NULL;
  rn__chunk_t *c = calloc(1, sizeof(*c));
  get_op_t *g = c ? (get_op_t *)rn__op_new(t, ts, sizeof(*g)) : NULL;
  if (!g) {
    free(c);
    return NULL;
  }
  c->ts = ts;
  c->base = e->base;
  c->epoch = e->epoch;
  c->kind = kind;
  c->idx = idx;
  g->c = c;
  uint64_t off = 0, len = 0;
  if (kind == 2) {
    off = idx * t->o.chunk_bytes;
    len = e->bytes - off < t->o.chunk_bytes ? e->bytes - off : t->o.chunk_bytes;
  }
  g->want = len;
  char key[RN__TIER_KEY_MAX];
  rn__tier_seg_key(ts, e->base, e->epoch, kind, key, sizeof(key));
  if (rn_objstore_get(t->o.store, key, off, len, get_cb, g)) {
    rn__op_done(&g->op);
    free(c);
    return NULL;
  }
  uint32_t b = bucket_of(ts, c->base, kind, idx);
  c->hnext = t->buckets[b];
  t->buckets[b] = c;
  c->hashed = true;
  t->gets_inflight++;
  if (t->gets_inflight > t->gets_inflight_max) t->gets_inflight_max = t->gets_inflight;
  if (ahead) {
    c->ahead = true;
    t->ahead_bytes += t->o.chunk_bytes;
  }
  return c;
}

/* The chunk, ready (returned), loading or just requested (NULL, *err 0), or
 * failed (NULL, *err set). */
static rn__chunk_t *chunk_get(rn_tier_shard_t *ts, const rn_mf_seg_t *e, uint8_t kind, uint64_t idx, rn_err_t *err,
                              char *msg, size_t msglen) {
  rn_tier_t *t = ts->t;
  *err = 0;
  rn__chunk_t *c = lookup(t, ts, e->base, kind, idx);
  if (c && c->err) {
    *err = c->err;
    snprintf(msg, msglen, "%s", c->msg);
    return NULL;
  }
  if (c && c->ready) {
    t->cache_hits++;
    ahead_done(t, c);
    lru_touch(t, c);
    return c;
  }
  if (c) { /* loading: wait for it */
    ahead_done(t, c);
    return NULL;
  }
  t->cache_misses++;
  if (!fetch(ts, e, kind, idx, false)) {
    *err = RN_ENOMEM;
    snprintf(msg, msglen, "cannot start a GET");
  }
  return NULL;
}

static void prefetch(rn_tier_shard_t *ts, const rn_mf_seg_t *e, uint8_t kind, uint64_t idx) {
  rn_tier_t *t = ts->t;
  if (lookup(t, ts, e->base, kind, idx)) return;
  /* Within the read-ahead budget (half the cache, every shard's together),
   * however full the cache is: what is in it beyond the budget was read. */
  if (t->gets_inflight >= MAX_PREFETCH_GETS || t->ahead_bytes + t->o.chunk_bytes > t->o.cache_bytes / 2) return;
  (void)fetch(ts, e, kind, idx, true);
}

/* The readahead_chunks chunks after chunk k of e, across the following
 * remote segments (with their indexes). */
static void readahead(rn_tier_shard_t *ts, const rn_mf_seg_t *e, uint64_t k) {
  rn_tier_t *t = ts->t;
  uint64_t ls = rn_log_start(ts->log);
  uint32_t n = t->o.readahead_chunks;
  const rn_mf_seg_t *end = ts->mf.segs + ts->mf.n;
  for (uint32_t i = 0; i < n; i++) {
    k++;
    if (k * t->o.chunk_bytes >= e->bytes) {
      e++;
      k = 0;
      if (e >= end || !e->uploaded || e->base >= ls) return;
      prefetch(ts, e, 0, 0);
    }
    prefetch(ts, e, 2, k);
  }
}

/* Drop every cached chunk of one segment (after it failed verification). */
static void drop_segment(rn_tier_shard_t *ts, uint64_t base) {
  rn_tier_t *t = ts->t;
  for (rn__chunk_t *c = t->lru_head, *nx; c; c = nx) {
    nx = c->lnext;
    if (c->ts == ts && c->base == base) chunk_free(t, c);
  }
}

/* ---- reads ---------------------------------------------------------------------- */

static void deliver_cb(void *arg, rn_err_t res) {
  (void)res;
  rn__rop_t *r = arg;
  r->ts->io_inflight--;
  if (r->time)
    r->tcb(r->arg, r->err, r->result_offset);
  else if (r->err) {
    free(r->out);
    r->cb(r->arg, r->err, NULL, 0);
  } else
    r->cb(r->arg, 0, r->out, r->out_len);
  free(r);
}

static rn_err_t noop_fn(void *arg) {
  (void)arg;
  return 0;
}

/* Unlink r from its shard's waiting reads and deliver it from rn_io. */
static void finish(rn__rop_t *r, rn_err_t err) {
  rn_tier_shard_t *ts = r->ts;
  for (rn__rop_t **pp = &ts->rops; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  r->err = err;
  if (err) {
    free(r->out);
    r->out = NULL;
    r->out_len = 0;
  }
  if (!err && !r->time) ts->seq_next = r->offset; /* (unused for now: every read reads ahead) */
  if (rn_io_job(ts->t->o.io, noop_fn, deliver_cb, r) == 0) {
    ts->io_inflight++;
    return;
  }
  ts->io_inflight++;
  deliver_cb(r, 0); /* no memory for a job: deliver now */
}

static const rn_mf_seg_t *entry(const rn_tier_shard_t *ts, uint64_t base) {
  const rn_mf_seg_t *e = rn_mf_find(&ts->mf, base);
  if (!e || e->base != base || !e->uploaded || e->next <= ts->mf.start) return NULL;
  return e;
}

static void corrupt(rn__rop_t *r, const rn_mf_seg_t *e, const char *what) {
  rn_tier_shard_t *ts = r->ts;
  ts->t->corrupt_objects++;
  char key[RN__TIER_KEY_MAX];
  rn__tier_seg_key(ts, e->base, e->epoch, r->phase == 0 ? (r->time ? 1 : 0) : 2, key, sizeof(key));
  rn_say(&ts->t->o.logger, RN_LVL_ERROR,
         "tier %s/%u: remote object %s failed verification (%s) near position %" PRIu64 "; not served", ts->stream,
         ts->shard, key, what, r->pos);
  snprintf(ts->t->last_error, sizeof(ts->t->last_error), "corrupt remote object %.160s (%.60s)", key, what);
  ts->t->last_err = RN_ECORRUPT;
  drop_segment(ts, e->base);
  finish(r, RN_ECORRUPT);
}

/* Copy [pos, pos + len) of e's .log into dst. 1 done, 0 waiting (GETs
 * started), or an error. */
static int gather(rn__rop_t *r, const rn_mf_seg_t *e, uint64_t pos, size_t len, uint8_t *dst) {
  rn_tier_shard_t *ts = r->ts;
  uint64_t cs = ts->t->o.chunk_bytes;
  uint64_t k0 = pos / cs, k1 = (pos + len - 1) / cs;
  bool missing = false;
  rn__chunk_t *cs_found[64];
  rn__chunk_t **found = k1 - k0 + 1 <= 64 ? cs_found : malloc((size_t)(k1 - k0 + 1) * sizeof(*found));
  if (!found) return RN_ENOMEM;
  int rc = 1;
  for (uint64_t k = k0; k <= k1; k++) {
    rn_err_t err;
    char msg[200];
    found[k - k0] = chunk_get(ts, e, 2, k, &err, msg, sizeof(msg));
    if (err) {
      rc = err;
      snprintf(ts->last_error, sizeof(ts->last_error), "reading segment %" PRIu64 ": %s", e->base, msg);
      ts->last_err = err;
      break;
    }
    if (!found[k - k0]) missing = true;
  }
  readahead(ts, e, k1);
  if (rc == 1 && missing) rc = 0;
  if (rc == 1)
    for (uint64_t k = k0; k <= k1; k++) {
      const rn__chunk_t *c = found[k - k0];
      uint64_t cstart = k * cs;
      uint64_t from = pos > cstart ? pos : cstart;
      uint64_t to = pos + len < cstart + c->len ? pos + len : cstart + c->len;
      if (to < from || to - from != (k == k1 ? pos + len - from : cstart + c->len - from)) {
        rc = RN_ECORRUPT; /* a chunk shorter than the segment says */
        break;
      }
      memcpy(dst + (from - pos), c->data + (from - cstart), to - from);
    }
  if (found != cs_found) free(found);
  return rc;
}

/* Advance r as far as the cache allows. */
static void step(rn__rop_t *r) {
  rn_tier_shard_t *ts = r->ts;
  for (;;) {
    const rn_mf_seg_t *e = entry(ts, r->base);
    if (!e) {
      /* A time lookup that ran past the remote segments lands on the local
       * start; a read whose segment went (retention) is out of range. */
      if (r->time) {
        r->result_offset = rn_log_start(ts->log);
        finish(r, 0);
      } else
        finish(r, r->out_len ? 0 : RN_EOFFSET);
      return;
    }
    if (r->phase == 0) {
      rn_err_t err;
      char msg[200];
      rn__chunk_t *c = chunk_get(ts, e, r->time ? 1 : 0, 0, &err, msg, sizeof(msg));
      if (err) {
        finish(r, err);
        return;
      }
      if (!c) return;
      uint64_t pos = 0;
      err = r->time ? rn_log_timeindex_lookup(c->data, c->len, e->base, e->bytes, r->ts_ms, &pos)
                    : rn_log_index_lookup(c->data, c->len, e->base, e->bytes, r->offset, &pos);
      if (err) {
        corrupt(r, e, r->time ? "time index" : "offset index");
        return;
      }
      r->pos = pos;
      r->phase = 1;
    }
    while (r->pos < e->bytes) {
      uint8_t hb[RN_BATCH_HEADER_SIZE];
      if (e->bytes - r->pos < RN_BATCH_HEADER_SIZE) {
        corrupt(r, e, "a batch header past the segment's end");
        return;
      }
      int g = gather(r, e, r->pos, RN_BATCH_HEADER_SIZE, hb);
      if (g == 0) return;
      if (g < 0) {
        if (g == RN_ECORRUPT)
          corrupt(r, e, "short chunk");
        else
          finish(r, g);
        return;
      }
      rn_batch_header_t h;
      if (rn_batch_header_decode(hb, sizeof(hb), &h) || h.batch_length > e->bytes - r->pos ||
          h.base_offset < e->base || h.base_offset + h.record_count > e->next) {
        corrupt(r, e, "batch header");
        return;
      }
      size_t blen = h.batch_length;
      uint64_t end = h.base_offset + h.record_count;
      if (!r->time) {
        if (end <= r->offset) {
          r->pos += blen;
          continue;
        }
        if (r->out_len && r->out_len + blen > r->cap) {
          finish(r, 0);
          return;
        }
        if (r->out_len + blen > r->out_cap) {
          size_t nc = r->out_cap ? r->out_cap : (r->cap < blen ? blen : r->cap);
          while (nc < r->out_len + blen) nc *= 2;
          uint8_t *nb = realloc(r->out, nc);
          if (!nb) {
            finish(r, RN_ENOMEM);
            return;
          }
          r->out = nb;
          r->out_cap = nc;
        }
        g = gather(r, e, r->pos, blen, r->out + r->out_len);
        if (g == 0) return;
        if (g < 0 || rn_batch_verify(r->out + r->out_len, blen, NULL, NULL)) {
          if (g < 0 && g != RN_ECORRUPT)
            finish(r, g);
          else
            corrupt(r, e, "batch checksum");
          return;
        }
        r->out_len += blen;
        r->pos += blen;
        if (r->out_len >= r->cap) {
          finish(r, 0);
          return;
        }
        continue;
      }
      /* time lookup */
      if (h.max_timestamp < r->ts_ms) {
        r->pos += blen;
        continue;
      }
      uint8_t *b = malloc(blen);
      if (!b) {
        finish(r, RN_ENOMEM);
        return;
      }
      g = gather(r, e, r->pos, blen, b);
      if (g <= 0) {
        free(b);
        if (g == RN_ECORRUPT)
          corrupt(r, e, "short chunk");
        else if (g < 0)
          finish(r, g);
        return;
      }
      rn_batch_iter_t it;
      rn_err_t err = rn_batch_iter_init(&it, b, blen);
      rn_record_t rec;
      bool found = false;
      while (!err && (err = rn_batch_iter_next(&it, &rec)) == 0)
        if (rec.timestamp >= r->ts_ms) {
          r->result_offset = rec.offset;
          found = true;
          break;
        }
      rn_batch_iter_free(&it);
      free(b);
      if (found) {
        finish(r, 0);
        return;
      }
      if (err != RN_EOFFSET) {
        corrupt(r, e, "batch checksum or record");
        return;
      }
      r->pos += blen;
    }
    /* The end of this segment. */
    if (!r->time) {
      finish(r, r->out_len ? 0 : RN_EOFFSET);
      return;
    }
    r->base = e->next; /* the next remote segment, if any */
    r->phase = 0;
  }
}

/* A chunk arrived (or failed): every read of the shard waiting tries again. */
static void wake(rn_tier_shard_t *ts) {
  /* step() may finish (unlink) the read it runs, never another: walk a
   * snapshot of the list. */
  unsigned n = 0;
  for (rn__rop_t *r = ts->rops; r; r = r->next) n++;
  if (!n) return;
  rn__rop_t *stack[64], **v = n <= 64 ? stack : malloc(n * sizeof(*v));
  if (!v) return;
  unsigned i = 0;
  for (rn__rop_t *r = ts->rops; r; r = r->next) v[i++] = r;
  for (i = 0; i < n; i++) step(v[i]);
  if (v != stack) free(v);
}

static rn__rop_t *rop_new(rn_tier_shard_t *ts, void *arg) {
  rn__rop_t *r = calloc(1, sizeof(*r));
  if (!r) return NULL;
  r->ts = ts;
  r->arg = arg;
  r->next = ts->rops;
  ts->rops = r;
  return r;
}

rn_err_t rn_tier_read(rn_tier_shard_t *ts, uint64_t offset, size_t cap, rn_tier_read_cb cb, void *arg) {
  if (!ts || !cb) return RN_EINVAL;
  if (ts->closing) return RN_ECANCELED;
  if (offset < rn_tier_shard_start(ts) || offset >= rn_log_start(ts->log)) return RN_EOFFSET;
  const rn_mf_seg_t *e = rn_mf_find(&ts->mf, offset);
  if (!e || !e->uploaded || e->next <= ts->mf.start) return RN_EOFFSET;
  rn__rop_t *r = rop_new(ts, arg);
  if (!r) return RN_ENOMEM;
  r->cb = cb;
  r->base = e->base;
  r->offset = offset;
  r->cap = cap ? cap : 1;
  step(r);
  return 0;
}

rn_err_t rn_tier_find_time(rn_tier_shard_t *ts, int64_t ts_ms, rn_tier_offset_cb cb, void *arg) {
  if (!ts || !cb) return RN_EINVAL;
  if (ts->closing) return RN_ECANCELED;
  rn__rop_t *r = rop_new(ts, arg);
  if (!r) return RN_ENOMEM;
  r->time = true;
  r->tcb = cb;
  r->ts_ms = ts_ms;
  /* The first remote segment whose newest record reaches ts. */
  uint64_t ls = rn_log_start(ts->log);
  r->base = UINT64_MAX;
  for (uint32_t i = 0; i < ts->mf.n; i++) {
    const rn_mf_seg_t *s = &ts->mf.segs[i];
    if (!s->uploaded || s->next <= ts->mf.start) continue;
    if (s->base >= ls) break;
    if (s->max_ts >= ts_ms) {
      r->base = s->base;
      break;
    }
  }
  step(r); /* no such segment: finishes with the local start */
  return 0;
}

/* ---- lifecycle ---------------------------------------------------------------- */

void rn__reader_shard_close(rn_tier_shard_t *ts) {
  rn_tier_t *t = ts->t;
  while (ts->rops) {
    rn__rop_t *r = ts->rops;
    ts->rops = r->next;
    free(r->out);
    if (r->time)
      r->tcb(r->arg, RN_ECANCELED, 0);
    else
      r->cb(r->arg, RN_ECANCELED, NULL, 0);
    free(r);
  }
  if (!t->buckets) return;
  for (uint32_t b = 0; b < t->nbuckets; b++)
    for (rn__chunk_t **pp = &t->buckets[b]; *pp;) {
      rn__chunk_t *c = *pp;
      if (c->ts != ts) {
        pp = &c->hnext;
        continue;
      }
      *pp = c->hnext;
      c->hashed = false;
      ahead_done(t, c);
      if (c->ready) {
        lru_unlink(t, c);
        free(c->data);
        free(c);
      } else {
        t->gets_inflight--;
        c->ts = NULL; /* its GET frees it */
      }
    }
}

void rn__reader_tick(rn_tier_t *t, int64_t now) {
  (void)t;
  (void)now; /* nothing time-driven yet: GET deadlines are the store's */
}

void rn__reader_destroy(rn_tier_t *t) {
  while (t->lru_head) chunk_free(t, t->lru_head);
  free(t->buckets);
  t->buckets = NULL;
}

unsigned rn_tier_gets_inflight(const rn_tier_t *t, unsigned *max) {
  if (max) *max = t->gets_inflight_max;
  return t->gets_inflight;
}
