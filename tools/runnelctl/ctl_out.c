/*
 * ctl_out.c — runnelctl's checked output: every write to standard output
 * goes through here, so a failed write (a full disk, a closed pipe: main
 * ignores SIGPIPE so it shows up as EPIPE) is seen, remembered and reported
 * in one line, and the command exits 1 instead of claiming success. Also the
 * one-line error formats, the aligned tables, JSON documents and the
 * formatters of values every noun prints (times, retention, bytes as JSON).
 * The one output layer of every noun file.
 *
 * Invariant: after the first failed write or flush nothing more is written
 * to c->out (a half-written table after a failure would only mislead), and
 * c->out_errno keeps the first failure's errno.
 */
#include <inttypes.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_int.h"
#include "rn_base.h"
#include "runnel/units.h"

static bool out_failed(ctl_t *c) {
  if (c->out_errno == 0) c->out_errno = errno ? errno : EIO;
  return false;
}

bool ctl_out_ok(const ctl_t *c) { return c->out_errno == 0; }

bool ctl_print(ctl_t *c, const char *fmt, ...) {
  if (c->out_errno) return false;
  va_list ap;
  va_start(ap, fmt);
  errno = 0;
  int n = vfprintf(c->out, fmt, ap);
  va_end(ap);
  if (n < 0 || ferror(c->out)) return out_failed(c);
  return true;
}

bool ctl_write(ctl_t *c, const void *p, size_t n) {
  if (c->out_errno) return false;
  if (n == 0) return true;
  errno = 0;
  if (fwrite(p, 1, n, c->out) != n || ferror(c->out)) return out_failed(c);
  return true;
}

bool ctl_flush(ctl_t *c) {
  if (c->out_errno) return false;
  errno = 0;
  if (fflush(c->out) != 0 || ferror(c->out)) return out_failed(c);
  return true;
}

void ctl_out_report(ctl_t *c) {
  if (c->out_errno == 0 || c->out_reported) return;
  c->out_reported = true;
  fprintf(c->err, "runnelctl: write to standard output failed: %s\n", strerror(c->out_errno));
  fflush(c->err);
}

int ctl_out_finish(ctl_t *c, int status) {
  ctl_flush(c);
  if (c->out_errno) {
    ctl_out_report(c);
    if (status == 0) status = CTL_EXIT_FAIL;
  }
  return status;
}

int ctl_fail(ctl_t *c, rn_err_t err, const char *fmt, ...) {
  char ctx[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx, sizeof ctx, fmt, ap);
  va_end(ap);
  /* librunnel's own text, as it is (e.g. that the port answered HTTP); for
   * "not found" errors the context already names what is missing */
  const char *detail = rn_last_error_message();
  bool show = detail[0] != '\0' && err != RN_ENOSTREAM && err != RN_EEXIST && err != RN_ENOSHARD &&
              err != RN_ENOGROUP && err != RN_ENOSINK;
  fprintf(c->err, "runnelctl: %s: %s (%s)%s%s\n", ctx, rn_strerror(err), rn_err_name(err), show ? ": " : "",
          show ? detail : "");
  fflush(c->err);
  return CTL_EXIT_FAIL;
}

int ctl_usage(ctl_t *c, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(c->err, "runnelctl: %s (see --help)\n", msg);
  return CTL_EXIT_USAGE;
}

int ctl_failf(ctl_t *c, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(c->err, "runnelctl: %s\n", msg);
  fflush(c->err);
  return CTL_EXIT_FAIL;
}

bool ctl_print_json(ctl_t *c, json_t *doc) {
  char *s = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(doc);
  if (s == NULL) {
    errno = ENOMEM;
    return out_failed(c);
  }
  bool ok = ctl_print(c, "%s\n", s);
  free(s);
  return ok;
}

void ctl_table_init(ctl_table_t *t, size_t ncols) {
  memset(t, 0, sizeof *t);
  t->ncols = ncols;
}

void ctl_table_row(ctl_table_t *t, ...) {
  if (t->nrows == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 16;
    t->cells = realloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
    if (t->cells == NULL) abort();
  }
  va_list ap;
  va_start(ap, t);
  for (size_t i = 0; i < t->ncols; i++) {
    const char *s = va_arg(ap, const char *);
    t->cells[t->nrows * t->ncols + i] = strdup(s ? s : "");
    if (t->cells[t->nrows * t->ncols + i] == NULL) abort();
  }
  va_end(ap);
  t->nrows++;
}

void ctl_table_free(ctl_table_t *t) {
  for (size_t k = 0; k < t->nrows * t->ncols; k++) free(t->cells[k]);
  free(t->cells);
  memset(t, 0, sizeof *t);
}

bool ctl_table_print(ctl_t *c, ctl_table_t *t) {
  size_t w[32] = {0};
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t i = 0; i < t->ncols && i < 32; i++) {
      size_t l = strlen(t->cells[r * t->ncols + i]);
      if (l > w[i]) w[i] = l;
    }
  bool ok = true;
  for (size_t r = 0; r < t->nrows && ok; r++)
    for (size_t i = 0; i < t->ncols && ok; i++) {
      const char *s = t->cells[r * t->ncols + i];
      ok = i + 1 == t->ncols ? ctl_print(c, "%s\n", s) : ctl_print(c, "%-*s  ", (int)w[i < 32 ? i : 31], s);
    }
  ctl_table_free(t);
  return ok;
}

/* ---- formatters of values in tables and JSON ------------------------------------ */

void ctl_format_time(int64_t ms, char *buf, size_t n) {
  if (ms <= 0) {
    snprintf(buf, n, "-");
    return;
  }
  char tmp[RN_ISO8601_MAX];
  rn_iso8601_format_ms(ms, tmp);
  snprintf(buf, n, "%s", tmp);
}

void ctl_format_retention(int64_t ms, char *buf, size_t n) {
  if (ms < 0)
    snprintf(buf, n, "forever");
  else if (ms == 0)
    snprintf(buf, n, "broker default");
  else
    rn_format_duration_ms(ms, buf, n);
}

void ctl_format_retention_bytes(int64_t b, char *buf, size_t n) {
  if (b <= 0)
    snprintf(buf, n, "unlimited");
  else
    rn_format_size(b, buf, n);
}

char *ctl_base64(const uint8_t *s, size_t n) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *o = malloc((n + 2) / 3 * 4 + 1), *p = o;
  if (o == NULL) abort();
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
    *p++ = tbl[v >> 18 & 63];
    *p++ = tbl[v >> 12 & 63];
    *p++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
    *p++ = i + 2 < n ? tbl[v & 63] : '=';
  }
  *p = '\0';
  return o;
}

void ctl_json_bytes(json_t *o, const char *name, const uint8_t *s, size_t n) {
  json_t *j = json_stringn((const char *)s, n); /* NULL when not UTF-8 */
  if (j) {
    json_object_set_new(o, name, j);
    return;
  }
  char k[64];
  snprintf(k, sizeof k, "%s_base64", name);
  char *v = ctl_base64(s, n);
  json_object_set_new(o, k, json_string(v));
  free(v);
}

void ctl_format_bytes(uint64_t b, char *buf, size_t n) {
  static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = (double)b;
  size_t i = 0;
  while (v >= 1024 && i + 1 < sizeof u / sizeof u[0]) {
    v /= 1024;
    i++;
  }
  snprintf(buf, n, i ? "%.1f%s" : "%.0f%s", v, u[i]);
}

void ctl_format_age(int64_t ms, char *buf, size_t n) {
  if (ms < 0) ms = 0;
  int64_t s = ms / 1000;
  if (ms < 1000)
    snprintf(buf, n, "%" PRId64 "ms", ms);
  else if (s < 60)
    snprintf(buf, n, "%" PRId64 ".%" PRId64 "s", s, ms % 1000 / 100);
  else if (s < 3600)
    snprintf(buf, n, "%" PRId64 "m%" PRId64 "s", s / 60, s % 60);
  else if (s < 86400)
    snprintf(buf, n, "%" PRId64 "h%" PRId64 "m", s / 3600, s % 3600 / 60);
  else
    snprintf(buf, n, "%" PRId64 "d%" PRId64 "h", s / 86400, s % 86400 / 3600);
}
