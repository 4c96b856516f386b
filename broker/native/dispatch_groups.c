/*
 * dispatch_groups.c — the native protocol's consumer-group operations
 * (Request ops 30-36: GroupHeartbeat, GroupCommit, GroupCreate, GroupList,
 * GroupDescribe, GroupDelete, GroupReset) translated to rn_groups.h and
 * their replies back to Runnel__Response.
 *
 * Pure translation: no group rule lives here. Requests are borrowed views
 * (the strings and arrays of the protobuf message, never copied except the
 * commit's checkpoints, which change shape); replies are built on the stack
 * or in short-lived arrays freed when the caller's callback returns, which
 * packs them. A request without its body is refused here with
 * RN_EBADREQUEST, as before the split, so the wire answers are the same
 * byte for byte.
 *
 * Loop thread only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "dispatch.h"
#include "dispatch_groups.h"
#include "rn_groups.h"
#include "rn_base.h"

/* The C enum is the wire's PositionKind, value for value. */
_Static_assert((int)RN_GROUP_POS_OFFSET == (int)RUNNEL__POSITION_KIND__POSITION_OFFSET, "PositionKind");
_Static_assert((int)RN_GROUP_POS_EARLIEST == (int)RUNNEL__POSITION_KIND__POSITION_EARLIEST, "PositionKind");
_Static_assert((int)RN_GROUP_POS_LATEST == (int)RUNNEL__POSITION_KIND__POSITION_LATEST, "PositionKind");
_Static_assert((int)RN_GROUP_POS_TIMESTAMP == (int)RUNNEL__POSITION_KIND__POSITION_TIMESTAMP, "PositionKind");

/* protobuf-c's messages take char * for strings they only read when packing. */
#define W(s) ((char *)(uintptr_t)(s))

/* One request on its way through groups: which answer to build, and for whom. */
typedef struct gdisp {
  Runnel__Request__OpCase op;
  rn_native_reply_cb cb;
  void *ctx;
} gdisp_t;

/* A GroupDescription with the arrays it points to (wire_desc_free). */
typedef struct wire_desc {
  Runnel__GroupDescription pd;
  Runnel__GroupMemberInfo *mi, **mp;
  Runnel__GroupShardInfo *si, **sp;
} wire_desc_t;

static void wire_desc_init(wire_desc_t *w, const rn_group_description_t *d) {
  Runnel__GroupDescription *pd = &w->pd;
  Runnel__GroupMemberInfo *mi = w->mi = rn_xcalloc(d->n_members + 1, sizeof(*mi));
  Runnel__GroupMemberInfo **mp = w->mp = rn_xcalloc(d->n_members + 1, sizeof(*mp));
  Runnel__GroupShardInfo *si = w->si = rn_xcalloc(d->n_shards + 1, sizeof(*si));
  Runnel__GroupShardInfo **sp = w->sp = rn_xcalloc(d->n_shards + 1, sizeof(*sp));
  runnel__group_description__init(pd);
  pd->stream = W(d->stream);
  pd->group = W(d->group);
  pd->start_kind = (Runnel__PositionKind)d->start_kind;
  pd->start_value = d->start_value;
  pd->created_ms = d->created_ms;
  for (size_t i = 0; i < d->n_members; i++) {
    const rn_group_member_info_t *m = &d->members[i];
    runnel__group_member_info__init(&mi[i]);
    mi[i].member_id = W(m->member_id);
    mi[i].client_id = W(m->client_id);
    mi[i].member_epoch = m->member_epoch;
    mi[i].session_timeout_ms = m->session_timeout_ms;
    mi[i].pending = m->pending;
    mi[i].last_heartbeat_ms = m->last_heartbeat_ms;
    mi[i].shards = (uint32_t *)(uintptr_t)m->shards;
    mi[i].n_shards = m->n_shards;
    mp[i] = &mi[i];
  }
  pd->members = mp;
  pd->n_members = d->n_members;
  for (size_t i = 0; i < d->n_shards; i++) {
    const rn_group_shard_info_t *s = &d->shards[i];
    runnel__group_shard_info__init(&si[i]);
    si[i].shard = s->shard;
    si[i].owner = W(s->owner);
    si[i].has_checkpoint = s->has_checkpoint;
    si[i].checkpoint = s->checkpoint;
    si[i].checkpoint_ms = s->checkpoint_ms;
    si[i].start_offset = s->start_offset;
    si[i].end_offset = s->end_offset;
    si[i].lag_records = s->lag_records;
    si[i].lag_ms = s->lag_ms;
    sp[i] = &si[i];
  }
  pd->shards = sp;
  pd->n_shards = d->n_shards;
}

static void wire_desc_free(wire_desc_t *w) {
  free(w->mi);
  free(w->mp);
  free(w->si);
  free(w->sp);
}

static void on_group_reply(void *arg, const rn_group_reply_t *rep) {
  gdisp_t *d = arg;
  rn_native_reply_cb cb = d->cb;
  void *ctx = d->ctx;
  Runnel__Request__OpCase op = d->op;
  free(d);
  if (rep->err) return rn_native_reply_error(cb, ctx, rep->err, rep->message);

  Runnel__Response resp;
  runnel__response__init(&resp);
  switch (op) {
  case RUNNEL__REQUEST__OP_GROUP_HEARTBEAT: {
    Runnel__GroupHeartbeatResponse hr;
    runnel__group_heartbeat_response__init(&hr);
    size_t n = rep->heartbeat.n_assigned;
    Runnel__GroupShardAssignment *as = rn_xcalloc(n + 1, sizeof(*as));
    Runnel__GroupShardAssignment **ap = rn_xcalloc(n + 1, sizeof(*ap));
    for (size_t i = 0; i < n; i++) {
      runnel__group_shard_assignment__init(&as[i]);
      as[i].shard = rep->heartbeat.assigned[i].shard;
      as[i].kind = (Runnel__PositionKind)rep->heartbeat.assigned[i].kind;
      as[i].value = rep->heartbeat.assigned[i].value;
      ap[i] = &as[i];
    }
    hr.member_id = W(rep->heartbeat.member_id);
    hr.member_epoch = rep->heartbeat.member_epoch;
    hr.heartbeat_interval_ms = rep->heartbeat.heartbeat_interval_ms;
    hr.pending = rep->heartbeat.pending;
    hr.assigned = ap;
    hr.n_assigned = n;
    resp.op_case = RUNNEL__RESPONSE__OP_GROUP_HEARTBEAT;
    resp.group_heartbeat = &hr;
    cb(ctx, &resp);
    free(ap);
    free(as);
    return;
  }
  case RUNNEL__REQUEST__OP_GROUP_COMMIT: {
    Runnel__GroupCommitResponse cr;
    runnel__group_commit_response__init(&cr);
    size_t n = rep->commit.n_results;
    Runnel__ShardCommitResult *res = rn_xcalloc(n + 1, sizeof(*res));
    Runnel__ShardCommitResult **ptrs = rn_xcalloc(n + 1, sizeof(*ptrs));
    Runnel__Error *errs = rn_xcalloc(n + 1, sizeof(*errs));
    for (size_t i = 0; i < n; i++) {
      const rn_group_shard_result_t *r = &rep->commit.results[i];
      runnel__shard_commit_result__init(&res[i]);
      res[i].shard = r->shard;
      if (r->err) {
        rn_native_error(&errs[i], r->err, r->message);
        res[i].error = &errs[i];
      }
      ptrs[i] = &res[i];
    }
    cr.results = ptrs;
    cr.n_results = n;
    resp.op_case = RUNNEL__RESPONSE__OP_GROUP_COMMIT;
    resp.group_commit = &cr;
    cb(ctx, &resp);
    free(res);
    free(ptrs);
    free(errs);
    return;
  }
  case RUNNEL__REQUEST__OP_GROUP_CREATE: {
    Runnel__GroupCreateResponse cr;
    runnel__group_create_response__init(&cr);
    resp.op_case = RUNNEL__RESPONSE__OP_GROUP_CREATE;
    resp.group_create = &cr;
    cb(ctx, &resp);
    return;
  }
  case RUNNEL__REQUEST__OP_GROUP_DELETE: {
    Runnel__GroupDeleteResponse dr;
    runnel__group_delete_response__init(&dr);
    resp.op_case = RUNNEL__RESPONSE__OP_GROUP_DELETE;
    resp.group_delete = &dr;
    cb(ctx, &resp);
    return;
  }
  case RUNNEL__REQUEST__OP_GROUP_LIST: {
    Runnel__GroupListResponse lr;
    runnel__group_list_response__init(&lr);
    lr.groups = (char **)(uintptr_t)rep->list.names;
    lr.n_groups = rep->list.n_names;
    resp.op_case = RUNNEL__RESPONSE__OP_GROUP_LIST;
    resp.group_list = &lr;
    cb(ctx, &resp);
    return;
  }
  case RUNNEL__REQUEST__OP_GROUP_DESCRIBE: {
    Runnel__GroupDescribeResponse dr;
    runnel__group_describe_response__init(&dr);
    wire_desc_t w;
    wire_desc_init(&w, rep->group);
    dr.group = &w.pd;
    resp.op_case = RUNNEL__RESPONSE__OP_GROUP_DESCRIBE;
    resp.group_describe = &dr;
    cb(ctx, &resp);
    wire_desc_free(&w);
    return;
  }
  case RUNNEL__REQUEST__OP_GROUP_RESET: {
    Runnel__GroupResetResponse rr;
    runnel__group_reset_response__init(&rr);
    wire_desc_t w;
    wire_desc_init(&w, rep->group);
    rr.group = &w.pd;
    resp.op_case = RUNNEL__RESPONSE__OP_GROUP_RESET;
    resp.group_reset = &rr;
    cb(ctx, &resp);
    wire_desc_free(&w);
    return;
  }
  default: return rn_native_reply_error(cb, ctx, RN_EUNKNOWNOP, "unknown group operation");
  }
}

static void heartbeat(rn_groups_t *gs, const Runnel__GroupHeartbeatRequest *r, gdisp_t *d) {
  rn_group_heartbeat_req_t q = {
      .stream = r->stream,
      .group = r->group,
      .member_id = r->member_id,
      .client_id = r->client_id,
      .member_epoch = r->member_epoch,
      .leave = r->leave,
      .session_timeout_ms = r->session_timeout_ms,
      .owned = r->owned,
      .n_owned = r->n_owned,
      .start_kind = (rn_group_pos_t)r->start_kind,
      .start_value = r->start_value,
  };
  rn_groups_heartbeat(gs, &q, on_group_reply, d);
}

static void commit(rn_groups_t *gs, const Runnel__GroupCommitRequest *r, gdisp_t *d) {
  rn_group_checkpoint_t *cps = rn_xcalloc(r->n_checkpoints + 1, sizeof(*cps));
  for (size_t i = 0; i < r->n_checkpoints; i++) {
    cps[i].shard = r->checkpoints[i]->shard;
    cps[i].offset = r->checkpoints[i]->offset;
    cps[i].arrival_ms = r->checkpoints[i]->arrival_ms;
  }
  rn_group_commit_req_t q = {
      .stream = r->stream,
      .group = r->group,
      .member_id = r->member_id,
      .member_epoch = r->member_epoch,
      .checkpoints = cps,
      .n_checkpoints = r->n_checkpoints,
  };
  rn_groups_commit(gs, &q, on_group_reply, d);
  free(cps);
}

static void create(rn_groups_t *gs, const Runnel__GroupCreateRequest *r, gdisp_t *d) {
  rn_group_create_req_t q = {r->stream, r->group, (rn_group_pos_t)r->start_kind, r->start_value};
  rn_groups_create(gs, &q, on_group_reply, d);
}

static void reset(rn_groups_t *gs, const Runnel__GroupResetRequest *r, gdisp_t *d) {
  rn_group_reset_req_t q = {r->stream, r->group, (rn_group_pos_t)r->kind, r->value, r->shards, r->n_shards};
  rn_groups_reset(gs, &q, on_group_reply, d);
}

void rn__native_handle_group(rn_core_t *core, const Runnel__Request *req, rn_native_reply_cb cb, void *ctx) {
  rn_groups_t *gs = rn_groups_of(core);
  /* The body each op needs, and its name in the refusal when it is missing. */
  const void *body = NULL;
  const char *what = NULL;
  switch (req->op_case) {
  case RUNNEL__REQUEST__OP_GROUP_HEARTBEAT: body = req->group_heartbeat, what = "GroupHeartbeat"; break;
  case RUNNEL__REQUEST__OP_GROUP_COMMIT: body = req->group_commit, what = "GroupCommit"; break;
  case RUNNEL__REQUEST__OP_GROUP_CREATE: body = req->group_create, what = "GroupCreate"; break;
  case RUNNEL__REQUEST__OP_GROUP_LIST: body = req->group_list, what = "GroupList"; break;
  case RUNNEL__REQUEST__OP_GROUP_DESCRIBE: body = req->group_describe, what = "GroupDescribe"; break;
  case RUNNEL__REQUEST__OP_GROUP_DELETE: body = req->group_delete, what = "GroupDelete"; break;
  case RUNNEL__REQUEST__OP_GROUP_RESET: body = req->group_reset, what = "GroupReset"; break;
  default: {
    char msg[64];
    snprintf(msg, sizeof msg, "unknown group operation %d", (int)req->op_case);
    return rn_native_reply_error(cb, ctx, RN_EUNKNOWNOP, msg);
  }
  }
  if (!gs) return rn_native_reply_error(cb, ctx, RN_EUNKNOWNOP, "consumer groups are not open on this broker");
  if (!body) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s without a body", what);
    return rn_native_reply_error(cb, ctx, RN_EBADREQUEST, msg);
  }
  gdisp_t *d = malloc(sizeof(*d));
  if (!d) return rn_native_reply_error(cb, ctx, RN_ENOMEM, NULL);
  *d = (gdisp_t){req->op_case, cb, ctx};
  switch (req->op_case) {
  case RUNNEL__REQUEST__OP_GROUP_HEARTBEAT: return heartbeat(gs, req->group_heartbeat, d);
  case RUNNEL__REQUEST__OP_GROUP_COMMIT: return commit(gs, req->group_commit, d);
  case RUNNEL__REQUEST__OP_GROUP_CREATE: return create(gs, req->group_create, d);
  case RUNNEL__REQUEST__OP_GROUP_LIST: return rn_groups_list(gs, req->group_list->stream, on_group_reply, d);
  case RUNNEL__REQUEST__OP_GROUP_DESCRIBE:
    return rn_groups_describe(gs, req->group_describe->stream, req->group_describe->group, on_group_reply, d);
  case RUNNEL__REQUEST__OP_GROUP_DELETE:
    return rn_groups_delete(gs, req->group_delete->stream, req->group_delete->group, on_group_reply, d);
  case RUNNEL__REQUEST__OP_GROUP_RESET: return reset(gs, req->group_reset, d);
  default: free(d); return; /* not reached: refused above */
  }
}
