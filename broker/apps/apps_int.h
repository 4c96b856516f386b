/*
 * apps_int.h — private structures of the HTTP applications (http_routes.c:
 * dispatch, replies, health; kinesis.c: the Kinesis operations, the shared
 * produce path, tags, throughput limits; rest_ingest.c; metrics.c).
 * Loop thread only unless a comment says otherwise.
 */
#ifndef RN_BROKER_APPS_INT_H
#define RN_BROKER_APPS_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "engine.h"
#include "http_routes.h"
#include "kinesis_int.h"
#include "sigv4.h"

/* ---- operations, as metric labels --------------------------------------------------- */

enum {
  /* 0 .. RN__KOP_COUNT-1: the Kinesis operations (rn__kop_t) */
  RN__HOP_KINESIS_UNKNOWN = RN__KOP_COUNT,
  RN__HOP_REST_RECORD,
  RN__HOP_REST_RECORDS,
  RN__HOP_REST_BATCH,
  RN__HOP_METRICS,
  RN__HOP_HEALTHZ,
  RN__HOP_READYZ,
  RN__HOP_OPTIONS,
  RN__HOP_NOT_FOUND,
  RN__HOP_COUNT
};
const char *rn__hop_name(int hop);

/* Status codes we count separately; others go to the last slot. */
#define RN__STATUS_SLOTS 14
int rn__status_slot(int status);
int rn__status_of_slot(int slot); /* 0 for "other" */

#define RN__DUR_BUCKETS 14
extern const double rn__dur_bounds[RN__DUR_BUCKETS];

/* Kinesis errors are counted by type (rn_kinesis.h's table); the slot
 * RN_KERR_NONE counts values outside the table ("Other" on /metrics). */
typedef struct rn__metrics {
  uint64_t requests[RN__HOP_COUNT][RN__STATUS_SLOTS];
  uint64_t dur_buckets[RN__HOP_COUNT][RN__DUR_BUCKETS + 1];
  double dur_sum[RN__HOP_COUNT];
  uint64_t dur_count[RN__HOP_COUNT];
  uint64_t kinesis_errors[RN_KERR_COUNT];
  uint64_t put_records_ok, put_records_failed; /* PutRecord(s) + REST, per record */
  uint64_t get_records_calls, get_records_records, get_records_bytes;
  uint64_t auth_failures; /* SigV4 and API keys */
  uint64_t throttled_records, throttled_reads;
} rn__metrics_t;

void rn__metrics_count_kerr(rn__metrics_t *m, rn_kinesis_err_t type);
/* Space of the data directory's file system (statfs, done on the thread
 * pool before rendering); err != 0 when unknown (the gauges are omitted). */
typedef struct rn__disk_usage {
  rn_err_t err;
  uint64_t free_bytes, total_bytes;
} rn__disk_usage_t;

/* The whole /metrics page into out. */
void rn__metrics_render(rn_http_routes_t *r, rn__buf_t *out, const rn__disk_usage_t *disk);

/* ---- the Kinesis tags / stream-mode store --------------------------------------------- */

typedef struct rn__kmeta_stream {
  char *name;
  int64_t created_ms; /* the stream this entry belongs to (a recreated stream starts empty) */
  bool on_demand;
  char **keys, **values; /* tags, sorted by key */
  size_t ntags;
} rn__kmeta_stream_t;

typedef struct rn__kmeta {
  rn__kmeta_stream_t *v;
  size_t n, cap;
  char *path; /* <data_dir>/meta/kinesis-streams.json */
  /* Persisting: newest snapshot wins, as in engine.c. */
  pthread_mutex_t mu;
  char *snap; /* guarded by mu */
  size_t snap_len;
  uint64_t version, written; /* guarded by mu */
} rn__kmeta_t;

rn_err_t rn__kmeta_load(rn__kmeta_t *km, const char *data_dir, char *why, size_t whylen);
void rn__kmeta_free(rn__kmeta_t *km);

/* ---- throughput limits ------------------------------------------------------------------ */

typedef struct rn__bucket {
  double w_bytes, w_records, r_bytes, r_calls; /* tokens */
  int64_t last_ms;
} rn__bucket_t;

typedef struct rn__slimits {
  char *name;
  int64_t created_ms;
  uint32_t n;
  rn__bucket_t *b;
} rn__slimits_t;

/* ---- the applications' state ---------------------------------------------------------------- */

#define RN__MAX_METRICS_SOURCES 8

struct rn_http_routes {
  uv_loop_t *loop;
  rn_engine_t *eng;
  char *data_dir;
  int64_t (*now_ms)(void *arg); /* wall clock; tests replace it */
  void *now_arg;
  uint8_t iter_key[RN__KITER_KEYLEN];
  rn_sigv4_key_t *creds; /* kinesis_credentials; none = accept any request */
  size_t ncreds;
  char *creds_buf;
  rn__apikeys_t apikeys; /* rest_api_keys; none = open */
  bool throttle;         /* kinesis_throughput_limits: kinesis */
  uint32_t max_record_bytes, max_batch_bytes, max_shards;
  uint32_t rest_max_body;
  rn__kmeta_t kmeta;
  rn__slimits_t *limits;
  size_t nlimits, limits_cap;
  rn__metrics_t m;
  struct {
    rn_http_metrics_fn fn;
    void *arg;
  } sources[RN__MAX_METRICS_SOURCES];
  size_t nsources;
  unsigned pending_jobs; /* thread-pool work: writes of the tags file, statfs for /metrics */
  uint64_t started_ns;
  double process_start_s;  /* epoch seconds the process started (process_start_time_seconds) */
  const char *version;     /* runnel_build_info */
  bool latency_per_shard;  /* metrics_latency_detail: shard */
};

int64_t rn__routes_now_ms(const rn_http_routes_t *r);

/* ---- one request in flight ------------------------------------------------------------------------ */

typedef struct rn__call {
  rn_http_routes_t *r;
  const rn_http_req_t *req; /* valid until rn__call_reply */
  rn_http_reply_fn reply;
  void *ctx;
  int hop; /* metric label */
  uint64_t t0_ns;
  bool cors; /* add Access-Control-Allow-Origin */
  char region[64];
} rn__call_t;

/* Answer and free c. content_type NULL = none. extra headers may be NULL. */
void rn__call_reply(rn__call_t *c, int status, const char *content_type, const rn_http_header_t *extra, size_t nextra,
                    const void *body, size_t len);
/* {"__type": type, "message": msg} with the status AWS uses for type; frees c. */
void rn__call_kerr(rn__call_t *c, rn_kinesis_err_t type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A REST error: {"error": name, "message": msg}; frees c. */
void rn__call_rest_error(rn__call_t *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Lookup of a request header by lowercase name (the transport's headers are
 * lowercase). NULL when absent. */
const char *rn__req_header(const rn_http_req_t *req, const char *lname);

/* ---- kinesis.c ---------------------------------------------------------------------------------------- */

/* Dispatch a request carrying X-Amz-Target (op already resolved; RN__KOP_COUNT
 * for an unknown one). Takes c. */
void rn__kinesis_handle(rn__call_t *c, const char *target);

/* The shared produce path (PutRecord(s), REST ingest): describe the stream,
 * route every record (MD5 of the partition key or its explicit hash key)
 * to its shard, apply throughput limits, build one batch per shard, append
 * and wait for the stream's durability. Records are borrowed until cb. */
typedef struct rn__prod_result {
  uint32_t shard;
  uint64_t offset;
  rn_kinesis_err_t err_type; /* RN_KERR_NONE = stored; else why not */
  const char *err_msg;  /* lives until the produce is freed (after cb) */
  /* With err_type InternalFailure: the broker failed for a transient reason
   * (disk full, out of file descriptors) and stored nothing; a call about
   * this record alone (PutRecord, REST single record) answers 503
   * ServiceUnavailable, which SDKs retry. docs/kinesis.md, "Errors". */
  bool retry_later;
} rn__prod_result_t;

typedef struct rn__produce {
  /* request-level failure: err_type set (not RN_KERR_NONE), no record was stored */
  rn_kinesis_err_t err_type;
  char err_msg[512];
  int64_t created_ms; /* the stream's creation time (for sequence numbers) */
  size_t n, failed;
  rn__prod_result_t *res; /* n */
  void *priv;
} rn__produce_t;

typedef void (*rn__produce_cb)(rn__produce_t *p, void *arg);
/* cb runs exactly once (possibly before this returns); p is freed after cb. */
void rn__produce(rn_http_routes_t *r, const char *stream, const rn__krec_t *recs, size_t n, rn__produce_cb cb, void *arg);

/* ---- rest_ingest.c ---------------------------------------------------------------------------------------- */

/* Handle PUT/POST /streams/{s}/record(s) and POST /v1/streams/{s}/records;
 * stream is the decoded {s}. Takes c. */
void rn__rest_handle(rn__call_t *c, int hop, const char *stream);

#endif
