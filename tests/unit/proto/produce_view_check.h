/*
 * produce_view_check.h — the differential promise of rn_produce_view_decode,
 * shared by its unit test and its fuzz target: whenever the zero-copy
 * decoder accepts an input, protobuf-c decodes the same input to the same
 * request (correlation id, stream, every shard and batch byte), and every
 * batch points inside the input. Returns 0 when the promise holds (or the
 * decoder declined), otherwise a short reason.
 */
#ifndef RN_TEST_PRODUCE_VIEW_CHECK_H
#define RN_TEST_PRODUCE_VIEW_CHECK_H

#include <string.h>

#include "runnel.pb-c.h"
#include "runnel/produce_view.h"

static inline const char *produce_view_check(const uint8_t *buf, size_t len, int *accepted) {
  static rn_produce_view_t v; /* 4 KiB: keep it off small stacks */
  *accepted = rn_produce_view_decode(buf, len, &v);
  if (!*accepted) return NULL;
  Runnel__Request *ref = runnel__request__unpack(NULL, len, buf);
  const char *why = NULL;
  if (ref == NULL) return "accepted what protobuf-c rejects";
  if (ref->op_case != RUNNEL__REQUEST__OP_PRODUCE || ref->produce == NULL) why = "operation differs";
  else if (ref->correlation_id != v.req.correlation_id) why = "correlation id differs";
  else if (strcmp(ref->produce->stream, v.produce.stream) != 0) why = "stream differs";
  else if (ref->produce->n_batches != v.produce.n_batches) why = "batch count differs";
  for (size_t i = 0; why == NULL && i < v.produce.n_batches; i++) {
    const Runnel__ShardBatch *a = ref->produce->batches[i], *b = v.produce.batches[i];
    if (a->shard != b->shard) why = "shard differs";
    else if (a->batch.len != b->batch.len) why = "batch length differs";
    else if (b->batch.len && (b->batch.data < buf || b->batch.data + b->batch.len > buf + len)) why = "batch outside input";
    else if (b->batch.len && memcmp(a->batch.data, b->batch.data, b->batch.len) != 0) why = "batch bytes differ";
  }
  runnel__request__free_unpacked(ref, NULL);
  return why;
}

#endif
