/*
 * test_keys.c — the one hash-key rule and the one name rule
 * (runnel/keys.h), edge by edge: canonical decimal in [0, 2^128-1] (empty,
 * "0", "007", 2^128-1, 2^128, 39 and 40 digits, non-digits, signs,
 * whitespace, embedded NUL, length-delimited input), the format/parse round
 * trip, MD5 routing against every RFC 1321 vector (also from threads at
 * once: each has its own digest context); stream and group names
 * (length 1..128, the character set, "/", "." and "..", NUL, NULL) and the
 * reasons they give.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "runnel/keys.h"
#include "runnel/proto.h" /* the umbrella header compiles on its own */

#define MAX_KEY "340282366920938463463374607431768211455"  /* 2^128-1 */
#define OVER_KEY "340282366920938463463374607431768211456" /* 2^128 */

static rn_err_t parse(const char *s, uint8_t out[16]) { return rn_hash_key_parse_n(s, strlen(s), out); }

static void test_hash_key_accepts(void **state) {
  (void)state;
  uint8_t k[16];
  char out[RN_HASH_KEY_STRLEN];
  assert_int_equal(parse("0", k), 0);
  for (int i = 0; i < 16; i++) assert_int_equal(k[i], 0);
  assert_int_equal(parse("7", k), 0);
  assert_int_equal(k[15], 7);
  assert_int_equal(parse("256", k), 0);
  assert_int_equal(k[14], 1);
  assert_int_equal(k[15], 0);
  assert_int_equal(parse("170141183460469231731687303715884105728", k), 0); /* 2^127 */
  assert_int_equal(k[0], 0x80);
  for (int i = 1; i < 16; i++) assert_int_equal(k[i], 0);
  assert_int_equal(parse(MAX_KEY, k), 0); /* 39 digits, the largest */
  for (int i = 0; i < 16; i++) assert_int_equal(k[i], 0xff);
  rn_hash_key_format(k, out);
  assert_string_equal(out, MAX_KEY);
  /* 39 digits below the maximum */
  assert_int_equal(parse("100000000000000000000000000000000000000", k), 0);
  /* the NUL-terminated form is the same rule */
  assert_int_equal(rn_hash_key_parse("12345", k), 0);
  assert_int_equal(k[15], 12345 & 0xff);
  assert_int_equal(k[14], 12345 >> 8);
  /* length-delimited: bytes past len are not read */
  assert_int_equal(rn_hash_key_parse_n("12x", 2, k), 0);
  assert_int_equal(k[15], 12);
}

static void test_hash_key_rejects(void **state) {
  (void)state;
  uint8_t k[16], before[16];
  memset(k, 0xa5, sizeof k);
  memcpy(before, k, sizeof k);
  static const char *const bad[] = {
      "",                                         /* empty */
      "007", "00", "01", "0" MAX_KEY,             /* leading zeros (Kinesis pattern "0|([1-9]\d{0,38})") */
      OVER_KEY,                                   /* 2^128 */
      "999999999999999999999999999999999999999",  /* 39 digits above 2^128-1 */
      "1000000000000000000000000000000000000000", /* 40 digits */
      MAX_KEY "0",                                /* 40 digits */
      "-1", "+1", "-0",                           /* signs */
      " 1", "1 ", "1\n", "\t1",                   /* whitespace */
      "12a", "a", "0x10", "1.0", "1e3", "1_000",  /* non-digits */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(parse(bad[i], k), RN_EINVAL);
    assert_int_equal(rn_hash_key_parse(bad[i], k), RN_EINVAL);
    assert_memory_equal(k, before, 16); /* untouched on failure */
  }
  assert_int_equal(rn_hash_key_parse(NULL, k), RN_EINVAL);
  assert_int_equal(rn_hash_key_parse_n(NULL, 0, k), RN_EINVAL);
  assert_int_equal(rn_hash_key_parse_n("1\0" "2", 3, k), RN_EINVAL); /* embedded NUL */
  /* a long run of digits is rejected without reading it all as a number */
  char big[200];
  memset(big, '9', sizeof big);
  assert_int_equal(rn_hash_key_parse_n(big, sizeof big, k), RN_EINVAL);
  assert_memory_equal(k, before, 16);
}

static void test_hash_key_round_trip(void **state) {
  (void)state;
  uint64_t seed = 0x9e3779b97f4a7c15ULL;
  char out[RN_HASH_KEY_STRLEN];
  for (int n = 0; n < 2000; n++) {
    uint8_t a[16], b[16];
    for (int i = 0; i < 16; i++) {
      seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
      a[i] = (uint8_t)seed;
    }
    if (n % 7 == 0) memset(a, 0, (size_t)(n % 17)); /* short values, and 0 */
    rn_hash_key_format(a, out);
    assert_true(strlen(out) < RN_HASH_KEY_STRLEN);
    assert_true(out[0] != '0' || out[1] == '\0'); /* canonical */
    assert_int_equal(parse(out, b), 0);
    assert_memory_equal(a, b, 16);
  }
}

static void test_hash_key_md5(void **state) {
  (void)state;
  uint8_t h[16];
  char dec[RN_HASH_KEY_STRLEN];
  /* MD5("abc") = 900150983cd24fb0d6963f7d28e17f72 (RFC 1321) */
  rn_hash_key_for("abc", 3, h);
  assert_int_equal(h[0], 0x90);
  assert_int_equal(h[15], 0x72);
  rn_hash_key_format(h, dec);
  assert_string_equal(dec, "191415658344158766168031473277922803570");
  /* MD5("") = d41d8cd98f00b204e9800998ecf8427e; key may be NULL when empty */
  rn_hash_key_for(NULL, 0, h);
  assert_int_equal(h[0], 0xd4);
  assert_int_equal(h[15], 0x7e);
  rn_hash_key_format(h, dec);
  assert_string_equal(dec, "281949768489412648962353822266799178366");
}

/* Every RFC 1321 test vector, byte for byte (the last two cross MD5's
 * 64-byte block), each hashed twice: the thread's context is reused. */
static const struct {
  const char *in, *hex;
} md5_vectors[] = {
    {"", "d41d8cd98f00b204e9800998ecf8427e"},
    {"a", "0cc175b9c0f1b6a831c399e269772661"},
    {"abc", "900150983cd24fb0d6963f7d28e17f72"},
    {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
    {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
    {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"},
    {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
     "57edf4a22be3c955ac49da2e2107b67a"},
};
#define N_MD5_VECTORS (sizeof md5_vectors / sizeof md5_vectors[0])

/* 0 when every vector hashes to its digest. */
static int md5_vectors_mismatch(void) {
  for (size_t i = 0; i < N_MD5_VECTORS; i++) {
    uint8_t want[16], got[16];
    for (int k = 0; k < 16; k++) {
      unsigned v = 0;
      sscanf(md5_vectors[i].hex + 2 * k, "%2x", &v);
      want[k] = (uint8_t)v;
    }
    for (int rep = 0; rep < 2; rep++) {
      memset(got, 0, sizeof got);
      rn_hash_key_for(md5_vectors[i].in, strlen(md5_vectors[i].in), got);
      if (memcmp(got, want, 16) != 0) return (int)i + 1;
    }
  }
  return 0;
}

static void test_hash_key_md5_vectors(void **state) {
  (void)state;
  assert_int_equal(md5_vectors_mismatch(), 0);
  /* The empty key through a non-NULL pointer: the same as NULL. */
  uint8_t a[16], b[16];
  rn_hash_key_for("x", 0, a);
  rn_hash_key_for(NULL, 0, b);
  assert_memory_equal(a, b, 16);
}

/* Each thread has its own context: threads hashing at once all get the
 * right digests, and the first use in each thread sets its context up. */
static void *md5_thread(void *arg) {
  int *res = arg;
  for (int n = 0; n < 200 && *res == 0; n++) *res = md5_vectors_mismatch();
  return NULL;
}

static void test_hash_key_md5_threads(void **state) {
  (void)state;
  enum { N = 4 };
  pthread_t t[N];
  int res[N] = {0};
  for (int i = 0; i < N; i++) assert_int_equal(pthread_create(&t[i], NULL, md5_thread, &res[i]), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(res[i], 0);
  }
}

/* ---- names ------------------------------------------------------------------------------ */

typedef rn_err_t (*check_fn)(const char *s, size_t len, char *why, size_t whylen);

static rn_err_t check(check_fn fn, const char *s) { return fn(s, s ? strlen(s) : 0, NULL, 0); }

static void names_common(check_fn fn) {
  char n128[129], n129[130];
  memset(n128, 'a', 128);
  n128[128] = 0;
  memset(n129, 'b', 129);
  n129[129] = 0;
  static const char *const ok[] = {"a", "Z", "0", "s", "my-stream_1.v2", "...", ".a", "a.", "a..b", "-", "_", ".hidden"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) assert_int_equal(check(fn, ok[i]), 0);
  assert_int_equal(check(fn, n128), 0); /* RN_NAME_MAX */
  assert_int_equal(RN_NAME_MAX, 128);

  static const char *const bad[] = {
      "",                     /* empty */
      ".", "..",              /* relative directories */
      "a/b", "/", "../x", "/etc", /* path separators */
      "a b", " a", "a\t", "a\n", /* whitespace */
      "a:b", "a*", "a%2e", "é", "a\\b", "a+b", "a@b", /* outside [A-Za-z0-9_.-] */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_int_equal(check(fn, bad[i]), RN_EINVAL);
  assert_int_equal(check(fn, n129), RN_EINVAL); /* too long */
  assert_int_equal(fn(NULL, 0, NULL, 0), RN_EINVAL);
  assert_int_equal(fn("a\0b", 3, NULL, 0), RN_EINVAL); /* embedded NUL */
  assert_int_equal(fn("ab/", 2, NULL, 0), 0);          /* only len bytes are read */
  assert_int_equal(fn("..x", 2, NULL, 0), RN_EINVAL);
}

static void test_stream_names(void **state) {
  (void)state;
  names_common(rn_name_check_stream);
  char why[256];
  assert_int_equal(rn_name_check_stream("a/b", 3, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "stream name \"a/b\" is invalid: 1-128 characters of A-Z a-z 0-9 _ . -");
  assert_int_equal(rn_name_check_stream("..", 2, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "stream name \"..\" is invalid: \".\" and \"..\" are reserved");
  /* a long name is shortened in the reason, which always fits */
  char longname[300];
  memset(longname, 'x', sizeof longname);
  assert_int_equal(rn_name_check_stream(longname, sizeof longname, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "is invalid: 1-128 characters"));
  char tiny[8];
  assert_int_equal(rn_name_check_stream("", 0, tiny, sizeof tiny), RN_EINVAL);
  assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

static void test_group_names(void **state) {
  (void)state;
  names_common(rn_name_check_group);
  char why[256];
  assert_int_equal(rn_name_check_group("", 0, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "invalid group name \"\": 1-128 characters of A-Z a-z 0-9 _ . -");
  assert_int_equal(rn_name_check_group(".", 1, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "invalid group name \".\": \".\" and \"..\" are reserved");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hash_key_accepts), cmocka_unit_test(test_hash_key_rejects),
      cmocka_unit_test(test_hash_key_round_trip), cmocka_unit_test(test_hash_key_md5),
      cmocka_unit_test(test_hash_key_md5_vectors), cmocka_unit_test(test_hash_key_md5_threads),
      cmocka_unit_test(test_stream_names), cmocka_unit_test(test_group_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
