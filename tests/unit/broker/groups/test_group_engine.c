/*
 * test_group_engine.c — consumer groups (rn_groups.h) over a real core
 * (rn_core.h), driven with protobuf requests through the native dispatcher
 * (rn_native_handle: native/dispatch.c, dispatch_groups.c) on a private
 * loop, so the wire answers are checked too: join and
 * assignment, revoke before reassign, epoch fencing, commit validation,
 * admin rules (reset/delete only without members), lag, durability of
 * checkpoints across close/reopen, and compaction of the checkpoint log by
 * snapshot (with a tiny segment size) surviving a reopen.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <uv.h>

#include "../core/coretest.h"
#include "native/dispatch.h"
#include "rn_core.h"
#include "rn_groups.h"
#include "runnel/batch.h"

typedef struct fx {
  ct_t ct; /* first, so ct_teardown frees the fixture: the loop, the directory, core (ct.core) */
  uint64_t segment_bytes;
} fx_t;

static void open_engine(fx_t *f) {
  rn_core_opts_t eo;
  ct_opts(&f->ct, &eo);
  if (f->segment_bytes) eo.group_segment_bytes = f->segment_bytes;
  ct_open_opts(&f->ct, &eo);
  char why[512];
  rn_groups_t *gs;
  rn_err_t err = rn_groups_open(f->ct.core, NULL, &gs, why, sizeof(why));
  if (err) fail_msg("rn_groups_open: %s", why);
}

static void close_engine(fx_t *f) { ct_close(&f->ct); /* closes the groups through their listener */ }

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  ct_init(&f->ct);
  open_engine(f);
  *state = f;
  return 0;
}

/* ---- synchronous requests -------------------------------------------------------------- */

static Runnel__Response *call(fx_t *f, Runnel__Request *req) { return ct_call(&f->ct, rn_native_handle, req); }

static int err_code(const Runnel__Error *e) { return e ? (int)e->code : 0; }

/* The request-level wire code of req's answer (0: none), which is freed. */
static int call_code(fx_t *f, Runnel__Request *req) {
  Runnel__Response *r = call(f, req);
  int code = err_code(r->error);
  runnel__response__free_unpacked(r, NULL);
  return code;
}

static void create_stream(fx_t *f, const char *name, uint32_t shards) {
  ct_call_create(&f->ct, rn_native_handle, name, shards);
}

/* Produce n records to one shard. */
static void produce(fx_t *f, const char *stream, uint32_t shard, int n) {
  rn_batch_builder_t b;
  const uint8_t *bytes;
  size_t len;
  ct_batch(&b, n, 1700000000000, "v", &bytes, &len);
  Runnel__ShardBatch sb;
  runnel__shard_batch__init(&sb);
  Runnel__ShardBatch *sbp = &sb;
  sb.shard = shard;
  sb.batch.data = (uint8_t *)(uintptr_t)bytes;
  sb.batch.len = len;
  Runnel__ProduceRequest pr;
  runnel__produce_request__init(&pr);
  pr.stream = (char *)(uintptr_t)stream;
  pr.n_batches = 1;
  pr.batches = &sbp;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_PRODUCE;
  req.produce = &pr;
  Runnel__Response *r = call(f, &req);
  assert_int_equal(err_code(r->error), 0);
  assert_int_equal(err_code(r->produce->results[0]->error), 0);
  runnel__response__free_unpacked(r, NULL);
  rn_batch_builder_free(&b);
}

typedef struct member {
  uint32_t session_ms; /* 0 = 60 s */
  char id[200];
  uint32_t epoch;
  uint32_t held[64];
  size_t nheld;
  uint32_t pending;
  int err;
  int64_t start[64]; /* offsets of held shards as handed out */
} member_t;

/* One heartbeat reporting m->held as owned (leave: leave). */
static void heartbeat(fx_t *f, const char *stream, const char *group, member_t *m, bool leave) {
  Runnel__GroupHeartbeatRequest hb;
  runnel__group_heartbeat_request__init(&hb);
  hb.stream = (char *)(uintptr_t)stream;
  hb.group = (char *)(uintptr_t)group;
  hb.member_id = m->id;
  hb.member_epoch = m->epoch;
  hb.leave = leave;
  hb.session_timeout_ms = m->session_ms ? m->session_ms : 60000;
  hb.start_kind = RUNNEL__POSITION_KIND__POSITION_EARLIEST;
  hb.owned = m->held;
  hb.n_owned = m->nheld;
  hb.client_id = (char *)"unit";
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_HEARTBEAT;
  req.group_heartbeat = &hb;
  Runnel__Response *r = call(f, &req);
  m->err = err_code(r->error);
  if (!m->err && !leave) {
    snprintf(m->id, sizeof(m->id), "%s", r->group_heartbeat->member_id);
    m->epoch = r->group_heartbeat->member_epoch;
    m->pending = r->group_heartbeat->pending;
    m->nheld = r->group_heartbeat->n_assigned;
    for (size_t i = 0; i < m->nheld; i++) {
      m->held[i] = r->group_heartbeat->assigned[i]->shard;
      m->start[i] = r->group_heartbeat->assigned[i]->value;
    }
  }
  runnel__response__free_unpacked(r, NULL);
}

/* Commit one checkpoint; returns the shard result's wire code (or the
 * request-level one). */
static int commit(fx_t *f, const char *stream, const char *group, const member_t *m, uint32_t epoch, uint32_t shard,
                  uint64_t offset) {
  Runnel__ShardCheckpoint cp;
  runnel__shard_checkpoint__init(&cp);
  cp.shard = shard;
  cp.offset = offset;
  cp.arrival_ms = 1;
  Runnel__ShardCheckpoint *cpp = &cp;
  Runnel__GroupCommitRequest cr;
  runnel__group_commit_request__init(&cr);
  cr.stream = (char *)(uintptr_t)stream;
  cr.group = (char *)(uintptr_t)group;
  cr.member_id = (char *)(uintptr_t)m->id;
  cr.member_epoch = epoch;
  cr.checkpoints = &cpp;
  cr.n_checkpoints = 1;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_COMMIT;
  req.group_commit = &cr;
  Runnel__Response *r = call(f, &req);
  int code = err_code(r->error);
  if (!code) code = err_code(r->group_commit->results[0]->error);
  runnel__response__free_unpacked(r, NULL);
  return code;
}

static Runnel__Response *describe(fx_t *f, const char *stream, const char *group) {
  Runnel__GroupDescribeRequest dr;
  runnel__group_describe_request__init(&dr);
  dr.stream = (char *)(uintptr_t)stream;
  dr.group = (char *)(uintptr_t)group;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_DESCRIBE;
  req.group_describe = &dr;
  return call(f, &req);
}

/* describe's request-level wire code (0: none). */
static int describe_code(fx_t *f, const char *stream, const char *group) {
  Runnel__Response *r = describe(f, stream, group);
  int code = err_code(r->error);
  runnel__response__free_unpacked(r, NULL);
  return code;
}

/* Shard 0 of a group as describe reports it, with the wall clock read just
 * before (d0) and after (d1) the request: the bounds of the lag's "now". */
typedef struct lag {
  int64_t d0, d1;
  bool has_checkpoint;
  uint64_t checkpoint, lag_records;
  int64_t lag_ms;
} lag_t;

static int64_t wall_ms(void);

static lag_t lag_of(fx_t *f, const char *stream, const char *group) {
  lag_t l = {.d0 = wall_ms()};
  Runnel__Response *r = describe(f, stream, group);
  l.d1 = wall_ms();
  assert_int_equal(err_code(r->error), 0);
  const Runnel__GroupShardInfo *si = r->group_describe->group->shards[0];
  l.has_checkpoint = si->has_checkpoint;
  l.checkpoint = si->checkpoint;
  l.lag_records = si->lag_records;
  l.lag_ms = si->lag_ms;
  runnel__response__free_unpacked(r, NULL);
  return l;
}

static bool holds(const member_t *m, uint32_t s) {
  for (size_t i = 0; i < m->nheld; i++)
    if (m->held[i] == s) return true;
  return false;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What rn_groups_foreach_shard (/metrics) reports for one shard. */
typedef struct gstat {
  const char *group;
  uint32_t shard;
  bool found;
  rn_groups_shard_stats_t s;
} gstat_t;

static void on_gstat(void *arg, const rn_groups_shard_stats_t *s) {
  gstat_t *g = arg;
  if (strcmp(s->group, g->group) || s->shard != g->shard) return;
  g->found = true;
  g->s = *s;
}

static gstat_t metrics_of(fx_t *f, const char *group, uint32_t shard) {
  gstat_t g = {.group = group, .shard = shard};
  rn_groups_foreach_shard(rn_groups_of(f->ct.core), on_gstat, &g);
  assert_true(g.found);
  return g;
}

/* GroupCreate's request-level wire code. */
static int create_group_code(fx_t *f, const char *stream, const char *group, Runnel__PositionKind kind,
                             int64_t value) {
  Runnel__GroupCreateRequest cr;
  runnel__group_create_request__init(&cr);
  cr.stream = (char *)(uintptr_t)stream;
  cr.group = (char *)(uintptr_t)group;
  cr.start_kind = kind;
  cr.start_value = value;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_CREATE;
  req.group_create = &cr;
  return call_code(f, &req);
}

static void create_group(fx_t *f, const char *stream, const char *group, Runnel__PositionKind kind, int64_t value) {
  assert_int_equal(create_group_code(f, stream, group, kind, value), 0);
}

/* ---- tests ---------------------------------------------------------------------------- */

#define W_EFENCED 112
#define W_ENOGROUP 116
#define W_EUNKNOWNMEMBER 117
#define W_EGROUPACTIVE 118
#define W_EOFFSET 103

static void test_revoke_before_reassign_and_fencing(void **state) {
  fx_t *f = *state;
  create_stream(f, "s", 4);
  member_t a = {0}, b = {0};
  heartbeat(f, "s", "g", &a, false);
  assert_int_equal(a.err, 0);
  assert_int_equal(a.nheld, 4); /* alone: everything */
  uint32_t a_epoch1 = a.epoch;
  heartbeat(f, "s", "g", &b, false);
  assert_int_equal(b.err, 0);
  assert_int_equal(b.nheld, 0); /* a still holds everything */
  assert_int_equal(b.pending, 2);
  /* a hears about the new assignment: two shards are no longer listed. */
  uint32_t before[4];
  memcpy(before, a.held, sizeof(before));
  heartbeat(f, "s", "g", &a, false);
  assert_int_equal(a.nheld, 2);
  assert_true(a.epoch > a_epoch1);
  uint32_t gone[2];
  size_t ngone = 0;
  for (int i = 0; i < 4; i++)
    if (!holds(&a, before[i])) gone[ngone++] = before[i];
  assert_int_equal(ngone, 2);
  /* a has not released them yet (it reported them as owned): b waits. */
  heartbeat(f, "s", "g", &b, false);
  assert_int_equal(b.nheld, 0);
  /* a may still commit a shard it is giving up (with its current epoch). */
  produce(f, "s", gone[0], 3);
  assert_int_equal(commit(f, "s", "g", &a, a.epoch, gone[0], 2), 0);
  /* a's next heartbeat leaves them out (released); now b gets them. */
  uint32_t a_epoch_after_revoke = a.epoch;
  heartbeat(f, "s", "g", &a, false);
  heartbeat(f, "s", "g", &b, false);
  assert_int_equal(b.nheld, 2);
  assert_int_equal(b.pending, 0);
  assert_true(holds(&b, gone[0]) && holds(&b, gone[1]));
  /* b starts at a's checkpoint. */
  for (size_t i = 0; i < b.nheld; i++)
    if (b.held[i] == gone[0]) assert_int_equal(b.start[i], 2);
  /* a's commit for a shard it no longer holds: fenced. */
  assert_int_equal(commit(f, "s", "g", &a, a_epoch_after_revoke, gone[0], 3), W_EFENCED);
  /* b's commit with an epoch older than its grant: fenced; current: ok. */
  assert_int_equal(commit(f, "s", "g", &b, 1, gone[0], 3), W_EFENCED);
  assert_int_equal(commit(f, "s", "g", &b, b.epoch, gone[0], 3), 0);
  /* Past the end of the shard: refused. */
  assert_int_equal(commit(f, "s", "g", &b, b.epoch, gone[0], 4), W_EOFFSET);
  /* Unknown member. */
  member_t ghost = {0};
  snprintf(ghost.id, sizeof(ghost.id), "nobody");
  assert_int_equal(commit(f, "s", "g", &ghost, 1, gone[0], 1), W_EUNKNOWNMEMBER);
  heartbeat(f, "s", "g", &ghost, false);
  assert_int_equal(ghost.err, W_EUNKNOWNMEMBER);
  /* Leaving frees the shards at once. */
  heartbeat(f, "s", "g", &a, true);
  assert_int_equal(a.err, 0);
  heartbeat(f, "s", "g", &b, false);
  assert_int_equal(b.nheld, 4);
  assert_int_equal(commit(f, "s", "g", &a, a.epoch, a.held[0], 0), W_EUNKNOWNMEMBER);
}

static void test_member_that_never_releases_is_fenced(void **state) {
  fx_t *f = *state;
  create_stream(f, "s", 2);
  member_t a = {.session_ms = 500}, b = {0};
  heartbeat(f, "s", "g", &a, false);
  assert_int_equal(a.nheld, 2);
  uint32_t keep[2] = {a.held[0], a.held[1]};
  heartbeat(f, "s", "g", &b, false);
  assert_int_equal(b.pending, 1);
  /* a stays alive (heartbeats) but keeps reporting both shards as held,
   * although the answers revoke one: after its session timeout it is
   * fenced and b gets both. Each round waits for the engine's next tick. */
  int rounds = 0;
  for (; rounds < 300; rounds++) {
    a.nheld = 2;
    a.held[0] = keep[0];
    a.held[1] = keep[1];
    heartbeat(f, "s", "g", &a, false);
    if (a.err) break;
    uv_run(&f->ct.loop, UV_RUN_ONCE);
  }
  assert_int_equal(a.err, W_EUNKNOWNMEMBER);
  heartbeat(f, "s", "g", &b, false);
  assert_int_equal(b.err, 0);
  assert_int_equal(b.nheld, 2);
  assert_int_equal(b.pending, 0);
}

/* Lag in time = now - broker arrival of the oldest record the group has not
 * consumed (the record at its checkpoint); 0 when caught up; unknown (-1,
 * and no lag series in /metrics) without a checkpoint. The arrival times
 * are bounded by wall-clock readings around each produce, and "now" by
 * readings around each describe: the assertions are inequalities between
 * clock readings, not durations. Before, the lag was newest arrival -
 * (client-reported) arrival of the last committed record, and 0 after a
 * restart until the next append. */
static void test_time_lag(void **state) {
  fx_t *f = *state;
  create_stream(f, "s", 1);
  int64_t t0 = wall_ms();
  produce(f, "s", 0, 3); /* offsets 0..2, one batch */
  int64_t t1 = wall_ms();
  produce(f, "s", 0, 2); /* offsets 3..4 */
  int64_t t2 = wall_ms();
  create_group(f, "s", "g", RUNNEL__POSITION_KIND__POSITION_EARLIEST, 0);

  /* Never committed: the start position is the checkpoint, record 0 the
   * oldest unconsumed. */
  lag_t l = lag_of(f, "s", "g");
  assert_true(l.has_checkpoint);
  assert_int_equal(l.lag_records, 5);
  assert_true(l.lag_ms >= l.d0 - t1 && l.lag_ms <= l.d1 - t0);
  gstat_t g = metrics_of(f, "g", 0);
  assert_true(g.s.checkpoint_known);
  assert_true(g.s.lag_ms >= l.d0 - t1 && g.s.lag_ms <= wall_ms() - t0);

  /* Committed up to the second batch: its arrival counts. */
  member_t m = {0};
  heartbeat(f, "s", "g", &m, false);
  assert_int_equal(m.nheld, 1);
  assert_int_equal(commit(f, "s", "g", &m, m.epoch, 0, 3), 0);
  l = lag_of(f, "s", "g");
  assert_int_equal(l.lag_records, 2);
  assert_true(l.lag_ms >= l.d0 - t2 && l.lag_ms <= l.d1 - t1);

  /* After a restart (no append since) the same: the arrival is read from
   * the log, not remembered. /metrics has no value until the tick read it
   * (the loop has not run since the open); each round below is one tick,
   * no sleeping. */
  close_engine(f);
  open_engine(f);
  g = metrics_of(f, "g", 0);
  assert_true(g.s.checkpoint_known);
  assert_int_equal(g.s.lag_records, 2);
  assert_int_equal(g.s.lag_ms, -1);
  int rounds = 0;
  for (; rounds < 300 && metrics_of(f, "g", 0).s.lag_ms < 0; rounds++) uv_run(&f->ct.loop, UV_RUN_ONCE);
  assert_true(rounds < 300);
  g = metrics_of(f, "g", 0);
  assert_true(g.s.lag_ms >= l.d0 - t2 && g.s.lag_ms <= wall_ms() - t1);
  l = lag_of(f, "s", "g");
  assert_int_equal(l.checkpoint, 3);
  assert_int_equal(l.lag_records, 2);
  assert_true(l.lag_ms >= l.d0 - t2 && l.lag_ms <= l.d1 - t1);

  member_t m2 = {0};
  heartbeat(f, "s", "g", &m2, false);
  assert_int_equal(m2.nheld, 1);

  /* Caught up: 0. */
  assert_int_equal(commit(f, "s", "g", &m2, m2.epoch, 0, 5), 0);
  l = lag_of(f, "s", "g");
  assert_int_equal(l.lag_records, 0);
  assert_int_equal(l.lag_ms, 0);
  g = metrics_of(f, "g", 0);
  assert_int_equal(g.s.lag_ms, 0);

  /* A group starting at a timestamp nobody resolved yet has no checkpoint:
   * unknown, and said so. */
  create_group(f, "s", "later", RUNNEL__POSITION_KIND__POSITION_TIMESTAMP, t2 + 3600000);
  l = lag_of(f, "s", "later");
  assert_false(l.has_checkpoint);
  assert_int_equal(l.lag_ms, -1);
  g = metrics_of(f, "later", 0);
  assert_false(g.s.checkpoint_known);
  assert_int_equal(g.s.lag_ms, -1);
}

static void test_admin_rules_and_lag(void **state) {
  fx_t *f = *state;
  create_stream(f, "s", 2);
  produce(f, "s", 0, 10);
  produce(f, "s", 1, 4);
  /* Explicit create at latest: lag 0 although records exist. */
  assert_int_equal(create_group_code(f, "s", "late", RUNNEL__POSITION_KIND__POSITION_LATEST, 0), 0);
  assert_int_equal(create_group_code(f, "s", "late", RUNNEL__POSITION_KIND__POSITION_LATEST, 0), 6); /* EEXIST */
  Runnel__Response *r = describe(f, "s", "late");
  assert_int_equal(r->group_describe->group->shards[0]->lag_records, 0);
  assert_int_equal(r->group_describe->group->shards[0]->checkpoint, 10);
  runnel__response__free_unpacked(r, NULL);
  produce(f, "s", 0, 5);
  r = describe(f, "s", "late");
  assert_int_equal(r->group_describe->group->shards[0]->lag_records, 5);
  assert_int_equal(r->group_describe->group->shards[1]->lag_records, 0);
  runnel__response__free_unpacked(r, NULL);

  /* A member joins an earliest group and commits part: lag = end - checkpoint. */
  member_t m = {0};
  heartbeat(f, "s", "early", &m, false);
  assert_int_equal(m.nheld, 2);
  assert_int_equal(commit(f, "s", "early", &m, m.epoch, 0, 12), 0);
  r = describe(f, "s", "early");
  const Runnel__GroupDescription *d = r->group_describe->group;
  assert_int_equal(d->n_members, 1);
  assert_int_equal(d->shards[0]->lag_records, 3);
  assert_int_equal(d->shards[1]->lag_records, 4);
  assert_true(d->shards[0]->lag_ms >= 0);
  /* Not committed there, but the group's start position is its checkpoint:
   * the lag in time is the age of record 0, known. */
  assert_true(d->shards[1]->has_checkpoint);
  assert_true(d->shards[1]->lag_ms >= 0);
  runnel__response__free_unpacked(r, NULL);

  /* Reset and delete refuse while members exist. */
  Runnel__GroupResetRequest rr;
  runnel__group_reset_request__init(&rr);
  rr.stream = (char *)"s";
  rr.group = (char *)"early";
  rr.kind = RUNNEL__POSITION_KIND__POSITION_OFFSET;
  rr.value = 1;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_RESET;
  req.group_reset = &rr;
  assert_int_equal(call_code(f, &req), W_EGROUPACTIVE);
  Runnel__GroupDeleteRequest dr;
  runnel__group_delete_request__init(&dr);
  dr.stream = (char *)"s";
  dr.group = (char *)"early";
  Runnel__Request dreq;
  runnel__request__init(&dreq);
  dreq.op_case = RUNNEL__REQUEST__OP_GROUP_DELETE;
  dreq.group_delete = &dr;
  assert_int_equal(call_code(f, &dreq), W_EGROUPACTIVE);
  heartbeat(f, "s", "early", &m, true);
  r = call(f, &req); /* reset to offset 1 in every shard */
  assert_int_equal(err_code(r->error), 0);
  assert_int_equal(r->group_reset->group->shards[0]->checkpoint, 1);
  assert_int_equal(r->group_reset->group->shards[1]->checkpoint, 1);
  assert_int_equal(r->group_reset->group->shards[0]->lag_records, 14);
  runnel__response__free_unpacked(r, NULL);
  assert_int_equal(call_code(f, &dreq), 0);
  assert_int_equal(describe_code(f, "s", "early"), W_ENOGROUP);
  /* List: only "late" is left. */
  Runnel__GroupListRequest lr;
  runnel__group_list_request__init(&lr);
  lr.stream = (char *)"s";
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_LIST;
  req.group_list = &lr;
  r = call(f, &req);
  assert_int_equal(r->group_list->n_groups, 1);
  assert_string_equal(r->group_list->groups[0], "late");
  runnel__response__free_unpacked(r, NULL);
}

static void test_bad_requests(void **state) {
  fx_t *f = *state;
  create_stream(f, "s", 1);
  member_t m = {0};
  heartbeat(f, "nope", "g", &m, false);
  assert_int_equal(m.err, 107); /* ENOSTREAM */
  heartbeat(f, "s", "bad name!", &m, false);
  assert_int_equal(m.err, 1); /* EINVAL */
  Runnel__GroupHeartbeatRequest hb;
  runnel__group_heartbeat_request__init(&hb);
  hb.stream = (char *)"s";
  hb.group = (char *)"g";
  hb.start_kind = RUNNEL__POSITION_KIND__POSITION_OFFSET; /* not a group start */
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_HEARTBEAT;
  req.group_heartbeat = &hb;
  assert_int_equal(call_code(f, &req), 1);
  /* Owned shards out of range are ignored, not a crash. */
  member_t ok = {0};
  heartbeat(f, "s", "g2", &ok, false);
  assert_int_equal(ok.err, 0);
  ok.held[ok.nheld++] = 999;
  heartbeat(f, "s", "g2", &ok, false);
  assert_int_equal(ok.err, 0);
  assert_int_equal(commit(f, "s", "g2", &ok, ok.epoch, 5, 0), 108); /* ENOSHARD */
}

static uint64_t dir_bytes(const char *path) {
  DIR *d = opendir(path);
  if (!d) return 0;
  uint64_t total = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    char p[4200];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
    if (e->d_name[0] != '.' && stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) total += (uint64_t)sb.st_size;
  }
  closedir(d);
  return total;
}

static void test_checkpoints_survive_reopen_and_compaction(void **state) {
  fx_t *f = *state;
  /* Reopen with a tiny checkpoint-log segment so compaction kicks in. */
  close_engine(f);
  f->segment_bytes = 4096;
  open_engine(f);
  create_stream(f, "s", 3);
  produce(f, "s", 0, 50);
  produce(f, "s", 1, 50);
  produce(f, "s", 2, 50);
  member_t m = {0};
  heartbeat(f, "s", "g", &m, false);
  assert_int_equal(m.nheld, 3);
  /* ~1500 commits: far more than the segments may hold. */
  for (int i = 1; i <= 500; i++)
    for (uint32_t s = 0; s < 3; s++) assert_int_equal(commit(f, "s", "g", &m, m.epoch, s, (uint64_t)(i % 48) + s), 0);
  /* Run the loop's tick until a snapshot was written and old segments went. */
  char logdir[4200], snap[4200];
  snprintf(logdir, sizeof(logdir), "%s/groups/log", f->ct.dir);
  snprintf(snap, sizeof(snap), "%s/groups/snapshot", f->ct.dir);
  struct stat sb;
  for (int i = 0; i < 100000 && (stat(snap, &sb) != 0 || dir_bytes(logdir) > 4 * 4096 + 4096); i++)
    uv_run(&f->ct.loop, UV_RUN_ONCE);
  assert_int_equal(stat(snap, &sb), 0);
  assert_true(dir_bytes(logdir) <= 4 * 4096 + 4096);
  /* A few commits after the snapshot, then reopen: every checkpoint is back. */
  assert_int_equal(commit(f, "s", "g", &m, m.epoch, 0, 7), 0);
  assert_int_equal(commit(f, "s", "g", &m, m.epoch, 2, 41), 0);
  close_engine(f);
  open_engine(f);
  Runnel__Response *r = describe(f, "s", "g");
  assert_int_equal(err_code(r->error), 0);
  const Runnel__GroupDescription *d = r->group_describe->group;
  assert_int_equal(d->n_members, 0); /* membership is not persisted */
  assert_int_equal(d->shards[0]->checkpoint, 7);
  assert_int_equal(d->shards[1]->checkpoint, (500 % 48) + 1);
  assert_int_equal(d->shards[2]->checkpoint, 41);
  runnel__response__free_unpacked(r, NULL);
  /* The old member is unknown after the restart; a new one starts at the checkpoints. */
  assert_int_equal(commit(f, "s", "g", &m, m.epoch, 0, 8), W_EUNKNOWNMEMBER);
  member_t n = {0};
  heartbeat(f, "s", "g", &n, false);
  assert_int_equal(n.nheld, 3);
  for (size_t i = 0; i < 3; i++)
    if (n.held[i] == 2) assert_int_equal(n.start[i], 41);
}

static void test_groups_go_with_their_stream(void **state) {
  fx_t *f = *state;
  create_stream(f, "s", 1);
  member_t m = {0};
  heartbeat(f, "s", "g", &m, false);
  assert_int_equal(m.err, 0);
  Runnel__DeleteStreamRequest ds;
  runnel__delete_stream_request__init(&ds);
  ds.name = (char *)"s";
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_DELETE_STREAM;
  req.delete_stream = &ds;
  assert_int_equal(call_code(f, &req), 0);
  heartbeat(f, "s", "g", &m, false);
  assert_int_equal(m.err, 107);
  /* A new stream with the same name starts without the old group. */
  create_stream(f, "s", 1);
  assert_int_equal(describe_code(f, "s", "g"), W_ENOGROUP);
  close_engine(f);
  open_engine(f);
  assert_int_equal(describe_code(f, "s", "g"), W_ENOGROUP);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_revoke_before_reassign_and_fencing, setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_member_that_never_releases_is_fenced, setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_admin_rules_and_lag, setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_time_lag, setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_bad_requests, setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_checkpoints_survive_reopen_and_compaction, setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_groups_go_with_their_stream, setup, ct_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
