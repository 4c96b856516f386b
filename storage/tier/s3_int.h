/*
 * s3_int.h — private to storage/tier/s3.c and its tests: the request
 * signer (pure), so tests/unit/storage/tier/ can compare it with botocore.
 */
#ifndef RN_S3_INT_H
#define RN_S3_INT_H

#include <stddef.h>

/* The Authorization header value of an S3 request signed with SigV4 and an
 * UNSIGNED-PAYLOAD body: the signed headers are host, x-amz-content-sha256,
 * x-amz-date and, when token is not NULL, x-amz-security-token (the request
 * must send exactly those values). path: the URI-encoded path as sent
 * ("/bucket/key"); query: the encoded query with its parameters sorted by
 * name ("" when none); amz_date: "YYYYMMDDTHHMMSSZ". */
void rn__s3_authorization(const char *method, const char *host, const char *path, const char *query,
                          const char *amz_date, const char *region, const char *akid, const char *secret,
                          const char *token, char *out, size_t cap);

#endif
