/*
 * ctl_out.c — runnelctl's checked output: every write to standard output
 * goes through here, so a failed write (a full disk, a closed pipe: main
 * ignores SIGPIPE so it shows up as EPIPE) is seen, remembered and reported
 * in one line, and the command exits 1 instead of claiming success. Also the
 * one-line error formats and the aligned tables.
 *
 * Invariant: after the first failed write or flush nothing more is written
 * to c->out (a half-written table after a failure would only mislead), and
 * c->out_errno keeps the first failure's errno.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_int.h"

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
              err != RN_ENOGROUP;
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
