/*
 * test_core_blocking.c — "nothing blocking the loop" (issue 11), checked
 * with an rn_fs wrapper that counts the file calls made on the loop
 * thread while armed:
 *  - ListOffsets by TIMESTAMP reads the time index on the thread pool (it
 *    used to pread on the loop: rn_log_find_time);
 *  - deleting a stream closes its segment files on the thread pool once
 *    their I/O landed (it used to close them, and wait, in a loop
 *    callback: rn_log_close_discard in the reaper).
 * Deterministic: the counts do not depend on timing, only on which thread
 * makes each call.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coretest.h"

/* ---- the thread-recording file system -------------------------------------------- */

typedef struct tfile {
  rn_file_t base; /* base.fs = the wrapper, base.fd = the inner fd */
  rn_file_t *inner;
} tfile_t;

static rn_fs_t tfs;
static pthread_t loop_thread;
static atomic_bool armed;
static atomic_int loop_preads, loop_closes, other_closes, other_preads;

static bool on_loop(void) { return pthread_equal(pthread_self(), loop_thread); }

static rn_err_t t_open(rn_fs_t *fs, const char *path, int flags, rn_file_t **out) {
  (void)fs;
  rn_file_t *in;
  rn_err_t err = rn_fs_posix()->open(rn_fs_posix(), path, flags, &in);
  if (err) return err;
  tfile_t *f = calloc(1, sizeof(*f));
  if (!f) {
    in->fs->close(in);
    return RN_ENOMEM;
  }
  f->base.fs = &tfs;
  f->base.fd = in->fd;
  f->inner = in;
  *out = &f->base;
  return 0;
}

static void t_close(rn_file_t *file) {
  if (!file) return;
  if (armed) atomic_fetch_add(on_loop() ? &loop_closes : &other_closes, 1);
  tfile_t *f = (tfile_t *)file;
  f->inner->fs->close(f->inner);
  free(f);
}

static rn_err_t t_pwritev(rn_file_t *file, const struct iovec *iov, int iovcnt, uint64_t off) {
  tfile_t *f = (tfile_t *)file;
  return f->inner->fs->pwritev(f->inner, iov, iovcnt, off);
}

static rn_err_t t_pread(rn_file_t *file, void *buf, size_t len, uint64_t off, size_t *nread) {
  if (armed) atomic_fetch_add(on_loop() ? &loop_preads : &other_preads, 1);
  tfile_t *f = (tfile_t *)file;
  return f->inner->fs->pread(f->inner, buf, len, off, nread);
}

static rn_err_t t_datasync(rn_file_t *file) {
  tfile_t *f = (tfile_t *)file;
  return f->inner->fs->datasync(f->inner);
}

static rn_err_t t_truncate(rn_file_t *file, uint64_t size) {
  tfile_t *f = (tfile_t *)file;
  return f->inner->fs->truncate(f->inner, size);
}

static rn_err_t t_size(rn_file_t *file, uint64_t *size) {
  tfile_t *f = (tfile_t *)file;
  return f->inner->fs->size(f->inner, size);
}

static rn_err_t t_rename(rn_fs_t *fs, const char *from, const char *to) {
  (void)fs;
  return rn_fs_posix()->rename(rn_fs_posix(), from, to);
}
static rn_err_t t_unlink(rn_fs_t *fs, const char *path) {
  (void)fs;
  return rn_fs_posix()->unlink(rn_fs_posix(), path);
}
static rn_err_t t_mkdirs(rn_fs_t *fs, const char *path) {
  (void)fs;
  return rn_fs_posix()->mkdirs(rn_fs_posix(), path);
}
static rn_err_t t_sync_dir(rn_fs_t *fs, const char *path) {
  (void)fs;
  return rn_fs_posix()->sync_dir(rn_fs_posix(), path);
}
static rn_err_t t_list(rn_fs_t *fs, const char *path, rn_fs_list_cb cb, void *arg) {
  (void)fs;
  return rn_fs_posix()->list(rn_fs_posix(), path, cb, arg);
}

static rn_fs_t tfs = {"threadfs", t_open,   t_close,  t_pwritev,  t_pread, t_datasync,
                      t_truncate, t_size,   t_rename, t_unlink,   t_mkdirs, t_sync_dir, t_list};

static void reset_counts(void) {
  loop_preads = loop_closes = other_closes = other_preads = 0;
}

static int setup(void **state) {
  ct_t *t = calloc(1, sizeof(*t));
  ct_init(t);
  loop_thread = pthread_self();
  t->fs = &tfs;
  ct_open(t);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  ct_t *t = *state;
  armed = false;
  ct_fini(t);
  free(t);
  return 0;
}

static void test_list_offsets_by_timestamp_reads_off_the_loop(void **state) {
  ct_t *t = *state;
  assert_int_equal(ct_create(t, "s", 1), 0);
  assert_int_equal(ct_produce(t, "s", 0, 3, 1000, NULL), 0);
  assert_int_equal(ct_produce(t, "s", 0, 3, 5000, NULL), 0);
  reset_counts();
  armed = true;
  ct_offsets_t o;
  ct_list_offset(t, "s", 0, RN_CORE_POS_TIMESTAMP, 5001, &o);
  armed = false;
  assert_int_equal(o.shard_err, 0);
  assert_int_equal(o.offset, 4);
  assert_true(other_preads > 0); /* the time index was read... */
  assert_int_equal(loop_preads, 0); /* ...but not on the loop thread */
}

static void test_delete_closes_files_off_the_loop(void **state) {
  ct_t *t = *state;
  assert_int_equal(ct_create(t, "s", 3), 0);
  for (uint32_t k = 0; k < 3; k++) assert_int_equal(ct_produce(t, "s", k, 5, 1000, NULL), 0);
  reset_counts();
  armed = true;
  assert_int_equal(ct_delete(t, "s"), 0);
  while (!rn_core_idle(t->core)) uv_run(&t->loop, UV_RUN_ONCE);
  armed = false;
  assert_true(other_closes >= 3); /* every shard's segment file was closed... */
  assert_int_equal(loop_closes, 0); /* ...off the loop thread */
  ct_desc_t d;
  ct_describe(t, "s", &d);
  assert_int_equal(d.err, RN_ENOSTREAM);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_list_offsets_by_timestamp_reads_off_the_loop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_closes_files_off_the_loop, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
