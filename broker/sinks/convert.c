/*
 * convert.c — one record to one row (docs/sink-formats.md, "Conversion
 * rules"): the record's JSON parsed with jansson, each column's value found
 * by its path and typed by the column's rules, metadata columns filled from
 * the record's metadata; and the event time of --event-time-field, which
 * reads a value by the timestamp column rule.
 *
 * Strings of a row point into the record, into the metadata or into the
 * caller's scratch buffer. Scratch strings are appended in column order
 * while the buffer may still move, marked by a NULL pointer, and pointed at
 * only once every column is done (the second loop of rn_sink_convert).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sinkfmt_int.h"

rn_err_t rn_sink_record_parse(const void *data, size_t len, json_t **out, char *why, size_t whylen) {
  json_error_t err;
  *out = NULL;
  json_t *v = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  if (v == NULL) {
    if (json_error_code(&err) == json_error_out_of_memory) return RN_ENOMEM;
    rn__sink_fail(why, whylen, "invalid JSON at byte %d: %s", err.position, err.text);
    return RN_EINVAL;
  }
  if (!json_is_object(v)) {
    json_decref(v);
    rn__sink_fail(why, whylen, "record is not a JSON object");
    return RN_EINVAL;
  }
  *out = v;
  return 0;
}

/* 2^63 as a double: int64 holds [-2^63, 2^63). */
#define TWO63 9223372036854775808.0

rn_err_t rn__sink_timestamp(const json_t *v, rn_sink_unit_t unit, int64_t *ms, char *why, size_t whylen) {
  char shown[64];
  switch (json_typeof(v)) {
  case JSON_STRING: {
    int64_t t;
    if (rn_iso8601_parse(json_string_value(v), json_string_length(v), RN_ISO8601_NO_ZONE, &t) != 0) {
      rn__sink_quote(json_string_value(v), json_string_length(v), shown, sizeof shown);
      rn__sink_fail(why, whylen, "%s is not an ISO-8601 time", shown);
      return RN_EINVAL;
    }
    *ms = t;
    return 0;
  }
  case JSON_INTEGER: {
    json_int_t x = json_integer_value(v);
    if (unit == RN_SINK_UNIT_S) {
      if (x > INT64_MAX / 1000 || x < INT64_MIN / 1000) break;
      *ms = (int64_t)x * 1000;
    } else if (unit == RN_SINK_UNIT_US) {
      *ms = (int64_t)(x / 1000 - (x % 1000 < 0)); /* floor: -1 us is -1 ms */
    } else {
      *ms = (int64_t)x;
    }
    return 0;
  }
  case JSON_REAL: {
    double f = json_real_value(v);
    f = unit == RN_SINK_UNIT_S ? f * 1000.0 : unit == RN_SINK_UNIT_US ? f / 1000.0 : f;
    f = floor(f);
    if (!(f >= -TWO63 && f < TWO63)) break;
    *ms = (int64_t)f;
    return 0;
  }
  default:
    rn__sink_snippet(v, shown, sizeof shown);
    rn__sink_fail(why, whylen, "%s is not a time (an ISO-8601 string or a number)", shown);
    return RN_EINVAL;
  }
  rn__sink_snippet(v, shown, sizeof shown);
  rn__sink_fail(why, whylen, "%s is out of range for a timestamp in %s", shown, rn_sink_unit_name(unit));
  return RN_EINVAL;
}

/* One record column's value from v (not NULL, not JSON null). */
static rn_err_t typed(const rn_sink_column_t *col, const json_t *v, rn_sink_value_t *val, rn_buf_t *scratch,
                      char *why, size_t whylen) {
  char shown[64];
  const char *want = NULL;
  switch (col->type) {
  case RN_SINK_COL_STRING:
    val->type = RN_SINK_VAL_STRING;
    if (json_is_string(v)) {
      val->u.str.p = json_string_value(v);
      val->u.str.len = json_string_length(v);
    } else {
      size_t before = scratch->len;
      rn__sink_json_compact(scratch, v);
      val->u.str.p = NULL; /* in scratch: pointed at by rn_sink_convert */
      val->u.str.len = scratch->len - before;
    }
    return 0;
  case RN_SINK_COL_INT64:
    if (json_is_integer(v)) {
      val->type = RN_SINK_VAL_INT64;
      val->u.i64 = (int64_t)json_integer_value(v);
      return 0;
    }
    if (json_is_real(v)) {
      double d = json_real_value(v);
      rn__sink_snippet(v, shown, sizeof shown);
      if (d != trunc(d)) {
        rn__sink_fail(why, whylen, "column %s: %s is not an int64", col->name, shown);
        return RN_EINVAL;
      }
      if (!(d >= -TWO63 && d < TWO63)) {
        rn__sink_fail(why, whylen, "column %s: %s is out of range for an int64", col->name, shown);
        return RN_EINVAL;
      }
      val->type = RN_SINK_VAL_INT64;
      val->u.i64 = (int64_t)d;
      return 0;
    }
    want = "an int64";
    break;
  case RN_SINK_COL_DOUBLE:
    if (json_is_number(v)) {
      val->type = RN_SINK_VAL_DOUBLE;
      val->u.f64 = json_number_value(v);
      return 0;
    }
    want = "a double";
    break;
  case RN_SINK_COL_BOOLEAN:
    if (json_is_boolean(v)) {
      val->type = RN_SINK_VAL_BOOL;
      val->u.b = json_is_true(v);
      return 0;
    }
    want = "a boolean";
    break;
  case RN_SINK_COL_TIMESTAMP: {
    char why2[RN_SINK_WHY_MAX];
    int64_t ms;
    if (rn__sink_timestamp(v, col->unit, &ms, why2, sizeof why2) != 0) {
      rn__sink_fail(why, whylen, "column %s: %s", col->name, why2);
      return RN_EINVAL;
    }
    val->type = RN_SINK_VAL_INT64;
    val->u.i64 = ms;
    return 0;
  }
  }
  rn__sink_snippet(v, shown, sizeof shown);
  rn__sink_fail(why, whylen, "column %s: %s is not %s", col->name, shown, want ? want : "of its type");
  return RN_EINVAL;
}

static void meta_string(rn_sink_value_t *val, const char *s) {
  val->type = RN_SINK_VAL_STRING;
  val->u.str.p = s ? s : "";
  val->u.str.len = strlen(val->u.str.p);
}

rn_err_t rn_sink_convert(const rn_sink_schema_t *sch, const json_t *rec, const rn_sink_meta_t *meta,
                         rn_sink_value_t *vals, rn_buf_t *scratch, char *why, size_t whylen) {
  scratch->len = 0;
  if (rec == NULL || !json_is_object(rec)) {
    rn__sink_fail(why, whylen, "record is not a JSON object");
    return RN_EINVAL;
  }
  for (size_t i = 0; i < sch->ncols; i++) {
    const rn_sink_column_t *col = &sch->cols[i];
    rn_sink_value_t *val = &vals[i];
    memset(val, 0, sizeof *val);
    switch (col->source) {
    case RN_SINK_SRC_RECORD: {
      const json_t *v = rn_sink_path_eval(col->path, rec);
      if (v == NULL || json_is_null(v)) {
        if (col->nullable) break; /* RN_SINK_VAL_NULL */
        rn__sink_fail(why, whylen, "column %s: %s and not nullable", col->name, v ? "null" : "missing");
        return RN_EINVAL;
      }
      rn_err_t rc = typed(col, v, val, scratch, why, whylen);
      if (rc != 0) return rc;
      break;
    }
    case RN_SINK_SRC_PARTITION_KEY:
      meta_string(val, meta->partition_key);
      break;
    case RN_SINK_SRC_SEQUENCE_NUMBER:
      meta_string(val, meta->sequence_number);
      break;
    case RN_SINK_SRC_SHARD: {
      size_t before = scratch->len;
      rn_buf_printf(scratch, "shardId-%012u", (unsigned)meta->shard);
      val->type = RN_SINK_VAL_STRING;
      val->u.str.p = NULL;
      val->u.str.len = scratch->len - before;
      break;
    }
    case RN_SINK_SRC_OFFSET:
      if (meta->offset > (uint64_t)INT64_MAX) {
        rn__sink_fail(why, whylen, "column %s: offset %llu is out of range for an int64", col->name,
                      (unsigned long long)meta->offset);
        return RN_EINVAL;
      }
      val->type = RN_SINK_VAL_INT64;
      val->u.i64 = (int64_t)meta->offset;
      break;
    case RN_SINK_SRC_ARRIVAL_TIME:
      val->type = RN_SINK_VAL_INT64;
      val->u.i64 = meta->arrival_ms;
      break;
    }
  }
  if (scratch->oom) {
    rn__sink_fail(why, whylen, "out of memory converting a record");
    return RN_ENOMEM;
  }
  size_t off = 0;
  for (size_t i = 0; i < sch->ncols; i++) {
    if (vals[i].type == RN_SINK_VAL_STRING && vals[i].u.str.p == NULL) {
      vals[i].u.str.p = scratch->p + off;
      off += vals[i].u.str.len;
    }
  }
  return 0;
}

rn_err_t rn_sink_event_time(const json_t *rec, const rn_sink_path_t *path, rn_sink_unit_t unit, int64_t *ms,
                            char *why, size_t whylen) {
  const json_t *v = rn_sink_path_eval(path, rec);
  char shown[RN__SINK_PATH_SHOWN];
  if (v == NULL || json_is_null(v)) {
    rn__sink_fail(why, whylen, "event time %s: %s", rn__sink_path_shown(path, shown), v ? "null" : "missing");
    return RN_EINVAL;
  }
  char why2[RN_SINK_WHY_MAX];
  if (rn__sink_timestamp(v, unit, ms, why2, sizeof why2) != 0) {
    rn__sink_fail(why, whylen, "event time %s: %s", rn__sink_path_shown(path, shown), why2);
    return RN_EINVAL;
  }
  return 0;
}
