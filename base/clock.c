/*
 * clock.c — the clock interface: an rn_clock_t whose functions are NULL
 * (or a NULL rn_clock_t) reads the system clocks, so the zeroed options of
 * any subsystem run on real time and tests inject their own.
 */
#include <time.h>

#include "rn_base.h"

int64_t rn_clock_system_wall_ms(void *arg) {
  (void)arg;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t rn_clock_system_mono_ns(void *arg) {
  (void)arg;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t rn_clock_wall_ms(const rn_clock_t *clk) {
  if (clk != NULL && clk->wall_ms != NULL) return clk->wall_ms(clk->arg);
  return rn_clock_system_wall_ms(NULL);
}

uint64_t rn_clock_mono_ns(const rn_clock_t *clk) {
  if (clk != NULL && clk->mono_ns != NULL) return clk->mono_ns(clk->arg);
  return rn_clock_system_mono_ns(NULL);
}
