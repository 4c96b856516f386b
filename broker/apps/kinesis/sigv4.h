/*
 * sigv4.h — verification of AWS Signature Version 4 on an HTTP request
 * (the Authorization header form that the AWS SDKs and CLI send).
 *
 * Pure: no clock (the caller passes now), no I/O, no global state. Reads
 * only the request it is given (rn_http.h's rn_http_req_t).
 *
 * What is checked, in AWS's order and with AWS's error types:
 *   - an Authorization header is present       MissingAuthenticationTokenException
 *   - it is AWS4-HMAC-SHA256 with Credential, SignedHeaders and Signature,
 *     a date (X-Amz-Date or Date) exists, host (or :authority) is signed,
 *     every signed header is present           IncompleteSignatureException
 *   - the access key is configured             UnrecognizedClientException
 *   - the credential scope's date matches the request date and its service
 *     is the expected one                       InvalidSignatureException
 *   - the request date is within skew of now   InvalidSignatureException ("Signature expired")
 *   - the signature matches (HMAC-SHA256 chain over the canonical request:
 *     method, path, sorted query, signed headers, SHA-256 of the body)
 *                                               InvalidSignatureException
 * The "host" header is taken from :authority over HTTP/2 (req->authority;
 * the JavaScript SDK signs it that way) and a signed header literally named
 * ":authority" is supported too. X-Amz-Content-Sha256, when sent, must
 * equal the body's hash unless it is UNSIGNED-PAYLOAD.
 */
#ifndef RN_BROKER_SIGV4_H
#define RN_BROKER_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "rn_http.h"
#include "rn_kinesis_codec.h"
#include "runnel/sigv4.h"

typedef struct rn_sigv4_key {
  const char *akid;
  const char *secret;
} rn_sigv4_key_t;

typedef enum {
  RN_SIGV4_OK = 0,
  RN_SIGV4_MISSING,     /* MissingAuthenticationTokenException */
  RN_SIGV4_INCOMPLETE,  /* IncompleteSignatureException */
  RN_SIGV4_UNKNOWN_KEY, /* UnrecognizedClientException */
  RN_SIGV4_INVALID,     /* InvalidSignatureException (mismatch, scope, expired) */
} rn_sigv4_status_t;

typedef struct rn_sigv4_result {
  rn_sigv4_status_t status;
  rn_kinesis_err_t type; /* the AWS error type for status; RN_KERR_NONE when OK */
  char akid[129];     /* from the credential, when parsed */
  char region[64];    /* from the credential scope, when parsed */
  char service[64];
  char message[1024]; /* AWS-style message when status != OK */
} rn_sigv4_result_t;

/* Verify req against keys[0, nkeys). service: the expected scope service
 * ("kinesis"); NULL accepts any. now_s: the current time (epoch seconds);
 * max_skew_s: allowed distance between the request date and now (AWS: 300).
 * Returns res->status. */
rn_sigv4_status_t rn_sigv4_verify(const rn_http_req_t *req, const rn_sigv4_key_t *keys, size_t nkeys,
                                  const char *service, int64_t now_s, int64_t max_skew_s, rn_sigv4_result_t *res);

/* Only parse the credential scope of req's Authorization header (no
 * verification), for the region of ARNs when no keys are configured.
 * Returns 0 and fills res->akid/region/service, or -1. */
int rn_sigv4_scope(const rn_http_req_t *req, rn_sigv4_result_t *res);

/* The steps, exposed for tests. */
/* Canonical request text into out (NUL-terminated, truncated at outlen;
 * returns the full length). signed_headers: "host;x-amz-date". */
size_t rn_sigv4_canonical_request(const rn_http_req_t *req, const char *signed_headers, const char *payload_hash_hex,
                                  char *out, size_t outlen);
/* rn_sigv4_signature (the signing-key chain) is in runnel/sigv4.h. */

#endif
