/*
 * peer.c — an outbound native-protocol connection (peer.h).
 *
 * A peer has at most one connection (conn_t) at a time. A connection that
 * fails is detached from its peer at once (conn->p = NULL, every call it
 * carried failed) and frees itself when its handle closed, so the peer can
 * open the next one, or be freed, without waiting.
 */
#include "peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rn_base.h"
#include "runnel/frame.h"

typedef struct call {
  uint64_t id;
  rn_peer_cb cb;
  void *arg;
  uint8_t *frame; /* not written yet (the connection is being made); NULL once handed to uv_write */
  size_t len;
  struct call *next;
} call_t;

typedef struct conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_getaddrinfo_t gai;
  rn_peer_t *p;   /* NULL once detached */
  bool connected;
  bool closing;
  bool resolving; /* gai in flight: it holds c */
  bool closed;    /* the handle closed; freed once not resolving either */
  uint8_t *rbuf;
  size_t rlen, rcap;
} conn_t;

typedef struct wreq {
  uv_write_t req;
  uint8_t *buf;
} wreq_t;

struct rn_peer {
  uv_loop_t *loop;
  uint32_t broker;
  char address[128];
  uint32_t max_frame;
  conn_t *conn;
  call_t *head, *tail; /* pending, in call order */
  uint64_t next_id;
};

static void conn_fail(conn_t *c);

rn_peer_t *rn_peer_new(uv_loop_t *loop, uint32_t broker_id, const char *address, uint32_t max_frame) {
  rn_peer_t *p = rn_xcalloc(1, sizeof *p);
  p->loop = loop;
  p->broker = broker_id;
  snprintf(p->address, sizeof p->address, "%s", address ? address : "");
  p->max_frame = max_frame ? max_frame : (64u << 20);
  p->next_id = 1;
  return p;
}

const char *rn_peer_address(const rn_peer_t *p) { return p->address; }
uint32_t rn_peer_broker(const rn_peer_t *p) { return p->broker; }

/* Complete every pending call with err (in call order). */
static void fail_calls(rn_peer_t *p, rn_err_t err) {
  call_t *c = p->head;
  p->head = p->tail = NULL;
  while (c) {
    call_t *nx = c->next;
    free(c->frame);
    c->cb(c->arg, err, NULL);
    free(c);
    c = nx;
  }
}

static void conn_free(conn_t *c) {
  free(c->rbuf);
  free(c);
}

static void on_conn_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  c->closed = true;
  if (!c->resolving) conn_free(c);
}

static void conn_close(conn_t *c) {
  if (c->closing) return;
  c->closing = true;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* The connection failed or closed: detach it and fail what it carried. */
static void conn_fail(conn_t *c) {
  rn_peer_t *p = c->p;
  c->p = NULL;
  conn_close(c);
  if (p && p->conn == c) {
    p->conn = NULL;
    fail_calls(p, RN_ECONNECTION);
  }
}

static void on_written(uv_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  conn_t *c = req->handle->data;
  free(w->buf);
  free(w);
  if (status && c->p) conn_fail(c);
}

static void write_frame(conn_t *c, uint8_t *buf, size_t len) {
  wreq_t *w = rn_xmalloc(sizeof *w);
  w->buf = buf;
  uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written)) {
    free(buf);
    free(w);
    conn_fail(c);
  }
}

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *out) {
  conn_t *c = h->data;
  if (want < 65536) want = 65536;
  if (c->rcap - c->rlen < want) {
    size_t nc = c->rcap ? c->rcap : 65536;
    while (nc - c->rlen < want) nc *= 2;
    c->rbuf = rn_xrealloc(c->rbuf, nc);
    c->rcap = nc;
  }
  *out = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void deliver(rn_peer_t *p, const Runnel__Response *resp) {
  call_t **pp = &p->head, *prev = NULL;
  for (call_t *c = p->head; c; prev = c, c = c->next) {
    if (c->id != resp->correlation_id) {
      pp = &c->next;
      continue;
    }
    *pp = c->next;
    if (p->tail == c) p->tail = prev;
    c->cb(c->arg, 0, resp);
    free(c->frame);
    free(c);
    return;
  }
  /* An answer to nothing: a call already failed; ignore it. */
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  conn_t *c = s->data;
  if (n < 0) {
    if (c->p) conn_fail(c);
    return;
  }
  c->rlen += (size_t)n;
  size_t at = 0;
  while (c->p) {
    rn_frame_t f;
    rn_err_t err = rn_frame_decode(c->rbuf + at, c->rlen - at, c->p->max_frame, &f, NULL);
    if (err == RN_EPARTIAL) break;
    if (err) {
      conn_fail(c);
      return;
    }
    Runnel__Response *resp = runnel__response__unpack(NULL, f.payload_len, f.payload);
    at += f.frame_len;
    if (!resp) {
      conn_fail(c);
      return;
    }
    deliver(c->p, resp);
    runnel__response__free_unpacked(resp, NULL);
  }
  if (at) {
    memmove(c->rbuf, c->rbuf + at, c->rlen - at);
    c->rlen -= at;
  }
}

static void on_connect(uv_connect_t *req, int status) {
  conn_t *c = req->data;
  if (!c->p || c->closing) return;
  if (status) {
    conn_fail(c);
    return;
  }
  c->connected = true;
  uv_tcp_nodelay(&c->tcp, 1);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) {
    conn_fail(c);
    return;
  }
  for (call_t *k = c->p->head; k && c->p; k = k->next) {
    if (!k->frame) continue;
    uint8_t *b = k->frame;
    k->frame = NULL;
    write_frame(c, b, k->len);
  }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  conn_t *c = req->data;
  c->resolving = false;
  if (c->closed) {
    if (res) uv_freeaddrinfo(res);
    conn_free(c);
    return;
  }
  if (!c->p || c->closing || status || !res) {
    if (res) uv_freeaddrinfo(res);
    if (c->p)
      conn_fail(c);
    else
      conn_close(c);
    return;
  }
  c->creq.data = c;
  int rc = uv_tcp_connect(&c->creq, &c->tcp, res->ai_addr, on_connect);
  uv_freeaddrinfo(res);
  if (rc) conn_fail(c);
}

static void conn_open(rn_peer_t *p) {
  conn_t *c = rn_xcalloc(1, sizeof *c);
  c->p = p;
  p->conn = c;
  uv_tcp_init(p->loop, &c->tcp);
  c->tcp.data = c;
  char host[128];
  snprintf(host, sizeof host, "%s", p->address);
  char *colon = strrchr(host, ':');
  if (!colon) {
    conn_fail(c);
    return;
  }
  *colon = '\0';
  const char *port = colon + 1;
  char *h = host;
  size_t hl = strlen(h);
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* [v6]:port */
    h[hl - 1] = '\0';
    h++;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  c->gai.data = c;
  c->resolving = true;
  if (uv_getaddrinfo(p->loop, &c->gai, on_resolved, h, port, &hints)) {
    c->resolving = false;
    conn_fail(c);
  }
}

void rn_peer_set_address(rn_peer_t *p, const char *address) {
  if (!address || strcmp(address, p->address) == 0) return;
  snprintf(p->address, sizeof p->address, "%s", address);
  if (p->conn) conn_fail(p->conn);
}

void rn_peer_call(rn_peer_t *p, Runnel__Request *req, rn_peer_cb cb, void *arg) {
  req->correlation_id = p->next_id++;
  size_t len = rn_frame_encoded_len(&req->base);
  uint8_t *buf = malloc(len);
  if (!buf || rn_frame_encode(&req->base, buf, len, &len)) {
    free(buf);
    cb(arg, RN_ENOMEM, NULL);
    return;
  }
  call_t *c = rn_xcalloc(1, sizeof *c);
  c->id = req->correlation_id;
  c->cb = cb;
  c->arg = arg;
  c->len = len;
  if (p->tail)
    p->tail->next = c;
  else
    p->head = c;
  p->tail = c;
  if (!p->conn) {
    c->frame = buf;
    conn_open(p); /* may fail at once: then c was failed too */
    return;
  }
  if (!p->conn->connected) {
    c->frame = buf; /* written by on_connect */
    return;
  }
  write_frame(p->conn, buf, len);
}

void rn_peer_close(rn_peer_t *p) {
  if (!p) return;
  conn_t *c = p->conn;
  p->conn = NULL;
  if (c) {
    c->p = NULL;
    conn_close(c);
  }
  fail_calls(p, RN_ECANCELED);
  free(p);
}
