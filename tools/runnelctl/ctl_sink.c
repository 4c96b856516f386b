/*
 * ctl_sink.c — runnelctl sink create|list|describe|pause|resume|delete:
 * archive sinks (docs/sinks.md) through librunnel's sink calls. The schema
 * file is read here and sent as text; the broker checks it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_int.h"
#include "runnel/units.h"

static const char *format_name(rn_sink_format_t f) { return f == RN_SINK_FORMAT_PARQUET ? "parquet" : "ndjson"; }

static const char *compression_name(rn_sink_compression_t c) {
  switch (c) {
  case RN_SINK_COMPRESSION_NONE: return "none";
  case RN_SINK_COMPRESSION_GZIP: return "gzip";
  case RN_SINK_COMPRESSION_SNAPPY: return "snappy";
  case RN_SINK_COMPRESSION_ZSTD: return "zstd";
  default: return "default";
  }
}

/* The whole of path, NUL-terminated (malloc'd), or NULL with why. */
static char *read_file(const char *path, char *why, size_t whylen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(why, whylen, "%s: %s", path, strerror(errno));
    return NULL;
  }
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (len + 1 >= cap) {
      if (cap > (2u << 20)) {
        snprintf(why, whylen, "%s: larger than 2 MiB", path);
        free(buf);
        fclose(f);
        return NULL;
      }
      cap *= 2;
      buf = realloc(buf, cap);
    }
    size_t n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
    if (n == 0) break;
  }
  bool bad = ferror(f);
  fclose(f);
  if (bad) {
    snprintf(why, whylen, "%s: read error", path);
    free(buf);
    return NULL;
  }
  buf[len] = '\0';
  return buf;
}

static json_t *desc_json(const rn_sink_desc_t *d) {
  json_t *o = json_object();
  json_object_set_new(o, "name", json_string(d->name));
  json_object_set_new(o, "stream", json_string(d->stream));
  json_object_set_new(o, "destination", json_string(d->destination));
  json_object_set_new(o, "format", json_string(format_name(d->format)));
  json_object_set_new(o, "compression", json_string(compression_name(d->compression)));
  json_object_set_new(o, "prefix", json_string(d->prefix));
  json_object_set_new(o, "error_prefix", json_string(d->error_prefix));
  json_object_set_new(o, "event_time_field", d->event_time_field[0] ? json_string(d->event_time_field) : json_null());
  json_object_set_new(o, "buffer_bytes", json_integer((json_int_t)d->buffer_bytes));
  json_object_set_new(o, "buffer_interval_ms", json_integer((json_int_t)d->buffer_interval_ms));
  json_object_set_new(o, "start", json_string(d->start_latest ? "latest" : "earliest"));
  json_object_set_new(o, "paused", json_boolean(d->paused));
  json_object_set_new(o, "state", json_string(d->state));
  json_object_set_new(o, "created_ms", json_integer((json_int_t)d->created_ms));
  uint64_t lag = 0, objects = 0, records = 0, errors = 0;
  int64_t lag_ms = 0;
  bool lag_known = true;
  json_t *arr = json_array();
  for (size_t i = 0; i < d->shard_count; i++) {
    const rn_sink_shard_desc_t *s = &d->shards[i];
    json_t *x = json_object();
    char id[32];
    snprintf(id, sizeof id, "shardId-%012" PRIu32, s->shard);
    json_object_set_new(x, "shard", json_integer(s->shard));
    json_object_set_new(x, "shard_id", json_string(id));
    json_object_set_new(x, "checkpoint", json_integer((json_int_t)s->checkpoint));
    json_object_set_new(x, "end_offset", json_integer((json_int_t)s->end_offset));
    json_object_set_new(x, "lag_records", json_integer((json_int_t)s->lag_records));
    json_object_set_new(x, "lag_ms", s->lag_ms >= 0 ? json_integer((json_int_t)s->lag_ms) : json_null());
    json_object_set_new(x, "buffered_bytes", json_integer((json_int_t)s->buffered_bytes));
    json_object_set_new(x, "buffered_records", json_integer((json_int_t)s->buffered_records));
    json_object_set_new(x, "state", json_string(s->state));
    json_object_set_new(x, "last_error", s->last_error[0] ? json_string(s->last_error) : json_null());
    json_object_set_new(x, "objects", json_integer((json_int_t)s->objects));
    json_object_set_new(x, "records", json_integer((json_int_t)s->records));
    json_object_set_new(x, "error_records", json_integer((json_int_t)s->error_records));
    if (s->pending) {
      json_object_set_new(x, "pending_first", json_integer((json_int_t)s->pending_first));
      json_object_set_new(x, "pending_last", json_integer((json_int_t)s->pending_last));
    }
    json_array_append_new(arr, x);
    lag += s->lag_records;
    objects += s->objects;
    records += s->records;
    errors += s->error_records;
    if (s->lag_ms < 0 && s->lag_records > 0) lag_known = false;
    if (s->lag_ms > lag_ms) lag_ms = s->lag_ms;
  }
  json_object_set_new(o, "lag_records", json_integer((json_int_t)lag));
  json_object_set_new(o, "lag_ms", lag_known ? json_integer((json_int_t)lag_ms) : json_null());
  json_object_set_new(o, "objects", json_integer((json_int_t)objects));
  json_object_set_new(o, "records", json_integer((json_int_t)records));
  json_object_set_new(o, "error_records", json_integer((json_int_t)errors));
  json_object_set_new(o, "shards", arr);
  return o;
}

static void desc_text(ctl_t *c, const rn_sink_desc_t *d) {
  char bb[32];
  ctl_format_bytes(d->buffer_bytes, bb, sizeof bb);
  ctl_print(c, "sink:         %s\n", d->name);
  ctl_print(c, "stream:       %s\n", d->stream);
  ctl_print(c, "destination:  %s\n", d->destination);
  ctl_print(c, "format:       %s (compression %s)\n", format_name(d->format), compression_name(d->compression));
  ctl_print(c, "prefix:       %s\n", d->prefix);
  ctl_print(c, "error prefix: %s\n", d->error_prefix);
  if (d->event_time_field[0]) ctl_print(c, "event time:   %s\n", d->event_time_field);
  ctl_print(c, "buffer:       %s or %" PRId64 " ms\n", bb, d->buffer_interval_ms);
  ctl_print(c, "state:        %s\n", d->state);
  ctl_table_t t;
  ctl_table_init(&t, 9);
  ctl_table_row(&t, "SHARD", "CHECKPOINT", "END", "LAG-RECORDS", "LAG-MS", "BUFFERED", "OBJECTS", "STATE", "LAST-ERROR");
  for (size_t i = 0; i < d->shard_count; i++) {
    const rn_sink_shard_desc_t *s = &d->shards[i];
    char sh[16], cp[24], en[24], lr[24], lm[24], bu[32], ob[24];
    snprintf(sh, sizeof sh, "%" PRIu32, s->shard);
    snprintf(cp, sizeof cp, "%" PRIu64, s->checkpoint);
    snprintf(en, sizeof en, "%" PRIu64, s->end_offset);
    snprintf(lr, sizeof lr, "%" PRIu64, s->lag_records);
    if (s->lag_ms >= 0)
      snprintf(lm, sizeof lm, "%" PRId64, s->lag_ms);
    else
      snprintf(lm, sizeof lm, "-");
    ctl_format_bytes(s->buffered_bytes, bu, sizeof bu);
    snprintf(ob, sizeof ob, "%" PRIu64, s->objects);
    ctl_table_row(&t, sh, cp, en, lr, lm, bu, ob, s->state, s->last_error[0] ? s->last_error : "-");
  }
  ctl_table_print(c, &t);
}

static int print_desc(ctl_t *c, const rn_sink_desc_t *d) {
  if (c->json) {
    ctl_print_json(c, desc_json(d));
  } else {
    desc_text(c, d);
  }
  return ctl_out_finish(c, 0);
}

int ctl_sink_create(ctl_t *c, const ctl_args_t *a) {
  rn_sink_conf_t conf = {0};
  conf.name = a->pos[0];
  conf.stream = ctl_arg(a, "--stream");
  conf.destination = ctl_arg(a, "--to");
  if (!conf.stream) return ctl_usage(c, "sink create needs --stream STREAM");
  if (!conf.destination) return ctl_usage(c, "sink create needs --to s3://BUCKET/PREFIX/ or file:///DIR/");
  const char *fmt = ctl_arg(a, "--format");
  if (!fmt || strcmp(fmt, "ndjson") == 0)
    conf.format = RN_SINK_FORMAT_NDJSON;
  else if (strcmp(fmt, "parquet") == 0)
    conf.format = RN_SINK_FORMAT_PARQUET;
  else
    return ctl_usage(c, "--format: \"%s\" is not ndjson or parquet", fmt);
  const char *comp = ctl_arg(a, "--compression");
  if (comp) {
    static const char *names[] = {"default", "none", "gzip", "snappy", "zstd"};
    size_t i;
    for (i = 0; i < 5 && strcmp(comp, names[i]) != 0; i++) {
    }
    if (i == 5) return ctl_usage(c, "--compression: \"%s\" is not none, gzip, snappy or zstd", comp);
    conf.compression = (rn_sink_compression_t)i;
  }
  char why[512];
  char *schema = NULL;
  const char *schema_path = ctl_arg(a, "--schema");
  if (schema_path) {
    schema = read_file(schema_path, why, sizeof why);
    if (!schema) return ctl_failf(c, "--schema %s", why);
    conf.schema = schema;
  }
  conf.prefix = ctl_arg(a, "--prefix");
  conf.error_prefix = ctl_arg(a, "--error-prefix");
  conf.event_time_field = ctl_arg(a, "--event-time-field");
  const char *s;
  if ((s = ctl_arg(a, "--buffer-bytes")) != NULL) {
    int64_t v;
    if (rn_parse_size(s, &v, why, sizeof why) != 0 || v <= 0) {
      free(schema);
      return ctl_usage(c, "--buffer-bytes: %s", v <= 0 ? "must be positive" : why);
    }
    conf.buffer_bytes = (uint64_t)v;
  }
  if ((s = ctl_arg(a, "--buffer-interval")) != NULL) {
    int64_t v;
    if (rn_parse_duration_ms(s, &v, why, sizeof why) != 0 || v <= 0) {
      free(schema);
      return ctl_usage(c, "--buffer-interval: %s", v <= 0 ? "must be positive" : why);
    }
    conf.buffer_interval_ms = v;
  }
  if ((s = ctl_arg(a, "--start")) != NULL) {
    if (strcmp(s, "latest") == 0)
      conf.start_latest = true;
    else if (strcmp(s, "earliest") != 0) {
      free(schema);
      return ctl_usage(c, "--start: \"%s\" is not earliest or latest", s);
    }
  }
  if (ctl_client(c)) {
    free(schema);
    return CTL_EXIT_FAIL;
  }
  rn_sink_desc_t *d = NULL;
  rn_err_t err = rn_sink_create(c->cl, &conf, &d);
  free(schema);
  if (err) return ctl_fail(c, err, "create sink \"%s\"", conf.name);
  int rc = print_desc(c, d);
  rn_sink_desc_free(d);
  return rc;
}

int ctl_sink_list(ctl_t *c, const ctl_args_t *a) {
  (void)a;
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  rn_stream_names_t *names = NULL;
  rn_err_t err = rn_sink_list(c->cl, &names);
  if (err) return ctl_fail(c, err, "list sinks");
  json_t *arr = c->json ? json_array() : NULL;
  ctl_table_t t;
  ctl_table_init(&t, 7);
  ctl_table_row(&t, "SINK", "STREAM", "FORMAT", "DESTINATION", "LAG-RECORDS", "OBJECTS", "STATE");
  int status = 0;
  for (size_t i = 0; i < names->count; i++) {
    rn_sink_desc_t *d = NULL;
    err = rn_sink_describe(c->cl, names->names[i], &d);
    if (err == RN_ENOSINK) continue; /* deleted meanwhile */
    if (err) {
      status = ctl_fail(c, err, "sink \"%s\"", names->names[i]);
      break;
    }
    if (arr) {
      json_array_append_new(arr, desc_json(d));
    } else {
      uint64_t lag = 0, objects = 0;
      for (size_t j = 0; j < d->shard_count; j++) {
        lag += d->shards[j].lag_records;
        objects += d->shards[j].objects;
      }
      char l[24], o[24];
      snprintf(l, sizeof l, "%" PRIu64, lag);
      snprintf(o, sizeof o, "%" PRIu64, objects);
      ctl_table_row(&t, d->name, d->stream, format_name(d->format), d->destination, l, o, d->state);
    }
    rn_sink_desc_free(d);
  }
  rn_stream_names_free(names);
  if (status) {
    json_decref(arr);
    ctl_table_free(&t);
    return status;
  }
  if (arr) {
    json_t *o = json_object();
    json_object_set_new(o, "sinks", arr);
    ctl_print_json(c, o);
    ctl_table_free(&t);
  } else if (t.nrows == 1) {
    ctl_table_free(&t);
    ctl_print(c, "no sinks\n");
  } else {
    ctl_table_print(c, &t);
  }
  return ctl_out_finish(c, 0);
}

int ctl_sink_describe(ctl_t *c, const ctl_args_t *a) {
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  rn_sink_desc_t *d = NULL;
  rn_err_t err = rn_sink_describe(c->cl, a->pos[0], &d);
  if (err) return ctl_fail(c, err, "sink \"%s\"", a->pos[0]);
  int rc = print_desc(c, d);
  rn_sink_desc_free(d);
  return rc;
}

static int pause_resume(ctl_t *c, const ctl_args_t *a, bool resume) {
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  rn_sink_desc_t *d = NULL;
  rn_err_t err = rn_sink_pause(c->cl, a->pos[0], resume, &d);
  if (err) return ctl_fail(c, err, "%s sink \"%s\"", resume ? "resume" : "pause", a->pos[0]);
  int rc = print_desc(c, d);
  rn_sink_desc_free(d);
  return rc;
}

int ctl_sink_pause(ctl_t *c, const ctl_args_t *a) { return pause_resume(c, a, false); }
int ctl_sink_resume(ctl_t *c, const ctl_args_t *a) { return pause_resume(c, a, true); }

int ctl_sink_delete(ctl_t *c, const ctl_args_t *a) {
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  rn_err_t err = rn_sink_delete(c->cl, a->pos[0]);
  if (err) return ctl_fail(c, err, "delete sink \"%s\"", a->pos[0]);
  if (c->json) {
    json_t *o = json_object();
    json_object_set_new(o, "deleted", json_string(a->pos[0]));
    ctl_print_json(c, o);
  } else {
    ctl_print(c, "sink %s deleted (its objects stay)\n", a->pos[0]);
  }
  return ctl_out_finish(c, 0);
}
