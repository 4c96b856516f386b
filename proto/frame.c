/*
 * frame.c — length-prefixed framing of the native protocol (runnel/frame.h).
 *
 * Owns nothing: every function is a pure computation over caller-supplied
 * bytes. Invariants the decoder keeps: it never reads past buf[len), it
 * decides "too large" from the 4 prefix bytes alone (so a hostile length
 * never makes a reader buffer the body), and a returned frame always lies
 * wholly inside the input.
 */
#include "runnel/frame.h"

static uint32_t get_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void rn_frame_put_header(uint8_t out[RN_FRAME_HEADER_BYTES], uint32_t n) {
  out[0] = (uint8_t)n;
  out[1] = (uint8_t)(n >> 8);
  out[2] = (uint8_t)(n >> 16);
  out[3] = (uint8_t)(n >> 24);
}

rn_err_t rn_frame_decode(const uint8_t *buf, size_t len, uint32_t max_payload, rn_frame_t *out,
                         size_t *need) {
  if (len < RN_FRAME_HEADER_BYTES) {
    if (need != NULL) *need = RN_FRAME_HEADER_BYTES;
    return RN_EPARTIAL;
  }
  uint32_t n = get_le32(buf);
  size_t total = (size_t)RN_FRAME_HEADER_BYTES + n;
  if (need != NULL) *need = total;
  if (n > max_payload) return RN_ETOOLARGE;
  if (len - RN_FRAME_HEADER_BYTES < n) return RN_EPARTIAL;
  out->payload = buf + RN_FRAME_HEADER_BYTES;
  out->payload_len = n;
  out->frame_len = total;
  return 0;
}

size_t rn_frame_encoded_len(const ProtobufCMessage *msg) {
  return RN_FRAME_HEADER_BYTES + protobuf_c_message_get_packed_size(msg);
}

rn_err_t rn_frame_encode(const ProtobufCMessage *msg, uint8_t *buf, size_t cap, size_t *len) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  if (n > RN_FRAME_MAX_PAYLOAD) return RN_ETOOLARGE;
  if (cap < RN_FRAME_HEADER_BYTES || cap - RN_FRAME_HEADER_BYTES < n) return RN_EINVAL;
  size_t packed = protobuf_c_message_pack(msg, buf + RN_FRAME_HEADER_BYTES);
  /* pack writes exactly get_packed_size bytes; a mismatch is a protobuf-c bug
   * that would corrupt the stream, so it is not survivable. */
  if (packed != n) return RN_EIO;
  rn_frame_put_header(buf, (uint32_t)n);
  if (len != NULL) *len = RN_FRAME_HEADER_BYTES + n;
  return 0;
}
