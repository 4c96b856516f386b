/*
 * rn_admin.h — the admin application of runneld's HTTP port (GET /metrics,
 * GET /healthz, GET /readyz) and the reply path every HTTP application
 * answers through, which counts each answer for /metrics.
 *
 * The other applications (rn_kinesis.h, rn_rest.h) sit above this one: they
 * answer through rn_admin_reply*() and add to the counters of
 * rn_admin_counters(); the route table (rn_apps.h) creates one rn_admin_t and
 * one call per request. docs/kinesis.md lists every metric.
 *
 * Threading: the loop thread that runs the engine, for everything here.
 */
#ifndef RN_ADMIN_H
#define RN_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rn_base.h" /* rn_hist_t, rn_buf_t */
#include "rn_core.h"
#include "rn_http.h"
#include "rn_admin_codec.h"
#include "runnel/error.h"

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
/* The label of operation hop ("PutRecord", "RestBatch", ...); static. */
const char *rn__hop_name(int hop);

/* Status codes counted separately; others go to the last slot. */
#define RN__STATUS_SLOTS 14
#define RN__DUR_BUCKETS 14

/* ---- counters ------------------------------------------------------------------------ */

/* What the applications count. Kinesis errors by type (the table of
 * rn_kinesis_codec.h); the slot RN_KERR_NONE counts values outside the table
 * ("Other" on /metrics). Plain fields: loop thread only. */
typedef struct rn_admin_counters {
  uint64_t requests[RN__HOP_COUNT][RN__STATUS_SLOTS];
  rn_hist_t dur[RN__HOP_COUNT]; /* seconds, rn__dur_bounds */
  uint64_t kinesis_errors[RN_KERR_COUNT];
  uint64_t put_records_ok, put_records_failed; /* PutRecord(s) + REST, per record */
  uint64_t get_records_calls, get_records_records, get_records_bytes;
  uint64_t auth_failures; /* SigV4 and API keys */
  uint64_t throttled_records, throttled_reads;
} rn_admin_counters_t;

/* ---- the admin application ------------------------------------------------------------ */

typedef struct rn_admin rn_admin_t;

/* The admin's options (runneld fills them from its config: rn_server_apps_opts,
 * server.h). Strings are borrowed for the call only. */
typedef struct rn_admin_opts {
  const char *data_dir;   /* the file system /metrics reports the space of */
  bool latency_per_shard; /* metrics_latency_detail: shard (else per stream) */
} rn_admin_opts_t;

/* Create from opts. loop and core are borrowed and must outlive the
 * admin; version is static (runnel_build_info). Reads /proc for the process
 * start time: call at startup. Returns 0 with *out owned by the caller, or
 * RN_ENOMEM. */
rn_err_t rn_admin_new(uv_loop_t *loop, rn_core_t *core, const rn_admin_opts_t *opts, const char *version,
                      rn_admin_t **out);

/* Free. Call when no request is in flight; runs the loop until its own
 * thread-pool work (statfs for /metrics) finished. NULL ok. */
void rn_admin_destroy(rn_admin_t *adm);

/* The counters; lives as long as adm. */
rn_admin_counters_t *rn_admin_counters(rn_admin_t *adm);

/* Another component's lines for /metrics (e.g. the server's connection
 * counts): fn writes Prometheus text (complete lines, with # HELP/# TYPE)
 * into out, at most cap bytes, snprintf-style, and returns the length it
 * needed; it is called again with a larger buffer when that exceeds cap.
 * Up to 8 sources; arg is borrowed. Returns 0 or RN_ENOMEM (too many). */
typedef size_t (*rn_http_metrics_fn)(void *arg, char *out, size_t cap);
rn_err_t rn_admin_add_metrics(rn_admin_t *adm, rn_http_metrics_fn fn, void *arg);

/* ---- one request in flight -------------------------------------------------------------- */

/* Made by the route table for each request; the application that answers
 * it may read req and ctx (for rn_http_reserve) and set hop, cors and
 * region. Answering (any rn_admin_reply*) frees it. */
typedef struct rn_admin_call {
  rn_admin_t *adm;
  const rn_http_req_t *req; /* valid until answered */
  rn_http_reply_fn reply;
  void *ctx;
  int hop; /* metric label, RN__HOP_NOT_FOUND until known */
  uint64_t t0_ns;
  bool cors; /* add Access-Control-Allow-Origin */
  char region[64];
} rn_admin_call_t;

/* A call for req, answered through reply(ctx, ...). NULL when out of memory
 * (the caller answers itself). */
rn_admin_call_t *rn_admin_call_new(rn_admin_t *adm, const rn_http_req_t *req, rn_http_reply_fn reply, void *ctx);

/* Answer and free c: counts it (operation, status, duration), adds the CORS
 * headers when c->cors, then hands it to the transport. content_type NULL =
 * none; extra headers may be NULL. */
void rn_admin_reply(rn_admin_call_t *c, int status, const char *content_type, const rn_http_header_t *extra,
                    size_t nextra, const void *body, size_t len);
/* rn_admin_reply handing body over instead of copying it: body is
 * malloc'd (NULL: no body) and the transport frees it (rn_http_reply_owned),
 * whatever becomes of the answer; the caller must not touch it after. For
 * answers large enough that the copy shows (GetRecords). Frees c. */
void rn_admin_reply_owned(rn_admin_call_t *c, int status, const char *content_type, const rn_http_header_t *extra,
                          size_t nextra, uint8_t *body, size_t len);
/* {"__type": name, "message": msg} with the status of the table, counted by
 * type; frees c. A value outside the table answers InternalFailure. */
void rn_admin_reply_kerr(rn_admin_call_t *c, rn_kinesis_err_t type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A REST error: {"__type": name, "error": name, "message": msg} where name
 * names the status ("NotFound"); frees c. */
void rn_admin_reply_error(rn_admin_call_t *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Lookup of a request header by lowercase name (the transport's headers are
 * lowercase). NULL when absent. */
const char *rn_admin_req_header(const rn_http_req_t *req, const char *lname);

/* ---- the handlers ------------------------------------------------------------------------ */

/* GET /healthz, GET /readyz, GET /metrics. Each takes c. */
void rn_admin_healthz(rn_admin_call_t *c);
void rn_admin_readyz(rn_admin_call_t *c);
void rn_admin_metrics(rn_admin_call_t *c);

#endif
