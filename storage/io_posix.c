/*
 * io_posix.c — the posix backend of rn_io_t: writes and datasyncs run on the
 * worker pool (io.c) through the file's own rn_fs_t, so any file system
 * works — the OS one, the crash simulator, an in-memory test fs.
 *
 * Owns nothing beyond its backend table: the pool's FIFO is the only queue
 * and it is unbounded, so submit never fails. Completions reach the owner
 * through io.c's completion list, hence no reap(). run() is called on a
 * worker thread and touches only the op and its file; rn_fs_t
 * implementations are thread-safe by contract (rn_fs.h). The op's iovec
 * copy stays untouched because fs->pwritev retries short writes itself.
 */
#include <errno.h>
#include <fcntl.h>

#include "io_int.h"

static rn_err_t posix_init(rn_io_t *io, const rn_io_opts_t *opts) {
  (void)opts;
  io->be_state = NULL;
  return 0;
}

static void posix_fini(rn_io_t *io) { (void)io; }

static rn_err_t posix_submit(rn_io_t *io, rn__io_op_t *op) {
  rn__io_pool_push(io, op);
  return 0;
}

/* Worker thread. */
static rn_err_t posix_run(rn__io_op_t *op) {
  rn_file_t *f = op->f;
  if (op->kind == RN__IO_WRITE) return f->fs->pwritev(f, op->iov, op->iovcnt, op->off);
  if (op->kind == RN__IO_WRITEBACK) {
    /* A hint outside rn_fs (which has no such call): only for OS files. */
    if (f->fd >= 0 && sync_file_range(f->fd, (off_t)op->off, (off_t)op->remaining, SYNC_FILE_RANGE_WRITE) != 0)
      return -errno;
    return 0;
  }
  return f->fs->datasync(f);
}

const rn__io_backend_t rn__io_backend_posix = {
    .id = RN_IO_POSIX,
    .name = "posix",
    .default_threads = 2,
    .init = posix_init,
    .fini = posix_fini,
    .submit = posix_submit,
    .reap = NULL,
    .stalled = NULL,
    .run = posix_run,
};
