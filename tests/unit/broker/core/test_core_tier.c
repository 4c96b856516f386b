/*
 * test_core_tier.c — core's side of tiered storage (broker/core/tier.c),
 * with a local-directory store wrapped in the fault injector:
 *
 *   - a tiered stream needs a store (RN_EINVAL without one), is described
 *     with its local retention, and stays tiered across a reopen (the
 *     metadata persists it); a data directory with a tiered stream refuses
 *     to open without its store, saying why;
 *   - back-pressure: with the store down, sealed segments pile up as upload
 *     backlog; once the data disk is above tier_disk_high_water (1% here,
 *     below any real disk's use) produce to the tiered stream answers
 *     RN_EBACKLOG (retriable) while an untiered stream is unaffected; with
 *     the store back the backlog drains and produce is accepted again.
 *
 * The loop runs until each condition holds (bounded by a deadline that only
 * ends a run whose condition never comes); nothing asserts durations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glob.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <time.h>

#include <cmocka.h>

#include "coretest.h"

#define DEADLINE_MS 60000

typedef struct fx {
  ct_t t; /* first: ct_teardown frees the fixture */
  char store_dir[600];
  rn_objstore_t *store; /* faulty(localdir); outlives core */
} fx_t;

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  ct_init(&f->t);
  snprintf(f->store_dir, sizeof f->store_dir, "%s/store", f->t.dir);
  rn_objstore_t *inner;
  char why[256];
  assert_int_equal(rn_localdir_new(f->store_dir, &inner, why, sizeof why), 0);
  rn_faulty_opts_t fo = {0};
  assert_int_equal(rn_faulty_new(inner, &fo, &f->store), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  if (f->t.core) ct_close(&f->t);
  rn_objstore_destroy(f->store);
  return ct_teardown(state);
}

/* Core's options for these tests: 64 KiB segments, the fixture's store. */
static void tiered_opts(fx_t *f, rn_core_opts_t *o) {
  ct_opts(&f->t, o);
  o->segment_bytes = 64 << 10;
  o->tier.store = f->store;
}

static void open_tiered(fx_t *f, uint32_t high_water) {
  rn_core_opts_t o;
  tiered_opts(f, &o);
  o.tier.disk_high_water = high_water;
  ct_open_opts(&f->t, &o);
}

typedef struct createw {
  bool done;
  rn_err_t err;
  char msg[512];
  bool tiered;
  int64_t local_ms;
} createw_t;

static void on_created(void *ctx, const rn_core_create_result_t *r) {
  createw_t *w = ctx;
  w->done = true;
  w->err = r->err;
  if (r->err) {
    snprintf(w->msg, sizeof w->msg, "%s", r->msg);
    return;
  }
  w->tiered = r->stream->tiered;
  w->local_ms = r->stream->local_retention_ms;
}

static rn_err_t create_tiered(ct_t *t, const char *name, createw_t *w) {
  memset(w, 0, sizeof(*w));
  rn_core_create_req_t req = {.name = name,
                              .shard_count = 1,
                              .retention_ms = -1,
                              .tiering = RN_CORE_TIERING_ON,
                              .local_retention_ms = 1000};
  rn_core_create_stream(t->core, &req, on_created, w);
  ct_run_until(t, &w->done);
  return w->err;
}

typedef struct descw {
  bool done;
  rn_err_t err;
  bool tiered;
  int64_t local_ms, local_bytes;
} descw_t;

static void on_described(void *ctx, const rn_core_describe_result_t *r) {
  descw_t *w = ctx;
  w->done = true;
  w->err = r->err;
  if (r->err) return;
  w->tiered = r->stream->tiered;
  w->local_ms = r->stream->local_retention_ms;
  w->local_bytes = r->stream->local_retention_bytes;
}

static void describe(ct_t *t, const char *name, descw_t *w) {
  memset(w, 0, sizeof(*w));
  rn_core_describe_req_t req = {.name = name};
  rn_core_describe_stream(t->core, &req, on_described, w);
  ct_run_until(t, &w->done);
}

/* Run the loop until pred(core) holds (at least one iteration). */
static void run_until_status(fx_t *f, bool (*pred)(const rn_core_tier_status_t *), const char *what) {
  uint64_t deadline = mono_ms() + DEADLINE_MS;
  for (;;) {
    rn_core_tier_status_t ts;
    rn_core_tier_status(f->t.core, &ts);
    if (pred(&ts)) return;
    if (mono_ms() > deadline)
      fail_msg("%s never came: backlog %llu bytes in %u segments, disk %u%% (high water %u%%), back-pressure %d", what,
               (unsigned long long)ts.backlog_bytes, ts.backlog_segments, ts.disk_used_percent, ts.disk_high_water,
               ts.backpressure);
    uv_run(&f->t.loop, UV_RUN_ONCE); /* the 100 ms tick wakes it */
  }
}

static bool backlogged(const rn_core_tier_status_t *ts) { return ts->backlog_segments > 0; }
static bool refusing(const rn_core_tier_status_t *ts) { return ts->backpressure; }
static bool drained(const rn_core_tier_status_t *ts) { return !ts->backpressure && ts->backlog_bytes == 0; }

static void test_needs_a_store(void **state) {
  fx_t *f = *state;
  ct_open(&f->t);
  createw_t w;
  assert_int_equal(create_tiered(&f->t, "t", &w), RN_EINVAL);
  assert_non_null(strstr(w.msg, "tiering needs s3_bucket or tier_dir"));
  rn_core_tier_status_t ts;
  rn_core_tier_status(f->t.core, &ts);
  assert_false(ts.enabled);
  ct_close(&f->t);
}

static void test_persisted_and_refused_without_store(void **state) {
  fx_t *f = *state;
  open_tiered(f, 90);
  createw_t w;
  assert_int_equal(create_tiered(&f->t, "t", &w), 0);
  assert_true(w.tiered);
  assert_int_equal(w.local_ms, 1000);
  ct_close(&f->t);
  open_tiered(f, 90);
  descw_t d;
  describe(&f->t, "t", &d);
  assert_int_equal(d.err, 0);
  assert_true(d.tiered);
  assert_int_equal(d.local_ms, 1000);
  assert_int_equal(d.local_bytes, -1);
  ct_close(&f->t);
  /* Without its store the broker refuses to run the tiered stream (its
   * retention would be off and its disk fill) and says why. */
  rn_core_opts_t o;
  ct_opts(&f->t, &o);
  char why[512] = "";
  assert_int_equal(rn_core_open(&o, &f->t.core, why, sizeof why), RN_EINVAL);
  assert_null(f->t.core);
  assert_non_null(strstr(why, "tiered but this broker has no store"));
}

static void test_backpressure(void **state) {
  fx_t *f = *state;
  struct statvfs sv;
  assert_int_equal(statvfs(f->t.dir, &sv), 0);
  if (sv.f_blocks == 0 || (sv.f_blocks - sv.f_bfree) * 100 / sv.f_blocks < 2)
    skip(); /* a disk under 2% used cannot be above a 1% high-water mark */
  open_tiered(f, 1);
  createw_t w;
  assert_int_equal(create_tiered(&f->t, "t", &w), 0);
  assert_int_equal(ct_create(&f->t, "plain", 1), 0);
  rn_faulty_opts_t down = {.down = true};
  rn_faulty_set(f->store, &down);
  /* Enough to seal segments (64 KiB each) that cannot be uploaded. */
  for (int i = 0; i < 40; i++) {
    rn_err_t err = ct_produce(&f->t, "t", 0, 400, 1000000 + i * 400, NULL);
    if (err == RN_EBACKLOG) break; /* already refusing */
    assert_int_equal(err, 0);
  }
  run_until_status(f, backlogged, "an upload backlog");
  run_until_status(f, refusing, "back-pressure");
  assert_int_equal(ct_produce(&f->t, "t", 0, 1, 2000000, NULL), RN_EBACKLOG);
  assert_true(rn_err_retriable(RN_EBACKLOG));
  assert_int_equal(ct_produce(&f->t, "plain", 0, 1, 2000000, NULL), 0); /* untiered streams are not held */
  rn_core_tier_status_t ts;
  rn_core_tier_status(f->t.core, &ts);
  assert_int_equal(ts.backpressure_episodes, 1);
  /* The store is back: the backlog drains, produce is accepted again. */
  rn_faulty_opts_t up = {0};
  rn_faulty_set(f->store, &up);
  run_until_status(f, drained, "the backlog drained");
  assert_int_equal(ct_produce(&f->t, "t", 0, 1, 3000000, NULL), 0);
  ct_close(&f->t);
}

/* Open with segments sealed at 1 s of age, create tiered stream "t" and
 * produce one record into it; *o: the options used (to open again). */
static void open_one_record(fx_t *f, rn_core_opts_t *o) {
  tiered_opts(f, o);
  o->tier.segment_max_age_ms = 1000;
  ct_open_opts(&f->t, o);
  createw_t w;
  assert_int_equal(create_tiered(&f->t, "t", &w), 0);
  assert_int_equal(ct_produce(&f->t, "t", 0, 1, 1000000, NULL), 0);
}

static bool uploaded(const rn_core_tier_status_t *ts) { return ts->stats.bytes_uploaded > 0 && ts->backlog_bytes == 0; }

/* tier_segment_max_age: one small record, far below segment_bytes, still
 * reaches the store once its segment is that old (1 s here), so a lost disk
 * takes at most that much. Without it the segment would stay active, and
 * local only, until 64 KiB arrived: the wait would end in the deadline. */
static void test_segment_max_age(void **state) {
  fx_t *f = *state;
  rn_core_opts_t o;
  open_one_record(f, &o);
  run_until_status(f, uploaded, "the young segment sealed and uploaded");
  rn_core_tier_status_t ts;
  rn_core_tier_status(f->t.core, &ts);
  assert_true(ts.stats.bytes_uploaded < (64u << 10)); /* sealed by age, not by size */
  ct_close(&f->t);
}

/* Run the loop until the core is idle after rn_core_drain (bounded). */
static void drain_until_idle(fx_t *f) {
  rn_core_drain(f->t.core);
  uint64_t deadline = mono_ms() + DEADLINE_MS;
  while (!rn_core_idle(f->t.core)) {
    if (mono_ms() > deadline) fail_msg("the core never became idle after rn_core_drain");
    uv_run(&f->t.loop, UV_RUN_ONCE);
  }
}

/* A graceful stop mirrors what changed and then ends, with the store up
 * and with it down: a shard reopened after its segments went up has its
 * mirror to refresh (the bucket may lag a crash). With the store down that
 * mirror fails once and is not retried while draining, so the core still
 * becomes idle; with it up the mirror is written before it does. */
static void test_drain_mirrors_and_ends(void **state) {
  fx_t *f = *state;
  rn_core_opts_t o;
  open_one_record(f, &o);
  run_until_status(f, uploaded, "the segment uploaded");
  ct_close(&f->t);

  rn_faulty_opts_t down = {.down = true};
  rn_faulty_set(f->store, &down);
  rn_objstore_stats_t a, b;
  rn_objstore_stats(f->store, &a);
  ct_open_opts(&f->t, &o);
  drain_until_idle(f); /* ends although the mirror cannot be written */
  rn_objstore_stats(f->store, &b);
  assert_true(b.errors[RN_OBJ_PUT] > a.errors[RN_OBJ_PUT]); /* it was tried, once */
  ct_close(&f->t);

  /* The mirror taken away from the bucket: the drain writes it again
   * before the core is idle. */
  char pat[700];
  snprintf(pat, sizeof pat, "%s/*/local/t-*/0/manifest", f->store_dir);
  glob_t g;
  assert_int_equal(glob(pat, 0, NULL, &g), 0);
  assert_int_equal(g.gl_pathc, 1);
  char mirror[1024];
  snprintf(mirror, sizeof mirror, "%s", g.gl_pathv[0]);
  globfree(&g);
  assert_int_equal(unlink(mirror), 0);
  rn_faulty_opts_t up = {0};
  rn_faulty_set(f->store, &up);
  ct_open_opts(&f->t, &o);
  drain_until_idle(f);
  struct stat st;
  assert_int_equal(stat(mirror, &st), 0);
  assert_true(st.st_size > 0);
  ct_close(&f->t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_needs_a_store, setup, teardown),
      cmocka_unit_test_setup_teardown(test_persisted_and_refused_without_store, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_segment_max_age, setup, teardown),
      cmocka_unit_test_setup_teardown(test_drain_mirrors_and_ends, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
