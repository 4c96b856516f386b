/*
 * http_int.h — private structures of runneld's HTTP transport (the server
 * side of rn_http.h). Loop thread only.
 *
 *   http_server.c  the protocol on the connection base (rn_net_proto_ops_t):
 *                  input and output buffers, timers, the choice of HTTP
 *                  version (choose_protocol: ALPN, else the h2 preface),
 *                  finish/linger; requests: assembly storage, dispatch to
 *                  the router, the reply callback; request ids, Date; the
 *                  built-in router
 *   http_h1.c      HTTP/1.1 (http-parser) behind rn__h1_ops: pipelining in
 *                  order, chunked bodies, Expect: 100-continue
 *   http_h2.c      HTTP/2 (nghttp2) behind rn__h2_ops: streams, flow control
 *
 * Accept, limits, close, references and TLS are the connection base's
 * (broker/net): this transport reads and writes plaintext.
 *
 * Lifetimes. A connection (rn__hconn_t) starts with the connection base
 * (rn_conn_t, broker/net), which counts its references: its two handles
 * (one reference until both closed), every request of it that is at the
 * router, every write and a uv_shutdown in flight. At zero the base frees
 * it from the loop hook (step 4 of the order in broker/net/net.c): never
 * inside one of its own callbacks. A request (rn__hreq_t) lives on its
 * connection's list from its first header to the end of its response (HTTP/1.1: the response
 * was handed to the output; HTTP/2: nghttp2 closed the stream); a request at
 * the router when its connection closes is "orphaned": unlinked, and freed
 * by the reply callback that must still come.
 */
#ifndef RN_BROKER_HTTP_INT_H
#define RN_BROKER_HTTP_INT_H

#include <http_parser.h>
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rn_http.h"
#include "rn_net.h"

#define RN__H2_MAX_STREAMS 128u          /* SETTINGS_MAX_CONCURRENT_STREAMS (capped by max_inflight_per_connection) */
#define RN__H2_STREAM_WINDOW (1u << 20)  /* initial receive window per stream */
#define RN__H2_CONN_WINDOW (16u << 20)   /* receive window of the connection */
#define RN__HTTP_LINGER_MS 2000u         /* after a closing response: read and drop until EOF, at most this long */
#define RN__HTTP_READ_BUF ((size_t)64 * 1024)

typedef struct rn__hconn rn__hconn_t;
typedef struct rn__hreq rn__hreq_t;
typedef struct rn__hbuf rn__hbuf_t;

typedef struct rn_http_proto_ops rn_http_proto_ops_t;

/* What a request is receiving, for its timer (rn_http_proto_ops_t.receiving). */
typedef enum { RN__RX_NONE = 0, RN__RX_HEAD, RN__RX_BODY } rn__rx_t;

/* A response body several output chunks point into (HTTP/2 DATA frames
 * written without a copy): freed with its last reference, the request's
 * or a chunk's, whichever goes last. */
typedef struct rn__hshared {
  size_t refs;
  uint8_t *data; /* owned, malloc'd */
} rn__hshared_t;

/* One chunk of bytes to write (plaintext, or ciphertext under TLS). */
struct rn__hbuf {
  rn__hbuf_t *next;
  uint8_t *data;         /* owned, unless shared */
  size_t len, cap;
  rn__hshared_t *shared; /* non-NULL: data points into it; one reference */
};

/* One request and, later, its response. */
struct rn__hreq {
  rn__hconn_t *conn;
  rn__hreq_t *prev, *next; /* conn->reqs; for HTTP/1.1 the order of the pipeline */
  int32_t stream_id;       /* HTTP/2 */
  int version;             /* 10, 11 or 20 */

  /* Request storage: NUL-terminated strings in one arena, addressed by
   * offset (the arena moves while it grows). */
  char *arena;
  size_t arena_len, arena_cap;
  uint32_t *hoff; /* per header: name offset, value offset */
  size_t nh, hcap;
  uint32_t method, path, query, authority, url, scheme; /* offsets; RN__NOOFF = absent */
  size_t head_bytes;    /* HTTP/2 header list size so far */
  uint8_t *body;
  size_t body_len, body_cap;
  int h1_hstate;        /* HTTP/1.1 header callback state: 0 none, 1 in a name, 2 in a value */
  uint64_t content_length; /* announced; UINT64_MAX = none */

  /* What the router sees (valid while routing). */
  rn_http_req_t pub;
  rn_http_header_t *hv;

  /* Where it stands: two enums, one per direction.
   *
   * rx, the request:  HEAD ──head complete──→ BODY ──message complete──→ DONE
   *   (HTTP/2: a stream reset or closed while receiving goes straight to DONE).
   *
   * tx, the answer:
   *   NONE ──complete, routed (rn__hreq_dispatch)──→ ROUTING
   *   NONE ──complete, over the output budget (HTTP/2)──→ DEFERRED ──budget ok──→ NONE → ROUTING
   *   ROUTING ──the router's reply──→ NONE → ANSWERED (set_response)
   *   ROUTING ──the connection closed──→ ORPHAN ──the reply──→ freed
   *   NONE ──the transport answers (limits, timeouts, errors; HTTP/2 maybe early)──→ ANSWERED
   *   ANSWERED ──HTTP/2 stream closed after its response──→ NONE, freed
   * HTTP/1.1 frees an ANSWERED request once its response is in the output. */
  uint64_t started; /* uv_now of its first byte */
  enum { RN__RQ_HEAD = 0, RN__RQ_BODY, RN__RQ_DONE } rx;
  enum { RN__TX_NONE = 0, RN__TX_DEFERRED, RN__TX_ROUTING, RN__TX_ORPHAN, RN__TX_ANSWERED } tx;
  bool linked;          /* on conn->reqs */
  bool h2_open;         /* nghttp2 still has the stream */
  bool expect_continue; /* Expect: 100-continue, 100 not sent yet */
  bool keep_alive;      /* HTTP/1.1: the client allows another request after this */
  bool is_head;         /* HEAD: no body in the response */
  bool close_after;     /* close the connection after this response */
  bool early;           /* HTTP/2: answered before the request finished (reset it after) */
  int err;              /* HTTP/2: transport error status decided while receiving (413, 431) */
  size_t reserve;       /* bytes the router said the answer may take (rn_http_reserve), on conn->held */
  size_t held_body;     /* response body bytes not yet handed to the output, on conn->held */

  /* Response. */
  int status;
  rn_http_header_t *rh; /* one block: the array, then its strings */
  size_t nrh;
  bool app_date, app_rid; /* the application set Date / x-amzn-RequestId itself */
  uint8_t *rbody;         /* owned, unless rshared holds it */
  size_t rbody_len, rbody_off;
  rn__hshared_t *rshared; /* HTTP/2: rbody once DATA frames point into it; one reference */

  char rid[40]; /* x-amzn-RequestId */
};

#define RN__NOOFF UINT32_MAX

struct rn__hconn {
  rn_conn_t base; /* first: socket, timer, id, peer, refs, close (broker/net) */
  uv_shutdown_t shut;
  rn_http_t *hs;
  /* The HTTP version spoken: NULL until decided (the first bytes, or the
   * TLS handshake and its ALPN), then &rn__h1_ops or &rn__h2_ops. */
  const rn_http_proto_ops_t *pops;

  /* Plaintext received and not yet consumed, in[0, in_len). */
  uint8_t *in;
  size_t in_len, in_cap;

  /* Output not yet handed to a write (writes in flight: the base's). */
  rn__hbuf_t *out_head, *out_tail;
  size_t out_bytes;

  /* Requests. */
  rn__hreq_t *reqs, *reqs_tail;
  unsigned nreqs;    /* on the list */
  unsigned routing;  /* at the router */
  unsigned answered; /* answered and not yet fully handed to the output */
  /* Bytes of answers held outside the output: response bodies not yet
   * handed to it, plus what requests at the router reserved. Counted with
   * out_bytes + writing against max_output_bytes_per_connection before a
   * new request is parsed (HTTP/1.1) or routed (HTTP/2). */
  size_t held;
  uint64_t requests; /* dispatched so far, for the log */
  uint64_t begun;    /* requests begun (first byte / HEADERS) so far */

  /* HTTP/1.1 */
  http_parser h1p;
  rn__hreq_t *h1cur; /* the request being received; on conn->reqs once its head is done */
  int h1err;         /* a status decided inside a parser callback (413) */
  bool h1_stop;      /* parse nothing more (close after what is queued) */
  bool h1_head_pause; /* the parser paused at the end of a head (not of a message) */
  uint8_t h1_prev;    /* last request-head byte checked for a bare LF */

  /* HTTP/2 */
  nghttp2_session *h2;
  unsigned h2_receiving; /* streams whose request is not complete */
  unsigned h2_deferred;  /* complete streams waiting for the output budget (req->deferred) */
  bool goaway;

  /* Time (uv_now). */
  uint64_t accepted, last_read, last_write, last_active, timer_due;

  /* base.extra: past http_max_connections: one request, health only */
  bool eof;         /* the peer half-closed */
  /* How the connection ends, one enum. Transitions (each only forward):
   *   OPEN ──rn__hconn_finish (closing response, timeout, protocol error,
   *          shutdown)──→ FINISH: parse nothing more, flush the output
   *   FINISH ──output flushed (and TLS close_notify queued)──→ FIN_SENT:
   *          uv_shutdown requested (FIN after the writes in flight)
   *   FIN_SENT ──shutdown completed──→ LINGER: read and drop until the
   *          peer's EOF, at most RN__HTTP_LINGER_MS, so the last response
   *          is not lost to a reset
   *   any ──rn__hconn_close (hard: error, EOF while lingering, linger
   *          over)──→ the base's RN_CONN_CLOSING
   * eof (the peer half-closed) is input-side and independent of it. */
  enum { RN__HE_OPEN = 0, RN__HE_FINISH, RN__HE_FIN_SENT, RN__HE_LINGER } end;
  uint64_t linger_until;
};

struct rn_http {
  rn_net_t *net;
  rn_http_opts_t opts;
  const rn_http_opts_t *cfg; /* &opts: the limits, named as runneld's config keys */
  rn_http_router_fn router; /* NULL: rn_http_builtin_router (arg: net) */
  void *router_arg;
  rn_net_tls_t *tls; /* NULL: cleartext (the listener runs it, broker/net) */
  uint64_t routing; /* requests at the router, all connections */
  http_parser_settings h1settings;
  nghttp2_session_callbacks *h2cb;
  nghttp2_option *h2opt;
  uint64_t rid_seed[2], rid_count;
  time_t date_sec;
  char date[40];
  uint8_t rbuf[RN__HTTP_READ_BUF]; /* every connection reads into this, one read at a time */
};

/* ---- http_server.c: used by the protocol files ---- */

/* Log one line for the "http" component (conn: an rn__hconn_t). */
#define rn__hlogf(conn, level, ...) rn_conn_logf(&(conn)->base, (level), __VA_ARGS__)

/* Output: copy len bytes (the connection base encrypts them under TLS). */
void rn__hconn_send(rn__hconn_t *conn, const void *data, size_t len);
/* Output: take ownership of buf (malloc'd, len bytes). */
void rn__hconn_send_owned(rn__hconn_t *conn, uint8_t *buf, size_t len);
/* Output: req's body [off, off + len) without a copy; the chunk holds a
 * reference to the body (req->rshared, made here on first use). */
void rn__hconn_send_body(rn__hconn_t *conn, rn__hreq_t *req, size_t off, size_t len);

void rn__hconn_schedule(rn__hconn_t *conn);
/* Hard close (idempotent): unsent output and unfinished requests dropped. */
void rn__hconn_close(rn__hconn_t *conn, const char *why);
/* Close after the output is flushed (TLS close_notify, FIN, linger). */
void rn__hconn_finish(rn__hconn_t *conn);
uint64_t rn__hconn_now(const rn__hconn_t *conn);
/* Whether the output (or a response being produced) is not yet written. */
bool rn__hconn_sending(const rn__hconn_t *conn);

/* Requests. */
rn__hreq_t *rn__hreq_new(rn__hconn_t *conn);
void rn__hreq_free(rn__hreq_t *req);
void rn__hreq_link(rn__hreq_t *req);   /* append to conn->reqs */
void rn__hreq_unlink(rn__hreq_t *req); /* remove from conn->reqs */
/* Append bytes (plus a NUL when term) to the arena; returns the offset of
 * the first byte or RN__NOOFF on out of memory. */
uint32_t rn__hreq_put(rn__hreq_t *req, const char *s, size_t len, bool term);
/* Append to the last string of the arena (which must end the arena); for
 * data that arrives in pieces. The terminating NUL comes with rn__hreq_put("",0,true). */
bool rn__hreq_more(rn__hreq_t *req, const char *s, size_t len, bool lower);
bool rn__hreq_add_header(rn__hreq_t *req, uint32_t name, uint32_t value);
bool rn__hreq_body(rn__hreq_t *req, const uint8_t *data, size_t len);
const char *rn__hreq_str(const rn__hreq_t *req, uint32_t off); /* "" for RN__NOOFF */
const char *rn__hreq_header(const rn__hreq_t *req, const char *lname);
/* The request is complete: hand it to the router. */
void rn__hreq_dispatch(rn__hreq_t *req);
/* Bytes of the connection's output budget in use: unwritten output plus
 * held answers (conn->held). */
size_t rn__hconn_budget_used(const rn__hconn_t *conn);
/* Whether a new request may be parsed/routed under the output budget. */
bool rn__hconn_budget_ok(const rn__hconn_t *conn);
/* Response body bytes left the held state (handed to the output). */
void rn__hreq_body_sent(rn__hreq_t *req, size_t n);
/* Answer from the transport: {"__type": type, "message": msg}. */
void rn__hreq_error(rn__hreq_t *req, int status, const char *type, const char *msg);

/* Response helpers. */
const char *rn__http_reason(int status);
const char *rn__http_date(rn_http_t *hs); /* IMF-fixdate of now, cached per second */
bool rn__http_status_has_body(int status);

/* ---- one HTTP version on a connection (http_h1.c, http_h2.c) ----
 *
 * The transport (http_server.c) talks to HTTP/1.1 and HTTP/2 only through
 * this table: no version checks outside the protocol files. Every member
 * runs on the loop thread, may close the connection, and is never called on
 * a closing one. */
struct rn_http_proto_ops {
  const char *name; /* "HTTP/1.1", "HTTP/2" */
  int version;      /* 11, 20 (what rn_http_req_t.http_version says) */
  /* Chosen for conn: set up (h2: the session and SETTINGS). false: close. */
  bool (*start)(rn__hconn_t *conn);
  /* Feed input: parse what may be parsed of conn->in and consume it. */
  void (*input)(rn__hconn_t *conn);
  /* Deferred work: responses (head, body) to the output, in the protocol's
   * order; 100-continue; the decision to finish the connection. */
  void (*work)(rn__hconn_t *conn);
  /* A request was answered (by the router or the transport). */
  void (*answered)(rn__hreq_t *req);
  /* Whether to read more now (the output budget aside). */
  bool (*may_read)(const rn__hconn_t *conn);
  /* What is being received, and since when (uv_now), for the timer. */
  rn__rx_t (*receiving)(const rn__hconn_t *conn, uint64_t *since);
  /* The head or body timer fired: 408 what is receiving. */
  void (*timeout)(rn__hconn_t *conn);
  /* Idle, or no first request in time: end the connection politely
   * (HTTP/2: GOAWAY). */
  void (*idle)(rn__hconn_t *conn);
  /* Take no request after the ones begun (HTTP/2: GOAWAY); shutdown, or an
   * over-limit connection's one request. */
  void (*stop)(rn__hconn_t *conn);
  /* Shutdown began. */
  void (*drain)(rn__hconn_t *conn);
  /* The protocol has more to write (TLS close_notify waits for it). */
  bool (*pending_output)(const rn__hconn_t *conn);
  /* After the peer's EOF: nothing left that could still be parsed. */
  bool (*input_done)(const rn__hconn_t *conn);
};

extern const rn_http_proto_ops_t rn__h1_ops, rn__h2_ops;

/* ---- http_h1.c, http_h2.c: process-wide setup ---- */
void rn__h1_settings(http_parser_settings *s);
rn_err_t rn__h2_global_init(rn_http_t *hs);
void rn__h2_global_free(rn_http_t *hs);

#endif
