/*
 * test_log_roll.c — segment rolls off the owner thread (storage/log.c,
 * "roll"): the new segment's files are opened on an rn_io worker and the
 * appends made into it wait behind that open.
 *
 * Built with its own armed copy of the blocking check (RN_BLOCKING_CHECK,
 * base/blocking.c; see tests/CMakeLists.txt), so a roll that blocks a
 * marked thread aborts this test whatever the build's option says.
 *
 *   - rolls on a marked "loop" thread, in every durability mode and on both
 *     I/O backends (a real directory for io_uring), waiting the way an event
 *     loop does (poll() on rn_io_fd, then rn_io_poll);
 *   - a roll whose open is held on the worker: appends queue behind it,
 *     nothing of the new segment is written, the segment before is not
 *     sealed, and everything lands in order once the open completes;
 *   - a write that fails for want of space while a roll is pending: the undo
 *     waits for the open, then drops the new segment, and the log writes
 *     again once space is back;
 *   - a crash (crash simulator) at every point of a workload with many
 *     rolls: recovery finds exactly a prefix holding every acknowledged
 *     batch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crashfs.h"
#include "logtest.h"
#include "testutil.h"

#ifndef RN_BLOCKING_CHECK
#error "test_log_roll must be built with RN_BLOCKING_CHECK (see tests/CMakeLists.txt)"
#endif

#define DIR "/data/shard"

/* ---- a file system whose open() can be held ------------------------------------
 * Wraps another rn_fs_t; every call is forwarded. While the gate is shut,
 * open() (which only a roll issues once the log is open) waits on a worker.
 * Its namespace operations make the blocking check, as rn_fs_posix() does
 * (the crash simulator itself does not). */
typedef struct gatefs {
  rn_fs_t fs; /* first: the rn_fs_t * handed out is the gatefs */
  rn_fs_t *inner;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool shut;
  int waiting; /* opens held at the gate */
} gatefs_t;

static gatefs_t *gate_of(rn_fs_t *fs) { return (gatefs_t *)fs; }

static rn_err_t g_open(rn_fs_t *fs, const char *path, int flags, rn_file_t **out) {
  rn_assert_may_block("open");
  gatefs_t *g = gate_of(fs);
  pthread_mutex_lock(&g->mu);
  g->waiting++;
  pthread_cond_broadcast(&g->cv);
  while (g->shut) pthread_cond_wait(&g->cv, &g->mu);
  g->waiting--;
  pthread_mutex_unlock(&g->mu);
  return g->inner->open(g->inner, path, flags, out);
}
static rn_err_t g_rename(rn_fs_t *fs, const char *a, const char *b) {
  rn_assert_may_block("rename");
  return gate_of(fs)->inner->rename(gate_of(fs)->inner, a, b);
}
static rn_err_t g_unlink(rn_fs_t *fs, const char *p) {
  rn_assert_may_block("unlink");
  return gate_of(fs)->inner->unlink(gate_of(fs)->inner, p);
}
static rn_err_t g_mkdirs(rn_fs_t *fs, const char *p) {
  rn_assert_may_block("mkdir");
  return gate_of(fs)->inner->mkdirs(gate_of(fs)->inner, p);
}
static rn_err_t g_sync_dir(rn_fs_t *fs, const char *p) {
  rn_assert_may_block("fsync (directory)");
  return gate_of(fs)->inner->sync_dir(gate_of(fs)->inner, p);
}
static rn_err_t g_list(rn_fs_t *fs, const char *p, rn_fs_list_cb cb, void *arg) {
  rn_assert_may_block("readdir");
  return gate_of(fs)->inner->list(gate_of(fs)->inner, p, cb, arg);
}

static void gate_init(gatefs_t *g, rn_fs_t *inner) {
  memset(g, 0, sizeof(*g));
  g->fs = *inner; /* file operations go to the inner file's own fs */
  g->fs.name = "gatefs";
  g->fs.open = g_open;
  g->fs.rename = g_rename;
  g->fs.unlink = g_unlink;
  g->fs.mkdirs = g_mkdirs;
  g->fs.sync_dir = g_sync_dir;
  g->fs.list = g_list;
  g->inner = inner;
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
}

static void gate_set(gatefs_t *g, bool shut) {
  pthread_mutex_lock(&g->mu);
  g->shut = shut;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

/* Wait until an open is held at the gate (a condition, not a sleep). */
static void gate_wait_held(gatefs_t *g) {
  pthread_mutex_lock(&g->mu);
  while (g->waiting == 0) pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

static void gate_destroy(gatefs_t *g) {
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
}

/* ---- fixture ---------------------------------------------------------------------- */

typedef struct fx {
  crashfs_t *cfs;
  gatefs_t gate;
  rn_io_t *io;
  rn_log_opts_t opts;
  lt_sent_t sent; /* the appends made, in order */
} fx_t;

static rn_io_t *io_on(rn_fs_t *fs, rn_io_backend_t backend) {
  rn_io_opts_t o;
  rn_io_opts_default(&o);
  o.backend = backend;
  o.fs = fs;
  rn_io_t *io = NULL;
  assert_int_equal(rn_io_new(&o, &io), 0);
  return io;
}

static void fx_init(fx_t *f, uint64_t seed) {
  memset(f, 0, sizeof(*f));
  f->cfs = crashfs_new(seed);
  gate_init(&f->gate, crashfs_fs(f->cfs));
  f->io = io_on(&f->gate.fs, RN_IO_POSIX);
  rn_log_opts_default(&f->opts);
  f->opts.segment_bytes = 4096;
}

static void fx_free(fx_t *f) {
  rn_io_destroy(f->io);
  gate_destroy(&f->gate);
  crashfs_free(f->cfs);
}

/* What an event loop does: wait for rn_io_fd to be readable, run the
 * completions. Never blocks in storage code (the check is armed). */
static void loop_until_idle(rn_io_t *io, rn_log_t *log) {
  while (rn_log_inflight(log)) {
    struct pollfd p = {.fd = rn_io_fd(io), .events = POLLIN};
    assert_true(poll(&p, 1, -1) >= 0);
    rn_io_poll(io);
  }
}

/* ---- rolls on a marked loop thread ------------------------------------------------ */

static const rn_durability_t modes[] = {RN_DURABILITY_SYNC, RN_DURABILITY_INTERVAL, RN_DURABILITY_NONE};

/* Many rolls with the thread marked as a loop thread: none of them blocks
 * (the armed check would abort), every append is acknowledged, and the
 * records read back (unmarked) and survive a reopen. */
static void rolls_on_marked_thread(rn_io_t *io, const char *dir, rn_durability_t mode) {
  fx_t *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  rn_log_opts_default(&f->opts);
  f->opts.segment_bytes = 4096;
  f->opts.durability = mode;
  f->opts.interval_ms = 1;
  f->opts.retention_ms = -1; /* the far-future ticks below must not delete */
  f->opts.retention_bytes = -1;
  rn_log_t *log = lt_open(io, dir, &f->opts);
  uint32_t segs0 = rn_log_segment_count(log);

  rn_thread_mark_loop();
  uint64_t tag = 1;
  for (int round = 0; round < 12; round++) {
    /* A burst: several appends queue behind the roll that one of them starts. */
    for (int k = 0; k < 8; k++) assert_int_equal(lt_submit(&f->sent, log, tag++, 3, 120), 0);
    loop_until_idle(io, log);
    if (mode != RN_DURABILITY_SYNC) rn_log_tick(log, INT64_MAX / 2); /* the interval sync */
    loop_until_idle(io, log);
  }
  for (size_t i = 0; i < f->sent.n; i++) {
    assert_true(f->sent.ack[i].done);
    assert_int_equal(f->sent.ack[i].err, 0);
  }
  rn_thread_unmark_loop();

  assert_true(rn_log_segment_count(log) >= segs0 + 8);
  lt_expect_exactly_acked(&f->sent, log);
  char msg[256];
  assert_int_equal(rn_log_verify(log, msg, sizeof msg), 0);
  assert_int_equal(rn_log_close(log), 0);
  log = lt_open(io, dir, &f->opts);
  lt_expect_exactly_acked(&f->sent, log);
  assert_int_equal(rn_log_close(log), 0);
  free(f);
}

static void test_rolls_on_marked_thread_crashfs(void **state) {
  (void)state;
  for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
    crashfs_t *cfs = crashfs_new(7 + m);
    gatefs_t g; /* never shut: only for its checking namespace operations */
    gate_init(&g, crashfs_fs(cfs));
    rn_io_t *io = io_on(&g.fs, RN_IO_POSIX);
    rolls_on_marked_thread(io, DIR, modes[m]);
    rn_io_destroy(io);
    gate_destroy(&g);
    crashfs_free(cfs);
  }
}

/* The same on the real file system, through RN_IO_AUTO (io_uring where
 * the kernel allows it; RUNNEL_IO_BACKEND picks one). */
static void test_rolls_on_marked_thread_real_fs(void **state) {
  (void)state;
  for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
    char *dir = rn_test_tmpdir();
    rn_io_t *io = io_on(rn_fs_posix(), RN_IO_AUTO);
    rolls_on_marked_thread(io, dir, modes[m]);
    rn_io_destroy(io);
    rn_test_rmtree(dir);
    free(dir);
  }
}

/* ---- a roll held on the worker ---------------------------------------------------- */

/* While the new segment's open is held, the appends made into it are
 * accepted and wait: nothing of them is written or acknowledged, the
 * segment before is not sealed; once the open completes they land in
 * order. Sync mode (the directory-sync descriptor is opened by the roll). */
static void held_roll(rn_err_t open_err) {
  fx_t *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  fx_init(f, 11);
  rn_log_t *log = lt_open(f->io, DIR, &f->opts);
  uint64_t tag = 1, seg2_base = 0;
  while (rn_log_segment_count(log) == 1) {
    seg2_base = rn_log_next_offset(log);
    assert_int_equal(lt_submit(&f->sent, log, tag++, 4, 200), 0);
    lt_drain(f->io);
  }
  lt_drain(f->io);
  /* Fill segment 2 until an append starts the next roll, with the gate shut. */
  gate_set(&f->gate, true);
  uint64_t end0;
  for (;;) {
    end0 = rn_log_end(log);
    assert_int_equal(lt_submit(&f->sent, log, tag++, 4, 200), 0);
    if (rn_log_segment_count(log) == 3) break;
    lt_wait(f->io, &f->sent.ack[f->sent.n - 1]);
    assert_int_equal(f->sent.ack[f->sent.n - 1].err, 0);
  }
  gate_wait_held(&f->gate);
  size_t first_queued = f->sent.n - 1;
  for (int k = 0; k < 6; k++) assert_int_equal(lt_submit(&f->sent, log, tag++, 4, 200), 0);
  /* Everything but the held open completes; the queued appends cannot. */
  while (rn_log_inflight(log) > 1) rn_io_wait(f->io, -1);
  assert_int_equal(rn_log_end(log), end0);
  assert_int_equal(rn_log_next_offset(log) > end0, 1);
  for (size_t i = 0; i < f->sent.n; i++) assert_int_equal(f->sent.ack[i].done, i < first_queued);
  /* Segment 2 (before the pending roll) is not sealed: no index file. */
  char path[128];
  snprintf(path, sizeof path, "%s/%020" PRIu64 ".index", DIR, seg2_base);
  uint8_t *data = NULL;
  size_t len = 0;
  assert_int_equal(crashfs_read_file(f->cfs, path, &data, &len), RN_ENOENT);
  rn_log_health_t h;
  rn_log_health(log, &h);
  assert_int_equal(h.state, RN_LOG_HEALTHY);

  if (open_err) crashfs_fail_open(f->cfs, open_err);
  gate_set(&f->gate, false);
  lt_drain(f->io);
  if (open_err) {
    /* Exactly the queued appends fail, retriably; their offsets are reused
     * and segment 2 is the active one again. */
    for (size_t i = 0; i < f->sent.n; i++) {
      assert_true(f->sent.ack[i].done);
      assert_int_equal(f->sent.ack[i].err, i < first_queued ? 0 : open_err);
    }
    assert_int_equal(rn_log_segment_count(log), 2);
    assert_int_equal(rn_log_next_offset(log), end0);
    rn_log_health(log, &h);
    assert_int_equal(h.state, RN_LOG_DEGRADED);
    assert_int_equal(h.err, open_err);
    assert_int_equal(crashfs_read_file(f->cfs, path, &data, &len), RN_ENOENT); /* not sealed */
    crashfs_fail_open(f->cfs, 0);
    size_t retry = f->sent.n;
    assert_int_equal(lt_submit(&f->sent, log, tag++, 4, 200), 0); /* rolls again */
    lt_drain(f->io);
    assert_int_equal(f->sent.ack[retry].err, 0);
    rn_log_health(log, &h);
    assert_int_equal(h.state, RN_LOG_HEALTHY);
  } else {
    for (size_t i = 0; i < f->sent.n; i++) {
      assert_true(f->sent.ack[i].done);
      assert_int_equal(f->sent.ack[i].err, 0);
    }
  }
  assert_int_equal(rn_log_segment_count(log), 3);
  /* Once the open completed the segment before it was sealed. */
  assert_int_equal(crashfs_read_file(f->cfs, path, &data, &len), 0);
  free(data);
  lt_expect_exactly_acked(&f->sent, log);
  assert_int_equal(rn_log_close(log), 0);
  log = lt_open(f->io, DIR, &f->opts);
  lt_expect_exactly_acked(&f->sent, log);
  assert_int_equal(rn_log_close(log), 0);
  fx_free(f);
  free(f);
}

static void test_appends_queue_behind_held_roll(void **state) {
  (void)state;
  held_roll(0);
}

/* The held open then fails for want of descriptors (EMFILE, ENFILE) or
 * space (a .log created, the directory-sync handle not): exactly the
 * appends queued behind it fail with that retriable error, the log stays
 * healthy (degraded) and rolls at the next append. */
static void test_held_roll_fails(void **state) {
  (void)state;
  held_roll(RN_EMFILE);
  held_roll(RN_ENFILE);
}

/* A write of the old segment fails for want of space while the roll's open
 * is held: the undo waits for the open (appends are refused meanwhile),
 * then cuts the old segment back, deletes the new one and fails exactly
 * the unwritten appends; with space back the log rolls and writes again. */
static void enospc_while_roll_pending(rn_err_t open_err) {
  fx_t *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  fx_init(f, 12);
  f->opts.durability = RN_DURABILITY_NONE;
  rn_log_t *log = lt_open(f->io, DIR, &f->opts);
  size_t L;
  free(lt_batch(1, 4, 200, 1000, RN_CODEC_NONE, &L));
  uint64_t tag = 1;
  /* Stop one batch short of the roll. */
  while (rn_log_size_bytes(log) + 2 * L <= f->opts.segment_bytes) {
    assert_int_equal(lt_submit(&f->sent, log, tag++, 4, 200), 0);
    lt_wait(f->io, &f->sent.ack[f->sent.n - 1]);
  }
  lt_drain(f->io);
  size_t good = f->sent.n;
  gate_set(&f->gate, true);
  crashfs_set_space(f->cfs, crashfs_used(f->cfs)); /* the next write fails */
  assert_int_equal(lt_submit(&f->sent, log, tag++, 4, 200), 0); /* segment 1, its write fails */
  assert_int_equal(lt_submit(&f->sent, log, tag++, 4, 200), 0); /* starts the roll */
  assert_int_equal(rn_log_segment_count(log), 2);
  gate_wait_held(&f->gate);
  /* Only the held open is left once the failed write came back. */
  while (rn_log_inflight(log) > 1) rn_io_wait(f->io, -1);
  assert_int_equal(lt_submit(&f->sent, log, tag++, 4, 200), RN_ENOSPC); /* being undone */
  assert_false(f->sent.ack[good].done);
  crashfs_set_space(f->cfs, UINT64_MAX);
  if (open_err) crashfs_fail_open(f->cfs, open_err);
  gate_set(&f->gate, false);
  lt_drain(f->io);
  crashfs_fail_open(f->cfs, 0);
  for (size_t i = good; i < f->sent.n; i++) {
    assert_true(f->sent.ack[i].done);
    assert_int_equal(f->sent.ack[i].err, RN_ENOSPC);
  }
  assert_int_equal(rn_log_segment_count(log), 1);
  assert_int_equal(rn_log_next_offset(log), rn_log_end(log));
  rn_log_health_t h;
  rn_log_health(log, &h);
  assert_int_equal(h.state, RN_LOG_DEGRADED);
  /* Space is back: the next appends write, roll and are acknowledged. */
  for (int k = 0; k < 4; k++) assert_int_equal(lt_submit(&f->sent, log, tag++, 4, 200), 0);
  lt_drain(f->io);
  for (size_t i = f->sent.n - 4; i < f->sent.n; i++) assert_int_equal(f->sent.ack[i].err, 0);
  assert_int_equal(rn_log_segment_count(log), 2);
  rn_log_health(log, &h);
  assert_int_equal(h.state, RN_LOG_HEALTHY);
  lt_expect_exactly_acked(&f->sent, log);
  assert_int_equal(rn_log_close(log), 0);
  log = lt_open(f->io, DIR, &f->opts);
  lt_expect_exactly_acked(&f->sent, log);
  assert_int_equal(rn_log_close(log), 0);
  fx_free(f);
  free(f);
}

static void test_enospc_while_roll_pending(void **state) {
  (void)state;
  enospc_while_roll_pending(0);
}

/* ...and the held open fails too: the undo still fails every unwritten
 * append with RN_ENOSPC, in offset order, and drops the new segment. */
static void test_enospc_while_failing_roll_pending(void **state) {
  (void)state;
  enospc_while_roll_pending(RN_EMFILE);
}

/* ---- crashes across rolls --------------------------------------------------------- */

/* A workload with a roll every few appends, in sync mode, crashed at its
 * n-th file operation for every n until it runs through: recovery keeps a
 * prefix of the appends, record by record, holding every acknowledged
 * batch. (kill -9 keeps more than a crash; this is the stricter case.) */
static void test_crash_across_rolls_exact_prefix(void **state) {
  (void)state;
  for (uint64_t crash_at = 1;; crash_at++) {
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    fx_init(f, 1000 + crash_at);
    rn_log_t *log = lt_open(f->io, DIR, &f->opts);
    uint64_t ops0 = crashfs_ops(f->cfs);
    crashfs_arm(f->cfs, crash_at);
    for (uint64_t t = 1; t <= 40; t++) {
      if (lt_submit(&f->sent, log, t, 3, 150) != 0) break;
      if (t % 3 == 0) lt_drain(f->io);
    }
    lt_drain(f->io);
    bool hit = crashfs_is_down(f->cfs);
    uint64_t ops = crashfs_ops(f->cfs) - ops0;
    crashfs_crash(f->cfs);
    rn_log_close_discard(log);
    rn_io_destroy(f->io);
    f->io = io_on(&f->gate.fs, RN_IO_POSIX);
    log = lt_open(f->io, DIR, &f->opts);
    size_t i = lt_expect_prefix(&f->sent, log);
    for (size_t k = 0; k < f->sent.n; k++)
      if (f->sent.ack[k].done && f->sent.ack[k].err == 0) assert_true(k < i);
    char msg[256];
    assert_int_equal(rn_log_verify(log, msg, sizeof msg), 0);
    assert_int_equal(rn_log_close(log), 0);
    fx_free(f);
    free(f);
    if (!hit) break; /* the crash point lay past the whole workload */
    assert_true(ops < 1000);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rolls_on_marked_thread_crashfs),
      cmocka_unit_test(test_rolls_on_marked_thread_real_fs),
      cmocka_unit_test(test_appends_queue_behind_held_roll),
      cmocka_unit_test(test_held_roll_fails),
      cmocka_unit_test(test_enospc_while_roll_pending),
      cmocka_unit_test(test_enospc_while_failing_roll_pending),
      cmocka_unit_test(test_crash_across_rolls_exact_prefix),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
