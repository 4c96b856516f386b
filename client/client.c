/*
 * client.c — the client handle: one TCP connection to one broker, owned by a
 * private libuv loop on an internal I/O thread, with pipelined requests.
 * The broker is the current entry of a bootstrap list (conf.broker,
 * "host:port[,host:port...]"): a failed attempt moves to the next entry at
 * once, and waiting requests fail only when every entry failed in a row.
 * In a cluster the client also owns a pool of leader connections
 * (rn__client_route): each is a client of its own (one address, its own
 * loop and I/O thread, the same configuration), keyed by the leader's
 * address, made on first use, destroyed with the bootstrap client. Their
 * I/O threads count as this client's for rn__client_on_io_thread (no
 * blocking call there), but each loop is touched only by its own thread.
 *
 * Invariants:
 *   - Only the I/O thread touches the loop, the connection, the pending and
 *     in-flight lists and the agents list's run state. Other threads talk
 *     to it through cl->mu-protected fields (submit queue, agent add/remove
 *     requests, the closing flag) and uv_async_send.
 *   - Every submitted request's callback runs exactly once: with the
 *     response, or with RN_ECONNECTION (connection attempt failed while it
 *     waited / connection lost while it was on the wire), RN_ETIMEDOUT (its
 *     deadline passed) or RN_ECANCELED (client destroyed).
 *   - Callbacks run without cl->mu held, so they may submit more requests.
 *   - A request is pending (waiting for a connection) or in flight (written,
 *     awaiting the response with its correlation id); the frame bytes move
 *     to the write request when written, so a response that overtakes the
 *     write callback never frees bytes libuv still reads. Bytes a frame only
 *     refers to (rn__client_submit_ref: a produce request's batches, sent
 *     by the same writev) are released to their owner when that write
 *     completed, or when the request failed without being written: never
 *     while libuv may still read them, even when the request itself timed
 *     out meanwhile.
 *   - Reconnect: connections are made on demand; after a failure the next
 *     attempt waits for the backoff timer (doubling up to the maximum,
 *     reset by a successful connect).
 *
 * Per-iteration order on the I/O thread (one wake-up): drain the submit
 * queue and agent changes, run agents (they may submit), write pending
 * requests if connected (or start connecting; all pending frames go in one
 * writev), expire deadlines, re-arm the timer. Every I/O-thread event ends
 * in this pump (or in the timer it re-arms), so submits and agent wake-ups
 * made on the I/O thread itself need no uv_async_send (a system call per
 * request otherwise).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "client_int.h"
#include "rn_base.h"
#include "runnel/frame.h"

/* ---- time, thread-local error text ------------------------------------------- */

int64_t rn__mono_ms(void) { return (int64_t)(rn_clock_mono_ns(NULL) / 1000000); }

int64_t rn__wall_ms(void) { return rn_clock_wall_ms(NULL); }

static _Thread_local char tls_errmsg[512];

const char *rn_last_error_message(void) { return tls_errmsg; }

void rn__errmsg_set(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tls_errmsg, sizeof tls_errmsg, fmt, ap);
  va_end(ap);
}

void rn__errmsg_clear(void) { tls_errmsg[0] = '\0'; }

rn_err_t rn__pb_error(const Runnel__Error *e, char *msg, size_t n) {
  if (e == NULL || e->code == 0) return 0;
  if (msg != NULL && n > 0) snprintf(msg, n, "%s", e->message ? e->message : "");
  rn_err_t err = rn_err_from_wire(e->code);
  return err == 0 ? RN_EIO : err;
}

/* ---- structures ------------------------------------------------------------------- */

/* A byte range a frame refers to instead of copying it: it goes on the
 * wire right before frame[at]. */
typedef struct rn__wref {
  size_t at;
  const uint8_t *data;
  size_t len;
} rn__wref_t;

/* The bytes of one request's frame: copied bytes (frame header and small
 * fields) interleaved with referenced ones. Owned by the request until it
 * is written, then by the write; wframe_done frees and releases. */
typedef struct rn__wframe {
  uint8_t *buf; /* owned */
  size_t len, cap;
  rn__wref_t *refs; /* owned */
  size_t nrefs, refs_cap;
  rn__release_cb release; /* NULL: nothing referenced */
  void *rel_arg;
} rn__wframe_t;

static void wframe_done(rn__wframe_t *f) {
  free(f->buf);
  free(f->refs);
  if (f->release) f->release(f->rel_arg);
  memset(f, 0, sizeof *f);
}

typedef struct rn__req {
  struct rn__req *next, *prev;
  uint64_t corr_id;
  rn__wframe_t wf; /* owned until written */
  size_t frame_len; /* on the wire: header, copied and referenced bytes */
  int64_t deadline;
  rn__req_cb cb;
  void *arg;
} rn__req_t;

typedef struct {
  rn__req_t head; /* sentinel of a circular doubly-linked list */
} rn__reqlist_t;

/* Connection states and their transitions (I/O thread):
 *   IDLE -> RESOLVING (a request is pending) -> CONNECTING -> HANDSHAKE
 *   (TCP is up; the BrokerInfo request is on the wire, nothing else is
 *   written) -> UP (its answer came: limits known; pending requests go out).
 *   A failure before UP fails the attempt (every pending request); a loss
 *   while UP fails what is on the wire. Either way -> BACKOFF -> IDLE. The
 *   connect timeout covers RESOLVING, CONNECTING and HANDSHAKE. */
typedef enum { CONN_IDLE, CONN_RESOLVING, CONN_CONNECTING, CONN_HANDSHAKE, CONN_UP, CONN_BACKOFF } conn_state_t;

typedef struct rn__conn {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  rn_client_t *cl;
  bool current; /* false once abandoned (closing) */
  uint8_t *rbuf;
  size_t rlen, rcap;
} rn__conn_t;

typedef struct {
  uv_write_t w;
  rn__conn_t *conn;
  size_t nframes;
  rn__wframe_t frames[]; /* owned: freed (and released) when the write completed */
} rn__wreq_t;

/* A pooled connection to one leader (rn__client_route): a client of its
 * own with one address, owned by the bootstrap client. */
typedef struct rn__peer {
  struct rn__peer *next;
  char *addr; /* owned: the pool key */
  rn_client_t *cl;
} rn__peer_t;

struct rn_client {
  rn_client_conf_t conf;
  char *conf_broker; /* owned copy of conf.broker (the whole list) */
  rn__addr_t *addrs; /* owned: the bootstrap list */
  size_t naddrs;
  size_t cur;   /* the address connections go to now (I/O thread) */
  size_t tried; /* addresses that failed in a row since the last success */
  const char *host, *port, *broker; /* addrs[cur]'s (I/O thread; broker: for messages) */

  rn_client_t *root; /* the bootstrap client: itself, or the pool's owner */
  pthread_mutex_t pool_mu; /* guards pool; a leaf lock */
  rn__peer_t *pool;

  pthread_t thread;
  uv_loop_t loop;
  uv_async_t async;
  uv_timer_t timer;   /* earliest deadline of requests and agents */
  uv_timer_t backoff; /* reconnect backoff and connect timeout */
  uv_getaddrinfo_t *gai; /* the resolution under way (freed by its callback) */

  atomic_uint_fast64_t next_corr;

  /* ---- shared, under mu ---- */
  pthread_mutex_t mu;
  pthread_cond_t cond;        /* agent removal done */
  rn__reqlist_t submitq;      /* submitted, not yet seen by the I/O thread */
  rn__agent_t *agents_add;    /* to add (linked through next) */
  rn__agent_t *agent_removing; /* to remove; the requester waits on cond */
  bool agent_removed;
  bool closing;
  bool wake_agents;

  /* ---- I/O thread only ---- */
  rn__reqlist_t pending;  /* waiting for a connection */
  rn__reqlist_t inflight; /* written, awaiting response */
  rn__agent_t *agents;
  conn_state_t state;
  rn__conn_t *conn; /* current connection, when CONNECTING, HANDSHAKE or UP */
  uint64_t conn_gen; /* raised per connection: tells a stale handshake answer */
  uint32_t backoff_ms;
  bool stopping;

  /* The broker's limits as of the latest handshake (defaults before the
   * first one, or from a broker without BrokerInfo). Written by the I/O
   * thread under mu, read by any thread (rn__client_limits). */
  rn__limits_t limits;
  atomic_uint limits_gen; /* bumped after every change of limits (rn__client_limits_gen) */
};

/* ---- request lists -------------------------------------------------------------- */

static void rl_init(rn__reqlist_t *l) { l->head.next = l->head.prev = &l->head; }
static bool rl_empty(const rn__reqlist_t *l) { return l->head.next == &l->head; }
static void rl_unlink(rn__req_t *r) {
  r->prev->next = r->next;
  r->next->prev = r->prev;
  r->next = r->prev = NULL;
}
static void rl_push(rn__reqlist_t *l, rn__req_t *r) {
  r->prev = l->head.prev;
  r->next = &l->head;
  l->head.prev->next = r;
  l->head.prev = r;
}
/* Move every element of src to the end of dst. */
static void rl_splice(rn__reqlist_t *dst, rn__reqlist_t *src) {
  if (rl_empty(src)) return;
  rn__req_t *first = src->head.next, *last = src->head.prev;
  first->prev = dst->head.prev;
  dst->head.prev->next = first;
  last->next = &dst->head;
  dst->head.prev = last;
  rl_init(src);
}

static void req_complete(rn__req_t *r, rn_err_t err, const char *msg, Runnel__Response *resp) {
  r->cb(r->arg, err, msg, resp);
  wframe_done(&r->wf); /* not written (else the write owns it): nobody reads it */
  free(r);
}

/* Fail every request of l (moved out first, so callbacks may submit). */
static void fail_all(rn__reqlist_t *l, rn_err_t err, const char *msg) {
  rn__reqlist_t tmp;
  rl_init(&tmp);
  rl_splice(&tmp, l);
  while (!rl_empty(&tmp)) {
    rn__req_t *r = tmp.head.next;
    rl_unlink(r);
    req_complete(r, err, msg, NULL);
  }
}

/* ---- configuration ---------------------------------------------------------------- */

void rn_client_conf_init(rn_client_conf_t *conf) {
  memset(conf, 0, sizeof *conf);
  conf->broker = RN_DEFAULT_BROKER;
  conf->connect_timeout_ms = 5000;
  conf->request_timeout_ms = 30000;
  conf->reconnect_backoff_ms = 100;
  conf->reconnect_backoff_max_ms = 5000;
  conf->max_frame_bytes = 64u << 20;
}

const rn_client_conf_t *rn__client_conf(const rn_client_t *cl) { return &cl->conf; }

/* Split "host:port" / "[v6]:port". */
static rn_err_t parse_broker(const char *s, char **host, char **port) {
  const char *colon, *hs, *he;
  if (s == NULL || *s == '\0') return RN_EINVAL;
  if (s[0] == '[') {
    he = strchr(s, ']');
    if (he == NULL || he[1] != ':') return RN_EINVAL;
    hs = s + 1;
    colon = he + 1;
  } else {
    colon = strrchr(s, ':');
    if (colon == NULL) return RN_EINVAL;
    hs = s;
    he = colon;
  }
  const char *ps = colon + 1;
  if (he == hs || *ps == '\0' || strlen(ps) > 5) return RN_EINVAL;
  for (const char *p = ps; *p; p++)
    if (*p < '0' || *p > '9') return RN_EINVAL;
  long port_n = strtol(ps, NULL, 10);
  if (port_n < 1 || port_n > 65535) return RN_EINVAL;
  *host = strndup(hs, (size_t)(he - hs));
  *port = strdup(ps);
  if (*host == NULL || *port == NULL) {
    free(*host);
    free(*port);
    return RN_ENOMEM;
  }
  return 0;
}

void rn__addr_list_free(rn__addr_t *a, size_t n) {
  if (a == NULL) return;
  for (size_t i = 0; i < n; i++) {
    free(a[i].host);
    free(a[i].port);
    free(a[i].text);
  }
  free(a);
}

rn_err_t rn__addr_list_parse(const char *s, rn__addr_t **out, size_t *n) {
  if (s == NULL) return RN_EINVAL;
  size_t cap = 1;
  for (const char *p = s; *p; p++)
    if (*p == ',') cap++;
  rn__addr_t *a = calloc(cap, sizeof *a);
  if (a == NULL) return RN_ENOMEM;
  size_t k = 0;
  rn_err_t err = 0;
  for (const char *p = s;;) {
    const char *e = strchr(p, ',');
    if (e == NULL) e = p + strlen(p);
    const char *b = p, *z = e;
    while (b < z && (*b == ' ' || *b == '\t')) b++;
    while (z > b && (z[-1] == ' ' || z[-1] == '\t')) z--;
    char *one = strndup(b, (size_t)(z - b));
    if (one == NULL) {
      err = RN_ENOMEM;
      break;
    }
    err = parse_broker(one, &a[k].host, &a[k].port);
    if (err) {
      free(one);
      break;
    }
    a[k++].text = one;
    if (*e == '\0') break;
    p = e + 1;
  }
  if (err) {
    rn__addr_list_free(a, k);
    return err;
  }
  *out = a;
  *n = k;
  return 0;
}

bool rn__err_moved(rn_err_t err) {
  return err == RN_ENOTLEADER || err == RN_ENOTENOUGHREPLICAS || err == RN_ESTALEEPOCH;
}

/* ---- connection --------------------------------------------------------------------- */

static void conn_start(rn_client_t *cl);
static void pump(rn_client_t *cl);
static void on_write(uv_write_t *w, int status);
static void backoff_cb(uv_timer_t *t);

static void conn_close_cb(uv_handle_t *h) {
  rn__conn_t *conn = h->data;
  free(conn->rbuf);
  free(conn);
}

/* Abandon the current connection (if any) and close its socket. */
static void conn_drop(rn_client_t *cl) {
  rn__conn_t *conn = cl->conn;
  if (conn == NULL) return;
  cl->conn = NULL;
  conn->current = false;
  if (!uv_is_closing((uv_handle_t *)&conn->tcp)) uv_close((uv_handle_t *)&conn->tcp, conn_close_cb);
}

static void enter_backoff(rn_client_t *cl) {
  cl->state = CONN_BACKOFF;
  uint32_t d = cl->backoff_ms;
  uint64_t nextb = (uint64_t)cl->backoff_ms * 2;
  cl->backoff_ms = nextb > cl->conf.reconnect_backoff_max_ms ? cl->conf.reconnect_backoff_max_ms
                                                             : (uint32_t)nextb;
  if (cl->backoff_ms == 0) cl->backoff_ms = 1;
  uv_timer_stop(&cl->backoff);
  uv_timer_start(&cl->backoff, backoff_cb, d, 0);
}

static void use_addr(rn_client_t *cl, size_t i) {
  cl->cur = i;
  cl->host = cl->addrs[i].host;
  cl->port = cl->addrs[i].port;
  cl->broker = cl->addrs[i].text;
}

/* A connection attempt failed (before UP). With a bootstrap list, the
 * next address is tried at once while some address has not failed since
 * the last success: pending requests keep waiting. Once every one failed
 * in a row, everything waiting fails with err — the handshake request on
 * the wire, and every pending request — and the next attempt (at the next
 * address) waits for the backoff. */
static void attempt_failed(rn_client_t *cl, rn_err_t err, const char *msg) {
  if (cl->gai) { /* its callback frees it and sees it is no longer current */
    uv_cancel((uv_req_t *)cl->gai);
    cl->gai = NULL;
  }
  conn_drop(cl);
  uv_timer_stop(&cl->backoff);
  if (cl->naddrs > 1) use_addr(cl, (cl->cur + 1) % cl->naddrs);
  if (cl->naddrs > 1 && ++cl->tried < cl->naddrs && err != RN_EPROTOCOL) {
    /* the handshake (if any) fails; the pending wait for the next address */
    cl->state = CONN_BACKOFF;
    uv_timer_start(&cl->backoff, backoff_cb, 0, 0);
    fail_all(&cl->inflight, err, msg);
    return;
  }
  cl->tried = 0;
  enter_backoff(cl);
  fail_all(&cl->inflight, err, msg);
  fail_all(&cl->pending, err, msg);
}

static void connect_failed(rn_client_t *cl, const char *what, int uverr) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s %s: %s", what, cl->broker, uv_strerror(uverr));
  attempt_failed(cl, RN_ECONNECTION, msg);
}

/* The connection was lost: everything on the wire fails. Pending requests
 * (not yet written) wait for the next attempt — unless the handshake had
 * not finished: then the attempt failed. */
static void conn_lost(rn_client_t *cl, const char *why) {
  char msg[300];
  if (cl->state == CONN_HANDSHAKE) {
    snprintf(msg, sizeof msg, "connection to %s lost during the handshake: %s", cl->broker, why);
    attempt_failed(cl, RN_ECONNECTION, msg);
    return;
  }
  snprintf(msg, sizeof msg, "connection to %s lost: %s", cl->broker, why);
  conn_drop(cl);
  enter_backoff(cl);
  fail_all(&cl->inflight, RN_ECONNECTION, msg);
}

static void backoff_cb(uv_timer_t *t) {
  rn_client_t *cl = t->data;
  if (cl->state == CONN_BACKOFF) {
    cl->state = CONN_IDLE;
    if (!rl_empty(&cl->pending)) conn_start(cl);
  } else if (cl->state == CONN_RESOLVING || cl->state == CONN_CONNECTING) {
    /* connect timeout */
    connect_failed(cl, "connect", UV_ETIMEDOUT);
  } else if (cl->state == CONN_HANDSHAKE) {
    char msg[300];
    snprintf(msg, sizeof msg,
             "%s accepted the connection but did not answer the handshake within %u ms: is it runneld's native "
             "protocol port?",
             cl->broker, cl->conf.connect_timeout_ms);
    attempt_failed(cl, RN_ETIMEDOUT, msg);
  }
  pump(cl);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  rn__conn_t *conn = h->data;
  size_t want = conn->rlen + (suggested < 65536 ? 65536 : suggested);
  if (want > conn->rcap) {
    size_t cap = conn->rcap ? conn->rcap : 65536;
    while (cap < want) cap *= 2;
    uint8_t *nb = realloc(conn->rbuf, cap);
    if (nb == NULL) {
      *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
      return;
    }
    conn->rbuf = nb;
    conn->rcap = cap;
  }
  *buf = uv_buf_init((char *)conn->rbuf + conn->rlen, (unsigned)(conn->rcap - conn->rlen));
}

static rn__req_t *inflight_take(rn_client_t *cl, uint64_t corr) {
  /* Responses mostly come in order: scan from the oldest. */
  for (rn__req_t *r = cl->inflight.head.next; r != &cl->inflight.head; r = r->next) {
    if (r->corr_id == corr) {
      rl_unlink(r);
      return r;
    }
  }
  return NULL;
}

/* The first bytes of the connection are not a runnel frame: whatever
 * answered is not a runnel broker's native port. Fails the attempt with
 * RN_EPROTOCOL (not retriable: trying again reaches the same server). */
static void not_runnel(rn_client_t *cl, const uint8_t *p, size_t n) {
  char msg[400];
  if (n >= 4 && memcmp(p, "HTTP", 4) == 0) {
    snprintf(msg, sizeof msg,
             "%s answered in HTTP: that is runneld's HTTP port (Kinesis API, REST, /metrics); the native protocol "
             "port is 7400 by default",
             cl->broker);
  } else if (n >= 2 && (p[0] == 0x15 || p[0] == 0x16) && p[1] == 0x03) {
    /* a TLS record (alert or handshake): a TLS listener, such as runneld's
     * HTTP port with http_tls_cert */
    snprintf(msg, sizeof msg,
             "%s answered in TLS: is it runneld's HTTP port (Kinesis API, REST, /metrics) with TLS? The native "
             "protocol port is 7400 by default",
             cl->broker);
  } else {
    snprintf(msg, sizeof msg, "%s does not speak runnel's native protocol (its first answer is not a runnel frame)",
             cl->broker);
  }
  attempt_failed(cl, RN_EPROTOCOL, msg);
}

/* A Response with correlation id 0 and an error: the broker failed the
 * connection itself (a framing error: a request frame above its
 * max_frame_bytes) and closes it after this. The requests larger than the
 * limit it names fail with that error (not retriable); the rest of what is
 * on the wire fails as a lost connection. Takes resp. */
static void conn_error(rn_client_t *cl, Runnel__Response *resp) {
  const Runnel__Error *e = resp->error;
  rn_err_t err = rn__pb_error(e, NULL, 0);
  char why[300];
  snprintf(why, sizeof why, "%s: %s", rn_err_name(err), e->message && e->message[0] ? e->message : rn_strerror(err));
  if (err == RN_ETOOLARGE && e->limit > 0) {
    pthread_mutex_lock(&cl->mu);
    if (e->limit < cl->limits.max_frame_bytes) cl->limits.max_frame_bytes = (uint32_t)e->limit;
    atomic_fetch_add_explicit(&cl->limits_gen, 1, memory_order_release);
    pthread_mutex_unlock(&cl->mu);
    rn__reqlist_t big;
    rl_init(&big);
    for (rn__req_t *r = cl->inflight.head.next, *n; r != &cl->inflight.head; r = n) {
      n = r->next;
      if (r->frame_len - RN_FRAME_HEADER_BYTES > e->limit) {
        rl_unlink(r);
        rl_push(&big, r);
      }
    }
    while (!rl_empty(&big)) {
      rn__req_t *r = big.head.next;
      rl_unlink(r);
      char msg[300];
      snprintf(msg, sizeof msg, "request of %zu bytes exceeds the broker's max_frame_bytes %" PRIu64,
               r->frame_len - RN_FRAME_HEADER_BYTES, e->limit);
      req_complete(r, RN_ETOOLARGE, msg, NULL);
    }
  }
  runnel__response__free_unpacked(resp, NULL);
  conn_lost(cl, why);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  rn__conn_t *conn = s->data;
  rn_client_t *cl = conn->cl;
  (void)buf;
  if (!conn->current) return;
  if (nread < 0) {
    if (cl->state == CONN_HANDSHAKE && conn->rlen > 0) {
      /* it said something that was not a whole runnel frame, then closed */
      not_runnel(cl, conn->rbuf, conn->rlen);
    } else {
      conn_lost(cl, nread == UV_EOF ? "closed by the broker" : uv_strerror((int)nread));
    }
    pump(cl);
    return;
  }
  conn->rlen += (size_t)nread;
  size_t pos = 0;
  while (conn->current) {
    /* Before the handshake's answer nothing has come from this peer yet:
     * an HTTP status line where a length should be is a wrong port. */
    if (cl->state == CONN_HANDSHAKE && pos == 0 && conn->rlen >= 4 && memcmp(conn->rbuf, "HTTP", 4) == 0) {
      not_runnel(cl, conn->rbuf, conn->rlen);
      break;
    }
    rn_frame_t fr;
    rn_err_t err = rn_frame_decode(conn->rbuf + pos, conn->rlen - pos, cl->conf.max_frame_bytes, &fr, NULL);
    if (err == RN_EPARTIAL) break;
    if (err != 0) {
      if (cl->state == CONN_HANDSHAKE && pos == 0) {
        not_runnel(cl, conn->rbuf, conn->rlen);
      } else {
        conn_lost(cl, "protocol error: response frame larger than max_frame_bytes");
      }
      break;
    }
    Runnel__Response *resp = runnel__response__unpack(NULL, fr.payload_len, fr.payload);
    pos += fr.frame_len;
    if (resp == NULL) {
      if (cl->state == CONN_HANDSHAKE && pos == fr.frame_len) {
        not_runnel(cl, conn->rbuf, conn->rlen);
      } else {
        conn_lost(cl, "protocol error: undecodable response");
      }
      break;
    }
    if (resp->correlation_id == 0 && resp->error != NULL && resp->error->code != 0) {
      conn_error(cl, resp);
      break;
    }
    rn__req_t *r = inflight_take(cl, resp->correlation_id);
    if (r == NULL) { /* timed out earlier: nobody waits */
      runnel__response__free_unpacked(resp, NULL);
      continue;
    }
    req_complete(r, 0, NULL, resp);
  }
  if (conn->current) {
    if (pos > 0) {
      memmove(conn->rbuf, conn->rbuf + pos, conn->rlen - pos);
      conn->rlen -= pos;
    }
  }
  pump(cl);
}

/* ---- handshake ---------------------------------------------------------------------- */

void rn__limits_default(rn__limits_t *l) {
  l->max_record_bytes = RN_DEFAULT_MAX_RECORD_BYTES;
  l->max_batch_bytes = RN_DEFAULT_MAX_BATCH_BYTES;
  l->max_frame_bytes = RN_DEFAULT_MAX_FRAME_BYTES;
  l->max_fetch_bytes = RN_DEFAULT_MAX_FETCH_BYTES;
  l->from_broker = false;
}

unsigned rn__client_limits_gen(rn_client_t *cl) {
  return atomic_load_explicit(&cl->limits_gen, memory_order_acquire);
}

void rn__client_limits(rn_client_t *cl, rn__limits_t *out) {
  pthread_mutex_lock(&cl->mu);
  *out = cl->limits;
  pthread_mutex_unlock(&cl->mu);
}

typedef struct {
  rn_client_t *cl;
  uint64_t gen; /* the connection this handshake belongs to */
} handshake_t;

/* The answer to the connection's BrokerInfo (or its failure). */
static void handshake_cb(void *arg, rn_err_t err, const char *msg, Runnel__Response *resp) {
  handshake_t *hs = arg;
  rn_client_t *cl = hs->cl;
  bool current = !cl->stopping && cl->state == CONN_HANDSHAKE && cl->conn_gen == hs->gen;
  free(hs);
  if (!current) { /* the attempt already failed (and failed this with it) */
    if (resp) runnel__response__free_unpacked(resp, NULL);
    return;
  }
  if (err) { /* expired: no answer within the request timeout */
    attempt_failed(cl, err, msg);
    return;
  }
  rn__limits_t l;
  rn__limits_default(&l);
  rn_err_t rerr = rn__pb_error(resp->error, NULL, 0);
  if (rerr == 0 && resp->op_case == RUNNEL__RESPONSE__OP_BROKER_INFO && resp->broker_info->limits) {
    const Runnel__BrokerLimits *bl = resp->broker_info->limits;
    if (bl->max_record_bytes) l.max_record_bytes = bl->max_record_bytes;
    if (bl->max_batch_bytes) l.max_batch_bytes = bl->max_batch_bytes;
    if (bl->max_frame_bytes) l.max_frame_bytes = bl->max_frame_bytes;
    if (bl->max_fetch_bytes) l.max_fetch_bytes = bl->max_fetch_bytes;
    l.from_broker = true;
  }
  /* Any request-level error (EUNKNOWNOP from a broker older than BrokerInfo,
   * ESHUTDOWN, ...) leaves the defaults: the connection itself works. */
  runnel__response__free_unpacked(resp, NULL);
  pthread_mutex_lock(&cl->mu);
  cl->limits = l;
  atomic_fetch_add_explicit(&cl->limits_gen, 1, memory_order_release);
  pthread_mutex_unlock(&cl->mu);
  uv_timer_stop(&cl->backoff);
  cl->state = CONN_UP;
  cl->tried = 0;
  cl->backoff_ms = cl->conf.reconnect_backoff_ms;
  /* the pump that ends this event writes the pending requests */
}

/* Write the BrokerInfo request, ahead of every pending request, and put it
 * in flight. I/O thread, state HANDSHAKE. */
static rn_err_t handshake_send(rn_client_t *cl) {
  Runnel__BrokerInfoRequest bir;
  runnel__broker_info_request__init(&bir);
  bir.skip_disk = true; /* answered from memory: never behind the broker's disk work */
  Runnel__Request msg;
  runnel__request__init(&msg);
  msg.op_case = RUNNEL__REQUEST__OP_BROKER_INFO;
  msg.broker_info = &bir;
  rn__req_t *r = calloc(1, sizeof *r);
  handshake_t *hs = malloc(sizeof *hs);
  rn__wreq_t *wr = malloc(sizeof *wr + sizeof wr->frames[0]);
  if (r) {
    r->corr_id = atomic_fetch_add(&cl->next_corr, 1);
    msg.correlation_id = r->corr_id;
    r->frame_len = rn_frame_encoded_len(&msg.base);
    r->wf.buf = malloc(r->frame_len);
    r->wf.cap = r->frame_len;
  }
  if (r == NULL || hs == NULL || wr == NULL || r->wf.buf == NULL) {
    if (r) free(r->wf.buf);
    free(r);
    free(hs);
    free(wr);
    return RN_ENOMEM;
  }
  rn_err_t err = rn_frame_encode(&msg.base, r->wf.buf, r->frame_len, &r->wf.len);
  assert(err == 0);
  (void)err;
  hs->cl = cl;
  hs->gen = cl->conn_gen;
  r->cb = handshake_cb;
  r->arg = hs;
  r->deadline = rn__mono_ms() + (int64_t)cl->conf.request_timeout_ms;
  wr->conn = cl->conn;
  wr->nframes = 1;
  wr->frames[0] = r->wf; /* the write owns the bytes */
  memset(&r->wf, 0, sizeof r->wf);
  uv_buf_t b = uv_buf_init((char *)wr->frames[0].buf, (unsigned)wr->frames[0].len);
  rl_push(&cl->inflight, r);
  int rc = uv_write(&wr->w, (uv_stream_t *)&cl->conn->tcp, &b, 1, on_write);
  if (rc < 0) {
    rl_unlink(r);
    wframe_done(&wr->frames[0]);
    free(wr);
    free(hs);
    free(r);
    return RN_ECONNECTION;
  }
  return 0;
}

static void on_connect(uv_connect_t *req, int status) {
  rn__conn_t *conn = req->data;
  rn_client_t *cl = conn->cl;
  if (!conn->current) return; /* abandoned (timeout or shutdown); close pending */
  if (status < 0) {
    connect_failed(cl, "connect", status);
    pump(cl);
    return;
  }
  uv_tcp_nodelay(&conn->tcp, 1);
  int rc = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
  if (rc < 0) {
    connect_failed(cl, "read from", rc);
    pump(cl);
    return;
  }
  /* The connect timer keeps running: it covers the handshake too. */
  cl->state = CONN_HANDSHAKE;
  cl->conn_gen++;
  rn_err_t err = handshake_send(cl);
  if (err) {
    char msg[200];
    snprintf(msg, sizeof msg, "handshake with %s: %s", cl->broker, rn_strerror(err));
    attempt_failed(cl, err, msg);
  }
  pump(cl);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  rn_client_t *cl = req->data;
  bool current = cl->gai == req;
  free(req);
  if (!current || cl->stopping) {
    uv_freeaddrinfo(res);
    return;
  }
  cl->gai = NULL;
  if (status < 0) {
    uv_freeaddrinfo(res);
    connect_failed(cl, "resolve", status);
    pump(cl);
    return;
  }
  rn__conn_t *conn = calloc(1, sizeof *conn);
  if (conn == NULL) {
    uv_freeaddrinfo(res);
    connect_failed(cl, "connect", UV_ENOMEM);
    pump(cl);
    return;
  }
  conn->cl = cl;
  conn->current = true;
  uv_tcp_init(&cl->loop, &conn->tcp);
  conn->tcp.data = conn;
  conn->connect_req.data = conn;
  cl->conn = conn;
  cl->state = CONN_CONNECTING;
  int rc = uv_tcp_connect(&conn->connect_req, &conn->tcp, res->ai_addr, on_connect);
  uv_freeaddrinfo(res);
  if (rc < 0) {
    connect_failed(cl, "connect", rc);
    pump(cl);
  }
}

static void conn_start(rn_client_t *cl) {
  assert(cl->state == CONN_IDLE);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  uv_getaddrinfo_t *gai = malloc(sizeof *gai);
  if (gai == NULL) {
    connect_failed(cl, "resolve", UV_ENOMEM);
    return;
  }
  gai->data = cl;
  cl->gai = gai;
  cl->state = CONN_RESOLVING;
  /* the connect timeout covers resolution and the TCP handshake */
  uv_timer_start(&cl->backoff, backoff_cb, cl->conf.connect_timeout_ms, 0);
  int rc = uv_getaddrinfo(&cl->loop, gai, on_resolved, cl->host, cl->port, &hints);
  if (rc < 0) {
    cl->gai = NULL;
    free(gai);
    connect_failed(cl, "resolve", rc);
  }
}

/* ---- writing ------------------------------------------------------------------------- */

static void on_write(uv_write_t *w, int status) {
  rn__wreq_t *wr = (rn__wreq_t *)w;
  rn__conn_t *conn = wr->conn;
  for (size_t i = 0; i < wr->nframes; i++) wframe_done(&wr->frames[i]);
  free(wr);
  if (status < 0 && conn->current) {
    rn_client_t *cl = conn->cl;
    conn_lost(cl, uv_strerror(status));
    pump(cl);
  }
}

/* Pending requests per write: one uv_write (one writev) carries up to this
 * many frames, so a burst of pipelined requests costs one system call. */
#define RN__WRITE_BATCH 64u

/* Fail the pending requests whose frame the broker would refuse (above its
 * max_frame_bytes): sending one would only make the broker close the
 * connection. */
static void refuse_oversized(rn_client_t *cl) {
  uint32_t limit = cl->limits.max_frame_bytes; /* written only by this thread */
  rn__reqlist_t big;
  rl_init(&big);
  for (rn__req_t *r = cl->pending.head.next, *n; r != &cl->pending.head; r = n) {
    n = r->next;
    if (r->frame_len - RN_FRAME_HEADER_BYTES > limit) {
      rl_unlink(r);
      rl_push(&big, r);
    }
  }
  while (!rl_empty(&big)) {
    rn__req_t *r = big.head.next;
    rl_unlink(r);
    char msg[200];
    snprintf(msg, sizeof msg, "request of %zu bytes exceeds the broker's max_frame_bytes %u",
             r->frame_len - RN_FRAME_HEADER_BYTES, limit);
    req_complete(r, RN_ETOOLARGE, msg, NULL);
  }
}

static void write_pending(rn_client_t *cl) {
  if (cl->state == CONN_UP) refuse_oversized(cl);
  while (cl->state == CONN_UP && !rl_empty(&cl->pending)) {
    size_t n = 0, nb = 0;
    for (rn__req_t *r = cl->pending.head.next; r != &cl->pending.head && n < RN__WRITE_BATCH; r = r->next) {
      n++;
      nb += 1 + 2 * r->wf.nrefs;
    }
    rn__wreq_t *wr = malloc(sizeof *wr + n * sizeof wr->frames[0]);
    uv_buf_t *bufs = malloc(nb * sizeof *bufs);
    if (wr == NULL || bufs == NULL) {
      free(wr);
      free(bufs);
      rn__req_t *r = cl->pending.head.next;
      rl_unlink(r);
      req_complete(r, RN_ENOMEM, "out of memory writing a request", NULL);
      continue;
    }
    wr->conn = cl->conn;
    wr->nframes = n;
    nb = 0;
    for (size_t i = 0; i < n; i++) {
      rn__req_t *r = cl->pending.head.next;
      rn__wframe_t *f = &wr->frames[i];
      *f = r->wf; /* the write owns the bytes from now on */
      memset(&r->wf, 0, sizeof r->wf);
      size_t pos = 0;
      for (size_t k = 0; k < f->nrefs; k++) {
        const rn__wref_t *ref = &f->refs[k];
        if (ref->at > pos) bufs[nb++] = uv_buf_init((char *)f->buf + pos, (unsigned)(ref->at - pos));
        bufs[nb++] = uv_buf_init((char *)(uintptr_t)ref->data, (unsigned)ref->len);
        pos = ref->at;
      }
      if (f->len > pos) bufs[nb++] = uv_buf_init((char *)f->buf + pos, (unsigned)(f->len - pos));
      rl_unlink(r);
      rl_push(&cl->inflight, r);
    }
    int rc = uv_write(&wr->w, (uv_stream_t *)&cl->conn->tcp, bufs, (unsigned)nb, on_write); /* copies bufs */
    free(bufs);
    if (rc < 0) {
      for (size_t i = 0; i < n; i++) wframe_done(&wr->frames[i]);
      free(wr);
      conn_lost(cl, uv_strerror(rc));
    }
  }
}

/* ---- the loop's work ----------------------------------------------------------------- */

static void expire(rn_client_t *cl, rn__reqlist_t *l, int64_t now) {
  rn__reqlist_t tmp;
  rl_init(&tmp);
  for (rn__req_t *r = l->head.next, *n; r != &l->head; r = n) {
    n = r->next;
    if (r->deadline <= now) {
      rl_unlink(r);
      rl_push(&tmp, r);
    }
  }
  char msg[200];
  snprintf(msg, sizeof msg, "no answer from %s within the request timeout", cl->broker);
  fail_all(&tmp, RN_ETIMEDOUT, msg);
}

static void on_timer(uv_timer_t *t) { pump(t->data); }

/* Everything the I/O thread does after any event, in this order. */
static void pump(rn_client_t *cl) {
  if (cl->stopping) return;
  /* 1. the submit queue and agent changes */
  pthread_mutex_lock(&cl->mu);
  rl_splice(&cl->pending, &cl->submitq);
  while (cl->agents_add) {
    rn__agent_t *a = cl->agents_add;
    cl->agents_add = a->next;
    a->next = cl->agents;
    cl->agents = a;
    a->deadline = 0;
  }
  if (cl->agent_removing) {
    for (rn__agent_t **pp = &cl->agents; *pp; pp = &(*pp)->next) {
      if (*pp == cl->agent_removing) {
        *pp = (*pp)->next;
        break;
      }
    }
    cl->agent_removing = NULL;
    cl->agent_removed = true;
    pthread_cond_broadcast(&cl->cond);
  }
  pthread_mutex_unlock(&cl->mu);

  /* 2. agents whose deadline passed (rn__client_wake sets every deadline to 0) */
  int64_t now = rn__mono_ms();
  for (rn__agent_t *a = cl->agents; a; a = a->next) {
    if (a->deadline > now) continue;
    a->deadline = INT64_MAX;
    int64_t d = a->run(a, now);
    if (a->deadline != 0) a->deadline = d; /* 0: woken during its own run (a callback) */
  }
  /* agents may have submitted */
  pthread_mutex_lock(&cl->mu);
  rl_splice(&cl->pending, &cl->submitq);
  pthread_mutex_unlock(&cl->mu);

  /* 3. write or connect */
  if (!rl_empty(&cl->pending)) {
    if (cl->state == CONN_IDLE) conn_start(cl);
    write_pending(cl);
  }

  /* 4. deadlines */
  now = rn__mono_ms();
  expire(cl, &cl->pending, now);
  expire(cl, &cl->inflight, now);

  /* 5. re-arm the timer at the earliest deadline */
  int64_t next = INT64_MAX;
  for (rn__req_t *r = cl->pending.head.next; r != &cl->pending.head; r = r->next)
    if (r->deadline < next) next = r->deadline;
  for (rn__req_t *r = cl->inflight.head.next; r != &cl->inflight.head; r = r->next)
    if (r->deadline < next) next = r->deadline;
  for (rn__agent_t *a = cl->agents; a; a = a->next)
    if (a->deadline < next) next = a->deadline;
  /* a callback of steps 3-4 submitted on this thread (no wake-up was sent) */
  pthread_mutex_lock(&cl->mu);
  if (!rl_empty(&cl->submitq)) next = now;
  pthread_mutex_unlock(&cl->mu);
  uv_timer_stop(&cl->timer);
  if (next != INT64_MAX) {
    int64_t d = next - now;
    uv_update_time(&cl->loop);
    uv_timer_start(&cl->timer, on_timer, d < 0 ? 0 : (uint64_t)d, 0);
  }
}

static void close_walk_cb(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) {
    if (h->type == UV_TCP) {
      uv_close(h, conn_close_cb);
    } else {
      uv_close(h, NULL);
    }
  }
}

static void on_async(uv_async_t *a) {
  rn_client_t *cl = a->data;
  pthread_mutex_lock(&cl->mu);
  bool closing = cl->closing;
  bool wake = cl->wake_agents;
  cl->wake_agents = false;
  pthread_mutex_unlock(&cl->mu);
  if (!closing) {
    if (wake)
      for (rn__agent_t *ag = cl->agents; ag; ag = ag->next) ag->deadline = 0;
    pump(cl);
    return;
  }
  /* shutdown: fail everything, close every handle; uv_run then returns */
  cl->stopping = true;
  pthread_mutex_lock(&cl->mu);
  rl_splice(&cl->pending, &cl->submitq);
  pthread_mutex_unlock(&cl->mu);
  rl_splice(&cl->pending, &cl->inflight);
  if (cl->conn) cl->conn->current = false;
  cl->conn = NULL;
  fail_all(&cl->pending, RN_ECANCELED, "client destroyed");
  if (cl->gai) uv_cancel((uv_req_t *)cl->gai);
  uv_walk(&cl->loop, close_walk_cb, NULL);
}

/* The bootstrap client whose I/O thread (or one of whose pooled leader
 * connections' I/O thread) this thread is; NULL elsewhere. */
static _Thread_local const rn_client_t *tls_io_root;

static void *io_thread(void *arg) {
  rn_client_t *cl = arg;
  tls_io_root = cl->root;
  uv_run(&cl->loop, UV_RUN_DEFAULT);
  return NULL;
}

bool rn__client_on_io_thread(const rn_client_t *cl) { return tls_io_root != NULL && tls_io_root == cl->root; }

/* True on cl's own I/O thread (not a sibling's): where its loop and lists
 * may be touched directly. */
static bool on_own_thread(const rn_client_t *cl) { return pthread_equal(pthread_self(), cl->thread); }

/* ---- public lifecycle ------------------------------------------------------------ */

/* rn_client_new for a bootstrap client (root NULL) or for a leader
 * connection of root. */
static rn_err_t client_new(const rn_client_conf_t *conf, rn_client_t *root, rn_client_t **out) {
  rn_client_t *cl = calloc(1, sizeof *cl);
  if (cl == NULL) return RN_ENOMEM;
  if (conf) {
    cl->conf = *conf;
  } else {
    rn_client_conf_init(&cl->conf);
  }
  if (cl->conf.broker == NULL) cl->conf.broker = RN_DEFAULT_BROKER;
  if (cl->conf.max_frame_bytes == 0) cl->conf.max_frame_bytes = 64u << 20;
  if (cl->conf.reconnect_backoff_max_ms < cl->conf.reconnect_backoff_ms)
    cl->conf.reconnect_backoff_max_ms = cl->conf.reconnect_backoff_ms;
  rn_err_t err = rn__addr_list_parse(cl->conf.broker, &cl->addrs, &cl->naddrs);
  if (err) {
    if (err == RN_EINVAL)
      rn__errmsg_set("broker address \"%s\" is not HOST:PORT (or a comma-separated list of them)",
                     cl->conf.broker);
    free(cl);
    return err;
  }
  cl->conf_broker = strdup(cl->conf.broker);
  if (cl->conf_broker == NULL) {
    rn__addr_list_free(cl->addrs, cl->naddrs);
    free(cl);
    return RN_ENOMEM;
  }
  cl->conf.broker = cl->conf_broker;
  use_addr(cl, 0);
  cl->root = root ? root : cl;
  pthread_mutex_init(&cl->pool_mu, NULL);
  cl->backoff_ms = cl->conf.reconnect_backoff_ms ? cl->conf.reconnect_backoff_ms : 1;
  rn__limits_default(&cl->limits);
  atomic_init(&cl->next_corr, 1);
  rl_init(&cl->submitq);
  rl_init(&cl->pending);
  rl_init(&cl->inflight);
  pthread_mutex_init(&cl->mu, NULL);
  pthread_cond_init(&cl->cond, NULL);
  int rc = uv_loop_init(&cl->loop);
  if (rc == 0) rc = uv_async_init(&cl->loop, &cl->async, on_async);
  if (rc == 0) {
    cl->async.data = cl;
    uv_timer_init(&cl->loop, &cl->timer);
    uv_timer_init(&cl->loop, &cl->backoff);
    cl->timer.data = cl;
    cl->backoff.data = cl;
    /* The I/O thread runs with SIGPIPE blocked (it inherits this mask): a
     * write to a connection the broker reset must fail with EPIPE, not kill
     * the application. The caller's mask is restored at once. */
    sigset_t pipe_set, old_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
    rc = -pthread_create(&cl->thread, NULL, io_thread, cl);
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
  }
  if (rc != 0) {
    uv_walk(&cl->loop, close_walk_cb, NULL);
    uv_run(&cl->loop, UV_RUN_DEFAULT);
    uv_loop_close(&cl->loop);
    pthread_mutex_destroy(&cl->mu);
    pthread_cond_destroy(&cl->cond);
    pthread_mutex_destroy(&cl->pool_mu);
    rn__addr_list_free(cl->addrs, cl->naddrs);
    free(cl->conf_broker);
    free(cl);
    return rc; /* libuv errors are -errno on Unix */
  }
  *out = cl;
  return 0;
}

rn_err_t rn_client_new(const rn_client_conf_t *conf, rn_client_t **out) {
  rn__errmsg_clear();
  return client_new(conf, NULL, out);
}

void rn_client_destroy(rn_client_t *cl) {
  if (cl == NULL) return;
  assert(!rn__client_on_io_thread(cl));
  /* the leader connections first: their callbacks may still submit here */
  pthread_mutex_lock(&cl->pool_mu);
  rn__peer_t *pool = cl->pool;
  cl->pool = NULL;
  pthread_mutex_unlock(&cl->pool_mu);
  while (pool) {
    rn__peer_t *pe = pool;
    pool = pe->next;
    rn_client_destroy(pe->cl);
    free(pe->addr);
    free(pe);
  }
  pthread_mutex_lock(&cl->mu);
  assert(cl->agents_add == NULL);
  cl->closing = true;
  pthread_mutex_unlock(&cl->mu);
  uv_async_send(&cl->async);
  pthread_join(cl->thread, NULL);
  assert(cl->agents == NULL); /* producers must be destroyed first */
  int rc = uv_loop_close(&cl->loop);
  assert(rc == 0);
  (void)rc;
  pthread_mutex_destroy(&cl->mu);
  pthread_cond_destroy(&cl->cond);
  pthread_mutex_destroy(&cl->pool_mu);
  rn__addr_list_free(cl->addrs, cl->naddrs);
  free(cl->conf_broker);
  free(cl);
}

/* ---- leader connections ------------------------------------------------------- */

bool rn__client_is_peer(const rn_client_t *cl, const rn_client_t *target) { return target != cl; }

rn_client_t *rn__client_route(rn_client_t *cl, const char *address) {
  if (address == NULL || address[0] == '\0') return cl;
  cl = cl->root;
  if (cl->naddrs == 1 && strcmp(address, cl->addrs[0].text) == 0) return cl;
  pthread_mutex_lock(&cl->pool_mu);
  for (rn__peer_t *pe = cl->pool; pe; pe = pe->next) {
    if (strcmp(pe->addr, address) == 0) {
      pthread_mutex_unlock(&cl->pool_mu);
      return pe->cl;
    }
  }
  /* a new one: one address, cl's timeouts and backoff. rn_client_new only
   * starts a thread; the connection is made by its own loop on demand. */
  rn__peer_t *pe = calloc(1, sizeof *pe);
  rn_client_t *target = cl;
  if (pe && (pe->addr = strdup(address)) != NULL && strchr(address, ',') == NULL) {
    rn_client_conf_t conf = cl->conf;
    conf.broker = address;
    char saved[sizeof tls_errmsg];
    memcpy(saved, tls_errmsg, sizeof saved); /* the caller's message stays */
    rn_client_t *peer = NULL;
    if (client_new(&conf, cl, &peer) == 0) {
      pe->cl = peer;
      pe->next = cl->pool;
      cl->pool = pe;
      target = peer;
      pe = NULL;
    }
    memcpy(tls_errmsg, saved, sizeof saved);
  }
  if (pe) {
    free(pe->addr);
    free(pe);
  }
  pthread_mutex_unlock(&cl->pool_mu);
  return target;
}

/* ---- submitting -------------------------------------------------------------------- */

/* Packing a request into an rn__wframe_t: byte fields of at least min_ref
 * bytes are referenced, everything else is copied. */
typedef struct {
  ProtobufCBuffer base;
  rn__wframe_t *f;
  size_t min_ref;
  bool oom;
} packbuf_t;

static bool wframe_reserve(rn__wframe_t *f, size_t n) {
  if (f->cap - f->len >= n) return true;
  size_t cap = f->cap ? f->cap * 2 : 256;
  while (cap - f->len < n) cap *= 2;
  uint8_t *p = realloc(f->buf, cap);
  if (p == NULL) return false;
  f->buf = p;
  f->cap = cap;
  return true;
}

static void packbuf_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
  packbuf_t *pb = (packbuf_t *)b;
  rn__wframe_t *f = pb->f;
  if (pb->oom || len == 0) return;
  if (len >= pb->min_ref) {
    if (f->nrefs == f->refs_cap) {
      size_t cap = f->refs_cap ? f->refs_cap * 2 : 4;
      rn__wref_t *n = realloc(f->refs, cap * sizeof *n);
      if (n == NULL) {
        pb->oom = true;
        return;
      }
      f->refs = n;
      f->refs_cap = cap;
    }
    f->refs[f->nrefs++] = (rn__wref_t){.at = f->len, .data = data, .len = len};
    return;
  }
  if (!wframe_reserve(f, len)) {
    pb->oom = true;
    return;
  }
  memcpy(f->buf + f->len, data, len);
  f->len += len;
}

static rn_err_t submit(rn_client_t *cl, Runnel__Request *msg, uint32_t extra_timeout_ms, rn__req_cb cb, void *arg,
                       rn__release_cb release, void *rel_arg) {
  rn__req_t *r = calloc(1, sizeof *r);
  if (r == NULL) return RN_ENOMEM;
  r->corr_id = atomic_fetch_add(&cl->next_corr, 1);
  msg->correlation_id = r->corr_id;
  size_t n = protobuf_c_message_get_packed_size(&msg->base);
  if (n > RN_FRAME_MAX_PAYLOAD) {
    free(r);
    return RN_ETOOLARGE;
  }
  r->frame_len = RN_FRAME_HEADER_BYTES + n;
  if (release == NULL) {
    /* everything copied: one exact buffer */
    r->wf.buf = malloc(r->frame_len);
    if (r->wf.buf == NULL) {
      free(r);
      return RN_ENOMEM;
    }
    r->wf.cap = r->frame_len;
    rn_err_t err = rn_frame_encode(&msg->base, r->wf.buf, r->frame_len, &r->wf.len);
    if (err) {
      free(r->wf.buf);
      free(r);
      return err;
    }
  } else {
    packbuf_t pb = {.base = {.append = packbuf_append}, .f = &r->wf, .min_ref = RN__REF_MIN};
    if (wframe_reserve(&r->wf, RN_FRAME_HEADER_BYTES)) {
      rn_frame_put_header(r->wf.buf, (uint32_t)n);
      r->wf.len = RN_FRAME_HEADER_BYTES;
      protobuf_c_message_pack_to_buffer(&msg->base, &pb.base);
    } else {
      pb.oom = true;
    }
    size_t refd = 0;
    for (size_t i = 0; i < r->wf.nrefs; i++) refd += r->wf.refs[i].len;
    /* pack writes exactly get_packed_size bytes; a mismatch is a protobuf-c
     * bug that would corrupt the stream */
    rn_err_t err = pb.oom ? RN_ENOMEM : r->wf.len + refd != r->frame_len ? RN_EIO : 0;
    if (err) {
      free(r->wf.buf);
      free(r->wf.refs);
      free(r);
      return err;
    }
    r->wf.release = release;
    r->wf.rel_arg = rel_arg;
  }
  r->deadline = rn__mono_ms() + (int64_t)cl->conf.request_timeout_ms + (int64_t)extra_timeout_ms;
  r->cb = cb;
  r->arg = arg;
  pthread_mutex_lock(&cl->mu);
  if (cl->closing) {
    pthread_mutex_unlock(&cl->mu);
    free(r->wf.buf);
    free(r->wf.refs);
    free(r);
    return RN_ECANCELED;
  }
  rl_push(&cl->submitq, r);
  pthread_mutex_unlock(&cl->mu);
  /* On the I/O thread the queue is drained by the pump() that follows every
   * event (agents and callbacks run inside one): no wake-up needed. */
  if (!on_own_thread(cl)) uv_async_send(&cl->async);
  return 0;
}

rn_err_t rn__client_submit(rn_client_t *cl, Runnel__Request *msg, uint32_t extra_timeout_ms, rn__req_cb cb,
                           void *arg) {
  return submit(cl, msg, extra_timeout_ms, cb, arg, NULL, NULL);
}

rn_err_t rn__client_submit_ref(rn_client_t *cl, Runnel__Request *msg, uint32_t extra_timeout_ms, rn__req_cb cb,
                               void *arg, rn__release_cb release, void *rel_arg) {
  if (release == NULL) return RN_EINVAL;
  return submit(cl, msg, extra_timeout_ms, cb, arg, release, rel_arg);
}

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool done;
  rn_err_t err;
  char msg[400];
  Runnel__Response *resp;
} call_wait_t;

static void call_cb(void *arg, rn_err_t err, const char *msg, Runnel__Response *resp) {
  call_wait_t *w = arg;
  pthread_mutex_lock(&w->mu);
  w->err = err;
  w->resp = resp;
  if (msg) snprintf(w->msg, sizeof w->msg, "%s", msg);
  w->done = true;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

rn_err_t rn__client_call(rn_client_t *cl, Runnel__Request *msg, uint32_t extra_timeout_ms,
                         Runnel__Response **resp) {
  *resp = NULL;
  if (rn__client_on_io_thread(cl)) {
    rn__errmsg_set("blocking call from a librunnel callback");
    return RN_EBUSY;
  }
  call_wait_t w;
  memset(&w, 0, sizeof w);
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cond, NULL);
  rn_err_t err = rn__client_submit(cl, msg, extra_timeout_ms, call_cb, &w);
  if (err == 0) {
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cond, &w.mu);
    pthread_mutex_unlock(&w.mu);
    err = w.err;
  }
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cond);
  if (err) {
    rn__errmsg_set("%s", w.msg);
    return err;
  }
  err = rn__pb_error(w.resp->error, w.msg, sizeof w.msg);
  if (err) {
    rn__errmsg_set("%s", w.msg);
    runnel__response__free_unpacked(w.resp, NULL);
    return err;
  }
  *resp = w.resp;
  return 0;
}

/* ---- agents ---------------------------------------------------------------------- */

void rn__client_agent_add(rn_client_t *cl, rn__agent_t *a) {
  pthread_mutex_lock(&cl->mu);
  a->next = cl->agents_add;
  cl->agents_add = a;
  pthread_mutex_unlock(&cl->mu);
  uv_async_send(&cl->async);
}

void rn__client_agent_remove(rn_client_t *cl, rn__agent_t *a) {
  assert(!rn__client_on_io_thread(cl));
  pthread_mutex_lock(&cl->mu);
  /* still queued for addition? then it never ran */
  for (rn__agent_t **pp = &cl->agents_add; *pp; pp = &(*pp)->next) {
    if (*pp == a) {
      *pp = a->next;
      pthread_mutex_unlock(&cl->mu);
      return;
    }
  }
  while (cl->agent_removing != NULL) pthread_cond_wait(&cl->cond, &cl->mu);
  cl->agent_removing = a;
  cl->agent_removed = false;
  uv_async_send(&cl->async);
  while (cl->agent_removing == a) pthread_cond_wait(&cl->cond, &cl->mu);
  pthread_mutex_unlock(&cl->mu);
}

void rn__client_wake(rn_client_t *cl) {
  if (on_own_thread(cl)) {
    /* Inside an I/O-thread event: the pump() that ends it (or the timer it
     * re-arms at the earliest agent deadline) runs the agents. */
    for (rn__agent_t *a = cl->agents; a; a = a->next) a->deadline = 0;
    return;
  }
  pthread_mutex_lock(&cl->mu);
  cl->wake_agents = true;
  pthread_mutex_unlock(&cl->mu);
  uv_async_send(&cl->async);
}

rn_err_t rn__client_call_op(rn_client_t *cl, Runnel__Request *msg, Runnel__Response__OpCase want,
                            Runnel__Response **resp) {
  rn_err_t err = rn__client_call(cl, msg, 0, resp);
  if (err) return err;
  if ((*resp)->op_case != want) {
    int got = (int)(*resp)->op_case;
    runnel__response__free_unpacked(*resp, NULL);
    *resp = NULL;
    rn__errmsg_set("broker answered with the wrong message (%d for %d)", got, (int)want);
    return RN_EBADREQUEST;
  }
  return 0;
}
