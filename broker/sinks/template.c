/*
 * template.c — S3 key prefixes in Firehose's syntax (docs/sink-formats.md,
 * "Prefixes"): literal text with !{timestamp:FORMAT}, !{field:PATH} and
 * !{error}, parsed once into pieces and rendered per record.
 *
 * The key-safety rule is kept in two halves:
 *   - at parse time, literal text (also the literal characters of a time
 *     FORMAT) uses only [A-Za-z0-9] and - _ . = / ! * ' ( ), and no segment
 *     between slashes made of literal text alone is empty, "." or "..";
 *   - at render time, expression output is percent-encoded: every byte
 *     outside [A-Za-z0-9._-] becomes %XX (upper-case hex), a leading '.'
 *     becomes %2E, an empty value becomes __empty__.
 * So an expression's output is never empty and never starts with '.', and
 * a segment holding one can never be "." or "..", nor hold a '/', a
 * control character or a byte S3 or Hive treats specially.
 *
 * A non-empty template always ends with '/': one is appended when the text
 * does not end with a slash (normalised once, here).
 */
#include <stdlib.h>
#include <string.h>

#include "sinkfmt_int.h"

typedef enum { P_LIT, P_TIME, P_FIELD, P_ERROR } piece_kind_t;

/* Time FORMAT tokens, compiled to these bytes (never literal: literal text
 * is printable ASCII). */
enum { T_YEAR = 1, T_MONTH, T_DAY, T_HOUR, T_MIN, T_SEC };

typedef struct {
  piece_kind_t kind;
  char *text; /* P_LIT: the text; P_TIME: the compiled format */
  size_t len;
  rn_sink_path_t *path; /* P_FIELD */
  size_t pos;           /* expressions: 0-based position of the '!' in the template */
} piece_t;

struct rn_sink_tmpl {
  char *text; /* normalised */
  piece_t *pieces;
  size_t n;
  bool fields, time, error;
};

static bool literal_ok(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr("-_.=/!*'()", c) != NULL); /* strchr finds the NUL terminator too */
}

static bool is_letter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

void rn_sink_tmpl_free(rn_sink_tmpl_t *t) {
  if (t == NULL) return;
  for (size_t i = 0; i < t->n; i++) {
    free(t->pieces[i].text);
    rn_sink_path_free(t->pieces[i].path);
  }
  free(t->pieces);
  free(t->text);
  free(t);
}

const char *rn_sink_tmpl_text(const rn_sink_tmpl_t *t) { return t->text; }
bool rn_sink_tmpl_uses_fields(const rn_sink_tmpl_t *t) { return t->fields; }
bool rn_sink_tmpl_uses_time(const rn_sink_tmpl_t *t) { return t->time; }
bool rn_sink_tmpl_uses_error(const rn_sink_tmpl_t *t) { return t->error; }

static piece_t *add_piece(rn_sink_tmpl_t *t, piece_kind_t kind, const char *text, size_t len) {
  piece_t *np = realloc(t->pieces, (t->n + 1) * sizeof *np);
  if (np == NULL) return NULL;
  t->pieces = np;
  piece_t *p = &np[t->n];
  memset(p, 0, sizeof *p);
  p->kind = kind;
  if (text != NULL) {
    p->text = malloc(len + 1);
    if (p->text == NULL) return NULL;
    memcpy(p->text, text, len);
    p->text[len] = '\0';
    p->len = len;
  }
  t->n++;
  return p;
}

static const char *show(unsigned char c, char buf[16]) {
  if (c > 0x20 && c < 0x7f) snprintf(buf, 16, "'%c'", c);
  else snprintf(buf, 16, "byte 0x%02x", c);
  return buf;
}

/* Compile FORMAT f[0..n) (starting at 0-based position pos of the template)
 * into out (at most n bytes). */
static rn_err_t compile_time(const char *f, size_t n, size_t pos, char *out, size_t *outlen, char *why,
                             size_t whylen) {
  static const struct {
    const char *tok;
    char code;
  } toks[] = {{"yyyy", T_YEAR}, {"MM", T_MONTH}, {"dd", T_DAY}, {"HH", T_HOUR}, {"mm", T_MIN}, {"ss", T_SEC}};
  size_t k = 0;
  char cb[16];
  if (n == 0) {
    rn__sink_fail(why, whylen, "prefix at position %zu: empty time format (e.g. !{timestamp:yyyy/MM/dd/HH})",
                  pos + 1);
    return RN_EINVAL;
  }
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)f[i];
    if (is_letter(c)) {
      size_t t = 0;
      while (t < sizeof toks / sizeof toks[0] &&
             (n - i < strlen(toks[t].tok) || memcmp(f + i, toks[t].tok, strlen(toks[t].tok)) != 0))
        t++;
      if (t == sizeof toks / sizeof toks[0]) {
        size_t run = 1;
        while (i + run < n && f[i + run] == f[i]) run++;
        rn__sink_fail(why, whylen,
                      "prefix at position %zu: unknown time pattern \"%.*s\" (use yyyy, MM, dd, HH, mm, ss)",
                      pos + i + 1, (int)run, f + i);
        return RN_EINVAL;
      }
      out[k++] = toks[t].code;
      i += strlen(toks[t].tok);
    } else if (literal_ok(c)) {
      out[k++] = (char)c;
      i++;
    } else {
      rn__sink_fail(why, whylen,
                    "prefix at position %zu: %s is not allowed in a prefix (letters, digits and - _ . = / ! * ' ( ) "
                    "only)",
                    pos + i + 1, show(c, cb));
      return RN_EINVAL;
    }
  }
  *outlen = k;
  return 0;
}

/* The end of an expression starting at s[i] == '!' (s[i + 1] == '{'): the
 * index of its '}', skipping quoted names of a !{field:PATH}; n when not
 * closed. */
static size_t expr_end(const char *s, size_t n, size_t i) {
  char q = 0;
  bool path = n - i >= 8 && memcmp(s + i + 2, "field:", 6) == 0; /* only a path has quotes */
  for (size_t j = i + 2; j < n; j++) {
    if (!path) {
      if (s[j] == '}') return j;
    } else if (q) {
      if (s[j] == '\\' && j + 1 < n) j++;
      else if (s[j] == q) q = 0;
    } else if (s[j] == '\'' || s[j] == '"') {
      q = s[j];
    } else if (s[j] == '}') {
      return j;
    }
  }
  return n;
}

/* The segment rule over the parsed pieces: walk the characters of the
 * prefix as they will be rendered, expression output standing for
 * characters that are never '/' nor '.' (and never none). Literal
 * characters carry their position in the template (pos_of), others their
 * expression's. */
static rn_err_t check_segments(const rn_sink_tmpl_t *t, const size_t *pos_of, char *why, size_t whylen) {
  size_t k = 0, seg_len = 0, seg_dots = 0, seg_pos = 0;
  bool seg_expr = false, first = true;
  for (size_t i = 0; i < t->n; i++) {
    const piece_t *p = &t->pieces[i];
    size_t len = p->kind == P_LIT || p->kind == P_TIME ? p->len : 1;
    for (size_t j = 0; j < len; j++) {
      char c = 'x';
      bool expr = true;
      size_t pos = p->pos;
      if (p->kind == P_LIT) {
        c = p->text[j], expr = false, pos = pos_of[k++];
      } else if (p->kind == P_TIME) {
        c = p->text[j], expr = c <= T_SEC;
      }
      if (expr) {
        seg_expr = true;
      } else if (c != '/') {
        if (seg_len == 0) seg_pos = pos;
        seg_len++;
        seg_dots += c == '.';
      } else {
        if (!seg_expr && seg_len == 0) {
          if (first)
            rn__sink_fail(why, whylen, "prefix at position %zu: a prefix must not start with '/'", pos + 1);
          else
            rn__sink_fail(why, whylen, "prefix at position %zu: empty segment (\"//\")", pos + 1);
          return RN_EINVAL;
        }
        if (!seg_expr && seg_dots == seg_len && seg_len <= 2) {
          rn__sink_fail(why, whylen, "prefix at position %zu: segment \"%.*s\" is not allowed", seg_pos + 1,
                        (int)seg_len, "..");
          return RN_EINVAL;
        }
        first = false;
        seg_len = seg_dots = 0;
        seg_expr = false;
      }
    }
  }
  return 0;
}

rn_err_t rn_sink_tmpl_parse(const char *s, size_t n, unsigned flags, rn_sink_tmpl_t **out, char *why,
                            size_t whylen) {
  *out = NULL;
  char cb[16];
  if (n > RN_SINK_KEY_MAX) {
    rn__sink_fail(why, whylen, "prefix longer than %d bytes", RN_SINK_KEY_MAX);
    return RN_EINVAL;
  }
  rn_sink_tmpl_t *t = calloc(1, sizeof *t);
  char *lit = malloc(n + 2);
  size_t *pos_of = malloc((n + 2) * sizeof *pos_of), npos = 0;
  rn_err_t rc = RN_ENOMEM;
  if (t == NULL || lit == NULL || pos_of == NULL) goto fail;
  size_t nlit = 0;
  for (size_t i = 0; i <= n;) {
    bool expr = i + 1 < n && s[i] == '!' && s[i + 1] == '{';
    if ((expr || i == n) && nlit > 0) { /* flush the literal text */
      if (add_piece(t, P_LIT, lit, nlit) == NULL) goto fail;
      nlit = 0;
    }
    if (i == n) break;
    if (!expr) {
      unsigned char c = (unsigned char)s[i];
      if (!literal_ok(c)) {
        rn__sink_fail(why, whylen,
                      "prefix at position %zu: %s is not allowed in a prefix (letters, digits and - _ . = / ! * ' ( ) "
                      "only, or an expression !{...})",
                      i + 1, show(c, cb));
        rc = RN_EINVAL;
        goto fail;
      }
      lit[nlit++] = (char)c;
      pos_of[npos++] = i;
      i++;
      continue;
    }
    size_t end = expr_end(s, n, i);
    if (end == n) {
      rn__sink_fail(why, whylen, "prefix at position %zu: expression not closed (no '}')", i + 1);
      rc = RN_EINVAL;
      goto fail;
    }
    const char *body = s + i + 2;
    size_t blen = end - i - 2;
    piece_t *p;
    if (blen == 5 && memcmp(body, "error", 5) == 0) {
      if (!(flags & RN_SINK_TMPL_ERROR)) {
        rn__sink_fail(why, whylen, "prefix at position %zu: !{error} is for error prefixes only", i + 1);
        rc = RN_EINVAL;
        goto fail;
      }
      if ((p = add_piece(t, P_ERROR, NULL, 0)) == NULL) goto fail;
      p->pos = i;
      t->error = true;
    } else if (blen >= 10 && memcmp(body, "timestamp:", 10) == 0) {
      char fmt[RN_SINK_KEY_MAX];
      size_t flen = 0;
      if ((rc = compile_time(body + 10, blen - 10, i + 12, fmt, &flen, why, whylen)) != 0) goto fail;
      rc = RN_ENOMEM;
      if ((p = add_piece(t, P_TIME, fmt, flen)) == NULL) goto fail;
      p->pos = i;
      t->time = true;
    } else if (blen >= 6 && memcmp(body, "field:", 6) == 0) {
      char why2[RN_SINK_WHY_MAX];
      if ((p = add_piece(t, P_FIELD, NULL, 0)) == NULL) goto fail;
      p->pos = i;
      rc = rn_sink_path_parse(body + 6, blen - 6, &p->path, why2, sizeof why2);
      if (rc != 0) {
        if (rc != RN_ENOMEM)
          rn__sink_fail(why, whylen, "prefix at position %zu: bad path in !{field:...}: %s", i + 1, why2);
        goto fail;
      }
      t->fields = true;
      rc = RN_ENOMEM;
    } else {
      char shown[64];
      rn__sink_quote(s + i, end + 1 - i, shown, sizeof shown);
      rn__sink_fail(why, whylen,
                    "prefix at position %zu: unknown expression %s (expected !{timestamp:FORMAT}, !{field:PATH} or "
                    "!{error})",
                    i + 1, shown);
      rc = RN_EINVAL;
      goto fail;
    }
    i = end + 1;
  }
  /* normalise: a non-empty prefix ends with '/' */
  bool slash = n > 0 && s[n - 1] == '/';
  if (n > 0 && !slash) {
    piece_t *last = t->n > 0 ? &t->pieces[t->n - 1] : NULL;
    if (last != NULL && last->kind == P_LIT) {
      char *nt = realloc(last->text, last->len + 2);
      if (nt == NULL) goto fail;
      last->text = nt;
      nt[last->len++] = '/';
      nt[last->len] = '\0';
    } else if (add_piece(t, P_LIT, "/", 1) == NULL) {
      goto fail;
    }
    pos_of[npos++] = n;
  }
  if ((rc = check_segments(t, pos_of, why, whylen)) != 0) goto fail;
  rc = RN_ENOMEM;
  if ((t->text = malloc(n + 2)) == NULL) goto fail;
  memcpy(t->text, s, n);
  if (n > 0 && !slash) t->text[n++] = '/';
  t->text[n] = '\0';
  free(lit);
  free(pos_of);
  *out = t;
  return 0;
fail:
  if (rc == RN_ENOMEM) rn__sink_fail(why, whylen, "out of memory");
  free(lit);
  free(pos_of);
  rn_sink_tmpl_free(t);
  return rc;
}

/* ---- rendering ---------------------------------------------------------- */

typedef struct {
  char *out;
  size_t lim; /* most bytes that may be written (before the NUL) */
  size_t len; /* bytes produced so far, may pass lim (then nothing more is written) */
} sink_out_t;

static void put(sink_out_t *o, const char *s, size_t n) {
  if (o->len <= o->lim) {
    size_t room = o->lim - o->len;
    memcpy(o->out + o->len, s, n < room ? n : room);
  }
  o->len += n;
}

/* An expression's output under the key-safety rule. */
static void put_encoded(sink_out_t *o, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  if (n == 0) {
    put(o, "__empty__", 9);
    return;
  }
  for (size_t i = 0; i < n && o->len <= o->lim; i++) {
    unsigned char c = (unsigned char)s[i];
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                c == '-' || (c == '.' && i > 0);
    if (keep) {
      put(o, (const char *)&s[i], 1);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      put(o, e, 3);
    }
  }
}

static int64_t floordiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

static void put_time(sink_out_t *o, const piece_t *p, int64_t time_ms) {
  int64_t secs = floordiv(time_ms, 1000), days = floordiv(secs, 86400), sod = secs - days * 86400, y;
  unsigned m, d;
  rn_civil_from_days(days, &y, &m, &d);
  char buf[32];
  for (size_t i = 0; i < p->len; i++) {
    int k;
    switch (p->text[i]) {
    case T_YEAR: k = snprintf(buf, sizeof buf, "%04lld", (long long)y); break;
    case T_MONTH: k = snprintf(buf, sizeof buf, "%02u", m); break;
    case T_DAY: k = snprintf(buf, sizeof buf, "%02u", d); break;
    case T_HOUR: k = snprintf(buf, sizeof buf, "%02u", (unsigned)(sod / 3600)); break;
    case T_MIN: k = snprintf(buf, sizeof buf, "%02u", (unsigned)(sod / 60 % 60)); break;
    case T_SEC: k = snprintf(buf, sizeof buf, "%02u", (unsigned)(sod % 60)); break;
    default: buf[0] = p->text[i], k = 1; break;
    }
    put(o, buf, (size_t)k);
  }
}

static rn_err_t put_field(sink_out_t *o, const piece_t *p, const json_t *rec, char *why, size_t whylen) {
  char shown[RN__SINK_PATH_SHOWN];
  const char *path = rn__sink_path_shown(p->path, shown);
  if (rec == NULL) {
    rn__sink_fail(why, whylen, "prefix field %s: the record is not JSON", path);
    return RN_EINVAL;
  }
  const json_t *v = rn_sink_path_eval(p->path, rec);
  char num[32];
  const char *bad = NULL;
  switch (v ? json_typeof(v) : JSON_NULL) {
  case JSON_STRING: put_encoded(o, json_string_value(v), json_string_length(v)); return 0;
  case JSON_INTEGER:
    put_encoded(o, num, (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v)));
    return 0;
  case JSON_REAL: put_encoded(o, num, rn__sink_real_text(json_real_value(v), num)); return 0;
  case JSON_TRUE: put(o, "true", 4); return 0;
  case JSON_FALSE: put(o, "false", 5); return 0;
  case JSON_NULL: bad = v ? "is null" : "missing"; break;
  case JSON_OBJECT: bad = "is an object"; break;
  case JSON_ARRAY: bad = "is an array"; break;
  }
  rn__sink_fail(why, whylen, "prefix field %s: %s", path, bad);
  return RN_EINVAL;
}

rn_err_t rn_sink_tmpl_render(const rn_sink_tmpl_t *t, const json_t *rec, int64_t time_ms, const char *error_kind,
                             char *out, size_t cap, size_t *len, char *why, size_t whylen) {
  if (cap == 0) {
    rn__sink_fail(why, whylen, "prefix: no room");
    return RN_ETOOLARGE;
  }
  sink_out_t o = {.out = out, .lim = cap - 1 < RN_SINK_KEY_MAX ? cap - 1 : RN_SINK_KEY_MAX, .len = 0};
  for (size_t i = 0; i < t->n && o.len <= o.lim; i++) {
    const piece_t *p = &t->pieces[i];
    switch (p->kind) {
    case P_LIT: put(&o, p->text, p->len); break;
    case P_TIME: put_time(&o, p, time_ms); break;
    case P_ERROR: {
      const char *k = error_kind ? error_kind : "unknown";
      put_encoded(&o, k, strlen(k));
      break;
    }
    case P_FIELD: {
      rn_err_t rc = put_field(&o, p, rec, why, whylen);
      if (rc != 0) {
        out[0] = '\0';
        return rc;
      }
      break;
    }
    }
  }
  if (o.len > o.lim) {
    out[0] = '\0';
    rn__sink_fail(why, whylen, "prefix longer than %zu bytes", o.lim);
    return RN_ETOOLARGE;
  }
  out[o.len] = '\0';
  *len = o.len;
  return 0;
}
