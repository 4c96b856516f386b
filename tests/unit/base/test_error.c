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

/* The same table written out by hand: the wire codes and C values are a
 * contract with every client and every stored byte, so they are pinned here
 * literally, not taken from the macro under test. Adding an error means
 * adding its row here too (test_pinned checks the counts match). */
typedef struct {
  const char *name;
  int value;
  uint32_t wire;
  bool retry;
} pinned_t;

static const pinned_t pinned[] = {
    {"OK", 0, 0, false},
    {"EINVAL", -22, 1, false},
    {"ENOMEM", -12, 2, true},
    {"EIO", -5, 3, false},
    {"ENOSPC", -28, 4, true},
    {"ENOENT", -2, 5, false},
    {"EEXIST", -17, 6, false},
    {"EAGAIN", -11, 7, true},
    {"EBUSY", -16, 8, true},
    {"ECANCELED", -125, 9, true},
    {"ENOTSUP", -95, 10, false},
    {"ETIMEDOUT", -110, 11, true},
    {"EMFILE", -24, 12, true},
    {"ENFILE", -23, 13, true},
    {"ECORRUPT", -4001, 100, false},
    {"EPARTIAL", -4002, 101, true},
    {"ETOOLARGE", -4003, 102, false},
    {"EOFFSET", -4004, 103, false},
    {"ELOGFAILED", -4005, 104, false},
    {"ECLOSED", -4006, 105, false},
    {"EFORMAT", -4007, 106, false},
    {"ENOSTREAM", -4008, 107, false},
    {"ENOSHARD", -4009, 108, false},
    {"EBADREQUEST", -4010, 109, false},
    {"EUNKNOWNOP", -4011, 110, false},
    {"ESEQUENCE", -4012, 111, false},
    {"EFENCED", -4013, 112, false},
    {"ETHROTTLED", -4014, 113, true},
    {"ESHUTDOWN", -4015, 114, true},
    {"ECONNECTION", -4016, 115, true},
    {"ENOGROUP", -4017, 116, false},
    {"EUNKNOWNMEMBER", -4018, 117, false},
    {"EGROUPACTIVE", -4019, 118, false},
    {"EPROTOCOL", -4020, 119, false},
    {"EOBJSTORE", -4021, 120, true},
    {"EBACKLOG", -4022, 121, true},
    {"ENOSINK", -4023, 122, false},
    {"ENOTLEADER", -4024, 123, true},
    {"ENOTENOUGHREPLICAS", -4025, 124, true},
    {"ESTALEEPOCH", -4026, 125, true},
    {"ECONTROLPLANE", -4027, 126, true},
    {"ECONFLICT", -4028, 127, true},
};
#define NPINNED (sizeof pinned / sizeof pinned[0])

static void test_pinned(void **state) {
  (void)state;
  assert_int_equal(NPINNED, NENTRIES);
  for (size_t i = 0; i < NPINNED; i++) {
    const pinned_t *p = &pinned[i];
    assert_string_equal(rn_err_name(p->value), p->name);
    assert_int_equal(rn_err_to_wire(p->value), p->wire);
    assert_int_equal(rn_err_from_wire(p->wire), p->value);
    if (rn_err_retriable(p->value) != p->retry) fail_msg("%s: retriable should be %d", p->name, p->retry);
    assert_true(strlen(rn_strerror(p->value)) > 0);
  }
}

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
      cmocka_unit_test(test_pinned),
      cmocka_unit_test(test_every_entry),          cmocka_unit_test(test_values_and_codes_unique),
      cmocka_unit_test(test_known_values),         cmocka_unit_test(test_unlisted_errno),
      cmocka_unit_test(test_unknown_values),       cmocka_unit_test(test_unknown_wire_codes),
      cmocka_unit_test(test_message_thread_local),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
