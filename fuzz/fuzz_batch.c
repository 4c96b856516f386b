/*
 * fuzz_batch.c — libFuzzer target for the record batch decoder (proto/batch.c).
 *
 * Each input is tried twice: as given, which exercises the header and the
 * checksum checks, and with both XXH3 checksums recomputed over the input,
 * which lets the fuzzer past verification into the record decoder (random
 * bytes almost never carry a matching 64-bit checksum). For every batch that
 * verifies, the target iterates all records, walks every record's headers and
 * checks what the decoder promises:
 *   - verify, header_decode and iter_init agree, and *need is consistent;
 *   - every pointer handed out lies inside the batch or the LZ4 scratch;
 *   - when all records decode, re-encoding them with the builder reproduces
 *     the records section byte for byte (the decoder accepts exactly one
 *     encoding), and the batch re-encoded with LZ4 decodes to the same records.
 * A violated promise aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "runnel/batch.h"
#include "fuzz_check.h"

static void put_le(uint8_t *p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static int inside(const uint8_t *p, size_t n, const uint8_t *lo, const uint8_t *hi) {
  return p != NULL && p >= lo && p <= hi && n <= (size_t)(hi - p);
}

/* Growable storage for the headers of one record, reused across records. */
static rn_record_header_t *hdrs;
static size_t hdrs_cap;

static void collect_headers(const rn_record_t *rec, const uint8_t *lo, const uint8_t *hi) {
  CHECK(inside(rec->headers_raw, rec->headers_raw_len, lo, hi));
  if (rec->header_count > hdrs_cap) {
    size_t cap = rec->header_count * 2;
    rn_record_header_t *p = realloc(hdrs, cap * sizeof *p);
    CHECK(p != NULL);
    hdrs = p;
    hdrs_cap = cap;
  }
  size_t pos = 0, n = 0;
  rn_record_header_t h;
  rn_err_t rc;
  while ((rc = rn_record_header_next(rec, &pos, &h)) == 0) {
    CHECK(n < rec->header_count);
    CHECK(inside(h.key, h.key_len, rec->headers_raw, rec->headers_raw + rec->headers_raw_len));
    CHECK(inside(h.value, h.value_len, rec->headers_raw,
                 rec->headers_raw + rec->headers_raw_len));
    hdrs[n++] = h;
  }
  /* The iterator validated the headers: the walk ends cleanly at the count. */
  CHECK(rc == RN_EOFFSET);
  CHECK(n == rec->header_count);
  CHECK(pos == rec->headers_raw_len);
}

static int same_header(const rn_batch_header_t *a, const rn_batch_header_t *b) {
  return a->batch_length == b->batch_length && a->magic == b->magic && a->codec == b->codec &&
         a->header_length == b->header_length && a->base_offset == b->base_offset &&
         a->leader_epoch == b->leader_epoch && a->arrival_time_ms == b->arrival_time_ms &&
         a->header_checksum == b->header_checksum &&
         a->payload_checksum == b->payload_checksum && a->record_count == b->record_count &&
         a->records_length == b->records_length && a->first_timestamp == b->first_timestamp &&
         a->max_timestamp == b->max_timestamp && a->producer_id == b->producer_id &&
         a->producer_epoch == b->producer_epoch && a->base_sequence == b->base_sequence;
}

static int same_record(const rn_record_t *a, const rn_record_t *b) {
  return a->timestamp == b->timestamp && a->key_len == b->key_len &&
         a->value_len == b->value_len && a->id_len == b->id_len &&
         a->header_count == b->header_count && a->headers_raw_len == b->headers_raw_len &&
         memcmp(a->key, b->key, a->key_len) == 0 &&
         memcmp(a->value, b->value, a->value_len) == 0 &&
         memcmp(a->id, b->id, a->id_len) == 0 &&
         memcmp(a->headers_raw, b->headers_raw, a->headers_raw_len) == 0;
}

/* Iterate two batches in lockstep; they must hold the same records. */
static void check_same_records(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  rn_batch_iter_t ia, ib;
  CHECK(rn_batch_iter_init(&ia, a, alen) == 0);
  CHECK(rn_batch_iter_init(&ib, b, blen) == 0);
  CHECK(ia.hdr.record_count == ib.hdr.record_count);
  CHECK(ia.hdr.records_length == ib.hdr.records_length);
  rn_record_t ra, rb;
  rn_err_t rca, rcb;
  while ((rca = rn_batch_iter_next(&ia, &ra)) == 0) {
    rcb = rn_batch_iter_next(&ib, &rb);
    CHECK(rcb == 0);
    CHECK(same_record(&ra, &rb));
    CHECK(ra.offset == rb.offset);
  }
  CHECK(rca == RN_EOFFSET);
  CHECK(rn_batch_iter_next(&ib, &rb) == RN_EOFFSET);
  rn_batch_iter_free(&ia);
  rn_batch_iter_free(&ib);
}

static void run(const uint8_t *buf, size_t len) {
  rn_batch_header_t hdr, hdr2;
  size_t need = 0;
  rn_err_t rc = rn_batch_verify(buf, len, &hdr, &need);
  CHECK(rc == 0 || rc == RN_EPARTIAL || rc == RN_EFORMAT || rc == RN_ECORRUPT);
  if (rc == RN_EPARTIAL) CHECK(need > len && need <= RN_BATCH_MAX_SIZE);
  rn_err_t drc = rn_batch_header_decode(buf, len, &hdr2);
  if (len < RN_BATCH_HEADER_SIZE) CHECK(drc == RN_EPARTIAL && rc == RN_EPARTIAL);
  /* verify checks the header checksum before the codec, the magic before both. */
  if (len >= RN_BATCH_HEADER_SIZE && buf[4] != RN_BATCH_MAGIC)
    CHECK(rc == RN_EFORMAT && drc == RN_EFORMAT);
  if (drc == RN_EFORMAT) CHECK(rc == RN_EFORMAT || rc == RN_ECORRUPT);

  rn_batch_iter_t it;
  rn_err_t irc = rn_batch_iter_init(&it, buf, len);
  if (rc != 0) {
    CHECK(irc == rc);
    rn_batch_iter_free(&it);
    return;
  }
  CHECK(drc == 0);
  CHECK(same_header(&hdr, &hdr2));
  CHECK(need == hdr.batch_length && need <= len);
  CHECK(hdr.record_count >= 1);
  if (irc != 0) {
    /* Only the LZ4 block itself can fail after verification. */
    CHECK(irc == RN_ECORRUPT && hdr.codec == RN_CODEC_LZ4);
    rn_batch_iter_free(&it);
    return;
  }
  const uint8_t *lo = it.p, *hi = it.end; /* the uncompressed records section */
  CHECK((size_t)(hi - lo) == hdr.records_length);

  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  rn_record_t rec;
  uint32_t n = 0;
  while ((irc = rn_batch_iter_next(&it, &rec)) == 0) {
    CHECK(rec.offset == hdr.base_offset + n);
    CHECK(rec.timestamp <= hdr.max_timestamp);
    if (n == 0) CHECK(rec.timestamp == hdr.first_timestamp);
    CHECK(inside(rec.key, rec.key_len, lo, hi));
    CHECK(inside(rec.value, rec.value_len, lo, hi));
    CHECK(inside(rec.id, rec.id_len, lo, hi));
    CHECK(rec.headers == NULL);
    collect_headers(&rec, lo, hi);
    rn_record_t copy = rec;
    copy.headers = hdrs;
    CHECK(rn_batch_builder_add(&b, &copy) == 0);
    n++;
    CHECK(it.index == n);
  }
  CHECK(irc == RN_EOFFSET || irc == RN_ECORRUPT);
  CHECK(rn_batch_iter_next(&it, &rec) == irc); /* sticky */

  if (irc == RN_EOFFSET) {
    /* Re-encode: the same records section, byte for byte. */
    CHECK(n == hdr.record_count);
    rn_batch_producer_t prod = {hdr.producer_id, hdr.producer_epoch, hdr.base_sequence};
    const uint8_t *out;
    size_t out_len;
    CHECK(rn_batch_builder_finish(&b, RN_CODEC_NONE, &prod, &out, &out_len) == 0);
    CHECK(out_len == RN_BATCH_HEADER_SIZE + hdr.records_length);
    CHECK(memcmp(out + RN_BATCH_HEADER_SIZE, lo, hdr.records_length) == 0);
    rn_batch_header_t h3;
    CHECK(rn_batch_verify(out, out_len, &h3, NULL) == 0);
    CHECK(h3.record_count == hdr.record_count);
    CHECK(h3.first_timestamp == hdr.first_timestamp);
    CHECK(h3.max_timestamp <= hdr.max_timestamp);
    CHECK(h3.producer_id == hdr.producer_id && h3.producer_epoch == hdr.producer_epoch &&
          h3.base_sequence == hdr.base_sequence);
    /* Keep the uncompressed batch (finish with LZ4 leaves buf alone, but the
     * contract only promises the latest result). */
    uint8_t *plain = malloc(out_len);
    CHECK(plain != NULL);
    memcpy(plain, out, out_len);
    size_t plain_len = out_len;
    CHECK(rn_batch_builder_finish(&b, RN_CODEC_LZ4, &prod, &out, &out_len) == 0);
    CHECK(out_len <= plain_len);
    check_same_records(plain, plain_len, out, out_len);
    /* Stamping keeps it valid and moves the offsets. */
    rn_batch_stamp(plain, hdr.base_offset, hdr.leader_epoch, hdr.arrival_time_ms);
    check_same_records(plain, plain_len, buf, len);
    free(plain);
  }
  rn_batch_builder_free(&b);
  rn_batch_iter_free(&it);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Exact-size copies so ASan sees any read past the input. */
  uint8_t *buf = malloc(size ? size : 1);
  if (buf == NULL) return 0;
  memcpy(buf, data, size);
  run(buf, size);

  if (size >= RN_BATCH_HEADER_SIZE) {
    /* Same bytes with checksums that match, over as much as is there. */
    size_t end = (size_t)buf[0] | (size_t)buf[1] << 8 | (size_t)buf[2] << 16 |
                 (size_t)buf[3] << 24;
    if (end > size) end = size;
    if (end >= RN_BATCH_PAYLOAD_START)
      put_le(buf + 40, XXH3_64bits(buf + RN_BATCH_PAYLOAD_START, end - RN_BATCH_PAYLOAD_START),
             8);
    put_le(buf + 32, XXH3_64bits(buf, 32), 8);
    run(buf, size);
  }
  free(buf);
  return 0;
}
