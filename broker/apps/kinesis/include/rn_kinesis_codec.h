/*
 * rn_kinesis_codec.h — the pure codecs of runneld's Kinesis application that
 * the other HTTP applications (REST ingest, /metrics, the route table) share:
 * base64, 128-bit hash keys, sequence numbers and a record to produce. No
 * event loop, no engine, no sockets: library rn_kinesis_codec, unit-tested
 * and fuzzed alone (its request decoders are private, kinesis_int.h). The
 * Kinesis error and operation tables and the JSON string writer are
 * rn_admin_codec.h's (broker/apps/admin), included here.
 *
 * Names keep the rn__ prefix: this is runneld's inside, not a client API.
 */
#ifndef RN_KINESIS_CODEC_H
#define RN_KINESIS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_admin_codec.h" /* the error and operation tables, JSON strings */
#include "rn_base.h"        /* rn_buf_t */
#include "runnel/error.h"
#include "runnel/keys.h"

/* The Kinesis error table, the operation table and the JSON string writer
 * are rn_admin_codec.h's (included above): the admin application answers
 * every application's errors and counts them, so they sit below both. */

/* ---- output into an rn_buf_t (rn_base.h: the growable buffer) ------------- */
/* Base64 (standard alphabet, padded) of p[0, n), without quotes. */
void rn__buf_b64(rn_buf_t *b, const uint8_t *p, size_t n);
/* Epoch seconds with milliseconds as a JSON number: 1700000000.123. */
void rn__buf_timestamp(rn_buf_t *b, int64_t ms);
/* The same into out (RN__TIMESTAMP_BUFLEN bytes, not NUL-terminated);
 * returns the length. Negative ms are written as 0.000. */
#define RN__TIMESTAMP_BUFLEN 24
size_t rn__timestamp_fmt(int64_t ms, char *out);
/* v in decimal into out (20 bytes, not NUL-terminated); returns the length. */
size_t rn__u64_dec(uint64_t v, char *out);

/* ---- base64 ------------------------------------------------------------------ */

static inline size_t rn__b64_encoded_len(size_t n) { return (n + 2) / 3 * 4; }
/* Upper bound of the decoded size of n base64 characters. */
static inline size_t rn__b64_decoded_max(size_t n) { return n / 4 * 3 + 3; }
/* Decode s[0, n) (standard alphabet; '=' padding optional but, when present,
 * correct; no whitespace) into out (rn__b64_decoded_max(n) bytes).
 * Returns 0 with *outlen, or RN_EINVAL. */
rn_err_t rn__b64_decode(const char *s, size_t n, uint8_t *out, size_t *outlen);
/* Encode into out (rn__b64_encoded_len(n) + 1 bytes, NUL-terminated). */
void rn__b64_encode(const uint8_t *p, size_t n, char *out);
/* The same without the NUL: out needs rn__b64_encoded_len(n) bytes; returns
 * that length. Table-driven, 12 bits per lookup (what GetRecords uses). */
size_t rn__b64_encode_raw(const uint8_t *p, size_t n, char *out);

/* ---- hash keys (128-bit, big-endian bytes) ------------------------------------- */

/* One rule for the whole tree, in proto (runnel/keys.h): rn_hash_key_for()
 * (MD5 of the partition key), rn_hash_key_parse_n() (canonical decimal in
 * [0, 2^128-1], RN_EINVAL otherwise), rn_hash_key_format(). memcmp order is
 * numeric order for big-endian keys. */

/* ---- sequence numbers -----------------------------------------------------------
 * A 56-digit decimal string holding a 186-bit number in the layout of real
 * Kinesis sequence numbers ("version 2"; docs/kinesis.md). Bits, from the
 * least significant:
 *     0..3    version, 2
 *     4..35   shard index (the KCL reads it here)
 *    36..71   sequence time, seconds (we store the stream's creation time)
 *    72..79   0
 *    80..143  the record's offset in the shard log (64 bits)
 *   144..147  shard index & 0xf
 *   148..183  stream creation time, seconds
 *   184..187  version, 2 (so the number is exactly 186 bits long)
 * Everything is a function of (stream creation time, shard, offset), so a
 * record has one sequence number whichever API reads it, numbers of one
 * shard compare like their offsets, and decoding is O(1). */
#define RN__KSEQ_BUFLEN 64

typedef struct rn__kseq {
  int64_t created_s; /* stream creation time, epoch seconds (36 bits) */
  uint32_t shard;
  uint64_t offset;
} rn__kseq_t;

/* Writes the NUL-terminated decimal into out; returns its length (56). */
size_t rn__kseq_encode(int64_t created_ms, uint32_t shard, uint64_t offset, char out[RN__KSEQ_BUFLEN]);
/* seq[0, len) (an encoding of rn__kseq_encode) becomes the sequence number
 * of the next offset: adds 2^80 in decimal, in place (the same as encoding
 * offset + 1, without the 192-bit divisions). For offset < UINT64_MAX. */
void rn__kseq_next(char *seq, size_t len);
/* Sequence numbers of a produce answer, where each shard's records follow
 * each other: the last number of up to 16 shards (by shard & 15), so the
 * next offset of a shard is one rn__kseq_next instead of a full encoding.
 * Zero-initialise; one per answer (created_ms is the same throughout). */
typedef struct rn__kseq_cache {
  uint32_t shard[16];
  uint64_t offset[16];
  uint8_t len[16]; /* 0: empty slot */
  char seq[16][RN__KSEQ_BUFLEN];
} rn__kseq_cache_t;

/* The sequence number of (shard, offset) through c; returns its length and
 * points *out at it (valid until the next call with c). */
size_t rn__kseq_cached(rn__kseq_cache_t *c, int64_t created_ms, uint32_t shard, uint64_t offset, const char **out);
/* Returns 0, or RN_EINVAL when s is not a decimal integer in this layout
 * (wrong version nibbles, shard nibble mismatch, out of range). */
rn_err_t rn__kseq_decode(const char *s, size_t n, rn__kseq_t *out);

/* ---- records ------------------------------------------------------------------------------ */

/* One record of PutRecord(s) (and of REST ingest, which shares the produce
 * path). Pointers borrow from the decoded request. */
typedef struct rn__krec {
  const char *key; /* partition key (UTF-8) */
  size_t key_len;
  const uint8_t *data;
  size_t data_len;
  bool has_hash;    /* ExplicitHashKey given */
  uint8_t hash[16]; /* routing hash: explicit, or filled in by the produce path */
} rn__krec_t;

#define RN__KINESIS_MAX_RECORD_DATA (1u << 20) /* 1 MiB, data + partition key */
#define RN__KINESIS_MAX_PUT_RECORDS 500
#define RN__KINESIS_MAX_PUT_BYTES (5u << 20)

/* Is s[0, n) a valid stream name? proto's rule (runnel/keys.h): [a-zA-Z0-9_.-]{1,128}, not "." or "..". */
bool rn__valid_stream_name(const char *s, size_t n);

#endif
