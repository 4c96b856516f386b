/*
 * test_client_cluster.c — librunnel's routing to shard leaders, against
 * in-process mock brokers playing a cluster: the bootstrap list parser
 * (white-box: client_int.h), a bootstrap list whose first address is dead,
 * produce batches split per leader, the idempotent producer redirected by
 * ENOTLEADER (the same batch, same producer id and sequence, appended once
 * at the new leader), a leader's connection lost after it appended
 * (resent there, answered as a duplicate: exactly once), and a consumer
 * following its shard's leader from one mock to another without skipping
 * or repeating a record.
 *
 * A mock broker serves every shard it is asked for; "leader" is only what
 * the bootstrap mock's DescribeStream says (mock_set_leader). No sleeps:
 * every step waits for a flush or a poll.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "client_int.h"
#include "mock_broker.h"
#include "runnel/runnel.h"

#define HK_SHARD0 "0"
#define HK_SHARD1 "340282366920938463463374607431768211455"

static rn_client_t *client_for(const char *broker) {
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = broker;
  conf.reconnect_backoff_ms = 1;
  conf.reconnect_backoff_max_ms = 5;
  conf.connect_timeout_ms = 2000;
  rn_client_t *cl = NULL;
  assert_int_equal(rn_client_new(&conf, &cl), 0);
  return cl;
}

static rn_producer_conf_t quick_conf(void) {
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.linger_ms = 60000; /* batches go only on flush */
  pc.retry_backoff_ms = 1;
  pc.retry_backoff_max_ms = 2;
  return pc;
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

static void send_to(rn_producer_t *p, const char *stream, const char *hk, const char *data, report_t *r) {
  rn_message_t m = {.stream = stream, .explicit_hash_key = hk, .data = data, .data_len = strlen(data),
                    .cb = on_delivery, .opaque = r};
  assert_int_equal(rn_producer_send_message(p, &m), 0);
}

/* A loopback port nothing listens on (bound, then closed). */
static unsigned dead_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  socklen_t len = sizeof sa;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

/* ---- the bootstrap list ------------------------------------------------------- */

static void test_addr_list_parse(void **state) {
  (void)state;
  rn__addr_t *a = NULL;
  size_t n = 0;
  assert_int_equal(rn__addr_list_parse("127.0.0.1:7400", &a, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(a[0].host, "127.0.0.1");
  assert_string_equal(a[0].port, "7400");
  assert_string_equal(a[0].text, "127.0.0.1:7400");
  rn__addr_list_free(a, n);

  assert_int_equal(rn__addr_list_parse(" b1:1 ,[::1]:2,\tb3:65535 ", &a, &n), 0);
  assert_int_equal(n, 3);
  assert_string_equal(a[0].host, "b1");
  assert_string_equal(a[0].text, "b1:1");
  assert_string_equal(a[1].host, "::1");
  assert_string_equal(a[1].port, "2");
  assert_string_equal(a[1].text, "[::1]:2");
  assert_string_equal(a[2].host, "b3");
  assert_string_equal(a[2].port, "65535");
  rn__addr_list_free(a, n);

  const char *bad[] = {"", ",", "a:1,", ",a:1", "a:1,,b:2", "a", "a:", ":1", "a:0", "a:65536", "a:1x", "[::1]2",
                       "a:1, ,b:2"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    a = NULL;
    assert_int_equal(rn__addr_list_parse(bad[i], &a, &n), RN_EINVAL);
    assert_null(a);
  }
  assert_int_equal(rn__addr_list_parse(NULL, &a, &n), RN_EINVAL);
  rn__addr_list_free(NULL, 0);

  /* the public entry point takes a list, and refuses a malformed one */
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  rn_client_t *cl = NULL;
  conf.broker = "127.0.0.1:1,127.0.0.1:2";
  assert_int_equal(rn_client_new(&conf, &cl), 0);
  rn_client_destroy(cl);
  conf.broker = "127.0.0.1:1,,";
  assert_int_equal(rn_client_new(&conf, &cl), RN_EINVAL);
}

static void test_bootstrap_first_dead(void **state) {
  (void)state;
  mock_broker_t *mb = mock_broker_start();
  mock_create_stream(mb, "s", 1);
  char list[160];
  snprintf(list, sizeof list, "127.0.0.1:%u,%s", dead_port(), mock_broker_addr(mb));
  rn_client_t *cl = client_for(list);
  /* the first request waits while the dead address fails and the next
   * one answers: no RN_ECONNECTION reaches the caller */
  rn_stream_desc_t *d = NULL;
  assert_int_equal(rn_stream_describe(cl, "s", &d), 0);
  assert_int_equal(d->shard_count, 1);
  assert_string_equal(d->shards[0].leader_address, "");
  rn_stream_desc_free(d);
  rn_client_destroy(cl);

  /* every address dead: the request fails (retriable) */
  snprintf(list, sizeof list, "127.0.0.1:%u,127.0.0.1:%u", dead_port(), dead_port());
  cl = client_for(list);
  assert_int_equal(rn_stream_describe(cl, "s", &d), RN_ECONNECTION);
  rn_client_destroy(cl);
  mock_broker_stop(mb);
}

static void test_route_pool(void **state) {
  (void)state;
  mock_broker_t *mb = mock_broker_start();
  rn_client_t *cl = client_for(mock_broker_addr(mb));
  assert_ptr_equal(rn__client_route(cl, NULL), cl);
  assert_ptr_equal(rn__client_route(cl, ""), cl);
  assert_ptr_equal(rn__client_route(cl, mock_broker_addr(mb)), cl); /* the bootstrap itself */
  rn_client_t *a = rn__client_route(cl, "127.0.0.1:1");
  assert_ptr_not_equal(a, cl);
  assert_ptr_equal(rn__client_route(cl, "127.0.0.1:1"), a); /* one per address */
  rn_client_t *b = rn__client_route(cl, "127.0.0.1:2");
  assert_ptr_not_equal(b, a);
  assert_true(rn__client_is_peer(cl, a));
  assert_false(rn__client_is_peer(cl, cl));
  assert_ptr_equal(rn__client_route(cl, "not an address"), cl); /* the bootstrap answers instead */
  assert_false(rn__client_on_io_thread(cl));
  rn_client_destroy(cl); /* frees the pool too (ASan) */
  mock_broker_stop(mb);
}

/* ---- producer -------------------------------------------------------------------- */

static void test_produce_per_leader(void **state) {
  (void)state;
  mock_broker_t *boot = mock_broker_start(), *lead = mock_broker_start();
  mock_create_stream(boot, "s", 2);
  mock_create_stream(lead, "s", 2);
  mock_set_leader(boot, "s", 0, 2, 1, mock_broker_addr(lead)); /* shard 1: no leader: the bootstrap */
  rn_client_t *cl = client_for(mock_broker_addr(boot));
  rn_producer_conf_t pc = quick_conf();
  rn_producer_t *p = NULL;
  assert_int_equal(rn_producer_new(cl, &pc, &p), 0);
  report_t r[6] = {0};
  for (int i = 0; i < 3; i++) {
    send_to(p, "s", HK_SHARD0, "zero", &r[i]);
    send_to(p, "s", HK_SHARD1, "one", &r[3 + i]);
  }
  assert_int_equal(rn_producer_flush(p, 10000), 0);
  for (int i = 0; i < 6; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_int_equal(r[i].err, 0);
    assert_int_equal(r[i].shard, i < 3 ? 0 : 1);
    assert_int_equal(r[i].offset, (uint64_t)(i % 3));
  }
  assert_int_equal(mock_end_offset(lead, "s", 0), 3);
  assert_int_equal(mock_end_offset(lead, "s", 1), 0);
  assert_int_equal(mock_end_offset(boot, "s", 0), 0);
  assert_int_equal(mock_end_offset(boot, "s", 1), 3);
  rn_producer_destroy(p);
  rn_client_destroy(cl);
  mock_broker_stop(lead);
  mock_broker_stop(boot);
}

static void test_produce_not_leader_redirect(void **state) {
  (void)state;
  mock_broker_t *boot = mock_broker_start(), *lead = mock_broker_start();
  mock_create_stream(boot, "s", 1);
  mock_create_stream(lead, "s", 1);
  rn_client_t *cl = client_for(mock_broker_addr(boot));
  rn_producer_conf_t pc = quick_conf();
  rn_producer_t *p = NULL;
  assert_int_equal(rn_producer_new(cl, &pc, &p), 0);
  /* the producer learns the stream while the bootstrap is the leader;
   * then leadership moves: the bootstrap refuses the batch */
  report_t r[4] = {0};
  send_to(p, "s", HK_SHARD0, "a", &r[0]);
  send_to(p, "s", HK_SHARD0, "b", &r[1]);
  mock_set_leader(boot, "s", 0, 2, 2, mock_broker_addr(lead));
  mock_inject(boot, RUNNEL__REQUEST__OP_PRODUCE, MOCK_SHARD_ERR, RN_ENOTLEADER, 1);
  unsigned describes = mock_count(boot, RUNNEL__REQUEST__OP_DESCRIBE_STREAM);
  assert_int_equal(rn_producer_flush(p, 10000), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_int_equal(r[i].err, 0);
    assert_int_equal(r[i].offset, (uint64_t)i);
  }
  assert_int_equal(mock_count(boot, RUNNEL__REQUEST__OP_PRODUCE), 1);
  assert_true(mock_count(boot, RUNNEL__REQUEST__OP_DESCRIBE_STREAM) > describes);
  assert_int_equal(mock_end_offset(boot, "s", 0), 0);
  assert_int_equal(mock_end_offset(lead, "s", 0), 2);
  /* the very batch the old leader refused: same producer id, sequence 0 */
  assert_int_equal(mock_batches(lead), 1);
  uint32_t shard, count;
  uint8_t codec;
  uint64_t pid;
  int32_t seq;
  mock_batch_info(lead, 0, &shard, &count, &codec, &pid, &seq);
  assert_int_equal(count, 2);
  assert_int_equal(seq, 0);
  assert_true(pid != 0);
  /* and the sequences continue there */
  send_to(p, "s", HK_SHARD0, "c", &r[2]);
  send_to(p, "s", HK_SHARD0, "d", &r[3]);
  assert_int_equal(rn_producer_flush(p, 10000), 0);
  assert_int_equal(r[3].err, 0);
  assert_int_equal(r[3].offset, 3);
  uint64_t pid2;
  mock_batch_info(lead, 1, &shard, &count, &codec, &pid2, &seq);
  assert_int_equal(pid2, pid);
  assert_int_equal(seq, 2);
  assert_int_equal(mock_count(boot, RUNNEL__REQUEST__OP_PRODUCE), 1);
  rn_producer_destroy(p);
  rn_client_destroy(cl);
  mock_broker_stop(lead);
  mock_broker_stop(boot);
}

static void test_produce_leader_lost_after_append(void **state) {
  (void)state;
  mock_broker_t *boot = mock_broker_start(), *lead = mock_broker_start();
  mock_create_stream(boot, "s", 1);
  mock_create_stream(lead, "s", 1);
  mock_set_leader(boot, "s", 0, 2, 1, mock_broker_addr(lead));
  rn_client_t *cl = client_for(mock_broker_addr(boot));
  rn_producer_conf_t pc = quick_conf();
  rn_producer_t *p = NULL;
  assert_int_equal(rn_producer_new(cl, &pc, &p), 0);
  /* the leader appends, then its connection drops before the answer */
  mock_inject(lead, RUNNEL__REQUEST__OP_PRODUCE, MOCK_DROP_AFTER, 0, 1);
  report_t r[3] = {0};
  for (int i = 0; i < 3; i++) send_to(p, "s", HK_SHARD0, "x", &r[i]);
  assert_int_equal(rn_producer_flush(p, 10000), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_int_equal(r[i].err, 0);
    assert_int_equal(r[i].offset, (uint64_t)i);
  }
  /* appended once; the resend was answered from the dedup window */
  assert_int_equal(mock_end_offset(lead, "s", 0), 3);
  assert_int_equal(mock_batches(lead), 1);
  assert_int_equal(mock_duplicates(lead), 1);
  assert_int_equal(mock_count(lead, RUNNEL__REQUEST__OP_PRODUCE), 2);
  assert_int_equal(mock_end_offset(boot, "s", 0), 0);
  assert_true(mock_connections(lead) >= 2);
  rn_producer_destroy(p);
  rn_client_destroy(cl);
  mock_broker_stop(lead);
  mock_broker_stop(boot);
}

static void test_produce_pipeline_redirect(void **state) {
  (void)state;
  mock_broker_t *boot = mock_broker_start(), *l1 = mock_broker_start(), *l2 = mock_broker_start();
  mock_create_stream(boot, "s", 1);
  mock_create_stream(l1, "s", 1);
  mock_create_stream(l2, "s", 1);
  mock_set_leader(boot, "s", 0, 2, 1, mock_broker_addr(l1));
  rn_client_t *cl = client_for(mock_broker_addr(boot));
  rn_producer_conf_t pc = quick_conf();
  pc.max_batch_bytes = 256; /* a few records per batch: several batches on the wire */
  rn_producer_t *p = NULL;
  assert_int_equal(rn_producer_new(cl, &pc, &p), 0);
  enum { N = 40 };
  report_t r[N] = {0};
  char buf[64];
  for (int i = 0; i < N; i++) {
    snprintf(buf, sizeof buf, "record-%02d-padding-padding-padding", i);
    send_to(p, "s", HK_SHARD0, buf, &r[i]);
    if (i > 0) continue;
    /* the stream is known (leader l1) and nothing is sent yet: l1 loses
     * leadership as the pipeline arrives. It refuses the first batch, so
     * every later one is a gap there (ESEQUENCE), and it answers only once
     * five batches are on the wire, in reverse order: the gaps come back
     * before the ENOTLEADER that explains them. */
    mock_set_leader(boot, "s", 0, 3, 2, mock_broker_addr(l2));
    mock_inject(l1, RUNNEL__REQUEST__OP_PRODUCE, MOCK_SHARD_ERR, RN_ENOTLEADER, 1);
    /* (the pooled connection to l1 made first: reordering would hold its
     * handshake's answer too) */
    rn_stream_desc_t *d = NULL;
    assert_int_equal(rn_stream_describe(rn__client_route(cl, mock_broker_addr(l1)), "s", &d), 0);
    rn_stream_desc_free(d);
    mock_reorder_next(l1, 5);
  }
  assert_int_equal(rn_producer_flush(p, 10000), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_int_equal(r[i].err, 0);
    assert_int_equal(r[i].offset, (uint64_t)i);
  }
  assert_int_equal(mock_count(l1, RUNNEL__REQUEST__OP_PRODUCE), 5); /* the whole pipeline, nothing after */
  assert_int_equal(mock_end_offset(l1, "s", 0), 0);
  assert_int_equal(mock_end_offset(l2, "s", 0), N);
  assert_int_equal(mock_duplicates(l2), 0);
  /* at l2: consecutive sequences from 0, one producer id */
  int32_t want = 0;
  uint64_t pid0 = 0;
  for (unsigned i = 0; i < mock_batches(l2); i++) {
    uint32_t shard, count;
    uint8_t codec;
    uint64_t pid;
    int32_t seq;
    mock_batch_info(l2, i, &shard, &count, &codec, &pid, &seq);
    if (i == 0) pid0 = pid;
    assert_int_equal(pid, pid0);
    assert_int_equal(seq, want);
    want += (int32_t)count;
  }
  assert_int_equal(want, N);
  rn_producer_destroy(p);
  rn_client_destroy(cl);
  mock_broker_stop(l2);
  mock_broker_stop(l1);
  mock_broker_stop(boot);
}

static void test_produce_not_enough_replicas(void **state) {
  (void)state;
  mock_broker_t *boot = mock_broker_start(), *lead = mock_broker_start();
  mock_create_stream(boot, "s", 1);
  mock_create_stream(lead, "s", 1);
  mock_set_leader(boot, "s", 0, 2, 1, mock_broker_addr(lead));
  rn_client_t *cl = client_for(mock_broker_addr(boot));
  rn_producer_conf_t pc = quick_conf();
  rn_producer_t *p = NULL;
  assert_int_equal(rn_producer_new(cl, &pc, &p), 0);
  /* the leader stays the leader but cannot take writes for a while */
  mock_inject(lead, RUNNEL__REQUEST__OP_PRODUCE, MOCK_SHARD_ERR, RN_ENOTENOUGHREPLICAS, 2);
  report_t r[3] = {0};
  for (int i = 0; i < 3; i++) send_to(p, "s", HK_SHARD0, "x", &r[i]);
  assert_int_equal(rn_producer_flush(p, 10000), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_int_equal(r[i].err, 0);
    assert_int_equal(r[i].offset, (uint64_t)i);
  }
  assert_int_equal(mock_count(lead, RUNNEL__REQUEST__OP_PRODUCE), 3);
  assert_int_equal(mock_batches(lead), 1);
  assert_int_equal(mock_duplicates(lead), 0);
  assert_int_equal(mock_count(boot, RUNNEL__REQUEST__OP_PRODUCE), 0);
  rn_producer_destroy(p);
  rn_client_destroy(cl);
  mock_broker_stop(lead);
  mock_broker_stop(boot);
}

static void test_produce_dead_leader_times_out(void **state) {
  (void)state;
  mock_broker_t *boot = mock_broker_start();
  mock_create_stream(boot, "s", 1);
  char dead[64];
  snprintf(dead, sizeof dead, "127.0.0.1:%u", dead_port());
  mock_set_leader(boot, "s", 0, 2, 1, dead);
  rn_client_t *cl = client_for(mock_broker_addr(boot));
  rn_producer_conf_t pc = quick_conf();
  pc.delivery_timeout_ms = 300;
  rn_producer_t *p = NULL;
  assert_int_equal(rn_producer_new(cl, &pc, &p), 0);
  unsigned describes = mock_count(boot, RUNNEL__REQUEST__OP_DESCRIBE_STREAM);
  report_t r[3] = {0};
  for (int i = 0; i < 3; i++) send_to(p, "s", HK_SHARD0, "x", &r[i]);
  /* reported failed once the delivery timeout says so, exactly once */
  assert_int_equal(rn_producer_flush(p, 20000), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_true(r[i].err == RN_ECONNECTION || r[i].err == RN_ETIMEDOUT);
  }
  /* the placement was asked again meanwhile; nothing went to the bootstrap */
  assert_true(mock_count(boot, RUNNEL__REQUEST__OP_DESCRIBE_STREAM) > describes + 1);
  assert_int_equal(mock_count(boot, RUNNEL__REQUEST__OP_PRODUCE), 0);
  rn_producer_destroy(p);
  rn_client_destroy(cl);
  mock_broker_stop(boot);
}

/* ---- consumer -------------------------------------------------------------------- */

/* Write the same records to a shard of each mock (they then hold the same
 * offsets, as replicas do). */
static void fill(mock_broker_t *mb, int from, int to) {
  rn_client_t *cl = client_for(mock_broker_addr(mb));
  rn_producer_conf_t pc = quick_conf();
  rn_producer_t *p = NULL;
  assert_int_equal(rn_producer_new(cl, &pc, &p), 0);
  report_t r = {0};
  char buf[32];
  for (int i = from; i < to; i++) {
    snprintf(buf, sizeof buf, "rec-%d", i);
    send_to(p, "s", HK_SHARD0, buf, &r);
  }
  assert_int_equal(rn_producer_flush(p, 10000), 0);
  assert_int_equal(r.err, 0);
  rn_producer_destroy(p);
  rn_client_destroy(cl);
}

static void expect_records(rn_consumer_t *c, int from, int to) {
  char buf[32];
  for (int i = from; i < to; i++) {
    const rn_record_t *rec = NULL;
    rn_err_t err;
    while ((err = rn_consumer_poll(c, 1000, &rec)) == RN_EAGAIN) {
    }
    assert_int_equal(err, 0);
    assert_int_equal(rec->offset, (uint64_t)i);
    snprintf(buf, sizeof buf, "rec-%d", i);
    assert_int_equal(rec->value_len, strlen(buf));
    assert_memory_equal(rec->value, buf, rec->value_len);
  }
}

static void test_consumer_follows_leader(void **state) {
  (void)state;
  mock_broker_t *boot = mock_broker_start(), *l1 = mock_broker_start(), *l2 = mock_broker_start();
  mock_create_stream(boot, "s", 1);
  mock_create_stream(l1, "s", 1);
  mock_create_stream(l2, "s", 1);
  fill(l1, 0, 5);
  fill(l2, 0, 5);
  rn_client_t *cl = client_for(mock_broker_addr(boot));
  rn_consumer_t *c = NULL;
  assert_int_equal(rn_consumer_new(cl, "s", 0, RN_POS_OFFSET, 0, &c), 0);
  /* the first fetch goes to the bootstrap, which is not the leader */
  mock_set_leader(boot, "s", 0, 2, 1, mock_broker_addr(l1));
  mock_inject(boot, RUNNEL__REQUEST__OP_FETCH, MOCK_SHARD_ERR, RN_ENOTLEADER, 1);
  expect_records(c, 0, 5);
  assert_int_equal(mock_count(l1, RUNNEL__REQUEST__OP_FETCH), 1);
  /* leadership moves to l2 (which holds the same records) */
  fill(l1, 5, 10);
  fill(l2, 5, 10);
  mock_set_leader(boot, "s", 0, 3, 2, mock_broker_addr(l2));
  mock_inject(l1, RUNNEL__REQUEST__OP_FETCH, MOCK_SHARD_ERR, RN_ENOTLEADER, 1);
  expect_records(c, 5, 10);
  assert_true(mock_count(l2, RUNNEL__REQUEST__OP_FETCH) >= 1);
  uint64_t pos = 0;
  assert_true(rn_consumer_position(c, &pos));
  assert_int_equal(pos, 10);
  rn_consumer_destroy(c);
  rn_client_destroy(cl);
  mock_broker_stop(l2);
  mock_broker_stop(l1);
  mock_broker_stop(boot);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_addr_list_parse),
      cmocka_unit_test(test_bootstrap_first_dead),
      cmocka_unit_test(test_route_pool),
      cmocka_unit_test(test_produce_per_leader),
      cmocka_unit_test(test_produce_not_leader_redirect),
      cmocka_unit_test(test_produce_leader_lost_after_append),
      cmocka_unit_test(test_produce_pipeline_redirect),
      cmocka_unit_test(test_produce_not_enough_replicas),
      cmocka_unit_test(test_produce_dead_leader_times_out),
      cmocka_unit_test(test_consumer_follows_leader),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
