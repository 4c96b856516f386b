/*
 * server.c — runneld's network side put together: the connection base
 * (broker/net: listeners, limits, close, the loop's order of work,
 * shutdown) with the native session (broker/native) on one listener and
 * the HTTP transport (broker/http) on the other, over one engine, from the
 * config. This file holds no connection logic of its own: it translates
 * the config into the options of those libraries (rn_net_opts_t,
 * rn_net_listen_opts_t, rn_native_opts_t, rn_http_opts_t), answers net's
 * "quiet" question for shutdown (the engine idle, nothing at the engine or
 * at the HTTP router), writes the port file and the /metrics lines of the
 * connections.
 *
 * Owns the rn_server_t, the rn_net_t, the rn_native_t and rn_http_t, and
 * the port file it wrote.
 *
 * The order of work in one loop iteration is written once, in
 * broker/net/net.c.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rn_fs.h"
#include "rn_groups.h"
#include "rn_sinks.h"
#include "rn_http.h"
#include "rn_native.h"
#include "rn_net.h"
#include "rn_apps.h" /* rn_apps_opts_t */
#include "server.h"

struct rn_server {
  uv_loop_t *loop;
  rn_core_t *eng;
  const rn_config_t *cfg;
  rn_net_t *net;
  rn_net_listener_t *native, *http;
  rn_native_t *nat;
  rn_http_t *hs;
  rn_server_done_cb done;
  void *done_arg;
  char *port_file_written; /* path of the port file we wrote, to remove */
};

/* ---- the pieces ------------------------------------------------------------------ */

/* net's shutdown condition beyond its connections. */
static bool server_quiet(void *arg) {
  rn_server_t *srv = arg;
  return rn_core_idle(srv->eng) && rn_native_inflight(srv->nat) == 0 && rn_http_routing(srv->hs) == 0;
}

static void on_net_done(rn_net_t *net, void *arg) {
  (void)net;
  rn_server_t *srv = arg;
  if (srv->done != NULL) srv->done(srv, srv->done_arg);
}

void rn_server_raise_fd_limit(void) { rn_net_raise_fd_limit(rn_net_log_stderr, NULL); }

/* Say when the configured connection limits cannot all be met. */
static void check_fd_limit(rn_server_t *srv) {
  const rn_config_t *cfg = srv->cfg;
  uint64_t limit = rn_net_fd_limit(srv->net);
  if (limit == 0) return;
  uint64_t want = (uint64_t)cfg->max_connections + cfg->http_max_connections + cfg->fd_reserve;
  if (want > limit)
    rn_sayf(RN_LVL_WARN, "server",
             "max_connections (%u) + http_max_connections (%u) + fd_reserve (%u) = %llu exceeds the open-file "
             "limit %llu: connections will be refused once fewer than fd_reserve descriptors remain (raise the "
             "hard limit, e.g. LimitNOFILE=, or lower the connection limits)",
             (unsigned)cfg->max_connections, (unsigned)cfg->http_max_connections, (unsigned)cfg->fd_reserve,
             (unsigned long long)want, (unsigned long long)limit);
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

static rn_err_t listen_on(rn_server_t *srv, const char *addr, const char *what, const char *limit_name,
                          uint32_t max_conns, uint32_t extra, const char *hint, const rn_net_proto_ops_t *ops,
                          void *proto_arg, rn_net_tls_t *tls, rn_net_listener_t **out, char *why, size_t whylen) {
  char host[256];
  uint16_t port;
  if (rn_config_split_addr(addr, host, sizeof host, &port) != 0) {
    snprintf(why, whylen, "%s: bad address '%s'", what, addr);
    return RN_EINVAL;
  }
  rn_net_listen_opts_t lo = {
      .addr = addr,
      .host = host,
      .port = port,
      .name = what,
      .limit_name = limit_name,
      .max_conns = max_conns,
      .extra = extra,
      .authenticated = listener_authenticated(srv->cfg, what),
      .allow_open = srv->cfg->auth == RN_AUTH_NONE,
      .refuse_hint = hint,
      .ops = ops,
      .proto_arg = proto_arg,
      .tls = tls,
  };
  return rn_net_listen(srv->net, &lo, out, why, whylen);
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

rn_err_t rn_server_open_engine(const rn_core_opts_t *eo, rn_core_t **out, char *why, size_t whylen) {
  *out = NULL;
  rn_core_t *core;
  rn_err_t rc = rn_core_open(eo, &core, why, whylen);
  if (rc != 0) return rc;
  rn_groups_t *gs; /* core's from here on: closed by rn_core_close */
  rn_groups_opts_t go = {.clock = eo->clock}; /* one clock for the engine and its groups */
  rc = rn_groups_open(core, &go, &gs, why, whylen);
  if (rc != 0) {
    rn_core_close(core);
    return rc;
  }
  /* Archive sinks write to s3:// destinations with the broker's S3 settings
   * (endpoint, region, credentials), each in its own bucket and prefix. */
  rn_sinks_opts_t so;
  rn_sinks_opts_default(&so);
  so.s3 = eo->tier.s3;
  so.s3.bucket = NULL;
  so.s3.prefix = NULL;
  rn_sinks_t *ss; /* core's from here on, as the groups */
  rc = rn_sinks_open(core, &so, &ss, why, whylen);
  if (rc != 0) {
    rn_core_close(core);
    return rc;
  }
  *out = core;
  return 0;
}

/* ---- public ---------------------------------------------------------------------------- */

static void server_free(rn_server_t *srv) {
  rn_native_free(srv->nat);
  rn_http_free(srv->hs);
  free(srv->port_file_written);
  free(srv);
}

rn_err_t rn_server_bind(uv_loop_t *loop, const rn_config_t *cfg, rn_server_t **out, char *why, size_t whylen) {
  *out = NULL;
  rn_server_t *srv = calloc(1, sizeof *srv);
  if (srv == NULL) {
    snprintf(why, whylen, "out of memory");
    return RN_ENOMEM;
  }
  srv->loop = loop;
  srv->cfg = cfg;
  rn_net_opts_t no = {.fd_reserve = cfg->fd_reserve, .log = rn_net_log_stderr, .quiet = server_quiet, .quiet_arg = srv};
  srv->net = rn_net_new(loop, &no);
  rn_native_opts_t nopts = {
      .max_frame_bytes = cfg->max_frame_bytes,
      .max_fetch_bytes = cfg->max_fetch_bytes,
      .max_inflight_per_connection = cfg->max_inflight_per_connection,
      .max_output_bytes_per_connection = cfg->max_output_bytes_per_connection,
      .idle_timeout_ms = cfg->idle_timeout_ms,
      .drain_timeout_ms = cfg->drain_timeout_ms,
  };
  srv->nat = rn_native_new(&nopts);
  if (srv->net == NULL || srv->nat == NULL) {
    snprintf(why, whylen, "out of memory");
    rn_net_destroy(srv->net);
    server_free(srv);
    return RN_ENOMEM;
  }
  check_fd_limit(srv);
  rn_http_opts_t hopts = {
      .http_tls_cert = cfg->http_tls_cert,
      .http_tls_key = cfg->http_tls_key,
      .http_max_header_bytes = cfg->http_max_header_bytes,
      .http_max_body_bytes = cfg->http_max_body_bytes,
      .http_header_timeout_ms = cfg->http_header_timeout_ms,
      .http_body_timeout_ms = cfg->http_body_timeout_ms,
      .http_idle_timeout_ms = cfg->http_idle_timeout_ms,
      .http_max_connections = cfg->http_max_connections,
      .drain_timeout_ms = cfg->drain_timeout_ms,
      .max_inflight_per_connection = cfg->max_inflight_per_connection,
      .max_output_bytes_per_connection = cfg->max_output_bytes_per_connection,
  };
  rn_err_t rc = rn_http_new(srv->net, &hopts, &srv->hs, why, whylen);
  if (rc == 0) rc = listen_on(srv, cfg->listen, "native", "max_connections", cfg->max_connections, 0,
                              ": the native protocol has no authentication yet, so anyone who could reach it "
                              "could read, write and delete every stream. Bind it to 127.0.0.1, or set `auth: "
                              "none` (--set auth=none) to run open on a trusted network",
                              rn_native_ops(), srv->nat, NULL, &srv->native, why, whylen);
  if (rc == 0)
    rc = listen_on(srv, cfg->http_listen, "http", "http_max_connections", cfg->http_max_connections,
                   RN_HTTP_OVER_LIMIT_EXTRA,
                   " without authentication: set both `kinesis_credentials` (SigV4) and `rest_api_keys` (or "
                   "their *_file / environment forms), bind it to 127.0.0.1, or set `auth: none` to run open on "
                   "a trusted network",
                   rn_http_ops(), srv->hs, rn_http_tls(srv->hs), &srv->http, why, whylen);
  if (rc != 0) {
    rn_net_abandon(srv->net);
    server_free(srv);
    return rc;
  }
  *out = srv;
  return 0;
}

void rn_server_abandon(rn_server_t *srv) {
  if (srv == NULL) return;
  assert(srv->eng == NULL);
  rn_net_abandon(srv->net);
  server_free(srv);
}

rn_err_t rn_server_start(rn_server_t *srv, rn_core_t *eng, char *why, size_t whylen) {
  const rn_config_t *cfg = srv->cfg;
  assert(srv->eng == NULL && eng != NULL);
  uint16_t native_port = rn_net_listener_port(srv->native), http_port = rn_net_listener_port(srv->http);
  if (cfg->port_file[0] != '\0') {
    rn_err_t rc = write_port_file(cfg->port_file, native_port, http_port, why, whylen);
    if (rc != 0) return rc;
    srv->port_file_written = strdup(cfg->port_file);
  }
  srv->eng = eng;
  rn_native_set_engine(srv->nat, eng);
  rn_net_start(srv->net);
  rn_sayf(RN_LVL_INFO, "server", "listening native=%s http=%s", rn_net_listener_addr(srv->native),
           rn_net_listener_addr(srv->http));
  return 0;
}

uint16_t rn_server_native_port(const rn_server_t *srv) { return rn_net_listener_port(srv->native); }
uint16_t rn_server_http_port(const rn_server_t *srv) { return rn_net_listener_port(srv->http); }
int rn_server_draining(const rn_server_t *srv) { return rn_net_draining(srv->net); }

void rn_server_set_http_router(rn_server_t *srv, rn_http_router_fn fn, void *arg) {
  rn_http_set_router(srv->hs, fn, fn != NULL ? arg : NULL); /* NULL: the transport's built-in router */
}

void rn_server_http_builtin_router(void *arg, const rn_http_req_t *req, rn_http_reply_fn reply, void *ctx) {
  rn_server_t *srv = arg;
  rn_http_builtin_router(srv->net, req, reply, ctx);
}

void rn_server_shutdown(rn_server_t *srv, rn_server_done_cb done, void *arg) {
  if (rn_net_draining(srv->net)) return;
  srv->done = done;
  srv->done_arg = arg;
  rn_net_shutdown(srv->net, on_net_done, srv);
  rn_sayf(RN_LVL_INFO, "server",
           "shutting down: listeners closed; %u connection(s), %llu request(s) in flight; %u HTTP connection(s)",
           (unsigned)rn_net_listener_count(srv->native), (unsigned long long)rn_native_inflight(srv->nat),
           (unsigned)rn_net_listener_count(srv->http));
  rn_core_drain(srv->eng);
  /* net's loop hooks take it from here (step 5 of the order in broker/net/net.c). */
}

void rn_server_destroy(rn_server_t *srv) {
  if (srv == NULL) return;
  rn_net_destroy(srv->net);
  if (srv->port_file_written != NULL) unlink(srv->port_file_written);
  server_free(srv);
}

size_t rn_server_metrics(void *arg, char *out, size_t cap) {
  const rn_server_t *srv = arg;
  unsigned bp_native = rn_native_backpressured(srv->native), bp_http = rn_http_backpressured(srv->http);
  rn_core_stats_t st;
  rn_core_stats(srv->eng, &st);
  int n = snprintf(out, cap,
                   "# HELP runnel_connections Open client connections.\n"
                   "# TYPE runnel_connections gauge\n"
                   "runnel_connections{protocol=\"native\"} %u\n"
                   "runnel_connections{protocol=\"http\"} %u\n"
                   "# HELP runnel_connections_refused_total Connections closed right after accept (limit: "
                   "max_connections or http_max_connections, HTTP ones answered 503; fds: fewer than fd_reserve "
                   "descriptors left).\n"
                   "# TYPE runnel_connections_refused_total counter\n"
                   "runnel_connections_refused_total{port=\"native\",reason=\"limit\"} %llu\n"
                   "runnel_connections_refused_total{port=\"native\",reason=\"fds\"} %llu\n"
                   "runnel_connections_refused_total{port=\"http\",reason=\"limit\"} %llu\n"
                   "runnel_connections_refused_total{port=\"http\",reason=\"fds\"} %llu\n"
                   "# HELP runnel_connections_backpressured Connections whose unwritten and reserved answers reach "
                   "max_output_bytes_per_connection: none of their requests is dispatched until answers are read.\n"
                   "# TYPE runnel_connections_backpressured gauge\n"
                   "runnel_connections_backpressured{protocol=\"native\"} %u\n"
                   "runnel_connections_backpressured{protocol=\"http\"} %u\n"
                   "# HELP runnel_fetch_memory_bytes Bytes fetch read buffers hold (max_fetch_memory_bytes budget).\n"
                   "# TYPE runnel_fetch_memory_bytes gauge\n"
                   "runnel_fetch_memory_bytes %llu\n"
                   "# HELP runnel_fetch_memory_limit_bytes The max_fetch_memory_bytes budget (0 = none).\n"
                   "# TYPE runnel_fetch_memory_limit_bytes gauge\n"
                   "runnel_fetch_memory_limit_bytes %llu\n"
                   "# HELP runnel_fetch_memory_waiting Fetches waiting for fetch memory now.\n"
                   "# TYPE runnel_fetch_memory_waiting gauge\n"
                   "runnel_fetch_memory_waiting %llu\n"
                   "# HELP runnel_fetch_memory_waits_total Fetches that had to wait for fetch memory.\n"
                   "# TYPE runnel_fetch_memory_waits_total counter\n"
                   "runnel_fetch_memory_waits_total %llu\n",
                   (unsigned)rn_net_listener_count(srv->native), (unsigned)rn_net_listener_count(srv->http),
                   (unsigned long long)rn_net_listener_refused(srv->native, RN_NET_REFUSE_LIMIT),
                   (unsigned long long)rn_net_listener_refused(srv->native, RN_NET_REFUSE_FDS),
                   (unsigned long long)rn_net_listener_refused(srv->http, RN_NET_REFUSE_LIMIT),
                   (unsigned long long)rn_net_listener_refused(srv->http, RN_NET_REFUSE_FDS), bp_native, bp_http,
                   (unsigned long long)st.fetch_memory_bytes, (unsigned long long)srv->cfg->max_fetch_memory_bytes,
                   (unsigned long long)st.fetch_memory_waiting, (unsigned long long)st.fetch_memory_waits);
  return n > 0 ? (size_t)n : 0;
}

/* ---- the HTTP applications' options ------------------------------------------------------ */

static bool loopback_addr(const char *addr) {
  char host[256];
  uint16_t port;
  if (rn_config_split_addr(addr, host, sizeof(host), &port)) return false;
  return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 || strcmp(host, "localhost") == 0;
}

void rn_server_apps_opts(const rn_config_t *cfg, rn_apps_opts_t *out) {
  memset(out, 0, sizeof(*out));
  out->admin.data_dir = cfg->data_dir;
  out->admin.latency_per_shard = cfg->metrics_latency_detail == 1;
  out->kinesis.data_dir = cfg->data_dir;
  out->kinesis.credentials = cfg->kinesis_credentials;
  out->kinesis.throughput_limits = cfg->kinesis_throughput_limits == 1;
  out->kinesis.max_record_bytes = cfg->max_record_bytes;
  out->kinesis.max_batch_bytes = cfg->max_batch_bytes;
  out->kinesis.max_shards = cfg->max_shards;
  out->rest.api_keys = cfg->rest_api_keys;
  out->rest.max_body_bytes = cfg->rest_max_body_bytes;
  out->http_listen = cfg->http_listen;
  out->http_listen_loopback = loopback_addr(cfg->http_listen);
}
