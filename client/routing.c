/*
 * routing.c — which shard a record goes to: the hash key is MD5(partition
 * key) read as a big-endian unsigned 128-bit integer, or an explicit hash
 * key given in decimal (both exactly as Kinesis), and the shard is the one
 * whose inclusive [hash_key_start, hash_key_end] contains it. Pure
 * functions; big-endian byte arrays compare with memcmp.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

void rn_hash_key_for(const void *key, size_t len, uint8_t out[RN_HASH_KEY_BYTES]) {
  static const uint8_t empty = 0;
  unsigned int n = 0;
  int ok = EVP_Digest(len ? key : &empty, len, out, &n, EVP_md5(), NULL);
  /* MD5 from the default provider cannot fail short of memory exhaustion;
   * a silent wrong route would be worse than stopping. */
  if (!ok || n != RN_HASH_KEY_BYTES) abort();
}

rn_err_t rn_hash_key_parse(const char *s, uint8_t out[RN_HASH_KEY_BYTES]) {
  uint8_t v[RN_HASH_KEY_BYTES] = {0};
  if (s == NULL || *s == '\0') return RN_EINVAL;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return RN_EINVAL;
    /* v = v * 10 + digit, big-endian, detecting overflow past 128 bits */
    unsigned carry = (unsigned)(*p - '0');
    for (int i = RN_HASH_KEY_BYTES - 1; i >= 0; i--) {
      unsigned x = (unsigned)v[i] * 10u + carry;
      v[i] = (uint8_t)x;
      carry = x >> 8;
    }
    if (carry) return RN_EINVAL;
  }
  memcpy(out, v, sizeof v);
  return 0;
}

void rn_hash_key_format(const uint8_t key[RN_HASH_KEY_BYTES], char out[RN_HASH_KEY_STRLEN]) {
  uint8_t v[RN_HASH_KEY_BYTES];
  char tmp[RN_HASH_KEY_STRLEN];
  size_t n = 0;
  memcpy(v, key, sizeof v);
  for (;;) {
    /* v, rem = divmod(v, 10) */
    unsigned rem = 0;
    int nonzero = 0;
    for (int i = 0; i < RN_HASH_KEY_BYTES; i++) {
      unsigned x = (rem << 8) | v[i];
      v[i] = (uint8_t)(x / 10u);
      rem = x % 10u;
      nonzero |= v[i];
    }
    tmp[n++] = (char)('0' + rem);
    if (!nonzero) break;
  }
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = '\0';
}

rn_err_t rn_shard_for_hash(const rn_shard_info_t *shards, size_t n, const uint8_t hash_key[RN_HASH_KEY_BYTES],
                           size_t *pos) {
  for (size_t i = 0; i < n; i++) {
    if (memcmp(hash_key, shards[i].hash_key_start, RN_HASH_KEY_BYTES) >= 0 &&
        memcmp(hash_key, shards[i].hash_key_end, RN_HASH_KEY_BYTES) <= 0) {
      *pos = i;
      return 0;
    }
  }
  return RN_ENOSHARD;
}
