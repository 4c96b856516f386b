/*
 * test_routing.c — librunnel's routing helpers: MD5 of a partition key read
 * as a big-endian 128-bit integer, decimal hash keys (Kinesis's
 * ExplicitHashKey), and the shard whose inclusive range contains a key.
 *
 * Expected values were computed independently (Python's hashlib and
 * arbitrary-precision integers) and are written here as decimal strings,
 * the way Kinesis shows them; the 2- and 3-shard ranges are the ones
 * Kinesis itself reports for streams created with that many shards.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "runnel/runnel.h"
#include "testutil.h"

static const char *MAX_KEY = "340282366920938463463374607431768211455"; /* 2^128 - 1 */

static void fmt_md5(const char *key, char out[RN_HASH_KEY_STRLEN]) {
  uint8_t hk[RN_HASH_KEY_BYTES];
  rn_hash_key_for(key, strlen(key), hk);
  rn_hash_key_format(hk, out);
}

static void test_md5_is_big_endian_integer(void **state) {
  (void)state;
  static const uint8_t md5_empty[16] = {0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04,
                                        0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e};
  uint8_t hk[RN_HASH_KEY_BYTES];
  rn_hash_key_for(NULL, 0, hk);
  assert_memory_equal(hk, md5_empty, 16);

  char dec[RN_HASH_KEY_STRLEN];
  fmt_md5("", dec);
  assert_string_equal(dec, "281949768489412648962353822266799178366");
  fmt_md5("a", dec);
  assert_string_equal(dec, "16955237001963240173058271559858726497");
  fmt_md5("abc", dec);
  assert_string_equal(dec, "191415658344158766168031473277922803570");
  fmt_md5("partitionKey-0", dec);
  assert_string_equal(dec, "283893945402358862714065952676399797471");
}

static void test_parse_format(void **state) {
  (void)state;
  uint8_t k[RN_HASH_KEY_BYTES];
  char out[RN_HASH_KEY_STRLEN];
  assert_int_equal(rn_hash_key_parse("0", k), 0);
  rn_hash_key_format(k, out);
  assert_string_equal(out, "0");
  assert_int_equal(rn_hash_key_parse(MAX_KEY, k), 0);
  for (int i = 0; i < 16; i++) assert_int_equal(k[i], 0xff);
  rn_hash_key_format(k, out);
  assert_string_equal(out, MAX_KEY);
  assert_int_equal(rn_hash_key_parse("170141183460469231731687303715884105728", k), 0); /* 2^127 */
  assert_int_equal(k[0], 0x80);
  for (int i = 1; i < 16; i++) assert_int_equal(k[i], 0);
  assert_int_equal(rn_hash_key_parse("256", k), 0);
  assert_int_equal(k[14], 1);
  assert_int_equal(k[15], 0);
  /* canonical decimal only, as Kinesis's ExplicitHashKey (runnel/keys.h):
   * the broker rejects leading zeros, so the client does too */
  assert_int_equal(rn_hash_key_parse("42", k), 0);
  assert_int_equal(k[15], 42);
  assert_int_equal(rn_hash_key_parse("000042", k), RN_EINVAL);

  assert_int_equal(rn_hash_key_parse("340282366920938463463374607431768211456", k), RN_EINVAL); /* 2^128 */
  assert_int_equal(rn_hash_key_parse("3402823669209384634633746074317682114550", k), RN_EINVAL);
  assert_int_equal(rn_hash_key_parse("", k), RN_EINVAL);
  assert_int_equal(rn_hash_key_parse(NULL, k), RN_EINVAL);
  assert_int_equal(rn_hash_key_parse("-1", k), RN_EINVAL);
  assert_int_equal(rn_hash_key_parse("12a", k), RN_EINVAL);
  assert_int_equal(rn_hash_key_parse(" 1", k), RN_EINVAL);

  /* round trip of random keys */
  uint64_t seed = 0x9e3779b97f4a7c15ULL;
  for (int n = 0; n < 2000; n++) {
    uint8_t a[16], b[16];
    for (int i = 0; i < 16; i++) a[i] = (uint8_t)rn_test_rand(&seed);
    if (n % 7 == 0) memset(a, 0, (size_t)(n % 16)); /* short values too */
    rn_hash_key_format(a, out);
    assert_int_equal(rn_hash_key_parse(out, b), 0);
    assert_memory_equal(a, b, 16);
  }
}

/* Shards built from decimal boundaries. */
static void mk_shards(rn_shard_info_t *s, size_t n, const char *const *starts, const char *const *ends) {
  memset(s, 0, n * sizeof *s);
  for (size_t i = 0; i < n; i++) {
    s[i].index = (uint32_t)i;
    assert_int_equal(rn_hash_key_parse(starts[i], s[i].hash_key_start), 0);
    assert_int_equal(rn_hash_key_parse(ends[i], s[i].hash_key_end), 0);
  }
}

static size_t route_key(const rn_shard_info_t *s, size_t n, const char *key) {
  uint8_t hk[RN_HASH_KEY_BYTES];
  size_t pos = 99;
  rn_hash_key_for(key, strlen(key), hk);
  assert_int_equal(rn_shard_for_hash(s, n, hk, &pos), 0);
  return pos;
}

static size_t route_explicit(const rn_shard_info_t *s, size_t n, const char *dec) {
  uint8_t hk[RN_HASH_KEY_BYTES];
  size_t pos = 99;
  assert_int_equal(rn_hash_key_parse(dec, hk), 0);
  assert_int_equal(rn_shard_for_hash(s, n, hk, &pos), 0);
  return pos;
}

static void test_two_shards_kinesis_ranges(void **state) {
  (void)state;
  const char *starts[] = {"0", "170141183460469231731687303715884105728"};
  const char *ends[] = {"170141183460469231731687303715884105727", MAX_KEY};
  rn_shard_info_t s[2];
  mk_shards(s, 2, starts, ends);
  /* boundaries, inclusive on both sides */
  assert_int_equal(route_explicit(s, 2, "0"), 0);
  assert_int_equal(route_explicit(s, 2, "170141183460469231731687303715884105727"), 0);
  assert_int_equal(route_explicit(s, 2, "170141183460469231731687303715884105728"), 1);
  assert_int_equal(route_explicit(s, 2, MAX_KEY), 1);
  /* partition keys (expected shards from the decimal MD5 values above) */
  assert_int_equal(route_key(s, 2, "a"), 0);
  assert_int_equal(route_key(s, 2, "alpha"), 0);
  assert_int_equal(route_key(s, 2, "user-42"), 0);
  assert_int_equal(route_key(s, 2, "abc"), 1);
  assert_int_equal(route_key(s, 2, "beta"), 1);
  assert_int_equal(route_key(s, 2, ""), 1);
  assert_int_equal(route_key(s, 2, "partitionKey-0"), 1);
}

static void test_three_shards_kinesis_ranges(void **state) {
  (void)state;
  const char *starts[] = {"0", "113427455640312821154458202477256070485",
                          "226854911280625642308916404954512140970"};
  const char *ends[] = {"113427455640312821154458202477256070484", "226854911280625642308916404954512140969",
                        MAX_KEY};
  rn_shard_info_t s[3];
  mk_shards(s, 3, starts, ends);
  assert_int_equal(route_explicit(s, 3, "113427455640312821154458202477256070484"), 0);
  assert_int_equal(route_explicit(s, 3, "113427455640312821154458202477256070485"), 1);
  assert_int_equal(route_explicit(s, 3, "226854911280625642308916404954512140969"), 1);
  assert_int_equal(route_explicit(s, 3, "226854911280625642308916404954512140970"), 2);
  assert_int_equal(route_key(s, 3, "a"), 0);
  assert_int_equal(route_key(s, 3, "alpha"), 0);
  assert_int_equal(route_key(s, 3, "abc"), 1);
  assert_int_equal(route_key(s, 3, "user-42"), 1);
  assert_int_equal(route_key(s, 3, "beta"), 1);
  assert_int_equal(route_key(s, 3, ""), 2);
  assert_int_equal(route_key(s, 3, "partitionKey-0"), 2);
}

static void test_unordered_and_gaps(void **state) {
  (void)state;
  /* the description's order need not be the hash order */
  const char *starts[] = {"170141183460469231731687303715884105728", "0"};
  const char *ends[] = {MAX_KEY, "170141183460469231731687303715884105727"};
  rn_shard_info_t s[2];
  mk_shards(s, 2, starts, ends);
  assert_int_equal(route_key(s, 2, "a"), 1);
  assert_int_equal(route_key(s, 2, "abc"), 0);
  /* a hole: no shard */
  const char *gs[] = {"0", "1000"};
  const char *ge[] = {"99", MAX_KEY};
  mk_shards(s, 2, gs, ge);
  uint8_t hk[RN_HASH_KEY_BYTES];
  size_t pos = 7;
  assert_int_equal(rn_hash_key_parse("500", hk), 0);
  assert_int_equal(rn_shard_for_hash(s, 2, hk, &pos), RN_ENOSHARD);
  assert_int_equal(pos, 7);
  assert_int_equal(rn_shard_for_hash(s, 0, hk, &pos), RN_ENOSHARD);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_md5_is_big_endian_integer),
      cmocka_unit_test(test_parse_format),
      cmocka_unit_test(test_two_shards_kinesis_ranges),
      cmocka_unit_test(test_three_shards_kinesis_ranges),
      cmocka_unit_test(test_unordered_and_gaps),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
