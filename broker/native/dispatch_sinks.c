/*
 * dispatch_sinks.c — the native protocol's archive-sink operations
 * (Request ops 50-54) translated to rn_sinks.h and their replies back to
 * Runnel__Response. Pure translation: no sink rule lives here. Replies are
 * built on the stack or in arrays freed when the caller's callback returns.
 *
 * Loop thread only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "dispatch.h"
#include "dispatch_sinks.h"
#include "rn_base.h"
#include "rn_sinks.h"

_Static_assert((int)RN_SINK_COMP_ZSTD == (int)RUNNEL__SINK_COMPRESSION__SINK_COMPRESSION_ZSTD, "SinkCompression");
_Static_assert((int)RN_SINK_PARQUET == (int)RUNNEL__SINK_FORMAT__SINK_FORMAT_PARQUET, "SinkFormat");

#define W(s) ((char *)(uintptr_t)(s))

typedef struct sdisp {
  Runnel__Request__OpCase op;
  rn_native_reply_cb cb;
  void *ctx;
} sdisp_t;

/* A SinkDescription with the arrays it points to. */
typedef struct wire_sink {
  Runnel__SinkDescription d;
  Runnel__SinkConfig c;
  Runnel__SinkShardInfo *si, **sp;
} wire_sink_t;

static void wire_sink_init(wire_sink_t *w, const rn_sink_description_t *s) {
  runnel__sink_description__init(&w->d);
  runnel__sink_config__init(&w->c);
  const rn_sink_config_t *c = &s->config;
  w->c.name = W(c->name);
  w->c.stream = W(c->stream);
  w->c.destination = W(c->destination);
  w->c.format = (Runnel__SinkFormat)c->format;
  w->c.compression = (Runnel__SinkCompression)c->compression;
  w->c.schema = W(c->schema ? c->schema : "");
  w->c.prefix = W(c->prefix ? c->prefix : "");
  w->c.error_prefix = W(c->error_prefix ? c->error_prefix : "");
  w->c.buffer_bytes = c->buffer_bytes;
  w->c.buffer_interval_ms = c->buffer_interval_ms;
  w->c.event_time_field = W(c->event_time_field ? c->event_time_field : "");
  w->c.start_kind = c->start_latest ? RUNNEL__POSITION_KIND__POSITION_LATEST : RUNNEL__POSITION_KIND__POSITION_EARLIEST;
  w->d.config = &w->c;
  w->d.paused = s->paused;
  w->d.state = W(s->state);
  w->d.created_ms = s->created_ms;
  w->si = rn_xcalloc(s->n_shards + 1, sizeof *w->si);
  w->sp = rn_xcalloc(s->n_shards + 1, sizeof *w->sp);
  for (size_t i = 0; i < s->n_shards; i++) {
    const rn_sink_shard_info_t *x = &s->shards[i];
    Runnel__SinkShardInfo *o = &w->si[i];
    runnel__sink_shard_info__init(o);
    o->shard = x->shard;
    o->checkpoint = x->checkpoint;
    o->end_offset = x->end_offset;
    o->lag_records = x->lag_records;
    o->lag_ms = x->lag_ms;
    o->buffered_bytes = x->buffered_bytes;
    o->buffered_records = x->buffered_records;
    o->state = W(x->state);
    o->last_error = W(x->last_error);
    o->objects = x->objects;
    o->records = x->records;
    o->error_records = x->error_records;
    o->pending = x->pending;
    o->pending_first = x->pending_first;
    o->pending_last = x->pending_last;
    w->sp[i] = o;
  }
  w->d.shards = w->sp;
  w->d.n_shards = s->n_shards;
}

static void on_sink_reply(void *arg, const rn_sink_reply_t *rep) {
  sdisp_t *d = arg;
  rn_native_reply_cb cb = d->cb;
  void *ctx = d->ctx;
  Runnel__Request__OpCase op = d->op;
  free(d);
  if (rep->err) return rn_native_reply_error(cb, ctx, rep->err, rep->message);
  Runnel__Response resp;
  runnel__response__init(&resp);
  wire_sink_t w = {0};
  if (rep->sink) wire_sink_init(&w, rep->sink);
  Runnel__SinkCreateResponse cr;
  Runnel__SinkListResponse lr;
  Runnel__SinkDescribeResponse dr;
  Runnel__SinkPauseResponse pr;
  Runnel__SinkDeleteResponse xr;
  switch (op) {
  case RUNNEL__REQUEST__OP_SINK_CREATE:
    runnel__sink_create_response__init(&cr);
    cr.sink = rep->sink ? &w.d : NULL;
    resp.op_case = RUNNEL__RESPONSE__OP_SINK_CREATE;
    resp.sink_create = &cr;
    break;
  case RUNNEL__REQUEST__OP_SINK_LIST:
    runnel__sink_list_response__init(&lr);
    lr.names = (char **)(uintptr_t)rep->names;
    lr.n_names = rep->n_names;
    resp.op_case = RUNNEL__RESPONSE__OP_SINK_LIST;
    resp.sink_list = &lr;
    break;
  case RUNNEL__REQUEST__OP_SINK_DESCRIBE:
    runnel__sink_describe_response__init(&dr);
    dr.sink = rep->sink ? &w.d : NULL;
    resp.op_case = RUNNEL__RESPONSE__OP_SINK_DESCRIBE;
    resp.sink_describe = &dr;
    break;
  case RUNNEL__REQUEST__OP_SINK_PAUSE:
    runnel__sink_pause_response__init(&pr);
    pr.sink = rep->sink ? &w.d : NULL;
    resp.op_case = RUNNEL__RESPONSE__OP_SINK_PAUSE;
    resp.sink_pause = &pr;
    break;
  case RUNNEL__REQUEST__OP_SINK_DELETE:
    runnel__sink_delete_response__init(&xr);
    resp.op_case = RUNNEL__RESPONSE__OP_SINK_DELETE;
    resp.sink_delete = &xr;
    break;
  default:
    break;
  }
  cb(ctx, &resp);
  free(w.si);
  free(w.sp);
}

static void create(rn_sinks_t *ss, const Runnel__SinkCreateRequest *r, sdisp_t *d) {
  const Runnel__SinkConfig *c = r->config;
  if (c == NULL) return on_sink_reply(d, &(rn_sink_reply_t){.err = RN_EBADREQUEST, .message = "SinkCreate without a config"});
  rn_sink_config_t q = {
      .name = c->name,
      .stream = c->stream,
      .destination = c->destination,
      .format = (rn_sink_format_t)c->format,
      .compression = (rn_sink_compression_t)c->compression,
      .schema = c->schema,
      .prefix = c->prefix,
      .error_prefix = c->error_prefix,
      .buffer_bytes = c->buffer_bytes,
      .buffer_interval_ms = c->buffer_interval_ms,
      .event_time_field = c->event_time_field,
      .start_latest = c->start_kind == RUNNEL__POSITION_KIND__POSITION_LATEST,
  };
  if (c->format > RUNNEL__SINK_FORMAT__SINK_FORMAT_PARQUET)
    return on_sink_reply(d, &(rn_sink_reply_t){.err = RN_EINVAL, .message = "unknown sink format"});
  if (c->compression > RUNNEL__SINK_COMPRESSION__SINK_COMPRESSION_ZSTD)
    return on_sink_reply(d, &(rn_sink_reply_t){.err = RN_EINVAL, .message = "unknown sink compression"});
  if (c->start_kind != RUNNEL__POSITION_KIND__POSITION_LATEST && c->start_kind != RUNNEL__POSITION_KIND__POSITION_EARLIEST)
    return on_sink_reply(d, &(rn_sink_reply_t){.err = RN_EINVAL, .message = "a sink starts at EARLIEST or LATEST"});
  rn_sinks_create(ss, &q, on_sink_reply, d);
}

void rn__native_handle_sink(rn_core_t *core, const Runnel__Request *req, rn_native_reply_cb cb, void *ctx) {
  rn_sinks_t *ss = rn_sinks_of(core);
  const void *body = NULL;
  const char *what = NULL;
  switch (req->op_case) {
  case RUNNEL__REQUEST__OP_SINK_CREATE: body = req->sink_create, what = "SinkCreate"; break;
  case RUNNEL__REQUEST__OP_SINK_LIST: body = req->sink_list, what = "SinkList"; break;
  case RUNNEL__REQUEST__OP_SINK_DESCRIBE: body = req->sink_describe, what = "SinkDescribe"; break;
  case RUNNEL__REQUEST__OP_SINK_PAUSE: body = req->sink_pause, what = "SinkPause"; break;
  case RUNNEL__REQUEST__OP_SINK_DELETE: body = req->sink_delete, what = "SinkDelete"; break;
  default: {
    char msg[64];
    snprintf(msg, sizeof msg, "unknown sink operation %d", (int)req->op_case);
    return rn_native_reply_error(cb, ctx, RN_EUNKNOWNOP, msg);
  }
  }
  if (!ss) return rn_native_reply_error(cb, ctx, RN_EUNKNOWNOP, "archive sinks are not open on this broker");
  if (!body) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s without a body", what);
    return rn_native_reply_error(cb, ctx, RN_EBADREQUEST, msg);
  }
  sdisp_t *d = rn_xmalloc(sizeof *d);
  *d = (sdisp_t){req->op_case, cb, ctx};
  switch (req->op_case) {
  case RUNNEL__REQUEST__OP_SINK_CREATE: return create(ss, req->sink_create, d);
  case RUNNEL__REQUEST__OP_SINK_LIST: return rn_sinks_list(ss, on_sink_reply, d);
  case RUNNEL__REQUEST__OP_SINK_DESCRIBE: return rn_sinks_describe(ss, req->sink_describe->name, on_sink_reply, d);
  case RUNNEL__REQUEST__OP_SINK_PAUSE:
    return rn_sinks_pause(ss, req->sink_pause->name, req->sink_pause->resume, on_sink_reply, d);
  case RUNNEL__REQUEST__OP_SINK_DELETE: return rn_sinks_delete(ss, req->sink_delete->name, on_sink_reply, d);
  default: free(d); return;
  }
}
