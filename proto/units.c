/*
 * units.c — sizes and durations (runnel/units.h): the parsers runnelctl and
 * the broker's configuration share, and their inverse formatters. Every
 * rejection says what to write instead; nothing here allocates.
 */
#include "runnel/units.h"

#include "proto_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

rn_err_t rn__reject(char *why, size_t whylen, const char *fmt, ...) {
  if (why && whylen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
  }
  return RN_EINVAL;
}

/* Leading decimal digits of *p into *v; false when none or on overflow. */
static bool digits_u64(const char **p, uint64_t *v, bool *overflow) {
  const char *s = *p;
  uint64_t n = 0;
  *overflow = false;
  while (*s >= '0' && *s <= '9') {
    unsigned d = (unsigned)(*s - '0');
    if (n > (UINT64_MAX - d) / 10) *overflow = true;
    else n = n * 10 + d;
    s++;
  }
  if (s == *p) return false;
  *p = s;
  *v = n;
  return true;
}

static const struct {
  const char *unit;
  int shift;
} size_units[] = {
    {"", 0},     {"B", 0},     {"K", 10},  {"Ki", 10}, {"KiB", 10}, {"M", 20},  {"Mi", 20}, {"MiB", 20},
    {"G", 30},   {"Gi", 30},   {"GiB", 30}, {"T", 40},  {"Ti", 40},  {"TiB", 40},
};

rn_err_t rn_parse_size(const char *s, int64_t *out, char *why, size_t whylen) {
  if (s == NULL || *s == '\0')
    return rn__reject(why, whylen, "empty size (write bytes, or 512KiB, 64MiB, 10GiB, 1TiB)");
  const char *p = s;
  uint64_t n;
  bool overflow;
  if (!digits_u64(&p, &n, &overflow))
    return rn__reject(why, whylen, "\"%s\" is not a size (write bytes, or 512KiB, 64MiB, 10GiB, 1TiB)", s);
  if (*p == '.' || *p == ',')
    return rn__reject(why, whylen, "\"%s\": sizes are whole numbers (write 1536MiB, not 1.5GiB)", s);
  for (size_t i = 0; i < sizeof size_units / sizeof size_units[0]; i++) {
    if (strcmp(p, size_units[i].unit) != 0) continue;
    if (overflow || n > ((uint64_t)INT64_MAX >> size_units[i].shift))
      return rn__reject(why, whylen, "\"%s\" is too large (at most 8191PiB)", s);
    *out = (int64_t)(n << size_units[i].shift);
    return 0;
  }
  /* Say what was probably meant: KB/kB/kb/k/mb/... are decimal or unknown. */
  char up = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
  if (up == 'K' || up == 'M' || up == 'G' || up == 'T')
    return rn__reject(why, whylen,
                      "\"%s\": write %" PRIu64 "%ciB (sizes are binary; K, Ki and KiB all mean 1024, and the unit "
                      "letters are upper case)",
                      s, n, up);
  return rn__reject(why, whylen, "\"%s\": unknown size unit \"%s\" (write B, KiB, MiB, GiB or TiB)", s, p);
}

static const struct {
  const char *unit;
  int64_t ms;
} dur_units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};

rn_err_t rn_parse_duration_ms(const char *s, int64_t *out, char *why, size_t whylen) {
  if (s == NULL || *s == '\0') return rn__reject(why, whylen, "empty duration (write 500ms, 30s, 90m, 24h or 7d)");
  const char *p = s;
  int64_t total = 0;
  while (*p) {
    uint64_t n;
    bool overflow;
    if (!digits_u64(&p, &n, &overflow))
      return rn__reject(why, whylen, "\"%s\" is not a duration (write 500ms, 30s, 90m, 24h, 7d or 1h30m)", s);
    if (*p == '.' || *p == ',')
      return rn__reject(why, whylen, "\"%s\": durations are whole numbers (write 90m, not 1.5h)", s);
    if (*p == '\0')
      return rn__reject(why, whylen, "\"%s\" has no unit (write %" PRIu64 "ms or %" PRIu64 "s: ms, s, m, h or d)", s, n,
                        n);
    size_t best = 0, best_len = 0;
    for (size_t i = 0; i < sizeof dur_units / sizeof dur_units[0]; i++) {
      size_t l = strlen(dur_units[i].unit);
      if (strncmp(p, dur_units[i].unit, l) == 0 && l > best_len) {
        best = i;
        best_len = l;
      }
    }
    if (best_len == 0) {
      size_t ul = strcspn(p, "0123456789");
      return rn__reject(why, whylen, "\"%s\": unknown duration unit \"%.*s\" (write ms, s, m, h or d)", s, (int)ul, p);
    }
    p += best_len;
    int64_t mult = dur_units[best].ms;
    if (overflow || n > (uint64_t)(INT64_MAX / mult) || total > INT64_MAX - (int64_t)n * mult)
      return rn__reject(why, whylen, "\"%s\" is too long", s);
    total += (int64_t)n * mult;
  }
  *out = total;
  return 0;
}

void rn_format_size(int64_t bytes, char *buf, size_t n) {
  static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (n == 0) return;
  if (bytes <= 0) {
    snprintf(buf, n, "%" PRId64 "B", bytes);
    return;
  }
  size_t i = 0;
  while (i + 1 < sizeof u / sizeof u[0] && bytes % 1024 == 0) {
    bytes /= 1024;
    i++;
  }
  snprintf(buf, n, "%" PRId64 "%s", bytes, u[i]);
}

void rn_format_duration_ms(int64_t ms, char *buf, size_t n) {
  if (n == 0) return;
  if (ms <= 0) {
    snprintf(buf, n, "%" PRId64 "ms", ms);
    return;
  }
  for (size_t i = sizeof dur_units / sizeof dur_units[0]; i-- > 0;) {
    if (ms % dur_units[i].ms == 0) {
      snprintf(buf, n, "%" PRId64 "%s", ms / dur_units[i].ms, dur_units[i].unit);
      return;
    }
  }
}
