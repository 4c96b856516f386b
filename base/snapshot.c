/*
 * snapshot.c — whole files and atomic snapshot files on any rn_fs_t, and the
 * slot that hands the newest snapshot from a loop thread to the writers.
 *
 * Owns: nothing beyond each call (rn_snapshot_write/read) and, for a slot,
 * its copies of dir and name plus the one buffer not yet taken by a writer.
 *
 * Invariants: a snapshot is only ever replaced by rename() of a fully
 * written, datasync'ed .tmp, so dir/name always holds one complete version
 * (old or new) through any crash. In a slot, `mu` guards `pending` and is
 * held only for pointer swaps; `write_mu` serialises writers and is the only
 * lock held across I/O, and only writer threads ever take it — so a loop
 * thread calling put() never waits for a write.
 */
#include "rn_fs.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rn_err_t rn_fs_write_file(rn_fs_t *fs, const char *path, const void *data, size_t len) {
  if (!fs || !path || (len > 0 && !data)) return RN_EINVAL;
  rn_file_t *f;
  rn_err_t err = fs->open(fs, path, RN_FS_CREATE | RN_FS_TRUNC, &f);
  if (err) return err;
  struct iovec iov = {.iov_base = (void *)(uintptr_t)data, .iov_len = len};
  err = len ? fs->pwritev(f, &iov, 1, 0) : 0;
  if (!err) err = fs->datasync(f);
  fs->close(f);
  return err;
}

/* dir/name<suffix> into out[PATH_MAX]; RN_EINVAL when it does not fit. */
static rn_err_t join(char *out, const char *dir, const char *name, const char *suffix) {
  int n = snprintf(out, PATH_MAX, "%s/%s%s", dir, name, suffix);
  return n < 0 || n >= PATH_MAX ? RN_EINVAL : 0;
}

rn_err_t rn_snapshot_write(rn_fs_t *fs, const char *dir, const char *name, const void *data, size_t len) {
  if (!fs || !dir || !name || !*name) return RN_EINVAL;
  char tmp[PATH_MAX], dst[PATH_MAX];
  rn_err_t err = join(tmp, dir, name, ".tmp");
  if (!err) err = join(dst, dir, name, "");
  if (err) return err;
  err = rn_fs_write_file(fs, tmp, data, len);
  if (!err) {
    err = fs->rename(fs, tmp, dst);
    if (!err) return fs->sync_dir(fs, dir); /* renamed: no .tmp left to remove */
  }
  (void)fs->unlink(fs, tmp); /* best effort: dst still holds the old snapshot */
  return err;
}

rn_err_t rn_snapshot_read(rn_fs_t *fs, const char *dir, const char *name, void **data, size_t *len) {
  if (!fs || !dir || !name || !data || !len) return RN_EINVAL;
  *data = NULL;
  *len = 0;
  char path[PATH_MAX];
  rn_err_t err = join(path, dir, name, "");
  if (err) return err;
  rn_file_t *f;
  err = fs->open(fs, path, RN_FS_RDONLY, &f);
  if (err) return err;
  uint64_t size = 0;
  err = fs->size(f, &size);
  if (!err && size >= SIZE_MAX) err = RN_ENOMEM;
  char *buf = NULL;
  size_t got = 0;
  if (!err) {
    buf = malloc((size_t)size + 1);
    if (!buf) err = RN_ENOMEM;
  }
  if (!err) err = fs->pread(f, buf, (size_t)size, 0, &got);
  fs->close(f);
  if (err) {
    free(buf);
    return err;
  }
  buf[got] = '\0'; /* got < size only if the file shrank meanwhile */
  *data = buf;
  *len = got;
  return 0;
}

/* ---- the hand-off slot ------------------------------------------------------------- */

struct rn_snapshot_slot {
  rn_fs_t *fs;     /* borrowed */
  char *dir, *name;
  pthread_mutex_t mu;       /* guards pending, pending_len; never held across I/O */
  pthread_mutex_t write_mu; /* serialises flushes; taken by writer threads only */
  void *pending;            /* newest snapshot not taken by a writer, or NULL */
  size_t pending_len;
};

rn_snapshot_slot_t *rn_snapshot_slot_new(rn_fs_t *fs, const char *dir, const char *name) {
  if (!fs || !dir || !name) return NULL;
  rn_snapshot_slot_t *slot = calloc(1, sizeof(*slot));
  if (!slot) return NULL;
  slot->fs = fs;
  slot->dir = strdup(dir);
  slot->name = strdup(name);
  if (!slot->dir || !slot->name) {
    free(slot->dir);
    free(slot->name);
    free(slot);
    return NULL;
  }
  pthread_mutex_init(&slot->mu, NULL);
  pthread_mutex_init(&slot->write_mu, NULL);
  return slot;
}

void rn_snapshot_slot_destroy(rn_snapshot_slot_t *slot) {
  if (!slot) return;
  free(slot->pending);
  free(slot->dir);
  free(slot->name);
  pthread_mutex_destroy(&slot->mu);
  pthread_mutex_destroy(&slot->write_mu);
  free(slot);
}

void rn_snapshot_slot_put(rn_snapshot_slot_t *slot, void *buf, size_t len) {
  pthread_mutex_lock(&slot->mu);
  void *old = slot->pending;
  slot->pending = buf;
  slot->pending_len = len;
  pthread_mutex_unlock(&slot->mu);
  free(old);
}

rn_err_t rn_snapshot_slot_flush(rn_snapshot_slot_t *slot) {
  pthread_mutex_lock(&slot->write_mu);
  pthread_mutex_lock(&slot->mu);
  void *buf = slot->pending;
  size_t len = slot->pending_len;
  slot->pending = NULL;
  pthread_mutex_unlock(&slot->mu);
  rn_err_t err = 0;
  if (buf) {
    err = rn_snapshot_write(slot->fs, slot->dir, slot->name, buf, len);
    if (err) { /* give it back for the next flush, unless a newer one came */
      pthread_mutex_lock(&slot->mu);
      if (!slot->pending) {
        slot->pending = buf;
        slot->pending_len = len;
        buf = NULL;
      }
      pthread_mutex_unlock(&slot->mu);
    }
    free(buf);
  }
  pthread_mutex_unlock(&slot->write_mu);
  return err;
}
