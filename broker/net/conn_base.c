/*
 * conn_base.c — the connection base every protocol embeds (rn_conn_t):
 * accept with connection limits and the rate-limited reject log, peer
 * names, the reference count, close, the dead list, read start/stop and
 * writes with output-bytes accounting.
 *
 * Owns each connection's memory (allocated with ops->conn_size, freed from
 * the loop hook after ops->on_free) and its two handles (socket, timer).
 *
 * Invariants:
 *   - state follows the transitions written in rn_net.h, and only here.
 *   - A connection is on its listener's list exactly while RN_CONN_OPEN, on
 *     the dead list exactly while RN_CONN_DEAD, and freed only from there.
 *   - refs counts 1 for the two handles until both closed, plus every
 *     rn_conn_ref (each write in flight holds one); the last unref after
 *     the close makes it dead. So a connection is never freed inside one
 *     of its own callbacks: the earliest free is the next loop hook.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_int.h"

/* ---- addresses --------------------------------------------------------------- */

void rn_net_format_addr(const struct sockaddr *sa, char *buf, size_t len) {
  if (len == 0) return;
  char ip[64] = "?";
  if (sa != NULL && sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    uv_ip4_name(a, ip, sizeof ip);
    snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
  } else if (sa != NULL && sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(a, ip, sizeof ip);
    snprintf(buf, len, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
  } else {
    snprintf(buf, len, "?");
  }
}

bool rn_net_is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    static const uint8_t lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *b = a->sin6_addr.s6_addr;
    if (memcmp(b, lo, 16) == 0) return true;
    return memcmp(b, v4mapped, 12) == 0 && b[12] == 127;
  }
  return false;
}

/* ---- the reject log ------------------------------------------------------------ */

bool rn_net_ratelog_due(rn_net_ratelog_t *rl, uint64_t now) {
  if (rl->logged && now - rl->logged_at < rl->interval_ms) return false;
  rl->logged = true;
  rl->logged_at = now;
  return true;
}

uint64_t rn_net_ratelog_hit(rn_net_ratelog_t *rl, uint64_t now) {
  rl->suppressed++;
  if (!rn_net_ratelog_due(rl, now)) return 0;
  uint64_t n = rl->suppressed;
  rl->suppressed = 0;
  return n;
}

/* ---- references, close, free ----------------------------------------------------- */

uint64_t rn_conn_now(const rn_conn_t *conn) { return uv_now(conn->net->loop); }

void rn_conn_logf(const rn_conn_t *conn, rn_level_t level, const char *fmt, ...) {
  const rn_net_t *net = conn->net;
  if (net->opts.log == NULL) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  net->opts.log(net->opts.log_arg, level, conn->ops->name, msg);
}

void rn_conn_ref(rn_conn_t *conn) { conn->refs++; }

void rn_conn_unref(rn_conn_t *conn) {
  assert(conn->refs > 0);
  if (--conn->refs > 0) return;
  assert(conn->state == RN_CONN_CLOSING && conn->handles_open == 0);
  conn->state = RN_CONN_DEAD;
  conn->dead_next = conn->net->dead;
  conn->net->dead = conn;
}

static void on_handle_closed(uv_handle_t *h) {
  rn_conn_t *conn = h->data;
  assert(conn->handles_open > 0);
  conn->handles_open--;
  rn__net_handle_closed(conn->net);
  if (conn->handles_open == 0) rn_conn_unref(conn); /* the handles' reference */
}

static void unlink_open(rn_conn_t *conn) {
  rn_net_listener_t *lst = conn->lst;
  if (conn->prev != NULL)
    conn->prev->next = conn->next;
  else if (lst->conns == conn)
    lst->conns = conn->next;
  if (conn->next != NULL) conn->next->prev = conn->prev;
  conn->prev = conn->next = NULL;
  if (conn->extra) {
    assert(lst->nextra > 0);
    lst->nextra--;
  } else {
    assert(lst->nconns > 0);
    lst->nconns--;
  }
}

void rn_conn_close(rn_conn_t *conn, const char *why) {
  if (conn->state != RN_CONN_OPEN) return;
  conn->state = RN_CONN_CLOSING;
  conn->reading = false; /* uv_close stops reading */
  if (conn->id != 0) {
    unlink_open(conn);
    if (conn->ops->on_close != NULL) conn->ops->on_close(conn, why);
  }
  uv_close((uv_handle_t *)&conn->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&conn->timer, on_handle_closed);
}

void rn__conn_free(rn_conn_t *conn) {
  if (conn == NULL) return;
  assert(conn->refs == 0 && conn->state == RN_CONN_DEAD && !conn->queued);
  if (conn->id != 0 && conn->ops->on_free != NULL) conn->ops->on_free(conn);
  rn__tls_conn_free(conn);
  free(conn);
}

void rn__conn_work(rn_conn_t *conn) {
  if (conn->ops->on_work != NULL) conn->ops->on_work(conn);
  /* TLS bytes produced since the last step 3 (handshake flights, alerts)
   * that no write of the protocol carried (rn_conn_write and
   * rn_conn_shutdown send them first). */
  if (conn->tls != NULL && !rn_conn_closing(conn)) {
    int rc = rn__tls_flush(conn, NULL, 0, NULL);
    if (rc != 0) rn_conn_close(conn, uv_strerror(rc));
  }
}

void rn_conn_schedule(rn_conn_t *conn) {
  if (conn->queued || conn->state != RN_CONN_OPEN) return;
  conn->queued = true;
  conn->work_next = conn->net->work;
  conn->net->work = conn;
}

/* ---- reading and writing ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  rn_conn_t *conn = h->data;
  if (conn->tls != NULL) { /* ciphertext: one shared buffer, consumed before on_read returns */
    *buf = uv_buf_init((char *)conn->net->tls_rbuf, (unsigned)sizeof conn->net->tls_rbuf);
    return;
  }
  conn->ops->on_alloc(conn, suggested, buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  rn_conn_t *conn = s->data;
  if (conn->state != RN_CONN_OPEN) return;
  if (conn->tls != NULL && nread > 0) {
    rn__tls_on_read(conn, (const uint8_t *)buf->base, (size_t)nread);
    return;
  }
  conn->ops->on_read(conn, nread, buf);
}

int rn_conn_read(rn_conn_t *conn, bool want) {
  if (conn->state != RN_CONN_OPEN) return 0;
  if (want && !conn->reading) {
    int rc = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    if (rc != 0) return rc;
    conn->reading = true;
  } else if (!want && conn->reading) {
    uv_read_stop((uv_stream_t *)&conn->tcp);
    conn->reading = false;
  }
  return 0;
}

static void on_write(uv_write_t *req, int status) {
  rn_conn_wreq_t *w = (rn_conn_wreq_t *)req;
  rn_conn_t *conn = w->conn;
  assert(conn->writes > 0 && conn->writing >= w->bytes);
  conn->writes--;
  conn->writing -= w->bytes;
  w->cb(conn, w, status); /* may free w */
  rn_conn_unref(conn);    /* after cb: conn is valid inside it */
}

int rn_conn_write(rn_conn_t *conn, rn_conn_wreq_t *w, const uv_buf_t *bufs, unsigned n, size_t bytes,
                  rn_conn_write_cb cb) {
  if (conn->state != RN_CONN_OPEN) return UV_ECANCELED;
  if (conn->tls != NULL) { /* plaintext in, one ciphertext write out (after what TLS had pending) */
    int rc = rn__tls_encrypt(conn, bufs, n, false);
    return rc != 0 ? rc : rn__tls_flush(conn, w, bytes, cb);
  }
  w->conn = conn;
  w->cb = cb;
  w->bytes = bytes;
  int rc = uv_write(&w->req, (uv_stream_t *)&conn->tcp, bufs, n, on_write); /* copies bufs */
  if (rc != 0) return rc;
  conn->writes++;
  conn->writing += bytes;
  rn_conn_ref(conn);
  return 0;
}

int rn_conn_write_last(rn_conn_t *conn, rn_conn_wreq_t *w, const uv_buf_t *bufs, unsigned n, size_t bytes,
                       rn_conn_write_cb cb) {
  if (conn->tls == NULL || !rn_conn_tls_ready(conn) || rn_conn_tls_notified(conn))
    return rn_conn_write(conn, w, bufs, n, bytes, cb);
  if (conn->state != RN_CONN_OPEN) return UV_ECANCELED;
  int rc = rn__tls_encrypt(conn, bufs, n, true);
  return rc != 0 ? rc : rn__tls_flush(conn, w, bytes, cb);
}

int rn_conn_shutdown(rn_conn_t *conn, uv_shutdown_t *req, uv_shutdown_cb cb) {
  if (conn->state != RN_CONN_OPEN) return UV_ECANCELED;
  if (conn->tls != NULL) {
    int rc = rn__tls_flush(conn, NULL, 0, NULL);
    if (rc != 0) return rc;
  }
  return uv_shutdown(req, (uv_stream_t *)&conn->tcp, cb);
}

/* ---- accept ---------------------------------------------------------------------- */

static void format_peer(rn_conn_t *conn) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) != 0) {
    snprintf(conn->peer, sizeof conn->peer, "?");
    return;
  }
  rn_net_format_addr((struct sockaddr *)&ss, conn->peer, sizeof conn->peer);
}

/* Whether a connection just accepted on fd leaves fewer than fd_reserve
 * descriptors under the open-file limit. Descriptors are allocated lowest
 * first, so every fd below it is in use. */
static bool fds_short(const rn_net_t *net, int fd) {
  return net->fd_limit > 0 && fd >= 0 && (uint64_t)fd + net->opts.fd_reserve >= net->fd_limit;
}

void rn__net_accept(rn_net_listener_t *lst) {
  rn_net_t *net = lst->net;
  const rn_net_proto_ops_t *ops = lst->lo.ops;
  assert(ops->conn_size >= sizeof(rn_conn_t));
  rn_conn_t *conn = calloc(1, ops->conn_size);
  if (conn == NULL) {
    rn_net_logf(net, RN_LVL_ERROR, ops->name, "out of memory accepting a connection");
    return; /* it stays in the backlog; the listener retries on the next event */
  }
  conn->net = net;
  conn->lst = lst;
  conn->ops = ops;
  conn->proto = lst->lo.proto_arg;
  conn->refs = 1; /* the handles */
  if (uv_tcp_init(net->loop, &conn->tcp) != 0) {
    free(conn);
    return;
  }
  rn__net_count_handle(net);
  uv_timer_init(net->loop, &conn->timer);
  rn__net_count_handle(net);
  conn->handles_open = 2;
  conn->tcp.data = conn;
  conn->timer.data = conn;
  int rc = uv_accept((uv_stream_t *)&lst->tcp, (uv_stream_t *)&conn->tcp);
  if (rc != 0) {
    rn_net_logf(net, RN_LVL_WARN, ops->name, "accept failed: %s", uv_strerror(rc));
    rn_conn_close(conn, "accept failed");
    return;
  }
  format_peer(conn);
  conn->accepted_at = uv_now(net->loop);
  uv_os_fd_t fd = -1;
  uv_fileno((uv_handle_t *)&conn->tcp, &fd);
  bool draining = rn_net_draining(net);
  bool short_fds = fds_short(net, fd);
  bool over = lst->nconns >= lst->lo.max_conns;
  /* Past the limit a few connections may still be admitted (the protocol
   * answers them in a limited way); out of descriptors, or past those, they
   * are closed at once. Out of descriptors first, so that storage keeps
   * fd_reserve of them for segment rolls. */
  bool extra = over && !short_fds && !draining && lst->nextra < lst->lo.extra;
  if (draining || short_fds || (over && !extra)) {
    if (!draining) {
      rn_net_refuse_t why = short_fds ? RN_NET_REFUSE_FDS : RN_NET_REFUSE_LIMIT;
      lst->refused[why]++;
      uint64_t n = rn_net_ratelog_hit(&lst->rejects, conn->accepted_at);
      if (n > 0 && short_fds)
        rn_net_logf(net, RN_LVL_WARN, "server",
                     "fewer than fd_reserve (%u) file descriptors left under the limit %llu: refused %llu "
                     "connection(s) on the %s port, latest from %s",
                     (unsigned)net->opts.fd_reserve, (unsigned long long)net->fd_limit, (unsigned long long)n,
                     lst->name, conn->peer);
      else if (n > 0)
        rn_net_logf(net, RN_LVL_WARN, "server", "%s (%u) reached: refused %llu connection(s), latest from %s",
                     lst->limit_name, (unsigned)lst->lo.max_conns, (unsigned long long)n, conn->peer);
    }
    rn_conn_close(conn, "refused");
    return;
  }
  if (lst->lo.tls != NULL && !rn__tls_conn_start(conn, lst->lo.tls)) {
    rn_net_logf(net, RN_LVL_ERROR, ops->name, "out of memory for TLS accepting a connection from %s", conn->peer);
    rn_conn_close(conn, "out of memory for TLS");
    return;
  }
  conn->id = ++lst->next_id;
  if (extra) {
    conn->extra = true;
    lst->nextra++;
    if (rn_net_ratelog_due(&lst->rejects, conn->accepted_at))
      rn_net_logf(net, RN_LVL_WARN, "server",
                   "%s (%u) reached: connection from %s admitted past the limit for a limited answer", lst->limit_name,
                   (unsigned)lst->lo.max_conns, conn->peer);
  } else {
    lst->nconns++;
  }
  conn->next = lst->conns;
  if (lst->conns != NULL) lst->conns->prev = conn;
  lst->conns = conn;
  uv_tcp_nodelay(&conn->tcp, 1);
  if (ops->on_open != NULL) ops->on_open(conn);
}
