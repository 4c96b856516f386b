/*
 * test_broker_idempotence.c — idempotent producers against the real
 * runneld: InitProducer; a retried batch is acknowledged again
 * (duplicate=true, the original base offset) and stored once; a sequence
 * gap is ESEQUENCE; an older epoch is EFENCED; producers and shards are
 * independent; after a restart the broker rebuilds producer state from the
 * log, so a retry of the last batch is still recognised.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "itest.h"

static int setup(void **state) { return itest_setup_with(state, NULL); }

static uint64_t init_producer(rn_raw_t *c) {
  Runnel__Response *r = rn_raw_init_producer(c);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_INIT_PRODUCER);
  uint64_t id = r->init_producer->producer_id;
  assert_true(id != 0);
  assert_int_equal(r->init_producer->producer_epoch, 0);
  rn_raw_free(r);
  return id;
}

/* A batch of n records "<tag>-<i>" from (id, epoch, seq). */
static uint8_t *pbatch(uint64_t id, uint16_t epoch, int32_t seq, size_t n, const char *tag, size_t *len) {
  char vals[8][32];
  const char *vp[8];
  assert_true(n <= 8);
  for (size_t i = 0; i < n; i++) {
    snprintf(vals[i], sizeof(vals[i]), "%s-%zu", tag, i);
    vp[i] = vals[i];
  }
  rn_batch_producer_t p = {.producer_id = id, .producer_epoch = epoch, .base_sequence = seq};
  uint8_t *b = rn_raw_batch_strings(vp, n, 1000, &p, len);
  assert_non_null(b);
  return b;
}

typedef struct outcome {
  uint32_t code;
  uint64_t base;
  bool duplicate;
} outcome_t;

static outcome_t attempt(rn_raw_t *c, const char *stream, uint32_t shard, const uint8_t *b, size_t len) {
  Runnel__Response *r = rn_raw_produce1(c, stream, shard, b, len);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_PRODUCE);
  const Runnel__ShardBatchResult *res = rn_raw_produce_result(r);
  assert_non_null(res);
  outcome_t o = {rn_raw_code(res->error), res->base_offset, res->duplicate};
  if (res->error) print_message("  (%s: %s)\n", res->error->name, res->error->message);
  rn_raw_free(r);
  return o;
}

static void assert_appended(outcome_t o, uint64_t base) {
  assert_int_equal(o.code, 0);
  assert_false(o.duplicate);
  assert_int_equal(o.base, base);
}

static void assert_duplicate(outcome_t o, uint64_t base) {
  assert_int_equal(o.code, 0);
  assert_true(o.duplicate);
  assert_int_equal(o.base, base);
}

static void test_retry_is_not_duplicated(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "idem", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  uint64_t pid = init_producer(&env->c);
  assert_true(init_producer(&env->c) != pid); /* each call: a fresh id */

  size_t l0, l1;
  uint8_t *b0 = pbatch(pid, 0, 0, 2, "first", &l0);
  assert_appended(attempt(&env->c, "idem", 0, b0, l0), 0);
  /* The identical batch again: acknowledged with the original offset. */
  assert_duplicate(attempt(&env->c, "idem", 0, b0, l0), 0);
  assert_duplicate(attempt(&env->c, "idem", 0, b0, l0), 0);
  assert_int_equal(itest_end_offset(&env->c, "idem", 0), 2);

  /* The next sequence appends. */
  uint8_t *b1 = pbatch(pid, 0, 2, 3, "second", &l1);
  assert_appended(attempt(&env->c, "idem", 0, b1, l1), 2);
  assert_duplicate(attempt(&env->c, "idem", 0, b1, l1), 2);
  /* An older retry inside the window is still recognised. */
  assert_duplicate(attempt(&env->c, "idem", 0, b0, l0), 0);

  /* Stored once each. */
  rn_raw_records_t recs = {0};
  assert_int_equal(rn_raw_fetch_all(&env->c, "idem", 0, &recs), 0);
  assert_int_equal(recs.n, 5);
  assert_int_equal(recs.batches, 2);
  assert_memory_equal(recs.v[0].value, "first-0", 7);
  assert_memory_equal(recs.v[2].value, "second-0", 8);
  assert_int_equal(recs.v[2].producer_id, pid);
  assert_int_equal(recs.v[2].base_sequence, 2);
  rn_raw_records_free(&recs);
  free(b0);
  free(b1);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static void test_sequence_gap(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "gap", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  uint64_t pid = init_producer(&env->c);
  size_t len;
  uint8_t *b = pbatch(pid, 0, 0, 2, "a", &len);
  assert_appended(attempt(&env->c, "gap", 0, b, len), 0);
  free(b);
  /* Next must be 2: 3 and 7 are gaps; 1 overlaps the stored batch. */
  const int32_t bad[] = {3, 7, 1};
  for (size_t i = 0; i < 3; i++) {
    b = pbatch(pid, 0, bad[i], 1, "bad", &len);
    outcome_t o = attempt(&env->c, "gap", 0, b, len);
    assert_int_equal(o.code, rn_raw_wire(RN_ESEQUENCE));
    assert_false(o.duplicate);
    free(b);
  }
  /* A retry of sequence 0 with a different record count is not a duplicate. */
  b = pbatch(pid, 0, 0, 1, "a", &len);
  assert_int_equal(attempt(&env->c, "gap", 0, b, len).code, rn_raw_wire(RN_ESEQUENCE));
  free(b);
  assert_int_equal(itest_end_offset(&env->c, "gap", 0), 2); /* nothing appended */
  /* The right sequence still works. */
  b = pbatch(pid, 0, 2, 1, "c", &len);
  assert_appended(attempt(&env->c, "gap", 0, b, len), 2);
  free(b);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static void test_epoch_fencing(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "fence", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  uint64_t pid = init_producer(&env->c);
  size_t len;
  uint8_t *b = pbatch(pid, 0, 0, 1, "e0", &len);
  assert_appended(attempt(&env->c, "fence", 0, b, len), 0);
  free(b);
  /* Epoch 1 takes over (its sequences start afresh). */
  uint8_t *e1 = pbatch(pid, 1, 0, 2, "e1", &len);
  size_t e1len = len;
  assert_appended(attempt(&env->c, "fence", 0, e1, e1len), 1);
  /* Epoch 0 is fenced now, whatever its sequence. */
  b = pbatch(pid, 0, 1, 1, "zombie", &len);
  assert_int_equal(attempt(&env->c, "fence", 0, b, len).code, rn_raw_wire(RN_EFENCED));
  free(b);
  b = pbatch(pid, 0, 0, 1, "e0", &len);
  outcome_t o = attempt(&env->c, "fence", 0, b, len);
  assert_int_equal(o.code, rn_raw_wire(RN_EFENCED));
  assert_false(o.duplicate);
  free(b);
  assert_int_equal(itest_end_offset(&env->c, "fence", 0), 3);
  assert_duplicate(attempt(&env->c, "fence", 0, e1, e1len), 1);
  free(e1);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* Sequences are per (producer, shard): other producers and other shards do
 * not disturb them; a non-idempotent batch (id 0) is always appended. */
static void test_independent_producers_and_shards(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "multi", 2, RUNNEL__DURABILITY__DURABILITY_SYNC);
  uint64_t p1 = init_producer(&env->c), p2 = init_producer(&env->c);
  size_t len;
  uint8_t *b;
  b = pbatch(p1, 0, 0, 1, "p1s0", &len);
  assert_appended(attempt(&env->c, "multi", 0, b, len), 0);
  free(b);
  b = pbatch(p2, 0, 0, 1, "p2s0", &len);
  assert_appended(attempt(&env->c, "multi", 0, b, len), 1);
  free(b);
  b = pbatch(p1, 0, 0, 1, "p1s0-shard1", &len);
  assert_appended(attempt(&env->c, "multi", 1, b, len), 0);
  free(b);
  b = pbatch(p1, 0, 1, 1, "p1s1", &len);
  assert_appended(attempt(&env->c, "multi", 0, b, len), 2);
  free(b);
  b = itest_batch1("plain", 5, &len);
  assert_appended(attempt(&env->c, "multi", 0, b, len), 3);
  assert_appended(attempt(&env->c, "multi", 0, b, len), 4); /* not idempotent: stored twice */
  free(b);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* After a restart the broker knows the last batches from the log. */
static void test_retry_after_restart(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "durable-idem", 2, RUNNEL__DURABILITY__DURABILITY_SYNC);
  uint64_t pid = init_producer(&env->c);
  size_t l0, l1, l2, len;
  uint8_t *b0 = pbatch(pid, 0, 0, 2, "s0", &l0);
  uint8_t *b1 = pbatch(pid, 0, 2, 1, "s2", &l1);
  uint8_t *b2 = pbatch(pid, 0, 0, 3, "shard1", &l2);
  assert_appended(attempt(&env->c, "durable-idem", 0, b0, l0), 0);
  assert_appended(attempt(&env->c, "durable-idem", 0, b1, l1), 2);
  assert_appended(attempt(&env->c, "durable-idem", 1, b2, l2), 0);

  assert_int_equal(rn_raw_env_stop(env), 0);
  assert_int_equal(rn_raw_env_restart(env), 0);

  /* The last batch (and the one before) retried: duplicates, same offsets. */
  assert_duplicate(attempt(&env->c, "durable-idem", 0, b1, l1), 2);
  assert_duplicate(attempt(&env->c, "durable-idem", 0, b0, l0), 0);
  assert_duplicate(attempt(&env->c, "durable-idem", 1, b2, l2), 0);
  /* Gaps are still detected; the next sequence continues. */
  uint8_t *b = pbatch(pid, 0, 9, 1, "gap", &len);
  assert_int_equal(attempt(&env->c, "durable-idem", 0, b, len).code, rn_raw_wire(RN_ESEQUENCE));
  free(b);
  b = pbatch(pid, 0, 3, 1, "s3", &len);
  assert_appended(attempt(&env->c, "durable-idem", 0, b, len), 3);
  free(b);
  assert_int_equal(itest_end_offset(&env->c, "durable-idem", 0), 4);
  assert_int_equal(itest_end_offset(&env->c, "durable-idem", 1), 3);

  /* A bumped epoch survives a restart too: the old one stays fenced. */
  b = pbatch(pid, 1, 0, 1, "e1", &len);
  assert_appended(attempt(&env->c, "durable-idem", 1, b, len), 3);
  assert_int_equal(rn_raw_env_stop(env), 0);
  assert_int_equal(rn_raw_env_restart(env), 0);
  assert_duplicate(attempt(&env->c, "durable-idem", 1, b, len), 3);
  free(b);
  b = pbatch(pid, 0, 3, 1, "zombie", &len);
  assert_int_equal(attempt(&env->c, "durable-idem", 1, b, len).code, rn_raw_wire(RN_EFENCED));
  free(b);

  free(b0);
  free(b1);
  free(b2);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* A retry from before the remembered window is refused, never appended. */
static void test_old_retry_beyond_window(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "window", 1, RUNNEL__DURABILITY__DURABILITY_NONE);
  uint64_t pid = init_producer(&env->c);
  size_t l0, len;
  uint8_t *b0 = pbatch(pid, 0, 0, 1, "old", &l0);
  assert_appended(attempt(&env->c, "window", 0, b0, l0), 0);
  for (int32_t s = 1; s <= 20; s++) {
    uint8_t *b = pbatch(pid, 0, s, 1, "later", &len);
    assert_appended(attempt(&env->c, "window", 0, b, len), (uint64_t)s);
    free(b);
  }
  outcome_t o = attempt(&env->c, "window", 0, b0, l0);
  if (o.code == 0) {
    assert_true(o.duplicate); /* a broker may remember further back */
    assert_int_equal(o.base, 0);
  } else {
    assert_int_equal(o.code, rn_raw_wire(RN_ESEQUENCE));
  }
  assert_int_equal(itest_end_offset(&env->c, "window", 0), 21);
  free(b0);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* Sequences near INT32_MAX: a producer may start anywhere (its first batch
 * on a shard sets the expectation), so a client can reach the top of the
 * range. Whatever the broker decides about wrapping, a batch there must get
 * an answer — not crash the broker (signed overflow) — and other clients
 * keep being served. */
static void test_sequence_at_int32_max(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "top", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  uint64_t pid = init_producer(&env->c);
  size_t len;
  uint8_t *b = pbatch(pid, 0, INT32_MAX - 1, 2, "top", &len); /* sequences INT32_MAX-1, INT32_MAX */
  outcome_t o = attempt(&env->c, "top", 0, b, len);
  free(b);
  if (o.code == 0) assert_int_equal(o.base, 0);
  b = pbatch(pid, 0, 0, 1, "wrapped", &len);
  o = attempt(&env->c, "top", 0, b, len);
  free(b);
  (void)o; /* appended (wrapped) or refused: both are answers */
  b = pbatch(pid, 0, INT32_MAX, 3, "over", &len); /* would end past INT32_MAX */
  o = attempt(&env->c, "top", 0, b, len);
  free(b);
  (void)o;
  /* The broker is still there and serves another client. */
  rn_raw_t other;
  assert_int_equal(rn_raw_connect(&other, env->broker.port), 0);
  b = itest_batch1("still alive", 1, &len);
  itest_produce_ok(&other, "top", 0, b, len);
  free(b);
  rn_raw_close(&other);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_retry_is_not_duplicated, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_sequence_gap, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_epoch_fencing, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_independent_producers_and_shards, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_retry_after_restart, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_old_retry_beyond_window, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_sequence_at_int32_max, setup, itest_teardown),
  };
  return cmocka_run_group_tests_name("broker_idempotence", tests, NULL, NULL);
}
