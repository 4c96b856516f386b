/*
 * test_kinesis_err.c — the Kinesis error table (rn_kinesis_codec.h): every entry's
 * wire name, HTTP status and retryable flag pinned literally (they are a
 * contract with every AWS SDK and with the runnel_kinesis_errors_total
 * labels on /metrics), the order /metrics prints them in, and the answers
 * for values outside the table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "rn_kinesis_codec.h"

typedef struct {
  rn_kinesis_err_t e;
  const char *name;
  int status;
  bool retry;
} pinned_t;

/* Written out by hand, not taken from the macro under test. Adding an error
 * means adding its row here too (test_pinned checks the counts match). */
static const pinned_t pinned[] = {
    {RN_KERR_AccessDeniedException, "AccessDeniedException", 400, false},
    {RN_KERR_ExpiredIteratorException, "ExpiredIteratorException", 400, false},
    {RN_KERR_ExpiredNextTokenException, "ExpiredNextTokenException", 400, false},
    {RN_KERR_IncompleteSignatureException, "IncompleteSignatureException", 400, false},
    {RN_KERR_InternalFailure, "InternalFailure", 500, true},
    {RN_KERR_InvalidArgumentException, "InvalidArgumentException", 400, false},
    {RN_KERR_InvalidSignatureException, "InvalidSignatureException", 400, false},
    {RN_KERR_LimitExceededException, "LimitExceededException", 400, true},
    {RN_KERR_MissingAuthenticationTokenException, "MissingAuthenticationTokenException", 400, false},
    {RN_KERR_ProvisionedThroughputExceededException, "ProvisionedThroughputExceededException", 400, true},
    {RN_KERR_ResourceInUseException, "ResourceInUseException", 400, false},
    {RN_KERR_ResourceNotFoundException, "ResourceNotFoundException", 400, false},
    {RN_KERR_SerializationException, "SerializationException", 400, false},
    {RN_KERR_ServiceUnavailable, "ServiceUnavailable", 503, true},
    {RN_KERR_UnknownOperationException, "UnknownOperationException", 400, false},
    {RN_KERR_UnrecognizedClientException, "UnrecognizedClientException", 400, false},
    {RN_KERR_ValidationException, "ValidationException", 400, false},
};
#define NPINNED (sizeof pinned / sizeof pinned[0])

static void test_pinned(void **state) {
  (void)state;
  assert_int_equal(NPINNED, RN_KERR_COUNT - 1); /* every value but NONE */
  for (size_t i = 0; i < NPINNED; i++) {
    const pinned_t *p = &pinned[i];
    const char *name = rn_kinesis_err_name(p->e);
    assert_non_null(name);
    assert_string_equal(name, p->name);
    if (rn_kinesis_err_status(p->e) != p->status) fail_msg("%s: status %d, want %d", p->name, rn_kinesis_err_status(p->e), p->status);
    if (rn_kinesis_err_retryable(p->e) != p->retry) fail_msg("%s: retryable %d, want %d", p->name, rn_kinesis_err_retryable(p->e), p->retry);
  }
}

/* /metrics prints the table in enum order: values follow the pinned order
 * (sorted by name), 1 .. COUNT-1, with no gaps. */
static void test_order(void **state) {
  (void)state;
  for (size_t i = 0; i < NPINNED; i++) assert_int_equal(pinned[i].e, (int)i + 1);
  for (size_t i = 1; i < NPINNED; i++) assert_true(strcmp(pinned[i - 1].name, pinned[i].name) < 0);
}

static void test_outside(void **state) {
  (void)state;
  assert_int_equal(RN_KERR_NONE, 0); /* a zeroed result is a success */
  assert_null(rn_kinesis_err_name(RN_KERR_NONE));
  assert_null(rn_kinesis_err_name(RN_KERR_COUNT));
  assert_null(rn_kinesis_err_name((rn_kinesis_err_t)-1));
  assert_int_equal(rn_kinesis_err_status(RN_KERR_NONE), 500);
  assert_int_equal(rn_kinesis_err_status(RN_KERR_COUNT), 500);
  assert_false(rn_kinesis_err_retryable(RN_KERR_NONE));
  assert_false(rn_kinesis_err_retryable((rn_kinesis_err_t)1000));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pinned),
      cmocka_unit_test(test_order),
      cmocka_unit_test(test_outside),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
