/*
 * test_clock.c — the clock interface (rn_base.h section 2): NULL and a
 * zeroed rn_clock_t read the system clocks; injected functions are called
 * with their arg, each independently of the other.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "rn_base.h"

typedef struct {
  int64_t wall;
  uint64_t mono;
} fake_t;

static int64_t fake_wall(void *arg) { return ((fake_t *)arg)->wall; }
static uint64_t fake_mono(void *arg) { return ((fake_t *)arg)->mono; }

static void test_system_default(void **state) {
  (void)state;
  /* After 2020-01-01 and before 2200: the real clock, not a zero. */
  int64_t w = rn_clock_wall_ms(NULL);
  assert_true(w > 1577836800000ll && w < 7258118400000ll);
  rn_clock_t zero = {0};
  assert_true(rn_clock_wall_ms(&zero) >= w);
  uint64_t a = rn_clock_mono_ns(NULL);
  uint64_t b = rn_clock_mono_ns(&zero);
  assert_true(b >= a);
}

static void test_injected(void **state) {
  (void)state;
  fake_t f = {1700000000000ll, 42};
  rn_clock_t clk = {fake_wall, fake_mono, &f};
  assert_int_equal(rn_clock_wall_ms(&clk), 1700000000000ll);
  assert_int_equal(rn_clock_mono_ns(&clk), 42);
  f.wall += 60000;
  f.mono += 5;
  assert_int_equal(rn_clock_wall_ms(&clk), 1700000060000ll);
  assert_int_equal(rn_clock_mono_ns(&clk), 47);
  /* Only the wall clock injected: monotonic time stays the system's. */
  rn_clock_t half = {fake_wall, NULL, &f};
  assert_int_equal(rn_clock_wall_ms(&half), 1700000060000ll);
  assert_true(rn_clock_mono_ns(&half) > 47);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_system_default),
      cmocka_unit_test(test_injected),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
