/*
 * kinesis_int.h — the private codecs of the Kinesis application (library
 * rn_kinesis_codec): timestamps, shard iterators, shard ids and the decoding
 * and validation of every Kinesis request (one struct for every operation),
 * with AWS's error types and messages. No event loop, no engine, no
 * sockets: each piece takes bytes and returns rn_err_t or fills a struct,
 * so it is unit-tested and fuzzed alone.
 *
 *   kinesis_err.c   the error table (rn_kinesis_codec.h)
 *   kinesis_seq.c   response buffer, JSON string escaping, base64,
 *                   timestamps, 128-bit hash keys, Kinesis sequence
 *                   numbers, shard iterators
 *   kinesis_json.c  Kinesis requests
 *
 * What the other HTTP applications share is in rn_kinesis_codec.h; the
 * operations over the engine are kinesis.c (rn_kinesis.h). docs/kinesis.md
 * describes the formats written down here (sequence number layout,
 * iterators).
 */
#ifndef RN_BROKER_KINESIS_INT_H
#define RN_BROKER_KINESIS_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_kinesis_codec.h"
#include "runnel/error.h"

/* ---- timestamps -------------------------------------------------------------- */

/* Text to ms since the epoch: epoch seconds as an integer, a decimal or in
 * exponent notation ("1700000000", "1700000000.25", "1.7e9"), or ISO 8601
 * ("2024-05-01T12:00:00Z", "...T12:00:00.5+02:00"). Rounds to the nearest
 * millisecond. Returns 0 or RN_EINVAL (syntax, negative, out of range). */
rn_err_t rn__timestamp_parse(const char *s, size_t n, int64_t *ms);
/* A JSON value (integer, real or string as above) to ms. */
rn_err_t rn__timestamp_from_json(const json_t *v, int64_t *ms);

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


/* A Kinesis error: its type (the table in rn_kinesis_codec.h) and message, as
 * AWS clients expect them. */
typedef struct rn__kerr {
  rn_kinesis_err_t type; /* RN_KERR_NONE until set */
  char msg[1024];
} rn__kerr_t;

void rn__kerr_set(rn__kerr_t *e, rn_kinesis_err_t type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));


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

#endif
