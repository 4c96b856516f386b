/*
 * admin_int.h — private state of the admin application (call.c: the reply
 * path; health.c: /healthz, /readyz, /metrics and the admin's lifetime;
 * metrics.c: rendering /metrics). Loop thread only.
 */
#ifndef RN_BROKER_ADMIN_INT_H
#define RN_BROKER_ADMIN_INT_H

#include "rn_admin.h"

#define RN__MAX_METRICS_SOURCES 8

struct rn_admin {
  uv_loop_t *loop;
  rn_core_t *core;
  char *data_dir;
  rn_admin_counters_t m;
  struct {
    rn_http_metrics_fn fn;
    void *arg;
  } sources[RN__MAX_METRICS_SOURCES];
  size_t nsources;
  unsigned pending_jobs;  /* thread-pool work: statfs for /metrics */
  uint64_t started_ns;
  double process_start_s; /* epoch seconds the process started (process_start_time_seconds) */
  const char *version;    /* runnel_build_info */
  bool latency_per_shard; /* metrics_latency_detail: shard */
};

/* Status code <-> counter slot (metrics.c). */
int rn__status_slot(int status);
int rn__status_of_slot(int slot); /* 0 for "other" */
extern const double rn__dur_bounds[RN__DUR_BUCKETS];

void rn__metrics_count_kerr(rn_admin_counters_t *m, rn_kinesis_err_t type);

/* Space of the data directory's file system (statfs, done on the thread
 * pool before rendering); err != 0 when unknown (the gauges are omitted). */
typedef struct rn__disk_usage {
  rn_err_t err;
  uint64_t free_bytes, total_bytes;
} rn__disk_usage_t;

/* The whole /metrics page into out. */
void rn__metrics_render(rn_admin_t *adm, rn_buf_t *out, const rn__disk_usage_t *disk);

#endif
