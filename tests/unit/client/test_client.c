/*
 * test_client.c — the client handle against the in-process mock broker:
 * admin round trips, pipelining (responses answered in reverse order reach
 * the right callers over one connection), error propagation (codes and the
 * broker's message), connection refused, reconnect after a loss, and
 * in-flight requests failing with RN_ECONNECTION when the connection drops,
 * and the handshake: BrokerInfo first on every connection, an older broker
 * (EUNKNOWNOP) tolerated, a peer that is not a runnel broker failing with
 * RN_EPROTOCOL (or RN_ETIMEDOUT when it says nothing).
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
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
  conf.reconnect_backoff_max_ms = 10;
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

static void test_admin_round_trip(void **state) {
  fixture_t *f = *state;
  rn_stream_config_t sc = {.name = "events", .shard_count = 4, .retention_ms = 86400000,
                           .retention_bytes = 1 << 30, .durability = RN_DURABILITY_INTERVAL};
  rn_stream_desc_t *d = NULL;
  assert_int_equal(rn_stream_create(f->cl, &sc, &d), 0);
  assert_string_equal(d->name, "events");
  assert_int_equal(d->shard_count, 4);
  assert_int_equal(d->retention_ms, 86400000);
  assert_int_equal(d->durability, RN_DURABILITY_INTERVAL);
  assert_string_equal(d->shards[3].shard_id, "shardId-000000000003");
  /* ranges tile the space: first starts at 0, last ends at 2^128-1 */
  char dec[RN_HASH_KEY_STRLEN];
  rn_hash_key_format(d->shards[0].hash_key_start, dec);
  assert_string_equal(dec, "0");
  rn_hash_key_format(d->shards[0].hash_key_end, dec);
  assert_string_equal(dec, "85070591730234615865843651857942052863");
  rn_hash_key_format(d->shards[3].hash_key_end, dec);
  assert_string_equal(dec, "340282366920938463463374607431768211455");
  rn_stream_desc_free(d);

  /* create again: EEXIST with the broker's message */
  assert_int_equal(rn_stream_create(f->cl, &sc, NULL), RN_EEXIST);
  assert_string_equal(rn_last_error_message(), "stream exists");

  sc.name = "other";
  sc.shard_count = 1;
  assert_int_equal(rn_stream_create(f->cl, &sc, NULL), 0);
  assert_string_equal(rn_last_error_message(), "");

  rn_stream_names_t *names = NULL;
  assert_int_equal(rn_stream_list(f->cl, &names), 0);
  assert_int_equal(names->count, 2);
  assert_string_equal(names->names[0], "events");
  assert_string_equal(names->names[1], "other");
  rn_stream_names_free(names);

  assert_int_equal(rn_stream_set_retention(f->cl, "events", 3600000, 0, &d), 0);
  assert_int_equal(d->retention_ms, 3600000);
  rn_stream_desc_free(d);

  rn_offsets_t *offs = NULL;
  assert_int_equal(rn_stream_list_offsets(f->cl, "events", RN_POS_EARLIEST, 0, &offs), 0);
  assert_int_equal(offs->count, 4);
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(offs->shards[i].shard, i);
    assert_int_equal(offs->shards[i].err, 0);
    assert_int_equal(offs->shards[i].end_offset, 0);
  }
  rn_offsets_free(offs);
  assert_int_equal(rn_stream_list_offsets(f->cl, "events", RN_POS_LATEST, 0, &offs), 0);
  assert_int_equal(offs->count, 4);
  rn_offsets_free(offs);

  assert_int_equal(rn_stream_delete(f->cl, "events"), 0);
  assert_int_equal(rn_stream_describe(f->cl, "events", &d), RN_ENOSTREAM);
  assert_int_equal(rn_stream_delete(f->cl, "events"), RN_ENOSTREAM);
  assert_int_equal(rn_stream_list_offsets(f->cl, "events", RN_POS_LATEST, 0, &offs), RN_ENOSTREAM);
  assert_int_equal(rn_stream_list_offsets(f->cl, "events", RN_POS_EARLIEST, 0, &offs), RN_ENOSTREAM);

  /* freeing NULL is fine */
  rn_stream_desc_free(NULL);
  rn_stream_names_free(NULL);
  rn_offsets_free(NULL);
}

typedef struct {
  rn_client_t *cl;
  char name[16];
  rn_err_t err;
  size_t shards;
} describe_job_t;

static void *describe_thread(void *arg) {
  describe_job_t *j = arg;
  rn_stream_desc_t *d = NULL;
  j->err = rn_stream_describe(j->cl, j->name, &d);
  if (j->err == 0) {
    j->shards = d->shard_count;
    rn_stream_desc_free(d);
  }
  return NULL;
}

static void test_pipelining_out_of_order(void **state) {
  fixture_t *f = *state;
  enum { N = 8 };
  for (int i = 0; i < N; i++) {
    char name[16];
    snprintf(name, sizeof name, "s%d", i);
    mock_create_stream(f->mb, name, (uint32_t)(i + 1));
  }
  /* warm the connection so every describe shares it */
  rn_stream_names_t *names;
  assert_int_equal(rn_stream_list(f->cl, &names), 0);
  rn_stream_names_free(names);
  /* the mock answers only when all N requests are in, in reverse order: so
   * they must all be in flight together on the one connection */
  mock_reorder_next(f->mb, N);
  pthread_t th[N];
  describe_job_t jobs[N];
  for (int i = 0; i < N; i++) {
    jobs[i].cl = f->cl;
    snprintf(jobs[i].name, sizeof jobs[i].name, "s%d", i);
    jobs[i].err = -1;
    pthread_create(&th[i], NULL, describe_thread, &jobs[i]);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(jobs[i].err, 0);
    assert_int_equal(jobs[i].shards, (size_t)(i + 1));
  }
  assert_int_equal(mock_connections(f->mb), 1);
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_DESCRIBE_STREAM), N);
}

static void test_error_propagation(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "x", 1);
  mock_inject(f->mb, RUNNEL__REQUEST__OP_DESCRIBE_STREAM, MOCK_ERR, RN_ETHROTTLED, 1);
  rn_stream_desc_t *d = NULL;
  rn_err_t err = rn_stream_describe(f->cl, "x", &d);
  assert_int_equal(err, RN_ETHROTTLED);
  assert_true(rn_err_retriable(err));
  assert_string_equal(rn_err_name(err), "ETHROTTLED");
  assert_string_equal(rn_last_error_message(), "injected error");
  assert_null(d);
  /* the next one is fine */
  assert_int_equal(rn_stream_describe(f->cl, "x", &d), 0);
  rn_stream_desc_free(d);
  assert_int_equal(rn_stream_describe(f->cl, "nope", &d), RN_ENOSTREAM);
  assert_false(rn_err_retriable(RN_ENOSTREAM));
  /* argument checks */
  assert_int_equal(rn_stream_describe(f->cl, NULL, &d), RN_EINVAL);
  assert_int_equal(rn_stream_create(f->cl, NULL, NULL), RN_EINVAL);
}

static void test_reconnect_after_loss(void **state) {
  fixture_t *f = *state;
  rn_stream_names_t *names = NULL;
  assert_int_equal(rn_stream_list(f->cl, &names), 0);
  rn_stream_names_free(names);
  assert_int_equal(mock_connections(f->mb), 1);
  /* the broker closes the connection instead of answering */
  mock_inject(f->mb, RUNNEL__REQUEST__OP_LIST_STREAMS, MOCK_DROP_BEFORE, 0, 1);
  rn_err_t err = rn_stream_list(f->cl, &names);
  assert_int_equal(err, RN_ECONNECTION);
  assert_true(rn_err_retriable(err));
  assert_non_null(strstr(rn_last_error_message(), "lost"));
  /* the next call reconnects */
  assert_int_equal(rn_stream_list(f->cl, &names), 0);
  rn_stream_names_free(names);
  assert_int_equal(mock_connections(f->mb), 2);
}

typedef struct {
  rn_client_t *cl;
  rn_err_t err;
} poll_job_t;

static void *poll_thread(void *arg) {
  poll_job_t *j = arg;
  rn_consumer_t *c;
  assert_int_equal(rn_consumer_new(j->cl, "t", 0, RN_POS_LATEST, 0, &c), 0);
  const rn_record_t *rec;
  j->err = rn_consumer_poll(c, 60000, &rec);
  rn_consumer_destroy(c);
  return NULL;
}

static void test_inflight_fail_on_loss(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "t", 1);
  poll_job_t job = {f->cl, 1};
  pthread_t th;
  pthread_create(&th, NULL, poll_thread, &job);
  mock_wait_parked(f->mb, 1); /* the fetch is on the wire, held by the broker */
  mock_inject(f->mb, RUNNEL__REQUEST__OP_LIST_STREAMS, MOCK_DROP_BEFORE, 0, 1);
  rn_stream_names_t *names = NULL;
  assert_int_equal(rn_stream_list(f->cl, &names), RN_ECONNECTION);
  pthread_join(th, NULL);
  assert_int_equal(job.err, RN_ECONNECTION);
}

static void test_connection_refused(void **state) {
  (void)state;
  /* a loopback port with nobody listening: bind, learn it, close */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
  close(fd);

  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = addr;
  conf.reconnect_backoff_ms = 1;
  rn_client_t *cl;
  assert_int_equal(rn_client_new(&conf, &cl), 0);
  rn_stream_names_t *names = NULL;
  assert_int_equal(rn_stream_list(cl, &names), RN_ECONNECTION);
  assert_non_null(strstr(rn_last_error_message(), "connect"));
  assert_non_null(strstr(rn_last_error_message(), addr));
  /* and again (after the backoff) */
  assert_int_equal(rn_stream_list(cl, &names), RN_ECONNECTION);
  rn_client_destroy(cl);
}

/* ---- handshake ---------------------------------------------------------------- */

static void test_handshake_on_every_connection(void **state) {
  fixture_t *f = *state;
  mock_set_limits(f->mb, 2u << 20, 3u << 20, 5u << 20, 7u << 20);
  rn_broker_info_t *bi = NULL;
  assert_int_equal(rn_broker_info(f->cl, &bi), 0);
  assert_int_equal(bi->max_record_bytes, 2u << 20);
  assert_int_equal(bi->max_batch_bytes, 3u << 20);
  assert_int_equal(bi->max_frame_bytes, 5u << 20);
  assert_int_equal(bi->max_fetch_bytes, 7u << 20);
  assert_string_equal(bi->version, "mock");
  assert_string_equal(bi->health, "ok");
  assert_int_equal(bi->failed_shard_count, 0);
  rn_broker_info_free(bi);
  /* the handshake's own request + the one asked for */
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_BROKER_INFO), 2);
  assert_int_equal(mock_connections(f->mb), 1);
  mock_inject(f->mb, RUNNEL__REQUEST__OP_LIST_STREAMS, MOCK_DROP_BEFORE, 0, 1);
  rn_stream_names_t *names = NULL;
  assert_int_equal(rn_stream_list(f->cl, &names), RN_ECONNECTION);
  assert_int_equal(rn_stream_list(f->cl, &names), 0);
  rn_stream_names_free(names);
  assert_int_equal(mock_connections(f->mb), 2);
  assert_int_equal(mock_count(f->mb, RUNNEL__REQUEST__OP_BROKER_INFO), 3);
}

static void test_handshake_older_broker(void **state) {
  fixture_t *f = *state;
  mock_set_limits(f->mb, 0, 0, 0, 0); /* answers BrokerInfo with EUNKNOWNOP */
  rn_stream_names_t *names = NULL;
  assert_int_equal(rn_stream_list(f->cl, &names), 0);
  rn_stream_names_free(names);
  rn_broker_info_t *bi = NULL;
  assert_int_equal(rn_broker_info(f->cl, &bi), RN_EUNKNOWNOP);
  assert_null(bi);
  assert_int_equal(mock_connections(f->mb), 1);
}

/* A one-connection server that writes `greeting` (NULL: nothing) and then
 * closes (close_after_greeting) or reads until the client goes away. */
typedef struct {
  int lfd;
  char addr[64];
  const char *greeting;
  bool close_after_greeting;
  pthread_t th;
} fake_peer_t;

static void *fake_peer_run(void *arg) {
  fake_peer_t *fp = arg;
  int fd = accept(fp->lfd, NULL, NULL);
  if (fd < 0) return NULL;
  if (fp->greeting) {
    ssize_t w = write(fd, fp->greeting, strlen(fp->greeting));
    (void)w;
  }
  char buf[256];
  while (!fp->close_after_greeting && read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
  return NULL;
}

static void fake_peer_start(fake_peer_t *fp, const char *greeting, bool close_after_greeting) {
  fp->greeting = greeting;
  fp->close_after_greeting = close_after_greeting;
  fp->lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  assert_int_equal(bind(fp->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(fp->lfd, 4), 0);
  assert_int_equal(getsockname(fp->lfd, (struct sockaddr *)&sa, &sl), 0);
  snprintf(fp->addr, sizeof fp->addr, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
  assert_int_equal(pthread_create(&fp->th, NULL, fake_peer_run, fp), 0);
}

static void fake_peer_stop(fake_peer_t *fp) {
  pthread_join(fp->th, NULL); /* returns once the client closed */
  close(fp->lfd);
}

static rn_err_t list_at(const char *addr, uint32_t connect_timeout_ms) {
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = addr;
  conf.connect_timeout_ms = connect_timeout_ms;
  rn_client_t *cl;
  assert_int_equal(rn_client_new(&conf, &cl), 0);
  rn_stream_names_t *names = NULL;
  rn_err_t err = rn_stream_list(cl, &names);
  assert_null(names);
  rn_client_destroy(cl); /* closes the connection: the peer's thread ends */
  return err;
}

static void test_handshake_not_runnel(void **state) {
  (void)state;
  fake_peer_t fp;
  fake_peer_start(&fp, "SSH-2.0-OpenSSH_9.2\r\n", false);
  rn_err_t err = list_at(fp.addr, 5000);
  assert_int_equal(err, RN_EPROTOCOL);
  char want[200];
  snprintf(want, sizeof want, "%s does not speak runnel's native protocol (its first answer is not a runnel frame)",
           fp.addr);
  assert_string_equal(rn_last_error_message(), want);
  fake_peer_stop(&fp);

  fake_peer_start(&fp, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", false);
  assert_int_equal(list_at(fp.addr, 5000), RN_EPROTOCOL);
  assert_non_null(strstr(rn_last_error_message(), "answered in HTTP: that is runneld's HTTP port"));
  fake_peer_stop(&fp);

  /* A TLS alert (7 bytes: a "length" of 197 KiB that never completes),
   * then the peer closes. */
  fake_peer_start(&fp, "\x15\x03\x03\x00\x02\x02\x32", true);
  assert_int_equal(list_at(fp.addr, 5000), RN_EPROTOCOL);
  assert_non_null(strstr(rn_last_error_message(), "answered in TLS"));
  fake_peer_stop(&fp);
}

static void test_handshake_silent_peer(void **state) {
  (void)state;
  fake_peer_t fp;
  fake_peer_start(&fp, NULL, false); /* accepts, never answers */
  assert_int_equal(list_at(fp.addr, 200), RN_ETIMEDOUT);
  assert_non_null(strstr(rn_last_error_message(), "did not answer the handshake"));
  fake_peer_stop(&fp);
}

static void test_bad_address(void **state) {
  (void)state;
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  rn_client_t *cl = NULL;
  const char *bad[] = {"localhost", "host:", ":7400", "host:99999", "host:12x", "[::1]7400", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    conf.broker = bad[i];
    assert_int_equal(rn_client_new(&conf, &cl), RN_EINVAL);
  }
  conf.broker = "[::1]:7400";
  assert_int_equal(rn_client_new(&conf, &cl), 0);
  rn_client_destroy(cl);
  assert_int_equal(rn_client_new(NULL, &cl), 0); /* defaults */
  rn_client_destroy(cl);
  rn_client_destroy(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_admin_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipelining_out_of_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_propagation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reconnect_after_loss, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inflight_fail_on_loss, setup, teardown),
      cmocka_unit_test(test_connection_refused),
      cmocka_unit_test(test_bad_address),
      cmocka_unit_test_setup_teardown(test_handshake_on_every_connection, setup, teardown),
      cmocka_unit_test_setup_teardown(test_handshake_older_broker, setup, teardown),
      cmocka_unit_test(test_handshake_not_runnel),
      cmocka_unit_test(test_handshake_silent_peer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
