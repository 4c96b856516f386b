/*
 * runnel/batch.h — the record batch: the unit of storage, replication and
 * transfer. Pure functions over bytes; no I/O. Shared by the broker's storage
 * and by librunnel. The byte layout is specified in docs/format.md; this
 * header is its C mirror.
 *
 * A batch is a fixed 88-byte little-endian header followed by the records
 * section (raw or one LZ4 block). Two checksums (XXH3-64):
 *   - payload_checksum, computed by the producer over bytes [48, batch_length):
 *     every producer field and the records. Never changes after production.
 *   - header_checksum over bytes [0, 32): the framing fields and the fields
 *     the broker stamps (base offset, leader epoch, arrival time). The producer
 *     computes it with its own values; the broker verifies it, stamps, and
 *     recomputes it (rn_batch_stamp).
 *
 * Layout (offsets in bytes, all little-endian):
 *    0 u32 batch_length      whole batch, header included
 *    4 u8  magic             RN_BATCH_MAGIC (format version 1)
 *    5 u8  attributes        bits 0-2: codec (rn_codec_t); other bits 0
 *    6 u16 header_length     RN_BATCH_HEADER_SIZE
 *    8 u64 base_offset       [broker] offset of the first record
 *   16 u32 leader_epoch      [broker]
 *   20 u32 reserved          0
 *   24 i64 arrival_time_ms   [broker]
 *   32 u64 header_checksum   XXH3-64 of bytes [0, 32)
 *   40 u64 payload_checksum  XXH3-64 of bytes [48, batch_length)
 *   48 u32 record_count      >= 1
 *   52 u32 records_length    uncompressed size of the records section
 *   56 i64 first_timestamp   ms since the epoch, of the first record
 *   64 i64 max_timestamp     largest record timestamp in the batch
 *   72 u64 producer_id       0 = not idempotent
 *   80 u16 producer_epoch
 *   82 u16 reserved          0
 *   84 i32 base_sequence     -1 = none
 *   88 ...  records section
 *
 * Record (inside the uncompressed records section), varints as in protobuf
 * (unsigned LEB128; "zz" = zigzag-encoded signed):
 *   varint  length            bytes of the record after this field
 *   u8      attributes        0
 *   zz      timestamp_delta   record ts - first_timestamp
 *   varint  offset_delta      index of the record in the batch (0, 1, ...)
 *   varint  key_length, key bytes          (the partition key)
 *   varint  value_length, value bytes      (the data)
 *   varint  id_length, id bytes            (record id for dedup; 0 = none)
 *   varint  header_count, then per header: varint klen, key, varint vlen, value
 */
#ifndef RUNNEL_BATCH_H
#define RUNNEL_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "runnel/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RN_BATCH_MAGIC 0xB1u
#define RN_BATCH_HEADER_SIZE 88u
#define RN_BATCH_PAYLOAD_START 48u
/* Hard ceiling of the format (u32 length); the configured limits are lower. */
#define RN_BATCH_MAX_SIZE (256u * 1024u * 1024u)

typedef enum { RN_CODEC_NONE = 0, RN_CODEC_LZ4 = 1 } rn_codec_t;

/* Decoded header. Plain values; no pointers into the buffer. */
typedef struct rn_batch_header {
  uint32_t batch_length;
  uint8_t magic;
  uint8_t codec; /* rn_codec_t */
  uint16_t header_length;
  uint64_t base_offset;
  uint32_t leader_epoch;
  int64_t arrival_time_ms;
  uint64_t header_checksum;
  uint64_t payload_checksum;
  uint32_t record_count;
  uint32_t records_length;
  int64_t first_timestamp;
  int64_t max_timestamp;
  uint64_t producer_id;
  uint16_t producer_epoch;
  int32_t base_sequence;
} rn_batch_header_t;

typedef struct rn_record_header {
  const uint8_t *key;
  size_t key_len;
  const uint8_t *value;
  size_t value_len;
} rn_record_header_t;

/* A record. When produced by rn_batch_iter_next every pointer points into the
 * iterator's input or scratch buffer and lives as long as that buffer. */
typedef struct rn_record {
  int64_t timestamp;
  uint64_t offset; /* absolute: base_offset + offset_delta (decode only) */
  const uint8_t *key;
  size_t key_len;
  const uint8_t *value;
  size_t value_len;
  const uint8_t *id;
  size_t id_len;
  size_t header_count;
  /* Encode: array of header_count entries. Decode: NULL; walk the raw header
   * bytes with rn_record_header_next. */
  const rn_record_header_t *headers;
  const uint8_t *headers_raw; /* decode only: header_count encoded headers */
  size_t headers_raw_len;
} rn_record_t;

/* ---- header ----------------------------------------------------------- */

/* Decode the fixed header from buf[0, len). Checks magic, header_length,
 * codec and that batch_length is within [header size, RN_BATCH_MAX_SIZE],
 * plus every rule the header alone can show: reserved fields and bits 0,
 * records_length consistent with batch_length and codec, 1 <= record_count
 * <= records_length / 8, max_timestamp >= first_timestamp, and the last
 * offset not wrapping (docs/format.md, "Decoder checklist").
 * Does not verify checksums. Returns 0, RN_EPARTIAL when len < header size,
 * RN_EFORMAT for an unknown magic/codec, RN_ECORRUPT for impossible lengths. */
rn_err_t rn_batch_header_decode(const uint8_t *buf, size_t len, rn_batch_header_t *hdr);

/* Verify a whole batch held in buf[0, len): header decode, len >= batch_length,
 * header checksum, payload checksum. Returns 0, RN_EPARTIAL (need
 * batch_length bytes; *need set when need != NULL), RN_EFORMAT or
 * RN_ECORRUPT. Does not decode records. hdr may be NULL.
 * Order: magic (RN_EFORMAT), header checksum (RN_ECORRUPT), header fields,
 * length, payload checksum; so a corrupted batch_length is reported as
 * RN_ECORRUPT rather than as a request for more bytes. *need: on 0 and on
 * RN_EPARTIAL, the bytes the batch occupies (RN_BATCH_HEADER_SIZE while the
 * header itself is incomplete); untouched on other errors. The batch is
 * buf[0, batch_length); bytes after it (the next batch) are ignored. */
rn_err_t rn_batch_verify(const uint8_t *buf, size_t len, rn_batch_header_t *hdr, size_t *need);

/* Broker side: overwrite base_offset, leader_epoch and arrival time of a
 * verified batch in place and recompute header_checksum. The payload and its
 * checksum are untouched. buf must hold at least RN_BATCH_HEADER_SIZE bytes. */
void rn_batch_stamp(uint8_t *buf, uint64_t base_offset, uint32_t leader_epoch, int64_t arrival_ms);

/* Last offset in the batch: base_offset + record_count - 1. */
static inline uint64_t rn_batch_last_offset(const rn_batch_header_t *hdr) {
  return hdr->base_offset + hdr->record_count - 1;
}

/* ---- encoding ---------------------------------------------------------- */

/* Accumulates records, then produces one batch. Owns a growable buffer.
 * Not thread-safe. Usage: init, add..., finish, (read bytes), reset or free. */
typedef struct rn_batch_builder {
  uint8_t *buf; /* owned: header space + raw records */
  size_t len;
  size_t cap;
  uint32_t count;
  int64_t first_ts;
  int64_t max_ts;
  uint8_t *out; /* owned: LZ4 output of finish (an uncompressed result is buf) */
  size_t out_len;
  size_t out_cap;
} rn_batch_builder_t;

/* Initialise an empty builder. Never fails (allocation happens on add). */
void rn_batch_builder_init(rn_batch_builder_t *b);

/* Append one record (copies key, value, id and headers). Returns 0,
 * RN_ENOMEM, RN_EINVAL (NULL pointer with non-zero length, or a timestamp
 * whose difference from the first record's does not fit an int64) or
 * RN_ETOOLARGE when the batch would exceed RN_BATCH_MAX_SIZE. On error the
 * builder is unchanged. rec->offset is ignored. */
rn_err_t rn_batch_builder_add(rn_batch_builder_t *b, const rn_record_t *rec);

/* Bytes the records section holds so far (uncompressed), for linger/size
 * decisions. */
size_t rn_batch_builder_size(const rn_batch_builder_t *b);
static inline uint32_t rn_batch_builder_count(const rn_batch_builder_t *b) { return b->count; }

/* Producer fields stamped by finish. */
typedef struct rn_batch_producer {
  uint64_t producer_id;
  uint16_t producer_epoch;
  int32_t base_sequence;
} rn_batch_producer_t;

/* Seal the records into a batch with the given codec (LZ4 falls back to NONE
 * when compression does not shrink the records). producer may be NULL (no
 * idempotence: id 0, epoch 0, sequence -1). base_offset/epoch/arrival are 0.
 * On success *out and *out_len point into the builder and stay valid until the
 * next add/reset/free. Returns 0, RN_EINVAL (no records), RN_ENOMEM. */
rn_err_t rn_batch_builder_finish(rn_batch_builder_t *b, rn_codec_t codec,
                                 const rn_batch_producer_t *producer, const uint8_t **out,
                                 size_t *out_len);

/* Forget the records; keep the buffers for reuse. */
void rn_batch_builder_reset(rn_batch_builder_t *b);

/* Free the buffers. Accepts a zeroed or already-freed builder. */
void rn_batch_builder_free(rn_batch_builder_t *b);

/* ---- decoding ---------------------------------------------------------- */

/* Iterates the records of one verified batch. The iterator borrows the batch
 * bytes; for LZ4 batches it decompresses into a scratch buffer it owns
 * (freed by rn_batch_iter_free). init overwrites every field (the iterator
 * need not be zeroed first, so free before re-initialising one); after a
 * failed init the iterator holds nothing and free is still safe. */
typedef struct rn_batch_iter {
  rn_batch_header_t hdr;
  const uint8_t *p;   /* next record */
  const uint8_t *end; /* end of the records section */
  uint32_t index;     /* records returned so far */
  uint8_t *scratch;   /* owned: decompressed records (LZ4) */
  size_t scratch_cap;
} rn_batch_iter_t;

/* Prepare to iterate batch[0, len). Verifies the batch (rn_batch_verify) and
 * decompresses when needed. Returns 0 or the verify/decompress error
 * (RN_ECORRUPT when the LZ4 block does not decode to records_length bytes). */
rn_err_t rn_batch_iter_init(rn_batch_iter_t *it, const uint8_t *batch, size_t len);

/* rn_batch_iter_init for a batch whose checksums the caller has verified
 * itself and whose bytes have not changed since: what rn_log_read and
 * rn_log_span_read return (they verify every batch they copy out), so a
 * reader of the log does not hash every byte a second time. Does every
 * check of rn_batch_header_decode and len >= batch_length (RN_EPARTIAL),
 * but neither checksum; the records are decoded as strictly as ever by
 * rn_batch_iter_next. Never use it on bytes from the network or from a
 * file read some other way: a flipped bit would go unnoticed. Same
 * iterator contract, results and ownership as rn_batch_iter_init. */
rn_err_t rn_batch_iter_init_verified(rn_batch_iter_t *it, const uint8_t *batch, size_t len);

/* Next record into *rec. Returns 0, RN_EOFFSET when all record_count records
 * were returned (end of batch), or RN_ECORRUPT for a malformed record
 * (truncated or non-minimal varint, length past the end, non-zero attributes,
 * wrong offset_delta, record 0 not at first_timestamp, a timestamp after
 * max_timestamp, more or fewer records than record_count). The check that
 * the records section is consumed exactly happens on the last record. After
 * RN_ECORRUPT every later call returns RN_ECORRUPT; *rec is only written on
 * success. Pointers in *rec live as long as the batch bytes (or the
 * iterator's scratch, for LZ4). */
rn_err_t rn_batch_iter_next(rn_batch_iter_t *it, rn_record_t *rec);

/* Release the scratch buffer. Accepts a zeroed iterator. */
void rn_batch_iter_free(rn_batch_iter_t *it);

/* Walk a decoded record's raw headers: *pos starts at 0. Returns 0 with
 * *out filled, RN_EOFFSET at the end, RN_ECORRUPT when malformed. */
rn_err_t rn_record_header_next(const rn_record_t *rec, size_t *pos, rn_record_header_t *out);

/* ---- varints (exposed for the protocol codecs and tests) ---------------- */

/* Encode v into out (at least 10 bytes); returns the number of bytes. */
size_t rn_varint_encode(uint64_t v, uint8_t *out);
/* Decode from buf[0, len). Returns bytes consumed (>0), 0 when truncated,
 * or (size_t)-1 when longer than 10 bytes or when the 10th byte carries bits
 * beyond the 64th. Accepts non-minimal encodings (as protobuf does); record
 * decoding additionally requires minimal ones. */
size_t rn_varint_decode(const uint8_t *buf, size_t len, uint64_t *v);
static inline uint64_t rn_zigzag_encode(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t rn_zigzag_decode(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

#ifdef __cplusplus
}
#endif
#endif
