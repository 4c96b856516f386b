/*
 * http_server.c — runneld's HTTP transport: the connections of the HTTP
 * port and the requests on them, up to the router (rn_http.h). HTTP/1.1
 * (http_h1.c) and HTTP/2 with prior knowledge or ALPN (http_h2.c) plug into
 * the connection defined here through rn_http_proto_ops_t; TLS runs below,
 * in the connection base (broker/net/tls.c), which hands this file
 * plaintext.
 *
 * Owns the transport state (rn_http_t), the protocol part of every
 * connection (input and output buffers, the nghttp2 session; the socket,
 * timer and TLS session are the base's) and every request
 * (head, body, response) until its response was handed to the output.
 *
 * A connection's life: accepted by the connection base (with fewer than
 * fd_reserve descriptors left, or past http_max_connections +
 * RN_HTTP_OVER_LIMIT_EXTRA: closed at once; past http_max_connections:
 * base.extra, one request, health endpoints only, else 503) → the first bytes decide the protocol (the HTTP/2 preface, else HTTP/1.1;
 * under TLS the ALPN choice decides, the preface when there is none) →
 * requests are parsed, each complete one goes to the router → answers come
 * back through reply() at any time; the protocol puts them on the output
 * (HTTP/1.1 strictly in request order) → the deferred work (hconn_work,
 * step 3 of the loop order in broker/net/net.c) writes each connection's
 * output with one write per iteration → a
 * closing response, an idle timeout, a protocol error or shutdown "finish"
 * the connection: flush, TLS close_notify, FIN, then read and drop until the
 * peer's EOF (at most RN__HTTP_LINGER_MS) so the last response is not lost
 * to a reset → close.
 *
 * Invariants:
 *   - Nothing is freed inside its own callback: closed connections go to
 *     the connection base's dead list, freed in step 4.
 *   - Every request handed to the router is answered exactly once through
 *     on_reply (body copied) or on_reply_owned (body taken: the HTTP/1.1
 *     output writes from it, HTTP/2's data provider reads from it, freed
 *     with the request or its output chunk); a request whose connection
 *     closed meanwhile is orphaned and freed there, with a taken body.
 *   - One timer per connection; its deadline is computed from the
 *     connection's state (head, body, idle, stalled writes, linger), never
 *     from a sleep, and re-armed lazily.
 *   - Back-pressure: while a connection has max_output_bytes_per_connection
 *     bytes unwritten or held (answers not yet in the output, and what
 *     requests at the router reserved through rn_http_reserve), or
 *     (HTTP/1.1) max_inflight_per_connection requests queued, it is not
 *     read, no further HTTP/1.1 request is parsed and no further HTTP/2
 *     stream is routed (it waits, complete, as "deferred").
 */
#include <assert.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "http_int.h"

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN (sizeof h2_preface - 1)

/* ---- small helpers ------------------------------------------------------------ */

uint64_t rn__hconn_now(const rn__hconn_t *conn) { return rn_conn_now(&conn->base); }

static uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/* A version-4-shaped UUID, unique per process run: both halves are
 * bijections of a counter under random per-run keys. */
static void make_rid(rn_http_t *hs, char out[40]) {
  uint64_t n = ++hs->rid_count;
  uint64_t hi = mix64(hs->rid_seed[0] + n), lo = mix64(hs->rid_seed[1] ^ (n * 0xD6E8FEB86659FD93ull));
  hi = (hi & ~0xF000ull) | 0x4000ull;
  lo = (lo & ~(3ull << 62)) | (2ull << 62);
  snprintf(out, 40, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(hi >> 32), (unsigned)(hi >> 16) & 0xFFFFu,
           (unsigned)hi & 0xFFFFu, (unsigned)(lo >> 48), (unsigned long long)(lo & 0xFFFFFFFFFFFFull));
}

const char *rn__http_date(rn_http_t *hs) {
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t now = time(NULL);
  if (now != hs->date_sec || hs->date[0] == '\0') {
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(hs->date, sizeof hs->date, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    hs->date_sec = now;
  }
  return hs->date;
}

const char *rn__http_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 411: return "Length Required";
  case 413: return "Payload Too Large";
  case 415: return "Unsupported Media Type";
  case 417: return "Expectation Failed";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  }
  return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
}

bool rn__http_status_has_body(int status) { return status >= 200 && status != 204 && status != 304; }

/* ---- references, close, free ---------------------------------------------------- */

static void shared_unref(rn__hshared_t *sh) {
  if (sh == NULL || --sh->refs > 0) return;
  free(sh->data);
  free(sh);
}

static void free_bufs(rn__hbuf_t *b) {
  while (b != NULL) {
    rn__hbuf_t *next = b->next;
    if (b->shared != NULL)
      shared_unref(b->shared);
    else
      free(b->data);
    free(b);
    b = next;
  }
}

void rn__hconn_schedule(rn__hconn_t *conn) { rn_conn_schedule(&conn->base); }

void rn__hconn_close(rn__hconn_t *conn, const char *why) { rn_conn_close(&conn->base, why); }

/* ops->on_close: the base is closing the connection. */
static void http_on_close(rn_conn_t *base, const char *why) {
  rn__hconn_t *conn = (rn__hconn_t *)base;
  rn__hlogf(conn, RN_LVL_DEBUG, "#%llu %s closed: %s (%llu requests)", (unsigned long long)conn->base.id,
            conn->base.peer, why, (unsigned long long)conn->requests);
  /* Requests: those at the router are orphaned (freed by their reply);
   * the others go now. The nghttp2 session stays until the free (its
   * callbacks check closing first). */
  rn__hreq_t *req = conn->reqs;
  while (req != NULL) {
    rn__hreq_t *next = req->next;
    req->prev = req->next = NULL;
    if (req->tx == RN__TX_ROUTING)
      req->tx = RN__TX_ORPHAN;
    else
      rn__hreq_free(req);
    req = next;
  }
  if (conn->h1cur != NULL && !conn->h1cur->linked) rn__hreq_free(conn->h1cur);
  conn->h1cur = NULL;
  conn->reqs = conn->reqs_tail = NULL;
  conn->nreqs = 0;
  conn->answered = 0;
  free_bufs(conn->out_head);
  conn->out_head = conn->out_tail = NULL;
  conn->out_bytes = 0;
}

/* ops->on_free: the connection is dead. */
static void http_on_free(rn_conn_t *base) {
  rn__hconn_t *conn = (rn__hconn_t *)base;
  free(conn->in);
  free_bufs(conn->out_head);
  if (conn->h2 != NULL) nghttp2_session_del(conn->h2);
}

/* ---- output ---------------------------------------------------------------------- */

typedef struct hwrite {
  rn_conn_wreq_t req; /* first */
  rn__hbuf_t *bufs;
} hwrite_t;

static void append_buf(rn__hconn_t *conn, rn__hbuf_t *b) {
  b->next = NULL;
  if (conn->out_tail != NULL)
    conn->out_tail->next = b;
  else
    conn->out_head = b;
  conn->out_tail = b;
}

/* Append len bytes to the output, in the tail buffer when it has room,
 * else in a new one. On out of memory the connection is closed. */
static void out_append(rn__hconn_t *conn, const void *data, size_t len) {
  rn__hbuf_t *t = conn->out_tail;
  if (t == NULL || t->cap - t->len < len) {
    /* After a body chunk (HTTP/2 DATA without a copy) what follows is
     * usually the next frame's 9-byte header, then another body chunk. */
    size_t room = t != NULL && t->shared != NULL ? 256 : 16384;
    size_t cap = len > room ? len : room;
    t = malloc(sizeof *t);
    uint8_t *buf = t != NULL ? malloc(cap) : NULL;
    if (buf == NULL) {
      free(t);
      rn__hlogf(conn, RN_LVL_ERROR, "#%llu %s: out of memory for output; closing", (unsigned long long)conn->base.id,
               conn->base.peer);
      rn__hconn_close(conn, "out of memory");
      return;
    }
    t->data = buf;
    t->len = 0;
    t->cap = cap;
    t->shared = NULL;
    append_buf(conn, t);
  }
  memcpy(t->data + t->len, data, len);
  t->len += len;
  conn->out_bytes += len;
}

void rn__hconn_send(rn__hconn_t *conn, const void *data, size_t len) {
  if (rn_conn_closing(&conn->base) || (conn->end >= RN__HE_FIN_SENT) || len == 0) return;
  out_append(conn, data, len);
}

void rn__hconn_send_owned(rn__hconn_t *conn, uint8_t *buf, size_t len) {
  if (rn_conn_closing(&conn->base) || (conn->end >= RN__HE_FIN_SENT) || len == 0) {
    free(buf);
    return;
  }
  rn__hbuf_t *b = malloc(sizeof *b);
  if (b == NULL) {
    free(buf);
    rn__hconn_close(conn, "out of memory");
    return;
  }
  b->data = buf;
  b->len = b->cap = len; /* full: later bytes go to a new chunk */
  b->shared = NULL;
  append_buf(conn, b);
  conn->out_bytes += len;
}

void rn__hconn_send_body(rn__hconn_t *conn, rn__hreq_t *req, size_t off, size_t len) {
  if (rn_conn_closing(&conn->base) || (conn->end >= RN__HE_FIN_SENT) || len == 0) return;
  assert(req->rbody != NULL && off + len <= req->rbody_len);
  if (req->rshared == NULL) {
    rn__hshared_t *sh = malloc(sizeof *sh);
    if (sh == NULL) {
      rn__hconn_close(conn, "out of memory");
      return;
    }
    sh->refs = 1; /* the request's */
    sh->data = req->rbody;
    req->rshared = sh;
  }
  rn__hbuf_t *b = malloc(sizeof *b);
  if (b == NULL) {
    rn__hconn_close(conn, "out of memory");
    return;
  }
  req->rshared->refs++;
  b->shared = req->rshared;
  b->data = req->rbody + off;
  b->len = b->cap = len; /* full: later bytes go to a new chunk */
  append_buf(conn, b);
  conn->out_bytes += len;
}

size_t rn__hconn_budget_used(const rn__hconn_t *conn) { return conn->out_bytes + conn->base.writing + conn->held; }

bool rn__hconn_budget_ok(const rn__hconn_t *conn) {
  return rn__hconn_budget_used(conn) < conn->hs->cfg->max_output_bytes_per_connection;
}

bool rn__hconn_sending(const rn__hconn_t *conn) {
  return conn->out_bytes > 0 || conn->base.writes > 0 || conn->answered > 0;
}


static void on_write(rn_conn_t *base, rn_conn_wreq_t *req, int status) {
  hwrite_t *w = (hwrite_t *)req;
  rn__hconn_t *conn = (rn__hconn_t *)base;
  free_bufs(w->bufs);
  free(w);
  if (status == 0) {
    conn->last_write = rn__hconn_now(conn);
    rn__hconn_schedule(conn); /* may resume reading, or finish */
  } else if (status != UV_ECANCELED) {
    rn__hconn_close(conn, uv_strerror(status));
  }
}

/* Hand the whole output to one write; last: it ends the stream (under TLS
 * close_notify goes in the same write, or alone when there is no output). */
static void flush(rn__hconn_t *conn, bool last) {
  if (rn_conn_closing(&conn->base)) return;
  if (conn->out_head == NULL) {
    if (last) rn_conn_tls_close_notify(&conn->base);
    return;
  }
  hwrite_t *w = malloc(sizeof *w);
  if (w == NULL) {
    rn__hconn_close(conn, "out of memory");
    return;
  }
  size_t n = 0;
  for (rn__hbuf_t *b = conn->out_head; b != NULL; b = b->next) n++;
  uv_buf_t small[16], *v = n <= 16 ? small : malloc(n * sizeof *v);
  if (v == NULL) {
    free(w);
    rn__hconn_close(conn, "out of memory");
    return;
  }
  size_t i = 0;
  for (rn__hbuf_t *b = conn->out_head; b != NULL; b = b->next) v[i++] = uv_buf_init((char *)b->data, (unsigned)b->len);
  w->bufs = conn->out_head;
  size_t bytes = conn->out_bytes;
  conn->out_head = conn->out_tail = NULL;
  conn->out_bytes = 0;
  int rc = last ? rn_conn_write_last(&conn->base, &w->req, v, (unsigned)n, bytes, on_write)
                : rn_conn_write(&conn->base, &w->req, v, (unsigned)n, bytes, on_write);
  if (v != small) free(v);
  if (rc != 0) {
    free_bufs(w->bufs);
    free(w);
    rn__hconn_close(conn, uv_strerror(rc));
  }
}

/* ---- input ----------------------------------------------------------------------- */

static uint8_t *in_reserve(rn__hconn_t *conn, size_t n) {
  if (conn->in_cap - conn->in_len >= n) return conn->in + conn->in_len;
  size_t cap = conn->in_cap ? conn->in_cap * 2 : 16384;
  while (cap - conn->in_len < n) cap *= 2;
  uint8_t *p = realloc(conn->in, cap);
  if (p == NULL) return NULL;
  conn->in = p;
  conn->in_cap = cap;
  return p + conn->in_len;
}

/* Plaintext input: append. Returns false on out of memory. */
static bool in_append(rn__hconn_t *conn, const uint8_t *data, size_t len) {
  uint8_t *p = in_reserve(conn, len);
  if (p == NULL) return false;
  memcpy(p, data, len);
  conn->in_len += len;
  return true;
}

/* The one place the HTTP version of a connection is decided: under TLS
 * the ALPN choice (h2, http/1.1) as soon as the handshake is done; without
 * one (cleartext, or TLS without ALPN) the first bytes: the HTTP/2 client
 * preface (h2c with prior knowledge), else HTTP/1.1. Returns false while
 * undecided (wait for more bytes) or when the connection was closed. */
static bool choose_protocol(rn__hconn_t *conn) {
  if (conn->pops != NULL) return true;
  if (rn_conn_tls(&conn->base) && !rn_conn_tls_ready(&conn->base)) return false;
  const rn_http_proto_ops_t *ops = NULL;
  size_t alen;
  const unsigned char *alpn = rn_conn_alpn(&conn->base, &alen);
  if (alen == 2 && memcmp(alpn, "h2", 2) == 0) {
    ops = &rn__h2_ops;
  } else if (alen == 8 && memcmp(alpn, "http/1.1", 8) == 0) {
    ops = &rn__h1_ops;
  } else {
    if (conn->in_len == 0) return false;
    size_t n = conn->in_len < H2_PREFACE_LEN ? conn->in_len : H2_PREFACE_LEN;
    if (memcmp(conn->in, h2_preface, n) != 0)
      ops = &rn__h1_ops;
    else if (n == H2_PREFACE_LEN)
      ops = &rn__h2_ops;
    else
      return false; /* a prefix of the preface: wait for more */
  }
  conn->pops = ops;
  if (!ops->start(conn)) {
    char why[48];
    snprintf(why, sizeof why, "cannot start %s", ops->name);
    rn__hconn_close(conn, why); /* why is used before this returns */
    return false;
  }
  return true;
}

/* Decide the protocol, then let it consume the input. */
static void process_input(rn__hconn_t *conn) {
  if (rn_conn_closing(&conn->base) || (conn->end == RN__HE_LINGER) || (conn->end >= RN__HE_FINISH)) return;
  if (!choose_protocol(conn)) return;
  conn->pops->input(conn);
  if (!rn_conn_closing(&conn->base) && conn->in_len == 0 && conn->in != NULL) {
    free(conn->in); /* idle connections keep no input buffer */
    conn->in = NULL;
    conn->in_cap = 0;
  }
}

static void on_alloc(rn_conn_t *base, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  rn__hconn_t *conn = (rn__hconn_t *)base;
  /* One shared buffer: libuv calls alloc and read back to back for one
   * stream, and on_read consumes (copies) it before returning. */
  *buf = uv_buf_init((char *)conn->hs->rbuf, (unsigned)sizeof conn->hs->rbuf);
}

static void update_reading(rn__hconn_t *conn) {
  if (rn_conn_closing(&conn->base)) return;
  const rn_http_opts_t *cfg = conn->hs->cfg;
  bool want;
  if ((conn->end == RN__HE_LINGER))
    want = true;
  else if (conn->eof || (conn->end >= RN__HE_FINISH))
    want = false;
  else if (conn->out_bytes + conn->base.writing >= cfg->max_output_bytes_per_connection)
    want = false; /* HTTP/2 keeps reading past held answers: the client's WINDOW_UPDATEs drain them */
  else
    want = conn->pops == NULL || conn->pops->may_read(conn);
  int rc = rn_conn_read(&conn->base, want);
  if (rc != 0) rn__hconn_close(conn, uv_strerror(rc));
}

/* ---- timers ------------------------------------------------------------------------ */

enum { DL_NONE, DL_FIRST, DL_HEAD, DL_BODY, DL_IDLE, DL_STALL, DL_LINGER };

/* The earliest deadline that applies to conn now, and what it is for. */
static uint64_t deadline(const rn__hconn_t *conn, int *kind) {
  const rn_http_opts_t *cfg = conn->hs->cfg;
  uint64_t best = UINT64_MAX;
  *kind = DL_NONE;
#define CONSIDER(t, k)         \
  do {                         \
    uint64_t t_ = (t);         \
    if (t_ < best) {           \
      best = t_;               \
      *kind = (k);             \
    }                          \
  } while (0)
  if ((conn->end == RN__HE_LINGER)) {
    CONSIDER(conn->linger_until, DL_LINGER);
    return best;
  }
  bool sending = rn__hconn_sending(conn);
  if (sending) {
    uint64_t lim = cfg->http_idle_timeout_ms;
    if (rn_net_draining(conn->hs->net) && cfg->drain_timeout_ms > 0 && (lim == 0 || cfg->drain_timeout_ms < lim))
      lim = cfg->drain_timeout_ms;
    if (lim > 0) CONSIDER(conn->last_write + lim, DL_STALL);
  }
  if ((conn->end >= RN__HE_FINISH) || conn->eof) return best;
  bool idle = !sending && conn->nreqs == 0 && conn->routing == 0 && cfg->http_idle_timeout_ms > 0;
  /* A connection must begin its first request within the head timeout of
   * the accept (TLS handshake included), whatever the protocol. */
  if (conn->pops == NULL) { /* undecided: the first bytes are a head */
    CONSIDER(conn->accepted + cfg->http_header_timeout_ms, DL_HEAD);
    return best;
  }
  if (conn->begun == 0) {
    CONSIDER(conn->accepted + cfg->http_header_timeout_ms, DL_FIRST);
    return best;
  }
  uint64_t since = 0;
  switch (conn->pops->receiving(conn, &since)) {
  case RN__RX_HEAD: CONSIDER(since + cfg->http_header_timeout_ms, DL_HEAD); break;
  case RN__RX_BODY: CONSIDER(since + cfg->http_body_timeout_ms, DL_BODY); break;
  case RN__RX_NONE:
    if (idle) CONSIDER(conn->last_active + cfg->http_idle_timeout_ms, DL_IDLE);
    break;
  }
#undef CONSIDER
  return best;
}

static void on_timer(uv_timer_t *t);

static void arm(rn__hconn_t *conn) {
  if (rn_conn_closing(&conn->base)) return;
  int kind;
  uint64_t dl = deadline(conn, &kind);
  if (dl == UINT64_MAX) return; /* a running timer finds nothing due and stops */
  if (uv_is_active((uv_handle_t *)&conn->base.timer) && conn->timer_due <= dl) return;
  uint64_t now = rn__hconn_now(conn);
  uv_timer_start(&conn->base.timer, on_timer, dl > now ? dl - now : 0, 0);
  conn->timer_due = dl;
}

static void on_timer(uv_timer_t *t) {
  rn__hconn_t *conn = t->data;
  if (rn_conn_closing(&conn->base)) return;
  int kind;
  uint64_t dl = deadline(conn, &kind);
  if (dl == UINT64_MAX) return;
  uint64_t now = rn__hconn_now(conn);
  if (now < dl) {
    uv_timer_start(t, on_timer, dl - now, 0);
    conn->timer_due = dl;
    return;
  }
  switch (kind) {
  case DL_LINGER: rn__hconn_close(conn, "closed (linger over)"); return;
  case DL_STALL:
    rn__hlogf(conn, RN_LVL_INFO, "#%llu %s: responses not read for %llu ms; closing", (unsigned long long)conn->base.id,
             conn->base.peer, (unsigned long long)(now - conn->last_write));
    rn__hconn_close(conn, "write stalled");
    return;
  case DL_FIRST:
    rn__hlogf(conn, RN_LVL_DEBUG, "#%llu %s: no request within %u ms; closing", (unsigned long long)conn->base.id,
             conn->base.peer, (unsigned)conn->hs->cfg->http_header_timeout_ms);
    conn->pops->idle(conn); /* DL_FIRST only once a protocol is chosen */
    break;
  case DL_HEAD:
  case DL_BODY:
    rn__hlogf(conn, RN_LVL_DEBUG, "#%llu %s: request %s timed out", (unsigned long long)conn->base.id, conn->base.peer,
             kind == DL_HEAD ? "head" : "body");
    if (conn->pops == NULL)
      rn__hconn_finish(conn); /* no request begun (or no TLS session): nothing to answer */
    else
      conn->pops->timeout(conn);
    break;
  case DL_IDLE:
    rn__hlogf(conn, RN_LVL_DEBUG, "#%llu %s: idle; closing", (unsigned long long)conn->base.id, conn->base.peer);
    if (conn->pops != NULL)
      conn->pops->idle(conn);
    else
      rn__hconn_finish(conn);
    break;
  }
  rn__hconn_schedule(conn);
}

/* ---- read, finish, work ------------------------------------------------------------- */

static void on_read(rn_conn_t *base, ssize_t nread, const uv_buf_t *buf) {
  rn__hconn_t *conn = (rn__hconn_t *)base;
  if (rn_conn_closing(&conn->base) || nread == 0) return;
  if (nread < 0) {
    if (nread == UV_EOF && (conn->end != RN__HE_LINGER)) {
      conn->eof = true;
      update_reading(conn);
      rn__hconn_schedule(conn);
      return;
    }
    if (nread == RN_NET_ETLS && conn->end != RN__HE_LINGER) {
      rn__hconn_finish(conn); /* flush the alert, if any */
      rn__hconn_schedule(conn);
      return;
    }
    rn__hconn_close(conn, (conn->end == RN__HE_LINGER) ? "closed" : uv_strerror((int)nread));
    return;
  }
  conn->last_read = rn__hconn_now(conn);
  if ((conn->end == RN__HE_LINGER)) return; /* dropped */
  if (!in_append(conn, (const uint8_t *)buf->base, (size_t)nread)) {
    rn__hlogf(conn, RN_LVL_ERROR, "#%llu %s: out of memory for input; closing", (unsigned long long)conn->base.id,
             conn->base.peer);
    rn__hconn_close(conn, "out of memory");
    return;
  }
  process_input(conn);
  if (rn_conn_closing(&conn->base)) return;
  update_reading(conn);
  rn__hconn_schedule(conn);
  arm(conn);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  rn__hconn_t *conn = req->data;
  if (!rn_conn_closing(&conn->base)) {
    if (status < 0) {
      rn__hconn_close(conn, uv_strerror(status));
    } else {
      conn->end = RN__HE_LINGER;
      conn->linger_until = rn__hconn_now(conn) + RN__HTTP_LINGER_MS;
      update_reading(conn);
      arm(conn);
    }
  }
  rn_conn_unref(&conn->base);
}

void rn__hconn_finish(rn__hconn_t *conn) {
  if (rn_conn_closing(&conn->base) || (conn->end >= RN__HE_FINISH)) return;
  conn->end = RN__HE_FINISH;
  update_reading(conn);
  rn__hconn_schedule(conn);
}

static void hconn_work(rn_conn_t *base) {
  rn__hconn_t *conn = (rn__hconn_t *)base;
  if (rn_conn_closing(&conn->base)) return;
  if (conn->in_len > 0) process_input(conn); /* what back-pressure held back */
  if (rn_conn_closing(&conn->base)) return;
  if (conn->pops != NULL) conn->pops->work(conn);
  if (rn_conn_closing(&conn->base)) return;
  const rn_conn_t *base_ = &conn->base;
  bool notify = conn->end == RN__HE_FINISH && rn_conn_tls_ready(base_) && !rn_conn_tls_notified(base_) &&
                conn->out_bytes + conn->base.writing < conn->hs->cfg->max_output_bytes_per_connection &&
                (conn->pops == NULL || !conn->pops->pending_output(conn));
  flush(conn, notify); /* notify: close_notify ends the TLS stream, after the output, in the same write */
  if (rn_conn_closing(&conn->base)) return;
  if (conn->end == RN__HE_FINISH && (!rn_conn_tls_ready(base_) || rn_conn_tls_notified(base_))) {
    if (conn->out_head == NULL) {
      /* uv_shutdown waits for the writes in flight, then sends FIN. */
      conn->shut.data = conn;
      if (rn_conn_shutdown(&conn->base, &conn->shut, on_shutdown) != 0) {
        rn__hconn_close(conn, "closed");
        return;
      }
      conn->end = RN__HE_FIN_SENT;
      rn_conn_ref(&conn->base);
    }
  } else if (conn->eof && (conn->end < RN__HE_FINISH) && conn->routing == 0 && !rn__hconn_sending(conn) &&
             (conn->pops == NULL || conn->pops->input_done(conn))) {
    rn__hconn_close(conn, "closed by peer");
    return;
  }
  update_reading(conn);
  arm(conn);
}

/* ---- requests -------------------------------------------------------------------------- */

rn__hreq_t *rn__hreq_new(rn__hconn_t *conn) {
  rn__hreq_t *req = calloc(1, sizeof *req);
  if (req == NULL) return NULL;
  req->conn = conn;
  req->method = req->path = req->query = req->authority = req->url = req->scheme = RN__NOOFF;
  req->content_length = UINT64_MAX;
  req->started = rn__hconn_now(conn);
  make_rid(conn->hs, req->rid);
  conn->begun++;
  return req;
}

static void release_request(rn__hreq_t *req) {
  free(req->arena);
  free(req->hoff);
  free(req->body);
  free(req->hv);
  req->arena = NULL;
  req->hoff = NULL;
  req->body = NULL;
  req->hv = NULL;
  req->arena_len = req->arena_cap = req->nh = req->hcap = req->body_len = req->body_cap = 0;
}

/* Drop req's response body (a copy output chunks still point into stays
 * until they are written). */
static void rbody_release(rn__hreq_t *req) {
  if (req->rshared != NULL)
    shared_unref(req->rshared);
  else
    free(req->rbody);
  req->rshared = NULL;
  req->rbody = NULL;
}

void rn__hreq_free(rn__hreq_t *req) {
  if (req == NULL) return;
  rn__hconn_t *conn = req->conn;
  assert(conn->held >= req->held_body + req->reserve);
  conn->held -= req->held_body + req->reserve;
  if ((req->tx == RN__TX_DEFERRED)) {
    assert(conn->h2_deferred > 0);
    conn->h2_deferred--;
  }
  release_request(req);
  free(req->rh);
  rbody_release(req);
  free(req);
}

void rn__hreq_link(rn__hreq_t *req) {
  rn__hconn_t *conn = req->conn;
  assert(!req->linked);
  req->linked = true;
  req->next = NULL;
  req->prev = conn->reqs_tail;
  if (conn->reqs_tail != NULL)
    conn->reqs_tail->next = req;
  else
    conn->reqs = req;
  conn->reqs_tail = req;
  conn->nreqs++;
}

void rn__hreq_unlink(rn__hreq_t *req) {
  rn__hconn_t *conn = req->conn;
  if (!req->linked) return;
  req->linked = false;
  if (req->prev != NULL)
    req->prev->next = req->next;
  else
    conn->reqs = req->next;
  if (req->next != NULL)
    req->next->prev = req->prev;
  else
    conn->reqs_tail = req->prev;
  req->prev = req->next = NULL;
  assert(conn->nreqs > 0);
  conn->nreqs--;
}

static bool arena_room(rn__hreq_t *req, size_t n) {
  if (req->arena_cap - req->arena_len >= n) return true;
  if (req->arena_len + n >= (size_t)RN__NOOFF) return false;
  size_t cap = req->arena_cap ? req->arena_cap * 2 : 512;
  while (cap - req->arena_len < n) cap *= 2;
  char *p = realloc(req->arena, cap);
  if (p == NULL) return false;
  req->arena = p;
  req->arena_cap = cap;
  return true;
}

uint32_t rn__hreq_put(rn__hreq_t *req, const char *s, size_t len, bool term) {
  if (!arena_room(req, len + 1)) return RN__NOOFF;
  uint32_t off = (uint32_t)req->arena_len;
  if (len > 0) memcpy(req->arena + req->arena_len, s, len);
  req->arena_len += len;
  if (term) req->arena[req->arena_len++] = '\0';
  return off;
}

bool rn__hreq_more(rn__hreq_t *req, const char *s, size_t len, bool lower) {
  if (!arena_room(req, len + 1)) return false;
  char *d = req->arena + req->arena_len;
  if (lower) {
    for (size_t i = 0; i < len; i++) {
      char c = s[i];
      d[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
  } else {
    memcpy(d, s, len);
  }
  req->arena_len += len;
  return true;
}

bool rn__hreq_add_header(rn__hreq_t *req, uint32_t name, uint32_t value) {
  if (req->nh == req->hcap) {
    size_t cap = req->hcap ? req->hcap * 2 : 16;
    uint32_t *p = realloc(req->hoff, cap * 2 * sizeof *p);
    if (p == NULL) return false;
    req->hoff = p;
    req->hcap = cap;
  }
  req->hoff[2 * req->nh] = name;
  req->hoff[2 * req->nh + 1] = value;
  req->nh++;
  return true;
}

bool rn__hreq_body(rn__hreq_t *req, const uint8_t *data, size_t len) {
  if (len == 0) return true;
  if (req->body_cap - req->body_len < len) {
    size_t cap = req->body_cap ? req->body_cap * 2 : 4096;
    if (req->content_length != UINT64_MAX && req->content_length >= req->body_len + len &&
        req->content_length <= req->conn->hs->cfg->http_max_body_bytes && cap < req->content_length)
      cap = (size_t)req->content_length; /* announced: one allocation */
    while (cap - req->body_len < len) cap *= 2;
    uint8_t *p = realloc(req->body, cap);
    if (p == NULL) return false;
    req->body = p;
    req->body_cap = cap;
  }
  memcpy(req->body + req->body_len, data, len);
  req->body_len += len;
  return true;
}

const char *rn__hreq_str(const rn__hreq_t *req, uint32_t off) {
  return off == RN__NOOFF || req->arena == NULL ? "" : req->arena + off;
}

const char *rn__hreq_header(const rn__hreq_t *req, const char *lname) {
  for (size_t i = 0; i < req->nh; i++)
    if (strcmp(req->arena + req->hoff[2 * i], lname) == 0) {
      uint32_t v = req->hoff[2 * i + 1];
      return v == RN__NOOFF ? "" : req->arena + v;
    }
  return NULL;
}

const char *rn_http_header(const rn_http_req_t *req, const char *lname) {
  if (req == NULL || lname == NULL) return NULL;
  for (size_t i = 0; i < req->nheaders; i++)
    if (strcasecmp(req->headers[i].name, lname) == 0) return req->headers[i].value;
  return NULL;
}

/* Headers the transport owns in a response (hop-by-hop, framing). */
static bool transport_header(const char *name) {
  static const char *const names[] = {"content-length", "connection",        "keep-alive", "transfer-encoding",
                                      "upgrade",        "proxy-connection", "te",         "trailer"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcasecmp(name, names[i]) == 0) return true;
  return false;
}

static bool header_ok(const char *name, const char *value) {
  if (name == NULL || value == NULL || name[0] == '\0' || name[0] == ':') return false;
  for (const char *p = name; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == ':' || (unsigned char)*p >= 0x7f) return false;
  for (const char *p = value; *p; p++)
    if (*p == '\r' || *p == '\n') return false;
  return true;
}

/* Set req's response: the headers copied, the body either copied (body) or
 * taken (owned: malloc'd, body then NULL; freed here on failure too).
 * Returns false on out of memory. */
static bool set_response_body(rn__hreq_t *req, int status, const rn_http_header_t *headers, size_t nheaders,
                              const uint8_t *body, uint8_t *owned, size_t body_len) {
  size_t n = 0, bytes = 0;
  for (size_t i = 0; i < nheaders; i++) {
    if (!header_ok(headers[i].name, headers[i].value) || transport_header(headers[i].name)) continue;
    n++;
    bytes += strlen(headers[i].name) + strlen(headers[i].value) + 2;
  }
  rn_http_header_t *rh = NULL;
  if (n > 0) {
    rh = malloc(n * sizeof *rh + bytes);
    if (rh == NULL) {
      free(owned);
      return false;
    }
    char *s = (char *)(rh + n);
    size_t k = 0;
    for (size_t i = 0; i < nheaders; i++) {
      const char *name = headers[i].name, *value = headers[i].value;
      if (!header_ok(name, value) || transport_header(name)) continue;
      size_t nl = strlen(name) + 1, vl = strlen(value) + 1;
      memcpy(s, name, nl);
      rh[k].name = s;
      s += nl;
      memcpy(s, value, vl);
      rh[k].value = s;
      s += vl;
      if (strcasecmp(name, "date") == 0) req->app_date = true;
      if (strcasecmp(name, "x-amzn-requestid") == 0) req->app_rid = true;
      k++;
    }
  }
  uint8_t *rb = NULL;
  if (owned != NULL && body_len > 0) {
    rb = owned; /* the router's buffer: no copy */
  } else if (owned != NULL) {
    free(owned);
  } else if (body_len > 0) {
    rb = malloc(body_len);
    if (rb == NULL) {
      free(rh);
      return false;
    }
    memcpy(rb, body, body_len);
  }
  free(req->rh);
  rbody_release(req);
  req->rh = rh;
  req->nrh = n;
  req->rbody = rb;
  req->rbody_len = body_len;
  req->rbody_off = 0;
  req->conn->held -= req->held_body; /* a replaced answer */
  req->held_body = body_len;
  req->conn->held += body_len;
  req->status = status;
  if ((req->tx != RN__TX_ANSWERED)) {
    req->tx = RN__TX_ANSWERED;
    req->conn->answered++;
  }
  return true;
}

static bool set_response(rn__hreq_t *req, int status, const rn_http_header_t *headers, size_t nheaders,
                         const uint8_t *body, size_t body_len) {
  return set_response_body(req, status, headers, nheaders, body, NULL, body_len);
}

static void answered(rn__hreq_t *req) {
  rn__hconn_t *conn = req->conn;
  conn->last_active = rn__hconn_now(conn);
  conn->pops->answered(req);
}

/* Append s to buf as JSON string content (without quotes). */
static size_t json_escape(char *buf, size_t cap, const char *s) {
  size_t n = 0;
  for (; *s && n + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      buf[n++] = '\\';
      buf[n++] = (char)c;
    } else if (c < 0x20) {
      n += (size_t)snprintf(buf + n, cap - n, "\\u%04x", c);
    } else {
      buf[n++] = (char)c;
    }
  }
  buf[n] = '\0';
  return n;
}

static const rn_http_header_t json_ct[] = {{"Content-Type", "application/json"}};

void rn__hreq_error(rn__hreq_t *req, int status, const char *type, const char *msg) {
  char esc[600], body[800];
  json_escape(esc, sizeof esc, msg);
  int n = snprintf(body, sizeof body, "{\"__type\":\"%s\",\"message\":\"%s\"}", type, esc);
  if (n < 0 || (size_t)n >= sizeof body) n = (int)strlen(body);
  if (!set_response(req, status, json_ct, 1, (const uint8_t *)body, (size_t)n)) {
    rn__hconn_close(req->conn, "out of memory");
    return;
  }
  rn__hlogf(req->conn, RN_LVL_DEBUG, "#%llu %s: %d %s: %s", (unsigned long long)req->conn->base.id, req->conn->base.peer, status,
           type, msg);
  answered(req);
}

void rn__hreq_body_sent(rn__hreq_t *req, size_t n) {
  assert(req->held_body >= n && req->conn->held >= n);
  req->held_body -= n;
  req->conn->held -= n;
}

/* rn_http_reserve for requests of this transport. */
static void on_reserve(void *ctx, size_t bytes) {
  rn__hreq_t *req = ctx;
  if (req->tx != RN__TX_ROUTING && req->tx != RN__TX_ORPHAN) return;
  req->conn->held = req->conn->held - req->reserve + bytes;
  req->reserve = bytes;
}

/* The router's answer: rn_http_reply_fn (owned NULL, body copied) and
 * rn_http_req_t.reply_owned (owned: the body, taken). */
static void reply_common(void *ctx, int status, const rn_http_header_t *headers, size_t nheaders, const uint8_t *body,
                         uint8_t *owned, size_t body_len) {
  rn__hreq_t *req = ctx;
  rn__hconn_t *conn = req->conn;
  rn_http_t *hs = conn->hs;
  assert((req->tx == RN__TX_ROUTING || req->tx == RN__TX_ORPHAN) && conn->routing > 0 && hs->routing > 0);
  assert(conn->held >= req->reserve);
  conn->held -= req->reserve; /* the answer itself is counted from here on */
  req->reserve = 0;
  bool orphan = req->tx == RN__TX_ORPHAN;
  req->tx = RN__TX_NONE;
  conn->routing--;
  hs->routing--;
  if (orphan) {
    free(owned);
    rn__hreq_free(req); /* the connection went away meanwhile */
    rn_conn_unref(&conn->base);
    return;
  }
  if (status < 200 || status > 599) {
    rn__hlogf(conn, RN_LVL_WARN, "router answered %s %s with status %d; sending 500 instead",
             rn__hreq_str(req, req->method), rn__hreq_str(req, req->path), status);
    status = 500;
  }
  rn__hlogf(conn, RN_LVL_DEBUG, "#%llu %s %s %s%s%s -> %d (%zu bytes)", (unsigned long long)conn->base.id, conn->base.peer,
           rn__hreq_str(req, req->method), rn__hreq_str(req, req->path), req->query != RN__NOOFF ? "?" : "",
           rn__hreq_str(req, req->query), status, body_len);
  bool ok = set_response_body(req, status, headers, nheaders, body, owned, body_len);
  release_request(req); /* the router's view of it ends here */
  if (!ok) {
    rn__hlogf(conn, RN_LVL_ERROR, "#%llu %s: out of memory for a response; closing", (unsigned long long)conn->base.id,
             conn->base.peer);
    rn__hconn_close(conn, "out of memory"); /* frees req: it is linked and no longer routing */
  } else {
    answered(req);
  }
  rn_conn_unref(&conn->base);
}

static void on_reply(void *ctx, int status, const rn_http_header_t *headers, size_t nheaders, const uint8_t *body,
                     size_t body_len) {
  reply_common(ctx, status, headers, nheaders, body, NULL, body_len);
}

static void on_reply_owned(void *ctx, int status, const rn_http_header_t *headers, size_t nheaders, uint8_t *body,
                           size_t body_len) {
  reply_common(ctx, status, headers, nheaders, NULL, body, body_len);
}

/* The paths a connection past http_max_connections may still ask for. */
static bool health_request(const rn__hreq_t *req) {
  const char *m = rn__hreq_str(req, req->method);
  const char *p = req->path != RN__NOOFF ? rn__hreq_str(req, req->path) : "/";
  return (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) &&
         (strcmp(p, "/healthz") == 0 || strcmp(p, "/readyz") == 0 || strcmp(p, "/metrics") == 0);
}

/* Content-Encoding gzip/deflate must describe the body: the transport does
 * not inflate it, but a body that is not what it claims is refused here for
 * every application. NULL when fine, else the message. */
static const char *encoding_mismatch(const rn__hreq_t *req) {
  const char *enc = rn__hreq_header(req, "content-encoding");
  if (enc == NULL || req->body_len == 0) return NULL;
  const uint8_t *b = req->body;
  if (strcasecmp(enc, "gzip") == 0 || strcasecmp(enc, "x-gzip") == 0) {
    if (req->body_len < 18 || b[0] != 0x1f || b[1] != 0x8b || b[2] != 8)
      return "Content-Encoding: gzip, but the body is not gzip data (it does not start with the gzip header 1f 8b 08)";
  } else if (strcasecmp(enc, "deflate") == 0) {
    if (req->body_len < 2 || (b[0] & 0x0f) != 8 || ((unsigned)b[0] << 8 | b[1]) % 31 != 0)
      return "Content-Encoding: deflate, but the body is not zlib data (RFC 1950 header)";
  }
  return NULL;
}

void rn__hreq_dispatch(rn__hreq_t *req) {
  rn__hconn_t *conn = req->conn;
  rn_http_t *hs = conn->hs;
  req->rx = RN__RQ_DONE;
  if (conn->base.extra) {
    /* One request only, then close (HTTP/2: GOAWAY). */
    conn->pops->stop(conn);
    if (!health_request(req)) {
      char msg[200];
      snprintf(msg, sizeof msg,
               "the broker is at http_max_connections (%u open connections); retry later or reuse a connection",
               (unsigned)hs->cfg->http_max_connections);
      rn_net_listener_refuse(conn->base.lst, RN_NET_REFUSE_LIMIT);
      req->close_after = true;
      rn__hreq_error(req, 503, "ServiceUnavailable", msg);
      return;
    }
  }
  const char *bad_enc = encoding_mismatch(req);
  if (bad_enc != NULL) {
    rn__hreq_error(req, 400, "BadRequestException", bad_enc);
    return;
  }
  if (req->nh > 0) {
    req->hv = malloc(req->nh * sizeof *req->hv);
    if (req->hv == NULL) {
      rn__hreq_error(req, 500, "InternalFailure", "out of memory");
      return;
    }
    for (size_t i = 0; i < req->nh; i++) {
      req->hv[i].name = req->arena + req->hoff[2 * i];
      req->hv[i].value = rn__hreq_str(req, req->hoff[2 * i + 1]);
    }
  }
  rn_http_req_t *r = &req->pub;
  r->method = rn__hreq_str(req, req->method);
  r->path = req->path != RN__NOOFF ? rn__hreq_str(req, req->path) : "/";
  r->query = rn__hreq_str(req, req->query);
  const char *host = rn__hreq_header(req, "host");
  r->authority = req->authority != RN__NOOFF ? rn__hreq_str(req, req->authority) : host != NULL ? host : "";
  r->headers = req->hv;
  r->nheaders = req->nh;
  r->body = req->body != NULL ? req->body : (const uint8_t *)"";
  r->body_len = req->body_len;
  r->http_version = req->version == 20 ? 20 : 11;
  r->tls = rn_conn_tls(&conn->base);
  r->peer = conn->base.peer;
  r->reserve = on_reserve;
  r->reply_owned = on_reply_owned;
  req->tx = RN__TX_ROUTING;
  conn->routing++;
  hs->routing++;
  conn->requests++;
  conn->last_active = rn__hconn_now(conn);
  rn_conn_ref(&conn->base);
  rn_http_router_fn fn = hs->router != NULL ? hs->router : rn_http_builtin_router;
  void *arg = hs->router != NULL ? hs->router_arg : hs->net;
  fn(arg, r, on_reply, req); /* may answer before returning */
}

/* ---- the built-in router ------------------------------------------------------------- */

void rn_http_builtin_router(void *arg, const rn_http_req_t *req, rn_http_reply_fn reply, void *ctx) {
  const rn_net_t *net = arg;
  bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
  if (get && strcmp(req->path, "/healthz") == 0) {
    static const char ok[] = "{\"status\":\"ok\"}";
    reply(ctx, 200, json_ct, 1, (const uint8_t *)ok, sizeof ok - 1);
  } else if (get && strcmp(req->path, "/readyz") == 0) {
    static const char ready[] = "{\"status\":\"ready\"}", draining[] = "{\"status\":\"draining\"}";
    if (rn_net_draining(net))
      reply(ctx, 503, json_ct, 1, (const uint8_t *)draining, sizeof draining - 1);
    else
      reply(ctx, 200, json_ct, 1, (const uint8_t *)ready, sizeof ready - 1);
  } else {
    char esc[300], body[512];
    char what[256];
    snprintf(what, sizeof what, "%s %s", req->method, req->path);
    json_escape(esc, sizeof esc, what);
    int n = snprintf(body, sizeof body, "{\"__type\":\"NotFoundException\",\"message\":\"no such endpoint: %s\"}", esc);
    if (n < 0 || (size_t)n >= sizeof body) n = (int)strlen(body);
    reply(ctx, 404, json_ct, 1, (const uint8_t *)body, (size_t)n);
  }
}

/* ---- the transport on a new connection ---------------------------------------------- */

static void http_on_open(rn_conn_t *base) {
  rn__hconn_t *conn = (rn__hconn_t *)base;
  rn_http_t *hs = base->proto;
  conn->hs = hs;
  if (base->extra)
    rn__hlogf(conn, RN_LVL_DEBUG, "#%llu %s: past http_max_connections (%u): /healthz, /readyz or /metrics only "
              "(others get 503)", (unsigned long long)base->id, base->peer, (unsigned)hs->cfg->http_max_connections);
  conn->accepted = conn->last_read = conn->last_write = conn->last_active = rn_conn_now(base);
  rn__hlogf(conn, RN_LVL_DEBUG, "#%llu %s accepted%s", (unsigned long long)base->id, base->peer,
            rn_conn_tls(base) ? " (TLS)" : "");
  update_reading(conn);
  arm(conn);
}

/* ops->on_drain. Shutdown began (the listener is closed): HTTP/1.1
 * connections stop reading requests, HTTP/2 ones send GOAWAY; requests at
 * the router are still answered. */
static void http_on_drain(rn_conn_t *base) {
  rn__hconn_t *conn = (rn__hconn_t *)base;
  if (conn->pops == NULL)
    rn__hconn_finish(conn); /* nothing begun: nothing to answer */
  else
    conn->pops->drain(conn);
  update_reading(conn);
  rn__hconn_schedule(conn);
  if (!rn_conn_closing(&conn->base)) {
    /* The drain timeout may be shorter than what the timer waits for. */
    uv_timer_stop(&conn->base.timer);
    arm(conn);
  }
}

/* ops->on_tls_ready: ALPN may have decided the protocol (HTTP/2 then
 * starts at once, with its SETTINGS). */
static void http_on_tls_ready(rn_conn_t *base) {
  rn__hconn_t *conn = (rn__hconn_t *)base;
  process_input(conn);
  if (rn_conn_closing(base)) return;
  update_reading(conn);
  rn__hconn_schedule(conn);
  arm(conn);
}

static bool http_busy(const rn_conn_t *base) { return rn__hconn_sending((const rn__hconn_t *)base); }

static const rn_net_proto_ops_t http_ops = {
    .name = "http",
    .conn_size = sizeof(rn__hconn_t),
    .on_open = http_on_open,
    .on_alloc = on_alloc,
    .on_read = on_read,
    .on_work = hconn_work,
    .on_tls_ready = http_on_tls_ready,
    .on_drain = http_on_drain,
    .busy = http_busy,
    .on_close = http_on_close,
    .on_free = http_on_free,
};

const rn_net_proto_ops_t *rn_http_ops(void) { return &http_ops; }

void rn_http_set_router(rn_http_t *hs, rn_http_router_fn fn, void *arg) {
  hs->router = fn;
  hs->router_arg = arg;
}

uint64_t rn_http_routing(const rn_http_t *hs) { return hs->routing; }

rn_net_tls_t *rn_http_tls(const rn_http_t *hs) { return hs->tls; }

unsigned rn_http_backpressured(const rn_net_listener_t *lst) {
  unsigned n = 0;
  for (const rn_conn_t *c = rn_net_listener_conns(lst); c != NULL; c = c->next)
    n += !rn__hconn_budget_ok((const rn__hconn_t *)c);
  return n;
}

rn_err_t rn_http_new(rn_net_t *net, const rn_http_opts_t *opts, rn_http_t **out, char *why, size_t whylen) {
  *out = NULL;
  rn_http_t *hs = calloc(1, sizeof *hs);
  if (hs == NULL) {
    snprintf(why, whylen, "out of memory");
    return RN_ENOMEM;
  }
  hs->net = net;
  hs->opts = *opts;
  hs->opts.http_tls_cert = hs->opts.http_tls_key = NULL; /* read below, not kept */
  hs->cfg = &hs->opts;
  /* http-parser's head limit is process-wide; runneld has one HTTP port. */
  http_parser_set_max_header_size(hs->cfg->http_max_header_bytes);
  rn__h1_settings(&hs->h1settings);
  rn_err_t rc = rn__h2_global_init(hs);
  if (rc != 0) {
    snprintf(why, whylen, "http: cannot set up HTTP/2: %s", rn_strerror(rc));
    free(hs);
    return rc;
  }
  if (opts->http_tls_cert != NULL && opts->http_tls_cert[0] != '\0') {
    static const unsigned char alpn[] = "\x02h2\x08http/1.1"; /* the server's order of preference */
    hs->tls = rn_net_tls_new(opts->http_tls_cert, opts->http_tls_key, alpn, sizeof alpn - 1, "http_tls_cert",
                             "http_tls_key", why, whylen);
    if (hs->tls == NULL) {
      rn__h2_global_free(hs);
      free(hs);
      return RN_EINVAL;
    }
    rn_net_logf(net, RN_LVL_INFO, "http", "TLS on the HTTP port: cert %s, ALPN h2 and http/1.1", opts->http_tls_cert);
  }
  if (RAND_bytes((unsigned char *)hs->rid_seed, sizeof hs->rid_seed) != 1) {
    hs->rid_seed[0] = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    hs->rid_seed[1] = mix64(hs->rid_seed[0] ^ (uint64_t)(uintptr_t)hs);
  }
  *out = hs;
  return 0;
}

void rn_http_free(rn_http_t *hs) {
  if (hs == NULL) return;
  rn_net_tls_free(hs->tls);
  rn__h2_global_free(hs);
  free(hs);
}
