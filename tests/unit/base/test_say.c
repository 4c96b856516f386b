/*
 * test_say.c — the one logger (rn_base.h section 1): the exact line
 * format runneld has always printed (time, level, component, message),
 * newlines flattened, long lines cut with "...", the default component,
 * rn_say reaching the given rn_logger_t, and the minimum level.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "rn_base.h"

static void test_line_format(void **state) {
  (void)state;
  char line[RN_SAY_LINE_MAX + 1];
  /* 2026-11-22T02:40:00.123Z */
  size_t n = rn_say_format_line(line, sizeof line, 1795315200123ll, RN_LVL_INFO, "server", "listening native=x");
  assert_string_equal(line, "2026-11-22T02:40:00.123Z info server: listening native=x\n");
  assert_int_equal(n, strlen(line));
  rn_say_format_line(line, sizeof line, 0, RN_LVL_ERROR, NULL, "a\nb\rc");
  assert_string_equal(line, "1970-01-01T00:00:00.000Z error runneld: a b c\n");
  rn_say_format_line(line, sizeof line, 999, RN_LVL_DEBUG, "x", "");
  assert_string_equal(line, "1970-01-01T00:00:00.999Z debug x: \n");
  rn_say_format_line(line, sizeof line, 1000, RN_LVL_WARN, "engine", "m");
  assert_string_equal(line, "1970-01-01T00:00:01.000Z warn engine: m\n");
  assert_string_equal(rn_level_name((rn_level_t)7), "?");
}

static void test_long_line_cut(void **state) {
  (void)state;
  static char msg[10000];
  memset(msg, 'x', sizeof msg - 1);
  char line[RN_SAY_LINE_MAX + 1];
  size_t n = rn_say_format_line(line, sizeof line, 0, RN_LVL_INFO, "c", msg);
  assert_int_equal(n, RN_SAY_LINE_MAX);
  assert_int_equal(line[n - 1], '\n');
  assert_memory_equal(line + n - 4, "...\n", 4);
  assert_int_equal(line[n], '\0');
}

typedef struct {
  int calls;
  rn_level_t lvl;
  char msg[RN_SAY_LINE_MAX];
} sink_t;

static void sink(void *arg, rn_level_t lvl, const char *msg) {
  sink_t *s = arg;
  s->calls++;
  s->lvl = lvl;
  snprintf(s->msg, sizeof s->msg, "%s", msg);
}

static void test_say_reaches_logger(void **state) {
  (void)state;
  sink_t s = {0};
  rn_logger_t lg = {sink, &s};
  rn_say(&lg, RN_LVL_WARN, "shard %u of %s", 3u, "orders");
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.lvl, RN_LVL_WARN);
  assert_string_equal(s.msg, "shard 3 of orders");
  /* A logger of its own gets every level: filtering is the sink's business. */
  rn_say_set_min_level(RN_LVL_ERROR);
  rn_say(&lg, RN_LVL_DEBUG, "d");
  assert_int_equal(s.calls, 2);
  assert_int_equal(rn_say_min_level(), RN_LVL_ERROR);
  /* NULL logger and NULL fn go to stderr; below the minimum, nothing. */
  rn_say(NULL, RN_LVL_DEBUG, "not written");
  rn_logger_t none = {0};
  rn_say(&none, RN_LVL_INFO, "not written");
  rn_say_set_min_level(RN_LVL_INFO);
  /* A message longer than a line reaches the logger cut, ending in "...". */
  static char big[6000];
  memset(big, 'y', sizeof big - 1);
  rn_say(&lg, RN_LVL_INFO, "%s", big);
  assert_int_equal(strlen(s.msg), RN_SAY_LINE_MAX - 1);
  assert_string_equal(s.msg + RN_SAY_LINE_MAX - 4, "...");
}

static void test_stderr_as(void **state) {
  (void)state;
  rn_logger_t lg = rn_logger_stderr_as("groups");
  assert_ptr_equal(lg.fn, rn_logger_stderr);
  assert_string_equal((const char *)lg.arg, "groups");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_line_format),
      cmocka_unit_test(test_long_line_cut),
      cmocka_unit_test(test_say_reaches_logger),
      cmocka_unit_test(test_stderr_as),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
