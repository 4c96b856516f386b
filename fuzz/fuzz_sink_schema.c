/*
 * fuzz_sink_schema.c — libFuzzer target for the schema file of Parquet
 * sinks (broker/sinks/sinkfmt.h, rn_sink_schema_parse): YAML a client
 * sends. The input is the file's text, exactly size bytes. Checked
 * promises (a violation aborts):
 *   - a rejection writes a NUL-terminated one-line reason starting
 *     "schema:", whole within RN_SINK_WHY_MAX, and leaves *out NULL;
 *   - an accepted schema has 1..RN_SINK_MAX_COLUMNS columns with valid,
 *     unique names, record columns first (with a path), metadata columns
 *     after (no path, not nullable), a unit other than ms only on
 *     timestamps;
 *   - converting fixed records with it either fails with a reason or
 *     gives every column a value of the column's type (or null where
 *     nullable), strings inside their stated length.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "sinkfmt.h"

static const char *const records[] = {
    "{\"a\":1,\"b\":\"x\",\"c\":[1,{\"d\":null}],\"t\":\"2026-12-02T05:03:01Z\",\"f\":1.5,\"g\":true}",
    "{\"event_uuid\":\"u\",\"created_at\":1796187781000,\"n\":3.0,\"o\":{\"k\":\"\\u00e9\"},\"s\":\"1\"}",
    "{}",
};

static bool name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > RN_SINK_NAME_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9')))
      return false;
  }
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  rn_sink_schema_t *sch = (rn_sink_schema_t *)&size;
  char why[RN_SINK_WHY_MAX];
  memset(why, 'x', sizeof why);
  rn_err_t rc = rn_sink_schema_parse((const char *)data, size, &sch, why, sizeof why);
  if (rc != 0) {
    CHECK(sch == NULL);
    CHECK(memchr(why, '\0', sizeof why) != NULL);
    CHECK(strchr(why, '\n') == NULL);
    CHECK(strlen(why) < sizeof why - 1); /* never truncated */
    CHECK(rc == RN_ENOMEM || strncmp(why, "schema", 6) == 0);
    return 0;
  }
  CHECK(sch->ncols >= 1 && sch->ncols <= RN_SINK_MAX_COLUMNS && sch->nrecord <= sch->ncols);
  for (size_t i = 0; i < sch->ncols; i++) {
    const rn_sink_column_t *c = &sch->cols[i];
    CHECK(name_ok(c->name));
    CHECK(rn_sink_schema_find(sch, c->name) == c);
    CHECK((i < sch->nrecord) == (c->source == RN_SINK_SRC_RECORD));
    CHECK((c->path != NULL) == (c->source == RN_SINK_SRC_RECORD));
    CHECK(c->source == RN_SINK_SRC_RECORD || !c->nullable);
    CHECK(c->unit == RN_SINK_UNIT_MS || c->type == RN_SINK_COL_TIMESTAMP);
  }
  rn_sink_value_t *vals = calloc(sch->ncols, sizeof *vals);
  rn_buf_t scratch = {0};
  volatile unsigned sum = 0;
  rn_sink_meta_t meta = {.partition_key = "pk", .shard = 3, .sequence_number = "49", .offset = 7, .arrival_ms = 1};
  for (size_t r = 0; r < sizeof records / sizeof records[0]; r++) {
    json_t *rec = NULL;
    CHECK(rn_sink_record_parse(records[r], strlen(records[r]), &rec, why, sizeof why) == 0);
    memset(why, 'x', sizeof why);
    if (rn_sink_convert(sch, rec, &meta, vals, &scratch, why, sizeof why) != 0) {
      CHECK(memchr(why, '\0', sizeof why) != NULL && strchr(why, '\n') == NULL && strlen(why) < sizeof why - 1);
    } else {
      for (size_t i = 0; i < sch->ncols; i++) {
        const rn_sink_column_t *c = &sch->cols[i];
        const rn_sink_value_t *v = &vals[i];
        if (v->type == RN_SINK_VAL_NULL) {
          CHECK(c->nullable);
          continue;
        }
        switch (c->type) {
        case RN_SINK_COL_STRING:
          CHECK(v->type == RN_SINK_VAL_STRING);
          for (size_t j = 0; j < v->u.str.len; j++) sum += (unsigned char)v->u.str.p[j]; /* ASan: in bounds */
          break;
        case RN_SINK_COL_INT64:
        case RN_SINK_COL_TIMESTAMP: CHECK(v->type == RN_SINK_VAL_INT64); break;
        case RN_SINK_COL_DOUBLE: CHECK(v->type == RN_SINK_VAL_DOUBLE); break;
        case RN_SINK_COL_BOOLEAN: CHECK(v->type == RN_SINK_VAL_BOOL); break;
        }
      }
    }
    json_decref(rec);
  }
  (void)sum;
  rn_buf_free(&scratch);
  free(vals);
  rn_sink_schema_free(sch);
  return 0;
}
