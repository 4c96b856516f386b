/*
 * test_native_dispatch.c — broker/native/dispatch.c: protobuf requests in,
 * the same Responses as the broker always gave out: request-level errors
 * with no operation set (missing bodies, unknown operations, unknown
 * streams), per-shard errors in the items, and the fields of a create,
 * produce, fetch, list offsets and broker info. Drives rn_native_handle on
 * an rn_core_t on a private loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../core/coretest.h"
#include "dispatch.h"
#include "runnel/batch.h"

typedef struct got {
  bool done;
  Runnel__Response *resp; /* a packed-and-unpacked copy: what a client sees */
} got_t;

static void on_reply(void *ctx, const Runnel__Response *resp) {
  got_t *g = ctx;
  assert_false(g->done); /* exactly once */
  assert_int_equal(resp->correlation_id, 0);
  size_t n = runnel__response__get_packed_size(resp);
  uint8_t *buf = malloc(n ? n : 1);
  runnel__response__pack(resp, buf);
  g->resp = runnel__response__unpack(NULL, n, buf);
  free(buf);
  assert_non_null(g->resp);
  g->done = true;
}

static Runnel__Response *call(ct_t *t, const Runnel__Request *req) {
  got_t g = {0};
  rn_native_handle(t->core, req, on_reply, &g);
  ct_run_until(t, &g.done);
  return g.resp;
}

static int setup(void **state) {
  ct_t *t = calloc(1, sizeof(*t));
  ct_init(t);
  ct_open(t);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  ct_t *t = *state;
  ct_fini(t);
  free(t);
  return 0;
}

static void assert_error(const Runnel__Error *e, rn_err_t err, const char *msg) {
  assert_non_null(e);
  assert_int_equal(e->code, rn_err_to_wire(err));
  assert_string_equal(e->name, rn_err_name(err));
  assert_int_equal(e->retriable, rn_err_retriable(err));
  if (msg) assert_string_equal(e->message, msg);
}

static void test_request_level_errors(void **state) {
  ct_t *t = *state;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_CREATE_STREAM; /* no body */
  Runnel__Response *r = call(t, &req);
  assert_int_equal(r->op_case, RUNNEL__RESPONSE__OP__NOT_SET);
  assert_error(r->error, RN_EBADREQUEST, "CreateStream needs a config");
  runnel__response__free_unpacked(r, NULL);

  req.op_case = RUNNEL__REQUEST__OP_DELETE_STREAM;
  r = call(t, &req);
  assert_error(r->error, RN_EBADREQUEST, "DeleteStream needs a name");
  runnel__response__free_unpacked(r, NULL);

  req.op_case = (Runnel__Request__OpCase)99;
  r = call(t, &req);
  assert_error(r->error, RN_EUNKNOWNOP, "unknown operation 99");
  runnel__response__free_unpacked(r, NULL);

  Runnel__DescribeStreamRequest dr = RUNNEL__DESCRIBE_STREAM_REQUEST__INIT;
  dr.name = (char *)(uintptr_t)"nope";
  req.op_case = RUNNEL__REQUEST__OP_DESCRIBE_STREAM;
  req.describe_stream = &dr;
  r = call(t, &req);
  assert_int_equal(r->op_case, RUNNEL__RESPONSE__OP__NOT_SET);
  assert_error(r->error, RN_ENOSTREAM, "stream nope not found");
  runnel__response__free_unpacked(r, NULL);
}

static void test_create_produce_fetch_offsets(void **state) {
  ct_t *t = *state;
  Runnel__StreamConfig c = RUNNEL__STREAM_CONFIG__INIT;
  c.name = (char *)(uintptr_t)"s";
  c.shard_count = 2;
  c.retention_ms = -1;
  Runnel__CreateStreamRequest cr = RUNNEL__CREATE_STREAM_REQUEST__INIT;
  cr.config = &c;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_CREATE_STREAM;
  req.create_stream = &cr;
  Runnel__Response *r = call(t, &req);
  assert_null(r->error);
  assert_int_equal(r->op_case, RUNNEL__RESPONSE__OP_CREATE_STREAM);
  const Runnel__StreamDescription *d = r->create_stream->stream;
  assert_string_equal(d->config->name, "s");
  assert_int_equal(d->config->retention_ms, -1);
  assert_int_equal(d->config->retention_bytes, -1);
  assert_string_equal(d->status, "ACTIVE");
  assert_int_equal(d->n_shards, 2);
  assert_string_equal(d->shards[1]->shard_id, "shardId-000000000001");
  assert_int_equal(d->shards[1]->hash_key_start.len, 16);
  assert_int_equal(d->shards[1]->hash_key_start.data[0], 0x80);
  runnel__response__free_unpacked(r, NULL);

  /* Produce: one good batch, one to a shard that does not exist. */
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  rn_record_t rec = {.timestamp = 1000, .value = (const uint8_t *)"x", .value_len = 1};
  assert_int_equal(rn_batch_builder_add(&b, &rec), 0);
  const uint8_t *bytes;
  size_t len;
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &bytes, &len), 0);
  Runnel__ShardBatch sb[2];
  Runnel__ShardBatch *sbp[2] = {&sb[0], &sb[1]};
  for (int i = 0; i < 2; i++) {
    runnel__shard_batch__init(&sb[i]);
    sb[i].batch.data = (uint8_t *)(uintptr_t)bytes;
    sb[i].batch.len = len;
  }
  sb[1].shard = 9;
  Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
  pr.stream = (char *)(uintptr_t)"s";
  pr.n_batches = 2;
  pr.batches = sbp;
  req.op_case = RUNNEL__REQUEST__OP_PRODUCE;
  req.produce = &pr;
  r = call(t, &req);
  rn_batch_builder_free(&b);
  assert_null(r->error);
  assert_int_equal(r->produce->n_results, 2);
  assert_null(r->produce->results[0]->error);
  assert_int_equal(r->produce->results[0]->base_offset, 0);
  assert_int_equal(r->produce->results[1]->shard, 9);
  assert_error(r->produce->results[1]->error, RN_ENOSHARD, "stream s has no shard 9 (it has 2)");
  runnel__response__free_unpacked(r, NULL);

  /* Fetch it back. */
  Runnel__ShardFetch sf = RUNNEL__SHARD_FETCH__INIT;
  sf.kind = RUNNEL__POSITION_KIND__POSITION_EARLIEST;
  Runnel__ShardFetch *sfp = &sf;
  Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
  fr.stream = (char *)(uintptr_t)"s";
  fr.n_shards = 1;
  fr.shards = &sfp;
  req.op_case = RUNNEL__REQUEST__OP_FETCH;
  req.fetch = &fr;
  r = call(t, &req);
  assert_null(r->error);
  const Runnel__ShardFetchResult *res = r->fetch->results[0];
  assert_null(res->error);
  assert_int_equal(res->batches.len, len);
  assert_int_equal(res->next_offset, 1);
  assert_int_equal(res->end_offset, 1);
  runnel__response__free_unpacked(r, NULL);

  /* List offsets: empty = every shard at LATEST. */
  Runnel__ListOffsetsRequest lr = RUNNEL__LIST_OFFSETS_REQUEST__INIT;
  lr.stream = (char *)(uintptr_t)"s";
  req.op_case = RUNNEL__REQUEST__OP_LIST_OFFSETS;
  req.list_offsets = &lr;
  r = call(t, &req);
  assert_null(r->error);
  assert_int_equal(r->list_offsets->n_shards, 2);
  assert_int_equal(r->list_offsets->shards[0]->offset, 1);
  assert_int_equal(r->list_offsets->shards[1]->offset, 0);
  runnel__response__free_unpacked(r, NULL);
}

static void test_broker_info(void **state) {
  ct_t *t = *state;
  assert_int_equal(ct_create(t, "a", 3), 0);
  Runnel__BrokerInfoRequest bi = RUNNEL__BROKER_INFO_REQUEST__INIT;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_BROKER_INFO;
  req.broker_info = &bi;
  Runnel__Response *r = call(t, &req); /* with the statfs, on the thread pool */
  assert_null(r->error);
  const Runnel__BrokerInfoResponse *i = r->broker_info;
  assert_string_equal(i->health, "ok");
  assert_int_equal(i->stream_count, 1);
  assert_int_equal(i->shard_count, 3);
  assert_null(i->data_dir_error);
  assert_true(i->data_dir_total_bytes > 0);
  assert_string_equal(i->data_dir, t->dir);
  assert_int_equal(i->limits->max_record_bytes, 1u << 20);
  assert_int_equal(i->n_failed_shards, 0);
  runnel__response__free_unpacked(r, NULL);
  bi.skip_disk = true;
  r = call(t, &req);
  assert_int_equal(r->broker_info->data_dir_total_bytes, 0);
  runnel__response__free_unpacked(r, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_request_level_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_create_produce_fetch_offsets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_broker_info, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
