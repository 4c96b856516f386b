/*
 * test_dedup.c — the dedup window (broker/core/dedup.c) alone, with time
 * given to every call (no clock, no sleeps): expiry by arrival, the
 * max_ids bound and its eviction count, growth of the ring and index with
 * removals in between, pending entries; the JSON field scanner; then core's
 * produce on a dedup stream through rn_core.h: mixed batches with hits on
 * both shards and inside the batch, records without the field and data
 * that is not JSON, a batch made only of hits from an idempotent producer
 * (its sequence advances; its retry answers duplicate with the same hits),
 * a copy in flight waiting for its first copy, validation at create, and
 * the window rebuilt from the log at open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coretest.h"
#include "dedup.h"
#include "runnel/batch.h"

static rn__dedup_hash_t H(uint64_t i) {
  char id[32];
  int n = snprintf(id, sizeof id, "id-%llu", (unsigned long long)i);
  return rn__dedup_hash(id, (size_t)n);
}

/* ---- the window ---------------------------------------------------------------------- */

static void test_window_expiry(void **state) {
  (void)state;
  rn__dedup_t *d = rn__dedup_new(1000, 100);
  assert_non_null(d);
  assert_non_null(rn__dedup_insert(d, H(1), 0, 10, 5000, NULL));
  assert_non_null(rn__dedup_insert(d, H(2), 1, 20, 5500, NULL));
  rn__dedup_entry_t *e = rn__dedup_find(d, H(1), 5999);
  assert_non_null(e);
  assert_int_equal(e->shard, 0);
  assert_int_equal(e->offset, 10);
  /* At 6001 id 1 (arrived 5000) is past the 1000 ms window, id 2 is not. */
  assert_null(rn__dedup_find(d, H(1), 6001));
  assert_non_null(rn__dedup_find(d, H(2), 6001));
  rn__dedup_expire(d, 6001);
  assert_int_equal(rn__dedup_count(d), 1);
  rn__dedup_expire(d, 6501);
  assert_int_equal(rn__dedup_count(d), 0);
  assert_null(rn__dedup_find(d, H(2), 6501));
  assert_int_equal(d->evictions, 0);
  rn__dedup_free(d);
}

static void test_window_bound_and_growth(void **state) {
  (void)state;
  const uint32_t max = 5000;
  rn__dedup_t *d = rn__dedup_new(3600 * 1000, max);
  size_t bytes0 = rn__dedup_bytes(d);
  for (uint64_t i = 0; i < 20000; i++) {
    assert_non_null(rn__dedup_insert(d, H(i), (uint32_t)(i % 4), i, 1000 + (int64_t)i, NULL));
    assert_true(rn__dedup_count(d) <= max);
  }
  assert_int_equal(rn__dedup_count(d), max);
  assert_int_equal(d->evictions, 20000 - max);
  assert_true(rn__dedup_bytes(d) > bytes0); /* grew from its first 256 slots */
  assert_true(d->ring_cap <= 8192);          /* and no further than the bound needs */
  /* The newest max are found with their offsets, the older ones were evicted. */
  for (uint64_t i = 0; i < 20000; i++) {
    rn__dedup_entry_t *e = rn__dedup_find(d, H(i), 30000);
    if (i < 20000 - max) {
      assert_null(e);
    } else {
      assert_non_null(e);
      assert_int_equal(e->offset, i);
      assert_int_equal(e->shard, i % 4);
    }
  }
  rn__dedup_free(d);
}

static void test_window_pending_and_remove(void **state) {
  (void)state;
  rn__dedup_t *d = rn__dedup_new(1000, 1u << 20);
  int tok_a, tok_b;
  /* Growth with removals in between: every live id stays findable. */
  for (uint64_t i = 0; i < 3000; i++) {
    assert_non_null(rn__dedup_insert(d, H(i), 0, i, 100, (i % 3) ? &tok_a : &tok_b));
    if (i % 7 == 0) rn__dedup_remove(d, H(i), (i % 3) ? &tok_a : &tok_b);
  }
  for (uint64_t i = 0; i < 3000; i++) {
    rn__dedup_entry_t *e = rn__dedup_find(d, H(i), 100);
    if (i % 7 == 0) {
      assert_null(e);
      continue;
    }
    assert_non_null(e);
    assert_int_equal(e->offset, i);
    assert_ptr_equal(e->pending, (i % 3) ? (void *)&tok_a : (void *)&tok_b);
  }
  /* Another owner's token changes nothing. */
  rn__dedup_remove(d, H(1), &tok_b);
  assert_non_null(rn__dedup_find(d, H(1), 100));
  assert_null(rn__dedup_owned(d, H(1), &tok_b));
  rn__dedup_entry_t *e = rn__dedup_owned(d, H(1), &tok_a);
  assert_non_null(e);
  e->pending = NULL; /* settled */
  assert_null(rn__dedup_owned(d, H(1), &tok_a));
  rn__dedup_expire(d, 2000);
  assert_int_equal(rn__dedup_count(d), 0);
  assert_int_equal(d->used, 0);
  rn__dedup_free(d);
}

/* ---- the JSON field ------------------------------------------------------------------------ */

static bool field(const char *json, const char *path, char *out, size_t cap) {
  const uint8_t *id;
  size_t n;
  if (!rn__dedup_json_field((const uint8_t *)json, strlen(json), path, &id, &n)) return false;
  snprintf(out, cap, "%.*s", (int)n, (const char *)id);
  return true;
}

static void test_json_field(void **state) {
  (void)state;
  char v[64];
  assert_true(field("{\"event_uuid\":\"abc\",\"x\":[1,2,{\"y\":null}]}", "event_uuid", v, sizeof v));
  assert_string_equal(v, "abc");
  assert_true(field(" { \"a\" : 1, \"event_uuid\" : 42 } ", "event_uuid", v, sizeof v));
  assert_string_equal(v, "42");
  assert_true(field("{\"meta\":{\"id\":\"m-1\",\"k\":true},\"id\":\"top\"}", "meta.id", v, sizeof v));
  assert_string_equal(v, "m-1");
  assert_true(field("{\"s\":\"q\\\"uote\\u0041\"}", "s", v, sizeof v));
  assert_string_equal(v, "q\\\"uote\\u0041"); /* raw bytes, escapes as written */
  /* Missing, wrong type, nested under a non-object, not an object at all. */
  assert_false(field("{\"a\":1}", "event_uuid", v, sizeof v));
  assert_false(field("{\"event_uuid\":{\"x\":1}}", "event_uuid", v, sizeof v));
  assert_false(field("{\"event_uuid\":null}", "event_uuid", v, sizeof v));
  assert_false(field("{\"meta\":\"x\"}", "meta.id", v, sizeof v));
  assert_false(field("[{\"event_uuid\":\"a\"}]", "event_uuid", v, sizeof v));
  assert_false(field("\"event_uuid\"", "event_uuid", v, sizeof v));
  /* Invalid JSON, even when the field itself was fine. */
  assert_false(field("{\"event_uuid\":\"a\",}", "event_uuid", v, sizeof v));
  assert_false(field("{\"event_uuid\":\"a\"} trailing", "event_uuid", v, sizeof v));
  assert_false(field("{\"event_uuid\":\"a\"", "event_uuid", v, sizeof v));
  assert_false(field("{\"event_uuid\":01}", "event_uuid", v, sizeof v));
  assert_false(field("{\"event_uuid\":\"a\tb\"}", "event_uuid", v, sizeof v));
  assert_false(field("not json", "event_uuid", v, sizeof v));
  assert_false(field("", "event_uuid", v, sizeof v));
  /* Strings are UTF-8 and surrogate escapes come in pairs. */
  assert_true(field("{\"k\":\"\xc3\xa9t\xc3\xa9\",\"s\":\"\\ud83d\\ude00\"}", "k", v, sizeof v));
  assert_false(field("{\"k\":\"\xe4\"}", "k", v, sizeof v));         /* truncated sequence */
  assert_false(field("{\"k\":\"\xc0\xaf\"}", "k", v, sizeof v));     /* overlong */
  assert_false(field("{\"k\":\"\xed\xa0\x80\"}", "k", v, sizeof v)); /* a surrogate */
  assert_false(field("{\"k\":\"\\udd00\"}", "k", v, sizeof v));     /* a lone low surrogate */
  assert_false(field("{\"k\":\"\\ud83dx\"}", "k", v, sizeof v));    /* a high one alone */
  /* The first of two members with the name wins. */
  assert_true(field("{\"k\":\"1\",\"k\":\"2\"}", "k", v, sizeof v));
  assert_string_equal(v, "1");
  /* Nesting is bounded. */
  char deep[300] = "{\"a\":";
  for (int i = 0; i < 100; i++) strcat(deep, "[");
  for (int i = 0; i < 100; i++) strcat(deep, "]");
  strcat(deep, ",\"k\":\"v\"}");
  assert_false(field(deep, "k", v, sizeof v));
}

/* ---- core: produce to a dedup stream ---------------------------------------------------------- */

typedef struct rec {
  const char *value; /* the data */
  const char *id;    /* the record id, NULL = none */
} rec_t;

static void build(rn_batch_builder_t *b, const rec_t *recs, int n, const rn_batch_producer_t *prod,
                  const uint8_t **bytes, size_t *len) {
  rn_batch_builder_init(b);
  for (int i = 0; i < n; i++) {
    rn_record_t r;
    memset(&r, 0, sizeof r);
    r.timestamp = 1000 + i;
    r.key = (const uint8_t *)"k";
    r.key_len = 1;
    r.value = (const uint8_t *)recs[i].value;
    r.value_len = strlen(recs[i].value);
    if (recs[i].id) {
      r.id = (const uint8_t *)recs[i].id;
      r.id_len = strlen(recs[i].id);
    }
    assert_int_equal(rn_batch_builder_add(b, &r), 0);
  }
  assert_int_equal(rn_batch_builder_finish(b, RN_CODEC_NONE, prod, bytes, len), 0);
}

#define MAXB 4
typedef struct res {
  bool done;
  rn_err_t err;
  size_t n;
  struct {
    rn_err_t err;
    uint32_t shard;
    uint64_t base;
    bool duplicate;
    uint32_t stored, nhits;
    rn_core_dedup_hit_t hits[16];
    uint32_t pos_shard[16];
    uint64_t pos_off[16];
  } b[MAXB];
} res_t;

static void on_res(void *ctx, const rn_core_produce_result_t *r) {
  res_t *w = ctx;
  w->done = true;
  w->err = r->err;
  w->n = r->nresults;
  for (size_t i = 0; i < r->nresults && i < MAXB; i++) {
    const rn_core_batch_result_t *x = &r->results[i];
    w->b[i].err = x->err;
    w->b[i].shard = x->shard;
    w->b[i].base = x->base_offset;
    w->b[i].duplicate = x->duplicate;
    w->b[i].stored = x->stored_count;
    w->b[i].nhits = x->nhits;
    for (uint32_t k = 0; k < x->nhits && k < 16; k++) w->b[i].hits[k] = x->hits[k];
    if (x->err) continue;
    for (uint32_t k = 0; k < 16; k++) rn_core_batch_record_pos(x, k, &w->b[i].pos_shard[k], &w->b[i].pos_off[k]);
  }
}

/* One request of one batch per (shard, recs) and wait. */
static void produce1(ct_t *t, const char *stream, uint32_t shard, const rec_t *recs, int n,
                     const rn_batch_producer_t *prod, res_t *w) {
  rn_batch_builder_t b;
  const uint8_t *bytes;
  size_t len;
  build(&b, recs, n, prod, &bytes, &len);
  rn_core_batch_in_t in = {.shard = shard, .data = bytes, .len = len};
  rn_core_produce_req_t req = {.stream = stream, .batches = &in, .nbatches = 1};
  memset(w, 0, sizeof *w);
  rn_core_produce(t->core, &req, on_res, w);
  rn_batch_builder_free(&b);
  ct_run_until(t, &w->done);
  assert_int_equal(w->err, 0);
}

typedef struct createw {
  bool done;
  rn_err_t err;
  char msg[300];
} createw_t;

static void on_create(void *ctx, const rn_core_create_result_t *r) {
  createw_t *w = ctx;
  w->done = true;
  w->err = r->err;
  if (r->msg) snprintf(w->msg, sizeof w->msg, "%s", r->msg);
}

static rn_err_t create_dedup(ct_t *t, const char *name, uint32_t shards, rn_core_dedup_key_t key, const char *field,
                             int64_t window_ms, int64_t retention_ms) {
  createw_t w = {0};
  rn_core_create_req_t req = {.name = name,
                              .shard_count = shards,
                              .retention_ms = retention_ms,
                              .dedup_key = key,
                              .dedup_field = field,
                              .dedup_window_ms = window_ms};
  rn_core_create_stream(t->core, &req, on_create, &w);
  ct_run_until(t, &w.done);
  return w.err;
}

typedef struct dstat {
  uint64_t duplicates, without_id, ids;
} dstat_t;

static void on_dstat(void *arg, const rn_core_dedup_stats_t *s) {
  dstat_t *d = arg;
  d->duplicates = s->duplicates;
  d->without_id = s->without_id;
  d->ids = s->ids;
}

static dstat_t stats(ct_t *t) {
  dstat_t d = {0};
  rn_core_foreach_dedup(t->core, on_dstat, &d);
  return d;
}

static void test_create_validation(void **state) {
  ct_t *t = *state;
  const int64_t H1 = 3600 * 1000;
  assert_int_equal(create_dedup(t, "ok", 2, RN_CORE_DEDUP_FIELD, "event_uuid", H1, 0), 0);
  assert_int_equal(create_dedup(t, "rid", 1, RN_CORE_DEDUP_RECORD_ID, NULL, H1, 0), 0);
  assert_int_equal(create_dedup(t, "nowin", 1, RN_CORE_DEDUP_FIELD, "f", 0, 0), RN_EINVAL);
  assert_int_equal(create_dedup(t, "long", 1, RN_CORE_DEDUP_FIELD, "f", RN_CORE_DEDUP_MAX_WINDOW_MS + 1, -1),
                   RN_EINVAL);
  assert_int_equal(create_dedup(t, "ret", 1, RN_CORE_DEDUP_FIELD, "f", 2 * H1, H1), RN_EINVAL);
  assert_int_equal(create_dedup(t, "nof", 1, RN_CORE_DEDUP_FIELD, "", H1, 0), RN_EINVAL);
  assert_int_equal(create_dedup(t, "dots", 1, RN_CORE_DEDUP_FIELD, "a..b", H1, 0), RN_EINVAL);
  assert_int_equal(create_dedup(t, "both", 1, RN_CORE_DEDUP_RECORD_ID, "f", H1, 0), RN_EINVAL);
  assert_int_equal(create_dedup(t, "nokey", 1, RN_CORE_DEDUP_NONE, "f", H1, 0), RN_EINVAL);
  assert_int_equal(create_dedup(t, "badkey", 1, (rn_core_dedup_key_t)9, "f", H1, 0), RN_EINVAL);
}

static void test_mixed_batches(void **state) {
  ct_t *t = *state;
  assert_int_equal(create_dedup(t, "ev", 2, RN_CORE_DEDUP_FIELD, "event_uuid", 3600 * 1000, 0), 0);
  res_t w;
  const rec_t first[] = {{"{\"event_uuid\":\"a\"}", NULL}, {"{\"event_uuid\":\"b\"}", NULL}};
  produce1(t, "ev", 1, first, 2, NULL, &w);
  assert_int_equal(w.b[0].err, 0);
  assert_int_equal(w.b[0].base, 0);
  assert_int_equal(w.b[0].stored, 2);
  assert_int_equal(w.b[0].nhits, 0);
  /* On shard 0: a (hit on shard 1), c, c again (a hit inside the batch),
   * a record without the field, data that is not JSON, b (hit). */
  const rec_t mixed[] = {{"{\"event_uuid\":\"a\"}", NULL}, {"{\"event_uuid\":\"c\"}", NULL},
                         {"{\"event_uuid\":\"c\",\"n\":2}", NULL}, {"{\"other\":1}", NULL},
                         {"not json at all", NULL},            {"{\"event_uuid\":\"b\"}", NULL}};
  produce1(t, "ev", 0, mixed, 6, NULL, &w);
  assert_int_equal(w.b[0].err, 0);
  assert_int_equal(w.b[0].stored, 3);
  assert_int_equal(w.b[0].nhits, 3);
  assert_int_equal(w.b[0].hits[0].index, 0);
  assert_int_equal(w.b[0].hits[0].shard, 1);
  assert_int_equal(w.b[0].hits[0].offset, 0);
  assert_int_equal(w.b[0].hits[1].index, 2);
  assert_int_equal(w.b[0].hits[1].shard, 0);
  assert_int_equal(w.b[0].hits[1].offset, 0); /* c was stored first at shard 0 offset 0 */
  assert_int_equal(w.b[0].hits[2].index, 5);
  assert_int_equal(w.b[0].hits[2].shard, 1);
  assert_int_equal(w.b[0].hits[2].offset, 1);
  /* Every record's place: the stored ones are dense from base. */
  uint32_t want_shard[] = {1, 0, 0, 0, 0, 1};
  uint64_t want_off[] = {0, 0, 0, 1, 2, 1};
  for (int k = 0; k < 6; k++) {
    assert_int_equal(w.b[0].pos_shard[k], want_shard[k]);
    assert_int_equal(w.b[0].pos_off[k], want_off[k]);
  }
  ct_offsets_t o;
  ct_list_offset(t, "ev", 0, RN_CORE_POS_LATEST, 0, &o);
  assert_int_equal(o.end, 3); /* only the three non-duplicates were stored */
  dstat_t s = stats(t);
  assert_int_equal(s.duplicates, 3);
  assert_int_equal(s.without_id, 2);
  assert_int_equal(s.ids, 3);
}

static void test_all_hits_idempotent(void **state) {
  ct_t *t = *state;
  assert_int_equal(create_dedup(t, "rid", 1, RN_CORE_DEDUP_RECORD_ID, NULL, 3600 * 1000, 0), 0);
  res_t w;
  rn_batch_producer_t p = {.producer_id = 77, .producer_epoch = 0, .base_sequence = 0};
  const rec_t two[] = {{"x", "id1"}, {"y", "id2"}};
  produce1(t, "rid", 0, two, 2, &p, &w);
  assert_int_equal(w.b[0].err, 0);
  assert_int_equal(w.b[0].base, 0);
  /* The same ids again under the next sequence: every record a hit,
   * nothing stored, and the producer's sequence moves on. */
  p.base_sequence = 2;
  produce1(t, "rid", 0, two, 2, &p, &w);
  assert_int_equal(w.b[0].err, 0);
  assert_false(w.b[0].duplicate);
  assert_int_equal(w.b[0].stored, 0);
  assert_int_equal(w.b[0].nhits, 2);
  assert_int_equal(w.b[0].hits[1].offset, 1);
  /* Its retry is answered from the producer window with the same hits. */
  produce1(t, "rid", 0, two, 2, &p, &w);
  assert_int_equal(w.b[0].err, 0);
  assert_true(w.b[0].duplicate);
  assert_int_equal(w.b[0].nhits, 2);
  assert_int_equal(w.b[0].pos_off[0], 0);
  assert_int_equal(w.b[0].pos_off[1], 1);
  /* The next sequence is accepted: id3 stored, id1 a hit. */
  p.base_sequence = 4;
  const rec_t next[] = {{"z", "id3"}, {"x", "id1"}};
  produce1(t, "rid", 0, next, 2, &p, &w);
  assert_int_equal(w.b[0].err, 0);
  assert_int_equal(w.b[0].base, 2);
  assert_int_equal(w.b[0].stored, 1);
  assert_int_equal(w.b[0].pos_off[0], 2);
  assert_int_equal(w.b[0].pos_off[1], 0);
  /* A retry of a batch that stored some records answers the same offsets. */
  produce1(t, "rid", 0, next, 2, &p, &w);
  assert_true(w.b[0].duplicate);
  assert_int_equal(w.b[0].pos_off[0], 2);
  assert_int_equal(w.b[0].pos_off[1], 0);
  assert_int_equal(w.b[0].nhits, 1);
  ct_offsets_t o;
  ct_list_offset(t, "rid", 0, RN_CORE_POS_LATEST, 0, &o);
  assert_int_equal(o.end, 3);
}

/* Two requests in one loop turn: the second's copy of an id whose first
 * copy is still being written (not acknowledged) is not stored, and is
 * answered only after the first, with its offset. Ordering is observed
 * through the callbacks, not timing. */
typedef struct order {
  int seq;
  int first_at, second_at;
} order_t;
typedef struct ow {
  res_t r;
  order_t *o;
  int *at;
} ow_t;

static void on_ordered(void *ctx, const rn_core_produce_result_t *r) {
  ow_t *w = ctx;
  *w->at = ++w->o->seq;
  on_res(&w->r, r);
}

static void test_in_flight_copy_waits(void **state) {
  ct_t *t = *state;
  assert_int_equal(create_dedup(t, "fl", 2, RN_CORE_DEDUP_RECORD_ID, NULL, 3600 * 1000, 0), 0);
  rn_batch_builder_t b1, b2;
  const uint8_t *x1, *x2;
  size_t l1, l2;
  const rec_t one[] = {{"v", "same"}, {"w", "other"}};
  const rec_t two[] = {{"v", "same"}};
  build(&b1, one, 2, NULL, &x1, &l1);
  build(&b2, two, 1, NULL, &x2, &l2);
  order_t o = {0};
  ow_t w1 = {.o = &o, .at = &o.first_at}, w2 = {.o = &o, .at = &o.second_at};
  rn_core_batch_in_t in1 = {.shard = 0, .data = x1, .len = l1}, in2 = {.shard = 1, .data = x2, .len = l2};
  rn_core_produce_req_t r1 = {.stream = "fl", .batches = &in1, .nbatches = 1};
  rn_core_produce_req_t r2 = {.stream = "fl", .batches = &in2, .nbatches = 1};
  rn_core_produce(t->core, &r1, on_ordered, &w1);
  rn_core_produce(t->core, &r2, on_ordered, &w2); /* before the first was acknowledged */
  assert_false(w2.r.done);
  rn_batch_builder_free(&b1);
  rn_batch_builder_free(&b2);
  ct_run_until(t, &w2.r.done);
  assert_true(w1.r.done);
  assert_true(o.first_at < o.second_at);
  assert_int_equal(w2.r.b[0].err, 0);
  assert_int_equal(w2.r.b[0].stored, 0);
  assert_int_equal(w2.r.b[0].nhits, 1);
  assert_int_equal(w2.r.b[0].hits[0].shard, 0);
  assert_int_equal(w2.r.b[0].hits[0].offset, w1.r.b[0].base);
  ct_offsets_t off;
  ct_list_offset(t, "fl", 1, RN_CORE_POS_LATEST, 0, &off);
  assert_int_equal(off.end, 0);
  /* Two batches of one request on one shard: the same. */
  res_t w;
  const rec_t again[] = {{"v", "n1"}, {"v", "n1"}, {"v", "n2"}};
  produce1(t, "fl", 1, again, 3, NULL, &w);
  assert_int_equal(w.b[0].stored, 2);
  assert_int_equal(w.b[0].pos_off[1], 0);
  assert_int_equal(w.b[0].pos_off[2], 1);
}

static void test_rebuilt_at_open(void **state) {
  ct_t *t = *state;
  assert_int_equal(create_dedup(t, "rb", 2, RN_CORE_DEDUP_FIELD, "e", 3600 * 1000, 0), 0);
  res_t w;
  const rec_t a[] = {{"{\"e\":\"1\"}", NULL}, {"{\"e\":\"2\"}", NULL}};
  const rec_t b[] = {{"{\"e\":\"3\"}", NULL}};
  produce1(t, "rb", 0, a, 2, NULL, &w);
  produce1(t, "rb", 1, b, 1, NULL, &w);
  ct_close(t);
  ct_open(t);
  assert_int_equal(stats(t).ids, 3);
  const rec_t again[] = {{"{\"e\":\"3\"}", NULL}, {"{\"e\":\"2\"}", NULL}, {"{\"e\":\"4\"}", NULL}};
  produce1(t, "rb", 0, again, 3, NULL, &w);
  assert_int_equal(w.b[0].nhits, 2);
  assert_int_equal(w.b[0].pos_shard[0], 1);
  assert_int_equal(w.b[0].pos_off[0], 0);
  assert_int_equal(w.b[0].pos_shard[1], 0);
  assert_int_equal(w.b[0].pos_off[1], 1);
  assert_int_equal(w.b[0].pos_off[2], 2);
}

/* ---- core with an injected clock (rn_core_opts_t.clock) ------------------------------------- */

static int64_t fake_now = 1700000000000ll;
static int64_t fake_wall(void *arg) {
  (void)arg;
  return fake_now;
}

static void open_clocked(ct_t *t, uint32_t max_ids) {
  rn_core_opts_t o;
  ct_opts(t, &o);
  o.clock.wall_ms = fake_wall;
  o.dedup_max_ids = max_ids;
  ct_open_opts(t, &o);
}

typedef struct evs {
  uint64_t evictions;
} evs_t;
static void on_evs(void *arg, const rn_core_dedup_stats_t *s) { ((evs_t *)arg)->evictions = s->evictions; }

static void test_clock_expiry_and_eviction(void **state) {
  ct_t *t = *state;
  fake_now = 1700000000000ll;
  open_clocked(t, 2);
  assert_int_equal(create_dedup(t, "ck", 1, RN_CORE_DEDUP_RECORD_ID, NULL, 1000, 0), 0);
  res_t w;
  const rec_t x[] = {{"v", "x"}};
  produce1(t, "ck", 0, x, 1, NULL, &w);
  assert_int_equal(w.b[0].stored, 1);
  fake_now += 999; /* still inside the window */
  produce1(t, "ck", 0, x, 1, NULL, &w);
  assert_int_equal(w.b[0].nhits, 1);
  fake_now += 2; /* 1001 ms after x arrived: expired */
  produce1(t, "ck", 0, x, 1, NULL, &w);
  assert_int_equal(w.b[0].nhits, 0);
  assert_int_equal(w.b[0].base, 1); /* stored again */
  /* Bound 2: a third id evicts the oldest early; that one is then stored again. */
  const rec_t yz[] = {{"v", "y"}, {"v", "z"}};
  produce1(t, "ck", 0, yz, 2, NULL, &w);
  evs_t e = {0};
  rn_core_foreach_dedup(t->core, on_evs, &e);
  assert_int_equal(e.evictions, 1);
  assert_int_equal(stats(t).ids, 2);
  produce1(t, "ck", 0, x, 1, NULL, &w);
  assert_int_equal(w.b[0].nhits, 0);
  /* After a restart past the window, the rebuild keeps nothing. */
  ct_close(t);
  fake_now += 5000;
  open_clocked(t, 2);
  assert_int_equal(stats(t).ids, 0);
  produce1(t, "ck", 0, yz, 2, NULL, &w);
  assert_int_equal(w.b[0].nhits, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_window_expiry),
      cmocka_unit_test(test_window_bound_and_growth),
      cmocka_unit_test(test_window_pending_and_remove),
      cmocka_unit_test(test_json_field),
      cmocka_unit_test_setup_teardown(test_create_validation, ct_setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_mixed_batches, ct_setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_all_hits_idempotent, ct_setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_in_flight_copy_waits, ct_setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_rebuilt_at_open, ct_setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_clock_expiry_and_eviction, ct_setup_unopened, ct_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
