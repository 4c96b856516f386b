/*
 * fuzz_sink_template.c — libFuzzer target for the prefix templates, JSON
 * paths, record parsing and NDJSON lines of archive sinks
 * (broker/sinks/sinkfmt.h): a client writes the prefix, a stream's
 * producers write the records. Input: one flags byte, 8 bytes of time, then
 * the template text up to the first '\n', then the record's bytes.
 * Checked promises (a violation aborts):
 *   - every failure writes a NUL-terminated one-line reason that fits
 *     RN_SINK_WHY_MAX whole;
 *   - a parsed template's text ends with '/' unless empty;
 *   - a rendered prefix (any record, any time, any error kind) is at most
 *     RN_SINK_KEY_MAX bytes, NUL-terminated at its length, uses only
 *     [A-Za-z0-9] - _ . = / ! * ' ( ) %, never starts with '/', ends with
 *     '/' when non-empty, and has no empty, "." or ".." segment;
 *   - the template text also parsed as a JSON path evaluates without fault;
 *   - a record's NDJSON line is one line that parses back to an equal value.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "sinkfmt.h"

static void check_why(const char *why, size_t cap) {
  CHECK(memchr(why, '\0', cap) != NULL);
  CHECK(strlen(why) < cap - 1); /* RN_SINK_WHY_MAX holds every reason whole */
  CHECK(strchr(why, '\n') == NULL);
}

static bool key_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c != 0 && strchr("-_.=/!*'()%", c));
}

static void check_key(const char *k, size_t len) {
  CHECK(len <= RN_SINK_KEY_MAX);
  CHECK(strlen(k) == len);
  if (len == 0) return;
  CHECK(k[0] != '/');
  CHECK(k[len - 1] == '/');
  size_t seg = 0;
  for (size_t i = 0; i < len; i++) {
    CHECK(key_char((unsigned char)k[i]));
    if (k[i] == '/') {
      size_t n = i - seg;
      CHECK(n > 0);
      CHECK(!(n == 1 && k[seg] == '.'));
      CHECK(!(n == 2 && k[seg] == '.' && k[seg + 1] == '.'));
      seg = i + 1;
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 9 || size > 8192) return 0;
  unsigned flags = data[0] & 1;
  int64_t t;
  memcpy(&t, data + 1, 8);
  const char *text = (const char *)data + 9;
  size_t rest = size - 9;
  const char *nl = memchr(text, '\n', rest);
  size_t tlen = nl ? (size_t)(nl - text) : rest;
  const char *rec_bytes = nl ? nl + 1 : text + rest;
  size_t rlen = nl ? rest - tlen - 1 : 0;

  char why[RN_SINK_WHY_MAX];
  json_t *rec = NULL;
  memset(why, 'x', sizeof why);
  if (rn_sink_record_parse(rec_bytes, rlen, &rec, why, sizeof why) != 0) {
    CHECK(rec == NULL);
    check_why(why, sizeof why);
  } else {
    rn_sink_ndjson_t nd = {0};
    CHECK(rn_sink_ndjson_append(&nd, rec) == 0);
    CHECK(nd.buf.len > 0 && nd.buf.p[nd.buf.len - 1] == '\n');
    CHECK(memchr(nd.buf.p, '\n', nd.buf.len) == nd.buf.p + nd.buf.len - 1);
    json_error_t err;
    json_t *back = json_loadb(nd.buf.p, nd.buf.len - 1, JSON_ALLOW_NUL, &err);
    CHECK(back != NULL);
    CHECK(json_equal(back, rec));
    json_decref(back);
    rn_sink_ndjson_free(&nd);
  }

  rn_sink_path_t *p = NULL;
  memset(why, 'x', sizeof why);
  if (rn_sink_path_parse(text, tlen, &p, why, sizeof why) == 0) {
    (void)rn_sink_path_eval(p, rec);
    CHECK(strlen(rn_sink_path_text(p)) == tlen);
    rn_sink_path_free(p);
  } else {
    CHECK(p == NULL);
    check_why(why, sizeof why);
  }

  rn_sink_tmpl_t *tm = NULL;
  memset(why, 'x', sizeof why);
  if (rn_sink_tmpl_parse(text, tlen, flags ? RN_SINK_TMPL_ERROR : 0, &tm, why, sizeof why) != 0) {
    CHECK(tm == NULL);
    check_why(why, sizeof why);
    json_decref(rec);
    return 0;
  }
  const char *tt = rn_sink_tmpl_text(tm);
  CHECK(strlen(tt) == 0 || tt[strlen(tt) - 1] == '/');
  static const char *const kinds[] = {NULL, "parse", "", ".", "a/../b"};
  char out[RN_SINK_KEY_MAX + 1];
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    size_t len = 12345;
    memset(why, 'x', sizeof why);
    rn_err_t rc = rn_sink_tmpl_render(tm, rec, t, kinds[k], out, sizeof out, &len, why, sizeof why);
    if (rc == 0) {
      check_key(out, len);
    } else {
      CHECK(rc == RN_EINVAL || rc == RN_ETOOLARGE);
      check_why(why, sizeof why);
    }
  }
  rn_sink_tmpl_free(tm);
  json_decref(rec);
  return 0;
}
