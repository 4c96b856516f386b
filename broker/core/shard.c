/*
 * shard.c — produce (with idempotent producers), fetch (with long poll) and
 * offset lookups on a stream's shards.
 *
 * Produce: every batch is verified record by record (structure, sizes)
 * before it reaches the log; the reply is sent once every batch of the
 * request completed, i.e. once the stream's durability promise holds for
 * all of them. Idempotence: per (producer id, shard) the broker remembers
 * the sequence the next batch must carry and the last RN__PRODUCER_WINDOW
 * batches, so a retried batch is acknowledged again with its original
 * offset instead of being appended twice. The state is rebuilt at open from
 * the shard's newest batches (their headers carry producer id, epoch and
 * sequence).
 *
 * Fetch: positions resolve on the loop thread without disk I/O (except
 * TIMESTAMP, see docs/broker.md), the reads themselves run on the libuv
 * thread pool through pinned log spans. A fetch that finds nothing parks one
 * waiter per requested shard; an append's acknowledgement wakes them
 * (rn__shard_wake), the max-wait timer or shutdown ends the wait. A fetch
 * with data to read first takes its max bytes from the broker-wide fetch
 * memory budget (opts.max_fetch_memory_bytes) or waits for it, FIFO.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"
#include "rn_base.h"

#define PRODUCER_SCAN_RECORDS 10000

/* ---- producer table ---------------------------------------------------------------- */

static uint32_t hash_id(uint64_t id) { return (uint32_t)((id * 0x9E3779B97F4A7C15ull) >> 32); }

static rn__producer_t *producer_get(rn_shard_t *sh, uint64_t id, bool create) {
  if (sh->producers_cap) {
    for (rn__producer_t *p = sh->producers[hash_id(id) & (sh->producers_cap - 1)]; p; p = p->next)
      if (p->id == id) return p;
  }
  if (!create) return NULL;
  if (sh->nproducers + 1 > sh->producers_cap / 2) {
    uint32_t nc = sh->producers_cap ? sh->producers_cap * 2 : 64;
    rn__producer_t **nt = calloc(nc, sizeof(*nt));
    if (!nt) return NULL;
    for (uint32_t i = 0; i < sh->producers_cap; i++) {
      for (rn__producer_t *p = sh->producers[i], *nx; p; p = nx) {
        nx = p->next;
        uint32_t b = hash_id(p->id) & (nc - 1);
        p->next = nt[b];
        nt[b] = p;
      }
    }
    free(sh->producers);
    sh->producers = nt;
    sh->producers_cap = nc;
  }
  rn__producer_t *p = calloc(1, sizeof(*p));
  if (!p) return NULL;
  p->id = id;
  uint32_t b = hash_id(id) & (sh->producers_cap - 1);
  p->next = sh->producers[b];
  sh->producers[b] = p;
  sh->nproducers++;
  return p;
}

void rn__shard_free_producers(rn_shard_t *sh) {
  for (uint32_t i = 0; i < sh->producers_cap; i++) {
    for (rn__producer_t *p = sh->producers[i], *nx; p; p = nx) {
      nx = p->next;
      free(p);
    }
  }
  free(sh->producers);
  sh->producers = NULL;
  sh->producers_cap = sh->nproducers = 0;
}

static void window_push(rn__producer_t *p, int32_t seq, uint32_t count, uint32_t stored, uint64_t base, bool durable) {
  if (p->nwin == RN__PRODUCER_WINDOW) {
    memmove(p->win, p->win + 1, (RN__PRODUCER_WINDOW - 1) * sizeof(p->win[0]));
    p->nwin--;
  }
  p->win[p->nwin].seq = seq;
  p->win[p->nwin].count = count;
  p->win[p->nwin].base = base;
  p->win[p->nwin].stored = stored;
  p->win[p->nwin].durable = durable;
  p->nwin++;
}

/* The sequence after a batch of count records from base (>= 0). Sequences
 * wrap from INT32_MAX to 0, as Kafka's do: computed in 64 bits so a
 * producer near the top cannot overflow an int32. */
static int32_t seq_after(int32_t base, uint32_t count) {
  return (int32_t)(((int64_t)base + (int64_t)count) % ((int64_t)INT32_MAX + 1));
}

/* Apply one stored batch's producer fields (recovery and append). */
static void producer_note(rn_shard_t *sh, const rn_batch_header_t *h, bool durable) {
  if (!h->producer_id || h->base_sequence < 0) return;
  rn__producer_t *p = producer_get(sh, h->producer_id, true);
  if (!p) return;
  if (h->producer_epoch != p->epoch) {
    p->epoch = h->producer_epoch;
    p->nwin = 0;
  }
  p->next_seq = seq_after(h->base_sequence, h->record_count);
  window_push(p, h->base_sequence, h->record_count, h->record_count, h->base_offset, durable);
}

rn_err_t rn__shard_load_producers(rn_engine_t *eng, rn_shard_t *sh) {
  uint64_t end = rn_log_end(sh->log), start = rn_log_start(sh->log);
  uint64_t from = end > start + PRODUCER_SCAN_RECORDS ? end - PRODUCER_SCAN_RECORDS : start;
  size_t cap = 1 << 20;
  uint8_t *buf = malloc(cap);
  if (!buf) return RN_ENOMEM;
  rn_err_t err = 0;
  while (from < end) {
    size_t len = 0;
    err = rn_core_log_read(sh->log, from, &buf, &cap, &len);
    if (err || len == 0) break;
    for (size_t at = 0; at < len;) {
      rn_batch_header_t h;
      if (rn_batch_header_decode(buf + at, len - at, &h)) break;
      producer_note(sh, &h, true);
      from = rn_batch_last_offset(&h) + 1;
      at += h.batch_length;
    }
  }
  free(buf);
  if (err == RN_ECORRUPT) {
    /* A damaged old batch: reads report it; idempotence state is best effort. */
    rn__eng_say(eng, RN_LVL_WARN, "%s: producer state rebuilt partially (damaged batch)", sh->dir);
    err = 0;
  }
  return err;
}

/* ---- produce ------------------------------------------------------------------------- */

typedef struct produce_op produce_op_t;

typedef struct produce_item {
  produce_op_t *op;
  rn_shard_t *sh;
  size_t i;
  uint64_t producer_id;
  uint16_t epoch;
  int32_t seq;
  uint32_t records; /* for the shard's metrics */
  uint64_t bytes;
  uint64_t t0_ns;   /* uv_hrtime at submission */
  /* LEADER shards: durable here at [base, end), waiting in the shard's
   * commit queue (cnext) for the committed end. */
  uint64_t base, end;
  struct produce_item *cnext;
  /* Dedup streams (docs/dedup.md). ids: the window entries this batch
   * inserted (pending = this item until its append completes). waits: other
   * batches' copies of those ids, answered when the append completes.
   * waiting: this batch's own hits on other appends still in flight; the
   * batch is answered once they completed. appended: an append is in
   * flight (false: every record was a hit). */
  rn__dedup_hash_t *ids;
  uint32_t nids;
  uint64_t base_guess; /* rn_log_next_offset when scanned: the entries' offsets start there */
  rn_core_dedup_hit_t *hits; /* res->hits, in the op's arena */
  struct dedup_wait *waits;
  uint32_t waiting;
  bool appended;
} produce_item_t;

/* A record of `waiter` whose first copy is another batch's append in flight. */
typedef struct dedup_wait {
  produce_item_t *waiter;
  uint32_t index;
  struct dedup_wait *next;
} dedup_wait_t;

struct produce_op {
  rn_engine_t *eng;
  rn_stream_t *st;
  rn_core_produce_cb cb;
  void *ctx;
  unsigned pending;
  rn_arena_t arena;
  rn_core_batch_result_t *results; /* n, in the arena */
  size_t n;
  produce_item_t *items;
};

static void produce_finish(produce_op_t *op) {
  rn_core_produce_result_t r = {0};
  r.results = op->results;
  r.nresults = op->n;
  op->cb(op->ctx, &r);
  rn__stream_unref(op->eng, op->st);
  rn_arena_free(&op->arena);
  for (size_t i = 0; i < op->n; i++) free(op->items[i].ids);
  free(op->items);
  free(op);
}

static void produce_item_done(produce_op_t *op) {
  if (--op->pending == 0) produce_finish(op);
}

/* A batch forwarded to its shard's leader (repl.forward_produce). */
typedef struct forward_item {
  produce_op_t *op;
  size_t i;
} forward_item_t;

static void on_forwarded(void *ctx, const rn_core_batch_result_t *r) {
  forward_item_t *f = ctx;
  produce_op_t *op = f->op;
  rn_core_batch_result_t *res = &op->results[f->i];
  uint32_t shard = res->shard;
  *res = *r;
  res->shard = shard;
  if (r->msg) {
    size_t n = strlen(r->msg);
    char *m = rn_arena_alloc(&op->arena, n + 1);
    memcpy(m, r->msg, n + 1);
    res->msg = m;
  }
  if (r->nhits) {
    rn_core_dedup_hit_t *h = rn_arena_alloc(&op->arena, r->nhits * sizeof *h);
    memcpy(h, r->hits, r->nhits * sizeof *h);
    res->hits = h;
  }
  free(f);
  produce_item_done(op);
}

/* Per-shard counters and the append latency histogram (rn_core.h). */
static void shard_note_append(rn_shard_t *sh, const produce_item_t *it, rn_err_t err) {
  rn_core_shard_stats_t *m = &sh->metrics;
  if (err) {
    m->append_errors++;
    return;
  }
  double s = (double)(uv_hrtime() - it->t0_ns) / 1e9;
  m->records_in += it->records;
  m->bytes_in += it->bytes;
  rn_hist_record(&m->append, rn_hist_latency_bounds, RN_HIST_BUCKETS, s);
}

/* An append of (producer, epoch, seq) failed: it is not stored, so it must
 * not stay in the window (a retry would be told "still being written" until
 * the client gave up). The log fails appends in offset order and only ever
 * a suffix of what is pending, so the producer's later in-flight batches
 * fail too: the window is cut at this batch and the producer expects this
 * sequence again, and its retry meets the real error (or succeeds). */
static void producer_forget(rn_shard_t *sh, uint64_t id, uint16_t epoch, int32_t seq) {
  rn__producer_t *p = producer_get(sh, id, false);
  if (!p || p->epoch != epoch) return;
  for (uint32_t k = 0; k < p->nwin; k++) {
    if (p->win[k].seq != seq || p->win[k].durable) continue;
    p->nwin = k;
    p->next_seq = seq;
    return;
  }
}

static void set_err(rn_arena_t *a, rn_core_batch_result_t *r, rn_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_err(rn_arena_t *a, rn_core_batch_result_t *r, rn_err_t err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *m = rn_arena_alloc(a, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(m, (size_t)n + 1, fmt, ap);
  va_end(ap);
  r->err = err;
  r->msg = m;
}

static dedup_wait_t *dedup_resolve(produce_item_t *it, rn_err_t err);
static void dedup_answer(dedup_wait_t *w, rn_err_t err, uint32_t shard);

/* The batch's append is over: durable (and, on a LEADER, committed) or
 * failed. Answers it. */
static void append_finish(produce_item_t *it, rn_err_t err, uint64_t base) {
  produce_op_t *op = it->op;
  rn_engine_t *eng = op->eng;
  rn_core_batch_result_t *r = &op->results[it->i];
  it->appended = false;
  dedup_wait_t *waits = it->nids || it->waits ? dedup_resolve(it, err) : NULL;
  uint32_t shard = it->sh->index;
  if (err == RN_ENOTLEADER) {
    /* Durable here, but leadership moved before every in-sync replica had
     * it: the new leader decides whether it stays. The producer window
     * keeps it (this replica truncates it away, window included, if the new
     * leader does not have it). */
    char m[200];
    set_err(&op->arena, r, err, "%s; the batch was not acknowledged (it may be stored): retry",
            rn__shard_not_leader_msg(it->sh, m, sizeof m));
  } else if (err) {
    if (it->producer_id) producer_forget(it->sh, it->producer_id, it->epoch, it->seq);
    set_err(&op->arena, r, err, "shard %u: append failed: %s%s", it->sh->index, rn_strerror(err),
            rn_err_retriable(err) ? "; nothing was stored, retry" : "");
  } else {
    r->base_offset = base;
    if (!r->nhits) r->stored_count = it->records;
    it->sh->last_append_ms = rn__now_ms(eng);
    if (it->producer_id) {
      rn__producer_t *p = producer_get(it->sh, it->producer_id, false);
      for (uint32_t k = 0; p && k < p->nwin; k++)
        if (p->win[k].seq == it->seq) p->win[k].durable = true;
    }
    rn__tier_note_append(eng, it->sh);
    rn__shard_wake(eng, it->sh);
  }
  produce_item_done(op); /* op and it may be gone now */
  /* The copies that waited are answered after their first copy's request. */
  if (waits) dedup_answer(waits, err, shard);
}

static void on_appended(void *arg, rn_err_t err, uint64_t base) {
  produce_item_t *it = arg;
  rn_engine_t *eng = it->op->eng;
  rn_shard_t *sh = it->sh;
  sh->inflight--;
  eng->inflight_appends--;
  shard_note_append(sh, it, err);
  if (err || sh->role != RN_CORE_ROLE_LEADER) return append_finish(it, err, base);
  /* LEADER: durable on this disk; acknowledged once committed. */
  const rn_core_batch_result_t *r = &it->op->results[it->i];
  it->base = base;
  it->end = base + (r->nhits ? r->stored_count : it->records);
  it->cnext = NULL;
  if (sh->cwait_tail)
    sh->cwait_tail->cnext = it;
  else
    sh->cwait_head = it;
  sh->cwait_tail = it;
  if (it->end > sh->durable_end) sh->durable_end = it->end;
  rn__shard_wake(eng, sh); /* followers parked on a replica fetch */
  if (eng->repl.local_durable) eng->repl.local_durable(eng->repl.arg, sh, sh->durable_end);
  rn__shard_release_waiting(eng, sh, 0); /* a committed end that already covers it */
}

void rn__shard_release_waiting(rn_engine_t *eng, rn_shard_t *sh, rn_err_t err) {
  (void)eng;
  produce_item_t *it;
  while ((it = sh->cwait_head) && (err || it->end <= sh->committed)) {
    sh->cwait_head = it->cnext;
    if (!sh->cwait_head) sh->cwait_tail = NULL;
    append_finish(it, err, it->base);
  }
}

/* ---- producer state under replication ------------------------------------------------- */

void rn__shard_note_replicated(rn_shard_t *sh, const rn_batch_header_t *h) { producer_note(sh, h, true); }

void rn__shard_cut_producers(rn_shard_t *sh, uint64_t offset) {
  for (uint32_t i = 0; i < sh->producers_cap; i++) {
    for (rn__producer_t *p = sh->producers[i]; p; p = p->next) {
      for (uint32_t k = 0; k < p->nwin; k++) {
        if (p->win[k].base < offset) continue;
        p->next_seq = p->win[k].seq; /* the first batch cut is expected again */
        p->nwin = k;
        break;
      }
    }
  }
}

const char *rn__shard_not_leader_msg(const rn_shard_t *sh, char *buf, size_t len) {
  if (sh->leader_hint)
    snprintf(buf, len, "stream %s shard %u: this broker is not its leader (broker %u is, epoch %u)",
             sh->stream->name, sh->index, sh->leader_hint, sh->leader_epoch);
  else
    snprintf(buf, len, "stream %s shard %u: this broker is not its leader (no leader known: the shard may be "
             "offline or changing leader)", sh->stream->name, sh->index);
  return buf;
}

uint64_t rn__shard_visible_end(const rn_shard_t *sh) {
  if (!sh->log) return 0;
  uint64_t end = rn_log_end(sh->log);
  if (sh->role == RN_CORE_ROLE_SOLO) return end;
  return sh->committed < end ? sh->committed : end;
}

/* Check every record: structure (the iterator is strict) and size. */
static rn_err_t check_records(const rn_engine_t *eng, const uint8_t *b, size_t len, rn_batch_header_t *hdr,
                              char *why, size_t whylen) {
  rn_batch_iter_t it;
  rn_err_t err = rn_batch_iter_init(&it, b, len);
  if (err) {
    snprintf(why, whylen, "batch failed verification (%s)", rn_err_name(err));
    return err == RN_EPARTIAL ? RN_ECORRUPT : err;
  }
  *hdr = it.hdr;
  if (hdr->batch_length != len) {
    rn_batch_iter_free(&it);
    snprintf(why, whylen, "batch is %zu bytes but its header says %u", len, hdr->batch_length);
    return RN_ECORRUPT;
  }
  rn_record_t r;
  uint32_t n = 0;
  while ((err = rn_batch_iter_next(&it, &r)) == 0) {
    /* max_record_bytes is documented as partition key + data + headers. */
    size_t sz = r.key_len + r.value_len;
    size_t hpos = 0;
    rn_record_header_t rh;
    while ((err = rn_record_header_next(&r, &hpos, &rh)) == 0) sz += rh.key_len + rh.value_len;
    if (err != RN_EOFFSET) break; /* malformed headers: ECORRUPT below */
    if (sz > eng->opts.max_record_bytes) {
      snprintf(why, whylen, "record %u is %zu bytes; max_record_bytes is %u", n, sz, eng->opts.max_record_bytes);
      rn_batch_iter_free(&it);
      return RN_ETOOLARGE;
    }
    n++;
  }
  rn_batch_iter_free(&it);
  if (err != RN_EOFFSET) {
    snprintf(why, whylen, "record %u is malformed", n);
    return RN_ECORRUPT;
  }
  return 0;
}

/* ---- the dedup window on produce (docs/dedup.md) -----------------------------------------
 * A batch of a dedup stream is scanned before it is appended: each record
 * with an id is looked up in the stream's window. A hit is not stored: the
 * result names its original (rn_core_batch_result_t.hits); a first copy is
 * inserted, pending on this batch's append, with its rank among the stored
 * records as offset (rebased once the log assigned the batch's base). When
 * some records were hits the others are re-encoded into a new batch (or
 * nothing is stored). A hit whose first copy is still in flight in another
 * batch makes this batch wait for that append: it is answered after it,
 * with its error if it failed. */

/* The id of r in st, false when it has none (counted by the caller). */
static bool record_id(const rn_stream_t *st, const rn_record_t *r, const uint8_t **id, size_t *len) {
  if (st->dedup_key == RN_CORE_DEDUP_RECORD_ID) {
    *id = r->id;
    *len = r->id_len;
    return r->id_len > 0;
  }
  return rn__dedup_json_field(r->value, r->value_len, st->dedup_field, id, len) && *len > 0;
}

/* A hit on a record of its own batch (its offset: base_guess + rank). */
#define LOCAL_HIT(it, x) ((x)->shard == (it)->sh->index && (x)->offset >= (it)->base_guess)

/* Re-encode the records of data that are not hits (kept of them). */
static rn_err_t dedup_reencode(const uint8_t *data, size_t len, const rn_batch_header_t *hdr,
                               const rn_core_dedup_hit_t *hits, uint32_t nhits, uint32_t kept, rn_batch_builder_t *bld,
                               const uint8_t **out, size_t *outlen) {
  rn_batch_iter_t bi;
  rn_err_t err = rn_batch_iter_init_verified(&bi, data, len);
  if (err) return err;
  rn_record_t r;
  uint32_t j = 0, hi = 0;
  rn_record_header_t *hv = NULL;
  size_t hcap = 0;
  while (!err && rn_batch_iter_next(&bi, &r) == 0) {
    if (hi < nhits && hits[hi].index == j) {
      hi++;
      j++;
      continue;
    }
    j++;
    if (r.header_count > hcap) {
      rn_record_header_t *nv = realloc(hv, r.header_count * sizeof(*hv));
      if (!nv) {
        err = RN_ENOMEM;
        break;
      }
      hv = nv;
      hcap = r.header_count;
    }
    size_t pos = 0;
    for (size_t k = 0; k < r.header_count; k++)
      if (rn_record_header_next(&r, &pos, &hv[k])) err = RN_ECORRUPT;
    r.headers = r.header_count ? hv : NULL;
    if (!err) err = rn_batch_builder_add(bld, &r);
  }
  free(hv);
  rn_batch_iter_free(&bi);
  if (err) return err;
  /* The stored batch keeps the producer's fields with the sequence moved up
   * by the records left out: its last sequence is the original's, so the
   * producer state rebuilt from the log at open expects the same next one. */
  rn_batch_producer_t pr = {hdr->producer_id, hdr->producer_epoch,
                            hdr->base_sequence >= 0 ? seq_after(hdr->base_sequence, hdr->record_count - kept) : -1};
  return rn_batch_builder_finish(bld, (rn_codec_t)hdr->codec, hdr->producer_id ? &pr : NULL, out, outlen);
}

/* Scan one checked batch of a dedup stream (see above). *out: the bytes
 * to append (data itself without hits, the re-encoded batch in bld, or NULL
 * when every record was a hit). res gets the hits and stored_count;
 * it->records the records to store. */
static rn_err_t dedup_scan(produce_op_t *op, produce_item_t *it, const uint8_t *data, size_t len,
                           const rn_batch_header_t *hdr, rn_batch_builder_t *bld, const uint8_t **out, size_t *outlen,
                           char *why, size_t whylen) {
  rn_stream_t *st = op->st;
  rn__dedup_t *d = st->dedup;
  rn_core_batch_result_t *res = &op->results[it->i];
  int64_t now = rn__now_ms(op->eng);
  uint32_t n = hdr->record_count;
  /* Entries get the offset the append will get (rn_log_next_offset: the
   * log assigns offsets in submission order, synchronously, and nothing is
   * submitted to this shard before this batch); dedup_rebase corrects them
   * should the append report another base. */
  it->base_guess = rn_log_next_offset(it->sh->log);
  rn_batch_iter_t bi;
  /* check_records just verified both checksums of exactly these bytes. */
  rn_err_t err = rn_batch_iter_init_verified(&bi, data, len);
  if (err) {
    snprintf(why, whylen, "batch failed verification (%s)", rn_err_name(err));
    return err;
  }
  it->ids = malloc((size_t)n * sizeof(*it->ids));
  if (!it->ids) {
    rn_batch_iter_free(&bi);
    snprintf(why, whylen, "out of memory");
    return RN_ENOMEM;
  }
  rn_core_dedup_hit_t *hits = NULL;
  uint32_t nhits = 0, kept = 0, j = 0;
  rn_record_t r;
  while (rn_batch_iter_next(&bi, &r) == 0) {
    const uint8_t *id;
    size_t idl;
    uint32_t idx = j++;
    if (!record_id(st, &r, &id, &idl)) {
      st->dedup_without_id++;
      kept++;
      continue;
    }
    rn__dedup_hash_t h = rn__dedup_hash(id, idl);
    rn__dedup_entry_t *e = rn__dedup_find(d, h, now);
    if (!e) {
      if (rn__dedup_insert(d, h, it->sh->index, it->base_guess + kept, now, it)) it->ids[it->nids++] = h;
      kept++;
      continue;
    }
    if (!hits) hits = rn_arena_alloc(&op->arena, (size_t)n * sizeof(*hits));
    rn_core_dedup_hit_t *x = &hits[nhits++];
    x->index = idx;
    x->shard = e->shard;
    x->offset = e->offset;
    st->dedup_duplicates++;
    if (e->pending && e->pending != it) { /* the first copy's append is in flight */
      produce_item_t *first = e->pending;
      dedup_wait_t *w = rn_xcalloc(1, sizeof(*w));
      w->waiter = it;
      w->index = idx;
      w->next = first->waits;
      first->waits = w;
      it->waiting++;
      op->pending++;
    }
  }
  rn_batch_iter_free(&bi);
  res->hits = it->hits = hits;
  res->nhits = nhits;
  res->stored_count = kept;
  it->records = kept;
  *out = data;
  *outlen = len;
  if (nhits == 0) return 0;
  if (kept == 0) {
    *out = NULL;
    return 0;
  }
  err = dedup_reencode(data, len, hdr, hits, nhits, kept, bld, out, outlen);
  if (err) snprintf(why, whylen, "re-encoding the batch without its %u duplicates failed (%s)", nhits, rn_err_name(err));
  return err;
}

/* The append was submitted at base: the entries and same-batch hits get
 * their absolute offsets. */
static void dedup_rebase(produce_item_t *it, rn_core_batch_result_t *res, uint64_t base) {
  if (base == it->base_guess) return; /* the usual case: nothing to correct */
  rn__dedup_t *d = it->op->st->dedup;
  for (uint32_t k = 0; k < it->nids; k++) {
    rn__dedup_entry_t *e = rn__dedup_owned(d, it->ids[k], it);
    if (e) e->offset = e->offset - it->base_guess + base;
  }
  rn_core_dedup_hit_t *hits = it->hits;
  for (uint32_t k = 0; k < res->nhits; k++) {
    if (!LOCAL_HIT(it, &hits[k])) continue;
    hits[k].offset = hits[k].offset - it->base_guess + base;
  }
}

/* The append was refused at submission: its entries go. (Its own waits on
 * other appends stay counted and complete as usual.) */
static void dedup_unwind(produce_item_t *it) {
  rn__dedup_t *d = it->op->st->dedup;
  for (uint32_t k = 0; d && k < it->nids; k++) rn__dedup_remove(d, it->ids[k], it);
  it->nids = 0;
}

/* it's append completed with err: settle (or remove) its entries. Returns
 * the copies that waited for it, for dedup_answer once it's own request
 * was answered. */
static dedup_wait_t *dedup_resolve(produce_item_t *it, rn_err_t err) {
  rn__dedup_t *d = it->op->st->dedup;
  for (uint32_t k = 0; d && k < it->nids; k++) {
    if (err) {
      rn__dedup_remove(d, it->ids[k], it);
    } else {
      rn__dedup_entry_t *e = rn__dedup_owned(d, it->ids[k], it);
      if (e) e->pending = NULL;
    }
  }
  it->nids = 0;
  dedup_wait_t *w = it->waits;
  it->waits = NULL;
  return w;
}

/* Answer the copies that waited for an append to shard (completed with err). */
static void dedup_answer(dedup_wait_t *w, rn_err_t err, uint32_t shard) {
  while (w) {
    dedup_wait_t *next = w->next;
    produce_item_t *wi = w->waiter;
    produce_op_t *wop = wi->op;
    rn_core_batch_result_t *wr = &wop->results[wi->i];
    if (err && !wr->err)
      set_err(&wop->arena, wr, err, "shard %u: record %u: its first copy (shard %u) failed to store: %s; retry",
              wi->sh->index, w->index, shard, rn_strerror(err));
    if (--wi->waiting == 0 && wi->records == 0 && wi->producer_id) {
      /* A batch made only of hits: its sequence is answered like a stored one from now on. */
      if (wr->err) {
        producer_forget(wi->sh, wi->producer_id, wi->epoch, wi->seq);
      } else {
        rn__producer_t *p = producer_get(wi->sh, wi->producer_id, false);
        for (uint32_t k = 0; p && k < p->nwin; k++)
          if (p->win[k].seq == wi->seq) p->win[k].durable = true;
      }
    }
    free(w);
    produce_item_done(wop);
    w = next;
  }
}

/* A producer's retry answered from its window (duplicate): the hits the
 * batch had, from the window's entries. A record stored by the batch has its
 * own entry at the next stored offset; any other entry is a hit. */
static void dedup_replay(produce_op_t *op, rn_shard_t *sh, rn_core_batch_result_t *res, const uint8_t *data,
                         size_t len, uint32_t stored) {
  rn_stream_t *st = op->st;
  int64_t now = rn__now_ms(op->eng);
  rn_batch_iter_t bi;
  if (rn_batch_iter_init_verified(&bi, data, len)) return;
  rn_core_dedup_hit_t *hits = NULL;
  uint32_t nhits = 0, k = 0, j = 0;
  rn_record_t r;
  while (rn_batch_iter_next(&bi, &r) == 0) {
    const uint8_t *id;
    size_t idl;
    uint32_t idx = j++;
    if (!record_id(st, &r, &id, &idl)) {
      k++;
      continue;
    }
    rn__dedup_entry_t *e = rn__dedup_find(st->dedup, rn__dedup_hash(id, idl), now);
    if (!e || (k < stored && e->shard == sh->index && e->offset == res->base_offset + k)) {
      k++;
      continue;
    }
    if (!hits) hits = rn_arena_alloc(&op->arena, (size_t)bi.hdr.record_count * sizeof(*hits));
    hits[nhits++] = (rn_core_dedup_hit_t){idx, e->shard, e->offset};
  }
  rn_batch_iter_free(&bi);
  res->hits = hits;
  res->nhits = nhits;
}

/* ---- the dedup window at open --------------------------------------------------------------- */

typedef struct seen {
  rn__dedup_hash_t h;
  int64_t arrival;
  uint64_t offset;
  uint32_t shard;
} seen_t;

static int seen_cmp(const void *a, const void *b) {
  const seen_t *x = a, *y = b;
  if (x->arrival != y->arrival) return x->arrival < y->arrival ? -1 : 1;
  if (x->shard != y->shard) return x->shard < y->shard ? -1 : 1;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The first offset of sh whose batch arrived at or after cutoff, by a
 * binary search over the batches' arrival times (stamped by this broker as
 * they are appended, so non-decreasing along the log unless its clock
 * stepped back). Record timestamps are the producer's and the time index
 * follows them, so it cannot be used for this. Blocking (at open). */
static uint64_t first_arrival_at(rn_log_t *log, int64_t cutoff, uint8_t **buf, size_t *cap) {
  uint64_t lo = rn_log_start(log), hi = rn_log_end(log);
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    size_t len = 0;
    rn_batch_header_t h;
    if (rn_core_log_read(log, mid, buf, cap, &len) || len == 0 || rn_batch_header_decode(*buf, len, &h))
      return lo; /* unreadable: scan from what is known */
    if (h.arrival_time_ms < cutoff)
      lo = rn_batch_last_offset(&h) + 1;
    else
      hi = h.base_offset > lo ? h.base_offset : lo;
    if (hi <= lo) break;
  }
  return lo;
}

rn_err_t rn__stream_load_dedup(rn_engine_t *eng, rn_stream_t *st) {
  int64_t now = rn__now_ms(eng), cutoff = now - st->dedup_window_ms;
  seen_t *v = NULL;
  size_t nv = 0, cv = 0;
  size_t cap = 1 << 20;
  uint8_t *buf = malloc(cap);
  if (!buf) return RN_ENOMEM;
  rn_err_t err = 0;
  uint64_t records = 0;
  size_t probe_cap = 64 << 10;
  uint8_t *probe = malloc(probe_cap);
  if (!probe) {
    free(buf);
    return RN_ENOMEM;
  }
  for (uint32_t s = 0; s < st->nshards && !err; s++) {
    rn_shard_t *sh = &st->shards[s];
    if (!sh->log) continue;
    uint64_t end = rn_log_end(sh->log);
    uint64_t from = first_arrival_at(sh->log, cutoff, &probe, &probe_cap);
    while (from < end && !err) {
      size_t len = 0;
      err = rn_core_log_read(sh->log, from, &buf, &cap, &len);
      if (err || len == 0) break;
      for (size_t at = 0; at < len && !err;) {
        rn_batch_iter_t bi;
        if (rn_batch_iter_init_verified(&bi, buf + at, len - at)) break;
        rn_batch_header_t h = bi.hdr;
        rn_record_t r;
        while (h.arrival_time_ms >= cutoff && rn_batch_iter_next(&bi, &r) == 0) {
          const uint8_t *id;
          size_t idl;
          records++;
          if (r.offset < from || !record_id(st, &r, &id, &idl)) continue;
          if (nv == cv) {
            size_t nc = cv ? cv * 2 : 4096;
            seen_t *nvp = realloc(v, nc * sizeof(*v));
            if (!nvp) {
              err = RN_ENOMEM;
              break;
            }
            v = nvp;
            cv = nc;
          }
          v[nv++] = (seen_t){rn__dedup_hash(id, idl), h.arrival_time_ms, r.offset, s};
        }
        rn_batch_iter_free(&bi);
        from = rn_batch_last_offset(&h) + 1;
        at += h.batch_length;
      }
    }
    if (err == RN_ECORRUPT) { /* reads report it; the window is rebuilt from what is readable */
      rn__eng_say(eng, RN_LVL_WARN, "%s: dedup window rebuilt partially (damaged batch)", sh->dir);
      err = 0;
    }
  }
  free(buf);
  free(probe);
  if (!err) {
    if (nv) qsort(v, nv, sizeof(*v), seen_cmp);
    for (size_t i = 0; i < nv; i++)
      if (!rn__dedup_find(st->dedup, v[i].h, now))
        rn__dedup_insert(st->dedup, v[i].h, v[i].shard, v[i].offset, v[i].arrival, NULL);
    st->dedup->evictions = 0; /* counters start at open */
    rn__eng_say(eng, RN_LVL_INFO, "stream %s: dedup window rebuilt: %u ids from %" PRIu64 " records", st->name,
                rn__dedup_count(st->dedup), records);
  }
  free(v);
  return err;
}

void rn_core_produce(rn_core_t *eng, const rn_core_produce_req_t *r, rn_core_produce_cb cb, void *ctx) {
  rn_core_produce_result_t fail = {0};
  char msg[300];
  if (eng->draining) {
    fail.err = RN_ESHUTDOWN;
    fail.msg = "broker is shutting down";
    return cb(ctx, &fail);
  }
  const char *name = r->stream ? r->stream : "";
  rn_stream_t *st = rn__stream_find(eng, name);
  if (!st || st->state != RN__STREAM_ACTIVE) {
    snprintf(msg, sizeof(msg), "stream %s not found", name);
    fail.err = RN_ENOSTREAM;
    fail.msg = msg;
    return cb(ctx, &fail);
  }
  if (rn__tier_refuses(eng, st)) {
    snprintf(msg, sizeof(msg),
             "stream %s: the data disk is above tier_disk_high_water (%u%%) while tiered uploads are behind; "
             "nothing was stored, retry later",
             name, eng->opts.tier.disk_high_water);
    fail.err = RN_EBACKLOG;
    fail.msg = msg;
    return cb(ctx, &fail);
  }
  produce_op_t *op = rn_xcalloc(1, sizeof(*op));
  op->eng = eng;
  op->st = st;
  op->cb = cb;
  op->ctx = ctx;
  st->refs++;
  size_t n = r->nbatches;
  op->n = n;
  op->results = rn_arena_alloc(&op->arena, (n + 1) * sizeof(*op->results));
  op->items = rn_xcalloc(n + 1, sizeof(*op->items));
  op->pending = 1; /* guard until every batch was submitted */
  for (size_t i = 0; i < n; i++) {
    const rn_core_batch_in_t *sb = &r->batches[i];
    rn_core_batch_result_t *res = &op->results[i];
    res->shard = sb->shard;
    if (sb->shard >= st->nshards) {
      set_err(&op->arena, res, RN_ENOSHARD, "stream %s has no shard %u (it has %u)", st->name, sb->shard, st->nshards);
      continue;
    }
    rn_shard_t *sh = &st->shards[sb->shard];
    if (sh->role != RN_CORE_ROLE_SOLO) {
      char m[200];
      if (sh->role != RN_CORE_ROLE_LEADER || sh->truncating) {
        /* Any broker takes a produce for any shard: it goes on to the
         * leader unchanged (an idempotent producer's sequence with it). */
        if (sh->role != RN_CORE_ROLE_LEADER && !r->forwarded && eng->repl.forward_produce) {
          forward_item_t *f = rn_xmalloc(sizeof *f);
          *f = (forward_item_t){.op = op, .i = i};
          op->pending++;
          if (eng->repl.forward_produce(eng->repl.arg, sh, sb->data, sb->len, on_forwarded, f)) continue;
          op->pending--;
          free(f);
        }
        set_err(&op->arena, res, RN_ENOTLEADER, "%s", rn__shard_not_leader_msg(sh, m, sizeof m));
        continue;
      }
      if (!sh->writable) {
        set_err(&op->arena, res, RN_ENOTENOUGHREPLICAS, "stream %s shard %u: %s; nothing was stored, retry", st->name,
                sh->index, sh->unwritable_why[0] ? sh->unwritable_why : "too few replicas in sync");
        continue;
      }
    }
    if (sb->len > eng->opts.max_batch_bytes) {
      set_err(&op->arena, res, RN_ETOOLARGE, "batch is %zu bytes; max_batch_bytes is %u", sb->len, eng->opts.max_batch_bytes);
      continue;
    }
    rn_batch_header_t hdr;
    char why[200];
    rn_err_t err = check_records(eng, sb->data, sb->len, &hdr, why, sizeof(why));
    if (err) {
      set_err(&op->arena, res, err, "shard %u: %s", sb->shard, why);
      continue;
    }
    rn__producer_t *p = NULL;
    if (hdr.producer_id && hdr.base_sequence >= 0) {
      p = producer_get(sh, hdr.producer_id, true);
      if (!p) {
        set_err(&op->arena, res, RN_ENOMEM, "out of memory");
        continue;
      }
      if (p->nwin == 0 && p->next_seq == 0 && p->epoch == 0) {
        p->epoch = hdr.producer_epoch; /* first batch from this producer here */
        p->next_seq = hdr.base_sequence;
      }
      if (hdr.producer_epoch < p->epoch) {
        set_err(&op->arena, res, RN_EFENCED, "producer %" PRIu64 " epoch %u is older than %u", hdr.producer_id,
                hdr.producer_epoch, p->epoch);
        continue;
      }
      if (hdr.producer_epoch > p->epoch) {
        p->epoch = hdr.producer_epoch;
        p->nwin = 0;
        p->next_seq = hdr.base_sequence;
      }
      if (hdr.base_sequence != p->next_seq) {
        bool found = false;
        for (uint32_t k = 0; k < p->nwin; k++) {
          if (p->win[k].seq != hdr.base_sequence) continue;
          found = true;
          if (p->win[k].count != hdr.record_count) {
            set_err(&op->arena, res, RN_ESEQUENCE, "sequence %d was appended with %u records, not %u", hdr.base_sequence,
                    p->win[k].count, hdr.record_count);
          } else if (!p->win[k].durable ||
                     (sh->role == RN_CORE_ROLE_LEADER && p->win[k].base + p->win[k].stored > sh->committed)) {
            set_err(&op->arena, res, RN_EAGAIN, "duplicate of a batch still being written (sequence %d); retry",
                    hdr.base_sequence);
          } else {
            res->base_offset = p->win[k].base;
            res->duplicate = true;
            res->stored_count = p->win[k].stored;
            if (st->dedup) dedup_replay(op, sh, res, sb->data, sb->len, p->win[k].stored);
          }
          break;
        }
        if (!found)
          set_err(&op->arena, res, RN_ESEQUENCE, "producer %" PRIu64 " sequence %d, expected %d", hdr.producer_id,
                  hdr.base_sequence, p->next_seq);
        continue;
      }
    }
    produce_item_t *it = &op->items[i];
    it->op = op;
    it->sh = sh;
    it->i = i;
    it->producer_id = p ? hdr.producer_id : 0;
    it->epoch = hdr.producer_epoch;
    it->seq = hdr.base_sequence;
    it->records = hdr.record_count;
    it->bytes = sb->len;
    it->t0_ns = uv_hrtime();
    const uint8_t *bytes = sb->data;
    size_t blen = sb->len;
    rn_batch_builder_t bld;
    rn_batch_builder_init(&bld);
    if (st->dedup) {
      err = dedup_scan(op, it, sb->data, sb->len, &hdr, &bld, &bytes, &blen, why, sizeof why);
      if (err) {
        rn_batch_builder_free(&bld);
        set_err(&op->arena, res, err, "shard %u: %s", sb->shard, why);
        continue;
      }
    }
    uint64_t base = 0;
    if (bytes == NULL) { /* every record was a hit: nothing to store */
      res->base_offset = rn__shard_visible_end(sh);
      res->stored_count = 0;
      if (p) {
        p->next_seq = seq_after(hdr.base_sequence, hdr.record_count);
        window_push(p, hdr.base_sequence, hdr.record_count, 0, res->base_offset, it->waiting == 0);
      }
      continue;
    }
    /* check_records verified both checksums of exactly these bytes; a
     * re-encoded batch (dedup) is verified by the log. */
    if (bytes == sb->data)
      err = rn_log_append_verified(sh->log, bytes, blen, sh->leader_epoch, on_appended, it, &base);
    else
      err = rn_log_append(sh->log, bytes, blen, sh->leader_epoch, on_appended, it, &base);
    rn_batch_builder_free(&bld); /* the log copied the bytes */
    if (err) {
      sh->metrics.append_errors++;
      dedup_unwind(it);
      set_err(&op->arena, res, err, "shard %u: %s%s", sb->shard,
              err == RN_ELOGFAILED ? "the shard's log failed after a disk error; see the broker log" : rn_strerror(err),
              rn_err_retriable(err) ? "; nothing was stored, retry" : "");
      continue;
    }
    if (st->dedup) dedup_rebase(it, res, base);
    it->appended = true;
    if (p) {
      p->next_seq = seq_after(hdr.base_sequence, hdr.record_count);
      window_push(p, hdr.base_sequence, hdr.record_count, it->records, base, false);
    }
    sh->inflight++;
    eng->inflight_appends++;
    eng->stats.records_in += it->records;
    eng->stats.bytes_in += blen;
    op->pending++;
  }
  produce_item_done(op);
}

/* ---- positions ------------------------------------------------------------------------- */

/* Resolve a position other than TIMESTAMP to an absolute offset (no I/O). */
static rn_err_t resolve(rn_shard_t *sh, bool replica, rn_core_pos_kind_t kind, int64_t value, uint64_t *off,
                        char *why, size_t whylen) {
  /* A tiered shard starts at its store's first offset (rn_tier_shard_start).
   * A consumer reads to the committed end, a follower to the log end. */
  uint64_t start = rn__shard_start(sh), end = replica ? rn_log_end(sh->log) : rn__shard_visible_end(sh);
  switch (kind) {
  case RN_CORE_POS_EARLIEST: *off = start; return 0;
  case RN_CORE_POS_LATEST: *off = end; return 0;
  case RN_CORE_POS_OFFSET:
    if (value < 0 || (uint64_t)value < start || (uint64_t)value > end) {
      snprintf(why, whylen, "offset %" PRId64 " is outside [%" PRIu64 ", %" PRIu64 "] of shard %u", value, start, end, sh->index);
      return RN_EOFFSET;
    }
    *off = (uint64_t)value;
    return 0;
  case RN_CORE_POS_TIMESTAMP: break; /* planned and resolved on the thread pool by the callers */
  }
  snprintf(why, whylen, "unknown position kind %d", (int)kind);
  return RN_EINVAL;
}

/* ---- list offsets ------------------------------------------------------------------------
 * Positions other than TIMESTAMP resolve on the loop without I/O. A
 * TIMESTAMP position reads the shard's time index: planned on the loop
 * (rn_log_time_plan pins the segment), resolved on the thread pool
 * (rn_log_time_resolve), like a fetch's. The op holds a stream reference
 * meanwhile, so a delete cannot free the shards under the read. */

typedef struct offsets_op offsets_op_t;

typedef struct offsets_part {
  offsets_op_t *op;
  rn_core_shard_offsets_t out;
  rn_shard_t *sh;
  bool ts_pending;   /* planned; resolved by offsets_work */
  int64_t ts;
  rn_log_span_t span;
} offsets_part_t;

struct offsets_op {
  uv_work_t work;
  rn_engine_t *eng;
  rn_stream_t *st;
  rn_core_offsets_cb cb;
  void *ctx;
  rn_arena_t arena;
  size_t n;
  offsets_part_t *parts;
  unsigned remote; /* rn_tier_find_time lookups in flight */
};

static void offsets_reply(offsets_op_t *op) {
  rn_core_shard_offsets_t *out = rn_arena_alloc(&op->arena, (op->n + 1) * sizeof(*out));
  for (size_t i = 0; i < op->n; i++) out[i] = op->parts[i].out;
  rn_core_offsets_result_t r = {0};
  r.shards = out;
  r.nshards = op->n;
  op->cb(op->ctx, &r);
  rn__stream_unref(op->eng, op->st);
  rn_arena_free(&op->arena);
  free(op->parts);
  free(op);
}

/* Thread pool. */
static void offsets_work(uv_work_t *w) {
  offsets_op_t *op = w->data;
  for (size_t i = 0; i < op->n; i++) {
    offsets_part_t *p = &op->parts[i];
    if (p->ts_pending) p->out.err = rn_log_time_resolve(&p->span, p->ts, &p->out.offset);
  }
}

/* A timestamp older than the shard's local records: the store's answer. */
static void offsets_remote_done(void *arg, rn_err_t err, uint64_t offset) {
  offsets_part_t *p = arg;
  offsets_op_t *op = p->op;
  op->eng->pending_work--;
  if (err) {
    p->out.err = err;
    p->out.msg = rn_arena_printf(&op->arena, "shard %u: timestamp lookup in the store failed: %s", p->out.shard,
                                 rn__tier_err_text(err));
  } else {
    p->out.offset = offset;
  }
  if (--op->remote == 0) offsets_reply(op);
}

static void offsets_after(uv_work_t *w, int status) {
  offsets_op_t *op = w->data;
  op->eng->pending_work--;
  op->remote = 1; /* a guard while submitting */
  for (size_t i = 0; i < op->n; i++) {
    offsets_part_t *p = &op->parts[i];
    if (!p->ts_pending) continue;
    p->ts_pending = false;
    if (p->sh->log) rn_log_span_release(p->sh->log, &p->span);
    if (status && !p->out.err) p->out.err = RN_EIO;
    if (p->out.err) {
      p->out.msg = rn_strerror(p->out.err);
    } else if (rn__shard_time_remote(p->sh, p->out.offset)) {
      p->op = op;
      op->remote++;
      op->eng->pending_work++;
      rn_err_t err = rn_tier_find_time(p->sh->tier, p->ts, offsets_remote_done, p);
      if (err) offsets_remote_done(p, err, 0);
    }
  }
  if (--op->remote == 0) offsets_reply(op);
}

void rn_core_list_offsets(rn_core_t *eng, const rn_core_offsets_req_t *r, rn_core_offsets_cb cb, void *ctx) {
  const char *name = r->stream ? r->stream : "";
  rn_stream_t *st = rn__stream_find(eng, name);
  if (!st || st->state != RN__STREAM_ACTIVE) {
    char msg[300];
    snprintf(msg, sizeof msg, "stream %s not found", name);
    rn_core_offsets_result_t fail = {.err = RN_ENOSTREAM, .msg = msg};
    cb(ctx, &fail);
    return;
  }
  offsets_op_t *op = rn_xcalloc(1, sizeof(*op));
  op->eng = eng;
  op->st = st;
  op->cb = cb;
  op->ctx = ctx;
  st->refs++;
  size_t n = r->nshards ? r->nshards : st->nshards;
  op->n = n;
  op->parts = rn_xcalloc(n + 1, sizeof(*op->parts));
  bool any_ts = false;
  for (size_t i = 0; i < n; i++) {
    offsets_part_t *p = &op->parts[i];
    rn_core_shard_offsets_t *so = &p->out;
    uint32_t idx = r->nshards ? r->shards[i].shard : (uint32_t)i;
    rn_core_pos_kind_t kind = r->nshards ? r->shards[i].kind : RN_CORE_POS_LATEST;
    int64_t value = r->nshards ? r->shards[i].value : 0;
    so->shard = idx;
    if (idx >= st->nshards) {
      so->err = RN_ENOSHARD;
      so->msg = rn_arena_printf(&op->arena, "stream %s has no shard %u", st->name, idx);
      continue;
    }
    rn_shard_t *sh = &st->shards[idx];
    p->sh = sh;
    so->start_offset = rn__shard_start(sh);
    so->end_offset = rn__shard_visible_end(sh);
    rn_err_t err;
    char why[200] = "";
    if (kind == RN_CORE_POS_TIMESTAMP) {
      p->ts = value;
      err = rn_log_time_plan(sh->log, value, &p->span);
      p->ts_pending = err == 0;
      any_ts |= p->ts_pending;
    } else {
      err = resolve(sh, false, kind, value, &so->offset, why, sizeof(why));
    }
    if (err) {
      so->err = err;
      so->msg = why[0] ? rn_arena_printf(&op->arena, "%s", why) : rn_strerror(err);
    }
  }
  if (!any_ts) return offsets_reply(op);
  op->work.data = op;
  rn__queue_work(eng, &op->work, offsets_work, offsets_after);
}

/* ---- fetch ------------------------------------------------------------------------------ */

typedef struct fetch_op fetch_op_t;

struct rn__waiter {
  fetch_op_t *op;
  rn_shard_t *sh;
  rn__waiter_t *prev, *next;
  bool linked;
};

typedef struct fetch_part {
  fetch_op_t *op;
  uint32_t shard;
  rn_shard_t *sh; /* NULL when the part failed */
  uint64_t offset;
  uint32_t max_bytes;
  rn_err_t err;
  char why[200];
  rn_log_span_t span;
  uint64_t limit;  /* a LEADER's consumer part: batches at or past this (the committed end when planned) are cut */
  uint8_t *buf;
  size_t len;
  rn_err_t read_err;
  rn__waiter_t waiter;
  /* A TIMESTAMP position: planned on the loop, resolved on the thread pool
   * before the first read (no disk I/O on the loop thread). */
  bool ts_pending;
  int64_t ts;
  rn_log_span_t ts_span;
  /* Tiered shards: the offset lies below the log's start, in the store
   * (rn_tier_read, not a span); or a timestamp older than the local records
   * is being looked up there (rn_tier_find_time). */
  bool remote;
  bool ts_remote;
} fetch_part_t;

/* A fetch's life, one state at a time (loop thread):
 *   RESOLVING  timestamp positions are being resolved on the thread pool
 *              -> PLANNING (ts_after)
 *   PLANNING   fetch_try plans the spans  -> PARKED (nothing to read, may
 *              wait), MEM_WAIT (data, no fetch memory), READING, or DONE
 *   PARKED     on the shards' waiter lists with a timer -> PLANNING
 *              (data arrived, the timer fired, delete, drain)
 *   MEM_WAIT   in the fetch memory FIFO -> READING (fetch_mem_release)
 *   READING    thread-pool read of the local spans and/or rn_tier_read of
 *              the remote parts (tiered shards, below the log's start) ->
 *              DONE once every one completed (fetch_read_done)
 *   DONE       the callback ran; the timer handle is closing, then freed */
typedef enum {
  FETCH_RESOLVING,
  FETCH_PLANNING,
  FETCH_PARKED,
  FETCH_MEM_WAIT,
  FETCH_READING,
  FETCH_DONE,
} fetch_state_t;

struct fetch_op {
  rn_engine_t *eng;
  rn_stream_t *st;
  rn_core_fetch_cb cb;
  void *ctx;
  uint32_t max_bytes;
  int64_t deadline_ms; /* 0 = do not wait */
  uint32_t replica_id; /* a follower's replica fetch: its broker id; 0 = a consumer */
  fetch_state_t state;
  size_t mem;          /* fetch memory charged to this op (stats.fetch_memory_bytes) */
  fetch_op_t *mem_next;
  uv_timer_t timer;
  uv_work_t work;
  size_t local_budget; /* bytes the thread-pool read may take (the rest went to remote parts) */
  unsigned reads;      /* READING: the thread-pool read and remote reads not completed; RESOLVING: remote lookups */
  size_t n;
  fetch_part_t *parts;
};

static void fetch_try(fetch_op_t *op);
static void fetch_read(fetch_op_t *op);

/* ---- the fetch memory budget (opts.max_fetch_memory_bytes) -------------------------------
 * A fetch is charged its max bytes when its read starts, then what its
 * buffers really hold once read; the charge goes when the buffers are freed
 * (fetch_free_cb, or rn_core_fetch_release for buffers a caller held until
 * its socket write completed). A fetch that does not fit waits in FIFO
 * order (spans stay pinned); nothing fails for lack of budget, and only
 * fetches wait: produce never touches this budget. */

static bool fetch_mem_fits(const rn_engine_t *eng, size_t need) {
  uint64_t max = eng->opts.max_fetch_memory_bytes, used = eng->stats.fetch_memory_bytes;
  return max == 0 || used == 0 || used + need <= max;
}

static void fetch_mem_release(rn_engine_t *eng, size_t bytes) {
  assert(eng->stats.fetch_memory_bytes >= bytes);
  eng->stats.fetch_memory_bytes -= bytes;
  fetch_op_t *op;
  while ((op = eng->fetch_wait_head) != NULL && fetch_mem_fits(eng, op->max_bytes)) {
    eng->fetch_wait_head = op->mem_next;
    if (eng->fetch_wait_head == NULL) eng->fetch_wait_tail = NULL;
    op->mem_next = NULL;
    assert(op->state == FETCH_MEM_WAIT);
    eng->stats.fetch_memory_waiting--;
    fetch_read(op);
  }
}

static void fetch_free_cb(uv_handle_t *h) {
  fetch_op_t *op = h->data;
  if (op->mem) fetch_mem_release(op->eng, op->mem);
  for (size_t i = 0; i < op->n; i++) free(op->parts[i].buf);
  free(op->parts);
  free(op);
}

/* PARKED -> PLANNING: off every waiter list, timer stopped. */
static void unpark(fetch_op_t *op) {
  if (op->state != FETCH_PARKED) return;
  op->state = FETCH_PLANNING;
  uv_timer_stop(&op->timer);
  for (size_t i = 0; i < op->n; i++) {
    rn__waiter_t *w = &op->parts[i].waiter;
    if (!w->linked) continue;
    if (w->prev)
      w->prev->next = w->next;
    else
      w->sh->waiters = w->next;
    if (w->next) w->next->prev = w->prev;
    w->linked = false;
    w->prev = w->next = NULL;
  }
}

/* The fetch whose callback is running (rn_core_fetch_hold). */
static _Thread_local fetch_op_t *replying;

typedef struct fetch_hold {
  rn_engine_t *eng;
  size_t mem; /* fetch memory charged to the held buffers */
  size_t n;
  uint8_t *bufs[];
} fetch_hold_t;

void *rn_core_fetch_hold(rn_core_t *eng) {
  fetch_op_t *op = replying;
  if (op == NULL || op->eng != eng) return NULL;
  size_t n = 0;
  for (size_t i = 0; i < op->n; i++) n += op->parts[i].buf != NULL;
  if (n == 0) return NULL;
  fetch_hold_t *h = malloc(sizeof(*h) + n * sizeof(h->bufs[0]));
  if (!h) return NULL; /* the caller copies instead */
  h->eng = eng;
  h->mem = 0;
  h->n = 0;
  for (size_t i = 0; i < op->n; i++) {
    if (op->parts[i].buf == NULL) continue;
    h->bufs[h->n++] = op->parts[i].buf; /* the result keeps pointing at it */
    h->mem += op->parts[i].len;
    op->parts[i].buf = NULL;
  }
  /* The charge moves with the buffers (op->mem is the sum of the lens). */
  h->mem = h->mem < op->mem ? h->mem : op->mem;
  op->mem -= h->mem;
  return h;
}

void rn_core_fetch_release(void *token) {
  fetch_hold_t *h = token;
  if (h == NULL) return;
  for (size_t i = 0; i < h->n; i++) free(h->bufs[i]);
  rn_engine_t *eng = h->eng;
  size_t mem = h->mem;
  free(h);
  if (mem) fetch_mem_release(eng, mem);
}

static void fetch_reply(fetch_op_t *op) {
  rn_engine_t *eng = op->eng;
  rn_arena_t a = {0};
  rn_core_fetch_shard_result_t *results = rn_arena_alloc(&a, (op->n + 1) * sizeof(*results));
  for (size_t i = 0; i < op->n; i++) {
    fetch_part_t *p = &op->parts[i];
    rn_core_fetch_shard_result_t *res = &results[i];
    res->shard = p->shard;
    res->offset = p->offset;
    res->next_offset = p->offset;
    if (p->sh && p->sh->log) {
      res->start_offset = rn__shard_start(p->sh);
      res->committed = rn__shard_visible_end(p->sh);
      res->end_offset = op->replica_id ? rn_log_end(p->sh->log) : res->committed;
      res->leader_epoch = p->sh->leader_epoch;
    }
    rn_err_t err = p->err ? p->err : p->read_err;
    if (err) {
      res->err = err;
      res->msg = p->why[0] ? p->why : rn_strerror(err);
      continue;
    }
    res->batches = p->buf;
    res->batches_len = p->len;
    /* next_offset: after the last batch returned. */
    size_t at = 0;
    while (at < p->len) {
      rn_batch_header_t h;
      if (rn_batch_header_decode(p->buf + at, p->len - at, &h)) break;
      res->next_offset = rn_batch_last_offset(&h) + 1;
      eng->stats.records_out += h.record_count;
      if (p->sh) p->sh->metrics.records_out += h.record_count;
      at += h.batch_length;
    }
    eng->stats.bytes_out += p->len;
    if (p->sh) p->sh->metrics.bytes_out += p->len;
  }
  rn_core_fetch_result_t r = {0};
  r.results = results;
  r.nresults = op->n;
  op->state = FETCH_DONE;
  replying = op;
  op->cb(op->ctx, &r);
  replying = NULL;
  rn_arena_free(&a);
  rn__stream_unref(eng, op->st);
  eng->pending_work--;
  uv_close((uv_handle_t *)&op->timer, fetch_free_cb);
}

static void fetch_work(uv_work_t *w) {
  fetch_op_t *op = w->data;
  size_t budget = op->local_budget;
  for (size_t i = 0; i < op->n; i++) {
    fetch_part_t *p = &op->parts[i];
    if (!p->span.seg) continue;
    size_t cap = p->max_bytes < budget ? p->max_bytes : budget;
    if (cap < 4096) cap = 4096;
    p->buf = malloc(cap);
    if (!p->buf) {
      p->read_err = RN_ENOMEM;
      continue;
    }
    rn_err_t err = rn_log_span_read(&p->span, p->buf, cap, &p->len);
    if (err == RN_ETOOLARGE && p->len <= RN_BATCH_MAX_SIZE) {
      /* At least one whole batch, even past max_bytes, so the reader advances. */
      uint8_t *nb = realloc(p->buf, p->len);
      if (nb) {
        p->buf = nb;
        cap = p->len;
        err = rn_log_span_read(&p->span, p->buf, cap, &p->len);
      }
    }
    if (err) {
      p->read_err = err;
      p->len = 0;
      if (err == RN_ECORRUPT)
        snprintf(p->why, sizeof(p->why), "shard %u: the batch at offset %" PRIu64 " failed verification on disk; it is not served",
                 p->shard, p->offset);
    }
    budget = p->len < budget ? budget - p->len : 0;
    if (budget == 0) break;
  }
}

/* One read of a READING fetch completed; the last one answers. */
static void fetch_read_done(fetch_op_t *op) {
  if (--op->reads) return;
  /* The charge becomes what the buffers hold (less than max_bytes, or one
   * whole batch more). */
  size_t held = 0;
  for (size_t i = 0; i < op->n; i++) held += op->parts[i].buf ? op->parts[i].len : 0;
  op->eng->stats.fetch_memory_bytes += held;
  size_t was = op->mem;
  op->mem = held;
  if (was) fetch_mem_release(op->eng, was);
  fetch_reply(op);
}

static void fetch_after(uv_work_t *w, int status) {
  fetch_op_t *op = w->data;
  for (size_t i = 0; i < op->n; i++) {
    fetch_part_t *p = &op->parts[i];
    if (!p->span.seg) continue;
    if (p->sh && p->sh->log) rn_log_span_release(p->sh->log, &p->span);
    p->span.seg = NULL;
    if (status && !p->read_err) p->read_err = RN_EIO;
    if (p->read_err == RN_ECORRUPT) rn__eng_say(op->eng, RN_LVL_ERROR, "%s: %s", p->sh ? p->sh->dir : "?", p->why);
    if (!p->read_err && p->buf && p->limit != UINT64_MAX) {
      /* Uncommitted batches (a LEADER's tail) are not a consumer's. */
      size_t at = 0;
      rn_batch_header_t h;
      while (at < p->len && rn_batch_header_decode(p->buf + at, p->len - at, &h) == 0 && h.base_offset < p->limit)
        at += h.batch_length;
      p->len = at;
    }
  }
  fetch_read_done(op);
}

/* A remote part's rn_tier_read completed: the batches are the part's buffer
 * (freed with the op, or held like a local read's). */
static void fetch_remote_done(void *arg, rn_err_t err, uint8_t *data, size_t len) {
  fetch_part_t *p = arg;
  fetch_op_t *op = p->op;
  if (err) {
    free(data);
    p->read_err = err;
    p->len = 0;
    snprintf(p->why, sizeof(p->why), "shard %u: reading offset %" PRIu64 " from the store failed (%s): %s", p->shard,
             p->offset, rn_err_name(err), rn__tier_err_text(err));
    if (err == RN_ECORRUPT) rn__eng_say(op->eng, RN_LVL_ERROR, "stream %s: %s", op->st->name, p->why);
  } else {
    p->buf = data;
    p->len = len;
  }
  fetch_read_done(op);
}

static void on_fetch_timer(uv_timer_t *t) {
  fetch_op_t *op = t->data;
  unpark(op);
  op->deadline_ms = 0; /* no more waiting */
  fetch_try(op);
}

/* PLANNING: plan reads; read on the thread pool if anything is there,
 * otherwise park until an append, the deadline or shutdown. */
static void fetch_try(fetch_op_t *op) {
  rn_engine_t *eng = op->eng;
  assert(op->state == FETCH_PLANNING);
  bool deleted = op->st->state != RN__STREAM_ACTIVE;
  bool any = false;
  for (size_t i = 0; i < op->n; i++) {
    fetch_part_t *p = &op->parts[i];
    if (!p->sh || p->err) continue;
    if (deleted) {
      p->err = RN_ENOSTREAM;
      snprintf(p->why, sizeof(p->why), "stream %s was deleted", op->st->name);
      continue;
    }
    p->remote = rn__shard_remote(p->sh, p->offset); /* below the log's start: in the store */
    if (p->remote) {
      any = true;
      continue;
    }
    if (!op->replica_id && p->sh->role != RN_CORE_ROLE_SOLO && p->sh->role != RN_CORE_ROLE_LEADER) {
      p->err = RN_ENOTLEADER; /* leadership moved while it was parked */
      rn__shard_not_leader_msg(p->sh, p->why, sizeof p->why);
      continue;
    }
    rn_err_t err = rn_log_span_plan(p->sh->log, p->offset, &p->span);
    if (err) {
      p->err = err;
      snprintf(p->why, sizeof(p->why), "offset %" PRIu64 " is outside [%" PRIu64 ", %" PRIu64 "] of shard %u", p->offset,
               rn__shard_start(p->sh), rn_log_end(p->sh->log), p->shard);
      continue;
    }
    p->limit = UINT64_MAX;
    if (p->span.seg && !op->replica_id && p->sh->role == RN_CORE_ROLE_LEADER) {
      uint64_t vis = rn__shard_visible_end(p->sh);
      if (p->offset >= vis)
        rn_log_span_release(p->sh->log, &p->span); /* nothing committed past it yet: wait */
      else
        p->limit = vis;
    }
    if (p->span.seg) any = true;
  }
  bool wait = !any && !deleted && !eng->draining && op->deadline_ms > rn__now_ms(eng);
  if (wait) {
    bool errors = false;
    for (size_t i = 0; i < op->n; i++) errors |= op->parts[i].err != 0 || !op->parts[i].sh;
    wait = !errors;
  }
  if (wait) {
    op->state = FETCH_PARKED;
    for (size_t i = 0; i < op->n; i++) {
      rn__waiter_t *w = &op->parts[i].waiter;
      w->op = op;
      w->sh = op->parts[i].sh;
      w->prev = NULL;
      w->next = w->sh->waiters;
      if (w->next) w->next->prev = w;
      w->sh->waiters = w;
      w->linked = true;
    }
    uv_timer_start(&op->timer, on_fetch_timer, (uint64_t)(op->deadline_ms - rn__now_ms(eng)), 0);
    return;
  }
  if (!any) return fetch_reply(op);
  if (eng->fetch_wait_head != NULL || !fetch_mem_fits(eng, op->max_bytes)) {
    op->state = FETCH_MEM_WAIT; /* fetch_mem_release starts the read */
    if (eng->fetch_wait_tail)
      eng->fetch_wait_tail->mem_next = op;
    else
      eng->fetch_wait_head = op;
    eng->fetch_wait_tail = op;
    eng->stats.fetch_memory_waiting++;
    eng->stats.fetch_memory_waits++;
    return;
  }
  fetch_read(op);
}

/* -> READING: charge the fetch's max bytes to the fetch memory budget,
 * start the remote parts' reads (each takes its share of the budget in
 * request order, as local parts do) and read the planned local spans on the
 * thread pool with what is left. */
static void fetch_read(fetch_op_t *op) {
  rn_engine_t *eng = op->eng;
  op->mem = op->max_bytes;
  eng->stats.fetch_memory_bytes += op->mem;
  op->state = FETCH_READING;
  op->reads = 1; /* a guard while submitting */
  size_t budget = op->max_bytes;
  bool local = false;
  for (size_t i = 0; i < op->n; i++) {
    fetch_part_t *p = &op->parts[i];
    local |= p->span.seg != NULL;
    if (!p->remote || p->err) continue;
    if (budget == 0) continue; /* as a local part past the budget: nothing this time */
    size_t cap = p->max_bytes < budget ? p->max_bytes : budget;
    if (cap < 4096) cap = 4096;
    budget = cap < budget ? budget - cap : 0;
    op->reads++;
    rn_err_t err = rn_tier_read(p->sh->tier, p->offset, cap, fetch_remote_done, p);
    if (err) fetch_remote_done(p, err, NULL, 0); /* no callback will come */
  }
  op->local_budget = budget;
  if (local) {
    op->reads++;
    op->work.data = op;
    if (uv_queue_work(eng->loop, &op->work, fetch_work, fetch_after)) {
      for (size_t i = 0; i < op->n; i++)
        if (op->parts[i].span.seg) op->parts[i].read_err = RN_EIO;
      fetch_after(&op->work, 0);
    }
  }
  fetch_read_done(op);
}

/* Wake the fetches parked on sh (replicas_only: the followers' replica
 * fetches, for data that is durable on a LEADER but not committed yet). A
 * woken fetch may park again on sh, so the list is walked from a snapshot;
 * an op stays allocated until its timer handle closed (a later loop turn),
 * so its state tells whether it is still parked. */
static void wake_list(rn_engine_t *eng, rn_shard_t *sh, bool replicas_only) {
  (void)eng;
  size_t n = 0;
  for (rn__waiter_t *w = sh->waiters; w; w = w->next) n++;
  fetch_op_t *stack[32];
  fetch_op_t **ops = n <= 32 ? stack : rn_xmalloc(n * sizeof(*ops));
  size_t k = 0;
  for (rn__waiter_t *w = sh->waiters; w; w = w->next)
    if (!replicas_only || w->op->replica_id) ops[k++] = w->op;
  for (size_t i = 0; i < k; i++) {
    fetch_op_t *op = ops[i];
    if (op->state != FETCH_PARKED) continue; /* woken already (it waited on several shards) */
    unpark(op); /* removes op's waiters from every shard, including this one */
    fetch_try(op);
  }
  if (ops != stack) free(ops);
}

void rn__shard_wake(rn_engine_t *eng, rn_shard_t *sh) {
  if (sh->waiters) wake_list(eng, sh, sh->role == RN_CORE_ROLE_LEADER);
}

void rn__shard_wake_committed(rn_engine_t *eng, rn_shard_t *sh) {
  if (sh->waiters) wake_list(eng, sh, false);
}

void rn__shard_wake_all(rn_engine_t *eng, rn_shard_t *sh) {
  while (sh->waiters) {
    fetch_op_t *op = sh->waiters->op;
    unpark(op);
    op->deadline_ms = 0;
    fetch_try(op);
  }
  (void)eng;
}

/* Thread pool: resolve TIMESTAMP positions from their planned spans. */
static void ts_work(uv_work_t *w) {
  fetch_op_t *op = w->data;
  for (size_t i = 0; i < op->n; i++) {
    fetch_part_t *p = &op->parts[i];
    if (!p->ts_pending) continue;
    p->err = rn_log_time_resolve(&p->ts_span, p->ts, &p->offset);
    if (p->err) snprintf(p->why, sizeof(p->why), "shard %u: timestamp lookup failed (%s)", p->shard, rn_err_name(p->err));
  }
}

/* The last remote timestamp lookup (or the submitting guard) moves the
 * fetch on: RESOLVING -> PLANNING. */
static void ts_step(fetch_op_t *op) {
  if (--op->reads) return;
  op->state = FETCH_PLANNING;
  fetch_try(op);
}

/* A timestamp older than the shard's local records, looked up in the store. */
static void ts_remote_done(void *arg, rn_err_t err, uint64_t offset) {
  fetch_part_t *p = arg;
  fetch_op_t *op = p->op;
  p->ts_remote = false;
  if (err) {
    p->err = err;
    snprintf(p->why, sizeof(p->why), "shard %u: timestamp lookup in the store failed (%s): %s", p->shard,
             rn_err_name(err), rn__tier_err_text(err));
  } else {
    p->offset = offset;
  }
  ts_step(op);
}

/* RESOLVING -> PLANNING, through the store for timestamps older than what
 * a tiered shard keeps locally. */
static void ts_after(uv_work_t *w, int status) {
  fetch_op_t *op = w->data;
  op->reads = 1; /* a guard while submitting */
  for (size_t i = 0; i < op->n; i++) {
    fetch_part_t *p = &op->parts[i];
    if (!p->ts_pending) continue;
    p->ts_pending = false;
    if (p->sh && p->sh->log) rn_log_span_release(p->sh->log, &p->ts_span);
    if (status && !p->err) p->err = RN_EIO;
    if (!p->err && p->sh && rn__shard_time_remote(p->sh, p->offset)) {
      p->ts_remote = true;
      op->reads++;
      rn_err_t err = rn_tier_find_time(p->sh->tier, p->ts, ts_remote_done, p);
      if (err) ts_remote_done(p, err, 0);
    }
  }
  ts_step(op); /* drops the guard */
}

void rn_core_fetch(rn_core_t *eng, const rn_core_fetch_req_t *r, rn_core_fetch_cb cb, void *ctx) {
  bool any_ts = false;
  const char *name = r->stream ? r->stream : "";
  rn_stream_t *st = rn__stream_find(eng, name);
  if (!st || st->state != RN__STREAM_ACTIVE || (r->stream_uid && st->uid != r->stream_uid)) {
    char msg[300];
    snprintf(msg, sizeof msg, "stream %s not found%s", name, st && r->stream_uid ? " (not that incarnation)" : "");
    rn_core_fetch_result_t fail = {.err = RN_ENOSTREAM, .msg = msg};
    cb(ctx, &fail);
    return;
  }
  if (!r->replica_id && !r->forwarded && r->nshards > 0 && eng->repl.forward_fetch) {
    /* Any broker serves a consumer: a fetch of shards led elsewhere goes
     * to their leader when one broker leads them all. */
    bool local = false;
    for (size_t i = 0; i < r->nshards && !local; i++) {
      uint32_t s = r->shards[i].shard;
      local = s >= st->nshards || st->shards[s].role == RN_CORE_ROLE_SOLO || st->shards[s].role == RN_CORE_ROLE_LEADER;
    }
    if (!local && eng->repl.forward_fetch(eng->repl.arg, st, r, cb, ctx)) return;
  }
  fetch_op_t *op = rn_xcalloc(1, sizeof(*op));
  op->eng = eng;
  op->st = st;
  op->cb = cb;
  op->ctx = ctx;
  op->state = FETCH_PLANNING;
  st->refs++;
  eng->pending_work++;
  uv_timer_init(eng->loop, &op->timer);
  op->timer.data = op;
  op->max_bytes = r->max_bytes ? r->max_bytes : RN_CORE_FETCH_DEFAULT_BYTES;
  if (op->max_bytes > eng->opts.max_fetch_bytes) op->max_bytes = eng->opts.max_fetch_bytes;
  uint32_t wait = r->max_wait_ms < eng->opts.max_wait_ms ? r->max_wait_ms : eng->opts.max_wait_ms;
  op->deadline_ms = wait ? rn__now_ms(eng) + wait : 0;
  op->replica_id = r->replica_id;
  op->n = r->nshards;
  op->parts = rn_xcalloc(op->n + 1, sizeof(*op->parts));
  for (size_t i = 0; i < op->n; i++) {
    const rn_core_shard_pos_t *sf = &r->shards[i];
    fetch_part_t *p = &op->parts[i];
    p->op = op;
    p->shard = sf->shard;
    p->max_bytes = sf->max_bytes ? sf->max_bytes : op->max_bytes;
    if (sf->shard >= st->nshards) {
      p->err = RN_ENOSHARD;
      snprintf(p->why, sizeof(p->why), "stream %s has no shard %u (it has %u)", st->name, sf->shard, st->nshards);
      continue;
    }
    p->sh = &st->shards[sf->shard];
    if (r->replica_id) {
      if (p->sh->role != RN_CORE_ROLE_LEADER) {
        p->err = RN_ENOTLEADER;
        rn__shard_not_leader_msg(p->sh, p->why, sizeof p->why);
        continue;
      }
      if (sf->kind != RN_CORE_POS_OFFSET || sf->value < 0) {
        p->err = RN_EINVAL;
        snprintf(p->why, sizeof p->why, "a replica fetch reads from an offset (its log end)");
        continue;
      }
      rn_err_t e = eng->repl.replica_fetch
                       ? eng->repl.replica_fetch(eng->repl.arg, p->sh, r->replica_id, r->leader_epoch, (uint64_t)sf->value)
                       : RN_ENOTLEADER;
      if (e) {
        p->err = e;
        snprintf(p->why, sizeof p->why, "stream %s shard %u: replica fetch of broker %u at epoch %u refused: %s",
                 st->name, sf->shard, r->replica_id, r->leader_epoch, rn_strerror(e));
        continue;
      }
    } else if (p->sh->role != RN_CORE_ROLE_SOLO && p->sh->role != RN_CORE_ROLE_LEADER) {
      p->err = RN_ENOTLEADER;
      rn__shard_not_leader_msg(p->sh, p->why, sizeof p->why);
      continue;
    }
    if (sf->kind == RN_CORE_POS_TIMESTAMP) {
      p->ts = sf->value;
      p->err = rn_log_time_plan(p->sh->log, sf->value, &p->ts_span);
      p->ts_pending = p->err == 0;
      any_ts |= p->ts_pending;
      continue;
    }
    p->err = resolve(p->sh, r->replica_id != 0, sf->kind, sf->value, &p->offset, p->why, sizeof(p->why));
  }
  if (!any_ts) return fetch_try(op);
  op->state = FETCH_RESOLVING;
  op->work.data = op;
  if (uv_queue_work(eng->loop, &op->work, ts_work, ts_after)) ts_after(&op->work, UV_EIO);
}

/* ---- a shard's offset at a time, for subsystems ---------------------------------------------- */

typedef struct offset_at_job {
  uv_work_t work;
  rn_engine_t *eng;
  rn_shard_t *sh;
  int64_t ts;
  rn_log_span_t span;
  rn_err_t err;
  uint64_t offset;
  rn_core_offset_cb cb;
  void *ctx;
} offset_at_job_t;

static void offset_at_work(uv_work_t *w) {
  offset_at_job_t *j = w->data;
  j->err = rn_log_time_resolve(&j->span, j->ts, &j->offset);
}

/* The store's answer for a timestamp older than the shard's local records. */
static void offset_at_remote(void *arg, rn_err_t err, uint64_t offset) {
  offset_at_job_t *j = arg;
  j->eng->pending_work--;
  j->cb(j->ctx, err, err ? 0 : offset);
  free(j);
}

static void offset_at_after(uv_work_t *w, int status) {
  offset_at_job_t *j = w->data;
  j->eng->pending_work--;
  if (j->sh->log) rn_log_span_release(j->sh->log, &j->span);
  if (status && !j->err) j->err = RN_EIO;
  if (!j->err && rn__shard_time_remote(j->sh, j->offset)) {
    j->eng->pending_work++;
    rn_err_t err = rn_tier_find_time(j->sh->tier, j->ts, offset_at_remote, j);
    if (err) offset_at_remote(j, err, 0);
    return;
  }
  j->cb(j->ctx, j->err, j->err ? 0 : j->offset);
  free(j);
}

void rn_core_shard_offset_at(rn_core_t *core, rn_core_shard_t *sh, int64_t ts_ms, rn_core_offset_cb cb, void *ctx) {
  offset_at_job_t *j = calloc(1, sizeof(*j));
  if (!j) {
    cb(ctx, RN_ENOMEM, 0);
    return;
  }
  rn_err_t err = sh->log ? rn_log_time_plan(sh->log, ts_ms, &j->span) : RN_ELOGFAILED;
  if (err) {
    free(j);
    cb(ctx, err, 0);
    return;
  }
  j->eng = core;
  j->sh = sh;
  j->ts = ts_ms;
  j->cb = cb;
  j->ctx = ctx;
  j->work.data = j;
  rn__queue_work(core, &j->work, offset_at_work, offset_at_after);
}
