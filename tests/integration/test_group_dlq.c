/*
 * test_group_dlq.c — librunnel's dead-letter stream against the real
 * runneld: a group member with max_attempts = 3 rejects (rn_group_nack) one
 * poison record; it is delivered again after the first two rejections, the
 * third produces it to "<stream>.dlq" with the dlq.* headers (dlq.stream,
 * dlq.group, dlq.shard, dlq.offset, dlq.reason, ...) and the group moves
 * on: the following records arrive, and the group's checkpoint passes the
 * poison record.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grouptest.h"

#define STREAM "payments"
#define GROUP "settle"
#define NREC 10
#define POISON 3

/* The value of header key in rec, copied into buf (NUL-terminated); false
 * when absent. */
static bool header(const rn_record_t *rec, const char *key, char *buf, size_t cap) {
  size_t pos = 0;
  rn_record_header_t h;
  rn_err_t err;
  while ((err = rn_record_header_next(rec, &pos, &h)) == 0) {
    if (h.key_len == strlen(key) && memcmp(h.key, key, h.key_len) == 0) {
      snprintf(buf, cap, "%.*s", (int)h.value_len, (const char *)h.value);
      return true;
    }
  }
  assert_int_equal(err, RN_EOFFSET);
  return false;
}

static void test_poison_record_goes_to_dlq_after_max_attempts(void **state) {
  rn_gt_t *g = *state;
  rn_gt_create_stream(g, STREAM, 1);
  rn_gt_produced_t p = {0};
  rn_gt_produce(g, STREAM, "pay", NREC, &p);
  for (size_t i = 0; i < NREC; i++) {
    assert_int_equal(p.shard[i], 0);
    assert_int_equal(p.offset[i], i); /* one shard, one producer: in send order */
  }

  rn_group_conf_t conf;
  rn_group_conf_init(&conf);
  conf.start_kind = RN_POS_EARLIEST;
  conf.max_attempts = 3;
  conf.client_id = "dlq-test";
  rn_group_consumer_t *gc = NULL;
  rn_err_t err = rn_group_consumer_new(g->cl, STREAM, GROUP, &conf, &gc);
  if (err) fail_msg("join: %s: %s", rn_err_name(err), rn_last_error_message());

  unsigned poison_seen = 0, delivered[NREC] = {0};
  uint64_t deadline = rn_gt_now_ms() + 30000;
  int last = -1;
  while (last != NREC - 1) {
    if (rn_gt_now_ms() > deadline) fail_msg("did not get past the poison record (last %d)", last);
    const rn_record_t *rec;
    uint32_t shard;
    err = rn_group_poll(gc, 500, &rec, &shard);
    if (err == RN_EAGAIN) continue;
    if (err) fail_msg("poll: %s: %s", rn_err_name(err), rn_last_error_message());
    assert_int_equal(shard, 0);
    assert_true(rec->offset < NREC);
    char val[64];
    snprintf(val, sizeof(val), "%.*s", (int)rec->value_len, (const char *)rec->value);
    assert_string_equal(val, p.value[rec->offset]);
    delivered[rec->offset]++;
    if (rec->offset == POISON) {
      poison_seen++;
      assert_true(poison_seen <= 3);
      assert_int_equal(rn_group_nack(gc, "cannot parse amount"), 0);
      continue;
    }
    /* in order: nothing after the poison record before it is dealt with */
    if (rec->offset > POISON) assert_int_equal(poison_seen, 3);
    last = (int)rec->offset;
  }
  assert_int_equal(poison_seen, 3);
  for (int i = 0; i < NREC; i++) assert_int_equal(delivered[i], i == POISON ? 3 : 1);
  assert_int_equal(rn_group_commit(gc, true), 0);

  /* The group moved past the poison record. */
  rn_group_desc_t *d = rn_gt_describe(g, STREAM, GROUP);
  assert_int_equal(d->shard_count, 1);
  assert_int_equal(d->shards[0].checkpoint, NREC);
  assert_int_equal(d->shards[0].lag_records, 0);
  rn_group_desc_free(d);
  assert_int_equal(rn_group_consumer_close(gc), 0);

  /* The dead-letter stream holds exactly the poison record, with its
   * origin in the headers. */
  rn_consumer_t *c;
  assert_int_equal(rn_consumer_new(g->cl, STREAM ".dlq", 0, RN_POS_EARLIEST, 0, &c), 0);
  const rn_record_t *rec;
  err = rn_consumer_poll(c, 5000, &rec);
  if (err) fail_msg("reading %s.dlq: %s: %s", STREAM, rn_err_name(err), rn_last_error_message());
  char buf[256];
  snprintf(buf, sizeof(buf), "%.*s", (int)rec->value_len, (const char *)rec->value);
  assert_string_equal(buf, p.value[POISON]);
  snprintf(buf, sizeof(buf), "%.*s", (int)rec->key_len, (const char *)rec->key);
  assert_string_equal(buf, p.value[POISON]); /* the key is copied too */
  assert_true(header(rec, "dlq.stream", buf, sizeof(buf)));
  assert_string_equal(buf, STREAM);
  assert_true(header(rec, "dlq.group", buf, sizeof(buf)));
  assert_string_equal(buf, GROUP);
  assert_true(header(rec, "dlq.shard", buf, sizeof(buf)));
  assert_string_equal(buf, "0");
  assert_true(header(rec, "dlq.offset", buf, sizeof(buf)));
  assert_string_equal(buf, "3");
  assert_true(header(rec, "dlq.reason", buf, sizeof(buf)));
  assert_string_equal(buf, "cannot parse amount");
  assert_true(header(rec, "dlq.attempts", buf, sizeof(buf)));
  assert_string_equal(buf, "3");
  assert_true(header(rec, "dlq.timestamp", buf, sizeof(buf)));
  uint64_t pos;
  assert_true(rn_consumer_position(c, &pos));
  assert_int_equal(pos, 1);
  assert_int_equal(rn_consumer_poll(c, 0, &rec), RN_EAGAIN); /* nothing else */
  rn_consumer_destroy(c);

  /* The dead-letter stream was created with one shard. */
  rn_stream_desc_t *sd = NULL;
  assert_int_equal(rn_stream_describe(g->cl, STREAM ".dlq", &sd), 0);
  assert_int_equal(sd->shard_count, 1);
  rn_stream_desc_free(sd);
  rn_gt_produced_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_poison_record_goes_to_dlq_after_max_attempts, rn_gt_setup,
                                      rn_gt_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
