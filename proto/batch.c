/*
 * batch.c — encoder, verifier and iterator of the record batch (see
 * runnel/batch.h and docs/format.md for the byte layout).
 *
 * Pure functions over bytes: no I/O, no global state. The decoder is written
 * for hostile input. Every length is checked against the bytes that remain
 * before it is used, arithmetic on untrusted values is done so it cannot
 * overflow, and anything the format does not allow is rejected rather than
 * tolerated: reserved fields and bits must be 0, the header length must be
 * RN_BATCH_HEADER_SIZE, varints inside records must be minimal, record i must
 * carry offset_delta i, record 0 must carry timestamp_delta 0, no record may
 * be later than max_timestamp, each record must consume exactly its length
 * and the records must consume exactly the records section. So a batch that
 * decodes has exactly one encoding of its records, and re-encoding the decoded
 * records with the builder reproduces the records section byte for byte (the
 * fuzz target checks this).
 *
 * Multi-byte fields are little-endian at any alignment: they are read and
 * written through memcpy into a local, never through a cast pointer.
 *
 * The builder keeps one growable buffer: RN_BATCH_HEADER_SIZE bytes of header
 * space followed by the raw records, grown by doubling, so adding a record
 * costs no allocation in the steady state. finish() writes the header in place
 * (codec NONE) or compresses into a second owned buffer (LZ4).
 */
#include "runnel/batch.h"

#include <assert.h>
#include <lz4.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- layout --------------------------------------------------------------- */

#define OFF_BATCH_LENGTH 0
#define OFF_MAGIC 4
#define OFF_ATTRIBUTES 5
#define OFF_HEADER_LENGTH 6
#define OFF_BASE_OFFSET 8
#define OFF_LEADER_EPOCH 16
#define OFF_RESERVED_20 20
#define OFF_ARRIVAL_TIME 24
#define OFF_HEADER_CHECKSUM 32
#define OFF_PAYLOAD_CHECKSUM 40
#define OFF_RECORD_COUNT 48
#define OFF_RECORDS_LENGTH 52
#define OFF_FIRST_TIMESTAMP 56
#define OFF_MAX_TIMESTAMP 64
#define OFF_PRODUCER_ID 72
#define OFF_PRODUCER_EPOCH 80
#define OFF_RESERVED_82 82
#define OFF_BASE_SEQUENCE 84

_Static_assert(OFF_BASE_SEQUENCE + 4 == RN_BATCH_HEADER_SIZE, "header layout");
_Static_assert(OFF_RECORD_COUNT == RN_BATCH_PAYLOAD_START, "payload start");
_Static_assert(OFF_HEADER_CHECKSUM == 32, "header checksum covers [0, 32)");
_Static_assert(RN_BATCH_MAX_SIZE <= LZ4_MAX_INPUT_SIZE, "records must fit one LZ4 block");

#define ATTR_CODEC_MASK 0x07u

/* Largest records section (uncompressed): the uncompressed batch must fit the
 * format's ceiling, so a compressed batch never inflates past it either. */
#define RECORDS_MAX ((size_t)RN_BATCH_MAX_SIZE - RN_BATCH_HEADER_SIZE)

/* Smallest encoded record: length, attributes, timestamp_delta, offset_delta,
 * key_length, value_length, id_length, header_count — one byte each. */
#define RECORD_MIN_SIZE 8u

/* An LZ4 block cannot expand more than 255x: the densest sequence is a match
 * extension byte (255 bytes of output per input byte). A records_length above
 * this is impossible and is rejected before anything is allocated for it. */
#define LZ4_MAX_RATIO 255u

/* ---- little-endian fields at any alignment -------------------------------- */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define LE16(x) __builtin_bswap16(x)
#define LE32(x) __builtin_bswap32(x)
#define LE64(x) __builtin_bswap64(x)
#else
#define LE16(x) (x)
#define LE32(x) (x)
#define LE64(x) (x)
#endif

static inline uint16_t rd_u16(const uint8_t *p) {
  uint16_t v;
  memcpy(&v, p, sizeof v);
  return LE16(v);
}
static inline uint32_t rd_u32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return LE32(v);
}
static inline uint64_t rd_u64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return LE64(v);
}
static inline int32_t rd_i32(const uint8_t *p) {
  uint32_t u = rd_u32(p);
  int32_t v;
  memcpy(&v, &u, sizeof v); /* two's complement reinterpretation, no UB */
  return v;
}
static inline int64_t rd_i64(const uint8_t *p) {
  uint64_t u = rd_u64(p);
  int64_t v;
  memcpy(&v, &u, sizeof v);
  return v;
}
static inline void wr_u16(uint8_t *p, uint16_t v) {
  v = LE16(v);
  memcpy(p, &v, sizeof v);
}
static inline void wr_u32(uint8_t *p, uint32_t v) {
  v = LE32(v);
  memcpy(p, &v, sizeof v);
}
static inline void wr_u64(uint8_t *p, uint64_t v) {
  v = LE64(v);
  memcpy(p, &v, sizeof v);
}
static inline void wr_i32(uint8_t *p, int32_t v) {
  uint32_t u;
  memcpy(&u, &v, sizeof u);
  wr_u32(p, u);
}
static inline void wr_i64(uint8_t *p, int64_t v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  wr_u64(p, u);
}

/* ---- varints -------------------------------------------------------------- */

/* Bytes rn_varint_encode writes for v: one per started group of 7 bits. */
static inline size_t varint_size(uint64_t v) {
  return 1 + (size_t)(63 - __builtin_clzll(v | 1)) / 7;
}

static inline size_t varint_put(uint8_t *out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

size_t rn_varint_encode(uint64_t v, uint8_t *out) { return varint_put(out, v); }

size_t rn_varint_decode(const uint8_t *buf, size_t len, uint64_t *v) {
  uint64_t r = 0;
  for (size_t i = 0; i < 10; i++) {
    if (i >= len) return 0;
    uint8_t byte = buf[i];
    /* The 10th byte holds bit 63 only: any higher bit would overflow 64 bits
     * and a continuation bit would make the varint longer than 10 bytes. */
    if (i == 9 && byte > 1) return (size_t)-1;
    r |= (uint64_t)(byte & 0x7f) << (7 * i);
    if (!(byte & 0x80)) {
      *v = r;
      return i + 1;
    }
  }
  return (size_t)-1; /* not reached: the 10th byte either ends or fails */
}

/* Reads a minimal varint from [*p, end) and advances *p. Records are held to
 * the one canonical encoding, so "0x80 0x00" for 0 is malformed. */
static inline bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  const uint8_t *q = *p;
  if (q < end && *q < 0x80) { /* fast path: one byte */
    *v = *q;
    *p = q + 1;
    return true;
  }
  size_t n = rn_varint_decode(q, (size_t)(end - q), v);
  if (n == 0 || n == (size_t)-1 || n != varint_size(*v)) return false;
  *p = q + n;
  return true;
}

/* Reads "varint length, bytes" from [*p, end): the bytes must all be there. */
static inline bool get_bytes(const uint8_t **p, const uint8_t *end, const uint8_t **data,
                             size_t *len) {
  uint64_t n;
  if (!get_varint(p, end, &n)) return false;
  if (n > (uint64_t)(end - *p)) return false;
  *data = *p;
  *len = (size_t)n;
  *p += n;
  return true;
}

/* ---- header --------------------------------------------------------------- */

/* Everything except the checksums; buf holds at least RN_BATCH_HEADER_SIZE. */
static rn_err_t header_parse(const uint8_t *buf, rn_batch_header_t *out) {
  rn_batch_header_t h;
  memset(&h, 0, sizeof h); /* no indeterminate padding bytes */
  h.magic = buf[OFF_MAGIC];
  if (h.magic != RN_BATCH_MAGIC) return RN_EFORMAT;
  uint8_t attributes = buf[OFF_ATTRIBUTES];
  h.codec = attributes & ATTR_CODEC_MASK;
  if (h.codec != RN_CODEC_NONE && h.codec != RN_CODEC_LZ4) return RN_EFORMAT;
  if (attributes & ~ATTR_CODEC_MASK) return RN_ECORRUPT; /* reserved bits */

  h.batch_length = rd_u32(buf + OFF_BATCH_LENGTH);
  h.header_length = rd_u16(buf + OFF_HEADER_LENGTH);
  h.base_offset = rd_u64(buf + OFF_BASE_OFFSET);
  h.leader_epoch = rd_u32(buf + OFF_LEADER_EPOCH);
  h.arrival_time_ms = rd_i64(buf + OFF_ARRIVAL_TIME);
  h.header_checksum = rd_u64(buf + OFF_HEADER_CHECKSUM);
  h.payload_checksum = rd_u64(buf + OFF_PAYLOAD_CHECKSUM);
  h.record_count = rd_u32(buf + OFF_RECORD_COUNT);
  h.records_length = rd_u32(buf + OFF_RECORDS_LENGTH);
  h.first_timestamp = rd_i64(buf + OFF_FIRST_TIMESTAMP);
  h.max_timestamp = rd_i64(buf + OFF_MAX_TIMESTAMP);
  h.producer_id = rd_u64(buf + OFF_PRODUCER_ID);
  h.producer_epoch = rd_u16(buf + OFF_PRODUCER_EPOCH);
  h.base_sequence = rd_i32(buf + OFF_BASE_SEQUENCE);

  if (h.header_length != RN_BATCH_HEADER_SIZE) return RN_ECORRUPT;
  if (h.batch_length < RN_BATCH_HEADER_SIZE || h.batch_length > RN_BATCH_MAX_SIZE)
    return RN_ECORRUPT;
  if (rd_u32(buf + OFF_RESERVED_20) != 0 || rd_u16(buf + OFF_RESERVED_82) != 0)
    return RN_ECORRUPT;

  uint64_t section = (uint64_t)h.batch_length - RN_BATCH_HEADER_SIZE; /* stored bytes */
  if (h.codec == RN_CODEC_NONE) {
    if (h.records_length != section) return RN_ECORRUPT;
  } else {
    if (h.records_length > RECORDS_MAX) return RN_ECORRUPT;
    if (h.records_length > section * LZ4_MAX_RATIO) return RN_ECORRUPT;
  }
  if (h.record_count == 0 || h.record_count > h.records_length / RECORD_MIN_SIZE)
    return RN_ECORRUPT;
  /* Record 0 is at first_timestamp and none is after max_timestamp. */
  if (h.max_timestamp < h.first_timestamp) return RN_ECORRUPT;
  /* Offsets of all records must be representable: last offset cannot wrap. */
  if (h.base_offset > UINT64_MAX - (h.record_count - 1)) return RN_ECORRUPT;

  *out = h;
  return 0;
}

rn_err_t rn_batch_header_decode(const uint8_t *buf, size_t len, rn_batch_header_t *hdr) {
  if (len < RN_BATCH_HEADER_SIZE) return RN_EPARTIAL;
  if (buf == NULL || hdr == NULL) return RN_EINVAL;
  return header_parse(buf, hdr);
}

rn_err_t rn_batch_verify(const uint8_t *buf, size_t len, rn_batch_header_t *hdr, size_t *need) {
  if (len < RN_BATCH_HEADER_SIZE) {
    if (need) *need = RN_BATCH_HEADER_SIZE;
    return RN_EPARTIAL;
  }
  if (buf == NULL) return RN_EINVAL;
  /* Order matters. The magic first: another format version may put its
   * checksums elsewhere, and must read as "unsupported", not "corrupt". Then
   * the header checksum, before any header field is believed: a flipped bit
   * in batch_length must fail now, not make the caller wait for bytes that
   * will never come. Then the structure, then the payload. */
  if (buf[OFF_MAGIC] != RN_BATCH_MAGIC) return RN_EFORMAT;
  if (XXH3_64bits(buf, OFF_HEADER_CHECKSUM) != rd_u64(buf + OFF_HEADER_CHECKSUM))
    return RN_ECORRUPT;
  rn_batch_header_t h;
  rn_err_t rc = header_parse(buf, &h);
  if (rc != 0) return rc;
  if (len < h.batch_length) {
    if (need) *need = h.batch_length;
    return RN_EPARTIAL;
  }
  if (XXH3_64bits(buf + RN_BATCH_PAYLOAD_START, h.batch_length - RN_BATCH_PAYLOAD_START) !=
      h.payload_checksum)
    return RN_ECORRUPT;
  if (hdr) *hdr = h;
  if (need) *need = h.batch_length;
  return 0;
}

void rn_batch_stamp(uint8_t *buf, uint64_t base_offset, uint32_t leader_epoch, int64_t arrival_ms) {
  wr_u64(buf + OFF_BASE_OFFSET, base_offset);
  wr_u32(buf + OFF_LEADER_EPOCH, leader_epoch);
  wr_i64(buf + OFF_ARRIVAL_TIME, arrival_ms);
  wr_u64(buf + OFF_HEADER_CHECKSUM, XXH3_64bits(buf, OFF_HEADER_CHECKSUM));
}

/* ---- encoding ------------------------------------------------------------- */

void rn_batch_builder_init(rn_batch_builder_t *b) { memset(b, 0, sizeof *b); }

size_t rn_batch_builder_size(const rn_batch_builder_t *b) {
  return b->len > RN_BATCH_HEADER_SIZE ? b->len - RN_BATCH_HEADER_SIZE : 0;
}

/* Grows buf to hold at least `need` bytes (need <= RN_BATCH_MAX_SIZE). */
static rn_err_t builder_reserve(rn_batch_builder_t *b, size_t need) {
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < need) cap *= 2;
  if (cap > RN_BATCH_MAX_SIZE) cap = RN_BATCH_MAX_SIZE; /* need fits, see callers */
  uint8_t *p = realloc(b->buf, cap);
  if (p == NULL) return RN_ENOMEM;
  b->buf = p;
  b->cap = cap;
  return 0;
}

/* Adds the encoded size of "varint n, n bytes" to *total; false when a piece
 * alone could not fit a batch (which also keeps the sum far from overflow). */
static inline bool size_bytes(uint64_t *total, const void *data, size_t n, bool *bad_ptr) {
  if (n > RECORDS_MAX) return false;
  if (n != 0 && data == NULL) *bad_ptr = true;
  *total += varint_size(n) + n;
  return true;
}

static inline uint8_t *put_bytes(uint8_t *w, const void *data, size_t n) {
  w += varint_put(w, n);
  if (n) memcpy(w, data, n);
  return w + n;
}

rn_err_t rn_batch_builder_add(rn_batch_builder_t *b, const rn_record_t *rec) {
  if (b == NULL || rec == NULL) return RN_EINVAL;
  if (rec->header_count != 0 && rec->headers == NULL) return RN_EINVAL;
  if (b->count == UINT32_MAX) return RN_ETOOLARGE;

  int64_t first = b->count ? b->first_ts : rec->timestamp;
  int64_t delta;
  if (__builtin_sub_overflow(rec->timestamp, first, &delta)) return RN_EINVAL;
  uint64_t zz_delta = rn_zigzag_encode(delta);

  /* Size the record body (everything after its length varint) first. */
  bool bad_ptr = false;
  uint64_t body = 1 + varint_size(zz_delta) + varint_size(b->count);
  if (!size_bytes(&body, rec->key, rec->key_len, &bad_ptr) ||
      !size_bytes(&body, rec->value, rec->value_len, &bad_ptr) ||
      !size_bytes(&body, rec->id, rec->id_len, &bad_ptr))
    return RN_ETOOLARGE;
  if (rec->header_count > RECORDS_MAX) return RN_ETOOLARGE;
  body += varint_size(rec->header_count);
  for (size_t i = 0; i < rec->header_count; i++) {
    const rn_record_header_t *h = &rec->headers[i];
    if (!size_bytes(&body, h->key, h->key_len, &bad_ptr) ||
        !size_bytes(&body, h->value, h->value_len, &bad_ptr) || body > RECORDS_MAX)
      return RN_ETOOLARGE;
  }
  if (bad_ptr) return RN_EINVAL;
  uint64_t total = varint_size(body) + body;
  size_t base = b->len ? b->len : RN_BATCH_HEADER_SIZE;
  if (total > RN_BATCH_MAX_SIZE - base) return RN_ETOOLARGE;
  rn_err_t rc = builder_reserve(b, base + (size_t)total);
  if (rc != 0) return rc;

  uint8_t *w = b->buf + base;
  w += varint_put(w, body);
  *w++ = 0; /* record attributes */
  w += varint_put(w, zz_delta);
  w += varint_put(w, b->count);
  w = put_bytes(w, rec->key, rec->key_len);
  w = put_bytes(w, rec->value, rec->value_len);
  w = put_bytes(w, rec->id, rec->id_len);
  w += varint_put(w, rec->header_count);
  for (size_t i = 0; i < rec->header_count; i++) {
    w = put_bytes(w, rec->headers[i].key, rec->headers[i].key_len);
    w = put_bytes(w, rec->headers[i].value, rec->headers[i].value_len);
  }
  assert((uint64_t)(w - (b->buf + base)) == total); /* sizing and writing agree */

  b->len = base + (size_t)total;
  if (b->count == 0) {
    b->first_ts = rec->timestamp;
    b->max_ts = rec->timestamp;
  } else if (rec->timestamp > b->max_ts) {
    b->max_ts = rec->timestamp;
  }
  b->count++;
  return 0;
}

/* Writes the 88-byte header for `records_length` raw bytes stored as
 * `stored` bytes with `codec`, then both checksums. dst holds the header
 * followed by the stored records. Broker fields are 0. */
static void write_header(uint8_t *dst, const rn_batch_builder_t *b, rn_codec_t codec,
                         size_t stored, const rn_batch_producer_t *producer) {
  uint32_t batch_length = (uint32_t)(RN_BATCH_HEADER_SIZE + stored);
  memset(dst, 0, RN_BATCH_HEADER_SIZE);
  wr_u32(dst + OFF_BATCH_LENGTH, batch_length);
  dst[OFF_MAGIC] = RN_BATCH_MAGIC;
  dst[OFF_ATTRIBUTES] = (uint8_t)codec;
  wr_u16(dst + OFF_HEADER_LENGTH, RN_BATCH_HEADER_SIZE);
  wr_u32(dst + OFF_RECORD_COUNT, b->count);
  wr_u32(dst + OFF_RECORDS_LENGTH, (uint32_t)(b->len - RN_BATCH_HEADER_SIZE));
  wr_i64(dst + OFF_FIRST_TIMESTAMP, b->first_ts);
  wr_i64(dst + OFF_MAX_TIMESTAMP, b->max_ts);
  wr_u64(dst + OFF_PRODUCER_ID, producer ? producer->producer_id : 0);
  wr_u16(dst + OFF_PRODUCER_EPOCH, producer ? producer->producer_epoch : 0);
  wr_i32(dst + OFF_BASE_SEQUENCE, producer ? producer->base_sequence : -1);
  wr_u64(dst + OFF_PAYLOAD_CHECKSUM,
         XXH3_64bits(dst + RN_BATCH_PAYLOAD_START, batch_length - RN_BATCH_PAYLOAD_START));
  wr_u64(dst + OFF_HEADER_CHECKSUM, XXH3_64bits(dst, OFF_HEADER_CHECKSUM));
}

rn_err_t rn_batch_builder_finish(rn_batch_builder_t *b, rn_codec_t codec,
                                 const rn_batch_producer_t *producer, const uint8_t **out,
                                 size_t *out_len) {
  if (b == NULL || out == NULL || out_len == NULL) return RN_EINVAL;
  if (codec != RN_CODEC_NONE && codec != RN_CODEC_LZ4) return RN_EINVAL;
  if (b->count == 0) return RN_EINVAL;
  size_t raw = b->len - RN_BATCH_HEADER_SIZE;

  if (codec == RN_CODEC_LZ4) {
    /* Give LZ4 one byte less than the raw size: it returns 0 when the block
     * does not fit, which is exactly "does not shrink". */
    size_t need = RN_BATCH_HEADER_SIZE + raw - 1;
    if (b->out_cap < need) {
      uint8_t *p = realloc(b->out, need);
      if (p == NULL) return RN_ENOMEM;
      b->out = p;
      b->out_cap = need;
    }
    int clen = LZ4_compress_default((const char *)(b->buf + RN_BATCH_HEADER_SIZE),
                                    (char *)(b->out + RN_BATCH_HEADER_SIZE), (int)raw,
                                    (int)(raw - 1));
    if (clen > 0) {
      write_header(b->out, b, RN_CODEC_LZ4, (size_t)clen, producer);
      b->out_len = RN_BATCH_HEADER_SIZE + (size_t)clen;
      *out = b->out;
      *out_len = b->out_len;
      return 0;
    }
  }
  write_header(b->buf, b, RN_CODEC_NONE, raw, producer);
  b->out_len = b->len;
  *out = b->buf;
  *out_len = b->len;
  return 0;
}

void rn_batch_builder_reset(rn_batch_builder_t *b) {
  b->len = 0;
  b->count = 0;
  b->first_ts = 0;
  b->max_ts = 0;
  b->out_len = 0;
}

void rn_batch_builder_free(rn_batch_builder_t *b) {
  if (b == NULL) return;
  free(b->buf);
  free(b->out);
  memset(b, 0, sizeof *b);
}

/* ---- decoding ------------------------------------------------------------- */

/* Both inits: h is the decoded header of batch, whose batch_length bytes are
 * all there. Sets up the records section (decompressing LZ4). */
static rn_err_t iter_start(rn_batch_iter_t *it, const uint8_t *batch, const rn_batch_header_t *hp) {
  rn_batch_header_t h = *hp;
  const uint8_t *section = batch + RN_BATCH_HEADER_SIZE;
  size_t stored = h.batch_length - RN_BATCH_HEADER_SIZE;
  if (h.codec == RN_CODEC_LZ4) {
    uint8_t *scratch = malloc(h.records_length);
    if (scratch == NULL) return RN_ENOMEM;
    int n = LZ4_decompress_safe((const char *)section, (char *)scratch, (int)stored,
                                (int)h.records_length);
    if (n < 0 || (uint32_t)n != h.records_length) {
      free(scratch);
      return RN_ECORRUPT;
    }
    it->scratch = scratch;
    it->scratch_cap = h.records_length;
    section = scratch;
    stored = h.records_length;
  }
  it->hdr = h;
  it->p = section;
  it->end = section + stored;
  return 0;
}

rn_err_t rn_batch_iter_init(rn_batch_iter_t *it, const uint8_t *batch, size_t len) {
  if (it == NULL) return RN_EINVAL;
  memset(it, 0, sizeof *it);
  rn_batch_header_t h;
  rn_err_t rc = rn_batch_verify(batch, len, &h, NULL);
  if (rc != 0) return rc;
  return iter_start(it, batch, &h);
}

rn_err_t rn_batch_iter_init_verified(rn_batch_iter_t *it, const uint8_t *batch, size_t len) {
  if (it == NULL) return RN_EINVAL;
  memset(it, 0, sizeof *it);
  if (len < RN_BATCH_HEADER_SIZE) return RN_EPARTIAL;
  if (batch == NULL) return RN_EINVAL;
  /* Everything rn_batch_verify checks except the two hashes: the bytes were
   * hashed when they were read (rn_log_read) and have not left memory since;
   * the structure is still checked, so a caller that passes the wrong bytes
   * gets an error and never a read past the end. */
  rn_batch_header_t h;
  rn_err_t rc = header_parse(batch, &h);
  if (rc != 0) return rc;
  if (len < h.batch_length) return RN_EPARTIAL;
  return iter_start(it, batch, &h);
}

/* Marks the iterator failed: every later next() returns RN_ECORRUPT. */
static rn_err_t iter_fail(rn_batch_iter_t *it) {
  it->p = NULL;
  it->end = NULL;
  return RN_ECORRUPT;
}

rn_err_t rn_batch_iter_next(rn_batch_iter_t *it, rn_record_t *rec) {
  if (it == NULL || rec == NULL) return RN_EINVAL;
  if (it->p == NULL) return RN_ECORRUPT; /* failed init or an earlier bad record */
  if (it->index >= it->hdr.record_count) return RN_EOFFSET;

  const uint8_t *p = it->p;
  uint64_t length;
  if (!get_varint(&p, it->end, &length)) return iter_fail(it); /* also: fewer records */
  if (length > (uint64_t)(it->end - p)) return iter_fail(it);
  const uint8_t *end = p + length; /* this record's end */

  rn_record_t r;
  if (p == end || *p++ != 0) return iter_fail(it); /* attributes */
  uint64_t zz, offset_delta;
  if (!get_varint(&p, end, &zz)) return iter_fail(it);
  int64_t delta = rn_zigzag_decode(zz);
  if (it->index == 0 && delta != 0) return iter_fail(it);
  if (__builtin_add_overflow(it->hdr.first_timestamp, delta, &r.timestamp))
    return iter_fail(it);
  if (r.timestamp > it->hdr.max_timestamp) return iter_fail(it);
  if (!get_varint(&p, end, &offset_delta) || offset_delta != it->index) return iter_fail(it);
  r.offset = it->hdr.base_offset + offset_delta; /* no wrap: checked by header_parse */
  if (!get_bytes(&p, end, &r.key, &r.key_len) || !get_bytes(&p, end, &r.value, &r.value_len) ||
      !get_bytes(&p, end, &r.id, &r.id_len))
    return iter_fail(it);
  uint64_t count;
  if (!get_varint(&p, end, &count)) return iter_fail(it);
  if (count > (uint64_t)(end - p) / 2) return iter_fail(it); /* each header >= 2 bytes */
  r.headers_raw = p;
  for (uint64_t i = 0; i < count; i++) {
    const uint8_t *k, *v;
    size_t kl, vl;
    if (!get_bytes(&p, end, &k, &kl) || !get_bytes(&p, end, &v, &vl)) return iter_fail(it);
  }
  if (p != end) return iter_fail(it); /* record length must be consumed exactly */
  r.headers_raw_len = (size_t)(p - r.headers_raw);
  r.header_count = (size_t)count;
  r.headers = NULL;

  it->index++;
  it->p = end;
  /* The last record must end the records section exactly. */
  if (it->index == it->hdr.record_count && it->p != it->end) return iter_fail(it);
  *rec = r;
  return 0;
}

void rn_batch_iter_free(rn_batch_iter_t *it) {
  if (it == NULL) return;
  free(it->scratch);
  memset(it, 0, sizeof *it);
}

rn_err_t rn_record_header_next(const rn_record_t *rec, size_t *pos, rn_record_header_t *out) {
  if (rec == NULL || pos == NULL || out == NULL) return RN_EINVAL;
  if (*pos == rec->headers_raw_len) return RN_EOFFSET;
  if (*pos > rec->headers_raw_len || rec->headers_raw == NULL) return RN_ECORRUPT;
  const uint8_t *p = rec->headers_raw + *pos;
  const uint8_t *end = rec->headers_raw + rec->headers_raw_len;
  rn_record_header_t h;
  if (!get_bytes(&p, end, &h.key, &h.key_len) || !get_bytes(&p, end, &h.value, &h.value_len))
    return RN_ECORRUPT;
  *pos = (size_t)(p - rec->headers_raw);
  *out = h;
  return 0;
}
