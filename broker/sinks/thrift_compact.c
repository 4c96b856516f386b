/*
 * broker/sinks/thrift_compact.c — the Thrift compact-protocol encoder of
 * thrift_compact.h and the byte buffer it writes into.
 *
 * Wire rules kept here (Thrift's compact protocol spec): integers are zigzag
 * ULEB128 varints; a field header is one byte (delta << 4 | type) when the id
 * is 1..15 above the previous field's of the same struct, else the type byte
 * followed by the id as a zigzag varint i16; a struct ends with a stop byte;
 * a bool field carries its value in the header's type (1 true, 2 false); a
 * list header is (size << 4 | type) for sizes below 15, else 0xF0 | type and
 * the size as a varint. Struct nesting is bounded (RN_TC_MAX_DEPTH): the
 * Parquet structures written are at most six deep.
 */
#include "thrift_compact.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void rn__buf_free(rn__buf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

bool rn__buf_reserve(rn__buf_t *b, size_t n) {
  if (b->oom) return false;
  if (n <= b->cap - b->len) return true;
  if (n > SIZE_MAX / 2 - b->len) {
    b->oom = true;
    return false;
  }
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < n) cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  if (!p) {
    b->oom = true;
    return false;
  }
  b->p = p;
  b->cap = cap;
  return true;
}

void rn__buf_put(rn__buf_t *b, const void *p, size_t n) {
  if (n == 0 || !rn__buf_reserve(b, n)) return;
  memcpy(b->p + b->len, p, n);
  b->len += n;
}

void rn__buf_byte(rn__buf_t *b, uint8_t v) {
  if (!rn__buf_reserve(b, 1)) return;
  b->p[b->len++] = v;
}

void rn__buf_le32(rn__buf_t *b, uint32_t v) {
  uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  rn__buf_put(b, x, 4);
}

void rn__buf_le64(rn__buf_t *b, uint64_t v) {
  uint8_t x[8];
  for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
  rn__buf_put(b, x, 8);
}

void rn__buf_uvarint(rn__buf_t *b, uint64_t v) {
  uint8_t x[10];
  size_t n = 0;
  while (v >= 0x80) {
    x[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  x[n++] = (uint8_t)v;
  rn__buf_put(b, x, n);
}

static uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

void rn__tc_init(rn__tc_t *tc, rn__buf_t *out) {
  tc->out = out;
  tc->depth = 0;
}

static void push(rn__tc_t *tc) {
  assert(tc->depth < RN_TC_MAX_DEPTH);
  tc->last[tc->depth++] = 0;
}

void rn__tc_struct_begin(rn__tc_t *tc) { push(tc); }

void rn__tc_struct_end(rn__tc_t *tc) {
  assert(tc->depth > 0);
  rn__buf_byte(tc->out, RN_TC_STOP);
  tc->depth--;
}

static void field_header(rn__tc_t *tc, int16_t id, uint8_t type) {
  assert(tc->depth > 0);
  int16_t *last = &tc->last[tc->depth - 1];
  int delta = id - *last;
  if (delta > 0 && delta <= 15) {
    rn__buf_byte(tc->out, (uint8_t)(delta << 4 | type));
  } else {
    rn__buf_byte(tc->out, type);
    rn__buf_uvarint(tc->out, zigzag(id));
  }
  *last = id;
}

void rn__tc_field_struct(rn__tc_t *tc, int16_t id) {
  field_header(tc, id, RN_TC_STRUCT);
  push(tc);
}

void rn__tc_field_i32(rn__tc_t *tc, int16_t id, int32_t v) {
  field_header(tc, id, RN_TC_I32);
  rn__buf_uvarint(tc->out, zigzag(v));
}

void rn__tc_field_i64(rn__tc_t *tc, int16_t id, int64_t v) {
  field_header(tc, id, RN_TC_I64);
  rn__buf_uvarint(tc->out, zigzag(v));
}

void rn__tc_field_i16(rn__tc_t *tc, int16_t id, int16_t v) {
  field_header(tc, id, RN_TC_I16);
  rn__buf_uvarint(tc->out, zigzag(v));
}

void rn__tc_field_bool(rn__tc_t *tc, int16_t id, bool v) { field_header(tc, id, v ? RN_TC_TRUE : RN_TC_FALSE); }

void rn__tc_field_binary(rn__tc_t *tc, int16_t id, const void *p, size_t n) {
  field_header(tc, id, RN_TC_BINARY);
  rn__tc_binary(tc, p, n);
}

void rn__tc_field_string(rn__tc_t *tc, int16_t id, const char *s) { rn__tc_field_binary(tc, id, s, strlen(s)); }

void rn__tc_field_list(rn__tc_t *tc, int16_t id, uint8_t elem_type, size_t n) {
  field_header(tc, id, RN_TC_LIST);
  if (n < 15) {
    rn__buf_byte(tc->out, (uint8_t)(n << 4 | elem_type));
  } else {
    rn__buf_byte(tc->out, (uint8_t)(0xF0 | elem_type));
    rn__buf_uvarint(tc->out, n);
  }
}

void rn__tc_i32(rn__tc_t *tc, int32_t v) { rn__buf_uvarint(tc->out, zigzag(v)); }

void rn__tc_binary(rn__tc_t *tc, const void *p, size_t n) {
  rn__buf_uvarint(tc->out, n);
  rn__buf_put(tc->out, p, n);
}
