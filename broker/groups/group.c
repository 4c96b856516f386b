/*
 * group.c — consumer groups (rn_groups.h): membership (join, heartbeat,
 * leave, session expiry), the assignment (group_assign.c) applied with
 * revoke-before-reassign, member epochs that fence stale commits, durable
 * checkpoints and lag. docs/groups.md describes the behaviour; the wire
 * messages are in proto/runnel.proto.
 *
 * Core: reached only through rn_core.h. Groups are core's RN_SUB_GROUPS
 * listener (tick, stream deleting, shard opened/closing, close), keep
 * their per-shard state on core's shard slot (gshard_t, one per group of
 * the shard's stream) and answer through rn_groups.h's C API; protobuf is
 * only groups' storage format (GroupEvent, GroupsSnapshot).
 *
 * State: in memory, per group: members and, per shard, the holder, the
 * target member and the checkpoint. Checkpoints, creates and deletes are
 * GroupEvent records in an internal log (<data_dir>/groups/log, an rn_log_t
 * in sync mode on core's rn_io_t: one fdatasync covers every commit
 * that arrived meanwhile, so committing every second per shard costs one
 * small append). The log is compacted by a snapshot (<data_dir>/groups/
 * snapshot, GroupsSnapshot, replaced atomically on the thread pool) after
 * which the segments it covers are deleted. At open: snapshot, then replay
 * the log from the snapshot's offset. Membership is not persisted: after a
 * restart members get EUNKNOWNMEMBER and join again.
 *
 * Ordering: a commit is applied to memory when its event is durable (then
 * answered), so describe and the snapshot never show a checkpoint that a
 * crash could take back. Creates and deletes change memory at once (their
 * events are idempotent on replay).
 *
 * Threading: loop thread only, except the snapshot write (thread pool, on a
 * private buffer). Files: through core's rn_fs (the log through core's
 * rn_io, which uses it too), so a crash simulator reaches groups as well.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "rn_core.h"
#include "rn_fs.h"
#include "group_assign.h"
#include "rn_groups.h"
#include "runnel/batch.h"
#include "runnel/keys.h"
#include "runnel.pb-c.h"
#include "rn_base.h"

#define DEFAULT_SESSION_MS 10000u
#define MIN_SESSION_MS 500u
#define MAX_SESSION_MS 600000u

typedef struct gmember {
  char *id;
  char *client_id;
  uint32_t epoch;
  uint32_t session_ms;
  uint64_t last_seen; /* mono_ms */
  uint32_t *held;     /* shards sent in the last answer (sorted) */
  uint32_t nheld;
  uint32_t pending;
} gmember_t;

/* Where a group stands in one shard. Transitions:
 *   POS_NONE    -> POS_OFFSET   a checkpoint committed or replayed, a create or
 *                               reset at EARLIEST, LATEST or OFFSET
 *   POS_NONE    -> POS_AT_TIME  a create or reset at TIMESTAMP
 *   POS_AT_TIME -> POS_OFFSET   the first commit (or a reset at an offset)
 *   POS_OFFSET  -> POS_AT_TIME  a reset at TIMESTAMP
 * A group never goes back to POS_NONE (a shard the group never had a
 * position in: replay of a create that did not list it). */
typedef enum pos_state {
  POS_NONE,    /* no position: describe shows no checkpoint, lag unknown */
  POS_OFFSET,  /* ckpt is the next offset to read */
  POS_AT_TIME, /* at_ts: start at the first record at or after it; no offset yet */
} pos_state_t;

/* One group's state in one shard. It hangs off the shard (core's
 * RN_SUB_GROUPS slot holds the list of the shard's groups), not off an
 * array sized by the stream's shard count: a group reaches it with
 * gsh_of(g, s), and a shard that core opens later gets one for every group
 * of its stream (on_shard_opened). */
typedef struct gshard {
  struct group *grp;   /* whose position this is */
  struct gshard *next; /* the shard's next group */
  gmember_t *owner;     /* holds it (granted, not yet released) */
  uint32_t owner_since; /* owner's epoch when granted */
  gmember_t *target;    /* the assignment */
  uint64_t revoke_since; /* mono_ms when owner != target was first seen; 0 = not revoking */
  pos_state_t pos;
  uint64_t ckpt;
  int64_t arrival_ms;
  int64_t commit_ms;
  int64_t at_ts; /* POS_AT_TIME: the time (ms, > 0); else 0 */
  /* Time lag: the broker arrival time of the batch holding offset
   * lag_from, read off the loop (lag jobs below). lag_from == LAG_NONE:
   * nothing read yet. lag_bad_from: an offset whose read failed (not
   * retried until the position moves). */
  uint64_t lag_from, lag_bad_from;
  int64_t lag_arrival;
} gshard_t;

#define LAG_NONE UINT64_MAX

/* A group's assignment. Transitions:
 *   GROUP_STABLE    -> GROUP_REBALANCE  a member joined, left, expired or was
 *                                       fenced (member_remove, join)
 *   GROUP_REBALANCE -> GROUP_STABLE     the next heartbeat recomputed the
 *                                       targets (recompute)
 * A new group starts STABLE (no members, no targets). */
typedef enum group_state {
  GROUP_STABLE,    /* every shard's target is current */
  GROUP_REBALANCE, /* membership changed: recompute the targets before answering */
} group_state_t;

typedef struct group {
  char *stream;
  uint64_t uid;
  rn_core_stream_t *st; /* valid while the group exists (dropped with the stream) */
  char *name;
  rn_group_pos_t start_kind;
  int64_t start_value;
  int64_t created_ms;
  gmember_t **members;
  uint32_t nmembers, members_cap;
  group_state_t state;
} group_t;

struct rn_groups {
  rn_core_t *core;
  rn_fs_t *fs;      /* core's (rn_core_opts_t.fs): the snapshot and the directory */
  rn_clock_t clock; /* every time groups read: wall (records, commits, lag), monotonic (sessions) */
  bool lag_refreshing; /* the tick's lag job is on the thread pool */
  char *dir;
  rn_log_t *log;
  group_t **groups;
  uint32_t ngroups, cap;
  uint64_t member_seq;
  uint64_t nonce;
  uint64_t snap_offset; /* the snapshot on disk covers events below this */
  bool snap_active;
  unsigned inflight; /* appends not answered yet */
};

/* ---- small helpers ------------------------------------------------------------------- */

static char *xstrdup(const char *s) {
  char *d = rn_xstrdup(s ? s : "");
  return d;
}

static void *xcalloc(size_t n, size_t sz) {
  void *p = rn_xcalloc(n ? n : 1, sz);
  return p;
}

/* Wall clock, ms since the epoch: event timestamps, commit and creation
 * times, lag against arrival times. */
static int64_t now_ms(const rn_groups_t *gs) { return rn_clock_wall_ms(&gs->clock); }

/* Monotonic ms: heartbeats, session expiry, revocation deadlines. */
static uint64_t mono_ms(const rn_groups_t *gs) { return rn_clock_mono_ns(&gs->clock) / 1000000u; }

/* Group g's state in shard s (< the stream's shard count): always there,
 * from group_add to group_free. */
static gshard_t *gsh_of(const group_t *g, uint32_t s) {
  rn_core_shard_t *sh = rn_core_stream_shard(g->st, s);
  for (gshard_t *x = sh ? rn_core_shard_slot(sh, RN_SUB_GROUPS) : NULL; x; x = x->next)
    if (x->grp == g) return x;
  fprintf(stderr, "groups: group %s/%s has no state in shard %u\n", g->stream, g->name, s);
  abort(); /* an invariant, kept in release builds too */
}

/* Give g its state in shard sh (idempotent). */
static void gsh_attach(group_t *g, rn_core_shard_t *sh) {
  gshard_t *head = rn_core_shard_slot(sh, RN_SUB_GROUPS);
  for (gshard_t *x = head; x; x = x->next)
    if (x->grp == g) return;
  gshard_t *x = xcalloc(1, sizeof(*x));
  x->grp = g;
  x->lag_from = x->lag_bad_from = LAG_NONE;
  x->next = head;
  rn_core_shard_set_slot(sh, RN_SUB_GROUPS, x);
}

static void gsh_detach(group_t *g, rn_core_shard_t *sh) {
  gshard_t *head = rn_core_shard_slot(sh, RN_SUB_GROUPS), **pp = &head;
  while (*pp && (*pp)->grp != g) pp = &(*pp)->next;
  if (!*pp) return;
  gshard_t *x = *pp;
  *pp = x->next;
  free(x);
  rn_core_shard_set_slot(sh, RN_SUB_GROUPS, head);
}

static rn_log_t *shard_log(rn_core_stream_t *st, uint32_t s) { return rn_core_shard_log(rn_core_stream_shard(st, s)); }

static void reply_err(rn_group_reply_cb cb, void *ctx, rn_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_err(rn_group_reply_cb cb, void *ctx, rn_err_t err, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  rn_group_reply_t rep = {.err = err, .message = msg};
  cb(ctx, &rep);
}

static group_t *group_find(rn_groups_t *gs, const char *stream, uint64_t uid, const char *name) {
  for (uint32_t i = 0; i < gs->ngroups; i++) {
    group_t *g = gs->groups[i];
    if (g->uid == uid && !strcmp(g->name, name) && !strcmp(g->stream, stream)) return g;
  }
  return NULL;
}

static void member_free(gmember_t *m) {
  if (!m) return;
  free(m->id);
  free(m->client_id);
  free(m->held);
  free(m);
}

static void group_free(group_t *g) {
  for (uint32_t i = 0; i < g->nmembers; i++) member_free(g->members[i]);
  for (uint32_t s = 0; s < rn_core_stream_nshards(g->st); s++) gsh_detach(g, rn_core_stream_shard(g->st, s));
  free(g->members);
  free(g->stream);
  free(g->name);
  free(g);
}

static group_t *group_add(rn_groups_t *gs, rn_core_stream_t *st, const char *name) {
  group_t *g = xcalloc(1, sizeof(*g));
  g->stream = xstrdup(rn_core_stream_name(st));
  g->uid = rn_core_stream_uid(st);
  g->st = st;
  g->name = xstrdup(name);
  for (uint32_t s = 0; s < rn_core_stream_nshards(st); s++) gsh_attach(g, rn_core_stream_shard(st, s));
  if (gs->ngroups == gs->cap) {
    gs->cap = gs->cap ? gs->cap * 2 : 8;
    gs->groups = rn_xrealloc(gs->groups, gs->cap * sizeof(*gs->groups));
  }
  gs->groups[gs->ngroups++] = g;
  return g;
}

static void group_remove(rn_groups_t *gs, group_t *g) {
  for (uint32_t i = 0; i < gs->ngroups; i++)
    if (gs->groups[i] == g) {
      gs->groups[i] = gs->groups[--gs->ngroups];
      break;
    }
  group_free(g);
}

static gmember_t *member_find(group_t *g, const char *id) {
  for (uint32_t i = 0; i < g->nmembers; i++)
    if (!strcmp(g->members[i]->id, id)) return g->members[i];
  return NULL;
}

/* Remove a member: its shards are free at once. */
static void member_remove(group_t *g, gmember_t *m) {
  for (uint32_t s = 0; s < rn_core_stream_nshards(g->st); s++) {
    if (gsh_of(g, s)->owner == m) gsh_of(g, s)->owner = NULL;
    if (gsh_of(g, s)->target == m) gsh_of(g, s)->target = NULL;
  }
  for (uint32_t i = 0; i < g->nmembers; i++)
    if (g->members[i] == m) {
      memmove(g->members + i, g->members + i + 1, (g->nmembers - i - 1) * sizeof(*g->members));
      g->nmembers--;
      break;
    }
  member_free(m);
  g->state = GROUP_REBALANCE;
}

/* ---- lag ------------------------------------------------------------------------------ *
 *
 * Per (group, shard): lag in records = end offset - the group's read
 * position (its checkpoint, or the log start when retention passed it); lag
 * in time = now - the broker arrival time of the record at that position
 * (the oldest record the group has not consumed), 0 when caught up, unknown
 * (-1) while the group has no offset position in the shard (a TIMESTAMP
 * start not resolved yet) or the arrival time is not known.
 *
 * The arrival time needs a read of the batch at the position: a lag job
 * plans the reads on the loop (pinning the segments), reads on the thread
 * pool, and caches the result per (group, shard) keyed by the offset. The
 * tick starts one job for every stale position (so /metrics stays fresh);
 * a describe runs its own job first and answers from fresh values. While
 * a newer position waits for its read, the cached value of an older one is
 * used: its record is older, so the lag is overstated for at most that
 * moment, never understated. */

typedef struct lag {
  uint64_t start, end, from, records;
  int64_t ms;
  bool known_pos; /* the group has an offset position here */
} lag_t;

static lag_t shard_lag(const group_t *g, uint32_t s, int64_t now_ms) {
  const rn_core_shard_t *sh = rn_core_stream_shard(g->st, s);
  const gshard_t *gsh = gsh_of(g, s);
  lag_t l = {0};
  l.start = rn_core_shard_start_offset(sh);
  l.end = rn_core_shard_end_offset(sh);
  l.known_pos = gsh->pos == POS_OFFSET;
  l.from = l.start;
  if (l.known_pos && gsh->ckpt > l.from) l.from = gsh->ckpt;
  l.records = l.end > l.from ? l.end - l.from : 0;
  if (!l.known_pos) {
    l.ms = -1;
  } else if (l.records == 0) {
    l.ms = 0;
  } else if (gsh->lag_from != LAG_NONE && gsh->lag_from <= l.from) {
    l.ms = now_ms > gsh->lag_arrival ? now_ms - gsh->lag_arrival : 0;
  } else {
    l.ms = -1;
  }
  return l;
}

/* Whether shard s of g needs an arrival read for its current position. */
static bool lag_stale(const group_t *g, uint32_t s, const lag_t *l) {
  const gshard_t *gsh = gsh_of(g, s);
  return l->known_pos && l->records > 0 && gsh->lag_from != l->from && gsh->lag_bad_from != l->from &&
         rn_core_shard_log(rn_core_stream_shard(g->st, s)) != NULL;
}

typedef struct lag_part {
  rn_core_stream_t *st; /* referenced (st->refs) until the job is done */
  char *group;     /* looked up again at the end: it may be gone */
  uint32_t shard;
  uint64_t offset;
  rn_log_span_t span;
  int64_t arrival;
  rn_err_t err;
} lag_part_t;

typedef struct lag_job {
  uv_work_t work;
  rn_groups_t *gs;
  bool tick; /* the tick's job (gs->lag_refreshing) */
  /* a describe waiting for the reads (cb NULL: none) */
  rn_group_reply_cb cb;
  void *ctx;
  rn_core_stream_t *st; /* the described group's stream (one of the parts' refs) */
  char *group;
  size_t n, cap;
  lag_part_t *parts;
} lag_job_t;

#define LAG_READ_BYTES ((size_t)64 * 1024)

/* Thread pool: read the batch at each part's offset and take its arrival
 * time from the header. */
static void lag_work(uv_work_t *w) {
  lag_job_t *j = w->data;
  uint8_t *buf = malloc(LAG_READ_BYTES);
  size_t cap = buf ? LAG_READ_BYTES : 0;
  for (size_t i = 0; i < j->n; i++) {
    lag_part_t *p = &j->parts[i];
    if (p->err) continue;
    if (!p->span.seg) { /* nothing at the position (planned only below the end) */
      p->err = RN_EOFFSET;
      continue;
    }
    if (!buf) {
      p->err = RN_ENOMEM;
      continue;
    }
    size_t len = 0;
    rn_err_t err = rn_log_span_read(&p->span, buf, cap, &len);
    if (err == RN_ETOOLARGE && len <= RN_BATCH_MAX_SIZE) { /* one batch larger than the buffer */
      uint8_t *nb = realloc(buf, len);
      if (nb) {
        buf = nb;
        cap = len;
        err = rn_log_span_read(&p->span, buf, cap, &len);
      }
    }
    rn_batch_header_t h;
    if (!err && len == 0) err = RN_EOFFSET;
    if (!err) err = rn_batch_header_decode(buf, len, &h);
    if (!err && (p->offset < h.base_offset || h.arrival_time_ms <= 0)) err = RN_ECORRUPT;
    if (!err) p->arrival = h.arrival_time_ms;
    p->err = err;
  }
  free(buf);
}

/* A description of one group; its arrays are its own (desc_free). */
typedef struct desc {
  rn_group_description_t d;
  rn_group_member_info_t *members;
  rn_group_shard_info_t *shards;
  uint32_t *held; /* the members' shard lists, back to back */
} desc_t;

static void describe(desc_t *x, rn_groups_t *gs, const group_t *g, bool ages);
static void desc_free(desc_t *x);

/* Answer with g's description (describe, reset). ages: fill the members'
 * heartbeat ages (describe does, reset never did). */
static void reply_describe(rn_groups_t *gs, const group_t *g, bool ages, rn_group_reply_cb cb, void *ctx) {
  desc_t x;
  describe(&x, gs, g, ages);
  rn_group_reply_t rep = {.group = &x.d};
  cb(ctx, &rep);
  desc_free(&x);
}

/* Loop thread: release the spans, store the arrival times that still
 * match the groups' positions, answer the waiting describe. */
static void lag_after(uv_work_t *w, int status) {
  lag_job_t *j = w->data;
  rn_groups_t *gs = j->gs;
  rn_core_t *core = gs->core;
  int64_t now = now_ms(gs);
  for (size_t i = 0; i < j->n; i++) {
    lag_part_t *p = &j->parts[i];
    rn_log_t *log = shard_log(p->st, p->shard);
    if (p->span.seg && log) rn_log_span_release(log, &p->span);
    if (status && !p->err) p->err = RN_EIO;
    group_t *g = rn_core_stream_state(p->st) == RN_CORE_STREAM_ACTIVE ? group_find(gs, rn_core_stream_name(p->st), rn_core_stream_uid(p->st), p->group) : NULL;
    if (g && p->shard < rn_core_stream_nshards(g->st)) {
      gshard_t *gsh = gsh_of(g, p->shard);
      lag_t l = shard_lag(g, p->shard, now);
      if (!p->err && (gsh->lag_from != l.from || p->offset == l.from)) {
        gsh->lag_from = p->offset;
        gsh->lag_arrival = p->arrival;
      } else if (p->err && p->offset == l.from) {
        gsh->lag_bad_from = p->offset;
      }
    }
  }
  if (j->cb) {
    group_t *g = rn_core_stream_state(j->st) == RN_CORE_STREAM_ACTIVE ? group_find(gs, rn_core_stream_name(j->st), rn_core_stream_uid(j->st), j->group) : NULL;
    if (g)
      reply_describe(gs, g, true, j->cb, j->ctx);
    else
      reply_err(j->cb, j->ctx, RN_ENOGROUP, "group %s/%s was deleted", rn_core_stream_name(j->st), j->group);
  }
  if (j->tick) gs->lag_refreshing = false;
  for (size_t i = 0; i < j->n; i++) {
    free(j->parts[i].group);
    rn_core_stream_unref(j->parts[i].st);
  }
  free(j->parts);
  free(j->group);
  free(j);
  rn_core_work_end(core);
}

/* Add a read of g's shard s at l->from to j (plans it on the loop). */
static void lag_job_add(lag_job_t *j, group_t *g, uint32_t s, const lag_t *l) {
  if (j->n == j->cap) {
    j->cap = j->cap ? j->cap * 2 : 8;
    j->parts = rn_xrealloc(j->parts, j->cap * sizeof(*j->parts));
  }
  lag_part_t *p = &j->parts[j->n++];
  memset(p, 0, sizeof(*p));
  p->st = g->st;
  rn_core_stream_ref(p->st);
  p->group = xstrdup(g->name);
  p->shard = s;
  p->offset = l->from;
  p->err = rn_log_span_plan(rn_core_shard_log(rn_core_stream_shard(g->st, s)), l->from, &p->span);
}

/* Read what j plans; lag_after runs in any case (also when nothing is to
 * be read or the pool refuses). Takes j. */
static void lag_job_start(rn_groups_t *gs, lag_job_t *j) {
  rn_core_work_begin(gs->core);
  j->work.data = j;
  if (j->n == 0 || uv_queue_work(rn_core_loop(gs->core), &j->work, lag_work, lag_after) != 0) lag_after(&j->work, j->n ? UV_EIO : 0);
}

/* The tick: one job for every stale position, at most one job at a time. */
static void lag_refresh(rn_groups_t *gs) {
  if (gs->lag_refreshing) return;
  lag_job_t *j = NULL;
  int64_t now = now_ms(gs);
  for (uint32_t i = 0; i < gs->ngroups; i++) {
    group_t *g = gs->groups[i];
    if (rn_core_stream_state(g->st) != RN_CORE_STREAM_ACTIVE) continue;
    for (uint32_t s = 0; s < rn_core_stream_nshards(g->st); s++) {
      lag_t l = shard_lag(g, s, now);
      if (!lag_stale(g, s, &l)) continue;
      if (!j) {
        j = xcalloc(1, sizeof(*j));
        j->gs = gs;
        j->tick = true;
      }
      lag_job_add(j, g, s, &l);
    }
  }
  if (!j) return;
  gs->lag_refreshing = true;
  lag_job_start(gs, j);
}

/* ---- the internal log ------------------------------------------------------------------ */

typedef void (*event_done_fn)(rn_groups_t *gs, void *arg, rn_err_t err);

typedef struct event_job {
  rn_groups_t *gs;
  event_done_fn done;
  void *arg;
} event_job_t;

static void on_event_durable(void *arg, rn_err_t err, uint64_t base) {
  (void)base;
  event_job_t *j = arg;
  rn_groups_t *gs = j->gs;
  gs->inflight--;
  rn_core_work_end(gs->core);
  j->done(gs, j->arg, err);
  free(j);
}

/* Append one event; done runs when it is durable (or failed). Returns 0
 * (done will run) or an error (done will not). */
static rn_err_t event_append(rn_groups_t *gs, const Runnel__GroupEvent *ev, event_done_fn done, void *arg) {
  size_t n = runnel__group_event__get_packed_size(ev);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return RN_ENOMEM;
  runnel__group_event__pack(ev, buf);
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  rn_record_t rec = {0};
  rec.timestamp = now_ms(gs);
  rec.value = buf;
  rec.value_len = n;
  const uint8_t *out;
  size_t len;
  rn_err_t err = rn_batch_builder_add(&b, &rec);
  if (!err) err = rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &out, &len);
  event_job_t *j = NULL;
  if (!err) {
    j = malloc(sizeof(*j));
    if (!j) err = RN_ENOMEM;
  }
  if (!err) {
    *j = (event_job_t){gs, done, arg};
    err = rn_log_append(gs->log, out, len, 0, on_event_durable, j, NULL);
    if (err) free(j);
  }
  rn_batch_builder_free(&b);
  free(buf);
  if (!err) {
    gs->inflight++;
    rn_core_work_begin(gs->core);
  }
  return err;
}

static void fill_state_keys(Runnel__GroupState *s, const group_t *g) {
  s->stream = g->stream;
  s->stream_uid = g->uid;
  s->group = g->name;
}

/* Checkpoint messages of every shard of g into arrays from the arena. */
static void fill_state_ckpts(rn_arena_t *a, Runnel__GroupState *s, const group_t *g) {
  uint32_t n = rn_core_stream_nshards(g->st);
  s->checkpoints = rn_arena_alloc(a, n * sizeof(*s->checkpoints));
  for (uint32_t i = 0; i < n; i++) {
    const gshard_t *gsh = gsh_of(g, i);
    if (gsh->pos == POS_NONE) continue;
    Runnel__GroupCheckpointState *c = rn_arena_alloc(a, sizeof(*c));
    runnel__group_checkpoint_state__init(c);
    c->shard = i;
    c->offset = gsh->ckpt;
    c->arrival_ms = gsh->arrival_ms;
    c->commit_ms = gsh->commit_ms;
    c->at_timestamp = gsh->at_ts;
    s->checkpoints[s->n_checkpoints++] = c;
  }
}

static void apply_ckpt(group_t *g, const Runnel__GroupCheckpointState *c) {
  if (c->shard >= rn_core_stream_nshards(g->st)) return;
  gshard_t *gsh = gsh_of(g, c->shard);
  gsh->pos = c->at_timestamp ? POS_AT_TIME : POS_OFFSET;
  gsh->ckpt = c->offset;
  gsh->arrival_ms = c->arrival_ms;
  gsh->commit_ms = c->commit_ms;
  gsh->at_ts = c->at_timestamp;
}

/* Apply one replayed event (or a snapshot entry as a create). */
static void apply_event(rn_groups_t *gs, const Runnel__GroupEvent *ev) {
  const Runnel__GroupState *s = ev->create ? ev->create : ev->checkpoints ? ev->checkpoints : ev->remove;
  if (!s || !s->stream || !s->group) return;
  rn_core_stream_t *st = rn_core_stream_find(gs->core, s->stream);
  if (!st || rn_core_stream_uid(st) != s->stream_uid) return; /* the stream is gone */
  group_t *g = group_find(gs, s->stream, s->stream_uid, s->group);
  switch (ev->ev_case) {
  case RUNNEL__GROUP_EVENT__EV_CREATE:
    if (!g) g = group_add(gs, st, s->group);
    g->start_kind = (rn_group_pos_t)s->start_kind;
    g->start_value = s->start_value;
    g->created_ms = s->created_ms;
    for (size_t i = 0; i < s->n_checkpoints; i++) apply_ckpt(g, s->checkpoints[i]);
    break;
  case RUNNEL__GROUP_EVENT__EV_CHECKPOINTS:
    if (g)
      for (size_t i = 0; i < s->n_checkpoints; i++) apply_ckpt(g, s->checkpoints[i]);
    break;
  case RUNNEL__GROUP_EVENT__EV_REMOVE:
    if (g) group_remove(gs, g);
    break;
  default: break;
  }
}

/* ---- snapshot ---------------------------------------------------------------------------- */

typedef struct snap_job {
  uv_work_t work;
  rn_groups_t *gs;
  uint8_t *buf;
  size_t len;
  uint64_t offset;
  rn_err_t err;
} snap_job_t;

static void snap_work(uv_work_t *w) {
  snap_job_t *j = w->data;
  j->err = rn_snapshot_write(j->gs->fs, j->gs->dir, "snapshot", j->buf, j->len);
}

static void snap_after(uv_work_t *w, int status) {
  (void)status;
  snap_job_t *j = w->data;
  rn_groups_t *gs = j->gs;
  rn_core_work_end(gs->core);
  gs->snap_active = false;
  if (j->err) {
    rn_core_log(gs->core, RN_LVL_WARN, "groups: writing the checkpoint snapshot failed: %s (the log keeps everything)",
                rn_strerror(j->err));
  } else {
    gs->snap_offset = j->offset;
    rn_log_delete_below(gs->log, gs->snap_offset);
  }
  free(j->buf);
  free(j);
}

/* Serialize every group (memory holds exactly the durable checkpoints) and
 * the offset below which the log's events are all included. */
static rn_err_t snapshot_pack(rn_groups_t *gs, uint64_t offset, uint8_t **buf, size_t *len) {
  rn_arena_t a = {0};
  Runnel__GroupsSnapshot snap;
  runnel__groups_snapshot__init(&snap);
  snap.log_offset = offset;
  snap.groups = rn_arena_alloc(&a, (gs->ngroups + 1) * sizeof(*snap.groups));
  for (uint32_t i = 0; i < gs->ngroups; i++) {
    const group_t *g = gs->groups[i];
    Runnel__GroupState *s = rn_arena_alloc(&a, sizeof(*s));
    runnel__group_state__init(s);
    fill_state_keys(s, g);
    s->start_kind = (Runnel__PositionKind)g->start_kind;
    s->start_value = g->start_value;
    s->created_ms = g->created_ms;
    fill_state_ckpts(&a, s, g);
    snap.groups[snap.n_groups++] = s;
  }
  *len = runnel__groups_snapshot__get_packed_size(&snap);
  *buf = malloc(*len ? *len : 1);
  if (*buf) runnel__groups_snapshot__pack(&snap, *buf);
  rn_arena_free(&a);
  return *buf ? 0 : RN_ENOMEM;
}

static void maybe_compact(rn_groups_t *gs) {
  if (gs->snap_offset) rn_log_delete_below(gs->log, gs->snap_offset);
  /* Compact when the log holds more than two segments' worth. */
  if (gs->snap_active || gs->inflight || rn_log_size_bytes(gs->log) < 2 * rn_core_options(gs->core)->group_segment_bytes) return;
  uint64_t offset = rn_log_end(gs->log); /* nothing in flight: every event below is applied */
  if (offset <= gs->snap_offset) return;
  snap_job_t *j = calloc(1, sizeof(*j));
  if (!j) return;
  j->gs = gs;
  j->offset = offset;
  j->work.data = j;
  if (snapshot_pack(gs, offset, &j->buf, &j->len) || uv_queue_work(rn_core_loop(gs->core), &j->work, snap_work, snap_after)) {
    free(j->buf);
    free(j);
    return;
  }
  gs->snap_active = true;
  rn_core_work_begin(gs->core);
}

/* ---- open / close ------------------------------------------------------------------------ */

static void log_logger(void *arg, rn_level_t level, const char *msg) {
  rn_core_log(arg, level, "groups: %s", msg);
}

/* Read the snapshot through rn_fs (no snapshot: nothing to load). */
static rn_err_t load_snapshot(rn_groups_t *gs, char *why, size_t whylen) {
  char path[4200];
  snprintf(path, sizeof(path), "%s/snapshot", gs->dir);
  void *buf;
  size_t len;
  rn_err_t err = rn_snapshot_read(gs->fs, gs->dir, "snapshot", &buf, &len);
  if (err == RN_ENOENT) return 0; /* none yet: the log holds every event */
  if (err) {
    snprintf(why, whylen, "cannot read %s: %s", path, rn_strerror(err));
    return err;
  }
  Runnel__GroupsSnapshot *snap = runnel__groups_snapshot__unpack(NULL, len, buf);
  free(buf);
  if (!snap) {
    snprintf(why, whylen, "%s is damaged (not a GroupsSnapshot); refusing to start rather than lose checkpoints", path);
    return RN_ECORRUPT;
  }
  for (size_t i = 0; i < snap->n_groups; i++) {
    Runnel__GroupEvent ev;
    runnel__group_event__init(&ev);
    ev.ev_case = RUNNEL__GROUP_EVENT__EV_CREATE;
    ev.create = snap->groups[i];
    apply_event(gs, &ev);
  }
  gs->snap_offset = snap->log_offset;
  runnel__groups_snapshot__free_unpacked(snap, NULL);
  return 0;
}

static rn_err_t replay(rn_groups_t *gs, char *why, size_t whylen) {
  uint64_t start = rn_log_start(gs->log), end = rn_log_end(gs->log);
  if (gs->snap_offset > end) {
    snprintf(why, whylen, "groups: the snapshot covers events up to %" PRIu64 " but the log ends at %" PRIu64, gs->snap_offset, end);
    return RN_ECORRUPT;
  }
  if (start > gs->snap_offset) {
    snprintf(why, whylen, "groups: the log starts at %" PRIu64 " but the snapshot covers only events below %" PRIu64
             " (checkpoints would be lost)", start, gs->snap_offset);
    return RN_ECORRUPT;
  }
  size_t cap = 1 << 20;
  uint8_t *buf = malloc(cap);
  if (!buf) return RN_ENOMEM;
  uint64_t off = gs->snap_offset;
  rn_err_t err = 0;
  while (off < end && !err) {
    size_t len = 0;
    err = rn_core_log_read(gs->log, off, &buf, &cap, &len);
    if (err || len == 0) break;
    size_t pos = 0;
    while (pos < len && !err) {
      rn_batch_header_t h;
      err = rn_batch_header_decode(buf + pos, len - pos, &h);
      if (err) break;
      rn_batch_iter_t it;
      /* rn_log_read verified both checksums of every batch it copied out. */
      err = rn_batch_iter_init_verified(&it, buf + pos, h.batch_length);
      if (err) break;
      rn_record_t rec;
      while (!err && (err = rn_batch_iter_next(&it, &rec)) == 0) {
        if (rec.offset < off) continue;
        Runnel__GroupEvent *ev = runnel__group_event__unpack(NULL, rec.value_len, rec.value);
        if (!ev) {
          snprintf(why, whylen, "groups: event at offset %" PRIu64 " does not decode", rec.offset);
          err = RN_ECORRUPT;
          break;
        }
        apply_event(gs, ev);
        runnel__group_event__free_unpacked(ev, NULL);
      }
      if (err == RN_EOFFSET) err = 0; /* end of the batch */
      rn_batch_iter_free(&it);
      pos += h.batch_length;
      off = rn_batch_last_offset(&h) + 1;
    }
  }
  free(buf);
  if (err && !why[0]) snprintf(why, whylen, "groups: replaying the checkpoint log: %s", rn_strerror(err));
  return err;
}

/* ---- life: open, core's events, close ---------------------------------------------------- *
 *
 * rn_groups_open registers groups as core's RN_SUB_GROUPS listener; from
 * then on core drives it: tick (session expiry, the log's timers,
 * compaction, lag), stream_deleting (the stream's groups go), shard_opened
 * (a shard of a stream with groups gets their state), and close
 * (rn_core_close, after every thread-pool job finished: the log closes,
 * everything is freed and the listener removed). */

static void expire_members(rn_groups_t *gs, group_t *g, uint64_t now);
static void lag_refresh(rn_groups_t *gs);

static void on_tick(void *arg) {
  rn_groups_t *gs = arg;
  uint64_t now = mono_ms(gs);
  for (uint32_t i = 0; i < gs->ngroups; i++) expire_members(gs, gs->groups[i], now);
  rn_log_tick(gs->log, now_ms(gs));
  maybe_compact(gs);
  lag_refresh(gs);
}

/* The stream is being deleted: drop its groups (replay drops the groups of
 * streams that no longer exist, so nothing is written). */
static void on_stream_deleting(void *arg, rn_core_stream_t *st) {
  rn_groups_t *gs = arg;
  for (uint32_t i = 0; i < gs->ngroups;) {
    group_t *g = gs->groups[i];
    if (g->st == st) {
      group_remove(gs, g);
    } else {
      i++;
    }
  }
}

/* A shard opened (resharding, later): every group of its stream gets its
 * state there. At registration (no groups yet) and for a new stream this
 * finds none. */
static void on_shard_opened(void *arg, rn_core_shard_t *sh) {
  rn_groups_t *gs = arg;
  rn_core_stream_t *st = rn_core_shard_stream(sh);
  for (uint32_t i = 0; i < gs->ngroups; i++)
    if (gs->groups[i]->st == st) gsh_attach(gs->groups[i], sh);
}

/* A shard is about to be freed. Its stream's groups went at
 * stream_deleting (or at close), so the slot is empty; free what a shard
 * opened later might still hold. */
static void on_shard_closing(void *arg, rn_core_shard_t *sh) {
  (void)arg;
  gshard_t *x = rn_core_shard_slot(sh, RN_SUB_GROUPS);
  while (x) {
    gshard_t *next = x->next;
    free(x);
    x = next;
  }
  rn_core_shard_set_slot(sh, RN_SUB_GROUPS, NULL);
}

static void groups_free(rn_groups_t *gs) {
  while (gs->ngroups) group_remove(gs, gs->groups[0]);
  free(gs->groups);
  free(gs->dir);
  free(gs);
}

/* rn_core_close: no append or job is in flight (core waited for its work
 * count). Blocking. */
static rn_err_t on_close(void *arg) {
  rn_groups_t *gs = arg;
  rn_core_t *core = gs->core;
  rn_err_t err = rn_log_close(gs->log);
  groups_free(gs);
  rn_core_listen(core, RN_SUB_GROUPS, NULL); /* nothing of groups' is left on the shards */
  return err;
}

rn_err_t rn_groups_open(rn_core_t *core, const rn_groups_opts_t *opts, rn_groups_t **out, char *why, size_t whylen) {
  char scratch[8];
  if (!why) why = scratch, whylen = sizeof scratch;
  why[0] = 0;
  rn_groups_t *gs = xcalloc(1, sizeof(*gs));
  gs->core = core;
  if (opts) gs->clock = opts->clock;
  gs->fs = rn_core_options(core)->fs ? rn_core_options(core)->fs : rn_fs_posix();
  const char *data_dir = rn_core_data_dir(core);
  size_t n = strlen(data_dir) + 16;
  gs->dir = xcalloc(n, 1);
  snprintf(gs->dir, n, "%s/groups", data_dir);
  gs->nonce = XXH3_64bits_withSeed(gs->dir, strlen(gs->dir), (uint64_t)now_ms(gs) ^ ((uint64_t)getpid() << 32));
  rn_err_t err = gs->fs->mkdirs(gs->fs, gs->dir);
  if (err) {
    snprintf(why, whylen, "cannot create %s: %s", gs->dir, rn_strerror(err));
    goto fail;
  }
  uint64_t seg = rn_core_options(core)->group_segment_bytes;
  rn_log_opts_t lo;
  rn_log_opts_default(&lo);
  lo.durability = RN_DURABILITY_SYNC;
  lo.segment_bytes = seg ? seg : (4u << 20);
  lo.logger.fn = log_logger;
  lo.logger.arg = core;
  lo.clock = gs->clock;
  char logdir[4200];
  snprintf(logdir, sizeof(logdir), "%s/log", gs->dir);
  rn_log_recovery_t rec;
  err = rn_log_open(rn_core_io(core), logdir, &lo, &gs->log, &rec);
  if (err) {
    snprintf(why, whylen, "groups: checkpoint log %s: %s", logdir, rec.message[0] ? rec.message : rn_strerror(err));
    goto fail;
  }
  err = load_snapshot(gs, why, whylen);
  if (!err) err = replay(gs, why, whylen);
  if (err) goto fail;
  rn_core_listener_t l = {
      .stream_deleting = on_stream_deleting,
      .shard_opened = on_shard_opened,
      .shard_closing = on_shard_closing,
      .tick = on_tick,
      .close = on_close,
      .arg = gs,
  };
  rn_core_listen(core, RN_SUB_GROUPS, &l);
  if (gs->ngroups) rn_core_log(core, RN_LVL_INFO, "groups: %u consumer group(s) loaded", gs->ngroups);
  *out = gs;
  return 0;
fail:
  if (!why[0]) snprintf(why, whylen, "groups: %s", rn_strerror(err));
  if (gs->log) rn_log_close(gs->log);
  groups_free(gs);
  return err;
}

rn_groups_t *rn_groups_of(const rn_core_t *core) { return rn_core_listener_arg(core, RN_SUB_GROUPS); }

/* Remove the members of g whose session ran out, and fence a member that
 * kept a revoked shard (still heartbeating, never releasing it) for longer
 * than its session timeout: otherwise one stuck member could hold a shard
 * back from its new owner forever. */
static void expire_members(rn_groups_t *gs, group_t *g, uint64_t now) {
  for (uint32_t k = 0; k < g->nmembers;) {
    gmember_t *m = g->members[k];
    if (now - m->last_seen > m->session_ms) {
      rn_core_log(gs->core, RN_LVL_INFO, "group %s/%s: member %s expired (no heartbeat for %u ms); its shards are free",
                  g->stream, g->name, m->id, m->session_ms);
      member_remove(g, m);
    } else {
      k++;
    }
  }
  for (uint32_t s = 0; s < rn_core_stream_nshards(g->st); s++) {
    gshard_t *gsh = gsh_of(g, s);
    if (!gsh->owner || gsh->owner == gsh->target) {
      gsh->revoke_since = 0;
      continue;
    }
    if (!gsh->revoke_since) {
      gsh->revoke_since = now ? now : 1;
    } else if (now - gsh->revoke_since > gsh->owner->session_ms) {
      gmember_t *m = gsh->owner;
      rn_core_log(gs->core, RN_LVL_WARN,
                  "group %s/%s: member %s did not release shard %u within its session timeout (%u ms) after it was "
                  "revoked; fencing the member",
                  g->stream, g->name, m->id, s, m->session_ms);
      member_remove(g, m); /* clears its shards (revoke_since reset on the next pass) */
      s = (uint32_t)-1;    /* rescan: member_remove changed owners */
    }
  }
}

/* ---- assignment ---------------------------------------------------------------------- */

static void recompute(group_t *g) {
  uint32_t n = rn_core_stream_nshards(g->st), m = g->nmembers;
  rn_ga_shard_t *in = xcalloc(n, sizeof(*in));
  int32_t *target = xcalloc(n, sizeof(*target));
  double *scratch = xcalloc(2 * (size_t)m + 1, sizeof(*scratch));
  for (uint32_t s = 0; s < n; s++) {
    gmember_t *pref = gsh_of(g, s)->owner ? gsh_of(g, s)->owner : gsh_of(g, s)->target;
    in[s].prefer = -1;
    for (uint32_t k = 0; k < m && pref; k++)
      if (g->members[k] == pref) in[s].prefer = (int32_t)k;
    in[s].weight = (double)rn_core_shard_bytes_in(rn_core_stream_shard(g->st, s));
    /* No resharding yet: no parents, nothing closed. */
  }
  rn_group_assign(in, n, m, target, scratch);
  for (uint32_t s = 0; s < n; s++) gsh_of(g, s)->target = target[s] >= 0 ? g->members[target[s]] : NULL;
  free(in);
  free(target);
  free(scratch);
  g->state = GROUP_STABLE;
}

/* Where a member starts reading shard s. */
static void start_position(const group_t *g, uint32_t s, rn_group_assignment_t *a) {
  const gshard_t *gsh = gsh_of(g, s);
  const rn_core_shard_t *sh = rn_core_stream_shard(g->st, s);
  const rn_log_t *log = rn_core_shard_log(sh);
  a->shard = s;
  if (gsh->pos == POS_AT_TIME) {
    a->kind = RN_GROUP_POS_TIMESTAMP;
    a->value = gsh->at_ts;
  } else {
    /* The shard's start, not its log's: a tiered shard starts in its store. */
    uint64_t off = gsh->pos == POS_OFFSET ? gsh->ckpt : 0, lo = log ? rn_core_shard_start_offset(sh) : 0,
             hi = log ? rn_log_end(log) : 0;
    if (off < lo) off = lo;
    if (off > hi) off = hi; /* records lost with durability none: do not wait for offsets past the end */
    a->kind = RN_GROUP_POS_OFFSET;
    a->value = (int64_t)off;
  }
}

/* ---- create ---------------------------------------------------------------------------- */

static rn_err_t check_start(rn_group_pos_t kind, int64_t value, char *msg, size_t n) {
  switch (kind) {
  case RN_GROUP_POS_EARLIEST:
  case RN_GROUP_POS_LATEST: return 0;
  case RN_GROUP_POS_TIMESTAMP:
    if (value > 0) return 0;
    snprintf(msg, n, "a group starting at a timestamp needs a time > 0 (ms since the epoch)");
    return RN_EINVAL;
  default: snprintf(msg, n, "a group starts at EARLIEST, LATEST or TIMESTAMP"); return RN_EINVAL;
  }
}

/* Set shard s's checkpoint to a position (create, reset). */
static void set_position(group_t *g, uint32_t s, rn_group_pos_t kind, int64_t value) {
  gshard_t *gsh = gsh_of(g, s);
  const rn_log_t *log = rn_core_shard_log(rn_core_stream_shard(g->st, s));
  gsh->pos = POS_OFFSET;
  gsh->arrival_ms = 0;
  gsh->commit_ms = 0;
  gsh->at_ts = 0;
  switch (kind) {
  case RN_GROUP_POS_LATEST: gsh->ckpt = log ? rn_log_end(log) : 0; break;
  case RN_GROUP_POS_TIMESTAMP:
    gsh->ckpt = 0;
    gsh->at_ts = value;
    if (value) gsh->pos = POS_AT_TIME; /* check_start made sure it is > 0 */
    break;
  case RN_GROUP_POS_OFFSET: gsh->ckpt = (uint64_t)value; break;
  default: gsh->ckpt = 0; break; /* earliest: clamped to the log start when handed out */
  }
}

static group_t *group_create(rn_groups_t *gs, rn_core_stream_t *st, const char *name, rn_group_pos_t kind,
                             int64_t value) {
  group_t *g = group_add(gs, st, name);
  g->start_kind = kind;
  g->start_value = value;
  g->created_ms = now_ms(gs);
  for (uint32_t s = 0; s < rn_core_stream_nshards(st); s++) set_position(g, s, kind, value);
  rn_core_log(gs->core, RN_LVL_INFO, "group %s/%s created (starts at %s)", rn_core_stream_name(st), name,
              kind == RN_GROUP_POS_LATEST     ? "latest"
              : kind == RN_GROUP_POS_EARLIEST ? "earliest"
                                              : "a timestamp");
  return g;
}

/* Event that writes g's whole state (create) or its checkpoints (reset). */
static rn_err_t append_state(rn_groups_t *gs, group_t *g, bool create, event_done_fn done, void *arg) {
  rn_arena_t a = {0};
  Runnel__GroupState s;
  runnel__group_state__init(&s);
  fill_state_keys(&s, g);
  s.start_kind = (Runnel__PositionKind)g->start_kind;
  s.start_value = g->start_value;
  s.created_ms = g->created_ms;
  fill_state_ckpts(&a, &s, g);
  Runnel__GroupEvent ev;
  runnel__group_event__init(&ev);
  if (create) {
    ev.ev_case = RUNNEL__GROUP_EVENT__EV_CREATE;
    ev.create = &s;
  } else {
    ev.ev_case = RUNNEL__GROUP_EVENT__EV_CHECKPOINTS;
    ev.checkpoints = &s;
  }
  rn_err_t err = event_append(gs, &ev, done, arg);
  rn_arena_free(&a);
  return err;
}

/* ---- requests waiting for the log ---------------------------------------------------- *
 *
 * A request whose answer waits for its event to be durable is a
 * pending_reply_t, and its kind says what it answers then:
 *
 *   PR_CREATE, PR_DELETE  an empty reply (or the write's error)
 *   PR_JOIN               the first join of a group it created: once the
 *                         create is durable, the join runs (heartbeat_now)
 *                         on the request copied into it
 *   PR_RESET              the group's description
 *   PR_COMMIT             per checkpoint (commit_job_t owns the pending reply)
 *
 * Each runs once: event_append's callback (on_state_durable,
 * on_commit_durable) answers and frees it, on success and on failure; a
 * failed event_append frees it at once and answers with the error. */

typedef enum pr_kind { PR_CREATE, PR_JOIN, PR_DELETE, PR_RESET, PR_COMMIT } pr_kind_t;

/* An owned copy of a join request (replayed once the create is durable). */
typedef struct hb_copy {
  rn_group_heartbeat_req_t r;
  char *stream, *group, *member_id, *client_id;
  uint32_t *owned;
} hb_copy_t;

typedef struct pending_reply {
  rn_group_reply_cb cb;
  void *ctx;
  rn_core_stream_t *st; /* referenced */
  char *group;
  uint64_t uid;
  pr_kind_t kind;
  hb_copy_t *hb; /* PR_JOIN: the request */
} pending_reply_t;

static pending_reply_t *pending_new(rn_group_reply_cb cb, void *ctx, rn_core_stream_t *st, const char *group,
                                    pr_kind_t kind) {
  pending_reply_t *p = xcalloc(1, sizeof(*p));
  p->cb = cb;
  p->ctx = ctx;
  p->st = st;
  rn_core_stream_ref(st);
  p->group = xstrdup(group);
  p->uid = rn_core_stream_uid(st);
  p->kind = kind;
  return p;
}

static void hb_copy_free(hb_copy_t *c) {
  if (!c) return;
  free(c->stream);
  free(c->group);
  free(c->member_id);
  free(c->client_id);
  free(c->owned);
  free(c);
}

static hb_copy_t *copy_heartbeat(const rn_group_heartbeat_req_t *r) {
  hb_copy_t *c = xcalloc(1, sizeof(*c));
  c->r = *r;
  c->r.stream = c->stream = xstrdup(r->stream);
  c->r.group = c->group = xstrdup(r->group);
  c->r.member_id = c->member_id = xstrdup(r->member_id);
  c->r.client_id = c->client_id = xstrdup(r->client_id);
  c->owned = xcalloc(r->n_owned, sizeof(*c->owned));
  if (r->n_owned) memcpy(c->owned, r->owned, r->n_owned * sizeof(*c->owned));
  c->r.owned = c->owned;
  return c;
}

static void pending_free(pending_reply_t *p) {
  hb_copy_free(p->hb);
  rn_core_stream_unref(p->st);
  free(p->group);
  free(p);
}

static void heartbeat_now(rn_groups_t *gs, const rn_group_heartbeat_req_t *r, rn_group_reply_cb cb, void *ctx);

static void on_state_durable(rn_groups_t *gs, void *arg, rn_err_t err) {
  pending_reply_t *p = arg;
  group_t *g = group_find(gs, rn_core_stream_name(p->st), p->uid, p->group);
  if (err) {
    /* A group whose create did not become durable must not linger. */
    if (g && (p->kind == PR_CREATE || p->kind == PR_JOIN) && g->nmembers == 0) group_remove(gs, g);
    reply_err(p->cb, p->ctx, err, "group %s/%s: writing the group's state failed: %s", rn_core_stream_name(p->st), p->group,
              rn_strerror(err));
  } else if (p->kind == PR_JOIN) {
    if (rn_core_stream_state(p->st) != RN_CORE_STREAM_ACTIVE)
      reply_err(p->cb, p->ctx, RN_ENOSTREAM, "stream %s not found", rn_core_stream_name(p->st));
    else
      heartbeat_now(gs, &p->hb->r, p->cb, p->ctx);
  } else if (p->kind == PR_CREATE || p->kind == PR_DELETE) {
    rn_group_reply_t rep = {0};
    p->cb(p->ctx, &rep);
  } else if (p->kind == PR_RESET) {
    if (!g)
      reply_err(p->cb, p->ctx, RN_ENOGROUP, "group %s/%s was deleted meanwhile", rn_core_stream_name(p->st), p->group);
    else
      reply_describe(gs, g, false, p->cb, p->ctx);
  }
  pending_free(p);
}

/* ---- request checks ---------------------------------------------------------------- */

static rn_core_stream_t *find_stream(rn_core_t *core, const char *name, rn_group_reply_cb cb, void *ctx) {
  rn_core_stream_t *st = name ? rn_core_stream_lookup(core, name) : NULL;
  if (!st || rn_core_stream_state(st) != RN_CORE_STREAM_ACTIVE) {
    if (st && rn_core_stream_state(st) == RN_CORE_STREAM_CREATING)
      reply_err(cb, ctx, RN_EBUSY, "stream %s is still being created", name);
    else
      reply_err(cb, ctx, RN_ENOSTREAM, "stream %s not found", name ? name : "");
    return NULL;
  }
  return st;
}

/* The group name rule is proto's (runnel/keys.h), the same at every entry. */
static bool check_group_name(const char *name, rn_group_reply_cb cb, void *ctx) {
  char why[256];
  if (rn_name_check_group(name, name ? strlen(name) : 0, why, sizeof why) == 0) return true;
  reply_err(cb, ctx, RN_EINVAL, "%s", why);
  return false;
}

/* ---- heartbeat ------------------------------------------------------------------------- */

static int strcmp_ptr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The pace a member heartbeats at when nothing is going on. */
static uint32_t base_interval(const gmember_t *m) {
  uint32_t iv = m->session_ms / 4;
  return iv > 500 ? 500 : iv < 50 ? 50 : iv;
}

/* When m should heartbeat next: its base pace; 100 ms while shards meant
 * for it are still held by another member; and, when another member has
 * gone quiet (missed two heartbeats), just after that member's session
 * would run out — so its shards move as soon as it expires instead of at
 * the next regular heartbeat. */
static uint32_t heartbeat_interval(const group_t *g, const gmember_t *m, uint64_t now) {
  uint64_t iv = m->pending ? 100 : base_interval(m);
  for (uint32_t i = 0; i < g->nmembers; i++) {
    const gmember_t *o = g->members[i];
    if (o == m || now - o->last_seen <= 2u * base_interval(o)) continue;
    uint64_t expiry = o->last_seen + o->session_ms + 5;
    uint64_t until = expiry > now ? expiry - now : 5;
    if (until < iv) iv = until;
  }
  return (uint32_t)(iv < 5 ? 5 : iv);
}

static void heartbeat_now(rn_groups_t *gs, const rn_group_heartbeat_req_t *r, rn_group_reply_cb cb, void *ctx) {
  rn_core_t *core = gs->core;
  rn_core_stream_t *st = rn_core_stream_find(core, r->stream);
  group_t *g = st ? group_find(gs, rn_core_stream_name(st), rn_core_stream_uid(st), r->group) : NULL;
  if (!g) return reply_err(cb, ctx, RN_ENOGROUP, "group %s/%s not found", r->stream, r->group);
  uint64_t now = mono_ms(gs);
  expire_members(gs, g, now);
  gmember_t *m;
  if (!r->member_id || !r->member_id[0]) {
    m = xcalloc(1, sizeof(*m));
    char id[200];
    const char *cid = r->client_id && r->client_id[0] ? r->client_id : "member";
    snprintf(id, sizeof(id), "%.64s-%016" PRIx64, cid, XXH3_64bits_withSeed(&gs->member_seq, 8, gs->nonce));
    gs->member_seq++;
    m->id = xstrdup(id);
    m->client_id = xstrdup(r->client_id);
    uint32_t sess = r->session_timeout_ms ? r->session_timeout_ms : DEFAULT_SESSION_MS;
    m->session_ms = sess < MIN_SESSION_MS ? MIN_SESSION_MS : sess > MAX_SESSION_MS ? MAX_SESSION_MS : sess;
    if (g->nmembers == g->members_cap) {
      g->members_cap = g->members_cap ? 2 * g->members_cap : 4;
      g->members = rn_xrealloc(g->members, g->members_cap * sizeof(*g->members));
    }
    g->members[g->nmembers++] = m;
    g->state = GROUP_REBALANCE;
    rn_core_log(core, RN_LVL_INFO, "group %s/%s: member %s joined (%u member(s))", g->stream, g->name, m->id,
                g->nmembers);
  } else {
    m = member_find(g, r->member_id);
    if (!m)
      return reply_err(cb, ctx, RN_EUNKNOWNMEMBER, "group %s/%s has no member %s (session expired or left): join again",
                       g->stream, g->name, r->member_id);
    if (r->leave) {
      rn_core_log(core, RN_LVL_INFO, "group %s/%s: member %s left", g->stream, g->name, m->id);
      member_remove(g, m);
      rn_group_reply_t rep = {0};
      rep.heartbeat.member_id = r->member_id;
      cb(ctx, &rep);
      return;
    }
  }
  m->last_seen = now;
  uint32_t n = rn_core_stream_nshards(st);
  /* Released: held by m before, missing from `owned` now. */
  bool *owned = xcalloc(n, sizeof(bool));
  for (size_t i = 0; i < r->n_owned; i++)
    if (r->owned[i] < n) owned[r->owned[i]] = true;
  for (uint32_t s = 0; s < n; s++)
    if (gsh_of(g, s)->owner == m && !owned[s]) gsh_of(g, s)->owner = NULL;
  free(owned);
  if (g->state == GROUP_REBALANCE) recompute(g);
  /* Grant free shards meant for m; list what m may hold. */
  uint32_t *list = xcalloc(n, sizeof(uint32_t)), nlist = 0, pending = 0;
  bool changed = false;
  for (uint32_t s = 0; s < n; s++) {
    gshard_t *gsh = gsh_of(g, s);
    if (gsh->target != m) continue;
    if (gsh->owner == NULL) {
      gsh->owner = m;
      gsh->owner_since = m->epoch + 1;
      changed = true;
    }
    if (gsh->owner == m)
      list[nlist++] = s;
    else
      pending++;
  }
  if (!changed && (nlist != m->nheld || (nlist && memcmp(list, m->held, nlist * sizeof(uint32_t)))))
    changed = true;
  if (changed || m->epoch == 0) {
    m->epoch++;
    free(m->held);
    m->held = list;
    m->nheld = nlist;
    list = NULL;
  }
  free(list);
  m->pending = pending;

  rn_group_assignment_t *as = xcalloc(m->nheld, sizeof(*as));
  for (uint32_t i = 0; i < m->nheld; i++) start_position(g, m->held[i], &as[i]);
  rn_group_reply_t rep = {0};
  rep.heartbeat.member_id = m->id;
  rep.heartbeat.member_epoch = m->epoch;
  rep.heartbeat.heartbeat_interval_ms = heartbeat_interval(g, m, now);
  rep.heartbeat.pending = pending;
  rep.heartbeat.assigned = as;
  rep.heartbeat.n_assigned = m->nheld;
  cb(ctx, &rep);
  free(as);
}

void rn_groups_heartbeat(rn_groups_t *gs, const rn_group_heartbeat_req_t *r, rn_group_reply_cb cb, void *ctx) {
  rn_core_stream_t *st = find_stream(gs->core, r->stream, cb, ctx);
  if (!st || !check_group_name(r->group, cb, ctx)) return;
  bool join = !r->member_id || !r->member_id[0];
  if (join && rn_core_draining(gs->core)) return reply_err(cb, ctx, RN_ESHUTDOWN, "broker shutting down");
  group_t *g = group_find(gs, rn_core_stream_name(st), rn_core_stream_uid(st), r->group);
  if (g || !join) return heartbeat_now(gs, r, cb, ctx);
  /* First join creates the group; answer once the create is durable. */
  char msg[200];
  rn_err_t err = check_start(r->start_kind, r->start_value, msg, sizeof(msg));
  if (err) return reply_err(cb, ctx, err, "%s", msg);
  g = group_create(gs, st, r->group, r->start_kind, r->start_value);
  pending_reply_t *p = pending_new(cb, ctx, st, r->group, PR_JOIN);
  p->hb = copy_heartbeat(r);
  err = append_state(gs, g, true, on_state_durable, p);
  if (err) {
    group_remove(gs, g);
    pending_free(p);
    reply_err(cb, ctx, err, "group %s/%s: cannot write the group's state: %s", rn_core_stream_name(st), r->group, rn_strerror(err));
  }
}

/* ---- commit ---------------------------------------------------------------------------- */

typedef struct commit_job {
  pending_reply_t *p;
  int64_t commit_ms; /* as written to the log */
  uint32_t n;
  /* per checkpoint of the request, in request order: */
  rn_group_checkpoint_t *cps;
  rn_err_t *errs; /* 0 = accepted (written to the log) */
  char **msgs;
} commit_job_t;

static void commit_reply(commit_job_t *cj) {
  pending_reply_t *p = cj->p;
  rn_group_shard_result_t *res = xcalloc(cj->n, sizeof(*res));
  for (uint32_t i = 0; i < cj->n; i++) {
    res[i].shard = cj->cps[i].shard;
    res[i].err = cj->errs[i];
    res[i].message = cj->errs[i] ? cj->msgs[i] : NULL;
  }
  rn_group_reply_t rep = {0};
  rep.commit.results = res;
  rep.commit.n_results = cj->n;
  p->cb(p->ctx, &rep);
  free(res);
}

static void commit_job_free(commit_job_t *cj) {
  for (uint32_t i = 0; i < cj->n; i++) free(cj->msgs[i]);
  free(cj->msgs);
  free(cj->errs);
  free(cj->cps);
  pending_free(cj->p);
  free(cj);
}

static void on_commit_durable(rn_groups_t *gs, void *arg, rn_err_t err) {
  commit_job_t *cj = arg;
  pending_reply_t *p = cj->p;
  group_t *g = group_find(gs, rn_core_stream_name(p->st), p->uid, p->group);
  for (uint32_t i = 0; i < cj->n; i++) {
    if (cj->errs[i]) continue;
    if (err) {
      cj->errs[i] = err;
      if (asprintf(&cj->msgs[i], "writing the checkpoint failed: %s", rn_strerror(err)) < 0) cj->msgs[i] = NULL;
    } else if (g && cj->cps[i].shard < rn_core_stream_nshards(g->st)) {
      Runnel__GroupCheckpointState cs;
      runnel__group_checkpoint_state__init(&cs);
      cs.shard = cj->cps[i].shard;
      cs.offset = cj->cps[i].offset;
      cs.arrival_ms = cj->cps[i].arrival_ms;
      cs.commit_ms = cj->commit_ms;
      apply_ckpt(g, &cs);
    }
  }
  commit_reply(cj);
  commit_job_free(cj);
}

void rn_groups_commit(rn_groups_t *gs, const rn_group_commit_req_t *r, rn_group_reply_cb cb, void *ctx) {
  rn_core_stream_t *st = find_stream(gs->core, r->stream, cb, ctx);
  if (!st || !check_group_name(r->group, cb, ctx)) return;
  group_t *g = group_find(gs, rn_core_stream_name(st), rn_core_stream_uid(st), r->group);
  if (!g) return reply_err(cb, ctx, RN_ENOGROUP, "group %s/%s not found", rn_core_stream_name(st), r->group);
  gmember_t *m = r->member_id ? member_find(g, r->member_id) : NULL;
  if (!m)
    return reply_err(cb, ctx, RN_EUNKNOWNMEMBER, "group %s/%s has no member %s (session expired or left): join again",
                     rn_core_stream_name(st), r->group, r->member_id ? r->member_id : "");
  m->last_seen = mono_ms(gs); /* a commit shows the member is alive */
  commit_job_t *cj = xcalloc(1, sizeof(*cj));
  cj->p = pending_new(cb, ctx, st, r->group, PR_COMMIT);
  cj->n = (uint32_t)r->n_checkpoints;
  cj->cps = xcalloc(cj->n, sizeof(*cj->cps));
  if (cj->n) memcpy(cj->cps, r->checkpoints, cj->n * sizeof(*cj->cps));
  cj->errs = xcalloc(cj->n, sizeof(*cj->errs));
  cj->msgs = xcalloc(cj->n, sizeof(*cj->msgs));
  rn_arena_t a = {0};
  Runnel__GroupState s;
  runnel__group_state__init(&s);
  fill_state_keys(&s, g);
  s.checkpoints = rn_arena_alloc(&a, (cj->n + 1) * sizeof(*s.checkpoints));
  int64_t now = now_ms(gs);
  cj->commit_ms = now;
  for (uint32_t i = 0; i < cj->n; i++) {
    const rn_group_checkpoint_t *c = &r->checkpoints[i];
    rn_err_t e = 0;
    char *msg = NULL;
    if (c->shard >= rn_core_stream_nshards(st)) {
      e = RN_ENOSHARD;
      if (asprintf(&msg, "stream %s has no shard %u", rn_core_stream_name(st), c->shard) < 0) msg = NULL;
    } else if (gsh_of(g, c->shard)->owner != m || r->member_epoch < gsh_of(g, c->shard)->owner_since ||
               r->member_epoch > m->epoch) {
      e = RN_EFENCED;
      if (asprintf(&msg, "member %s (epoch %u) does not hold shard %u of group %s/%s", m->id, r->member_epoch,
                   c->shard, rn_core_stream_name(st), r->group) < 0)
        msg = NULL;
    } else if (c->offset > rn_core_shard_end_offset(rn_core_stream_shard(st, c->shard))) {
      e = RN_EOFFSET;
      if (asprintf(&msg, "checkpoint %" PRIu64 " is past the end (%" PRIu64 ") of shard %u", c->offset,
                   rn_core_shard_end_offset(rn_core_stream_shard(st, c->shard)), c->shard) < 0)
        msg = NULL;
    }
    cj->errs[i] = e;
    cj->msgs[i] = msg;
    if (e) continue;
    Runnel__GroupCheckpointState *cs = rn_arena_alloc(&a, sizeof(*cs));
    runnel__group_checkpoint_state__init(cs);
    cs->shard = c->shard;
    cs->offset = c->offset;
    cs->arrival_ms = c->arrival_ms;
    cs->commit_ms = now;
    s.checkpoints[s.n_checkpoints++] = cs;
  }
  rn_err_t err = 0;
  if (s.n_checkpoints) {
    Runnel__GroupEvent ev;
    runnel__group_event__init(&ev);
    ev.ev_case = RUNNEL__GROUP_EVENT__EV_CHECKPOINTS;
    ev.checkpoints = &s;
    err = event_append(gs, &ev, on_commit_durable, cj);
  }
  rn_arena_free(&a);
  if (!s.n_checkpoints || err) {
    for (uint32_t i = 0; i < cj->n && err; i++)
      if (!cj->errs[i]) {
        cj->errs[i] = err;
        if (asprintf(&cj->msgs[i], "writing the checkpoint failed: %s", rn_strerror(err)) < 0) cj->msgs[i] = NULL;
      }
    commit_reply(cj);
    commit_job_free(cj);
  }
}

/* ---- admin ------------------------------------------------------------------------------ */

static void describe(desc_t *x, rn_groups_t *gs, const group_t *g, bool ages) {
  uint32_t n = rn_core_stream_nshards(g->st);
  uint64_t now = mono_ms(gs);
  memset(x, 0, sizeof(*x));
  x->members = xcalloc(g->nmembers, sizeof(*x->members));
  x->shards = xcalloc(n, sizeof(*x->shards));
  x->held = xcalloc(n, sizeof(*x->held)); /* each shard is held by one member at most */
  x->d.stream = g->stream;
  x->d.group = g->name;
  x->d.start_kind = g->start_kind;
  x->d.start_value = g->start_value;
  x->d.created_ms = g->created_ms;
  uint32_t *held = x->held;
  for (uint32_t i = 0; i < g->nmembers; i++) {
    const gmember_t *m = g->members[i];
    rn_group_member_info_t *mi = &x->members[i];
    mi->member_id = m->id;
    mi->client_id = m->client_id;
    mi->member_epoch = m->epoch;
    mi->session_timeout_ms = m->session_ms;
    mi->pending = m->pending;
    mi->last_heartbeat_ms = ages ? (int64_t)(now - m->last_seen) : 0;
    mi->shards = held;
    for (uint32_t s = 0; s < n; s++)
      if (gsh_of(g, s)->owner == m) held[mi->n_shards++] = s;
    held += mi->n_shards;
  }
  x->d.members = x->members;
  x->d.n_members = g->nmembers;
  int64_t wall = now_ms(gs);
  for (uint32_t s = 0; s < n; s++) {
    const gshard_t *gsh = gsh_of(g, s);
    rn_group_shard_info_t *si = &x->shards[s];
    si->shard = s;
    si->owner = gsh->owner ? gsh->owner->id : "";
    si->has_checkpoint = gsh->pos == POS_OFFSET;
    si->checkpoint = gsh->ckpt;
    si->checkpoint_ms = gsh->commit_ms;
    lag_t l = shard_lag(g, s, wall);
    si->start_offset = l.start;
    si->end_offset = l.end;
    si->lag_records = l.records;
    si->lag_ms = l.ms;
  }
  x->d.shards = x->shards;
  x->d.n_shards = n;
}

static void desc_free(desc_t *x) {
  free(x->members);
  free(x->shards);
  free(x->held);
}


void rn_groups_describe(rn_groups_t *gs, const char *stream, const char *group, rn_group_reply_cb cb, void *ctx) {
  rn_core_stream_t *st = find_stream(gs->core, stream, cb, ctx);
  if (!st || !check_group_name(group, cb, ctx)) return;
  group_t *g = group_find(gs, rn_core_stream_name(st), rn_core_stream_uid(st), group);
  if (!g) return reply_err(cb, ctx, RN_ENOGROUP, "group %s/%s not found", rn_core_stream_name(st), group);
  /* Fresh time lag: read the arrival times of positions not cached yet
   * (thread pool), then answer. */
  lag_job_t *j = NULL;
  int64_t now = now_ms(gs);
  for (uint32_t s = 0; s < rn_core_stream_nshards(g->st); s++) {
    lag_t l = shard_lag(g, s, now);
    if (!lag_stale(g, s, &l)) continue;
    if (!j) {
      j = xcalloc(1, sizeof(*j));
      j->gs = gs;
      j->cb = cb;
      j->ctx = ctx;
      j->st = g->st;
      j->group = xstrdup(g->name);
    }
    lag_job_add(j, g, s, &l);
  }
  if (j) return lag_job_start(gs, j);
  reply_describe(gs, g, true, cb, ctx);
}

void rn_groups_list(rn_groups_t *gs, const char *stream, rn_group_reply_cb cb, void *ctx) {
  rn_core_stream_t *st = find_stream(gs->core, stream, cb, ctx);
  if (!st) return;
  const char **names = xcalloc(gs->ngroups + 1, sizeof(char *));
  size_t n = 0;
  for (uint32_t i = 0; i < gs->ngroups; i++)
    if (gs->groups[i]->st == st) names[n++] = gs->groups[i]->name;
  qsort(names, n, sizeof(char *), strcmp_ptr);
  rn_group_reply_t rep = {0};
  rep.list.names = names;
  rep.list.n_names = n;
  cb(ctx, &rep);
  free(names);
}

void rn_groups_create(rn_groups_t *gs, const rn_group_create_req_t *r, rn_group_reply_cb cb, void *ctx) {
  rn_core_stream_t *st = find_stream(gs->core, r->stream, cb, ctx);
  if (!st || !check_group_name(r->group, cb, ctx)) return;
  if (group_find(gs, rn_core_stream_name(st), rn_core_stream_uid(st), r->group))
    return reply_err(cb, ctx, RN_EEXIST, "group %s/%s already exists", rn_core_stream_name(st), r->group);
  char msg[200];
  rn_err_t err = check_start(r->start_kind, r->start_value, msg, sizeof(msg));
  if (err) return reply_err(cb, ctx, err, "%s", msg);
  group_t *g = group_create(gs, st, r->group, r->start_kind, r->start_value);
  pending_reply_t *p = pending_new(cb, ctx, st, r->group, PR_CREATE);
  err = append_state(gs, g, true, on_state_durable, p);
  if (err) {
    group_remove(gs, g);
    pending_free(p);
    reply_err(cb, ctx, err, "group %s/%s: cannot write the group's state: %s", rn_core_stream_name(st), r->group, rn_strerror(err));
  }
}

void rn_groups_delete(rn_groups_t *gs, const char *stream, const char *group, rn_group_reply_cb cb, void *ctx) {
  rn_core_stream_t *st = find_stream(gs->core, stream, cb, ctx);
  if (!st || !check_group_name(group, cb, ctx)) return;
  group_t *g = group_find(gs, rn_core_stream_name(st), rn_core_stream_uid(st), group);
  if (!g) return reply_err(cb, ctx, RN_ENOGROUP, "group %s/%s not found", rn_core_stream_name(st), group);
  if (g->nmembers)
    return reply_err(cb, ctx, RN_EGROUPACTIVE, "group %s/%s has %u member(s); stop them first", rn_core_stream_name(st), group,
                     g->nmembers);
  Runnel__GroupState s;
  runnel__group_state__init(&s);
  fill_state_keys(&s, g);
  Runnel__GroupEvent ev;
  runnel__group_event__init(&ev);
  ev.ev_case = RUNNEL__GROUP_EVENT__EV_REMOVE;
  ev.remove = &s;
  pending_reply_t *p = pending_new(cb, ctx, st, group, PR_DELETE);
  rn_err_t err = event_append(gs, &ev, on_state_durable, p);
  if (err) {
    pending_free(p);
    return reply_err(cb, ctx, err, "group %s/%s: cannot write the deletion: %s", rn_core_stream_name(st), group, rn_strerror(err));
  }
  rn_core_log(gs->core, RN_LVL_INFO, "group %s/%s deleted", rn_core_stream_name(st), group);
  group_remove(gs, g);
}

void rn_groups_reset(rn_groups_t *gs, const rn_group_reset_req_t *r, rn_group_reply_cb cb, void *ctx) {
  rn_core_stream_t *st = find_stream(gs->core, r->stream, cb, ctx);
  if (!st || !check_group_name(r->group, cb, ctx)) return;
  char msg[200];
  rn_err_t err = 0;
  if (r->kind == RN_GROUP_POS_OFFSET) {
    if (r->value < 0) return reply_err(cb, ctx, RN_EINVAL, "offset must be >= 0");
  } else {
    err = check_start(r->kind, r->value, msg, sizeof(msg));
    if (err) return reply_err(cb, ctx, err, "%s", msg);
  }
  for (size_t i = 0; i < r->n_shards; i++)
    if (r->shards[i] >= rn_core_stream_nshards(st))
      return reply_err(cb, ctx, RN_ENOSHARD, "stream %s has no shard %u", rn_core_stream_name(st), r->shards[i]);
  group_t *g = group_find(gs, rn_core_stream_name(st), rn_core_stream_uid(st), r->group);
  bool created = false;
  if (g && g->nmembers)
    return reply_err(cb, ctx, RN_EGROUPACTIVE, "group %s/%s has %u member(s); reset only works on a group without members",
                     rn_core_stream_name(st), r->group, g->nmembers);
  if (!g) {
    g = group_create(gs, st, r->group, RN_GROUP_POS_LATEST, 0);
    created = true;
  }
  /* Offsets past a shard's end are clamped to it. */
  for (uint32_t s = 0; s < rn_core_stream_nshards(st); s++) {
    bool pick = r->n_shards == 0;
    for (size_t i = 0; i < r->n_shards && !pick; i++) pick = r->shards[i] == s;
    if (!pick) continue;
    int64_t v = r->value;
    if (r->kind == RN_GROUP_POS_OFFSET) {
      uint64_t end = rn_core_shard_end_offset(rn_core_stream_shard(st, s));
      if ((uint64_t)v > end) v = (int64_t)end;
    }
    set_position(g, s, r->kind, v);
  }
  pending_reply_t *p = pending_new(cb, ctx, st, r->group, PR_RESET);
  err = append_state(gs, g, created, on_state_durable, p);
  if (err) {
    pending_free(p);
    reply_err(cb, ctx, err, "group %s/%s: cannot write the reset: %s (memory and disk may differ until restart)",
              rn_core_stream_name(st), r->group, rn_strerror(err));
  }
}

/* ---- metrics ---------------------------------------------------------------------------- */

void rn_groups_foreach_shard(const rn_groups_t *gs, rn_groups_shard_stats_fn fn, void *arg) {
  if (!gs) return;
  int64_t now = now_ms(gs);
  for (uint32_t i = 0; i < gs->ngroups; i++) {
    const group_t *g = gs->groups[i];
    if (rn_core_stream_state(g->st) != RN_CORE_STREAM_ACTIVE) continue;
    for (uint32_t s = 0; s < rn_core_stream_nshards(g->st); s++) {
      lag_t l = shard_lag(g, s, now);
      rn_groups_shard_stats_t st = {g->stream, g->name, s, g->nmembers, gsh_of(g, s)->ckpt, l.records, l.ms,
                                    l.known_pos};
      fn(arg, &st);
    }
  }
}
