/*
 * broker/sinks/thrift_compact.h — a Thrift compact-protocol encoder (private
 * to broker/sinks), just what the Parquet writer's page headers and footer
 * need: structs, fields, lists, i16/i32/i64 (zigzag varints), bool, binary.
 *
 * Everything goes into an rn__buf_t, a growable byte buffer. Allocation
 * failure is sticky: the buffer's `oom` flag is set, later writes are no-ops,
 * and the caller checks once at the end (rn__buf_ok), so encoders read as a
 * straight list of fields. Pure: no I/O.
 */
#ifndef RN_SINKS_THRIFT_COMPACT_H
#define RN_SINKS_THRIFT_COMPACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer. Zero-initialised is empty; free with rn__buf_free.
 * p is malloc'd and owned by the buffer until taken (set p = NULL). */
typedef struct rn__buf {
  uint8_t *p;
  size_t len, cap;
  bool oom; /* an allocation failed; contents are incomplete */
} rn__buf_t;

void rn__buf_free(rn__buf_t *b);
/* Make room for n more bytes; false (and oom set) when that failed. */
bool rn__buf_reserve(rn__buf_t *b, size_t n);
void rn__buf_put(rn__buf_t *b, const void *p, size_t n);
void rn__buf_byte(rn__buf_t *b, uint8_t v);
void rn__buf_le32(rn__buf_t *b, uint32_t v);
void rn__buf_le64(rn__buf_t *b, uint64_t v);
/* Unsigned LEB128 (Thrift varints, Parquet RLE run headers). */
void rn__buf_uvarint(rn__buf_t *b, uint64_t v);
static inline bool rn__buf_ok(const rn__buf_t *b) { return !b->oom; }

/* Compact-protocol element types (the 4-bit codes on the wire). */
enum {
  RN_TC_STOP = 0,
  RN_TC_TRUE = 1,
  RN_TC_FALSE = 2,
  RN_TC_BYTE = 3,
  RN_TC_I16 = 4,
  RN_TC_I32 = 5,
  RN_TC_I64 = 6,
  RN_TC_DOUBLE = 7,
  RN_TC_BINARY = 8,
  RN_TC_LIST = 9,
  RN_TC_SET = 10,
  RN_TC_MAP = 11,
  RN_TC_STRUCT = 12,
};

#define RN_TC_MAX_DEPTH 16

/* The encoder: a buffer it appends to (not owned) and the last field id of
 * each open struct (field headers are deltas from it). */
typedef struct rn__tc {
  rn__buf_t *out;
  int depth;
  int16_t last[RN_TC_MAX_DEPTH];
} rn__tc_t;

void rn__tc_init(rn__tc_t *tc, rn__buf_t *out);

/* A struct that is not a field (the top-level one, or a list element). */
void rn__tc_struct_begin(rn__tc_t *tc);
/* Writes the stop byte and closes the innermost struct. */
void rn__tc_struct_end(rn__tc_t *tc);

/* Fields of the innermost open struct; ids must increase. */
void rn__tc_field_struct(rn__tc_t *tc, int16_t id); /* then fields, then rn__tc_struct_end */
void rn__tc_field_i32(rn__tc_t *tc, int16_t id, int32_t v);
void rn__tc_field_i64(rn__tc_t *tc, int16_t id, int64_t v);
void rn__tc_field_i16(rn__tc_t *tc, int16_t id, int16_t v);
void rn__tc_field_bool(rn__tc_t *tc, int16_t id, bool v);
void rn__tc_field_binary(rn__tc_t *tc, int16_t id, const void *p, size_t n);
void rn__tc_field_string(rn__tc_t *tc, int16_t id, const char *s); /* NUL-terminated */
/* A list field header: then n elements of elem_type (rn__tc_i32,
 * rn__tc_binary, or rn__tc_struct_begin ... rn__tc_struct_end each). */
void rn__tc_field_list(rn__tc_t *tc, int16_t id, uint8_t elem_type, size_t n);

/* List elements. */
void rn__tc_i32(rn__tc_t *tc, int32_t v);
void rn__tc_binary(rn__tc_t *tc, const void *p, size_t n);

#endif
