/*
 * rn_apps.h — the route table of runneld's HTTP port, behind the transport's
 * router contract (rn_http.h): it mounts the applications — the Kinesis Data
 * Streams JSON 1.1 API (rn_kinesis.h), REST ingest (rn_rest.h) and the
 * admin endpoints GET /metrics, /healthz, /readyz (rn_admin.h) — and
 * answers what none of them owns (404, 405, CORS preflight).
 * docs/kinesis.md is the user-facing description.
 *
 * Wiring (main.c):
 *   rn_http_routes_t *routes;
 *   rn_apps_opts_t ao;
 *   rn_server_apps_opts(&cfg, &ao);          (server.h: from runneld's config)
 *   rc = rn_http_routes_new(&loop, core, &ao, &routes, why, sizeof why);
 *   ... hand rn_http_routes_router and routes (as arg) to the HTTP server ...
 *   ... after the server stopped and before rn_core_close:
 *   rn_http_routes_destroy(routes);
 *
 * Threading: everything runs on the loop thread that runs the engine.
 * Every request is answered exactly once through reply() (at once, or later
 * for produce and reads); the server must keep ctx valid until then.
 */
#ifndef RN_APPS_H
#define RN_APPS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rn_kinesis.h"
#include "rn_rest.h"
#include "rn_core.h"
#include "rn_http.h"
#include "rn_admin.h"
#include "runnel/error.h"

typedef struct rn_http_routes rn_http_routes_t;

/* Every application's options; runneld fills them from its config
 * (rn_server_apps_opts, server.h), so no application reads config.h.
 * Strings are borrowed for rn_http_routes_new only. */
typedef struct rn_apps_opts {
  rn_admin_opts_t admin;
  rn_kinesis_opts_t kinesis;
  rn_rest_opts_t rest;
  const char *http_listen;   /* for the warnings about an open API */
  bool http_listen_loopback; /* false: warn when the Kinesis API or REST ingest is open */
} rn_apps_opts_t;

/* Create the applications' state from opts: SigV4 credentials
 * (kinesis_credentials), API keys (rest_api_keys), throughput limits, the
 * Kinesis tags/stream-mode file under <data_dir>/meta (read here, blocking:
 * call at startup), and a fresh random secret for shard iterators. loop and
 * core are borrowed and must outlive the routes; opts is read only here.
 * Returns 0 with *out owned by the caller, or RN_EINVAL (a bad credential or
 * API key list; why says which entry), RN_ECORRUPT (an unreadable tags file),
 * RN_ENOMEM. */
rn_err_t rn_http_routes_new(uv_loop_t *loop, rn_core_t *core, const rn_apps_opts_t *opts, rn_http_routes_t **out,
                            char *why, size_t whylen);

/* Free. Call after the HTTP server stopped (no request in flight); runs the
 * loop until its own pending metadata writes finished. NULL ok. */
void rn_http_routes_destroy(rn_http_routes_t *routes);

/* The rn_http_router_fn (rn_http.h): arg is the rn_http_routes_t. */
void rn_http_routes_router(void *arg, const rn_http_req_t *req, rn_http_reply_fn reply, void *ctx);

/* Another component's lines for /metrics (rn_admin_add_metrics, rn_admin.h). */
rn_err_t rn_http_routes_add_metrics(rn_http_routes_t *routes, rn_http_metrics_fn fn, void *arg);

/* The Kinesis application's wall clock (rn_kinesis_set_clock); tests only. */
void rn_http_routes_set_clock(rn_http_routes_t *routes, int64_t (*now_ms)(void *arg), void *arg);

#endif
