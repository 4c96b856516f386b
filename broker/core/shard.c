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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

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

static void window_push(rn__producer_t *p, int32_t seq, uint32_t count, uint64_t base, bool durable) {
  if (p->nwin == RN__PRODUCER_WINDOW) {
    memmove(p->win, p->win + 1, (RN__PRODUCER_WINDOW - 1) * sizeof(p->win[0]));
    p->nwin--;
  }
  p->win[p->nwin].seq = seq;
  p->win[p->nwin].count = count;
  p->win[p->nwin].base = base;
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
  window_push(p, h->base_sequence, h->record_count, h->base_offset, durable);
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
    err = rn_log_read(sh->log, from, buf, cap, &len);
    if (err == RN_ETOOLARGE) {
      uint8_t *nb = realloc(buf, len);
      if (!nb) {
        err = RN_ENOMEM;
        break;
      }
      buf = nb;
      cap = len;
      continue;
    }
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
} produce_item_t;

struct produce_op {
  rn_engine_t *eng;
  rn_stream_t *st;
  rn_engine_reply_cb cb;
  void *ctx;
  unsigned pending;
  rn_arena_t arena;
  Runnel__ProduceResponse pr;
  produce_item_t *items;
};

static void produce_finish(produce_op_t *op) {
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  resp.op_case = RUNNEL__RESPONSE__OP_PRODUCE;
  resp.produce = &op->pr;
  op->cb(op->ctx, &resp);
  rn__stream_unref(op->eng, op->st);
  rn_arena_free(&op->arena);
  free(op->items);
  free(op);
}

static void produce_item_done(produce_op_t *op) {
  if (--op->pending == 0) produce_finish(op);
}

/* Per-shard counters and the append latency histogram (engine.h). */
static void shard_note_append(rn_shard_t *sh, const produce_item_t *it, rn_err_t err) {
  rn_engine_shard_stats_t *m = &sh->metrics;
  if (err) {
    m->append_errors++;
    return;
  }
  m->records_in += it->records;
  m->bytes_in += it->bytes;
  rn_hist_record(&m->append, rn_hist_latency_bounds, RN_HIST_BUCKETS, (double)(uv_hrtime() - it->t0_ns) / 1e9);
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

static void on_appended(void *arg, rn_err_t err, uint64_t base) {
  produce_item_t *it = arg;
  produce_op_t *op = it->op;
  rn_engine_t *eng = op->eng;
  Runnel__ShardBatchResult *r = op->pr.results[it->i];
  it->sh->inflight--;
  eng->inflight_appends--;
  shard_note_append(it->sh, it, err);
  if (err) {
    if (it->producer_id) producer_forget(it->sh, it->producer_id, it->epoch, it->seq);
    rn__fill_error(&op->arena, &r->error, err, "shard %u: append failed: %s%s", it->sh->index, rn_strerror(err),
                   rn_err_retriable(err) ? "; nothing was stored, retry" : "");
  } else {
    r->base_offset = base;
    it->sh->last_append_ms = rn__now_ms(eng);
    if (it->producer_id) {
      rn__producer_t *p = producer_get(it->sh, it->producer_id, false);
      for (uint32_t k = 0; p && k < p->nwin; k++)
        if (p->win[k].seq == it->seq) p->win[k].durable = true;
    }
    rn__shard_wake(eng, it->sh);
  }
  produce_item_done(op);
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

void rn__handle_produce(rn_engine_t *eng, const Runnel__Request *req, rn_engine_reply_cb cb, void *ctx) {
  const Runnel__ProduceRequest *r = req->produce;
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__Error e;
  char msg[300];
  if (eng->draining) {
    rn_engine_error(&e, RN_ESHUTDOWN, "broker is shutting down");
    resp.error = &e;
    return cb(ctx, &resp);
  }
  rn_stream_t *st = r ? rn__stream_find(eng, r->stream) : NULL;
  if (!st || st->state != RN__STREAM_ACTIVE) {
    snprintf(msg, sizeof(msg), "stream %s not found", r ? r->stream : "");
    rn_engine_error(&e, RN_ENOSTREAM, msg);
    resp.error = &e;
    return cb(ctx, &resp);
  }
  produce_op_t *op = calloc(1, sizeof(*op));
  if (!op) abort();
  op->eng = eng;
  op->st = st;
  op->cb = cb;
  op->ctx = ctx;
  st->refs++;
  size_t n = r->n_batches;
  runnel__produce_response__init(&op->pr);
  op->pr.n_results = n;
  op->pr.results = rn_arena_alloc(&op->arena, (n + 1) * sizeof(*op->pr.results));
  op->items = calloc(n + 1, sizeof(*op->items));
  if (!op->items) abort();
  op->pending = 1; /* guard until every batch was submitted */
  int64_t now = rn__now_ms(eng);
  for (size_t i = 0; i < n; i++) {
    const Runnel__ShardBatch *sb = r->batches[i];
    Runnel__ShardBatchResult *res = rn_arena_alloc(&op->arena, sizeof(*res));
    runnel__shard_batch_result__init(res);
    res->shard = sb->shard;
    op->pr.results[i] = res;
    if (sb->shard >= st->nshards) {
      rn__fill_error(&op->arena, &res->error, RN_ENOSHARD, "stream %s has no shard %u (it has %u)", st->name, sb->shard, st->nshards);
      continue;
    }
    rn_shard_t *sh = &st->shards[sb->shard];
    if (sb->batch.len > eng->opts.max_batch_bytes) {
      rn__fill_error(&op->arena, &res->error, RN_ETOOLARGE, "batch is %zu bytes; max_batch_bytes is %u", sb->batch.len,
                     eng->opts.max_batch_bytes);
      continue;
    }
    rn_batch_header_t hdr;
    char why[200];
    rn_err_t err = check_records(eng, sb->batch.data, sb->batch.len, &hdr, why, sizeof(why));
    if (err) {
      rn__fill_error(&op->arena, &res->error, err, "shard %u: %s", sb->shard, why);
      continue;
    }
    rn__producer_t *p = NULL;
    if (hdr.producer_id && hdr.base_sequence >= 0) {
      p = producer_get(sh, hdr.producer_id, true);
      if (!p) {
        rn__fill_error(&op->arena, &res->error, RN_ENOMEM, "out of memory");
        continue;
      }
      if (p->nwin == 0 && p->next_seq == 0 && p->epoch == 0) {
        p->epoch = hdr.producer_epoch; /* first batch from this producer here */
        p->next_seq = hdr.base_sequence;
      }
      if (hdr.producer_epoch < p->epoch) {
        rn__fill_error(&op->arena, &res->error, RN_EFENCED, "producer %" PRIu64 " epoch %u is older than %u",
                       hdr.producer_id, hdr.producer_epoch, p->epoch);
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
            rn__fill_error(&op->arena, &res->error, RN_ESEQUENCE, "sequence %d was appended with %u records, not %u",
                           hdr.base_sequence, p->win[k].count, hdr.record_count);
          } else if (!p->win[k].durable) {
            rn__fill_error(&op->arena, &res->error, RN_EAGAIN,
                           "duplicate of a batch still being written (sequence %d); retry", hdr.base_sequence);
          } else {
            res->base_offset = p->win[k].base;
            res->duplicate = true;
          }
          break;
        }
        if (!found)
          rn__fill_error(&op->arena, &res->error, RN_ESEQUENCE, "producer %" PRIu64 " sequence %d, expected %d",
                         hdr.producer_id, hdr.base_sequence, p->next_seq);
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
    it->bytes = sb->batch.len;
    it->t0_ns = uv_hrtime();
    uint64_t base = 0;
    /* check_records verified both checksums of exactly these bytes. */
    err = rn_log_append_verified(sh->log, sb->batch.data, sb->batch.len, 0, on_appended, it, &base);
    if (err) {
      sh->metrics.append_errors++;
      rn__fill_error(&op->arena, &res->error, err, "shard %u: %s%s", sb->shard,
                     err == RN_ELOGFAILED ? "the shard's log failed after a disk error; see the broker log" : rn_strerror(err),
                     rn_err_retriable(err) ? "; nothing was stored, retry" : "");
      continue;
    }
    if (p) {
      p->next_seq = seq_after(hdr.base_sequence, hdr.record_count);
      window_push(p, hdr.base_sequence, hdr.record_count, base, false);
    }
    (void)now;
    sh->inflight++;
    eng->inflight_appends++;
    eng->stats.records_in += hdr.record_count;
    eng->stats.bytes_in += sb->batch.len;
    op->pending++;
  }
  produce_item_done(op);
}

/* ---- positions ------------------------------------------------------------------------- */

/* Resolve a position to an absolute offset. */
static rn_err_t resolve(rn_shard_t *sh, Runnel__PositionKind kind, int64_t value, uint64_t *off, char *why, size_t whylen) {
  uint64_t start = rn_log_start(sh->log), end = rn_log_end(sh->log);
  switch (kind) {
  case RUNNEL__POSITION_KIND__POSITION_EARLIEST: *off = start; return 0;
  case RUNNEL__POSITION_KIND__POSITION_LATEST: *off = end; return 0;
  case RUNNEL__POSITION_KIND__POSITION_TIMESTAMP: return rn_log_find_time(sh->log, value, off);
  case RUNNEL__POSITION_KIND__POSITION_OFFSET:
    if (value < 0 || (uint64_t)value < start || (uint64_t)value > end) {
      snprintf(why, whylen, "offset %" PRId64 " is outside [%" PRIu64 ", %" PRIu64 "] of shard %u", value, start, end, sh->index);
      return RN_EOFFSET;
    }
    *off = (uint64_t)value;
    return 0;
  default: snprintf(why, whylen, "unknown position kind %d", (int)kind); return RN_EINVAL;
  }
}

void rn__handle_list_offsets(rn_engine_t *eng, const Runnel__Request *req, rn_engine_reply_cb cb, void *ctx) {
  const Runnel__ListOffsetsRequest *r = req->list_offsets;
  rn_stream_t *st = r ? rn__stream_find(eng, r->stream) : NULL;
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  rn_arena_t a = {0};
  if (!st || st->state != RN__STREAM_ACTIVE) {
    rn__fill_error(&a, &resp.error, RN_ENOSTREAM, "stream %s not found", r ? r->stream : "");
    cb(ctx, &resp);
    rn_arena_free(&a);
    return;
  }
  Runnel__ListOffsetsResponse lr = RUNNEL__LIST_OFFSETS_RESPONSE__INIT;
  size_t n = r->n_shards ? r->n_shards : st->nshards;
  lr.n_shards = n;
  lr.shards = rn_arena_alloc(&a, n * sizeof(*lr.shards));
  for (size_t i = 0; i < n; i++) {
    Runnel__ShardOffsets *so = rn_arena_alloc(&a, sizeof(*so));
    runnel__shard_offsets__init(so);
    lr.shards[i] = so;
    uint32_t idx = r->n_shards ? r->shards[i]->shard : (uint32_t)i;
    Runnel__PositionKind kind = r->n_shards ? r->shards[i]->kind : RUNNEL__POSITION_KIND__POSITION_LATEST;
    int64_t value = r->n_shards ? r->shards[i]->value : 0;
    so->shard = idx;
    if (idx >= st->nshards) {
      rn__fill_error(&a, &so->error, RN_ENOSHARD, "stream %s has no shard %u", st->name, idx);
      continue;
    }
    rn_shard_t *sh = &st->shards[idx];
    so->start_offset = rn_log_start(sh->log);
    so->end_offset = rn_log_end(sh->log);
    char why[200] = "";
    rn_err_t err = resolve(sh, kind, value, &so->offset, why, sizeof(why));
    if (err) rn__fill_error(&a, &so->error, err, "%s", why[0] ? why : rn_strerror(err));
  }
  resp.op_case = RUNNEL__RESPONSE__OP_LIST_OFFSETS;
  resp.list_offsets = &lr;
  cb(ctx, &resp);
  rn_arena_free(&a);
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
  uint32_t shard;
  rn_shard_t *sh; /* NULL when the part failed */
  uint64_t offset;
  uint32_t max_bytes;
  rn_err_t err;
  char why[200];
  rn_log_span_t span;
  uint8_t *buf;
  size_t len;
  rn_err_t read_err;
  rn__waiter_t waiter;
  /* A TIMESTAMP position: planned on the loop, resolved on the thread pool
   * before the first read (no disk I/O on the loop thread). */
  bool ts_pending;
  int64_t ts;
  rn_log_span_t ts_span;
} fetch_part_t;

struct fetch_op {
  rn_engine_t *eng;
  rn_stream_t *st;
  rn_engine_reply_cb cb;
  void *ctx;
  uint32_t max_bytes;
  int64_t deadline_ms; /* 0 = do not wait */
  bool parked, reading, done;
  bool mem_waiting;    /* on eng->fetch_wait_*: has data to read, waits for fetch memory */
  size_t mem;          /* fetch memory charged to this op (stats.fetch_memory_bytes) */
  fetch_op_t *mem_next;
  uv_timer_t timer;
  uv_work_t work;
  size_t n;
  fetch_part_t *parts;
};

static void fetch_try(fetch_op_t *op);
static void fetch_read(fetch_op_t *op);

/* ---- the fetch memory budget (opts.max_fetch_memory_bytes) -------------------------------
 * A fetch is charged its max bytes when its read starts, then what its
 * buffers really hold once read; the charge goes when the buffers are freed
 * (fetch_free_cb, or rn_engine_reply_release for buffers a reply held until
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
    op->mem_waiting = false;
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

static void unpark(fetch_op_t *op) {
  if (!op->parked) return;
  op->parked = false;
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

/* The fetch whose reply callback is running (rn_engine_reply_hold). */
static _Thread_local fetch_op_t *replying;

typedef struct fetch_hold {
  rn_engine_t *eng;
  size_t mem; /* fetch memory charged to the held buffers */
  size_t n;
  uint8_t *bufs[];
} fetch_hold_t;

void *rn_engine_reply_hold(rn_engine_t *eng) {
  fetch_op_t *op = replying;
  if (op == NULL || op->eng != eng) return NULL;
  size_t n = 0;
  for (size_t i = 0; i < op->n; i++) n += op->parts[i].buf != NULL;
  if (n == 0) return NULL;
  fetch_hold_t *h = malloc(sizeof(*h) + n * sizeof(h->bufs[0]));
  if (!h) return NULL; /* the server copies instead */
  h->eng = eng;
  h->mem = 0;
  h->n = 0;
  for (size_t i = 0; i < op->n; i++) {
    if (op->parts[i].buf == NULL) continue;
    h->bufs[h->n++] = op->parts[i].buf; /* the response keeps pointing at it */
    h->mem += op->parts[i].len;
    op->parts[i].buf = NULL;
  }
  /* The charge moves with the buffers (op->mem is the sum of the lens). */
  h->mem = h->mem < op->mem ? h->mem : op->mem;
  op->mem -= h->mem;
  return h;
}

void rn_engine_reply_release(void *token) {
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
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__FetchResponse fr = RUNNEL__FETCH_RESPONSE__INIT;
  fr.n_results = op->n;
  fr.results = rn_arena_alloc(&a, (op->n + 1) * sizeof(*fr.results));
  for (size_t i = 0; i < op->n; i++) {
    fetch_part_t *p = &op->parts[i];
    Runnel__ShardFetchResult *res = rn_arena_alloc(&a, sizeof(*res));
    runnel__shard_fetch_result__init(res);
    fr.results[i] = res;
    res->shard = p->shard;
    res->offset = p->offset;
    res->next_offset = p->offset;
    if (p->sh && p->sh->log) {
      res->start_offset = rn_log_start(p->sh->log);
      res->end_offset = rn_log_end(p->sh->log);
    }
    rn_err_t err = p->err ? p->err : p->read_err;
    if (err) {
      rn__fill_error(&a, &res->error, err, "%s", p->why[0] ? p->why : rn_strerror(err));
      continue;
    }
    res->batches.data = p->buf;
    res->batches.len = p->len;
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
  resp.op_case = RUNNEL__RESPONSE__OP_FETCH;
  resp.fetch = &fr;
  op->done = true;
  replying = op;
  op->cb(op->ctx, &resp);
  replying = NULL;
  rn_arena_free(&a);
  rn__stream_unref(eng, op->st);
  eng->pending_work--;
  uv_close((uv_handle_t *)&op->timer, fetch_free_cb);
}

static void fetch_work(uv_work_t *w) {
  fetch_op_t *op = w->data;
  size_t budget = op->max_bytes;
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

static void fetch_after(uv_work_t *w, int status) {
  fetch_op_t *op = w->data;
  op->reading = false;
  /* The charge becomes what the buffers hold (less than max_bytes, or one
   * whole batch more). */
  size_t held = 0;
  for (size_t i = 0; i < op->n; i++) held += op->parts[i].buf ? op->parts[i].len : 0;
  op->eng->stats.fetch_memory_bytes += held;
  size_t was = op->mem;
  op->mem = held;
  if (was) fetch_mem_release(op->eng, was);
  for (size_t i = 0; i < op->n; i++) {
    fetch_part_t *p = &op->parts[i];
    if (p->span.seg && p->sh && p->sh->log) rn_log_span_release(p->sh->log, &p->span);
    if (status && !p->read_err) p->read_err = RN_EIO;
    if (p->read_err == RN_ECORRUPT) rn__eng_say(op->eng, RN_LVL_ERROR, "%s: %s", p->sh ? p->sh->dir : "?", p->why);
  }
  fetch_reply(op);
}

static void on_fetch_timer(uv_timer_t *t) {
  fetch_op_t *op = t->data;
  unpark(op);
  op->deadline_ms = 0; /* no more waiting */
  fetch_try(op);
}

/* Plan reads; read on the thread pool if anything is there, otherwise park
 * until an append, the deadline or shutdown. */
static void fetch_try(fetch_op_t *op) {
  rn_engine_t *eng = op->eng;
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
    rn_err_t err = rn_log_span_plan(p->sh->log, p->offset, &p->span);
    if (err) {
      p->err = err;
      snprintf(p->why, sizeof(p->why), "offset %" PRIu64 " is outside [%" PRIu64 ", %" PRIu64 "] of shard %u", p->offset,
               rn_log_start(p->sh->log), rn_log_end(p->sh->log), p->shard);
      continue;
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
    op->parked = true;
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
    op->mem_waiting = true; /* fetch_mem_release starts the read */
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

/* Start the read of a fetch whose spans are planned: charge its max bytes
 * to the fetch memory budget and go to the thread pool. */
static void fetch_read(fetch_op_t *op) {
  rn_engine_t *eng = op->eng;
  op->mem = op->max_bytes;
  eng->stats.fetch_memory_bytes += op->mem;
  op->reading = true;
  op->work.data = op;
  if (uv_queue_work(eng->loop, &op->work, fetch_work, fetch_after)) {
    for (size_t i = 0; i < op->n; i++) op->parts[i].read_err = RN_EIO;
    fetch_after(&op->work, 0);
  }
}

static void wake_list(rn_engine_t *eng, rn_shard_t *sh) {
  (void)eng;
  while (sh->waiters) {
    fetch_op_t *op = sh->waiters->op;
    unpark(op); /* removes op's waiters from every shard, including this one */
    fetch_try(op);
  }
}

void rn__shard_wake(rn_engine_t *eng, rn_shard_t *sh) {
  if (sh->waiters) wake_list(eng, sh);
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

static void ts_after(uv_work_t *w, int status) {
  fetch_op_t *op = w->data;
  for (size_t i = 0; i < op->n; i++) {
    fetch_part_t *p = &op->parts[i];
    if (!p->ts_pending) continue;
    p->ts_pending = false;
    if (p->sh && p->sh->log) rn_log_span_release(p->sh->log, &p->ts_span);
    if (status && !p->err) p->err = RN_EIO;
  }
  fetch_try(op);
}

void rn__handle_fetch(rn_engine_t *eng, const Runnel__Request *req, rn_engine_reply_cb cb, void *ctx) {
  bool any_ts = false;
  const Runnel__FetchRequest *r = req->fetch;
  rn_stream_t *st = r ? rn__stream_find(eng, r->stream) : NULL;
  if (!st || st->state != RN__STREAM_ACTIVE) {
    Runnel__Response resp = RUNNEL__RESPONSE__INIT;
    rn_arena_t a = {0};
    rn__fill_error(&a, &resp.error, RN_ENOSTREAM, "stream %s not found", r ? r->stream : "");
    cb(ctx, &resp);
    rn_arena_free(&a);
    return;
  }
  fetch_op_t *op = calloc(1, sizeof(*op));
  if (!op) abort();
  op->eng = eng;
  op->st = st;
  op->cb = cb;
  op->ctx = ctx;
  st->refs++;
  eng->pending_work++;
  uv_timer_init(eng->loop, &op->timer);
  op->timer.data = op;
  op->max_bytes = r->max_bytes ? r->max_bytes : RN_ENGINE_FETCH_DEFAULT_BYTES;
  if (op->max_bytes > eng->opts.max_fetch_bytes) op->max_bytes = eng->opts.max_fetch_bytes;
  uint32_t wait = r->max_wait_ms < eng->opts.max_wait_ms ? r->max_wait_ms : eng->opts.max_wait_ms;
  op->deadline_ms = wait ? rn__now_ms(eng) + wait : 0;
  op->n = r->n_shards;
  op->parts = calloc(op->n + 1, sizeof(*op->parts));
  if (!op->parts) abort();
  for (size_t i = 0; i < op->n; i++) {
    const Runnel__ShardFetch *sf = r->shards[i];
    fetch_part_t *p = &op->parts[i];
    p->shard = sf->shard;
    p->max_bytes = sf->max_bytes ? sf->max_bytes : op->max_bytes;
    if (sf->shard >= st->nshards) {
      p->err = RN_ENOSHARD;
      snprintf(p->why, sizeof(p->why), "stream %s has no shard %u (it has %u)", st->name, sf->shard, st->nshards);
      continue;
    }
    p->sh = &st->shards[sf->shard];
    if (sf->kind == RUNNEL__POSITION_KIND__POSITION_TIMESTAMP) {
      p->ts = sf->value;
      p->err = rn_log_time_plan(p->sh->log, sf->value, &p->ts_span);
      p->ts_pending = p->err == 0;
      any_ts |= p->ts_pending;
      continue;
    }
    p->err = resolve(p->sh, sf->kind, sf->value, &p->offset, p->why, sizeof(p->why));
  }
  if (!any_ts) return fetch_try(op);
  op->work.data = op;
  if (uv_queue_work(eng->loop, &op->work, ts_work, ts_after)) ts_after(&op->work, UV_EIO);
}
