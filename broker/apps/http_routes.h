/*
 * http_routes.h — runneld's HTTP applications behind the transport's
 * router contract (http.h): the Kinesis Data Streams JSON 1.1 API
 * (X-Amz-Target: Kinesis_20131202.*, SigV4), REST ingest
 * (PUT /streams/{s}/record(s), POST /v1/streams/{s}/records), GET /metrics
 * (Prometheus text), GET /healthz and GET /readyz. docs/kinesis.md is the
 * user-facing description.
 *
 * Wiring (main.c):
 *   rn_http_routes_t *routes;
 *   rc = rn_http_routes_new(&loop, eng, &cfg, &routes, why, sizeof why);
 *   ... hand rn_http_routes_router and routes (as arg) to the HTTP server ...
 *   ... after the server stopped and before rn_engine_close:
 *   rn_http_routes_destroy(routes);
 *
 * Threading: everything runs on the loop thread that runs the engine.
 * Every request is answered exactly once through reply() (at once, or later
 * for produce and reads); the server must keep ctx valid until then.
 */
#ifndef RN_BROKER_HTTP_ROUTES_H
#define RN_BROKER_HTTP_ROUTES_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "engine.h"
#include "http.h"
#include "runnel/error.h"

typedef struct rn_http_routes rn_http_routes_t;

/* Create the applications' state from cfg: SigV4 credentials
 * (kinesis_credentials), API keys (rest_api_keys), throughput limits, the
 * Kinesis tags/stream-mode file under <data_dir>/meta (read here, blocking:
 * call at startup), and a fresh random secret for shard iterators. loop and
 * eng are borrowed and must outlive the routes; cfg is read only here.
 * Returns 0 with *out owned by the caller, or RN_EINVAL (a bad credential or
 * API key list; why says which entry), RN_ECORRUPT (an unreadable tags file),
 * RN_ENOMEM. */
rn_err_t rn_http_routes_new(uv_loop_t *loop, rn_engine_t *eng, const rn_config_t *cfg, rn_http_routes_t **out,
                            char *why, size_t whylen);

/* Free. Call after the HTTP server stopped (no request in flight); runs the
 * loop until its own pending metadata writes finished. NULL ok. */
void rn_http_routes_destroy(rn_http_routes_t *routes);

/* The rn_http_router_fn (http.h): arg is the rn_http_routes_t. */
void rn_http_routes_router(void *arg, const rn_http_req_t *req, rn_http_reply_fn reply, void *ctx);

/* Another component's lines for /metrics (e.g. the server's connection
 * counts): fn writes Prometheus text (complete lines, with # HELP/# TYPE)
 * into out, at most cap bytes, snprintf-style, and returns the length it
 * needed; it is called again with a larger buffer when that exceeds cap.
 * Up to 8 sources; arg is borrowed. Returns 0 or RN_ENOMEM (too many). */
typedef size_t (*rn_http_metrics_fn)(void *arg, char *out, size_t cap);
rn_err_t rn_http_routes_add_metrics(rn_http_routes_t *routes, rn_http_metrics_fn fn, void *arg);

#endif
