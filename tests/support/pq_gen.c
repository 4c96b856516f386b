/*
 * tests/support/pq_gen.c — writes the Parquet files the conformance readers
 * check (tests/conformance/sink/check_parquet.py), each with the rows it
 * wrote beside it as JSON.
 *
 *   pq_gen DIR      writes DIR/<case>.parquet and DIR/<case>.expected.json
 *
 * The JSON is {"row_groups": N, "row_group_rows": R, "columns": [{"name", "type", "nullable"}],
 * "rows": [[...], ...]} with values in the readers' common form: strings as
 * strings, INT64 and TIMESTAMP (ms since the epoch) as decimal strings,
 * doubles as numbers (%.17g, exact) or "NaN" / "Infinity" / "-Infinity" /
 * "-0", booleans, null. N is what the case asked for (row_group_rows), not
 * what the writer reports. Values come from a fixed-seed generator: the same
 * files every run.
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parquet.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void die(const char *what, rn_err_t err) {
  fprintf(stderr, "pq_gen: %s: %s\n", what, rn_strerror(err));
  exit(1);
}

static void json_str(FILE *f, const char *s, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static void json_double(FILE *f, double d) {
  if (isnan(d)) fputs("\"NaN\"", f);
  else if (isinf(d)) fputs(d > 0 ? "\"Infinity\"" : "\"-Infinity\"", f);
  else if (d == 0 && signbit(d)) fputs("\"-0\"", f);
  else fprintf(f, "%.17g", d);
}

static const char *type_name(rn_pq_type_t t) {
  switch (t) {
  case RN_PQ_STRING: return "STRING";
  case RN_PQ_INT64: return "INT64";
  case RN_PQ_DOUBLE: return "DOUBLE";
  case RN_PQ_BOOLEAN: return "BOOLEAN";
  case RN_PQ_TIMESTAMP: return "TIMESTAMP";
  }
  return "?";
}

static const char *const strings[] = {
    "", "a", "runnel", "héllo wörld", "日本語のテキスト", "🦆🦆 duck", "Ελληνικά", "tab\there \"quoted\" \\ back",
    "line\nbreak", "\xc3\xbf\xc3\xbf", "zzz", "\xf4\x8f\xbf\xbf" /* U+10FFFF */, "NUL-free ascii 0123456789",
};
#define NSTRINGS (sizeof strings / sizeof strings[0])

static const double doubles[] = {
    0.0, -0.0, 1.0, -1.0, 3.141592653589793, DBL_MAX, -DBL_MAX, DBL_MIN, 4.9406564584124654e-324,
    -4.9406564584124654e-324, 1e308, -1e-308, 0.1, 123456789.125,
};
#define NDOUBLES (sizeof doubles / sizeof doubles[0])

static const int64_t ints[] = {0, 1, -1, INT64_MIN, INT64_MAX, INT64_MIN + 1, INT64_MAX - 1, 4294967296, -4294967297};
#define NINTS (sizeof ints / sizeof ints[0])

/* ms since the epoch within years 0001..9999 (what every reader's date type holds) */
#define TS_MIN INT64_C(-62135596800000)
#define TS_MAX INT64_C(253402300799999)
static const int64_t stamps[] = {0, -1, 1, TS_MIN, TS_MAX, INT64_C(1764720000000) /* 2025-12-03 */,
                                 INT64_C(951782400000) /* 2000-02-29 */};
#define NSTAMPS (sizeof stamps / sizeof stamps[0])

typedef struct gcase {
  const char *name;
  rn_pq_codec_t codec;
  size_t rows, row_group_rows, page_bytes;
  int null_every; /* 0: no nulls; 1: all null */
  int shape;      /* 0: every type; 1: big unique strings (PLAIN fallback) */
} gcase_t;

static const rn_pq_column_t all_cols[] = {
    {"s", RN_PQ_STRING, true},     {"s_req", RN_PQ_STRING, false}, {"i", RN_PQ_INT64, true},
    {"i_req", RN_PQ_INT64, false}, {"d", RN_PQ_DOUBLE, true},      {"d_req", RN_PQ_DOUBLE, false},
    {"b", RN_PQ_BOOLEAN, true},    {"b_req", RN_PQ_BOOLEAN, false}, {"t", RN_PQ_TIMESTAMP, true},
    {"t_req", RN_PQ_TIMESTAMP, false},
};
static const rn_pq_column_t big_cols[] = {{"id", RN_PQ_INT64, false}, {"blob", RN_PQ_STRING, true}};

static void gen(const char *dir, const gcase_t *gc) {
  const rn_pq_column_t *cols = gc->shape ? big_cols : all_cols;
  size_t ncols = gc->shape ? 2 : sizeof all_cols / sizeof all_cols[0];
  rn_pq_opts_t o;
  rn_pq_opts_default(&o);
  o.codec = gc->codec;
  o.row_group_rows = gc->row_group_rows;
  if (gc->page_bytes) o.page_bytes = gc->page_bytes;
  rn_pq_writer_t *w;
  rn_err_t err = rn_pq_writer_new(cols, ncols, &o, &w);
  if (err) die("rn_pq_writer_new", err);

  char path[4096];
  snprintf(path, sizeof path, "%s/%s.expected.json", dir, gc->name);
  FILE *ej = fopen(path, "w");
  if (!ej) die(path, -errno);
  size_t groups = gc->rows == 0 ? 0 : gc->row_group_rows ? (gc->rows + gc->row_group_rows - 1) / gc->row_group_rows : 1;
  fprintf(ej, "{\"row_groups\": %zu, \"row_group_rows\": %zu, \"columns\": [", groups, gc->row_group_rows);
  for (size_t c = 0; c < ncols; c++)
    fprintf(ej, "%s{\"name\": \"%s\", \"type\": \"%s\", \"nullable\": %s}", c ? ", " : "", cols[c].name,
            type_name(cols[c].type), cols[c].nullable ? "true" : "false");
  fprintf(ej, "],\n\"rows\": [\n");
  char big[600];
  for (size_t r = 0; r < gc->rows; r++) {
    fprintf(ej, "%s[", r ? ",\n" : "");
    for (size_t c = 0; c < ncols; c++) {
      if (c) fputs(", ", ej);
      uint64_t x = next();
      if (cols[c].nullable && gc->null_every && (gc->null_every == 1 || x % (uint64_t)gc->null_every == 0)) {
        /* leave it unset (null) or say so, alternately */
        if (r & 1) {
          err = rn_pq_set_null(w, c);
          if (err) die("set_null", err);
        }
        fputs("null", ej);
        continue;
      }
      x = next();
      switch (cols[c].type) {
      case RN_PQ_STRING: {
        const char *s;
        size_t n;
        if (gc->shape) { /* unique, ~500 bytes: the dictionary passes 1 MiB */
          n = (size_t)snprintf(big, sizeof big, "%zu:", r);
          while (n < 500) big[n++] = (char)('a' + (next() % 26));
          big[n] = 0;
          s = big;
        } else if (x % 7 == 0) { /* a value of its own: makes the dictionary grow */
          n = (size_t)snprintf(big, sizeof big, "row %zu ✓ %" PRIu64, r, next() % 1000000);
          s = big;
        } else {
          s = strings[x % NSTRINGS];
          n = strlen(s);
        }
        err = rn_pq_set_string(w, c, s, n);
        json_str(ej, s, n);
        break;
      }
      case RN_PQ_INT64: {
        int64_t v = x % 3 == 0 ? ints[(x / 3) % NINTS] : (int64_t)next();
        if (gc->shape) v = (int64_t)r;
        err = rn_pq_set_int64(w, c, v);
        fprintf(ej, "\"%" PRId64 "\"", v);
        break;
      }
      case RN_PQ_TIMESTAMP: {
        int64_t v = x % 3 == 0 ? stamps[(x / 3) % NSTAMPS]
                               : TS_MIN + (int64_t)(next() % (uint64_t)(TS_MAX - TS_MIN + 1));
        err = rn_pq_set_int64(w, c, v);
        fprintf(ej, "\"%" PRId64 "\"", v);
        break;
      }
      case RN_PQ_DOUBLE: {
        double v;
        if (x % 11 == 0) v = x % 2 ? INFINITY : -INFINITY;
        else if (x % 13 == 0) v = NAN;
        else if (x % 2) v = doubles[(x / 2) % NDOUBLES];
        else v = ((double)(int64_t)next()) / 3.0e7;
        err = rn_pq_set_double(w, c, v);
        json_double(ej, v);
        break;
      }
      case RN_PQ_BOOLEAN:
        err = rn_pq_set_bool(w, c, x & 1);
        fputs(x & 1 ? "true" : "false", ej);
        break;
      }
      if (err) die("set", err);
    }
    fputc(']', ej);
    err = rn_pq_end_row(w);
    if (err) die("rn_pq_end_row", err);
  }
  fprintf(ej, "\n]}\n");
  if (fclose(ej) != 0) die("fclose", -errno);

  uint8_t *buf;
  size_t len;
  err = rn_pq_finish(w, &buf, &len);
  if (err) die("rn_pq_finish", err);
  rn_pq_writer_free(w);
  snprintf(path, sizeof path, "%s/%s.parquet", dir, gc->name);
  FILE *pf = fopen(path, "wb");
  if (!pf) die(path, -errno);
  if (fwrite(buf, 1, len, pf) != len || fclose(pf) != 0) die(path, RN_EIO);
  free(buf);
  printf("%s\n", path);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: pq_gen DIR\n");
    return 2;
  }
  static const gcase_t cases[] = {
      /* every type, nulls, many row groups and small pages, each codec */
      {"types_none", RN_PQ_UNCOMPRESSED, 1000, 97, 300, 5, 0},
      {"types_snappy", RN_PQ_SNAPPY, 1000, 97, 300, 5, 0},
      {"types_gzip", RN_PQ_GZIP, 1000, 97, 300, 5, 0},
      {"types_zstd", RN_PQ_ZSTD, 1000, 97, 300, 5, 0},
      /* one row group of default-sized pages */
      {"types_one_group", RN_PQ_SNAPPY, 3000, 0, 0, 3, 0},
      /* one row per group */
      {"one_row_groups", RN_PQ_ZSTD, 7, 1, 0, 2, 0},
      /* every nullable column null */
      {"all_null", RN_PQ_GZIP, 50, 20, 0, 1, 0},
      /* zero rows: a valid empty file */
      {"empty", RN_PQ_SNAPPY, 0, 0, 0, 0, 0},
      /* a string dictionary past 1 MiB: PLAIN strings */
      {"plain_fallback", RN_PQ_SNAPPY, 2500, 0, 0, 9, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) gen(argv[1], &cases[i]);
  return 0;
}
