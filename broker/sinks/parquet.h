/*
 * broker/sinks/parquet.h — a Parquet file writer (private to broker/sinks).
 *
 * Writes one whole Parquet file into memory: "PAR1", row groups, the footer
 * (FileMetaData, Thrift compact), its length, "PAR1". The schema is flat: a
 * root group with one leaf per column, each REQUIRED or OPTIONAL. Rows are
 * given one value at a time (rn_pq_set_*, any column order) and committed
 * with rn_pq_end_row; the current row group's columns are buffered and
 * encoded when it closes (by size or row count), so memory is about one row
 * group of raw values plus the file written so far.
 *
 * What is written (docs/parquet.md has the details): DataPage v1 pages,
 * definition levels in the RLE/bit-packed hybrid (length-prefixed), PLAIN
 * values, strings dictionary-encoded (a PLAIN dictionary page + RLE_DICTIONARY
 * indices; PLAIN for a column chunk whose dictionary would pass ~1 MiB),
 * per-chunk statistics, each page compressed with the chosen codec.
 *
 * Errors are rn_err_t: RN_EINVAL for misuse (bad column index, type
 * mismatch, null in a REQUIRED column, invalid UTF-8, a spent writer),
 * RN_ENOMEM when an allocation fails (the writer is then failed: every later
 * call returns RN_ENOMEM; free it), RN_ETOOLARGE when a page or the file
 * would exceed Parquet's 32-bit sizes. Not thread-safe: one writer, one
 * thread at a time.
 */
#ifndef RN_SINKS_PARQUET_H
#define RN_SINKS_PARQUET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runnel/error.h"

typedef enum rn_pq_type {
  RN_PQ_STRING,   /* BYTE_ARRAY, logical type STRING (converted_type UTF8) */
  RN_PQ_INT64,    /* INT64, no logical type */
  RN_PQ_DOUBLE,   /* DOUBLE */
  RN_PQ_BOOLEAN,  /* BOOLEAN, bit-packed PLAIN */
  RN_PQ_TIMESTAMP /* int64 ms since epoch, UTC: TIMESTAMP(MILLIS, isAdjustedToUTC=true) */
} rn_pq_type_t;

typedef enum rn_pq_codec { RN_PQ_UNCOMPRESSED, RN_PQ_SNAPPY, RN_PQ_GZIP, RN_PQ_ZSTD } rn_pq_codec_t;

typedef struct rn_pq_column {
  const char *name; /* UTF-8, non-empty, unique within the schema */
  rn_pq_type_t type;
  bool nullable; /* OPTIONAL; else REQUIRED */
} rn_pq_column_t;

typedef struct rn_pq_opts {
  rn_pq_codec_t codec;    /* default snappy */
  size_t row_group_bytes; /* close a row group once its encoded column data exceed this; default 64 MiB (0 = default) */
  size_t row_group_rows;  /* ... or once it has this many rows; 0 = no row limit (tests use small values) */
  size_t page_bytes;      /* data page target, default 1 MiB (0 = default) */
  const char *created_by; /* "runnel version 0.1.0" default (NULL = default); copied */
} rn_pq_opts_t;

/* Fills *o with the defaults above. */
void rn_pq_opts_default(rn_pq_opts_t *o);

typedef struct rn_pq_writer rn_pq_writer_t;

/* A new writer for ncols (>= 1) columns. cols (names included) and o are
 * copied; o NULL = defaults. RN_EINVAL: no columns, a NULL/empty/non-UTF-8
 * or duplicate name, an unknown type or codec. *out owned by the caller:
 * rn_pq_writer_free. */
rn_err_t rn_pq_writer_new(const rn_pq_column_t *cols, size_t ncols, const rn_pq_opts_t *o, rn_pq_writer_t **out);

/* The current row's values, any column order; a column not set before
 * end_row is null; setting a column twice keeps the last value. A setter
 * that fails (RN_EINVAL: col >= ncols, the column's type is another one,
 * set_null on a REQUIRED column, bad UTF-8) leaves that column as it was. */
rn_err_t rn_pq_set_null(rn_pq_writer_t *w, size_t col);
/* s[0..len) copied; must be UTF-8 (checked: RN_EINVAL). s may be NULL when len is 0. */
rn_err_t rn_pq_set_string(rn_pq_writer_t *w, size_t col, const char *s, size_t len);
rn_err_t rn_pq_set_int64(rn_pq_writer_t *w, size_t col, int64_t v); /* INT64 and TIMESTAMP */
rn_err_t rn_pq_set_double(rn_pq_writer_t *w, size_t col, double v);  /* any value, NaN and infinities too */
rn_err_t rn_pq_set_bool(rn_pq_writer_t *w, size_t col, bool v);

/* Commits the current row. RN_EINVAL when a non-nullable column was not set
 * (the row is then discarded, the writer stays usable) or the writer is
 * spent. May close (encode) the row group: RN_ENOMEM / RN_ETOOLARGE then
 * fail the writer. */
rn_err_t rn_pq_end_row(rn_pq_writer_t *w);

/* Discard the current (unfinished) row's values. */
void rn_pq_abort_row(rn_pq_writer_t *w);

/* Rows committed so far. */
uint64_t rn_pq_rows(const rn_pq_writer_t *w);

/* About how many bytes the file would have if finished now: the row groups
 * already encoded plus the raw size of the open one (for callers that cut
 * files by size). */
uint64_t rn_pq_bytes(const rn_pq_writer_t *w);

/* Adds a key/value pair to the footer's key_value_metadata (both copied,
 * UTF-8; value NULL = no value). Any time before rn_pq_finish. */
rn_err_t rn_pq_add_metadata(rn_pq_writer_t *w, const char *key, const char *value);

/* The whole file: "PAR1", row groups, footer (FileMetaData in Thrift
 * compact), footer length, "PAR1". *buf malloc'd, caller frees. The writer
 * is spent after (whatever the result; only rn_pq_writer_free then). An
 * unfinished row is discarded. Zero rows: a valid empty file. */
rn_err_t rn_pq_finish(rn_pq_writer_t *w, uint8_t **buf, size_t *len);

void rn_pq_writer_free(rn_pq_writer_t *w); /* NULL ok */

/* ---- internal, exposed for the unit tests ---------------------------------- */

/* Appends the RLE/bit-packed hybrid encoding (no length prefix) of
 * v[0..n) at bit_width (0..32; every v must fit) to *out, which must be an
 * rn__buf_t (thrift_compact.h). Runs of >= 8 equal values become RLE runs;
 * the rest bit-packed groups of 8 (at most 63 groups per run), the last one
 * zero-padded. false when an allocation failed. */
struct rn__buf;
bool rn__pq_rle_hybrid(struct rn__buf *out, const uint32_t *v, size_t n, int bit_width);

/* Whether s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
 * points above U+10FFFF). */
bool rn__pq_utf8_valid(const char *s, size_t n);

/* The dictionary size (PLAIN bytes) past which a string column chunk is
 * written PLAIN instead. */
#define RN_PQ_DICT_LIMIT ((size_t)1 << 20)

#endif
