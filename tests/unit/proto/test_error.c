/*
 * test_error.c — the error table: every entry's name, message, wire code and
 * retriable flag, the round trip through the wire code, and the behaviour for
 * values outside the table (unlisted errno, unknown runnel codes, positives).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "runnel/error.h"

typedef struct {
  const char *name;
  rn_err_t value;
  uint32_t wire;
  bool retry;
  const char *msg;
} entry_t;

static const entry_t table[] = {
#define ENTRY(name, value, wire, retry, msg) {#name, (value), (wire), (retry), (msg)},
    RN_ERRORS(ENTRY)
#undef ENTRY
};
#define NENTRIES (sizeof table / sizeof table[0])

static void test_every_entry(void **state) {
  (void)state;
  for (size_t i = 0; i < NENTRIES; i++) {
    const entry_t *e = &table[i];
    assert_string_equal(rn_err_name(e->value), e->name);
    assert_string_equal(rn_strerror(e->value), e->msg);
    assert_int_equal(rn_err_to_wire(e->value), e->wire);
    assert_int_equal(rn_err_from_wire(e->wire), e->value);
    assert_int_equal(rn_err_retriable(e->value), e->retry);
  }
}

static void test_values_and_codes_unique(void **state) {
  (void)state;
  for (size_t i = 0; i < NENTRIES; i++) {
    for (size_t j = i + 1; j < NENTRIES; j++) {
      assert_int_not_equal(table[i].value, table[j].value);
      assert_int_not_equal(table[i].wire, table[j].wire);
      assert_string_not_equal(table[i].name, table[j].name);
    }
    /* Only success is 0; every failure is negative. */
    if (table[i].value != 0) assert_true(table[i].value < 0);
  }
}

static void test_known_values(void **state) {
  (void)state;
  assert_int_equal(RN_OK, 0);
  assert_int_equal(RN_EINVAL, -EINVAL);
  assert_int_equal(RN_ECORRUPT, -4001);
  assert_string_equal(rn_err_name(RN_ECORRUPT), "ECORRUPT");
  assert_string_equal(rn_err_name(0), "OK");
  assert_int_equal(rn_err_to_wire(RN_EPARTIAL), 101);
  assert_int_equal(rn_err_from_wire(106), RN_EFORMAT);
  assert_true(rn_err_retriable(RN_EAGAIN));
  assert_true(rn_err_retriable(RN_EPARTIAL));
  assert_false(rn_err_retriable(RN_ECORRUPT));
  assert_false(rn_err_retriable(RN_OK));
}

/* An errno the table does not list keeps the C library's message, travels as
 * EIO and is not retriable. */
static void test_unlisted_errno(void **state) {
  (void)state;
  const int errs[] = {EPIPE, ECONNRESET, EACCES, EBADF, ENAMETOOLONG};
  for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
    rn_err_t err = -errs[i];
    char expect[256];
    snprintf(expect, sizeof expect, "%s", strerror(errs[i]));
    assert_string_equal(rn_strerror(err), expect);
    assert_string_equal(rn_err_name(err), "EUNKNOWN");
    assert_int_equal(rn_err_to_wire(err), 3);
    assert_int_equal(rn_err_to_wire(err), rn_err_to_wire(RN_EIO));
    assert_false(rn_err_retriable(err));
  }
}

/* Values that are neither in the table nor an errno still get a message. */
static void test_unknown_values(void **state) {
  (void)state;
  const rn_err_t vals[] = {-4096, -4999, -100000, 1, 42, INT32_MIN, INT32_MAX};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    const char *msg = rn_strerror(vals[i]);
    assert_non_null(msg);
    assert_true(strlen(msg) > 0);
    assert_non_null(strstr(msg, "unknown"));
    assert_string_equal(rn_err_name(vals[i]), "EUNKNOWN");
    assert_int_equal(rn_err_to_wire(vals[i]), 3);
    assert_false(rn_err_retriable(vals[i]));
  }
  /* An errno number the C library has no text for (still in errno range). */
  const char *msg = rn_strerror(-4000);
  assert_non_null(msg);
  assert_true(strlen(msg) > 0);
}

static void test_unknown_wire_codes(void **state) {
  (void)state;
  const uint32_t codes[] = {14, 99, 999, 1000, UINT32_MAX};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    assert_int_equal(rn_err_from_wire(codes[i]), RN_EIO);
}

/* Messages for values outside the table are per thread: another thread's
 * call does not change the string this thread holds. */
static void *other_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < 1000; i++) (void)rn_strerror(-4999 - i);
  return NULL;
}

static void test_message_thread_local(void **state) {
  (void)state;
  const char *mine = rn_strerror(-4321);
  char copy[256];
  snprintf(copy, sizeof copy, "%s", mine);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_string_equal(mine, copy);
  assert_non_null(strstr(copy, "-4321"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_entry),          cmocka_unit_test(test_values_and_codes_unique),
      cmocka_unit_test(test_known_values),         cmocka_unit_test(test_unlisted_errno),
      cmocka_unit_test(test_unknown_values),       cmocka_unit_test(test_unknown_wire_codes),
      cmocka_unit_test(test_message_thread_local),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
