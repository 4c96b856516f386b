/*
 * sink_admin.c — blocking archive-sink administration (create, list,
 * describe, pause/resume, delete): one Request each through
 * rn__client_call, the answer converted into caller-owned structs
 * (rn_sink_desc_free).
 */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

#define CSTR(s) ((char *)(uintptr_t)(s))

static char *dup0(const char *s) { return strdup(s ? s : ""); }

void rn_sink_desc_free(rn_sink_desc_t *d) {
  if (!d) return;
  for (size_t i = 0; i < d->shard_count; i++) {
    free(d->shards[i].state);
    free(d->shards[i].last_error);
  }
  free(d->shards);
  free(d->name);
  free(d->stream);
  free(d->destination);
  free(d->schema);
  free(d->prefix);
  free(d->error_prefix);
  free(d->event_time_field);
  free(d->state);
  free(d);
}

/* A copy of s (NULL when the broker sent none), or RN_ENOMEM. */
static rn_err_t desc_out(const Runnel__SinkDescription *s, rn_sink_desc_t **out) {
  if (out == NULL) return 0;
  *out = NULL;
  if (s == NULL || s->config == NULL) {
    rn__errmsg_set("broker answered without the sink's description");
    return RN_EBADREQUEST;
  }
  const Runnel__SinkConfig *c = s->config;
  rn_sink_desc_t *d = calloc(1, sizeof *d);
  if (!d) return RN_ENOMEM;
  d->name = dup0(c->name);
  d->stream = dup0(c->stream);
  d->destination = dup0(c->destination);
  d->schema = dup0(c->schema);
  d->prefix = dup0(c->prefix);
  d->error_prefix = dup0(c->error_prefix);
  d->event_time_field = dup0(c->event_time_field);
  d->format = (rn_sink_format_t)c->format;
  d->compression = (rn_sink_compression_t)c->compression;
  d->buffer_bytes = c->buffer_bytes;
  d->buffer_interval_ms = c->buffer_interval_ms;
  d->start_latest = c->start_kind == RUNNEL__POSITION_KIND__POSITION_LATEST;
  d->paused = s->paused;
  d->state = dup0(s->state);
  d->created_ms = s->created_ms;
  d->shards = calloc(s->n_shards + 1, sizeof *d->shards);
  bool ok = d->name && d->stream && d->destination && d->schema && d->prefix && d->error_prefix &&
            d->event_time_field && d->state && d->shards;
  for (size_t i = 0; ok && i < s->n_shards; i++) {
    const Runnel__SinkShardInfo *x = s->shards[i];
    rn_sink_shard_desc_t *o = &d->shards[d->shard_count++];
    o->shard = x->shard;
    o->checkpoint = x->checkpoint;
    o->end_offset = x->end_offset;
    o->lag_records = x->lag_records;
    o->lag_ms = x->lag_ms;
    o->buffered_bytes = x->buffered_bytes;
    o->buffered_records = x->buffered_records;
    o->state = dup0(x->state);
    o->last_error = dup0(x->last_error);
    o->objects = x->objects;
    o->records = x->records;
    o->error_records = x->error_records;
    o->pending = x->pending;
    o->pending_first = x->pending_first;
    o->pending_last = x->pending_last;
    ok = o->state && o->last_error;
  }
  if (!ok) {
    rn_sink_desc_free(d);
    return RN_ENOMEM;
  }
  *out = d;
  return 0;
}

rn_err_t rn_sink_create(rn_client_t *cl, const rn_sink_conf_t *conf, rn_sink_desc_t **out) {
  rn__errmsg_clear();
  if (out) *out = NULL;
  if (!cl || !conf || !conf->name || !conf->stream || !conf->destination) return RN_EINVAL;
  Runnel__SinkConfig c;
  runnel__sink_config__init(&c);
  c.name = CSTR(conf->name);
  c.stream = CSTR(conf->stream);
  c.destination = CSTR(conf->destination);
  c.format = (Runnel__SinkFormat)conf->format;
  c.compression = (Runnel__SinkCompression)conf->compression;
  c.schema = CSTR(conf->schema ? conf->schema : "");
  c.prefix = CSTR(conf->prefix ? conf->prefix : "");
  c.error_prefix = CSTR(conf->error_prefix ? conf->error_prefix : "");
  c.buffer_bytes = conf->buffer_bytes;
  c.buffer_interval_ms = conf->buffer_interval_ms;
  c.event_time_field = CSTR(conf->event_time_field ? conf->event_time_field : "");
  c.start_kind = conf->start_latest ? RUNNEL__POSITION_KIND__POSITION_LATEST : RUNNEL__POSITION_KIND__POSITION_EARLIEST;
  Runnel__SinkCreateRequest r;
  runnel__sink_create_request__init(&r);
  r.config = &c;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_SINK_CREATE;
  req.sink_create = &r;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call_op(cl, &req, RUNNEL__RESPONSE__OP_SINK_CREATE, &resp);
  if (err) return err;
  err = desc_out(resp->sink_create->sink, out);
  runnel__response__free_unpacked(resp, NULL);
  return err;
}

rn_err_t rn_sink_list(rn_client_t *cl, rn_stream_names_t **out) {
  rn__errmsg_clear();
  if (!cl || !out) return RN_EINVAL;
  Runnel__SinkListRequest r;
  runnel__sink_list_request__init(&r);
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_SINK_LIST;
  req.sink_list = &r;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call_op(cl, &req, RUNNEL__RESPONSE__OP_SINK_LIST, &resp);
  if (err) return err;
  const Runnel__SinkListResponse *lr = resp->sink_list;
  rn_stream_names_t *n = calloc(1, sizeof(*n));
  if (n) n->names = calloc(lr->n_names + 1, sizeof(char *));
  if (!n || !n->names) {
    free(n);
    runnel__response__free_unpacked(resp, NULL);
    return RN_ENOMEM;
  }
  for (size_t i = 0; i < lr->n_names; i++) {
    n->names[i] = strdup(lr->names[i]);
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

rn_err_t rn_sink_describe(rn_client_t *cl, const char *name, rn_sink_desc_t **out) {
  rn__errmsg_clear();
  if (!cl || !name || !out) return RN_EINVAL;
  Runnel__SinkDescribeRequest r;
  runnel__sink_describe_request__init(&r);
  r.name = CSTR(name);
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_SINK_DESCRIBE;
  req.sink_describe = &r;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call_op(cl, &req, RUNNEL__RESPONSE__OP_SINK_DESCRIBE, &resp);
  if (err) return err;
  err = desc_out(resp->sink_describe->sink, out);
  runnel__response__free_unpacked(resp, NULL);
  return err;
}

rn_err_t rn_sink_pause(rn_client_t *cl, const char *name, bool resume, rn_sink_desc_t **out) {
  rn__errmsg_clear();
  if (out) *out = NULL;
  if (!cl || !name) return RN_EINVAL;
  Runnel__SinkPauseRequest r;
  runnel__sink_pause_request__init(&r);
  r.name = CSTR(name);
  r.resume = resume;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_SINK_PAUSE;
  req.sink_pause = &r;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call_op(cl, &req, RUNNEL__RESPONSE__OP_SINK_PAUSE, &resp);
  if (err) return err;
  err = desc_out(resp->sink_pause->sink, out);
  runnel__response__free_unpacked(resp, NULL);
  return err;
}

rn_err_t rn_sink_delete(rn_client_t *cl, const char *name) {
  rn__errmsg_clear();
  if (!cl || !name) return RN_EINVAL;
  Runnel__SinkDeleteRequest r;
  runnel__sink_delete_request__init(&r);
  r.name = CSTR(name);
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_SINK_DELETE;
  req.sink_delete = &r;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call_op(cl, &req, RUNNEL__RESPONSE__OP_SINK_DELETE, &resp);
  if (err) return err;
  runnel__response__free_unpacked(resp, NULL);
  return 0;
}
