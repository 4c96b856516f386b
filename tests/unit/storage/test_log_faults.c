/*
 * test_log_faults.c — the log under transient faults injected by the crash
 * simulator (tests/support/crashfs.h): no file descriptor for a new segment
 * (EMFILE at roll), a disk that fills in the middle of a write (a short
 * write, then ENOSPC), a seal that cannot write its index files. In every
 * case the log must stay healthy (DEGRADED, never FAILED), fail exactly the
 * appends it could not store with a retriable error, serve nothing torn,
 * write again by itself once the cause is gone, and — after a crash at any
 * point — recover exactly a prefix that holds every acknowledged batch and
 * no batch it reported as failed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crashfs.h"
#include "logtest.h"
#include "testutil.h"

#define DIR "/data/shard"

typedef struct fx {
  crashfs_t *cfs;
  rn_io_t *io;
  rn_log_opts_t opts;
  int64_t now;
  lt_sent_t sent; /* what each append became, in submission order */
} fx_t;

static void quiet(void *arg, rn_level_t level, const char *msg) {
  (void)arg;
  (void)level;
  (void)msg;
}

static int64_t fx_clock(void *arg) { return ((fx_t *)arg)->now; }

static rn_io_t *new_io(fx_t *f) {
  rn_io_opts_t o;
  rn_io_opts_default(&o);
  o.backend = RN_IO_POSIX;
  o.fs = crashfs_fs(f->cfs);
  rn_io_t *io = NULL;
  assert_int_equal(rn_io_new(&o, &io), 0);
  return io;
}

static void fx_init(fx_t *f, uint64_t seed) {
  memset(f, 0, sizeof(*f));
  f->cfs = crashfs_new(seed);
  f->io = new_io(f);
  f->now = 1700000000000;
  rn_log_opts_default(&f->opts);
  f->opts.logger.fn = quiet;
  f->opts.clock.wall_ms = fx_clock;
  f->opts.clock.arg = f;
}

static void fx_free(fx_t *f) {
  rn_io_destroy(f->io);
  crashfs_free(f->cfs);
}

static rn_log_t *open_log(fx_t *f) { return lt_open(f->io, DIR, &f->opts); }

static void wait_all(fx_t *f) {
  for (size_t i = 0; i < f->sent.n; i++) lt_wait(f->io, &f->sent.ack[i]);
}

static void expect_health(rn_log_t *log, rn_log_state_t state, rn_err_t err) {
  rn_log_health_t h;
  rn_log_health(log, &h);
  assert_int_equal(h.state, state);
  assert_int_equal(h.err, err);
  assert_int_equal(rn_log_failure(log), 0);
}

/* ---- EMFILE at roll ---------------------------------------------------------- */

/* With no descriptor for the new segment, the append that needs the roll
 * fails with a retriable RN_EMFILE (through its callback: the roll's open
 * runs on a worker); the log stays healthy (degraded), and the first append
 * after descriptors come back rolls and is stored. Before, the roll failure
 * failed the log for good (RN_ELOGFAILED until restart). */
static rn_err_t submit_wait(fx_t *f, rn_log_t *log, uint64_t tag, int n, size_t vlen) {
  assert_int_equal(lt_submit(&f->sent, log, tag, n, vlen), 0);
  wait_all(f);
  return f->sent.ack[f->sent.n - 1].err;
}

static void test_roll_emfile_is_transient(void **state) {
  (void)state;
  fx_t f;
  fx_init(&f, 1);
  f.opts.segment_bytes = 4096;
  rn_log_t *log = open_log(&f);
  uint64_t tag = 1;
  while (rn_log_segment_count(log) == 1) assert_int_equal(submit_wait(&f, log, tag++, 4, 200), 0);
  lt_drain(f.io);
  /* Fill the second segment up to the point where the next append rolls. */
  crashfs_fail_open(f.cfs, -EMFILE);
  rn_err_t err;
  while ((err = submit_wait(&f, log, tag++, 4, 200)) == 0) {
  }
  assert_int_equal(err, RN_EMFILE);
  assert_true(rn_err_retriable(err));
  expect_health(log, RN_LOG_DEGRADED, RN_EMFILE);
  assert_int_equal(rn_log_segment_count(log), 2);
  assert_int_equal(rn_log_next_offset(log), rn_log_end(log)); /* the offsets are reused */
  /* Still refused, still healthy; nothing stored is disturbed. */
  assert_int_equal(submit_wait(&f, log, tag++, 4, 200), RN_EMFILE);
  assert_int_equal(rn_log_segment_count(log), 2);
  lt_expect_exactly_acked(&f.sent, log);

  crashfs_fail_open(f.cfs, -ENFILE);
  assert_int_equal(submit_wait(&f, log, tag++, 4, 200), RN_ENFILE);
  crashfs_fail_open(f.cfs, 0);
  assert_int_equal(submit_wait(&f, log, tag++, 4, 200), 0);
  assert_int_equal(rn_log_segment_count(log), 3);
  expect_health(log, RN_LOG_HEALTHY, 0);
  lt_expect_exactly_acked(&f.sent, log);
  assert_int_equal(rn_log_close(log), 0);

  log = open_log(&f);
  lt_expect_exactly_acked(&f.sent, log);
  assert_int_equal(rn_log_close(log), 0);
  fx_free(&f);
}

/* A roll by age (rn_log_tick) that cannot open the new segment leaves the
 * log degraded, not failed, once the open has come back; the next tick
 * rolls. */
static void test_roll_by_age_emfile(void **state) {
  (void)state;
  fx_t f;
  fx_init(&f, 2);
  f.opts.segment_ms = 1000;
  rn_log_t *log = open_log(&f);
  assert_int_equal(lt_submit(&f.sent, log, 1, 3, 50), 0);
  wait_all(&f);
  f.now += 2000;
  crashfs_fail_open(f.cfs, -EMFILE);
  rn_log_tick(log, f.now);
  lt_drain(f.io);
  expect_health(log, RN_LOG_DEGRADED, RN_EMFILE);
  assert_int_equal(rn_log_segment_count(log), 1);
  crashfs_fail_open(f.cfs, 0);
  rn_log_tick(log, f.now);
  lt_drain(f.io);
  expect_health(log, RN_LOG_HEALTHY, 0);
  assert_int_equal(rn_log_segment_count(log), 2);
  assert_int_equal(lt_submit(&f.sent, log, 2, 3, 50), 0);
  wait_all(&f);
  assert_int_equal(f.sent.ack[1].err, 0);
  lt_expect_exactly_acked(&f.sent, log);
  assert_int_equal(rn_log_close(log), 0);
  fx_free(&f);
}

/* ---- ENOSPC in the middle of a write ----------------------------------------- */

static size_t batch_len(int n, size_t vlen) {
  size_t len;
  free(lt_batch(1, n, vlen, 1000, RN_CODEC_NONE, &len));
  return len;
}

/* Leave room for `room` more bytes of file data. */
static void leave_room(fx_t *f, uint64_t room) { crashfs_set_space(f->cfs, crashfs_used(f->cfs) + room); }

/* Several appends coalesced into one write; the disk fills after part of it
 * (a short write, then ENOSPC). Every append of that write fails with the
 * retriable RN_ENOSPC, the log stays healthy, nothing torn is served, the
 * offsets are reused, and once space is back the log writes again without a
 * reopen. Before, the write failure failed the log for good. */
static void test_enospc_mid_write_then_space_returns(void **state) {
  (void)state;
  fx_t f;
  fx_init(&f, 3);
  rn_log_t *log = open_log(&f);
  assert_int_equal(lt_submit(&f.sent, log, 1, 5, 100), 0);
  assert_int_equal(lt_submit(&f.sent, log, 2, 5, 100), 0);
  wait_all(&f);
  uint64_t end = rn_log_end(log);
  assert_int_equal(end, 10);

  leave_room(&f, 900); /* about one and a half of the batches below */
  assert_int_equal(lt_submit(&f.sent, log, 3, 5, 100), 0);
  assert_int_equal(lt_submit(&f.sent, log, 4, 5, 100), 0);
  assert_int_equal(lt_submit(&f.sent, log, 5, 5, 100), 0);
  wait_all(&f);
  /* The first write carried batch 3 alone (it was submitted at once), the
   * second batches 4 and 5; whichever write met the full disk, it and all
   * after it failed, and with RN_ENOSPC, never ELOGFAILED. */
  size_t failed = 0;
  for (size_t i = 2; i < f.sent.n; i++) {
    if (f.sent.ack[i].err) {
      assert_int_equal(f.sent.ack[i].err, RN_ENOSPC);
      failed++;
    } else {
      assert_int_equal(failed, 0); /* failures are a suffix */
    }
  }
  assert_true(failed >= 2);
  expect_health(log, RN_LOG_DEGRADED, RN_ENOSPC);
  lt_expect_exactly_acked(&f.sent, log);
  assert_int_equal(rn_log_next_offset(log), rn_log_end(log));
  uint64_t resume = rn_log_end(log);

  /* Still full: the next append is tried and fails the same way. */
  assert_int_equal(lt_submit(&f.sent, log, 6, 5, 100), 0);
  wait_all(&f);
  assert_int_equal(f.sent.ack[f.sent.n - 1].err, RN_ENOSPC);
  assert_int_equal(rn_log_failure(log), 0);

  /* Space is back: the next append is stored at the reused offset. */
  crashfs_set_space(f.cfs, UINT64_MAX);
  assert_int_equal(lt_submit(&f.sent, log, 7, 5, 100), 0);
  wait_all(&f);
  assert_int_equal(f.sent.ack[f.sent.n - 1].err, 0);
  assert_int_equal(f.sent.ack[f.sent.n - 1].base, resume);
  expect_health(log, RN_LOG_HEALTHY, 0);
  lt_expect_exactly_acked(&f.sent, log);
  assert_int_equal(rn_log_close(log), 0);

  log = open_log(&f);
  lt_expect_exactly_acked(&f.sent, log);
  assert_int_equal(rn_log_close(log), 0);
  fx_free(&f);
}

/* The failed write's batches sat in a segment the log had just rolled to
 * (the roll happened while the write before it was in flight): undoing the
 * write deletes that segment, and the old one is active again. */
static void test_enospc_undoes_a_roll(void **state) {
  (void)state;
  fx_t f;
  fx_init(&f, 4);
  f.opts.segment_bytes = 4096;
  size_t L = batch_len(4, 200);
  assert_true(5 * L > 4096 && 4 * L <= 4096);
  rn_log_t *log = open_log(&f);
  /* Two batches in segment 1: two more fit (A, B), the one after (C) rolls. */
  assert_int_equal(lt_submit(&f.sent, log, 1, 4, 200), 0);
  assert_int_equal(lt_submit(&f.sent, log, 2, 4, 200), 0);
  wait_all(&f);
  /* A is written at once, alone; B waits in segment 1's buffer; C..F go to
   * segment 2. Room for A only: B's write is the one that fails. */
  leave_room(&f, L + L / 2);
  for (uint64_t t = 3; t <= 8; t++) assert_int_equal(lt_submit(&f.sent, log, t, 4, 200), 0);
  assert_int_equal(rn_log_segment_count(log), 2);
  wait_all(&f);
  lt_drain(f.io);
  assert_int_equal(f.sent.ack[2].err, 0);
  for (size_t i = 3; i < f.sent.n; i++) assert_int_equal(f.sent.ack[i].err, RN_ENOSPC);
  assert_int_equal(rn_log_segment_count(log), 1);
  expect_health(log, RN_LOG_DEGRADED, RN_ENOSPC);
  lt_expect_exactly_acked(&f.sent, log);
  uint8_t *junk;
  size_t junk_len;
  char seg2[64];
  snprintf(seg2, sizeof(seg2), DIR "/%020d.log", 16); /* C was its first batch */
  assert_int_equal(crashfs_read_file(f.cfs, seg2, &junk, &junk_len), RN_ENOENT);

  crashfs_set_space(f.cfs, UINT64_MAX);
  for (uint64_t t = 9; t <= 14; t++) assert_int_equal(lt_submit(&f.sent, log, t, 4, 200), 0);
  wait_all(&f);
  for (size_t i = f.sent.n - 6; i < f.sent.n; i++) assert_int_equal(f.sent.ack[i].err, 0);
  assert_true(rn_log_segment_count(log) >= 2);
  expect_health(log, RN_LOG_HEALTHY, 0);
  lt_expect_exactly_acked(&f.sent, log);
  assert_int_equal(rn_log_close(log), 0);
  log = open_log(&f);
  lt_expect_exactly_acked(&f.sent, log);
  assert_int_equal(rn_log_close(log), 0);
  fx_free(&f);
}

/* Crash at every file-system operation from the short write on (and once
 * after everything settled): recovery gives a prefix of what was appended
 * that holds every acknowledged batch and none that was reported failed
 * with RN_ENOSPC. */
static void test_enospc_then_crash_exact_prefix(void **state) {
  (void)state;
  /* Each crash point with several seeds: the simulator keeps, tears or
   * drops the short write at random. */
  for (uint64_t round = 0;; round++) {
    uint64_t crash_at = 1 + round / 16;
    fx_t f;
    fx_init(&f, 100 + round);
    rn_log_t *log = open_log(&f);
    assert_int_equal(lt_submit(&f.sent, log, 1, 5, 100), 0);
    assert_int_equal(lt_submit(&f.sent, log, 2, 5, 100), 0);
    wait_all(&f);
    /* Batch 3 is written alone; 4..6 share the next write, which ends half
     * way into batch 5: batch 4 lands whole, yet is reported failed. */
    size_t L = batch_len(5, 100);
    leave_room(&f, 2 * L + L / 2);
    uint64_t ops0 = crashfs_ops(f.cfs);
    crashfs_arm(f.cfs, crash_at);
    for (uint64_t t = 3; t <= 6; t++) (void)lt_submit(&f.sent, log, t, 5, 100);
    wait_all(&f);
    lt_drain(f.io);
    bool hit = crashfs_is_down(f.cfs);
    uint64_t ops = crashfs_ops(f.cfs) - ops0;
    crashfs_crash(f.cfs);
    rn_log_close_discard(log);
    crashfs_set_space(f.cfs, UINT64_MAX);
    rn_io_destroy(f.io);
    f.io = new_io(&f);
    log = open_log(&f);
    /* A prefix of the appends, record by record... */
    size_t i = lt_expect_prefix(&f.sent, log);
    /* ...holding every acknowledged one and none reported as disk full. */
    for (size_t k = 0; k < f.sent.n; k++) {
      if (f.sent.ack[k].err == 0) assert_true(k < i);
      if (f.sent.ack[k].err == RN_ENOSPC) assert_true(k >= i);
    }
    assert_int_equal(rn_log_close(log), 0);
    fx_free(&f);
    if (!hit && round % 16 == 15) break; /* the crash point lay past the whole scenario */
    assert_true(ops < 100);
  }
}

/* ---- seal --------------------------------------------------------------------- */

/* Sealing a closed segment cannot write its index files (disk full): the
 * segment stays unsealed, the log degraded but writing, and the seal is
 * retried a second later; close with the seal still failing is clean. */
/* Holding the background lane (seals run there, in order) so a test can
 * change the file system between a roll and its segment's seal. */
typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool open;
  int done;
} gate_t;

static rn_err_t gate_fn(void *arg) {
  gate_t *g = arg;
  pthread_mutex_lock(&g->mu);
  while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
  return 0;
}

static void gate_cb(void *arg, rn_err_t res) {
  (void)res;
  ((gate_t *)arg)->done = 1;
}

static void gate_hold(fx_t *f, gate_t *g) {
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->open = false;
  g->done = 0;
  assert_int_equal(rn_io_job_bg(f->io, gate_fn, gate_cb, g), 0);
}

static void gate_release(fx_t *f, gate_t *g) {
  pthread_mutex_lock(&g->mu);
  g->open = true;
  pthread_cond_signal(&g->cv);
  pthread_mutex_unlock(&g->mu);
  while (!g->done) rn_io_wait(f->io, -1);
  pthread_mutex_destroy(&g->mu);
  pthread_cond_destroy(&g->cv);
}

/* Fill segment 1, then roll with the seal held back; the seal then meets
 * `fault` (a file system with no room, or no descriptor). */
static void roll_with_failing_seal(fx_t *f, rn_log_t *log, uint64_t *tag, bool nospace) {
  size_t L = batch_len(4, 200);
  while (rn_log_size_bytes(log) + L <= 4096) {
    assert_int_equal(lt_submit(&f->sent, log, (*tag)++, 4, 200), 0);
    wait_all(f);
  }
  gate_t g;
  gate_hold(f, &g);
  assert_int_equal(lt_submit(&f->sent, log, (*tag)++, 4, 200), 0); /* rolls; the seal queues behind the gate */
  wait_all(f);
  assert_int_equal(f->sent.ack[f->sent.n - 1].err, 0);
  assert_int_equal(rn_log_segment_count(log), 2);
  if (nospace)
    leave_room(f, 0);
  else
    crashfs_fail_open(f->cfs, -EMFILE);
  gate_release(f, &g);
  lt_drain(f->io);
}

static void test_seal_enospc_retried(void **state) {
  (void)state;
  fx_t f;
  fx_init(&f, 5);
  f.opts.segment_bytes = 4096;
  rn_log_t *log = open_log(&f);
  uint64_t tag = 1;
  roll_with_failing_seal(&f, log, &tag, true);
  rn_log_health_t h;
  rn_log_health(log, &h);
  assert_int_equal(h.state, RN_LOG_DEGRADED);
  assert_int_equal(h.err, RN_ENOSPC);
  assert_string_equal(h.what, "seal");
  assert_int_equal(rn_log_failure(log), 0);
  /* Not retried before its second is up, even with room again. */
  crashfs_set_space(f.cfs, UINT64_MAX);
  rn_log_tick(log, f.now);
  lt_drain(f.io);
  rn_log_health(log, &h);
  assert_int_equal(h.state, RN_LOG_DEGRADED);
  f.now += 1500;
  rn_log_tick(log, f.now);
  lt_drain(f.io);
  expect_health(log, RN_LOG_HEALTHY, 0);
  assert_int_equal(lt_submit(&f.sent, log, tag++, 4, 200), 0);
  wait_all(&f);
  lt_expect_exactly_acked(&f.sent, log);
  assert_int_equal(rn_log_close(log), 0);
  log = open_log(&f);
  lt_expect_exactly_acked(&f.sent, log);
  assert_int_equal(rn_log_close(log), 0);
  fx_free(&f);
}

/* Closing while a seal still fails for want of descriptors: every record is
 * durable, close reports success, and the next open verifies the unsealed
 * segment instead of trusting it. */
static void test_close_with_unsealed_segment(void **state) {
  (void)state;
  fx_t f;
  fx_init(&f, 7);
  f.opts.segment_bytes = 4096;
  rn_log_t *log = open_log(&f);
  uint64_t tag = 1;
  roll_with_failing_seal(&f, log, &tag, false);
  expect_health(log, RN_LOG_DEGRADED, RN_EMFILE);
  assert_int_equal(rn_log_close(log), 0);
  crashfs_fail_open(f.cfs, 0);
  rn_log_recovery_t rec;
  assert_int_equal(rn_log_open(f.io, DIR, &f.opts, &log, &rec), 0);
  assert_false(rec.clean);
  lt_expect_exactly_acked(&f.sent, log);
  assert_int_equal(rn_log_close(log), 0);
  fx_free(&f);
}

/* A failed fdatasync still fails the log: that rule does not change. */
static void test_failed_sync_still_fails(void **state) {
  (void)state;
  fx_t f;
  fx_init(&f, 6);
  rn_log_t *log = open_log(&f);
  assert_int_equal(lt_submit(&f.sent, log, 1, 3, 50), 0);
  wait_all(&f);
  crashfs_arm(f.cfs, 2); /* the write passes, its fdatasync fails */
  assert_int_equal(lt_submit(&f.sent, log, 2, 3, 50), 0);
  wait_all(&f);
  assert_int_equal(f.sent.ack[1].err, RN_EIO);
  rn_log_health_t h;
  rn_log_health(log, &h);
  assert_int_equal(h.state, RN_LOG_FAILED);
  assert_int_equal(h.err, RN_EIO);
  assert_string_equal(h.what, "fdatasync");
  assert_int_equal(lt_submit(&f.sent, log, 3, 3, 50), RN_ELOGFAILED);
  assert_int_equal(rn_log_close(log), RN_EIO);
  fx_free(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roll_emfile_is_transient),
      cmocka_unit_test(test_roll_by_age_emfile),
      cmocka_unit_test(test_enospc_mid_write_then_space_returns),
      cmocka_unit_test(test_enospc_undoes_a_roll),
      cmocka_unit_test(test_enospc_then_crash_exact_prefix),
      cmocka_unit_test(test_seal_enospc_retried),
      cmocka_unit_test(test_close_with_unsealed_segment),
      cmocka_unit_test(test_failed_sync_still_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
