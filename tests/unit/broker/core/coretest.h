/*
 * coretest.h — a private loop and an rn_core_t on a temporary directory for
 * the tests of broker/core, plus synchronous wrappers that run the loop
 * until an operation's callback ran (never sleeping: uv_run until done).
 * Results are copied out of the callbacks (they are borrowed there).
 */
#ifndef RN_TEST_CORETEST_H
#define RN_TEST_CORETEST_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "rn_core.h"

typedef struct ct {
  char *dir;
  uv_loop_t loop;
  rn_core_t *core;
  rn_fs_t *fs;                  /* opts.fs; NULL = posix */
  rn_core_meta_store_t *meta;   /* opts.meta_store; NULL = the file store */
} ct_t;

void ct_init(ct_t *t);           /* a fresh directory and loop; no core yet */
void ct_open(ct_t *t);           /* rn_core_open; fails the test on error */
void ct_close(ct_t *t);          /* rn_core_close (asserts 0) and let the loop settle */
void ct_fini(ct_t *t);           /* close if open, remove the directory */

/* Run the loop until *done. */
void ct_run_until(ct_t *t, const bool *done);

rn_err_t ct_create(ct_t *t, const char *name, uint32_t shards);
rn_err_t ct_delete(ct_t *t, const char *name);

typedef struct ct_desc {
  rn_err_t err;
  uint32_t nshards;
  int64_t retention_ms;
  rn_core_stream_state_t state;
  rn_core_shard_desc_t shards[16];
  uint32_t parents[16][2], children[16][2];
} ct_desc_t;
void ct_describe(ct_t *t, const char *name, ct_desc_t *out);

/* One batch of n records (timestamps ts0, ts0+1, ...) appended to shard;
 * returns the batch's error and sets *base. */
rn_err_t ct_produce(ct_t *t, const char *stream, uint32_t shard, int n, int64_t ts0, uint64_t *base);

typedef struct ct_offsets {
  rn_err_t err;
  rn_err_t shard_err;
  uint64_t offset, start, end;
} ct_offsets_t;
void ct_list_offset(ct_t *t, const char *stream, uint32_t shard, rn_core_pos_kind_t kind, int64_t value, ct_offsets_t *out);

#endif
