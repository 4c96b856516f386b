/*
 * test_broker_shutdown.c — SIGTERM while requests are in flight.
 *
 * test_sigterm_in_flight_*: a client pipelines many produce requests (each
 * batch carries a unique tag) on two connections and, halfway through,
 * sends the broker SIGTERM. Before the signal it has seen the answers to
 * the first requests of each connection (so at least those are answered
 * and acknowledged, whatever the scheduling); after it, every request is
 * answered at most once — acknowledged, or refused with the retriable
 * ESHUTDOWN — or left unanswered when the broker closes the connection
 * (requests it never read); the broker exits 0. After a restart on the
 * same data dir every acknowledged batch is present at its acknowledged
 * offset, byte-exact, no batch is present twice, and no refused one.
 *
 * test_sigterm_answers_held_requests: the ESHUTDOWN path, made certain
 * without timing: with max_inflight_per_connection 1, one corked write
 * carries [produce P0, long-poll fetch F on an empty shard, produce
 * P2..Pn]. P0 is acknowledged, then F occupies the connection's only slot
 * until drain, so P2..Pn are received but held. SIGTERM (sent after P0's
 * ack) completes F and must answer every held request ESHUTDOWN; none of
 * them is stored.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>

#include "itest.h"
#include "testutil.h"

static int setup(void **state) { return itest_setup_with(state, NULL); }

#define NREQ 400
#define NCONN 2
#define VLEN 1024

typedef struct req_state {
  uint64_t corr;
  int conn;
  uint32_t shard;
  bool answered, acked, refused;
  uint64_t base;
} req_state_t;

static void value_of(int i, int r, uint8_t *out) {
  int n = snprintf((char *)out, VLEN, "req-%04d-rec-%d:", i, r);
  for (int k = n; k < VLEN; k++) out[k] = (uint8_t)(i * 31 + r * 7 + k);
}

static void sigterm_with_produces_in_flight(rn_raw_env_t *env, Runnel__Durability mode) {
  itest_create(&env->c, "sd", 2, mode);
  /* One acknowledged batch before anything else. */
  size_t len;
  uint8_t *warm = itest_batch1("before", 1, &len);
  assert_int_equal(itest_produce_ok(&env->c, "sd", 0, warm, len), 0);
  free(warm);

  rn_raw_t conns[NCONN];
  for (int k = 0; k < NCONN; k++) assert_int_equal(rn_raw_connect(&conns[k], env->broker.port), 0);
  static req_state_t reqs[NREQ];
  static uint8_t vals[2][VLEN];
  memset(reqs, 0, sizeof(reqs));
  int sent = 0;
  for (int i = 0; i < NREQ; i++) {
    rn_raw_rec_t recs[2];
    for (int r = 0; r < 2; r++) {
      value_of(i, r, vals[r]);
      recs[r] = (rn_raw_rec_t){.key = "key", .key_len = 3, .value = vals[r], .value_len = VLEN, .ts = 10 + i};
    }
    uint8_t *b = rn_raw_batch(recs, 2, NULL, &len);
    assert_non_null(b);
    reqs[i].conn = i % NCONN;
    reqs[i].shard = (uint32_t)(i / NCONN) % 2;
    /* Halfway through, without having waited for any answer: SIGTERM.
     * Sends after it may fail once the broker closed the connection
     * (corr 0: never sent). */
    if (i == NREQ / 2) {
      /* The first request of each connection is answered before the
       * signal: a lower bound on what must be acknowledged. */
      for (int k = 0; k < NCONN; k++) {
        Runnel__Response *r0 = rn_raw_recv(&conns[k], reqs[k].corr);
        assert_non_null(r0);
        assert_rn_ok(r0, RUNNEL__RESPONSE__OP_PRODUCE);
        assert_rn_error(rn_raw_produce_result(r0)->error, RN_OK);
        reqs[k].answered = reqs[k].acked = true;
        reqs[k].base = rn_raw_produce_result(r0)->base_offset;
        rn_raw_free(r0);
      }
      assert_int_equal(kill(env->broker.pid, SIGTERM), 0);
    }
    reqs[i].corr = rn_raw_send_produce1(&conns[reqs[i].conn], "sd", reqs[i].shard, b, len);
    if (i < NREQ / 2) assert_true(reqs[i].corr != 0);
    if (reqs[i].corr) sent++;
    free(b);
  }

  /* Collect what comes until each connection closes. */
  int answered = NCONN, acked = NCONN, refused = 0; /* the first of each connection, seen above */
  for (int k = 0; k < NCONN; k++) {
    assert_true(rn_raw_wait_closed(&conns[k]));
    Runnel__Response *r;
    while ((r = rn_raw_recv_any(&conns[k])) != NULL) {
      int i = -1;
      for (int j = 0; j < NREQ; j++)
        if (reqs[j].conn == k && reqs[j].corr && reqs[j].corr == r->correlation_id) i = j;
      assert_true(i >= 0);           /* an answer to something asked */
      assert_false(reqs[i].answered); /* and only once */
      reqs[i].answered = true;
      answered++;
      if (r->error) {
        assert_rn_error(r->error, RN_ESHUTDOWN);
        assert_true(r->error->retriable);
        reqs[i].refused = true;
        refused++;
      } else {
        assert_int_equal(r->op_case, RUNNEL__RESPONSE__OP_PRODUCE);
        const Runnel__ShardBatchResult *res = rn_raw_produce_result(r);
        assert_non_null(res);
        if (res->error) {
          assert_rn_error(res->error, RN_ESHUTDOWN);
          reqs[i].refused = true;
          refused++;
        } else {
          reqs[i].acked = true;
          reqs[i].base = res->base_offset;
          acked++;
        }
      }
      rn_raw_free(r);
    }
    rn_raw_close(&conns[k]);
  }
  print_message("  %d requests sent: %d answered (%d acknowledged, %d refused), %d unanswered\n", sent, answered,
                acked, refused, sent - answered);
  rn_raw_close(&env->c);
  assert_int_equal(rn_test_broker_wait(&env->broker), 0); /* clean shutdown */

  assert_int_equal(rn_raw_env_restart(env), 0);
  static bool seen[NREQ];
  memset(seen, 0, sizeof(seen));
  for (uint32_t sh = 0; sh < 2; sh++) {
    rn_raw_records_t recs = {0};
    assert_int_equal(rn_raw_fetch_all(&env->c, "sd", sh, &recs), 0);
    size_t first = 0;
    if (sh == 0) {
      assert_true(recs.n >= 1);
      assert_memory_equal(recs.v[0].value, "before", 6);
      first = 1;
    }
    /* Whatever is stored: pairs of records from distinct requests. */
    assert_int_equal((recs.n - first) % 2, 0);
    for (size_t k = first; k < recs.n; k += 2) {
      int i = -1, r = -1;
      assert_int_equal(recs.v[k].value_len, VLEN);
      assert_int_equal(sscanf((const char *)recs.v[k].value, "req-%d-rec-%d:", &i, &r), 2);
      assert_true(i >= 0 && i < NREQ);
      assert_int_equal(r, 0);
      assert_false(seen[i]);
      assert_false(reqs[i].refused); /* refused means not executed */
      seen[i] = true;
      assert_int_equal(reqs[i].shard, sh);
      value_of(i, 0, vals[0]);
      value_of(i, 1, vals[1]);
      assert_memory_equal(recs.v[k].value, vals[0], VLEN);
      assert_memory_equal(recs.v[k + 1].value, vals[1], VLEN);
      if (reqs[i].acked) assert_int_equal(recs.v[k].offset, reqs[i].base);
    }
    rn_raw_records_free(&recs);
  }
  for (int i = 0; i < NREQ; i++)
    if (reqs[i].acked) assert_true(seen[i]); /* every acknowledged batch survived */
  assert_true(acked >= NCONN);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

#define NHELD 40

static void test_sigterm_answers_held_requests(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "held", 2, RUNNEL__DURABILITY__DURABILITY_SYNC);
  rn_raw_t *c = &env->c;
  uint64_t corr[NHELD];
  assert_int_equal(rn_raw_cork(c, 1), 0);
  for (int i = 0; i < NHELD; i++) {
    if (i == 1) {
      corr[i] = rn_raw_send_fetch1(c, "held", 1, RUNNEL__POSITION_KIND__POSITION_LATEST, 0, 30000, 0);
    } else {
      char v[32];
      snprintf(v, sizeof v, "held-%d", i);
      const char *vals[1] = {v};
      size_t len;
      uint8_t *b = rn_raw_batch_strings(vals, 1, 0, NULL, &len);
      corr[i] = rn_raw_send_produce1(c, "held", 0, b, len);
      free(b);
    }
    assert_true(corr[i] != 0);
  }
  assert_int_equal(rn_raw_cork(c, 0), 0);

  Runnel__Response *r = rn_raw_recv(c, corr[0]);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_PRODUCE);
  assert_rn_error(rn_raw_produce_result(r)->error, RN_OK);
  rn_raw_free(r);
  assert_int_equal(kill(env->broker.pid, SIGTERM), 0);

  r = rn_raw_recv(c, corr[1]); /* drain completes the long poll with nothing */
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
  assert_rn_error(rn_raw_fetch_result(r)->error, RN_OK);
  rn_raw_free(r);
  for (int i = 2; i < NHELD; i++) {
    r = rn_raw_recv(c, corr[i]);
    if (r == NULL) fail_msg("held request %d was not answered", i);
    assert_rn_error(r->error, RN_ESHUTDOWN);
    assert_true(r->error->retriable);
    rn_raw_free(r);
  }
  rn_raw_close(c);
  assert_int_equal(rn_test_broker_wait(&env->broker), 0);

  assert_int_equal(rn_raw_env_restart(env), 0);
  rn_raw_records_t recs = {0};
  assert_int_equal(rn_raw_fetch_all(&env->c, "held", 0, &recs), 0);
  assert_int_equal(recs.n, 1); /* P0 only: the refused ones were never executed */
  assert_memory_equal(recs.v[0].value, "held-0", 6);
  rn_raw_records_free(&recs);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static const char *const k_inflight1[] = {"--set", "max_inflight_per_connection=1", NULL};
static int setup_inflight1(void **state) { return itest_setup_with(state, k_inflight1); }

static void test_sigterm_in_flight_sync(void **state) {
  sigterm_with_produces_in_flight(*state, RUNNEL__DURABILITY__DURABILITY_SYNC);
}

static void test_sigterm_in_flight_interval(void **state) {
  sigterm_with_produces_in_flight(*state, RUNNEL__DURABILITY__DURABILITY_INTERVAL);
}

static void test_sigterm_in_flight_none(void **state) {
  sigterm_with_produces_in_flight(*state, RUNNEL__DURABILITY__DURABILITY_NONE);
}

/* A broker is ready once it logged its "listening" line (and wrote its
 * port file): a supervisor may stop it from then on, and SIGTERM must mean
 * a clean shutdown (exit 0), never the default action of the signal. Each
 * round stops a fresh broker as soon as it says it listens. */
static void test_sigterm_right_after_listening(void **state) {
  (void)state;
  for (int round = 0; round < 40; round++) {
    char *root = rn_test_tmpdir();
    char data[600];
    snprintf(data, sizeof(data), "%s/data", root);
    rn_test_broker_t b;
    assert_int_equal(rn_test_broker_start(&b, data, NULL), 0);
    int status = rn_test_broker_stop(&b);
    if (status != 0) print_message("  round %d: runneld exit status %d (-1: killed by the signal)\n", round, status);
    rn_test_rmtree(root);
    free(root);
    assert_int_equal(status, 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_sigterm_in_flight_sync, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_sigterm_in_flight_interval, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_sigterm_in_flight_none, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_sigterm_answers_held_requests, setup_inflight1, itest_teardown),
      cmocka_unit_test(test_sigterm_right_after_listening),
  };
  return cmocka_run_group_tests_name("broker_shutdown", tests, NULL, NULL);
}
