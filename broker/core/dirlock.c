/*
 * dirlock.c — the data directory's owner lock (rn_core.h, "the data directory lock").
 *
 * Why flock and not "create LOCK with O_EXCL": an O_EXCL file outlives a
 * kill -9 and then blocks every restart until an operator deletes it; a
 * flock dies with its process, so the only way to be refused is that a live
 * process holds the directory. The pid in the file is informational (it
 * names the owner in the refusal); the lock itself is the kernel's.
 *
 * The lock goes on its own file, not on the directory: the file also tells
 * an operator which process owns it. It is opened O_CLOEXEC so a child
 * process (none today) cannot inherit ownership.
 */
#include "rn_core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rn_fs.h"

struct rn_dirlock {
  int fd;
};

/* The pid written in an existing LOCK file, or 0. */
static long read_owner(int fd) {
  char buf[32];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char *end;
  long pid = strtol(buf, &end, 10);
  return pid > 0 && (*end == '\n' || *end == '\0') ? pid : 0;
}

rn_err_t rn_dirlock_acquire(const char *data_dir, rn_dirlock_t **out, char *why, size_t whylen) {
  *out = NULL;
  rn_err_t rc = rn_fs_posix()->mkdirs(rn_fs_posix(), data_dir);
  if (rc != 0) {
    snprintf(why, whylen, "cannot create data directory %s: %s", data_dir, rn_strerror(rc));
    return rc;
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/LOCK", data_dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = -errno;
    snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
    return rc;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    if (e == EWOULDBLOCK) {
      long pid = read_owner(fd);
      if (pid > 0)
        snprintf(why, whylen, "data directory %s is in use by pid %ld (%s is locked)", data_dir, pid, path);
      else
        snprintf(why, whylen, "data directory %s is in use by another process (%s is locked)", data_dir, path);
      close(fd);
      return RN_EBUSY;
    }
    close(fd);
    snprintf(why, whylen, "cannot lock %s: %s", path, strerror(e));
    return -e;
  }
  char text[32];
  int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
    rc = errno != 0 ? -errno : RN_EIO;
    snprintf(why, whylen, "cannot write the owner pid to %s: %s", path, rn_strerror(rc));
    close(fd);
    return rc;
  }
  rn_dirlock_t *lock = malloc(sizeof *lock);
  if (lock == NULL) {
    close(fd);
    return RN_ENOMEM;
  }
  lock->fd = fd;
  *out = lock;
  return 0;
}

void rn_dirlock_release(rn_dirlock_t *lock) {
  if (lock == NULL) return;
  close(lock->fd); /* releases the flock */
  free(lock);
}
