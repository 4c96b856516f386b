/*
 * sinkfmt.h — pure record conversion for the archive sinks (issue 14;
 * docs/sink-formats.md is the user-facing reference of everything here).
 * Private header of broker/sinks: rn_sinks and its tests and fuzz targets
 * include it, nothing else.
 *
 * Sections:
 *   1. JSON paths       rn_sink_path_t: "$.a.b[2].c", "a.b", "$['weird.name']"
 *   2. schema file      rn_sink_schema_t from YAML text (libyaml)
 *   3. records          parse one record, convert it to a row of rn_sink_value_t,
 *                       its event time
 *   4. prefix templates rn_sink_tmpl_t: Firehose's !{timestamp:...}, !{field:...},
 *                       !{error}, rendered into S3-safe keys
 *   5. NDJSON objects   rn_sink_ndjson_t: one compact line per record, error
 *                       lines, gzip
 *
 * Everything is a pure function over memory: no I/O, no clock, no globals,
 * no logging. Objects are not thread-safe, but distinct objects may be used
 * on distinct threads, and a parsed schema, path or template is read-only
 * after parsing (many threads may render/convert with the same one).
 *
 * Errors are rn_err_t (runnel/error.h). Every function that can fail for a
 * reason a user must read takes (why, whylen) and writes one NUL-terminated
 * line there (why may be NULL when whylen is 0); the line never contains a
 * newline. Input is untrusted: a stream's records, a client's schema file,
 * a client's prefix.
 */
#ifndef RN_SINKFMT_H
#define RN_SINKFMT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_base.h"
#include "runnel/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== enums shared with the Parquet writer ===================================
 *
 * Same members in the same order as parquet.h's RN_PQ_STRING.. and
 * RN_PQ_UNCOMPRESSED.., so mapping is a switch with one case per member
 * (this header does not include parquet.h). */
typedef enum {
  RN_SINK_COL_STRING = 0,
  RN_SINK_COL_INT64,
  RN_SINK_COL_DOUBLE,
  RN_SINK_COL_BOOLEAN,
  RN_SINK_COL_TIMESTAMP, /* int64 ms since the epoch, UTC */
} rn_sink_coltype_t;

typedef enum {
  RN_SINK_CODEC_NONE = 0,
  RN_SINK_CODEC_SNAPPY,
  RN_SINK_CODEC_GZIP,
  RN_SINK_CODEC_ZSTD,
} rn_sink_codec_t;

/* The unit of a number read as a timestamp. */
typedef enum {
  RN_SINK_UNIT_MS = 0, /* the default */
  RN_SINK_UNIT_S,
  RN_SINK_UNIT_US,
} rn_sink_unit_t;

/* "string", "int64", ...; "ms", "s", "us"; "none", "snappy", ... Static;
 * "?" for values outside the enums. */
const char *rn_sink_coltype_name(rn_sink_coltype_t t);
const char *rn_sink_unit_name(rn_sink_unit_t u);
const char *rn_sink_codec_name(rn_sink_codec_t c);

/* ==== 1. JSON paths ===========================================================
 *
 * Syntax: an optional "$" then steps; without "$" the first step is a bare
 * name ("a.b" is "$.a.b"). Steps:
 *   .name         name: ASCII letters, digits, '_', '-', or any byte >= 0x80
 *   [N]           array index, decimal, 0..999999999, no leading zeros
 *   ['name']      quoted name, any bytes but NUL; \' \" \\ escape
 *   ["name"]
 * "$" alone is the whole record. At most RN_SINK_PATH_MAX bytes and
 * RN_SINK_PATH_STEPS steps. Parsed once, evaluated per record. */
#define RN_SINK_PATH_MAX 1024
#define RN_SINK_PATH_STEPS 64

typedef struct rn_sink_path rn_sink_path_t;

/* Parse s[0..n) into a new path (*out; free with rn_sink_path_free).
 * Returns 0, or RN_EINVAL with a reason naming the 1-based position
 * ("at position 5: expected a name after '.'"); *out is then NULL. */
rn_err_t rn_sink_path_parse(const char *s, size_t n, rn_sink_path_t **out, char *why, size_t whylen);
void rn_sink_path_free(rn_sink_path_t *p); /* NULL accepted */
/* The text the path was parsed from, NUL-terminated; lives as long as p. */
const char *rn_sink_path_text(const rn_sink_path_t *p);
/* The value at p inside root, or NULL when a step is missing (no such key,
 * index past the end, or a step into a value of another kind). JSON null
 * is returned as the json_null() value, not NULL. The result is borrowed
 * from root (no reference is taken); root NULL gives NULL. */
json_t *rn_sink_path_eval(const rn_sink_path_t *p, const json_t *root);

/* ==== 2. schema file ==========================================================
 *
 * The YAML text the client gives for a Parquet sink (docs/sink-formats.md,
 * "Schema file"). The parsed schema is read-only; the lead's code reads its
 * fields directly. Columns come first in file order, then the metadata
 * columns in file order. */
#define RN_SINK_SCHEMA_MAX_BYTES (1u << 20) /* 1 MiB of YAML */
#define RN_SINK_MAX_COLUMNS 1024            /* columns + metadata columns */
#define RN_SINK_NAME_MAX 128                /* bytes of a column name */
#define RN_SINK_ROW_GROUP_MIN (64 * 1024)   /* row_group_bytes bounds */
#define RN_SINK_ROW_GROUP_MAX (1024 * 1024 * 1024)

/* Where a column's value comes from. */
typedef enum {
  RN_SINK_SRC_RECORD = 0,      /* the record's JSON at the column's path */
  RN_SINK_SRC_PARTITION_KEY,   /* string */
  RN_SINK_SRC_SHARD,           /* string "shardId-%012u" */
  RN_SINK_SRC_SEQUENCE_NUMBER, /* string */
  RN_SINK_SRC_OFFSET,          /* int64 */
  RN_SINK_SRC_ARRIVAL_TIME,    /* timestamp */
} rn_sink_source_t;

/* "record", "partition_key", "shard", ... Static; "?" outside the enum. */
const char *rn_sink_source_name(rn_sink_source_t s);

typedef struct rn_sink_column {
  char *name;              /* [A-Za-z_][A-Za-z0-9_]*, unique in the schema */
  rn_sink_coltype_t type;  /* metadata columns: fixed by their source */
  bool nullable;           /* metadata columns: false */
  rn_sink_unit_t unit;     /* timestamps from numbers; RN_SINK_UNIT_MS otherwise */
  rn_sink_source_t source; /* RN_SINK_SRC_RECORD for the columns: list */
  rn_sink_path_t *path;    /* record columns: the path ("$.<name>" by default); metadata: NULL */
} rn_sink_column_t;

typedef struct rn_sink_schema {
  rn_sink_column_t *cols; /* ncols entries: the columns, then the metadata columns */
  size_t ncols;
  size_t nrecord; /* how many of cols are RN_SINK_SRC_RECORD (they come first) */
  rn_sink_codec_t codec;   /* default RN_SINK_CODEC_SNAPPY */
  int64_t row_group_bytes; /* 0 when the file does not say (the writer's default) */
} rn_sink_schema_t;

/* Parse the schema file text[0..len) into a new schema (*out; free with
 * rn_sink_schema_free). Returns 0; RN_ETOOLARGE (over 1 MiB, over 1024
 * columns), RN_EFORMAT (not YAML, or not the shape of a schema) or
 * RN_EINVAL (a wrong value) with one line
 *   "schema:LINE: column created_at: unknown type \"datetime\" (expected
 *    string, int64, double, boolean or timestamp)"
 * in why; *out is then NULL. RN_ENOMEM when memory runs out. */
rn_err_t rn_sink_schema_parse(const char *text, size_t len, rn_sink_schema_t **out, char *why, size_t whylen);
void rn_sink_schema_free(rn_sink_schema_t *sch); /* NULL accepted */
/* The column named name, or NULL. */
const rn_sink_column_t *rn_sink_schema_find(const rn_sink_schema_t *sch, const char *name);

/* ==== 3. records ==============================================================
 *
 * A record's metadata, as the lead's consumer knows it. Strings are
 * borrowed for the duration of the call (and, for converted rows, as long
 * as the row's values are used: see rn_sink_convert). */
typedef struct rn_sink_meta {
  const char *partition_key;   /* NUL-terminated; NULL reads as "" */
  uint32_t shard;              /* shard number: "shardId-000000000001" is 1 */
  const char *sequence_number; /* NUL-terminated; NULL reads as "" */
  uint64_t offset;
  int64_t arrival_ms; /* ms since the epoch */
} rn_sink_meta_t;

/* A why buffer of this size holds every reason written here whole: values
 * and paths are quoted cut to about 100 bytes. Smaller buffers get the
 * reason truncated (still NUL-terminated). */
#define RN_SINK_WHY_MAX 512

/* Parse one record's bytes with jansson: *out is a new reference to a JSON
 * object (json_decref it). Errors (*out NULL):
 *   RN_EINVAL "invalid JSON at byte N: <jansson's text>"
 *   RN_EINVAL "record is not a JSON object"
 * Strings may hold \u0000 (JSON_ALLOW_NUL): use json_string_length. */
rn_err_t rn_sink_record_parse(const void *data, size_t len, json_t **out, char *why, size_t whylen);

typedef enum {
  RN_SINK_VAL_NULL = 0,
  RN_SINK_VAL_STRING, /* string columns */
  RN_SINK_VAL_INT64,  /* int64 and timestamp (ms since the epoch, UTC) columns */
  RN_SINK_VAL_DOUBLE,
  RN_SINK_VAL_BOOL,
} rn_sink_vtype_t;

typedef struct rn_sink_value {
  rn_sink_vtype_t type;
  union {
    struct {
      const char *p; /* not NUL-terminated in general; may contain NUL bytes */
      size_t len;
    } str;
    int64_t i64;
    double f64;
    bool b;
  } u;
} rn_sink_value_t;

/* Convert one record to a row: vals[0..sch->ncols) gets one value per
 * column (metadata columns included), typed as the column (docs/
 * sink-formats.md, "Conversion rules"). rec is the record (a JSON object;
 * anything else fails "record is not a JSON object"); meta its metadata.
 *
 * Where strings point (valid while all three live unchanged):
 *   - into rec: a JSON string taken as is;
 *   - into meta's strings: partition_key, sequence_number;
 *   - into scratch: everything rendered (numbers, booleans, objects and
 *     arrays as compact JSON text, the shard id). scratch is a caller's
 *     buffer (zero-initialised once, reused across calls, rn_buf_free at
 *     the end); this function empties it first (scratch->len = 0), so the
 *     previous row's scratch strings die at the next call.
 *
 * Returns 0; RN_EINVAL with a reason naming the column:
 *   "column n: missing and not nullable"
 *   "column n: 1.5 is not an int64"
 *   "column created_at: \"yesterday\" is not an ISO-8601 time"
 * (vals then partly filled: do not use); RN_ENOMEM when scratch could not
 * grow. */
rn_err_t rn_sink_convert(const rn_sink_schema_t *sch, const json_t *rec, const rn_sink_meta_t *meta,
                         rn_sink_value_t *vals, rn_buf_t *scratch, char *why, size_t whylen);

/* The event time of rec for --event-time-field: the value at path, read by
 * the timestamp column rules (an ISO-8601 / RFC 3339 string, zone optional
 * (UTC), or a number in unit). Returns 0 with *ms set, or RN_EINVAL with
 *   "event time $.ts: missing" / "event time $.ts: \"x\" is not an
 *    ISO-8601 time"   (*ms untouched). */
rn_err_t rn_sink_event_time(const json_t *rec, const rn_sink_path_t *path, rn_sink_unit_t unit, int64_t *ms,
                            char *why, size_t whylen);

/* ==== 4. prefix templates =====================================================
 *
 * Literal text plus expressions (docs/sink-formats.md, "Prefixes"):
 *   !{timestamp:FORMAT}  FORMAT: yyyy MM dd HH mm ss, other non-letters literal
 *   !{field:PATH}        a JSON path into the record
 *   !{error}             the error kind (error prefixes only: RN_SINK_TMPL_ERROR)
 * A non-empty template is normalised to end with '/' (one is appended when
 * missing); the empty template renders as "" (objects at the bucket's root).
 * Rendered keys are safe for S3 and Hive: literal text is checked at parse
 * time, expression output is percent-encoded at render time. Time is UTC. */
#define RN_SINK_KEY_MAX 1024 /* bytes of a rendered prefix */

enum {
  RN_SINK_TMPL_ERROR = 1u << 0, /* an error prefix: !{error} allowed */
};

typedef struct rn_sink_tmpl rn_sink_tmpl_t;

/* Parse s[0..n) into a new template (*out; free with rn_sink_tmpl_free).
 * Returns 0 or RN_EINVAL with a reason naming the 1-based position:
 *   "prefix at position 3: unknown expression \"!{foo}\" (expected
 *    !{timestamp:FORMAT}, !{field:PATH} or !{error})" (*out NULL). */
rn_err_t rn_sink_tmpl_parse(const char *s, size_t n, unsigned flags, rn_sink_tmpl_t **out, char *why,
                            size_t whylen);
void rn_sink_tmpl_free(rn_sink_tmpl_t *t); /* NULL accepted */
/* The normalised template text (ends with '/' unless empty); lives as long as t. */
const char *rn_sink_tmpl_text(const rn_sink_tmpl_t *t);
bool rn_sink_tmpl_uses_fields(const rn_sink_tmpl_t *t); /* records must be parsed to render */
bool rn_sink_tmpl_uses_time(const rn_sink_tmpl_t *t);
bool rn_sink_tmpl_uses_error(const rn_sink_tmpl_t *t);

/* Render t for one record into out[0..cap): NUL-terminated, length in
 * *len. rec: the parsed record, or NULL (then any !{field} fails);
 * time_ms: the time for !{timestamp} (arrival or event time, ms since the
 * epoch, UTC); error_kind: the text for !{error} (e.g. "parse", "convert",
 * "prefix"; NULL renders as "unknown"). Returns 0; RN_EINVAL with
 *   "prefix field $.country: missing" / "...: is null" / "...: is an object"
 * (the lead routes the record to the error prefix); RN_ETOOLARGE when the
 * prefix is longer than RN_SINK_KEY_MAX or cap - 1 bytes. */
rn_err_t rn_sink_tmpl_render(const rn_sink_tmpl_t *t, const json_t *rec, int64_t time_ms, const char *error_kind,
                             char *out, size_t cap, size_t *len, char *why, size_t whylen);

/* ==== 5. NDJSON objects =======================================================
 *
 * A builder of one object's bytes: one line per record, '\n'-terminated.
 * Zero-initialise it ({0}); rn_sink_ndjson_finish hands the bytes over
 * and leaves it empty and reusable; rn_sink_ndjson_free drops them. */
typedef struct rn_sink_ndjson {
  rn_buf_t buf;   /* the uncompressed lines (owned) */
  size_t records; /* lines appended since the last finish */
} rn_sink_ndjson_t;

/* Append rec (any JSON value; a record is an object) as one line: compact
 * (no whitespace), keys in the record's order, non-ASCII as UTF-8 (not
 * \u escapes), numbers in their shortest round-trip form. RN_ENOMEM when
 * the buffer could not grow (the builder is then unusable: free it). */
rn_err_t rn_sink_ndjson_append(rn_sink_ndjson_t *nd, const json_t *rec);

/* Append an error line for a record that could not be delivered:
 *   {"shard":"shardId-000000000001","offset":N,"sequence_number":"...",
 *    "arrival_time":"2026-12-02T05:03:01.000Z","reason":"...",
 *    "data_base64":"..."}
 * reason: NUL-terminated (invalid UTF-8 is replaced by U+FFFD); data: the
 * record's original bytes. RN_ENOMEM as rn_sink_ndjson_append. */
rn_err_t rn_sink_ndjson_append_error(rn_sink_ndjson_t *nd, const rn_sink_meta_t *meta, const char *reason,
                                     const void *data, size_t len);

/* Uncompressed bytes so far (for size-based rollover). */
static inline size_t rn_sink_ndjson_bytes(const rn_sink_ndjson_t *nd) { return nd->buf.len; }

/* The object's bytes: *out malloc'd (free() it; never NULL on success,
 * even when empty), *outlen its length. gzip: one gzip member (zlib
 * deflate, windowBits 15+16), readable by gzip -d; otherwise the lines as
 * they are. The builder is left empty on success; on failure (RN_ENOMEM,
 * RN_EIO from zlib) it keeps its lines. */
rn_err_t rn_sink_ndjson_finish(rn_sink_ndjson_t *nd, bool gzip, uint8_t **out, size_t *outlen);
void rn_sink_ndjson_free(rn_sink_ndjson_t *nd); /* NULL accepted; leaves it zeroed */

#ifdef __cplusplus
}
#endif
#endif
