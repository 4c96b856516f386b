/*
 * test_rest_fast.c — the one-pass REST body parsers (rest_fast.c) against
 * the jansson path (rest_body.c): for every body, rn__rest_parse_* (fast
 * path, falling back) must give what rn__rest_parse_*_general gives — the
 * same records, or the same error code and message — and the fast path
 * must take the common shapes itself (no JSON tree). Edge cases: empty and
 * full batches, bad base64, bad JSON, escapes and unicode in keys and data,
 * numbers jansson converts, duplicate and escaped member names, nesting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest_int.h"

typedef enum { K_RECORD, K_RECORDS, K_BATCH } kind_t;

static rn_err_t parse(kind_t k, bool general, const char *body, size_t len, int mode, const char *key_field,
                      rn__rest_batch_t *b, char *why, size_t wl) {
  const uint8_t *p = (const uint8_t *)body;
  rn__data_mode_t m = (rn__data_mode_t)mode;
  if (k == K_RECORD)
    return general ? rn__rest_parse_record_general(p, len, m, b, why, wl) : rn__rest_parse_record(p, len, m, b, why, wl);
  if (k == K_RECORDS)
    return general ? rn__rest_parse_records_general(p, len, m, b, why, wl) : rn__rest_parse_records(p, len, m, b, why, wl);
  return general ? rn__rest_parse_batch_general(p, len, key_field, 10000, b, why, wl)
                 : rn__rest_parse_batch(p, len, key_field, 10000, b, why, wl);
}

static bool fast_takes(kind_t k, const char *body, size_t len, int mode, const char *key_field) {
  rn__rest_batch_t b;
  const uint8_t *p = (const uint8_t *)body;
  bool ok = k == K_RECORD    ? rn__rest_fast_record(p, len, (rn__data_mode_t)mode, &b)
            : k == K_RECORDS ? rn__rest_fast_records(p, len, (rn__data_mode_t)mode, &b)
                             : rn__rest_fast_batch(p, len, key_field, 10000, &b);
  if (ok) assert_null(b.root);
  rn__rest_batch_free(&b);
  return ok;
}

/* The public parser agrees with the general one on body (all modes);
 * returns whether the fast path took it in mode 0. */
static bool agree_n(kind_t k, const char *body, size_t len, const char *key_field) {
  bool took = false;
  for (int mode = 0; mode < (k == K_BATCH ? 1 : 3); mode++) {
    rn__rest_batch_t a, g;
    char wa[512] = "", wg[512] = "";
    rn_err_t ra = parse(k, false, body, len, mode, key_field, &a, wa, sizeof(wa));
    rn_err_t rg = parse(k, true, body, len, mode, key_field, &g, wg, sizeof(wg));
    if (ra != rg) fail_msg("mode %d: %d vs general %d for %.200s", mode, ra, rg, body);
    if (ra) {
      assert_string_equal(wa, wg);
    } else {
      assert_int_equal(a.n, g.n);
      assert_int_equal(a.proxy, g.proxy);
      for (size_t i = 0; i < a.n; i++) {
        const rn__krec_t *x = &a.recs[i], *y = &g.recs[i];
        assert_int_equal(x->data_len, y->data_len);
        if (x->data_len) assert_memory_equal(x->data, y->data, x->data_len);
        assert_int_equal(x->key == NULL, y->key == NULL);
        assert_int_equal(x->key_len, y->key_len);
        if (x->key_len) assert_memory_equal(x->key, y->key, x->key_len);
        assert_int_equal(x->has_hash, y->has_hash);
        if (x->has_hash) assert_memory_equal(x->hash, y->hash, 16);
      }
      rn__rest_batch_free(&a);
      rn__rest_batch_free(&g);
    }
    if (mode == 0) took = fast_takes(k, body, len, mode, key_field);
  }
  return took;
}

static bool agree(kind_t k, const char *body, const char *key_field) { return agree_n(k, body, strlen(body), key_field); }

static void test_records_common_shapes_fast(void **state) {
  (void)state;
  static const char *const bodies[] = {
      "{\"records\":[{\"data\":\"aGVsbG8=\",\"partition-key\":\"u1\"},{\"data\":\"d29ybGQ\",\"partition-key\":\"u2\"}]}",
      " { \"Records\" : [ { \"Data\" : \"aGk=\" , \"PartitionKey\" : \"k\" , \"ExplicitHashKey\" : \"170141183460469231731687303715884105728\" } ] } \n",
      "{\"records\":[{\"Data\":\"\",\"partitionKey\":\"k\",\"explicit_hash_key\":null}],\"stream\":\"x\",\"n\":[1,{\"a\":null}]}",
      "{\"records\":[{\"data\":{\"user\":\"u1\",\"v\":[1,2.5,true]},\"partition_key\":\"k\",\"extra\":\"\\u00e9\"}]}",
      "{\"records\":[{\"data\":12.5,\"partition-key\":\"caf\\u00e9 \\ud83d\\ude00\"}]}", /* unicode escapes in a key */
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}]}",  /* raw UTF-8 key */
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"tab\\there \\\"q\\\" \\\\ \\/\"}]}",
  };
  for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
    if (!agree(K_RECORDS, bodies[i], NULL)) fail_msg("the fast path declined %s", bodies[i]);
  assert_true(agree(K_RECORD, "{\"Data\":\"aGVsbG8=\",\"PartitionKey\":\"u1\"}", NULL));
  assert_true(agree(K_RECORD, "{\"data\":[1,2],\"partition-key\":\"u1\",\"meta\":{}}", NULL));
}

static void test_text_and_json_modes(void **state) {
  (void)state;
  const char *body = "{\"records\":[{\"data\":\"plain text\",\"partition-key\":\"k\"},"
                     "{\"data\":\"esc\\n\\u00e9\",\"partition-key\":\"k\"}]}";
  agree(K_RECORDS, body, NULL); /* all three modes agree (base64 fails alike) */
  assert_true(fast_takes(K_RECORDS, body, strlen(body), RN__DATA_TEXT, NULL));
  assert_true(fast_takes(K_RECORDS, body, strlen(body), RN__DATA_JSON, NULL));
  rn__rest_batch_t b;
  char why[256];
  assert_int_equal(rn__rest_parse_records((const uint8_t *)body, strlen(body), RN__DATA_TEXT, &b, why, sizeof(why)), 0);
  assert_int_equal(b.recs[1].data_len, 6);
  assert_memory_equal(b.recs[1].data, "esc\n\xc3\xa9", 6);
  rn__rest_batch_free(&b);
  assert_int_equal(rn__rest_parse_records((const uint8_t *)body, strlen(body), RN__DATA_JSON, &b, why, sizeof(why)), 0);
  assert_int_equal(b.recs[0].data_len, 12);
  assert_memory_equal(b.recs[0].data, "\"plain text\"", 12);
  rn__rest_batch_free(&b);
}

static void test_records_limits(void **state) {
  (void)state;
  /* Empty batch: declined, and the general path's message. */
  assert_false(agree(K_RECORDS, "{\"records\":[]}", NULL));
  rn__rest_batch_t b;
  char why[256];
  assert_int_equal(rn__rest_parse_records((const uint8_t *)"{\"records\":[]}", 14, RN__DATA_BASE64, &b, why, sizeof(why)),
                   RN_EINVAL);
  assert_non_null(strstr(why, "holds 0 records"));
  /* 500 records (the maximum) in one pass; 501 refused as before. */
  size_t cap = 600 * 64;
  char *big = malloc(cap);
  for (int n = 500; n <= 501; n++) {
    size_t at = (size_t)sprintf(big, "{\"records\":[");
    for (int i = 0; i < n; i++) at += (size_t)sprintf(big + at, "%s{\"data\":\"AAEC\",\"partition-key\":\"k%d\"}", i ? "," : "", i);
    sprintf(big + at, "]}");
    assert_int_equal(agree(K_RECORDS, big, NULL), n == 500);
    if (n == 501) {
      assert_int_equal(rn__rest_parse_records((const uint8_t *)big, strlen(big), RN__DATA_BASE64, &b, why, sizeof(why)),
                       RN_EINVAL);
      assert_non_null(strstr(why, "holds 501 records"));
    }
  }
  free(big);
  /* Partition keys: 256 characters (multi-byte) pass, 257 do not, empty does not. */
  char key[1200];
  for (int chars = 256; chars <= 257; chars++) {
    size_t at = (size_t)sprintf(key, "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"");
    for (int i = 0; i < chars; i++) at += (size_t)sprintf(key + at, "\xc3\xa9");
    sprintf(key + at, "\"}]}");
    assert_int_equal(agree(K_RECORDS, key, NULL), chars == 256);
  }
  assert_false(agree(K_RECORDS, "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"\"}]}", NULL));
}

static void test_declined_bodies_keep_their_errors(void **state) {
  (void)state;
  static const char *const bodies[] = {
      "",
      "   ",
      "[]",
      "{}",
      "{\"records\":{}}",
      "{\"records\":[{\"data\":\"not base64!\",\"partition-key\":\"k\"}]}",   /* bad base64 */
      "{\"records\":[{\"data\":\"YQ=\",\"partition-key\":\"k\"}]}",           /* bad padding */
      "{\"records\":[{\"data\":\"YR==\",\"partition-key\":\"k\"}]}",          /* non-zero trailing bits */
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"k\"}]",            /* truncated */
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"k\"}]} x",         /* trailing garbage */
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"k\",}]}",          /* trailing comma */
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"a\x01\"}]}",       /* control character */
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"\\x\"}]}",         /* bad escape */
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"\\ud800\"}]}",     /* lone surrogate */
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"\\udc00x\"}]}",
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"\xc3\"}]}",        /* invalid UTF-8 */
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"\xc0\xaf\"}]}",    /* overlong */
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"\xed\xa0\x80\"}]}",/* surrogate in UTF-8 */
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":7}]}",
      "{\"records\":[{\"data\":null,\"partition-key\":\"k\"}]}",
      "{\"records\":[{\"partition-key\":\"k\"}]}",
      "{\"records\":[{\"data\":\"YQ==\"}]}",
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"k\",\"ExplicitHashKey\":\"-1\"}]}",
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"k\",\"ExplicitHashKey\":1}]}",
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"k\",\"ExplicitHashKey\":\"340282366920938463463374607431768211456\"}]}",
      "{\"records\":[7]}",
      "{\"records\":[{\"data\":01,\"partition-key\":\"k\"}]}",                 /* leading zero */
      "{\"records\":[{\"data\":1.,\"partition-key\":\"k\"}]}",
      "{\"records\":[{\"data\":tru,\"partition-key\":\"k\"}]}",
  };
  for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
    if (agree(K_RECORDS, bodies[i], NULL)) fail_msg("the fast path took %s", bodies[i]);
  /* Bodies the fast path leaves to jansson although they are fine: results agree. */
  static const char *const fine[] = {
      "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"k\"}],\"records\":[{\"data\":\"Yg==\",\"partition-key\":\"j\"}]}",
      "{\"records\":[{\"data\":\"YQ==\",\"Data\":\"Yg==\",\"partition-key\":\"k\"}]}",
      "{\"rec\\u006frds\":[{\"data\":\"YQ==\",\"partition-key\":\"k\"}]}",
      "{\"records\":[{\"data\":\"Y\\u0051==\",\"partition-key\":\"k\"}]}",
      "{\"records\":[{\"data\":1e5,\"partition-key\":\"k\"}]}",
      "{\"records\":[{\"data\":123456789012345678901234,\"partition-key\":\"k\"}]}",
  };
  for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) agree(K_RECORDS, fine[i], NULL);
  /* Embedded NUL bytes in a body. */
  static const char nul[] = "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"k\0\"}]}";
  assert_false(agree_n(K_RECORDS, nul, sizeof(nul) - 1, NULL));
  static const char nul_esc[] = "{\"records\":[{\"data\":\"YQ==\",\"partition-key\":\"k\\u0000z\"}]}";
  assert_true(agree(K_RECORDS, nul_esc, NULL));
}

static void test_batch_fast(void **state) {
  (void)state;
  assert_true(agree(K_BATCH, "{\"id\":\"a\",\"v\":1}\n{\"id\":\"b\",\"v\":[1,2]}\r\n\n  {\"id\":\"c\"}  \n", "id"));
  assert_true(agree(K_BATCH, "{\"id\":\"a\",\"v\":1}\n{\"id\":\"b\",\"v\":[1,2]}\n", NULL));
  assert_true(agree(K_BATCH, "[{\"id\":\"a\"}, {\"id\":42}, {\"id\":-7}, {\"id\":1.5}, {\"x\":1}, 3, \"s\", null]", "id"));
  assert_true(agree(K_BATCH, "{\"id\":\"caf\\u00e9\"}\n{\"id\":\"\"}\n{\"id\":true}\n", "id"));
  assert_true(agree(K_BATCH, "7\n\"text\"\n[1,{\"a\":2}]\n", "id"));
  /* Declined, and the same outcome from jansson. */
  assert_false(agree(K_BATCH, "{\"id\":-0}\n", "id"));           /* jansson makes it "0" */
  assert_false(agree(K_BATCH, "{\"id\":\"a\",\"id\":\"b\"}\n", "id")); /* the last one wins */
  assert_false(agree(K_BATCH, "{\"id\":1e3}\n", "id"));
  assert_false(agree(K_BATCH, "{\"id\":\"a\"}\n{\"id\":\n", "id")); /* a bad line */
  assert_false(agree(K_BATCH, "\n\n  \n", "id"));                 /* no records */
  assert_false(agree(K_BATCH, "[]", "id"));
  assert_false(agree(K_BATCH, "[1,2", "id"));
  assert_false(agree(K_BATCH, "{\"a\":1} {\"b\":2}\n", NULL));    /* two values on a line */
  /* Nesting past the scanner's depth goes to jansson, which takes it. */
  char deep[2000];
  size_t at = 0;
  for (int i = 0; i < 600; i++) deep[at++] = '[';
  for (int i = 0; i < 600; i++) deep[at++] = ']';
  deep[at] = 0;
  assert_false(agree(K_BATCH, deep, NULL));
  /* Keys longer than 1024 bytes are capped alike. */
  char *lk = malloc(3000);
  at = (size_t)sprintf(lk, "{\"id\":\"");
  for (int i = 0; i < 1500; i++) lk[at++] = 'x';
  sprintf(lk + at, "\"}\n");
  assert_true(agree(K_BATCH, lk, "id"));
  free(lk);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_records_common_shapes_fast), cmocka_unit_test(test_text_and_json_modes),
      cmocka_unit_test(test_records_limits),             cmocka_unit_test(test_declined_bodies_keep_their_errors),
      cmocka_unit_test(test_batch_fast),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
