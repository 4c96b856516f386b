/*
 * runnel/produce_view.h — a zero-copy decoder for the one request that
 * carries bulk data: a Request whose operation is Produce. protobuf-c's
 * unpack copies every bytes field; at produce rates that copy of every
 * batch was the broker's largest user-space cost. This decoder fills the
 * generated structs (runnel.pb-c.h) with batch bytes that point INTO the
 * frame (borrowed), so the broker copies a batch once, into the log.
 *
 * It accepts exactly the canonical encoding librunnel (and any protobuf
 * encoder) produces for Request{correlation_id, produce{stream, batches[]}}
 * and declines (returns false, touching nothing the caller must free)
 * anything else: another operation, unknown or repeated singular fields,
 * more than RN_PRODUCE_VIEW_MAX_BATCHES batches, a stream name longer than
 * RN_PRODUCE_VIEW_MAX_NAME bytes, malformed input. A caller then decodes
 * the frame with runnel__request__unpack as before, so the broker's answer
 * to every input is unchanged. Pure function over bytes; fuzzed against
 * protobuf-c (fuzz/fuzz_produce_view.c).
 */
#ifndef RUNNEL_PRODUCE_VIEW_H
#define RUNNEL_PRODUCE_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runnel.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RN_PRODUCE_VIEW_MAX_BATCHES 64u
#define RN_PRODUCE_VIEW_MAX_NAME 255u

/* The decoded request. Self-contained (no heap): req and the structs it
 * points to live inside the view; batch bytes point into the decoded buffer
 * and are valid as long as that buffer is. Not copyable by value (internal
 * pointers). */
typedef struct rn_produce_view {
  Runnel__Request req; /* op_case RUNNEL__REQUEST__OP_PRODUCE, produce = &produce */
  Runnel__ProduceRequest produce;
  Runnel__ShardBatch batch[RN_PRODUCE_VIEW_MAX_BATCHES];
  Runnel__ShardBatch *batch_ptr[RN_PRODUCE_VIEW_MAX_BATCHES];
  char stream[RN_PRODUCE_VIEW_MAX_NAME + 1];
} rn_produce_view_t;

/* Decode buf[0, len) (a frame's payload) as a produce Request into *v.
 * Returns true on success; false when the input is anything else (see
 * above): then decode it with runnel__request__unpack. */
bool rn_produce_view_decode(const uint8_t *buf, size_t len, rn_produce_view_t *v);

#ifdef __cplusplus
}
#endif
#endif
