/*
 * group.c — consumer groups in the broker: membership (join, heartbeat,
 * leave, session expiry), the assignment (group_assign.c) applied with
 * revoke-before-reassign, member epochs that fence stale commits, durable
 * checkpoints and lag. docs/groups.md describes the behaviour; the wire
 * messages are in proto/runnel.proto.
 *
 * State: in memory, per group: members and, per shard, the holder, the
 * target member and the checkpoint. Checkpoints, creates and deletes are
 * GroupEvent records in an internal log (<data_dir>/groups/log, an rn_log_t
 * in sync mode on the engine's rn_io_t: one fdatasync covers every commit
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
 * private buffer).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "core_int.h"
#include "engine.h"
#include "group_assign.h"
#include "runnel/batch.h"
#include "runnel/keys.h"

#define DEFAULT_SESSION_MS 10000u
#define MIN_SESSION_MS 500u
#define MAX_SESSION_MS 600000u

typedef struct gmember {
  char *id;
  char *client_id;
  uint32_t epoch;
  uint32_t session_ms;
  uint64_t last_seen; /* uv_now */
  uint32_t *held;     /* shards sent in the last answer (sorted) */
  uint32_t nheld;
  uint32_t pending;
} gmember_t;

typedef struct gshard {
  gmember_t *owner;     /* holds it (granted, not yet released) */
  uint32_t owner_since; /* owner's epoch when granted */
  gmember_t *target;    /* the assignment */
  uint64_t revoke_since; /* uv_now when owner != target was first seen; 0 = not revoking */
  bool has_ckpt;
  uint64_t ckpt;
  int64_t arrival_ms;
  int64_t commit_ms;
  int64_t at_ts; /* != 0: start at this time, no offset yet */
  /* Time lag: the broker arrival time of the batch holding offset
   * lag_from, read off the loop (lag jobs below). lag_from == LAG_NONE:
   * nothing read yet. lag_bad_from: an offset whose read failed (not
   * retried until the position moves). */
  uint64_t lag_from, lag_bad_from;
  int64_t lag_arrival;
} gshard_t;

#define LAG_NONE UINT64_MAX

typedef struct group {
  char *stream;
  uint64_t uid;
  rn_stream_t *st; /* valid while the group exists (dropped with the stream) */
  char *name;
  Runnel__PositionKind start_kind;
  int64_t start_value;
  int64_t created_ms;
  gmember_t **members;
  uint32_t nmembers, members_cap;
  gshard_t *shards; /* st->nshards */
  bool dirty;       /* membership changed: recompute targets */
} group_t;

struct rn__groups {
  rn_engine_t *eng;
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
  char *d = strdup(s ? s : "");
  if (!d) abort();
  return d;
}

static void *xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz);
  if (!p) abort();
  return p;
}

static void reply_err(rn_engine_reply_cb cb, void *ctx, rn_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_err(rn_engine_reply_cb cb, void *ctx, rn_err_t err, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  Runnel__Response resp;
  runnel__response__init(&resp);
  Runnel__Error e;
  runnel__error__init(&e);
  rn_engine_error(&e, err, msg);
  resp.error = &e;
  cb(ctx, &resp);
}

static group_t *group_find(rn__groups_t *gs, const char *stream, uint64_t uid, const char *name) {
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
  free(g->members);
  free(g->shards);
  free(g->stream);
  free(g->name);
  free(g);
}

static group_t *group_add(rn__groups_t *gs, rn_stream_t *st, const char *name) {
  group_t *g = xcalloc(1, sizeof(*g));
  g->stream = xstrdup(st->name);
  g->uid = st->uid;
  g->st = st;
  g->name = xstrdup(name);
  g->shards = xcalloc(st->nshards, sizeof(*g->shards));
  for (uint32_t s = 0; s < st->nshards; s++) g->shards[s].lag_from = g->shards[s].lag_bad_from = LAG_NONE;
  if (gs->ngroups == gs->cap) {
    gs->cap = gs->cap ? gs->cap * 2 : 8;
    gs->groups = realloc(gs->groups, gs->cap * sizeof(*gs->groups));
    if (!gs->groups) abort();
  }
  gs->groups[gs->ngroups++] = g;
  return g;
}

static void group_remove(rn__groups_t *gs, group_t *g) {
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
  for (uint32_t s = 0; s < g->st->nshards; s++) {
    if (g->shards[s].owner == m) g->shards[s].owner = NULL;
    if (g->shards[s].target == m) g->shards[s].target = NULL;
  }
  for (uint32_t i = 0; i < g->nmembers; i++)
    if (g->members[i] == m) {
      memmove(g->members + i, g->members + i + 1, (g->nmembers - i - 1) * sizeof(*g->members));
      g->nmembers--;
      break;
    }
  member_free(m);
  g->dirty = true;
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
  const rn_shard_t *sh = &g->st->shards[s];
  const gshard_t *gsh = &g->shards[s];
  lag_t l = {0};
  l.start = sh->log ? rn_log_start(sh->log) : 0;
  l.end = sh->log ? rn_log_end(sh->log) : 0;
  l.known_pos = gsh->has_ckpt && !gsh->at_ts;
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
  const gshard_t *gsh = &g->shards[s];
  return l->known_pos && l->records > 0 && gsh->lag_from != l->from && gsh->lag_bad_from != l->from &&
         g->st->shards[s].log != NULL;
}

typedef struct lag_part {
  rn_stream_t *st; /* referenced (st->refs) until the job is done */
  char *group;     /* looked up again at the end: it may be gone */
  uint32_t shard;
  uint64_t offset;
  rn_log_span_t span;
  int64_t arrival;
  rn_err_t err;
} lag_part_t;

typedef struct lag_job {
  uv_work_t work;
  rn__groups_t *gs;
  bool tick; /* the tick's job (gs->lag_refreshing) */
  /* a describe waiting for the reads (cb NULL: none) */
  rn_engine_reply_cb cb;
  void *ctx;
  rn_stream_t *st; /* the described group's stream (one of the parts' refs) */
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

static Runnel__GroupDescription *describe(rn__arena_t *a, const group_t *g);
static void set_heartbeat_ages(rn_engine_t *eng, const group_t *g, Runnel__GroupDescription *d);

static void reply_describe(rn__groups_t *gs, const group_t *g, rn_engine_reply_cb cb, void *ctx) {
  rn__arena_t a = {0};
  Runnel__Response resp;
  runnel__response__init(&resp);
  Runnel__GroupDescribeResponse dr;
  runnel__group_describe_response__init(&dr);
  dr.group = describe(&a, g);
  set_heartbeat_ages(gs->eng, g, dr.group);
  resp.op_case = RUNNEL__RESPONSE__OP_GROUP_DESCRIBE;
  resp.group_describe = &dr;
  cb(ctx, &resp);
  rn__arena_free(&a);
}

/* Loop thread: release the spans, store the arrival times that still
 * match the groups' positions, answer the waiting describe. */
static void lag_after(uv_work_t *w, int status) {
  lag_job_t *j = w->data;
  rn__groups_t *gs = j->gs;
  rn_engine_t *eng = gs->eng;
  int64_t now = rn__now_ms();
  for (size_t i = 0; i < j->n; i++) {
    lag_part_t *p = &j->parts[i];
    rn_shard_t *sh = &p->st->shards[p->shard];
    if (p->span.seg && sh->log) rn_log_span_release(sh->log, &p->span);
    if (status && !p->err) p->err = RN_EIO;
    group_t *g = p->st->state == RN__STREAM_ACTIVE ? group_find(gs, p->st->name, p->st->uid, p->group) : NULL;
    if (g && p->shard < g->st->nshards) {
      gshard_t *gsh = &g->shards[p->shard];
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
    group_t *g = j->st->state == RN__STREAM_ACTIVE ? group_find(gs, j->st->name, j->st->uid, j->group) : NULL;
    if (g)
      reply_describe(gs, g, j->cb, j->ctx);
    else
      reply_err(j->cb, j->ctx, RN_ENOGROUP, "group %s/%s was deleted", j->st->name, j->group);
  }
  if (j->tick) gs->lag_refreshing = false;
  for (size_t i = 0; i < j->n; i++) {
    free(j->parts[i].group);
    rn__stream_unref(eng, j->parts[i].st);
  }
  free(j->parts);
  free(j->group);
  free(j);
  eng->pending_work--;
}

/* Add a read of g's shard s at l->from to j (plans it on the loop). */
static void lag_job_add(lag_job_t *j, group_t *g, uint32_t s, const lag_t *l) {
  if (j->n == j->cap) {
    j->cap = j->cap ? j->cap * 2 : 8;
    j->parts = realloc(j->parts, j->cap * sizeof(*j->parts));
    if (!j->parts) abort();
  }
  lag_part_t *p = &j->parts[j->n++];
  memset(p, 0, sizeof(*p));
  p->st = g->st;
  p->st->refs++;
  p->group = xstrdup(g->name);
  p->shard = s;
  p->offset = l->from;
  p->err = rn_log_span_plan(g->st->shards[s].log, l->from, &p->span);
}

/* Read what j plans; lag_after runs in any case (also when nothing is to
 * be read or the pool refuses). Takes j. */
static void lag_job_start(rn__groups_t *gs, lag_job_t *j) {
  gs->eng->pending_work++;
  j->work.data = j;
  if (j->n == 0 || uv_queue_work(gs->eng->loop, &j->work, lag_work, lag_after) != 0) lag_after(&j->work, j->n ? UV_EIO : 0);
}

/* The tick: one job for every stale position, at most one job at a time. */
static void lag_refresh(rn__groups_t *gs) {
  if (gs->lag_refreshing) return;
  lag_job_t *j = NULL;
  int64_t now = rn__now_ms();
  for (uint32_t i = 0; i < gs->ngroups; i++) {
    group_t *g = gs->groups[i];
    if (g->st->state != RN__STREAM_ACTIVE) continue;
    for (uint32_t s = 0; s < g->st->nshards; s++) {
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

typedef void (*event_done_fn)(rn__groups_t *gs, void *arg, rn_err_t err);

typedef struct event_job {
  rn__groups_t *gs;
  event_done_fn done;
  void *arg;
} event_job_t;

static void on_event_durable(void *arg, rn_err_t err, uint64_t base) {
  (void)base;
  event_job_t *j = arg;
  rn__groups_t *gs = j->gs;
  gs->inflight--;
  gs->eng->pending_work--;
  j->done(gs, j->arg, err);
  free(j);
}

/* Append one event; done runs when it is durable (or failed). Returns 0
 * (done will run) or an error (done will not). */
static rn_err_t event_append(rn__groups_t *gs, const Runnel__GroupEvent *ev, event_done_fn done, void *arg) {
  size_t n = runnel__group_event__get_packed_size(ev);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return RN_ENOMEM;
  runnel__group_event__pack(ev, buf);
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  rn_record_t rec = {0};
  rec.timestamp = rn__now_ms();
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
    gs->eng->pending_work++;
  }
  return err;
}

static void fill_state_keys(Runnel__GroupState *s, const group_t *g) {
  s->stream = g->stream;
  s->stream_uid = g->uid;
  s->group = g->name;
}

/* Checkpoint messages of every shard of g into arrays from the arena. */
static void fill_state_ckpts(rn__arena_t *a, Runnel__GroupState *s, const group_t *g) {
  uint32_t n = g->st->nshards;
  s->checkpoints = rn__arena_alloc(a, n * sizeof(*s->checkpoints));
  for (uint32_t i = 0; i < n; i++) {
    const gshard_t *gsh = &g->shards[i];
    if (!gsh->has_ckpt) continue;
    Runnel__GroupCheckpointState *c = rn__arena_alloc(a, sizeof(*c));
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
  if (c->shard >= g->st->nshards) return;
  gshard_t *gsh = &g->shards[c->shard];
  gsh->has_ckpt = true;
  gsh->ckpt = c->offset;
  gsh->arrival_ms = c->arrival_ms;
  gsh->commit_ms = c->commit_ms;
  gsh->at_ts = c->at_timestamp;
}

/* Apply one replayed event (or a snapshot entry as a create). */
static void apply_event(rn__groups_t *gs, const Runnel__GroupEvent *ev) {
  const Runnel__GroupState *s = ev->create ? ev->create : ev->checkpoints ? ev->checkpoints : ev->remove;
  if (!s || !s->stream || !s->group) return;
  rn_stream_t *st = rn__stream_find(gs->eng, s->stream);
  if (!st || st->uid != s->stream_uid) return; /* the stream is gone */
  group_t *g = group_find(gs, s->stream, s->stream_uid, s->group);
  switch (ev->ev_case) {
  case RUNNEL__GROUP_EVENT__EV_CREATE:
    if (!g) g = group_add(gs, st, s->group);
    g->start_kind = s->start_kind;
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
  rn__groups_t *gs;
  uint8_t *buf;
  size_t len;
  uint64_t offset;
  rn_err_t err;
} snap_job_t;

static void snap_work(uv_work_t *w) {
  snap_job_t *j = w->data;
  j->err = rn_fs_write_atomic(rn_fs_posix(), j->gs->dir, "snapshot", j->buf, j->len);
}

static void snap_after(uv_work_t *w, int status) {
  (void)status;
  snap_job_t *j = w->data;
  rn__groups_t *gs = j->gs;
  gs->eng->pending_work--;
  gs->snap_active = false;
  if (j->err) {
    rn__eng_say(gs->eng, RN_LOG_WARN, "groups: writing the checkpoint snapshot failed: %s (the log keeps everything)",
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
static rn_err_t snapshot_pack(rn__groups_t *gs, uint64_t offset, uint8_t **buf, size_t *len) {
  rn__arena_t a = {0};
  Runnel__GroupsSnapshot snap;
  runnel__groups_snapshot__init(&snap);
  snap.log_offset = offset;
  snap.groups = rn__arena_alloc(&a, (gs->ngroups + 1) * sizeof(*snap.groups));
  for (uint32_t i = 0; i < gs->ngroups; i++) {
    const group_t *g = gs->groups[i];
    Runnel__GroupState *s = rn__arena_alloc(&a, sizeof(*s));
    runnel__group_state__init(s);
    fill_state_keys(s, g);
    s->start_kind = g->start_kind;
    s->start_value = g->start_value;
    s->created_ms = g->created_ms;
    fill_state_ckpts(&a, s, g);
    snap.groups[snap.n_groups++] = s;
  }
  *len = runnel__groups_snapshot__get_packed_size(&snap);
  *buf = malloc(*len ? *len : 1);
  if (*buf) runnel__groups_snapshot__pack(&snap, *buf);
  rn__arena_free(&a);
  return *buf ? 0 : RN_ENOMEM;
}

static void maybe_compact(rn__groups_t *gs) {
  if (gs->snap_offset) rn_log_delete_below(gs->log, gs->snap_offset);
  /* Compact when the log holds more than two segments' worth. */
  if (gs->snap_active || gs->inflight || rn_log_size_bytes(gs->log) < 2 * gs->eng->opts.group_segment_bytes) return;
  uint64_t offset = rn_log_end(gs->log); /* nothing in flight: every event below is applied */
  if (offset <= gs->snap_offset) return;
  snap_job_t *j = calloc(1, sizeof(*j));
  if (!j) return;
  j->gs = gs;
  j->offset = offset;
  j->work.data = j;
  if (snapshot_pack(gs, offset, &j->buf, &j->len) || uv_queue_work(gs->eng->loop, &j->work, snap_work, snap_after)) {
    free(j->buf);
    free(j);
    return;
  }
  gs->snap_active = true;
  gs->eng->pending_work++;
}

/* ---- open / close ------------------------------------------------------------------------ */

static void log_logger(void *arg, rn_log_level_t level, const char *msg) {
  rn__eng_say(arg, level, "groups: %s", msg);
}

static rn_err_t load_snapshot(rn__groups_t *gs, char *why, size_t whylen) {
  char path[4200];
  snprintf(path, sizeof(path), "%s/snapshot", gs->dir);
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  struct stat sb;
  if (fstat(fileno(f), &sb)) {
    fclose(f);
    snprintf(why, whylen, "cannot stat %s", path);
    return RN_EIO;
  }
  uint8_t *buf = malloc(sb.st_size ? (size_t)sb.st_size : 1);
  size_t got = buf ? fread(buf, 1, (size_t)sb.st_size, f) : 0;
  fclose(f);
  Runnel__GroupsSnapshot *snap = buf && got == (size_t)sb.st_size ? runnel__groups_snapshot__unpack(NULL, got, buf) : NULL;
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

static rn_err_t replay(rn__groups_t *gs, char *why, size_t whylen) {
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
    err = rn_log_read(gs->log, off, buf, cap, &len);
    if (err == RN_ETOOLARGE) {
      uint8_t *nb = realloc(buf, len);
      if (!nb) {
        err = RN_ENOMEM;
        break;
      }
      buf = nb;
      cap = len;
      err = 0;
      continue;
    }
    if (err || len == 0) break;
    size_t pos = 0;
    while (pos < len && !err) {
      rn_batch_header_t h;
      err = rn_batch_header_decode(buf + pos, len - pos, &h);
      if (err) break;
      rn_batch_iter_t it;
      err = rn_batch_iter_init(&it, buf + pos, h.batch_length);
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

rn_err_t rn__groups_open(rn_engine_t *eng, char *why, size_t whylen) {
  rn__groups_t *gs = xcalloc(1, sizeof(*gs));
  gs->eng = eng;
  size_t n = strlen(eng->data_dir) + 16;
  gs->dir = xcalloc(n, 1);
  snprintf(gs->dir, n, "%s/groups", eng->data_dir);
  gs->nonce = XXH3_64bits_withSeed(gs->dir, strlen(gs->dir), (uint64_t)rn__now_ms() ^ ((uint64_t)getpid() << 32));
  rn_err_t err = rn_fs_posix()->mkdirs(rn_fs_posix(), gs->dir);
  if (err) {
    snprintf(why, whylen, "cannot create %s: %s", gs->dir, rn_strerror(err));
    goto fail;
  }
  rn_log_opts_t lo;
  rn_log_opts_default(&lo);
  lo.durability = RN_DURABILITY_SYNC;
  lo.segment_bytes = eng->opts.group_segment_bytes ? eng->opts.group_segment_bytes : (4u << 20);
  lo.logger = log_logger;
  lo.logger_arg = eng;
  char logdir[4200];
  snprintf(logdir, sizeof(logdir), "%s/log", gs->dir);
  rn_log_recovery_t rec;
  err = rn_log_open(eng->io, logdir, &lo, &gs->log, &rec);
  if (err) {
    snprintf(why, whylen, "groups: checkpoint log %s: %s", logdir, rec.message[0] ? rec.message : rn_strerror(err));
    goto fail;
  }
  err = load_snapshot(gs, why, whylen);
  if (!err) err = replay(gs, why, whylen);
  if (err) goto fail;
  eng->groups = gs;
  if (gs->ngroups) rn__eng_say(eng, RN_LOG_INFO, "groups: %u consumer group(s) loaded", gs->ngroups);
  return 0;
fail:
  if (gs->log) rn_log_close(gs->log);
  while (gs->ngroups) group_remove(gs, gs->groups[0]);
  free(gs->groups);
  free(gs->dir);
  free(gs);
  return err;
}

rn_err_t rn__groups_close(rn_engine_t *eng) {
  rn__groups_t *gs = eng->groups;
  if (!gs) return 0;
  rn_err_t err = rn_log_close(gs->log);
  while (gs->ngroups) group_remove(gs, gs->groups[0]);
  free(gs->groups);
  free(gs->dir);
  free(gs);
  eng->groups = NULL;
  return err;
}

void rn__groups_stream_deleted(rn_engine_t *eng, rn_stream_t *st) {
  rn__groups_t *gs = eng->groups;
  if (!gs) return;
  for (uint32_t i = 0; i < gs->ngroups;) {
    group_t *g = gs->groups[i];
    if (g->st == st) {
      group_remove(gs, g); /* replay drops groups of streams that no longer exist */
    } else {
      i++;
    }
  }
}

/* Remove the members of g whose session ran out. */
/* Remove the members of g whose session ran out, and fence a member that
 * kept a revoked shard (still heartbeating, never releasing it) for longer
 * than its session timeout: otherwise one stuck member could hold a shard
 * back from its new owner forever. */
static void expire_members(rn__groups_t *gs, group_t *g, uint64_t now) {
  for (uint32_t k = 0; k < g->nmembers;) {
    gmember_t *m = g->members[k];
    if (now - m->last_seen > m->session_ms) {
      rn__eng_say(gs->eng, RN_LOG_INFO, "group %s/%s: member %s expired (no heartbeat for %u ms); its shards are free",
                  g->stream, g->name, m->id, m->session_ms);
      member_remove(g, m);
    } else {
      k++;
    }
  }
  for (uint32_t s = 0; s < g->st->nshards; s++) {
    gshard_t *gsh = &g->shards[s];
    if (!gsh->owner || gsh->owner == gsh->target) {
      gsh->revoke_since = 0;
      continue;
    }
    if (!gsh->revoke_since) {
      gsh->revoke_since = now ? now : 1;
    } else if (now - gsh->revoke_since > gsh->owner->session_ms) {
      gmember_t *m = gsh->owner;
      rn__eng_say(gs->eng, RN_LOG_WARN,
                  "group %s/%s: member %s did not release shard %u within its session timeout (%u ms) after it was "
                  "revoked; fencing the member",
                  g->stream, g->name, m->id, s, m->session_ms);
      member_remove(g, m); /* clears its shards (revoke_since reset on the next pass) */
      s = (uint32_t)-1;    /* rescan: member_remove changed owners */
    }
  }
}

void rn__groups_tick(rn_engine_t *eng) {
  rn__groups_t *gs = eng->groups;
  if (!gs) return;
  uint64_t now = uv_now(eng->loop);
  for (uint32_t i = 0; i < gs->ngroups; i++) expire_members(gs, gs->groups[i], now);
  rn_log_tick(gs->log, rn__now_ms());
  maybe_compact(gs);
  lag_refresh(gs);
}

/* ---- assignment ---------------------------------------------------------------------- */

static void recompute(group_t *g) {
  uint32_t n = g->st->nshards, m = g->nmembers;
  rn_ga_shard_t *in = xcalloc(n, sizeof(*in));
  int32_t *target = xcalloc(n, sizeof(*target));
  double *scratch = xcalloc(2 * (size_t)m + 1, sizeof(*scratch));
  for (uint32_t s = 0; s < n; s++) {
    gmember_t *pref = g->shards[s].owner ? g->shards[s].owner : g->shards[s].target;
    in[s].prefer = -1;
    for (uint32_t k = 0; k < m && pref; k++)
      if (g->members[k] == pref) in[s].prefer = (int32_t)k;
    in[s].weight = (double)g->st->shards[s].metrics.bytes_in;
    /* No resharding yet: no parents, nothing closed. */
  }
  rn_group_assign(in, n, m, target, scratch);
  for (uint32_t s = 0; s < n; s++) g->shards[s].target = target[s] >= 0 ? g->members[target[s]] : NULL;
  free(in);
  free(target);
  free(scratch);
  g->dirty = false;
}

/* Where a member starts reading shard s. */
static void start_position(const group_t *g, uint32_t s, Runnel__GroupShardAssignment *a) {
  const gshard_t *gsh = &g->shards[s];
  const rn_log_t *log = g->st->shards[s].log;
  a->shard = s;
  if (gsh->has_ckpt && gsh->at_ts) {
    a->kind = RUNNEL__POSITION_KIND__POSITION_TIMESTAMP;
    a->value = gsh->at_ts;
  } else {
    uint64_t off = gsh->has_ckpt ? gsh->ckpt : 0, lo = log ? rn_log_start(log) : 0, hi = log ? rn_log_end(log) : 0;
    if (off < lo) off = lo;
    if (off > hi) off = hi; /* records lost with durability none: do not wait for offsets past the end */
    a->kind = RUNNEL__POSITION_KIND__POSITION_OFFSET;
    a->value = (int64_t)off;
  }
}

/* ---- create ---------------------------------------------------------------------------- */

static rn_err_t check_start(Runnel__PositionKind kind, int64_t value, char *msg, size_t n) {
  switch (kind) {
  case RUNNEL__POSITION_KIND__POSITION_EARLIEST:
  case RUNNEL__POSITION_KIND__POSITION_LATEST: return 0;
  case RUNNEL__POSITION_KIND__POSITION_TIMESTAMP:
    if (value > 0) return 0;
    snprintf(msg, n, "a group starting at a timestamp needs a time > 0 (ms since the epoch)");
    return RN_EINVAL;
  default: snprintf(msg, n, "a group starts at EARLIEST, LATEST or TIMESTAMP"); return RN_EINVAL;
  }
}

/* Set shard s's checkpoint to a position (create, reset). */
static void set_position(group_t *g, uint32_t s, Runnel__PositionKind kind, int64_t value) {
  gshard_t *gsh = &g->shards[s];
  const rn_log_t *log = g->st->shards[s].log;
  gsh->has_ckpt = true;
  gsh->arrival_ms = 0;
  gsh->commit_ms = 0;
  gsh->at_ts = 0;
  switch (kind) {
  case RUNNEL__POSITION_KIND__POSITION_LATEST: gsh->ckpt = log ? rn_log_end(log) : 0; break;
  case RUNNEL__POSITION_KIND__POSITION_TIMESTAMP:
    gsh->ckpt = 0;
    gsh->at_ts = value;
    break;
  case RUNNEL__POSITION_KIND__POSITION_OFFSET: gsh->ckpt = (uint64_t)value; break;
  default: gsh->ckpt = 0; break; /* earliest: clamped to the log start when handed out */
  }
}

static group_t *group_create(rn__groups_t *gs, rn_stream_t *st, const char *name, Runnel__PositionKind kind,
                             int64_t value) {
  group_t *g = group_add(gs, st, name);
  g->start_kind = kind;
  g->start_value = value;
  g->created_ms = rn__now_ms();
  for (uint32_t s = 0; s < st->nshards; s++) set_position(g, s, kind, value);
  rn__eng_say(gs->eng, RN_LOG_INFO, "group %s/%s created (starts at %s)", st->name, name,
              kind == RUNNEL__POSITION_KIND__POSITION_LATEST     ? "latest"
              : kind == RUNNEL__POSITION_KIND__POSITION_EARLIEST ? "earliest"
                                                                 : "a timestamp");
  return g;
}

/* Event that writes g's whole state (create) or its checkpoints (reset). */
static rn_err_t append_state(rn__groups_t *gs, group_t *g, bool create, event_done_fn done, void *arg) {
  rn__arena_t a = {0};
  Runnel__GroupState s;
  runnel__group_state__init(&s);
  fill_state_keys(&s, g);
  s.start_kind = g->start_kind;
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
  rn__arena_free(&a);
  return err;
}

/* A request answered when its event is durable. */
typedef struct pending_reply {
  rn_engine_reply_cb cb;
  void *ctx;
  rn_stream_t *st; /* referenced */
  char *group;
  uint64_t uid;
  int kind; /* what to answer */
  Runnel__GroupHeartbeatRequest *hb; /* join: the request, replayed once durable */
} pending_reply_t;

enum { PR_CREATE, PR_JOIN, PR_DELETE, PR_RESET, PR_COMMIT };

static pending_reply_t *pending_new(rn_engine_reply_cb cb, void *ctx, rn_stream_t *st, const char *group, int kind) {
  pending_reply_t *p = xcalloc(1, sizeof(*p));
  p->cb = cb;
  p->ctx = ctx;
  p->st = st;
  st->refs++;
  p->group = xstrdup(group);
  p->uid = st->uid;
  p->kind = kind;
  return p;
}

static void pending_free(rn_engine_t *eng, pending_reply_t *p) {
  if (p->hb) runnel__group_heartbeat_request__free_unpacked(p->hb, NULL);
  rn__stream_unref(eng, p->st);
  free(p->group);
  free(p);
}

/* A copy of a borrowed join request, replayed once the group's create is
 * durable (pack and unpack: one owned allocation tree). */
static Runnel__GroupHeartbeatRequest *copy_heartbeat(const Runnel__GroupHeartbeatRequest *r) {
  size_t n = runnel__group_heartbeat_request__get_packed_size(r);
  uint8_t *b = malloc(n ? n : 1);
  if (!b) abort();
  runnel__group_heartbeat_request__pack(r, b);
  Runnel__GroupHeartbeatRequest *c = runnel__group_heartbeat_request__unpack(NULL, n, b);
  free(b);
  if (!c) abort();
  return c;
}

static void heartbeat_now(rn__groups_t *gs, const Runnel__GroupHeartbeatRequest *r, rn_engine_reply_cb cb, void *ctx);
static Runnel__GroupDescription *describe(rn__arena_t *a, const group_t *g);

static void on_state_durable(rn__groups_t *gs, void *arg, rn_err_t err) {
  pending_reply_t *p = arg;
  group_t *g = group_find(gs, p->st->name, p->uid, p->group);
  if (err) {
    /* A group whose create did not become durable must not linger. */
    if (g && (p->kind == PR_CREATE || p->kind == PR_JOIN) && g->nmembers == 0) group_remove(gs, g);
    reply_err(p->cb, p->ctx, err, "group %s/%s: writing the group's state failed: %s", p->st->name, p->group,
              rn_strerror(err));
  } else if (p->kind == PR_JOIN) {
    if (p->st->state != RN__STREAM_ACTIVE)
      reply_err(p->cb, p->ctx, RN_ENOSTREAM, "stream %s not found", p->st->name);
    else
      heartbeat_now(gs, p->hb, p->cb, p->ctx);
  } else if (p->kind == PR_CREATE || p->kind == PR_DELETE) {
    Runnel__Response resp;
    runnel__response__init(&resp);
    Runnel__GroupCreateResponse cr;
    runnel__group_create_response__init(&cr);
    Runnel__GroupDeleteResponse dr;
    runnel__group_delete_response__init(&dr);
    if (p->kind == PR_CREATE) {
      resp.op_case = RUNNEL__RESPONSE__OP_GROUP_CREATE;
      resp.group_create = &cr;
    } else {
      resp.op_case = RUNNEL__RESPONSE__OP_GROUP_DELETE;
      resp.group_delete = &dr;
    }
    p->cb(p->ctx, &resp);
  } else if (p->kind == PR_RESET) {
    if (!g) {
      reply_err(p->cb, p->ctx, RN_ENOGROUP, "group %s/%s was deleted meanwhile", p->st->name, p->group);
    } else {
      rn__arena_t a = {0};
      Runnel__Response resp;
      runnel__response__init(&resp);
      Runnel__GroupResetResponse rr;
      runnel__group_reset_response__init(&rr);
      rr.group = describe(&a, g);
      resp.op_case = RUNNEL__RESPONSE__OP_GROUP_RESET;
      resp.group_reset = &rr;
      p->cb(p->ctx, &resp);
      rn__arena_free(&a);
    }
  }
  pending_free(gs->eng, p);
}

/* ---- request checks ---------------------------------------------------------------- */

static rn_stream_t *find_stream(rn_engine_t *eng, const char *name, rn_engine_reply_cb cb, void *ctx) {
  rn_stream_t *st = name ? rn__stream_find(eng, name) : NULL;
  if (!st || st->state != RN__STREAM_ACTIVE) {
    if (st && st->state == RN__STREAM_CREATING)
      reply_err(cb, ctx, RN_EBUSY, "stream %s is still being created", name);
    else
      reply_err(cb, ctx, RN_ENOSTREAM, "stream %s not found", name ? name : "");
    return NULL;
  }
  return st;
}

/* The group name rule is proto's (runnel/keys.h), the same at every entry. */
static bool check_group_name(const char *name, rn_engine_reply_cb cb, void *ctx) {
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

static void heartbeat_now(rn__groups_t *gs, const Runnel__GroupHeartbeatRequest *r, rn_engine_reply_cb cb, void *ctx) {
  rn_engine_t *eng = gs->eng;
  rn_stream_t *st = rn__stream_find(eng, r->stream);
  group_t *g = st ? group_find(gs, st->name, st->uid, r->group) : NULL;
  if (!g) return reply_err(cb, ctx, RN_ENOGROUP, "group %s/%s not found", r->stream, r->group);
  uv_update_time(eng->loop);
  uint64_t now = uv_now(eng->loop);
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
      g->members = realloc(g->members, g->members_cap * sizeof(*g->members));
      if (!g->members) abort();
    }
    g->members[g->nmembers++] = m;
    g->dirty = true;
    rn__eng_say(eng, RN_LOG_INFO, "group %s/%s: member %s joined (%u member(s))", g->stream, g->name, m->id,
                g->nmembers);
  } else {
    m = member_find(g, r->member_id);
    if (!m)
      return reply_err(cb, ctx, RN_EUNKNOWNMEMBER, "group %s/%s has no member %s (session expired or left): join again",
                       g->stream, g->name, r->member_id);
    if (r->leave) {
      rn__eng_say(eng, RN_LOG_INFO, "group %s/%s: member %s left", g->stream, g->name, m->id);
      member_remove(g, m);
      Runnel__Response resp;
      runnel__response__init(&resp);
      Runnel__GroupHeartbeatResponse hr;
      runnel__group_heartbeat_response__init(&hr);
      hr.member_id = r->member_id;
      resp.op_case = RUNNEL__RESPONSE__OP_GROUP_HEARTBEAT;
      resp.group_heartbeat = &hr;
      cb(ctx, &resp);
      return;
    }
  }
  m->last_seen = now;
  uint32_t n = st->nshards;
  /* Released: held by m before, missing from `owned` now. */
  bool *owned = xcalloc(n, sizeof(bool));
  for (size_t i = 0; i < r->n_owned; i++)
    if (r->owned[i] < n) owned[r->owned[i]] = true;
  for (uint32_t s = 0; s < n; s++)
    if (g->shards[s].owner == m && !owned[s]) g->shards[s].owner = NULL;
  free(owned);
  if (g->dirty) recompute(g);
  /* Grant free shards meant for m; list what m may hold. */
  uint32_t *list = xcalloc(n, sizeof(uint32_t)), nlist = 0, pending = 0;
  bool changed = false;
  for (uint32_t s = 0; s < n; s++) {
    gshard_t *gsh = &g->shards[s];
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

  rn__arena_t a = {0};
  Runnel__Response resp;
  runnel__response__init(&resp);
  Runnel__GroupHeartbeatResponse hr;
  runnel__group_heartbeat_response__init(&hr);
  hr.member_id = m->id;
  hr.member_epoch = m->epoch;
  hr.heartbeat_interval_ms = heartbeat_interval(g, m, now);
  hr.pending = pending;
  hr.assigned = rn__arena_alloc(&a, (m->nheld + 1) * sizeof(*hr.assigned));
  for (uint32_t i = 0; i < m->nheld; i++) {
    Runnel__GroupShardAssignment *as = rn__arena_alloc(&a, sizeof(*as));
    runnel__group_shard_assignment__init(as);
    start_position(g, m->held[i], as);
    hr.assigned[hr.n_assigned++] = as;
  }
  resp.op_case = RUNNEL__RESPONSE__OP_GROUP_HEARTBEAT;
  resp.group_heartbeat = &hr;
  cb(ctx, &resp);
  rn__arena_free(&a);
}

static void handle_heartbeat(rn__groups_t *gs, const Runnel__GroupHeartbeatRequest *r, rn_engine_reply_cb cb,
                             void *ctx) {
  if (!r) return reply_err(cb, ctx, RN_EBADREQUEST, "GroupHeartbeat without a body");
  rn_stream_t *st = find_stream(gs->eng, r->stream, cb, ctx);
  if (!st || !check_group_name(r->group, cb, ctx)) return;
  bool join = !r->member_id || !r->member_id[0];
  if (join && gs->eng->draining) return reply_err(cb, ctx, RN_ESHUTDOWN, "broker shutting down");
  group_t *g = group_find(gs, st->name, st->uid, r->group);
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
    pending_free(gs->eng, p);
    reply_err(cb, ctx, err, "group %s/%s: cannot write the group's state: %s", st->name, r->group, rn_strerror(err));
  }
}

/* ---- commit ---------------------------------------------------------------------------- */

typedef struct commit_job {
  pending_reply_t *p;
  int64_t commit_ms; /* as written to the log */
  uint32_t n;
  /* per checkpoint of the request, in request order: */
  struct {
    uint32_t shard;
    uint64_t offset;
    int64_t arrival_ms;
  } *cps;
  rn_err_t *errs; /* 0 = accepted (written to the log) */
  char **msgs;
} commit_job_t;

static void commit_reply(commit_job_t *cj) {
  pending_reply_t *p = cj->p;
  Runnel__Response resp;
  runnel__response__init(&resp);
  Runnel__GroupCommitResponse cr;
  runnel__group_commit_response__init(&cr);
  Runnel__ShardCommitResult *res = xcalloc(cj->n, sizeof(*res));
  Runnel__ShardCommitResult **ptrs = xcalloc(cj->n, sizeof(*ptrs));
  Runnel__Error *errs = xcalloc(cj->n, sizeof(*errs));
  for (uint32_t i = 0; i < cj->n; i++) {
    runnel__shard_commit_result__init(&res[i]);
    res[i].shard = cj->cps[i].shard;
    if (cj->errs[i]) {
      rn_engine_error(&errs[i], cj->errs[i], cj->msgs[i]);
      res[i].error = &errs[i];
    }
    ptrs[i] = &res[i];
  }
  cr.results = ptrs;
  cr.n_results = cj->n;
  resp.op_case = RUNNEL__RESPONSE__OP_GROUP_COMMIT;
  resp.group_commit = &cr;
  p->cb(p->ctx, &resp);
  free(res);
  free(ptrs);
  free(errs);
}

static void commit_job_free(rn_engine_t *eng, commit_job_t *cj) {
  for (uint32_t i = 0; i < cj->n; i++) free(cj->msgs[i]);
  free(cj->msgs);
  free(cj->errs);
  free(cj->cps);
  pending_free(eng, cj->p);
  free(cj);
}

static void on_commit_durable(rn__groups_t *gs, void *arg, rn_err_t err) {
  commit_job_t *cj = arg;
  pending_reply_t *p = cj->p;
  group_t *g = group_find(gs, p->st->name, p->uid, p->group);
  for (uint32_t i = 0; i < cj->n; i++) {
    if (cj->errs[i]) continue;
    if (err) {
      cj->errs[i] = err;
      if (asprintf(&cj->msgs[i], "writing the checkpoint failed: %s", rn_strerror(err)) < 0) cj->msgs[i] = NULL;
    } else if (g && cj->cps[i].shard < g->st->nshards) {
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
  commit_job_free(gs->eng, cj);
}

static void handle_commit(rn__groups_t *gs, const Runnel__GroupCommitRequest *r, rn_engine_reply_cb cb, void *ctx) {
  if (!r) return reply_err(cb, ctx, RN_EBADREQUEST, "GroupCommit without a body");
  rn_stream_t *st = find_stream(gs->eng, r->stream, cb, ctx);
  if (!st || !check_group_name(r->group, cb, ctx)) return;
  group_t *g = group_find(gs, st->name, st->uid, r->group);
  if (!g) return reply_err(cb, ctx, RN_ENOGROUP, "group %s/%s not found", st->name, r->group);
  gmember_t *m = r->member_id ? member_find(g, r->member_id) : NULL;
  if (!m)
    return reply_err(cb, ctx, RN_EUNKNOWNMEMBER, "group %s/%s has no member %s (session expired or left): join again",
                     st->name, r->group, r->member_id ? r->member_id : "");
  m->last_seen = uv_now(gs->eng->loop); /* a commit shows the member is alive */
  commit_job_t *cj = xcalloc(1, sizeof(*cj));
  cj->p = pending_new(cb, ctx, st, r->group, PR_COMMIT);
  cj->n = (uint32_t)r->n_checkpoints;
  cj->cps = xcalloc(cj->n, sizeof(*cj->cps));
  for (uint32_t i = 0; i < cj->n; i++) {
    cj->cps[i].shard = r->checkpoints[i]->shard;
    cj->cps[i].offset = r->checkpoints[i]->offset;
    cj->cps[i].arrival_ms = r->checkpoints[i]->arrival_ms;
  }
  cj->errs = xcalloc(cj->n, sizeof(*cj->errs));
  cj->msgs = xcalloc(cj->n, sizeof(*cj->msgs));
  rn__arena_t a = {0};
  Runnel__GroupState s;
  runnel__group_state__init(&s);
  fill_state_keys(&s, g);
  s.checkpoints = rn__arena_alloc(&a, (cj->n + 1) * sizeof(*s.checkpoints));
  int64_t now = rn__now_ms();
  cj->commit_ms = now;
  for (uint32_t i = 0; i < cj->n; i++) {
    const Runnel__ShardCheckpoint *c = r->checkpoints[i];
    rn_err_t e = 0;
    char *msg = NULL;
    if (c->shard >= st->nshards) {
      e = RN_ENOSHARD;
      if (asprintf(&msg, "stream %s has no shard %u", st->name, c->shard) < 0) msg = NULL;
    } else if (g->shards[c->shard].owner != m || r->member_epoch < g->shards[c->shard].owner_since ||
               r->member_epoch > m->epoch) {
      e = RN_EFENCED;
      if (asprintf(&msg, "member %s (epoch %u) does not hold shard %u of group %s/%s", m->id, r->member_epoch,
                   c->shard, st->name, r->group) < 0)
        msg = NULL;
    } else if (c->offset > rn_log_end(st->shards[c->shard].log)) {
      e = RN_EOFFSET;
      if (asprintf(&msg, "checkpoint %" PRIu64 " is past the end (%" PRIu64 ") of shard %u", c->offset,
                   rn_log_end(st->shards[c->shard].log), c->shard) < 0)
        msg = NULL;
    }
    cj->errs[i] = e;
    cj->msgs[i] = msg;
    if (e) continue;
    Runnel__GroupCheckpointState *cs = rn__arena_alloc(&a, sizeof(*cs));
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
  rn__arena_free(&a);
  if (!s.n_checkpoints || err) {
    for (uint32_t i = 0; i < cj->n && err; i++)
      if (!cj->errs[i]) {
        cj->errs[i] = err;
        if (asprintf(&cj->msgs[i], "writing the checkpoint failed: %s", rn_strerror(err)) < 0) cj->msgs[i] = NULL;
      }
    commit_reply(cj);
    commit_job_free(gs->eng, cj);
  }
}

/* ---- admin ------------------------------------------------------------------------------ */

static Runnel__GroupDescription *describe(rn__arena_t *a, const group_t *g) {
  Runnel__GroupDescription *d = rn__arena_alloc(a, sizeof(*d));
  runnel__group_description__init(d);
  d->stream = g->stream;
  d->group = g->name;
  d->start_kind = g->start_kind;
  d->start_value = g->start_value;
  d->created_ms = g->created_ms;
  d->members = rn__arena_alloc(a, (g->nmembers + 1) * sizeof(*d->members));
  for (uint32_t i = 0; i < g->nmembers; i++) {
    const gmember_t *m = g->members[i];
    Runnel__GroupMemberInfo *mi = rn__arena_alloc(a, sizeof(*mi));
    runnel__group_member_info__init(mi);
    mi->member_id = m->id;
    mi->client_id = m->client_id;
    mi->member_epoch = m->epoch;
    mi->session_timeout_ms = m->session_ms;
    mi->pending = m->pending;
    mi->shards = rn__arena_alloc(a, (g->st->nshards + 1) * sizeof(uint32_t));
    for (uint32_t s = 0; s < g->st->nshards; s++)
      if (g->shards[s].owner == m) mi->shards[mi->n_shards++] = s;
    d->members[d->n_members++] = mi;
  }
  d->shards = rn__arena_alloc(a, (g->st->nshards + 1) * sizeof(*d->shards));
  for (uint32_t s = 0; s < g->st->nshards; s++) {
    const gshard_t *gsh = &g->shards[s];
    Runnel__GroupShardInfo *si = rn__arena_alloc(a, sizeof(*si));
    runnel__group_shard_info__init(si);
    si->shard = s;
    si->owner = gsh->owner ? gsh->owner->id : "";
    si->has_checkpoint = gsh->has_ckpt && !gsh->at_ts;
    si->checkpoint = gsh->ckpt;
    si->checkpoint_ms = gsh->commit_ms;
    lag_t l = shard_lag(g, s, rn__now_ms());
    si->start_offset = l.start;
    si->end_offset = l.end;
    si->lag_records = l.records;
    si->lag_ms = l.ms;
    d->shards[d->n_shards++] = si;
  }
  return d;
}

static void set_heartbeat_ages(rn_engine_t *eng, const group_t *g, Runnel__GroupDescription *d) {
  uint64_t now = uv_now(eng->loop);
  for (uint32_t i = 0; i < g->nmembers && i < d->n_members; i++)
    d->members[i]->last_heartbeat_ms = (int64_t)(now - g->members[i]->last_seen);
}

static void handle_describe(rn__groups_t *gs, const Runnel__GroupDescribeRequest *r, rn_engine_reply_cb cb, void *ctx) {
  if (!r) return reply_err(cb, ctx, RN_EBADREQUEST, "GroupDescribe without a body");
  rn_stream_t *st = find_stream(gs->eng, r->stream, cb, ctx);
  if (!st || !check_group_name(r->group, cb, ctx)) return;
  group_t *g = group_find(gs, st->name, st->uid, r->group);
  if (!g) return reply_err(cb, ctx, RN_ENOGROUP, "group %s/%s not found", st->name, r->group);
  /* Fresh time lag: read the arrival times of positions not cached yet
   * (thread pool), then answer. */
  lag_job_t *j = NULL;
  int64_t now = rn__now_ms();
  for (uint32_t s = 0; s < g->st->nshards; s++) {
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
  reply_describe(gs, g, cb, ctx);
}

static void handle_list(rn__groups_t *gs, const Runnel__GroupListRequest *r, rn_engine_reply_cb cb, void *ctx) {
  if (!r) return reply_err(cb, ctx, RN_EBADREQUEST, "GroupList without a body");
  rn_stream_t *st = find_stream(gs->eng, r->stream, cb, ctx);
  if (!st) return;
  char **names = xcalloc(gs->ngroups + 1, sizeof(char *));
  size_t n = 0;
  for (uint32_t i = 0; i < gs->ngroups; i++)
    if (gs->groups[i]->st == st) names[n++] = gs->groups[i]->name;
  qsort(names, n, sizeof(char *), strcmp_ptr);
  Runnel__Response resp;
  runnel__response__init(&resp);
  Runnel__GroupListResponse lr;
  runnel__group_list_response__init(&lr);
  lr.groups = names;
  lr.n_groups = n;
  resp.op_case = RUNNEL__RESPONSE__OP_GROUP_LIST;
  resp.group_list = &lr;
  cb(ctx, &resp);
  free(names);
}

static void handle_create(rn__groups_t *gs, const Runnel__GroupCreateRequest *r, rn_engine_reply_cb cb, void *ctx) {
  if (!r) return reply_err(cb, ctx, RN_EBADREQUEST, "GroupCreate without a body");
  rn_stream_t *st = find_stream(gs->eng, r->stream, cb, ctx);
  if (!st || !check_group_name(r->group, cb, ctx)) return;
  if (group_find(gs, st->name, st->uid, r->group))
    return reply_err(cb, ctx, RN_EEXIST, "group %s/%s already exists", st->name, r->group);
  char msg[200];
  rn_err_t err = check_start(r->start_kind, r->start_value, msg, sizeof(msg));
  if (err) return reply_err(cb, ctx, err, "%s", msg);
  group_t *g = group_create(gs, st, r->group, r->start_kind, r->start_value);
  pending_reply_t *p = pending_new(cb, ctx, st, r->group, PR_CREATE);
  err = append_state(gs, g, true, on_state_durable, p);
  if (err) {
    group_remove(gs, g);
    pending_free(gs->eng, p);
    reply_err(cb, ctx, err, "group %s/%s: cannot write the group's state: %s", st->name, r->group, rn_strerror(err));
  }
}

static void handle_delete(rn__groups_t *gs, const Runnel__GroupDeleteRequest *r, rn_engine_reply_cb cb, void *ctx) {
  if (!r) return reply_err(cb, ctx, RN_EBADREQUEST, "GroupDelete without a body");
  rn_stream_t *st = find_stream(gs->eng, r->stream, cb, ctx);
  if (!st || !check_group_name(r->group, cb, ctx)) return;
  group_t *g = group_find(gs, st->name, st->uid, r->group);
  if (!g) return reply_err(cb, ctx, RN_ENOGROUP, "group %s/%s not found", st->name, r->group);
  if (g->nmembers)
    return reply_err(cb, ctx, RN_EGROUPACTIVE, "group %s/%s has %u member(s); stop them first", st->name, r->group,
                     g->nmembers);
  Runnel__GroupState s;
  runnel__group_state__init(&s);
  fill_state_keys(&s, g);
  Runnel__GroupEvent ev;
  runnel__group_event__init(&ev);
  ev.ev_case = RUNNEL__GROUP_EVENT__EV_REMOVE;
  ev.remove = &s;
  pending_reply_t *p = pending_new(cb, ctx, st, r->group, PR_DELETE);
  rn_err_t err = event_append(gs, &ev, on_state_durable, p);
  if (err) {
    pending_free(gs->eng, p);
    return reply_err(cb, ctx, err, "group %s/%s: cannot write the deletion: %s", st->name, r->group, rn_strerror(err));
  }
  rn__eng_say(gs->eng, RN_LOG_INFO, "group %s/%s deleted", st->name, r->group);
  group_remove(gs, g);
}

static void handle_reset(rn__groups_t *gs, const Runnel__GroupResetRequest *r, rn_engine_reply_cb cb, void *ctx) {
  if (!r) return reply_err(cb, ctx, RN_EBADREQUEST, "GroupReset without a body");
  rn_stream_t *st = find_stream(gs->eng, r->stream, cb, ctx);
  if (!st || !check_group_name(r->group, cb, ctx)) return;
  char msg[200];
  rn_err_t err = 0;
  if (r->kind == RUNNEL__POSITION_KIND__POSITION_OFFSET) {
    if (r->value < 0) return reply_err(cb, ctx, RN_EINVAL, "offset must be >= 0");
  } else {
    err = check_start(r->kind, r->value, msg, sizeof(msg));
    if (err) return reply_err(cb, ctx, err, "%s", msg);
  }
  for (size_t i = 0; i < r->n_shards; i++)
    if (r->shards[i] >= st->nshards)
      return reply_err(cb, ctx, RN_ENOSHARD, "stream %s has no shard %u", st->name, r->shards[i]);
  group_t *g = group_find(gs, st->name, st->uid, r->group);
  bool created = false;
  if (g && g->nmembers)
    return reply_err(cb, ctx, RN_EGROUPACTIVE, "group %s/%s has %u member(s); reset only works on a group without members",
                     st->name, r->group, g->nmembers);
  if (!g) {
    g = group_create(gs, st, r->group, RUNNEL__POSITION_KIND__POSITION_LATEST, 0);
    created = true;
  }
  /* Offsets past a shard's end are clamped to it. */
  for (uint32_t s = 0; s < st->nshards; s++) {
    bool pick = r->n_shards == 0;
    for (size_t i = 0; i < r->n_shards && !pick; i++) pick = r->shards[i] == s;
    if (!pick) continue;
    int64_t v = r->value;
    if (r->kind == RUNNEL__POSITION_KIND__POSITION_OFFSET) {
      uint64_t end = rn_log_end(st->shards[s].log);
      if ((uint64_t)v > end) v = (int64_t)end;
    }
    set_position(g, s, r->kind, v);
  }
  pending_reply_t *p = pending_new(cb, ctx, st, r->group, PR_RESET);
  err = append_state(gs, g, created, on_state_durable, p);
  if (err) {
    pending_free(gs->eng, p);
    reply_err(cb, ctx, err, "group %s/%s: cannot write the reset: %s (memory and disk may differ until restart)",
              st->name, r->group, rn_strerror(err));
  }
}

void rn__handle_group(rn_engine_t *eng, const Runnel__Request *req, rn_engine_reply_cb cb, void *ctx) {
  rn__groups_t *gs = eng->groups;
  switch (req->op_case) {
  case RUNNEL__REQUEST__OP_GROUP_HEARTBEAT: return handle_heartbeat(gs, req->group_heartbeat, cb, ctx);
  case RUNNEL__REQUEST__OP_GROUP_COMMIT: return handle_commit(gs, req->group_commit, cb, ctx);
  case RUNNEL__REQUEST__OP_GROUP_CREATE: return handle_create(gs, req->group_create, cb, ctx);
  case RUNNEL__REQUEST__OP_GROUP_LIST: return handle_list(gs, req->group_list, cb, ctx);
  case RUNNEL__REQUEST__OP_GROUP_DESCRIBE: return handle_describe(gs, req->group_describe, cb, ctx);
  case RUNNEL__REQUEST__OP_GROUP_DELETE: return handle_delete(gs, req->group_delete, cb, ctx);
  case RUNNEL__REQUEST__OP_GROUP_RESET: return handle_reset(gs, req->group_reset, cb, ctx);
  default: return reply_err(cb, ctx, RN_EUNKNOWNOP, "unknown group operation %d", (int)req->op_case);
  }
}

/* ---- metrics ---------------------------------------------------------------------------- */

void rn_engine_foreach_group_shard(const rn_engine_t *eng, rn_engine_group_stats_fn fn, void *arg) {
  const rn__groups_t *gs = eng->groups;
  if (!gs) return;
  int64_t now = rn__now_ms();
  for (uint32_t i = 0; i < gs->ngroups; i++) {
    const group_t *g = gs->groups[i];
    if (g->st->state != RN__STREAM_ACTIVE) continue;
    for (uint32_t s = 0; s < g->st->nshards; s++) {
      lag_t l = shard_lag(g, s, now);
      rn_engine_group_stats_t st = {g->stream, g->name, s, g->nmembers, g->shards[s].ckpt, l.records, l.ms,
                                    l.known_pos};
      fn(arg, &st);
    }
  }
}
