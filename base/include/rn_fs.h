/*
 * rn_fs.h — the narrow file interface every storage file operation goes
 * through (SQLite's VFS idea). Production uses rn_fs_posix(); tests plug in a
 * crash simulator (tests/support/crashfs.h) that can drop, keep, tear or
 * garble writes that were never made durable.
 *
 * Durability contract the storage layer relies on (and the simulator models):
 *   - file bytes are durable only after datasync() on that file;
 *   - create, rename and unlink are durable only after sync_dir() on the
 *     directory holding them; they become durable in the order issued.
 *
 * Every operation may be called from any thread; implementations are
 * thread-safe. All return 0 or a negative rn_err_t (-errno for system errors).
 * Every operation may block (rn_fs_posix() is plain system calls): never
 * call one on an event-loop thread (see the blocking check below).
 *
 * Lives in base/ (the snapshot helpers below need it and every layer writes
 * files); a header of its own next to rn_base.h, which includes it, because
 * it is a contract of its own (implemented by fs_posix.c and the crash
 * simulator). rn_err_t comes from proto's runnel/error.h (constants only:
 * base links nothing of proto).
 */
#ifndef RN_FS_H
#define RN_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "runnel/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rn_fs rn_fs_t;

/* An open file. Implementations embed this as the first member of their own
 * struct. fd is the OS descriptor when the file is backed by one (the io_uring
 * backend requires it), -1 otherwise. */
typedef struct rn_file {
  rn_fs_t *fs;
  int fd;
} rn_file_t;

enum {
  RN_FS_RDONLY = 1 << 0, /* open for reading only */
  RN_FS_CREATE = 1 << 1, /* create when missing */
  RN_FS_EXCL = 1 << 2,   /* with CREATE: fail with RN_EEXIST when present */
  RN_FS_TRUNC = 1 << 3,  /* truncate to 0 on open */
};

/* Called once per directory entry (not "." or ".."); return non-zero to stop. */
typedef int (*rn_fs_list_cb)(void *arg, const char *name);

struct rn_fs {
  const char *name;
  /* Open path with RN_FS_* flags. On success *out is owned by the caller and
   * released with close(). Missing file without CREATE: RN_ENOENT. */
  rn_err_t (*open)(rn_fs_t *fs, const char *path, int flags, rn_file_t **out);
  /* Close and free f (NULL accepted). Never fails observably. */
  void (*close)(rn_file_t *f);
  /* Write all iov bytes at off (short writes are retried inside). */
  rn_err_t (*pwritev)(rn_file_t *f, const struct iovec *iov, int iovcnt, uint64_t off);
  /* Read up to len bytes at off; *nread < len only at end of file. */
  rn_err_t (*pread)(rn_file_t *f, void *buf, size_t len, uint64_t off, size_t *nread);
  /* Make the file's data (and size) durable. */
  rn_err_t (*datasync)(rn_file_t *f);
  /* Set the file size. Durable after datasync. */
  rn_err_t (*truncate)(rn_file_t *f, uint64_t size);
  /* Current size. */
  rn_err_t (*size)(rn_file_t *f, uint64_t *size);
  /* Atomically replace to with from. Durable after sync_dir. */
  rn_err_t (*rename)(rn_fs_t *fs, const char *from, const char *to);
  /* Remove a file. Durable after sync_dir. Missing file: RN_ENOENT. */
  rn_err_t (*unlink)(rn_fs_t *fs, const char *path);
  /* Create a directory and any missing parents; existing is not an error. */
  rn_err_t (*mkdirs)(rn_fs_t *fs, const char *path);
  /* Make creates/renames/unlinks in directory path durable. */
  rn_err_t (*sync_dir)(rn_fs_t *fs, const char *path);
  /* Enumerate the names in directory path (order unspecified). */
  rn_err_t (*list)(rn_fs_t *fs, const char *path, rn_fs_list_cb cb, void *arg);
};

/* ---- whole files and atomic snapshots (base/snapshot.c) ----------------------
 * Built on any rn_fs_t, so the crash simulator sees them too. All blocking:
 * call them from a worker thread (or at startup, before the loop runs). */

/* Write path (created or truncated) with data[0, len) and datasync it.
 * Durable content when it returns 0, but the name itself is durable only
 * after sync_dir on its directory. data may be NULL when len is 0. */
rn_err_t rn_fs_write_file(rn_fs_t *fs, const char *path, const void *data, size_t len);

/* Replace dir/name atomically with data[0, len): write dir/name.tmp,
 * datasync it, rename it over dir/name, sync_dir(dir). Durable when it
 * returns 0; a crash at any step leaves either the old or the new content,
 * never a mix (and maybe a stale dir/name.tmp, which the next write
 * replaces). On failure the error of the first step that failed is
 * returned and the .tmp is unlinked when it can be (best effort: the old
 * snapshot stays in place either way). fs, dir and name are borrowed.
 * RN_EINVAL when dir/name does not fit in PATH_MAX. */
rn_err_t rn_snapshot_write(rn_fs_t *fs, const char *dir, const char *name, const void *data, size_t len);

/* Read the whole of dir/name. On success *data is a malloc'd buffer owned by
 * the caller (free()), holding *len bytes followed by one '\0' that *len does
 * not count (so a text snapshot can be parsed as a C string). RN_ENOENT when
 * the file does not exist (*data = NULL, *len = 0); RN_ENOMEM; an I/O error
 * as -errno. A stale dir/name.tmp is ignored. */
rn_err_t rn_snapshot_read(rn_fs_t *fs, const char *dir, const char *name, void **data, size_t *len);

/* The newest snapshot of some state, handed from the thread that changes the
 * state (an event loop) to the worker threads that write it, so the loop
 * never waits for a write (Redis's bio thread does the same for fsync).
 *
 *   loop thread:   rn_snapshot_slot_put(slot, buf, len)   takes buf; a pointer
 *                  swap under a mutex no writer holds across I/O
 *   worker thread: rn_snapshot_slot_flush(slot)           writes the newest
 *                  buffer put so far, if any (blocking)
 *
 * Writers are serialised among themselves (a second mutex only they take),
 * so what is on disk only moves forward: when flush returns 0, every state
 * put before the flush started is durable (this one or a newer one), so a
 * job queued after put() may report its change durable when flush returns
 * 0. When a write fails the buffer goes back into the slot unless a newer
 * one arrived meanwhile, so the next flush retries it. */
typedef struct rn_snapshot_slot rn_snapshot_slot_t;

/* New slot writing dir/name through fs. fs is borrowed and must outlive the
 * slot; dir and name are copied. NULL when out of memory. */
rn_snapshot_slot_t *rn_snapshot_slot_new(rn_fs_t *fs, const char *dir, const char *name);
/* Free the slot and any buffer not written yet. No flush may be running.
 * NULL accepted. */
void rn_snapshot_slot_destroy(rn_snapshot_slot_t *slot);
/* Hand over the newest snapshot: takes ownership of buf (malloc'd, freed by
 * the slot with free()), replacing (and freeing) any buffer not yet taken
 * by a writer. Any thread; never waits for I/O. */
void rn_snapshot_slot_put(rn_snapshot_slot_t *slot, void *buf, size_t len);
/* Write the newest buffer put so far with rn_snapshot_write, if there is
 * one not yet written; 0 when there was none. Blocking: worker threads (or
 * startup) only. */
rn_err_t rn_snapshot_slot_flush(rn_snapshot_slot_t *slot);

/* ---- the blocking check (base/blocking.c) -------------------------------------
 * "No blocking syscall on the loop thread", made checkable: every blocking
 * file operation (rn_fs_posix(), rn_io's synchronous entry points, storage's
 * synchronous reads) calls rn_assert_may_block() first. Built with
 * -DRN_BLOCKING_CHECK (CMake option RN_BLOCKING_CHECK, for test builds) it
 * aborts when the calling thread was marked as an event-loop thread,
 * printing "runnel: blocking operation <what> on the loop thread" to stderr;
 * otherwise both functions do nothing. The mark is thread-local. */

/* The calling thread is an event-loop thread from now on (until
 * rn_thread_unmark_loop). */
void rn_thread_mark_loop(void);
/* The calling thread is no longer an event-loop thread: its loop has
 * stopped (uv_run returned), so blocking is allowed again (shutdown's
 * syncs and clean-shutdown markers). */
void rn_thread_unmark_loop(void);
/* Abort if the calling thread is a marked loop thread (RN_BLOCKING_CHECK
 * builds only). what names the operation (static string, e.g.
 * "fdatasync"). */
void rn_assert_may_block(const char *what);

/* The operating system's file system. Process-wide, never freed. */
rn_fs_t *rn_fs_posix(void);

#ifdef __cplusplus
}
#endif
#endif
