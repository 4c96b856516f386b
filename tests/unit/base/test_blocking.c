/*
 * test_blocking.c — the blocking check (base/blocking.c). This test builds
 * its own copy of blocking.c and fs_posix.c with RN_BLOCKING_CHECK defined
 * (tests/CMakeLists.txt), so it checks the armed behaviour in every build.
 *
 * Each case runs in a forked child (the check aborts the process) and the
 * parent checks how the child ended and what it printed on stderr:
 *   - a marked thread aborts with "runnel: blocking operation <what> on the
 *     loop thread";
 *   - an unmarked thread does not, and neither does a thread started by a
 *     marked one (the mark is per thread);
 *   - rn_fs_posix()'s operations make the check, naming the system call;
 *   - so do storage's blocking entry points: rn_io_wait when it would wait
 *     for in-flight I/O (not with timeout 0) and the log's synchronous read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crashfs.h"
#include "logtest.h"
#include "rn_fs.h"
#include "rn_io.h"
#include "rn_log.h"

#ifndef RN_BLOCKING_CHECK
#error "test_blocking must be built with RN_BLOCKING_CHECK (see tests/CMakeLists.txt)"
#endif

typedef struct outcome {
  int status;      /* from waitpid */
  char err[1024];  /* the child's stderr */
} outcome_t;

/* Run body() in a child with stderr on a pipe; the child exits 0 if body
 * returns. */
static void run_child(void (*body)(void), outcome_t *out) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
    signal(SIGABRT, SIG_DFL);
    body();
    _exit(0);
  }
  close(p[1]);
  size_t n = 0;
  ssize_t r;
  while (n < sizeof(out->err) - 1 && (r = read(p[0], out->err + n, sizeof(out->err) - 1 - n)) > 0) n += (size_t)r;
  out->err[n] = '\0';
  close(p[0]);
  assert_int_equal(waitpid(pid, &out->status, 0), pid);
}

static void assert_aborted_naming(const outcome_t *o, const char *what) {
  if (!WIFSIGNALED(o->status)) fail_msg("child exited %d, stderr: %s", WEXITSTATUS(o->status), o->err);
  assert_true(WIFSIGNALED(o->status));
  assert_int_equal(WTERMSIG(o->status), SIGABRT);
  char want[256];
  snprintf(want, sizeof want, "runnel: blocking operation %s on the loop thread\n", what);
  if (!strstr(o->err, want)) fail_msg("stderr %s lacks %s", o->err, want);
}

static void assert_exited_cleanly(const outcome_t *o) {
  assert_true(WIFEXITED(o->status));
  assert_int_equal(WEXITSTATUS(o->status), 0);
  assert_null(strstr(o->err, "blocking operation"));
}

/* ---- bodies (run in the child) --------------------------------------------------- */

static void marked_blocks(void) {
  rn_thread_mark_loop();
  rn_assert_may_block("fdatasync");
}

static void unmarked_blocks(void) { rn_assert_may_block("fdatasync"); }

static void *other_thread(void *arg) {
  (void)arg;
  rn_assert_may_block("pread"); /* this thread was never marked */
  return NULL;
}

static void marked_spawns_unmarked(void) {
  rn_thread_mark_loop();
  pthread_t t;
  if (pthread_create(&t, NULL, other_thread, NULL) || pthread_join(t, NULL)) _exit(3);
}

static void marked_posix_open(void) {
  rn_thread_mark_loop();
  rn_file_t *f;
  rn_fs_t *fs = rn_fs_posix();
  (void)fs->open(fs, "/dev/null", RN_FS_RDONLY, &f);
}

static void marked_posix_sync_dir(void) {
  rn_thread_mark_loop();
  rn_fs_t *fs = rn_fs_posix();
  (void)fs->sync_dir(fs, "/");
}

static void *posix_datasync_before_mark(void *arg) {
  /* Open unmarked, then mark: the datasync is what aborts. */
  rn_file_t *f = NULL;
  rn_fs_t *fs = rn_fs_posix();
  if (fs->open(fs, "/dev/null", RN_FS_RDONLY, &f)) _exit(4);
  rn_thread_mark_loop();
  (void)fs->datasync(f);
  return arg;
}

static void marked_posix_datasync(void) { (void)posix_datasync_before_mark(NULL); }

static void unmarked_posix_ops(void) {
  rn_fs_t *fs = rn_fs_posix();
  rn_file_t *f = NULL;
  if (fs->open(fs, "/dev/null", RN_FS_RDONLY, &f)) _exit(5);
  uint64_t size;
  (void)fs->size(f, &size);
  fs->close(f);
}

/* A job that never finishes (the child process ends first). */
static int never_fd = -1;
static rn_err_t job_blocks(void *arg) {
  (void)arg;
  char c;
  while (read(never_fd, &c, 1) < 0) {
  }
  return 0;
}

static void job_done(void *arg, rn_err_t err) {
  (void)arg;
  (void)err;
}

static rn_io_t *io_with_stuck_job(void) {
  int p[2];
  if (pipe(p)) _exit(6);
  never_fd = p[0]; /* p[1] stays open and is never written */
  crashfs_t *cfs = crashfs_new(1);
  rn_io_t *io = lt_io(crashfs_fs(cfs));
  if (rn_io_job(io, job_blocks, job_done, NULL)) _exit(7);
  return io;
}

static void marked_io_wait_blocks(void) {
  rn_io_t *io = io_with_stuck_job();
  rn_thread_mark_loop();
  (void)rn_io_wait(io, -1);
}

static void marked_io_wait_zero_does_not(void) {
  rn_io_t *io = io_with_stuck_job();
  rn_thread_mark_loop();
  (void)rn_io_wait(io, 0); /* a poll, not a wait */
  (void)rn_io_poll(io);
}

static void marked_log_read(void) {
  crashfs_t *cfs = crashfs_new(2);
  rn_io_t *io = lt_io(crashfs_fs(cfs));
  rn_log_t *log;
  if (rn_log_open(io, "log", NULL, &log, NULL)) _exit(8);
  size_t len;
  uint8_t *b = lt_batch(1, 1, 16, 1000, RN_CODEC_NONE, &len);
  lt_ack_t a = {0};
  if (rn_log_append(log, b, len, 0, lt_ack_cb, &a, NULL)) _exit(9);
  lt_wait(io, &a);
  if (a.err) _exit(10);
  rn_thread_mark_loop(); /* from here on this thread is the loop */
  uint8_t buf[4096];
  size_t got;
  (void)rn_log_read(log, 0, buf, sizeof buf, &got);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_marked_thread_aborts(void **state) {
  (void)state;
  outcome_t o;
  run_child(marked_blocks, &o);
  assert_aborted_naming(&o, "fdatasync");
}

static void test_unmarked_thread_does_not(void **state) {
  (void)state;
  outcome_t o;
  run_child(unmarked_blocks, &o);
  assert_exited_cleanly(&o);
  run_child(marked_spawns_unmarked, &o);
  assert_exited_cleanly(&o);
}

static void test_posix_fs_checks(void **state) {
  (void)state;
  outcome_t o;
  run_child(marked_posix_open, &o);
  assert_aborted_naming(&o, "open");
  run_child(marked_posix_sync_dir, &o);
  assert_aborted_naming(&o, "fsync (directory)");
  run_child(marked_posix_datasync, &o);
  assert_aborted_naming(&o, "fdatasync");
  run_child(unmarked_posix_ops, &o);
  assert_exited_cleanly(&o);
}

static void test_storage_checks(void **state) {
  (void)state;
  outcome_t o;
  run_child(marked_io_wait_blocks, &o);
  assert_aborted_naming(&o, "rn_io_wait (waits for in-flight I/O)");
  run_child(marked_io_wait_zero_does_not, &o);
  assert_exited_cleanly(&o);
  run_child(marked_log_read, &o);
  assert_aborted_naming(&o, "rn_log_span_read (pread)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_marked_thread_aborts),
      cmocka_unit_test(test_unmarked_thread_does_not),
      cmocka_unit_test(test_posix_fs_checks),
      cmocka_unit_test(test_storage_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
