/*
 * net.c — the network side's frame: listeners, the per-iteration deferred
 * work, shutdown sequencing, the open-file limit. The connection base
 * itself (accept, limits, close, refcount, read and write) is conn_base.c.
 *
 * Owns the rn_net_t, its listening sockets, the uv_prepare_t and uv_check_t
 * that run the deferred work of every loop iteration, the work and dead
 * lists. Protocols own what hangs off their connections (ops table).
 *
 * Invariants: nothing here blocks the loop thread after rn_net_start; a
 * connection is freed only in step 4 below or by rn_net_destroy, never in
 * one of its own callbacks; shutdown completes without a timer: it is
 * re-evaluated by the hooks around every iteration's I/O, and every event
 * that can make it true (an append acked, a reply written) wakes the loop.
 *
 * ---- The order of work in one loop iteration ----------------------------------
 *
 * libuv runs, per iteration: timers → pending callbacks → idle → prepare →
 * poll for I/O → check → close callbacks. runneld's work falls into it so:
 *
 *   1. Storage completions (poll phase). The engine's uv_poll on rn_io_fd()
 *      becomes readable when appends' writes and fdatasyncs completed; it
 *      runs rn_io_poll, the storage callbacks release the acks those writes
 *      and syncs cover (a sync-mode ack only after its fdatasync), and the
 *      engine calls the protocol's reply callback. Requests read from
 *      sockets in the same phase (ops->on_read) are decoded and dispatched
 *      at once; admin answers arrive synchronously. Long polls expire in the
 *      timer phase.
 *   2. Acks released → replies packed. A reply callback (native: on_reply
 *      in broker/native; HTTP: the router's reply) only packs the answer
 *      into its connection's output and queues the connection
 *      (rn_conn_schedule); it never writes or frees.
 *   3. Replies written (run_deferred, below): every queued connection runs
 *      ops->on_work: it first dispatches requests it held back for
 *      back-pressure (and restarts reading if the reason is gone), then
 *      hands all its packed output to ONE uv_write (rn_conn_write), then
 *      closes if a framing error, a half-close or a finished response says
 *      so. Writes complete in a later iteration's pending phase, which may
 *      re-queue the connection (resume reading, finish a close).
 *   4. Closed connections freed (run_deferred, after 3): connections whose
 *      handles finished closing in an earlier close phase and that no
 *      request or write still references (ops->on_free, then the memory).
 *   5. Shutdown progress (run_deferred, last): while draining, once
 *      opts.quiet holds (runneld: rn_core_idle(), no request at the
 *      engine or at the HTTP router) and no connection is busy (every reply
 *      and response flushed), close every connection and both hooks; the
 *      last close callback runs the done callback (main.c stops the loop,
 *      then rn_core_close writes the clean-shutdown markers).
 *
 * run_deferred (3-5) runs twice per iteration: in the check hook, for work
 * queued by the poll phase (storage completions, requests, signals), and in
 * the prepare hook, for work queued by timers (long polls expiring, idle
 * timeouts) and by write callbacks in the pending phase. Without the prepare
 * pass that work would wait for the next I/O event, because poll blocks
 * before check runs.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "net_int.h"

/* ---- logging ----------------------------------------------------------------- */

static void vlog(rn_net_log_fn log, void *arg, rn_level_t level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));
static void vlog(rn_net_log_fn log, void *arg, rn_level_t level, const char *component, const char *fmt, va_list ap) {
  if (log == NULL) return;
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  log(arg, level, component, msg);
}

void rn_net_logf(const rn_net_t *net, rn_level_t level, const char *component, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(net->opts.log, net->opts.log_arg, level, component, fmt, ap);
  va_end(ap);
}

static void plain_logf(rn_net_log_fn log, void *arg, rn_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void plain_logf(rn_net_log_fn log, void *arg, rn_level_t level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(log, arg, level, "server", fmt, ap);
  va_end(ap);
}

/* ---- handle bookkeeping ---------------------------------------------------------- */

void rn__net_count_handle(rn_net_t *net) { net->handles_open++; }

void rn__net_handle_closed(rn_net_t *net) {
  assert(net->handles_open > 0);
  net->handles_open--;
  if (net->phase == RN__NET_FINISHING && net->handles_open == 0) {
    net->phase = RN__NET_DONE;
    rn_net_logf(net, RN_LVL_INFO, "server", "stopped: every connection closed, every reply written");
    if (net->done != NULL) net->done(net, net->done_arg);
  }
}

static void on_net_handle_closed(uv_handle_t *h) { rn__net_handle_closed(h->data); }

static void on_listener_closed(uv_handle_t *h) {
  rn_net_listener_t *lst = h->data;
  lst->closed = true;
  rn__net_handle_closed(lst->net);
}

static void close_listener(rn_net_listener_t *lst) {
  if (!lst->open) return;
  lst->open = false;
  uv_close((uv_handle_t *)&lst->tcp, on_listener_closed);
}

/* ---- deferred work (prepare and check hooks) ------------------------------------- */

static bool any_busy(const rn_net_t *net) {
  for (const rn_net_listener_t *lst = net->listeners; lst != NULL; lst = lst->next)
    for (const rn_conn_t *c = lst->conns; c != NULL; c = c->next)
      if (c->ops->busy != NULL && c->ops->busy(c)) return true;
  return false;
}

static void maybe_finish(rn_net_t *net) {
  if (net->opts.quiet != NULL && !net->opts.quiet(net->opts.quiet_arg)) return;
  if (any_busy(net)) return;
  net->phase = RN__NET_FINISHING;
  char counts[256];
  size_t n = 0;
  counts[0] = '\0';
  for (const rn_net_listener_t *lst = net->listeners; lst != NULL && n < sizeof counts; lst = lst->next) {
    int w = snprintf(counts + n, sizeof counts - n, "%s%s=%u", n ? " " : "", lst->name,
                     (unsigned)(lst->nconns + lst->nextra));
    if (w < 0) break;
    n += (size_t)w;
  }
  rn_net_logf(net, RN_LVL_INFO, "server", "drained: engine idle, every reply written; closing connections: %s",
               counts);
  for (rn_net_listener_t *lst = net->listeners; lst != NULL; lst = lst->next)
    while (lst->conns != NULL) rn_conn_close(lst->conns, "shutdown");
  uv_close((uv_handle_t *)&net->check, on_net_handle_closed);
  uv_close((uv_handle_t *)&net->prepare, on_net_handle_closed);
}

static void free_dead(rn_net_t *net) {
  while (net->dead != NULL) {
    rn_conn_t *conn = net->dead;
    net->dead = conn->dead_next;
    rn__conn_free(conn);
  }
}

/* Steps 3-5 of the order above. */
static void run_deferred(rn_net_t *net) {
  if (net->phase >= RN__NET_FINISHING) return;
  /* 3. Replies written (and held-back requests dispatched). Work can queue
   * more work on the same connection (a dispatched request answered at
   * once); the list is drained until empty, which terminates because new
   * work only comes from requests already buffered. */
  while (net->work != NULL) {
    rn_conn_t *conn = net->work;
    net->work = conn->work_next;
    conn->work_next = NULL;
    conn->queued = false;
    if (!rn_conn_closing(conn)) rn__conn_work(conn);
  }
  /* 4. Closed connections freed. */
  free_dead(net);
  /* 5. Shutdown progress. */
  if (net->phase == RN__NET_DRAINING) maybe_finish(net);
}

static void on_check(uv_check_t *h) { run_deferred(h->data); }
static void on_prepare(uv_prepare_t *h) { run_deferred(h->data); }

/* ---- file descriptors ------------------------------------------------------------ */

void rn_net_raise_fd_limit(rn_net_log_fn log, void *log_arg) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    plain_logf(log, log_arg, RN_LVL_WARN, "cannot read the open-file limit: %s", strerror(errno));
    return;
  }
  if (rl.rlim_cur == rl.rlim_max) {
    plain_logf(log, log_arg, RN_LVL_INFO, "open-file limit %llu (already the hard limit)",
               (unsigned long long)rl.rlim_cur);
    return;
  }
  rlim_t was = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    plain_logf(log, log_arg, RN_LVL_WARN, "cannot raise the open-file limit from %llu to %llu: %s",
               (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
    return;
  }
  plain_logf(log, log_arg, RN_LVL_INFO, "open-file limit raised from %llu to the hard limit %llu",
             (unsigned long long)was, (unsigned long long)rl.rlim_max);
}

uint64_t rn_net_fd_limit(const rn_net_t *net) { return net->fd_limit; }

/* ---- listeners ------------------------------------------------------------------- */

static void on_connection(uv_stream_t *s, int status) {
  rn_net_listener_t *lst = s->data;
  if (status < 0) {
    /* EMFILE/ENFILE: out of descriptors (libuv then accepts and closes
     * pending connections with its spare descriptor). */
    if (status == UV_EMFILE || status == UV_ENFILE) lst->refused[RN_NET_REFUSE_FDS]++;
    rn_net_logf(lst->net, RN_LVL_WARN, "server", "%s listener: %s", lst->name, uv_strerror(status));
    return;
  }
  rn__net_accept(lst);
}

/* Resolve host:port into ss. Numeric addresses directly; names through a
 * synchronous getaddrinfo (startup only). */
static int resolve(uv_loop_t *loop, const char *host, uint16_t port, struct sockaddr_storage *ss, char *why,
                   size_t whylen, const char *what) {
  memset(ss, 0, sizeof *ss);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  uv_getaddrinfo_t req;
  int rc = uv_getaddrinfo(loop, &req, NULL, host, NULL, &hints); /* NULL cb: synchronous */
  if (rc != 0) {
    snprintf(why, whylen, "%s: cannot resolve '%s': %s", what, host, uv_strerror(rc));
    return rc;
  }
  struct addrinfo *ai = req.addrinfo;
  if (ai == NULL || ai->ai_addrlen > sizeof *ss) {
    uv_freeaddrinfo(req.addrinfo);
    snprintf(why, whylen, "%s: '%s' has no usable address", what, host);
    return UV_EINVAL;
  }
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  if (ss->ss_family == AF_INET)
    ((struct sockaddr_in *)ss)->sin_port = htons(port);
  else
    ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
  uv_freeaddrinfo(req.addrinfo);
  return 0;
}

int rn_net_listen(rn_net_t *net, const rn_net_listen_opts_t *lo, rn_net_listener_t **out, char *why, size_t whylen) {
  *out = NULL;
  struct sockaddr_storage ss;
  int rc = resolve(net->loop, lo->host, lo->port, &ss, why, whylen, lo->name);
  if (rc != 0) return rc;
  /* Safe default: a listener others can reach needs authentication, or the
   * operator's explicit `auth: none`. Checked on the resolved address before
   * binding, so a refused start never opened a socket. */
  if (!rn_net_is_loopback((struct sockaddr *)&ss) && !lo->authenticated && !lo->allow_open) {
    snprintf(why, whylen, "refusing to listen on the non-loopback address %s (%s)%s", lo->addr, lo->name,
             lo->refuse_hint != NULL ? lo->refuse_hint : "");
    return UV_EINVAL;
  }
  rn_net_listener_t *lst = calloc(1, sizeof *lst);
  if (lst == NULL) {
    snprintf(why, whylen, "out of memory");
    return UV_ENOMEM;
  }
  lst->net = net;
  lst->lo = *lo;
  snprintf(lst->name, sizeof lst->name, "%s", lo->name);
  snprintf(lst->limit_name, sizeof lst->limit_name, "%s", lo->limit_name ? lo->limit_name : "max_connections");
  lst->lo.name = lst->name;
  lst->lo.limit_name = lst->limit_name;
  lst->lo.addr = lst->lo.host = lst->lo.refuse_hint = NULL; /* borrowed: not kept */
  lst->rejects.interval_ms = 1000;
  rc = uv_tcp_init(net->loop, &lst->tcp);
  if (rc != 0) {
    snprintf(why, whylen, "%s listener: %s", lo->name, uv_strerror(rc));
    free(lst);
    return rc;
  }
  rn__net_count_handle(net);
  lst->open = true;
  lst->tcp.data = lst;
  rc = uv_tcp_bind(&lst->tcp, (const struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&lst->tcp, 511, on_connection);
  if (rc != 0) {
    snprintf(why, whylen, "cannot listen on %s (%s): %s", lo->addr, lo->name, uv_strerror(rc));
    close_listener(lst);
    while (!lst->closed) uv_run(net->loop, UV_RUN_NOWAIT); /* its memory goes with it */
    free(lst);
    return rc;
  }
  struct sockaddr_storage got;
  int len = sizeof got;
  uv_tcp_getsockname(&lst->tcp, (struct sockaddr *)&got, &len);
  rn_net_format_addr((struct sockaddr *)&got, lst->addr, sizeof lst->addr);
  lst->port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                             : ((struct sockaddr_in6 *)&got)->sin6_port);
  if (!rn_net_is_loopback((struct sockaddr *)&got) && !lo->authenticated)
    rn_net_logf(net, RN_LVL_WARN, "server",
                 "WARNING: auth: none — the %s listener on the non-loopback address %s has NO "
                 "AUTHENTICATION: anyone who can reach it can create, read, write and delete every "
                 "stream.",
                 lst->name, lst->addr);
  /* Appended: listeners are walked in the order they were added. */
  rn_net_listener_t **tail = &net->listeners;
  while (*tail != NULL) tail = &(*tail)->next;
  *tail = lst;
  *out = lst;
  return 0;
}

uint16_t rn_net_listener_port(const rn_net_listener_t *lst) { return lst->port; }
const char *rn_net_listener_addr(const rn_net_listener_t *lst) { return lst->addr; }
uint32_t rn_net_listener_count(const rn_net_listener_t *lst) { return lst->nconns; }
uint64_t rn_net_listener_refused(const rn_net_listener_t *lst, rn_net_refuse_t reason) {
  return lst->refused[reason];
}
void rn_net_listener_refuse(rn_net_listener_t *lst, rn_net_refuse_t reason) { lst->refused[reason]++; }
rn_conn_t *rn_net_listener_conns(const rn_net_listener_t *lst) { return lst->conns; }

/* ---- public ---------------------------------------------------------------------- */

rn_net_t *rn_net_new(uv_loop_t *loop, const rn_net_opts_t *opts) {
  rn_net_t *net = calloc(1, sizeof *net);
  if (net == NULL) return NULL;
  net->loop = loop;
  net->opts = *opts;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) net->fd_limit = (uint64_t)rl.rlim_cur;
  return net;
}

void rn_net_start(rn_net_t *net) {
  assert(!net->started);
  net->started = true;
  uv_check_init(net->loop, &net->check);
  rn__net_count_handle(net);
  net->check.data = net;
  uv_check_start(&net->check, on_check);
  uv_prepare_init(net->loop, &net->prepare);
  rn__net_count_handle(net);
  net->prepare.data = net;
  uv_prepare_start(&net->prepare, on_prepare);
}

bool rn_net_draining(const rn_net_t *net) { return net->phase != RN__NET_RUNNING; }

void rn_net_shutdown(rn_net_t *net, rn_net_done_cb done, void *arg) {
  if (net->phase != RN__NET_RUNNING) return;
  net->phase = RN__NET_DRAINING;
  net->done = done;
  net->done_arg = arg;
  for (rn_net_listener_t *lst = net->listeners; lst != NULL; lst = lst->next) close_listener(lst);
  for (rn_net_listener_t *lst = net->listeners; lst != NULL; lst = lst->next)
    for (rn_conn_t *c = lst->conns, *next; c != NULL; c = next) {
      next = c->next; /* on_drain may close c */
      if (c->ops->on_drain != NULL) c->ops->on_drain(c);
    }
  if (!net->started) { /* no hooks: nothing would drive step 5; finish now */
    net->phase = RN__NET_FINISHING;
    for (rn_net_listener_t *lst = net->listeners; lst != NULL; lst = lst->next)
      while (lst->conns != NULL) rn_conn_close(lst->conns, "shutdown");
    if (net->handles_open == 0) {
      net->phase = RN__NET_DONE;
      if (done != NULL) done(net, arg);
    }
    return;
  }
  /* run_deferred takes it from here (step 5 of the order above). */
}

void rn_net_abandon(rn_net_t *net) {
  if (net == NULL) return;
  assert(!net->started);
  for (rn_net_listener_t *lst = net->listeners; lst != NULL; lst = lst->next) close_listener(lst);
  while (net->handles_open > 0) uv_run(net->loop, UV_RUN_NOWAIT);
  rn_net_destroy(net);
}

void rn_net_destroy(rn_net_t *net) {
  if (net == NULL) return;
  /* After a completed shutdown every handle is closed; connections still
   * listed are dead ones the (closed) hooks did not get to. */
  assert(net->handles_open == 0);
  free_dead(net);
  while (net->listeners != NULL) {
    rn_net_listener_t *lst = net->listeners;
    net->listeners = lst->next;
    assert(lst->conns == NULL);
    free(lst);
  }
  free(net);
}
