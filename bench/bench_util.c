/* bench_util.c — see bench_util.h. */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t bench_parse_size(const char *s) {
  char *end;
  double v = strtod(s, &end);
  switch (*end) {
  case 'k': case 'K': v *= 1024; break;
  case 'm': case 'M': v *= 1024 * 1024; break;
  case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
  case '\0': break;
  default: return 0;
  }
  return v > 0 ? (uint64_t)v : 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double bench_median(const double *v, unsigned n) {
  double *s = malloc(n * sizeof(double));
  if (!s) return 0;
  memcpy(s, v, n * sizeof(double));
  qsort(s, n, sizeof(double), cmp_double);
  double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  free(s);
  return m;
}

void bench_json_list(char *out, size_t cap, const double *v, unsigned n, int decimals) {
  size_t l = 0;
  out[0] = 0;
  for (unsigned i = 0; i < n && l < cap; i++) {
    int w = snprintf(out + l, cap - l, "%s%.*f", i ? "," : "", decimals, v[i]);
    if (w < 0) break;
    l += (size_t)w;
  }
}
