/*
 * test_sinkfmt.c — the pure record conversion of archive sinks
 * (broker/sinks/sinkfmt.h): JSON paths, the schema file and its error
 * lines, record-to-row conversion by each type's rules, the event time,
 * prefix templates (Firehose and Hive style keys for a known time, the
 * percent-encoding of field values, the segment rule) and NDJSON objects
 * (compact lines, error lines, a gzip round trip through zlib's inflate).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sinkfmt.h"

/* 2026-12-02T05:03:01Z */
#define T0 1796187781000LL

static json_t *rec_of(const char *text) {
  json_t *rec = NULL;
  char why[RN_SINK_WHY_MAX];
  if (rn_sink_record_parse(text, strlen(text), &rec, why, sizeof why) != 0) fail_msg("%s: %s", text, why);
  return rec;
}

static rn_sink_path_t *path_of(const char *s) {
  rn_sink_path_t *p = NULL;
  char why[RN_SINK_WHY_MAX];
  if (rn_sink_path_parse(s, strlen(s), &p, why, sizeof why) != 0) fail_msg("%s: %s", s, why);
  return p;
}

/* ---- 1. JSON paths ---------------------------------------------------------- */

static void test_path_eval(void **state) {
  (void)state;
  json_t *rec = rec_of("{\"a\":{\"b\":[0,1,{\"c\":5}]},\"weird.name\":\"w\",\"q\\\"x\":7,\"n\":null,\"s\":\"t\"}");
  static const struct {
    const char *path;
    const char *want; /* compact JSON of the value, NULL: missing */
  } cases[] = {
      {"$.a.b[2].c", "5"},     {"a.b[2].c", "5"},        {"a.b[0]", "0"},        {"$['weird.name']", "\"w\""},
      {"[\"weird.name\"]", "\"w\""}, {"$[\"q\\\"x\"]", "7"}, {"$.n", "null"},      {"$.a.b[3]", NULL},
      {"$.s.x", NULL},         {"$.s[0]", NULL},         {"$.a[0]", NULL},       {"$.nope", NULL},
      {"$", "{\"a\":{\"b\":[0,1,{\"c\":5}]},\"weird.name\":\"w\",\"q\\\"x\":7,\"n\":null,\"s\":\"t\"}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rn_sink_path_t *p = path_of(cases[i].path);
    assert_string_equal(rn_sink_path_text(p), cases[i].path);
    json_t *v = rn_sink_path_eval(p, rec);
    if (cases[i].want == NULL) {
      if (v != NULL) fail_msg("%s: found a value", cases[i].path);
    } else {
      if (v == NULL) fail_msg("%s: missing", cases[i].path);
      char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
      if (strcmp(got, cases[i].want) != 0) fail_msg("%s: %s, want %s", cases[i].path, got, cases[i].want);
      free(got);
    }
    rn_sink_path_free(p);
  }
  rn_sink_path_t *root = path_of("$");
  assert_null(rn_sink_path_eval(root, NULL));
  rn_sink_path_free(root);
  json_decref(rec);
}

static void test_path_errors(void **state) {
  (void)state;
  static const struct {
    const char *path, *why;
  } bad[] = {
      {"", "empty path"},
      {"$.", "at position 3: expected a name after '.'"},
      {"$.a[", "at position 5: expected an index or a quoted name after '['"},
      {"$.a[01]", "at position 5: bad array index (0..999999999, no leading zeros)"},
      {"$.a[1234567890]", "at position 5: bad array index (0..999999999, no leading zeros)"},
      {"$.a[1", "at position 6: expected ']'"},
      {"$.a b", "at position 4: unexpected byte 0x20 (expected '.' or '[')"},
      {"$['x", "at position 3: quoted name not closed"},
      {"$['x\\n']", "at position 5: unknown escape in a quoted name (only \\' \\\" \\\\)"},
      {"$.a.%", "at position 5: expected a name, found '%' (quote it: ['...'])"},
      {"$x", "at position 2: unexpected 'x' (expected '.' or '[')"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rn_sink_path_t *p = (rn_sink_path_t *)1;
    char why[RN_SINK_WHY_MAX] = "";
    assert_int_equal(rn_sink_path_parse(bad[i].path, strlen(bad[i].path), &p, why, sizeof why), RN_EINVAL);
    assert_null(p);
    if (strcmp(why, bad[i].why) != 0) fail_msg("%s: \"%s\", want \"%s\"", bad[i].path, why, bad[i].why);
  }
  /* a NUL inside, too many steps */
  rn_sink_path_t *p;
  char why[RN_SINK_WHY_MAX];
  assert_int_equal(rn_sink_path_parse("$.a\0b", 5, &p, why, sizeof why), RN_EINVAL);
  char deep[400] = "$";
  for (int i = 0; i < 65; i++) strcat(deep, ".a");
  assert_int_equal(rn_sink_path_parse(deep, strlen(deep), &p, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "more than 64 steps"));
}

/* ---- 2. schema file ------------------------------------------------------------ */

static const char example_schema[] = "columns:\n"
                                     "  - name: event_uuid\n"
                                     "    type: string\n"
                                     "    path: $.event_uuid\n"
                                     "    nullable: false\n"
                                     "  - name: created_at\n"
                                     "    type: timestamp\n"
                                     "    unit: ms\n"
                                     "  - name: n\n"
                                     "    type: int64\n"
                                     "    nullable: false\n"
                                     "  - name: score\n"
                                     "    type: double\n"
                                     "  - name: ok\n"
                                     "    type: boolean\n"
                                     "  - name: secs\n"
                                     "    type: timestamp\n"
                                     "    unit: s\n"
                                     "  - name: country\n"
                                     "    type: string\n"
                                     "    path: $.geo['country.code']\n"
                                     "  - name: extra\n"
                                     "    type: string\n"
                                     "metadata:\n"
                                     "  - partition_key\n"
                                     "  - {name: seq, source: sequence_number}\n"
                                     "  - shard\n"
                                     "  - offset\n"
                                     "  - {source: arrival_time}\n"
                                     "compression: zstd\n"
                                     "row_group_bytes: 64MiB\n";

static rn_sink_schema_t *schema_of(const char *text) {
  rn_sink_schema_t *sch = NULL;
  char why[RN_SINK_WHY_MAX];
  if (rn_sink_schema_parse(text, strlen(text), &sch, why, sizeof why) != 0) fail_msg("%s", why);
  return sch;
}

static void test_schema_example(void **state) {
  (void)state;
  rn_sink_schema_t *sch = schema_of(example_schema);
  assert_int_equal(sch->ncols, 13);
  assert_int_equal(sch->nrecord, 8);
  assert_int_equal(sch->codec, RN_SINK_CODEC_ZSTD);
  assert_int_equal(sch->row_group_bytes, 64 * 1024 * 1024);
  static const struct {
    const char *name;
    rn_sink_coltype_t type;
    bool nullable;
    rn_sink_unit_t unit;
    rn_sink_source_t src;
    const char *path;
  } want[] = {
      {"event_uuid", RN_SINK_COL_STRING, false, RN_SINK_UNIT_MS, RN_SINK_SRC_RECORD, "$.event_uuid"},
      {"created_at", RN_SINK_COL_TIMESTAMP, true, RN_SINK_UNIT_MS, RN_SINK_SRC_RECORD, "$.created_at"},
      {"n", RN_SINK_COL_INT64, false, RN_SINK_UNIT_MS, RN_SINK_SRC_RECORD, "$.n"},
      {"score", RN_SINK_COL_DOUBLE, true, RN_SINK_UNIT_MS, RN_SINK_SRC_RECORD, "$.score"},
      {"ok", RN_SINK_COL_BOOLEAN, true, RN_SINK_UNIT_MS, RN_SINK_SRC_RECORD, "$.ok"},
      {"secs", RN_SINK_COL_TIMESTAMP, true, RN_SINK_UNIT_S, RN_SINK_SRC_RECORD, "$.secs"},
      {"country", RN_SINK_COL_STRING, true, RN_SINK_UNIT_MS, RN_SINK_SRC_RECORD, "$.geo['country.code']"},
      {"extra", RN_SINK_COL_STRING, true, RN_SINK_UNIT_MS, RN_SINK_SRC_RECORD, "$.extra"},
      {"_partition_key", RN_SINK_COL_STRING, false, RN_SINK_UNIT_MS, RN_SINK_SRC_PARTITION_KEY, NULL},
      {"seq", RN_SINK_COL_STRING, false, RN_SINK_UNIT_MS, RN_SINK_SRC_SEQUENCE_NUMBER, NULL},
      {"_shard", RN_SINK_COL_STRING, false, RN_SINK_UNIT_MS, RN_SINK_SRC_SHARD, NULL},
      {"_offset", RN_SINK_COL_INT64, false, RN_SINK_UNIT_MS, RN_SINK_SRC_OFFSET, NULL},
      {"_arrival_time", RN_SINK_COL_TIMESTAMP, false, RN_SINK_UNIT_MS, RN_SINK_SRC_ARRIVAL_TIME, NULL},
  };
  for (size_t i = 0; i < sch->ncols; i++) {
    const rn_sink_column_t *c = &sch->cols[i];
    assert_string_equal(c->name, want[i].name);
    assert_int_equal(c->type, want[i].type);
    assert_int_equal(c->nullable, want[i].nullable);
    assert_int_equal(c->unit, want[i].unit);
    assert_int_equal(c->source, want[i].src);
    if (want[i].path) assert_string_equal(rn_sink_path_text(c->path), want[i].path);
    else assert_null(c->path);
    assert_ptr_equal(rn_sink_schema_find(sch, want[i].name), c);
  }
  assert_null(rn_sink_schema_find(sch, "nope"));
  assert_string_equal(rn_sink_coltype_name(RN_SINK_COL_TIMESTAMP), "timestamp");
  assert_string_equal(rn_sink_codec_name(sch->codec), "zstd");
  assert_string_equal(rn_sink_source_name(RN_SINK_SRC_SHARD), "shard");
  assert_string_equal(rn_sink_unit_name(RN_SINK_UNIT_US), "us");
  rn_sink_schema_free(sch);

  /* defaults: snappy, no row group size, nullable, $.<name> */
  sch = schema_of("columns: [{name: a, type: string}]\n");
  assert_int_equal(sch->ncols, 1);
  assert_int_equal(sch->codec, RN_SINK_CODEC_SNAPPY);
  assert_int_equal(sch->row_group_bytes, 0);
  assert_true(sch->cols[0].nullable);
  assert_string_equal(rn_sink_path_text(sch->cols[0].path), "$.a");
  rn_sink_schema_free(sch);
  rn_sink_schema_free(NULL);
}

static void test_schema_errors(void **state) {
  (void)state;
  static const struct {
    const char *text;
    rn_err_t rc;
    const char *why; /* exact */
  } bad[] = {
      {"columns:\n  - name: a\n    tpye: string\n", RN_EINVAL,
       "schema:3: column a: unknown key \"tpye\" (expected name, type, path, nullable or unit)"},
      {"columns:\n  - name: created_at\n    type: datetime\n", RN_EINVAL,
       "schema:3: column created_at: unknown type \"datetime\" (expected string, int64, double, boolean or "
       "timestamp)"},
      {"columns:\n  - name: a\n    type: string\n  - name: a\n    type: int64\n", RN_EINVAL,
       "schema:4: duplicate column name \"a\" (first on line 2)"},
      {"columns:\n  - type: string\n", RN_EINVAL, "schema:2: columns[0]: missing name"},
      {"columns:\n  - name: a\n", RN_EINVAL,
       "schema:2: column a: missing type (string, int64, double, boolean or timestamp)"},
      {"columns:\n  - name: a\n    type: string\n    path: $.a[\n", RN_EINVAL,
       "schema:4: column a: bad path \"$.a[\": at position 5: expected an index or a quoted name after '['"},
      {"columns:\n  - name: 1a\n    type: string\n", RN_EINVAL,
       "schema:2: column name \"1a\" must match [A-Za-z_][A-Za-z0-9_]* (at most 128 bytes)"},
      {"columns:\n  - name: a\n    type: string\n    unit: s\n", RN_EINVAL,
       "schema:4: column a: unit applies to timestamp columns only"},
      {"columns:\n  - name: a\n    type: timestamp\n    unit: ns\n", RN_EINVAL,
       "schema:4: column a: unknown unit (expected s, ms or us)"},
      {"columns:\n  - name: a\n    type: string\n    nullable: maybe\n", RN_EINVAL,
       "schema:4: column a: nullable must be true or false"},
      {"columns:\n  - name: a\n    type: string\ncompression: lz4\n", RN_EINVAL,
       "schema:4: unknown compression \"lz4\" (expected snappy, gzip, zstd or none)"},
      {"columns:\n  - name: a\n    type: string\nrow_group_bytes: 1KiB\n", RN_EINVAL,
       "schema:4: row_group_bytes must be between 64KiB and 1GiB"},
      {"colums:\n  - name: a\n", RN_EINVAL,
       "schema:1: top level: unknown key \"colums\" (expected columns, metadata, compression or row_group_bytes)"},
      {"columns:\n  - name: a\n    type: string\nmetadata:\n  - shardid\n", RN_EINVAL,
       "schema:5: metadata[0]: unknown source \"shardid\" (expected partition_key, shard, sequence_number, offset "
       "or arrival_time)"},
      {"columns:\n  - name: _shard\n    type: string\nmetadata:\n  - shard\n", RN_EINVAL,
       "schema:5: duplicate column name \"_shard\" (first on line 2)"},
      {"columns:\n  - name: a\n    type:\n", RN_EINVAL, "schema:3: column a: type needs a value"},
      {"columns:\n  - name: a\n    type: [string]\n", RN_EINVAL,
       "schema:3: column a: type must be a single value, not a list or mapping"},
      {"columns:\n  - name: a\n    name: b\n", RN_EINVAL, "schema:3: column a: name set twice (first on line 2)"},
      {"columns: []\n", RN_EFORMAT, "schema:1: columns must be a non-empty list of mappings"},
      {"- a\n", RN_EFORMAT,
       "schema:1: the top level must be a mapping (columns:, metadata:, compression:, row_group_bytes:)"},
      {"", RN_EFORMAT, "schema:1: empty file: the schema needs a columns: list"},
      {"compression: gzip\n", RN_EINVAL, "schema:1: no columns: the schema needs a columns: list"},
      {"columns:\n  - name: a\n   type: x\n", RN_EFORMAT, NULL},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rn_sink_schema_t *sch = (rn_sink_schema_t *)1;
    char why[RN_SINK_WHY_MAX] = "";
    rn_err_t rc = rn_sink_schema_parse(bad[i].text, strlen(bad[i].text), &sch, why, sizeof why);
    if (rc != bad[i].rc) fail_msg("case %zu: rc %d, want %d (%s)", i, rc, bad[i].rc, why);
    assert_null(sch);
    if (bad[i].why && strcmp(why, bad[i].why) != 0) fail_msg("case %zu:\n got \"%s\"\nwant \"%s\"", i, why, bad[i].why);
    assert_null(strchr(why, '\n'));
    assert_true(strncmp(why, "schema:", 7) == 0);
  }
  /* not YAML: the line and column of the problem */
  char why[RN_SINK_WHY_MAX];
  rn_sink_schema_t *sch;
  assert_int_equal(rn_sink_schema_parse("columns:\n  - name: a\n   type: x\n", 32, &sch, why, sizeof why), RN_EFORMAT);
  assert_non_null(strstr(why, "schema:3:"));
  assert_non_null(strstr(why, "not valid YAML"));
  /* size row_group_bytes through rn_parse_size's message */
  const char *mb = "columns:\n  - name: a\n    type: string\nrow_group_bytes: 64MB\n";
  assert_int_equal(rn_sink_schema_parse(mb, strlen(mb), &sch, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "schema:4: row_group_bytes: "));
  assert_non_null(strstr(why, "write 64MiB"));
}

static void test_schema_limits(void **state) {
  (void)state;
  rn_buf_t b = {0};
  rn_buf_puts(&b, "columns:\n");
  for (int i = 0; i < 1024; i++) rn_buf_printf(&b, "  - {name: c%d, type: int64}\n", i);
  rn_sink_schema_t *sch;
  char why[RN_SINK_WHY_MAX];
  assert_int_equal(rn_sink_schema_parse(b.p, b.len, &sch, why, sizeof why), 0);
  assert_int_equal(sch->ncols, 1024);
  rn_sink_schema_free(sch);
  rn_buf_puts(&b, "metadata: [offset]\n");
  assert_int_equal(rn_sink_schema_parse(b.p, b.len, &sch, why, sizeof why), RN_ETOOLARGE);
  assert_string_equal(why, "schema:2: 1025 columns: at most 1024 (metadata columns included)");
  rn_buf_free(&b);

  size_t big = RN_SINK_SCHEMA_MAX_BYTES + 1;
  char *text = malloc(big);
  memset(text, '#', big);
  assert_int_equal(rn_sink_schema_parse(text, big, &sch, why, sizeof why), RN_ETOOLARGE);
  assert_string_equal(why, "schema: 1048577 bytes: at most 1 MiB");
  free(text);
}

/* ---- 3. records ------------------------------------------------------------------ */

static void test_record_parse(void **state) {
  (void)state;
  json_t *rec;
  char why[RN_SINK_WHY_MAX];
  assert_int_equal(rn_sink_record_parse("[1,2]", 5, &rec, why, sizeof why), RN_EINVAL);
  assert_null(rec);
  assert_string_equal(why, "record is not a JSON object");
  assert_int_equal(rn_sink_record_parse("42", 2, &rec, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "record is not a JSON object");
  assert_int_equal(rn_sink_record_parse("{\"a\":1,}", 8, &rec, why, sizeof why), RN_EINVAL);
  assert_true(strncmp(why, "invalid JSON at byte 8: ", 24) == 0);
  assert_int_equal(rn_sink_record_parse("{\"a\":1} x", 9, &rec, why, sizeof why), RN_EINVAL);
  assert_true(strncmp(why, "invalid JSON at byte ", 21) == 0);
  assert_int_equal(rn_sink_record_parse("", 0, &rec, why, sizeof why), RN_EINVAL);
  assert_true(strncmp(why, "invalid JSON at byte 0: ", 24) == 0);
  /* \u0000 inside a string is kept, with its length */
  assert_int_equal(rn_sink_record_parse("{\"a\":\"x\\u0000y\"}", 16, &rec, why, sizeof why), 0);
  assert_int_equal(json_string_length(json_object_get(rec, "a")), 3);
  json_decref(rec);
}

static void want_str(const rn_sink_value_t *v, const char *s) {
  assert_int_equal(v->type, RN_SINK_VAL_STRING);
  if (v->u.str.len != strlen(s) || memcmp(v->u.str.p, s, v->u.str.len) != 0)
    fail_msg("got \"%.*s\", want \"%s\"", (int)v->u.str.len, v->u.str.p, s);
}

static void test_convert(void **state) {
  (void)state;
  rn_sink_schema_t *sch = schema_of(example_schema);
  json_t *rec = rec_of("{\"event_uuid\":\"u-1\",\"created_at\":\"2026-12-02T05:03:01Z\",\"n\":42,\"score\":1,"
                       "\"ok\":true,\"secs\":1.5,\"geo\":{\"country.code\":\"DE\"},"
                       "\"extra\":{\"k\":[1,2.5,\"\\u00e9\"],\"z\":null}}");
  rn_sink_meta_t meta = {.partition_key = "user-7", .shard = 1, .sequence_number = "49590338271490256608559692538361571095921575989136588898",
                         .offset = 99, .arrival_ms = T0 + 5};
  rn_sink_value_t vals[13];
  rn_buf_t scratch = {0};
  char why[RN_SINK_WHY_MAX] = "";
  if (rn_sink_convert(sch, rec, &meta, vals, &scratch, why, sizeof why) != 0) fail_msg("%s", why);
  want_str(&vals[0], "u-1");
  assert_ptr_equal(vals[0].u.str.p, json_string_value(json_object_get(rec, "event_uuid"))); /* into the record */
  assert_int_equal(vals[1].type, RN_SINK_VAL_INT64);
  assert_int_equal(vals[1].u.i64, T0);
  assert_int_equal(vals[2].type, RN_SINK_VAL_INT64);
  assert_int_equal(vals[2].u.i64, 42);
  assert_int_equal(vals[3].type, RN_SINK_VAL_DOUBLE);
  assert_true(vals[3].u.f64 == 1.0);
  assert_int_equal(vals[4].type, RN_SINK_VAL_BOOL);
  assert_true(vals[4].u.b);
  assert_int_equal(vals[5].type, RN_SINK_VAL_INT64);
  assert_int_equal(vals[5].u.i64, 1500);
  want_str(&vals[6], "DE");
  want_str(&vals[7], "{\"k\":[1,2.5,\"\xc3\xa9\"],\"z\":null}"); /* compact, in scratch */
  want_str(&vals[8], "user-7");
  assert_ptr_equal(vals[8].u.str.p, meta.partition_key);
  want_str(&vals[9], meta.sequence_number);
  want_str(&vals[10], "shardId-000000000001");
  assert_int_equal(vals[11].type, RN_SINK_VAL_INT64);
  assert_int_equal(vals[11].u.i64, 99);
  assert_int_equal(vals[12].type, RN_SINK_VAL_INT64);
  assert_int_equal(vals[12].u.i64, T0 + 5);
  json_decref(rec);

  /* nullable columns missing or null; a number and a boolean as string text */
  rec = rec_of("{\"event_uuid\":7.25,\"n\":-3.0,\"created_at\":null,\"extra\":false}");
  if (rn_sink_convert(sch, rec, &meta, vals, &scratch, why, sizeof why) != 0) fail_msg("%s", why);
  want_str(&vals[0], "7.25");
  assert_int_equal(vals[1].type, RN_SINK_VAL_NULL);
  assert_int_equal(vals[2].u.i64, -3); /* a real without a fraction is an int64 */
  assert_int_equal(vals[3].type, RN_SINK_VAL_NULL);
  assert_int_equal(vals[6].type, RN_SINK_VAL_NULL);
  want_str(&vals[7], "false");
  json_decref(rec);

  static const struct {
    const char *rec, *why;
  } bad[] = {
      {"{\"event_uuid\":\"u\"}", "column n: missing and not nullable"},
      {"{\"n\":1}", "column event_uuid: missing and not nullable"},
      {"{\"event_uuid\":null,\"n\":1}", "column event_uuid: null and not nullable"},
      {"{\"event_uuid\":\"u\",\"n\":1.5}", "column n: 1.5 is not an int64"},
      {"{\"event_uuid\":\"u\",\"n\":1e30}", "column n: 1e+30 is out of range for an int64"},
      {"{\"event_uuid\":\"u\",\"n\":\"12\"}", "column n: \"12\" is not an int64"},
      {"{\"event_uuid\":\"u\",\"n\":true}", "column n: true is not an int64"},
      {"{\"event_uuid\":\"u\",\"n\":1,\"created_at\":\"yesterday\"}",
       "column created_at: \"yesterday\" is not an ISO-8601 time"},
      {"{\"event_uuid\":\"u\",\"n\":1,\"created_at\":[1]}",
       "column created_at: [1] is not a time (an ISO-8601 string or a number)"},
      {"{\"event_uuid\":\"u\",\"n\":1,\"secs\":9223372036854775807}",
       "column secs: 9223372036854775807 is out of range for a timestamp in s"},
      {"{\"event_uuid\":\"u\",\"n\":1,\"score\":\"1.5\"}", "column score: \"1.5\" is not a double"},
      {"{\"event_uuid\":\"u\",\"n\":1,\"ok\":1}", "column ok: 1 is not a boolean"},
      {"{\"event_uuid\":\"u\",\"n\":1,\"ok\":{\"aaaaaaaaaa\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}}",
       "column ok: {\"aaaaaaaaaa\":\"bbbbbbbbbbbbbbbbbbbbbbbbb... is not a boolean"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rec = rec_of(bad[i].rec);
    assert_int_equal(rn_sink_convert(sch, rec, &meta, vals, &scratch, why, sizeof why), RN_EINVAL);
    if (strcmp(why, bad[i].why) != 0) fail_msg("%s:\n got \"%s\"\nwant \"%s\"", bad[i].rec, why, bad[i].why);
    json_decref(rec);
  }
  json_t *arr = json_array();
  assert_int_equal(rn_sink_convert(sch, arr, &meta, vals, &scratch, why, sizeof why), RN_EINVAL);
  assert_string_equal(why, "record is not a JSON object");
  json_decref(arr);
  rn_buf_free(&scratch);
  rn_sink_schema_free(sch);
}

static void test_timestamps(void **state) {
  (void)state;
  static const struct {
    const char *json;
    rn_sink_unit_t unit;
    int64_t ms;
  } ok[] = {
      {"\"2026-12-02T05:03:01Z\"", RN_SINK_UNIT_MS, T0},
      {"\"2026-12-02T05:03:01\"", RN_SINK_UNIT_MS, T0}, /* no zone: UTC */
      {"\"2026-12-02 05:03:01.123456Z\"", RN_SINK_UNIT_MS, T0 + 123},
      {"\"2026-12-02T07:03:01+02:00\"", RN_SINK_UNIT_MS, T0},
      {"1796187781", RN_SINK_UNIT_S, T0},
      {"1796187781000", RN_SINK_UNIT_MS, T0},
      {"1796187781000999", RN_SINK_UNIT_US, T0},
      {"1796187781.5", RN_SINK_UNIT_S, T0 + 500},
      {"-1", RN_SINK_UNIT_US, -1},
      {"-1500", RN_SINK_UNIT_US, -2},
  };
  rn_sink_path_t *p = path_of("$.t");
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    char text[128];
    snprintf(text, sizeof text, "{\"t\":%s}", ok[i].json);
    json_t *rec = rec_of(text);
    int64_t ms = 0;
    char why[RN_SINK_WHY_MAX];
    if (rn_sink_event_time(rec, p, ok[i].unit, &ms, why, sizeof why) != 0) fail_msg("%s: %s", text, why);
    if (ms != ok[i].ms) fail_msg("%s: %lld, want %lld", text, (long long)ms, (long long)ok[i].ms);
    json_decref(rec);
  }
  static const struct {
    const char *rec, *why;
  } bad[] = {
      {"{}", "event time $.t: missing"},
      {"{\"t\":null}", "event time $.t: null"},
      {"{\"t\":\"2026-12-02\"}", "event time $.t: \"2026-12-02\" is not an ISO-8601 time"},
      {"{\"t\":\"yesterday\"}", "event time $.t: \"yesterday\" is not an ISO-8601 time"},
      {"{\"t\":true}", "event time $.t: true is not a time (an ISO-8601 string or a number)"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *rec = rec_of(bad[i].rec);
    int64_t ms = 77;
    char why[RN_SINK_WHY_MAX];
    assert_int_equal(rn_sink_event_time(rec, p, RN_SINK_UNIT_MS, &ms, why, sizeof why), RN_EINVAL);
    assert_int_equal(ms, 77);
    if (strcmp(why, bad[i].why) != 0) fail_msg("%s:\n got \"%s\"\nwant \"%s\"", bad[i].rec, why, bad[i].why);
    json_decref(rec);
  }
  rn_sink_path_free(p);
}

/* ---- 4. prefix templates ---------------------------------------------------------- */

static rn_sink_tmpl_t *tmpl_of(const char *s, unsigned flags) {
  rn_sink_tmpl_t *t = NULL;
  char why[RN_SINK_WHY_MAX];
  if (rn_sink_tmpl_parse(s, strlen(s), flags, &t, why, sizeof why) != 0) fail_msg("%s: %s", s, why);
  return t;
}

static void want_render(const char *tmpl, const json_t *rec, int64_t ms, const char *kind, const char *want) {
  rn_sink_tmpl_t *t = tmpl_of(tmpl, RN_SINK_TMPL_ERROR);
  char out[RN_SINK_KEY_MAX + 1], why[RN_SINK_WHY_MAX];
  size_t len = 0;
  if (rn_sink_tmpl_render(t, rec, ms, kind, out, sizeof out, &len, why, sizeof why) != 0)
    fail_msg("%s: %s", tmpl, why);
  if (strcmp(out, want) != 0) fail_msg("%s: \"%s\", want \"%s\"", tmpl, out, want);
  assert_int_equal(len, strlen(want));
  rn_sink_tmpl_free(t);
}

static void test_tmpl_time(void **state) {
  (void)state;
  /* Firehose's default layout and Hive style, for 2026-12-02T05:03:01Z */
  want_render("!{timestamp:yyyy/MM/dd/HH}/", NULL, T0, NULL, "2026/12/02/05/");
  want_render("!{timestamp:yyyy/MM/dd/HH}", NULL, T0, NULL, "2026/12/02/05/"); /* normalised */
  want_render("year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/", NULL, T0,
              NULL, "year=2026/month=12/day=02/hour=05/");
  want_render("events/dt=!{timestamp:yyyy-MM-dd}/!{timestamp:HH.mm.ss}", NULL, T0, NULL,
              "events/dt=2026-12-02/05.03.01/");
  want_render("!{timestamp:yyyy/MM/dd/HH}/", NULL, -1, NULL, "1969/12/31/23/");
  want_render("", NULL, T0, NULL, "");
  want_render("!{timestamp:yyyy}/", NULL, INT64_MAX, NULL, "292278994/");
  want_render("!{timestamp:yyyy}/", NULL, INT64_MIN, NULL, "-292275055/");
  want_render("!{timestamp:yyyy-MM-dd-HH-mm-ss}/", NULL, 0, NULL, "1970-01-01-00-00-00/");
  want_render("logs", NULL, T0, NULL, "logs/");

  rn_sink_tmpl_t *t = tmpl_of("raw/!{timestamp:yyyy}", 0);
  assert_string_equal(rn_sink_tmpl_text(t), "raw/!{timestamp:yyyy}/");
  assert_true(rn_sink_tmpl_uses_time(t));
  assert_false(rn_sink_tmpl_uses_fields(t));
  assert_false(rn_sink_tmpl_uses_error(t));
  rn_sink_tmpl_free(t);
  t = tmpl_of("raw/", 0);
  assert_false(rn_sink_tmpl_uses_time(t));
  assert_false(rn_sink_tmpl_uses_fields(t));
  rn_sink_tmpl_free(t);
  t = tmpl_of("errors/!{error}/!{field:a}", RN_SINK_TMPL_ERROR);
  assert_true(rn_sink_tmpl_uses_fields(t));
  assert_true(rn_sink_tmpl_uses_error(t));
  rn_sink_tmpl_free(t);
  rn_sink_tmpl_free(NULL);
}

static void test_tmpl_fields(void **state) {
  (void)state;
  json_t *rec = rec_of("{\"geo\":{\"country\":\"DE\"},\"s\":\"a/b c\",\"e\":\"\",\"dots\":\"..\",\"dot\":\".\","
                       "\"u\":\"\\u00fc\",\"eq\":\"k=v\",\"i\":-42,\"r\":1.5,\"b\":true,\"nl\":\"x\\ny\","
                       "\"pct\":\"50%\",\"n\":null,\"o\":{},\"a\":[],\"sp\":\"a.b-c_d\"}");
  want_render("country=!{field:$.geo.country}/!{timestamp:yyyy}/", rec, T0, NULL, "country=DE/2026/");
  want_render("!{field:s}/", rec, T0, NULL, "a%2Fb%20c/");
  want_render("!{field:e}/", rec, T0, NULL, "__empty__/");
  want_render("!{field:dots}/", rec, T0, NULL, "%2E./");
  want_render("!{field:dot}!{field:dot}/", rec, T0, NULL, "%2E%2E/");
  want_render("!{field:u}/", rec, T0, NULL, "%C3%BC/");
  want_render("k=!{field:eq}/", rec, T0, NULL, "k=k%3Dv/");
  want_render("!{field:i}/!{field:r}/!{field:b}/", rec, T0, NULL, "-42/1.5/true/");
  want_render("!{field:nl}/", rec, T0, NULL, "x%0Ay/");
  want_render("!{field:pct}/", rec, T0, NULL, "50%25/");
  want_render("!{field:sp}/", rec, T0, NULL, "a.b-c_d/");
  want_render("err/!{error}/", rec, T0, "convert", "err/convert/");
  want_render("err/!{error}/", NULL, T0, NULL, "err/unknown/");
  want_render("err/!{error}/", NULL, T0, "a/b", "err/a%2Fb/");

  static const struct {
    const char *tmpl, *why;
  } bad[] = {
      {"!{field:$.nope}/", "prefix field $.nope: missing"},
      {"!{field:n}/", "prefix field n: is null"},
      {"!{field:o}/", "prefix field o: is an object"},
      {"!{field:a}/", "prefix field a: is an array"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rn_sink_tmpl_t *t = tmpl_of(bad[i].tmpl, 0);
    char out[64], why[RN_SINK_WHY_MAX];
    size_t len = 0;
    assert_int_equal(rn_sink_tmpl_render(t, rec, T0, NULL, out, sizeof out, &len, why, sizeof why), RN_EINVAL);
    assert_string_equal(why, bad[i].why);
    assert_int_equal(rn_sink_tmpl_render(t, NULL, T0, NULL, out, sizeof out, &len, why, sizeof why), RN_EINVAL);
    rn_sink_tmpl_free(t);
  }
  /* a long path is cut in the message */
  char lp[400] = "!{field:$";
  for (int i = 0; i < 60; i++) strcat(lp, ".abcde");
  strcat(lp, "}/");
  rn_sink_tmpl_t *lt = tmpl_of(lp, 0);
  char lout[64], lwhy[RN_SINK_WHY_MAX];
  size_t llen;
  assert_int_equal(rn_sink_tmpl_render(lt, rec, T0, NULL, lout, sizeof lout, &llen, lwhy, sizeof lwhy), RN_EINVAL);
  assert_int_equal(strlen(lwhy), strlen("prefix field ") + 100 + strlen("...: missing"));
  rn_sink_tmpl_free(lt);
  /* quotes are literal in a time format (only paths have quoted names) */
  want_render("!{timestamp:yyyy'}/", rec, T0, NULL, "2026'/");

  /* too long for the buffer, too long for a key */
  rn_sink_tmpl_t *t = tmpl_of("!{field:s}/", 0);
  char small[8], why[RN_SINK_WHY_MAX];
  size_t len = 0;
  assert_int_equal(rn_sink_tmpl_render(t, rec, T0, NULL, small, sizeof small, &len, why, sizeof why), RN_ETOOLARGE);
  assert_string_equal(why, "prefix longer than 7 bytes");
  assert_int_equal(rn_sink_tmpl_render(t, rec, T0, NULL, small, 0, &len, why, sizeof why), RN_ETOOLARGE);
  rn_sink_tmpl_free(t);
  json_decref(rec);

  char longv[1100];
  memset(longv, 'x', 1021);
  longv[1021] = '\0';
  json_t *big = json_pack("{s:s}", "v", longv);
  char out[4096];
  t = tmpl_of("ab/!{field:v}/", 0);
  assert_int_equal(rn_sink_tmpl_render(t, big, T0, NULL, out, sizeof out, &len, why, sizeof why), RN_ETOOLARGE);
  assert_string_equal(why, "prefix longer than 1024 bytes");
  rn_sink_tmpl_free(t);
  t = tmpl_of("a/!{field:v}/", 0); /* exactly 1024 */
  assert_int_equal(rn_sink_tmpl_render(t, big, T0, NULL, out, sizeof out, &len, why, sizeof why), 0);
  assert_int_equal(len, 1024);
  rn_sink_tmpl_free(t);
  json_decref(big);
}

static void test_tmpl_errors(void **state) {
  (void)state;
  static const struct {
    const char *tmpl;
    unsigned flags;
    const char *why;
  } bad[] = {
      {"a/!{foo}/", 0,
       "prefix at position 3: unknown expression \"!{foo}\" (expected !{timestamp:FORMAT}, !{field:PATH} or "
       "!{error})"},
      {"a/!{timestamp:yyyy", 0, "prefix at position 3: expression not closed (no '}')"},
      {"!{timestamp:YYYY}/", 0, "prefix at position 13: unknown time pattern \"YYYY\" (use yyyy, MM, dd, HH, mm, ss)"},
      {"!{timestamp:}/", 0, "prefix at position 13: empty time format (e.g. !{timestamp:yyyy/MM/dd/HH})"},
      {"!{timestamp:yyyy MM}/", 0,
       "prefix at position 17: byte 0x20 is not allowed in a prefix (letters, digits and - _ . = / ! * ' ( ) only)"},
      {"!{field:$.a[}/", 0,
       "prefix at position 1: bad path in !{field:...}: at position 5: expected an index or a quoted name after '['"},
      {"!{error}/", 0, "prefix at position 1: !{error} is for error prefixes only"},
      {"a b/", 0,
       "prefix at position 2: byte 0x20 is not allowed in a prefix (letters, digits and - _ . = / ! * ' ( ) only, or "
       "an expression !{...})"},
      {"a%/", 0,
       "prefix at position 2: '%' is not allowed in a prefix (letters, digits and - _ . = / ! * ' ( ) only, or an "
       "expression !{...})"},
      {"/a/", 0, "prefix at position 1: a prefix must not start with '/'"},
      {"a//b/", 0, "prefix at position 3: empty segment (\"//\")"},
      {"a/../b/", 0, "prefix at position 3: segment \"..\" is not allowed"},
      {"./", 0, "prefix at position 1: segment \".\" is not allowed"},
      {"a/.", 0, "prefix at position 3: segment \".\" is not allowed"},
      {"!{timestamp:yyyy//MM}/", 0, "prefix at position 1: empty segment (\"//\")"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rn_sink_tmpl_t *t = (rn_sink_tmpl_t *)1;
    char why[RN_SINK_WHY_MAX] = "";
    assert_int_equal(rn_sink_tmpl_parse(bad[i].tmpl, strlen(bad[i].tmpl), bad[i].flags, &t, why, sizeof why),
                     RN_EINVAL);
    assert_null(t);
    if (strcmp(why, bad[i].why) != 0) fail_msg("%s:\n got \"%s\"\nwant \"%s\"", bad[i].tmpl, why, bad[i].why);
  }
  /* a NUL byte is not literal text */
  rn_sink_tmpl_t *t;
  char why[RN_SINK_WHY_MAX];
  assert_int_equal(rn_sink_tmpl_parse("year=\0", 6, 0, &t, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "position 6: byte 0x00 is not allowed"));
  /* legal: dots inside segments, "...", quoted '}' in a path */
  rn_sink_tmpl_free(tmpl_of("a.b/.../x..y/", 0));
  json_t *rec = rec_of("{\"a}b\":\"v\"}");
  want_render("!{field:$['a}b']}/", rec, T0, NULL, "v/");
  json_decref(rec);
}

/* ---- 5. NDJSON objects ------------------------------------------------------------ */

static uint8_t *gunzip(const uint8_t *p, size_t n, size_t *outlen) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
  size_t cap = n * 4 + 1024, done = 0;
  uint8_t *out = malloc(cap);
  zs.next_in = (Bytef *)(uintptr_t)p;
  zs.avail_in = (uInt)n;
  int zr;
  do {
    if (done == cap) out = realloc(out, cap *= 2);
    zs.next_out = out + done;
    zs.avail_out = (uInt)(cap - done);
    zr = inflate(&zs, Z_NO_FLUSH);
    done = cap - zs.avail_out;
    assert_true(zr == Z_OK || zr == Z_STREAM_END || zr == Z_BUF_ERROR);
  } while (zr != Z_STREAM_END);
  assert_int_equal(zs.avail_in, 0); /* one member, nothing after it */
  inflateEnd(&zs);
  *outlen = done;
  return out;
}

static void test_ndjson_lines(void **state) {
  (void)state;
  rn_sink_ndjson_t nd = {0};
  json_t *rec = rec_of("{\n  \"z\": 1,\n  \"a\": [ 0.1, 1e300, -0.0, 2.5e-7 ],\n  \"s\": \"\\u00e9\\n\\\"\\u0001/\",\n"
                       "  \"o\": { \"t\": true, \"f\": false, \"n\": null }\n}");
  assert_int_equal(rn_sink_ndjson_append(&nd, rec), 0);
  assert_int_equal(rn_sink_ndjson_append(&nd, rec), 0);
  const char *line = "{\"z\":1,\"a\":[0.1,1e+300,-0.0,2.5e-07],\"s\":\"\xc3\xa9\\n\\\"\\u0001/\","
                     "\"o\":{\"t\":true,\"f\":false,\"n\":null}}\n";
  assert_int_equal(nd.records, 2);
  assert_int_equal(rn_sink_ndjson_bytes(&nd), 2 * strlen(line));
  assert_memory_equal(nd.buf.p, line, strlen(line));
  /* the compact line parses back to the same value */
  json_t *back = rec_of(line);
  assert_true(json_equal(back, rec));
  json_decref(back);
  json_decref(rec);

  rn_sink_meta_t meta = {.partition_key = "pk", .shard = 1, .sequence_number = "4959033827149025660855",
                         .offset = 12, .arrival_ms = T0};
  rn_sink_ndjson_free(&nd);
  assert_int_equal(rn_sink_ndjson_append_error(&nd, &meta, "column n: \"x\" is not an int64\xff", "{bad", 4), 0);
  assert_string_equal(nd.buf.p, "{\"shard\":\"shardId-000000000001\",\"offset\":12,\"sequence_number\":"
                                "\"4959033827149025660855\",\"arrival_time\":\"2026-12-02T05:03:01.000Z\","
                                "\"reason\":\"column n: \\\"x\\\" is not an int64\xef\xbf\xbd\","
                                "\"data_base64\":\"e2JhZA==\"}\n");
  json_t *err = rec_of(nd.buf.p); /* valid JSON */
  json_decref(err);
  rn_sink_ndjson_free(&nd);
  static const struct {
    const char *in, *b64;
  } b64[] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}};
  for (size_t i = 0; i < sizeof b64 / sizeof b64[0]; i++) {
    assert_int_equal(rn_sink_ndjson_append_error(&nd, &meta, "r", b64[i].in, strlen(b64[i].in)), 0);
    char want[64];
    snprintf(want, sizeof want, "\"data_base64\":\"%s\"}\n", b64[i].b64);
    assert_non_null(strstr(nd.buf.p, want));
    rn_sink_ndjson_free(&nd);
  }
}

static void test_ndjson_finish(void **state) {
  (void)state;
  rn_sink_ndjson_t nd = {0};
  uint8_t *out;
  size_t n;
  /* empty: plain is zero bytes, gzip is a valid empty member */
  assert_int_equal(rn_sink_ndjson_finish(&nd, false, &out, &n), 0);
  assert_non_null(out);
  assert_int_equal(n, 0);
  free(out);
  assert_int_equal(rn_sink_ndjson_finish(&nd, true, &out, &n), 0);
  size_t m;
  uint8_t *plain = gunzip(out, n, &m);
  assert_int_equal(m, 0);
  free(plain);
  free(out);

  /* many records: plain hands the buffer over, gzip round-trips */
  uint64_t seed = 7;
  rn_buf_t want = {0};
  for (int round = 0; round < 2; round++) {
    rn_buf_free(&want);
    for (int i = 0; i < 20000; i++) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      json_t *rec = json_pack("{s:i,s:s,s:f}", "i", i, "s", (seed >> 40) & 1 ? "abc" : "\xe2\x82\xac", "x",
                              (double)(seed >> 11) / 9007199254740992.0);
      assert_int_equal(rn_sink_ndjson_append(&nd, rec), 0);
      json_decref(rec);
    }
    rn_buf_put(&want, nd.buf.p, nd.buf.len);
    assert_int_equal(rn_sink_ndjson_finish(&nd, round == 1, &out, &n), 0);
    assert_int_equal(nd.records, 0);
    assert_int_equal(rn_sink_ndjson_bytes(&nd), 0);
    if (round == 0) {
      assert_int_equal(n, want.len);
      assert_memory_equal(out, want.p, n);
    } else {
      assert_int_equal(out[0], 0x1f); /* the gzip magic */
      assert_int_equal(out[1], 0x8b);
      assert_true(n < want.len / 2);
      plain = gunzip(out, n, &m);
      assert_int_equal(m, want.len);
      assert_memory_equal(plain, want.p, m);
      free(plain);
    }
    free(out);
  }
  rn_buf_free(&want);
  rn_sink_ndjson_free(&nd);
  rn_sink_ndjson_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_path_eval),      cmocka_unit_test(test_path_errors),  cmocka_unit_test(test_schema_example),
      cmocka_unit_test(test_schema_errors),  cmocka_unit_test(test_schema_limits), cmocka_unit_test(test_record_parse),
      cmocka_unit_test(test_convert),        cmocka_unit_test(test_timestamps),   cmocka_unit_test(test_tmpl_time),
      cmocka_unit_test(test_tmpl_fields),    cmocka_unit_test(test_tmpl_errors),  cmocka_unit_test(test_ndjson_lines),
      cmocka_unit_test(test_ndjson_finish),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
