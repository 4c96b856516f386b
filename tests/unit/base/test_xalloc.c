/*
 * test_xalloc.c — the abort-on-OOM helpers (rn_base.h section 6): normal
 * sizes work like malloc/calloc/realloc/strdup (zero sizes included); an
 * impossible size aborts the process with one line naming the size and the
 * caller's file:line (checked in a forked child).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rn_base.h"

/* Under ASan and TSan an impossible malloc must return NULL (as in
 * production) instead of the sanitizer reporting it; the *_OPTIONS
 * variables tools/test.sh sets are read after these defaults and do not
 * name this flag. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "allocator_may_return_null=1"; }

static void test_normal(void **state) {
  (void)state;
  char *p = rn_xmalloc(10);
  memcpy(p, "123456789", 10);
  p = rn_xrealloc(p, 100000);
  assert_string_equal(p, "123456789");
  assert_null(rn_xrealloc(p, 0));
  uint32_t *z = rn_xcalloc(100, sizeof *z);
  for (int i = 0; i < 100; i++) assert_int_equal(z[i], 0);
  free(z);
  free(rn_xmalloc(0));
  free(rn_xcalloc(0, 8));
  char *d = rn_xstrdup("stream-a");
  assert_string_equal(d, "stream-a");
  free(d);
}

/* Run fn in a child; return what it wrote on stderr and how it ended. */
static int run_child(void (*fn)(void), char *err, size_t cap) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    fn();
    _exit(0);
  }
  close(fds[1]);
  size_t len = 0;
  ssize_t n;
  while (len < cap - 1 && (n = read(fds[0], err + len, cap - 1 - len)) > 0) len += (size_t)n;
  err[len] = '\0';
  close(fds[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return status;
}

enum { OOM_LINE = __LINE__ + 2 }; /* the line of the rn_xmalloc call below */
static void child_malloc(void) {
  void *p = rn_xmalloc(SIZE_MAX - 4096);
  (void)p;
}
static void child_calloc(void) {
  void *p = rn_xcalloc(SIZE_MAX / 2, 4); /* overflows: reported as SIZE_MAX */
  (void)p;
}

static void test_oom_aborts(void **state) {
  (void)state;
  char err[1024], want[512];
  int status = run_child(child_malloc, err, sizeof err);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  snprintf(want, sizeof want, "runnel: out of memory allocating %zu bytes at %s:%d\n", (size_t)(SIZE_MAX - 4096),
           __FILE__, (int)OOM_LINE);
  /* Our line is the last (a sanitizer may warn before it). */
  assert_true(strlen(err) >= strlen(want));
  assert_string_equal(err + strlen(err) - strlen(want), want);
  status = run_child(child_calloc, err, sizeof err);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  snprintf(want, sizeof want, "runnel: out of memory allocating %zu bytes at ", (size_t)SIZE_MAX);
  assert_non_null(strstr(err, want));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_normal),
      cmocka_unit_test(test_oom_aborts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
