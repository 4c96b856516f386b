/*
 * test_frame.c — the native protocol's framing (runnel/frame.h): partial
 * input at every length, the size limit decided from the prefix alone,
 * little-endian lengths, back-to-back frames, empty frames, and the encoder
 * round-tripping a Request through runnel__request__unpack.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "runnel.pb-c.h"
#include "runnel/frame.h"

static void test_partial_header(void **state) {
  (void)state;
  uint8_t buf[4] = {10, 0, 0, 0};
  rn_frame_t f;
  size_t need = 99;
  assert_int_equal(rn_frame_decode(NULL, 0, 1024, &f, &need), RN_EPARTIAL);
  assert_int_equal(need, RN_FRAME_HEADER_BYTES);
  for (size_t len = 1; len < 4; len++) {
    need = 99;
    assert_int_equal(rn_frame_decode(buf, len, 1024, &f, &need), RN_EPARTIAL);
    assert_int_equal(need, RN_FRAME_HEADER_BYTES);
  }
  /* need may be NULL. */
  assert_int_equal(rn_frame_decode(buf, 2, 1024, &f, NULL), RN_EPARTIAL);
}

static void test_partial_body_then_whole(void **state) {
  (void)state;
  uint8_t buf[14] = {10, 0, 0, 0, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'};
  rn_frame_t f;
  size_t need;
  for (size_t len = 4; len < sizeof buf; len++) {
    need = 0;
    assert_int_equal(rn_frame_decode(buf, len, 1024, &f, &need), RN_EPARTIAL);
    assert_int_equal(need, 14); /* known as soon as the prefix is in */
  }
  assert_int_equal(rn_frame_decode(buf, sizeof buf, 1024, &f, &need), 0);
  assert_ptr_equal(f.payload, buf + 4);
  assert_int_equal(f.payload_len, 10);
  assert_int_equal(f.frame_len, 14);
  assert_int_equal(need, 14);
  assert_memory_equal(f.payload, "abcdefghij", 10);
}

static void test_little_endian(void **state) {
  (void)state;
  uint8_t hdr[4];
  rn_frame_put_header(hdr, 0x04030201u);
  assert_int_equal(hdr[0], 1);
  assert_int_equal(hdr[1], 2);
  assert_int_equal(hdr[2], 3);
  assert_int_equal(hdr[3], 4);
  uint8_t buf[4] = {0x01, 0x02, 0, 0};
  rn_frame_t f;
  size_t need;
  assert_int_equal(rn_frame_decode(buf, 4, 1u << 20, &f, &need), RN_EPARTIAL);
  assert_int_equal(need, 4 + 0x0201);
}

static void test_too_large_from_prefix_alone(void **state) {
  (void)state;
  uint8_t buf[4];
  rn_frame_t f;
  size_t need = 0;
  /* Exactly the limit is fine (just partial here). */
  rn_frame_put_header(buf, 1000);
  assert_int_equal(rn_frame_decode(buf, 4, 1000, &f, &need), RN_EPARTIAL);
  /* One more is too large, without any body bytes. */
  rn_frame_put_header(buf, 1001);
  assert_int_equal(rn_frame_decode(buf, 4, 1000, &f, &need), RN_ETOOLARGE);
  assert_int_equal(need, 4 + 1001);
  /* The largest length the format can carry. */
  rn_frame_put_header(buf, UINT32_MAX);
  assert_int_equal(rn_frame_decode(buf, 4, 16u << 20, &f, &need), RN_ETOOLARGE);
  assert_int_equal(need, (size_t)4 + UINT32_MAX);
  assert_int_equal(rn_frame_decode(buf, 4, UINT32_MAX, &f, &need), RN_EPARTIAL);
}

static void test_empty_and_back_to_back(void **state) {
  (void)state;
  /* An empty frame, then "xy", then the start of a third. */
  uint8_t buf[] = {0, 0, 0, 0, 2, 0, 0, 0, 'x', 'y', 5, 0};
  rn_frame_t f;
  size_t need, pos = 0;
  assert_int_equal(rn_frame_decode(buf + pos, sizeof buf - pos, 64, &f, &need), 0);
  assert_int_equal(f.payload_len, 0);
  assert_int_equal(f.frame_len, 4);
  pos += f.frame_len;
  assert_int_equal(rn_frame_decode(buf + pos, sizeof buf - pos, 64, &f, &need), 0);
  assert_int_equal(f.payload_len, 2);
  assert_memory_equal(f.payload, "xy", 2);
  pos += f.frame_len;
  assert_int_equal(rn_frame_decode(buf + pos, sizeof buf - pos, 64, &f, &need), RN_EPARTIAL);
  assert_int_equal(need, 4);
}

static Runnel__Request *sample_request(Runnel__Request *req, Runnel__DescribeStreamRequest *ds) {
  runnel__request__init(req);
  runnel__describe_stream_request__init(ds);
  ds->name = (char *)"clicks";
  req->correlation_id = 0x0102030405060708ull;
  req->op_case = RUNNEL__REQUEST__OP_DESCRIBE_STREAM;
  req->describe_stream = ds;
  return req;
}

static void test_encode_round_trip(void **state) {
  (void)state;
  Runnel__Request req;
  Runnel__DescribeStreamRequest ds;
  sample_request(&req, &ds);
  size_t n = rn_frame_encoded_len(&req.base);
  assert_int_equal(n, RN_FRAME_HEADER_BYTES + runnel__request__get_packed_size(&req));
  uint8_t *buf = malloc(n);
  assert_non_null(buf);
  size_t len = 0;
  assert_int_equal(rn_frame_encode(&req.base, buf, n, &len), 0);
  assert_int_equal(len, n);

  rn_frame_t f;
  size_t need;
  assert_int_equal(rn_frame_decode(buf, len, 1024, &f, &need), 0);
  assert_int_equal(f.frame_len, n);
  Runnel__Request *got = runnel__request__unpack(NULL, f.payload_len, f.payload);
  assert_non_null(got);
  assert_int_equal(got->correlation_id, req.correlation_id);
  assert_int_equal(got->op_case, RUNNEL__REQUEST__OP_DESCRIBE_STREAM);
  assert_string_equal(got->describe_stream->name, "clicks");
  runnel__request__free_unpacked(got, NULL);

  /* Fed one byte at a time, the frame is partial until the last byte. */
  for (size_t i = 0; i < n; i++)
    assert_int_equal(rn_frame_decode(buf, i, 1024, &f, NULL), RN_EPARTIAL);
  free(buf);
}

static void test_encode_small_buffer(void **state) {
  (void)state;
  Runnel__Request req;
  Runnel__DescribeStreamRequest ds;
  sample_request(&req, &ds);
  size_t n = rn_frame_encoded_len(&req.base);
  uint8_t buf[64];
  assert_true(n <= sizeof buf);
  size_t len = 12345;
  assert_int_equal(rn_frame_encode(&req.base, buf, n - 1, &len), RN_EINVAL);
  assert_int_equal(len, 12345); /* untouched on failure */
  assert_int_equal(rn_frame_encode(&req.base, buf, 3, &len), RN_EINVAL);
  assert_int_equal(rn_frame_encode(&req.base, buf, n, NULL), 0);
}

static void test_encode_empty_message(void **state) {
  (void)state;
  /* A Response with every field default packs to zero bytes: a 4-byte frame. */
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  uint8_t buf[8];
  size_t len;
  assert_int_equal(rn_frame_encoded_len(&resp.base), 4);
  assert_int_equal(rn_frame_encode(&resp.base, buf, sizeof buf, &len), 0);
  assert_int_equal(len, 4);
  static const uint8_t zero[4] = {0, 0, 0, 0};
  assert_memory_equal(buf, zero, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_partial_header),
      cmocka_unit_test(test_partial_body_then_whole),
      cmocka_unit_test(test_little_endian),
      cmocka_unit_test(test_too_large_from_prefix_alone),
      cmocka_unit_test(test_empty_and_back_to_back),
      cmocka_unit_test(test_encode_round_trip),
      cmocka_unit_test(test_encode_small_buffer),
      cmocka_unit_test(test_encode_empty_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
