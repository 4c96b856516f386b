/*
 * admin_codec.c — the tables of rn_admin_codec.h: lookups into the Kinesis
 * error table, the operation table, and the JSON string writer. Pure: used
 * by the reply path and /metrics, the Kinesis decoders, SigV4, the Kinesis
 * and REST applications.
 */
#include "rn_admin_codec.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  const char *name;
  int status;
  bool retry;
} kerr_entry_t;

static const kerr_entry_t kerr_table[RN_KERR_COUNT] = {
    [RN_KERR_NONE] = {NULL, 500, false},
#define RN__KERR_ENTRY(name, status, retry) [RN_KERR_##name] = {#name, (status), (retry)},
    RN_KINESIS_ERRORS(RN__KERR_ENTRY)
#undef RN__KERR_ENTRY
};

static const kerr_entry_t *entry(rn_kinesis_err_t e) {
  return (int)e > RN_KERR_NONE && (int)e < RN_KERR_COUNT ? &kerr_table[e] : NULL;
}

const char *rn_kinesis_err_name(rn_kinesis_err_t e) {
  const kerr_entry_t *t = entry(e);
  return t ? t->name : NULL;
}

int rn_kinesis_err_status(rn_kinesis_err_t e) {
  const kerr_entry_t *t = entry(e);
  return t ? t->status : 500;
}

bool rn_kinesis_err_retryable(rn_kinesis_err_t e) {
  const kerr_entry_t *t = entry(e);
  return t ? t->retry : false;
}

/* ---- operations ------------------------------------------------------------------ */

static const struct {
  const char *name;
  bool supported;
} ops[RN__KOP_COUNT] = {
#define RN__KOP_ROW(name, supported) {#name, supported},
    RN__KINESIS_OPS(RN__KOP_ROW)
#undef RN__KOP_ROW
};

rn__kop_t rn__kop_from_name(const char *s, size_t n) {
  for (int i = 0; i < RN__KOP_COUNT; i++)
    if (strlen(ops[i].name) == n && memcmp(ops[i].name, s, n) == 0) return (rn__kop_t)i;
  return RN__KOP_COUNT;
}

const char *rn__kop_name(rn__kop_t op) { return op < RN__KOP_COUNT ? ops[op].name : "Unknown"; }
bool rn__kop_supported(rn__kop_t op) { return op < RN__KOP_COUNT && ops[op].supported; }

/* ---- JSON strings ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0, n), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

void rn__buf_json_str(rn_buf_t *b, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  rn_buf_reserve(b, n + 2);
  rn_buf_put(b, "\"", 1);
  size_t run = 0; /* start of the current run of bytes copied verbatim */
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      i++;
      continue;
    }
    size_t ul = c >= 0x80 ? utf8_len(s + i, n - i) : 0;
    if (ul) {
      i += ul;
      continue;
    }
    rn_buf_put(b, s + run, i - run);
    char esc[8];
    switch (c) {
    case '"': rn_buf_put(b, "\\\"", 2); break;
    case '\\': rn_buf_put(b, "\\\\", 2); break;
    case '\n': rn_buf_put(b, "\\n", 2); break;
    case '\r': rn_buf_put(b, "\\r", 2); break;
    case '\t': rn_buf_put(b, "\\t", 2); break;
    default:
      if (c < 0x20) {
        snprintf(esc, sizeof(esc), "\\u%04x", c);
        rn_buf_put(b, esc, 6);
      } else {
        rn_buf_put(b, "\\ufffd", 6); /* a byte that is not UTF-8 */
      }
    }
    i++;
    run = i;
  }
  rn_buf_put(b, s + run, n - run);
  rn_buf_put(b, "\"", 1);
}
