/*
 * http.h — the contract between runneld's HTTP server (transport: HTTP/1.1,
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
 * the server drops the answer.
 */
#ifndef RN_BROKER_HTTP_H
#define RN_BROKER_HTTP_H

#include <stddef.h>
#include <stdint.h>

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

/* The application entry point. arg is the router's own state. */
typedef void (*rn_http_router_fn)(void *arg, const rn_http_req_t *req, rn_http_reply_fn reply, void *ctx);

#endif
