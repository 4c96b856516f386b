/*
 * test_io.c — rn_io_t on whichever backend RUNNEL_IO_BACKEND names (CTest
 * runs this binary twice: test_io.uring and test_io.posix).
 *
 * Checks the async contract of rn_io.h: every accepted op calls back exactly
 * once on the owner thread, a refused op never does, data lands byte-exact,
 * errors travel through the callback, submissions beyond the queue depth
 * wait instead of failing, callbacks may submit, destroy finishes in-flight
 * work, and the completion fd is pollable. Synchronisation is only through
 * rn_io_wait / poll(2) on rn_io_fd — no sleeps, no timing assertions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rn_fs.h"
#include "rn_io.h"
#include "testutil.h"

/* The iovec bookkeeping used for short io_uring writes is tested directly. */
#include "../../../storage/io_int.h"

/* ---- fixture ----------------------------------------------------------- */

typedef struct fx {
  char *dir;
  char path[512];
  rn_fs_t *fs;
  rn_file_t *f;
  rn_io_t *io;
} fx_t;

static pthread_t main_thread;

static int setup(void **state) {
  fx_t *fx = calloc(1, sizeof *fx);
  fx->dir = rn_test_tmpdir();
  snprintf(fx->path, sizeof fx->path, "%s/data", fx->dir);
  fx->fs = rn_fs_posix();
  if (fx->fs->open(fx->fs, fx->path, RN_FS_CREATE, &fx->f) != 0) return -1;
  if (rn_io_new(NULL, &fx->io) != 0) return -1;
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fx_t *fx = *state;
  rn_io_destroy(fx->io);
  fx->fs->close(fx->f);
  rn_test_rmtree(fx->dir);
  free(fx->dir);
  free(fx);
  return 0;
}

static void drain(rn_io_t *io) {
  while (rn_io_inflight(io) > 0) rn_io_wait(io, -1);
}

static void fill_random(uint8_t *p, size_t n, uint64_t *seed) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rn_test_rand(seed);
}

static void read_back(fx_t *fx, rn_file_t *f, uint8_t *buf, size_t len) {
  size_t n = 0;
  assert_int_equal(fx->fs->pread(f, buf, len, 0, &n), 0);
  assert_int_equal(n, len);
}

/* One slot per op: how often its callback ran, with what, on which thread. */
typedef struct slot {
  int calls;
  rn_err_t result;
  int on_main;
} slot_t;

static void slot_cb(void *arg, rn_err_t result) {
  slot_t *s = arg;
  s->calls++;
  s->result = result;
  s->on_main = pthread_equal(pthread_self(), main_thread);
}

static rn_io_backend_t env_backend(void) {
  const char *v = getenv("RUNNEL_IO_BACKEND");
  if (v && strcmp(v, "uring") == 0) return RN_IO_URING;
  if (v && strcmp(v, "posix") == 0) return RN_IO_POSIX;
  return RN_IO_AUTO;
}

/* ---- tests ------------------------------------------------------------- */

static void test_backend_matches_env(void **state) {
  fx_t *fx = *state;
  rn_io_backend_t want = env_backend();
  rn_io_backend_t got = rn_io_backend(fx->io);
  print_message("backend: %s\n", rn_io_backend_name(got));
  if (want != RN_IO_AUTO)
    assert_int_equal(got, want);
  else
    assert_true(got == RN_IO_URING || got == RN_IO_POSIX);
  assert_string_equal(rn_io_backend_name(RN_IO_URING), "uring");
  assert_string_equal(rn_io_backend_name(RN_IO_POSIX), "posix");
  assert_ptr_equal(rn_io_fs(fx->io), rn_fs_posix());
  assert_true(rn_io_fd(fx->io) >= 0);
  assert_int_equal(rn_io_inflight(fx->io), 0);
  /* Nothing in flight: both return at once. */
  assert_int_equal(rn_io_wait(fx->io, -1), 0);
  assert_int_equal(rn_io_poll(fx->io), 0);

  rn_io_opts_t opts;
  rn_io_opts_default(&opts);
  assert_int_equal(opts.backend, RN_IO_AUTO);
  assert_int_equal(opts.queue_depth, 256);
  assert_ptr_equal(opts.fs, rn_fs_posix());
}

/* Explicit backends are obeyed whatever the environment says; an unknown
 * RUNNEL_IO_BACKEND value is refused. */
static void test_explicit_backend_and_bad_env(void **state) {
  (void)state;
  rn_io_opts_t opts;
  rn_io_opts_default(&opts);
  rn_io_t *io = NULL;
  opts.backend = RN_IO_POSIX;
  assert_int_equal(rn_io_new(&opts, &io), 0);
  assert_int_equal(rn_io_backend(io), RN_IO_POSIX);
  rn_io_destroy(io);

  opts.backend = RN_IO_URING;
  rn_err_t err = rn_io_new(&opts, &io);
  if (err == 0) {
    assert_int_equal(rn_io_backend(io), RN_IO_URING);
    rn_io_destroy(io);
  } else {
    assert_true(err == -EPERM || err == -ENOSYS || err == -ENOMEM);
  }

  char *saved = getenv("RUNNEL_IO_BACKEND") ? strdup(getenv("RUNNEL_IO_BACKEND")) : NULL;
  setenv("RUNNEL_IO_BACKEND", "bogus", 1);
  io = (rn_io_t *)0x1;
  assert_int_equal(rn_io_new(NULL, &io), RN_EINVAL);
  assert_null(io);
  if (saved) {
    setenv("RUNNEL_IO_BACKEND", saved, 1);
    free(saved);
  } else {
    unsetenv("RUNNEL_IO_BACKEND");
  }
  rn_io_destroy(NULL);
}

/* Many writes at disjoint offsets, all in flight at once, submitted in a
 * shuffled order; the file reads back byte-exact. */
static void test_concurrent_writes_readback(void **state) {
  fx_t *fx = *state;
  enum { N = 512 };
  uint64_t seed = 0x1234;
  size_t *len = calloc(N, sizeof *len), *off = calloc(N, sizeof *off);
  size_t total = 0;
  for (int i = 0; i < N; i++) {
    len[i] = 1 + (size_t)rn_test_rand_below(&seed, 8192);
    off[i] = total;
    total += len[i];
  }
  uint8_t *src = malloc(total), *back = malloc(total);
  fill_random(src, total, &seed);
  int *order = calloc(N, sizeof *order);
  for (int i = 0; i < N; i++) order[i] = i;
  for (int i = N - 1; i > 0; i--) {
    int j = (int)rn_test_rand_below(&seed, (uint64_t)i + 1), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  slot_t *slots = calloc(N, sizeof *slots);
  for (int k = 0; k < N; k++) {
    int i = order[k];
    struct iovec iov = {.iov_base = src + off[i], .iov_len = len[i]};
    assert_int_equal(rn_io_write(fx->io, fx->f, &iov, 1, off[i], slot_cb, &slots[i]), 0);
  }
  assert_int_equal(rn_io_inflight(fx->io), N); /* callbacks run only inside poll/wait */
  drain(fx->io);
  for (int i = 0; i < N; i++) {
    assert_int_equal(slots[i].calls, 1);
    assert_int_equal(slots[i].result, 0);
    assert_true(slots[i].on_main);
  }
  read_back(fx, fx->f, back, total);
  assert_memory_equal(back, src, total);
  free(slots);
  free(order);
  free(back);
  free(src);
  free(off);
  free(len);
}

/* Writes with several iovecs (more than the op's inline copy holds, one of
 * them empty); the caller's iovec array may be reused right after submit. */
static void test_multi_iovec_write(void **state) {
  fx_t *fx = *state;
  uint64_t seed = 99;
  uint8_t a[100], b[3000], c[1], d[70000];
  fill_random(a, sizeof a, &seed);
  fill_random(b, sizeof b, &seed);
  fill_random(c, sizeof c, &seed);
  fill_random(d, sizeof d, &seed);
  struct iovec iov[5] = {{a, sizeof a}, {b, sizeof b}, {NULL, 0}, {c, sizeof c}, {d, sizeof d}};
  slot_t s1 = {0}, s2 = {0};
  assert_int_equal(rn_io_write(fx->io, fx->f, iov, 5, 10, slot_cb, &s1), 0);
  memset(iov, 0, sizeof iov); /* copied by rn_io_write */
  struct iovec iov2[3] = {{d, 7}, {a, 1}, {b, 2}};
  assert_int_equal(rn_io_write(fx->io, fx->f, iov2, 3, 0, slot_cb, &s2), 0);
  drain(fx->io);
  assert_int_equal(s1.calls, 1);
  assert_int_equal(s1.result, 0);
  assert_int_equal(s2.calls, 1);
  assert_int_equal(s2.result, 0);

  size_t total = 10 + sizeof a + sizeof b + sizeof c + sizeof d;
  uint8_t *want = calloc(1, total), *back = malloc(total);
  memcpy(want, d, 7);
  want[7] = a[0];
  memcpy(want + 8, b, 2);
  size_t p = 10;
  memcpy(want + p, a, sizeof a), p += sizeof a;
  memcpy(want + p, b, sizeof b), p += sizeof b;
  memcpy(want + p, c, sizeof c), p += sizeof c;
  memcpy(want + p, d, sizeof d);
  read_back(fx, fx->f, back, total);
  assert_memory_equal(back, want, total);
  free(want);
  free(back);
}

static void test_datasync(void **state) {
  fx_t *fx = *state;
  uint8_t buf[4096];
  memset(buf, 7, sizeof buf);
  struct iovec iov = {buf, sizeof buf};
  slot_t w = {0}, s = {0};
  assert_int_equal(rn_io_write(fx->io, fx->f, &iov, 1, 0, slot_cb, &w), 0);
  drain(fx->io);
  assert_int_equal(w.result, 0);
  assert_int_equal(rn_io_datasync(fx->io, fx->f, slot_cb, &s), 0);
  assert_int_equal(rn_io_inflight(fx->io), 1);
  drain(fx->io);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.result, 0);
  assert_true(s.on_main);

  /* Datasyncs mixed with writes, all in flight together. */
  slot_t many[40] = {{0}};
  for (int i = 0; i < 40; i++) {
    iov.iov_len = 100;
    if (i % 4 == 0)
      assert_int_equal(rn_io_datasync(fx->io, fx->f, slot_cb, &many[i]), 0);
    else
      assert_int_equal(rn_io_write(fx->io, fx->f, &iov, 1, (uint64_t)i * 100, slot_cb, &many[i]), 0);
  }
  drain(fx->io);
  for (int i = 0; i < 40; i++) {
    assert_int_equal(many[i].calls, 1);
    assert_int_equal(many[i].result, 0);
  }
}

typedef struct job {
  pthread_t ran_on;
  int ran;
  rn_err_t ret;
  int cb_calls;
  rn_err_t cb_result;
  int cb_on_main;
  int *order; /* FIFO check: job appends its index here */
  int *order_len;
  int index;
} job_t;

static rn_err_t job_fn(void *arg) {
  job_t *j = arg;
  j->ran_on = pthread_self();
  j->ran++;
  if (j->order) j->order[(*j->order_len)++] = j->index; /* one worker: no race */
  return j->ret;
}

static void job_cb(void *arg, rn_err_t result) {
  job_t *j = arg;
  j->cb_calls++;
  j->cb_result = result;
  j->cb_on_main = pthread_equal(pthread_self(), main_thread);
}

/* Writeback is a hint: it completes once, on the owner thread, with 0, and
 * leaves the file's bytes as they were. */
static void test_writeback(void **state) {
  fx_t *fx = *state;
  uint8_t buf[8192];
  memset(buf, 9, sizeof buf);
  struct iovec iov = {buf, sizeof buf};
  slot_t w = {0}, b = {0};
  assert_int_equal(rn_io_write(fx->io, fx->f, &iov, 1, 0, slot_cb, &w), 0);
  drain(fx->io);
  assert_int_equal(w.result, 0);
  assert_int_equal(rn_io_writeback(fx->io, fx->f, 0, sizeof buf, slot_cb, &b), 0);
  assert_int_equal(rn_io_inflight(fx->io), 1);
  drain(fx->io);
  assert_int_equal(b.calls, 1);
  assert_int_equal(b.result, 0);
  assert_true(b.on_main);
  uint8_t back[8192];
  size_t got = 0;
  assert_int_equal(fx->f->fs->pread(fx->f, back, sizeof back, 0, &got), 0);
  assert_int_equal(got, sizeof back);
  assert_memory_equal(back, buf, sizeof buf);
  assert_int_equal(rn_io_writeback(NULL, fx->f, 0, 1, slot_cb, &b), RN_EINVAL);
}

static void test_job_runs_on_worker(void **state) {
  fx_t *fx = *state;
  job_t j = {.ret = RN_ECORRUPT};
  assert_int_equal(rn_io_job(fx->io, job_fn, job_cb, &j), 0);
  assert_int_equal(rn_io_inflight(fx->io), 1);
  drain(fx->io);
  assert_int_equal(j.ran, 1);
  assert_false(pthread_equal(j.ran_on, main_thread));
  assert_int_equal(j.cb_calls, 1);
  assert_int_equal(j.cb_result, RN_ECORRUPT);
  assert_true(j.cb_on_main);

  job_t ok = {.ret = 0};
  assert_int_equal(rn_io_job(fx->io, job_fn, job_cb, &ok), 0);
  drain(fx->io);
  assert_int_equal(ok.cb_calls, 1);
  assert_int_equal(ok.cb_result, 0);
}

/* With one worker thread, jobs run in submission order. */
static void test_jobs_fifo_one_thread(void **state) {
  (void)state;
  rn_io_opts_t opts;
  rn_io_opts_default(&opts);
  opts.threads = 1;
  rn_io_t *io = NULL;
  assert_int_equal(rn_io_new(&opts, &io), 0);
  enum { N = 64 };
  job_t jobs[N];
  int order[N], order_len = 0;
  memset(jobs, 0, sizeof jobs);
  for (int i = 0; i < N; i++) {
    jobs[i].order = order;
    jobs[i].order_len = &order_len;
    jobs[i].index = i;
    assert_int_equal(rn_io_job(io, job_fn, job_cb, &jobs[i]), 0);
  }
  drain(io);
  assert_int_equal(order_len, N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(order[i], i);
    assert_int_equal(jobs[i].cb_calls, 1);
  }
  rn_io_destroy(io);
}

/* Callbacks submit the next op: a chain of appends, then a datasync, then a
 * job, each started from the previous one's callback. */
typedef struct chain {
  rn_io_t *io;
  rn_file_t *f;
  uint8_t *src;
  int next, n;
  size_t chunk;
  int synced, job_done, errors;
} chain_t;

static rn_err_t chain_job(void *arg) {
  (void)arg;
  return 0;
}

static void chain_cb(void *arg, rn_err_t result);

static void chain_job_cb(void *arg, rn_err_t result) {
  chain_t *c = arg;
  if (result) c->errors++;
  c->job_done++;
}

static void chain_sync_cb(void *arg, rn_err_t result) {
  chain_t *c = arg;
  if (result) c->errors++;
  c->synced++;
  if (rn_io_job(c->io, chain_job, chain_job_cb, c) != 0) c->errors++;
}

static void chain_submit(chain_t *c) {
  struct iovec iov = {c->src + (size_t)c->next * c->chunk, c->chunk};
  uint64_t off = (uint64_t)c->next * c->chunk;
  c->next++;
  if (rn_io_write(c->io, c->f, &iov, 1, off, chain_cb, c) != 0) c->errors++;
}

static void chain_cb(void *arg, rn_err_t result) {
  chain_t *c = arg;
  if (result) c->errors++;
  if (c->next < c->n) {
    /* Two at a time while there is room: the chain also fans out. */
    chain_submit(c);
    if (c->next < c->n && c->next % 3 == 0) chain_submit(c);
  } else if (rn_io_inflight(c->io) == 0 && !c->synced) {
    if (rn_io_datasync(c->io, c->f, chain_sync_cb, c) != 0) c->errors++;
  }
}

static void test_callbacks_submit(void **state) {
  fx_t *fx = *state;
  chain_t c = {.io = fx->io, .f = fx->f, .n = 300, .chunk = 1000};
  uint64_t seed = 7;
  c.src = malloc((size_t)c.n * c.chunk);
  fill_random(c.src, (size_t)c.n * c.chunk, &seed);
  chain_submit(&c);
  drain(fx->io);
  assert_int_equal(c.errors, 0);
  assert_int_equal(c.next, c.n);
  assert_int_equal(c.synced, 1);
  assert_int_equal(c.job_done, 1);
  uint8_t *back = malloc((size_t)c.n * c.chunk);
  read_back(fx, fx->f, back, (size_t)c.n * c.chunk);
  assert_memory_equal(back, c.src, (size_t)c.n * c.chunk);
  free(back);
  free(c.src);
}

/* Far more ops than the queue depth: none is refused, all complete. */
static void test_more_ops_than_depth(void **state) {
  fx_t *fx = *state;
  rn_io_opts_t opts;
  rn_io_opts_default(&opts);
  opts.queue_depth = 4;
  rn_io_t *io = NULL;
  assert_int_equal(rn_io_new(&opts, &io), 0);
  if (env_backend() != RN_IO_AUTO) assert_int_equal(rn_io_backend(io), env_backend());

  enum { N = 1000, LEN = 512 };
  uint64_t seed = 5;
  uint8_t *src = malloc((size_t)N * LEN), *back = malloc((size_t)N * LEN);
  fill_random(src, (size_t)N * LEN, &seed);
  slot_t *slots = calloc(N + N / 100, sizeof *slots);
  int k = 0;
  for (int i = 0; i < N; i++) {
    struct iovec iov[2] = {{src + (size_t)i * LEN, LEN / 2}, {src + (size_t)i * LEN + LEN / 2, LEN / 2}};
    assert_int_equal(rn_io_write(io, fx->f, iov, 2, (uint64_t)i * LEN, slot_cb, &slots[k++]), 0);
    if (i % 100 == 99) assert_int_equal(rn_io_datasync(io, fx->f, slot_cb, &slots[k++]), 0);
  }
  assert_int_equal(rn_io_inflight(io), (unsigned)k);
  drain(io);
  for (int i = 0; i < k; i++) {
    assert_int_equal(slots[i].calls, 1);
    assert_int_equal(slots[i].result, 0);
  }
  read_back(fx, fx->f, back, (size_t)N * LEN);
  assert_memory_equal(back, src, (size_t)N * LEN);
  rn_io_destroy(io);
  free(slots);
  free(back);
  free(src);
}

/* Failures reach the callback as negative errors; refused submissions never
 * call back and are not counted in flight. */
static void test_errors_through_callback(void **state) {
  fx_t *fx = *state;
  rn_file_t *ro = NULL;
  assert_int_equal(fx->fs->open(fx->fs, fx->path, RN_FS_RDONLY, &ro), 0);
  char byte = 'x';
  struct iovec iov = {&byte, 1};
  slot_t w = {0}, s = {0}, ok = {0};
  assert_int_equal(rn_io_write(fx->io, ro, &iov, 1, 0, slot_cb, &w), 0);

  /* A descriptor number no process can have open. */
  rn_file_t bad = {.fs = rn_fs_posix(), .fd = 1 << 24};
  assert_int_equal(rn_io_datasync(fx->io, &bad, slot_cb, &s), 0);
  assert_int_equal(rn_io_write(fx->io, fx->f, &iov, 1, 0, slot_cb, &ok), 0);
  drain(fx->io);
  assert_int_equal(w.calls, 1);
  assert_int_equal(w.result, -EBADF);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.result, -EBADF);
  assert_int_equal(ok.calls, 1);
  assert_int_equal(ok.result, 0);
  fx->fs->close(ro);

  /* A file without a descriptor: io_uring cannot take it (refused, no
   * callback); the posix backend hands it to the fs, which reports EBADF. */
  rn_file_t nofd = {.fs = rn_fs_posix(), .fd = -1};
  slot_t nf = {0};
  if (rn_io_backend(fx->io) == RN_IO_URING) {
    assert_int_equal(rn_io_write(fx->io, &nofd, &iov, 1, 0, slot_cb, &nf), RN_ENOTSUP);
    assert_int_equal(rn_io_datasync(fx->io, &nofd, slot_cb, &nf), RN_ENOTSUP);
    assert_int_equal(rn_io_inflight(fx->io), 0);
  } else {
    assert_int_equal(rn_io_write(fx->io, &nofd, &iov, 1, 0, slot_cb, &nf), 0);
    drain(fx->io);
    assert_int_equal(nf.result, -EBADF);
  }

  slot_t never = {0};
  assert_int_equal(rn_io_write(fx->io, fx->f, &iov, 0, 0, slot_cb, &never), RN_EINVAL);
  assert_int_equal(rn_io_write(fx->io, fx->f, NULL, 1, 0, slot_cb, &never), RN_EINVAL);
  assert_int_equal(rn_io_write(fx->io, fx->f, &iov, 1, 0, NULL, &never), RN_EINVAL);
  assert_int_equal(rn_io_write(fx->io, NULL, &iov, 1, 0, slot_cb, &never), RN_EINVAL);
  assert_int_equal(rn_io_write(fx->io, fx->f, &iov, 1, UINT64_MAX, slot_cb, &never), RN_EINVAL);
  assert_int_equal(rn_io_datasync(fx->io, NULL, slot_cb, &never), RN_EINVAL);
  assert_int_equal(rn_io_job(fx->io, NULL, slot_cb, &never), RN_EINVAL);
  assert_int_equal(rn_io_inflight(fx->io), 0);
  assert_int_equal(rn_io_wait(fx->io, -1), 0);
  assert_int_equal(never.calls, 0);
}

/* A write cut short by RLIMIT_FSIZE: the first part lands, the rest fails
 * with -EFBIG (on io_uring this goes through the short-write resubmission). */
static void test_short_write_then_error(void **state) {
  fx_t *fx = *state;
  struct rlimit old, lim;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  lim = old;
  lim.rlim_cur = 1000;
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

  uint8_t src[1800];
  uint64_t seed = 3;
  fill_random(src, sizeof src, &seed);
  struct iovec iov[3] = {{src, 600}, {src + 600, 600}, {src + 1200, 600}};
  slot_t s = {0};
  assert_int_equal(rn_io_write(fx->io, fx->f, iov, 3, 0, slot_cb, &s), 0);
  drain(fx->io);

  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, old_handler);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.result, -EFBIG);
  uint64_t size = 0;
  assert_int_equal(fx->fs->size(fx->f, &size), 0);
  assert_int_equal(size, 1000);
  uint8_t back[1000];
  read_back(fx, fx->f, back, sizeof back);
  assert_memory_equal(back, src, sizeof back);
}

static void test_fd_becomes_readable(void **state) {
  fx_t *fx = *state;
  int fd = rn_io_fd(fx->io);
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  assert_int_equal(poll(&pfd, 1, 0), 0); /* nothing completed yet */

  job_t j = {.ret = 0};
  assert_int_equal(rn_io_job(fx->io, job_fn, job_cb, &j), 0);
  assert_int_equal(poll(&pfd, 1, -1), 1); /* wait for the completion */
  assert_int_equal(poll(&pfd, 1, 0), 1);  /* stays readable until polled */
  assert_true(pfd.revents & POLLIN);
  assert_int_equal(j.cb_calls, 0);
  assert_int_equal(rn_io_poll(fx->io), 1);
  assert_int_equal(j.cb_calls, 1);
  assert_int_equal(poll(&pfd, 1, 0), 0); /* drained */

  uint8_t buf[512] = {1};
  struct iovec iov = {buf, sizeof buf};
  slot_t w = {0}, s = {0};
  assert_int_equal(rn_io_write(fx->io, fx->f, &iov, 1, 0, slot_cb, &w), 0);
  assert_int_equal(poll(&pfd, 1, -1), 1);
  assert_int_equal(poll(&pfd, 1, 0), 1);
  assert_int_equal(rn_io_poll(fx->io), 1);
  assert_int_equal(w.calls, 1);
  assert_int_equal(w.result, 0);
  assert_int_equal(rn_io_datasync(fx->io, fx->f, slot_cb, &s), 0);
  assert_int_equal(poll(&pfd, 1, -1), 1);
  assert_int_equal(poll(&pfd, 1, 0), 1);
  assert_int_equal(rn_io_poll(fx->io), 1);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.result, 0);
  assert_int_equal(poll(&pfd, 1, 0), 0);
}

/* Destroy with writes, datasyncs and jobs in flight (many more than the
 * queue depth, so some still wait for a slot): every callback runs once. */
static void test_destroy_with_ops_in_flight(void **state) {
  fx_t *fx = *state;
  rn_io_opts_t opts;
  rn_io_opts_default(&opts);
  opts.queue_depth = 8;
  rn_io_t *io = NULL;
  assert_int_equal(rn_io_new(&opts, &io), 0);
  enum { NW = 300, NS = 20, NJ = 20 };
  static uint8_t buf[NW * 64];
  slot_t *slots = calloc(NW + NS, sizeof *slots);
  job_t *jobs = calloc(NJ, sizeof *jobs);
  for (int i = 0; i < NW; i++) {
    struct iovec iov = {buf + i * 64, 64};
    assert_int_equal(rn_io_write(io, fx->f, &iov, 1, (uint64_t)i * 64, slot_cb, &slots[i]), 0);
    if (i % 15 == 0) assert_int_equal(rn_io_datasync(io, fx->f, slot_cb, &slots[NW + i / 15]), 0);
    if (i % 15 == 7) assert_int_equal(rn_io_job(io, job_fn, job_cb, &jobs[i / 15]), 0);
  }
  assert_int_equal(rn_io_inflight(io), NW + NS + NJ);
  rn_io_destroy(io);
  for (int i = 0; i < NW + NS; i++) {
    assert_int_equal(slots[i].calls, 1);
    assert_int_equal(slots[i].result, 0);
    assert_true(slots[i].on_main);
  }
  for (int i = 0; i < NJ; i++) {
    assert_int_equal(jobs[i].ran, 1);
    assert_int_equal(jobs[i].cb_calls, 1);
  }
  free(jobs);
  free(slots);
}

/* ---- a file system without descriptors --------------------------------- */

typedef struct memfs {
  rn_fs_t fs; /* first */
  pthread_mutex_t mu;
  uint8_t data[1 << 16];
  uint64_t size;
  int writes, syncs;
} memfs_t;

static rn_err_t mem_open(rn_fs_t *fs, const char *path, int flags, rn_file_t **out) {
  (void)path;
  (void)flags;
  rn_file_t *f = calloc(1, sizeof *f);
  f->fs = fs;
  f->fd = -1;
  *out = f;
  return 0;
}
static void mem_close(rn_file_t *f) { free(f); }
static rn_err_t mem_pwritev(rn_file_t *f, const struct iovec *iov, int iovcnt, uint64_t off) {
  memfs_t *m = (memfs_t *)f->fs;
  pthread_mutex_lock(&m->mu);
  for (int i = 0; i < iovcnt; i++) {
    if (off + iov[i].iov_len > sizeof m->data) {
      pthread_mutex_unlock(&m->mu);
      return RN_ENOSPC;
    }
    memcpy(m->data + off, iov[i].iov_base, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  if (off > m->size) m->size = off;
  m->writes++;
  pthread_mutex_unlock(&m->mu);
  return 0;
}
static rn_err_t mem_datasync(rn_file_t *f) {
  memfs_t *m = (memfs_t *)f->fs;
  pthread_mutex_lock(&m->mu);
  m->syncs++;
  pthread_mutex_unlock(&m->mu);
  return 0;
}

static void test_fs_without_fds(void **state) {
  (void)state;
  memfs_t *m = calloc(1, sizeof *m);
  pthread_mutex_init(&m->mu, NULL);
  m->fs.name = "memfs";
  m->fs.open = mem_open;
  m->fs.close = mem_close;
  m->fs.pwritev = mem_pwritev;
  m->fs.datasync = mem_datasync;

  rn_io_opts_t opts;
  rn_io_opts_default(&opts);
  opts.fs = &m->fs;
  opts.backend = RN_IO_URING;
  rn_io_t *io = (rn_io_t *)0x1;
  assert_int_equal(rn_io_new(&opts, &io), RN_ENOTSUP);
  assert_null(io);

  /* AUTO picks posix for it, whatever RUNNEL_IO_BACKEND says, and the ops
   * go through the fs. */
  opts.backend = RN_IO_AUTO;
  assert_int_equal(rn_io_new(&opts, &io), 0);
  assert_int_equal(rn_io_backend(io), RN_IO_POSIX);
  assert_ptr_equal(rn_io_fs(io), &m->fs);
  rn_file_t *f = NULL;
  assert_int_equal(m->fs.open(&m->fs, "x", RN_FS_CREATE, &f), 0);
  slot_t w[10] = {{0}}, s = {0}, big = {0};
  char text[] = "0123456789";
  for (int i = 0; i < 10; i++) {
    struct iovec iov = {text + i, 1};
    assert_int_equal(rn_io_write(io, f, &iov, 1, (uint64_t)i, slot_cb, &w[i]), 0);
  }
  drain(io);
  assert_int_equal(rn_io_datasync(io, f, slot_cb, &s), 0);
  static uint8_t huge[1 << 17];
  struct iovec hv = {huge, sizeof huge};
  assert_int_equal(rn_io_write(io, f, &hv, 1, 0, slot_cb, &big), 0);
  rn_io_destroy(io);
  for (int i = 0; i < 10; i++) assert_int_equal(w[i].result, 0);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.result, 0);
  assert_int_equal(big.calls, 1);
  assert_int_equal(big.result, RN_ENOSPC);
  assert_int_equal(m->writes, 10);
  assert_int_equal(m->syncs, 1);
  assert_int_equal(m->size, 10);
  assert_memory_equal(m->data, text, 10);
  m->fs.close(f);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

/* ---- AUTO fallback when io_uring is unavailable ------------------------ */

/* In a child: make io_uring_setup fail with errno_val (as a seccomp policy
 * or kernel.io_uring_disabled would), then check what rn_io_new picks.
 * Exit status 0 = as expected, 77 = could not install the filter. */
static int fallback_child(int errno_val) {
  struct sock_filter filt[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)errno_val & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = sizeof filt / sizeof filt[0], .filter = filt};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 77;
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return 77;

  unsetenv("RUNNEL_IO_BACKEND");
  rn_io_t *io = NULL;
  if (rn_io_new(NULL, &io) != 0) return 1;
  if (rn_io_backend(io) != RN_IO_POSIX) return 2;
  job_t j = {.ret = 0};
  if (rn_io_job(io, job_fn, job_cb, &j) != 0) return 3;
  rn_io_destroy(io);
  if (j.cb_calls != 1) return 4;

  rn_io_opts_t opts;
  rn_io_opts_default(&opts);
  opts.backend = RN_IO_URING; /* forced: the error comes back */
  if (rn_io_new(&opts, &io) != -errno_val) return 5;
  setenv("RUNNEL_IO_BACKEND", "uring", 1); /* the environment forces too */
  if (rn_io_new(NULL, &io) != -errno_val) return 6;
  return 0;
}

static void test_auto_falls_back(void **state) {
  (void)state;
  const int errs[] = {ENOSYS, EPERM, ENOMEM};
  for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(fallback_child(errs[i]));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) skip();
    assert_int_equal(WEXITSTATUS(status), 0);
  }
}

/* rn__io_op_advance: the iovec cursor used to resubmit short writes. */
static void test_op_advance(void **state) {
  (void)state;
  char a[10], b[5], c[20];
  rn__io_op_t op;
  memset(&op, 0, sizeof op);
  op.iov = op.iov_inline;
  op.iov[0] = (struct iovec){a, sizeof a};
  op.iov[1] = (struct iovec){b, sizeof b};
  op.iov[2] = (struct iovec){NULL, 0};
  op.iov[3] = (struct iovec){c, sizeof c};
  op.iovcnt = 4;
  op.remaining = 35;
  op.off = 100;

  rn__io_op_advance(&op, 3); /* inside the first entry */
  assert_int_equal(op.iovcnt, 4);
  assert_ptr_equal(op.iov[0].iov_base, a + 3);
  assert_int_equal(op.iov[0].iov_len, 7);
  assert_int_equal(op.off, 103);
  assert_int_equal(op.remaining, 32);

  rn__io_op_advance(&op, 7); /* exactly to the end of an entry */
  assert_int_equal(op.iovcnt, 3);
  assert_ptr_equal(op.iov[0].iov_base, b);

  rn__io_op_advance(&op, 6); /* across b and the empty entry into c */
  assert_int_equal(op.iovcnt, 1);
  assert_ptr_equal(op.iov[0].iov_base, c + 1);
  assert_int_equal(op.iov[0].iov_len, 19);
  assert_int_equal(op.remaining, 19);
  assert_int_equal(op.off, 116);

  rn__io_op_advance(&op, 19);
  assert_int_equal(op.iovcnt, 0);
  assert_int_equal(op.remaining, 0);
  assert_int_equal(op.off, 135);
}

int main(void) {
  main_thread = pthread_self();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_backend_matches_env, setup, teardown),
      cmocka_unit_test(test_explicit_backend_and_bad_env),
      cmocka_unit_test_setup_teardown(test_concurrent_writes_readback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_multi_iovec_write, setup, teardown),
      cmocka_unit_test_setup_teardown(test_datasync, setup, teardown),
      cmocka_unit_test_setup_teardown(test_writeback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_job_runs_on_worker, setup, teardown),
      cmocka_unit_test(test_jobs_fifo_one_thread),
      cmocka_unit_test_setup_teardown(test_callbacks_submit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_more_ops_than_depth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errors_through_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_short_write_then_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fd_becomes_readable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_destroy_with_ops_in_flight, setup, teardown),
      cmocka_unit_test(test_fs_without_fds),
      cmocka_unit_test(test_auto_falls_back),
      cmocka_unit_test(test_op_advance),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
