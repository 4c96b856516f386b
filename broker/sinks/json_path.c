/*
 * json_path.c — the JSON paths of schema columns, prefixes and the event
 * time field: a small subset of JSONPath (names, quoted names, array
 * indexes; no wildcards, slices or filters), parsed once into steps and
 * evaluated per record with no allocation.
 *
 * Invariants: a parsed path has 0..RN_SINK_PATH_STEPS steps; a name step
 * holds its unescaped bytes (never a NUL) and their length; an index step
 * is below 10^9.
 */
#include <stdlib.h>
#include <string.h>

#include "sinkfmt_int.h"

typedef struct {
  bool is_index;
  size_t index;
  char *name; /* NUL-terminated copy; len bytes */
  size_t len;
} step_t;

struct rn_sink_path {
  char *text;
  size_t nsteps;
  step_t steps[RN_SINK_PATH_STEPS];
};

static bool name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c >= 0x80;
}

/* "'x'" or "byte 0x01" for messages */
static const char *show(unsigned char c, char buf[16]) {
  if (c > 0x20 && c < 0x7f) snprintf(buf, 16, "'%c'", c);
  else snprintf(buf, 16, "byte 0x%02x", c);
  return buf;
}

void rn_sink_path_free(rn_sink_path_t *p) {
  if (p == NULL) return;
  for (size_t i = 0; i < p->nsteps; i++) free(p->steps[i].name);
  free(p->text);
  free(p);
}

static rn_err_t add_name(rn_sink_path_t *p, const char *s, size_t len, size_t pos, char *why, size_t whylen) {
  if (p->nsteps == RN_SINK_PATH_STEPS) {
    rn__sink_fail(why, whylen, "at position %zu: more than %d steps", pos + 1, RN_SINK_PATH_STEPS);
    return RN_EINVAL;
  }
  step_t *st = &p->steps[p->nsteps];
  st->name = malloc(len + 1);
  if (st->name == NULL) return RN_ENOMEM;
  memcpy(st->name, s, len);
  st->name[len] = '\0';
  st->len = len;
  st->is_index = false;
  p->nsteps++;
  return 0;
}

/* A quoted name at s[i] (the quote), unescaped into p; *end past the quote. */
static rn_err_t quoted(rn_sink_path_t *p, const char *s, size_t n, size_t i, size_t *end, char *why,
                       size_t whylen) {
  char q = s[i];
  size_t start = i;
  char *tmp = malloc(n - i + 1);
  if (tmp == NULL) return RN_ENOMEM;
  size_t len = 0;
  for (i++; i < n && s[i] != q; i++) {
    if (s[i] == '\\') {
      if (i + 1 < n && (s[i + 1] == '\\' || s[i + 1] == '\'' || s[i + 1] == '"')) {
        tmp[len++] = s[++i];
        continue;
      }
      rn__sink_fail(why, whylen, "at position %zu: unknown escape in a quoted name (only \\' \\\" \\\\)", i + 1);
      free(tmp);
      return RN_EINVAL;
    }
    tmp[len++] = s[i];
  }
  if (i >= n) {
    rn__sink_fail(why, whylen, "at position %zu: quoted name not closed", start + 1);
    free(tmp);
    return RN_EINVAL;
  }
  rn_err_t rc = add_name(p, tmp, len, start, why, whylen);
  free(tmp);
  *end = i + 1;
  return rc;
}

rn_err_t rn_sink_path_parse(const char *s, size_t n, rn_sink_path_t **out, char *why, size_t whylen) {
  *out = NULL;
  char cb[16];
  if (n == 0) {
    rn__sink_fail(why, whylen, "empty path");
    return RN_EINVAL;
  }
  if (n > RN_SINK_PATH_MAX) {
    rn__sink_fail(why, whylen, "longer than %d bytes", RN_SINK_PATH_MAX);
    return RN_EINVAL;
  }
  if (memchr(s, '\0', n) != NULL) {
    rn__sink_fail(why, whylen, "contains a NUL byte");
    return RN_EINVAL;
  }
  rn_sink_path_t *p = calloc(1, sizeof *p);
  if (p == NULL) return RN_ENOMEM;
  p->text = malloc(n + 1);
  if (p->text == NULL) {
    free(p);
    return RN_ENOMEM;
  }
  memcpy(p->text, s, n);
  p->text[n] = '\0';
  rn_err_t rc = 0;
  size_t i = 0;
  bool bare = false; /* a bare first name ("a.b") */
  if (s[0] == '$') i = 1;
  else if (s[0] != '[') bare = true;
  while (i < n || bare) {
    if (bare || s[i] == '.') {
      size_t at = bare ? i : i + 1, j = at;
      bare = false;
      while (j < n && name_char((unsigned char)s[j])) j++;
      if (j == at) {
        if (at < n)
          rn__sink_fail(why, whylen, "at position %zu: expected a name, found %s (quote it: ['...'])", at + 1,
                        show((unsigned char)s[at], cb));
        else
          rn__sink_fail(why, whylen, "at position %zu: expected a name after '.'", at + 1);
        rc = RN_EINVAL;
        goto fail;
      }
      if ((rc = add_name(p, s + at, j - at, at, why, whylen)) != 0) goto fail;
      i = j;
    } else if (s[i] == '[') {
      size_t at = i + 1;
      if (at < n && (s[at] == '\'' || s[at] == '"')) {
        if ((rc = quoted(p, s, n, at, &i, why, whylen)) != 0) goto fail;
      } else if (at < n && s[at] >= '0' && s[at] <= '9') {
        size_t j = at, v = 0;
        while (j < n && s[j] >= '0' && s[j] <= '9' && j - at < 10) v = v * 10 + (size_t)(s[j++] - '0');
        if ((s[at] == '0' && j - at > 1) || j - at > 9) {
          rn__sink_fail(why, whylen, "at position %zu: bad array index (0..999999999, no leading zeros)", at + 1);
          rc = RN_EINVAL;
          goto fail;
        }
        if (p->nsteps == RN_SINK_PATH_STEPS) {
          rn__sink_fail(why, whylen, "at position %zu: more than %d steps", at + 1, RN_SINK_PATH_STEPS);
          rc = RN_EINVAL;
          goto fail;
        }
        p->steps[p->nsteps].is_index = true;
        p->steps[p->nsteps].index = v;
        p->nsteps++;
        i = j;
      } else {
        rn__sink_fail(why, whylen, "at position %zu: expected an index or a quoted name after '['", at + 1);
        rc = RN_EINVAL;
        goto fail;
      }
      if (i >= n || s[i] != ']') {
        rn__sink_fail(why, whylen, "at position %zu: expected ']'", i + 1);
        rc = RN_EINVAL;
        goto fail;
      }
      i++;
    } else {
      rn__sink_fail(why, whylen, "at position %zu: unexpected %s (expected '.' or '[')", i + 1,
                    show((unsigned char)s[i], cb));
      rc = RN_EINVAL;
      goto fail;
    }
  }
  *out = p;
  return 0;
fail:
  rn_sink_path_free(p);
  return rc;
}

const char *rn_sink_path_text(const rn_sink_path_t *p) { return p->text; }

const char *rn__sink_path_shown(const rn_sink_path_t *p, char out[RN__SINK_PATH_SHOWN]) {
  size_t n = strlen(p->text);
  if (n <= 100) {
    memcpy(out, p->text, n + 1);
    return out;
  }
  n = 100;
  while (n > 0 && ((unsigned char)p->text[n] & 0xC0) == 0x80) n--; /* not inside a character */
  memcpy(out, p->text, n);
  memcpy(out + n, "...", 4);
  return out;
}

json_t *rn_sink_path_eval(const rn_sink_path_t *p, const json_t *root) {
  json_t *v = (json_t *)(uintptr_t)root; /* jansson's getters return non-const */
  for (size_t i = 0; i < p->nsteps && v != NULL; i++) {
    const step_t *st = &p->steps[i];
    if (st->is_index) v = json_is_array(v) ? json_array_get(v, st->index) : NULL;
    else v = json_is_object(v) ? json_object_getn(v, st->name, st->len) : NULL;
  }
  return v;
}
