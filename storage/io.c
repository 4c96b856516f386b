/*
 * io.c — the backend-independent core of rn_io_t (see rn_io.h, io_int.h).
 *
 * Owns: the eventfd returned by rn_io_fd, the op free list, the completion
 * list workers push onto, the worker pool and its FIFO, and the choice of
 * backend. Backends live behind rn__io_backend_t in io_uring.c/io_posix.c;
 * this file has no backend #ifdefs.
 *
 * Invariants:
 *   - An op is accepted (inflight++) only after every check that can fail;
 *     once accepted its callback runs exactly once, on the owner thread,
 *     from rn_io_poll, after the op was released (inflight-- happens just
 *     before the call, so the callback sees itself as no longer in flight
 *     and may reuse the op struct by submitting).
 *   - rn_io_poll first drains the eventfd, then collects every finished op
 *     into a local list, then runs callbacks. Anything that finishes after
 *     the drain signals the eventfd again, so no completion is ever left
 *     without a readable fd. Callbacks may submit or even poll: they only
 *     touch new ops, never the local list being run.
 *   - A worker signals the eventfd only when it makes the completion list
 *     non-empty; the owner always takes the list whole after draining, so a
 *     non-empty list always has a signal pending or being consumed.
 *   - Workers block every signal, so signal handling stays with the
 *     application's threads.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "io_int.h"
#include "rn_base.h"

#define RN__IO_DEFAULT_DEPTH 256u
#define RN__IO_MAX_THREADS 256u
#define RN__IO_MIN_FREE_CAP 64u
#define RN__IO_MAX_FREE_CAP 4096u

/* ---- op free list (owner thread) ---------------------------------------- */

static rn__io_op_t *op_get(rn_io_t *io) {
  rn__io_op_t *op = io->free_ops;
  if (op) {
    io->free_ops = op->next;
    io->nfree--;
  } else {
    op = malloc(sizeof *op);
    if (!op) return NULL;
  }
  memset(op, 0, offsetof(rn__io_op_t, iov_inline));
  return op;
}

static void op_put(rn_io_t *io, rn__io_op_t *op) {
  free(op->iov_heap);
  op->iov_heap = NULL;
  if (io->nfree < io->free_cap) {
    op->next = io->free_ops;
    io->free_ops = op;
    io->nfree++;
  } else {
    free(op);
  }
}

void rn__io_op_advance(rn__io_op_t *op, size_t n) {
  assert(n <= op->remaining);
  op->remaining -= n;
  op->off += n;
  while (op->iovcnt > 0 && n >= op->iov->iov_len) {
    n -= op->iov->iov_len;
    op->iov++;
    op->iovcnt--;
  }
  if (n > 0) {
    assert(op->iovcnt > 0);
    op->iov->iov_base = (char *)op->iov->iov_base + n;
    op->iov->iov_len -= n;
  }
  /* Drop leading empty entries so a resubmission never starts with one. */
  while (op->iovcnt > 0 && op->iov->iov_len == 0) {
    op->iov++;
    op->iovcnt--;
  }
}

/* ---- completion list and worker pool ------------------------------------- */

/* Any thread: queue a finished op for the owner and wake it. */
static void done_push(rn_io_t *io, rn__io_op_t *op) {
  pthread_mutex_lock(&io->done_mu);
  bool was_empty = io->done.head == NULL;
  rn__io_list_push(&io->done, op);
  pthread_mutex_unlock(&io->done_mu);
  if (was_empty) {
    uint64_t one = 1;
    ssize_t n;
    do {
      n = write(io->efd, &one, sizeof one);
    } while (n < 0 && errno == EINTR);
    /* EAGAIN means the counter is saturated, i.e. already readable. */
  }
}

static void lane_push(rn__io_lane_t *lane, rn__io_op_t *op) {
  pthread_mutex_lock(&lane->mu);
  rn__io_list_push(&lane->queue, op);
  pthread_cond_signal(&lane->cv);
  pthread_mutex_unlock(&lane->mu);
}

void rn__io_pool_push(rn_io_t *io, rn__io_op_t *op) { lane_push(&io->pool, op); }

/* Worker thread: run a lane's ops in FIFO order until told to stop. */
static void *worker_main(void *p) {
  rn__io_lane_t *lane = p;
  rn_io_t *io = lane->io;
  for (;;) {
    pthread_mutex_lock(&lane->mu);
    while (!lane->queue.head && !lane->stop) pthread_cond_wait(&lane->cv, &lane->mu);
    rn__io_op_t *op = rn__io_list_pop(&lane->queue);
    pthread_mutex_unlock(&lane->mu);
    if (!op) break; /* stop with an empty queue */
    if (op->kind == RN__IO_JOB)
      op->result = op->fn(op->arg);
    else
      op->result = io->be->run(op);
    done_push(io, op);
  }
  return NULL;
}

static void lane_init(rn_io_t *io, rn__io_lane_t *lane) {
  lane->io = io;
  pthread_mutex_init(&lane->mu, NULL);
  pthread_cond_init(&lane->cv, NULL);
}

static void lane_stop(rn__io_lane_t *lane) {
  pthread_mutex_lock(&lane->mu);
  lane->stop = true;
  pthread_cond_broadcast(&lane->cv);
  pthread_mutex_unlock(&lane->mu);
  for (unsigned i = 0; i < lane->nthreads; i++) pthread_join(lane->threads[i], NULL);
  lane->nthreads = 0;
  free(lane->threads);
  lane->threads = NULL;
}

static void lane_destroy(rn__io_lane_t *lane) {
  if (lane->nthreads) lane_stop(lane);
  pthread_cond_destroy(&lane->cv);
  pthread_mutex_destroy(&lane->mu);
}

static rn_err_t lane_start(rn__io_lane_t *lane, unsigned n) {
  lane->threads = calloc(n, sizeof *lane->threads);
  if (!lane->threads) return RN_ENOMEM;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  rn_err_t err = 0;
  for (unsigned i = 0; i < n; i++) {
    int rc = pthread_create(&lane->threads[i], NULL, worker_main, lane);
    if (rc) {
      err = -rc;
      break;
    }
    lane->nthreads++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err) lane_stop(lane);
  return err;
}

/* ---- creation ------------------------------------------------------------ */

void rn_io_opts_default(rn_io_opts_t *opts) {
  if (!opts) return;
  memset(opts, 0, sizeof *opts);
  opts->backend = RN_IO_AUTO;
  opts->queue_depth = RN__IO_DEFAULT_DEPTH;
  opts->threads = 0; /* the backend's default: 2 (posix), 1 (uring) */
  opts->fs = rn_fs_posix();
}

/* RUNNEL_IO_BACKEND: unset, "" or "auto" = AUTO; "uring"; "posix". Anything
 * else is RN_EINVAL rather than silently ignored: a typo there would
 * otherwise quietly benchmark or test the wrong backend. */
static rn_err_t backend_from_env(rn_io_backend_t *out) {
  const char *v = getenv("RUNNEL_IO_BACKEND");
  if (!v || !*v || strcmp(v, "auto") == 0)
    *out = RN_IO_AUTO;
  else if (strcmp(v, "uring") == 0 || strcmp(v, "io_uring") == 0)
    *out = RN_IO_URING;
  else if (strcmp(v, "posix") == 0)
    *out = RN_IO_POSIX;
  else
    return RN_EINVAL;
  return 0;
}

static const rn__io_backend_t *backend_table(rn_io_backend_t b) {
  return b == RN_IO_URING ? &rn__io_backend_uring : &rn__io_backend_posix;
}

static bool uring_unavailable(rn_err_t err) {
  return err == -EPERM || err == -ENOSYS || err == -ENOMEM;
}

static void io_free(rn_io_t *io) {
  if (io->pool.nthreads) lane_stop(&io->pool);
  if (io->bg.nthreads) lane_stop(&io->bg);
  if (io->be && io->be_state) io->be->fini(io);
  while (io->free_ops) {
    rn__io_op_t *op = io->free_ops;
    io->free_ops = op->next;
    free(op);
  }
  if (io->efd >= 0) close(io->efd);
  lane_destroy(&io->pool);
  lane_destroy(&io->bg);
  pthread_mutex_destroy(&io->done_mu);
  free(io);
}

rn_err_t rn_io_new(const rn_io_opts_t *opts_in, rn_io_t **out) {
  if (!out) return RN_EINVAL;
  *out = NULL;
  rn_io_opts_t opts;
  if (opts_in)
    opts = *opts_in;
  else
    rn_io_opts_default(&opts);
  if (!opts.fs) opts.fs = rn_fs_posix();
  if (!opts.queue_depth) opts.queue_depth = RN__IO_DEFAULT_DEPTH;
  if (opts.backend != RN_IO_AUTO && opts.backend != RN_IO_URING && opts.backend != RN_IO_POSIX)
    return RN_EINVAL;
  if (opts.threads > RN__IO_MAX_THREADS) return RN_EINVAL;

  /* Choice: an explicit backend is obeyed (or fails). AUTO takes the
   * environment's choice, and then prefers uring with a fallback. Whatever
   * the environment says, a file system other than the OS one (a crash
   * simulator, an in-memory fs) has no descriptors for io_uring, so AUTO
   * picks posix for it: the storage tests run under RUNNEL_IO_BACKEND=uring
   * with crashfs too. */
  bool os_fs = opts.fs == rn_fs_posix();
  bool may_fall_back = false;
  rn_io_backend_t want = opts.backend;
  if (want == RN_IO_URING && !os_fs) return RN_ENOTSUP;
  if (want == RN_IO_AUTO) {
    rn_err_t err = backend_from_env(&want);
    if (err) return err;
    if (!os_fs) want = RN_IO_POSIX;
    if (want == RN_IO_AUTO) {
      want = RN_IO_URING;
      may_fall_back = true;
    }
  }

  rn_io_t *io = calloc(1, sizeof *io);
  if (!io) return RN_ENOMEM;
  io->efd = -1;
  pthread_mutex_init(&io->done_mu, NULL);
  lane_init(io, &io->pool);
  lane_init(io, &io->bg);
  io->fs = opts.fs;
  io->queue_depth = opts.queue_depth;
  io->free_cap = opts.queue_depth;
  if (io->free_cap < RN__IO_MIN_FREE_CAP) io->free_cap = RN__IO_MIN_FREE_CAP;
  if (io->free_cap > RN__IO_MAX_FREE_CAP) io->free_cap = RN__IO_MAX_FREE_CAP;

  rn_err_t err = 0;
  io->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (io->efd < 0) err = -errno;

  if (!err) {
    io->be = backend_table(want);
    err = io->be->init(io, &opts);
    if (err && may_fall_back && uring_unavailable(err)) {
      io->be = &rn__io_backend_posix;
      err = io->be->init(io, &opts);
    }
    if (err) io->be = NULL;
  }
  if (!err) err = lane_start(&io->pool, opts.threads ? opts.threads : io->be->default_threads);
  if (!err) err = lane_start(&io->bg, 1);
  if (err) {
    io_free(io);
    return err;
  }
  *out = io;
  return 0;
}

void rn_io_destroy(rn_io_t *io) {
  if (!io) return;
  assert(io->cb_depth == 0 && "rn_io_destroy called from inside a callback");
  if (io->inflight > 0) rn_assert_may_block("rn_io_destroy (waits for in-flight I/O)");
  while (io->inflight > 0) rn_io_wait(io, -1);
  io_free(io);
}

/* ---- accessors ------------------------------------------------------------ */

rn_io_backend_t rn_io_backend(const rn_io_t *io) { return io->be->id; }

const char *rn_io_backend_name(rn_io_backend_t backend) {
  switch (backend) {
    case RN_IO_AUTO:
      return "auto";
    case RN_IO_URING:
      return "uring";
    case RN_IO_POSIX:
      return "posix";
  }
  return "unknown";
}

rn_fs_t *rn_io_fs(const rn_io_t *io) { return io->fs; }

int rn_io_fd(const rn_io_t *io) { return io->efd; }

unsigned rn_io_inflight(const rn_io_t *io) { return io->inflight; }

/* ---- submission (owner thread) ------------------------------------------- */

static rn_err_t submit_to_backend(rn_io_t *io, rn__io_op_t *op) {
  rn_err_t err = io->be->submit(io, op);
  if (err) {
    op_put(io, op);
    return err;
  }
  io->inflight++;
  return 0;
}

rn_err_t rn_io_write(rn_io_t *io, rn_file_t *f, const struct iovec *iov, int iovcnt, uint64_t off,
                     rn_io_cb cb, void *arg) {
  if (!io || !f || !cb || iovcnt < 1 || iovcnt > IOV_MAX || !iov) return RN_EINVAL;
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > SIZE_MAX - total || (iov[i].iov_len && !iov[i].iov_base)) return RN_EINVAL;
    total += iov[i].iov_len;
  }
  if (off > (uint64_t)INT64_MAX || total > (uint64_t)INT64_MAX - off) return RN_EINVAL;

  rn__io_op_t *op = op_get(io);
  if (!op) return RN_ENOMEM;
  if (iovcnt > RN__IO_INLINE_IOV) {
    op->iov_heap = malloc((size_t)iovcnt * sizeof *op->iov_heap);
    if (!op->iov_heap) {
      op_put(io, op);
      return RN_ENOMEM;
    }
    op->iov = op->iov_heap;
  } else {
    op->iov = op->iov_inline;
  }
  memcpy(op->iov, iov, (size_t)iovcnt * sizeof *iov);
  op->kind = RN__IO_WRITE;
  op->f = f;
  op->iovcnt = iovcnt;
  op->off = off;
  op->remaining = total;
  op->cb = cb;
  op->arg = arg;
  return submit_to_backend(io, op);
}

rn_err_t rn_io_datasync(rn_io_t *io, rn_file_t *f, rn_io_cb cb, void *arg) {
  if (!io || !f || !cb) return RN_EINVAL;
  rn__io_op_t *op = op_get(io);
  if (!op) return RN_ENOMEM;
  op->kind = RN__IO_DATASYNC;
  op->f = f;
  op->cb = cb;
  op->arg = arg;
  return submit_to_backend(io, op);
}

rn_err_t rn_io_writeback(rn_io_t *io, rn_file_t *f, uint64_t off, uint64_t len, rn_io_cb cb, void *arg) {
  if (!io || !f || !cb) return RN_EINVAL;
  rn__io_op_t *op = op_get(io);
  if (!op) return RN_ENOMEM;
  op->kind = RN__IO_WRITEBACK;
  op->f = f;
  op->off = off;
  op->remaining = (size_t)len;
  op->cb = cb;
  op->arg = arg;
  return submit_to_backend(io, op);
}

static rn_err_t submit_job(rn_io_t *io, rn__io_lane_t *lane, rn_io_job_fn fn, rn_io_cb cb, void *arg) {
  if (!io || !fn || !cb) return RN_EINVAL;
  rn__io_op_t *op = op_get(io);
  if (!op) return RN_ENOMEM;
  op->kind = RN__IO_JOB;
  op->fn = fn;
  op->cb = cb;
  op->arg = arg;
  io->inflight++;
  lane_push(lane, op);
  return 0;
}

rn_err_t rn_io_job(rn_io_t *io, rn_io_job_fn fn, rn_io_cb cb, void *arg) {
  return submit_job(io, io ? &io->pool : NULL, fn, cb, arg);
}

rn_err_t rn_io_job_bg(rn_io_t *io, rn_io_job_fn fn, rn_io_cb cb, void *arg) {
  return submit_job(io, io ? &io->bg : NULL, fn, cb, arg);
}

/* ---- completion (owner thread) -------------------------------------------- */

int rn_io_poll(rn_io_t *io) {
  uint64_t count;
  (void)!read(io->efd, &count, sizeof count); /* drain first; EAGAIN = nothing */

  rn__io_list_t ready = {NULL, NULL};
  if (io->be->reap) io->be->reap(io, &ready);
  pthread_mutex_lock(&io->done_mu);
  rn__io_list_concat(&ready, &io->done);
  pthread_mutex_unlock(&io->done_mu);

  int n = 0;
  rn__io_op_t *op;
  while ((op = rn__io_list_pop(&ready))) {
    rn_io_cb cb = op->cb;
    void *arg = op->arg;
    rn_err_t result = op->result;
    op_put(io, op);
    assert(io->inflight > 0);
    io->inflight--;
    io->cb_depth++;
    cb(arg, result);
    io->cb_depth--;
    n++;
  }
  return n;
}

static int64_t now_ms(void) { return (int64_t)(rn_clock_mono_ns(NULL) / 1000000); }

int rn_io_wait(rn_io_t *io, int timeout_ms) {
  int n = rn_io_poll(io);
  if (n || io->inflight == 0) return n;
  int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
  for (;;) {
    int t = -1;
    if (deadline >= 0) {
      int64_t left = deadline - now_ms();
      t = left > 0 ? (int)(left < INT_MAX ? left : INT_MAX) : 0;
    }
    /* A backend that must retry a submission gets polled in short slices. */
    if (io->be->stalled && io->be->stalled(io) && (t < 0 || t > 1)) t = 1;
    if (t != 0) rn_assert_may_block("rn_io_wait (waits for in-flight I/O)");
    struct pollfd pfd = {.fd = io->efd, .events = POLLIN};
    int rc = poll(&pfd, 1, t);
    if (rc < 0 && errno != EINTR) return 0; /* cannot happen with a valid fd */
    n = rn_io_poll(io);
    if (n || io->inflight == 0) return n;
    if (deadline >= 0 && now_ms() >= deadline) return 0;
  }
}
