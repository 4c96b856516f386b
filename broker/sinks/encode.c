/*
 * encode.c — a sink's configuration compiled (templates, schema, formats)
 * and the encode step of a flush (sinks_int.h): the stored batches of one
 * shard's range in, one object per rendered prefix out, every record that
 * cannot be parsed, timed, placed or converted in an error object with its
 * reason. Pure: memory in, memory out; runs on the thread pool.
 *
 * Invariants: the output is a function of (configuration, range, stored
 * records) only — a redone flush yields the same keys and contents — and
 * every record of the range lands in exactly one object.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "parquet.h"
#include "rn_base.h"
#include "runnel/batch.h"
#include "runnel/seqnum.h"
#include "sinkfmt.h"
#include "sinks_int.h"

struct rn__sink_fmt {
  rn_sink_format_t format;
  bool gzip;                   /* NDJSON */
  rn_pq_codec_t codec;         /* Parquet */
  rn_sink_schema_t *schema;    /* Parquet */
  rn_pq_column_t *cols;
  size_t row_group_bytes;
  rn_sink_tmpl_t *prefix, *error_prefix;
  rn_sink_path_t *event_time;  /* NULL: arrival time */
};

void rn__sink_fmt_free(rn__sink_fmt_t *f) {
  if (f == NULL) return;
  rn_sink_schema_free(f->schema);
  free(f->cols);
  rn_sink_tmpl_free(f->prefix);
  rn_sink_tmpl_free(f->error_prefix);
  rn_sink_path_free(f->event_time);
  free(f);
}

const char *rn__sink_fmt_ext(const rn__sink_fmt_t *f) {
  if (f->format == RN_SINK_PARQUET) return ".parquet";
  return f->gzip ? ".ndjson.gz" : ".ndjson";
}

static rn_pq_codec_t pq_codec(rn_sink_codec_t c) {
  switch (c) {
  case RN_SINK_CODEC_SNAPPY: return RN_PQ_SNAPPY;
  case RN_SINK_CODEC_GZIP: return RN_PQ_GZIP;
  case RN_SINK_CODEC_ZSTD: return RN_PQ_ZSTD;
  default: return RN_PQ_UNCOMPRESSED;
  }
}

static rn_pq_type_t pq_type(rn_sink_coltype_t t) {
  switch (t) {
  case RN_SINK_COL_INT64: return RN_PQ_INT64;
  case RN_SINK_COL_DOUBLE: return RN_PQ_DOUBLE;
  case RN_SINK_COL_BOOLEAN: return RN_PQ_BOOLEAN;
  case RN_SINK_COL_TIMESTAMP: return RN_PQ_TIMESTAMP;
  default: return RN_PQ_STRING;
  }
}

rn_err_t rn__sink_fmt_compile(const rn_sink_config_t *c, rn__sink_fmt_t **out, char *why, size_t whylen) {
  *out = NULL;
  char w[RN_SINK_WHY_MAX];
  rn_err_t rc;
  rn__sink_fmt_t *f = rn_xcalloc(1, sizeof *f);
  f->format = c->format;
  const char *schema = c->schema ? c->schema : "";
  if (c->format == RN_SINK_NDJSON) {
    if (*schema) {
      snprintf(why, whylen, "a schema is for Parquet sinks; NDJSON writes each record's JSON as it is");
      goto inval;
    }
    switch (c->compression) {
    case RN_SINK_COMP_DEFAULT:
    case RN_SINK_COMP_GZIP: f->gzip = true; break;
    case RN_SINK_COMP_NONE: f->gzip = false; break;
    default: snprintf(why, whylen, "NDJSON compresses with gzip or none, not snappy or zstd"); goto inval;
    }
  } else if (c->format == RN_SINK_PARQUET) {
    if (!*schema) {
      snprintf(why, whylen, "a Parquet sink needs a schema (--schema FILE: columns, types, JSON paths)");
      goto inval;
    }
    rc = rn_sink_schema_parse(schema, strlen(schema), &f->schema, w, sizeof w);
    if (rc != 0) {
      snprintf(why, whylen, "%s", w);
      rn__sink_fmt_free(f);
      return RN_EINVAL;
    }
    switch (c->compression) {
    case RN_SINK_COMP_DEFAULT: f->codec = pq_codec(f->schema->codec); break;
    case RN_SINK_COMP_NONE: f->codec = RN_PQ_UNCOMPRESSED; break;
    case RN_SINK_COMP_GZIP: f->codec = RN_PQ_GZIP; break;
    case RN_SINK_COMP_SNAPPY: f->codec = RN_PQ_SNAPPY; break;
    case RN_SINK_COMP_ZSTD: f->codec = RN_PQ_ZSTD; break;
    default: snprintf(why, whylen, "unknown compression"); goto inval;
    }
    f->row_group_bytes = f->schema->row_group_bytes > 0 ? (size_t)f->schema->row_group_bytes : 0;
    f->cols = rn_xcalloc(f->schema->ncols + 1, sizeof *f->cols);
    for (size_t i = 0; i < f->schema->ncols; i++) {
      f->cols[i].name = f->schema->cols[i].name;
      f->cols[i].type = pq_type(f->schema->cols[i].type);
      f->cols[i].nullable = f->schema->cols[i].nullable;
    }
  } else {
    snprintf(why, whylen, "unknown sink format");
    goto inval;
  }
  const char *p = c->prefix && *c->prefix ? c->prefix : "!{timestamp:yyyy/MM/dd/HH}/";
  rc = rn_sink_tmpl_parse(p, strlen(p), 0, &f->prefix, w, sizeof w);
  if (rc != 0) {
    snprintf(why, whylen, "%s", w);
    goto inval;
  }
  p = c->error_prefix && *c->error_prefix ? c->error_prefix : "errors/!{error}/!{timestamp:yyyy/MM/dd}/";
  rc = rn_sink_tmpl_parse(p, strlen(p), RN_SINK_TMPL_ERROR, &f->error_prefix, w, sizeof w);
  if (rc != 0) {
    snprintf(why, whylen, "error %s", w);
    goto inval;
  }
  if (rn_sink_tmpl_uses_fields(f->error_prefix)) {
    snprintf(why, whylen, "the error prefix cannot use !{field:...}: its records may not be JSON");
    goto inval;
  }
  if (strcmp(rn_sink_tmpl_text(f->prefix), rn_sink_tmpl_text(f->error_prefix)) == 0) {
    snprintf(why, whylen, "the error prefix must differ from the prefix");
    goto inval;
  }
  if (c->event_time_field && *c->event_time_field) {
    rc = rn_sink_path_parse(c->event_time_field, strlen(c->event_time_field), &f->event_time, w, sizeof w);
    if (rc != 0) {
      snprintf(why, whylen, "event time field: %s", w);
      goto inval;
    }
  }
  *out = f;
  return 0;
inval:
  rn__sink_fmt_free(f);
  return RN_EINVAL;
}

/* ---- encoding ------------------------------------------------------------------------ */

/* One object being built: the records of one rendered prefix. */
typedef struct part {
  char *prefix;
  bool errors;
  uint64_t first, last, records;
  rn_sink_ndjson_t nd;      /* NDJSON data objects and every error object */
  rn_pq_writer_t *pq;       /* Parquet data objects */
  int next_in_bucket;
} part_t;

#define NBUCKETS 256

typedef struct parts {
  part_t *v;
  size_t n, cap;
  int bucket[NBUCKETS];
} parts_t;

static part_t *part_get(parts_t *ps, const rn__sink_fmt_t *f, const char *prefix, bool errors, rn_err_t *err) {
  uint64_t h = XXH3_64bits(prefix, strlen(prefix)) ^ (uint64_t)errors;
  int *slot = &ps->bucket[h % NBUCKETS];
  for (int i = *slot; i >= 0; i = ps->v[i].next_in_bucket)
    if (ps->v[i].errors == errors && strcmp(ps->v[i].prefix, prefix) == 0) return &ps->v[i];
  if (ps->n == ps->cap) {
    ps->cap = ps->cap ? ps->cap * 2 : 8;
    ps->v = rn_xrealloc(ps->v, ps->cap * sizeof *ps->v);
  }
  part_t *p = &ps->v[ps->n];
  memset(p, 0, sizeof *p);
  p->prefix = rn_xstrdup(prefix);
  p->errors = errors;
  if (!errors && f->format == RN_SINK_PARQUET) {
    rn_pq_opts_t o;
    rn_pq_opts_default(&o);
    o.codec = f->codec;
    if (f->row_group_bytes) o.row_group_bytes = f->row_group_bytes;
    *err = rn_pq_writer_new(f->cols, f->schema->ncols, &o, &p->pq);
    if (*err != 0) {
      free(p->prefix);
      return NULL;
    }
  }
  p->next_in_bucket = *slot;
  *slot = (int)ps->n;
  ps->n++;
  return p;
}

static void part_note(part_t *p, uint64_t offset) {
  if (p->records == 0) p->first = offset;
  p->last = offset;
  p->records++;
}

static rn_err_t pq_row(rn_pq_writer_t *w, const rn_sink_value_t *vals, size_t n) {
  for (size_t i = 0; i < n; i++) {
    rn_err_t rc = 0;
    const rn_sink_value_t *v = &vals[i];
    switch (v->type) {
    case RN_SINK_VAL_NULL: rc = rn_pq_set_null(w, i); break;
    case RN_SINK_VAL_STRING: rc = rn_pq_set_string(w, i, v->u.str.p, v->u.str.len); break;
    case RN_SINK_VAL_INT64: rc = rn_pq_set_int64(w, i, v->u.i64); break;
    case RN_SINK_VAL_DOUBLE: rc = rn_pq_set_double(w, i, v->u.f64); break;
    case RN_SINK_VAL_BOOL: rc = rn_pq_set_bool(w, i, v->u.b); break;
    }
    if (rc != 0) {
      rn_pq_abort_row(w);
      return rc;
    }
  }
  return rn_pq_end_row(w);
}

typedef struct enc_ctx {
  rn__sink_enc_t *e;
  parts_t parts;
  rn_sink_value_t *vals;
  rn_buf_t scratch;
  char key[RN_SINK_KEY_MAX + 1];
  char pk[1024 + 1];
} enc_ctx_t;

/* Put the record in an error object under the error prefix. */
static rn_err_t to_errors(enc_ctx_t *x, const rn_sink_meta_t *m, const char *kind, const char *reason,
                          const rn_record_t *rec) {
  const rn__sink_fmt_t *f = x->e->fmt;
  size_t klen;
  char w[RN_SINK_WHY_MAX];
  rn_err_t rc = rn_sink_tmpl_render(f->error_prefix, NULL, m->arrival_ms, kind, x->key, sizeof x->key, &klen, w, sizeof w);
  if (rc != 0) snprintf(x->key, sizeof x->key, "errors/"); /* a fixed template cannot fail but by length */
  part_t *p = part_get(&x->parts, f, x->key, true, &rc);
  if (p == NULL) return rc;
  rc = rn_sink_ndjson_append_error(&p->nd, m, reason, rec->value, rec->value_len);
  if (rc != 0) return rc;
  part_note(p, rec->offset);
  x->e->error_records++;
  return 0;
}

static rn_err_t one_record(enc_ctx_t *x, const rn_record_t *rec, int64_t arrival_ms) {
  rn__sink_enc_t *e = x->e;
  const rn__sink_fmt_t *f = e->fmt;
  size_t kl = rec->key_len < sizeof x->pk - 1 ? rec->key_len : sizeof x->pk - 1;
  memcpy(x->pk, rec->key, kl);
  x->pk[kl] = '\0';
  char seq[RN_SEQNUM_BUFLEN];
  rn_seqnum_encode(e->stream_created_ms, e->shard, rec->offset, seq);
  rn_sink_meta_t m = {.partition_key = x->pk, .shard = e->shard, .sequence_number = seq, .offset = rec->offset,
                      .arrival_ms = arrival_ms};
  char w[RN_SINK_WHY_MAX];
  json_t *j = NULL;
  rn_err_t rc = rn_sink_record_parse(rec->value, rec->value_len, &j, w, sizeof w);
  if (rc != 0) return to_errors(x, &m, "parse", w, rec);
  int64_t t = arrival_ms;
  if (f->event_time != NULL && rn_sink_event_time(j, f->event_time, RN_SINK_UNIT_MS, &t, w, sizeof w) != 0) {
    json_decref(j);
    return to_errors(x, &m, "time", w, rec);
  }
  size_t klen;
  rc = rn_sink_tmpl_render(f->prefix, j, t, NULL, x->key, sizeof x->key, &klen, w, sizeof w);
  if (rc != 0) {
    json_decref(j);
    return to_errors(x, &m, "prefix", w, rec);
  }
  if (f->format == RN_SINK_PARQUET) {
    rc = rn_sink_convert(f->schema, j, &m, x->vals, &x->scratch, w, sizeof w);
    if (rc == RN_ENOMEM) {
      json_decref(j);
      return rc;
    }
    if (rc != 0) {
      json_decref(j);
      return to_errors(x, &m, "convert", w, rec);
    }
  }
  part_t *p = part_get(&x->parts, f, x->key, false, &rc);
  if (p == NULL) {
    json_decref(j);
    return rc;
  }
  if (f->format == RN_SINK_PARQUET) {
    rc = pq_row(p->pq, x->vals, f->schema->ncols);
    if (rc == RN_EINVAL) { /* e.g. a string that is not UTF-8 */
      json_decref(j);
      return to_errors(x, &m, "convert", "a value the Parquet writer refused (a string that is not UTF-8?)", rec);
    }
  } else if (memchr(rec->value, '\n', rec->value_len) == NULL && memchr(rec->value, '\r', rec->value_len) == NULL) {
    /* Valid JSON (it parsed) on one line already: the record's own bytes,
     * as Firehose writes them, instead of serialising the parse again. */
    size_t before = p->nd.buf.len;
    rn_buf_put(&p->nd.buf, rec->value, rec->value_len);
    rn_buf_put(&p->nd.buf, "\n", 1);
    if (p->nd.buf.oom) {
      p->nd.buf.len = before;
      rc = RN_ENOMEM;
    } else {
      p->nd.records++;
    }
  } else {
    rc = rn_sink_ndjson_append(&p->nd, j); /* pretty-printed: one compact line */
  }
  json_decref(j);
  if (rc != 0) return rc;
  part_note(p, rec->offset);
  e->records++;
  return 0;
}

void rn__sink_objs_free(rn__sink_obj_t *objs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(objs[i].key);
    free(objs[i].data);
  }
  free(objs);
}

static void fail(rn__sink_enc_t *e, rn_err_t err, const char *what, const char *detail) {
  e->err = err;
  snprintf(e->msg, sizeof e->msg, "%s: %s", what, detail);
}

void rn__sink_encode(rn__sink_enc_t *e) {
  const rn__sink_fmt_t *f = e->fmt;
  enc_ctx_t *x = rn_xcalloc(1, sizeof *x);
  x->e = e;
  for (int i = 0; i < NBUCKETS; i++) x->parts.bucket[i] = -1;
  if (f->format == RN_SINK_PARQUET) x->vals = rn_xcalloc(f->schema->ncols + 1, sizeof *x->vals);
  e->objs = NULL;
  e->nobjs = 0;
  e->records = e->error_records = 0;
  e->err = 0;
  const uint8_t *p = e->batches;
  size_t left = e->len;
  while (left > 0 && e->err == 0) {
    rn_batch_header_t h;
    rn_err_t rc = rn_batch_header_decode(p, left, &h);
    if (rc != 0 || h.batch_length > left) {
      fail(e, RN_ECORRUPT, "a stored batch does not decode", rn_strerror(rc ? rc : RN_EPARTIAL));
      break;
    }
    uint64_t last_off = h.base_offset + (h.record_count ? h.record_count - 1 : 0);
    if (last_off >= e->first && h.base_offset <= e->last) {
      rn_batch_iter_t it;
      rc = rn_batch_iter_init(&it, p, h.batch_length);
      if (rc != 0) {
        fail(e, rc, "a stored batch failed verification", rn_strerror(rc));
        rn_batch_iter_free(&it);
        break;
      }
      rn_record_t rec;
      while ((rc = rn_batch_iter_next(&it, &rec)) == 0) {
        if (rec.offset < e->first || rec.offset > e->last) continue;
        rc = one_record(x, &rec, h.arrival_time_ms);
        if (rc != 0) break;
      }
      rn_batch_iter_free(&it);
      if (rc != 0 && rc != RN_EOFFSET) fail(e, rc, "decoding records", rn_strerror(rc));
    }
    p += h.batch_length;
    left -= h.batch_length;
  }
  /* Finish every object. */
  if (e->err == 0 && x->parts.n > 0) {
    e->objs = rn_xcalloc(x->parts.n, sizeof *e->objs);
    char shard_id[32];
    snprintf(shard_id, sizeof shard_id, "shardId-%012u", e->shard);
    for (size_t i = 0; i < x->parts.n && e->err == 0; i++) {
      part_t *pt = &x->parts.v[i];
      rn__sink_obj_t *o = &e->objs[e->nobjs];
      rn_err_t rc;
      const char *ext;
      if (pt->pq != NULL) {
        rc = rn_pq_finish(pt->pq, &o->data, &o->len);
        ext = ".parquet";
      } else {
        bool gz = pt->errors ? false : f->gzip;
        rc = rn_sink_ndjson_finish(&pt->nd, gz, &o->data, &o->len);
        ext = pt->errors ? ".ndjson" : rn__sink_fmt_ext(f);
      }
      if (rc != 0) {
        fail(e, rc, "building an object", rn_strerror(rc));
        break;
      }
      size_t kn = strlen(pt->prefix) + strlen(e->sink) + 96;
      o->key = rn_xmalloc(kn);
      snprintf(o->key, kn, "%s%s-%s-%020llu-%020llu%s", pt->prefix, e->sink, shard_id, (unsigned long long)pt->first,
               (unsigned long long)pt->last, ext);
      o->records = pt->records;
      o->errors = pt->errors;
      e->nobjs++;
    }
  }
  for (size_t i = 0; i < x->parts.n; i++) {
    free(x->parts.v[i].prefix);
    rn_sink_ndjson_free(&x->parts.v[i].nd);
    rn_pq_writer_free(x->parts.v[i].pq);
  }
  free(x->parts.v);
  free(x->vals);
  rn_buf_free(&x->scratch);
  free(x);
  if (e->err != 0) {
    rn__sink_objs_free(e->objs, e->nobjs);
    e->objs = NULL;
    e->nobjs = 0;
  }
}
