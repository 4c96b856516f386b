/*
 * test_hist.c — the fixed-bucket histogram (rn_base.h section 4): the
 * latency bounds are exactly the ones storage's sync stats and the
 * engine's append histogram used (so /metrics does not change), values
 * land in the bucket the old search put them in (a value equal to a bound
 * in that bound's bucket, beyond the last in +Inf), a shorter bounds array
 * (the HTTP durations' 14) puts +Inf at its own length, merge adds
 * everything.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "rn_base.h"

/* The bounds as they were written in storage/log.c and broker/core/engine.c. */
static const double old_bounds[16] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};
/* broker/apps/admin/metrics.c's request durations. */
static const double dur_bounds[14] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                      0.1,    0.25,  0.5,    1,     2.5,  5,     10};

static unsigned old_bucket(const double *bounds, unsigned n, double s) {
  unsigned b = 0;
  while (b < n && s > bounds[b]) b++;
  return b;
}

static void test_bounds_unchanged(void **state) {
  (void)state;
  assert_int_equal(RN_HIST_BUCKETS, 16);
  assert_memory_equal(rn_hist_latency_bounds, old_bounds, sizeof old_bounds);
}

static void test_bucketing_as_before(void **state) {
  (void)state;
  rn_hist_t h = {0};
  uint64_t expect[RN_HIST_BUCKETS + 1] = {0};
  double sum = 0;
  unsigned n = 0;
  /* Every bound itself, just below and just above it, 0, and far beyond. */
  for (unsigned i = 0; i < 16; i++) {
    const double vs[] = {old_bounds[i], old_bounds[i] * 0.999999, old_bounds[i] * 1.000001};
    for (unsigned k = 0; k < 3; k++) {
      rn_hist_record(&h, rn_hist_latency_bounds, RN_HIST_BUCKETS, vs[k]);
      expect[old_bucket(old_bounds, 16, vs[k])]++;
      sum += vs[k];
      n++;
    }
  }
  rn_hist_record(&h, rn_hist_latency_bounds, RN_HIST_BUCKETS, 0);
  rn_hist_record(&h, rn_hist_latency_bounds, RN_HIST_BUCKETS, 1e9);
  expect[0]++;
  expect[16]++;
  sum += 1e9;
  n += 2;
  /* A sweep across six decades. */
  for (double v = 1e-6; v < 100; v *= 1.07) {
    rn_hist_record(&h, rn_hist_latency_bounds, RN_HIST_BUCKETS, v);
    expect[old_bucket(old_bounds, 16, v)]++;
    sum += v;
    n++;
  }
  assert_memory_equal(h.buckets, expect, sizeof expect);
  assert_int_equal(h.count, n);
  assert_true(h.sum == sum); /* same additions in the same order */
  /* A value equal to a bound is in that bound's bucket; past the last, +Inf. */
  rn_hist_t one = {0};
  rn_hist_record(&one, rn_hist_latency_bounds, RN_HIST_BUCKETS, 0.0025);
  assert_int_equal(one.buckets[4], 1);
  rn_hist_record(&one, rn_hist_latency_bounds, RN_HIST_BUCKETS, 10.0000001);
  assert_int_equal(one.buckets[16], 1);
}

static void test_shorter_bounds(void **state) {
  (void)state;
  rn_hist_t h = {0};
  rn_hist_record(&h, dur_bounds, 14, 0.0001); /* below the first */
  rn_hist_record(&h, dur_bounds, 14, 0.0005);
  rn_hist_record(&h, dur_bounds, 14, 0.0006);
  rn_hist_record(&h, dur_bounds, 14, 10);
  rn_hist_record(&h, dur_bounds, 14, 11); /* +Inf is buckets[14] */
  assert_int_equal(h.buckets[0], 2);
  assert_int_equal(h.buckets[1], 1);
  assert_int_equal(h.buckets[13], 1);
  assert_int_equal(h.buckets[14], 1);
  assert_int_equal(h.buckets[15] + h.buckets[16], 0);
  assert_int_equal(h.count, 5);
}

static void test_merge(void **state) {
  (void)state;
  rn_hist_t a = {0}, b = {0}, sum = {0};
  for (int i = 0; i < 50; i++) rn_hist_record(&a, rn_hist_latency_bounds, RN_HIST_BUCKETS, i * 0.01);
  for (int i = 0; i < 30; i++) rn_hist_record(&b, rn_hist_latency_bounds, RN_HIST_BUCKETS, i * 0.5);
  rn_hist_merge(&sum, &a);
  rn_hist_merge(&sum, &b);
  assert_int_equal(sum.count, 80);
  assert_true(sum.sum == a.sum + b.sum);
  for (int k = 0; k <= RN_HIST_BUCKETS; k++) assert_int_equal(sum.buckets[k], a.buckets[k] + b.buckets[k]);
  rn_hist_t empty = {0};
  rn_hist_merge(&sum, &empty);
  assert_int_equal(sum.count, 80);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bounds_unchanged),
      cmocka_unit_test(test_bucketing_as_before),
      cmocka_unit_test(test_shorter_bounds),
      cmocka_unit_test(test_merge),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
