/*
 * test_batch.c — the record batch codec (proto/batch.c) against the layout in
 * runnel/batch.h and docs/format.md.
 *
 * Round trips go through the builder and the iterator. Everything that must
 * be rejected is built by hand here, with this file's own little-endian and
 * varint writers, and then given correct XXH3 checksums, so that only the
 * structure under test is wrong and the decoder cannot pass by catching a
 * checksum instead. One test also builds a batch byte by byte from the spec
 * and requires the builder to produce exactly those bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lz4.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "runnel/batch.h"
#include "testutil.h"

/* ---- independent encoders used to build test input ------------------------ */

static void put_le(uint8_t *p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_le(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

typedef struct {
  uint8_t b[8192];
  size_t n;
} wbuf_t;

static void w_u8(wbuf_t *w, uint8_t v) {
  assert_true(w->n < sizeof w->b);
  w->b[w->n++] = v;
}
static void w_var(wbuf_t *w, uint64_t v) {
  while (v >= 0x80) {
    w_u8(w, (uint8_t)(v | 0x80));
    v >>= 7;
  }
  w_u8(w, (uint8_t)v);
}
static void w_raw(wbuf_t *w, const void *p, size_t n) {
  assert_true(w->n + n <= sizeof w->b);
  if (n) memcpy(w->b + w->n, p, n);
  w->n += n;
}
static void w_bytes(wbuf_t *w, const void *p, size_t n) {
  w_var(w, n);
  w_raw(w, p, n);
}
static void w_str(wbuf_t *w, const char *s) { w_bytes(w, s, strlen(s)); }
/* Frames a record body: varint length, body. */
static void w_framed(wbuf_t *w, const wbuf_t *body) {
  w_var(w, body->n);
  w_raw(w, body->b, body->n);
}

/* A well-formed record body with a string key, value and id, no headers. */
static void body_simple(wbuf_t *body, int64_t ts_delta, uint64_t index, const char *key,
                        const char *value) {
  body->n = 0;
  w_u8(body, 0);
  w_var(body, rn_zigzag_encode(ts_delta));
  w_var(body, index);
  w_str(body, key);
  w_str(body, value);
  w_str(body, "");
  w_var(body, 0);
}

typedef struct {
  uint32_t record_count;
  int64_t first_ts;
  int64_t max_ts;
  uint8_t attributes; /* codec and reserved bits */
  uint32_t records_length; /* 0: the section's length (or, for LZ4, its raw length) */
  uint64_t producer_id;
  uint16_t producer_epoch;
  int32_t base_sequence;
} spec_t;

static void fix_checksums(uint8_t *batch) {
  uint32_t len = (uint32_t)get_le(batch, 4);
  put_le(batch + 40, XXH3_64bits(batch + 48, len - 48), 8);
  put_le(batch + 32, XXH3_64bits(batch, 32), 8);
}

/* Writes header + `stored` section bytes into out (caller frees) with valid
 * checksums; the section is stored as given (already compressed for LZ4). */
static uint8_t *make_batch(const spec_t *s, const uint8_t *stored, size_t stored_len,
                           uint32_t records_length, size_t *len_out) {
  size_t len = RN_BATCH_HEADER_SIZE + stored_len;
  uint8_t *b = calloc(1, len);
  assert_non_null(b);
  put_le(b + 0, len, 4);
  b[4] = RN_BATCH_MAGIC;
  b[5] = s->attributes;
  put_le(b + 6, RN_BATCH_HEADER_SIZE, 2);
  put_le(b + 48, s->record_count, 4);
  put_le(b + 52, records_length, 4);
  put_le(b + 56, (uint64_t)s->first_ts, 8);
  put_le(b + 64, (uint64_t)s->max_ts, 8);
  put_le(b + 72, s->producer_id, 8);
  put_le(b + 80, s->producer_epoch, 2);
  put_le(b + 84, (uint32_t)s->base_sequence, 4);
  memcpy(b + RN_BATCH_HEADER_SIZE, stored, stored_len);
  fix_checksums(b);
  *len_out = len;
  return b;
}

/* Batch of an uncompressed records section. */
static uint8_t *make_none(const spec_t *s, const wbuf_t *section, size_t *len) {
  return make_batch(s, section->b, section->n, s->records_length ? s->records_length
                                                                 : (uint32_t)section->n,
                    len);
}

/* Batch whose section is LZ4-compressed (whatever the ratio). */
static uint8_t *make_lz4(const spec_t *s, const wbuf_t *section, size_t *len) {
  char dst[LZ4_COMPRESSBOUND(8192)];
  int c = LZ4_compress_default((const char *)section->b, dst, (int)section->n, (int)sizeof dst);
  assert_true(c > 0);
  spec_t s2 = *s;
  s2.attributes = (uint8_t)(s->attributes | RN_CODEC_LZ4);
  return make_batch(&s2, (const uint8_t *)dst, (size_t)c,
                    s->records_length ? s->records_length : (uint32_t)section->n, len);
}

static spec_t spec_default(uint32_t count) {
  spec_t s = {.record_count = count, .first_ts = 1000, .max_ts = 1000, .base_sequence = -1};
  return s;
}

/* Iterates a batch to the end; returns the status that ended iteration and
 * the number of records returned before it. */
static rn_err_t drain(const uint8_t *batch, size_t len, uint32_t *returned) {
  rn_batch_iter_t it;
  rn_err_t rc = rn_batch_iter_init(&it, batch, len);
  *returned = 0;
  if (rc != 0) {
    rn_batch_iter_free(&it);
    return rc;
  }
  rn_record_t rec;
  while ((rc = rn_batch_iter_next(&it, &rec)) == 0) (*returned)++;
  /* Errors are sticky; the end stays the end. */
  assert_int_equal(rn_batch_iter_next(&it, &rec), rc);
  rn_batch_iter_free(&it);
  return rc;
}

/* Copy of the builder's result, so the builder can be reused or freed. */
static uint8_t *finish_copy(rn_batch_builder_t *b, rn_codec_t codec,
                            const rn_batch_producer_t *prod, size_t *len) {
  const uint8_t *out;
  assert_int_equal(rn_batch_builder_finish(b, codec, prod, &out, len), 0);
  uint8_t *copy = malloc(*len);
  assert_non_null(copy);
  memcpy(copy, out, *len);
  return copy;
}

/* ---- varints -------------------------------------------------------------- */

static void check_varint(uint64_t v, const uint8_t *expect, size_t n) {
  uint8_t out[16];
  memset(out, 0xEE, sizeof out);
  assert_int_equal(rn_varint_encode(v, out), n);
  assert_memory_equal(out, expect, n);
  assert_int_equal(out[n], 0xEE); /* writes nothing past its length */
  uint64_t got = 0;
  assert_int_equal(rn_varint_decode(out, n, &got), n);
  assert_true(got == v);
  assert_int_equal(rn_varint_decode(out, sizeof out, &got), n); /* extra input ignored */
  for (size_t k = 0; k < n; k++) assert_int_equal(rn_varint_decode(out, k, &got), 0);
}

static void test_varint_edges(void **state) {
  (void)state;
  check_varint(0, (const uint8_t[]){0x00}, 1);
  check_varint(1, (const uint8_t[]){0x01}, 1);
  check_varint(127, (const uint8_t[]){0x7f}, 1);
  check_varint(128, (const uint8_t[]){0x80, 0x01}, 2);
  check_varint(300, (const uint8_t[]){0xac, 0x02}, 2);
  check_varint(16383, (const uint8_t[]){0xff, 0x7f}, 2);
  check_varint(16384, (const uint8_t[]){0x80, 0x80, 0x01}, 3);
  check_varint(UINT64_MAX,
               (const uint8_t[]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 10);
  check_varint((uint64_t)1 << 63,
               (const uint8_t[]){0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 10);

  uint64_t v = 12345;
  /* Empty and truncated input. */
  assert_int_equal(rn_varint_decode(NULL, 0, &v), 0);
  assert_int_equal(rn_varint_decode((const uint8_t[]){0x80}, 1, &v), 0);
  assert_int_equal(rn_varint_decode((const uint8_t[]){0xff, 0xff, 0xff}, 3, &v), 0);
  /* 10 bytes that all continue: longer than 10 bytes, whatever follows. */
  const uint8_t over[11] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
  assert_int_equal(rn_varint_decode(over, 11, &v), (size_t)-1);
  assert_int_equal(rn_varint_decode(over, 10, &v), (size_t)-1);
  /* 10 bytes whose last one carries bits beyond the 64th. */
  const uint8_t big[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
  assert_int_equal(rn_varint_decode(big, 10, &v), (size_t)-1);
  const uint8_t big2[10] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f};
  assert_int_equal(rn_varint_decode(big2, 10, &v), (size_t)-1);
  assert_int_equal(v, 12345); /* untouched on failure */
  /* Non-minimal but in range: accepted by the generic decoder. */
  assert_int_equal(rn_varint_decode((const uint8_t[]){0x80, 0x00}, 2, &v), 2);
  assert_int_equal(v, 0);
  const uint8_t pad10[10] = {0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
  assert_int_equal(rn_varint_decode(pad10, 10, &v), 10);
  assert_int_equal(v, 1);
}

static void test_varint_random_roundtrip(void **state) {
  (void)state;
  uint64_t seed = 0x9E3779B97F4A7C15ULL;
  for (int i = 0; i < 20000; i++) {
    uint64_t x = rn_test_rand(&seed) >> rn_test_rand_below(&seed, 64);
    uint8_t out[10];
    size_t n = rn_varint_encode(x, out);
    size_t bits = 0;
    for (uint64_t t = x; t; t >>= 1) bits++;
    assert_int_equal(n, bits == 0 ? 1 : (bits + 6) / 7);
    uint64_t got;
    assert_int_equal(rn_varint_decode(out, n, &got), n);
    assert_true(got == x);
  }
}

static void test_zigzag(void **state) {
  (void)state;
  assert_true(rn_zigzag_encode(0) == 0);
  assert_true(rn_zigzag_encode(-1) == 1);
  assert_true(rn_zigzag_encode(1) == 2);
  assert_true(rn_zigzag_encode(-2) == 3);
  assert_true(rn_zigzag_encode(INT64_MAX) == UINT64_MAX - 1);
  assert_true(rn_zigzag_encode(INT64_MIN) == UINT64_MAX);
  const int64_t vals[] = {0, 1, -1, 63, -64, 64, -65, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN,
                          INT64_MAX - 1, INT64_MIN + 1};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
    assert_true(rn_zigzag_decode(rn_zigzag_encode(vals[i])) == vals[i]);
}

/* ---- round trips ---------------------------------------------------------- */

typedef struct {
  rn_record_t rec;
  rn_record_header_t hdrs[3];
} test_record_t;

static uint8_t binary[256];

/* A varied set of records: empty and binary values, ids, headers, negative and
 * large timestamp deltas. */
static size_t sample_records(test_record_t *t, int64_t first_ts) {
  for (int i = 0; i < 256; i++) binary[i] = (uint8_t)i;
  memset(t, 0, sizeof(test_record_t) * 6);
  size_t n = 0;
  /* 0: plain key/value, the first timestamp */
  t[n].rec = (rn_record_t){.timestamp = first_ts, .key = (const uint8_t *)"user-1", .key_len = 6,
                           .value = (const uint8_t *)"hello", .value_len = 5};
  n++;
  /* 1: negative delta, empty value, an id, one header */
  t[n].hdrs[0] = (rn_record_header_t){(const uint8_t *)"trace", 5, (const uint8_t *)"abc", 3};
  t[n].rec = (rn_record_t){.timestamp = first_ts - 5000, .key = (const uint8_t *)"k", .key_len = 1,
                           .value = NULL, .value_len = 0, .id = (const uint8_t *)"id-0001",
                           .id_len = 7, .header_count = 1, .headers = t[n].hdrs};
  n++;
  /* 2: binary key, value and id (all byte values), three headers incl. empty */
  t[n].hdrs[0] = (rn_record_header_t){binary, 256, binary + 128, 128};
  t[n].hdrs[1] = (rn_record_header_t){(const uint8_t *)"", 0, (const uint8_t *)"", 0};
  t[n].hdrs[2] = (rn_record_header_t){(const uint8_t *)"ct", 2, (const uint8_t *)"\0\x01\xff", 3};
  t[n].rec = (rn_record_t){.timestamp = first_ts + 1, .key = binary, .key_len = 256,
                           .value = binary, .value_len = 256, .id = binary + 250, .id_len = 6,
                           .header_count = 3, .headers = t[n].hdrs};
  n++;
  /* 3: no key at all, large positive delta */
  t[n].rec = (rn_record_t){.timestamp = first_ts + ((int64_t)1 << 40),
                           .value = (const uint8_t *)"v", .value_len = 1};
  n++;
  /* 4: large negative delta */
  t[n].rec = (rn_record_t){.timestamp = first_ts - ((int64_t)1 << 45),
                           .value = (const uint8_t *)"w", .value_len = 1};
  n++;
  /* 5: completely empty record */
  t[n].rec = (rn_record_t){.timestamp = first_ts};
  n++;
  return n;
}

static void assert_record_equal(const rn_record_t *got, const rn_record_t *want,
                                uint64_t offset) {
  assert_true(got->timestamp == want->timestamp);
  assert_true(got->offset == offset);
  assert_int_equal(got->key_len, want->key_len);
  assert_int_equal(got->value_len, want->value_len);
  assert_int_equal(got->id_len, want->id_len);
  if (want->key_len) assert_memory_equal(got->key, want->key, want->key_len);
  if (want->value_len) assert_memory_equal(got->value, want->value, want->value_len);
  if (want->id_len) assert_memory_equal(got->id, want->id, want->id_len);
  assert_non_null(got->key); /* decoded pointers are never NULL, even when empty */
  assert_non_null(got->value);
  assert_non_null(got->id);
  assert_int_equal(got->header_count, want->header_count);
  assert_null(got->headers);
  size_t pos = 0;
  rn_record_header_t h;
  for (size_t i = 0; i < want->header_count; i++) {
    assert_int_equal(rn_record_header_next(got, &pos, &h), 0);
    assert_int_equal(h.key_len, want->headers[i].key_len);
    assert_int_equal(h.value_len, want->headers[i].value_len);
    if (h.key_len) assert_memory_equal(h.key, want->headers[i].key, h.key_len);
    if (h.value_len) assert_memory_equal(h.value, want->headers[i].value, h.value_len);
  }
  assert_int_equal(rn_record_header_next(got, &pos, &h), RN_EOFFSET);
  assert_int_equal(pos, got->headers_raw_len);
}

/* Iterates batch and compares against the n records t, from base_offset. */
static void assert_batch_holds(const uint8_t *batch, size_t len, const test_record_t *t, size_t n,
                               uint64_t base_offset) {
  rn_batch_iter_t it;
  assert_int_equal(rn_batch_iter_init(&it, batch, len), 0);
  rn_record_t rec;
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(rn_batch_iter_next(&it, &rec), 0);
    assert_record_equal(&rec, &t[i].rec, base_offset + i);
  }
  assert_int_equal(rn_batch_iter_next(&it, &rec), RN_EOFFSET);
  assert_int_equal(rn_batch_iter_next(&it, &rec), RN_EOFFSET);
  assert_int_equal(it.index, n);
  rn_batch_iter_free(&it);
}

static void assert_header_equal(const rn_batch_header_t *a, const rn_batch_header_t *b) {
  assert_int_equal(a->batch_length, b->batch_length);
  assert_int_equal(a->magic, b->magic);
  assert_int_equal(a->codec, b->codec);
  assert_int_equal(a->header_length, b->header_length);
  assert_true(a->base_offset == b->base_offset);
  assert_int_equal(a->leader_epoch, b->leader_epoch);
  assert_true(a->arrival_time_ms == b->arrival_time_ms);
  assert_true(a->header_checksum == b->header_checksum);
  assert_true(a->payload_checksum == b->payload_checksum);
  assert_int_equal(a->record_count, b->record_count);
  assert_int_equal(a->records_length, b->records_length);
  assert_true(a->first_timestamp == b->first_timestamp);
  assert_true(a->max_timestamp == b->max_timestamp);
  assert_true(a->producer_id == b->producer_id);
  assert_int_equal(a->producer_epoch, b->producer_epoch);
  assert_int_equal(a->base_sequence, b->base_sequence);
}

static void test_roundtrip_all_fields(void **state) {
  (void)state;
  const int64_t firsts[] = {1700000000000LL, 0, -1, INT64_MAX / 2};
  for (size_t f = 0; f < sizeof firsts / sizeof firsts[0]; f++) {
    test_record_t t[6];
    size_t n = sample_records(t, firsts[f]);
    rn_batch_builder_t b;
    rn_batch_builder_init(&b);
    for (size_t i = 0; i < n; i++) assert_int_equal(rn_batch_builder_add(&b, &t[i].rec), 0);
    assert_int_equal(rn_batch_builder_count(&b), n);
    size_t raw_size = rn_batch_builder_size(&b);
    rn_batch_producer_t prod = {.producer_id = 0x0102030405060708ULL, .producer_epoch = 0xBEEF,
                                .base_sequence = 0x7ffffff0};
    size_t len;
    uint8_t *batch = finish_copy(&b, RN_CODEC_NONE, &prod, &len);

    rn_batch_header_t h;
    size_t need = 0;
    assert_int_equal(rn_batch_verify(batch, len, &h, &need), 0);
    assert_int_equal(need, len);
    assert_int_equal(h.batch_length, len);
    assert_int_equal(h.magic, RN_BATCH_MAGIC);
    assert_int_equal(h.codec, RN_CODEC_NONE);
    assert_int_equal(h.header_length, RN_BATCH_HEADER_SIZE);
    assert_true(h.base_offset == 0);
    assert_int_equal(h.leader_epoch, 0);
    assert_true(h.arrival_time_ms == 0);
    assert_int_equal(h.record_count, n);
    assert_int_equal(h.records_length, raw_size);
    assert_int_equal(len, RN_BATCH_HEADER_SIZE + raw_size);
    assert_true(h.first_timestamp == firsts[f]);
    assert_true(h.max_timestamp == firsts[f] + ((int64_t)1 << 40));
    assert_true(h.producer_id == prod.producer_id);
    assert_int_equal(h.producer_epoch, prod.producer_epoch);
    assert_int_equal(h.base_sequence, prod.base_sequence);
    assert_true(h.header_checksum == XXH3_64bits(batch, 32));
    assert_true(h.payload_checksum == XXH3_64bits(batch + 48, len - 48));
    assert_true(rn_batch_last_offset(&h) == n - 1);

    rn_batch_header_t h2;
    assert_int_equal(rn_batch_header_decode(batch, len, &h2), 0);
    assert_header_equal(&h, &h2);
    assert_batch_holds(batch, len, t, n, 0);
    free(batch);
    rn_batch_builder_free(&b);
  }
}

/* The extremes of int64 timestamps still round trip while each delta fits. */
static void test_roundtrip_extreme_timestamps(void **state) {
  (void)state;
  const int64_t ts[][3] = {
      {INT64_MIN + 10, -1, INT64_MIN + 10},
      {0, INT64_MAX, INT64_MIN + 1},
      {INT64_MAX, 0, INT64_MAX},
      {-1, INT64_MAX - 1, INT64_MIN},
  };
  for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
    rn_batch_builder_t b;
    rn_batch_builder_init(&b);
    test_record_t t[3];
    memset(t, 0, sizeof t);
    int64_t max = INT64_MIN;
    for (size_t i = 0; i < 3; i++) {
      t[i].rec.timestamp = ts[k][i];
      if (ts[k][i] > max) max = ts[k][i];
      assert_int_equal(rn_batch_builder_add(&b, &t[i].rec), 0);
    }
    size_t len;
    const uint8_t *out;
    assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &out, &len), 0);
    rn_batch_header_t h;
    assert_int_equal(rn_batch_verify(out, len, &h, NULL), 0);
    assert_true(h.first_timestamp == ts[k][0]);
    assert_true(h.max_timestamp == max);
    assert_batch_holds(out, len, t, 3, 0);
    rn_batch_builder_free(&b);
  }
}

static void test_timestamp_delta_overflow_rejected(void **state) {
  (void)state;
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  rn_record_t r = {.timestamp = INT64_MIN};
  assert_int_equal(rn_batch_builder_add(&b, &r), 0);
  size_t size = rn_batch_builder_size(&b);
  r.timestamp = 0; /* delta 2^63: does not fit */
  assert_int_equal(rn_batch_builder_add(&b, &r), RN_EINVAL);
  r.timestamp = INT64_MAX;
  assert_int_equal(rn_batch_builder_add(&b, &r), RN_EINVAL);
  /* The failed adds changed nothing. */
  assert_int_equal(rn_batch_builder_count(&b), 1);
  assert_int_equal(rn_batch_builder_size(&b), size);
  r.timestamp = -1; /* delta 2^63 - 1: fits */
  assert_int_equal(rn_batch_builder_add(&b, &r), 0);
  rn_batch_builder_free(&b);
}

static void test_null_producer(void **state) {
  (void)state;
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  rn_record_t r = {.timestamp = 5, .value = (const uint8_t *)"x", .value_len = 1};
  assert_int_equal(rn_batch_builder_add(&b, &r), 0);
  const uint8_t *out;
  size_t len;
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &out, &len), 0);
  rn_batch_header_t h;
  assert_int_equal(rn_batch_verify(out, len, &h, NULL), 0);
  assert_true(h.producer_id == 0);
  assert_int_equal(h.producer_epoch, 0);
  assert_int_equal(h.base_sequence, -1);
  rn_batch_builder_free(&b);
}

/* The builder's bytes equal a batch written by hand from the spec. */
static void test_byte_layout_matches_spec(void **state) {
  (void)state;
  rn_record_header_t hd = {(const uint8_t *)"h", 1, (const uint8_t *)"v", 1};
  rn_record_t r0 = {.timestamp = 1000, .key = (const uint8_t *)"k", .key_len = 1,
                    .value = (const uint8_t *)"value", .value_len = 5};
  rn_record_t r1 = {.timestamp = 990, .value = (const uint8_t *)"v2", .value_len = 2,
                    .id = (const uint8_t *)"id", .id_len = 2, .header_count = 1, .headers = &hd};
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  assert_int_equal(rn_batch_builder_add(&b, &r0), 0);
  assert_int_equal(rn_batch_builder_add(&b, &r1), 0);
  rn_batch_producer_t prod = {.producer_id = 77, .producer_epoch = 3, .base_sequence = 41};
  const uint8_t *out;
  size_t len;
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, &prod, &out, &len), 0);

  wbuf_t sec = {.n = 0}, body = {.n = 0};
  body_simple(&body, 0, 0, "k", "value");
  w_framed(&sec, &body);
  body.n = 0;
  w_u8(&body, 0);
  w_var(&body, rn_zigzag_encode(-10));
  w_var(&body, 1);
  w_str(&body, "");
  w_str(&body, "v2");
  w_str(&body, "id");
  w_var(&body, 1);
  w_str(&body, "h");
  w_str(&body, "v");
  w_framed(&sec, &body);
  /* Spot-check the record bytes themselves. */
  const uint8_t rec0[] = {13, 0, 0, 0, 1, 'k', 5, 'v', 'a', 'l', 'u', 'e', 0, 0};
  assert_memory_equal(sec.b, rec0, sizeof rec0);

  spec_t s = {.record_count = 2, .first_ts = 1000, .max_ts = 1000, .producer_id = 77,
              .producer_epoch = 3, .base_sequence = 41};
  size_t hlen;
  uint8_t *hand = make_none(&s, &sec, &hlen);
  assert_int_equal(len, hlen);
  assert_memory_equal(out, hand, len);
  free(hand);
  rn_batch_builder_free(&b);
}

/* ---- codecs --------------------------------------------------------------- */

static void test_lz4_compressible(void **state) {
  (void)state;
  static test_record_t t[200];
  static char vals[200][100];
  memset(t, 0, sizeof t);
  for (size_t i = 0; i < 200; i++) {
    memset(vals[i], 'a' + (int)(i % 3), sizeof vals[i]);
    t[i].rec = (rn_record_t){.timestamp = 1000 + (int64_t)i, .key = (const uint8_t *)"sensor-1",
                             .key_len = 8, .value = (const uint8_t *)vals[i], .value_len = 100};
  }
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  for (size_t i = 0; i < 200; i++) assert_int_equal(rn_batch_builder_add(&b, &t[i].rec), 0);
  size_t raw = rn_batch_builder_size(&b);
  size_t nlen, zlen;
  uint8_t *none = finish_copy(&b, RN_CODEC_NONE, NULL, &nlen);
  uint8_t *lz4 = finish_copy(&b, RN_CODEC_LZ4, NULL, &zlen);
  assert_int_equal(nlen, RN_BATCH_HEADER_SIZE + raw);
  assert_true(zlen < nlen / 4);

  rn_batch_header_t hn, hz;
  assert_int_equal(rn_batch_verify(lz4, zlen, &hz, NULL), 0);
  assert_int_equal(rn_batch_verify(none, nlen, &hn, NULL), 0);
  assert_int_equal(hz.codec, RN_CODEC_LZ4);
  assert_int_equal(hz.records_length, raw); /* the uncompressed size */
  assert_int_equal(hz.batch_length, zlen);
  assert_int_equal(hz.record_count, 200);
  assert_true(hz.first_timestamp == hn.first_timestamp);
  assert_true(hz.max_timestamp == 1199);
  assert_int_equal(lz4[5], RN_CODEC_LZ4);
  /* The stored section is one LZ4 block of the raw records. */
  static uint8_t dec[65536];
  int d = LZ4_decompress_safe((const char *)lz4 + 88, (char *)dec, (int)(zlen - 88), sizeof dec);
  assert_int_equal(d, raw);
  assert_memory_equal(dec, none + 88, raw);
  assert_batch_holds(lz4, zlen, t, 200, 0);
  assert_batch_holds(none, nlen, t, 200, 0);
  free(none);
  free(lz4);
  rn_batch_builder_free(&b);
}

static void test_lz4_falls_back_when_incompressible(void **state) {
  (void)state;
  static uint8_t noise[20][200];
  static test_record_t t[20];
  uint64_t seed = 42;
  memset(t, 0, sizeof t);
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  for (size_t i = 0; i < 20; i++) {
    for (size_t j = 0; j < 200; j++) noise[i][j] = (uint8_t)rn_test_rand(&seed);
    t[i].rec = (rn_record_t){.timestamp = (int64_t)i, .value = noise[i], .value_len = 200};
    assert_int_equal(rn_batch_builder_add(&b, &t[i].rec), 0);
  }
  size_t zlen, nlen;
  uint8_t *z = finish_copy(&b, RN_CODEC_LZ4, NULL, &zlen);
  uint8_t *n = finish_copy(&b, RN_CODEC_NONE, NULL, &nlen);
  rn_batch_header_t h;
  assert_int_equal(rn_batch_verify(z, zlen, &h, NULL), 0);
  assert_int_equal(h.codec, RN_CODEC_NONE);
  assert_int_equal(zlen, nlen);
  assert_memory_equal(z, n, nlen); /* exactly the uncompressed batch */
  assert_batch_holds(z, zlen, t, 20, 0);
  free(z);
  free(n);

  /* A single tiny record cannot shrink either. */
  rn_batch_builder_reset(&b);
  rn_record_t r = {.timestamp = 1, .value = (const uint8_t *)"ab", .value_len = 2};
  assert_int_equal(rn_batch_builder_add(&b, &r), 0);
  const uint8_t *out;
  size_t len;
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_LZ4, NULL, &out, &len), 0);
  assert_int_equal(out[5], RN_CODEC_NONE);
  assert_int_equal(rn_batch_verify(out, len, NULL, NULL), 0);
  rn_batch_builder_free(&b);
}

/* ---- builder life cycle and argument errors ------------------------------- */

static void test_builder_reuse(void **state) {
  (void)state;
  test_record_t t[6];
  size_t n = sample_records(t, 123456);
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  assert_int_equal(rn_batch_builder_size(&b), 0);
  assert_int_equal(rn_batch_builder_count(&b), 0);
  const uint8_t *out;
  size_t len;
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &out, &len), RN_EINVAL);

  for (size_t i = 0; i < n; i++) assert_int_equal(rn_batch_builder_add(&b, &t[i].rec), 0);
  size_t len1;
  uint8_t *first = finish_copy(&b, RN_CODEC_NONE, NULL, &len1);
  /* Finishing twice gives the same bytes. */
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &out, &len), 0);
  assert_int_equal(len, len1);
  assert_memory_equal(out, first, len);

  /* After reset the builder is empty and produces the same batch again. */
  rn_batch_builder_reset(&b);
  assert_int_equal(rn_batch_builder_size(&b), 0);
  assert_int_equal(rn_batch_builder_count(&b), 0);
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &out, &len), RN_EINVAL);
  for (size_t i = 0; i < n; i++) assert_int_equal(rn_batch_builder_add(&b, &t[i].rec), 0);
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &out, &len), 0);
  assert_int_equal(len, len1);
  assert_memory_equal(out, first, len);

  /* Adding after finish extends the same batch. */
  rn_record_t extra = {.timestamp = 123456, .value = (const uint8_t *)"more", .value_len = 4};
  assert_int_equal(rn_batch_builder_add(&b, &extra), 0);
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &out, &len), 0);
  rn_batch_header_t h;
  assert_int_equal(rn_batch_verify(out, len, &h, NULL), 0);
  assert_int_equal(h.record_count, n + 1);
  uint32_t got;
  assert_int_equal(drain(out, len, &got), RN_EOFFSET);
  assert_int_equal(got, n + 1);
  free(first);

  rn_batch_builder_free(&b);
  rn_batch_builder_free(&b); /* twice is fine */
  rn_batch_builder_t zero;
  memset(&zero, 0, sizeof zero);
  rn_batch_builder_free(&zero);
  rn_batch_builder_free(NULL);
}

/* Many records grow the buffer by doubling; all come back. */
static void test_builder_many_records(void **state) {
  (void)state;
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  char key[32];
  for (uint32_t i = 0; i < 20000; i++) {
    int kl = snprintf(key, sizeof key, "key-%u", i);
    rn_record_t r = {.timestamp = 1000 + i, .key = (const uint8_t *)key, .key_len = (size_t)kl,
                     .value = (const uint8_t *)key, .value_len = (size_t)kl};
    assert_int_equal(rn_batch_builder_add(&b, &r), 0);
  }
  for (int c = 0; c < 2; c++) {
    const uint8_t *out;
    size_t len;
    assert_int_equal(rn_batch_builder_finish(&b, c ? RN_CODEC_LZ4 : RN_CODEC_NONE, NULL, &out,
                                             &len),
                     0);
    rn_batch_iter_t it;
    assert_int_equal(rn_batch_iter_init(&it, out, len), 0);
    assert_int_equal(it.hdr.codec, c ? RN_CODEC_LZ4 : RN_CODEC_NONE);
    rn_record_t rec;
    for (uint32_t i = 0; i < 20000; i++) {
      assert_int_equal(rn_batch_iter_next(&it, &rec), 0);
      int kl = snprintf(key, sizeof key, "key-%u", i);
      assert_int_equal(rec.key_len, kl);
      assert_memory_equal(rec.key, key, (size_t)kl);
      assert_true(rec.offset == i);
      assert_true(rec.timestamp == 1000 + (int64_t)i);
    }
    assert_int_equal(rn_batch_iter_next(&it, &rec), RN_EOFFSET);
    rn_batch_iter_free(&it);
  }
  rn_batch_builder_free(&b);
}

static void test_builder_invalid_arguments(void **state) {
  (void)state;
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  const uint8_t x[4] = {1, 2, 3, 4};
  rn_record_t r = {.timestamp = 1, .key = NULL, .key_len = 3};
  assert_int_equal(rn_batch_builder_add(&b, &r), RN_EINVAL);
  r = (rn_record_t){.timestamp = 1, .value = NULL, .value_len = 1};
  assert_int_equal(rn_batch_builder_add(&b, &r), RN_EINVAL);
  r = (rn_record_t){.timestamp = 1, .id = NULL, .id_len = 2};
  assert_int_equal(rn_batch_builder_add(&b, &r), RN_EINVAL);
  r = (rn_record_t){.timestamp = 1, .header_count = 1, .headers = NULL};
  assert_int_equal(rn_batch_builder_add(&b, &r), RN_EINVAL);
  rn_record_header_t bad = {NULL, 1, x, 1};
  r = (rn_record_t){.timestamp = 1, .header_count = 1, .headers = &bad};
  assert_int_equal(rn_batch_builder_add(&b, &r), RN_EINVAL);
  bad = (rn_record_header_t){x, 1, NULL, 4};
  assert_int_equal(rn_batch_builder_add(&b, &r), RN_EINVAL);
  assert_int_equal(rn_batch_builder_add(&b, NULL), RN_EINVAL);
  assert_int_equal(rn_batch_builder_count(&b), 0);
  assert_int_equal(rn_batch_builder_size(&b), 0);
  /* Lengths no batch can hold are refused before anything is read. */
  r = (rn_record_t){.timestamp = 1, .value = x, .value_len = RN_BATCH_MAX_SIZE};
  assert_int_equal(rn_batch_builder_add(&b, &r), RN_ETOOLARGE);
  r = (rn_record_t){.timestamp = 1, .key = x, .key_len = SIZE_MAX};
  assert_int_equal(rn_batch_builder_add(&b, &r), RN_ETOOLARGE);
  rn_record_header_t huge = {x, SIZE_MAX / 2, x, 1};
  r = (rn_record_t){.timestamp = 1, .header_count = 1, .headers = &huge};
  assert_int_equal(rn_batch_builder_add(&b, &r), RN_ETOOLARGE);
  r = (rn_record_t){.timestamp = 1, .header_count = SIZE_MAX, .headers = &huge};
  assert_int_equal(rn_batch_builder_add(&b, &r), RN_ETOOLARGE);
  /* Nothing was added. */
  const uint8_t *out;
  size_t len;
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &out, &len), RN_EINVAL);
  r = (rn_record_t){.timestamp = 1, .value = x, .value_len = 4};
  assert_int_equal(rn_batch_builder_add(&b, &r), 0);
  assert_int_equal(rn_batch_builder_finish(&b, (rn_codec_t)2, NULL, &out, &len), RN_EINVAL);
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, NULL, &len), RN_EINVAL);
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &out, NULL), RN_EINVAL);
  rn_batch_builder_free(&b);
}

/* The size ceiling: a batch of exactly RN_BATCH_MAX_SIZE is built, one byte
 * more is refused, and both codecs handle the largest batch. */
static void test_builder_size_limit(void **state) {
  (void)state;
  /* One record with only a value of v bytes (v < 2^28, so a 4-byte varint):
   * body = attributes + ts + offset + key_len + 4 + v + id_len + header_count
   * = v + 10, framed by a 4-byte length: batch = 88 + 14 + v. */
  size_t v = RN_BATCH_MAX_SIZE - RN_BATCH_HEADER_SIZE - 14;
  uint8_t *data = calloc(1, v + 1);
  assert_non_null(data);
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  rn_record_t r = {.timestamp = 7, .value = data, .value_len = v + 1};
  assert_int_equal(rn_batch_builder_add(&b, &r), RN_ETOOLARGE);
  r.value_len = v;
  assert_int_equal(rn_batch_builder_add(&b, &r), 0);
  assert_int_equal(rn_batch_builder_size(&b), RN_BATCH_MAX_SIZE - RN_BATCH_HEADER_SIZE);
  rn_record_t empty = {.timestamp = 7};
  assert_int_equal(rn_batch_builder_add(&b, &empty), RN_ETOOLARGE);
  free(data);

  const uint8_t *out;
  size_t len;
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &out, &len), 0);
  assert_int_equal(len, RN_BATCH_MAX_SIZE);
  uint32_t got;
  assert_int_equal(drain(out, len, &got), RN_EOFFSET);
  assert_int_equal(got, 1);
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_LZ4, NULL, &out, &len), 0);
  assert_int_equal(out[5], RN_CODEC_LZ4);
  assert_true(len < RN_BATCH_MAX_SIZE / 200);
  assert_int_equal(drain(out, len, &got), RN_EOFFSET);
  assert_int_equal(got, 1);
  rn_batch_builder_free(&b);
}

/* ---- stamping ------------------------------------------------------------- */

static void test_stamp(void **state) {
  (void)state;
  test_record_t t[6];
  size_t n = sample_records(t, 5000);
  for (int c = 0; c < 2; c++) {
    rn_batch_builder_t b;
    rn_batch_builder_init(&b);
    for (size_t i = 0; i < n; i++) assert_int_equal(rn_batch_builder_add(&b, &t[i].rec), 0);
    size_t len;
    uint8_t *batch = finish_copy(&b, c ? RN_CODEC_LZ4 : RN_CODEC_NONE, NULL, &len);
    rn_batch_builder_free(&b);
    rn_batch_header_t before, after;
    assert_int_equal(rn_batch_verify(batch, len, &before, NULL), 0);
    uint8_t *copy = malloc(len);
    memcpy(copy, batch, len);

    rn_batch_stamp(batch, 1000000007ULL, 42, -123456789);
    assert_int_equal(rn_batch_verify(batch, len, &after, NULL), 0);
    assert_true(after.base_offset == 1000000007ULL);
    assert_int_equal(after.leader_epoch, 42);
    assert_true(after.arrival_time_ms == -123456789);
    assert_true(after.header_checksum != before.header_checksum);
    assert_true(after.header_checksum == XXH3_64bits(batch, 32));
    /* Payload and its checksum untouched: bytes [40, len) are identical. */
    assert_true(after.payload_checksum == before.payload_checksum);
    assert_memory_equal(batch + 40, copy + 40, len - 40);
    /* Only bytes 8..39 changed in the header. */
    assert_memory_equal(batch, copy, 8);
    assert_true(get_le(batch + 8, 8) == 1000000007ULL);
    assert_true(get_le(batch + 16, 4) == 42);
    assert_true(get_le(batch + 20, 4) == 0);
    assert_true(get_le(batch + 24, 8) == (uint64_t)(int64_t)-123456789);
    assert_true(rn_batch_last_offset(&after) == 1000000007ULL + n - 1);
    assert_batch_holds(batch, len, t, n, 1000000007ULL);

    /* Stamping again with other values works the same way. */
    rn_batch_stamp(batch, 0, 0, 0);
    assert_int_equal(rn_batch_verify(batch, len, &after, NULL), 0);
    assert_memory_equal(batch, copy, len); /* back to the producer's bytes */

    /* A stamp that skips the checksum would be caught. */
    put_le(batch + 8, 99, 8);
    assert_int_equal(rn_batch_verify(batch, len, NULL, NULL), RN_ECORRUPT);
    free(batch);
    free(copy);
  }
}

/* A base offset so large that the last record's offset would wrap. */
static void test_stamp_offset_overflow_rejected(void **state) {
  (void)state;
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  rn_record_t r = {.timestamp = 1};
  assert_int_equal(rn_batch_builder_add(&b, &r), 0);
  assert_int_equal(rn_batch_builder_add(&b, &r), 0);
  size_t len;
  uint8_t *batch = finish_copy(&b, RN_CODEC_NONE, NULL, &len);
  rn_batch_stamp(batch, UINT64_MAX - 1, 1, 1); /* offsets MAX-1, MAX: fine */
  assert_int_equal(rn_batch_verify(batch, len, NULL, NULL), 0);
  rn_batch_stamp(batch, UINT64_MAX, 1, 1); /* second offset would wrap */
  assert_int_equal(rn_batch_verify(batch, len, NULL, NULL), RN_ECORRUPT);
  free(batch);
  rn_batch_builder_free(&b);
}

/* ---- verification --------------------------------------------------------- */

static uint8_t *small_batch(rn_codec_t codec, size_t *len) {
  rn_record_header_t hd = {(const uint8_t *)"h", 1, (const uint8_t *)"hv", 2};
  char val[64];
  memset(val, 'z', sizeof val);
  rn_record_t r0 = {.timestamp = 100, .key = (const uint8_t *)"k", .key_len = 1,
                    .value = (const uint8_t *)val, .value_len = sizeof val,
                    .id = (const uint8_t *)"i", .id_len = 1, .header_count = 1, .headers = &hd};
  rn_record_t r1 = {.timestamp = 90, .value = (const uint8_t *)val, .value_len = sizeof val};
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  assert_int_equal(rn_batch_builder_add(&b, &r0), 0);
  assert_int_equal(rn_batch_builder_add(&b, &r1), 0);
  rn_batch_producer_t prod = {1, 2, 3};
  uint8_t *batch = finish_copy(&b, codec, &prod, len);
  assert_int_equal(batch[5], codec);
  rn_batch_builder_free(&b);
  rn_batch_stamp(batch, 500, 6, 7);
  return batch;
}

/* Every single-bit flip anywhere in the batch is detected: RN_EFORMAT for
 * the magic byte, RN_ECORRUPT everywhere else; iteration refuses it too. */
static void test_verify_detects_every_bit_flip(void **state) {
  (void)state;
  for (int c = 0; c < 2; c++) {
    size_t len;
    uint8_t *batch = small_batch(c ? RN_CODEC_LZ4 : RN_CODEC_NONE, &len);
    assert_int_equal(rn_batch_verify(batch, len, NULL, NULL), 0);
    for (size_t i = 0; i < len; i++) {
      for (int bit = 0; bit < 8; bit++) {
        batch[i] ^= (uint8_t)(1u << bit);
        size_t need = 12345;
        rn_err_t want = i == 4 ? RN_EFORMAT : RN_ECORRUPT;
        rn_err_t rc = rn_batch_verify(batch, len, NULL, &need);
        if (rc != want) fail_msg("byte %zu bit %d: got %s", i, bit, rn_err_name(rc));
        assert_int_equal(need, 12345); /* only set on success or RN_EPARTIAL */
        rn_batch_iter_t it;
        assert_int_equal(rn_batch_iter_init(&it, batch, len), want);
        rn_batch_iter_free(&it);
        batch[i] ^= (uint8_t)(1u << bit);
      }
    }
    assert_int_equal(rn_batch_verify(batch, len, NULL, NULL), 0);
    free(batch);
  }
}

/* Every prefix asks for more bytes: the header size until the header is
 * complete, then the exact batch length. */
static void test_truncated_input(void **state) {
  (void)state;
  for (int c = 0; c < 2; c++) {
    size_t len;
    uint8_t *batch = small_batch(c ? RN_CODEC_LZ4 : RN_CODEC_NONE, &len);
    for (size_t n = 0; n < len; n++) {
      /* Copy the prefix into a buffer of exactly n bytes so ASan sees any
       * read past it. */
      uint8_t *prefix = malloc(n ? n : 1);
      memcpy(prefix, batch, n);
      size_t need = 0;
      rn_batch_header_t h;
      assert_int_equal(rn_batch_verify(prefix, n, &h, &need), RN_EPARTIAL);
      assert_int_equal(need, n < RN_BATCH_HEADER_SIZE ? RN_BATCH_HEADER_SIZE : len);
      assert_int_equal(rn_batch_verify(prefix, n, NULL, NULL), RN_EPARTIAL);
      if (n < RN_BATCH_HEADER_SIZE)
        assert_int_equal(rn_batch_header_decode(prefix, n, &h), RN_EPARTIAL);
      else
        assert_int_equal(rn_batch_header_decode(prefix, n, &h), 0);
      rn_batch_iter_t it;
      assert_int_equal(rn_batch_iter_init(&it, prefix, n), RN_EPARTIAL);
      rn_batch_iter_free(&it);
      free(prefix);
    }
    free(batch);
  }
}

/* Bytes after the batch (say, the next batch) are not part of it. */
static void test_batches_back_to_back(void **state) {
  (void)state;
  size_t l1, l2;
  uint8_t *b1 = small_batch(RN_CODEC_NONE, &l1);
  uint8_t *b2 = small_batch(RN_CODEC_LZ4, &l2);
  uint8_t *both = malloc(l1 + l2);
  memcpy(both, b1, l1);
  memcpy(both + l1, b2, l2);
  size_t need = 0;
  assert_int_equal(rn_batch_verify(both, l1 + l2, NULL, &need), 0);
  assert_int_equal(need, l1);
  assert_int_equal(rn_batch_verify(both + l1, l2, NULL, &need), 0);
  assert_int_equal(need, l2);
  uint32_t got;
  assert_int_equal(drain(both, l1 + l2, &got), RN_EOFFSET);
  assert_int_equal(got, 2);
  assert_int_equal(drain(both + l1, l2, &got), RN_EOFFSET);
  assert_int_equal(got, 2);
  free(both);
  free(b1);
  free(b2);
}

/* A header field is changed and both checksums recomputed: only the format
 * rule under test is broken. */
static rn_err_t verify_with(const uint8_t *batch, size_t len, size_t off, uint64_t v, size_t n) {
  uint8_t *copy = malloc(len);
  memcpy(copy, batch, len);
  put_le(copy + off, v, n);
  /* Keep batch_length honest for the payload checksum only when unchanged. */
  uint32_t bl = (uint32_t)get_le(copy, 4);
  if (bl >= 48 && bl <= len) fix_checksums(copy);
  else put_le(copy + 32, XXH3_64bits(copy, 32), 8);
  rn_err_t rc = rn_batch_verify(copy, len, NULL, NULL);
  rn_batch_header_t h;
  rn_err_t rc2 = rn_batch_header_decode(copy, len, &h);
  /* Header-only rules are found by the header decoder as well. */
  if (rc == RN_EFORMAT) assert_int_equal(rc2, RN_EFORMAT);
  free(copy);
  return rc;
}

static void test_bad_magic_and_codec(void **state) {
  (void)state;
  size_t len;
  uint8_t *batch = small_batch(RN_CODEC_NONE, &len);
  assert_int_equal(verify_with(batch, len, 4, 0xB2, 1), RN_EFORMAT);
  assert_int_equal(verify_with(batch, len, 4, 0x00, 1), RN_EFORMAT);
  assert_int_equal(verify_with(batch, len, 4, 0x01, 1), RN_EFORMAT);
  for (unsigned codec = 2; codec < 8; codec++)
    assert_int_equal(verify_with(batch, len, 5, codec, 1), RN_EFORMAT);
  /* Unknown magic wins even over a wrong header checksum. */
  uint8_t *copy = malloc(len);
  memcpy(copy, batch, len);
  copy[4] = 0x02;
  rn_batch_header_t h;
  assert_int_equal(rn_batch_verify(copy, len, NULL, NULL), RN_EFORMAT);
  assert_int_equal(rn_batch_header_decode(copy, len, &h), RN_EFORMAT);
  free(copy);
  free(batch);
}

static void test_bad_header_fields(void **state) {
  (void)state;
  size_t len;
  uint8_t *batch = small_batch(RN_CODEC_NONE, &len);
  /* Reserved attribute bits (with a valid codec). */
  for (int bit = 3; bit < 8; bit++)
    assert_int_equal(verify_with(batch, len, 5, 1u << bit, 1), RN_ECORRUPT);
  /* header_length must be exactly 88. */
  assert_int_equal(verify_with(batch, len, 6, 87, 2), RN_ECORRUPT);
  assert_int_equal(verify_with(batch, len, 6, 89, 2), RN_ECORRUPT);
  assert_int_equal(verify_with(batch, len, 6, 0, 2), RN_ECORRUPT);
  /* Reserved fields. */
  assert_int_equal(verify_with(batch, len, 20, 1, 4), RN_ECORRUPT);
  assert_int_equal(verify_with(batch, len, 20, 0x80000000u, 4), RN_ECORRUPT);
  assert_int_equal(verify_with(batch, len, 82, 1, 2), RN_ECORRUPT);
  /* Impossible batch lengths. */
  assert_int_equal(verify_with(batch, len, 0, 0, 4), RN_ECORRUPT);
  assert_int_equal(verify_with(batch, len, 0, 87, 4), RN_ECORRUPT);
  assert_int_equal(verify_with(batch, len, 0, RN_BATCH_MAX_SIZE + 1u, 4), RN_ECORRUPT);
  assert_int_equal(verify_with(batch, len, 0, UINT32_MAX, 4), RN_ECORRUPT);
  /* record_count 0, or more records than bytes allow. */
  assert_int_equal(verify_with(batch, len, 48, 0, 4), RN_ECORRUPT);
  assert_int_equal(verify_with(batch, len, 48, (len - 88) / 8 + 1, 4), RN_ECORRUPT);
  /* Uncompressed: records_length must equal the stored bytes. */
  assert_int_equal(verify_with(batch, len, 52, len - 88 - 1, 4), RN_ECORRUPT);
  assert_int_equal(verify_with(batch, len, 52, len - 88 + 1, 4), RN_ECORRUPT);
  /* max_timestamp before first_timestamp. */
  assert_int_equal(verify_with(batch, len, 64, 99, 8), RN_ECORRUPT);
  free(batch);

  /* LZ4: records_length above 255x the stored size, or above the ceiling. */
  batch = small_batch(RN_CODEC_LZ4, &len);
  assert_int_equal(verify_with(batch, len, 52, (len - 88) * 255, 4), 0);
  assert_int_equal(verify_with(batch, len, 52, (len - 88) * 255 + 1, 4), RN_ECORRUPT);
  assert_int_equal(verify_with(batch, len, 52, RN_BATCH_MAX_SIZE, 4), RN_ECORRUPT);
  free(batch);
}

/* ---- malformed records ---------------------------------------------------- */

/* Builds a batch around a hand-written section and iterates it: returns the
 * status that ended iteration and how many records came out before it. */
static rn_err_t run_section(const spec_t *s, const wbuf_t *sec, bool lz4, uint32_t *returned) {
  size_t len;
  uint8_t *batch = lz4 ? make_lz4(s, sec, &len) : make_none(s, sec, &len);
  /* The checksums and header are fine: only the records are at fault. */
  assert_int_equal(rn_batch_verify(batch, len, NULL, NULL), 0);
  rn_err_t rc = drain(batch, len, returned);
  free(batch);
  return rc;
}

static void expect_records(const spec_t *s, const wbuf_t *sec, rn_err_t want, uint32_t count) {
  for (int lz4 = 0; lz4 < 2; lz4++) {
    uint32_t got;
    assert_int_equal(run_section(s, sec, lz4, &got), want);
    assert_int_equal(got, count);
  }
}

static void test_hand_built_valid(void **state) {
  (void)state;
  /* Control: the hand-written encoding is accepted as it is. */
  wbuf_t sec = {.n = 0}, body;
  body_simple(&body, 0, 0, "a", "x");
  w_framed(&sec, &body);
  body_simple(&body, -3, 1, "b", "y");
  w_framed(&sec, &body);
  spec_t s = spec_default(2);
  expect_records(&s, &sec, RN_EOFFSET, 2);
}

static void test_malformed_records(void **state) {
  (void)state;
  wbuf_t sec, body;
  spec_t s1 = spec_default(1), s2 = spec_default(2);

  /* Non-zero record attributes. */
  sec.n = 0;
  body_simple(&body, 0, 0, "k", "v");
  body.b[0] = 1;
  w_framed(&sec, &body);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);

  /* offset_delta not equal to the record's index. */
  sec.n = 0;
  body_simple(&body, 0, 0, "k", "v");
  w_framed(&sec, &body);
  body_simple(&body, 0, 0, "k", "v"); /* second record says 0 again */
  w_framed(&sec, &body);
  expect_records(&s2, &sec, RN_ECORRUPT, 1);
  sec.n = 0;
  body_simple(&body, 0, 1, "k", "v"); /* first record says 1 */
  w_framed(&sec, &body);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);

  /* Record 0 not at first_timestamp. */
  sec.n = 0;
  body_simple(&body, -1, 0, "k", "v");
  w_framed(&sec, &body);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);

  /* A record after max_timestamp. */
  sec.n = 0;
  body_simple(&body, 0, 0, "k", "v");
  w_framed(&sec, &body);
  body_simple(&body, 1, 1, "k", "v");
  w_framed(&sec, &body);
  expect_records(&s2, &sec, RN_ECORRUPT, 1);
  spec_t s2max = s2;
  s2max.max_ts = 1001; /* the same records with an honest max are fine */
  expect_records(&s2max, &sec, RN_EOFFSET, 2);

  /* first_timestamp + delta overflows int64. */
  sec.n = 0;
  body_simple(&body, 0, 0, "k", "v");
  w_framed(&sec, &body);
  body_simple(&body, 2, 1, "k", "v");
  w_framed(&sec, &body);
  spec_t sov = s2;
  sov.first_ts = INT64_MAX - 1;
  sov.max_ts = INT64_MAX;
  expect_records(&sov, &sec, RN_ECORRUPT, 1);

  /* Key length past the record's end. */
  sec.n = 0;
  body.n = 0;
  w_u8(&body, 0);
  w_var(&body, 0);
  w_var(&body, 0);
  w_var(&body, 50); /* key_length 50, but only a few bytes follow */
  w_raw(&body, "abcdefgh", 8);
  w_framed(&sec, &body);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);

  /* Record length past the section's end. */
  sec.n = 0;
  body_simple(&body, 0, 0, "k", "value");
  w_var(&sec, body.n + 1);
  w_raw(&sec, body.b, body.n);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);

  /* Record length shorter than its fields (they overrun into the next). */
  sec.n = 0;
  body_simple(&body, 0, 0, "k", "value");
  w_var(&sec, body.n - 2);
  w_raw(&sec, body.b, body.n);
  w_raw(&sec, "\x00\x00", 2);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);

  /* Record length longer than its fields (unparsed bytes inside). */
  sec.n = 0;
  body_simple(&body, 0, 0, "k", "value");
  w_u8(&body, 0x00);
  w_framed(&sec, &body);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);

  /* Fewer records than record_count (the count still passes the header's
   * bytes-per-record bound). */
  sec.n = 0;
  body_simple(&body, 0, 0, "key-key-key", "value-value");
  w_framed(&sec, &body);
  expect_records(&s2, &sec, RN_ECORRUPT, 1);

  /* More records than record_count. */
  sec.n = 0;
  body_simple(&body, 0, 0, "k", "v");
  w_framed(&sec, &body);
  body_simple(&body, 0, 1, "k", "v");
  w_framed(&sec, &body);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);

  /* Trailing garbage after the last record. */
  sec.n = 0;
  body_simple(&body, 0, 0, "k", "v");
  w_framed(&sec, &body);
  w_u8(&sec, 0);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);

  /* Non-minimal varint (key_length 0 as 0x80 0x00). */
  sec.n = 0;
  body.n = 0;
  w_u8(&body, 0);
  w_var(&body, 0);
  w_var(&body, 0);
  w_raw(&body, "\x80\x00", 2); /* key_length */
  w_str(&body, "v");
  w_str(&body, "");
  w_var(&body, 0);
  w_framed(&sec, &body);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);
  /* ... and a non-minimal record length. */
  sec.n = 0;
  body_simple(&body, 0, 0, "k", "v");
  w_u8(&sec, (uint8_t)(body.n | 0x80));
  w_u8(&sec, 0x00);
  w_raw(&sec, body.b, body.n);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);

  /* An 11-byte varint as the timestamp delta. */
  sec.n = 0;
  body.n = 0;
  w_u8(&body, 0);
  w_raw(&body, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 11);
  w_var(&body, 0);
  w_str(&body, "k");
  w_str(&body, "v");
  w_str(&body, "");
  w_var(&body, 0);
  w_framed(&sec, &body);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);

  /* Varint truncated by the end of the record (value length continues). */
  sec.n = 0;
  body.n = 0;
  w_u8(&body, 0);
  w_var(&body, 0);
  w_var(&body, 0);
  w_str(&body, "key");
  w_str(&body, "value");
  w_str(&body, "");
  w_u8(&body, 0x80); /* header_count, unfinished */
  w_framed(&sec, &body);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);
  /* ... and the section ending inside a record's length varint. */
  sec.n = 0;
  body_simple(&body, 0, 0, "key", "value");
  w_framed(&sec, &body);
  w_raw(&sec, "\x80\x80\x80\x80\x80\x80\x80\x80", 8);
  expect_records(&s2, &sec, RN_ECORRUPT, 1);

  /* header_count larger than the headers present. */
  sec.n = 0;
  body.n = 0;
  w_u8(&body, 0);
  w_var(&body, 0);
  w_var(&body, 0);
  w_str(&body, "k");
  w_str(&body, "v");
  w_str(&body, "");
  w_var(&body, 3);
  w_str(&body, "h1");
  w_str(&body, "v1");
  w_framed(&sec, &body);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);
  /* ... and absurdly large. */
  sec.n = 0;
  body.n = 0;
  w_u8(&body, 0);
  w_var(&body, 0);
  w_var(&body, 0);
  w_str(&body, "k");
  w_str(&body, "v");
  w_str(&body, "");
  w_var(&body, UINT64_MAX);
  w_str(&body, "h1");
  w_str(&body, "v1");
  w_framed(&sec, &body);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);

  /* A header value length past the end. */
  sec.n = 0;
  body.n = 0;
  w_u8(&body, 0);
  w_var(&body, 0);
  w_var(&body, 0);
  w_str(&body, "k");
  w_str(&body, "v");
  w_str(&body, "");
  w_var(&body, 1);
  w_str(&body, "h1");
  w_var(&body, 9);
  w_raw(&body, "v1", 2);
  w_framed(&sec, &body);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);

  /* A key length whose varint does not fit 64 bits. */
  sec.n = 0;
  body.n = 0;
  w_u8(&body, 0);
  w_var(&body, 0);
  w_var(&body, 0);
  w_raw(&body, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10);
  w_raw(&body, "abcdefgh", 8);
  w_framed(&sec, &body);
  expect_records(&s1, &sec, RN_ECORRUPT, 0);
}

/* LZ4 blocks that do not decode to exactly records_length bytes. */
static void test_malformed_lz4(void **state) {
  (void)state;
  wbuf_t sec = {.n = 0}, body;
  for (uint64_t i = 0; i < 10; i++) {
    body_simple(&body, 0, i, "same-key-same-key", "same-value-same-value");
    w_framed(&sec, &body);
  }
  spec_t s = spec_default(10);
  size_t len;
  uint8_t *batch;
  uint32_t got;

  s.records_length = (uint32_t)sec.n + 1; /* claims one byte more */
  batch = make_lz4(&s, &sec, &len);
  assert_int_equal(rn_batch_verify(batch, len, NULL, NULL), 0);
  assert_int_equal(drain(batch, len, &got), RN_ECORRUPT);
  assert_int_equal(got, 0); /* refused by init, before any record */
  free(batch);

  s.records_length = (uint32_t)sec.n - 1; /* claims one byte less */
  batch = make_lz4(&s, &sec, &len);
  assert_int_equal(rn_batch_verify(batch, len, NULL, NULL), 0);
  assert_int_equal(drain(batch, len, &got), RN_ECORRUPT);
  assert_int_equal(got, 0); /* refused by init, before any record */
  free(batch);

  /* Garbage where the block should be. */
  s.records_length = 0;
  batch = make_lz4(&s, &sec, &len);
  for (size_t i = 88; i < len; i++) batch[i] = (uint8_t)(0xF0 ^ i);
  fix_checksums(batch);
  assert_int_equal(rn_batch_verify(batch, len, NULL, NULL), 0);
  assert_int_equal(drain(batch, len, &got), RN_ECORRUPT);
  assert_int_equal(got, 0);
  free(batch);

  /* The valid block, truncated by one byte. */
  batch = make_lz4(&s, &sec, &len);
  put_le(batch, len - 1, 4);
  fix_checksums(batch);
  assert_int_equal(rn_batch_verify(batch, len - 1, NULL, NULL), 0);
  assert_int_equal(drain(batch, len - 1, &got), RN_ECORRUPT);
  free(batch);

  /* An empty block. */
  uint8_t none = 0;
  batch = make_batch(&(spec_t){.record_count = 1, .first_ts = 1, .max_ts = 1,
                               .attributes = RN_CODEC_LZ4},
                     &none, 0, 8, &len);
  assert_int_equal(rn_batch_verify(batch, len, NULL, NULL), RN_ECORRUPT);
  free(batch);
}

/* ---- iterator and header-walk arguments ----------------------------------- */

static void test_iterator_misuse(void **state) {
  (void)state;
  rn_batch_iter_t it;
  memset(&it, 0, sizeof it);
  rn_record_t rec;
  assert_int_equal(rn_batch_iter_next(&it, &rec), RN_ECORRUPT); /* never initialised */
  assert_int_equal(rn_batch_iter_next(&it, NULL), RN_EINVAL);
  assert_int_equal(rn_batch_iter_next(NULL, &rec), RN_EINVAL);
  rn_batch_iter_free(&it);
  rn_batch_iter_free(NULL);
  assert_int_equal(rn_batch_iter_init(NULL, NULL, 0), RN_EINVAL);
  /* A failed init leaves nothing to free and next() refuses to run. */
  uint8_t junk[100] = {0};
  assert_int_equal(rn_batch_iter_init(&it, junk, sizeof junk), RN_EFORMAT);
  assert_int_equal(rn_batch_iter_next(&it, &rec), RN_ECORRUPT);
  rn_batch_iter_free(&it);
}

static void test_record_header_next_bounds(void **state) {
  (void)state;
  const uint8_t raw[] = {2, 'h', '1', 3, 'a', 'b', 'c', 0, 0};
  rn_record_t rec = {.headers_raw = raw, .headers_raw_len = sizeof raw, .header_count = 2};
  size_t pos = 0;
  rn_record_header_t h;
  assert_int_equal(rn_record_header_next(&rec, &pos, &h), 0);
  assert_int_equal(h.key_len, 2);
  assert_memory_equal(h.key, "h1", 2);
  assert_int_equal(h.value_len, 3);
  assert_memory_equal(h.value, "abc", 3);
  assert_int_equal(pos, 7);
  assert_int_equal(rn_record_header_next(&rec, &pos, &h), 0);
  assert_int_equal(h.key_len, 0);
  assert_int_equal(h.value_len, 0);
  assert_int_equal(rn_record_header_next(&rec, &pos, &h), RN_EOFFSET);
  assert_int_equal(rn_record_header_next(&rec, &pos, &h), RN_EOFFSET);
  /* Truncated: the value runs past the raw bytes. */
  rec.headers_raw_len = 6;
  pos = 0;
  assert_int_equal(rn_record_header_next(&rec, &pos, &h), RN_ECORRUPT);
  assert_int_equal(pos, 0);
  /* Key length only. */
  rec.headers_raw_len = 1;
  assert_int_equal(rn_record_header_next(&rec, &pos, &h), RN_ECORRUPT);
  /* pos beyond the end. */
  rec.headers_raw_len = sizeof raw;
  pos = sizeof raw + 1;
  assert_int_equal(rn_record_header_next(&rec, &pos, &h), RN_ECORRUPT);
  /* No headers at all. */
  rn_record_t none = {0};
  pos = 0;
  assert_int_equal(rn_record_header_next(&none, &pos, &h), RN_EOFFSET);
  assert_int_equal(rn_record_header_next(NULL, &pos, &h), RN_EINVAL);
  assert_int_equal(rn_record_header_next(&rec, NULL, &h), RN_EINVAL);
  assert_int_equal(rn_record_header_next(&rec, &pos, NULL), RN_EINVAL);
}

/* ---- the iterator for batches verified by the reader ---------------------- */

/* rn_batch_iter_init_verified: the same records as rn_batch_iter_init, the
 * same header and length checks, the same strict record decoding, but no
 * checksum pass (a payload bit flip goes through: that is the contract). */
static void test_iter_init_verified(void **state) {
  (void)state;
  for (int c = 0; c < 2; c++) {
    size_t len;
    uint8_t *batch = small_batch(c ? RN_CODEC_LZ4 : RN_CODEC_NONE, &len);
    rn_batch_iter_t a, b;
    assert_int_equal(rn_batch_iter_init(&a, batch, len), 0);
    assert_int_equal(rn_batch_iter_init_verified(&b, batch, len), 0);
    assert_header_equal(&a.hdr, &b.hdr);
    rn_record_t ra, rb;
    rn_err_t ea, eb;
    do {
      ea = rn_batch_iter_next(&a, &ra);
      eb = rn_batch_iter_next(&b, &rb);
      assert_int_equal(ea, eb);
      if (ea == 0) {
        assert_true(ra.offset == rb.offset);
        assert_true(ra.timestamp == rb.timestamp);
        assert_int_equal(ra.key_len, rb.key_len);
        assert_int_equal(ra.value_len, rb.value_len);
        assert_int_equal(ra.id_len, rb.id_len);
        assert_int_equal(ra.header_count, rb.header_count);
        if (ra.key_len) assert_memory_equal(ra.key, rb.key, ra.key_len);
        assert_memory_equal(ra.value, rb.value, ra.value_len);
      }
    } while (ea == 0);
    assert_int_equal(ea, RN_EOFFSET);
    rn_batch_iter_free(&a);
    rn_batch_iter_free(&b);

    /* Every prefix is incomplete; ASan sees a read past an exact buffer. */
    for (size_t n = 0; n < len; n++) {
      uint8_t *prefix = malloc(n ? n : 1);
      memcpy(prefix, batch, n);
      assert_int_equal(rn_batch_iter_init_verified(&b, prefix, n), RN_EPARTIAL);
      rn_batch_iter_free(&b);
      free(prefix);
    }

    /* Header fields are still checked, checksums or not. */
    uint8_t save = batch[4];
    batch[4] ^= 1; /* magic */
    assert_int_equal(rn_batch_iter_init_verified(&b, batch, len), RN_EFORMAT);
    batch[4] = save;
    batch[20] = 1; /* reserved */
    assert_int_equal(rn_batch_iter_init_verified(&b, batch, len), RN_ECORRUPT);
    batch[20] = 0;
    uint64_t n48 = get_le(batch + 48, 4);
    put_le(batch + 48, 0, 4); /* record_count 0 */
    assert_int_equal(rn_batch_iter_init_verified(&b, batch, len), RN_ECORRUPT);
    put_le(batch + 48, n48, 4);
    put_le(batch, len + 1, 4); /* claims a byte it does not have (raw: no longer records_length) */
    assert_int_equal(rn_batch_iter_init_verified(&b, batch, len), c ? RN_EPARTIAL : RN_ECORRUPT);
    put_le(batch, len, 4);

    /* A flipped payload byte (not re-checksummed) is not looked for. */
    if (c == 0) {
      batch[len - 3] ^= 0x20; /* inside the last record's value or header */
      assert_int_equal(rn_batch_iter_init(&a, batch, len), RN_ECORRUPT);
      rn_batch_iter_free(&a);
      assert_int_equal(rn_batch_iter_init_verified(&b, batch, len), 0);
      rn_batch_iter_free(&b);
      batch[len - 3] ^= 0x20;
    }
    assert_int_equal(rn_batch_verify(batch, len, NULL, NULL), 0);
    free(batch);
  }
  rn_batch_iter_t it;
  assert_int_equal(rn_batch_iter_init_verified(NULL, NULL, 0), RN_EINVAL);
  assert_int_equal(rn_batch_iter_init_verified(&it, NULL, 100), RN_EINVAL);
  rn_batch_iter_free(&it);
}

/* Malformed records behind valid checksums fail the same way. */
static void test_iter_init_verified_malformed(void **state) {
  (void)state;
  wbuf_t sec = {.n = 0}, body;
  for (uint64_t i = 0; i < 10; i++) {
    body_simple(&body, 0, i == 5 ? 7 : i, "k", "v"); /* record 5 has offset_delta 7 */
    w_framed(&sec, &body);
  }
  spec_t s = spec_default(10);
  for (int c = 0; c < 2; c++) {
    size_t len;
    uint8_t *batch = c ? make_lz4(&s, &sec, &len) : make_none(&s, &sec, &len);
    assert_int_equal(rn_batch_verify(batch, len, NULL, NULL), 0);
    rn_batch_iter_t it;
    assert_int_equal(rn_batch_iter_init_verified(&it, batch, len), 0);
    rn_record_t rec;
    uint32_t got = 0;
    rn_err_t rc;
    while ((rc = rn_batch_iter_next(&it, &rec)) == 0) got++;
    assert_int_equal(rc, RN_ECORRUPT);
    assert_int_equal(got, 5);
    rn_batch_iter_free(&it);
    free(batch);
  }
  /* An LZ4 block that does not decode to records_length bytes. */
  s.records_length = (uint32_t)sec.n + 1;
  size_t len;
  uint8_t *batch = make_lz4(&s, &sec, &len);
  rn_batch_iter_t it;
  assert_int_equal(rn_batch_iter_init_verified(&it, batch, len), RN_ECORRUPT);
  rn_batch_iter_free(&it);
  free(batch);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_varint_edges),
      cmocka_unit_test(test_varint_random_roundtrip),
      cmocka_unit_test(test_zigzag),
      cmocka_unit_test(test_roundtrip_all_fields),
      cmocka_unit_test(test_roundtrip_extreme_timestamps),
      cmocka_unit_test(test_timestamp_delta_overflow_rejected),
      cmocka_unit_test(test_null_producer),
      cmocka_unit_test(test_byte_layout_matches_spec),
      cmocka_unit_test(test_lz4_compressible),
      cmocka_unit_test(test_lz4_falls_back_when_incompressible),
      cmocka_unit_test(test_builder_reuse),
      cmocka_unit_test(test_builder_many_records),
      cmocka_unit_test(test_builder_invalid_arguments),
      cmocka_unit_test(test_builder_size_limit),
      cmocka_unit_test(test_stamp),
      cmocka_unit_test(test_stamp_offset_overflow_rejected),
      cmocka_unit_test(test_verify_detects_every_bit_flip),
      cmocka_unit_test(test_truncated_input),
      cmocka_unit_test(test_batches_back_to_back),
      cmocka_unit_test(test_bad_magic_and_codec),
      cmocka_unit_test(test_bad_header_fields),
      cmocka_unit_test(test_hand_built_valid),
      cmocka_unit_test(test_malformed_records),
      cmocka_unit_test(test_malformed_lz4),
      cmocka_unit_test(test_iterator_misuse),
      cmocka_unit_test(test_record_header_next_bounds),
      cmocka_unit_test(test_iter_init_verified),
      cmocka_unit_test(test_iter_init_verified_malformed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
