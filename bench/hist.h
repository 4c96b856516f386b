/*
 * hist.h — a log-linear latency histogram (microsecond resolution up to
 * ~1 hour, ~1.6 % relative error): cheap to record, exact enough for
 * p50/p99/p99.9/max. Plain value type; no allocation.
 *
 * Not rn_hist_t (rn_base.h) on purpose: that one is the Prometheus kind,
 * 16 fixed bounds from 100 us to 10 s, which can say how many values fell
 * under a bound but not where p99.9 is; the benchmarks report percentiles
 * and need 2560 log-linear buckets (64 per power of two) for that.
 */
#ifndef RN_BENCH_HIST_H
#define RN_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB 64   /* buckets per power of two */
#define HIST_POW 40

typedef struct hist {
  uint64_t count;
  uint64_t max;
  uint64_t b[HIST_POW * HIST_SUB];
} hist_t;

void hist_add(hist_t *h, uint64_t v);
/* Value at quantile q in [0, 1]; 0 when empty. */
uint64_t hist_quantile(const hist_t *h, double q);
/* Add every value of h to into. */
void hist_merge(hist_t *into, const hist_t *h);

#endif
