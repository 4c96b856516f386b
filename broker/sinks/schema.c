/*
 * schema.c — the schema file of a Parquet sink (docs/sink-formats.md,
 * "Schema file"): YAML text from the client, loaded with libyaml's document
 * API and checked key by key. Every error is one line "schema:LINE: ..."
 * naming the line (libyaml's marks, 1-based) and what is wrong.
 *
 * Invariants of a parsed schema: 1..RN_SINK_MAX_COLUMNS columns, names
 * valid and unique, record columns first (each with a path), metadata
 * columns after them (path NULL, type fixed by the source, not nullable);
 * unit is RN_SINK_UNIT_MS except on timestamp columns that set it.
 *
 * Work is bounded by the input: at most 1 MiB of text, and the walk stops
 * at the first error, so an alias repeated many times costs at most
 * RN_SINK_MAX_COLUMNS small mappings.
 */
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "runnel/units.h"
#include "sinkfmt_int.h"

const char *rn_sink_coltype_name(rn_sink_coltype_t t) {
  switch (t) {
  case RN_SINK_COL_STRING: return "string";
  case RN_SINK_COL_INT64: return "int64";
  case RN_SINK_COL_DOUBLE: return "double";
  case RN_SINK_COL_BOOLEAN: return "boolean";
  case RN_SINK_COL_TIMESTAMP: return "timestamp";
  }
  return "?";
}

const char *rn_sink_unit_name(rn_sink_unit_t u) {
  switch (u) {
  case RN_SINK_UNIT_MS: return "ms";
  case RN_SINK_UNIT_S: return "s";
  case RN_SINK_UNIT_US: return "us";
  }
  return "?";
}

const char *rn_sink_codec_name(rn_sink_codec_t c) {
  switch (c) {
  case RN_SINK_CODEC_NONE: return "none";
  case RN_SINK_CODEC_SNAPPY: return "snappy";
  case RN_SINK_CODEC_GZIP: return "gzip";
  case RN_SINK_CODEC_ZSTD: return "zstd";
  }
  return "?";
}

const char *rn_sink_source_name(rn_sink_source_t s) {
  switch (s) {
  case RN_SINK_SRC_RECORD: return "record";
  case RN_SINK_SRC_PARTITION_KEY: return "partition_key";
  case RN_SINK_SRC_SHARD: return "shard";
  case RN_SINK_SRC_SEQUENCE_NUMBER: return "sequence_number";
  case RN_SINK_SRC_OFFSET: return "offset";
  case RN_SINK_SRC_ARRIVAL_TIME: return "arrival_time";
  }
  return "?";
}

static const struct {
  const char *name;
  rn_sink_coltype_t type;
} coltypes[] = {{"string", RN_SINK_COL_STRING},
                {"int64", RN_SINK_COL_INT64},
                {"double", RN_SINK_COL_DOUBLE},
                {"boolean", RN_SINK_COL_BOOLEAN},
                {"timestamp", RN_SINK_COL_TIMESTAMP}};

static const struct {
  const char *name;
  rn_sink_source_t src;
  rn_sink_coltype_t type;
} sources[] = {{"partition_key", RN_SINK_SRC_PARTITION_KEY, RN_SINK_COL_STRING},
               {"shard", RN_SINK_SRC_SHARD, RN_SINK_COL_STRING},
               {"sequence_number", RN_SINK_SRC_SEQUENCE_NUMBER, RN_SINK_COL_STRING},
               {"offset", RN_SINK_SRC_OFFSET, RN_SINK_COL_INT64},
               {"arrival_time", RN_SINK_SRC_ARRIVAL_TIME, RN_SINK_COL_TIMESTAMP}};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
  yaml_document_t *doc;
  rn_sink_schema_t *sch;
  size_t *lines; /* the line of each column's entry, for "first on line N" */
  char *why;
  size_t whylen;
} ctx_t;

static size_t line_of(const yaml_node_t *n) { return (size_t)n->start_mark.line + 1; }

/* A scalar's text (NUL-terminated by libyaml) or NULL with the error written:
 * not a scalar, an unquoted empty/~/null value, or a NUL byte inside. */
static const char *scalar(ctx_t *c, const yaml_node_t *v, const char *what, const char *key) {
  if (v->type != YAML_SCALAR_NODE) {
    rn__sink_fail(c->why, c->whylen, "schema:%zu: %s%s%s must be a single value, not a list or mapping",
                  line_of(v), what, *what ? ": " : "", key);
    return NULL;
  }
  const char *s = (const char *)v->data.scalar.value;
  if (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
      (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0)) {
    rn__sink_fail(c->why, c->whylen, "schema:%zu: %s%s%s needs a value", line_of(v), what, *what ? ": " : "", key);
    return NULL;
  }
  if (strlen(s) != v->data.scalar.length) {
    rn__sink_fail(c->why, c->whylen, "schema:%zu: %s%s%s contains a NUL byte", line_of(v), what, *what ? ": " : "",
                  key);
    return NULL;
  }
  return s;
}

/* Checks a column name's syntax and uniqueness among cols[0..ncols). */
static rn_err_t check_name(ctx_t *c, const char *name, size_t line) {
  size_t n = strlen(name);
  bool ok = n > 0 && n <= RN_SINK_NAME_MAX;
  for (size_t i = 0; ok && i < n; i++) {
    char ch = name[i];
    ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || (i > 0 && ch >= '0' && ch <= '9');
  }
  if (!ok) {
    char shown[48];
    rn__sink_quote(name, n, shown, sizeof shown); /* quoted and escaped */
    rn__sink_fail(c->why, c->whylen, "schema:%zu: column name %s must match [A-Za-z_][A-Za-z0-9_]* (at most %d bytes)",
                  line, shown, RN_SINK_NAME_MAX);
    return RN_EINVAL;
  }
  for (size_t i = 0; i < c->sch->ncols; i++) {
    if (strcmp(c->sch->cols[i].name, name) == 0) {
      rn__sink_fail(c->why, c->whylen, "schema:%zu: duplicate column name \"%s\" (first on line %zu)", line, name,
                    c->lines[i]);
      return RN_EINVAL;
    }
  }
  return 0;
}

static bool parse_bool(const char *s, bool *b) {
  if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return *b = true, true;
  if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return *b = false, true;
  return false;
}

/* The value node of key in mapping m, or NULL. */
static yaml_node_t *lookup(ctx_t *c, const yaml_node_t *m, const char *key) {
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
    if (k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
      return yaml_document_get_node(c->doc, p->value);
  }
  return NULL;
}

/* Every key of m is one of keys[] (NULL-terminated), scalar, and set once. */
static rn_err_t check_keys(ctx_t *c, const yaml_node_t *m, const char *const *keys, const char *what,
                           const char *expected) {
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
    if (k->type != YAML_SCALAR_NODE) {
      rn__sink_fail(c->why, c->whylen, "schema:%zu: %s: keys must be plain names", line_of(k), what);
      return RN_EFORMAT;
    }
    const char *key = (const char *)k->data.scalar.value;
    bool known = false;
    for (size_t i = 0; keys[i] != NULL && !known; i++) known = strcmp(keys[i], key) == 0;
    if (!known) {
      char shown[48];
      rn__sink_quote(key, k->data.scalar.length, shown, sizeof shown);
      rn__sink_fail(c->why, c->whylen, "schema:%zu: %s: unknown key %s (expected %s)", line_of(k), what, shown,
                    expected);
      return RN_EINVAL;
    }
    for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p; q++) {
      yaml_node_t *k2 = yaml_document_get_node(c->doc, q->key);
      if (strcmp((const char *)k2->data.scalar.value, key) == 0) {
        rn__sink_fail(c->why, c->whylen, "schema:%zu: %s: %s set twice (first on line %zu)", line_of(k), what, key,
                      line_of(k2));
        return RN_EINVAL;
      }
    }
  }
  return 0;
}

static rn_err_t add_column(ctx_t *c, const char *name, size_t line, rn_sink_column_t **col) {
  rn_err_t rc = check_name(c, name, line);
  if (rc != 0) return rc;
  rn_sink_column_t *nc = &c->sch->cols[c->sch->ncols];
  memset(nc, 0, sizeof *nc);
  nc->name = strdup(name);
  if (nc->name == NULL) return RN_ENOMEM;
  c->lines[c->sch->ncols] = line;
  c->sch->ncols++;
  *col = nc;
  return 0;
}

static rn_err_t parse_column(ctx_t *c, const yaml_node_t *m, size_t idx) {
  static const char *const keys[] = {"name", "type", "path", "nullable", "unit", NULL};
  char what[RN_SINK_NAME_MAX + 32];
  snprintf(what, sizeof what, "columns[%zu]", idx);
  if (m->type != YAML_MAPPING_NODE) {
    rn__sink_fail(c->why, c->whylen, "schema:%zu: %s must be a mapping (name:, type:, path:, nullable:, unit:)",
                  line_of(m), what);
    return RN_EFORMAT;
  }
  yaml_node_t *vn = lookup(c, m, "name");
  if (vn != NULL && vn->type == YAML_SCALAR_NODE && vn->data.scalar.length > 0 &&
      vn->data.scalar.length <= RN_SINK_NAME_MAX && strlen((const char *)vn->data.scalar.value) == vn->data.scalar.length)
    snprintf(what, sizeof what, "column %s", (const char *)vn->data.scalar.value); /* messages name the column */
  rn_err_t rc = check_keys(c, m, keys, what, "name, type, path, nullable or unit");
  if (rc != 0) return rc;
  if (vn == NULL) {
    rn__sink_fail(c->why, c->whylen, "schema:%zu: %s: missing name", line_of(m), what);
    return RN_EINVAL;
  }
  const char *name = scalar(c, vn, what, "name");
  if (name == NULL) return RN_EINVAL;
  rn_sink_column_t *col;
  if ((rc = add_column(c, name, line_of(vn), &col)) != 0) return rc;
  snprintf(what, sizeof what, "column %s", name);
  col->source = RN_SINK_SRC_RECORD;
  col->nullable = true;
  col->unit = RN_SINK_UNIT_MS;

  yaml_node_t *v = lookup(c, m, "type");
  if (v == NULL) {
    rn__sink_fail(c->why, c->whylen, "schema:%zu: %s: missing type (string, int64, double, boolean or timestamp)",
                  line_of(m), what);
    return RN_EINVAL;
  }
  const char *s = scalar(c, v, what, "type");
  if (s == NULL) return RN_EINVAL;
  size_t t = 0;
  while (t < NELEM(coltypes) && strcmp(coltypes[t].name, s) != 0) t++;
  if (t == NELEM(coltypes)) {
    char shown[48];
    rn__sink_quote(s, strlen(s), shown, sizeof shown);
    rn__sink_fail(c->why, c->whylen,
                  "schema:%zu: %s: unknown type %s (expected string, int64, double, boolean or timestamp)",
                  line_of(v), what, shown);
    return RN_EINVAL;
  }
  col->type = coltypes[t].type;

  char why2[RN_SINK_WHY_MAX];
  if ((v = lookup(c, m, "path")) != NULL) {
    if ((s = scalar(c, v, what, "path")) == NULL) return RN_EINVAL;
    rc = rn_sink_path_parse(s, v->data.scalar.length, &col->path, why2, sizeof why2);
    if (rc == RN_ENOMEM) return rc;
    if (rc != 0) {
      char shown[64];
      rn__sink_quote(s, strlen(s), shown, sizeof shown);
      rn__sink_fail(c->why, c->whylen, "schema:%zu: %s: bad path %s: %s", line_of(v), what, shown, why2);
      return RN_EINVAL;
    }
  } else {
    char def[RN_SINK_NAME_MAX + 3];
    int dn = snprintf(def, sizeof def, "$.%s", name);
    if ((rc = rn_sink_path_parse(def, (size_t)dn, &col->path, why2, sizeof why2)) != 0) return rc;
  }

  if ((v = lookup(c, m, "nullable")) != NULL) {
    if ((s = scalar(c, v, what, "nullable")) == NULL) return RN_EINVAL;
    if (!parse_bool(s, &col->nullable)) {
      rn__sink_fail(c->why, c->whylen, "schema:%zu: %s: nullable must be true or false", line_of(v), what);
      return RN_EINVAL;
    }
  }

  if ((v = lookup(c, m, "unit")) != NULL) {
    if ((s = scalar(c, v, what, "unit")) == NULL) return RN_EINVAL;
    if (col->type != RN_SINK_COL_TIMESTAMP) {
      rn__sink_fail(c->why, c->whylen, "schema:%zu: %s: unit applies to timestamp columns only", line_of(v), what);
      return RN_EINVAL;
    }
    if (!strcmp(s, "s")) col->unit = RN_SINK_UNIT_S;
    else if (!strcmp(s, "ms")) col->unit = RN_SINK_UNIT_MS;
    else if (!strcmp(s, "us")) col->unit = RN_SINK_UNIT_US;
    else {
      rn__sink_fail(c->why, c->whylen, "schema:%zu: %s: unknown unit (expected s, ms or us)", line_of(v), what);
      return RN_EINVAL;
    }
  }
  return 0;
}

static rn_err_t parse_meta(ctx_t *c, const yaml_node_t *n, size_t idx) {
  static const char *const keys[] = {"name", "source", NULL};
  char what[48];
  snprintf(what, sizeof what, "metadata[%zu]", idx);
  const yaml_node_t *sn = n; /* the node holding the source */
  const char *name = NULL, *src;
  if (n->type == YAML_MAPPING_NODE) {
    rn_err_t rc = check_keys(c, n, keys, what, "name or source");
    if (rc != 0) return rc;
    sn = lookup(c, n, "source");
    if (sn == NULL) {
      rn__sink_fail(c->why, c->whylen, "schema:%zu: %s: missing source", line_of(n), what);
      return RN_EINVAL;
    }
    const yaml_node_t *nn = lookup(c, n, "name");
    if (nn != NULL && (name = scalar(c, nn, what, "name")) == NULL) return RN_EINVAL;
    if ((src = scalar(c, sn, what, "source")) == NULL) return RN_EINVAL;
  } else if (n->type == YAML_SCALAR_NODE) {
    if ((src = scalar(c, n, "", what)) == NULL) return RN_EINVAL;
  } else {
    rn__sink_fail(c->why, c->whylen, "schema:%zu: %s must be a source name or a mapping {name:, source:}",
                  line_of(n), what);
    return RN_EFORMAT;
  }
  size_t k = 0;
  while (k < NELEM(sources) && strcmp(sources[k].name, src) != 0) k++;
  if (k == NELEM(sources)) {
    char shown[48];
    rn__sink_quote(src, strlen(src), shown, sizeof shown);
    rn__sink_fail(c->why, c->whylen,
                  "schema:%zu: %s: unknown source %s (expected partition_key, shard, sequence_number, offset or "
                  "arrival_time)",
                  line_of(sn), what, shown);
    return RN_EINVAL;
  }
  char def[32];
  if (name == NULL) {
    snprintf(def, sizeof def, "_%s", sources[k].name);
    name = def;
  }
  rn_sink_column_t *col;
  rn_err_t rc = add_column(c, name, line_of(n), &col);
  if (rc != 0) return rc;
  col->source = sources[k].src;
  col->type = sources[k].type;
  col->nullable = false;
  col->unit = RN_SINK_UNIT_MS;
  return 0;
}

void rn_sink_schema_free(rn_sink_schema_t *sch) {
  if (sch == NULL) return;
  for (size_t i = 0; i < sch->ncols; i++) {
    free(sch->cols[i].name);
    rn_sink_path_free(sch->cols[i].path);
  }
  free(sch->cols);
  free(sch);
}

const rn_sink_column_t *rn_sink_schema_find(const rn_sink_schema_t *sch, const char *name) {
  for (size_t i = 0; i < sch->ncols; i++)
    if (strcmp(sch->cols[i].name, name) == 0) return &sch->cols[i];
  return NULL;
}

static rn_err_t parse_top(ctx_t *c, yaml_node_t *root) {
  static const char *const keys[] = {"columns", "metadata", "compression", "row_group_bytes", NULL};
  if (root == NULL || (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)) {
    rn__sink_fail(c->why, c->whylen, "schema:1: empty file: the schema needs a columns: list");
    return RN_EFORMAT;
  }
  if (root->type != YAML_MAPPING_NODE) {
    rn__sink_fail(c->why, c->whylen,
                  "schema:%zu: the top level must be a mapping (columns:, metadata:, compression:, row_group_bytes:)",
                  line_of(root));
    return RN_EFORMAT;
  }
  rn_err_t rc = check_keys(c, root, keys, "top level", "columns, metadata, compression or row_group_bytes");
  if (rc != 0) return rc;
  yaml_node_t *cols = lookup(c, root, "columns"), *meta = lookup(c, root, "metadata");
  if (cols == NULL) {
    rn__sink_fail(c->why, c->whylen, "schema:%zu: no columns: the schema needs a columns: list", line_of(root));
    return RN_EINVAL;
  }
  if (cols->type != YAML_SEQUENCE_NODE || cols->data.sequence.items.top == cols->data.sequence.items.start) {
    rn__sink_fail(c->why, c->whylen, "schema:%zu: columns must be a non-empty list of mappings", line_of(cols));
    return RN_EFORMAT;
  }
  if (meta != NULL && meta->type != YAML_SEQUENCE_NODE) {
    rn__sink_fail(c->why, c->whylen, "schema:%zu: metadata must be a list", line_of(meta));
    return RN_EFORMAT;
  }
  size_t ncol = (size_t)(cols->data.sequence.items.top - cols->data.sequence.items.start);
  size_t nmeta = meta ? (size_t)(meta->data.sequence.items.top - meta->data.sequence.items.start) : 0;
  if (ncol + nmeta > RN_SINK_MAX_COLUMNS) {
    rn__sink_fail(c->why, c->whylen, "schema:%zu: %zu columns: at most %d (metadata columns included)",
                  line_of(cols), ncol + nmeta, RN_SINK_MAX_COLUMNS);
    return RN_ETOOLARGE;
  }
  c->sch->cols = calloc(ncol + nmeta, sizeof *c->sch->cols);
  c->lines = calloc(ncol + nmeta, sizeof *c->lines);
  if (c->sch->cols == NULL || c->lines == NULL) return RN_ENOMEM;
  for (size_t i = 0; i < ncol; i++) {
    rc = parse_column(c, yaml_document_get_node(c->doc, cols->data.sequence.items.start[i]), i);
    if (rc != 0) return rc;
  }
  c->sch->nrecord = c->sch->ncols;
  for (size_t i = 0; i < nmeta; i++) {
    rc = parse_meta(c, yaml_document_get_node(c->doc, meta->data.sequence.items.start[i]), i);
    if (rc != 0) return rc;
  }

  yaml_node_t *v;
  const char *s;
  c->sch->codec = RN_SINK_CODEC_SNAPPY;
  if ((v = lookup(c, root, "compression")) != NULL) {
    if ((s = scalar(c, v, "", "compression")) == NULL) return RN_EINVAL;
    if (!strcmp(s, "snappy")) c->sch->codec = RN_SINK_CODEC_SNAPPY;
    else if (!strcmp(s, "gzip")) c->sch->codec = RN_SINK_CODEC_GZIP;
    else if (!strcmp(s, "zstd")) c->sch->codec = RN_SINK_CODEC_ZSTD;
    else if (!strcmp(s, "none") || !strcmp(s, "uncompressed")) c->sch->codec = RN_SINK_CODEC_NONE;
    else {
      char shown[48];
      rn__sink_quote(s, strlen(s), shown, sizeof shown);
      rn__sink_fail(c->why, c->whylen,
                    "schema:%zu: unknown compression %s (expected snappy, gzip, zstd or none)", line_of(v), shown);
      return RN_EINVAL;
    }
  }
  if ((v = lookup(c, root, "row_group_bytes")) != NULL) {
    if ((s = scalar(c, v, "", "row_group_bytes")) == NULL) return RN_EINVAL;
    char why2[RN_SINK_WHY_MAX];
    int64_t sz;
    if (rn_parse_size(s, &sz, why2, sizeof why2) != 0) {
      /* rn_parse_size quotes the text whole: only short texts go into the line */
      if (strlen(s) > 32)
        rn__sink_fail(c->why, c->whylen, "schema:%zu: row_group_bytes: not a size (e.g. 64MiB)", line_of(v));
      else
        rn__sink_fail(c->why, c->whylen, "schema:%zu: row_group_bytes: %s", line_of(v), why2);
      return RN_EINVAL;
    }
    if (sz < RN_SINK_ROW_GROUP_MIN || sz > RN_SINK_ROW_GROUP_MAX) {
      rn__sink_fail(c->why, c->whylen, "schema:%zu: row_group_bytes must be between 64KiB and 1GiB", line_of(v));
      return RN_EINVAL;
    }
    c->sch->row_group_bytes = sz;
  }
  return 0;
}

rn_err_t rn_sink_schema_parse(const char *text, size_t len, rn_sink_schema_t **out, char *why, size_t whylen) {
  *out = NULL;
  if (len > RN_SINK_SCHEMA_MAX_BYTES) {
    rn__sink_fail(why, whylen, "schema: %zu bytes: at most 1 MiB", len);
    return RN_ETOOLARGE;
  }
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser)) return RN_ENOMEM;
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  if (!yaml_parser_load(&parser, &doc)) {
    rn__sink_fail(why, whylen, "schema:%zu:%zu: not valid YAML: %s", (size_t)parser.problem_mark.line + 1,
                  (size_t)parser.problem_mark.column + 1, parser.problem ? parser.problem : "parse error");
    rn_err_t rc = parser.error == YAML_MEMORY_ERROR ? RN_ENOMEM : RN_EFORMAT;
    yaml_parser_delete(&parser);
    return rc;
  }
  ctx_t c = {.doc = &doc, .why = why, .whylen = whylen};
  c.sch = calloc(1, sizeof *c.sch);
  rn_err_t rc = c.sch ? parse_top(&c, yaml_document_get_root_node(&doc)) : RN_ENOMEM;
  if (rc == RN_ENOMEM) rn__sink_fail(why, whylen, "schema: out of memory");
  free(c.lines);
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  if (rc != 0) {
    rn_sink_schema_free(c.sch);
    return rc;
  }
  *out = c.sch;
  return 0;
}
