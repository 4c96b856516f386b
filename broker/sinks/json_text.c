/*
 * json_text.c — JSON text as rn_sinkfmt writes it: the compact form of a
 * jansson value (NDJSON lines, string columns of objects and numbers, field
 * values in prefixes, values quoted in error messages).
 *
 * Our own writer rather than json_dumps: jansson prints reals with 17
 * significant digits ({"x":0.1} would become {"x":0.10000000000000001}),
 * while users expect their numbers back as they wrote them. Reals here get
 * the shortest of %.15g, %.16g, %.17g that parses back to the same double;
 * everything else is what json_dumps(JSON_COMPACT) writes: keys in insertion
 * order, non-ASCII as UTF-8, only '"', '\\' and control characters escaped.
 * Recursion depth is bounded by jansson's parser (2048 levels).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinkfmt_int.h"

void rn__sink_fail(char *why, size_t whylen, const char *fmt, ...) {
  if (why == NULL || whylen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
  for (char *c = why; *c; c++)
    if (*c == '\n' || *c == '\r') *c = ' ';
}

size_t rn__sink_real_text(double d, char out[32]) {
  int len = 0;
  for (int prec = 15; prec <= 17; prec++) {
    len = snprintf(out, 32, "%.*g", prec, d);
    if (strtod(out, NULL) == d) break;
  }
  if (len < 0) len = 0;
  /* a locale with a decimal comma (runnel never sets one, but be sure) */
  for (int i = 0; i < len; i++)
    if (out[i] == ',') out[i] = '.';
  if (strpbrk(out, ".eEn") == NULL && len + 2 < 32) {
    out[len++] = '.';
    out[len++] = '0';
    out[len] = '\0';
  }
  return (size_t)len;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t need;
  unsigned min;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) need = 2, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF) need = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) need = 4, min = 0x10000;
  else return 0;
  if (n < need) return 0;
  unsigned v = c & (0x3Fu >> (need - 1));
  for (size_t i = 1; i < need; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (s[i] & 0x3Fu);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  return need;
}

void rn__sink_json_string(rn_buf_t *b, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  rn_buf_reserve(b, n + 2);
  rn_buf_put(b, "\"", 1);
  size_t run = 0; /* start of the pending run of bytes copied as they are */
  for (size_t i = 0; i < n;) {
    unsigned c = u[i];
    const char *esc = NULL;
    char tmp[8];
    size_t k = 1;
    if (c == '"') esc = "\\\"";
    else if (c == '\\') esc = "\\\\";
    else if (c == '\n') esc = "\\n";
    else if (c == '\r') esc = "\\r";
    else if (c == '\t') esc = "\\t";
    else if (c == '\b') esc = "\\b";
    else if (c == '\f') esc = "\\f";
    else if (c < 0x20) {
      snprintf(tmp, sizeof tmp, "\\u%04x", c);
      esc = tmp;
    } else if (c >= 0x80) {
      k = utf8_len(u + i, n - i);
      if (k == 0) {
        esc = "\xEF\xBF\xBD"; /* U+FFFD for an invalid byte */
        k = 1;
      }
    }
    if (esc != NULL) {
      rn_buf_put(b, s + run, i - run);
      rn_buf_puts(b, esc);
      run = i + k;
    }
    i += k;
  }
  rn_buf_put(b, s + run, n - run);
  rn_buf_put(b, "\"", 1);
}

/* jansson's iterator functions take json_t *; they do not modify it. */
static json_t *unconst(const json_t *v) { return (json_t *)(uintptr_t)v; }

void rn__sink_json_compact(rn_buf_t *b, const json_t *v) {
  char num[32];
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    rn_buf_put(b, "{", 1);
    bool first = true;
    for (void *it = json_object_iter(unconst(v)); it != NULL; it = json_object_iter_next(unconst(v), it)) {
      if (!first) rn_buf_put(b, ",", 1);
      first = false;
      rn__sink_json_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
      rn_buf_put(b, ":", 1);
      rn__sink_json_compact(b, json_object_iter_value(it));
    }
    rn_buf_put(b, "}", 1);
    break;
  }
  case JSON_ARRAY: {
    rn_buf_put(b, "[", 1);
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
      if (i > 0) rn_buf_put(b, ",", 1);
      rn__sink_json_compact(b, json_array_get(v, i));
    }
    rn_buf_put(b, "]", 1);
    break;
  }
  case JSON_STRING:
    rn__sink_json_string(b, json_string_value(v), json_string_length(v));
    break;
  case JSON_INTEGER:
    rn_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    break;
  case JSON_REAL:
    rn_buf_put(b, num, rn__sink_real_text(json_real_value(v), num));
    break;
  case JSON_TRUE:
    rn_buf_puts(b, "true");
    break;
  case JSON_FALSE:
    rn_buf_puts(b, "false");
    break;
  case JSON_NULL:
    rn_buf_puts(b, "null");
    break;
  }
}

#define SNIPPET_BYTES 40

/* b's text into out[cap], cut at a UTF-8 boundary with "..." past SNIPPET_BYTES. */
static void cut(rn_buf_t *b, char *out, size_t cap) {
  size_t n = b->oom ? 0 : b->len;
  size_t lim = cap > 4 ? cap - 4 : 0; /* room for "..." and the NUL */
  if (lim > SNIPPET_BYTES) lim = SNIPPET_BYTES;
  bool over = n > lim;
  if (over) {
    n = lim;
    while (n > 0 && ((unsigned char)b->p[n] & 0xC0) == 0x80) n--; /* not inside a character */
  }
  if (n > 0) memcpy(out, b->p, n);
  if (over) memcpy(out + n, "...", 3), n += 3;
  out[n < cap ? n : cap - 1] = '\0';
  rn_buf_free(b);
}

void rn__sink_snippet(const json_t *v, char *out, size_t cap) {
  if (cap == 0) return;
  rn_buf_t b = {0};
  rn__sink_json_compact(&b, v);
  cut(&b, out, cap);
}

void rn__sink_quote(const char *s, size_t n, char *out, size_t cap) {
  if (cap == 0) return;
  rn_buf_t b = {0};
  rn__sink_json_string(&b, s, n > 4 * SNIPPET_BYTES ? 4 * SNIPPET_BYTES : n);
  cut(&b, out, cap);
}
