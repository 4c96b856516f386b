/*
 * test_client_zerocopy.c — librunnel's produce path without the copy into
 * the frame: rn__client_submit_ref sends a request whose large byte fields
 * are referenced (one writev from where they lie) and calls its release
 * exactly once — after the write when the request went out, or when it
 * failed before being written (connection refused, client destroyed with
 * it pending); the broker gets byte-exact batches (the mock verifies both
 * checksums). The producer reuses reported batches (pool): records of
 * changing sizes over many flushed rounds read back exactly, so nothing of
 * an earlier batch leaks into a later one.
 *
 * No sleeps: every wait is on a condition variable signalled by a callback.
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

#include "client_int.h"
#include "mock_broker.h"
#include "runnel/batch.h"
#include "runnel/runnel.h"

/* What one request's callback and release saw. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int cb_calls, releases;
  rn_err_t err;
  bool ok_response; /* a ProduceResponse whose only result has no error */
} probe_t;

static void probe_init(probe_t *p) {
  memset(p, 0, sizeof *p);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cond, NULL);
}

static void probe_free(probe_t *p) {
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cond);
}

static void probe_cb(void *arg, rn_err_t err, const char *msg, Runnel__Response *resp) {
  probe_t *p = arg;
  (void)msg;
  pthread_mutex_lock(&p->mu);
  p->cb_calls++;
  p->err = err;
  p->ok_response = resp != NULL && resp->op_case == RUNNEL__RESPONSE__OP_PRODUCE && resp->produce->n_results == 1 &&
                   (resp->produce->results[0]->error == NULL || resp->produce->results[0]->error->code == 0);
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
  if (resp) runnel__response__free_unpacked(resp, NULL);
}

static void probe_release(void *arg) {
  probe_t *p = arg;
  pthread_mutex_lock(&p->mu);
  p->releases++;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
}

static void probe_wait(probe_t *p) {
  pthread_mutex_lock(&p->mu);
  while (p->cb_calls == 0 || p->releases == 0) pthread_cond_wait(&p->cond, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

/* A batch of n records of len bytes each (value byte j of record i is
 * (i * 7 + j) & 0xff), not idempotent. */
static void build_batch(rn_batch_builder_t *bld, unsigned n, size_t len, const uint8_t **data, size_t *blen) {
  uint8_t *v = malloc(len);
  rn_batch_builder_init(bld);
  for (unsigned i = 0; i < n; i++) {
    for (size_t j = 0; j < len; j++) v[j] = (uint8_t)(i * 7 + j);
    rn_record_t rec;
    memset(&rec, 0, sizeof rec);
    rec.timestamp = 1700000000000 + i;
    rec.key = (const uint8_t *)"k";
    rec.key_len = 1;
    rec.value = v;
    rec.value_len = len;
    assert_int_equal(rn_batch_builder_add(bld, &rec), 0);
  }
  free(v);
  assert_int_equal(rn_batch_builder_finish(bld, RN_CODEC_NONE, NULL, data, blen), 0);
}

static rn_err_t submit_produce(rn_client_t *cl, const char *stream, const uint8_t *data, size_t len, probe_t *p) {
  Runnel__ShardBatch sb;
  runnel__shard_batch__init(&sb);
  sb.shard = 0;
  sb.batch.data = (uint8_t *)(uintptr_t)data;
  sb.batch.len = len;
  Runnel__ShardBatch *sbp = &sb;
  Runnel__ProduceRequest pr;
  runnel__produce_request__init(&pr);
  pr.stream = (char *)(uintptr_t)stream;
  pr.n_batches = 1;
  pr.batches = &sbp;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_PRODUCE;
  req.produce = &pr;
  return rn__client_submit_ref(cl, &req, 0, probe_cb, p, probe_release, p);
}

static rn_client_t *client_for(const char *addr) {
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = addr;
  conf.reconnect_backoff_ms = 1;
  conf.reconnect_backoff_max_ms = 5;
  rn_client_t *cl = NULL;
  assert_int_equal(rn_client_new(&conf, &cl), 0);
  return cl;
}

/* Referenced batches of several sizes (below and above RN__REF_MIN, one
 * not a multiple of anything) arrive byte-exact; release runs once each. */
static void test_referenced_batches_arrive_exact(void **state) {
  (void)state;
  mock_broker_t *mb = mock_broker_start();
  mock_create_stream(mb, "zc", 1);
  rn_client_t *cl = client_for(mock_broker_addr(mb));
  static const struct {
    unsigned n;
    size_t len;
  } shapes[] = {{1, 10}, {3, 1500}, {1, RN__REF_MIN}, {40, 1024}, {7, 65537}, {2, 300000}};
  size_t nshapes = sizeof shapes / sizeof shapes[0];
  uint64_t records = 0;
  for (size_t s = 0; s < nshapes; s++) {
    rn_batch_builder_t bld;
    const uint8_t *data;
    size_t len;
    build_batch(&bld, shapes[s].n, shapes[s].len, &data, &len);
    probe_t p;
    probe_init(&p);
    assert_int_equal(submit_produce(cl, "zc", data, len, &p), 0);
    probe_wait(&p);
    assert_int_equal(p.cb_calls, 1);
    assert_int_equal(p.releases, 1);
    assert_int_equal(p.err, 0);
    assert_true(p.ok_response); /* the mock verified both checksums */
    probe_free(&p);
    rn_batch_builder_free(&bld);
    records += shapes[s].n;
  }
  assert_int_equal(mock_batches(mb), nshapes);
  assert_int_equal(mock_end_offset(mb, "zc", 0), records);

  /* Read back: every value as built. */
  rn_consumer_t *c;
  assert_int_equal(rn_consumer_new(cl, "zc", 0, RN_POS_EARLIEST, 0, &c), 0);
  for (size_t s = 0; s < nshapes; s++) {
    for (unsigned i = 0; i < shapes[s].n; i++) {
      const rn_record_t *rec;
      assert_int_equal(rn_consumer_poll(c, 1000, &rec), 0);
      assert_int_equal(rec->value_len, shapes[s].len);
      const uint8_t *v = rec->value;
      for (size_t j = 0; j < shapes[s].len; j++)
        if (v[j] != (uint8_t)(i * 7 + j)) fail_msg("shape %zu record %u byte %zu differs", s, i, j);
    }
  }
  rn_consumer_destroy(c);
  rn_client_destroy(cl);
  mock_broker_stop(mb);
}

/* A request that never reaches a socket (connection refused) is released
 * too, exactly once, with its callback's error. */
static void test_release_when_never_written(void **state) {
  (void)state;
  mock_broker_t *mb = mock_broker_start();
  char addr[64];
  snprintf(addr, sizeof addr, "%s", mock_broker_addr(mb));
  mock_broker_stop(mb); /* nothing listens there now */
  rn_client_t *cl = client_for(addr);
  rn_batch_builder_t bld;
  const uint8_t *data;
  size_t len;
  build_batch(&bld, 4, 20000, &data, &len);
  probe_t p;
  probe_init(&p);
  assert_int_equal(submit_produce(cl, "zc", data, len, &p), 0);
  probe_wait(&p);
  assert_int_equal(p.cb_calls, 1);
  assert_int_equal(p.releases, 1);
  assert_int_equal(p.err, RN_ECONNECTION);
  probe_free(&p);
  rn_client_destroy(cl);
  rn_batch_builder_free(&bld);
}

/* Destroying the client with a referenced request still queued releases it
 * (on the destroying thread) before destroy returns. */
static void test_release_on_destroy(void **state) {
  (void)state;
  mock_broker_t *mb = mock_broker_start();
  mock_create_stream(mb, "zc", 1);
  rn_client_t *cl = client_for(mock_broker_addr(mb));
  rn_batch_builder_t bld;
  const uint8_t *data;
  size_t len;
  build_batch(&bld, 2, 50000, &data, &len);
  probe_t p[8];
  for (int i = 0; i < 8; i++) {
    probe_init(&p[i]);
    assert_int_equal(submit_produce(cl, "zc", data, len, &p[i]), 0);
  }
  rn_client_destroy(cl); /* some may be answered, some written, some cancelled */
  for (int i = 0; i < 8; i++) {
    assert_int_equal(p[i].cb_calls, 1);
    assert_int_equal(p[i].releases, 1);
    probe_free(&p[i]);
  }
  rn_batch_builder_free(&bld);
  mock_broker_stop(mb);
}

/* ---- the producer's batch pool --------------------------------------------- */

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  (void)shard;
  (void)offset;
  int *errs = opaque;
  if (err) (*errs)++;
}

/* Value of record r: its length and bytes derived from r. */
static size_t value_len(unsigned r) { return (size_t)((r * 2654435761u) % 9000u) + 1; }
static uint8_t value_byte(unsigned r, size_t j) { return (uint8_t)(r * 31u + j * 7u); }

static void test_producer_pool_reuse_exact(void **state) {
  (void)state;
  mock_broker_t *mb = mock_broker_start();
  mock_create_stream(mb, "pool", 2);
  rn_client_t *cl = client_for(mock_broker_addr(mb));
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.linger_ms = 60000;     /* batches go out at each flush */
  pc.max_batch_bytes = 32768; /* several batches per round */
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(cl, &pc, &p), 0);
  uint8_t *buf = malloc(9001);
  int errs = 0;
  const unsigned rounds = 12, per_round = 40;
  for (unsigned round = 0; round < rounds; round++) {
    for (unsigned k = 0; k < per_round; k++) {
      unsigned r = round * per_round + k;
      size_t n = value_len(r);
      for (size_t j = 0; j < n; j++) buf[j] = value_byte(r, j);
      char key[16];
      snprintf(key, sizeof key, "%u", r);
      rn_message_t m;
      memset(&m, 0, sizeof m);
      m.stream = "pool";
      m.key = key;
      m.key_len = strlen(key);
      m.data = buf;
      m.data_len = n;
      m.id = key; /* identifies the record when read back */
      m.id_len = strlen(key);
      m.cb = on_delivery;
      m.opaque = &errs;
      assert_int_equal(rn_producer_send_message(p, &m), 0);
    }
    assert_int_equal(rn_producer_flush(p, 30000), 0);
  }
  assert_int_equal(errs, 0);
  rn_producer_destroy(p);
  assert_true(mock_batches(mb) > rounds * 2); /* more batches than rounds: the pool was used */

  unsigned seen = 0;
  for (uint32_t shard = 0; shard < 2; shard++) {
    rn_consumer_t *c;
    assert_int_equal(rn_consumer_new(cl, "pool", shard, RN_POS_EARLIEST, 0, &c), 0);
    const rn_record_t *rec;
    rn_err_t err;
    while ((err = rn_consumer_poll(c, 0, &rec)) == 0) {
      char id[16];
      assert_true(rec->id_len > 0 && rec->id_len < sizeof id);
      memcpy(id, rec->id, rec->id_len);
      id[rec->id_len] = '\0';
      unsigned r = (unsigned)strtoul(id, NULL, 10);
      assert_int_equal(rec->value_len, value_len(r));
      const uint8_t *v = rec->value;
      for (size_t j = 0; j < rec->value_len; j++)
        if (v[j] != value_byte(r, j)) fail_msg("record %u byte %zu differs", r, j);
      seen++;
    }
    assert_int_equal(err, RN_EAGAIN);
    rn_consumer_destroy(c);
  }
  assert_int_equal(seen, rounds * per_round);
  free(buf);
  rn_client_destroy(cl);
  mock_broker_stop(mb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_referenced_batches_arrive_exact),
      cmocka_unit_test(test_release_when_never_written),
      cmocka_unit_test(test_release_on_destroy),
      cmocka_unit_test(test_producer_pool_reuse_exact),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
