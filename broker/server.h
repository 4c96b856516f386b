/*
 * server.h — runneld's network side, assembled from its parts: the
 * connection base and listeners (rn_net.h), the native protocol
 * (rn_native.h) and the HTTP transport (rn_http.h: HTTP/1.1, h2c with
 * prior knowledge, TLS with ALPN; requests go to a router), plus the
 * port file and graceful shutdown. The logger is base's (rn_base.h).
 *
 * Threading: everything runs on the thread that runs the loop given to
 * rn_server_start, except the logger, which any thread may call.
 *
 * Lifetime: rn_server_bind → rn_server_start → (loop runs) → rn_server_shutdown → done
 * callback → (uv_run returns) → rn_server_destroy. The engine and the config
 * are borrowed and must outlive the server.
 */
#ifndef RN_BROKER_SERVER_H
#define RN_BROKER_SERVER_H

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "rn_core.h"
#include "rn_http.h"
#include "rn_net.h"
#include "rn_log.h"
#include "runnel/error.h"

typedef struct rn_server rn_server_t;

/* Raise the soft RLIMIT_NOFILE to the hard limit and log it (one line).
 * Call once at startup, before the engine opens its files. Never fails:
 * when the limit cannot be raised it logs why and the current limit stays. */
void rn_server_raise_fd_limit(void);

/* The HTTP applications' options (rn_apps.h) from runneld's config: the
 * applications never read config.h themselves. Strings point into cfg
 * (borrowed: cfg must outlive the use of *out, i.e. rn_http_routes_new). */
struct rn_apps_opts;
void rn_server_apps_opts(const rn_config_t *cfg, struct rn_apps_opts *out);

/* Step 1 of a start, before the data directory is touched: bind and listen
 * on the native listener (cfg->listen) and the HTTP listener
 * (cfg->http_listen). A listener on a non-loopback address is refused
 * (RN_EINVAL) unless it authenticates its clients or cfg->auth is
 * RN_AUTH_NONE (then a warning is logged). Connections that arrive now wait
 * in the kernel's backlog: nothing is accepted before rn_server_start and the
 * loop runs. Blocking only for name resolution (call before the loop runs).
 * cfg is borrowed and must outlive the server. On success *out is owned by
 * the caller: rn_server_start it, or rn_server_abandon it. On failure nothing
 * is left open, why holds one line and the return value is the libuv error
 * as an rn_err_t (-errno) or RN_EINVAL. */
rn_err_t rn_server_bind(uv_loop_t *loop, const rn_config_t *cfg, rn_server_t **out, char *why, size_t whylen);

/* The engine as runneld opens it: rn_core_open (recovery of every shard),
 * then the subsystems on it (consumer groups, with core's clock; archive
 * sinks, with eo->tier.s3's endpoint, region and credentials, whose strings
 * must then outlive the engine), which hang off core from then on
 * (rn_core_close closes them). On failure nothing is left open and why
 * holds a one-line reason. Blocking: before the loop runs. */
rn_err_t rn_server_open_engine(const rn_core_opts_t *eo, rn_core_t **out, char *why, size_t whylen);

/* Step 2, once the engine is open: start serving eng (borrowed; must
 * outlive the server), write cfg->port_file when set, and log one
 * "listening" line. Blocking only for the port file. On failure (the port
 * file) why holds one line; the server is still bound: rn_server_abandon
 * it. */
rn_err_t rn_server_start(rn_server_t *srv, rn_core_t *eng, char *why, size_t whylen);

/* Close the listeners of a server that was bound but never started (the
 * engine failed to open) and free it. Runs the loop until their close
 * callbacks ran. NULL ok. */
void rn_server_abandon(rn_server_t *srv);

/* Ports actually bound (useful with port 0). */
uint16_t rn_server_native_port(const rn_server_t *srv);
uint16_t rn_server_http_port(const rn_server_t *srv);

/* Route every complete HTTP request to fn(arg, ...) (rn_http.h) from now on.
 * fn NULL restores the built-in router. arg is borrowed and must outlive the
 * server. Call on the loop thread, typically right after rn_server_start and
 * before the loop runs. Requests already at a router are not affected. */
void rn_server_set_http_router(rn_server_t *srv, rn_http_router_fn fn, void *arg);

/* The built-in router (arg: the rn_server_t): GET /healthz → 200
 * {"status":"ok"}; GET /readyz → 200 {"status":"ready"}, or 503
 * {"status":"draining"} once shutdown began; anything else → 404
 * {"__type":"NotFoundException","message":...}. An application router may
 * delegate these paths to it. Answers before returning. */
void rn_server_http_builtin_router(void *arg, const rn_http_req_t *req, rn_http_reply_fn reply, void *ctx);

/* Called once, on the loop thread, when shutdown finished: every handle of
 * the server is closed and every reply was written. The loop keeps running
 * (the engine's handles are still open): the callback typically calls
 * uv_stop. It must not call rn_server_destroy itself. */
typedef void (*rn_server_done_cb)(rn_server_t *srv, void *arg);

/* Begin graceful shutdown: close both listeners, stop reading requests
 * (HTTP/2 connections get GOAWAY), rn_core_drain, and once rn_core_idle
 * holds, every outstanding request (native or HTTP) was answered and every
 * reply flushed, close every connection and call done. No timer is involved: the check runs after the loop's I/O each
 * iteration. Idempotent (later calls are ignored). */
void rn_server_shutdown(rn_server_t *srv, rn_server_done_cb done, void *arg);

/* True from rn_server_shutdown on (/readyz answers 503). */
int rn_server_draining(const rn_server_t *srv);

/* Free the server. Call after done ran and uv_run returned, or right after
 * a failed start never happened (NULL ok). Removes the port file it wrote. */
void rn_server_destroy(rn_server_t *srv);

/* Prometheus lines for the server's connections (an rn_http_metrics_fn:
 * arg is the rn_server_t): runnel_connections{protocol="native"|"http"},
 * runnel_connections_refused_total{port="native"|"http",reason="limit"|"fds"},
 * runnel_connections_backpressured{protocol=...} (connections whose
 * unwritten or reserved answers reach max_output_bytes_per_connection), and
 * the engine's fetch memory budget: runnel_fetch_memory_bytes,
 * runnel_fetch_memory_limit_bytes, runnel_fetch_memory_waiting,
 * runnel_fetch_memory_waits_total. */
size_t rn_server_metrics(void *arg, char *out, size_t cap);

#endif
