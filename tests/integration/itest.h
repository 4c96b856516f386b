/*
 * itest.h — assertion helpers shared by the broker integration tests
 * (tests/integration/test_broker_*.c). Include after <cmocka.h>.
 *
 * Every helper asserts on what the real runneld answered over the native
 * protocol (rawclient.h); none sleeps or looks at a clock.
 */
#ifndef RN_TEST_ITEST_H
#define RN_TEST_ITEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rawclient.h"

/* The error e carries expected (an RN_E* constant; RN_OK = no error). On a
 * mismatch the broker's name and message are printed first. */
#define assert_rn_error(e, expected)                                                                  \
  do {                                                                                                 \
    const Runnel__Error *e_ = (e);                                                                     \
    uint32_t got_ = rn_raw_code(e_), want_ = rn_raw_wire(expected);                                    \
    if (got_ != want_)                                                                                 \
      print_message("expected %s, got code %u %s: %s\n", rn_err_name(expected), got_,                  \
                    e_ && e_->name ? e_->name : "(none)", e_ && e_->message ? e_->message : "");      \
    assert_int_equal(got_, want_);                                                                     \
    if (e_) {                                                                                          \
      assert_non_null(e_->name);                                                                       \
      assert_string_equal(e_->name, rn_err_name(expected));                                            \
    }                                                                                                  \
  } while (0)

/* resp arrived, carries no request-level error and answers op_case. */
#define assert_rn_ok(resp, op)                                                                        \
  do {                                                                                                 \
    const Runnel__Response *r_ = (resp);                                                               \
    assert_non_null(r_);                                                                               \
    assert_rn_error(r_->error, RN_OK);                                                                 \
    assert_int_equal(r_->op_case, (op));                                                               \
  } while (0)

/* Fixture setup/teardown for cmocka: *state is an rn_raw_env_t with a
 * running broker and env->c connected. itest_setup_with passes extra
 * runneld arguments. */
static inline int itest_setup_with(void **state, const char *const *extra) {
  rn_raw_env_t *env = calloc(1, sizeof(*env));
  if (!env) return -1;
  if (rn_raw_env_start(env, extra)) {
    rn_raw_env_destroy(env);
    free(env);
    return -1;
  }
  *state = env;
  return 0;
}

static inline int itest_teardown(void **state) {
  rn_raw_env_t *env = *state;
  if (env) {
    rn_raw_env_destroy(env);
    free(env);
  }
  return 0;
}

/* Create stream name with n shards (durability sync unless given). */
static inline void itest_create(rn_raw_t *c, const char *name, uint32_t shards, Runnel__Durability d) {
  Runnel__Response *r = rn_raw_create(c, name, shards, d);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_CREATE_STREAM);
  rn_raw_free(r);
}

/* Produce one batch to one shard; assert success; return the base offset. */
static inline uint64_t itest_produce_ok(rn_raw_t *c, const char *stream, uint32_t shard, const uint8_t *batch,
                                        size_t len) {
  Runnel__Response *r = rn_raw_produce1(c, stream, shard, batch, len);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_PRODUCE);
  const Runnel__ShardBatchResult *res = rn_raw_produce_result(r);
  assert_non_null(res);
  assert_rn_error(res->error, RN_OK);
  assert_int_equal(res->shard, shard);
  assert_false(res->duplicate);
  uint64_t base = res->base_offset;
  rn_raw_free(r);
  return base;
}

/* Produce one batch and return the batch-level error's wire code (0 = ok);
 * asserts the request itself was accepted. */
static inline uint32_t itest_produce_code(rn_raw_t *c, const char *stream, uint32_t shard, const uint8_t *batch,
                                          size_t len) {
  Runnel__Response *r = rn_raw_produce1(c, stream, shard, batch, len);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_PRODUCE);
  const Runnel__ShardBatchResult *res = rn_raw_produce_result(r);
  assert_non_null(res);
  uint32_t code = rn_raw_code(res->error);
  if (code) print_message("  (batch refused: %s: %s)\n", res->error->name, res->error->message);
  rn_raw_free(r);
  return code;
}

/* End offset (high watermark) of one shard, from DescribeStream. */
static inline uint64_t itest_end_offset(rn_raw_t *c, const char *stream, uint32_t shard) {
  Runnel__Response *r = rn_raw_describe(c, stream);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_DESCRIBE_STREAM);
  assert_true(shard < r->describe_stream->stream->n_shards);
  uint64_t end = r->describe_stream->stream->shards[shard]->end_offset;
  rn_raw_free(r);
  return end;
}

/* One record with a string value, a fixed key and timestamp. */
static inline uint8_t *itest_batch1(const char *value, int64_t ts, size_t *len) {
  const char *v[1] = {value};
  uint8_t *b = rn_raw_batch_strings(v, 1, ts, NULL, len);
  assert_non_null(b);
  return b;
}

#endif
