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
 *   - REST records point inside the body or the batch's buffer, and the
 *     one-pass parsers (rest_fast.c, with their fallback) give exactly what
 *     the jansson path gives: the same records, or the same error and words.
 *   - GetRecords' writers: base64 decodes back, a stepped sequence number
 *     equals the next offset's encoding.
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

static rn_err_t rest_parse(int which, bool general, const uint8_t *body, size_t len, rn__rest_batch_t *b, char *why,
                           size_t wl) {
  rn__data_mode_t m = (rn__data_mode_t)(len % 3);
  if (which == 0)
    return general ? rn__rest_parse_record_general(body, len, m, b, why, wl) : rn__rest_parse_record(body, len, m, b, why, wl);
  if (which == 1)
    return general ? rn__rest_parse_records_general(body, len, m, b, why, wl)
                   : rn__rest_parse_records(body, len, m, b, why, wl);
  return general ? rn__rest_parse_batch_general(body, len, "user", 10000, b, why, wl)
                 : rn__rest_parse_batch(body, len, "user", 10000, b, why, wl);
}

static void fuzz_rest(int which, const uint8_t *body, size_t len) {
  rn__rest_batch_t b, g;
  char why[256] = "", gwhy[256] = "";
  rn_err_t rc = rest_parse(which, false, body, len, &b, why, sizeof(why));
  rn_err_t grc = rest_parse(which, true, body, len, &g, gwhy, sizeof(gwhy));
  /* The one-pass parser (with its fallback) answers exactly as jansson's path. */
  CHECK(rc == grc);
  if (rc) {
    CHECK(why[0] != 0 || rc == RN_ENOMEM);
    CHECK(strcmp(why, gwhy) == 0);
    return;
  }
  CHECK(b.n >= 1 && b.n == g.n && b.proxy == g.proxy);
  for (size_t i = 0; i < b.n; i++) {
    const rn__krec_t *r = &b.recs[i], *q = &g.recs[i];
    /* Data: a span of the body, of the batch buffer, or a string of the document. */
    CHECK(inside(r->data, r->data_len, body, len) || inside(r->data, r->data_len, b.buf, b.buf_len) || b.root != NULL);
    if (which < 2) CHECK(r->key != NULL && r->key_len >= 1);
    else CHECK(r->key == NULL || inside(r->key, r->key_len, b.buf, b.buf_len) || inside(r->key, r->key_len, body, len));
    CHECK(r->data_len == q->data_len && (r->data_len == 0 || memcmp(r->data, q->data, r->data_len) == 0));
    CHECK((r->key == NULL) == (q->key == NULL) && r->key_len == q->key_len);
    CHECK(r->key_len == 0 || memcmp(r->key, q->key, r->key_len) == 0);
    CHECK(r->has_hash == q->has_hash && (!r->has_hash || memcmp(r->hash, q->hash, 16) == 0));
  }
  rn__rest_batch_free(&b);
  rn__rest_batch_free(&g);
}

/* GetRecords' writers: the table/SIMD base64 decodes back to its input, and
 * stepping a sequence number equals encoding the next offset. */
static void fuzz_writers(const uint8_t *data, size_t size) {
  char *enc = malloc(rn__b64_encoded_len(size) + 1);
  uint8_t *dec = malloc(rn__b64_decoded_max(rn__b64_encoded_len(size)));
  CHECK(enc && dec);
  size_t el = rn__b64_encode_raw(data, size, enc), dl = 0;
  CHECK(el == rn__b64_encoded_len(size));
  CHECK(rn__b64_decode(enc, el, dec, &dl) == 0 && dl == size && (size == 0 || memcmp(dec, data, size) == 0));
  free(enc);
  free(dec);
  if (size >= 16) {
    uint64_t off, ms;
    uint32_t shard;
    memcpy(&off, data, 8);
    memcpy(&ms, data + 8, 4);
    memcpy(&shard, data + 12, 4);
    if (off == UINT64_MAX) off--;
    char a[RN__KSEQ_BUFLEN], b[RN__KSEQ_BUFLEN];
    size_t al = rn__kseq_encode((int64_t)(ms & 0xffffffffu) * 1000, shard, off, a);
    rn__kseq_next(a, al);
    size_t bl = rn__kseq_encode((int64_t)(ms & 0xffffffffu) * 1000, shard, off + 1, b);
    CHECK(al == bl && memcmp(a, b, al) == 0);
  }
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
  else if (sel < 250) fuzz_tokens(sel % 4, body, len);
  else fuzz_writers(body, len);
  return 0;
}
