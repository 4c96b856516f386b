/*
 * rest_body.c — pure parsing for REST ingest (kinesis_int.h): the two
 * API-Gateway-to-Kinesis proxy shapes, the NDJSON / JSON-array batch body,
 * gzip request bodies, API keys and query parameters.
 *
 * Records keep the bytes the app sent. jansson validates each document and
 * answers member lookups; a small scanner then finds the exact source span
 * of every stored JSON value, so an event object is stored as written
 * (number formatting and key order intact) rather than re-serialised.
 *
 * Ownership: a parsed batch owns the document (root) and one byte buffer
 * (buf) holding decoded data and copied keys; rec pointers point into
 * them, or into the caller's body for spans stored verbatim — so the body
 * must outlive the batch (it does: both live until the reply).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <openssl/crypto.h>

#include "rest_int.h"
#include "rn_base.h" /* rn_x* */

static void why_set(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void why_set(char *why, size_t whylen, const char *fmt, ...) {
  if (!why || !whylen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
}

/* ---- a scanner over already-validated JSON ------------------------------------------ */

static size_t skip_ws(const char *s, size_t n, size_t i) {
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
  return i;
}

/* Index just past the string starting at s[i] == '"'; n on malformed. */
static size_t skip_string(const char *s, size_t n, size_t i) {
  for (i++; i < n; i++) {
    if (s[i] == '\\') {
      i++;
      continue;
    }
    if (s[i] == '"') return i + 1;
  }
  return n;
}

/* Index just past the value starting at s[i] (no leading whitespace). */
static size_t skip_value(const char *s, size_t n, size_t i) {
  if (i >= n) return n;
  if (s[i] == '"') return skip_string(s, n, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    for (; i < n; i++) {
      char c = s[i];
      if (c == '"') {
        i = skip_string(s, n, i) - 1;
      } else if (c == '{' || c == '[') {
        depth++;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
    }
    return n;
  }
  while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' &&
         s[i] != '\r')
    i++;
  return i;
}

typedef struct span {
  size_t at, len;
} span_t;

/* The span of member name (compared on its raw text, as apps write keys
 * without escapes) in the object starting at s[i] == '{'; the last one
 * wins, as in jansson. Returns false when absent. */
static bool member_span(const char *s, size_t n, size_t i, const char *name, span_t *out) {
  size_t nl = strlen(name);
  bool found = false;
  if (i >= n || s[i] != '{') return false;
  i = skip_ws(s, n, i + 1);
  while (i < n && s[i] == '"') {
    size_t kend = skip_string(s, n, i);
    bool match = kend - i - 2 == nl && memcmp(s + i + 1, name, nl) == 0;
    i = skip_ws(s, n, kend);
    if (i >= n || s[i] != ':') return found;
    i = skip_ws(s, n, i + 1);
    size_t vend = skip_value(s, n, i);
    if (match) {
      out->at = i;
      out->len = vend - i;
      found = true;
    }
    i = skip_ws(s, n, vend);
    if (i < n && s[i] == ',') i = skip_ws(s, n, i + 1);
    else break;
  }
  return found;
}

/* Spans of the elements of the array starting at s[i] == '['. */
static size_t array_spans(const char *s, size_t n, size_t i, span_t *out, size_t max) {
  size_t k = 0;
  if (i >= n || s[i] != '[') return 0;
  i = skip_ws(s, n, i + 1);
  while (i < n && s[i] != ']' && k < max) {
    size_t vend = skip_value(s, n, i);
    out[k].at = i;
    out[k].len = vend - i;
    k++;
    i = skip_ws(s, n, vend);
    if (i < n && s[i] == ',') i = skip_ws(s, n, i + 1);
    else break;
  }
  return k;
}

/* ---- batch building ------------------------------------------------------------------ */

/* While parsing, a record's data/key may live in buf, which can still move:
 * pending offsets are resolved to pointers by finish(). */
typedef struct pending {
  size_t *doff, *koff; /* SIZE_MAX: pointer already final */
} pending_t;

void rn__rest_batch_free(rn__rest_batch_t *b) {
  if (!b) return;
  if (b->root) json_decref(b->root);
  free(b->recs);
  free(b->buf);
  memset(b, 0, sizeof(*b));
}

static bool batch_alloc(rn__rest_batch_t *b, pending_t *p, size_t n) {
  b->recs = calloc(n ? n : 1, sizeof(*b->recs));
  p->doff = malloc((n ? n : 1) * sizeof(size_t));
  p->koff = malloc((n ? n : 1) * sizeof(size_t));
  if (!b->recs || !p->doff || !p->koff) return false;
  for (size_t i = 0; i < n; i++) p->doff[i] = p->koff[i] = SIZE_MAX;
  return true;
}

static void pending_free(pending_t *p) {
  free(p->doff);
  free(p->koff);
}

/* Append n bytes of p (NULL: reserve them, uninitialised) to buf; returns
 * their offset or SIZE_MAX on out-of-memory. */
static size_t buf_add(rn__rest_batch_t *b, const void *p, size_t n) {
  if (b->buf_cap - b->buf_len < n) {
    size_t nc = b->buf_cap ? b->buf_cap : 4096;
    while (nc - b->buf_len < n) nc *= 2;
    uint8_t *nb = realloc(b->buf, nc);
    if (!nb) return SIZE_MAX;
    b->buf = nb;
    b->buf_cap = nc;
  }
  size_t off = b->buf_len;
  if (n && p) memcpy(b->buf + off, p, n);
  b->buf_len += n;
  return off;
}

static void finish(rn__rest_batch_t *b, pending_t *p) {
  for (size_t i = 0; i < b->n; i++) {
    if (p->doff[i] != SIZE_MAX) b->recs[i].data = b->buf + p->doff[i];
    if (p->koff[i] != SIZE_MAX) b->recs[i].key = (const char *)b->buf + p->koff[i];
  }
}

/* The record bytes for one Data value: v is the parsed value, sp its source
 * span in body. */
static rn_err_t set_data(rn__rest_batch_t *b, pending_t *p, size_t i, const json_t *v, const char *body, span_t sp,
                         rn__data_mode_t mode, const char *what, char *why, size_t whylen) {
  rn__krec_t *r = &b->recs[i];
  if (json_is_string(v) && mode == RN__DATA_BASE64) {
    size_t sl = json_string_length(v);
    size_t off = buf_add(b, NULL, rn__b64_decoded_max(sl));
    if (off == SIZE_MAX) return RN_ENOMEM;
    size_t outlen = 0;
    if (rn__b64_decode(json_string_value(v), sl, b->buf + off, &outlen)) {
      why_set(why, whylen,
              "%s is a string but not valid base64 (send ?data=text to store strings as text, or a JSON value)", what);
      return RN_EINVAL;
    }
    b->buf_len = off + outlen;
    p->doff[i] = off;
    r->data_len = outlen;
    return 0;
  }
  if (json_is_string(v) && mode == RN__DATA_TEXT) {
    r->data = (const uint8_t *)json_string_value(v); /* lives in root */
    r->data_len = json_string_length(v);
    return 0;
  }
  /* The value exactly as sent (objects, arrays, numbers; strings in JSON mode). */
  r->data = (const uint8_t *)body + sp.at;
  r->data_len = sp.len;
  return 0;
}

static const json_t *get_any(const json_t *o, const char *const *names, const char **which) {
  for (size_t i = 0; names[i]; i++) {
    const json_t *v = json_object_get(o, names[i]);
    if (v) {
      if (which) *which = names[i];
      return v;
    }
  }
  return NULL;
}

static const char *const DATA_NAMES[] = {"Data", "data", NULL};
static const char *const KEY_NAMES[] = {"PartitionKey", "partition-key", "partitionKey", "partition_key", NULL};
static const char *const EHK_NAMES[] = {"ExplicitHashKey", "explicit-hash-key", "explicitHashKey", "explicit_hash_key",
                                        NULL};

/* One {"Data", "PartitionKey", "ExplicitHashKey"?} object at span osp. */
static rn_err_t parse_entry(rn__rest_batch_t *b, pending_t *p, size_t i, const json_t *o, const char *body, span_t osp,
                            rn__data_mode_t mode, char *why, size_t whylen) {
  char what[48];
  if (b->n > 1 || b->proxy) snprintf(what, sizeof(what), "records[%zu]", i);
  else snprintf(what, sizeof(what), "the body");
  if (!json_is_object(o)) {
    why_set(why, whylen, "%s must be a JSON object", what);
    return RN_EINVAL;
  }
  const char *dname = NULL, *kname = NULL, *ename = NULL;
  const json_t *d = get_any(o, DATA_NAMES, &dname);
  const json_t *k = get_any(o, KEY_NAMES, &kname);
  const json_t *e = get_any(o, EHK_NAMES, &ename);
  if (!d || json_is_null(d)) {
    why_set(why, whylen, "%s needs \"Data\" (or \"data\")", what);
    return RN_EINVAL;
  }
  if (!k || !json_is_string(k) || json_string_length(k) == 0) {
    why_set(why, whylen, "%s needs a non-empty string \"PartitionKey\" (or \"partition-key\")", what);
    return RN_EINVAL;
  }
  size_t chars = 0;
  const char *ks = json_string_value(k);
  for (size_t j = 0; j < json_string_length(k); j++) chars += ((unsigned char)ks[j] & 0xc0) != 0x80;
  if (chars > 256) {
    why_set(why, whylen, "%s: the partition key has %zu characters; at most 256", what, chars);
    return RN_EINVAL;
  }
  rn__krec_t *r = &b->recs[i];
  r->key = ks;
  r->key_len = json_string_length(k);
  if (e && !json_is_null(e)) {
    if (!json_is_string(e) || rn_hash_key_parse_n(json_string_value(e), json_string_length(e), r->hash)) {
      why_set(why, whylen, "%s: %s must be a decimal string in [0, 2^128-1]", what, ename);
      return RN_EINVAL;
    }
    r->has_hash = true;
  }
  char dwhat[64];
  snprintf(dwhat, sizeof(dwhat), "%s.%s", what, dname);
  span_t dsp = {0, 0};
  if (json_is_string(d) && mode != RN__DATA_JSON) return set_data(b, p, i, d, body, dsp, mode, dwhat, why, whylen);
  if (member_span(body, osp.at + osp.len, osp.at, dname, &dsp))
    return set_data(b, p, i, d, body, dsp, mode, dwhat, why, whylen);
  /* A key written with escapes: fall back to the compact serialisation. */
  char *txt = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!txt) return RN_ENOMEM;
  size_t len = strlen(txt);
  size_t off = buf_add(b, txt, len);
  free(txt);
  if (off == SIZE_MAX) return RN_ENOMEM;
  p->doff[i] = off;
  r->data_len = len;
  return 0;
}

static rn_err_t load_object(const uint8_t *body, size_t len, json_t **root, size_t *start, char *why, size_t whylen) {
  json_error_t jerr;
  *root = json_loadb((const char *)body, len, JSON_ALLOW_NUL, &jerr);
  if (!*root) {
    why_set(why, whylen, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
    return RN_EINVAL;
  }
  if (!json_is_object(*root)) {
    why_set(why, whylen, "the body must be a JSON object");
    return RN_EINVAL;
  }
  *start = skip_ws((const char *)body, len, 0);
  return 0;
}

rn_err_t rn__rest_parse_record_general(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *out,
                                       char *why, size_t whylen) {
  memset(out, 0, sizeof(*out));
  pending_t p = {0};
  size_t start = 0;
  rn_err_t err = load_object(body, len, &out->root, &start, why, whylen);
  if (!err && !batch_alloc(out, &p, 1)) err = RN_ENOMEM;
  if (!err) {
    out->n = 1;
    span_t osp = {start, len - start};
    err = parse_entry(out, &p, 0, out->root, (const char *)body, osp, mode, why, whylen);
  }
  if (!err) finish(out, &p);
  pending_free(&p);
  if (err) rn__rest_batch_free(out);
  return err;
}

rn_err_t rn__rest_parse_records_general(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *out,
                                        char *why, size_t whylen) {
  memset(out, 0, sizeof(*out));
  out->proxy = true;
  pending_t p = {0};
  size_t start = 0;
  span_t *el = NULL;
  rn_err_t err = load_object(body, len, &out->root, &start, why, whylen);
  const char *aname = NULL;
  static const char *const ARR_NAMES[] = {"records", "Records", NULL};
  const json_t *arr = err ? NULL : get_any(out->root, ARR_NAMES, &aname);
  if (!err && (!arr || !json_is_array(arr))) {
    why_set(why, whylen, "the body needs \"records\": a list of {\"data\": ..., \"partition-key\": \"...\"}");
    err = RN_EINVAL;
  }
  size_t n = err ? 0 : json_array_size(arr);
  if (!err && (n < 1 || n > RN__KINESIS_MAX_PUT_RECORDS)) {
    why_set(why, whylen, "\"records\" holds %zu records; 1 to %u are allowed", n, RN__KINESIS_MAX_PUT_RECORDS);
    err = RN_EINVAL;
  }
  if (!err && !batch_alloc(out, &p, n)) err = RN_ENOMEM;
  if (!err) {
    el = calloc(n, sizeof(*el));
    span_t asp;
    if (!el) err = RN_ENOMEM;
    else if (!member_span((const char *)body, len, start, aname, &asp) ||
             array_spans((const char *)body, len, asp.at, el, n) != n) {
      why_set(why, whylen, "\"records\" could not be located in the body (a key written with escapes?)");
      err = RN_EINVAL;
    }
  }
  out->n = n;
  for (size_t i = 0; !err && i < n; i++)
    err = parse_entry(out, &p, i, json_array_get(arr, i), (const char *)body, el[i], mode, why, whylen);
  if (!err) finish(out, &p);
  free(el);
  pending_free(&p);
  if (err) rn__rest_batch_free(out);
  return err;
}

/* The partition key of one batch event: the string or number value of
 * key_field, copied into buf. */
static rn_err_t batch_key(rn__rest_batch_t *b, pending_t *p, size_t i, const json_t *ev, const char *key_field) {
  if (!key_field || !json_is_object(ev)) return 0;
  const json_t *k = json_object_get(ev, key_field);
  char num[64];
  const char *ks = NULL;
  size_t kl = 0;
  if (json_is_string(k)) {
    ks = json_string_value(k);
    kl = json_string_length(k);
  } else if (json_is_integer(k)) {
    kl = (size_t)snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(k));
    ks = num;
  } else {
    return 0;
  }
  if (kl == 0) return 0;
  if (kl > 1024) kl = 1024; /* capped; the produce path enforces 256 characters */
  size_t off = buf_add(b, ks, kl);
  if (off == SIZE_MAX) return RN_ENOMEM;
  p->koff[i] = off;
  b->recs[i].key_len = kl;
  return 0;
}

rn_err_t rn__rest_parse_batch_general(const uint8_t *body, size_t len, const char *key_field, size_t max_records,
                                      rn__rest_batch_t *out, char *why, size_t whylen) {
  memset(out, 0, sizeof(*out));
  const char *s = (const char *)body;
  size_t start = skip_ws(s, len, 0);
  pending_t p = {0};
  rn_err_t err = 0;
  if (start < len && s[start] == '[') {
    /* One JSON array: each element is a record. */
    json_error_t jerr;
    out->root = json_loadb(s, len, JSON_ALLOW_NUL, &jerr);
    if (!out->root) {
      why_set(why, whylen, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
      return RN_EINVAL;
    }
    size_t n = json_array_size(out->root);
    if (n == 0 || n > max_records) {
      why_set(why, whylen, "the array holds %zu records; 1 to %zu are allowed", n, max_records);
      rn__rest_batch_free(out);
      return n ? RN_ETOOLARGE : RN_EINVAL;
    }
    span_t *el = calloc(n, sizeof(*el));
    if (!el || !batch_alloc(out, &p, n)) err = RN_ENOMEM;
    if (!err && array_spans(s, len, start, el, n) != n) {
      why_set(why, whylen, "the array could not be scanned");
      err = RN_EINVAL;
    }
    out->n = n;
    for (size_t i = 0; !err && i < n; i++) {
      out->recs[i].data = body + el[i].at;
      out->recs[i].data_len = el[i].len;
      err = batch_key(out, &p, i, json_array_get(out->root, i), key_field);
    }
    free(el);
  } else {
    /* NDJSON: one JSON value per line, stored byte for byte. */
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += s[i] == '\n';
    lines++;
    if (!batch_alloc(out, &p, lines)) err = RN_ENOMEM;
    size_t i = 0, lineno = 0;
    while (!err && i < len) {
      size_t e = i;
      while (e < len && s[e] != '\n') e++;
      lineno++;
      size_t a = skip_ws(s, e, i), z = e;
      while (z > a && (s[z - 1] == ' ' || s[z - 1] == '\t' || s[z - 1] == '\r')) z--;
      i = e + 1;
      if (a == z) continue; /* blank line */
      if (out->n == max_records) {
        why_set(why, whylen, "more than %zu records in one request", max_records);
        err = RN_ETOOLARGE;
        break;
      }
      json_error_t jerr;
      json_t *ev = json_loadb(s + a, z - a, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
      if (!ev) {
        why_set(why, whylen, "line %zu is not JSON (column %d: %s)", lineno, jerr.column, jerr.text);
        err = RN_EINVAL;
        break;
      }
      out->recs[out->n].data = body + a;
      out->recs[out->n].data_len = z - a;
      err = batch_key(out, &p, out->n, ev, key_field);
      json_decref(ev);
      out->n++;
    }
    if (!err && out->n == 0) {
      why_set(why, whylen, "the body holds no records (NDJSON: one JSON value per line, or a JSON array)");
      err = RN_EINVAL;
    }
  }
  if (!err) finish(out, &p);
  pending_free(&p);
  if (err) rn__rest_batch_free(out);
  return err;
}

/* ---- gzip ------------------------------------------------------------------------------------ */

rn_err_t rn__gunzip(const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *outlen) {
  *out = NULL;
  *outlen = 0;
  z_stream z;
  memset(&z, 0, sizeof(z));
  if (inflateInit2(&z, 15 + 32) != Z_OK) return RN_ENOMEM; /* 32: gzip or zlib header */
  size_t cap = len * 4 < 65536 ? 65536 : len * 4;
  if (cap > max + 1) cap = max + 1;
  uint8_t *buf = malloc(cap);
  if (!buf) {
    inflateEnd(&z);
    return RN_ENOMEM;
  }
  size_t have = 0, consumed = 0;
  rn_err_t err = 0;
  for (;;) {
    if (have == cap) {
      if (cap > max) {
        err = RN_ETOOLARGE;
        break;
      }
      size_t nc = cap * 2 > max + 1 ? max + 1 : cap * 2;
      uint8_t *nb = realloc(buf, nc);
      if (!nb) {
        err = RN_ENOMEM;
        break;
      }
      buf = nb;
      cap = nc;
    }
    size_t in_left = len - consumed;
    z.next_in = (Bytef *)(uintptr_t)(in + consumed);
    z.avail_in = in_left > UINT32_MAX ? UINT32_MAX : (uInt)in_left;
    z.next_out = buf + have;
    z.avail_out = (uInt)(cap - have);
    int rc = inflate(&z, Z_NO_FLUSH);
    consumed += in_left > UINT32_MAX ? UINT32_MAX - z.avail_in : in_left - z.avail_in;
    have = cap - z.avail_out;
    if (have > max) {
      err = RN_ETOOLARGE;
      break;
    }
    if (rc == Z_STREAM_END) {
      if (consumed == len) break;
      /* Concatenated gzip members are one stream. */
      if (inflateReset(&z) != Z_OK) {
        err = RN_EINVAL;
        break;
      }
      continue;
    }
    if (rc == Z_BUF_ERROR && z.avail_out == 0) continue; /* grow */
    if (rc != Z_OK) {
      err = rc == Z_MEM_ERROR ? RN_ENOMEM : RN_EINVAL;
      break;
    }
    if (consumed == len && z.avail_out != 0) {
      err = RN_EINVAL; /* truncated */
      break;
    }
  }
  inflateEnd(&z);
  if (err) {
    free(buf);
    return err;
  }
  *out = buf;
  *outlen = have;
  return 0;
}

/* ---- API keys -------------------------------------------------------------------------------- */

void rn__apikeys_free(rn__apikeys_t *k) {
  if (!k) return;
  for (size_t i = 0; i < k->n; i++) {
    free(k->keys[i].key);
    if (k->keys[i].streams)
      for (char **s = k->keys[i].streams; *s; s++) free(*s);
    free(k->keys[i].streams);
  }
  free(k->keys);
  memset(k, 0, sizeof(*k));
}

static char *dup_trim(const char *s, size_t n) {
  while (n && (*s == ' ' || *s == '\t')) s++, n--;
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
  char *p = rn_xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

rn_err_t rn__apikeys_parse(const char *spec, rn__apikeys_t *out, char *why, size_t whylen) {
  memset(out, 0, sizeof(*out));
  size_t entries = 1;
  for (const char *c = spec; *c; c++) entries += *c == ',';
  out->keys = rn_xcalloc(entries, sizeof(*out->keys));
  const char *p = spec;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char *entry = dup_trim(p, n);
    p += n + (end ? 1 : 0);
    if (!entry[0]) {
      free(entry);
      continue;
    }
    char *colon = strchr(entry, ':');
    if (!colon || colon == entry || !colon[1]) {
      why_set(why, whylen, "rest_api_keys: entry %zu must be KEY:STREAM|STREAM... or KEY:*", out->n + 1);
      free(entry);
      rn__apikeys_free(out);
      return RN_EINVAL;
    }
    rn__apikey_t *k = &out->keys[out->n];
    k->key = dup_trim(entry, (size_t)(colon - entry));
    char *list = colon + 1;
    if (strcmp(list, "*") != 0) {
      size_t ns = 1;
      for (char *c = list; *c; c++) ns += *c == '|';
      k->streams = rn_xcalloc(ns + 1, sizeof(char *));
      size_t si = 0;
      for (char *tok = list;;) {
        char *bar = strchr(tok, '|');
        char *name = dup_trim(tok, bar ? (size_t)(bar - tok) : strlen(tok));
        if (!rn__valid_stream_name(name, strlen(name))) {
          why_set(why, whylen, "rest_api_keys: entry %zu names an invalid stream '%.40s'", out->n + 1, name);
          free(name);
          free(entry);
          out->n++;
          rn__apikeys_free(out);
          return RN_EINVAL;
        }
        k->streams[si++] = name;
        if (!bar) break;
        tok = bar + 1;
      }
    }
    out->n++;
    free(entry);
  }
  return 0;
}

int rn__apikeys_check(const rn__apikeys_t *k, const char *token, size_t token_len, const char *stream) {
  for (size_t i = 0; i < k->n; i++) {
    const rn__apikey_t *e = &k->keys[i];
    if (strlen(e->key) != token_len || CRYPTO_memcmp(e->key, token, token_len) != 0) continue;
    if (!e->streams) return 0;
    for (char **s = e->streams; *s; s++)
      if (strcmp(*s, stream) == 0) return 0;
    return 403;
  }
  return 401;
}

/* ---- query strings --------------------------------------------------------------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int rn__query_param(const char *query, const char *name, char *out, size_t outlen) {
  size_t nl = strlen(name);
  const char *p = query ? query : "";
  while (*p) {
    const char *amp = strchr(p, '&');
    size_t n = amp ? (size_t)(amp - p) : strlen(p);
    const char *eq = memchr(p, '=', n);
    size_t kl = eq ? (size_t)(eq - p) : n;
    if (kl == nl && memcmp(p, name, nl) == 0) {
      const char *v = eq ? eq + 1 : p + n;
      size_t vl = (size_t)(p + n - v), o = 0;
      for (size_t i = 0; i < vl; i++) {
        char c = v[i];
        if (c == '+') c = ' ';
        else if (c == '%') {
          if (i + 2 >= vl) return -1;
          int h = hexval(v[i + 1]), l = hexval(v[i + 2]);
          if (h < 0 || l < 0) return -1;
          c = (char)(h * 16 + l);
          i += 2;
        }
        if (o + 1 >= outlen) return -1;
        out[o++] = c;
      }
      out[o] = 0;
      return 1;
    }
    p += n + (amp ? 1 : 0);
  }
  return 0;
}
