/*
 * runnel/keys.h — how a record and a resource are addressed: 128-bit hash
 * keys and the names of streams and consumer groups. One copy of each rule,
 * shared by librunnel, runnelctl and every broker entry point (native
 * protocol, Kinesis API, REST ingest). Pure functions: no allocation, no
 * locale, no I/O.
 *
 * Hash keys (exactly Kinesis's rules):
 *   - A hash key is an unsigned 128-bit integer, stored big-endian in
 *     RN_HASH_KEY_BYTES bytes (byte 0 most significant), so keys compare
 *     with memcmp.
 *   - A partition key's hash key is MD5(partition key bytes).
 *   - An explicit hash key is written in canonical decimal: "0", or a
 *     non-zero digit followed by digits, with a value in [0, 2^128-1]. That
 *     is Kinesis's ExplicitHashKey pattern "0|([1-9]\d{0,38})" plus its
 *     range check. Leading zeros ("007"), an empty string, a sign, spaces,
 *     any non-digit, 40 or more digits and values >= 2^128 are all rejected,
 *     with one error: RN_EINVAL.
 *
 * Names (streams and consumer groups): 1..RN_NAME_MAX bytes of
 * [A-Za-z0-9_.-] (Kinesis's StreamName pattern), and never "." or "..".
 * The broker turns a stream name into a directory name, so the rule is also
 * its path safety: no '/', no NUL, no other byte outside the set, no
 * relative directory. Every site that accepts a name calls the check for
 * its kind; none adds or drops a rule of its own.
 */
#ifndef RUNNEL_KEYS_H
#define RUNNEL_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "runnel/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== hash keys ============================================================ */

/* A 128-bit hash key, big-endian (byte 0 is the most significant). */
#define RN_HASH_KEY_BYTES 16
/* Longest decimal rendering of a hash key (2^128-1 has 39 digits) + NUL. */
#define RN_HASH_KEY_STRLEN 40

/* out = MD5(key[0, len)) — the hash key of a partition key, read as a
 * big-endian unsigned 128-bit integer exactly as Kinesis does. key may be
 * NULL when len is 0. Aborts only if the MD5 digest itself fails (memory
 * exhaustion inside OpenSSL): a silently wrong route would be worse. */
void rn_hash_key_for(const void *key, size_t len, uint8_t out[RN_HASH_KEY_BYTES]);

/* Parse the canonical decimal s[0, len) (not NUL-terminated; see the rule
 * above) into out. Returns 0, or RN_EINVAL for every rejection (syntax and
 * range alike); out is untouched on failure. s may be NULL when len is 0. */
rn_err_t rn_hash_key_parse_n(const char *s, size_t len, uint8_t out[RN_HASH_KEY_BYTES]);

/* rn_hash_key_parse_n over the NUL-terminated decimal; NULL is RN_EINVAL. */
rn_err_t rn_hash_key_parse(const char *decimal, uint8_t out[RN_HASH_KEY_BYTES]);

/* Render a hash key in canonical decimal into out (RN_HASH_KEY_STRLEN
 * bytes, NUL included); parses back to the same key. */
void rn_hash_key_format(const uint8_t key[RN_HASH_KEY_BYTES], char out[RN_HASH_KEY_STRLEN]);

/* ==== names ================================================================= */

/* Longest stream or group name, in bytes (NUL excluded). */
#define RN_NAME_MAX 128

/* Check the stream name s[0, len) (not NUL-terminated; s may be NULL when
 * len is 0). Returns 0, or RN_EINVAL with a one-line reason in why[0,
 * whylen) naming the stream (why may be NULL when whylen is 0). */
rn_err_t rn_name_check_stream(const char *s, size_t len, char *why, size_t whylen);

/* Check the consumer group name s[0, len): the same rule as a stream name,
 * and the same contract; the reason names a group. */
rn_err_t rn_name_check_group(const char *s, size_t len, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif

#endif
