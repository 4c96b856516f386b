/*
 * test_broker_admin.c — stream administration against the real runneld:
 * create (validation, duplicates), list, describe (shard ids and the hash
 * ranges, recomputed here independently of the broker), set retention,
 * delete, and re-create under the same name; BrokerInfo, with and without
 * the data directory's sizes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "itest.h"

typedef unsigned __int128 u128;

/* Small max_shards so the "too many" boundary is cheap to reach. */
static const char *const k_args[] = {"--set", "max_shards=64", NULL};
static int setup(void **state) { return itest_setup_with(state, k_args); }

static u128 be128(const ProtobufCBinaryData *b) {
  assert_int_equal(b->len, 16);
  u128 v = 0;
  for (size_t i = 0; i < 16; i++) v = (v << 8) | b->data[i];
  return v;
}

/* floor(2^128 / n) without the broker's formula: 2^128 = 2 * 2^127, so
 * floor(2^128/n) = 2*floor(2^127/n) + (2*(2^127 mod n) >= n). */
static u128 step_of(uint32_t n) {
  u128 half = (u128)1 << 127;
  u128 q = half / n, r = half % n;
  return 2 * q + (2 * r >= n ? 1 : 0);
}

static void create_expect(rn_raw_t *c, const char *name, uint32_t shards, rn_err_t expected) {
  Runnel__Response *r = rn_raw_create(c, name, shards, RUNNEL__DURABILITY__DURABILITY_SYNC);
  assert_non_null(r);
  assert_rn_error(r->error, expected);
  if (expected != RN_OK) assert_int_equal(r->op_case, RUNNEL__RESPONSE__OP__NOT_SET);
  rn_raw_free(r);
}

static bool listed(rn_raw_t *c, const char *name, size_t *count) {
  Runnel__Response *r = rn_raw_list(c);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_LIST_STREAMS);
  bool found = false;
  for (size_t i = 0; i < r->list_streams->n_names; i++) found |= !strcmp(r->list_streams->names[i], name);
  if (count) *count = r->list_streams->n_names;
  rn_raw_free(r);
  return found;
}

static void test_create_validation(void **state) {
  rn_raw_env_t *env = *state;
  char long129[130], long128[129];
  memset(long129, 'a', 129);
  long129[129] = 0;
  memset(long128, 'b', 128);
  long128[128] = 0;
  const char *bad[] = {"", "has space", "slash/name", "..", ".", "tab\tname", "caf\xc3\xa9", "semi;colon", long129};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) create_expect(&env->c, bad[i], 1, RN_EINVAL);
  create_expect(&env->c, "zero-shards", 0, RN_EINVAL);
  create_expect(&env->c, "too-many", 65, RN_EINVAL);
  create_expect(&env->c, "way-too-many", UINT32_MAX, RN_EINVAL);

  /* Nothing of the above exists. */
  size_t n = 99;
  assert_false(listed(&env->c, "zero-shards", &n));
  assert_int_equal(n, 0);

  /* The boundaries themselves are accepted. */
  create_expect(&env->c, long128, 1, RN_OK);
  create_expect(&env->c, "max-shards", 64, RN_OK);
  create_expect(&env->c, "A-z_0.9", 1, RN_OK);

  /* Unknown durability. */
  Runnel__Response *r = rn_raw_create(&env->c, "bad-durability", 1, (Runnel__Durability)7);
  assert_non_null(r);
  assert_rn_error(r->error, RN_EINVAL);
  rn_raw_free(r);

  assert_true(listed(&env->c, long128, &n));
  assert_true(listed(&env->c, "max-shards", NULL));
  assert_true(listed(&env->c, "A-z_0.9", NULL));
  assert_int_equal(n, 3);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static void test_duplicate(void **state) {
  rn_raw_env_t *env = *state;
  create_expect(&env->c, "dup", 2, RN_OK);
  create_expect(&env->c, "dup", 2, RN_EEXIST);
  create_expect(&env->c, "dup", 5, RN_EEXIST);
  Runnel__Response *r = rn_raw_describe(&env->c, "dup");
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_DESCRIBE_STREAM);
  assert_int_equal(r->describe_stream->stream->config->shard_count, 2);
  assert_int_equal(r->describe_stream->stream->n_shards, 2);
  rn_raw_free(r);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static void test_list(void **state) {
  rn_raw_env_t *env = *state;
  size_t n = 99;
  assert_false(listed(&env->c, "a", &n));
  assert_int_equal(n, 0);
  const char *names[] = {"orders", "clicks", "audit.log"};
  for (size_t i = 0; i < 3; i++) create_expect(&env->c, names[i], 1, RN_OK);
  Runnel__Response *r = rn_raw_list(&env->c);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_LIST_STREAMS);
  assert_int_equal(r->list_streams->n_names, 3);
  for (size_t i = 0; i < 3; i++) {
    int seen = 0;
    for (size_t k = 0; k < r->list_streams->n_names; k++) seen += !strcmp(r->list_streams->names[k], names[i]);
    assert_int_equal(seen, 1);
  }
  rn_raw_free(r);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* Describe's shards: ids, indexes, offsets of a new stream, and hash ranges
 * that equal i*floor(2^128/N) .. next-1, the last ending at 2^128-1. */
static void check_ranges(rn_raw_t *c, const char *name, uint32_t n, const Runnel__StreamDescription *d) {
  assert_non_null(d);
  assert_non_null(d->config);
  assert_string_equal(d->config->name, name);
  assert_int_equal(d->config->shard_count, n);
  assert_string_equal(d->status, "ACTIVE");
  assert_true(d->created_ms > 0);
  assert_int_equal(d->n_shards, n);
  u128 step = step_of(n);
  u128 max = ~(u128)0;
  for (uint32_t i = 0; i < n; i++) {
    const Runnel__ShardInfo *si = d->shards[i];
    char id[32];
    snprintf(id, sizeof(id), "shardId-%012u", i);
    assert_int_equal(si->index, i);
    assert_string_equal(si->shard_id, id);
    assert_int_equal(si->start_offset, 0);
    assert_int_equal(si->end_offset, 0);
    u128 s = be128(&si->hash_key_start), e = be128(&si->hash_key_end);
    u128 want_s = (u128)i * step;
    u128 want_e = i + 1 == n ? max : (u128)(i + 1) * step - 1;
    if (s != want_s || e != want_e)
      print_message("%s shard %u of %u: range [%016llx%016llx, %016llx%016llx]\n", name, i, n,
                    (unsigned long long)(s >> 64), (unsigned long long)s, (unsigned long long)(e >> 64),
                    (unsigned long long)e);
    assert_true(s == want_s);
    assert_true(e == want_e);
    assert_true(s <= e);
    if (i == 0) assert_true(s == 0);
    if (i > 0) assert_true(s == be128(&d->shards[i - 1]->hash_key_end) + 1); /* contiguous */
  }
  (void)c;
}

static void test_describe_ranges(void **state) {
  rn_raw_env_t *env = *state;
  const uint32_t counts[] = {1, 2, 3, 4, 7, 10, 64};
  for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
    char name[32];
    snprintf(name, sizeof(name), "ranges-%u", counts[k]);
    Runnel__Response *r = rn_raw_create(&env->c, name, counts[k], RUNNEL__DURABILITY__DURABILITY_SYNC);
    assert_rn_ok(r, RUNNEL__RESPONSE__OP_CREATE_STREAM);
    check_ranges(&env->c, name, counts[k], r->create_stream->stream); /* the create answer describes it */
    rn_raw_free(r);
    r = rn_raw_describe(&env->c, name);
    assert_rn_ok(r, RUNNEL__RESPONSE__OP_DESCRIBE_STREAM);
    check_ranges(&env->c, name, counts[k], r->describe_stream->stream);
    assert_int_equal(r->describe_stream->stream->config->durability, RUNNEL__DURABILITY__DURABILITY_SYNC);
    rn_raw_free(r);
  }
  /* Durability is reported as created. */
  Runnel__Response *r = rn_raw_create(&env->c, "interval", 1, RUNNEL__DURABILITY__DURABILITY_INTERVAL);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_CREATE_STREAM);
  rn_raw_free(r);
  r = rn_raw_describe(&env->c, "interval");
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_DESCRIBE_STREAM);
  assert_int_equal(r->describe_stream->stream->config->durability, RUNNEL__DURABILITY__DURABILITY_INTERVAL);
  rn_raw_free(r);
  r = rn_raw_describe(&env->c, "no-such-stream");
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static void test_set_retention(void **state) {
  rn_raw_env_t *env = *state;
  create_expect(&env->c, "ret", 2, RN_OK);
  Runnel__Response *r = rn_raw_describe(&env->c, "ret");
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_DESCRIBE_STREAM);
  /* Created without one: the broker-wide default_retention (24 h). */
  assert_int_equal(r->describe_stream->stream->config->retention_ms, 24 * 3600 * 1000);
  assert_true(r->describe_stream->stream->config->retention_bytes <= 0);
  rn_raw_free(r);

  r = rn_raw_set_retention(&env->c, "ret", 3600000, 1 << 30);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_SET_RETENTION);
  assert_non_null(r->set_retention->stream);
  assert_int_equal(r->set_retention->stream->config->retention_ms, 3600000);
  assert_int_equal(r->set_retention->stream->config->retention_bytes, 1 << 30);
  assert_int_equal(r->set_retention->stream->n_shards, 2);
  rn_raw_free(r);

  r = rn_raw_describe(&env->c, "ret");
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_DESCRIBE_STREAM);
  assert_int_equal(r->describe_stream->stream->config->retention_ms, 3600000);
  assert_int_equal(r->describe_stream->stream->config->retention_bytes, 1 << 30);
  rn_raw_free(r);

  /* Back to "keep forever". */
  r = rn_raw_set_retention(&env->c, "ret", -1, 0);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_SET_RETENTION);
  assert_true(r->set_retention->stream->config->retention_ms <= 0);
  assert_true(r->set_retention->stream->config->retention_bytes <= 0);
  rn_raw_free(r);

  r = rn_raw_set_retention(&env->c, "nope", 1000, 0);
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static void test_delete_and_recreate(void **state) {
  rn_raw_env_t *env = *state;
  create_expect(&env->c, "gone", 2, RN_OK);
  create_expect(&env->c, "stays", 1, RN_OK);
  const char *vals[] = {"one", "two", "three"};
  size_t len = 0;
  uint8_t *b = rn_raw_batch_strings(vals, 3, 1000, NULL, &len);
  assert_non_null(b);
  assert_int_equal(itest_produce_ok(&env->c, "gone", 0, b, len), 0);
  assert_int_equal(itest_produce_ok(&env->c, "gone", 1, b, len), 0);
  assert_int_equal(itest_produce_ok(&env->c, "gone", 0, b, len), 3);

  Runnel__Response *r = rn_raw_delete(&env->c, "gone");
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_DELETE_STREAM);
  rn_raw_free(r);

  /* Every operation now says ENOSTREAM. */
  r = rn_raw_describe(&env->c, "gone");
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  r = rn_raw_delete(&env->c, "gone");
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  r = rn_raw_produce1(&env->c, "gone", 0, b, len);
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  r = rn_raw_fetch1(&env->c, "gone", 0, RUNNEL__POSITION_KIND__POSITION_EARLIEST, 0, 0, 0);
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  r = rn_raw_set_retention(&env->c, "gone", 1000, 0);
  assert_non_null(r);
  assert_rn_error(r->error, RN_ENOSTREAM);
  rn_raw_free(r);
  size_t n = 0;
  assert_false(listed(&env->c, "gone", &n));
  assert_int_equal(n, 1);
  assert_true(listed(&env->c, "stays", NULL));

  /* Re-created under the same name: a new, empty stream of its own shape. */
  r = rn_raw_create(&env->c, "gone", 3, RUNNEL__DURABILITY__DURABILITY_SYNC);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_CREATE_STREAM);
  check_ranges(&env->c, "gone", 3, r->create_stream->stream);
  rn_raw_free(r);
  for (uint32_t s = 0; s < 3; s++) {
    rn_raw_records_t recs = {0};
    assert_int_equal(rn_raw_fetch_all(&env->c, "gone", s, &recs), 0);
    assert_int_equal(recs.n, 0);
    rn_raw_records_free(&recs);
  }
  r = rn_raw_fetch1(&env->c, "gone", 0, RUNNEL__POSITION_KIND__POSITION_OFFSET, 3, 0, 0);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_FETCH);
  assert_rn_error(rn_raw_fetch_result(r)->error, RN_EOFFSET); /* the old offsets are gone */
  rn_raw_free(r);
  assert_int_equal(itest_produce_ok(&env->c, "gone", 0, b, len), 0);
  rn_raw_records_t recs = {0};
  assert_int_equal(rn_raw_fetch_all(&env->c, "gone", 0, &recs), 0);
  assert_int_equal(recs.n, 3);
  assert_int_equal(recs.v[0].offset, 0);
  assert_memory_equal(recs.v[2].value, "three", 5);
  rn_raw_records_free(&recs);
  free(b);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* Two creates of one name in flight at once: exactly one wins. */
static void test_concurrent_create_same_name(void **state) {
  rn_raw_env_t *env = *state;
  rn_raw_t b;
  assert_int_equal(rn_raw_connect(&b, env->broker.port), 0);
  Runnel__StreamConfig cfg = RUNNEL__STREAM_CONFIG__INIT;
  cfg.name = "race";
  cfg.shard_count = 4;
  Runnel__CreateStreamRequest cr = RUNNEL__CREATE_STREAM_REQUEST__INIT;
  cr.config = &cfg;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_CREATE_STREAM;
  req.create_stream = &cr;
  uint64_t c1 = rn_raw_send(&env->c, &req), c2 = rn_raw_send(&env->c, &req), c3 = rn_raw_send(&b, &req);
  Runnel__Response *r[3] = {rn_raw_recv(&env->c, c1), rn_raw_recv(&env->c, c2), rn_raw_recv(&b, c3)};
  int ok = 0, exists = 0;
  for (int i = 0; i < 3; i++) {
    assert_non_null(r[i]);
    if (!r[i]->error)
      ok++;
    else if (r[i]->error->code == rn_raw_wire(RN_EEXIST))
      exists++;
    rn_raw_free(r[i]);
  }
  assert_int_equal(ok, 1);
  assert_int_equal(exists, 2);
  rn_raw_close(&b);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

/* Delete a stream while produces and fetches on it are in flight on
 * another connection: each is answered (success or ENOSTREAM), and the
 * broker stays sound (clean exit, sanitizers quiet). The stream comes from
 * disk (a restart) so this checks the in-flight handling on its own. */
static void test_delete_with_requests_in_flight(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "busy", 2, RUNNEL__DURABILITY__DURABILITY_SYNC);
  assert_int_equal(rn_raw_env_stop(env), 0);
  assert_int_equal(rn_raw_env_restart(env), 0);
  enum { N = 60 };
  uint64_t corr[N];
  size_t len;
  uint8_t *b = itest_batch1("in flight", 7, &len);
  for (int i = 0; i < N; i++) {
    if (i % 3 == 2)
      corr[i] = rn_raw_send_fetch1(&env->c, "busy", (uint32_t)(i % 2), RUNNEL__POSITION_KIND__POSITION_EARLIEST, 0, 0, 0);
    else
      corr[i] = rn_raw_send_produce1(&env->c, "busy", (uint32_t)(i % 2), b, len);
    assert_true(corr[i] != 0);
  }
  free(b);
  rn_raw_t other;
  assert_int_equal(rn_raw_connect(&other, env->broker.port), 0);
  Runnel__Response *d = rn_raw_delete(&other, "busy");
  assert_rn_ok(d, RUNNEL__RESPONSE__OP_DELETE_STREAM);
  rn_raw_free(d);
  for (int i = 0; i < N; i++) {
    Runnel__Response *r = rn_raw_recv(&env->c, corr[i]);
    assert_non_null(r);
    uint32_t code = rn_raw_code(r->error);
    if (!code && r->op_case == RUNNEL__RESPONSE__OP_PRODUCE) code = rn_raw_code(rn_raw_produce_result(r)->error);
    if (!code && r->op_case == RUNNEL__RESPONSE__OP_FETCH) code = rn_raw_code(rn_raw_fetch_result(r)->error);
    if (code != 0 && code != rn_raw_wire(RN_ENOSTREAM))
      print_message("request %d: %s: %s\n", i, r->error ? r->error->name : "(shard)", r->error ? r->error->message : "");
    assert_true(code == 0 || code == rn_raw_wire(RN_ENOSTREAM));
    rn_raw_free(r);
  }
  d = rn_raw_describe(&other, "busy");
  assert_non_null(d);
  assert_rn_error(d->error, RN_ENOSTREAM);
  rn_raw_free(d);
  rn_raw_close(&other);
  assert_int_equal(rn_raw_env_stop(env), 0);
}

static Runnel__Response *broker_info(rn_raw_t *c, bool skip_disk) {
  Runnel__BrokerInfoRequest bir;
  runnel__broker_info_request__init(&bir);
  bir.skip_disk = skip_disk;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_BROKER_INFO;
  req.broker_info = &bir;
  Runnel__Response *r = rn_raw_call(c, &req);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_BROKER_INFO);
  return r;
}

static void test_broker_info(void **state) {
  rn_raw_env_t *env = *state;
  itest_create(&env->c, "a", 2, RUNNEL__DURABILITY__DURABILITY_SYNC);
  Runnel__Response *r = broker_info(&env->c, false);
  const Runnel__BrokerInfoResponse *bi = r->broker_info;
  assert_true(bi->data_dir_total_bytes > 0);
  assert_true(bi->data_dir_free_bytes <= bi->data_dir_total_bytes);
  assert_null(bi->data_dir_error);
  assert_string_equal(bi->data_dir, env->broker.data_dir);
  assert_non_null(bi->limits);
  assert_int_equal(bi->limits->max_record_bytes, 1u << 20); /* the defaults */
  assert_int_equal(bi->limits->max_batch_bytes, 8u << 20);
  assert_int_equal(bi->limits->max_frame_bytes, 16u << 20);
  assert_int_equal(bi->limits->max_fetch_bytes, 16u << 20);
  assert_int_equal(bi->stream_count, 1);
  assert_int_equal(bi->shard_count, 2);
  assert_int_equal(bi->n_failed_shards, 0);
  assert_string_equal(bi->health, "ok");
  int64_t start = bi->start_ms;
  assert_true(start > 0);
  rn_raw_free(r);
  /* skip_disk (the handshake's form): the same without the sizes. */
  r = broker_info(&env->c, true);
  bi = r->broker_info;
  assert_int_equal(bi->data_dir_total_bytes, 0);
  assert_int_equal(bi->data_dir_free_bytes, 0);
  assert_null(bi->data_dir_error);
  assert_int_equal(bi->limits->max_frame_bytes, 16u << 20);
  assert_int_equal(bi->shard_count, 2);
  assert_int_equal(bi->start_ms, start);
  rn_raw_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_create_validation, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_duplicate, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_list, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_describe_ranges, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_set_retention, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_delete_and_recreate, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_create_same_name, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_delete_with_requests_in_flight, setup, itest_teardown),
      cmocka_unit_test_setup_teardown(test_broker_info, setup, itest_teardown),
  };
  return cmocka_run_group_tests_name("broker_admin", tests, NULL, NULL);
}
