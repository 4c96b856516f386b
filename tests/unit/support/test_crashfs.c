/*
 * test_crashfs.c — proves the crash simulator's model (tests/support/crashfs.h)
 * before anything else trusts it: what was made durable always survives, what
 * was not shows every allowed outcome across seeds and nothing else, the
 * crash trigger fails exactly the operations it should, and equal seeds give
 * equal results.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crashfs.h"
#include "testutil.h"

#define NSEEDS 400

/* ---- helpers -------------------------------------------------------------- */

static rn_fs_t *fs_of(crashfs_t *cfs) { return crashfs_fs(cfs); }

static rn_file_t *open_ok(crashfs_t *cfs, const char *path, int flags) {
  rn_file_t *f = NULL;
  assert_int_equal(fs_of(cfs)->open(fs_of(cfs), path, flags, &f), 0);
  assert_non_null(f);
  return f;
}

static rn_err_t write_at(rn_file_t *f, void *buf, size_t len, uint64_t off) {
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  return f->fs->pwritev(f, &iov, 1, off);
}

static void plant(crashfs_t *cfs, const char *path, uint8_t byte, size_t len) {
  uint8_t *buf = malloc(len ? len : 1);
  assert_non_null(buf);
  memset(buf, byte, len);
  assert_int_equal(crashfs_write_file(cfs, path, buf, len), 0);
  free(buf);
}

static bool exists(crashfs_t *cfs, const char *path) {
  uint8_t *data = NULL;
  size_t len = 0;
  rn_err_t err = crashfs_read_file(cfs, path, &data, &len);
  if (err == RN_ENOENT) return false;
  assert_int_equal(err, 0);
  free(data);
  return true;
}

/* Whether path holds exactly len bytes all equal to byte. */
static bool holds(crashfs_t *cfs, const char *path, uint8_t byte, size_t len) {
  uint8_t *data = NULL;
  size_t n = 0;
  if (crashfs_read_file(cfs, path, &data, &n) != 0) return false;
  bool ok = n == len;
  for (size_t i = 0; ok && i < n; i++) ok = data[i] == byte;
  free(data);
  return ok;
}

static void fill_pattern(uint8_t *buf, size_t len, uint64_t seed) {
  uint64_t st = seed | 1;
  for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)rn_test_rand(&st);
}

/* ---- durability ----------------------------------------------------------- */

static void test_synced_data_survives(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= NSEEDS; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    rn_fs_t *fs = fs_of(cfs);
    uint8_t a[100], b[50], tail[50];
    fill_pattern(a, sizeof a, seed);
    fill_pattern(b, sizeof b, seed + 1000);
    memset(tail, 0x5A, sizeof tail);

    assert_int_equal(fs->mkdirs(fs, "d"), 0);
    rn_file_t *f = open_ok(cfs, "d/a", RN_FS_CREATE | RN_FS_EXCL);
    assert_int_equal(write_at(f, a, 60, 0), 0);
    assert_int_equal(write_at(f, a + 60, 40, 60), 0);
    assert_int_equal(f->fs->datasync(f), 0);
    rn_file_t *g = open_ok(cfs, "d/b", RN_FS_CREATE);
    assert_int_equal(write_at(g, tail, sizeof tail, 0), 0);
    assert_int_equal(g->fs->truncate(g, 20), 0);
    assert_int_equal(write_at(g, b, sizeof b, 0), 0);
    assert_int_equal(g->fs->datasync(g), 0);
    assert_int_equal(fs->sync_dir(fs, "d"), 0);

    /* Unsynced noise afterwards: an append and a new file. */
    assert_int_equal(write_at(f, tail, sizeof tail, 100), 0);
    rn_file_t *h = open_ok(cfs, "d/c", RN_FS_CREATE);
    assert_int_equal(write_at(h, tail, sizeof tail, 0), 0);

    crashfs_crash(cfs);

    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(crashfs_read_file(cfs, "d/a", &data, &len), 0);
    assert_true(len >= sizeof a && len <= sizeof a + sizeof tail);
    assert_memory_equal(data, a, sizeof a);
    free(data);
    assert_int_equal(crashfs_read_file(cfs, "d/b", &data, &len), 0);
    assert_int_equal(len, sizeof b);
    assert_memory_equal(data, b, sizeof b);
    free(data);

    fs->close(f);
    fs->close(g);
    fs->close(h);
    crashfs_free(cfs);
  }
}

/* After a crash the state is fully synced: a second crash changes nothing. */
static void test_crash_result_is_durable(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 50; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    rn_fs_t *fs = fs_of(cfs);
    uint8_t buf[64];
    fill_pattern(buf, sizeof buf, seed);
    plant(cfs, "d/a", 0, 64);
    rn_file_t *f = open_ok(cfs, "d/a", 0);
    assert_int_equal(write_at(f, buf, sizeof buf, 32), 0);
    assert_int_equal(fs->rename(fs, "d/a", "d/b"), 0);
    fs->close(f);
    crashfs_crash(cfs);

    const char *name = exists(cfs, "d/a") ? "d/a" : "d/b";
    uint8_t *one = NULL, *two = NULL;
    size_t n1 = 0, n2 = 0;
    assert_int_equal(crashfs_read_file(cfs, name, &one, &n1), 0);
    crashfs_crash(cfs);
    assert_int_equal(crashfs_read_file(cfs, name, &two, &n2), 0);
    assert_int_equal(n1, n2);
    assert_memory_equal(one, two, n1);
    free(one);
    free(two);
    crashfs_free(cfs);
  }
}

static void test_unsynced_write_outcomes(void **state) {
  (void)state;
  unsigned dropped = 0, kept = 0, partial = 0, garbled = 0;
  for (uint64_t seed = 1; seed <= NSEEDS; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    plant(cfs, "f", 0x00, 64);
    rn_file_t *f = open_ok(cfs, "f", 0);
    uint8_t buf[64];
    memset(buf, 0xA5, sizeof buf);
    assert_int_equal(write_at(f, buf, sizeof buf, 0), 0);
    assert_true(holds(cfs, "f", 0xA5, 64)); /* the volatile view */
    crashfs_crash(cfs);

    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(crashfs_read_file(cfs, "f", &data, &len), 0);
    assert_int_equal(len, 64); /* an overwrite never changes the size */
    size_t p = 0;
    while (p < len && data[p] == 0xA5) p++;
    size_t zeros = 0;
    for (size_t i = p; i < len; i++) zeros += data[i] == 0x00;
    if (p == 0 && zeros == len)
      dropped++;
    else if (p == len)
      kept++;
    else if (zeros == len - p)
      partial++;
    else
      garbled++;
    free(data);
    f->fs->close(f);
    crashfs_free(cfs);
  }
  print_message("dropped %u kept %u partial %u garbled %u\n", dropped, kept, partial, garbled);
  assert_true(dropped > 0);
  assert_true(kept > 0);
  assert_true(partial > 0);
  assert_true(garbled > 0);
}

/* Pending ops of one file are resolved independently and in issue order: two
 * writes to disjoint ranges show all four kept/dropped combinations. */
static void test_unsynced_writes_independent(void **state) {
  (void)state;
  bool seen[2][2] = {{false}};
  for (uint64_t seed = 1; seed <= NSEEDS; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    plant(cfs, "f", 0x00, 32);
    rn_file_t *f = open_ok(cfs, "f", 0);
    uint8_t one[16], two[16];
    memset(one, 0x11, sizeof one);
    memset(two, 0x22, sizeof two);
    assert_int_equal(write_at(f, one, sizeof one, 0), 0);
    assert_int_equal(write_at(f, two, sizeof two, 16), 0);
    crashfs_crash(cfs);
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(crashfs_read_file(cfs, "f", &data, &len), 0);
    assert_int_equal(len, 32);
    bool k1 = memcmp(data, one, 16) == 0, k2 = memcmp(data + 16, two, 16) == 0;
    seen[k1][k2] = true;
    free(data);
    f->fs->close(f);
    crashfs_free(cfs);
  }
  assert_true(seen[0][0] && seen[0][1] && seen[1][0] && seen[1][1]);
}

/* ---- namespace ------------------------------------------------------------ */

static void test_create_without_sync_dir(void **state) {
  (void)state;
  unsigned vanished = 0, survived = 0;
  for (uint64_t seed = 1; seed <= NSEEDS; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    rn_file_t *f = open_ok(cfs, "d/new", RN_FS_CREATE | RN_FS_EXCL);
    uint8_t buf[32];
    memset(buf, 0x33, sizeof buf);
    assert_int_equal(write_at(f, buf, sizeof buf, 0), 0);
    assert_int_equal(f->fs->datasync(f), 0);
    f->fs->close(f);
    crashfs_crash(cfs);
    if (exists(cfs, "d/new")) {
      survived++;
      assert_true(holds(cfs, "d/new", 0x33, 32)); /* its data was synced */
    } else {
      vanished++;
    }
    crashfs_free(cfs);
  }
  assert_true(vanished > 0);
  assert_true(survived > 0);
}

static void test_create_with_sync_dir(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= NSEEDS; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    rn_fs_t *fs = fs_of(cfs);
    rn_file_t *f = open_ok(cfs, "d/new", RN_FS_CREATE | RN_FS_EXCL);
    uint8_t buf[32];
    memset(buf, 0x33, sizeof buf);
    assert_int_equal(write_at(f, buf, sizeof buf, 0), 0);
    assert_int_equal(f->fs->datasync(f), 0);
    assert_int_equal(fs->sync_dir(fs, "d"), 0);
    f->fs->close(f);
    crashfs_crash(cfs);
    assert_true(holds(cfs, "d/new", 0x33, 32));
    crashfs_free(cfs);
  }
}

/* Namespace operations become durable in issue order: the survivors of three
 * unsynced creates are always a prefix of them, and every prefix occurs. */
static void test_journal_prefix(void **state) {
  (void)state;
  bool seen[4] = {false};
  for (uint64_t seed = 1; seed <= NSEEDS; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    const char *names[3] = {"d/x", "d/y", "d/z"};
    for (int i = 0; i < 3; i++) fs_of(cfs)->close(open_ok(cfs, names[i], RN_FS_CREATE));
    crashfs_crash(cfs);
    int n = 0;
    while (n < 3 && exists(cfs, names[n])) n++;
    for (int i = n; i < 3; i++) assert_false(exists(cfs, names[i]));
    seen[n] = true;
    crashfs_free(cfs);
  }
  assert_true(seen[0] && seen[1] && seen[2] && seen[3]);
}

static void test_rename_without_sync_dir(void **state) {
  (void)state;
  unsigned old_name = 0, new_name = 0;
  for (uint64_t seed = 1; seed <= NSEEDS; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    rn_fs_t *fs = fs_of(cfs);
    plant(cfs, "d/a", 0x41, 40);
    assert_int_equal(fs->rename(fs, "d/a", "d/b"), 0);
    assert_false(exists(cfs, "d/a"));
    assert_true(holds(cfs, "d/b", 0x41, 40));
    crashfs_crash(cfs);
    bool a = holds(cfs, "d/a", 0x41, 40), b = holds(cfs, "d/b", 0x41, 40);
    assert_true(a != b); /* never both, never neither */
    assert_true(a ? !exists(cfs, "d/b") : !exists(cfs, "d/a"));
    old_name += a;
    new_name += b;
    crashfs_free(cfs);
  }
  assert_true(old_name > 0);
  assert_true(new_name > 0);
}

static void test_rename_over_existing(void **state) {
  (void)state;
  unsigned before = 0, after = 0;
  for (uint64_t seed = 1; seed <= NSEEDS; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    rn_fs_t *fs = fs_of(cfs);
    plant(cfs, "d/tmp", 0x01, 10);
    plant(cfs, "d/cur", 0x02, 20);
    assert_int_equal(fs->rename(fs, "d/tmp", "d/cur"), 0);
    crashfs_crash(cfs);
    if (holds(cfs, "d/cur", 0x02, 20)) {
      assert_true(holds(cfs, "d/tmp", 0x01, 10));
      before++;
    } else {
      assert_true(holds(cfs, "d/cur", 0x01, 10));
      assert_false(exists(cfs, "d/tmp"));
      after++;
    }
    crashfs_free(cfs);
  }
  assert_true(before > 0);
  assert_true(after > 0);

  crashfs_t *cfs = crashfs_new(7);
  rn_fs_t *fs = fs_of(cfs);
  plant(cfs, "d/tmp", 0x01, 10);
  plant(cfs, "d/cur", 0x02, 20);
  assert_int_equal(fs->rename(fs, "d/tmp", "d/cur"), 0);
  assert_int_equal(fs->sync_dir(fs, "d"), 0);
  crashfs_crash(cfs);
  assert_true(holds(cfs, "d/cur", 0x01, 10));
  assert_false(exists(cfs, "d/tmp"));
  crashfs_free(cfs);
}

static void test_dropped_unlink_brings_back(void **state) {
  (void)state;
  unsigned back = 0, gone = 0;
  for (uint64_t seed = 1; seed <= NSEEDS; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    rn_fs_t *fs = fs_of(cfs);
    plant(cfs, "d/a", 0x77, 100);
    assert_int_equal(fs->unlink(fs, "d/a"), 0);
    assert_false(exists(cfs, "d/a"));
    assert_int_equal(fs->unlink(fs, "d/a"), RN_ENOENT);
    crashfs_crash(cfs);
    if (exists(cfs, "d/a")) {
      assert_true(holds(cfs, "d/a", 0x77, 100));
      back++;
    } else {
      gone++;
    }
    crashfs_free(cfs);
  }
  assert_true(back > 0);
  assert_true(gone > 0);

  for (uint64_t seed = 1; seed <= 50; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    rn_fs_t *fs = fs_of(cfs);
    plant(cfs, "d/a", 0x77, 100);
    assert_int_equal(fs->unlink(fs, "d/a"), 0);
    assert_int_equal(fs->sync_dir(fs, "d"), 0);
    crashfs_crash(cfs);
    assert_false(exists(cfs, "d/a"));
    crashfs_free(cfs);
  }
}

/* An unlinked file that is still open keeps working; if the unlink is
 * dropped at the crash, what was synced through the handle is there. */
static void test_unlinked_open_file(void **state) {
  (void)state;
  unsigned back = 0;
  for (uint64_t seed = 1; seed <= 100; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    rn_fs_t *fs = fs_of(cfs);
    plant(cfs, "d/a", 0x00, 8);
    rn_file_t *f = open_ok(cfs, "d/a", 0);
    assert_int_equal(fs->unlink(fs, "d/a"), 0);
    uint8_t buf[8];
    memset(buf, 0x99, sizeof buf);
    assert_int_equal(write_at(f, buf, sizeof buf, 0), 0);
    assert_int_equal(f->fs->datasync(f), 0);
    uint8_t rd[8];
    size_t n = 0;
    assert_int_equal(f->fs->pread(f, rd, sizeof rd, 0, &n), 0);
    assert_int_equal(n, 8);
    assert_memory_equal(rd, buf, 8);
    crashfs_crash(cfs);
    if (exists(cfs, "d/a")) {
      assert_true(holds(cfs, "d/a", 0x99, 8));
      back++;
    }
    fs->close(f);
    crashfs_free(cfs);
  }
  assert_true(back > 0);
}

static void test_handle_follows_rename(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(1);
  rn_fs_t *fs = fs_of(cfs);
  rn_file_t *f = open_ok(cfs, "d/a", RN_FS_CREATE);
  assert_int_equal(fs->rename(fs, "d/a", "d/b"), 0);
  uint8_t buf[5];
  memset(buf, 0x42, sizeof buf);
  assert_int_equal(write_at(f, buf, sizeof buf, 0), 0);
  assert_true(holds(cfs, "d/b", 0x42, 5));
  assert_false(exists(cfs, "d/a"));
  assert_int_equal(f->fs->datasync(f), 0);
  assert_int_equal(fs->sync_dir(fs, "d"), 0);
  fs->close(f);
  crashfs_crash(cfs);
  assert_true(holds(cfs, "d/b", 0x42, 5));
  assert_false(exists(cfs, "d/a"));
  crashfs_free(cfs);
}

static void test_open_semantics(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(1);
  rn_fs_t *fs = fs_of(cfs);
  rn_file_t *f = NULL;
  assert_int_equal(fs->open(fs, "d/missing", 0, &f), RN_ENOENT);
  assert_int_equal(fs->open(fs, "d/missing", RN_FS_RDONLY, &f), RN_ENOENT);
  assert_null(f);
  assert_int_equal(fs->rename(fs, "d/missing", "d/x"), RN_ENOENT);
  assert_int_equal(fs->unlink(fs, "d/missing"), RN_ENOENT);
  assert_int_equal(crashfs_ops(cfs), 0); /* failed validation is not an op */

  plant(cfs, "d/a", 0x10, 10);
  assert_int_equal(fs->open(fs, "d/a", RN_FS_CREATE | RN_FS_EXCL, &f), RN_EEXIST);
  f = open_ok(cfs, "d/a", RN_FS_CREATE); /* existing, no TRUNC: not an op */
  assert_int_equal(crashfs_ops(cfs), 0);
  uint64_t size = 0;
  assert_int_equal(f->fs->size(f, &size), 0);
  assert_int_equal(size, 10);
  assert_int_equal(f->fd, -1);
  assert_ptr_equal(f->fs, fs);

  /* Gather write past the end: the gap reads as zeros. */
  uint8_t x[3] = {1, 2, 3}, y[2] = {4, 5};
  struct iovec iov[2] = {{.iov_base = x, .iov_len = sizeof x}, {.iov_base = y, .iov_len = sizeof y}};
  assert_int_equal(f->fs->pwritev(f, iov, 2, 12), 0);
  assert_int_equal(crashfs_ops(cfs), 1);
  uint8_t rd[32];
  size_t n = 0;
  assert_int_equal(f->fs->pread(f, rd, sizeof rd, 0, &n), 0);
  assert_int_equal(n, 17);
  uint8_t want[17] = {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0, 0, 1, 2, 3, 4, 5};
  assert_memory_equal(rd, want, sizeof want);
  assert_int_equal(f->fs->pread(f, rd, 4, 15, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(f->fs->pread(f, rd, 4, 17, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(f->fs->pread(f, rd, 4, 1000, &n), 0);
  assert_int_equal(n, 0);
  fs->close(f);

  /* A read-only handle refuses to write. */
  f = open_ok(cfs, "d/a", RN_FS_RDONLY);
  assert_true(write_at(f, x, sizeof x, 0) < 0);
  assert_true(f->fs->truncate(f, 0) < 0);
  assert_int_equal(f->fs->pread(f, rd, 1, 0, &n), 0);
  assert_int_equal(n, 1);
  fs->close(f);
  fs->close(NULL);
  assert_int_equal(crashfs_ops(cfs), 1);

  /* CREATE|EXCL on a missing file creates it. */
  f = open_ok(cfs, "d/b", RN_FS_CREATE | RN_FS_EXCL);
  assert_int_equal(f->fs->size(f, &size), 0);
  assert_int_equal(size, 0);
  fs->close(f);
  assert_int_equal(crashfs_ops(cfs), 2);
  crashfs_free(cfs);
}

static void test_truncate_semantics(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(3);
  rn_fs_t *fs = fs_of(cfs);
  rn_file_t *f = open_ok(cfs, "t", RN_FS_CREATE);
  uint8_t buf[100];
  fill_pattern(buf, sizeof buf, 9);
  assert_int_equal(write_at(f, buf, sizeof buf, 0), 0);
  assert_int_equal(f->fs->truncate(f, 10), 0);
  uint64_t size = 0;
  assert_int_equal(f->fs->size(f, &size), 0);
  assert_int_equal(size, 10);
  uint8_t rd[100];
  size_t n = 0;
  assert_int_equal(f->fs->pread(f, rd, sizeof rd, 0, &n), 0);
  assert_int_equal(n, 10);
  assert_memory_equal(rd, buf, 10);
  assert_int_equal(f->fs->truncate(f, 20), 0); /* growing zero-fills */
  assert_int_equal(f->fs->pread(f, rd, sizeof rd, 0, &n), 0);
  assert_int_equal(n, 20);
  assert_memory_equal(rd, buf, 10);
  for (int i = 10; i < 20; i++) assert_int_equal(rd[i], 0);
  assert_int_equal(f->fs->datasync(f), 0);
  assert_int_equal(fs->sync_dir(fs, ""), 0);
  fs->close(f);
  crashfs_crash(cfs);
  uint8_t *data = NULL;
  size_t len = 0;
  assert_int_equal(crashfs_read_file(cfs, "t", &data, &len), 0);
  assert_int_equal(len, 20);
  assert_memory_equal(data, rd, 20);
  free(data);
  crashfs_free(cfs);

  /* Unsynced truncates, by call or by O_TRUNC, are kept or dropped. */
  for (int via_open = 0; via_open < 2; via_open++) {
    unsigned kept = 0, dropped = 0;
    for (uint64_t seed = 1; seed <= 100; seed++) {
      cfs = crashfs_new(seed);
      plant(cfs, "t", 0x44, 64);
      if (via_open) {
        f = open_ok(cfs, "t", RN_FS_TRUNC);
      } else {
        f = open_ok(cfs, "t", 0);
        assert_int_equal(f->fs->truncate(f, 10), 0);
      }
      assert_int_equal(crashfs_ops(cfs), 1);
      uint64_t want = via_open ? 0 : 10;
      assert_int_equal(f->fs->size(f, &size), 0);
      assert_int_equal(size, want);
      crashfs_crash(cfs);
      if (holds(cfs, "t", 0x44, (size_t)want))
        kept++;
      else if (holds(cfs, "t", 0x44, 64))
        dropped++;
      else
        fail_msg("seed %llu: truncate neither kept nor dropped", (unsigned long long)seed);
      f->fs->close(f);
      crashfs_free(cfs);
    }
    assert_true(kept > 0);
    assert_true(dropped > 0);
  }
}

/* ---- the crash trigger ---------------------------------------------------- */

enum { OP_WRITE, OP_TRUNCATE, OP_DATASYNC, OP_CREATE, OP_RENAME, OP_UNLINK, OP_SYNC_DIR, OP_COUNT };

/* Run one mutating op of the given kind against d/a (held open in f). */
static rn_err_t run_op(crashfs_t *cfs, rn_file_t *f, int kind) {
  rn_fs_t *fs = fs_of(cfs);
  static uint8_t buf[8] = {9, 9, 9, 9, 9, 9, 9, 9};
  rn_file_t *g = NULL;
  rn_err_t err;
  switch (kind) {
  case OP_WRITE:
    return write_at(f, buf, sizeof buf, 0);
  case OP_TRUNCATE:
    return f->fs->truncate(f, 1);
  case OP_DATASYNC:
    return f->fs->datasync(f);
  case OP_CREATE:
    err = fs->open(fs, "d/new", RN_FS_CREATE | RN_FS_EXCL, &g);
    if (err == 0) fs->close(g);
    return err;
  case OP_RENAME:
    return fs->rename(fs, "d/a", "d/b");
  case OP_UNLINK:
    return fs->unlink(fs, "d/a");
  case OP_SYNC_DIR:
    return fs->sync_dir(fs, "d");
  }
  return RN_EINVAL;
}

/* With the machine down, every kind of mutating op fails with RN_EIO and
 * leaves the visible state untouched. */
static void test_arm_fails_without_effect(void **state) {
  (void)state;
  for (int kind = 0; kind < OP_COUNT; kind++) {
    crashfs_t *cfs = crashfs_new(5);
    plant(cfs, "d/a", 0x61, 16);
    rn_file_t *f = open_ok(cfs, "d/a", 0);
    crashfs_arm(cfs, 1);
    assert_false(crashfs_is_down(cfs));
    assert_int_equal(run_op(cfs, f, kind), RN_EIO);
    assert_true(crashfs_is_down(cfs));
    assert_int_equal(crashfs_ops(cfs), 0);
    assert_true(holds(cfs, "d/a", 0x61, 16));
    assert_false(exists(cfs, "d/b"));
    assert_false(exists(cfs, "d/new"));
    for (int k = 0; k < OP_COUNT; k++) assert_int_equal(run_op(cfs, f, k), RN_EIO);
    assert_true(holds(cfs, "d/a", 0x61, 16));
    assert_int_equal(crashfs_ops(cfs), 0);
    f->fs->close(f);
    crashfs_free(cfs);
  }
}

/* arm(n) lets n-1 ops through and fails the n-th and all later ones; the
 * visible state reflects exactly the ops that succeeded. */
static void test_arm_nth(void **state) {
  (void)state;
  /* Each op still applies after the earlier ones succeeded. */
  const int seq[OP_COUNT] = {OP_WRITE, OP_TRUNCATE, OP_DATASYNC, OP_CREATE, OP_SYNC_DIR, OP_RENAME, OP_UNLINK};
  for (uint64_t n = 1; n <= OP_COUNT + 1; n++) {
    crashfs_t *cfs = crashfs_new(n);
    rn_fs_t *fs = fs_of(cfs);
    plant(cfs, "d/a", 0x61, 16);
    rn_file_t *f = open_ok(cfs, "d/a", 0);
    crashfs_arm(cfs, n);
    bool renamed = false;
    for (uint64_t i = 1; i <= OP_COUNT; i++) {
      rn_err_t err;
      if (seq[i - 1] == OP_UNLINK) /* of whichever name the file has */
        err = fs->unlink(fs, renamed ? "d/b" : "d/a");
      else
        err = run_op(cfs, f, seq[i - 1]);
      if (i < n) {
        assert_int_equal(err, 0);
        assert_false(crashfs_is_down(cfs));
        renamed |= seq[i - 1] == OP_RENAME;
      } else {
        assert_int_equal(err, RN_EIO);
        assert_true(crashfs_is_down(cfs));
      }
    }
    uint64_t k = n - 1 < OP_COUNT ? n - 1 : OP_COUNT; /* ops that succeeded */
    assert_int_equal(crashfs_ops(cfs), k);
    assert_int_equal(exists(cfs, "d/new"), k >= 4);
    assert_int_equal(exists(cfs, "d/a"), k < 6);
    assert_int_equal(exists(cfs, "d/b"), k == 6);
    if (k < 7) {
      uint8_t *data = NULL;
      size_t len = 0;
      assert_int_equal(crashfs_read_file(cfs, k < 6 ? "d/a" : "d/b", &data, &len), 0);
      assert_int_equal(len, k >= 2 ? 1 : 16);
      assert_int_equal(data[0], k >= 1 ? 9 : 0x61);
      free(data);
    }
    f->fs->close(f);
    crashfs_free(cfs);
  }
}

/* A failed datasync or sync_dir did not make anything durable. */
static void test_arm_sync_has_no_effect(void **state) {
  (void)state;
  unsigned lost_write = 0, lost_create = 0;
  for (uint64_t seed = 1; seed <= 100; seed++) {
    crashfs_t *cfs = crashfs_new(seed);
    rn_fs_t *fs = fs_of(cfs);
    plant(cfs, "d/a", 0x00, 8);
    rn_file_t *f = open_ok(cfs, "d/a", 0);
    uint8_t buf[8];
    memset(buf, 0xEE, sizeof buf);
    assert_int_equal(write_at(f, buf, sizeof buf, 0), 0);
    rn_file_t *g = open_ok(cfs, "d/new", RN_FS_CREATE);
    crashfs_arm(cfs, 1);
    assert_int_equal(f->fs->datasync(f), RN_EIO);
    assert_int_equal(fs->sync_dir(fs, "d"), RN_EIO);
    crashfs_crash(cfs);
    lost_write += !holds(cfs, "d/a", 0xEE, 8);
    lost_create += !exists(cfs, "d/new");
    fs->close(f);
    fs->close(g);
    crashfs_free(cfs);
  }
  assert_true(lost_write > 0);
  assert_true(lost_create > 0);
}

static int collect_cb(void *arg, const char *name) {
  char *out = arg;
  strcat(out, name);
  strcat(out, ",");
  return 0;
}

static void test_reads_work_while_down(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(11);
  rn_fs_t *fs = fs_of(cfs);
  plant(cfs, "d/a", 0x61, 16);
  rn_file_t *w = open_ok(cfs, "d/a", 0);
  crashfs_arm(cfs, 1);
  assert_int_equal(w->fs->truncate(w, 0), RN_EIO);
  assert_true(crashfs_is_down(cfs));

  rn_file_t *r = open_ok(cfs, "d/a", RN_FS_RDONLY);
  uint8_t rd[32];
  size_t n = 0;
  assert_int_equal(r->fs->pread(r, rd, sizeof rd, 0, &n), 0);
  assert_int_equal(n, 16);
  assert_int_equal(w->fs->pread(w, rd, sizeof rd, 8, &n), 0);
  assert_int_equal(n, 8);
  uint64_t size = 0;
  assert_int_equal(w->fs->size(w, &size), 0);
  assert_int_equal(size, 16);
  char names[64] = "";
  assert_int_equal(fs->list(fs, "d", collect_cb, names), 0);
  assert_string_equal(names, "a,");
  assert_true(holds(cfs, "d/a", 0x61, 16));
  assert_int_equal(fs->mkdirs(fs, "d/sub"), 0);

  /* Mutating opens fail; a plain open of an existing file does not mutate. */
  rn_file_t *x = NULL;
  assert_int_equal(fs->open(fs, "d/new", RN_FS_CREATE, &x), RN_EIO);
  assert_int_equal(fs->open(fs, "d/a", RN_FS_TRUNC, &x), RN_EIO);
  assert_null(x);
  assert_false(exists(cfs, "d/new"));
  /* Validation errors still say what is wrong. */
  assert_int_equal(fs->unlink(fs, "d/missing"), RN_ENOENT);

  fs->close(r);
  fs->close(w);
  crashfs_crash(cfs);
  assert_false(crashfs_is_down(cfs));
  assert_true(holds(cfs, "d/a", 0x61, 16));
  /* Disarmed: ops work again. */
  for (int i = 0; i < 20; i++) assert_int_equal(fs->sync_dir(fs, "d"), 0);
  crashfs_free(cfs);
}

static void test_arm_disarm_and_crash_disarms(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(2);
  rn_fs_t *fs = fs_of(cfs);
  crashfs_arm(cfs, 3);
  crashfs_arm(cfs, 0);
  for (int i = 0; i < 10; i++) assert_int_equal(fs->sync_dir(fs, "d"), 0);
  assert_int_equal(crashfs_ops(cfs), 10);
  crashfs_arm(cfs, 5);
  assert_int_equal(fs->sync_dir(fs, "d"), 0);
  crashfs_crash(cfs); /* before the crash point: also disarms */
  for (int i = 0; i < 10; i++) assert_int_equal(fs->sync_dir(fs, "d"), 0);
  assert_false(crashfs_is_down(cfs));
  crashfs_free(cfs);
}

static void test_old_handles_fail_after_crash(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(4);
  rn_fs_t *fs = fs_of(cfs);
  plant(cfs, "d/a", 0x61, 16);
  rn_file_t *f = open_ok(cfs, "d/a", 0);
  crashfs_crash(cfs);
  uint8_t buf[4] = {0};
  size_t n = 0;
  uint64_t size = 0;
  assert_int_equal(write_at(f, buf, sizeof buf, 0), RN_EIO);
  assert_int_equal(f->fs->pread(f, buf, sizeof buf, 0, &n), RN_EIO);
  assert_int_equal(f->fs->size(f, &size), RN_EIO);
  assert_int_equal(f->fs->datasync(f), RN_EIO);
  assert_int_equal(f->fs->truncate(f, 0), RN_EIO);
  assert_true(holds(cfs, "d/a", 0x61, 16));
  assert_int_equal(crashfs_ops(cfs), 0);

  rn_file_t *g = open_ok(cfs, "d/a", 0);
  assert_int_equal(g->fs->pread(g, buf, sizeof buf, 0, &n), 0);
  assert_int_equal(n, 4);
  assert_int_equal(buf[0], 0x61);
  assert_int_equal(write_at(g, buf, sizeof buf, 16), 0);
  fs->close(f);
  fs->close(g);
  crashfs_free(cfs);
}

/* ---- listing -------------------------------------------------------------- */

static int stop_cb(void *arg, const char *name) {
  (void)name;
  (*(int *)arg)++;
  return 1;
}

/* Names in a listing, sorted, comma separated. */
static void list_sorted(crashfs_t *cfs, const char *dir, char *out) {
  char raw[256] = "";
  assert_int_equal(fs_of(cfs)->list(fs_of(cfs), dir, collect_cb, raw), 0);
  char *names[32];
  int n = 0;
  for (char *tok = strtok(raw, ","); tok; tok = strtok(NULL, ",")) names[n++] = tok;
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      char *t = names[j];
      names[j] = names[j - 1];
      names[j - 1] = t;
    }
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    strcat(out, names[i]);
    strcat(out, ",");
  }
}

static void test_list(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(1);
  rn_fs_t *fs = fs_of(cfs);
  const char *paths[] = {"t/p0/s1", "t/p0/s2", "t/p1/s1", "t/x", "tt/y", "top", "/abs/z"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) plant(cfs, paths[i], 1, 1);
  char out[256];
  list_sorted(cfs, "t", out);
  assert_string_equal(out, "p0,p1,x,");
  list_sorted(cfs, "t/", out);
  assert_string_equal(out, "p0,p1,x,");
  list_sorted(cfs, "t/p0", out);
  assert_string_equal(out, "s1,s2,");
  list_sorted(cfs, "nothing", out);
  assert_string_equal(out, "");
  list_sorted(cfs, "", out);
  assert_string_equal(out, "t,top,tt,");
  list_sorted(cfs, "/", out);
  assert_string_equal(out, "abs,");

  /* Namespace changes show at once. */
  assert_int_equal(fs->unlink(fs, "t/x"), 0);
  assert_int_equal(fs->rename(fs, "t/p1/s1", "t/p0/s3"), 0);
  list_sorted(cfs, "t", out);
  assert_string_equal(out, "p0,");
  list_sorted(cfs, "t/p0", out);
  assert_string_equal(out, "s1,s2,s3,");

  int calls = 0;
  assert_int_equal(fs->list(fs, "t/p0", stop_cb, &calls), 0);
  assert_int_equal(calls, 1);
  crashfs_free(cfs);
}

/* ---- determinism ---------------------------------------------------------- */

#define DET_FILES 6

/* A fixed workload of every kind of op, then a crash with the fs's seed; the
 * resulting files serialised into out (malloc'd). */
static void det_run(uint64_t seed, uint8_t **out, size_t *outlen) {
  crashfs_t *cfs = crashfs_new(seed);
  rn_fs_t *fs = fs_of(cfs);
  uint64_t wl = 42; /* the workload is the same for every seed */
  char name[32];
  rn_file_t *files[DET_FILES] = {NULL};
  for (int i = 0; i < DET_FILES; i++) {
    snprintf(name, sizeof name, "d/f%d", i);
    files[i] = open_ok(cfs, name, RN_FS_CREATE);
  }
  for (int step = 0; step < 200; step++) {
    rn_file_t *f = files[rn_test_rand_below(&wl, DET_FILES)];
    uint8_t buf[48];
    fill_pattern(buf, sizeof buf, rn_test_rand(&wl));
    switch (rn_test_rand_below(&wl, 10)) {
    case 0:
      assert_int_equal(f->fs->datasync(f), 0);
      break;
    case 1:
      assert_int_equal(f->fs->truncate(f, rn_test_rand_below(&wl, 200)), 0);
      break;
    case 2:
      if (step % 50 == 2) assert_int_equal(fs->sync_dir(fs, "d"), 0);
      break;
    default:
      assert_int_equal(write_at(f, buf, 1 + rn_test_rand_below(&wl, sizeof buf), rn_test_rand_below(&wl, 300)), 0);
    }
  }
  assert_int_equal(fs->rename(fs, "d/f0", "d/g0"), 0);
  assert_int_equal(fs->rename(fs, "d/f1", "d/f2"), 0);
  assert_int_equal(fs->unlink(fs, "d/f3"), 0);
  crashfs_crash(cfs);

  const char *names[] = {"d/f0", "d/f1", "d/f2", "d/f3", "d/f4", "d/f5", "d/g0"};
  size_t cap = 1 << 16, len = 0;
  uint8_t *buf = malloc(cap);
  assert_non_null(buf);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    uint8_t *data = NULL;
    size_t n = 0;
    rn_err_t err = crashfs_read_file(cfs, names[i], &data, &n);
    assert_true(len + sizeof n + n + 1 <= cap);
    buf[len++] = err == 0;
    if (err == 0) {
      memcpy(buf + len, &n, sizeof n);
      len += sizeof n;
      memcpy(buf + len, data, n);
      len += n;
      free(data);
    }
  }
  for (int i = 0; i < DET_FILES; i++) fs->close(files[i]);
  crashfs_free(cfs);
  *out = buf;
  *outlen = len;
}

static void test_deterministic(void **state) {
  (void)state;
  unsigned differ = 0;
  uint8_t *prev = NULL;
  size_t prevlen = 0;
  for (uint64_t seed = 1; seed <= 20; seed++) {
    uint8_t *a, *b;
    size_t na, nb;
    det_run(seed, &a, &na);
    det_run(seed, &b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    if (prev && (prevlen != na || memcmp(prev, a, na) != 0)) differ++;
    free(prev);
    free(b);
    prev = a;
    prevlen = na;
  }
  free(prev);
  assert_true(differ > 0); /* and the seed does matter */
}

/* ---- threads -------------------------------------------------------------- */

typedef struct {
  crashfs_t *cfs;
  int id;
  int failures;
} worker_t;

static void *worker_main(void *arg) {
  worker_t *w = arg;
  rn_fs_t *fs = fs_of(w->cfs);
  char name[32];
  snprintf(name, sizeof name, "d/w%d", w->id);
  rn_file_t *f = NULL;
  if (fs->open(fs, name, RN_FS_CREATE | RN_FS_EXCL, &f) != 0) {
    w->failures++;
    return NULL;
  }
  uint8_t buf[16];
  memset(buf, (uint8_t)w->id, sizeof buf);
  for (int i = 0; i < 500; i++) {
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    if (fs->pwritev(f, &iov, 1, (uint64_t)i * sizeof buf) != 0) w->failures++;
    if (i % 50 == 49 && fs->datasync(f) != 0) w->failures++;
    if (i % 100 == 99 && fs->sync_dir(fs, "d") != 0) w->failures++;
    uint64_t size = 0;
    if (fs->size(f, &size) != 0 || size != (uint64_t)(i + 1) * sizeof buf) w->failures++;
  }
  fs->close(f);
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(8);
  enum { N = 4 };
  pthread_t th[N];
  worker_t w[N];
  for (int i = 0; i < N; i++) {
    w[i] = (worker_t){.cfs = cfs, .id = i + 1};
    assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(w[i].failures, 0);
  }
  crashfs_crash(cfs); /* everything was synced at the end */
  for (int i = 0; i < N; i++) {
    char name[32];
    snprintf(name, sizeof name, "d/w%d", i + 1);
    assert_true(holds(cfs, name, (uint8_t)(i + 1), 500 * 16));
  }
  assert_int_equal(crashfs_ops(cfs), N * (1 + 500 + 10 + 5));
  crashfs_free(cfs);
}

/* ---- injected faults ------------------------------------------------------- */

/* crashfs_fail_open: every open fails with the given error, creates and
 * truncates nothing, is not counted; 0 ends it. */
static void test_fail_open(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(1);
  plant(cfs, "/d/a", 'a', 10);
  uint64_t ops = crashfs_ops(cfs);
  crashfs_fail_open(cfs, -EMFILE);
  rn_file_t *f = NULL;
  assert_int_equal(fs_of(cfs)->open(fs_of(cfs), "/d/b", RN_FS_CREATE, &f), -EMFILE);
  assert_int_equal(fs_of(cfs)->open(fs_of(cfs), "/d/a", RN_FS_TRUNC, &f), -EMFILE);
  crashfs_fail_open(cfs, -ENFILE);
  assert_int_equal(fs_of(cfs)->open(fs_of(cfs), "/d/a", RN_FS_RDONLY, &f), -ENFILE);
  assert_false(exists(cfs, "/d/b"));
  assert_true(holds(cfs, "/d/a", 'a', 10));
  assert_int_equal(crashfs_ops(cfs), ops);
  crashfs_fail_open(cfs, 0);
  f = open_ok(cfs, "/d/b", RN_FS_CREATE);
  fs_of(cfs)->close(f);
  crashfs_free(cfs);
}

/* crashfs_set_space: a write past the room left is short, then RN_ENOSPC;
 * with no room at all it has no effect; truncate and unlink give room
 * back; the short write is an ordinary pending write at a crash. */
static void test_space_limit(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(2);
  rn_file_t *f = open_ok(cfs, "/d/f", RN_FS_CREATE);
  uint8_t buf[100];
  memset(buf, 'x', sizeof(buf));
  assert_int_equal(write_at(f, buf, 40, 0), 0);
  assert_int_equal(crashfs_used(cfs), 40);
  crashfs_set_space(cfs, 100);
  assert_int_equal(write_at(f, buf, 100, 40), RN_ENOSPC); /* 60 fit */
  assert_true(holds(cfs, "/d/f", 'x', 100));
  assert_int_equal(crashfs_used(cfs), 100);
  uint64_t ops = crashfs_ops(cfs);
  assert_int_equal(write_at(f, buf, 1, 100), RN_ENOSPC); /* nothing fits: no effect, not counted */
  assert_int_equal(crashfs_ops(cfs), ops);
  assert_int_equal(write_at(f, buf, 10, 0), 0); /* overwriting needs no room */
  assert_int_equal(fs_of(cfs)->truncate(f, 50), 0);
  assert_int_equal(crashfs_used(cfs), 50);
  assert_int_equal(write_at(f, buf, 50, 50), 0);
  crashfs_set_space(cfs, UINT64_MAX);
  assert_int_equal(write_at(f, buf, 100, 100), 0);
  assert_int_equal(crashfs_used(cfs), 200);
  fs_of(cfs)->close(f);
  crashfs_free(cfs);
}

static void test_write_file_helper(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(1);
  rn_fs_t *fs = fs_of(cfs);
  uint8_t *data = NULL;
  size_t len = 0;
  assert_int_equal(crashfs_read_file(cfs, "d/a", &data, &len), RN_ENOENT);
  plant(cfs, "d/a", 0x01, 3);
  plant(cfs, "d/a", 0x02, 5); /* replaces */
  assert_true(holds(cfs, "d/a", 0x02, 5));
  plant(cfs, "d/empty", 0, 0);
  assert_true(holds(cfs, "d/empty", 0, 0));
  /* Planting over an unsynced unlink of the same name still sticks. */
  assert_int_equal(fs->unlink(fs, "d/a"), 0);
  plant(cfs, "d/a", 0x03, 7);
  assert_int_equal(crashfs_ops(cfs), 1);
  crashfs_crash(cfs);
  assert_true(holds(cfs, "d/a", 0x03, 7));
  assert_true(holds(cfs, "d/empty", 0, 0));
  crashfs_free(cfs);
  crashfs_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fail_open),
      cmocka_unit_test(test_space_limit),
      cmocka_unit_test(test_synced_data_survives),
      cmocka_unit_test(test_crash_result_is_durable),
      cmocka_unit_test(test_unsynced_write_outcomes),
      cmocka_unit_test(test_unsynced_writes_independent),
      cmocka_unit_test(test_create_without_sync_dir),
      cmocka_unit_test(test_create_with_sync_dir),
      cmocka_unit_test(test_journal_prefix),
      cmocka_unit_test(test_rename_without_sync_dir),
      cmocka_unit_test(test_rename_over_existing),
      cmocka_unit_test(test_dropped_unlink_brings_back),
      cmocka_unit_test(test_unlinked_open_file),
      cmocka_unit_test(test_handle_follows_rename),
      cmocka_unit_test(test_open_semantics),
      cmocka_unit_test(test_truncate_semantics),
      cmocka_unit_test(test_arm_fails_without_effect),
      cmocka_unit_test(test_arm_nth),
      cmocka_unit_test(test_arm_sync_has_no_effect),
      cmocka_unit_test(test_reads_work_while_down),
      cmocka_unit_test(test_arm_disarm_and_crash_disarms),
      cmocka_unit_test(test_old_handles_fail_after_crash),
      cmocka_unit_test(test_list),
      cmocka_unit_test(test_deterministic),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_write_file_helper),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
