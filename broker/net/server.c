/*
 * server.c — the listeners, the per-iteration deferred work, graceful shutdown,
 * the port file and the stderr logger of runneld's network side.
 *
 * Owns the rn_server_t, its two listening sockets, the uv_prepare_t and
 * uv_check_t that run the deferred work of every loop iteration, the list heads of connections
 * (conn.c owns the native connections themselves; http_server.c the HTTP
 * transport and its connections), and the port file it wrote.
 *
 * Invariants: the server never blocks the loop thread after rn_server_start
 * returns (the logger's write(2) to stderr aside); nothing the server owns is
 * freed inside its own callback (close callbacks only move memory to a dead
 * list, freed by the hooks or rn_server_destroy); shutdown completes
 * without a timer: it is re-evaluated by the hooks around every iteration's
 * I/O, and every event that can make it true (an append acked, a reply
 * written) wakes the loop.
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
 *      engine calls our reply callback. Requests read from sockets in the
 *      same phase are decoded and dispatched to the engine at once; admin
 *      answers arrive synchronously. Long polls expire in the timer phase.
 *   2. Acks released → replies packed. The reply callback (conn.c on_reply)
 *      only packs the Response into its connection's output buffer and
 *      queues the connection on srv->work; it never writes or frees.
 *   3. Replies written (run_deferred, below): every queued connection first
 *      dispatches requests it held back for back-pressure (and restarts
 *      reading if the reason is gone), then hands all its packed replies to
 *      ONE uv_write, then closes if a framing error or a half-close says so.
 *      Writes complete in a later iteration's pending phase, which may
 *      re-queue the connection (resume reading, finish a close). Then the
 *      same for HTTP connections (rn__http_work): parse what back-pressure
 *      held back, move answered responses to the output (HTTP/1.1 in
 *      request order; HTTP/2 frames from nghttp2), one uv_write each,
 *      finish connections that should close.
 *   4. Closed connections freed (run_deferred, after 3): connections whose
 *      handles finished closing in an earlier close phase and that no
 *      request context or write still references (native, then HTTP).
 *   5. Shutdown progress (run_deferred, last): while draining, once
 *      rn_engine_idle() holds, no request is at the engine or at the HTTP
 *      router and every reply and response is flushed, close every
 *      connection and both hooks; the last close callback runs the done
 *      callback (main.c stops the loop, then rn_engine_close writes the
 *      clean-shutdown markers).
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
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "server_int.h"

/* ---- logging ---------------------------------------------------------------- */

static rn_log_level_t log_min = RN_LOG_INFO;

void rn__log_set_level(rn_log_level_t level) { log_min = level; }
rn_log_level_t rn__log_level(void) { return log_min; }

static const char *level_name(rn_log_level_t l) {
  switch (l) {
  case RN_LOG_DEBUG: return "debug";
  case RN_LOG_INFO: return "info";
  case RN_LOG_WARN: return "warn";
  case RN_LOG_ERROR: return "error";
  }
  return "?";
}

static void log_line(rn_log_level_t level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void log_line(rn_log_level_t level, const char *component, const char *fmt, va_list ap) {
  char line[4096];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000),
                   level_name(level), component ? component : "runneld");
  if (n < 0) return;
  size_t head = (size_t)n;
  size_t room = sizeof line - head - 1; /* keep one byte for '\n' */
  int m = vsnprintf(line + head, room + 1, fmt, ap);
  if (m < 0) m = 0;
  size_t len = head + ((size_t)m > room ? room : (size_t)m);
  if ((size_t)m > room) memcpy(line + len - 3, "...", 3);
  for (size_t i = head; i < len; i++)
    if (line[i] == '\n' || line[i] == '\r') line[i] = ' '; /* one line per event */
  line[len++] = '\n';
  for (size_t off = 0; off < len;) {
    ssize_t w = write(STDERR_FILENO, line + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
}

void rn__logf(rn_log_level_t level, const char *component, const char *fmt, ...) {
  if (level < log_min) return;
  va_list ap;
  va_start(ap, fmt);
  log_line(level, component, fmt, ap);
  va_end(ap);
}

void rn__log_sink(void *arg, rn_log_level_t level, const char *msg) {
  rn__logf(level, arg != NULL ? (const char *)arg : "engine", "%s", msg);
}

/* ---- handle bookkeeping --------------------------------------------------------- */

void rn__server_count_handle(rn_server_t *srv) { srv->handles_open++; }

void rn__server_handle_closed(rn_server_t *srv) {
  assert(srv->handles_open > 0);
  srv->handles_open--;
  if (srv->finishing && srv->handles_open == 0 && !srv->done_called) {
    srv->done_called = true;
    rn__logf(RN_LOG_INFO, "server", "stopped: every connection closed, every reply written");
    if (srv->done != NULL) srv->done(srv, srv->done_arg);
  }
}

static void on_server_handle_closed(uv_handle_t *h) { rn__server_handle_closed(h->data); }

/* ---- deferred work (prepare and check hooks) ------------------------------------ */

static void maybe_finish(rn_server_t *srv) {
  if (!rn_engine_idle(srv->eng) || srv->inflight > 0) return;
  for (rn__conn_t *c = srv->conns; c != NULL; c = c->next)
    if (rn__conn_unflushed(c)) return;
  if (!rn__http_quiet(srv)) return;
  srv->finishing = true;
  rn__logf(RN_LOG_INFO, "server", "drained: engine idle, every reply written; closing %u connection(s) and %u HTTP connection(s)",
           (unsigned)srv->nconns, (unsigned)rn__http_count(srv));
  while (srv->conns != NULL) rn__conn_close(srv->conns, "shutdown");
  rn__http_close_all(srv);
  uv_close((uv_handle_t *)&srv->check, on_server_handle_closed);
  uv_close((uv_handle_t *)&srv->prepare, on_server_handle_closed);
}

/* Steps 3-5 of the order above. */
static void run_deferred(rn_server_t *srv) {
  if (srv->finishing) return;
  /* 3. Replies written (and held-back requests dispatched). Work can queue
   * more work on the same connection (a dispatched request answered at
   * once); the list is drained until empty, which terminates because new
   * work only comes from requests already buffered. */
  while (srv->work != NULL) {
    rn__conn_t *conn = srv->work;
    srv->work = conn->work_next;
    conn->work_next = NULL;
    conn->queued = false;
    rn__conn_work(conn);
  }
  rn__http_work(srv);
  /* 4. Closed connections freed. */
  while (srv->dead != NULL) {
    rn__conn_t *conn = srv->dead;
    srv->dead = conn->dead_next;
    rn__conn_free(conn);
  }
  rn__http_reap(srv);
  /* 5. Shutdown progress. */
  if (srv->draining) maybe_finish(srv);
}

static void on_check(uv_check_t *h) { run_deferred(h->data); }
static void on_prepare(uv_prepare_t *h) { run_deferred(h->data); }

/* ---- listeners ------------------------------------------------------------------------ */

/* ---- file descriptors ------------------------------------------------------------ */

void rn_server_raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    rn__logf(RN_LOG_WARN, "server", "cannot read the open-file limit: %s", strerror(errno));
    return;
  }
  if (rl.rlim_cur == rl.rlim_max) {
    rn__logf(RN_LOG_INFO, "server", "open-file limit %llu (already the hard limit)", (unsigned long long)rl.rlim_cur);
    return;
  }
  rlim_t was = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    rn__logf(RN_LOG_WARN, "server", "cannot raise the open-file limit from %llu to %llu: %s", (unsigned long long)was,
             (unsigned long long)rl.rlim_max, strerror(errno));
    return;
  }
  rn__logf(RN_LOG_INFO, "server", "open-file limit raised from %llu to the hard limit %llu", (unsigned long long)was,
           (unsigned long long)rl.rlim_max);
}

bool rn__server_fds_short(const rn_server_t *srv, int fd) {
  return srv->fd_limit > 0 && fd >= 0 && (uint64_t)fd + srv->cfg->fd_reserve >= srv->fd_limit;
}

/* Read the limit connections are reconciled with, and say when the
 * configured connection limits cannot all be met. */
static void check_fd_limit(rn_server_t *srv) {
  const rn_config_t *cfg = srv->cfg;
  struct rlimit rl;
  srv->fd_limit = 0;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
  srv->fd_limit = (uint64_t)rl.rlim_cur;
  uint64_t want = (uint64_t)cfg->max_connections + cfg->http_max_connections + cfg->fd_reserve;
  if (want > srv->fd_limit)
    rn__logf(RN_LOG_WARN, "server",
             "max_connections (%u) + http_max_connections (%u) + fd_reserve (%u) = %llu exceeds the open-file "
             "limit %llu: connections will be refused once fewer than fd_reserve descriptors remain (raise the "
             "hard limit, e.g. LimitNOFILE=, or lower the connection limits)",
             (unsigned)cfg->max_connections, (unsigned)cfg->http_max_connections, (unsigned)cfg->fd_reserve,
             (unsigned long long)want, (unsigned long long)srv->fd_limit);
}

/* The listener could not accept (EMFILE/ENFILE: out of descriptors; libuv
 * then accepts and closes pending connections with its spare descriptor). */
static void listener_failed(rn_server_t *srv, int port, const char *what, int status) {
  if (status == UV_EMFILE || status == UV_ENFILE) srv->refused[port][RN__REFUSE_FDS]++;
  rn__logf(RN_LOG_WARN, "server", "%s listener: %s", what, uv_strerror(status));
}

static void on_native_connection(uv_stream_t *s, int status) {
  rn_server_t *srv = s->data;
  if (status < 0) {
    listener_failed(srv, RN__PORT_NATIVE, "native", status);
    return;
  }
  rn__conn_accept(srv);
}

static void on_http_connection(uv_stream_t *s, int status) {
  rn_server_t *srv = s->data;
  if (status < 0) {
    listener_failed(srv, RN__PORT_HTTP, "http", status);
    return;
  }
  rn__http_accept(srv);
}

static int is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    static const uint8_t lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *b = a->sin6_addr.s6_addr;
    if (memcmp(b, lo, 16) == 0) return 1;
    return memcmp(b, v4mapped, 12) == 0 && b[12] == 127;
  }
  return 0;
}

static void format_addr(const struct sockaddr *sa, char *buf, size_t len) {
  char ip[64] = "?";
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    uv_ip4_name(a, ip, sizeof ip);
    snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(a, ip, sizeof ip);
    snprintf(buf, len, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
  }
}

/* Resolve "HOST:PORT" into ss. Numeric addresses directly; names through a
 * synchronous getaddrinfo (startup only). */
static rn_err_t resolve(uv_loop_t *loop, const char *addr, struct sockaddr_storage *ss, char *why,
                        size_t whylen, const char *what) {
  char host[256];
  uint16_t port;
  if (rn_config_split_addr(addr, host, sizeof host, &port) != 0) {
    snprintf(why, whylen, "%s: bad address '%s'", what, addr);
    return RN_EINVAL;
  }
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
    return RN_EINVAL;
  }
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  if (ss->ss_family == AF_INET)
    ((struct sockaddr_in *)ss)->sin_port = htons(port);
  else
    ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
  uv_freeaddrinfo(req.addrinfo);
  return 0;
}

/* Whether the listener `what` ("native" or "http") authenticates its
 * clients. The native protocol has no authentication yet; the HTTP port does
 * when both its applications that accept writes have credentials: SigV4 for
 * the Kinesis API and API keys for REST ingest (cfg holds the resolved
 * secrets, whether they came from the file, a *_file or the environment). */
static bool listener_authenticated(const rn_config_t *cfg, const char *what) {
  if (strcmp(what, "http") != 0) return false;
  return cfg->kinesis_credentials[0] != '\0' && cfg->rest_api_keys[0] != '\0';
}

static rn_err_t start_listener(rn_server_t *srv, uv_tcp_t *tcp, const char *addr, uv_connection_cb cb,
                               const char *what, uint16_t *port, char *bound, size_t boundlen, char *why,
                               size_t whylen) {
  struct sockaddr_storage ss;
  rn_err_t rc = resolve(srv->loop, addr, &ss, why, whylen, what);
  if (rc != 0) return rc;
  /* Safe default: a listener others can reach needs authentication, or the
   * operator's explicit `auth: none`. Checked on the resolved address before
   * binding, so a refused start never opened a socket. */
  if (!is_loopback((struct sockaddr *)&ss) && !listener_authenticated(srv->cfg, what) &&
      srv->cfg->auth != RN_AUTH_NONE) {
    if (strcmp(what, "native") == 0)
      snprintf(why, whylen,
               "refusing to listen on the non-loopback address %s (native): the native protocol has no "
               "authentication yet, so anyone who could reach it could read, write and delete every "
               "stream. Bind it to 127.0.0.1, or set `auth: none` (--set auth=none) to run open on a "
               "trusted network",
               addr);
    else
      snprintf(why, whylen,
               "refusing to listen on the non-loopback address %s (http) without authentication: set "
               "both `kinesis_credentials` (SigV4) and `rest_api_keys` (or their *_file / environment "
               "forms), bind it to 127.0.0.1, or set `auth: none` to run open on a trusted network",
               addr);
    return RN_EINVAL;
  }
  rc = uv_tcp_init(srv->loop, tcp);
  if (rc != 0) {
    snprintf(why, whylen, "%s listener: %s", what, uv_strerror(rc));
    return rc;
  }
  rn__server_count_handle(srv);
  tcp->data = srv;
  rc = uv_tcp_bind(tcp, (const struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)tcp, 511, cb);
  if (rc != 0) {
    snprintf(why, whylen, "cannot listen on %s (%s): %s", addr, what, uv_strerror(rc));
    uv_close((uv_handle_t *)tcp, on_server_handle_closed);
    return rc;
  }
  struct sockaddr_storage got;
  int len = sizeof got;
  uv_tcp_getsockname(tcp, (struct sockaddr *)&got, &len);
  format_addr((struct sockaddr *)&got, bound, boundlen);
  *port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                         : ((struct sockaddr_in6 *)&got)->sin6_port);
  if (!is_loopback((struct sockaddr *)&got) && !listener_authenticated(srv->cfg, what))
    rn__logf(RN_LOG_WARN, "server",
             "WARNING: auth: none — the %s listener on the non-loopback address %s has NO "
             "AUTHENTICATION: anyone who can reach it can create, read, write and delete every "
             "stream.",
             what, bound);
  return 0;
}

/* Write "<native> <http>\n" to path atomically (rn_snapshot_write: path.tmp,
 * fdatasync, rename, fsync of the directory). Blocking; startup only. */
static rn_err_t write_port_file(const char *path, uint16_t native, uint16_t http, char *why, size_t whylen) {
  char *dir = strdup(path);
  if (dir == NULL) return RN_ENOMEM;
  char *slash = strrchr(dir, '/');
  const char *name = path;
  const char *in = ".";
  if (slash != NULL) {
    *slash = '\0';
    name = slash + 1;
    in = slash == dir ? "/" : dir;
  }
  char text[32];
  int n = snprintf(text, sizeof text, "%u %u\n", (unsigned)native, (unsigned)http);
  rn_err_t rc = rn_snapshot_write(rn_fs_posix(), in, name, text, (size_t)n);
  if (rc != 0) snprintf(why, whylen, "cannot write port_file %s: %s", path, rn_strerror(rc));
  free(dir);
  return rc;
}

/* ---- public ---------------------------------------------------------------------------- */

rn_err_t rn_server_bind(uv_loop_t *loop, const rn_config_t *cfg, rn_server_t **out, char *why, size_t whylen) {
  *out = NULL;
  rn_server_t *srv = calloc(1, sizeof *srv);
  if (srv == NULL) {
    snprintf(why, whylen, "out of memory");
    return RN_ENOMEM;
  }
  srv->loop = loop;
  srv->cfg = cfg;
  check_fd_limit(srv);
  rn_err_t rc = rn__http_init(srv, why, whylen);
  if (rc != 0) {
    free(srv);
    return rc;
  }
  rc = start_listener(srv, &srv->native, cfg->listen, on_native_connection, "native",
                               &srv->native_port, srv->native_addr, sizeof srv->native_addr, why, whylen);
  if (rc == 0) {
    rc = start_listener(srv, &srv->http, cfg->http_listen, on_http_connection, "http", &srv->http_port,
                        srv->http_addr, sizeof srv->http_addr, why, whylen);
    if (rc != 0) uv_close((uv_handle_t *)&srv->native, on_server_handle_closed);
  }
  if (rc != 0) {
    while (srv->handles_open > 0) uv_run(loop, UV_RUN_NOWAIT);
    rn__http_destroy(srv);
    free(srv);
    return rc;
  }
  *out = srv;
  return 0;
}

void rn_server_abandon(rn_server_t *srv) {
  if (srv == NULL) return;
  assert(srv->eng == NULL);
  /* After a successful bind both listeners are open; let their close
   * callbacks run before freeing their memory. */
  uv_close((uv_handle_t *)&srv->native, on_server_handle_closed);
  uv_close((uv_handle_t *)&srv->http, on_server_handle_closed);
  while (srv->handles_open > 0) uv_run(srv->loop, UV_RUN_NOWAIT);
  rn__http_destroy(srv);
  free(srv->port_file_written);
  free(srv);
}

rn_err_t rn_server_start(rn_server_t *srv, rn_engine_t *eng, char *why, size_t whylen) {
  const rn_config_t *cfg = srv->cfg;
  uv_loop_t *loop = srv->loop;
  assert(srv->eng == NULL && eng != NULL);
  if (cfg->port_file[0] != '\0') {
    rn_err_t rc = write_port_file(cfg->port_file, srv->native_port, srv->http_port, why, whylen);
    if (rc != 0) return rc;
    srv->port_file_written = strdup(cfg->port_file);
  }
  srv->eng = eng;
  uv_check_init(loop, &srv->check);
  rn__server_count_handle(srv);
  srv->check.data = srv;
  uv_check_start(&srv->check, on_check);
  uv_prepare_init(loop, &srv->prepare);
  rn__server_count_handle(srv);
  srv->prepare.data = srv;
  uv_prepare_start(&srv->prepare, on_prepare);
  rn__logf(RN_LOG_INFO, "server", "listening native=%s http=%s", srv->native_addr, srv->http_addr);
  return 0;
}

uint16_t rn_server_native_port(const rn_server_t *srv) { return srv->native_port; }

void rn_server_set_http_router(rn_server_t *srv, rn_http_router_fn fn, void *arg) {
  srv->http_router = fn;
  srv->http_router_arg = fn != NULL ? arg : NULL;
}
uint16_t rn_server_http_port(const rn_server_t *srv) { return srv->http_port; }
int rn_server_draining(const rn_server_t *srv) { return srv->draining; }

void rn_server_shutdown(rn_server_t *srv, rn_server_done_cb done, void *arg) {
  if (srv->draining) return;
  srv->draining = true;
  srv->done = done;
  srv->done_arg = arg;
  uv_close((uv_handle_t *)&srv->native, on_server_handle_closed);
  uv_close((uv_handle_t *)&srv->http, on_server_handle_closed);
  for (rn__conn_t *c = srv->conns; c != NULL; c = c->next) rn__conn_drain(c);
  rn__http_drain(srv);
  rn__logf(RN_LOG_INFO, "server",
           "shutting down: listeners closed; %u connection(s), %llu request(s) in flight; %u HTTP connection(s)",
           (unsigned)srv->nconns, (unsigned long long)srv->inflight, (unsigned)rn__http_count(srv));
  rn_engine_drain(srv->eng);
  /* run_deferred takes it from here (step 5 of the order above). */
}

void rn_server_destroy(rn_server_t *srv) {
  if (srv == NULL) return;
  /* After a completed shutdown every handle is closed; connections still
   * listed are dead ones the (closed) hooks did not get to. */
  assert(srv->handles_open == 0);
  while (srv->dead != NULL) {
    rn__conn_t *conn = srv->dead;
    srv->dead = conn->dead_next;
    rn__conn_free(conn);
  }
  rn__http_destroy(srv);
  while (srv->req_free != NULL) {
    rn__req_t *r = srv->req_free;
    srv->req_free = r->next_free;
    free(r);
  }
  if (srv->port_file_written != NULL) {
    unlink(srv->port_file_written);
    free(srv->port_file_written);
  }
  free(srv);
}
