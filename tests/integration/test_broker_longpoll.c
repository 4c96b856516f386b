/*
 * test_broker_longpoll.c — long-polling fetches against the real runneld,
 * checked by ordering, never by timing:
 *
 *   connection A sends a Fetch at the end with max_wait_ms = 30000, then a
 *   DescribeStream on the same connection and waits for that answer. The
 *   broker dispatches one connection's requests in order, so once the
 *   describe is answered the fetch has been handled; if it had been
 *   answered (empty) already, its reply would have been written first and
 *   sit in A's queue. A's queue being empty therefore proves the fetch is
 *   parked. Only then does connection B produce, and A's fetch must come
 *   back with B's record.
 *
 * Nothing asserts how long anything took; a broker that failed to wake the
 * fetch would hold it for 30 s and return it empty, failing the record
 * check (and the test's CTest timeout bounds the run).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>

#include "itest.h"

#define LONG_WAIT_MS 30000u

static int setup(void **state) { return itest_setup_with(state, NULL); }

/* Proves every request sent on c so far was handled and none answered yet. */
static void assert_parked(rn_raw_t *c, const char *stream) {
  Runnel__Response *r = rn_raw_describe(c, stream);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_DESCRIBE_STREAM);
  rn_raw_free(r);
  assert_int_equal(c->nqueued, 0);
}

static uint64_t produce_value(rn_raw_t *c, const char *stream, uint32_t shard, const char *value) {
  size_t len;
  uint8_t *b = itest_batch1(value, 777, &len);
  uint64_t base = itest_produce_ok(c, stream, shard, b, len);
  free(b);
  return base;
}

static void check_woken(rn_raw_env_t *env, Runnel__Durability mode, Runnel__PositionKind kind) {
  itest_create(&env->c, "lp", 1, mode);
  produce_value(&env->c, "lp", 0, "before-1");
  produce_value(&env->c, "lp", 0, "before-2");
  rn_raw_t b;
  assert_int_equal(rn_raw_connect(&b, env->broker.port), 0);

  uint64_t corr = rn_raw_send_fetch1(&env->c, "lp", 0, kind, kind == RUNNEL__POSITION_KIND__POSITION_OFFSET ? 2 : 0,
                                     LONG_WAIT_MS, 0);
  assert_true(corr != 0);
  assert_parked(&env->c, "lp");

  assert_int_equal(produce_value(&b, "lp", 0, "from B"), 2);

  Runnel__Response *r = rn_raw_recv(&env->c, corr);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
  const Runnel__ShardFetchResult *res = rn_raw_fetch_result(r);
  assert_non_null(res);
  assert_rn_error(res->error, RN_OK);
  assert_int_equal(res->offset, 2);
  rn_raw_records_t recs = {0};
  assert_int_equal(rn_raw_decode(res->batches.data, res->batches.len, &recs), 0);
  assert_int_equal(recs.n, 1);
  assert_int_equal(recs.v[0].offset, 2);
  assert_int_equal(recs.v[0].value_len, 6);
  assert_memory_equal(recs.v[0].value, "from B", 6);
  assert_int_equal(res->next_offset, 3);
  assert_int_equal(res->end_offset, 3);
  rn_raw_records_free(&recs);
  rn_raw_free(r);
  rn_raw_close(&b);
}

static void test_woken_by_append_sync(void **state) {
  rn_raw_env_t *env = *state;
  check_woken(env, RUNNEL__DURABILITY__DURABILITY_SYNC, RUNNEL__POSITION_KIND__POSITION_OFFSET);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static void test_woken_by_append_latest(void **state) {
  rn_raw_env_t *env = *state;
  check_woken(env, RUNNEL__DURABILITY__DURABILITY_SYNC, RUNNEL__POSITION_KIND__POSITION_LATEST);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static void test_woken_by_append_interval(void **state) {
  rn_raw_env_t *env = *state;
  check_woken(env, RUNNEL__DURABILITY__DURABILITY_INTERVAL, RUNNEL__POSITION_KIND__POSITION_OFFSET);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static void test_woken_by_append_none(void **state) {
  rn_raw_env_t *env = *state;
  check_woken(env, RUNNEL__DURABILITY__DURABILITY_NONE, RUNNEL__POSITION_KIND__POSITION_OFFSET);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* A fetch over two shards waits for either; an append to one answers it
 * with that shard's data and the other shard empty. */
static void test_two_shard_wait(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "two", 2, RUNNEL__DURABILITY__DURABILITY_SYNC);
  Runnel__ShardFetch sf[2] = {RUNNEL__SHARD_FETCH__INIT, RUNNEL__SHARD_FETCH__INIT};
  Runnel__ShardFetch *sfp[2] = {&sf[0], &sf[1]};
  sf[1].shard = 1;
  Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
  fr.stream = "two";
  fr.n_shards = 2;
  fr.shards = sfp;
  fr.max_wait_ms = LONG_WAIT_MS;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_FETCH;
  req.fetch = &fr;
  uint64_t corr = rn_raw_send(&env->c, &req);
  assert_true(corr != 0);
  assert_parked(&env->c, "two");

  rn_raw_t b;
  assert_int_equal(rn_raw_connect(&b, env->broker.port), 0);
  produce_value(&b, "two", 1, "to shard 1");

  Runnel__Response *r = rn_raw_recv(&env->c, corr);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
  assert_int_equal(r->fetch->n_results, 2);
  for (size_t i = 0; i < 2; i++) {
    const Runnel__ShardFetchResult *res = r->fetch->results[i];
    assert_rn_error(res->error, RN_OK);
    if (res->shard == 0) {
      assert_int_equal(res->batches.len, 0);
      assert_int_equal(res->next_offset, 0);
    } else {
      assert_int_equal(res->shard, 1);
      rn_raw_records_t recs = {0};
      assert_int_equal(rn_raw_decode(res->batches.data, res->batches.len, &recs), 0);
      assert_int_equal(recs.n, 1);
      assert_memory_equal(recs.v[0].value, "to shard 1", 10);
      rn_raw_records_free(&recs);
    }
  }
  rn_raw_free(r);
  /* The stream still works for new waits after the wake-up (shard 1 now
   * waits past the record it returned). */
  sf[1].value = 1;
  corr = rn_raw_send(&env->c, &req);
  assert_parked(&env->c, "two");
  produce_value(&b, "two", 0, "to shard 0");
  r = rn_raw_recv(&env->c, corr);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
  bool seen = false;
  for (size_t i = 0; i < r->fetch->n_results; i++) seen |= r->fetch->results[i]->shard == 0 && r->fetch->results[i]->batches.len > 0;
  assert_true(seen);
  rn_raw_free(r);
  rn_raw_close(&b);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* One fetch naming the same shard twice parks two waiters on it; the
 * append answers it once, with the record in both results. */
static void test_same_shard_twice(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "twice", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  Runnel__ShardFetch sf[2] = {RUNNEL__SHARD_FETCH__INIT, RUNNEL__SHARD_FETCH__INIT};
  Runnel__ShardFetch *sfp[2] = {&sf[0], &sf[1]};
  Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
  fr.stream = "twice";
  fr.n_shards = 2;
  fr.shards = sfp;
  fr.max_wait_ms = LONG_WAIT_MS;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_FETCH;
  req.fetch = &fr;
  uint64_t corr = rn_raw_send(&env->c, &req);
  assert_parked(&env->c, "twice");
  /* A second, ordinary waiter on the same shard from another connection. */
  rn_raw_t b;
  assert_int_equal(rn_raw_connect(&b, env->broker.port), 0);
  uint64_t corr_b = rn_raw_send_fetch1(&b, "twice", 0, RUNNEL__POSITION_KIND__POSITION_OFFSET, 0, LONG_WAIT_MS, 0);
  assert_parked(&b, "twice");
  produce_value(&env->c, "twice", 0, "once");
  Runnel__Response *r = rn_raw_recv(&env->c, corr);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
  assert_int_equal(r->fetch->n_results, 2);
  for (int i = 0; i < 2; i++) {
    assert_rn_error(r->fetch->results[i]->error, RN_OK);
    rn_raw_records_t recs = {0};
    assert_int_equal(rn_raw_decode(r->fetch->results[i]->batches.data, r->fetch->results[i]->batches.len, &recs), 0);
    assert_int_equal(recs.n, 1);
    rn_raw_records_free(&recs);
  }
  rn_raw_free(r);
  r = rn_raw_recv(&b, corr_b);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
  assert_true(rn_raw_fetch_result(r)->batches.len > 0);
  rn_raw_free(r);
  assert_parked(&env->c, "twice"); /* nothing further came: answered exactly once */
  rn_raw_close(&b);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* Several connections parked on one shard: one append wakes them all. */
static void test_many_waiters(void **state) {
  rn_raw_env_t *env = *state;
  enum { W = 5 };
  itest_create(&env->c, "fan", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  rn_raw_t w[W];
  uint64_t corr[W];
  for (int i = 0; i < W; i++) {
    assert_int_equal(rn_raw_connect(&w[i], env->broker.port), 0);
    corr[i] = rn_raw_send_fetch1(&w[i], "fan", 0, RUNNEL__POSITION_KIND__POSITION_OFFSET, 0, LONG_WAIT_MS, 0);
    assert_parked(&w[i], "fan");
  }
  produce_value(&env->c, "fan", 0, "to everyone");
  for (int i = 0; i < W; i++) {
    Runnel__Response *r = rn_raw_recv(&w[i], corr[i]);
    assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
    const Runnel__ShardFetchResult *res = rn_raw_fetch_result(r);
    assert_rn_error(res->error, RN_OK);
    rn_raw_records_t recs = {0};
    assert_int_equal(rn_raw_decode(res->batches.data, res->batches.len, &recs), 0);
    assert_int_equal(recs.n, 1);
    assert_memory_equal(recs.v[0].value, "to everyone", 11);
    rn_raw_records_free(&recs);
    rn_raw_free(r);
    rn_raw_close(&w[i]);
  }
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* max_wait 0 at the end: answered at once (before a later request on the
 * same connection is), empty, not an error. */
static void test_no_wait_at_end(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "nowait", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  for (int round = 0; round < 2; round++) {
    uint64_t end = itest_end_offset(&env->c, "nowait", 0);
    uint64_t corr = rn_raw_send_fetch1(&env->c, "nowait", 0, RUNNEL__POSITION_KIND__POSITION_OFFSET, (int64_t)end, 0, 0);
    Runnel__Response *d = rn_raw_describe(&env->c, "nowait");
    assert_rn_ok(d, RUNNEL__RESPONSE__OP_DESCRIBE_STREAM);
    rn_raw_free(d);
    assert_int_equal(env->c.nqueued, 1); /* the fetch's answer came first */
    Runnel__Response *r = rn_raw_recv(&env->c, corr);
    assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
    const Runnel__ShardFetchResult *res = rn_raw_fetch_result(r);
    assert_rn_error(res->error, RN_OK);
    assert_int_equal(res->batches.len, 0);
    assert_int_equal(res->offset, end);
    assert_int_equal(res->next_offset, end);
    assert_int_equal(res->end_offset, end);
    rn_raw_free(r);
    produce_value(&env->c, "nowait", 0, "one");
  }
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* A short max_wait with no data: answered empty when it expires. */
static void test_wait_expires_empty(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "expire", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  Runnel__Response *r = rn_raw_fetch1(&env->c, "expire", 0, RUNNEL__POSITION_KIND__POSITION_LATEST, 0, 50, 0);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
  const Runnel__ShardFetchResult *res = rn_raw_fetch_result(r);
  assert_rn_error(res->error, RN_OK);
  assert_int_equal(res->batches.len, 0);
  rn_raw_free(r);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* Item 9: deleting the stream answers a fetch parked on it with ENOSTREAM. */
static void test_delete_wakes_waiter(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "doomed", 2, RUNNEL__DURABILITY__DURABILITY_SYNC);
  uint64_t corr = rn_raw_send_fetch1(&env->c, "doomed", 1, RUNNEL__POSITION_KIND__POSITION_LATEST, 0, LONG_WAIT_MS, 0);
  assert_parked(&env->c, "doomed");
  rn_raw_t b;
  assert_int_equal(rn_raw_connect(&b, env->broker.port), 0);
  Runnel__Response *d = rn_raw_delete(&b, "doomed");
  assert_rn_ok(d, RUNNEL__RESPONSE__OP_DELETE_STREAM);
  rn_raw_free(d);

  Runnel__Response *r = rn_raw_recv(&env->c, corr);
  assert_non_null(r);
  if (r->error) {
    assert_rn_error(r->error, RN_ENOSTREAM);
  } else {
    assert_int_equal(r->op_case, RUNNEL__RESPONSE__OP_FETCH);
    assert_int_equal(r->fetch->n_results, 1);
    assert_rn_error(r->fetch->results[0]->error, RN_ENOSTREAM);
    assert_int_equal(r->fetch->results[0]->batches.len, 0);
  }
  rn_raw_free(r);
  /* The broker goes on: a new stream of the same name serves and waits. */
  itest_create(&b, "doomed", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  produce_value(&b, "doomed", 0, "reborn");
  rn_raw_records_t recs = {0};
  assert_int_equal(rn_raw_fetch_all(&env->c, "doomed", 0, &recs), 0);
  assert_int_equal(recs.n, 1);
  rn_raw_records_free(&recs);
  rn_raw_close(&b);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* Same, on a stream loaded from disk at start (a different reference path
 * in the broker than a stream created in this process). */
static void test_delete_wakes_waiter_after_restart(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "doomed", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  assert_int_equal(rn_raw_env_stop(env), 0);
  assert_int_equal(rn_raw_env_restart(env), 0);
  uint64_t corr = rn_raw_send_fetch1(&env->c, "doomed", 0, RUNNEL__POSITION_KIND__POSITION_LATEST, 0, LONG_WAIT_MS, 0);
  assert_parked(&env->c, "doomed");
  rn_raw_t b;
  assert_int_equal(rn_raw_connect(&b, env->broker.port), 0);
  Runnel__Response *d = rn_raw_delete(&b, "doomed");
  assert_rn_ok(d, RUNNEL__RESPONSE__OP_DELETE_STREAM);
  rn_raw_free(d);
  Runnel__Response *r = rn_raw_recv(&env->c, corr);
  assert_non_null(r);
  uint32_t code = r->error ? rn_raw_code(r->error) : rn_raw_code(rn_raw_fetch_result(r)->error);
  assert_int_equal(code, rn_raw_wire(RN_ENOSTREAM));
  rn_raw_free(r);
  rn_raw_close(&b);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* A client that hangs up while its fetch is parked: the append that would
 * have answered it must not disturb the broker or anyone else. */
static void test_waiter_disconnects(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "gone", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  rn_raw_t a;
  assert_int_equal(rn_raw_connect(&a, env->broker.port), 0);
  rn_raw_send_fetch1(&a, "gone", 0, RUNNEL__POSITION_KIND__POSITION_OFFSET, 0, LONG_WAIT_MS, 0);
  assert_parked(&a, "gone");
  rn_raw_close(&a);
  /* env->c keeps working; the append wakes a fetch whose client left. */
  produce_value(&env->c, "gone", 0, "nobody listening");
  produce_value(&env->c, "gone", 0, "second");
  rn_raw_records_t recs = {0};
  assert_int_equal(rn_raw_fetch_all(&env->c, "gone", 0, &recs), 0);
  assert_int_equal(recs.n, 2);
  rn_raw_records_free(&recs);
  assert_int_equal(rn_raw_env_stop(env), 0); /* clean: no leak, no stuck request */
}

/* SIGTERM while a fetch is parked: the fetch is answered (with what there
 * is), then the broker exits cleanly. */
static void test_sigterm_answers_waiter(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "bye", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  uint64_t corr = rn_raw_send_fetch1(&env->c, "bye", 0, RUNNEL__POSITION_KIND__POSITION_LATEST, 0, LONG_WAIT_MS, 0);
  assert_parked(&env->c, "bye");
  assert_int_equal(kill(env->broker.pid, SIGTERM), 0);
  Runnel__Response *r = rn_raw_recv(&env->c, corr);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
  assert_rn_error(rn_raw_fetch_result(r)->error, RN_OK);
  assert_int_equal(rn_raw_fetch_result(r)->batches.len, 0);
  rn_raw_free(r);
  assert_true(rn_raw_wait_closed(&env->c));
  assert_int_equal(rn_test_broker_wait(&env->broker), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_woken_by_append_sync, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_woken_by_append_latest, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_woken_by_append_interval, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_woken_by_append_none, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_two_shard_wait, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_same_shard_twice, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_many_waiters, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_no_wait_at_end, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_wait_expires_empty, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_delete_wakes_waiter, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_delete_wakes_waiter_after_restart, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_waiter_disconnects, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_sigterm_answers_waiter, setup, itest_teardown),
  };
  return cmocka_run_group_tests_name("broker_longpoll", tests, NULL, NULL);
}
