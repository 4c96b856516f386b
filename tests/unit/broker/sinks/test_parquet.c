/*
 * tests/unit/broker/sinks/test_parquet.c — the Parquet writer
 * (broker/sinks/parquet.h) against the specification: files are decoded with
 * the tests' own reader (pq_read.c, from parquet.thrift, no code shared with
 * the writer) and the footer fields, schema elements, logical types, row
 * counts, offsets, statistics, page bytes and codecs are checked against
 * what the spec says they must be; the RLE/bit-packed hybrid byte for byte
 * on known sequences; and the writer's errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parquet.h"
#include "pq_read.h"
#include "thrift_compact.h"

/* ---- helpers ------------------------------------------------------------------ */

typedef struct file {
  uint8_t *buf;
  size_t len;
  pqr_val_t fmd;
} file_t;

static rn_pq_writer_t *new_writer(const rn_pq_column_t *cols, size_t n, rn_pq_codec_t codec, size_t rg_rows) {
  rn_pq_opts_t o;
  rn_pq_opts_default(&o);
  o.codec = codec;
  o.row_group_rows = rg_rows;
  rn_pq_writer_t *w = NULL;
  assert_int_equal(rn_pq_writer_new(cols, n, &o, &w), RN_OK);
  assert_non_null(w);
  return w;
}

/* Finishes w, checks the whole file's structure and decodes the footer. */
static void finish(rn_pq_writer_t *w, file_t *f) {
  assert_int_equal(rn_pq_finish(w, &f->buf, &f->len), RN_OK);
  rn_pq_writer_free(w);
  const char *why;
  rn_err_t err = pqr_check_file(f->buf, f->len, &why);
  if (err) fail_msg("pqr_check_file: %s", why);
  assert_int_equal(pqr_footer(f->buf, f->len, &f->fmd), RN_OK);
}

static void file_free(file_t *f) {
  pqr_free(&f->fmd);
  free(f->buf);
}

static const pqr_val_t *list_at(const pqr_val_t *v, int16_t id, size_t i) {
  const pqr_val_t *l = pqr_f(v, id);
  assert_non_null(l);
  assert_int_equal(l->kind, PQR_LIST);
  assert_true(i < l->n);
  return &l->kids[i];
}

static size_t list_len(const pqr_val_t *v, int16_t id) {
  const pqr_val_t *l = pqr_f(v, id);
  assert_non_null(l);
  assert_int_equal(l->kind, PQR_LIST);
  return l->n;
}

/* ColumnMetaData of row group g, column c */
static const pqr_val_t *meta(const file_t *f, size_t g, size_t c) {
  const pqr_val_t *cc = list_at(list_at(&f->fmd, 4, g), 1, c);
  const pqr_val_t *md = pqr_f(cc, 3);
  assert_non_null(md);
  return md;
}

static void assert_bin(const pqr_val_t *v, const void *p, size_t n) {
  assert_non_null(v);
  assert_int_equal(v->kind, PQR_BINARY);
  assert_int_equal(v->len, n);
  if (n) assert_memory_equal(v->bin, p, n);
}

static void assert_str(const pqr_val_t *v, const char *s) { assert_bin(v, s, strlen(s)); }

/* The page at off: its header and its body decompressed (malloc'd). */
static size_t page_at(const file_t *f, const pqr_val_t *md, size_t off, pqr_val_t *hdr, uint8_t **body) {
  size_t hl;
  assert_int_equal(pqr_page_header(f->buf, f->len, off, hdr, &hl), RN_OK);
  size_t us = (size_t)pqr_i(hdr, 2, -1), cs = (size_t)pqr_i(hdr, 3, -1);
  assert_int_equal(pqr_decompress((int)pqr_i(md, 4, -1), f->buf + off + hl, cs, us, body), RN_OK);
  return us;
}

static void le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- the RLE / bit-packed hybrid, byte for byte --------------------------------- */

static void hybrid_is(const uint32_t *v, size_t n, int bw, const uint8_t *want, size_t want_len) {
  rn__buf_t b = {0};
  assert_true(rn__pq_rle_hybrid(&b, v, n, bw));
  assert_int_equal(b.len, want_len);
  assert_memory_equal(b.p, want, want_len);
  /* and the tests' decoder reads back the values */
  uint32_t *back = calloc(n ? n : 1, sizeof *back);
  size_t used;
  assert_int_equal(pqr_rle_decode(b.p, b.len, bw, back, n, &used), RN_OK);
  assert_int_equal(used, b.len);
  if (n) assert_memory_equal(back, v, n * sizeof *v);
  free(back);
  rn__buf_free(&b);
}

static void test_rle_hybrid_known(void **state) {
  (void)state;
  /* eight equal values: one RLE run, header 8 << 1, the value in one byte */
  static const uint32_t ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  hybrid_is(ones, 8, 1, (const uint8_t[]){0x10, 0x01}, 2);
  /* no run of 8: one bit-packed group, header 1 << 1 | 1, LSB first */
  static const uint32_t mix[8] = {1, 0, 1, 1, 0, 0, 0, 1};
  hybrid_is(mix, 8, 1, (const uint8_t[]){0x03, 0x8D}, 2);
  /* a short tail: the group is padded with zeros */
  static const uint32_t three[3] = {1, 0, 1};
  hybrid_is(three, 3, 1, (const uint8_t[]){0x03, 0x05}, 2);
  /* the spec's example: 0..7 at bit width 3 */
  static const uint32_t seq[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  hybrid_is(seq, 8, 3, (const uint8_t[]){0x03, 0x88, 0xC6, 0xFA}, 4);
  /* a run then literals: RLE (10 << 1, value 0), then a padded group at width 2 */
  static const uint32_t runlit[13] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3};
  hybrid_is(runlit, 13, 2, (const uint8_t[]){0x14, 0x00, 0x03, 0x39, 0x00}, 5);
  /* width 9: the RLE value takes two bytes, little-endian */
  static const uint32_t wide[8] = {300, 300, 300, 300, 300, 300, 300, 300};
  hybrid_is(wide, 8, 9, (const uint8_t[]){0x10, 0x2C, 0x01}, 3);
  /* a long run: the count as a multi-byte varint (1000 << 1 = 2000) */
  uint32_t *many = calloc(1000, sizeof *many);
  hybrid_is(many, 1000, 1, (const uint8_t[]){0xD0, 0x0F, 0x00}, 3);
  /* 1000 alternating values: bit-packed runs of at most 63 groups (one-byte
   * headers): 63 groups (0x7F) then 62 (0x7D) */
  for (size_t i = 0; i < 1000; i++) many[i] = i & 1;
  uint8_t want[127];
  want[0] = 0x7F;
  memset(want + 1, 0xAA, 63);
  want[64] = 0x7D;
  memset(want + 65, 0xAA, 62);
  hybrid_is(many, 1000, 1, want, sizeof want);
  free(many);
  /* nothing: no bytes */
  hybrid_is(NULL, 0, 1, NULL, 0);
}

static void test_rle_hybrid_roundtrip(void **state) {
  (void)state;
  uint64_t x = 42;
  for (int round = 0; round < 200; round++) {
    int bw = round % 33;
    size_t n = (size_t)(round * 37 % 1500) + 1;
    uint32_t *v = malloc(n * sizeof *v);
    uint32_t mask = bw == 32 ? UINT32_MAX : (1u << bw) - 1;
    for (size_t i = 0; i < n;) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      size_t run = (x >> 40) % 4 == 0 ? (size_t)(x % 40) + 1 : 1;
      for (size_t j = 0; j < run && i < n; j++) v[i++] = (uint32_t)(x >> 8) & mask;
    }
    rn__buf_t b = {0};
    assert_true(rn__pq_rle_hybrid(&b, v, n, bw));
    uint32_t *back = malloc(n * sizeof *back);
    size_t used;
    assert_int_equal(pqr_rle_decode(b.p, b.len, bw, back, n, &used), RN_OK);
    assert_int_equal(used, b.len);
    assert_memory_equal(back, v, n * sizeof *v);
    free(back);
    free(v);
    rn__buf_free(&b);
  }
}

/* ---- footer, schema, logical types ------------------------------------------------ */

static const rn_pq_column_t five[] = {
    {"s", RN_PQ_STRING, true},     {"i", RN_PQ_INT64, false},      {"d", RN_PQ_DOUBLE, true},
    {"b", RN_PQ_BOOLEAN, false},   {"t", RN_PQ_TIMESTAMP, true},
};

static void five_rows(rn_pq_writer_t *w, size_t n) {
  for (size_t r = 0; r < n; r++) {
    char s[32];
    int len = snprintf(s, sizeof s, "v%zu", r % 3);
    if (r % 4 != 3) assert_int_equal(rn_pq_set_string(w, 0, s, (size_t)len), RN_OK);
    assert_int_equal(rn_pq_set_int64(w, 1, (int64_t)r - 5), RN_OK);
    if (r % 2) assert_int_equal(rn_pq_set_double(w, 2, (double)r / 4), RN_OK);
    assert_int_equal(rn_pq_set_bool(w, 3, r % 3 == 0), RN_OK);
    assert_int_equal(rn_pq_set_int64(w, 4, 1764720000000 + (int64_t)r), RN_OK);
    assert_int_equal(rn_pq_end_row(w), RN_OK);
  }
}

static void test_footer_schema(void **state) {
  (void)state;
  rn_pq_opts_t o;
  rn_pq_opts_default(&o);
  assert_int_equal(o.codec, RN_PQ_SNAPPY);
  assert_int_equal(o.row_group_bytes, 64u << 20);
  assert_int_equal(o.page_bytes, 1u << 20);
  assert_string_equal(o.created_by, "runnel version 0.1.0");
  o.codec = RN_PQ_UNCOMPRESSED;
  o.created_by = "runnel test";
  rn_pq_writer_t *w;
  assert_int_equal(rn_pq_writer_new(five, 5, &o, &w), RN_OK);
  five_rows(w, 10);
  assert_int_equal(rn_pq_add_metadata(w, "runnel.stream", "orders"), RN_OK);
  assert_int_equal(rn_pq_add_metadata(w, "novalue", NULL), RN_OK);
  assert_int_equal(rn_pq_rows(w), 10);
  file_t f;
  finish(w, &f);
  assert_memory_equal(f.buf, "PAR1", 4);
  assert_memory_equal(f.buf + f.len - 4, "PAR1", 4);

  const pqr_val_t *fmd = &f.fmd;
  assert_int_equal(pqr_i(fmd, 1, -1), 1); /* version */
  assert_int_equal(pqr_i(fmd, 3, -1), 10);
  assert_int_equal(list_len(fmd, 4), 1);
  assert_str(pqr_f(fmd, 6), "runnel test");
  /* key_value_metadata */
  assert_int_equal(list_len(fmd, 5), 2);
  assert_str(pqr_f(list_at(fmd, 5, 0), 1), "runnel.stream");
  assert_str(pqr_f(list_at(fmd, 5, 0), 2), "orders");
  assert_str(pqr_f(list_at(fmd, 5, 1), 1), "novalue");
  assert_null(pqr_f(list_at(fmd, 5, 1), 2));

  /* schema: the root group, then one leaf per column */
  assert_int_equal(list_len(fmd, 2), 6);
  const pqr_val_t *root = list_at(fmd, 2, 0);
  assert_str(pqr_f(root, 4), "schema");
  assert_int_equal(pqr_i(root, 5, -1), 5);
  assert_null(pqr_f(root, 1)); /* a group has no type */
  static const struct {
    const char *name;
    int type, rep, conv;
  } leaves[] = {{"s", 6, 1, 0}, {"i", 2, 0, -1}, {"d", 5, 1, -1}, {"b", 0, 0, -1}, {"t", 2, 1, 9}};
  for (size_t i = 0; i < 5; i++) {
    const pqr_val_t *el = list_at(fmd, 2, i + 1);
    assert_str(pqr_f(el, 4), leaves[i].name);
    assert_int_equal(pqr_i(el, 1, -1), leaves[i].type);
    assert_int_equal(pqr_i(el, 3, -1), leaves[i].rep);
    assert_int_equal(pqr_i(el, 6, -1), leaves[i].conv);
    assert_null(pqr_f(el, 5));
  }
  /* STRING: LogicalType field 1 (StringType, empty) */
  const pqr_val_t *lt = pqr_f(list_at(fmd, 2, 1), 10);
  assert_non_null(lt);
  assert_int_equal(lt->n, 1);
  assert_int_equal(lt->ids[0], 1);
  assert_int_equal(lt->kids[0].kind, PQR_STRUCT);
  assert_int_equal(lt->kids[0].n, 0);
  /* TIMESTAMP: LogicalType field 8 {isAdjustedToUTC: true, unit: {MILLIS: {}}} */
  lt = pqr_f(list_at(fmd, 2, 5), 10);
  assert_non_null(lt);
  assert_int_equal(lt->n, 1);
  const pqr_val_t *ts = pqr_f(lt, 8);
  assert_non_null(ts);
  const pqr_val_t *utc = pqr_f(ts, 1);
  assert_non_null(utc);
  assert_int_equal(utc->kind, PQR_BOOL);
  assert_true(utc->b);
  const pqr_val_t *unit = pqr_f(ts, 2);
  assert_non_null(unit);
  assert_int_equal(unit->n, 1);
  assert_non_null(pqr_f(unit, 1)); /* MILLIS */
  /* no logical type on the others */
  assert_null(pqr_f(list_at(fmd, 2, 2), 10));
  assert_null(pqr_f(list_at(fmd, 2, 3), 10));
  assert_null(pqr_f(list_at(fmd, 2, 4), 10));
  /* column_orders: TYPE_ORDER (field 1) for each column */
  assert_int_equal(list_len(fmd, 7), 5);
  for (size_t i = 0; i < 5; i++) assert_non_null(pqr_f(list_at(fmd, 7, i), 1));
  /* each chunk: its type, path, codec, value count */
  for (size_t c = 0; c < 5; c++) {
    const pqr_val_t *md = meta(&f, 0, c);
    assert_int_equal(pqr_i(md, 1, -1), leaves[c].type);
    assert_int_equal(list_len(md, 3), 1);
    assert_str(list_at(md, 3, 0), leaves[c].name);
    assert_int_equal(pqr_i(md, 4, -1), 0);
    assert_int_equal(pqr_i(md, 5, -1), 10);
  }
  file_free(&f);
}

static void test_row_groups_and_offsets(void **state) {
  (void)state;
  rn_pq_writer_t *w = new_writer(five, 5, RN_PQ_SNAPPY, 4);
  five_rows(w, 10);
  file_t f;
  finish(w, &f);
  assert_int_equal(pqr_i(&f.fmd, 3, -1), 10);
  assert_int_equal(list_len(&f.fmd, 4), 3);
  static const int64_t rows[] = {4, 4, 2};
  for (size_t g = 0; g < 3; g++) {
    const pqr_val_t *rg = list_at(&f.fmd, 4, g);
    assert_int_equal(pqr_i(rg, 3, -1), rows[g]);
    assert_int_equal(pqr_i(rg, 7, -1), (int64_t)g); /* ordinal */
    int64_t comp = 0;
    for (size_t c = 0; c < 5; c++) {
      const pqr_val_t *md = meta(&f, g, c);
      const pqr_val_t *cc = list_at(rg, 1, c);
      int64_t dpo = pqr_i(md, 9, -1), dict = pqr_i(md, 11, -1);
      if (c == 0) { /* the string column: a dictionary page first */
        assert_true(dict > 0);
        assert_int_equal(pqr_i(cc, 2, -1), dict);
        pqr_val_t h;
        uint8_t *body;
        page_at(&f, md, (size_t)dict, &h, &body);
        assert_int_equal(pqr_i(&h, 1, -1), 2); /* DICTIONARY_PAGE */
        pqr_free(&h);
        free(body);
      } else {
        assert_int_equal(dict, -1);
        assert_int_equal(pqr_i(cc, 2, -1), dpo);
      }
      if (c == 0) assert_int_equal(pqr_i(rg, 5, -1), dict); /* row group file_offset: its first page */
      pqr_val_t h;
      uint8_t *body;
      page_at(&f, md, (size_t)dpo, &h, &body);
      assert_int_equal(pqr_i(&h, 1, -1), 0); /* DATA_PAGE */
      assert_int_equal(pqr_i(pqr_f(&h, 5), 1, -1), rows[g]);
      pqr_free(&h);
      free(body);
      comp += pqr_i(md, 7, 0);
    }
    assert_int_equal(pqr_i(rg, 6, -1), comp);
  }
  file_free(&f);
}

/* ---- statistics -------------------------------------------------------------------- */

static const pqr_val_t *stats(const file_t *f, size_t c) {
  const pqr_val_t *st = pqr_f(meta(f, 0, c), 12);
  assert_non_null(st);
  return st;
}

static void stat_is(const pqr_val_t *st, const void *min, size_t min_len, const void *max, size_t max_len) {
  assert_bin(pqr_f(st, 6), min, min_len);
  assert_bin(pqr_f(st, 5), max, max_len);
}

static void test_statistics(void **state) {
  (void)state;
  static const rn_pq_column_t cols[] = {
      {"i", RN_PQ_INT64, true},  {"d", RN_PQ_DOUBLE, true},    {"nan", RN_PQ_DOUBLE, true},
      {"s", RN_PQ_STRING, true}, {"b", RN_PQ_BOOLEAN, true},   {"t", RN_PQ_TIMESTAMP, true},
      {"z", RN_PQ_DOUBLE, false}, {"bt", RN_PQ_BOOLEAN, false}, {"none", RN_PQ_INT64, true},
  };
  rn_pq_writer_t *w = new_writer(cols, 9, RN_PQ_UNCOMPRESSED, 0);
  const int64_t iv[] = {5, -3, INT64_MAX, 0};
  const double dv[] = {NAN, 2.5, -0.0, 0.0};
  const char *sv[] = {"b", "a", "\xc3\xa4" /* ä: 0xC3 > 'b' unsigned */, ""};
  const int64_t tv[] = {-62135596800000, 0, 253402300799999, 1};
  const double zv[] = {0.0, -1.0, -0.0, -7.5};
  for (size_t r = 0; r < 4; r++) {
    if (r != 3) assert_int_equal(rn_pq_set_int64(w, 0, iv[r]), RN_OK);
    assert_int_equal(rn_pq_set_double(w, 1, dv[r]), RN_OK);
    if (r < 2) assert_int_equal(rn_pq_set_double(w, 2, NAN), RN_OK);
    assert_int_equal(rn_pq_set_string(w, 3, sv[r], strlen(sv[r])), RN_OK);
    if (r) assert_int_equal(rn_pq_set_bool(w, 4, r == 2), RN_OK);
    assert_int_equal(rn_pq_set_int64(w, 5, tv[r]), RN_OK);
    assert_int_equal(rn_pq_set_double(w, 6, zv[r]), RN_OK);
    assert_int_equal(rn_pq_set_bool(w, 7, true), RN_OK);
    assert_int_equal(rn_pq_end_row(w), RN_OK);
  }
  file_t f;
  finish(w, &f);
  uint8_t a[8], b[8];
  /* INT64: signed order, null_count */
  le64(a, (uint64_t)-3);
  le64(b, (uint64_t)INT64_MAX);
  stat_is(stats(&f, 0), a, 8, b, 8);
  assert_int_equal(pqr_i(stats(&f, 0), 3, -1), 1);
  /* DOUBLE: NaN ignored; the zero min as -0.0; nan_count */
  double d;
  uint64_t u;
  d = -0.0;
  memcpy(&u, &d, 8);
  le64(a, u);
  d = 2.5;
  memcpy(&u, &d, 8);
  le64(b, u);
  stat_is(stats(&f, 1), a, 8, b, 8);
  assert_int_equal(pqr_i(stats(&f, 1), 9, -1), 1);
  assert_int_equal(pqr_i(stats(&f, 1), 3, -1), 0);
  /* only NaNs: no min/max at all */
  assert_null(pqr_f(stats(&f, 2), 5));
  assert_null(pqr_f(stats(&f, 2), 6));
  assert_int_equal(pqr_i(stats(&f, 2), 9, -1), 2);
  assert_int_equal(pqr_i(stats(&f, 2), 3, -1), 2);
  /* STRING: unsigned byte order, no length prefix */
  stat_is(stats(&f, 3), "", 0, "\xc3\xa4", 2);
  /* BOOLEAN: false < true, one byte each */
  stat_is(stats(&f, 4), (const uint8_t[]){0}, 1, (const uint8_t[]){1}, 1);
  assert_int_equal(pqr_i(stats(&f, 4), 3, -1), 1);
  stat_is(stats(&f, 7), (const uint8_t[]){1}, 1, (const uint8_t[]){1}, 1);
  /* TIMESTAMP: signed int64 */
  le64(a, (uint64_t)-62135596800000);
  le64(b, (uint64_t)253402300799999);
  stat_is(stats(&f, 5), a, 8, b, 8);
  /* a zero max written as +0.0 (the values had -0.0 and 0.0) */
  d = -7.5;
  memcpy(&u, &d, 8);
  le64(a, u);
  stat_is(stats(&f, 6), a, 8, (const uint8_t[8]){0}, 8);
  /* all null: only null_count */
  assert_int_equal(pqr_i(stats(&f, 8), 3, -1), 4);
  assert_null(pqr_f(stats(&f, 8), 5));
  file_free(&f);
}

/* ---- page contents ----------------------------------------------------------------- */

static void test_dictionary_page(void **state) {
  (void)state;
  static const rn_pq_column_t cols[] = {{"s", RN_PQ_STRING, true}};
  rn_pq_writer_t *w = new_writer(cols, 1, RN_PQ_UNCOMPRESSED, 0);
  const char *v[] = {"x", "y", "x", "x", NULL, "z"};
  for (size_t r = 0; r < 6; r++) {
    if (v[r]) assert_int_equal(rn_pq_set_string(w, 0, v[r], 1), RN_OK);
    assert_int_equal(rn_pq_end_row(w), RN_OK);
  }
  file_t f;
  finish(w, &f);
  const pqr_val_t *md = meta(&f, 0, 0);
  /* encodings: PLAIN (the dictionary page), RLE (levels), RLE_DICTIONARY */
  assert_int_equal(list_len(md, 2), 3);
  assert_int_equal(list_at(md, 2, 0)->i, 0);
  assert_int_equal(list_at(md, 2, 1)->i, 3);
  assert_int_equal(list_at(md, 2, 2)->i, 8);
  pqr_val_t h;
  uint8_t *body;
  size_t n = page_at(&f, md, (size_t)pqr_i(md, 11, -1), &h, &body);
  const pqr_val_t *dph = pqr_f(&h, 7);
  assert_int_equal(pqr_i(dph, 1, -1), 3);
  assert_int_equal(pqr_i(dph, 2, -1), 0); /* PLAIN */
  static const uint8_t dict[] = {1, 0, 0, 0, 'x', 1, 0, 0, 0, 'y', 1, 0, 0, 0, 'z'};
  assert_int_equal(n, sizeof dict);
  assert_memory_equal(body, dict, sizeof dict);
  pqr_free(&h);
  free(body);
  /* the data page: levels 1,1,1,1,0,1 (length-prefixed hybrid), bit width
   * 2, indices 0,1,0,0,2 */
  n = page_at(&f, md, (size_t)pqr_i(md, 9, -1), &h, &body);
  dph = pqr_f(&h, 5);
  assert_int_equal(pqr_i(dph, 1, -1), 6);
  assert_int_equal(pqr_i(dph, 2, -1), 8); /* RLE_DICTIONARY */
  assert_int_equal(pqr_i(dph, 3, -1), 3); /* RLE levels */
  static const uint8_t page[] = {2, 0, 0, 0, 0x03, 0x2F, 0x02, 0x03, 0x04, 0x02};
  assert_int_equal(n, sizeof page);
  assert_memory_equal(body, page, sizeof page);
  pqr_free(&h);
  free(body);
  file_free(&f);
}

static void test_plain_pages(void **state) {
  (void)state;
  static const rn_pq_column_t cols[] = {{"i", RN_PQ_INT64, false}, {"b", RN_PQ_BOOLEAN, false},
                                        {"d", RN_PQ_DOUBLE, true}};
  rn_pq_writer_t *w = new_writer(cols, 3, RN_PQ_UNCOMPRESSED, 0);
  const bool bv[] = {1, 0, 1, 1, 0, 0, 0, 0, 1};
  for (size_t r = 0; r < 9; r++) {
    assert_int_equal(rn_pq_set_int64(w, 0, r == 0 ? 1 : r == 1 ? -1 : (int64_t)r), RN_OK);
    assert_int_equal(rn_pq_set_bool(w, 1, bv[r]), RN_OK);
    if (r == 4) assert_int_equal(rn_pq_set_double(w, 2, 1.5), RN_OK);
    assert_int_equal(rn_pq_end_row(w), RN_OK);
  }
  file_t f;
  finish(w, &f);
  pqr_val_t h;
  uint8_t *body;
  /* REQUIRED INT64: no levels, 8 bytes little-endian each */
  const pqr_val_t *md = meta(&f, 0, 0);
  assert_int_equal(list_len(md, 2), 1); /* PLAIN only */
  size_t n = page_at(&f, md, (size_t)pqr_i(md, 9, -1), &h, &body);
  assert_int_equal(n, 72);
  assert_memory_equal(body, ((const uint8_t[]){1, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), 16);
  assert_int_equal(pqr_i(pqr_f(&h, 5), 2, -1), 0);
  pqr_free(&h);
  free(body);
  /* BOOLEAN: bit-packed, LSB first */
  md = meta(&f, 0, 1);
  n = page_at(&f, md, (size_t)pqr_i(md, 9, -1), &h, &body);
  assert_int_equal(n, 2);
  assert_memory_equal(body, ((const uint8_t[]){0x0D, 0x01}), 2);
  pqr_free(&h);
  free(body);
  /* OPTIONAL DOUBLE, one value in nine: levels as a padded group, one double */
  md = meta(&f, 0, 2);
  n = page_at(&f, md, (size_t)pqr_i(md, 9, -1), &h, &body);
  uint8_t want[4 + 3 + 8] = {3, 0, 0, 0, 0x05, 0x10, 0x00};
  uint64_t u;
  double d = 1.5;
  memcpy(&u, &d, 8);
  le64(want + 7, u);
  /* levels 0,0,0,0,1,0,0,0,0: two groups -> header (2 << 1 | 1), bytes 0x10 0x00;
   * the decoder must agree whatever the encoder chose */
  uint32_t lv[9];
  size_t used;
  uint32_t len = (uint32_t)body[0] | (uint32_t)body[1] << 8;
  assert_int_equal(pqr_rle_decode(body + 4, len, 1, lv, 9, &used), RN_OK);
  for (size_t i = 0; i < 9; i++) assert_int_equal(lv[i], i == 4);
  assert_int_equal(n, 4 + len + 8);
  assert_memory_equal(body + 4 + len, want + 7, 8);
  assert_int_equal(len, 3);
  assert_memory_equal(body, want, 7);
  pqr_free(&h);
  free(body);
  file_free(&f);
}

static void test_codecs(void **state) {
  (void)state;
  static const rn_pq_codec_t codecs[] = {RN_PQ_UNCOMPRESSED, RN_PQ_SNAPPY, RN_PQ_GZIP, RN_PQ_ZSTD};
  static const int ids[] = {0, 1, 2, 6};
  uint8_t *first_dict = NULL;
  size_t first_len = 0;
  for (size_t k = 0; k < 4; k++) {
    rn_pq_writer_t *w = new_writer(five, 5, codecs[k], 0);
    five_rows(w, 500);
    file_t f;
    finish(w, &f); /* every page decompresses to its uncompressed_page_size */
    for (size_t c = 0; c < 5; c++) assert_int_equal(pqr_i(meta(&f, 0, c), 4, -1), ids[k]);
    const pqr_val_t *md = meta(&f, 0, 0);
    pqr_val_t h;
    uint8_t *body;
    size_t n = page_at(&f, md, (size_t)pqr_i(md, 11, -1), &h, &body);
    if (k == 0) {
      first_dict = body;
      first_len = n;
    } else {
      assert_int_equal(n, first_len);
      assert_memory_equal(body, first_dict, n);
      assert_true(pqr_i(&h, 3, -1) != pqr_i(&h, 2, -1) || n < 16); /* compressed bytes differ */
      free(body);
    }
    pqr_free(&h);
    file_free(&f);
  }
  free(first_dict);
}

static void test_pages_split(void **state) {
  (void)state;
  static const rn_pq_column_t cols[] = {{"i", RN_PQ_INT64, true}, {"s", RN_PQ_STRING, false}};
  rn_pq_opts_t o;
  rn_pq_opts_default(&o);
  o.page_bytes = 100;
  rn_pq_writer_t *w;
  assert_int_equal(rn_pq_writer_new(cols, 2, &o, &w), RN_OK);
  for (int r = 0; r < 1000; r++) {
    if (r % 3) assert_int_equal(rn_pq_set_int64(w, 0, r), RN_OK);
    char s[16];
    int n = snprintf(s, sizeof s, "k%d", r % 50);
    assert_int_equal(rn_pq_set_string(w, 1, s, (size_t)n), RN_OK);
    assert_int_equal(rn_pq_end_row(w), RN_OK);
  }
  file_t f;
  finish(w, &f); /* walks every page; counts add up */
  /* ~8 bytes a value, 100-byte pages: many data pages */
  const pqr_val_t *es = pqr_f(meta(&f, 0, 0), 13);
  assert_non_null(es);
  assert_true(pqr_i(&es->kids[0], 3, 0) > 40);
  file_free(&f);
}

static void test_dictionary_fallback(void **state) {
  (void)state;
  static const rn_pq_column_t cols[] = {{"s", RN_PQ_STRING, false}};
  rn_pq_writer_t *w = new_writer(cols, 1, RN_PQ_ZSTD, 0);
  char s[1024];
  for (int r = 0; r < 1500; r++) { /* 1500 distinct values of ~1 KiB: past RN_PQ_DICT_LIMIT */
    memset(s, 'a' + r % 26, sizeof s);
    int n = snprintf(s, 16, "%d", r);
    s[n] = '-';
    assert_int_equal(rn_pq_set_string(w, 0, s, sizeof s), RN_OK);
    assert_int_equal(rn_pq_end_row(w), RN_OK);
  }
  file_t f;
  finish(w, &f);
  const pqr_val_t *md = meta(&f, 0, 0);
  assert_int_equal(pqr_i(md, 11, -1), -1); /* no dictionary page */
  for (size_t i = 0; i < list_len(md, 2); i++) assert_int_not_equal(list_at(md, 2, i)->i, 8);
  pqr_val_t h;
  uint8_t *body;
  page_at(&f, md, (size_t)pqr_i(md, 9, -1), &h, &body);
  assert_int_equal(pqr_i(pqr_f(&h, 5), 2, -1), 0); /* PLAIN */
  /* the first value, length-prefixed */
  assert_memory_equal(body, ((const uint8_t[]){0, 4, 0, 0, '0', '-', 'a'}), 7);
  pqr_free(&h);
  free(body);
  file_free(&f);
}

static void test_empty_file(void **state) {
  (void)state;
  rn_pq_writer_t *w = new_writer(five, 5, RN_PQ_SNAPPY, 0);
  /* an unfinished row is not a row */
  assert_int_equal(rn_pq_set_int64(w, 1, 7), RN_OK);
  file_t f;
  finish(w, &f);
  assert_int_equal(pqr_i(&f.fmd, 3, -1), 0);
  assert_int_equal(list_len(&f.fmd, 4), 0);
  assert_int_equal(list_len(&f.fmd, 2), 6);
  file_free(&f);
}

static void test_row_group_bytes(void **state) {
  (void)state;
  static const rn_pq_column_t cols[] = {{"i", RN_PQ_INT64, false}};
  rn_pq_opts_t o;
  rn_pq_opts_default(&o);
  o.row_group_bytes = 800; /* 100 values of 8 bytes */
  rn_pq_writer_t *w;
  assert_int_equal(rn_pq_writer_new(cols, 1, &o, &w), RN_OK);
  for (int r = 0; r < 1000; r++) {
    assert_int_equal(rn_pq_set_int64(w, 0, r), RN_OK);
    assert_int_equal(rn_pq_end_row(w), RN_OK);
  }
  assert_true(rn_pq_bytes(w) > 1000); /* encoded groups + the open one */
  file_t f;
  finish(w, &f);
  size_t groups = list_len(&f.fmd, 4);
  assert_true(groups >= 9 && groups <= 10);
  file_free(&f);
}

/* ---- errors ------------------------------------------------------------------------ */

static void test_errors(void **state) {
  (void)state;
  rn_pq_writer_t *w = NULL;
  static const rn_pq_column_t dup[] = {{"a", RN_PQ_INT64, false}, {"a", RN_PQ_STRING, true}};
  assert_int_equal(rn_pq_writer_new(dup, 2, NULL, &w), RN_EINVAL);
  assert_null(w);
  assert_int_equal(rn_pq_writer_new(dup, 0, NULL, &w), RN_EINVAL);
  static const rn_pq_column_t noname[] = {{NULL, RN_PQ_INT64, false}};
  assert_int_equal(rn_pq_writer_new(noname, 1, NULL, &w), RN_EINVAL);
  static const rn_pq_column_t badname[] = {{"\xff", RN_PQ_INT64, false}};
  assert_int_equal(rn_pq_writer_new(badname, 1, NULL, &w), RN_EINVAL);
  static const rn_pq_column_t badtype[] = {{"x", (rn_pq_type_t)99, false}};
  assert_int_equal(rn_pq_writer_new(badtype, 1, NULL, &w), RN_EINVAL);
  rn_pq_opts_t o;
  rn_pq_opts_default(&o);
  o.codec = (rn_pq_codec_t)9;
  assert_int_equal(rn_pq_writer_new(five, 5, &o, &w), RN_EINVAL);

  w = new_writer(five, 5, RN_PQ_SNAPPY, 0);
  /* a bad column index, a type mismatch, null in a REQUIRED column */
  assert_int_equal(rn_pq_set_int64(w, 5, 1), RN_EINVAL);
  assert_int_equal(rn_pq_set_null(w, 99), RN_EINVAL);
  assert_int_equal(rn_pq_set_string(w, 1, "x", 1), RN_EINVAL);
  assert_int_equal(rn_pq_set_double(w, 0, 1), RN_EINVAL);
  assert_int_equal(rn_pq_set_bool(w, 4, true), RN_EINVAL);
  assert_int_equal(rn_pq_set_int64(w, 2, 1), RN_EINVAL);
  assert_int_equal(rn_pq_set_null(w, 1), RN_EINVAL);
  assert_int_equal(rn_pq_set_string(w, 0, NULL, 3), RN_EINVAL);
  /* bad UTF-8: lone continuation, overlong, surrogate, above U+10FFFF, truncated */
  static const char *bad[] = {"\x80", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe6\x97", "a\xffz"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(rn_pq_set_string(w, 0, bad[i], strlen(bad[i])), RN_EINVAL);
  assert_int_equal(rn_pq_set_string(w, 0, "\xf0\x9f\xa6\x86 \xe6\x97\xa5", 8), RN_OK);
  assert_int_equal(rn_pq_set_string(w, 0, NULL, 0), RN_OK);
  /* a REQUIRED column (i, b) unset: the row is discarded, the writer usable */
  assert_int_equal(rn_pq_set_int64(w, 1, 1), RN_OK);
  assert_int_equal(rn_pq_end_row(w), RN_EINVAL);
  assert_int_equal(rn_pq_rows(w), 0);
  assert_int_equal(rn_pq_set_bool(w, 3, true), RN_OK); /* i was discarded with the row */
  assert_int_equal(rn_pq_end_row(w), RN_EINVAL);
  assert_int_equal(rn_pq_set_int64(w, 1, 1), RN_OK);
  assert_int_equal(rn_pq_set_bool(w, 3, true), RN_OK);
  assert_int_equal(rn_pq_set_null(w, 0), RN_OK);
  assert_int_equal(rn_pq_end_row(w), RN_OK);
  assert_int_equal(rn_pq_rows(w), 1);
  /* abort_row discards what was set */
  assert_int_equal(rn_pq_set_int64(w, 1, 2), RN_OK);
  rn_pq_abort_row(w);
  assert_int_equal(rn_pq_set_bool(w, 3, true), RN_OK);
  assert_int_equal(rn_pq_end_row(w), RN_EINVAL);
  assert_int_equal(rn_pq_add_metadata(w, "\xff", "v"), RN_EINVAL);
  uint8_t *buf;
  size_t len;
  assert_int_equal(rn_pq_finish(w, &buf, &len), RN_OK);
  /* spent */
  assert_int_equal(rn_pq_set_int64(w, 1, 1), RN_EINVAL);
  assert_int_equal(rn_pq_end_row(w), RN_EINVAL);
  uint8_t *buf2;
  size_t len2;
  assert_int_equal(rn_pq_finish(w, &buf2, &len2), RN_EINVAL);
  assert_null(buf2);
  rn_pq_writer_free(w);
  rn_pq_writer_free(NULL);
  const char *why;
  assert_int_equal(pqr_check_file(buf, len, &why), RN_OK);
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rle_hybrid_known),
      cmocka_unit_test(test_rle_hybrid_roundtrip),
      cmocka_unit_test(test_footer_schema),
      cmocka_unit_test(test_row_groups_and_offsets),
      cmocka_unit_test(test_statistics),
      cmocka_unit_test(test_dictionary_page),
      cmocka_unit_test(test_plain_pages),
      cmocka_unit_test(test_codecs),
      cmocka_unit_test(test_pages_split),
      cmocka_unit_test(test_dictionary_fallback),
      cmocka_unit_test(test_empty_file),
      cmocka_unit_test(test_row_group_bytes),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
