/*
 * ctl_status.c — `runnelctl status [--watch]`: the broker at a glance —
 * version, uptime, data directory and its free space, stream and shard
 * counts, failed shards and health — from one native BrokerInfo request
 * (rn_broker_info). Exit status 1 while the broker reports itself degraded
 * (a failed shard), so scripts can use `runnelctl status` as a check.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_int.h"
#include "runnel/units.h"

/* "3d 4h 12m", "15s" */
static void format_uptime(int64_t ms, char *buf, size_t n) {
  if (ms < 0) ms = 0;
  int64_t s = ms / 1000, d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60;
  if (d)
    snprintf(buf, n, "%" PRId64 "d %" PRId64 "h %" PRId64 "m", d, h, m);
  else if (h)
    snprintf(buf, n, "%" PRId64 "h %" PRId64 "m", h, m);
  else if (m)
    snprintf(buf, n, "%" PRId64 "m %" PRId64 "s", m, s % 60);
  else
    snprintf(buf, n, "%" PRId64 "s", s);
}

/* Free space with a unit that reads: 12.3GiB of 931.5GiB (1.3%). */
static void format_space(uint64_t b, char *buf, size_t n) {
  static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = (double)b;
  size_t i = 0;
  while (v >= 1024 && i + 1 < sizeof u / sizeof u[0]) {
    v /= 1024;
    i++;
  }
  snprintf(buf, n, i ? "%.1f%s" : "%.0f%s", v, u[i]);
}

static int status_once(ctl_t *c) {
  rn_broker_info_t *bi = NULL;
  rn_err_t err = rn_broker_info(c->cl, &bi);
  if (err) return ctl_fail(c, err, "broker %s", c->broker);
  bool degraded = strcmp(bi->health, "ok") != 0;
  int64_t now = ctl_now_ms();
  if (c->json) {
    json_t *o = json_object(), *fa = json_array();
    json_object_set_new(o, "broker", json_string(c->broker));
    json_object_set_new(o, "version", json_string(bi->version));
    json_object_set_new(o, "start_ms", json_integer(bi->start_ms));
    json_object_set_new(o, "uptime_ms", json_integer(now - bi->start_ms));
    json_object_set_new(o, "data_dir", json_string(bi->data_dir));
    json_object_set_new(o, "data_dir_free_bytes", bi->data_dir_err ? json_null() : json_integer((json_int_t)bi->data_dir_free_bytes));
    json_object_set_new(o, "data_dir_total_bytes", bi->data_dir_err ? json_null() : json_integer((json_int_t)bi->data_dir_total_bytes));
    if (bi->data_dir_err) json_object_set_new(o, "data_dir_error", json_string(bi->data_dir_message));
    json_object_set_new(o, "stream_count", json_integer(bi->stream_count));
    json_object_set_new(o, "shard_count", json_integer(bi->shard_count));
    json_t *lim = json_object();
    json_object_set_new(lim, "max_record_bytes", json_integer(bi->max_record_bytes));
    json_object_set_new(lim, "max_batch_bytes", json_integer(bi->max_batch_bytes));
    json_object_set_new(lim, "max_frame_bytes", json_integer(bi->max_frame_bytes));
    json_object_set_new(lim, "max_fetch_bytes", json_integer(bi->max_fetch_bytes));
    json_object_set_new(o, "limits", lim);
    for (size_t i = 0; i < bi->failed_shard_count; i++) {
      const rn_failed_shard_t *f = &bi->failed_shards[i];
      char id[32];
      snprintf(id, sizeof id, "shardId-%012u", f->shard);
      json_t *fo = json_object();
      json_object_set_new(fo, "stream", json_string(f->stream));
      json_object_set_new(fo, "shard", json_integer(f->shard));
      json_object_set_new(fo, "shard_id", json_string(id));
      json_object_set_new(fo, "error", json_string(rn_err_name(f->err)));
      json_object_set_new(fo, "message", json_string(f->message));
      json_array_append_new(fa, fo);
    }
    json_object_set_new(o, "failed_shards", fa);
    json_object_set_new(o, "health", json_string(bi->health));
    ctl_print_json(c, o);
  } else {
    char up[64], started[40], fr[32], tot[32];
    format_uptime(now - bi->start_ms, up, sizeof up);
    ctl_format_time(bi->start_ms, started, sizeof started);
    ctl_print(c, "broker:           %s\n", c->broker);
    ctl_print(c, "version:          %s\n", bi->version);
    ctl_print(c, "uptime:           %s (since %s)\n", up, started);
    ctl_print(c, "data directory:   %s\n", bi->data_dir);
    if (bi->data_dir_err) {
      ctl_print(c, "free space:       unknown (%s: %s)\n", rn_err_name(bi->data_dir_err), bi->data_dir_message);
    } else {
      format_space(bi->data_dir_free_bytes, fr, sizeof fr);
      format_space(bi->data_dir_total_bytes, tot, sizeof tot);
      double pct = bi->data_dir_total_bytes ? 100.0 * (double)bi->data_dir_free_bytes / (double)bi->data_dir_total_bytes : 0;
      ctl_print(c, "free space:       %s of %s (%.1f%%)\n", fr, tot, pct);
    }
    ctl_print(c, "streams:          %u\n", bi->stream_count);
    ctl_print(c, "shards:           %u\n", bi->shard_count);
    ctl_print(c, "failed shards:    %zu\n", bi->failed_shard_count);
    ctl_print(c, "health:           %s\n", bi->health);
    if (bi->failed_shard_count) {
      ctl_print(c, "\n");
      ctl_table_t t;
      ctl_table_init(&t, 4);
      ctl_table_row(&t, "STREAM", "SHARD", "ERROR", "MESSAGE");
      for (size_t i = 0; i < bi->failed_shard_count; i++) {
        const rn_failed_shard_t *f = &bi->failed_shards[i];
        char id[32];
        snprintf(id, sizeof id, "shardId-%012u", f->shard);
        ctl_table_row(&t, f->stream, id, rn_err_name(f->err), f->message);
      }
      ctl_table_print(c, &t);
    }
  }
  rn_broker_info_free(bi);
  return degraded ? CTL_EXIT_FAIL : 0;
}

int ctl_status(ctl_t *c, const ctl_args_t *a) {
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
    if (!ctl_flush(c)) break;
    if (interval) ctl_nap(interval);
  }
  if (interval) ctl_catch_signals(false);
  /* --watch ends by a signal: the last print's health is the status */
  return ctl_out_finish(c, status);
}
