/*
 * test_journal.c — the shared journal (storage/journal.c; docs/storage.md,
 * "The journal"): its codecs, many logs acknowledged through one journal
 * that wraps and checkpoints, replay after a machine crash, the failed-
 * fdatasync rule, and the errors of bad options and a damaged header.
 * Randomized crashes at every operation are in tests/fault/test_crash_sim.c.
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

#include "crashfs.h"
#include "log_int.h"
#include "logtest.h"
#include "testutil.h"

static void quiet(void *arg, rn_level_t level, const char *msg) {
  (void)arg;
  (void)level;
  (void)msg;
}

static int64_t frozen(void *arg) { return *(int64_t *)arg; }

/* ---- codecs ------------------------------------------------------------------------ */

static void test_codecs(void **state) {
  (void)state;
  rn__journal_head_t h = {.seq = 7, .gen = 3, .size = 4u << 20, .fence_lsn = 100, .cp_lsn = 90, .cp_pos = 8192};
  uint8_t b[60];
  rn__journal_head_encode(&h, b);
  rn__journal_head_t d;
  assert_int_equal(rn__journal_head_decode(b, sizeof(b), &d), 0);
  assert_int_equal(d.seq, 7);
  assert_int_equal(d.gen, 3);
  assert_int_equal(d.cp_pos, 8192);
  assert_int_equal(d.fence_lsn, 100);
  assert_int_equal(rn__journal_head_decode(b, 59, &d), RN_EPARTIAL);
  b[20] ^= 1;
  assert_int_equal(rn__journal_head_decode(b, sizeof(b), &d), RN_ECORRUPT);
  b[20] ^= 1;
  b[0] ^= 1;
  assert_int_equal(rn__journal_head_decode(b, sizeof(b), &d), RN_EFORMAT);

  uint8_t payload[100];
  for (int i = 0; i < 100; i++) payload[i] = (uint8_t)i;
  rn__journal_rec_t r = {.kind = 1, .gen = 2, .len = 100, .lsn = 55, .log_id = 9, .seg_base = 4, .file_pos = 77};
  uint8_t hdr[56];
  rn__journal_rec_encode(&r, payload, hdr);
  rn__journal_rec_t q;
  assert_int_equal(rn__journal_rec_decode_hdr(hdr, sizeof(hdr), &q), 0);
  assert_int_equal(q.lsn, 55);
  assert_int_equal(q.log_id, 9);
  assert_int_equal(q.file_pos, 77);
  assert_true(rn__journal_rec_check(hdr, payload, 100, q.sum));
  payload[50] ^= 0x80; /* a torn payload is caught */
  assert_false(rn__journal_rec_check(hdr, payload, 100, q.sum));
  hdr[4] = 9; /* unknown kind */
  assert_int_equal(rn__journal_rec_decode_hdr(hdr, sizeof(hdr), &q), RN_EFORMAT);
}

/* ---- many logs, one journal --------------------------------------------------------- */

#define NLOGS 12

static rn_journal_t *open_journal(rn_io_t *io, const char *path, uint64_t size, uint32_t direct, int64_t *clock,
                                  rn_journal_recovery_t *rec) {
  rn_journal_opts_t jo;
  rn_journal_opts_default(&jo);
  jo.size_bytes = size;
  jo.direct_bytes = direct;
  jo.logger.fn = quiet;
  if (clock) {
    jo.clock.wall_ms = frozen;
    jo.clock.arg = clock;
  }
  rn_journal_t *j = NULL;
  rn_err_t err = rn_journal_open(io, path, &jo, &j, rec);
  if (err) fail_msg("journal open: %s: %s", rn_err_name(err), rec->message);
  return j;
}

static void log_opts(rn_log_opts_t *o, rn_journal_t *j, uint64_t id, int64_t *clock) {
  rn_log_opts_default(o);
  o->segment_bytes = 96u << 10; /* several segments: rolls, seals, directory syncs */
  o->max_batch_bytes = 64u << 10;
  o->journal = j;
  o->journal_id = id;
  o->logger.fn = quiet;
  if (clock) {
    o->clock.wall_ms = frozen;
    o->clock.arg = clock;
  }
}

static void check_log(rn_log_t *log, uint64_t want) {
  uint64_t count = 0;
  assert_int_equal(lt_read_all(log, 0, NULL, NULL, &count), 0);
  assert_int_equal(count, want);
  assert_int_equal(rn_log_end(log), want);
  char msg[256];
  assert_int_equal(rn_log_verify(log, msg, sizeof(msg)), 0);
}

static void test_many_logs_wrap(void **state) {
  (void)state;
  char *dir = rn_test_tmpdir();
  char jpath[4200];
  snprintf(jpath, sizeof(jpath), "%s/journal", dir);
  rn_io_t *io = lt_io(NULL);
  rn_journal_recovery_t jrec;
  rn_journal_t *j = open_journal(io, jpath, 1280u << 10, 0, NULL, &jrec);
  assert_true(jrec.created);
  rn_log_t *logs[NLOGS];
  rn_log_opts_t o;
  for (int i = 0; i < NLOGS; i++) {
    char d[4200];
    snprintf(d, sizeof(d), "%s/log%d", dir, i);
    log_opts(&o, j, 100 + (uint64_t)i, NULL);
    logs[i] = lt_open(io, d, &o);
  }
  /* ~4 MB through a 1.25 MiB journal: it must wrap, checkpoint, and wait
   * for space, and every append is still acknowledged. */
  enum { N = 2400 };
  static lt_ack_t acks[N];
  memset(acks, 0, sizeof(acks));
  uint64_t per_log[NLOGS] = {0};
  for (int k = 0; k < N; k++) {
    int li = k % NLOGS;
    size_t len;
    uint8_t *b = lt_batch((uint64_t)k, 2, 800, 1000 + k, RN_CODEC_NONE, &len);
    assert_int_equal(rn_log_append(logs[li], b, len, 1, lt_ack_cb, &acks[k], NULL), 0);
    free(b);
    per_log[li] += 2;
    if (k % 50 == 49) rn_io_wait(io, -1); /* let rounds land while more arrive */
  }
  for (int k = 0; k < N; k++) {
    lt_wait(io, &acks[k]);
    assert_int_equal(acks[k].err, 0);
  }
  /* An append may be acknowledged by a checkpoint's segment sync while its
   * record still waits for space: let every record be placed. */
  lt_drain(io);
  rn_journal_stats_t st;
  rn_journal_stats(j, &st);
  assert_true(st.bytes > st.size_bytes); /* wrapped */
  assert_true(st.checkpoints >= 1);
  assert_true(st.rounds >= 1 && st.rounds <= st.records);
  assert_int_equal(st.direct_records, 0);
  for (int i = 0; i < NLOGS; i++) check_log(logs[i], per_log[i]);
  for (int i = 0; i < NLOGS; i++) assert_int_equal(rn_log_close(logs[i]), 0);
  assert_int_equal(rn_journal_close(j), 0);

  /* A clean close leaves nothing to replay; the data is all there. */
  j = open_journal(io, jpath, 1280u << 10, 0, NULL, &jrec);
  assert_false(jrec.created);
  assert_int_equal(jrec.records, 0);
  for (int i = 0; i < NLOGS; i++) {
    char d[4200];
    snprintf(d, sizeof(d), "%s/log%d", dir, i);
    log_opts(&o, j, 100 + (uint64_t)i, NULL);
    logs[i] = lt_open(io, d, &o);
    check_log(logs[i], per_log[i]);
    assert_int_equal(rn_log_close(logs[i]), 0);
  }
  assert_int_equal(rn_journal_close(j), 0);
  rn_io_destroy(io);
  rn_test_rmtree(dir);
  free(dir);
}

/* ---- a machine crash: the journal brings back what the segments lost ------------------ */

static void crash_replay(bool direct) {
  crashfs_t *cfs = crashfs_new(direct ? 11 : 7);
  rn_io_t *io = lt_io(crashfs_fs(cfs));
  int64_t now = 1000; /* frozen: no timed checkpoint, so the segments stay unsynced */
  rn_journal_recovery_t jrec;
  rn_journal_t *j = open_journal(io, "/d/journal", 4u << 20, direct ? 1500 : 0, &now, &jrec);
  rn_log_t *logs[3];
  rn_log_opts_t o;
  char d[64];
  for (int i = 0; i < 3; i++) {
    snprintf(d, sizeof(d), "/d/log%d", i);
    log_opts(&o, j, 1 + (uint64_t)i, &now);
    logs[i] = lt_open(io, d, &o);
  }
  lt_ack_t acks[60] = {{0}};
  for (int k = 0; k < 60; k++) {
    size_t len;
    uint8_t *b = lt_batch((uint64_t)k, 3, (k % 3 == 0) ? 700 : 100, 1000 + k, RN_CODEC_NONE, &len);
    assert_int_equal(rn_log_append(logs[k % 3], b, len, 1, lt_ack_cb, &acks[k], NULL), 0);
    free(b);
    lt_wait(io, &acks[k]); /* one at a time: every round holds one record */
    assert_int_equal(acks[k].err, 0);
  }
  rn_journal_stats_t st;
  rn_journal_stats(j, &st);
  assert_int_equal(st.checkpoints, 0);
  if (direct) assert_true(st.direct_records > 0 && st.direct_records < st.records + st.direct_records);
  /* The machine goes down now: nothing more reaches the disk. */
  crashfs_arm(cfs, 1);
  for (int i = 0; i < 3; i++) (void)rn_log_close(logs[i]);
  (void)rn_journal_close(j);
  rn_io_destroy(io);
  crashfs_crash(cfs);

  io = lt_io(crashfs_fs(cfs));
  j = open_journal(io, "/d/journal", 4u << 20, direct ? 1500 : 0, &now, &jrec);
  assert_true(jrec.records > 0);
  uint64_t replayed = 0;
  for (int i = 0; i < 3; i++) {
    snprintf(d, sizeof(d), "/d/log%d", i);
    log_opts(&o, j, 1 + (uint64_t)i, &now);
    rn_log_recovery_t rec;
    assert_int_equal(rn_log_open(io, d, &o, &logs[i], &rec), 0);
    replayed += rec.journal_replayed;
    check_log(logs[i], 60);
    assert_int_equal(rn_log_close(logs[i]), 0);
  }
  assert_true(replayed > 0);
  assert_int_equal(rn_journal_close(j), 0);
  rn_io_destroy(io);
  crashfs_free(cfs);
}

static void test_crash_replay(void **state) {
  (void)state;
  crash_replay(false);
}

static void test_crash_replay_direct(void **state) {
  (void)state;
  crash_replay(true);
}

/* ---- the failed-fdatasync rule --------------------------------------------------------- */

static void test_failed_journal_fdatasync(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(3);
  rn_io_t *io = lt_io(crashfs_fs(cfs));
  rn_journal_recovery_t jrec;
  rn_journal_t *j = open_journal(io, "/d/journal", 2u << 20, 0, NULL, &jrec);
  rn_log_opts_t o;
  log_opts(&o, j, 5, NULL);
  rn_log_t *a = lt_open(io, "/d/a", &o);
  log_opts(&o, j, 6, NULL);
  rn_log_t *b = lt_open(io, "/d/b", &o);
  size_t len;
  uint8_t *bytes = lt_batch(1, 2, 64, 10, RN_CODEC_NONE, &len);
  lt_ack_t a1 = {0}, a2 = {0};
  assert_int_equal(rn_log_append(a, bytes, len, 1, lt_ack_cb, &a1, NULL), 0);
  lt_wait(io, &a1);
  assert_int_equal(a1.err, 0);
  /* Next append: its segment write (1), the journal's write (2), the
   * journal's fdatasync (3) fails. */
  crashfs_arm(cfs, 3);
  assert_int_equal(rn_log_append(b, bytes, len, 1, lt_ack_cb, &a2, NULL), 0);
  lt_wait(io, &a2);
  assert_int_equal(a2.err, RN_EIO);
  assert_int_equal(rn_journal_failure(j), RN_EIO);
  assert_int_equal(rn_log_failure(b), RN_EIO);
  /* Nothing on the journal is acknowledged any more. */
  lt_ack_t a3 = {0};
  rn_err_t err = rn_log_append(a, bytes, len, 1, lt_ack_cb, &a3, NULL);
  if (err == 0) {
    lt_wait(io, &a3);
    assert_int_not_equal(a3.err, 0);
  }
  (void)rn_log_close(a);
  (void)rn_log_close(b);
  assert_int_equal(rn_journal_close(j), RN_EIO);
  rn_io_destroy(io);
  crashfs_crash(cfs);
  io = lt_io(crashfs_fs(cfs));
  j = open_journal(io, "/d/journal", 2u << 20, 0, NULL, &jrec);
  log_opts(&o, j, 5, NULL);
  a = lt_open(io, "/d/a", &o);
  assert_true(rn_log_end(a) >= 2); /* the acknowledged batch */
  assert_int_equal(rn_log_close(a), 0);
  assert_int_equal(rn_journal_close(j), 0);
  rn_io_destroy(io);
  crashfs_free(cfs);
  free(bytes);
}

/* ---- bad options, a damaged header --------------------------------------------------------- */

static void test_errors(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(5);
  rn_io_t *io = lt_io(crashfs_fs(cfs));
  rn_journal_opts_t jo;
  rn_journal_opts_default(&jo);
  jo.size_bytes = 512u << 10; /* below the minimum */
  jo.logger.fn = quiet;
  rn_journal_t *j = NULL;
  rn_journal_recovery_t jrec;
  assert_int_equal(rn_journal_open(io, "/d/journal", &jo, &j, &jrec), RN_EINVAL);
  assert_non_null(strstr(jrec.message, "minimum"));
  j = open_journal(io, "/d/journal", 2u << 20, 0, NULL, &jrec);
  rn_log_opts_t o;
  rn_log_t *log = NULL;
  rn_log_recovery_t rec;
  log_opts(&o, j, 0, NULL); /* no id */
  assert_int_equal(rn_log_open(io, "/d/x", &o, &log, &rec), RN_EINVAL);
  assert_non_null(strstr(rec.message, "journal_id"));
  log_opts(&o, j, 1, NULL);
  o.max_batch_bytes = 8u << 20; /* more than a quarter of 2 MiB */
  assert_int_equal(rn_log_open(io, "/d/x", &o, &log, &rec), RN_EINVAL);
  assert_non_null(strstr(rec.message, "too small"));
  assert_int_equal(rn_journal_close(j), 0);
  /* Both header slots damaged: refuse to start rather than guess. */
  rn_fs_t *fs = crashfs_fs(cfs);
  rn_file_t *f;
  assert_int_equal(fs->open(fs, "/d/journal", 0, &f), 0);
  uint8_t junk[1024];
  memset(junk, 0x5a, sizeof(junk));
  struct iovec iov = {.iov_base = junk, .iov_len = sizeof(junk)};
  assert_int_equal(fs->pwritev(f, &iov, 1, 0), 0);
  fs->close(f);
  jo.size_bytes = 2u << 20;
  assert_int_equal(rn_journal_open(io, "/d/journal", &jo, &j, &jrec), RN_ECORRUPT);
  assert_non_null(strstr(jrec.message, "header"));
  rn_io_destroy(io);
  crashfs_free(cfs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codecs),
      cmocka_unit_test(test_many_logs_wrap),
      cmocka_unit_test(test_crash_replay),
      cmocka_unit_test(test_crash_replay_direct),
      cmocka_unit_test(test_failed_journal_fdatasync),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
