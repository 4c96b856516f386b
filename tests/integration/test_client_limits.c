/*
 * test_client_limits.c — librunnel's handshake against the real runneld:
 * BrokerInfo reports what the broker was started with (version, data
 * directory, limits, counts, health); a record above the broker's
 * max_record_bytes is refused by rn_producer_send at once with both sizes
 * and never sent; pointing the client at runneld's HTTP port fails every
 * request with RN_EPROTOCOL and a message naming the right port, instead of
 * a misleading frame-size error and retries.
 *
 * The broker runs with limits that differ from the defaults, so the test
 * tells a value learnt from the broker from a compiled-in default.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker_proc.h"
#include "runnel/runnel.h"
#include "testutil.h"

#ifndef RN_TEST_VERSION
#define RN_TEST_VERSION "?"
#endif

#define REC_LIMIT (512u * 1024)
#define BATCH_LIMIT (4u << 20)
#define FRAME_LIMIT (6u << 20)
#define FETCH_LIMIT (2u << 20)

static const char *const k_args[] = {"--set", "max_record_bytes=512KiB", "--set", "max_batch_bytes=4MiB",
                                     "--set", "max_frame_bytes=6MiB",    "--set", "max_fetch_bytes=2MiB",
                                     NULL};

typedef struct fx {
  char *tmp;
  char data_dir[600];
  rn_test_broker_t broker;
  rn_client_t *cl;
} fx_t;

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  f->tmp = rn_test_tmpdir();
  snprintf(f->data_dir, sizeof(f->data_dir), "%s/data", f->tmp);
  assert_int_equal(rn_test_broker_start(&f->broker, f->data_dir, k_args), 0);
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = f->broker.addr;
  assert_int_equal(rn_client_new(&conf, &f->cl), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  rn_client_destroy(f->cl);
  assert_int_equal(rn_test_broker_stop(&f->broker), 0);
  rn_test_rmtree(f->tmp);
  free(f->tmp);
  free(f);
  return 0;
}

static void create(fx_t *f, const char *name, uint32_t shards) {
  rn_stream_config_t c = {.name = name, .shard_count = shards, .durability = RN_DURABILITY_SYNC};
  rn_err_t err = rn_stream_create(f->cl, &c, NULL);
  if (err) fail_msg("create %s: %s: %s", name, rn_err_name(err), rn_last_error_message());
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- BrokerInfo ------------------------------------------------------------ */

static void test_broker_info(void **state) {
  fx_t *f = *state;
  create(f, "a", 3);
  create(f, "b", 2);
  rn_broker_info_t *bi = NULL;
  rn_err_t err = rn_broker_info(f->cl, &bi);
  if (err) fail_msg("broker info: %s: %s", rn_err_name(err), rn_last_error_message());
  assert_string_equal(bi->version, RN_TEST_VERSION);
  assert_true(bi->start_ms > 0 && bi->start_ms <= wall_ms());
  assert_string_equal(bi->data_dir, f->data_dir);
  assert_int_equal(bi->data_dir_err, 0);
  assert_string_equal(bi->data_dir_message, "");
  assert_true(bi->data_dir_total_bytes > 0);
  assert_true(bi->data_dir_free_bytes <= bi->data_dir_total_bytes);
  assert_int_equal(bi->max_record_bytes, REC_LIMIT);
  assert_int_equal(bi->max_batch_bytes, BATCH_LIMIT);
  assert_int_equal(bi->max_frame_bytes, FRAME_LIMIT);
  assert_int_equal(bi->max_fetch_bytes, FETCH_LIMIT);
  assert_int_equal(bi->stream_count, 2);
  assert_int_equal(bi->shard_count, 5);
  assert_int_equal(bi->failed_shard_count, 0);
  assert_string_equal(bi->health, "ok");
  rn_broker_info_free(bi);
  rn_broker_info_free(NULL);
}

/* ---- an oversized record ------------------------------------------------------ */

typedef struct report {
  int calls;
  rn_err_t err;
} report_t;

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  (void)shard;
  (void)offset;
  report_t *r = opaque;
  r->calls++;
  r->err = err;
}

/* A record above the broker's max_record_bytes is refused by send() itself
 * (so never sent, never retried, no connection lost), with both sizes; the
 * producer goes on with the next record. Before the handshake existed the
 * record was accepted, sent, refused or cut off by the broker, and retried
 * until the delivery timeout. */
static void test_oversized_record_refused_at_once(void **state) {
  fx_t *f = *state;
  create(f, "big", 1);
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, NULL, &p), 0);
  size_t len = 20u << 20; /* 20 MiB, as a long line given to runnelctl produce */
  char *data = malloc(len);
  assert_non_null(data);
  memset(data, 'x', len);
  report_t big = {0};
  rn_err_t err = rn_producer_send(p, "big", NULL, 0, data, len, on_delivery, &big);
  assert_int_equal(err, RN_ETOOLARGE);
  assert_string_equal(rn_last_error_message(), "record of 20971520 bytes exceeds the broker's max_record_bytes 524288");
  assert_int_equal(rn_producer_outstanding(p), 0);

  /* Exactly at the limit (key + data) is accepted and stored; one byte more
   * is refused. */
  report_t at = {0}, over = {0};
  assert_int_equal(rn_producer_send(p, "big", "k", 1, data, REC_LIMIT - 1, on_delivery, &at), 0);
  assert_int_equal(rn_producer_send(p, "big", "k", 1, data, REC_LIMIT, on_delivery, &over), RN_ETOOLARGE);
  assert_string_equal(rn_last_error_message(), "record of 524289 bytes exceeds the broker's max_record_bytes 524288");
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  assert_int_equal(at.calls, 1);
  assert_int_equal(at.err, 0);
  /* A refused send never calls its callback. */
  assert_int_equal(big.calls, 0);
  assert_int_equal(over.calls, 0);
  rn_producer_destroy(p);
  free(data);

  rn_stream_desc_t *d;
  assert_int_equal(rn_stream_describe(f->cl, "big", &d), 0);
  assert_int_equal(d->shards[0].end_offset, 1);
  rn_stream_desc_free(d);
}

/* ---- the HTTP port ------------------------------------------------------------- */

static void test_http_port_named(void **state) {
  fx_t *f = *state;
  char addr[64], want[300];
  snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)f->broker.http_port);
  snprintf(want, sizeof(want),
           "%s answered in HTTP: that is runneld's HTTP port (Kinesis API, REST, /metrics); the native protocol port "
           "is 7400 by default",
           addr);
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = addr;
  rn_client_t *cl;
  assert_int_equal(rn_client_new(&conf, &cl), 0);
  rn_stream_names_t *names = NULL;
  assert_int_equal(rn_stream_list(cl, &names), RN_EPROTOCOL);
  assert_null(names);
  assert_string_equal(rn_last_error_message(), want);
  assert_false(rn_err_retriable(RN_EPROTOCOL));
  /* The producer's first request (its producer id) fails the same way,
   * not as a lost connection to retry. */
  rn_producer_t *p = NULL;
  assert_int_equal(rn_producer_new(cl, NULL, &p), RN_EPROTOCOL);
  assert_null(p);
  assert_string_equal(rn_last_error_message(), want);
  rn_client_destroy(cl);

  /* The native port still works. */
  assert_int_equal(rn_stream_list(f->cl, &names), 0);
  rn_stream_names_free(names);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_broker_info, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oversized_record_refused_at_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_port_named, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
