/*
 * ctl_group.c — `runnelctl group ...`: list (one stream or every stream),
 * describe (once or --watch), create, delete, reset.
 *
 * reset is a plan first (per shard: current checkpoint -> new), applied only
 * with --execute, and refused for a group that does not exist unless
 * --create (a misspelt name must not silently become a new group).
 *
 * Unknown is never 0: a lag the broker does not know (lag_ms -1) prints as
 * "-" and as JSON null; so do a never-committed checkpoint's time.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_int.h"
#include "runnel/units.h"

static const char *pos_kind_name(rn_pos_kind_t k) {
  switch (k) {
    case RN_POS_EARLIEST: return "earliest";
    case RN_POS_LATEST: return "latest";
    case RN_POS_TIMESTAMP: return "timestamp";
    case RN_POS_OFFSET: return "offset";
  }
  return "unknown";
}

/* Sum of lag_records and the largest known lag_ms (-1 when none is known). */
static void group_totals(const rn_group_desc_t *d, uint64_t *lag_records, int64_t *lag_ms) {
  *lag_records = 0;
  *lag_ms = -1;
  for (size_t i = 0; i < d->shard_count; i++) {
    *lag_records += d->shards[i].lag_records;
    if (d->shards[i].lag_ms > *lag_ms) *lag_ms = d->shards[i].lag_ms;
  }
}

static json_t *ms_or_null(int64_t v, bool known) { return known ? json_integer(v) : json_null(); }

static json_t *group_json(const rn_group_desc_t *d) {
  int64_t now = ctl_now_ms();
  json_t *o = json_object();
  json_object_set_new(o, "stream", json_string(d->stream));
  json_object_set_new(o, "group", json_string(d->group));
  json_object_set_new(o, "start_kind", json_string(pos_kind_name(d->start_kind)));
  json_object_set_new(o, "start_value", json_integer(d->start_value));
  json_object_set_new(o, "created_ms", ms_or_null(d->created_ms, d->created_ms > 0));
  json_object_set_new(o, "member_count", json_integer((json_int_t)d->member_count));
  json_t *ma = json_array();
  for (size_t i = 0; i < d->member_count; i++) {
    const rn_group_member_info_t *m = &d->members[i];
    json_t *mo = json_object(), *sa = json_array();
    json_object_set_new(mo, "member_id", json_string(m->member_id));
    json_object_set_new(mo, "client_id", json_string(m->client_id ? m->client_id : ""));
    json_object_set_new(mo, "member_epoch", json_integer(m->member_epoch));
    json_object_set_new(mo, "session_timeout_ms", json_integer(m->session_timeout_ms));
    /* the broker says how long ago; *_ms fields are epoch times */
    json_object_set_new(mo, "last_heartbeat_ms", json_integer(now - m->last_heartbeat_ms));
    for (size_t k = 0; k < m->shard_count; k++) json_array_append_new(sa, json_integer(m->shards[k]));
    json_object_set_new(mo, "shards", sa);
    json_object_set_new(mo, "pending", json_integer(m->pending));
    json_array_append_new(ma, mo);
  }
  json_object_set_new(o, "members", ma);
  json_t *sa = json_array();
  for (size_t i = 0; i < d->shard_count; i++) {
    const rn_group_shard_info_t *s = &d->shards[i];
    char id[32];
    snprintf(id, sizeof id, "shardId-%012u", s->shard);
    json_t *so = json_object();
    json_object_set_new(so, "shard", json_integer(s->shard));
    json_object_set_new(so, "shard_id", json_string(id));
    json_object_set_new(so, "owner", s->owner && s->owner[0] ? json_string(s->owner) : json_null());
    json_object_set_new(so, "has_checkpoint", json_boolean(s->has_checkpoint));
    json_object_set_new(so, "checkpoint", json_integer((json_int_t)s->checkpoint));
    json_object_set_new(so, "checkpoint_ms", ms_or_null(s->checkpoint_ms, s->checkpoint_ms > 0));
    json_object_set_new(so, "start_offset", json_integer((json_int_t)s->start_offset));
    json_object_set_new(so, "end_offset", json_integer((json_int_t)s->end_offset));
    json_object_set_new(so, "lag_records", json_integer((json_int_t)s->lag_records));
    json_object_set_new(so, "lag_ms", ms_or_null(s->lag_ms, s->lag_ms >= 0));
    json_array_append_new(sa, so);
  }
  json_object_set_new(o, "shards", sa);
  uint64_t lr;
  int64_t lm;
  group_totals(d, &lr, &lm);
  json_t *t = json_object();
  json_object_set_new(t, "lag_records", json_integer((json_int_t)lr));
  json_object_set_new(t, "lag_ms", ms_or_null(lm, lm >= 0));
  json_object_set_new(o, "totals", t);
  return o;
}

static bool print_group_shards(ctl_t *c, const rn_group_desc_t *d) {
  ctl_table_t t;
  ctl_table_init(&t, 8);
  ctl_table_row(&t, "SHARD", "OWNER", "CHECKPOINT", "START", "END", "LAG-RECORDS", "LAG-MS", "LAST-COMMIT");
  for (size_t i = 0; i < d->shard_count; i++) {
    const rn_group_shard_info_t *s = &d->shards[i];
    char id[32], ck[24], so[24], eo[24], lr[24], lm[24], lc[40];
    snprintf(id, sizeof id, "shardId-%012u", s->shard);
    if (s->has_checkpoint)
      snprintf(ck, sizeof ck, "%" PRIu64, s->checkpoint);
    else
      snprintf(ck, sizeof ck, "-");
    snprintf(so, sizeof so, "%" PRIu64, s->start_offset);
    snprintf(eo, sizeof eo, "%" PRIu64, s->end_offset);
    snprintf(lr, sizeof lr, "%" PRIu64, s->lag_records);
    if (s->lag_ms >= 0)
      snprintf(lm, sizeof lm, "%" PRId64, s->lag_ms);
    else
      snprintf(lm, sizeof lm, "-");
    ctl_format_time(s->checkpoint_ms, lc, sizeof lc);
    ctl_table_row(&t, id, s->owner && s->owner[0] ? s->owner : "-", ck, so, eo, lr, lm, lc);
  }
  return ctl_table_print(c, &t);
}

static bool print_group(ctl_t *c, const rn_group_desc_t *d) {
  if (c->json) return ctl_print_json(c, group_json(d));
  char created[40], start[64];
  ctl_format_time(d->created_ms, created, sizeof created);
  if (d->start_kind == RN_POS_TIMESTAMP) {
    char ts[40];
    ctl_format_time(d->start_value, ts, sizeof ts);
    snprintf(start, sizeof start, "timestamp %s", ts);
  } else {
    snprintf(start, sizeof start, "%s", pos_kind_name(d->start_kind));
  }
  uint64_t lr;
  int64_t lm;
  group_totals(d, &lr, &lm);
  ctl_print(c, "stream:           %s\n", d->stream);
  ctl_print(c, "group:            %s\n", d->group);
  ctl_print(c, "starts at:        %s\n", start);
  ctl_print(c, "created:          %s\n", created);
  ctl_print(c, "members:          %zu\n", d->member_count);
  if (lm >= 0)
    ctl_print(c, "lag:              %" PRIu64 " records, %" PRId64 " ms\n\n", lr, lm);
  else
    ctl_print(c, "lag:              %" PRIu64 " records, - ms (unknown: nothing committed yet)\n\n", lr);
  if (d->member_count) {
    ctl_table_t t;
    ctl_table_init(&t, 7);
    ctl_table_row(&t, "MEMBER", "CLIENT", "EPOCH", "SHARDS", "PENDING", "SESSION", "LAST-HEARTBEAT");
    for (size_t i = 0; i < d->member_count; i++) {
      const rn_group_member_info_t *m = &d->members[i];
      char ep[16], sh[1024], pe[16], se[RN_UNITS_STRLEN], hb[40];
      snprintf(ep, sizeof ep, "%u", m->member_epoch);
      size_t at = 0;
      sh[0] = '\0';
      for (size_t k = 0; k < m->shard_count && at + 12 < sizeof sh; k++)
        at += (size_t)snprintf(sh + at, sizeof sh - at, "%s%u", k ? "," : "", m->shards[k]);
      if (m->shard_count == 0) snprintf(sh, sizeof sh, "-");
      snprintf(pe, sizeof pe, "%u", m->pending);
      rn_format_duration_ms(m->session_timeout_ms, se, sizeof se);
      char ago[RN_UNITS_STRLEN];
      rn_format_duration_ms(m->last_heartbeat_ms, ago, sizeof ago);
      snprintf(hb, sizeof hb, "%s ago", ago);
      ctl_table_row(&t, m->member_id, m->client_id ? m->client_id : "", ep, sh, pe, se, hb);
    }
    ctl_table_print(c, &t);
    ctl_print(c, "\n");
  }
  return print_group_shards(c, d);
}

/* ---- list --------------------------------------------------------------------- */

int ctl_group_list(ctl_t *c, const ctl_args_t *a) {
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  rn_stream_names_t *streams = NULL;
  rn_err_t err;
  if (a->npos == 1) {
    streams = calloc(1, sizeof *streams);
    streams->names = calloc(1, sizeof *streams->names);
    if (streams->names == NULL) abort();
    streams->names[0] = strdup(a->pos[0]);
    streams->count = 1;
  } else if ((err = rn_stream_list(c->cl, &streams)) != 0) {
    return ctl_fail(c, err, "list streams");
  }
  json_t *arr = c->json ? json_array() : NULL;
  ctl_table_t t;
  ctl_table_init(&t, 5);
  ctl_table_row(&t, "STREAM", "GROUP", "MEMBERS", "LAG-RECORDS", "LAG-MS");
  int status = 0;
  for (size_t si = 0; si < streams->count && status == 0; si++) {
    const char *stream = streams->names[si];
    rn_stream_names_t *names = NULL;
    err = rn_group_list(c->cl, stream, &names);
    if (err == RN_ENOSTREAM && a->npos == 0) continue; /* deleted meanwhile */
    if (err) {
      status = ctl_fail(c, err, "stream \"%s\"", stream);
      break;
    }
    for (size_t i = 0; i < names->count; i++) {
      rn_group_desc_t *d = NULL;
      err = rn_group_describe(c->cl, stream, names->names[i], &d);
      if (err == RN_ENOGROUP) continue; /* deleted meanwhile */
      if (err) {
        status = ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, names->names[i]);
        break;
      }
      uint64_t lr;
      int64_t lm;
      group_totals(d, &lr, &lm);
      if (arr) {
        json_t *o = json_object();
        json_object_set_new(o, "stream", json_string(stream));
        json_object_set_new(o, "group", json_string(d->group));
        json_object_set_new(o, "member_count", json_integer((json_int_t)d->member_count));
        json_object_set_new(o, "lag_records", json_integer((json_int_t)lr));
        json_object_set_new(o, "lag_ms", ms_or_null(lm, lm >= 0));
        json_array_append_new(arr, o);
      } else {
        char mc[16], x[24], y[24];
        snprintf(mc, sizeof mc, "%zu", d->member_count);
        snprintf(x, sizeof x, "%" PRIu64, lr);
        if (lm >= 0)
          snprintf(y, sizeof y, "%" PRId64, lm);
        else
          snprintf(y, sizeof y, "-");
        ctl_table_row(&t, stream, d->group, mc, x, y);
      }
      rn_group_desc_free(d);
    }
    rn_stream_names_free(names);
  }
  rn_stream_names_free(streams);
  if (status) {
    json_decref(arr);
    ctl_table_free(&t);
    return status;
  }
  if (arr) {
    json_t *o = json_object();
    if (a->npos == 1) json_object_set_new(o, "stream", json_string(a->pos[0]));
    json_object_set_new(o, "groups", arr);
    ctl_print_json(c, o);
    ctl_table_free(&t);
  } else if (t.nrows == 1) {
    ctl_table_free(&t);
    ctl_print(c, "no groups\n");
  } else {
    ctl_table_print(c, &t);
  }
  return 0;
}

/* ---- describe ------------------------------------------------------------------ */

int ctl_group_describe(ctl_t *c, const ctl_args_t *a) {
  const char *stream = a->pos[0], *group = a->pos[1];
  int64_t interval;
  int rc = ctl_watch_args(c, a, &interval);
  if (rc) return rc;
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  if (interval) ctl_catch_signals(true);
  int status = 0;
  for (bool first = true; first || (interval && !ctl_stop); first = false) {
    rn_group_desc_t *d = NULL;
    rn_err_t err = rn_group_describe(c->cl, stream, group, &d);
    if (err) {
      status = ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, group);
      break;
    }
    if (interval && c->out_tty) ctl_print(c, "\033[H\033[2J");
    else if (interval && !first) ctl_print(c, "\n");
    print_group(c, d);
    rn_group_desc_free(d);
    if (!ctl_flush(c)) break;
    if (interval) ctl_nap(interval);
  }
  if (interval) ctl_catch_signals(false);
  return ctl_out_finish(c, status);
}

/* ---- create / delete -------------------------------------------------------------- */

int ctl_group_create(ctl_t *c, const ctl_args_t *a) {
  const char *stream = a->pos[0], *group = a->pos[1], *from = ctl_arg(a, "--from");
  rn_pos_kind_t kind = RN_POS_LATEST;
  int64_t value = 0;
  char why[256];
  if (from) {
    if (ctl_parse_pos(from, ctl_now_ms(), &kind, &value, why, sizeof why) != 0) return ctl_usage(c, "--from: %s", why);
    char hint[96];
    if (kind == RN_POS_OFFSET)
      return ctl_usage(c, "--from: an offset differs per shard; create the group, then 'group reset --to OFFSET'%s",
                       ctl_ms_hint(value, hint, sizeof hint));
  }
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  rn_err_t err = rn_group_create(c->cl, stream, group, kind, value);
  if (err) return ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, group);
  if (c->json) {
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(stream));
    json_object_set_new(o, "group", json_string(group));
    json_object_set_new(o, "created", json_true());
    json_object_set_new(o, "start_kind", json_string(pos_kind_name(kind)));
    json_object_set_new(o, "start_value", json_integer(value));
    ctl_print_json(c, o);
  } else {
    ctl_print(c, "created group \"%s\" on stream \"%s\" (starts at %s)\n", group, stream, pos_kind_name(kind));
  }
  return 0;
}

int ctl_group_delete(ctl_t *c, const ctl_args_t *a) {
  const char *stream = a->pos[0], *group = a->pos[1];
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  rn_err_t err = rn_group_delete(c->cl, stream, group);
  if (err) return ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, group);
  if (c->json) {
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(stream));
    json_object_set_new(o, "group", json_string(group));
    json_object_set_new(o, "deleted", json_true());
    ctl_print_json(c, o);
  } else {
    ctl_print(c, "deleted group \"%s\" of stream \"%s\"\n", group, stream);
  }
  return 0;
}

/* ---- reset ---------------------------------------------------------------------- */

typedef struct {
  uint32_t shard;
  bool has_cur;
  uint64_t cur, next;
} plan_row_t;

static bool chosen(const uint32_t *shards, size_t n, uint32_t s) {
  if (n == 0) return true;
  for (size_t i = 0; i < n; i++)
    if (shards[i] == s) return true;
  return false;
}

int ctl_group_reset(ctl_t *c, const ctl_args_t *a) {
  const char *stream = a->pos[0], *group = a->pos[1], *to = ctl_arg(a, "--to"), *shift = ctl_arg(a, "--shift-by");
  bool execute = ctl_arg(a, "--execute") != NULL, create = ctl_arg(a, "--create") != NULL;
  char why[256];
  if ((to == NULL) == (shift == NULL)) return ctl_usage(c, "group reset: give --to POS or --shift-by N (one of them)");
  rn_pos_kind_t kind = RN_POS_OFFSET;
  int64_t value = 0, by = 0;
  if (to && ctl_parse_pos(to, ctl_now_ms(), &kind, &value, why, sizeof why) != 0) return ctl_usage(c, "--to: %s", why);
  if (shift) {
    char *end;
    by = strtoll(shift, &end, 10);
    if (*shift == '\0' || *end != '\0' || by == 0) return ctl_usage(c, "--shift-by: \"%s\" is not a non-zero integer", shift);
  }
  /* --shard: repeated and/or comma-separated */
  size_t nv = ctl_arg_all(a, "--shard", NULL, 0), nshards = 0;
  const char **sv = calloc(nv + 1, sizeof *sv);
  uint32_t *shards = NULL;
  size_t cap = 0;
  ctl_arg_all(a, "--shard", sv, nv);
  int status = 0;
  for (size_t i = 0; i < nv && status == 0; i++) {
    char *copy = strdup(sv[i]), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && status == 0; tok = strtok_r(NULL, ",", &save)) {
      uint32_t s;
      if (ctl_parse_shard(tok, &s) != 0) {
        status = ctl_usage(c, "--shard: \"%s\" is not a shard index or shardId-NNNNNNNNNNNN", tok);
        break;
      }
      if (nshards == cap) {
        cap = cap ? cap * 2 : 8;
        shards = realloc(shards, cap * sizeof *shards);
        if (shards == NULL) abort();
      }
      shards[nshards++] = s;
    }
    free(copy);
  }
  free(sv);
  rn_group_desc_t *d = NULL, *after = NULL;
  rn_offsets_t *offs = NULL;
  plan_row_t *plan = NULL;
  size_t nplan = 0;
  bool exists = true;
  rn_err_t err;
  if (status) goto out;
  if (ctl_client(c)) {
    status = CTL_EXIT_FAIL;
    goto out;
  }
  err = rn_group_describe(c->cl, stream, group, &d);
  if (err == RN_ENOGROUP && create) {
    exists = false;
  } else if (err == RN_ENOGROUP) {
    status = ctl_failf(c, "stream \"%s\" group \"%s\": consumer group not found (ENOGROUP); give --create to create it",
                       stream, group);
    goto out;
  } else if (err) {
    status = ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, group);
    goto out;
  }
  if (exists && d->member_count > 0) {
    status = ctl_fail(c, RN_EGROUPACTIVE, "stream \"%s\" group \"%s\" (%zu member%s: stop them first)", stream,
                      group, d->member_count, d->member_count == 1 ? "" : "s");
    goto out;
  }
  /* where each chosen shard goes */
  err = rn_stream_list_offsets(c->cl, stream, kind == RN_POS_OFFSET ? RN_POS_EARLIEST : kind, value, &offs);
  if (err) {
    status = ctl_fail(c, err, "stream \"%s\"", stream);
    goto out;
  }
  plan = calloc(offs->count + 1, sizeof *plan);
  if (plan == NULL) abort();
  for (size_t i = 0; i < nshards; i++) {
    bool found = false;
    for (size_t k = 0; k < offs->count; k++) found |= offs->shards[k].shard == shards[i];
    if (!found) {
      status = ctl_fail(c, RN_ENOSHARD, "stream \"%s\" shardId-%012u", stream, shards[i]);
      goto out;
    }
  }
  if (kind == RN_POS_OFFSET && to) {
    /* a checkpoint past the end of every chosen shard is a mistake (often a
     * ms timestamp without its @) */
    size_t past = 0, n = 0, at = 0;
    char ends[512], hint[96];
    ends[0] = '\0';
    for (size_t k = 0; k < offs->count; k++) {
      const rn_shard_offsets_t *so = &offs->shards[k];
      if (!chosen(shards, nshards, so->shard)) continue;
      n++;
      past += (uint64_t)value > so->end_offset;
      if (at + 32 < sizeof ends)
        at += (size_t)snprintf(ends + at, sizeof ends - at, "%s%u:%" PRIu64, at ? ", " : "", so->shard, so->end_offset);
    }
    if (n > 0 && past == n) {
      status = ctl_failf(c, "stream \"%s\" group \"%s\": offset %" PRId64 " is past the end of %s (end offsets: %s)%s",
                         stream, group, value, n == 1 ? "the shard" : "every chosen shard", ends,
                         ctl_ms_hint(value, hint, sizeof hint));
      goto out;
    }
  }
  for (size_t k = 0; k < offs->count; k++) {
    const rn_shard_offsets_t *so = &offs->shards[k];
    if (!chosen(shards, nshards, so->shard)) continue;
    plan_row_t *r = &plan[nplan++];
    r->shard = so->shard;
    uint64_t base = so->start_offset; /* where a shard without checkpoint starts */
    if (d) {
      for (size_t i = 0; i < d->shard_count; i++) {
        const rn_group_shard_info_t *gs = &d->shards[i];
        if (gs->shard != so->shard) continue;
        r->has_cur = gs->has_checkpoint;
        r->cur = gs->checkpoint;
        base = gs->has_checkpoint ? gs->checkpoint : gs->end_offset - gs->lag_records;
      }
    }
    if (shift) {
      int64_t n = (int64_t)base + by;
      if (n < (int64_t)so->start_offset) n = (int64_t)so->start_offset;
      if (n > (int64_t)so->end_offset) n = (int64_t)so->end_offset;
      r->next = (uint64_t)n;
    } else if (kind == RN_POS_OFFSET) {
      r->next = (uint64_t)value;
    } else {
      r->next = so->offset;
    }
  }
  /* the same words as the command line, --shard included */
  char what[512];
  {
    size_t at = (size_t)snprintf(what, sizeof what, "%s %s", to ? "--to" : "--shift-by", to ? to : shift);
    for (size_t i = 0; i < nshards && at + 16 < sizeof what; i++)
      at += (size_t)snprintf(what + at, sizeof what - at, "%s%u", i ? "," : " --shard ", shards[i]);
  }
  if (execute) {
    if (!exists) {
      err = rn_group_create(c->cl, stream, group, RN_POS_EARLIEST, 0);
      if (err && err != RN_EEXIST) {
        status = ctl_fail(c, err, "stream \"%s\" group \"%s\": create", stream, group);
        goto out;
      }
    }
    if (shift) {
      for (size_t i = 0; i < nplan && status == 0; i++) {
        rn_group_desc_free(after);
        after = NULL;
        err = rn_group_reset(c->cl, stream, group, RN_POS_OFFSET, (int64_t)plan[i].next, &plan[i].shard, 1, &after);
        if (err) status = ctl_fail(c, err, "stream \"%s\" group \"%s\" shardId-%012u", stream, group, plan[i].shard);
      }
    } else {
      err = rn_group_reset(c->cl, stream, group, kind, value, shards, nshards, &after);
      if (err) status = ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, group);
    }
    if (status) goto out;
  }
  if (c->json) {
    json_t *o = after ? group_json(after) : json_object();
    json_t *pa = json_array();
    for (size_t i = 0; i < nplan; i++) {
      char id[32];
      snprintf(id, sizeof id, "shardId-%012u", plan[i].shard);
      json_t *r = json_object();
      json_object_set_new(r, "shard", json_integer(plan[i].shard));
      json_object_set_new(r, "shard_id", json_string(id));
      json_object_set_new(r, "checkpoint", plan[i].has_cur ? json_integer((json_int_t)plan[i].cur) : json_null());
      json_object_set_new(r, "new_checkpoint", json_integer((json_int_t)plan[i].next));
      json_array_append_new(pa, r);
    }
    json_object_set_new(o, "stream", json_string(stream));
    json_object_set_new(o, "group", json_string(group));
    json_object_set_new(o, "plan", pa);
    json_object_set_new(o, "executed", json_boolean(execute));
    ctl_print_json(c, o);
  } else {
    ctl_print(c, "%s group \"%s\" of stream \"%s\" %s%s:\n", execute ? "reset" : "plan to reset", group, stream, what,
              exists ? "" : " (creating the group)");
    ctl_table_t t;
    ctl_table_init(&t, 3);
    ctl_table_row(&t, "SHARD", "CHECKPOINT", "NEW");
    for (size_t i = 0; i < nplan; i++) {
      char id[32], x[24], y[24];
      snprintf(id, sizeof id, "shardId-%012u", plan[i].shard);
      if (plan[i].has_cur)
        snprintf(x, sizeof x, "%" PRIu64, plan[i].cur);
      else
        snprintf(x, sizeof x, "-");
      snprintf(y, sizeof y, "%" PRIu64, plan[i].next);
      ctl_table_row(&t, id, x, y);
    }
    ctl_table_print(c, &t);
    if (!execute) ctl_print(c, "nothing changed: add --execute to apply\n");
  }
out:
  rn_group_desc_free(d);
  rn_group_desc_free(after);
  rn_offsets_free(offs);
  free(plan);
  free(shards);
  return status;
}
