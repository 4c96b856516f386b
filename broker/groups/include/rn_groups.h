/*
 * rn_groups.h — consumer groups (docs/groups.md) as a C API: membership
 * (join, heartbeat, leave, session expiry), the assignment with
 * revoke-before-reassign, member epochs that fence stale commits, durable
 * checkpoints, lag, and the admin operations (create, list, describe,
 * delete, reset). No protobuf here: the native session translates the wire
 * messages (broker/native/dispatch_groups.c), other front ends call this
 * directly.
 *
 * Contract of every operation below: it runs on the loop thread, borrows
 * its request (copies what it keeps) and calls cb exactly once, possibly
 * before it returns, with a reply that is valid during the call only. An
 * operation that needs the checkpoint log (create, join of a new group,
 * commit, delete, reset) answers when its event is durable; the others
 * answer at once, except describe, which first reads the arrival times
 * its lag needs on the thread pool.
 *
 * Errors travel as rn_err_t with a one-line message (RN_ENOSTREAM,
 * RN_ENOGROUP, RN_EUNKNOWNMEMBER, RN_EFENCED, RN_EGROUPACTIVE, RN_EINVAL,
 * ...). A commit answers per checkpoint: the reply's err is 0 and each
 * result carries its own.
 */
#ifndef RN_GROUPS_H
#define RN_GROUPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_base.h"
#include "rn_core.h"
#include "runnel/error.h"

typedef struct rn_groups rn_groups_t;

/* ---- life ---------------------------------------------------------------------------------- */

typedef struct rn_groups_opts {
  /* Where groups read time: wall ms for commit and creation times, event
   * timestamps and lag; monotonic for heartbeats, session expiry and
   * revocation deadlines. Zeroed = the system clocks. Copied. */
  rn_clock_t clock;
} rn_groups_opts_t;

/* Open consumer groups over an open core (opts NULL = defaults): load the checkpoint snapshot
 * and replay the checkpoint log (<data_dir>/groups), then attach to core
 * as its RN_SUB_GROUPS listener. Blocking: call after rn_core_open, before
 * anything is served. On success *out is owned by core: rn_core_close
 * closes the log and frees it (there is no rn_groups_close), so *out lives
 * until then. On failure nothing is attached, *out is untouched and why
 * (may be NULL) holds a one-line reason (a damaged snapshot or log refuses
 * to start rather than lose checkpoints). */
rn_err_t rn_groups_open(rn_core_t *core, const rn_groups_opts_t *opts, rn_groups_t **out, char *why, size_t whylen);

/* The groups attached to core, or NULL before rn_groups_open. Borrowed,
 * until rn_core_close. */
rn_groups_t *rn_groups_of(const rn_core_t *core);

/* Where a group (or one shard of it) starts reading. The numbers are the
 * wire's PositionKind (dispatch_groups.c asserts it); a value outside the
 * list is refused with RN_EINVAL where a position is checked. */
typedef enum rn_group_pos {
  RN_GROUP_POS_OFFSET = 0,    /* value = offset (reset only) */
  RN_GROUP_POS_EARLIEST = 1,  /* the log start */
  RN_GROUP_POS_LATEST = 2,    /* the end when the group was created or reset */
  RN_GROUP_POS_TIMESTAMP = 3, /* value = ms since the epoch: first record at or after */
} rn_group_pos_t;

/* ---- requests (borrowed for the duration of the call) ------------------------------- */

/* Join (member_id NULL or ""), heartbeat, or leave. A join of a group that
 * does not exist creates it at start_kind/start_value (OFFSET refused). */
typedef struct rn_group_heartbeat_req {
  const char *stream, *group;
  const char *member_id;       /* NULL or "" = join as a new member */
  const char *client_id;       /* free text shown by describe; NULL = "" */
  uint32_t member_epoch;       /* the epoch last received (0 on join) */
  bool leave;                  /* leave now: the member's shards are free at once */
  uint32_t session_timeout_ms; /* on join; 0 = default (10 s), clamped to 0.5 s .. 10 min */
  const uint32_t *owned;       /* shards the member holds now */
  size_t n_owned;
  rn_group_pos_t start_kind;   /* for a group this join creates */
  int64_t start_value;
} rn_group_heartbeat_req_t;

typedef struct rn_group_checkpoint {
  uint32_t shard;
  uint64_t offset;    /* the next offset to read */
  int64_t arrival_ms; /* broker arrival of the record at offset - 1; 0 = unknown */
} rn_group_checkpoint_t;

typedef struct rn_group_commit_req {
  const char *stream, *group, *member_id;
  uint32_t member_epoch;
  const rn_group_checkpoint_t *checkpoints;
  size_t n_checkpoints;
} rn_group_commit_req_t;

typedef struct rn_group_create_req {
  const char *stream, *group;
  rn_group_pos_t start_kind; /* EARLIEST, LATEST or TIMESTAMP */
  int64_t start_value;
} rn_group_create_req_t;

/* Reset a group without members (created at LATEST first if missing). */
typedef struct rn_group_reset_req {
  const char *stream, *group;
  rn_group_pos_t kind; /* EARLIEST, LATEST, TIMESTAMP or OFFSET (clamped to each shard's end) */
  int64_t value;
  const uint32_t *shards; /* NULL/0 = every shard */
  size_t n_shards;
} rn_group_reset_req_t;

/* ---- replies (valid during the callback only) ----------------------------------------- */

typedef struct rn_group_assignment {
  uint32_t shard;
  rn_group_pos_t kind; /* OFFSET (value = offset) or TIMESTAMP (value = ms) */
  int64_t value;
} rn_group_assignment_t;

typedef struct rn_group_member_info {
  const char *member_id, *client_id;
  uint32_t member_epoch, session_timeout_ms, pending;
  int64_t last_heartbeat_ms; /* ms since the member's last heartbeat */
  const uint32_t *shards;    /* held now */
  size_t n_shards;
} rn_group_member_info_t;

typedef struct rn_group_shard_info {
  uint32_t shard;
  const char *owner; /* member id, "" = none */
  bool has_checkpoint;
  uint64_t checkpoint;
  int64_t checkpoint_ms; /* wall time of the last commit, 0 = never */
  uint64_t start_offset, end_offset, lag_records;
  int64_t lag_ms; /* -1 = unknown */
} rn_group_shard_info_t;

typedef struct rn_group_description {
  const char *stream, *group;
  rn_group_pos_t start_kind;
  int64_t start_value;
  int64_t created_ms;
  const rn_group_member_info_t *members;
  size_t n_members;
  const rn_group_shard_info_t *shards;
  size_t n_shards;
} rn_group_description_t;

typedef struct rn_group_shard_result {
  uint32_t shard;
  rn_err_t err;        /* 0 = durable */
  const char *message; /* NULL when err is 0 (or its text could not be built) */
} rn_group_shard_result_t;

/* One reply. err != 0: the operation failed, message says why, nothing
 * else is set. Otherwise the part of the operation called is (create and
 * delete have none): */
typedef struct rn_group_reply {
  rn_err_t err;
  const char *message;
  struct {                    /* HEARTBEAT (a leave sets member_id only) */
    const char *member_id;
    uint32_t member_epoch, heartbeat_interval_ms, pending;
    const rn_group_assignment_t *assigned; /* every shard the member may hold now */
    size_t n_assigned;
  } heartbeat;
  struct { /* COMMIT: one per checkpoint of the request, in its order */
    const rn_group_shard_result_t *results;
    size_t n_results;
  } commit;
  struct { /* LIST: the stream's group names, sorted */
    const char *const *names;
    size_t n_names;
  } list;
  const rn_group_description_t *group; /* DESCRIBE, RESET */
} rn_group_reply_t;

typedef void (*rn_group_reply_cb)(void *ctx, const rn_group_reply_t *reply);

/* ---- operations ------------------------------------------------------------------------- */

void rn_groups_heartbeat(rn_groups_t *gs, const rn_group_heartbeat_req_t *r, rn_group_reply_cb cb, void *ctx);
void rn_groups_commit(rn_groups_t *gs, const rn_group_commit_req_t *r, rn_group_reply_cb cb, void *ctx);
void rn_groups_create(rn_groups_t *gs, const rn_group_create_req_t *r, rn_group_reply_cb cb, void *ctx);
void rn_groups_list(rn_groups_t *gs, const char *stream, rn_group_reply_cb cb, void *ctx);
void rn_groups_describe(rn_groups_t *gs, const char *stream, const char *group, rn_group_reply_cb cb, void *ctx);
/* Only a group without members (RN_EGROUPACTIVE otherwise). */
void rn_groups_delete(rn_groups_t *gs, const char *stream, const char *group, rn_group_reply_cb cb, void *ctx);
void rn_groups_reset(rn_groups_t *gs, const rn_group_reset_req_t *r, rn_group_reply_cb cb, void *ctx);

/* ---- metrics ------------------------------------------------------------------------------ */

typedef struct rn_groups_shard_stats {
  const char *stream, *group; /* valid during the callback only */
  uint32_t shard;
  uint32_t members;     /* of the group */
  uint64_t checkpoint;
  uint64_t lag_records; /* end offset - the group's read position */
  int64_t lag_ms;       /* now - arrival of the oldest unconsumed record; 0 caught up; -1 unknown */
  bool checkpoint_known;
} rn_groups_shard_stats_t;

typedef void (*rn_groups_shard_stats_fn)(void *arg, const rn_groups_shard_stats_t *s);

/* Call fn once per (group, shard) of every group of an active stream,
 * groups in creation order, shards in order. Loop thread; fn must not call
 * back into groups. gs NULL: nothing. */
void rn_groups_foreach_shard(const rn_groups_t *gs, rn_groups_shard_stats_fn fn, void *arg);

#endif
