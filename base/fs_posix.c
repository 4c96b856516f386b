/*
 * fs_posix.c — rn_fs_posix(): the rn_fs_t of the operating system, plain
 * POSIX calls and nothing else.
 *
 * Owns: one static rn_fs_t (never freed) and the rn_posix_file_t structs it
 * hands out from open(), each owning one O_CLOEXEC descriptor until close().
 *
 * Invariants: every function is stateless apart from the descriptor it is
 * given, so all of them are safe to call from any thread at once. Errors are
 * returned as -errno, never through errno. Calls interrupted by a signal
 * (EINTR) are retried, except close() which on Linux must never be retried.
 * pwritev() only returns 0 once every byte reached the kernel; pread() only
 * returns fewer bytes than asked at end of file. A file's rn_file_t is the
 * first member of its struct so the rn_file_t pointer is the struct pointer.
 * Every operation is a blocking system call and starts with
 * rn_assert_may_block(<its name>) (a no-op unless built with the blocking
 * check, see rn_fs.h).
 */
#include "rn_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

typedef struct rn_posix_file {
  rn_file_t base; /* first member: (rn_file_t *) is (rn_posix_file_t *) */
} rn_posix_file_t;

static rn_err_t posix_open(rn_fs_t *fs, const char *path, int flags, rn_file_t **out) {
  rn_assert_may_block("open");
  if (!path || !out) return RN_EINVAL;
  *out = NULL;
  int oflags = O_CLOEXEC | ((flags & RN_FS_RDONLY) ? O_RDONLY : O_RDWR);
  if (flags & RN_FS_CREATE) oflags |= O_CREAT;
  if ((flags & RN_FS_CREATE) && (flags & RN_FS_EXCL)) oflags |= O_EXCL;
  if (flags & RN_FS_TRUNC) oflags |= O_TRUNC;

  rn_posix_file_t *pf = malloc(sizeof *pf);
  if (!pf) return RN_ENOMEM;
  int fd;
  do {
    fd = open(path, oflags, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    rn_err_t err = -errno;
    free(pf);
    return err;
  }
  pf->base.fs = fs;
  pf->base.fd = fd;
  *out = &pf->base;
  return 0;
}

static void posix_close(rn_file_t *f) {
  rn_assert_may_block("close");
  if (!f) return;
  /* Linux releases the descriptor even when close() reports EINTR/EIO;
   * retrying could close a descriptor another thread just got. Write errors
   * are reported by datasync(), which callers must use for durability. */
  if (f->fd >= 0) (void)close(f->fd);
  free((rn_posix_file_t *)f);
}

/* Write every byte of iov at off. iov is const, so progress is tracked as
 * (index, bytes already written of iov[index]) instead of editing a copy: a
 * partly written entry is finished with pwrite(), whole entries go through
 * pwritev() in batches of at most IOV_MAX. */
static rn_err_t posix_pwritev(rn_file_t *f, const struct iovec *iov, int iovcnt, uint64_t off) {
  rn_assert_may_block("pwritev");
  if (!f || iovcnt < 0 || (iovcnt > 0 && !iov)) return RN_EINVAL;
  int i = 0;
  size_t done_in_i = 0;
  while (i < iovcnt) {
    if (done_in_i == iov[i].iov_len) { /* also skips zero-length entries */
      i++;
      done_in_i = 0;
      continue;
    }
    if (off > (uint64_t)INT64_MAX) return RN_EINVAL;
    ssize_t n;
    if (done_in_i > 0) {
      n = pwrite(f->fd, (const char *)iov[i].iov_base + done_in_i, iov[i].iov_len - done_in_i,
                 (off_t)off);
    } else {
      int cnt = iovcnt - i < IOV_MAX ? iovcnt - i : IOV_MAX;
      n = pwritev(f->fd, iov + i, cnt, (off_t)off);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return RN_EIO; /* no progress on a non-empty write: never loop */
    off += (uint64_t)n;
    size_t left = (size_t)n;
    while (left > 0) {
      size_t room = iov[i].iov_len - done_in_i;
      if (left < room) {
        done_in_i += left;
        left = 0;
      } else {
        left -= room;
        i++;
        done_in_i = 0;
      }
    }
  }
  return 0;
}

static rn_err_t posix_pread(rn_file_t *f, void *buf, size_t len, uint64_t off, size_t *nread) {
  rn_assert_may_block("pread");
  if (!f || (len > 0 && !buf)) return RN_EINVAL;
  size_t got = 0;
  while (got < len) {
    if (off + got > (uint64_t)INT64_MAX) return RN_EINVAL;
    ssize_t n = pread(f->fd, (char *)buf + got, len - got, (off_t)(off + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break; /* end of file */
    got += (size_t)n;
  }
  if (nread) *nread = got;
  return 0;
}

static rn_err_t posix_datasync(rn_file_t *f) {
  rn_assert_may_block("fdatasync");
  if (!f) return RN_EINVAL;
  /* EINTR means the call did not run to completion, not that writeback
   * failed, so retrying is safe. Any other error is returned as is: retrying
   * after a real writeback error could report success for lost data. */
  int rc;
  do {
    rc = fdatasync(f->fd);
  } while (rc < 0 && errno == EINTR);
  return rc < 0 ? -errno : 0;
}

static rn_err_t posix_truncate(rn_file_t *f, uint64_t size) {
  rn_assert_may_block("ftruncate");
  if (!f || size > (uint64_t)INT64_MAX) return RN_EINVAL;
  int rc;
  do {
    rc = ftruncate(f->fd, (off_t)size);
  } while (rc < 0 && errno == EINTR);
  return rc < 0 ? -errno : 0;
}

static rn_err_t posix_size(rn_file_t *f, uint64_t *size) {
  rn_assert_may_block("fstat");
  if (!f || !size) return RN_EINVAL;
  struct stat st;
  if (fstat(f->fd, &st) < 0) return -errno;
  *size = (uint64_t)st.st_size;
  return 0;
}

static rn_err_t posix_rename(rn_fs_t *fs, const char *from, const char *to) {
  rn_assert_may_block("rename");
  (void)fs;
  if (!from || !to) return RN_EINVAL;
  return rename(from, to) < 0 ? -errno : 0;
}

static rn_err_t posix_unlink(rn_fs_t *fs, const char *path) {
  rn_assert_may_block("unlink");
  (void)fs;
  if (!path) return RN_EINVAL;
  return unlink(path) < 0 ? -errno : 0;
}

/* mkdir one component; an existing directory is fine, an existing
 * non-directory is -ENOTDIR. */
static rn_err_t mkdir_one(const char *path) {
  if (mkdir(path, 0755) == 0) return 0;
  rn_err_t err = -errno;
  if (err != -EEXIST) return err;
  struct stat st;
  if (stat(path, &st) < 0) return -errno;
  return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static rn_err_t posix_mkdirs(rn_fs_t *fs, const char *path) {
  rn_assert_may_block("mkdir");
  (void)fs;
  if (!path || !*path) return RN_EINVAL;
  char *p = strdup(path);
  if (!p) return RN_ENOMEM;
  rn_err_t err = 0;
  /* Create each prefix ending before a '/', then the whole path. */
  for (char *s = p + 1; *s && !err; s++) {
    if (*s != '/' || s[-1] == '/') continue;
    *s = '\0';
    err = mkdir_one(p);
    *s = '/';
  }
  if (!err) err = mkdir_one(p);
  free(p);
  return err;
}

static rn_err_t posix_sync_dir(rn_fs_t *fs, const char *path) {
  rn_assert_may_block("fsync (directory)");
  (void)fs;
  if (!path) return RN_EINVAL;
  int fd;
  do {
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return -errno;
  int rc;
  do {
    rc = fsync(fd);
  } while (rc < 0 && errno == EINTR);
  rn_err_t err = rc < 0 ? -errno : 0;
  (void)close(fd);
  return err;
}

static rn_err_t posix_list(rn_fs_t *fs, const char *path, rn_fs_list_cb cb, void *arg) {
  rn_assert_may_block("readdir");
  (void)fs;
  if (!path || !cb) return RN_EINVAL;
  DIR *d = opendir(path);
  if (!d) return -errno;
  rn_err_t err = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      if (errno) err = -errno;
      break;
    }
    const char *n = de->d_name;
    if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'))) continue;
    if (cb(arg, n)) break;
  }
  (void)closedir(d);
  return err;
}

static rn_fs_t posix_fs = {
    .name = "posix",
    .open = posix_open,
    .close = posix_close,
    .pwritev = posix_pwritev,
    .pread = posix_pread,
    .datasync = posix_datasync,
    .truncate = posix_truncate,
    .size = posix_size,
    .rename = posix_rename,
    .unlink = posix_unlink,
    .mkdirs = posix_mkdirs,
    .sync_dir = posix_sync_dir,
    .list = posix_list,
};

rn_fs_t *rn_fs_posix(void) { return &posix_fs; }
