/*
 * test_broker_produce_fetch.c — produce and fetch round trips against the
 * real runneld: records come back byte-exact with dense offsets; fetch from
 * EARLIEST, LATEST, an OFFSET (inside a batch: the whole batch comes back),
 * a TIMESTAMP; ListOffsets agrees; small max_bytes still returns whole
 * batches and makes progress; pipelined requests are matched by
 * correlation id.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "itest.h"
#include "runnel/frame.h"
#include "testutil.h"

static int setup(void **state) { return itest_setup_with(state, NULL); }

#define NREC 9

/* The records sent: batch A = 0..2 (ts 1000..1002), B = 3 (ts 2000, 100 KiB
 * of pseudo-random bytes), C = 4..8 (ts 3000..3004). */
typedef struct sent {
  uint8_t key[NREC][32];
  size_t key_len[NREC];
  uint8_t *value[NREC];
  size_t value_len[NREC];
  int64_t ts[NREC];
  uint8_t *batch[3];
  size_t batch_len[3];
} sent_t;

static void make_records(sent_t *s) {
  memset(s, 0, sizeof(*s));
  uint64_t rng = 0x1234567;
  for (int i = 0; i < NREC; i++) {
    /* Keys with embedded NULs and high bytes. */
    s->key_len[i] = (size_t)snprintf((char *)s->key[i], sizeof(s->key[i]), "key-%d", i);
    s->key[i][s->key_len[i]++] = 0;
    s->key[i][s->key_len[i]++] = (uint8_t)(0xF0 + i);
    size_t vl = i == 1 ? 0 : i == 3 ? 100 * 1024 : (size_t)(17 * i + 5);
    s->value[i] = malloc(vl ? vl : 1);
    for (size_t k = 0; k < vl; k++) s->value[i][k] = (uint8_t)rn_test_rand(&rng);
    s->value_len[i] = vl;
    s->ts[i] = i < 3 ? 1000 + i : i == 3 ? 2000 : 3000 + (i - 4);
  }
  const int first[3] = {0, 3, 4}, count[3] = {3, 1, 5};
  for (int b = 0; b < 3; b++) {
    rn_raw_rec_t recs[5];
    for (int k = 0; k < count[b]; k++) {
      int i = first[b] + k;
      recs[k] = (rn_raw_rec_t){.key = s->key[i], .key_len = s->key_len[i], .value = s->value[i],
                               .value_len = s->value_len[i], .ts = s->ts[i]};
    }
    s->batch[b] = rn_raw_batch(recs, (size_t)count[b], NULL, &s->batch_len[b]);
    assert_non_null(s->batch[b]);
  }
}

static void free_records(sent_t *s) {
  for (int i = 0; i < NREC; i++) free(s->value[i]);
  for (int b = 0; b < 3; b++) free(s->batch[b]);
}

static void assert_record(const sent_t *s, const rn_raw_record_t *r) {
  assert_true(r->offset < NREC);
  int i = (int)r->offset;
  assert_int_equal(r->key_len, s->key_len[i]);
  assert_memory_equal(r->key, s->key[i], s->key_len[i]);
  assert_int_equal(r->value_len, s->value_len[i]);
  if (s->value_len[i]) assert_memory_equal(r->value, s->value[i], s->value_len[i]);
  assert_int_equal(r->ts, s->ts[i]);
}

static void produce_all(rn_raw_env_t *env, const sent_t *s) {
  itest_create(&env->c, "pf", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  assert_int_equal(itest_produce_ok(&env->c, "pf", 0, s->batch[0], s->batch_len[0]), 0);
  assert_int_equal(itest_produce_ok(&env->c, "pf", 0, s->batch[1], s->batch_len[1]), 3);
  assert_int_equal(itest_produce_ok(&env->c, "pf", 0, s->batch[2], s->batch_len[2]), 4);
}

/* Fetch one shard of "pf" and decode; asserts no error. */
static const Runnel__ShardFetchResult *fetch(rn_raw_env_t *env, Runnel__Response **resp, Runnel__PositionKind kind,
                                             int64_t value, uint32_t max_bytes, rn_raw_records_t *recs) {
  *resp = rn_raw_fetch1(&env->c, "pf", 0, kind, value, 0, max_bytes);
  assert_rn_ok(*resp, RUNNEL__RESPONSE__OP_FETCH);
  const Runnel__ShardFetchResult *r = rn_raw_fetch_result(*resp);
  assert_non_null(r);
  assert_rn_error(r->error, RN_OK);
  assert_int_equal(r->shard, 0);
  assert_int_equal(rn_raw_decode(r->batches.data, r->batches.len, recs), 0);
  return r;
}

static void test_round_trip_earliest(void **state) {
  rn_raw_env_t *env = *state;
  sent_t s;
  make_records(&s);
  produce_all(env, &s);

  Runnel__Response *resp;
  rn_raw_records_t recs = {0};
  const Runnel__ShardFetchResult *r = fetch(env, &resp, RUNNEL__POSITION_KIND__POSITION_EARLIEST, 0, 0, &recs);
  assert_int_equal(r->offset, 0);
  assert_int_equal(r->start_offset, 0);
  assert_int_equal(r->end_offset, NREC);
  assert_int_equal(r->next_offset, NREC);
  assert_int_equal(recs.batches, 3);
  assert_int_equal(recs.n, NREC);
  for (size_t i = 0; i < recs.n; i++) {
    assert_int_equal(recs.v[i].offset, i); /* dense */
    assert_record(&s, &recs.v[i]);
  }
  assert_int_equal(recs.v[0].batch_base, 0);
  assert_int_equal(recs.v[3].batch_base, 3);
  assert_int_equal(recs.v[8].batch_base, 4);

  /* The stored batches are the producer's bytes: everything the payload
   * checksum covers (offset 48 on) is identical; only the broker-stamped
   * header fields differ. */
  size_t at = 0;
  for (int b = 0; b < 3; b++) {
    rn_batch_header_t h;
    assert_int_equal(rn_batch_header_decode(r->batches.data + at, r->batches.len - at, &h), 0);
    assert_int_equal(h.batch_length, s.batch_len[b]);
    assert_memory_equal(r->batches.data + at + RN_BATCH_PAYLOAD_START, s.batch[b] + RN_BATCH_PAYLOAD_START,
                        s.batch_len[b] - RN_BATCH_PAYLOAD_START);
    assert_true(h.arrival_time_ms > 0);
    at += h.batch_length;
  }
  assert_int_equal(at, r->batches.len);
  rn_raw_records_free(&recs);
  rn_raw_free(resp);

  /* Describe agrees. */
  Runnel__Response *d = rn_raw_describe(&env->c, "pf");
  assert_rn_ok(d, RUNNEL__RESPONSE__OP_DESCRIBE_STREAM);
  assert_int_equal(d->describe_stream->stream->shards[0]->start_offset, 0);
  assert_int_equal(d->describe_stream->stream->shards[0]->end_offset, NREC);
  assert_true(d->describe_stream->stream->shards[0]->last_append_ms > 0);
  rn_raw_free(d);
  free_records(&s);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static void test_fetch_positions(void **state) {
  rn_raw_env_t *env = *state;
  sent_t s;
  make_records(&s);
  produce_all(env, &s);
  Runnel__Response *resp;
  rn_raw_records_t recs = {0};

  /* An offset inside batch C (4..8): the whole batch, from its base. */
  const Runnel__ShardFetchResult *r = fetch(env, &resp, RUNNEL__POSITION_KIND__POSITION_OFFSET, 6, 0, &recs);
  assert_int_equal(r->offset, 6);
  assert_int_equal(r->next_offset, NREC);
  assert_int_equal(recs.batches, 1);
  assert_int_equal(recs.n, 5);
  for (size_t i = 0; i < recs.n; i++) {
    assert_int_equal(recs.v[i].offset, 4 + i);
    assert_record(&s, &recs.v[i]);
  }
  rn_raw_records_free(&recs);
  rn_raw_free(resp);

  /* Inside batch A: A from its start, then the rest. */
  r = fetch(env, &resp, RUNNEL__POSITION_KIND__POSITION_OFFSET, 1, 0, &recs);
  assert_int_equal(r->offset, 1);
  assert_int_equal(recs.v[0].offset, 0);
  assert_int_equal(recs.n, NREC);
  rn_raw_records_free(&recs);
  rn_raw_free(resp);

  /* At a batch's first offset. */
  r = fetch(env, &resp, RUNNEL__POSITION_KIND__POSITION_OFFSET, 3, 0, &recs);
  assert_int_equal(recs.v[0].offset, 3);
  assert_int_equal(recs.v[0].value_len, 100 * 1024);
  assert_record(&s, &recs.v[0]);
  rn_raw_records_free(&recs);
  rn_raw_free(resp);

  /* LATEST: the end, nothing returned (no waiting). */
  r = fetch(env, &resp, RUNNEL__POSITION_KIND__POSITION_LATEST, 0, 0, &recs);
  assert_int_equal(r->offset, NREC);
  assert_int_equal(r->batches.len, 0);
  assert_int_equal(r->next_offset, NREC);
  assert_int_equal(r->end_offset, NREC);
  rn_raw_free(resp);

  /* OFFSET == end: empty, not an error. */
  r = fetch(env, &resp, RUNNEL__POSITION_KIND__POSITION_OFFSET, NREC, 0, &recs);
  assert_int_equal(r->batches.len, 0);
  assert_int_equal(r->next_offset, NREC);
  rn_raw_free(resp);
  assert_int_equal(recs.n, 0);

  /* TIMESTAMP: the first record at or after it; its whole batch comes back. */
  struct {
    int64_t ts;
    uint64_t offset, first;
  } cases[] = {{0, 0, 0}, {1000, 0, 0}, {1001, 1, 0}, {1500, 3, 3}, {2000, 3, 3}, {2001, 4, 4}, {3004, 8, 4}};
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    r = fetch(env, &resp, RUNNEL__POSITION_KIND__POSITION_TIMESTAMP, cases[k].ts, 0, &recs);
    if (r->offset != cases[k].offset) print_message("timestamp %lld\n", (long long)cases[k].ts);
    assert_int_equal(r->offset, cases[k].offset);
    assert_true(recs.n > 0);
    assert_int_equal(recs.v[0].offset, cases[k].first);
    assert_int_equal(recs.v[recs.n - 1].offset, NREC - 1);
    rn_raw_records_free(&recs);
    rn_raw_free(resp);
  }
  /* After every record: the end, empty. */
  r = fetch(env, &resp, RUNNEL__POSITION_KIND__POSITION_TIMESTAMP, 3005, 0, &recs);
  assert_int_equal(r->offset, NREC);
  assert_int_equal(r->batches.len, 0);
  rn_raw_free(resp);

  /* ListOffsets resolves the same positions without data. */
  Runnel__ShardFetch sf[3] = {RUNNEL__SHARD_FETCH__INIT, RUNNEL__SHARD_FETCH__INIT, RUNNEL__SHARD_FETCH__INIT};
  sf[0].kind = RUNNEL__POSITION_KIND__POSITION_EARLIEST;
  sf[1].kind = RUNNEL__POSITION_KIND__POSITION_LATEST;
  sf[2].kind = RUNNEL__POSITION_KIND__POSITION_TIMESTAMP;
  sf[2].value = 2000;
  Runnel__ShardFetch *sfp[3] = {&sf[0], &sf[1], &sf[2]};
  Runnel__ListOffsetsRequest lo = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
  lo.stream = "pf";
  lo.n_shards = 3;
  lo.shards = sfp;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_LIST_OFFSETS;
  req.list_offsets = &lo;
  resp = rn_raw_call(&env->c, &req);
  assert_rn_ok(resp, RUNNEL__RESPONSE__OP_LIST_OFFSETS);
  assert_int_equal(resp->list_offsets->n_shards, 3);
  const uint64_t want[3] = {0, NREC, 3};
  for (int i = 0; i < 3; i++) {
    assert_rn_error(resp->list_offsets->shards[i]->error, RN_OK);
    assert_int_equal(resp->list_offsets->shards[i]->offset, want[i]);
    assert_int_equal(resp->list_offsets->shards[i]->start_offset, 0);
    assert_int_equal(resp->list_offsets->shards[i]->end_offset, NREC);
  }
  rn_raw_free(resp);
  free_records(&s);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* max_bytes smaller than any batch: every fetch still returns at least one
 * whole batch, so a reader paging with it sees everything exactly once. */
static void test_small_max_bytes_pages_whole_batches(void **state) {
  rn_raw_env_t *env = *state;
  sent_t s;
  make_records(&s);
  produce_all(env, &s);
  rn_raw_records_t all = {0};
  uint64_t next = 0;
  int fetches = 0;
  while (next < NREC) {
    Runnel__Response *resp;
    rn_raw_records_t recs = {0};
    const Runnel__ShardFetchResult *r = fetch(env, &resp, RUNNEL__POSITION_KIND__POSITION_OFFSET, (int64_t)next, 1, &recs);
    assert_true(recs.batches >= 1);
    assert_int_equal(recs.v[0].offset, next);
    assert_true(r->next_offset > next);
    assert_int_equal(r->next_offset, recs.v[recs.n - 1].offset + 1);
    next = r->next_offset;
    assert_int_equal(rn_raw_decode(r->batches.data, r->batches.len, &all), 0);
    rn_raw_records_free(&recs);
    rn_raw_free(resp);
    assert_true(++fetches <= NREC);
  }
  assert_int_equal(all.n, NREC);
  for (size_t i = 0; i < all.n; i++) {
    assert_int_equal(all.v[i].offset, i);
    assert_record(&s, &all.v[i]);
  }
  rn_raw_records_free(&all);
  free_records(&s);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* Many requests in flight on one connection: every one answered once, under
 * its own correlation id, with the offsets in the order sent. */
static void test_pipelined(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "pipe", 2, RUNNEL__DURABILITY__DURABILITY_SYNC);
  enum { N = 200 };
  uint64_t corr[N];
  uint8_t *b[N];
  size_t len[N];
  for (int i = 0; i < N; i++) {
    char v[32];
    snprintf(v, sizeof(v), "pipelined-%03d", i);
    b[i] = itest_batch1(v, 5000 + i, &len[i]);
    corr[i] = rn_raw_send_produce1(&env->c, "pipe", (uint32_t)(i % 2), b[i], len[i]);
    assert_true(corr[i] != 0);
  }
  /* Interleave an admin request: it is answered too. */
  Runnel__Response *lst = rn_raw_list(&env->c);
  assert_rn_ok(lst, RUNNEL__RESPONSE__OP_LIST_STREAMS);
  rn_raw_free(lst);
  uint64_t seen_base[2] = {0, 0};
  for (int i = 0; i < N; i++) {
    Runnel__Response *r = rn_raw_recv(&env->c, corr[i]);
    assert_rn_ok(r, RUNNEL__RESPONSE__OP_PRODUCE);
    assert_int_equal(r->correlation_id, corr[i]);
    const Runnel__ShardBatchResult *res = rn_raw_produce_result(r);
    assert_non_null(res);
    assert_rn_error(res->error, RN_OK);
    /* Appends of one connection to one shard land in order. */
    assert_int_equal(res->base_offset, seen_base[i % 2]);
    seen_base[i % 2]++;
    rn_raw_free(r);
    free(b[i]);
  }
  assert_int_equal(env->c.nqueued, 0); /* nothing answered twice or unasked */
  for (uint32_t sh = 0; sh < 2; sh++) {
    rn_raw_records_t recs = {0};
    assert_int_equal(rn_raw_fetch_all(&env->c, "pipe", sh, &recs), 0);
    assert_int_equal(recs.n, N / 2);
    for (size_t k = 0; k < recs.n; k++) {
      char v[32];
      snprintf(v, sizeof(v), "pipelined-%03d", (int)(2 * k + sh));
      assert_int_equal(recs.v[k].value_len, strlen(v));
      assert_memory_equal(recs.v[k].value, v, strlen(v));
    }
    rn_raw_records_free(&recs);
  }
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* With max_inflight_per_connection = 4 the broker stops reading a
 * connection that has 4 requests at the engine and resumes once they are
 * answered (back-pressure): 500 pipelined requests all complete, in order. */
static const char *const k_inflight_args[] = {"--set", "max_inflight_per_connection=4", NULL};
static int setup_inflight(void **state) { return itest_setup_with(state, k_inflight_args); }

static void test_backpressure_inflight_limit(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "bp", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  enum { N = 500 };
  static uint64_t corr[N];
  size_t len;
  uint8_t *b = itest_batch1("pressed", 1, &len);
  for (int i = 0; i < N; i++) {
    corr[i] = rn_raw_send_produce1(&env->c, "bp", 0, b, len);
    assert_true(corr[i] != 0);
  }
  free(b);
  for (int i = 0; i < N; i++) {
    Runnel__Response *r = rn_raw_recv(&env->c, corr[i]);
    assert_rn_ok(r, RUNNEL__RESPONSE__OP_PRODUCE);
    assert_rn_error(rn_raw_produce_result(r)->error, RN_OK);
    assert_int_equal(rn_raw_produce_result(r)->base_offset, (uint64_t)i);
    rn_raw_free(r);
  }
  assert_int_equal(itest_end_offset(&env->c, "bp", 0), N);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* ListOffsets without shards: every shard, at its end. */
static void test_list_offsets_every_shard(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "lo", 3, RUNNEL__DURABILITY__DURABILITY_SYNC);
  size_t len;
  uint8_t *b = itest_batch1("x", 1, &len);
  for (uint32_t sh = 0; sh < 3; sh++)
    for (uint32_t k = 0; k <= sh; k++) itest_produce_ok(&env->c, "lo", sh, b, len);
  free(b);
  Runnel__ListOffsetsRequest lo = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
  lo.stream = "lo";
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_LIST_OFFSETS;
  req.list_offsets = &lo;
  Runnel__Response *r = rn_raw_call(&env->c, &req);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_LIST_OFFSETS);
  assert_int_equal(r->list_offsets->n_shards, 3);
  for (uint32_t sh = 0; sh < 3; sh++) {
    const Runnel__ShardOffsets *so = r->list_offsets->shards[sh];
    assert_int_equal(so->shard, sh);
    assert_rn_error(so->error, RN_OK);
    assert_int_equal(so->start_offset, 0);
    assert_int_equal(so->end_offset, sh + 1);
    assert_int_equal(so->offset, sh + 1);
  }
  rn_raw_free(r);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* A request split into one TCP write per byte is decoded all the same. */
static void test_byte_by_byte(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "slow", 1, RUNNEL__DURABILITY__DURABILITY_NONE);
  size_t len;
  uint8_t *b = itest_batch1("dribbled", 42, &len);
  Runnel__ShardBatch sb = RUNNEL__SHARD_BATCH__INIT;
  sb.batch.data = b;
  sb.batch.len = len;
  Runnel__ShardBatch *sbp = &sb;
  Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
  pr.stream = "slow";
  pr.n_batches = 1;
  pr.batches = &sbp;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_PRODUCE;
  req.produce = &pr;
  req.correlation_id = 777;
  size_t n = runnel__request__get_packed_size(&req);
  uint8_t *frame = malloc(n + 4);
  assert_non_null(frame);
  rn_frame_put_header(frame, (uint32_t)n);
  runnel__request__pack(&req, frame + 4);
  for (size_t i = 0; i < n + 4; i++) assert_int_equal(rn_raw_send_bytes(&env->c, frame + i, 1), 0);
  Runnel__Response *r = rn_raw_recv(&env->c, 777);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_PRODUCE);
  assert_rn_error(rn_raw_produce_result(r)->error, RN_OK);
  assert_int_equal(rn_raw_produce_result(r)->base_offset, 0);
  rn_raw_free(r);
  rn_raw_records_t recs = {0};
  assert_int_equal(rn_raw_fetch_all(&env->c, "slow", 0, &recs), 0);
  assert_int_equal(recs.n, 1);
  assert_memory_equal(recs.v[0].value, "dribbled", 8);
  rn_raw_records_free(&recs);
  free(frame);
  free(b);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* Each durability mode acknowledges and serves the same way. */
static void test_durability_modes(void **state) {
  rn_raw_env_t *env = *state;
  const Runnel__Durability modes[3] = {RUNNEL__DURABILITY__DURABILITY_SYNC, RUNNEL__DURABILITY__DURABILITY_INTERVAL,
                                       RUNNEL__DURABILITY__DURABILITY_NONE};
  for (int m = 0; m < 3; m++) {
    char name[16];
    snprintf(name, sizeof(name), "mode-%d", m);
    itest_create(&env->c, name, 1, modes[m]);
    for (int i = 0; i < 10; i++) {
      char v[16];
      snprintf(v, sizeof(v), "m%d-%d", m, i);
      size_t len;
      uint8_t *b = itest_batch1(v, i, &len);
      assert_int_equal(itest_produce_ok(&env->c, name, 0, b, len), (uint64_t)i);
      free(b);
      /* Visible to a reader once acknowledged. */
      assert_int_equal(itest_end_offset(&env->c, name, 0), (uint64_t)i + 1);
    }
    rn_raw_records_t recs = {0};
    assert_int_equal(rn_raw_fetch_all(&env->c, name, 0, &recs), 0);
    assert_int_equal(recs.n, 10);
    rn_raw_records_free(&recs);
  }
  assert_int_equal(rn_raw_env_stop(env), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_round_trip_earliest, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_fetch_positions, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_small_max_bytes_pages_whole_batches, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_pipelined, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_backpressure_inflight_limit, setup_inflight, itest_teardown),
      cmocka_unit_test_setup_teardown(test_list_offsets_every_shard, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_byte_by_byte, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_durability_modes, setup, itest_teardown),
  };
  return cmocka_run_group_tests_name("broker_produce_fetch", tests, NULL, NULL);
}
