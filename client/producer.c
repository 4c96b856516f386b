/*
 * producer.c — asynchronous, batching, retrying, idempotent producer.
 *
 * Records are appended (on the application's thread, under p->mu) to the
 * open batch of their (stream, shard). The producer is an agent of the
 * client's I/O thread: pump() runs there, seals the batches that are ready
 * (linger expired, full, flush requested) and sends them, one
 * ProduceRequest per stream carrying one batch per shard.
 *
 * Invariants:
 *   - Per shard a FIFO of batches; only the head can be sealed, and at most
 *     one batch per shard is on the wire. So sequences stay consecutive and a
 *     retry always resends the head's exact bytes (same producer id, epoch,
 *     base_sequence): the broker answers a duplicate with the original
 *     offsets, which counts as success.
 *   - A batch's base_sequence is assigned when it is sealed: the number of
 *     records this producer id sealed for the shard before it. A batch that
 *     failed for sure (a non-retriable broker answer) gives its sequence
 *     back; a batch whose fate is unknown (retriable error until the
 *     delivery timeout) makes the producer ask for a fresh producer id, so a
 *     later batch can never be mistaken for it.
 *   - Every record accepted by send() is reported exactly once; the
 *     buffered byte count and the outstanding record count go down only
 *     after its callback returned, so flush() means "callbacks done".
 *   - Callbacks run without p->mu held.
 * Lock order: p->mu before the client's lock (pump submits while holding
 * p->mu); the client never calls into the producer while holding its own.
 */
#include <assert.h>
#include <pthread.h>
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

typedef struct {
  rn_delivery_cb cb;
  void *opaque;
} prec_t;

typedef struct pbatch {
  struct pbatch *next;
  rn_batch_builder_t bld;
  prec_t *recs;
  size_t nrec, caprec;
  uint64_t bytes;   /* charged against max_buffered_bytes */
  int64_t first_ms; /* monotonic time of the first record (linger) */
  int64_t deadline; /* first record + delivery timeout */
  /* sealed */
  bool sealed;
  const uint8_t *data;
  size_t len;
  uint64_t pid;
  int32_t base_seq;
  uint32_t attempts;
  int64_t retry_at;
  rn_err_t last_err;
} pbatch_t;

typedef struct {
  uint32_t index;
  pbatch_t *head, *tail;
  bool inflight;
  uint64_t seq_pid; /* producer id next_seq counts for */
  int32_t next_seq;
} pshard_t;

typedef struct pstream {
  struct pstream *next;
  char *name;
  rn_stream_desc_t *desc;
  pshard_t *shards; /* desc->shard_count, same order */
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
}

/* ---- batches -------------------------------------------------------------------- */

static void batch_free(pbatch_t *b) {
  rn_batch_builder_free(&b->bld);
  free(b->recs);
  free(b);
}

/* Report every record of a detached batch (no lock held), then account. */
static void batch_report(rn_producer_t *p, pbatch_t *b, rn_err_t err, uint32_t shard, uint64_t base) {
  for (size_t i = 0; i < b->nrec; i++) {
    if (b->recs[i].cb) b->recs[i].cb(err, shard, err ? 0 : base + i, b->recs[i].opaque);
  }
  pthread_mutex_lock(&p->mu);
  p->outstanding -= b->nrec;
  p->buffered -= b->bytes;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
  batch_free(b);
}

/* A list of batches to report once p->mu is released. */
typedef struct report {
  struct report *next;
  pbatch_t *b;
  rn_err_t err;
  uint32_t shard;
  uint64_t base;
} report_t;

static void report_add(report_t **list, pbatch_t *b, rn_err_t err, uint32_t shard, uint64_t base) {
  report_t *r = malloc(sizeof *r);
  if (r == NULL) abort(); /* a lost delivery report would break the contract */
  r->b = b;
  r->err = err;
  r->shard = shard;
  r->base = base;
  r->next = NULL;
  while (*list) list = &(*list)->next; /* keep order */
  *list = r;
}

static void report_run(rn_producer_t *p, report_t *list) {
  while (list) {
    report_t *n = list->next;
    batch_report(p, list->b, list->err, list->shard, list->base);
    free(list);
    list = n;
  }
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

/* ---- sending (I/O thread) ----------------------------------------------------- */

typedef struct {
  rn_producer_t *p;
  pstream_t *st;
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

static void produce_cb(void *arg, rn_err_t err, const char *msg, Runnel__Response *resp) {
  preq_t *rq = arg;
  rn_producer_t *p = rq->p;
  report_t *reports = NULL;
  int64_t now = rn__mono_ms();
  (void)msg;
  rn_err_t req_err = err;
  if (!req_err && resp) req_err = rn__pb_error(resp->error, NULL, 0);
  if (!req_err && resp->op_case != RUNNEL__RESPONSE__OP_PRODUCE) req_err = RN_EBADREQUEST;

  pthread_mutex_lock(&p->mu);
  p->inflight_reqs--;
  for (size_t i = 0; i < rq->n; i++) {
    pshard_t *sh = rq->e[i].sh;
    pbatch_t *b = rq->e[i].b;
    sh->inflight = false;
    rn_err_t berr = req_err;
    uint64_t base = 0;
    if (!berr) {
      const Runnel__ShardBatchResult *r = NULL;
      for (size_t k = 0; k < resp->produce->n_results; k++)
        if (resp->produce->results[k]->shard == sh->index) r = resp->produce->results[k];
      if (r == NULL) {
        berr = RN_EBADREQUEST;
      } else {
        berr = rn__pb_error(r->error, NULL, 0);
        base = r->base_offset; /* a duplicate carries the original offset */
      }
    }
    if (!berr) {
      shard_unlink(sh, b);
      report_add(&reports, b, 0, sh->index, base);
      continue;
    }
    b->last_err = berr;
    bool retriable = rn_err_retriable(berr) && berr != RN_ECANCELED;
    int64_t retry_at = now + backoff_for(&p->conf, b->attempts);
    if (retriable && !p->closing && retry_at < b->deadline) {
      b->retry_at = retry_at;
      continue; /* stays sealed at the head; resent as is */
    }
    shard_unlink(sh, b);
    report_add(&reports, b, berr, sh->index, 0);
    if (p->conf.idempotent) {
      if (retriable || berr == RN_ESEQUENCE || berr == RN_EFENCED) {
        /* fate unknown or sequence state broken: never reuse this id */
        if (b->pid == p->pid) p->need_pid = true;
      } else if (sh->seq_pid == b->pid) {
        sh->next_seq = b->base_seq; /* definitely not appended: give it back */
      }
    }
  }
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
  if (resp) runnel__response__free_unpacked(resp, NULL);
  free(rq);
  report_run(p, reports);
  wake(p);
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

/* Whether the head of sh may be sent now; seals it when needed. Under mu. */
static bool head_ready(rn_producer_t *p, pshard_t *sh, int64_t now, int64_t *next) {
  pbatch_t *b = sh->head;
  if (b == NULL || sh->inflight) return false;
  if (b->sealed) {
    if (now >= b->retry_at) return true;
    if (b->retry_at < *next) *next = b->retry_at;
    return false;
  }
  bool full = rn_batch_builder_size(&b->bld) >= p->conf.max_batch_bytes || b->next != NULL;
  int64_t linger_end = b->first_ms + (int64_t)p->conf.linger_ms;
  if (!full && p->flushing == 0 && now < linger_end) {
    if (linger_end < *next) *next = linger_end;
    return false;
  }
  /* seal */
  rn_batch_producer_t prod = {0, 0, -1};
  if (p->conf.idempotent) {
    if (p->need_pid) return false; /* waits for a fresh id */
    if (sh->seq_pid != p->pid) {
      sh->seq_pid = p->pid;
      sh->next_seq = 0;
    }
    if ((int64_t)sh->next_seq + (int64_t)b->nrec > INT32_MAX) {
      p->need_pid = true; /* sequence space used up: continue under a new id */
      return false;
    }
    prod.producer_id = p->pid;
    prod.producer_epoch = p->epoch;
    prod.base_sequence = sh->next_seq;
  }
  rn_err_t err = rn_batch_builder_finish(&b->bld, p->conf.codec, &prod, &b->data, &b->len);
  if (err) {
    /* ENOMEM: try again at the next run */
    if (now + 10 < *next) *next = now + 10;
    return false;
  }
  b->sealed = true;
  b->pid = prod.producer_id;
  b->base_seq = prod.base_sequence;
  if (p->conf.idempotent) sh->next_seq += (int32_t)b->nrec;
  return true;
}

/* Fail unsealed batches past their delivery deadline. Under mu. */
static void expire_batches(rn_producer_t *p, pshard_t *sh, int64_t now, int64_t *next, report_t **reports) {
  for (pbatch_t *b = sh->head, *n; b; b = n) {
    n = b->next;
    if (b->sealed) {
      /* a sealed head waiting for a retry gives up at its deadline */
      if (!sh->inflight && b == sh->head && now >= b->deadline) {
        shard_unlink(sh, b);
        report_add(reports, b, b->last_err ? b->last_err : RN_ETIMEDOUT, sh->index, 0);
        if (p->conf.idempotent && b->pid == p->pid) p->need_pid = true;
      }
      continue;
    }
    if (now >= b->deadline) {
      shard_unlink(sh, b);
      report_add(reports, b, RN_ETIMEDOUT, sh->index, 0);
    } else if (b->deadline < *next) {
      *next = b->deadline;
    }
  }
}

/* Submit one ProduceRequest for the batches in rq (sealed heads of their
 * shards). Under mu. Takes rq. */
static void send_request(rn_producer_t *p, pstream_t *st, preq_t *rq, int64_t now, int64_t *next,
                         report_t **reports) {
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
    err = rn__client_submit(p->cl, &req, 0, produce_cb, rq);
  }
  free(sbs);
  free(sbp);
  if (err == 0) {
    p->inflight_reqs++;
    for (size_t i = 0; i < rq->n; i++) {
      rq->e[i].sh->inflight = true;
      rq->e[i].b->attempts++;
    }
    return;
  }
  /* not sent: a batch too large for any frame can never go (its sequence
   * is given back); otherwise (out of memory) try again shortly */
  for (size_t i = 0; i < rq->n; i++) {
    pbatch_t *b = rq->e[i].b;
    pshard_t *sh = rq->e[i].sh;
    if (err == RN_ETOOLARGE) {
      shard_unlink(sh, b);
      report_add(reports, b, err, sh->index, 0);
      if (sh->seq_pid == b->pid) sh->next_seq = b->base_seq;
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
  report_t *reports = NULL;
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
  /* per stream, the ready batches of all its shards go out together, in
   * requests of at most RN__MAX_REQUEST_BYTES (a single larger batch goes
   * alone) so a request stays well below the broker's frame limit */
  for (pstream_t *st = p->streams; st; st = st->next) {
    size_t n = st->desc->shard_count, bytes = 0;
    preq_t *rq = NULL;
    for (size_t i = 0; i < n; i++) {
      pshard_t *sh = &st->shards[i];
      expire_batches(p, sh, now, &next, &reports);
      if (!head_ready(p, sh, now, &next)) continue;
      if (rq != NULL && bytes + sh->head->len > RN__MAX_REQUEST_BYTES) {
        send_request(p, st, rq, now, &next, &reports);
        rq = NULL;
      }
      if (rq == NULL) {
        rq = malloc(sizeof *rq + n * sizeof rq->e[0]);
        if (rq == NULL) {
          sh->head->retry_at = now + 10; /* sealed: goes with the next run */
          if (now + 10 < next) next = now + 10;
          break;
        }
        rq->p = p;
        rq->st = st;
        rq->n = 0;
        bytes = 0;
      }
      rq->e[rq->n].sh = sh;
      rq->e[rq->n].b = sh->head;
      rq->n++;
      bytes += sh->head->len;
    }
    if (rq != NULL) send_request(p, st, rq, now, &next, &reports);
  }
  pthread_mutex_unlock(&p->mu);
  if (reports) {
    report_run(p, reports);
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
  p->cl = cl;
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
  report_t *reports = NULL;
  for (pstream_t *st = p->streams; st; st = st->next) {
    for (size_t i = 0; i < st->desc->shard_count; i++) {
      pshard_t *sh = &st->shards[i];
      while (sh->head) {
        pbatch_t *b = sh->head;
        shard_unlink(sh, b);
        report_add(&reports, b, RN_ECANCELED, sh->index, 0);
      }
    }
  }
  report_run(p, reports);
  while (p->streams) {
    pstream_t *st = p->streams;
    p->streams = st->next;
    free(st->name);
    rn_stream_desc_free(st->desc);
    free(st->shards);
    free(st);
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
  for (size_t i = 0; i < desc->shard_count; i++) st->shards[i].index = desc->shards[i].index;
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
      rn__errmsg_set("explicit hash key \"%s\" is not a decimal in [0, 2^128)", m->explicit_hash_key);
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
  int64_t deadline = rn__mono_ms() + p->conf.block_ms;

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
  if (b == NULL || b->sealed ||
      (b->nrec > 0 && rn_batch_builder_size(&b->bld) + bytes > p->conf.max_batch_bytes)) {
    pbatch_t *nb = calloc(1, sizeof *nb);
    if (nb) nb->recs = malloc(16 * sizeof *nb->recs);
    if (nb == NULL || nb->recs == NULL) {
      free(nb);
      pthread_mutex_unlock(&p->mu);
      return RN_ENOMEM;
    }
    nb->caprec = 16;
    rn_batch_builder_init(&nb->bld);
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
      batch_free(b);
    }
    pthread_mutex_unlock(&p->mu);
    return err;
  }
  int64_t now = rn__mono_ms();
  if (b->nrec == 0) {
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
  if (rn_batch_builder_size(&b->bld) >= p->conf.max_batch_bytes || p->flushing) wake_needed = true;
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
