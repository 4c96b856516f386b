/*
 * test_groups_core.c — consumer groups through their C API (rn_groups.h)
 * over a real core (rn_core.h) on a private loop, no protobuf: a stream's
 * deletion drops its groups through core's listener (also across a
 * restart, and a new stream of the same name starts without them); the
 * groups' per-shard state hangs off core's shard slots and survives a
 * restart (checkpoints, positions); close detaches groups from core;
 * sessions run on the injected clock (rn_groups_opts_t), not on the loop's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "../core/coretest.h"
#include "crashfs.h"
#include "rn_core.h"
#include "rn_groups.h"

typedef struct fx {
  ct_t ct; /* first, so ct_teardown frees the fixture: the loop, the directory, core (ct.core) */
  rn_groups_t *gs;
  uint64_t mono_ns; /* the groups' monotonic clock (injected): moves only when a test moves it */
  crashfs_t *cfs;   /* non-NULL: core (and so groups) on the crash simulator */
} fx_t;

static uint64_t fake_mono_ns(void *arg) { return ((fx_t *)arg)->mono_ns; }

static void open_all(fx_t *f) {
  rn_core_opts_t o;
  ct_opts(&f->ct, &o);
  if (f->cfs) {
    o.fs = crashfs_fs(f->cfs);
    o.io_backend = RN_IO_POSIX; /* crashfs files have no descriptor for io_uring */
  }
  ct_open_opts(&f->ct, &o);
  char why[512];
  rn_groups_opts_t go = {.clock = {.mono_ns = fake_mono_ns, .arg = f}};
  rn_err_t err = rn_groups_open(f->ct.core, &go, &f->gs, why, sizeof why);
  if (err) fail_msg("rn_groups_open: %s", why);
  assert_ptr_equal(rn_groups_of(f->ct.core), f->gs);
}

static void close_all(fx_t *f) {
  ct_close(&f->ct); /* closes the groups too */
  f->gs = NULL;
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  ct_init(&f->ct);
  open_all(f);
  *state = f;
  return 0;
}

/* ---- core, synchronously (coretest) ------------------------------------------------- */

static void create_stream(fx_t *f, const char *name, uint32_t shards) {
  assert_int_equal(ct_create(&f->ct, name, shards), 0);
}

static void delete_stream(fx_t *f, const char *name) { assert_int_equal(ct_delete(&f->ct, name), 0); }

static void produce(fx_t *f, const char *stream, uint32_t shard, int n) {
  assert_int_equal(ct_produce(&f->ct, stream, shard, n, 1700000000000, NULL), 0);
}

/* ---- groups, synchronously ---------------------------------------------------------- */

/* What a reply said, copied out of the callback. */
typedef struct got {
  bool done;
  rn_err_t err;
  char member_id[200];
  uint32_t epoch;
  size_t n_assigned, n_names, n_results;
  char names[8][64];
  rn_err_t result_err[8];
  bool has_desc;
  size_t n_members, n_shards;
  rn_group_shard_info_t shards[8];
} got_t;

static void on_reply(void *ctx, const rn_group_reply_t *r) {
  got_t *g = ctx;
  memset(g, 0, sizeof(*g));
  g->done = true;
  g->err = r->err;
  if (r->err) {
    assert_non_null(r->message);
    return;
  }
  if (r->heartbeat.member_id) snprintf(g->member_id, sizeof g->member_id, "%s", r->heartbeat.member_id);
  g->epoch = r->heartbeat.member_epoch;
  g->n_assigned = r->heartbeat.n_assigned;
  g->n_names = r->list.n_names;
  for (size_t i = 0; i < r->list.n_names && i < 8; i++) snprintf(g->names[i], 64, "%s", r->list.names[i]);
  g->n_results = r->commit.n_results;
  for (size_t i = 0; i < r->commit.n_results && i < 8; i++) g->result_err[i] = r->commit.results[i].err;
  if (r->group) {
    g->has_desc = true;
    g->n_members = r->group->n_members;
    g->n_shards = r->group->n_shards;
    for (size_t i = 0; i < r->group->n_shards && i < 8; i++) {
      g->shards[i] = r->group->shards[i];
      g->shards[i].owner = NULL; /* borrowed during the callback only */
    }
  }
}

static void wait_got(fx_t *f, got_t *g) { ct_run_until(&f->ct, &g->done); }

static got_t list_groups(fx_t *f, const char *stream) {
  got_t g = {0};
  rn_groups_list(f->gs, stream, on_reply, &g);
  wait_got(f, &g);
  return g;
}

static got_t describe(fx_t *f, const char *stream, const char *group) {
  got_t g = {0};
  rn_groups_describe(f->gs, stream, group, on_reply, &g);
  wait_got(f, &g);
  return g;
}

static void create_group(fx_t *f, const char *stream, const char *group, rn_group_pos_t at) {
  rn_group_create_req_t c = {.stream = stream, .group = group, .start_kind = at};
  got_t g = {0};
  rn_groups_create(f->gs, &c, on_reply, &g);
  wait_got(f, &g);
  assert_int_equal(g.err, 0);
}

static bool shard_has_groups(fx_t *f, const char *stream, uint32_t shard) {
  rn_core_stream_t *st = rn_core_stream_find(f->ct.core, stream);
  assert_non_null(st);
  return rn_core_shard_slot(rn_core_stream_shard(st, shard), RN_SUB_GROUPS) != NULL;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_stream_deletion_drops_groups(void **state) {
  fx_t *f = *state;
  create_stream(f, "s", 2);
  create_stream(f, "other", 1);
  assert_false(shard_has_groups(f, "s", 0));
  create_group(f, "s", "g", RN_GROUP_POS_EARLIEST);
  create_group(f, "other", "g", RN_GROUP_POS_EARLIEST);
  assert_true(shard_has_groups(f, "s", 0));
  assert_true(shard_has_groups(f, "s", 1));
  got_t l = list_groups(f, "s");
  assert_int_equal(l.err, 0);
  assert_int_equal(l.n_names, 1);
  assert_string_equal(l.names[0], "g");

  /* Core's stream_deleting event, not a call from the engine, drops them. */
  delete_stream(f, "s");
  assert_int_equal(list_groups(f, "s").err, RN_ENOSTREAM);
  create_stream(f, "s", 2); /* a new stream of the same name: no groups */
  assert_false(shard_has_groups(f, "s", 0));
  l = list_groups(f, "s");
  assert_int_equal(l.err, 0);
  assert_int_equal(l.n_names, 0);
  assert_int_equal(describe(f, "s", "g").err, RN_ENOGROUP);
  assert_int_equal(list_groups(f, "other").n_names, 1); /* another stream's group stays */

  /* And after a restart: the replayed create named the old stream. */
  close_all(f);
  open_all(f);
  assert_int_equal(list_groups(f, "s").n_names, 0);
  assert_false(shard_has_groups(f, "s", 1));
  assert_int_equal(list_groups(f, "other").n_names, 1);
  assert_true(shard_has_groups(f, "other", 0));
}

static void test_per_shard_state_survives_restart(void **state) {
  fx_t *f = *state;
  create_stream(f, "s", 3);
  produce(f, "s", 1, 5);
  produce(f, "s", 2, 2);
  create_group(f, "s", "g", RN_GROUP_POS_EARLIEST);

  rn_group_heartbeat_req_t hb = {.stream = "s", .group = "g", .client_id = "unit"};
  got_t j = {0};
  rn_groups_heartbeat(f->gs, &hb, on_reply, &j);
  wait_got(f, &j);
  assert_int_equal(j.err, 0);
  assert_int_equal(j.n_assigned, 3);

  rn_group_checkpoint_t cps[] = {{.shard = 1, .offset = 4, .arrival_ms = 1}, {.shard = 2, .offset = 2}};
  rn_group_commit_req_t c = {.stream = "s", .group = "g", .member_id = j.member_id, .member_epoch = j.epoch,
                             .checkpoints = cps, .n_checkpoints = 2};
  got_t cr = {0};
  rn_groups_commit(f->gs, &c, on_reply, &cr);
  wait_got(f, &cr);
  assert_int_equal(cr.err, 0);
  assert_int_equal(cr.n_results, 2);
  assert_int_equal(cr.result_err[0], 0);
  assert_int_equal(cr.result_err[1], 0);

  close_all(f);
  open_all(f);
  for (uint32_t s = 0; s < 3; s++) assert_true(shard_has_groups(f, "s", s));
  got_t d = describe(f, "s", "g");
  assert_int_equal(d.err, 0);
  assert_int_equal(d.n_members, 0); /* membership is not persisted */
  assert_int_equal(d.n_shards, 3);
  assert_true(d.shards[0].has_checkpoint);
  assert_int_equal(d.shards[0].checkpoint, 0);
  assert_int_equal(d.shards[1].checkpoint, 4);
  assert_int_equal(d.shards[1].lag_records, 1);
  assert_int_equal(d.shards[2].checkpoint, 2);
  assert_int_equal(d.shards[2].lag_records, 0);
}

static got_t join(fx_t *f, const char *client, uint32_t session_ms) {
  rn_group_heartbeat_req_t hb = {.stream = "s", .group = "g", .client_id = client, .session_timeout_ms = session_ms};
  got_t j = {0};
  rn_groups_heartbeat(f->gs, &hb, on_reply, &j);
  wait_got(f, &j);
  assert_int_equal(j.err, 0);
  return j;
}

static void test_sessions_run_on_the_injected_clock(void **state) {
  fx_t *f = *state;
  f->mono_ns = 1000000000ull;
  create_stream(f, "s", 2);
  create_group(f, "s", "g", RN_GROUP_POS_EARLIEST);
  got_t a = join(f, "a", 1000);
  got_t b = join(f, "b", 60000);
  assert_int_equal(describe(f, "s", "g").n_members, 2);

  /* Just inside a's session: a heartbeat of b expires nobody. */
  f->mono_ns += 1000ull * 1000000u;
  rn_group_heartbeat_req_t hb = {.stream = "s", .group = "g", .member_id = b.member_id, .member_epoch = b.epoch};
  got_t r = {0};
  rn_groups_heartbeat(f->gs, &hb, on_reply, &r);
  wait_got(f, &r);
  assert_int_equal(r.err, 0);
  assert_int_equal(describe(f, "s", "g").n_members, 2);

  /* Past it: a is gone, whatever the loop's own clock says. */
  f->mono_ns += 1ull * 1000000u;
  memset(&r, 0, sizeof r);
  rn_groups_heartbeat(f->gs, &hb, on_reply, &r);
  wait_got(f, &r);
  assert_int_equal(r.err, 0);
  assert_int_equal(describe(f, "s", "g").n_members, 1);
  rn_group_heartbeat_req_t ha = {.stream = "s", .group = "g", .member_id = a.member_id, .member_epoch = a.epoch};
  memset(&r, 0, sizeof r);
  rn_groups_heartbeat(f->gs, &ha, on_reply, &r);
  wait_got(f, &r);
  assert_int_equal(r.err, RN_EUNKNOWNMEMBER);
}

/* A commit answered is durable: the machine goes down right after the
 * answer (every later write fails, core closes with errors), the crash
 * drops whatever was not synced, and the checkpoint is still there. The
 * snapshot and log go through core's rn_fs, or the simulator would not see
 * them at all. */
static void test_answered_commit_survives_a_crash(void **state) {
  fx_t *f = *state;
  close_all(f);
  f->cfs = crashfs_new(11);
  open_all(f);
  create_stream(f, "s", 2);
  produce(f, "s", 0, 3);
  create_group(f, "s", "g", RN_GROUP_POS_EARLIEST);
  got_t j = join(f, "a", 10000);
  rn_group_checkpoint_t cp = {.shard = 0, .offset = 2};
  rn_group_commit_req_t c = {.stream = "s", .group = "g", .member_id = j.member_id, .member_epoch = j.epoch,
                             .checkpoints = &cp, .n_checkpoints = 1};
  got_t cr = {0};
  rn_groups_commit(f->gs, &c, on_reply, &cr);
  wait_got(f, &cr);
  assert_int_equal(cr.result_err[0], 0);

  crashfs_arm(f->cfs, 1);
  (void)rn_core_close(f->ct.core); /* fails: the disk is gone */
  uv_run(&f->ct.loop, UV_RUN_NOWAIT);
  f->ct.core = NULL;
  crashfs_crash(f->cfs);
  open_all(f);
  got_t d = describe(f, "s", "g");
  assert_int_equal(d.err, 0);
  assert_int_equal(d.shards[0].checkpoint, 2);
  assert_true(d.shards[0].has_checkpoint);
  close_all(f);
  crashfs_free(f->cfs);
  f->cfs = NULL;
}

static void test_close_detaches_from_core(void **state) {
  fx_t *f = *state;
  create_stream(f, "s", 1);
  create_group(f, "s", "g", RN_GROUP_POS_LATEST);
  /* rn_core_close frees the groups through the listener (ASan: no leak,
   * no use after free of the slots); teardown closes. */
  assert_ptr_equal(rn_groups_of(f->ct.core), f->gs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_stream_deletion_drops_groups, setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_per_shard_state_survives_restart, setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_sessions_run_on_the_injected_clock, setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_answered_commit_survives_a_crash, setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_close_detaches_from_core, setup, ct_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
