/*
 * rest_int.h — the pure codecs of REST ingest (rest_body.c): request bodies
 * in API-Gateway proxy shapes, NDJSON and JSON arrays, gzip, API keys and
 * query strings. No event loop, no engine: unit-tested alone
 * (tests/unit/broker/apps/rest/test_rest_body.c). The records they produce
 * are rn__krec_t (rn_kinesis_codec.h), what the shared produce path takes.
 */
#ifndef RN_BROKER_REST_INT_H
#define RN_BROKER_REST_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_kinesis_codec.h"
#include "runnel/error.h"

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
  json_t *root;   /* owned; NULL when the one-pass parser took the body */
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

/* The same three through jansson only (rest_body.c): what the one-pass
 * parsers above (rest_fast.c) fall back to for every body they do not take
 * for certain, so every error and its wording comes from here; and what
 * they must agree with (tests, fuzzing). */
rn_err_t rn__rest_parse_record_general(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *out,
                                       char *why, size_t whylen);
rn_err_t rn__rest_parse_records_general(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *out,
                                        char *why, size_t whylen);
rn_err_t rn__rest_parse_batch_general(const uint8_t *body, size_t len, const char *key_field, size_t max_records,
                                      rn__rest_batch_t *out, char *why, size_t whylen);

/* The one-pass parsers alone (rest_fast.c): true with *out filled when they
 * take the body; false when it goes to the general path (*out may then hold
 * allocations: free it with rn__rest_batch_free). For tests and fuzzing. */
bool rn__rest_fast_record(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *out);
bool rn__rest_fast_records(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *out);
bool rn__rest_fast_batch(const uint8_t *body, size_t len, const char *key_field, size_t max_records,
                         rn__rest_batch_t *out);

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
