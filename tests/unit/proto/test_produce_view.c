/*
 * test_produce_view.c — the broker's zero-copy produce decoder
 * (runnel/produce_view.h) against protobuf-c: what it accepts decodes
 * exactly as protobuf-c decodes it, with batch bytes borrowed from the
 * input; what it does not know it declines (protobuf-c then decides).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "produce_view_check.h"
#include "runnel.pb-c.h"
#include "runnel/produce_view.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

/* Pack a produce request with n batches; returns malloc'ed bytes. */
static uint8_t *pack_produce(uint64_t corr, const char *stream, size_t n, size_t *len) {
  Runnel__ShardBatch sb[80], *sbp[80];
  uint8_t data[80][64];
  assert_true(n <= 80);
  for (size_t i = 0; i < n; i++) {
    runnel__shard_batch__init(&sb[i]);
    sb[i].shard = rnd() % 1000;
    size_t bl = rnd() % 64;
    for (size_t k = 0; k < bl; k++) data[i][k] = (uint8_t)rnd();
    sb[i].batch.data = data[i];
    sb[i].batch.len = bl;
    sbp[i] = &sb[i];
  }
  Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
  pr.stream = (char *)stream;
  pr.n_batches = n;
  pr.batches = sbp;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.correlation_id = corr;
  req.op_case = RUNNEL__REQUEST__OP_PRODUCE;
  req.produce = &pr;
  *len = runnel__request__get_packed_size(&req);
  uint8_t *buf = malloc(*len ? *len : 1);
  assert_non_null(buf);
  runnel__request__pack(&req, buf);
  return buf;
}

static void test_round_trip(void **state) {
  (void)state;
  for (int iter = 0; iter < 200; iter++) {
    size_t n = rnd() % 65, len;
    uint64_t corr = iter % 3 ? ((uint64_t)rnd() << 32 | rnd()) : 0;
    uint8_t *buf = pack_produce(corr, iter % 5 ? "events-1" : "", n, &len);
    int accepted;
    const char *why = produce_view_check(buf, len, &accepted);
    assert_null(why);
    assert_true(accepted);
    free(buf);
  }
}

static void test_declines(void **state) {
  (void)state;
  size_t len;
  int accepted;
  /* more batches than the view holds */
  uint8_t *buf = pack_produce(7, "s", RN_PRODUCE_VIEW_MAX_BATCHES + 1, &len);
  assert_null(produce_view_check(buf, len, &accepted));
  assert_false(accepted);
  free(buf);
  /* a stream name longer than the view holds */
  char name[RN_PRODUCE_VIEW_MAX_NAME + 2];
  memset(name, 'a', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  buf = pack_produce(7, name, 1, &len);
  assert_null(produce_view_check(buf, len, &accepted));
  assert_false(accepted);
  free(buf);
  /* another operation */
  Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
  fr.stream = "s";
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.correlation_id = 3;
  req.op_case = RUNNEL__REQUEST__OP_FETCH;
  req.fetch = &fr;
  uint8_t other[64];
  size_t ol = runnel__request__pack(&req, other);
  rn_produce_view_t *v = malloc(sizeof *v);
  assert_false(rn_produce_view_decode(other, ol, v));
  /* no operation at all */
  uint8_t only_corr[] = {0x08, 0x05};
  assert_false(rn_produce_view_decode(only_corr, sizeof only_corr, v));
  /* an unknown field inside a ShardBatch: protobuf-c would skip it */
  uint8_t unknown[] = {0xaa, 0x01, 0x06, 0x12, 0x04, 0x18, 0x01, 0x08, 0x02};
  assert_false(rn_produce_view_decode(unknown, sizeof unknown, v));
  free(v);
}

/* Every prefix and random mutations of valid requests: whatever the
 * decoder accepts, protobuf-c reads the same way. */
static void test_mutations(void **state) {
  (void)state;
  unsigned accepted_n = 0;
  for (int iter = 0; iter < 300; iter++) {
    size_t len;
    uint8_t *buf = pack_produce(rnd(), "stream.x", rnd() % 6, &len);
    int accepted;
    for (size_t cut = 0; cut <= len; cut++) assert_null(produce_view_check(buf, cut, &accepted));
    for (int m = 0; m < 20 && len > 0; m++) {
      uint8_t *mut = malloc(len);
      memcpy(mut, buf, len);
      for (int k = 0; k < 1 + (int)(rnd() % 3); k++) mut[rnd() % len] = (uint8_t)rnd();
      assert_null(produce_view_check(mut, len, &accepted));
      accepted_n += (unsigned)accepted;
      free(mut);
    }
    free(buf);
  }
  assert_true(accepted_n > 0); /* mutations of batch bytes stay valid */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_declines),
      cmocka_unit_test(test_mutations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
