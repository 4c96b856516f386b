/*
 * test_runnelctl.c — runnelctl's parsers (durations, sizes, durability, ISO
 * 8601, --from positions, shard ids, the --key-field JSON extraction, the
 * table formatting of durations/sizes) and whole commands run through
 * rn_ctl_main() against the in-process mock broker, with memory streams for
 * stdin/stdout/stderr: tables, --json documents, the one-line error format,
 * exit statuses and --help at every level.
 *
 * The CLI lives in one file (tools/runnelctl.c); it is compiled into this
 * test with RUNNELCTL_NO_MAIN so its static functions are reachable.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#define RUNNELCTL_NO_MAIN
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "../../../tools/runnelctl.c"
#pragma GCC diagnostic pop

#include "mock_broker.h"

/* ---- parsers ---------------------------------------------------------------- */

static void test_durations(void **state) {
  (void)state;
  int64_t v;
  struct {
    const char *s;
    int64_t ms;
  } ok[] = {{"24h", 86400000},   {"7d", 604800000}, {"90m", 5400000},    {"1h30m", 5400000}, {"500ms", 500},
            {"2w", 1209600000}, {"45s", 45000},    {"1d12h", 129600000}, {"none", 0},        {"forever", 0},
            {"0", 0}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    v = -1;
    assert_int_equal(parse_duration_ms(ok[i].s, &v), 0);
    assert_int_equal(v, ok[i].ms);
  }
  const char *bad[] = {"", "24", "h", "24x", "-1h", "1.5h", "24 h", "99999999999999999999d", "9223372036854775807d",
                       NULL};
  for (size_t i = 0; bad[i]; i++) assert_int_equal(parse_duration_ms(bad[i], &v), -1);
  assert_int_equal(parse_duration_ms(NULL, &v), -1);

  char buf[32];
  format_duration(86400000, buf, sizeof buf);
  assert_string_equal(buf, "1d");
  format_duration(5400000, buf, sizeof buf);
  assert_string_equal(buf, "90m");
  format_duration(1209600000, buf, sizeof buf);
  assert_string_equal(buf, "2w");
  format_duration(1500, buf, sizeof buf);
  assert_string_equal(buf, "1500ms");
  format_duration(0, buf, sizeof buf);
  assert_string_equal(buf, "forever");
}

static void test_sizes(void **state) {
  (void)state;
  int64_t v;
  struct {
    const char *s;
    int64_t b;
  } ok[] = {{"10G", 10737418240LL}, {"512MiB", 536870912}, {"1024", 1024}, {"1k", 1024},  {"5B", 5},
            {"2TB", 2199023255552LL}, {"1gib", 1073741824}, {"none", 0}, {"unlimited", 0}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    v = -1;
    assert_int_equal(parse_size_bytes(ok[i].s, &v), 0);
    assert_int_equal(v, ok[i].b);
  }
  const char *bad[] = {"", "10X", "G", "10GiBs", "-1G", "1.5G", "99999999999P", "10 G", "5BB", NULL};
  for (size_t i = 0; bad[i]; i++) assert_int_equal(parse_size_bytes(bad[i], &v), -1);
  char buf[32];
  format_bytes(10737418240LL, buf, sizeof buf);
  assert_string_equal(buf, "10GiB");
  format_bytes(1000, buf, sizeof buf);
  assert_string_equal(buf, "1000B");
  format_bytes(0, buf, sizeof buf);
  assert_string_equal(buf, "unlimited");

  rn_durability_t d;
  assert_int_equal(parse_durability("sync", &d), 0);
  assert_int_equal(d, RN_DURABILITY_SYNC);
  assert_int_equal(parse_durability("interval", &d), 0);
  assert_int_equal(d, RN_DURABILITY_INTERVAL);
  assert_int_equal(parse_durability("none", &d), 0);
  assert_int_equal(d, RN_DURABILITY_NONE);
  assert_int_equal(parse_durability("fsync", &d), -1);
}

static void test_iso8601_and_from(void **state) {
  (void)state;
  int64_t v;
  assert_int_equal(parse_iso8601_ms("1970-01-01T00:00:00Z", &v), 0);
  assert_int_equal(v, 0);
  assert_int_equal(parse_iso8601_ms("2024-05-01T12:00:00Z", &v), 0);
  assert_int_equal(v, 1714564800000LL);
  assert_int_equal(parse_iso8601_ms("2024-05-01T12:00:00.123Z", &v), 0);
  assert_int_equal(v, 1714564800123LL);
  assert_int_equal(parse_iso8601_ms("2024-05-01T12:00:00.1Z", &v), 0);
  assert_int_equal(v, 1714564800100LL);
  assert_int_equal(parse_iso8601_ms("2024-05-01T14:00:00+02:00", &v), 0);
  assert_int_equal(v, 1714564800000LL);
  assert_int_equal(parse_iso8601_ms("2024-05-01T07:30-0430", &v), 0);
  assert_int_equal(v, 1714564800000LL);
  assert_int_equal(parse_iso8601_ms("2024-05-01 12:00", &v), 0);
  assert_int_equal(v, 1714564800000LL);
  assert_int_equal(parse_iso8601_ms("2024-05-01", &v), 0);
  assert_int_equal(v, 1714521600000LL);
  assert_int_equal(parse_iso8601_ms("1969-12-31T23:00:00Z", &v), 0);
  assert_int_equal(v, -3600000);
  assert_int_equal(parse_iso8601_ms("2000-02-29T06:30:15Z", &v), 0);
  assert_int_equal(v, 951805815000LL);
  const char *bad[] = {"2024-13-01", "2024-05-01T25:00", "2024-05-01T12:00:00Zjunk", "2024-5-1", "20240501",
                       "2024-05-01T12", "2024-05-01T12:00:00.Z", NULL};
  for (size_t i = 0; bad[i]; i++) assert_int_equal(parse_iso8601_ms(bad[i], &v), -1);

  rn_pos_kind_t k;
  assert_int_equal(parse_from("earliest", &k, &v), 0);
  assert_int_equal(k, RN_POS_EARLIEST);
  assert_int_equal(parse_from("latest", &k, &v), 0);
  assert_int_equal(k, RN_POS_LATEST);
  assert_int_equal(parse_from("42", &k, &v), 0);
  assert_int_equal(k, RN_POS_OFFSET);
  assert_int_equal(v, 42);
  assert_int_equal(parse_from("@1714564800000", &k, &v), 0);
  assert_int_equal(k, RN_POS_TIMESTAMP);
  assert_int_equal(v, 1714564800000LL);
  assert_int_equal(parse_from("2024-05-01T12:00:00Z", &k, &v), 0);
  assert_int_equal(k, RN_POS_TIMESTAMP);
  assert_int_equal(v, 1714564800000LL);
  const char *badf[] = {"", "@", "@abc", "x", "-5", "@2024-05-01", "99999999999999999999", NULL};
  for (size_t i = 0; badf[i]; i++) assert_int_equal(parse_from(badf[i], &k, &v), -1);

  uint32_t s;
  assert_int_equal(parse_shard("3", &s), 0);
  assert_int_equal(s, 3);
  assert_int_equal(parse_shard("shardId-000000000003", &s), 0);
  assert_int_equal(s, 3);
  assert_int_equal(parse_shard("shardId-", &s), -1);
  assert_int_equal(parse_shard("abc", &s), -1);
  assert_int_equal(parse_shard("shardId-0000000000031", &s), -1);
  assert_int_equal(parse_shard("99999999999", &s), -1);
}

static void test_key_field(void **state) {
  (void)state;
  char *key = NULL, why[200];
  size_t n = 0;
  const char *l1 = "{\"user\":\"u1\",\"v\":1}";
  assert_int_equal(extract_key_field(l1, strlen(l1), "user", &key, &n, why, sizeof why), 0);
  assert_int_equal(n, 2);
  assert_string_equal(key, "u1");
  free(key);
  const char *l2 = "{\"user\":42}";
  assert_int_equal(extract_key_field(l2, strlen(l2), "user", &key, &n, why, sizeof why), 0);
  assert_string_equal(key, "42");
  free(key);
  const char *l3 = "{\"user\":true}";
  assert_int_equal(extract_key_field(l3, strlen(l3), "user", &key, &n, why, sizeof why), 0);
  assert_string_equal(key, "true");
  free(key);
  const char *l4 = "{\"v\":1}";
  assert_int_equal(extract_key_field(l4, strlen(l4), "user", &key, &n, why, sizeof why), -1);
  assert_string_equal(why, "no field \"user\"");
  const char *l5 = "not json";
  assert_int_equal(extract_key_field(l5, strlen(l5), "user", &key, &n, why, sizeof why), -1);
  assert_non_null(strstr(why, "not JSON"));
  const char *l6 = "[1,2]";
  assert_int_equal(extract_key_field(l6, strlen(l6), "user", &key, &n, why, sizeof why), -1);
  assert_string_equal(why, "not a JSON object");
  const char *l7 = "{\"user\":{\"id\":1}}";
  assert_int_equal(extract_key_field(l7, strlen(l7), "user", &key, &n, why, sizeof why), -1);
  const char *l8 = "{\"user\":\"a\"} trailing";
  assert_int_equal(extract_key_field(l8, strlen(l8), "user", &key, &n, why, sizeof why), -1);
}

/* ---- whole commands against the mock broker ---------------------------------- */

typedef struct {
  mock_broker_t *mb;
  char *out, *err;
  size_t outlen, errlen;
} fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  f->mb = mock_broker_start();
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  mock_broker_stop(f->mb);
  free(f->out);
  free(f->err);
  free(f);
  return 0;
}

/* Run runnelctl --broker <mock> args... with `input` on stdin. */
static int run(fixture_t *f, const char *input, ...) {
  char *argv[32];
  int argc = 0;
  argv[argc++] = (char *)(uintptr_t)"runnelctl";
  argv[argc++] = (char *)(uintptr_t)"--broker";
  argv[argc++] = (char *)(uintptr_t)mock_broker_addr(f->mb);
  va_list ap;
  va_start(ap, input);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL) argv[argc++] = (char *)(uintptr_t)a;
  va_end(ap);
  argv[argc] = NULL;
  free(f->out);
  free(f->err);
  f->out = f->err = NULL;
  FILE *out = open_memstream(&f->out, &f->outlen);
  FILE *err = open_memstream(&f->err, &f->errlen);
  FILE *in = tmpfile();
  assert_non_null(in);
  fputs(input ? input : "", in);
  rewind(in);
  int rc = rn_ctl_main(argc, argv, in, out, err);
  fclose(in);
  fclose(out);
  fclose(err);
  return rc;
}

static void test_stream_commands(void **state) {
  fixture_t *f = *state;
  assert_int_equal(run(f, NULL, "stream", "create", "events", "--shards", "4", "--retention", "24h",
                       "--durability", "interval", NULL),
                   0);
  assert_string_equal(f->out, "created stream \"events\" with 4 shards\n");
  assert_int_equal(run(f, NULL, "stream", "create", "events", "--shards=2", NULL), 1);
  assert_string_equal(f->err, "runnelctl: stream \"events\": already exists (EEXIST)\n");

  assert_int_equal(run(f, NULL, "stream", "list", NULL), 0);
  assert_non_null(strstr(f->out, "NAME    SHARDS  RETENTION"));
  assert_non_null(strstr(f->out, "events  4       1d"));
  assert_int_equal(run(f, NULL, "--json", "stream", "list", NULL), 0);
  json_error_t je;
  json_t *doc = json_loads(f->out, 0, &je);
  assert_non_null(doc);
  json_t *s0 = json_array_get(json_object_get(doc, "streams"), 0);
  assert_string_equal(json_string_value(json_object_get(s0, "name")), "events");
  assert_int_equal(json_integer_value(json_object_get(s0, "shard_count")), 4);
  assert_string_equal(json_string_value(json_object_get(s0, "durability")), "interval");
  json_decref(doc);

  assert_int_equal(run(f, NULL, "stream", "describe", "events", NULL), 0);
  assert_non_null(strstr(f->out, "stream:           events\n"));
  assert_non_null(strstr(f->out, "shardId-000000000003  255211775190703847597530955573826158592  "
                                 "340282366920938463463374607431768211455"));
  assert_int_equal(run(f, NULL, "stream", "describe", "events", "--json", NULL), 0);
  doc = json_loads(f->out, 0, &je);
  assert_non_null(doc);
  json_t *sh = json_array_get(json_object_get(doc, "shards"), 1);
  assert_string_equal(json_string_value(json_object_get(sh, "hash_key_start")),
                      "85070591730234615865843651857942052864");
  json_decref(doc);

  assert_int_equal(run(f, NULL, "stream", "describe", "x", NULL), 1);
  assert_string_equal(f->err, "runnelctl: stream \"x\": stream not found (ENOSTREAM)\n");
  assert_string_equal(f->out, "");

  assert_int_equal(run(f, NULL, "stream", "set-retention", "events", "--retention-bytes", "10G", NULL), 0);
  assert_string_equal(f->out, "stream \"events\": retention 1d, retention-bytes 10GiB\n");

  assert_int_equal(run(f, NULL, "stream", "delete", "events", NULL), 0);
  assert_string_equal(f->out, "deleted stream \"events\"\n");
  assert_int_equal(run(f, NULL, "stream", "delete", "events", NULL), 1);
  assert_int_equal(run(f, NULL, "stream", "list", NULL), 0);
  assert_string_equal(f->out, "no streams\n");
}

static void test_produce_consume_offsets(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "s", 3);
  const char *lines = "{\"user\":\"a\",\"n\":1}\n{\"user\":\"b\",\"n\":2}\nnot json\n\n{\"n\":4}\n{\"user\":\"a\",\"n\":5}\n";
  assert_int_equal(run(f, lines, "produce", "s", "--key-field", "user", NULL), 1);
  assert_string_equal(f->out, "produced 3 records to s (2 failed)\n");
  assert_non_null(strstr(f->err, "runnelctl: line 3: not JSON"));
  assert_non_null(strstr(f->err, "runnelctl: line 5: no field \"user\"\n"));

  assert_int_equal(run(f, "one\ntwo\nthree\n", "produce", "s", NULL), 0);
  assert_string_equal(f->out, "produced 3 records to s (0 failed)\n");
  assert_string_equal(f->err, "");

  /* every shard to its end: 6 records, each line once */
  assert_int_equal(run(f, NULL, "consume", "s", NULL), 0);
  const char *want[] = {"{\"user\":\"a\",\"n\":1}", "{\"user\":\"b\",\"n\":2}", "{\"user\":\"a\",\"n\":5}", "one",
                        "two", "three"};
  size_t nl = 0;
  for (const char *p = f->out; *p; p++) nl += *p == '\n';
  assert_int_equal(nl, 6);
  for (size_t i = 0; i < 6; i++) {
    char line[64];
    snprintf(line, sizeof line, "%s\n", want[i]);
    assert_non_null(strstr(f->out, line));
  }
  /* records of key "a" are in one shard, in order */
  const char *a1 = strstr(f->out, "\"n\":1"), *a5 = strstr(f->out, "\"n\":5");
  assert_true(a1 < a5);

  assert_int_equal(run(f, NULL, "consume", "s", "--max", "2", NULL), 0);
  nl = 0;
  for (const char *p = f->out; *p; p++) nl += *p == '\n';
  assert_int_equal(nl, 2);

  assert_int_equal(run(f, NULL, "offsets", "s", NULL), 0);
  assert_non_null(strstr(f->out, "SHARD                 START  END  RECORDS\n"));
  assert_int_equal(run(f, NULL, "--json", "offsets", "s", NULL), 0);
  json_error_t je;
  json_t *doc = json_loads(f->out, 0, &je);
  assert_non_null(doc);
  json_int_t total = 0;
  json_t *arr = json_object_get(doc, "shards");
  assert_int_equal(json_array_size(arr), 3);
  for (size_t i = 0; i < 3; i++) total += json_integer_value(json_object_get(json_array_get(arr, i), "end_offset"));
  assert_int_equal(total, 6);
  /* one shard, from an offset, as JSON records */
  uint32_t shard = 0;
  while (json_integer_value(json_object_get(json_array_get(arr, shard), "end_offset")) < 2) shard++;
  char sid[32];
  snprintf(sid, sizeof sid, "shardId-%012u", shard);
  json_decref(doc);
  assert_int_equal(run(f, NULL, "--json", "consume", "s", "--shard", sid, "--from", "1", NULL), 0);
  doc = json_loads(f->out, JSON_DISABLE_EOF_CHECK, &je);
  assert_non_null(doc);
  assert_int_equal(json_integer_value(json_object_get(doc, "offset")), 1);
  assert_int_equal(json_integer_value(json_object_get(doc, "shard")), shard);
  assert_non_null(json_object_get(doc, "data"));
  json_decref(doc);

  assert_int_equal(run(f, NULL, "consume", "s", "--shard", "9", NULL), 1);
  assert_string_equal(f->err, "runnelctl: stream \"s\" shardId-000000000009: shard not found (ENOSHARD)\n");
  assert_int_equal(run(f, "x\n", "produce", "missing", NULL), 1);
  assert_string_equal(f->err, "runnelctl: stream \"missing\": stream not found (ENOSTREAM)\n");
  assert_int_equal(run(f, NULL, "consume", "missing", NULL), 1);
  assert_string_equal(f->err, "runnelctl: stream \"missing\": stream not found (ENOSTREAM)\n");
}

static void test_help_and_usage(void **state) {
  fixture_t *f = *state;
  const char *helps[][4] = {{"--help", NULL},
                            {"stream", "--help", NULL},
                            {"stream", "create", "--help", NULL},
                            {"stream", "list", "--help", NULL},
                            {"stream", "describe", "-h", NULL},
                            {"stream", "delete", "--help", NULL},
                            {"stream", "set-retention", "--help", NULL},
                            {"produce", "--help", NULL},
                            {"consume", "--help", NULL},
                            {"offsets", "--help", NULL}};
  for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
    assert_int_equal(run(f, NULL, helps[i][0], helps[i][1], helps[i][2], helps[i][3]), 0);
    assert_true(strncmp(f->out, "usage: runnelctl", 16) == 0);
  }
  assert_int_equal(run(f, NULL, NULL), 2);
  assert_int_equal(run(f, NULL, "bogus", NULL), 2);
  assert_string_equal(f->err, "runnelctl: unknown command \"bogus\" (see --help)\n");
  assert_int_equal(run(f, NULL, "stream", "create", "x", NULL), 2);
  assert_int_equal(run(f, NULL, "stream", "create", "x", "--shards", "2", "--retention", "3 days", NULL), 2);
  assert_non_null(strstr(f->err, "--retention: \"3 days\" is not a duration"));
  assert_int_equal(run(f, NULL, "stream", "create", "x", "--shards", "2", "--bogus", NULL), 2);
  assert_int_equal(run(f, NULL, "consume", "s", "--from", "yesterday", NULL), 2);
  assert_int_equal(run(f, NULL, "consume", "s", "--follow=yes", NULL), 2);
  assert_int_equal(run(f, NULL, "stream", "set-retention", "s", NULL), 2);
  assert_int_equal(run(f, NULL, "stream", "frobnicate", NULL), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_durations),
      cmocka_unit_test(test_sizes),
      cmocka_unit_test(test_iso8601_and_from),
      cmocka_unit_test(test_key_field),
      cmocka_unit_test_setup_teardown(test_stream_commands, setup, teardown),
      cmocka_unit_test_setup_teardown(test_produce_consume_offsets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_help_and_usage, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
