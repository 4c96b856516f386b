/*
 * test_sink_faults.c — archive sinks under faults, against the real runneld
 * (issue 14):
 *
 *   test_sink_faults outage|poison|pause
 *
 *   outage  an NDJSON sink to s3rver (skip 77 when it cannot be installed):
 *           records delivered, then s3rver stopped by PID; more records
 *           produced; describe must show the lag growing by what was produced,
 *           no new objects, a shard "retrying" and a last_error; s3rver
 *           started again on the same port and data directory; the lag
 *           reaches 0 and every record is in exactly one object (per shard
 *           the objects' ranges dense from 0, lines = range).
 *   poison  a Parquet sink to a directory (data/ prefix, error prefix
 *           errors/!{error}/): among good records, one that is not JSON, one
 *           with a string in the int64 column, one missing a non-nullable
 *           column. Each bad one lands under errors/<kind>/ as an NDJSON line
 *           with its shard, offset, a reason and data_base64 (the original
 *           bytes); describe counts them in error_records; DuckDB
 *           (duckdb_query.mjs; skip 77 without the node readers) reads exactly
 *           the good records from the Parquet objects; more good records
 *           produced afterwards are delivered too (the sink keeps going).
 *   pause   two NDJSON sinks on one stream to a directory: p, paused, and w,
 *           a witness that keeps delivering. p paused, runneld killed -9 at once
 *           and restarted: still paused (the answer waited for durability).
 *           Then records are produced and
 *           w is waited for until it delivered them (so p had every chance
 *           to): p must show lag = what was produced, state paused, and no new
 *           object; runneld restarted cleanly: p is still paused at the same
 *           position; resume: p's lag reaches 0 and each record is in exactly
 *           one of p's objects. Then a sink with --start latest archives only
 *           the records produced after it was created.
 * No sleep synchronises anything: every wait polls a condition with a deadline.
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
#include <sys/stat.h>

#include "sinktest.h"
#include "testutil.h"
#include "tiertest.h"

#define SHARDS 2
#define MAXREC 4000

static rn_sinkfx_t g_fx;
static char g_out[700];
static char g_node_path[1024];

/* ---- records with ids, counted in objects -------------------------------------- */

static size_t make_id_rec(void *arg, uint32_t i, char *key, char *buf, size_t cap) {
  uint32_t base = (uint32_t)(uintptr_t)arg;
  snprintf(key, 32, "k%u", (base + i) % 97u);
  return (size_t)snprintf(buf, cap, "{\"id\":%u,\"note\":\"record %u\"}", base + i, base + i);
}

static uint8_t g_seen[MAXREC];

static void count_id(void *arg, const char *line, size_t len) {
  (void)arg;
  (void)len;
  unsigned id;
  if (sscanf(line, "{\"id\":%u,", &id) != 1 || id >= MAXREC) fail_msg("a line never produced: %.60s", line);
  g_seen[id]++;
}

/* The sink's objects under root/sub: names, ranges dense per shard from
 * start[shard] (NULL: 0), lines = range, and ids [lo, hi) each exactly once. */
static void check_ids(const char *root, const char *sub, const char *sink, uint32_t lo, uint32_t hi,
                      const uint64_t *start) {
  rn_sf_objs_t o;
  rn_sf_objs_load(root, sub, sink, SHARDS, &o);
  rn_sf_objs_check_ranges(&o);
  memset(g_seen, 0, sizeof g_seen);
  uint64_t next[SHARDS] = {0};
  if (start) memcpy(next, start, sizeof next);
  for (size_t i = 0; i < o.n; i++) {
    const rn_sf_obj_t *ob = &o.v[i];
    if (ob->first != next[ob->shard])
      fail_msg("shard %u: object %s starts at %" PRIu64 " where %" PRIu64 " was next", ob->shard, ob->key, ob->first,
               next[ob->shard]);
    next[ob->shard] = ob->last + 1;
    uint64_t lines = rn_sf_lines(ob->path, count_id, NULL);
    if (lines != ob->last - ob->first + 1)
      fail_msg("object %s: %" PRIu64 " lines for a range of %" PRIu64, ob->key, lines, ob->last - ob->first + 1);
  }
  for (uint32_t id = 0; id < MAXREC; id++) {
    unsigned want = id >= lo && id < hi;
    if (g_seen[id] != want) fail_msg("record %u is in %u objects of %s (want %u)", id, g_seen[id], sink, want);
  }
  print_message("%s: %zu objects hold records %u..%u exactly once, ranges dense per shard\n", sink, o.n, lo, hi - 1);
  rn_sf_objs_free(&o);
}

static void check_exactly_once(const char *root, const char *sub, const char *sink, uint32_t n) {
  check_ids(root, sub, sink, 0, n, NULL);
}

static void create_stream(const char *name) {
  const char *a[] = {"stream", "create", name, "--shards", "2", NULL};
  free(rn_sf_ctl(&g_fx, a));
}

/* ---- outage ------------------------------------------------------------------------ */

static void test_outage(void **state) {
  (void)state;
  rn_sinkfx_t *f = &g_fx;
  rn_sf_broker_start(f);
  create_stream("fo");
  char to[200];
  snprintf(to, sizeof to, "s3://%.32s/fo/", f->peer.bucket);
  const char *sc[] = {"sink", "create", "out", "--stream", "fo", "--to", to, "--prefix", "fo/", "--buffer-interval",
                      "100ms", NULL};
  free(rn_sf_ctl(f, sc));
  rn_sf_produce(f, "fo", 500, make_id_rec, (void *)(uintptr_t)0);
  rn_sf_wait_caught_up(f, "out", 500);
  rn_sf_view_t v0;
  rn_sf_describe(f, "out", &v0, NULL);

  rn_s3peer_stop(&f->peer);
  print_message("s3rver (pid stopped) down after %" PRIu64 " objects\n", v0.objects);
  rn_sf_produce(f, "fo", 500, make_id_rec, (void *)(uintptr_t)500);
  /* the sink tries, fails and says so */
  rn_sf_view_t v1;
  uint64_t deadline = rn_tt_now_ms() + RN_SF_DEADLINE_MS;
  for (;;) {
    rn_sf_describe(f, "out", &v1, NULL);
    if (v1.retrying && v1.last_error[0]) break;
    if (rn_tt_now_ms() > deadline)
      fail_msg("S3 down: no shard retrying with a last_error after %u s (states %s, last_error \"%s\", lag %" PRIu64
               ")",
               RN_SF_DEADLINE_MS / 1000, v1.shard_states, v1.last_error, v1.lag);
    rn_tt_pause(100);
  }
  print_message("S3 down: lag %" PRIu64 ", states [%s], last_error \"%s\"\n", v1.lag, v1.shard_states, v1.last_error);
  if (v1.lag != 500) fail_msg("S3 down: lag %" PRIu64 ", want the 500 records produced since", v1.lag);
  rn_sf_produce(f, "fo", 500, make_id_rec, (void *)(uintptr_t)1000);
  rn_sf_view_t v2;
  rn_sf_describe(f, "out", &v2, NULL);
  if (v2.lag != v1.lag + 500) fail_msg("S3 down: lag %" PRIu64 " after 500 more records, was %" PRIu64, v2.lag, v1.lag);
  if (v2.objects != v0.objects || v2.records != v0.records)
    fail_msg("S3 down: objects %" PRIu64 " -> %" PRIu64 ", records %" PRIu64 " -> %" PRIu64 " (no PUT can succeed)",
             v0.objects, v2.objects, v0.records, v2.records);
  print_message("S3 down: lag grew to %" PRIu64 ", no new objects\n", v2.lag);

  char why[512];
  if (rn_s3peer_restart(&f->peer, why, sizeof why) != 0) fail_msg("s3rver did not come back: %s", why);
  rn_sf_wait_caught_up(f, "out", 1500);
  rn_sf_view_t v3;
  rn_sf_describe(f, "out", &v3, NULL);
  print_message("S3 back: lag 0, %" PRIu64 " objects, %" PRIu64 " records, last_error \"%s\"\n", v3.objects,
                v3.records, v3.last_error);
  if (v3.records != 1500) fail_msg("describe counts %" PRIu64 " records delivered, want 1500", v3.records);
  if (v3.last_error[0]) fail_msg("caught up, yet last_error is still \"%s\"", v3.last_error);
  rn_sf_mirror(f, "fo/", g_out);
  check_exactly_once(g_out, "fo", "out", 1500);
}

/* ---- poison ------------------------------------------------------------------------ */

#define POISON_N 400
static const char k_bad_json[] = "not json {";
static const char k_bad_int[] = "{\"id\":\"bad-int\",\"n\":\"lots\"}";
static const char k_bad_missing[] = "{\"id\":\"no-n\"}";

static size_t make_poison(void *arg, uint32_t i, char *key, char *buf, size_t cap) {
  uint32_t base = (uint32_t)(uintptr_t)arg;
  uint32_t id = base + i;
  snprintf(key, 32, "k%u", id % 13u);
  if (id == 100) return (size_t)snprintf(buf, cap, "%s", k_bad_json);
  if (id == 200) return (size_t)snprintf(buf, cap, "%s", k_bad_int);
  if (id == 300) return (size_t)snprintf(buf, cap, "%s", k_bad_missing);
  return (size_t)snprintf(buf, cap, "{\"id\":\"g%u\",\"n\":%u}", id, id);
}

static size_t b64_decode(const char *s, uint8_t *out, size_t cap) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (; *s && *s != '='; s++) {
    const char *p = strchr(tbl, *s);
    if (!p) fail_msg("data_base64: '%c' is not base64", *s);
    acc = (acc << 6) | (uint32_t)(p - tbl);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n < cap) out[n++] = (uint8_t)(acc >> bits);
    }
  }
  return n;
}

typedef struct err_line {
  char kind[16];
  char reason[300];
  char data[128];
  int64_t offset;
  char shard[40];
} err_line_t;

static err_line_t g_errs[16];
static size_t g_nerrs;
static char g_err_kind[16];

static void read_err_line(void *arg, const char *line, size_t len) {
  (void)arg;
  json_error_t je;
  json_t *o = json_loadb(line, len, 0, &je);
  if (!json_is_object(o)) fail_msg("an error object's line is not a JSON object: %.*s", (int)len, line);
  if (g_nerrs == 16) fail_msg("more than 16 error lines");
  err_line_t *e = &g_errs[g_nerrs++];
  snprintf(e->kind, sizeof e->kind, "%s", g_err_kind);
  const char *r = json_string_value(json_object_get(o, "reason"));
  const char *d = json_string_value(json_object_get(o, "data_base64"));
  const char *sh = json_string_value(json_object_get(o, "shard"));
  json_t *off = json_object_get(o, "offset");
  if (!r || !*r || !d || !sh || !json_is_integer(off))
    fail_msg("error line without reason, data_base64, shard or offset: %.*s", (int)len, line);
  snprintf(e->reason, sizeof e->reason, "%s", r);
  snprintf(e->shard, sizeof e->shard, "%s", sh);
  e->offset = (int64_t)json_integer_value(off);
  size_t n = b64_decode(d, (uint8_t *)e->data, sizeof e->data - 1);
  e->data[n] = '\0';
  json_decref(o);
}

static const err_line_t *find_err(const char *data) {
  for (size_t i = 0; i < g_nerrs; i++)
    if (strcmp(g_errs[i].data, data) == 0) return &g_errs[i];
  return NULL;
}

/* DuckDB prints integers as JSON strings (bigints) or numbers. */
static long long jll(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  if (json_is_integer(v)) return (long long)json_integer_value(v);
  if (json_is_string(v)) return atoll(json_string_value(v));
  return -1;
}

/* DuckDB: how many rows, and whether they are exactly the good ids of [0, upto). */
static void check_parquet_good(uint32_t upto) {
  char sql[1200];
  snprintf(sql, sizeof sql,
           "SELECT count(*) AS n, count(DISTINCT id) AS d, "
           "sum(CASE WHEN id = 'g' || CAST(n AS VARCHAR) THEN 1 ELSE 0 END) AS ok, min(n) AS lo, max(n) AS hi "
           "FROM read_parquet('%s/data/**/*.parquet')",
           g_out);
  char script[700];
  snprintf(script, sizeof script, "%s/sink/duckdb_query.mjs", rn_sf_conformance_dir());
  const char *argv[] = {"/usr/bin/env", "node", script, sql, NULL};
  char out[4096];
  int rc = rn_test_run(argv, out, sizeof out);
  if (rc != 0) fail_msg("duckdb_query.mjs: exit %d: %s", rc, out);
  json_error_t je;
  json_t *row = json_loads(out, JSON_DISABLE_EOF_CHECK, &je);
  if (!row) fail_msg("duckdb_query.mjs: %s", out);
  long long n = jll(row, "n"), d = jll(row, "d"), ok = jll(row, "ok");
  long long good = (long long)upto - 3;
  if (n != good || d != good || ok != good)
    fail_msg("DuckDB over data/**/*.parquet: %lld rows, %lld distinct ids, %lld with id = g<n>; want %lld each (%s)", n,
             d, ok, good, out);
  print_message("DuckDB: data/**/*.parquet holds exactly the %lld good records of %u\n", good, upto);
  json_decref(row);
}

/* The NDJSON sink on the same records: only the one that is not JSON is an
 * error (the others are JSON objects, whatever their fields). */
static void check_ndjson_poison(void) {
  rn_sf_view_t v;
  rn_sf_describe(&g_fx, "nd", &v, NULL);
  if (v.error_records != 1 || v.records != POISON_N - 1)
    fail_msg("NDJSON sink: %" PRIu64 " records, %" PRIu64 " error records; want %d and 1", v.records, v.error_records,
             POISON_N - 1);
  char root[800];
  snprintf(root, sizeof root, "%s/nd", g_out);
  rn_sf_objs_t o;
  rn_sf_objs_load(root, "", "nd", SHARDS, &o);
  rn_sf_objs_check_ranges(&o);
  g_nerrs = 0;
  for (size_t i = 0; i < o.n; i++)
    if (strncmp(o.v[i].key, "errors/", 7) == 0) {
      snprintf(g_err_kind, sizeof g_err_kind, "%s", strncmp(o.v[i].key, "errors/parse/", 13) == 0 ? "parse" : "?");
      rn_sf_lines(o.v[i].path, read_err_line, NULL);
    }
  rn_sf_objs_free(&o);
  const err_line_t *e = find_err(k_bad_json);
  if (g_nerrs != 1 || !e || strcmp(e->kind, "parse") != 0)
    fail_msg("NDJSON sink: %zu error lines; want one, for \"%s\" under errors/parse/", g_nerrs, k_bad_json);
  print_message("NDJSON sink on the same records: only \"%s\" under errors/parse/ (reason \"%s\")\n", k_bad_json,
                e->reason);
}

static void test_poison(void **state) {
  (void)state;
  rn_sinkfx_t *f = &g_fx;
  rn_sf_broker_start(f);
  create_stream("fp");
  char schema[700], to[800];
  snprintf(schema, sizeof schema, "%s/p.yaml", f->tmp);
  FILE *fp = fopen(schema, "w");
  assert_non_null(fp);
  fputs("columns:\n  - name: id\n    type: string\n  - name: n\n    type: int64\n    nullable: false\nmetadata:\n  - offset\n", fp);
  assert_int_equal(fclose(fp), 0);
  snprintf(to, sizeof to, "file://%s/", g_out);
  const char *sc[] = {"sink", "create", "pq", "--stream", "fp", "--to", to, "--format", "parquet", "--schema", schema,
                      "--prefix", "data/", "--error-prefix", "errors/!{error}/", "--buffer-interval", "100ms", NULL};
  free(rn_sf_ctl(f, sc));
  char tond[800];
  snprintf(tond, sizeof tond, "file://%s/nd/", g_out);
  const char *scn[] = {"sink", "create", "nd", "--stream", "fp", "--to", tond, "--format", "ndjson", "--prefix",
                       "data/", "--error-prefix", "errors/!{error}/", "--buffer-interval", "100ms", NULL};
  free(rn_sf_ctl(f, scn));
  rn_sf_produce(f, "fp", POISON_N, make_poison, (void *)(uintptr_t)0);
  rn_sf_wait_caught_up(f, "pq", POISON_N);
  rn_sf_wait_caught_up(f, "nd", POISON_N);
  check_ndjson_poison();
  rn_sf_view_t v;
  rn_sf_describe(f, "pq", &v, NULL);
  print_message("poison: describe records %" PRIu64 ", error_records %" PRIu64 ", objects %" PRIu64 "\n", v.records,
                v.error_records, v.objects);
  if (v.error_records != 3 || v.records != POISON_N - 3)
    fail_msg("describe: %" PRIu64 " records, %" PRIu64 " error records; want %d and 3", v.records, v.error_records,
             POISON_N - 3);

  /* the error objects: errors/<kind>/pq-shardId-...ndjson */
  rn_sf_objs_t o;
  char pqroot[800];
  snprintf(pqroot, sizeof pqroot, "%s", g_out);
  rn_sf_objs_load(pqroot, "", "pq", SHARDS, &o);
  rn_sf_objs_check_ranges(&o);
  g_nerrs = 0;
  size_t nerr_objs = 0, ndata = 0;
  for (size_t i = 0; i < o.n; i++) {
    if (strncmp(o.v[i].key, "errors/", 7) == 0) {
      nerr_objs++;
      if (strcmp(o.v[i].ext, "ndjson") != 0) fail_msg("error object %s is not .ndjson", o.v[i].key);
      const char *k = o.v[i].key + 7;
      snprintf(g_err_kind, sizeof g_err_kind, "%.*s", (int)(strchr(k, '/') - k), k);
      rn_sf_lines(o.v[i].path, read_err_line, NULL);
    } else if (strncmp(o.v[i].key, "data/", 5) == 0 && strcmp(o.v[i].ext, "parquet") == 0) {
      ndata++;
    } else {
      fail_msg("object %s: neither data/*.parquet nor errors/*.ndjson", o.v[i].key);
    }
  }
  rn_sf_objs_free(&o);
  const struct {
    const char *data, *kind, *reason_has;
  } want[] = {{k_bad_json, "parse", "JSON"}, {k_bad_int, "convert", "column n"}, {k_bad_missing, "convert", "column n"}};
  for (size_t i = 0; i < 3; i++) {
    const err_line_t *e = find_err(want[i].data);
    if (!e) fail_msg("the bad record %s is in no error object (data_base64 decoded)", want[i].data);
    if (strcmp(e->kind, want[i].kind) != 0 || !strstr(e->reason, want[i].reason_has))
      fail_msg("bad record %s: under errors/%s/ with reason \"%s\"; want errors/%s/ and a reason naming \"%s\"",
               want[i].data, e->kind, e->reason, want[i].kind, want[i].reason_has);
    print_message("  %-28s -> errors/%s/: shard %s offset %" PRId64 ", reason \"%s\"\n", want[i].data, e->kind,
                  e->shard, e->offset, e->reason);
  }
  if (g_nerrs != 3) fail_msg("%zu error lines, want 3", g_nerrs);
  print_message("poison: %zu data objects, %zu error objects\n", ndata, nerr_objs);
  check_parquet_good(POISON_N);

  /* it keeps going */
  rn_sf_produce(f, "fp", 100, make_poison, (void *)(uintptr_t)POISON_N);
  rn_sf_wait_caught_up(f, "pq", POISON_N + 100);
  rn_sf_describe(f, "pq", &v, NULL);
  if (v.error_records != 3 || v.records != POISON_N + 100 - 3)
    fail_msg("after 100 more good records: %" PRIu64 " records, %" PRIu64 " error records", v.records,
             v.error_records);
  check_parquet_good(POISON_N + 100);
}

/* ---- pause ------------------------------------------------------------------------- */

static void test_pause(void **state) {
  (void)state;
  rn_sinkfx_t *f = &g_fx;
  rn_sf_broker_start(f);
  create_stream("fz");
  char top[800], tow[800];
  snprintf(top, sizeof top, "file://%s/p/", g_out);
  snprintf(tow, sizeof tow, "file://%s/w/", g_out);
  const char *cp[] = {"sink", "create", "p", "--stream", "fz", "--to", top, "--prefix", "x/", "--buffer-interval",
                      "50ms", NULL};
  const char *cw[] = {"sink", "create", "w", "--stream", "fz", "--to", tow, "--prefix", "x/", "--buffer-interval",
                      "50ms", NULL};
  free(rn_sf_ctl(f, cp));
  free(rn_sf_ctl(f, cw));
  rn_sf_produce(f, "fz", 300, make_id_rec, (void *)(uintptr_t)0);
  rn_sf_wait_caught_up(f, "p", 300);
  rn_sf_wait_caught_up(f, "w", 300);
  const char *pa[] = {"sink", "pause", "p", NULL};
  free(rn_sf_ctl(f, pa));
  /* the answer comes once the pause is durable: a kill -9 right after it
   * keeps it */
  rn_sf_broker_kill(f);
  rn_sf_broker_start(f);
  rn_sf_view_t v0;
  rn_sf_describe(f, "p", &v0, NULL);
  if (strcmp(v0.state, "paused") != 0 || v0.lag != 0)
    fail_msg("pause, kill -9, restart: state \"%s\" lag %" PRIu64 ", want paused and 0", v0.state, v0.lag);
  print_message("pause, kill -9, restart: still paused\n");
  rn_sf_objs_t o0;
  rn_sf_objs_load(g_out, "p", "p", SHARDS, &o0);

  rn_sf_produce(f, "fz", 300, make_id_rec, (void *)(uintptr_t)300);
  /* the witness delivered them: a running sink had every chance to */
  rn_sf_wait_caught_up(f, "w", 600);
  rn_sf_view_t v1;
  rn_sf_describe(f, "p", &v1, NULL);
  rn_sf_objs_t o1;
  rn_sf_objs_load(g_out, "p", "p", SHARDS, &o1);
  print_message("paused: lag %" PRIu64 ", objects %" PRIu64 " (dir %zu), state %s [%s]; witness caught up\n", v1.lag,
                v1.objects, o1.n, v1.state, v1.shard_states);
  if (v1.lag != 300) fail_msg("paused: lag %" PRIu64 ", want the 300 records produced since", v1.lag);
  if (v1.objects != v0.objects || o1.n != o0.n)
    fail_msg("paused, yet objects %" PRIu64 " -> %" PRIu64 " (directory %zu -> %zu)", v0.objects, v1.objects, o0.n,
             o1.n);
  if (strcmp(v1.state, "paused") != 0 || !v1.all_paused)
    fail_msg("paused: state \"%s\", shard states [%s]", v1.state, v1.shard_states);
  rn_sf_objs_free(&o0);
  rn_sf_objs_free(&o1);

  /* the pause and the position survive a restart */
  rn_sf_broker_stop(f);
  rn_sf_broker_start(f);
  rn_sf_view_t v2;
  rn_sf_describe(f, "p", &v2, NULL);
  if (strcmp(v2.state, "paused") != 0 || v2.lag != 300 || v2.checkpoint != v1.checkpoint)
    fail_msg("after a restart: state \"%s\", lag %" PRIu64 ", checkpoints %" PRIu64 " (were paused, 300, %" PRIu64 ")",
             v2.state, v2.lag, v2.checkpoint, v1.checkpoint);
  print_message("restarted: still paused, lag 300, checkpoints unchanged\n");

  const char *re[] = {"sink", "resume", "p", NULL};
  free(rn_sf_ctl(f, re));
  rn_sf_wait_caught_up(f, "p", 600);
  rn_sf_view_t v3;
  rn_sf_describe(f, "p", &v3, NULL);
  if (strcmp(v3.state, "running") != 0) fail_msg("resumed: state \"%s\"", v3.state);
  check_exactly_once(g_out, "p", "p", 600);
  check_exactly_once(g_out, "w", "w", 600);

  /* --start latest: a sink created now archives only what comes after */
  char tol[800];
  snprintf(tol, sizeof tol, "file://%s/l/", g_out);
  const char *cl[] = {"sink", "create", "l", "--stream", "fz", "--to", tol, "--prefix", "x/", "--buffer-interval",
                      "50ms", "--start", "latest", NULL};
  free(rn_sf_ctl(f, cl));
  json_t *doc;
  rn_sf_view_t vl;
  rn_sf_describe(f, "l", &vl, &doc);
  uint64_t start[SHARDS] = {0};
  size_t i;
  json_t *sh;
  json_array_foreach(json_object_get(doc, "shards"), i, sh) if (i < SHARDS) start[i] = (uint64_t)rn_tt_jint(sh,
                                                                                                            "checkpoint");
  json_decref(doc);
  if (vl.lag != 0 || start[0] + start[1] != 600)
    fail_msg("--start latest: lag %" PRIu64 ", checkpoints %" PRIu64 " + %" PRIu64 " (want 0 and the 600 records)",
             vl.lag, start[0], start[1]);
  rn_sf_produce(f, "fz", 100, make_id_rec, (void *)(uintptr_t)600);
  rn_sf_wait_caught_up(f, "l", 700);
  check_ids(g_out, "l", "l", 600, 700, start);
}

int main(int argc, char **argv) {
  const char *c = argc > 1 ? argv[1] : "";
  bool outage = strcmp(c, "outage") == 0, poison = strcmp(c, "poison") == 0, pause = strcmp(c, "pause") == 0;
  if (!outage && !poison && !pause) {
    fprintf(stderr, "usage: test_sink_faults outage|poison|pause\n");
    return 2;
  }
  if (!rn_sf_ctl_has_flag("sink", "create", "--error-prefix")) {
    printf("SKIP: this runnelctl has no `sink create` (archive sinks, issue 14)\n");
    return 77;
  }
  char why[512];
  if (poison) {
    if (!rn_sf_node_path(g_node_path, sizeof g_node_path, why, sizeof why)) {
      printf("SKIP: %s\n", why);
      return 77;
    }
    setenv("NODE_PATH", g_node_path, 1);
  }
  int rc = rn_sf_init(&g_fx, outage, why, sizeof why);
  if (rc != 0) {
    printf("SKIP: %s\n", why);
    rn_sf_finish(&g_fx, 0);
    return 77;
  }
  snprintf(g_out, sizeof g_out, "%s/out", g_fx.tmp);
  mkdir(g_out, 0755);
  const struct CMUnitTest t_outage[] = {cmocka_unit_test(test_outage)};
  const struct CMUnitTest t_poison[] = {cmocka_unit_test(test_poison)};
  const struct CMUnitTest t_pause[] = {cmocka_unit_test(test_pause)};
  int failed = outage ? cmocka_run_group_tests(t_outage, NULL, NULL)
               : poison ? cmocka_run_group_tests(t_poison, NULL, NULL)
                        : cmocka_run_group_tests(t_pause, NULL, NULL);
  failed += rn_sf_finish(&g_fx, failed);
  return failed ? 1 : 0;
}
