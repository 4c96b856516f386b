/*
 * test_sink_pipeline.c — the seeds' archive pipeline end to end (issue 14),
 * against the real runneld, a real S3 stand-in and stock tools:
 *
 *   test_sink_pipeline [events]        (default 5000)
 *
 *   1. s3rver on loopback (tests/support/s3peer.h; skip 77 when it cannot be
 *      installed), runneld with s3_endpoint/s3_region/s3_path_style pointing
 *      at it and the peer's credentials in AWS_*;
 *   2. `runnelctl stream create events --shards 4`, with
 *      `--dedup-field event_uuid --dedup-window 1h` when this runnelctl has
 *      the flag (branch i14-dedup; without it the dedup check is skipped
 *      with a printed TODO);
 *   3. two sinks on it, created before anything is produced so they deliver
 *      while the producer writes:
 *        lake  Parquet (schema: event_uuid, event_type, created_at timestamp,
 *              amount int64 at $.payload.amount, score double, nullable
 *              coupon; metadata _shard, _offset, _partition_key,
 *              _sequence_number) to s3://BUCKET/raw/ under
 *              event_type=!{field:event_type}/year=.../hour=!{timestamp:HH}/
 *              with --event-time-field created_at --buffer-interval 1s;
 *        nd    NDJSON.gz (default prefix: arrival hour) to s3://BUCKET/nd/;
 *   4. a boto3 Kinesis producer (tests/conformance/sink/pipeline.py produce:
 *      PutRecords against runneld's HTTP port, as a mobile backend would)
 *      sends N events over 3 hours of created_at, 5 % of them twice, in two
 *      parts;
 *   5. after each part `sink describe --json` is polled until both sinks'
 *      lag_records is 0 (so each (shard, prefix) gets objects of two flushes);
 *   6. the bucket mirrored with boto3 (tier_s3.py mirror), every object key
 *      checked against the naming rule and, per (shard, prefix), the
 *      objects' [first, last] ranges never overlap; describe's counters
 *      (records, error_records) match what was produced;
 *   7. DuckDB over the files (pipeline.py verify, duckdb_query.mjs): counts
 *      by event_type and hour equal what was produced, each event_uuid
 *      appears as often as it was accepted (or once, with dedup), every
 *      column and metadata column is right, each NDJSON line is the JSON
 *      that was sent;
 *   8. sink list / delete.
 * No sleep synchronises anything: every wait polls a condition and the
 * deadline only bounds a failure.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinktest.h"
#include "testutil.h"

#define STREAM "events"
#define SHARDS 4

static rn_sinkfx_t g_fx;
static uint32_t g_n = 5000;
static char g_node_path[1024];

static const char *const k_types[] = {"app_open", "page_view", "add_to_cart", "purchase", "logout"};

static const char k_schema[] = "# events.yaml: the analysts' columns\n"
                               "columns:\n"
                               "  - name: event_uuid\n"
                               "    type: string\n"
                               "  - name: event_type\n"
                               "    type: string\n"
                               "  - name: created_at\n"
                               "    type: timestamp\n"
                               "  - name: amount\n"
                               "    type: int64\n"
                               "    path: $.payload.amount\n"
                               "  - name: score\n"
                               "    type: double\n"
                               "  - name: coupon\n"
                               "    type: string\n"
                               "    nullable: true\n"
                               "metadata:\n"
                               "  - shard\n"
                               "  - offset\n"
                               "  - partition_key\n"
                               "  - sequence_number\n";

static void write_file(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(text, fp);
  assert_int_equal(fclose(fp), 0);
}

/* The number of records PutRecords accepted, from the producer's file. */
static uint64_t accepted(const char *expect, uint64_t *events) {
  json_error_t je;
  json_t *d = json_load_file(expect, 0, &je);
  if (!d) fail_msg("%s: %s", expect, je.text);
  json_t *evs = json_object_get(d, "events");
  uint64_t n = 0;
  size_t i;
  json_t *e;
  json_array_foreach(evs, i, e) n += (uint64_t)json_integer_value(json_object_get(e, "sent"));
  *events = json_array_size(evs);
  json_decref(d);
  return n;
}

static bool names_has(json_t *list, const char *name) {
  json_t *arr = json_is_array(list) ? list : json_object_get(list, "sinks");
  size_t i;
  json_t *x;
  json_array_foreach(arr, i, x) {
    const char *s = json_is_string(x) ? json_string_value(x) : json_string_value(json_object_get(x, "name"));
    if (s && strcmp(s, name) == 0) return true;
  }
  return false;
}

static void test_pipeline(void **state) {
  (void)state;
  rn_sinkfx_t *f = &g_fx;
  rn_sf_broker_start(f);
  bool dedup = rn_sf_ctl_has_flag("stream", "create", "--dedup-field");
  if (dedup) {
    const char *a[] = {"stream", "create", STREAM, "--shards", "4", "--dedup-field", "event_uuid", "--dedup-window",
                       "1h", NULL};
    free(rn_sf_ctl(f, a));
  } else {
    const char *a[] = {"stream", "create", STREAM, "--shards", "4", NULL};
    free(rn_sf_ctl(f, a));
  }
  char schema[700], lake_to[200], nd_to[200];
  snprintf(schema, sizeof schema, "%s/events.yaml", f->tmp);
  write_file(schema, k_schema);
  snprintf(lake_to, sizeof lake_to, "s3://%.32s/raw/", f->peer.bucket);
  snprintf(nd_to, sizeof nd_to, "s3://%.32s/nd/", f->peer.bucket);
  const char *lake[] = {"sink", "create", "lake", "--stream", STREAM, "--to", lake_to, "--format", "parquet",
                        "--schema", schema, "--prefix",
                        "event_type=!{field:event_type}/year=!{timestamp:yyyy}/month=!{timestamp:MM}/"
                        "day=!{timestamp:dd}/hour=!{timestamp:HH}/",
                        "--event-time-field", "created_at", "--buffer-interval", "1s", NULL};
  free(rn_sf_ctl(f, lake));
  const char *nd[] = {"sink", "create", "nd", "--stream", STREAM, "--to", nd_to, "--format", "ndjson",
                      "--buffer-interval", "1s", NULL};
  free(rn_sf_ctl(f, nd));
  const char *list[] = {"sink", "list", NULL};
  json_t *l = rn_sf_ctl_json(f, list);
  if (!names_has(l, "lake") || !names_has(l, "nd")) {
    char *s = json_dumps(l, JSON_COMPACT);
    fail_msg("sink list --json does not name both sinks: %s", s);
  }
  json_decref(l);

  /* the mobile backend: boto3 PutRecords to the Kinesis API */
  char endpoint[64], expect[700], nstr[16], script[700];
  snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%u", f->br.http_port);
  snprintf(expect, sizeof expect, "%s/expect.json", f->tmp);
  snprintf(nstr, sizeof nstr, "%u", g_n);
  snprintf(script, sizeof script, "%s/sink/pipeline.py", rn_sf_conformance_dir());
  /* in two parts, the sinks caught up in between: objects of several
   * flushes per (shard, prefix), whose ranges must not overlap */
  uint64_t events = 0, total = 0;
  for (int part = 0; part < 2; part++) {
    char slice[8];
    snprintf(slice, sizeof slice, "%d/2", part);
    const char *prod[] = {rn_sf_python(), script, "produce", "--endpoint", endpoint, "--stream", STREAM, "--n", nstr,
                          "--dup-pct", "5", "--seed", "14", "--out", expect, "--slice", slice, NULL};
    int prc = rn_sf_run_print(prod);
    if (prc != 0) fail_msg("pipeline.py produce --slice %s: exit %d", slice, prc);
    total = accepted(expect, &events);
    /* with dedup the stream keeps fewer than were accepted: lag 0 is enough */
    rn_sf_wait_caught_up(f, "lake", dedup ? 0 : total);
    rn_sf_wait_caught_up(f, "nd", dedup ? 0 : total);
  }
  int rc;
  uint64_t want = dedup ? events : total;
  rn_sf_view_t vl, vn;
  rn_sf_describe(f, "lake", &vl, NULL);
  rn_sf_describe(f, "nd", &vn, NULL);
  print_message("caught up: lake %" PRIu64 " records in %" PRIu64 " objects, nd %" PRIu64 " in %" PRIu64
                " (stream end %" PRIu64 ")\n",
                vl.records, vl.objects, vn.records, vn.objects, vl.end);
  assert_int_equal(vl.nshards, SHARDS);
  if (vl.end != want) fail_msg("the stream holds %" PRIu64 " records, %" PRIu64 " were accepted", vl.end, want);
  if (vl.error_records || vn.error_records)
    fail_msg("error records: lake %" PRIu64 ", nd %" PRIu64 " (every event is valid)", vl.error_records,
             vn.error_records);
  if (vl.records != want || vn.records != want)
    fail_msg("describe's records: lake %" PRIu64 ", nd %" PRIu64 ", want %" PRIu64, vl.records, vn.records, want);

  /* the bucket as files: prefix by prefix (s3rver fails a LIST over 1000 keys) */
  char dir[700];
  snprintf(dir, sizeof dir, "%s/bucket", f->tmp);
  for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++) {
    char p[100];
    snprintf(p, sizeof p, "raw/event_type=%s/", k_types[i]);
    rn_sf_mirror(f, p, dir);
  }
  rn_sf_mirror(f, "raw/errors/", dir);
  rn_sf_mirror(f, "nd/", dir);
  rn_sf_objs_t ol, on;
  rn_sf_objs_load(dir, "raw", "lake", SHARDS, &ol);
  rn_sf_objs_load(dir, "nd", "nd", SHARDS, &on);
  if (ol.n != vl.objects || on.n != vn.objects)
    fail_msg("the bucket holds %zu lake and %zu nd objects; describe counted %" PRIu64 " and %" PRIu64, ol.n, on.n,
             vl.objects, vn.objects);
  for (size_t i = 0; i < ol.n; i++) {
    if (strcmp(ol.v[i].ext, "parquet") != 0 || strncmp(ol.v[i].key, "raw/event_type=", 15) != 0)
      fail_msg("lake object %s: not raw/event_type=.../*.parquet", ol.v[i].key);
    unsigned y, mo, d, h;
    const char *p = strstr(ol.v[i].key, "/year=");
    if (!p || sscanf(p, "/year=%4u/month=%2u/day=%2u/hour=%2u/", &y, &mo, &d, &h) != 4 || y != 2026 || mo != 11 ||
        d != 30 || h < 7 || h > 9)
      fail_msg("lake object %s: not under year=2026/month=11/day=30/hour=07..09 (created_at's hours)", ol.v[i].key);
  }
  for (size_t i = 0; i < on.n; i++)
    if (strcmp(on.v[i].ext, "ndjson.gz") != 0) fail_msg("nd object %s: not .ndjson.gz", on.v[i].key);
  rn_sf_objs_check_ranges(&ol);
  rn_sf_objs_check_ranges(&on);
  print_message("%zu Parquet and %zu NDJSON object keys follow <prefix><sink>-<shardId>-<first>-<last>.<ext>; no "
                "overlapping ranges per shard and prefix\n",
                ol.n, on.n);
  rn_sf_objs_free(&ol);
  rn_sf_objs_free(&on);

  /* the analyst: DuckDB */
  const char *ver[] = {rn_sf_python(), script, "verify", "--dir", dir, "--expect", expect, "--node-path",
                       g_node_path, "--parquet", "raw/**/*.parquet", "--ndjson", "nd/**/*.ndjson.gz",
                       dedup ? "--dedup" : NULL, NULL};
  rc = rn_sf_run_print(ver);
  if (!dedup)
    printf("TODO(i14-dedup): SKIPPED the dedup check count(DISTINCT event_uuid) = count(*): this runnelctl has no "
           "`stream create --dedup-field` yet; checked instead that each event_uuid appears exactly as often as "
           "PutRecords accepted it\n");
  if (rc != 0) fail_msg("pipeline.py verify: exit %d (the mismatches are above)", rc);

  /* list / delete */
  const char *del[] = {"sink", "delete", "nd", NULL};
  free(rn_sf_ctl(f, del));
  l = rn_sf_ctl_json(f, list);
  if (!names_has(l, "lake") || names_has(l, "nd")) {
    char *s = json_dumps(l, JSON_COMPACT);
    fail_msg("after sink delete nd, sink list --json: %s", s);
  }
  json_decref(l);
  const char *dnd[] = {"sink", "describe", "nd", NULL};
  char *out, *err;
  rc = rn_sf_ctl_rc(f, dnd, &out, &err);
  if (rc == 0) fail_msg("sink describe of a deleted sink exited 0: %s", out);
  free(out);
  free(err);
}

int main(int argc, char **argv) {
  if (argc > 1) g_n = (uint32_t)strtoul(argv[1], NULL, 10);
  if (g_n < 100) {
    fprintf(stderr, "test_sink_pipeline: at least 100 events\n");
    return 2;
  }
  if (!rn_sf_ctl_has_flag("sink", "create", "--event-time-field")) {
    printf("SKIP: this runnelctl has no `sink create` (archive sinks, issue 14)\n");
    return 77;
  }
  char why[512];
  if (!rn_sf_node_path(g_node_path, sizeof g_node_path, why, sizeof why)) {
    printf("SKIP: %s\n", why);
    return 77;
  }
  int rc = rn_sf_init(&g_fx, true, why, sizeof why);
  if (rc != 0) {
    printf("SKIP: %s\n", why);
    rn_sf_finish(&g_fx, 0);
    return 77;
  }
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_pipeline)};
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  failed += rn_sf_finish(&g_fx, failed);
  return failed ? 1 : 0;
}
