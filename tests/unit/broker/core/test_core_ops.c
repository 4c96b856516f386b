/*
 * test_core_ops.c — broker/core through rn_core.h alone, on a private uv
 * loop: create and describe (the equal split of the key space), produce,
 * fetch (data at once; a long poll woken by an append; zero-copy hold),
 * list offsets (earliest, latest, an offset out of range, by timestamp),
 * delete while a fetch is parked, and the subsystem slots and listener.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coretest.h"
#include "runnel/batch.h"

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

static void test_create_describe(void **state) {
  ct_t *t = *state;
  assert_int_equal(ct_create(t, "s", 4), 0);
  assert_int_equal(ct_create(t, "s", 4), RN_EEXIST);
  assert_int_equal(ct_create(t, "bad/name", 1), RN_EINVAL);
  assert_int_equal(ct_create(t, "zero", 0), RN_EINVAL);
  ct_desc_t d;
  ct_describe(t, "s", &d);
  assert_int_equal(d.err, 0);
  assert_int_equal(d.nshards, 4);
  assert_int_equal(d.state, RN_CORE_STREAM_ACTIVE);
  /* The equal split: contiguous, from 0 to 2^128-1. */
  uint8_t zero[16] = {0}, ones[16];
  memset(ones, 0xff, 16);
  assert_memory_equal(d.shards[0].hash_start, zero, 16);
  assert_memory_equal(d.shards[3].hash_end, ones, 16);
  uint8_t q1[16] = {0x40};
  assert_memory_equal(d.shards[1].hash_start, q1, 16);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(d.shards[i].index, i);
    assert_int_equal(d.shards[i].state, RN_CORE_SHARD_OPEN);
    assert_int_equal(d.shards[i].nparents, 0);
  }
  ct_describe(t, "missing", &d);
  assert_int_equal(d.err, RN_ENOSTREAM);
}

typedef struct fetchw {
  bool done;
  rn_err_t err;
  rn_err_t shard_err;
  char msg[200];
  uint64_t offset, next, end;
  size_t bytes;
  uint32_t records;
  rn_core_t *core;
  bool hold;
  void *token;
  const uint8_t *held;
} fetchw_t;

static void on_fetch(void *ctx, const rn_core_fetch_result_t *r) {
  fetchw_t *w = ctx;
  w->done = true;
  w->err = r->err;
  if (r->err) return;
  assert_int_equal(r->nresults, 1);
  const rn_core_fetch_shard_result_t *s = &r->results[0];
  w->shard_err = s->err;
  if (s->msg) snprintf(w->msg, sizeof w->msg, "%s", s->msg);
  w->offset = s->offset;
  w->next = s->next_offset;
  w->end = s->end_offset;
  w->bytes = s->batches_len;
  size_t at = 0;
  while (at < s->batches_len) {
    rn_batch_header_t h;
    assert_int_equal(rn_batch_header_decode(s->batches + at, s->batches_len - at, &h), 0);
    w->records += h.record_count;
    at += h.batch_length;
  }
  if (w->hold) {
    w->token = rn_core_fetch_hold(w->core);
    w->held = s->batches;
  }
}

static void start_fetch(ct_t *t, const char *stream, rn_core_pos_kind_t kind, int64_t value, uint32_t wait_ms, fetchw_t *w) {
  rn_core_shard_pos_t pos = {.shard = 0, .kind = kind, .value = value};
  rn_core_fetch_req_t req = {.stream = stream, .shards = &pos, .nshards = 1, .max_wait_ms = wait_ms};
  w->core = t->core;
  rn_core_fetch(t->core, &req, on_fetch, w);
}

static void test_produce_fetch(void **state) {
  ct_t *t = *state;
  assert_int_equal(ct_create(t, "s", 2), 0);
  uint64_t base = 99;
  assert_int_equal(ct_produce(t, "s", 0, 3, 1000, &base), 0);
  assert_int_equal(base, 0);
  assert_int_equal(ct_produce(t, "s", 0, 2, 2000, &base), 0);
  assert_int_equal(base, 3);
  assert_int_equal(ct_produce(t, "s", 7, 1, 0, NULL), RN_ENOSHARD);
  assert_int_equal(ct_produce(t, "nope", 0, 1, 0, NULL), RN_ENOSTREAM);

  fetchw_t w = {.hold = true};
  start_fetch(t, "s", RN_CORE_POS_EARLIEST, 0, 0, &w);
  ct_run_until(t, &w.done);
  assert_int_equal(w.err, 0);
  assert_int_equal(w.shard_err, 0);
  assert_int_equal(w.offset, 0);
  assert_int_equal(w.records, 5);
  assert_int_equal(w.next, 5);
  assert_int_equal(w.end, 5);
  /* Held past the callback: still readable, and charged to the budget. */
  assert_non_null(w.token);
  rn_batch_header_t h;
  assert_int_equal(rn_batch_header_decode(w.held, w.bytes, &h), 0);
  rn_core_stats_t st;
  rn_core_stats(t->core, &st);
  assert_true(st.fetch_memory_bytes > 0);
  assert_int_equal(st.records_out, 5);
  rn_core_fetch_release(w.token);
  rn_core_stats(t->core, &st);
  assert_int_equal(st.fetch_memory_bytes, 0);

  /* An offset outside the log. */
  fetchw_t w2 = {0};
  start_fetch(t, "s", RN_CORE_POS_OFFSET, 42, 0, &w2);
  ct_run_until(t, &w2.done);
  assert_int_equal(w2.shard_err, RN_EOFFSET);
  assert_string_equal(w2.msg, "offset 42 is outside [0, 5] of shard 0");
}

static void test_long_poll_woken_by_append(void **state) {
  ct_t *t = *state;
  assert_int_equal(ct_create(t, "s", 1), 0);
  fetchw_t w = {0};
  start_fetch(t, "s", RN_CORE_POS_LATEST, 0, 30000, &w);
  uv_run(&t->loop, UV_RUN_NOWAIT);
  assert_false(w.done); /* parked: nothing to read */
  assert_int_equal(ct_produce(t, "s", 0, 4, 1000, NULL), 0);
  ct_run_until(t, &w.done);
  assert_int_equal(w.shard_err, 0);
  assert_int_equal(w.records, 4);
  assert_int_equal(w.next, 4);
}

static void test_list_offsets(void **state) {
  ct_t *t = *state;
  assert_int_equal(ct_create(t, "s", 1), 0);
  assert_int_equal(ct_produce(t, "s", 0, 3, 1000, NULL), 0); /* 0..2 at 1000..1002 */
  assert_int_equal(ct_produce(t, "s", 0, 3, 5000, NULL), 0); /* 3..5 at 5000..5002 */
  ct_offsets_t o;
  ct_list_offset(t, "s", 0, RN_CORE_POS_EARLIEST, 0, &o);
  assert_int_equal(o.err, 0);
  assert_int_equal(o.offset, 0);
  assert_int_equal(o.end, 6);
  ct_list_offset(t, "s", 0, RN_CORE_POS_LATEST, 0, &o);
  assert_int_equal(o.offset, 6);
  ct_list_offset(t, "s", 0, RN_CORE_POS_TIMESTAMP, 1001, &o);
  assert_int_equal(o.shard_err, 0);
  assert_int_equal(o.offset, 1);
  ct_list_offset(t, "s", 0, RN_CORE_POS_TIMESTAMP, 4000, &o);
  assert_int_equal(o.offset, 3);
  ct_list_offset(t, "s", 0, RN_CORE_POS_TIMESTAMP, 9000, &o);
  assert_int_equal(o.offset, 6); /* nothing at or after: the end */
  ct_list_offset(t, "s", 0, RN_CORE_POS_OFFSET, 7, &o);
  assert_int_equal(o.shard_err, RN_EOFFSET);
  ct_list_offset(t, "s", 3, RN_CORE_POS_LATEST, 0, &o);
  assert_int_equal(o.shard_err, RN_ENOSHARD);
  ct_list_offset(t, "x", 0, RN_CORE_POS_LATEST, 0, &o);
  assert_int_equal(o.err, RN_ENOSTREAM);
}

static void test_delete_while_fetch_parked(void **state) {
  ct_t *t = *state;
  assert_int_equal(ct_create(t, "s", 1), 0);
  assert_int_equal(ct_produce(t, "s", 0, 2, 1000, NULL), 0);
  fetchw_t w = {0};
  start_fetch(t, "s", RN_CORE_POS_LATEST, 0, 30000, &w);
  uv_run(&t->loop, UV_RUN_NOWAIT);
  assert_false(w.done);
  assert_int_equal(ct_delete(t, "s"), 0);
  ct_run_until(t, &w.done);
  assert_int_equal(w.err, 0);
  assert_int_equal(w.shard_err, RN_ENOSTREAM);
  assert_string_equal(w.msg, "stream s was deleted");
  /* Unreachable at once; closed and removed off the loop, then idle. */
  ct_desc_t d;
  ct_describe(t, "s", &d);
  assert_int_equal(d.err, RN_ENOSTREAM);
  while (!rn_core_idle(t->core)) uv_run(&t->loop, UV_RUN_ONCE);
  /* The name is free again, for a new stream with new files. */
  assert_int_equal(ct_create(t, "s", 1), 0);
  ct_offsets_t o;
  ct_list_offset(t, "s", 0, RN_CORE_POS_LATEST, 0, &o);
  assert_int_equal(o.offset, 0);
}

/* ---- subsystems ------------------------------------------------------------------ */

typedef struct sub {
  int created, deleting, opened, closing, ticks;
  rn_core_t *core;
} sub_t;

static void s_created(void *arg, rn_core_stream_t *st) {
  sub_t *s = arg;
  s->created++;
  assert_int_equal(rn_core_stream_state(st), RN_CORE_STREAM_ACTIVE);
}
static void s_deleting(void *arg, rn_core_stream_t *st) {
  sub_t *s = arg;
  s->deleting++;
  assert_null(rn_core_stream_find(s->core, rn_core_stream_name(st))); /* unreachable already */
}
static void s_opened(void *arg, rn_core_shard_t *sh) {
  sub_t *s = arg;
  s->opened++;
  int *slot = malloc(sizeof(int));
  *slot = (int)rn_core_shard_index(sh);
  assert_null(rn_core_shard_slot(sh, RN_SUB_TIER));
  rn_core_shard_set_slot(sh, RN_SUB_TIER, slot);
}
static void s_closing(void *arg, rn_core_shard_t *sh) {
  sub_t *s = arg;
  s->closing++;
  int *slot = rn_core_shard_slot(sh, RN_SUB_TIER);
  assert_non_null(slot);
  assert_int_equal(*slot, (int)rn_core_shard_index(sh));
  free(slot);
  rn_core_shard_set_slot(sh, RN_SUB_TIER, NULL);
}

static void test_subsystem_slots_and_events(void **state) {
  ct_t *t = *state;
  assert_int_equal(ct_create(t, "before", 2), 0);
  sub_t s = {.core = t->core};
  rn_core_listener_t l = {.stream_created = s_created,
                          .stream_deleting = s_deleting,
                          .shard_opened = s_opened,
                          .shard_closing = s_closing,
                          .arg = &s};
  rn_core_listen(t->core, RN_SUB_TIER, &l);
  assert_int_equal(s.created, 1); /* replayed for the existing stream */
  assert_int_equal(s.opened, 2);
  assert_int_equal(ct_create(t, "after", 3), 0);
  assert_int_equal(s.created, 2);
  assert_int_equal(s.opened, 5);

  rn_core_stream_t *st = rn_core_stream_find(t->core, "after");
  assert_non_null(st);
  assert_int_equal(rn_core_stream_nshards(st), 3);
  rn_core_shard_t *sh = rn_core_stream_shard(st, 2);
  assert_non_null(sh);
  assert_ptr_equal(rn_core_shard_stream(sh), st);
  assert_null(rn_core_stream_shard(st, 3));
  assert_null(rn_core_shard_slot(sh, RN_SUB_GROUPS)); /* slots are per subsystem */
  assert_int_equal(ct_produce(t, "after", 2, 3, 1000, NULL), 0);
  assert_int_equal(rn_core_shard_end_offset(sh), 3);
  assert_int_equal(rn_core_shard_start_offset(sh), 0);

  assert_int_equal(ct_delete(t, "after"), 0);
  assert_int_equal(s.deleting, 1);
  while (!rn_core_idle(t->core)) uv_run(&t->loop, UV_RUN_ONCE);
  assert_int_equal(s.closing, 3);
  ct_close(t); /* "before"'s shards close too */
  assert_int_equal(s.closing, 5);
}

typedef struct offat {
  bool done;
  rn_err_t err;
  uint64_t offset;
} offat_t;

static void on_offset_at(void *ctx, rn_err_t err, uint64_t offset) {
  offat_t *o = ctx;
  o->done = true;
  o->err = err;
  o->offset = offset;
}

static void test_shard_offset_at(void **state) {
  ct_t *t = *state;
  assert_int_equal(ct_create(t, "s", 1), 0);
  assert_int_equal(ct_produce(t, "s", 0, 3, 1000, NULL), 0);
  assert_int_equal(ct_produce(t, "s", 0, 3, 5000, NULL), 0);
  rn_core_shard_t *sh = rn_core_stream_shard(rn_core_stream_find(t->core, "s"), 0);
  offat_t o = {0};
  rn_core_shard_offset_at(t->core, sh, 5001, on_offset_at, &o);
  ct_run_until(t, &o.done);
  assert_int_equal(o.err, 0);
  assert_int_equal(o.offset, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_create_describe, setup, teardown),
      cmocka_unit_test_setup_teardown(test_produce_fetch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_long_poll_woken_by_append, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_offsets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_while_fetch_parked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_subsystem_slots_and_events, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shard_offset_at, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
