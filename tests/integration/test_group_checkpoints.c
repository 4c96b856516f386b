/*
 * test_group_checkpoints.c — group checkpoints against the real runneld,
 * driven through `runnelctl consume STREAM --group G` (without --follow:
 * it leaves and exits once its shards are drained):
 *
 *   - two groups on one stream progress independently: each has its own
 *     checkpoints and lag, and each later run of a group delivers exactly
 *     what that group has not consumed yet;
 *   - a broker restart keeps the checkpoints: describe shows the same
 *     checkpoints and lag before and after, and a new member continues from
 *     them (no committed record is delivered again).
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

#define STREAM "events"

/* Run `runnelctl --json consume STREAM --group group [extra...]` to the end
 * (exit 0) and append what it printed to seen. */
static void consume_group(rn_gt_t *g, const char *group, const char *a1, const char *a2, const char *a3,
                          const char *a4, rn_gt_seen_list_t *seen) {
  char *out, *err;
  int rc = rn_gt_ctl(g, &out, &err, "--json", "consume", STREAM, "--group", group, a1, a2, a3, a4, NULL);
  if (rc != 0) print_message("runnelctl consume --group %s exited %d:\n%s\n", group, rc, err);
  assert_int_equal(rc, 0);
  rn_gt_parse_records(out, seen);
  free(out);
  free(err);
}

/* Index of the produced record at (shard, offset), or -1. */
static long produced_at(const rn_gt_produced_t *p, uint32_t shard, uint64_t offset) {
  for (size_t i = 0; i < p->n; i++)
    if (p->shard[i] == shard && p->offset[i] == offset) return (long)i;
  return -1;
}

/* Every record of seen was produced (same data) and appears once. Returns
 * a flag per produced record: delivered. */
static bool *check_once(const rn_gt_produced_t *p, const rn_gt_seen_list_t *seen) {
  bool *got = calloc(p->n ? p->n : 1, sizeof(bool));
  assert_non_null(got);
  for (size_t k = 0; k < seen->n; k++) {
    long i = produced_at(p, seen->v[k].shard, seen->v[k].offset);
    if (i < 0) fail_msg("delivered an unknown record: shard %u offset %" PRIu64, seen->v[k].shard, seen->v[k].offset);
    assert_string_equal(seen->v[k].data, p->value[i]);
    if (got[i]) fail_msg("record %s delivered twice", p->value[i]);
    got[i] = true;
  }
  return got;
}

/* Append copies of src's records to dst. */
static void append_seen(rn_gt_seen_list_t *dst, const rn_gt_seen_list_t *src) {
  dst->v = realloc(dst->v, (dst->n + src->n + 1) * sizeof(*dst->v));
  assert_non_null(dst->v);
  for (size_t k = 0; k < src->n; k++) {
    const rn_gt_seen_t *v = &src->v[k];
    dst->v[dst->n++] = (rn_gt_seen_t){.shard = v->shard, .offset = v->offset, .data = strdup(v->data)};
  }
  dst->cap = dst->n + 1;
}

/* Per shard: lag_records = end_offset - checkpoint. */
static void assert_lag_consistent(const rn_group_desc_t *d) {
  for (size_t s = 0; s < d->shard_count; s++) {
    const rn_group_shard_info_t *si = &d->shards[s];
    assert_true(si->has_checkpoint);
    assert_true(si->checkpoint <= si->end_offset);
    assert_int_equal(si->lag_records, si->end_offset - si->checkpoint);
  }
}

static void test_two_groups_progress_independently(void **state) {
  rn_gt_t *g = *state;
  rn_gt_create_stream(g, STREAM, 4);
  rn_gt_produced_t p = {0};
  rn_gt_produce(g, STREAM, "a", 100, &p);

  rn_gt_seen_list_t a1 = {0}, b1 = {0};
  consume_group(g, "A", "--from", "earliest", NULL, NULL, &a1);
  consume_group(g, "B", "--from", "earliest", "--max", "30", &b1);
  assert_int_equal(a1.n, 100);
  assert_int_equal(b1.n, 30);
  free(check_once(&p, &a1));
  free(check_once(&p, &b1));

  rn_group_desc_t *da = rn_gt_describe(g, STREAM, "A"), *db = rn_gt_describe(g, STREAM, "B");
  assert_int_equal(da->member_count, 0);
  assert_int_equal(db->member_count, 0);
  assert_int_equal(rn_gt_total_lag(da), 0);
  assert_int_equal(rn_gt_total_lag(db), 70);
  assert_lag_consistent(da);
  assert_lag_consistent(db);
  for (size_t s = 0; s < da->shard_count; s++) assert_int_equal(da->shards[s].checkpoint, da->shards[s].end_offset);
  rn_group_desc_free(da);
  rn_group_desc_free(db);

  /* More records: both lag by them; each group goes on from its own
   * checkpoints. */
  rn_gt_produce(g, STREAM, "b", 50, &p);
  da = rn_gt_describe(g, STREAM, "A");
  db = rn_gt_describe(g, STREAM, "B");
  assert_int_equal(rn_gt_total_lag(da), 50);
  assert_int_equal(rn_gt_total_lag(db), 120);
  rn_group_desc_free(da);
  rn_group_desc_free(db);

  rn_gt_seen_list_t a2 = {0}, b2 = {0};
  consume_group(g, "A", NULL, NULL, NULL, NULL, &a2);
  assert_int_equal(a2.n, 50);
  for (size_t k = 0; k < a2.n; k++) assert_true(strncmp(a2.v[k].data, "b-", 2) == 0);
  consume_group(g, "B", NULL, NULL, NULL, NULL, &b2);
  assert_int_equal(b2.n, 120);

  /* Over both runs each group got every record exactly once. */
  append_seen(&a1, &a2);
  append_seen(&b1, &b2);
  bool *ga = check_once(&p, &a1), *gb = check_once(&p, &b1);
  for (size_t i = 0; i < p.n; i++) {
    assert_true(ga[i]);
    assert_true(gb[i]);
  }
  free(ga);
  free(gb);

  da = rn_gt_describe(g, STREAM, "A");
  db = rn_gt_describe(g, STREAM, "B");
  assert_int_equal(rn_gt_total_lag(da), 0);
  assert_int_equal(rn_gt_total_lag(db), 0);
  rn_group_desc_free(da);
  rn_group_desc_free(db);

  /* runnelctl group list shows both. */
  char *out, *err;
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "list", STREAM, NULL), 0);
  assert_non_null(strstr(out, "A"));
  assert_non_null(strstr(out, "B"));
  free(out);
  free(err);

  rn_gt_seen_free(&a1);
  rn_gt_seen_free(&b1);
  rn_gt_seen_free(&a2);
  rn_gt_seen_free(&b2);
  rn_gt_produced_free(&p);
}

static void test_restart_keeps_checkpoints(void **state) {
  rn_gt_t *g = *state;
  rn_gt_create_stream(g, STREAM, 4);
  rn_gt_produced_t p = {0};
  rn_gt_produce(g, STREAM, "r", 100, &p);

  rn_gt_seen_list_t first = {0};
  consume_group(g, "G", "--from", "earliest", "--max", "40", &first);
  assert_int_equal(first.n, 40);

  rn_group_desc_t *before = rn_gt_describe(g, STREAM, "G");
  assert_int_equal(rn_gt_total_lag(before), 60);
  assert_lag_consistent(before);

  rn_gt_restart(g);

  rn_group_desc_t *after = rn_gt_describe(g, STREAM, "G");
  assert_int_equal(after->member_count, 0);
  assert_int_equal(after->shard_count, before->shard_count);
  for (size_t s = 0; s < before->shard_count; s++) {
    assert_int_equal(after->shards[s].shard, before->shards[s].shard);
    assert_int_equal(after->shards[s].has_checkpoint, before->shards[s].has_checkpoint);
    assert_int_equal(after->shards[s].checkpoint, before->shards[s].checkpoint);
    assert_int_equal(after->shards[s].end_offset, before->shards[s].end_offset);
    assert_int_equal(after->shards[s].lag_records, before->shards[s].lag_records);
  }
  rn_group_desc_free(after);

  /* A new member continues from the checkpoints: exactly the 60 records
   * not yet consumed, none of the 40 committed ones again. */
  rn_gt_seen_list_t second = {0};
  consume_group(g, "G", NULL, NULL, NULL, NULL, &second);
  assert_int_equal(second.n, 60);
  for (size_t k = 0; k < second.n; k++) {
    const rn_gt_seen_t *v = &second.v[k];
    const rn_group_shard_info_t *si = NULL;
    for (size_t s = 0; s < before->shard_count; s++)
      if (before->shards[s].shard == v->shard) si = &before->shards[s];
    assert_non_null(si);
    if (v->offset < si->checkpoint)
      fail_msg("record at shard %u offset %" PRIu64 " delivered again after restart (checkpoint %" PRIu64 ")",
               v->shard, v->offset, si->checkpoint);
    assert_int_equal(rn_gt_seen_count(&first, v->shard, v->offset), 0);
  }
  append_seen(&first, &second);
  bool *got = check_once(&p, &first);
  for (size_t i = 0; i < p.n; i++) assert_true(got[i]);
  free(got);

  after = rn_gt_describe(g, STREAM, "G");
  assert_int_equal(rn_gt_total_lag(after), 0);
  rn_group_desc_free(after);
  rn_group_desc_free(before);
  rn_gt_seen_free(&first);
  rn_gt_seen_free(&second);
  rn_gt_produced_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_two_groups_progress_independently, rn_gt_setup, rn_gt_teardown),
      cmocka_unit_test_setup_teardown(test_restart_keeps_checkpoints, rn_gt_setup, rn_gt_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
