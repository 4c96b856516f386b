/*
 * test_plan.c — the cluster's pure decisions (broker/cluster/plan.h):
 * placement (1..7 brokers, replication 1..5, racks, draining, too few
 * brokers, rotation across streams, balance bounds at every prefix up to
 * 1024 shards), replacement for decommission, election scenarios, ISR
 * shrink and expand, the high watermark, the epoch check of a write, the
 * preferred-leader rebalance, and two seeded properties: election never
 * leaves the ISR, and a simulated shard under random crashes, lost tails,
 * lag and elections never loses an acknowledged record.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "testutil.h"

#define MAXB 16

static bool in_u32(const uint32_t *a, size_t n, uint32_t x) {
  for (size_t i = 0; i < n; i++)
    if (a[i] == x) return true;
  return false;
}

static rn_cl_member_t mem(uint32_t id, const char *rack, bool draining) {
  rn_cl_member_t m = {id, rack, draining};
  return m;
}

static void members_plain(rn_cl_member_t *m, size_t n) {
  for (size_t i = 0; i < n; i++) m[i] = mem((uint32_t)(i + 1), NULL, false);
}

static size_t index_of(const rn_cl_member_t *m, size_t n, uint32_t id) {
  for (size_t i = 0; i < n; i++)
    if (m[i].id == id) return i;
  fail_msg("broker %u was placed but is no member", (unsigned)id);
  return 0;
}

static const char *rack_of(const rn_cl_member_t *m, size_t n, uint32_t id) {
  const char *r = m[index_of(m, n, id)].rack;
  return r ? r : "";
}

static size_t racks_of_members(const rn_cl_member_t *m, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (m[i].draining) continue;
    bool seen = false;
    for (size_t j = 0; j < i; j++)
      if (!m[j].draining && strcmp(m[j].rack ? m[j].rack : "", m[i].rack ? m[i].rack : "") == 0) seen = true;
    if (!seen) k++;
  }
  return k;
}

/* Checks every shard of a placement: distinct, eligible ids, as many racks
 * as possible. When bound >= 0, also leader and replica counts within
 * `bound` of each other at every prefix. */
static void check_placement(const rn_cl_member_t *m, size_t n, const uint32_t *out, uint32_t nshards, uint32_t rf,
                            int bound) {
  uint32_t lead[MAXB] = {0}, rep[MAXB] = {0};
  size_t nracks = racks_of_members(m, n);
  size_t want_racks = rf < nracks ? rf : nracks;
  for (uint32_t s = 0; s < nshards; s++) {
    const uint32_t *r = out + (size_t)s * rf;
    size_t distinct_racks = 0;
    for (uint32_t j = 0; j < rf; j++) {
      size_t mi = index_of(m, n, r[j]);
      if (m[mi].draining) fail_msg("shard %u: draining broker %u got a replica", (unsigned)s, (unsigned)r[j]);
      bool new_rack = true;
      for (uint32_t k = 0; k < j; k++) {
        if (r[k] == r[j]) fail_msg("shard %u: broker %u twice", (unsigned)s, (unsigned)r[j]);
        if (strcmp(rack_of(m, n, r[k]), rack_of(m, n, r[j])) == 0) new_rack = false;
      }
      distinct_racks += new_rack;
      rep[mi]++;
    }
    lead[index_of(m, n, r[0])]++;
    if (distinct_racks != want_racks)
      fail_msg("shard %u spans %zu racks, %zu possible", (unsigned)s, distinct_racks, want_racks);
    if (bound < 0) continue;
    uint32_t lmin = UINT32_MAX, lmax = 0, rmin = UINT32_MAX, rmax = 0;
    for (size_t i = 0; i < n; i++) {
      if (m[i].draining) continue;
      lmin = lead[i] < lmin ? lead[i] : lmin;
      lmax = lead[i] > lmax ? lead[i] : lmax;
      rmin = rep[i] < rmin ? rep[i] : rmin;
      rmax = rep[i] > rmax ? rep[i] : rmax;
    }
    if (lmax - lmin > (uint32_t)bound || rmax - rmin > (uint32_t)bound)
      fail_msg("%zu brokers, replication %u, after %u shards: leaders %u..%u, replicas %u..%u", n, (unsigned)rf,
               (unsigned)s + 1, (unsigned)lmin, (unsigned)lmax, (unsigned)rmin, (unsigned)rmax);
  }
}

/* ---- placement ------------------------------------------------------------- */

static void test_place_bounds(void **state) {
  (void)state;
  static uint32_t out[1024 * RN_CL_MAX_REPLICAS];
  rn_cl_member_t m[MAXB];
  for (size_t n = 1; n <= 7; n++) {
    members_plain(m, n);
    for (uint32_t rf = 1; rf <= RN_CL_MAX_REPLICAS && rf <= n; rf++) {
      const uint32_t starts[] = {0, 1, 2, 3, 4, 5, 6, UINT32_MAX - 1};
      for (size_t si = 0; si < sizeof starts / sizeof starts[0]; si++) {
        char why[RN_CL_WHY_MAX] = "";
        assert_int_equal(rn_cl_place(m, n, 1024, rf, starts[si], out, why, sizeof why), 0);
        /* every prefix: 64, 256 and 1024 shards included */
        check_placement(m, n, out, 1024, rf, 1);
      }
    }
  }
}

static void test_place_balance_totals(void **state) {
  (void)state;
  static uint32_t out[1024 * RN_CL_MAX_REPLICAS];
  rn_cl_member_t m[MAXB];
  const uint32_t sizes[] = {64, 256, 1024};
  members_plain(m, 6);
  for (size_t k = 0; k < 3; k++) {
    assert_int_equal(rn_cl_place(m, 6, sizes[k], 3, 0, out, NULL, 0), 0);
    uint32_t lead[6] = {0}, rep[6] = {0};
    for (uint32_t s = 0; s < sizes[k]; s++) {
      lead[out[s * 3] - 1]++;
      for (int j = 0; j < 3; j++) rep[out[s * 3 + j] - 1]++;
    }
    for (int b = 0; b < 6; b++) {
      /* ceil/floor of shards/6 and 3*shards/6 */
      assert_true(lead[b] == sizes[k] / 6 || lead[b] == sizes[k] / 6 + 1);
      assert_true(rep[b] == sizes[k] / 2);
    }
  }
}

static void test_place_deterministic(void **state) {
  (void)state;
  uint32_t a[256 * 3], b[256 * 3], c[64 * 3];
  rn_cl_member_t m[7] = {mem(11, "x", false), mem(3, "y", false), mem(7, "x", false), mem(20, "z", false),
                         mem(5, "y", false),  mem(9, "z", false), mem(1, NULL, true)};
  assert_int_equal(rn_cl_place(m, 7, 256, 3, 5, a, NULL, 0), 0);
  /* the same set in other orders */
  uint64_t seed = 42;
  for (int round = 0; round < 20; round++) {
    for (size_t i = 6; i > 0; i--) {
      size_t j = (size_t)rn_test_rand_below(&seed, i + 1);
      rn_cl_member_t t = m[i];
      m[i] = m[j];
      m[j] = t;
    }
    assert_int_equal(rn_cl_place(m, 7, 256, 3, 5, b, NULL, 0), 0);
    assert_memory_equal(a, b, sizeof a);
  }
  /* a prefix is the placement of fewer shards */
  assert_int_equal(rn_cl_place(m, 7, 64, 3, 5, c, NULL, 0), 0);
  assert_memory_equal(a, c, sizeof c);
  check_placement(m, 7, a, 256, 3, 1);
}

static void test_place_racks(void **state) {
  (void)state;
  static uint32_t out[1024 * RN_CL_MAX_REPLICAS];
  /* 3 racks x 2 brokers: every shard of replication 3 spans 3 racks, and
   * equal racks keep the balance */
  rn_cl_member_t m6[6] = {mem(1, "a", false), mem(2, "a", false), mem(3, "b", false),
                          mem(4, "b", false), mem(5, "c", false), mem(6, "c", false)};
  for (uint32_t rf = 1; rf <= 5; rf++)
    for (uint32_t start = 0; start < 6; start++) {
      assert_int_equal(rn_cl_place(m6, 6, 1024, rf, start, out, NULL, 0), 0);
      check_placement(m6, 6, out, 1024, rf, 1);
    }
  assert_int_equal(rn_cl_place(m6, 6, 64, 3, 0, out, NULL, 0), 0);
  for (int s = 0; s < 64; s++) {
    const char *r0 = rack_of(m6, 6, out[s * 3]), *r1 = rack_of(m6, 6, out[s * 3 + 1]),
               *r2 = rack_of(m6, 6, out[s * 3 + 2]);
    assert_true(strcmp(r0, r1) && strcmp(r0, r2) && strcmp(r1, r2));
  }
  /* 3 racks x 3 */
  rn_cl_member_t m9[9];
  static const char *const abc[] = {"a", "b", "c"};
  for (int i = 0; i < 9; i++) m9[i] = mem((uint32_t)(i + 1), abc[i % 3], false);
  for (uint32_t rf = 1; rf <= 5; rf++) {
    assert_int_equal(rn_cl_place(m9, 9, 1024, rf, 2, out, NULL, 0), 0);
    check_placement(m9, 9, out, 1024, rf, 1);
  }
  /* unequal racks: the rack rule wins over balance; brokers without a rack
   * share one unknown rack */
  rn_cl_member_t u1[4] = {mem(1, "a", false), mem(2, "a", false), mem(3, "a", false), mem(4, "b", false)};
  rn_cl_member_t u2[5] = {mem(1, "a", false), mem(2, "a", false), mem(3, "b", false), mem(4, "b", false),
                          mem(5, "c", false)};
  rn_cl_member_t u3[5] = {mem(1, "a", false), mem(2, NULL, false), mem(3, "b", false), mem(4, "", false),
                          mem(5, "c", false)};
  for (uint32_t rf = 1; rf <= 4; rf++) {
    assert_int_equal(rn_cl_place(u1, 4, 256, rf, 1, out, NULL, 0), 0);
    check_placement(u1, 4, out, 256, rf, -1);
  }
  for (uint32_t rf = 1; rf <= 5; rf++) {
    assert_int_equal(rn_cl_place(u2, 5, 256, rf, 3, out, NULL, 0), 0);
    check_placement(u2, 5, out, 256, rf, -1);
    assert_int_equal(rn_cl_place(u3, 5, 256, rf, 3, out, NULL, 0), 0);
    check_placement(u3, 5, out, 256, rf, -1);
  }
  /* replication 2 over a 3+1 split: broker 4 (alone in rack b) is in every shard */
  assert_int_equal(rn_cl_place(u1, 4, 12, 2, 0, out, NULL, 0), 0);
  for (int s = 0; s < 12; s++) assert_true(out[s * 2] == 4 || out[s * 2 + 1] == 4);
  /* leaders still spread: 12 shards, 3 each */
  uint32_t lead[5] = {0};
  for (int s = 0; s < 12; s++) lead[out[s * 2]]++;
  for (int b = 1; b <= 4; b++) assert_int_equal(lead[b], 3);
}

static void test_place_draining(void **state) {
  (void)state;
  static uint32_t out[256 * 3];
  rn_cl_member_t m[5] = {mem(1, NULL, false), mem(2, NULL, true), mem(3, NULL, false), mem(4, NULL, false),
                         mem(5, NULL, true)};
  assert_int_equal(rn_cl_place(m, 5, 256, 3, 0, out, NULL, 0), 0);
  check_placement(m, 5, out, 256, 3, 1);
  for (int i = 0; i < 256 * 3; i++) assert_true(out[i] == 1 || out[i] == 3 || out[i] == 4);
  char why[RN_CL_WHY_MAX];
  m[0].draining = true;
  assert_int_equal(rn_cl_place(m, 5, 4, 3, 0, out, why, sizeof why), RN_ENOTENOUGHREPLICAS);
  assert_string_equal(why, "replication 3 needs 3 brokers, 2 are alive and not draining (3 more drain)");
  m[4].draining = false;
  m[1].draining = false;
  assert_int_equal(rn_cl_place(m, 5, 4, 5, 0, out, why, sizeof why), RN_ENOTENOUGHREPLICAS);
  assert_string_equal(why, "replication 5 needs 5 brokers, 4 are alive and not draining (1 more drains)");
}

static void test_place_too_few_and_invalid(void **state) {
  (void)state;
  uint32_t out[64];
  char why[RN_CL_WHY_MAX];
  rn_cl_member_t m[3];
  members_plain(m, 3);
  assert_int_equal(rn_cl_place(m, 2, 4, 3, 0, out, why, sizeof why), RN_ENOTENOUGHREPLICAS);
  assert_string_equal(why, "replication 3 needs 3 brokers, 2 are alive");
  assert_int_equal(rn_cl_place(m, 1, 4, 2, 0, out, why, sizeof why), RN_ENOTENOUGHREPLICAS);
  assert_string_equal(why, "replication 2 needs 2 brokers, 1 is alive");
  assert_int_equal(rn_cl_place(NULL, 0, 4, 1, 0, out, why, sizeof why), RN_ENOTENOUGHREPLICAS);
  assert_string_equal(why, "replication 1 needs 1 broker, 0 are alive");
  assert_int_equal(rn_cl_place(m, 3, 4, 0, 0, out, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "placement: replication 0 is outside 1..5");
  assert_int_equal(rn_cl_place(m, 3, 4, 6, 0, out, why, sizeof why), RN_EINVAL);
  assert_int_equal(rn_cl_place(m, 3, 0, 1, 0, out, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "placement: no shards to place");
  assert_int_equal(rn_cl_place(m, 3, 4, 1, 0, NULL, why, sizeof why), RN_EINVAL);
  m[2].id = 1;
  assert_int_equal(rn_cl_place(m, 3, 4, 1, 0, out, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "placement: broker 1 is listed twice");
  m[2].id = 0;
  assert_int_equal(rn_cl_place(m, 3, 4, 1, 0, out, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "placement: broker id 0 (ids are >= 1)");
  /* NULL why with whylen 0 is fine */
  assert_int_equal(rn_cl_place(m, 3, 4, 1, 0, out, NULL, 0), RN_EINVAL);
}

static void test_place_rotation(void **state) {
  (void)state;
  rn_cl_member_t m[5];
  members_plain(m, 5);
  uint32_t out[3];
  /* streams of one shard each, start = the stream's number: every broker
   * leads once per 5 streams, and replicas spread too */
  uint32_t lead[6] = {0}, rep[6] = {0};
  for (uint32_t stream = 0; stream < 50; stream++) {
    assert_int_equal(rn_cl_place(m, 5, 1, 3, stream, out, NULL, 0), 0);
    lead[out[0]]++;
    for (int j = 0; j < 3; j++) rep[out[j]]++;
  }
  for (int b = 1; b <= 5; b++) {
    assert_int_equal(lead[b], 10);
    assert_int_equal(rep[b], 30);
  }
  /* different starts give different first leaders */
  uint32_t first[5];
  for (uint32_t s = 0; s < 5; s++) {
    assert_int_equal(rn_cl_place(m, 5, 1, 1, s, out, NULL, 0), 0);
    first[s] = out[0];
    for (uint32_t t = 0; t < s; t++) assert_int_not_equal(first[t], first[s]);
  }
}

/* ---- reassignment --------------------------------------------------------- */

static void test_reassign(void **state) {
  (void)state;
  char why[RN_CL_WHY_MAX];
  uint32_t next[RN_CL_MAX_REPLICAS], rep = 0;
  rn_cl_member_t m[6] = {mem(1, "a", false), mem(2, "a", false), mem(3, "b", true),
                         mem(4, "b", false), mem(5, "c", false), mem(6, "c", false)};
  uint32_t loads[6] = {9, 1, 0, 7, 5, 2};
  /* shard on 1(a), 3(b, draining), 5(c): away 3 -> a rack-b broker (4) though loaded */
  const uint32_t r1[3] = {1, 3, 5};
  assert_int_equal(rn_cl_reassign(m, 6, loads, r1, 3, 3, next, &rep, why, sizeof why), 0);
  assert_int_equal(rep, 4);
  assert_int_equal(next[0], 1);
  assert_int_equal(next[1], 4);
  assert_int_equal(next[2], 5);
  assert_int_equal(next[3], 0);
  /* away = the preferred leader: replaced in place */
  const uint32_t r2[3] = {3, 1, 5};
  assert_int_equal(rn_cl_reassign(m, 6, loads, r2, 3, 3, next, &rep, why, sizeof why), 0);
  assert_int_equal(next[0], 4);
  /* no racks: the least loaded, then the lowest id */
  rn_cl_member_t p[5];
  members_plain(p, 5);
  uint32_t pl[5] = {3, 3, 3, 1, 1};
  const uint32_t r3[2] = {1, 2};
  assert_int_equal(rn_cl_reassign(p, 5, pl, r3, 2, 1, next, &rep, why, sizeof why), 0);
  assert_int_equal(rep, 4);
  assert_int_equal(next[0], 4);
  assert_int_equal(next[1], 2);
  assert_int_equal(rn_cl_reassign(p, 5, NULL, r3, 2, 2, next, &rep, why, sizeof why), 0);
  assert_int_equal(rep, 3);
  /* 1 (rack a) leaves 4 (b) and 5 (c): 2 brings rack a back; 6 would double rack c */
  const uint32_t r4[3] = {1, 4, 5};
  assert_int_equal(rn_cl_reassign(m, 6, loads, r4, 3, 1, next, &rep, why, sizeof why), 0);
  assert_int_equal(rep, 2);
  loads[1] = 50; /* even much more loaded, rack a wins */
  assert_int_equal(rn_cl_reassign(m, 6, loads, r4, 3, 1, next, &rep, why, sizeof why), 0);
  assert_int_equal(rep, 2);
  loads[1] = 1;
  /* a dead staying replica (not a member) has no known rack */
  const uint32_t r5[2] = {9, 1};
  assert_int_equal(rn_cl_reassign(m, 6, loads, r5, 2, 1, next, &rep, why, sizeof why), 0);
  assert_int_equal(rep, 2); /* least loaded of all (1) */
  /* nobody left */
  rn_cl_member_t q[3];
  members_plain(q, 3);
  const uint32_t r6[3] = {1, 2, 3};
  assert_int_equal(rn_cl_reassign(q, 3, NULL, r6, 3, 2, next, &rep, why, sizeof why), RN_ENOTENOUGHREPLICAS);
  assert_string_equal(why, "reassign: no broker can take the replica of 2: every live broker that is not draining "
                           "holds one already");
  q[2].draining = true;
  const uint32_t r7[2] = {1, 2};
  assert_int_equal(rn_cl_reassign(q, 3, NULL, r7, 2, 2, next, &rep, why, sizeof why), RN_ENOTENOUGHREPLICAS);
  /* malformed */
  assert_int_equal(rn_cl_reassign(q, 3, NULL, r7, 2, 3, next, &rep, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "reassign: broker 3 holds no replica of this shard");
  const uint32_t r8[2] = {1, 1};
  assert_int_equal(rn_cl_reassign(q, 3, NULL, r8, 2, 1, next, &rep, why, sizeof why), RN_EINVAL);
  assert_int_equal(rn_cl_reassign(q, 3, NULL, r7, 0, 1, next, &rep, why, sizeof why), RN_EINVAL);
  assert_int_equal(rn_cl_reassign(q, 3, NULL, r7, 2, 1, NULL, &rep, why, sizeof why), RN_EINVAL);
}

/* ---- shard states ---------------------------------------------------------- */

static rn_cl_shard_t shard(const uint32_t *reps, size_t n, uint32_t leader, uint32_t epoch, const uint32_t *isr,
                           size_t nisr, uint32_t min_insync) {
  rn_cl_shard_t s;
  memset(&s, 0, sizeof s);
  memcpy(s.replicas, reps, n * sizeof *reps);
  s.nreplicas = (uint8_t)n;
  memcpy(s.isr, isr, nisr * sizeof *isr);
  s.nisr = (uint8_t)nisr;
  s.leader = leader;
  s.leader_epoch = epoch;
  s.min_insync = min_insync;
  s.controller_epoch = 3;
  char why[RN_CL_WHY_MAX];
  if (rn_cl_shard_check(&s, why, sizeof why) != 0) fail_msg("test state: %s", why);
  return s;
}

#define IDS(...) ((const uint32_t[]){__VA_ARGS__}), (sizeof((const uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t))

static void assert_isr(const rn_cl_shard_t *s, const uint32_t *want, size_t n) {
  if (s->nisr != n) fail_msg("ISR has %u members, want %zu", (unsigned)s->nisr, n);
  for (size_t i = 0; i < n; i++)
    if (s->isr[i] != want[i]) fail_msg("ISR[%zu] = %u, want %u", i, (unsigned)s->isr[i], (unsigned)want[i]);
}

static void test_shard_init_check_equal(void **state) {
  (void)state;
  rn_cl_shard_t s;
  char why[RN_CL_WHY_MAX];
  assert_int_equal(rn_cl_shard_init(&s, IDS(4, 2, 7), 2, 9, why, sizeof why), 0);
  assert_int_equal(s.leader, 4);
  assert_int_equal(s.leader_epoch, 1);
  assert_isr(&s, IDS(4, 2, 7));
  assert_int_equal(s.controller_epoch, 9);
  assert_true(rn_cl_may_ack(&s));
  assert_int_equal(rn_cl_shard_init(&s, IDS(4, 2, 7), 4, 9, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "shard: min_insync 4 is outside 1..3 (the replica count)");
  assert_int_equal(rn_cl_shard_init(&s, IDS(4, 4), 1, 9, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "shard: broker 4 is listed twice in the replicas");
  /* equal: the ISR as a set, unused slots ignored */
  rn_cl_shard_t a = shard(IDS(1, 2, 3), 1, 5, IDS(1, 2, 3), 2), b = a;
  b.isr[0] = 3;
  b.isr[2] = 1;
  b.replicas[4] = 77;
  b.isr[4] = 99;
  assert_true(rn_cl_shard_equal(&a, &b));
  b.leader_epoch++;
  assert_false(rn_cl_shard_equal(&a, &b));
  b = a;
  b.nisr = 2;
  assert_false(rn_cl_shard_equal(&a, &b));
  assert_true(rn_cl_shard_is_replica(&a, 3));
  assert_false(rn_cl_shard_is_replica(&a, 4));
  assert_false(rn_cl_shard_in_isr(&a, 0));
}

/* ---- election -------------------------------------------------------------- */

static void test_elect_leader_dies(void **state) {
  (void)state;
  rn_cl_shard_t cur = shard(IDS(1, 2, 3), 1, 7, IDS(1, 2, 3), 2), next;
  /* 1 dies: 2 (first in replica order in the ISR, alive) leads at epoch 8 */
  assert_int_equal(rn_cl_elect(&cur, IDS(2, 3), NULL, 0, &next), 0);
  assert_int_equal(next.leader, 2);
  assert_int_equal(next.leader_epoch, 8);
  assert_isr(&next, IDS(2, 3));
  assert_int_equal(next.controller_epoch, cur.controller_epoch);
  assert_true(rn_cl_may_ack(&next));
  assert_true(rn_cl_shard_supersedes(&cur, &next));
  /* replica order, not ISR order or id order */
  rn_cl_shard_t c2 = shard(IDS(5, 9, 2), 5, 1, IDS(2, 9, 5), 1);
  assert_int_equal(rn_cl_elect(&c2, IDS(2, 9), NULL, 0, &next), 0);
  assert_int_equal(next.leader, 9);
  assert_isr(&next, IDS(9, 2));
  /* an alive replica outside the ISR is never chosen */
  rn_cl_shard_t c3 = shard(IDS(1, 2, 3), 1, 4, IDS(1, 3), 1);
  assert_int_equal(rn_cl_elect(&c3, IDS(2, 3), NULL, 0, &next), 0);
  assert_int_equal(next.leader, 3);
  assert_isr(&next, IDS(3));
  assert_false(rn_cl_may_ack(&(rn_cl_shard_t){.leader = 3, .nisr = 1, .min_insync = 2}));
  /* the default min in-sync: a majority from 3 replicas up */
  static const uint32_t want_min[] = {1, 1, 1, 2, 3, 3};
  for (uint32_t rf = 0; rf <= 5; rf++) assert_int_equal(rn_cl_default_min_insync(rf), want_min[rf]);
}

static void test_elect_sticky_and_cleanup(void **state) {
  (void)state;
  rn_cl_shard_t cur = shard(IDS(1, 2, 3), 2, 7, IDS(1, 2, 3), 2), next;
  /* the leader (2, not preferred) is alive: it stays, no epoch change */
  assert_int_equal(rn_cl_elect(&cur, IDS(1, 2, 3), NULL, 0, &next), 0);
  assert_true(rn_cl_shard_equal(&cur, &next));
  /* a follower died: it leaves the ISR, the leader and epoch stay */
  assert_int_equal(rn_cl_elect(&cur, IDS(2, 3), NULL, 0, &next), 0);
  assert_int_equal(next.leader, 2);
  assert_int_equal(next.leader_epoch, 7);
  assert_isr(&next, IDS(2, 3));
  /* an ineligible follower leaves the ISR too */
  assert_int_equal(rn_cl_elect(&cur, IDS(1, 2, 3), IDS(3), &next), 0);
  assert_isr(&next, IDS(1, 2));
  /* next may be cur */
  rn_cl_shard_t same = cur;
  assert_int_equal(rn_cl_elect(&same, IDS(2, 3), NULL, 0, &same), 0);
  assert_isr(&same, IDS(2, 3));
}

static void test_elect_ineligible(void **state) {
  (void)state;
  rn_cl_shard_t cur = shard(IDS(1, 2, 3), 1, 7, IDS(1, 2, 3), 2), next;
  /* 1 dies; 2 came back with a lost tail: 3 leads, 2 leaves the ISR */
  assert_int_equal(rn_cl_elect(&cur, IDS(2, 3), IDS(2), &next), 0);
  assert_int_equal(next.leader, 3);
  assert_int_equal(next.leader_epoch, 8);
  assert_isr(&next, IDS(3));
  assert_false(rn_cl_may_ack(&next));
  /* the leader itself is ineligible (alive): it moves */
  assert_int_equal(rn_cl_elect(&cur, IDS(1, 2, 3), IDS(1), &next), 0);
  assert_int_equal(next.leader, 2);
  assert_isr(&next, IDS(2, 3));
  /* the only eligible ones are outside the ISR: offline */
  rn_cl_shard_t c2 = shard(IDS(1, 2, 3), 1, 7, IDS(1, 2), 1);
  assert_int_equal(rn_cl_elect(&c2, IDS(2, 3), IDS(2), &next), RN_ENOTENOUGHREPLICAS);
  assert_int_equal(next.leader, 0);
  assert_int_equal(next.leader_epoch, 7);
  assert_isr(&next, IDS(1, 2));
}

static void test_elect_offline(void **state) {
  (void)state;
  /* ISR of one and its leader dies: offline until it returns */
  rn_cl_shard_t cur = shard(IDS(1, 2, 3), 1, 7, IDS(1), 1), next;
  assert_int_equal(rn_cl_elect(&cur, IDS(2, 3), NULL, 0, &next), RN_ENOTENOUGHREPLICAS);
  assert_int_equal(next.leader, 0);
  assert_int_equal(next.leader_epoch, 7);
  assert_isr(&next, IDS(1));
  assert_false(rn_cl_may_ack(&next));
  assert_true(rn_cl_shard_supersedes(&cur, &next));
  /* still offline: the same again, nothing to write */
  rn_cl_shard_t again;
  assert_int_equal(rn_cl_elect(&next, IDS(2, 3), NULL, 0, &again), RN_ENOTENOUGHREPLICAS);
  assert_true(rn_cl_shard_equal(&next, &again));
  /* 1 returns: it leads at a new epoch */
  assert_int_equal(rn_cl_elect(&next, IDS(1, 2, 3), NULL, 0, &again), 0);
  assert_int_equal(again.leader, 1);
  assert_int_equal(again.leader_epoch, 8);
  assert_isr(&again, IDS(1));
  /* 1 returns with a lost tail: still offline */
  assert_int_equal(rn_cl_elect(&next, IDS(1, 2, 3), IDS(1), &again), RN_ENOTENOUGHREPLICAS);
  assert_int_equal(again.leader, 0);
  /* all dead */
  rn_cl_shard_t c2 = shard(IDS(1, 2, 3), 2, 4, IDS(1, 2, 3), 2);
  assert_int_equal(rn_cl_elect(&c2, NULL, 0, NULL, 0, &next), RN_ENOTENOUGHREPLICAS);
  assert_int_equal(next.leader, 0);
  assert_int_equal(next.leader_epoch, 4);
  assert_isr(&next, IDS(1, 2, 3));
  /* then 3 returns: it had everything (it was in the ISR) */
  assert_int_equal(rn_cl_elect(&next, IDS(3), NULL, 0, &again), 0);
  assert_int_equal(again.leader, 3);
  assert_int_equal(again.leader_epoch, 5);
  assert_isr(&again, IDS(3));
}

static void test_elect_invalid(void **state) {
  (void)state;
  rn_cl_shard_t cur = shard(IDS(1, 2), 1, UINT32_MAX, IDS(1, 2), 1), next;
  memset(&next, 0xab, sizeof next);
  rn_cl_shard_t before = next;
  assert_int_equal(rn_cl_elect(&cur, IDS(2), NULL, 0, &next), RN_EINVAL); /* the epoch cannot grow */
  assert_memory_equal(&next, &before, sizeof next);
  cur.leader_epoch = 3;
  cur.leader = 9; /* not in the ISR */
  assert_int_equal(rn_cl_elect(&cur, IDS(2), NULL, 0, &next), RN_EINVAL);
  assert_int_equal(rn_cl_elect(NULL, IDS(2), NULL, 0, &next), RN_EINVAL);
  cur.leader = 1;
  assert_int_equal(rn_cl_elect(&cur, NULL, 3, NULL, 0, &next), RN_EINVAL);
  assert_int_equal(rn_cl_elect(&cur, IDS(2), NULL, 0, NULL), RN_EINVAL);
}

/* ---- the epoch check of a write -------------------------------------------- */

static void test_supersedes(void **state) {
  (void)state;
  char why[RN_CL_WHY_MAX];
  rn_cl_shard_t cur = shard(IDS(1, 2, 3), 2, 8, IDS(2, 3), 2);
  cur.controller_epoch = 5;
  rn_cl_shard_t n = cur;
  assert_int_equal(rn_cl_shard_transition(&cur, &n, why, sizeof why), 0); /* same epochs */
  assert_true(rn_cl_shard_supersedes(NULL, &n));                           /* a new key */
  /* a stale controller */
  n.controller_epoch = 4;
  assert_int_equal(rn_cl_shard_transition(&cur, &n, why, sizeof why), RN_ESTALEEPOCH);
  assert_string_equal(why, "written by controller epoch 4 over a value of controller epoch 5");
  assert_false(rn_cl_shard_supersedes(&cur, &n));
  /* a deposed leader (epoch 7) writing its ISR */
  rn_cl_shard_t old = shard(IDS(1, 2, 3), 1, 7, IDS(1, 2), 2), shrunk;
  old.controller_epoch = 5;
  assert_int_equal(rn_cl_isr_shrink(&old, (rn_cl_follower_t[]){{2, 0, 0, false}}, 1, 10, 100000, 10, &shrunk), 0);
  assert_int_equal(rn_cl_shard_transition(&cur, &shrunk, why, sizeof why), RN_ESTALEEPOCH);
  assert_string_equal(why, "leader epoch 7 is older than the current 8");
  /* a new leader without a new epoch */
  n = cur;
  n.leader = 3;
  assert_int_equal(rn_cl_shard_transition(&cur, &n, why, sizeof why), RN_ESTALEEPOCH);
  assert_string_equal(why, "leader 3 at leader epoch 8 over leader 2 at the same epoch: a new leader needs a new epoch");
  /* the deposed leader writing over the offline state of its own epoch */
  rn_cl_shard_t off;
  assert_int_equal(rn_cl_elect(&cur, IDS(1), NULL, 0, &off), RN_ENOTENOUGHREPLICAS);
  n = cur;
  assert_false(rn_cl_shard_supersedes(&off, &n));
  /* the controller's election and a newer controller are fine */
  assert_int_equal(rn_cl_elect(&cur, IDS(3), NULL, 0, &n), 0);
  n.controller_epoch = 6;
  assert_true(rn_cl_shard_supersedes(&cur, &n));
  /* malformed */
  n.leader = 1;
  assert_int_equal(rn_cl_shard_transition(&cur, &n, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "the new value: shard: leader 1 is not in the ISR");
  assert_false(rn_cl_shard_supersedes(&cur, NULL));
}

/* ---- ISR --------------------------------------------------------------------- */

static void test_isr_shrink(void **state) {
  (void)state;
  rn_cl_shard_t cur = shard(IDS(1, 2, 3), 1, 4, IDS(1, 2, 3), 2), next;
  rn_cl_follower_t f[3] = {{2, 100, 1000, false}, {3, 90, 1000, false}, {1, 0, 0, false}};
  /* within lag_max: nobody leaves (entry for the leader ignored) */
  assert_int_equal(rn_cl_isr_shrink(&cur, f, 3, 100, 1500, 500, &next), 0);
  assert_true(rn_cl_shard_equal(&cur, &next));
  /* 3 behind for longer than lag_max: out; 2 caught up (end == leader end) stays however old its time */
  assert_int_equal(rn_cl_isr_shrink(&cur, f, 3, 100, 1501, 500, &next), 0);
  assert_isr(&next, IDS(1, 2));
  assert_true(rn_cl_may_ack(&next));
  assert_true(rn_cl_shard_supersedes(&cur, &next));
  assert_int_equal(next.leader_epoch, cur.leader_epoch);
  /* both behind: down to the leader alone; produce then fails */
  f[0].durable_end = 99;
  assert_int_equal(rn_cl_isr_shrink(&cur, f, 3, 100, 99999, 500, &next), 0);
  assert_isr(&next, IDS(1));
  assert_false(rn_cl_may_ack(&next));
  /* ineligible: out at once */
  f[0].durable_end = 100;
  f[0].ineligible = true;
  assert_int_equal(rn_cl_isr_shrink(&cur, f, 3, 100, 1000, 500, &next), 0);
  assert_isr(&next, IDS(1, 3));
  /* a time far in the past does not overflow */
  rn_cl_follower_t g[2] = {{2, 5, INT64_MIN, false}, {3, 100, INT64_MIN, false}};
  assert_int_equal(rn_cl_isr_shrink(&cur, g, 2, 100, INT64_MAX, 1, &next), 0);
  assert_isr(&next, IDS(1, 3));
  /* a time in the future: not late */
  rn_cl_follower_t h[2] = {{2, 5, 5000, false}, {3, 5, 5000, false}};
  assert_int_equal(rn_cl_isr_shrink(&cur, h, 2, 100, 1000, 1, &next), 0);
  assert_isr(&next, IDS(1, 2, 3));
  /* errors */
  assert_int_equal(rn_cl_isr_shrink(&cur, f, 1, 100, 1000, 500, &next), RN_EINVAL); /* 3 has no entry */
  assert_int_equal(rn_cl_isr_shrink(&cur, f, 3, 100, 1000, 0, &next), RN_EINVAL);
  rn_cl_follower_t dup[3] = {{2, 1, 1, false}, {3, 1, 1, false}, {2, 1, 1, false}};
  assert_int_equal(rn_cl_isr_shrink(&cur, dup, 3, 100, 1000, 5, &next), RN_EINVAL);
  rn_cl_follower_t alien[3] = {{2, 1, 1, false}, {3, 1, 1, false}, {8, 1, 1, false}};
  assert_int_equal(rn_cl_isr_shrink(&cur, alien, 3, 100, 1000, 5, &next), RN_EINVAL);
  rn_cl_shard_t off = cur;
  off.leader = 0;
  assert_int_equal(rn_cl_isr_shrink(&off, f, 3, 100, 1000, 500, &next), RN_ENOTLEADER);
  assert_int_equal(rn_cl_isr_shrink(NULL, f, 3, 100, 1000, 500, &next), RN_EINVAL);
  /* replication 1: nothing to drop */
  rn_cl_shard_t one = shard(IDS(4), 4, 1, IDS(4), 1);
  assert_int_equal(rn_cl_isr_shrink(&one, NULL, 0, 10, 1000, 5, &next), 0);
  assert_true(rn_cl_shard_equal(&one, &next));
}

static void test_isr_expand(void **state) {
  (void)state;
  rn_cl_shard_t cur = shard(IDS(1, 2, 3, 4), 1, 4, IDS(1), 2), next;
  rn_cl_follower_t f[3] = {{3, 50, 0, false}, {2, 49, 0, false}, {4, 80, 0, true}};
  /* hw 50, epoch start 40: 3 joins (at hw), 2 is one short, 4 is ineligible */
  assert_int_equal(rn_cl_isr_expand(&cur, f, 3, 50, 40, &next), 0);
  assert_isr(&next, IDS(1, 3));
  assert_true(rn_cl_may_ack(&next));
  assert_true(rn_cl_shard_supersedes(&cur, &next));
  /* below the start of the leader epoch: not yet (it has not taken this leader's history) */
  assert_int_equal(rn_cl_isr_expand(&cur, f, 3, 50, 51, &next), 0);
  assert_isr(&next, IDS(1));
  /* everyone caught up, in replica order */
  f[1].durable_end = 50;
  f[2].ineligible = false;
  assert_int_equal(rn_cl_isr_expand(&cur, f, 3, 50, 0, &next), 0);
  assert_isr(&next, IDS(1, 2, 3, 4));
  /* no entry: stays out */
  assert_int_equal(rn_cl_isr_expand(&cur, f, 1, 50, 0, &next), 0);
  assert_isr(&next, IDS(1, 3));
  /* errors */
  rn_cl_shard_t off = cur;
  off.leader = 0;
  assert_int_equal(rn_cl_isr_expand(&off, f, 3, 50, 0, &next), RN_ENOTLEADER);
  rn_cl_follower_t alien[1] = {{9, 1, 1, false}};
  assert_int_equal(rn_cl_isr_expand(&cur, alien, 1, 50, 0, &next), RN_EINVAL);
  assert_int_equal(rn_cl_isr_expand(&cur, NULL, 1, 50, 0, &next), RN_EINVAL);
}

static void test_high_watermark(void **state) {
  (void)state;
  assert_int_equal(rn_cl_high_watermark(100, NULL, 0), 100);
  assert_int_equal(rn_cl_high_watermark(100, (const uint64_t[]){120, 90, 95}, 3), 90);
  assert_int_equal(rn_cl_high_watermark(80, (const uint64_t[]){120, 90}, 2), 80);
  assert_int_equal(rn_cl_high_watermark(UINT64_MAX, (const uint64_t[]){UINT64_MAX}, 1), UINT64_MAX);
  rn_cl_shard_t s = shard(IDS(1, 2, 3), 1, 1, IDS(1, 2), 2);
  assert_true(rn_cl_may_ack(&s));
  s.min_insync = 3;
  assert_false(rn_cl_may_ack(&s));
  s.min_insync = 1;
  s.leader = 0;
  assert_false(rn_cl_may_ack(&s));
  assert_false(rn_cl_may_ack(NULL));
}

/* ---- rebalance ----------------------------------------------------------------- */

static void test_rebalance(void **state) {
  (void)state;
  rn_cl_shard_t sh[6] = {
      shard(IDS(1, 2, 3), 2, 5, IDS(1, 2, 3), 2), /* moves to 1 */
      shard(IDS(1, 2, 3), 1, 5, IDS(1, 2, 3), 2), /* already preferred */
      shard(IDS(1, 2, 3), 2, 5, IDS(2, 3), 2),    /* 1 not in the ISR */
      shard(IDS(4, 2, 3), 2, 5, IDS(4, 2), 2),    /* 4 dead */
      shard(IDS(3, 1, 2), 1, 9, IDS(3, 1), 1),    /* moves to 3 */
      shard(IDS(2, 1), 1, 5, IDS(2, 1), 1),       /* 2 ineligible */
  };
  size_t moves[6];
  rn_cl_shard_t next[6];
  size_t k = rn_cl_rebalance_plan(sh, 6, IDS(1, 2, 3), IDS(2), moves, next);
  assert_int_equal(k, 2);
  assert_int_equal(moves[0], 0);
  assert_int_equal(next[0].leader, 1);
  assert_int_equal(next[0].leader_epoch, 6);
  assert_isr(&next[0], IDS(1, 2, 3));
  assert_true(rn_cl_shard_supersedes(&sh[0], &next[0]));
  assert_int_equal(moves[1], 4);
  assert_int_equal(next[1].leader, 3);
  assert_int_equal(next[1].leader_epoch, 10);
  assert_int_equal(rn_cl_rebalance_plan(sh, 6, IDS(1, 2, 3), IDS(2), NULL, NULL), 2);
  /* a dead current leader is the election's business, not the rebalance's */
  assert_int_equal(rn_cl_rebalance_plan(sh, 1, IDS(1, 3), NULL, 0, moves, NULL), 0);
  /* malformed states are skipped */
  sh[0].leader = 7;
  assert_int_equal(rn_cl_rebalance_plan(sh, 1, IDS(1, 2, 3, 7), NULL, 0, moves, NULL), 0);
}

/* ---- properties ---------------------------------------------------------------- */

static rn_cl_shard_t random_shard(uint64_t *seed) {
  rn_cl_shard_t s;
  memset(&s, 0, sizeof s);
  s.nreplicas = (uint8_t)(1 + rn_test_rand_below(seed, RN_CL_MAX_REPLICAS));
  for (unsigned i = 0; i < s.nreplicas; i++) {
    uint32_t id;
    do id = (uint32_t)(1 + rn_test_rand_below(seed, 8));
    while (in_u32(s.replicas, i, id));
    s.replicas[i] = id;
  }
  for (unsigned i = 0; i < s.nreplicas; i++)
    if (rn_test_rand_below(seed, 3) != 0) s.isr[s.nisr++] = s.replicas[i];
  if (s.nisr == 0) s.isr[s.nisr++] = s.replicas[rn_test_rand_below(seed, s.nreplicas)];
  s.leader = rn_test_rand_below(seed, 4) == 0 ? 0 : s.isr[rn_test_rand_below(seed, s.nisr)];
  s.leader_epoch = (uint32_t)rn_test_rand_below(seed, 1000);
  s.min_insync = (uint32_t)(1 + rn_test_rand_below(seed, s.nreplicas));
  s.controller_epoch = (uint32_t)rn_test_rand_below(seed, 50);
  return s;
}

/* Election, shrink and expand over random states and random liveness:
 * the outputs are well formed, supersede their input, and a leader only
 * ever comes from the ISR. */
static void test_property_decisions(void **state) {
  (void)state;
  uint64_t seed = 0x5eed15u;
  size_t elected = 0, offline = 0, stayed = 0;
  for (int iter = 0; iter < 50000; iter++) {
    rn_cl_shard_t cur = random_shard(&seed), next;
    uint32_t alive[8], inel[8];
    size_t na = 0, ni = 0;
    for (uint32_t id = 1; id <= 8; id++) {
      if (rn_test_rand_below(&seed, 3) != 0) alive[na++] = id;
      if (rn_test_rand_below(&seed, 6) == 0) inel[ni++] = id;
    }
    bool leader_ok = cur.leader != 0 && in_u32(alive, na, cur.leader) && !in_u32(inel, ni, cur.leader);
    uint32_t first = 0;
    for (unsigned i = 0; i < cur.nreplicas && first == 0; i++) {
      uint32_t r = cur.replicas[i];
      if (rn_cl_shard_in_isr(&cur, r) && in_u32(alive, na, r) && !in_u32(inel, ni, r)) first = r;
    }
    rn_err_t rc = rn_cl_elect(&cur, alive, na, inel, ni, &next);
    char why[RN_CL_WHY_MAX];
    if (rn_cl_shard_check(&next, why, sizeof why) != 0) fail_msg("iteration %d: elect wrote a bad state: %s", iter, why);
    assert_true(rn_cl_shard_supersedes(&cur, &next));
    if (rc == 0) {
      assert_true(rn_cl_shard_in_isr(&cur, next.leader)); /* never outside the ISR */
      assert_true(in_u32(alive, na, next.leader));
      assert_false(in_u32(inel, ni, next.leader));
      for (unsigned i = 0; i < next.nisr; i++) {
        assert_true(rn_cl_shard_in_isr(&cur, next.isr[i]));
        assert_true(in_u32(alive, na, next.isr[i]));
        assert_false(in_u32(inel, ni, next.isr[i]));
      }
      if (leader_ok) {
        assert_int_equal(next.leader, cur.leader);
        assert_int_equal(next.leader_epoch, cur.leader_epoch);
        stayed++;
      } else {
        assert_int_equal(next.leader, first);
        assert_int_equal(next.leader_epoch, cur.leader_epoch + 1);
        elected++;
      }
    } else {
      assert_int_equal(rc, RN_ENOTENOUGHREPLICAS);
      assert_int_equal(first, 0);
      assert_int_equal(next.leader, 0);
      assert_int_equal(next.leader_epoch, cur.leader_epoch);
      cur.leader = 0;
      assert_true(rn_cl_shard_equal(&cur, &next));
      offline++;
      continue;
    }
    /* the new leader's shrink and expand over random follower states */
    rn_cl_follower_t f[RN_CL_MAX_REPLICAS];
    size_t nf = 0;
    for (unsigned i = 0; i < next.nreplicas; i++) {
      if (next.replicas[i] == next.leader) continue;
      f[nf].id = next.replicas[i];
      f[nf].durable_end = rn_test_rand_below(&seed, 100);
      f[nf].caught_up_ms = (int64_t)rn_test_rand_below(&seed, 1000);
      f[nf].ineligible = rn_test_rand_below(&seed, 5) == 0;
      nf++;
    }
    rn_cl_shard_t s2, s3;
    assert_int_equal(rn_cl_isr_shrink(&next, f, nf, 60, 1000, 300, &s2), 0);
    assert_int_equal(rn_cl_shard_check(&s2, NULL, 0), 0);
    assert_true(rn_cl_shard_in_isr(&s2, s2.leader));
    assert_true(rn_cl_shard_supersedes(&next, &s2));
    for (unsigned i = 0; i < s2.nisr; i++) assert_true(rn_cl_shard_in_isr(&next, s2.isr[i]));
    assert_int_equal(rn_cl_isr_expand(&s2, f, nf, 50, 40, &s3), 0);
    assert_int_equal(rn_cl_shard_check(&s3, NULL, 0), 0);
    assert_true(rn_cl_shard_supersedes(&s2, &s3));
    for (size_t i = 0; i < nf; i++)
      if (rn_cl_shard_in_isr(&s3, f[i].id) && !rn_cl_shard_in_isr(&s2, f[i].id))
        assert_true(!f[i].ineligible && f[i].durable_end >= 50);
  }
  /* the generator reaches every branch */
  assert_true(elected > 1000 && offline > 1000 && stayed > 1000);
}

/* ---- a simulated shard: no acknowledged record is ever lost ---------------------
 *
 * Replicas hold logs of record tokens. Random steps: produce (the leader
 * appends while rn_cl_may_ack holds), fetch (a follower truncates to its
 * common prefix with the leader, the epoch-history check, then copies a
 * few records and learns the HW), HW advance and acknowledgement, the
 * leader's shrink and expand, crashes (with durability none a crash may
 * cut the tail; with sync, rarely, corruption: either way the replica is
 * ineligible until it has caught up), restarts, and the controller's
 * election after every crash and restart. After every step: the state is
 * well formed, the leader holds every acknowledged record, and so does
 * every eligible ISR member (I1). */

#define SIM_LOG 8192

typedef struct {
  uint32_t log[SIM_LOG];
  uint64_t end;
  uint64_t known_hw;
  uint64_t seen_end;   /* the leader's view: its end at its last fetch... */
  uint32_t seen_epoch; /* ...in this leader epoch (else the leader knows nothing: 0) */
  int64_t caught_up;
  bool alive, inel;
} sim_rep_t;

typedef struct {
  sim_rep_t r[RN_CL_MAX_REPLICAS + 1]; /* by id, 1..n */
  uint32_t n;
  rn_cl_shard_t sh;
  uint64_t hw, epoch_start, acked;
  uint32_t acked_tok[SIM_LOG];
  uint32_t next_tok;
  int64_t now;
  size_t elections, acks, lost_tails, offline_steps;
} sim_t;

static void sim_holds_acked(const sim_t *s, uint32_t id, const char *who, uint64_t seed, int step) {
  const sim_rep_t *r = &s->r[id];
  if (r->end < s->acked) fail_msg("seed %llu step %d: %s %u ends at %llu, %llu records acknowledged",
                                  (unsigned long long)seed, step, who, (unsigned)id, (unsigned long long)r->end,
                                  (unsigned long long)s->acked);
  for (uint64_t i = 0; i < s->acked; i++)
    if (r->log[i] != s->acked_tok[i])
      fail_msg("seed %llu step %d: %s %u holds another record at acknowledged offset %llu",
               (unsigned long long)seed, step, who, (unsigned)id, (unsigned long long)i);
}

/* What the leader knows of a follower's durable end: only fetches of the
 * current epoch count (they passed the epoch-history check). */
static uint64_t sim_view(const sim_t *s, uint32_t id) {
  return s->r[id].seen_epoch == s->sh.leader_epoch ? s->r[id].seen_end : 0;
}

static void sim_elect(sim_t *s) {
  uint32_t alive[RN_CL_MAX_REPLICAS], inel[RN_CL_MAX_REPLICAS];
  size_t na = 0, ni = 0;
  for (uint32_t id = 1; id <= s->n; id++) {
    if (s->r[id].alive) alive[na++] = id;
    if (s->r[id].inel) inel[ni++] = id;
  }
  rn_cl_shard_t next;
  rn_err_t rc = rn_cl_elect(&s->sh, alive, na, inel, ni, &next);
  assert_true(rc == 0 || rc == RN_ENOTENOUGHREPLICAS);
  assert_true(rn_cl_shard_supersedes(&s->sh, &next));
  if (next.leader != 0 && next.leader != s->sh.leader) {
    s->elections++;
    s->hw = s->r[next.leader].known_hw; /* what the new leader knew */
    s->epoch_start = s->r[next.leader].end;
    for (uint32_t id = 1; id <= s->n; id++) s->r[id].caught_up = s->now; /* the leadership began */
  }
  s->sh = next;
}

static void sim_run(uint64_t seed, bool sync, sim_t *s) {
  memset(s, 0, sizeof *s);
  uint64_t st = seed;
  s->n = (uint32_t)(1 + rn_test_rand_below(&st, RN_CL_MAX_REPLICAS));
  uint32_t reps[RN_CL_MAX_REPLICAS];
  for (uint32_t i = 0; i < s->n; i++) {
    reps[i] = i + 1;
    s->r[i + 1].alive = true;
  }
  assert_int_equal(
      rn_cl_shard_init(&s->sh, reps, s->n, (uint32_t)(1 + rn_test_rand_below(&st, s->n)), 1, NULL, 0), 0);
  for (int step = 0; step < 4000; step++) {
    s->now += 1;
    uint32_t L = s->sh.leader;
    sim_rep_t *lr = L ? &s->r[L] : NULL;
    bool lead_ok = L && lr->alive;
    uint64_t ev = rn_test_rand_below(&st, 100);
    uint32_t pick = (uint32_t)(1 + rn_test_rand_below(&st, s->n));
    sim_rep_t *p = &s->r[pick];
    if (ev < 25) { /* produce */
      if (lead_ok && rn_cl_may_ack(&s->sh)) {
        uint64_t k = 1 + rn_test_rand_below(&st, 3);
        for (uint64_t i = 0; i < k && lr->end < SIM_LOG; i++) lr->log[lr->end++] = ++s->next_tok;
      }
    } else if (ev < 55) { /* a follower fetches */
      if (lead_ok && pick != L && p->alive) {
        uint64_t c = 0;
        while (c < p->end && c < lr->end && p->log[c] == lr->log[c]) c++;
        p->end = c; /* truncate to the common prefix: the epoch-history check */
        uint64_t k = 1 + rn_test_rand_below(&st, 6);
        while (k-- && p->end < lr->end) {
          p->log[p->end] = lr->log[p->end];
          p->end++;
        }
        if (p->end == lr->end) p->caught_up = s->now;
        p->seen_end = p->end;
        p->seen_epoch = s->sh.leader_epoch;
        p->known_hw = s->hw < p->end ? s->hw : p->end;
        /* caught up to a HW of this epoch: whole again (deletes its marker) */
        if (p->inel && p->end >= s->hw && p->end >= s->epoch_start) p->inel = false;
      }
    } else if (ev < 65) { /* HW and acknowledgements */
      if (lead_ok) {
        uint64_t ends[RN_CL_MAX_REPLICAS];
        size_t ne = 0;
        for (unsigned i = 0; i < s->sh.nisr; i++)
          if (s->sh.isr[i] != L) ends[ne++] = sim_view(s, s->sh.isr[i]);
        uint64_t h = rn_cl_high_watermark(lr->end, ends, ne);
        if (h > s->hw) s->hw = h;
        lr->known_hw = s->hw;
        if (rn_cl_may_ack(&s->sh) && s->hw > s->acked) {
          for (uint64_t i = s->acked; i < s->hw; i++) s->acked_tok[i] = lr->log[i];
          s->acked = s->hw;
          s->acks++;
        }
      }
    } else if (ev < 75) { /* shrink or expand */
      if (lead_ok) {
        rn_cl_follower_t f[RN_CL_MAX_REPLICAS];
        size_t nf = 0;
        for (uint32_t id = 1; id <= s->n; id++) {
          if (id == L) continue;
          f[nf++] = (rn_cl_follower_t){id, sim_view(s, id), s->r[id].caught_up, s->r[id].inel};
        }
        rn_cl_shard_t next;
        if (ev < 70)
          assert_int_equal(rn_cl_isr_shrink(&s->sh, f, nf, lr->end, s->now, 100, &next), 0);
        else
          assert_int_equal(rn_cl_isr_expand(&s->sh, f, nf, s->hw, s->epoch_start, &next), 0);
        assert_true(rn_cl_shard_supersedes(&s->sh, &next));
        s->sh = next;
      }
    } else if (ev < 78) { /* a crash */
      if (p->alive) {
        p->alive = false;
        bool cut = sync ? rn_test_rand_below(&st, 200) == 0 : rn_test_rand_below(&st, 4) == 0;
        if (cut && p->end > 0) {
          p->end = rn_test_rand_below(&st, p->end);
          p->inel = true;
          s->lost_tails++;
        }
        sim_elect(s);
      }
    } else if (ev < 95) { /* a restart */
      if (!p->alive) {
        p->alive = true;
        sim_elect(s);
      }
    } else {
      s->now += (int64_t)rn_test_rand_below(&st, 30);
    }
    char why[RN_CL_WHY_MAX];
    if (rn_cl_shard_check(&s->sh, why, sizeof why) != 0) fail_msg("seed %llu step %d: %s", (unsigned long long)seed, step, why);
    if (s->sh.leader) sim_holds_acked(s, s->sh.leader, "leader", seed, step);
    else s->offline_steps++;
    for (unsigned i = 0; i < s->sh.nisr; i++)
      if (!s->r[s->sh.isr[i]].inel) sim_holds_acked(s, s->sh.isr[i], "ISR member", seed, step);
  }
}

static void test_property_no_acked_loss(void **state) {
  (void)state;
  static sim_t s;
  size_t elections = 0, acks = 0, lost = 0, offline = 0;
  for (uint64_t seed = 1; seed <= 300; seed++) {
    sim_run(seed, seed % 2 == 0, &s);
    elections += s.elections;
    acks += s.acks;
    lost += s.lost_tails;
    offline += s.offline_steps;
  }
  print_message("simulated: %zu elections, %zu acknowledgements, %zu lost tails, %zu offline steps\n", elections,
                acks, lost, offline);
  assert_true(elections > 1000 && acks > 10000 && lost > 100);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_place_bounds),          cmocka_unit_test(test_place_balance_totals),
      cmocka_unit_test(test_place_deterministic),   cmocka_unit_test(test_place_racks),
      cmocka_unit_test(test_place_draining),        cmocka_unit_test(test_place_too_few_and_invalid),
      cmocka_unit_test(test_place_rotation),        cmocka_unit_test(test_reassign),
      cmocka_unit_test(test_shard_init_check_equal), cmocka_unit_test(test_elect_leader_dies),
      cmocka_unit_test(test_elect_sticky_and_cleanup), cmocka_unit_test(test_elect_ineligible),
      cmocka_unit_test(test_elect_offline),         cmocka_unit_test(test_elect_invalid),
      cmocka_unit_test(test_supersedes),            cmocka_unit_test(test_isr_shrink),
      cmocka_unit_test(test_isr_expand),            cmocka_unit_test(test_high_watermark),
      cmocka_unit_test(test_rebalance),             cmocka_unit_test(test_property_decisions),
      cmocka_unit_test(test_property_no_acked_loss),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
