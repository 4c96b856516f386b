/*
 * rest_fast.c — REST ingest bodies in one pass (rest_int.h): the three
 * entry points rn__rest_parse_record / _records / _batch.
 *
 * Each body is read once by a validating scanner of the exact shapes REST
 * ingest takes, with no JSON tree: base64 data is decoded straight into the
 * batch's buffer, partition keys are unescaped into it only when they hold
 * escapes (otherwise they point into the body, like every span stored as
 * sent), and each record is filled in as its object closes.
 *
 * The scanner only ever answers "this is the batch" or "not mine": any
 * input it does not take for certain — malformed JSON, a missing or
 * mistyped field, a duplicate or escaped member name, bad base64, a number
 * jansson would reject or convert (exponents, integers past 18 digits,
 * "-0" as a key), too deep nesting, a count outside the limits — goes to
 * the general path (rest_body.c, through jansson), which decides and words
 * every error exactly as before. So errors are unchanged by construction,
 * and what the fast path accepts it decodes to the same records as the
 * general path (tests/unit/broker/apps/rest and fuzz_kinesis_json check
 * both).
 *
 * Ownership: as rest_body.c's: the batch owns recs and buf (allocated once,
 * as long as the body: decoded text is never longer than its encoding);
 * spans stored verbatim point into the caller's body.
 */
#include <stdlib.h>
#include <string.h>

#include "rest_int.h"

/* ---- the scanner ------------------------------------------------------------------------ */

typedef struct sc {
  const unsigned char *s;
  size_t n, i;
  unsigned depth;
} sc_t;

#define SC_MAX_DEPTH 512 /* deeper documents go to jansson (which allows 2048) */

static inline void sc_ws(sc_t *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\n' || p->s[p->i] == '\t' || p->s[p->i] == '\r')) p->i++;
}

/* Skip whitespace; true (and consume it) when the next byte is c. */
static inline bool sc_ch(sc_t *p, unsigned char c) {
  sc_ws(p);
  if (p->i < p->n && p->s[p->i] == c) {
    p->i++;
    return true;
  }
  return false;
}

static int hex4(const unsigned char *h) {
  int v = 0;
  for (int k = 0; k < 4; k++) {
    int c = h[k], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/* Length of the valid UTF-8 sequence at s[0, n) whose first byte is >= 0x80
 * (no overlongs, no surrogates, at most U+10FFFF, as jansson checks); 0 if
 * invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
  else return 0;
  if (n < len) return 0;
  for (size_t k = 1; k < len; k++) {
    if ((s[k] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (s[k] & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

/* A string at p (after whitespace): validates it as jansson would and gives
 * the span of its raw contents (between the quotes) and whether it holds
 * escapes. */
static bool sc_string(sc_t *p, size_t *at, size_t *len, bool *esc) {
  sc_ws(p);
  if (p->i >= p->n || p->s[p->i] != '"') return false;
  size_t i = ++p->i;
  bool e = false;
  const unsigned char *s = p->s;
  while (i < p->n) {
    unsigned char c = s[i];
    if (c == '"') {
      *at = p->i;
      *len = i - p->i;
      *esc = e;
      p->i = i + 1;
      return true;
    }
    if (c < 0x20) return false;
    if (c < 0x80 && c != '\\') {
      i++;
      /* Eight plain bytes at a time: none is '"', '\\', below 0x20 or above 0x7f. */
      while (p->n - i >= 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
        uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
        uint64_t special = (x | ((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x)) & high;
        if (special) break;
        i += 8;
      }
      continue;
    }
    if (c >= 0x80) {
      size_t ul = utf8_seq(s + i, p->n - i);
      if (!ul) return false;
      i += ul;
      continue;
    }
    e = true;
    if (i + 1 >= p->n) return false;
    c = s[i + 1];
    if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
      i += 2;
      continue;
    }
    if (c != 'u' || p->n - i < 6) return false;
    int u = hex4(s + i + 2);
    if (u < 0 || (u >= 0xdc00 && u <= 0xdfff)) return false;
    i += 6;
    if (u >= 0xd800 && u <= 0xdbff) {
      if (p->n - i < 6 || s[i] != '\\' || s[i + 1] != 'u') return false;
      int lo = hex4(s + i + 2);
      if (lo < 0xdc00 || lo > 0xdfff) return false;
      i += 6;
    }
  }
  return false;
}

/* Unescape the validated raw string s[0, n) into out (at most n bytes) as
 * UTF-8. Returns the length. */
static size_t unescape(const unsigned char *s, size_t n, uint8_t *out) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    unsigned char c = s[i];
    if (c != '\\') {
      out[o++] = c;
      i++;
      continue;
    }
    c = s[i + 1];
    i += 2;
    switch (c) {
    case 'b': out[o++] = '\b'; break;
    case 'f': out[o++] = '\f'; break;
    case 'n': out[o++] = '\n'; break;
    case 'r': out[o++] = '\r'; break;
    case 't': out[o++] = '\t'; break;
    case 'u': {
      uint32_t v = (uint32_t)hex4(s + i);
      i += 4;
      if (v >= 0xd800 && v <= 0xdbff) {
        v = 0x10000 + ((v - 0xd800) << 10) + ((uint32_t)hex4(s + i + 2) - 0xdc00);
        i += 6;
      }
      /* 6 (or 12) input bytes always cover these at most 4 output bytes. */
      o += rn_utf8_put(out + o, v);
      break;
    }
    default: out[o++] = c; /* '"', '\\', '/' */
    }
  }
  return o;
}

/* A number jansson takes and would not round or refuse: -?(0|[1-9][0-9]*)
 * (.[0-9]+)?, at most 18 digits when integral (a long long), at most 300
 * digits otherwise (a finite double); no exponent. *integral: no fraction. */
static bool sc_number(sc_t *p, bool *integral) {
  size_t i = p->i, digits = 0;
  const unsigned char *s = p->s;
  if (i < p->n && s[i] == '-') i++;
  if (i >= p->n || s[i] < '0' || s[i] > '9') return false;
  if (s[i] == '0') {
    i++, digits++;
  } else {
    while (i < p->n && s[i] >= '0' && s[i] <= '9') i++, digits++;
  }
  bool frac = false;
  if (i < p->n && s[i] == '.') {
    i++;
    size_t f = i;
    while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == f) return false;
    digits += i - f;
    frac = true;
  }
  if (i < p->n && (s[i] == 'e' || s[i] == 'E')) return false;
  if ((!frac && digits > 18) || digits > 300) return false;
  *integral = !frac;
  p->i = i;
  return true;
}

typedef enum { V_STRING, V_NUMBER_INT, V_NUMBER_REAL, V_LITERAL, V_NULL, V_OBJECT, V_ARRAY } vkind_t;

/* Any value at p (after whitespace), validated; at, len: its source span. */
static bool sc_value(sc_t *p, size_t *at, size_t *len, vkind_t *kind) {
  sc_ws(p);
  if (p->i >= p->n) return false;
  size_t start = p->i;
  unsigned char c = p->s[p->i];
  if (c == '"') {
    size_t a, l;
    bool e;
    if (!sc_string(p, &a, &l, &e)) return false;
    *kind = V_STRING;
  } else if (c == '{' || c == '[') {
    if (++p->depth > SC_MAX_DEPTH) return false;
    p->i++;
    unsigned char close = c == '{' ? '}' : ']';
    if (!sc_ch(p, close)) {
      do {
        size_t a, l;
        vkind_t k;
        if (c == '{') {
          bool e;
          if (!sc_string(p, &a, &l, &e) || !sc_ch(p, ':')) return false;
        }
        if (!sc_value(p, &a, &l, &k)) return false;
      } while (sc_ch(p, ','));
      if (!sc_ch(p, close)) return false;
    }
    p->depth--;
    *kind = c == '{' ? V_OBJECT : V_ARRAY;
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    bool integral;
    if (!sc_number(p, &integral)) return false;
    *kind = integral ? V_NUMBER_INT : V_NUMBER_REAL;
  } else {
    static const char *const LIT[] = {"true", "false", "null"};
    size_t k = 0;
    for (; k < 3; k++) {
      size_t ll = strlen(LIT[k]);
      if (p->n - p->i >= ll && memcmp(p->s + p->i, LIT[k], ll) == 0) {
        p->i += ll;
        break;
      }
    }
    if (k == 3) return false;
    *kind = k == 2 ? V_NULL : V_LITERAL;
  }
  *at = start;
  *len = p->i - start;
  return true;
}

/* A member name: a string without escapes (escaped names go to jansson). */
static bool sc_name(sc_t *p, const char **k, size_t *kl) {
  size_t at, len;
  bool esc;
  if (!sc_string(p, &at, &len, &esc) || esc || !sc_ch(p, ':')) return false;
  *k = (const char *)p->s + at;
  *kl = len;
  return true;
}

/* Which field of a record a member name is: the spellings rest_body.c
 * accepts (DATA_NAMES, KEY_NAMES, EHK_NAMES there), told apart by length
 * first. */
typedef enum { M_OTHER, M_DATA, M_KEY, M_EHK } member_t;

#define NAME_IS(k, lit) (memcmp((k), (lit), sizeof(lit) - 1) == 0)

static member_t member_kind(const char *k, size_t kl) {
  switch (kl) {
  case 4: return NAME_IS(k, "Data") || NAME_IS(k, "data") ? M_DATA : M_OTHER;
  case 12: return NAME_IS(k, "PartitionKey") || NAME_IS(k, "partitionKey") ? M_KEY : M_OTHER;
  case 13: return NAME_IS(k, "partition-key") || NAME_IS(k, "partition_key") ? M_KEY : M_OTHER;
  case 15: return NAME_IS(k, "ExplicitHashKey") || NAME_IS(k, "explicitHashKey") ? M_EHK : M_OTHER;
  case 17: return NAME_IS(k, "explicit-hash-key") || NAME_IS(k, "explicit_hash_key") ? M_EHK : M_OTHER;
  default: return M_OTHER;
  }
}

/* ---- batches ----------------------------------------------------------------------------- */

static bool fast_alloc(rn__rest_batch_t *b, size_t len, size_t nrecs) {
  b->buf = malloc(len ? len : 1);
  b->buf_cap = len ? len : 1;
  b->recs = calloc(nrecs ? nrecs : 1, sizeof(*b->recs));
  return b->buf && b->recs;
}

/* Keys and data the fast path decodes or unescapes go to the end of buf;
 * buf holds len bytes, the body's length, which no decoding exceeds. */
static uint8_t *buf_tail(rn__rest_batch_t *b) { return b->buf + b->buf_len; }

/* The members of one {"Data", "PartitionKey", "ExplicitHashKey"?, ...}
 * object into r; p is just past its '{'. */
static bool fast_entry(sc_t *p, rn__rest_batch_t *b, rn__krec_t *r, rn__data_mode_t mode) {
  bool d = false, pk = false, eh = false;
  if (sc_ch(p, '}')) return false; /* no Data */
  do {
    const char *k;
    size_t kl;
    if (!sc_name(p, &k, &kl)) return false;
    member_t m = member_kind(k, kl);
    if (m == M_DATA) {
      if (d) return false; /* both spellings, or twice: jansson's choice */
      d = true;
      sc_ws(p);
      if (p->i < p->n && p->s[p->i] == '"' && mode != RN__DATA_JSON) {
        size_t at, len;
        bool esc;
        if (mode == RN__DATA_BASE64) {
          /* Up to the next quote, decoded at once: what decodes holds only
           * the base64 alphabet, so it was a plain JSON string. */
          const unsigned char *q = memchr(p->s + p->i + 1, '"', p->n - p->i - 1);
          size_t dl = 0;
          if (!q) return false;
          at = p->i + 1;
          len = (size_t)(q - (p->s + at));
          if (rn__b64_decode((const char *)p->s + at, len, buf_tail(b), &dl)) return false;
          p->i = at + len + 1;
          r->data = buf_tail(b);
          r->data_len = dl;
          b->buf_len += dl;
        } else if (!sc_string(p, &at, &len, &esc)) {
          return false;
        } else if (esc) {
          size_t dl = unescape(p->s + at, len, buf_tail(b));
          r->data = buf_tail(b);
          r->data_len = dl;
          b->buf_len += dl;
        } else {
          r->data = p->s + at;
          r->data_len = len;
        }
      } else {
        size_t at, len;
        vkind_t kind;
        if (!sc_value(p, &at, &len, &kind) || kind == V_NULL) return false;
        r->data = p->s + at;
        r->data_len = len;
      }
    } else if (m == M_KEY) {
      if (pk) return false;
      pk = true;
      size_t at, len;
      bool esc;
      if (!sc_string(p, &at, &len, &esc)) return false;
      const uint8_t *ks = p->s + at;
      if (esc) {
        len = unescape(p->s + at, len, buf_tail(b));
        ks = buf_tail(b);
        b->buf_len += len;
      }
      size_t chars = 0;
      for (size_t j = 0; j < len; j++) chars += (ks[j] & 0xc0) != 0x80;
      if (len == 0 || chars > 256) return false;
      r->key = (const char *)ks;
      r->key_len = len;
    } else if (m == M_EHK) {
      if (eh) return false;
      eh = true;
      sc_ws(p);
      if (p->n - p->i >= 4 && memcmp(p->s + p->i, "null", 4) == 0) {
        p->i += 4;
        continue;
      }
      size_t at, len;
      bool esc;
      if (!sc_string(p, &at, &len, &esc) || esc || rn_hash_key_parse_n((const char *)p->s + at, len, r->hash))
        return false;
      r->has_hash = true;
    } else {
      size_t at, len;
      vkind_t kind;
      if (!sc_value(p, &at, &len, &kind)) return false;
    }
  } while (sc_ch(p, ','));
  return sc_ch(p, '}') && d && pk;
}

static bool fast_records(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *b) {
  sc_t p = {body, len, 0, 0};
  b->proxy = true;
  if (!fast_alloc(b, len, RN__KINESIS_MAX_PUT_RECORDS) || !sc_ch(&p, '{') || sc_ch(&p, '}')) return false;
  bool seen = false;
  do {
    const char *k;
    size_t kl;
    if (!sc_name(&p, &k, &kl)) return false;
    if ((kl == 7 && memcmp(k, "records", 7) == 0) || (kl == 7 && memcmp(k, "Records", 7) == 0)) {
      if (seen || !sc_ch(&p, '[') || sc_ch(&p, ']')) return false;
      seen = true;
      do {
        if (b->n == RN__KINESIS_MAX_PUT_RECORDS || !sc_ch(&p, '{') || ++p.depth > SC_MAX_DEPTH) return false;
        if (!fast_entry(&p, b, &b->recs[b->n], mode)) return false;
        p.depth--;
        b->n++;
      } while (sc_ch(&p, ','));
      if (!sc_ch(&p, ']')) return false;
    } else {
      size_t at, vl;
      vkind_t kind;
      if (!sc_value(&p, &at, &vl, &kind)) return false;
    }
  } while (sc_ch(&p, ','));
  if (!sc_ch(&p, '}')) return false;
  sc_ws(&p);
  return p.i == p.n && seen;
}

static bool fast_record(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *b) {
  sc_t p = {body, len, 0, 1};
  if (!fast_alloc(b, len, 1) || !sc_ch(&p, '{') || !fast_entry(&p, b, &b->recs[0], mode)) return false;
  b->n = 1;
  sc_ws(&p);
  return p.i == p.n;
}

/* One batch event at p: a whole JSON value (its span in *at, *len), and the
 * value of its top-level member key_field when that is a non-empty string
 * or an integer (what batch_key in rest_body.c takes) as r's key. */
static bool sc_event(sc_t *p, const char *key_field, rn__rest_batch_t *b, rn__krec_t *r, size_t *at, size_t *len) {
  size_t va, vl;
  vkind_t kind;
  sc_ws(p);
  if (!key_field || p->i >= p->n || p->s[p->i] != '{') return sc_value(p, at, len, &kind);
  const uint8_t *body = p->s;
  size_t fl = strlen(key_field), start = p->i;
  bool seen = false;
  p->i++;
  p->depth++;
  if (!sc_ch(p, '}')) {
    do {
      const char *k;
      size_t kl;
      if (!sc_name(p, &k, &kl) || !sc_value(p, &va, &vl, &kind)) return false;
      if (kl != fl || memcmp(k, key_field, fl) != 0) continue;
      if (seen) return false; /* jansson keeps the last one: let it */
      seen = true;
      r->key = NULL;
      if (kind == V_STRING) {
        const uint8_t *ks = body + va + 1;
        size_t kl2 = vl - 2;
        if (memchr(ks, '\\', kl2)) {
          kl2 = unescape(ks, kl2, buf_tail(b));
          ks = buf_tail(b);
          b->buf_len += kl2;
        }
        if (kl2 == 0) continue;
        r->key = (const char *)ks;
        r->key_len = kl2 > 1024 ? 1024 : kl2; /* capped as rest_body.c caps it */
      } else if (kind == V_NUMBER_INT) {
        if (vl == 2 && body[va] == '-' && body[va + 1] == '0') return false; /* jansson: "0" */
        r->key = (const char *)body + va;
        r->key_len = vl;
      }
    } while (sc_ch(p, ','));
    if (!sc_ch(p, '}')) return false;
  }
  p->depth--;
  *at = start;
  *len = p->i - start;
  return true;
}

static bool fast_batch(const uint8_t *body, size_t len, const char *key_field, size_t max_records, rn__rest_batch_t *b) {
  const char *s = (const char *)body;
  sc_t p = {body, len, 0, 0};
  sc_ws(&p);
  if (p.i < len && s[p.i] == '[') {
    /* One JSON array: each element is a record, stored as its source span. */
    size_t cap = max_records < 1024 ? max_records : 1024;
    p.i++;
    p.depth = 1;
    if (!fast_alloc(b, len, cap) || sc_ch(&p, ']')) return false;
    do {
      if (b->n == max_records) return false;
      if (b->n == cap) {
        size_t nc = cap * 2 < max_records ? cap * 2 : max_records;
        rn__krec_t *nr = realloc(b->recs, nc * sizeof(*nr));
        if (!nr) return false;
        memset(nr + cap, 0, (nc - cap) * sizeof(*nr));
        b->recs = nr;
        cap = nc;
      }
      rn__krec_t *r = &b->recs[b->n];
      size_t at, vl;
      if (!sc_event(&p, key_field, b, r, &at, &vl)) return false;
      r->data = body + at;
      r->data_len = vl;
      b->n++;
    } while (sc_ch(&p, ','));
    if (!sc_ch(&p, ']')) return false;
    sc_ws(&p);
    return p.i == len;
  }
  /* NDJSON: one JSON value per line, each line (trimmed) stored as sent. */
  size_t lines = 1;
  for (const char *c = s; (c = memchr(c, '\n', (size_t)(s + len - c))); c++) lines++;
  if (!fast_alloc(b, len, lines < max_records ? lines : max_records)) return false;
  size_t i = 0;
  while (i < len) {
    const char *nl = memchr(s + i, '\n', len - i);
    size_t e = nl ? (size_t)(nl - s) : len;
    size_t a = i, z = e;
    while (a < z && (s[a] == ' ' || s[a] == '\t' || s[a] == '\r')) a++;
    while (z > a && (s[z - 1] == ' ' || s[z - 1] == '\t' || s[z - 1] == '\r')) z--;
    i = e + 1;
    if (a == z) continue;
    if (b->n == max_records) return false;
    rn__krec_t *r = &b->recs[b->n];
    sc_t q = {body, z, a, 0};
    size_t at, vl;
    if (!sc_event(&q, key_field, b, r, &at, &vl)) return false;
    sc_ws(&q);
    if (q.i != z) return false;
    r->data = body + a;
    r->data_len = z - a;
    b->n++;
  }
  return b->n > 0;
}

/* ---- the entry points ------------------------------------------------------------------- */

bool rn__rest_fast_record(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *out) {
  memset(out, 0, sizeof(*out));
  return fast_record(body, len, mode, out);
}

bool rn__rest_fast_records(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *out) {
  memset(out, 0, sizeof(*out));
  return fast_records(body, len, mode, out);
}

bool rn__rest_fast_batch(const uint8_t *body, size_t len, const char *key_field, size_t max_records,
                         rn__rest_batch_t *out) {
  memset(out, 0, sizeof(*out));
  return max_records && fast_batch(body, len, key_field, max_records, out);
}

rn_err_t rn__rest_parse_record(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *out, char *why,
                               size_t whylen) {
  if (rn__rest_fast_record(body, len, mode, out)) return 0;
  rn__rest_batch_free(out);
  return rn__rest_parse_record_general(body, len, mode, out, why, whylen);
}

rn_err_t rn__rest_parse_records(const uint8_t *body, size_t len, rn__data_mode_t mode, rn__rest_batch_t *out,
                                char *why, size_t whylen) {
  if (rn__rest_fast_records(body, len, mode, out)) return 0;
  rn__rest_batch_free(out);
  return rn__rest_parse_records_general(body, len, mode, out, why, whylen);
}

rn_err_t rn__rest_parse_batch(const uint8_t *body, size_t len, const char *key_field, size_t max_records,
                              rn__rest_batch_t *out, char *why, size_t whylen) {
  if (rn__rest_fast_batch(body, len, key_field, max_records, out)) return 0;
  rn__rest_batch_free(out);
  return rn__rest_parse_batch_general(body, len, key_field, max_records, out, why, whylen);
}
