/*
 * test_broker_restart.c — streams and data survive a clean restart of the
 * real runneld (SIGTERM, exit status 0, start again on the same data dir):
 * the stream list, every description (config, retention, durability,
 * creation time, shard ranges, offsets), every record byte-exact; a
 * deleted stream stays deleted; appends continue at the old end; producer
 * ids are never handed out twice.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "itest.h"
#include "testutil.h"

static int setup(void **state) { return itest_setup_with(state, NULL); }

typedef struct snapshot {
  Runnel__Response *desc[2];
  rn_raw_records_t recs[2][3];
} snapshot_t;

static const char *const k_streams[2] = {"keep", "keep2"};
static const uint32_t k_shards[2] = {3, 1};

static void take(rn_raw_env_t *env, snapshot_t *s) {
  for (int i = 0; i < 2; i++) {
    s->desc[i] = rn_raw_describe(&env->c, k_streams[i]);
    assert_rn_ok(s->desc[i], RUNNEL__RESPONSE__OP_DESCRIBE_STREAM);
    for (uint32_t sh = 0; sh < k_shards[i]; sh++) {
      memset(&s->recs[i][sh], 0, sizeof(s->recs[i][sh]));
      assert_int_equal(rn_raw_fetch_all(&env->c, k_streams[i], sh, &s->recs[i][sh]), 0);
    }
  }
}

static void release(snapshot_t *s) {
  for (int i = 0; i < 2; i++) {
    rn_raw_free(s->desc[i]);
    for (uint32_t sh = 0; sh < k_shards[i]; sh++) rn_raw_records_free(&s->recs[i][sh]);
  }
}

static void assert_same_desc(const Runnel__StreamDescription *a, const Runnel__StreamDescription *b) {
  assert_string_equal(a->config->name, b->config->name);
  assert_int_equal(a->config->shard_count, b->config->shard_count);
  assert_int_equal(a->config->retention_ms, b->config->retention_ms);
  assert_int_equal(a->config->retention_bytes, b->config->retention_bytes);
  assert_int_equal(a->config->durability, b->config->durability);
  assert_int_equal(a->created_ms, b->created_ms);
  assert_string_equal(a->status, b->status);
  assert_int_equal(a->n_shards, b->n_shards);
  for (size_t i = 0; i < a->n_shards; i++) {
    assert_string_equal(a->shards[i]->shard_id, b->shards[i]->shard_id);
    assert_int_equal(a->shards[i]->hash_key_start.len, 16);
    assert_memory_equal(a->shards[i]->hash_key_start.data, b->shards[i]->hash_key_start.data, 16);
    assert_memory_equal(a->shards[i]->hash_key_end.data, b->shards[i]->hash_key_end.data, 16);
    assert_int_equal(a->shards[i]->start_offset, b->shards[i]->start_offset);
    assert_int_equal(a->shards[i]->end_offset, b->shards[i]->end_offset);
  }
}

static void assert_same_records(const rn_raw_records_t *a, const rn_raw_records_t *b) {
  assert_int_equal(a->n, b->n);
  assert_int_equal(a->batches, b->batches);
  for (size_t i = 0; i < a->n; i++) {
    assert_int_equal(a->v[i].offset, b->v[i].offset);
    assert_int_equal(a->v[i].batch_base, b->v[i].batch_base);
    assert_int_equal(a->v[i].ts, b->v[i].ts);
    assert_int_equal(a->v[i].key_len, b->v[i].key_len);
    assert_memory_equal(a->v[i].key, b->v[i].key, a->v[i].key_len);
    assert_int_equal(a->v[i].value_len, b->v[i].value_len);
    if (a->v[i].value_len) assert_memory_equal(a->v[i].value, b->v[i].value, a->v[i].value_len);
  }
}

static void produce_some(rn_raw_env_t *env, const char *stream, uint32_t shard, int batches, uint64_t *rng) {
  for (int b = 0; b < batches; b++) {
    rn_raw_rec_t recs[4];
    uint8_t vals[4][300];
    char keys[4][16];
    int n = 1 + (int)rn_test_rand_below(rng, 4);
    for (int i = 0; i < n; i++) {
      size_t vl = 1 + rn_test_rand_below(rng, sizeof(vals[i]));
      for (size_t k = 0; k < vl; k++) vals[i][k] = (uint8_t)rn_test_rand(rng);
      snprintf(keys[i], sizeof(keys[i]), "k%d-%d", b, i);
      recs[i] = (rn_raw_rec_t){.key = keys[i], .key_len = strlen(keys[i]), .value = vals[i], .value_len = vl,
                               .ts = 1000 * (b + 1) + i};
    }
    size_t len;
    uint8_t *bb = rn_raw_batch(recs, (size_t)n, NULL, &len);
    assert_non_null(bb);
    itest_produce_ok(&env->c, stream, shard, bb, len);
    free(bb);
  }
}

static void test_restart_keeps_streams_and_data(void **state) {
  rn_raw_env_t *env = *state;
  uint64_t rng = 99;
  itest_create(&env->c, "keep", 3, RUNNEL__DURABILITY__DURABILITY_SYNC);
  itest_create(&env->c, "keep2", 1, RUNNEL__DURABILITY__DURABILITY_INTERVAL);
  Runnel__Response *r = rn_raw_set_retention(&env->c, "keep2", 86400000, 1 << 30);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_SET_RETENTION);
  rn_raw_free(r);
  for (uint32_t sh = 0; sh < 3; sh++) produce_some(env, "keep", sh, 3 + (int)sh, &rng);
  produce_some(env, "keep2", 0, 5, &rng);

  snapshot_t before;
  take(env, &before);
  assert_int_equal(before.recs[0][2].batches, 5);
  assert_true(before.recs[1][0].n >= 5);

  assert_int_equal(rn_raw_env_stop(env), 0);
  assert_int_equal(rn_raw_env_restart(env), 0);

  /* The same streams, and only those. */
  r = rn_raw_list(&env->c);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_LIST_STREAMS);
  assert_int_equal(r->list_streams->n_names, 2);
  for (size_t i = 0; i < 2; i++)
    assert_true(!strcmp(r->list_streams->names[i], "keep") || !strcmp(r->list_streams->names[i], "keep2"));
  rn_raw_free(r);

  snapshot_t after;
  take(env, &after);
  for (int i = 0; i < 2; i++) {
    assert_same_desc(before.desc[i]->describe_stream->stream, after.desc[i]->describe_stream->stream);
    for (uint32_t sh = 0; sh < k_shards[i]; sh++) assert_same_records(&before.recs[i][sh], &after.recs[i][sh]);
  }
  assert_int_equal(after.desc[1]->describe_stream->stream->config->retention_ms, 86400000);
  assert_int_equal(after.desc[1]->describe_stream->stream->config->durability, RUNNEL__DURABILITY__DURABILITY_INTERVAL);

  /* Appends continue at the old end. */
  uint64_t end = before.desc[0]->describe_stream->stream->shards[1]->end_offset;
  size_t len;
  uint8_t *b = itest_batch1("after restart", 99999, &len);
  assert_int_equal(itest_produce_ok(&env->c, "keep", 1, b, len), end);
  free(b);

  /* A second restart keeps the new record too. */
  assert_int_equal(rn_raw_env_stop(env), 0);
  assert_int_equal(rn_raw_env_restart(env), 0);
  rn_raw_records_t recs = {0};
  assert_int_equal(rn_raw_fetch_all(&env->c, "keep", 1, &recs), 0);
  assert_int_equal(recs.n, before.recs[0][1].n + 1);
  assert_int_equal(recs.v[recs.n - 1].offset, end);
  assert_memory_equal(recs.v[recs.n - 1].value, "after restart", 13);
  rn_raw_records_free(&recs);
  release(&before);
  release(&after);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* A stream loaded from disk at start (rather than created in this process)
 * can be deleted; it stays deleted across a restart, and its name can be
 * reused for a new, empty stream. */
static void test_delete_after_restart(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "old", 2, RUNNEL__DURABILITY__DURABILITY_SYNC);
  size_t len;
  uint8_t *b = itest_batch1("x", 1, &len);
  itest_produce_ok(&env->c, "old", 0, b, len);
  assert_int_equal(rn_raw_env_stop(env), 0);
  assert_int_equal(rn_raw_env_restart(env), 0);
  Runnel__Response *r = rn_raw_delete(&env->c, "old");
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_DELETE_STREAM);
  rn_raw_free(r);
  assert_int_equal(rn_raw_env_stop(env), 0);
  assert_int_equal(rn_raw_env_restart(env), 0);
  r = rn_raw_describe(&env->c, "old");
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  r = rn_raw_list(&env->c);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_LIST_STREAMS);
  assert_int_equal(r->list_streams->n_names, 0);
  rn_raw_free(r);
  itest_create(&env->c, "old", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  assert_int_equal(itest_end_offset(&env->c, "old", 0), 0);
  assert_int_equal(itest_produce_ok(&env->c, "old", 0, b, len), 0);
  free(b);
  assert_int_equal(rn_raw_env_stop(env), 0);
  assert_int_equal(rn_raw_env_restart(env), 0);
  assert_int_equal(itest_end_offset(&env->c, "old", 0), 1);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static uint64_t producer_id(rn_raw_t *c) {
  Runnel__Response *r = rn_raw_init_producer(c);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_INIT_PRODUCER);
  uint64_t id = r->init_producer->producer_id;
  assert_true(id != 0);
  assert_int_equal(r->init_producer->producer_epoch, 0);
  rn_raw_free(r);
  return id;
}

static void test_producer_ids_unique_across_restarts(void **state) {
  rn_raw_env_t *env = *state;
  enum { PER = 5, LIVES = 3 };
  uint64_t ids[PER * LIVES];
  size_t n = 0;
  for (int life = 0; life < LIVES; life++) {
    if (life) assert_int_equal(rn_raw_env_restart(env), 0);
    for (int i = 0; i < PER; i++) {
      uint64_t id = producer_id(&env->c);
      for (size_t k = 0; k < n; k++) assert_true(ids[k] != id);
      ids[n++] = id;
    }
    assert_int_equal(rn_raw_env_stop(env), 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_restart_keeps_streams_and_data, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_delete_after_restart, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_producer_ids_unique_across_restarts, setup, itest_teardown),
  };
  return cmocka_run_group_tests_name("broker_restart", tests, NULL, NULL);
}
