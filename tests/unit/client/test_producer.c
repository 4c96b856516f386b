/*
 * test_producer.c — the producer against the in-process mock broker:
 * routing by MD5 and by explicit hash key, batching per shard (one
 * ProduceRequest per stream on flush, max_batch_bytes splits, consecutive
 * sequences), LZ4, retries of retriable errors, the idempotent duplicate
 * after a lost acknowledgement (appended once, acknowledged with the
 * original offsets), non-retriable errors giving their sequence back, the
 * delivery timeout moving to a fresh producer id, back-pressure, and the
 * callback contract (exactly once, on the I/O thread, no blocking calls),
 * and pipelining: several batches per shard on the wire (max_in_flight),
 * reports in send order when acks come back reordered, a lost ack, a
 * sequence gap and a failed batch in the middle of a pipeline, each ending
 * exactly once with consecutive sequences.
 *
 * Linger is set to a minute wherever a test counts requests, so batches go
 * out only when the test flushes: no sleeps, no timing assertions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_broker.h"
#include "runnel/runnel.h"

typedef struct {
  mock_broker_t *mb;
  rn_client_t *cl;
} fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  f->mb = mock_broker_start();
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = mock_broker_addr(f->mb);
  conf.reconnect_backoff_ms = 1;
  conf.reconnect_backoff_max_ms = 5;
  assert_int_equal(rn_client_new(&conf, &f->cl), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  rn_client_destroy(f->cl);
  mock_broker_stop(f->mb);
  free(f);
  return 0;
}

/* Delivery reports collected by index (opaque = &reports[i]). */
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

static rn_producer_conf_t slow_conf(void) {
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.linger_ms = 60000;
  pc.retry_backoff_ms = 1;
  pc.retry_backoff_max_ms = 2;
  return pc;
}

/* Read a whole shard back: returns the number of records; data into out. */
static size_t read_shard(rn_client_t *cl, const char *stream, uint32_t shard, char out[][32], size_t max) {
  rn_consumer_t *c;
  assert_int_equal(rn_consumer_new(cl, stream, shard, RN_POS_EARLIEST, 0, &c), 0);
  size_t n = 0;
  const rn_record_t *rec;
  rn_err_t err;
  while ((err = rn_consumer_poll(c, 0, &rec)) == 0) {
    assert_int_equal(rec->offset, n);
    if (n < max) {
      assert_true(rec->value_len < 32);
      memcpy(out[n], rec->value, rec->value_len);
      out[n][rec->value_len] = '\0';
    }
    n++;
  }
  assert_int_equal(err, RN_EAGAIN);
  rn_consumer_destroy(c);
  return n;
}

static void test_routing_and_batching(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "ev", 4);
  rn_producer_conf_t pc = slow_conf();
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  enum { N = 100 };
  static report_t rep[N];
  memset(rep, 0, sizeof rep);
  for (int i = 0; i < N; i++) {
    char key[16], data[32];
    snprintf(key, sizeof key, "k%d", i);
    snprintf(data, sizeof data, "record-%d", i);
    assert_int_equal(rn_producer_send(p, "ev", key, strlen(key), data, strlen(data), on_delivery, &rep[i]), 0);
  }
  assert_int_equal(rn_producer_outstanding(p), N);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  assert_int_equal(rn_producer_outstanding(p), 0);
  /* one request carried one batch per shard */
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_PRODUCE), 1);
  assert_int_equal(mock_batches(f->mb), 4);
  uint32_t total = 0;
  for (unsigned i = 0; i < 4; i++) {
    uint32_t count;
    uint64_t pid;
    int32_t seq;
    uint8_t codec;
    mock_batch_info(f->mb, i, NULL, &count, &codec, &pid, &seq);
    assert_int_equal(seq, 0);
    assert_int_equal(pid, 1001);
    assert_int_equal(codec, RN_CODEC_NONE);
    total += count;
  }
  assert_int_equal(total, N);

  /* every record reported once, routed by MD5, offsets dense per shard in
   * send order */
  rn_stream_desc_t *d;
  assert_int_equal(rn_stream_describe(f->cl, "ev", &d), 0);
  uint64_t next[4] = {0};
  for (int i = 0; i < N; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    uint8_t hk[RN_HASH_KEY_BYTES];
    rn_hash_key_for(key, strlen(key), hk);
    size_t pos;
    assert_int_equal(rn_shard_for_hash(d->shards, d->shard_count, hk, &pos), 0);
    assert_int_equal(rep[i].calls, 1);
    assert_int_equal(rep[i].err, 0);
    assert_int_equal(rep[i].shard, pos);
    assert_int_equal(rep[i].offset, next[pos]);
    next[pos]++;
  }
  /* read back: each shard holds its records in send order */
  static char data[N][32];
  for (uint32_t s = 0; s < 4; s++) {
    size_t n = read_shard(f->cl, "ev", s, data, N);
    assert_int_equal(n, next[s]);
    size_t k = 0;
    for (int i = 0; i < N; i++) {
      if (rep[i].shard != s) continue;
      char want[32];
      snprintf(want, sizeof want, "record-%d", i);
      assert_string_equal(data[k], want);
      k++;
    }
  }
  rn_stream_desc_free(d);
  rn_producer_destroy(p);
}

static void test_batch_split_and_sequences(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "one", 1);
  rn_producer_conf_t pc = slow_conf();
  pc.max_batch_bytes = 1000;
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  enum { N = 50 };
  static report_t rep[N];
  memset(rep, 0, sizeof rep);
  char data[100];
  memset(data, 'x', sizeof data);
  for (int i = 0; i < N; i++)
    assert_int_equal(rn_producer_send(p, "one", "k", 1, data, sizeof data, on_delivery, &rep[i]), 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  unsigned nb = mock_batches(f->mb);
  assert_true(nb >= 5);
  int32_t want_seq = 0;
  for (unsigned i = 0; i < nb; i++) {
    uint32_t count;
    int32_t seq;
    mock_batch_info(f->mb, i, NULL, &count, NULL, NULL, &seq);
    assert_int_equal(seq, want_seq);
    assert_true(count * (sizeof data + 1) <= 1000 + sizeof data + 16);
    want_seq += (int32_t)count;
  }
  assert_int_equal(want_seq, N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(rep[i].err, 0);
    assert_int_equal(rep[i].offset, (uint64_t)i);
  }
  rn_producer_destroy(p);
}

/* Ready batches of one stream share a request up to 8 MiB: four 3 MiB
 * batches go as two requests of two. */
static void test_request_size_cap(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "big", 4);
  rn_producer_conf_t pc = slow_conf();
  pc.max_batch_bytes = 4u << 20;
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  const char *starts[] = {"0", "85070591730234615865843651857942052864", "170141183460469231731687303715884105728",
                          "255211775190703847597530955573826158592"};
  size_t len = 3u << 20;
  char *data = malloc(len);
  memset(data, 'q', len);
  report_t rep[4];
  memset(rep, 0, sizeof rep);
  for (int i = 0; i < 4; i++) {
    rn_message_t m = {.stream = "big", .explicit_hash_key = starts[i], .data = data, .data_len = len,
                      .cb = on_delivery, .opaque = &rep[i]};
    assert_int_equal(rn_producer_send_message(p, &m), 0);
  }
  free(data);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(rep[i].err, 0);
    assert_int_equal(rep[i].shard, (uint32_t)i);
  }
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_PRODUCE), 2);
  assert_int_equal(mock_batches(f->mb), 4);
  rn_producer_destroy(p);
}

static void test_lz4(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "z", 1);
  rn_producer_conf_t pc = slow_conf();
  pc.codec = RN_CODEC_LZ4;
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  for (int i = 0; i < 20; i++) {
    char d[32];
    snprintf(d, sizeof d, "aaaaaaaaaaaaaaaaaaaaaaaaa-%d", i);
    assert_int_equal(rn_producer_send(p, "z", "k", 1, d, strlen(d), NULL, NULL), 0);
  }
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  uint8_t codec;
  mock_batch_info(f->mb, 0, NULL, NULL, &codec, NULL, NULL);
  assert_int_equal(codec, RN_CODEC_LZ4);
  static char data[20][32];
  assert_int_equal(read_shard(f->cl, "z", 0, data, 20), 20);
  assert_string_equal(data[19], "aaaaaaaaaaaaaaaaaaaaaaaaa-19");
  rn_producer_destroy(p);
}

static void test_retry_retriable(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "r", 2);
  mock_inject(f->mb, RUNNEL__REQUEST__OP_PRODUCE, MOCK_SHARD_ERR, RN_ETHROTTLED, 2);
  mock_inject(f->mb, RUNNEL__REQUEST__OP_PRODUCE, MOCK_ERR, RN_ESHUTDOWN, 1);
  rn_producer_conf_t pc = slow_conf();
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  report_t rep[10];
  memset(rep, 0, sizeof rep);
  for (int i = 0; i < 10; i++)
    assert_int_equal(rn_producer_send(p, "r", "same", 4, "d", 1, on_delivery, &rep[i]), 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  for (int i = 0; i < 10; i++) {
    assert_int_equal(rep[i].calls, 1);
    assert_int_equal(rep[i].err, 0);
    assert_int_equal(rep[i].offset, (uint64_t)i);
  }
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_PRODUCE), 4);
  assert_int_equal(mock_batches(f->mb), 1); /* appended once */
  rn_producer_destroy(p);
}

static void test_idempotent_duplicate_after_lost_ack(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "d", 1);
  /* the broker appends, then the connection dies before the ack */
  mock_inject(f->mb, RUNNEL__REQUEST__OP_PRODUCE, MOCK_DROP_AFTER, 0, 1);
  rn_producer_conf_t pc = slow_conf();
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  report_t rep[5];
  memset(rep, 0, sizeof rep);
  for (int i = 0; i < 5; i++)
    assert_int_equal(rn_producer_send(p, "d", "k", 1, "x", 1, on_delivery, &rep[i]), 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(rep[i].err, 0);
    assert_int_equal(rep[i].offset, (uint64_t)i);
  }
  assert_int_equal(mock_duplicates(f->mb), 1);
  assert_int_equal(mock_batches(f->mb), 1);
  assert_int_equal(mock_end_offset(f->mb, "d", 0), 5);
  assert_true(mock_connections(f->mb) >= 2);
  /* the next batch continues the sequence */
  assert_int_equal(rn_producer_send(p, "d", "k", 1, "y", 1, on_delivery, &rep[0]), 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  assert_int_equal(rep[0].err, 0);
  assert_int_equal(rep[0].offset, 5);
  int32_t seq;
  mock_batch_info(f->mb, 1, NULL, NULL, NULL, NULL, &seq);
  assert_int_equal(seq, 5);
  rn_producer_destroy(p);
}

static void test_non_retriable_gives_sequence_back(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "n", 1);
  mock_inject(f->mb, RUNNEL__REQUEST__OP_PRODUCE, MOCK_SHARD_ERR, RN_ETOOLARGE, 1);
  rn_producer_conf_t pc = slow_conf();
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  report_t rep[3];
  memset(rep, 0, sizeof rep);
  for (int i = 0; i < 3; i++)
    assert_int_equal(rn_producer_send(p, "n", "k", 1, "x", 1, on_delivery, &rep[i]), 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(rep[i].calls, 1);
    assert_int_equal(rep[i].err, RN_ETOOLARGE);
  }
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_PRODUCE), 1); /* not retried */
  assert_int_equal(rn_producer_send(p, "n", "k", 1, "y", 1, on_delivery, &rep[0]), 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  assert_int_equal(rep[0].err, 0);
  assert_int_equal(rep[0].offset, 0);
  int32_t seq;
  uint64_t pid;
  mock_batch_info(f->mb, 0, NULL, NULL, NULL, &pid, &seq);
  assert_int_equal(seq, 0); /* the failed batch's sequence was reused */
  assert_int_equal(pid, 1001);
  rn_producer_destroy(p);
}

static void test_delivery_timeout_new_producer_id(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "t", 1);
  mock_inject(f->mb, RUNNEL__REQUEST__OP_PRODUCE, MOCK_SHARD_ERR, RN_ETHROTTLED, 1000000);
  rn_producer_conf_t pc = slow_conf();
  pc.delivery_timeout_ms = 20;
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  report_t rep = {0};
  assert_int_equal(rn_producer_send(p, "t", "k", 1, "x", 1, on_delivery, &rep), 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  assert_int_equal(rep.calls, 1);
  assert_int_equal(rep.err, RN_ETHROTTLED); /* the last error seen */
  /* the throttling ends; the fate of the first batch was unknown, so the
   * next one goes out under a fresh producer id from sequence 0 */
  mock_clear_rules(f->mb);
  memset(&rep, 0, sizeof rep);
  assert_int_equal(rn_producer_send(p, "t", "k", 1, "y", 1, on_delivery, &rep), 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  assert_int_equal(rep.err, 0);
  assert_int_equal(rep.offset, 0);
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_INIT_PRODUCER), 2);
  uint64_t pid;
  int32_t seq;
  mock_batch_info(f->mb, 0, NULL, NULL, NULL, &pid, &seq);
  assert_int_equal(pid, 1002);
  assert_int_equal(seq, 0);
  rn_producer_destroy(p);
}

static void test_unknown_stream_and_args(void **state) {
  fixture_t *f = *state;
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, NULL, &p), 0);
  report_t rep = {0};
  assert_int_equal(rn_producer_send(p, "nope", "k", 1, "x", 1, on_delivery, &rep), RN_ENOSTREAM);
  assert_int_equal(rep.calls, 0);
  assert_int_equal(rn_producer_send(p, NULL, "k", 1, "x", 1, on_delivery, &rep), RN_EINVAL);
  assert_int_equal(rn_producer_send(p, "nope", NULL, 1, "x", 1, on_delivery, &rep), RN_EINVAL);
  mock_create_stream(f->mb, "e", 3);
  rn_message_t m = {.stream = "e", .key = "k", .key_len = 1, .explicit_hash_key = "12x"};
  assert_int_equal(rn_producer_send_message(p, &m), RN_EINVAL);
  m.explicit_hash_key = "340282366920938463463374607431768211455";
  m.cb = on_delivery;
  m.opaque = &rep;
  m.data = "v";
  m.data_len = 1;
  assert_int_equal(rn_producer_send_message(p, &m), 0);
  m.explicit_hash_key = "0";
  report_t rep0 = {0};
  m.opaque = &rep0;
  assert_int_equal(rn_producer_send_message(p, &m), 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  assert_int_equal(rep.err, 0);
  assert_int_equal(rep.shard, 2);
  assert_int_equal(rep0.shard, 0);
  assert_int_equal(rn_producer_outstanding(p), 0);
  rn_producer_destroy(p);
  rn_producer_destroy(NULL);
}

static void test_backpressure(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "b", 1);
  rn_producer_conf_t pc = slow_conf();
  pc.max_buffered_bytes = 4096;
  pc.block_ms = 0;
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  char big[5000];
  memset(big, 'b', sizeof big);
  assert_int_equal(rn_producer_send(p, "b", "k", 1, big, sizeof big, NULL, NULL), RN_ETOOLARGE);
  char d[500];
  memset(d, 'd', sizeof d);
  int sent = 0;
  rn_err_t err;
  while ((err = rn_producer_send(p, "b", "k", 1, d, sizeof d, NULL, NULL)) == 0) sent++;
  assert_int_equal(err, RN_EAGAIN);
  assert_true(sent >= 6 && sent <= 8);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  assert_int_equal(rn_producer_send(p, "b", "k", 1, d, sizeof d, NULL, NULL), 0);
  rn_producer_destroy(p); /* flushes */
  assert_int_equal(mock_end_offset(f->mb, "b", 0), (uint64_t)sent + 1);
}

/* ---- callbacks ------------------------------------------------------------------ */

typedef struct {
  rn_producer_t *p;
  int calls;
  rn_err_t flush_err;
  rn_err_t send_known;
  rn_err_t send_unknown;
} cbctx_t;

static void reentrant_cb(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  cbctx_t *c = opaque;
  (void)shard;
  (void)offset;
  assert_int_equal(err, 0);
  if (c->calls++ == 0) {
    c->flush_err = rn_producer_flush(c->p, 1000);
    c->send_known = rn_producer_send(c->p, "cb", "k", 1, "again", 5, reentrant_cb, c);
    c->send_unknown = rn_producer_send(c->p, "other", "k", 1, "x", 1, NULL, NULL);
  }
}

static void test_callback_contract(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "cb", 1);
  mock_create_stream(f->mb, "other", 1);
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc); /* default linger */
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  cbctx_t c = {.p = p};
  assert_int_equal(rn_producer_send(p, "cb", "k", 1, "first", 5, reentrant_cb, &c), 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  /* the send from the callback was accepted; wait for it too */
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  assert_int_equal(c.calls, 2);
  assert_int_equal(c.flush_err, RN_EBUSY);
  assert_int_equal(c.send_known, 0);
  assert_int_equal(c.send_unknown, RN_EBUSY);
  assert_int_equal(mock_end_offset(f->mb, "cb", 0), 2);
  rn_producer_destroy(p);
}

static void test_destroy_flushes(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "x", 2);
  rn_producer_conf_t pc = slow_conf();
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  report_t rep[20];
  memset(rep, 0, sizeof rep);
  for (int i = 0; i < 20; i++) {
    char key[8];
    snprintf(key, sizeof key, "%d", i);
    assert_int_equal(rn_producer_send(p, "x", key, strlen(key), "v", 1, on_delivery, &rep[i]), 0);
  }
  rn_producer_destroy(p);
  for (int i = 0; i < 20; i++) {
    assert_int_equal(rep[i].calls, 1);
    assert_int_equal(rep[i].err, 0);
  }
  assert_int_equal(mock_end_offset(f->mb, "x", 0) + mock_end_offset(f->mb, "x", 1), 20);
}

static void test_not_idempotent(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "ni", 1);
  rn_producer_conf_t pc = slow_conf();
  pc.idempotent = false;
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_INIT_PRODUCER), 0);
  assert_int_equal(rn_producer_send(p, "ni", "k", 1, "v", 1, NULL, NULL), 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  uint64_t pid;
  int32_t seq;
  mock_batch_info(f->mb, 0, NULL, NULL, NULL, &pid, &seq);
  assert_int_equal(pid, 0);
  assert_int_equal(seq, -1);
  rn_producer_destroy(p);
}


/* ---- several batches per shard in flight (max_in_flight) ------------------ */

/* Reports in arrival order: opaque = index of the record. */
typedef struct {
  pthread_mutex_t mu;
  int order[64]; /* record index of the n-th report */
  int n;
  rn_err_t err[64];
  uint64_t offset[64];
} ordered_t;

static ordered_t ord;

static void on_ordered(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  (void)shard;
  int i = (int)(intptr_t)opaque;
  pthread_mutex_lock(&ord.mu);
  ord.order[ord.n++] = i;
  ord.err[i] = err;
  ord.offset[i] = offset;
  pthread_mutex_unlock(&ord.mu);
}

/* One record per batch: records of 100 bytes, batches of at most 150. A
 * batch goes out as soon as the next one starts. reorder > 0: the mock
 * holds that many responses, armed after the first send (the producer's
 * describe and init requests are answered by then). */
static rn_producer_t *pipelined_producer(fixture_t *f, const char *stream, int nrec, unsigned reorder) {
  memset(&ord, 0, sizeof ord);
  pthread_mutex_init(&ord.mu, NULL);
  rn_producer_conf_t pc = slow_conf();
  pc.max_batch_bytes = 150;
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  char data[100];
  for (int i = 0; i < nrec; i++) {
    memset(data, 'a' + i % 26, sizeof data);
    assert_int_equal(rn_producer_send(p, stream, "k", 1, data, sizeof data, on_ordered, (void *)(intptr_t)i), 0);
    if (i == 0 && reorder > 0) mock_reorder_next(f->mb, reorder);
  }
  return p;
}

/* Every record delivered once, in send order, at offset = index; the
 * stored batches carry one producer id and consecutive sequences. */
static void assert_in_order_exactly_once(fixture_t *f, const char *stream, int nrec, uint64_t *pid_out) {
  assert_int_equal(ord.n, nrec);
  for (int i = 0; i < nrec; i++) {
    assert_int_equal(ord.order[i], i);
    assert_int_equal(ord.err[i], 0);
    assert_int_equal(ord.offset[i], (uint64_t)i);
  }
  assert_int_equal(mock_end_offset(f->mb, stream, 0), (uint64_t)nrec);
  assert_int_equal(mock_batches(f->mb), (unsigned)nrec);
  uint64_t pid0 = 0;
  for (unsigned i = 0; i < (unsigned)nrec; i++) {
    uint32_t count;
    uint64_t pid;
    int32_t seq;
    mock_batch_info(f->mb, i, NULL, &count, NULL, &pid, &seq);
    assert_int_equal(count, 1);
    assert_int_equal(seq, (int32_t)i);
    if (i == 0) pid0 = pid;
    assert_int_equal(pid, pid0);
  }
  if (pid_out) *pid_out = pid0;
}

static void test_pipelined_in_flight(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "pl", 1);
  /* The mock answers only once it holds 5 responses, last first: this
   * completes only if 5 batches of the shard are on the wire together, and
   * the reports must still come in send order. */
  rn_producer_t *p = pipelined_producer(f, "pl", 12, 5);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  assert_in_order_exactly_once(f, "pl", 12, NULL);
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_PRODUCE), 12); /* one batch per request here */
  rn_producer_destroy(p);
}

static void test_pipelined_lost_ack_exactly_once(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "la", 1);
  /* the first request is appended, then the connection dies: its ack and
   * the requests pipelined behind it are lost */
  mock_inject(f->mb, RUNNEL__REQUEST__OP_PRODUCE, MOCK_DROP_AFTER, 0, 1);
  rn_producer_t *p = pipelined_producer(f, "la", 10, 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  assert_in_order_exactly_once(f, "la", 10, NULL);
  assert_int_equal(mock_duplicates(f->mb), 1); /* the resend of the appended one */
  assert_true(mock_connections(f->mb) >= 2);
  rn_producer_destroy(p);
}

static void test_pipelined_retry_after_gap(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "gap", 1);
  /* the first batch is throttled (not appended); the ones pipelined behind
   * it see a sequence gap (ESEQUENCE): all are resent in order under the
   * same producer id */
  mock_inject(f->mb, RUNNEL__REQUEST__OP_PRODUCE, MOCK_SHARD_ERR, RN_ETHROTTLED, 1);
  rn_producer_t *p = pipelined_producer(f, "gap", 10, 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  uint64_t pid;
  assert_in_order_exactly_once(f, "gap", 10, &pid);
  assert_int_equal(pid, 1001); /* no fresh id was needed */
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_INIT_PRODUCER), 1);
  rn_producer_destroy(p);
}

static void test_pipelined_failure_resequences(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "rs", 1);
  /* the first batch fails for sure; the ones behind it (sealed with the
   * following sequences, some already on the wire) are re-stamped with the
   * sequence it gives back, so the shard continues without a gap */
  mock_inject(f->mb, RUNNEL__REQUEST__OP_PRODUCE, MOCK_SHARD_ERR, RN_ETOOLARGE, 1);
  rn_producer_t *p = pipelined_producer(f, "rs", 8, 0);
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  assert_int_equal(ord.n, 8);
  for (int i = 0; i < 8; i++) assert_int_equal(ord.order[i], i);
  assert_int_equal(ord.err[0], RN_ETOOLARGE);
  for (int i = 1; i < 8; i++) {
    assert_int_equal(ord.err[i], 0);
    assert_int_equal(ord.offset[i], (uint64_t)(i - 1));
  }
  assert_int_equal(mock_batches(f->mb), 7);
  for (unsigned i = 0; i < 7; i++) {
    uint64_t pid;
    int32_t seq;
    mock_batch_info(f->mb, i, NULL, NULL, NULL, &pid, &seq);
    assert_int_equal(seq, (int32_t)i);
    assert_int_equal(pid, 1001);
  }
  rn_producer_destroy(p);
}

/* ---- the broker's limits (learnt by the handshake) --------------------------- */

/* A record above the broker's max_record_bytes is refused by send() at once
 * with both sizes: nothing is sent (no produce request, one connection),
 * nothing is retried, no callback runs. */
static void test_record_over_broker_limit(void **state) {
  fixture_t *f = *state;
  mock_set_limits(f->mb, 1u << 20, 8u << 20, 16u << 20, 16u << 20);
  mock_create_stream(f->mb, "s", 1);
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, NULL, &p), 0);
  size_t len = 20u << 20;
  char *data = calloc(1, len);
  report_t rep = {0};
  assert_int_equal(rn_producer_send(p, "s", NULL, 0, data, len, on_delivery, &rep), RN_ETOOLARGE);
  assert_string_equal(rn_last_error_message(), "record of 20971520 bytes exceeds the broker's max_record_bytes 1048576");
  /* headers count toward the record, as the broker counts them */
  rn_record_header_t h = {.key = (const uint8_t *)"h", .key_len = 1, .value = (const uint8_t *)data, .value_len = 100};
  rn_message_t m = {.stream = "s", .key = "k", .key_len = 1, .data = data, .data_len = (1u << 20) - 100,
                    .headers = &h, .header_count = 1, .cb = on_delivery, .opaque = &rep};
  assert_int_equal(rn_producer_send_message(p, &m), RN_ETOOLARGE);
  assert_string_equal(rn_last_error_message(), "record of 1048578 bytes exceeds the broker's max_record_bytes 1048576");
  free(data);
  assert_int_equal(rn_producer_flush(p, 10000), 0);
  assert_int_equal(rep.calls, 0);
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_PRODUCE), 0);
  assert_int_equal(mock_connections(f->mb), 1);
  rn_producer_destroy(p);
}

/* A broker older than BrokerInfo: the default limits apply. */
static void test_older_broker_default_limits(void **state) {
  fixture_t *f = *state;
  mock_set_limits(f->mb, 0, 0, 0, 0);
  mock_create_stream(f->mb, "s", 1);
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, NULL, &p), 0);
  size_t len = 2u << 20;
  char *data = calloc(1, len);
  assert_int_equal(rn_producer_send(p, "s", NULL, 0, data, len, NULL, NULL), RN_ETOOLARGE);
  assert_string_equal(rn_last_error_message(), "record of 2097152 bytes exceeds the broker's max_record_bytes 1048576");
  report_t rep = {0};
  assert_int_equal(rn_producer_send(p, "s", NULL, 0, data, 1000, on_delivery, &rep), 0);
  free(data);
  assert_int_equal(rn_producer_flush(p, 10000), 0);
  assert_int_equal(rep.calls, 1);
  assert_int_equal(rep.err, 0);
  rn_producer_destroy(p);
}

/* A request frame above the broker's max_frame_bytes is never written: its
 * records fail with RN_ETOOLARGE (not retried, no connection lost), and
 * the shard goes on with the next record. */
static void test_frame_over_broker_limit_not_sent(void **state) {
  fixture_t *f = *state;
  mock_set_limits(f->mb, 1u << 20, 1u << 20, 64u << 10, 16u << 20);
  mock_create_stream(f->mb, "s", 1);
  rn_producer_conf_t pc = slow_conf();
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  size_t len = 100u << 10;
  char *data = calloc(1, len);
  report_t big = {0}, small = {0};
  assert_int_equal(rn_producer_send(p, "s", NULL, 0, data, len, on_delivery, &big), 0);
  free(data);
  assert_int_equal(rn_producer_flush(p, 10000), 0);
  assert_int_equal(big.calls, 1);
  assert_int_equal(big.err, RN_ETOOLARGE);
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_PRODUCE), 0);
  assert_int_equal(rn_producer_send(p, "s", "k", 1, "v", 1, on_delivery, &small), 0);
  assert_int_equal(rn_producer_flush(p, 10000), 0);
  assert_int_equal(small.err, 0);
  assert_int_equal(small.offset, 0);
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_PRODUCE), 1);
  assert_int_equal(mock_connections(f->mb), 1);
  rn_producer_destroy(p);
}

/* The broker refuses a frame as too large after all (a framing error:
 * correlation id 0, ETOOLARGE with the sizes, then it closes): the request
 * it names fails with RN_ETOOLARGE and is not retried. */
static void test_framing_error_not_retried(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "s", 1);
  rn_producer_conf_t pc = slow_conf();
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  mock_inject(f->mb, RUNNEL__REQUEST__OP_PRODUCE, MOCK_FRAME_ERROR, 0, 1);
  report_t a = {0}, b = {0};
  assert_int_equal(rn_producer_send(p, "s", "k", 1, "first", 5, on_delivery, &a), 0);
  assert_int_equal(rn_producer_flush(p, 10000), 0);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.err, RN_ETOOLARGE);
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_PRODUCE), 1);
  /* the next record goes out on a new connection */
  assert_int_equal(rn_producer_send(p, "s", "k", 1, "second", 6, on_delivery, &b), 0);
  assert_int_equal(rn_producer_flush(p, 10000), 0);
  assert_int_equal(b.err, 0);
  assert_int_equal(b.offset, 0);
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_PRODUCE), 2);
  assert_int_equal(mock_connections(f->mb), 2);
  rn_producer_destroy(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_routing_and_batching, setup, teardown),
      cmocka_unit_test_setup_teardown(test_batch_split_and_sequences, setup, teardown),
      cmocka_unit_test_setup_teardown(test_request_size_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lz4, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retry_retriable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idempotent_duplicate_after_lost_ack, setup, teardown),
      cmocka_unit_test_setup_teardown(test_non_retriable_gives_sequence_back, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delivery_timeout_new_producer_id, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_stream_and_args, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_contract, setup, teardown),
      cmocka_unit_test_setup_teardown(test_destroy_flushes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_idempotent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipelined_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipelined_lost_ack_exactly_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipelined_retry_after_gap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipelined_failure_resequences, setup, teardown),
      cmocka_unit_test_setup_teardown(test_record_over_broker_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_older_broker_default_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_frame_over_broker_limit_not_sent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_framing_error_not_retried, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
