/*
 * test_arena.c — the arena and the growable buffer (rn_base.h section 5):
 * arena allocations are zeroed, aligned, distinct, survive later blocks and
 * a large allocation gets a block of its own; printf sizes exactly; free
 * leaves the arena reusable. The buffer grows from empty, keeps a NUL after
 * len, formats long strings, and after an impossible reservation stays oom
 * and ignores writes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "rn_base.h"

static void test_arena(void **state) {
  (void)state;
  rn_arena_t a = {0};
  rn_arena_free(&a); /* an empty arena */
  uint8_t *first = rn_arena_alloc(&a, 3);
  memset(first, 0xab, 3);
  uint8_t *ptrs[2000];
  for (int i = 0; i < 2000; i++) {
    size_t n = (size_t)(i % 97) + 1;
    ptrs[i] = rn_arena_alloc(&a, n);
    assert_int_equal((uintptr_t)ptrs[i] % 16, 0);
    for (size_t k = 0; k < n; k++) assert_int_equal(ptrs[i][k], 0);
    memset(ptrs[i], i & 0xff, n);
  }
  for (int i = 0; i < 2000; i++) assert_int_equal(ptrs[i][0], i & 0xff); /* nothing overwritten */
  assert_int_equal(first[2], 0xab);
  uint8_t *big = rn_arena_alloc(&a, 100000);
  assert_int_equal(big[99999], 0);
  big[99999] = 1;
  char *s = rn_arena_printf(&a, "%s-%d", "shard", 42);
  assert_string_equal(s, "shard-42");
  static char longs[40000];
  memset(longs, 'q', sizeof longs - 1);
  char *l = rn_arena_printf(&a, "%s!", longs);
  assert_int_equal(strlen(l), sizeof longs);
  assert_int_equal(l[sizeof longs - 1], '!');
  rn_arena_free(&a);
  assert_null(a.head);
  assert_string_equal(rn_arena_printf(&a, "again"), "again"); /* reusable */
  rn_arena_free(&a);
}

static void test_buf(void **state) {
  (void)state;
  rn_buf_t b = {0};
  rn_buf_free(&b); /* a zeroed buffer */
  rn_buf_put(&b, "", 0);
  assert_int_equal(b.len, 0);
  rn_buf_puts(&b, "abc");
  assert_int_equal(b.len, 3);
  assert_string_equal(b.p, "abc");
  for (int i = 0; i < 1000; i++) rn_buf_printf(&b, "%04d", i);
  assert_int_equal(b.len, 3 + 4000);
  assert_int_equal(b.p[b.len], '\0');
  assert_memory_equal(b.p + 3 + 4 * 999, "0999", 4);
  assert_true(b.cap > b.len);
  static char longs[1000];
  memset(longs, 'z', sizeof longs - 1);
  size_t before = b.len;
  rn_buf_printf(&b, "<%s>", longs); /* longer than printf's small buffer */
  assert_int_equal(b.len, before + sizeof longs + 1);
  assert_int_equal(b.p[b.len - 1], '>');
  assert_int_equal(b.p[b.len], '\0');
  assert_false(b.oom);
  /* An impossible size: oom, and every later write is ignored. */
  rn_buf_reserve(&b, SIZE_MAX - 8);
  assert_true(b.oom);
  size_t len = b.len;
  rn_buf_puts(&b, "more");
  rn_buf_printf(&b, "%d", 1);
  assert_int_equal(b.len, len);
  rn_buf_free(&b);
  assert_null(b.p);
  assert_int_equal(b.len, 0);
  assert_false(b.oom);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_arena),
      cmocka_unit_test(test_buf),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
