/*
 * sigv4.h — private to storage/tier/: AWS Signature Version 4 for S3
 * requests, as pure functions (OpenSSL's SHA-256 and HMAC): the canonical
 * request, the string to sign, the signature and the Authorization header.
 * s3.c signs every request with it and sets Authorization, x-amz-date and
 * x-amz-content-sha256 itself. curl's CURLOPT_AWS_SIGV4 is not used: with
 * Debian 12's libcurl 7.88 MinIO rejected (SignatureDoesNotMatch) requests
 * this store sends — a query not already in sorted order
 * (?prefix=..&list-type=2), a parameter without a value (?uploads), a key
 * with '+' — while GET, ranged GET and PUT with a given
 * x-amz-content-sha256 passed. Our signature is checked against botocore's
 * for every kind of request (tests/unit/storage/tier/test_sigv4.py).
 *
 * S3's flavour: the path is URI-encoded once (not twice) and never
 * normalised; query names and values are URI-encoded (unreserved bytes
 * A-Z a-z 0-9 - _ . ~ kept) and sorted by name, then value; header values
 * are trimmed with inner runs of spaces folded to one. No secret is ever
 * written anywhere but the signature.
 */
#ifndef RN_TIER_SIGV4_H
#define RN_TIER_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_base.h"
#include "runnel/error.h"

typedef struct rn__sigv4_kv {
  const char *name;  /* headers: any case (signed lower-cased); query: raw, unencoded */
  const char *value; /* raw; query values unencoded ("" for a name alone) */
} rn__sigv4_kv_t;

#define RN__SIGV4_MAX_KV 16

typedef struct rn__sigv4_req {
  const char *method;       /* "GET", "PUT", ... */
  const char *host;         /* the Host header's value: "bucket.s3.amazonaws.com", "127.0.0.1:9000" */
  const char *path;         /* raw, unencoded, starting with '/': "/bucket/my key" */
  const rn__sigv4_kv_t *query;
  size_t nquery;            /* <= RN__SIGV4_MAX_KV */
  const rn__sigv4_kv_t *headers; /* signed besides host, x-amz-date, x-amz-content-sha256, x-amz-security-token */
  size_t nheaders;          /* <= RN__SIGV4_MAX_KV */
  const char *payload_hash; /* lower-case hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
  const char *region;
  const char *service;      /* "s3" */
  const char *access_key, *secret_key;
  const char *session_token; /* NULL or "": none */
  int64_t time_s;           /* the request's time, seconds since the epoch */
} rn__sigv4_req_t;

/* What a signed request sends: every header s3.c must set, and the encoded
 * path and query to put in the URL (identical to what was signed). */
typedef struct rn__sigv4_out {
  char amz_date[17];        /* x-amz-date: "20130524T000000Z" */
  char authorization[512];  /* the Authorization header's value */
  rn_buf_t path;            /* URI-encoded path */
  rn_buf_t query;           /* canonical query string ("" none): use it as the URL's */
  rn_buf_t canonical;       /* the canonical request (tests, debugging; holds no secret) */
} rn__sigv4_out_t;

/* Sign r. Returns 0, RN_EINVAL (too many query pairs or headers, a path not
 * starting with '/') or RN_ENOMEM; out's buffers are owned by the caller
 * (rn__sigv4_out_free), also on error. */
rn_err_t rn__sigv4_sign(const rn__sigv4_req_t *r, rn__sigv4_out_t *out);
void rn__sigv4_out_free(rn__sigv4_out_t *out);

/* URI-encode s[0, n) into b: unreserved bytes kept, '/' kept when
 * keep_slash, everything else %XX (upper-case hex). */
void rn__sigv4_uri_encode(rn_buf_t *b, const char *s, size_t n, bool keep_slash);
/* Lower-case hex SHA-256 of p[0, n) into out[65] (NUL-terminated). */
void rn__sha256_hex(const void *p, size_t n, char out[65]);

#define RN__SIGV4_UNSIGNED "UNSIGNED-PAYLOAD"
#define RN__SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#endif
