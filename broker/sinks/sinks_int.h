/*
 * sinks_int.h — private to broker/sinks: the compiled form of a sink's
 * configuration (templates, schema) and the encode step that turns a flush
 * range of stored batches into objects (encode.c, on the thread pool).
 */
#ifndef RN_SINKS_INT_H
#define RN_SINKS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_sinks.h"

/* A sink's configuration checked and compiled once (create, or load):
 * immutable afterwards, so encode jobs on several threads share it. */
typedef struct rn__sink_fmt rn__sink_fmt_t;

/* Validate c (everything but the name, the stream and the destination) and
 * compile it. RN_EINVAL with why naming the field ("schema line 4: unknown
 * type \"strng\"", "prefix: ..."). */
rn_err_t rn__sink_fmt_compile(const rn_sink_config_t *c, rn__sink_fmt_t **out, char *why, size_t whylen);
void rn__sink_fmt_free(rn__sink_fmt_t *f);
/* ".parquet", ".ndjson.gz" or ".ndjson". Static. */
const char *rn__sink_fmt_ext(const rn__sink_fmt_t *f);

/* One object of a flush. */
typedef struct rn__sink_obj {
  char *key;             /* under the destination; malloc'd */
  uint8_t *data;         /* malloc'd */
  size_t len;
  uint64_t records;
  bool errors;           /* under the error prefix */
  bool stored;           /* its PUT succeeded */
} rn__sink_obj_t;

/* One flush: the records of [first, last] of one shard, from the stored
 * batches in batches[0, len) (whole batches; records outside the range are
 * skipped). Filled in on the loop, run on a worker thread, read on the
 * loop. */
typedef struct rn__sink_enc {
  const rn__sink_fmt_t *fmt;
  const char *sink;          /* the sink's name (object names) */
  uint32_t shard;
  int64_t stream_created_ms; /* Kinesis sequence numbers of the metadata column */
  const uint8_t *batches;
  size_t len;
  uint64_t first, last;
  /* out */
  rn__sink_obj_t *objs;
  size_t nobjs;
  uint64_t records;          /* converted and placed in a data object */
  uint64_t error_records;    /* placed under the error prefix */
  rn_err_t err;              /* the batches failed to decode (RN_ECORRUPT), or out of memory */
  char msg[256];
} rn__sink_enc_t;

/* Build e->objs. Pure (no I/O); any thread. */
void rn__sink_encode(rn__sink_enc_t *e);
/* Free e->objs. */
void rn__sink_objs_free(rn__sink_obj_t *objs, size_t n);

#endif
