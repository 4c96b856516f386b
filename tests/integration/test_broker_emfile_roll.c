/*
 * test_broker_emfile_roll.c — a segment roll that finds no free file
 * descriptor, on the real runneld started with RLIMIT_NOFILE 64 (soft and
 * hard, set on the test process just for the spawn and restored after; the
 * broker inherits it), fd_reserve at its minimum (16) and 64 KiB segments:
 *
 *   - the test opens native connections until the broker refuses one, so
 *     sockets hold every descriptor but the reserve;
 *   - it produces until rolls (each new segment keeps a descriptor open)
 *     have used up the reserve: the produce whose batch needs one more
 *     segment fails with the retriable EMFILE — never ELOGFAILED — and
 *     nothing is lost;
 *   - once the connections are closed the same shard takes the batch (the
 *     roll is retried at the next append), without a restart; every
 *     acknowledged record is read back, /healthz answers 200 "ok" and
 *     SIGTERM exits 0.
 * Before, the failed roll failed the shard's log for good (EIO, then
 * ELOGFAILED until a restart, and exit status 1).
 * Synchronisation by answers only: after the sockets close, the produce is
 * retried until the broker has seen the closes (each try is a full round
 * trip; bounded), never by sleeping.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include "httpclient.h"
#include "itest.h"

#define BROKER_NOFILE 64
#define MAX_CONNS 200
#define VALUE_BYTES 8000

static int setup(void **state) {
  static const char *const args[] = {"--set", "segment_bytes=65536", "--set", "fd_reserve=16", NULL};
  struct rlimit old, low = {.rlim_cur = BROKER_NOFILE, .rlim_max = BROKER_NOFILE};
  if (getrlimit(RLIMIT_NOFILE, &old) != 0 || setrlimit(RLIMIT_NOFILE, &low) != 0) return -1;
  int rc = itest_setup_with(state, args);
  /* Raising the hard limit back needs CAP_SYS_RESOURCE (the tests run as
   * root); without it the test process keeps 64, which is still enough. */
  if (setrlimit(RLIMIT_NOFILE, &old) != 0) {
    struct rlimit soft = {.rlim_cur = BROKER_NOFILE, .rlim_max = BROKER_NOFILE};
    (void)setrlimit(RLIMIT_NOFILE, &soft);
  }
  return rc;
}

static uint8_t *value_batch(int tag, size_t *len) {
  static char val[VALUE_BYTES + 1];
  memset(val, 'v', VALUE_BYTES);
  val[VALUE_BYTES] = '\0';
  int n = snprintf(val, 32, "%d-", tag);
  val[n] = 'v';
  const char *v[1] = {val};
  /* Arrival-time-like timestamps: retention (24 h by default) keeps them. */
  uint8_t *b = rn_raw_batch_strings(v, 1, (int64_t)time(NULL) * 1000 + tag, NULL, len);
  assert_non_null(b);
  return b;
}

static int healthz(uint16_t port) {
  rn_hc_t hc;
  if (rn_hc_connect(&hc, port) != 0) return -1;
  rn_hc_resp_t r = {0};
  int status = -1;
  if (rn_hc_sendf(&hc, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == 0 && rn_hc_read(&hc, &r) == 0) status = r.status;
  rn_hc_resp_free(&r);
  rn_hc_close(&hc);
  return status;
}

static void test_roll_without_fds(void **state) {
  rn_raw_env_t *env = *state;
  rn_raw_t *c = &env->c;
  itest_create(c, "fds", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  /* Almost a whole segment: the next batch but one needs a new file. */
  size_t len;
  int tag = 0;
  uint64_t acked = 0;
  for (; tag < 7; tag++) {
    uint8_t *b = value_batch(tag, &len);
    assert_int_equal(itest_produce_ok(c, "fds", 0, b, len), acked);
    acked++;
    free(b);
  }

  /* Connections until one is not served: only the reserve is left. */
  static rn_raw_t conns[MAX_CONNS];
  int n = 0;
  for (; n < MAX_CONNS; n++) {
    if (rn_raw_connect(&conns[n], env->broker.port) != 0) break;
    Runnel__Response *r = rn_raw_list(&conns[n]);
    if (!r) {
      rn_raw_close(&conns[n]);
      break;
    }
    rn_raw_free(r);
  }
  print_message("  %d connections held\n", n);
  assert_true(n < MAX_CONNS);

  /* Produce until a roll finds no descriptor: it fails with EMFILE,
   * retriably; everything before it was stored. */
  uint32_t code = 0;
  for (int k = 0; k < 1000; k++) {
    uint8_t *b = value_batch(tag, &len);
    code = itest_produce_code(c, "fds", 0, b, len);
    free(b);
    if (code) break;
    acked++;
    tag++;
  }
  print_message("  %d batch(es) stored before the roll failed\n", tag);
  assert_int_equal(code, rn_raw_wire(RN_EMFILE));
  assert_true(rn_err_retriable(rn_err_from_wire(code)));
  assert_int_equal(itest_end_offset(c, "fds", 0), acked);
  /* Sockets go; the same batch is stored, by the same broker. */
  for (int i = 0; i < n; i++) rn_raw_close(&conns[i]);
  uint8_t *b = value_batch(tag, &len);
  int tries = 0;
  for (;; tries++) {
    assert_true(tries < 10000);
    code = itest_produce_code(c, "fds", 0, b, len);
    if (code == 0) break;
    assert_int_equal(code, rn_raw_wire(RN_EMFILE)); /* never ELOGFAILED */
  }
  free(b);
  acked++;
  tag++;
  print_message("  stored again after %d retr%s\n", tries, tries == 1 ? "y" : "ies");
  b = value_batch(tag, &len);
  assert_int_equal(itest_produce_ok(c, "fds", 0, b, len), acked);
  free(b);
  acked++;
  assert_int_equal(healthz(env->broker.http_port), 200);

  rn_raw_records_t recs = {0};
  assert_int_equal(rn_raw_fetch_all(c, "fds", 0, &recs), 0);
  if (recs.n != acked) print_message("  read %zu records, %" PRIu64 " acknowledged\n", recs.n, acked);
  assert_int_equal(recs.n, acked);
  for (size_t i = 0; i < recs.n; i++) {
    char want[32];
    snprintf(want, sizeof(want), "%zu-", i);
    assert_memory_equal(recs.v[i].value, want, strlen(want));
  }
  rn_raw_records_free(&recs);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_roll_without_fds, setup, itest_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
