/*
 * test_client_routing.c — librunnel's routing to shard leaders with the
 * real runneld as the leader. There is no cluster runtime yet, so a fake
 * plays the rest of the cluster: the in-process mock broker
 * (tests/unit/client/mock_broker.c) is the client's bootstrap; it answers
 * ENOTLEADER (injected) and describes the stream with leader_address =
 * the real runneld. The client must follow it there:
 *   - the idempotent producer's refused batches are resent to runneld
 *     with the same producer id and sequence numbers, runneld appends them
 *     once, in order, and later batches continue the sequence;
 *   - a consumer redirected the same way reads every record from offset 0
 *     from runneld, none skipped or repeated.
 * What this cannot show yet: runneld answering ENOTLEADER itself, and a
 * new leader deduplicating a batch its predecessor appended (the mock
 * plays that in tests/unit/client/test_client_cluster.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "mock_broker.h"
#include "runnel/runnel.h"
#include "testutil.h"

#define HK_SHARD0 "0"
#define HK_SHARD1 "340282366920938463463374607431768211455"
enum { NREC = 20 };

typedef struct fx {
  char *tmp;
  rn_test_broker_t broker; /* the real leader */
  mock_broker_t *fake;     /* the bootstrap that is not the leader */
  rn_client_t *direct;     /* to runneld, for checking */
} fx_t;

static rn_client_t *client_for(const char *addr) {
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = addr;
  conf.reconnect_backoff_ms = 1;
  conf.reconnect_backoff_max_ms = 10;
  rn_client_t *cl = NULL;
  assert_int_equal(rn_client_new(&conf, &cl), 0);
  return cl;
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  f->tmp = rn_test_tmpdir();
  char dir[600];
  snprintf(dir, sizeof(dir), "%s/data", f->tmp);
  assert_int_equal(rn_test_broker_start(&f->broker, dir, NULL), 0);
  f->direct = client_for(f->broker.addr);
  rn_stream_config_t c = {.name = "s", .shard_count = 2, .durability = RN_DURABILITY_SYNC};
  rn_stream_desc_t *d = NULL;
  rn_err_t err = rn_stream_create(f->direct, &c, &d);
  if (err) fail_msg("create: %s: %s", rn_err_name(err), rn_last_error_message());
  rn_stream_desc_free(d);
  f->fake = mock_broker_start();
  mock_create_stream(f->fake, "s", 2);
  mock_set_leader(f->fake, "s", 0, 1, 1, f->broker.addr);
  mock_set_leader(f->fake, "s", 1, 1, 1, f->broker.addr);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  rn_client_destroy(f->direct);
  mock_broker_stop(f->fake);
  assert_int_equal(rn_test_broker_stop(&f->broker), 0);
  rn_test_rmtree(f->tmp);
  free(f->tmp);
  free(f);
  return 0;
}

typedef struct {
  int calls;
  rn_err_t err;
  uint32_t shard;
  uint64_t offset;
} report_t;

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  report_t *r = opaque;
  r->calls++;
  r->err = err;
  r->shard = shard;
  r->offset = offset;
}

static void produce(rn_producer_t *p, const char *hk, int i, report_t *r) {
  char buf[32];
  snprintf(buf, sizeof buf, "rec-%d", i);
  rn_message_t m = {.stream = "s", .explicit_hash_key = hk, .data = buf, .data_len = strlen(buf),
                    .cb = on_delivery, .opaque = r};
  assert_int_equal(rn_producer_send_message(p, &m), 0);
}

/* Every record of runneld's shard, in order: rec-0 .. rec-(n-1). */
static void expect_shard(rn_client_t *cl, uint32_t shard, int n) {
  rn_consumer_t *c = NULL;
  assert_int_equal(rn_consumer_new(cl, "s", shard, RN_POS_OFFSET, 0, &c), 0);
  char buf[32];
  for (int i = 0; i < n; i++) {
    const rn_record_t *rec = NULL;
    rn_err_t err;
    while ((err = rn_consumer_poll(c, 1000, &rec)) == RN_EAGAIN) {
    }
    if (err) fail_msg("shard %u record %d: %s: %s", shard, i, rn_err_name(err), rn_last_error_message());
    assert_int_equal(rec->offset, (uint64_t)i);
    snprintf(buf, sizeof buf, "rec-%d", i);
    assert_int_equal(rec->value_len, strlen(buf));
    assert_memory_equal(rec->value, buf, rec->value_len);
  }
  const rn_record_t *rec = NULL;
  assert_int_equal(rn_consumer_poll(c, 0, &rec), RN_EAGAIN); /* nothing more: no duplicate */
  rn_consumer_destroy(c);
}

static void test_producer_redirected_to_leader(void **state) {
  fx_t *f = *state;
  rn_client_t *cl = client_for(mock_broker_addr(f->fake));
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.linger_ms = 60000; /* batches go on flush only */
  pc.retry_backoff_ms = 1;
  pc.retry_backoff_max_ms = 5;
  rn_producer_t *p = NULL;
  assert_int_equal(rn_producer_new(cl, &pc, &p), 0);
  /* The producer learns the stream from the fake before it "loses"
   * leadership: its placement then says no leader (the fake itself). */
  mock_set_leader(f->fake, "s", 0, 0, 0, "");
  mock_set_leader(f->fake, "s", 1, 0, 0, "");
  report_t r[2][NREC] = {{{0}}};
  produce(p, HK_SHARD0, 0, &r[0][0]);
  produce(p, HK_SHARD1, 0, &r[1][0]);
  /* leadership "moves" to runneld: the fake refuses the next produce */
  mock_set_leader(f->fake, "s", 0, 1, 2, f->broker.addr);
  mock_set_leader(f->fake, "s", 1, 1, 2, f->broker.addr);
  mock_inject(f->fake, RUNNEL__REQUEST__OP_PRODUCE, MOCK_SHARD_ERR, RN_ENOTLEADER, 1);
  for (int i = 1; i < NREC / 2; i++) {
    produce(p, HK_SHARD0, i, &r[0][i]);
    produce(p, HK_SHARD1, i, &r[1][i]);
  }
  assert_int_equal(rn_producer_flush(p, 20000), 0);
  for (int s = 0; s < 2; s++)
    for (int i = 0; i < NREC / 2; i++) {
      if (r[s][i].err) fail_msg("shard %d record %d: %s", s, i, rn_err_name(r[s][i].err));
      assert_int_equal(r[s][i].calls, 1);
      assert_int_equal(r[s][i].shard, (uint32_t)s);
      assert_int_equal(r[s][i].offset, (uint64_t)i);
    }
  assert_int_equal(mock_count(f->fake, RUNNEL__REQUEST__OP_PRODUCE), 1);
  assert_int_equal(mock_end_offset(f->fake, "s", 0), 0);
  /* the sequences continue at runneld (it would answer a gap ESEQUENCE) */
  for (int i = NREC / 2; i < NREC; i++) {
    produce(p, HK_SHARD0, i, &r[0][i]);
    produce(p, HK_SHARD1, i, &r[1][i]);
  }
  assert_int_equal(rn_producer_flush(p, 20000), 0);
  for (int s = 0; s < 2; s++)
    for (int i = NREC / 2; i < NREC; i++) {
      assert_int_equal(r[s][i].err, 0);
      assert_int_equal(r[s][i].offset, (uint64_t)i);
    }
  assert_int_equal(mock_count(f->fake, RUNNEL__REQUEST__OP_PRODUCE), 1);
  rn_producer_destroy(p);
  rn_client_destroy(cl);
  expect_shard(f->direct, 0, NREC);
  expect_shard(f->direct, 1, NREC);
}

static void test_consumer_redirected_to_leader(void **state) {
  fx_t *f = *state;
  /* records straight into runneld */
  rn_producer_t *p = NULL;
  assert_int_equal(rn_producer_new(f->direct, NULL, &p), 0);
  report_t r[NREC] = {{0}};
  for (int i = 0; i < NREC; i++) produce(p, HK_SHARD0, i, &r[i]);
  assert_int_equal(rn_producer_flush(p, 20000), 0);
  rn_producer_destroy(p);
  /* a consumer whose bootstrap is the fake: redirected on its first fetch */
  rn_client_t *cl = client_for(mock_broker_addr(f->fake));
  mock_inject(f->fake, RUNNEL__REQUEST__OP_FETCH, MOCK_SHARD_ERR, RN_ENOTLEADER, 1);
  expect_shard(cl, 0, NREC);
  assert_int_equal(mock_count(f->fake, RUNNEL__REQUEST__OP_FETCH), 1);
  rn_client_destroy(cl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_producer_redirected_to_leader, setup, teardown),
      cmocka_unit_test_setup_teardown(test_consumer_redirected_to_leader, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
