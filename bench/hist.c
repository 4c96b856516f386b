/* hist.c — see hist.h. Bucket = (exponent, top 6 bits of mantissa). */
#include "hist.h"

static unsigned bucket(uint64_t v) {
  if (v < HIST_SUB) return (unsigned)v;
  unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
  unsigned sub = (unsigned)(v >> (e - 6)) & (HIST_SUB - 1);
  unsigned idx = (e - 5) * HIST_SUB + sub;
  return idx < HIST_POW * HIST_SUB ? idx : HIST_POW * HIST_SUB - 1;
}

static uint64_t bucket_value(unsigned idx) {
  if (idx < HIST_SUB) return idx;
  unsigned e = idx / HIST_SUB + 5, sub = idx % HIST_SUB;
  return ((uint64_t)(HIST_SUB + sub)) << (e - 6);
}

void hist_add(hist_t *h, uint64_t v) {
  h->b[bucket(v)]++;
  h->count++;
  if (v > h->max) h->max = v;
}

uint64_t hist_quantile(const hist_t *h, double q) {
  if (!h->count) return 0;
  uint64_t want = (uint64_t)(q * (double)h->count);
  if (want >= h->count) want = h->count - 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < HIST_POW * HIST_SUB; i++) {
    seen += h->b[i];
    if (seen > want) {
      uint64_t v = bucket_value(i);
      return v > h->max ? h->max : v;
    }
  }
  return h->max;
}

void hist_merge(hist_t *into, const hist_t *h) {
  for (unsigned i = 0; i < HIST_POW * HIST_SUB; i++) into->b[i] += h->b[i];
  into->count += h->count;
  if (h->max > into->max) into->max = h->max;
}
