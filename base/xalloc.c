/*
 * xalloc.c — allocation that aborts on out-of-memory, for the
 * control-plane allocations of bounded small size (rn_base.h section 6 has
 * the policy). The message names the size and the caller's file:line and
 * goes out in one write(2) without allocating.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rn_base.h"

void rn__oom_abort(size_t n, const char *file, int line) {
  char msg[512];
  int len = snprintf(msg, sizeof msg, "runnel: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
  if (len > 0) {
    ssize_t w = write(STDERR_FILENO, msg, (size_t)len < sizeof msg ? (size_t)len : sizeof msg - 1);
    (void)w;
  }
  abort();
}

void *rn__xmalloc(size_t n, const char *file, int line) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) rn__oom_abort(n, file, line);
  return p;
}

void *rn__xcalloc(size_t count, size_t size, const char *file, int line) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (p == NULL) rn__oom_abort(size && count > SIZE_MAX / size ? SIZE_MAX : count * size, file, line);
  return p;
}

void *rn__xrealloc(void *p, size_t n, const char *file, int line) {
  if (n == 0) {
    free(p);
    return NULL;
  }
  void *q = realloc(p, n);
  if (q == NULL) rn__oom_abort(n, file, line);
  return q;
}

char *rn__xstrdup(const char *s, const char *file, int line) {
  size_t n = strlen(s) + 1;
  char *p = rn__xmalloc(n, file, line);
  memcpy(p, s, n);
  return p;
}
