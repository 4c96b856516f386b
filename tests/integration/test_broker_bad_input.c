/*
 * test_broker_bad_input.c — malformed and out-of-limit input against the
 * real runneld, started with small limits (max_frame_bytes 64 KiB,
 * max_batch_bytes 32 KiB, max_record_bytes 4 KiB). Each case gets its
 * error — and while it happens on one connection, a second, well-behaved
 * connection opened before it keeps producing and fetching (checked after
 * every case), and a connection opened after it works too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "itest.h"
#include "runnel/frame.h"

#define MAX_FRAME 65536u
#define MAX_BATCH 32768u
#define MAX_RECORD 4096u

static const char *const k_args[] = {"--set", "max_frame_bytes=65536", "--set", "max_batch_bytes=32768",
                                     "--set", "max_record_bytes=4096", NULL};

typedef struct fx {
  rn_raw_env_t env; /* env.c is the well-behaved connection */
  rn_raw_t bad;     /* the misbehaving one */
  int good_rounds;
} fx_t;

static int setup(void **state) {
  fx_t *fx = calloc(1, sizeof(*fx));
  if (!fx) return -1;
  fx->bad.fd = -1;
  if (rn_raw_env_start(&fx->env, k_args) || rn_raw_connect(&fx->bad, fx->env.broker.port)) {
    rn_raw_close(&fx->bad);
    rn_raw_env_destroy(&fx->env);
    free(fx);
    return -1;
  }
  *state = fx;
  Runnel__Response *r = rn_raw_create(&fx->env.c, "s", 2, RUNNEL__DURABILITY__DURABILITY_SYNC);
  int rc = r && !r->error ? 0 : -1;
  rn_raw_free(r);
  return rc;
}

static int teardown(void **state) {
  fx_t *fx = *state;
  if (!fx) return 0;
  rn_raw_close(&fx->bad);
  rn_raw_env_destroy(&fx->env);
  free(fx);
  return 0;
}

/* The well-behaved client: produce one record and read it back, on the
 * connection that was open throughout and on a brand-new one. */
static void good_client_works(fx_t *fx) {
  for (int fresh = 0; fresh < 2; fresh++) {
    rn_raw_t nc;
    rn_raw_t *c = &fx->env.c;
    if (fresh) {
      assert_int_equal(rn_raw_connect(&nc, fx->env.broker.port), 0);
      c = &nc;
    }
    char v[32];
    snprintf(v, sizeof(v), "good-%d", fx->good_rounds);
    size_t len;
    uint8_t *b = itest_batch1(v, 100 + fx->good_rounds, &len);
    uint64_t base = itest_produce_ok(c, "s", 0, b, len);
    free(b);
    Runnel__Response *r = rn_raw_fetch1(c, "s", 0, RUNNEL__POSITION_KIND__POSITION_OFFSET, (int64_t)base, 0, 0);
    assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
    const Runnel__ShardFetchResult *res = rn_raw_fetch_result(r);
    assert_rn_error(res->error, RN_OK);
    rn_raw_records_t recs = {0};
    assert_int_equal(rn_raw_decode(res->batches.data, res->batches.len, &recs), 0);
    assert_int_equal(recs.n, 1);
    assert_int_equal(recs.v[0].offset, base);
    assert_int_equal(recs.v[0].value_len, strlen(v));
    assert_memory_equal(recs.v[0].value, v, strlen(v));
    rn_raw_records_free(&recs);
    rn_raw_free(r);
    fx->good_rounds++;
    if (fresh) rn_raw_close(&nc);
  }
}

/* The bad connection still answers a plain request. */
static void bad_conn_still_usable(fx_t *fx) {
  Runnel__Response *r = rn_raw_list(&fx->bad);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_LIST_STREAMS);
  rn_raw_free(r);
}

static void stop_clean(fx_t *fx) {
  rn_raw_close(&fx->bad);
  assert_int_equal(rn_raw_env_stop(&fx->env), 0);
}

static void test_oversized_frame_closes_connection(void **state) {
  fx_t *fx = *state;
  good_client_works(fx);
  /* Only the length prefix: the broker must judge it without the body. */
  uint8_t hdr[4];
  rn_frame_put_header(hdr, MAX_FRAME + 1);
  assert_int_equal(rn_raw_send_bytes(&fx->bad, hdr, 4), 0);
  Runnel__Response *r = rn_raw_recv_any(&fx->bad);
  assert_non_null(r);
  assert_rn_error(r->error, RN_ETOOLARGE);
  assert_non_null(r->error->message);
  assert_true(strlen(r->error->message) > 0);
  /* The request was never read: correlation id 0; the sizes as fields, so
   * a client can tell which of its requests it was. */
  assert_int_equal(r->correlation_id, 0);
  assert_int_equal(r->error->size, MAX_FRAME + 1);
  assert_int_equal(r->error->limit, MAX_FRAME);
  rn_raw_free(r);
  assert_true(rn_raw_wait_closed(&fx->bad));
  assert_int_equal(fx->bad.nqueued, 0);
  good_client_works(fx);

  /* A huge length (4 GiB - 1) likewise, on another connection. */
  rn_raw_t huge;
  assert_int_equal(rn_raw_connect(&huge, fx->env.broker.port), 0);
  rn_frame_put_header(hdr, UINT32_MAX);
  assert_int_equal(rn_raw_send_bytes(&huge, hdr, 4), 0);
  r = rn_raw_recv_any(&huge);
  assert_non_null(r);
  assert_rn_error(r->error, RN_ETOOLARGE);
  rn_raw_free(r);
  assert_true(rn_raw_wait_closed(&huge));
  rn_raw_close(&huge);
  good_client_works(fx);
  stop_clean(fx);
}

/* A frame of exactly max_frame_bytes passes framing (it is then judged as
 * a request: here garbage, so EBADREQUEST, and the connection stays). */
static void test_frame_at_limit_is_not_a_framing_error(void **state) {
  fx_t *fx = *state;
  uint8_t *junk = malloc(MAX_FRAME);
  assert_non_null(junk);
  memset(junk, 0xFF, MAX_FRAME);
  assert_int_equal(rn_raw_send_payload(&fx->bad, junk, MAX_FRAME), 0);
  free(junk);
  Runnel__Response *r = rn_raw_recv_any(&fx->bad);
  assert_non_null(r);
  assert_rn_error(r->error, RN_EBADREQUEST);
  rn_raw_free(r);
  bad_conn_still_usable(fx);
  good_client_works(fx);
  stop_clean(fx);
}

static void test_garbage_protobuf(void **state) {
  fx_t *fx = *state;
  const uint8_t garbage[][8] = {
      {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, /* invalid tags */
      {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80}, /* truncated varint */
      {0x52, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* create_stream claims 127 bytes */
      {0x0F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* wire type 7 */
  };
  for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
    assert_int_equal(rn_raw_send_payload(&fx->bad, garbage[i], sizeof(garbage[i])), 0);
    Runnel__Response *r = rn_raw_recv_any(&fx->bad);
    assert_non_null(r);
    assert_rn_error(r->error, RN_EBADREQUEST);
    rn_raw_free(r);
    bad_conn_still_usable(fx);
    good_client_works(fx);
  }
  stop_clean(fx);
}

static void test_unknown_op(void **state) {
  fx_t *fx = *state;
  /* correlation_id 77, then field 99 (length-delimited, empty): an
   * operation from a newer protocol. */
  const uint8_t unknown[] = {0x08, 77, 0x9A, 0x06, 0x00};
  assert_int_equal(rn_raw_send_payload(&fx->bad, unknown, sizeof(unknown)), 0);
  Runnel__Response *r = rn_raw_recv(&fx->bad, 77);
  assert_non_null(r);
  assert_rn_error(r->error, RN_EUNKNOWNOP);
  assert_int_equal(r->op_case, RUNNEL__RESPONSE__OP__NOT_SET);
  rn_raw_free(r);
  bad_conn_still_usable(fx);
  good_client_works(fx);

  /* A Request with no operation at all (only a correlation id). */
  const uint8_t none[] = {0x08, 78};
  assert_int_equal(rn_raw_send_payload(&fx->bad, none, sizeof(none)), 0);
  r = rn_raw_recv(&fx->bad, 78);
  assert_non_null(r);
  assert_rn_error(r->error, RN_EUNKNOWNOP);
  rn_raw_free(r);

  /* An empty frame: an empty Request, likewise no operation. */
  assert_int_equal(rn_raw_send_payload(&fx->bad, "", 0), 0);
  r = rn_raw_recv_any(&fx->bad);
  assert_non_null(r);
  assert_rn_error(r->error, RN_EUNKNOWNOP);
  rn_raw_free(r);
  bad_conn_still_usable(fx);
  good_client_works(fx);
  stop_clean(fx);
}

static void test_unknown_stream(void **state) {
  fx_t *fx = *state;
  size_t len;
  uint8_t *b = itest_batch1("x", 1, &len);
  Runnel__Response *r = rn_raw_produce1(&fx->bad, "nope", 0, b, len);
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  r = rn_raw_fetch1(&fx->bad, "nope", 0, RUNNEL__POSITION_KIND__POSITION_EARLIEST, 0, 0, 0);
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  /* A long poll on a missing stream is refused at once, not parked. */
  r = rn_raw_fetch1(&fx->bad, "nope", 0, RUNNEL__POSITION_KIND__POSITION_LATEST, 0, 30000, 0);
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  r = rn_raw_describe(&fx->bad, "nope");
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  r = rn_raw_delete(&fx->bad, "nope");
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  Runnel__ListOffsetsRequest lo = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
  lo.stream = "nope";
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_LIST_OFFSETS;
  req.list_offsets = &lo;
  r = rn_raw_call(&fx->bad, &req);
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  free(b);
  bad_conn_still_usable(fx);
  good_client_works(fx);
  stop_clean(fx);
}

static void test_unknown_shard(void **state) {
  fx_t *fx = *state;
  size_t len;
  uint8_t *b = itest_batch1("to nowhere", 1, &len);
  assert_int_equal(itest_produce_code(&fx->bad, "s", 2, b, len), rn_raw_wire(RN_ENOSHARD));
  assert_int_equal(itest_produce_code(&fx->bad, "s", UINT32_MAX, b, len), rn_raw_wire(RN_ENOSHARD));

  /* One request, a good and a bad shard: each batch gets its own result. */
  uint32_t shards[2] = {1, 9};
  uint8_t *batches[2] = {b, b};
  size_t lens[2] = {len, len};
  Runnel__Response *r = rn_raw_produce(&fx->bad, "s", 2, shards, batches, lens);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_PRODUCE);
  assert_int_equal(r->produce->n_results, 2);
  assert_int_equal(r->produce->results[0]->shard, 1);
  assert_rn_error(r->produce->results[0]->error, RN_OK);
  assert_int_equal(r->produce->results[0]->base_offset, 0);
  assert_int_equal(r->produce->results[1]->shard, 9);
  assert_rn_error(r->produce->results[1]->error, RN_ENOSHARD);
  rn_raw_free(r);
  assert_int_equal(itest_end_offset(&fx->env.c, "s", 1), 1);

  r = rn_raw_fetch1(&fx->bad, "s", 5, RUNNEL__POSITION_KIND__POSITION_EARLIEST, 0, 0, 0);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
  assert_rn_error(rn_raw_fetch_result(r)->error, RN_ENOSHARD);
  rn_raw_free(r);
  /* With a long wait too: refused at once, not parked. */
  r = rn_raw_fetch1(&fx->bad, "s", 5, RUNNEL__POSITION_KIND__POSITION_LATEST, 0, 30000, 0);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
  assert_rn_error(rn_raw_fetch_result(r)->error, RN_ENOSHARD);
  rn_raw_free(r);
  free(b);
  bad_conn_still_usable(fx);
  good_client_works(fx);
  stop_clean(fx);
}

static void expect_batch_refused(fx_t *fx, const uint8_t *b, size_t len, rn_err_t expected) {
  uint64_t end = itest_end_offset(&fx->env.c, "s", 1);
  assert_int_equal(itest_produce_code(&fx->bad, "s", 1, b, len), rn_raw_wire(expected));
  assert_int_equal(itest_end_offset(&fx->env.c, "s", 1), end); /* nothing stored */
  bad_conn_still_usable(fx);
  good_client_works(fx);
}

static void test_corrupt_batches(void **state) {
  fx_t *fx = *state;
  const char *vals[] = {"alpha", "beta", "gamma"};
  size_t len;
  uint8_t *b = rn_raw_batch_strings(vals, 3, 1000, NULL, &len);
  assert_non_null(b);
  uint8_t *m = malloc(len + 8);
  assert_non_null(m);

  /* A flipped byte in the records (payload checksum). */
  memcpy(m, b, len);
  m[len - 3] ^= 0x01;
  expect_batch_refused(fx, m, len, RN_ECORRUPT);
  /* In the producer header fields (also under the payload checksum). */
  memcpy(m, b, len);
  m[50] ^= 0x40;
  expect_batch_refused(fx, m, len, RN_ECORRUPT);
  /* In the broker-stamped header (header checksum). */
  memcpy(m, b, len);
  m[9] ^= 0x80;
  expect_batch_refused(fx, m, len, RN_ECORRUPT);
  /* Truncated. */
  memcpy(m, b, len);
  expect_batch_refused(fx, m, len - 1, RN_ECORRUPT);
  expect_batch_refused(fx, m, 20, RN_ECORRUPT);
  /* Trailing bytes after the batch. */
  memcpy(m, b, len);
  memset(m + len, 0, 8);
  expect_batch_refused(fx, m, len + 8, RN_ECORRUPT);
  /* Empty. */
  expect_batch_refused(fx, m, 0, RN_ECORRUPT);
  /* Unknown magic: a format this broker does not know. */
  memcpy(m, b, len);
  m[4] = 0x42;
  expect_batch_refused(fx, m, len, RN_EFORMAT);

  /* The intact batch is still accepted afterwards. */
  itest_produce_ok(&fx->bad, "s", 1, b, len);
  free(m);
  free(b);
  stop_clean(fx);
}

static uint8_t *big_record_batch(size_t key_len, size_t value_len, const rn_record_header_t *h, size_t nh, size_t *len) {
  uint8_t *key = malloc(key_len + 1), *val = malloc(value_len + 1);
  assert_non_null(key);
  assert_non_null(val);
  memset(key, 'k', key_len);
  memset(val, 'v', value_len);
  rn_raw_rec_t rec = {.key = key, .key_len = key_len, .value = val, .value_len = value_len, .ts = 5, .headers = h,
                      .header_count = nh};
  uint8_t *b = rn_raw_batch(&rec, 1, NULL, len);
  assert_non_null(b);
  free(key);
  free(val);
  return b;
}

static void test_record_too_large(void **state) {
  fx_t *fx = *state;
  size_t len;
  /* key + value = max_record_bytes: accepted. */
  uint8_t *b = big_record_batch(8, MAX_RECORD - 8, NULL, 0, &len);
  itest_produce_ok(&fx->bad, "s", 1, b, len);
  free(b);
  /* One byte more: ETOOLARGE, and nothing of it stored. */
  b = big_record_batch(8, MAX_RECORD - 7, NULL, 0, &len);
  expect_batch_refused(fx, b, len, RN_ETOOLARGE);
  free(b);
  b = big_record_batch(MAX_RECORD + 1, 1, NULL, 0, &len);
  expect_batch_refused(fx, b, len, RN_ETOOLARGE);
  free(b);
  stop_clean(fx);
}

/* max_record_bytes is documented (config table, `runneld --help`) as
 * "partition key + data + headers": headers count toward the limit. */
static void test_record_headers_count_toward_limit(void **state) {
  fx_t *fx = *state;
  static uint8_t hv[3000];
  memset(hv, 'h', sizeof(hv));
  rn_record_header_t h[2] = {{.key = (const uint8_t *)"h1", .key_len = 2, .value = hv, .value_len = sizeof(hv)},
                             {.key = (const uint8_t *)"h2", .key_len = 2, .value = hv, .value_len = sizeof(hv)}};
  size_t len;
  uint8_t *b = big_record_batch(4, 100, h, 2, &len); /* 104 bytes of key+data, ~6 KB of headers */
  assert_true(len < MAX_BATCH);
  expect_batch_refused(fx, b, len, RN_ETOOLARGE);
  free(b);
  stop_clean(fx);
}

static void test_batch_too_large(void **state) {
  fx_t *fx = *state;
  enum { N = 10 };
  static uint8_t val[4000];
  memset(val, 'b', sizeof(val));
  rn_raw_rec_t recs[N];
  for (int i = 0; i < N; i++) recs[i] = (rn_raw_rec_t){.key = "k", .key_len = 1, .value = val, .value_len = sizeof(val), .ts = i};
  size_t len;
  uint8_t *b = rn_raw_batch(recs, N, NULL, &len);
  assert_non_null(b);
  assert_true(len > MAX_BATCH && len + 200 < MAX_FRAME); /* every record fits; the batch does not */
  expect_batch_refused(fx, b, len, RN_ETOOLARGE);
  free(b);
  stop_clean(fx);
}

static void test_fetch_offset_out_of_range(void **state) {
  fx_t *fx = *state;
  good_client_works(fx); /* shard 0 holds 2 records now */
  uint64_t end = itest_end_offset(&fx->env.c, "s", 0);
  const int64_t bad[] = {(int64_t)end + 1, (int64_t)end + 1000000, -1, INT64_MAX};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    Runnel__Response *r = rn_raw_fetch1(&fx->bad, "s", 0, RUNNEL__POSITION_KIND__POSITION_OFFSET, bad[i], 0, 0);
    assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
    const Runnel__ShardFetchResult *res = rn_raw_fetch_result(r);
    assert_rn_error(res->error, RN_EOFFSET);
    assert_int_equal(res->batches.len, 0);
    assert_int_equal(res->end_offset, end); /* so the client can resync */
    rn_raw_free(r);
    /* With a long wait: refused at once, not parked. */
    r = rn_raw_fetch1(&fx->bad, "s", 0, RUNNEL__POSITION_KIND__POSITION_OFFSET, bad[i], 30000, 0);
    assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
    assert_rn_error(rn_raw_fetch_result(r)->error, RN_EOFFSET);
    rn_raw_free(r);
  }
  /* Unknown position kind. */
  Runnel__Response *r = rn_raw_fetch1(&fx->bad, "s", 0, (Runnel__PositionKind)9, 0, 0, 0);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
  assert_true(rn_raw_code(rn_raw_fetch_result(r)->error) != 0);
  rn_raw_free(r);
  bad_conn_still_usable(fx);
  good_client_works(fx);
  stop_clean(fx);
}

static void test_truncated_frame_then_disconnect(void **state) {
  fx_t *fx = *state;
  /* Half a length prefix. */
  assert_int_equal(rn_raw_send_bytes(&fx->bad, "\x10\x00", 2), 0);
  rn_raw_close(&fx->bad);
  good_client_works(fx);
  /* A length prefix and part of the body. */
  rn_raw_t t;
  assert_int_equal(rn_raw_connect(&t, fx->env.broker.port), 0);
  uint8_t hdr[4];
  rn_frame_put_header(hdr, 100);
  assert_int_equal(rn_raw_send_bytes(&t, hdr, 4), 0);
  assert_int_equal(rn_raw_send_bytes(&t, "\x08\x01\x52\x05", 4), 0);
  rn_raw_close(&t);
  good_client_works(fx);
  /* A whole produce in flight, then an abrupt close with a partial frame
   * behind it: the produce still happens (or not), nothing else is hurt. */
  assert_int_equal(rn_raw_connect(&t, fx->env.broker.port), 0);
  size_t len;
  uint8_t *b = itest_batch1("orphan", 1, &len);
  assert_true(rn_raw_send_produce1(&t, "s", 1, b, len) != 0);
  assert_int_equal(rn_raw_send_bytes(&t, hdr, 3), 0);
  rn_raw_close(&t);
  free(b);
  good_client_works(fx);
  assert_true(itest_end_offset(&fx->env.c, "s", 1) <= 1);
  stop_clean(fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_oversized_frame_closes_connection, setup, teardown),
      cmocka_unit_test_setup_teardown(test_frame_at_limit_is_not_a_framing_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_garbage_protobuf, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_op, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_shard, setup, teardown),
      cmocka_unit_test_setup_teardown(test_corrupt_batches, setup, teardown),
      cmocka_unit_test_setup_teardown(test_record_too_large, setup, teardown),
      cmocka_unit_test_setup_teardown(test_record_headers_count_toward_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_batch_too_large, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fetch_offset_out_of_range, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncated_frame_then_disconnect, setup, teardown),
  };
  return cmocka_run_group_tests_name("broker_bad_input", tests, NULL, NULL);
}
