/*
 * main.c — runneld, the broker daemon. Thin: parse the configuration
 * (config.h), set the log level, then start in an order that keeps a broker
 * that cannot run from touching anything:
 *
 *   1. bind both listeners (rn_server_bind): a port in use, a bad address or
 *      a non-loopback listener without authentication stops here, before the
 *      data directory is even created;
 *   2. lock the data directory (rn_dirlock_acquire, rn_core.h): a second broker on the same
 *      directory stops here, before reading or writing anything in it;
 *   3. open the engine (recovery), then serve (rn_server_start: accept, port
 *      file, "listening").
 *
 * On SIGTERM/SIGINT it shuts down cleanly:
 *
 *   signal → rn_server_shutdown (listeners closed, rn_core_drain) → the
 *   server's prepare/check hooks wait until rn_core_idle() and every reply is
 *   written, then close the connections and call on_server_done → uv_stop →
 *   rn_core_close (syncs, clean-shutdown markers) → exit 0. The directory
 *   lock is released last, when the process exits.
 *
 * A second signal exits at once with status 1 (no clean-shutdown markers:
 * the next start recovers the logs). Exit status 2 is a usage or
 * configuration error; 1 any failure to start or to close cleanly.
 *
 * Owns the loop, the signal handles, the config, the lock, the engine and
 * the server for the life of the process.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "rn_cluster.h"
#include "rn_core.h"
#include "rn_apps.h"
#include "server.h"

#ifndef RN_VERSION
#define RN_VERSION "dev"
#endif

/* The config table's enum choices are listed in the order of these enums. */
_Static_assert(RN_LVL_DEBUG == 0 && RN_LVL_INFO == 1 && RN_LVL_WARN == 2 && RN_LVL_ERROR == 3,
               "log_level choices are debug|info|warn|error");
_Static_assert(RN_IO_AUTO == 0 && RN_IO_URING == 1 && RN_IO_POSIX == 2, "io_backend choices are auto|uring|posix");

static const char *or_null(const char *s) { return s && s[0] ? s : NULL; }

/* Tiered storage (docs/tiering.md): the store and the tier's options from
 * the config. Strings point into cfg (rn_core_open copies what it keeps).
 * Credentials are not in the config: S3 reads them from the environment or
 * s3_credentials_file itself, and never prints them. */
static void tier_opts(const rn_config_t *cfg, rn_core_opts_t *eo) {
  eo->tier.dir = or_null(cfg->tier_dir);
  rn_s3_opts_t *s3 = &eo->tier.s3;
  s3->bucket = or_null(cfg->s3_bucket);
  s3->endpoint = or_null(cfg->s3_endpoint);
  s3->region = cfg->s3_region;
  s3->prefix = cfg->s3_prefix;
  s3->path_style = cfg->s3_path_style == RN_S3_PATH_TRUE || (cfg->s3_path_style == RN_S3_PATH_AUTO && s3->endpoint);
  s3->ca_file = or_null(cfg->s3_ca_file);
  s3->credentials_file = or_null(cfg->s3_credentials_file);
  s3->profile = or_null(cfg->s3_profile);
  s3->request_timeout_ms = cfg->tier_request_timeout;
  s3->logger = rn_logger_stderr_as("s3");
  rn_tier_opts_t *t = &eo->tier.tier;
  t->upload_concurrency = cfg->tier_upload_concurrency;
  t->upload_bytes_per_sec = cfg->tier_upload_bandwidth;
  t->cache_bytes = cfg->tier_cache_bytes;
  t->chunk_bytes = cfg->tier_chunk_bytes;
  t->readahead_chunks = cfg->tier_readahead_chunks;
  t->gc_grace_ms = cfg->tier_gc_grace;
  t->gc_interval_ms = cfg->tier_gc_interval; /* 0 = off */
  eo->tier.disk_high_water = cfg->tier_disk_high_water;
  eo->tier.segment_max_age_ms = cfg->tier_segment_max_age;
  eo->tier.default_local_retention_ms = cfg->default_local_retention;
}

typedef struct runneld {
  uv_loop_t loop;
  uv_signal_t sigterm, sigint;
  rn_core_t *eng;
  rn_server_t *srv;
  rn_cluster_t *cluster; /* NULL: a single broker */
  int signals; /* received so far */
} runneld_t;

/* While rn_core_close blocks the loop thread, a further signal cannot
 * reach a libuv callback; this async-signal-safe handler keeps the promise
 * "a second signal exits at once with status 1". */
static void on_signal_while_closing(int signum) {
  (void)signum;
  static const char msg[] = "runneld: signal during close: exiting at once without a clean shutdown\n";
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
  _exit(1);
}

static void on_server_done(rn_server_t *srv, void *arg) {
  (void)srv;
  runneld_t *d = arg;
  /* uv_close restores the default dispositions at once; install ours after. */
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  uv_close((uv_handle_t *)&d->sigint, NULL);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal_while_closing;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  uv_stop(&d->loop);
}

static void on_signal(uv_signal_t *h, int signum) {
  runneld_t *d = h->data;
  const char *name = signum == SIGTERM ? "SIGTERM" : signum == SIGINT ? "SIGINT" : "signal";
  if (++d->signals > 1) {
    rn_sayf(RN_LVL_WARN, "runneld", "%s again: exiting now without a clean shutdown (recovery runs at the next start)",
             name);
    _exit(1);
  }
  if (d->srv == NULL) return; /* a failed start is exiting anyway */
  rn_sayf(RN_LVL_INFO, "runneld", "%s: shutting down cleanly (send it again to exit at once)", name);
  rn_server_shutdown(d->srv, on_server_done, d);
}

int main(int argc, char **argv) {
  rn_config_t cfg;
  rn_config_init(&cfg);
  rn_config_action_t action;
  char why[1024] = "";
  rn_err_t rc = rn_config_from_args(&cfg, argc, argv, &action, why, sizeof why);
  if (rc != 0) {
    fprintf(stderr, "runneld: %s\n", why);
    rn_config_free(&cfg);
    return 2;
  }
  if (rc == 0 && (action == RN_CONFIG_RUN || action == RN_CONFIG_PRINT))
    rc = rn_config_resolve_secrets(&cfg, why, sizeof why);
  if (rc != 0) {
    fprintf(stderr, "runneld: %s\n", why);
    rn_config_free(&cfg);
    return 2;
  }
  switch (action) {
  case RN_CONFIG_HELP: rn_config_print_help(stdout, "runneld"); break;
  case RN_CONFIG_VERSION: printf("runneld %s\n", RN_VERSION); break;
  case RN_CONFIG_REFERENCE: rn_config_print_reference(stdout); break;
  case RN_CONFIG_PRINT: rn_config_print(stdout, &cfg); break;
  case RN_CONFIG_MAN: rn_config_print_man(stdout, RN_VERSION); break;
  case RN_CONFIG_RUN: break;
  }
  if (action != RN_CONFIG_RUN) {
    rn_config_free(&cfg);
    /* A failed write (a full disk, a closed pipe) is a failure, not success. */
    if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
      fprintf(stderr, "runneld: cannot write to standard output: %s\n", strerror(errno));
      return 1;
    }
    return 0;
  }

  rn_say_set_min_level((rn_level_t)cfg.log_level);
  signal(SIGPIPE, SIG_IGN); /* a peer that vanished is a write error, not a death */

  runneld_t d;
  memset(&d, 0, sizeof d);
  int urc = uv_loop_init(&d.loop);
  if (urc != 0) {
    rn_sayf(RN_LVL_ERROR, "runneld", "cannot create the event loop: %s", uv_strerror(urc));
    rn_config_free(&cfg);
    return 1;
  }

  /* Descriptors first: the listeners reconcile their limits with it, and
   * the engine's segments need it. */
  rn_server_raise_fd_limit();

  /* 1. Listeners first: a broker that cannot listen never touches the data
   * directory. */
  rc = rn_server_bind(&d.loop, &cfg, &d.srv, why, sizeof why);
  if (rc != 0) {
    rn_sayf(RN_LVL_ERROR, "server", "%s", why);
    uv_loop_close(&d.loop);
    rn_config_free(&cfg);
    return 1;
  }
  if (cfg.auth == RN_AUTH_NONE)
    rn_sayf(RN_LVL_WARN, "runneld",
             "auth: none — authentication is not required on any listener, whatever its address");

  /* 2. One owner per data directory, before anything in it is read. */
  rn_dirlock_t *lock = NULL;
  rc = rn_dirlock_acquire(cfg.data_dir, &lock, why, sizeof why);
  if (rc != 0) {
    rn_sayf(RN_LVL_ERROR, "runneld", "%s", why);
    rn_server_abandon(d.srv);
    uv_loop_close(&d.loop);
    rn_config_free(&cfg);
    return 1;
  }

  /* 3. The engine (recovery), then serve. */
  rn_core_opts_t eo;
  rn_core_opts_default(&eo);
  eo.loop = &d.loop;
  eo.data_dir = cfg.data_dir;
  eo.io_backend = (rn_io_backend_t)cfg.io_backend;
  eo.max_record_bytes = cfg.max_record_bytes;
  eo.max_batch_bytes = cfg.max_batch_bytes;
  eo.max_fetch_bytes = cfg.max_fetch_bytes;
  eo.max_frame_bytes = cfg.max_frame_bytes;
  eo.max_fetch_memory_bytes = cfg.max_fetch_memory_bytes;
  eo.max_wait_ms = cfg.max_wait_ms;
  eo.max_shards = cfg.max_shards;
  eo.dedup_max_ids = cfg.dedup_max_ids;
  eo.segment_bytes = cfg.segment_bytes;
  eo.group_segment_bytes = cfg.group_log_segment_bytes;
  eo.interval_ms = cfg.interval_ms;
  eo.journal_bytes = cfg.journal_bytes;
  eo.journal_checkpoint_ms = cfg.journal_checkpoint_ms;
  eo.default_retention_ms = cfg.default_retention;
  eo.logger = rn_logger_stderr_as("engine");
  eo.cluster = cfg.etcd[0] != '\0';
  eo.broker_id = eo.cluster ? cfg.broker_id : 0;
  tier_opts(&cfg, &eo);

  rn_sayf(RN_LVL_INFO, "runneld", "runneld %s starting: data_dir=%s pid=%ld", RN_VERSION, cfg.data_dir,
           (long)getpid());
  rc = rn_server_open_engine(&eo, &d.eng, why, sizeof why);
  if (rc != 0) {
    rn_sayf(RN_LVL_ERROR, "engine", "cannot open %s: %s (%s)", cfg.data_dir, why[0] ? why : rn_strerror(rc),
             rn_err_name(rc));
    rn_server_abandon(d.srv);
    rn_dirlock_release(lock);
    uv_loop_close(&d.loop);
    rn_config_free(&cfg);
    return 1;
  }

  /* Signal handles first: once rn_server_start logs "listening" (and writes
   * the port file) a supervisor may send SIGTERM at any moment, and it must
   * mean a clean shutdown, not the signal's default action. The callbacks
   * only run inside uv_run, by which time d.srv is set. */
  uv_signal_init(&d.loop, &d.sigterm);
  uv_signal_init(&d.loop, &d.sigint);
  d.sigterm.data = d.sigint.data = &d;
  uv_signal_start(&d.sigterm, on_signal, SIGTERM);
  uv_signal_start(&d.sigint, on_signal, SIGINT);

  rc = rn_server_start(d.srv, d.eng, why, sizeof why);
  if (rc != 0) {
    rn_sayf(RN_LVL_ERROR, "server", "%s", why);
    uv_close((uv_handle_t *)&d.sigterm, NULL);
    uv_close((uv_handle_t *)&d.sigint, NULL);
    rn_server_abandon(d.srv);
    rn_core_close(d.eng);
    uv_run(&d.loop, UV_RUN_NOWAIT);
    uv_loop_close(&d.loop);
    rn_dirlock_release(lock);
    rn_config_free(&cfg);
    return 1;
  }

  /* The HTTP applications (Kinesis API, REST ingest, /metrics, health).
   * Requests are only read inside uv_run, so none can reach the server's
   * fallback router before this. */
  rn_http_routes_t *routes = NULL;
  rn_apps_opts_t apps_opts;
  rn_server_apps_opts(&cfg, &apps_opts);
  int routes_failed = rn_http_routes_new(&d.loop, d.eng, &apps_opts, &routes, why, sizeof why) != 0;
  if (routes_failed) {
    rn_sayf(RN_LVL_ERROR, "http", "%s", why);
    rn_server_shutdown(d.srv, on_server_done, &d); /* refuse to run half-configured */
  } else {
    rn_server_set_http_router(d.srv, rn_http_routes_router, routes);
    rn_http_routes_add_metrics(routes, rn_server_metrics, d.srv);
  }

  /* A cluster member joins once it serves (docs/cluster.md): its shards
   * answer ENOTLEADER until the first view of etcd gave them roles. */
  if (!routes_failed && cfg.etcd[0] != '\0') {
    char adv[300];
    if (cfg.advertise[0] != '\0') {
      snprintf(adv, sizeof adv, "%s", cfg.advertise);
    } else {
      char host[256];
      uint16_t port;
      rn_config_split_addr(cfg.listen, host, sizeof host, &port);
      snprintf(adv, sizeof adv, "%s:%u", host, (unsigned)rn_server_native_port(d.srv));
    }
    char http[300] = "";
    if (rn_server_http_port(d.srv)) {
      char host[256];
      uint16_t port;
      rn_config_split_addr(cfg.http_listen, host, sizeof host, &port);
      snprintf(http, sizeof http, "%s:%u", host, (unsigned)rn_server_http_port(d.srv));
    }
    rn_cluster_opts_t co;
    rn_cluster_opts_default(&co);
    co.http = http;
    co.default_retention_ms = cfg.default_retention;
    co.core = d.eng;
    co.etcd = cfg.etcd;
    co.root = cfg.cluster_root;
    co.broker_id = cfg.broker_id;
    co.advertise = adv;
    co.rack = cfg.rack;
    co.lease_ms = cfg.cluster_lease;
    co.replica_lag_ms = cfg.replica_lag;
    co.max_fetch_bytes = cfg.max_fetch_bytes;
    co.logger = rn_logger_stderr_as("cluster");
    rc = rn_cluster_open(&co, &d.cluster, why, sizeof why);
    if (rc != 0) {
      rn_sayf(RN_LVL_ERROR, "cluster", "%s", why);
      routes_failed = 1;
      rn_server_shutdown(d.srv, on_server_done, &d);
    } else {
      rn_http_routes_add_metrics(routes, rn_cluster_metrics, d.cluster);
      rn_sayf(RN_LVL_INFO, "cluster", "broker %u joining the cluster at %s as %s", cfg.broker_id, cfg.etcd, adv);
    }
  }

  rn_thread_mark_loop(); /* the blocking check: nothing may block the loop from here */
  uv_run(&d.loop, UV_RUN_DEFAULT);
  rn_thread_unmark_loop(); /* the loop has stopped: closing may block */

  /* The server has stopped (on_server_done); the engine's own handles may
   * still be open. A further signal now exits at once (on_signal_while_closing). */
  rn_cluster_close(d.cluster);
  uv_run(&d.loop, UV_RUN_NOWAIT); /* the cluster's handles */
  rn_server_destroy(d.srv);
  rn_http_routes_destroy(routes);
  rc = rn_core_close(d.eng);
  /* Close callbacks of the signal handles and of whatever the engine closed. */
  uv_run(&d.loop, UV_RUN_NOWAIT);
  urc = uv_loop_close(&d.loop);
  if (urc != 0) rn_sayf(RN_LVL_DEBUG, "runneld", "event loop still had open handles at exit: %s", uv_strerror(urc));
  rn_config_free(&cfg);
  rn_dirlock_release(lock); /* after the engine wrote its last byte */
  if (rc != 0) {
    rn_sayf(RN_LVL_ERROR, "engine", "close failed: %s (%s); the next start will run recovery", rn_strerror(rc),
             rn_err_name(rc));
    return 1;
  }
  if (routes_failed) return 1;
  rn_sayf(RN_LVL_INFO, "runneld", "stopped cleanly");
  return 0;
}
