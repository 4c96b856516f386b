/*
 * test_client_zerocopy.c — librunnel's produce path without the copy into
 * the frame: rn__client_submit_ref sends a request whose large byte fields
 * are referenced (one writev from where they lie) and calls its release
 * exactly once — after the write when the request went out, or when it
 * failed before being written (connection refused, client destroyed with
 * it pending); the broker gets byte-exact batches (the mock verifies both
 * checksums). The producer reuses reported batches (pool): records of
 * changing sizes over many flushed rounds read back exactly, so nothing of
 * an earlier batch leaks into a later one. A request that times out while
 * its write is still stuck (a peer that stopped reading) is not released
 * until the write ends: its bytes stay valid for libuv.
 *
 * No sleeps: every wait is on a condition variable signalled by a callback.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "mock_broker.h"
#include "runnel/batch.h"
#include "runnel/frame.h"
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

/* ---- a peer that stops reading ------------------------------------------------ */

/* Answers the client's BrokerInfo handshake (EUNKNOWNOP: an older broker,
 * default limits), then reads nothing more until told to close. Its
 * receive buffer is pinned small, so a large write cannot complete. */
typedef struct {
  int lfd, cfd;
  char addr[64];
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool answered, close_now;
} deaf_t;

/* cmocka's assertions jump back to the test's stack: not from this thread. */
#define CHECK(x)                                                              \
  do {                                                                        \
    if (!(x)) {                                                               \
      fprintf(stderr, "%s:%d: deaf peer: check failed: %s\n", __FILE__, __LINE__, #x); \
      abort();                                                                \
    }                                                                         \
  } while (0)

static void *deaf_main(void *arg) {
  deaf_t *d = arg;
  d->cfd = accept(d->lfd, NULL, NULL);
  CHECK(d->cfd >= 0);
  uint8_t buf[4096];
  size_t len = 0;
  rn_frame_t fr;
  for (;;) {
    ssize_t n = read(d->cfd, buf + len, sizeof buf - len);
    CHECK(n > 0);
    len += (size_t)n;
    rn_err_t err = rn_frame_decode(buf, len, sizeof buf, &fr, NULL);
    if (err == 0) break;
    CHECK(err == RN_EPARTIAL);
  }
  Runnel__Request *req = runnel__request__unpack(NULL, fr.payload_len, fr.payload);
  CHECK(req != NULL);
  CHECK(req->op_case == RUNNEL__REQUEST__OP_BROKER_INFO);
  Runnel__Error e;
  runnel__error__init(&e);
  e.code = rn_err_to_wire(RN_EUNKNOWNOP);
  Runnel__Response resp;
  runnel__response__init(&resp);
  resp.correlation_id = req->correlation_id;
  resp.error = &e;
  runnel__request__free_unpacked(req, NULL);
  uint8_t out[256];
  size_t olen = 0;
  CHECK(rn_frame_encode(&resp.base, out, sizeof out, &olen) == 0);
  CHECK(write(d->cfd, out, olen) == (ssize_t)olen);
  pthread_mutex_lock(&d->mu);
  d->answered = true;
  pthread_cond_broadcast(&d->cond);
  while (!d->close_now) pthread_cond_wait(&d->cond, &d->mu);
  pthread_mutex_unlock(&d->mu);
  close(d->cfd);
  return NULL;
}

static void deaf_start(deaf_t *d) {
  memset(d, 0, sizeof *d);
  pthread_mutex_init(&d->mu, NULL);
  pthread_cond_init(&d->cond, NULL);
  d->lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(d->lfd >= 0);
  int small = 4096; /* inherited by the accepted socket; no autotuning */
  assert_int_equal(setsockopt(d->lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(d->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(d->lfd, 1), 0);
  socklen_t al = sizeof a;
  assert_int_equal(getsockname(d->lfd, (struct sockaddr *)&a, &al), 0);
  snprintf(d->addr, sizeof d->addr, "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
  assert_int_equal(pthread_create(&d->th, NULL, deaf_main, d), 0);
}

static void deaf_close(deaf_t *d) {
  pthread_mutex_lock(&d->mu);
  d->close_now = true;
  pthread_cond_broadcast(&d->cond);
  pthread_mutex_unlock(&d->mu);
  pthread_join(d->th, NULL);
  close(d->lfd);
  pthread_mutex_destroy(&d->mu);
  pthread_cond_destroy(&d->cond);
}

/* The request times out while its write cannot finish (12 MiB against a
 * peer that reads nothing: more than the socket buffers can hold, which the
 * kernel caps at tcp_wmem's maximum on our side and the pinned 4 KiB on the
 * peer's). Its callback runs with RN_ETIMEDOUT, the bytes stay lent; only
 * when the connection dies does the release run, once. */
static void test_release_waits_for_stuck_write(void **state) {
  (void)state;
  deaf_t d;
  deaf_start(&d);
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = d.addr;
  /* Long enough that the request is surely written before it expires (it
   * goes out in the turn of the client's loop that sees the handshake's
   * answer); an expired request that was never written is released right
   * after its callback, which is not what this tests. */
  conf.request_timeout_ms = 1000;
  rn_client_t *cl = NULL;
  assert_int_equal(rn_client_new(&conf, &cl), 0);
  rn_batch_builder_t bld;
  const uint8_t *data;
  size_t len;
  build_batch(&bld, 12, 1u << 20, &data, &len);
  probe_t p;
  probe_init(&p);
  assert_int_equal(submit_produce(cl, "zc", data, len, &p), 0);
  pthread_mutex_lock(&p.mu);
  while (p.cb_calls == 0) pthread_cond_wait(&p.cond, &p.mu);
  assert_int_equal(p.err, RN_ETIMEDOUT);
  assert_int_equal(p.releases, 0); /* the write still reads the batch */
  pthread_mutex_unlock(&p.mu);
  deaf_close(&d); /* the connection dies: the write fails */
  pthread_mutex_lock(&p.mu);
  while (p.releases == 0) pthread_cond_wait(&p.cond, &p.mu);
  pthread_mutex_unlock(&p.mu);
  rn_client_destroy(cl);
  assert_int_equal(p.cb_calls, 1);
  assert_int_equal(p.releases, 1);
  probe_free(&p);
  rn_batch_builder_free(&bld);
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
      cmocka_unit_test(test_release_waits_for_stuck_write),
      cmocka_unit_test(test_producer_pool_reuse_exact),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
