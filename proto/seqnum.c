/*
 * seqnum.c — Kinesis sequence numbers (runnel/seqnum.h): the 186-bit layout
 * packed into three 64-bit limbs and written or read in decimal.
 *
 * Invariants: the decoder takes a byte span and a length, never reads past
 * it and never trusts a NUL; the encoder's output is a function of its
 * inputs only.
 */
#include <stdbool.h>
#include <stdint.h>

#include "runnel/seqnum.h"

typedef unsigned __int128 u128;

#define KSEQ_VERSION 2u
#define KSEQ_TIME_MASK ((1ull << 36) - 1)

/* A 192-bit unsigned integer, w[0] least significant. */
typedef struct {
  uint64_t w[3];
} u192;

static void u192_put(u192 *x, unsigned pos, unsigned bits, uint64_t v) {
  if (bits < 64) v &= ((uint64_t)1 << bits) - 1;
  unsigned limb = pos / 64, sh = pos % 64;
  x->w[limb] |= v << sh;
  if (sh && sh + bits > 64) x->w[limb + 1] |= v >> (64 - sh);
}

static uint64_t u192_get(const u192 *x, unsigned pos, unsigned bits) {
  unsigned limb = pos / 64, sh = pos % 64;
  uint64_t v = x->w[limb] >> sh;
  if (sh && sh + bits > 64) v |= x->w[limb + 1] << (64 - sh);
  if (bits < 64) v &= ((uint64_t)1 << bits) - 1;
  return v;
}

#define KSEQ_VERSION 2u
#define KSEQ_TIME_MASK ((1ull << 36) - 1)

size_t rn_seqnum_encode(int64_t created_ms, uint32_t shard, uint64_t offset, char out[RN_SEQNUM_BUFLEN]) {
  u192 x = {{0, 0, 0}};
  uint64_t t = (uint64_t)(created_ms > 0 ? created_ms / 1000 : 0) & KSEQ_TIME_MASK;
  u192_put(&x, 0, 4, KSEQ_VERSION);
  u192_put(&x, 4, 32, shard);
  u192_put(&x, 36, 36, t);
  u192_put(&x, 80, 64, offset);
  u192_put(&x, 144, 4, shard & 0xf);
  u192_put(&x, 148, 36, t);
  u192_put(&x, 184, 4, KSEQ_VERSION);
  /* To decimal: divide by 10^19 limb-wise until zero. */
  static const uint64_t D = 10000000000000000000ull;
  char tmp[80];
  size_t n = 0;
  while (x.w[0] || x.w[1] || x.w[2]) {
    u128 rem = 0;
    for (int i = 2; i >= 0; i--) {
      u128 cur = (rem << 64) | x.w[i];
      x.w[i] = (uint64_t)(cur / D);
      rem = cur % D;
    }
    uint64_t chunk = (uint64_t)rem;
    bool more = x.w[0] || x.w[1] || x.w[2];
    for (int k = 0; k < 19 && (more || chunk); k++) {
      tmp[n++] = (char)('0' + chunk % 10);
      chunk /= 10;
    }
  }
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = 0;
  return n;
}

rn_err_t rn_seqnum_decode(const char *s, size_t n, rn_seqnum_t *out) {
  if (n == 0 || n > 60 || (n > 1 && s[0] == '0')) return RN_EINVAL;
  u192 x = {{0, 0, 0}};
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return RN_EINVAL;
    /* x = x * 10 + d, watching the top limb. */
    u128 carry = (u128)(s[i] - '0');
    for (int k = 0; k < 3; k++) {
      u128 cur = (u128)x.w[k] * 10 + carry;
      x.w[k] = (uint64_t)cur;
      carry = cur >> 64;
    }
    if (carry) return RN_EINVAL;
  }
  if (x.w[2] >> 60) return RN_EINVAL; /* more than 188 bits */
  if (u192_get(&x, 0, 4) != KSEQ_VERSION || u192_get(&x, 184, 4) != KSEQ_VERSION) return RN_EINVAL;
  uint32_t shard = (uint32_t)u192_get(&x, 4, 32);
  if (u192_get(&x, 144, 4) != (shard & 0xf)) return RN_EINVAL;
  out->shard = shard;
  out->offset = u192_get(&x, 80, 64);
  out->created_s = (int64_t)u192_get(&x, 148, 36);
  return 0;
}

