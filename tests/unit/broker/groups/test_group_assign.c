/*
 * test_group_assign.c — the pure consumer-group assignment
 * (broker/groups/group_assign.c): balance by count, stickiness, weights, and the
 * resharding rule (a child only after its parents are finished).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "group_assign.h"

#define MAXS 64
#define MAXM 16

typedef struct run {
  rn_ga_shard_t s[MAXS];
  int32_t target[MAXS];
  double scratch[2 * MAXM];
  size_t n, m;
} run_t;

static void init(run_t *r, size_t n, size_t m) {
  memset(r, 0, sizeof(*r));
  r->n = n;
  r->m = m;
  for (size_t i = 0; i < n; i++) r->s[i].prefer = -1;
}

static void assign(run_t *r) { rn_group_assign(r->s, r->n, r->m, r->target, r->scratch); }

static void counts(const run_t *r, size_t *c) {
  memset(c, 0, MAXM * sizeof(*c));
  for (size_t i = 0; i < r->n; i++)
    if (r->target[i] >= 0) c[r->target[i]]++;
}

static void assert_balanced(const run_t *r, size_t eligible) {
  size_t c[MAXM], total = 0, lo = SIZE_MAX, hi = 0;
  counts(r, c);
  for (size_t k = 0; k < r->m; k++) {
    total += c[k];
    if (c[k] < lo) lo = c[k];
    if (c[k] > hi) hi = c[k];
  }
  assert_int_equal(total, eligible);
  assert_true(hi - lo <= 1);
}

static void test_balanced_by_count(void **state) {
  (void)state;
  run_t r;
  for (size_t n = 1; n <= 20; n++)
    for (size_t m = 1; m <= 6; m++) {
      init(&r, n, m);
      assign(&r);
      assert_balanced(&r, n);
    }
  init(&r, 8, 3); /* the example: 3/3/2 */
  assign(&r);
  size_t c[MAXM];
  counts(&r, c);
  assert_int_equal(c[0] + c[1] + c[2], 8);
  assert_true(c[0] >= 2 && c[0] <= 3 && c[1] >= 2 && c[1] <= 3 && c[2] >= 2 && c[2] <= 3);
}

static void test_no_members_or_shards(void **state) {
  (void)state;
  run_t r;
  init(&r, 4, 0);
  assign(&r);
  for (size_t i = 0; i < 4; i++) assert_int_equal(r.target[i], -1);
  init(&r, 0, 3);
  assign(&r); /* nothing to do, no crash */
  init(&r, 2, 5); /* more members than shards: two members get one, the rest none */
  assign(&r);
  assert_balanced(&r, 2);
}

static void test_sticky_when_a_member_joins(void **state) {
  (void)state;
  run_t r;
  init(&r, 8, 2);
  assign(&r);
  int32_t before[8];
  memcpy(before, r.target, sizeof(before));
  /* A third member joins (position 2): members keep what they can. */
  init(&r, 8, 3);
  for (size_t i = 0; i < 8; i++) r.s[i].prefer = before[i];
  assign(&r);
  assert_balanced(&r, 8);
  size_t moved = 0;
  for (size_t i = 0; i < 8; i++)
    if (r.target[i] != before[i]) {
      moved++;
      assert_int_equal(r.target[i], 2); /* only to the newcomer */
    }
  assert_true(moved == 2 || moved == 3);
}

static void test_sticky_when_a_member_leaves(void **state) {
  (void)state;
  run_t r;
  init(&r, 9, 3);
  assign(&r);
  int32_t before[9];
  memcpy(before, r.target, sizeof(before));
  /* Member 1 leaves; member 2 becomes position 1. */
  init(&r, 9, 2);
  for (size_t i = 0; i < 9; i++) r.s[i].prefer = before[i] == 0 ? 0 : before[i] == 2 ? 1 : -1;
  assign(&r);
  assert_balanced(&r, 9);
  for (size_t i = 0; i < 9; i++) {
    if (before[i] == 0) assert_int_equal(r.target[i], 0);
    if (before[i] == 2) assert_int_equal(r.target[i], 1);
  }
}

static void test_prefer_beyond_quota_is_capped(void **state) {
  (void)state;
  run_t r;
  init(&r, 6, 3);
  for (size_t i = 0; i < 6; i++) r.s[i].prefer = 0; /* one member held everything */
  assign(&r);
  assert_balanced(&r, 6);
  size_t c[MAXM];
  counts(&r, c);
  assert_int_equal(c[0], 2);
}

static void test_weights_spread_heavy_shards(void **state) {
  (void)state;
  run_t r;
  init(&r, 4, 2);
  r.s[0].weight = 100;
  r.s[1].weight = 90;
  r.s[2].weight = 1;
  r.s[3].weight = 1;
  assign(&r);
  assert_balanced(&r, 4);
  assert_int_not_equal(r.target[0], r.target[1]); /* the two heavy ones apart */
}

static void test_children_wait_for_parents(void **state) {
  (void)state;
  run_t r;
  /* Shard 0 split into 1 and 2 (0 closed but not read to its end yet). */
  init(&r, 3, 2);
  r.s[1].parents[0] = 0;
  r.s[1].nparents = 1;
  r.s[2].parents[0] = 0;
  r.s[2].nparents = 1;
  assign(&r);
  assert_true(r.target[0] >= 0);
  assert_int_equal(r.target[1], -1);
  assert_int_equal(r.target[2], -1);
  /* The parent is checkpointed at its end: the children are handed out,
   * the parent is not. */
  r.s[0].finished = true;
  assign(&r);
  assert_int_equal(r.target[0], -1);
  assert_true(r.target[1] >= 0 && r.target[2] >= 0);
  assert_int_not_equal(r.target[1], r.target[2]);
  /* Merge: 3 has parents 1 and 2; only when both are finished. */
  init(&r, 4, 1);
  r.s[3].parents[0] = 1;
  r.s[3].parents[1] = 2;
  r.s[3].nparents = 2;
  r.s[0].finished = true;
  r.s[1].finished = true;
  assign(&r);
  assert_int_equal(r.target[3], -1);
  assert_int_equal(r.target[2], 0);
  r.s[2].finished = true;
  assign(&r);
  assert_int_equal(r.target[3], 0);
}

static void test_deterministic(void **state) {
  (void)state;
  run_t a, b;
  init(&a, 16, 4);
  init(&b, 16, 4);
  for (size_t i = 0; i < 16; i++) a.s[i].weight = b.s[i].weight = (double)((i * 7) % 5);
  assign(&a);
  assign(&b);
  assert_memory_equal(a.target, b.target, 16 * sizeof(int32_t));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_balanced_by_count),
      cmocka_unit_test(test_no_members_or_shards),
      cmocka_unit_test(test_sticky_when_a_member_joins),
      cmocka_unit_test(test_sticky_when_a_member_leaves),
      cmocka_unit_test(test_prefer_beyond_quota_is_capped),
      cmocka_unit_test(test_weights_spread_heavy_shards),
      cmocka_unit_test(test_children_wait_for_parents),
      cmocka_unit_test(test_deterministic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
