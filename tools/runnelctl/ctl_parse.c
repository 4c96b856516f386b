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
#include "rn_base.h"
#include "runnel/units.h"

/* runnelctl's --from/--to: a date alone, minutes without seconds and no
 * zone (UTC) are accepted; an offset has its minutes (rn_base.h). */
int ctl_parse_iso8601_ms(const char *s, int64_t *out) {
  return rn_iso8601_parse(s, strlen(s), RN_ISO8601_DATE_ONLY | RN_ISO8601_NO_SECONDS | RN_ISO8601_NO_ZONE |
                                            RN_ISO8601_OFFSET_MINUTES,
                          out) == 0
             ? 0
             : -1;
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
