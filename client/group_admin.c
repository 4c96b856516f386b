/*
 * group_admin.c — blocking consumer-group administration (create, list,
 * describe, delete, reset): one Request each through rn__client_call, the
 * answer converted into caller-owned structs (rn_group_desc_free).
 */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

#define CSTR(s) ((char *)(uintptr_t)(s))

void rn_group_desc_free(rn_group_desc_t *d) {
  if (!d) return;
  for (size_t i = 0; i < d->member_count; i++) {
    free(d->members[i].member_id);
    free(d->members[i].client_id);
    free(d->members[i].shards);
  }
  for (size_t i = 0; i < d->shard_count; i++) free(d->shards[i].owner);
  free(d->members);
  free(d->shards);
  free(d->stream);
  free(d->group);
  free(d);
}

static char *dup0(const char *s) { return strdup(s ? s : ""); }

static rn_group_desc_t *desc_from_pb(const Runnel__GroupDescription *g) {
  rn_group_desc_t *d = calloc(1, sizeof(*d));
  if (!d) return NULL;
  d->stream = dup0(g->stream);
  d->group = dup0(g->group);
  d->start_kind = (rn_pos_kind_t)g->start_kind;
  d->start_value = g->start_value;
  d->created_ms = g->created_ms;
  d->members = calloc(g->n_members + 1, sizeof(*d->members));
  d->shards = calloc(g->n_shards + 1, sizeof(*d->shards));
  bool ok = d->stream && d->group && d->members && d->shards;
  for (size_t i = 0; ok && i < g->n_members; i++) {
    const Runnel__GroupMemberInfo *m = g->members[i];
    rn_group_member_info_t *o = &d->members[d->member_count++];
    o->member_id = dup0(m->member_id);
    o->client_id = dup0(m->client_id);
    o->member_epoch = m->member_epoch;
    o->session_timeout_ms = m->session_timeout_ms;
    o->last_heartbeat_ms = m->last_heartbeat_ms;
    o->pending = m->pending;
    o->shards = calloc(m->n_shards + 1, sizeof(uint32_t));
    ok = o->member_id && o->client_id && o->shards;
    if (ok && m->n_shards) {
      memcpy(o->shards, m->shards, m->n_shards * sizeof(uint32_t));
      o->shard_count = m->n_shards;
    }
  }
  for (size_t i = 0; ok && i < g->n_shards; i++) {
    const Runnel__GroupShardInfo *s = g->shards[i];
    rn_group_shard_info_t *o = &d->shards[d->shard_count++];
    o->shard = s->shard;
    o->owner = dup0(s->owner);
    o->has_checkpoint = s->has_checkpoint;
    o->checkpoint = s->checkpoint;
    o->checkpoint_ms = s->checkpoint_ms;
    o->start_offset = s->start_offset;
    o->end_offset = s->end_offset;
    o->lag_records = s->lag_records;
    o->lag_ms = s->lag_ms;
    ok = o->owner != NULL;
  }
  if (!ok) {
    rn_group_desc_free(d);
    return NULL;
  }
  return d;
}

static rn_err_t desc_out(const Runnel__GroupDescription *g, rn_group_desc_t **out) {
  if (!out) return 0;
  if (!g) {
    rn__errmsg_set("broker answered without a group description");
    return RN_EBADREQUEST;
  }
  *out = desc_from_pb(g);
  return *out ? 0 : RN_ENOMEM;
}

rn_err_t rn_group_create(rn_client_t *cl, const char *stream, const char *group, rn_pos_kind_t start_kind,
                         int64_t start_value) {
  rn__errmsg_clear();
  if (!cl || !stream || !group) return RN_EINVAL;
  Runnel__GroupCreateRequest r;
  runnel__group_create_request__init(&r);
  r.stream = CSTR(stream);
  r.group = CSTR(group);
  r.start_kind = (Runnel__PositionKind)start_kind;
  r.start_value = start_value;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_CREATE;
  req.group_create = &r;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call_op(cl, &req, RUNNEL__RESPONSE__OP_GROUP_CREATE, &resp);
  if (!err) runnel__response__free_unpacked(resp, NULL);
  return err;
}

rn_err_t rn_group_list(rn_client_t *cl, const char *stream, rn_stream_names_t **out) {
  rn__errmsg_clear();
  if (!cl || !stream || !out) return RN_EINVAL;
  Runnel__GroupListRequest r;
  runnel__group_list_request__init(&r);
  r.stream = CSTR(stream);
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_LIST;
  req.group_list = &r;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call_op(cl, &req, RUNNEL__RESPONSE__OP_GROUP_LIST, &resp);
  if (err) return err;
  const Runnel__GroupListResponse *lr = resp->group_list;
  rn_stream_names_t *n = calloc(1, sizeof(*n));
  if (n) n->names = calloc(lr->n_groups + 1, sizeof(char *));
  if (!n || !n->names) {
    free(n);
    runnel__response__free_unpacked(resp, NULL);
    return RN_ENOMEM;
  }
  for (size_t i = 0; i < lr->n_groups; i++) {
    n->names[i] = strdup(lr->groups[i]);
    if (!n->names[i]) {
      rn_stream_names_free(n);
      runnel__response__free_unpacked(resp, NULL);
      return RN_ENOMEM;
    }
    n->count++;
  }
  runnel__response__free_unpacked(resp, NULL);
  *out = n;
  return 0;
}

rn_err_t rn_group_describe(rn_client_t *cl, const char *stream, const char *group, rn_group_desc_t **out) {
  rn__errmsg_clear();
  if (!cl || !stream || !group || !out) return RN_EINVAL;
  Runnel__GroupDescribeRequest r;
  runnel__group_describe_request__init(&r);
  r.stream = CSTR(stream);
  r.group = CSTR(group);
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_DESCRIBE;
  req.group_describe = &r;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call_op(cl, &req, RUNNEL__RESPONSE__OP_GROUP_DESCRIBE, &resp);
  if (err) return err;
  err = desc_out(resp->group_describe->group, out);
  runnel__response__free_unpacked(resp, NULL);
  return err;
}

rn_err_t rn_group_delete(rn_client_t *cl, const char *stream, const char *group) {
  rn__errmsg_clear();
  if (!cl || !stream || !group) return RN_EINVAL;
  Runnel__GroupDeleteRequest r;
  runnel__group_delete_request__init(&r);
  r.stream = CSTR(stream);
  r.group = CSTR(group);
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_DELETE;
  req.group_delete = &r;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call_op(cl, &req, RUNNEL__RESPONSE__OP_GROUP_DELETE, &resp);
  if (!err) runnel__response__free_unpacked(resp, NULL);
  return err;
}

rn_err_t rn_group_reset(rn_client_t *cl, const char *stream, const char *group, rn_pos_kind_t kind, int64_t value,
                        const uint32_t *shards, size_t n, rn_group_desc_t **out) {
  rn__errmsg_clear();
  if (!cl || !stream || !group || (n && !shards)) return RN_EINVAL;
  Runnel__GroupResetRequest r;
  runnel__group_reset_request__init(&r);
  r.stream = CSTR(stream);
  r.group = CSTR(group);
  r.kind = (Runnel__PositionKind)kind;
  r.value = value;
  r.shards = (uint32_t *)(uintptr_t)shards;
  r.n_shards = n;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_RESET;
  req.group_reset = &r;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call_op(cl, &req, RUNNEL__RESPONSE__OP_GROUP_RESET, &resp);
  if (err) return err;
  err = desc_out(resp->group_reset->group, out);
  runnel__response__free_unpacked(resp, NULL);
  return err;
}
