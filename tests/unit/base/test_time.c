/*
 * test_time.c — the one calendar and date-syntax module (rn_base.h
 * section 3): days_from_civil against known dates and its inverse over
 * every day of 1900..2400 (leap years, the century rule, 2000), the edges
 * 1970, 2038 (past a 32-bit time_t) and 9999; ISO-8601 in the strict form
 * (Kinesis) and with each lenient flag (runnelctl); the SigV4 basic form.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "rn_base.h"

static void test_days_known(void **state) {
  (void)state;
  assert_int_equal(rn_days_from_civil(1970, 1, 1), 0);
  assert_int_equal(rn_days_from_civil(1969, 12, 31), -1);
  assert_int_equal(rn_days_from_civil(2000, 3, 1), 11017);
  assert_int_equal(rn_days_from_civil(2038, 1, 19), 24855); /* 2^31 s falls on this day */
  assert_int_equal(rn_days_from_civil(9999, 12, 31), 2932896);
  assert_int_equal(rn_days_from_civil(0, 1, 1), -719528);
  /* A day past the month's end counts on. */
  assert_int_equal(rn_days_from_civil(2023, 2, 29), rn_days_from_civil(2023, 3, 1));
  assert_int_equal(rn_days_from_civil(2024, 2, 29) + 1, rn_days_from_civil(2024, 3, 1));
  assert_true(rn_leap_year(2000) && rn_leap_year(2024) && rn_leap_year(1600));
  assert_false(rn_leap_year(1900) || rn_leap_year(2100) || rn_leap_year(2023));
}

static void test_days_round_trip(void **state) {
  (void)state;
  static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int64_t expect = rn_days_from_civil(1900, 1, 1);
  for (int64_t y = 1900; y <= 2400; y++)
    for (unsigned m = 1; m <= 12; m++) {
      unsigned last = mdays[m - 1] + (m == 2 && rn_leap_year(y));
      for (unsigned d = 1; d <= last; d++, expect++) {
        assert_int_equal(rn_days_from_civil(y, m, d), expect);
        int64_t yy;
        unsigned mm, dd;
        rn_civil_from_days(expect, &yy, &mm, &dd);
        assert_true(yy == y && mm == m && dd == d);
      }
    }
}

static int64_t P(const char *s, unsigned flags) {
  int64_t ms = 77;
  int rc = rn_iso8601_parse(s, strlen(s), flags, &ms);
  return rc == 0 ? ms : (assert_int_equal(ms, 77), (int64_t)rc);
}

#define BAD (-(int64_t)EINVAL)
#define CTL (RN_ISO8601_DATE_ONLY | RN_ISO8601_NO_SECONDS | RN_ISO8601_NO_ZONE | RN_ISO8601_OFFSET_MINUTES)

static void test_iso8601_strict(void **state) {
  (void)state;
  assert_int_equal(P("1970-01-01T00:00:00Z", 0), 0);
  assert_int_equal(P("2015-08-30T12:36:00Z", 0), 1440938160000ll);
  assert_int_equal(P("2015-08-30t12:36:00.5z", 0), 1440938160500ll);
  assert_int_equal(P("2015-08-30 12:36:00,123456Z", 0), 1440938160123ll);
  assert_int_equal(P("2015-08-30T14:36:00+02:00", 0), 1440938160000ll);
  assert_int_equal(P("2015-08-30T14:36:00+0200", 0), 1440938160000ll);
  assert_int_equal(P("2015-08-30T14:36:00+02", 0), 1440938160000ll);
  assert_int_equal(P("2015-08-30T10:06:00-02:30", 0), 1440938160000ll);
  assert_int_equal(P("2038-01-19T03:14:08Z", 0), 2147483648000ll);
  assert_int_equal(P("9999-12-31T23:59:59.999Z", 0), 253402300799999ll);
  assert_int_equal(P("2024-02-29T00:00:00Z", 0), 1709164800000ll);
  assert_int_equal(P("1969-12-31T23:59:59Z", 0), -1000);
  assert_int_equal(P("2016-12-31T23:59:60Z", 0), 1483228800000ll); /* a leap second is the next one */
  /* Strict: seconds and a zone are required; nothing may follow. */
  assert_int_equal(P("2015-08-30T12:36:00", 0), BAD);
  assert_int_equal(P("2015-08-30T12:36Z", 0), BAD);
  assert_int_equal(P("2015-08-30", 0), BAD);
  assert_int_equal(P("2015-08-30T12:36:00Z ", 0), BAD);
  assert_int_equal(P("2015-08-30T12:36:00.Z", 0), BAD);
  assert_int_equal(P("2015-13-01T00:00:00Z", 0), BAD);
  assert_int_equal(P("2015-00-01T00:00:00Z", 0), BAD);
  assert_int_equal(P("2015-01-32T00:00:00Z", 0), BAD);
  assert_int_equal(P("2015-01-01T24:00:00Z", 0), BAD);
  assert_int_equal(P("2015-01-01T00:60:00Z", 0), BAD);
  assert_int_equal(P("2015-01-01T00:00:61Z", 0), BAD);
  assert_int_equal(P("2015-01-01T00:00:00+24:00", 0), BAD);
  assert_int_equal(P("2015-01-01T00:00:00+01:60", 0), BAD);
  assert_int_equal(P("2015-01-01T00:00:00+1", 0), BAD);
  assert_int_equal(P("15-01-01T00:00:00Z", 0), BAD);
  assert_int_equal(P("2015/01/01T00:00:00Z", 0), BAD);
  assert_int_equal(P("", 0), BAD);
  /* Length-delimited: the NUL is not the end. */
  int64_t ms;
  assert_int_equal(rn_iso8601_parse("1970-01-01T00:00:01Zjunk", 20, 0, &ms), 0);
  assert_int_equal(ms, 1000);
}

static void test_iso8601_lenient(void **state) {
  (void)state;
  assert_int_equal(P("2024-01-01", CTL), 1704067200000ll);
  assert_int_equal(P("2024-01-01T10:30", CTL), 1704105000000ll);
  assert_int_equal(P("2024-01-01T10:30:00", CTL), 1704105000000ll);
  assert_int_equal(P("2024-01-01T10:30:00.25", CTL), 1704105000250ll);
  assert_int_equal(P("2024-01-01T12:30+02:00", CTL), 1704105000000ll);
  assert_int_equal(P("1960-01-01", CTL), -315619200000ll);
  /* With OFFSET_MINUTES an offset needs its minutes. */
  assert_int_equal(P("2024-01-01T12:30+02", CTL), BAD);
  assert_int_equal(P("2024-01-01T12:30+02:", CTL), BAD);
  assert_int_equal(P("2024-01-01Z", CTL), BAD);
  assert_int_equal(P("2024-01-01T10", CTL), BAD);
  assert_int_equal(P("2024-01-01T10:30.5", CTL), BAD);
  /* Each flag alone. */
  assert_int_equal(P("2024-01-01", RN_ISO8601_DATE_ONLY), 1704067200000ll);
  assert_int_equal(P("2024-01-01T10:30Z", RN_ISO8601_NO_SECONDS), 1704105000000ll);
  assert_int_equal(P("2024-01-01T10:30:00", RN_ISO8601_NO_ZONE), 1704105000000ll);
  assert_int_equal(P("2024-01-01T10:30:00+02", RN_ISO8601_OFFSET_MINUTES), BAD);
}

static void test_iso8601_format(void **state) {
  (void)state;
  char out[RN_ISO8601_MAX];
  assert_int_equal(rn_iso8601_format_ms(0, out), 24);
  assert_string_equal(out, "1970-01-01T00:00:00.000Z");
  rn_iso8601_format_ms(-1, out);
  assert_string_equal(out, "1969-12-31T23:59:59.999Z");
  rn_iso8601_format_ms(2147483648123ll, out);
  assert_string_equal(out, "2038-01-19T03:14:08.123Z");
  rn_iso8601_format_ms(951782400000ll, out);
  assert_string_equal(out, "2000-02-29T00:00:00.000Z");
  rn_iso8601_format_ms(253402300799999ll, out);
  assert_string_equal(out, "9999-12-31T23:59:59.999Z");
  rn_iso8601_format_ms(253402300800000ll, out);
  assert_string_equal(out, "10000-01-01T00:00:00.000Z");
  /* format → parse is the identity on ms. */
  for (int64_t ms = -86400000ll * 800; ms < 4102444800000ll; ms += 86400000ll * 37 + 3600007) {
    int64_t back;
    size_t n = rn_iso8601_format_ms(ms, out);
    assert_int_equal(rn_iso8601_parse(out, n, 0, &back), 0);
    assert_int_equal(back, ms);
  }
}

static void test_amz_date(void **state) {
  (void)state;
  int64_t t = 0;
  assert_int_equal(rn_amz_date_parse("20150830T123600Z", 16, &t), 0);
  assert_int_equal(t, 1440938160);
  assert_int_equal(rn_amz_date_parse("20380119T031408Z", 16, &t), 0);
  assert_int_equal(t, 2147483648ll);
  assert_int_equal(rn_amz_date_parse("19700101T000000Z", 16, &t), 0);
  assert_int_equal(t, 0);
  assert_int_equal(rn_amz_date_parse("20150830T123600", 15, &t), -EINVAL);
  assert_int_equal(rn_amz_date_parse("20150830T123600z", 16, &t), -EINVAL);
  assert_int_equal(rn_amz_date_parse("20151330T123600Z", 16, &t), -EINVAL);
  assert_int_equal(rn_amz_date_parse("2015083OT123600Z", 16, &t), -EINVAL);
  assert_int_equal(rn_amz_date_parse("20150830T243600Z", 16, &t), -EINVAL);
  char out[17];
  rn_amz_date_format(1440938160, out);
  assert_string_equal(out, "20150830T123600Z");
  rn_amz_date_format(2147483648ll, out);
  assert_string_equal(out, "20380119T031408Z");
  rn_amz_date_format(253402300799ll, out);
  assert_string_equal(out, "99991231T235959Z");
  rn_amz_date_format(0, out);
  assert_string_equal(out, "19700101T000000Z");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_days_known),     cmocka_unit_test(test_days_round_trip),
      cmocka_unit_test(test_iso8601_strict), cmocka_unit_test(test_iso8601_lenient),
      cmocka_unit_test(test_iso8601_format), cmocka_unit_test(test_amz_date),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
