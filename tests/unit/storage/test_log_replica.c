/*
 * test_log_replica.c — what a replicated shard needs from its log
 * (docs/storage.md, "Leader epochs and replica appends"), under whichever
 * I/O backend RUNNEL_IO_BACKEND names (crash-simulator cases run on posix):
 *
 *   - replica appends keep the leader's bytes, offsets, epochs and arrival
 *     times, one batch at a time and many per call (split where a write or
 *     a segment ends); gaps, overlaps, stale epochs and bad bytes are
 *     refused with nothing stored;
 *   - the epoch history across a clean restart, a crash (a copy of the
 *     directory taken while open; the crash simulator), a missing and a
 *     damaged history file;
 *   - KIP-279 lookups (rn_log_epoch_end) and the divergence rule, pure and
 *     end to end between logs (a follower with an extra tail of an old
 *     epoch, one that led an epoch the leader never saw, one that missed an
 *     epoch, identical logs, an empty follower);
 *   - rn_log_truncate_async: pending appends complete first, appends
 *     refused meanwhile, a reader's span holds it, not a batch boundary,
 *     to the start and to the end, appending again afterwards; truncating
 *     below a tail the journal replayed after a crash; and all of it on a
 *     thread marked as an event loop (the blocking check is armed in this
 *     binary, see tests/CMakeLists.txt).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crashfs.h"
#include "logtest.h"
#include "testutil.h"

#ifndef RN_BLOCKING_CHECK
#error "test_log_replica must be built with RN_BLOCKING_CHECK (see tests/CMakeLists.txt)"
#endif

#define NONE RN_LOG_EPOCH_NONE

static void quiet(void *arg, rn_level_t level, const char *msg) {
  (void)arg;
  (void)level;
  (void)msg;
}

typedef struct fx {
  char *dir;
  rn_io_t *io;
  int64_t now;
  rn_log_opts_t opts;
} fx_t;

static int64_t fx_clock(void *arg) { return ((fx_t *)arg)->now; }

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  f->dir = rn_test_tmpdir();
  f->io = lt_io(NULL);
  f->now = 1700000000000;
  rn_log_opts_default(&f->opts);
  f->opts.clock.wall_ms = fx_clock;
  f->opts.clock.arg = f;
  f->opts.logger.fn = quiet;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  rn_io_destroy(f->io);
  rn_test_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static rn_log_t *open_named(fx_t *f, const char *name, rn_log_recovery_t *rec) {
  char path[800];
  snprintf(path, sizeof(path), "%s/%s", f->dir, name);
  rn_log_t *log = NULL;
  rn_log_recovery_t local;
  rn_err_t err = rn_log_open(f->io, path, &f->opts, &log, rec ? rec : &local);
  if (err) fail_msg("open %s: %s: %s", name, rn_err_name(err), (rec ? rec : &local)->message);
  return log;
}

/* Append a producer batch at epoch and wait for it; returns its base. */
static uint64_t put(rn_io_t *io, rn_log_t *log, uint64_t tag, int n, uint32_t epoch) {
  size_t len;
  uint8_t *b = lt_batch(tag, n, 40 + (size_t)(tag % 90), 1000 + (int64_t)tag, tag % 3 ? RN_CODEC_NONE : RN_CODEC_LZ4,
                        &len);
  lt_ack_t a = {0};
  uint64_t base;
  assert_int_equal(rn_log_append(log, b, len, epoch, lt_ack_cb, &a, &base), 0);
  free(b);
  lt_wait(io, &a);
  assert_int_equal(a.err, 0);
  return base;
}

/* Copy the leader's batches the follower lacks, many per call. */
static void replicate(rn_io_t *io, rn_log_t *leader, rn_log_t *follower) {
  size_t len;
  uint8_t *b = lt_read_bytes(leader, rn_log_next_offset(follower), &len);
  size_t at = 0;
  while (at < len) {
    uint32_t n = 0;
    lt_ack_t a = {0};
    assert_int_equal(rn_log_append_replica_many(follower, b + at, len - at, lt_ack_cb, &a, &n), 0);
    assert_true(n >= 1);
    for (uint32_t i = 0; i < n; i++) {
      rn_batch_header_t h;
      assert_int_equal(rn_batch_header_decode(b + at, len - at, &h), 0);
      at += h.batch_length;
    }
    lt_wait(io, &a);
    assert_int_equal(a.err, 0);
  }
  free(b);
}

static void check_epochs(rn_log_t *log, const rn_log_epoch_t *want, uint32_t n) {
  rn_log_epoch_t got[32];
  uint32_t k = rn_log_epochs(log, got, 32);
  if (k != n) fail_msg("history has %u entries, want %u", k, n);
  for (uint32_t i = 0; i < n; i++) {
    assert_int_equal(got[i].epoch, want[i].epoch);
    assert_int_equal(got[i].start_offset, want[i].start_offset);
  }
  assert_int_equal(rn_log_last_epoch(log), n ? want[n - 1].epoch : NONE);
  char why[256];
  if (!lt_epochs_ok(log, why, sizeof(why))) fail_msg("%s", why);
}

/* Both logs hold the same bytes from `from` on. */
static void same_bytes(rn_log_t *a, rn_log_t *b, uint64_t from) {
  size_t la, lb;
  uint8_t *ba = lt_read_bytes(a, from, &la), *bb = lt_read_bytes(b, from, &lb);
  assert_int_equal(la, lb);
  if (la) assert_memory_equal(ba, bb, la);
  free(ba);
  free(bb);
}

typedef struct twait {
  int done;
  rn_err_t err;
  int acks_before; /* append acks seen when the truncation completed */
  int *acks;
} twait_t;

static void trunc_cb(void *arg, rn_err_t err) {
  twait_t *w = arg;
  w->done++;
  w->err = err;
  if (w->acks) w->acks_before = *w->acks;
}

static void twait(rn_io_t *io, twait_t *w) {
  while (!w->done) {
    assert_true(rn_io_inflight(io) > 0);
    rn_io_wait(io, -1);
  }
  assert_int_equal(w->done, 1);
}

/* rn_log_truncate_async, waited for; returns the callback's result. */
static rn_err_t cut(rn_io_t *io, rn_log_t *log, uint64_t offset) {
  twait_t w = {0};
  rn_err_t err = rn_log_truncate_async(log, offset, trunc_cb, &w);
  if (err) return err;
  twait(io, &w);
  return w.err;
}

/* ---- replica appends ---------------------------------------------------------------- */

static void test_replica_keeps_bytes(void **state) {
  fx_t *f = *state;
  f->opts.segment_bytes = 8192;
  rn_log_t *leader = open_named(f, "leader", NULL);
  uint64_t b10 = 0;
  for (uint64_t i = 0; i < 40; i++) {
    uint64_t base = put(f->io, leader, i, 1 + (int)(i % 4), i < 10 ? 3 : 4);
    if (i == 10) b10 = base;
    if (i == 20) f->now += 1000; /* arrival times differ */
  }
  check_epochs(leader, (rn_log_epoch_t[]){{3, 0}, {4, b10}}, 2);
  size_t len;
  uint8_t *bytes = lt_read_bytes(leader, 0, &len);

  /* One batch at a time, later (a different clock): nothing restamped. */
  f->now += 60000;
  rn_log_t *one = open_named(f, "one", NULL);
  size_t at = 0;
  while (at < len) {
    rn_batch_header_t h;
    assert_int_equal(rn_batch_header_decode(bytes + at, len - at, &h), 0);
    assert_int_equal(h.base_offset, rn_log_next_offset(one));
    lt_ack_t a = {0};
    assert_int_equal(rn_log_append_replica(one, bytes + at, h.batch_length, lt_ack_cb, &a), 0);
    lt_wait(f->io, &a);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.base, h.base_offset);
    at += h.batch_length;
  }
  same_bytes(leader, one, 0);
  check_epochs(one, (rn_log_epoch_t[]){{3, 0}, {4, b10}}, 2);
  assert_true(rn_log_segment_count(one) > 1);

  /* Many per call: the same bytes; one callback per call. */
  rn_log_t *many = open_named(f, "many", NULL);
  replicate(f->io, leader, many);
  same_bytes(leader, many, 0);
  check_epochs(many, (rn_log_epoch_t[]){{3, 0}, {4, b10}}, 2);
  assert_int_equal(rn_log_next_offset(many), rn_log_next_offset(leader));

  /* A follower that continues: the leader appends more, it fetches again. */
  put(f->io, leader, 100, 3, 4);
  uint64_t b6 = put(f->io, leader, 101, 2, 6);
  replicate(f->io, leader, many);
  same_bytes(leader, many, 0);
  check_epochs(many, (rn_log_epoch_t[]){{3, 0}, {4, b10}, {6, b6}}, 3);
  free(bytes);
  assert_int_equal(rn_log_close(one), 0);
  assert_int_equal(rn_log_close(many), 0);
  assert_int_equal(rn_log_close(leader), 0);
}

/* A buffer larger than a segment or a write: each call stores what fits,
 * the caller continues with the rest; one write per group. */
static void test_replica_many_splits(void **state) {
  fx_t *f = *state;
  rn_log_t *leader = open_named(f, "leader", NULL);
  for (uint64_t i = 0; i < 300; i++) put(f->io, leader, i, 2, 1 + (uint32_t)(i / 100));
  size_t len;
  uint8_t *bytes = lt_read_bytes(leader, 0, &len);
  assert_true(len > 40000);

  f->opts.segment_bytes = 8192;
  f->opts.max_batch_bytes = 4096; /* groups up to 256 KiB, segments 8 KiB: split by segment */
  rn_log_t *fol = open_named(f, "follower", NULL);
  size_t at = 0;
  unsigned calls = 0, acks = 0;
  lt_ack_t a[400] = {{0}};
  while (at < len) {
    uint32_t n = 0;
    /* Three calls pipelined (a roll's open completes only in rn_io_wait),
     * then fetch by fetch, as a follower's loop runs. The third call finds
     * the second's segment full with its roll still pending: that segment
     * takes the whole (limited) buffer, as it would take appends one by one. */
    size_t avail = len - at;
    if (calls == 2) {
      avail = 0;
      for (int i = 0; i < 20; i++) {
        rn_batch_header_t h;
        assert_int_equal(rn_batch_header_decode(bytes + at + avail, len - at - avail, &h), 0);
        avail += h.batch_length;
      }
    }
    if (calls >= 3) lt_wait(f->io, &a[calls - 1]);
    assert_int_equal(rn_log_append_replica_many(fol, bytes + at, avail, lt_ack_cb, &a[calls], &n), 0);
    assert_true(n >= 1);
    if (calls == 2) assert_int_equal(n, 20);
    size_t glen = 0;
    for (uint32_t i = 0; i < n; i++) {
      rn_batch_header_t h;
      assert_int_equal(rn_batch_header_decode(bytes + at + glen, len - at - glen, &h), 0);
      glen += h.batch_length;
    }
    if (calls != 2) assert_true(glen <= 8192); /* one segment's worth at most */
    at += glen;
    calls++;
    assert_true(calls < 400);
  }
  assert_true(calls > 5);
  for (unsigned i = 0; i < calls; i++) {
    lt_wait(f->io, &a[i]);
    assert_int_equal(a[i].err, 0);
    acks += (unsigned)a[i].done;
  }
  assert_int_equal(acks, calls);
  same_bytes(leader, fol, 0);
  uint32_t n = rn_log_epochs(leader, NULL, 0);
  rn_log_epoch_t want[8];
  assert_int_equal(rn_log_epochs(leader, want, 8), 3);
  check_epochs(fol, want, n);
  if (rn_log_segment_count(fol) <= 5) fail_msg("segments %u, bytes %zu, calls %u", rn_log_segment_count(fol), len, calls);
  free(bytes);
  assert_int_equal(rn_log_close(fol), 0);
  assert_int_equal(rn_log_close(leader), 0);
}

static void test_replica_rejects(void **state) {
  fx_t *f = *state;
  f->opts.max_batch_bytes = 4096;
  rn_log_t *leader = open_named(f, "leader", NULL);
  for (uint64_t i = 0; i < 6; i++) put(f->io, leader, i, 2, i < 3 ? 5 : 7); /* offsets 0..11 */
  size_t len;
  uint8_t *bytes = lt_read_bytes(leader, 0, &len);
  size_t blen[6], bpos[6], at = 0;
  for (int i = 0; i < 6; i++) {
    rn_batch_header_t h;
    assert_int_equal(rn_batch_header_decode(bytes + at, len - at, &h), 0);
    bpos[i] = at;
    blen[i] = h.batch_length;
    at += h.batch_length;
  }
  rn_log_t *fol = open_named(f, "follower", NULL);
  lt_ack_t a = {0};
  uint32_t n = 99;
  /* A gap (batch 1 at offset 2 into an empty log). */
  assert_int_equal(rn_log_append_replica(fol, bytes + bpos[1], blen[1], lt_ack_cb, &a), RN_EOFFSET);
  assert_int_equal(rn_log_append_replica_many(fol, bytes + bpos[1], len - bpos[1], lt_ack_cb, &a, &n), RN_EOFFSET);
  assert_int_equal(n, 0);
  /* Two batches to the one-batch call; a partial trailing batch; len 0. */
  assert_int_equal(rn_log_append_replica(fol, bytes, blen[0] + blen[1], lt_ack_cb, &a), RN_ECORRUPT);
  assert_int_equal(rn_log_append_replica_many(fol, bytes, blen[0] + 10, lt_ack_cb, &a, &n), RN_ECORRUPT);
  assert_int_equal(rn_log_append_replica_many(fol, bytes, 0, lt_ack_cb, &a, &n), RN_EINVAL);
  /* A flipped payload byte in the second batch: nothing of the first stored either. */
  uint8_t *bad = malloc(len);
  memcpy(bad, bytes, len);
  bad[bpos[1] + blen[1] - 1] ^= 1;
  assert_int_equal(rn_log_append_replica_many(fol, bad, len, lt_ack_cb, &a, &n), RN_ECORRUPT);
  assert_int_equal(rn_log_append_replica(fol, bad + bpos[1], blen[1], lt_ack_cb, &a), RN_ECORRUPT);
  free(bad);
  assert_int_equal(rn_log_next_offset(fol), 0);
  assert_int_equal(rn_log_last_epoch(fol), NONE);
  /* Too large for this follower. */
  size_t biglen;
  uint8_t *big = lt_batch(77, 10, 1000, 5, RN_CODEC_NONE, &biglen);
  assert_int_equal(rn_log_append_replica(fol, big, biglen, lt_ack_cb, &a), RN_ETOOLARGE);
  free(big);
  /* The first three go in (epoch 5). */
  assert_int_equal(rn_log_append_replica_many(fol, bytes, bpos[3], lt_ack_cb, &a, &n), 0);
  assert_int_equal(n, 3);
  lt_wait(f->io, &a);
  assert_int_equal(a.err, 0);
  /* An overlap: batch 2 again. */
  lt_ack_t b = {0};
  assert_int_equal(rn_log_append_replica(fol, bytes + bpos[2], blen[2], lt_ack_cb, &b), RN_EOFFSET);
  /* Epoch 7 goes in, then a batch of epoch 6 at the next offset is stale. */
  assert_int_equal(rn_log_append_replica(fol, bytes + bpos[3], blen[3], lt_ack_cb, &b), 0);
  lt_wait(f->io, &b);
  uint8_t *stale = malloc(blen[4]);
  memcpy(stale, bytes + bpos[4], blen[4]);
  rn_batch_stamp(stale, 8, 6, 123); /* the leader's offset, an older epoch */
  lt_ack_t c = {0};
  assert_int_equal(rn_log_append_replica(fol, stale, blen[4], lt_ack_cb, &c), RN_ESTALEEPOCH);
  /* ...and in a many-batch buffer: the good batch before it is not stored. */
  uint8_t *mix = malloc(blen[4] + blen[5]);
  memcpy(mix, bytes + bpos[4], blen[4]);
  memcpy(mix + blen[4], bytes + bpos[5], blen[5]);
  rn_batch_stamp(mix + blen[4], 10, 6, 123);
  assert_int_equal(rn_log_append_replica_many(fol, mix, blen[4] + blen[5], lt_ack_cb, &c, &n), RN_ESTALEEPOCH);
  free(mix);
  free(stale);
  assert_int_equal(rn_log_next_offset(fol), 8);
  /* A producer append below the last epoch: a deposed leader. */
  size_t plen;
  uint8_t *p = lt_batch(9, 1, 10, 5, RN_CODEC_NONE, &plen);
  assert_int_equal(rn_log_append(fol, p, plen, 6, lt_ack_cb, &c, NULL), RN_ESTALEEPOCH);
  assert_int_equal(rn_log_append_verified(fol, p, plen, 6, lt_ack_cb, &c, NULL), RN_ESTALEEPOCH);
  free(p);
  assert_int_equal(c.done, 0); /* no callback for anything refused */
  check_epochs(fol, (rn_log_epoch_t[]){{5, 0}, {7, 6}}, 2);
  /* What it holds is the leader's first four batches, byte for byte. */
  size_t flen;
  uint8_t *fb = lt_read_bytes(fol, 0, &flen);
  assert_int_equal(flen, bpos[4]);
  assert_memory_equal(fb, bytes, flen);
  free(fb);
  free(bytes);
  assert_int_equal(rn_log_close(fol), 0);
  assert_int_equal(rn_log_close(leader), 0);
}

/* ---- the history across restarts ------------------------------------------------------ */

static void test_history_restart(void **state) {
  fx_t *f = *state;
  f->opts.segment_bytes = 4096;
  rn_log_t *log = open_named(f, "shard", NULL);
  uint64_t s2 = 0, s5 = 0;
  for (uint64_t i = 0; i < 60; i++) {
    uint32_t e = i < 20 ? 0 : i < 45 ? 2 : 5;
    uint64_t base = put(f->io, log, i, 2, e);
    if (i == 20) s2 = base;
    if (i == 45) s5 = base;
  }
  const rn_log_epoch_t want[] = {{0, 0}, {2, s2}, {5, s5}};
  check_epochs(log, want, 3);
  assert_int_equal(rn_log_close(log), 0);

  /* Clean: nothing to repair. */
  rn_log_recovery_t rec;
  log = open_named(f, "shard", &rec);
  assert_true(rec.clean);
  assert_false(rec.epochs_repaired);
  check_epochs(log, want, 3);

  /* A crash: a copy of the directory taken while the log is open and has
   * just started a new epoch whose entry is in no file yet. */
  uint64_t s9 = put(f->io, log, 200, 3, 9);
  put(f->io, log, 201, 1, 9);
  lt_drain(f->io);
  char cmd[2000];
  snprintf(cmd, sizeof(cmd), "cp -a '%s/shard' '%s/copy'", f->dir, f->dir);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(rn_log_close(log), 0);
  const rn_log_epoch_t want9[] = {{0, 0}, {2, s2}, {5, s5}, {9, s9}};
  log = open_named(f, "copy", &rec);
  assert_false(rec.clean);
  check_epochs(log, want9, 4);
  assert_int_equal(rn_log_close(log), 0);
  log = open_named(f, "copy", &rec);
  assert_true(rec.clean);
  assert_false(rec.epochs_repaired);
  check_epochs(log, want9, 4);
  assert_int_equal(rn_log_close(log), 0);

  /* Missing (a log from before the history existed) and damaged: rebuilt
   * from the batch headers, then written. */
  char path[900];
  snprintf(path, sizeof(path), "%s/shard/leader-epochs", f->dir);
  assert_int_equal(unlink(path), 0);
  log = open_named(f, "shard", &rec);
  assert_true(rec.epochs_repaired);
  check_epochs(log, want9, 4);
  assert_int_equal(rn_log_close(log), 0);
  FILE *fp = fopen(path, "r+b");
  assert_non_null(fp);
  assert_int_equal(fseek(fp, 20, SEEK_SET), 0);
  assert_int_equal(fputc(0x5a, fp), 0x5a);
  assert_int_equal(fclose(fp), 0);
  log = open_named(f, "shard", &rec);
  assert_true(rec.epochs_repaired);
  check_epochs(log, want9, 4);
  assert_int_equal(rn_log_close(log), 0);
  log = open_named(f, "shard", &rec);
  assert_false(rec.epochs_repaired);
  check_epochs(log, want9, 4);

  /* Retention: entries wholly below the new start go. */
  rn_log_set_retention(log, -1, 0);
  assert_true(rn_log_apply_retention(log, f->now) > 0);
  lt_drain(f->io);
  uint64_t start = rn_log_start(log);
  assert_true(start > 0);
  rn_log_epoch_t h[4];
  uint32_t k = 0, hn = 0;
  while (k + 1 < 4 && want9[k + 1].start_offset <= start) k++;
  for (; k < 4; k++) h[hn++] = want9[k]; /* the first may start below the log start */
  check_epochs(log, h, hn);
  assert_int_equal(rn_log_close(log), 0);
  log = open_named(f, "shard", &rec);
  check_epochs(log, h, hn);
  assert_int_equal(rn_log_close(log), 0);
}

/* The same through the crash simulator: a crash with writes dropped, torn
 * or kept, right after a new epoch started. */
static void test_history_crash_sim(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 40; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    rn_io_t *io = lt_io(crashfs_fs(cfs));
    rn_log_opts_t o;
    rn_log_opts_default(&o);
    o.segment_bytes = 4096;
    o.logger.fn = quiet;
    o.index_checkpoint_bytes = seed % 2 ? 1000 : 0;
    rn_log_t *log = lt_open(io, "/d/s", &o);
    uint64_t rng = seed * 7919;
    uint32_t e = 0;
    lt_ack_t acks[80] = {{0}};
    int n = 20 + (int)rn_test_rand_below(&rng, 60);
    uint64_t arm = 1 + rn_test_rand_below(&rng, 200);
    for (int i = 0; i < n; i++) {
      if (rn_test_rand_below(&rng, 6) == 0) e += 1 + (uint32_t)rn_test_rand_below(&rng, 3);
      if (i == n / 2) crashfs_arm(cfs, arm);
      size_t len;
      uint8_t *b = lt_batch((uint64_t)i, 1 + i % 3, 100, i, RN_CODEC_NONE, &len);
      rn_err_t err = rn_log_append(log, b, len, e, lt_ack_cb, &acks[i], NULL);
      free(b);
      if (err) break;
      if (i % 4 == 0) rn_io_wait(io, -1);
    }
    if (!crashfs_is_down(cfs)) crashfs_arm(cfs, 1);
    (void)rn_log_close(log);
    rn_io_destroy(io);
    crashfs_crash(cfs);
    io = lt_io(crashfs_fs(cfs));
    log = lt_open(io, "/d/s", &o);
    char why[256];
    if (!lt_epochs_ok(log, why, sizeof(why))) fail_msg("seed %" PRIu64 ": %s", seed, why);
    /* Writable at the last epoch. */
    uint32_t last = rn_log_last_epoch(log);
    put(io, log, 999, 1, last == NONE ? 0 : last);
    if (!lt_epochs_ok(log, why, sizeof(why))) fail_msg("seed %" PRIu64 ": after append: %s", seed, why);
    assert_int_equal(rn_log_close(log), 0);
    rn_io_destroy(io);
    crashfs_free(cfs);
  }
}

/* ---- lookups and divergence -------------------------------------------------------------- */

static void test_epoch_end_pure(void **state) {
  (void)state;
  const rn_log_epoch_t h[] = {{2, 10}, {4, 30}, {7, 55}};
  uint32_t fe;
  uint64_t end;
  rn_log_epochs_end(h, 3, 10, 80, 1, &fe, &end); /* below every entry */
  assert_int_equal(fe, NONE);
  assert_int_equal(end, 10);
  rn_log_epochs_end(h, 3, 10, 80, 2, &fe, &end);
  assert_int_equal(fe, 2);
  assert_int_equal(end, 30);
  rn_log_epochs_end(h, 3, 10, 80, 3, &fe, &end); /* not in the history: the one below */
  assert_int_equal(fe, 2);
  assert_int_equal(end, 30);
  rn_log_epochs_end(h, 3, 10, 80, 4, &fe, &end);
  assert_int_equal(fe, 4);
  assert_int_equal(end, 55);
  rn_log_epochs_end(h, 3, 10, 80, 7, &fe, &end); /* the last: the log's next offset */
  assert_int_equal(fe, 7);
  assert_int_equal(end, 80);
  rn_log_epochs_end(h, 3, 10, 80, 100, &fe, &end);
  assert_int_equal(fe, 7);
  assert_int_equal(end, 80);
  rn_log_epochs_end(h, 3, 10, 80, NONE, &fe, &end);
  assert_int_equal(fe, 7);
  rn_log_epochs_end(NULL, 0, 5, 5, 3, &fe, &end); /* empty */
  assert_int_equal(fe, NONE);
  assert_int_equal(end, 5);
}

/* The KIP-279 scenarios, on histories alone. */
static void test_divergence_pure(void **state) {
  (void)state;
  bool done;
  /* A follower with an extra tail of the old epoch: it asks for 2, the
   * leader (whose epoch 3 starts at 120) says (2, 120). */
  const rn_log_epoch_t fol1[] = {{1, 0}, {2, 100}};
  assert_int_equal(rn_log_epochs_divergence(fol1, 2, 0, 150, 2, 120, &done), 120);
  assert_true(done);
  /* The same follower when the leader wrote more of epoch 2 than it has:
   * nothing to cut. */
  assert_int_equal(rn_log_epochs_divergence(fol1, 2, 0, 150, 2, 200, &done), 150);
  assert_true(done);
  /* A follower that led epoch 3, which the leader never saw (leader:
   * {1@0, 2@80, 4@200}): it asks for 3, the leader answers (2, 200). The
   * follower lacks epoch 2: cut epoch 3 (to 100), ask again for 1: (1, 80),
   * cut to 80. */
  const rn_log_epoch_t fol2[] = {{1, 0}, {3, 100}};
  assert_int_equal(rn_log_epochs_divergence(fol2, 2, 0, 150, 2, 200, &done), 100);
  assert_false(done);
  assert_int_equal(rn_log_epochs_divergence(fol2, 1, 0, 100, 1, 80, &done), 80);
  assert_true(done);
  /* A follower that missed epoch 2 entirely and holds only epoch 1, longer
   * than the leader's: it asks for 1, (1, 80): cut to 80. */
  const rn_log_epoch_t fol3[] = {{1, 0}};
  assert_int_equal(rn_log_epochs_divergence(fol3, 1, 0, 95, 1, 80, &done), 80);
  assert_true(done);
  /* Identical logs: the follower's end. */
  const rn_log_epoch_t same[] = {{1, 0}, {2, 40}};
  assert_int_equal(rn_log_epochs_divergence(same, 2, 0, 60, 2, 60, &done), 60);
  assert_true(done);
  /* An empty follower: nothing to cut. */
  assert_int_equal(rn_log_epochs_divergence(NULL, 0, 0, 0, 5, 300, &done), 0);
  assert_true(done);
  /* The leader has no epoch at or below ours (its log starts at 50 with
   * epoch 6; ours holds epoch 4 from 20): keep what lies below its start. */
  const rn_log_epoch_t old[] = {{4, 20}};
  assert_int_equal(rn_log_epochs_divergence(old, 1, 20, 90, NONE, 50, &done), 50);
  assert_true(done);
  assert_int_equal(rn_log_epochs_divergence(old, 1, 20, 90, NONE, 0, &done), 20);
  assert_int_equal(rn_log_epochs_divergence(old, 1, 20, 40, NONE, 50, &done), 40); /* no overlap */
  /* The leader's epoch is one of ours but every epoch of ours is above it
   * (leader says (1, 10), we hold only epoch 3): cut everything. */
  const rn_log_epoch_t high[] = {{3, 0}};
  assert_int_equal(rn_log_epochs_divergence(high, 1, 0, 30, 1, 10, &done), 0);
  assert_true(done);
  assert_int_equal(rn_log_epochs_divergence(high, 1, 0, 30, 1, 10, NULL), 0);
}

/* What the broker will do: ask the leader for the follower's last epoch,
 * truncate, repeat until complete, then fetch. */
static void follow(rn_io_t *io, rn_log_t *leader, rn_log_t *fol, int *rounds) {
  *rounds = 0;
  for (;;) {
    if (rn_log_next_offset(fol) == rn_log_start(fol)) break;
    uint32_t fe;
    uint64_t end;
    assert_int_equal(rn_log_epoch_end(leader, rn_log_last_epoch(fol), &fe, &end), 0);
    bool done;
    uint64_t to = rn_log_divergence(fe, end, fol, &done);
    (*rounds)++;
    assert_true(*rounds < 10);
    if (to < rn_log_next_offset(fol)) assert_int_equal(cut(io, fol, to), 0);
    if (done) break;
  }
  replicate(io, leader, fol);
  same_bytes(leader, fol, rn_log_start(fol));
  rn_log_epoch_t h[16];
  uint32_t n = rn_log_epochs(leader, h, 16);
  check_epochs(fol, h, n);
}

/* The scenarios with real logs: A, B, C; leaders' appends, followers'
 * replica appends, failovers. */
static void test_divergence_logs(void **state) {
  fx_t *f = *state;
  f->opts.segment_bytes = 4096;
  rn_log_t *a = open_named(f, "a", NULL), *b = open_named(f, "b", NULL), *c = open_named(f, "c", NULL);
  int rounds;
  /* Epoch 1, A leads: 12 batches; B has 8, C has 10. */
  for (uint64_t i = 0; i < 12; i++) put(f->io, a, i, 2, 1);
  {
    size_t len;
    uint8_t *bytes = lt_read_bytes(a, 0, &len);
    size_t at = 0;
    for (int i = 0; i < 10; i++) {
      rn_batch_header_t h;
      assert_int_equal(rn_batch_header_decode(bytes + at, len - at, &h), 0);
      lt_ack_t x = {0}, y = {0};
      if (i < 8) {
        assert_int_equal(rn_log_append_replica(b, bytes + at, h.batch_length, lt_ack_cb, &x), 0);
        lt_wait(f->io, &x);
      }
      assert_int_equal(rn_log_append_replica(c, bytes + at, h.batch_length, lt_ack_cb, &y), 0);
      lt_wait(f->io, &y);
      at += h.batch_length;
    }
    free(bytes);
  }
  /* Epoch 2, B leads (A is away): 5 batches; C follows. C had an extra
   * tail of epoch 1 (batches 8, 9): one round, cut at B's epoch 2 start. */
  for (uint64_t i = 100; i < 105; i++) put(f->io, b, i, 1, 2);
  follow(f->io, b, c, &rounds);
  assert_int_equal(rounds, 1);
  /* A returns as a follower of B: same, its extra tail is longer. */
  follow(f->io, b, a, &rounds);
  assert_int_equal(rounds, 1);
  /* Identical logs: nothing to cut, one round. */
  follow(f->io, b, c, &rounds);
  assert_int_equal(rounds, 1);
  /* Epoch 3: A leads alone for a while (B and C never see it), then epoch
   * 4 goes to C, which writes, and B follows C. A comes back: it led an
   * epoch C never saw. */
  for (uint64_t i = 200; i < 204; i++) put(f->io, a, i, 3, 3);
  for (uint64_t i = 300; i < 303; i++) put(f->io, c, i, 2, 4);
  follow(f->io, c, b, &rounds);
  follow(f->io, c, a, &rounds);
  assert_int_equal(rounds, 1);
  /* Epoch 6: B leads, C missed epoch 6 and wrote epoch 5 alone (a leader
   * nobody followed); A follows B throughout. C must cut epoch 5, ask
   * again, and so on. */
  for (uint64_t i = 400; i < 403; i++) put(f->io, c, i, 1, 5);
  for (uint64_t i = 500; i < 506; i++) put(f->io, b, i, 2, 6);
  follow(f->io, b, a, &rounds);
  follow(f->io, b, c, &rounds);
  /* An empty follower. */
  rn_log_t *d = open_named(f, "d", NULL);
  follow(f->io, b, d, &rounds);
  assert_int_equal(rounds, 0);
  assert_int_equal(rn_log_close(a), 0);
  assert_int_equal(rn_log_close(b), 0);
  assert_int_equal(rn_log_close(c), 0);
  assert_int_equal(rn_log_close(d), 0);
}

/* A follower missing an epoch entry by a larger margin: two rounds
 * (the non-complete answer) through real logs. */
static void test_divergence_two_rounds(void **state) {
  fx_t *f = *state;
  rn_log_t *a = open_named(f, "a", NULL), *b = open_named(f, "b", NULL);
  /* A: epoch 1 offsets 0..4, then epoch 3 from 5 (it led 3 alone). */
  for (uint64_t i = 0; i < 5; i++) put(f->io, a, i, 1, 1);
  size_t len;
  uint8_t *bytes = lt_read_bytes(a, 0, &len);
  /* B copied epoch 1 only up to offset 4, led epoch 2 from 4 and 4 from 8. */
  size_t at = 0;
  for (int i = 0; i < 4; i++) {
    rn_batch_header_t h;
    assert_int_equal(rn_batch_header_decode(bytes + at, len - at, &h), 0);
    lt_ack_t x = {0};
    assert_int_equal(rn_log_append_replica(b, bytes + at, h.batch_length, lt_ack_cb, &x), 0);
    lt_wait(f->io, &x);
    at += h.batch_length;
  }
  free(bytes);
  for (uint64_t i = 10; i < 14; i++) put(f->io, a, i, 1, 3);
  for (uint64_t i = 20; i < 24; i++) put(f->io, b, i, 1, 2);
  for (uint64_t i = 30; i < 33; i++) put(f->io, b, i, 1, 4);
  check_epochs(a, (rn_log_epoch_t[]){{1, 0}, {3, 5}}, 2);
  check_epochs(b, (rn_log_epoch_t[]){{1, 0}, {2, 4}, {4, 8}}, 3);
  int rounds;
  follow(f->io, b, a, &rounds);
  assert_int_equal(rounds, 2); /* to 5 (not complete), then to 4 */
  assert_int_equal(rn_log_close(a), 0);
  assert_int_equal(rn_log_close(b), 0);
}

/* ---- asynchronous truncation ------------------------------------------------------------------ */

static int g_acks;
static void count_ack(void *arg, rn_err_t err, uint64_t base) {
  (void)base;
  assert_int_equal(err, 0);
  (*(int *)arg)++;
}

static void test_truncate_async(void **state) {
  fx_t *f = *state;
  f->opts.segment_bytes = 4096;
  rn_log_t *log = open_named(f, "shard", NULL);
  uint64_t bases[110];
  for (uint64_t i = 0; i < 100; i++) bases[i] = put(f->io, log, i, 2, i < 30 ? 1 : 2);
  uint32_t nseg = rn_log_segment_count(log);
  assert_true(nseg > 4);
  uint64_t end = rn_log_next_offset(log);

  /* Outside [start, next]: refused at once. */
  twait_t w = {0};
  assert_int_equal(rn_log_truncate_async(log, end + 1, trunc_cb, &w), RN_EINVAL);
  /* Not a batch boundary: the callback says so, nothing changed. */
  assert_int_equal(cut(f->io, log, bases[40] + 1), RN_EINVAL);
  assert_int_equal(rn_log_next_offset(log), end);
  assert_int_equal(rn_log_end(log), end);
  assert_int_equal(rn_log_failure(log), 0);
  /* At the end: nothing to do, still through the callback. */
  assert_int_equal(rn_log_truncate_async(log, end, trunc_cb, &w), 0);
  assert_int_equal(w.done, 0); /* never from inside the call */
  twait(f->io, &w);
  assert_int_equal(w.err, 0);

  /* Pending appends complete first; appends are refused meanwhile; the
   * visible end is clamped; a second truncation is refused. */
  g_acks = 0;
  for (uint64_t i = 100; i < 105; i++) {
    size_t len;
    uint8_t *b = lt_batch(i, 2, 60, 5, RN_CODEC_NONE, &len);
    assert_int_equal(rn_log_append(log, b, len, 2, count_ack, &g_acks, &bases[i]), 0);
    free(b);
  }
  w = (twait_t){.acks = &g_acks};
  assert_int_equal(rn_log_truncate_async(log, bases[20], trunc_cb, &w), 0);
  assert_true(rn_log_end(log) <= bases[20]);
  size_t len;
  uint8_t *b = lt_batch(99, 1, 10, 5, RN_CODEC_NONE, &len);
  lt_ack_t refused = {0};
  assert_int_equal(rn_log_append(log, b, len, 2, lt_ack_cb, &refused, NULL), RN_EBUSY);
  uint8_t *rb = lt_read_bytes(log, 0, &len); /* readers stop at the cut */
  free(rb);
  twait_t w2 = {0};
  assert_int_equal(rn_log_truncate_async(log, bases[10], trunc_cb, &w2), RN_EBUSY);
  twait(f->io, &w);
  assert_int_equal(w.err, 0);
  assert_int_equal(w.acks_before, 5); /* every pending append was acknowledged before */
  assert_int_equal(refused.done, 0);
  assert_int_equal(rn_log_next_offset(log), bases[20]);
  assert_int_equal(rn_log_end(log), bases[20]);
  assert_true(rn_log_segment_count(log) < nseg);
  check_epochs(log, (rn_log_epoch_t[]){{1, 0}}, 1);
  /* Appending again, at a new epoch (a replica append continues too). */
  free(b);
  uint64_t s3 = put(f->io, log, 600, 2, 3);
  assert_int_equal(s3, bases[20]);
  for (uint64_t i = 601; i < 640; i++) put(f->io, log, i, 2, 3);
  check_epochs(log, (rn_log_epoch_t[]){{1, 0}, {3, s3}}, 2);
  uint64_t after = rn_log_next_offset(log);
  assert_int_equal(rn_log_close(log), 0);
  rn_log_recovery_t rec;
  log = open_named(f, "shard", &rec);
  assert_int_equal(rn_log_next_offset(log), after);
  check_epochs(log, (rn_log_epoch_t[]){{1, 0}, {3, s3}}, 2);

  /* A reader's span on a segment the truncation deletes holds it. */
  rn_log_span_t span;
  assert_int_equal(rn_log_span_plan(log, after - 1, &span), 0);
  assert_non_null(span.seg);
  w = (twait_t){0};
  assert_int_equal(rn_log_truncate_async(log, s3, trunc_cb, &w), 0);
  lt_drain(f->io);
  assert_int_equal(w.done, 0);
  uint8_t buf[8192];
  size_t got;
  assert_int_equal(rn_log_span_read(&span, buf, sizeof(buf), &got), 0); /* still readable */
  assert_true(got > 0);
  rn_log_span_release(log, &span);
  twait(f->io, &w);
  assert_int_equal(w.err, 0);
  assert_int_equal(rn_log_next_offset(log), s3);
  check_epochs(log, (rn_log_epoch_t[]){{1, 0}}, 1);

  /* To the start: an empty history, any epoch may follow. */
  assert_int_equal(cut(f->io, log, 0), 0);
  assert_int_equal(rn_log_next_offset(log), 0);
  assert_int_equal(rn_log_segment_count(log), 1);
  check_epochs(log, NULL, 0);
  put(f->io, log, 700, 1, 0);
  check_epochs(log, (rn_log_epoch_t[]){{0, 0}}, 1);
  /* The blocking call is the same job. */
  uint64_t x = put(f->io, log, 701, 2, 4);
  put(f->io, log, 702, 2, 4);
  assert_int_equal(rn_log_truncate(log, x + 1), RN_EINVAL);
  assert_int_equal(rn_log_truncate(log, x), 0);
  check_epochs(log, (rn_log_epoch_t[]){{0, 0}}, 1);
  assert_int_equal(rn_log_close(log), 0);
  log = open_named(f, "shard", &rec);
  assert_int_equal(rn_log_next_offset(log), x);
  check_epochs(log, (rn_log_epoch_t[]){{0, 0}}, 1);

  /* Closing with a truncation that has not started cancels it. */
  size_t blen;
  uint8_t *bb = lt_batch(800, 1, 10, 5, RN_CODEC_NONE, &blen);
  lt_ack_t pend = {0};
  assert_int_equal(rn_log_append(log, bb, blen, 0, lt_ack_cb, &pend, NULL), 0);
  free(bb);
  w = (twait_t){0};
  assert_int_equal(rn_log_truncate_async(log, 0, trunc_cb, &w), 0);
  assert_int_equal(w.done, 0);
  assert_int_equal(rn_log_close(log), 0);
  assert_int_equal(w.done, 1);
  assert_int_equal(w.err, RN_ECANCELED);
  assert_int_equal(pend.done, 1);
  assert_int_equal(pend.err, 0);
}

/* Journal mode: acknowledged batches live only in the journal, a crash,
 * the journal replays them into the segment; the follower then truncates
 * below that replayed tail and writes new batches of a new epoch. A second
 * crash must not replay the old records over the new ones. */
static void test_truncate_journal_replayed_tail(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(21);
  rn_io_t *io = lt_io(crashfs_fs(cfs));
  int64_t now = 1000; /* frozen: no timed checkpoint, the segments stay unsynced */
  rn_journal_opts_t jo;
  rn_journal_opts_default(&jo);
  jo.size_bytes = 4u << 20;
  jo.direct_bytes = 0;
  jo.logger.fn = quiet;
  jo.clock.wall_ms = fx_clock;
  fx_t clockfx = {.now = now};
  jo.clock.arg = &clockfx;
  rn_journal_t *j = NULL;
  rn_journal_recovery_t jrec;
  assert_int_equal(rn_journal_open(io, "/d/journal", &jo, &j, &jrec), 0);
  rn_log_opts_t o;
  rn_log_opts_default(&o);
  o.segment_bytes = 1u << 20;
  o.max_batch_bytes = 64u << 10;
  o.journal = j;
  o.journal_id = 5;
  o.logger.fn = quiet;
  o.clock = jo.clock;
  rn_log_t *log = lt_open(io, "/d/s", &o);
  uint64_t bases[30];
  for (uint64_t i = 0; i < 30; i++) bases[i] = put(io, log, i, 2, i < 10 ? 1 : 2);
  rn_journal_stats_t st;
  rn_journal_stats(j, &st);
  assert_int_equal(st.checkpoints, 0);
  crashfs_arm(cfs, 1); /* down: nothing more reaches the disk */
  (void)rn_log_close(log);
  (void)rn_journal_close(j);
  rn_io_destroy(io);
  crashfs_crash(cfs);

  io = lt_io(crashfs_fs(cfs));
  assert_int_equal(rn_journal_open(io, "/d/journal", &jo, &j, &jrec), 0);
  o.journal = j;
  rn_log_recovery_t rec;
  assert_int_equal(rn_log_open(io, "/d/s", &o, &log, &rec), 0);
  assert_true(rec.journal_replayed > 0);
  assert_int_equal(rn_log_next_offset(log), bases[29] + 2);
  check_epochs(log, (rn_log_epoch_t[]){{1, 0}, {2, bases[10]}}, 2);
  /* Below the replayed tail, into epoch 1. */
  assert_int_equal(cut(io, log, bases[5]), 0);
  check_epochs(log, (rn_log_epoch_t[]){{1, 0}}, 1);
  for (uint64_t i = 100; i < 110; i++) put(io, log, i, 3, 4);
  check_epochs(log, (rn_log_epoch_t[]){{1, 0}, {4, bases[5]}}, 2);
  uint64_t end = rn_log_next_offset(log);
  size_t want_len;
  uint8_t *want = lt_read_bytes(log, 0, &want_len);
  crashfs_arm(cfs, 1);
  (void)rn_log_close(log);
  (void)rn_journal_close(j);
  rn_io_destroy(io);
  crashfs_crash(cfs);

  io = lt_io(crashfs_fs(cfs));
  assert_int_equal(rn_journal_open(io, "/d/journal", &jo, &j, &jrec), 0);
  o.journal = j;
  assert_int_equal(rn_log_open(io, "/d/s", &o, &log, &rec), 0);
  assert_int_equal(rn_log_next_offset(log), end);
  size_t got_len;
  uint8_t *got = lt_read_bytes(log, 0, &got_len);
  assert_int_equal(got_len, want_len);
  assert_memory_equal(got, want, want_len);
  check_epochs(log, (rn_log_epoch_t[]){{1, 0}, {4, bases[5]}}, 2);
  free(got);
  free(want);
  assert_int_equal(rn_log_close(log), 0);
  assert_int_equal(rn_journal_close(j), 0);
  rn_io_destroy(io);
  crashfs_free(cfs);
}

/* ---- on a loop thread ------------------------------------------------------------------------- */

/* What an event loop does: poll rn_io_fd, run completions, until *count
 * reaches want. */
static void loop_until(rn_io_t *io, const int *count, int want) {
  while (*count < want) {
    struct pollfd p = {.fd = rn_io_fd(io), .events = POLLIN};
    assert_true(poll(&p, 1, -1) >= 0);
    rn_io_poll(io);
  }
}

static void on_loop_ack(void *arg, rn_err_t err, uint64_t base) {
  (void)base;
  assert_int_equal(err, 0);
  (*(int *)arg)++;
}

static void on_loop_trunc(void *arg, rn_err_t err) {
  assert_int_equal(err, 0);
  (*(int *)arg)++;
}

/* Replica appends, epoch changes, seals and index checkpoints (they write
 * the history on the background lane) and an asynchronous truncation with
 * the thread marked as an event loop: the armed blocking check aborts on
 * any blocking call. */
static void test_loop_thread(void **state) {
  fx_t *f = *state;
  f->opts.segment_bytes = 4096;
  f->opts.index_checkpoint_bytes = 2048;
  rn_log_t *leader = open_named(f, "leader", NULL);
  for (uint64_t i = 0; i < 80; i++) put(f->io, leader, i, 2, 1 + (uint32_t)(i / 20));
  size_t len;
  uint8_t *bytes = lt_read_bytes(leader, 0, &len);
  rn_log_t *fol = open_named(f, "follower", NULL);
  uint64_t cut_at = 0;
  rn_thread_mark_loop();
  size_t at = 0;
  int acks = 0, calls = 0, batches = 0;
  while (at < len) {
    uint32_t n = 0;
    assert_int_equal(rn_log_append_replica_many(fol, bytes + at, len - at, on_loop_ack, &acks, &n), 0);
    for (uint32_t i = 0; i < n; i++, batches++) {
      rn_batch_header_t h;
      assert_int_equal(rn_batch_header_decode(bytes + at, len - at, &h), 0);
      if (batches == 50) cut_at = h.base_offset; /* inside epoch 3 */
      at += h.batch_length;
    }
    calls++;
  }
  loop_until(f->io, &acks, calls);
  /* The follower becomes leader of epoch 9, then is cut back to 50. */
  size_t blen;
  uint8_t *b = lt_batch(900, 2, 50, 5, RN_CODEC_NONE, &blen);
  assert_int_equal(rn_log_append(fol, b, blen, 9, on_loop_ack, &acks, NULL), 0);
  assert_int_equal(rn_log_append(fol, b, blen, 9, on_loop_ack, &acks, NULL), 0);
  int tdone = 0;
  assert_int_equal(rn_log_truncate_async(fol, cut_at, on_loop_trunc, &tdone), 0);
  loop_until(f->io, &tdone, 1);
  assert_int_equal(acks, calls + 2);
  assert_int_equal(rn_log_next_offset(fol), cut_at);
  assert_int_equal(rn_log_append(fol, b, blen, 10, on_loop_ack, &acks, NULL), 0);
  loop_until(f->io, &acks, calls + 3);
  rn_thread_unmark_loop();
  free(b);
  free(bytes);
  rn_log_epoch_t h[8];
  assert_int_equal(rn_log_epochs(fol, h, 8), 4);
  assert_int_equal(h[2].epoch, 3);
  assert_int_equal(h[3].epoch, 10);
  assert_int_equal(h[3].start_offset, cut_at);
  check_epochs(fol, h, 4);
  assert_int_equal(rn_log_close(fol), 0);
  assert_int_equal(rn_log_close(leader), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_replica_keeps_bytes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replica_many_splits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replica_rejects, setup, teardown),
      cmocka_unit_test_setup_teardown(test_history_restart, setup, teardown),
      cmocka_unit_test(test_history_crash_sim),
      cmocka_unit_test(test_epoch_end_pure),
      cmocka_unit_test(test_divergence_pure),
      cmocka_unit_test_setup_teardown(test_divergence_logs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_divergence_two_rounds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncate_async, setup, teardown),
      cmocka_unit_test(test_truncate_journal_replayed_tail),
      cmocka_unit_test_setup_teardown(test_loop_thread, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
