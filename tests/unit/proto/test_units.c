/*
 * test_units.c — the one size/duration syntax (runnel/units.h): every
 * accepted spelling and its value, every rejection with the reason it
 * gives (KB/kb -> "write KiB", bare integer durations -> "has no unit"),
 * overflow, and that the formatters parse back to the same value.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "runnel/units.h"

static void test_sizes(void **state) {
  (void)state;
  static const struct {
    const char *s;
    int64_t v;
  } ok[] = {{"0", 0},
            {"1024", 1024},
            {"5B", 5},
            {"1K", 1024},
            {"1Ki", 1024},
            {"10KiB", 10240},
            {"10M", 10485760},
            {"512MiB", 536870912},
            {"10G", 10737418240LL},
            {"10Gi", 10737418240LL},
            {"10GiB", 10737418240LL},
            {"2T", 2199023255552LL},
            {"2TiB", 2199023255552LL},
            {"8388607TiB", 8388607LL << 40}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int64_t v = -1;
    char why[200] = "";
    if (rn_parse_size(ok[i].s, &v, why, sizeof why) != 0) fail_msg("%s: %s", ok[i].s, why);
    assert_int_equal(v, ok[i].v);
  }
  static const struct {
    const char *s, *why;
  } bad[] = {{"", "empty size"},
             {"G", "is not a size"},
             {"-1G", "is not a size"},
             {"1.5G", "whole numbers"},
             {"10KB", "write 10KiB"},
             {"10kb", "write 10KiB"},
             {"10k", "write 10KiB"},
             {"10mb", "write 10MiB"},
             {"10GB", "write 10GiB"},
             {"10gib", "write 10GiB"},
             {"10X", "unknown size unit \"X\""},
             {"10 G", "unknown size unit \" G\""},
             {"10GiBs", "write 10GiB"},
             {"5BB", "unknown size unit"},
             {"8388608TiB", "too large"},
             {"99999999999999999999", "too large"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t v = 7;
    char why[200] = "";
    assert_int_equal(rn_parse_size(bad[i].s, &v, why, sizeof why), RN_EINVAL);
    assert_int_equal(v, 7);
    if (strstr(why, bad[i].why) == NULL) fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].s, why, bad[i].why);
  }
  assert_int_equal(rn_parse_size(NULL, &(int64_t){0}, NULL, 0), RN_EINVAL);
}

static void test_durations(void **state) {
  (void)state;
  static const struct {
    const char *s;
    int64_t v;
  } ok[] = {{"500ms", 500},  {"0ms", 0},          {"30s", 30000},       {"90m", 5400000}, {"24h", 86400000},
            {"7d", 604800000}, {"1h30m", 5400000}, {"1d12h", 129600000}, {"1m30s", 90000}, {"2s500ms", 2500}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int64_t v = -1;
    char why[200] = "";
    if (rn_parse_duration_ms(ok[i].s, &v, why, sizeof why) != 0) fail_msg("%s: %s", ok[i].s, why);
    assert_int_equal(v, ok[i].v);
  }
  static const struct {
    const char *s, *why;
  } bad[] = {{"", "empty duration"},
             {"24", "has no unit (write 24ms or 24s"},
             {"0", "has no unit"},
             {"h", "is not a duration"},
             {"24x", "unknown duration unit \"x\""},
             {"2w", "unknown duration unit \"w\""},
             {"-1h", "is not a duration"},
             {"1.5h", "whole numbers"},
             {"24 h", "unknown duration unit \" h\""},
             {"1h30", "has no unit"},
             {"9223372036854775807d", "too long"},
             {"99999999999999999999d", "too long"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t v = 7;
    char why[200] = "";
    assert_int_equal(rn_parse_duration_ms(bad[i].s, &v, why, sizeof why), RN_EINVAL);
    assert_int_equal(v, 7);
    if (strstr(why, bad[i].why) == NULL) fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].s, why, bad[i].why);
  }
}

static void test_format_round_trip(void **state) {
  (void)state;
  char buf[RN_UNITS_STRLEN];
  rn_format_size(10737418240LL, buf, sizeof buf);
  assert_string_equal(buf, "10GiB");
  rn_format_size(1536 * 1024, buf, sizeof buf);
  assert_string_equal(buf, "1536KiB");
  rn_format_size(1000, buf, sizeof buf);
  assert_string_equal(buf, "1000B");
  rn_format_size(0, buf, sizeof buf);
  assert_string_equal(buf, "0B");
  rn_format_duration_ms(86400000, buf, sizeof buf);
  assert_string_equal(buf, "1d");
  rn_format_duration_ms(5400000, buf, sizeof buf);
  assert_string_equal(buf, "90m");
  rn_format_duration_ms(1500, buf, sizeof buf);
  assert_string_equal(buf, "1500ms");
  rn_format_duration_ms(0, buf, sizeof buf);
  assert_string_equal(buf, "0ms");
  static const int64_t vals[] = {1, 999, 1000, 61000, 3600000, 90061001, 604800000, 1LL << 40, 123456789012LL};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    int64_t back = -1;
    rn_format_size(vals[i], buf, sizeof buf);
    assert_int_equal(rn_parse_size(buf, &back, NULL, 0), 0);
    assert_int_equal(back, vals[i]);
    rn_format_duration_ms(vals[i], buf, sizeof buf);
    assert_int_equal(rn_parse_duration_ms(buf, &back, NULL, 0), 0);
    assert_int_equal(back, vals[i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sizes),
      cmocka_unit_test(test_durations),
      cmocka_unit_test(test_format_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
