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

/* Replace dir/name atomically with data[0, len): write dir/name.tmp,
 * datasync, rename over dir/name, sync_dir(dir). Durable when it returns 0;
 * a crash leaves either the old or the new content (and maybe a .tmp).
 * Blocking. */
rn_err_t rn_fs_write_atomic(rn_fs_t *fs, const char *dir, const char *name, const uint8_t *data, size_t len);

/* The operating system's file system. Process-wide, never freed. */
rn_fs_t *rn_fs_posix(void);

#ifdef __cplusplus
}
#endif
#endif
