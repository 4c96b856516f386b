/*
 * routing.c — which shard a record goes to: the one whose inclusive
 * [hash_key_start, hash_key_end] contains the record's hash key. The hash
 * key itself (MD5 of the partition key, or an explicit decimal) is proto's
 * rule (runnel/keys.h), shared with the broker. Pure functions; big-endian
 * byte arrays compare with memcmp.
 */
#include <string.h>

#include "client_int.h"

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
