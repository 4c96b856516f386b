/*
 * io_uring.c — the io_uring backend of rn_io_t: writes (IORING_OP_WRITEV) and
 * datasyncs (IORING_OP_FSYNC + IORING_FSYNC_DATASYNC) go straight to the
 * file's descriptor; jobs still run on io.c's worker pool.
 *
 * Owns: the ring (with io.c's eventfd registered, so every posted CQE makes
 * rn_io_fd readable) and a FIFO of accepted ops waiting for a ring slot.
 *
 * Invariants (all state is owner-thread only; the kernel is the only other
 * party):
 *   - At most cap SQEs are in the kernel at once (in_ring counts prepared
 *     SQEs whose CQE was not reaped yet). cap <= the ring's SQ size and the CQ
 *     is twice that, so the CQ can never overflow.
 *   - Submission is unbounded: an op that finds no slot waits in pending,
 *     strictly FIFO, and reap() moves pending ops into freed slots. Nothing is
 *     ever dropped or failed with EAGAIN.
 *   - Every op is submitted at once (io_uring_submit per rn_io_write /
 *     rn_io_datasync, and after each reap) — no batching that could leave an
 *     SQE unsubmitted while the owner sleeps on the eventfd. If
 *     io_uring_submit itself fails transiently, stalled() reports it and
 *     rn_io_wait retries in short slices.
 *   - A short write is finished by resubmitting the remainder: the op keeps
 *     its own iovec copy, which rn__io_op_advance moves past written bytes.
 *     A write that makes no progress fails with RN_EIO instead of spinning.
 *   - No IOSQE_IO_DRAIN, no DEFER_TASKRUN/COOP_TASKRUN (completions must
 *     post CQEs, and so signal the eventfd, without the owner entering the
 *     ring), no io_uring_submit_and_wait.
 */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>

#include "io_int.h"

/* Resubmissions allowed for EINTR/EAGAIN results before reporting them. */
#define RN__URING_MAX_RETRIES 16u

typedef struct uring_state {
  struct io_uring ring;
  unsigned cap;          /* max SQEs in the kernel at once */
  unsigned in_ring;      /* SQEs prepared, CQE not reaped */
  rn__io_list_t pending; /* accepted ops waiting for a slot, FIFO */
} uring_state_t;

static rn_err_t uring_init(rn_io_t *io, const rn_io_opts_t *opts) {
  uring_state_t *st = calloc(1, sizeof *st);
  if (!st) return RN_ENOMEM;
  struct io_uring_params p = {0};
  p.flags = IORING_SETUP_CLAMP; /* depth above the kernel maximum: use the maximum */
  int rc = io_uring_queue_init_params(opts->queue_depth, &st->ring, &p);
  if (rc < 0) {
    free(st);
    return rc; /* -errno: EPERM/ENOSYS/ENOMEM make AUTO fall back */
  }
  rc = io_uring_register_eventfd(&st->ring, io->efd);
  if (rc < 0) {
    io_uring_queue_exit(&st->ring);
    free(st);
    return rc;
  }
  st->cap = opts->queue_depth < p.sq_entries ? opts->queue_depth : p.sq_entries;
  io->be_state = st;
  return 0;
}

static void uring_fini(rn_io_t *io) {
  uring_state_t *st = io->be_state;
  io_uring_queue_exit(&st->ring);
  free(st);
  io->be_state = NULL;
}

/* Put op into an SQE if a slot is free. */
static bool uring_prep(uring_state_t *st, rn__io_op_t *op) {
  if (st->in_ring >= st->cap) return false;
  struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);
  if (!sqe) return false;
  if (op->kind == RN__IO_WRITE)
    io_uring_prep_writev(sqe, op->f->fd, op->iov, (unsigned)op->iovcnt, op->off);
  else if (op->kind == RN__IO_WRITEBACK)
    io_uring_prep_sync_file_range(sqe, op->f->fd, (unsigned)op->remaining, op->off, SYNC_FILE_RANGE_WRITE);
  else
    io_uring_prep_fsync(sqe, op->f->fd, IORING_FSYNC_DATASYNC);
  io_uring_sqe_set_data(sqe, op);
  st->in_ring++;
  return true;
}

static void uring_fill(uring_state_t *st) {
  while (st->pending.head && uring_prep(st, st->pending.head)) (void)rn__io_list_pop(&st->pending);
}

/* Hand prepared SQEs to the kernel. A failure (EAGAIN/EBUSY/ENOMEM under
 * pressure) leaves them in the SQ ring; stalled() makes the owner retry. */
static void uring_kick(uring_state_t *st) {
  if (io_uring_sq_ready(&st->ring) > 0) (void)io_uring_submit(&st->ring);
}

static rn_err_t uring_submit(rn_io_t *io, rn__io_op_t *op) {
  uring_state_t *st = io->be_state;
  if (op->f->fd < 0) return RN_ENOTSUP; /* not an OS file: use the posix backend */
  if (st->pending.head || !uring_prep(st, op)) rn__io_list_push(&st->pending, op);
  uring_kick(st);
  return 0;
}

/* Decide what a CQE means for op: finished (into done) or to be resubmitted
 * (into again). */
static void uring_complete(rn__io_op_t *op, int res, rn__io_list_t *done, rn__io_list_t *again) {
  if ((res == -EINTR || res == -EAGAIN) && op->retries < RN__URING_MAX_RETRIES) {
    op->retries++;
    rn__io_list_push(again, op);
    return;
  }
  if (op->kind == RN__IO_WRITE && res >= 0 && (size_t)res < op->remaining) {
    if (res == 0) {
      op->result = RN_EIO;
      rn__io_list_push(done, op);
      return;
    }
    rn__io_op_advance(op, (size_t)res);
    op->retries = 0;
    rn__io_list_push(again, op);
    return;
  }
  op->result = res < 0 ? res : 0;
  rn__io_list_push(done, op);
}

static void uring_reap(rn_io_t *io, rn__io_list_t *done) {
  uring_state_t *st = io->be_state;
  rn__io_list_t again = {NULL, NULL};
  struct io_uring_cqe *cqe;
  unsigned head, seen = 0;
  io_uring_for_each_cqe(&st->ring, head, cqe) {
    seen++;
    st->in_ring--;
    uring_complete(io_uring_cqe_get_data(cqe), cqe->res, done, &again);
  }
  if (seen) io_uring_cq_advance(&st->ring, seen);
  /* Remainders of started writes go ahead of ops not yet started. */
  rn__io_list_concat(&again, &st->pending);
  st->pending = again;
  uring_fill(st);
  uring_kick(st);
}

static bool uring_stalled(const rn_io_t *io) {
  const uring_state_t *st = io->be_state;
  return io_uring_sq_ready(&st->ring) > 0;
}

const rn__io_backend_t rn__io_backend_uring = {
    .id = RN_IO_URING,
    .name = "uring",
    .default_threads = 1,
    .init = uring_init,
    .fini = uring_fini,
    .submit = uring_submit,
    .reap = uring_reap,
    .stalled = uring_stalled,
    .run = NULL,
};
