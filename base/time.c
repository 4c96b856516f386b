/*
 * time.c — the one copy of the calendar arithmetic and of the date
 * syntaxes (ISO-8601 / RFC 3339 and SigV4's basic form). Before, the
 * Kinesis timestamps, the SigV4 dates and runnelctl's --from each carried a
 * days_from_civil of their own. Pure functions over bytes: no locale, no
 * time zone database, no libc time functions (gmtime's time_t stops at
 * 2038 on some targets; these do not).
 */
#include <errno.h>
#include <stdio.h>

#include "rn_base.h"

int64_t rn_days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

void rn_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d) {
  days += 719468;
  int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  unsigned doe = (unsigned)(days - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

bool rn_leap_year(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* count decimal digits at s[at..), all within n. */
static bool digits(const char *s, size_t n, size_t at, size_t count, int64_t *v) {
  if (at + count > n) return false;
  int64_t x = 0;
  for (size_t i = 0; i < count; i++) {
    char c = s[at + i];
    if (c < '0' || c > '9') return false;
    x = x * 10 + (c - '0');
  }
  *v = x;
  return true;
}

int rn_iso8601_parse(const char *s, size_t n, unsigned flags, int64_t *ms) {
  int64_t Y, M, D, h = 0, mi = 0, sec = 0, frac_ms = 0, off_s = 0;
  if (!digits(s, n, 0, 4, &Y) || n < 10 || s[4] != '-' || !digits(s, n, 5, 2, &M) || s[7] != '-' ||
      !digits(s, n, 8, 2, &D))
    return -EINVAL;
  if (M < 1 || M > 12 || D < 1 || D > 31) return -EINVAL;
  size_t at = 10;
  if (at == n && (flags & RN_ISO8601_DATE_ONLY)) goto done;
  if (at >= n || (s[at] != 'T' && s[at] != 't' && s[at] != ' ')) return -EINVAL;
  if (!digits(s, n, 11, 2, &h) || n < 14 || s[13] != ':' || !digits(s, n, 14, 2, &mi)) return -EINVAL;
  at = 16;
  if (at < n && s[at] == ':') {
    if (!digits(s, n, 17, 2, &sec)) return -EINVAL;
    at = 19;
    if (at < n && (s[at] == '.' || s[at] == ',')) {
      size_t start = ++at;
      int64_t scale = 100;
      for (; at < n && s[at] >= '0' && s[at] <= '9'; at++) {
        if (scale > 0) frac_ms += (s[at] - '0') * scale;
        scale /= 10;
      }
      if (at == start) return -EINVAL;
    }
  } else if (!(flags & RN_ISO8601_NO_SECONDS)) {
    return -EINVAL;
  }
  if (h > 23 || mi > 59 || sec > 60) return -EINVAL;
  if (at < n && (s[at] == 'Z' || s[at] == 'z')) {
    at++;
  } else if (at < n && (s[at] == '+' || s[at] == '-')) {
    int sign = s[at] == '-' ? -1 : 1;
    int64_t oh, om = 0;
    if (!digits(s, n, at + 1, 2, &oh)) return -EINVAL;
    at += 3;
    if (at < n && s[at] == ':') at++;
    if (at < n || (flags & RN_ISO8601_OFFSET_MINUTES)) {
      if (!digits(s, n, at, 2, &om)) return -EINVAL;
      at += 2;
    }
    if (oh > 23 || om > 59) return -EINVAL;
    off_s = sign * (oh * 3600 + om * 60);
  } else if (!(flags & RN_ISO8601_NO_ZONE)) {
    return -EINVAL; /* a time without a zone is ambiguous */
  }
  if (at != n) return -EINVAL;
done:;
  int64_t days = rn_days_from_civil(Y, (unsigned)M, (unsigned)D);
  *ms = (days * 86400 + h * 3600 + mi * 60 + sec - off_s) * 1000 + frac_ms;
  return 0;
}

/* floor division, for times before 1970 */
static int64_t floordiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

size_t rn_iso8601_format_ms(int64_t ms, char out[RN_ISO8601_MAX]) {
  int64_t secs = floordiv(ms, 1000), days = floordiv(secs, 86400);
  int64_t sod = secs - days * 86400, y;
  unsigned m, d;
  rn_civil_from_days(days, &y, &m, &d);
  int len = snprintf(out, RN_ISO8601_MAX, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", (long long)y, m, d,
                     (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60), (unsigned)(sod % 60),
                     (unsigned)(ms - secs * 1000));
  return len > 0 ? (size_t)len : 0;
}

int rn_amz_date_parse(const char *s, size_t n, int64_t *secs) {
  int64_t Y, M, D, h, m, sec;
  if (n != 16 || s[8] != 'T' || s[15] != 'Z' || !digits(s, n, 0, 4, &Y) || !digits(s, n, 4, 2, &M) ||
      !digits(s, n, 6, 2, &D) || !digits(s, n, 9, 2, &h) || !digits(s, n, 11, 2, &m) || !digits(s, n, 13, 2, &sec))
    return -EINVAL;
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return -EINVAL;
  *secs = rn_days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + m * 60 + sec;
  return 0;
}

void rn_amz_date_format(int64_t secs, char out[17]) {
  int64_t days = floordiv(secs, 86400), sod = secs - days * 86400, y;
  unsigned m, d;
  rn_civil_from_days(days, &y, &m, &d);
  if (y < 0 || y > 9999) y = y < 0 ? 0 : 9999; /* the form has four digits */
  snprintf(out, 17, "%04u%02u%02uT%02u%02u%02uZ", (unsigned)y, m, d, (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60),
           (unsigned)(sod % 60));
}
