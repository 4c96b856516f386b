/*
 * runnel/sigv4.h — the pure primitives of AWS Signature Version 4, shared
 * by the side that verifies (the Kinesis API, broker/apps/kinesis/sigv4.c)
 * and the side that signs (the S3 object store, storage/tier/s3.c): the
 * signing-key chain and the hex SHA-256 every canonical request needs.
 * No clock, no I/O, no state.
 */
#ifndef RUNNEL_SIGV4_H
#define RUNNEL_SIGV4_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* hex(HMAC(kSigning, string_to_sign)), kSigning derived from secret, date
 * (YYYYMMDD), region and service ("AWS4" + secret, then date, region,
 * service, "aws4_request"). The derived keys are wiped after use. */
void rn_sigv4_signature(const char *secret, const char *date8, const char *region, const char *service,
                        const char *string_to_sign, char hex[65]);

/* Lower-case hex of SHA-256(p[0, n)). */
void rn_sha256_hex(const void *p, size_t n, char out[65]);

#ifdef __cplusplus
}
#endif
#endif
