/*
 * rn_io.h — asynchronous disk I/O for the storage layer.
 *
 * One rn_io_t per owning thread (the broker's loop thread, a benchmark, a
 * test). Operations are submitted from that thread; their callbacks run on
 * that thread, inside rn_io_poll() or rn_io_wait(). Completion is signalled
 * through a file descriptor (rn_io_fd) so an event loop (libuv: uv_poll_t)
 * can wait on it; storage/ itself never includes uv.h.
 *
 * Backends:
 *   - uring: liburing for writes and fdatasync; a small worker pool runs jobs.
 *   - posix: a worker pool runs pwritev/fdatasync/jobs through the rn_fs_t.
 * RN_IO_AUTO picks uring and falls back to posix when io_uring setup fails
 * with EPERM, ENOSYS or ENOMEM (or when the file system has no OS fds). The
 * environment variable RUNNEL_IO_BACKEND=uring|posix overrides AUTO.
 *
 * Async contract: when a submit function returns an error, its callback is
 * never called. Otherwise the callback is called exactly once, with 0 or a
 * negative rn_err_t. Operations are not ordered with respect to each other:
 * a caller that needs "write, then sync" waits for the write's callback.
 */
#ifndef RN_IO_H
#define RN_IO_H

#include <stdint.h>
#include <sys/uio.h>

#include "rn_fs.h"
#include "runnel/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rn_io rn_io_t;

typedef enum { RN_IO_AUTO = 0, RN_IO_URING = 1, RN_IO_POSIX = 2 } rn_io_backend_t;

typedef struct rn_io_opts {
  rn_io_backend_t backend; /* default RN_IO_AUTO */
  unsigned queue_depth;    /* io_uring entries; default 256 */
  unsigned threads;        /* worker threads; default 2 (posix), 1 (uring jobs) */
  rn_fs_t *fs;             /* file system for posix ops and jobs; default posix */
} rn_io_opts_t;

/* Completion callback; runs on the owner thread. */
typedef void (*rn_io_cb)(void *arg, rn_err_t result);
/* A job body; runs on a worker thread and must touch only what arg owns. */
typedef rn_err_t (*rn_io_job_fn)(void *arg);

/* Fill opts with defaults. */
void rn_io_opts_default(rn_io_opts_t *opts);

/* Create an I/O context. opts NULL = defaults. Forcing RN_IO_URING when
 * io_uring is unavailable fails with its -errno; forcing it with a file system
 * that has no OS fds fails with RN_ENOTSUP. *out is owned by the caller. */
rn_err_t rn_io_new(const rn_io_opts_t *opts, rn_io_t **out);

/* Wait for every in-flight operation, run their callbacks, then free. NULL ok.
 * Must be called on the owner thread, not from inside a callback. */
void rn_io_destroy(rn_io_t *io);

rn_io_backend_t rn_io_backend(const rn_io_t *io);
const char *rn_io_backend_name(rn_io_backend_t backend);
/* The file system jobs and posix operations use. */
rn_fs_t *rn_io_fs(const rn_io_t *io);

/* Readable when completions are waiting. Owned by io. */
int rn_io_fd(const rn_io_t *io);

/* Write iov[0..iovcnt) at off in full. The iov array is copied; the buffers
 * it points to must stay valid until the callback runs. */
rn_err_t rn_io_write(rn_io_t *io, rn_file_t *f, const struct iovec *iov, int iovcnt, uint64_t off,
                     rn_io_cb cb, void *arg);

/* fdatasync(f). Covers writes whose callbacks ran before this submission. */
rn_err_t rn_io_datasync(rn_io_t *io, rn_file_t *f, rn_io_cb cb, void *arg);

/* Start writing back the dirty pages of f in [off, off + len) without
 * waiting for them (sync_file_range SYNC_FILE_RANGE_WRITE): a hint that
 * keeps a later fdatasync short and the device busy evenly; it makes
 * nothing durable and its result may be ignored. A file without an OS
 * descriptor (a test file system) completes at once with 0. */
rn_err_t rn_io_writeback(rn_io_t *io, rn_file_t *f, uint64_t off, uint64_t len, rn_io_cb cb, void *arg);

/* Run fn(arg) on a worker thread (unlink, directory sync, index files...);
 * cb(arg, fn's result) then runs on the owner thread. */
rn_err_t rn_io_job(rn_io_t *io, rn_io_job_fn fn, rn_io_cb cb, void *arg);

/* Like rn_io_job, but on the background lane: one dedicated thread that
 * runs such jobs strictly in submission order and never delays writes,
 * fdatasyncs or rn_io_job jobs (seals, retention deletes). */
rn_err_t rn_io_job_bg(rn_io_t *io, rn_io_job_fn fn, rn_io_cb cb, void *arg);

/* Run the callbacks of completed operations; never blocks. Returns how many
 * ran. Callbacks may submit new operations. */
int rn_io_poll(rn_io_t *io);

/* Block until at least one operation completes or timeout_ms passes (-1:
 * forever; returns at once when nothing is in flight), then rn_io_poll.
 * Returns the number of callbacks run (0 on timeout/nothing in flight). */
int rn_io_wait(rn_io_t *io, int timeout_ms);

/* Operations submitted and not yet reported through a callback. */
unsigned rn_io_inflight(const rn_io_t *io);

#ifdef __cplusplus
}
#endif
#endif
