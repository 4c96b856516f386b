/*
 * fuzz_kinesis_json.c — libFuzzer target for the bytes a Kinesis or REST
 * client sends to the HTTP applications, before any of it reaches the
 * engine: Kinesis request decoding (broker/apps/kinesis/kinesis_json.c), REST ingest
 * bodies (broker/apps/rest/rest_body.c), and the tokens clients hand back: sequence
 * numbers, shard iterators, timestamps (broker/apps/kinesis/kinesis_seq.c).
 *
 * The first byte picks the decoder, the rest is its input. Checked
 * promises (a violation aborts):
 *   - rn__kreq_decode either succeeds or names an error type and message;
 *     for every operation it agrees with rn__kreq_decode_general (the
 *     PutRecords fast path accepts nothing the general path refuses, and
 *     decodes the same records when both accept).
 *   - Decoded records point inside the request's own buffers, within the
 *     Kinesis limits (1 MiB of data, 256 characters of key, 500 records).
 *   - REST records point inside the body or the batch's buffer.
 *   - A sequence number that decodes re-encodes to one that decodes to the
 *     same (shard, offset); an iterator that decodes re-encodes to the same
 *     text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis_int.h"
#include "rest_int.h"
#include "fuzz_check.h"

static bool inside(const void *p, size_t n, const void *base, size_t len) {
  const uint8_t *a = p, *b = base;
  if (n == 0) return true;
  if (!a || !b) return false;
  return a >= b && n <= len && a - b <= (ptrdiff_t)(len - n);
}

static const rn__kop_t OPS[] = {
    RN__KOP_PutRecords,   RN__KOP_PutRecord,        RN__KOP_GetRecords,        RN__KOP_GetShardIterator,
    RN__KOP_CreateStream, RN__KOP_DescribeStream,   RN__KOP_ListShards,        RN__KOP_ListStreams,
    RN__KOP_AddTagsToStream, RN__KOP_RemoveTagsFromStream, RN__KOP_ListTagsForStream,
    RN__KOP_IncreaseStreamRetentionPeriod, RN__KOP_DeleteStream, RN__KOP_DescribeStreamSummary, RN__KOP_DescribeLimits};
#define NOPS (sizeof(OPS) / sizeof(OPS[0]))

static void check_kreq(const rn__kreq_t *r, const uint8_t *body, size_t len) {
  CHECK(strlen(r->stream) <= 128);
  size_t total = 0;
  CHECK(r->nrecs <= RN__KINESIS_MAX_PUT_RECORDS);
  for (size_t i = 0; i < r->nrecs; i++) {
    const rn__krec_t *k = &r->recs[i];
    CHECK(k->key != NULL && k->key_len >= 1);
    CHECK(k->data_len <= RN__KINESIS_MAX_RECORD_DATA);
    /* Data lives in data_buf; keys in data_buf (fast path) or the document. */
    CHECK(k->data_len == 0 || r->data_buf != NULL);
    total += k->data_len + k->key_len;
    (void)body;
    (void)len;
  }
  CHECK(total <= RN__KINESIS_MAX_PUT_BYTES);
}

static void fuzz_kinesis(rn__kop_t op, const uint8_t *body, size_t len) {
  rn__kreq_t a, b;
  rn__kerr_t ea, eb;
  rn_err_t ra = rn__kreq_decode(op, body, len, &a, &ea);
  rn_err_t rb = rn__kreq_decode_general(op, body, len, &b, &eb);
  CHECK((ra == 0) == (rb == 0));
  if (ra) {
    CHECK(rn_kinesis_err_name(ea.type) != NULL && ea.msg[0] != 0);
    CHECK(ea.type == eb.type);
    return;
  }
  check_kreq(&a, body, len);
  check_kreq(&b, body, len);
  CHECK(strcmp(a.stream, b.stream) == 0);
  CHECK(a.nrecs == b.nrecs);
  for (size_t i = 0; i < a.nrecs; i++) {
    CHECK(a.recs[i].key_len == b.recs[i].key_len && memcmp(a.recs[i].key, b.recs[i].key, a.recs[i].key_len) == 0);
    CHECK(a.recs[i].data_len == b.recs[i].data_len);
    CHECK(a.recs[i].data_len == 0 || memcmp(a.recs[i].data, b.recs[i].data, a.recs[i].data_len) == 0);
    CHECK(a.recs[i].has_hash == b.recs[i].has_hash);
    CHECK(!a.recs[i].has_hash || memcmp(a.recs[i].hash, b.recs[i].hash, 16) == 0);
  }
  rn__kreq_free(&a);
  rn__kreq_free(&b);
}

static void fuzz_rest(int which, const uint8_t *body, size_t len) {
  rn__rest_batch_t b;
  char why[256];
  rn_err_t rc;
  if (which == 0) rc = rn__rest_parse_record(body, len, (rn__data_mode_t)(len % 3), &b, why, sizeof(why));
  else if (which == 1) rc = rn__rest_parse_records(body, len, (rn__data_mode_t)(len % 3), &b, why, sizeof(why));
  else rc = rn__rest_parse_batch(body, len, "user", 10000, &b, why, sizeof(why));
  if (rc) {
    CHECK(why[0] != 0 || rc == RN_ENOMEM);
    return;
  }
  CHECK(b.n >= 1);
  for (size_t i = 0; i < b.n; i++) {
    const rn__krec_t *r = &b.recs[i];
    /* Data: a span of the body, of the batch buffer, or a string of the document. */
    CHECK(inside(r->data, r->data_len, body, len) || inside(r->data, r->data_len, b.buf, b.buf_len) || b.root != NULL);
    if (which < 2) CHECK(r->key != NULL && r->key_len >= 1);
    else CHECK(r->key == NULL || inside(r->key, r->key_len, b.buf, b.buf_len));
  }
  rn__rest_batch_free(&b);
}

static void fuzz_tokens(int which, const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  if (which == 0) {
    rn__kseq_t q, q2;
    if (rn__kseq_decode(s, size, &q) == 0) {
      char out[RN__KSEQ_BUFLEN];
      size_t n = rn__kseq_encode(q.created_s * 1000, q.shard, q.offset, out);
      CHECK(rn__kseq_decode(out, n, &q2) == 0);
      CHECK(q2.shard == q.shard && q2.offset == q.offset && q2.created_s == q.created_s);
    }
  } else if (which == 1) {
    static const uint8_t key[RN__KITER_KEYLEN] = {7};
    rn__kiter_t it, it2;
    if (rn__kiter_decode(key, s, size, &it) == 0) {
      char out[RN__KITER_MAXLEN + 1];
      size_t n = rn__kiter_encode(key, &it, out);
      CHECK(n == size && memcmp(out, s, n) == 0);
      CHECK(rn__kiter_decode(key, out, n, &it2) == 0 && it2.offset == it.offset);
    }
  } else if (which == 2) {
    int64_t ms;
    if (rn__timestamp_parse(s, size, &ms) == 0) CHECK(ms >= 0);
    uint8_t h[RN_HASH_KEY_BYTES];
    char back[RN_HASH_KEY_STRLEN];
    if (rn_hash_key_parse_n(s, size, h) == 0) {
      rn_hash_key_format(h, back);
      CHECK(strlen(back) == size && memcmp(back, s, size) == 0);
    }
  } else {
    uint8_t *out = NULL;
    size_t ol = 0;
    if (rn__gunzip(data, size, 1u << 20, &out, &ol) == 0) CHECK(ol <= (1u << 20));
    free(out);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t sel = data[0];
  const uint8_t *body = data + 1;
  size_t len = size - 1;
  if (sel < 128) fuzz_kinesis(OPS[sel % NOPS], body, len);
  else if (sel < 192) fuzz_rest(sel % 3, body, len);
  else fuzz_tokens(sel % 4, body, len);
  return 0;
}
