/*
 * http_min.c — a deliberately minimal HTTP/1.1 responder on http_listen,
 * until the Kinesis HTTP API issue brings the real HTTP server (HTTP/1.1,
 * h2c, TLS). It answers exactly:
 *   GET /healthz → 200 {"status":"ok"}
 *   GET /readyz  → 200 {"status":"ready"} while the engine is open and the
 *                  broker not draining, else 503 {"status":"draining"}
 *   anything else → 404 JSON error (400 for a malformed request line,
 *                  431 for a head over 8 KiB, 408 after 5 s without one).
 * One request per connection (Connection: close); request bodies are not
 * read.
 *
 * Owns each rn__http_t: its socket, its timer (first the 5 s head timeout,
 * then the same bound on writing the response) and the response text.
 * Invariant: a connection is freed only by the server's run_deferred (or
 * rn_server_destroy) after both of its handles closed.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

#define RN__HTTP_TIMEOUT_MS 5000

static void on_handle_closed(uv_handle_t *h) {
  rn__http_t *hc = h->data;
  rn_server_t *srv = hc->srv;
  assert(hc->handles_open > 0);
  hc->handles_open--;
  if (hc->handles_open == 0) {
    hc->dead_next = srv->http_dead;
    srv->http_dead = hc;
  }
  rn__server_handle_closed(srv);
}

void rn__http_close(rn__http_t *hc) {
  if (hc->closing) return;
  rn_server_t *srv = hc->srv;
  hc->closing = true;
  if (hc->prev != NULL)
    hc->prev->next = hc->next;
  else if (srv->https == hc)
    srv->https = hc->next;
  if (hc->next != NULL) hc->next->prev = hc->prev;
  hc->prev = hc->next = NULL;
  if (hc->counted) {
    srv->nhttp--;
    hc->counted = false;
  }
  uv_close((uv_handle_t *)&hc->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&hc->timer, on_handle_closed);
}

void rn__http_free(rn__http_t *hc) {
  if (hc == NULL) return;
  free(hc->resp);
  free(hc);
}

static void on_written(uv_write_t *req, int status) {
  (void)status;
  rn__http_t *hc = req->data;
  rn__http_close(hc); /* Connection: close, whether or not the write worked */
}

static void on_timeout(uv_timer_t *t);

static void respond(rn__http_t *hc, int status, const char *reason, const char *body) {
  if (hc->responded || hc->closing) return;
  hc->responded = true;
  uv_read_stop((uv_stream_t *)&hc->tcp);
  size_t blen = strlen(body);
  size_t cap = blen + 256;
  hc->resp = malloc(cap);
  if (hc->resp == NULL) {
    rn__http_close(hc);
    return;
  }
  int n = snprintf(hc->resp, cap,
                   "HTTP/1.1 %d %s\r\n"
                   "Content-Type: application/json\r\n"
                   "Content-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n"
                   "Connection: close\r\n"
                   "\r\n"
                   "%s",
                   status, reason, blen, body);
  assert(n > 0 && (size_t)n < cap);
  /* The same timer now bounds the write: a peer that never reads is dropped. */
  uv_timer_start(&hc->timer, on_timeout, RN__HTTP_TIMEOUT_MS, 0);
  hc->wreq.data = hc;
  uv_buf_t b = uv_buf_init(hc->resp, (unsigned)n);
  if (uv_write(&hc->wreq, (uv_stream_t *)&hc->tcp, &b, 1, on_written) != 0) rn__http_close(hc);
}

static void on_timeout(uv_timer_t *t) {
  rn__http_t *hc = t->data;
  if (hc->responded) {
    rn__http_close(hc);
    return;
  }
  respond(hc, 408, "Request Timeout",
          "{\"error\":\"RequestTimeout\",\"message\":\"no complete request head within 5 s\"}");
}

/* Parse the request line of the complete head and answer it. */
static void handle_head(rn__http_t *hc) {
  char *eol = memchr(hc->head, '\r', hc->len);
  char *sp1 = eol ? memchr(hc->head, ' ', (size_t)(eol - hc->head)) : NULL;
  char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
  if (eol == NULL || sp1 == NULL || sp2 == NULL || (size_t)(eol - sp2 - 1) < 8 ||
      strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
    respond(hc, 400, "Bad Request", "{\"error\":\"BadRequest\",\"message\":\"malformed HTTP/1.1 request line\"}");
    return;
  }
  size_t mlen = (size_t)(sp1 - hc->head);
  const char *target = sp1 + 1;
  size_t tlen = (size_t)(sp2 - target);
  const char *q = memchr(target, '?', tlen);
  if (q != NULL) tlen = (size_t)(q - target);
  bool get = mlen == 3 && memcmp(hc->head, "GET", 3) == 0;
  if (get && tlen == 8 && memcmp(target, "/healthz", 8) == 0) {
    respond(hc, 200, "OK", "{\"status\":\"ok\"}");
  } else if (get && tlen == 7 && memcmp(target, "/readyz", 7) == 0) {
    if (rn_server_draining(hc->srv))
      respond(hc, 503, "Service Unavailable", "{\"status\":\"draining\"}");
    else
      respond(hc, 200, "OK", "{\"status\":\"ready\"}");
  } else {
    respond(hc, 404, "Not Found",
            "{\"error\":\"NotFound\",\"message\":\"no such endpoint (this broker serves GET /healthz and GET "
            "/readyz)\"}");
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  rn__http_t *hc = h->data;
  *buf = uv_buf_init(hc->head + hc->len, (unsigned)(sizeof hc->head - hc->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  rn__http_t *hc = s->data;
  if (hc->closing || hc->responded) return;
  if (nread < 0) {
    rn__http_close(hc); /* EOF or error before a complete head */
    return;
  }
  if (nread == 0) return;
  size_t before = hc->len;
  hc->len += (size_t)nread;
  /* Search only where a new "\r\n\r\n" can be (3 bytes of overlap). */
  size_t from = before > 3 ? before - 3 : 0;
  if (memmem(hc->head + from, hc->len - from, "\r\n\r\n", 4) != NULL) {
    handle_head(hc);
  } else if (hc->len == sizeof hc->head) {
    respond(hc, 431, "Request Header Fields Too Large",
            "{\"error\":\"RequestHeaderFieldsTooLarge\",\"message\":\"request head over 8 KiB\"}");
  }
}

void rn__http_accept(rn_server_t *srv) {
  rn__http_t *hc = calloc(1, sizeof *hc);
  if (hc == NULL) {
    rn__logf(RN_LOG_ERROR, "http", "out of memory accepting a connection");
    return;
  }
  hc->srv = srv;
  if (uv_tcp_init(srv->loop, &hc->tcp) != 0) {
    free(hc);
    return;
  }
  rn__server_count_handle(srv);
  uv_timer_init(srv->loop, &hc->timer);
  rn__server_count_handle(srv);
  hc->handles_open = 2;
  hc->tcp.data = hc;
  hc->timer.data = hc;
  int rc = uv_accept((uv_stream_t *)&srv->http, (uv_stream_t *)&hc->tcp);
  if (rc != 0 || srv->nhttp >= srv->cfg->max_connections) {
    if (rc != 0) rn__logf(RN_LOG_WARN, "http", "accept failed: %s", uv_strerror(rc));
    else rn__logf(RN_LOG_WARN, "http", "connection limit (%u) reached; refusing one", (unsigned)srv->cfg->max_connections);
    hc->closing = true;
    uv_close((uv_handle_t *)&hc->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&hc->timer, on_handle_closed);
    return;
  }
  hc->counted = true;
  srv->nhttp++;
  hc->next = srv->https;
  if (srv->https != NULL) srv->https->prev = hc;
  srv->https = hc;
  uv_timer_start(&hc->timer, on_timeout, RN__HTTP_TIMEOUT_MS, 0);
  if (uv_read_start((uv_stream_t *)&hc->tcp, on_alloc, on_read) != 0) rn__http_close(hc);
}
