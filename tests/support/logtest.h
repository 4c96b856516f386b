/*
 * logtest.h — helpers for tests of the storage log: deterministic batches
 * whose record values encode their position, ack bookkeeping, and waiting on
 * an rn_io_t without sleeps.
 */
#ifndef RN_TEST_LOGTEST_H
#define RN_TEST_LOGTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_io.h"
#include "rn_log.h"
#include "runnel/batch.h"

typedef struct lt_ack {
  int done;
  rn_err_t err;
  uint64_t base;
} lt_ack_t;

/* rn_log_append_cb that fills an lt_ack_t. */
void lt_ack_cb(void *arg, rn_err_t err, uint64_t base);

/* Build a batch of n records: record i has key "k<tag>", value
 * "<tag>:<i>:" padded with a deterministic pattern to value_len bytes (at
 * least the prefix), timestamp ts + i. Returns a malloc'd copy; *len set. */
uint8_t *lt_batch(uint64_t tag, int n, size_t value_len, int64_t ts, rn_codec_t codec, size_t *len);

/* Run io completions until a->done (no sleeping: blocks in rn_io_wait). */
void lt_wait(rn_io_t *io, lt_ack_t *a);
/* Run io completions until nothing is in flight. */
void lt_drain(rn_io_t *io);

/* Read every record in [from, rn_log_end) and call fn for each; returns the
 * first error or 0. Checks offsets are dense and increasing from `from`. */
typedef void (*lt_record_fn)(void *arg, const rn_record_t *rec);
rn_err_t lt_read_all(rn_log_t *log, uint64_t from, lt_record_fn fn, void *arg, uint64_t *count);

/* Create an io from the environment (RUNNEL_IO_BACKEND) on the given fs
 * (NULL = posix); asserts success. */
rn_io_t *lt_io(rn_fs_t *fs);

/* rn_log_open that asserts success (printing the recovery message
 * otherwise). */
rn_log_t *lt_open(rn_io_t *io, const char *dir, const rn_log_opts_t *opts);

/* The appends a test made, in submission order, accepted ones only: each
 * batch's tag, record count and completion. */
#define LT_SENT_MAX 512
typedef struct lt_sent {
  uint64_t tag[LT_SENT_MAX];
  int nrec[LT_SENT_MAX];
  lt_ack_t ack[LT_SENT_MAX];
  size_t n;
} lt_sent_t;

/* Append lt_batch(tag, n, vlen, ts 1000 + tag, no codec) to log, completing
 * into s->ack; remembered in s only when accepted. Returns rn_log_append's
 * result. */
rn_err_t lt_submit(lt_sent_t *s, rn_log_t *log, uint64_t tag, int n, size_t vlen);
/* Asserts the log holds exactly the records of the appends in s that
 * completed with err 0 (every one of them completed), in order. */
void lt_expect_exactly_acked(const lt_sent_t *s, rn_log_t *log);
/* Asserts the log holds, record by record, a prefix of the appends in s
 * (after a crash); returns how many appends the prefix spans. */
size_t lt_expect_prefix(const lt_sent_t *s, rn_log_t *log);

/* Every stored batch in [from, rn_log_end), whole, back to back (what a
 * follower fetches), malloc'd; *len bytes (NULL when none). */
uint8_t *lt_read_bytes(rn_log_t *log, uint64_t from, size_t *len);

/* The leader-epoch invariant (docs/storage.md, "Leader epochs and replica
 * appends"): entries strictly increasing in epoch and start offset, none at
 * or past rn_log_next_offset, the first covering the log start when the log
 * holds anything, and every batch in [start, rn_log_end) carrying the epoch
 * of the entry covering its base offset. Returns true, or false with what
 * is wrong in why. */
bool lt_epochs_ok(rn_log_t *log, char *why, size_t cap);

#endif
