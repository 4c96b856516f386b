/*
 * rn_http.h — the contract between runneld's HTTP server (transport: HTTP/1.1,
 * h2c with prior knowledge, TLS with ALPN h2/http1.1; broker/http_*.c) and
 * the HTTP applications behind it (the Kinesis JSON API, REST ingest,
 * /metrics, /healthz, /readyz; broker/apps/http_routes.c and friends).
 *
 * The server buffers each request completely (head and body, within the
 * configured limits, gzip bodies NOT decoded: that is the application's
 * choice) and calls the router once per request on the loop thread. The
 * router answers exactly once through reply(), at once or later (a produce
 * waits for durability). Everything in rn_http_req_t is borrowed and valid
 * only until reply() is called; reply() copies what it needs. If the
 * connection or stream went away meanwhile, reply() still must be called;
 * the server drops the answer. A large answer built in its own malloc'd
 * buffer can be handed over instead of copied: rn_http_reply_owned.
 */
#ifndef RN_HTTP_H
#define RN_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct rn_http_header {
  const char *name; /* lowercase (HTTP/2 style), NUL-terminated */
  const char *value;
} rn_http_header_t;

typedef struct rn_http_req {
  const char *method;    /* "GET", "POST", "PUT", ... */
  const char *path;      /* decoded-as-sent path, without the query */
  const char *query;     /* after '?', "" when none */
  const char *authority; /* Host header (HTTP/1.1) or :authority (HTTP/2) */
  const rn_http_header_t *headers; /* every header, lowercase names, in order */
  size_t nheaders;
  const uint8_t *body;
  size_t body_len;
  int http_version;      /* 11 or 20 */
  int tls;               /* 1 over TLS */
  const char *peer;      /* "ip:port" of the client */
  /* Set by the transport (NULL elsewhere, e.g. in tests): see rn_http_reserve. */
  void (*reserve)(void *ctx, size_t bytes);
  /* Set by the transport (NULL elsewhere): see rn_http_reply_owned. */
  void (*reply_owned)(void *ctx, int status, const struct rn_http_header *headers, size_t nheaders, uint8_t *body,
                      size_t body_len);
} rn_http_req_t;

/* Optional, while routing (before reply): the answer to req may be up to
 * bytes large (e.g. a GetRecords). The transport counts that against the
 * connection's output budget (max_output_bytes_per_connection) until the
 * reply, so it parses no further pipelined request (HTTP/1.1) and routes no
 * further stream (HTTP/2) of that connection while the answers it may have
 * to hold exceed the budget. A later call replaces the earlier amount. */
static inline void rn_http_reserve(const rn_http_req_t *req, void *ctx, size_t bytes) {
  if (req != NULL && req->reserve != NULL) req->reserve(ctx, bytes);
}

/* Find a header by lowercase name; NULL when absent. */
const char *rn_http_header(const rn_http_req_t *req, const char *lname);

/* Answer a request. headers may be NULL/0; content-length, date and
 * connection handling are added by the server. body is copied. */
typedef void (*rn_http_reply_fn)(void *ctx, int status, const rn_http_header_t *headers, size_t nheaders,
                                 const uint8_t *body, size_t body_len);

/* reply(), taking ownership of body (malloc'd; NULL when body_len is 0)
 * instead of copying it: the transport writes from that buffer and frees it
 * when done with it (HTTP/1.1: once written; HTTP/2: once the last DATA
 * frame is out; also when the connection went away). Ownership passes in
 * every case, an out-of-memory answer included: the caller must not touch
 * body after the call. Where the transport offers no owned reply (req has
 * no reply_owned: tests, other hosts) this is reply() and free(body). As
 * with reply(), req and everything in it end with this call. */
static inline void rn_http_reply_owned(const rn_http_req_t *req, rn_http_reply_fn reply, void *ctx, int status,
                                       const rn_http_header_t *headers, size_t nheaders, uint8_t *body,
                                       size_t body_len) {
  if (req != NULL && req->reply_owned != NULL) {
    req->reply_owned(ctx, status, headers, nheaders, body, body_len);
    return;
  }
  reply(ctx, status, headers, nheaders, body != NULL ? body : (const uint8_t *)"", body != NULL ? body_len : 0);
  free(body);
}

/* The application entry point. arg is the router's own state. */
typedef void (*rn_http_router_fn)(void *arg, const rn_http_req_t *req, rn_http_reply_fn reply, void *ctx);

/* ---- the transport (broker/http) ------------------------------------------------
 *
 * The HTTP transport is a protocol on the connection base (rn_net.h):
 * rn_http_new → rn_net_listen with rn_http_ops() and the rn_http_t as
 * proto_arg → rn_http_set_router → ... → (the net destroyed) →
 * rn_http_free. Loop thread only. net is borrowed and must outlive it.
 */
#include "runnel/error.h"

/* Declared, not included: the route interface above is all the HTTP
 * applications' pure codecs need (they do not see libuv or the config). */
typedef struct rn_net rn_net_t;
typedef struct rn_net_listener rn_net_listener_t;
typedef struct rn_net_proto_ops rn_net_proto_ops_t;
typedef struct rn_net_tls rn_net_tls_t;

typedef struct rn_http rn_http_t;

/* Connections a listener admits past http_max_connections to answer one
 * request: /healthz, /readyz or /metrics as usual, anything else 503. */
#define RN_HTTP_OVER_LIMIT_EXTRA 16u

/* The transport's limits. The names are runneld's config keys (runneld
 * fills them from its config, docs/configuration.md). */
typedef struct rn_http_opts {
  const char *http_tls_cert, *http_tls_key; /* PEM paths; "" or NULL: cleartext. Read in rn_http_new only */
  uint32_t http_max_header_bytes, http_max_body_bytes;
  uint32_t http_header_timeout_ms, http_body_timeout_ms, http_idle_timeout_ms;
  uint32_t http_max_connections; /* the listener's limit, named in the answer past it */
  uint32_t drain_timeout_ms;     /* while draining, a stalled writer's limit if shorter; 0 = none */
  uint32_t max_inflight_per_connection;
  uint64_t max_output_bytes_per_connection;
} rn_http_opts_t;

/* Set up the transport (opts is copied; its strings are not kept): TLS
 * context when configured (reads the PEM files: startup only), nghttp2
 * callbacks, the request-id seed. On failure why holds one line and *out is
 * NULL. */
rn_err_t rn_http_new(rn_net_t *net, const rn_http_opts_t *opts, rn_http_t **out, char *why, size_t whylen);

/* The operations to listen with (static). */
const rn_net_proto_ops_t *rn_http_ops(void);

/* Route every complete request to fn(arg, ...) from now on (arg
 * borrowed); fn NULL, as after rn_http_new: rn_http_builtin_router.
 * Requests already at a router are not affected. */
void rn_http_set_router(rn_http_t *hs, rn_http_router_fn fn, void *arg);

/* The TLS context to listen with (NULL: cleartext; http_tls_cert unset).
 * Owned by hs. */
rn_net_tls_t *rn_http_tls(const rn_http_t *hs);

/* Requests at the router, all connections. */
uint64_t rn_http_routing(const rn_http_t *hs);

/* Open connections of lst (an HTTP listener) whose unwritten and held
 * answers reach max_output_bytes_per_connection. */
unsigned rn_http_backpressured(const rn_net_listener_t *lst);

/* The transport's own answers (arg: the rn_net_t, for "draining"): GET
 * /healthz → 200 {"status":"ok"}; GET /readyz → 200 {"status":"ready"}, or
 * 503 {"status":"draining"} once shutdown began; anything else → 404
 * {"__type":"NotFoundException",...}. Answers before returning. */
void rn_http_builtin_router(void *arg, const rn_http_req_t *req, rn_http_reply_fn reply, void *ctx);

/* Free the transport. Every connection must be freed already. NULL ok. */
void rn_http_free(rn_http_t *hs);

#endif
