/*
 * metrics.c — GET /metrics in the Prometheus text exposition format
 * (version 0.0.4): the engine's per-shard counters and append latency
 * histogram, broker-wide gauges, the HTTP applications' request counters
 * and durations by operation and status, Kinesis errors by type, and the
 * lines other components registered (rn_admin_add_metrics: the
 * server's connections), and tiered storage's uploader, cache, collector
 * and store operations (docs/tiering.md). docs/kinesis.md lists every name.
 *
 * Every family is written once with its HELP and TYPE lines and all of its
 * samples together, as the format requires; counters start at zero when
 * the broker starts.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "admin_int.h"
#include "rn_groups.h" /* consumer groups' lag and checkpoints */
#include "rn_sinks.h"  /* archive sinks' lag and objects */

/* ---- labels ---------------------------------------------------------------------- */

const char *rn__hop_name(int hop) {
  if (hop >= 0 && hop < RN__KOP_COUNT) return rn__kop_name((rn__kop_t)hop);
  switch (hop) {
  case RN__HOP_KINESIS_UNKNOWN: return "KinesisUnknownOperation";
  case RN__HOP_REST_RECORD: return "RestPutRecord";
  case RN__HOP_REST_RECORDS: return "RestPutRecords";
  case RN__HOP_REST_BATCH: return "RestBatch";
  case RN__HOP_METRICS: return "Metrics";
  case RN__HOP_HEALTHZ: return "Healthz";
  case RN__HOP_READYZ: return "Readyz";
  case RN__HOP_OPTIONS: return "Options";
  default: return "NotFound";
  }
}

static const int slot_status[RN__STATUS_SLOTS] = {200, 204, 400, 401, 403, 404, 405, 413, 415, 429, 500, 503, 504, 0};

int rn__status_slot(int status) {
  for (int i = 0; i < RN__STATUS_SLOTS - 1; i++)
    if (slot_status[i] == status) return i;
  return RN__STATUS_SLOTS - 1;
}

int rn__status_of_slot(int slot) { return slot >= 0 && slot < RN__STATUS_SLOTS ? slot_status[slot] : 0; }

const double rn__dur_bounds[RN__DUR_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
_Static_assert(RN__DUR_BUCKETS <= RN_HIST_BUCKETS, "an rn_hist_t holds the request-duration buckets");

void rn__metrics_count_kerr(rn_admin_counters_t *m, rn_kinesis_err_t type) {
  m->kinesis_errors[rn_kinesis_err_name(type) ? type : RN_KERR_NONE]++;
}

/* ---- rendering ---------------------------------------------------------------------- */

static void family(rn_buf_t *b, const char *name, const char *type, const char *help) {
  rn_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void le(char *out, size_t n, double bound) { snprintf(out, n, "%g", bound); }

/* The series of one histogram (rn_hist_latency_bounds); labels may be "". */
static void hist_lines(rn_buf_t *b, const char *name, const char *labels, const rn_hist_t *h) {
  const char *sep = labels[0] ? "," : "";
  uint64_t cum = 0;
  char bound[32];
  for (int k = 0; k <= RN_HIST_BUCKETS; k++) {
    cum += h->buckets[k];
    if (k < RN_HIST_BUCKETS) le(bound, sizeof(bound), rn_hist_latency_bounds[k]);
    else snprintf(bound, sizeof(bound), "+Inf");
    rn_buf_printf(b, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep, bound, (unsigned long long)cum);
  }
  rn_buf_printf(b, labels[0] ? "%s_sum{%s} %.6f\n" : "%s_sum%s %.6f\n", name, labels, h->sum);
  rn_buf_printf(b, labels[0] ? "%s_count{%s} %llu\n" : "%s_count%s %llu\n", name, labels, (unsigned long long)h->count);
}

/* The shared journal of sync streams (absent without one). */
static void render_journal(rn_buf_t *b, const rn_core_stats_t *st) {
  if (!st->journal) return;
  const rn_journal_stats_t *j = &st->journal_stats;
  static const struct {
    const char *name, *type, *help;
    size_t off;
  } rows[] = {
      {"runnel_journal_rounds_total", "counter", "Journal rounds (one write and one fdatasync for every shard's records).",
       offsetof(rn_journal_stats_t, rounds)},
      {"runnel_journal_records_total", "counter", "Segment writes copied into the journal.", offsetof(rn_journal_stats_t, records)},
      {"runnel_journal_bytes_total", "counter", "Bytes copied into the journal.", offsetof(rn_journal_stats_t, bytes)},
      {"runnel_journal_direct_records_total", "counter",
       "Large segment writes made durable by their own file's fdatasync in a journal round instead of being copied.",
       offsetof(rn_journal_stats_t, direct_records)},
      {"runnel_journal_direct_bytes_total", "counter", "Bytes of those writes.", offsetof(rn_journal_stats_t, direct_bytes)},
      {"runnel_journal_checkpoints_total", "counter", "Journal checkpoints (segments synced behind it, space reused).",
       offsetof(rn_journal_stats_t, checkpoints)},
      {"runnel_journal_full_waits_total", "counter", "Rounds held back because the journal had no space (waiting for a checkpoint).",
       offsetof(rn_journal_stats_t, full_waits)},
      {"runnel_journal_used_bytes", "gauge", "Bytes between the journal's tail (last checkpoint) and its head.",
       offsetof(rn_journal_stats_t, used_bytes)},
      {"runnel_journal_size_bytes", "gauge", "Size of the journal file.", offsetof(rn_journal_stats_t, size_bytes)},
  };
  for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    family(b, rows[i].name, rows[i].type, rows[i].help);
    rn_buf_printf(b, "%s %llu\n", rows[i].name,
                  (unsigned long long)*(const uint64_t *)(const void *)((const char *)j + rows[i].off));
  }
  family(b, "runnel_journal_round_seconds", "histogram", "Duration of journal rounds, from the write to the fdatasync's completion.");
  hist_lines(b, "runnel_journal_round_seconds", "", &j->round_seconds);
}

typedef struct shard_rows {
  rn_core_shard_stats_t *v;
  size_t n, cap;
  rn_buf_t names; /* stream names, NUL-separated; v[i].stream is an offset into it until fixed up */
  bool oom;
} shard_rows_t;

static void collect(void *arg, const rn_core_shard_stats_t *s) {
  shard_rows_t *rows = arg;
  if (rows->oom) return;
  if (rows->n == rows->cap) {
    size_t nc = rows->cap ? rows->cap * 2 : 64;
    rn_core_shard_stats_t *nv = realloc(rows->v, nc * sizeof(*nv));
    if (!nv) {
      rows->oom = true;
      return;
    }
    rows->v = nv;
    rows->cap = nc;
  }
  rn_core_shard_stats_t *d = &rows->v[rows->n++];
  *d = *s;
  size_t off = rows->names.len;
  rn_buf_put(&rows->names, s->stream, strlen(s->stream) + 1);
  d->stream = (const char *)(uintptr_t)off; /* fixed up after collection */
}

static void shard_counter(rn_buf_t *b, const shard_rows_t *rows, const char *name, const char *type, const char *help,
                          size_t field) {
  family(b, name, type, help);
  for (size_t i = 0; i < rows->n; i++) {
    const rn_core_shard_stats_t *s = &rows->v[i];
    uint64_t v = *(const uint64_t *)(const void *)((const char *)s + field);
    rn_buf_printf(b, "%s{stream=\"%s\",shard=\"shardId-%012u\"} %llu\n", name, s->stream, s->shard,
                   (unsigned long long)v);
  }
}

/* One latency histogram family: per shard with metrics_latency_detail:
 * shard, else per stream (the shards' buckets summed; rows come in stream
 * order, so a stream's shards are adjacent). Bounded cardinality by default:
 * 16 series per stream, whatever its shard count. */
static void histograms(const rn_admin_t *adm, rn_buf_t *b, const shard_rows_t *rows, const char *name,
                       const char *help, size_t hist_off) {
  family(b, name, "histogram", help);
  for (size_t i = 0; i < rows->n;) {
    size_t j = i + 1;
    if (!adm->latency_per_shard)
      while (j < rows->n && strcmp(rows->v[j].stream, rows->v[i].stream) == 0) j++;
    rn_hist_t h = {0};
    for (size_t k = i; k < j; k++)
      rn_hist_merge(&h, (const rn_hist_t *)(const void *)((const char *)&rows->v[k] + hist_off));
    char labels[300];
    if (adm->latency_per_shard)
      snprintf(labels, sizeof labels, "stream=\"%s\",shard=\"shardId-%012u\"", rows->v[i].stream, rows->v[i].shard);
    else
      snprintf(labels, sizeof labels, "stream=\"%s\"", rows->v[i].stream);
    hist_lines(b, name, labels, &h);
    i = j;
  }
}

/* ---- tiered storage (docs/tiering.md) ------------------------------------------------------ */

static void tier_row(rn_buf_t *b, const char *name, const char *type, const char *help, unsigned long long v) {
  family(b, name, type, help);
  rn_buf_printf(b, "%s %llu\n", name, v);
}

/* Broker-wide: the uploader, bytes moved, the cache, the collector and the
 * store's operations (per op: requests, errors, retries, a latency
 * histogram). Absent when the broker has no store. */
static void render_tier(rn_admin_t *adm, rn_buf_t *b) {
  rn_core_tier_status_t ts;
  rn_core_tier_status(adm->core, &ts);
  if (!ts.enabled) return;
  const rn_tier_stats_t *t = &ts.stats;
  tier_row(b, "runnel_tier_uploaded_bytes_total", "counter", "Bytes of sealed segments (with their indexes) uploaded to the store.",
           (unsigned long long)t->bytes_uploaded);
  tier_row(b, "runnel_tier_downloaded_bytes_total", "counter", "Bytes read back from the store (remote reads, restores).",
           (unsigned long long)t->bytes_downloaded);
  tier_row(b, "runnel_tier_upload_backlog_bytes", "gauge",
           "Bytes of sealed segments of tiered shards not uploaded yet (grows while the store is unreachable).",
           (unsigned long long)ts.backlog_bytes);
  tier_row(b, "runnel_tier_upload_backlog_segments", "gauge", "Sealed segments of tiered shards not uploaded yet.",
           (unsigned long long)ts.backlog_segments);
  family(b, "runnel_tier_upload_backlog_seconds", "gauge", "How long the oldest segment not uploaded yet has waited; 0 when none.");
  rn_buf_printf(b, "runnel_tier_upload_backlog_seconds %.3f\n", (double)ts.backlog_age_ms / 1000.0);
  tier_row(b, "runnel_tier_uploads_active", "gauge", "Segment uploads in progress (at most tier_upload_concurrency).",
           (unsigned long long)t->uploads_active);
  tier_row(b, "runnel_tier_remote_bytes", "gauge", "Bytes of the tiered shards' segments in the store.",
           (unsigned long long)ts.remote_bytes);
  tier_row(b, "runnel_tier_remote_segments", "gauge", "Segments of the tiered shards in the store.",
           (unsigned long long)ts.remote_segments);
  tier_row(b, "runnel_tier_cache_bytes", "gauge", "Bytes of remote chunks in the read cache.", (unsigned long long)t->cache_bytes);
  tier_row(b, "runnel_tier_cache_limit_bytes", "gauge", "The read cache's size (tier_cache_bytes).",
           (unsigned long long)ts.cache_limit_bytes);
  tier_row(b, "runnel_tier_cache_hits_total", "counter", "Remote reads served from the cache.", (unsigned long long)t->cache_hits);
  tier_row(b, "runnel_tier_cache_misses_total", "counter", "Remote reads that needed a GET.", (unsigned long long)t->cache_misses);
  tier_row(b, "runnel_tier_cache_evictions_total", "counter", "Chunks evicted from the read cache.",
           (unsigned long long)t->cache_evictions);
  tier_row(b, "runnel_tier_gets_inflight", "gauge", "Remote GETs in flight now.", (unsigned long long)ts.gets_inflight);
  tier_row(b, "runnel_tier_orphans_collected_total", "counter",
           "Objects the collector deleted because no manifest references them (failed or abandoned uploads).",
           (unsigned long long)t->orphans_collected);
  tier_row(b, "runnel_tier_remote_deletes_total", "counter", "Segments deleted from the store by total retention.",
           (unsigned long long)t->remote_deletes);
  tier_row(b, "runnel_tier_corrupt_objects_total", "counter",
           "Remote reads that failed verification (reported to the reader as ECORRUPT, never served).",
           (unsigned long long)t->corrupt_objects);
  tier_row(b, "runnel_tier_delete_jobs", "gauge", "Stream-delete jobs (the objects of deleted streams) not finished.",
           (unsigned long long)ts.delete_jobs);
  tier_row(b, "runnel_tier_backpressure", "gauge",
           "1 while produce to tiered streams answers EBACKLOG: the data disk is above tier_disk_high_water and uploads "
           "are behind.",
           (unsigned long long)ts.backpressure);
  const rn_objstore_stats_t *os = &t->store;
  static const char *const fam[][3] = {
      {"runnel_tier_requests_total", "counter", "Object-store requests sent, retries included, by operation."},
      {"runnel_tier_request_errors_total", "counter", "Object-store operations that failed, by operation."},
      {"runnel_tier_request_retries_total", "counter", "Object-store requests retried, by operation."},
  };
  const uint64_t *vals[] = {os->requests, os->errors, os->retries};
  for (int f = 0; f < 3; f++) {
    family(b, fam[f][0], fam[f][1], fam[f][2]);
    for (int op = 0; op < RN_OBJ_NOPS; op++)
      rn_buf_printf(b, "%s{op=\"%s\"} %llu\n", fam[f][0], rn_obj_op_name((rn_obj_op_t)op), (unsigned long long)vals[f][op]);
  }
  family(b, "runnel_tier_request_seconds", "histogram",
         "Duration of object-store operations, retries included, by operation.");
  for (int op = 0; op < RN_OBJ_NOPS; op++) {
    char labels[32];
    snprintf(labels, sizeof labels, "op=\"%s\"", rn_obj_op_name((rn_obj_op_t)op));
    hist_lines(b, "runnel_tier_request_seconds", labels, &os->seconds[op]);
  }
}

/* Per tiered shard: what is in the store and what waits for upload. */
static void tier_shard_rows(rn_buf_t *b, const shard_rows_t *rows) {
  static const struct {
    const char *name, *help;
  } fam[] = {
      {"runnel_shard_remote_bytes", "Bytes of the tiered shard's segments in the store."},
      {"runnel_shard_remote_segments", "Segments of the tiered shard in the store."},
      {"runnel_shard_upload_backlog_bytes", "Bytes of the tiered shard's sealed segments not uploaded yet."},
  };
  bool any = false;
  for (size_t i = 0; i < rows->n && !any; i++) any = rows->v[i].tiered;
  if (!any) return;
  for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
    family(b, fam[f].name, "gauge", fam[f].help);
    for (size_t i = 0; i < rows->n; i++) {
      const rn_core_shard_stats_t *s = &rows->v[i];
      if (!s->tiered) continue;
      unsigned long long v = f == 0 ? s->remote_bytes : f == 1 ? s->remote_segments : s->backlog_bytes;
      rn_buf_printf(b, "%s{stream=\"%s\",shard=\"shardId-%012u\"} %llu\n", fam[f].name, s->stream, s->shard, v);
    }
  }
}

/* ---- the process (Prometheus's standard process_* names) ------------------------------- */

/* Linux /proc reads are served from kernel memory, never from a disk, so
 * they are cheap enough for the loop thread (as every Prometheus client
 * library does them inline). */
static void render_process(const rn_admin_t *adm, rn_buf_t *b) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    family(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent by runneld.");
    rn_buf_printf(b, "process_cpu_seconds_total %.3f\n", cpu);
  }
  FILE *f = fopen("/proc/self/statm", "r");
  if (f != NULL) {
    unsigned long long size = 0, resident = 0;
    if (fscanf(f, "%llu %llu", &size, &resident) == 2) {
      long page = sysconf(_SC_PAGESIZE);
      family(b, "process_resident_memory_bytes", "gauge", "Resident memory of runneld.");
      rn_buf_printf(b, "process_resident_memory_bytes %llu\n", resident * (unsigned long long)page);
      family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory of runneld.");
      rn_buf_printf(b, "process_virtual_memory_bytes %llu\n", size * (unsigned long long)page);
    }
    fclose(f);
  }
  DIR *d = opendir("/proc/self/fd");
  if (d != NULL) {
    unsigned long n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
      if (e->d_name[0] != '.') n++;
    closedir(d);
    family(b, "process_open_fds", "gauge", "Open file descriptors of runneld (sockets and files).");
    rn_buf_printf(b, "process_open_fds %lu\n", n > 0 ? n - 1 : 0); /* minus the one opendir holds */
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    family(b, "process_max_fds", "gauge", "The soft limit on open file descriptors.");
    rn_buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
  }
  family(b, "process_start_time_seconds", "gauge", "Start time of runneld, seconds since the Unix epoch.");
  rn_buf_printf(b, "process_start_time_seconds %.3f\n", adm->process_start_s);
}

static void render_shards(rn_admin_t *adm, rn_buf_t *b) {
  shard_rows_t rows;
  memset(&rows, 0, sizeof(rows));
  rn_core_foreach_shard(adm->core, collect, &rows);
  if (rows.oom || rows.names.oom) {
    b->oom = true;
    goto out;
  }
  for (size_t i = 0; i < rows.n; i++) rows.v[i].stream = rows.names.p + (uintptr_t)rows.v[i].stream;
  shard_counter(b, &rows, "runnel_shard_records_in_total", "counter",
                "Records appended to the shard and acknowledged (all APIs).",
                offsetof(rn_core_shard_stats_t, records_in));
  shard_counter(b, &rows, "runnel_shard_bytes_in_total", "counter",
                "Stored batch bytes appended to the shard and acknowledged.", offsetof(rn_core_shard_stats_t, bytes_in));
  shard_counter(b, &rows, "runnel_shard_records_out_total", "counter",
                "Records of the batches returned by fetches of the shard (GetRecords and native fetch).",
                offsetof(rn_core_shard_stats_t, records_out));
  shard_counter(b, &rows, "runnel_shard_bytes_out_total", "counter",
                "Stored batch bytes returned by fetches of the shard.", offsetof(rn_core_shard_stats_t, bytes_out));
  shard_counter(b, &rows, "runnel_shard_append_errors_total", "counter",
                "Appends to the shard that failed (e.g. the log failed after a disk error).",
                offsetof(rn_core_shard_stats_t, append_errors));
  shard_counter(b, &rows, "runnel_shard_start_offset", "gauge", "Earliest offset still stored in the shard.",
                offsetof(rn_core_shard_stats_t, start_offset));
  shard_counter(b, &rows, "runnel_shard_end_offset", "gauge", "Next offset of the shard (its high watermark).",
                offsetof(rn_core_shard_stats_t, end_offset));
  family(b, "runnel_shard_failed", "gauge", "1 when the shard's log failed after an I/O error and refuses appends.");
  for (size_t i = 0; i < rows.n; i++)
    rn_buf_printf(b, "runnel_shard_failed{stream=\"%s\",shard=\"shardId-%012u\"} %d\n", rows.v[i].stream,
                   rows.v[i].shard, rows.v[i].failed);
  shard_counter(b, &rows, "runnel_shard_stored_bytes", "gauge", "Bytes of the shard's segment files on disk.",
                offsetof(rn_core_shard_stats_t, stored_bytes));
  family(b, "runnel_shard_segments", "gauge", "Segment files of the shard, the active one included.");
  for (size_t i = 0; i < rows.n; i++)
    rn_buf_printf(b, "runnel_shard_segments{stream=\"%s\",shard=\"shardId-%012u\"} %u\n", rows.v[i].stream,
                   rows.v[i].shard, rows.v[i].segments);
  /* Offsets are dense from 0 and only retention removes records, so the
   * start offset is exactly the count of records retention deleted. */
  shard_counter(b, &rows, "runnel_shard_retention_deleted_records_total", "counter",
                "Records of the shard deleted by retention (time or size) since the shard was created.",
                offsetof(rn_core_shard_stats_t, start_offset));
  histograms(adm, b, &rows, "runnel_shard_append_latency_seconds",
             "Time from handing a batch to the shard's log to its acknowledgement (for sync streams this includes the "
             "group commit's fdatasync).",
             offsetof(rn_core_shard_stats_t, append));
  histograms(adm, b, &rows, "runnel_shard_fdatasync_seconds",
             "Duration of the shard log's fdatasync rounds (a group commit covers every batch written before it "
             "started).",
             offsetof(rn_core_shard_stats_t, sync));
  tier_shard_rows(b, &rows);
out:
  free(rows.v);
  rn_buf_free(&rows.names);
}

/* The dedup windows (docs/dedup.md): one series per stream that keeps one. */
typedef struct dedup_rows {
  rn_core_dedup_stats_t *v;
  size_t n, cap;
  rn_buf_t names; /* as shard_rows_t's */
  bool oom;
} dedup_rows_t;

static void dedup_collect(void *arg, const rn_core_dedup_stats_t *s) {
  dedup_rows_t *rows = arg;
  if (rows->oom) return;
  if (rows->n == rows->cap) {
    size_t nc = rows->cap ? rows->cap * 2 : 16;
    rn_core_dedup_stats_t *nv = realloc(rows->v, nc * sizeof(*nv));
    if (!nv) {
      rows->oom = true;
      return;
    }
    rows->v = nv;
    rows->cap = nc;
  }
  rn_core_dedup_stats_t *d = &rows->v[rows->n++];
  *d = *s;
  size_t off = rows->names.len;
  rn_buf_put(&rows->names, s->stream, strlen(s->stream) + 1);
  d->stream = (const char *)(uintptr_t)off;
}

static void dedup_family(rn_buf_t *b, const dedup_rows_t *rows, const char *name, const char *type, const char *help,
                         size_t field) {
  family(b, name, type, help);
  for (size_t i = 0; i < rows->n; i++) {
    const rn_core_dedup_stats_t *s = &rows->v[i];
    uint64_t v = *(const uint64_t *)(const void *)((const char *)s + field);
    rn_buf_printf(b, "%s{stream=\"%s\"} %llu\n", name, s->stream, (unsigned long long)v);
  }
}

static void render_dedup(rn_admin_t *adm, rn_buf_t *b) {
  dedup_rows_t rows;
  memset(&rows, 0, sizeof(rows));
  rn_core_foreach_dedup(adm->core, dedup_collect, &rows);
  if (rows.oom || rows.names.oom) {
    b->oom = true;
  } else if (rows.n) {
    for (size_t i = 0; i < rows.n; i++) rows.v[i].stream = rows.names.p + (uintptr_t)rows.v[i].stream;
    dedup_family(b, &rows, "runnel_dedup_duplicates_total", "counter",
                 "Records the stream's dedup window found already stored: acknowledged with the original's offset, "
                 "not stored again.",
                 offsetof(rn_core_dedup_stats_t, duplicates));
    dedup_family(b, &rows, "runnel_dedup_records_without_id_total", "counter",
                 "Records of a dedup stream stored without an id (no such field, data not a JSON object, no record id).",
                 offsetof(rn_core_dedup_stats_t, without_id));
    dedup_family(b, &rows, "runnel_dedup_ids", "gauge", "Ids in the stream's dedup window now.",
                 offsetof(rn_core_dedup_stats_t, ids));
    dedup_family(b, &rows, "runnel_dedup_evictions_total", "counter",
                 "Ids dropped from the dedup window before their time because it held dedup_max_ids.",
                 offsetof(rn_core_dedup_stats_t, evictions));
    dedup_family(b, &rows, "runnel_dedup_memory_bytes", "gauge", "Bytes the stream's dedup window has allocated.",
                 offsetof(rn_core_dedup_stats_t, memory_bytes));
  }
  free(rows.v);
  rn_buf_free(&rows.names);
}

static void render_http(rn_admin_t *adm, rn_buf_t *b) {
  const rn_admin_counters_t *m = &adm->m;
  family(b, "runnel_http_requests_total", "counter",
         "HTTP requests answered by the HTTP applications, by operation (Kinesis operation, RestPutRecord, "
         "RestPutRecords, RestBatch, Metrics, Healthz, Readyz, ...) and status code.");
  for (int h = 0; h < RN__HOP_COUNT; h++)
    for (int s = 0; s < RN__STATUS_SLOTS; s++) {
      if (!m->requests[h][s]) continue;
      int st = rn__status_of_slot(s);
      if (st) rn_buf_printf(b, "runnel_http_requests_total{operation=\"%s\",status=\"%d\"} %llu\n", rn__hop_name(h), st,
                             (unsigned long long)m->requests[h][s]);
      else rn_buf_printf(b, "runnel_http_requests_total{operation=\"%s\",status=\"other\"} %llu\n", rn__hop_name(h),
                          (unsigned long long)m->requests[h][s]);
    }
  family(b, "runnel_http_request_duration_seconds", "histogram",
         "Time from the request reaching the router to its answer (produce: until durable), by operation.");
  for (int h = 0; h < RN__HOP_COUNT; h++) {
    if (!m->dur[h].count) continue;
    uint64_t cum = 0;
    char bound[32];
    for (int k = 0; k <= RN__DUR_BUCKETS; k++) {
      cum += m->dur[h].buckets[k];
      if (k < RN__DUR_BUCKETS) le(bound, sizeof(bound), rn__dur_bounds[k]);
      else snprintf(bound, sizeof(bound), "+Inf");
      rn_buf_printf(b, "runnel_http_request_duration_seconds_bucket{operation=\"%s\",le=\"%s\"} %llu\n", rn__hop_name(h),
                     bound, (unsigned long long)cum);
    }
    rn_buf_printf(b, "runnel_http_request_duration_seconds_sum{operation=\"%s\"} %.6f\n", rn__hop_name(h), m->dur[h].sum);
    rn_buf_printf(b, "runnel_http_request_duration_seconds_count{operation=\"%s\"} %llu\n", rn__hop_name(h),
                   (unsigned long long)m->dur[h].count);
  }
  family(b, "runnel_kinesis_errors_total", "counter", "Kinesis API errors answered, by AWS error type (__type).");
  /* The table's order, then the slot of values outside it. */
  for (int i = RN_KERR_NONE + 1; i <= RN_KERR_COUNT; i++) {
    int slot = i < RN_KERR_COUNT ? i : RN_KERR_NONE;
    rn_buf_printf(b, "runnel_kinesis_errors_total{code=\"%s\"} %llu\n", slot ? rn_kinesis_err_name(slot) : "Other",
                   (unsigned long long)m->kinesis_errors[slot]);
  }
  family(b, "runnel_put_records_total", "counter",
         "Records of PutRecord, PutRecords and REST ingest, by result (ok: stored; failed: a per-record failure).");
  rn_buf_printf(b, "runnel_put_records_total{result=\"ok\"} %llu\nrunnel_put_records_total{result=\"failed\"} %llu\n",
                 (unsigned long long)m->put_records_ok, (unsigned long long)m->put_records_failed);
  family(b, "runnel_get_records_calls_total", "counter", "GetRecords calls answered with records (possibly none).");
  rn_buf_printf(b, "runnel_get_records_calls_total %llu\n", (unsigned long long)m->get_records_calls);
  family(b, "runnel_get_records_records_total", "counter", "Records returned by GetRecords.");
  rn_buf_printf(b, "runnel_get_records_records_total %llu\n", (unsigned long long)m->get_records_records);
  family(b, "runnel_get_records_bytes_total", "counter", "Data bytes (before base64) returned by GetRecords.");
  rn_buf_printf(b, "runnel_get_records_bytes_total %llu\n", (unsigned long long)m->get_records_bytes);
  family(b, "runnel_auth_failures_total", "counter",
         "Requests refused for authentication (SigV4 on the Kinesis API, API keys on REST ingest).");
  rn_buf_printf(b, "runnel_auth_failures_total %llu\n", (unsigned long long)m->auth_failures);
  family(b, "runnel_throttled_total", "counter",
         "Records (write) and GetRecords calls (read) refused by kinesis_throughput_limits.");
  rn_buf_printf(b, "runnel_throttled_total{direction=\"write\"} %llu\nrunnel_throttled_total{direction=\"read\"} %llu\n",
                 (unsigned long long)m->throttled_records, (unsigned long long)m->throttled_reads);
}

/* Consumer groups: one pass over the engine per family, so each family's
 * samples stay together. */
typedef struct group_pass {
  rn_buf_t *b;
  int what; /* 0 lag records, 1 lag seconds, 2 checkpoint known, 3 checkpoint, 4 members */
} group_pass_t;

static void group_row(void *arg, const rn_groups_shard_stats_t *s) {
  group_pass_t *p = arg;
  switch (p->what) {
  case 0:
    rn_buf_printf(p->b, "runnel_group_lag_records{stream=\"%s\",group=\"%s\",shard=\"shardId-%012u\"} %llu\n",
                   s->stream, s->group, s->shard, (unsigned long long)s->lag_records);
    break;
  case 1:
    /* only known lag: an unknown one is absent (not NaN, not 0), see
     * runnel_group_checkpoint_known */
    if (s->lag_ms >= 0)
      rn_buf_printf(p->b, "runnel_group_lag_seconds{stream=\"%s\",group=\"%s\",shard=\"shardId-%012u\"} %.3f\n",
                     s->stream, s->group, s->shard, (double)s->lag_ms / 1000.0);
    break;
  case 2:
    rn_buf_printf(p->b, "runnel_group_checkpoint_known{stream=\"%s\",group=\"%s\",shard=\"shardId-%012u\"} %d\n",
                   s->stream, s->group, s->shard, s->checkpoint_known ? 1 : 0);
    break;
  case 3:
    rn_buf_printf(p->b, "runnel_group_checkpoint{stream=\"%s\",group=\"%s\",shard=\"shardId-%012u\"} %llu\n",
                   s->stream, s->group, s->shard, (unsigned long long)s->checkpoint);
    break;
  default:
    if (s->shard == 0)
      rn_buf_printf(p->b, "runnel_group_members{stream=\"%s\",group=\"%s\"} %u\n", s->stream, s->group, s->members);
    break;
  }
}

static void render_groups(rn_admin_t *adm, rn_buf_t *b) {
  static const char *const fam[][3] = {
      {"runnel_group_lag_records", "gauge", "Records of the shard the consumer group has not checkpointed yet (end offset - checkpoint)."},
      {"runnel_group_lag_seconds", "gauge",
       "Age of the oldest record of the shard the consumer group has not consumed (now - its arrival); 0 when caught up; "
       "absent while unknown."},
      {"runnel_group_checkpoint_known", "gauge",
       "1 when the consumer group has a checkpoint (an offset position) in the shard, 0 when not (its lag in time is unknown)."},
      {"runnel_group_checkpoint", "gauge", "The consumer group's checkpoint in the shard: the next offset it will read."},
      {"runnel_group_members", "gauge", "Members of the consumer group."},
  };
  for (int i = 0; i < 5; i++) {
    family(b, fam[i][0], fam[i][1], fam[i][2]);
    group_pass_t p = {b, i};
    rn_groups_foreach_shard(rn_groups_of(adm->core), group_row, &p);
  }
}

/* Archive sinks: as the groups, one pass per family. */
typedef struct sink_pass {
  rn_buf_t *b;
  int what;
} sink_pass_t;

static void sink_row(void *arg, const rn_sinks_shard_stats_t *s) {
  sink_pass_t *p = arg;
  const rn_sink_shard_info_t *x = s->info;
  char l[512];
  snprintf(l, sizeof l, "{sink=\"%s\",stream=\"%s\",shard=\"shardId-%012u\"}", s->sink, s->stream, x->shard);
  switch (p->what) {
  case 0: rn_buf_printf(p->b, "runnel_sink_lag_records%s %llu\n", l, (unsigned long long)x->lag_records); break;
  case 1:
    if (x->lag_ms >= 0) rn_buf_printf(p->b, "runnel_sink_lag_seconds%s %.3f\n", l, (double)x->lag_ms / 1000.0);
    break;
  case 2: rn_buf_printf(p->b, "runnel_sink_checkpoint%s %llu\n", l, (unsigned long long)x->checkpoint); break;
  case 3: rn_buf_printf(p->b, "runnel_sink_objects_total%s %llu\n", l, (unsigned long long)x->objects); break;
  case 4: rn_buf_printf(p->b, "runnel_sink_records_total%s %llu\n", l, (unsigned long long)x->records); break;
  case 5: rn_buf_printf(p->b, "runnel_sink_error_records_total%s %llu\n", l, (unsigned long long)x->error_records); break;
  case 6: rn_buf_printf(p->b, "runnel_sink_bytes_total%s %llu\n", l, (unsigned long long)x->bytes_out); break;
  case 7: rn_buf_printf(p->b, "runnel_sink_put_failures_total%s %llu\n", l, (unsigned long long)x->put_failures); break;
  default: rn_buf_printf(p->b, "runnel_sink_buffered_bytes%s %llu\n", l, (unsigned long long)x->buffered_bytes); break;
  }
}

static void render_sinks(rn_admin_t *adm, rn_buf_t *b) {
  rn_sinks_t *ss = rn_sinks_of(adm->core);
  if (ss == NULL) return;
  static const char *const fam[][3] = {
      {"runnel_sink_lag_records", "gauge", "Records of the shard the sink has not delivered yet (end offset - checkpoint)."},
      {"runnel_sink_lag_seconds", "gauge",
       "Age of the oldest record of the shard the sink has not delivered (now - its arrival); 0 when caught up; absent "
       "while unknown."},
      {"runnel_sink_checkpoint", "gauge", "The sink's checkpoint in the shard: every record below is in an object."},
      {"runnel_sink_objects_total", "counter", "Objects the sink wrote for the shard (data and error objects)."},
      {"runnel_sink_records_total", "counter", "Records the sink delivered into data objects."},
      {"runnel_sink_error_records_total", "counter",
       "Records the sink could not parse, time, place or convert, written under its error prefix with the reason."},
      {"runnel_sink_bytes_total", "counter", "Bytes of the objects the sink wrote."},
      {"runnel_sink_put_failures_total", "counter", "PUTs that failed (after the store's own retries); they are retried."},
      {"runnel_sink_buffered_bytes", "gauge", "Stored batch bytes buffered for the shard's next object."},
  };
  for (int i = 0; i < 9; i++) {
    family(b, fam[i][0], fam[i][1], fam[i][2]);
    sink_pass_t p = {b, i};
    rn_sinks_foreach_shard(ss, sink_row, &p);
  }
}

void rn__metrics_render(rn_admin_t *adm, rn_buf_t *b, const rn__disk_usage_t *disk) {
  rn_core_stats_t st;
  rn_core_stats(adm->core, &st);
  rn_buf_reserve(b, 16384);
  family(b, "runnel_build_info", "gauge", "Always 1; the labels say which runneld this is.");
  rn_buf_printf(b, "runnel_build_info{version=\"%s\"} 1\n", adm->version);
  render_process(adm, b);
  if (disk->err == 0) {
    family(b, "runnel_data_dir_free_bytes", "gauge",
           "Bytes of the data directory's file system available to runneld (statfs f_bavail).");
    rn_buf_printf(b, "runnel_data_dir_free_bytes %llu\n", (unsigned long long)disk->free_bytes);
    family(b, "runnel_data_dir_size_bytes", "gauge", "Size of the data directory's file system.");
    rn_buf_printf(b, "runnel_data_dir_size_bytes %llu\n", (unsigned long long)disk->total_bytes);
  }
  family(b, "runnel_uptime_seconds", "gauge", "Seconds since the HTTP applications started.");
  rn_buf_printf(b, "runnel_uptime_seconds %.3f\n", (double)(uv_hrtime() - adm->started_ns) / 1e9);
  family(b, "runnel_streams", "gauge", "Active streams.");
  rn_buf_printf(b, "runnel_streams %u\n", st.streams);
  family(b, "runnel_shards", "gauge", "Shards of the active streams.");
  rn_buf_printf(b, "runnel_shards %u\n", st.shards);
  family(b, "runnel_failed_shards", "gauge", "Shards whose log failed after an I/O error.");
  rn_buf_printf(b, "runnel_failed_shards %u\n", st.failed_shards);
  family(b, "runnel_draining", "gauge", "1 once shutdown began (/readyz answers 503).");
  rn_buf_printf(b, "runnel_draining %d\n", rn_core_draining(adm->core) ? 1 : 0);
  render_journal(b, &st);
  render_shards(adm, b);
  render_dedup(adm, b);
  render_tier(adm, b);
  render_groups(adm, b);
  render_sinks(adm, b);
  render_http(adm, b);
  for (size_t i = 0; i < adm->nsources; i++) {
    char small[4096];
    size_t need = adm->sources[i].fn(adm->sources[i].arg, small, sizeof(small));
    if (need < sizeof(small)) {
      rn_buf_put(b, small, need);
      continue;
    }
    char *big = malloc(need + 1);
    if (!big) {
      b->oom = true;
      continue;
    }
    size_t got = adm->sources[i].fn(adm->sources[i].arg, big, need + 1);
    rn_buf_put(b, big, got < need + 1 ? got : need);
    free(big);
  }
}
