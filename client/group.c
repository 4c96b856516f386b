/*
 * group.c — a member of a consumer group (rn_group_consumer_t): the
 * heartbeat loop, assignment changes, one long-polling Fetch over every held
 * shard, processed/committed positions, nack and the dead-letter stream.
 * The protocol is described in proto/runnel.proto and docs/groups.md.
 *
 * Positions per held shard:
 *   pos        next offset poll may return (everything below was returned
 *              or skipped);
 *   done       everything below was processed: returned by a poll followed
 *              by another poll/commit/close (at-least-once: only these are
 *              committed);
 *   committed  the broker's durable checkpoint as far as we know.
 * Records handed out point into `resp` (or the iterator's scratch) and live
 * until the next call on the member. Single-threaded by contract: no locks;
 * all network work is blocking calls through the client's I/O thread.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_int.h"

#define RN__GROUP_FETCH_MAX_BYTES (4u << 20)

typedef struct held {
  uint32_t shard;
  bool resolved;       /* pos is an offset; else start at (kind, value) */
  rn_pos_kind_t kind;
  int64_t value;
  uint64_t pos;
  uint64_t done;
  int64_t done_arrival; /* arrival time (broker) of the batch of record done-1 */
  bool has_done;
  uint64_t committed;
  bool has_committed;
  bool have_hwm;
  uint64_t hwm;
} held_t;

struct rn_group_consumer {
  rn_client_t *cl;
  char *stream, *group, *client_id, *dlq_stream;
  rn_group_conf_t conf;
  char *member_id; /* NULL: not a member (join at the next poll) */
  uint32_t epoch;
  uint32_t hb_interval;
  int64_t next_hb, next_commit;
  int64_t last_contact; /* send time of the last answered heartbeat/commit */
  uint32_t pending;
  bool hb_now; /* report a release at once */
  held_t *held;
  size_t nheld, held_cap;
  /* fetched data */
  Runnel__Response *resp;
  size_t ri;          /* result being iterated */
  bool rstarted;      /* bp/bend hold result ri's batches */
  const uint8_t *bp, *bend;
  rn_batch_iter_t it;
  bool it_live;
  int64_t batch_arrival;
  /* the record the last poll returned */
  bool have_cur;
  rn_record_t cur;
  uint32_t cur_shard;
  int64_t cur_arrival;
  bool redeliver;
  uint32_t attempts; /* nacks of the current record */
  rn_producer_t *dlq;
};

void rn_group_conf_init(rn_group_conf_t *c) {
  memset(c, 0, sizeof(*c));
  c->session_timeout_ms = 10000;
  c->start_kind = RN_POS_LATEST;
  c->auto_commit = true;
  c->auto_commit_interval_ms = 1000;
}

static held_t *held_find(rn_group_consumer_t *gc, uint32_t shard) {
  for (size_t i = 0; i < gc->nheld; i++)
    if (gc->held[i].shard == shard) return &gc->held[i];
  return NULL;
}

static void drop_buffer(rn_group_consumer_t *gc) {
  if (gc->it_live) rn_batch_iter_free(&gc->it);
  gc->it_live = false;
  if (gc->resp) runnel__response__free_unpacked(gc->resp, NULL);
  gc->resp = NULL;
  gc->bp = gc->bend = NULL;
  gc->ri = 0;
  gc->rstarted = false;
}

static void sleep_ms(int64_t ms) {
  if (ms <= 0) return;
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- commit ---------------------------------------------------------------------- */

/* Commit `done` of every held shard that moved (only: an array of shard
 * indexes, NULL = all). Returns 0 or the first error. */
static rn_err_t commit_shards(rn_group_consumer_t *gc, const uint32_t *only, size_t nonly) {
  if (!gc->member_id) return 0;
  Runnel__ShardCheckpoint *cps = calloc(gc->nheld + 1, sizeof(*cps));
  Runnel__ShardCheckpoint **ptrs = calloc(gc->nheld + 1, sizeof(*ptrs));
  if (!cps || !ptrs) {
    free(cps);
    free(ptrs);
    return RN_ENOMEM;
  }
  size_t n = 0;
  for (size_t i = 0; i < gc->nheld; i++) {
    held_t *h = &gc->held[i];
    if (!h->has_done || (h->has_committed && h->committed == h->done)) continue;
    bool pick = only == NULL;
    for (size_t k = 0; k < nonly && !pick; k++) pick = only[k] == h->shard;
    if (!pick) continue;
    runnel__shard_checkpoint__init(&cps[n]);
    cps[n].shard = h->shard;
    cps[n].offset = h->done;
    cps[n].arrival_ms = h->done_arrival;
    ptrs[n] = &cps[n];
    n++;
  }
  rn_err_t err = 0;
  if (n) {
    Runnel__GroupCommitRequest cr;
    runnel__group_commit_request__init(&cr);
    cr.stream = gc->stream;
    cr.group = gc->group;
    cr.member_id = gc->member_id;
    cr.member_epoch = gc->epoch;
    cr.checkpoints = ptrs;
    cr.n_checkpoints = n;
    Runnel__Request req;
    runnel__request__init(&req);
    req.op_case = RUNNEL__REQUEST__OP_GROUP_COMMIT;
    req.group_commit = &cr;
    Runnel__Response *resp;
    int64_t sent = rn__mono_ms();
    err = rn__client_call(gc->cl, &req, 0, &resp);
    if (!err) gc->last_contact = sent;
    if (!err && resp->op_case != RUNNEL__RESPONSE__OP_GROUP_COMMIT) {
      rn__errmsg_set("broker answered a commit with the wrong message");
      err = RN_EBADREQUEST;
    }
    if (!err) {
      for (size_t i = 0; i < resp->group_commit->n_results; i++) {
        const Runnel__ShardCommitResult *r = resp->group_commit->results[i];
        char msg[300];
        rn_err_t e = rn__pb_error(r->error, msg, sizeof msg);
        held_t *h = held_find(gc, r->shard);
        if (e) {
          if (!err) {
            err = e;
            rn__errmsg_set("%s", msg);
          }
          continue;
        }
        for (size_t k = 0; k < n && h; k++)
          if (cps[k].shard == r->shard) {
            h->committed = cps[k].offset;
            h->has_committed = true;
          }
      }
      runnel__response__free_unpacked(resp, NULL);
    }
  }
  free(cps);
  free(ptrs);
  return err;
}

/* ---- membership ------------------------------------------------------------------- */

static void sort_u32(uint32_t *v, size_t n) {
  for (size_t i = 1; i < n; i++)
    for (size_t k = i; k > 0 && v[k - 1] > v[k]; k--) {
      uint32_t t = v[k];
      v[k] = v[k - 1];
      v[k - 1] = t;
    }
}

/* Forget every held shard without committing (the member is gone). */
static void lose_all(rn_group_consumer_t *gc) {
  drop_buffer(gc);
  gc->have_cur = false;
  gc->redeliver = false;
  if (gc->nheld && gc->conf.on_revoked) {
    uint32_t *v = malloc(gc->nheld * sizeof(uint32_t));
    if (v) {
      for (size_t i = 0; i < gc->nheld; i++) v[i] = gc->held[i].shard;
      sort_u32(v, gc->nheld);
      gc->conf.on_revoked(gc->conf.cb_arg, v, gc->nheld);
      free(v);
    }
  }
  gc->nheld = 0;
  free(gc->member_id);
  gc->member_id = NULL;
  gc->epoch = 0;
  gc->pending = 0;
}

/* Apply the answer: revoke (commit first), then add. */
static rn_err_t apply_assignment(rn_group_consumer_t *gc, const Runnel__GroupHeartbeatResponse *hr) {
  uint32_t *revoked = malloc((gc->nheld + 1) * sizeof(uint32_t)), *added = malloc((hr->n_assigned + 1) * sizeof(uint32_t));
  if (!revoked || !added) {
    free(revoked);
    free(added);
    return RN_ENOMEM;
  }
  size_t nrev = 0, nadd = 0;
  for (size_t i = 0; i < gc->nheld; i++) {
    bool keep = false;
    for (size_t k = 0; k < hr->n_assigned && !keep; k++) keep = hr->assigned[k]->shard == gc->held[i].shard;
    if (!keep) revoked[nrev++] = gc->held[i].shard;
  }
  if (nrev) {
    drop_buffer(gc); /* positions say what was returned: nothing is lost */
    if (gc->have_cur)
      for (size_t i = 0; i < nrev; i++)
        if (revoked[i] == gc->cur_shard) gc->have_cur = gc->redeliver = false;
    commit_shards(gc, revoked, nrev); /* best effort: a failure means the next owner sees them again */
    for (size_t i = 0; i < nrev; i++) {
      held_t *h = held_find(gc, revoked[i]);
      *h = gc->held[--gc->nheld];
    }
    sort_u32(revoked, nrev);
    if (gc->conf.on_revoked) gc->conf.on_revoked(gc->conf.cb_arg, revoked, nrev);
    gc->hb_now = true;
  }
  for (size_t k = 0; k < hr->n_assigned; k++) {
    const Runnel__GroupShardAssignment *a = hr->assigned[k];
    if (held_find(gc, a->shard)) continue;
    if (gc->nheld == gc->held_cap) {
      size_t cap = gc->held_cap ? 2 * gc->held_cap : 8;
      held_t *nh = realloc(gc->held, cap * sizeof(*nh));
      if (!nh) {
        free(revoked);
        free(added);
        return RN_ENOMEM;
      }
      gc->held = nh;
      gc->held_cap = cap;
    }
    held_t *h = &gc->held[gc->nheld++];
    memset(h, 0, sizeof(*h));
    h->shard = a->shard;
    if (a->kind == RUNNEL__POSITION_KIND__POSITION_OFFSET) {
      h->resolved = true;
      h->pos = h->done = h->committed = (uint64_t)a->value;
      h->has_committed = true;
    } else {
      h->kind = (rn_pos_kind_t)a->kind;
      h->value = a->value;
    }
    added[nadd++] = a->shard;
  }
  if (nadd) {
    sort_u32(added, nadd);
    if (gc->conf.on_assigned) gc->conf.on_assigned(gc->conf.cb_arg, added, nadd);
  }
  free(revoked);
  free(added);
  return 0;
}

/* One heartbeat (join when not a member, leave when asked). */
static rn_err_t heartbeat(rn_group_consumer_t *gc, bool leave) {
  Runnel__GroupHeartbeatRequest hb;
  runnel__group_heartbeat_request__init(&hb);
  hb.stream = gc->stream;
  hb.group = gc->group;
  hb.member_id = gc->member_id ? gc->member_id : (char *)(uintptr_t) "";
  hb.member_epoch = gc->epoch;
  hb.leave = leave;
  hb.session_timeout_ms = gc->conf.session_timeout_ms;
  hb.start_kind = (Runnel__PositionKind)gc->conf.start_kind;
  hb.start_value = gc->conf.start_value;
  hb.client_id = gc->client_id;
  uint32_t *owned = malloc((gc->nheld + 1) * sizeof(uint32_t));
  if (!owned) return RN_ENOMEM;
  for (size_t i = 0; i < gc->nheld; i++) owned[i] = gc->held[i].shard;
  hb.owned = owned;
  hb.n_owned = leave ? 0 : gc->nheld;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_HEARTBEAT;
  req.group_heartbeat = &hb;
  Runnel__Response *resp;
  int64_t sent = rn__mono_ms();
  rn_err_t err = rn__client_call(gc->cl, &req, 0, &resp);
  free(owned);
  if (!err) gc->last_contact = sent;
  gc->hb_now = false;
  if (err == RN_EUNKNOWNMEMBER) {
    lose_all(gc);
    return leave ? 0 : RN_EAGAIN; /* join again */
  }
  if (err) {
    /* Transport trouble: try again soon, keep the shards (the session may
     * still be alive). */
    gc->next_hb = rn__mono_ms() + 100;
    return err;
  }
  if (resp->op_case != RUNNEL__RESPONSE__OP_GROUP_HEARTBEAT) {
    runnel__response__free_unpacked(resp, NULL);
    rn__errmsg_set("broker answered a heartbeat with the wrong message");
    return RN_EBADREQUEST;
  }
  const Runnel__GroupHeartbeatResponse *hr = resp->group_heartbeat;
  if (!leave) {
    if (!gc->member_id) gc->member_id = strdup(hr->member_id ? hr->member_id : "");
    gc->epoch = hr->member_epoch;
    gc->hb_interval = hr->heartbeat_interval_ms ? hr->heartbeat_interval_ms : 500;
    gc->next_hb = rn__mono_ms() + gc->hb_interval;
    gc->pending = hr->pending;
    err = gc->member_id ? apply_assignment(gc, hr) : RN_ENOMEM;
  }
  runnel__response__free_unpacked(resp, NULL);
  return err;
}

/* ---- create / close ------------------------------------------------------------- */

rn_err_t rn_group_consumer_new(rn_client_t *cl, const char *stream, const char *group, const rn_group_conf_t *conf,
                               rn_group_consumer_t **out) {
  rn__errmsg_clear();
  if (!cl || !stream || !group || !out) return RN_EINVAL;
  rn_group_conf_t c;
  if (conf)
    c = *conf;
  else
    rn_group_conf_init(&c);
  if (c.start_kind != RN_POS_EARLIEST && c.start_kind != RN_POS_LATEST && c.start_kind != RN_POS_TIMESTAMP) {
    rn__errmsg_set("a group starts at RN_POS_EARLIEST, RN_POS_LATEST or RN_POS_TIMESTAMP");
    return RN_EINVAL;
  }
  if (c.auto_commit_interval_ms == 0) c.auto_commit_interval_ms = 1000;
  rn_group_consumer_t *gc = calloc(1, sizeof(*gc));
  if (!gc) return RN_ENOMEM;
  gc->cl = cl;
  gc->conf = c;
  gc->stream = strdup(stream);
  gc->group = strdup(group);
  gc->client_id = strdup(c.client_id ? c.client_id : "librunnel");
  if (c.dlq_stream) {
    gc->dlq_stream = strdup(c.dlq_stream);
  } else if (asprintf(&gc->dlq_stream, "%s.dlq", stream) < 0) {
    gc->dlq_stream = NULL;
  }
  gc->conf.client_id = gc->conf.dlq_stream = NULL; /* not borrowed past this call */
  if (!gc->stream || !gc->group || !gc->client_id || !gc->dlq_stream) {
    rn_group_consumer_abandon(gc);
    return RN_ENOMEM;
  }
  rn_err_t err = heartbeat(gc, false);
  if (err) {
    rn_group_consumer_abandon(gc);
    return err == RN_EAGAIN ? RN_EUNKNOWNMEMBER : err;
  }
  gc->next_commit = rn__mono_ms() + gc->conf.auto_commit_interval_ms;
  *out = gc;
  return 0;
}

void rn_group_consumer_abandon(rn_group_consumer_t *gc) {
  if (!gc) return;
  drop_buffer(gc);
  rn_producer_destroy(gc->dlq);
  free(gc->held);
  free(gc->member_id);
  free(gc->stream);
  free(gc->group);
  free(gc->client_id);
  free(gc->dlq_stream);
  free(gc);
}

/* The record the last poll returned is processed. */
static void mark_processed(rn_group_consumer_t *gc) {
  if (!gc->have_cur) return;
  held_t *h = held_find(gc, gc->cur_shard);
  if (h) {
    h->done = gc->cur.offset + 1;
    h->done_arrival = gc->cur_arrival;
    h->has_done = true;
  }
  gc->have_cur = false;
  gc->attempts = 0;
}

rn_err_t rn_group_commit(rn_group_consumer_t *gc, bool include_current) {
  rn__errmsg_clear();
  if (!gc) return RN_EINVAL;
  if (include_current && !gc->redeliver) mark_processed(gc);
  return commit_shards(gc, NULL, 0);
}

rn_err_t rn_group_consumer_close(rn_group_consumer_t *gc) {
  if (!gc) return 0;
  rn__errmsg_clear();
  rn_err_t err = 0;
  if (gc->member_id) {
    if (!gc->redeliver) mark_processed(gc);
    err = commit_shards(gc, NULL, 0);
    rn_err_t e2 = heartbeat(gc, true);
    if (!err) err = e2;
  }
  rn_group_consumer_abandon(gc);
  return err;
}

/* ---- reading ---------------------------------------------------------------------- */

/* Next record from the fetched data into gc->cur; false when used up. An
 * error ends the buffer and is returned through *err. */
static bool next_buffered(rn_group_consumer_t *gc, rn_err_t *err) {
  *err = 0;
  while (gc->resp) {
    const Runnel__FetchResponse *fr = gc->resp->fetch;
    if (gc->ri >= fr->n_results) {
      drop_buffer(gc);
      return false;
    }
    const Runnel__ShardFetchResult *r = fr->results[gc->ri];
    held_t *h = held_find(gc, r->shard);
    if (!h) { /* revoked meanwhile */
      gc->ri++;
      gc->rstarted = false;
      continue;
    }
    if (gc->it_live) {
      rn_err_t e = rn_batch_iter_next(&gc->it, &gc->cur);
      if (e == 0) {
        if (gc->cur.offset < h->pos) continue;
        h->pos = gc->cur.offset + 1;
        gc->cur_shard = h->shard;
        gc->cur_arrival = gc->batch_arrival;
        return true;
      }
      rn_batch_iter_free(&gc->it);
      gc->it_live = false;
      if (e != RN_EOFFSET) {
        rn__errmsg_set("shard %u: a fetched batch failed verification near offset %" PRIu64, h->shard, h->pos);
        *err = RN_ECORRUPT;
        drop_buffer(gc);
        return false;
      }
      continue;
    }
    if (gc->bp && gc->bp < gc->bend) {
      rn_err_t e = rn_batch_iter_init(&gc->it, gc->bp, (size_t)(gc->bend - gc->bp));
      if (e) {
        rn__errmsg_set("shard %u: a fetched batch failed verification at offset %" PRIu64, h->shard, h->pos);
        *err = RN_ECORRUPT;
        drop_buffer(gc);
        return false;
      }
      gc->it_live = true;
      gc->batch_arrival = gc->it.hdr.arrival_time_ms;
      gc->bp += gc->it.hdr.batch_length;
      continue;
    }
    if (!gc->rstarted) { /* start this result */
      char msg[300];
      rn_err_t e = rn__pb_error(r->error, msg, sizeof msg);
      if (e == RN_EOFFSET && h->resolved && h->pos < r->start_offset) {
        /* Deleted by retention before the group read it: go on from the start. */
        h->pos = r->start_offset;
        gc->ri++;
        gc->rstarted = false;
        continue;
      }
      if (e) {
        rn__errmsg_set("shard %u: %s", r->shard, msg);
        *err = e;
        drop_buffer(gc);
        return false;
      }
      if (!h->resolved) {
        h->resolved = true;
        h->pos = r->offset;
        if (!h->has_done) {
          h->done = r->offset;
          h->has_done = true;
        }
      }
      h->have_hwm = true;
      h->hwm = r->end_offset;
      gc->rstarted = true;
      gc->bp = r->batches.data;
      gc->bend = r->batches.len ? r->batches.data + r->batches.len : r->batches.data;
      continue;
    }
    /* result used up: everything below next_offset was seen */
    if (r->next_offset > h->pos) h->pos = r->next_offset;
    gc->ri++;
    gc->rstarted = false;
    gc->bp = gc->bend = NULL;
  }
  return false;
}

static rn_err_t fetch(rn_group_consumer_t *gc, uint32_t max_wait_ms) {
  Runnel__ShardFetch *sfs = calloc(gc->nheld, sizeof(*sfs));
  Runnel__ShardFetch **ptrs = calloc(gc->nheld, sizeof(*ptrs));
  if (!sfs || !ptrs) {
    free(sfs);
    free(ptrs);
    return RN_ENOMEM;
  }
  for (size_t i = 0; i < gc->nheld; i++) {
    held_t *h = &gc->held[i];
    runnel__shard_fetch__init(&sfs[i]);
    sfs[i].shard = h->shard;
    if (h->resolved) {
      sfs[i].kind = RUNNEL__POSITION_KIND__POSITION_OFFSET;
      sfs[i].value = (int64_t)h->pos;
    } else {
      sfs[i].kind = (Runnel__PositionKind)h->kind;
      sfs[i].value = h->value;
    }
    ptrs[i] = &sfs[i];
  }
  Runnel__FetchRequest fr;
  runnel__fetch_request__init(&fr);
  fr.stream = gc->stream;
  fr.shards = ptrs;
  fr.n_shards = gc->nheld;
  fr.max_wait_ms = max_wait_ms;
  fr.max_bytes = RN__GROUP_FETCH_MAX_BYTES;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_FETCH;
  req.fetch = &fr;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call(gc->cl, &req, max_wait_ms, &resp);
  free(sfs);
  free(ptrs);
  if (err) return err;
  if (resp->op_case != RUNNEL__RESPONSE__OP_FETCH) {
    runnel__response__free_unpacked(resp, NULL);
    rn__errmsg_set("broker answered a fetch with the wrong message");
    return RN_EBADREQUEST;
  }
  drop_buffer(gc);
  gc->resp = resp;
  return 0;
}

rn_err_t rn_group_poll(rn_group_consumer_t *gc, uint32_t max_wait_ms, const rn_record_t **rec, uint32_t *shard) {
  rn__errmsg_clear();
  if (!gc || !rec) return RN_EINVAL;
  *rec = NULL;
  if (gc->redeliver && gc->have_cur && held_find(gc, gc->cur_shard)) {
    gc->redeliver = false;
    *rec = &gc->cur;
    if (shard) *shard = gc->cur_shard;
    return 0;
  }
  gc->redeliver = false;
  mark_processed(gc);
  int64_t deadline = rn__mono_ms() + max_wait_ms;
  bool fetched = false;
  for (;;) {
    int64_t now = rn__mono_ms();
    if (!gc->member_id || gc->hb_now || now >= gc->next_hb) {
      rn_err_t err = heartbeat(gc, false);
      if (err == RN_EAGAIN) continue; /* lost membership: join again */
      if (err) return err;
      now = rn__mono_ms();
    }
    if (gc->conf.auto_commit && now >= gc->next_commit) {
      gc->next_commit = now + gc->conf.auto_commit_interval_ms;
      rn_err_t err = commit_shards(gc, NULL, 0);
      if (err == RN_EUNKNOWNMEMBER) {
        lose_all(gc);
        continue;
      }
      /* EFENCED: the shard moved; the next heartbeat drops it. */
    }
    rn_err_t err;
    if (next_buffered(gc, &err)) {
      gc->have_cur = true;
      *rec = &gc->cur;
      if (shard) *shard = gc->cur_shard;
      return 0;
    }
    if (err) return err;
    if (fetched && now >= deadline) return RN_EAGAIN;
    int64_t wait = deadline - now;
    if (gc->next_hb - now < wait) wait = gc->next_hb - now;
    if (wait < 0) wait = 0;
    if (gc->nheld == 0) {
      if (now >= deadline) return RN_EAGAIN;
      sleep_ms(wait > 0 ? wait : 1); /* nothing to read until the next heartbeat */
      continue;
    }
    err = fetch(gc, (uint32_t)wait);
    if (err) return err;
    fetched = true;
  }
}

/* ---- nack and the dead-letter stream ------------------------------------------------ */

static rn_err_t dlq_ready(rn_group_consumer_t *gc) {
  if (gc->dlq) return 0;
  rn_stream_desc_t *d = NULL;
  rn_err_t err = rn_stream_describe(gc->cl, gc->dlq_stream, &d);
  rn_stream_desc_free(d);
  if (err == RN_ENOSTREAM) {
    rn_stream_config_t sc = {.name = gc->dlq_stream, .shard_count = 1, .retention_ms = -1, .retention_bytes = -1,
                             .durability = RN_DURABILITY_SYNC};
    err = rn_stream_create(gc->cl, &sc, NULL);
    if (err == RN_EEXIST) err = 0;
  }
  if (!err) err = rn_producer_new(gc->cl, NULL, &gc->dlq);
  return err;
}

typedef struct dlq_result {
  rn_err_t err;
  bool done;
} dlq_result_t;

static void on_dlq_delivered(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  (void)shard;
  (void)offset;
  dlq_result_t *r = opaque;
  r->err = err;
  r->done = true;
}

static rn_err_t dlq_send(rn_group_consumer_t *gc, const char *reason) {
  rn_err_t err = dlq_ready(gc);
  if (err) return err;
  const rn_record_t *r = &gc->cur;
  size_t n = 0, pos = 0;
  rn_record_header_t h;
  while (rn_record_header_next(r, &pos, &h) == 0) n++;
  rn_record_header_t *hs = calloc(n + 7, sizeof(*hs));
  if (!hs) return RN_ENOMEM;
  pos = 0;
  n = 0;
  while (rn_record_header_next(r, &pos, &hs[n]) == 0) n++;
  char shard[16], offset[24], ts[24], attempts[16];
  snprintf(shard, sizeof shard, "%u", gc->cur_shard);
  snprintf(offset, sizeof offset, "%" PRIu64, r->offset);
  snprintf(ts, sizeof ts, "%" PRId64, r->timestamp);
  snprintf(attempts, sizeof attempts, "%u", gc->attempts);
  const char *kv[7][2] = {{"dlq.stream", gc->stream}, {"dlq.group", gc->group}, {"dlq.shard", shard},
                          {"dlq.offset", offset},     {"dlq.timestamp", ts},  {"dlq.attempts", attempts},
                          {"dlq.reason", reason ? reason : ""}};
  for (int i = 0; i < 7; i++) {
    hs[n].key = (const uint8_t *)kv[i][0];
    hs[n].key_len = strlen(kv[i][0]);
    hs[n].value = (const uint8_t *)kv[i][1];
    hs[n].value_len = strlen(kv[i][1]);
    n++;
  }
  dlq_result_t res = {0};
  rn_message_t m = {0};
  m.stream = gc->dlq_stream;
  m.key = r->key_len ? (const void *)r->key : (const void *)offset;
  m.key_len = r->key_len ? r->key_len : strlen(offset);
  m.data = r->value;
  m.data_len = r->value_len;
  m.headers = hs;
  m.header_count = n;
  m.id = r->id;
  m.id_len = r->id_len;
  m.timestamp_ms = r->timestamp;
  m.cb = on_dlq_delivered;
  m.opaque = &res;
  err = rn_producer_send_message(gc->dlq, &m);
  free(hs);
  if (!err) err = rn_producer_flush(gc->dlq, 30000);
  if (!err) err = res.done ? res.err : RN_ETIMEDOUT;
  return err;
}

rn_err_t rn_group_nack(rn_group_consumer_t *gc, const char *reason) {
  rn__errmsg_clear();
  if (!gc || !gc->have_cur || !held_find(gc, gc->cur_shard)) return RN_EINVAL;
  gc->attempts++;
  if (gc->conf.max_attempts && gc->attempts >= gc->conf.max_attempts) {
    rn_err_t err = dlq_send(gc, reason);
    if (err) {
      gc->redeliver = true;
      return err;
    }
    mark_processed(gc); /* the group moves past it */
    return 0;
  }
  gc->redeliver = true;
  return 0;
}

/* ---- inspection ---------------------------------------------------------------------- */

size_t rn_group_shards(const rn_group_consumer_t *gc, uint32_t *shards, size_t cap) {
  if (!gc) return 0;
  if (!shards || cap == 0) return gc->nheld; /* just the count */
  uint32_t *v = malloc((gc->nheld + 1) * sizeof(uint32_t));
  if (!v) return 0;
  for (size_t i = 0; i < gc->nheld; i++) v[i] = gc->held[i].shard;
  sort_u32(v, gc->nheld);
  for (size_t i = 0; i < gc->nheld && i < cap; i++) shards[i] = v[i];
  free(v);
  return gc->nheld;
}

bool rn_group_drained(const rn_group_consumer_t *gc) {
  if (!gc || !gc->member_id || gc->pending || gc->resp) return false;
  for (size_t i = 0; i < gc->nheld; i++) {
    const held_t *h = &gc->held[i];
    if (!h->resolved || !h->have_hwm || h->pos < h->hwm) return false;
  }
  return true;
}

int64_t rn_group_last_contact_ms(const rn_group_consumer_t *gc) { return gc ? gc->last_contact : 0; }

const char *rn_group_member_id(const rn_group_consumer_t *gc) {
  return gc && gc->member_id ? gc->member_id : "";
}
