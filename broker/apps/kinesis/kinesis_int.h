/*
 * kinesis_int.h — the pure codecs behind runneld's HTTP applications (the
 * Kinesis JSON 1.1 API and REST ingest): no event loop, no engine, no
 * sockets. Everything here takes bytes and returns rn_err_t or fills a
 * struct, so each piece is unit-tested and fuzzed alone.
 *
 *   kinesis_seq.c   response buffer, JSON string escaping, base64,
 *                   timestamps, 128-bit hash keys, Kinesis sequence
 *                   numbers, shard iterators
 *   kinesis_json.c  decoding + validation of Kinesis requests (one struct
 *                   for every operation), with AWS's error types/messages
 *   rest_body.c     REST ingest bodies (API-Gateway proxy shapes, NDJSON /
 *                   JSON arrays), gzip, API keys
 *
 * The glue that talks to the engine (kinesis.c, rest_ingest.c, metrics.c,
 * http_routes.c) is declared in apps_int.h. docs/kinesis.md describes the
 * formats written down here (sequence number layout, iterators).
 */
#ifndef RN_BROKER_KINESIS_INT_H
#define RN_BROKER_KINESIS_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_kinesis.h"
#include "runnel/error.h"

/* ---- a growable output buffer ----------------------------------------------
 * Appends never fail: on out-of-memory the buffer remembers it (oom) and
 * ignores further writes; the caller checks oom once before sending. */
typedef struct rn__buf {
  char *p;
  size_t len, cap;
  bool oom;
} rn__buf_t;

void rn__buf_free(rn__buf_t *b); /* zeroes; accepts a zeroed buffer */
void rn__buf_reserve(rn__buf_t *b, size_t more);
void rn__buf_put(rn__buf_t *b, const void *p, size_t n);
void rn__buf_puts(rn__buf_t *b, const char *s);
void rn__buf_printf(rn__buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal (quotes included). Control characters are escaped;
 * bytes that are not valid UTF-8 become U+FFFD, so the output is always
 * valid JSON whatever s holds (native producers may write binary keys). */
void rn__buf_json_str(rn__buf_t *b, const char *s, size_t n);
/* Base64 (standard alphabet, padded) of p[0, n), without quotes. */
void rn__buf_b64(rn__buf_t *b, const uint8_t *p, size_t n);
/* Epoch seconds with milliseconds as a JSON number: 1700000000.123. */
void rn__buf_timestamp(rn__buf_t *b, int64_t ms);

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

/* ---- timestamps -------------------------------------------------------------- */

/* Text to ms since the epoch: epoch seconds as an integer, a decimal or in
 * exponent notation ("1700000000", "1700000000.25", "1.7e9"), or ISO 8601
 * ("2024-05-01T12:00:00Z", "...T12:00:00.5+02:00"). Rounds to the nearest
 * millisecond. Returns 0 or RN_EINVAL (syntax, negative, out of range). */
rn_err_t rn__timestamp_parse(const char *s, size_t n, int64_t *ms);
/* A JSON value (integer, real or string as above) to ms. */
rn_err_t rn__timestamp_from_json(const json_t *v, int64_t *ms);

/* ---- hash keys (128-bit, big-endian bytes) ------------------------------------- */

/* MD5 of the partition key: Kinesis' routing rule. */
void rn__hash_key_md5(const char *key, size_t n, uint8_t out[16]);
/* Decimal "0".."340282366920938463463374607431768211455" (no sign, no
 * leading zeros). Returns 0, or RN_EINVAL (syntax) or RN_EOFFSET (> 2^128-1). */
rn_err_t rn__hash_key_parse(const char *s, size_t n, uint8_t out[16]);
/* Decimal text of a hash key; out holds at least 40 bytes. */
void rn__hash_key_format(const uint8_t in[16], char out[40]);
/* memcmp order is numeric order for big-endian keys. */

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
/* Returns 0, or RN_EINVAL when s is not a decimal integer in this layout
 * (wrong version nibbles, shard nibble mismatch, out of range). */
rn_err_t rn__kseq_decode(const char *s, size_t n, rn__kseq_t *out);

/* ---- shard iterators --------------------------------------------------------------
 * Opaque to clients: base64 of
 *     u8 version (1) | u8 name length | u32 shard | u64 offset |
 *     i64 stream created ms | i64 issued ms | name | HMAC-SHA256 (32 bytes)
 * (little-endian), the HMAC keyed with a per-broker secret drawn at start, so
 * iterators cannot be forged and do not survive a restart. */
#define RN__KITER_TTL_MS 300000
#define RN__KITER_MAXLEN 512 /* Kinesis' limit on the string */
#define RN__KITER_KEYLEN 32

typedef struct rn__kiter {
  char stream[129];
  uint32_t shard;
  uint64_t offset;
  int64_t created_ms;
  int64_t issued_ms;
} rn__kiter_t;

/* out: at least RN__KITER_MAXLEN + 1 bytes. Returns the length. */
size_t rn__kiter_encode(const uint8_t key[RN__KITER_KEYLEN], const rn__kiter_t *it, char *out);
/* Returns 0, or RN_EINVAL (malformed or not signed by key). Expiry is the
 * caller's check (issued_ms + RN__KITER_TTL_MS). */
rn_err_t rn__kiter_decode(const uint8_t key[RN__KITER_KEYLEN], const char *s, size_t n, rn__kiter_t *out);

/* ---- shard ids --------------------------------------------------------------------- */

/* "shardId-000000000003" (also "shardId-3" and "3") → 3. Returns 0 or RN_EINVAL. */
rn_err_t rn__shard_id_parse(const char *s, size_t n, uint32_t *index);

/* ---- Kinesis requests -------------------------------------------------------------- */

/* Every operation of Kinesis_20131202 we know by name: X(name, supported). */
#define RN__KINESIS_OPS(X)                                                                           \
  X(AddTagsToStream, 1)                                                                              \
  X(CreateStream, 1)                                                                                 \
  X(DecreaseStreamRetentionPeriod, 1)                                                                \
  X(DeleteStream, 1)                                                                                 \
  X(DescribeLimits, 1)                                                                               \
  X(DescribeStream, 1)                                                                               \
  X(DescribeStreamSummary, 1)                                                                        \
  X(GetRecords, 1)                                                                                   \
  X(GetShardIterator, 1)                                                                             \
  X(IncreaseStreamRetentionPeriod, 1)                                                                \
  X(ListShards, 1)                                                                                   \
  X(ListStreams, 1)                                                                                  \
  X(ListTagsForStream, 1)                                                                            \
  X(PutRecord, 1)                                                                                    \
  X(PutRecords, 1)                                                                                   \
  X(RemoveTagsFromStream, 1)                                                                         \
  X(DeleteResourcePolicy, 0)                                                                         \
  X(DeregisterStreamConsumer, 0)                                                                     \
  X(DescribeStreamConsumer, 0)                                                                       \
  X(DisableEnhancedMonitoring, 0)                                                                    \
  X(EnableEnhancedMonitoring, 0)                                                                     \
  X(GetResourcePolicy, 0)                                                                            \
  X(ListStreamConsumers, 0)                                                                          \
  X(MergeShards, 0)                                                                                  \
  X(PutResourcePolicy, 0)                                                                            \
  X(RegisterStreamConsumer, 0)                                                                       \
  X(SplitShard, 0)                                                                                   \
  X(StartStreamEncryption, 0)                                                                        \
  X(StopStreamEncryption, 0)                                                                         \
  X(SubscribeToShard, 0)                                                                             \
  X(UpdateShardCount, 0)                                                                             \
  X(UpdateStreamMode, 0)

typedef enum {
#define RN__KOP_ENUM(name, supported) RN__KOP_##name,
  RN__KINESIS_OPS(RN__KOP_ENUM)
#undef RN__KOP_ENUM
  RN__KOP_COUNT
} rn__kop_t;

/* "PutRecord" → RN__KOP_PutRecord; RN__KOP_COUNT when unknown. */
rn__kop_t rn__kop_from_name(const char *s, size_t n);
const char *rn__kop_name(rn__kop_t op);
bool rn__kop_supported(rn__kop_t op);

/* A Kinesis error: its type (the table in rn_kinesis.h) and message, as
 * AWS clients expect them. */
typedef struct rn__kerr {
  rn_kinesis_err_t type; /* RN_KERR_NONE until set */
  char msg[1024];
} rn__kerr_t;

void rn__kerr_set(rn__kerr_t *e, rn_kinesis_err_t type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

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

typedef struct rn__ktag {
  const char *key, *value;
} rn__ktag_t;

enum { RN__ITER_AT_SEQUENCE_NUMBER, RN__ITER_AFTER_SEQUENCE_NUMBER, RN__ITER_TRIM_HORIZON, RN__ITER_LATEST, RN__ITER_AT_TIMESTAMP };
enum { RN__SHARDS_ALL = 0, RN__SHARDS_AFTER_SHARD_ID, RN__SHARDS_AT_TRIM_HORIZON, RN__SHARDS_FROM_TRIM_HORIZON,
       RN__SHARDS_AT_LATEST, RN__SHARDS_AT_TIMESTAMP, RN__SHARDS_FROM_TIMESTAMP };

/* A decoded, validated Kinesis request. Which fields mean something depends
 * on op; strings point into root (owned) or into the struct itself. */
typedef struct rn__kreq {
  rn__kop_t op;
  json_t *root;
  char stream[129]; /* StreamName, or the name inside StreamARN */
  bool has_stream;
  /* CreateStream */
  uint32_t shard_count;
  bool has_shard_count;
  bool on_demand;
  /* paging: DescribeStream/ListStreams/ListShards/ListTagsForStream */
  uint32_t limit; /* 0 = the operation's default */
  const char *exclusive_start; /* shard id / stream name / tag key */
  const char *next_token;
  int64_t stream_created_ms; /* ListShards StreamCreationTimestamp; 0 = none */
  int shard_filter;          /* RN__SHARDS_* */
  uint32_t filter_shard;
  int64_t filter_ts_ms;
  /* GetShardIterator */
  uint32_t shard;
  const char *shard_id; /* as given */
  int iter_type;        /* RN__ITER_* */
  const char *start_seq;
  int64_t ts_ms;
  bool has_ts;
  /* GetRecords */
  const char *iterator;
  size_t iterator_len;
  /* Increase/DecreaseStreamRetentionPeriod */
  int64_t retention_hours;
  /* tags */
  rn__ktag_t *tags;
  size_t ntags;
  const char **tag_keys;
  size_t ntag_keys;
  /* PutRecord(s) */
  rn__krec_t *recs;
  size_t nrecs;
  uint8_t *data_buf; /* owned: every record's decoded data */
} rn__kreq_t;

#define RN__KINESIS_MAX_RECORD_DATA (1u << 20) /* 1 MiB, data + partition key */
#define RN__KINESIS_MAX_PUT_RECORDS 500
#define RN__KINESIS_MAX_PUT_BYTES (5u << 20)

/* Decode and validate the body of operation op (which must be supported).
 * Returns 0 with *out filled (free with rn__kreq_free), or an error with
 * *err set (SerializationException for bad JSON or a wrong type,
 * ValidationException for a constraint, InvalidArgumentException for a
 * value Kinesis rejects as such); out then holds nothing. */
rn_err_t rn__kreq_decode(rn__kop_t op, const uint8_t *body, size_t len, rn__kreq_t *out, rn__kerr_t *err);
void rn__kreq_free(rn__kreq_t *r);
/* The same without the PutRecords fast path (every body through the JSON
 * library): what the fast path must agree with (tests, fuzzing). */
rn_err_t rn__kreq_decode_general(rn__kop_t op, const uint8_t *body, size_t len, rn__kreq_t *out, rn__kerr_t *err);

/* The stream name of "arn:aws:kinesis:REGION:ACCOUNT:stream/NAME"; 0 or RN_EINVAL. */
rn_err_t rn__stream_arn_name(const char *arn, char name[129]);

/* Does s[0, n) match [a-zA-Z0-9_.-]{1,128}? */
bool rn__valid_stream_name(const char *s, size_t n);

/* ---- REST ingest bodies ------------------------------------------------------------ */

/* How a string "Data" value becomes record bytes (docs/kinesis.md):
 *   BASE64  base64-decoded (the default: Kinesis' own encoding)
 *   TEXT    its UTF-8 text (the API Gateway tutorial's PutRecords template)
 *   JSON    its JSON text, quotes included ($input.json('$.Data'))
 * Any other JSON value (object, array, number, ...) is stored as its
 * compact JSON text in every mode. */
typedef enum { RN__DATA_BASE64 = 0, RN__DATA_TEXT, RN__DATA_JSON } rn__data_mode_t;

typedef struct rn__rest_batch {
  rn__krec_t *recs;
  size_t n;
  json_t *root;   /* owned */
  uint8_t *buf;   /* owned: record bytes */
  size_t buf_len, buf_cap;
  bool proxy;     /* an API-Gateway proxy shape (answer like Kinesis) */
} rn__rest_batch_t;

void rn__rest_batch_free(rn__rest_batch_t *b);

/* PUT /streams/{s}/record: {"Data": ..., "PartitionKey": "...", "ExplicitHashKey"?}.
 * Returns 0, or RN_EINVAL with a one-line reason in why. */
rn_err_t rn__rest_parse_record(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *out,
                               char *why, size_t whylen);
/* PUT /streams/{s}/records: {"records": [{"data": ..., "partition-key": "..."}, ...]}
 * (also "Data"/"PartitionKey"/"partitionKey"/"explicit-hash-key" spellings). */
rn_err_t rn__rest_parse_records(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *out,
                                char *why, size_t whylen);
/* POST /v1/streams/{s}/records: NDJSON (one JSON value per line; blank lines
 * skipped; each line stored byte for byte) or one JSON array (each element
 * stored as compact JSON). key_field (may be NULL): a top-level field of
 * each event whose string/number value is the partition key; records
 * without one get key NULL (the caller assigns one). */
rn_err_t rn__rest_parse_batch(const uint8_t *body, size_t len, const char *key_field, size_t max_records,
                              rn__rest_batch_t *out, char *why, size_t whylen);

/* Inflate a gzip (or zlib) body into a new buffer of at most max bytes.
 * Returns 0, RN_ETOOLARGE (inflates past max) or RN_EINVAL (not gzip). */
rn_err_t rn__gunzip(const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *outlen);

/* API keys: "key1:stream1|stream2,key2:*". */
typedef struct rn__apikey {
  char *key;
  char **streams; /* NULL-terminated; NULL = every stream ("*") */
} rn__apikey_t;

typedef struct rn__apikeys {
  rn__apikey_t *keys;
  size_t n;
} rn__apikeys_t;

rn_err_t rn__apikeys_parse(const char *spec, rn__apikeys_t *out, char *why, size_t whylen);
void rn__apikeys_free(rn__apikeys_t *k);
/* 0 (allowed), 401 (unknown key) or 403 (key may not write stream). */
int rn__apikeys_check(const rn__apikeys_t *k, const char *token, size_t token_len, const char *stream);

/* Find the value of name in a query string ("a=1&b=x%20y"), percent- and
 * '+'-decoded into out (NUL-terminated). Returns 1 found, 0 absent, -1 too
 * long or malformed. */
int rn__query_param(const char *query, const char *name, char *out, size_t outlen);

#endif
