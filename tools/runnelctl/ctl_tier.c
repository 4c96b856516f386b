/*
 * ctl_tier.c — `runnelctl tier status [--watch]`: the broker's tiered
 * storage at a glance (docs/tiering.md) from one native TierStatus request
 * (rn_tier_status): the store, the uploader and its backlog, bytes moved,
 * the read cache, the collector, back-pressure, the last error and the
 * store's operations. A broker without a store answers "off" (exit 0: it
 * is a configuration, not a failure).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_int.h"

static json_t *status_json(const rn_tier_status_t *t) {
  json_t *o = json_object();
  json_object_set_new(o, "enabled", json_boolean(t->enabled));
  if (!t->enabled) return o;
  json_object_set_new(o, "store", json_string(t->store));
  json_object_set_new(o, "location", json_string(t->location));
  json_object_set_new(o, "tiered_streams", json_integer(t->tiered_streams));
  json_object_set_new(o, "tiered_shards", json_integer(t->tiered_shards));
  json_object_set_new(o, "uploads_active", json_integer((json_int_t)t->uploads_active));
  json_object_set_new(o, "upload_backlog_bytes", json_integer((json_int_t)t->backlog_bytes));
  json_object_set_new(o, "upload_backlog_segments", json_integer(t->backlog_segments));
  json_object_set_new(o, "upload_backlog_age_ms", json_integer(t->backlog_age_ms));
  json_object_set_new(o, "uploaded_bytes", json_integer((json_int_t)t->bytes_uploaded));
  json_object_set_new(o, "downloaded_bytes", json_integer((json_int_t)t->bytes_downloaded));
  json_object_set_new(o, "remote_bytes", json_integer((json_int_t)t->remote_bytes));
  json_object_set_new(o, "remote_segments", json_integer(t->remote_segments));
  json_object_set_new(o, "cache_bytes", json_integer((json_int_t)t->cache_bytes));
  json_object_set_new(o, "cache_limit_bytes", json_integer((json_int_t)t->cache_limit_bytes));
  json_object_set_new(o, "cache_hits", json_integer((json_int_t)t->cache_hits));
  json_object_set_new(o, "cache_misses", json_integer((json_int_t)t->cache_misses));
  json_object_set_new(o, "cache_evictions", json_integer((json_int_t)t->cache_evictions));
  json_object_set_new(o, "gets_inflight", json_integer(t->gets_inflight));
  json_object_set_new(o, "gets_inflight_max", json_integer(t->gets_inflight_max));
  json_object_set_new(o, "orphans_collected", json_integer((json_int_t)t->orphans_collected));
  json_object_set_new(o, "remote_deletes", json_integer((json_int_t)t->remote_deletes));
  json_object_set_new(o, "corrupt_objects", json_integer((json_int_t)t->corrupt_objects));
  json_object_set_new(o, "delete_jobs", json_integer(t->delete_jobs));
  json_object_set_new(o, "disk_used_percent", json_integer(t->disk_used_percent));
  json_object_set_new(o, "disk_high_water_percent", json_integer(t->disk_high_water));
  json_object_set_new(o, "backpressure", json_boolean(t->backpressure));
  if (t->last_err) {
    json_t *e = json_object();
    json_object_set_new(e, "error", json_string(rn_err_name(t->last_err)));
    json_object_set_new(e, "message", json_string(t->last_error));
    json_object_set_new(o, "last_error", e);
  } else {
    json_object_set_new(o, "last_error", json_null());
  }
  json_t *ops = json_array();
  for (size_t i = 0; i < t->op_count; i++) {
    const rn_tier_op_stats_t *s = &t->ops[i];
    json_t *so = json_object();
    json_object_set_new(so, "op", json_string(s->op));
    json_object_set_new(so, "requests", json_integer((json_int_t)s->requests));
    json_object_set_new(so, "errors", json_integer((json_int_t)s->errors));
    json_object_set_new(so, "retries", json_integer((json_int_t)s->retries));
    json_object_set_new(so, "latency_count", json_integer((json_int_t)s->latency_count));
    json_object_set_new(so, "latency_sum_seconds", json_real(s->latency_sum_seconds));
    json_object_set_new(so, "latency_p50_seconds", s->latency_count ? json_real(s->latency_p50_seconds) : json_null());
    json_object_set_new(so, "latency_p99_seconds", s->latency_count ? json_real(s->latency_p99_seconds) : json_null());
    json_array_append_new(ops, so);
  }
  json_object_set_new(o, "ops", ops);
  return o;
}

/* "12ms", "1.2s" for a latency bucket bound; "-" for none. */
static void format_latency(double s, bool any, char *buf, size_t n) {
  if (!any)
    snprintf(buf, n, "-");
  else if (s < 1)
    snprintf(buf, n, "%gms", s * 1000);
  else
    snprintf(buf, n, "%gs", s);
}

static void print_status(ctl_t *c, const rn_tier_status_t *t) {
  if (!t->enabled) {
    ctl_print(c, "tiered storage:   off (the broker has no store: s3_bucket or tier_dir)\n");
    return;
  }
  char a[32], b[32];
  ctl_print(c, "store:            %s (%s)\n", t->store, t->location);
  ctl_print(c, "tiered streams:   %u (%u shards)\n", t->tiered_streams, t->tiered_shards);
  ctl_print(c, "uploads active:   %" PRIu64 "\n", t->uploads_active);
  ctl_format_bytes(t->backlog_bytes, a, sizeof a);
  if (t->backlog_segments) {
    ctl_format_age(t->backlog_age_ms, b, sizeof b);
    ctl_print(c, "upload backlog:   %u segments, %s, the oldest waiting %s\n", t->backlog_segments, a, b);
  } else {
    ctl_print(c, "upload backlog:   none\n");
  }
  ctl_format_bytes(t->bytes_uploaded, a, sizeof a);
  ctl_format_bytes(t->bytes_downloaded, b, sizeof b);
  ctl_print(c, "uploaded:         %s (downloaded %s, since the broker started)\n", a, b);
  ctl_format_bytes(t->remote_bytes, a, sizeof a);
  ctl_print(c, "in the store:     %u segments, %s\n", t->remote_segments, a);
  ctl_format_bytes(t->cache_bytes, a, sizeof a);
  ctl_format_bytes(t->cache_limit_bytes, b, sizeof b);
  ctl_print(c, "cache:            %s of %s; %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " evictions\n", a, b,
            t->cache_hits, t->cache_misses, t->cache_evictions);
  ctl_print(c, "GETs in flight:   %u (at most %u so far)\n", t->gets_inflight, t->gets_inflight_max);
  ctl_print(c, "collector:        %" PRIu64 " orphans collected, %" PRIu64 " remote deletes, %u delete jobs\n",
            t->orphans_collected, t->remote_deletes, t->delete_jobs);
  ctl_print(c, "corrupt objects:  %" PRIu64 "\n", t->corrupt_objects);
  ctl_print(c, "data disk:        %u%% used (tier_disk_high_water %u%%)\n", t->disk_used_percent, t->disk_high_water);
  ctl_print(c, "back-pressure:    %s\n",
            t->backpressure ? "ON: produce to tiered streams answers EBACKLOG until uploads catch up" : "off");
  if (t->last_err)
    ctl_print(c, "last error:       %s: %s\n", rn_err_name(t->last_err), t->last_error);
  else
    ctl_print(c, "last error:       -\n");
  if (t->op_count == 0) return;
  ctl_print(c, "\n");
  ctl_table_t tb;
  ctl_table_init(&tb, 6);
  ctl_table_row(&tb, "OP", "REQUESTS", "ERRORS", "RETRIES", "P50", "P99");
  for (size_t i = 0; i < t->op_count; i++) {
    const rn_tier_op_stats_t *s = &t->ops[i];
    char rq[24], er[24], rt[24], p50[32], p99[32];
    snprintf(rq, sizeof rq, "%" PRIu64, s->requests);
    snprintf(er, sizeof er, "%" PRIu64, s->errors);
    snprintf(rt, sizeof rt, "%" PRIu64, s->retries);
    format_latency(s->latency_p50_seconds, s->latency_count > 0, p50, sizeof p50);
    format_latency(s->latency_p99_seconds, s->latency_count > 0, p99, sizeof p99);
    ctl_table_row(&tb, s->op, rq, er, rt, p50, p99);
  }
  ctl_table_print(c, &tb);
}

static int status_once(ctl_t *c) {
  rn_tier_status_t *t = NULL;
  rn_err_t err = rn_tier_status(c->cl, &t);
  if (err) return ctl_fail(c, err, "tier status of broker %s", c->broker);
  if (c->json)
    ctl_print_json(c, status_json(t));
  else
    print_status(c, t);
  rn_tier_status_free(t);
  return 0;
}

int ctl_tier_status(ctl_t *c, const ctl_args_t *a) {
  int64_t interval;
  int rc = ctl_watch_args(c, a, &interval);
  if (rc) return rc;
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  if (interval) ctl_catch_signals(true);
  int status = 0;
  for (bool first = true; first || (interval && !ctl_stop); first = false) {
    if (interval && c->out_tty)
      ctl_print(c, "\033[H\033[2J");
    else if (interval && !first)
      ctl_print(c, "\n");
    status = status_once(c);
    if (!ctl_flush(c) || status) break;
    if (interval) ctl_nap(interval);
  }
  if (interval) ctl_catch_signals(false);
  return ctl_out_finish(c, status);
}
