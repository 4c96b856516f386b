/*
 * bench_util.h — small helpers shared by runnel-bench subcommands: size
 * arguments, the median of per-round ratios, JSON number lists.
 */
#ifndef RN_BENCH_UTIL_H
#define RN_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* "64", "64K", "1M", "1.5G" (powers of 1024) → bytes; 0 when malformed. */
uint64_t bench_parse_size(const char *s);
/* Median of v[0, n), n >= 1 (v is not modified). */
double bench_median(const double *v, unsigned n);
/* Write v as "a,b,c" with the given decimals into out[cap]. */
void bench_json_list(char *out, size_t cap, const double *v, unsigned n, int decimals);

#endif
