/*
 * admin.c — the blocking admin calls (streams, retention, offsets, tiered
 * storage's restore and status): each
 * builds one Request, waits for its Response through rn__client_call and
 * converts the answer into caller-owned result structs (one allocation tree
 * per result, freed by the matching _free).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

static void copy_key(uint8_t out[RN_HASH_KEY_BYTES], ProtobufCBinaryData b) {
  memset(out, 0, RN_HASH_KEY_BYTES);
  if (b.len == RN_HASH_KEY_BYTES) {
    memcpy(out, b.data, RN_HASH_KEY_BYTES);
  } else if (b.len > 0 && b.len < RN_HASH_KEY_BYTES) {
    /* tolerate a shortened big-endian encoding */
    memcpy(out + RN_HASH_KEY_BYTES - b.len, b.data, b.len);
  }
}

rn_stream_desc_t *rn__desc_from_pb(const Runnel__StreamDescription *sd) {
  rn_stream_desc_t *d = calloc(1, sizeof *d);
  if (d == NULL) return NULL;
  const Runnel__StreamConfig *c = sd->config;
  d->name = strdup(c && c->name ? c->name : "");
  d->status = strdup(sd->status ? sd->status : "");
  if (c) {
    d->retention_ms = c->retention_ms;
    d->retention_bytes = c->retention_bytes;
    d->durability = (rn_durability_t)c->durability;
    d->tiered = c->tiered;
    d->local_retention_ms = c->local_retention_ms;
    d->local_retention_bytes = c->local_retention_bytes;
    d->dedup_key = (rn_dedup_key_t)c->dedup_key;
    d->dedup_window_ms = c->dedup_window_ms;
    if (c->dedup_key == RUNNEL__DEDUP_KEY__DEDUP_FIELD && c->dedup_field && !(d->dedup_field = strdup(c->dedup_field))) {
      rn_stream_desc_free(d);
      return NULL;
    }
  }
  d->created_ms = sd->created_ms;
  d->shard_count = sd->n_shards;
  d->shards = sd->n_shards ? calloc(sd->n_shards, sizeof *d->shards) : NULL;
  if (d->name == NULL || d->status == NULL || (sd->n_shards && d->shards == NULL)) {
    rn_stream_desc_free(d);
    return NULL;
  }
  for (size_t i = 0; i < sd->n_shards; i++) {
    const Runnel__ShardInfo *si = sd->shards[i];
    rn_shard_info_t *s = &d->shards[i];
    s->index = si->index;
    if (si->shard_id && si->shard_id[0]) {
      snprintf(s->shard_id, sizeof s->shard_id, "%s", si->shard_id);
    } else {
      snprintf(s->shard_id, sizeof s->shard_id, "shardId-%012u", si->index);
    }
    copy_key(s->hash_key_start, si->hash_key_start);
    copy_key(s->hash_key_end, si->hash_key_end);
    s->start_offset = si->start_offset;
    s->end_offset = si->end_offset;
    s->last_append_ms = si->last_append_ms;
    s->stored_bytes = si->stored_bytes;
    s->remote_start_offset = si->remote_start_offset;
    s->local_start_offset = si->local_start_offset;
    s->remote_bytes = si->remote_bytes;
    s->remote_segments = si->remote_segments;
    s->local_segments = si->local_segments;
    s->upload_backlog_bytes = si->upload_backlog_bytes;
    s->upload_backlog_segments = si->upload_backlog_segments;
    s->upload_backlog_age_ms = si->upload_backlog_age_ms;
    s->leader = si->leader;
    snprintf(s->leader_address, sizeof s->leader_address, "%s", si->leader_address ? si->leader_address : "");
    s->leader_epoch = si->leader_epoch;
    for (size_t k = 0; k < si->n_replicas && k < 5; k++) s->replicas[s->replica_count++] = si->replicas[k];
    for (size_t k = 0; k < si->n_isr && k < 5; k++) s->isr[s->isr_count++] = si->isr[k];
  }
  return d;
}

void rn_stream_desc_free(rn_stream_desc_t *d) {
  if (d == NULL) return;
  free(d->name);
  free(d->status);
  free(d->dedup_field);
  free(d->shards);
  free(d);
}

void rn_stream_names_free(rn_stream_names_t *n) {
  if (n == NULL) return;
  for (size_t i = 0; i < n->count; i++) free(n->names[i]);
  free(n->names);
  free(n);
}

void rn_offsets_free(rn_offsets_t *o) {
  if (o == NULL) return;
  free(o->shards);
  free(o);
}

/* Take the description out of a response into *out (when out != NULL). */
static rn_err_t desc_out(const Runnel__StreamDescription *sd, rn_stream_desc_t **out) {
  if (out == NULL) return 0;
  if (sd == NULL) {
    rn__errmsg_set("broker answered without a stream description");
    return RN_EBADREQUEST;
  }
  *out = rn__desc_from_pb(sd);
  return *out ? 0 : RN_ENOMEM;
}

static rn_err_t check_op(const Runnel__Response *resp, Runnel__Response__OpCase want) {
  if (resp->op_case != want) {
    rn__errmsg_set("broker answered with the wrong message (%d for %d)", (int)resp->op_case, (int)want);
    return RN_EBADREQUEST;
  }
  return 0;
}

rn_err_t rn_stream_create(rn_client_t *cl, const rn_stream_config_t *config, rn_stream_desc_t **out) {
  rn__errmsg_clear();
  if (cl == NULL || config == NULL || config->name == NULL) return RN_EINVAL;
  Runnel__StreamConfig sc;
  runnel__stream_config__init(&sc);
  sc.name = (char *)(uintptr_t)config->name;
  sc.shard_count = config->shard_count;
  sc.retention_ms = config->retention_ms;
  sc.retention_bytes = config->retention_bytes;
  sc.durability = (Runnel__Durability)config->durability;
  sc.tiered = config->tiered;
  sc.local_retention_ms = config->tiered ? config->local_retention_ms : 0;
  sc.local_retention_bytes = config->tiered ? config->local_retention_bytes : 0;
  sc.dedup_key = (Runnel__DedupKey)config->dedup_key;
  sc.dedup_field = (char *)(uintptr_t)(config->dedup_field ? config->dedup_field : "");
  sc.dedup_window_ms = config->dedup_window_ms;
  sc.replication = config->replication;
  sc.min_insync = config->min_insync;
  Runnel__CreateStreamRequest cr;
  runnel__create_stream_request__init(&cr);
  cr.config = &sc;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_CREATE_STREAM;
  req.create_stream = &cr;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call(cl, &req, 0, &resp);
  if (err) return err;
  err = check_op(resp, RUNNEL__RESPONSE__OP_CREATE_STREAM);
  if (!err) err = desc_out(resp->create_stream->stream, out);
  runnel__response__free_unpacked(resp, NULL);
  return err;
}

rn_err_t rn_stream_delete(rn_client_t *cl, const char *name) {
  rn__errmsg_clear();
  if (cl == NULL || name == NULL) return RN_EINVAL;
  Runnel__DeleteStreamRequest dr;
  runnel__delete_stream_request__init(&dr);
  dr.name = (char *)(uintptr_t)name;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_DELETE_STREAM;
  req.delete_stream = &dr;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call(cl, &req, 0, &resp);
  if (err) return err;
  err = check_op(resp, RUNNEL__RESPONSE__OP_DELETE_STREAM);
  runnel__response__free_unpacked(resp, NULL);
  return err;
}

rn_err_t rn_stream_list(rn_client_t *cl, rn_stream_names_t **out) {
  rn__errmsg_clear();
  if (cl == NULL || out == NULL) return RN_EINVAL;
  Runnel__ListStreamsRequest lr;
  runnel__list_streams_request__init(&lr);
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_LIST_STREAMS;
  req.list_streams = &lr;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call(cl, &req, 0, &resp);
  if (err) return err;
  err = check_op(resp, RUNNEL__RESPONSE__OP_LIST_STREAMS);
  if (!err) {
    const Runnel__ListStreamsResponse *l = resp->list_streams;
    rn_stream_names_t *n = calloc(1, sizeof *n);
    if (n && l->n_names) n->names = calloc(l->n_names, sizeof *n->names);
    if (n == NULL || (l->n_names && n->names == NULL)) {
      free(n);
      err = RN_ENOMEM;
    } else {
      for (size_t i = 0; i < l->n_names && !err; i++) {
        n->names[i] = strdup(l->names[i]);
        if (n->names[i] == NULL) {
          err = RN_ENOMEM;
        } else {
          n->count++;
        }
      }
      if (err) {
        rn_stream_names_free(n);
      } else {
        *out = n;
      }
    }
  }
  runnel__response__free_unpacked(resp, NULL);
  return err;
}

rn_err_t rn_stream_describe(rn_client_t *cl, const char *name, rn_stream_desc_t **out) {
  rn__errmsg_clear();
  if (cl == NULL || name == NULL || out == NULL) return RN_EINVAL;
  Runnel__DescribeStreamRequest dr;
  runnel__describe_stream_request__init(&dr);
  dr.name = (char *)(uintptr_t)name;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_DESCRIBE_STREAM;
  req.describe_stream = &dr;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call(cl, &req, 0, &resp);
  if (err) return err;
  err = check_op(resp, RUNNEL__RESPONSE__OP_DESCRIBE_STREAM);
  if (!err) err = desc_out(resp->describe_stream->stream, out);
  runnel__response__free_unpacked(resp, NULL);
  return err;
}

rn_err_t rn_stream_set_retention(rn_client_t *cl, const char *name, int64_t retention_ms,
                                 int64_t retention_bytes, rn_stream_desc_t **out) {
  rn_retention_t r = {.retention_ms = retention_ms, .retention_bytes = retention_bytes};
  return rn_stream_set_retentions(cl, name, &r, out);
}

rn_err_t rn_stream_set_retentions(rn_client_t *cl, const char *name, const rn_retention_t *r, rn_stream_desc_t **out) {
  rn__errmsg_clear();
  if (cl == NULL || name == NULL || r == NULL) return RN_EINVAL;
  Runnel__SetRetentionRequest sr;
  runnel__set_retention_request__init(&sr);
  sr.name = (char *)(uintptr_t)name;
  sr.retention_ms = r->retention_ms;
  sr.retention_bytes = r->retention_bytes;
  sr.local_retention_ms = r->local_retention_ms;
  sr.local_retention_bytes = r->local_retention_bytes;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_SET_RETENTION;
  req.set_retention = &sr;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call(cl, &req, 0, &resp);
  if (err) return err;
  err = check_op(resp, RUNNEL__RESPONSE__OP_SET_RETENTION);
  if (!err) err = desc_out(resp->set_retention->stream, out);
  runnel__response__free_unpacked(resp, NULL);
  return err;
}

rn_err_t rn_stream_restore(rn_client_t *cl, const char *name, rn_stream_desc_t **out) {
  rn__errmsg_clear();
  if (cl == NULL || name == NULL) return RN_EINVAL;
  Runnel__RestoreStreamRequest rr;
  runnel__restore_stream_request__init(&rr);
  rr.name = (char *)(uintptr_t)name;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_RESTORE_STREAM;
  req.restore_stream = &rr;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call(cl, &req, 0, &resp);
  if (err) return err;
  err = check_op(resp, RUNNEL__RESPONSE__OP_RESTORE_STREAM);
  if (!err) err = desc_out(resp->restore_stream->stream, out);
  runnel__response__free_unpacked(resp, NULL);
  return err;
}

rn_err_t rn_stream_list_offsets(rn_client_t *cl, const char *name, rn_pos_kind_t kind, int64_t value,
                                rn_offsets_t **out) {
  rn__errmsg_clear();
  if (cl == NULL || name == NULL || out == NULL) return RN_EINVAL;
  /* An empty shard list means "every shard, at LATEST" (runnel.proto), so
   * any other position needs one entry per shard: learn them first. */
  rn_stream_desc_t *desc = NULL;
  Runnel__ShardFetch *sf = NULL, **sfs = NULL;
  Runnel__ListOffsetsRequest lr;
  runnel__list_offsets_request__init(&lr);
  lr.stream = (char *)(uintptr_t)name;
  if (kind != RN_POS_LATEST) {
    rn_err_t derr = rn_stream_describe(cl, name, &desc);
    if (derr) return derr;
    size_t n = desc->shard_count;
    sf = calloc(n ? n : 1, sizeof *sf);
    sfs = calloc(n ? n : 1, sizeof *sfs);
    if (sf == NULL || sfs == NULL) {
      free(sf);
      free(sfs);
      rn_stream_desc_free(desc);
      return RN_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
      runnel__shard_fetch__init(&sf[i]);
      sf[i].shard = desc->shards[i].index;
      sf[i].kind = (Runnel__PositionKind)kind;
      sf[i].value = value;
      sfs[i] = &sf[i];
    }
    lr.n_shards = n;
    lr.shards = sfs;
  }
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_LIST_OFFSETS;
  req.list_offsets = &lr;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call(cl, &req, 0, &resp);
  free(sf);
  free(sfs);
  rn_stream_desc_free(desc);
  if (err) return err;
  err = check_op(resp, RUNNEL__RESPONSE__OP_LIST_OFFSETS);
  if (!err) {
    const Runnel__ListOffsetsResponse *l = resp->list_offsets;
    rn_offsets_t *o = calloc(1, sizeof *o);
    if (o && l->n_shards) o->shards = calloc(l->n_shards, sizeof *o->shards);
    if (o == NULL || (l->n_shards && o->shards == NULL)) {
      free(o);
      err = RN_ENOMEM;
    } else {
      o->count = l->n_shards;
      for (size_t i = 0; i < l->n_shards; i++) {
        const Runnel__ShardOffsets *so = l->shards[i];
        o->shards[i].shard = so->shard;
        o->shards[i].err = rn__pb_error(so->error, NULL, 0);
        o->shards[i].offset = so->offset;
        o->shards[i].start_offset = so->start_offset;
        o->shards[i].end_offset = so->end_offset;
      }
      *out = o;
    }
  }
  runnel__response__free_unpacked(resp, NULL);
  return err;
}

/* ---- broker information ------------------------------------------------------------ */

void rn_broker_info_free(rn_broker_info_t *info) {
  if (info == NULL) return;
  free(info->version);
  free(info->data_dir);
  free(info->data_dir_message);
  for (size_t i = 0; i < info->failed_shard_count; i++) {
    free(info->failed_shards[i].stream);
    free(info->failed_shards[i].message);
  }
  free(info->failed_shards);
  free(info->health);
  free(info);
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

rn_err_t rn_broker_info(rn_client_t *cl, rn_broker_info_t **out) {
  rn__errmsg_clear();
  if (cl == NULL || out == NULL) return RN_EINVAL;
  *out = NULL;
  Runnel__BrokerInfoRequest bir;
  runnel__broker_info_request__init(&bir);
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_BROKER_INFO;
  req.broker_info = &bir;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call(cl, &req, 0, &resp);
  if (err) return err;
  err = check_op(resp, RUNNEL__RESPONSE__OP_BROKER_INFO);
  if (err) {
    runnel__response__free_unpacked(resp, NULL);
    return err;
  }
  const Runnel__BrokerInfoResponse *bi = resp->broker_info;
  rn_broker_info_t *info = calloc(1, sizeof *info);
  bool ok = info != NULL;
  if (ok) {
    info->version = dup_or_empty(bi->version);
    info->start_ms = bi->start_ms;
    info->data_dir = dup_or_empty(bi->data_dir);
    info->data_dir_free_bytes = bi->data_dir_free_bytes;
    info->data_dir_total_bytes = bi->data_dir_total_bytes;
    info->data_dir_err = rn__pb_error(bi->data_dir_error, NULL, 0);
    info->data_dir_message = dup_or_empty(info->data_dir_err ? bi->data_dir_error->message : "");
    rn__limits_t l;
    rn__limits_default(&l);
    const Runnel__BrokerLimits *bl = bi->limits;
    info->max_record_bytes = bl && bl->max_record_bytes ? bl->max_record_bytes : l.max_record_bytes;
    info->max_batch_bytes = bl && bl->max_batch_bytes ? bl->max_batch_bytes : l.max_batch_bytes;
    info->max_frame_bytes = bl && bl->max_frame_bytes ? bl->max_frame_bytes : l.max_frame_bytes;
    info->max_fetch_bytes = bl && bl->max_fetch_bytes ? bl->max_fetch_bytes : l.max_fetch_bytes;
    info->stream_count = bi->stream_count;
    info->shard_count = bi->shard_count;
    info->health = dup_or_empty(bi->health && bi->health[0] ? bi->health : (bi->n_failed_shards ? "degraded" : "ok"));
    ok = info->version && info->data_dir && info->data_dir_message && info->health;
  }
  if (ok && bi->n_failed_shards) {
    info->failed_shards = calloc(bi->n_failed_shards, sizeof *info->failed_shards);
    ok = info->failed_shards != NULL;
    for (size_t i = 0; ok && i < bi->n_failed_shards; i++) {
      const Runnel__FailedShard *fs = bi->failed_shards[i];
      rn_failed_shard_t *f = &info->failed_shards[i];
      info->failed_shard_count++;
      f->stream = dup_or_empty(fs->stream);
      f->shard = fs->shard;
      f->err = rn__pb_error(fs->error, NULL, 0);
      if (f->err == 0) f->err = RN_ELOGFAILED; /* listed as failed without a reason */
      f->message = dup_or_empty(fs->error && fs->error->message ? fs->error->message : "");
      ok = f->stream && f->message;
    }
  }
  runnel__response__free_unpacked(resp, NULL);
  if (!ok) {
    rn_broker_info_free(info);
    return RN_ENOMEM;
  }
  *out = info;
  return 0;
}

/* ---- tiered storage ---------------------------------------------------------------------- */

void rn_tier_status_free(rn_tier_status_t *st) {
  if (st == NULL) return;
  free(st->store);
  free(st->location);
  free(st->last_error);
  free(st->ops);
  free(st);
}

rn_err_t rn_tier_status(rn_client_t *cl, rn_tier_status_t **out) {
  rn__errmsg_clear();
  if (cl == NULL || out == NULL) return RN_EINVAL;
  *out = NULL;
  Runnel__TierStatusRequest tr;
  runnel__tier_status_request__init(&tr);
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_TIER_STATUS;
  req.tier_status = &tr;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call(cl, &req, 0, &resp);
  if (err) return err;
  err = check_op(resp, RUNNEL__RESPONSE__OP_TIER_STATUS);
  if (err) {
    runnel__response__free_unpacked(resp, NULL);
    return err;
  }
  const Runnel__TierStatusResponse *r = resp->tier_status;
  rn_tier_status_t *st = calloc(1, sizeof *st);
  bool ok = st != NULL;
  if (ok) {
    st->enabled = r->enabled;
    st->store = dup_or_empty(r->store);
    st->location = dup_or_empty(r->location);
    st->uploads_active = r->uploads_active;
    st->backlog_bytes = r->backlog_bytes;
    st->backlog_segments = r->backlog_segments;
    st->backlog_age_ms = r->backlog_age_ms;
    st->bytes_uploaded = r->bytes_uploaded;
    st->bytes_downloaded = r->bytes_downloaded;
    st->cache_bytes = r->cache_bytes;
    st->cache_limit_bytes = r->cache_limit_bytes;
    st->cache_hits = r->cache_hits;
    st->cache_misses = r->cache_misses;
    st->cache_evictions = r->cache_evictions;
    st->orphans_collected = r->orphans_collected;
    st->remote_deletes = r->remote_deletes;
    st->corrupt_objects = r->corrupt_objects;
    st->last_err = rn__pb_error(r->last_error, NULL, 0);
    st->last_error = dup_or_empty(st->last_err && r->last_error->message ? r->last_error->message : "");
    st->tiered_streams = r->tiered_streams;
    st->tiered_shards = r->tiered_shards;
    st->remote_bytes = r->remote_bytes;
    st->remote_segments = r->remote_segments;
    st->disk_used_percent = r->disk_used_percent;
    st->disk_high_water = r->disk_high_water;
    st->backpressure = r->backpressure;
    st->gets_inflight = r->gets_inflight;
    st->gets_inflight_max = r->gets_inflight_max;
    st->delete_jobs = r->delete_jobs;
    ok = st->store && st->location && st->last_error;
  }
  if (ok && r->n_ops) {
    st->ops = calloc(r->n_ops, sizeof *st->ops);
    ok = st->ops != NULL;
    for (size_t i = 0; ok && i < r->n_ops; i++) {
      const Runnel__TierOpStats *o = r->ops[i];
      rn_tier_op_stats_t *d = &st->ops[st->op_count++];
      snprintf(d->op, sizeof d->op, "%s", o->op ? o->op : "");
      d->requests = o->requests;
      d->errors = o->errors;
      d->retries = o->retries;
      d->latency_count = o->latency_count;
      d->latency_sum_seconds = o->latency_sum_seconds;
      d->latency_p50_seconds = o->latency_p50_seconds;
      d->latency_p99_seconds = o->latency_p99_seconds;
    }
  }
  runnel__response__free_unpacked(resp, NULL);
  if (!ok) {
    rn_tier_status_free(st);
    return RN_ENOMEM;
  }
  *out = st;
  return 0;
}
