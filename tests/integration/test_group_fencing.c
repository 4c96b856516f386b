/*
 * test_group_fencing.c — a stale member's checkpoint is rejected, shown on
 * the raw native protocol (rawclient.h, not librunnel) against the real
 * runneld:
 *
 *   - member A joins and holds all four shards; member B joins; A's next
 *     heartbeat answer revokes half of them, A releases them (leaves them
 *     out of `owned`) and B's heartbeats are granted them. A commit by A for
 *     a shard that moved, with the epoch under which A held it (or with its
 *     current epoch) fails with EFENCED (wire 112); A's commit for a shard
 *     it still holds and B's commit for the moved shard succeed;
 *   - after A leaves, its commit fails with EUNKNOWNMEMBER (wire 117);
 *   - a member whose session expired (500 ms, no heartbeat) is gone: its
 *     commit fails with EUNKNOWNMEMBER too.
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
#include <time.h>

#include "itest.h"

#define STREAM "fence"
#define GROUP "g"
#define SHARDS 4
#define WIRE_EFENCED 112u
#define WIRE_EUNKNOWNMEMBER 117u

typedef struct member {
  char *id;
  uint32_t epoch;
  uint32_t shards[SHARDS]; /* held (the last answer's list) */
  size_t n;
  uint32_t pending;
} member_t;

static int setup(void **state) { return itest_setup_with(state, NULL); }

/* One heartbeat of m (join when m->id is NULL; owned = what m holds);
 * m takes the answer's list. */
static void heartbeat(rn_raw_t *c, member_t *m, bool leave, uint32_t session_ms) {
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  Runnel__GroupHeartbeatRequest hb = RUNNEL__GROUP_HEARTBEAT_REQUEST__INIT;
  hb.stream = STREAM;
  hb.group = GROUP;
  hb.member_id = m->id ? m->id : "";
  hb.member_epoch = m->epoch;
  hb.leave = leave;
  hb.session_timeout_ms = session_ms;
  hb.owned = m->shards;
  hb.n_owned = m->n;
  hb.start_kind = RUNNEL__POSITION_KIND__POSITION_EARLIEST;
  hb.client_id = "fencing-test";
  req.op_case = RUNNEL__REQUEST__OP_GROUP_HEARTBEAT;
  req.group_heartbeat = &hb;
  Runnel__Response *r = rn_raw_call(c, &req);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_GROUP_HEARTBEAT);
  const Runnel__GroupHeartbeatResponse *a = r->group_heartbeat;
  if (!leave) {
    assert_non_null(a->member_id);
    assert_true(a->member_id[0] != '\0');
    if (!m->id) m->id = strdup(a->member_id);
    assert_string_equal(a->member_id, m->id);
    assert_true(a->member_epoch >= m->epoch);
    m->epoch = a->member_epoch;
    assert_true(a->n_assigned <= SHARDS);
    m->n = a->n_assigned;
    for (size_t i = 0; i < a->n_assigned; i++) m->shards[i] = a->assigned[i]->shard;
    m->pending = a->pending;
  }
  rn_raw_free(r);
}

/* Commit shard at offset as (member_id, epoch); the wire code of the
 * answer (request-level or the shard's). */
static uint32_t commit(rn_raw_t *c, const char *member_id, uint32_t epoch, uint32_t shard, uint64_t offset) {
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  Runnel__GroupCommitRequest cr = RUNNEL__GROUP_COMMIT_REQUEST__INIT;
  Runnel__ShardCheckpoint ck = RUNNEL__SHARD_CHECKPOINT__INIT;
  Runnel__ShardCheckpoint *cks[1] = {&ck};
  ck.shard = shard;
  ck.offset = offset;
  cr.stream = STREAM;
  cr.group = GROUP;
  cr.member_id = (char *)member_id;
  cr.member_epoch = epoch;
  cr.checkpoints = cks;
  cr.n_checkpoints = 1;
  req.op_case = RUNNEL__REQUEST__OP_GROUP_COMMIT;
  req.group_commit = &cr;
  Runnel__Response *r = rn_raw_call(c, &req);
  assert_non_null(r);
  uint32_t code;
  if (r->error) {
    code = r->error->code;
    print_message("  commit shard %u as %s/%u: %s: %s\n", shard, member_id, epoch, r->error->name,
                  r->error->message);
  } else {
    assert_int_equal(r->op_case, RUNNEL__RESPONSE__OP_GROUP_COMMIT);
    assert_int_equal(r->group_commit->n_results, 1);
    assert_int_equal(r->group_commit->results[0]->shard, shard);
    const Runnel__Error *e = r->group_commit->results[0]->error;
    code = rn_raw_code(e);
    if (e) print_message("  commit shard %u as %s/%u: %s: %s\n", shard, member_id, epoch, e->name, e->message);
  }
  rn_raw_free(r);
  return code;
}

/* The group's members, from GroupDescribe. */
static size_t member_count(rn_raw_t *c, const char *must_not_include, bool *included) {
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  Runnel__GroupDescribeRequest dr = RUNNEL__GROUP_DESCRIBE_REQUEST__INIT;
  dr.stream = STREAM;
  dr.group = GROUP;
  req.op_case = RUNNEL__REQUEST__OP_GROUP_DESCRIBE;
  req.group_describe = &dr;
  Runnel__Response *r = rn_raw_call(c, &req);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_GROUP_DESCRIBE);
  const Runnel__GroupDescription *d = r->group_describe->group;
  assert_non_null(d);
  size_t n = d->n_members;
  *included = false;
  for (size_t i = 0; i < n; i++)
    if (must_not_include && strcmp(d->members[i]->member_id, must_not_include) == 0) *included = true;
  rn_raw_free(r);
  return n;
}

static bool holds(const member_t *m, uint32_t s) {
  for (size_t i = 0; i < m->n; i++)
    if (m->shards[i] == s) return true;
  return false;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_stale_member_commit_is_fenced(void **state) {
  rn_raw_env_t *env = *state;
  rn_raw_t *c = &env->c;
  assert_int_equal(rn_raw_wire(RN_EFENCED), WIRE_EFENCED);
  assert_int_equal(rn_raw_wire(RN_EUNKNOWNMEMBER), WIRE_EUNKNOWNMEMBER);
  itest_create(c, STREAM, SHARDS, RUNNEL__DURABILITY__DURABILITY_SYNC);
  for (uint32_t s = 0; s < SHARDS; s++) {
    size_t len;
    uint8_t *b = itest_batch1("x", 1000, &len);
    itest_produce_ok(c, STREAM, s, b, len);
    free(b);
  }

  /* A joins (creating the group) and holds every shard. */
  member_t a = {0}, b = {0};
  heartbeat(c, &a, false, 60000);
  assert_int_equal(a.n, SHARDS);
  uint32_t a_epoch_all = a.epoch;
  member_t a_before = a;

  /* B joins; heartbeats go on until the assignment settles: A releases
   * what its answers no longer list, B is granted it. */
  heartbeat(c, &b, false, 60000);
  uint64_t deadline = now_ms() + 30000;
  while (!(a.n + b.n == SHARDS && a.pending == 0 && b.pending == 0 && b.n > 0)) {
    if (now_ms() > deadline) fail_msg("the assignment did not settle: A %zu shards, B %zu shards", a.n, b.n);
    heartbeat(c, &a, false, 0);
    heartbeat(c, &b, false, 0);
  }
  assert_int_equal(a.n, SHARDS / 2);
  assert_int_equal(b.n, SHARDS / 2);
  assert_true(a.epoch > a_epoch_all); /* its shards changed: a new epoch */

  uint32_t moved = UINT32_MAX, kept = UINT32_MAX;
  for (size_t i = 0; i < a_before.n; i++) {
    uint32_t s = a_before.shards[i];
    if (holds(&b, s) && moved == UINT32_MAX) moved = s;
    if (holds(&a, s) && kept == UINT32_MAX) kept = s;
  }
  assert_int_not_equal(moved, UINT32_MAX);
  assert_int_not_equal(kept, UINT32_MAX);

  /* A's checkpoint for the moved shard: rejected with its old epoch and
   * with its current one. */
  assert_int_equal(commit(c, a.id, a_epoch_all, moved, 1), WIRE_EFENCED);
  assert_int_equal(commit(c, a.id, a.epoch, moved, 1), WIRE_EFENCED);
  /* The owners' commits are accepted. */
  assert_int_equal(commit(c, b.id, b.epoch, moved, 1), 0);
  assert_int_equal(commit(c, a.id, a.epoch, kept, 1), 0);
  /* An epoch A has not been given yet is not A's either. */
  assert_int_equal(commit(c, a.id, a.epoch + 5, kept, 1), WIRE_EFENCED);

  /* A leaves: it is no member any more. */
  heartbeat(c, &a, true, 0);
  assert_int_equal(commit(c, a.id, a.epoch, kept, 1), WIRE_EUNKNOWNMEMBER);

  /* C joins with the shortest session and goes silent; B keeps
   * heartbeating. Once describe no longer lists C, its commit is refused. */
  member_t m3 = {0};
  heartbeat(c, &m3, false, 500);
  deadline = now_ms() + 30000;
  for (;;) {
    bool present;
    member_count(c, m3.id, &present);
    if (!present) break;
    if (now_ms() > deadline) fail_msg("member %s never expired", m3.id);
    heartbeat(c, &b, false, 0);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000000L}; /* poll interval */
    nanosleep(&ts, NULL);
  }
  assert_int_equal(commit(c, m3.id, m3.epoch, 0, 1), WIRE_EUNKNOWNMEMBER);
  /* B is still there and may commit. */
  heartbeat(c, &b, false, 0);
  assert_int_equal(commit(c, b.id, b.epoch, b.shards[0], 1), 0);

  free(a.id);
  free(b.id);
  free(m3.id);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_stale_member_commit_is_fenced, setup, itest_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
