/*
 * grouptest.h — fixture and helpers for the consumer-group integration tests
 * (tests/integration/test_group_*.c): a real runneld on a run-time loopback
 * port (broker_proc.h) with a librunnel client, a producer that remembers
 * where every record landed, describe-polling with a deadline, and group
 * members as real processes (runnelctl children spawned with fork/exec,
 * stopped by PID).
 *
 * Waiting is always on a condition: rn_gt_wait re-describes the group until
 * a predicate holds and fails the test when the deadline passes first; the
 * deadline is only a failure bound, never a timing assertion. Every child a
 * fixture spawned and did not reap is SIGKILLed (by PID) in teardown, so a
 * failed assertion never leaves a `--follow` member running.
 *
 * The helpers assert with cmocka: include <cmocka.h> before this header.
 */
#ifndef RN_TEST_GROUPTEST_H
#define RN_TEST_GROUPTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker_proc.h"
#include "runnel/runnel.h"

#define RN_GT_MAX_CHILDREN 16

typedef struct rn_gt {
  char *tmp;              /* temp root (owned; removed in teardown unless RUNNEL_TEST_KEEP) */
  char data_dir[600];
  rn_test_broker_t broker;
  rn_client_t *cl;        /* connected to broker */
  pid_t children[RN_GT_MAX_CHILDREN]; /* spawned, not yet reaped (0 = free slot) */
} rn_gt_t;

/* cmocka setup/teardown: *state becomes an rn_gt_t with a running broker. */
int rn_gt_setup(void **state);
int rn_gt_teardown(void **state);

/* Stop the broker (SIGTERM, asserting a clean exit), start it again on the
 * same data directory (a new port) and reconnect g->cl. */
void rn_gt_restart(rn_gt_t *g);

/* Path of the runnelctl binary under test (RUNNELCTL env, else CMake's). */
const char *rn_gt_runnelctl_path(void);

/* Monotonic milliseconds, for deadlines only. */
uint64_t rn_gt_now_ms(void);

/* Create stream with n shards (durability sync); asserts success. */
void rn_gt_create_stream(rn_gt_t *g, const char *stream, uint32_t shards);

/* Where each produced record landed: value[i] "<prefix>-<i>" at
 * (shard[i], offset[i]). Appended to by rn_gt_produce. */
typedef struct rn_gt_produced {
  size_t n, cap;
  uint32_t *shard;
  uint64_t *offset;
  char **value;
} rn_gt_produced_t;

/* Produce n records to stream through librunnel (keys "<prefix>-<i>", so
 * they spread over the shards), wait for every acknowledgement and append
 * their positions to out. Asserts that every record was acknowledged. */
void rn_gt_produce(rn_gt_t *g, const char *stream, const char *prefix, size_t n, rn_gt_produced_t *out);
void rn_gt_produced_free(rn_gt_produced_t *p);

/* Describe a group (asserts success); caller frees with rn_group_desc_free. */
rn_group_desc_t *rn_gt_describe(rn_gt_t *g, const char *stream, const char *group);

typedef bool (*rn_gt_pred_t)(const rn_group_desc_t *d, const void *arg);

/* Describe the group until pred holds; returns that description (caller
 * frees). Fails the test (printing `what` and the last description) when
 * deadline_ms pass first. ENOGROUP counts as "not yet". */
rn_group_desc_t *rn_gt_wait(rn_gt_t *g, const char *stream, const char *group, rn_gt_pred_t pred, const void *arg,
                            uint32_t deadline_ms, const char *what);

/* Predicates. arg of rn_gt_balanced: a const uint32_t * = the member count
 * wanted: that many members, every shard owned by one of them, nothing
 * pending, shard counts differing by at most one. rn_gt_caught_up: total
 * lag_records is 0 (arg ignored). rn_gt_balanced_caught_up: both. */
bool rn_gt_balanced(const rn_group_desc_t *d, const void *arg);
bool rn_gt_caught_up(const rn_group_desc_t *d, const void *arg);
bool rn_gt_balanced_caught_up(const rn_group_desc_t *d, const void *arg);

/* Sum of lag_records over the shards. */
uint64_t rn_gt_total_lag(const rn_group_desc_t *d);
/* The member with that id, or NULL. */
const rn_group_member_info_t *rn_gt_member(const rn_group_desc_t *d, const char *member_id);
/* Print a description (for failure messages). */
void rn_gt_print_desc(const rn_group_desc_t *d);

/* ---- child processes ----------------------------------------------------------- */

/* Spawn `runnelctl --broker <addr> args...` (NULL-terminated) with stdin
 * /dev/null, stdout to <tmp>/<tag>.out and stderr to <tmp>/<tag>.err.
 * Returns the PID (registered with g for teardown). */
pid_t rn_gt_spawn_ctl(rn_gt_t *g, const char *tag, ...) __attribute__((sentinel));

/* Wait for a spawned child; returns its exit status, or 128 + the signal
 * that ended it. */
int rn_gt_wait_pid(rn_gt_t *g, pid_t pid);

/* Send sig to a spawned child (by PID) and wait for it (rn_gt_wait_pid). */
int rn_gt_signal(rn_gt_t *g, pid_t pid, int sig);

/* Run `runnelctl --broker <addr> args...` to completion with stdin from
 * in (may be NULL); *out and *err get its stdout and stderr (malloc'd).
 * Returns the exit status (as rn_gt_wait_pid). */
int rn_gt_ctl(rn_gt_t *g, char **out, char **err, ...) __attribute__((sentinel));

/* <tmp>/<tag>.<ext> into a malloc'd string ("" when missing). */
char *rn_gt_slurp(rn_gt_t *g, const char *tag, const char *ext);

/* ---- runnelctl --json consume output ---------------------------------------------- */

typedef struct rn_gt_seen {
  uint32_t shard;
  uint64_t offset;
  char *data; /* malloc'd */
} rn_gt_seen_t;

typedef struct rn_gt_seen_list {
  size_t n, cap;
  rn_gt_seen_t *v;
} rn_gt_seen_list_t;

/* Append the records of NDJSON consume output (one object per line with
 * shard, offset, data). A line that does not parse fails the test unless it
 * is the unterminated last line (a member killed mid-write). */
void rn_gt_parse_records(const char *text, rn_gt_seen_list_t *out);
void rn_gt_seen_free(rn_gt_seen_list_t *l);

/* The number of times (shard, offset) appears in l. */
size_t rn_gt_seen_count(const rn_gt_seen_list_t *l, uint32_t shard, uint64_t offset);

#endif
