/*
 * broker/sinks/parquet.c — the Parquet writer of parquet.h.
 *
 * Owns: the open row group's raw column values (col_t: definition bytes, a
 * value buffer and, for strings, end offsets), the staged current row
 * (cell_t per column plus its string bytes), the file written so far (out)
 * and each closed row group's footer metadata (rg_meta_t). When a row group
 * closes, every column chunk is encoded at once: statistics, then a
 * dictionary for strings (dropped when its PLAIN size would pass
 * RN_PQ_DICT_LIMIT), then data pages cut at about page_bytes of encoded
 * values, each page body compressed and preceded by its PageHeader. The
 * footer is written by rn_pq_finish from the rg_meta_t list.
 *
 * Invariants: every col_t holds exactly rg_rows definition bytes (1 = value,
 * 0 = null; kept for REQUIRED columns too, all 1) and nvals values; a row is
 * appended to the columns only once it is known to be complete, so a failed
 * rn_pq_end_row leaves the row group as it was. State is an enum: OPEN
 * (accepting rows), FAILED (an encode failed: the file is incomplete, every
 * call returns the error), SPENT (rn_pq_finish ran).
 *
 * Byte order: Parquet is little-endian everywhere; values are written with
 * explicit shifts, never by copying host memory to the file.
 */
#include "parquet.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "thrift_compact.h"

/* parquet.thrift enum values used here */
enum { PQ_BOOLEAN = 0, PQ_INT64 = 2, PQ_DOUBLE = 5, PQ_BYTE_ARRAY = 6 };
enum { PQ_REQUIRED = 0, PQ_OPTIONAL = 1 };
enum { PQ_CT_UTF8 = 0, PQ_CT_TIMESTAMP_MILLIS = 9 };
enum { PQ_ENC_PLAIN = 0, PQ_ENC_RLE = 3, PQ_ENC_RLE_DICTIONARY = 8 };
enum { PQ_PAGE_DATA = 0, PQ_PAGE_DICTIONARY = 2 };

#define DEFAULT_ROW_GROUP_BYTES ((size_t)64 << 20)
#define DEFAULT_PAGE_BYTES ((size_t)1 << 20)
#define DEFAULT_CREATED_BY "runnel version 0.1.0"
/* Rows per data page at most: num_values is an i32. */
#define PAGE_MAX_ROWS ((size_t)1 << 30)

typedef enum wstate { W_OPEN, W_FAILED, W_SPENT } wstate_t;

typedef enum cstate { CELL_UNSET, CELL_NULL, CELL_VALUE } cstate_t;

typedef struct cell {
  cstate_t state;
  union {
    int64_t i;
    double d;
    bool b;
    struct {
      size_t off, len; /* into w->row_str */
    } s;
  } v;
} cell_t;

/* One column of the open row group. */
typedef struct col {
  rn_pq_column_t def; /* name owned (strdup) */
  rn__buf_t defs;     /* one byte per row: 1 value, 0 null */
  rn__buf_t vals;     /* int64/double: 8 bytes LE each; bool: 1 byte each; string: the bytes, back to back */
  rn__buf_t ends;     /* strings: size_t end offset of each value in vals */
  size_t nvals;
} col_t;

/* A column chunk's footer metadata. */
typedef struct chunk_meta {
  int64_t num_values, unc_size, comp_size;
  int64_t data_page_offset, dict_page_offset; /* dict_page_offset -1: none */
  int32_t data_pages;
  bool dict;
  int64_t null_count, nan_count;
  bool has_minmax;
  uint8_t *min, *max; /* PLAIN bytes (no length prefix for strings); malloc'd */
  size_t min_len, max_len;
} chunk_meta_t;

typedef struct rg_meta {
  chunk_meta_t *cols;
  int64_t num_rows, file_offset, unc_size, comp_size;
} rg_meta_t;

typedef struct kv {
  char *key, *value;
} kv_t;

struct rn_pq_writer {
  wstate_t state;
  rn_err_t failed; /* the error of W_FAILED */
  rn_pq_opts_t opts;
  char *created_by;
  size_t ncols;
  col_t *cols;
  cell_t *row;
  rn__buf_t row_str;
  size_t rg_rows;
  uint64_t rg_bits; /* raw PLAIN size of the open row group, in bits */
  uint64_t rows;
  rn__buf_t out;
  rg_meta_t *rgs;
  size_t nrgs, caprgs;
  kv_t *kvs;
  size_t nkvs;
};

/* ---- small helpers ----------------------------------------------------------- */

static uint64_t dbl_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

static void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static int bits_for(uint32_t max) {
  int b = 0;
  while (b < 32 && (max >> b) != 0) b++;
  return b;
}

bool rn__pq_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
      k = 1, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      k = 2, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      k = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false; /* continuation byte, overlong lead C0/C1, or F5..FF */
    }
    if (n - i <= k) return false;
    for (size_t j = 1; j <= k; j++) {
      if ((p[i + j] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (p[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += k + 1;
  }
  return true;
}

/* ---- the RLE / bit-packed hybrid ------------------------------------------- */

static void put_value_bytes(rn__buf_t *out, uint32_t v, int bit_width) {
  for (int i = 0; i < (bit_width + 7) / 8; i++) rn__buf_byte(out, (uint8_t)(v >> (8 * i)));
}

/* Bit-packs groups of 8 values of v[0..n) (n > 0; the last group padded
 * with zeros) as one bit-packed run, LSB first. */
static void bitpacked_run(rn__buf_t *out, const uint32_t *v, size_t n, int bit_width) {
  size_t groups = (n + 7) / 8;
  rn__buf_uvarint(out, (uint64_t)groups << 1 | 1);
  size_t nbytes = groups * (size_t)bit_width; /* 8 values * bw bits = bw bytes per group */
  if (!rn__buf_reserve(out, nbytes)) return;
  uint8_t *p = out->p + out->len;
  memset(p, 0, nbytes);
  size_t bit = 0;
  for (size_t i = 0; i < n; i++) {
    for (int b = 0; b < bit_width; b++, bit++) {
      if ((v[i] >> b) & 1) p[bit / 8] |= (uint8_t)(1u << (bit % 8));
    }
  }
  out->len += nbytes;
}

bool rn__pq_rle_hybrid(rn__buf_t *out, const uint32_t *v, size_t n, int bit_width) {
  assert(bit_width >= 0 && bit_width <= 32);
  size_t i = 0;
  while (i < n) {
    size_t run = 1;
    while (i + run < n && v[i + run] == v[i]) run++;
    if (run >= 8) {
      rn__buf_uvarint(out, (uint64_t)run << 1);
      put_value_bytes(out, v[i], bit_width);
      i += run;
      continue;
    }
    /* Literals up to the next run of 8 equal values that starts on a group
     * boundary of this bit-packed run (a run starting off the boundary
     * gives its head to the group and stays a run if 8 remain), at most 63
     * groups (the run header then fits one byte). */
    size_t j = i;
    while (j < n && j - i < 63 * 8) {
      if ((j - i) % 8 == 0) {
        size_t r = 1;
        while (j + r < n && r < 8 && v[j + r] == v[j]) r++;
        if (r >= 8) break;
      }
      j++;
    }
    if (j > i + 63 * 8) j = i + 63 * 8;
    size_t lit = j - i;
    /* Round up to whole groups, taking values that follow (they are encoded
     * here, not padded) unless the input ends first. */
    size_t full = (lit + 7) / 8 * 8;
    if (i + full <= n) lit = full;
    else lit = n - i;
    bitpacked_run(out, v + i, lit, bit_width);
    i += lit;
  }
  return rn__buf_ok(out);
}

/* ---- options, construction ----------------------------------------------------- */

void rn_pq_opts_default(rn_pq_opts_t *o) {
  o->codec = RN_PQ_SNAPPY;
  o->row_group_bytes = DEFAULT_ROW_GROUP_BYTES;
  o->row_group_rows = 0;
  o->page_bytes = DEFAULT_PAGE_BYTES;
  o->created_by = DEFAULT_CREATED_BY;
}

static void col_free(col_t *c) {
  free((char *)(uintptr_t)c->def.name);
  rn__buf_free(&c->defs);
  rn__buf_free(&c->vals);
  rn__buf_free(&c->ends);
}

static void chunk_meta_free(chunk_meta_t *m) {
  free(m->min);
  free(m->max);
}

void rn_pq_writer_free(rn_pq_writer_t *w) {
  if (!w) return;
  for (size_t i = 0; i < w->ncols; i++) col_free(&w->cols[i]);
  free(w->cols);
  free(w->row);
  rn__buf_free(&w->row_str);
  rn__buf_free(&w->out);
  for (size_t r = 0; r < w->nrgs; r++) {
    for (size_t i = 0; i < w->ncols; i++) chunk_meta_free(&w->rgs[r].cols[i]);
    free(w->rgs[r].cols);
  }
  free(w->rgs);
  for (size_t i = 0; i < w->nkvs; i++) {
    free(w->kvs[i].key);
    free(w->kvs[i].value);
  }
  free(w->kvs);
  free(w->created_by);
  free(w);
}

rn_err_t rn_pq_writer_new(const rn_pq_column_t *cols, size_t ncols, const rn_pq_opts_t *o, rn_pq_writer_t **out) {
  *out = NULL;
  if (!cols || ncols == 0 || ncols > INT32_MAX / 2) return RN_EINVAL;
  rn_pq_opts_t opts;
  rn_pq_opts_default(&opts);
  if (o) opts = *o;
  if (opts.codec < RN_PQ_UNCOMPRESSED || opts.codec > RN_PQ_ZSTD) return RN_EINVAL;
  if (opts.row_group_bytes == 0) opts.row_group_bytes = DEFAULT_ROW_GROUP_BYTES;
  if (opts.page_bytes == 0) opts.page_bytes = DEFAULT_PAGE_BYTES;
  if (!opts.created_by) opts.created_by = DEFAULT_CREATED_BY;
  if (!rn__pq_utf8_valid(opts.created_by, strlen(opts.created_by))) return RN_EINVAL;
  for (size_t i = 0; i < ncols; i++) {
    const char *name = cols[i].name;
    if (!name || !*name || !rn__pq_utf8_valid(name, strlen(name))) return RN_EINVAL;
    if (cols[i].type < RN_PQ_STRING || cols[i].type > RN_PQ_TIMESTAMP) return RN_EINVAL;
    for (size_t j = 0; j < i; j++)
      if (strcmp(cols[j].name, name) == 0) return RN_EINVAL;
  }
  rn_pq_writer_t *w = calloc(1, sizeof *w);
  if (!w) return RN_ENOMEM;
  w->opts = opts;
  w->created_by = dupstr(opts.created_by);
  w->opts.created_by = w->created_by;
  w->cols = calloc(ncols, sizeof *w->cols);
  w->row = calloc(ncols, sizeof *w->row);
  if (!w->created_by || !w->cols || !w->row) {
    rn_pq_writer_free(w);
    return RN_ENOMEM;
  }
  w->ncols = ncols;
  for (size_t i = 0; i < ncols; i++) {
    w->cols[i].def = cols[i];
    w->cols[i].def.name = dupstr(cols[i].name);
    /* value buffers are never NULL, so empty strings point somewhere */
    if (!w->cols[i].def.name || !rn__buf_reserve(&w->cols[i].vals, 64)) {
      rn_pq_writer_free(w);
      return RN_ENOMEM;
    }
  }
  rn__buf_put(&w->out, "PAR1", 4);
  if (!rn__buf_ok(&w->out) || !rn__buf_reserve(&w->row_str, 64)) {
    rn_pq_writer_free(w);
    return RN_ENOMEM;
  }
  *out = w;
  return RN_OK;
}

/* ---- the current row ----------------------------------------------------------- */

static rn_err_t usable(const rn_pq_writer_t *w) {
  if (!w) return RN_EINVAL;
  if (w->state == W_FAILED) return w->failed;
  if (w->state == W_SPENT) return RN_EINVAL;
  return RN_OK;
}

static rn_err_t cell_for(rn_pq_writer_t *w, size_t col, bool (*ok)(rn_pq_type_t), cell_t **out) {
  rn_err_t err = usable(w);
  if (err) return err;
  if (col >= w->ncols || (ok && !ok(w->cols[col].def.type))) return RN_EINVAL;
  *out = &w->row[col];
  return RN_OK;
}

static bool is_string(rn_pq_type_t t) { return t == RN_PQ_STRING; }
static bool is_int64(rn_pq_type_t t) { return t == RN_PQ_INT64 || t == RN_PQ_TIMESTAMP; }
static bool is_double(rn_pq_type_t t) { return t == RN_PQ_DOUBLE; }
static bool is_bool(rn_pq_type_t t) { return t == RN_PQ_BOOLEAN; }

rn_err_t rn_pq_set_null(rn_pq_writer_t *w, size_t col) {
  cell_t *c;
  rn_err_t err = cell_for(w, col, NULL, &c);
  if (err) return err;
  if (!w->cols[col].def.nullable) return RN_EINVAL;
  c->state = CELL_NULL;
  return RN_OK;
}

rn_err_t rn_pq_set_string(rn_pq_writer_t *w, size_t col, const char *s, size_t len) {
  cell_t *c;
  rn_err_t err = cell_for(w, col, is_string, &c);
  if (err) return err;
  if (!s && len) return RN_EINVAL;
  if (!rn__pq_utf8_valid(s, len)) return RN_EINVAL;
  size_t off = w->row_str.len;
  rn__buf_put(&w->row_str, s, len);
  if (!rn__buf_ok(&w->row_str)) {
    w->row_str.oom = false; /* the row buffer is scratch: only this value is lost */
    return RN_ENOMEM;
  }
  c->state = CELL_VALUE;
  c->v.s.off = off;
  c->v.s.len = len;
  return RN_OK;
}

rn_err_t rn_pq_set_int64(rn_pq_writer_t *w, size_t col, int64_t v) {
  cell_t *c;
  rn_err_t err = cell_for(w, col, is_int64, &c);
  if (err) return err;
  c->state = CELL_VALUE;
  c->v.i = v;
  return RN_OK;
}

rn_err_t rn_pq_set_double(rn_pq_writer_t *w, size_t col, double v) {
  cell_t *c;
  rn_err_t err = cell_for(w, col, is_double, &c);
  if (err) return err;
  c->state = CELL_VALUE;
  c->v.d = v;
  return RN_OK;
}

rn_err_t rn_pq_set_bool(rn_pq_writer_t *w, size_t col, bool v) {
  cell_t *c;
  rn_err_t err = cell_for(w, col, is_bool, &c);
  if (err) return err;
  c->state = CELL_VALUE;
  c->v.b = v;
  return RN_OK;
}

void rn_pq_abort_row(rn_pq_writer_t *w) {
  if (!w) return;
  memset(w->row, 0, w->ncols * sizeof *w->row);
  w->row_str.len = 0;
}

uint64_t rn_pq_rows(const rn_pq_writer_t *w) { return w ? w->rows : 0; }

uint64_t rn_pq_bytes(const rn_pq_writer_t *w) { return w ? w->out.len + (w->rg_bits + 7) / 8 : 0; }

static rn_err_t fail(rn_pq_writer_t *w, rn_err_t err) {
  w->state = W_FAILED;
  w->failed = err;
  return err;
}

static rn_err_t flush_row_group(rn_pq_writer_t *w);

/* Raw PLAIN size of one value, in bits (the row group and page budgets). */
static uint64_t value_bits(const col_t *c, size_t len) {
  switch (c->def.type) {
  case RN_PQ_BOOLEAN: return 1;
  case RN_PQ_STRING: return (uint64_t)(4 + len) * 8;
  default: return 64;
  }
}

rn_err_t rn_pq_end_row(rn_pq_writer_t *w) {
  rn_err_t err = usable(w);
  if (err) return err;
  for (size_t i = 0; i < w->ncols; i++) {
    if (w->row[i].state != CELL_VALUE && !w->cols[i].def.nullable) {
      rn_pq_abort_row(w);
      return RN_EINVAL;
    }
  }
  /* Reserve everything first, so a failed allocation leaves the columns at
   * the previous row (all or nothing). */
  for (size_t i = 0; i < w->ncols; i++) {
    col_t *c = &w->cols[i];
    cell_t *cell = &w->row[i];
    bool ok = rn__buf_reserve(&c->defs, 1);
    if (cell->state == CELL_VALUE) {
      size_t n = c->def.type == RN_PQ_STRING ? cell->v.s.len : c->def.type == RN_PQ_BOOLEAN ? 1 : 8;
      ok = ok && rn__buf_reserve(&c->vals, n);
      if (c->def.type == RN_PQ_STRING) ok = ok && rn__buf_reserve(&c->ends, sizeof(size_t));
    }
    if (!ok) return fail(w, RN_ENOMEM);
  }
  uint64_t bits = 0;
  for (size_t i = 0; i < w->ncols; i++) {
    col_t *c = &w->cols[i];
    cell_t *cell = &w->row[i];
    bool value = cell->state == CELL_VALUE;
    rn__buf_byte(&c->defs, value ? 1 : 0);
    if (c->def.nullable) bits += 1;
    if (!value) continue;
    uint8_t b8[8];
    switch (c->def.type) {
    case RN_PQ_STRING:
      rn__buf_put(&c->vals, w->row_str.p + cell->v.s.off, cell->v.s.len);
      rn__buf_put(&c->ends, &c->vals.len, sizeof(size_t));
      break;
    case RN_PQ_BOOLEAN: rn__buf_byte(&c->vals, cell->v.b ? 1 : 0); break;
    case RN_PQ_DOUBLE:
      put_le64(b8, dbl_bits(cell->v.d));
      rn__buf_put(&c->vals, b8, 8);
      break;
    default:
      put_le64(b8, (uint64_t)cell->v.i);
      rn__buf_put(&c->vals, b8, 8);
      break;
    }
    c->nvals++;
    bits += value_bits(c, c->def.type == RN_PQ_STRING ? cell->v.s.len : 0);
  }
  rn_pq_abort_row(w);
  w->rg_rows++;
  w->rows++;
  w->rg_bits += bits;
  if ((w->opts.row_group_rows && w->rg_rows >= w->opts.row_group_rows) ||
      w->rg_bits / 8 > w->opts.row_group_bytes) {
    err = flush_row_group(w);
    if (err) return fail(w, err);
  }
  return RN_OK;
}

rn_err_t rn_pq_add_metadata(rn_pq_writer_t *w, const char *key, const char *value) {
  rn_err_t err = usable(w);
  if (err) return err;
  if (!key || !rn__pq_utf8_valid(key, strlen(key)) || (value && !rn__pq_utf8_valid(value, strlen(value))))
    return RN_EINVAL;
  kv_t *kvs = realloc(w->kvs, (w->nkvs + 1) * sizeof *kvs);
  if (!kvs) return RN_ENOMEM;
  w->kvs = kvs;
  kv_t kv = {dupstr(key), value ? dupstr(value) : NULL};
  if (!kv.key || (value && !kv.value)) {
    free(kv.key);
    free(kv.value);
    return RN_ENOMEM;
  }
  w->kvs[w->nkvs++] = kv;
  return RN_OK;
}

/* ---- compression ------------------------------------------------------------- */

/* Compresses src[0..n) with the codec into *dst (replacing its contents). */
static rn_err_t compress_page(rn_pq_codec_t codec, const uint8_t *src, size_t n, rn__buf_t *dst) {
  dst->len = 0;
  switch (codec) {
  case RN_PQ_UNCOMPRESSED:
    rn__buf_put(dst, src, n);
    return rn__buf_ok(dst) ? RN_OK : RN_ENOMEM;
  case RN_PQ_SNAPPY: {
    size_t cap = snappy_max_compressed_length(n);
    if (!rn__buf_reserve(dst, cap)) return RN_ENOMEM;
    size_t clen = cap;
    if (snappy_compress((const char *)src, n, (char *)dst->p, &clen) != SNAPPY_OK) return RN_EIO;
    dst->len = clen;
    return RN_OK;
  }
  case RN_PQ_GZIP: {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* windowBits 15 + 16: the gzip wrapper (RFC 1952), as Parquet's GZIP is */
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      return RN_ENOMEM;
    size_t cap = deflateBound(&zs, (uLong)n) + 32;
    if (!rn__buf_reserve(dst, cap)) {
      deflateEnd(&zs);
      return RN_ENOMEM;
    }
    zs.next_in = (Bytef *)(uintptr_t)src;
    zs.avail_in = (uInt)n;
    zs.next_out = dst->p;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    dst->len = zs.total_out;
    deflateEnd(&zs);
    return rc == Z_STREAM_END ? RN_OK : RN_EIO;
  }
  case RN_PQ_ZSTD: {
    size_t cap = ZSTD_compressBound(n);
    if (!rn__buf_reserve(dst, cap)) return RN_ENOMEM;
    size_t r = ZSTD_compress(dst->p, cap, src, n, 3);
    if (ZSTD_isError(r)) return RN_EIO;
    dst->len = r;
    return RN_OK;
  }
  }
  return RN_EINVAL;
}

static int32_t codec_id(rn_pq_codec_t c) {
  switch (c) {
  case RN_PQ_SNAPPY: return 1;
  case RN_PQ_GZIP: return 2;
  case RN_PQ_ZSTD: return 6;
  default: return 0;
  }
}

/* ---- column chunk encoding ------------------------------------------------------ */

/* The scratch of one chunk's encoding. */
typedef struct enc {
  rn__buf_t body, comp, hdr;
  uint32_t *levels; /* rows, for the hybrid */
  uint32_t *idx;    /* dictionary index of each value */
  /* the dictionary: entries (value numbers) and an open-addressing table */
  uint32_t *entries;
  size_t nentries;
  uint32_t *table; /* value number + 1; 0 empty */
  size_t tcap;
} enc_t;

static void enc_free(enc_t *e) {
  rn__buf_free(&e->body);
  rn__buf_free(&e->comp);
  rn__buf_free(&e->hdr);
  free(e->levels);
  free(e->idx);
  free(e->entries);
  free(e->table);
}

static void str_at(const col_t *c, size_t i, const uint8_t **p, size_t *n) {
  const size_t *ends = (const size_t *)(void *)c->ends.p;
  size_t start = i ? ends[i - 1] : 0;
  *p = c->vals.p ? c->vals.p + start : (const uint8_t *)""; /* all strings empty: no buffer yet (memcmp/memcpy of NULL is UB) */
  *n = ends[i] - start;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* Builds the dictionary of a string chunk: e->idx, e->entries. Returns
 * RN_OK with e->idx NULL when the dictionary would pass RN_PQ_DICT_LIMIT
 * (PLAIN then). */
static rn_err_t build_dict(const col_t *c, enc_t *e) {
  size_t cap = 64;
  while (cap < c->nvals * 2 && cap < ((size_t)1 << 30)) cap *= 2;
  e->tcap = cap;
  e->table = calloc(cap, sizeof *e->table);
  e->idx = malloc((c->nvals ? c->nvals : 1) * sizeof *e->idx);
  e->entries = malloc((c->nvals ? c->nvals : 1) * sizeof *e->entries);
  if (!e->table || !e->idx || !e->entries) return RN_ENOMEM;
  size_t dict_bytes = 0;
  for (size_t i = 0; i < c->nvals; i++) {
    const uint8_t *p;
    size_t n;
    str_at(c, i, &p, &n);
    size_t slot = (size_t)hash_bytes(p, n) & (cap - 1);
    for (;;) {
      uint32_t t = e->table[slot];
      if (t == 0) {
        dict_bytes += 4 + n;
        if (dict_bytes > RN_PQ_DICT_LIMIT || e->nentries * 2 >= cap) {
          free(e->idx);
          e->idx = NULL;
          return RN_OK;
        }
        e->entries[e->nentries] = (uint32_t)i;
        e->table[slot] = (uint32_t)i + 1;
        e->idx[i] = (uint32_t)e->nentries++;
        break;
      }
      const uint8_t *q;
      size_t m;
      str_at(c, t - 1, &q, &m);
      if (m == n && memcmp(p, q, n) == 0) {
        e->idx[i] = e->idx[t - 1];
        break;
      }
      slot = (slot + 1) & (cap - 1);
    }
  }
  return RN_OK;
}

static int cmp_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  int r = memcmp(a, b, an < bn ? an : bn);
  if (r) return r;
  return an < bn ? -1 : an > bn;
}

static bool set_minmax(chunk_meta_t *m, const void *min, size_t min_len, const void *max, size_t max_len) {
  m->min = malloc(min_len ? min_len : 1);
  m->max = malloc(max_len ? max_len : 1);
  if (!m->min || !m->max) return false;
  memcpy(m->min, min, min_len);
  memcpy(m->max, max, max_len);
  m->min_len = min_len;
  m->max_len = max_len;
  m->has_minmax = true;
  return true;
}

/* Statistics of a chunk (parquet.thrift's Statistics and ColumnOrder rules:
 * signed order for INT64/TIMESTAMP, unsigned byte order for strings, false
 * < true; doubles without NaNs in min/max, none when all are NaN, a zero
 * min written as -0.0 and a zero max as +0.0). */
static rn_err_t chunk_stats(const col_t *c, chunk_meta_t *m) {
  m->null_count = (int64_t)(c->defs.len - c->nvals);
  if (c->nvals == 0) return RN_OK;
  const uint8_t *v = c->vals.p;
  bool ok = true;
  switch (c->def.type) {
  case RN_PQ_INT64:
  case RN_PQ_TIMESTAMP: {
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; i < c->nvals; i++) {
      int64_t x = (int64_t)get_le64(v + 8 * i);
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    uint8_t a[8], b[8];
    put_le64(a, (uint64_t)lo);
    put_le64(b, (uint64_t)hi);
    ok = set_minmax(m, a, 8, b, 8);
    break;
  }
  case RN_PQ_DOUBLE: {
    bool any = false;
    double lo = 0, hi = 0;
    for (size_t i = 0; i < c->nvals; i++) {
      uint64_t u = get_le64(v + 8 * i);
      double x;
      memcpy(&x, &u, 8);
      if (isnan(x)) {
        m->nan_count++;
        continue;
      }
      if (!any || x < lo) lo = x;
      if (!any || x > hi) hi = x;
      any = true;
    }
    if (any) {
      if (lo == 0) lo = -0.0;
      if (hi == 0) hi = 0.0;
      uint8_t a[8], b[8];
      put_le64(a, dbl_bits(lo));
      put_le64(b, dbl_bits(hi));
      ok = set_minmax(m, a, 8, b, 8);
    }
    break;
  }
  case RN_PQ_BOOLEAN: {
    uint8_t lo = 1, hi = 0;
    for (size_t i = 0; i < c->nvals; i++) {
      if (v[i] < lo) lo = v[i];
      if (v[i] > hi) hi = v[i];
    }
    ok = set_minmax(m, &lo, 1, &hi, 1);
    break;
  }
  case RN_PQ_STRING: {
    const uint8_t *lo, *hi;
    size_t lon, hin;
    str_at(c, 0, &lo, &lon);
    hi = lo, hin = lon;
    for (size_t i = 1; i < c->nvals; i++) {
      const uint8_t *p;
      size_t n;
      str_at(c, i, &p, &n);
      if (cmp_bytes(p, n, lo, lon) < 0) lo = p, lon = n;
      if (cmp_bytes(p, n, hi, hin) > 0) hi = p, hin = n;
    }
    ok = set_minmax(m, lo, lon, hi, hin);
    break;
  }
  }
  return ok ? RN_OK : RN_ENOMEM;
}

/* Compresses e->body and appends header + page to the file; adds sizes to m. */
static rn_err_t emit_page(rn_pq_writer_t *w, enc_t *e, chunk_meta_t *m, int page_type, int32_t num_values,
                          int32_t encoding) {
  if (!rn__buf_ok(&e->body)) return RN_ENOMEM;
  if (e->body.len > INT32_MAX) return RN_ETOOLARGE;
  rn_err_t err = compress_page(w->opts.codec, e->body.p, e->body.len, &e->comp);
  if (err) return err;
  if (e->comp.len > INT32_MAX) return RN_ETOOLARGE;
  e->hdr.len = 0;
  rn__tc_t tc;
  rn__tc_init(&tc, &e->hdr);
  rn__tc_struct_begin(&tc); /* PageHeader */
  rn__tc_field_i32(&tc, 1, page_type);
  rn__tc_field_i32(&tc, 2, (int32_t)e->body.len);
  rn__tc_field_i32(&tc, 3, (int32_t)e->comp.len);
  if (page_type == PQ_PAGE_DATA) {
    rn__tc_field_struct(&tc, 5); /* DataPageHeader */
    rn__tc_field_i32(&tc, 1, num_values);
    rn__tc_field_i32(&tc, 2, encoding);
    rn__tc_field_i32(&tc, 3, PQ_ENC_RLE); /* definition levels */
    rn__tc_field_i32(&tc, 4, PQ_ENC_RLE); /* repetition levels (none: flat schema) */
    rn__tc_struct_end(&tc);
  } else {
    rn__tc_field_struct(&tc, 7); /* DictionaryPageHeader */
    rn__tc_field_i32(&tc, 1, num_values);
    rn__tc_field_i32(&tc, 2, encoding);
    rn__tc_struct_end(&tc);
  }
  rn__tc_struct_end(&tc);
  if (!rn__buf_ok(&e->hdr)) return RN_ENOMEM;
  int64_t at = (int64_t)w->out.len;
  rn__buf_put(&w->out, e->hdr.p, e->hdr.len);
  rn__buf_put(&w->out, e->comp.p, e->comp.len);
  if (!rn__buf_ok(&w->out)) return RN_ENOMEM;
  if (page_type == PQ_PAGE_DATA) {
    if (m->data_pages == 0) m->data_page_offset = at;
    m->data_pages++;
  } else {
    m->dict_page_offset = at;
  }
  m->unc_size += (int64_t)(e->hdr.len + e->body.len);
  m->comp_size += (int64_t)(e->hdr.len + e->comp.len);
  return RN_OK;
}

static rn_err_t encode_chunk(rn_pq_writer_t *w, const col_t *c, chunk_meta_t *m) {
  enc_t e;
  memset(&e, 0, sizeof e);
  m->dict_page_offset = -1;
  m->num_values = (int64_t)c->defs.len;
  rn_err_t err = chunk_stats(c, m);
  if (!err && c->def.type == RN_PQ_STRING && c->nvals > 0) err = build_dict(c, &e);
  m->dict = e.idx != NULL;
  int bw = m->dict ? (bits_for((uint32_t)(e.nentries - 1)) ? bits_for((uint32_t)(e.nentries - 1)) : 1) : 0;
  if (!err && m->dict) { /* the dictionary page: PLAIN strings */
    for (size_t i = 0; i < e.nentries; i++) {
      const uint8_t *p;
      size_t n;
      str_at(c, e.entries[i], &p, &n);
      rn__buf_le32(&e.body, (uint32_t)n);
      rn__buf_put(&e.body, p, n);
    }
    err = emit_page(w, &e, m, PQ_PAGE_DICTIONARY, (int32_t)e.nentries, PQ_ENC_PLAIN);
  }
  if (!err && c->def.nullable) {
    e.levels = malloc((c->defs.len ? c->defs.len : 1) * sizeof *e.levels);
    if (!e.levels) err = RN_ENOMEM;
  }
  const uint8_t *defs = c->defs.p;
  uint64_t page_bits = (uint64_t)w->opts.page_bytes * 8;
  size_t row = 0, val = 0, rows = c->defs.len;
  while (!err && row < rows) {
    /* one page: rows [r0, row), values [v0, val) */
    size_t r0 = row, v0 = val;
    uint64_t bits = 0;
    while (row < rows && row - r0 < PAGE_MAX_ROWS && (row == r0 || bits < page_bits)) {
      if (c->def.nullable) bits++;
      if (defs[row]) {
        if (m->dict) {
          bits += (uint64_t)bw;
        } else {
          size_t n = 0;
          if (c->def.type == RN_PQ_STRING) {
            const uint8_t *p;
            str_at(c, val, &p, &n);
          }
          bits += value_bits(c, n);
        }
        val++;
      }
      row++;
    }
    e.body.len = 0;
    if (c->def.nullable) {
      for (size_t i = r0; i < row; i++) e.levels[i - r0] = defs[i];
      rn__buf_le32(&e.body, 0); /* the length, patched below */
      size_t start = e.body.len;
      rn__pq_rle_hybrid(&e.body, e.levels, row - r0, 1);
      if (!rn__buf_ok(&e.body)) {
        err = RN_ENOMEM;
        break;
      }
      uint32_t len = (uint32_t)(e.body.len - start);
      for (int i = 0; i < 4; i++) e.body.p[start - 4 + (size_t)i] = (uint8_t)(len >> (8 * i));
    }
    int32_t encoding = PQ_ENC_PLAIN;
    if (m->dict) {
      encoding = PQ_ENC_RLE_DICTIONARY;
      rn__buf_byte(&e.body, (uint8_t)bw);
      rn__pq_rle_hybrid(&e.body, e.idx + v0, val - v0, bw);
    } else if (c->def.type == RN_PQ_STRING) {
      for (size_t i = v0; i < val; i++) {
        const uint8_t *p;
        size_t n;
        str_at(c, i, &p, &n);
        if (n > UINT32_MAX) {
          err = RN_ETOOLARGE;
          break;
        }
        rn__buf_le32(&e.body, (uint32_t)n);
        rn__buf_put(&e.body, p, n);
      }
    } else if (val == v0) {
      /* only nulls in this page: levels, no values */
    } else if (c->def.type == RN_PQ_BOOLEAN) {
      size_t nb = (val - v0 + 7) / 8;
      if (rn__buf_reserve(&e.body, nb)) {
        uint8_t *p = e.body.p + e.body.len;
        memset(p, 0, nb);
        for (size_t i = v0; i < val; i++)
          if (c->vals.p[i]) p[(i - v0) / 8] |= (uint8_t)(1u << ((i - v0) % 8));
        e.body.len += nb;
      }
    } else { /* INT64, TIMESTAMP, DOUBLE: already 8 bytes LE each */
      rn__buf_put(&e.body, c->vals.p + 8 * v0, 8 * (val - v0));
    }
    if (!err) err = emit_page(w, &e, m, PQ_PAGE_DATA, (int32_t)(row - r0), encoding);
  }
  enc_free(&e);
  return err;
}

static rn_err_t flush_row_group(rn_pq_writer_t *w) {
  if (w->rg_rows == 0) return RN_OK;
  if (w->nrgs == w->caprgs) {
    size_t cap = w->caprgs ? w->caprgs * 2 : 8;
    rg_meta_t *rgs = realloc(w->rgs, cap * sizeof *rgs);
    if (!rgs) return RN_ENOMEM;
    w->rgs = rgs;
    w->caprgs = cap;
  }
  rg_meta_t *rg = &w->rgs[w->nrgs];
  memset(rg, 0, sizeof *rg);
  rg->cols = calloc(w->ncols, sizeof *rg->cols);
  if (!rg->cols) return RN_ENOMEM;
  w->nrgs++; /* from here on freed with the writer */
  rg->num_rows = (int64_t)w->rg_rows;
  rg->file_offset = (int64_t)w->out.len;
  for (size_t i = 0; i < w->ncols; i++) {
    rn_err_t err = encode_chunk(w, &w->cols[i], &rg->cols[i]);
    if (err) return err;
    rg->unc_size += rg->cols[i].unc_size;
    rg->comp_size += rg->cols[i].comp_size;
  }
  for (size_t i = 0; i < w->ncols; i++) {
    col_t *c = &w->cols[i];
    c->defs.len = c->vals.len = c->ends.len = 0;
    c->nvals = 0;
  }
  w->rg_rows = 0;
  w->rg_bits = 0;
  return RN_OK;
}

/* ---- the footer ---------------------------------------------------------------- */

static int32_t physical_type(rn_pq_type_t t) {
  switch (t) {
  case RN_PQ_STRING: return PQ_BYTE_ARRAY;
  case RN_PQ_DOUBLE: return PQ_DOUBLE;
  case RN_PQ_BOOLEAN: return PQ_BOOLEAN;
  default: return PQ_INT64;
  }
}

static void write_schema(rn__tc_t *tc, const rn_pq_writer_t *w) {
  rn__tc_field_list(tc, 2, RN_TC_STRUCT, w->ncols + 1);
  rn__tc_struct_begin(tc); /* the root */
  rn__tc_field_string(tc, 4, "schema");
  rn__tc_field_i32(tc, 5, (int32_t)w->ncols);
  rn__tc_struct_end(tc);
  for (size_t i = 0; i < w->ncols; i++) {
    const rn_pq_column_t *c = &w->cols[i].def;
    rn__tc_struct_begin(tc);
    rn__tc_field_i32(tc, 1, physical_type(c->type));
    rn__tc_field_i32(tc, 3, c->nullable ? PQ_OPTIONAL : PQ_REQUIRED);
    rn__tc_field_string(tc, 4, c->name);
    if (c->type == RN_PQ_STRING) {
      rn__tc_field_i32(tc, 6, PQ_CT_UTF8);
      rn__tc_field_struct(tc, 10); /* LogicalType */
      rn__tc_field_struct(tc, 1);  /* STRING */
      rn__tc_struct_end(tc);
      rn__tc_struct_end(tc);
    } else if (c->type == RN_PQ_TIMESTAMP) {
      rn__tc_field_i32(tc, 6, PQ_CT_TIMESTAMP_MILLIS);
      rn__tc_field_struct(tc, 10); /* LogicalType */
      rn__tc_field_struct(tc, 8);  /* TIMESTAMP */
      rn__tc_field_bool(tc, 1, true);
      rn__tc_field_struct(tc, 2); /* TimeUnit */
      rn__tc_field_struct(tc, 1); /* MILLIS */
      rn__tc_struct_end(tc);
      rn__tc_struct_end(tc);
      rn__tc_struct_end(tc);
      rn__tc_struct_end(tc);
    }
    rn__tc_struct_end(tc);
  }
}

static void write_chunk(rn__tc_t *tc, const rn_pq_column_t *c, const chunk_meta_t *m, rn_pq_codec_t codec) {
  rn__tc_struct_begin(tc); /* ColumnChunk */
  rn__tc_field_i64(tc, 2, m->dict ? m->dict_page_offset : m->data_page_offset);
  rn__tc_field_struct(tc, 3); /* ColumnMetaData */
  rn__tc_field_i32(tc, 1, physical_type(c->type));
  int32_t encs[3];
  size_t nenc = 0;
  encs[nenc++] = PQ_ENC_PLAIN; /* values, or the dictionary page */
  if (c->nullable) encs[nenc++] = PQ_ENC_RLE;
  if (m->dict) encs[nenc++] = PQ_ENC_RLE_DICTIONARY;
  rn__tc_field_list(tc, 2, RN_TC_I32, nenc);
  for (size_t i = 0; i < nenc; i++) rn__tc_i32(tc, encs[i]);
  rn__tc_field_list(tc, 3, RN_TC_BINARY, 1);
  rn__tc_binary(tc, c->name, strlen(c->name));
  rn__tc_field_i32(tc, 4, codec_id(codec));
  rn__tc_field_i64(tc, 5, m->num_values);
  rn__tc_field_i64(tc, 6, m->unc_size);
  rn__tc_field_i64(tc, 7, m->comp_size);
  rn__tc_field_i64(tc, 9, m->data_page_offset);
  if (m->dict) rn__tc_field_i64(tc, 11, m->dict_page_offset);
  rn__tc_field_struct(tc, 12); /* Statistics */
  rn__tc_field_i64(tc, 3, m->null_count);
  if (m->has_minmax) {
    rn__tc_field_binary(tc, 5, m->max, m->max_len);
    rn__tc_field_binary(tc, 6, m->min, m->min_len);
  }
  if (c->type == RN_PQ_DOUBLE) rn__tc_field_i64(tc, 9, m->nan_count);
  rn__tc_struct_end(tc);
  /* encoding_stats: tells readers every data page is dictionary-encoded */
  rn__tc_field_list(tc, 13, RN_TC_STRUCT, m->dict ? 2 : 1);
  if (m->dict) {
    rn__tc_struct_begin(tc);
    rn__tc_field_i32(tc, 1, PQ_PAGE_DICTIONARY);
    rn__tc_field_i32(tc, 2, PQ_ENC_PLAIN);
    rn__tc_field_i32(tc, 3, 1);
    rn__tc_struct_end(tc);
  }
  rn__tc_struct_begin(tc);
  rn__tc_field_i32(tc, 1, PQ_PAGE_DATA);
  rn__tc_field_i32(tc, 2, m->dict ? PQ_ENC_RLE_DICTIONARY : PQ_ENC_PLAIN);
  rn__tc_field_i32(tc, 3, m->data_pages);
  rn__tc_struct_end(tc);
  rn__tc_struct_end(tc); /* ColumnMetaData */
  rn__tc_struct_end(tc); /* ColumnChunk */
}

static void write_footer(rn__tc_t *tc, const rn_pq_writer_t *w) {
  rn__tc_struct_begin(tc); /* FileMetaData */
  rn__tc_field_i32(tc, 1, 1);
  write_schema(tc, w);
  rn__tc_field_i64(tc, 3, (int64_t)w->rows);
  rn__tc_field_list(tc, 4, RN_TC_STRUCT, w->nrgs);
  for (size_t r = 0; r < w->nrgs; r++) {
    const rg_meta_t *rg = &w->rgs[r];
    rn__tc_struct_begin(tc); /* RowGroup */
    rn__tc_field_list(tc, 1, RN_TC_STRUCT, w->ncols);
    for (size_t i = 0; i < w->ncols; i++) write_chunk(tc, &w->cols[i].def, &rg->cols[i], w->opts.codec);
    rn__tc_field_i64(tc, 2, rg->unc_size);
    rn__tc_field_i64(tc, 3, rg->num_rows);
    rn__tc_field_i64(tc, 5, rg->file_offset);
    rn__tc_field_i64(tc, 6, rg->comp_size);
    if (r <= INT16_MAX) rn__tc_field_i16(tc, 7, (int16_t)r);
    rn__tc_struct_end(tc);
  }
  if (w->nkvs) {
    rn__tc_field_list(tc, 5, RN_TC_STRUCT, w->nkvs);
    for (size_t i = 0; i < w->nkvs; i++) {
      rn__tc_struct_begin(tc);
      rn__tc_field_string(tc, 1, w->kvs[i].key);
      if (w->kvs[i].value) rn__tc_field_string(tc, 2, w->kvs[i].value);
      rn__tc_struct_end(tc);
    }
  }
  rn__tc_field_string(tc, 6, w->created_by);
  /* column_orders: TYPE_ORDER for every column, so readers trust min_value/max_value */
  rn__tc_field_list(tc, 7, RN_TC_STRUCT, w->ncols);
  for (size_t i = 0; i < w->ncols; i++) {
    rn__tc_struct_begin(tc); /* ColumnOrder */
    rn__tc_field_struct(tc, 1); /* TypeDefinedOrder */
    rn__tc_struct_end(tc);
    rn__tc_struct_end(tc);
  }
  rn__tc_struct_end(tc);
}

rn_err_t rn_pq_finish(rn_pq_writer_t *w, uint8_t **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  rn_err_t err = usable(w);
  if (err) return err;
  rn_pq_abort_row(w);
  err = flush_row_group(w);
  if (err) return fail(w, err);
  w->state = W_SPENT;
  size_t start = w->out.len;
  rn__tc_t tc;
  rn__tc_init(&tc, &w->out);
  write_footer(&tc, w);
  if (!rn__buf_ok(&w->out)) return RN_ENOMEM;
  size_t flen = w->out.len - start;
  if (flen > UINT32_MAX) return RN_ETOOLARGE;
  rn__buf_le32(&w->out, (uint32_t)flen);
  rn__buf_put(&w->out, "PAR1", 4);
  if (!rn__buf_ok(&w->out)) return RN_ENOMEM;
  *buf = w->out.p;
  *len = w->out.len;
  w->out.p = NULL;
  w->out.len = w->out.cap = 0;
  return RN_OK;
}
