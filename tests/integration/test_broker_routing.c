/*
 * test_broker_routing.c — hash-key routing against the real runneld. The
 * test computes MD5(partition key) itself (OpenSSL), reads it as a
 * big-endian u128, finds the owning shard from DescribeStream's ranges (and
 * cross-checks with i = min(h / floor(2^128/N), N-1)), sends every shard its
 * records in ONE produce request, and checks each shard serves exactly the
 * records routed to it, in order.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "itest.h"

typedef unsigned __int128 u128;

static int setup(void **state) { return itest_setup_with(state, NULL); }

static u128 md5_u128(const char *key) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  assert_int_equal(EVP_Digest(key, strlen(key), d, &n, EVP_md5(), NULL), 1);
  assert_int_equal(n, 16);
  u128 v = 0;
  for (int i = 0; i < 16; i++) v = (v << 8) | d[i];
  return v;
}

static u128 be128(const ProtobufCBinaryData *b) {
  assert_int_equal(b->len, 16);
  u128 v = 0;
  for (size_t i = 0; i < 16; i++) v = (v << 8) | b->data[i];
  return v;
}

static void test_md5_is_big_endian(void **state) {
  (void)state;
  /* RFC 1321 test vector: MD5("abc") = 900150983cd24fb0d6963f7d28e17f72. */
  u128 h = md5_u128("abc");
  assert_true((uint64_t)(h >> 64) == 0x900150983cd24fb0ull);
  assert_true((uint64_t)h == 0xd6963f7d28e17f72ull);
}

#define NKEYS 300

static void route_and_check(rn_raw_env_t *env, const char *stream, uint32_t nshards) {
  itest_create(&env->c, stream, nshards, RUNNEL__DURABILITY__DURABILITY_SYNC);
  Runnel__Response *d = rn_raw_describe(&env->c, stream);
  assert_rn_ok(d, RUNNEL__RESPONSE__OP_DESCRIBE_STREAM);
  const Runnel__StreamDescription *sd = d->describe_stream->stream;
  assert_int_equal(sd->n_shards, nshards);
  u128 *lo = calloc(nshards, sizeof(u128)), *hi = calloc(nshards, sizeof(u128));
  assert_non_null(lo);
  assert_non_null(hi);
  for (uint32_t i = 0; i < nshards; i++) {
    lo[i] = be128(&sd->shards[i]->hash_key_start);
    hi[i] = be128(&sd->shards[i]->hash_key_end);
  }
  rn_raw_free(d);
  u128 half = (u128)1 << 127;
  u128 step = 2 * (half / nshards) + (2 * (half % nshards) >= nshards ? 1 : 0);

  /* Route every key. */
  static char keys[NKEYS][32], vals[NKEYS][48];
  uint32_t owner[NKEYS];
  uint32_t *count = calloc(nshards, sizeof(uint32_t));
  assert_non_null(count);
  for (int k = 0; k < NKEYS; k++) {
    snprintf(keys[k], sizeof(keys[k]), k == 0 ? "" : "user-%d", k);
    snprintf(vals[k], sizeof(vals[k]), "payload of key #%d", k);
    u128 h = md5_u128(keys[k]);
    int found = -1;
    for (uint32_t i = 0; i < nshards; i++) {
      if (h >= lo[i] && h <= hi[i]) {
        assert_int_equal(found, -1); /* ranges do not overlap */
        found = (int)i;
      }
    }
    assert_true(found >= 0); /* ranges cover the key space */
    u128 q = h / step;
    uint32_t expect = q >= nshards ? nshards - 1 : (uint32_t)q;
    assert_int_equal((uint32_t)found, expect);
    owner[k] = (uint32_t)found;
    count[found]++;
  }

  /* One batch per shard that got keys; all in one ProduceRequest. */
  uint32_t *shards = calloc(nshards, sizeof(uint32_t));
  uint8_t **batches = calloc(nshards, sizeof(uint8_t *));
  size_t *lens = calloc(nshards, sizeof(size_t));
  rn_raw_rec_t *recs = calloc(NKEYS, sizeof(rn_raw_rec_t));
  assert_non_null(recs);
  size_t nb = 0;
  for (uint32_t i = 0; i < nshards; i++) {
    size_t n = 0;
    for (int k = 0; k < NKEYS; k++) {
      if (owner[k] != i) continue;
      recs[n++] = (rn_raw_rec_t){.key = keys[k], .key_len = strlen(keys[k]), .value = vals[k],
                                 .value_len = strlen(vals[k]), .ts = 1000 + k};
    }
    if (!n) continue;
    shards[nb] = i;
    batches[nb] = rn_raw_batch(recs, n, NULL, &lens[nb]);
    assert_non_null(batches[nb]);
    nb++;
  }
  assert_true(nb >= 2); /* 300 keys over >= 2 shards: more than one shard is hit */
  Runnel__Response *r = rn_raw_produce(&env->c, stream, nb, shards, batches, lens);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_PRODUCE);
  assert_int_equal(r->produce->n_results, nb);
  for (size_t b = 0; b < nb; b++) {
    assert_int_equal(r->produce->results[b]->shard, shards[b]);
    assert_rn_error(r->produce->results[b]->error, RN_OK);
    assert_int_equal(r->produce->results[b]->base_offset, 0);
  }
  rn_raw_free(r);

  /* Each shard serves exactly its keys, in the order sent. */
  for (uint32_t i = 0; i < nshards; i++) {
    rn_raw_records_t got = {0};
    assert_int_equal(rn_raw_fetch_all(&env->c, stream, i, &got), 0);
    assert_int_equal(got.n, count[i]);
    size_t at = 0;
    for (int k = 0; k < NKEYS; k++) {
      if (owner[k] != i) continue;
      const rn_raw_record_t *rec = &got.v[at];
      assert_int_equal(rec->offset, at);
      assert_int_equal(rec->key_len, strlen(keys[k]));
      assert_memory_equal(rec->key, keys[k], strlen(keys[k]));
      assert_int_equal(rec->value_len, strlen(vals[k]));
      assert_memory_equal(rec->value, vals[k], strlen(vals[k]));
      /* And the hash of what came back still maps here. */
      char kb[32];
      memcpy(kb, rec->key, rec->key_len);
      kb[rec->key_len] = 0;
      u128 h = md5_u128(kb);
      assert_true(h >= lo[i] && h <= hi[i]);
      at++;
    }
    rn_raw_records_free(&got);
  }
  for (size_t b = 0; b < nb; b++) free(batches[b]);
  free(shards);
  free(batches);
  free(lens);
  free(recs);
  free(count);
  free(lo);
  free(hi);
}

static void test_routing_5_shards(void **state) {
  rn_raw_env_t *env = *state;
  route_and_check(env, "route5", 5);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static void test_routing_8_shards(void **state) {
  rn_raw_env_t *env = *state;
  route_and_check(env, "route8", 8);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* A key known to hash high lands in the last shard, a low one in shard 0. */
static void test_routing_extremes(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "ext", 4, RUNNEL__DURABILITY__DURABILITY_SYNC);
  /* MD5("abc") = 0x90...: third quarter. */
  u128 h = md5_u128("abc");
  assert_int_equal((unsigned)(h >> 126), 2);
  Runnel__Response *d = rn_raw_describe(&env->c, "ext");
  assert_rn_ok(d, RUNNEL__RESPONSE__OP_DESCRIBE_STREAM);
  const Runnel__ShardInfo *s2 = d->describe_stream->stream->shards[2];
  assert_true(h >= be128(&s2->hash_key_start) && h <= be128(&s2->hash_key_end));
  rn_raw_free(d);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_md5_is_big_endian),
      cmocka_unit_test_setup_teardown(test_routing_5_shards, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_routing_8_shards, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_routing_extremes, setup, itest_teardown),
  };
  return cmocka_run_group_tests_name("broker_routing", tests, NULL, NULL);
}
