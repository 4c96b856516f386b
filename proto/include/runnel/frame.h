/*
 * runnel/frame.h — the native protocol's framing: a 4-byte little-endian
 * length N, then N bytes of one protobuf message (Request from client to
 * broker, Response from broker to client; proto/runnel.proto). N excludes
 * the 4 length bytes. Pure functions over bytes; never touches sockets.
 * Shared by the broker and librunnel.
 *
 * Decoding is incremental: a reader appends received bytes to a buffer and
 * calls rn_frame_decode at the buffer's start until it returns RN_EPARTIAL.
 * A length above the reader's limit is reported as soon as the 4 length
 * bytes are in, without waiting for (or buffering) the body.
 */
#ifndef RUNNEL_FRAME_H
#define RUNNEL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "runnel/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of the length prefix. */
#define RN_FRAME_HEADER_BYTES 4u

/* Largest N the format can carry. */
#define RN_FRAME_MAX_PAYLOAD UINT32_MAX

/* A decoded frame: payload points into the caller's buffer (borrowed; valid
 * as long as that buffer is). */
typedef struct rn_frame {
  const uint8_t *payload; /* N bytes of protobuf */
  size_t payload_len;     /* N */
  size_t frame_len;       /* RN_FRAME_HEADER_BYTES + N: bytes to consume */
} rn_frame_t;

/* Decode the frame at the start of buf[0, len). max_payload is the largest N
 * accepted (the broker's max_frame_bytes). buf may be NULL when len is 0.
 * Returns:
 *   0            a whole frame is in buf; *out describes it.
 *   RN_EPARTIAL  more bytes are needed; *need (may be NULL) gets the total
 *                number of bytes the frame occupies when the length prefix
 *                is complete (so a reader can size its buffer), else
 *                RN_FRAME_HEADER_BYTES.
 *   RN_ETOOLARGE the length prefix says N > max_payload; *need gets
 *                RN_FRAME_HEADER_BYTES + N. The stream cannot be resynced:
 *                a reader reports the error and closes the connection. */
rn_err_t rn_frame_decode(const uint8_t *buf, size_t len, uint32_t max_payload, rn_frame_t *out,
                         size_t *need);

/* Write the 4-byte little-endian length prefix for a payload of n bytes. */
void rn_frame_put_header(uint8_t out[RN_FRAME_HEADER_BYTES], uint32_t n);

/* Bytes rn_frame_encode needs for msg: prefix + packed message. */
size_t rn_frame_encoded_len(const ProtobufCMessage *msg);

/* Encode msg as one frame into buf[0, cap): prefix + packed message. On
 * success *len (may be NULL) gets the bytes written. Returns 0,
 * RN_ETOOLARGE when the packed message exceeds RN_FRAME_MAX_PAYLOAD, or
 * RN_EINVAL when cap is too small (nothing useful is written then). */
rn_err_t rn_frame_encode(const ProtobufCMessage *msg, uint8_t *buf, size_t cap, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
