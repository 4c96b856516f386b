/*
 * io_int.h — private to storage/io*.c: the rn_io_t core shared by every
 * backend, the per-operation struct and the backend table.
 *
 * Split of work:
 *   io.c        public API, backend choice, the op free list, the completion
 *               list + eventfd, the worker pool (jobs always run there), and
 *               the callback loop (rn_io_poll / rn_io_wait).
 *   io_uring.c  writes and datasyncs through an io_uring; its CQEs are reaped
 *               on the owner thread by reap().
 *   io_posix.c  writes and datasyncs pushed to the worker pool, executed by
 *               run() through the file's rn_fs_t.
 *
 * Threads: everything in rn_io_t is owner-thread state except the fields
 * marked "pool_mu" or "done_mu", which workers touch under that mutex, and
 * be/efd which are immutable after rn_io_new.
 */
#ifndef RN_IO_INT_H
#define RN_IO_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "rn_io.h"

typedef enum { RN__IO_WRITE, RN__IO_DATASYNC, RN__IO_JOB, RN__IO_WRITEBACK } rn__io_kind_t;

/* iovec entries stored inside the op; more are malloc'd per op. */
#define RN__IO_INLINE_IOV 4

typedef struct rn__io_op rn__io_op_t;

/* One submitted operation. Allocated from io's free list on the owner
 * thread, owned by the backend (or a worker) while in flight, released on
 * the owner thread just before its callback runs. */
struct rn__io_op {
  rn__io_op_t *next; /* in exactly one list at a time (pending, pool, done, free) */
  rn__io_kind_t kind;
  rn_err_t result;   /* set by whoever completes the op */
  rn_io_cb cb;
  void *arg;
  rn_io_job_fn fn;   /* RN__IO_JOB */
  rn_file_t *f;      /* RN__IO_WRITE, RN__IO_DATASYNC; not owned */
  uint64_t off;      /* WRITE: file offset of iov[0] (advances on short writes); WRITEBACK: start */
  size_t remaining;  /* WRITE: bytes still to write; WRITEBACK: length */
  struct iovec *iov; /* WRITE: first unwritten entry, inside iov_inline or iov_heap */
  int iovcnt;
  unsigned retries;  /* uring: resubmissions after EINTR/EAGAIN */
  struct iovec *iov_heap; /* owned; NULL when the copy fits iov_inline */
  struct iovec iov_inline[RN__IO_INLINE_IOV];
};

/* FIFO of ops linked through next. */
typedef struct rn__io_list {
  rn__io_op_t *head, *tail;
} rn__io_list_t;

static inline void rn__io_list_push(rn__io_list_t *l, rn__io_op_t *op) {
  op->next = NULL;
  if (l->tail)
    l->tail->next = op;
  else
    l->head = op;
  l->tail = op;
}

static inline void rn__io_list_push_front(rn__io_list_t *l, rn__io_op_t *op) {
  op->next = l->head;
  l->head = op;
  if (!l->tail) l->tail = op;
}

static inline rn__io_op_t *rn__io_list_pop(rn__io_list_t *l) {
  rn__io_op_t *op = l->head;
  if (op) {
    l->head = op->next;
    if (!l->head) l->tail = NULL;
    op->next = NULL;
  }
  return op;
}

/* Append all of src to dst; src becomes empty. */
static inline void rn__io_list_concat(rn__io_list_t *dst, rn__io_list_t *src) {
  if (!src->head) return;
  if (dst->tail)
    dst->tail->next = src->head;
  else
    dst->head = src->head;
  dst->tail = src->tail;
  src->head = src->tail = NULL;
}

/* A backend: one const table per backend file. */
typedef struct rn__io_backend {
  rn_io_backend_t id;
  const char *name;
  unsigned default_threads; /* worker pool size when opts.threads is 0 */
  /* Set up io->be_state; may use io->efd (already created). Returns 0 or
   * -errno (io_uring_queue_init's error passes through untouched). */
  rn_err_t (*init)(rn_io_t *io, const rn_io_opts_t *opts);
  /* Free io->be_state. Called with nothing in flight. */
  void (*fini)(rn_io_t *io);
  /* Accept a WRITE or DATASYNC op (owner thread). Returns 0 when the op now
   * belongs to the backend and will complete exactly once, or an error when
   * it was not accepted (the caller releases it; no callback). Never fails
   * because queues are full: excess ops wait in a FIFO. */
  rn_err_t (*submit)(rn_io_t *io, rn__io_op_t *op);
  /* Owner thread, from rn_io_poll: move finished ops (result set) to done
   * and push waiting work into the kernel. NULL when every completion comes
   * through the worker pool. */
  void (*reap)(rn_io_t *io, rn__io_list_t *done);
  /* True when work is queued that needs another reap() to make progress
   * even if no completion arrives (e.g. a failed io_uring_submit to retry).
   * rn_io_wait then sleeps in short slices. NULL = never. */
  bool (*stalled)(const rn_io_t *io);
  /* Worker thread: perform a WRITE or DATASYNC and return its result. NULL
   * when the backend never hands those to the pool. */
  rn_err_t (*run)(rn__io_op_t *op);
} rn__io_backend_t;

extern const rn__io_backend_t rn__io_backend_uring;
extern const rn__io_backend_t rn__io_backend_posix;

/* A FIFO of ops served by worker threads. */
typedef struct rn__io_lane {
  rn_io_t *io;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  rn__io_list_t queue; /* mu: FIFO of ops for workers */
  bool stop;           /* mu */
  pthread_t *threads;  /* owned */
  unsigned nthreads;   /* started */
} rn__io_lane_t;

struct rn_io {
  const rn__io_backend_t *be; /* immutable after rn_io_new */
  void *be_state;             /* owned by be; owner thread only */
  rn_fs_t *fs;                /* not owned */
  unsigned queue_depth;       /* as asked (defaulted) */
  int efd;                    /* owned eventfd; immutable after rn_io_new */

  /* owner thread */
  unsigned inflight;     /* accepted ops whose callback has not started */
  unsigned cb_depth;     /* > 0 while a callback runs */
  rn__io_op_t *free_ops; /* owned; recycled op structs */
  unsigned nfree, free_cap;

  /* completion list: workers push, the owner takes it whole */
  pthread_mutex_t done_mu;
  rn__io_list_t done; /* done_mu */

  /* worker lanes: "pool" runs posix writes/datasyncs and short jobs;
   * "bg" (one thread) runs background jobs in order, so a slow unlink or
   * seal never queues in front of a write or an fdatasync. */
  rn__io_lane_t pool;
  rn__io_lane_t bg;
};

/* Hand op to the worker pool (owner thread). Never fails. */
void rn__io_pool_push(rn_io_t *io, rn__io_op_t *op);

/* Point op->iov past n written bytes (n <= op->remaining). */
void rn__io_op_advance(rn__io_op_t *op, size_t n);

#endif
