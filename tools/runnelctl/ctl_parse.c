/*
 * ctl_parse.c — runnelctl's pure parsers of what a user types (times,
 * positions, shard ids, counts, the --key-field JSON extraction). Sizes and
 * durations are not here: they are the shared syntax of runnel/units.h;
 * the formatters of output are in ctl_out.c.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_int.h"
#include "runnel/units.h"

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  /* days since 1970-01-01 of a proleptic Gregorian date (the era/year-of-era
   * decomposition: 400-year eras of 146097 days, March-based years) */
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i])) return -1;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return 0;
}

int ctl_parse_iso8601_ms(const char *s, int64_t *out) {
  const char *p = s;
  int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
  if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d)) return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return -1;
  int64_t off_min = 0;
  if (*p == 'T' || *p == 't' || *p == ' ') {
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi)) return -1;
    if (*p == ':') {
      p++;
      if (digits(&p, 2, &sec)) return -1;
      if (*p == '.' || *p == ',') {
        p++;
        int nd = 0;
        ms = 0;
        while (isdigit((unsigned char)*p)) {
          if (nd < 3) ms = ms * 10 + (*p - '0');
          nd++;
          p++;
        }
        if (nd == 0) return -1;
        for (; nd < 3; nd++) ms *= 10;
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return -1;
    if (*p == 'Z' || *p == 'z') {
      p++;
    } else if (*p == '+' || *p == '-') {
      int sign = *p++ == '-' ? -1 : 1, oh, om;
      if (digits(&p, 2, &oh)) return -1;
      if (*p == ':') p++;
      if (digits(&p, 2, &om)) return -1;
      off_min = sign * (oh * 60 + om);
    }
  }
  if (*p != '\0') return -1;
  int64_t days = days_from_civil(y, mo, d);
  *out = ((days * 24 + h) * 60 + mi) * 60000LL + sec * 1000LL + ms - off_min * 60000LL;
  return 0;
}

static bool all_digits(const char *s) {
  if (*s == '\0') return false;
  for (; *s; s++)
    if (!isdigit((unsigned char)*s)) return false;
  return true;
}

int ctl_parse_time(const char *s, int64_t now_ms, int64_t *out) {
  if (s == NULL || *s == '\0') return -1;
  if (s[0] == '@') {
    if (!all_digits(s + 1)) return -1;
    errno = 0;
    long long v = strtoll(s + 1, NULL, 10);
    if (errno) return -1;
    *out = v;
    return 0;
  }
  if (s[0] == '-') {
    int64_t d;
    if (rn_parse_duration_ms(s + 1, &d, NULL, 0) != 0) return -1;
    *out = now_ms - d;
    return 0;
  }
  return ctl_parse_iso8601_ms(s, out);
}

int ctl_parse_pos(const char *s, int64_t now_ms, rn_pos_kind_t *kind, int64_t *value, char *why, size_t whylen) {
  if (s == NULL || *s == '\0') {
    snprintf(why, whylen, "empty position");
    return -1;
  }
  if (strcmp(s, "earliest") == 0 || strcmp(s, "latest") == 0) {
    *kind = s[0] == 'e' ? RN_POS_EARLIEST : RN_POS_LATEST;
    *value = 0;
    return 0;
  }
  if (all_digits(s)) {
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno) {
      snprintf(why, whylen, "\"%s\" is too large for an offset", s);
      return -1;
    }
    *kind = RN_POS_OFFSET;
    *value = v;
    return 0;
  }
  if (ctl_parse_time(s, now_ms, value) == 0) {
    *kind = RN_POS_TIMESTAMP;
    return 0;
  }
  snprintf(why, whylen,
           "\"%s\" is not earliest, latest, an OFFSET, @MS, -DURATION (-1h) or an ISO 8601 time "
           "(2026-11-22T10:00:00Z)",
           s);
  return -1;
}

const char *ctl_ms_hint(int64_t offset, char *buf, size_t n) {
  if (offset < CTL_TS_LOOKS_LIKE_MS) return "";
  snprintf(buf, n, "; %" PRId64 " looks like a time in ms: write @%" PRId64 " for a time", offset, offset);
  return buf;
}

int ctl_parse_shard(const char *s, uint32_t *out) {
  if (s == NULL) return -1;
  if (strncmp(s, "shardId-", 8) == 0) s += 8;
  if (*s == '\0' || strlen(s) > 12) return -1;
  uint64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (!isdigit((unsigned char)*p)) return -1;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  if (v > UINT32_MAX) return -1;
  *out = (uint32_t)v;
  return 0;
}

int ctl_parse_count(const char *s, uint64_t *out) {
  if (s == NULL || !all_digits(s)) return -1;
  errno = 0;
  unsigned long long v = strtoull(s, NULL, 10);
  if (errno || v == 0) return -1;
  *out = v;
  return 0;
}

int ctl_key_field(const char *line, size_t len, const char *field, char **key, size_t *keylen, char *why,
                  size_t whylen) {
  json_error_t jerr;
  json_t *doc = json_loadb(line, len, 0, &jerr);
  if (doc == NULL) {
    snprintf(why, whylen, "not JSON: %s", jerr.text);
    return -1;
  }
  int rc = -1;
  if (!json_is_object(doc)) {
    snprintf(why, whylen, "not a JSON object");
  } else {
    json_t *v = json_object_get(doc, field);
    if (v == NULL) {
      snprintf(why, whylen, "no field \"%s\"", field);
    } else if (json_is_string(v)) {
      *keylen = json_string_length(v);
      *key = malloc(*keylen + 1);
      if (*key) {
        memcpy(*key, json_string_value(v), *keylen + 1);
        rc = 0;
      }
    } else if (json_is_number(v) || json_is_boolean(v)) {
      *key = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
      if (*key) {
        *keylen = strlen(*key);
        rc = 0;
      }
    } else {
      snprintf(why, whylen, "field \"%s\" is not a string, number or boolean", field);
    }
  }
  json_decref(doc);
  return rc;
}
