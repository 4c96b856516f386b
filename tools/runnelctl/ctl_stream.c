/*
 * ctl_stream.c — `runnelctl stream ...` and `runnelctl offsets`: create,
 * list, describe, delete, set-retention, restore (tiered streams), and the
 * start/end offsets of every shard.
 *
 * Retention on the wire (StreamConfig.retention_ms): 0 = the broker's
 * default retention, -1 = forever, > 0 = that many ms. So no --retention
 * sends 0, `--retention forever` sends -1, and `--retention 0` is refused
 * (0 is not a length of time anyone means).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_int.h"
#include "runnel/units.h"

/* --retention: "forever" (-1) or a duration > 0. Returns 0 or a usage error. */
static int parse_retention(ctl_t *c, const char *s, int64_t *ms) {
  if (strcmp(s, "forever") == 0) {
    *ms = -1;
    return 0;
  }
  char why[256];
  int64_t v = -1;
  bool zero = s[0] != '\0' && strspn(s, "0") == strlen(s);
  if (!zero && rn_parse_duration_ms(s, &v, why, sizeof why) != 0)
    return ctl_usage(c, "--retention: %s, or forever", why);
  if (zero || v == 0) return ctl_usage(c, "--retention: 0 is not a retention; write forever to keep records forever");
  *ms = v;
  return 0;
}

/* --local-retention: "forever" (-1: every segment stays) or a duration > 0. */
static int parse_local_retention(ctl_t *c, const char *s, int64_t *ms) {
  if (strcmp(s, "forever") == 0) {
    *ms = -1;
    return 0;
  }
  char why[256];
  int64_t v = -1;
  bool zero = s[0] != '\0' && strspn(s, "0") == strlen(s);
  if (!zero && rn_parse_duration_ms(s, &v, why, sizeof why) != 0)
    return ctl_usage(c, "--local-retention: %s, or forever", why);
  if (zero || v == 0)
    return ctl_usage(c, "--local-retention: 0 is not a retention; write forever to keep every segment on the disk");
  *ms = v;
  return 0;
}

/* --local-retention-bytes: "unlimited" (-1) or a size > 0. */
static int parse_local_retention_bytes(ctl_t *c, const char *s, int64_t *bytes) {
  if (strcmp(s, "unlimited") == 0) {
    *bytes = -1;
    return 0;
  }
  char why[256];
  int64_t v = 0;
  if (rn_parse_size(s, &v, why, sizeof why) != 0) return ctl_usage(c, "--local-retention-bytes: %s, or unlimited", why);
  if (v == 0) return ctl_usage(c, "--local-retention-bytes: 0 is not a limit; write unlimited");
  *bytes = v;
  return 0;
}

/* Local retention for tables: "forever" (every segment stays), else 6h. */
static void format_local_retention(int64_t ms, char *buf, size_t n) {
  if (ms <= 0)
    snprintf(buf, n, "forever");
  else
    rn_format_duration_ms(ms, buf, n);
}

/* --retention-bytes: "unlimited" (0) or a size > 0. */
static int parse_retention_bytes(ctl_t *c, const char *s, int64_t *bytes) {
  if (strcmp(s, "unlimited") == 0) {
    *bytes = 0;
    return 0;
  }
  char why[256];
  int64_t v = 0;
  if (rn_parse_size(s, &v, why, sizeof why) != 0) return ctl_usage(c, "--retention-bytes: %s, or unlimited", why);
  if (v == 0) return ctl_usage(c, "--retention-bytes: 0 is not a limit; write unlimited");
  *bytes = v;
  return 0;
}

/* --dedup-field F | --dedup-key record-id, and --dedup-window D (default 1h). */
static int parse_dedup(ctl_t *c, const ctl_args_t *a, rn_stream_config_t *sc) {
  const char *f = ctl_arg(a, "--dedup-field"), *k = ctl_arg(a, "--dedup-key"), *w = ctl_arg(a, "--dedup-window");
  if (!f && !k) {
    if (w) return ctl_usage(c, "--dedup-window needs --dedup-field F or --dedup-key record-id");
    return 0;
  }
  if (f && k) return ctl_usage(c, "give --dedup-field or --dedup-key, not both");
  if (k && strcmp(k, "record-id") != 0)
    return ctl_usage(c, "--dedup-key: \"%s\" is not record-id (for a field of the data use --dedup-field)", k);
  if (f && !f[0]) return ctl_usage(c, "--dedup-field: the field name is empty");
  sc->dedup_key = f ? RN_DEDUP_FIELD : RN_DEDUP_RECORD_ID;
  sc->dedup_field = f;
  sc->dedup_window_ms = 3600 * 1000;
  if (w) {
    char why[256];
    int64_t v = 0;
    if (rn_parse_duration_ms(w, &v, why, sizeof why) != 0) return ctl_usage(c, "--dedup-window: %s", why);
    if (v <= 0) return ctl_usage(c, "--dedup-window: must be longer than 0");
    sc->dedup_window_ms = v;
  }
  return 0;
}

static json_t *desc_json(const rn_stream_desc_t *d, bool with_shards) {
  json_t *o = json_object();
  json_object_set_new(o, "stream", json_string(d->name));
  json_object_set_new(o, "status", json_string(d->status));
  json_object_set_new(o, "shard_count", json_integer((json_int_t)d->shard_count));
  json_object_set_new(o, "retention_ms", json_integer(d->retention_ms));
  json_object_set_new(o, "retention_bytes", json_integer(d->retention_bytes));
  const char *dn = rn_durability_name(d->durability);
  json_object_set_new(o, "durability", json_string(dn ? dn : "unknown"));
  json_object_set_new(o, "created_ms", json_integer(d->created_ms));
  json_object_set_new(o, "tiered", json_boolean(d->tiered));
  /* A local retention only exists for a tiered stream; -1 = everything stays. */
  json_object_set_new(o, "local_retention_ms", d->tiered ? json_integer(d->local_retention_ms) : json_null());
  json_object_set_new(o, "local_retention_bytes", d->tiered ? json_integer(d->local_retention_bytes) : json_null());
  /* The dedup window: null when the stream keeps none. */
  if (d->dedup_key == RN_DEDUP_NONE) {
    json_object_set_new(o, "dedup", json_null());
  } else {
    json_t *dd = json_object();
    json_object_set_new(dd, "key", json_string(d->dedup_key == RN_DEDUP_FIELD ? "field" : "record-id"));
    json_object_set_new(dd, "field", d->dedup_field ? json_string(d->dedup_field) : json_null());
    json_object_set_new(dd, "window_ms", json_integer(d->dedup_window_ms));
    json_object_set_new(o, "dedup", dd);
  }
  if (with_shards) {
    json_t *a = json_array();
    for (size_t i = 0; i < d->shard_count; i++) {
      const rn_shard_info_t *s = &d->shards[i];
      char ks[RN_HASH_KEY_STRLEN], ke[RN_HASH_KEY_STRLEN];
      rn_hash_key_format(s->hash_key_start, ks);
      rn_hash_key_format(s->hash_key_end, ke);
      json_t *so = json_object();
      json_object_set_new(so, "shard", json_integer(s->index));
      json_object_set_new(so, "shard_id", json_string(s->shard_id));
      json_object_set_new(so, "hash_key_start", json_string(ks));
      json_object_set_new(so, "hash_key_end", json_string(ke));
      json_object_set_new(so, "start_offset", json_integer((json_int_t)s->start_offset));
      json_object_set_new(so, "end_offset", json_integer((json_int_t)s->end_offset));
      json_object_set_new(so, "last_append_ms", s->last_append_ms > 0 ? json_integer(s->last_append_ms) : json_null());
      json_object_set_new(so, "stored_bytes", json_integer((json_int_t)s->stored_bytes));
      if (d->tiered) {
        json_object_set_new(so, "local_start_offset", json_integer((json_int_t)s->local_start_offset));
        json_object_set_new(so, "remote_start_offset", json_integer((json_int_t)s->remote_start_offset));
        json_object_set_new(so, "local_bytes", json_integer((json_int_t)s->stored_bytes));
        json_object_set_new(so, "local_segments", json_integer(s->local_segments));
        json_object_set_new(so, "remote_bytes", json_integer((json_int_t)s->remote_bytes));
        json_object_set_new(so, "remote_segments", json_integer(s->remote_segments));
        json_object_set_new(so, "upload_backlog_bytes", json_integer((json_int_t)s->upload_backlog_bytes));
        json_object_set_new(so, "upload_backlog_segments", json_integer(s->upload_backlog_segments));
        json_object_set_new(so, "upload_backlog_age_ms", json_integer(s->upload_backlog_age_ms));
      }
      json_array_append_new(a, so);
    }
    json_object_set_new(o, "shards", a);
  }
  return o;
}

static bool print_desc(ctl_t *c, const rn_stream_desc_t *d) {
  if (c->json) return ctl_print_json(c, desc_json(d, true));
  char ret[RN_UNITS_STRLEN], retb[RN_UNITS_STRLEN], created[40];
  ctl_format_retention(d->retention_ms, ret, sizeof ret);
  ctl_format_retention_bytes(d->retention_bytes, retb, sizeof retb);
  ctl_format_time(d->created_ms, created, sizeof created);
  const char *dn = rn_durability_name(d->durability);
  ctl_print(c, "stream:           %s\n", d->name);
  ctl_print(c, "status:           %s\n", d->status);
  ctl_print(c, "shards:           %zu\n", d->shard_count);
  ctl_print(c, "retention:        %s\n", ret);
  ctl_print(c, "retention-bytes:  %s\n", retb);
  ctl_print(c, "durability:       %s\n", dn ? dn : "unknown");
  if (d->tiered) {
    char lr[RN_UNITS_STRLEN], lrb[RN_UNITS_STRLEN];
    format_local_retention(d->local_retention_ms, lr, sizeof lr);
    ctl_format_retention_bytes(d->local_retention_bytes, lrb, sizeof lrb);
    ctl_print(c, "tiered:           yes\n");
    ctl_print(c, "local-retention:  %s\n", lr);
    ctl_print(c, "local-ret-bytes:  %s\n", lrb);
  }
  if (d->dedup_key != RN_DEDUP_NONE) {
    char dw[RN_UNITS_STRLEN];
    ctl_format_retention(d->dedup_window_ms, dw, sizeof dw);
    if (d->dedup_key == RN_DEDUP_FIELD)
      ctl_print(c, "dedup:            field %s, window %s\n", d->dedup_field ? d->dedup_field : "?", dw);
    else
      ctl_print(c, "dedup:            record-id, window %s\n", dw);
  }
  ctl_print(c, "created:          %s\n\n", created);
  ctl_table_t t;
  ctl_table_init(&t, 7);
  ctl_table_row(&t, "SHARD", "HASH-KEY-START", "HASH-KEY-END", "START", "END", "LAST-APPEND", "BYTES");
  for (size_t i = 0; i < d->shard_count; i++) {
    const rn_shard_info_t *s = &d->shards[i];
    char ks[RN_HASH_KEY_STRLEN], ke[RN_HASH_KEY_STRLEN], so[24], eo[24], la[40], by[RN_UNITS_STRLEN];
    rn_hash_key_format(s->hash_key_start, ks);
    rn_hash_key_format(s->hash_key_end, ke);
    snprintf(so, sizeof so, "%" PRIu64, s->start_offset);
    snprintf(eo, sizeof eo, "%" PRIu64, s->end_offset);
    ctl_format_time(s->last_append_ms, la, sizeof la);
    snprintf(by, sizeof by, "%" PRIu64, s->stored_bytes);
    ctl_table_row(&t, s->shard_id, ks, ke, so, eo, la, by);
  }
  if (!ctl_table_print(c, &t) || !d->tiered) return ctl_out_ok(c);
  /* Where a tiered shard's records are: START above is the earliest in the
   * store; below LOCAL-START reads go there. */
  ctl_print(c, "\n");
  ctl_table_init(&t, 9);
  ctl_table_row(&t, "SHARD", "LOCAL-START", "LOCAL-BYTES", "LOCAL-SEGS", "REMOTE-BYTES", "REMOTE-SEGS", "BACKLOG-BYTES",
                "BACKLOG-SEGS", "BACKLOG-AGE");
  for (size_t i = 0; i < d->shard_count; i++) {
    const rn_shard_info_t *s = &d->shards[i];
    char ls[24], lb[32], lsg[16], rb[32], rsg[16], bb[32], bsg[16], ba[32];
    snprintf(ls, sizeof ls, "%" PRIu64, s->local_start_offset);
    ctl_format_bytes(s->stored_bytes, lb, sizeof lb);
    snprintf(lsg, sizeof lsg, "%u", s->local_segments);
    ctl_format_bytes(s->remote_bytes, rb, sizeof rb);
    snprintf(rsg, sizeof rsg, "%u", s->remote_segments);
    ctl_format_bytes(s->upload_backlog_bytes, bb, sizeof bb);
    snprintf(bsg, sizeof bsg, "%u", s->upload_backlog_segments);
    if (s->upload_backlog_segments)
      ctl_format_age(s->upload_backlog_age_ms, ba, sizeof ba);
    else
      snprintf(ba, sizeof ba, "-");
    ctl_table_row(&t, s->shard_id, ls, lb, lsg, rb, rsg, bb, bsg, ba);
  }
  return ctl_table_print(c, &t);
}

int ctl_stream_create(ctl_t *c, const ctl_args_t *a) {
  const char *shards = ctl_arg(a, "--shards"), *ret = ctl_arg(a, "--retention"),
             *retb = ctl_arg(a, "--retention-bytes"), *dur = ctl_arg(a, "--durability"),
             *lret = ctl_arg(a, "--local-retention"), *lretb = ctl_arg(a, "--local-retention-bytes");
  /* no --retention: 0 = the broker's default */
  rn_stream_config_t sc = {.name = a->pos[0], .durability = RN_DURABILITY_SYNC, .retention_ms = 0};
  if (shards == NULL) return ctl_usage(c, "stream create: --shards N is required");
  uint64_t n;
  if (ctl_parse_count(shards, &n) != 0 || n > UINT32_MAX)
    return ctl_usage(c, "--shards: \"%s\" is not a positive number", shards);
  sc.shard_count = (uint32_t)n;
  int rc;
  if (ret && (rc = parse_retention(c, ret, &sc.retention_ms))) return rc;
  if (retb && (rc = parse_retention_bytes(c, retb, &sc.retention_bytes))) return rc;
  if (dur && rn_durability_parse(dur, &sc.durability) != 0)
    return ctl_usage(c, "--durability: \"%s\" is not sync, interval or none", dur);
  sc.tiered = ctl_arg(a, "--tiered") != NULL;
  if ((lret || lretb) && !sc.tiered)
    return ctl_usage(c, "stream create: --local-retention%s needs --tiered (only a tiered stream has a local part)",
                     lret ? "" : "-bytes");
  if (lret && (rc = parse_local_retention(c, lret, &sc.local_retention_ms))) return rc;
  if (lretb && (rc = parse_local_retention_bytes(c, lretb, &sc.local_retention_bytes))) return rc;
  if ((rc = parse_dedup(c, a, &sc))) return rc;
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  rn_stream_desc_t *d = NULL;
  rn_err_t err = rn_stream_create(c->cl, &sc, &d);
  if (err) return ctl_fail(c, err, "stream \"%s\"", sc.name);
  if (c->json) {
    ctl_print_json(c, desc_json(d, true));
  } else {
    char r[RN_UNITS_STRLEN], lr[RN_UNITS_STRLEN];
    ctl_format_retention(d->retention_ms, r, sizeof r);
    if (d->tiered) {
      format_local_retention(d->local_retention_ms, lr, sizeof lr);
      ctl_print(c, "created stream \"%s\" with %zu shard%s (tiered: retention %s, local retention %s)\n", d->name,
                d->shard_count, d->shard_count == 1 ? "" : "s", r, lr);
    } else {
      ctl_print(c, "created stream \"%s\" with %zu shard%s (retention %s)\n", d->name, d->shard_count,
                d->shard_count == 1 ? "" : "s", r);
    }
  }
  rn_stream_desc_free(d);
  return 0;
}

int ctl_stream_list(ctl_t *c, const ctl_args_t *a) {
  (void)a;
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  rn_stream_names_t *names = NULL;
  rn_err_t err = rn_stream_list(c->cl, &names);
  if (err) return ctl_fail(c, err, "list streams");
  json_t *arr = c->json ? json_array() : NULL;
  ctl_table_t t;
  ctl_table_init(&t, 6);
  ctl_table_row(&t, "NAME", "SHARDS", "RETENTION", "RETENTION-BYTES", "DURABILITY", "STATUS");
  int status = 0;
  for (size_t i = 0; i < names->count; i++) {
    rn_stream_desc_t *d = NULL;
    err = rn_stream_describe(c->cl, names->names[i], &d);
    if (err == RN_ENOSTREAM) continue; /* deleted meanwhile */
    if (err) {
      status = ctl_fail(c, err, "stream \"%s\"", names->names[i]);
      break;
    }
    if (arr) {
      json_array_append_new(arr, desc_json(d, false));
    } else {
      char sh[16], ret[RN_UNITS_STRLEN], retb[RN_UNITS_STRLEN];
      snprintf(sh, sizeof sh, "%zu", d->shard_count);
      ctl_format_retention(d->retention_ms, ret, sizeof ret);
      ctl_format_retention_bytes(d->retention_bytes, retb, sizeof retb);
      const char *dn = rn_durability_name(d->durability);
      ctl_table_row(&t, d->name, sh, ret, retb, dn ? dn : "unknown", d->status);
    }
    rn_stream_desc_free(d);
  }
  rn_stream_names_free(names);
  if (status) {
    ctl_table_free(&t);
    json_decref(arr);
    return status;
  }
  if (arr) {
    json_t *o = json_object();
    json_object_set_new(o, "streams", arr);
    ctl_print_json(c, o);
    ctl_table_free(&t);
  } else if (t.nrows == 1) {
    ctl_table_free(&t);
    ctl_print(c, "no streams\n");
  } else {
    ctl_table_print(c, &t);
  }
  return 0;
}

int ctl_stream_describe(ctl_t *c, const ctl_args_t *a) {
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  rn_stream_desc_t *d = NULL;
  rn_err_t err = rn_stream_describe(c->cl, a->pos[0], &d);
  if (err) return ctl_fail(c, err, "stream \"%s\"", a->pos[0]);
  print_desc(c, d);
  rn_stream_desc_free(d);
  return 0;
}

int ctl_stream_delete(ctl_t *c, const ctl_args_t *a) {
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  rn_err_t err = rn_stream_delete(c->cl, a->pos[0]);
  if (err) return ctl_fail(c, err, "stream \"%s\"", a->pos[0]);
  if (c->json) {
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(a->pos[0]));
    json_object_set_new(o, "deleted", json_true());
    ctl_print_json(c, o);
  } else {
    ctl_print(c, "deleted stream \"%s\"\n", a->pos[0]);
  }
  return 0;
}

int ctl_stream_set_retention(ctl_t *c, const ctl_args_t *a) {
  const char *ret = ctl_arg(a, "--retention"), *retb = ctl_arg(a, "--retention-bytes"), *name = a->pos[0],
             *lret = ctl_arg(a, "--local-retention"), *lretb = ctl_arg(a, "--local-retention-bytes");
  if (ret == NULL && retb == NULL && lret == NULL && lretb == NULL)
    return ctl_usage(c, "stream set-retention: give --retention, --retention-bytes, --local-retention and/or "
                        "--local-retention-bytes");
  rn_retention_t r = {0}; /* local retention 0: unchanged */
  int rc;
  if (ret && (rc = parse_retention(c, ret, &r.retention_ms))) return rc;
  if (retb && (rc = parse_retention_bytes(c, retb, &r.retention_bytes))) return rc;
  if (lret && (rc = parse_local_retention(c, lret, &r.local_retention_ms))) return rc;
  if (lretb && (rc = parse_local_retention_bytes(c, lretb, &r.local_retention_bytes))) return rc;
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  if (ret == NULL || retb == NULL) { /* keep the other value */
    rn_stream_desc_t *cur = NULL;
    rn_err_t err = rn_stream_describe(c->cl, name, &cur);
    if (err) return ctl_fail(c, err, "stream \"%s\"", name);
    if (ret == NULL) r.retention_ms = cur->retention_ms;
    if (retb == NULL) r.retention_bytes = cur->retention_bytes;
    bool tiered = cur->tiered;
    rn_stream_desc_free(cur);
    if ((lret || lretb) && !tiered)
      return ctl_failf(c, "stream \"%s\" is not tiered: it has no local retention (its retention is all there is)",
                       name);
  }
  rn_stream_desc_t *d = NULL;
  rn_err_t err = rn_stream_set_retentions(c->cl, name, &r, &d);
  if (err) return ctl_fail(c, err, "stream \"%s\"", name);
  if (c->json) {
    ctl_print_json(c, desc_json(d, false));
  } else {
    char x[RN_UNITS_STRLEN], y[RN_UNITS_STRLEN];
    ctl_format_retention(d->retention_ms, x, sizeof x);
    ctl_format_retention_bytes(d->retention_bytes, y, sizeof y);
    if (d->tiered) {
      char lx[RN_UNITS_STRLEN], ly[RN_UNITS_STRLEN];
      format_local_retention(d->local_retention_ms, lx, sizeof lx);
      ctl_format_retention_bytes(d->local_retention_bytes, ly, sizeof ly);
      ctl_print(c, "stream \"%s\": retention %s, retention-bytes %s, local retention %s, local-retention-bytes %s\n",
                d->name, x, y, lx, ly);
    } else {
      ctl_print(c, "stream \"%s\": retention %s, retention-bytes %s\n", d->name, x, y);
    }
  }
  rn_stream_desc_free(d);
  return 0;
}

int ctl_stream_restore(ctl_t *c, const ctl_args_t *a) {
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  rn_stream_desc_t *d = NULL;
  rn_err_t err = rn_stream_restore(c->cl, a->pos[0], &d);
  if (err) return ctl_fail(c, err, "restore stream \"%s\"", a->pos[0]);
  if (c->json) {
    ctl_print_json(c, desc_json(d, true));
  } else {
    uint64_t records = 0;
    for (size_t i = 0; i < d->shard_count; i++) records += d->shards[i].end_offset - d->shards[i].start_offset;
    ctl_print(c, "restored stream \"%s\" with %zu shard%s from the store: %" PRIu64 " records in retention\n", d->name,
              d->shard_count, d->shard_count == 1 ? "" : "s", records);
  }
  rn_stream_desc_free(d);
  return 0;
}

int ctl_offsets(ctl_t *c, const ctl_args_t *a) {
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  rn_offsets_t *offs = NULL;
  rn_err_t err = rn_stream_list_offsets(c->cl, a->pos[0], RN_POS_LATEST, 0, &offs);
  if (err) return ctl_fail(c, err, "stream \"%s\"", a->pos[0]);
  if (c->json) {
    json_t *o = json_object(), *arr = json_array();
    json_object_set_new(o, "stream", json_string(a->pos[0]));
    for (size_t i = 0; i < offs->count; i++) {
      const rn_shard_offsets_t *so = &offs->shards[i];
      char id[32];
      snprintf(id, sizeof id, "shardId-%012u", so->shard);
      json_t *s = json_object();
      json_object_set_new(s, "shard", json_integer(so->shard));
      json_object_set_new(s, "shard_id", json_string(id));
      if (so->err) {
        json_object_set_new(s, "error", json_string(rn_err_name(so->err)));
      } else {
        json_object_set_new(s, "start_offset", json_integer((json_int_t)so->start_offset));
        json_object_set_new(s, "end_offset", json_integer((json_int_t)so->end_offset));
        json_object_set_new(s, "records", json_integer((json_int_t)(so->end_offset - so->start_offset)));
      }
      json_array_append_new(arr, s);
    }
    json_object_set_new(o, "shards", arr);
    ctl_print_json(c, o);
  } else {
    ctl_table_t t;
    ctl_table_init(&t, 4);
    ctl_table_row(&t, "SHARD", "START", "END", "RECORDS");
    for (size_t i = 0; i < offs->count; i++) {
      const rn_shard_offsets_t *so = &offs->shards[i];
      char id[32], x[24], y[24], n[24];
      snprintf(id, sizeof id, "shardId-%012u", so->shard);
      if (so->err) {
        ctl_table_row(&t, id, rn_err_name(so->err), "-", "-");
        continue;
      }
      snprintf(x, sizeof x, "%" PRIu64, so->start_offset);
      snprintf(y, sizeof y, "%" PRIu64, so->end_offset);
      snprintf(n, sizeof n, "%" PRIu64, so->end_offset - so->start_offset);
      ctl_table_row(&t, id, x, y, n);
    }
    ctl_table_print(c, &t);
  }
  rn_offsets_free(offs);
  return 0;
}
