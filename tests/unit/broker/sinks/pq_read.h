/*
 * tests/unit/broker/sinks/pq_read.h — a minimal Parquet reader of the tests'
 * own, written from the specification and not from the writer: a Thrift
 * compact-protocol decoder into a tree of values, the footer, page headers,
 * decompression, and a structural check of a whole file (pqr_check_file)
 * that the unit tests and fuzz/fuzz_parquet.c run on what the writer wrote.
 */
#ifndef RN_TEST_PQ_READ_H
#define RN_TEST_PQ_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runnel/error.h"

typedef enum pqr_kind { PQR_INT, PQR_BOOL, PQR_DOUBLE, PQR_BINARY, PQR_LIST, PQR_STRUCT } pqr_kind_t;

/* One decoded Thrift value. Binary values point into the decoded input
 * (which must outlive the tree). */
typedef struct pqr_val {
  pqr_kind_t kind;
  uint8_t wire; /* the compact type code (5 i32, 6 i64, ...); for lists the element type */
  int64_t i;
  bool b;
  double d;
  const uint8_t *bin;
  size_t len;
  size_t n;             /* children of a list or struct */
  int16_t *ids;         /* struct: the field id of each child */
  struct pqr_val *kids; /* malloc'd */
} pqr_val_t;

/* Decodes one struct from p[0..n); *used: its bytes. RN_EPARTIAL when the
 * input ends inside it, RN_ECORRUPT for bad types, ids or nesting (> 32). */
rn_err_t pqr_struct(const uint8_t *p, size_t n, pqr_val_t *out, size_t *used);
void pqr_free(pqr_val_t *v);

/* The field with this id of a struct, NULL when absent (or v NULL / not a struct). */
const pqr_val_t *pqr_f(const pqr_val_t *v, int16_t id);
/* The integer field id (i16/i32/i64), or dflt when absent. */
int64_t pqr_i(const pqr_val_t *v, int16_t id, int64_t dflt);

/* "PAR1" at both ends, the footer length, FileMetaData decoded into *fmd. */
rn_err_t pqr_footer(const uint8_t *file, size_t len, pqr_val_t *fmd);

/* A page header at file[off..len): decoded into *hdr, *hdr_len its size. */
rn_err_t pqr_page_header(const uint8_t *file, size_t len, size_t off, pqr_val_t *hdr, size_t *hdr_len);

/* Decompresses src with Parquet codec id codec (0 none, 1 snappy, 2 gzip,
 * 6 zstd) into a malloc'd *out that must be exactly want bytes. */
rn_err_t pqr_decompress(int codec, const uint8_t *src, size_t n, size_t want, uint8_t **out);

/* The structure of a whole file, as the spec requires it of runnel's flat
 * schemas: required FileMetaData fields and types, a root with one leaf per
 * column, row group row counts adding up, every column chunk's pages walked
 * from its first offset (dictionary page first when there is one, at
 * dictionary_page_offset; the first data page at data_page_offset), page
 * sizes adding up to total_compressed_size / total_uncompressed_size, page
 * value counts to num_values, each page decompressing to its
 * uncompressed_page_size. On failure *why says what (static string). */
rn_err_t pqr_check_file(const uint8_t *file, size_t len, const char **why);

/* The RLE/bit-packed hybrid decoder: n values of bit_width from p[0..len)
 * into out; *used: bytes consumed. */
rn_err_t pqr_rle_decode(const uint8_t *p, size_t len, int bit_width, uint32_t *out, size_t n, size_t *used);

#endif
