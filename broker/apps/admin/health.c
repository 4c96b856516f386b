/*
 * health.c — the admin application's handlers (GET /healthz, GET /readyz,
 * GET /metrics; docs/kinesis.md, "Health" and "Metrics") and its lifetime.
 * /metrics asks the thread pool for the data directory's free space first,
 * so a slow or hung file system never stalls the loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_int.h"

static void reply_json(rn_admin_call_t *c, int status, const char *json) {
  rn_admin_reply(c, status, "application/json", NULL, 0, json, strlen(json));
}

/* ---- health ---------------------------------------------------------------------------- */

/* GET /healthz: 200 while anything can be served — "ok" when every shard is
 * healthy, "degraded" with the shards that are not (a transient problem such
 * as a full disk, which the shard gets over by itself, or a failed log,
 * which needs a restart); 503 "failing" only when every shard's log has
 * failed, i.e. when only a restart can help. docs/kinesis.md, "Health". */
#define HEALTH_LIST_MAX 100

typedef struct health_acc {
  rn_buf_t *b;
  uint32_t shards, failed, degraded, listed;
} health_acc_t;

static void health_shard(void *arg, const rn_core_shard_stats_t *s) {
  health_acc_t *h = arg;
  h->shards++;
  if (s->health_state == RN_LOG_HEALTHY) return;
  if (s->health_state == RN_LOG_FAILED)
    h->failed++;
  else
    h->degraded++;
  if (h->listed++ >= HEALTH_LIST_MAX) return;
  char reason[200];
  snprintf(reason, sizeof(reason), "%s failed: %s%s", s->health_what, rn_strerror(s->health_err),
           s->health_state == RN_LOG_FAILED ? "; appends are refused until the broker restarts"
                                           : "; appends fail with a retriable error and resume by themselves");
  rn_buf_puts(h->b, h->listed > 1 ? ",{\"stream\":" : "{\"stream\":");
  rn__buf_json_str(h->b, s->stream, strlen(s->stream));
  rn_buf_printf(h->b, ",\"shard\":\"shardId-%012u\",\"state\":\"%s\",\"error\":\"%s\",\"reason\":", s->shard,
                 s->health_state == RN_LOG_FAILED ? "failed" : "degraded", rn_err_name(s->health_err));
  rn__buf_json_str(h->b, reason, strlen(reason));
  rn_buf_puts(h->b, "}");
}

void rn_admin_healthz(rn_admin_call_t *c) {
  rn_core_stats_t st;
  rn_core_stats(c->adm->core, &st);
  rn_buf_t list = {0};
  health_acc_t h = {.b = &list};
  rn_core_foreach_shard(c->adm->core, health_shard, &h);
  bool failing = h.shards > 0 && h.failed == h.shards;
  const char *status = failing ? "failing" : h.failed || h.degraded ? "degraded" : "ok";
  rn_buf_t b = {0};
  rn_buf_printf(&b, "{\"status\":\"%s\",\"streams\":%u,\"shards\":%u,\"failed_shards\":%u,\"degraded_shards\":%u,\"problems\":[",
                 status, st.streams, h.shards, h.failed, h.degraded);
  if (list.len) rn_buf_put(&b, list.p, list.len);
  rn_buf_printf(&b, "]%s}", h.listed > HEALTH_LIST_MAX ? ",\"problems_truncated\":true" : "");
  if (b.oom || list.oom) rn_admin_reply(c, 500, NULL, NULL, 0, NULL, 0);
  else rn_admin_reply(c, failing ? 503 : 200, "application/json", NULL, 0, b.p, b.len);
  rn_buf_free(&b);
  rn_buf_free(&list);
}

void rn_admin_readyz(rn_admin_call_t *c) {
  if (rn_core_draining(c->adm->core)) reply_json(c, 503, "{\"status\":\"draining\"}");
  else reply_json(c, 200, "{\"status\":\"ready\"}");
}

/* GET /metrics: statfs of the data directory first, on the thread pool (a
 * slow or hung file system must not stall the loop), then render. */
typedef struct metrics_job {
  uv_fs_t fs;
  rn_admin_call_t *c;
} metrics_job_t;

static void metrics_render_reply(rn_admin_call_t *c, const rn__disk_usage_t *disk) {
  rn_buf_t b = {0};
  rn__metrics_render(c->adm, &b, disk);
  if (b.oom) rn_admin_reply_error(c, 500, "out of memory rendering metrics");
  else rn_admin_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, 0, b.p, b.len);
  rn_buf_free(&b);
}

static void on_metrics_statfs(uv_fs_t *req) {
  metrics_job_t *j = req->data;
  rn__disk_usage_t disk = {.err = req->result < 0 ? (rn_err_t)req->result : 0};
  if (disk.err == 0) {
    const uv_statfs_t *st = req->ptr;
    disk.free_bytes = (uint64_t)st->f_bavail * st->f_bsize;
    disk.total_bytes = (uint64_t)st->f_blocks * st->f_bsize;
  }
  rn_admin_call_t *c = j->c;
  c->adm->pending_jobs--;
  uv_fs_req_cleanup(req);
  free(j);
  metrics_render_reply(c, &disk);
}

void rn_admin_metrics(rn_admin_call_t *c) {
  metrics_job_t *j = calloc(1, sizeof *j);
  if (j != NULL) {
    j->c = c;
    j->fs.data = j;
    if (uv_fs_statfs(c->adm->loop, &j->fs, c->adm->data_dir, on_metrics_statfs) == 0) {
      c->adm->pending_jobs++;
      return;
    }
    free(j);
  }
  rn__disk_usage_t unknown = {.err = RN_ENOMEM};
  metrics_render_reply(c, &unknown);
}

/* Epoch seconds at which this process started: its start time in clock
 * ticks after boot (/proc/self/stat field 22) plus the boot time. Startup
 * only (reads /proc); 0 when unknown. */
static double process_start_seconds(void) {
  double boot = 0, start_ticks = 0;
  FILE *f = fopen("/proc/stat", "r");
  if (f != NULL) {
    char line[256];
    while (fgets(line, sizeof line, f) != NULL)
      if (sscanf(line, "btime %lf", &boot) == 1) break;
    fclose(f);
  }
  f = fopen("/proc/self/stat", "r");
  if (f != NULL) {
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    int field = 2;
    for (; p != NULL && *p != '\0' && field < 22; p++)
      if (*p == ' ') field++;
    if (p != NULL && field == 22) start_ticks = strtod(p, NULL);
  }
  long hz = sysconf(_SC_CLK_TCK);
  if (boot <= 0 || start_ticks <= 0 || hz <= 0) return 0;
  return boot + start_ticks / (double)hz;
}

/* ---- lifetime ---------------------------------------------------------------------------------- */

rn_err_t rn_admin_new(uv_loop_t *loop, rn_core_t *core, const rn_admin_opts_t *opts, const char *version,
                      rn_admin_t **out) {
  *out = NULL;
  rn_admin_t *adm = calloc(1, sizeof(*adm));
  if (!adm) return RN_ENOMEM;
  adm->loop = loop;
  adm->core = core;
  adm->started_ns = uv_hrtime();
  adm->process_start_s = process_start_seconds();
  adm->version = version;
  adm->latency_per_shard = opts->latency_per_shard;
  adm->data_dir = strdup(opts->data_dir);
  if (!adm->data_dir) {
    free(adm);
    return RN_ENOMEM;
  }
  *out = adm;
  return 0;
}

rn_admin_counters_t *rn_admin_counters(rn_admin_t *adm) { return &adm->m; }

rn_err_t rn_admin_add_metrics(rn_admin_t *adm, rn_http_metrics_fn fn, void *arg) {
  if (adm->nsources == RN__MAX_METRICS_SOURCES) return RN_ENOMEM;
  adm->sources[adm->nsources].fn = fn;
  adm->sources[adm->nsources].arg = arg;
  adm->nsources++;
  return 0;
}

void rn_admin_destroy(rn_admin_t *adm) {
  if (!adm) return;
  /* statfs for /metrics runs on the thread pool; let it land. */
  while (adm->pending_jobs) uv_run(adm->loop, UV_RUN_ONCE);
  free(adm->data_dir);
  free(adm);
}
