/*
 * test_broker_fds.c — connections against the open-file limit, on the real
 * runneld started with RLIMIT_NOFILE soft 64, hard 256 (set in the child
 * before exec) and fd_reserve 64:
 *
 *   - at start it raises the soft limit to 256 (else no connection at all
 *     would be accepted with a reserve of 64) and warns that max_connections + http_max_connections +
 *     fd_reserve exceed the limit;
 *   - clients open native connections until one is refused (closed right
 *     after accept); the refusal comes while fd_reserve descriptors are
 *     still free, and is counted in /metrics with reason="fds" (an HTTP
 *     connection is refused the same way);
 *   - with every connection still open, a stream whose segment_bytes is
 *     tiny (and whose retention is forever, so that no rolled segment is
 *     deleted under the read) keeps taking produce requests: its segments
 *     roll (new files) and every record is read back;
 *   - once the connections are closed, new ones are accepted again.
 *
 * A broker without the reserve lets sockets take every descriptor and the
 * next segment roll fails with EMFILE: the produce step fails.
 * Synchronisation by answers and /metrics, never by time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpclient.h"
#include "itest.h"

#define NOFILE 256
#define MAX_TRIES 1000 /* connections the test tries before giving up */
#define BATCHES 40
#define VALUE_BYTES 8000 /* 40 batches of ~8 KB over 64 KiB segments: several rolls */

static int setup(void **state) {
  static const char *const args[] = {"--set", "fd_reserve=64", "--set", "segment_bytes=65536", NULL};
  rn_test_broker_set_nofile(64, NOFILE); /* runneld raises the soft limit to the hard one */
  int rc = itest_setup_with(state, args);
  rn_test_broker_set_nofile(0, 0);
  return rc;
}


/* Whether a fresh connection is served: one ListStreams answered. */
static bool served(rn_raw_t *c, uint16_t port) {
  if (rn_raw_connect(c, port) != 0) return false;
  Runnel__Response *r = rn_raw_list(c);
  bool ok = r != NULL && r->error == NULL;
  rn_raw_free(r);
  return ok;
}

static bool log_has(const char *path, const char *what) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return false;
  char line[2048];
  bool found = false;
  while (!found && fgets(line, sizeof line, f)) found = strstr(line, what) != NULL;
  fclose(f);
  return found;
}

/* The metric's value (rn_hc_metric); the request itself must succeed. */
static long long metric(rn_hc_t *c, const char *name) {
  long long v = rn_hc_metric(c, name);
  assert_true(v != -2);
  return v;
}

static void test_fd_reserve(void **state) {
  rn_raw_env_t *env = *state;
  assert_true(log_has(env->broker.log_path, "open-file limit raised from 64 to the hard limit 256"));
  assert_true(log_has(env->broker.log_path, "exceeds the open-file limit 256"));
  rn_hc_t m;
  assert_int_equal(rn_hc_connect(&m, env->broker.http_port), 0);
  assert_int_equal(metric(&m, "runnel_connections_refused_total{port=\"native\",reason=\"fds\"}"), 0);
  itest_create(&env->c, "rolls", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  /* Keep "rolls" forever. Its records carry timestamps 100..139 ms after
   * the epoch; under the default retention (1 d) each segment that rolls
   * and is sealed is older than that, and the engine's once-a-second tick
   * deletes it by time retention (docs/storage.md "Retention"). A tick that
   * fell between the rolls and the read below removed the first segments:
   * the read from EARLIEST then began at 8, 16, ... ("24 of 40"), or a page
   * of it asked for an offset just deleted (RN_EOFFSET). Nothing in this
   * test is about retention. */
  Runnel__Response *ret = rn_raw_set_retention(&env->c, "rolls", -1, 0);
  assert_rn_ok(ret, RUNNEL__RESPONSE__OP_SET_RETENTION);
  assert_true(ret->set_retention->stream->config->retention_ms <= 0);
  rn_raw_free(ret);

  /* Fill the descriptor table with connections until one is refused. */
  rn_raw_t *conns = calloc(MAX_TRIES, sizeof *conns);
  assert_non_null(conns);
  int n = 0;
  bool refused = false;
  while (n < MAX_TRIES) {
    if (!served(&conns[n], env->broker.port)) {
      rn_raw_close(&conns[n]);
      refused = true;
      break;
    }
    n++;
  }
  assert_true(refused);
  print_message("  %d connections served, the next refused\n", n);
  assert_true(n > 0 && n < NOFILE - 64);
  assert_true(metric(&m, "runnel_connections_refused_total{port=\"native\",reason=\"fds\"}") >= 1);
  /* The HTTP port refuses the same way. */
  rn_hc_t h;
  assert_int_equal(rn_hc_connect(&h, env->broker.http_port), 0);
  rn_hc_sendf(&h, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); /* may fail: closed */
  rn_hc_resp_t r;
  assert_int_equal(rn_hc_read(&h, &r), -1);
  rn_hc_close(&h);
  assert_true(metric(&m, "runnel_connections_refused_total{port=\"http\",reason=\"fds\"}") >= 1);

  /* Storage still has descriptors: segments roll and every append lands. */
  char *value = malloc(VALUE_BYTES + 1);
  assert_non_null(value);
  for (int i = 0; i < BATCHES; i++) {
    memset(value, 'a' + i % 26, VALUE_BYTES);
    value[VALUE_BYTES] = 0;
    size_t len;
    uint8_t *b = itest_batch1(value, 100 + i, &len);
    assert_int_equal(itest_produce_ok(&env->c, "rolls", 0, b, len), (uint64_t)i);
    free(b);
  }
  free(value);
  rn_raw_records_t recs = {0};
  assert_int_equal(rn_raw_fetch_all(&env->c, "rolls", 0, &recs), 0);
  assert_int_equal(recs.n, BATCHES);
  for (int i = 0; i < BATCHES; i++) {
    assert_int_equal(recs.v[i].offset, (uint64_t)i);
    assert_int_equal(recs.v[i].value_len, VALUE_BYTES);
    assert_int_equal(recs.v[i].value[0], 'a' + i % 26);
  }
  rn_raw_records_free(&recs);

  /* Close them; once the broker has seen the closes, connections are
   * accepted again. */
  for (int i = 0; i < n; i++) rn_raw_close(&conns[i]);
  free(conns);
  while (metric(&m, "runnel_connections{protocol=\"native\"}") != 1) {
  }
  rn_raw_t again;
  assert_true(served(&again, env->broker.port));
  rn_raw_close(&again);
  rn_hc_close(&m);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_fd_reserve, setup, itest_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
