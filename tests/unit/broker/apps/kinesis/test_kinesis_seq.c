/*
 * test_kinesis_seq.c — the pure codecs of kinesis_seq.c: sequence numbers
 * (round trips, the 186-bit layout the KCL reads, real Kinesis numbers),
 * shard iterators (HMAC, tampering, wrong key), timestamps (integers,
 * decimals, exponents, ISO 8601, JSON values), base64, shard ids
 * and the JSON string writer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis_int.h"
#include "testutil.h"

/* ---- an independent decimal → bits conversion (schoolbook halving) ------------------- */

/* Bits of the decimal string s, least significant first, into bits[cap]; returns the bit length. */
static int dec_to_bits(const char *s, unsigned char *bits, int cap) {
  char d[128];
  size_t n = strlen(s);
  assert_true(n < sizeof(d));
  memcpy(d, s, n + 1);
  int len = 0;
  memset(bits, 0, (size_t)cap);
  for (;;) {
    bool zero = true;
    for (size_t i = 0; i < n; i++) zero &= d[i] == '0';
    if (zero) break;
    int rem = 0;
    for (size_t i = 0; i < n; i++) {
      int cur = rem * 10 + (d[i] - '0');
      d[i] = (char)('0' + cur / 2);
      rem = cur % 2;
    }
    assert_true(len < cap);
    bits[len++] = (unsigned char)rem;
  }
  return len;
}

static uint64_t bits_get(const unsigned char *bits, int pos, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 1) | bits[pos + i];
  return v;
}

static void test_seq_layout(void **state) {
  (void)state;
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  for (int round = 0; round < 2000; round++) {
    int64_t created_ms = 1500000000000LL + (int64_t)rn_test_rand_below(&rng, 2000000000000ULL);
    uint32_t shard = round < 10 ? (uint32_t)round : (uint32_t)rn_test_rand(&rng);
    uint64_t offset = round % 3 == 0 ? rn_test_rand(&rng) : rn_test_rand_below(&rng, 1000000);
    if (round == 1) offset = UINT64_MAX;
    char s[RN__KSEQ_BUFLEN];
    size_t len = rn__kseq_encode(created_ms, shard, offset, s);
    assert_int_equal(len, strlen(s));
    assert_int_equal(len, 56); /* the length of real Kinesis sequence numbers */
    unsigned char bits[200];
    int bl = dec_to_bits(s, bits, 200);
    /* What the KCL checks: 186 bits, version 2 at bit 184, the shard at bits 4..35. */
    assert_int_equal(bl, 186);
    assert_int_equal(bits_get(bits, 184, 2), 2);
    assert_int_equal(bits_get(bits, 0, 4), 2);
    assert_int_equal(bits_get(bits, 4, 32), shard);
    assert_true(bits_get(bits, 80, 64) == offset);
    assert_int_equal(bits_get(bits, 144, 4), shard & 0xf);
    assert_int_equal(bits_get(bits, 148, 36), (uint64_t)(created_ms / 1000));
    rn__kseq_t q;
    assert_int_equal(rn__kseq_decode(s, len, &q), 0);
    assert_int_equal(q.shard, shard);
    assert_true(q.offset == offset);
    assert_int_equal(q.created_s, created_ms / 1000);
  }
}

static void test_seq_order(void **state) {
  (void)state;
  /* Within a shard, numbers compare like offsets (as decimal strings of equal length). */
  char a[RN__KSEQ_BUFLEN], b[RN__KSEQ_BUFLEN];
  for (uint64_t off = 0; off < 5000; off += 7) {
    rn__kseq_encode(1700000000123, 3, off, a);
    rn__kseq_encode(1700000000123, 3, off + 1, b);
    assert_true(strcmp(a, b) < 0);
  }
  /* Deterministic: the same inputs give the same number. */
  rn__kseq_encode(1700000000123, 3, 42, a);
  rn__kseq_encode(1700000000999, 3, 42, b);
  assert_string_equal(a, b); /* milliseconds do not matter */
}

static void test_seq_real_kinesis(void **state) {
  (void)state;
  /* Sequence numbers from real Kinesis (the KCL's own tests use them): our
   * decoder reads the same shard the KCL does. */
  rn__kseq_t q;
  const char *s0 = "49587497311274533994574834252742144236107130636007899138";
  assert_int_equal(rn__kseq_decode(s0, strlen(s0), &q), 0);
  assert_int_equal(q.shard, 0);
  assert_int_equal(q.created_s, 1534814192);
  assert_true(q.offset == 5842092);
  const char *s2 = "49585389983312162443796657944872008114154899568972529698";
  assert_int_equal(rn__kseq_decode(s2, strlen(s2), &q), 0);
  assert_int_equal(q.shard, 2);
}

static void test_seq_rejects(void **state) {
  (void)state;
  rn__kseq_t q;
  const char *bad[] = {"", "0", "12", "abc", "-1", "049587497311274533994574834252742144236107130636007899138",
                       /* version nibble 3 */ "49587497311274533994574834252742144236107130636007899139",
                       "4958749731127453399457483425274214423610713063600789913x",
                       "9999999999999999999999999999999999999999999999999999999999999999"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(rn__kseq_decode(bad[i], strlen(bad[i]), &q), RN_EINVAL);
  /* A shard-nibble mismatch is not ours. */
  char s[RN__KSEQ_BUFLEN];
  rn__kseq_encode(1700000000000, 5, 9, s);
  s[55] = s[55] == '0' ? '1' : '0';
  int rc = rn__kseq_decode(s, strlen(s), &q);
  assert_true(rc == RN_EINVAL || q.shard != 5 || q.offset != 9);
}

/* ---- iterators ------------------------------------------------------------------------ */

static void test_iterator_round_trip(void **state) {
  (void)state;
  uint8_t key[RN__KITER_KEYLEN], other[RN__KITER_KEYLEN];
  for (int i = 0; i < RN__KITER_KEYLEN; i++) key[i] = (uint8_t)i, other[i] = (uint8_t)(i + 1);
  rn__kiter_t it = {.shard = 7, .offset = 123456789012ull, .created_ms = 1700000000123, .issued_ms = 1700000555000};
  snprintf(it.stream, sizeof(it.stream), "clicks.v2");
  char enc[RN__KITER_MAXLEN + 1];
  size_t n = rn__kiter_encode(key, &it, enc);
  assert_int_equal(n, strlen(enc));
  assert_true(n <= RN__KITER_MAXLEN);
  rn__kiter_t out;
  assert_int_equal(rn__kiter_decode(key, enc, n, &out), 0);
  assert_string_equal(out.stream, "clicks.v2");
  assert_int_equal(out.shard, 7);
  assert_true(out.offset == 123456789012ull);
  assert_int_equal(out.created_ms, 1700000000123);
  assert_int_equal(out.issued_ms, 1700000555000);
  /* Another broker's secret: refused. */
  assert_int_equal(rn__kiter_decode(other, enc, n, &out), RN_EINVAL);
  /* The longest stream name still fits Kinesis' 512-character limit. */
  memset(it.stream, 'x', 128);
  it.stream[128] = 0;
  n = rn__kiter_encode(key, &it, enc);
  assert_true(n <= RN__KITER_MAXLEN);
  assert_int_equal(rn__kiter_decode(key, enc, n, &out), 0);
  assert_int_equal(strlen(out.stream), 128);
}

static void test_iterator_tamper(void **state) {
  (void)state;
  uint8_t key[RN__KITER_KEYLEN] = {1, 2, 3};
  rn__kiter_t it = {.shard = 1, .offset = 10, .created_ms = 1, .issued_ms = 2};
  snprintf(it.stream, sizeof(it.stream), "s");
  char enc[RN__KITER_MAXLEN + 1];
  size_t n = rn__kiter_encode(key, &it, enc);
  rn__kiter_t out;
  /* Every single-character change of the text is refused. */
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < n; i++) {
    char saved = enc[i];
    for (size_t a = 0; a < sizeof(alphabet) - 1; a += 5) {
      if (alphabet[a] == saved) continue;
      enc[i] = alphabet[a];
      /* Canonical base64 only: any change alters the bytes, and the HMAC sees it. */
      assert_int_equal(rn__kiter_decode(key, enc, n, &out), RN_EINVAL);
      enc[i] = saved;
    }
  }
  assert_int_equal(rn__kiter_decode(key, enc, n - 4, &out), RN_EINVAL);
  assert_int_equal(rn__kiter_decode(key, "", 0, &out), RN_EINVAL);
  assert_int_equal(rn__kiter_decode(key, "AAAA", 4, &out), RN_EINVAL);
  assert_int_equal(rn__kiter_decode(key, "not base64!", 11, &out), RN_EINVAL);
  /* Changing the offset inside and re-encoding without the key fails. */
  uint8_t raw[300];
  size_t rl = 0;
  assert_int_equal(rn__b64_decode(enc, n, raw, &rl), 0);
  raw[6] ^= 1; /* offset's lowest byte */
  char forged[RN__KITER_MAXLEN + 1];
  rn__b64_encode(raw, rl, forged);
  assert_int_equal(rn__kiter_decode(key, forged, strlen(forged), &out), RN_EINVAL);
}

/* ---- timestamps --------------------------------------------------------------------------- */

static void expect_ts(const char *s, int64_t want) {
  int64_t ms = -1;
  rn_err_t rc = rn__timestamp_parse(s, strlen(s), &ms);
  if (rc != 0) fail_msg("'%s' did not parse", s);
  if (ms != want) fail_msg("'%s' parsed as %lld, want %lld", s, (long long)ms, (long long)want);
}

static void test_timestamps(void **state) {
  (void)state;
  expect_ts("1700000000", 1700000000000);
  expect_ts("1700000000.5", 1700000000500);
  expect_ts("1700000000.123", 1700000000123);
  expect_ts("1700000000.1234", 1700000000123);
  expect_ts("1700000000.1235", 1700000000124); /* nearest millisecond */
  expect_ts("1.7E9", 1700000000000);
  expect_ts("1.700000000123e9", 1700000000123);
  expect_ts("1.7e+09", 1700000000000);
  expect_ts("17000000001e-1", 1700000000100);
  expect_ts("0", 0);
  expect_ts("  1700000000  ", 1700000000000);
  expect_ts("2023-11-14T22:13:20Z", 1700000000000);
  expect_ts("2023-11-14T22:13:20.25Z", 1700000000250);
  expect_ts("2023-11-15T00:13:20+02:00", 1700000000000);
  expect_ts("2023-11-14T17:13:20-0500", 1700000000000);
  expect_ts("1970-01-01T00:00:00Z", 0);
  expect_ts("2000-02-29T00:00:00Z", 951782400000);
  const char *bad[] = {"", "abc", "-1", "1e", "1.2.3", "2023-11-14T22:13:20", "2023-13-01T00:00:00Z", "1e400",
                       "1700000000x", "."};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int64_t ms;
    if (rn__timestamp_parse(bad[i], strlen(bad[i]), &ms) == 0) fail_msg("'%s' parsed as %lld", bad[i], (long long)ms);
  }
}

static void test_timestamps_json(void **state) {
  (void)state;
  /* What the SDKs send: botocore whole seconds, the JS SDK decimals. */
  const struct {
    const char *json;
    int64_t ms;
  } cases[] = {{"[1700000000]", 1700000000000},
               {"[1700000000.123]", 1700000000123},
               {"[1.700000000123E9]", 1700000000123},
               {"[\"1700000000.5\"]", 1700000000500},
               {"[\"2023-11-14T22:13:20Z\"]", 1700000000000}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    json_t *a = json_loads(cases[i].json, 0, NULL);
    assert_non_null(a);
    int64_t ms = 0;
    assert_int_equal(rn__timestamp_from_json(json_array_get(a, 0), &ms), 0);
    assert_int_equal(ms, cases[i].ms);
    json_decref(a);
  }
  json_t *a = json_loads("[-5, true, null, \"x\"]", 0, NULL);
  for (size_t i = 0; i < 4; i++) {
    int64_t ms;
    assert_int_equal(rn__timestamp_from_json(json_array_get(a, i), &ms), RN_EINVAL);
  }
  json_decref(a);
}

/* ---- base64, hash keys, shard ids, JSON strings -------------------------------------------------- */

static void test_base64(void **state) {
  (void)state;
  const struct {
    const char *raw, *enc;
  } v[] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
           {"foobar", "Zm9vYmFy"}};
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    char enc[32];
    rn__b64_encode((const uint8_t *)v[i].raw, strlen(v[i].raw), enc);
    assert_string_equal(enc, v[i].enc);
    uint8_t dec[32];
    size_t dl = 99;
    assert_int_equal(rn__b64_decode(v[i].enc, strlen(v[i].enc), dec, &dl), 0);
    assert_int_equal(dl, strlen(v[i].raw));
    assert_memory_equal(dec, v[i].raw, dl);
  }
  uint8_t dec[64];
  size_t dl;
  assert_int_equal(rn__b64_decode("Zm8", 3, dec, &dl), 0); /* unpadded is fine */
  assert_int_equal(dl, 2);
  const char *bad[] = {"Z", "Zm9=v", "Zm=", "Zm9v!", "Zh==", "Zm9vYg=", "Zm 9v", "===="};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (rn__b64_decode(bad[i], strlen(bad[i]), dec, &dl) == 0) fail_msg("'%s' decoded", bad[i]);
  /* Binary round trip. */
  uint8_t raw[256];
  for (int i = 0; i < 256; i++) raw[i] = (uint8_t)i;
  char enc[400];
  uint8_t back[300];
  for (size_t n = 0; n <= 256; n += 17) {
    rn__b64_encode(raw, n, enc);
    assert_int_equal(rn__b64_decode(enc, strlen(enc), back, &dl), 0);
    assert_int_equal(dl, n);
    assert_memory_equal(back, raw, n);
  }
}

static void test_shard_ids(void **state) {
  (void)state;
  uint32_t x;
  assert_int_equal(rn__shard_id_parse("shardId-000000000003", 20, &x), 0);
  assert_int_equal(x, 3);
  assert_int_equal(rn__shard_id_parse("shardId-12", 10, &x), 0);
  assert_int_equal(x, 12);
  assert_int_equal(rn__shard_id_parse("7", 1, &x), 0);
  assert_int_equal(x, 7);
  assert_int_equal(rn__shard_id_parse("shardId-", 8, &x), RN_EINVAL);
  assert_int_equal(rn__shard_id_parse("shard-1", 7, &x), RN_EINVAL);
  assert_int_equal(rn__shard_id_parse("shardId-99999999999", 19, &x), RN_EINVAL);
}

static void test_json_strings(void **state) {
  (void)state;
  rn_buf_t b = {0};
  rn__buf_json_str(&b, "a\"b\\c\n\x01", 7);
  assert_string_equal(b.p, "\"a\\\"b\\\\c\\n\\u0001\"");
  b.len = 0;
  rn__buf_json_str(&b, "caf\xc3\xa9 \xff!", 8); /* valid UTF-8 kept, a stray byte replaced */
  assert_string_equal(b.p, "\"caf\xc3\xa9 \\ufffd!\"");
  b.len = 0;
  rn__buf_timestamp(&b, 1700000000123);
  assert_string_equal(b.p, "1700000000.123");
  b.len = 0;
  rn__buf_timestamp(&b, 1700000000005);
  assert_string_equal(b.p, "1700000000.005");
  rn_buf_free(&b);
}

/* The table encoder (12 bits per lookup, 6 bytes per step) against a
 * bit-at-a-time reference, for every length through the step boundaries,
 * and decoded back. */
static void ref_b64(const uint8_t *p, size_t n, char *out) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t bit = 0; bit < n * 8; bit += 6) {
    unsigned v = 0;
    for (size_t k = 0; k < 6; k++) {
      size_t b = bit + k;
      v = v << 1 | (b < n * 8 ? (p[b / 8] >> (7 - b % 8)) & 1u : 0u);
    }
    out[o++] = A[v];
  }
  while (o % 4) out[o++] = '=';
  out[o] = 0;
}

static void test_base64_table_encoder(void **state) {
  (void)state;
  uint8_t raw[300], back[310];
  char got[420], want[420];
  unsigned seed = 7;
  for (size_t n = 0; n <= 260; n++) {
    for (int round = 0; round < 4; round++) {
      for (size_t i = 0; i < n; i++) raw[i] = round == 0 ? 0xff : round == 1 ? 0 : (uint8_t)rand_r(&seed);
      ref_b64(raw, n, want);
      memset(got, '#', sizeof(got));
      size_t el = rn__b64_encode_raw(raw, n, got);
      assert_int_equal(el, rn__b64_encoded_len(n));
      assert_int_equal(got[el], '#'); /* nothing written past the length */
      got[el] = 0;
      assert_string_equal(got, want);
      char nul[420];
      rn__b64_encode(raw, n, nul);
      assert_string_equal(nul, want);
      size_t bl = 0;
      assert_int_equal(rn__b64_decode(got, el, back, &bl), 0);
      assert_int_equal(bl, n);
      assert_memory_equal(back, raw, n);
    }
  }
}

/* Stepping a sequence number by one offset equals encoding the next offset,
 * across decimal carries and the limb boundaries of the offset field. */
static void test_seq_next(void **state) {
  (void)state;
  static const uint64_t starts[] = {0, 1, 9, 99, 12345, 0xffffffffull, 0x100000000ull - 3, 1ull << 40,
                                    0x7fffffffffffffffull - 2, 0xffffffffffffffffull - 300};
  static const int64_t created[] = {0, 1700000000123, 253402300799999};
  static const uint32_t shards[] = {0, 1, 15, 16, 4095, 0xffffffffu};
  unsigned seed = 11;
  for (size_t c = 0; c < sizeof(created) / sizeof(created[0]); c++)
    for (size_t sh = 0; sh < sizeof(shards) / sizeof(shards[0]); sh++)
      for (size_t st = 0; st < sizeof(starts) / sizeof(starts[0]) + 20; st++) {
        uint64_t off = st < sizeof(starts) / sizeof(starts[0])
                           ? starts[st]
                           : ((uint64_t)rand_r(&seed) << 33 ^ (uint64_t)rand_r(&seed) << 2) & ~0xfffull;
        char a[RN__KSEQ_BUFLEN], b[RN__KSEQ_BUFLEN];
        size_t al = rn__kseq_encode(created[c], shards[sh], off, a);
        for (int k = 0; k < 300; k++) {
          rn__kseq_next(a, al);
          size_t bl = rn__kseq_encode(created[c], shards[sh], off + (uint64_t)k + 1, b);
          assert_int_equal(al, bl);
          assert_memory_equal(a, b, al);
        }
      }
}

/* The per-answer cache gives every (shard, offset) its own encoding, whatever
 * the order: interleaved shards, colliding slots (shard & 15), gaps, repeats. */
static void test_seq_cache(void **state) {
  (void)state;
  rn__kseq_cache_t c;
  memset(c.len, 0, sizeof(c.len));
  uint64_t next[40] = {0};
  unsigned seed = 3;
  for (int i = 0; i < 5000; i++) {
    uint32_t shard = (uint32_t)(rand_r(&seed) % 40);
    int r = rand_r(&seed) % 10;
    uint64_t off = r == 0 ? next[shard] + 5 : r == 1 && next[shard] ? next[shard] - 1 : next[shard];
    next[shard] = off + 1;
    const char *got;
    char want[RN__KSEQ_BUFLEN];
    size_t gl = rn__kseq_cached(&c, 1700000000123, shard, off, &got);
    size_t wl = rn__kseq_encode(1700000000123, shard, off, want);
    assert_int_equal(gl, wl);
    assert_memory_equal(got, want, wl);
  }
}

static void test_decimal_writers(void **state) {
  (void)state;
  static const uint64_t v[] = {0, 1, 9, 10, 99, 100, 101, 999, 1000, 65535, 1700000000, 9999999999999999999ull,
                               10000000000000000000ull, 0xffffffffffffffffull};
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    char got[24], want[24];
    size_t n = rn__u64_dec(v[i], got);
    got[n] = 0;
    snprintf(want, sizeof(want), "%llu", (unsigned long long)v[i]);
    assert_string_equal(got, want);
  }
  static const int64_t ms[] = {0, 1, 999, 1000, 1700000000123, 1700000000005, 253402300799999, -5};
  static const char *const want_ms[] = {"0.000", "0.001", "0.999", "1.000", "1700000000.123", "1700000000.005",
                                        "253402300799.999", "0.000"};
  for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
    char got[RN__TIMESTAMP_BUFLEN + 1];
    size_t n = rn__timestamp_fmt(ms[i], got);
    got[n] = 0;
    assert_string_equal(got, want_ms[i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seq_layout),       cmocka_unit_test(test_seq_order),
      cmocka_unit_test(test_seq_real_kinesis), cmocka_unit_test(test_seq_rejects),
      cmocka_unit_test(test_iterator_round_trip), cmocka_unit_test(test_iterator_tamper),
      cmocka_unit_test(test_timestamps),       cmocka_unit_test(test_timestamps_json),
      cmocka_unit_test(test_base64),
      cmocka_unit_test(test_shard_ids),        cmocka_unit_test(test_json_strings),
      cmocka_unit_test(test_base64_table_encoder), cmocka_unit_test(test_seq_next),
      cmocka_unit_test(test_decimal_writers), cmocka_unit_test(test_seq_cache),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
