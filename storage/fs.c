/*
 * fs.c — helpers built on any rn_fs_t (so the crash simulator sees them too):
 * writing a whole file durably, and replacing one atomically. Shared by the
 * log's state files and the broker's metadata files.
 */
#include <stdio.h>
#include <stdint.h>

#include "log_int.h"

rn_err_t rn__write_file(rn_fs_t *fs, const char *path, const uint8_t *data, size_t len) {
  rn_file_t *f;
  rn_err_t err = fs->open(fs, path, RN_FS_CREATE | RN_FS_TRUNC, &f);
  if (err) return err;
  struct iovec iov = {.iov_base = (void *)(uintptr_t)data, .iov_len = len};
  err = len ? fs->pwritev(f, &iov, 1, 0) : 0;
  if (!err) err = fs->datasync(f);
  fs->close(f);
  return err;
}

rn_err_t rn_fs_write_atomic(rn_fs_t *fs, const char *dir, const char *name, const uint8_t *data,
                            size_t len) {
  char tmp[4096], dst[4096];
  snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
  snprintf(dst, sizeof(dst), "%s/%s", dir, name);
  rn_err_t err = rn__write_file(fs, tmp, data, len);
  if (!err) err = fs->rename(fs, tmp, dst);
  if (!err) err = fs->sync_dir(fs, dir);
  return err;
}

