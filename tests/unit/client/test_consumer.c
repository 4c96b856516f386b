/*
 * test_consumer.c — the single-shard consumer against the in-process mock
 * broker: a long poll answered by the append (ordering: the test waits
 * until the fetch is parked at the broker, then produces), positions
 * (offset inside a batch skips the records below it, earliest, latest,
 * timestamp), the high watermark, headers and record ids, a corrupted batch
 * detected by verification, and fetch errors.
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
  rn_producer_t *p;
} fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  f->mb = mock_broker_start();
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = mock_broker_addr(f->mb);
  assert_int_equal(rn_client_new(&conf, &f->cl), 0);
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.linger_ms = 60000; /* batches go out when the test flushes */
  assert_int_equal(rn_producer_new(f->cl, &pc, &f->p), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  rn_producer_destroy(f->p);
  rn_client_destroy(f->cl);
  mock_broker_stop(f->mb);
  free(f);
  return 0;
}

/* Produce n records "<prefix>-<i>" to shard 0 of a 1-shard stream as one
 * batch. */
static void produce(fixture_t *f, const char *stream, const char *prefix, int n, int64_t ts0) {
  for (int i = 0; i < n; i++) {
    char d[32];
    snprintf(d, sizeof d, "%s-%d", prefix, i);
    rn_message_t m = {.stream = stream, .key = "k", .key_len = 1, .data = d, .data_len = strlen(d),
                      .timestamp_ms = ts0 ? ts0 + i * 1000 : 0};
    assert_int_equal(rn_producer_send_message(f->p, &m), 0);
  }
  assert_int_equal(rn_producer_flush(f->p, 60000), 0);
}

static void expect(const rn_record_t *rec, uint64_t offset, const char *data) {
  assert_int_equal(rec->offset, offset);
  assert_int_equal(rec->value_len, strlen(data));
  assert_memory_equal(rec->value, data, rec->value_len);
}

typedef struct {
  rn_client_t *cl;
  rn_err_t err;
  char data[32];
  uint64_t offset;
} waiter_t;

static void *long_poll(void *arg) {
  waiter_t *w = arg;
  rn_consumer_t *c;
  assert_int_equal(rn_consumer_new(w->cl, "lp", 0, RN_POS_LATEST, 0, &c), 0);
  const rn_record_t *rec;
  w->err = rn_consumer_poll(c, 600000, &rec);
  if (w->err == 0) {
    snprintf(w->data, sizeof w->data, "%.*s", (int)rec->value_len, (const char *)rec->value);
    w->offset = rec->offset;
  }
  rn_consumer_destroy(c);
  return NULL;
}

static void test_long_poll_woken_by_append(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "lp", 1);
  produce(f, "lp", "old", 3, 0);
  waiter_t w = {.cl = f->cl, .err = 1};
  pthread_t th;
  pthread_create(&th, NULL, long_poll, &w);
  mock_wait_parked(f->mb, 1); /* the fetch waits at the broker */
  produce(f, "lp", "new", 1, 0);
  pthread_join(th, NULL);
  assert_int_equal(w.err, 0);
  assert_string_equal(w.data, "new-0");
  assert_int_equal(w.offset, 3);
}

static void test_positions(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "pos", 1);
  produce(f, "pos", "a", 10, 1000000); /* one batch, timestamps 1000000 + i*1000 */
  produce(f, "pos", "b", 5, 0);
  rn_consumer_t *c;
  const rn_record_t *rec;
  uint64_t off, hwm;

  /* offset 5 lies inside the first batch: records 0..4 are skipped */
  assert_int_equal(rn_consumer_new(f->cl, "pos", 0, RN_POS_OFFSET, 5, &c), 0);
  assert_true(rn_consumer_position(c, &off));
  assert_int_equal(off, 5);
  assert_false(rn_consumer_high_watermark(c, &hwm));
  assert_int_equal(rn_consumer_poll(c, 0, &rec), 0);
  expect(rec, 5, "a-5");
  assert_true(rn_consumer_high_watermark(c, &hwm));
  assert_int_equal(hwm, 15);
  for (int i = 6; i < 10; i++) {
    assert_int_equal(rn_consumer_poll(c, 0, &rec), 0);
    char want[8];
    snprintf(want, sizeof want, "a-%d", i);
    expect(rec, (uint64_t)i, want);
  }
  for (int i = 0; i < 5; i++) {
    assert_int_equal(rn_consumer_poll(c, 0, &rec), 0);
    char want[8];
    snprintf(want, sizeof want, "b-%d", i);
    expect(rec, (uint64_t)(10 + i), want);
  }
  assert_int_equal(rn_consumer_poll(c, 0, &rec), RN_EAGAIN);
  assert_null(rec);
  assert_true(rn_consumer_position(c, &off));
  assert_int_equal(off, 15);

  /* seek back to the earliest */
  assert_int_equal(rn_consumer_seek(c, RN_POS_EARLIEST, 0), 0);
  assert_false(rn_consumer_position(c, &off));
  assert_int_equal(rn_consumer_poll(c, 0, &rec), 0);
  expect(rec, 0, "a-0");
  assert_int_equal(rec->timestamp, 1000000);

  /* by timestamp: the first record at or after */
  assert_int_equal(rn_consumer_seek(c, RN_POS_TIMESTAMP, 1003500), 0);
  assert_int_equal(rn_consumer_poll(c, 0, &rec), 0);
  expect(rec, 4, "a-4");
  assert_int_equal(rec->timestamp, 1004000);

  /* latest: nothing until something is appended */
  assert_int_equal(rn_consumer_seek(c, RN_POS_LATEST, 0), 0);
  assert_int_equal(rn_consumer_poll(c, 0, &rec), RN_EAGAIN);
  assert_true(rn_consumer_position(c, &off));
  assert_int_equal(off, 15);
  produce(f, "pos", "c", 1, 0);
  assert_int_equal(rn_consumer_poll(c, 0, &rec), 0);
  expect(rec, 15, "c-0");
  rn_consumer_destroy(c);
}

static void test_headers_and_id(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "h", 1);
  rn_record_header_t hdrs[2] = {{(const uint8_t *)"trace", 5, (const uint8_t *)"abc", 3},
                                {(const uint8_t *)"empty", 5, NULL, 0}};
  rn_message_t m = {.stream = "h", .key = "user-1", .key_len = 6, .data = "payload", .data_len = 7,
                    .headers = hdrs, .header_count = 2, .id = "id-1", .id_len = 4};
  assert_int_equal(rn_producer_send_message(f->p, &m), 0);
  assert_int_equal(rn_producer_flush(f->p, 60000), 0);
  rn_consumer_t *c;
  assert_int_equal(rn_consumer_new(f->cl, "h", 0, RN_POS_EARLIEST, 0, &c), 0);
  const rn_record_t *rec;
  assert_int_equal(rn_consumer_poll(c, 0, &rec), 0);
  assert_int_equal(rec->key_len, 6);
  assert_memory_equal(rec->key, "user-1", 6);
  assert_int_equal(rec->id_len, 4);
  assert_memory_equal(rec->id, "id-1", 4);
  assert_int_equal(rec->header_count, 2);
  size_t pos = 0;
  rn_record_header_t h;
  assert_int_equal(rn_record_header_next(rec, &pos, &h), 0);
  assert_int_equal(h.key_len, 5);
  assert_memory_equal(h.key, "trace", 5);
  assert_memory_equal(h.value, "abc", 3);
  assert_int_equal(rn_record_header_next(rec, &pos, &h), 0);
  assert_int_equal(h.value_len, 0);
  assert_int_equal(rn_record_header_next(rec, &pos, &h), RN_EOFFSET);
  rn_consumer_destroy(c);
}

static void test_corrupt_batch_detected(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "c", 1);
  produce(f, "c", "ok", 2, 0);
  produce(f, "c", "bad", 2, 0);
  mock_corrupt(f->mb, "c", 0, 1);
  rn_consumer_t *c;
  assert_int_equal(rn_consumer_new(f->cl, "c", 0, RN_POS_EARLIEST, 0, &c), 0);
  const rn_record_t *rec;
  assert_int_equal(rn_consumer_poll(c, 0, &rec), 0);
  expect(rec, 0, "ok-0");
  assert_int_equal(rn_consumer_poll(c, 0, &rec), 0);
  expect(rec, 1, "ok-1");
  assert_int_equal(rn_consumer_poll(c, 0, &rec), RN_ECORRUPT);
  /* the position did not move past what was verified */
  uint64_t off;
  assert_true(rn_consumer_position(c, &off));
  assert_int_equal(off, 2);
  assert_int_equal(rn_consumer_poll(c, 0, &rec), RN_ECORRUPT);
  rn_consumer_destroy(c);
}

static void test_fetch_errors(void **state) {
  fixture_t *f = *state;
  mock_create_stream(f->mb, "e", 1);
  rn_consumer_t *c;
  const rn_record_t *rec;
  assert_int_equal(rn_consumer_new(f->cl, "missing", 0, RN_POS_EARLIEST, 0, &c), 0);
  assert_int_equal(rn_consumer_poll(c, 0, &rec), RN_ENOSTREAM);
  rn_consumer_destroy(c);
  assert_int_equal(rn_consumer_new(f->cl, "e", 7, RN_POS_EARLIEST, 0, &c), 0);
  assert_int_equal(rn_consumer_poll(c, 0, &rec), RN_ENOSHARD);
  rn_consumer_destroy(c);
  assert_int_equal(rn_consumer_new(f->cl, "e", 0, RN_POS_OFFSET, 100, &c), 0);
  assert_int_equal(rn_consumer_poll(c, 0, &rec), RN_EOFFSET);
  /* recover by seeking */
  assert_int_equal(rn_consumer_seek(c, RN_POS_EARLIEST, 0), 0);
  assert_int_equal(rn_consumer_poll(c, 0, &rec), RN_EAGAIN);
  /* an injected retriable error, then success */
  produce(f, "e", "x", 1, 0);
  mock_inject(f->mb, RUNNEL__REQUEST__OP_FETCH, MOCK_SHARD_ERR, RN_ETHROTTLED, 1);
  assert_int_equal(rn_consumer_poll(c, 0, &rec), RN_ETHROTTLED);
  assert_int_equal(rn_consumer_poll(c, 0, &rec), 0);
  expect(rec, 0, "x-0");
  rn_consumer_destroy(c);
  assert_int_equal(rn_consumer_new(f->cl, "e", 0, RN_POS_OFFSET, -1, &c), RN_EINVAL);
  rn_consumer_destroy(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_long_poll_woken_by_append, setup, teardown),
      cmocka_unit_test_setup_teardown(test_positions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_headers_and_id, setup, teardown),
      cmocka_unit_test_setup_teardown(test_corrupt_batch_detected, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fetch_errors, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
