/*
 * dirlock.h — one owner per data directory. runneld takes an exclusive
 * flock(2) on <data_dir>/LOCK before it reads or writes anything else under
 * data_dir, and holds it until the process exits (the kernel releases it
 * then, also after kill -9, so a stale file never blocks a restart). The file
 * holds the owner's pid in decimal, for the message a second broker prints.
 *
 * Blocking (open, flock with LOCK_NB, write): call at startup, before the
 * loop runs. Not thread-safe; one lock per process.
 */
#ifndef RN_BROKER_DIRLOCK_H
#define RN_BROKER_DIRLOCK_H

#include <stddef.h>

#include "runnel/error.h"

typedef struct rn_dirlock rn_dirlock_t;

/* Create data_dir (and parents) when missing, then lock data_dir/LOCK.
 * On success *out owns the lock (rn_dirlock_release). Returns 0;
 * RN_EBUSY when another process holds it — why says
 * "data directory D is in use by pid N" (pid as written by the owner, or
 * "another process" when the file holds none); or a -errno of mkdir/open/
 * flock/write with why naming the path. */
rn_err_t rn_dirlock_acquire(const char *data_dir, rn_dirlock_t **out, char *why, size_t whylen);

/* Release and free. The LOCK file stays (removing it would race with a new
 * owner that opened it). NULL ok. */
void rn_dirlock_release(rn_dirlock_t *lock);

#endif
