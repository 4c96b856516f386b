/*
 * dispatch.c — Runnel__Request -> rn_core.h -> Runnel__Response.
 *
 * Each operation has a translator pair: the request half copies the
 * protobuf fields into core's plain request struct (borrowing strings and
 * batch bytes: core copies what it keeps), the answer half builds the
 * Response from core's borrowed result inside core's callback and hands it
 * to the caller's callback at once, so nothing of either side outlives the
 * call. Every failure core reports at request level becomes Response.error
 * with no operation set; per-shard failures become the items' Error, as the
 * wire format says. Requests core never sees (a missing body) are answered
 * here with RN_EBADREQUEST, with the texts the broker always used.
 *
 * Owns one small reply_t per request (caller's cb + ctx) from the call
 * until core's callback ran; and, for a call, the arena (base's rn_arena_t) its Response is
 * built in.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "dispatch_groups.h"
#include "dispatch_sinks.h"
#include "rn_base.h"

typedef struct reply {
  rn_native_reply_cb cb;
  void *ctx;
} reply_t;

/* protobuf-c's string and bytes fields are not const; packing only reads them. */
static char *unconst(const char *s) { return (char *)(uintptr_t)s; }

void rn_native_error(Runnel__Error *e, rn_err_t err, const char *msg) {
  runnel__error__init(e);
  e->code = rn_err_to_wire(err);
  e->name = unconst(rn_err_name(err));
  e->message = unconst(msg ? msg : rn_strerror(err));
  e->retriable = rn_err_retriable(err);
}

void rn_native_reply_error(rn_native_reply_cb cb, void *ctx, rn_err_t err, const char *msg) {
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__Error e;
  rn_native_error(&e, err, msg);
  resp.error = &e;
  cb(ctx, &resp);
}

static Runnel__Error *new_error(rn_arena_t *a, rn_err_t err, const char *msg) {
  Runnel__Error *e = rn_arena_alloc(a, sizeof(*e));
  rn_native_error(e, err, msg);
  return e;
}

static reply_t *reply_new(rn_native_reply_cb cb, void *ctx) {
  reply_t *r = rn_xmalloc(sizeof(*r));
  r->cb = cb;
  r->ctx = ctx;
  return r;
}

/* Answer with a request-level error only. */
static void send_error(rn_native_reply_cb cb, void *ctx, rn_err_t err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void send_error(rn_native_reply_cb cb, void *ctx, rn_err_t err, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  rn_native_reply_error(cb, ctx, err, msg);
}

/* A core result's request-level failure: answer it and free rp; true when
 * there was one. */
static bool failed(reply_t *rp, rn_err_t err, const char *msg) {
  if (!err) return false;
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__Error e;
  rn_native_error(&e, err, msg);
  resp.error = &e;
  rp->cb(rp->ctx, &resp);
  free(rp);
  return true;
}

static void finish(reply_t *rp, Runnel__Response *resp, rn_arena_t *a) {
  rp->cb(rp->ctx, resp);
  free(rp);
  rn_arena_free(a);
}

/* ---- streams ---------------------------------------------------------------------------- */

static Runnel__StreamDescription *describe(rn_arena_t *a, const rn_core_stream_desc_t *s) {
  Runnel__StreamDescription *d = rn_arena_alloc(a, sizeof(*d));
  runnel__stream_description__init(d);
  Runnel__StreamConfig *c = rn_arena_alloc(a, sizeof(*c));
  runnel__stream_config__init(c);
  c->name = unconst(s->name);
  c->shard_count = s->nshards;
  c->retention_ms = s->retention_ms;
  c->retention_bytes = s->retention_bytes;
  c->durability = (Runnel__Durability)s->durability;
  c->tiered = s->tiered;
  c->local_retention_ms = s->local_retention_ms;
  c->local_retention_bytes = s->local_retention_bytes;
  c->dedup_key = (Runnel__DedupKey)s->dedup_key;
  c->dedup_field = unconst(s->dedup_field ? s->dedup_field : "");
  c->dedup_window_ms = s->dedup_window_ms;
  c->replication = s->replication;
  c->min_insync = s->min_insync;
  d->config = c;
  d->created_ms = s->created_ms;
  d->status = unconst(rn_core_stream_state_name(s->state));
  d->n_shards = s->nshards;
  d->shards = rn_arena_alloc(a, (s->nshards + 1) * sizeof(*d->shards));
  for (uint32_t i = 0; i < s->nshards; i++) {
    const rn_core_shard_desc_t *sh = &s->shards[i];
    Runnel__ShardInfo *si = rn_arena_alloc(a, sizeof(*si));
    runnel__shard_info__init(si);
    si->index = sh->index;
    si->shard_id = rn_arena_alloc(a, 32);
    snprintf(si->shard_id, 32, "shardId-%012u", sh->index);
    si->hash_key_start.data = (uint8_t *)(uintptr_t)sh->hash_start;
    si->hash_key_start.len = 16;
    si->hash_key_end.data = (uint8_t *)(uintptr_t)sh->hash_end;
    si->hash_key_end.len = 16;
    si->start_offset = sh->start_offset;
    si->end_offset = sh->end_offset;
    si->stored_bytes = sh->stored_bytes;
    si->last_append_ms = sh->last_append_ms;
    si->remote_start_offset = sh->remote_start_offset;
    si->local_start_offset = sh->local_start_offset;
    si->remote_bytes = sh->remote_bytes;
    si->remote_segments = sh->remote_segments;
    si->local_segments = sh->local_segments;
    si->upload_backlog_bytes = sh->backlog_bytes;
    si->upload_backlog_segments = sh->backlog_segments;
    si->upload_backlog_age_ms = sh->backlog_age_ms;
    const rn_core_placement_t *pl = &sh->placement;
    si->leader = pl->leader;
    si->leader_epoch = pl->leader_epoch;
    si->leader_address = unconst(pl->leader_address);
    si->n_replicas = pl->nreplicas;
    si->replicas = (uint32_t *)(uintptr_t)pl->replicas;
    si->n_isr = pl->nisr;
    si->isr = (uint32_t *)(uintptr_t)pl->isr;
    d->shards[i] = si;
  }
  return d;
}

static void on_create(void *ctx, const rn_core_create_result_t *r) {
  reply_t *rp = ctx;
  if (failed(rp, r->err, r->msg)) return;
  rn_arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__CreateStreamResponse cr = RUNNEL__CREATE_STREAM_RESPONSE__INIT;
  cr.stream = describe(&a, r->stream);
  resp.op_case = RUNNEL__RESPONSE__OP_CREATE_STREAM;
  resp.create_stream = &cr;
  finish(rp, &resp, &a);
}

static void create_stream(rn_core_t *core, const Runnel__CreateStreamRequest *r, rn_native_reply_cb cb, void *ctx) {
  const Runnel__StreamConfig *c = r ? r->config : NULL;
  if (!c) return send_error(cb, ctx, RN_EBADREQUEST, "CreateStream needs a config");
  rn_core_create_req_t cr = {
      .name = c->name,
      .shard_count = c->shard_count,
      .retention_ms = c->retention_ms,
      .retention_bytes = c->retention_bytes,
      .durability = (rn_durability_t)c->durability,
      .tiering = c->tiered ? RN_CORE_TIERING_ON : RN_CORE_TIERING_OFF,
      .local_retention_ms = c->tiered ? c->local_retention_ms : 0,
      .local_retention_bytes = c->tiered ? c->local_retention_bytes : 0,
      .dedup_key = (rn_core_dedup_key_t)c->dedup_key, /* out of range: refused by core */
      .dedup_field = c->dedup_field,
      .dedup_window_ms = c->dedup_window_ms,
      .replication = c->replication,
      .min_insync = c->min_insync,
  };
  rn_core_create_stream(core, &cr, on_create, reply_new(cb, ctx));
}

static void on_delete(void *ctx, const rn_core_delete_result_t *r) {
  reply_t *rp = ctx;
  if (failed(rp, r->err, r->msg)) return;
  rn_arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__DeleteStreamResponse dr = RUNNEL__DELETE_STREAM_RESPONSE__INIT;
  resp.op_case = RUNNEL__RESPONSE__OP_DELETE_STREAM;
  resp.delete_stream = &dr;
  finish(rp, &resp, &a);
}

static void delete_stream(rn_core_t *core, const Runnel__DeleteStreamRequest *r, rn_native_reply_cb cb, void *ctx) {
  if (!r) return send_error(cb, ctx, RN_EBADREQUEST, "DeleteStream needs a name");
  rn_core_delete_req_t dr = {.name = r->name};
  rn_core_delete_stream(core, &dr, on_delete, reply_new(cb, ctx));
}

static void on_list(void *ctx, const rn_core_list_result_t *r) {
  reply_t *rp = ctx;
  if (failed(rp, r->err, r->msg)) return;
  rn_arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__ListStreamsResponse lr = RUNNEL__LIST_STREAMS_RESPONSE__INIT;
  lr.n_names = r->nnames;
  lr.names = rn_arena_alloc(&a, (r->nnames + 1) * sizeof(char *));
  for (uint32_t i = 0; i < r->nnames; i++) lr.names[i] = unconst(r->names[i]);
  resp.op_case = RUNNEL__RESPONSE__OP_LIST_STREAMS;
  resp.list_streams = &lr;
  finish(rp, &resp, &a);
}

static void on_describe(void *ctx, const rn_core_describe_result_t *r) {
  reply_t *rp = ctx;
  if (failed(rp, r->err, r->msg)) return;
  rn_arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__DescribeStreamResponse dr = RUNNEL__DESCRIBE_STREAM_RESPONSE__INIT;
  dr.stream = describe(&a, r->stream);
  resp.op_case = RUNNEL__RESPONSE__OP_DESCRIBE_STREAM;
  resp.describe_stream = &dr;
  finish(rp, &resp, &a);
}

static void describe_stream(rn_core_t *core, const Runnel__DescribeStreamRequest *r, rn_native_reply_cb cb, void *ctx) {
  if (!r) return send_error(cb, ctx, RN_EBADREQUEST, "DescribeStream needs a name");
  rn_core_describe_req_t dr = {.name = r->name};
  rn_core_describe_stream(core, &dr, on_describe, reply_new(cb, ctx));
}

static void on_retention(void *ctx, const rn_core_retention_result_t *r) {
  reply_t *rp = ctx;
  if (failed(rp, r->err, r->msg)) return;
  rn_arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__SetRetentionResponse sr = RUNNEL__SET_RETENTION_RESPONSE__INIT;
  sr.stream = describe(&a, r->stream);
  resp.op_case = RUNNEL__RESPONSE__OP_SET_RETENTION;
  resp.set_retention = &sr;
  finish(rp, &resp, &a);
}

static void set_retention(rn_core_t *core, const Runnel__SetRetentionRequest *r, rn_native_reply_cb cb, void *ctx) {
  if (!r) return send_error(cb, ctx, RN_EBADREQUEST, "SetRetention needs a name");
  rn_core_retention_req_t sr = {.name = r->name,
                               .retention_ms = r->retention_ms,
                               .retention_bytes = r->retention_bytes,
                               .local_retention_ms = r->local_retention_ms,
                               .local_retention_bytes = r->local_retention_bytes};
  rn_core_set_retention(core, &sr, on_retention, reply_new(cb, ctx));
}

static void on_restore(void *ctx, const rn_core_restore_result_t *r) {
  reply_t *rp = ctx;
  if (failed(rp, r->err, r->msg)) return;
  rn_arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__RestoreStreamResponse rr = RUNNEL__RESTORE_STREAM_RESPONSE__INIT;
  rr.stream = describe(&a, r->stream);
  resp.op_case = RUNNEL__RESPONSE__OP_RESTORE_STREAM;
  resp.restore_stream = &rr;
  finish(rp, &resp, &a);
}

static void restore_stream(rn_core_t *core, const Runnel__RestoreStreamRequest *r, rn_native_reply_cb cb, void *ctx) {
  if (!r) return send_error(cb, ctx, RN_EBADREQUEST, "RestoreStream needs a name");
  rn_core_restore_req_t rr = {.name = r->name};
  rn_core_restore_stream(core, &rr, on_restore, reply_new(cb, ctx));
}

/* ---- tiered storage ------------------------------------------------------------------------ */

/* The upper bound of the bucket where the q-quantile of h falls; 0 when h
 * is empty (a histogram of rn_hist_latency_bounds). */
static double hist_quantile(const rn_hist_t *h, double q) {
  if (h->count == 0) return 0;
  uint64_t want = (uint64_t)((double)h->count * q);
  if (want < 1) want = 1;
  uint64_t cum = 0;
  for (int k = 0; k < RN_HIST_BUCKETS; k++) {
    cum += h->buckets[k];
    if (cum >= want) return rn_hist_latency_bounds[k];
  }
  return rn_hist_latency_bounds[RN_HIST_BUCKETS - 1]; /* in +Inf: at least the last bound */
}

static void tier_status(rn_core_t *core, rn_native_reply_cb cb, void *ctx) {
  rn_core_tier_status_t ts;
  rn_core_tier_status(core, &ts);
  rn_arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__TierStatusResponse tr;
  runnel__tier_status_response__init(&tr);
  tr.enabled = ts.enabled;
  tr.store = unconst(ts.store ? ts.store : "");
  tr.location = unconst(ts.location ? ts.location : "");
  tr.uploads_active = ts.stats.uploads_active;
  tr.backlog_bytes = ts.backlog_bytes;
  tr.backlog_segments = ts.backlog_segments;
  tr.backlog_age_ms = ts.backlog_age_ms;
  tr.bytes_uploaded = ts.stats.bytes_uploaded;
  tr.bytes_downloaded = ts.stats.bytes_downloaded;
  tr.cache_bytes = ts.stats.cache_bytes;
  tr.cache_limit_bytes = ts.cache_limit_bytes;
  tr.cache_hits = ts.stats.cache_hits;
  tr.cache_misses = ts.stats.cache_misses;
  tr.cache_evictions = ts.stats.cache_evictions;
  tr.orphans_collected = ts.stats.orphans_collected;
  tr.remote_deletes = ts.stats.remote_deletes;
  tr.corrupt_objects = ts.stats.corrupt_objects;
  if (ts.stats.last_err) tr.last_error = new_error(&a, ts.stats.last_err, ts.stats.last_error);
  tr.tiered_streams = ts.tiered_streams;
  tr.tiered_shards = ts.tiered_shards;
  tr.remote_bytes = ts.remote_bytes;
  tr.remote_segments = ts.remote_segments;
  tr.disk_used_percent = ts.disk_used_percent;
  tr.disk_high_water = ts.disk_high_water;
  tr.backpressure = ts.backpressure;
  tr.gets_inflight = ts.gets_inflight;
  tr.gets_inflight_max = ts.gets_inflight_max;
  tr.delete_jobs = ts.delete_jobs;
  if (ts.enabled) {
    tr.n_ops = RN_OBJ_NOPS;
    tr.ops = rn_arena_alloc(&a, RN_OBJ_NOPS * sizeof(*tr.ops));
    for (int op = 0; op < RN_OBJ_NOPS; op++) {
      Runnel__TierOpStats *o = rn_arena_alloc(&a, sizeof(*o));
      runnel__tier_op_stats__init(o);
      const rn_objstore_stats_t *st = &ts.stats.store;
      o->op = unconst(rn_obj_op_name((rn_obj_op_t)op));
      o->requests = st->requests[op];
      o->errors = st->errors[op];
      o->retries = st->retries[op];
      o->latency_count = st->seconds[op].count;
      o->latency_sum_seconds = st->seconds[op].sum;
      o->latency_p50_seconds = hist_quantile(&st->seconds[op], 0.50);
      o->latency_p99_seconds = hist_quantile(&st->seconds[op], 0.99);
      tr.ops[op] = o;
    }
  }
  resp.op_case = RUNNEL__RESPONSE__OP_TIER_STATUS;
  resp.tier_status = &tr;
  cb(ctx, &resp);
  rn_arena_free(&a);
}

static void on_producer(void *ctx, const rn_core_producer_result_t *r) {
  reply_t *rp = ctx;
  if (failed(rp, r->err, r->msg)) return;
  rn_arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__InitProducerResponse ir = RUNNEL__INIT_PRODUCER_RESPONSE__INIT;
  ir.producer_id = r->producer_id;
  ir.producer_epoch = r->producer_epoch;
  resp.op_case = RUNNEL__RESPONSE__OP_INIT_PRODUCER;
  resp.init_producer = &ir;
  finish(rp, &resp, &a);
}

/* ---- produce ----------------------------------------------------------------------------- */

static void on_produce(void *ctx, const rn_core_produce_result_t *r) {
  reply_t *rp = ctx;
  if (failed(rp, r->err, r->msg)) return;
  rn_arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__ProduceResponse pr = RUNNEL__PRODUCE_RESPONSE__INIT;
  pr.n_results = r->nresults;
  pr.results = rn_arena_alloc(&a, (r->nresults + 1) * sizeof(*pr.results));
  Runnel__ShardBatchResult *res = rn_arena_alloc(&a, (r->nresults + 1) * sizeof(*res));
  for (size_t i = 0; i < r->nresults; i++) {
    const rn_core_batch_result_t *b = &r->results[i];
    runnel__shard_batch_result__init(&res[i]);
    res[i].shard = b->shard;
    if (b->err) res[i].error = new_error(&a, b->err, b->msg);
    res[i].base_offset = b->base_offset;
    res[i].duplicate = b->duplicate;
    res[i].stored_count = b->stored_count;
    if (b->nhits) {
      Runnel__DedupHit *h = rn_arena_alloc(&a, b->nhits * sizeof(*h));
      res[i].dedup_hits = rn_arena_alloc(&a, b->nhits * sizeof(*res[i].dedup_hits));
      res[i].n_dedup_hits = b->nhits;
      for (uint32_t k = 0; k < b->nhits; k++) {
        runnel__dedup_hit__init(&h[k]);
        h[k].index = b->hits[k].index;
        h[k].shard = b->hits[k].shard;
        h[k].offset = b->hits[k].offset;
        res[i].dedup_hits[k] = &h[k];
      }
    }
    pr.results[i] = &res[i];
  }
  resp.op_case = RUNNEL__RESPONSE__OP_PRODUCE;
  resp.produce = &pr;
  finish(rp, &resp, &a);
}

#define STACK_BATCHES 64

static void produce(rn_core_t *core, const Runnel__ProduceRequest *r, rn_native_reply_cb cb, void *ctx) {
  rn_core_batch_in_t stack[STACK_BATCHES];
  size_t n = r ? r->n_batches : 0;
  rn_core_batch_in_t *b = n <= STACK_BATCHES ? stack : malloc(n * sizeof(*b));
  if (!b) return send_error(cb, ctx, RN_ENOMEM, "broker out of memory");
  for (size_t i = 0; i < n; i++) {
    b[i].shard = r->batches[i]->shard;
    b[i].data = r->batches[i]->batch.data;
    b[i].len = r->batches[i]->batch.len;
  }
  rn_core_produce_req_t pr = {.stream = r ? r->stream : NULL, .batches = b, .nbatches = n, .forwarded = r && r->forwarded};
  rn_core_produce(core, &pr, on_produce, reply_new(cb, ctx));
  if (b != stack) free(b);
}

/* ---- fetch and offsets ------------------------------------------------------------------------ */

static rn_core_shard_pos_t *positions(const Runnel__ShardFetch *const *in, size_t n, rn_core_shard_pos_t *stack,
                                      size_t nstack) {
  rn_core_shard_pos_t *p = n <= nstack ? stack : malloc(n * sizeof(*p));
  if (!p) return NULL;
  for (size_t i = 0; i < n; i++) {
    p[i].shard = in[i]->shard;
    p[i].kind = (rn_core_pos_kind_t)in[i]->kind;
    p[i].value = in[i]->value;
    p[i].max_bytes = in[i]->max_bytes;
  }
  return p;
}

static void on_fetch(void *ctx, const rn_core_fetch_result_t *r) {
  reply_t *rp = ctx;
  if (failed(rp, r->err, r->msg)) return;
  rn_arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__FetchResponse fr = RUNNEL__FETCH_RESPONSE__INIT;
  fr.n_results = r->nresults;
  fr.results = rn_arena_alloc(&a, (r->nresults + 1) * sizeof(*fr.results));
  Runnel__ShardFetchResult *res = rn_arena_alloc(&a, (r->nresults + 1) * sizeof(*res));
  for (size_t i = 0; i < r->nresults; i++) {
    const rn_core_fetch_shard_result_t *s = &r->results[i];
    runnel__shard_fetch_result__init(&res[i]);
    res[i].shard = s->shard;
    res[i].offset = s->offset;
    res[i].next_offset = s->next_offset;
    res[i].start_offset = s->start_offset;
    res[i].end_offset = s->end_offset;
    res[i].committed = s->committed;
    res[i].leader_epoch = s->leader_epoch;
    if (s->err) {
      res[i].error = new_error(&a, s->err, s->msg);
    } else {
      res[i].batches.data = (uint8_t *)(uintptr_t)s->batches;
      res[i].batches.len = s->batches_len;
    }
    fr.results[i] = &res[i];
  }
  resp.op_case = RUNNEL__RESPONSE__OP_FETCH;
  resp.fetch = &fr;
  finish(rp, &resp, &a); /* the caller may rn_core_fetch_hold inside */
}

static void fetch(rn_core_t *core, const Runnel__FetchRequest *r, rn_native_reply_cb cb, void *ctx) {
  rn_core_shard_pos_t stack[32];
  size_t n = r ? r->n_shards : 0;
  rn_core_shard_pos_t *p = n ? positions((const Runnel__ShardFetch *const *)r->shards, n, stack, 32) : stack;
  if (!p) return send_error(cb, ctx, RN_ENOMEM, "broker out of memory");
  rn_core_fetch_req_t fr = {
      .stream = r ? r->stream : NULL,
      .shards = p,
      .nshards = n,
      .max_wait_ms = r ? r->max_wait_ms : 0,
      .max_bytes = r ? r->max_bytes : 0,
      .replica_id = r ? r->replica_id : 0,
      .leader_epoch = r ? r->leader_epoch : 0,
      .stream_uid = r ? r->stream_uid : 0,
      .forwarded = r && r->forwarded,
  };
  rn_core_fetch(core, &fr, on_fetch, reply_new(cb, ctx));
  if (p != stack) free(p);
}

static void on_offsets(void *ctx, const rn_core_offsets_result_t *r) {
  reply_t *rp = ctx;
  if (failed(rp, r->err, r->msg)) return;
  rn_arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__ListOffsetsResponse lr = RUNNEL__LIST_OFFSETS_RESPONSE__INIT;
  lr.n_shards = r->nshards;
  lr.shards = rn_arena_alloc(&a, (r->nshards + 1) * sizeof(*lr.shards));
  Runnel__ShardOffsets *so = rn_arena_alloc(&a, (r->nshards + 1) * sizeof(*so));
  for (size_t i = 0; i < r->nshards; i++) {
    const rn_core_shard_offsets_t *s = &r->shards[i];
    runnel__shard_offsets__init(&so[i]);
    so[i].shard = s->shard;
    if (s->err) so[i].error = new_error(&a, s->err, s->msg);
    so[i].offset = s->offset;
    so[i].start_offset = s->start_offset;
    so[i].end_offset = s->end_offset;
    lr.shards[i] = &so[i];
  }
  resp.op_case = RUNNEL__RESPONSE__OP_LIST_OFFSETS;
  resp.list_offsets = &lr;
  finish(rp, &resp, &a);
}

static void list_offsets(rn_core_t *core, const Runnel__ListOffsetsRequest *r, rn_native_reply_cb cb, void *ctx) {
  rn_core_shard_pos_t stack[32];
  size_t n = r ? r->n_shards : 0;
  rn_core_shard_pos_t *p = n ? positions((const Runnel__ShardFetch *const *)r->shards, n, stack, 32) : stack;
  if (!p) return send_error(cb, ctx, RN_ENOMEM, "broker out of memory");
  rn_core_offsets_req_t orq = {.stream = r ? r->stream : NULL, .shards = p, .nshards = n};
  rn_core_list_offsets(core, &orq, on_offsets, reply_new(cb, ctx));
  if (p != stack) free(p);
}

/* ---- broker info ------------------------------------------------------------------------------- */

static void on_info(void *ctx, const rn_core_info_result_t *r) {
  reply_t *rp = ctx;
  if (failed(rp, r->err, r->msg)) return;
  rn_arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__BrokerInfoResponse bi;
  runnel__broker_info_response__init(&bi);
  Runnel__BrokerLimits lim = RUNNEL__BROKER_LIMITS__INIT;
  lim.max_record_bytes = r->max_record_bytes;
  lim.max_batch_bytes = r->max_batch_bytes;
  lim.max_frame_bytes = r->max_frame_bytes;
  lim.max_fetch_bytes = r->max_fetch_bytes;
  bi.limits = &lim;
  bi.version = unconst(r->version);
  bi.start_ms = r->start_ms;
  bi.data_dir = unconst(r->data_dir);
  bi.data_dir_free_bytes = r->data_dir_free_bytes;
  bi.data_dir_total_bytes = r->data_dir_total_bytes;
  if (r->data_dir_err) bi.data_dir_error = new_error(&a, r->data_dir_err, r->data_dir_msg);
  bi.stream_count = r->stream_count;
  bi.shard_count = r->shard_count;
  bi.n_failed_shards = r->nfailed;
  bi.failed_shards = rn_arena_alloc(&a, (r->nfailed + 1) * sizeof(*bi.failed_shards));
  for (size_t i = 0; i < r->nfailed; i++) {
    Runnel__FailedShard *fs = rn_arena_alloc(&a, sizeof(*fs));
    runnel__failed_shard__init(fs);
    fs->stream = unconst(r->failed[i].stream);
    fs->shard = r->failed[i].shard;
    fs->error = new_error(&a, r->failed[i].err, r->failed[i].msg);
    bi.failed_shards[i] = fs;
  }
  if (r->nfailed == 0) bi.failed_shards = NULL;
  bi.health = unconst(r->degraded ? "degraded" : "ok");
  resp.op_case = RUNNEL__RESPONSE__OP_BROKER_INFO;
  resp.broker_info = &bi;
  finish(rp, &resp, &a);
}

static void broker_info(rn_core_t *core, const Runnel__BrokerInfoRequest *r, rn_native_reply_cb cb, void *ctx) {
  rn_core_info_req_t ir = {.skip_disk = r != NULL && r->skip_disk};
  rn_core_broker_info(core, &ir, on_info, reply_new(cb, ctx));
}

/* ---- replication: a follower asks where an epoch ends (KIP-279) ---------------------------------- */

static void epoch_end(rn_core_t *core, const Runnel__EpochEndRequest *r, rn_native_reply_cb cb, void *ctx) {
  if (!r) return send_error(cb, ctx, RN_EBADREQUEST, "EpochEnd without a body");
  rn_core_stream_t *st = rn_core_stream_find(core, r->stream ? r->stream : "");
  if (!st || (r->stream_uid && rn_core_stream_uid(st) != r->stream_uid))
    return send_error(cb, ctx, RN_ENOSTREAM, "stream %s not found", r->stream ? r->stream : "");
  if (r->shard >= rn_core_stream_nshards(st))
    return send_error(cb, ctx, RN_ENOSHARD, "stream %s has no shard %u", r->stream, r->shard);
  rn_core_shard_t *sh = rn_core_stream_shard(st, r->shard);
  if (rn_core_shard_role(sh) != RN_CORE_ROLE_LEADER)
    return send_error(cb, ctx, RN_ENOTLEADER, "stream %s shard %u: this broker is not its leader", r->stream, r->shard);
  uint32_t mine = rn_core_shard_leader_epoch(sh);
  if (r->leader_epoch < mine)
    return send_error(cb, ctx, RN_ESTALEEPOCH, "stream %s shard %u: epoch %u is older than the leader's %u", r->stream,
                      r->shard, r->leader_epoch, mine);
  if (r->leader_epoch > mine)
    return send_error(cb, ctx, RN_ENOTLEADER, "stream %s shard %u: epoch %u is newer than this leader's %u", r->stream,
                      r->shard, r->leader_epoch, mine);
  uint32_t found = 0;
  uint64_t end = 0;
  rn_err_t err = rn_core_shard_epoch_end(sh, r->epoch, &found, &end);
  if (err) return send_error(cb, ctx, err, "stream %s shard %u: epoch lookup failed", r->stream, r->shard);
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__EpochEndResponse er = RUNNEL__EPOCH_END_RESPONSE__INIT;
  er.epoch = found;
  er.end_offset = end;
  er.leader_epoch = mine;
  resp.op_case = RUNNEL__RESPONSE__OP_EPOCH_END;
  resp.epoch_end = &er;
  cb(ctx, &resp);
}

/* ---- dispatch ---------------------------------------------------------------------------------- */

void rn_native_handle(rn_core_t *core, const Runnel__Request *req, rn_native_reply_cb cb, void *ctx) {
  switch (req->op_case) {
  case RUNNEL__REQUEST__OP_CREATE_STREAM: return create_stream(core, req->create_stream, cb, ctx);
  case RUNNEL__REQUEST__OP_DELETE_STREAM: return delete_stream(core, req->delete_stream, cb, ctx);
  case RUNNEL__REQUEST__OP_LIST_STREAMS: return rn_core_list_streams(core, on_list, reply_new(cb, ctx));
  case RUNNEL__REQUEST__OP_DESCRIBE_STREAM: return describe_stream(core, req->describe_stream, cb, ctx);
  case RUNNEL__REQUEST__OP_SET_RETENTION: return set_retention(core, req->set_retention, cb, ctx);
  case RUNNEL__REQUEST__OP_RESTORE_STREAM: return restore_stream(core, req->restore_stream, cb, ctx);
  case RUNNEL__REQUEST__OP_INIT_PRODUCER: return rn_core_init_producer(core, on_producer, reply_new(cb, ctx));
  case RUNNEL__REQUEST__OP_PRODUCE: return produce(core, req->produce, cb, ctx);
  case RUNNEL__REQUEST__OP_FETCH: return fetch(core, req->fetch, cb, ctx);
  case RUNNEL__REQUEST__OP_LIST_OFFSETS: return list_offsets(core, req->list_offsets, cb, ctx);
  case RUNNEL__REQUEST__OP_GROUP_HEARTBEAT:
  case RUNNEL__REQUEST__OP_GROUP_COMMIT:
  case RUNNEL__REQUEST__OP_GROUP_CREATE:
  case RUNNEL__REQUEST__OP_GROUP_LIST:
  case RUNNEL__REQUEST__OP_GROUP_DESCRIBE:
  case RUNNEL__REQUEST__OP_GROUP_DELETE:
  case RUNNEL__REQUEST__OP_GROUP_RESET: return rn__native_handle_group(core, req, cb, ctx);
  case RUNNEL__REQUEST__OP_SINK_CREATE:
  case RUNNEL__REQUEST__OP_SINK_LIST:
  case RUNNEL__REQUEST__OP_SINK_DESCRIBE:
  case RUNNEL__REQUEST__OP_SINK_PAUSE:
  case RUNNEL__REQUEST__OP_SINK_DELETE: return rn__native_handle_sink(core, req, cb, ctx);
  case RUNNEL__REQUEST__OP_BROKER_INFO: return broker_info(core, req->broker_info, cb, ctx);
  case RUNNEL__REQUEST__OP_TIER_STATUS: return tier_status(core, cb, ctx);
  case RUNNEL__REQUEST__OP_EPOCH_END: return epoch_end(core, req->epoch_end, cb, ctx);
  default: return send_error(cb, ctx, RN_EUNKNOWNOP, "unknown operation %d", (int)req->op_case);
  }
}
