/*
 * test_runnelctl.c — runnelctl's parsers (ISO 8601, relative times, --from
 * positions, shard ids, the --key-field JSON extraction, retention
 * formatting) and whole commands run through ctl_main() against the
 * in-process mock broker, with memory streams for stdin/stdout/stderr:
 * tables, --json documents (one set of field names), the one-line error
 * format, exit statuses, --help at every level, the generated man page and
 * completion, produce keys/headers/files, consume --format/--tail/--to, and
 * the defects of issue 10: failed writes to stdout (/dev/full) exit 1 with
 * the reason, produce to a missing stream with empty input fails, an
 * offset past every shard's end or a ms-looking bare number says so,
 * retention 0 and out-of-range session timeouts are refused.
 *
 * The CLI is the rn_ctl library (tools/runnelctl/ctl_*.c); this test links it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_int.h"
#include "mock_broker.h"

/* ---- parsers ---------------------------------------------------------------- */

static void test_formats(void **state) {
  (void)state;
  char buf[40];
  ctl_format_retention(86400000, buf, sizeof buf);
  assert_string_equal(buf, "1d");
  ctl_format_retention(-1, buf, sizeof buf);
  assert_string_equal(buf, "forever");
  ctl_format_retention(0, buf, sizeof buf);
  assert_string_equal(buf, "broker default");
  ctl_format_retention_bytes(10737418240LL, buf, sizeof buf);
  assert_string_equal(buf, "10GiB");
  ctl_format_retention_bytes(0, buf, sizeof buf);
  assert_string_equal(buf, "unlimited");
  ctl_format_time(1714564800123LL, buf, sizeof buf);
  assert_string_equal(buf, "2024-05-01T12:00:00.123Z");
  ctl_format_time(0, buf, sizeof buf);
  assert_string_equal(buf, "-");
}

static void test_iso8601_and_from(void **state) {
  (void)state;
  int64_t v;
  assert_int_equal(ctl_parse_iso8601_ms("1970-01-01T00:00:00Z", &v), 0);
  assert_int_equal(v, 0);
  assert_int_equal(ctl_parse_iso8601_ms("2024-05-01T12:00:00Z", &v), 0);
  assert_int_equal(v, 1714564800000LL);
  assert_int_equal(ctl_parse_iso8601_ms("2024-05-01T12:00:00.123Z", &v), 0);
  assert_int_equal(v, 1714564800123LL);
  assert_int_equal(ctl_parse_iso8601_ms("2024-05-01T12:00:00.1Z", &v), 0);
  assert_int_equal(v, 1714564800100LL);
  assert_int_equal(ctl_parse_iso8601_ms("2024-05-01T14:00:00+02:00", &v), 0);
  assert_int_equal(v, 1714564800000LL);
  assert_int_equal(ctl_parse_iso8601_ms("2024-05-01T07:30-0430", &v), 0);
  assert_int_equal(v, 1714564800000LL);
  assert_int_equal(ctl_parse_iso8601_ms("2024-05-01 12:00", &v), 0);
  assert_int_equal(v, 1714564800000LL);
  assert_int_equal(ctl_parse_iso8601_ms("2024-05-01", &v), 0);
  assert_int_equal(v, 1714521600000LL);
  assert_int_equal(ctl_parse_iso8601_ms("1969-12-31T23:00:00Z", &v), 0);
  assert_int_equal(v, -3600000);
  assert_int_equal(ctl_parse_iso8601_ms("2000-02-29T06:30:15Z", &v), 0);
  assert_int_equal(v, 951805815000LL);
  const char *bad[] = {"2024-13-01", "2024-05-01T25:00", "2024-05-01T12:00:00Zjunk", "2024-5-1", "20240501",
                       "2024-05-01T12", "2024-05-01T12:00:00.Z", NULL};
  for (size_t i = 0; bad[i]; i++) assert_int_equal(ctl_parse_iso8601_ms(bad[i], &v), -1);

  rn_pos_kind_t k;
  char why[256];
  const int64_t now = 1714564800000LL;
  assert_int_equal(ctl_parse_pos("earliest", now, &k, &v, why, sizeof why), 0);
  assert_int_equal(k, RN_POS_EARLIEST);
  assert_int_equal(ctl_parse_pos("latest", now, &k, &v, why, sizeof why), 0);
  assert_int_equal(k, RN_POS_LATEST);
  assert_int_equal(ctl_parse_pos("42", now, &k, &v, why, sizeof why), 0);
  assert_int_equal(k, RN_POS_OFFSET);
  assert_int_equal(v, 42);
  assert_int_equal(ctl_parse_pos("@1714564800000", now, &k, &v, why, sizeof why), 0);
  assert_int_equal(k, RN_POS_TIMESTAMP);
  assert_int_equal(v, 1714564800000LL);
  assert_int_equal(ctl_parse_pos("2024-05-01T12:00:00Z", now, &k, &v, why, sizeof why), 0);
  assert_int_equal(k, RN_POS_TIMESTAMP);
  assert_int_equal(v, 1714564800000LL);
  assert_int_equal(ctl_parse_pos("-1h", now, &k, &v, why, sizeof why), 0);
  assert_int_equal(k, RN_POS_TIMESTAMP);
  assert_int_equal(v, now - 3600000);
  assert_int_equal(ctl_parse_pos("-1d12h", now, &k, &v, why, sizeof why), 0);
  assert_int_equal(v, now - 129600000);
  /* a bare number is an offset, however large */
  assert_int_equal(ctl_parse_pos("1714564800000", now, &k, &v, why, sizeof why), 0);
  assert_int_equal(k, RN_POS_OFFSET);
  char hint[96];
  assert_string_equal(ctl_ms_hint(1714564800000LL, hint, sizeof hint),
                      "; 1714564800000 looks like a time in ms: write @1714564800000 for a time");
  assert_string_equal(ctl_ms_hint(99999999999LL, hint, sizeof hint), "");
  const char *badf[] = {"", "@", "@abc", "x", "-5", "@2024-05-01", "99999999999999999999", "-1x", "yesterday", NULL};
  for (size_t i = 0; badf[i]; i++) assert_int_equal(ctl_parse_pos(badf[i], now, &k, &v, why, sizeof why), -1);

  uint32_t s;
  assert_int_equal(ctl_parse_shard("3", &s), 0);
  assert_int_equal(s, 3);
  assert_int_equal(ctl_parse_shard("shardId-000000000003", &s), 0);
  assert_int_equal(s, 3);
  assert_int_equal(ctl_parse_shard("shardId-", &s), -1);
  assert_int_equal(ctl_parse_shard("abc", &s), -1);
  assert_int_equal(ctl_parse_shard("shardId-0000000000031", &s), -1);
  assert_int_equal(ctl_parse_shard("99999999999", &s), -1);
}

static void test_key_field(void **state) {
  (void)state;
  char *key = NULL, why[200];
  size_t n = 0;
  const char *l1 = "{\"user\":\"u1\",\"v\":1}";
  assert_int_equal(ctl_key_field(l1, strlen(l1), "user", &key, &n, why, sizeof why), 0);
  assert_int_equal(n, 2);
  assert_string_equal(key, "u1");
  free(key);
  const char *l2 = "{\"user\":42}";
  assert_int_equal(ctl_key_field(l2, strlen(l2), "user", &key, &n, why, sizeof why), 0);
  assert_string_equal(key, "42");
  free(key);
  const char *l3 = "{\"user\":true}";
  assert_int_equal(ctl_key_field(l3, strlen(l3), "user", &key, &n, why, sizeof why), 0);
  assert_string_equal(key, "true");
  free(key);
  const char *l4 = "{\"v\":1}";
  assert_int_equal(ctl_key_field(l4, strlen(l4), "user", &key, &n, why, sizeof why), -1);
  assert_string_equal(why, "no field \"user\"");
  const char *l5 = "not json";
  assert_int_equal(ctl_key_field(l5, strlen(l5), "user", &key, &n, why, sizeof why), -1);
  assert_non_null(strstr(why, "not JSON"));
  const char *l6 = "[1,2]";
  assert_int_equal(ctl_key_field(l6, strlen(l6), "user", &key, &n, why, sizeof why), -1);
  assert_string_equal(why, "not a JSON object");
  const char *l7 = "{\"user\":{\"id\":1}}";
  assert_int_equal(ctl_key_field(l7, strlen(l7), "user", &key, &n, why, sizeof why), -1);
  const char *l8 = "{\"user\":\"a\"} trailing";
  assert_int_equal(ctl_key_field(l8, strlen(l8), "user", &key, &n, why, sizeof why), -1);
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

/* Run runnelctl --broker <mock> args... with `input` on stdin and stdout
 * into f->out, or into out_path (e.g. /dev/full) when it is not NULL. */
static int run_v(fixture_t *f, const char *out_path, const char *input, va_list ap) {
  char *argv[40];
  int argc = 0;
  argv[argc++] = (char *)(uintptr_t)"runnelctl";
  argv[argc++] = (char *)(uintptr_t)"--broker";
  argv[argc++] = (char *)(uintptr_t)mock_broker_addr(f->mb);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL && argc < 39) argv[argc++] = (char *)(uintptr_t)a;
  argv[argc] = NULL;
  free(f->out);
  free(f->err);
  f->out = f->err = NULL;
  FILE *out = out_path ? fopen(out_path, "w") : open_memstream(&f->out, &f->outlen);
  FILE *err = open_memstream(&f->err, &f->errlen);
  assert_non_null(out);
  FILE *in = tmpfile();
  assert_non_null(in);
  fputs(input ? input : "", in);
  rewind(in);
  int rc = ctl_main(argc, argv, in, out, err);
  fclose(in);
  fclose(out);
  fclose(err);
  if (out_path) f->out = strdup("");
  return rc;
}

static int run(fixture_t *f, const char *input, ...) {
  va_list ap;
  va_start(ap, input);
  int rc = run_v(f, NULL, input, ap);
  va_end(ap);
  return rc;
}

static int run_to(fixture_t *f, const char *out_path, const char *input, ...) {
  va_list ap;
  va_start(ap, input);
  int rc = run_v(f, out_path, input, ap);
  va_end(ap);
  return rc;
}

static size_t count_lines(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

static void test_stream_commands(void **state) {
  fixture_t *f = *state;
  assert_int_equal(run(f, NULL, "stream", "create", "events", "--shards", "4", "--retention", "24h",
                       "--durability", "interval", NULL),
                   0);
  assert_string_equal(f->out, "created stream \"events\" with 4 shards (retention 1d)\n");
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
  assert_string_equal(json_string_value(json_object_get(s0, "stream")), "events");
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
  /* one name for the shard in every command */
  assert_int_equal(json_integer_value(json_object_get(sh, "shard")), 1);
  assert_null(json_object_get(sh, "index"));
  assert_true(json_is_null(json_object_get(sh, "last_append_ms"))); /* no record yet: unknown, not 0 */
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
  assert_string_equal(f->out, "");
  assert_non_null(strstr(f->err, "produced 3 records ("));
  assert_non_null(strstr(f->err, " to s: "));
  assert_non_null(strstr(f->err, ", 2 failed, "));
  assert_non_null(strstr(f->err, "runnelctl: line 3: not JSON"));
  assert_non_null(strstr(f->err, "runnelctl: line 5: no field \"user\"\n"));

  assert_int_equal(run(f, "one\ntwo\nthree\n", "produce", "s", NULL), 0);
  assert_string_equal(f->out, "");
  assert_true(strncmp(f->err, "produced 3 records (", 20) == 0);
  assert_non_null(strstr(f->err, ", 0 failed, "));

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
                            {"offsets", "--help", NULL},
                            {"group", "reset", "--help", NULL},
                            {"group", "list", "-h", NULL},
                            {"status", "--help", NULL},
                            {"completion", "--help", NULL}};
  for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
    assert_int_equal(run(f, NULL, helps[i][0], helps[i][1], helps[i][2], helps[i][3]), 0);
    assert_true(strncmp(f->out, "usage: runnelctl", 16) == 0);
  }
  assert_int_equal(run(f, NULL, NULL), 2);
  assert_int_equal(run(f, NULL, "bogus", NULL), 2);
  assert_string_equal(f->err, "runnelctl: unknown command \"bogus\" (see --help)\n");
  assert_int_equal(run(f, NULL, "stream", "create", "x", NULL), 2);
  assert_int_equal(run(f, NULL, "stream", "create", "x", "--shards", "2", "--retention", "3 days", NULL), 2);
  assert_non_null(strstr(f->err, "--retention: \"3 days\": unknown duration unit"));
  assert_int_equal(run(f, NULL, "stream", "create", "x", "--shards", "2", "--bogus", NULL), 2);
  assert_int_equal(run(f, NULL, "consume", "s", "--from", "yesterday", NULL), 2);
  assert_int_equal(run(f, NULL, "consume", "s", "--follow=yes", NULL), 2);
  assert_int_equal(run(f, NULL, "stream", "set-retention", "s", NULL), 2);
  assert_int_equal(run(f, NULL, "stream", "frobnicate", NULL), 2);
}

/* Issue 10, defect 2: a failed write to stdout is a failure, with the
 * reason in one line (before: exit 0, everything lost silently). */
static void test_failed_writes(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "w", 2);
  assert_int_equal(run(f, "a\nb\nc\n", "produce", "w", NULL), 0);
  assert_int_equal(run_to(f, "/dev/full", NULL, "consume", "w", NULL), 1);
  assert_string_equal(f->err, "runnelctl: write to standard output failed: No space left on device\n");
  assert_int_equal(run_to(f, "/dev/full", NULL, "--json", "consume", "w", "--follow", "--idle-exit", "30s", NULL), 1);
  assert_string_equal(f->err, "runnelctl: write to standard output failed: No space left on device\n");
  const char *cmds[][4] = {{"stream", "list", NULL}, {"stream", "describe", "w", NULL}, {"offsets", "w", NULL},
                           {"--help", NULL}, {"--version", NULL}, {"completion", "bash", NULL}};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    assert_int_equal(run_to(f, "/dev/full", NULL, cmds[i][0], cmds[i][1], cmds[i][2], cmds[i][3]), 1);
    assert_string_equal(f->err, "runnelctl: write to standard output failed: No space left on device\n");
  }
}

/* Issue 10, defect 7 (and neighbours): say what happened instead of
 * printing nothing with exit 0, and refuse what would be silently changed. */
static void test_no_surprises(void **state) {
  fixture_t *f = *state;
  /* produce to a missing stream with empty input */
  assert_int_equal(run(f, "", "produce", "missing", NULL), 1);
  assert_string_equal(f->err, "runnelctl: stream \"missing\": stream not found (ENOSTREAM)\n");
  mock_create_stream(f->mb, "s", 2);
  assert_int_equal(run(f, "1\n2\n3\n4\n5\n6\n", "produce", "s", "--key", "k", NULL), 0);
  /* an offset past every shard's end names the ends */
  assert_int_equal(run(f, NULL, "consume", "s", "--from", "500", NULL), 1);
  assert_string_equal(f->out, "");
  assert_non_null(strstr(f->err, "offset 500 is past the end of every shard (end offsets: "));
  assert_true(strstr(f->err, "0:6") || strstr(f->err, "1:6"));
  assert_int_equal(count_lines(f->err), 1);
  /* a bare number that looks like a ms timestamp */
  assert_int_equal(run(f, NULL, "consume", "s", "--from", "1714564800000", NULL), 1);
  assert_non_null(strstr(f->err, "offset 1714564800000 is past the end of every shard (end offsets: "));
  assert_non_null(strstr(f->err, "); 1714564800000 looks like a time in ms: write @1714564800000 for a time\n"));
  assert_int_equal(count_lines(f->err), 1);
  assert_int_equal(run(f, NULL, "consume", "s", "--group", "g", "--from", "1714564800000", NULL), 2);
  assert_non_null(strstr(f->err, "write @1714564800000"));
  /* a time after every record: said on stderr, exit 0 */
  assert_int_equal(run(f, NULL, "consume", "s", "--from", "2999-01-01T00:00:00Z", NULL), 0);
  assert_string_equal(f->out, "");
  assert_non_null(strstr(f->err, "no record at or after 2999-01-01T00:00:00.000Z"));
  /* --session-timeout out of range or without a unit: refused, not clamped */
  assert_int_equal(run(f, NULL, "consume", "s", "--group", "g", "--session-timeout", "100ms", NULL), 2);
  assert_non_null(strstr(f->err, "outside the range the broker accepts (500ms to 10m)"));
  assert_int_equal(run(f, NULL, "consume", "s", "--group", "g", "--session-timeout", "1h", NULL), 2);
  assert_non_null(strstr(f->err, "500ms to 10m"));
  assert_int_equal(run(f, NULL, "consume", "s", "--group", "g", "--session-timeout", "10000", NULL), 2);
  assert_non_null(strstr(f->err, "has no unit (write 10000ms or 10000s"));
  /* retention: 0 is refused; sizes are binary, KB refused */
  assert_int_equal(run(f, NULL, "stream", "create", "r", "--shards", "1", "--retention", "0", NULL), 2);
  assert_non_null(strstr(f->err, "0 is not a retention; write forever"));
  assert_int_equal(run(f, NULL, "stream", "create", "r", "--shards", "1", "--retention", "0s", NULL), 2);
  assert_non_null(strstr(f->err, "write forever"));
  assert_int_equal(run(f, NULL, "stream", "create", "r", "--shards", "1", "--retention-bytes", "10KB", NULL), 2);
  assert_non_null(strstr(f->err, "write 10KiB"));
  assert_int_equal(run(f, NULL, "stream", "create", "r", "--shards", "1", "--retention", "forever",
                       "--retention-bytes", "10G", NULL),
                   0);
  assert_int_equal(run(f, NULL, "--json", "stream", "describe", "r", NULL), 0);
  json_error_t je;
  json_t *doc = json_loads(f->out, 0, &je);
  assert_non_null(doc);
  assert_int_equal(json_integer_value(json_object_get(doc, "retention_bytes")), 10737418240LL);
  assert_int_equal(json_integer_value(json_object_get(doc, "retention_ms")), -1); /* forever is sent as -1 */
  json_decref(doc);
  assert_int_equal(run(f, NULL, "stream", "create", "r2", "--shards", "1", NULL), 0);
  assert_int_equal(run(f, NULL, "--json", "stream", "describe", "r2", NULL), 0);
  doc = json_loads(f->out, 0, &je);
  assert_int_equal(json_integer_value(json_object_get(doc, "retention_ms")), 0); /* 0 = the broker's default */
  json_decref(doc);
}

static void test_produce_consume_features(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "p", 3);
  /* --key-delimiter and headers; records of one key stay in order in one shard */
  assert_int_equal(run(f, "u1:one\nu1:two\nnodelim\nu1:three\n", "produce", "p", "--key-delimiter", ":", "-H",
                       "source=test", "--header", "v=2", NULL),
                   1);
  assert_non_null(strstr(f->err, "runnelctl: line 3: no key delimiter \":\"\n"));
  assert_non_null(strstr(f->err, "produced 3 records (11B) to p: 1 shard, 1 failed, "));
  assert_int_equal(run(f, NULL, "consume", "p", "--format", "%k=%v@%o [%h]\\n", NULL), 0);
  assert_string_equal(f->out, "u1=one@0 [source=test,v=2]\nu1=two@1 [source=test,v=2]\nu1=three@2 [source=test,v=2]\n");
  assert_int_equal(run(f, NULL, "--json", "consume", "p", "--max", "1", NULL), 0);
  json_error_t je;
  json_t *doc = json_loads(f->out, 0, &je);
  assert_non_null(doc);
  assert_string_equal(json_string_value(json_object_get(doc, "key")), "u1");
  assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "headers"), "source")), "test");
  assert_true(json_is_integer(json_object_get(doc, "timestamp_ms")));
  assert_string_equal(json_string_value(json_object_get(doc, "shard_id")),
                      json_string_value(json_object_get(doc, "shard_id"))); /* present */
  json_decref(doc);
  /* --tail N: the last N of each shard; --to OFFSET: stop before it */
  assert_int_equal(run(f, NULL, "consume", "p", "--tail", "2", NULL), 0);
  assert_string_equal(f->out, "two\nthree\n");
  assert_int_equal(run(f, NULL, "consume", "p", "--to", "1", NULL), 0);
  assert_string_equal(f->out, "one\n");
  assert_int_equal(run(f, NULL, "consume", "p", "--from", "-1h", "--to", "2999-01-01", NULL), 0);
  assert_string_equal(f->out, "one\ntwo\nthree\n");
  assert_int_equal(run(f, NULL, "consume", "p", "--to", "-1h", NULL), 0); /* every record is younger */
  assert_string_equal(f->out, "");
  assert_int_equal(run(f, NULL, "consume", "p", "--follow", "--to", "2999-01-01", "--idle-exit", "200ms", NULL), 0);
  assert_string_equal(f->out, "one\ntwo\nthree\n");
  /* --follow --idle-exit: exit 0 once nothing came for that long */
  assert_int_equal(run(f, NULL, "consume", "p", "--follow", "--idle-exit", "200ms", NULL), 0);
  assert_int_equal(count_lines(f->out), 3);
  /* --file: the whole file is one record */
  char path[] = "/tmp/runnelctl-file-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "line1\nline2\n", 12), 12);
  close(fd);
  assert_int_equal(run(f, NULL, "produce", "p", "--file", path, "--key", "u1", NULL), 0);
  unlink(path);
  assert_int_equal(run(f, NULL, "consume", "p", "--tail", "1", "--format", "[%v]", NULL), 0);
  assert_string_equal(f->out, "[line1\nline2\n]");
  /* usage errors */
  assert_int_equal(run(f, NULL, "produce", "p", "-H", "novalue", NULL), 2);
  assert_int_equal(run(f, NULL, "produce", "p", "--key", "a", "--key-field", "b", NULL), 2);
  assert_int_equal(run(f, NULL, "consume", "p", "--idle-exit", "1s", NULL), 2);
  assert_int_equal(run(f, NULL, "consume", "p", "--tail", "1", "--from", "earliest", NULL), 2);
}

/* --help, the man page and the completion come from one table. */
static void test_generated_docs(void **state) {
  fixture_t *f = *state;
  assert_int_equal(run(f, NULL, "--version", NULL), 0);
  assert_true(strncmp(f->out, "runnelctl ", 10) == 0);
  assert_int_equal(run(f, NULL, "--print-man", NULL), 0);
  assert_non_null(strstr(f->out, ".TH RUNNELCTL 1"));
  assert_non_null(strstr(f->out, ".SS \"group reset STREAM GROUP [options]\""));
  assert_non_null(strstr(f->out, "\\fB\\-\\-execute\\fR"));
  assert_int_equal(run(f, NULL, "completion", "bash", NULL), 0);
  assert_non_null(strstr(f->out, "complete -F _runnelctl runnelctl"));
  assert_non_null(strstr(f->out, "reset) words=\" --to --shift-by --shard --execute --create --help\""));
  assert_int_equal(run(f, NULL, "completion", "fish", NULL), 2);
  /* every command's options appear in its help, its man section and its completion */
  for (size_t i = 0; i < ctl_ncmds; i++) {
    const ctl_cmd_t *cmd = &ctl_cmds[i];
    char *help = NULL;
    if (cmd->verb)
      assert_int_equal(run(f, NULL, cmd->noun, cmd->verb, "--help", NULL), 0);
    else
      assert_int_equal(run(f, NULL, cmd->noun, "--help", NULL), 0);
    help = strdup(f->out);
    for (const ctl_opt_t *o = cmd->opts; o && o->name; o++) assert_non_null(strstr(help, o->name));
    free(help);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_formats),
      cmocka_unit_test(test_iso8601_and_from),
      cmocka_unit_test(test_key_field),
      cmocka_unit_test_setup_teardown(test_stream_commands, setup, teardown),
      cmocka_unit_test_setup_teardown(test_produce_consume_offsets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_help_and_usage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_writes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_surprises, setup, teardown),
      cmocka_unit_test_setup_teardown(test_produce_consume_features, setup, teardown),
      cmocka_unit_test_setup_teardown(test_generated_docs, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
