/*
 * dedup_json.c — the id of a record from a JSON field of its data
 * (rn__dedup_json_field, dedup.h): one pass over the bytes that validates
 * the whole document (RFC 8259 grammar: strings with their escapes and no
 * control characters, numbers, literals, nesting up to 64) and remembers
 * the value at the path. No allocation; pure over bytes.
 */
#include <string.h>

#include "dedup.h"

#define MAX_DEPTH 64

typedef struct scan {
  const uint8_t *p, *end;
  const char *path;      /* the rest of the path to match, NULL = not matching */
  const uint8_t *found;  /* the value at the path */
  size_t found_len;
} scan_t;

static void ws(scan_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static bool hex(uint8_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* Four hex digits at p, or UINT32_MAX. */
static uint32_t hex4(const uint8_t *p, const uint8_t *end) {
  if (end - p < 4) return UINT32_MAX;
  uint32_t v = 0;
  for (int k = 0; k < 4; k++) {
    uint8_t c = p[k];
    if (!hex(c)) return UINT32_MAX;
    v = v << 4 | (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  }
  return v;
}

/* One well-formed UTF-8 sequence at p (lead byte >= 0x80): its length, or
 * 0 (overlong, a surrogate, above U+10FFFF, truncated). */
static size_t utf8(const uint8_t *p, const uint8_t *end) {
  uint8_t c = p[0];
  size_t n;
  uint32_t min, cp;
  if (c >= 0xC2 && c <= 0xDF) n = 2, min = 0x80, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, min = 0x800, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, min = 0x10000, cp = c & 0x07;
  else return 0;
  if ((size_t)(end - p) < n) return 0;
  for (size_t k = 1; k < n; k++) {
    if ((p[k] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (p[k] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

/* A string at s->p (the opening quote); *body and *blen its raw bytes
 * (escapes as written; the id is compared as bytes). */
static bool string(scan_t *s, const uint8_t **body, size_t *blen) {
  if (s->p >= s->end || *s->p != '"') return false;
  const uint8_t *b = ++s->p;
  while (s->p < s->end) {
    uint8_t c = *s->p;
    if (c == '"') {
      *body = b;
      *blen = (size_t)(s->p - b);
      s->p++;
      return true;
    }
    if (c < 0x20) return false;
    if (c >= 0x80) {
      size_t n = utf8(s->p, s->end);
      if (!n) return false;
      s->p += n;
      continue;
    }
    if (c == '\\') {
      if (++s->p >= s->end) return false;
      c = *s->p;
      if (c == 'u') {
        /* \uXXXX; a surrogate must be a high one followed by \u and a low
         * one (a lone surrogate is refused, as by most parsers). */
        uint32_t u = hex4(s->p + 1, s->end);
        if (u == UINT32_MAX || (u >= 0xDC00 && u <= 0xDFFF)) return false;
        s->p += 4;
        if (u >= 0xD800 && u <= 0xDBFF) {
          if (s->end - s->p < 7 || s->p[1] != '\\' || s->p[2] != 'u') return false;
          uint32_t lo = hex4(s->p + 3, s->end);
          if (lo == UINT32_MAX || lo < 0xDC00 || lo > 0xDFFF) return false;
          s->p += 6;
        }
      } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
        return false;
      }
    }
    s->p++;
  }
  return false;
}

static bool digits(scan_t *s) {
  const uint8_t *b = s->p;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  return s->p > b;
}

static bool number(scan_t *s) {
  if (s->p < s->end && *s->p == '-') s->p++;
  if (s->p >= s->end) return false;
  if (*s->p == '0') s->p++;
  else if (!digits(s)) return false;
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (!digits(s)) return false;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
    if (!digits(s)) return false;
  }
  return true;
}

static bool literal(scan_t *s, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n)) return false;
  s->p += n;
  return true;
}

/* Does key (raw bytes) equal the next part of path? Sets *rest to what
 * follows it (NULL when the path ends here). */
static bool part_match(const char *path, const uint8_t *key, size_t klen, const char **rest) {
  const char *dot = strchr(path, '.');
  size_t plen = dot ? (size_t)(dot - path) : strlen(path);
  if (plen != klen || memcmp(path, key, klen)) return false;
  *rest = dot ? dot + 1 : NULL;
  return true;
}

/* One value at s->p. match: the path to look for inside it when it is an
 * object (NULL: none); at_path: this value is the one the path names. */
static bool value(scan_t *s, int depth, const char *match, bool at_path) {
  if (depth > MAX_DEPTH) return false;
  ws(s);
  if (s->p >= s->end) return false;
  const uint8_t *start = s->p;
  uint8_t c = *s->p;
  if (c == '{') {
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == '}') {
      s->p++;
      return true;
    }
    for (;;) {
      ws(s);
      const uint8_t *key;
      size_t klen;
      if (!string(s, &key, &klen)) return false;
      ws(s);
      if (s->p >= s->end || *s->p != ':') return false;
      s->p++;
      const char *rest = NULL;
      bool hit = match && !s->found && part_match(match, key, klen, &rest);
      if (!value(s, depth + 1, hit ? rest : NULL, hit && rest == NULL)) return false;
      ws(s);
      if (s->p >= s->end) return false;
      if (*s->p == ',') {
        s->p++;
        continue;
      }
      if (*s->p != '}') return false;
      s->p++;
      return true;
    }
  }
  if (c == '[') {
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == ']') {
      s->p++;
      return true;
    }
    for (;;) {
      if (!value(s, depth + 1, NULL, false)) return false;
      ws(s);
      if (s->p >= s->end) return false;
      if (*s->p == ',') {
        s->p++;
        continue;
      }
      if (*s->p != ']') return false;
      s->p++;
      return true;
    }
  }
  if (c == '"') {
    const uint8_t *body;
    size_t blen;
    if (!string(s, &body, &blen)) return false;
    if (at_path) {
      s->found = body;
      s->found_len = blen;
    }
    return true;
  }
  if (c == '-' || (c >= '0' && c <= '9')) {
    if (!number(s)) return false;
    if (at_path) {
      s->found = start;
      s->found_len = (size_t)(s->p - start);
    }
    return true;
  }
  return literal(s, "true") || literal(s, "false") || literal(s, "null");
}

bool rn__dedup_json_field(const uint8_t *data, size_t len, const char *path, const uint8_t **id, size_t *idlen) {
  if (!data || !path || !*path) return false;
  scan_t s = {.p = data, .end = data + len, .path = path};
  ws(&s);
  if (s.p >= s.end || *s.p != '{') return false;
  if (!value(&s, 0, path, false)) return false;
  ws(&s);
  if (s.p != s.end || !s.found) return false;
  *id = s.found;
  *idlen = s.found_len;
  return true;
}
