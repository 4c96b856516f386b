/*
 * test_corruption.c — damaged files on the real file system, behaving as
 * docs/storage.md ("Damage") says:
 *   - last segment, after an unclean stop: a flipped byte, a cut tail or
 *     garbage at the end is a torn write; the segment is truncated at the
 *     first bad batch and everything before it is kept;
 *   - an earlier (sealed) segment: open still succeeds in O(segments) when
 *     its index is intact, the damaged batch is never served (RN_ECORRUPT),
 *     the others are, and rn_log_verify names the damage; when the index must
 *     be rebuilt, or the file is shorter than its index says, open refuses
 *     with RN_ECORRUPT and says where instead of dropping later segments.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logtest.h"
#include "testutil.h"

typedef struct fx {
  char *tmp;
  char dir[600];
  rn_io_t *io;
  rn_log_opts_t opts;
  uint64_t bases[64];
  uint64_t end;
} fx_t;

static void quiet(void *arg, rn_level_t level, const char *msg) {
  (void)arg;
  (void)level;
  (void)msg;
}

/* 40 batches of 5 records (~1.6 KB each) in 8 KiB segments: ~9 segments. */
static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  f->tmp = rn_test_tmpdir();
  snprintf(f->dir, sizeof(f->dir), "%s/shard", f->tmp);
  f->io = lt_io(NULL);
  rn_log_opts_default(&f->opts);
  f->opts.segment_bytes = 8192;
  f->opts.logger.fn = quiet;
  rn_log_t *log;
  assert_int_equal(rn_log_open(f->io, f->dir, &f->opts, &log, NULL), 0);
  for (int i = 0; i < 40; i++) {
    size_t len;
    uint8_t *b = lt_batch((uint64_t)i, 5, 300, i, RN_CODEC_NONE, &len);
    lt_ack_t a = {0};
    assert_int_equal(rn_log_append(log, b, len, 1, lt_ack_cb, &a, &f->bases[i]), 0);
    free(b);
    lt_wait(f->io, &a);
    assert_int_equal(a.err, 0);
  }
  f->end = rn_log_end(log);
  assert_true(rn_log_segment_count(log) > 4);
  assert_int_equal(rn_log_close(log), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  rn_io_destroy(f->io);
  rn_test_rmtree(f->tmp);
  free(f->tmp);
  free(f);
  return 0;
}

/* Segment file names, sorted: index 0 is the oldest. */
static int seg_paths(fx_t *f, char paths[][1000], int max) {
  char cmd[800];
  snprintf(cmd, sizeof(cmd), "ls '%s' | grep '\\.log$' | sort", f->dir);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  int n = 0;
  char line[256];
  while (n < max && fgets(line, sizeof(line), p)) {
    line[strcspn(line, "\n")] = 0;
    snprintf(paths[n++], 1000, "%s/%s", f->dir, line);
  }
  pclose(p);
  return n;
}

static void flip_byte(const char *path, off_t at) {
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  uint8_t c;
  assert_int_equal(pread(fd, &c, 1, at), 1);
  c ^= 0x40;
  assert_int_equal(pwrite(fd, &c, 1, at), 1);
  close(fd);
}

static off_t file_size(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return st.st_size;
}

static void unclean(fx_t *f) {
  char path[700];
  snprintf(path, sizeof(path), "%s/clean-shutdown", f->dir);
  assert_int_equal(unlink(path), 0);
}

static rn_log_t *reopen(fx_t *f, rn_log_recovery_t *rec, rn_err_t want) {
  rn_log_t *log = NULL;
  rn_err_t err = rn_log_open(f->io, f->dir, &f->opts, &log, rec);
  assert_int_equal(err, want);
  return log;
}

/* How many records are readable from 0, stopping at the first error. */
static uint64_t readable(rn_log_t *log, rn_err_t *err) {
  uint64_t count = 0;
  *err = lt_read_all(log, 0, NULL, NULL, &count);
  return count;
}

static void test_last_segment_flipped_byte(void **state) {
  fx_t *f = *state;
  char paths[64][1000];
  int n = seg_paths(f, paths, 64);
  off_t size = file_size(paths[n - 1]);
  assert_true(size > 200);
  flip_byte(paths[n - 1], size - 10); /* inside the last batch */
  unclean(f);
  rn_log_recovery_t rec;
  rn_log_t *log = reopen(f, &rec, 0);
  assert_false(rec.clean);
  assert_true(rec.bytes_truncated > 0);
  /* Exactly the last batch is gone. */
  assert_int_equal(rn_log_end(log), f->bases[39]);
  rn_err_t err;
  assert_int_equal(readable(log, &err), f->bases[39]);
  assert_int_equal(err, 0);
  assert_int_equal(rn_log_verify(log, NULL, 0), 0);
  assert_int_equal(rn_log_close(log), 0);
}

static void test_last_segment_truncated_and_garbage(void **state) {
  fx_t *f = *state;
  char paths[64][1000];
  int n = seg_paths(f, paths, 64);
  off_t size = file_size(paths[n - 1]);
  assert_int_equal(truncate(paths[n - 1], size - 1), 0);
  unclean(f);
  rn_log_recovery_t rec;
  rn_log_t *log = reopen(f, &rec, 0);
  assert_int_equal(rn_log_end(log), f->bases[39]);
  assert_int_equal(rn_log_close(log), 0);
  /* Garbage after the last whole batch. */
  size = file_size(paths[n - 1]);
  FILE *fp = fopen(paths[n - 1], "ab");
  assert_non_null(fp);
  fputs("this is not a batch, just bytes after a crash", fp);
  fclose(fp);
  unclean(f);
  log = reopen(f, &rec, 0);
  assert_int_equal(rec.bytes_truncated, strlen("this is not a batch, just bytes after a crash"));
  assert_int_equal(rn_log_end(log), f->bases[39]);
  assert_int_equal(file_size(paths[n - 1]), size);
  assert_int_equal(rn_log_close(log), 0);
}

static void test_earlier_segment_flipped_byte(void **state) {
  fx_t *f = *state;
  char paths[64][1000];
  int n = seg_paths(f, paths, 64);
  assert_true(n > 3);
  flip_byte(paths[1], 100); /* inside the first batch of segment 1 */
  unclean(f);
  rn_log_recovery_t rec;
  rn_log_t *log = reopen(f, &rec, 0);
  /* Sealed segments are trusted at open (no scan of old data)... */
  assert_true(rec.segments_scanned <= 1);
  assert_int_equal(rn_log_end(log), f->end);
  /* ...but the damaged batch is never served, the others are. */
  rn_err_t err;
  uint64_t ok = readable(log, &err);
  assert_int_equal(err, RN_ECORRUPT);
  assert_true(ok > 0 && ok < f->end);
  uint8_t *buf = malloc(1 << 16);
  size_t len;
  assert_int_equal(rn_log_read(log, ok, buf, 1 << 16, &len), RN_ECORRUPT);
  assert_int_equal(rn_log_read(log, f->bases[39], buf, 1 << 16, &len), 0);
  assert_true(len > 0);
  free(buf);
  char msg[256];
  assert_int_equal(rn_log_verify(log, msg, sizeof(msg)), RN_ECORRUPT);
  assert_non_null(strstr(msg, "00000000000000000"));
  assert_int_equal(rn_log_close(log), 0);

  /* Without its index the damage is found at open: refuse, say where, and
   * delete nothing. */
  char idx[1100];
  snprintf(idx, sizeof(idx), "%.*s.index", (int)(strlen(paths[1]) - 4), paths[1]);
  assert_int_equal(unlink(idx), 0);
  unclean(f);
  log = reopen(f, &rec, RN_ECORRUPT);
  assert_null(log);
  assert_non_null(strstr(rec.message, "below the recovery point"));
  int n2 = seg_paths(f, paths, 64);
  assert_int_equal(n2, n);
}

static void test_earlier_segment_truncated(void **state) {
  fx_t *f = *state;
  char paths[64][1000];
  int n = seg_paths(f, paths, 64);
  off_t size = file_size(paths[1]);
  assert_int_equal(truncate(paths[1], size - 5), 0);
  rn_log_recovery_t rec;
  /* Clean marker present: the index no longer covers the file; rebuilding
   * it finds a torn batch in a sealed segment. */
  rn_log_t *log = reopen(f, &rec, RN_ECORRUPT);
  assert_null(log);
  assert_true(strlen(rec.message) > 0);
  assert_int_equal(seg_paths(f, paths, 64), n);
}

static void test_damaged_recovery_point_scans_all(void **state) {
  fx_t *f = *state;
  char path[700];
  snprintf(path, sizeof(path), "%s/recovery-point", f->dir);
  FILE *fp = fopen(path, "wb");
  fputs("junk", fp);
  fclose(fp);
  unclean(f);
  rn_log_recovery_t rec;
  rn_log_t *log = reopen(f, &rec, 0);
  assert_int_equal(rec.segments_scanned, rec.segments);
  assert_int_equal(rn_log_end(log), f->end);
  assert_int_equal(rn_log_close(log), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_last_segment_flipped_byte, setup, teardown),
      cmocka_unit_test_setup_teardown(test_last_segment_truncated_and_garbage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_earlier_segment_flipped_byte, setup, teardown),
      cmocka_unit_test_setup_teardown(test_earlier_segment_truncated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_damaged_recovery_point_scans_all, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
