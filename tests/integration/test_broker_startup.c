/*
 * test_broker_startup.c — what the real runneld refuses at start, and that a
 * refused start touches nothing:
 *
 *   - one owner per data directory: a second runneld on a directory a live
 *     broker owns exits 1 with "data directory D is in use by pid N", before
 *     reading or writing anything there; the owner's acknowledged records
 *     are all there after it restarts (before the lock, the second broker
 *     wrote clean-shutdown markers into the live broker's shards);
 *   - listeners are bound before the data directory is touched: a broker
 *     whose port is taken exits without creating its data directory;
 *   - safe defaults: a non-loopback listener without authentication is
 *     refused (native always, HTTP unless both kinds of credentials are
 *     set); `auth: none` lets it start and says so;
 *   - secrets (from the environment or a *_file) never appear in
 *     --print-config or in the log.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"
#include "testutil.h"

static char out[65536];

static int setup(void **state) { return itest_setup_with(state, NULL); }

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return strdup("");
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return strdup(buf);
}

/* Produce n one-record batches to shard 0 of stream; assert every ack. */
static void produce_n(rn_raw_t *c, const char *stream, int n, int first) {
  for (int i = 0; i < n; i++) {
    char v[32];
    snprintf(v, sizeof v, "rec-%d", first + i);
    const char *vals[1] = {v};
    size_t len;
    uint8_t *b = rn_raw_batch_strings(vals, 1, 0, NULL, &len);
    Runnel__Response *r = rn_raw_produce1(c, stream, 0, b, len);
    free(b);
    assert_rn_ok(r, RUNNEL__RESPONSE__OP_PRODUCE);
    assert_rn_error(rn_raw_produce_result(r)->error, RN_OK);
    assert_int_equal(rn_raw_produce_result(r)->base_offset, (uint64_t)(first + i));
    rn_raw_free(r);
  }
}

static void test_second_broker_on_same_dir_refused(void **state) {
  rn_raw_env_t *env = *state;
  Runnel__Response *r = rn_raw_create(&env->c, "owned", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_CREATE_STREAM);
  rn_raw_free(r);
  produce_n(&env->c, "owned", 5, 0);

  /* Different ports, same directory: the lock is what refuses it. */
  const char *args[] = {"--data-dir", env->data_dir, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", NULL};
  int started = 0;
  int st = rn_test_runneld_run(args, out, sizeof out, &started);
  assert_int_equal(started, 0);
  assert_int_equal(st, 1);
  char want[800];
  snprintf(want, sizeof want, "data directory %s is in use by pid %ld", env->data_dir, (long)env->broker.pid);
  if (strstr(out, want) == NULL) fail_msg("refusal lacks '%s':\n%s", want, out);
  assert_null(strstr(out, "starting:")); /* the engine was never opened */

  /* The owner keeps serving, and after a clean restart every record acked
   * before and after the refused start is there, in order. */
  produce_n(&env->c, "owned", 5, 5);
  assert_int_equal(rn_raw_env_stop(env), 0);
  assert_int_equal(rn_raw_env_restart(env), 0);
  rn_raw_records_t recs = {0};
  assert_int_equal(rn_raw_fetch_all(&env->c, "owned", 0, &recs), 0);
  assert_int_equal(recs.n, 10);
  for (size_t i = 0; i < recs.n; i++) {
    char v[32];
    snprintf(v, sizeof v, "rec-%zu", i);
    assert_int_equal(recs.v[i].value_len, strlen(v));
    assert_memory_equal(recs.v[i].value, v, strlen(v));
    assert_int_equal(recs.v[i].offset, i);
  }
  rn_raw_records_free(&recs);
  /* The recovery of the restart found a clean shutdown, not a second writer. */
  char *log = read_file(env->broker.log_path);
  assert_null(strstr(log, "in use by pid"));
  free(log);
}

/* A broker whose native port is taken exits before creating (let alone
 * locking or recovering) its data directory. */
static void test_port_in_use_touches_nothing(void **state) {
  rn_raw_env_t *env = *state;
  char dir[700], listen[64];
  snprintf(dir, sizeof dir, "%s/never-created", env->root);
  snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)env->broker.port);
  const char *args[] = {"--data-dir", dir, "--listen", listen, "--http", "127.0.0.1:0", NULL};
  int st = rn_test_runneld_run(args, out, sizeof out, NULL);
  assert_int_equal(st, 1);
  if (strstr(out, "cannot listen on") == NULL) fail_msg("no listen error:\n%s", out);
  assert_false(exists(dir));

  /* The same with the live broker's own data directory: refused at the
   * port, so not even its LOCK file is opened (its pid is still in it). */
  const char *args2[] = {"--data-dir", env->data_dir, "--listen", listen, "--http", "127.0.0.1:0", NULL};
  st = rn_test_runneld_run(args2, out, sizeof out, NULL);
  assert_int_equal(st, 1);
  assert_non_null(strstr(out, "cannot listen on"));
  assert_null(strstr(out, "in use by pid"));
}

static void expect_refused(const char *dir, const char *const *more, const char *want) {
  const char *args[32];
  int n = 0;
  args[n++] = "--data-dir";
  args[n++] = dir;
  for (int i = 0; more[i] != NULL; i++) args[n++] = more[i];
  args[n] = NULL;
  int started = 0;
  int st = rn_test_runneld_run(args, out, sizeof out, &started);
  assert_int_equal(started, 0);
  assert_int_equal(st, 1);
  if (strstr(out, want) == NULL) fail_msg("refusal lacks '%s':\n%s", want, out);
  assert_false(exists(dir));
}

static void test_non_loopback_needs_auth(void **state) {
  rn_raw_env_t *env = *state;
  char dir[700];
  snprintf(dir, sizeof dir, "%s/exposed", env->root);
  unsetenv("RUNNEL_KINESIS_CREDENTIALS");
  unsetenv("RUNNEL_REST_API_KEYS");

  const char *native[] = {"--listen", "0.0.0.0:0", "--http", "127.0.0.1:0", NULL};
  expect_refused(dir, native, "refusing to listen on the non-loopback address 0.0.0.0:0 (native)");
  const char *http[] = {"--listen", "127.0.0.1:0", "--http", "0.0.0.0:0", NULL};
  expect_refused(dir, http, "refusing to listen on the non-loopback address 0.0.0.0:0 (http) without authentication");
  /* SigV4 credentials alone leave REST ingest open: still refused. */
  const char *half[] = {"--listen", "127.0.0.1:0", "--http", "0.0.0.0:0", "--set", "kinesis_credentials=AK:SK", NULL};
  expect_refused(dir, half, "(http) without authentication");

  /* Both kinds of credentials: the HTTP port may face the network, and no
   * warning claims it has no authentication. */
  setenv("RUNNEL_KINESIS_CREDENTIALS", "AKIDTEST:very-secret-sigv4-key", 1);
  setenv("RUNNEL_REST_API_KEYS", "very-secret-api-key:*", 1);
  rn_test_broker_t b;
  const char *ok[] = {"--http", "0.0.0.0:0", NULL};
  char dir2[700];
  snprintf(dir2, sizeof dir2, "%s/authed", env->root);
  assert_int_equal(rn_test_broker_start(&b, dir2, ok), 0);
  assert_int_equal(rn_test_broker_stop(&b), 0);
  char *log = read_file(b.log_path);
  assert_null(strstr(log, "NO AUTHENTICATION"));
  assert_null(strstr(log, "very-secret")); /* secrets never logged */
  free(log);
  unsetenv("RUNNEL_KINESIS_CREDENTIALS");
  unsetenv("RUNNEL_REST_API_KEYS");

  /* auth: none — the operator's explicit choice: starts, and says so. */
  const char *open_[] = {"--listen", "0.0.0.0:0", "--set", "auth=none", NULL};
  char dir3[700];
  snprintf(dir3, sizeof dir3, "%s/open", env->root);
  assert_int_equal(rn_test_broker_start(&b, dir3, open_), 0);
  assert_int_equal(rn_test_broker_stop(&b), 0);
  log = read_file(b.log_path);
  assert_non_null(strstr(log, "auth: none"));
  assert_non_null(strstr(log, "the native listener on the non-loopback address 0.0.0.0:"));
  assert_null(strstr(log, "the http listener on the non-loopback")); /* http stayed on loopback */
  free(log);
}

static void test_secrets_redacted(void **state) {
  rn_raw_env_t *env = *state;
  char path[700];
  snprintf(path, sizeof path, "%s/creds", env->root);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("AKIDFILE:file-secret-123\n", f);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(chmod(path, 0600), 0);
  setenv("RUNNEL_REST_API_KEYS", "env-secret-456:*", 1);
  char set[800];
  snprintf(set, sizeof set, "kinesis_credentials_file=%s", path);
  const char *args[] = {"--set", set, "--print-config", NULL};
  int st = rn_test_runneld_run(args, out, sizeof out, NULL);
  unsetenv("RUNNEL_REST_API_KEYS");
  assert_int_equal(st, 0);
  assert_null(strstr(out, "file-secret-123"));
  assert_null(strstr(out, "env-secret-456"));
  assert_non_null(strstr(out, "# kinesis_credentials: (set; redacted)"));
  assert_non_null(strstr(out, "# rest_api_keys: (set; redacted)"));

  /* A secret file others can read is refused, naming the fix. */
  assert_int_equal(chmod(path, 0640), 0);
  st = rn_test_runneld_run(args, out, sizeof out, NULL);
  assert_int_equal(st, 2);
  assert_non_null(strstr(out, "chmod 600"));
  assert_null(strstr(out, "file-secret-123"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_second_broker_on_same_dir_refused, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_port_in_use_touches_nothing, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_non_loopback_needs_auth, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_secrets_redacted, setup, itest_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
