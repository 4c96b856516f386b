/*
 * producer.c — asynchronous, batching, retrying, idempotent producer.
 *
 * Records are appended (on the application's thread, under p->mu) to the
 * open batch of their (stream, shard). The producer is an agent of the
 * client's I/O thread: pump() runs there, seals the batches that are ready
 * (linger expired, full, flush requested) and sends them: one
 * ProduceRequest per stream per round, carrying at most one batch per
 * shard; several rounds (and so several requests) may be on the wire.
 *
 * Invariants:
 *   - Per shard a FIFO of batches. Batches are sealed in FIFO order, and a
 *     batch's base_sequence is assigned when it is sealed: the number of
 *     records this producer id sealed for the shard before it. Up to
 *     max_in_flight (<= RN__BROKER_WINDOW, the broker's idempotence window)
 *     sealed batches per shard are on the wire at once, always the oldest
 *     unresolved ones, sent in sequence order. A batch that is not full is
 *     sealed after its linger only when nothing of its shard is on the wire
 *     (adaptive batching: small batches do not multiply fdatasyncs).
 *   - A batch is "done" when its outcome is known (acked, duplicate, or
 *     failed for good). Done batches are reported strictly from the head of
 *     the FIFO, so delivery reports stay in send order per shard even when
 *     responses of different requests come back out of order.
 *   - A retriable failure (and an ESEQUENCE caused by an earlier batch of
 *     the same shard that is not appended: the broker saw a gap) puts the
 *     shard on hold: nothing new is sent until every batch of the shard on
 *     the wire has answered; then the unresolved batches are resent, oldest
 *     first, with their exact bytes (same producer id, epoch,
 *     base_sequence). The broker answers a batch it already appended with
 *     its original offset (duplicate), which counts as success: exactly once.
 *   - A batch that failed for sure (a non-retriable broker answer) is not
 *     appended, so neither is any later batch of its shard (the broker
 *     requires consecutive sequences). The shard then re-sequences: once
 *     nothing of it is on the wire, the later sealed batches are re-stamped
 *     with the sequences the failed batch gave back.
 *   - A batch whose fate stays unknown (retriable errors until the delivery
 *     timeout, or the producer closing) fails and makes the producer obtain
 *     a fresh producer id, so no later batch can be taken for it. A shard
 *     moves to a new producer id only when nothing of it is on the wire:
 *     its batches that were ever sent under the old id fail (their fate is
 *     unknown too), the never-sent ones are re-stamped under the new id.
 *   - Every record accepted by send() is reported exactly once; the
 *     buffered byte count and the outstanding record count go down only
 *     after its callback returned, so flush() means "callbacks done".
 *   - Callbacks run without p->mu held.
 *   - A sealed batch goes on the wire from its own buffer (the request frame
 *     refers to it: rn__client_submit_ref); every write reading it holds a
 *     reference (pbatch_t.refs), so it is neither freed nor re-stamped
 *     while one does. Reported batches go back to a small pool and are
 *     reused with their grown buffers.
 * Lock order: p->mu before the client's lock (pump submits while holding
 * p->mu); the client never calls into the producer while holding its own.
 */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_int.h"

/* Bytes a record is charged against max_buffered_bytes besides its
 * payload. */
#define RN__RECORD_OVERHEAD 32u
/* Cap on the batches of one ProduceRequest (the broker's default frame
 * limit is 16 MiB). */
#define RN__MAX_REQUEST_BYTES (8u << 20)
/* Batches per (producer, shard) the broker remembers for answering retries
 * (RN__PRODUCER_WINDOW in broker/core/core_int.h, docs/protocol.md). */
#define RN__BROKER_WINDOW 5u
/* Reported batches kept for reuse (their builder keeps its grown buffer,
 * so a new batch neither reallocates while it fills nor faults in fresh
 * pages), at most this many and at most max_buffered_bytes / 4 of
 * capacity. */
#define RN__POOL_MAX 16u

typedef struct {
  rn_delivery_cb cb;
  void *opaque;
} prec_t;

typedef struct pbatch {
  struct pbatch *next;
  /* 1 for the producer (from creation until reported) + 1 per write
   * still reading the sealed bytes (a request sent them by reference,
   * rn__client_submit_ref): freed by whoever drops the last one
   * (batch_put), possibly on the I/O thread after the producer is gone.
   * While a write holds it the bytes are not re-stamped. */
  atomic_uint refs;
  rn_batch_builder_t bld;
  prec_t *recs;
  size_t nrec, caprec;
  uint64_t bytes;   /* charged against max_buffered_bytes */
  int64_t first_ms; /* monotonic time of the first record (linger) */
  int64_t deadline; /* first record + delivery timeout */
  /* sealed */
  bool sealed;
  bool sent;        /* on the wire now */
  bool done;        /* outcome known: done_err, done_base; reported at the head */
  rn_err_t done_err;
  uint64_t done_base;
  /* The broker's dedup window found these records already stored (by
   * increasing index): each is reported at its original's (shard, offset);
   * the others were stored in order from done_base. malloc'd, freed when
   * reported. */
  struct dedup_hit {
    uint32_t index, shard;
    uint64_t offset;
  } *hits;
  uint32_t nhits;
  const uint8_t *data;
  size_t len;
  uint64_t pid;
  int32_t base_seq;
  uint32_t attempts; /* > 0: the broker may have appended it */
  int64_t retry_at;
  rn_err_t last_err;
} pbatch_t;

typedef struct {
  uint32_t index;
  pbatch_t *head, *tail;
  uint32_t inflight; /* batches of this shard on the wire */
  bool hold;         /* send nothing until inflight is 0, then resend in order */
  bool reseq;        /* re-stamp sealed batches before sending (implies hold) */
  uint64_t seq_pid;  /* producer id next_seq counts for */
  int32_t next_seq;
  int32_t give_back; /* lowest sequence of a batch that failed for sure; -1 = none */
  /* Where its batches go: the connection to its leader as the stream's
   * description last said (desc->shards[].leader_address), the client
   * itself when there is none (a single broker). Under mu. */
  rn_client_t *target;
} pshard_t;

typedef struct pstream {
  struct pstream *next;
  char *name;
  rn_stream_desc_t *desc; /* hash ranges fixed; leader fields refreshed in place (under mu) */
  pshard_t *shards; /* desc->shard_count, same order */
  /* Placement refresh: a batch met ENOTLEADER / ENOTENOUGHREPLICAS /
   * ESTALEEPOCH, or its leader's connection failed -> stale; the pump then
   * sends a DescribeStream to the bootstrap (refreshing: nothing of the
   * stream is sent until it answers), at most once per backoff
   * (refresh_at). The batches themselves retry as any retriable failure:
   * same bytes, same producer id and sequences, so the new leader answers
   * one it already holds as a duplicate. */
  bool stale, refreshing;
  int64_t refresh_at;
  uint32_t refresh_attempts;
} pstream_t;

struct rn_producer {
  rn__agent_t agent; /* first: the agent's run casts back */
  rn_client_t *cl;
  rn_producer_conf_t conf;
  pthread_mutex_t mu;
  pthread_cond_t cond; /* records reported (space freed, outstanding down), requests done */
  pstream_t *streams;
  uint64_t pid;
  uint16_t epoch;
  bool need_pid;
  bool pid_inflight;
  int64_t pid_retry_at;
  uint32_t pid_attempts;
  uint64_t buffered;
  size_t outstanding;
  int flushing;
  size_t inflight_reqs;
  bool closing;
  rn__limits_t lim; /* the client's limits as of generation lim_gen (under mu) */
  unsigned lim_gen;
  pbatch_t *pool; /* reported batches kept for reuse (RN__POOL_MAX) */
  unsigned npool;
  uint64_t pool_bytes; /* their builders' capacity */
};

/* ---- configuration ------------------------------------------------------------ */

void rn_producer_conf_init(rn_producer_conf_t *conf) {
  memset(conf, 0, sizeof *conf);
  conf->linger_ms = 5;
  conf->max_batch_bytes = 1u << 20;
  conf->codec = RN_CODEC_NONE;
  conf->idempotent = true;
  conf->max_buffered_bytes = 64ull << 20;
  conf->block_ms = 60000;
  conf->delivery_timeout_ms = 120000;
  conf->retry_backoff_ms = 100;
  conf->retry_backoff_max_ms = 1000;
  conf->close_timeout_ms = 30000;
  conf->max_in_flight = RN__BROKER_WINDOW;
}

/* ---- batches -------------------------------------------------------------------- */

static void batch_free(pbatch_t *b) {
  rn_batch_builder_free(&b->bld);
  free(b->recs);
  free(b->hits);
  free(b);
}

/* Drop one reference; the last one frees. Any thread, no lock needed. */
static void batch_put(pbatch_t *b) {
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) batch_free(b);
}

/* A new, empty batch: from the pool when it has one. Under mu. */
static pbatch_t *batch_new(rn_producer_t *p) {
  pbatch_t *b = p->pool;
  if (b != NULL) {
    p->pool = b->next;
    p->npool--;
    p->pool_bytes -= b->bld.cap;
    rn_batch_builder_t bld = b->bld;
    prec_t *recs = b->recs;
    size_t caprec = b->caprec;
    memset(b, 0, sizeof *b);
    rn_batch_builder_reset(&bld);
    b->bld = bld;
    b->recs = recs;
    b->caprec = caprec;
  } else {
    b = calloc(1, sizeof *b);
    if (b) b->recs = malloc(16 * sizeof *b->recs);
    if (b == NULL || b->recs == NULL) {
      free(b);
      return NULL;
    }
    b->caprec = 16;
    rn_batch_builder_init(&b->bld);
  }
  atomic_init(&b->refs, 1);
  return b;
}

/* The producer is done with a reported batch: keep it for reuse when no
 * write still reads it and the pool has room, else drop its reference.
 * Under mu. */
static void batch_retire(rn_producer_t *p, pbatch_t *b) {
  if (atomic_load_explicit(&b->refs, memory_order_acquire) == 1 && p->npool < RN__POOL_MAX &&
      p->pool_bytes + b->bld.cap <= p->conf.max_buffered_bytes / 4) {
    b->next = p->pool;
    p->pool = b;
    p->npool++;
    p->pool_bytes += b->bld.cap;
    return;
  }
  batch_put(b);
}

/* Report every record of a detached batch (no lock held), then account. */
static void batch_report(rn_producer_t *p, pbatch_t *b, rn_err_t err, uint32_t shard, uint64_t base) {
  uint32_t h = 0; /* hits before record i */
  for (size_t i = 0; i < b->nrec; i++) {
    bool hit = !err && h < b->nhits && b->hits[h].index == i;
    if (b->recs[i].cb) {
      if (hit) b->recs[i].cb(0, b->hits[h].shard, b->hits[h].offset, b->recs[i].opaque);
      else b->recs[i].cb(err, shard, err ? 0 : base + i - h, b->recs[i].opaque);
    }
    if (hit) h++;
  }
  free(b->hits);
  b->hits = NULL;
  b->nhits = 0;
  pthread_mutex_lock(&p->mu);
  p->outstanding -= b->nrec;
  p->buffered -= b->bytes;
  pthread_cond_broadcast(&p->cond);
  batch_retire(p, b);
  pthread_mutex_unlock(&p->mu);
}

/* Batches to report once p->mu is released, in order: the batches keep
 * their own outcome (done_err, done_base) and are chained through next. */
typedef struct {
  pbatch_t *head, *tail;
  uint32_t *shards; /* parallel to the chain: the shard of each */
  size_t n, cap;
} reports_t;

static void report_add(reports_t *r, pbatch_t *b, uint32_t shard) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    uint32_t *ns = realloc(r->shards, cap * sizeof *ns);
    if (ns == NULL) abort(); /* a lost delivery report would break the contract */
    r->shards = ns;
    r->cap = cap;
  }
  r->shards[r->n++] = shard;
  b->next = NULL;
  if (r->tail)
    r->tail->next = b;
  else
    r->head = b;
  r->tail = b;
}

static void report_run(rn_producer_t *p, reports_t *r) {
  size_t i = 0;
  for (pbatch_t *b = r->head, *n; b; b = n, i++) {
    n = b->next;
    batch_report(p, b, b->done_err, r->shards[i], b->done_base);
  }
  free(r->shards);
  memset(r, 0, sizeof *r);
}

static void batch_finish(pbatch_t *b, rn_err_t err, uint64_t base) {
  b->done = true;
  b->done_err = err;
  b->done_base = base;
}

/* Unlink b from sh's FIFO. */
static void shard_unlink(pshard_t *sh, pbatch_t *b) {
  pbatch_t **pp = &sh->head, *prev = NULL;
  while (*pp && *pp != b) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  assert(*pp == b);
  *pp = b->next;
  if (sh->tail == b) sh->tail = prev;
  b->next = NULL;
}

/* Move the done batches at the head of sh to the report list. Under mu. */
static void shard_pop_done(pshard_t *sh, reports_t *reports) {
  while (sh->head && sh->head->done) {
    pbatch_t *b = sh->head;
    shard_unlink(sh, b);
    report_add(reports, b, sh->index);
  }
}

/* ---- sequences ------------------------------------------------------------------ */

/* Stamp the producer fields into a sealed batch (again). Under mu. */
static rn_err_t batch_stamp(rn_producer_t *p, pbatch_t *b, uint64_t pid, int32_t seq) {
  rn_batch_producer_t prod = {0, 0, -1};
  if (p->conf.idempotent) {
    prod.producer_id = pid;
    prod.producer_epoch = p->epoch;
    prod.base_sequence = seq;
  }
  rn_err_t err = rn_batch_builder_finish(&b->bld, p->conf.codec, &prod, &b->data, &b->len);
  if (err) return err;
  b->pid = prod.producer_id;
  b->base_seq = prod.base_sequence;
  return 0;
}

/* The shard has nothing on the wire and must re-sequence: batches failed
 * for sure (the lowest sequence they give back is sh->give_back) or the
 * shard moves to a new producer id. Returns false when it cannot yet
 * (waiting for an id, out of memory). Under mu. */
static bool shard_reseq(rn_producer_t *p, pshard_t *sh, int64_t now, int64_t *next) {
  assert(sh->inflight == 0);
  if (!p->conf.idempotent) return true;
  if (p->need_pid) return false;
  /* A write may still read a batch whose request already ended (it timed
   * out on a connection that stays up): its bytes must not change under
   * it. Rare; look again shortly (the release has no producer to wake). */
  for (pbatch_t *b = sh->head; b; b = b->next) {
    if (!b->sealed) break;
    if (!b->done && atomic_load_explicit(&b->refs, memory_order_acquire) > 1) {
      if (now + 1 < *next) *next = now + 1;
      return false;
    }
  }
  bool new_pid = sh->seq_pid != p->pid;
  int64_t running = new_pid ? 0 : sh->give_back;
  if (running >= 0) {
    for (pbatch_t *b = sh->head; b; b = b->next) {
      if (b->done) continue;
      if (!b->sealed) break;
      if (new_pid && b->attempts > 0) {
        /* may have been appended under the old id: its fate stays unknown */
        batch_finish(b, b->last_err ? b->last_err : RN_ETIMEDOUT, 0);
        continue;
      }
      if (!new_pid && b->base_seq < sh->give_back) continue; /* before the gap: unchanged */
      if (running + (int64_t)b->nrec > INT32_MAX) {
        p->need_pid = true; /* sequence space used up */
        return false;
      }
      if (new_pid || b->base_seq != running) {
        if (batch_stamp(p, b, p->pid, (int32_t)running)) return false;
      }
      running += (int64_t)b->nrec;
    }
    sh->next_seq = (int32_t)running;
  }
  sh->seq_pid = p->pid;
  sh->give_back = -1;
  return true;
}

/* b failed for sure: not appended, nor anything after it. Under mu. */
static void batch_reject(pshard_t *sh, pbatch_t *b, rn_err_t err) {
  batch_finish(b, err, 0);
  if (b->pid == sh->seq_pid && (sh->give_back < 0 || b->base_seq < sh->give_back)) sh->give_back = b->base_seq;
  sh->reseq = sh->hold = true;
}

/* A batch that may have been appended fails: nobody can learn its fate any
 * more, so the producer id must change. Under mu. */
static void batch_give_up(rn_producer_t *p, pshard_t *sh, pbatch_t *b, rn_err_t err) {
  batch_finish(b, err, 0);
  if (p->conf.idempotent && b->pid == p->pid) p->need_pid = true;
  sh->reseq = sh->hold = true;
}

/* ---- sending (I/O thread) ----------------------------------------------------- */

/* One ProduceRequest. Referenced by its callback and, while its write may
 * read the batches, by the client's release (refs: freed by the last). */
typedef struct {
  rn_producer_t *p;
  pstream_t *st;
  rn_client_t *target; /* the connection it went on */
  atomic_uint refs;
  size_t n;
  struct {
    pshard_t *sh;
    pbatch_t *b;
  } e[];
} preq_t;

static int64_t backoff_for(const rn_producer_conf_t *c, uint32_t attempts) {
  uint64_t d = c->retry_backoff_ms ? c->retry_backoff_ms : 1;
  for (uint32_t i = 1; i < attempts && d < c->retry_backoff_max_ms; i++) d *= 2;
  if (d > c->retry_backoff_max_ms && c->retry_backoff_max_ms) d = c->retry_backoff_max_ms;
  return (int64_t)d;
}

static void wake(rn_producer_t *p) { rn__client_wake(p->cl); }

static void preq_put(preq_t *rq) {
  if (atomic_fetch_sub_explicit(&rq->refs, 1, memory_order_acq_rel) == 1) free(rq);
}

/* rn__release_cb: the request's write no longer reads its batches. I/O
 * thread (or the client's destroyer); the producer may be gone already, so
 * only the batches and rq are touched. */
static void preq_release(void *arg) {
  preq_t *rq = arg;
  for (size_t i = 0; i < rq->n; i++) batch_put(rq->e[i].b);
  preq_put(rq);
}

/* Whether a batch before b in sh is not known to be appended (unresolved,
 * or failed): then the broker saw a gap and b's ESEQUENCE is expected. */
static bool earlier_unresolved(const pshard_t *sh, const pbatch_t *b) {
  for (const pbatch_t *x = sh->head; x && x != b; x = x->next)
    if (!x->done || x->done_err) return true;
  return false;
}

/* The result of b in a ProduceResponse: results come in request order;
 * fall back to a search by shard for a broker that reorders them. */
/* The dedup hits of a successful result into b (ordered by index, each
 * index < nrec, as the broker sends them; anything else is a bad answer). */
static rn_err_t take_hits(pbatch_t *b, const Runnel__ShardBatchResult *r) {
  free(b->hits);
  b->hits = NULL;
  b->nhits = 0;
  if (r->n_dedup_hits == 0) return 0;
  if (r->n_dedup_hits > b->nrec) return RN_EBADREQUEST;
  b->hits = malloc(r->n_dedup_hits * sizeof(*b->hits));
  if (b->hits == NULL) return RN_ENOMEM;
  for (size_t k = 0; k < r->n_dedup_hits; k++) {
    const Runnel__DedupHit *x = r->dedup_hits[k];
    if (x->index >= b->nrec || (k && x->index <= b->hits[k - 1].index)) {
      free(b->hits);
      b->hits = NULL;
      return RN_EBADREQUEST;
    }
    b->hits[k].index = x->index;
    b->hits[k].shard = x->shard;
    b->hits[k].offset = x->offset;
  }
  b->nhits = (uint32_t)r->n_dedup_hits;
  return 0;
}

static const Runnel__ShardBatchResult *result_for(const Runnel__ProduceResponse *pr, size_t i, uint32_t shard) {
  if (i < pr->n_results && pr->results[i]->shard == shard) return pr->results[i];
  for (size_t k = 0; k < pr->n_results; k++)
    if (pr->results[k]->shard == shard) return pr->results[k];
  return NULL;
}

static void produce_cb(void *arg, rn_err_t err, const char *msg, Runnel__Response *resp) {
  preq_t *rq = arg;
  rn_producer_t *p = rq->p;
  reports_t reports = {0};
  int64_t now = rn__mono_ms();
  (void)msg;
  rn_err_t req_err = err;
  if (!req_err && resp) req_err = rn__pb_error(resp->error, NULL, 0);
  if (!req_err && resp->op_case != RUNNEL__RESPONSE__OP_PRODUCE) req_err = RN_EBADREQUEST;

  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < rq->n; i++) {
    pshard_t *sh = rq->e[i].sh;
    pbatch_t *b = rq->e[i].b;
    assert(b->sent && sh->inflight > 0);
    b->sent = false;
    sh->inflight--;
    rn_err_t berr = req_err;
    uint64_t base = 0;
    if (!berr) {
      const Runnel__ShardBatchResult *r = result_for(resp->produce, i, sh->index);
      if (r == NULL) {
        berr = RN_EBADREQUEST;
      } else {
        berr = rn__pb_error(r->error, NULL, 0);
        base = r->base_offset; /* a duplicate carries the original offset */
        if (!berr) berr = take_hits(b, r);
      }
    }
    if (!berr) {
      batch_finish(b, 0, base);
      continue;
    }
    b->last_err = berr;
    /* the leader may have moved: learn where it is before the retry */
    if (rn__err_moved(berr) ||
        ((berr == RN_ECONNECTION || berr == RN_ETIMEDOUT) && rn__client_is_peer(p->cl, rq->target)))
      rq->st->stale = true;
    /* a gap: an earlier batch of the shard is not appended (yet), or one
     * failed for sure and the shard is about to re-sequence */
    bool gap = berr == RN_ESEQUENCE && (sh->reseq || earlier_unresolved(sh, b));
    bool retriable = (rn_err_retriable(berr) && berr != RN_ECANCELED) || gap;
    if (retriable) {
      int64_t retry_at = now + backoff_for(&p->conf, b->attempts);
      if (!p->closing && retry_at < b->deadline) {
        b->retry_at = gap ? now : retry_at; /* a gap: resent right after its predecessor */
        sh->hold = true;
        continue;
      }
      batch_give_up(p, sh, b, berr);
      continue;
    }
    /* failed for sure: not appended, and neither is anything after it */
    batch_reject(sh, b, berr);
    if (p->conf.idempotent && (berr == RN_ESEQUENCE || berr == RN_EFENCED) && b->pid == p->pid)
      p->need_pid = true; /* the broker's state for this id is not ours: never reuse it */
  }
  for (size_t i = 0; i < rq->n; i++) shard_pop_done(rq->e[i].sh, &reports);
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
  if (resp) runnel__response__free_unpacked(resp, NULL);
  preq_put(rq);
  report_run(p, &reports);
  wake(p);
  /* Last: this may run on a leader connection's I/O thread, not the one
   * the agent runs on, so rn_producer_destroy may free p as soon as it
   * sees inflight_reqs reach 0. */
  pthread_mutex_lock(&p->mu);
  p->inflight_reqs--;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
}

/* Copy the leader fields of a fresh description into st (matched by shard
 * index) and re-route its shards. Whether anything changed. Under mu. */
static bool stream_place(rn_producer_t *p, pstream_t *st, const Runnel__StreamDescription *sd) {
  bool changed = false;
  for (size_t k = 0; sd && k < sd->n_shards; k++) {
    const Runnel__ShardInfo *si = sd->shards[k];
    for (size_t i = 0; i < st->desc->shard_count; i++) {
      rn_shard_info_t *d = &st->desc->shards[i];
      if (d->index != si->index) continue;
      const char *addr = si->leader_address ? si->leader_address : "";
      if (strcmp(d->leader_address, addr) != 0 || d->leader != si->leader || d->leader_epoch != si->leader_epoch)
        changed = true;
      d->leader = si->leader;
      d->leader_epoch = si->leader_epoch;
      snprintf(d->leader_address, sizeof d->leader_address, "%s", addr);
      rn_client_t *t = rn__client_route(p->cl, d->leader_address);
      pshard_t *sh = &st->shards[i];
      /* batches still on the wire to the old leader go first: nothing
       * new goes to the new one until they answered (a later sequence
       * arriving first would only be answered ESEQUENCE there) */
      if (t != sh->target && sh->inflight > 0) sh->hold = true;
      sh->target = t;
      break;
    }
  }
  return changed;
}

typedef struct {
  rn_producer_t *p;
  pstream_t *st;
} prefresh_t;

/* The answer to a placement refresh. I/O thread of the bootstrap client. */
static void describe_cb(void *arg, rn_err_t err, const char *msg, Runnel__Response *resp) {
  prefresh_t *rf = arg;
  rn_producer_t *p = rf->p;
  pstream_t *st = rf->st;
  free(rf);
  (void)msg;
  if (!err) err = rn__pb_error(resp->error, NULL, 0);
  if (!err && (resp->op_case != RUNNEL__RESPONSE__OP_DESCRIBE_STREAM || resp->describe_stream->stream == NULL))
    err = RN_EBADREQUEST;
  pthread_mutex_lock(&p->mu);
  st->refreshing = false;
  if (!err && stream_place(p, st, resp->describe_stream->stream)) {
    st->stale = false;
    st->refresh_attempts = 0;
  } else {
    /* failed, or the placement has not changed yet (an election under
     * way): stays stale, asked again after a growing backoff */
    st->stale = err != 0;
    st->refresh_attempts++;
  }
  st->refresh_at = rn__mono_ms() + backoff_for(&p->conf, st->refresh_attempts);
  pthread_mutex_unlock(&p->mu);
  if (resp) runnel__response__free_unpacked(resp, NULL);
  wake(p);
  pthread_mutex_lock(&p->mu);
  p->inflight_reqs--;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
}

/* Ask the bootstrap where st's leaders are now. Under mu, I/O thread. */
static void stream_refresh(rn_producer_t *p, pstream_t *st, int64_t now, int64_t *next) {
  if (now < st->refresh_at) {
    if (st->refresh_at < *next) *next = st->refresh_at;
    return;
  }
  prefresh_t *rf = malloc(sizeof *rf);
  rn_err_t err = RN_ENOMEM;
  if (rf) {
    rf->p = p;
    rf->st = st;
    Runnel__DescribeStreamRequest dr;
    runnel__describe_stream_request__init(&dr);
    dr.name = st->name;
    Runnel__Request req;
    runnel__request__init(&req);
    req.op_case = RUNNEL__REQUEST__OP_DESCRIBE_STREAM;
    req.describe_stream = &dr;
    err = rn__client_submit(p->cl, &req, 0, describe_cb, rf);
  }
  if (err) {
    free(rf);
    st->refresh_at = now + backoff_for(&p->conf, ++st->refresh_attempts);
    if (st->refresh_at < *next) *next = st->refresh_at;
    return;
  }
  st->refreshing = true;
  p->inflight_reqs++;
}

static void init_producer_cb(void *arg, rn_err_t err, const char *msg, Runnel__Response *resp) {
  rn_producer_t *p = arg;
  (void)msg;
  if (!err) err = rn__pb_error(resp->error, NULL, 0);
  if (!err && resp->op_case != RUNNEL__RESPONSE__OP_INIT_PRODUCER) err = RN_EBADREQUEST;
  pthread_mutex_lock(&p->mu);
  p->pid_inflight = false;
  if (!err) {
    p->pid = resp->init_producer->producer_id;
    p->epoch = (uint16_t)resp->init_producer->producer_epoch;
    p->need_pid = false;
    p->pid_attempts = 0;
  } else {
    p->pid_attempts++;
    p->pid_retry_at = rn__mono_ms() + backoff_for(&p->conf, p->pid_attempts);
  }
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
  if (resp) runnel__response__free_unpacked(resp, NULL);
  wake(p);
}

/* Seal b (the oldest unsealed batch of sh) when it is ready. Under mu. */
static bool batch_seal(rn_producer_t *p, pshard_t *sh, pbatch_t *b, int64_t now, int64_t *next) {
  bool full = rn_batch_builder_size(&b->bld) >= p->conf.max_batch_bytes || b->next != NULL;
  int64_t linger_end = b->first_ms + (int64_t)p->conf.linger_ms;
  if (!full && p->flushing == 0 && now < linger_end) {
    if (linger_end < *next) *next = linger_end;
    return false;
  }
  /* A batch that is not full keeps filling while the shard has a batch on
   * the wire (its answer wakes us): at rates below what one batch per
   * fdatasync round carries, this keeps batches, and so appends and
   * fdatasyncs, few and large instead of multiplying small ones. Full
   * batches are pipelined up to max_in_flight. */
  if (!full && p->flushing == 0 && sh->inflight > 0) return false;
  int32_t seq = -1;
  if (p->conf.idempotent) {
    if (p->need_pid) return false; /* waits for a fresh id */
    if (sh->seq_pid != p->pid) {
      /* a new id: only once nothing of the shard under the old one is
       * unresolved, or a retry under the old id could land after it */
      if (sh->inflight > 0) return false;
      sh->seq_pid = p->pid;
      sh->next_seq = 0;
    }
    if ((int64_t)sh->next_seq + (int64_t)b->nrec > INT32_MAX) {
      p->need_pid = true; /* sequence space used up: continue under a new id */
      return false;
    }
    seq = sh->next_seq;
  }
  if (batch_stamp(p, b, p->pid, seq)) {
    /* ENOMEM: try again at the next run */
    if (now + 10 < *next) *next = now + 10;
    return false;
  }
  b->sealed = true;
  if (p->conf.idempotent) sh->next_seq += (int32_t)b->nrec;
  return true;
}

/* The next batch of sh to put on the wire now, or NULL. Seals when needed.
 * Under mu. */
static pbatch_t *shard_next(rn_producer_t *p, pshard_t *sh, int64_t now, int64_t *next) {
  if (sh->hold || sh->inflight >= p->conf.max_in_flight) return NULL;
  for (pbatch_t *b = sh->head; b; b = b->next) {
    if (b->done || b->sent) continue;
    if (b->sealed) {
      if (now >= b->retry_at) return b;
      if (b->retry_at < *next) *next = b->retry_at;
      return NULL; /* nothing overtakes a batch waiting for its retry */
    }
    return batch_seal(p, sh, b, now, next) ? b : NULL;
  }
  return NULL;
}

/* Outcomes decided by time: batches past their delivery deadline that are
 * not on the wire, and the end of a hold. Under mu. */
static void shard_settle(rn_producer_t *p, pshard_t *sh, int64_t now, int64_t *next) {
  for (pbatch_t *b = sh->head; b; b = b->next) {
    if (b->done || b->sent) continue;
    if (now < b->deadline) {
      if (b->deadline < *next) *next = b->deadline;
      continue;
    }
    if (!b->sealed) {
      batch_finish(b, RN_ETIMEDOUT, 0);
    } else if (b->attempts > 0) {
      batch_give_up(p, sh, b, b->last_err ? b->last_err : RN_ETIMEDOUT);
    } else {
      batch_reject(sh, b, RN_ETIMEDOUT); /* never sent: its sequence is given back */
    }
  }
  if (sh->inflight == 0) {
    if (sh->reseq && shard_reseq(p, sh, now, next)) sh->reseq = false;
    if (!sh->reseq) sh->hold = false;
  }
}

/* Submit one ProduceRequest for the batches in rq (already counted as on
 * the wire). Under mu. Takes rq. */
static void send_request(rn_producer_t *p, pstream_t *st, preq_t *rq, int64_t now, int64_t *next) {
  Runnel__ShardBatch *sbs = calloc(rq->n, sizeof *sbs);
  Runnel__ShardBatch **sbp = calloc(rq->n, sizeof *sbp);
  rn_err_t err = RN_ENOMEM;
  if (sbs && sbp) {
    for (size_t i = 0; i < rq->n; i++) {
      runnel__shard_batch__init(&sbs[i]);
      sbs[i].shard = rq->e[i].sh->index;
      sbs[i].batch.data = (uint8_t *)(uintptr_t)rq->e[i].b->data;
      sbs[i].batch.len = rq->e[i].b->len;
      sbp[i] = &sbs[i];
    }
    Runnel__ProduceRequest pr;
    runnel__produce_request__init(&pr);
    pr.stream = st->name;
    pr.n_batches = rq->n;
    pr.batches = sbp;
    Runnel__Request req;
    runnel__request__init(&req);
    req.op_case = RUNNEL__REQUEST__OP_PRODUCE;
    req.produce = &pr;
    /* The batches go on the wire from where they are (no copy into the
     * frame); each keeps a reference until the write is done with it. */
    atomic_init(&rq->refs, 2);
    for (size_t i = 0; i < rq->n; i++) atomic_fetch_add_explicit(&rq->e[i].b->refs, 1, memory_order_relaxed);
    err = rn__client_submit_ref(rq->target, &req, 0, produce_cb, rq, preq_release, rq);
    if (err)
      for (size_t i = 0; i < rq->n; i++) atomic_fetch_sub_explicit(&rq->e[i].b->refs, 1, memory_order_relaxed);
  }
  free(sbs);
  free(sbp);
  if (err == 0) {
    p->inflight_reqs++;
    for (size_t i = 0; i < rq->n; i++) rq->e[i].b->attempts++;
    return;
  }
  /* not sent: a batch too large for any frame can never go (its sequence
   * is given back); otherwise (out of memory) try again shortly */
  for (size_t i = 0; i < rq->n; i++) {
    pbatch_t *b = rq->e[i].b;
    pshard_t *sh = rq->e[i].sh;
    b->sent = false;
    sh->inflight--;
    if (err == RN_ETOOLARGE) {
      if (b->attempts > 0)
        batch_give_up(p, sh, b, err);
      else
        batch_reject(sh, b, err);
    } else {
      b->retry_at = now + 10;
      if (b->retry_at < *next) *next = b->retry_at;
    }
  }
  free(rq);
}

static int64_t pump(rn__agent_t *a, int64_t now) {
  rn_producer_t *p = (rn_producer_t *)a;
  int64_t next = INT64_MAX;
  reports_t reports = {0};
  pthread_mutex_lock(&p->mu);
  if (p->closing) {
    pthread_mutex_unlock(&p->mu);
    return INT64_MAX;
  }
  if (p->conf.idempotent && p->need_pid && !p->pid_inflight) {
    if (now >= p->pid_retry_at) {
      Runnel__InitProducerRequest ir;
      runnel__init_producer_request__init(&ir);
      Runnel__Request req;
      runnel__request__init(&req);
      req.op_case = RUNNEL__REQUEST__OP_INIT_PRODUCER;
      req.init_producer = &ir;
      if (rn__client_submit(p->cl, &req, 0, init_producer_cb, p) == 0) {
        p->pid_inflight = true;
      } else {
        p->pid_retry_at = now + backoff_for(&p->conf, ++p->pid_attempts);
      }
    }
    if (!p->pid_inflight && p->pid_retry_at < next) next = p->pid_retry_at;
  }
  /* Per stream, rounds: each round takes at most one batch per shard (the
   * oldest sendable one) into requests of at most req_cap bytes of batches
   * (a single larger batch goes alone), so a request stays below the
   * broker's frame limit; rounds repeat until no shard has anything to
   * send or its in-flight limit is reached. req_cap leaves room for the
   * request's own fields (stream name, shard numbers, lengths). */
  rn__limits_t lim;
  rn__client_limits(p->cl, &lim);
  size_t req_cap = RN__MAX_REQUEST_BYTES;
  size_t frame_room = lim.max_frame_bytes > 8192 ? lim.max_frame_bytes - 4096 : lim.max_frame_bytes / 2;
  if (frame_room < req_cap) req_cap = frame_room;
  for (pstream_t *st = p->streams; st; st = st->next) {
    size_t n = st->desc->shard_count;
    for (size_t i = 0; i < n; i++) {
      shard_settle(p, &st->shards[i], now, &next);
      shard_pop_done(&st->shards[i], &reports);
    }
    if (st->stale && !st->refreshing) stream_refresh(p, st, now, &next);
    /* While the placement is being refreshed nothing of the stream goes
     * out: it would mostly go to the old leader again. */
    for (; !st->refreshing;) {
      size_t taken = 0;
      /* one request per leader (target) per round: g is the first shard
       * of its target */
      for (size_t g = 0; g < n; g++) {
        rn_client_t *t = st->shards[g].target;
        bool first = true;
        for (size_t j = 0; j < g && first; j++) first = st->shards[j].target != t;
        if (!first) continue;
        preq_t *rq = NULL;
        size_t bytes = 0;
        for (size_t i = g; i < n; i++) {
          pshard_t *sh = &st->shards[i];
          if (sh->target != t) continue;
          pbatch_t *b = shard_next(p, sh, now, &next);
          if (b == NULL) continue;
          if (rq != NULL && bytes + b->len > req_cap) {
            send_request(p, st, rq, now, &next);
            rq = NULL;
          }
          if (rq == NULL) {
            rq = malloc(sizeof *rq + n * sizeof rq->e[0]);
            if (rq == NULL) {
              b->retry_at = now + 10; /* sealed: goes with a later run */
              if (now + 10 < next) next = now + 10;
              break;
            }
            rq->p = p;
            rq->st = st;
            rq->target = t;
            rq->n = 0;
            bytes = 0;
          }
          b->sent = true;
          sh->inflight++;
          rq->e[rq->n].sh = sh;
          rq->e[rq->n].b = b;
          rq->n++;
          taken++;
          bytes += b->len;
        }
        if (rq != NULL) send_request(p, st, rq, now, &next);
      }
      if (taken == 0) break;
    }
    for (size_t i = 0; i < n; i++) shard_pop_done(&st->shards[i], &reports);
  }
  pthread_mutex_unlock(&p->mu);
  if (reports.head) {
    report_run(p, &reports);
    next = now; /* run again: reporting may have unblocked more */
  }
  return next;
}

/* ---- lifecycle ------------------------------------------------------------------ */

rn_err_t rn_producer_new(rn_client_t *cl, const rn_producer_conf_t *conf, rn_producer_t **out) {
  rn__errmsg_clear();
  if (cl == NULL || out == NULL) return RN_EINVAL;
  rn_producer_t *p = calloc(1, sizeof *p);
  if (p == NULL) return RN_ENOMEM;
  if (conf) {
    p->conf = *conf;
  } else {
    rn_producer_conf_init(&p->conf);
  }
  if (p->conf.codec != RN_CODEC_NONE && p->conf.codec != RN_CODEC_LZ4) {
    rn__errmsg_set("unknown codec %d", (int)p->conf.codec);
    free(p);
    return RN_EINVAL;
  }
  if (p->conf.max_batch_bytes == 0) p->conf.max_batch_bytes = 1u << 20;
  if (p->conf.max_buffered_bytes == 0) p->conf.max_buffered_bytes = 64ull << 20;
  if (p->conf.max_in_flight == 0 || p->conf.max_in_flight > RN__BROKER_WINDOW)
    p->conf.max_in_flight = RN__BROKER_WINDOW;
  p->cl = cl;
  p->lim_gen = rn__client_limits_gen(cl);
  rn__client_limits(cl, &p->lim);
  p->agent.run = pump;
  if (p->conf.idempotent) {
    Runnel__InitProducerRequest ir;
    runnel__init_producer_request__init(&ir);
    Runnel__Request req;
    runnel__request__init(&req);
    req.op_case = RUNNEL__REQUEST__OP_INIT_PRODUCER;
    req.init_producer = &ir;
    Runnel__Response *resp;
    rn_err_t err = rn__client_call(cl, &req, 0, &resp);
    if (!err && resp->op_case != RUNNEL__RESPONSE__OP_INIT_PRODUCER) {
      runnel__response__free_unpacked(resp, NULL);
      err = RN_EBADREQUEST;
    }
    if (err) {
      free(p);
      return err;
    }
    p->pid = resp->init_producer->producer_id;
    p->epoch = (uint16_t)resp->init_producer->producer_epoch;
    runnel__response__free_unpacked(resp, NULL);
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&p->mu, NULL);
  rn__client_agent_add(cl, &p->agent);
  *out = p;
  return 0;
}

/* Wait on p->cond until the monotonic deadline; false when it passed. */
static bool wait_until(rn_producer_t *p, int64_t deadline) {
  int64_t now = rn__mono_ms();
  if (now >= deadline) return false;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t ns = (int64_t)ts.tv_nsec + (deadline - now) % 1000 * 1000000;
  ts.tv_sec += (time_t)((deadline - now) / 1000 + ns / 1000000000);
  ts.tv_nsec = (long)(ns % 1000000000);
  pthread_cond_timedwait(&p->cond, &p->mu, &ts);
  return true;
}

rn_err_t rn_producer_flush(rn_producer_t *p, uint32_t timeout_ms) {
  rn__errmsg_clear();
  if (p == NULL) return RN_EINVAL;
  if (rn__client_on_io_thread(p->cl)) return RN_EBUSY;
  int64_t deadline = rn__mono_ms() + timeout_ms;
  pthread_mutex_lock(&p->mu);
  p->flushing++;
  pthread_mutex_unlock(&p->mu);
  wake(p);
  pthread_mutex_lock(&p->mu);
  while (p->outstanding > 0 && wait_until(p, deadline)) {
  }
  size_t left = p->outstanding;
  p->flushing--;
  pthread_mutex_unlock(&p->mu);
  if (left) {
    rn__errmsg_set("%zu records not yet acknowledged after %u ms", left, timeout_ms);
    return RN_ETIMEDOUT;
  }
  return 0;
}

size_t rn_producer_outstanding(rn_producer_t *p) {
  pthread_mutex_lock(&p->mu);
  size_t n = p->outstanding;
  pthread_mutex_unlock(&p->mu);
  return n;
}

void rn_producer_destroy(rn_producer_t *p) {
  if (p == NULL) return;
  assert(!rn__client_on_io_thread(p->cl));
  (void)rn_producer_flush(p, p->conf.close_timeout_ms);
  pthread_mutex_lock(&p->mu);
  p->closing = true; /* no new sends, no more retries */
  while (p->inflight_reqs > 0 || p->pid_inflight) pthread_cond_wait(&p->cond, &p->mu);
  pthread_mutex_unlock(&p->mu);
  /* A request callback lowers inflight_reqs / pid_inflight before it
   * reports and wakes; it runs inside one I/O-thread event, and the agent
   * removal is only processed at the start of a later pump() on that same
   * thread: so once the removal returns, no callback of p is running. */
  rn__client_agent_remove(p->cl, &p->agent);
  /* nothing runs on the I/O thread for p any more */
  reports_t reports = {0};
  for (pstream_t *st = p->streams; st; st = st->next) {
    for (size_t i = 0; i < st->desc->shard_count; i++) {
      pshard_t *sh = &st->shards[i];
      while (sh->head) {
        pbatch_t *b = sh->head;
        shard_unlink(sh, b);
        if (!b->done) batch_finish(b, RN_ECANCELED, 0); /* done ones keep their outcome */
        report_add(&reports, b, sh->index);
      }
    }
  }
  report_run(p, &reports);
  while (p->streams) {
    pstream_t *st = p->streams;
    p->streams = st->next;
    free(st->name);
    rn_stream_desc_free(st->desc);
    free(st->shards);
    free(st);
  }
  while (p->pool) {
    pbatch_t *b = p->pool;
    p->pool = b->next;
    batch_put(b);
  }
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cond);
  free(p);
}

/* ---- sending (application threads) ------------------------------------------ */

static pstream_t *stream_find(rn_producer_t *p, const char *name) {
  for (pstream_t *st = p->streams; st; st = st->next)
    if (strcmp(st->name, name) == 0) return st;
  return NULL;
}

/* Learn a stream's shards (blocking describe, without p->mu). */
static rn_err_t stream_learn(rn_producer_t *p, const char *name) {
  rn_stream_desc_t *desc;
  rn_err_t err = rn_stream_describe(p->cl, name, &desc);
  if (err) return err;
  if (desc->shard_count == 0) {
    rn_stream_desc_free(desc);
    rn__errmsg_set("stream \"%s\" has no shards", name);
    return RN_ENOSHARD;
  }
  pstream_t *st = calloc(1, sizeof *st);
  if (st) st->name = strdup(name);
  if (st) st->shards = calloc(desc->shard_count, sizeof *st->shards);
  if (st == NULL || st->name == NULL || st->shards == NULL) {
    if (st) {
      free(st->name);
      free(st->shards);
    }
    free(st);
    rn_stream_desc_free(desc);
    return RN_ENOMEM;
  }
  st->desc = desc;
  for (size_t i = 0; i < desc->shard_count; i++) {
    st->shards[i].index = desc->shards[i].index;
    st->shards[i].give_back = -1;
    st->shards[i].target = rn__client_route(p->cl, desc->shards[i].leader_address);
  }
  pthread_mutex_lock(&p->mu);
  if (stream_find(p, name) == NULL) {
    st->next = p->streams;
    p->streams = st;
    st = NULL;
  }
  pthread_mutex_unlock(&p->mu);
  if (st) { /* another thread was first */
    free(st->name);
    free(st->shards);
    rn_stream_desc_free(st->desc);
    free(st);
  }
  return 0;
}

rn_err_t rn_producer_send_message(rn_producer_t *p, const rn_message_t *m) {
  rn__errmsg_clear();
  if (p == NULL || m == NULL || m->stream == NULL || (m->key == NULL && m->key_len) ||
      (m->data == NULL && m->data_len) || (m->id == NULL && m->id_len) || (m->headers == NULL && m->header_count))
    return RN_EINVAL;
  uint8_t hk[RN_HASH_KEY_BYTES];
  if (m->explicit_hash_key) {
    if (rn_hash_key_parse(m->explicit_hash_key, hk) != 0) {
      rn__errmsg_set("explicit hash key \"%s\" is not a canonical decimal in [0, 2^128-1]", m->explicit_hash_key);
      return RN_EINVAL;
    }
  } else {
    rn_hash_key_for(m->key, m->key_len, hk);
  }
  uint64_t bytes = RN__RECORD_OVERHEAD + m->key_len + m->data_len + m->id_len;
  for (size_t i = 0; i < m->header_count; i++) bytes += m->headers[i].key_len + m->headers[i].value_len + 8;
  if (bytes > p->conf.max_buffered_bytes) {
    rn__errmsg_set("record of %llu bytes exceeds max_buffered_bytes", (unsigned long long)bytes);
    return RN_ETOOLARGE;
  }
  bool on_io = rn__client_on_io_thread(p->cl);
  int64_t deadline = -1; /* block_ms from the first wait: no clock read per record */

  pthread_mutex_lock(&p->mu);
  if (p->closing) {
    pthread_mutex_unlock(&p->mu);
    return RN_ECLOSED;
  }
  pstream_t *st = stream_find(p, m->stream);
  if (st == NULL) {
    pthread_mutex_unlock(&p->mu);
    if (on_io) {
      rn__errmsg_set("stream \"%s\" not known to this producer yet; cannot describe it from a callback", m->stream);
      return RN_EBUSY;
    }
    rn_err_t err = stream_learn(p, m->stream);
    if (err) return err;
    pthread_mutex_lock(&p->mu);
    st = stream_find(p, m->stream);
  }
  /* The broker's limits (learnt when the connection was made: describing
   * the stream needed one): a record it would refuse fails here, at once,
   * instead of going out and failing there. Counted as the broker counts:
   * partition key + data + header keys and values. */
  unsigned gen = rn__client_limits_gen(p->cl); /* no client lock per record */
  if (gen != p->lim_gen) {
    rn__client_limits(p->cl, &p->lim);
    p->lim_gen = gen;
  }
  const rn__limits_t lim = p->lim;
  uint64_t rec_bytes = m->key_len + m->data_len;
  for (size_t i = 0; i < m->header_count; i++) rec_bytes += m->headers[i].key_len + m->headers[i].value_len;
  if (rec_bytes > lim.max_record_bytes) {
    pthread_mutex_unlock(&p->mu);
    rn__errmsg_set("record of %llu bytes exceeds the broker's max_record_bytes %u", (unsigned long long)rec_bytes,
                   lim.max_record_bytes);
    return RN_ETOOLARGE;
  }
  uint64_t batch_cap = p->conf.max_batch_bytes;
  if (lim.max_batch_bytes < batch_cap) batch_cap = lim.max_batch_bytes;
  size_t pos;
  if (rn_shard_for_hash(st->desc->shards, st->desc->shard_count, hk, &pos) != 0) {
    pthread_mutex_unlock(&p->mu);
    rn__errmsg_set("stream \"%s\": no shard covers the record's hash key", m->stream);
    return RN_ENOSHARD;
  }
  /* back-pressure */
  while (p->buffered > 0 && p->buffered + bytes > p->conf.max_buffered_bytes) {
    if (on_io || p->conf.block_ms == 0) {
      pthread_mutex_unlock(&p->mu);
      return RN_EAGAIN;
    }
    if (deadline < 0) deadline = rn__mono_ms() + p->conf.block_ms;
    if (!wait_until(p, deadline)) {
      pthread_mutex_unlock(&p->mu);
      rn__errmsg_set("producer buffer full (%llu bytes) for %u ms", (unsigned long long)p->conf.max_buffered_bytes,
                     p->conf.block_ms);
      return RN_ETIMEDOUT;
    }
    if (p->closing) {
      pthread_mutex_unlock(&p->mu);
      return RN_ECLOSED;
    }
  }
  pshard_t *sh = &st->shards[pos];
  pbatch_t *b = sh->tail;
  bool wake_needed = false;
  if (b == NULL || b->sealed || b->done ||
      (b->nrec > 0 && rn_batch_builder_size(&b->bld) + bytes > batch_cap)) {
    pbatch_t *nb = batch_new(p);
    if (nb == NULL) {
      pthread_mutex_unlock(&p->mu);
      return RN_ENOMEM;
    }
    if (b) {
      b->next = nb;
    } else {
      sh->head = nb;
    }
    sh->tail = nb;
    b = nb;
  }
  if (b->nrec == b->caprec) {
    size_t cap = b->caprec ? b->caprec * 2 : 16;
    prec_t *nr = realloc(b->recs, cap * sizeof *nr);
    if (nr == NULL) {
      pthread_mutex_unlock(&p->mu);
      return RN_ENOMEM;
    }
    b->recs = nr;
    b->caprec = cap;
  }
  rn_record_t rec;
  memset(&rec, 0, sizeof rec);
  rec.timestamp = m->timestamp_ms ? m->timestamp_ms : rn__wall_ms();
  rec.key = m->key;
  rec.key_len = m->key_len;
  rec.value = m->data;
  rec.value_len = m->data_len;
  rec.id = m->id;
  rec.id_len = m->id_len;
  rec.headers = m->headers;
  rec.header_count = m->header_count;
  rn_err_t err = rn_batch_builder_add(&b->bld, &rec);
  if (err) {
    if (b->nrec == 0) { /* the batch was made for this record */
      shard_unlink(sh, b);
      batch_put(b);
    }
    pthread_mutex_unlock(&p->mu);
    return err;
  }
  if (b->nrec == 0) {
    int64_t now = rn__mono_ms(); /* once per batch, not per record */
    b->first_ms = now;
    b->deadline = now + (int64_t)p->conf.delivery_timeout_ms;
    wake_needed = true; /* the agent must learn the new linger deadline */
  }
  b->recs[b->nrec].cb = m->cb;
  b->recs[b->nrec].opaque = m->opaque;
  b->nrec++;
  b->bytes += bytes;
  p->buffered += bytes;
  p->outstanding++;
  if (rn_batch_builder_size(&b->bld) >= batch_cap || p->flushing) wake_needed = true;
  pthread_mutex_unlock(&p->mu);
  if (wake_needed) wake(p);
  return 0;
}

rn_err_t rn_producer_send(rn_producer_t *p, const char *stream, const void *key, size_t keylen, const void *data,
                          size_t datalen, rn_delivery_cb cb, void *opaque) {
  rn_message_t m;
  memset(&m, 0, sizeof m);
  m.stream = stream;
  m.key = key;
  m.key_len = keylen;
  m.data = data;
  m.data_len = datalen;
  m.cb = cb;
  m.opaque = opaque;
  return rn_producer_send_message(p, &m);
}
