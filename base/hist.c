/*
 * hist.c — the one fixed-bucket histogram (storage's fdatasync rounds, the
 * engine's append latency, the HTTP request durations used to keep three
 * copies of the same bucket search and counters).
 */
#include <assert.h>

#include "rn_base.h"

const double rn_hist_latency_bounds[RN_HIST_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};

void rn_hist_record(rn_hist_t *h, const double *bounds, unsigned nbounds, double v) {
  assert(nbounds <= RN_HIST_BUCKETS);
  unsigned b = 0;
  while (b < nbounds && v > bounds[b]) b++;
  h->buckets[b]++;
  h->count++;
  h->sum += v;
}

void rn_hist_merge(rn_hist_t *into, const rn_hist_t *from) {
  for (unsigned b = 0; b <= RN_HIST_BUCKETS; b++) into->buckets[b] += from->buckets[b];
  into->count += from->count;
  into->sum += from->sum;
}
