/*
 * crashfs.h — an in-memory rn_fs_t that simulates a machine crash.
 *
 * Model (what a journaling file system like ext4 guarantees, no more):
 *   - Each file has durable bytes plus a list of pending operations (writes,
 *     truncates) issued since its last datasync. Reads see the volatile view:
 *     durable + pending applied in order. datasync makes the volatile view
 *     durable.
 *   - Directory operations (create, rename, unlink) apply to the volatile
 *     namespace at once and go to a journal; sync_dir(dir) makes every
 *     journal entry so far durable. A crash keeps a random prefix of the
 *     unsynced journal (they become durable in the order issued). The
 *     content of a file unlinked without a sync_dir is kept so a dropped
 *     unlink brings it back.
 *   - At a crash each pending operation of each surviving file is
 *     independently dropped, kept, partially kept (a write keeps a random
 *     prefix of its bytes) or garbled (a write's bytes replaced by random
 *     bytes); pending truncates are kept or dropped. Operations are resolved
 *     in issue order on top of the durable bytes.
 *
 * Trigger: crashfs_arm(fs, n) makes the n-th mutating operation from now
 * (write, truncate, datasync, create, rename, unlink, sync_dir; n >= 1) and
 * every later one fail with RN_EIO without taking effect: the machine is
 * "down". crashfs_crash() then resolves the state as above and brings the
 * file system back up with the result as its durable, fully synced state.
 *
 * Paths are plain strings; directories exist implicitly (mkdirs records
 * nothing but always succeeds). list() returns the names directly under a
 * directory prefix. Thread-safe (one mutex).
 */
#ifndef RN_TEST_CRASHFS_H
#define RN_TEST_CRASHFS_H

#include <stdbool.h>
#include <stdint.h>

#include "rn_fs.h"

typedef struct crashfs crashfs_t;

/* New empty file system; seed drives every random choice. */
crashfs_t *crashfs_new(uint64_t seed);
/* Free everything. Open files must be closed first. NULL ok. */
void crashfs_free(crashfs_t *cfs);
/* The rn_fs_t view (lives as long as cfs). */
rn_fs_t *crashfs_fs(crashfs_t *cfs);

/* Fail the n-th mutating operation from now and every one after (n >= 1);
 * 0 disarms. */
void crashfs_arm(crashfs_t *cfs, uint64_t n);
/* True once an armed crash point was reached. */
bool crashfs_is_down(const crashfs_t *cfs);
/* Mutating operations performed (successfully) so far. */
uint64_t crashfs_ops(const crashfs_t *cfs);

/* Faults that are not crashes: the machine stays up, and the failing call
 * has no effect beyond what is said here. Neither counts as an operation
 * for crashfs_arm / crashfs_ops when it fails.
 *
 * crashfs_fail_open(cfs, err): every open() from now on fails with err
 * (e.g. -EMFILE, -ENFILE: the process or system is out of descriptors)
 * without creating or truncating anything; 0 stops it.
 *
 * crashfs_set_space(cfs, bytes): the file system holds at most `bytes` of
 * file data, counted as the sum of the volatile sizes of every file object
 * still alive (an unlinked file counts until a sync_dir or crash settles
 * it, an open one until closed). A write that would need more writes the
 * prefix that fits (a short write; an operation like any other, which a
 * crash may keep, tear or drop) and then fails with RN_ENOSPC, as pwrite()
 * on a full disk does; with no room at all it fails with no effect.
 * Truncating and deleting free space. UINT64_MAX (the default) = no limit.
 * crashfs_used() is the current count. */
void crashfs_fail_open(crashfs_t *cfs, rn_err_t err);
void crashfs_set_space(crashfs_t *cfs, uint64_t bytes);
uint64_t crashfs_used(crashfs_t *cfs);

/* Resolve the crash (see the model above) and bring the fs back up, disarmed.
 * Also valid when not down (a crash "now"). Files still open keep working on
 * the new state only if reopened: handles opened before the crash return
 * RN_EIO afterwards. */
void crashfs_crash(crashfs_t *cfs);

/* Test helpers on the current (volatile) state; 0 or RN_ENOENT. */
rn_err_t crashfs_read_file(crashfs_t *cfs, const char *path, uint8_t **data, size_t *len); /* malloc'd */
rn_err_t crashfs_write_file(crashfs_t *cfs, const char *path, const uint8_t *data, size_t len); /* durable */

#endif
