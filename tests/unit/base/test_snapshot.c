/*
 * test_snapshot.c — the atomic snapshot file (base/snapshot.c) and the slot
 * that hands the newest snapshot from a loop thread to the writers.
 *
 *   - write/read round trips, a missing snapshot is RN_ENOENT, a stale .tmp
 *     is ignored and replaced;
 *   - through the crash simulator, a crash at every step of a write, across
 *     many seeds, leaves the old or the new snapshot, never a torn or empty
 *     one, and the new one whenever the write returned 0;
 *   - the slot writes the newest buffer, keeps a buffer whose write failed
 *     for the next flush unless a newer one came;
 *   - the hand-off never waits for a write: with a writer held inside
 *     fdatasync (a file system whose datasync blocks until the test releases
 *     it), the "loop" thread hands over two newer snapshots and returns.
 *     Under the old design (one mutex held across fdatasync) this test
 *     deadlocks and fails by its ctest timeout; nothing here measures time.
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
#include "rn_fs.h"

#define NSEEDS 200
#define MAX_STEP 16

static char *dup_str(const char *s) {
  char *d = strdup(s);
  assert_non_null(d);
  return d;
}

static void assert_snapshot(rn_fs_t *fs, const char *dir, const char *name, const char *want) {
  void *data = NULL;
  size_t len = 0;
  assert_int_equal(rn_snapshot_read(fs, dir, name, &data, &len), 0);
  assert_int_equal(len, strlen(want));
  assert_memory_equal(data, want, len);
  assert_int_equal(((char *)data)[len], '\0');
  free(data);
}

/* ---- write / read ----------------------------------------------------------------- */

static void test_write_read(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(1);
  rn_fs_t *fs = crashfs_fs(cfs);
  void *data = (void *)1;
  size_t len = 7;
  assert_int_equal(rn_snapshot_read(fs, "d", "snap", &data, &len), RN_ENOENT);
  assert_null(data);
  assert_int_equal(len, 0);

  assert_int_equal(rn_snapshot_write(fs, "d", "snap", "first", 5), 0);
  assert_snapshot(fs, "d", "snap", "first");
  assert_int_equal(rn_snapshot_write(fs, "d", "snap", "second one", 10), 0);
  assert_snapshot(fs, "d", "snap", "second one");
  assert_int_equal(rn_snapshot_write(fs, "d", "snap", NULL, 0), 0); /* empty is a valid snapshot */
  assert_snapshot(fs, "d", "snap", "");

  /* No .tmp is left behind, and a stale one (a crash mid-write) is ignored
   * by read and replaced by the next write. */
  uint8_t *raw;
  size_t rawlen;
  assert_int_equal(crashfs_read_file(cfs, "d/snap.tmp", &raw, &rawlen), RN_ENOENT);
  assert_int_equal(crashfs_write_file(cfs, "d/snap.tmp", (const uint8_t *)"garbage!", 8), 0);
  assert_snapshot(fs, "d", "snap", "");
  assert_int_equal(rn_snapshot_write(fs, "d", "snap", "third", 5), 0);
  assert_snapshot(fs, "d", "snap", "third");
  assert_int_equal(crashfs_read_file(cfs, "d/snap.tmp", &raw, &rawlen), RN_ENOENT);

  assert_int_equal(rn_snapshot_write(fs, "d", "", "x", 1), RN_EINVAL);
  assert_int_equal(rn_snapshot_write(NULL, "d", "snap", "x", 1), RN_EINVAL);
  crashfs_free(cfs);
}

/* A failed write leaves the old snapshot and removes its .tmp. */
static void test_failed_write_keeps_old(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(2);
  rn_fs_t *fs = crashfs_fs(cfs);
  assert_int_equal(rn_snapshot_write(fs, "d", "snap", "old", 3), 0);
  crashfs_set_space(cfs, crashfs_used(cfs) + 2); /* the new one does not fit */
  assert_int_equal(rn_snapshot_write(fs, "d", "snap", "much newer", 10), RN_ENOSPC);
  assert_snapshot(fs, "d", "snap", "old");
  uint8_t *raw;
  size_t rawlen;
  assert_int_equal(crashfs_read_file(cfs, "d/snap.tmp", &raw, &rawlen), RN_ENOENT);
  crashfs_free(cfs);
}

/* ---- crashes ----------------------------------------------------------------------- */

/* Crash at the step-th mutating operation of one write (every step of it,
 * and past its end), over many seeds: after the crash dir/name is the old
 * content or the new one, and the new one when the write returned 0. With
 * old == NULL there was no snapshot before: missing is allowed too. */
static void crash_every_step(const char *old) {
  const char *new = "the new snapshot, long enough to be torn by a crash";
  for (uint64_t seed = 0; seed < NSEEDS; seed++) {
    for (uint64_t step = 1; step <= MAX_STEP; step++) {
      crashfs_t *cfs = crashfs_new(seed * 1000 + step);
      rn_fs_t *fs = crashfs_fs(cfs);
      if (old) assert_int_equal(crashfs_write_file(cfs, "d/snap", (const uint8_t *)old, strlen(old)), 0);
      crashfs_arm(cfs, step);
      rn_err_t err = rn_snapshot_write(fs, "d", "snap", new, strlen(new));
      bool down = crashfs_is_down(cfs);
      if (!down) assert_int_equal(err, 0);
      crashfs_crash(cfs);

      void *data = NULL;
      size_t len = 0;
      rn_err_t rerr = rn_snapshot_read(fs, "d", "snap", &data, &len);
      if (rerr == RN_ENOENT) {
        assert_null(old);
        assert_int_not_equal(err, 0);
      } else {
        assert_int_equal(rerr, 0);
        bool is_new = len == strlen(new) && memcmp(data, new, len) == 0;
        bool is_old = old && len == strlen(old) && memcmp(data, old, len) == 0;
        if (!is_new && !is_old) fail_msg("seed %llu step %llu: torn snapshot (%zu bytes)", (unsigned long long)seed, (unsigned long long)step, len);
        if (err == 0) assert_true(is_new);
        free(data);
      }
      /* The next write after the restart works (a stale .tmp is replaced). */
      assert_int_equal(rn_snapshot_write(fs, "d", "snap", "after", 5), 0);
      assert_snapshot(fs, "d", "snap", "after");
      crashfs_free(cfs);
    }
  }
}

static void test_crash_replacing(void **state) {
  (void)state;
  crash_every_step("the old snapshot");
}

static void test_crash_first_write(void **state) {
  (void)state;
  crash_every_step(NULL);
}

/* ---- the slot ---------------------------------------------------------------------- */

static void test_slot_newest_wins(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(3);
  rn_fs_t *fs = crashfs_fs(cfs);
  rn_snapshot_slot_t *slot = rn_snapshot_slot_new(fs, "d", "snap");
  assert_non_null(slot);
  assert_int_equal(rn_snapshot_slot_flush(slot), 0); /* nothing put: nothing written */
  void *data;
  size_t len;
  assert_int_equal(rn_snapshot_read(fs, "d", "snap", &data, &len), RN_ENOENT);

  rn_snapshot_slot_put(slot, dup_str("v1"), 2);
  rn_snapshot_slot_put(slot, dup_str("v2"), 2); /* replaces v1 (freed: ASan checks) */
  assert_int_equal(rn_snapshot_slot_flush(slot), 0);
  assert_snapshot(fs, "d", "snap", "v2");
  assert_int_equal(rn_snapshot_slot_flush(slot), 0); /* already written */
  assert_snapshot(fs, "d", "snap", "v2");

  /* A failed write keeps its buffer for the next flush... */
  rn_snapshot_slot_put(slot, dup_str("v3"), 2);
  crashfs_fail_open(cfs, -EMFILE);
  assert_int_equal(rn_snapshot_slot_flush(slot), -EMFILE);
  crashfs_fail_open(cfs, 0);
  assert_snapshot(fs, "d", "snap", "v2");
  assert_int_equal(rn_snapshot_slot_flush(slot), 0);
  assert_snapshot(fs, "d", "snap", "v3");

  /* ...and the buffer left in the slot at destroy is freed (ASan checks). */
  rn_snapshot_slot_put(slot, dup_str("v4"), 2);
  rn_snapshot_slot_destroy(slot);
  rn_snapshot_slot_destroy(NULL);
  crashfs_free(cfs);
}

/* ---- the hand-off never waits for a write ------------------------------------------ */

/* An rn_fs_t over crashfs whose datasync blocks, when armed, until the test
 * releases it; it says when a writer is inside. */
typedef struct gate_fs {
  rn_fs_t fs; /* first member */
  rn_fs_t *inner;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool armed;    /* the next datasync blocks */
  bool inside;   /* a datasync is blocked now */
  bool released; /* let it go */
} gate_fs_t;

static gate_fs_t *gate_of(rn_fs_t *fs) { return (gate_fs_t *)fs; }

static rn_err_t g_open(rn_fs_t *fs, const char *path, int flags, rn_file_t **out) {
  return gate_of(fs)->inner->open(gate_of(fs)->inner, path, flags, out);
}
static void g_close(rn_file_t *f) { f->fs->close(f); }
static rn_err_t g_pwritev(rn_file_t *f, const struct iovec *iov, int iovcnt, uint64_t off) {
  return f->fs->pwritev(f, iov, iovcnt, off);
}
static rn_err_t g_pread(rn_file_t *f, void *buf, size_t len, uint64_t off, size_t *nread) {
  return f->fs->pread(f, buf, len, off, nread);
}
static gate_fs_t *the_gate; /* datasync gets only the file; one gate per test */
static rn_err_t g_datasync(rn_file_t *f) {
  gate_fs_t *g = the_gate;
  pthread_mutex_lock(&g->mu);
  if (g->armed) {
    g->armed = false;
    g->inside = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->released) pthread_cond_wait(&g->cv, &g->mu);
    g->inside = false;
  }
  pthread_mutex_unlock(&g->mu);
  return f->fs->datasync(f);
}
static rn_err_t g_truncate(rn_file_t *f, uint64_t size) { return f->fs->truncate(f, size); }
static rn_err_t g_size(rn_file_t *f, uint64_t *size) { return f->fs->size(f, size); }
static rn_err_t g_rename(rn_fs_t *fs, const char *from, const char *to) {
  return gate_of(fs)->inner->rename(gate_of(fs)->inner, from, to);
}
static rn_err_t g_unlink(rn_fs_t *fs, const char *path) { return gate_of(fs)->inner->unlink(gate_of(fs)->inner, path); }
static rn_err_t g_mkdirs(rn_fs_t *fs, const char *path) { return gate_of(fs)->inner->mkdirs(gate_of(fs)->inner, path); }
static rn_err_t g_sync_dir(rn_fs_t *fs, const char *path) {
  return gate_of(fs)->inner->sync_dir(gate_of(fs)->inner, path);
}
static rn_err_t g_list(rn_fs_t *fs, const char *path, rn_fs_list_cb cb, void *arg) {
  return gate_of(fs)->inner->list(gate_of(fs)->inner, path, cb, arg);
}

static void gate_init(gate_fs_t *g, rn_fs_t *inner) {
  memset(g, 0, sizeof(*g));
  g->fs = (rn_fs_t){.name = "gate", .open = g_open, .close = g_close, .pwritev = g_pwritev, .pread = g_pread,
                    .datasync = g_datasync, .truncate = g_truncate, .size = g_size, .rename = g_rename,
                    .unlink = g_unlink, .mkdirs = g_mkdirs, .sync_dir = g_sync_dir, .list = g_list};
  g->inner = inner;
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  the_gate = g;
}

typedef struct writer {
  pthread_t tid;
  rn_snapshot_slot_t *slot;
  rn_err_t err;
} writer_t;

static void *writer_main(void *arg) {
  writer_t *w = arg;
  w->err = rn_snapshot_slot_flush(w->slot); /* a thread-pool job */
  return NULL;
}

static void test_handoff_never_waits_for_a_write(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(4);
  gate_fs_t g;
  gate_init(&g, crashfs_fs(cfs));
  rn_snapshot_slot_t *slot = rn_snapshot_slot_new(&g.fs, "d", "snap");
  assert_non_null(slot);

  /* Job 1 takes v1 and blocks inside its fdatasync. */
  rn_snapshot_slot_put(slot, dup_str("v1"), 2);
  g.armed = true;
  writer_t w1 = {.slot = slot};
  assert_int_equal(pthread_create(&w1.tid, NULL, writer_main, &w1), 0);
  pthread_mutex_lock(&g.mu);
  while (!g.inside) pthread_cond_wait(&g.cv, &g.mu);
  pthread_mutex_unlock(&g.mu);

  /* The loop thread (this one) hands over two newer snapshots while the
   * write is held: both calls return (they would wait forever if put()
   * needed a lock the writer holds across fdatasync). */
  rn_snapshot_slot_put(slot, dup_str("v2"), 2);
  rn_snapshot_slot_put(slot, dup_str("v3"), 2);
  pthread_mutex_lock(&g.mu);
  assert_true(g.inside); /* still held: the hand-off completed meanwhile */
  g.released = true;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  assert_int_equal(pthread_join(w1.tid, NULL), 0);
  assert_int_equal(w1.err, 0);
  assert_snapshot(&g.fs, "d", "snap", "v1"); /* job 1 wrote what it took */

  /* The job queued after v3's put writes the newest; v2 was never written. */
  writer_t w2 = {.slot = slot};
  assert_int_equal(pthread_create(&w2.tid, NULL, writer_main, &w2), 0);
  assert_int_equal(pthread_join(w2.tid, NULL), 0);
  assert_int_equal(w2.err, 0);
  assert_snapshot(&g.fs, "d", "snap", "v3");

  rn_snapshot_slot_destroy(slot);
  pthread_mutex_destroy(&g.mu);
  pthread_cond_destroy(&g.cv);
  crashfs_free(cfs);
}

/* Two writers at once: they are serialised, and the newest put wins on
 * disk whatever order they run in. */
static void test_concurrent_flushes_end_with_newest(void **state) {
  (void)state;
  crashfs_t *cfs = crashfs_new(5);
  rn_snapshot_slot_t *slot = rn_snapshot_slot_new(crashfs_fs(cfs), "d", "snap");
  assert_non_null(slot);
  for (int round = 0; round < 200; round++) {
    char text[32];
    snprintf(text, sizeof text, "a%d", round);
    rn_snapshot_slot_put(slot, dup_str(text), strlen(text));
    writer_t a = {.slot = slot}, b = {.slot = slot};
    assert_int_equal(pthread_create(&a.tid, NULL, writer_main, &a), 0);
    snprintf(text, sizeof text, "b%d", round);
    rn_snapshot_slot_put(slot, dup_str(text), strlen(text));
    assert_int_equal(pthread_create(&b.tid, NULL, writer_main, &b), 0);
    assert_int_equal(pthread_join(a.tid, NULL), 0);
    assert_int_equal(pthread_join(b.tid, NULL), 0);
    assert_int_equal(a.err, 0);
    assert_int_equal(b.err, 0);
    assert_snapshot(crashfs_fs(cfs), "d", "snap", text);
  }
  rn_snapshot_slot_destroy(slot);
  crashfs_free(cfs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_write_read),
      cmocka_unit_test(test_failed_write_keeps_old),
      cmocka_unit_test(test_crash_replacing),
      cmocka_unit_test(test_crash_first_write),
      cmocka_unit_test(test_slot_newest_wins),
      cmocka_unit_test(test_handoff_never_waits_for_a_write),
      cmocka_unit_test(test_concurrent_flushes_end_with_newest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
