/*
 * test_config.c — runneld's config table (broker/config.h): defaults, YAML
 * parsing (values, sizes, comments, nulls), every kind of error with the
 * message shape users see, flags overriding the file whatever their order,
 * --set, actions (--help, --print-config-reference), the cross-key checks,
 * and that the generated reference and help mention every key in the table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "testutil.h"

static const char *const keys[] = {
#define KEY(name, type, dflt, min, max, choices, flag, doc) #name,
    RN_CONFIG_TABLE(KEY)
#undef KEY
};
#define NKEYS (sizeof keys / sizeof keys[0])

static rn_err_t load(rn_config_t *cfg, const char *yaml, char *why, size_t whylen) {
  return rn_config_load_yaml(cfg, yaml, strlen(yaml), "test.yaml", why, whylen);
}

static void test_defaults(void **state) {
  (void)state;
  rn_config_t cfg;
  rn_config_init(&cfg);
  assert_string_equal(cfg.data_dir, "./data");
  assert_string_equal(cfg.listen, "127.0.0.1:7400");
  assert_string_equal(cfg.http_listen, "127.0.0.1:7480");
  assert_string_equal(cfg.port_file, "");
  assert_int_equal(cfg.log_level, 1); /* info */
  assert_int_equal(cfg.io_backend, 0); /* auto */
  assert_int_equal(cfg.max_frame_bytes, 16u << 20);
  assert_int_equal(cfg.max_record_bytes, 1u << 20);
  assert_int_equal(cfg.max_batch_bytes, 8u << 20);
  assert_int_equal(cfg.max_fetch_bytes, 16u << 20);
  assert_int_equal(cfg.max_wait_ms, 30000);
  assert_int_equal(cfg.idle_timeout_ms, 600000);
  assert_int_equal(cfg.max_connections, 10000);
  assert_int_equal(cfg.max_inflight_per_connection, 1024);
  assert_int_equal(cfg.segment_bytes, 256ull << 20);
  assert_int_equal(cfg.interval_ms, 1000);
  assert_int_equal(cfg.max_shards, 1024);
  char why[256];
  assert_int_equal(rn_config_check(&cfg, why, sizeof why), 0);
  rn_config_free(&cfg);
  rn_config_free(NULL);
}

static void test_yaml_values(void **state) {
  (void)state;
  rn_config_t cfg;
  rn_config_init(&cfg);
  char why[512] = "";
  const char *yaml = "# a comment\n"
                     "data_dir: /var/lib/runnel\n"
                     "listen: \"[::1]:9000\"\n"
                     "http_listen: 0.0.0.0:0\n"
                     "log_level: debug   # trailing comment\n"
                     "io_backend: posix\n"
                     "max_record_bytes: 2MiB\n"
                     "max_batch_bytes: '4194304'\n"
                     "segment_bytes: 1GiB\n"
                     "max_wait_ms: 0\n"
                     "port_file:\n";
  assert_int_equal(load(&cfg, yaml, why, sizeof why), 0);
  assert_string_equal(cfg.data_dir, "/var/lib/runnel");
  assert_string_equal(cfg.listen, "[::1]:9000");
  assert_string_equal(cfg.http_listen, "0.0.0.0:0");
  assert_int_equal(cfg.log_level, 0);
  assert_int_equal(cfg.io_backend, 2);
  assert_int_equal(cfg.max_record_bytes, 2u << 20);
  assert_int_equal(cfg.max_batch_bytes, 4u << 20);
  assert_int_equal(cfg.segment_bytes, 1ull << 30);
  assert_int_equal(cfg.max_wait_ms, 0);
  assert_string_equal(cfg.port_file, "");
  /* Untouched keys keep their defaults. */
  assert_int_equal(cfg.max_frame_bytes, 16u << 20);
  rn_config_free(&cfg);
}

static void test_yaml_empty(void **state) {
  (void)state;
  rn_config_t cfg;
  rn_config_init(&cfg);
  char why[256];
  assert_int_equal(load(&cfg, "", why, sizeof why), 0);
  assert_int_equal(load(&cfg, "# only a comment\n", why, sizeof why), 0);
  assert_string_equal(cfg.data_dir, "./data");
  rn_config_free(&cfg);
}

/* Load yaml into a fresh config; expect rc and a message containing want. */
static void expect_yaml_error(const char *yaml, rn_err_t rc, const char *want) {
  rn_config_t cfg;
  rn_config_init(&cfg);
  char why[512] = "";
  assert_int_equal(load(&cfg, yaml, why, sizeof why), rc);
  if (strstr(why, want) == NULL) fail_msg("message '%s' lacks '%s'", why, want);
  assert_null(strchr(why, '\n')); /* one line */
  rn_config_free(&cfg);
}

static void test_yaml_errors(void **state) {
  (void)state;
  expect_yaml_error("max_record_bytes: 5\n", RN_EINVAL,
                    "config: max_record_bytes: must be between 1024 and 67108864, got 5");
  expect_yaml_error("data_dir: x\nmax_record_bytes: 5\n", RN_EINVAL, "test.yaml:2");
  expect_yaml_error("max_record_bytes: 128GiB\n", RN_EINVAL, "must be between 1024 and 67108864");
  expect_yaml_error("max_record_bytes: lots\n", RN_EINVAL, "config: max_record_bytes: must be a byte count");
  expect_yaml_error("max_record_bytes: -1\n", RN_EINVAL, "must be a byte count");
  expect_yaml_error("max_record_bytes: 1MB\n", RN_EINVAL, "must be a byte count");
  expect_yaml_error("max_wait_ms: 1KiB\n", RN_EINVAL, "config: max_wait_ms: must be a duration (e.g. 500ms");
  expect_yaml_error("max_wait_ms: 99999999999999999999999\n", RN_EINVAL, "must be a duration");
  expect_yaml_error("log_level: loud\n", RN_EINVAL, "config: log_level: must be one of debug|info|warn|error, got 'loud'");
  expect_yaml_error("listen: 7400\n", RN_EINVAL, "config: listen: must be HOST:PORT");
  expect_yaml_error("listen: 127.0.0.1:70000\n", RN_EINVAL, "config: listen: must be HOST:PORT");
  expect_yaml_error("listen: ::1:7400\n", RN_EINVAL, "config: listen: must be HOST:PORT");
  expect_yaml_error("data_dir: ''\n", RN_EINVAL, "config: data_dir: must not be empty");
  expect_yaml_error("max_wait_ms:\n", RN_EINVAL, "config: max_wait_ms: needs a value");
  expect_yaml_error("nope: 1\n", RN_ENOENT, "config: unknown key 'nope'");
  expect_yaml_error("max_recrd_bytes: 1\n", RN_ENOENT, "did you mean 'max_record_bytes'?");
  expect_yaml_error("max_wait_ms: 1\nmax_wait_ms: 2\n", RN_EINVAL, "config: max_wait_ms: set twice");
  expect_yaml_error("max_wait_ms: [1, 2]\n", RN_EINVAL, "config: max_wait_ms: must be a single value");
  expect_yaml_error("max_wait_ms: {a: 1}\n", RN_EINVAL, "must be a single value");
  expect_yaml_error("- a\n- b\n", RN_EFORMAT, "top level must be a mapping");
  expect_yaml_error("just a string\n", RN_EFORMAT, "top level must be a mapping");
  expect_yaml_error("a: [\n", RN_EFORMAT, "not valid YAML");
}

static void test_set_failure_leaves_value(void **state) {
  (void)state;
  rn_config_t cfg;
  rn_config_init(&cfg);
  char why[256];
  assert_int_equal(rn_config_set(&cfg, "max_wait_ms", "5", NULL, why, sizeof why), 0);
  assert_int_equal(rn_config_set(&cfg, "max_wait_ms", "abc", NULL, why, sizeof why), RN_EINVAL);
  assert_int_equal(cfg.max_wait_ms, 5);
  assert_int_equal(rn_config_set(&cfg, "data_dir", "", "from here", why, sizeof why), RN_EINVAL);
  assert_string_equal(cfg.data_dir, "./data");
  assert_non_null(strstr(why, "(from here)"));
  /* why may be NULL. */
  assert_int_equal(rn_config_set(&cfg, "nope", "1", NULL, NULL, 0), RN_ENOENT);
  rn_config_free(&cfg);
}

static void test_cross_checks(void **state) {
  (void)state;
  rn_config_t cfg;
  rn_config_init(&cfg);
  char why[256] = "";
  assert_int_equal(load(&cfg, "max_record_bytes: 16MiB\nmax_batch_bytes: 8MiB\n", why, sizeof why), 0);
  assert_int_equal(rn_config_check(&cfg, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "max_record_bytes"));
  rn_config_free(&cfg);
  rn_config_init(&cfg);
  assert_int_equal(load(&cfg, "max_batch_bytes: 16MiB\n", why, sizeof why), 0);
  assert_int_equal(rn_config_check(&cfg, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "max_frame_bytes"));
  rn_config_free(&cfg);
}

/* Write text to a new file in dir; returns its malloc'd path. */
static char *write_file(const char *dir, const char *name, const char *text) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *path = malloc(n);
  assert_non_null(path);
  snprintf(path, n, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
  return path;
}

static void test_flags_override_file(void **state) {
  (void)state;
  char *dir = rn_test_tmpdir();
  char *path = write_file(dir, "runneld.yaml",
                          "data_dir: /from/file\n"
                          "listen: 127.0.0.1:1111\n"
                          "max_wait_ms: 100\n"
                          "max_shards: 7\n");
  rn_config_t cfg;
  rn_config_init(&cfg);
  char why[512] = "";
  rn_config_action_t action;
  /* Flags before --config still win: the file is applied first. */
  char *argv[] = {(char *)"runneld", (char *)"--data-dir", (char *)"/from/flag", (char *)"--set",
                  (char *)"max_wait_ms=200", (char *)"--config", path, (char *)"--http=127.0.0.1:0",
                  (char *)"--listen", (char *)"127.0.0.1:0", (char *)"--port-file", (char *)"/tmp/p",
                  (char *)"--log-level", (char *)"warn"};
  int argc = (int)(sizeof argv / sizeof argv[0]);
  assert_int_equal(rn_config_from_args(&cfg, argc, argv, &action, why, sizeof why), 0);
  assert_int_equal(action, RN_CONFIG_RUN);
  assert_string_equal(cfg.data_dir, "/from/flag");
  assert_string_equal(cfg.listen, "127.0.0.1:0");
  assert_string_equal(cfg.http_listen, "127.0.0.1:0");
  assert_string_equal(cfg.port_file, "/tmp/p");
  assert_int_equal(cfg.log_level, 2);
  assert_int_equal(cfg.max_wait_ms, 200);
  assert_int_equal(cfg.max_shards, 7); /* from the file, no flag */
  rn_config_free(&cfg);

  /* Later flags win over earlier ones. */
  rn_config_init(&cfg);
  char *argv2[] = {(char *)"runneld", (char *)"--set", (char *)"max_shards=3", (char *)"--set",
                   (char *)"max_shards=4"};
  assert_int_equal(rn_config_from_args(&cfg, 5, argv2, &action, why, sizeof why), 0);
  assert_int_equal(cfg.max_shards, 4);
  rn_config_free(&cfg);

  unlink(path);
  free(path);
  rn_test_rmtree(dir);
  free(dir);
}

static void expect_args_error(int argc, char **argv, rn_err_t rc, const char *want) {
  rn_config_t cfg;
  rn_config_init(&cfg);
  char why[512] = "";
  rn_config_action_t action;
  assert_int_equal(rn_config_from_args(&cfg, argc, argv, &action, why, sizeof why), rc);
  if (strstr(why, want) == NULL) fail_msg("message '%s' lacks '%s'", why, want);
  rn_config_free(&cfg);
}

static void test_args_errors(void **state) {
  (void)state;
  char *a1[] = {(char *)"runneld", (char *)"--set", (char *)"max_record_bytes=5"};
  expect_args_error(3, a1, RN_EINVAL, "config: max_record_bytes: must be between 1024 and 67108864, got 5 (from --set)");
  char *a2[] = {(char *)"runneld", (char *)"--bogus"};
  expect_args_error(2, a2, RN_EINVAL, "unknown option '--bogus'");
  char *a3[] = {(char *)"runneld", (char *)"--data-dir"};
  expect_args_error(2, a3, RN_EINVAL, "--data-dir needs a value");
  char *a4[] = {(char *)"runneld", (char *)"--set", (char *)"novalue"};
  expect_args_error(3, a4, RN_EINVAL, "--set needs KEY=VALUE");
  char *a5[] = {(char *)"runneld", (char *)"--set", (char *)"nope=1"};
  expect_args_error(3, a5, RN_ENOENT, "unknown key 'nope'");
  char *a6[] = {(char *)"runneld", (char *)"stray"};
  expect_args_error(2, a6, RN_EINVAL, "unexpected argument 'stray'");
  char *a7[] = {(char *)"runneld", (char *)"--config", (char *)"/nonexistent/runneld.yaml"};
  expect_args_error(3, a7, RN_ENOENT, "cannot open /nonexistent/runneld.yaml");
  char *a8[] = {(char *)"runneld", (char *)"--listen", (char *)"nowhere"};
  expect_args_error(3, a8, RN_EINVAL, "config: listen: must be HOST:PORT");
  char *a9[] = {(char *)"runneld", (char *)"--set", (char *)"max_batch_bytes=32MiB"};
  expect_args_error(3, a9, RN_EINVAL, "must be below max_frame_bytes");
}

static void test_actions(void **state) {
  (void)state;
  rn_config_t cfg;
  rn_config_init(&cfg);
  char why[256];
  rn_config_action_t action;
  /* --help wins even next to invalid settings. */
  char *a1[] = {(char *)"runneld", (char *)"--set", (char *)"max_record_bytes=5", (char *)"--help"};
  assert_int_equal(rn_config_from_args(&cfg, 4, a1, &action, why, sizeof why), 0);
  assert_int_equal(action, RN_CONFIG_HELP);
  char *a2[] = {(char *)"runneld", (char *)"--print-config-reference"};
  assert_int_equal(rn_config_from_args(&cfg, 2, a2, &action, why, sizeof why), 0);
  assert_int_equal(action, RN_CONFIG_REFERENCE);
  char *a3[] = {(char *)"runneld", (char *)"--print-config"};
  assert_int_equal(rn_config_from_args(&cfg, 2, a3, &action, why, sizeof why), 0);
  assert_int_equal(action, RN_CONFIG_PRINT);
  char *a4[] = {(char *)"runneld"};
  assert_int_equal(rn_config_from_args(&cfg, 1, a4, &action, why, sizeof why), 0);
  assert_int_equal(action, RN_CONFIG_RUN);
  rn_config_free(&cfg);
}

/* Run print(out) into a malloc'd string. */
static char *capture(void (*print)(FILE *, const void *), const void *arg) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  print(f, arg);
  assert_int_equal(fclose(f), 0);
  return buf;
}

static void print_reference(FILE *f, const void *arg) {
  (void)arg;
  rn_config_print_reference(f);
}
static void print_help(FILE *f, const void *arg) {
  (void)arg;
  rn_config_print_help(f, "runneld");
}
static void print_config(FILE *f, const void *arg) { rn_config_print(f, arg); }

static void test_reference_and_help_cover_every_key(void **state) {
  (void)state;
  char *ref = capture(print_reference, NULL);
  char *help = capture(print_help, NULL);
  for (size_t i = 0; i < NKEYS; i++) {
    char heading[128], row[128];
    snprintf(heading, sizeof heading, "\n## %s\n", keys[i]);
    snprintf(row, sizeof row, "| [`%s`](#%s) |", keys[i], keys[i]);
    if (strstr(ref, heading) == NULL) fail_msg("reference lacks a section for %s", keys[i]);
    if (strstr(ref, row) == NULL) fail_msg("reference table lacks %s", keys[i]);
    if (strstr(help, keys[i]) == NULL) fail_msg("--help lacks %s", keys[i]);
  }
  assert_non_null(strstr(ref, "# Configuration reference"));
  assert_non_null(strstr(help, "--config FILE"));
  assert_non_null(strstr(help, "--set KEY=VALUE"));
  free(ref);
  free(help);
}

static void test_print_round_trips(void **state) {
  (void)state;
  rn_config_t a, b;
  rn_config_init(&a);
  rn_config_init(&b);
  char why[256] = "";
  assert_int_equal(load(&a,
                        "data_dir: \"/tmp/with \\\"quotes\\\" and \\\\ slash\"\n"
                        "listen: '[::1]:0'\n"
                        "log_level: error\n"
                        "max_fetch_bytes: 3MiB\n"
                        "port_file: /tmp/ports\n",
                        why, sizeof why),
                   0);
  char *text = capture(print_config, &a);
  assert_int_equal(load(&b, text, why, sizeof why), 0);
  assert_string_equal(a.data_dir, b.data_dir);
  assert_string_equal(a.listen, b.listen);
  assert_string_equal(a.http_listen, b.http_listen);
  assert_string_equal(a.port_file, b.port_file);
  assert_int_equal(a.log_level, b.log_level);
  assert_int_equal(a.max_fetch_bytes, b.max_fetch_bytes);
  assert_int_equal(a.segment_bytes, b.segment_bytes);
  assert_string_equal(b.data_dir, "/tmp/with \"quotes\" and \\ slash");
  free(text);
  rn_config_free(&a);
  rn_config_free(&b);
}

static void test_split_addr(void **state) {
  (void)state;
  char host[64];
  uint16_t port;
  assert_int_equal(rn_config_split_addr("127.0.0.1:7400", host, sizeof host, &port), 0);
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(port, 7400);
  assert_int_equal(rn_config_split_addr("[::1]:0", host, sizeof host, &port), 0);
  assert_string_equal(host, "::1");
  assert_int_equal(port, 0);
  assert_int_equal(rn_config_split_addr("localhost:65535", host, sizeof host, &port), 0);
  assert_string_equal(host, "localhost");
  assert_int_equal(port, 65535);
  assert_int_equal(rn_config_split_addr("localhost:65536", host, sizeof host, &port), RN_EINVAL);
  assert_int_equal(rn_config_split_addr(":7400", host, sizeof host, &port), RN_EINVAL);
  assert_int_equal(rn_config_split_addr("host:", host, sizeof host, &port), RN_EINVAL);
  assert_int_equal(rn_config_split_addr("host", host, sizeof host, &port), RN_EINVAL);
  assert_int_equal(rn_config_split_addr("[]:1", host, sizeof host, &port), RN_EINVAL);
  assert_int_equal(rn_config_split_addr("a b:1", host, sizeof host, &port), RN_EINVAL);
  assert_int_equal(rn_config_split_addr("host:+1", host, sizeof host, &port), RN_EINVAL);
  assert_int_equal(rn_config_split_addr("averylonghostname:1", host, 5, &port), RN_EINVAL);
}


/* One syntax for sizes: binary suffixes with or without "iB", decimal-looking
 * units refused. Durations with units; a bare number is milliseconds. */
static void test_units(void **state) {
  (void)state;
  rn_config_t cfg;
  rn_config_init(&cfg);
  char why[512] = "";
  const struct {
    const char *text;
    uint64_t want;
  } sizes[] = {{"10GiB", 10ull << 30}, {"10G", 10ull << 30}, {"10Gi", 10ull << 30}, {"64K", 64 << 10},
               {"2MiB", 2 << 20},      {"32G", 32ull << 30},   {"65536", 65536}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    assert_int_equal(rn_config_set(&cfg, "segment_bytes", sizes[i].text, NULL, why, sizeof why), 0);
    assert_int_equal(cfg.segment_bytes, sizes[i].want);
  }
  const char *bad_sizes[] = {"10GB", "10gb", "10 G", "10g", "10KB", "G", "10GiBs", "-1"};
  for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++)
    assert_int_equal(rn_config_set(&cfg, "segment_bytes", bad_sizes[i], NULL, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "must be a byte count"));

  const struct {
    const char *text;
    uint32_t want;
  } durs[] = {{"500ms", 500}, {"30s", 30000}, {"5m", 300000}, {"1h", 3600000}, {"250", 250}};
  for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++) {
    assert_int_equal(rn_config_set(&cfg, "max_wait_ms", durs[i].text, NULL, why, sizeof why), 0);
    assert_int_equal(cfg.max_wait_ms, durs[i].want);
  }
  assert_int_equal(rn_config_set(&cfg, "max_wait_ms", "2h", NULL, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "must be between 0 and 1h"));
  assert_int_equal(rn_config_set(&cfg, "max_wait_ms", "5 s", NULL, why, sizeof why), RN_EINVAL);
  assert_int_equal(rn_config_set(&cfg, "max_wait_ms", "1.5s", NULL, why, sizeof why), RN_EINVAL);
  rn_config_free(&cfg);
}

/* default_retention: 24 h, `forever` as a word, 0 refused with a hint. */
static void test_default_retention(void **state) {
  (void)state;
  rn_config_t cfg;
  rn_config_init(&cfg);
  char why[512] = "";
  assert_int_equal(cfg.default_retention, 24ll * 3600 * 1000);
  assert_int_equal(rn_config_set(&cfg, "default_retention", "7d", NULL, why, sizeof why), 0);
  assert_int_equal(cfg.default_retention, 7ll * 86400 * 1000);
  assert_int_equal(rn_config_set(&cfg, "default_retention", "forever", NULL, why, sizeof why), 0);
  assert_int_equal(cfg.default_retention, -1);
  assert_int_equal(rn_config_set(&cfg, "default_retention", "0", NULL, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "write `forever`"));
  assert_int_equal(cfg.default_retention, -1); /* unchanged */
  assert_int_equal(rn_config_set(&cfg, "default_retention", "10s", NULL, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "must be between 1m and"));
  char *text = capture(print_config, &cfg);
  assert_non_null(strstr(text, "default_retention: forever\n"));
  free(text);
  rn_config_free(&cfg);
}

/* Tiered storage (issue 13): the s3_* and tier_* keys, their defaults and
 * bounds, default_local_retention's unset state, the cross-key checks (one
 * store, s3_* only with a bucket), and --tier-dir. */
static void test_tiering_keys(void **state) {
  (void)state;
  rn_config_t cfg;
  rn_config_init(&cfg);
  char why[512] = "";
  assert_string_equal(cfg.s3_bucket, "");
  assert_string_equal(cfg.s3_endpoint, "");
  assert_string_equal(cfg.s3_region, "us-east-1");
  assert_string_equal(cfg.s3_prefix, "");
  assert_int_equal(cfg.s3_path_style, RN_S3_PATH_AUTO);
  assert_string_equal(cfg.tier_dir, "");
  assert_int_equal(cfg.tier_upload_concurrency, 4);
  assert_int_equal(cfg.tier_upload_bandwidth, 0);
  assert_int_equal(cfg.tier_cache_bytes, 256ull << 20);
  assert_int_equal(cfg.tier_chunk_bytes, 4u << 20);
  assert_int_equal(cfg.tier_readahead_chunks, 4);
  assert_int_equal(cfg.tier_gc_grace, 3600000);
  assert_int_equal(cfg.tier_gc_interval, 600000);
  assert_int_equal(cfg.tier_request_timeout, 30000);
  assert_int_equal(cfg.tier_disk_high_water, 90);
  assert_int_equal(cfg.default_local_retention, 0); /* unset: Kinesis streams are not tiered */

  assert_int_equal(load(&cfg,
                        "s3_bucket: runnel-archive\n"
                        "s3_endpoint: http://127.0.0.1:9000\n"
                        "s3_region: eu-west-1\n"
                        "s3_prefix: prod/a\n"
                        "s3_path_style: \"false\"\n"
                        "tier_upload_concurrency: 8\n"
                        "tier_upload_bandwidth: 50MiB\n"
                        "tier_cache_bytes: 1GiB\n"
                        "tier_chunk_bytes: 64KiB\n"
                        "tier_readahead_chunks: 0\n"
                        "tier_gc_grace: 1s\n"
                        "tier_gc_interval: 0\n"
                        "tier_request_timeout: 2s\n"
                        "tier_disk_high_water: 100\n"
                        "default_local_retention: 6h\n",
                        why, sizeof why),
                   0);
  assert_string_equal(cfg.s3_bucket, "runnel-archive");
  assert_string_equal(cfg.s3_region, "eu-west-1");
  assert_int_equal(cfg.s3_path_style, RN_S3_PATH_FALSE);
  assert_int_equal(cfg.tier_upload_bandwidth, 50ull << 20);
  assert_int_equal(cfg.tier_chunk_bytes, 64u << 10);
  assert_int_equal(cfg.tier_gc_grace, 1000);
  assert_int_equal(cfg.tier_gc_interval, 0);
  assert_int_equal(cfg.tier_disk_high_water, 100);
  assert_int_equal(cfg.default_local_retention, 6ll * 3600 * 1000);
  assert_int_equal(rn_config_check(&cfg, why, sizeof why), 0);
  /* default_local_retention needs a store. */
  assert_int_equal(rn_config_set(&cfg, "s3_bucket", "", NULL, why, sizeof why), 0);
  assert_int_equal(rn_config_set(&cfg, "s3_endpoint", "", NULL, why, sizeof why), 0);
  assert_int_equal(rn_config_set(&cfg, "s3_prefix", "", NULL, why, sizeof why), 0);
  assert_int_equal(rn_config_check(&cfg, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "default_local_retention is set but there is no store"));
  assert_int_equal(rn_config_set(&cfg, "s3_bucket", "runnel-archive", NULL, why, sizeof why), 0);
  assert_int_equal(rn_config_set(&cfg, "s3_endpoint", "http://127.0.0.1:9000", NULL, why, sizeof why), 0);
  assert_int_equal(rn_config_set(&cfg, "s3_prefix", "prod/a", NULL, why, sizeof why), 0);

  /* Printed back, it loads to the same values (unset included). */
  char *text = capture(print_config, &cfg);
  assert_non_null(strstr(text, "default_local_retention: 6h\n"));
  rn_config_t b;
  rn_config_init(&b);
  assert_int_equal(load(&b, text, why, sizeof why), 0);
  assert_string_equal(b.s3_prefix, "prod/a");
  assert_int_equal(b.tier_upload_bandwidth, cfg.tier_upload_bandwidth);
  assert_int_equal(b.default_local_retention, cfg.default_local_retention);
  free(text);
  rn_config_free(&b);

  /* default_local_retention: forever, and back to unset (empty or YAML null). */
  assert_int_equal(rn_config_set(&cfg, "default_local_retention", "forever", NULL, why, sizeof why), 0);
  assert_int_equal(cfg.default_local_retention, -1);
  assert_int_equal(rn_config_set(&cfg, "default_local_retention", "", NULL, why, sizeof why), 0);
  assert_int_equal(cfg.default_local_retention, 0);
  assert_int_equal(rn_config_set(&cfg, "default_local_retention", "0", NULL, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "write `forever`"));
  assert_int_equal(load(&cfg, "default_local_retention:\n", why, sizeof why), 0);
  assert_int_equal(cfg.default_local_retention, 0);
  text = capture(print_config, &cfg);
  rn_config_init(&b);
  assert_int_equal(load(&b, text, why, sizeof why), 0);
  assert_int_equal(b.default_local_retention, 0);
  free(text);
  rn_config_free(&b);

  /* Bounds. */
  assert_int_equal(rn_config_set(&cfg, "tier_disk_high_water", "101", NULL, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "tier_disk_high_water: must be between 1 and 100"));
  assert_int_equal(rn_config_set(&cfg, "tier_disk_high_water", "0", NULL, why, sizeof why), RN_EINVAL);
  assert_int_equal(rn_config_set(&cfg, "tier_upload_concurrency", "0", NULL, why, sizeof why), RN_EINVAL);
  assert_int_equal(rn_config_set(&cfg, "tier_chunk_bytes", "1K", NULL, why, sizeof why), RN_EINVAL);
  assert_int_equal(rn_config_set(&cfg, "tier_request_timeout", "0", NULL, why, sizeof why), RN_EINVAL);
  assert_int_equal(rn_config_set(&cfg, "s3_path_style", "yes", NULL, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "auto|true|false"));
  assert_int_equal(rn_config_set(&cfg, "s3_region", "", NULL, why, sizeof why), RN_EINVAL);

  /* One store: s3_bucket and tier_dir are exclusive, with a clear message. */
  assert_int_equal(rn_config_set(&cfg, "tier_dir", "/srv/tier", NULL, why, sizeof why), 0);
  assert_int_equal(rn_config_check(&cfg, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "s3_bucket and tier_dir are exclusive"));
  assert_int_equal(rn_config_set(&cfg, "s3_bucket", "", NULL, why, sizeof why), 0);
  /* s3_prefix without a bucket is a mistake, not silently ignored; the
   * endpoint alone is what archive sinks' s3:// destinations use. */
  assert_int_equal(rn_config_check(&cfg, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "s3_prefix is set but s3_bucket is not"));
  assert_int_equal(rn_config_set(&cfg, "s3_prefix", "", NULL, why, sizeof why), 0);
  assert_int_equal(rn_config_check(&cfg, why, sizeof why), 0);
  /* The cache holds whole chunks. */
  assert_int_equal(rn_config_set(&cfg, "tier_cache_bytes", "64KiB", NULL, why, sizeof why), 0);
  assert_int_equal(rn_config_set(&cfg, "tier_chunk_bytes", "1MiB", NULL, why, sizeof why), 0);
  assert_int_equal(rn_config_check(&cfg, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "tier_chunk_bytes"));
  rn_config_free(&cfg);

  /* --tier-dir is a flag; the help names its value DIR. */
  rn_config_init(&cfg);
  rn_config_action_t action;
  char *argv[] = {(char *)"runneld", (char *)"--tier-dir", (char *)"/tmp/tier", (char *)"--set",
                  (char *)"default_local_retention=30m"};
  assert_int_equal(rn_config_from_args(&cfg, 5, argv, &action, why, sizeof why), 0);
  assert_string_equal(cfg.tier_dir, "/tmp/tier");
  assert_int_equal(cfg.default_local_retention, 30ll * 60 * 1000);
  char *help = capture(print_help, NULL);
  assert_non_null(strstr(help, "--tier-dir DIR"));
  free(help);
  rn_config_free(&cfg);
}

static char *write_secret_file(const char *dir, const char *name, const char *text, mode_t mode) {
  char *path = malloc(strlen(dir) + strlen(name) + 2);
  sprintf(path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(chmod(path, mode), 0);
  return path;
}

/* Secrets come from *_file (permissions checked) or the environment, at
 * most one source each, and are never printed. */
static void test_secrets(void **state) {
  (void)state;
  char dir[] = "/tmp/rn-test-secrets-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char *good = write_secret_file(dir, "creds", "  AKID:hunter2-secret\n", 0600);
  char *open_file = write_secret_file(dir, "open", "AKID:x", 0644);
  char why[512] = "";
  unsetenv("RUNNEL_KINESIS_CREDENTIALS");
  unsetenv("RUNNEL_REST_API_KEYS");

  rn_config_t cfg;
  rn_config_init(&cfg);
  assert_int_equal(rn_config_set(&cfg, "kinesis_credentials_file", good, NULL, why, sizeof why), 0);
  assert_int_equal(rn_config_resolve_secrets(&cfg, why, sizeof why), 0);
  assert_string_equal(cfg.kinesis_credentials, "AKID:hunter2-secret");
  char *text = capture(print_config, &cfg);
  assert_null(strstr(text, "hunter2"));
  assert_non_null(strstr(text, "# kinesis_credentials: (set; redacted)"));
  free(text);
  rn_config_free(&cfg);

  rn_config_init(&cfg);
  assert_int_equal(rn_config_set(&cfg, "kinesis_credentials_file", open_file, NULL, why, sizeof why), 0);
  assert_int_equal(rn_config_resolve_secrets(&cfg, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "permissions 644"));
  assert_non_null(strstr(why, "chmod 600"));
  rn_config_free(&cfg);

  setenv("RUNNEL_REST_API_KEYS", "k1:*", 1);
  rn_config_init(&cfg);
  assert_int_equal(rn_config_resolve_secrets(&cfg, why, sizeof why), 0);
  assert_string_equal(cfg.rest_api_keys, "k1:*");
  rn_config_free(&cfg);

  rn_config_init(&cfg);
  assert_int_equal(rn_config_set(&cfg, "rest_api_keys", "k2:*", NULL, why, sizeof why), 0);
  assert_int_equal(rn_config_resolve_secrets(&cfg, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "rest_api_keys is given more than once (rest_api_keys, $RUNNEL_REST_API_KEYS)"));
  assert_null(strstr(why, "k2"));
  rn_config_free(&cfg);
  unsetenv("RUNNEL_REST_API_KEYS");

  unlink(good);
  unlink(open_file);
  free(good);
  free(open_file);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_yaml_values),
      cmocka_unit_test(test_yaml_empty),
      cmocka_unit_test(test_yaml_errors),
      cmocka_unit_test(test_set_failure_leaves_value),
      cmocka_unit_test(test_cross_checks),
      cmocka_unit_test(test_flags_override_file),
      cmocka_unit_test(test_args_errors),
      cmocka_unit_test(test_actions),
      cmocka_unit_test(test_reference_and_help_cover_every_key),
      cmocka_unit_test(test_print_round_trips),
      cmocka_unit_test(test_split_addr),
      cmocka_unit_test(test_units),
      cmocka_unit_test(test_default_retention),
      cmocka_unit_test(test_secrets),
      cmocka_unit_test(test_tiering_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
