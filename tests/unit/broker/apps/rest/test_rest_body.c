/*
 * test_rest_body.c — REST ingest body parsing (rest_body.c): both
 * API-Gateway proxy shapes in the three data modes, the NDJSON / JSON-array
 * batch body (bytes kept as sent, partition keys from a field), malformed
 * bodies, gzip (including a bomb), API keys and query parameters.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "rest_int.h"

static void expect_data(const rn__krec_t *r, const char *want) {
  if (r->data_len != strlen(want) || memcmp(r->data, want, r->data_len) != 0)
    fail_msg("data '%.*s', want '%s'", (int)r->data_len, (const char *)r->data, want);
}

static void expect_key(const rn__krec_t *r, const char *want) {
  if (!r->key || r->key_len != strlen(want) || memcmp(r->key, want, r->key_len) != 0)
    fail_msg("key '%.*s', want '%s'", (int)r->key_len, r->key ? r->key : "(null)", want);
}

#define B(s) (const uint8_t *)(s), strlen(s)

static void test_record_shape(void **state) {
  (void)state;
  rn__rest_batch_t b;
  char why[256];
  /* A JSON value is stored as sent, whatever the mode. */
  const char *obj = "{\"Data\": {\"user\": \"u1\", \"n\": 1.50, \"a\": [1, 2]}, \"PartitionKey\": \"u1\"}";
  for (int mode = 0; mode < 3; mode++) {
    assert_int_equal(rn__rest_parse_record(B(obj), (rn__data_mode_t)mode, &b, why, sizeof(why)), 0);
    assert_int_equal(b.n, 1);
    expect_data(&b.recs[0], "{\"user\": \"u1\", \"n\": 1.50, \"a\": [1, 2]}");
    expect_key(&b.recs[0], "u1");
    rn__rest_batch_free(&b);
  }
  /* A string: base64 (default), text, or its JSON text. */
  const char *str = "{\"PartitionKey\":\"k\",\"Data\":\"aGk=\"}";
  assert_int_equal(rn__rest_parse_record(B(str), RN__DATA_BASE64, &b, why, sizeof(why)), 0);
  expect_data(&b.recs[0], "hi");
  rn__rest_batch_free(&b);
  assert_int_equal(rn__rest_parse_record(B(str), RN__DATA_TEXT, &b, why, sizeof(why)), 0);
  expect_data(&b.recs[0], "aGk=");
  rn__rest_batch_free(&b);
  assert_int_equal(rn__rest_parse_record(B(str), RN__DATA_JSON, &b, why, sizeof(why)), 0);
  expect_data(&b.recs[0], "\"aGk=\"");
  rn__rest_batch_free(&b);
  /* Other spellings and an explicit hash key. */
  const char *alt = "{\"data\": 7, \"partitionKey\": \"k\", \"ExplicitHashKey\": \"0\"}";
  assert_int_equal(rn__rest_parse_record(B(alt), RN__DATA_BASE64, &b, why, sizeof(why)), 0);
  expect_data(&b.recs[0], "7");
  assert_true(b.recs[0].has_hash);
  rn__rest_batch_free(&b);
  /* Errors. */
  const char *bad[] = {"", "{", "[]", "{\"PartitionKey\":\"k\"}", "{\"Data\":1}", "{\"Data\":1,\"PartitionKey\":\"\"}",
                       "{\"Data\":\"not base64!\",\"PartitionKey\":\"k\"}", "{\"Data\":1,\"PartitionKey\":5}",
                       "{\"Data\":1,\"PartitionKey\":\"k\",\"ExplicitHashKey\":\"-1\"}"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    why[0] = 0;
    if (rn__rest_parse_record(B(bad[i]), RN__DATA_BASE64, &b, why, sizeof(why)) == 0) fail_msg("accepted: %s", bad[i]);
    assert_true(strlen(why) > 0);
  }
}

static void test_records_shape(void **state) {
  (void)state;
  rn__rest_batch_t b;
  char why[256];
  const char *body = "{\"records\": [{\"data\": {\"e\": 1}, \"partition-key\": \"a\"},"
                     " {\"data\": \"x y\", \"partition-key\": \"b\"}, {\"Data\": [1,2], \"PartitionKey\": \"c\"}]}";
  assert_int_equal(rn__rest_parse_records(B(body), RN__DATA_TEXT, &b, why, sizeof(why)), 0);
  assert_int_equal(b.n, 3);
  assert_true(b.proxy);
  expect_data(&b.recs[0], "{\"e\": 1}");
  expect_key(&b.recs[0], "a");
  expect_data(&b.recs[1], "x y");
  expect_data(&b.recs[2], "[1,2]");
  expect_key(&b.recs[2], "c");
  rn__rest_batch_free(&b);
  assert_int_equal(rn__rest_parse_records(B("{\"records\": []}"), RN__DATA_TEXT, &b, why, sizeof(why)), RN_EINVAL);
  assert_int_equal(rn__rest_parse_records(B("{\"records\": 1}"), RN__DATA_TEXT, &b, why, sizeof(why)), RN_EINVAL);
  assert_int_equal(rn__rest_parse_records(B("{\"records\": [{\"data\": 1}]}"), RN__DATA_TEXT, &b, why, sizeof(why)),
                   RN_EINVAL);
  assert_non_null(strstr(why, "records[0]"));
}

static void test_batch_ndjson(void **state) {
  (void)state;
  rn__rest_batch_t b;
  char why[256];
  const char *nd = "{\"user\":\"u1\",\"e\":\"tap\"}\r\n\n  {\"user\": \"u2\", \"e\": \"scroll\"}  \n{\"user\":7}\n[1]\n\"s\"";
  assert_int_equal(rn__rest_parse_batch(B(nd), "user", 100, &b, why, sizeof(why)), 0);
  assert_int_equal(b.n, 5);
  expect_data(&b.recs[0], "{\"user\":\"u1\",\"e\":\"tap\"}");
  expect_key(&b.recs[0], "u1");
  expect_data(&b.recs[1], "{\"user\": \"u2\", \"e\": \"scroll\"}");
  expect_key(&b.recs[1], "u2");
  expect_key(&b.recs[2], "7");
  assert_null(b.recs[3].key); /* no such field: the caller assigns a key */
  expect_data(&b.recs[4], "\"s\"");
  rn__rest_batch_free(&b);
  assert_int_equal(rn__rest_parse_batch(B("{\"a\":1}\n{oops}\n"), NULL, 100, &b, why, sizeof(why)), RN_EINVAL);
  assert_non_null(strstr(why, "line 2"));
  assert_int_equal(rn__rest_parse_batch(B("\n \n"), NULL, 100, &b, why, sizeof(why)), RN_EINVAL);
  assert_int_equal(rn__rest_parse_batch(B("1\n2\n3\n"), NULL, 2, &b, why, sizeof(why)), RN_ETOOLARGE);
}

static void test_batch_array(void **state) {
  (void)state;
  rn__rest_batch_t b;
  char why[256];
  const char *arr = " [ {\"id\": \"a\", \"v\": 1.0} , {\"id\": \"b\"},3 ] ";
  assert_int_equal(rn__rest_parse_batch(B(arr), "id", 100, &b, why, sizeof(why)), 0);
  assert_int_equal(b.n, 3);
  expect_data(&b.recs[0], "{\"id\": \"a\", \"v\": 1.0}");
  expect_key(&b.recs[0], "a");
  expect_data(&b.recs[1], "{\"id\": \"b\"}");
  expect_key(&b.recs[1], "b");
  expect_data(&b.recs[2], "3");
  assert_null(b.recs[2].key);
  rn__rest_batch_free(&b);
  assert_int_equal(rn__rest_parse_batch(B("[]"), NULL, 100, &b, why, sizeof(why)), RN_EINVAL);
  assert_int_equal(rn__rest_parse_batch(B("[1,"), NULL, 100, &b, why, sizeof(why)), RN_EINVAL);
}

static size_t gz(const char *in, size_t n, uint8_t *out, size_t cap) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = (Bytef *)(uintptr_t)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  size_t len = cap - z.avail_out;
  deflateEnd(&z);
  return len;
}

static void test_gzip(void **state) {
  (void)state;
  static uint8_t comp[1 << 16];
  const char *text = "{\"a\":1}\n{\"a\":2}\n";
  size_t cl = gz(text, strlen(text), comp, sizeof(comp));
  uint8_t *out = NULL;
  size_t ol = 0;
  assert_int_equal(rn__gunzip(comp, cl, 1024, &out, &ol), 0);
  assert_int_equal(ol, strlen(text));
  assert_memory_equal(out, text, ol);
  free(out);
  /* Two members back to back are one body. */
  size_t cl2 = gz(text, strlen(text), comp + cl, sizeof(comp) - cl);
  assert_int_equal(rn__gunzip(comp, cl + cl2, 1024, &out, &ol), 0);
  assert_int_equal(ol, 2 * strlen(text));
  free(out);
  /* Truncated and garbage input. */
  assert_int_equal(rn__gunzip(comp, cl - 5, 1024, &out, &ol), RN_EINVAL);
  assert_int_equal(rn__gunzip((const uint8_t *)"plain text", 10, 1024, &out, &ol), RN_EINVAL);
  /* A bomb: 8 MiB of zeros stops at the limit. */
  size_t big = 8u << 20;
  char *zeros = calloc(1, big);
  cl = gz(zeros, big, comp, sizeof(comp));
  assert_true(cl < sizeof(comp));
  assert_int_equal(rn__gunzip(comp, cl, 1u << 20, &out, &ol), RN_ETOOLARGE);
  assert_null(out);
  assert_int_equal(rn__gunzip(comp, cl, big, &out, &ol), 0);
  assert_int_equal(ol, big);
  free(out);
  free(zeros);
}

static void test_api_keys(void **state) {
  (void)state;
  rn__apikeys_t k;
  char why[256];
  assert_int_equal(rn__apikeys_parse("k1:ev|other, k2:*", &k, why, sizeof(why)), 0);
  assert_int_equal(k.n, 2);
  assert_int_equal(rn__apikeys_check(&k, "k1", 2, "ev"), 0);
  assert_int_equal(rn__apikeys_check(&k, "k1", 2, "other"), 0);
  assert_int_equal(rn__apikeys_check(&k, "k1", 2, "priv"), 403);
  assert_int_equal(rn__apikeys_check(&k, "k2", 2, "priv"), 0);
  assert_int_equal(rn__apikeys_check(&k, "k3", 2, "ev"), 401);
  assert_int_equal(rn__apikeys_check(&k, "k", 1, "ev"), 401);
  rn__apikeys_free(&k);
  assert_int_equal(rn__apikeys_parse("", &k, why, sizeof(why)), 0);
  assert_int_equal(k.n, 0);
  assert_int_equal(rn__apikeys_check(&k, "x", 1, "ev"), 401);
  rn__apikeys_free(&k);
  assert_int_equal(rn__apikeys_parse("nocolon", &k, why, sizeof(why)), RN_EINVAL);
  assert_non_null(strstr(why, "entry 1"));
  assert_int_equal(rn__apikeys_parse("a:ok,b:bad name", &k, why, sizeof(why)), RN_EINVAL);
  assert_non_null(strstr(why, "entry 2"));
}

static void test_query(void **state) {
  (void)state;
  char v[32];
  assert_int_equal(rn__query_param("data=text&key_field=user%20id&x", "key_field", v, sizeof(v)), 1);
  assert_string_equal(v, "user id");
  assert_int_equal(rn__query_param("data=text", "data", v, sizeof(v)), 1);
  assert_string_equal(v, "text");
  assert_int_equal(rn__query_param("a=1+2", "a", v, sizeof(v)), 1);
  assert_string_equal(v, "1 2");
  assert_int_equal(rn__query_param("x", "x", v, sizeof(v)), 1);
  assert_string_equal(v, "");
  assert_int_equal(rn__query_param("", "x", v, sizeof(v)), 0);
  assert_int_equal(rn__query_param(NULL, "x", v, sizeof(v)), 0);
  assert_int_equal(rn__query_param("x=%zz", "x", v, sizeof(v)), -1);
  assert_int_equal(rn__query_param("x=%4", "x", v, sizeof(v)), -1);
  assert_int_equal(rn__query_param("x=0123456789012345678901234567890123456789", "x", v, sizeof(v)), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_record_shape), cmocka_unit_test(test_records_shape), cmocka_unit_test(test_batch_ndjson),
      cmocka_unit_test(test_batch_array),  cmocka_unit_test(test_gzip),          cmocka_unit_test(test_api_keys),
      cmocka_unit_test(test_query),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
