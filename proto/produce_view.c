/*
 * produce_view.c — see runnel/produce_view.h. A hand-written protobuf wire
 * decoder for one message shape; everything it does not recognise makes it
 * decline, so protobuf-c stays the reference for every other input.
 *
 * Field numbers (proto/runnel.proto):
 *   Request        1 correlation_id (varint), 21 produce (message)
 *   ProduceRequest 1 stream (string), 2 batches (repeated message)
 *   ShardBatch     1 shard (varint), 2 batch (bytes)
 */
#include "runnel/produce_view.h"

#include <string.h>

#include "runnel/batch.h"

enum { WT_VARINT = 0, WT_LEN = 2 };

/* A cursor over buf[pos, end). */
typedef struct {
  const uint8_t *p, *end;
} cur_t;

static bool get_varint(cur_t *c, uint64_t *v) {
  size_t n = rn_varint_decode(c->p, (size_t)(c->end - c->p), v);
  if (n == 0 || n == (size_t)-1) return false;
  c->p += n;
  return true;
}

/* Key of the next field: number and wire type. */
static bool get_key(cur_t *c, uint32_t *field, unsigned *wt) {
  uint64_t k;
  if (!get_varint(c, &k)) return false;
  if ((k >> 3) == 0 || (k >> 3) > 0x1fffffff) return false;
  *field = (uint32_t)(k >> 3);
  *wt = (unsigned)(k & 7);
  return true;
}

/* A length-delimited field's body as a sub-cursor. */
static bool get_len(cur_t *c, cur_t *sub) {
  uint64_t n;
  if (!get_varint(c, &n)) return false;
  if (n > (uint64_t)(c->end - c->p)) return false;
  sub->p = c->p;
  sub->end = c->p + n;
  c->p += n;
  return true;
}

static bool decode_batch(cur_t c, Runnel__ShardBatch *sb) {
  bool have_shard = false, have_batch = false;
  runnel__shard_batch__init(sb);
  while (c.p < c.end) {
    uint32_t f;
    unsigned wt;
    if (!get_key(&c, &f, &wt)) return false;
    if (f == 1 && wt == WT_VARINT && !have_shard) {
      uint64_t v;
      if (!get_varint(&c, &v)) return false;
      sb->shard = (uint32_t)v; /* protobuf truncates uint32 the same way */
      have_shard = true;
    } else if (f == 2 && wt == WT_LEN && !have_batch) {
      cur_t b;
      if (!get_len(&c, &b)) return false;
      sb->batch.data = (uint8_t *)(uintptr_t)b.p; /* borrowed */
      sb->batch.len = (size_t)(b.end - b.p);
      have_batch = true;
    } else {
      return false;
    }
  }
  return true;
}

static bool decode_produce(cur_t c, rn_produce_view_t *v) {
  bool have_stream = false;
  Runnel__ProduceRequest *pr = &v->produce;
  runnel__produce_request__init(pr);
  pr->stream = v->stream;
  v->stream[0] = '\0';
  pr->batches = v->batch_ptr;
  while (c.p < c.end) {
    uint32_t f;
    unsigned wt;
    if (!get_key(&c, &f, &wt)) return false;
    cur_t sub;
    if (wt != WT_LEN || !get_len(&c, &sub)) return false;
    size_t n = (size_t)(sub.end - sub.p);
    if (f == 1 && !have_stream) {
      if (n > RN_PRODUCE_VIEW_MAX_NAME) return false;
      memcpy(v->stream, sub.p, n);
      v->stream[n] = '\0';
      have_stream = true;
    } else if (f == 2) {
      if (pr->n_batches == RN_PRODUCE_VIEW_MAX_BATCHES) return false;
      Runnel__ShardBatch *sb = &v->batch[pr->n_batches];
      if (!decode_batch(sub, sb)) return false;
      v->batch_ptr[pr->n_batches++] = sb;
    } else {
      return false;
    }
  }
  return true;
}

bool rn_produce_view_decode(const uint8_t *buf, size_t len, rn_produce_view_t *v) {
  if (buf == NULL || v == NULL) return false;
  cur_t c = {buf, buf + len};
  bool have_corr = false, have_produce = false;
  runnel__request__init(&v->req);
  while (c.p < c.end) {
    uint32_t f;
    unsigned wt;
    if (!get_key(&c, &f, &wt)) return false;
    if (f == 1 && wt == WT_VARINT && !have_corr) {
      if (!get_varint(&c, &v->req.correlation_id)) return false;
      have_corr = true;
    } else if (f == 21 && wt == WT_LEN && !have_produce) {
      cur_t sub;
      if (!get_len(&c, &sub) || !decode_produce(sub, v)) return false;
      have_produce = true;
    } else {
      return false;
    }
  }
  if (!have_produce) return false;
  v->req.op_case = RUNNEL__REQUEST__OP_PRODUCE;
  v->req.produce = &v->produce;
  return true;
}
