/*
 * fuzz_parquet.c — libFuzzer target for the Parquet writer
 * (broker/sinks/parquet.c): the input picks a schema (1..6 columns of any
 * type, REQUIRED or OPTIONAL), the codec, row group and page sizes, then a
 * sequence of operations (set a column to a value taken from the input, set
 * null, end the row, abort it). Checked promises (a violation aborts):
 *   - no crash, no sanitizer report, whatever the calls;
 *   - the setters' and rn_pq_end_row's results follow the API: a type
 *     mismatch or null in a REQUIRED column is RN_EINVAL; end_row is
 *     RN_EINVAL exactly when a REQUIRED column was not set, else RN_OK;
 *     rn_pq_rows counts the committed rows; a string is refused only as
 *     RN_EINVAL;
 *   - the finished file passes the tests' own reader
 *     (tests/unit/broker/sinks/pq_read.c, pqr_check_file: footer, page
 *     headers, offsets, sizes, value counts, every page decompressing), its
 *     num_rows is the committed rows and every column's null_count
 *     statistics add up to the nulls committed in it;
 *   - the RLE/bit-packed hybrid encoder round-trips the input's last bytes
 *     through the reader's decoder.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "parquet.h"
#include "pq_read.h"
#include "thrift_compact.h"

typedef struct in {
  const uint8_t *p;
  size_t n, at;
} in_t;

static uint8_t byte(in_t *in) { return in->at < in->n ? in->p[in->at++] : 0; }

static uint64_t u64(in_t *in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)byte(in) << (8 * i);
  return v;
}

enum { UNSET, NUL, VAL };

static void check_rle(const uint8_t *data, size_t size) {
  if (size < 2) return;
  int bw = data[0] % 33;
  size_t n = (size - 1) / 4;
  if (n > 4096) n = 4096;
  uint32_t *v = malloc((n ? n : 1) * sizeof *v);
  CHECK(v);
  uint32_t mask = bw == 32 ? UINT32_MAX : (1u << bw) - 1;
  for (size_t i = 0; i < n; i++) {
    memcpy(&v[i], data + 1 + 4 * i, 4);
    v[i] &= mask;
    if (data[1 + 4 * i] & 0x80) v[i] = i ? v[i - 1] : 0; /* runs */
  }
  rn__buf_t b = {0};
  CHECK(rn__pq_rle_hybrid(&b, v, n, bw));
  uint32_t *back = malloc((n ? n : 1) * sizeof *back);
  CHECK(back);
  size_t used = 0;
  CHECK(pqr_rle_decode(b.p, b.len, bw, back, n, &used) == RN_OK);
  CHECK(used == b.len);
  CHECK(n == 0 || memcmp(back, v, n * sizeof *v) == 0);
  free(back);
  free(v);
  rn__buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  in_t in = {data, size, 0};
  static const char *const names[] = {"c0", "c1", "c2", "c3", "c4", "c5"};
  rn_pq_column_t cols[6];
  size_t ncols = 1 + byte(&in) % 6;
  for (size_t c = 0; c < ncols; c++) {
    uint8_t b = byte(&in);
    cols[c] = (rn_pq_column_t){names[c], (rn_pq_type_t)(b % 5), (b & 8) != 0};
  }
  rn_pq_opts_t o;
  rn_pq_opts_default(&o);
  o.codec = (rn_pq_codec_t)(byte(&in) % 4);
  o.row_group_rows = byte(&in) % 16;
  o.page_bytes = 1 + (size_t)byte(&in) * 4;
  o.row_group_bytes = 1 + (size_t)byte(&in) * 64;
  rn_pq_writer_t *w;
  CHECK(rn_pq_writer_new(cols, ncols, &o, &w) == RN_OK);

  int staged[6] = {0};
  uint64_t nulls[6] = {0}, rows = 0;
  while (in.at < in.n) {
    uint8_t op = byte(&in);
    size_t c = (size_t)(op >> 3) % ncols;
    rn_err_t err;
    switch (op & 7) {
    case 0: { /* a string */
      size_t len = byte(&in) % 40;
      if (len > in.n - in.at) len = in.n - in.at;
      err = rn_pq_set_string(w, c, len ? (const char *)in.p + in.at : NULL, len);
      in.at += len;
      if (cols[c].type != RN_PQ_STRING) CHECK(err == RN_EINVAL);
      else CHECK(err == RN_OK || err == RN_EINVAL);
      if (!err) staged[c] = VAL;
      break;
    }
    case 1: {
      err = rn_pq_set_int64(w, c, (int64_t)u64(&in));
      CHECK(err == ((cols[c].type == RN_PQ_INT64 || cols[c].type == RN_PQ_TIMESTAMP) ? RN_OK : RN_EINVAL));
      if (!err) staged[c] = VAL;
      break;
    }
    case 2: {
      uint64_t u = u64(&in);
      double d;
      memcpy(&d, &u, 8);
      err = rn_pq_set_double(w, c, d);
      CHECK(err == (cols[c].type == RN_PQ_DOUBLE ? RN_OK : RN_EINVAL));
      if (!err) staged[c] = VAL;
      break;
    }
    case 3:
      err = rn_pq_set_bool(w, c, byte(&in) & 1);
      CHECK(err == (cols[c].type == RN_PQ_BOOLEAN ? RN_OK : RN_EINVAL));
      if (!err) staged[c] = VAL;
      break;
    case 4:
      err = rn_pq_set_null(w, c);
      CHECK(err == (cols[c].nullable ? RN_OK : RN_EINVAL));
      if (!err) staged[c] = NUL;
      break;
    case 5:
      if (op >> 3 == 0) { /* rarely */
        rn_pq_abort_row(w);
        memset(staged, 0, sizeof staged);
        break;
      }
      /* fall through */
    default: {
      bool complete = true;
      for (size_t k = 0; k < ncols; k++)
        if (!cols[k].nullable && staged[k] != VAL) complete = false;
      err = rn_pq_end_row(w);
      CHECK(err == (complete ? RN_OK : RN_EINVAL));
      if (!err) {
        rows++;
        for (size_t k = 0; k < ncols; k++)
          if (staged[k] != VAL) nulls[k]++;
      }
      memset(staged, 0, sizeof staged);
      CHECK(rn_pq_rows(w) == rows);
      break;
    }
    }
  }

  uint8_t *buf;
  size_t len;
  CHECK(rn_pq_finish(w, &buf, &len) == RN_OK);
  rn_pq_writer_free(w);
  const char *why = "";
  rn_err_t err = pqr_check_file(buf, len, &why);
  if (err) fprintf(stderr, "pqr_check_file: %s\n", why);
  CHECK(err == RN_OK);
  pqr_val_t fmd;
  CHECK(pqr_footer(buf, len, &fmd) == RN_OK);
  CHECK(pqr_i(&fmd, 3, -1) == (int64_t)rows);
  const pqr_val_t *rgs = pqr_f(&fmd, 4);
  CHECK(rgs && rgs->kind == PQR_LIST);
  for (size_t c = 0; c < ncols; c++) {
    uint64_t seen = 0;
    for (size_t g = 0; g < rgs->n; g++) {
      const pqr_val_t *md = pqr_f(&pqr_f(&rgs->kids[g], 1)->kids[c], 3);
      seen += (uint64_t)pqr_i(pqr_f(md, 12), 3, -1);
    }
    CHECK(seen == nulls[c]);
  }
  pqr_free(&fmd);
  free(buf);
  check_rle(data, size);
  return 0;
}
